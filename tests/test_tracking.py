"""Tracking on HF Jobs as on the Hub. A training job that jobs.py submits has Trackio on: Trackio makes its Space
(files, HF_TOKEN secret, bucket volume) and its bucket on the loopback Hub and, with no Space app answering, stores
the run's metrics in the bucket, where trackio's own fragment parser reads them back. A tracker that cannot start
(the bucket service down) or cannot store what it logs (bucket uploads refused) never ends the run: the job
completes and `jobs.py status` says tracking is unavailable and why."""

import json

import pytest
from conftest import SAMPLE, SCRIPTS, json_output
from trackio.fragments import parse_fragment_bytes

SPACE, BUCKET = "tester/trackio", "tester/trackio-bucket"  # the Space jobs.py names, the bucket trackio gives it
REPO = "tester/tracked"


def train_on_hf_jobs(jobs, hub, tiny_model) -> tuple[str, dict, str]:
    """A 2-step SFT job left to jobs.py's defaults for tracking: its id, final status and logs."""
    hub.seed_model("tester/tiny", tiny_model)
    hub.seed_dataset("tester/code-sft", SAMPLE / "sft_code.jsonl")
    job = json_output(jobs("submit", "--backend", "hf", "--flavor", "cpu-basic", "--timeout", "10m", "--json", "--",
                           SCRIPTS / "train_sft.py", "--model_name_or_path", "tester/tiny", "--dataset_name",
                           "tester/code-sft", "--output_dir", "out", "--max_steps", "2", "--max_length", "64",
                           "--logging_steps", "1", "--push_to_hub", "--hub_model_id", REPO))["id"]
    jobs("wait", job, timeout=600)
    return job, json_output(jobs("status", job, "--json")), jobs("logs", job).stdout


def pushed_run(hub) -> dict:
    return json.loads(hub.state.repos[("model", REPO)]["files"]["run.json"])


def test_an_hf_job_tracks_its_metrics_into_the_space_bucket(jobs, hub_runner, tiny_model):
    job, info, logs = train_on_hf_jobs(jobs, hub_runner, tiny_model)
    assert info["stage"] == "COMPLETED" and info["tracking_unavailable"] is None, logs[-3000:]
    space = hub_runner.state.spaces[SPACE]
    assert space["sdk"] == "gradio" and list(space["secrets"]) == ["HF_TOKEN"]
    assert space["volumes"] == [{"type": "bucket", "source": BUCKET, "mountPath": "/data"}]
    assert {"app.py", "README.md", "requirements.txt"} <= set(hub_runner.state.repos[("space", SPACE)]["files"])
    run = pushed_run(hub_runner)
    records = [record for data in hub_runner.bucket_files(BUCKET).values() for record in parse_fragment_bytes(data)]
    tracked = [r for r in records if r["kind"] == "metric" and "train/loss" in r["metrics"]]
    assert {(r["project"], r["run"]) for r in tracked} == {(run["trackio"]["project"], run["trackio"]["run"])}
    assert {r["metrics"]["train/global_step"]: r["metrics"]["train/loss"] for r in tracked} == \
        {e["step"]: e["loss"] for e in run["log_history"] if "loss" in e}
    assert f"/spaces/{SPACE}?project=" in jobs("status", job).stdout


@pytest.mark.parametrize("outage", ["all", "uploads"], ids=["fails-to-start", "fails-to-store-what-it-logs"])
def test_a_tracker_that_fails_does_not_end_the_job(outage, jobs, hub_runner, tiny_model):
    hub_runner.state.bucket_outages[BUCKET] = outage
    job, info, logs = train_on_hf_jobs(jobs, hub_runner, tiny_model)
    assert info["stage"] == "COMPLETED" and pushed_run(hub_runner)["status"] == "completed", logs[-3000:]
    assert info["tracking_unavailable"].startswith("Trackio: ") and BUCKET in info["tracking_unavailable"], logs[-3000:]
    assert "warning: tracking unavailable" in logs and not hub_runner.bucket_files(BUCKET)
    status = jobs("status", job).stdout
    assert f"Tracking unavailable: {info['tracking_unavailable']}; the loss stays in the logs" in status
