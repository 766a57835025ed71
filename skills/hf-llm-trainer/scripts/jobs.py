# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "huggingface_hub>=2.4,<3",
#     "httpx2>=2,<3",
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
"""Submit, watch and manage training jobs on Hugging Face Jobs (`hf`) or as local detached processes (`local`).

    uv run jobs.py submit --plan plan.json -- scripts/train_sft.py --model_name_or_path Qwen/Qwen3-0.6B ...
    uv run jobs.py status ID            # "Job ID is running (45 min). Step 850/1200 · loss 1.23 (from 2.41) ..."
    uv run jobs.py logs ID [--follow] [--tail N] [--node K]
    uv run jobs.py wait ID
    uv run jobs.py cancel ID
    uv run jobs.py list [--experiment NAME]

Backend: `hf` when a Hugging Face token is available, `local` otherwise or with `--backend local` (no account, no
network). Local jobs run detached in their own process groups with a state directory (spec, status, logs, exit
codes, timings) under the user's cache dir; the timeout is enforced and cancel ends every process: each carries
HFLT_JOB_STATE in its environment, so one that left the job's process groups is found too, and so is a job whose
state directory was deleted. `HF_TOKEN` goes to HF Jobs as a secret, never as a plain environment variable, and is
masked (`[HF_TOKEN]`) in whatever a job prints, on both backends: logs, progress, diagnoses. `--nodes N` runs one job
per node in one network group (HF Jobs) or N local process groups; the person sees one group id. When a job fails
or times out, `status` says what went wrong and what to change; for GRPO it also watches the reward. Against the
plan: `status` says when a job is far behind its estimate, and turns a finished test run's measured speed
(--max_steps, --max_samples) into the full run's time and cost.
"""

import argparse
import contextlib
import functools
import hashlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

TERMINAL = {"COMPLETED", "ERROR", "CANCELED", "TIMEOUT", "DELETED"}
STAGE_ORDER = ["ERROR", "TIMEOUT", "CANCELED", "DELETED", "SCHEDULING", "RUNNING", "COMPLETED"]  # worst first
STATE_ROOT = Path(os.environ.get("HFLT_STATE_DIR") or
                  Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hf-llm-trainer" / "jobs").absolute()
# In the environment of every process a local job starts (its state folder): /proc finds them wherever they went.
MARKER = "HFLT_JOB_STATE"
ID_FORMATS = {"local": r"local-[0-9a-f]{10}", "hf": r"[0-9a-f]{24}", "group": r"group-[0-9a-f]{12}"}
MAIN_PORT = 29500
CLIPPED_RATIO_LIMIT = 0.3  # a third of GRPO's completions cut at the length limit: their rewards mislead
TOKEN_MASK = "[HF_TOKEN]"  # what a token value in a job's output becomes, on both backends
TEST_RUN_FLAGS = ("--max_steps", "--max_samples")  # a trainer run cut short by these tests the full run
NO_CUDA = r"^\[hardware\] (no CUDA device found on a GPU flavor \(.*\): training runs on CPU)"  # the trainers' line
# (kind, log pattern, what went wrong, what to change); the first match wins, so the specific ones come first.
FAILURES = [
    # train_grpo.py's sentence for a reward function that raised, hung or returned something that is not one finite
    # number per completion; the second form is TRL's own, from a trainer without those checks
    ("reward_function", r"error: (reward functions? \S+ .*)|The reward function '([^']+)' returned (\d+) rewards, "
                        r"but (\d+) were expected",
     "a reward function failed",
     "score a few dataset rows with each reward function (python -c, or a test) and make it return one finite "
     "number per completion, quickly"),
    ("out_of_memory", r"CUDA out of memory|OutOfMemoryError|CUBLAS_STATUS_ALLOC_FAILED",
     "the GPU ran out of memory",
     "halve --per_device_train_batch_size and double --gradient_accumulation_steps, lower --max_length, use "
     "--peft lora (or qlora), or re-run plan.py and take the bigger flavor it suggests"),
    ("disk_full", r"No space left on device|Disk quota exceeded",
     "the disk filled up", "lower --save_total_limit, save less often (--save_steps), or skip saving checkpoints "
                           "locally with a bigger flavor"),
    ("dataset_format", r"error: (SFT|DPO|GRPO) needs|KeyError: '(messages|prompt|chosen|rejected|completion|text)'|"
                       r"DatasetGenerationError|ArrowInvalid|JSONDecodeError|--map names columns|--convert \S+ needs|"
                       r"is not a list of \{role, content\} turns",
     "the dataset does not have the shape the trainer expects",
     "run validate_dataset.py --dataset <dataset> and add the --map/--convert flags it prints"),
    ("auth", r"\b401\b.*(Unauthorized|credentials)|Invalid credentials|Invalid user token|\b403\b|"
             r"don't have the rights|Forbidden|token is read-only|Push to \S+ failed",
     "the Hub refused the token (or the push)",
     "use a token with write access to the output namespace (hf auth login, or a fine-grained token with write "
     "scope) and check --hub_model_id; a finished model is kept in the output dir with the command that pushes it"),
    ("nan_loss", r"['\"]loss['\"]: (nan|NaN)|loss is nan|Loss is NaN",
     "the loss became NaN", "lower --learning_rate (e.g. by 10x), use bf16 rather than fp16 where the GPU has it, "
                            "and check the data for empty rows"),
    ("missing_dependency", r"ModuleNotFoundError: No module named '([^']+)'|ImportError: ",
     "a Python package is missing", "submit again with --with <package> (or add it to the script's PEP 723 "
                                    "dependencies)"),
    ("network", r"ConnectionError|ConnectTimeout|ReadTimeout|Temporary failure in name resolution|503 Service|"
                r"DistNetworkError|rendezvous",
     "the Hub or the network failed for a while", "submit again with --resume_from_hub to continue from the last "
                                                 "pushed checkpoint"),
]


# ---------------------------------------------------------------- shared helpers


def parse_timeout(text: str | None) -> int | None:
    if text is None:
        return None
    match = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", str(text).strip())
    if not str(text).strip() or not match or not any(match.groups()):
        raise BadInput(f"--timeout {text!r} is not a duration; write e.g. 45m, 2h, 1h30m or 3600.")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = int(hours * 3600 + minutes * 60 + seconds)
    if total <= 0:
        raise BadInput(f"--timeout {text!r} is not a positive duration; write e.g. 45m or 2h.")
    return total


def compact(seconds: float) -> str:
    """3h, 1h30m, 45m, 20s: the way a timeout is written."""
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")
    return text or "0s"


def duration(seconds: float | None) -> str:
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def iso(moment: float | datetime | None) -> str | None:
    if isinstance(moment, (int, float)):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def clean_lines(text: str) -> list[str]:
    """Log lines as a person reads them: no ANSI escapes, only the last frame of a progress bar, no warnings."""
    lines = []
    for line in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).splitlines():
        line = line.split("\r")[-1].strip()
        if line and not re.search(r"Warning\b|warnings\.warn|^\[(progress|run)\] ", line):
            lines.append(line)
    return lines


def tagged_json(text: str, tag: str) -> list[dict]:
    entries = []
    for raw in re.findall(rf"\[{tag}\] (\{{.*\}})\s*$", text, flags=re.M):
        with contextlib.suppress(ValueError):
            entries.append(json.loads(raw))
    return entries


