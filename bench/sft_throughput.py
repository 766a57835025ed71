"""Real (non-padding) tokens per second and peak memory of train_sft.py's defaults against the reference skill's
template settings (no packing, batch 4 x grad-acc 4, LoRA on q/v only, eval every 100 steps), same model and data,
side by side. On CPU: the tiny test fixture; on a GPU, bench/gpu_bench.py runs it on a Qwen3-0.6B-shaped model.

    python bench/sft_throughput.py [--steps 12]
"""

import argparse
import json
import sys
from pathlib import Path

from common import ROOT, run, token_dataset


def compare(model: Path, data: Path, work: Path, max_length: int, steps: int) -> dict:
    import torch

    length = ["--max_length", str(max_length)]
    settings = {
        "reference": [*length, "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "4",
                      "--packing", "false", "--padding_free", "false", "--use_liger_kernel", "false", "--peft", "lora",
                      "--lora_target_modules", "q_proj", "v_proj", "--eval_ratio", "0.05", "--eval_strategy", "steps",
                      "--eval_steps", "100"],
        "ours": length,  # our defaults, nothing else (full fine-tuning below 3B parameters)
        "ours_lora": [*length, "--peft", "lora"],  # our defaults with LoRA, like the reference
    }
    if torch.cuda.is_available():  # candidate for packed rows without flash-attn (FlexAttention has no CPU backward)
        settings["ours_flex"] = [*length, "--attn_implementation", "flex_attention"]
    results = {label: run("train_sft.py", model, data, work / f"tp-{label}", flags, steps)
               for label, flags in settings.items()}
    reference = results["reference"]
    for label, result in results.items():
        if "error" in result:
            print(f"{label}: FAILED\n{result['error']}", flush=True)
            continue
        memory = result["peak_memory_gb"] or result["peak_rss_gb"]
        reference_memory = reference.get("peak_memory_gb") or reference.get("peak_rss_gb")
        print(f"{label:10} {result['tokens_per_s']:10,.0f} real tokens/s  "
              f"{result['tokens_per_s'] / reference['tokens_per_s']:5.2f}x  peak memory {memory:6.2f} GB "
              f"({'GPU reserved' if result['peak_memory_gb'] else 'host RSS'}; {memory / reference_memory:4.2f}x)",
              flush=True)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--out", default="bench-results")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tools"))
    import tiny_models
    from transformers import AutoConfig

    model = tiny_models.tiny_causal_lm()
    work = Path("/tmp/hflt-bench-cpu")
    work.mkdir(exist_ok=True)
    data = token_dataset(work, AutoConfig.from_pretrained(model).vocab_size, 512, 300, variable=True)
    results = compare(model, data, work, 512, args.steps)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "sft_throughput_cpu.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
