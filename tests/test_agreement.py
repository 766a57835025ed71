"""The validator's verdict is a promise the trainer keeps: READY trains as is, NEEDS_MAPPING trains with exactly the
printed fix, INCOMPATIBLE makes the trainer exit 2 with the same reason, and a file the validator cannot read the
trainer cannot read either. Each case is one file of the agreement corpus and one method whose verdict matters."""

import json
import re

import pytest
from datasets_corpus import AGREEMENT

CASES = [(name, method) for name, (_, expected) in sorted(AGREEMENT.items()) for method in expected]
ONE_STEP = ["--max_steps", "1", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1",
            "--report_to", "none"]
METHOD_FLAGS = {"sft": ["--max_length", "64"], "dpo": ["--max_length", "64"],
                "grpo": ["--num_generations", "2", "--max_completion_length", "8"]}


def same_words(text: str) -> str:
    """Counts differ between the validator's sample and the trainer's whole split; the words must not."""
    return re.sub(r"\d+", "N", text)


@pytest.mark.parametrize("name,method", CASES)
def test_the_trainer_keeps_the_verdict(name, method, tmp_path, run_script_shared, tiny_model, tiny_vlm):
    make, expected = AGREEMENT[name]
    data = make(tmp_path)
    validation = run_script_shared("validate_dataset.py", "--dataset", data, "--json")
    if expected[method] == "error":
        assert validation.returncode == 2 and "Traceback" not in validation.output, validation.output[-2000:]
        flags = []
    else:
        assert validation.returncode == 0, validation.output[-2000:]
        result = json.loads(validation.stdout)["methods"][method]
        assert result["status"] == expected[method], result
        mapping = ",".join(f"{new}={old}" for new, old in result["mapping"].items())
        # NEEDS_MAPPING: the printed fix; INCOMPATIBLE: the mapping it tried, as an agent would
        flags = result["fix"].split() if result["fix"] else (["--map", mapping] if mapping else []) + (
            ["--convert", result["convert"]] if result["convert"] else [])
    model = tiny_vlm if "vision-llava" in name else tiny_model
    max_length = ["--max_length", "None"] if model == tiny_vlm else []
    out = tmp_path / "out"
    training = run_script_shared(f"train_{method}.py", "--model_name_or_path", model, "--dataset_name", data, *flags,
                          "--output_dir", out, *ONE_STEP, *METHOD_FLAGS[method], *max_length)
    if expected[method] in ("ready", "needs_mapping"):
        assert training.returncode == 0, training.output[-3000:]
        assert json.loads((out / "run.json").read_text())["status"] == "completed"
        return
    assert training.returncode == 2, training.output[-3000:]
    assert "Traceback" not in training.stderr and not (out / "model.safetensors").exists()
    if expected[method] == "incompatible":
        assert same_words(result["reasons"][0]) in same_words(training.stderr), (result["reasons"], training.stderr)


@pytest.mark.parametrize("method,data", [("sft", "sft_code.jsonl"), ("dpo", "dpo_code.jsonl")])
def test_a_model_without_chat_template_is_refused_as_the_validator_says(method, data, tmp_path, run_script_shared,
                                                                      tiny_model):
    """Verdicts that depend on the model (validate_dataset.py --model): a base model without a chat template cannot
    render conversations; SFT trains once a template is given."""
    import shutil

    from conftest import SAMPLE

    base = tmp_path / "base"
    shutil.copytree(tiny_model, base)
    (base / "chat_template.jinja").rename(tmp_path / "template.jinja")
    config = json.loads((base / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (base / "tokenizer_config.json").write_text(json.dumps(config))
    validation = json.loads(run_script_shared("validate_dataset.py", "--dataset", SAMPLE / data, "--model", base,
                                       "--json").stdout)["methods"][method]
    assert validation["status"] == "incompatible" and "has no chat template" in validation["reasons"][0]
    out = tmp_path / "out"
    training = run_script_shared(f"train_{method}.py", "--model_name_or_path", base, "--dataset_name", SAMPLE / data,
                          "--output_dir", out, *ONE_STEP, *METHOD_FLAGS[method])
    assert training.returncode == 2 and validation["reasons"][0] in training.stderr, training.output[-2000:]
    assert "Traceback" not in training.stderr and not out.exists()
    if method == "sft":
        fixed = run_script_shared("train_sft.py", "--model_name_or_path", base, "--dataset_name", SAMPLE / data,
                           "--chat_template_path", tmp_path / "template.jinja", "--output_dir", out, *ONE_STEP,
                           *METHOD_FLAGS[method])
        assert fixed.returncode == 0, fixed.output[-3000:]
        assert json.loads((out / "run.json").read_text())["loss_masking"] == "assistant tokens"