def metric(value) -> float | None:
    """A logged metric as a number: None for NaN, infinities, null, strings or anything else a log line may hold."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or abs(value) == float("inf"):
        return None
    return float(value)


def progress_from_log(text: str) -> dict:
    """Progress from the trainer's `[progress]` lines. The log is the job's output, so any value can be anything
    (NaN from a bad reward, null, a string): what is not a number reads as None, and no line breaks the status."""
    entries = [e for e in tagged_json(text, "progress")
               if metric(e.get("step")) is not None and metric(e.get("total_steps")) is not None]
    steps = [e for e in entries if "loss" in e or "reward" in e]
    run = tagged_json(text, "run")
    no_cuda = re.search(NO_CUDA, text, flags=re.M)
    result = {"step": None, "total_steps": None, "loss": None, "loss_start": None, "learning_rate": None,
              "eta_s": None, "trackio": None, "output_dir": None, "hub_repo": None, "output": None,
              "tracking_unavailable": next((e.get("unavailable") for e in tagged_json(text, "tracking")), None),
              "no_cuda": no_cuda.group(1) if no_cuda else None, "seconds_per_step": None} | throughput(entries)
    if run:
        trackio = run[-1].get("trackio")
        result.update(trackio=trackio if isinstance(trackio, dict) and trackio else None,
                      output_dir=run[-1].get("output_dir"), hub_repo=run[-1].get("hub_repo"))
        result["output"] = result["hub_repo"] or result["output_dir"]
    if steps:
        first, last = steps[0], steps[-1]
        result.update(step=int(entries[-1]["step"]), total_steps=int(entries[-1]["total_steps"]),
                      loss=metric(last.get("loss")), loss_start=metric(first.get("loss")),
                      learning_rate=metric(last.get("learning_rate")))
        began, now = metric(first.get("time")), metric(last.get("time"))
        if last["step"] > first["step"] and began and now:
            rate = (now - began) / (last["step"] - first["step"])
            result["eta_s"] = round(max(last["total_steps"] - entries[-1]["step"], 0) * rate)
            result["seconds_per_step"] = rate
    rewards = [e for e in entries if "reward" in e]
    if rewards:
        scored = [metric(e["reward"]) for e in rewards if metric(e["reward"]) is not None]
        result.update(reward=metric(rewards[-1]["reward"]), reward_start=scored[0] if scored else None,
                      reward_std=metric(rewards[-1].get("reward_std")),
                      completion_length=metric(rewards[-1].get("completions/mean_length")),
                      clipped_ratio=metric(rewards[-1].get("completions/clipped_ratio")), health=grpo_health(rewards))
    return result


def throughput(entries: list[dict]) -> dict:
    """Training tokens so far and tokens per second between the first and the last progress line that count them
    (TRL logs `num_tokens`)."""
    counted = [e for e in entries if metric(e.get("num_tokens")) is not None and metric(e.get("time")) is not None]
    if len(counted) < 2 or counted[-1]["time"] <= counted[0]["time"]:
        return {"tokens": None, "tokens_per_s": None}
    first, last = counted[0], counted[-1]
    return {"tokens": last["num_tokens"],
            "tokens_per_s": (last["num_tokens"] - first["num_tokens"]) / (last["time"] - first["time"])}


def grpo_health(rewards: list[dict]) -> list[dict]:
    """What a GRPO run's own metrics say is wrong, before it has burnt its budget. Values that are not numbers are
    a finding themselves, never an error."""
    found = []
    values = [metric(e.get("reward")) for e in rewards]
    broken = [(e, v) for e, v in zip(rewards, values) if v is None]
    if broken:
        entry = broken[-1][0]
        shown = "NaN" if entry.get("reward") != entry.get("reward") else json.dumps(entry.get("reward"))[:40]
        found.append({"kind": "reward_not_a_number",
                      "problem": f"the logged reward is not a number ({shown} at step {entry.get('step')}, "
                                 f"{len(broken)} of {len(rewards)} logged steps): a reward function returned NaN, "
                                 "None for every completion, or something else, and the loss means nothing",
                      "fix": "score a few dataset rows with each reward function, make it return one finite number "
                             "per completion (None only where another reward scores it) and train again (train_grpo.py "
                             "now stops at such a reward and names it)"})
    if len(rewards) >= 3 and all(v is not None and abs(v) < 1e-6 for v in values):
        found.append({"kind": "reward_flat_zero",
                      "problem": f"the reward has stayed at 0 for {len(rewards)} logged steps (no completion earns any)",
                      "fix": "check the reward function and the answer format: score a few dataset answers with the "
                             "reward, and make the prompt ask for the format the reward parses"})
    clipped = [metric(e.get("completions/clipped_ratio")) for e in rewards[-3:]]
    clipped = [ratio for ratio in clipped if ratio is not None]
    if clipped and sum(clipped) / len(clipped) >= CLIPPED_RATIO_LIMIT:
        found.append({"kind": "completions_clipped",
                      "problem": f"{sum(clipped) / len(clipped):.0%} of the completions hit the length limit",
                      "fix": "raise --max_completion_length (and re-run plan.py with it), or ask for shorter answers "
                             "in the prompt"})
    return found


def diagnose(text: str, stage: str, exit_code: int | None = None) -> dict | None:
    if stage == "TIMEOUT":
        return {"kind": "timeout", "problem": "the job ran past its timeout",
                "fix": "submit again with a longer --timeout (plan.py's estimate plus a buffer) and --resume_from_hub "
                       "(or --resume locally) to continue from the last checkpoint"}
    if stage != "ERROR":
        return None
    for kind, pattern, problem, fix in FAILURES:
        match = re.search(pattern, text)
        if match:
            if kind == "missing_dependency" and match.groups() and match.group(1):
                module = match.group(1).split(".")[0]
                problem = f"the Python package '{module}' is missing"
                fix = f"submit again with --with {module} (its PyPI name if that differs)"
            if kind == "reward_function":  # the trainer's sentence: 'reward function X <what>; <fix>.'
                sentence = match.group(1) or (f"reward function {match.group(2)} returned {match.group(3)} rewards "
                                              f"for {match.group(4)} completions; return exactly one number per "
                                              "completion, in order.")
                said, _, advice = sentence.strip().rstrip(".").rpartition("; ")
                problem, fix = (said, advice) if said else (sentence.strip().rstrip("."), fix)
            return {"kind": kind, "problem": problem, "fix": fix}
    if exit_code is not None and exit_code < 0:
        return {"kind": "killed", "problem": f"the process was killed by {signal.Signals(-exit_code).name}",
                "fix": "check the machine's memory (the kernel's OOM killer sends SIGKILL) and submit again"}
    lines = clean_lines(text)
    error = [line for line in lines if re.match(r"(\w+\.)*\w*(Error|Exception)\b|error:", line)]
    return {"kind": "unknown", "problem": f"the script failed: {(error or lines or ['(no output)'])[-1][:300]}",
            "fix": "read the end of the logs (jobs.py logs ID --tail 50)"}


def summarize(job_id: str, states: list[dict], **extra) -> dict:
    """One status for one job or a multi-node group: the worst stage of its states, progress from node 0's log,
    and the diagnosis of the first member in that stage. A state: stage, elapsed, text (its log), exit_code."""
    stage = min((m["stage"] for m in states), key=STAGE_ORDER.index)
    lead, elapsed = states[0], states[0]["elapsed"]
    info = {"id": job_id, "stage": stage, "elapsed_s": round(elapsed) if elapsed is not None else None,
            "nodes": len(states)} | progress_from_log(lead["text"])
    if info["eta_s"] is None and info["step"] and elapsed:  # one progress line so far: rate since the start
        info["eta_s"] = round((info["total_steps"] - info["step"]) * elapsed / info["step"])
    rank = next(rank for rank, m in enumerate(states) if m["stage"] == stage)
    info["diagnosis"] = diagnose(states[rank]["text"], stage, states[rank].get("exit_code"))
    if info["diagnosis"] and len(states) > 1:
        info["diagnosis"] |= {"node": rank, "problem": f"node {rank} stopped: {info['diagnosis']['problem']}"}
    info |= extra | {"estimate": planned(extra.get("labels") or {})}
    return info | {"checks": pace_checks(info), "full_run": full_run_projection(info)}


def planned(labels: dict) -> dict | None:
    """The plan's estimates a job carries in its labels: this run's time and, for a test run, the full run's time,
    training tokens and optimizer steps."""
    estimate = {"time_s": label_number(labels, "estimate_s"), "full_run_s": label_number(labels, "full_run_s"),
                "full_run_tokens": label_number(labels, "full_run_tokens"),
                "full_run_steps": label_number(labels, "full_run_steps")}
    return estimate if any(value is not None for value in estimate.values()) else None


def pace_checks(info: dict) -> list[dict]:
    """What says a job is far behind its plan: a GPU flavor training on CPU, no step logged in the time the whole
    run should take, or a pace that ends past the timeout."""
    found, planned_s = [], (info["estimate"] or {}).get("time_s")
    if info.get("no_cuda"):
        found.append({"kind": "no_cuda", "problem": info["no_cuda"],
                      "fix": f"cancel it (jobs.py cancel {info['id']}): it pays the GPU's price for CPU speed; check "
                             "that the job's torch is a CUDA build (no --with torch from a CPU-only index) and submit "
                             "again"})
    elapsed, eta, timeout = info["elapsed_s"], info["eta_s"], info.get("timeout_s")
    if info["stage"] != "RUNNING" or not elapsed:
        return found
    if info["step"] is None and planned_s and elapsed > planned_s:
        found.append({"kind": "no_step", "problem": f"no training step logged after {duration(elapsed)}, longer than "
                                                    f"the plan's estimate for the whole run ({duration(planned_s)})",
                      "fix": f"read the last lines (jobs.py logs {info['id']} --tail 50): a download or dataset "
                             "preparation that stalls, a first step that does not fit, or training on CPU; cancel it "
                             "if it is stuck"})
    elif eta is not None and timeout and elapsed + eta > timeout:
        plan = f"; the plan estimated {duration(planned_s)} for the whole run" if planned_s else ""
        found.append({"kind": "past_timeout",
                      "problem": f"at this pace it needs about {duration(eta)} more, past its timeout of "
                                 f"{compact(timeout)} (in {duration(max(timeout - elapsed, 0))}){plan}",
                      "fix": "compare the flavor and batch flags with the plan's and look for a [hardware] line in "
                             "the logs; to finish, cancel and submit again with a longer --timeout and "
                             "--resume_from_hub (--resume locally), or plan a faster flavor"})
    return found


def full_run_projection(info: dict) -> dict | None:
    """A finished test run's measured speed turned into the full run's time and cost: the full run's training
    tokens at the tokens/s it measured (its steps at the seconds per step for GRPO, whose token count includes the
    generated completions that the plan's dataset tokens do not), plus what the test spent outside training (start,
    downloads, saving, pushing)."""
    estimate = info["estimate"] or {}
    if info["stage"] != "COMPLETED" or info["elapsed_s"] is None:
        return None
    tokens_per_s, seconds_per_step = info["tokens_per_s"], info["seconds_per_step"]
    if estimate.get("full_run_tokens") and tokens_per_s and info.get("script") != "train_grpo":
        pace = {"tokens_per_s": round(tokens_per_s)}
        training, trained = estimate["full_run_tokens"] / tokens_per_s, info["tokens"] / tokens_per_s
    elif estimate.get("full_run_steps") and seconds_per_step:
        pace = {"seconds_per_step": round(seconds_per_step, 2), "steps": estimate["full_run_steps"]}
        training, trained = estimate["full_run_steps"] * seconds_per_step, info["step"] * seconds_per_step
    else:
        return None
    seconds = training + max(info["elapsed_s"] - trained, 0)
    price = (hf_hardware() or {}).get(info["flavor"]) if info["backend"] == "hf" else None
    return pace | {"flavor": info["flavor"], "nodes": info["nodes"], "time_s": round(seconds),
                   "cost_usd": round(seconds / 3600 * price * info["nodes"], 2) if price else None,
                   "planned_s": estimate.get("full_run_s")}


def headline(info: dict) -> str:
    job = f"Job {info['id']}" + (f" ({info['nodes']} nodes)" if info.get("nodes", 1) > 1 else "")
    took = duration(info["elapsed_s"]) if info["elapsed_s"] is not None else None
    stage = info["stage"]
    if stage == "TIMEOUT":
        limit = info.get("timeout_s") or info["elapsed_s"]
        return f"{job} timed out" + (f" after {compact(limit)}." if limit else ".")
    words = {"RUNNING": ("is running", " ({})"), "SCHEDULING": ("is scheduled", ""),
             "COMPLETED": ("completed", " in {}"), "ERROR": ("failed", " after {}"),
             "CANCELED": ("was cancelled", " after {}"), "DELETED": ("was deleted", "")}
    verb, timing = words.get(stage, (f"is {stage.lower()}", ""))
    return f"{job} {verb}" + (timing.format(took) if took and timing else "") + "."


def describe(info: dict) -> str:
    lines = [headline(info)]
    if info["step"] is not None:
        parts = [f"Step {info['step']}/{info['total_steps']}"]
        if info["loss"] is not None:
            parts.append(f"loss {info['loss']:.3g}" + (f" (from {info['loss_start']:.3g})" if info["loss_start"] else ""))
        if info.get("reward") is not None:
            parts.append(f"reward {info['reward']:.3g} (from {info['reward_start']:.3g})")
        if info["learning_rate"] is not None:
            parts.append(f"learning rate {info['learning_rate']:.2g}")
        if info["eta_s"] is not None and info["stage"] == "RUNNING":
            parts.append(f"about {duration(info['eta_s'])} left")
        lines.append(" · ".join(parts) + ".")
    if info.get("completion_length") is not None:
        clipped = info.get("clipped_ratio")
        lines.append(f"Completions: {info['completion_length']:.0f} tokens on average"
                     + (f", {clipped:.0%} cut at the length limit." if clipped is not None else "."))
    lines += [f"Check: {h['problem']}; {h['fix']}." for h in (info.get("health") or []) + info["checks"]]
    if info["full_run"]:
        lines.append(full_run_line(info["full_run"]))
    if info.get("url"):
        lines.append(f"Logs: {info['url']}")
    trackio = info["trackio"] or {}
    if info.get("tracking_unavailable"):
        lines.append(f"Tracking unavailable: {info['tracking_unavailable']}; the loss stays in the logs "
                     "(--report_to none trains without it).")
    elif trackio.get("space"):  # the dashboard opened on the run (trackio's query parameters)
        query = urlencode({"project": trackio.get("project"), "runs": trackio.get("run")})
        lines.append(f"Trackio: {hub_endpoint()}/spaces/{trackio['space']}?{query}")
    elif trackio and info.get("trackio_dir"):
        lines.append(f"Trackio: project {trackio.get('project')}, run {trackio.get('run')} in the local store "
                     f"{info['trackio_dir']} (trackio show --project {trackio.get('project')})")
    if info.get("output") and info["stage"] == "COMPLETED":
        lines.append(f"Model: {info['output']}")
    if info["diagnosis"]:
        lines.append(f"What went wrong: {info['diagnosis']['problem']}.")
        lines.append(f"Fix: {info['diagnosis']['fix']}.")
    return "\n".join(lines)


def full_run_line(full: dict) -> str:
    where = "this machine" if full["flavor"] == "local" else \
        f"{full['nodes']} x {full['flavor']}" if full["nodes"] > 1 else full["flavor"]
    cost = f", ${full['cost_usd']:.2f}" if full["cost_usd"] is not None else ""
    plan = f" (the plan said {hours_minutes(full['planned_s'])})" if full["planned_s"] else ""
    pace = f"{full['tokens_per_s']:,} tokens/s" if "tokens_per_s" in full else f"{full['seconds_per_step']:g} s a step"
    run = "the full run" if "tokens_per_s" in full else f"the full run ({full['steps']:,} steps)"
    return f"Measured {pace} on {where}: {run} takes about {hours_minutes(full['time_s'])}{cost}{plan}."


def hours_minutes(seconds: float) -> str:
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes} min" if hours and minutes else f"{hours} h" if hours else f"{minutes} min"


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT.rstrip("/")


@functools.cache
def token_values() -> list[str]:
    """The token values this machine knows (HF_TOKEN or the stored login): never written anywhere by us."""
    from huggingface_hub import get_token

    return [value for value in {os.environ.get("HF_TOKEN"), get_token()} if value]


def masked(text: str) -> str:
    """Text that came from a job (its logs, the platform's message about it) with every token value this machine
    knows replaced by [HF_TOKEN], as the local backend writes its logs: a job that quotes its token in a crash
    message must not have it printed, stored or written into a report from here."""
    for secret in token_values():
        text = text.replace(secret, TOKEN_MASK)
    return text


def refuse_tokens_in_args(script_args: list[str]):
    secrets = token_values()
    for arg in script_args:
        if (re.match(r"--hub[_-]token(=|$)", arg) or re.fullmatch(r"hf_[A-Za-z0-9]{30,}", arg)
                or any(secret in arg for secret in secrets)):
            raise BadInput("A token was passed in the script's arguments; tokens travel only as HF_TOKEN, the stored "
                           "login (hf auth login) or a job secret, so remove --hub_token and its value.")


def check_id(job_id: str) -> str:
    for kind, pattern in ID_FORMATS.items():
        if re.fullmatch(pattern, job_id):
            return kind
    raise BadInput(f"{job_id!r} is not a job id: local jobs look like local-0123456789, HF jobs are 24 hex digits "
                   "and multi-node groups group-<12 hex digits>; `jobs.py list` shows yours.")


# ---------------------------------------------------------------- local backend


def local_log(path: Path, rank: int) -> Path:
    return path / ("log" if rank == 0 else f"log.node{rank}")


def write_json(path: Path, data: dict):
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def update_status(path: Path, change) -> dict:
    """Applies `change` (status -> new status, or None to keep it) to the status as it is now, under the job's lock:
    a writer never puts an older status back over a newer one (a cancel and the supervisor's final record)."""
    import fcntl

    with open(path / "status.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        status = json.loads((path / "status.json").read_text())
        changed = change(status)
        if changed is not None:
            write_json(path / "status.json", changed)
        return changed or status


def read_state(job_id: str) -> tuple[Path, dict, dict]:
    path = STATE_ROOT / job_id
    if not (path / "spec.json").exists():
        if left := sorted(job_processes(path, [])):
            raise Failure(f"Local job {job_id} lost its state folder ({path} was deleted) but its processes still "
                          f"run ({', '.join(map(str, left))}); `jobs.py cancel {job_id}` stops them.")
        raise BadInput(f"No local job {job_id!r}; `jobs.py list` shows the known ones.")
    try:
        return path, json.loads((path / "spec.json").read_text()), json.loads((path / "status.json").read_text())
    except (OSError, ValueError) as error:
        raise Failure(f"The state of local job {job_id} cannot be read ({error}); its files are in {path}.") from None


def local_command(script: str, args: list[str], packages: list[str]) -> list[str]:
    from shutil import which

    python = os.environ.get("HFLT_LOCAL_PYTHON")
    if python or not which("uv"):
        if packages:
            raise BadInput("--with needs uv on the local backend (pip install uv); or install the packages into the "
                           "Python that runs the script.")
        return [python or sys.executable, script, *args]
    return ["uv", "run", *[f"--with={package}" for package in packages], script, *args]


def local_submit(script: str, args: list[str], packages: list[str], name: str, timeout: int | None, labels: dict,
                 nodes: int) -> dict:
    command = local_command(str(Path(script).resolve()), args, packages)
    job_id = f"local-{uuid.uuid4().hex[:10]}"
    path = STATE_ROOT / job_id
    path.mkdir(parents=True)
    trackio_dir = os.environ.get("TRACKIO_DIR") or str(Path(os.environ.get("HF_HOME", Path.home() / ".cache" /
                                                                           "huggingface")) / "trackio")
    spec = {"id": job_id, "name": name, "command": command, "timeout_s": timeout, "labels": labels, "nodes": nodes,
            "created_at": time.time(), "cwd": os.getcwd(), "trackio_dir": trackio_dir}
    write_json(path / "spec.json", spec)
    write_json(path / "status.json", {"stage": "SCHEDULING"})
    supervisor = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "_supervise", job_id],
                                  start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, env=os.environ | {MARKER: str(path)})
    (path / "supervisor.pid").write_text(str(supervisor.pid))
    return {"id": job_id, "url": str(local_log(path, 0))}


def copy_masked(pipe, log_path: Path, secrets: list[bytes]):
    with pipe, open(log_path, "ab", buffering=0) as log:
        for line in pipe:
            for secret in secrets:
                line = line.replace(secret, TOKEN_MASK.encode())
            log.write(line)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def supervise(job_id: str):
    """Runs in its own session: starts one process group per node, stops the job's processes when one fails, the
    timeout passes or cancel is asked, and records the outcome. Output goes to the logs with the token masked."""
    path = STATE_ROOT / job_id
    spec = json.loads((path / "spec.json").read_text())
    env = {**os.environ, "JOB_ID": job_id, "HFLT_JOB_ID": job_id, "HFLT_JOB_URL": str(local_log(path, 0)),
           "HFLT_FLAVOR": "local"}
    if spec["nodes"] > 1:
        env |= {"HFLT_NUM_NODES": str(spec["nodes"]), "HFLT_MAIN_ADDRESS": "127.0.0.1",
                "HFLT_MAIN_PORT": str(free_port())}
    secrets = [secret.encode() for secret in token_values()]
    children, copiers = [], []
    for rank in range(spec["nodes"]):
        child = subprocess.Popen(spec["command"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True, cwd=spec["cwd"],
                                 env=env | ({"HFLT_NODE_RANK": str(rank)} if spec["nodes"] > 1 else {}))
        copiers.append(threading.Thread(target=copy_masked, args=(child.stdout, local_log(path, rank), secrets),
                                        daemon=True))
        copiers[-1].start()
        children.append(child)
    started = time.time()
    update_status(path, lambda status: status | {"stage": "RUNNING", "started_at": started,
                                                 "supervisor_pid": os.getpid(), "pids": [c.pid for c in children]})
    stage = None
    while stage is None:
        time.sleep(0.2)
        codes = [child.poll() for child in children]
        stage = outcome(path, spec, codes, started)
    failed = next((rank for rank, code in enumerate(codes) if code not in (None, 0)), None)
    stopped = stop_job(path, [child.pid for child in children])  # the others, and whatever a node left behind
    codes = [child.wait() for child in children]
    if all(code == 0 for code in codes):  # it finished as it was being stopped: the exit codes say it completed
        stage = "COMPLETED"
    for copier in copiers:
        copier.join(timeout=5)
    if stage == "TIMEOUT":
        with open(local_log(path, 0), "a") as log:
            log.write(f"\n[jobs] timed out after {compact(spec['timeout_s'])}: every process was stopped\n")
    update_status(path, lambda status: status | {"stage": stage, "finished_at": time.time(), "exit_codes": codes,
                                                 "failed_node": failed if stage == "ERROR" else None,
                                                 "stopped": stopped})


def outcome(path: Path, spec: dict, codes: list[int | None], started: float) -> str | None:
    """What ends the job now, if anything. Exit codes first: processes that all exited 0 completed the job, even
    when a cancel arrived at that moment."""
    if all(code == 0 for code in codes):
        return "COMPLETED"
    if (path / "cancel").exists():
        return "CANCELED"
    if any(code not in (None, 0) for code in codes):
        return "ERROR"
    if spec["timeout_s"] and time.time() - started > spec["timeout_s"]:
        return "TIMEOUT"
    return None


def stop_job(path: Path, groups: list[int]) -> list[dict]:
    """SIGTERM every process of the job, give them 10 s to save and exit, then SIGKILL what is left. Returns what it
    stopped: each pid, whether it had left the job's process groups, and the last signal it needed."""
    stopped = {}
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 0)):
        living = job_processes(path, groups)
        for pid, outside in living.items():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
            stopped[pid] = {"pid": pid, "outside_groups": outside, "signal": sig.name}
        for group in groups:  # and what a member forked since the scan
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, sig)
        deadline = time.time() + grace
        while living and time.time() < deadline:
            time.sleep(0.2)
            living = job_processes(path, groups)
    return list(stopped.values())


