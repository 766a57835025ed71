# /// script
# requires-python = ">=3.10"
# dependencies = ["huggingface_hub>=1.0"]
# ///
"""Submit, watch and manage training jobs on Hugging Face Jobs (`hf`) or as local detached processes (`local`).

    uv run jobs.py submit --plan plan.json -- scripts/train_sft.py --model_name_or_path Qwen/Qwen3-0.6B ...
    uv run jobs.py status ID            # "Job ID is running (45 min). Step 850/1200 · loss 1.23 (from 2.41) ..."
    uv run jobs.py logs ID [--follow] [--tail N]
    uv run jobs.py wait ID
    uv run jobs.py cancel ID
    uv run jobs.py list

Backend: `hf` when a Hugging Face token is available, `local` otherwise or with `--backend local` (no account, no
network). Local jobs run detached in their own process group with a state directory (status, logs, exit code,
timings) under the user's cache dir; the timeout is enforced and cancel ends the whole group. `HF_TOKEN` goes to
HF Jobs as a secret, never as a plain environment variable. On ERROR or TIMEOUT, `status` says what went wrong
and what to change.
"""

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

TERMINAL = {"COMPLETED", "ERROR", "CANCELED", "TIMEOUT", "DELETED"}
STATE_ROOT = Path(os.environ.get("HFLT_STATE_DIR") or
                  Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hf-llm-trainer" / "jobs")
# (kind, log pattern, what went wrong, what to change); the first match wins, so the specific ones come first.
FAILURES = [
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
    ("network", r"ConnectionError|ConnectTimeout|ReadTimeout|Temporary failure in name resolution|503 Service",
     "the Hub or the network failed for a while", "submit again with --resume_from_hub to continue from the last "
                                                 "pushed checkpoint"),
]


class BadInput(Exception):
    pass


# ---------------------------------------------------------------- shared helpers


def parse_timeout(text: str | None) -> int | None:
    if text is None:
        return None
    match = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", text.strip())
    if not text.strip() or not match or not any(match.groups()):
        raise BadInput(f"--timeout {text!r} is not a duration; write e.g. 45m, 2h, 1h30m or 3600.")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return int(hours * 3600 + minutes * 60 + seconds)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def progress_from_log(text: str) -> dict:
    entries = [json.loads(m) for m in re.findall(r"\[progress\] (\{.*\})\s*$", text, flags=re.M)]
    steps = [e for e in entries if "loss" in e or "reward" in e]
    run = re.findall(r"\[run\] (\{.*\})\s*$", text, flags=re.M)
    result = {"step": None, "total_steps": None, "loss": None, "loss_start": None, "learning_rate": None,
              "eta_s": None, "trackio": None, "output": None}
    if run:
        info = json.loads(run[-1])
        result["trackio"], result["output"] = info.get("trackio") or None, info.get("hub_repo") or info.get("output_dir")
    if steps:
        first, last = steps[0], steps[-1]
        result.update(step=entries[-1]["step"], total_steps=entries[-1]["total_steps"], loss=last.get("loss"),
                      loss_start=first.get("loss"), learning_rate=last.get("learning_rate"), reward=last.get("reward"))
        if last["step"] > first["step"] and last.get("time") and first.get("time"):
            rate = (last["time"] - first["time"]) / (last["step"] - first["step"])
            result["eta_s"] = round(max(last["total_steps"] - entries[-1]["step"], 0) * rate)
    return result


def diagnose(text: str, stage: str) -> dict | None:
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
            return {"kind": kind, "problem": problem, "fix": fix}
    tail = [line for line in text.strip().splitlines() if line.strip()][-1:] or ["(no output)"]
    return {"kind": "unknown", "problem": f"the script failed: {tail[0][:300]}",
            "fix": "read the end of the logs (jobs.py logs ID --tail 50)"}


def describe(info: dict) -> str:
    stage = info["stage"].lower()
    lines = [f"Job {info['id']} is {stage} ({duration(info['elapsed_s'])})."]
    if info["step"] is not None:
        parts = [f"Step {info['step']}/{info['total_steps']}"]
        if info["loss"] is not None:
            parts.append(f"loss {info['loss']:.3g}" + (f" (from {info['loss_start']:.3g})" if info["loss_start"] else ""))
        if info.get("reward") is not None:
            parts.append(f"reward {info['reward']:.3g}")
        if info["learning_rate"] is not None:
            parts.append(f"learning rate {info['learning_rate']:.2g}")
        if info["eta_s"] is not None and info["stage"] == "RUNNING":
            parts.append(f"about {duration(info['eta_s'])} left")
        lines.append(" · ".join(parts) + ".")
    if info.get("url"):
        lines.append(f"Logs: {info['url']}")
    if info["trackio"] and info["trackio"].get("space"):
        lines.append(f"Trackio: https://huggingface.co/spaces/{info['trackio']['space']}")
    if info.get("output") and info["stage"] == "COMPLETED":
        lines.append(f"Model: {info['output']}")
    if info["diagnosis"]:
        lines.append(f"What went wrong: {info['diagnosis']['problem']}.")
        lines.append(f"Fix: {info['diagnosis']['fix']}.")
    return "\n".join(lines)


def status_record(job_id, stage, elapsed, log_text, **extra) -> dict:
    info = {"id": job_id, "stage": stage, "elapsed_s": round(elapsed) if elapsed is not None else None}
    info.update(progress_from_log(log_text))
    if info["eta_s"] is None and info["step"] and elapsed:  # one progress line so far: rate since the start
        info["eta_s"] = round((info["total_steps"] - info["step"]) * elapsed / info["step"])
    info["diagnosis"] = diagnose(log_text, stage)
    return info | extra


# ---------------------------------------------------------------- local backend


def local_dir(job_id: str) -> Path:
    path = STATE_ROOT / job_id
    if not (path / "spec.json").exists():
        raise BadInput(f"No local job {job_id!r}; `jobs.py list` shows the known ones.")
    return path


def write_json(path: Path, data: dict):
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def local_command(script: str, args: list[str], packages: list[str]) -> list[str]:
    from shutil import which

    python = os.environ.get("HFLT_LOCAL_PYTHON")
    if python or not which("uv"):
        if packages:
            raise BadInput("--with needs uv on the local backend (pip install uv); or install the packages into the "
                           "Python that runs the script.")
        return [python or sys.executable, script, *args]
    return ["uv", "run", *[f"--with={package}" for package in packages], script, *args]


def local_submit(script: str, args: list[str], packages: list[str], name: str, timeout: int | None,
                 labels: dict) -> dict:
    command = local_command(str(Path(script).resolve()), args, packages)
    job_id = f"local-{uuid.uuid4().hex[:10]}"
    path = STATE_ROOT / job_id
    path.mkdir(parents=True)
    spec = {"id": job_id, "name": name, "command": command, "timeout_s": timeout, "labels": labels,
            "created_at": time.time(), "cwd": os.getcwd()}
    write_json(path / "spec.json", spec)
    write_json(path / "status.json", {"stage": "SCHEDULING"})
    subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "_supervise", job_id], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return {"id": job_id, "url": str(path / "log")}


