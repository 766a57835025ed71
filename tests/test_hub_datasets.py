"""Datasets as the real Hub serves them: several configurations and no default, parquet shards read through HTTP
ranges, long reasoning traces and generations cut at their limit (tools/make_codeforces_like.py), and one reader of
rows for the validator and the trainers."""

import json
import urllib.request

import make_codeforces_like as codeforces
import pytest
from conftest import json_output
from datasets_corpus import write_jsonl
from hub_server import TOKEN

NAME = codeforces.NAME
ONE_STEP = ["--max_steps", "1", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1",
            "--report_to", "none"]


@pytest.fixture
def cots(hub):
    hub.seed_dataset(NAME, codeforces.files())
    return hub


def ranged(hub, path: str, header: str | None):
    request = urllib.request.Request(f"{hub.endpoint}/datasets/{NAME}/resolve/main/{path}",
                                     headers={"Authorization": f"Bearer {TOKEN}"} | ({"Range": header} if header else {}))
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def test_resolve_answers_byte_ranges_as_the_hub_does(cots):
    path = "solutions/train-00000-of-00002.parquet"
    whole = codeforces.files()[path]
    status, headers, body = ranged(cots, path, None)
    assert status == 200 and body == whole and headers["Accept-Ranges"] == "bytes"
    size = len(whole)
    for header, start, end in (("bytes=0-3", 0, 3), (f"bytes={size - 8}-", size - 8, size - 1),
                               ("bytes=-8", size - 8, size - 1), (f"bytes=10-{size + 100}", 10, size - 1)):
        status, headers, body = ranged(cots, path, header)
        assert status == 206 and body == whole[start:end + 1], header
        assert headers["Content-Range"] == f"bytes {start}-{end}/{size}" and headers["Content-Length"] == str(end - start + 1)
    assert whole[:4] == whole[-4:] == b"PAR1"
    status, headers, _ = ranged(cots, path, f"bytes={size}-")
    assert status == 416 and headers["Content-Range"] == f"bytes */{size}"


def test_a_dataset_without_a_default_configuration_names_every_one(cots, run_script, tiny_model):
    for script, flags in (("validate_dataset.py", ["--dataset", NAME]),
                          ("train_sft.py", ["--model_name_or_path", tiny_model, "--dataset_name", NAME, *ONE_STEP,
                                                           "--max_length", "64"])):
        result = run_script(script, *flags)
        assert result.returncode == 2, result.output[-3000:]
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output, result.stderr
        assert all(config in result.stderr for config in codeforces.CONFIGS), result.stderr
        assert "--dataset_config NAME" in result.stderr, result.stderr
    wrong = run_script("validate_dataset.py", "--dataset", NAME, "--dataset_config", "solution")
    assert wrong.returncode == 2 and "no configuration 'solution'" in wrong.stderr
    assert all(config in wrong.stderr for config in codeforces.CONFIGS), wrong.stderr


def test_a_configuration_is_read_from_its_parquet_shards_through_ranges(cots, run_script):
    report = json_output(run_script("validate_dataset.py", "--dataset", NAME, "--dataset_config", "solutions", "--json"))
    rows, shards = codeforces.CONFIGS["solutions"]
    assert report["config"] == "solutions" and report["rows"] == report["rows_checked"] == rows
    assert report["methods"]["sft"]["status"] == "ready" and report["format"] == "conversational"
    reads = cots.requests("GET", f"/datasets/{NAME}/resolve/*.parquet")
    assert {r["path"].split("/")[-1] for r in reads} == {f"train-{i:05d}-of-{shards:05d}.parquet" for i in range(shards)}
    assert reads and all(r["range"] and r["range"].startswith("bytes=") for r in reads), reads
    assert all("/solutions/" in r["path"] for r in reads), "only the asked configuration is read"
    alias = json_output(run_script("validate_dataset.py", "--dataset", NAME, "--config", "solutions", "--json"))
    assert alias == report, "--config is the validator's old spelling of --dataset_config"


def test_unfinished_generations_are_counted_and_dropped_by_the_printed_flag(cots, run_script):
    rows = codeforces.CONFIGS["solutions"][0]
    cut = sum(codeforces.unfinished(index) for index in range(rows))
    report = json_output(run_script("validate_dataset.py", "--dataset", NAME, "--dataset_config", "solutions", "--json"))
    assert cut and report["unfinished"] == {"rows": cut, "rows_checked": rows, "share": round(cut / rows, 4)}
    assert report["methods"]["sft"]["fix"] == "--drop_unfinished"
    text = run_script("validate_dataset.py", "--dataset", NAME, "--dataset_config", "solutions").stdout
    assert f"Unfinished: {cut} of {rows} rows" in text and "train with: --drop_unfinished" in text


