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
    uv run report.py --experiment qwen3-codeforces --runs outputs/sft-cpu username/qwen3-sft --evals base-eval.json

The runs come from three places, remembered in training_reports/<experiment>/runs.json so that a later
`--experiment E` alone refreshes them all: plans recorded with `--plan plan.json --name NAME` (plan.py --json), the
jobs labelled with the experiment (`jobs.py submit --experiment E --name NAME`; the beside jobs.py is asked), and
run records given with `--runs` (run.json files, training output dirs or Hub repos). A job named like a plan takes
the plan's section over. Each run gets a section `name` - `date` - `status` with its parameters (hardware,
timeout, eval and save interval), status and progress, what went wrong and its fix when it failed, the job link,
the Trackio link to its project and run, a loss curve and its evaluations. The experiment table lists every
evaluation with its date and time, the base model's included (`--evals`, eval_humaneval.py --json outputs), and a
TBD row for each evaluation not run yet. Generated parts sit between `<!-- hflt:... -->` markers: re-running
updates them in place and keeps everything written by hand outside them.
"""

import argparse
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

BEGIN, END = "<!-- hflt:begin {} -->", "<!-- hflt:end {} -->"
NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
METHODS = {"sft": "SFT (TRL)", "dpo": "DPO (TRL)", "grpo": "GRPO (TRL)"}
BENCHMARKS = {"humaneval": "HumanEval"}
STAGES = {"SCHEDULING": "Scheduled", "RUNNING": "In progress", "COMPLETED": "Completed", "ERROR": "Failed",
          "TIMEOUT": "Timed out", "CANCELED": "Cancelled", "DELETED": "Deleted"}
NOT_EVALUATED = {"Failed", "Cancelled", "Deleted"}  # no model to evaluate: no TBD row


# ---------------------------------------------------------------- inputs


def is_local(source: str) -> bool:
    return Path(source).exists() or source.endswith(".json") or source.startswith((".", "/", "~"))


def load_record(source: str, required: bool = True) -> dict | None:
    """The run.json of a file, a training output directory or a Hub repo; None when it has none yet and not
    `required` (a job that has not written or pushed it)."""
    if is_local(source):
        path = Path(source).expanduser()
        path = path / "run.json" if path.is_dir() else path
        if not path.exists():
            if required:
                raise BadInput(f"No run record at {path}; pass a run.json, a training output directory or a Hub repo.")
            return None
    else:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

        try:
            path = Path(hf_hub_download(source, "run.json"))
        except (EntryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError, ValueError) as error:
            if required:
                raise BadInput(f"{source} is not a local run and its Hub repo has no run.json "
                               f"({error.__class__.__name__}); pass a training output directory or a Hub repo that "
                               "a trainer pushed to.") from None
            return None
    record = read_run_record(path)
    if not isinstance(record, dict) or not {"method", "base_model", "config"} <= record.keys():
        raise BadInput(f"{path} is not a run record (the run.json a train_*.py script writes: method, base_model, "
                       "config ...); pass a training output directory or its run.json.")
    return record


def load_json(path: str, flag: str) -> object:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise BadInput(f"{flag} {path} cannot be read as JSON ({error.__class__.__name__}); pass the file the "
                       "script wrote with --json.") from None


def load_evaluation(path: str) -> dict:
    evaluation = load_json(path, "--evals")
    if not isinstance(evaluation, dict) or not {"benchmark", "model"} <= evaluation.keys() or \
            score(evaluation) is None:
        raise BadInput(f"--evals {path} is not an eval_humaneval.py --json output (it has no benchmark, model and "
                       "score); write one with `eval_humaneval.py --model <base model> --json > base-eval.json`.")
    return evaluation


def load_plan(path: str) -> dict:
    plan = load_json(path, "--plan")
    if not isinstance(plan, dict) or not {"model", "method", "flavor", "time_hours"} <= plan.keys():
        raise BadInput(f"--plan {path} is not a plan.py --json output (it has no model, method, flavor and time "
                       "estimate); write one with `plan.py --model ... --method ... --json > plan.json`.")
    return plan


def experiment_jobs(experiment: str) -> list[dict]:
    """The training jobs labelled with the experiment, each with its status (progress, diagnosis, timeout), as
    the bundled jobs.py reports them; report.py runs beside it in the same environment."""
    jobs_script = Path(__file__).with_name("jobs.py")
    if not jobs_script.exists():
        print("Note: jobs.py is not beside report.py, so the experiment's jobs are not read.", file=sys.stderr)
        return []
    listed = jobs_json(jobs_script, "list", "--experiment", experiment) or []
    return [jobs_json(jobs_script, "status", job["id"]) or job for job in listed
            if (job.get("script") or "").startswith("train_")]


def jobs_json(jobs_script: Path, *args: str):
    result = subprocess.run([sys.executable, str(jobs_script), *args, "--json"], capture_output=True, text=True)
    if result.stderr.strip():
        print(f"Note from jobs.py {args[0]}: {result.stderr.strip()}", file=sys.stderr)
    return json.loads(result.stdout) if result.returncode == 0 else None


# ---------------------------------------------------------------- the runs of the experiment


def run_name(record: dict) -> str:
    return (record.get("trackio") or {}).get("run") or Path(record["output_dir"]).name


def new_entry(runs: list[dict], name: str) -> dict:
    name = re.sub(r"[^A-Za-z0-9._-]", "-", name).strip("-.") or "run"
    taken = {entry["name"] for entry in runs}
    unique = next(candidate for candidate in [name] + [f"{name}-{n}" for n in range(2, 1000)]
                  if candidate not in taken)
    runs.append({"name": unique, "job": None, "source": None, "plan": None})
    return runs[-1]


def find(runs: list[dict], **wanted) -> dict | None:
    return next((entry for entry in runs if any(value and entry.get(key) == value for key, value in wanted.items())),
                None)


def job_name(job: dict) -> str:
    """The name given at submission (jobs.py --name), else the run name the trainer printed, else the id."""
    return (job.get("name") or (job.get("labels") or {}).get("name") or (job.get("trackio") or {}).get("run")
            or job["id"])


def record_jobs(record: dict) -> set:
    """The ids a run record answers to: its job's, and its group's for a multi-node job (none: a run by hand)."""
    job = record.get("job") or {}
    return {value for value in (job.get("id"), job.get("group")) if value}


def job_source(job: dict) -> str | None:
    """Where a job's run.json is read: the repo it pushes to for an HF job (its output dir was in the job's
    container), a local job's output dir when it is still on this machine."""
    if job.get("backend") != "hf" and job.get("output_dir") and Path(job["output_dir"]).is_dir():
        return job["output_dir"]
    return job.get("hub_repo")


