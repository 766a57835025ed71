"""jobs.py: the local backend end to end, timeouts and cancel, concurrency, the hf backend against the loopback
Hub, and the failure classifier on realistic logs."""

import json
import sys
import time
from pathlib import Path

import pytest
from conftest import CONFIGS, SAMPLE, SCRIPTS, alive, json_output, wait_for
from conftest import plan as run_plan

LOGS = Path(__file__).parent / "data" / "failure_logs"
SLEEPER = """import json, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print("child", child.pid, flush=True)
for step in range(1, 10000):
    print("[progress] " + json.dumps({"step": step, "total_steps": 10000, "loss": 1.0 / step, "learning_rate": 1e-4,
                                       "time": time.time()}), flush=True)
    time.sleep(0.2)
"""


@pytest.mark.long
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
    assert cancel.returncode == 0, cancel.output
    said, stopped = cancel.stdout.strip().splitlines()
    assert said == f"Job {submitted['id']} was cancelled." and stopped.startswith("Stopped 2 processes (pids ")
    info = json_output(jobs("status", submitted["id"], "--json"))
    assert info["stage"] == "CANCELED" and info["diagnosis"] is None
    log = jobs("logs", submitted["id"], "--tail", "1000").stdout
    child = int(next(line.split()[1] for line in log.splitlines() if line.startswith("child ")))
    assert not alive(child)
    assert json_output(jobs("cancel", submitted["id"], "--json"))["stage"] == "CANCELED"


@pytest.mark.long
def test_twenty_concurrent_jobs_lose_nothing(jobs, tmp_path):
    script = tmp_path / "count.py"
    script.write_text("import json, sys, time\nfor i in range(1, 51):\n"
                      "    print('[progress] ' + json.dumps({'step': i, 'total_steps': 50, 'loss': 1.0, 'time': time.time()}),"
                      " flush=True)\nprint('done', sys.argv[1])\n")
    ids = [json_output(jobs("submit", "--backend", "local", "--json", "--name", f"job{i}", "--", script, str(i)))["id"]
           for i in range(20)]
    assert len(set(ids)) == 20
    def all_done():
        return all(job["stage"] == "COMPLETED" for job in json_output(jobs("list", "--backend", "local", "--json")))

    wait_for(all_done, timeout=300, every=1)
    finals = [json_output(jobs("status", job, "--json")) for job in ids]
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


# plan.py's shape for a test run (--max_steps 50): the run it launches at the top level and in `estimate`, the full run
# beside it; 20.7M tokens an epoch, two epochs.
TEST_PLAN = {"flavor": "t4-small", "timeout": "30m", "time_hours": 0.2, "cost_usd": 0.08, "price_per_hour": 0.4,
             "dataset_tokens": 20_700_000, "epochs": 2, "test_run": True, "max_steps": 50, "max_samples": None,
             "estimate": {"steps": 50, "rows": 800, "time_hours": 0.2, "cost_usd": 0.08, "timeout": "30m"},
             "full_run_estimate": {"steps": 2600, "rows": 41600, "time_hours": 4.5, "cost_usd": 1.8,
                                   "timeout": "6h15m"},
             "training_args": ["--max_steps", "50"]}
FULL_PLAN = {"flavor": "t4-small", "timeout": "6h", "time_hours": 4.5, "cost_usd": 1.8, "dataset_tokens": 20_700_000,
             "epochs": 2}


def test_a_reused_name_is_announced(jobs, hub, tmp_path):
    first = jobs("submit", "--flavor", "t4-small", "--timeout", "1h", "--name", "sft-t4", "--", *train("a"))
    assert first.returncode == 0 and "already has the name" not in first.output, first.output
    second = jobs("submit", "--flavor", "t4-small", "--timeout", "1h", "--name", "sft-t4", "--", *train("b"))
    job_id = first.stdout.split("Job ID: ")[1].split()[0]
    assert second.returncode == 0 and f"Note: job {job_id} (" in second.stdout, second.output
    assert "already has the name sft-t4: the report shows the two as sft-t4 and sft-t4-2" in second.stdout
    script = tmp_path / "hello.py"
    script.write_text("print('hello')")
    assert "already has the name" not in jobs("submit", "--backend", "local", "--name", "hi", "--", script).output
    again = jobs("submit", "--backend", "local", "--name", "hi", "--", script)
    assert again.returncode == 0 and "already has the name hi" in again.stdout, again.output


