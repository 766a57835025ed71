"""jobs.py: the local backend end to end, timeouts and cancel, concurrency, the hf backend against the loopback
Hub, and the failure classifier on realistic logs."""

import json
import sys
import time
from pathlib import Path

import pytest
from conftest import SAMPLE, SCRIPTS, alive, json_output, wait_for

LOGS = Path(__file__).parent / "data" / "failure_logs"
SLEEPER = """import json, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print("child", child.pid, flush=True)
for step in range(1, 10000):
    print("[progress] " + json.dumps({"step": step, "total_steps": 10000, "loss": 1.0 / step, "learning_rate": 1e-4,
                                       "time": time.time()}), flush=True)
    time.sleep(0.2)
"""


def test_local_training_job_reports_progress_then_completes(jobs, tiny_model, tmp_path):
    out = tmp_path / "sft"
    submitted = json_output(jobs("submit", "--backend", "local", "--json", "--", SCRIPTS / "train_sft.py",
                                 "--model_name_or_path", tiny_model, "--dataset_name", SAMPLE / "sft_code.jsonl",
                                 "--output_dir", out, "--max_steps", "60", "--logging_steps", "5", "--max_length",
                                 "256", "--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "1",
                                 "--learning_rate", "1e-3", "--save_steps", "1000"))
    assert submitted["backend"] == "local" and submitted["id"].startswith("local-")

    def mid_run():
        info = json_output(jobs("status", submitted["id"], "--json"))
        return info if info["stage"] == "RUNNING" and info["step"] and info["step"] < 60 else None

    info = wait_for(mid_run)
    assert info["total_steps"] == 60 and info["loss"] > 0 and info["loss_start"] >= info["loss"] * 0.5
    assert info["learning_rate"] > 0 and info["eta_s"] is not None and info["elapsed_s"] >= 0
    text = jobs("status", submitted["id"]).stdout
    assert f"Job {submitted['id']} is running" in text and "Step " in text and "about" in text and "left" in text
    waited = jobs("wait", submitted["id"])
    assert waited.returncode == 0, waited.output[-2000:]
    final = json_output(jobs("status", submitted["id"], "--json"))
    assert final["stage"] == "COMPLETED" and final["step"] == 60 and final["loss"] < final["loss_start"]
    assert final["diagnosis"] is None and (out / "model.safetensors").exists()
    assert final["output"] == str(out.resolve())


def test_timeout_stops_the_whole_group_and_says_what_to_do(jobs, tmp_path):
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEPER)
    submitted = json_output(jobs("submit", "--backend", "local", "--timeout", "3s", "--json", "--", script))
    def ended():
        info = json_output(jobs("status", submitted["id"], "--json"))
        return info if info["stage"] not in ("RUNNING", "SCHEDULING") else None

    info = wait_for(ended, timeout=60)
    assert info["stage"] == "TIMEOUT" and info["diagnosis"]["kind"] == "timeout"
    assert "--resume_from_hub" in info["diagnosis"]["fix"] and info["step"] > 1
    log = jobs("logs", submitted["id"]).stdout
    child = int(next(line.split()[1] for line in log.splitlines() if line.startswith("child ")))
    assert not alive(child), "the grandchild died with its group"
    assert jobs("wait", submitted["id"]).returncode == 1


def test_cancel_ends_the_group_and_state_is_consistent(jobs, tmp_path):
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEPER)
    submitted = json_output(jobs("submit", "--backend", "local", "--json", "--", script))
    wait_for(lambda: json_output(jobs("status", submitted["id"], "--json"))["step"])
    cancel = jobs("cancel", submitted["id"])
    assert cancel.returncode == 0 and cancel.stdout.strip() == f"Job {submitted['id']} was cancelled."
    info = json_output(jobs("status", submitted["id"], "--json"))
    assert info["stage"] == "CANCELED" and info["diagnosis"] is None
    log = jobs("logs", submitted["id"], "--tail", "1000").stdout
    child = int(next(line.split()[1] for line in log.splitlines() if line.startswith("child ")))
    assert not alive(child)
    assert json_output(jobs("cancel", submitted["id"], "--json"))["stage"] == "CANCELED"


