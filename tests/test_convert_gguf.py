"""convert_gguf.py with llama.cpp from the pinned PyPI sdist: real conversion, quantization, verification, push."""

import json
import shutil

import pytest
from conftest import SAMPLE, json_output


@pytest.fixture(scope="module")
def converted(tiny_model, tmp_path_factory):
    """The tiny fixture converted once to F16, Q8_0 and Q4_K_M (the first call also builds llama.cpp, cached)."""
    import os
    import subprocess
    import sys

    from conftest import SCRIPTS, base_env

    work = tmp_path_factory.mktemp("gguf")
    model = work / "model"
    shutil.copytree(tiny_model, model)
    (model / "run.json").write_text(json.dumps({"method": "sft", "exports": []}))
    result = subprocess.run([sys.executable, str(SCRIPTS / "convert_gguf.py"), "--model", str(model), "--quant",
                             "F16,Q8_0,Q4_K_M", "--outdir", str(work / "out"), "--json"], capture_output=True, text=True,
                            env=base_env(work), timeout=1800)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return json.loads(result.stdout), model, work / "out", os.environ


def test_files_load_generate_and_carry_the_right_metadata(converted):
    result, _, outdir, _ = converted
    files = {f["quant"]: f for f in result["files"]}
    assert set(files) == {"F16", "Q8_0", "Q4_K_M"}
    for entry in files.values():
        assert (outdir / entry["file"]).exists()
        meta = entry["metadata"]
        assert meta["architecture"] == "llama" and meta["tokenizer"] == "llama" and meta["chat_template"]
        assert "def add(a, b):" in entry["sample"]
    assert "Q4_K" in files["Q4_K_M"]["metadata"]["tensor_types"], "hidden size 256 keeps real K-quants"
    assert "Q8_0" in files["Q8_0"]["metadata"]["tensor_types"] and "F16" in files["F16"]["metadata"]["tensor_types"]
    assert files["Q4_K_M"]["size_mb"] < files["Q8_0"]["size_mb"] < files["F16"]["size_mb"]
    assert result["logits_max_prob_gap"] < 0.02


def test_exports_are_recorded_in_run_json(converted):
    _, model, _, _ = converted
    exports = json.loads((model / "run.json").read_text())["exports"]
    assert [e["quant"] for e in exports] == ["F16", "Q8_0", "Q4_K_M"] and all(e["date"] for e in exports)


def test_lora_adapter_is_merged_then_converted_and_pushed(tiny_model, tmp_path, run_script, hub):
    adapter = tmp_path / "lora"
    assert run_script("train_sft.py", "--model_name_or_path", tiny_model, "--dataset_name", SAMPLE / "sft_code.jsonl",
                      "--output_dir", adapter, "--max_steps", "2", "--peft", "lora", "--report_to", "none",
                      "--max_length", "128").returncode == 0
    result = json_output(run_script("convert_gguf.py", "--model", adapter, "--quant", "Q4_K_M", "--outdir",
                                    tmp_path / "gguf", "--push_to", "tester/tiny-GGUF", "--json"))
    assert result["files"][0]["quant"] == "Q4_K_M" and result["repo"] == "tester/tiny-GGUF"
    files = hub.state.repos[("model", "tester/tiny-GGUF")]["files"]
    assert any(name.endswith("Q4_K_M.gguf") for name in files) and not any(n.endswith("F16.gguf") for n in files)
    card = files["README.md"].decode()
    assert "llama-server -hf tester/tiny-GGUF:Q4_K_M" in card and "ollama run hf.co/tester/tiny-GGUF:Q4_K_M" in card
    assert "LM Studio" in card


@pytest.mark.parametrize("case,needle", [("quant", "Unknown quantization Q9_X"), ("adapter", "cannot be reached"),
                                         ("architecture", "does not support"), ("missing", "neither a local")])
def test_bad_inputs_exit_2(case, needle, tiny_model, tmp_path, run_script):
    model = tmp_path / "model"
    args = ["--quant", "Q4_K_M"]
    if case == "quant":
        args = ["--quant", "Q9_X"]
        model = tiny_model
    elif case == "adapter":
        model.mkdir()
        (model / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/nowhere/base",
                                                               "peft_type": "LORA"}))
    elif case == "architecture":
        shutil.copytree(tiny_model, model)
        config = json.loads((model / "config.json").read_text())
        (model / "config.json").write_text(json.dumps(config | {"architectures": ["MadeUpForCausalLM"]}))
    else:
        model = "nobody/nothing-here"
    result = run_script("convert_gguf.py", "--model", model, *args, "--outdir", tmp_path / "out")
    assert result.returncode == 2, result.output[-2000:]
    assert needle in result.stderr and "Traceback" not in result.stderr
