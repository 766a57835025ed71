"""The loopback Jobs runner in tests/hub_server.py: a submitted uv job really runs, with the platform's env and
secrets, live logs, stages, timeout, cancel and network groups; refusals, commit conflicts, revisions, seeding and
the command line."""

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SAMPLE, TOKEN
from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import HfHubHTTPError

SERVER = Path(__file__).parent / "hub_server.py"
PLATFORM_JOB = """# /// script
# dependencies = ["huggingface_hub"]
# ///
import hashlib, os, sys
from pathlib import Path
from huggingface_hub import HfApi

print("job", os.environ["JOB_ID"], flush=True)
print("token sha", hashlib.sha256(os.environ["HF_TOKEN"].encode()).hexdigest(), flush=True)
print("whoami", HfApi().whoami()["name"], flush=True)
print("config", Path(sys.argv[1]).read_text().strip(), "from", Path(sys.argv[1]).parent == Path(__file__).parent)
print("cwd is fresh", os.listdir(".") == [])
sys.exit(int(sys.argv[2]))
"""
ENVIRONMENT = """import json, os
print(json.dumps({key: "[set]" if key == "HF_TOKEN" else value for key, value in os.environ.items()}))
"""
SLEEPER = """import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print("pids", os.getpid(), child.pid, flush=True)
while True:
    print("tick", flush=True)
    time.sleep(0.2)
"""


@pytest.fixture
def api(hub_runner):
    return HfApi(endpoint=hub_runner.endpoint, token=TOKEN)


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def pid_alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def wait_until(predicate, timeout=30):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "condition not reached in time"
        time.sleep(0.2)


def test_uv_job_runs_with_the_platform_env_and_streams_its_logs(api, hub_runner, tmp_path):
    script = write(tmp_path / "probe.py", PLATFORM_JOB)
    config = write(tmp_path / "config.yaml", "lr: 0.1")
    job = api.run_uv_job(script, script_args=[config, "0"], dependencies=["sympy"], secrets={"HF_TOKEN": TOKEN},
                         env={"MODE": "test"}, flavor="t4-small", timeout="5m", labels={"experiment": "probe"})
    assert job.status.stage == "SCHEDULING" and job.command[:4] == ["uv", "run", "--with", "sympy"]
    logs = list(api.fetch_job_logs(job_id=job.id, follow=True))
    assert logs[0] == f"job {job.id}", logs
    assert f"token sha {hashlib.sha256(TOKEN.encode()).hexdigest()}" in logs and "whoami tester" in logs
    assert "config lr: 0.1 from True" in logs and "cwd is fresh True" in logs
    assert not any(TOKEN in line or "===== Job started" in line for line in logs)
    info = api.inspect_job(job_id=job.id)
    assert info.status.stage == "COMPLETED" and info.status.message is None
    assert info.started_at <= info.finished_at and info.secrets == {"HF_TOKEN": "[encrypted]"}
    assert info.environment == {"MODE": "test"}, "the token travels as a secret only"
    assert info.volumes[0].mount_path == "/data" and info.labels["experiment"] == "probe"
    runner = hub_runner.state.jobs[job.id]["_runner"]
    assert runner["with"] == ["sympy"] and runner["argv"][0] == sys.executable
    assert [j.id for j in api.list_jobs(status="COMPLETED", labels={"experiment": "probe"}, namespace="tester")] == [job.id]
    assert list(api.list_jobs(status="RUNNING", namespace="tester")) == []


