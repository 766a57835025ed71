"""report.py plans the evaluations that fit each run and compares whatever was recorded, benchmark by benchmark: a
math run gets GSM8K (eval_gsm8k.py, base against tuned, same interval, protocol and --limit rules as HumanEval), a
code run HumanEval, a run may show both; each TBD row comes with its exact command; --json carries every score, its
interval and its comparison with the base model. A quick test run is known from its plan or from how it was cut,
never from its row count. A name two runs share is said on stderr; a plan and the job submitted under its name stay
one run."""

import json
import math
from pathlib import Path

from conftest import SCRIPTS, json_output
from test_report import eval_output, fixture_run, humaneval, plan_file, section
from test_report_comparisons import grpo_history, run_with
from test_report_untrusted import assert_inert

ENDPOINT = "https://hub.example.org"
PROBLEMS = [f"test/{index}" for index in range(1319)]
GSM8K_PROTOCOL = {"prompting": "completion", "chat_template": False, "thinking": False, "num_fewshot": 5,
                  "stop": ["Question:", "</s>", "<|im_end|>"], "max_new_tokens": 256, "temperature": 0.0,
                  "task": "lighteval|gsm8k"}
MATH_DATA = {"name": "openai/gsm8k", "config": "main", "split": "train", "rows": 7473, "convert": "gsm8k",
             "max_samples": None}


def gsm8k(correct: range | set, limit: int | None = None, **fields) -> dict:
    """A GSM8K result as eval_gsm8k.py records it in run.json (and prints with --json): the problems whose index is
    in `correct` are answered right; `limit` keeps that many problems (eval_gsm8k.py's --limit keeps lighteval's
    seeded sample, the same for every model; here the first ones)."""
    outcomes = {task: int(index in correct) for index, task in enumerate(PROBLEMS[:limit])}
    n, accuracy = len(outcomes), sum(outcomes.values()) / len(outcomes)
    z = 1.959964  # Wilson's interval
    center, half = (accuracy + z * z / (2 * n)) / (1 + z * z / n), \
        z * math.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return {"benchmark": "gsm8k", "metric": "accuracy", "score": round(accuracy, 4), "accuracy": round(accuracy, 4),
            "accuracy_ci95": [round(max(0, center - half), 4), round(min(1, center + half), 4)], "n": n,
            "of": len(PROBLEMS), "limit": limit, "protocol": GSM8K_PROTOCOL, "per_problem": outcomes,
            "model": None, "revision": None, "subfolder": None, "completions": None, "dataset": "openai/gsm8k",
            "dataset_config": "main", "split": "test", "date": "2025-12-09T16:00:00Z", "job": None,
            "job_id": None} | fields


def math_run(tmp_path: Path, name: str, **fields) -> Path:
    config = json.loads(fixture_run(tmp_path, f"{name}-template", "grpo", None).joinpath("run.json")
                        .read_text())["config"] | {"max_length": None, "max_completion_length": 256}
    return run_with(tmp_path, name, "grpo", config=config, dataset=MATH_DATA,
                    log_history=grpo_history(("number_match", "answer_format")), **fields)


def base_files(tmp_path: Path) -> list[Path]:
    files = []
    for benchmark, result in (("gsm8k", gsm8k(range(400), model="Qwen/Qwen3-0.6B", date="2025-12-09T12:00:00Z")),
                              ("humaneval", eval_output(humaneval(range(50), model="Qwen/Qwen3-0.6B",
                                                                  date="2025-12-09T12:00:00Z")))):
        files.append(tmp_path / f"base_{benchmark}.json")
        files[-1].write_text(json.dumps(result))
    return files


def line_of(report: str, start: str) -> str:
    return next(line for line in report.splitlines() if line.startswith(start))


def by_name(summary: dict) -> dict:
    return {run["name"]: run for run in summary["runs"]}


