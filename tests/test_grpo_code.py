"""GRPO on code with eval_humaneval.py's sandbox: train_grpo.py's built-in code_tests reward scores the share of a row's
tests a completion's code passes (HumanEval-style `test` + `entry_point`, or `tests` as stdin/stdout pairs), no
completion forges a pass, a completion that never ends is cut, and no sandbox means a refusal unless the risk is named.
"""

import json
import os
import sys
import threading

import pytest
from conftest import SCRIPTS, json_output

CHECK = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"
PROMPT = "Write a Python function add(a, b) that returns a + b."
EXPECTED = "HFLT-EXPECTED-9c1e"  # an expected output no program computes: only a reader of the tests would print it
IO_TESTS = [{"input": "1 2\n", "output": "3\n"}, {"input": "2 2\n", "output": " 4 \n\n"},
            {"input": "0 0\n", "output": EXPECTED}]

FUNCTION_COMPLETIONS = {  # completion -> its reward
    "```python\ndef add(a, b):\n    return a + b\n```": 1.0,
    "Here it is:\n```python\ndef add(a, b):\n    return a - b\n```\nDone.": 0.0,
    # the forgeries the evaluator once fell for: a pass marker read from the program's files or its frames' code
    # constants and printed before exiting 0, an always-equal object, an early clean exit
    "def add(a, b):\n    import os\n    for name in filter(os.path.isfile, os.listdir('.')):\n"
    "        print(open(name).read(), flush=True)\n    os._exit(0)": 0.0,
    "def add(a, b):\n    import os, sys\n    frame = sys._getframe()\n    while frame:\n"
    "        print(*frame.f_code.co_consts, flush=True)\n        frame = frame.f_back\n    os._exit(0)": 0.0,
    "class E(int):\n    __eq__ = lambda *a: True\n    __repr__ = lambda self: '5'\n\ndef add(a, b):\n    return E(0)": 0.0,
    "def add(a, b):\n    raise SystemExit(0)": 0.0,
}
IO_COMPLETIONS = {
    "```python\na, b = map(int, input().split())\nprint(a + b)\n```": 2 / 3,  # the third expects what nobody computes
    "print(3)": 1 / 3,
    "print('wrong')": 0.0,
    "import os\nprint(3, flush=True)\nos._exit(0)": 1 / 3,  # answers before reading its input: right all the same
    "print(" + repr(EXPECTED) + " if input() == '0 0' else 0)": 1 / 3,  # knowing an answer is not reading it
}

# A reader of anything it can reach (but the system's and Python's own files), looking for the expected outputs: none
# enter its sandbox. At the namespaces level it sees nothing of the host; at the seccomp level it would see the host's
# world-readable files (this test file among them), so it is checked where the file system is private.
READER = ("import os\nseen = []\nfor top in ('.', '/', '/tmp', os.environ.get('HOME', '/root')):\n"
          "    for root, dirs, files in os.walk(top):\n"
          "        if root.startswith(('/proc', '/sys', '/usr', '/dev')) or 'site-packages' in root or 'lib/python' in root:\n"
          "            dirs[:] = []\n            continue\n        for name in files:\n            try:\n"
          "                seen.append(open(os.path.join(root, name), errors='ignore').read(100000))\n"
          "            except Exception:\n                pass\n"
          f"hits = [text for text in seen if {EXPECTED[:9]!r} in text]\nprint(hits[0] if hits else 'nothing')\n")


def code_tests(level: str, timeout: float = 10.0):
    sys.path.insert(0, str(SCRIPTS))
    import train_grpo

    os.environ["HFLT_MAX_ISOLATION"] = level
    try:
        isolation = train_grpo.choose_isolation(False, "code_tests")
    except train_grpo.BadInput as error:
        pytest.skip(f"no {level} sandbox here: {error}")
    finally:
        del os.environ["HFLT_MAX_ISOLATION"]
    if isolation["level"] != level:
        pytest.skip(f"this machine cannot sandbox at the {level} level")
    return train_grpo.code_tests_reward(isolation, timeout)


@pytest.mark.parametrize("level", ["namespaces", "seccomp"])
def test_code_tests_scores_the_share_passed_and_no_forgery_passes(level):
    if level == "seccomp" and os.geteuid() != 0:
        pytest.skip("the seccomp level drops to unprivileged uids, which needs root")
    reward = code_tests(level)
    function_rows = list(FUNCTION_COMPLETIONS)
    scores = reward(function_rows, prompts=[PROMPT] * len(function_rows), test=[CHECK] * len(function_rows),
                    entry_point=["add"] * len(function_rows))
    assert dict(zip(function_rows, scores)) == FUNCTION_COMPLETIONS
    expected = IO_COMPLETIONS | ({READER: 0.0} if level == "namespaces" else {})
    io_rows = list(expected)
    scores = reward([[{"role": "assistant", "content": c}] for c in io_rows], tests=[IO_TESTS] * len(io_rows))
    assert dict(zip(io_rows, [round(s, 4) for s in scores])) == {c: round(s, 4) for c, s in expected.items()}


