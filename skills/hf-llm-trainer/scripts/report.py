# /// script
# requires-python = ">=3.10"
# dependencies = ["huggingface_hub>=1.0", "matplotlib"]
# ///
"""Write or update the experiment report training_reports/<experiment>.md from run records (run.json).

    uv run report.py --experiment qwen3-codeforces --runs outputs/sft-a10g outputs/dpo-a10g --evals base-eval.json
    uv run report.py --experiment qwen3-codeforces --runs username/qwen3-codeforces-sft

Each run gets a section `run` - `date` - `status` with its parameters, status, logs and trackio links, loss curve
and evaluations; the experiment table lists every evaluation, the base model's included, so "are the fine-tuned
models beating the base?" is answered at a glance. Generated parts sit between `<!-- hflt:... -->` markers:
re-running updates them in place and keeps everything written by hand outside them.
"""

import argparse
import json
import os
import re
import sys
from pathlib import Path

BEGIN, END = "<!-- hflt:begin {} -->", "<!-- hflt:end {} -->"
METHODS = {"sft": "SFT (TRL)", "dpo": "DPO (TRL)", "grpo": "GRPO (TRL)"}


class BadInput(Exception):
    pass


def load_run(source: str) -> dict:
    path = Path(source)
    if path.is_dir():
        path = path / "run.json"
    if path.suffix == ".json" or path.exists():
        if not path.exists():
            raise BadInput(f"No run record at {path}; pass a run.json, a training output directory or a Hub repo.")
        return json.loads(path.read_text())
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    try:
        return json.loads(Path(hf_hub_download(source, "run.json")).read_text())
    except (EntryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError, ValueError) as error:
        raise BadInput(f"{source} is not a local run and its Hub repo has no run.json ({error.__class__.__name__}).")


def run_name(run: dict) -> str:
    return (run.get("trackio") or {}).get("run") or Path(run["output_dir"]).name


def day(stamp: str | None) -> str:
    return (stamp or "")[:10] or "?"


def link(url: str | None, text: str) -> str:
    return f"[{text}]({url})" if url else "-"


def hub_url(model: str) -> str | None:
    return None if Path(model).is_absolute() or model.startswith(".") else f"https://huggingface.co/{model}"


def loss_plot(run: dict, target: Path) -> bool:
    history = run.get("log_history") or []
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
    axis.set_title(run_name(run))
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target)
    plt.close(figure)
    return True


def parameters_table(run: dict) -> str:
    config, dataset, hardware = run["config"], run["dataset"], run["hardware"]
    split = dataset.get("split") or "train"
    if dataset.get("eval_ratio"):
        split += f", {dataset['eval_ratio']:.0%} eval split"
    batch, accumulation = config.get("per_device_train_batch_size"), config.get("gradient_accumulation_steps")
    processes = hardware.get("processes") or 1
    epochs = config.get("num_train_epochs") if (config.get("max_steps") or -1) <= 0 else f"{config['max_steps']} steps"
    rows = [
        ("Method", METHODS.get(run["method"], run["method"]) + (f", {run['peft'].upper()}" if run.get("peft") != "none" else "")),
        ("Model", f"`{run['base_model']}`"),
        ("Dataset", f"`{dataset['name']}` ({split}, {dataset.get('rows')} rows)"
         + (f", mapping `{dataset['mapping']}`" if dataset.get("mapping") else "")
         + (f", converted from {dataset['convert']}" if dataset.get("convert") else "")),
        ("Max length", config.get("max_length") or config.get("max_completion_length") or "-"),
        ("Epochs", epochs),
        ("Per-device batch / grad. accumulation / effective", f"{batch} / {accumulation} / {batch * accumulation * processes}"),
        ("Learning rate / weight decay / warmup", f"{config.get('learning_rate')} / {config.get('weight_decay')} / "
                                                  f"{config.get('warmup_steps')}"),
        ("Eval and save", f"eval {config.get('eval_strategy')}, save every {config.get('save_steps')} steps, "
                          f"hub_strategy={config.get('hub_strategy')}, keep {config.get('save_total_limit')}"),
        ("Precision / gradient checkpointing / packing", f"{'bf16' if config.get('bf16') else 'fp16' if config.get('fp16') else 'fp32'}"
                                                         f" / {str(config.get('gradient_checkpointing')).lower()} / "
                                                         f"{str(config.get('packing', False)).lower()}"),
        ("Hub repo", f"`{run['hub_repo']}`" if run.get("hub_repo") else f"local: `{run['output_dir']}`"),
        ("Hardware", f"{hardware.get('flavor')} ({hardware.get('gpu') or 'CPU'}"
                     f"{', ' + str(hardware.get('peak_memory_gb')) + ' GB peak' if hardware.get('peak_memory_gb') else ''})"),
    ]
    if run.get("trackio"):
        rows.append(("Trackio", f"project `{run['trackio']['project']}`, run `{run['trackio']['run']}`"))
    return "| Parameter | Value |\n|---|---|\n" + "\n".join(f"| {key} | {value} |" for key, value in rows)