def test_math_runs_get_gsm8k_base_against_tuned_and_json_carries_every_comparison(tmp_path, run_script):
    runs = [math_run(tmp_path, "grpo-math", evaluations=[gsm8k(range(520)), humaneval(range(50))]),
            math_run(tmp_path, "grpo-math-fewshot", evaluations=[gsm8k(range(420), protocol=GSM8K_PROTOCOL | {
                "num_fewshot": 0, "prompting": "chat", "chat_template": True})]),
            math_run(tmp_path, "grpo-math-limited", evaluations=[gsm8k(range(30), limit=100)]),
            math_run(tmp_path, "grpo-math-next", evaluations=[]),
            run_with(tmp_path, "sft-code", evaluations=[])]
    out, env = tmp_path / "reports", {"HF_ENDPOINT": ENDPOINT}
    # before the base model is evaluated: its TBD rows, and the exact command of every TBD evaluation
    first = run_script("report.py", "--experiment", "math", "--runs", *runs, "--out", out, extra_env=env)
    assert first.returncode == 0, first.output
    report = (out / "math.md").read_text()
    assert "| `base-gsm8k` - `-` - `TBD` | GSM8K accuracy | TBD | - |" in report
    assert "| `base-humaneval` - `-` - `TBD` | HumanEval pass@1 | TBD | - |" in report
    todo = report.split("## To evaluate\n")[1].split("\n<!-- hflt:end")[0].splitlines()
    assert todo == [
        "- `base-gsm8k`: `uv run scripts/eval_gsm8k.py --model Qwen/Qwen3-0.6B --json > base_gsm8k.json`, then "
        f"`uv run scripts/report.py --experiment math --evals base_gsm8k.json --output_dir {out}`",
        "- `base-humaneval`: `uv run scripts/eval_humaneval.py --model Qwen/Qwen3-0.6B --json > base_humaneval.json`, "
        f"then `uv run scripts/report.py --experiment math --evals base_humaneval.json --output_dir {out}`",
        "- `grpo-math-next` on GSM8K: `uv run scripts/eval_gsm8k.py --model alice/grpo-math-next --run "
        "alice/grpo-math-next`",
        "- `sft-code` on HumanEval: `uv run scripts/eval_humaneval.py --model alice/sft-code --run alice/sft-code`"]
    assert "- GSM8K accuracy: TBD (`uv run scripts/eval_gsm8k.py --model alice/grpo-math-next --run " \
           "alice/grpo-math-next`)" in section(report, "grpo-math-next")
    assert "HumanEval" not in section(report, "grpo-math-next"), "a math run plans no HumanEval"
    assert "GSM8K" not in section(report, "sft-code"), "a code run plans no GSM8K"

    # the base model evaluated on both: every fine-tuned result against it, benchmark by benchmark
    result = run_script("report.py", "--experiment", "math", "--evals", *base_files(tmp_path), "--out", out, "--json",
                        extra_env=env)
    summary = json_output(result)
    report = (out / "math.md").read_text()
    assert_inert(report)
    assert "TBD` | GSM8K" not in line_of(report, "| `base-gsm8k`") and "## To evaluate" in report
    assert "| `base-gsm8k` - `2025-12-09 12:00 UTC` - `Completed` | GSM8K accuracy | 0.303 (95% CI 0.279-0.329) | - |" \
        in report
    assert "| `grpo-math` - `2025-12-09 16:00 UTC` - `Completed` | GSM8K accuracy | 0.394 (95% CI 0.368-0.421) |" \
        in report
    assert "- GSM8K accuracy: 0.394 (95% CI 0.368-0.421) on 1319 problems, 2025-12-09 16:00 UTC" in \
        section(report, "grpo-math")
    better = line_of(report, "- `grpo-math` on GSM8K: ")
    assert better.endswith("0.394 against the base model's 0.303 on the 1319 problems both evaluated, a difference of "
                           "+0.091 (paired 95% CI +0.075 to +0.106): better."), better
    # a run may show both benchmarks when both were recorded
    assert "| `grpo-math` - `2025-12-09 16:00 UTC` - `Completed` | HumanEval pass@1 | 0.305" in report
    assert line_of(report, "- `grpo-math` on HumanEval: ").endswith(": no difference this evaluation can detect.")
    refused = line_of(report, "- `grpo-math-fewshot` on GSM8K: ")
    assert refused == "- `grpo-math-fewshot` on GSM8K: not compared with the base model: measured under different " \
        "protocols (chat_template, num_fewshot, prompting differ); rerun both with this eval_gsm8k.py and the same " \
        "flags (the base model's: `--num_fewshot 5 --max_new_tokens 256`)."
    assert "| 0.300 (95% CI 0.219-0.396), a seeded sample of 100 of 1319 problems (--limit) |" in report
    assert line_of(report, "- `grpo-math-limited` on GSM8K: ").endswith(
        "0.300 against the base model's 1.000 on the 100 problems both evaluated, a difference of -0.700 (paired 95% "
        "CI -0.779 to -0.593): worse.")
    assert "`grpo-math-next` on GSM8K: `uv run scripts/eval_gsm8k.py" in report, "still to evaluate"

    # --json: the same scores, intervals, differences and verdicts, per run and benchmark
    runs = by_name(summary)
    math_evaluations = {e["benchmark"]: e for e in runs["grpo-math"]["evaluations"]}
    assert set(math_evaluations) == {"gsm8k", "humaneval"} and runs["grpo-math"]["to_evaluate"] == []
    tuned = math_evaluations["gsm8k"]
    assert (tuned["metric"], tuned["score"], tuned["score_ci95"], tuned["n"], tuned["limit"]) == \
        ("accuracy", 0.3942, [0.3682, 0.4209], 1319, None)
    against = tuned["against_base"]
    assert against["verdict"] == "better" and against["paired"] and against["problems"] == 1319
    assert (against["base_model"], against["base_score"], against["refused"]) == ("Qwen/Qwen3-0.6B", 0.3033, None)
    assert f"{against['difference']:+.3f}" == "+0.091" and [f"{bound:+.3f}" for bound in against["difference_ci95"]] \
        == ["+0.075", "+0.106"]
    assert math_evaluations["humaneval"]["against_base"]["verdict"] == "no difference this evaluation can detect"
    fewshot = runs["grpo-math-fewshot"]["evaluations"][0]["against_base"]
    assert fewshot["verdict"] is None and fewshot["difference"] is None
    assert fewshot["refused"] == "measured under different protocols (chat_template, num_fewshot, prompting differ)"
    assert fewshot["rerun_flags"] == "--num_fewshot 5 --max_new_tokens 256"
    limited = runs["grpo-math-limited"]["evaluations"][0]
    assert (limited["limit"], limited["n"], limited["of"], limited["against_base"]["verdict"]) == (100, 100, 1319, "worse")
    assert runs["grpo-math-next"]["to_evaluate"] == [{
        "benchmark": "gsm8k", "model": "alice/grpo-math-next",
        "command": "uv run scripts/eval_gsm8k.py --model alice/grpo-math-next --run alice/grpo-math-next"}]
    assert [e["benchmark"] for e in runs["sft-code"]["to_evaluate"]] == ["humaneval"]
    bases = {e["benchmark"]: e for e in summary["base_evaluations"]}
    assert bases["gsm8k"]["score_ci95"] == [0.2791, 0.3286] and bases["humaneval"]["score_ci95"] == [0.2396, 0.3791]
    assert summary["base_to_evaluate"] == [] and summary["evaluations"] == 6


