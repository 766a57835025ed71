"""Small datasets that mirror the schemas of popular public datasets, and common mistakes, written on demand."""

import json
from pathlib import Path


def turns(*pairs):
    return [{"role": role, "content": content} for role, content in pairs]


def code_rows(n):
    for i in range(n):
        yield f"Write a function f{i}(x) that returns x + {i}.", f"def f{i}(x):\n    return x + {i}"


CORPUS = {
    # name: (rows, expected verdicts {method: status}, expected fix flags {method: fix})
    "ultrafeedback_binarized": (
        [{"prompt": q, "chosen": turns(("user", q), ("assistant", a)), "rejected": turns(("user", q), ("assistant", "no")),
          "messages": turns(("user", q), ("assistant", a)), "score_chosen": 8.0, "score_rejected": 3.0}
         for q, a in code_rows(24)],
        {"sft": "ready", "dpo": "ready", "reward": "ready", "kto": "incompatible"}, {}),
    "hh-rlhf": (
        [{"chosen": f"\n\nHuman: {q}\n\nAssistant: {a}", "rejected": f"\n\nHuman: {q}\n\nAssistant: I can't."}
         for q, a in code_rows(24)],
        {"dpo": "ready", "sft": "incompatible", "grpo": "incompatible"}, {}),
    "distilabel-math-preference-dpo": (
        [{"instruction": q, "chosen_response": a, "rejected_response": "42", "chosen_rating": 9, "rejected_rating": 2}
         for q, a in code_rows(24)],
        {"dpo": "needs_mapping"},
        {"dpo": "--map chosen=chosen_response,rejected=rejected_response,prompt=instruction"}),
    "gsm8k": (
        [{"question": f"Ana has {i} apples and buys 3. How many now?", "answer": f"{i} + 3 = {i + 3}\n#### {i + 3}"}
         for i in range(24)],
        {"grpo": "needs_mapping", "sft": "needs_mapping", "dpo": "incompatible"},
        {"grpo": "--convert gsm8k", "sft": "--map prompt=question,completion=answer"}),
    "alpaca": (
        [{"instruction": q, "input": "" if i % 2 else "x = 1", "output": a, "text": f"### {q}\n{a}"}
         for i, (q, a) in enumerate(code_rows(24))],
        {"sft": "needs_mapping"}, {"sft": "--convert alpaca"}),
    "sharegpt": (
        [{"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]} for q, a in code_rows(24)],
        {"sft": "needs_mapping", "dpo": "incompatible"}, {"sft": "--convert sharegpt"}),
    "codeforces-cots": (
        [{"id": str(i), "prompt": q, "generation": a, "messages": turns(("user", q), ("assistant", a))}
         for i, (q, a) in enumerate(code_rows(24))],
        {"sft": "ready", "dpo": "incompatible"}, {}),
    "kto": (
        [{"prompt": turns(("user", q)), "completion": turns(("assistant", a)), "label": i % 3 != 0}
         for i, (q, a) in enumerate(code_rows(24))],
        {"kto": "ready", "dpo": "incompatible"}, {}),
    "good-bad-responses": (
        [{"prompt": q, "good_response": a, "bad_response": "pass"} for q, a in code_rows(24)],
        {"dpo": "needs_mapping"}, {"dpo": "--map chosen=good_response,rejected=bad_response"}),
    "chat-columns-renamed": (
        [{"conversation": turns(("user", q), ("assistant", a))} for q, a in code_rows(24)],
        {"sft": "needs_mapping"}, {"sft": "--map messages=conversation"}),
    # mistakes
    "last-turn-user": (
        [{"messages": turns(("user", q), ("assistant", a), ("user", "thanks"))} for q, a in code_rows(24)],
        {"sft": "incompatible"}, {}),
    "no-usable-columns": ([{"foo": i, "bar": str(i)} for i in range(10)],
                          {"sft": "incompatible", "dpo": "incompatible", "grpo": "incompatible", "kto": "incompatible"},
                          {}),
}


def write_jsonl(path: Path, rows):
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return path


def llava_dataset(directory: Path, n: int = 16) -> Path:
    """llava-instruct-mix style: an 'images' column and typed content lists, saved as parquet with image bytes."""
    from io import BytesIO

    from PIL import Image

    rows = []
    for i in range(n):
        buffer = BytesIO()
        Image.new("RGB", (32, 32), ["red", "green", "blue", "white"][i % 4]).save(buffer, format="PNG")
        rows.append({"images": [{"bytes": buffer.getvalue(), "path": None}],
                     "messages": [{"role": "user", "content": [{"type": "image", "text": None},
                                                               {"type": "text", "text": "What colour is this?"}]},
                                  {"role": "assistant", "content": [{"type": "text", "text": ["red", "green", "blue",
                                                                                               "white"][i % 4]}]}]})
    from datasets import Dataset, Image, List

    path = directory / "llava.parquet"
    dataset = Dataset.from_list(rows)
    dataset.cast_column("images", List(Image())).to_parquet(path)  # as the Hub stores llava-instruct-mix
    return path


def rlaif_dataset(directory: Path, n: int = 16) -> Path:
    """openbmb/RLAIF-V style preference data: an 'images' column and typed-content prompt/chosen/rejected turns."""
    from io import BytesIO

    from datasets import Dataset, Image, List
    from PIL import Image as PILImage

    rows = []
    for i in range(n):
        colour = ["red", "green", "blue", "white"][i % 4]
        buffer = BytesIO()
        PILImage.new("RGB", (32, 32), colour).save(buffer, format="PNG")
        rows.append({"images": [{"bytes": buffer.getvalue(), "path": None}],
                     "prompt": [{"role": "user", "content": [{"type": "image", "text": None},
                                                             {"type": "text", "text": "What colour is this?"}]}],
                     "chosen": [{"role": "assistant", "content": [{"type": "text", "text": colour}]}],
                     "rejected": [{"role": "assistant", "content": [{"type": "text", "text": "purple"}]}]})
    path = directory / "rlaif.parquet"
    Dataset.from_list(rows).cast_column("images", List(Image())).to_parquet(path)
    return path
