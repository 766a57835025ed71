"""train_grpo.py's built-in `code_tests` reward: the share of a row's tests that the code of a completion passes, run
in the sandbox eval_humaneval.py scores with (the shared `sandbox` block). A row carries HumanEval-style `test` (a
`check(candidate)` function) and `entry_point`, scored 1 or 0 by the candidate/checker split, or `tests`, a list of
stdin/stdout pairs ({"input": ..., "output": ...}, or {"inputs": [...], "outputs": [...]}), each run with its input
alone: the program's output is compared here (per line, whitespace-normalised), so the expected output never enters
the sandbox. Each completion has --code_timeout for all its tests; completions run side by side, one per core."""

import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor

from .errors import BadInput
from .sandbox import run_sample, run_with_input

FENCED = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", flags=re.S)


def extract_code(completion) -> str:
    """The code of a completion (text, or a conversation whose last turn is the answer): after any closed <think>
    block, the last ```python fenced block, else the last fenced block, else the whole text."""
    text = completion[-1].get("content") if isinstance(completion, list) and completion else completion
    text = str(text or "")
    text = text.rsplit("</think>", 1)[-1]
    blocks = FENCED.findall(text)
    python = [code for language, code in blocks if language.lower() in ("python", "python3", "py")]
    if python or blocks:
        return (python or [code for _, code in blocks])[-1]
    return text


def io_pairs(tests) -> list[tuple[str, str]]:
    """A row's stdin/stdout tests as (input, expected output) pairs; ValueError when they are not such pairs."""
    if isinstance(tests, str):
        tests = json.loads(tests)
    if isinstance(tests, dict) and isinstance(tests.get("inputs"), list) and isinstance(tests.get("outputs"), list):
        tests = [{"input": given, "output": expected} for given, expected in zip(tests["inputs"], tests["outputs"])]
    if not isinstance(tests, list) or not tests or not all(
            isinstance(test, dict) and isinstance(test.get("input"), str) and isinstance(test.get("output"), str)
            for test in tests):
        raise ValueError("not a non-empty list of {\"input\": text, \"output\": text}")
    return [(test["input"], test["output"]) for test in tests]


def same_output(written: bytes, expected: str) -> bool:
    """The judge's comparison: the same lines, each with its whitespace normalised, blank lines at either end
    ignored."""
    def lines(text: str) -> list[str]:
        return [" ".join(line.split()) for line in text.strip().splitlines()]

    return lines(written.decode(errors="replace")) == lines(expected)


def io_share(code: str, pairs: list[tuple[str, str]], isolation: dict, timeout: float) -> float:
    """The share of the pairs the program passes: exit 0 and the expected output, all within `timeout`."""
    deadline, passed = time.monotonic() + timeout, 0
    for given, expected in pairs:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        timed_out, status, written, _ = run_with_input(code, given.encode(), isolation, left,
                                                       max_output=2 * len(expected.encode()) + 65536)
        if timed_out:
            break
        passed += status == 0 and written is not None and same_output(written, expected)
    return passed / len(pairs)


def function_pass(code: str, prompt, test: str, entry_point: str, isolation: dict, timeout: float) -> float:
    """1.0 when the benchmark-style `check` passes on the completion's function (eval_humaneval.py's run_sample):
    the code alone when it defines `entry_point`, else a text prompt continued by it (a base model's completion)."""
    prompt = prompt if isinstance(prompt, str) else ""
    defines = re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(", code, flags=re.M)
    problem = {"task_id": "code_tests", "prompt": prompt, "test": test, "entry_point": entry_point}
    outcome = run_sample(problem, code, isolation, timeout, candidate_program=code if defines else prompt + code)
    return float(outcome["passed"])


def code_tests_reward(isolation: dict, timeout: float, workers: int | None = None):
    """The code_tests reward function, bound to a sandbox level and a time limit per completion."""
    workers = workers or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)

    def code_tests(completions, prompts=None, test=None, entry_point=None, tests=None, **kwargs) -> list[float]:
        """The share of the row's tests the completion's code passes (see the code_reward block)."""
        jobs = []
        for index, completion in enumerate(completions):
            code, prompt = extract_code(completion), prompts[index] if prompts is not None else None
            if tests is not None and tests[index] is not None:
                try:
                    pairs = io_pairs(tests[index])
                except ValueError as error:
                    raise BadInput(f"code_tests: the 'tests' of row {index} of a batch are {error}; fix that column "
                                   "(e.g. [{\"input\": \"1 2\\n\", \"output\": \"3\\n\"}]).") from None
                jobs.append(lambda code=code, pairs=pairs: io_share(code, pairs, isolation, timeout))
            elif test is not None and entry_point is not None and test[index] and entry_point[index]:
                jobs.append(lambda code=code, prompt=prompt, index=index: function_pass(
                    code, prompt, test[index], entry_point[index], isolation, timeout))
            else:
                raise BadInput(f"code_tests: row {index} of a batch has neither 'tests' (stdin/stdout pairs) nor "
                               "'test' and 'entry_point' (a HumanEval-style check); give every row one of them, or "
                               "rename the dataset's columns with --map.")
        pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs))))
        try:
            return list(pool.map(lambda job: job(), jobs))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    return code_tests
