"""The tiny Qwen3 fixture carries the real Qwen tokenizer: real ids, Qwen3's chat template, llama.cpp's qwen2 vocab."""

import os
import subprocess
import sys

from conftest import SCRIPTS


def test_tokenizer_is_qwens(tiny_qwen3):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen3)
    assert tokenizer("Hello world").input_ids == [9707, 1879], "Qwen's own BPE ids"
    text = "def reverse(s: str) -> str:\n    return s[::-1]  # 12345 ✓ naïve 日本語"
    assert tokenizer.decode(tokenizer(text).input_ids) == text
    ids = tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"])
    assert ids == [151643, 151644, 151645, 151667, 151668] and len(tokenizer) == 151669
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer("<think>\nx\n</think>").input_ids[0] == 151667, "added tokens are matched whole"
    assert tokenizer.decode([151644, 9707, 151645, 151667], skip_special_tokens=True) == "Hello<think>", \
        "as in Qwen3, <think> is plain text, <|im_start|> a control token"


def test_chat_template_renders_and_model_runs(tiny_qwen3):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen3)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Reverse a string."}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nReverse a string.<|im_end|>\n" \
                     "<|im_start|>assistant\n"
    answered = tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": "s[::-1]"}], tokenize=False)
    assert answered.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\ns[::-1]<|im_end|>\n")
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen3)
    assert model.config.model_type == "qwen3" and model.config.tie_word_embeddings
    assert model.config.hidden_size % 256 == 0, "K-quants need rows divisible by 256"
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        assert model(ids).logits.shape == (1, ids.shape[1], 151936)


def test_llama_cpp_converter_recognises_the_qwen2_pre_tokenizer(tiny_qwen3, tmp_path):
    sys.path.insert(0, str(SCRIPTS))
    import convert_gguf

    source = convert_gguf.llama_cpp() / "src"
    env = {**os.environ, "PYTHONPATH": str(source / "gguf-py")}
    out = tmp_path / "vocab.gguf"
    result = subprocess.run([sys.executable, str(source / "convert_hf_to_gguf.py"), str(tiny_qwen3), "--vocab-only",
                             "--outfile", str(out)], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    field = convert_gguf.GGUFHeader(out).fields.get  # the product's reader; GGUFReader takes 10 s on this vocabulary
    assert field("general.architecture") == "qwen3" and field("tokenizer.ggml.model") == "gpt2"
    assert field("tokenizer.ggml.pre") == "qwen2", "the tokenizer hashes like Qwen's, so llama.cpp pre-tokenizes it right"
    assert field("tokenizer.ggml.eos_token_id") == 151645 and field("tokenizer.ggml.padding_token_id") == 151643
    assert "<|im_start|>" in field("tokenizer.chat_template")