def test_twenty_concurrent_jobs_lose_nothing(jobs, tmp_path):
    script = tmp_path / "count.py"
    script.write_text("import json, sys, time\nfor i in range(1, 51):\n"
                      "    print('[progress] ' + json.dumps({'step': i, 'total_steps': 50, 'loss': 1.0, 'time': time.time()}),"
                      " flush=True)\nprint('done', sys.argv[1])\n")
    ids = [json_output(jobs("submit", "--backend", "local", "--json", "--name", f"job{i}", "--", script, str(i)))["id"]
           for i in range(20)]
    assert len(set(ids)) == 20
    def all_done():
        infos = [json_output(jobs("status", job, "--json")) for job in ids]
        return infos if all(info["stage"] == "COMPLETED" for info in infos) else None

    finals = wait_for(all_done, timeout=300, every=1)
    for number, info in enumerate(finals):
        assert info["step"] == 50 and info["exit_code"] == 0 and info["name"] == f"job{number}"
        assert jobs("logs", ids[number]).stdout.strip().endswith(f"done {number}")
    listed = json_output(jobs("list", "--backend", "local", "--json"))
    assert {job["id"] for job in listed} == set(ids)


def test_unknown_job_and_bad_timeout_exit_2(jobs, tmp_path):
    assert jobs("status", "local-doesnotexist").returncode == 2
    script = tmp_path / "x.py"
    script.write_text("print(1)\n")
    bad = jobs("submit", "--backend", "local", "--timeout", "soon", "--", script)
    assert bad.returncode == 2 and "not a duration" in bad.stderr
    assert jobs("submit", "--backend", "local", "--", tmp_path / "missing.py").returncode == 2


def test_hf_submit_sends_flavor_timeout_secret_script_and_labels(jobs, hub, tmp_path, env):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"flavor": "a10g-large", "timeout": "1h45m", "time_hours": 1.2, "cost_usd": 1.8,
                                "training_args": ["--per_device_train_batch_size", "2",
                                                  "--gradient_accumulation_steps", "8"]}))
    result = jobs("submit", "--plan", plan, "--experiment", "qwen3-code", "--", SCRIPTS / "train_sft.py",
                  "--model_name_or_path", "Qwen/Qwen3-0.6B", "--dataset_name", "open-r1/codeforces-cots",
                  "--push_to_hub", "--hub_model_id", "tester/qwen3-cf", "--per_device_train_batch_size=4")
    assert result.returncode == 0, result.output
    assert "Job submitted." in result.stdout and "Estimated time ~72 min, estimated cost ~$1.80." in result.stdout
    assert f"Trackio: {hub.endpoint}/spaces/tester/trackio" in result.stdout
    spec = hub.requests("POST", "/api/jobs/tester")[0]["json"]
    assert spec["flavor"] == "a10g-large" and spec["timeoutSeconds"] == 6300
    assert spec["secrets"] == {"HF_TOKEN": env["HF_TOKEN"]}
    assert env["HF_TOKEN"] not in json.dumps(spec["environment"]) + json.dumps(spec["command"]) + result.output
    assert spec["labels"]["experiment"] == "qwen3-code" and spec["labels"]["tool"] == "hf-llm-trainer"
    command = spec["command"]
    assert command[:3] == ["uv", "run", "/data/train_sft.py"]
    assert "--per_device_train_batch_size=4" in command and "--per_device_train_batch_size" not in command, \
        "the person's flag, written --flag=value, wins over the plan's"
    assert command[command.index("--gradient_accumulation_steps") + 1] == "8"
    shipped = hub.state.buckets["tester/jobs-artifacts"]
    assert any(path.endswith("/train_sft.py") for path in shipped) and hub.state.xorbs, "the script went to the bucket"
    assert spec["volumes"][0]["mountPath"] == "/data"


def test_with_adds_packages_to_the_job_environment(jobs, hub, tmp_path):
    result = jobs("submit", "--flavor", "a100-large", "--timeout", "2h", "--with", "vllm>=0.22,<=0.31", "--with",
                  "sympy", "--", SCRIPTS / "train_grpo.py", "--model_name_or_path", "Qwen/Qwen3-0.6B",
                  "--dataset_name", "openai/gsm8k", "--push_to_hub", "--hub_model_id", "tester/grpo")
    assert result.returncode == 0, result.output
    command = hub.requests("POST", "/api/jobs/tester")[0]["json"]["command"]
    assert command[:6] == ["uv", "run", "--with", "vllm>=0.22,<=0.31", "--with", "sympy"], command
    assert command[6] == "/data/train_grpo.py"
    # the local backend adds packages through uv; a plain Python cannot: one clear sentence, no job created
    script = tmp_path / "hello.py"
    script.write_text("print('hello')")
    local = jobs("submit", "--backend", "local", "--with", "sympy", "--", script)
    assert local.returncode == 2 and "--with needs uv" in local.stderr
    assert json_output(jobs("list", "--backend", "local", "--json")) == []


