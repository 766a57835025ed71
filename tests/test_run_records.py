"""run.json under several writers (the trainer, evaluations, GGUF exports, at once, locally or in the Hub repo), a
resume after a save cut short, and one live run per output directory."""

import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT, SAMPLE, SCRIPTS, run_python, start_python

FAST = ["--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "1", "--max_length", "192",
        "--logging_steps", "1", "--report_to", "none"]
TOOLS = str(ROOT / "tools")

LOCAL_WRITER = """import sys
sys.path.insert(0, sys.argv[1])
from shared.run_record import append_to_run
directory, key, name = sys.argv[2:5]
for i in range(100):
    append_to_run(directory, append={key: [{"writer": name, "i": i}]})
"""


def test_three_local_writers_keep_every_append(tmp_path):
    """Two evaluations and an export appending at once, 100 times each, while the record's own fields change: no
    append is lost (without a lock, a read-modify-write races the others' and drops their entries)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"method": "sft", "status": "running", "evaluations": []}))
    writers = [subprocess.Popen([sys.executable, "-c", LOCAL_WRITER, TOOLS, str(run), key, name])
               for key, name in (("evaluations", "eval-a"), ("evaluations", "eval-b"), ("exports", "gguf"))]
    assert all(writer.wait(timeout=300) == 0 for writer in writers)
    record = json.loads((run / "run.json").read_text())
    evaluations = {(e["writer"], e["i"]) for e in record["evaluations"]}
    assert len(record["evaluations"]) == 200 and len(evaluations) == 200
    assert [e["i"] for e in record["exports"]] == list(range(100))
    assert record["method"] == "sft" and record["status"] == "running"
    assert sorted(p.name for p in run.iterdir()) == ["run.json"], "no lock or partial file is left"


def test_a_run_without_a_record_is_not_appended_to(tmp_path):
    from shared.errors import BadInput
    from shared.run_record import append_to_run, locate_run, merge_runs

    assert locate_run(str(tmp_path)) is None
    for target in (tmp_path, tmp_path / "missing"):
        with pytest.raises(BadInput, match="has no run.json"):
            append_to_run(target, append={"evaluations": [{"score": 1}]})
    assert list(tmp_path.iterdir()) == [], "nothing is made for a refused append"
    for missing in ("./not-here", str(tmp_path / "run.json")):
        with pytest.raises(BadInput, match="neither a run directory"):
            locate_run(missing, "--run")
    ours = {"status": "completed", "evaluations": [{"score": 1}]}
    theirs = {"status": "running", "evaluations": [{"score": 2}, {"score": 1}], "exports": [{"quant": "F16"}], "x": 1}
    assert merge_runs(ours, theirs) == {"status": "completed", "evaluations": [{"score": 1}, {"score": 2}],
                                        "exports": [{"quant": "F16"}], "x": 1}


HUB_WRITER = """import json, sys
sys.path.insert(0, sys.argv[1])
from shared.run_record import append_to_run
import huggingface_hub
print("ready", flush=True)
for line in sys.stdin:
    key, entry = json.loads(line)
    append_to_run(sys.argv[2], append={key: [entry]}, message=f"writer: {key}")
    print("done", flush=True)
