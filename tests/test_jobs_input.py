"""jobs.py as people meet it: bad input and unreachable Hubs (one sentence, the right exit code, state untouched),
the token kept out of every file and output, Jobs refusals with their fix, the words status uses, and the job
identity a run record and the report read."""

import json
import socket
import sys
import time

import pytest
from conftest import SCRIPTS, json_output

HF_ID = "0123456789abcdef01234567"
QUICK = "print('hello')\n"


@pytest.fixture
def state(tmp_path):
    return tmp_path / "jobs_state"


def one_sentence(result, code: int, *words: str):
    """Exit code, a single 'error: ...' line on stderr naming the problem, no traceback."""
    assert result.returncode == code, result.output[-3000:]
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.stderr, result.stderr


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def finished(jobs, job_id, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        info = json_output(jobs("status", job_id, "--json"))
        if info["stage"] not in ("SCHEDULING", "RUNNING"):
            return info
        time.sleep(0.3)
    raise AssertionError(f"{job_id} did not finish")


def state_files(state):
    return [p for p in state.rglob("*") if p.is_file()] if state.exists() else []


@pytest.mark.parametrize("command", ["status", "logs", "cancel"])
def test_hf_ids_unknown_without_token_or_offline(jobs, env, hub, command):
    one_sentence(jobs(command, HF_ID), 2, f"No HF job {HF_ID}", "jobs.py list")
    one_sentence(jobs(command, "not-a-job"), 2, "is not a job id")
    assert not hub.requests(None, "/api/jobs/tester/not-a-job*"), "a malformed id never reaches the Hub"
    no_token = {k: v for k, v in env.items() if k != "HF_TOKEN"}
    env.clear()
    env.update(no_token, HF_HUB_OFFLINE="1")
    one_sentence(jobs(command, HF_ID), 2, "needs a Hugging Face token", "hf auth login")
    # a well-formed id the Hub cannot be asked about: the same command works once online, so it is a runtime failure
    one_sentence(jobs(command, HF_ID, extra_env={"HF_TOKEN": "hf_x"}), 1, "HF_HUB_OFFLINE=1 is set")
    unreachable = {"HF_TOKEN": "hf_x", "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}"}
    one_sentence(jobs(command, HF_ID, extra_env=unreachable), 1, "Could not reach", "try again")


def test_list_survives_offline_hub_and_a_corrupt_job(jobs, tmp_path, state):
    script = tmp_path / "quick.py"
    script.write_text(QUICK)
    ids = [json_output(jobs("submit", "--backend", "local", "--json", "--", script))["id"] for _ in range(2)]
    for job_id in ids:
        assert finished(jobs, job_id)["stage"] == "COMPLETED"
    offline = jobs("list", extra_env={"HF_TOKEN": "hf_x"})
    assert offline.returncode == 0 and all(job_id in offline.stdout for job_id in ids)
    assert "the HF Jobs list could not be fetched" in offline.stderr and "Traceback" not in offline.stderr
    (state / ids[0] / "status.json").write_text('{"stage": "COMPL')
    listed = jobs("list")
    assert listed.returncode == 0 and ids[1] in listed.stdout
    assert next(line for line in listed.stdout.splitlines() if ids[0] in line).split()[2] == "unreadable"
    stages = {job["id"]: job["stage"] for job in json_output(jobs("list", "--json"))}
    assert stages == {ids[0]: "UNREADABLE", ids[1]: "COMPLETED"}
    one_sentence(jobs("status", ids[0]), 1, "cannot be read", ids[0])
    for tail in ("0", "-2"):
        one_sentence(jobs("logs", ids[1], "--tail", tail), 2, f"--tail {tail} is not a number of lines")


def test_submit_refuses_bad_flags_before_anything_is_made(jobs, tmp_path, state, hub, env):
    script = tmp_path / "quick.py"
    script.write_text(QUICK)
    for timeout in ("soon", "0", "-30", "=-5m", "0m"):
        flag = ["--timeout" + timeout] if timeout.startswith("=") else ["--timeout", timeout]
        one_sentence(jobs("submit", "--backend", "local", *flag, "--", script), 2, "--timeout")
    one_sentence(jobs("submit", "--backend", "local", "--timeout", "-5m", "--", script), 2, "--timeout")
    text_plan, list_plan, no_fit = tmp_path / "plan.txt", tmp_path / "list.json", tmp_path / "nofit.json"
    text_plan.write_text("flavor: t4-small")
    list_plan.write_text("[1, 2]")
    no_fit.write_text(json.dumps({"flavor": "h200", "time_hours": 1, "fits": False, "suggestions": ["--peft qlora"]}))
    for plan in (text_plan, list_plan, tmp_path / "missing.json"):
        one_sentence(jobs("submit", "--backend", "local", "--plan", plan, "--", script), 2, "is not a plan.py --json")
    one_sentence(jobs("submit", "--backend", "local", "--plan", no_fit, "--", script), 2, "--peft qlora")
    one_sentence(jobs("submit", "--backend", "local", "--nodes", "0", "--", script), 2, "--nodes 0")
    unknown = jobs("submit", "--flavor", "t4-gigantic", "--timeout", "1h", "--", script)
    one_sentence(unknown, 2, "Unknown flavor 't4-gigantic'", "a10g-large", "t4-small")
    assert not hub.requests("POST", "/api/jobs/*")
    assert not state_files(state), "nothing was written for refused submissions"
    # offline, the flavor cannot be checked: it is taken as given (here a dry run)
    env.pop("HF_ENDPOINT")
    dry = jobs("submit", "--flavor", "t4-gigantic", "--timeout", "1h", "--dry-run", "--json", "--", script,
               extra_env={"HF_HUB_OFFLINE": "1"})
    assert json_output(dry)["flavor"] == "t4-gigantic"


def test_submit_to_hf_without_token_says_so(jobs, tmp_path, state):
    script = tmp_path / "quick.py"
    script.write_text(QUICK)
    one_sentence(jobs("submit", "--backend", "hf", "--flavor", "t4-small", "--", script), 2,
                 "needs a Hugging Face token", "--backend local")
    assert not state_files(state)


def test_an_hf_flavor_without_a_token_is_not_run_here_silently(jobs, tmp_path, state):
    """A plan (or --flavor) for HF Jobs and no token: not a local run nobody asked for, but the two ways forward."""
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"flavor": "t4-small", "timeout": "1h", "time_hours": 0.2, "cost_usd": 0.08}))
    script = tmp_path / "quick.py"
    script.write_text(QUICK)
    one_sentence(jobs("submit", "--plan", plan, "--", script), 2, "t4-small", "hf auth login", "--backend local")
    one_sentence(jobs("submit", "--flavor", "a10g-small", "--", script), 2, "--flavor", "a10g-small", "--backend local")
    assert not state_files(state)
    local = json_output(jobs("submit", "--plan", plan, "--backend", "local", "--dry_run", "--json", "--", script))
    assert local["backend"] == "local"