# ---------------------------------------------------------------- rendering


def score(evaluation: dict) -> float | None:
    return evaluation.get("score", evaluation.get("pass@1"))


def moment(stamp: str | None) -> str:
    """2025-12-09T13:47:00Z -> 2025-12-09 13:47 UTC."""
    return f"{stamp[:10]} {stamp[11:16]} UTC" if stamp and len(stamp) >= 16 else "-"


def compact(seconds: float) -> str:
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return ((f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")) or "0s"


def minutes(seconds: float) -> str:
    return f"{round(seconds / 60)} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def link(url: str | None, text: str) -> str:
    return f"[{text}]({url})" if url else text


def hub_url(name: str | None, kind: str = "") -> str | None:
    if not name or is_local(name) or not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", name):
        return None
    return f"https://huggingface.co/{kind}{name}"


def model_cell(model: str | None) -> str:
    if not model:
        return "-"
    return link(hub_url(model), model) if hub_url(model) else f"`{model}`"


def benchmark_title(evaluation: dict | str) -> str:
    benchmark = evaluation if isinstance(evaluation, str) else evaluation["benchmark"]
    metric = "pass@1" if isinstance(evaluation, str) else evaluation.get("metric", "pass@1")
    return f"{BENCHMARKS.get(benchmark, benchmark)} {metric}"


def job_cell(evaluation: dict) -> str:
    """An evaluation's job: a link to its logs on HF Jobs, or the local job's id."""
    job = evaluation.get("job")
    url, job_id = (job.get("url"), job.get("id")) if isinstance(job, dict) else (job, evaluation.get("job_id"))
    if url and url.startswith("http"):
        return link(url, "logs")
    return f"`{job_id}`" if job_id else "-"


def run_status(record: dict | None, job: dict | None) -> str:
    if record and record.get("status") == "completed":
        return "Completed"
    if job:
        return STAGES.get(job["stage"], job["stage"].title())
    if record and record.get("status") == "failed":  # a run by hand whose training raised
        return "Failed"
    return "In progress" if record else "Planned"


def timeout_text(job: dict | None, plan: dict | None) -> str:
    job = job or {}
    if job.get("timeout_s"):
        return compact(job["timeout_s"])
    return (job.get("labels") or {}).get("timeout") or (plan or {}).get("timeout") or "none"


def hardware_text(record: dict | None, job: dict | None, plan: dict | None) -> str:
    if record:
        hardware = record.get("hardware") or {}
        gpus = hardware.get("gpus") or 0
        device = f"{gpus} x {hardware['gpu']}" if gpus > 1 else hardware.get("gpu") or "CPU"
        if hardware.get("nodes", 1) > 1:
            device = f"{hardware['nodes']} nodes, {device} each"
        if hardware.get("peak_memory_gb"):
            device += f", {hardware['peak_memory_gb']} GB peak"
        return f"{hardware.get('flavor') or (job or {}).get('flavor') or '-'} ({device})"
    if plan:
        return f"{plan['flavor']} ({plan.get('gpus', 1)} x {plan.get('gpu')}, {plan.get('strategy', 'single')})"
    return (job or {}).get("flavor") or "-"


def eval_and_save(config: dict) -> str:
    save = f"every {config.get('save_steps')} steps"
    if config.get("eval_strategy") in (None, "no"):
        every = f"no eval, save {save}"
    elif config.get("eval_strategy") == "steps" and config.get("eval_steps") not in (None, config.get("save_steps")):
        every = f"eval every {config['eval_steps']} steps, save {save}"
    elif config.get("eval_strategy") == "epoch":
        every = f"eval every epoch, save {save}"
    else:
        every = save
    return f"{every}, hub_strategy={config.get('hub_strategy')}, keep {config.get('save_total_limit')}"


def flag(value) -> str:
    return str(bool(value)).lower()


def number(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def record_rows(record: dict) -> list[tuple[str, str]]:
    config, dataset, hardware = record["config"], record.get("dataset") or {}, record.get("hardware") or {}
    split = dataset.get("split") or "train"
    if dataset.get("eval_ratio"):
        split += f", {dataset['eval_ratio']:.0%} eval split"
    mapping = dataset.get("mapping")
    if isinstance(mapping, dict):
        mapping = ",".join(f"{new}={old}" for new, old in mapping.items())
    batch, accumulation = config.get("per_device_train_batch_size"), config.get("gradient_accumulation_steps")
    processes = hardware.get("world_size") or hardware.get("processes") or 1
    peft = record.get("peft") or "none"
    rows = [("Method", METHODS.get(record["method"], record["method"]) + (f", {peft.upper()}" if peft != "none" else "")),
            ("Model", f"`{record['base_model']}`"),
            ("Dataset", f"`{dataset.get('name')}` ({split}, {dataset.get('rows')} rows)"
             + (f", mapping `{mapping}`" if mapping else "")
             + (f", converted from {dataset['convert']}" if dataset.get("convert") else "")),
            ("Max length", number(config.get("max_length") or config.get("max_completion_length") or "-")),
            ("Epochs", number(config.get("num_train_epochs")))]
    if (config.get("max_steps") or -1) > 0:
        rows.append(("Steps", f"{config['max_steps']} steps"))
    rows += [("Per-device batch / grad. accumulation / effective",
              f"{batch} / {accumulation} / {batch * accumulation * processes if batch and accumulation else '-'}"),
             ("Learning rate / weight decay / warmup", " / ".join(number(config.get(key)) for key in
                                                                   ("learning_rate", "weight_decay", "warmup_steps"))),
             ("Eval and save", eval_and_save(config)),
             ("Precision / gradient checkpointing / packing",
              f"{'bf16' if config.get('bf16') else 'fp16' if config.get('fp16') else 'fp32'} / "
              f"{flag(config.get('gradient_checkpointing'))} / {flag(config.get('packing'))}")]
    if record.get("loss_masking"):
        rows.append(("Loss on", record["loss_masking"]))
    rows.append(("Hub repo", f"`{record['hub_repo']}`" if record.get("hub_repo")
                 else f"local: `{record.get('output_dir')}`"))
    return rows


def plan_rows(plan: dict) -> list[tuple[str, str]]:
    peft = plan.get("peft") or "none"
    batch, accumulation = plan.get("per_device_train_batch_size"), plan.get("gradient_accumulation_steps")
    processes = (plan.get("gpus") or 1) * (plan.get("nodes") or 1)
    rows = [("Method", METHODS.get(plan["method"], plan["method"]) + (f", {peft.upper()}" if peft != "none" else "")),
            ("Model", f"`{plan['model']}`"),
            ("Max length", number(plan.get("max_length") or plan.get("max_completion_length") or "-")),
            ("Epochs", number(plan.get("epochs"))),
            ("Per-device batch / grad. accumulation / effective",
             f"{batch} / {accumulation} / {batch * accumulation * processes if batch and accumulation else '-'}"),
            ("Precision", plan.get("precision") or "-"),
            ("Estimated time / cost", f"{minutes(plan['time_hours'] * 3600)} / "
                                      + (f"${plan['cost_usd']:.2f}" if plan.get("cost_usd") is not None else "-"))]
    return rows


def trackio_text(trackio: dict, job: dict | None) -> str:
    """The Space dashboard opened on the run (trackio's own query parameters), or the local store it logged to."""
    project, run = trackio.get("project"), trackio.get("run")
    if trackio.get("space"):
        query = urlencode({"project": project, "runs": run} if run else {"project": project})
        return link(f"https://huggingface.co/spaces/{trackio['space']}?{query}", f"project {project}, run {run}")
    from huggingface_hub import constants

    store = (job or {}).get("trackio_dir") or os.environ.get("TRACKIO_DIR") or str(Path(constants.HF_HOME) / "trackio")
    return f"project `{project}`, run `{run}` in the local store `{store}`: `trackio show --project \"{project}\"`"


def progress_text(status: str, record: dict | None, job: dict | None, plan: dict | None) -> str:
    if status == "Planned":
        cost = f", ~${plan['cost_usd']:.2f}" if plan.get("cost_usd") is not None else ""
        return (f"Planned, not submitted yet: about {minutes(plan['time_hours'] * 3600)}{cost} on {plan['flavor']}, "
                f"timeout {plan.get('timeout') or 'none'}.")
    if status == "Completed" and record and record.get("status") == "completed":
        steps, metrics = record.get("steps") or {}, record.get("metrics") or {}
        final = metrics.get("final") or {}
        text = f"Completed: step {steps.get('done')}/{steps.get('total')}"
        if final.get("loss") is not None:
            first = metrics.get("first_loss")
            text += f", final loss {final['loss']:.4g}" + (f" (from {first:.4g})" if first else "")
        if final.get("eval_loss") is not None:
            text += f", eval loss {final['eval_loss']:.4g}"
        if final.get("reward") is not None:
            text += f", reward {final['reward']:.4g}"
        return text + f", finished {moment(record.get('finished_at'))}."
    if not job:
        return f"{status}: started {moment((record or {}).get('started_at'))}; no job of this experiment runs it."
    elapsed = job.get("elapsed_s")
    text = status + (f" after {minutes(elapsed)}" if elapsed is not None and status != "In progress" else "")
    text += f" ({minutes(elapsed)} so far)" if elapsed is not None and status == "In progress" else ""
    if job.get("step") is not None:
        text += f": step {job['step']}/{job.get('total_steps')}"
        if job.get("loss") is not None:
            text += f", loss {job['loss']:.4g}" + (f" (from {job['loss_start']:.4g})" if job.get("loss_start") else "")
        if job.get("reward") is not None:
            text += f", reward {job['reward']:.4g}"
        if job.get("eta_s") is not None and status == "In progress":
            text += f", about {minutes(job['eta_s'])} left"
    text += "."
    diagnosis = job.get("diagnosis")
    if diagnosis:
        text += f"\nWhat went wrong: {diagnosis['problem']}. Fix: {diagnosis['fix']}."
    return text


def run_section(entry: dict, record: dict | None, job: dict | None, status: str, plot: str | None,
                benchmarks: list[str]) -> str:
    plan = entry.get("plan")
    started = (record or {}).get("started_at") or (job or {}).get("created_at") or entry.get("planned_at")
    rows = record_rows(record) if record else plan_rows(plan) if plan else []
    rows.append(("Hardware / timeout", f"{hardware_text(record, job, plan)} / {timeout_text(job, plan)}"))
    trackio = (record or {}).get("trackio") or (job or {}).get("trackio") or {}
    if trackio:
        rows.append(("Trackio", f"project `{trackio.get('project')}`, run `{trackio.get('run')}`"))
    lines = [f"# `{entry['name']}` - `{moment(started)}` - `{status}`", "## Training parameters",
             "| Parameter | Value |\n|---|---|\n" + "\n".join(f"| {key} | {value} |" for key, value in rows),
             "## Run status", progress_text(status, record, job, plan), "## Run logs"]
    recorded_job = (record or {}).get("job") or {}
    job_id, url = (job or {}).get("id") or entry.get("job"), (job or {}).get("url") or recorded_job.get("url")
    if url and url.startswith("http"):
        lines.append(link(url, f"job {job_id}"))
    elif job_id:
        lines.append(f"job `{job_id}`" + (f": `{url}`" if url else "") + f" (`jobs.py logs {job_id}`)")
    else:
        lines.append("not submitted yet" if status == "Planned" else "no job: the logs are where the run was started")
    lines += ["## Trackio logs", trackio_text(trackio, job) if trackio else "-"]
    if plot:
        lines.append(f"![loss curve of {entry['name']}]({plot})")
    lines.append("## Evaluation")
    evaluations = (record or {}).get("evaluations") or []
    lines += [f"- {benchmark_title(e)}: {score(e):.3f}" + (f" on {e['n']} problems" if e.get("n") else "")
              + f", {moment(e.get('date'))}" + (f" (base model `{e['model']}`)" if of_base(e, record) else "")
              for e in evaluations]
    if status not in NOT_EVALUATED:
        done = {e["benchmark"] for e in evaluations if not of_base(e, record)}
        lines += [f"- {benchmark_title(b)}: TBD" for b in benchmarks if b not in done]
    return "\n".join(lines + (["-"] if lines[-1] == "## Evaluation" else []))


def of_base(evaluation: dict, record: dict | None) -> bool:
    """An evaluation recorded with a run but made of its base model (eval_humaneval.py --model BASE --run RUN)."""
    return bool(record and evaluation.get("model") and evaluation["model"] == record.get("base_model")
                and not evaluation.get("revision") and not evaluation.get("subfolder"))


def evaluations_table(runs: list[tuple[dict, dict | None, str]], base_evals: list[dict], base_model: str | None,
                      benchmarks: list[str]) -> str:
    rows, scores = [], {}  # scores: benchmark -> (base scores, [(run, score)])
    base_evals = base_evals + [e for _, record, _ in runs for e in (record or {}).get("evaluations") or []
                               if of_base(e, record)]
    for benchmark in benchmarks:
        done = [e for e in base_evals if e["benchmark"] == benchmark]
        for evaluation in done:
            rows.append((f"`base-{benchmark}` - `{moment(evaluation.get('date'))}` - `Completed`", evaluation,
                         evaluation["model"]))
            scores.setdefault(benchmark, ([], []))[0].append(score(evaluation))
        if not done and base_model:
            rows.append((f"`base-{benchmark}` - `-` - `TBD`", benchmark, base_model))
    for entry, record, status in runs:
        model = (record or {}).get("hub_repo") or (record or {}).get("output_dir")
        evaluations = [e for e in (record or {}).get("evaluations") or [] if not of_base(e, record)]
        for evaluation in evaluations:
            evaluated = evaluation.get("model") or model
            evaluated += f"@{evaluation['revision']}" if evaluation.get("revision") else ""
            evaluated += f"/{evaluation['subfolder']}" if evaluation.get("subfolder") else ""
            rows.append((f"`{entry['name']}` - `{moment(evaluation.get('date'))}` - `Completed`", evaluation, evaluated))
            scores.setdefault(evaluation["benchmark"], ([], []))[1].append((entry["name"], score(evaluation)))
        if status not in NOT_EVALUATED:
            done = {e["benchmark"] for e in evaluations}
            rows += [(f"`{entry['name']}` - `-` - `TBD`", b, model) for b in benchmarks if b not in done]
    lines = ["# Experiment evaluations", "| Run | Benchmark | Score | Eval job | Model |", "|---|---|---|---|---|"]
    for title, evaluation, model in rows:
        if isinstance(evaluation, str):  # not run yet
            lines.append(f"| {title} | {benchmark_title(evaluation)} | TBD | - | {model_cell(model)} |")
        else:
            lines.append(f"| {title} | {benchmark_title(evaluation)} | {score(evaluation):.3f} | "
                         f"{job_cell(evaluation)} | {model_cell(model)} |")
    verdicts = []
    for benchmark, (base, tuned) in scores.items():
        if base and tuned:
            name, best = max(tuned, key=lambda item: item[1])
            verdict = "beats" if best > max(base) else "does not beat"
            verdicts.append(f"Best fine-tuned run `{name}` ({best:.3f}) {verdict} the base model ({max(base):.3f}) on "
                            f"{BENCHMARKS.get(benchmark, benchmark)}.")
    return "\n".join(lines + ([""] + verdicts if verdicts else []))


def loss_plot(record: dict, name: str, target: Path) -> bool:
    history = record.get("log_history") or []
    train = [(e["step"], e["loss"]) for e in history if "loss" in e]
    evals = [(e["step"], e["eval_loss"]) for e in history if "eval_loss" in e]
    if not train:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.2), dpi=100)
    axis.plot(*zip(*train), label="train loss")
    if evals:
        axis.plot(*zip(*evals), marker="o", label="eval loss")
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    axis.set_title(name)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target)
    plt.close(figure)
    return True


