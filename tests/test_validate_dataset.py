"""validate_dataset.py on datasets shaped like the popular public ones, and on common mistakes."""

import json

import pytest
from conftest import SAMPLE, json_output
from datasets_corpus import CORPUS, llava_dataset, write_jsonl


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_verdicts_on_public_schemas(name, tmp_path, run_script):
    rows, expected_status, expected_fix = CORPUS[name]
    path = write_jsonl(tmp_path / f"{name}.jsonl", rows)
    report = json_output(run_script("validate_dataset.py", "--dataset", path, "--json"))
    assert report["rows"] == len(rows) and report["rows_checked"] == len(rows)
    for method, status in expected_status.items():
        assert report["methods"][method]["status"] == status, (method, report["methods"][method])
    for method, fix in expected_fix.items():
        assert report["methods"][method]["fix"] == fix, report["methods"][method]


def test_human_output_matches_the_workflow_card(tmp_path, run_script):
    result = run_script("validate_dataset.py", "--dataset", SAMPLE / "sft_code.jsonl")
    assert result.returncode == 0, result.output
    assert "Dataset validation for" in result.stdout
    assert "SFT    ✓ READY" in result.stdout and "DPO    ✗ INCOMPATIBLE" in result.stdout


def test_token_lengths_through_the_models_chat_template(tiny_model, run_script):
    report = json_output(run_script("validate_dataset.py", "--dataset", SAMPLE / "sft_code.jsonl", "--model",
                                    tiny_model, "--max_length", "120", "--json"))
    tokens = report["tokens"]
    assert 20 < tokens["p50"] <= tokens["p95"] <= tokens["max"]
    assert 0 < tokens["truncated_share"] < 1, "some rows are longer than 120 tokens, not all"
    assert tokens["total_estimate"] == pytest.approx(tokens["mean"] * 300, rel=0.01)


def test_problems_are_reported(tmp_path, run_script):
    rows = [{"prompt": "q", "chosen": "same", "rejected": "same"}] * 3 + \
           [{"prompt": "q2", "chosen": "a", "rejected": "b"}, {"prompt": None, "chosen": "a", "rejected": "c"}]
    report = json_output(run_script("validate_dataset.py", "--dataset", write_jsonl(tmp_path / "p.jsonl", rows), "--json"))
    dpo_warnings = " ".join(report["methods"]["dpo"]["warnings"])
    assert "3 of 5 rows have chosen == rejected" in dpo_warnings
    assert any("duplicate" in w for w in report["warnings"])
    assert any("'prompt' is empty in 1 of 5" in w for w in report["warnings"])


def test_conversation_structure_checks(tmp_path, run_script):
    rows = [{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                          {"role": "assistant", "content": "c"}]},
            {"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "late"},
                          {"role": "assistant", "content": ""}]}]
    report = json_output(run_script("validate_dataset.py", "--dataset", write_jsonl(tmp_path / "c.jsonl", rows), "--json"))
    warnings = " ".join(report["methods"]["sft"]["warnings"])
    assert "do not alternate" in warnings and "system turn that is not first" in warnings
    assert "empty message content" in warnings


def test_vision_dataset(tmp_path, run_script):
    report = json_output(run_script("validate_dataset.py", "--dataset", llava_dataset(tmp_path), "--json"))
    assert report["modality"] == "vision" and report["columns"]["images"] == "list[image]"
    assert report["methods"]["sft"]["status"] == "ready"


@pytest.mark.parametrize("fmt", ["parquet", "csv", "json", "dir", "saved"])
def test_local_formats(fmt, tmp_path, run_script):
    from datasets import Dataset

    rows = [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(40)]
    dataset = Dataset.from_list(rows)
    target = {"parquet": tmp_path / "d.parquet", "csv": tmp_path / "d.csv", "json": tmp_path / "d.json",
              "dir": tmp_path / "dir", "saved": tmp_path / "saved"}[fmt]
    if fmt == "parquet":
        dataset.to_parquet(target)
    elif fmt == "csv":
        dataset.to_csv(target, index=False)
    elif fmt == "json":
        target.write_text(json.dumps(rows))
    elif fmt == "dir":
        target.mkdir()
        dataset.to_parquet(target / "train-00000.parquet")
    else:
        dataset.save_to_disk(target)
    report = json_output(run_script("validate_dataset.py", "--dataset", target, "--sample", "10", "--json"))
    assert report["rows"] == 40 and report["rows_checked"] == 10
    assert report["format"] == "prompt_completion" and report["methods"]["sft"]["status"] == "ready"


