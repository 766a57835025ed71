"""report.py tells the experiment honestly: each score with its 95% interval, a fine-tuned run against the base model
as a paired difference with a plain verdict (refused in one line when the protocols differ), --limit said, older
records still shown; contamination beside the evaluation it qualifies; GRPO's reward curve; GGUF exports, the dataset
configuration, no TBD row for a quick test or a benchmark that does not fit; estimated against actual time and cost."""

import importlib.util
import json
import struct
from pathlib import Path

from conftest import SCRIPTS
from test_report import PROTOCOL, TASKS, eval_output, fixture_run, humaneval, plan_file, section
from test_report_untrusted import assert_inert

ENDPOINT = "https://hub.example.org"
CONTAMINATION = {"benchmark": "humaneval", "ngram": 13, "rows_checked": 1000, "rows_overlapping": 12, "share": 0.012,
                 "problems_overlapping": 3, "problems": ["HumanEval/0", "HumanEval/1", "HumanEval/100"],
                 "rows_dropped": 0}


def report_script():
    spec = importlib.util.spec_from_file_location("report", SCRIPTS / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def outcomes(passed) -> dict:
    return {task: float(index in passed) for index, task in enumerate(TASKS)}


def run_with(tmp_path: Path, name: str, method: str = "sft", **fields) -> Path:
    """A completed run (test_report's fixture) with `fields` replacing its record's."""
    out = fixture_run(tmp_path, name, method, None)
    record = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps(record | fields))
    return out


def base_evaluation(tmp_path: Path, passed=range(50)) -> Path:
    path = tmp_path / "base.json"
    path.write_text(json.dumps(eval_output(humaneval(passed, model="Qwen/Qwen3-0.6B", date="2025-12-09T12:00:00Z"))))
    return path


def comparison_of(report: str, run: str) -> str:
    return next(line for line in report.splitlines() if line.startswith(f"- `{run}` on HumanEval: "))


def png_size(path: Path) -> tuple[int, int]:
    return struct.unpack(">II", path.read_bytes()[16:24])


def test_paired_interval_and_verdict_on_known_outcomes():
    report = report_script()
    base = outcomes(range(50))
    same = report.paired_difference(base, base)
    assert same[0] == 0 and same[3] == 164 and round(same[1], 3) == -0.012 and round(same[2], 3) == 0.012
    assert report.verdict(*same[1:3]) == "no difference this evaluation can detect", "identical outcomes"
    difference, low, high, n = report.paired_difference(outcomes(range(130)), base)  # 80 more of 164 passed
    assert difference == 80 / 164 and 0.40 < low < difference < high < 0.57 and report.verdict(low, high) == "better"
    assert report.verdict(*report.paired_difference(base, outcomes(range(130)))[1:3]) == "worse"
    # 12 problems won and 6 lost: 0.037 up, within what 164 problems can tell apart
    difference, low, high, _ = report.paired_difference(outcomes(range(6, 62)), base)
    assert round(difference, 3) == 0.037 and low < 0 < high
    # three problems, all won: no verdict from three; twenty, all won: better
    assert report.verdict(*report.paired_difference({t: 1.0 for t in TASKS[:3]}, {t: 0.0 for t in TASKS[:3]})[1:3]) \
        == "no difference this evaluation can detect"
    assert report.verdict(*report.paired_difference({t: 1.0 for t in TASKS[:20]}, {t: 0.0 for t in TASKS[:20]})[1:3]) \
        == "better"
    # shares of several samples per problem: 0.8 against 0.6 everywhere is better
    assert report.verdict(*report.paired_difference({t: 0.8 for t in TASKS}, {t: 0.6 for t in TASKS})[1:3]) == "better"
    assert report.paired_difference({TASKS[0]: 1.0}, {TASKS[0]: 0.0, TASKS[1]: 1.0}) is None, "one problem in common"