def supervise(job_id: str):
    """Runs in its own session: starts the job's process group, enforces the timeout, records the outcome."""
    path = STATE_ROOT / job_id
    spec = json.loads((path / "spec.json").read_text())
    env = {**os.environ, "HFLT_JOB_ID": job_id, "HFLT_JOB_URL": str(path / "log"), "HFLT_FLAVOR": "local"}
    with open(path / "log", "ab", buffering=0) as log:
        child = subprocess.Popen(spec["command"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True, env=env, cwd=spec["cwd"])
        started = time.time()
        write_json(path / "status.json", {"stage": "RUNNING", "started_at": started, "pid": child.pid,
                                          "supervisor_pid": os.getpid()})
        try:
            code = child.wait(timeout=spec["timeout_s"])
            stage = "CANCELED" if (path / "cancel").exists() else "COMPLETED" if code == 0 else "ERROR"
        except subprocess.TimeoutExpired:
            stop_group(child.pid)
            code, stage = child.wait(), "TIMEOUT"
            log.write(f"\n[jobs] timeout after {spec['timeout_s']}s: process group stopped\n".encode())
    write_json(path / "status.json", {"stage": stage, "started_at": started, "finished_at": time.time(),
                                      "exit_code": code, "pid": child.pid})


def stop_group(pid: int):
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.time() + wait
        while time.time() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def local_status(job_id: str) -> dict:
    path = local_dir(job_id)
    spec = json.loads((path / "spec.json").read_text())
    status = json.loads((path / "status.json").read_text())
    stage = status["stage"]
    if stage == "RUNNING" and not alive(status.get("supervisor_pid")):
        stage = "ERROR"  # the supervisor was killed (reboot, kill -9): the job cannot be running any more
        status["finished_at"] = (path / "status.json").stat().st_mtime
    end = status.get("finished_at") or time.time()
    elapsed = end - status["started_at"] if status.get("started_at") else None
    text = (path / "log").read_text(errors="replace") if (path / "log").exists() else ""
    return status_record(job_id, stage, elapsed, text, backend="local", url=str(path / "log"), flavor="local",
                         name=spec["name"], exit_code=status.get("exit_code"), labels=spec["labels"],
                         created_at=spec["created_at"])


def local_cancel(job_id: str):
    path = local_dir(job_id)
    status = json.loads((path / "status.json").read_text())
    if status["stage"] in TERMINAL:
        return status["stage"]
    (path / "cancel").touch()
    for _ in range(50):  # the supervisor writes SCHEDULING -> RUNNING quickly after submission
        status = json.loads((path / "status.json").read_text())
        if status.get("pid"):
            break
        time.sleep(0.1)
    if status.get("pid"):
        stop_group(status["pid"])
    for _ in range(100):
        if json.loads((path / "status.json").read_text())["stage"] in TERMINAL:
            break
        time.sleep(0.1)
    return "CANCELED"


def local_logs(job_id: str, follow: bool, tail: int | None):
    path = local_dir(job_id) / "log"
    text = path.read_text(errors="replace") if path.exists() else ""
    lines = text.splitlines()
    print("\n".join(lines[-tail:] if tail else lines), flush=True)
    if follow:
        with open(path, errors="replace") as f:
            f.seek(0, 2)
            while True:
                line = f.readline()
                if line:
                    print(line, end="", flush=True)
                elif local_status(job_id)["stage"] in TERMINAL:
                    print(f.read(), end="", flush=True)
                    return
                else:
                    time.sleep(0.5)


# ---------------------------------------------------------------- hf backend


def hf_api():
    from huggingface_hub import HfApi

    return HfApi()


def hf_submit(script: str, args: list[str], packages: list[str], name: str, flavor: str, timeout: int,
              labels: dict) -> dict:
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise BadInput("No Hugging Face token: run `hf auth login` (or set HF_TOKEN), or use --backend local.")
    with contextlib.redirect_stdout(sys.stderr):  # the library prints where it shipped the script
        job = hf_api().run_uv_job(script, script_args=args, dependencies=packages or None, flavor=flavor,
                                  timeout=timeout, name=name, labels=labels, secrets={"HF_TOKEN": token},
                                  env={"HFLT_FLAVOR": flavor})
    return {"id": job.id, "url": job.url}


def hf_status(job_id: str) -> dict:
    api = hf_api()
    job = api.inspect_job(job_id=job_id)
    text = "\n".join(api.fetch_job_logs(job_id=job_id, follow=False))
    if job.started_at:
        elapsed = ((job.finished_at or datetime.now(timezone.utc)) - job.started_at).total_seconds()
    else:
        elapsed = job.durations.running_secs if job.durations else None
    info = status_record(job.id, str(job.status.stage.value if hasattr(job.status.stage, "value") else job.status.stage),
                         elapsed, text, backend="hf", url=job.url, flavor=job.flavor, labels=job.labels,
                         message=job.status.message)
    if info["stage"] == "ERROR" and job.status.message and "timeout" in job.status.message.lower():
        info["stage"], info["diagnosis"] = "TIMEOUT", diagnose(text, "TIMEOUT")
    return info


# ---------------------------------------------------------------- commands


def is_local(job_id: str) -> bool:
    return job_id.startswith("local-")


def status(job_id: str) -> dict:
    return local_status(job_id) if is_local(job_id) else hf_status(job_id)


def choose_backend(requested: str | None) -> str:
    if requested:
        return requested
    from huggingface_hub import get_token

    return "hf" if get_token() else "local"


def cmd_submit(args, script_and_args: list[str]):
    if not script_and_args:
        raise BadInput("Name the script after `--`: jobs.py submit [options] -- train_sft.py --model_name_or_path ...")
    script, script_args = script_and_args[0], script_and_args[1:]
    if not script.startswith(("http://", "https://")) and not Path(script).is_file():
        raise BadInput(f"Script {script} does not exist; pass the path of a bundled script such as scripts/train_sft.py.")
    plan = {}
    if args.plan:
        try:
            plan = json.loads(Path(args.plan).read_text())
        except (OSError, ValueError) as error:
            raise BadInput(f"--plan {args.plan} is not a plan.py --json file ({error}).")
        present = set(script_args)
        extra = plan.get("training_args", [])
        for flag, value in zip(extra[::2], extra[1::2]):
            if flag not in present:
                script_args += [flag, value]
    backend = choose_backend(args.backend)
    trainer = Path(script).name.startswith("train_")
    flavor = args.flavor or plan.get("flavor") or "cpu-basic"
    timeout_text = args.timeout or plan.get("timeout")
    warnings = []
    if timeout_text is None:
        timeout_text = "2h" if backend == "hf" else None
        if trainer and backend == "hf":
            warnings.append("no --timeout or --plan: using 2h; plan.py gives a timeout from the estimate")
    timeout = parse_timeout(timeout_text)
    if backend == "hf" and trainer:
        if "--push_to_hub" not in script_args:
            raise BadInput("A training job on HF Jobs without --push_to_hub loses the model when the job ends; add "
                           "--push_to_hub (and --hub_model_id user/name).")
        if "--trackio_space_id" not in script_args and "--report_to" not in script_args and not args.dry_run:
            script_args += ["--trackio_space_id", f"{hf_api().whoami()['name']}/trackio"]
    name = args.name or f"{Path(script).stem.replace('_', '-')}-{time.strftime('%m%d-%H%M%S')}"
    labels = {"tool": "hf-llm-trainer", "script": Path(script).stem}
    if args.experiment:
        labels["experiment"] = args.experiment
    result = {"backend": backend, "flavor": flavor if backend == "hf" else "local", "timeout": timeout_text,
              "timeout_s": timeout, "estimated_cost_usd": plan.get("cost_usd") if backend == "hf" else 0.0,
              "estimated_time_hours": plan.get("time_hours"), "name": name, "labels": labels,
              "command": [script, *script_args], "with": args.with_packages, "warnings": warnings}
    if args.dry_run:
        result |= {"id": None, "url": None, "dry_run": True,
                   "secrets": ["HF_TOKEN"] if backend == "hf" else []}
    elif backend == "hf":
        result |= hf_submit(script, script_args, args.with_packages, name, flavor, timeout, labels)
    else:
        result |= local_submit(script, script_args, args.with_packages, name, timeout, labels)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for warning in warnings:
        print(f"Note: {warning}")
    if args.dry_run:
        print(f"Dry run: would submit to {backend} ({result['flavor']}, timeout {timeout_text or 'none'}):\n  "
              + " ".join([*(f"--with {package}" for package in args.with_packages), *result["command"]]))
        return
    print("Job submitted.")
    print(f"Job ID: {result['id']}")
    print(f"Monitor: {result['url']}")
    space = next((script_args[i + 1] for i, a in enumerate(script_args[:-1]) if a == "--trackio_space_id"), None)
    if space:
        print(f"Trackio: https://huggingface.co/spaces/{space}")
    if plan:
        print(f"Estimated time ~{plan['time_hours'] * 60:.0f} min, estimated cost ~${plan['cost_usd']:.2f}.")


def cmd_list(args):
    jobs = []
    if STATE_ROOT.exists():
        for path in sorted(STATE_ROOT.glob("local-*"), key=lambda p: p.stat().st_mtime):
            if (path / "spec.json").exists():
                info = local_status(path.name)
                jobs.append({key: info[key] for key in ("id", "stage", "name", "elapsed_s", "step", "total_steps")}
                            | {"backend": "local"})
    if args.backend != "local":
        from huggingface_hub import get_token

        if get_token():
            for job in hf_api().list_jobs():
                jobs.append({"id": job.id, "stage": str(getattr(job.status.stage, "value", job.status.stage)),
                             "name": (job.labels or {}).get("name"), "backend": "hf", "flavor": job.flavor})
    if args.json:
        print(json.dumps(jobs, indent=2))
        return
    for job in jobs:
        print(f"{job['id']:28} {job['stage']:10} {job['backend']:5} {job.get('name') or ''}")
    if not jobs:
        print("No jobs.")


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    submit = commands.add_parser("submit", help="submit a script: jobs.py submit [options] -- script.py [args]")
    submit.add_argument("--backend", choices=["hf", "local"], default=None,
                        help="hf (HF Jobs; default with a token) or local (default without one)")
    submit.add_argument("--plan", help="a plan.py --json file: flavor, timeout, batch flags and estimates")
    submit.add_argument("--flavor", help="HF Jobs hardware flavor, e.g. t4-small, a10g-large, a100-large")
    submit.add_argument("--timeout", help="e.g. 45m, 2h, 1h30m (default: the plan's, else 2h on HF Jobs)")
    submit.add_argument("--name", help="job name (default: script name and time)")
    submit.add_argument("--experiment", help="label that ties the job to an experiment report")
    submit.add_argument("--with", dest="with_packages", action="append", default=[], metavar="PACKAGE",
                        help="extra package for the job's environment, e.g. 'vllm>=0.22,<=0.31' (repeatable)")
    submit.add_argument("--dry-run", dest="dry_run", action="store_true", help="show what would be submitted")
    submit.add_argument("--json", action="store_true")
    for name, text in (("status", "progress, and on failure what went wrong"), ("wait", "wait until it ends"),
                       ("cancel", "stop the job (the whole process group locally)")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("id")
        sub.add_argument("--json", action="store_true")
    logs = commands.add_parser("logs", help="print the job's logs")
    logs.add_argument("id")
    logs.add_argument("--follow", action="store_true")
    logs.add_argument("--tail", type=int, default=None)
    listing = commands.add_parser("list", help="local jobs and, with a token, HF Jobs")
    listing.add_argument("--backend", choices=["hf", "local"], default=None)
    listing.add_argument("--json", action="store_true")
    supervise_parser = commands.add_parser("_supervise", help=argparse.SUPPRESS)
    supervise_parser.add_argument("id")
    return parser


def main():
    argv = sys.argv[1:]
    script_and_args = []
    if "--" in argv:
        split = argv.index("--")
        argv, script_and_args = argv[:split], argv[split + 1:]
    args = build_parser().parse_args(argv)
    if args.command == "_supervise":
        return supervise(args.id)
    if args.command == "submit":
        return cmd_submit(args, script_and_args)
    if args.command == "list":
        return cmd_list(args)
    if args.command == "logs":
        if is_local(args.id):
            return local_logs(args.id, args.follow, args.tail)
        for line in hf_api().fetch_job_logs(job_id=args.id, follow=args.follow, tail=args.tail):
            print(line, flush=True)
        return
    if args.command == "cancel":
        stage = local_cancel(args.id) if is_local(args.id) else (hf_api().cancel_job(job_id=args.id) or "CANCELED")
        print(json.dumps({"id": args.id, "stage": stage}) if args.json else f"Job {args.id}: {stage.lower()}.")
        return
    info = status(args.id)
    if args.command == "wait":
        last = None
        while info["stage"] not in TERMINAL:
            if not args.json and (info["step"], info["stage"]) != last:
                print(describe(info).splitlines()[1 if info["step"] is not None else 0], flush=True)
                last = (info["step"], info["stage"])
            time.sleep(float(os.environ.get("HFLT_POLL_S", "5")))
            info = status(args.id)
    print(json.dumps(info, indent=2, default=str) if args.json else describe(info))
    if args.command == "wait" and info["stage"] != "COMPLETED":
        sys.exit(1)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_EXPERIMENTAL_WARNING", "1")
    try:
        main()
    except BadInput as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