def test_a_bare_script_name_is_the_bundled_script(jobs, tmp_path):
    """SKILL.md names scripts relative to its own folder while the agent works in the person's folder."""
    dry = json_output(jobs("submit", "--backend", "local", "--dry_run", "--json", "--", "train_sft.py",
                           "--model_name_or_path", "m", "--dataset_name", "d", cwd=tmp_path))
    assert dry["command"][0] == str(SCRIPTS / "train_sft.py")
    one_sentence(jobs("submit", "--backend", "local", "--", "train_sfx.py", cwd=tmp_path), 2, "train_sfx.py")


def test_token_never_reaches_args_state_or_outputs(jobs, tmp_path, state, hub, env):
    marker = "hf_" + "marker" * 6  # built at run time: no token-shaped literal in the repository
    for backend in ("hf", "local"):
        for flags in (["--hub_token", marker], [f"--hub_token={marker}"], ["--hub-token", "x"]):
            refused = jobs("submit", "--backend", backend, "--flavor", "t4-small", "--", SCRIPTS / "train_sft.py",
                           "--model_name_or_path", "m", "--dataset_name", "d", "--push_to_hub", *flags)
            one_sentence(refused, 2, "tokens travel only as HF_TOKEN", "job secret")
            assert marker not in refused.output
    assert not hub.requests("POST", "/api/jobs/*") and not state_files(state)
    # the environment's token reaches the local job (it pushes with it) but is masked in everything written
    printer = tmp_path / "printer.py"
    printer.write_text("import os, sys\nprint('token', os.environ['HF_TOKEN'], flush=True)\n"
                       "print('[run] {\"method\": \"sft\", \"hub_repo\": \"%s\"}' % os.environ['HF_TOKEN'])\n"
                       "sys.exit(3)\n")
    env.update(HF_TOKEN=marker, HF_HUB_OFFLINE="1")
    env.pop("HF_ENDPOINT")
    submitted = json_output(jobs("submit", "--backend", "local", "--json", "--", printer))
    info = finished(jobs, submitted["id"])
    outputs = [jobs("status", submitted["id"]).output, jobs("status", submitted["id"], "--json").output,
               jobs("logs", submitted["id"]).output, jobs("list", "--json").output, json.dumps(info)]
    assert "token [HF_TOKEN]" in outputs[2]
    assert not any(marker in text for text in outputs)
    assert state_files(state) and not any(marker.encode() in p.read_bytes() for p in state_files(state))


