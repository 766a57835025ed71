# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "lighteval==0.13.0",
#     "xxhash<4",
#     "transformers>=5.23,<6",
#     "peft>=0.17,<1",
#     "torch>=2.6,<2.14",
#     "datasets>=4,<6",
#     "huggingface_hub>=2.4,<3",
#     "safetensors>=0.5,<1",
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
"""GSM8K accuracy of a model, a pushed checkpoint or a LoRA adapter, or of saved completions, with a 95% interval,
through lighteval's own gsm8k task: the math evaluation of a math (GRPO) run, base model against tuned.

    uv run eval_gsm8k.py --model Qwen/Qwen3-0.6B --json > base_gsm8k.json
    uv run eval_gsm8k.py --model alice/qwen3-gsm8k-grpo --run alice/qwen3-gsm8k-grpo
    uv run eval_gsm8k.py --model alice/qwen3-gsm8k-grpo --subfolder last-checkpoint --limit 200 --run alice/qwen3-gsm8k-grpo
    uv run eval_gsm8k.py --completions samples.jsonl --json

lighteval is the engine: its built-in `gsm8k` task (openai/gsm8k, configuration main, the 1,319 problems of the test
split as `Question: ...\\nAnswer:` prompts, few-shot examples drawn from the train split with a fixed seed, generation
cut at "Question:"), generated with its transformers or vLLM model (vLLM on a GPU when installed) and scored with
its extractive-match metric (Metrics.expr_gold_metric: the completion's answer, a \\boxed{} value, an "answer is"
value or else its last number, compared with the number after the gold answer's "####" as math, 5 decimals).
`--completions` scores saved `{"problem": "test/<row>", "completion"}` lines without a model, with that same metric
on the same documents. --dataset and --dataset_config take another dataset in GSM8K's format (question and answer
columns, train and test splits), read from the Hub (HF_ENDPOINT) or a local directory.

One protocol, recorded with every result: the prompt is continued as text (no chat template, so no thinking block),
5 few-shot examples (--num_fewshot), greedy, cut at "Question:", --max_new_tokens 256. The score carries a Wilson 95%
interval over problems and the outcome of every problem (`per_problem`, keyed `test/<row>`) for paired comparisons.
--limit N scores lighteval's seeded sample of N problems: the same N for every model, a quick check only.

--run records the result into a training run's run.json: a local run directory, or a Hub model repo (a commit
appending to its run.json, retried when another evaluation committed first).
"""

import argparse
import contextlib
import dataclasses
import json
import math
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

TASK = "gsm8k"  # lighteval's built-in task (lighteval/tasks/tasks/gsm8k.py)
# Five examples: the common GSM8K protocol for base models (the Open LLM Leaderboard's), enough for a base model to
# answer in the task's format and stop at the next "Question:", so base and tuned are both scored on their math.
FEWSHOT = 5
COLUMNS = ("question", "answer")
SPLIT, FEWSHOT_SPLIT = "test", "train"  # where lighteval's gsm8k task reads its problems and its few-shot examples


# ---------------------------------------------------------------- the request


