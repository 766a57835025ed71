"""Multi-node training for real: `jobs.py submit --nodes 2` on the local backend starts two process groups that
rendezvous over loopback as HF Jobs network-group members do, and the trainer runs one launch across them."""

import json

import pytest
from conftest import SAMPLE, json_output


@pytest.mark.long
def test_two_local_nodes_train_one_model(tiny_model, tmp_path, run_script):
    out = tmp_path / "two-nodes"
    submitted = json_output(run_script(
        "jobs.py", "submit", "--backend", "local", "--nodes", "2", "--json", "--", str(SAMPLE.parent.parent / "skills"
        / "hf-llm-trainer" / "scripts" / "train_sft.py"), "--model_name_or_path", tiny_model, "--dataset_name",
        SAMPLE / "sft_code.jsonl", "--output_dir", out, "--max_steps", "12", "--save_steps", "6",
        "--learning_rate", "2e-3", "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1",
        "--max_length", "128", "--logging_steps", "2", "--report_to", "none"))
    waited = run_script("jobs.py", "wait", submitted["id"], timeout=900)
    logs = run_script("jobs.py", "logs", submitted["id"]).output
    assert waited.returncode == 0, waited.output[-2000:] + logs[-4000:]
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "completed" and run["steps"]["done"] == 12
    assert run["hardware"]["nodes"] == 2 and run["hardware"]["world_size"] == 2
    assert run["hardware"]["processes_per_node"] == 1 and run["hardware"]["strategy"] == "ddp"
    losses = [entry["loss"] for entry in run["log_history"] if "loss" in entry]
    assert losses[-1] < losses[0], losses
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-12", "checkpoint-6"]
    assert logs.count("Training completed") == 1, "rank 0 alone finishes the run"
