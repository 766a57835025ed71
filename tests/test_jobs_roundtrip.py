"""The path most users take, end to end with `--backend hf` against the loopback Jobs runner, driven as the agent
drives it (subprocesses with real flags): validate a Hub dataset, plan, a quick SFT job on a Hub model, progress
and completion, evaluation jobs recorded in the pushed run.json, the experiment report, a timed-out run resumed
from its pushed checkpoint, and a GGUF job. Jobs really run on this machine and reach the loopback Hub."""

import json
import os
import time

import pytest
from conftest import SAMPLE, SCRIPTS, json_output

EXPERIMENT = "roundtrip"
TRAIN = ["--max_length", "128", "--per_device_train_batch_size", "4", "--logging_steps", "1", "--report_to", "none",
         "--learning_rate", "2e-3"]


def submit(run_script, *args) -> dict:
    return json_output(run_script("jobs.py", "submit", "--backend", "hf", "--experiment", EXPERIMENT, "--json", *args))


def wait(run_script, job_id: str):
    waited = run_script("jobs.py", "wait", job_id, timeout=900)
    return waited, json_output(run_script("jobs.py", "status", job_id, "--json"))


def process_gone(hub, job_id: str) -> bool:
    pid = hub.state.jobs[job_id]["_runner"].get("pid")
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.long
def test_seed_experiment_on_hf_jobs(tiny_model, tmp_path, run_script, hub_runner):
    hub = hub_runner
    hub.seed_dataset("tester/code-sft", SAMPLE / "sft_code.jsonl")
    hub.seed_model("tester/tiny-base", tiny_model)
    cwd = tmp_path

    validation = json_output(run_script("validate_dataset.py", "--dataset", "tester/code-sft", "--json"))
    assert validation["methods"]["sft"]["status"] == "ready"
    (cwd / "validation.json").write_text(json.dumps(validation))
    plan = json_output(run_script("plan.py", "--model", "tester/tiny-base", "--method", "sft", "--validation",
                                  cwd / "validation.json", "--output_repo", "tester/rt-sft", "--json"))
    (cwd / "plan.json").write_text(json.dumps(plan))

    job = submit(run_script, "--plan", cwd / "plan.json", "--", SCRIPTS / "train_sft.py", "--model_name_or_path",
                 "tester/tiny-base", "--dataset_name", "tester/code-sft", "--output_dir", "rt-sft", "--max_steps", "6",
                 "--save_steps", "3", "--push_to_hub", "--hub_model_id", "tester/rt-sft", *TRAIN)
    assert job["backend"] == "hf" and job["flavor"] == plan["flavor"]
    waited, status = wait(run_script, job["id"])
    assert waited.returncode == 0 and status["stage"] == "COMPLETED", waited.output[-3000:]
    assert status["step"] == 6 and status["loss"] is not None and status["output"] == "tester/rt-sft"
    files = hub.state.repos[("model", "tester/rt-sft")]["files"]
    assert {"model.safetensors", "README.md", "run.json", "last-checkpoint/trainer_state.json"} <= set(files)
    run = json.loads(files["run.json"])
    assert run["job"]["id"] == job["id"] and run["job"]["url"].endswith(f"/jobs/tester/{job['id']}")
    assert job["id"] in files["README.md"].decode(), "the model card links the job"

    evaluations = [submit(run_script, "--", SCRIPTS / "eval_humaneval.py", "--model", model, *extra, "--limit", "2",
                          "--max_new_tokens", "16", "--run", "tester/rt-sft", "--json")
                   for model, extra in (("tester/tiny-base", []), ("tester/rt-sft", []),
                                        ("tester/rt-sft", ["--subfolder", "last-checkpoint"]))]
    for evaluation in evaluations:
        waited, status = wait(run_script, evaluation["id"])
        assert status["stage"] == "COMPLETED", waited.output[-3000:]
    entries = json.loads(hub.state.repos[("model", "tester/rt-sft")]["files"]["run.json"])["evaluations"]
    assert sorted(e["job_id"] for e in entries) == sorted(e["id"] for e in evaluations), "no entry lost"
    assert {e.get("subfolder") for e in entries} == {None, "last-checkpoint"}

    report = run_script("report.py", "--experiment", EXPERIMENT, "--runs", "tester/rt-sft", "--out",
                        cwd / "training_reports")
    assert report.returncode == 0, report.output
    text = (cwd / "training_reports" / f"{EXPERIMENT}.md").read_text()
    assert run["job"]["url"] in text and "HumanEval" in text and "tester/tiny-base" in text
    assert "- `rt-sft` on HumanEval: " in text and "- `rt-sft/last-checkpoint` on HumanEval: " in text
    assert all(entry["job"] in text for entry in entries), "each evaluation row links its job"

    slow = submit(run_script, "--timeout", "2h", "--", SCRIPTS / "train_sft.py", "--model_name_or_path",
                  "tester/tiny-base", "--dataset_name", "tester/code-sft", "--output_dir", "rt-long", "--max_steps",
                  "5000", "--save_steps", "3", "--push_to_hub", "--hub_model_id", "tester/rt-long", *TRAIN)
    assert hub.state.jobs[slow["id"]]["timeoutSeconds"] == 7200
    deadline = time.time() + 600
    while "last-checkpoint/trainer_state.json" not in hub.state.repos.get(("model", "tester/rt-long"),
                                                                          {"files": {}})["files"]:
        assert time.time() < deadline, "no checkpoint pushed in 10 minutes"
        time.sleep(1)
    progress = json_output(run_script("jobs.py", "status", slow["id"], "--json"))
    assert progress["stage"] == "RUNNING" and progress["step"] >= 3 and progress["total_steps"] == 5000, progress
    hub.expire_job(slow["id"])  # its 2h run out now, after a checkpoint push, on a slow machine as on a fast one
    waited, status = wait(run_script, slow["id"])
    assert status["stage"] == "TIMEOUT", status
    assert "--resume_from_hub" in json.dumps(status["diagnosis"])
    assert process_gone(hub, slow["id"]), "a timed-out job leaves no process behind"
    pushed = json.loads(hub.state.repos[("model", "tester/rt-long")]["files"]["last-checkpoint/trainer_state.json"])
    planned = pushed["global_step"] + 3
    resumed = submit(run_script, "--", SCRIPTS / "train_sft.py", "--model_name_or_path", "tester/tiny-base",
                     "--dataset_name", "tester/code-sft", "--output_dir", "rt-long", "--max_steps", str(planned),
                     "--save_steps", "3", "--push_to_hub", "--hub_model_id", "tester/rt-long", "--resume_from_hub",
                     *TRAIN)
    waited, status = wait(run_script, resumed["id"])
    assert status["stage"] == "COMPLETED", waited.output[-3000:]
    run = json.loads(hub.state.repos[("model", "tester/rt-long")]["files"]["run.json"])
    assert run["steps"]["done"] == planned and "hub-resume" in run["resumed_from"]

    cancelled = submit(run_script, "--", SCRIPTS / "train_sft.py", "--model_name_or_path", "tester/tiny-base",
                       "--dataset_name", "tester/code-sft", "--output_dir", "rt-cancel", "--max_steps", "5000",
                       "--push_to_hub", "--hub_model_id", "tester/rt-cancel", *TRAIN)
    deadline = time.time() + 120
    while json_output(run_script("jobs.py", "status", cancelled["id"], "--json"))["stage"] != "RUNNING":
        assert time.time() < deadline
        time.sleep(1)
    assert run_script("jobs.py", "cancel", cancelled["id"]).returncode == 0
    _, status = wait(run_script, cancelled["id"])
    assert status["stage"] == "CANCELED" and process_gone(hub, cancelled["id"])

    gguf = submit(run_script, "--", SCRIPTS / "convert_gguf.py", "--model", "tester/rt-sft", "--quant", "Q8_0",
                  "--push_to", "tester/rt-sft-GGUF", "--json")
    waited, status = wait(run_script, gguf["id"])
    assert status["stage"] == "COMPLETED", waited.output[-3000:]
    pushed_files = hub.state.repos[("model", "tester/rt-sft-GGUF")]["files"]
    assert any(name.endswith("Q8_0.gguf") for name in pushed_files) and "README.md" in pushed_files
    assert gguf["id"] in pushed_files["README.md"].decode(), "the GGUF card links the job that made it"
    exports = json.loads(hub.state.repos[("model", "tester/rt-sft")]["files"]["run.json"])["exports"]
    assert [(e["quant"], e["repo"], e["job"]["id"]) for e in exports] == [("Q8_0", "tester/rt-sft-GGUF", gguf["id"])]

    # the experiment's jobs alone (their labels) give every training run with its own status
    summary = json_output(run_script("report.py", "--experiment", EXPERIMENT, "--out", cwd / "training_reports",
                                     "--json"))
    statuses = {entry["job"]: entry["status"] for entry in summary["runs"]}
    assert statuses == {job["id"]: "Completed", slow["id"]: "Timed out", resumed["id"]: "Completed",
                        cancelled["id"]: "Cancelled"}, summary["runs"]