@dataclass(frozen=True)
class Request:
    """The flags, checked."""
    model: str | None
    revision: str | None
    subfolder: str | None
    base: str | None
    completions: str | None
    dataset: str
    dataset_config: str
    limit: int | None
    num_fewshot: int
    max_new_tokens: int
    batch_size: int
    backend: str
    save_samples: str | None
    run: str | None
    json: bool


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="Hub id, local directory or LoRA adapter")
    parser.add_argument("--revision", default=None, help="branch, tag or commit of a Hub --model")
    parser.add_argument("--subfolder", default=None, help="checkpoint folder of --model (last-checkpoint, checkpoint-500)")
    parser.add_argument("--base", default=None, help="base model, for a LoRA adapter")
    parser.add_argument("--completions", default=None,
                        help="score saved completions (JSONL of {problem: test/<row>, completion}) instead of a model")
    parser.add_argument("--dataset", default="openai/gsm8k",
                        help="GSM8K-format dataset (question, answer '... #### n'; train and test splits)")
    parser.add_argument("--dataset_config", default="main", help="configuration of --dataset (default: main)")
    parser.add_argument("--limit", type=int, default=None,
                        help="score lighteval's seeded sample of N problems (quick runs; the result says it is partial)")
    parser.add_argument("--num_fewshot", type=int, default=FEWSHOT,
                        help=f"examples from the train split before each question (default {FEWSHOT})")
    parser.add_argument("--max_new_tokens", type=int, default=256, help="tokens generated per answer")
    parser.add_argument("--batch_size", type=int, default=8, help="prompts generated together")
    parser.add_argument("--backend", choices=["auto", "vllm", "transformers"], default="auto",
                        help="generation engine (auto: vLLM when installed on a GPU, else transformers)")
    parser.add_argument("--save_samples", default=None,
                        help="write every completion with its extracted answer, the gold and whether it is correct "
                             "to this JSONL (re-scorable with --completions)")
    parser.add_argument("--run", default=None,
                        help="record the result in this run: a local run directory (with run.json) or a Hub model repo")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    return parser


def parse_request(argv: list[str] | None = None) -> Request:
    """The flags as a Request, or BadInput naming the first value that cannot be evaluated."""
    request = Request(**vars(build_parser().parse_args(argv)))
    if (request.model is None) == (request.completions is None):
        raise BadInput("Pass either --model (generate and score) or --completions FILE.jsonl (score saved ones).")
    if request.limit is not None and request.limit < 1:
        raise BadInput("--limit must be at least 1.")
    if not 0 <= request.num_fewshot <= 64 or request.max_new_tokens < 1 or request.batch_size < 1:
        raise BadInput("--num_fewshot must be between 0 and 64, --max_new_tokens and --batch_size at least 1.")
    if not request.dataset.strip() or not request.dataset_config.strip():
        raise BadInput("--dataset and --dataset_config must not be empty; the default is openai/gsm8k, main.")
    if request.save_samples and (Path(request.save_samples).is_dir() or not Path(request.save_samples).parent.is_dir()):
        raise BadInput(f"--save_samples {request.save_samples} must be a file in an existing directory.")
    if request.model:
        check_model_flag(request.model, request.revision, request.subfolder)
    return request


def protocol(request: Request, task) -> dict:
    """How the model was prompted and sampled: a score means something only beside this."""
    return {"prompting": "completion", "chat_template": False, "thinking": False, "num_fewshot": request.num_fewshot,
            "stop": list(task.stop_sequence), "max_new_tokens": request.max_new_tokens, "temperature": 0.0,
            "task": f"lighteval|{TASK}"}


# ---------------------------------------------------------------- the task and its problems


def gsm8k_task(request: Request):
    """lighteval's gsm8k task config, on --dataset/--dataset_config, generating up to --max_new_tokens."""
    from lighteval.tasks.tasks.gsm8k import gsm8k

    if tuple(gsm8k.evaluation_splits) != (SPLIT,) or tuple(gsm8k.hf_avail_splits) != (FEWSHOT_SPLIT, SPLIT):
        raise Failure(f"lighteval's {TASK} task no longer reads {SPLIT} and {FEWSHOT_SPLIT}; install lighteval 0.13.0.")
    return dataclasses.replace(gsm8k, hf_repo=request.dataset, hf_subset=request.dataset_config,
                               generation_size=request.max_new_tokens)


