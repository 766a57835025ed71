"""One name per idea across scripts (TRL's where TRL has one), and the old spellings still work and mean the same:
each case runs the script twice as the agent would, once with each spelling, and compares what it did."""

import pytest
from conftest import ROOT, SCRIPTS

CONFIG = ROOT / "tests" / "configs" / "qwen3-0.6b"


def same_outcome(run_script, script, new, old, *rest):
    first, second = run_script(script, *new, *rest), run_script(script, *old, *rest)
    assert (first.returncode, first.stdout, first.stderr) == (second.returncode, second.stdout, second.stderr)
    return first


def test_plan_hub_model_id_is_the_output_repo(run_script):
    result = same_outcome(run_script, "plan.py", ["--hub_model_id", "alice/cf-sft"], ["--output_repo", "alice/cf-sft"],
                          "--model", CONFIG, "--method", "sft", "--dataset_tokens", "2e6")
    assert result.returncode == 0 and "- Output: alice/cf-sft" in result.stdout


def test_jobs_dry_run_with_underscore(run_script, hub):
    command = ["--flavor", "l4x1", "--timeout", "1h", "--name", "spelling", "--json", "--", SCRIPTS / "train_sft.py",
               "--model_name_or_path", "m", "--dataset_name", "d", "--push_to_hub"]
    result = same_outcome(run_script, "jobs.py", ["submit", "--dry_run"], ["submit", "--dry-run"], *command)
    assert result.returncode == 0 and '"dry_run": true' in result.stdout and not hub.requests("POST", "/api/jobs/*")


@pytest.mark.parametrize("flags", [("--output_dir", "--outdir"), ("--hub_model_id", "--push_to")])
def test_convert_gguf_output_flags(run_script, tmp_path, flags):
    """Both spellings reach the same check: a file where the directory goes, an invalid repo id."""
    value = {"--output_dir": tmp_path / "file.txt", "--hub_model_id": "not a/valid repo"}[flags[0]]
    (tmp_path / "file.txt").write_text("x")
    result = same_outcome(run_script, "convert_gguf.py", [flags[0], value], [flags[1], value],
                          "--model", tmp_path / "missing-model")
    assert result.returncode == 2 and flags[0] in result.stderr, result.stderr


def test_validate_dataset_config_and_its_old_spelling(run_script, tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}\n' * 4)
    result = same_outcome(run_script, "validate_dataset.py", ["--dataset_config", "main"], ["--config", "main"],
                          "--dataset", rows, "--json")
    assert result.returncode == 2 and "configuration" in result.stderr.lower(), result.output


def test_report_output_dir_and_its_old_spelling(run_script, tmp_path):
    first = run_script("report.py", "--experiment", "spell", "--output_dir", tmp_path / "new")
    second = run_script("report.py", "--experiment", "spell", "--out", tmp_path / "old")
    assert first.returncode == second.returncode == 0, first.output + second.output
    assert (tmp_path / "new" / "spell.md").read_text() == (tmp_path / "old" / "spell.md").read_text()


@pytest.mark.parametrize("script,args", [
    ("plan.py", ["--model", CONFIG, "--method", "sft", "--hub_model_id", "../x"]),
    ("jobs.py", ["submit", "--backend", "local", "--name", "two\nlines", "--", SCRIPTS / "train_sft.py"]),
    ("jobs.py", ["submit", "--backend", "local", "--experiment", "\x1b[31m", "--", SCRIPTS / "train_sft.py"])])
def test_names_and_ids_that_cannot_be_are_one_sentence(run_script, script, args):
    result = run_script(script, *args)
    assert result.returncode == 2 and "Traceback" not in result.output, result.output[-2000:]
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_trainer_refuses_a_bad_repo_id_before_loading_anything(run_script, tiny_model, tmp_path):
    output = tmp_path / "out"
    result = run_script("train_sft.py", "--model_name_or_path", tiny_model, "--dataset_name", ROOT / "data" / "sample" /
                        "sft_code.jsonl", "--output_dir", output, "--push_to_hub", "--hub_model_id", "../../x")
    assert result.returncode == 2 and "is not a Hub repo id" in result.stderr, result.output[-2000:]
    assert "Resolved" not in result.output and not output.exists()