def test_each_score_with_its_interval_and_each_run_against_the_base(tmp_path, run_script):
    runs = [run_with(tmp_path, "same", evaluations=[humaneval(range(50))]),
            run_with(tmp_path, "better", evaluations=[humaneval(range(130))]),
            run_with(tmp_path, "limited", evaluations=[humaneval(range(10), limit=20, of=164)]),
            run_with(tmp_path, "protocol", evaluations=[humaneval(range(60), protocol=PROTOCOL | {
                "max_new_tokens": 512, "temperature": 0.8, "top_p": 0.95})]),
            fixture_run(tmp_path, "older", "sft", 0.342),  # recorded before intervals and per-problem outcomes
            run_with(tmp_path, "intervals", evaluations=[{"benchmark": "humaneval", "score": 0.6, "n": 164,
                                                          "pass@1_ci95": [0.5235, 0.6716], "protocol": PROTOCOL}])]
    out = tmp_path / "reports"
    result = run_script("report.py", "--experiment", "exp", "--runs", *runs, "--evals", base_evaluation(tmp_path),
                        "--out", out, extra_env={"HF_ENDPOINT": ENDPOINT})
    assert result.returncode == 0, result.output
    report = (out / "exp.md").read_text()
    assert_inert(report)
    assert "| HumanEval pass@1 | 0.305 (95% CI 0.240-0.379) | - |" in report, "the base model's score and interval"
    assert "| HumanEval pass@1 | 0.793 (95% CI 0.724-0.848) |" in report
    assert comparison_of(report, "same").endswith(
        "0.305 against the base model's 0.305 on the 164 problems both evaluated, a difference of +0.000 (paired 95% "
        "CI -0.012 to +0.012): no difference this evaluation can detect.")
    assert comparison_of(report, "better").endswith(
        "0.793 against the base model's 0.305 on the 164 problems both evaluated, a difference of +0.488 (paired 95% "
        "CI +0.404 to +0.559): better.")
    # --limit: said in the table and the section; paired over the problems both evaluated
    assert "| 0.500 (95% CI 0.299-0.701), the first 20 of 164 problems (--limit) |" in report
    assert "- HumanEval pass@1: 0.500 (95% CI 0.299-0.701) on the first 20 of 164 problems (--limit)" in \
        section(report, "limited")
    assert comparison_of(report, "limited").endswith(
        "0.500 against the base model's 1.000 on the 20 problems both evaluated, a difference of -0.500 (paired 95% "
        "CI -0.696 to -0.213): worse.")
    # another protocol: one line that says which fields differ and how to rerun, and no difference
    refused = comparison_of(report, "protocol")
    assert refused == "- `protocol` on HumanEval: not compared with the base model: measured under different " \
        "protocols (max_new_tokens, temperature, top_p differ); rerun both with this eval_humaneval.py and the " \
        "same flags (the base model's: `--max_new_tokens 384 --temperature 0 --samples_per_task 1`)."
    assert "| `protocol` - `2025-12-09 16:00 UTC` - `Completed` | HumanEval pass@1 | 0.366 (95% CI" in report
    # older records: the score alone, and a verdict only from what they hold
    assert "| `older` - `2025-12-09 16:00 UTC` - `Completed` | HumanEval pass@1 | 0.342 |" in report
    assert comparison_of(report, "older").endswith(
        "0.342 against the base model's 0.305, a difference of +0.037; no verdict: no 95% interval recorded (an older "
        "evaluation: evaluate again with eval_humaneval.py, which records one). One of the two records no protocol: "
        "they may have been prompted differently.")
    assert comparison_of(report, "intervals").endswith(
        "a difference of +0.295 (no per-problem outcomes to pair; the 95% intervals do not overlap): better.")
    assert "Differences are paired: the mean, over the problems both evaluations share" in report


def test_contamination_is_shown_beside_the_humaneval_evaluation(tmp_path, run_script):
    evaluated = [humaneval(range(56))]
    runs = [run_with(tmp_path, "kept", evaluations=evaluated, contamination=CONTAMINATION),
            run_with(tmp_path, "dropped", evaluations=evaluated, contamination=CONTAMINATION | {"rows_dropped": 12}),
            run_with(tmp_path, "clean", evaluations=evaluated, contamination=CONTAMINATION | {
                "rows_overlapping": 0, "problems_overlapping": 0, "problems": []}),
            run_with(tmp_path, "unevaluated", evaluations=[], contamination=CONTAMINATION),
            run_with(tmp_path, "unchecked", evaluations=evaluated)]
    out = tmp_path / "reports"
    assert run_script("report.py", "--experiment", "exp", "--runs", *runs, "--evals", base_evaluation(tmp_path),
                      "--out", out).returncode == 0
    report = (out / "exp.md").read_text()
    kept = "training data shares 13-grams with 3 of 164 HumanEval problems (12 training rows): the score may be " \
           "inflated; 0.335 on the other 161 problems"
    assert f"on 164 problems, 2025-12-09 16:00 UTC; {kept}" in section(report, "kept")
    assert comparison_of(report, "kept").endswith(f"Note: {kept}.")
    assert "the 12 training rows sharing 13-grams with 3 of 164 HumanEval problems were left out " \
           "(--drop_contaminated)" in section(report, "dropped") and "inflated" not in section(report, "dropped")
    assert "training data shares no 13-gram with the 164 HumanEval problems" in section(report, "clean")
    assert "13-gram" not in section(report, "unevaluated") + section(report, "unchecked")
    assert "13-gram" not in comparison_of(report, "unchecked")