def load_problems(request: Request):
    """The dataset as lighteval's task reads it (load_dataset of its repo and configuration, every split; the
    datasets cache serves lighteval's own read), checked for what the task needs before any model loads."""
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)
    name, config = request.dataset, request.dataset_config
    try:
        configs = datasets.get_dataset_config_names(name)
        data = datasets.load_dataset(path=name, name=config) if config in configs else None
    except Exception as error:  # noqa: BLE001 - whatever the library raises while reading becomes one sentence
        raise dataset_error(name, error) from error
    if data is None:
        raise BadInput(f"Dataset {name!r} has no configuration {config!r}; it has {', '.join(configs)}: pass one with "
                       f"--dataset_config NAME, e.g. --dataset_config {configs[0]}.")
    needed = [SPLIT, *([FEWSHOT_SPLIT] if request.num_fewshot and request.model else [])]
    missing = [split for split in needed if split not in data]
    if missing:
        raise BadInput(f"Dataset {name!r} ({config}) has no {' or '.join(missing)} split (it has {', '.join(data)}); "
                       f"GSM8K's format has the problems in '{SPLIT}' and the few-shot examples in '{FEWSHOT_SPLIT}'.")
    for split in needed:
        lacking = [column for column in COLUMNS if column not in data[split].column_names]
        if lacking:
            raise BadInput(f"Dataset {name!r} ({config}, {split}) has no {' or '.join(lacking)} column; GSM8K's "
                           "format is a question and an answer ending in '#### <number>'.")
    if request.model and request.num_fewshot > len(data[FEWSHOT_SPLIT]):
        raise BadInput(f"--num_fewshot {request.num_fewshot} is more than the {len(data[FEWSHOT_SPLIT])} rows of the "
                       f"{FEWSHOT_SPLIT} split; pass a smaller --num_fewshot.")
    return data


def dataset_error(name: str, error: Exception) -> Exception:
    message = first_line(error)[:200]
    if isinstance(error, ConnectionError) or "offline" in message.lower():
        return BadInput(f"The Hub could not be reached for dataset {name!r} ({message}); go online, or pass a local "
                        "dataset directory with --dataset.")
    if isinstance(error, FileNotFoundError):
        return BadInput(f"Dataset {name!r} was not found on the Hub or locally (or your token cannot read it); check "
                        "--dataset.")
    return BadInput(f"Dataset {name!r} could not be read ({message}); pass a dataset in GSM8K's format.")


def read_completions(path: str) -> tuple[dict[str, str], dict | None]:
    """{problem: completion}, one `{"problem": "test/<row>", "completion"}` a line, and the protocol they were
    generated with when the file says (--save_samples writes it on every line)."""
    completions, protocols = {}, set()
    for number, line in enumerate(read_jsonl(path, ("problem", "completion")), 1):
        row = json.loads(line)
        if not re.fullmatch(rf"{SPLIT}/(0|[1-9]\d*)", row["problem"]):
            raise BadInput(f"Line {number} of {path} names problem {row['problem']!r}; problems are named "
                           f"{SPLIT}/<row>, as --save_samples writes them.")
        if row["problem"] in completions:
            raise BadInput(f"{path} has two completions for {row['problem']}; GSM8K is scored greedy, one completion "
                           "per problem: keep one.")
        completions[row["problem"]] = row["completion"]
        protocols.add(json.dumps(row.get("protocol"), sort_keys=True))
    return completions, json.loads(protocols.pop()) if len(protocols) == 1 else None


def check_known(path: str, completions: dict[str, str], known: set[str], why: str):
    unknown = next((problem for problem in completions if problem not in known), None)
    if unknown:
        raise BadInput(f"{path} has a completion for {unknown!r}, which is not among the {len(known)} problems "
                       f"evaluated ({why}); pass the matching --dataset and --dataset_config (or a larger --limit).")


# ---------------------------------------------------------------- generating and scoring


def generate_and_score(request: Request, task, model: str, work: Path) -> tuple[list, int, str]:
    """lighteval generates and scores: (its details: doc, model response and metric of each problem, the number of
    problems in the split, backend)."""
    backend = generation_backend(request.backend)
    progress(f"[eval] {describe(request, task)}, {request.num_fewshot}-shot with {backend}")
    config = model_config(model, backend, 0.0, request.max_new_tokens, request.batch_size)
    spec = f"{TASK}|{request.num_fewshot}"
    with quiet_libraries(work / "libraries.log"):
        pipeline = run_lighteval([task], spec, config, work, max_samples=request.limit)
        details = pipeline.get_details()[spec]
        total = len(pipeline.tasks_dict[spec].eval_docs())
    return [(d.doc, d.model_response, d.metric["extractive_match"]) for d in details], total, backend


