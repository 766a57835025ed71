"""eval_gsm8k.py: a tiny model through lighteval's own gsm8k task on a gsm8k-shaped Hub dataset (two configurations,
no default, parquet shards: tools/make_gsm8k_like.py), saved completions scored by the same metric, where results
are recorded (a run directory, a Hub repo's run.json), and bad input as one sentence."""

import json
import re

import make_gsm8k_like as gsm8k
import pytest
from conftest import json_output

# The run.json entry: the contract report.py reads.
ENTRY_KEYS = {"benchmark", "metric", "score", "accuracy", "accuracy_ci95", "n", "of", "limit", "protocol", "per_problem",
              "model", "revision", "subfolder", "completions", "dataset", "dataset_config", "split", "date", "job",
              "job_id"}
TEST_ROWS = gsm8k.SPLITS["test"]
ANSWERS = [gsm8k.answer("test", index) for index in range(TEST_ROWS)]  # 31, 33, 3499, 28, 81, 2999


def wilson(correct: int, n: int, z: float = 1.959964) -> list[float]:
    p = correct / n
    center, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5 / (1 + z * z / n)
    return [round(max(0.0, center - half), 4), round(min(1.0, center + half), 4)]


@pytest.fixture
def math_hub(hub):
    hub.seed_dataset(gsm8k.NAME, gsm8k.files())
    return hub


def write_jsonl(path, rows: list[dict]):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def run_directory(tmp_path):
    out = tmp_path / "grpo-run"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"method": "grpo", "evaluations": []}))
    return out


@pytest.mark.long
def test_a_model_is_evaluated_through_lightevals_task_and_recorded(tiny_model, tmp_path, run_script, math_hub):
    """lighteval generates (1-shot from the train split, 8 tokens, cut at "Question:") and scores 3 problems of its
    seeded sample; the entry lands in the Hub repo's run.json; the saved samples re-score to the same outcomes with
    --completions, recorded in a local run directory with the protocol the samples file carries."""
    math_hub.state.add_files("model", "alice/tiny-grpo", {"run.json": json.dumps({"method": "grpo"}).encode()})
    samples = tmp_path / "samples.jsonl"
    job = {"JOB_ID": "ev9", "HFLT_JOB_URL": "http://127.0.0.1/jobs/alice/ev9"}
    result = json_output(run_script("eval_gsm8k.py", "--model", tiny_model, "--limit", "3", "--max_new_tokens", "8",
                                    "--num_fewshot", "1", "--save_samples", samples, "--run", "alice/tiny-grpo",
                                    "--json", extra_env=job))
    assert result["n"] == 3 and result["of"] == TEST_ROWS and result["limit"] == 3 and result["engine"] == "lighteval"
    assert result["protocol"] == {"prompting": "completion", "chat_template": False, "thinking": False,
                                  "num_fewshot": 1, "stop": ["Question:"], "max_new_tokens": 8, "temperature": 0.0,
                                  "task": "lighteval|gsm8k"}
    problems = result["per_problem"]
    assert len(problems) == 3 and set(problems) <= {f"test/{i}" for i in range(TEST_ROWS)}
    assert set(problems.values()) <= {0, 1} and result["accuracy"] == result["score"] == round(sum(problems.values()) / 3, 4)
    low, high = result["accuracy_ci95"]
    assert [low, high] == wilson(sum(problems.values()), 3) and low <= result["accuracy"] <= high and high - low > 0.4
    assert (result["dataset"], result["dataset_config"], result["split"]) == (gsm8k.NAME, "main", "test")
    repo = math_hub.state.repo("model", "alice/tiny-grpo")
    assert repo["commits"][-1]["files"] == ["run.json"] and len(repo["commits"]) == 2
    entry = json.loads(repo["files"]["run.json"])["evaluations"][0]
    assert set(entry) == ENTRY_KEYS and entry == {key: result[key] for key in ENTRY_KEYS}
    assert entry["benchmark"] == "gsm8k" and entry["metric"] == "accuracy" and entry["job_id"] == "ev9"
    assert entry["job"] == job["HFLT_JOB_URL"] and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entry["date"])
    lines = [json.loads(line) for line in samples.read_text().splitlines()]
    assert [line["problem"] for line in lines] == sorted(problems, key=lambda p: int(p.split("/")[1]))
    assert all(line["gold"] == str(ANSWERS[int(line["problem"].split("/")[1])]) for line in lines), lines
    assert all(line["correct"] == problems[line["problem"]] and line["protocol"] == result["protocol"] for line in lines)

    out = run_directory(tmp_path)
    rescored = run_script("eval_gsm8k.py", "--completions", samples, "--limit", "3", "--run", out)
    assert rescored.returncode == 0, rescored.output[-3000:]
    assert re.match(rf"GSM8K {re.escape(str(samples))}: accuracy {result['accuracy']:.3f} \(95% CI {low:.3f}-"
                    rf"{high:.3f}\) on 3 problems \(3 of the {TEST_ROWS}: a partial result\), 1-shot", rescored.stdout)
    assert all(line.startswith("[eval] ") for line in rescored.stderr.strip().splitlines()), rescored.stderr
    local = json.loads((out / "run.json").read_text())["evaluations"][0]
    assert set(local) == ENTRY_KEYS and local["per_problem"] == problems and local["protocol"] == result["protocol"]
    assert local["completions"] == str(samples) and local["model"] is None and local["job_id"] is None