def train(repo: str, script: str = "train_sft.py") -> list:
    return [SCRIPTS / script, "--model_name_or_path", "m", "--dataset_name", "d", "--push_to_hub",
            "--hub_model_id", f"tester/{repo}"]


def hf_time(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(moment))


def test_submit_announces_the_estimate_of_the_run_it_submits(jobs, hub, tmp_path, run_script):
    planned = run_plan(run_script, "--model", CONFIGS / "qwen3-0.6b", "--method", "sft", "--dataset_tokens", "2e7",
                   "--flavor", "t4-small", "--max_steps", "50")
    test, full = planned["estimate"], planned["full_run_estimate"]
    test_plan, full_plan = tmp_path / "test_plan.json", tmp_path / "full_plan.json"
    test_plan.write_text(json.dumps(planned))
    full_plan.write_text(json.dumps(FULL_PLAN))
    test_run = jobs("submit", "--plan", test_plan, "--", *train("test"))
    assert test_run.returncode == 0, test_run.output
    assert (f"Test run (--max_steps 50): estimated time ~{test['time_hours'] * 60:.0f} min, estimated cost "
            f"~${test['cost_usd']:.2f}.") in test_run.stdout
    full_minutes = round(full["time_hours"] * 60)
    assert (f"The plan's full run: ~{full_minutes // 60} h {full_minutes % 60} min, ~${full['cost_usd']:.2f}; when "
            "the test run ends, `jobs.py status` turns its measured speed into the full run's time and cost.") \
        in test_run.stdout
    labels = hub.requests("POST", "/api/jobs/tester")[-1]["json"]["labels"]
    assert {key: labels.get(key) for key in ("estimate_s", "full_run_s", "full_run_tokens", "full_run_steps")} == \
        {"estimate_s": str(round(test["time_hours"] * 3600)), "full_run_s": str(round(full["time_hours"] * 3600)),
         "full_run_tokens": "20000000", "full_run_steps": str(full["steps"])}
    # a plan for the full run, cut short by hand: its estimate is not this run's
    by_hand = jobs("submit", "--plan", full_plan, "--", *train("by-hand"), "--max_samples=100")
    assert by_hand.returncode == 0, by_hand.output
    assert "Test run (--max_samples 100): the plan's estimate (~4 h 30 min, ~$1.80) is for the full run, not this one" \
        in by_hand.stdout and "Estimated time" not in by_hand.stdout
    assert "Cost: ~$0.40/hour (t4-small) until it ends or times out." in by_hand.stdout
    labels = hub.requests("POST", "/api/jobs/tester")[-1]["json"]["labels"]
    assert "estimate_s" not in labels and labels["full_run_tokens"] == "41400000", "dataset tokens x epochs"
    # the test plan with other limits than its own, and the full plan as it is
    other = json_output(jobs("submit", "--plan", test_plan, "--json", "--", *train("other"), "--max_steps", "10"))
    assert other["estimated_time_hours"] is None and other["test_run"] == {"--max_steps": "10"}
    whole = json_output(jobs("submit", "--plan", full_plan, "--json", "--", *train("whole")))
    assert whole["estimated_time_hours"] == 4.5 and whole["test_run"] is None
    assert whole["labels"]["estimate_s"] == "16200"


def test_status_says_when_a_job_is_far_behind_its_plan(jobs, hub, tmp_path):
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(FULL_PLAN | {"time_hours": 1.0, "timeout": "2h"}))
    job_id = json_output(jobs("submit", "--plan", plan_file, "--json", "--", *train("m")))["id"]
    job = hub.state.jobs[job_id]
    job["status"], job["startedAt"] = {"stage": "RUNNING", "message": None}, hf_time(time.time() - 600)
    hub.state.job_logs[job_id] += ["Downloading the model"]
    assert json_output(jobs("status", job_id, "--json"))["checks"] == []
    assert "Check:" not in jobs("status", job_id).stdout
    job["startedAt"] = hf_time(time.time() - 5400)
    info = json_output(jobs("status", job_id, "--json"))
    assert [check["kind"] for check in info["checks"]] == ["no_step"]
    text = jobs("status", job_id).stdout
    assert ("Check: no training step logged after 90 min, longer than the plan's estimate for the whole run (60 min); "
            f"read the last lines (jobs.py logs {job_id} --tail 50)") in text
    hub.state.job_logs[job_id].insert(0, "[hardware] no CUDA device found on a GPU flavor (t4-small): training runs "
                                         "on CPU")
    text = jobs("status", job_id).stdout
    assert "Check: no CUDA device found on a GPU flavor (t4-small): training runs on CPU; cancel it" in text
    assert "torch is a CUDA build" in text
    hub.state.job_logs[job_id] += [
        '[progress] {"step": 10, "total_steps": 1000, "loss": 2.0, "time": 1000.0}',
        '[progress] {"step": 20, "total_steps": 1000, "loss": 1.9, "time": 1600.0}']
    info = json_output(jobs("status", job_id, "--json"))
    assert [check["kind"] for check in info["checks"]] == ["no_cuda", "past_timeout"]
    assert ("Check: at this pace it needs about 16.3 h more, past its timeout of 2h (in 30 min); the plan estimated "
            "60 min for the whole run; compare the flavor and batch flags") in jobs("status", job_id).stdout


