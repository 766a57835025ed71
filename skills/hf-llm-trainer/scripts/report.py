# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "huggingface_hub>=2.4,<3",
#     "httpx2>=2,<3",
#     "matplotlib>=3.8,<4",
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
"""Keep the experiment report training_reports/<experiment>.md current: planned, running, failed and finished runs.

    uv run report.py --experiment qwen3-codeforces --plan plan.json --name sft-a10g   # before submitting
    uv run report.py --experiment qwen3-codeforces                                    # after any change
    uv run report.py --experiment qwen3-codeforces --runs outputs/sft-cpu username/qwen3-sft --evals base_humaneval.json

The runs come from three places, remembered in <output_dir>/<experiment>/runs.json so that a later
`--experiment E` alone refreshes them all: plans recorded with `--plan plan.json --name NAME` (plan.py --json), the
jobs labelled with the experiment (`jobs.py submit --experiment E --name NAME`; the beside jobs.py is asked), and
run records given with `--runs` (run.json files, training output dirs or Hub repos). A job named like a plan takes
the plan's section over; a name two runs share is said on stderr, and the later run shown as NAME-2. Each run gets a section `name` - `date` - `status` with its parameters (dataset and its
configuration, hardware, timeout, eval and save interval), status and progress, what went wrong and its fix when it
failed, time and cost against the plan's estimate once it ended, the job link, the Trackio link to its project and
run, a loss curve (with GRPO's rewards beside it), its evaluations (each with its 95% interval, what --limit left
out, and the training data's overlap with the benchmark) and its GGUF exports. The experiment table lists every
evaluation with its date and time, the base model's included (`--evals`, eval_humaneval.py and eval_gsm8k.py --json
outputs), and a TBD row, with the exact command that fills it, for each evaluation that fits what a run trained for:
GSM8K for math (gsm8k data, math rewards, a math dataset), HumanEval for code; none for a quick test run (its plan
says so, or it was cut by --max_samples or to 50 steps or fewer). Under it each fine-tuned result is set against the
base model's on the same benchmark: a paired difference over the problems both evaluated, its 95% interval and a
verdict (better, worse, or no difference this evaluation can detect), or one line saying why they are not compared
(different protocols); --json carries the same comparisons as data. Generated parts sit between `<!-- hflt:... -->` markers: re-running
updates them in place and keeps everything written by hand outside them.

Run records come from teammates' directories and other people's Hub repos, so they are read as untrusted input:
every text from them is escaped (no HTML, no Markdown links or table cells of their own, no forged markers), links
go only to the Hub endpoint in use (HF_ENDPOINT) or to the report's own files, and a record that cannot be read is
shown as one line "unreadable record (why)" while the rest of the report is written.
"""

import argparse
import html
import json
import math
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

BEGIN, END = "<!-- hflt:begin {} -->", "<!-- hflt:end {} -->"
NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
REPO_ID = r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?"
METHODS = {"sft": "SFT (TRL)", "dpo": "DPO (TRL)", "grpo": "GRPO (TRL)"}
STAGES = {"SCHEDULING": "Scheduled", "RUNNING": "In progress", "COMPLETED": "Completed", "ERROR": "Failed",
          "TIMEOUT": "Timed out", "CANCELED": "Cancelled", "DELETED": "Deleted"}
NOT_EVALUATED = {"Failed", "Cancelled", "Deleted", "Unreadable"}  # no model to evaluate: no TBD row
ENDED = {"Completed", "Failed", "Timed out", "Cancelled"}  # the runs whose time and cost are known
TEST_RUN_STEPS = 50  # at most, without a plan or --max_samples: SKILL.md's quick test run is --max_steps 20
REWARD_KEY = re.compile(r"rewards/([A-Za-z0-9_.-]{1,60})(?:/mean)?")  # TRL's per-function reward in log_history
MATH_REWARDS = re.compile(r"number_match|accuracy_reward|math", re.I)  # train_grpo.py's and TRL's answer checks
MATH_DATA = re.compile(r"gsm8k|math|numina|aime|arithmetic", re.I)  # a dataset's name that says it is math
CODE_DATA = re.compile(r"code|program|python", re.I)
PAIRED_NOTE = ("Differences are paired: the mean, over the problems both evaluations share, of the per-problem "
               "difference in share of samples passed, with a 95% interval after adding half a problem to each cell "
               "of the paired table (Agresti and Min's adjustment for matched pairs, so identical or few outcomes do "
               "not give a zero-width interval) and Student's t quantile. \"better\" or \"worse\" only when the "
               "interval excludes 0; evaluations recorded without per-problem outcomes are judged by whether their "
               "95% intervals overlap.")
TOKEN_MASK = "[HF_TOKEN]"
INERT_CODE = r"[^`<>&|\[\]\\\x00-\x1f\x7f-\x9f\u2028\u2029]+"  # what a code span shows as it is, whatever renders it

# The shapes report.py reads (see shape_problem): a record, an evaluation, a plan, a job status from jobs.py.
NUMBER = (int, float)
SCALAR = (str, int, float, bool)
EVALUATION = {"benchmark": str, "metric": str, "score": NUMBER, "pass@1": NUMBER, "pass@1_ci95": [NUMBER],
              "accuracy": NUMBER, "accuracy_ci95": [NUMBER], "per_problem": {str: NUMBER}, "n": int, "of": int,
              "limit": int, "samples_per_task": int, "protocol": dict, "date": str, "job": (str, dict),
              "job_id": str, "model": str, "revision": str, "subfolder": str}
RECORD = {
    "method": str, "base_model": str, "status": str, "peft": str, "loss_masking": str, "hub_repo": str,
    "output_dir": str, "started_at": str, "finished_at": str,
    "config": {"per_device_train_batch_size": int, "gradient_accumulation_steps": int, "max_steps": NUMBER,
               "num_train_epochs": SCALAR, "learning_rate": SCALAR, "weight_decay": SCALAR, "warmup_steps": SCALAR,
               "max_length": SCALAR, "max_completion_length": SCALAR, "eval_strategy": SCALAR, "eval_steps": SCALAR,
               "save_steps": SCALAR, "hub_strategy": SCALAR, "save_total_limit": SCALAR},
    "dataset": {"name": str, "config": str, "split": str, "rows": int, "eval_rows": int, "eval_ratio": NUMBER,
                "mapping": (dict, str), "convert": str, "max_samples": int},
    "hardware": {"flavor": str, "gpu": str, "gpus": int, "nodes": int, "world_size": int, "processes": int,
                 "peak_memory_gb": NUMBER},
    "job": {"id": str, "url": str, "group": str},
    "trackio": {"project": str, "run": str, "space": str},
    "steps": {"done": int, "total": int},
    "metrics": {"final": {"loss": NUMBER, "eval_loss": NUMBER, "reward": NUMBER}, "first_loss": NUMBER},
    "log_history": [{"step": NUMBER, "loss": NUMBER, "eval_loss": NUMBER, "reward": NUMBER}],
    "evaluations": [EVALUATION],
    "contamination": {"benchmark": str, "ngram": int, "rows_checked": int, "rows_overlapping": int, "rows_dropped": int,
                      "problems_overlapping": int, "problems": [str]},
    "exports": [{"file": str, "quant": str, "size_mb": NUMBER, "parity": str, "golden_agree": str, "repo": str,
                 "date": str}],
}
# The fields that must be there (paths, list indices written []): a record's, an evaluation's, a remembered plan's.
REQUIRED = {"method", "base_model", "config", "benchmark", "evaluations[].benchmark", "contamination.benchmark",
            "[].plan.method"}
RUN_KEYS = {"method", "base_model"}  # a JSON object with neither is another file (a validation, a plan), not a run
PLAN = {"model": str, "method": str, "flavor": str, "time_hours": NUMBER, "peft": str, "gpu": str, "gpus": int,
        "nodes": int, "strategy": str, "max_length": SCALAR, "max_completion_length": SCALAR, "epochs": SCALAR,
        "per_device_train_batch_size": int, "gradient_accumulation_steps": int, "precision": str,
        "cost_usd": NUMBER, "price_per_hour": NUMBER, "timeout": str, "dataset": str, "dataset_config": str,
        "training_args": [str], "test_run": bool, "max_steps": int, "max_samples": int}
STATE_ENTRY = {"name": str, "job": str, "source": str, "plan": PLAN, "planned_at": str}
JOB = {"id": str, "stage": str, "url": str, "name": str, "flavor": str, "elapsed_s": NUMBER, "timeout_s": NUMBER,
       "step": int, "total_steps": int, "loss": NUMBER, "loss_start": NUMBER, "reward": NUMBER, "eta_s": NUMBER,
       "trackio": {"project": str, "run": str, "space": str}, "trackio_dir": str, "created_at": str,
       "diagnosis": {"problem": str, "fix": str}, "labels": {"name": str, "timeout": str}, "members": [{"id": str}],
       "backend": str, "output_dir": str, "hub_repo": str}


@dataclass(frozen=True)
class Benchmark:
    """A benchmark the report plans and compares: its name and metric, the bundled script that evaluates it, the
    protocol fields that script takes as flags of the same name (to rerun under the base model's protocol), and
    which problems its --limit N keeps."""
    title: str
    metric: str
    script: str
    flags: tuple[str, ...]
    limited: str


