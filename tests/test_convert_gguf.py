"""convert_gguf.py with llama.cpp from the pinned PyPI sdist: real conversion, quantization, verification, push.

The Llama fixture is the chat-trained tiny Llama (conftest's chat_trained_llama, 120 SFT steps): trained, it
answers in the chat format and ends its turn with <|im_end|>, so the llama-server chat turn checks a real stop at the
end-of-turn token (a random model runs to the length limit) and the golden-prompt check compares confident greedy
tokens. The Qwen3 fixture (real Qwen tokenizer and template) is trained by train_sft.py for a few steps, masked on
the assistant's tokens through TRL's Qwen3 training template, then converted: too few steps to learn to stop, what it
proves is the real Qwen path (qwen2 pre-tokenizer, Qwen3 template, Modelfile, golden prompt, a chat answer).
"""

import json
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SAMPLE, SCRIPTS, base_env, json_output, run_python


def convert(model: Path, outdir: Path, quant: str) -> dict:
    result = run_python([str(SCRIPTS / "convert_gguf.py"), "--model", str(model), "--quant", quant, "--outdir",
                         str(outdir), "--json"], base_env(outdir.parent), timeout=1800)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def llama(chat_trained_llama, tmp_path_factory):
    """The chat-trained tiny Llama, converted once to F16, Q8_0 and Q4_K_M (the first call builds llama.cpp)."""
    work = tmp_path_factory.mktemp("llama")
    model = Path(shutil.copytree(chat_trained_llama[0], work / "model"))  # the conversion records into its run.json
    return convert(model, work / "out", "F16,Q8_0,Q4_K_M"), model, work / "out"