def replace_block(text: str, name: str, body: str, before: str | None = None) -> str:
    block = f"{BEGIN.format(name)}\n{body}\n{END.format(name)}"
    pattern = re.compile(re.escape(BEGIN.format(name)) + r".*?" + re.escape(END.format(name)), re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text)
    if before and BEGIN.format(before) in text:
        index = text.index(BEGIN.format(before))
        return text[:index] + block + "\n\n---\n\n" + text[index:]
    return text.rstrip("\n") + ("\n\n---\n\n" if text.strip() else "") + block + "\n"


def write_atomically(path: Path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(text)
    os.replace(partial, path)


# ---------------------------------------------------------------- main


def main():
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", required=True, help="report name: training_reports/<experiment>.md")
    parser.add_argument("--runs", nargs="*", default=[], help="run.json files, training output dirs or Hub repos")
    parser.add_argument("--evals", nargs="*", default=[], help="eval_humaneval.py --json outputs of base models")
    parser.add_argument("--plan", help="a plan.py --json output: records a planned run (with --name)")
    parser.add_argument("--name", help="the planned run's name; submit its job with jobs.py --name NAME")
    parser.add_argument("--out", default="training_reports", help="report directory")
    parser.add_argument("--json", action="store_true", help="print one JSON document: the report and its runs")
    args = parser.parse_args()
    if not re.fullmatch(NAME, args.experiment):
        raise BadInput(f"--experiment {args.experiment!r} must be a plain name (letters, digits, '.', '_', '-').")
    if bool(args.plan) != bool(args.name):
        raise BadInput("--plan and --name go together: `report.py --experiment E --plan plan.json --name sft-a10g`.")
    if args.name and not re.fullmatch(NAME, args.name):
        raise BadInput(f"--name {args.name!r} must be a plain name (letters, digits, '.', '_', '-').")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {out} is a file; pass the reports directory (default training_reports).")
    report, state_path = out / f"{args.experiment}.md", out / args.experiment / "runs.json"

    # Read everything first: a bad input stops here, before anything is written.
    state = read_run_record(state_path)
    runs, base_evals = state.get("runs", []), state.get("base_evaluations", [])
    plan = load_plan(args.plan) if args.plan else None
    given = []
    for source in args.runs:
        record = load_record(source)
        given.append((str(Path(source).expanduser().resolve()) if is_local(source) else source, record))
    new_evals = [load_evaluation(path) for path in args.evals]
    jobs = experiment_jobs(args.experiment)
    text = report.read_text() if report.exists() else ""

    if plan:
        entry = find(runs, name=args.name) or new_entry(runs, args.name)
        if entry.get("job"):
            raise BadInput(f"Run {args.name} already has job {entry['job']}; plan the next run under another --name.")
        entry |= {"plan": plan, "planned_at": utcnow()}
    records = {}
    for source, record in given:
        job_id = (record.get("job") or {}).get("id")
        planned = find(runs, name=run_name(record))
        entry = find(runs, source=source) or find(runs, job=job_id) or (
            planned if planned and not (planned.get("job") or planned.get("source")) else new_entry(runs, run_name(record)))
        entry |= {"source": source, "job": entry.get("job") or job_id}
        records[entry["name"]] = record
    jobs_by_id = {}
    for job in jobs:
        entry = find(runs, job=job["id"])
        if entry is None:  # the run planned under its name, else the one whose record it wrote; no job claims it
            unclaimed = [e for e in runs if not e.get("job")]
            entry = find(unclaimed, name=job_name(job)) or find(unclaimed, source=job_source(job))
        entry = entry or new_entry(runs, job_name(job))
        entry |= {"job": job["id"], "source": entry.get("source") or job_source(job)}
        jobs_by_id[job["id"]] = job
    base_evals += [evaluation for evaluation in new_evals if evaluation not in base_evals]
    for entry in runs:
        if entry["name"] not in records and entry.get("source"):
            record = load_record(entry["source"], required=False)
            job = jobs_by_id.get(entry.get("job")) or {}
            answers = {entry.get("job"), *(member["id"] for member in job.get("members", []))}
            if record and entry.get("job") and record_jobs(record) and not record_jobs(record) & answers:
                record = None  # the repo now holds a later run's record (a run resumed into the same repo, say)
            records[entry["name"]] = record

    sections = []
    for entry in runs:
        record, job = records.get(entry["name"]), jobs_by_id.get(entry.get("job"))
        if not (record or job or entry.get("plan")):
            print(f"Note: run {entry['name']} has no record, job or plan to show any more; its section is kept as "
                  "it was.", file=sys.stderr)
            continue
        sections.append((entry, record, job, run_status(record, job)))
    benchmarks = list(dict.fromkeys([e["benchmark"] for e in base_evals]
                                    + [e["benchmark"] for _, record, _, _ in sections
                                       for e in (record or {}).get("evaluations") or []])) or ["humaneval"]
    first = next((record for _, record, _, _ in sections if record), None)
    base_model = (first or {}).get("base_model") or next(
        (entry["plan"]["model"] for entry, *_ in sections if entry.get("plan")), None) or next(
        (e["model"] for e in base_evals), None)
    dataset = ((first or {}).get("dataset") or {}).get("name")
    header = ["# Base model and dataset"]
    if base_model:
        header.append(link(hub_url(base_model), "Base Model") if hub_url(base_model) else f"Base model: `{base_model}`")
    if dataset:
        header.append(link(hub_url(dataset, "datasets/"), "Dataset") if hub_url(dataset, "datasets/") else
                      f"Dataset: `{dataset}`")
    text = replace_block(text, "header", "\n".join(header))
    text = replace_block(text, "evaluations", evaluations_table([(e, r, s) for e, r, _, s in sections], base_evals,
                                                                base_model, benchmarks))
    for entry, record, job, status in sections:
        plot = f"{args.experiment}/{entry['name']}-loss.png"
        has_plot = bool(record) and loss_plot(record, entry["name"], out / plot)
        text = replace_block(text, f"run {entry['name']}",
                             run_section(entry, record, job, status, plot if has_plot else None, benchmarks),
                             before="evaluations")
    write_atomically(report, text)
    write_atomically(state_path, json.dumps({"runs": runs, "base_evaluations": base_evals}, indent=2))
    summary = {"report": str(report), "runs": [{"name": e["name"], "status": s, "job": e.get("job"),
                                                "source": e.get("source")} for e, _, _, s in sections],
               "evaluations": sum(len((r or {}).get("evaluations") or []) for _, r, _, _ in sections) + len(base_evals)}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"Report: {report} ({len(sections)} run(s): "
              + ", ".join(f"{run['name']} {run['status'].lower()}" for run in summary["runs"])
              + f"; {summary['evaluations']} evaluation(s))")