BENCHMARKS = {"humaneval": Benchmark("HumanEval", "pass@1", "eval_humaneval.py",
                                     ("max_new_tokens", "temperature", "samples_per_task"), "the first"),
              "gsm8k": Benchmark("GSM8K", "accuracy", "eval_gsm8k.py", ("num_fewshot", "max_new_tokens"),
                                 "a seeded sample of")}


@dataclass(frozen=True)
class Request:
    """The flags, checked."""
    experiment: str
    runs: tuple[str, ...]
    evals: tuple[str, ...]
    plan: str | None
    name: str | None
    output_dir: Path
    json: bool

    @property
    def report(self) -> Path:
        return self.output_dir / f"{self.experiment}.md"

    @property
    def state_path(self) -> Path:
        return self.output_dir / self.experiment / "runs.json"


@dataclass(frozen=True)
class Unreadable:
    """A run record that cannot be read, and why: shown as one line in its run's section."""
    why: str


# ---------------------------------------------------------------- untrusted values


def shape_problem(value, shape, where: str = "") -> str | None:
    """Why `value` does not have `shape` (None when it does), naming the field: "evaluations[0].score is text, not
    a number". A shape is a type or tuple of types, {key: shape} for an object (every key optional but the fields
    in REQUIRED; null reads as absent), {str: shape} for an object of any keys with values of that shape, or [shape]
    for a list of them."""
    if isinstance(shape, dict) and str in shape:
        if not isinstance(value, dict):
            return f"{where} is {kind(value)}, not an object"
        return next(filter(None, (shape_problem(item, shape[str], f"{where}.{key}") for key, item in value.items())),
                    None)
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return f"{where or 'it'} is {kind(value)}, not an object"
        for key, inner in shape.items():
            field = f"{where}.{key}" if where else key
            if re.sub(r"\[\d+\]", "[]", field) in REQUIRED and value.get(key) is None:
                return f"{where or 'it'} has no {key}"
            problem = None if value.get(key) is None else shape_problem(value[key], inner, field)
            if problem:
                return problem
        return None
    if isinstance(shape, list):
        if not isinstance(value, list):
            return f"{where} is {kind(value)}, not a list"
        return next(filter(None, (shape_problem(item, shape[0], f"{where}[{index}]")
                                  for index, item in enumerate(value))), None)
    wanted = shape if isinstance(shape, tuple) else (shape,)
    if isinstance(value, bool) and bool not in wanted or not isinstance(value, wanted):
        return f"{where} is {kind(value)}, not {' or '.join(kind_name(t) for t in wanted if t is not float)}"
    return None


def kind(value) -> str:
    return "true/false" if isinstance(value, bool) else kind_name(type(value))


def kind_name(kind_type: type) -> str:
    return {str: "text", int: "a number", float: "a number", bool: "true/false", dict: "an object",
            list: "a list", type(None): "null"}.get(kind_type, kind_type.__name__)


def text(value) -> str:
    """An untrusted value as inert Markdown on one line: HTML escaped, and none of the characters that would open a
    link, an image, code, emphasis or a table cell of its own; bare URLs are kept from turning into links."""
    value = re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+", " ", str(value))
    value = re.sub(r"([\\`*\[\]|~])", r"\\\1", html.escape(value, quote=False))
    value = re.sub(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", r"\\_", value)
    return value.replace("://", "&#58;//").replace("www.", "www&#46;")


def code(value) -> str:
    """An untrusted value in a code span, or as escaped text when it holds what a code span would not keep inert."""
    value = str(value)
    return f"`{value}`" if re.fullmatch(INERT_CODE, value) else text(value)


def command_code(command: str) -> str:
    """A command report.py built around untrusted names, in a code span: its own ' > file' redirection is kept, the
    rest is held to what code() keeps."""
    return f"`{command}`" if re.fullmatch(INERT_CODE, command.replace(" > ", " ")) else text(command)


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def on_hub(url) -> bool:
    """A URL on the Hub endpoint in use (same scheme and host, under its path), the only links a record may give."""
    if not isinstance(url, str):
        return False
    endpoint, target = urlsplit(hub_endpoint()), urlsplit(url)
    return (target.scheme, target.netloc) == (endpoint.scheme, endpoint.netloc) and \
        target.path.startswith(endpoint.path.rstrip("/") + "/")


def link(url: str | None, label: str) -> str:
    """[label](url) for a URL on the Hub endpoint or a path of the report's own; the label alone otherwise."""
    if not url:
        return text(label)
    relative = not urlsplit(url).scheme and not url.startswith(("/", "\\")) and "//" not in url
    if not (on_hub(url) or relative):
        return text(label)
    return f"[{text(label)}]({quote(url, safe='/:?=&%#+,;@!$')})"


def hub_url(name, kind_path: str = "") -> str | None:
    if not isinstance(name, str) or is_local_source(name) or not re.fullmatch(REPO_ID, name):
        return None
    return f"{hub_endpoint()}/{kind_path}{name}"


def without_tokens(value: str) -> str:
    """What report.py prints or writes, with the token values this machine knows masked as jobs.py masks them."""
    from huggingface_hub import get_token

    for secret in {os.environ.get("HF_TOKEN"), get_token()} - {None, ""}:
        value = value.replace(secret, TOKEN_MASK)
    return value


# ---------------------------------------------------------------- inputs


def is_local_source(source: str) -> bool:
    return Path(source).exists() or source.endswith(".json") or source.startswith((".", "/", "~"))


def load_record(source: str, given: bool = True) -> dict | Unreadable | None:
    """The run.json of a file, a training output directory or a Hub repo: a record, Unreadable (and why), or None
    when it has none yet and was not `given` (a job that has not written or pushed it)."""
    path = local_record_path(source, given) if is_local_source(source) else hub_record_path(source, given)
    if path is None:
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        return Unreadable(f"not valid JSON: {first_line(error)}")
    if given and isinstance(record, dict) and not RUN_KEYS & record.keys():
        raise BadInput(f"{path} is not a run record (the run.json a train_*.py script writes: method, base_model, "
                       "config ...); pass a training output directory or its run.json.")
    problem = record_problem(record)
    return Unreadable(problem) if problem else record


def record_problem(record) -> str | None:
    """Why a run record cannot be shown (None when it can)."""
    problem = shape_problem(record, RECORD)
    if problem:
        return problem
    return next(filter(None, (entry_problem(e, f"evaluations[{index}]")
                              for index, e in enumerate(record.get("evaluations") or []))), None)


def evaluation_problem(evaluation) -> str | None:
    """Why a base model's evaluation (eval_humaneval.py or eval_gsm8k.py --json) cannot be shown (None when it can)."""
    problem = shape_problem(evaluation, EVALUATION)
    if problem:
        return problem
    return "it has no model" if evaluation.get("model") is None else entry_problem(evaluation, "it")


def entry_problem(evaluation: dict, where: str) -> str | None:
    """What the shapes cannot say about an evaluation of the right shape: a score, an interval of two bounds (its
    metric's, `<metric>_ci95`) and per-problem shares between 0 and 1."""
    if score(evaluation) is None:
        return f"{where} has no score"
    key = f"{metric_of(evaluation)}_ci95"
    bounds = evaluation.get(key)
    problem = None if bounds is None else shape_problem(bounds, [NUMBER], f"{where}.{key}")
    if problem or len(bounds or [0, 0]) != 2:
        return problem or f"{where}.{key} is not [low, high]"
    if not all(0 <= share <= 1 for share in (evaluation.get("per_problem") or {}).values()):
        return f"{where}.per_problem holds a share outside 0-1"
    return None


def local_record_path(source: str, given: bool) -> Path | None:
    path = Path(source).expanduser()
    path = path / "run.json" if path.is_dir() else path
    if not path.exists() and given:
        raise BadInput(f"No run record at {path}; pass a run.json, a training output directory or a Hub repo.")
    return path if path.exists() else None


def hub_record_path(source: str, given: bool) -> Path | None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(source, "run.json"))
    except (EntryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError, ValueError) as error:
        if given:
            raise BadInput(f"{source} is not a local run and its Hub repo has no run.json "
                           f"({error.__class__.__name__}); pass a training output directory or a Hub repo that "
                           "a trainer pushed to.") from None
        return None


def load_json(path: str, flag: str) -> object:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise BadInput(f"{flag} {path} cannot be read as JSON ({error.__class__.__name__}); pass the file the "
                       "script wrote with --json.") from None


def load_evaluation(path: str) -> dict:
    evaluation = load_json(path, "--evals")
    if evaluation_problem(evaluation):
        raise BadInput(f"--evals {path} is not an eval_humaneval.py or eval_gsm8k.py --json output (it has no "
                       "benchmark, model and score); write one with `eval_humaneval.py --model <base model> --json > "
                       "base_humaneval.json` (eval_gsm8k.py alike).")
    return evaluation


def load_plan(path: str) -> dict:
    plan = load_json(path, "--plan")
    problem = shape_problem(plan, PLAN)
    if problem or not {"model", "method", "flavor", "time_hours"} <= plan.keys():
        why = problem or "it has no model, method, flavor and time estimate"
        raise BadInput(f"--plan {path} is not a plan.py --json output ({why}); write one with `plan.py --model ... "
                       "--method ... --json > plan.json`.")
    return plan