def job_processes(path: Path, groups: list[int]) -> dict[int, bool]:
    """The running processes of the local job whose state folder is `path`, each with whether it left the job's
    process groups: the members of its groups, and whatever carries its marker elsewhere (a grandchild that
    started a session of its own, a daemon). Without /proc (macOS) only the groups are known, by their leaders."""
    if not Path("/proc").exists():
        return {group: False for group in groups if group_alive(group)}
    return {pid: group not in groups for pid, group, proc in running_processes()
            if group in groups or marker_of(proc) == str(path)}


def running_processes():
    """(pid, process group, /proc folder) of every process that runs (zombies do not), this one left out."""
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            state, _, group = (proc / "stat").read_text().rsplit(")", 1)[1].split()[:3]
            if state != "Z" and int(proc.name) != os.getpid():
                yield int(proc.name), int(group), proc


def marker_of(proc: Path) -> str | None:
    """The state folder of the local job that started a process, from the environment it started with."""
    with contextlib.suppress(OSError):
        for entry in (proc / "environ").read_bytes().split(b"\0"):
            if entry.startswith(f"{MARKER}=".encode()):
                return entry.split(b"=", 1)[1].decode(errors="replace")
    return None


def orphaned_jobs() -> dict[str, list[int]]:
    """Local jobs whose state folder was deleted while they run, found by their marker: {job id: pids}."""
    found = {}
    for pid, _, proc in running_processes() if Path("/proc").exists() else []:
        state = Path(marker_of(proc) or "/")
        if state.parent == STATE_ROOT and not (state / "spec.json").exists():
            found.setdefault(state.name, []).append(pid)
    return found


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return not Path("/proc").exists()


