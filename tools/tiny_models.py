"""Tiny models built offline from configs, cached in the user's cache dir, for tests, benchmarks and `make demo`.

The causal LM is Llama-shaped with a SentencePiece tokenizer trained here on the bundled sample data: llama.cpp's
converter accepts a SentencePiece `tokenizer.model` (it refuses locally trained byte-level BPE), and hidden size 256
keeps K-quants (rows divisible by 256) real. The VLM is Llava-shaped (CLIP vision tower, Llama text model) with the
same tokenizer: Qwen2-VL's processor needs torchvision, which has no CPU build beside torch 2.13 here.

The Qwen3 model has the real Qwen tokenizer, rebuilt offline: Qwen's BPE ranks ship in the `dashscope` wheel on PyPI,
transformers' TikTokenConverter turns them into vocab and merges, Qwen2Tokenizer adds Qwen's own pre-tokenizer, and
Qwen3's 26 added tokens get their real ids (151643-151668), so llama.cpp recognises the `qwen2` pre-tokenizer. The
chat template is TRL's copy of Qwen3's. The 151,936-row tied embedding dominates its size (155 MB): fp32, because
bf16 matmuls on a CPU without bf16 units are orders of magnitude slower and the fixture must train on CPU.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DATA = ROOT / "data" / "sample"
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['content'] is string %}{%- set content = message['content'] %}"
    "{%- else %}{%- set content = namespace(text='') %}"
    "{%- for part in message['content'] %}"
    "{%- if part['type'] == 'image' %}{%- set content.text = content.text + '<image>' %}"
    "{%- elif part['type'] == 'text' %}{%- set content.text = content.text + part['text'] %}{%- endif %}"
    "{%- endfor %}{%- set content = content.text %}{%- endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{%- if message['role'] == 'assistant' %}{% generation %}{{ content + '<|im_end|>' }}{% endgeneration %}"
    "{%- else %}{{ content + '<|im_end|>' }}{%- endif %}{{ '\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{%- endif %}"
)
SPECIAL_TOKENS = ["<|im_start|>", "<|im_end|>", "<image>"]
VOCAB_SIZE = 512
DASHSCOPE = "2.0.2"  # the PyPI wheel that carries Qwen's BPE ranks
QWEN_RANKS_SHA256 = "b2b1b8dfb5cc5f024bafc373121c6aba3f66f9a5a0269e243470a1de16a33186"
# Qwen3's added tokens in id order from 151643; the first 14 are special (control) tokens, the rest plain text
QWEN3_ADDED_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
    "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>",
    "<think>", "</think>",
]
QWEN3_SPECIAL = 14
QWEN3_VOCAB_SIZE = 151936  # Qwen3's embedding rows: the 151,669 tokens padded


def cache_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "hf-llm-trainer" / "fixtures"


def _fingerprint() -> str:
    import transformers

    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(transformers.__version__.encode())
    return digest.hexdigest()[:12]


def _corpus():
    for path in sorted(SAMPLE_DATA.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            for value in row.values():
                for message in value if isinstance(value, list) else [{"content": value}]:
                    if isinstance(message.get("content"), str):
                        yield message["content"]


def _build_tokenizer(out: Path):
    import sentencepiece as spm
    from transformers import LlamaTokenizer

    spm.SentencePieceTrainer.train(
        sentence_iterator=_corpus(), model_prefix=str(out / "tokenizer"), vocab_size=VOCAB_SIZE, model_type="bpe",
        user_defined_symbols=SPECIAL_TOKENS, pad_id=3, byte_fallback=True, character_coverage=1.0,
        split_digits=True, minloglevel=2,
    )
    (out / "tokenizer.vocab").unlink()
    tokenizer = LlamaTokenizer.from_pretrained(str(out), eos_token="<|im_end|>", pad_token="<pad>")
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(str(out))
    return tokenizer


def _build_causal_lm(out: Path):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _build_tokenizer(out)
    config = LlamaConfig(
        vocab_size=VOCAB_SIZE, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=64, max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(str(out))


def _build_vlm(out: Path):
    import torch
    from transformers import CLIPImageProcessor, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    tokenizer = _build_tokenizer(out)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=14,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=CHAT_TEMPLATE, image_token="<image>")
    processor.save_pretrained(str(out))
    config = LlavaConfig(
        vision_config=dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, image_size=28, patch_size=14, projection_dim=32),
        text_config=dict(model_type="llama", vocab_size=VOCAB_SIZE, hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"), vision_feature_select_strategy="default",
        vision_feature_layer=-1, image_seq_length=4,
    )
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(str(out))


def _qwen_ranks() -> Path:
    """Qwen's tiktoken BPE ranks, read out of the pinned dashscope wheel (downloaded once, never installed)."""
    ranks = cache_root() / f"dashscope-{DASHSCOPE}" / "qwen.tiktoken"
    if ranks.exists():
        return ranks
    with tempfile.TemporaryDirectory() as download:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", f"dashscope=={DASHSCOPE}",
                        "-d", download], check=True)
        wheel = next(Path(download).glob("dashscope-*.whl"))
        data = zipfile.ZipFile(wheel).read("dashscope/resources/qwen.tiktoken")
    if hashlib.sha256(data).hexdigest() != QWEN_RANKS_SHA256:
        raise RuntimeError(f"dashscope {DASHSCOPE}'s qwen.tiktoken is not the expected file")
    ranks.parent.mkdir(parents=True, exist_ok=True)
    staging = ranks.with_suffix(f".{os.getpid()}.tmp")
    staging.write_bytes(data)
    os.replace(staging, ranks)
    return ranks


