"""Tiny models built offline from configs, cached in the user's cache dir, for tests, benchmarks and `make demo`.

The causal LM is Llama-shaped with a SentencePiece tokenizer trained here on the bundled sample data: llama.cpp's
converter accepts a SentencePiece `tokenizer.model` (it refuses locally trained byte-level BPE), and hidden size 256
keeps K-quants (rows divisible by 256) real. The VLM is Llava-shaped (CLIP vision tower, Llama text model) with the
same tokenizer: Qwen2-VL's processor needs torchvision, which has no CPU build beside torch 2.13 here.
"""

import argparse
import hashlib
import json
import os
import shutil
import tempfile
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
    "{{ '<|im_start|>' + message['role'] + '\n' + content + '<|im_end|>' + '\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{%- endif %}"
)
SPECIAL_TOKENS = ["<|im_start|>", "<|im_end|>", "<image>"]
VOCAB_SIZE = 512


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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("which", choices=["causal-lm", "vlm", "all"], nargs="?", default="all")
    args = parser.parse_args()
    if args.which in ("causal-lm", "all"):
        print(tiny_causal_lm())
    if args.which in ("vlm", "all"):
        print(tiny_vlm())