@pytest.fixture(scope="module")
def qwen3(tiny_qwen3, tmp_path_factory):
    """The tiny Qwen3 (real Qwen tokenizer and template), trained two steps of two short rows (its 151,936-row
    output layer makes every token costly on a CPU), converted to F16 and Q8_0."""
    work = tmp_path_factory.mktemp("qwen3")
    model = work / "model"
    result = run_python([str(SCRIPTS / "train_sft.py"), "--model_name_or_path", str(tiny_qwen3), "--dataset_name",
                         str(SAMPLE / "sft_code.jsonl"), "--output_dir", str(model), "--max_steps", "2",
                         "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1", "--report_to",
                         "none", "--max_length", "128"], base_env(work), timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((model / "run.json").read_text())["loss_masking"] == "assistant tokens"
    return convert(model, work / "out", "F16,Q8_0"), model, work / "out"


def files_carry_the_right_metadata_and_match_the_hf_model(llama):
    result, _, outdir = llama
    files = {f["quant"]: f for f in result["files"]}
    assert set(files) == {"F16", "Q8_0", "Q4_K_M"}
    for entry in files.values():
        assert (outdir / entry["file"]).exists()
        meta = entry["metadata"]
        assert meta["architecture"] == "llama" and meta["tokenizer"] == "llama" and meta["chat_template"]
    assert "Q4_K" in files["Q4_K_M"]["metadata"]["tensor_types"], "hidden size 256 keeps real K-quants"
    assert "Q8_0" in files["Q8_0"]["metadata"]["tensor_types"] and "F16" in files["F16"]["metadata"]["tensor_types"]
    assert files["Q4_K_M"]["size_mb"] < files["Q8_0"]["size_mb"] < files["F16"]["size_mb"]
    assert result["logits_max_prob_gap"] < 0.02
    assert result["golden_prompt"].endswith("<|im_start|>assistant\n")
    assert files["F16"]["golden"]["agree"] == files["F16"]["golden"]["of"] == 8
    assert files["F16"]["golden"]["continuation"] == result["hf_continuation"]
    assert 0 <= files["Q4_K_M"]["golden"]["agree"] <= 8 and files["Q8_0"]["golden"]["of"] == 8


def every_file_answers_a_chat_turn_and_stops_at_end_of_turn(llama):
    result, _, _ = llama
    for entry in result["files"]:
        chat = entry["chat"]
        assert chat["answer"].strip() and "<|im_end|>" not in chat["answer"]
        assert chat["finish_reason"] == "stop" and chat["stops_at_end_of_turn"], entry["file"]

def no_llama_server_is_left_running(llama):
    _, _, outdir = llama
    assert not subprocess.run(["pgrep", "-f", f"llama-server.*{outdir}"], capture_output=True).stdout


def modelfiles_sit_beside_the_files(llama):
    result, _, outdir = llama
    assert result["ollama_template"] == "chatml" and result["stop_tokens"] == ["<|im_end|>"]
    for entry in result["files"]:
        text = (outdir / entry["modelfile"]).read_text()
        assert text.startswith(f"FROM ./{entry['file']}\nTEMPLATE \"\"\"")
        assert "{{- range $i, $_ := .Messages }}" in text and "<|im_start|>user\n{{ .Content }}<|im_end|>" in text
        assert text.endswith('"""\nPARAMETER stop "<|im_end|>"\n')
    assert sorted(p.name for p in outdir.iterdir()) == sorted(
        name for e in result["files"] for name in (e["file"], e["modelfile"])), "nothing half-made left behind"


def exports_are_recorded_in_run_json(llama):
    _, model, _ = llama
    exports = json.loads((model / "run.json").read_text())["exports"]
    assert [e["quant"] for e in exports] == ["F16", "Q8_0", "Q4_K_M"] and all(e["date"] for e in exports)
    assert exports[0]["golden_agree"] == "8/8" and exports[0]["chat_finish_reason"] == "stop"
    assert exports[2]["modelfile"].endswith("-Q4_K_M.Modelfile") and exports[2]["repo"] is None



@pytest.mark.long
def test_the_chat_trained_llama_in_three_quants(llama):
    """One conversion (training, llama.cpp, parity checks in three quants: minutes), every check made on it in one
    test: tests that share it would each redo it on their own xdist worker."""
    for check in (files_carry_the_right_metadata_and_match_the_hf_model,
                  every_file_answers_a_chat_turn_and_stops_at_end_of_turn, no_llama_server_is_left_running,
                  modelfiles_sit_beside_the_files, exports_are_recorded_in_run_json):
        check(llama)


@pytest.mark.long
def test_qwen3_exports_with_the_qwen2_tokenizer_and_chats(qwen3):
    result, _, outdir = qwen3
    files = {f["quant"]: f for f in result["files"]}
    assert set(files) == {"F16", "Q8_0"}
    for entry in files.values():
        meta = entry["metadata"]
        assert meta["architecture"] == "qwen3" and meta["tokenizer"] == "gpt2" and meta["pre_tokenizer"] == "qwen2"
        assert meta["chat_template"] and entry["chat"]["answer"].strip()
        assert entry["chat"]["stops_at_end_of_turn"] == (entry["chat"]["finish_reason"] == "stop")
    assert files["F16"]["golden"]["agree"] == files["F16"]["golden"]["of"] == 8
    assert files["Q8_0"]["golden"]["of"] == 8
    assert result["stop_tokens"] == ["<|im_end|>", "<|endoftext|>"] and result["ollama_template"] == "chatml"
    modelfile = (outdir / files["Q8_0"]["modelfile"]).read_text()
    assert modelfile.startswith(f"FROM ./{files['Q8_0']['file']}\nTEMPLATE")
    assert modelfile.endswith('PARAMETER stop "<|im_end|>"\nPARAMETER stop "<|endoftext|>"\n')


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
    assert files["lora-Q4_K_M.Modelfile"].decode().startswith("FROM ./lora-Q4_K_M.gguf\n")
    card = files["README.md"].decode()
    assert "llama-server -hf tester/tiny-GGUF:Q4_K_M" in card and "ollama run hf.co/tester/tiny-GGUF:Q4_K_M" in card
    assert "LM Studio" in card and "ollama create tiny-gguf -f lora-Q4_K_M.Modelfile" in card


def test_unreachable_hub_keeps_the_files_and_prints_the_upload_that_finishes(tiny_model, tmp_path, run_script, env):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    env.pop("HF_HUB_OFFLINE")
    env.update(HF_ENDPOINT=dead, HF_TOKEN="hf_test_token_not_real")
    result = run_script("convert_gguf.py", "--model", tiny_model, "--quant", "Q8_0", "--outdir", tmp_path / "out",
                        "--push_to", "tester/kept-GGUF")
    assert result.returncode == 1, result.output[-3000:]
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: ") and "Traceback" not in result.stderr and "hf_test_token" not in result.output
    name = tiny_model.name
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["README.md", f"{name}-Q8_0.Modelfile",
                                                                     f"{name}-Q8_0.gguf"]
    command = shlex.split(error.split("finish it with: ")[1])
    assert command[:3] == ["hf", "upload", "tester/kept-GGUF"] and command[3] == str(tmp_path / "out")

    from hub_server import TOKEN, LoopbackHub

    server = LoopbackHub([])
    try:
        hf = Path(sys.executable).parent / "hf"
        finished = subprocess.run([str(hf), *command[1:]], capture_output=True, text=True, timeout=300,
                                  env={**env, "HF_ENDPOINT": server.endpoint, "HF_TOKEN": TOKEN})
        assert finished.returncode == 0, finished.stderr[-2000:]
        pushed = server.state.repos[("model", "tester/kept-GGUF")]["files"]
        assert set(pushed) == {f"{name}-Q8_0.gguf", f"{name}-Q8_0.Modelfile", "README.md"}
    finally:
        server.close()


@pytest.mark.parametrize("case,needle", [("quant", "Unknown quantization Q9_X"), ("adapter", "cannot be reached"),
                                         ("architecture", "does not support"), ("missing", "neither a local"),
                                         ("repo", "is not a Hub repo id"), ("token", "needs a Hugging Face token"),
                                         ("outdir", "is a file"), ("weights", "has a config but no weights")])
def test_bad_inputs_exit_2_and_leave_nothing_behind(case, needle, tiny_model, tmp_path, run_script):
    model = tmp_path / "model"
    args = ["--quant", "Q4_K_M"]
    (tmp_path / "file.txt").write_text("keep me")
    if case in ("quant", "repo", "token", "outdir"):
        model = tiny_model
        args = {"quant": ["--quant", "Q9_X"], "repo": ["--push_to", "not a/valid repo"],
                "token": ["--push_to", "tester/x-GGUF"], "outdir": ["--outdir", tmp_path / "file.txt"]}[case]
    elif case == "adapter":
        model.mkdir()
        (model / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/nowhere/base",
                                                               "peft_type": "LORA"}))
        import torch
        from safetensors.torch import save_file

        save_file({"lora_A": torch.zeros(1)}, model / "adapter_model.safetensors")  # whole: its base is what is missing
    elif case == "weights":
        model.mkdir()
        shutil.copy(Path(tiny_model) / "config.json", model)
    elif case == "architecture":
        shutil.copytree(tiny_model, model)
        config = json.loads((model / "config.json").read_text())
        (model / "config.json").write_text(json.dumps(config | {"architectures": ["MadeUpForCausalLM"]}))
    else:
        model = "nobody/nothing-here"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    result = run_script("convert_gguf.py", "--model", model, *args, cwd=cwd)
    assert result.returncode == 2, result.output[-2000:]
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: ") and needle in error and "Traceback" not in result.stderr
    assert not list(cwd.iterdir()), "a refused input leaves no <name>-GGUF directory"
    assert (tmp_path / "file.txt").read_text() == "keep me"