def grpo_history(rewards: tuple[str, ...]) -> list[dict]:
    return [{"step": step, "loss": 0.01 * step, "reward": 0.1 + step / 100, "reward_std": 0.2,
             **{f"rewards/{name}/mean": step / 100 for name in rewards}, "learning_rate": 1e-6}
            for step in range(1, 41)]


def test_grpo_runs_show_their_reward_curve_and_math_gets_gsm8k_not_humaneval(tmp_path, run_script):
    config = json.loads(fixture_run(tmp_path, "template", "grpo", None).joinpath("run.json").read_text())["config"]
    config |= {"max_length": None, "max_completion_length": 256}
    math = run_with(tmp_path, "grpo-math", "grpo", config=config, log_history=grpo_history(("number_match",
                                                                                             "answer_format")),
                    dataset={"name": "openai/gsm8k", "config": "main", "split": "train", "rows": 7473,
                             "convert": "gsm8k"}, metrics={"final": {"loss": 0.4, "reward": 0.5}})
    code = run_with(tmp_path, "grpo-code", "grpo", config=config, log_history=grpo_history(("code_tests",)),
                    dataset={"name": "alice/python-tasks", "split": "train", "rows": 2000})
    sft = fixture_run(tmp_path, "sft", "sft", 0.342)
    out = tmp_path / "reports"
    assert run_script("report.py", "--experiment", "math", "--runs", math, "--out", out).returncode == 0
    alone = (out / "math.md").read_text()
    assert "HumanEval" not in alone, "a math GRPO run plans no HumanEval row, nor its base"
    assert "| `grpo-math` - `-` - `TBD` | GSM8K accuracy | TBD |" in alone and \
        "| `base-gsm8k` - `-` - `TBD` | GSM8K accuracy | TBD |" in alone, "but GSM8K, its base model's too"
    assert run_script("report.py", "--experiment", "exp", "--runs", math, code, sft, "--out", out).returncode == 0
    report = (out / "exp.md").read_text()
    grpo = section(report, "grpo-math")
    assert "| Max completion length | 256 |" in grpo and "| Max length |" not in grpo
    assert "| Dataset | `openai/gsm8k` (configuration `main`, train, 7473 rows), converted from gsm8k |" in grpo
    assert "| Eval and save | no eval, save every 40 steps" in grpo, "no eval loss logged: no eval ran"
    assert "![loss and reward curves of grpo-math](exp/grpo-math-loss.png)" in grpo and "HumanEval" not in grpo
    assert "`grpo-math` - `-` - `TBD` | HumanEval" not in report
    assert "| `grpo-code` - `-` - `TBD` | HumanEval pass@1 | TBD |" in report, "a code GRPO run is evaluated"
    assert "![loss curve of sft](exp/sft-loss.png)" in report
    assert png_size(out / "exp" / "grpo-math-loss.png") == (1100, 320), "loss and reward side by side"
    assert png_size(out / "exp" / "sft-loss.png") == (600, 320)