def test_saved_completions_score_as_lightevals_metric_says(tmp_path, run_script, math_hub):
    """Right answers as "ANSWER: n", \\boxed{n} and with a thousands separator count; wrong ones, no answer, and a
    completion that states the right number first and then settles on another do not, nor one whose right number is
    only in its reasoning block (removed first, as lighteval's pipeline does); the interval is Wilson's."""
    a = ANSWERS
    rows = [{"problem": "test/0", "completion": f" Janet has {a[0]} apples left.\nANSWER: {a[0]}"},
            {"problem": "test/1", "completion": f"The total is \\boxed{{{a[1]}}}."},
            {"problem": "test/2", "completion": "ANSWER: 3,499"},
            {"problem": "test/3", "completion": f"ANSWER: {a[3] + 1}"},
            {"problem": "test/4", "completion": f"First I get {a[4]}, but she gives more away, so {a[4] - 7}."},
            {"problem": "test/5", "completion": f"<think>Maybe {a[5]}.</think> I cannot tell."}]
    result = json_output(run_script("eval_gsm8k.py", "--completions", write_jsonl(tmp_path / "c.jsonl", rows),
                                    "--dataset_config", "socratic", "--save_samples", tmp_path / "s.jsonl", "--json"))
    assert result["per_problem"] == {"test/0": 1, "test/1": 1, "test/2": 1, "test/3": 0, "test/4": 0, "test/5": 0}
    assert result["accuracy"] == 0.5 and result["accuracy_ci95"] == wilson(3, 6) == [0.1876, 0.8124]
    assert result["n"] == result["of"] == TEST_ROWS and result["limit"] is None and result["protocol"] is None
    assert result["dataset_config"] == "socratic" and result["backend"] is None
    saved = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [(s["extracted"], s["gold"], s["correct"]) for s in saved] == [
        (str(a[0]), str(a[0]), 1), (str(a[1]), str(a[1]), 1), ("3499", "3499", 1), (str(a[3] + 1), str(a[3]), 0),
        (str(a[4] - 7), str(a[4]), 0), (None, str(a[5]), 0)]


def test_bad_input_is_one_sentence_and_writes_nothing(tiny_model, tmp_path, run_script, math_hub):
    math_hub.seed_dataset("alice/math-levels", gsm8k.files(("easy", "hard")))
    out = run_directory(tmp_path)
    record, samples = (out / "run.json").read_text(), tmp_path / "s.jsonl"
    good = write_jsonl(tmp_path / "c.jsonl", [{"problem": "test/0", "completion": "ANSWER: 31"}])
    cases = {
        "has no configuration 'main'; it has easy, hard: pass one with --dataset_config NAME":
            ["--completions", good, "--dataset", "alice/math-levels"],
        "Dataset 'alice/nothing' was not found": ["--completions", good, "--dataset", "alice/nothing"],
        "not among the 6 problems evaluated (the test split)": ["--completions", write_jsonl(tmp_path / "far.jsonl", [
            {"problem": "test/6", "completion": "1"}])],
        "two completions for test/0": ["--completions", write_jsonl(tmp_path / "two.jsonl", [
            {"problem": "test/0", "completion": "1"}, {"problem": "test/0", "completion": "2"}])],
        "no such model repo on the Hub": ["--model", "alice/typo"],
        "was not found; pass a Hub model id": ["--model", tmp_path / "no-model"],
        "either --model": [],
        "alice/missing: no such model repo": ["--completions", good, "--run", "alice/missing"],
        "has no run.json": ["--completions", good, "--run", tmp_path],
    }
    for message, args in cases.items():
        result = run_script("eval_gsm8k.py", *args, *(["--run", out] if "--run" not in args else []),
                            "--save_samples", samples)
        assert result.returncode == 2 and message in result.stderr, (message, result.output[-2000:])
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output, result.stderr
    assert (out / "run.json").read_text() == record and not samples.exists()