def test_unfinished_without_a_finish_reason_column(tmp_path, run_script):
    """No finish_reason: the unclosed <think> tells; a stop_reason saying 'length' tells too."""
    def row(answer, **extra):
        return {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": answer}], **extra}

    rows = [row("<think>\nhmm, so</think>\n\nfine", stop_reason="stop")] * 6 + \
           [row("<think>\nhmm, so the answer is", stop_reason="stop")] * 3 + [row("no think at all", stop_reason="length")]
    report = json_output(run_script("validate_dataset.py", "--dataset", write_jsonl(tmp_path / "r.jsonl", rows), "--json"))
    assert report["unfinished"] == {"rows": 4, "rows_checked": 10, "share": 0.4}
    clean = json_output(run_script("validate_dataset.py", "--dataset", write_jsonl(tmp_path / "c.jsonl", rows[:6]),
                                   "--json"))
    assert clean["unfinished"]["rows"] == 0 and clean["methods"]["sft"]["fix"] is None


@pytest.mark.long
def test_tokens_training_sees_at_max_length_and_plan_prices_them(cots, run_script, tiny_qwen3, tmp_path):
    rows = codeforces.CONFIGS["solutions"][0]
    long_rows = sum(codeforces.long_trace(index) for index in range(rows))
    validation = run_script("validate_dataset.py", "--dataset", NAME, "--dataset_config", "solutions", "--model",
                            tiny_qwen3, "--max_length", "1024", "--json")
    tokens = json_output(validation)["tokens"]
    assert tokens["p95"] > 2000, "some traces are a few thousand tokens long"
    assert tokens["rows_cut"] == long_rows and tokens["share_cut"] == round(long_rows / rows, 4)
    assert long_rows * 1024 < tokens["seen_at_max_length"] < tokens["total"] == tokens["total_estimate"]
    assert tokens["seen_at_max_length"] < rows * 1024
    (tmp_path / "validation.json").write_text(validation.stdout)
    plan = json_output(run_script("plan.py", "--model", tiny_qwen3, "--method", "sft", "--max_length", "1024",
                                  "--validation", tmp_path / "validation.json", "--dataset", NAME,
                                  "--dataset_config", "solutions", "--json"))
    assert plan["dataset"] == NAME and plan["dataset_config"] == "solutions"
    assert plan["dataset_tokens"] == tokens["seen_at_max_length"], "priced on the truncated tokens"
    assert any("training sees at --max_length 1024" in warning for warning in plan["warnings"])
    card = run_script("plan.py", "--model", tiny_qwen3, "--method", "sft", "--max_length", "1024", "--validation",
                      tmp_path / "validation.json", "--dataset", NAME, "--dataset_config", "solutions")
    assert f"on {NAME} (configuration solutions)" in card.stdout, card.output[-2000:]
    other = json_output(run_script("plan.py", "--model", tiny_qwen3, "--method", "sft", "--max_length", "2048",
                                   "--validation", tmp_path / "validation.json", "--json"))
    assert tokens["seen_at_max_length"] < other["dataset_tokens"] < tokens["total"], \
        "measured at another max_length: what 2048 keeps, from the length percentiles"
    assert any("estimated from the length percentiles" in warning for warning in other["warnings"])
    too_long = run_script("plan.py", "--model", tiny_qwen3, "--method", "sft", "--max_length", "8192")
    assert too_long.returncode == 2 and "4,096 positions" in too_long.stderr, too_long.output[-2000:]


def test_sft_trains_on_a_configuration_of_a_hub_dataset(cots, run_script, tiny_model, tmp_path):
    rows = codeforces.CONFIGS["solutions_py"][0]
    cut = sum(codeforces.unfinished(index) for index in range(rows))
    out = tmp_path / "out"
    result = run_script("train_sft.py", "--model_name_or_path", tiny_model, "--dataset_name", NAME,
                        "--dataset_config", "solutions_py", "--drop_unfinished", *ONE_STEP, "--max_length", "1024",
                        "--output_dir", out)
    assert result.returncode == 0, result.output[-3000:]
    assert f"--drop_unfinished: {cut} of {rows} rows left out" in result.stdout
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "completed"
    assert record["dataset"]["name"] == NAME and record["dataset"]["config"] == "solutions_py"
    assert cots.requests("GET", f"/datasets/{NAME}/resolve/*/solutions_py/*.parquet")
    assert not cots.requests("GET", f"/datasets/{NAME}/resolve/*/solutions/*.parquet")


def test_an_upper_case_suffix_is_read_the_same_by_validator_and_trainer(tmp_path, run_script, tiny_model):
    rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
            for i in range(8)]
    data = write_jsonl(tmp_path / "rows.JSONL", rows)
    report = json_output(run_script("validate_dataset.py", "--dataset", data, "--json"))
    assert report["methods"]["sft"]["status"] == "ready" and report["rows"] == 8
    out = tmp_path / "out"
    result = run_script("train_sft.py", "--model_name_or_path", tiny_model, "--dataset_name", data, *ONE_STEP,
                        "--max_length", "64", "--output_dir", out)
    assert result.returncode == 0, result.output[-3000:]
    assert json.loads((out / "run.json").read_text())["status"] == "completed"