def test_the_report_tells_the_whole_experiment(tmp_path, run_script):
    exports = [{"file": "full-Q4_K_M.gguf", "quant": "Q4_K_M", "size_mb": 397.8, "modelfile": "full-Q4_K_M.Modelfile",
                "golden_agree": "29/32", "parity": "agrees (29/32 greedy tokens)", "chat_finish_reason": "stop",
                "repo": "alice/full-GGUF", "date": "2025-12-10T09:00:00Z", "job": {"id": None, "url": None}},
               {"file": "full-Q8_0.gguf", "quant": "Q8_0", "size_mb": 639.2, "golden_agree": "32/32",
                "parity": "identical (32/32 greedy tokens)", "repo": None, "date": "2025-12-10T09:05:00Z"}]
    full = run_with(tmp_path, "full", exports=exports, evaluations=[])
    quick = run_with(tmp_path, "quick", evaluations=[], dataset={"name": "open-r1/codeforces-cots", "rows": 100,
                                                                 "max_samples": 100})
    record = json.loads(full.joinpath("run.json").read_text())
    noeval = run_with(tmp_path, "noeval", evaluations=[], metrics={"final": {"loss": 1.4}},
                      log_history=[e for e in record["log_history"] if "eval_loss" not in e])
    grpo_plan = tmp_path / "grpo-plan.json"
    grpo_plan.write_text(json.dumps(json.loads(plan_file(tmp_path).read_text()) | {
        "method": "grpo", "dataset": "openai/gsm8k", "dataset_config": "main",
        "training_args": ["--num_generations", "8", "--max_completion_length", "256"]}))
    out, env = tmp_path / "reports", {"HF_ENDPOINT": ENDPOINT}
    assert run_script("report.py", "--experiment", "exp", "--plan", grpo_plan, "--name", "grpo-planned", "--out", out,
                      extra_env=env).returncode == 0
    assert run_script("report.py", "--experiment", "exp", "--runs", full, quick, noeval, "--out", out,
                      extra_env=env).returncode == 0
    report = (out / "exp.md").read_text()
    assert_inert(report)
    exported = section(report, "full").split("## GGUF exports\n")[1]
    assert exported.splitlines() == [
        "- `full-Q4_K_M.gguf` (Q4_K_M, 397.8 MB): greedy answer against the original agrees (29/32 greedy tokens); "
        f"[pushed to alice/full-GGUF]({ENDPOINT}/alice/full-GGUF), 2025-12-10 09:00 UTC",
        "- `full-Q8_0.gguf` (Q8_0, 639.2 MB): greedy answer against the original identical (32/32 greedy tokens); "
        "not pushed (local files), 2025-12-10 09:05 UTC"]
    assert "| Dataset | `open-r1/codeforces-cots` (configuration `solutions`, train, 5% eval split" in report
    assert "| Eval and save | every 40 steps, hub_strategy=every_save, keep 2 |" in section(report, "full")
    assert "| Eval and save | no eval, save every 40 steps, hub_strategy=every_save, keep 2 |" in \
        section(report, "noeval")
    # a quick test run is not evaluated: no TBD row; the runs meant to be evaluated have theirs
    assert "- none planned: a quick test run" in section(report, "quick") and "TBD" not in section(report, "quick")
    assert "`quick` - `-` - `TBD`" not in report and "| `full` - `-` - `TBD` | HumanEval pass@1 | TBD |" in report
    # a planned GRPO math run: its dataset configuration and completion length, and GSM8K rather than HumanEval
    planned = section(report, "grpo-planned")
    assert "| Dataset | `openai/gsm8k` (configuration `main`) |" in planned
    assert "| Max completion length | 256 |" in planned and "HumanEval" not in planned
    assert "`grpo-planned` - `-` - `TBD` | HumanEval" not in report
    assert "| `grpo-planned` - `-` - `TBD` | GSM8K accuracy | TBD |" in report
    assert "](https://huggingface.co" not in report, "every Hub link is on HF_ENDPOINT"
    assert f"[Base Model]({ENDPOINT}/Qwen/Qwen3-0.6B)" in report


def test_finished_runs_show_estimated_against_actual_time_and_cost(tmp_path, run_script):
    """The plan estimated 75 min and $1.25 on a10g-small at $1.00/hour; each fixture run took 74 min."""
    out = tmp_path / "reports"
    plan = json.loads(plan_file(tmp_path).read_text())
    two_nodes = tmp_path / "two-nodes.json"
    two_nodes.write_text(json.dumps(plan | {"nodes": 2, "cost_usd": 2.5}))
    for name, plan_path in (("on-plan", tmp_path / "plan.json"), ("local", tmp_path / "plan.json"),
                            ("other-flavor", tmp_path / "plan.json"), ("failed", tmp_path / "plan.json"),
                            ("running", tmp_path / "plan.json"), ("two-nodes", two_nodes)):
        assert run_script("report.py", "--experiment", "exp", "--plan", plan_path, "--name", name, "--out",
                          out).returncode == 0
    hardware = json.loads(fixture_run(tmp_path, "template", "sft", None).joinpath("run.json").read_text())["hardware"]
    runs = [run_with(tmp_path, "on-plan"), run_with(tmp_path, "local", hardware=hardware | {"flavor": "local"}),
            run_with(tmp_path, "other-flavor", hardware=hardware | {"flavor": "l4x1"}),
            run_with(tmp_path, "failed", status="failed"), run_with(tmp_path, "running", status="running"),
            run_with(tmp_path, "two-nodes"), run_with(tmp_path, "unplanned")]
    assert run_script("report.py", "--experiment", "exp", "--runs", *runs, "--out", out).returncode == 0
    report = (out / "exp.md").read_text()
    estimate = "estimated 75 min and $1.25 on a10g-small."
    assert f"Time and cost: 74 min and $1.23 at $1.00/hour; {estimate}" in section(report, "on-plan")
    assert f"Time and cost: 74 min on a local machine (no Jobs cost); {estimate}" in section(report, "local")
    assert f"Time and cost: 74 min on l4x1 (not the planned flavor: no price); {estimate}" in \
        section(report, "other-flavor")
    assert "` - `Failed`" in section(report, "failed") and "Time and cost: 74 min and $1.23" in section(report, "failed")
    assert "Time and cost: 74 min and $2.47 at $2.00/hour; estimated 75 min and $2.50 on a10g-small." in \
        section(report, "two-nodes")
    assert "Time and cost" not in section(report, "running") + section(report, "unplanned")