def test_older_and_unpaired_gsm8k_results_and_a_bad_base_file(tmp_path, run_script):
    """Without per-problem outcomes the intervals decide; without intervals no verdict; --evals refuses a file that
    is no evaluation in one sentence."""
    unpaired = {key: value for key, value in gsm8k(range(700)).items() if key != "per_problem"}
    older = {"benchmark": "gsm8k", "metric": "accuracy", "score": 0.41, "n": 1319, "date": "2025-12-01T10:00:00Z"}
    runs = [math_run(tmp_path, "unpaired", evaluations=[unpaired]), math_run(tmp_path, "older", evaluations=[older])]
    base = tmp_path / "base_gsm8k.json"
    base.write_text(json.dumps(gsm8k(range(400), model="Qwen/Qwen3-0.6B", date="2025-12-09T12:00:00Z")))
    out = tmp_path / "reports"
    summary = json_output(run_script("report.py", "--experiment", "m", "--runs", *runs, "--evals", base, "--out", out,
                                     "--json"))
    report = (out / "m.md").read_text()
    assert line_of(report, "- `unpaired` on GSM8K: ").endswith(
        "a difference of +0.227 (no per-problem outcomes to pair; the 95% intervals do not overlap): better.")
    assert line_of(report, "- `older` on GSM8K: ").endswith(
        "0.410 against the base model's 0.303, a difference of +0.107; no verdict: no 95% interval recorded (an older "
        "evaluation: evaluate again with eval_gsm8k.py, which records one). One of the two records no protocol: they "
        "may have been prompted differently.")
    runs = by_name(summary)
    unpaired_against = runs["unpaired"]["evaluations"][0]["against_base"]
    assert (unpaired_against["paired"], unpaired_against["intervals_overlap"], unpaired_against["verdict"]) == \
        (False, False, "better") and unpaired_against["difference_ci95"] is None
    older_against = runs["older"]["evaluations"][0]["against_base"]
    assert older_against["verdict"] is None and older_against["protocol_unrecorded"] is True
    assert runs["older"]["evaluations"][0]["score_ci95"] is None

    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(gsm8k(range(3)) | {"model": "Qwen/Qwen3-0.6B", "accuracy_ci95": [0.1]}))
    refused = run_script("report.py", "--experiment", "m", "--evals", broken, "--out", out)
    assert refused.returncode == 2 and refused.stderr.startswith("error: --evals ") and \
        len(refused.stderr.strip().splitlines()) == 1 and "eval_gsm8k.py" in refused.stderr, refused.output


