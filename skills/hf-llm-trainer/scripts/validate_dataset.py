# /// script
# requires-python = ">=3.10"
# dependencies = ["datasets>=4.0", "pyarrow>=15", "huggingface_hub>=1.0", "transformers>=5.0", "jinja2", "pillow"]
# ///
"""Check a dataset for SFT, DPO, GRPO, KTO and reward training before any GPU is paid for.

    uv run validate_dataset.py --dataset trl-lib/ultrafeedback_binarized
    uv run validate_dataset.py --dataset data.jsonl --model Qwen/Qwen3-0.6B --max_length 2048 --json

Reads a sample (default 1,000 rows; `--full` for all) without downloading the whole dataset: Hub datasets are
streamed, local parquet/arrow files are read lazily. For every method it says `ready`, `needs_mapping` (with the
exact `--map`/`--convert` flags the training scripts accept) or `incompatible` (with the reasons). With `--model`
it measures token lengths through the model's own tokenizer and chat template.
"""

import argparse
import hashlib
import itertools
import json
import os
import statistics
import sys
from pathlib import Path

ROLES = {"system", "user", "assistant", "tool"}
SHAREGPT_ROLES = {"human", "gpt", "system", "user", "assistant", "model", "bot", "tool", "function_call", "observation"}
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
FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".arrow": "arrow"}


class BadInput(Exception):
    pass


# ---------------------------------------------------------------- reading a sample


def count_lines(path: Path) -> int:
    count, last = 0, b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


def read_local_file(path: Path, limit: int | None) -> tuple[list[dict], int | None]:
    if path.stat().st_size == 0:
        raise BadInput(f"{path} is empty; point --dataset at a file with rows.")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        rows = parquet.metadata.num_rows
        batches = parquet.iter_batches(batch_size=min(limit or rows, 65536) or 1)
        table_rows = []
        for batch in batches:
            table_rows += batch.to_pylist()
            if limit and len(table_rows) >= limit:
                break
        return table_rows[:limit] if limit else table_rows, rows
    if suffix == ".jsonl":
        sample = []
        with open(path) as f:
            for number, line in enumerate(itertools.islice(f, limit), start=1):
                if line.strip():
                    try:
                        sample.append(json.loads(line))
                    except ValueError:
                        raise BadInput(f"{path} line {number} is not valid JSON; fix or remove that line.")
        return sample, count_lines(path) if limit else len(sample)
    if suffix in (".json", ".csv", ".arrow"):
        from datasets import Dataset, load_dataset

        try:
            dataset = (Dataset.from_file(str(path)) if suffix == ".arrow"
                       else load_dataset(FILE_BUILDERS[suffix], data_files=str(path), split="train"))
        except Exception as error:  # noqa: BLE001 - the datasets error names the bad line
            raise BadInput(f"{path} could not be parsed as {suffix[1:]} ({str(error).splitlines()[0][:200]}); fix the file.")
        return dataset.select(range(min(limit or len(dataset), len(dataset)))).to_list(), len(dataset)
    raise BadInput(f"{path} has an unsupported format {suffix or '(no extension)'}; use jsonl, json, csv, parquet or arrow.")


def read_local_dir(path: Path, split: str, limit: int | None) -> tuple[list[dict], int | None]:
    if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
        from datasets import load_from_disk

        dataset = load_from_disk(str(path))
        if hasattr(dataset, "keys"):
            if split not in dataset:
                raise BadInput(f"{path} has no split {split!r}; it has {', '.join(dataset)}. Pass --split.")
            dataset = dataset[split]
        return dataset.select(range(min(limit or len(dataset), len(dataset)))).to_list(), len(dataset)
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in FILE_BUILDERS and not p.name.startswith("."))
    if not files:
        raise BadInput(f"{path} holds no jsonl, json, csv, parquet or arrow files.")
    matching = [p for p in files if split in p.stem or split in p.parent.name] or files
    sample, total = [], 0
    for file in matching:
        rows, count = read_local_file(file, None if limit is None else max(limit - len(sample), 1))
        if limit is None or len(sample) < limit:
            sample += rows
        total += count
    return sample[:limit] if limit else sample, total