# ---- shared block: errors (tools/shared/errors.py; edit it there, then `make shared`) sha256:83701308960d8e22 ----

# The exception every script turns into one sentence on stderr and exit code 2.

class BadInput(Exception):
    """A mistake in the flags, paths or data: one sentence on stderr, exit 2. A token quoted back from the flags
    (`--hub_tokne hf_...`) is masked, since the sentence is printed and logged."""

    def __init__(self, message: str):
        super().__init__(re.sub(r"hf_[A-Za-z0-9]{8,}", "hf_***", message))


def first_line(error) -> str:
    """What an exception (or a server's message) says, in one line; its class name when it says nothing."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]

# ---- end of shared block: errors ----


# ---- shared block: cli (tools/shared/cli.py; edit it there, then `make shared`) sha256:9b103f0819db4f39 ----

# The argument parser of the scripts that are not trainers (those use TRL's parser): a mistake in the flags is one
# sentence and exit 2, not argparse's usage block.

class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise BadInput(f"{message}; see `{self.prog} --help`.")

# ---- end of shared block: cli ----


# ---- shared block: run_record (tools/shared/run_record.py; edit it there, then `make shared`) sha256:0665ecf0cade8a92 ----

# run.json: the record of one training run, which evaluations and GGUF exports append to.

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


def read_run_record(path: Path) -> dict:
    try:
        record = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        raise BadInput(f"{path} is not valid JSON; restore it (or move it away) and run again.")
    if not isinstance(record, dict):
        raise BadInput(f"{path} is not a run record (a JSON object); restore it (or move it away) and run again.")
    return record


def update_run_record(directory, fields: dict, append: dict | None = None) -> dict:
    """Merges `fields` into <directory>/run.json and appends `append`'s entries to its lists, atomically: a reader
    never sees half a file, and what evaluations and exports appended is kept."""
    target = Path(directory) / "run.json"
    record = read_run_record(target) | fields
    for key, entries in (append or {}).items():
        record[key] = record.get(key, []) + entries
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".run.json.{os.getpid()}.tmp")
    partial.write_text(json.dumps(record, indent=2, default=str))
    os.replace(partial, target)
    return record


def hub_run_record(repo: str) -> tuple[dict, str]:
    """The run.json of a Hub model repo ({} when it has none) and the commit it was read at."""
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError

    try:
        head = HfApi().model_info(repo).sha
        path = Path(hf_hub_download(repo, "run.json", revision=head))
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
    except ValueError:
        raise BadInput(f"run.json in {repo} is not valid JSON; fix it in the repo before recording into it.")
    if not isinstance(record, dict):
        raise BadInput(f"run.json in {repo} is not a run record (a JSON object); fix it in the repo first.")
    return record, head


def append_to_hub_run_record(repo: str, key: str, entries: list[dict], message: str, attempts: int = 5):
    """Appends `entries` to the list `key` of the repo's run.json in one commit on top of the head it read: when
    another writer committed first, the Hub refuses (412/409) and they are appended again to the new head."""
    import sys

    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    for attempt in range(1, attempts + 1):
        record, head = hub_run_record(repo)
        record[key] = record.get(key, []) + entries
        try:
            HfApi().create_commit(repo, [CommitOperationAdd("run.json", json.dumps(record, indent=2).encode())],
                                  commit_message=message, parent_commit=head)
            return
        except HfHubHTTPError as error:
            if error.response is None or error.response.status_code not in (409, 412) or attempt == attempts:
                raise
            print(f"{repo} changed while recording; appending again to its new head ({attempt}/{attempts})",
                  file=sys.stderr, flush=True)

# ---- end of shared block: run_record ----


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        main()
    except BadInput as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