def local_status(job_id: str) -> dict:
    path, spec, status = read_state(job_id)
    if status["stage"] in ("SCHEDULING", "RUNNING") and supervisor_gone(path, status):
        status = read_state(job_id)[2]  # it may have written its final record just before it exited
        if status["stage"] in ("SCHEDULING", "RUNNING"):
            status |= {"stage": "ERROR", "finished_at": (path / "status.json").stat().st_mtime}
    stage, nodes = status["stage"], spec.get("nodes", 1)
    end = status.get("finished_at") or time.time()
    elapsed = end - status["started_at"] if status.get("started_at") else None
    codes = status.get("exit_codes") or [None] * nodes
    members = []
    for rank in range(nodes):
        log = local_log(path, rank)
        member_stage = stage if status.get("failed_node") in (None, rank) else "CANCELED"
        members.append({"stage": member_stage, "elapsed": elapsed, "exit_code": codes[rank],
                        "text": log.read_text(errors="replace") if log.exists() else ""})
    failed = status.get("failed_node")
    return summarize(job_id, members, backend="local", url=str(local_log(path, 0)), flavor="local",
                     name=spec["name"], exit_code=codes[failed or 0], labels=spec["labels"],
                     created_at=iso(spec["created_at"]), timeout_s=spec["timeout_s"],
                     trackio_dir=spec.get("trackio_dir"), script=spec["labels"].get("script"))