def score_completions(request: Request, task, data, completions: dict[str, str], work: Path) -> tuple[list, int]:
    """Saved completions on the documents lighteval builds (the same --limit sample), scored by lighteval's own
    metric call (apply_metric) after the post-processing its pipeline applies (reasoning tags removed)."""
    from lighteval.metrics import apply_metric
    from lighteval.models.model_output import ModelResponse
    from lighteval.pipeline import ParallelismManager, PipelineParameters
    from lighteval.tasks.lighteval_task import LightevalTask
    from lighteval.utils.utils import remove_reasoning_tags

    lighteval_task = LightevalTask(task)
    lighteval_task.dataset = data
    docs = {f"{SPLIT}/{doc.id}": doc for doc in lighteval_task.get_docs(request.limit)}
    check_known(request.completions, completions, set(docs), f"lighteval's seeded sample for --limit {request.limit}")
    tags = PipelineParameters(launcher_type=ParallelismManager.NONE).reasoning_tags
    docs = [docs[problem] for problem in completions]
    responses = [ModelResponse(text=[text], text_post_processed=[remove_reasoning_tags(text, tags)])
                 for text in completions.values()]
    progress(f"[eval] {describe(request, task)}: {len(docs)} saved completions scored with lighteval's metric")
    with quiet_libraries(work / "libraries.log"):
        outputs = apply_metric(responses=responses, docs=docs, metrics=list(lighteval_task.metrics))
    scored = [(doc, response, output["extractive_match"]) for doc, response, output in zip(docs, responses, outputs)]
    return scored, len(lighteval_task.eval_docs())


def describe(request: Request, task) -> str:
    return f"GSM8K ({task.name} task) on {request.dataset} ({request.dataset_config}, {SPLIT})"


def outcome(doc, response, score: float) -> dict:
    """One problem as --save_samples writes it: the completion, the answer the metric extracted from it, the gold's."""
    specific = doc.specific or {}
    predictions, golds = specific.get("extracted_predictions") or [None], specific.get("extracted_golds") or [None]
    return {"problem": f"{SPLIT}/{doc.id}", "completion": response.text[0], "extracted": predictions[0],
            "gold": golds[0], "correct": int(score >= 1.0)}


# ---------------------------------------------------------------- main


def evaluate(request: Request, target: str | None) -> tuple[dict, list[dict]]:
    """Reads the completions or checks the model, reads the problems, generates and scores; the result document and
    the outcomes. Every check runs before lighteval or a model loads."""
    started = time.time()
    completions, used = read_completions(request.completions) if request.completions else (None, None)
    data = load_problems(request)
    if completions:
        check_known(request.completions, completions, {f"{SPLIT}/{row}" for row in range(len(data[SPLIT]))},
                    f"the {SPLIT} split")
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        model = None if completions else loadable_model(request.model, request.revision, request.subfolder,
                                                        request.base, work)
        task, backend = gsm8k_task(request), None
        if completions:
            scored, total = score_completions(request, task, data, completions, work)
        else:
            (scored, total, backend), used = generate_and_score(request, task, model, work), protocol(request, task)
    outcomes = sorted((outcome(*item) for item in scored), key=lambda o: int(o["problem"].split("/")[1]))
    correct, n, job = sum(o["correct"] for o in outcomes), len(outcomes), job_from_env()
    accuracy = round(correct / n, 4) if n else 0.0
    return {"benchmark": "gsm8k", "metric": "accuracy", "score": accuracy, "accuracy": accuracy,
            "accuracy_ci95": wilson_interval(correct, n), "n": n, "of": total, "limit": n if n < total else None,
            "protocol": used, "per_problem": {o["problem"]: o["correct"] for o in outcomes}, "model": request.model,
            "revision": request.revision, "subfolder": request.subfolder, "completions": request.completions,
            "dataset": request.dataset, "dataset_config": request.dataset_config, "split": SPLIT, "date": utcnow(),
            "job": job["url"], "job_id": job["id"], "engine": "lighteval", "backend": backend,
            "duration_s": round(time.time() - started, 1), "recorded_in": target}, outcomes


