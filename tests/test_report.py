"""report.py: the golden shape, idempotence and hand notes; runs that are planned, running, failed, cancelled and
completed, read from local jobs, the loopback Hub's jobs and repos; bad input."""

import json
import math
import sys
import time
from pathlib import Path

import pytest
from conftest import SAMPLE, SCRIPTS, json_output

GOLDEN = Path(__file__).parent / "data" / "report_golden.md"
TASKS = [f"HumanEval/{index}" for index in range(164)]
PROTOCOL = {"prompting": "completion", "chat_template": False, "thinking": False,  # eval_humaneval.py's defaults
            "stop": ["\nclass ", "\ndef ", "\n#", "\nif __name__", "\nprint(", "\nassert "], "max_new_tokens": 384,
            "temperature": 0.0, "top_p": None, "samples_per_task": 1}


def humaneval(passed: range | set, limit: int | None = None, **fields) -> dict:
    """A HumanEval result as eval_humaneval.py records it (one sample per problem): the problems whose index is in
    `passed` pass, the others fail; `limit` cuts the problem set to the first ones, as --limit does."""
    shares = {task: float(index in passed) for index, task in enumerate(TASKS[:limit])}
    n, score = len(shares), sum(shares.values()) / len(shares)
    z = 1.959964  # Wilson's interval, as eval_humaneval.py gives it
    center, half = (score + z * z / (2 * n)) / (1 + z * z / n), \
        z * math.sqrt(score * (1 - score) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return {"benchmark": "humaneval", "metric": "pass@1", "score": round(score, 4),
            "pass@1_ci95": [round(max(0, center - half), 4), round(min(1, center + half), 4)], "n": n,
            "limit": limit, "samples_per_task": 1, "protocol": PROTOCOL, "per_problem": shares,
            "date": "2025-12-09T16:00:00Z"} | fields


def eval_output(entry: dict) -> dict:
    """What eval_humaneval.py --json prints for the result that `entry` records in run.json."""
    output = {key: value for key, value in entry.items() if key not in ("score", "metric")}
    return output | {"pass@1": entry["score"], "of": len(TASKS)}


def fixture_run(tmp_path: Path, name: str, method: str, with_eval: float | None) -> Path:
    out = tmp_path / name
    out.mkdir()
    history = [{"step": s, "loss": 3.0 - s * 0.02, "learning_rate": 1e-5} for s in range(1, 81)] + \
              [{"step": 40, "eval_loss": 2.2}, {"step": 80, "eval_loss": 1.9}]
    record = {"schema": 1, "method": method, "base_model": "Qwen/Qwen3-0.6B", "status": "completed", "peft": "none",
              "loss_masking": "assistant tokens",
              "dataset": {"name": "open-r1/codeforces-cots", "split": "train", "rows": 1000, "eval_ratio": 0.05,
                          "config": "solutions", "mapping": {}, "convert": None},
              "config": {"num_train_epochs": 1, "max_steps": 80, "per_device_train_batch_size": 1,
                         "gradient_accumulation_steps": 8, "learning_rate": 5e-05, "weight_decay": 0.01,
                         "warmup_steps": 0.03, "max_length": 2048, "bf16": True, "gradient_checkpointing": True,
                         "packing": False, "eval_strategy": "steps", "eval_steps": 40, "save_steps": 40,
                         "hub_strategy": "every_save", "save_total_limit": 2},
              "hardware": {"flavor": "a10g-small", "gpu": "NVIDIA A10G", "gpus": 1, "nodes": 1, "world_size": 1},
              "job": {"id": f"{name}-job", "url": f"https://huggingface.co/jobs/alice/{name}-job"},
              "trackio": {"project": "qwen3-codeforces", "run": name, "space": "alice/trackio"},
              "hub_repo": f"alice/{name}", "output_dir": str(out), "started_at": "2025-12-09T13:47:00Z",
              "finished_at": "2025-12-09T15:01:00Z", "steps": {"done": 80, "total": 80},
              "metrics": {"final": {"loss": 1.4, "eval_loss": 1.9}, "first_loss": 2.98}, "log_history": history,
              "evaluations": [{"benchmark": "humaneval", "metric": "pass@1", "score": with_eval, "n": 164,
                               "date": "2025-12-09T16:00:00Z", "job": "https://huggingface.co/jobs/alice/ev1"}]
              if with_eval is not None else []}
    (out / "run.json").write_text(json.dumps(record))
    return out


def plan_file(tmp_path: Path) -> Path:
    plan = {"model": "Qwen/Qwen3-0.6B", "method": "sft", "peft": "none", "max_length": 2048, "epochs": 1.0,
            "flavor": "a10g-small", "gpu": "A10G", "gpus": 1, "price_per_hour": 1.0, "precision": "bf16",
            "strategy": "single", "fits": True, "per_device_train_batch_size": 1, "gradient_accumulation_steps": 8,
            "time_hours": 1.25, "cost_usd": 1.25, "timeout": "2h"}
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    return path


def section(text: str, name: str) -> str:
    return text.split(f"<!-- hflt:begin run {name} -->")[1].split(f"<!-- hflt:end run {name} -->")[0]


def test_planned_run_becomes_the_run_golden_shape_and_hand_notes(tmp_path, run_script):
    out = tmp_path / "reports"
    report = out / "qwen3-code.md"
    planned = run_script("report.py", "--experiment", "qwen3-code", "--plan", plan_file(tmp_path), "--name", "sft-a10g",
                         "--out", out)
    assert planned.returncode == 0, planned.output
    text = report.read_text()
    assert "# `sft-a10g` - `" in text and "` - `Planned`" in text
    assert "| Hardware / timeout | a10g-small (1 x A10G, single) / 2h |" in text
    assert "| Estimated time / cost | 75 min / $1.25 |" in text and "not submitted yet" in text
    assert "| `sft-a10g` - `-` - `TBD` | HumanEval pass@1 | TBD |" in text
    assert "| `base-humaneval` - `-` - `TBD` | HumanEval pass@1 | TBD | - | [Qwen/Qwen3-0.6B]" in text

    sft = fixture_run(tmp_path, "sft-a10g", "sft", 0.342)
    record = json.loads((sft / "run.json").read_text())
    record["evaluations"] = [humaneval(range(6, 62), job="https://huggingface.co/jobs/alice/ev1")]
    record["contamination"] = {"benchmark": "humaneval", "ngram": 13, "rows_checked": 1000, "rows_overlapping": 12,
                               "share": 0.012, "problems_overlapping": 3, "rows_dropped": 0,
                               "problems": ["HumanEval/7", "HumanEval/20", "HumanEval/100"]}
    record["exports"] = [{"file": "sft-a10g-Q4_K_M.gguf", "quant": "Q4_K_M", "size_mb": 462.31,
                          "modelfile": "sft-a10g-Q4_K_M.Modelfile", "golden_agree": "30/32",
                          "parity": "agrees (30/32 greedy tokens)", "chat_finish_reason": "stop",
                          "repo": "alice/sft-a10g-GGUF", "date": "2025-12-10T09:00:00Z",
                          "job": {"id": "gguf1", "url": "https://huggingface.co/jobs/alice/gguf1"}}]
    (sft / "run.json").write_text(json.dumps(record))
    base = tmp_path / "base.json"
    base.write_text(json.dumps(eval_output(humaneval(range(50), model="Qwen/Qwen3-0.6B", date="2025-12-09T12:00:00Z"))))
    args = ["--experiment", "qwen3-code", "--runs", sft, "--evals", base, "--out", out]
    assert run_script("report.py", *args).returncode == 0
    text = report.read_text()
    assert text == GOLDEN.read_text()
    png = out / "qwen3-code" / "sft-a10g-loss.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    # a hand-written note outside the generated blocks survives; the runs are remembered, so the bare command
    # refreshes them and changes nothing else
    report.write_text(text + "\nNotes: try a lower learning rate next.\n")
    assert run_script("report.py", "--experiment", "qwen3-code", "--out", out).returncode == 0
    assert report.read_text() == text + "\nNotes: try a lower learning rate next.\n"
    # a new run is added before the evaluations table; the old run's block is updated in place
    dpo = fixture_run(tmp_path, "dpo-a10g", "dpo", 0.351)
    summary = json_output(run_script("report.py", "--experiment", "qwen3-code", "--runs", dpo, "--out", out, "--json"))
    assert [(run["name"], run["status"]) for run in summary["runs"]] == [("sft-a10g", "Completed"),
                                                                        ("dpo-a10g", "Completed")]
    updated = report.read_text()
    assert updated.index("# `sft-a10g`") < updated.index("# `dpo-a10g`") < updated.index("# Experiment evaluations")
    assert "Notes: try a lower learning rate next." in updated and updated.count("# `sft-a10g`") == 1
    assert "- `dpo-a10g` on HumanEval: 0.351 against the base model's 0.305, a difference of +0.046; no verdict: no " \
           "95% interval recorded" in updated, "an older evaluation: its score, no verdict"


def test_base_model_evaluation_recorded_with_the_run_is_the_baseline(tmp_path, run_script):
    sft = fixture_run(tmp_path, "sft-a10g", "sft", 0.342)
    record = json.loads((sft / "run.json").read_text())
    record["evaluations"].append({"benchmark": "humaneval", "metric": "pass@1", "score": 0.306, "n": 164,
                                  "model": "Qwen/Qwen3-0.6B", "date": "2025-12-09T12:00:00Z"})
    (sft / "run.json").write_text(json.dumps(record))
    out = tmp_path / "reports"
    assert run_script("report.py", "--experiment", "qwen3-code", "--runs", sft, "--out", out).returncode == 0
    text = (out / "qwen3-code.md").read_text()
    assert "| `base-humaneval` - `2025-12-09 12:00 UTC` - `Completed` | HumanEval pass@1 | 0.306 |" in text
    assert "| `sft-a10g` - `2025-12-09 16:00 UTC` - `Completed` | HumanEval pass@1 | 0.342 |" in text
    assert "- `sft-a10g` on HumanEval: 0.342 against the base model's 0.306, a difference of +0.036; no verdict" in text
    assert "0.306 on 164 problems, 2025-12-09 12:00 UTC (base model `Qwen/Qwen3-0.6B`)" in section(text, "sft-a10g")


@pytest.mark.long
def test_local_jobs_of_an_experiment_running_failed_and_cancelled(tiny_model, tmp_path, run_script, env):
    env["HFLT_LOCAL_PYTHON"] = sys.executable
    out, reports = tmp_path / "sft-tiny", tmp_path / "reports"
    plan = json_output(run_script("plan.py", "--model", Path(__file__).parent / "configs" / "qwen3-0.6b", "--method",
                                  "sft", "--dataset_tokens", "100000", "--json"))
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    assert run_script("report.py", "--experiment", "tiny", "--plan", tmp_path / "plan.json", "--name", "sft-tiny",
                      "--out", reports).returncode == 0
    training = ["--", SCRIPTS / "train_sft.py", "--model_name_or_path", tiny_model, "--dataset_name",
                SAMPLE / "sft_code.jsonl", "--max_length", "64", "--per_device_train_batch_size", "2",
                "--gradient_accumulation_steps", "1", "--logging_steps", "1", "--save_steps", "100000"]
    running = json_output(run_script("jobs.py", "submit", "--backend", "local", "--experiment", "tiny", "--name",
                                     "sft-tiny", "--timeout", "1h", "--json", *training, "--output_dir", out,
                                     "--max_steps", "100000"))
    failing = json_output(run_script("jobs.py", "submit", "--backend", "local", "--experiment", "tiny", "--name",
                                     "sft-broken", "--json", *training, "--output_dir", tmp_path / "broken",
                                     "--map", "messages=no_such_column"))
    run_script("jobs.py", "submit", "--backend", "local", "--experiment", "other", "--", SCRIPTS / "plan.py", "--help")
    try:
        deadline = time.time() + 400
        while time.time() < deadline:
            stages = {job["name"]: job["stage"] for job in json_output(run_script("jobs.py", "list", "--json"))}
            record = json.loads((out / "run.json").read_text()) if (out / "run.json").exists() else {}
            if record.get("status") == "running" and stages["sft-broken"] == "ERROR":
                break
            time.sleep(1)
        summary = json_output(run_script("report.py", "--experiment", "tiny", "--out", reports, "--json"))
        assert [(run["name"], run["status"], run["job"]) for run in summary["runs"]] == [
            ("sft-tiny", "In progress", running["id"]), ("sft-broken", "Failed", failing["id"])]
        text = (reports / "tiny.md").read_text()
        tiny = section(text, "sft-tiny")
        assert "` - `In progress`" in tiny and "Planned" not in tiny and text.count("# `sft-tiny`") == 1
        assert f"| Model | `{tiny_model}` |" in tiny and "| Hardware / timeout | local (CPU) / 1h |" in tiny
        assert "| Steps | 100000 steps |" in tiny and "| Epochs | 1 |" in tiny
        assert f"job `{running['id']}`: `{running['url']}` (`jobs.py logs {running['id']}`)" in tiny
        assert f"run `sft-tiny` in the local store `{tmp_path / 'trackio'}`" in tiny
        assert "- HumanEval pass@1: TBD" in tiny
        broken = section(text, "sft-broken")
        assert "` - `Failed`" in broken and "What went wrong: the dataset does not have the shape" in broken
        assert "validate_dataset.py" in broken and "TBD" not in broken
        assert "| `sft-tiny` - `-` - `TBD` | HumanEval pass@1 | TBD |" in text and "`sft-broken` - `-`" not in text
        assert "other" not in text and "plan-py" not in text
        assert run_script("jobs.py", "cancel", running["id"]).returncode == 0
        summary = json_output(run_script("report.py", "--experiment", "tiny", "--out", reports, "--json"))
        assert [run["status"] for run in summary["runs"]] == ["Cancelled", "Failed"]
        assert "`sft-tiny` - `-` - `TBD`" not in (reports / "tiny.md").read_text()
    finally:
        run_script("jobs.py", "cancel", running["id"])


def test_hub_job_and_repo_of_an_experiment(tmp_path, run_script, hub, env):
    submitted = json_output(run_script("jobs.py", "submit", "--flavor", "a10g-small", "--timeout", "2h",
                                       "--experiment", "hub", "--name", "sft-hub", "--json", "--",
                                       SCRIPTS / "train_sft.py", "--model_name_or_path", "Qwen/Qwen3-0.6B",
                                       "--dataset_name", "open-r1/codeforces-cots", "--push_to_hub",
                                       "--hub_model_id", "alice/sft-hub"))
    job = hub.state.jobs[submitted["id"]]
    job["status"] = {"stage": "RUNNING", "message": None}
    hub.state.job_logs[submitted["id"]] += [
        '[run] {"method": "sft", "output_dir": "/app/outputs/sft-hub", "hub_repo": "alice/sft-hub", "trackio": '
        '{"project": "qwen3 code", "run": "sft-hub", "space": "alice/trackio"}, "job": {}}',
        '[progress] {"step": 10, "total_steps": 1200, "loss": 2.41, "learning_rate": 2e-05, "time": 1000.0}',
        '[progress] {"step": 850, "total_steps": 1200, "loss": 1.23, "learning_rate": 1.2e-05, "time": 3520.0}']
    reports = tmp_path / "r"
    assert run_script("report.py", "--experiment", "hub", "--out", reports).returncode == 0
    text = section((reports / "hub.md").read_text(), "sft-hub")
    assert "` - `In progress`" in text and "step 850/1200, loss 1.23 (from 2.41), about 18 min left" in text
    assert f"[job {submitted['id']}]({submitted['url']})" in text
    assert f"[project qwen3 code, run sft-hub]({hub.endpoint}/spaces/alice/trackio?project=qwen3+code" \
           "&runs=sft-hub)" in text
    assert "huggingface.co" not in (reports / "hub.md").read_text(), "every Hub link is on HF_ENDPOINT"
    # the trainer pushed its run.json: the parameters come from it
    record = json.loads(fixture_run(tmp_path, "sft-hub", "sft", None).joinpath("run.json").read_text())
    record |= {"status": "running", "job": {"id": submitted["id"], "url": submitted["url"]}}
    hub.state.add_files("model", "alice/sft-hub", {"run.json": json.dumps(record).encode()})
    job["status"] = {"stage": "ERROR", "message": "Job timeout"}
    assert run_script("report.py", "--experiment", "hub", "--out", reports).returncode == 0
    text = (reports / "hub.md").read_text()
    assert "` - `Timed out`" in text and "What went wrong: the job ran past its timeout." in text
    assert "| Eval and save | every 40 steps, hub_strategy=every_save, keep 2 |" in text and text.count("# `sft") == 1
    assert "| Hardware / timeout | a10g-small" in text and " / 2h |" in section(text, "sft-hub"), "the submitted timeout"
    # resumed into the same repo by a second job: its record replaces the first one's there; both runs stay
    resumed = json_output(run_script("jobs.py", "submit", "--flavor", "a10g-small", "--timeout", "3h",
                                     "--experiment", "hub", "--name", "sft-hub-resumed", "--json", "--",
                                     SCRIPTS / "train_sft.py", "--model_name_or_path", "Qwen/Qwen3-0.6B",
                                     "--dataset_name", "open-r1/codeforces-cots", "--push_to_hub",
                                     "--hub_model_id", "alice/sft-hub", "--resume_from_hub"))
    hub.state.jobs[resumed["id"]]["status"] = {"stage": "COMPLETED", "message": None}
    hub.state.job_logs[resumed["id"]] += [hub.state.job_logs[submitted["id"]][0]]
    record |= {"status": "completed", "job": {"id": resumed["id"], "url": resumed["url"]}}
    hub.state.add_files("model", "alice/sft-hub", {"run.json": json.dumps(record).encode()})
    summary = json_output(run_script("report.py", "--experiment", "hub", "--out", reports, "--json"))
    assert sorted((run["name"], run["status"], run["job"]) for run in summary["runs"]) == [
        ("sft-hub", "Timed out", submitted["id"]), ("sft-hub-resumed", "Completed", resumed["id"])]
    text = (reports / "hub.md").read_text()
    assert " / 3h |" in section(text, "sft-hub-resumed") and "| Eval and save |" in section(text, "sft-hub-resumed")
    # a Hub repo given by name, and one without a run.json
    assert run_script("report.py", "--experiment", "repo", "--runs", "alice/sft-hub", "--out", reports).returncode == 0
    assert "# `sft-hub`" in (reports / "repo.md").read_text()
    missing = run_script("report.py", "--experiment", "hub", "--runs", "alice/nothing", "--out", reports)
    assert missing.returncode == 2 and "no run.json" in missing.stderr


def test_bad_input_leaves_the_report_untouched(tmp_path, run_script):
    out = tmp_path / "reports"
    sft = fixture_run(tmp_path, "sft-a10g", "sft", 0.342)
    assert run_script("report.py", "--experiment", "exp", "--runs", sft, "--out", out).returncode == 0
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "run.json").write_text('{"method": "sft", "base_model": ')
    validation = tmp_path / "validation.json"
    validation.write_text(json.dumps(json_output(run_script("validate_dataset.py", "--dataset",
                                                            SAMPLE / "sft_code.jsonl", "--json"))))
    cases = {"--evals": ["--experiment", "exp", "--evals", validation],
             "is not a run record": ["--experiment", "exp", "--runs", validation],
             "--experiment": ["--experiment", "../exp"],
             "--plan and --name": ["--experiment", "exp", "--plan", plan_file(tmp_path)],
             "--plan": ["--experiment", "exp", "--plan", tmp_path / "broken" / "run.json", "--name", "x"],
             "runs.json is not valid JSON": ["--experiment", "exp"]}
    for expected, args in cases.items():
        if expected == "runs.json is not valid JSON":
            (out / "exp" / "runs.json").write_text("{")
        before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
        result = run_script("report.py", *args, "--out", out)
        assert result.returncode == 2, (expected, result.output)
        assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert expected in result.stderr and "Traceback" not in result.output
        assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before
    a_file = tmp_path / "notes.md"
    a_file.write_text("mine")
    result = run_script("report.py", "--experiment", "exp", "--runs", sft, "--out", a_file)
    assert result.returncode == 2 and "--out" in result.stderr and "is a file" in result.stderr
    assert a_file.read_text() == "mine" and "Traceback" not in result.output