def supervisor_gone(path: Path, status: dict) -> bool:
    """The supervisor was killed (reboot, kill -9) or has just exited: it will not record anything any more."""
    pid = status.get("supervisor_pid")
    with contextlib.suppress(OSError, ValueError):
        pid = pid or int((path / "supervisor.pid").read_text())
    return pid is not None and not alive(pid)  # no pid yet: submit is still starting it


def local_cancel(job_id: str) -> dict:
    """Asks the supervisor to stop the job and returns its record; stops the processes itself when the supervisor
    is gone, or when the job's state folder was deleted while it runs."""
    path = STATE_ROOT / job_id
    if not (path / "spec.json").exists() and job_processes(path, []):
        return {"stage": "CANCELED", "requested": True, "state_deleted": True, "stopped": stop_job(path, [])}
    status = read_state(job_id)[2]
    if status["stage"] in TERMINAL:
        return {"stage": status["stage"], "requested": False}
    (path / "cancel").touch()
    deadline = time.time() + 30  # the supervisor sees the request within 0.2 s and gives the processes 10 s to stop
    while time.time() < deadline:
        if supervisor_gone(path, status):  # nobody else will stop them
            status = record_unless_final(path, {"stage": "CANCELED", "finished_at": time.time(),
                                                "stopped": stop_job(path, status.get("pids", []))})
        if status["stage"] in TERMINAL:
            return {"stage": status["stage"], "requested": True, "stopped": status.get("stopped") or []}
        time.sleep(0.1)
        status = read_state(job_id)[2]
    raise Failure(f"Local job {job_id} did not stop within 30 s; its processes are {status.get('pids')}.")


def record_unless_final(path: Path, final: dict) -> dict:
    """The job's status with `final` recorded, unless a final record is there already (the supervisor wrote it
    just before it exited): that one stays."""
    return update_status(path, lambda now: None if now["stage"] in TERMINAL else now | final)


def local_logs(job_id: str, follow: bool, tail: int | None, node: int | None):
    path, spec, _ = read_state(job_id)
    ranks = node_ranks(spec.get("nodes", 1), node)
    prefix = len(ranks) > 1
    for rank in ranks:
        log = local_log(path, rank)
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        print("\n".join((f"[node {rank}] " if prefix else "") + line for line in (lines[-tail:] if tail else lines)),
              flush=True)
    if not follow:
        return
    files = {rank: open(local_log(path, rank), "a+", errors="replace") for rank in ranks}
    for f in files.values():
        f.seek(0, 2)
    while True:
        ended = local_status(job_id)["stage"] in TERMINAL
        for rank, f in files.items():
            for line in f.readlines():
                print((f"[node {rank}] " if prefix else "") + line, end="", flush=True)
        if ended:
            return
        time.sleep(0.5)


def node_ranks(nodes: int, node: int | None) -> list[int]:
    if node is None:
        return list(range(nodes))
    if not 0 <= node < nodes:
        raise BadInput(f"--node {node} does not exist: the job has {nodes} node(s), numbered 0 to {nodes - 1}.")
    return [node]


# ---------------------------------------------------------------- hf backend


def hf_api():
    from huggingface_hub import HfApi

    return HfApi()


def require_token(job_id: str | None = None) -> str:
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        what = f"Job {job_id} runs on HF Jobs and reading it" if job_id else "Submitting to HF Jobs"
        raise BadInput(f"{what} needs a Hugging Face token: run `hf auth login` (or set HF_TOKEN)"
                       + (", or use --backend local." if not job_id else "."))
    return token


@contextlib.contextmanager
def hub_errors(what: str, job_id: str | None = None):
    """huggingface_hub's exceptions as one sentence: exit 2 when the person must change something, 1 otherwise."""
    from httpx2 import TransportError
    from huggingface_hub.errors import HfHubHTTPError, JobNotFoundError, OfflineModeIsEnabled

    try:
        yield
    except OfflineModeIsEnabled:
        raise Failure(f"HF_HUB_OFFLINE=1 is set, so the Hub cannot be asked to {what}; unset it and try again.") \
            from None
    except TransportError as error:
        raise Failure(f"Could not reach {hub_endpoint()} to {what} ({error}); check the network and try again.") \
            from None
    except JobNotFoundError:
        raise BadInput(f"No HF job {job_id} in your namespace; `jobs.py list` shows your jobs.") from None
    except HfHubHTTPError as error:
        code = error.response.status_code
        reason = first_line(error.server_message or error).rstrip(".")
        if code == 401:
            raise BadInput(f"The Hub rejected the token ({reason}); run `hf auth login` or set a valid HF_TOKEN.") \
                from None
        raise Failure(f"The Hub answered {code} when asked to {what} ({reason}); try again later.") from None


def hf_hardware() -> dict[str, float] | None:
    """{flavor: USD per hour} from the live list; None when the Hub cannot be reached (then any flavor is taken)."""
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return None
    with contextlib.suppress(Failure, BadInput), hub_errors("list the Jobs hardware"):
        return {item.name: item.unit_cost_usd * (60 if item.unit_label == "minute" else 1)
                for item in hf_api().list_jobs_hardware()}
    return None


def refusal(error, flavor: str, suggestions: list[str]) -> "BadInput | None":
    """HF Jobs refusing a submission for a reason the person fixes: credit, flavor, token scope."""
    code = error.response.status_code
    reason = first_line(error.server_message or error).rstrip(".")
    if code == 402:
        return BadInput(f"HF Jobs refused the job for lack of credit (Jobs run on a positive credit balance); add "
                        f"credits at {hub_endpoint()}/settings/billing, or run it on this machine with --backend "
                        "local.")
    if code in (400, 403, 422) and re.search(r"flavor|hardware", reason, re.I):
        others = ", ".join(suggestions) or "another one from plan.py"
        return BadInput(f"HF Jobs refused flavor {flavor} for this account ({reason}); pick another flavor with "
                        f"--flavor ({others}), or use --backend local.")
    if code in (401, 403):
        return BadInput(f"HF Jobs refused the token ({reason}); use a token with the jobs scope (a fine-grained token "
                        "that may start Jobs, or `hf auth login` with a write token), or use --backend local.")
    return None


def hf_submit(script: str, args: list[str], packages: list[str], name: str, flavor: str, timeout: int, labels: dict,
              nodes: int, namespace: str, token: str, suggestions: list[str]) -> dict:
    from huggingface_hub.errors import HfHubHTTPError

    api, group = hf_api(), f"group-{uuid.uuid4().hex[:12]}"
    env = {"HFLT_FLAVOR": flavor, "HFLT_JOB_NAMESPACE": namespace}
    labels = labels | {"timeout_s": str(timeout)}  # a job's info does not carry it
    jobs = []
    try:
        with hub_errors("submit the job"), contextlib.redirect_stdout(io.StringIO()):  # it prints where scripts go
            for rank in range(nodes):
                multi = {"network_group": group, "network_aliases": ["main"] if rank == 0 else None,
                         "env": env | {"HFLT_NUM_NODES": str(nodes), "HFLT_NODE_RANK": str(rank),
                                       "HFLT_MAIN_PORT": str(MAIN_PORT), "HFLT_JOB_GROUP": group},
                         "labels": labels | {"group": group, "node": str(rank)}} if nodes > 1 else {"env": env, "labels": labels}
                try:
                    jobs.append(api.run_uv_job(script, script_args=args, dependencies=packages or None, flavor=flavor,
                                               timeout=timeout, secrets={"HF_TOKEN": token}, namespace=namespace,
                                               name=name, **multi))  # the name is a label: one for the group
                except HfHubHTTPError as error:
                    raise refusal(error, flavor, suggestions) or error
    except (BadInput, Failure):
        with contextlib.suppress(Exception):
            for job in jobs:  # a group is all or nothing: the members already started must not run alone
                api.cancel_job(job_id=job.id, namespace=namespace)
        raise
    if nodes == 1:
        return {"id": jobs[0].id, "url": jobs[0].url}
    return {"id": group, "url": jobs[0].url, "members": [{"node": rank, "id": job.id, "url": job.url}
                                                         for rank, job in enumerate(jobs)]}


