"""convert_gguf.py timings: the one-time llama.cpp fetch + build (in a fresh cache dir), then merge + convert +
quantize + verify for the tiny fixture, a LoRA adapter of it, and a 0.6B-shaped Llama model (hidden 1024, 28
layers; random weights, tiny vocabulary) on this machine's CPU.

    python bench/gguf_speed.py [--skip-build]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
SCRIPT = ROOT / "skills/hf-llm-trainer/scripts/convert_gguf.py"


def timed(command, env) -> float:
    started = time.time()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return round(time.time() - started, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-build", action="store_true", help="do not time the one-time build")
    args = parser.parse_args()
    import tiny_models
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tiny = tiny_models.tiny_causal_lm()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    results = {"cpus": os.cpu_count()}
    work = Path(tempfile.mkdtemp())
    if not args.skip_build:
        fresh = {**env, "XDG_CACHE_HOME": str(work / "cache")}
        results["one_time_fetch_build_and_tiny_convert_s"] = timed(
            [sys.executable, str(SCRIPT), "--model", str(tiny), "--outdir", str(work / "b")], fresh)
    results["tiny_q4_k_m_s"] = timed([sys.executable, str(SCRIPT), "--model", str(tiny), "--outdir", str(work / "t")], env)
    results["tiny_f16_q8_q4_s"] = timed([sys.executable, str(SCRIPT), "--model", str(tiny), "--quant",
                                         "F16,Q8_0,Q4_K_M", "--outdir", str(work / "t3")], env)
    config = LlamaConfig.from_pretrained(tiny)
    shaped = work / "llama-0.6b-shape"
    config.update({"hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28, "num_attention_heads": 16,
                   "num_key_value_heads": 8, "head_dim": 64})
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(shaped)
    for name in ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(tiny / name, shaped / name)
    results["shaped_params"] = sum(p.numel() for p in LlamaForCausalLM(config).parameters())
    results["shaped_q4_k_m_s"] = timed([sys.executable, str(SCRIPT), "--model", str(shaped), "--outdir",
                                        str(work / "s")], env)
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