def render(result: dict) -> str:
    low, high = result["accuracy_ci95"]
    subset = f" ({result['n']} of the {result['of']}: a partial result)" if result["limit"] else ""
    shots = f", {result['protocol']['num_fewshot']}-shot" if result["protocol"] else ""
    return (f"GSM8K {result['model'] or result['completions']}: accuracy {result['accuracy']:.3f} (95% CI {low:.3f}-"
            f"{high:.3f}) on {result['n']} problems{subset}{shots} ({result['duration_s']:.0f}s, "
            f"{result['backend'] or 'saved completions'})")


def record(target: str, result: dict):
    """Appends the evaluation, with what an honest comparison needs (interval, per-problem outcomes, protocol,
    whether it was cut), to the run's run.json."""
    entry = {key: result[key] for key in ("benchmark", "metric", "score", "accuracy", "accuracy_ci95", "n", "of",
                                          "limit", "protocol", "per_problem", "model", "revision", "subfolder",
                                          "completions", "dataset", "dataset_config", "split", "date", "job",
                                          "job_id")}
    record_evaluation(target, entry, f"GSM8K accuracy {entry['score']:.3f} of {entry['model'] or entry['completions']}")


def main():
    request = parse_request()
    target = checked_run(request.run) if request.run else None
    result, outcomes = evaluate(request, target)
    if request.save_samples:
        with open(request.save_samples, "w") as f:
            f.writelines(json.dumps(line | {"protocol": result["protocol"]}) + "\n" for line in outcomes)
    print(json.dumps(result, indent=2) if request.json else render(result))
    if target:
        record(target, result)


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


# ---- shared block: evaluation (tools/shared/evaluation.py; edit it there, then `make shared`) sha256:669784a6561e8349 ----

# What the benchmark evaluations (eval_humaneval.py, eval_gsm8k.py) share: the model lighteval loads (a Hub id, a
# local directory, a pushed checkpoint, a LoRA adapter merged into its base), checked before anything heavy loads;
# lighteval's Pipeline run on given task configs; the libraries' noise kept out of the answer; the 95% Wilson interval;
# and the run.json an evaluation is recorded into.

# A pushed checkpoint folder holds optimizer and scheduler states that evaluation does not need.
NOT_FOR_EVALUATION = ["optimizer.pt", "scheduler.pt", "rng_state*.pth", "*/optimizer.pt", "*/scheduler.pt",
                      "*/rng_state*.pth"]
PROGRESS = sys.stderr  # our [eval] lines; the libraries' output may be sent elsewhere (quiet_libraries)


def progress(message: str):
    print(message, file=PROGRESS, flush=True)


@contextlib.contextmanager
def quiet_libraries(log_file: Path):
    """Outside a job, the libraries' progress bars and warnings (tqdm, logging and C code alike write to file
    descriptor 2) go to a log file rather than the answer; our [eval] lines keep the terminal. Its end is shown
    when the evaluation fails. In a job, everything stays in the job's log (jobs.py status reads through it)."""
    global PROGRESS
    if os.environ.get("JOB_ID"):
        yield
        return
    sys.stderr.flush()
    terminal = os.dup(2)
    PROGRESS = os.fdopen(os.dup(terminal), "w")
    with open(log_file, "w") as noise:
        os.dup2(noise.fileno(), 2)
        try:
            yield
        except Exception:
            sys.stderr.flush()
            progress("[eval] the end of the libraries' output:\n" + "\n".join(log_file.read_text(errors="replace").splitlines()[-20:]))
            raise
        finally:
            sys.stderr.flush()
            os.dup2(terminal, 2)
            os.close(terminal)
            PROGRESS.close()
            PROGRESS = sys.stderr


def read_jsonl(path: str, keys: tuple[str, ...]) -> list[str]:
    """The non-empty lines of a JSONL file whose objects all carry `keys`."""
    try:
        lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise BadInput(f"{path} could not be read ({error.__class__.__name__}); pass a JSONL file.")
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not isinstance(row, dict) or not all(isinstance(row.get(key), str) for key in keys):
            raise BadInput(f"Line {number} of {path} is not a JSON object with string fields {', '.join(keys)}.")
    if not lines:
        raise BadInput(f"{path} is empty; it needs one JSON object a line.")
    return lines


