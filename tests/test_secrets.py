"""No secret leaves the machine: the token the loopback Hub accepts is passed every way a person might, a tiny run
is pushed, and every uploaded byte and every file written locally is searched for it."""

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
