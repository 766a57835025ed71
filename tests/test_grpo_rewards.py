"""Rewards you can trust: train_grpo.py checks every reward call (one finite number per completion, in time) and stops
in one sentence naming the function and the row; jobs.py reads any metric line and classifies reward failures;
--convert gsm8k refuses answers without a final number. Real flags, subprocesses, a tiny model, one or two steps."""

import json
import sys

import pytest
from conftest import SCRIPTS, json_output

REWARDS = '''
import time


def nan_reward(completions, **kwargs):
    return [float("nan")] * len(completions)


def none_reward(completions, **kwargs):
    return [None] * len(completions)


def short_reward(completions, **kwargs):
    return [1.0]


def raising_reward(completions, solution, **kwargs):
    raise KeyError("answer")


def slow_reward(completions, **kwargs):
    try:
        time.sleep(20)
    except Exception:  # a reward's own blanket except must not swallow the time limit
        pass
    return [0.0] * len(completions)


def math_only(completions, solution, **kwargs):  # TRL's multi-task convention: None where a reward does not apply
    return [None if i % 2 else 1.0 for i in range(len(completions))]


def everything(completions, **kwargs):
    return [0.5] * len(completions)
'''
GSM8K_ROWS = [{"question": f"Sam has {n} apples and eats one. How many are left?", "answer": f"{n} - 1 = {n - 1}"}
              for n in range(2, 10)]


def grpo(run_script, tiny_model, tmp_path, rewards: str, *extra):
    (tmp_path / "rewards.py").write_text(REWARDS)
    data = tmp_path / "math.jsonl"
    data.write_text("".join(json.dumps({"question": f"What is {n} + 1?", "answer": f"{n} + 1 = {n + 1}\n#### {n + 1}"})
                            + "\n" for n in range(8)))
    funcs = ",".join(f"{tmp_path / 'rewards.py'}:{name}" for name in rewards.split(","))
    return run_script("train_grpo.py", "--model_name_or_path", tiny_model, "--dataset_name", data, "--convert", "gsm8k",
                      "--reward_funcs", funcs, "--output_dir", tmp_path / "out", "--max_steps", "1",
                      "--num_generations", "2", "--per_device_train_batch_size", "2", "--max_completion_length", "4",
                      "--logging_steps", "1", "--report_to", "none", *extra)


@pytest.mark.parametrize("reward,extra,needle", [
    ("nan_reward", [], "returned nan for completion 0 of 4 (prompt 'What is "),
    ("none_reward", [], "returned None for completion 0 of 4 (prompt 'What is "),
    ("short_reward", [], "returned 1 rewards for the 4 completions"),
    ("raising_reward", [], "raised KeyError: 'answer' at rewards.py:"),
    ("slow_reward", ["--reward_timeout", "1s"], "took longer than 1s (--reward_timeout)"),
])
def test_a_bad_reward_stops_the_run_in_one_sentence_naming_it(reward, extra, needle, run_script_shared, tiny_model,
                                                              tmp_path):
    result = grpo(run_script_shared, tiny_model, tmp_path, reward, *extra)
    assert result.returncode == 2, result.output[-3000:]
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and f"error: reward function {reward} " in errors[0] and needle in errors[0], errors
    assert "Traceback" not in result.output
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["status"] == "failed" and f"reward function {reward} " in record["error"]


def test_convert_gsm8k_refuses_answers_without_a_final_number(run_script_shared, tiny_model, tmp_path):
    data = tmp_path / "no_final.jsonl"
    rows = [dict(GSM8K_ROWS[0], answer=GSM8K_ROWS[0]["answer"] + "\n#### 1"), *GSM8K_ROWS[1:]]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = run_script_shared("train_grpo.py", "--model_name_or_path", tiny_model, "--dataset_name", data, "--convert",
                        "gsm8k", "--output_dir", tmp_path / "out", "--max_steps", "1", "--report_to", "none")
    assert result.returncode == 2, result.output[-3000:]
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and "Traceback" not in result.output
    assert "--convert gsm8k needs answers ending in '#### <number>', but 7 of the first 8 answers have none (row 1: " \
           "'3 - 1 = 2')" in result.stderr and "--map prompt=question,solution=" in result.stderr
    assert not (tmp_path / "out").exists(), "refused before the model loads and the run starts"
    verdict = json_output(run_script_shared("validate_dataset.py", "--dataset", data, "--json"))["methods"]["grpo"]
    assert verdict["status"] == "incompatible" and not verdict["fix"], verdict
    assert "'#### <number>'" in verdict["reasons"][0]