def load_state(path: Path) -> tuple[list[dict], list[dict]]:
    """The runs report.py remembers for the experiment, and the base model evaluations it was given."""
    try:
        state = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        raise BadInput(f"{path} is not valid JSON; restore it (or move it away) and run again.") from None
    if not isinstance(state, dict):
        raise BadInput(f"{path} is not the runs report.py wrote (a JSON object); restore it (or move it away).")
    runs, base_evals = state.get("runs", []), state.get("base_evaluations", [])
    if shape_problem(runs, [STATE_ENTRY]) or not all(re.fullmatch(NAME, str(entry.get("name"))) for entry in runs):
        raise BadInput(f"{path} does not hold the runs report.py wrote (each with a plain name); restore it (or "
                       "move it away) and run again.")
    return runs, [e for e in base_evals if not evaluation_problem(e)] if isinstance(base_evals, list) else []


def experiment_jobs(experiment: str) -> list[dict]:
    """The training jobs labelled with the experiment, each with its status (progress, diagnosis, timeout), as
    the bundled jobs.py reports them; report.py runs beside it in the same environment."""
    jobs_script = Path(__file__).with_name("jobs.py")
    if not jobs_script.exists():
        print("Note: jobs.py is not beside report.py, so the experiment's jobs are not read.", file=sys.stderr)
        return []
    listed = jobs_json(jobs_script, "list", "--experiment", experiment) or []
    jobs = [jobs_json(jobs_script, "status", job["id"]) or job for job in listed if isinstance(job, dict)
            and isinstance(job.get("id"), str) and str(job.get("script") or "").startswith("train_")]
    return [readable_job(job) for job in jobs]


def readable_job(job: dict) -> dict:
    """A job status as jobs.py gives it; its progress comes from the job's own output, so a field of the wrong
    type drops the progress and keeps the job."""
    problem = shape_problem(job, JOB)
    if not problem:
        return job
    print(f"Note: job {job['id']}'s progress is not shown ({problem}).", file=sys.stderr)
    return {key: job[key] for key in ("id", "stage", "url") if isinstance(job.get(key), str)}


def jobs_json(jobs_script: Path, *args: str):
    result = subprocess.run([sys.executable, str(jobs_script), *args, "--json"], capture_output=True, text=True)
    if result.stderr.strip():
        print(f"Note from jobs.py {args[0]}: {without_tokens(result.stderr.strip())}", file=sys.stderr)
    return json.loads(result.stdout) if result.returncode == 0 else None


# ---------------------------------------------------------------- the runs of the experiment


def run_name(record: dict | Unreadable, source: str) -> str:
    if isinstance(record, Unreadable):
        path = Path(source.rstrip("/"))
        return path.parent.name if path.name == "run.json" else path.stem
    return (record.get("trackio") or {}).get("run") or Path(record.get("output_dir") or source.rstrip("/")).name


def new_entry(runs: list[dict], name: str, newcomer: str) -> dict:
    """A new run named `name`, or `name-2` ... when another run has that name already, which is said on stderr: two
    runs of one name are two jobs (or two output dirs) given the same name, not one run."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", name).strip("-.") or "run"
    taken = {entry["name"]: entry for entry in runs}
    unique = next(candidate for candidate in [name] + [f"{name}-{n}" for n in range(2, 1000)]
                  if candidate not in taken)
    if unique != name:
        fix = "give each job its own --name" if newcomer.startswith("job") else \
            "give each run its own --output_dir (or --run_name)"
        print(without_tokens(f"Note: two runs are named {name} ({holder(taken[name])} and {newcomer}); the second is "
                             f"shown as {unique}; {fix}."), file=sys.stderr)
    runs.append({"name": unique, "job": None, "source": None, "plan": None})
    return runs[-1]


def holder(entry: dict) -> str:
    """What a run of the report is, in a note: its job, its record, or its plan."""
    what = f"job {entry['job']}" if entry.get("job") else f"run.json at {entry['source']}" if entry.get("source") \
        else "the plan recorded with --name"
    return re.sub(r"[\x00-\x1f\x7f-\x9f]+", " ", what)


def find(runs: list[dict], **wanted) -> dict | None:
    return next((entry for entry in runs if any(value and entry.get(key) == value for key, value in wanted.items())),
                None)


def job_name(job: dict) -> str:
    """The name given at submission (jobs.py --name), else the run name the trainer printed, else the id."""
    return (job.get("name") or (job.get("labels") or {}).get("name") or (job.get("trackio") or {}).get("run")
            or job["id"])


def record_jobs(record: dict | Unreadable | None) -> set:
    """The ids a run record answers to: its job's, and its group's for a multi-node job (none: a run by hand)."""
    job = (record.get("job") or {}) if isinstance(record, dict) else {}
    return {value for value in (job.get("id"), job.get("group")) if value}


def job_source(job: dict) -> str | None:
    """Where a job's run.json is read: the repo it pushes to for an HF job (its output dir was in the job's
    container), a local job's output dir when it is still on this machine."""
    if job.get("backend") != "hf" and job.get("output_dir") and Path(job["output_dir"]).is_dir():
        return job["output_dir"]
    return job.get("hub_repo")


def add_plan(runs: list[dict], name: str, plan: dict):
    entry = find(runs, name=name) or new_entry(runs, name, "the plan")
    if entry.get("job"):
        raise BadInput(f"Run {name} already has job {entry['job']}; plan the next run under another --name.")
    entry |= {"plan": plan, "planned_at": utcnow()}


def claim_records(runs: list[dict], given: list[tuple[str, dict | Unreadable]], jobs_by_id: dict) -> dict:
    """The entry of each given record (by source, job, else the unclaimed run planned under its job's name or its
    own), added when none: name -> record."""
    records = {}
    for source, record in given:
        job_id = (record.get("job") or {}).get("id") if isinstance(record, dict) else None
        names = [job_name(jobs_by_id[job_id])] if job_id in jobs_by_id else []
        planned = next((entry for entry in (find(runs, name=name) for name in names + [run_name(record, source)])
                        if entry and not (entry.get("job") or entry.get("source"))), None)
        entry = find(runs, source=source) or find(runs, job=job_id) or planned or new_entry(
            runs, run_name(record, source), f"run.json at {source}")
        entry |= {"source": source, "job": entry.get("job") or job_id}
        records[entry["name"]] = record
    return records


def claim_jobs(runs: list[dict], jobs: list[dict]):
    """The entry of each job, the earliest submitted first: the one it was recorded in, else the unclaimed run planned
    under its name or whose record it wrote, else a new one."""
    for job in sorted(jobs, key=lambda job: str(job.get("created_at") or "")):
        entry = find(runs, job=job["id"])
        if entry is None:
            unclaimed = [e for e in runs if not e.get("job")]
            entry = find(unclaimed, name=job_name(job)) or find(unclaimed, source=job_source(job))
        entry = entry or new_entry(runs, job_name(job), f"job {job['id']}")
        entry |= {"job": job["id"], "source": entry.get("source") or job_source(job)}


def remembered_records(runs: list[dict], records: dict, jobs_by_id: dict) -> dict:
    """The records of the runs not given this time, read again from where they were found."""
    found = {}
    for entry in runs:
        if entry["name"] in records or not entry.get("source"):
            continue
        record = load_record(entry["source"], given=False)
        job = jobs_by_id.get(entry.get("job")) or {}
        answers = {entry.get("job"), *(member.get("id") for member in job.get("members", []))}
        if entry.get("job") and record_jobs(record) and not record_jobs(record) & answers:
            record = None  # the repo now holds a later run's record (a run resumed into the same repo, say)
        found[entry["name"]] = record
    return found


def sections_of(runs: list[dict], records: dict, jobs_by_id: dict) -> list[tuple[dict, object, dict | None, str]]:
    """(entry, record, job, status) for each run that has something to show."""
    sections = []
    for entry in runs:
        record, job = records.get(entry["name"]), jobs_by_id.get(entry.get("job"))
        if not (record or job or entry.get("plan")):
            print(f"Note: run {entry['name']} has no record, job or plan to show any more; its section is kept as "
                  "it was.", file=sys.stderr)
            continue
        sections.append((entry, record, job, run_status(record, job)))
    return sections


def readable(record) -> dict | None:
    return record if isinstance(record, dict) else None


# ---------------------------------------------------------------- rendering


def score(evaluation: dict) -> float | None:
    return evaluation.get("score", evaluation.get("pass@1"))


def metric_of(evaluation: dict) -> str:
    """The metric an evaluation scored (eval_humaneval.py --json names none: pass@1)."""
    known = BENCHMARKS.get(evaluation["benchmark"])
    return evaluation.get("metric") or (known.metric if known else "pass@1")


def interval(evaluation: dict) -> list | None:
    """The score's 95% interval, recorded as `<metric>_ci95` (pass@1_ci95, accuracy_ci95)."""
    return evaluation.get(f"{metric_of(evaluation)}_ci95")


def benchmark_name(benchmark: str) -> str:
    return BENCHMARKS[benchmark].title if benchmark in BENCHMARKS else benchmark


def script_of(benchmark: str) -> str:
    return BENCHMARKS[benchmark].script if benchmark in BENCHMARKS else "the same evaluation script"