def test_an_untrained_model_passes_parity_and_keeps_its_files(tiny_model, tmp_path):
    """An untrained model's answer may be nonsense or blank: what is checked is that llama.cpp gives the same one."""
    result = convert(tiny_model, tmp_path / "out", "F16,Q8_0")
    files = {f["quant"]: f for f in result["files"]}
    assert files["F16"]["golden"]["first_difference"] is None
    assert files["F16"]["golden"]["verdict"].startswith("identical")
    assert "prompt_difference" in files["F16"]["chat"]  # this Llama tokenizer splits text after special tokens its own way
    assert files["Q8_0"]["golden"]["verdict"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        name for entry in result["files"] for name in (entry["file"], entry["modelfile"]))


def test_a_broken_conversion_names_the_first_diverging_token(tiny_model, tmp_path):
    """transformers honours hidden_act, llama.cpp's llama graph always uses SiLU: a conversion that silently
    changes the model. The f16 check refuses it, naming the first greedy token where the two differ."""
    model = tmp_path / "gelu"
    shutil.copytree(tiny_model, model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps(config | {"hidden_act": "gelu"}))
    result = run_python([str(SCRIPTS / "convert_gguf.py"), "--model", str(model), "--quant", "Q8_0", "--output_dir",
                         str(tmp_path / "out")], base_env(tmp_path), timeout=1800)
    assert result.returncode == 1, result.stderr[-3000:]
    error = result.stderr.strip().splitlines()[-1]
    assert "continues the golden chat prompt differently from the HF model at token" in error, error
    assert "(HF '" in error and "llama.cpp '" in error and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists(), "nothing half-made is left"


def test_sigterm_mid_export_leaves_nothing_running_or_half_made(tiny_model, tmp_path):
    outdir = tmp_path / "with space"
    process = subprocess.Popen([sys.executable, str(SCRIPTS / "convert_gguf.py"), "--model", str(tiny_model),
                                "--quant", "Q8_0", "--output_dir", str(outdir)], env=base_env(tmp_path),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def servers():
        found = subprocess.run(["pgrep", "-P", str(process.pid), "-f", "llama-server"], capture_output=True, text=True)
        return found.stdout.split()

    deadline = time.time() + 900
    while not servers() and process.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    started = servers()
    assert started, "llama-server never started"
    process.terminate()
    process.wait(timeout=120)
    assert process.returncode != 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in started), "llama-server outlived the export"
    assert not outdir.exists() or not any(outdir.iterdir()), list(outdir.iterdir())