def test_status_wait_and_list_read_bad_metric_lines_and_name_a_failed_reward(jobs, tmp_path):
    lines = [{"step": 1, "total_steps": 3, "time": 1.0, "loss": 0.0, "reward": float("nan")},
             {"step": 2, "total_steps": 3, "time": 2.0, "loss": 0.0, "reward": None, "completions/clipped_ratio": "x"},
             {"step": 3, "total_steps": 3, "time": 3.0, "loss": 0.0, "reward": "oops", "reward_std": None}]
    logged = tmp_path / "logged.py"
    logged.write_text("".join(f"print({json.dumps('[progress] ' + json.dumps(line))})\n" for line in lines))
    failing = tmp_path / "failing.py"
    failing.write_text("import sys\nprint('[progress] ' + '{\"step\": 1, \"total_steps\": 3, \"reward\": NaN}')\n"
                       "print(\"error: reward function exact_match returned nan for completion 2 of 8 (prompt 'Tom "
                       "has'); return a finite number for each completion.\", file=sys.stderr)\nsys.exit(2)\n")
    done = json_output(jobs("submit", "--backend", "local", "--json", "--", logged))["id"]
    failed = json_output(jobs("submit", "--backend", "local", "--json", "--", failing))["id"]
    waited = jobs("wait", done)
    assert waited.returncode == 0 and "Traceback" not in waited.output, waited.output[-2000:]
    info = json_output(jobs("status", done, "--json"))
    assert info["step"] == 3 and info["reward"] is None and info["clipped_ratio"] is None
    assert [h["kind"] for h in info["health"]] == ["reward_not_a_number"]
    text = jobs("status", done)
    assert text.returncode == 0 and "the logged reward is not a number" in text.stdout, text.output[-2000:]
    assert jobs("wait", failed).returncode == 1
    diagnosis = json_output(jobs("status", failed, "--json"))["diagnosis"]
    assert diagnosis == {"kind": "reward_function", "problem": "reward function exact_match returned nan for completion "
                         "2 of 8 (prompt 'Tom has')", "fix": "return a finite number for each completion"}
    listed = jobs("list", "--json")
    assert listed.returncode == 0 and {done, failed} <= {job["id"] for job in json.loads(listed.stdout)}, listed.output


def test_reward_values_as_trl_takes_them():
    sys.path.insert(0, str(SCRIPTS))
    import train_grpo

    assert [train_grpo.reward_value(v) for v in (1, True, 0.5, None)] == [1.0, 1.0, 0.5, None]
    for bad in (float("nan"), float("inf"), "1.0", [1.0]):
        with pytest.raises(ValueError):
            train_grpo.reward_value(bad)
    assert train_grpo.parse_duration("2m", "--reward_timeout") == 120
    assert train_grpo.parse_duration("1m30s", "--reward_timeout") == 90
    # None is TRL's "does not apply" (multi-task rewards): allowed where another reward scores the completion
    namespace = {}
    exec(REWARDS, namespace)
    math_only, everything = train_grpo.checked_rewards([namespace["math_only"], namespace["everything"]], 5)
    assert (math_only.__name__, everything.__name__) == ("math_only", "everything")  # TRL logs rewards/<name>/mean
    batch = {"prompts": ["What is 1 + 1?"] * 2, "completions": ["2", "3"], "solution": ["2", "2"]}
    assert math_only(**batch) == [1.0, None] and everything(**batch) == [0.5, 0.5]