def test_hf_training_without_push_is_refused(jobs, hub):
    result = jobs("submit", "--flavor", "t4-small", "--", SCRIPTS / "train_sft.py", "--model_name_or_path", "x/y",
                  "--dataset_name", "a/b")
    assert result.returncode == 2 and "--push_to_hub" in result.stderr and not hub.requests("POST", "/api/jobs/*")


def test_hf_status_progress_and_failure(jobs, hub):
    submitted = json_output(jobs("submit", "--flavor", "t4-small", "--timeout", "30m", "--json", "--",
                                 SCRIPTS / "validate_dataset.py", "--dataset", "a/b"))
    job = hub.state.jobs[submitted["id"]]
    job["status"] = {"stage": "RUNNING", "message": None}
    job["startedAt"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 2700))
    hub.state.job_logs[submitted["id"]] += [
        '[run] {"method": "sft", "output_dir": "/out", "hub_repo": "tester/m", "trackio": {"project": "p", "run": "r", '
        '"space": "tester/trackio"}}',
        '[progress] {"step": 10, "total_steps": 1200, "loss": 2.41, "learning_rate": 2e-05, "time": 1000.0}',
        '[progress] {"step": 850, "total_steps": 1200, "loss": 1.23, "learning_rate": 1.2e-05, "time": 3520.0}']
    info = json_output(jobs("status", submitted["id"], "--json"))
    assert info["stage"] == "RUNNING" and info["step"] == 850 and info["total_steps"] == 1200
    assert info["loss"] == 1.23 and info["loss_start"] == 2.41 and info["eta_s"] == 1050
    assert 2690 <= info["elapsed_s"] <= 2800 and info["trackio"]["space"] == "tester/trackio"
    text = jobs("status", submitted["id"]).stdout
    assert f"Job {submitted['id']} is running (45 min)." in text
    assert "Step 850/1200 · loss 1.23 (from 2.41) · learning rate 1.2e-05 · about 18 min left." in text
    hub.state.job_logs[submitted["id"]].append((LOGS / "out_of_memory.log").read_text())
    job["status"] = {"stage": "ERROR", "message": "Job failed with exit code: 1"}
    failed = json_output(jobs("status", submitted["id"], "--json"))
    assert failed["diagnosis"]["kind"] == "out_of_memory" and "--per_device_train_batch_size" in failed["diagnosis"]["fix"]
    assert "What went wrong: the GPU ran out of memory." in jobs("status", submitted["id"]).stdout
    logs = jobs("logs", submitted["id"], "--tail", "2").stdout
    assert "OutOfMemoryError" in logs
    already = jobs("cancel", submitted["id"])
    assert already.stdout.strip() == f"Job {submitted['id']} failed." and not hub.requests("POST", "*/cancel")
    job["status"] = {"stage": "RUNNING", "message": None}
    assert jobs("cancel", submitted["id"]).returncode == 0 and job["status"]["stage"] == "CANCELED"
    assert submitted["id"] in [j["id"] for j in json_output(jobs("list", "--json"))]


def test_dry_run_sends_nothing(jobs, hub):
    result = json_output(jobs("submit", "--flavor", "l4x1", "--timeout", "2h", "--dry-run", "--json", "--",
                              SCRIPTS / "train_sft.py", "--model_name_or_path", "m", "--dataset_name", "d",
                              "--push_to_hub"))
    assert result["dry_run"] and result["flavor"] == "l4x1" and result["timeout_s"] == 7200
    assert result["secrets"] == ["HF_TOKEN"] and not hub.requests("POST", "/api/jobs/*")


@pytest.mark.parametrize("log", sorted(p.stem for p in LOGS.glob("*.log")))
def test_failure_classifier(log):
    sys.path.insert(0, str(SCRIPTS))
    import jobs as jobs_module

    diagnosis = jobs_module.diagnose((LOGS / f"{log}.log").read_text(), "ERROR")
    assert diagnosis["kind"] == log
    assert diagnosis["fix"] and diagnosis["problem"]
    if log == "missing_dependency":
        assert "'sympy_tools'" in diagnosis["problem"] and "--with sympy_tools" in diagnosis["fix"]
