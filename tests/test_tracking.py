"""Tracking that cannot kill training: a Trackio that fails to start (its Space cannot be made on this Hub) leaves
the run to finish, and `jobs.py status` says tracking is unavailable and why."""

import json

from conftest import SAMPLE, SCRIPTS, json_output, wait_for


def test_a_tracker_that_fails_to_start_does_not_end_the_run(jobs, hub, tiny_model, tmp_path):
    output = tmp_path / "out"
    submitted = json_output(jobs("submit", "--backend", "local", "--name", "tracked", "--json", "--",
                                 SCRIPTS / "train_sft.py", "--model_name_or_path", tiny_model, "--dataset_name",
                                 SAMPLE / "sft_code.jsonl", "--output_dir", output, "--max_steps", "2",
                                 "--max_length", "64", "--logging_steps", "1", "--report_to", "trackio",
                                 "--trackio_space_id", "tester/trackio"))
    info = wait_for(lambda: (i := json_output(jobs("status", submitted["id"], "--json")))["stage"] not in
                    ("SCHEDULING", "RUNNING") and i, timeout=600)
    logs = jobs("logs", submitted["id"]).stdout
    assert info["stage"] == "COMPLETED", logs[-3000:]
    assert info["tracking_unavailable"].startswith("Trackio: "), logs[-3000:]
    assert json.loads((output / "run.json").read_text())["status"] == "completed"
    status = jobs("status", submitted["id"]).stdout
    assert f"Tracking unavailable: {info['tracking_unavailable']}; the loss stays in the logs" in status
    assert "warning: tracking unavailable" in logs
