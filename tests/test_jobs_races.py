"""jobs.py's local job state under races: a cancel landing as the job finishes, processes that leave the job's
process groups, and a state folder deleted while the job runs. Small Python scripts stand in for trainers."""

import json
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor

from conftest import alive, json_output, wait_for

# The stop signal may reach these scripts as they exit: they ignore it, so their exit code is always 0.
CANCEL_AS_IT_ENDS = """import os, signal
from pathlib import Path
signal.signal(signal.SIGTERM, signal.SIG_IGN)
(Path(os.environ["HFLT_STATE_DIR"]) / os.environ["HFLT_JOB_ID"] / "cancel").touch()
os._exit(0)
"""
ENDS_WHEN_CANCEL_IS_ASKED = """import os, signal, time
from pathlib import Path
signal.signal(signal.SIGTERM, signal.SIG_IGN)
request = Path(os.environ["HFLT_STATE_DIR"]) / os.environ["HFLT_JOB_ID"] / "cancel"
print("ready", flush=True)
while not request.exists():
    time.sleep(0.01)
os._exit(0)
"""
# A grandchild in a session of its own (setsid) is outside the job's process groups; this one also ignores SIGTERM.
ESCAPES = """import json, os, subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                               "signal.SIG_IGN); print('armed', flush=True); time.sleep(600)"], start_new_session=True)
print("pids", os.getpid(), grandchild.pid, flush=True)
for step in range(1, 10000):
    print("[progress] " + json.dumps({"step": step, "total_steps": 10000, "loss": 1.0, "time": time.time()}), flush=True)
    time.sleep(0.2)
"""
LEAVES_A_DAEMON = """import subprocess, sys
daemon = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
print("daemon", daemon.pid, flush=True)
"""


def submit(jobs, tmp_path, source: str, *args) -> str:
    script = tmp_path / f"job_{uuid.uuid4().hex[:8]}.py"
    script.write_text(source)
    return json_output(jobs("submit", "--backend", "local", "--json", *args, "--", script))["id"]


def printed(jobs, job_id: str, word: str) -> list[int]:
    """The numbers the job printed after `word` at the start of a line, once it has."""
    def line():
        return next((text for text in jobs("logs", job_id).stdout.splitlines() if text.startswith(word + " ")), None)

    return [int(number) for number in wait_for(line, timeout=60).split()[1:]]


def recorded_stage(state, job_id: str) -> str:
    return json.loads((state / job_id / "status.json").read_text())["stage"]


def test_a_job_that_exits_0_as_a_cancel_lands_completed(jobs, tmp_path):
    job_id = submit(jobs, tmp_path, CANCEL_AS_IT_ENDS)
    waited = jobs("wait", job_id)
    assert waited.returncode == 0, waited.output
    info = json_output(jobs("status", job_id, "--json"))
    assert info["stage"] == "COMPLETED" and info["exit_code"] == 0 and info["diagnosis"] is None


def test_cancel_racing_completion_never_records_a_job_that_exited_0_as_cancelled(jobs, tmp_path):
    """The supervisor records COMPLETED and exits while cancel waits for it: cancel keeps that record."""
    state = tmp_path / "jobs_state"
    ids = [submit(jobs, tmp_path, ENDS_WHEN_CANCEL_IS_ASKED, "--name", f"racer{n}") for n in range(4)]
    for job_id in ids:
        wait_for(lambda job_id=job_id: "ready" in jobs("logs", job_id).stdout, timeout=60)
    with ThreadPoolExecutor(len(ids)) as pool:
        cancels = list(pool.map(lambda job_id: jobs("cancel", job_id), ids))
    for job_id, cancel in zip(ids, cancels):
        assert cancel.returncode == 0, cancel.output
        assert cancel.stdout.splitlines() == [f"Job {job_id} completed.",
                                              "It ended on its own before the cancel reached it."]
        assert recorded_stage(state, job_id) == "COMPLETED"
        info = json_output(jobs("status", job_id, "--json"))
        assert info["stage"] == "COMPLETED" and info["exit_code"] == 0
    assert json_output(jobs("cancel", ids[0], "--json")) == {"id": ids[0], "stage": "COMPLETED", "requested": False}


def test_cancel_reaches_a_grandchild_in_a_session_of_its_own(jobs, tmp_path):
    job_id = submit(jobs, tmp_path, ESCAPES)
    script_pid, grandchild = printed(jobs, job_id, "pids")
    wait_for(lambda: "armed" in jobs("logs", job_id).stdout, timeout=60)
    cancel = jobs("cancel", job_id)
    assert cancel.returncode == 0, cancel.output
    said, stopped = cancel.stdout.strip().splitlines()
    assert said == f"Job {job_id} was cancelled."
    assert stopped.startswith("Stopped 2 processes (pids ") and {str(grandchild), str(script_pid)} <= set(
        stopped.replace(",", " ").replace(")", " ").split())
    assert ("1 had left the job's process groups (a session of its own) and was found by the HFLT_JOB_STATE marker"
            in stopped) and "1 ignored SIGTERM and got SIGKILL after 10 s." in stopped
    assert not alive(grandchild) and not alive(script_pid)
    assert json_output(jobs("status", job_id, "--json"))["stage"] == "CANCELED"


def test_a_daemon_a_finished_job_left_behind_is_stopped_with_it(jobs, tmp_path):
    job_id = submit(jobs, tmp_path, LEAVES_A_DAEMON)
    assert jobs("wait", job_id).returncode == 0
    daemon, = printed(jobs, job_id, "daemon")
    assert not alive(daemon)
    status = json.loads((tmp_path / "jobs_state" / job_id / "status.json").read_text())
    assert status["stage"] == "COMPLETED" and [p["pid"] for p in status["stopped"]] == [daemon]


def test_a_job_whose_state_folder_was_deleted_is_still_found_by_its_processes(jobs, tmp_path):
    state = tmp_path / "jobs_state"
    job_id = submit(jobs, tmp_path, ESCAPES)
    kept = submit(jobs, tmp_path, "print('done')\n")
    pids = printed(jobs, job_id, "pids")
    supervisor = int((state / job_id / "supervisor.pid").read_text())
    wait_for(lambda: "armed" in jobs("logs", job_id).stdout, timeout=60)
    shutil.rmtree(state / job_id)

    listed = {job["id"]: job for job in json_output(jobs("list", "--json"))}
    assert listed[job_id]["stage"] == "ORPHANED" and set(listed[job_id]["pids"]) == {supervisor, *pids}
    assert kept in listed and listed[kept]["stage"] != "ORPHANED"
    line = next(line for line in jobs("list").stdout.splitlines() if line.startswith(job_id))
    assert "orphaned (its state folder was deleted; 3 processes still run" in line
    assert f"jobs.py cancel {job_id}" in line
    status = jobs("status", job_id)
    assert status.returncode == 1 and "lost its state folder" in status.stderr and "jobs.py cancel" in status.stderr

    cancel = jobs("cancel", job_id)
    assert cancel.returncode == 0, cancel.output
    assert cancel.stdout.splitlines()[0] == f"Job {job_id} was cancelled."
    assert cancel.stdout.splitlines()[1].startswith("Its state folder had been deleted: stopped 3 processes found by "
                                                    "the HFLT_JOB_STATE marker")
    assert not any(alive(pid) for pid in (supervisor, *pids))
    assert job_id not in {job["id"] for job in json_output(jobs("list", "--json"))}
    assert jobs("cancel", job_id).returncode == 2, "nothing of it is left"