def test_a_test_run_is_known_from_its_plan_or_its_cut_never_from_its_rows(tmp_path, run_script):
    out = tmp_path / "reports"
    plan = json.loads(plan_file(tmp_path).read_text())
    plans = {"planned-test": plan | {"test_run": True, "max_steps": 20, "max_samples": 100},
             "planned-full": plan | {"test_run": False, "max_steps": None, "max_samples": None},
             "planned-test-done": plan | {"test_run": True, "max_steps": None, "max_samples": 100}}
    for name, content in plans.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(content))
        assert run_script("report.py", "--experiment", "t", "--plan", tmp_path / f"{name}.json", "--name", name,
                          "--out", out).returncode == 0
    config = json.loads(fixture_run(tmp_path, "template", "sft", None).joinpath("run.json").read_text())["config"]
    dataset = {"name": "open-r1/codeforces-cots", "split": "train", "rows": 1000, "max_samples": None}
    runs = [run_with(tmp_path, "planned-full", config=config | {"max_steps": 20}),  # the plan says it is no test
            run_with(tmp_path, "planned-test-done", config=config | {"max_steps": -1}),  # the plan says it is one
            run_with(tmp_path, "cut-samples", dataset=dataset | {"rows": 100, "max_samples": 100},
                     config=config | {"max_steps": -1}),
            run_with(tmp_path, "cut-steps", config=config | {"max_steps": 20}),
            run_with(tmp_path, "small-dataset", dataset=dataset | {"rows": 60}, config=config | {"max_steps": -1}),
            run_with(tmp_path, "long", config=config | {"max_steps": 500})]
    summary = json_output(run_script("report.py", "--experiment", "t", "--runs", *runs, "--out", out, "--json"))
    tests = {run["name"]: run["test_run"] for run in summary["runs"]}
    assert tests == {"planned-test": True, "planned-full": False, "planned-test-done": True, "cut-samples": True,
                     "cut-steps": True, "small-dataset": False, "long": False}
    report = (out / "t.md").read_text()
    for name, test_run in tests.items():
        assert (f"| `{name}` - `-` - `TBD` | HumanEval pass@1 |" in report) is not test_run, name
        assert ("- none planned: a quick test run" in section(report, name)) is test_run, name
    assert by_name(summary)["small-dataset"]["to_evaluate"][0]["benchmark"] == "humaneval"
    assert by_name(summary)["planned-test"]["status"] == "Planned"