def test_job_starts_from_a_clean_environment(api, hub_runner, tmp_path, monkeypatch):
    """What the test process has set (offline switches, the jobs.py settings) never reaches a job; what the job
    declares does, with the platform's own variables and a home of its own."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HFLT_POLL_S", "PYTHONPATH"):
        monkeypatch.setenv(name, "1")
    job = api.run_uv_job(write(tmp_path / "env.py", ENVIRONMENT), env={"MODE": "test", "HF_HUB_OFFLINE": "0"},
                         secrets={"HF_TOKEN": TOKEN})
    assert api.wait_for_job(job.id, timeout=60, poll_interval=0.2).status.stage == "COMPLETED"
    env = json.loads(list(api.fetch_job_logs(job_id=job.id))[-1])
    assert not {"TRANSFORMERS_OFFLINE", "HFLT_POLL_S", "PYTHONPATH"} & set(env), sorted(env)
    assert env["MODE"] == "test" and env["HF_HUB_OFFLINE"] == "0" and env["HF_TOKEN"] == "[set]"
    assert env["JOB_ID"] == job.id and env["HF_ENDPOINT"] == hub_runner.endpoint
    assert env["PATH"] == os.environ["PATH"] and Path(env["HOME"]).parent == Path(env["HF_HOME"]).parent != Path.home()


def test_failing_job_ends_in_error_with_its_exit_code(api, tmp_path):
    job = api.run_uv_job(write(tmp_path / "probe.py", PLATFORM_JOB),
                         script_args=[write(tmp_path / "c.yaml", "x"), "3"], secrets={"HF_TOKEN": TOKEN})
    info = api.wait_for_job(job.id, timeout=60, poll_interval=0.2)
    assert info.status.stage == "ERROR" and info.status.message == "Job failed with exit code: 3"
    assert "whoami tester" in list(api.fetch_job_logs(job_id=job.id))  # follow=False: what is there


def test_timeout_stops_the_whole_group(api, tmp_path):
    job = api.run_uv_job(write(tmp_path / "sleeper.py", SLEEPER), timeout=2)
    info = api.wait_for_job(job.id, timeout=60, poll_interval=0.2)
    assert info.status.stage == "ERROR" and "timeout" in info.status.message.lower()
    pids = [int(pid) for pid in next(line for line in api.fetch_job_logs(job_id=job.id)
                                     if line.startswith("pids")).split()[1:]]
    wait_until(lambda: not any(pid_alive(pid) for pid in pids), timeout=10)


def test_cancel_stops_the_whole_group_and_logs_stream_live(api, tmp_path):
    job = api.run_uv_job(write(tmp_path / "sleeper.py", SLEEPER))
    live = api.fetch_job_logs(job_id=job.id, follow=True)
    first = next(live)  # arrives while the job runs
    assert first.startswith("pids "), first
    pids = [int(pid) for pid in first.split()[1:]]
    assert all(pid_alive(pid) for pid in pids) and api.inspect_job(job_id=job.id).status.stage == "RUNNING"
    assert "tick" in list(api.fetch_job_logs(job_id=job.id, follow=False))
    api.cancel_job(job_id=job.id)
    assert api.inspect_job(job_id=job.id).status.stage == "CANCELED"
    wait_until(lambda: not any(pid_alive(pid) for pid in pids), timeout=10)
    assert set(live) <= {"tick"}, "the live stream ends with the job"
    info = api.inspect_job(job_id=job.id)
    assert info.status.stage == "CANCELED" and info.finished_at is not None


def test_network_group_members_reach_each_other_by_alias(api, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    master = write(tmp_path / "master.py", f"""import os, socket
print("hostname", socket.gethostbyname(os.environ["HF_NETWORK_GROUP_HOSTNAME"]), flush=True)
server = socket.create_server(("0.0.0.0", {port}))
connection, _ = server.accept()
print("received", connection.recv(100).decode(), flush=True)
""")
    worker = write(tmp_path / "worker.py", f"""import os, socket, time
address = os.environ["HF_NETWORK_GROUP_PREFIX"] + "master"
for _ in range(100):
    try:
        socket.create_connection((address, {port})).sendall(b"hello from " + os.environ["JOB_ID"].encode())
        break
    except ConnectionRefusedError:
        time.sleep(0.1)
""")
    first = api.run_uv_job(master, network_group="train", network_aliases=["master"], timeout=60)
    second = api.run_uv_job(worker, network_group="train", network_aliases=["worker"], timeout=60)
    assert api.inspect_job(job_id=first.id).network.aliases == ["master"]
    finals = api.wait_for_job([first.id, second.id], timeout=60, poll_interval=0.2)
    assert [info.status.stage for info in finals] == ["COMPLETED", "COMPLETED"], [f.status for f in finals]
    assert list(api.fetch_job_logs(job_id=first.id)) == ["hostname 127.0.0.1", f"received hello from {second.id}"]


def test_refusals_the_account_can_meet(api, hub_runner, tmp_path):
    script = write(tmp_path / "x.py", "print(1)")
    hub_runner.state.no_credit = True
    with pytest.raises(HfHubHTTPError) as refused:
        api.run_uv_job(script, flavor="t4-small")
    assert refused.value.response.status_code == 402 and "credits" in str(refused.value)
    hub_runner.state.no_credit, hub_runner.state.refused_flavors = False, {"h200x8"}
    with pytest.raises(HfHubHTTPError) as refused:
        api.run_uv_job(script, flavor="h200x8")
    assert refused.value.response.status_code == 403 and "h200x8" in str(refused.value)
    hub_runner.state.token_without_jobs_scope = True
    with pytest.raises(HfHubHTTPError) as refused:
        api.run_uv_job(script, flavor="t4-small")
    assert refused.value.response.status_code == 403 and "job.write" in str(refused.value)
    assert api.whoami()["auth"]["accessToken"]["role"] == "fineGrained"
    assert not hub_runner.state.jobs


def test_stale_parent_commit_is_refused_and_old_revisions_stay_readable(api, tmp_path):
    api.create_repo("tester/records")
    first = api.upload_file(path_or_fileobj=b'{"v": 1}', path_in_repo="run.json", repo_id="tester/records").oid
    api.upload_file(path_or_fileobj=b'{"v": 2}', path_in_repo="run.json", repo_id="tester/records")
    with pytest.raises(HfHubHTTPError) as conflict:
        api.create_commit("tester/records", [CommitOperationAdd("run.json", b'{"v": 3}')], commit_message="late",
                          parent_commit=first)
    assert conflict.value.response.status_code == 412
    head = api.model_info("tester/records").sha
    api.create_commit("tester/records", [CommitOperationAdd("run.json", b'{"v": 3}')], commit_message="on time",
                      parent_commit=head)
    old = api.hf_hub_download("tester/records", "run.json", revision=first, cache_dir=tmp_path / "cache")
    assert json.loads(Path(old).read_text()) == {"v": 1} and api.model_info("tester/records", revision=first).sha == first
    assert json.loads(Path(api.hf_hub_download("tester/records", "run.json", cache_dir=tmp_path / "c2")).read_text()) \
        == {"v": 3}


CLIENT = """
import json, os, sys
from huggingface_hub import HfApi