# ---------------------------------------------------------------- the model


def check_hub_id(model: str):
    """A Hub model id that is malformed, does not exist, or (offline) is not in the cache is one sentence now, before
    anything heavy loads."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(model)
    except HFValidationError:
        raise BadInput(f"--model {model!r} is neither a local directory nor a Hub model id (owner/name).")
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    unreachable = False
    for name in ("config.json", "adapter_config.json"):
        try:
            hf_hub_download(model, name)
            return
        except RepositoryNotFoundError:
            raise BadInput(f"--model {model}: no such model repo on the Hub (or your token cannot read it); check the "
                           "spelling, or pass a local model directory.")
        except RevisionNotFoundError:
            return  # the checkpoint is elsewhere (--revision); local_checkpoint checks that one
        except LocalEntryNotFoundError:
            unreachable = True  # offline, or the Hub out of reach: maybe the other file is cached
            continue
        except EntryNotFoundError:
            continue  # the repo exists without this file
        except (HfHubHTTPError, OSError) as error:
            raise BadInput(f"--model {model}: the Hub could not be reached ({error.__class__.__name__}); go online "
                           "or pass a local model directory.")
    if offline or unreachable:
        why = "HF_HUB_OFFLINE=1" if offline else "the Hub could not be reached"
        raise BadInput(f"--model {model}: no config.json or adapter_config.json in the local cache ({why}); "
                       "download the model while online, or pass a local model directory.")
    raise BadInput(f"--model {model}: the repo has no config.json or adapter_config.json; pass a model repo, or "
                   "--subfolder with the checkpoint folder that holds one.")


def check_model_flag(model: str, revision: str | None, subfolder: str | None):
    """--model, checked as the flags are parsed: a Hub id now; a pushed checkpoint (--revision, --subfolder) is
    checked as it downloads, a local directory as it loads."""
    if not (Path(model).exists() or model.startswith((".", "/")) or revision or subfolder):
        check_hub_id(model)


def local_checkpoint(model: str, revision: str | None, subfolder: str | None) -> str:
    """The model lighteval loads: a pushed checkpoint (--revision, --subfolder) of a Hub repo is downloaded first."""
    if Path(model).is_dir():
        if revision:
            raise BadInput(f"--revision applies to Hub repos, and {model} is a local directory; drop --revision.")
        path = Path(model) / (subfolder or "")
    elif not revision and not subfolder:
        return model
    else:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        try:
            snapshot = snapshot_download(model, revision=revision, ignore_patterns=NOT_FOR_EVALUATION,
                                         allow_patterns=[f"{subfolder}/*"] if subfolder else None)
        except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as error:
            raise BadInput(f"Model {model!r} at revision {revision or 'main'} could not be downloaded "
                           f"({error.__class__.__name__}); pass an existing repo, revision and subfolder.")
        path = Path(snapshot) / (subfolder or "")
    if not (path / "config.json").exists() and not (path / "adapter_config.json").exists():
        raise BadInput(f"{model} has no model or LoRA adapter in {subfolder or 'its root'}; pass --subfolder with a "
                       "checkpoint folder (e.g. last-checkpoint or checkpoint-500).")
    return str(path)


def loadable_model(model: str, revision: str | None, subfolder: str | None, base: str | None, workdir: Path) -> str:
    """What lighteval loads (it loads full models): the checkpoint, its weights checked; a LoRA adapter (named by
    --base or by its own config) merged into its base under `workdir`."""
    path = local_checkpoint(model, revision, subfolder)
    check_weights(path)
    base = base or adapter_base(path, None if Path(path).is_dir() else revision)
    return str(save_merged(path, base, workdir / "merged")) if base else path


def generation_backend(backend: str) -> str:
    """--backend auto: vLLM when it is installed and a GPU is there, else transformers."""
    if backend != "auto":
        return backend
    import importlib.util

    import torch

    return "vllm" if torch.cuda.is_available() and importlib.util.find_spec("vllm") else "transformers"


def model_config(model: str, backend: str, temperature: float, max_new_tokens: int, batch_size: int):
    """lighteval's model, prompted as the recorded protocol says: the prompt continued as text. lighteval would
    otherwise wrap it in the tokenizer's chat template whenever it has one (and a thinking model would think)."""
    import torch
    from lighteval.models.model_input import GenerationParameters

    generation = GenerationParameters(temperature=temperature, max_new_tokens=max_new_tokens,
                                      top_p=0.95 if temperature > 0 else None)
    if backend == "vllm":
        from lighteval.models.vllm.vllm_model import VLLMModelConfig

        return VLLMModelConfig(model_name=model, generation_parameters=generation, override_chat_template=False)
    from lighteval.models.transformers.transformers_model import TransformersModelConfig
    from transformers import GenerationConfig

    on_gpu = torch.cuda.is_available()
    # lighteval passes the temperature but leaves do_sample to the model's generation config
    loading = {"generation_config": GenerationConfig.from_pretrained(model, do_sample=temperature > 0)}
    return TransformersModelConfig(model_name=model, device="cuda" if on_gpu else "cpu", batch_size=batch_size,
                                   dtype="bfloat16" if on_gpu else "float32", generation_parameters=generation,
                                   model_loading_kwargs=loading, override_chat_template=False)