def run_section(run: dict, plot: str | None) -> str:
    name, status = run_name(run), run.get("status", "unknown")
    steps = run.get("steps") or {}
    metrics = (run.get("metrics") or {}).get("final") or {}
    lines = [f"# `{name}` - `{day(run.get('started_at'))} {run.get('started_at', '')[11:16]} UTC` - "
             f"`{'Completed' if status == 'completed' else 'In progress' if status == 'running' else status.title()}`",
             "## Training parameters", parameters_table(run), "## Run status"]
    status_line = f"{status}: step {steps.get('done')}/{steps.get('total')}"
    if metrics.get("loss") is not None:
        first = (run.get("metrics") or {}).get("first_loss")
        status_line += f", final loss {metrics['loss']:.4g}" + (f" (from {first:.4g})" if first else "")
    if metrics.get("eval_loss") is not None:
        status_line += f", eval loss {metrics['eval_loss']:.4g}"
    if metrics.get("reward") is not None:
        status_line += f", reward {metrics['reward']:.4g}"
    lines.append(status_line + (f", finished {run['finished_at']}" if run.get("finished_at") else ""))
    job = run.get("job") or {}
    lines += ["## Run logs", link(job.get("url") if (job.get("url") or "").startswith("http") else None,
                                   f"job {job.get('id')}") if job.get("id") else f"local run, logs in `{run['output_dir']}`"]
    trackio = run.get("trackio") or {}
    lines.append("## Trackio logs")
    if trackio.get("space"):
        lines.append(link(f"https://huggingface.co/spaces/{trackio['space']}", f"dashboard ({trackio['project']})"))
    elif trackio:
        lines.append(f"local store: `trackio show --project \"{trackio['project']}\"`")
    else:
        lines.append("-")
    if plot:
        lines.append(f"![loss curve of {name}]({plot})")
    lines.append("## Evaluation")
    evaluations = run.get("evaluations") or []
    if evaluations:
        lines += [f"- {e['benchmark']} {e.get('metric', 'pass@1')}: {e['score']:.3f} on {e['n']} problems "
                  f"({day(e.get('date'))})" for e in evaluations]
    else:
        lines.append("Not evaluated yet.")
    return "\n".join(lines)