def moment(stamp) -> str:
    """2025-12-09T13:47:00Z -> 2025-12-09 13:47 UTC; '-' for anything else."""
    if not isinstance(stamp, str) or not re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d", stamp):
        return "-"
    return f"{stamp[:10]} {stamp[11:16]} UTC"


def compact(seconds: float) -> str:
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return ((f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")) or "0s"


def minutes(seconds: float) -> str:
    return f"{round(seconds / 60)} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def model_cell(model: str | None) -> str:
    if not model:
        return "-"
    return link(hub_url(model), model) if hub_url(model) else code(model)


def benchmark_title(evaluation: dict | str) -> str:
    """'HumanEval pass@1', 'GSM8K accuracy': an evaluation's benchmark and metric, or a benchmark's."""
    if isinstance(evaluation, str):
        metric = BENCHMARKS[evaluation].metric if evaluation in BENCHMARKS else "score"
        return text(f"{benchmark_name(evaluation)} {metric}")
    return text(f"{benchmark_name(evaluation['benchmark'])} {metric_of(evaluation)}")


def job_cell(evaluation: dict) -> str:
    """An evaluation's job: a link to its logs on the Hub, the job's id, or its address as text."""
    job = evaluation.get("job")
    url, job_id = (job.get("url"), job.get("id")) if isinstance(job, dict) else (job, evaluation.get("job_id"))
    if on_hub(url):
        return link(url, "logs")
    return code(job_id) if job_id else text(url) if url else "-"


def run_status(record, job: dict | None) -> str:
    if isinstance(record, Unreadable):
        return "Unreadable"
    if record and record.get("status") == "completed":
        return "Completed"
    if job:
        stage = job.get("stage") or "UNKNOWN"
        return STAGES.get(stage) or (stage.title() if re.fullmatch(r"[A-Z_]+", stage) else "Unknown")
    if record and record.get("status") == "failed":  # a run by hand whose training raised
        return "Failed"
    return "In progress" if record else "Planned"


def timeout_text(job: dict | None, plan: dict | None) -> str:
    job = job or {}
    if job.get("timeout_s"):
        return compact(job["timeout_s"])
    return text((job.get("labels") or {}).get("timeout") or (plan or {}).get("timeout") or "none")


def hardware_text(record: dict | None, job: dict | None, plan: dict | None) -> str:
    if record:
        hardware = record.get("hardware") or {}
        gpus = hardware.get("gpus") or 0
        device = f"{gpus} x {hardware.get('gpu')}" if gpus > 1 else hardware.get("gpu") or "CPU"
        if (hardware.get("nodes") or 1) > 1:
            device = f"{hardware['nodes']} nodes, {device} each"
        if hardware.get("peak_memory_gb"):
            device += f", {hardware['peak_memory_gb']} GB peak"
        return text(f"{hardware.get('flavor') or (job or {}).get('flavor') or '-'} ({device})")
    if plan:
        return text(f"{plan['flavor']} ({plan.get('gpus', 1)} x {plan.get('gpu')}, {plan.get('strategy', 'single')})")
    return text((job or {}).get("flavor") or "-")


def evaluation_ran(record: dict) -> bool:
    """Whether evaluation during training ran: eval losses logged, or (while training) an eval split to log them from.
    An eval strategy alone says nothing when there was no eval split or no step reached eval_steps."""
    config, history = record["config"], record.get("log_history") or []
    if config.get("eval_strategy") in (None, "no"):
        return False
    if any(e.get("eval_loss") is not None for e in history) or \
            ((record.get("metrics") or {}).get("final") or {}).get("eval_loss") is not None:
        return True
    dataset = record.get("dataset") or {}
    return record.get("status") == "running" and bool(dataset.get("eval_rows") or dataset.get("eval_ratio"))


def eval_and_save(config: dict, evaluated: bool) -> str:
    save = f"every {config.get('save_steps')} steps"
    if not evaluated:
        every = f"no eval, save {save}"
    elif config.get("eval_strategy") == "steps" and config.get("eval_steps") not in (None, config.get("save_steps")):
        every = f"eval every {config['eval_steps']} steps, save {save}"
    elif config.get("eval_strategy") == "epoch":
        every = f"eval every epoch, save {save}"
    else:
        every = save
    return text(f"{every}, hub_strategy={config.get('hub_strategy')}, keep {config.get('save_total_limit')}")


def flag(value) -> str:
    return str(bool(value)).lower()


def number(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else text(value)


def effective_batch(batch, accumulation, processes) -> str:
    return f"{batch} / {accumulation} / {batch * accumulation * processes if batch and accumulation else '-'}"


def length_row(method: str, lengths: dict) -> tuple[str, str]:
    """GRPO's length is the completion's it generates; SFT's and DPO's the whole sequence's."""
    if method == "grpo":
        return "Max completion length", number(lengths.get("max_completion_length") or "-")
    return "Max length", number(lengths.get("max_length") or "-")


def dataset_name(name, config) -> str:
    return code(name) + (f" (configuration {code(config)})" if config else "")


def record_rows(record: dict) -> list[tuple[str, str]]:
    config, dataset, hardware = record["config"], record.get("dataset") or {}, record.get("hardware") or {}
    split = (f"configuration {code(dataset['config'])}, " if dataset.get("config") else "") \
        + text(dataset.get("split") or "train")
    if dataset.get("eval_ratio"):
        split += f", {dataset['eval_ratio']:.0%} eval split"
    mapping = dataset.get("mapping")
    if isinstance(mapping, dict):
        mapping = ",".join(f"{new}={old}" for new, old in mapping.items())
    processes = hardware.get("world_size") or hardware.get("processes") or 1
    peft = record.get("peft") or "none"
    rows = [("Method", text(METHODS.get(record["method"], record["method"])
                            + (f", {peft.upper()}" if peft != "none" else ""))),
            ("Model", code(record["base_model"])),
            ("Dataset", f"{code(dataset.get('name'))} ({split}, {number(dataset.get('rows'))} rows)"
             + (f", mapping {code(mapping)}" if mapping else "")
             + (f", converted from {text(dataset['convert'])}" if dataset.get("convert") else "")),
            length_row(record["method"], config),
            ("Epochs", number(config.get("num_train_epochs")))]
    if (config.get("max_steps") or -1) > 0:
        rows.append(("Steps", f"{config['max_steps']} steps"))
    rows += [("Per-device batch / grad. accumulation / effective",
              effective_batch(config.get("per_device_train_batch_size"), config.get("gradient_accumulation_steps"),
                              processes)),
             ("Learning rate / weight decay / warmup", " / ".join(number(config.get(key)) for key in
                                                                   ("learning_rate", "weight_decay", "warmup_steps"))),
             ("Eval and save", eval_and_save(config, evaluation_ran(record))),
             ("Precision / gradient checkpointing / packing",
              f"{'bf16' if config.get('bf16') else 'fp16' if config.get('fp16') else 'fp32'} / "
              f"{flag(config.get('gradient_checkpointing'))} / {flag(config.get('packing'))}")]
    if record.get("loss_masking"):
        rows.append(("Loss on", text(record["loss_masking"])))
    rows.append(("Hub repo", code(record["hub_repo"]) if record.get("hub_repo")
                 else f"local: {code(record.get('output_dir'))}"))
    return rows


def plan_rows(plan: dict) -> list[tuple[str, str]]:
    peft = plan.get("peft") or "none"
    processes = (plan.get("gpus") or 1) * (plan.get("nodes") or 1)
    cost = f"${plan['cost_usd']:.2f}" if plan.get("cost_usd") is not None else "-"
    lengths = plan | {"max_completion_length": plan.get("max_completion_length")
                      or training_flag(plan, "--max_completion_length")}
    dataset = [("Dataset", dataset_name(plan["dataset"], plan.get("dataset_config")))] if plan.get("dataset") else []
    return [("Method", text(METHODS.get(plan["method"], plan["method"]) + (f", {peft.upper()}" if peft != "none" else ""))),
            ("Model", code(plan["model"])), *dataset,
            length_row(plan["method"], lengths),
            ("Epochs", number(plan.get("epochs"))),
            ("Per-device batch / grad. accumulation / effective",
             effective_batch(plan.get("per_device_train_batch_size"), plan.get("gradient_accumulation_steps"),
                             processes)),
            ("Precision", text(plan.get("precision") or "-")),
            ("Estimated time / cost", f"{minutes(plan['time_hours'] * 3600)} / {cost}")]


def training_flag(plan: dict, flag: str) -> str | None:
    """A flag's value among the trainer flags plan.py chose (plan.json's training_args)."""
    args = plan.get("training_args") or []
    return args[args.index(flag) + 1] if flag in args[:-1] else None


def trackio_text(trackio: dict, job: dict | None) -> str:
    """The Space dashboard opened on the run (trackio's own query parameters), or the local store it logged to."""
    project, run = trackio.get("project"), trackio.get("run")
    space = hub_url(trackio.get("space"), "spaces/")
    if space:
        query = urlencode({"project": project, "runs": run} if run else {"project": project})
        return link(f"{space}?{query}", f"project {project}, run {run}")
    from huggingface_hub import constants

    store = (job or {}).get("trackio_dir") or os.environ.get("TRACKIO_DIR") or str(Path(constants.HF_HOME) / "trackio")
    return (f"project {code(project)}, run {code(run)} in the local store {code(store)}: "
            + code(f'trackio show --project "{project}"'))


def completed_text(record: dict) -> str:
    steps, metrics = record.get("steps") or {}, record.get("metrics") or {}
    final = metrics.get("final") or {}
    line = f"Completed: step {steps.get('done')}/{steps.get('total')}"
    if final.get("loss") is not None:
        first = metrics.get("first_loss")
        line += f", final loss {final['loss']:.4g}" + (f" (from {first:.4g})" if first else "")
    if final.get("eval_loss") is not None:
        line += f", eval loss {final['eval_loss']:.4g}"
    if final.get("reward") is not None:
        line += f", reward {final['reward']:.4g}"
    return line + f", finished {moment(record.get('finished_at'))}."


def progress_text(status: str, record: dict | None, job: dict | None, plan: dict | None) -> str:
    if status == "Planned":
        cost = f", ~${plan['cost_usd']:.2f}" if plan.get("cost_usd") is not None else ""
        return (f"Planned, not submitted yet: about {minutes(plan['time_hours'] * 3600)}{cost} on "
                f"{text(plan['flavor'])}, timeout {text(plan.get('timeout') or 'none')}.")
    if status == "Completed" and record and record.get("status") == "completed":
        return completed_text(record)
    if not job:
        return f"{status}: started {moment((record or {}).get('started_at'))}; no job of this experiment runs it."
    elapsed = job.get("elapsed_s")
    line = status + (f" after {minutes(elapsed)}" if elapsed is not None and status != "In progress" else "")
    line += f" ({minutes(elapsed)} so far)" if elapsed is not None and status == "In progress" else ""
    if job.get("step") is not None:
        line += f": step {job['step']}/{job.get('total_steps')}"
        if job.get("loss") is not None:
            line += f", loss {job['loss']:.4g}" + (f" (from {job['loss_start']:.4g})" if job.get("loss_start") else "")
        if job.get("reward") is not None:
            line += f", reward {job['reward']:.4g}"
        if job.get("eta_s") is not None and status == "In progress":
            line += f", about {minutes(job['eta_s'])} left"
    diagnosis = job.get("diagnosis")
    if diagnosis:
        line += f".\nWhat went wrong: {text(diagnosis.get('problem'))}. Fix: {text(diagnosis.get('fix'))}"
    return line + "."


def time_and_cost(record: dict | None, job: dict | None, plan: dict | None, status: str) -> str | None:
    """An ended run's time and cost against its plan's estimate: the job's run time (what is billed, startup
    included as in the estimate), else the record's, priced at the plan's rate when it ran on the planned flavor."""
    seconds = (job or {}).get("elapsed_s") or run_seconds(record)
    if status not in ENDED or not plan or not seconds or seconds < 0:
        return None
    flavor = ((record or {}).get("hardware") or {}).get("flavor") or (job or {}).get("flavor")
    rate = hourly_rate(plan)
    if flavor == plan["flavor"] and rate:
        spent = f"{minutes(seconds)} and ${seconds / 3600 * rate:.2f} at ${rate:.2f}/hour"
    elif flavor == "local":
        spent = f"{minutes(seconds)} on a local machine (no Jobs cost)"
    else:
        spent = f"{minutes(seconds)} on {text(flavor or 'an unrecorded flavor')} (not the planned flavor: no price)"
    cost = f" and ${plan['cost_usd']:.2f}" if plan.get("cost_usd") is not None else ""
    return f"Time and cost: {spent}; estimated {minutes(plan['time_hours'] * 3600)}{cost} on {text(plan['flavor'])}."


def run_seconds(record: dict | None) -> float | None:
    try:
        started, finished = (datetime.fromisoformat(record[key]) for key in ("started_at", "finished_at"))
        return (finished - started).total_seconds()
    except (KeyError, TypeError, ValueError):  # no record, not finished, or a stamp that is no date
        return None


def hourly_rate(plan: dict) -> float | None:
    """What the planned hardware costs an hour, all its nodes together."""
    if plan.get("price_per_hour") is not None:
        return plan["price_per_hour"] * (plan.get("nodes") or 1)
    return plan["cost_usd"] / plan["time_hours"] if plan.get("cost_usd") and plan["time_hours"] > 0 else None


def logs_text(entry: dict, record: dict | None, job: dict | None, status: str) -> str:
    recorded_job = (record or {}).get("job") or {}
    job_id, url = (job or {}).get("id") or entry.get("job"), (job or {}).get("url") or recorded_job.get("url")
    if on_hub(url):
        return link(url, f"job {job_id}")
    if job_id:
        return f"job {code(job_id)}" + (f": {code(url)}" if url else "") + f" ({code(f'jobs.py logs {job_id}')})"
    return "not submitted yet" if status == "Planned" else "no job: the logs are where the run was started"


def interval_text(evaluation: dict) -> str:
    bounds = interval(evaluation)
    return f" (95% CI {bounds[0]:.3f}-{bounds[1]:.3f})" if bounds else ""


def problems_text(evaluation: dict) -> str:
    """'164 problems', or the part --limit measured: 'the first 20 of 164 problems (--limit)' (HumanEval's), 'a
    seeded sample of 200 of 1319 problems (--limit)' (GSM8K's)."""
    if not evaluation.get("limit"):
        return f"{evaluation['n']} problems" if evaluation.get("n") else ""
    of = f" of {evaluation['of']}" if evaluation.get("of") else ""
    known = BENCHMARKS.get(evaluation["benchmark"])
    return f"{known.limited if known else 'the first'} {evaluation.get('n') or evaluation['limit']}{of} problems (--limit)"


def score_cell(evaluation: dict) -> str:
    limited = f", {problems_text(evaluation)}" if evaluation.get("limit") else ""
    return f"{score(evaluation):.3f}{interval_text(evaluation)}{limited}"


def contamination_note(record: dict | None, evaluation: dict) -> str | None:
    """What the trainer found of the benchmark in its training data (run.json's contamination), for an evaluation of
    the fine-tuned model: nothing, rows left out, or rows kept and the score on the problems they do not touch."""
    found = (record or {}).get("contamination") or {}
    overlapping, rows = found.get("problems_overlapping"), found.get("rows_overlapping")
    if found.get("benchmark") != evaluation["benchmark"] or overlapping is None or of_base(evaluation, record):
        return None
    ngram = f"{found['ngram']}-gram" if found.get("ngram") else "n-gram"
    total = evaluation.get("of") or (evaluation.get("n") if not evaluation.get("limit") else None)
    name = text(benchmark_name(found["benchmark"]))
    if not overlapping:
        return f"training data shares no {ngram} with the{f' {total}' if total else ''} {name} problems"
    problems = f"{overlapping}{f' of {total}' if total else ''} {name} problems"
    if rows and found.get("rows_dropped") == rows:
        return f"the {rows} training rows sharing {ngram}s with {problems} were left out (--drop_contaminated)"
    kept = {task: share for task, share in shares(evaluation).items() if task not in set(found.get("problems") or [])}
    clean = f"; {sum(kept.values()) / len(kept):.3f} on the other {len(kept)} problem{'s' * (len(kept) > 1)}" \
        if found.get("problems") and 0 < len(kept) < len(shares(evaluation)) else ""
    return (f"training data shares {ngram}s with {problems}" + (f" ({rows} training rows)" if rows is not None else "")
            + f": the score may be inflated{clean}")


def evaluation_lines(entry: dict, record: dict | None, status: str) -> list[str]:
    evaluations = (record or {}).get("evaluations") or []
    lines = []
    for e in evaluations:
        problems, note = problems_text(e), contamination_note(record, e)
        lines.append(f"- {benchmark_title(e)}: {score(e):.3f}{interval_text(e)}" + (f" on {problems}" if problems else "")
                     + f", {moment(e.get('date'))}" + (f" (base model {code(e['model'])})" if of_base(e, record) else "")
                     + (f"; {note}" if note else ""))
    done = {e["benchmark"] for e in evaluations if not of_base(e, record)}
    lines += [f"- {benchmark_title(b)}: TBD ({command_code(eval_command(b, run_target(entry, record)))})"
              for b in to_evaluate(entry, record, status) if b not in done]
    if not evaluations and status not in NOT_EVALUATED and is_test_run(record, entry.get("plan")):
        lines.append("- none planned: a quick test run")
    return lines or ["-"]


def export_lines(record: dict | None) -> list[str]:
    """The GGUF files convert_gguf.py made of the run: what each is, how it agreed with the original, where it is."""
    lines = []
    for export in (record or {}).get("exports") or []:
        size = f"{export['size_mb']:.1f} MB" if export.get("size_mb") is not None else "size unknown"
        parity = export.get("parity") or export.get("golden_agree") or "not recorded"
        repo = export.get("repo")
        where = link(hub_url(repo), f"pushed to {repo}") if repo else "not pushed (local files)"
        lines.append(f"- {code(export.get('file') or '-')} ({text(export.get('quant') or '-')}, {size}): greedy answer "
                     f"against the original {text(parity)}; {where}, {moment(export.get('date'))}")
    return lines


def heading(entry: dict, started, status: str) -> str:
    return f"# `{entry['name']}` - `{moment(started)}` - {code(status)}"


def run_section(entry: dict, record, job: dict | None, status: str, plot: tuple[str, str] | None) -> str:
    if isinstance(record, Unreadable):
        return f"{heading(entry, None, status)}\nunreadable record ({text(record.why)}): {code(entry.get('source'))}"
    plan = entry.get("plan")
    started = (record or {}).get("started_at") or (job or {}).get("created_at") or entry.get("planned_at")
    rows = record_rows(record) if record else plan_rows(plan) if plan else []
    rows.append(("Hardware / timeout", f"{hardware_text(record, job, plan)} / {timeout_text(job, plan)}"))
    trackio = (record or {}).get("trackio") or (job or {}).get("trackio") or {}
    if trackio:
        rows.append(("Trackio", f"project {code(trackio.get('project'))}, run {code(trackio.get('run'))}"))
    spent = time_and_cost(record, job, plan, status)
    lines = [heading(entry, started, status), "## Training parameters",
             "| Parameter | Value |\n|---|---|\n" + "\n".join(f"| {key} | {value} |" for key, value in rows),
             "## Run status", progress_text(status, record, job, plan) + (f"\n{spent}" if spent else ""),
             "## Run logs", logs_text(entry, record, job, status), "## Trackio logs",
             trackio_text(trackio, job) if trackio else "-"]
    if plot:
        lines.append(f"![{plot[1]} of {entry['name']}]({plot[0]})")
    lines += ["## Evaluation"] + evaluation_lines(entry, record, status)
    exports = export_lines(record)
    return "\n".join(lines + (["## GGUF exports"] + exports if exports else []))


def of_base(evaluation: dict, record: dict | None) -> bool:
    """An evaluation recorded with a run but made of its base model (eval_humaneval.py --model BASE --run RUN)."""
    return bool(record and evaluation.get("model") and evaluation["model"] == record.get("base_model")
                and not evaluation.get("revision") and not evaluation.get("subfolder"))


def is_test_run(record: dict | None, plan: dict | None) -> bool:
    """A quick test run: nothing to evaluate. Its plan says so when it has one (plan.py's test_run); else its record:
    a run cut by --max_samples, or to a positive --max_steps of 50 or fewer. A run cut by neither is never a test
    run, however few its rows (a small dataset is not a test); a job whose record is not written yet cannot tell."""
    if (plan or {}).get("test_run") is not None:
        return plan["test_run"]
    steps = ((record or {}).get("config") or {}).get("max_steps")
    return ((record or {}).get("dataset") or {}).get("max_samples") is not None or 0 < (steps or 0) <= TEST_RUN_STEPS


def fitting_benchmarks(record: dict | None, plan: dict | None) -> list[str]:
    """The benchmarks that measure what a run trained for: GSM8K for math, HumanEval for code. A GRPO run is what it
    was rewarded for (its logged reward functions, else the plan's --reward_funcs, else its data), and gets neither
    when that says neither; an SFT or DPO run is math when its data is (converted from gsm8k, or a math dataset's
    name), code when its data's name says so or it is not math (the coding experiment is the skill's default)."""
    record, plan = record or {}, plan or {}
    dataset = record.get("dataset") or {}
    name = dataset.get("name") or plan.get("dataset") or ""
    rewards = set(reward_curves(record)) - {"reward"} or {
        entry.strip().rpartition(":")[2] for entry in (training_flag(plan, "--reward_funcs") or "").split(",")
        if entry.strip()}
    grpo = (record or plan).get("method") == "grpo"
    if grpo and rewards:
        maths, coding = any(MATH_REWARDS.search(r) for r in rewards), any("code" in r for r in rewards)
    else:
        maths = (dataset.get("convert") or training_flag(plan, "--convert")) == "gsm8k" or bool(MATH_DATA.search(name))
        coding = bool(CODE_DATA.search(name)) or not (maths or grpo)
    return [benchmark for benchmark, fits in (("humaneval", coding), ("gsm8k", maths)) if fits]


def to_evaluate(entry: dict, record, status: str) -> list[str]:
    """The benchmarks a run gets a TBD row for: none when it has no model to evaluate or is a quick test run, else
    those that measure what it trained for."""
    record, plan = readable(record), entry.get("plan")
    return [] if status in NOT_EVALUATED or is_test_run(record, plan) else fitting_benchmarks(record, plan)


def run_target(entry: dict, record) -> str | None:
    """Where a run's model is, for an evaluation's --model and --run: its Hub repo, else its output dir, else where
    its job writes (None: not known before the job starts)."""
    record = readable(record) or {}
    return record.get("hub_repo") or record.get("output_dir") or entry.get("source")


def eval_command(benchmark: str, model: str | None, base: bool = False) -> str | None:
    """The command that makes a TBD evaluation: a run's, recorded into its run.json; the base model's, into the file
    `report.py --evals` takes (None for a benchmark no bundled script evaluates)."""
    if benchmark not in BENCHMARKS:
        return None
    script, target = f"uv run scripts/{BENCHMARKS[benchmark].script}", shlex.quote(model) if model else "USER/MODEL"
    return f"{script} --model {target} --json > base_{benchmark}.json" if base else \
        f"{script} --model {target} --run {target}"


@dataclass(frozen=True)
class Comparison:
    """A fine-tuned evaluation against the base model's: the difference with its interval (paired over `problems`
    when both recorded per-problem outcomes, else the range the two 95% intervals allow), or why they are not
    compared (`refused`, with the base model's protocol flags to rerun with when the protocols differ)."""
    base: dict
    score: float
    base_score: float
    difference: float | None = None
    interval: tuple[float, float] | None = None
    problems: int | None = None
    refused: str | None = None
    rerun_flags: str | None = None
    protocol_unrecorded: bool = False

    @property
    def verdict(self) -> str | None:
        return verdict(*self.interval) if self.interval else None


@dataclass(frozen=True)
class Row:
    """A row of the experiment's evaluations table: an evaluation made (a fine-tuned one with its comparison to the
    base model's), or one to make (TBD) and the command that makes it."""
    run: str | None  # None: the base model
    benchmark: str
    evaluation: dict | None  # None: TBD
    model: str | None
    command: str | None = None
    against: Comparison | None = None


def base_evaluations(sections: list, base_evals: list[dict]) -> list[dict]:
    """The base model's evaluations: given with --evals, and recorded with a run (of_base)."""
    return base_evals + [e for _, record, _, _ in sections for e in (readable(record) or {}).get("evaluations") or []
                         if of_base(e, readable(record))]


def evaluation_rows(sections: list, base_evals: list[dict]) -> list[Row]:
    """The base model's rows (its evaluations, or a TBD row for a benchmark a run has a row for), then each run's:
    its evaluations, each set against the base model's of the same benchmark, and a TBD row for each it is meant to
    get."""
    rows = []
    for entry, record, _, status in sections:
        record = readable(record)
        model = (record or {}).get("hub_repo") or (record or {}).get("output_dir")
        evaluations = [e for e in (record or {}).get("evaluations") or [] if not of_base(e, record)]
        rows += [Row(entry["name"], e["benchmark"], e, (e.get("model") or model or "-") + checkpoint(e))
                 for e in evaluations]
        done = {e["benchmark"] for e in evaluations}
        rows += [Row(entry["name"], b, None, model, eval_command(b, run_target(entry, record)))
                 for b in to_evaluate(entry, record, status) if b not in done]
    bases, base_model = base_evaluations(sections, base_evals), base_model_of(sections, base_evals)
    base_rows = []
    for benchmark in dict.fromkeys([e["benchmark"] for e in bases] + [row.benchmark for row in rows]):
        done = [e for e in bases if e["benchmark"] == benchmark]
        base_rows += [Row(None, benchmark, e, e["model"]) for e in done]
        if not done and base_model:
            base_rows.append(Row(None, benchmark, None, base_model, eval_command(benchmark, base_model, base=True)))
    return base_rows + [against_base(row, bases) for row in rows]


def against_base(row: Row, bases: list[dict]) -> Row:
    same = [base for base in bases if base["benchmark"] == row.benchmark]
    if row.evaluation is None or not same:
        return row
    return replace(row, against=compare(row.evaluation, baseline(row.evaluation, same)))


def checkpoint(evaluation: dict) -> str:
    """Which checkpoint of the run was evaluated, when not its final model: @revision and /subfolder."""
    return (f"@{evaluation['revision']}" if evaluation.get("revision") else "") + \
        (f"/{evaluation['subfolder']}" if evaluation.get("subfolder") else "")


# ---------------------------------------------------------------- comparisons with the base model


def shares(evaluation: dict) -> dict:
    return evaluation.get("per_problem") or {}


def t_quantile(degrees: int) -> float:
    """Student's t 97.5% quantile: the expansion of Abramowitz and Stegun 26.7.5 around the normal's 1.96, within 1%
    from 3 degrees of freedom; below that it falls short, and the exact values are given."""
    if degrees <= 2:
        return {1: 12.7062, 2: 4.3027}[degrees]
    z, n = 1.959964, degrees
    return z + (z ** 3 + z) / (4 * n) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * n ** 2) + \
        (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * n ** 3)


def paired_difference(tuned: dict, base: dict) -> tuple[float, float, float, int] | None:
    """The mean of tuned - base per problem over the problems both evaluated, its 95% interval and how many
    problems (None under 2). Half a problem is added to each cell of the paired table (a tie, and half a win each
    way: Agresti and Min, 2005), so identical outcomes or a handful of problems do not give a zero-width interval."""
    differences = [tuned[task] - base[task] for task in sorted(tuned.keys() & base.keys())]
    n = len(differences)
    if n < 2:
        return None
    adjusted = sum(differences) / (n + 2)
    variance = (sum(d * d for d in differences) + 1) / (n + 2) - adjusted ** 2
    half = t_quantile(n - 1) * math.sqrt(variance / (n + 2))
    return sum(differences) / n, max(-1.0, adjusted - half), min(1.0, adjusted + half), n


def verdict(low: float, high: float) -> str:
    return "better" if low > 0 else "worse" if high < 0 else "no difference this evaluation can detect"


def protocol_differences(tuned: dict, base: dict) -> list[str]:
    """The protocol fields (how the model was prompted and sampled) that differ; none when either is unrecorded."""
    ours, theirs = tuned.get("protocol"), base.get("protocol")
    if not (ours and theirs):
        return []
    return sorted(key for key in ours.keys() | theirs.keys() if ours.get(key) != theirs.get(key))


def baseline(evaluation: dict, bases: list[dict]) -> dict:
    """The base model evaluation to compare with: under the same protocol, with the most problems in common, the
    latest."""
    return max(bases, key=lambda base: (not protocol_differences(evaluation, base),
                                        len(shares(evaluation).keys() & shares(base).keys()), str(base.get("date"))))


def compare(tuned: dict, base: dict) -> Comparison:
    """The fine-tuned evaluation against the base model's: a paired difference over the problems both evaluated,
    else the two intervals' verdict, else the difference alone; refused under different protocols or problems."""
    scores = {"base": base, "score": score(tuned), "base_score": score(base)}
    differing = protocol_differences(tuned, base)
    if differing:
        known = BENCHMARKS.get(tuned["benchmark"])
        flags = " ".join(f"--{key} {number(base['protocol'][key])}" for key in (known.flags if known else ())
                         if isinstance(base["protocol"].get(key), NUMBER))
        return Comparison(**scores, refused=f"measured under different protocols ({', '.join(differing)} differ)",
                          rerun_flags=flags)
    unrecorded = bool(tuned.get("protocol")) != bool(base.get("protocol"))
    if shares(tuned) and shares(base):
        paired = paired_difference(shares(tuned), shares(base))
        if paired is None:
            return Comparison(**scores, refused="fewer than 2 problems were evaluated for both")
        difference, low, high, n = paired
        common = shares(tuned).keys() & shares(base).keys()
        if not len(shares(tuned)) == len(shares(base)) == n:  # the scores on the problems both evaluated
            scores |= {"score": sum(shares(tuned)[task] for task in common) / n,
                       "base_score": sum(shares(base)[task] for task in common) / n}
        return Comparison(**scores, difference=difference, interval=(low, high), problems=n,
                          protocol_unrecorded=unrecorded)
    if None not in (tuned.get("n"), base.get("n")) and problems_text(tuned) != problems_text(base):
        return Comparison(**scores, refused=f"evaluated on different problems ({problems_text(tuned)} against "
                                            f"{problems_text(base)}) without per-problem outcomes to pair")
    ours, theirs = interval(tuned), interval(base)
    return Comparison(**scores, difference=score(tuned) - score(base), protocol_unrecorded=unrecorded,
                      interval=(ours[0] - theirs[1], ours[1] - theirs[0]) if ours and theirs else None)


def comparison_text(comparison: Comparison, benchmark: str) -> str:
    """The comparison in one sentence: the paired difference and its verdict, the verdict the two intervals allow,
    the difference alone, or why the two are not compared."""
    if comparison.refused:
        rerun = "" if comparison.rerun_flags is None else \
            f"; rerun both with this {script_of(benchmark)} and the same flags" + \
            (f" (the base model's: {code(comparison.rerun_flags)})" if comparison.rerun_flags else "")
        return f"not compared with the base model: {text(comparison.refused)}{rerun}."
    unknown = " One of the two records no protocol: they may have been prompted differently." \
        if comparison.protocol_unrecorded else ""
    ours, theirs, difference = comparison.score, comparison.base_score, comparison.difference
    if comparison.problems:
        low, high = comparison.interval
        return (f"{ours:.3f} against the base model's {theirs:.3f} on the {comparison.problems} problems both "
                f"evaluated, a difference of {difference:+.3f} (paired 95% CI {low:+.3f} to {high:+.3f}): "
                f"{comparison.verdict}.{unknown}")
    head = f"{ours:.3f} against the base model's {theirs:.3f}, a difference of {difference:+.3f}"
    if comparison.interval:
        overlap = "overlap" if comparison.verdict.startswith("no difference") else "do not overlap"
        return f"{head} (no per-problem outcomes to pair; the 95% intervals {overlap}): {comparison.verdict}.{unknown}"
    return (f"{head}; no verdict: no 95% interval recorded (an older evaluation: evaluate again with "
            f"{script_of(benchmark)}, which records one).{unknown}")


def comparison_lines(rows: list[Row], records: dict) -> list[str]:
    """One line for each fine-tuned evaluation of a benchmark the base model was evaluated on."""
    lines = []
    for row in rows:
        if row.against:
            note = contamination_note(records.get(row.run), row.evaluation)
            lines.append(f"- {code(row.run + checkpoint(row.evaluation))} on {text(benchmark_name(row.benchmark))}: "
                         f"{comparison_text(row.against, row.benchmark)}" + (f" Note: {note}." if note else ""))
    return lines


def todo_lines(rows: list[Row], request: Request) -> list[str]:
    """The command that makes each TBD evaluation; the base model's then goes into the report with --evals."""
    lines = []
    for row in rows:
        if row.command and row.run is None:
            refresh = f"uv run scripts/report.py --experiment {request.experiment} --evals base_{row.benchmark}.json" \
                + ("" if request.output_dir == Path("training_reports")
                   else f" --output_dir {shlex.quote(str(request.output_dir))}")
            lines.append(f"- {code(f'base-{row.benchmark}')}: {command_code(row.command)}, then {code(refresh)}")
        elif row.command:
            lines.append(f"- {code(row.run)} on {text(benchmark_name(row.benchmark))}: {command_code(row.command)}")
    return lines


def row_title(row: Row) -> str:
    name = code(f"base-{row.benchmark}") if row.run is None else f"`{row.run}`"
    if row.evaluation is None:
        return f"{name} - `-` - `TBD`"
    return f"{name} - `{moment(row.evaluation.get('date'))}` - `Completed`"


def evaluations_table(rows: list[Row], records: dict, request: Request) -> str:
    lines = ["# Experiment evaluations", "| Run | Benchmark | Score | Eval job | Model |", "|---|---|---|---|---|"]
    for row in rows:
        if row.evaluation is None:
            lines.append(f"| {row_title(row)} | {benchmark_title(row.benchmark)} | TBD | - | {model_cell(row.model)} |")
        else:
            lines.append(f"| {row_title(row)} | {benchmark_title(row.evaluation)} | {score_cell(row.evaluation)} | "
                         f"{job_cell(row.evaluation)} | {model_cell(row.model)} |")
    compared, todo = comparison_lines(rows, records), todo_lines(rows, request)
    return "\n".join(lines + (["", "## Against the base model", *compared, "", PAIRED_NOTE] if compared else [])
                     + (["", "## To evaluate", *todo] if todo else []))


# ---------------------------------------------------------------- curves


def finite(value) -> bool:
    return isinstance(value, NUMBER) and not isinstance(value, bool) and math.isfinite(value)


def curve(history: list[dict], key: str) -> list[tuple]:
    return [(e["step"], e[key]) for e in history if finite(e.get(key)) and finite(e.get("step"))]


def reward_curves(record: dict) -> dict[str, list[tuple]]:
    """A GRPO run's rewards by step: the mean ("reward") and each reward function's (TRL's rewards/<name>/mean)."""
    if record.get("method") != "grpo":
        return {}
    history = record.get("log_history") or []
    names = {key: "reward" if key == "reward" else REWARD_KEY.fullmatch(key).group(1)
             for entry in history for key in entry if key == "reward" or REWARD_KEY.fullmatch(key)}
    curves = {name: curve(history, key) for key, name in names.items()}
    return {name: points for name, points in curves.items() if points}


def curves_plot(record: dict, name: str, target: Path) -> str | None:
    """The loss curve, and a GRPO run's rewards beside it, as a PNG; what it shows (None: nothing to plot)."""
    history = record.get("log_history") or []
    train, evals, rewards = curve(history, "loss"), curve(history, "eval_loss"), reward_curves(record)
    if not (train or rewards):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2 if rewards else 1, figsize=(11 if rewards else 6, 3.2), dpi=100, squeeze=False)
    loss_axis = axes[0][0]
    if train:
        loss_axis.plot(*zip(*train), label="train loss")
    if evals:
        loss_axis.plot(*zip(*evals), marker="o", label="eval loss")
    loss_axis.set_ylabel("loss")
    for label, points in rewards.items():
        axes[0][1].plot(*zip(*points), label="mean reward" if label == "reward" else label,
                        linewidth=2 if label == "reward" else 1)
    if rewards:
        axes[0][1].set_ylabel("reward")
    for axis in axes[0]:
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend()
    figure.suptitle(name)
    figure.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target)
    plt.close(figure)
    return "loss and reward curves" if rewards else "loss curve"


