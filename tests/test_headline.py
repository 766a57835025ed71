"""The headline request, "Fine-tune Qwen3-0.6B on open-r1/codeforces-cots", as the agent drives it: on the loopback
Hub and runner, with the codeforces-shaped dataset (configurations and no default, parquet shards read through
ranges, long traces, cut generations) and the Qwen3 fixture (real Qwen tokenizer and template). Validate without a
configuration, validate with one, plan a priced test run, submit it as an HF job with tracking on, watch its
status, read the full run's calibrated estimate, write the report."""

import json

import make_codeforces_like as codeforces
import pytest
from conftest import json_output

NAME = codeforces.NAME
MODEL = "tester/Qwen3-0.6B"
EXPERIMENT = "qwen3-codeforces"


@pytest.mark.long
def test_the_headline_conversation(hub_runner, run_script, tiny_qwen3, tmp_path):
    hub = hub_runner
    hub.seed_dataset(NAME, codeforces.files())
    hub.seed_model(MODEL, tiny_qwen3)

    refused = run_script("validate_dataset.py", "--dataset", NAME)
    assert refused.returncode == 2 and "--dataset_config" in refused.stderr, refused.output[-2000:]
    assert all(name in refused.stderr for name in codeforces.CONFIGS), "every configuration is named"

    validation = json_output(run_script("validate_dataset.py", "--dataset", NAME, "--dataset_config", "solutions",
                                        "--model", MODEL, "--max_length", "1024", "--json"))
    assert validation["methods"]["sft"]["status"] in ("ready", "needs_fix")
    assert validation["unfinished"]["rows"] > 0 and "--drop_unfinished" in validation["methods"]["sft"]["fix"]
    (tmp_path / "validation.json").write_text(json.dumps(validation))

    plan = json_output(run_script("plan.py", "--model", MODEL, "--method", "sft", "--validation",
                                  tmp_path / "validation.json", "--dataset", NAME, "--dataset_config", "solutions",
                                  "--max_length", "1024", "--max_steps", "2", "--max_samples", "8", "--flavor",
                                  "t4-small", "--hub_model_id", "tester/qwen3-codeforces-test", "--json"))
    assert plan["test_run"] and plan["estimate"]["steps"] == 2 and plan["full_run_estimate"]["rows"] > 8
    assert {"--max_steps", "--max_samples"} <= set(plan["training_args"]), "the plan carries the test run's flags"
    assert plan["dataset_tokens"] == validation["tokens"]["seen_at_max_length"], "priced on what training sees"
    (tmp_path / "plan.json").write_text(json.dumps(plan))

    submitted = json_output(run_script(
        "jobs.py", "submit", "--backend", "hf", "--plan", tmp_path / "plan.json", "--experiment", EXPERIMENT,
        "--name", "test-run", "--json", "--", "train_sft.py", "--model_name_or_path", MODEL, "--dataset_name", NAME,
        "--dataset_config", "solutions", "--drop_unfinished", "--output_dir", "qwen3-codeforces-test",
        "--push_to_hub", "--hub_model_id", "tester/qwen3-codeforces-test", "--max_steps", "2", "--max_samples", "8",
        "--per_device_train_batch_size", "1", "--gradient_accumulation_steps", "1", "--max_length", "1024",
        "--logging_steps", "1"))
    assert submitted["test_run"] == {"--max_steps": "2", "--max_samples": "8"}, submitted
    assert submitted["estimated_time_hours"] == plan["estimate"]["time_hours"], "the estimate of the run submitted"
    job = hub.requests("POST", "/api/jobs/tester")[-1]["json"]
    assert "--report_to" not in job["arguments"], "tracking stays on, as jobs.py sets it for HF jobs"
    job_id = submitted["id"]

    assert run_script("jobs.py", "wait", job_id, timeout=900).returncode == 0
    status = json_output(run_script("jobs.py", "status", job_id, "--json"))
    assert status["stage"] == "COMPLETED" and status["step"] == 2, status
    assert status["trackio"] and not status.get("tracking_unavailable"), "tracking on, and it worked"
    assert status["full_run"]["flavor"] == "t4-small" and status["full_run"]["time_s"] > 0, status["full_run"]
    human = run_script("jobs.py", "status", job_id).stdout
    assert "the full run takes about" in human, human

    record = json.loads(hub.state.repos[("model", "tester/qwen3-codeforces-test")]["files"]["run.json"])
    assert record["dataset"]["config"] == "solutions" and record["loss_masking"] == "assistant tokens"

    report = run_script("report.py", "--experiment", EXPERIMENT, "--plan", tmp_path / "plan.json", "--name",
                        "test-run", "--output_dir", tmp_path / "training_reports", cwd=tmp_path)
    assert report.returncode == 0, report.output[-3000:]
    text = (tmp_path / "training_reports" / f"{EXPERIMENT}.md").read_text()
    assert "solutions" in text and "Time and cost:" in text and "estimated" in text, text