def read_hub(name: str, config: str | None, split: str, limit: int | None) -> tuple[list[dict], int | None]:
    from datasets import load_dataset

    try:
        stream = load_dataset(name, config, split=split, streaming=True)
    except FileNotFoundError as error:
        raise BadInput(f"Dataset {name!r} was not found on the Hub or locally ({error.__class__.__name__}); check the id "
                       "or the path.")
    except ValueError as error:
        message = str(error)
        if "split" in message.lower():
            raise BadInput(f"Dataset {name!r} has no split {split!r}; pass --split with one of its splits.")
        if "config" in message.lower():
            raise BadInput(f"Dataset {name!r} needs a config: {message.splitlines()[0][:300]} Pass --config NAME.")
        raise BadInput(f"Dataset {name!r} could not be read: {message.splitlines()[0][:300]}")
    except ConnectionError as error:
        raise BadInput(f"The Hub could not be reached for {name!r} ({error}); check the network or pass a local file.")
    rows = list(itertools.islice(stream, limit)) if limit else list(stream)
    total = None
    info = getattr(stream, "info", None)
    if info is not None and info.splits and split in info.splits and info.splits[split].num_examples:
        total = info.splits[split].num_examples
    return rows, total if limit else len(rows)


def read_sample(args) -> tuple[list[dict], int | None]:
    path = Path(args.dataset)
    limit = None if args.full else args.sample
    if path.is_file():
        return read_local_file(path, limit)
    if path.is_dir():
        return read_local_dir(path, args.split, limit)
    if args.dataset.startswith((".", "/")) or Path(args.dataset).suffix.lower() in FILE_BUILDERS:
        raise BadInput(f"{args.dataset} does not exist; check the path.")
    return read_hub(args.dataset, args.config, args.split, limit)


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
    if convert:
        flags.append(f"--convert {convert}")
    if mapping:
        flags.append("--map " + ",".join(f"{k}={v}" for k, v in mapping.items()))
    if status == "ready" and (mapping or convert):
        status = "needs_mapping"
    return {"status": status, "mapping": mapping, "convert": convert, "fix": " ".join(flags) or None,
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
        if style == "sharegpt":
            return verdict("ready", convert="sharegpt", reasons=[f"'{messages}' holds ShareGPT from/value turns"])
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
    if "prompt" in columns:
        extra = [c for c in columns if c != "prompt"]
        return verdict("ready", warnings=[f"columns {extra} reach the reward functions as keyword arguments"] if extra else [])
    prompt = find_column(columns, "prompt")
    if not prompt:
        messages = find_column(columns, "messages")
        if messages and turn_style(next((r[messages] for r in rows if r.get(messages)), None)) == "chat":
            return verdict("incompatible", reasons=["GRPO needs prompts only; this is a conversation dataset (use SFT, "
                                                    "or build a 'prompt' column of the turns before the answer)"])
        return verdict("incompatible", reasons=[f"no prompt column among {columns}"])
    return verdict("ready", mapping={"prompt": prompt})


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


# ---------------------------------------------------------------- tokens


def token_stats(rows, methods, args) -> dict:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(args.model)
    except OSError as error:
        raise BadInput(f"Tokenizer of {args.model!r} could not be loaded ({error.__class__.__name__}); pass a Hub id "
                       "(online) or a local model directory.")
    sft, dpo = methods["sft"], methods["dpo"]
    lengths = []
    for row in rows:
        text = render_row(row, sft, dpo, tokenizer)
        if text is not None:
            lengths.append(len(tokenizer(text, add_special_tokens=False).input_ids))
    if not lengths:
        return {"model": args.model, "p50": None, "p95": None, "max": None, "truncated_share": None,
                "total_estimate": None}
    ordered = sorted(lengths)
    total_rows = args.total_rows or len(rows)
    return {"model": args.model, "p50": int(statistics.median(ordered)),
            "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], "max": ordered[-1],
            "mean": round(statistics.fmean(ordered), 1),
            "truncated_share": round(sum(1 for n in lengths if n > args.max_length) / len(lengths), 4),
            "total_estimate": int(statistics.fmean(ordered) * total_rows), "max_length": args.max_length}


def _as_chat(value) -> list[dict] | None:
    return value if turn_style(value) == "chat" else None


def render_row(row, sft, dpo, tokenizer) -> str | None:
    has_template = tokenizer.chat_template is not None
    mapping = sft["mapping"]
    if sft["convert"] == "sharegpt":
        column = next(k for k in row if turn_style(row[k]) == "sharegpt")
        names = {"human": "user", "gpt": "assistant", "model": "assistant", "bot": "assistant"}
        turns = [{"role": names.get(t["from"], t["from"]), "content": t["value"]} for t in row[column]]
        return tokenizer.apply_chat_template(turns, tokenize=False) if has_template else "\n".join(t["content"] for t in turns)
    if sft["convert"] == "alpaca":
        return " ".join(str(row.get(k) or "") for k in ("instruction", "input", "output"))
    messages = _as_chat(row.get(mapping.get("messages", "messages")))
    if messages and has_template:
        text_turns = [{"role": t["role"], "content": content_text(t["content"])} for t in messages]
        return tokenizer.apply_chat_template(text_turns, tokenize=False)
    if dpo["status"] != "incompatible":
        m = dpo["mapping"]
        prompt, chosen = row.get(m.get("prompt", "prompt")), row.get(m.get("chosen", "chosen"))
        if _as_chat(chosen) and has_template:
            return tokenizer.apply_chat_template((_as_chat(prompt) or []) + chosen, tokenize=False)
        return f"{prompt or ''}{chosen or ''}" if isinstance(chosen, str) else None
    if "prompt" in mapping and "completion" in mapping:
        return f"{row.get(mapping['prompt']) or ''}{row.get(mapping['completion']) or ''}"
    text_column = mapping.get("text", "text")
    if isinstance(row.get(text_column), str):
        return row[text_column]
    prompt = row.get("prompt") or row.get("question")
    return content_text(prompt) if isinstance(prompt, list) else prompt


# ---------------------------------------------------------------- output


def print_report(report: dict):
    print(f"Dataset validation for {report['dataset']} (split {report['split']}, {report['rows_checked']} rows "
          f"checked of {report['rows'] if report['rows'] is not None else 'unknown'}):")
    print(f"Format: {report['format']}, modality: {report['modality']}, columns: "
          + ", ".join(f"{k} ({v})" for k, v in report["columns"].items()))
    labels = {"ready": "✓ READY", "needs_mapping": "~ NEEDS MAPPING", "incompatible": "✗ INCOMPATIBLE"}
    for method, result in report["methods"].items():
        detail = "; ".join(result["reasons"]) or ""
        if result["fix"]:
            detail = (detail + "; " if detail else "") + f"train with: {result['fix']}"
        print(f"{method.upper():7}{labels[result['status']]:18} {detail}")
        for warning in result["warnings"]:
            print(f"{'':25}! {warning}")
    for warning in report["warnings"]:
        print(f"Warning: {warning}")
    tokens = report.get("tokens")
    if tokens and tokens.get("p50") is not None:
        print(f"Tokens ({tokens['model']}): p50 {tokens['p50']}, p95 {tokens['p95']}, max {tokens['max']}; "
              f"{tokens['truncated_share']:.1%} of rows exceed --max_length {tokens['max_length']}; about "
              f"{tokens['total_estimate']:,} tokens in the split.")


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="Hub dataset id, local file (jsonl, json, csv, parquet, "
                                                         "arrow) or directory")
    parser.add_argument("--config", default=None, help="dataset configuration (subset) name")
    parser.add_argument("--split", default="train")
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
    report = {"dataset": args.dataset, "split": args.split, "rows": total, "rows_checked": len(rows),
              "columns": types, "format": data_format, "modality": kind, "warnings": warnings, "methods": methods,
              "tokens": token_stats(rows, methods, args) if args.model else None}
    print(json.dumps(report, indent=2, default=str) if args.json else "", end="\n" if args.json else "")
    if not args.json:
        print_report(report)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        main()
    except BadInput as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