@pytest.mark.parametrize("switch,words", [
    ("no_credit", ["lack of credit", "{endpoint}/settings/billing", "--backend local"]),
    ("refused_flavors", ["refused flavor a10g-large", "l4x1, a100-large", "--backend local"]),
    ("token_without_jobs_scope", ["jobs scope", "hf auth login", "--backend local"]),
])
def test_jobs_refusals_name_the_fix_and_never_fall_back(jobs, hub, tmp_path, state, switch, words):
    setattr(hub.state, switch, {"a10g-large"} if switch == "refused_flavors" else True)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"flavor": "a10g-large", "timeout": "1h", "time_hours": 0.5, "cost_usd": 0.75,
                                "alternatives": [{"flavor": "l4x1"}, {"flavor": "a100-large"}]}))
    refused = jobs("submit", "--plan", plan, "--", SCRIPTS / "train_sft.py", "--model_name_or_path", "m",
                   "--dataset_name", "d", "--push_to_hub", "--hub_model_id", "tester/m")
    one_sentence(refused, 2, *(word.format(endpoint=hub.endpoint) for word in words))
    assert switch != "no_credit" or "huggingface.co" not in refused.stderr, "the link is on the Hub in use"
    assert not hub.state.jobs and not state_files(state), "no job anywhere: not on the Hub, not locally"


def test_status_speaks_plainly(jobs, hub, tmp_path):
    submitted = json_output(jobs("submit", "--flavor", "t4-small", "--timeout", "2h", "--json", "--",
                                 SCRIPTS / "validate_dataset.py", "--dataset", "a/b"))
    job = hub.state.jobs[submitted["id"]]
    job["startedAt"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 7200))
    job["finishedAt"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    expected = {("SCHEDULING", None): "is scheduled", ("RUNNING", None): "is running",
                ("COMPLETED", None): "completed in 2.0 h", ("ERROR", "Job failed with exit code: 1"): "failed after 2.0 h",
                ("CANCELED", "Canceled by user"): "was cancelled",
                ("ERROR", "Job timeout: stopped after 7200s"): "timed out after 2h."}
    hub.state.job_logs[submitted["id"]] += ["\x1b[33mUserWarning: something deprecated\x1b[0m",
                                            " 10%|#         | 1/10\r 90%|######### | 9/10\x1b[K",
                                            "RuntimeError: the dataloader broke"]
    for (stage, message), words in expected.items():
        job["status"] = {"stage": stage, "message": message}
        text = jobs("status", submitted["id"]).stdout
        assert text.startswith(f"Job {submitted['id']} {words}"), text
        assert " is error" not in text and " is timeout" not in text and "\r" not in text and "\x1b" not in text
    job["status"] = {"stage": "ERROR", "message": "Job failed with exit code: 1"}
    text = jobs("status", submitted["id"]).stdout
    assert "What went wrong: the script failed: RuntimeError: the dataloader broke." in text
    assert "Warning" not in text
    help_text = jobs("--help").stdout
    assert "_supervise" not in help_text and "{submit,status,wait,cancel,logs,list}" in help_text


def test_local_job_identity_trackio_store_and_experiment_listing(jobs, tmp_path, hub, env):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import json, os\n"
        "print('[env] ' + json.dumps({k: os.environ.get(k) for k in ('JOB_ID', 'HFLT_JOB_ID', 'HFLT_JOB_URL')}))\n"
        "print('[run] ' + json.dumps({'method': 'sft', 'output_dir': '/tmp/out', 'hub_repo': None,\n"
        "                            'trackio': {'project': 'p1', 'run': 'sft-a', 'space': None}}), flush=True)\n")
    submitted = json_output(jobs("submit", "--backend", "local", "--experiment", "exp1", "--json", "--", probe))
    other = json_output(jobs("submit", "--backend", "local", "--experiment", "exp2", "--json", "--", probe))
    finished(jobs, submitted["id"])
    finished(jobs, other["id"])
    log = jobs("logs", submitted["id"]).stdout
    seen = json.loads(next(line for line in log.splitlines() if line.startswith("[env] "))[6:])
    assert seen == {"JOB_ID": submitted["id"], "HFLT_JOB_ID": submitted["id"], "HFLT_JOB_URL": submitted["url"]}
    text = jobs("status", submitted["id"]).stdout
    assert f"Trackio: project p1, run sft-a in the local store {tmp_path / 'trackio'}" in text
    # an HF job of the same experiment, whose run printed its [run] line
    hf = json_output(jobs("submit", "--flavor", "t4-small", "--timeout", "1h", "--experiment", "exp1", "--json", "--",
                          SCRIPTS / "train_sft.py", "--model_name_or_path", "m", "--dataset_name", "d",
                          "--push_to_hub", "--hub_model_id", "tester/m"))
    assert hub.requests("POST", "/api/jobs/tester")[0]["json"]["environment"]["HFLT_JOB_NAMESPACE"] == "tester"
    hub.state.job_logs[hf["id"]].append('[run] {"method": "sft", "output_dir": "m-sft", "hub_repo": "tester/m", '
                                        '"trackio": {"project": "p", "run": "r", "space": "tester/trackio"}}')
    assert f"Trackio: {hub.endpoint}/spaces/tester/trackio?project=p&runs=r" in jobs("status", hf["id"]).stdout
    listed = {job["id"]: job for job in json_output(jobs("list", "--experiment", "exp1", "--json"))}
    assert set(listed) == {submitted["id"], hf["id"]}
    local = listed[submitted["id"]]
    assert local["url"] == submitted["url"] and local["stage"] == "COMPLETED" and local["script"] == "probe"
    assert local["labels"]["experiment"] == "exp1" and local["output_dir"] == "/tmp/out"
    assert local["created_at"].endswith("Z")
    remote = listed[hf["id"]]
    assert remote["url"] == f"{hub.endpoint}/jobs/tester/{hf['id']}" and remote["script"] == "train_sft"
    assert remote["output_dir"] == "m-sft" and remote["hub_repo"] == "tester/m" and remote["stage"] == "SCHEDULING"