api, out = HfApi(), {}
job = api.run_uv_job(sys.argv[1], secrets={"HF_TOKEN": os.environ["HF_TOKEN"]})
out["stage"] = api.wait_for_job(job.id, timeout=240, poll_interval=0.3).status.stage
out["pushed"] = json.loads(open(api.hf_hub_download("tester/pushed", "seen.json")).read())
sleeper = api.run_uv_job(sys.argv[2])
out["sleeper_pids"] = [int(pid) for pid in next(iter(api.fetch_job_logs(job_id=sleeper.id, follow=True))).split()[1:]]
print(json.dumps(out), flush=True)
"""
TRAINING_LIKE_JOB = """import json
from datasets import load_dataset
from huggingface_hub import HfApi
from transformers import AutoModelForCausalLM

seen = {"rows": len(load_dataset("tester/sft", split="train")),
        "model": type(AutoModelForCausalLM.from_pretrained("tester/tiny")).__name__}
HfApi().create_repo("tester/pushed", exist_ok=True)
HfApi().upload_file(path_or_fileobj=json.dumps(seen).encode(), path_in_repo="seen.json", repo_id="tester/pushed")
"""


def test_command_line_serves_seeded_repos_and_runs_jobs_that_reach_it(env, tiny_model, tmp_path):
    bad = subprocess.run([sys.executable, SERVER, "--seed-model", "nameonly=" + str(tiny_model)], capture_output=True,
                         text=True, env=env, timeout=60)
    assert bad.returncode == 2 and "owner/name=PATH" in bad.stderr and "Traceback" not in bad.stderr
    server = subprocess.Popen([sys.executable, SERVER, "--run-jobs", "--seed-model", f"tester/tiny={tiny_model}",
                               "--seed-dataset", f"tester/sft={SAMPLE / 'sft_code.jsonl'}"], env=env, text=True,
                              stdout=subprocess.PIPE)
    try:
        lines = [server.stdout.readline().strip(), server.stdout.readline().strip()]
        assert lines[0].startswith("HF_ENDPOINT=http://127.0.0.1:") and lines[1] == f"HF_TOKEN={TOKEN}"
        client_env = {key: value for key, value in env.items() if key != "HF_HUB_OFFLINE"}
        client_env.update(line.split("=", 1) for line in lines)
        client = subprocess.run([sys.executable, "-c", CLIENT, write(tmp_path / "train.py", TRAINING_LIKE_JOB),
                                 write(tmp_path / "sleeper.py", SLEEPER)], capture_output=True, text=True,
                                env=client_env, timeout=300)
        assert client.returncode == 0, client.stderr[-3000:]
        out = json.loads(client.stdout.splitlines()[-1])
        rows = sum(1 for line in (SAMPLE / "sft_code.jsonl").read_text().splitlines() if line.strip())
        assert out["stage"] == "COMPLETED" and out["pushed"]["rows"] == rows
        assert out["pushed"]["model"].endswith("ForCausalLM")
        assert all(pid_alive(pid) for pid in out["sleeper_pids"])
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        assert not any(pid_alive(pid) for pid in out["sleeper_pids"]), "closing the server stops its jobs"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