def base_model_of(sections: list, base_evals: list[dict]) -> str | None:
    """The experiment's base model: its first run's, else its first plan's, else the one evaluated with --evals."""
    first = next((readable(record) for _, record, _, _ in sections if readable(record)), None)
    return (first or {}).get("base_model") or next(
        (entry["plan"]["model"] for entry, *_ in sections if entry.get("plan")), None) or next(
        (e["model"] for e in base_evals), None)


def header_block(sections: list, base_evals: list[dict]) -> str:
    """The base model and dataset links."""
    first = next((readable(record) for _, record, _, _ in sections if readable(record)), None)
    base_model = base_model_of(sections, base_evals)
    dataset = ((first or {}).get("dataset") or {}).get("name")
    header = ["# Base model and dataset"]
    if base_model:
        header.append(link(hub_url(base_model), "Base Model") if hub_url(base_model) else
                      f"Base model: {code(base_model)}")
    if dataset:
        header.append(link(hub_url(dataset, "datasets/"), "Dataset") if hub_url(dataset, "datasets/") else
                      f"Dataset: {code(dataset)}")
    return "\n".join(header)


def plot_path(request: Request, name: str) -> str:
    """A run's curves, relative to the report (the link in its section)."""
    return f"{request.experiment}/{name}-loss.png"