def evaluations_table(runs: list[dict], base_evals: list[dict]) -> str:
    rows = []
    for evaluation in base_evals:
        model = evaluation["model"]
        rows.append((f"`base-{evaluation['benchmark']}` - `{day(evaluation.get('date'))}` - `Completed`",
                     evaluation, link(hub_url(model), model) if hub_url(model) else f"`{model}`"))
    for run in runs:
        for evaluation in run.get("evaluations") or []:
            model = run.get("hub_repo") or run["output_dir"]
            rows.append((f"`{run_name(run)}` - `{day(evaluation.get('date'))}` - `Completed`", evaluation,
                         link(hub_url(model), model) if run.get("hub_repo") else f"`{model}`"))
    lines = ["# Experiment evaluations", "| Run | Benchmark | Score | Eval job | Model |", "|---|---|---|---|---|"]
    for title, evaluation, model in rows:
        metric = "HumanEval pass@1" if evaluation["benchmark"] == "humaneval" else evaluation["benchmark"]
        score = evaluation.get("score", evaluation.get("pass@1"))
        job = evaluation.get("job")
        lines.append(f"| {title} | {metric} | {score:.3f} | {link(job, 'logs') if job and job.startswith('http') else '-'} "
                     f"| {model} |")
    if base_evals and len(rows) > len(base_evals):
        best = max(rows[len(base_evals):], key=lambda r: r[1].get("score", 0))
        base = max(e.get("score", e.get("pass@1", 0)) for e in base_evals)
        verdict = "beats" if best[1]["score"] > base else "does not beat"
        lines.append(f"\nBest fine-tuned run {best[0].split(' - ')[0]} ({best[1]['score']:.3f}) {verdict} the base "
                     f"model ({base:.3f}).")
    return "\n".join(lines)


def replace_block(text: str, name: str, body: str, before: str | None = None) -> str:
    block = f"{BEGIN.format(name)}\n{body}\n{END.format(name)}"
    pattern = re.compile(re.escape(BEGIN.format(name)) + r".*?" + re.escape(END.format(name)), re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text)
    if before and BEGIN.format(before) in text:
        index = text.index(BEGIN.format(before))
        return text[:index] + block + "\n\n---\n\n" + text[index:]
    return text.rstrip("\n") + ("\n\n---\n\n" if text.strip() else "") + block + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", required=True, help="report name: training_reports/<experiment>.md")
    parser.add_argument("--runs", nargs="*", default=[], help="run.json files, training output dirs or Hub repos")
    parser.add_argument("--evals", nargs="*", default=[], help="eval_humaneval.py --json outputs of base models")
    parser.add_argument("--out", default="training_reports", help="report directory")
    args = parser.parse_args()
    if not re.fullmatch(r"[A-Za-z0-9._-]+", args.experiment):
        raise BadInput(f"--experiment {args.experiment!r} must be a plain name (letters, digits, '.', '_', '-').")
    runs = [load_run(source) for source in args.runs]
    base_evals = []
    for source in args.evals:
        try:
            base_evals.append(json.loads(Path(source).read_text()))
        except (OSError, ValueError) as error:
            raise BadInput(f"--evals {source} is not an eval_humaneval.py --json file ({error}).")
    out = Path(args.out)
    report = out / f"{args.experiment}.md"
    text = report.read_text() if report.exists() else ""
    base_model = runs[0]["base_model"] if runs else (base_evals[0]["model"] if base_evals else None)
    dataset = runs[0]["dataset"]["name"] if runs else None
    header = ["# Base model and dataset"]
    if base_model:
        header.append(f"[Base Model]({hub_url(base_model)})" if hub_url(base_model) else f"Base model: `{base_model}`")
    if dataset:
        header.append(f"[Dataset](https://huggingface.co/datasets/{dataset})" if hub_url(dataset) and "." not in
                      Path(dataset).name else f"Dataset: `{dataset}`")
    text = replace_block(text, "header", "\n".join(header))
    text = replace_block(text, "evaluations", evaluations_table(runs, base_evals))
    for run in runs:
        name = run_name(run)
        plot = f"{args.experiment}/{name}-loss.png"
        has_plot = loss_plot(run, out / plot)
        text = replace_block(text, f"run {name}", run_section(run, plot if has_plot else None), before="evaluations")
    out.mkdir(parents=True, exist_ok=True)
    tmp = report.with_suffix(".md.tmp")
    tmp.write_text(text)
    os.replace(tmp, report)
    print(f"Report: {report} ({len(runs)} run(s), {sum(len(r.get('evaluations') or []) for r in runs) + len(base_evals)} "
          "evaluation(s))")


if __name__ == "__main__":
    try:
        main()
    except BadInput as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
