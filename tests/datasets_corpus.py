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


# ---------------------------------------------------------------- the agreement corpus: files as people have them


def qa_rows(n=24):
    return [{"prompt": q, "completion": a} for q, a in code_rows(n)]


def write_csv(path: Path, header, rows):
    import csv

    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_with_datasets(kind: str):
    """A writer of rows through `datasets`: parquet and json-array files, a save_to_disk directory, a folder."""
    def write(path: Path, rows):
        from datasets import Dataset

        dataset = Dataset.from_list(rows)
        if kind == "parquet":
            dataset.to_parquet(path)
        elif kind == "json":
            path.write_text(json.dumps(rows))
        elif kind == "saved":
            dataset.save_to_disk(path)
        else:
            path.mkdir()
            write_jsonl(path / "train.jsonl", rows)
        return path
    return write


def vision_rows_with_missing_files(directory: Path, n: int = 8) -> Path:
    """Images stored as file paths that are gone: loading them would fail in the middle of training."""
    from datasets import Dataset, Image, List
    from PIL import Image as PILImage

    paths = [str(directory / f"gone-{i}.png") for i in range(n)]
    for p in paths:
        PILImage.new("RGB", (8, 8), "red").save(p)
    rows = [{"images": [p], "messages": [{"role": "user", "content": [{"type": "image", "text": None},
                                                                     {"type": "text", "text": "Colour?"}]},
                                         {"role": "assistant", "content": [{"type": "text", "text": "red"}]}]}
            for p in paths]
    path = directory / "vision-missing.parquet"
    Dataset.from_list(rows).cast_column("images", List(Image())).to_parquet(path)
    for p in paths:
        Path(p).unlink()
    return path


def broken_after_sample():
    lines = [json.dumps(row) for row in qa_rows(1200)] + ['{"prompt": "x", "completion": ']
    return "\n".join(lines) + "\n"


def file_case(suffix, rows, writer=None):
    """(make(directory) -> path): writes `rows` into a file of that suffix."""
    def make(directory: Path) -> Path:
        path = directory / f"data{suffix}"
        if isinstance(rows, str):
            path.write_text(rows)
            return path
        return (writer or write_jsonl)(path, rows)
    return make


turn_pairs = list(code_rows(24))


def csv_case(column: str, answers):
    return lambda directory: write_csv(directory / "data.csv", ["prompt", column], answers)