def finish_test_run(jobs, hub, plan_file, script: str, progress: list[dict]) -> str:
    """A test run submitted with the plan that ran 900 s and logged these progress lines."""
    job_id = json_output(jobs("submit", "--plan", plan_file, "--json", "--", *train(script, script + ".py")))["id"]
    job, now = hub.state.jobs[job_id], time.time()
    hub.state.job_logs[job_id] += ["[progress] " + json.dumps(line) for line in progress]
    job["status"], job["startedAt"] = {"stage": "RUNNING", "message": None}, hf_time(now - 900)
    assert json_output(jobs("status", job_id, "--json"))["full_run"] is None, "measured when the test run ends"
    job["status"], job["finishedAt"] = {"stage": "COMPLETED", "message": None}, hf_time(now)
    return job_id


def test_a_finished_test_run_measures_the_full_runs_time_and_cost(jobs, hub, tmp_path):
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(TEST_PLAN))
    sft = finish_test_run(jobs, hub, plan_file, "train_sft", [
        {"step": 10, "total_steps": 50, "loss": 2.0, "num_tokens": 138000, "time": 1060.0},
        {"step": 50, "total_steps": 50, "loss": 1.5, "num_tokens": 690000, "time": 1300.0}])
    # 41.4M tokens at 2,300 tokens/s, plus the 600 s the test spent outside its 300 s of training
    assert json_output(jobs("status", sft, "--json"))["full_run"] == {
        "tokens_per_s": 2300, "flavor": "t4-small", "nodes": 1, "time_s": 18600, "cost_usd": 2.07, "planned_s": 16200}
    assert ("Measured 2,300 tokens/s on t4-small: the full run takes about 5 h 10 min, $2.07 (the plan said 4 h 30 "
            "min).") in jobs("status", sft).stdout
    # GRPO counts generated tokens too: its pace is per step, 6 s a step for the full run's 2,600 steps
    grpo = finish_test_run(jobs, hub, plan_file, "train_grpo", [
        {"step": 10, "total_steps": 50, "loss": 0.0, "reward": 0.1, "num_tokens": 5e6, "time": 1060.0},
        {"step": 50, "total_steps": 50, "loss": 0.0, "reward": 0.4, "num_tokens": 9e6, "time": 1300.0}])
    assert ("Measured 6 s a step on t4-small: the full run (2,600 steps) takes about 4 h 30 min, $1.80 (the plan said "
            "4 h 30 min).") in jobs("status", grpo).stdout


def test_a_local_test_run_measures_the_full_run_on_this_machine(jobs, tmp_path):
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(FULL_PLAN | {"time_hours": 2.0, "dataset_tokens": 7_200_000, "epochs": 1}))
    script = tmp_path / "short.py"
    script.write_text("import json\nfor step, tokens in ((1, 1000), (2, 3000)):\n"
                      "    print('[progress] ' + json.dumps({'step': step, 'total_steps': 2, 'loss': 1.0, "
                      "'num_tokens': tokens, 'time': 100.0 + step}), flush=True)\n")
    submitted = json_output(jobs("submit", "--backend", "local", "--plan", plan_file, "--json", "--", script,
                                 "--max_steps", "2"))
    assert submitted["test_run"] == {"--max_steps": "2"} and submitted["full_run_estimate"]["tokens"] == 7_200_000
    assert jobs("wait", submitted["id"]).returncode == 0
    info = json_output(jobs("status", submitted["id"], "--json"))
    assert info["full_run"]["tokens_per_s"] == 2000 and info["full_run"]["cost_usd"] is None
    assert ("Measured 2,000 tokens/s on this machine: the full run takes about 1 h (the plan said 2 h)."
            in jobs("status", submitted["id"]).stdout)