# ---------------------------------------------------------------- lighteval


def run_lighteval(tasks: list, spec: str, config, workdir: Path, max_samples: int | None = None):
    """lighteval's Pipeline on `spec` (`name|shots`) over the given task configs; the pipeline, evaluated (its
    get_results, get_details and tasks_dict hold what it did)."""
    from lighteval.logging.evaluation_tracker import EvaluationTracker
    from lighteval.pipeline import ParallelismManager, Pipeline, PipelineParameters
    from lighteval.tasks.registry import Registry

    # lighteval 0.13 builds its registry by importing every built-in task module; offline two of them fail at
    # import (tiny_benchmarks downloads from GitHub, mt_bench calls a list_models() argument huggingface_hub 2.x
    # removed). Only the tasks given are needed, so the registry is built from them alone (Pipeline takes no
    # registry).
    Registry.load_all_task_configs = staticmethod(
        lambda custom_tasks=None, load_multilingual=False: {task.name: task for task in tasks})
    parameters = PipelineParameters(launcher_type=ParallelismManager.NONE, max_samples=max_samples)
    pipeline = Pipeline(tasks=spec, pipeline_parameters=parameters, model_config=config,
                        evaluation_tracker=EvaluationTracker(output_dir=str(workdir / "lighteval")))
    pipeline.evaluate()
    return pipeline


# ---------------------------------------------------------------- how sure the score is


def wilson_interval(passed: float, n: int, z: float = 1.959964) -> list[float]:
    """The 95% Wilson score interval of a proportion passed/n: valid near 0 and 1 and for small n, where the
    normal approximation is not."""
    if n == 0:
        return [0.0, 1.0]
    p = passed / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, center - half), 4), round(min(1.0, center + half), 4)]


# ---------------------------------------------------------------- where the result is recorded


def checked_run(target: str) -> str:
    """The run --run names (a local run directory or a Hub model repo with a run.json), checked before anything is
    evaluated."""
    found = locate_run(target, "--run")
    if found is None:
        raise BadInput(f"--run {target} has no run.json; pass the output directory of a training run or the Hub repo "
                       "it pushed to.")
    return found


def record_evaluation(target: str, entry: dict, message: str):
    """Appends one evaluation entry to the run's run.json (a merge: concurrent writers keep each other's entries)."""
    try:
        append_to_run(target, append={"evaluations": [entry]}, message=message)
    except Exception as error:  # noqa: BLE001 - the score is printed above: say that it was not recorded
        raise Failure(f"the result above could not be recorded in {target} ({first_line(error)}); fix that and "
                      "record it again (--save_samples keeps the completions to re-score with --completions).")
    progress(f"[eval] recorded in {target}/run.json")

# ---- end of shared block: evaluation ----


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    run_cli(main)