# name: (make(directory) -> path, {method: expected verdict}); "error": the validator exits 2 (the file cannot load)
AGREEMENT = {
    **{f"public-{name}": (file_case(".jsonl", CORPUS[name][0]), {m: CORPUS[name][1][m] for m in methods})
       for name, methods in [("ultrafeedback_binarized", ["sft", "dpo"]), ("hh-rlhf", ["dpo"]),
                             ("distilabel-math-preference-dpo", ["dpo"]), ("gsm8k", ["sft", "grpo"]),
                             ("alpaca", ["sft"]), ("sharegpt", ["sft"]), ("codeforces-cots", ["sft"]), ("kto", ["dpo"]),
                             ("good-bad-responses", ["dpo"]), ("chat-columns-renamed", ["sft"]),
                             ("last-turn-user", ["sft"]), ("no-usable-columns", ["grpo"])]},
    # the mistakes
    "csv-int-response": (csv_case("response", [(q, i + 1) for i, (q, _) in enumerate(turn_pairs)]),
                         {"sft": "incompatible", "grpo": "needs_mapping"}),
    "schema-switch-messages-first": (file_case(".jsonl", [{"messages": turns(("user", q), ("assistant", a))}
                                                          for q, a in turn_pairs[:12]] + qa_rows(12)),
                                     {"sft": "incompatible"}),
    "schema-switch-prompt-first": (file_case(".jsonl", qa_rows(12) + [{"messages": turns(("user", q), ("assistant", a))}
                                                                       for q, a in turn_pairs[:12]]),
                                   {"sft": "incompatible"}),
    "schema-switch-after-sample": (file_case(".jsonl", qa_rows(1010) + [{"text": "late"}] * 5), {"sft": "incompatible"}),
    "sharegpt-in-conversation": (file_case(".jsonl", [{"conversation": [{"from": "human", "value": q},
                                                                        {"from": "gpt", "value": a}]}
                                                      for q, a in turn_pairs]), {"sft": "needs_mapping"}),
    "vision-missing-image-files": (vision_rows_with_missing_files, {"sft": "incompatible"}),
    "broken-json-after-sample": (file_case(".jsonl", broken_after_sample()), {"sft": "error"}),
    "messages-as-json-string": (file_case(".jsonl", [{"messages": json.dumps(turns(("user", q), ("assistant", a)))}
                                                     for q, a in turn_pairs]), {"sft": "incompatible"}),
    "roles-human-bot": (file_case(".jsonl", [{"messages": turns(("human", q), ("bot", a))} for q, a in turn_pairs]),
                        {"sft": "needs_mapping"}),
    "pairs-all-identical": (file_case(".jsonl", [{"prompt": q, "chosen": a, "rejected": a} for q, a in turn_pairs]),
                            {"dpo": "incompatible"}),
    "assistant-turns-empty": (file_case(".jsonl", [{"messages": turns(("user", q), ("assistant", ""))}
                                                   for q, _ in turn_pairs]), {"sft": "incompatible"}),
    # more shapes and mistakes
    "type-change-after-sample": (file_case(".jsonl", qa_rows(1050) + [{"prompt": "p", "completion": 7}]),
                                 {"sft": "error"}),
    "completion-nulls": (file_case(".jsonl", qa_rows(20) + [{"prompt": "p", "completion": None}] * 4),
                         {"sft": "incompatible"}),
    "text-only": (file_case(".jsonl", [{"text": f"{q}\n{a}"} for q, a in turn_pairs]), {"sft": "ready"}),
    "text-all-empty": (file_case(".jsonl", [{"text": "  "}] * 24), {"sft": "incompatible"}),
    "text-numbers": (file_case(".jsonl", [{"text": i} for i in range(24)]), {"sft": "incompatible"}),
    "prompt-completion-turns": (file_case(".jsonl", [{"prompt": turns(("user", q)), "completion": turns(("assistant", a))}
                                                     for q, a in turn_pairs]), {"sft": "ready"}),
    "prompt-turns-completion-text": (file_case(".jsonl", [{"prompt": turns(("user", q)), "completion": a}
                                                          for q, a in turn_pairs]), {"sft": "incompatible"}),
    "completions-all-empty": (file_case(".jsonl", [{"prompt": q, "completion": ""} for q, _ in turn_pairs]),
                              {"sft": "incompatible"}),
    "dpo-implicit-prompt-turns": (file_case(".jsonl", [{"chosen": turns(("user", q), ("assistant", a)),
                                                        "rejected": turns(("user", q), ("assistant", "no"))}
                                                       for q, a in turn_pairs]), {"dpo": "ready"}),
    "dpo-prompt-turns": (file_case(".jsonl", [{"prompt": turns(("user", q)), "chosen": turns(("assistant", a)),
                                               "rejected": turns(("assistant", "no"))} for q, a in turn_pairs]),
                         {"dpo": "ready"}),
    "dpo-text-prompt-beside-answer-turns": (file_case(".jsonl", [{"prompt": q, "chosen": turns(("assistant", a)),
                                                                  "rejected": turns(("assistant", "no"))}
                                                                 for q, a in turn_pairs]), {"dpo": "incompatible"}),
    "dpo-rejected-null": (file_case(".jsonl", [{"prompt": q, "chosen": a, "rejected": None if i == 5 else "no"}
                                               for i, (q, a) in enumerate(turn_pairs)]), {"dpo": "incompatible"}),
    "grpo-prompt-text": (file_case(".jsonl", [{"prompt": q, "solution": "1"} for q, _ in turn_pairs]),
                         {"grpo": "ready"}),
    "grpo-no-reference-answer": (file_case(".jsonl", [{"question": q} for q, _ in turn_pairs]),
                                 {"grpo": "incompatible"}),
    "grpo-question-answer": (file_case(".jsonl", [{"question": f"{i} + 1?", "answer": str(i + 1)} for i in range(24)]),
                             {"grpo": "needs_mapping"}),
    "parquet-prompt-completion": (file_case(".parquet", qa_rows(), write_with_datasets("parquet")), {"sft": "ready"}),
    "json-array-alpaca": (file_case(".json", [{"instruction": q, "input": "", "output": a} for q, a in turn_pairs],
                                    write_with_datasets("json")), {"sft": "needs_mapping"}),
    "csv-prompt-completion": (csv_case("completion", turn_pairs), {"sft": "ready"}),
    "vision-llava": (llava_dataset, {"sft": "ready"}),
    "folder-of-jsonl": (file_case("-folder", qa_rows(), write_with_datasets("folder")), {"sft": "ready"}),
    "save-to-disk": (file_case("-saved", [{"messages": turns(("user", q), ("assistant", a))} for q, a in turn_pairs],
                               write_with_datasets("saved")), {"sft": "ready"}),
}