"""


def test_trainer_pushes_keep_what_evaluations_and_exports_recorded_in_the_repo(tiny_model, tmp_path, env, hub,
                                                                                monkeypatch):
    """A run pushes checkpoints to its repo while two evaluations and a GGUF export record into the repo's run.json
    (with the shared function, from another process, each just before one of the trainer's commits: after a
    checkpoint push began, between the trainer's read of the record and its commit, during the final push). All
    three are in the repo's final record and in the local one."""
    repo = "tester/live"
    writer = subprocess.Popen([sys.executable, "-c", HUB_WRITER, TOOLS, repo], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    assert writer.stdout.readline() == "ready\n"
    records = {"eval-a": ("evaluations", {"benchmark": "humaneval", "score": 0.25, "model": f"{repo}@step"}),
               "gguf": ("exports", {"quant": "Q4_K_M", "file": "live-Q4_K_M.gguf", "repo": "tester/live-gguf"}),
               "eval-b": ("evaluations", {"benchmark": "humaneval", "score": 0.5, "model": repo})}
    recorded, lock = [], threading.Lock()
    handler = hub.server.RequestHandlerClass
    commit = handler._commit

    def record(name: str):
        writer.stdin.write(json.dumps(records[name]) + "\n")
        writer.stdin.flush()
        assert writer.stdout.readline() == "done\n"
        recorded.append(name)

    def others_record_first(self, repo_type, repo_id, body):
        header = json.loads(body.decode().splitlines()[0])["value"]
        summary = header.get("summary") or ""
        state = hub.state.repo("model", repo)
        if repo_id == repo and not summary.startswith("writer") and state and "run.json" in state["files"]:
            with lock:
                if "eval-a" not in recorded:
                    record("eval-a")
                elif "gguf" not in recorded and header.get("parentCommit"):  # the trainer's record: now stale
                    record("gguf")
                if summary.startswith("End of training") and "eval-b" not in recorded:
                    record("eval-b")
        return commit(self, repo_type, repo_id, body)

    monkeypatch.setattr(handler, "_commit", others_record_first)
    out = tmp_path / "live"
    result = run_python([str(SCRIPTS / "train_sft.py"), "--model_name_or_path", str(tiny_model), "--dataset_name",
                         str(SAMPLE / "sft_code.jsonl"), "--output_dir", str(out), "--max_steps", "6", "--save_steps",
                         "2", "--push_to_hub", "--hub_model_id", repo, *FAST], env, timeout=900)
    writer.stdin.close()
    writer.wait(timeout=60)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    files = hub.state.repo("model", repo)["files"]
    for final in (json.loads(files["run.json"]), json.loads((out / "run.json").read_text())):
        assert final["status"] == "completed" and final["steps"]["done"] == 6
        assert sorted(e["score"] for e in final.get("evaluations", [])) == [0.25, 0.5], "an evaluation was lost"
        assert [e["quant"] for e in final.get("exports", [])] == ["Q4_K_M"], (recorded, "the export was lost")
    assert "changed while recording" in result.stderr, "the trainer's stale commit was refused and merged again"
    assert not any(name.startswith(".") for name in files), "no lock or partial file is pushed"


def test_resume_skips_checkpoints_cut_mid_save(tiny_model, tmp_path, env):
    """checkpoint-6 lost its trainer_state.json, checkpoint-4's weights are truncated: --resume continues from
    checkpoint-2, names the two it skipped and why, and the run ends completed."""
    out = tmp_path / "resume"
    command = [str(SCRIPTS / "train_sft.py"), "--model_name_or_path", str(tiny_model), "--dataset_name",
               str(SAMPLE / "sft_code.jsonl"), "--output_dir", str(out), "--max_steps", "6", "--save_steps", "2",
               "--save_total_limit", "3", *FAST]
    first = run_python(command, env, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    (out / "checkpoint-6" / "trainer_state.json").unlink()
    weights = out / "checkpoint-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    resumed = run_python(command + ["--resume"], env, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Skipping checkpoint-6: trainer_state.json is missing" in resumed.stderr
    assert "Skipping checkpoint-4: model.safetensors has" in resumed.stderr
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "completed" and run["steps"] == {"done": 6, "total": 6}
    assert run["resumed_from"].endswith("checkpoint-2")
    steps = [json.loads(line.split("[progress] ", 1)[1])["step"] for line in resumed.stdout.splitlines()
             if "[progress] " in line]
    assert min(steps) == 3, "training continued from checkpoint-2"


def test_a_second_run_into_a_live_output_dir_is_refused(tiny_model, tmp_path, env):
    """Two trainers into one --output_dir: the second refuses in one sentence before loading anything, while the
    first holds the directory; the first's lock goes with its process, even when it is killed."""
    out = tmp_path / "shared-out"
    command = [str(SCRIPTS / "train_sft.py"), "--model_name_or_path", str(tiny_model), "--dataset_name",
               str(SAMPLE / "sft_code.jsonl"), "--output_dir", str(out), *FAST]
    first = start_python(command + ["--max_steps", "100000", "--save_steps", "100000"], env)
    try:
        lock = out / ".hflt-run.lock"
        deadline = time.time() + 300
        while not (lock.exists() and lock.read_text().strip() == str(first.pid)):
            assert first.poll() is None and time.time() < deadline, "the first run never took its output dir"
            assert lock.exists() or not (out / "run.json").exists(), "the first run trains without holding its dir"
            time.sleep(0.2)
        second = run_python(command + ["--max_steps", "2"], env, timeout=600)
        assert second.returncode == 2, second.stdout[-2000:] + second.stderr[-2000:]
        assert f"is in use by another run (process {first.pid})" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1 and "Traceback" not in second.stderr
        assert "Resolved:" not in second.stdout, "refused before the data and the model load"
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    with open(out / ".hflt-run.lock", "a") as f:  # the killed run's lock went with it
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_checkpoint_checks_name_what_is_missing(tmp_path):
    """The completeness check on its own: each way a save can be cut short, named."""
    sys.path.insert(0, str(SCRIPTS))
    import train_sft

    checkpoint = tmp_path / "checkpoint-3"
    checkpoint.mkdir()
    assert train_sft.checkpoint_problem(checkpoint) == "trainer_state.json is missing"
    (checkpoint / "trainer_state.json").write_text("{")
    assert train_sft.checkpoint_problem(checkpoint) == "trainer_state.json is not valid JSON"
    (checkpoint / "trainer_state.json").write_text("{}")
    assert train_sft.checkpoint_problem(checkpoint) == "it has no weights"
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    whole = len(header).to_bytes(8, "little") + header + bytes(16)
    (checkpoint / "model.safetensors").write_bytes(whole[:-3])
    assert "model.safetensors has" in train_sft.checkpoint_problem(checkpoint)
    (checkpoint / "model.safetensors").write_bytes(whole[:12])
    assert train_sft.checkpoint_problem(checkpoint) == "model.safetensors is cut short inside its header"
    (checkpoint / "model.safetensors").write_bytes(whole)
    assert train_sft.checkpoint_problem(checkpoint) is None
    (checkpoint / "optimizer.pt").write_bytes(b"PK\x03\x04 cut")
    assert train_sft.checkpoint_problem(checkpoint) == "optimizer.pt is cut short"
    import torch

    torch.save({"step": 3}, checkpoint / "optimizer.pt")
    assert train_sft.checkpoint_problem(checkpoint) is None
    assert train_sft.last_complete_checkpoint(str(tmp_path)) == str(checkpoint)
    Path(checkpoint / "trainer_state.json").unlink()
    assert train_sft.last_complete_checkpoint(str(tmp_path)) is None