def hf_stage(job) -> str:
    stage = str(getattr(job.status.stage, "value", job.status.stage))
    return "TIMEOUT" if stage == "ERROR" and "timeout" in (job.status.message or "").lower() else stage


def hf_elapsed(job) -> float | None:
    if job.started_at:
        return ((job.finished_at or datetime.now(UTC)) - job.started_at).total_seconds()
    return job.durations.running_secs if job.durations else None


def hf_members(api, job_id: str) -> list:
    if check_id(job_id) == "hf":
        return [api.inspect_job(job_id=job_id)]
    members = [job for job in api.list_jobs(labels={"group": job_id}) if (job.labels or {}).get("group") == job_id]
    if not members:
        raise BadInput(f"No HF job group {job_id} in your namespace; `jobs.py list` shows your jobs.")
    return sorted(members, key=lambda job: int(job.labels.get("node", 0)))


def hf_log(api, job_id: str, tail: int | None = None) -> str:
    return masked("\n".join(api.fetch_job_logs(job_id=job_id, follow=False, tail=tail)))


def hf_status(job_id: str) -> dict:
    require_token(job_id)
    api = hf_api()
    with hub_errors(f"read job {job_id}", job_id):
        jobs = hf_members(api, job_id)
        members = [{"stage": hf_stage(job), "elapsed": hf_elapsed(job), "text": ""} for job in jobs]
        worst = min((m["stage"] for m in members), key=STAGE_ORDER.index)
        culprit = next(rank for rank, m in enumerate(members) if m["stage"] == worst)
        for rank in {0, culprit}:  # progress comes from node 0, the diagnosis from the first member in the worst stage
            members[rank]["text"] = hf_log(api, jobs[rank].id)
    lead = jobs[0]
    extra = {"members": [{"node": rank, "id": job.id, "stage": members[rank]["stage"], "url": job.url}
                         for rank, job in enumerate(jobs)]} if len(jobs) > 1 else {}
    labels = {k: v for k, v in (lead.labels or {}).items() if k not in ("group", "node")}
    return summarize(job_id, members, backend="hf", url=lead.url, flavor=lead.flavor, labels=labels,
                     message=masked(lead.status.message or "") or None, created_at=iso(lead.created_at), script=labels.get("script"),
                     name=labels.get("name"), timeout_s=label_number(labels, "timeout_s"), **extra)


def label_number(labels: dict, key: str) -> int | None:
    """A number a job carries in a label (label values are plain text: digits)."""
    return int(labels[key]) if str(labels.get(key, "")).isdigit() else None


def hf_logs(job_id: str, follow: bool, tail: int | None, node: int | None):
    require_token(job_id)
    api = hf_api()
    with hub_errors(f"read the logs of job {job_id}", job_id):
        jobs = hf_members(api, job_id)
        ranks = node_ranks(len(jobs), node)
        if follow and len(ranks) > 1:
            print("Note: following node 0; `--node K` follows another node.", file=sys.stderr)
            ranks = [0]
        for rank in ranks:
            for line in api.fetch_job_logs(job_id=jobs[rank].id, follow=follow, tail=tail):
                print((f"[node {rank}] " if len(ranks) > 1 else "") + masked(line), flush=True)


def hf_cancel(job_id: str) -> dict:
    require_token(job_id)
    api = hf_api()
    with hub_errors(f"cancel job {job_id}", job_id):
        jobs = hf_members(api, job_id)
        stages = [hf_stage(job) for job in jobs]
        if all(stage in TERMINAL for stage in stages):
            return {"stage": min(stages, key=STAGE_ORDER.index), "requested": False}
        for job, stage in zip(jobs, stages):
            if stage not in TERMINAL:
                api.cancel_job(job_id=job.id)
    return {"stage": "CANCELED", "requested": True}


def hf_list(labels: dict, with_outputs: bool) -> list[dict]:
    api, groups = hf_api(), {}
    with hub_errors("list your HF jobs"):
        for job in api.list_jobs(labels=labels or None):
            job_labels = job.labels or {}
            if any(job_labels.get(key) != value for key, value in labels.items()):
                continue
            key = job_labels.get("group") or job.id
            groups.setdefault(key, []).append(job)
        jobs = []
        for key, members in groups.items():
            members.sort(key=lambda job: int((job.labels or {}).get("node", 0)))
            lead = members[0]
            shown = {k: v for k, v in (lead.labels or {}).items() if k not in ("group", "node")}
            entry = {"id": key, "backend": "hf", "name": shown.get("name"), "script": shown.get("script"),
                     "stage": min((hf_stage(job) for job in members), key=STAGE_ORDER.index), "url": lead.url,
                     "flavor": lead.flavor, "nodes": len(members), "labels": shown, "created_at": iso(lead.created_at),
                     "timeout_s": label_number(shown, "timeout_s"), "output_dir": None, "hub_repo": None}
            if with_outputs:
                progress = progress_from_log(hf_log(api, lead.id))
                entry |= {"output_dir": progress["output_dir"], "hub_repo": progress["hub_repo"]}
            jobs.append(entry)
    return jobs


# ---------------------------------------------------------------- commands


def status(job_id: str) -> dict:
    return local_status(job_id) if check_id(job_id) == "local" else hf_status(job_id)


def choose_backend(requested: str | None) -> str:
    if requested:
        return requested
    from huggingface_hub import get_token

    return "hf" if get_token() else "local"


def load_plan(path: str | None) -> dict:
    if not path:
        return {}
    try:
        plan = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise BadInput(f"--plan {path} is not a plan.py --json file ({error}).") from None
    if isinstance(plan, dict) and plan.get("fits") is False:
        raise BadInput(f"--plan {path} found no flavor that fits this run; change what it suggests "
                       f"({', '.join(plan.get('suggestions') or []) or 'a smaller model or --peft lora'}) and plan again.")
    if not isinstance(plan, dict) or "flavor" not in plan or "time_hours" not in plan:
        raise BadInput(f"--plan {path} is not a plan.py --json file (it has no flavor and time estimate); write one "
                       "with `plan.py --model ... --method ... --json > plan.json`.")
    return plan