def test_a_base_models_continuation_of_a_code_prompt_is_scored_with_its_prompt():
    reward = code_tests("namespaces")
    prompt = 'def add(a, b):\n    """The sum."""\n'
    assert reward(["    return a + b\n", "    return a * b\n"], prompts=[prompt] * 2, test=[CHECK] * 2,
                  entry_point=["add"] * 2) == [1.0, 0.0]


def test_a_completion_that_never_ends_is_cut_and_the_batch_returns():
    reward = code_tests("namespaces", timeout=2.0)
    forever = ["while True:\n    pass", "def add(a, b):\n    while True:\n        pass", "```python\nprint(3)\n```"]
    scores = []
    call = threading.Thread(target=lambda: scores.extend(
        reward(forever, tests=[IO_TESTS, None, IO_TESTS], test=[None, CHECK, None], entry_point=[None, "add", None])))
    call.start()
    call.join(timeout=120)  # a bound on termination, far above the 2 s limit: not a timing assertion
    assert not call.is_alive(), "the batch did not return"
    assert scores[:2] == [0.0, 0.0] and round(scores[2], 4) == round(1 / 3, 4)


def write_code_dataset(path):
    rows = [{"prompt": f"Write a Python function add(a, b) that returns a + b. ({n})", "test": CHECK,
             "entry_point": "add"} for n in range(2)]
    rows += [{"prompt": f"Write a program that reads two integers and prints their sum. ({n})",
              "tests": IO_TESTS[:2]} for n in range(2)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_grpo_trains_with_the_code_tests_reward(run_script, tiny_model, tmp_path):
    data = write_code_dataset(tmp_path / "code.jsonl")
    out = tmp_path / "out"
    result = run_script("train_grpo.py", "--model_name_or_path", tiny_model, "--dataset_name", data,
                        "--reward_funcs", "code_tests", "--code_timeout", "5s", "--output_dir", out, "--max_steps", "2",
                        "--num_generations", "2", "--per_device_train_batch_size", "2",
                        "--max_completion_length", "8", "--logging_steps", "1", "--report_to", "none")
    assert result.returncode == 0, result.output[-3000:]
    assert "code_tests: each completion's code runs in the namespaces sandbox" in result.stdout
    history = json.loads((out / "run.json").read_text())["log_history"]
    assert any("rewards/code_tests/mean" in entry for entry in history), history
    verdict = json_output(run_script("validate_dataset.py", "--dataset", data, "--json"))["methods"]["grpo"]
    assert verdict["status"] == "ready", verdict


def test_without_a_sandbox_code_tests_refuses_unless_the_risk_is_named(run_script_shared, tiny_model, tmp_path):
    data = write_code_dataset(tmp_path / "code.jsonl")
    refused = run_script_shared("train_grpo.py", "--model_name_or_path", tiny_model, "--dataset_name", data,
                         "--reward_funcs", "code_tests", "--output_dir", tmp_path / "out", "--max_steps", "1",
                         "--report_to", "none", extra_env={"HFLT_MAX_ISOLATION": "none"})
    assert refused.returncode == 2 and "Traceback" not in refused.output, refused.output[-3000:]
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--allow_unsandboxed_code_execution" in errors[0], refused.stderr[-2000:]


def test_the_named_risk_runs_code_tests_unsandboxed(monkeypatch):
    """--allow_unsandboxed_code_execution, as eval_humaneval.py's: where no sandbox works, the reward still runs."""
    sys.path.insert(0, str(SCRIPTS))
    import train_grpo

    monkeypatch.setenv("HFLT_MAX_ISOLATION", "none")
    options = train_grpo.RewardArguments(allow_unsandboxed_code_execution=True, code_timeout="5s")
    [reward] = train_grpo.load_reward_funcs("code_tests", options)
    assert reward.__name__ == "code_tests" and train_grpo.reward_columns([reward]) == ()
    assert reward(["print(3)", "print(4)"], tests=[IO_TESTS[:1]] * 2) == [1.0, 0.0]
    with pytest.raises(train_grpo.BadInput, match="--allow_unsandboxed_code_execution"):
        train_grpo.load_reward_funcs("code_tests", train_grpo.RewardArguments())
