"""The conversations of shared/WORKFLOW.md as the command sequences an agent runs, end to end."""

import json
import re
import sys
from pathlib import Path

import pytest
from conftest import SAMPLE, SCRIPTS, json_output
from datasets_corpus import CORPUS, write_jsonl

CONFIGS = Path(__file__).parent / "configs"


def test_fine_tune_qwen3_on_codeforces_shows_a_card_then_a_dry_run(run_script, tmp_path, hub):
    """'Fine-tune Qwen3-0.6B on open-r1/codeforces-cots for instruction following.'"""
    validation = tmp_path / "validation.json"
    validation.write_text(json.dumps({"rows": 47780, "tokens": {"total_estimate": 60_000_000}}))
    args = ["--model", CONFIGS / "qwen3-0.6b", "--method", "sft", "--validation", validation, "--dataset",
            "open-r1/codeforces-cots", "--output_repo", "tester/qwen3-0.6b-codeforces-cots-sft"]
    card = run_script("plan.py", *args)
    assert card.returncode == 0, card.output
    assert card.stdout.startswith("I'll fine-tune") and "open-r1/codeforces-cots with SFT" in card.stdout
    hardware = re.search(r"- Hardware: (\S+) \(~\$([\d.]+)/hour", card.stdout)
    assert hardware and hardware.group(1) in ("t4-small", "t4-medium", "l4x1"), card.stdout
    assert re.search(r"- Estimated cost: ~\$[\d.]+", card.stdout) and re.search(r"- Timeout: \d+h\d\dm", card.stdout)
    assert "- Output: tester/qwen3-0.6b-codeforces-cots-sft" in card.stdout and card.stdout.strip().endswith("Submit?")
    plan = tmp_path / "plan.json"
    plan.write_text(run_script("plan.py", *args, "--json").stdout)
    dry = json_output(run_script("jobs.py", "submit", "--plan", plan, "--dry-run", "--json", "--",
                                 SCRIPTS / "train_sft.py", "--model_name_or_path", "Qwen/Qwen3-0.6B", "--dataset_name",
                                 "open-r1/codeforces-cots", "--push_to_hub", "--hub_model_id",
                                 "tester/qwen3-0.6b-codeforces-cots-sft"))
    assert dry["flavor"] == hardware.group(1) and dry["estimated_cost_usd"] == json.loads(plan.read_text())["cost_usd"]
    assert not hub.requests("POST", "/api/jobs/*"), "nothing is submitted before the person says yes"


def test_quick_test_run_on_100_examples_then_how_is_it_doing(run_script, env, tiny_model, tmp_path):
    """'Do a quick test run on 100 examples first.' ... 'How is my training job doing?'"""
    env["HFLT_LOCAL_PYTHON"] = sys.executable
    out = tmp_path / "quick"
    submitted = json_output(run_script("jobs.py", "submit", "--backend", "local", "--json", "--",
                                       SCRIPTS / "train_sft.py", "--model_name_or_path", tiny_model, "--dataset_name",
                                       SAMPLE / "sft_code.jsonl", "--max_samples", "100", "--output_dir", out,
                                       "--max_length", "128", "--logging_steps", "2", "--report_to", "none"))
    assert run_script("jobs.py", "wait", submitted["id"]).returncode == 0
    answer = run_script("jobs.py", "status", submitted["id"]).stdout
    assert f"Job {submitted['id']} completed in" in answer and re.search(r"Step (\d+)/\1 · loss", answer)
    run = json.loads((out / "run.json").read_text())
    assert run["dataset"]["rows"] == 100 and run["status"] == "completed"


def test_my_dpo_data_has_good_and_bad_response_columns(run_script, tiny_model, tmp_path):
    rows, _, _ = CORPUS["good-bad-responses"]
    data = write_jsonl(tmp_path / "prefs.jsonl", rows)
    text = run_script("validate_dataset.py", "--dataset", data).stdout
    assert "train with: --map chosen=good_response,rejected=bad_response" in text
    fix = json_output(run_script("validate_dataset.py", "--dataset", data, "--json"))["methods"]["dpo"]["fix"]
    result = run_script("train_dpo.py", "--model_name_or_path", tiny_model, "--dataset_name", data, *fix.split(),
                        "--output_dir", tmp_path / "dpo", "--max_steps", "2", "--report_to", "none", "--max_length", "128")
    assert result.returncode == 0, result.output[-2000:]


def test_grpo_on_gsm8k_style_data(run_script, tiny_model, tmp_path):
    """'Train a math reasoning model with GRPO on openai/gsm8k starting from Qwen3-0.6B.'"""
    report = json_output(run_script("validate_dataset.py", "--dataset", SAMPLE / "grpo_math.jsonl", "--json"))
    assert report["methods"]["grpo"]["fix"] == "--convert gsm8k"
    out = tmp_path / "grpo"
    result = run_script("train_grpo.py", "--model_name_or_path", tiny_model, "--dataset_name", SAMPLE / "grpo_math.jsonl",
                        *report["methods"]["grpo"]["fix"].split(), "--reward_funcs", "number_match,answer_format",
                        "--output_dir", out, "--max_steps", "2", "--num_generations", "4", "--max_completion_length",
                        "8", "--per_device_train_batch_size", "4", "--report_to", "none")
    assert result.returncode == 0, result.output[-2000:]
    assert json.loads((out / "run.json").read_text())["method"] == "grpo"


@pytest.mark.long
def test_experiment_with_evaluation_and_report_answers_are_we_beating_the_base(run_script, tiny_model, tmp_path):
    """'Start a new experiment ... Maintain a report. Evaluate with HumanEval.' then 'Are the models beating the base?'"""
    sft = tmp_path / "sft-local"
    assert run_script("train_sft.py", "--model_name_or_path", tiny_model, "--dataset_name", SAMPLE / "sft_code.jsonl",
                      "--output_dir", sft, "--max_steps", "6", "--report_to", "none", "--max_length", "128").returncode == 0
    base = tmp_path / "base_eval.json"
    base.write_text(run_script("eval_humaneval.py", "--model", tiny_model, "--limit", "2", "--max_new_tokens", "8",
                               "--json").stdout)
    assert run_script("eval_humaneval.py", "--model", sft, "--limit", "2", "--max_new_tokens", "8", "--run",
                      sft).returncode == 0
    assert run_script("report.py", "--experiment", "code", "--runs", sft, "--evals", base, "--out",
                      tmp_path / "training_reports").returncode == 0
    report = (tmp_path / "training_reports" / "code.md").read_text()
    assert "| `base-humaneval` -" in report and "| `sft-local` -" in report
    assert re.search(r"- `sft-local` on HumanEval: .*: (better|worse|no difference this evaluation can detect)\.", report)


def test_evaluation_runs_as_a_job(run_script, env, tiny_model, tmp_path):
    """eval_humaneval.py through jobs.py, as for a GPU flavor, here on the local backend."""
    env["HFLT_LOCAL_PYTHON"] = sys.executable
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"method": "sft"}))
    submitted = json_output(run_script("jobs.py", "submit", "--backend", "local", "--json", "--",
                                       SCRIPTS / "eval_humaneval.py", "--model", tiny_model, "--limit", "2",
                                       "--max_new_tokens", "8", "--run", run))
    assert run_script("jobs.py", "wait", submitted["id"]).returncode == 0
    evaluation = json.loads(run.read_text())["evaluations"][0]
    assert evaluation["n"] == 2 and evaluation["job"].endswith(f"{submitted['id']}/log")