def cmd_submit(args, script_and_args: list[str]):
    if not script_and_args:
        raise BadInput("Name the script after `--`: jobs.py submit [options] -- train_sft.py --model_name_or_path ...")
    script, script_args = script_and_args[0], script_and_args[1:]
    beside = Path(__file__).resolve().parent / script  # a bare name: the bundled script next to this one
    if not Path(script).is_file() and Path(script).name == script and beside.is_file():
        script = str(beside)
    if not script.startswith(("http://", "https://")) and not Path(script).is_file():
        raise BadInput(f"Script {script} does not exist; pass the path of a bundled script such as scripts/train_sft.py.")
    refuse_tokens_in_args(script_args)
    for flag, value in (("--name", args.name), ("--experiment", args.experiment)):
        if value is not None and (not value.strip() or not value.isprintable()):
            raise BadInput(f"{flag} {value!r} holds a line break or another control character (or nothing); use "
                           "printable text such as sft-a10g.")
    plan = load_plan(args.plan)
    present = {arg.split("=", 1)[0] for arg in script_args}  # --flag value and --flag=value alike
    extra = plan.get("training_args", [])
    for flag, value in zip(extra[::2], extra[1::2]):
        if flag not in present:
            script_args += [flag, value]
    nodes = args.nodes if args.nodes is not None else plan.get("nodes", 1)
    if nodes < 1:
        raise BadInput(f"--nodes {nodes} is not a number of machines; use 1 or more.")
    backend = choose_backend(args.backend)
    if backend == "local" and not args.backend and (args.flavor or plan.get("flavor")):
        raise BadInput(f"{'--flavor' if args.flavor else 'The plan'} names the HF Jobs flavor "
                       f"{args.flavor or plan['flavor']} but no Hugging Face token is set: log in with `hf auth login` "
                       "(or set HF_TOKEN), or pass --backend local to run on this machine.")
    token = require_token() if backend == "hf" else None
    trainer = Path(script).name.startswith("train_")
    flavor = args.flavor or plan.get("flavor") or "cpu-basic"
    timeout_text = args.timeout or plan.get("timeout")
    warnings = []
    if timeout_text is None:
        timeout_text = "2h" if backend == "hf" else None
        if trainer and backend == "hf":
            warnings.append("no --timeout or --plan: using 2h; plan.py gives a timeout from the estimate")
    timeout = parse_timeout(timeout_text)
    prices = hf_hardware() if backend == "hf" else None
    suggestions = [a["flavor"] for a in plan.get("alternatives", [])]
    if prices is not None and flavor not in prices:
        raise BadInput(f"Unknown flavor {flavor!r}; HF Jobs offers {', '.join(sorted(prices))} (plan.py picks one).")
    if backend == "hf" and trainer and "--push_to_hub" not in script_args:
        raise BadInput("A training job on HF Jobs without --push_to_hub loses the model when the job ends; add "
                       "--push_to_hub (and --hub_model_id user/name).")
    namespace = None
    if backend == "hf" and not args.dry_run:
        with hub_errors("find your user name"):
            namespace = hf_api().whoami()["name"]
        if trainer and "--trackio_space_id" not in script_args and "--report_to" not in script_args:
            script_args += ["--trackio_space_id", f"{namespace}/trackio"]
    name = args.name or f"{Path(script).stem.replace('_', '-')}-{time.strftime('%m%d-%H%M%S')}"
    for job in jobs_named(name, backend)[:1] if args.name and not args.dry_run else []:
        warnings.append(f"job {job['id']} ({job['stage'].lower()}) already has the name {name}: the report shows the "
                        f"two as {name} and {name}-2; pass another --name to tell them apart")
    labels = {"tool": "hf-llm-trainer", "script": Path(script).stem}
    output = output_of(script_args)
    if output:
        labels["output"] = hashlib.sha256(output.encode()).hexdigest()[:16]  # label values: short and plain
        if backend == "local" or not args.dry_run:
            refuse_a_second_writer(output, labels["output"], backend)
    if args.experiment:
        labels["experiment"] = args.experiment
    price = plan.get("price_per_hour") or (prices or {}).get(flavor)
    estimates = plan_estimates(plan, script_args, nodes)
    labels |= estimate_labels(estimates)
    run = estimates["run"] or {}
    result = {"backend": backend, "flavor": flavor if backend == "hf" else "local", "nodes": nodes,
              "timeout": timeout_text, "timeout_s": timeout, "estimated_time_hours": run.get("time_hours"),
              "estimated_cost_usd": run.get("cost_usd") if backend == "hf" else 0.0,
              "price_per_hour_usd": price * nodes if backend == "hf" and price else None,
              "test_run": estimates["test_run"], "full_run_estimate": estimates["full_run"],
              "name": name, "labels": labels, "command": [script, *script_args], "with": args.with_packages,
              "warnings": warnings}
    if args.dry_run:
        result |= {"id": None, "url": None, "dry_run": True, "secrets": ["HF_TOKEN"] if backend == "hf" else []}
    elif backend == "hf":
        result |= hf_submit(script, script_args, args.with_packages, name, flavor, timeout, labels, nodes, namespace,
                            token, suggestions)
    else:
        result |= local_submit(script, script_args, args.with_packages, name, timeout, labels, nodes)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print_submitted(result, script_args)


def jobs_named(name: str, backend: str) -> list[dict]:
    """The jobs already submitted under this name: on this machine, and on HF Jobs when the job goes there."""
    jobs = []
    for spec in STATE_ROOT.glob("local-*/spec.json"):
        if read_name(spec) == name:
            with contextlib.suppress(Failure):  # a job whose status cannot be read says nothing about the name
                jobs.append(local_status(spec.parent.name))
    if backend == "hf":
        jobs += [job for job in hf_list({"tool": "hf-llm-trainer"}, with_outputs=False) if job["name"] == name]
    return jobs


def read_name(spec: Path) -> str | None:
    try:
        return json.loads(spec.read_text()).get("name")
    except (OSError, ValueError, AttributeError):  # a job being written or a corrupt spec: not a name in use
        return None


def plan_estimates(plan: dict, script_args: list[str], nodes: int) -> dict:
    """The plan's estimate of the run submitted and, when --max_steps or --max_samples make it a test run, of the
    full run it tests. A plan for a test run names its limits (`max_steps`, `max_samples`) and carries both
    estimates (`estimate`, `full_run_estimate`); any other plan estimates the full run only, so a test run cut by
    other limits than the plan's has no estimate of its own."""
    limits = {flag: arg_value(script_args, flag) for flag in TEST_RUN_FLAGS if arg_value(script_args, flag)}
    planned_limits = {flag: str(plan[flag[2:]]) for flag in TEST_RUN_FLAGS if plan.get(flag[2:]) is not None}
    test_plan = bool(planned_limits or plan.get("test_run"))
    full = plan_estimate(plan["full_run_estimate"] if isinstance(plan.get("full_run_estimate"), dict) else
                         {} if test_plan else plan, plan, nodes)
    if not limits:
        return {"run": full, "full_run": None, "test_run": None}
    if full and metric(plan.get("dataset_tokens")):  # the tokens of one epoch of the whole dataset
        full["tokens"] = plan["dataset_tokens"] * (metric(plan.get("epochs")) or 1)
    tested = plan["estimate"] if isinstance(plan.get("estimate"), dict) else plan
    return {"run": plan_estimate(tested, plan, nodes) if limits == planned_limits else None, "full_run": full,
            "test_run": limits}


def plan_estimate(entry: dict, plan: dict, nodes: int) -> dict | None:
    """One estimate of a plan: hours, dollars (for `nodes` machines where the plan had another count) and
    optimizer steps."""
    hours = metric(entry.get("time_hours"))
    if hours is None:
        return None
    cost = metric(entry.get("cost_usd"))
    return {"time_hours": hours, "cost_usd": cost * nodes / plan.get("nodes", 1) if cost is not None else None,
            "steps": metric(entry.get("steps"))}


def estimate_labels(estimates: dict) -> dict:
    """The estimates status needs, as labels (whole numbers, as label values must be plain): the same record on
    both backends."""
    run, full = estimates["run"], estimates["full_run"]
    labels = {"estimate_s": str(round(run["time_hours"] * 3600))} if run else {}
    if full:
        labels["full_run_s"] = str(round(full["time_hours"] * 3600))
        labels |= {f"full_run_{key}": str(round(full[key])) for key in ("tokens", "steps") if full.get(key)}
    return labels


def arg_value(script_args: list[str], flag: str) -> str | None:
    """A flag's value among the script's arguments, written `--flag value` or `--flag=value`."""
    for i, arg in enumerate(script_args):
        if arg == flag and i + 1 < len(script_args):
            return script_args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def output_of(script_args: list[str]) -> str | None:
    """Where the script writes: the Hub repo it pushes to, else its output directory (absolute)."""
    if "--push_to_hub" in script_args and arg_value(script_args, "--hub_model_id"):
        return f"hub:{arg_value(script_args, '--hub_model_id')}"
    directory = arg_value(script_args, "--output_dir")
    return f"dir:{Path(directory).resolve()}" if directory else None


def refuse_a_second_writer(output: str, label: str, backend: str):
    """An output directory or Hub repo belongs to one live run: two runs into it would mix their checkpoints and
    records."""
    running = [job for job in (local_list() if backend == "local" else hf_list({"tool": "hf-llm-trainer",
                                                                                  "output": label}, False))
               if job["stage"] in ("SCHEDULING", "RUNNING") and (job.get("labels") or {}).get("output") == label]
    if running:
        raise BadInput(f"{output.split(':', 1)[1]} is the output of job {running[0]['id']}, which is still "
                       f"{running[0]['stage'].lower()}; wait for it (jobs.py wait {running[0]['id']}), cancel it, or "
                       "choose another --output_dir / --hub_model_id.")


def print_submitted(result: dict, script_args: list[str]):
    for warning in result["warnings"]:
        print(f"Note: {warning}")
    nodes = result["nodes"]
    on = f"{nodes} x {result['flavor']}" if nodes > 1 else result["flavor"]
    if result.get("dry_run"):
        print(f"Dry run: would submit to {result['backend']} ({on}, timeout {result['timeout'] or 'none'}):\n  "
              + " ".join([*(f"--with {package}" for package in result["with"]), *result["command"]]))
        return
    print("Job submitted." if nodes == 1 else f"Job group submitted: {nodes} nodes.")
    print(f"Job ID: {result['id']}")
    print(f"Monitor: {result['url']}")
    for member in result.get("members", []):
        print(f"  node {member['node']}: {member['url']}")
    space = next((script_args[i + 1] for i, a in enumerate(script_args[:-1]) if a == "--trackio_space_id"), None)
    if space:
        print(f"Trackio: {hub_endpoint()}/spaces/{space}")
    limits = " ".join(f"{flag} {value}" for flag, value in (result["test_run"] or {}).items())
    full = result["full_run_estimate"] if result["backend"] == "hf" else None
    if result["estimated_cost_usd"]:
        print((f"Test run ({limits}): estimated" if limits else "Estimated")
              + f" time ~{result['estimated_time_hours'] * 60:.0f} min, estimated cost "
              f"~${result['estimated_cost_usd']:.2f}" + (f" ({on})." if nodes > 1 else "."))
    if limits and full:
        said = f"~{hours_minutes(full['time_hours'] * 3600)}" + \
            (f", ~${full['cost_usd']:.2f}" if full["cost_usd"] is not None else "")
        print((f"The plan's full run: {said}" if result["estimated_cost_usd"] else
               f"Test run ({limits}): the plan's estimate ({said}) is for the full run, not this one")
              + "; when the test run ends, `jobs.py status` turns its measured speed into the full run's time and "
                "cost.")
    if not result["estimated_cost_usd"] and result["price_per_hour_usd"]:
        print(f"Cost: ~${result['price_per_hour_usd']:.2f}/hour ({on}) until it ends or times out.")