def _build_qwen3(out: Path):
    import torch
    from tokenizers import AddedToken
    from transformers import GenerationConfig, Qwen2Tokenizer, Qwen3Config, Qwen3ForCausalLM
    from transformers.convert_slow_tokenizer import TikTokenConverter
    from trl.chat_template_utils import qwen3_chat_template

    ranks = str(_qwen_ranks())
    vocab, merges = TikTokenConverter(ranks).extract_vocab_merges_from_model(ranks)
    # Qwen2Tokenizer brings Qwen's own normalizer and pre-tokenizer and adds <|endoftext|> first (id 151643)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, errors="replace", model_max_length=131072)
    tokenizer.add_tokens([AddedToken(token, special=index < QWEN3_SPECIAL, normalized=False)
                          for index, token in enumerate(QWEN3_ADDED_TOKENS)])
    tokenizer.add_special_tokens({"eos_token": "<|im_end|>",
                                  "additional_special_tokens": QWEN3_ADDED_TOKENS[1:QWEN3_SPECIAL]})
    tokenizer.chat_template = qwen3_chat_template
    tokenizer.save_pretrained(str(out))

    endoftext, im_end = tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>"])
    config = Qwen3Config(
        vocab_size=QWEN3_VOCAB_SIZE, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=64, max_position_embeddings=4096,
        rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True, bos_token_id=endoftext,
        eos_token_id=im_end,
    )
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=endoftext, eos_token_id=[im_end, endoftext],
                                               pad_token_id=endoftext)
    model.save_pretrained(str(out))


def _cached(name: str, build) -> Path:
    target = cache_root() / f"{name}-{_fingerprint()}"
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    staging.chmod(0o755)
    try:
        build(staging)
        os.replace(staging, target)
    except OSError:  # another process finished the same build first
        shutil.rmtree(staging, ignore_errors=True)
    finally:
        if staging.exists() and staging != target:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def tiny_causal_lm() -> Path:
    return _cached("tiny-llama", _build_causal_lm)


def tiny_vlm() -> Path:
    return _cached("tiny-llava", _build_vlm)


def tiny_qwen3() -> Path:
    return _cached("tiny-qwen3", _build_qwen3)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("which", choices=["causal-lm", "vlm", "qwen3", "all"], nargs="?", default="all")
    args = parser.parse_args()
    if args.which in ("causal-lm", "all"):
        print(tiny_causal_lm())
    if args.which in ("vlm", "all"):
        print(tiny_vlm())
    if args.which in ("qwen3", "all"):
        print(tiny_qwen3())