def test_a_reused_name_is_said_and_a_plan_and_its_job_stay_one_run(tmp_path, run_script, hub):
    out = tmp_path / "reports"
    for where in ("a", "b", "c"):
        (tmp_path / where).mkdir()
    first, second = (run_with(tmp_path / where, "sft-a10g", job={"id": f"job-{where}"}) for where in ("a", "b"))
    reused = run_script("report.py", "--experiment", "names", "--runs", first, second, "--out", out, "--json")
    assert [run["name"] for run in json_output(reused)["runs"]] == ["sft-a10g", "sft-a10g-2"]
    notes = [line for line in reused.stderr.splitlines() if "two runs are named" in line]
    assert notes == [f"Note: two runs are named sft-a10g (job job-a and run.json at {second}); the second is shown "
                     "as sft-a10g-2; give each run its own --output_dir (or --run_name)."], reused.stderr
    again = run_script("report.py", "--experiment", "names", "--runs", first, second, "--out", out)
    assert again.returncode == 0 and "two runs are named" not in again.stderr, "said once, when it happened"

    # a plan, then the job submitted under its name: one run, whatever the run name its record carries
    assert run_script("report.py", "--experiment", "hub", "--plan", plan_file(tmp_path), "--name", "sft-plan",
                      "--out", out).returncode == 0
    submitted = [json_output(run_script("jobs.py", "submit", "--flavor", "a10g-small", "--timeout", "2h",
                                        "--experiment", "hub", "--name", "sft-plan", "--json", "--",
                                        SCRIPTS / "train_sft.py", "--model_name_or_path", "Qwen/Qwen3-0.6B",
                                        "--dataset_name", "open-r1/codeforces-cots", "--push_to_hub",
                                        "--hub_model_id", f"alice/{repo}")) for repo in ("sft-plan", "sft-other")]
    for job in submitted:
        hub.state.jobs[job["id"]]["status"] = {"stage": "COMPLETED", "message": None}
    record = run_with(tmp_path / "c", "qwen3-out", job={"id": submitted[0]["id"], "url": submitted[0]["url"]})
    result = run_script("report.py", "--experiment", "hub", "--runs", record, "--out", out, "--json")
    runs = json_output(result)["runs"]
    assert [(run["name"], run["job"], run["status"]) for run in runs] == [
        ("sft-plan", submitted[0]["id"], "Completed"), ("sft-plan-2", submitted[1]["id"], "Completed")]
    notes = [line for line in result.stderr.splitlines() if "two runs are named" in line]
    assert notes == [f"Note: two runs are named sft-plan (job {submitted[0]['id']} and job {submitted[1]['id']}); the "
                     "second is shown as sft-plan-2; give each job its own --name."], result.stderr
    report = (out / "hub.md").read_text()
    assert report.count("# `sft-plan`") == 1 and "# `qwen3-out`" not in report and "Planned" not in report
    assert "| Dataset | `open-r1/codeforces-cots` (configuration `solutions`" in section(report, "sft-plan"), \
        "the plan's section shows the job's record"