@pytest.mark.parametrize("case,needle", [
    ("max_length", "--max_length must be a positive"), ("late_broken_line", "line 1201 is not valid JSON"),
    ("late_type_change", "'completion' holds text on line 1 but a number on line 1051"),
    ("missing", "does not exist"), ("empty", "is empty"), ("invalid_json", "line 2 is not valid JSON"),
    ("unsupported", "unsupported format"), ("unknown_split", "no split 'test'"), ("hub_offline", "could not be reached"),
    ("corrupt_parquet", "could not be read as parquet"), ("split_of_a_file", "is one file, which has one split, 'train'"),
    ("flag_typo", "unrecognized arguments: --max-length"),
])
def test_bad_input_is_one_sentence_and_exit_2(case, needle, tmp_path, run_script):
    args = []
    rows = [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(1200)]
    if case == "max_length":
        target, args = write_jsonl(tmp_path / "ok.jsonl", rows), ["--max_length", "-5"]
    elif case == "late_broken_line":  # after the 1,000-row sample: local JSONL is parsed whole
        target = write_jsonl(tmp_path / "late.jsonl", rows)
        with open(target, "a") as f:
            f.write('{"prompt": "x", "completion": \n')
    elif case == "late_type_change":
        target = write_jsonl(tmp_path / "types.jsonl", rows[:1050] + [{"prompt": "x", "completion": 7}])
    elif case == "missing":
        target = tmp_path / "nope.jsonl"
    elif case == "empty":
        target = tmp_path / "empty.jsonl"
        target.write_text("")
    elif case == "invalid_json":
        target = tmp_path / "bad.jsonl"
        target.write_text('{"a": 1}\n{"a": \n')
    elif case == "unsupported":
        target = tmp_path / "data.xlsx"
        target.write_text("x")
    elif case == "unknown_split":
        from datasets import Dataset, DatasetDict

        target = tmp_path / "dd"
        DatasetDict({"train": Dataset.from_list([{"text": "a"}])}).save_to_disk(target)
        args = ["--split", "test"]
    elif case == "corrupt_parquet":
        target = tmp_path / "data.parquet"
        target.write_bytes(b"not parquet at all")
    elif case in ("split_of_a_file", "flag_typo"):
        target = write_jsonl(tmp_path / "ok.jsonl", rows)
        args = ["--split", "trian"] if case == "split_of_a_file" else ["--max-length", "5"]
    else:
        target = "some-org/some-dataset"
    result = run_script("validate_dataset.py", "--dataset", target, *args)
    assert result.returncode == 2, result.output
    assert needle in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_hub_dataset_is_streamed_not_downloaded(hub, run_script):
    rows = "".join(json.dumps({"question": f"q{i}", "answer": f"#### {i}"}) + "\n" for i in range(50))
    hub.state.add_files("dataset", "tester/math", {"data/train.jsonl": rows.encode()})
    report = json_output(run_script("validate_dataset.py", "--dataset", "tester/math", "--sample", "5", "--json"))
    assert report["rows_checked"] == 5 and report["methods"]["grpo"]["fix"] == "--convert gsm8k"


def test_fix_flags_and_reasons_come_from_the_trainers_checks(tmp_path, run_script):
    turns = [{"conversation": [{"from": "human", "value": f"q{i}"}, {"from": "gpt", "value": f"a{i}"}]}
             for i in range(10)]
    report = json_output(run_script("validate_dataset.py", "--dataset", write_jsonl(tmp_path / "s.jsonl", turns),
                                    "--json"))
    assert report["methods"]["sft"]["fix"] == "--map conversations=conversation --convert sharegpt"
    switch = [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}] * 3 + \
             [{"prompt": "q", "completion": "a"}] * 2
    report = json_output(run_script("validate_dataset.py", "--dataset", write_jsonl(tmp_path / "w.jsonl", switch),
                                    "--json"))
    sft = report["methods"]["sft"]
    assert sft["status"] == "incompatible" and sft["fix"] is None
    assert sft["reasons"][0].startswith("2 of 5 rows have no 'messages'")
