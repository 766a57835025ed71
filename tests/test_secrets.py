"""No secret leaves the machine: the token the loopback Hub accepts is passed every way a person might, a tiny run
is pushed, and every uploaded byte and every file written locally is searched for it."""

import json

import pytest
from conftest import SAMPLE
from hub_server import TOKEN

FAST = ["--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "1", "--max_length", "128",
        "--logging_steps", "1", "--max_steps", "2", "--save_steps", "1"]


def files_containing(root, marker: bytes, skip=()) -> list[str]:
    return [str(path) for path in root.rglob("*")
            if path.is_file() and path not in skip and marker in path.read_bytes()]


@pytest.mark.parametrize("way", ["environment", "login_file"])
def test_a_pushed_run_carries_no_token(way, tiny_model, tmp_path, run_script, hub, env):
    login_file = tmp_path / "hf_home" / "token"
    if way == "login_file":
        login_file.parent.mkdir(parents=True, exist_ok=True)
        login_file.write_text(TOKEN)
        env.pop("HF_TOKEN")
    out = tmp_path / "out"
    result = run_script("train_sft.py", "--model_name_or_path", tiny_model, "--dataset_name", SAMPLE / "sft_code.jsonl",
                        "--output_dir", out, "--push_to_hub", "--hub_model_id", f"tester/secret-{way}",
                        "--project", "secret", *FAST)
    assert result.returncode == 0, result.output[-3000:]
    files = hub.state.repos[("model", f"tester/secret-{way}")]["files"]
    assert "training_args.bin" in files and "last-checkpoint/training_args.bin" in files
    assert not [path for path, data in files.items() if TOKEN.encode() in data]
    assert not files_containing(tmp_path, TOKEN.encode(), skip={login_file})
    assert TOKEN not in result.output


def test_hub_token_flag_is_refused_before_anything_is_written(tiny_model, tmp_path, run_script, hub):
    out = tmp_path / "out"
    result = run_script("train_sft.py", "--model_name_or_path", tiny_model, "--dataset_name", SAMPLE / "sft_code.jsonl",
                        "--output_dir", out, "--push_to_hub", "--hub_model_id", "tester/flag", "--hub_token", TOKEN,
                        *FAST)
    assert result.returncode == 2 and "--hub_token is refused" in result.stderr
    assert "Traceback" not in result.output and TOKEN not in result.output
    assert not out.exists() and ("model", "tester/flag") not in hub.state.repos


LEAKY_TRAINER = '''import json, os, sys
token = os.environ["HF_TOKEN"]
print("[run] " + json.dumps({"method": "sft", "output_dir": "/app/" + token, "hub_repo": None,
                             "trackio": {"project": token, "run": "leaky"}, "job": {}}))
print("[progress] " + json.dumps({"step": 1, "total_steps": 4, "loss": 2.0, "time": 1.0, "note": token}))
print(f"login with {token} worked", flush=True)
print(f"ValueError: the repo refused {token}", file=sys.stderr)
sys.exit(1)
'''


def test_hf_job_output_quoting_the_token_is_masked_everywhere(tmp_path, run_script, hub_runner, env):
    """The job (run on the loopback Jobs runner, with the token as its secret) prints the token in its [run] line,
    a progress line, a plain line and its crash message: status, wait, logs, list, report and every file written
    here show [HF_TOKEN] instead."""
    token = env["HF_TOKEN"]
    trainer = tmp_path / "train_leaky.py"
    trainer.write_text(LEAKY_TRAINER)
    submitted = run_script("jobs.py", "submit", "--backend", "hf", "--flavor", "cpu-basic", "--timeout", "5m",
                           "--experiment", "leak", "--name", "leaky", "--json", "--", trainer, "--push_to_hub")
    assert submitted.returncode == 0, submitted.output
    job_id = json.loads(submitted.stdout)["id"]
    waited = run_script("jobs.py", "wait", job_id, extra_env={"HFLT_POLL_S": "0.5"}, timeout=300)
    assert waited.returncode == 1 and "What went wrong: the script failed: ValueError" in waited.stdout, waited.output
    outputs = [waited, run_script("jobs.py", "status", job_id), run_script("jobs.py", "status", job_id, "--json"),
               run_script("jobs.py", "logs", job_id), run_script("jobs.py", "logs", job_id, "--tail", "2"),
               run_script("jobs.py", "list", "--experiment", "leak", "--json"),
               run_script("report.py", "--experiment", "leak", "--output_dir", tmp_path / "reports", "--json")]
    assert "the repo refused [HF_TOKEN]" in outputs[1].stdout and "login with [HF_TOKEN] worked" in outputs[3].stdout
    assert outputs[-1].returncode == 0, outputs[-1].output
    for result in outputs:
        assert token not in result.output, result.args
    report = (tmp_path / "reports" / "leak.md").read_text()
    assert "the script failed: ValueError: the repo refused \\[HF_TOKEN\\]" in report, report
    assert not files_containing(tmp_path, token.encode())