def test_hf_job_builds_its_url_from_the_platform_env(jobs, tmp_path, env):
    """A job that really runs (the loopback runner) finds JOB_ID from the platform and HFLT_JOB_NAMESPACE from us."""
    sys.path.insert(0, str(SCRIPTS))
    import plan
    from hub_server import TOKEN, LoopbackHub

    server = LoopbackHub(plan.catalogue_as_api(), run_jobs=True)
    try:
        env.pop("HF_HUB_OFFLINE")
        env.update(HF_ENDPOINT=server.endpoint, HF_TOKEN=TOKEN)
        probe = tmp_path / "whoami_job.py"
        probe.write_text("import os\nprint('url', os.environ['HF_ENDPOINT'] + '/jobs/' + "
                         "os.environ['HFLT_JOB_NAMESPACE'] + '/' + os.environ['JOB_ID'])\n")
        submitted = json_output(jobs("submit", "--flavor", "cpu-basic", "--timeout", "5m", "--json", "--", probe))
        assert jobs("wait", submitted["id"]).returncode == 0
        assert f"url {submitted['url']}" in jobs("logs", submitted["id"]).stdout
    finally:
        server.close()


def test_a_second_job_into_a_live_jobs_output_is_refused(jobs, tmp_path, state):
    script = tmp_path / "slow.py"
    script.write_text("import time\ntime.sleep(120)\n")
    first = json_output(jobs("submit", "--backend", "local", "--json", "--", script, "--output_dir", tmp_path / "out"))
    one_sentence(jobs("submit", "--backend", "local", "--", script, "--output_dir=" + str(tmp_path / "out")), 2,
                 "is the output of job", first["id"], "--output_dir")
    elsewhere = json_output(jobs("submit", "--backend", "local", "--json", "--", script, "--output_dir",
                                 tmp_path / "elsewhere"))
    for job in (first, elsewhere):
        assert jobs("cancel", job["id"]).returncode == 0
    again = json_output(jobs("submit", "--backend", "local", "--json", "--", script, "--output_dir", tmp_path / "out"))
    assert jobs("cancel", again["id"]).returncode == 0