def write_plots(request: Request, sections: list) -> dict[str, str]:
    """The curves of each run whose record has losses (or rewards), beside the report: run name -> what they show."""
    plotted = {entry["name"]: readable(record) and curves_plot(record, entry["name"],
                                                                request.output_dir / plot_path(request, entry["name"]))
               for entry, record, _, _ in sections}
    return {name: shown for name, shown in plotted.items() if shown}


def render_report(text_before: str, request: Request, sections: list, base_evals: list[dict], rows: list[Row],
                  plotted: dict[str, str]) -> str:
    """The report with every generated block replaced (or added before the evaluations table); what is outside the
    blocks is kept as it was."""
    report = replace_block(text_before, "header", header_block(sections, base_evals))
    records = {entry["name"]: readable(record) for entry, record, _, _ in sections}
    report = replace_block(report, "evaluations", evaluations_table(rows, records, request))
    for entry, record, job, status in sections:
        plot = (plot_path(request, entry["name"]), plotted[entry["name"]]) if entry["name"] in plotted else None
        report = replace_block(report, f"run {entry['name']}", run_section(entry, record, job, status, plot),
                               before="evaluations")
    return report


def replace_block(report: str, name: str, body: str, before: str | None = None) -> str:
    """Replaces the block `name` in place; a begin marker without its own end (another marker comes first) is not
    a block, so a broken marker can never make a refresh swallow what lies between it and a later block."""
    block = f"{BEGIN.format(name)}\n{body}\n{END.format(name)}"
    pattern = re.compile(re.escape(BEGIN.format(name)) + r"(?:(?!<!-- hflt:).)*?" + re.escape(END.format(name)), re.S)
    if pattern.search(report):
        return pattern.sub(lambda _: block, report)
    if before and BEGIN.format(before) in report:
        index = report.index(BEGIN.format(before))
        return report[:index] + block + "\n\n---\n\n" + report[index:]
    return report.rstrip("\n") + ("\n\n---\n\n" if report.strip() else "") + block + "\n"