def local_list() -> list[dict]:
    jobs = []
    for path in sorted(STATE_ROOT.glob("local-*"), key=lambda p: p.stat().st_mtime) if STATE_ROOT.exists() else []:
        if not (path / "spec.json").exists():
            continue
        try:
            info = local_status(path.name)
        except Failure:
            jobs.append({"id": path.name, "backend": "local", "stage": "UNREADABLE", "name": None, "labels": {}})
            continue
        jobs.append({key: info[key] for key in ("id", "backend", "name", "script", "stage", "url", "nodes", "labels",
                                                "created_at", "elapsed_s", "step", "total_steps", "output_dir",
                                                "hub_repo")})
    return jobs + [{"id": job_id, "backend": "local", "stage": "ORPHANED", "name": None, "labels": {}, "pids": pids}
                   for job_id, pids in orphaned_jobs().items()]


def cmd_list(args):
    labels = {"experiment": args.experiment} if args.experiment else {}
    jobs = [job for job in local_list() if all(job["labels"].get(k) == v for k, v in labels.items())]
    from huggingface_hub import get_token

    if args.backend != "local" and get_token():
        try:
            jobs += hf_list(labels, with_outputs=bool(args.experiment))
        except (Failure, BadInput) as error:  # the local jobs are still worth showing
            print(f"Note: the HF Jobs list could not be fetched: {error}", file=sys.stderr)
    if args.json:
        print(json.dumps(jobs, indent=2))
        return
    for job in jobs:
        notes = {"UNREADABLE": "unreadable (its status.json is corrupt)",
                 "ORPHANED": f"orphaned (its state folder was deleted; {plural(len(job.get('pids', [])), 'process')} "
                             f"still run: `jobs.py cancel {job['id']}` stops them)"}
        stage = notes.get(job["stage"], job["stage"].lower())
        print(f"{job['id']:28} {job['backend']:5} {stage:10} {job.get('name') or ''}")
    if not jobs:
        print("No jobs.")


def cmd_cancel(args):
    result = {"id": args.id} | (local_cancel(args.id) if check_id(args.id) == "local" else hf_cancel(args.id))
    if args.json:
        print(json.dumps(result))
        return
    print(headline(result | {"elapsed_s": None}))
    if result["requested"] and result["stage"] != "CANCELED":
        print("It ended on its own before the cancel reached it.")
    elif result["stage"] == "CANCELED" and result.get("stopped"):
        print(what_was_stopped(result["stopped"], result.get("state_deleted", False)))


def what_was_stopped(stopped: list[dict], state_deleted: bool) -> str:
    pids = ("pid " if len(stopped) == 1 else "pids ") + ", ".join(str(process["pid"]) for process in stopped)
    if state_deleted:
        return (f"Its state folder had been deleted: stopped {plural(len(stopped), 'process')} found by the {MARKER} "
                f"marker in their environment ({pids}).")
    outside = sum(process["outside_groups"] for process in stopped)
    killed = sum(process["signal"] == "SIGKILL" for process in stopped)
    said = [f"Stopped {plural(len(stopped), 'process')} ({pids})"]
    if outside:
        said.append(f"{outside} had left the job's process groups (a session of its own) and "
                    f"{'was' if outside == 1 else 'were'} found by the {MARKER} marker in the environment")
    if killed:
        said.append(f"{killed} ignored SIGTERM and got SIGKILL after 10 s")
    return "; ".join(said) + "."


def plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "es" if word.endswith("s") else "s")


def cmd_wait(args):
    info, last = status(args.id), None
    while info["stage"] not in TERMINAL:
        if not args.json and (info["step"], info["stage"]) != last:
            print(describe(info).splitlines()[1 if info["step"] is not None else 0], flush=True)
            last = (info["step"], info["stage"])
        time.sleep(float(os.environ.get("HFLT_POLL_S", "5")))
        info = status(args.id)
    print(json.dumps(info, indent=2) if args.json else describe(info))
    if info["stage"] != "COMPLETED":
        sys.exit(1)


def build_parser():
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    submit = commands.add_parser("submit", help="submit a script: jobs.py submit [options] -- script.py [args]")
    submit.add_argument("--backend", choices=["hf", "local"], default=None,
                        help="hf (HF Jobs; default with a token) or local (default without one)")
    submit.add_argument("--plan", help="a plan.py --json file: flavor, timeout, batch flags and estimates")
    submit.add_argument("--flavor", help="HF Jobs hardware flavor, e.g. t4-small, a10g-large, a100-large")
    submit.add_argument("--timeout", help="e.g. 45m, 2h, 1h30m (default: the plan's, else 2h on HF Jobs)")
    submit.add_argument("--nodes", type=int, default=None,
                        help="machines for one multi-node training run (default: the plan's, else 1); costs N x")
    submit.add_argument("--name", help="job name (default: script name and time)")
    submit.add_argument("--experiment", help="label that ties the job to an experiment report")
    submit.add_argument("--with", dest="with_packages", action="append", default=[], metavar="PACKAGE",
                        help="extra package for the job's environment, e.g. 'vllm>=0.22,<=0.31' (repeatable)")
    submit.add_argument("--dry_run", "--dry-run", dest="dry_run", action="store_true",
                        help="show what would be submitted; --dry-run is the old spelling")
    submit.add_argument("--json", action="store_true", help="print one JSON document (id, url, flavor, cost, ...)")
    for name, text in (("status", "progress, and on failure what went wrong"), ("wait", "wait until it ends"),
                       ("cancel", "stop the job (every process, every node)")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("id", help="job id (local-... or an HF job / group id)")
        sub.add_argument("--json", action="store_true", help="print one JSON document")
    logs = commands.add_parser("logs", help="print the job's logs (every node, prefixed, unless --node)")
    logs.add_argument("id", help="job id (local-... or an HF job / group id)")
    logs.add_argument("--follow", action="store_true", help="stream new lines until the job ends")
    logs.add_argument("--tail", type=int, default=None, help="only the last N lines")
    logs.add_argument("--node", type=int, default=None, help="only this node of a multi-node job (0 is the main one)")
    listing = commands.add_parser("list", help="local jobs and, with a token, HF Jobs")
    listing.add_argument("--backend", choices=["hf", "local"], default=None, help="only this backend's jobs")
    listing.add_argument("--experiment", help="only the jobs of this experiment (with their output dir and repo)")
    listing.add_argument("--json", action="store_true", help="print one JSON list of the jobs")
    return parser


def main():
    argv = sys.argv[1:]
    if argv[:1] == ["_supervise"]:  # the local backend's detached supervisor: not a command people type
        return supervise(argv[1])
    script_and_args = []
    if "--" in argv:
        split = argv.index("--")
        argv, script_and_args = argv[:split], argv[split + 1:]
    args = build_parser().parse_args(argv)
    if args.command == "submit":
        return cmd_submit(args, script_and_args)
    if args.command == "list":
        return cmd_list(args)
    local = check_id(args.id) == "local"
    if args.command == "logs":
        if args.tail is not None and args.tail < 1:
            raise BadInput(f"--tail {args.tail} is not a number of lines; use 1 or more, or drop it for the whole log.")
        return local_logs(args.id, args.follow, args.tail, args.node) if local else \
            hf_logs(args.id, args.follow, args.tail, args.node)
    if args.command == "cancel":
        return cmd_cancel(args)
    if args.command == "wait":
        return cmd_wait(args)
    info = status(args.id)
    print(json.dumps(info, indent=2) if args.json else describe(info))


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


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_EXPERIMENTAL_WARNING", "1")
    import warnings

    warnings.filterwarnings("ignore")  # library warnings are not part of the answer
    run_cli(main)