def write_atomically(path: Path, content: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(without_tokens(content))
    os.replace(partial, path)


def summary(request: Request, sections: list, rows: list[Row]) -> dict:
    """The --json document: each run with its status, its evaluations (each with its comparison to the base model)
    and the commands of those still to make; the base model's evaluations and those to make."""
    runs = []
    for entry, record, _, status in sections:
        run = {"name": entry["name"], "status": status, "job": entry.get("job"), "source": entry.get("source")}
        if isinstance(record, Unreadable):
            runs.append(run | {"unreadable": record.why})
            continue
        own = [row for row in rows if row.run == entry["name"]]
        runs.append(run | {"test_run": is_test_run(readable(record), entry.get("plan")),
                           "evaluations": [evaluation_summary(row) for row in own if row.evaluation],
                           "to_evaluate": [todo_summary(row) for row in own if row.evaluation is None]})
    base = [row for row in rows if row.run is None]
    return {"report": str(request.report), "runs": runs,
            "base_evaluations": [evaluation_summary(row) for row in base if row.evaluation],
            "base_to_evaluate": [todo_summary(row) for row in base if row.evaluation is None],
            "evaluations": sum(1 for row in rows if row.evaluation)}


def evaluation_summary(row: Row) -> dict:
    evaluation = row.evaluation
    made = {"benchmark": row.benchmark, "metric": metric_of(evaluation), "score": score(evaluation),
            "score_ci95": interval(evaluation), "n": evaluation.get("n"), "of": evaluation.get("of"),
            "limit": evaluation.get("limit"), "model": row.model, "date": evaluation.get("date")}
    return made if row.run is None else made | {"against_base": comparison_summary(row.against)}


def comparison_summary(comparison: Comparison | None) -> dict | None:
    """A comparison as data: the difference, its paired 95% interval (or whether the two intervals overlap) and the
    verdict, or why the two are not compared."""
    if comparison is None:
        return None
    paired, rounded = comparison.problems is not None, comparison.difference
    return {"base_model": comparison.base.get("model"), "base_date": comparison.base.get("date"),
            "score": comparison.score, "base_score": comparison.base_score,
            "difference": None if rounded is None else round(rounded, 4), "paired": paired,
            "problems": comparison.problems,
            "difference_ci95": [round(bound, 4) for bound in comparison.interval] if paired else None,
            "intervals_overlap": None if paired or not comparison.interval else comparison.verdict.startswith("no "),
            "verdict": comparison.verdict, "refused": comparison.refused, "rerun_flags": comparison.rerun_flags,
            "protocol_unrecorded": comparison.protocol_unrecorded}


def todo_summary(row: Row) -> dict:
    return {"benchmark": row.benchmark, "model": row.model, "command": row.command}


def summary_line(result: dict) -> str:
    runs = ", ".join(f"{run['name']} {run['status'].lower()}" for run in result["runs"])
    return f"Report: {result['report']} ({len(result['runs'])} run(s): {runs}; {result['evaluations']} evaluation(s))"


# ---------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", required=True, help="report name: <output_dir>/<experiment>.md")
    parser.add_argument("--runs", nargs="*", default=[], help="run.json files, training output dirs or Hub repos")
    parser.add_argument("--evals", nargs="*", default=[],
                        help="eval_humaneval.py or eval_gsm8k.py --json outputs of the base model")
    parser.add_argument("--plan", help="a plan.py --json output: records a planned run (with --name)")
    parser.add_argument("--name", help="the planned run's name; submit its job with jobs.py --name NAME")
    parser.add_argument("--output_dir", "--out", dest="output_dir", default="training_reports",
                        help="the reports directory (default training_reports; --out is the older spelling)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document: the report, its runs, their evaluations with each one's "
                             "comparison to the base model, and the commands of those still to make")
    return parser


def parse_request(argv: list[str] | None = None) -> Request:
    """The flags as a Request, or BadInput naming the first one that cannot be used."""
    args = build_parser().parse_args(argv)
    if not re.fullmatch(NAME, args.experiment):
        raise BadInput(f"--experiment {args.experiment!r} must be a plain name (letters, digits, '.', '_', '-').")
    if bool(args.plan) != bool(args.name):
        raise BadInput("--plan and --name go together: `report.py --experiment E --plan plan.json --name sft-a10g`.")
    if args.name and not re.fullmatch(NAME, args.name):
        raise BadInput(f"--name {args.name!r} must be a plain name (letters, digits, '.', '_', '-').")
    output_dir = Path(args.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise BadInput(f"--output_dir {output_dir} is a file; pass the reports directory (default training_reports).")
    return Request(args.experiment, tuple(args.runs), tuple(args.evals), args.plan, args.name, output_dir, args.json)


def source_key(source: str) -> str:
    return str(Path(source).expanduser().resolve()) if is_local_source(source) else source


def main():
    request = parse_request()
    # Read everything first: a bad input stops here, before anything is written.
    runs, base_evals = load_state(request.state_path)
    plan = load_plan(request.plan) if request.plan else None
    given = [(source_key(source), load_record(source)) for source in request.runs]
    base_evals += [e for e in map(load_evaluation, request.evals) if e not in base_evals]
    jobs = experiment_jobs(request.experiment)
    before = request.report.read_text() if request.report.exists() else ""

    if plan:
        add_plan(runs, request.name, plan)
    jobs_by_id = {job["id"]: job for job in jobs}
    records = claim_records(runs, given, jobs_by_id)
    claim_jobs(runs, jobs)
    records |= remembered_records(runs, records, jobs_by_id)
    sections = sections_of(runs, records, jobs_by_id)
    rows = evaluation_rows(sections, base_evals)

    plotted = write_plots(request, sections)
    write_atomically(request.report, render_report(before, request, sections, base_evals, rows, plotted))
    write_atomically(request.state_path, json.dumps({"runs": runs, "base_evaluations": base_evals}, indent=2))
    result = summary(request, sections, rows)
    print(without_tokens(json.dumps(result, indent=2) if request.json else summary_line(result)))


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


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    run_cli(main)
