"""GPU benchmark: plan.py's memory/time predictions against measured training, and our SFT defaults against the
reference skill's template settings (real tokens/s, peak memory; bench/sft_throughput.py). Runs the bundled
trainers as subprocesses on models built from published configs (random weights) with pre-tokenized data. Prints
tables; writes JSON.

    python bench/gpu_bench.py --out results/
"""

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path

from common import ROOT, SCRIPTS, run, token_dataset

sys.path.insert(0, str(SCRIPTS))
sys.path.insert(0, str(ROOT / "tools"))


def build_model(name: str, work: Path) -> Path:
    import tiny_models
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    target = work / name
    if (target / "model.safetensors").exists() or (target / "model.safetensors.index.json").exists():
        return target
    config = AutoConfig.from_pretrained(ROOT / "tests" / "configs" / name)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(target)
    tokenizer_dir = tiny_models.tiny_causal_lm()
    for file in ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(tokenizer_dir / file, target / file)
    del model
    torch.cuda.empty_cache()
    return target


def preference_dataset(work: Path, length: int, rows: int) -> Path:
    path = work / f"prefs-{length}.jsonl"
    if not path.exists():
        rng = random.Random(0)
        words = ["alpha", "beta", "gamma", "delta", "def", "return", "value", "list", "sort", "print"]
        with open(path, "w") as f:
            for _ in range(rows):
                text = lambda n: " ".join(rng.choice(words) for _ in range(n))  # noqa: E731
                f.write(json.dumps({"prompt": text(length // 8), "chosen": text(length // 3),
                                    "rejected": text(length // 3)}) + "\n")
    return path


def predict(model: Path, method: str, peft: str, length: int, batch: int, checkpointing: bool, fused: bool) -> dict:
    import plan

    shape = plan.model_shape(str(model))
    flags = ["--model", str(model), "--method", method, "--peft", peft, "--max_length", str(length),
             "--per_device_train_batch_size", str(batch)]
    request = plan.parse_request(flags + ([] if checkpointing else ["--no_gradient_checkpointing"]))
    memory = plan.memory_breakdown(shape, request, "single", 1, batch, fused_ce=fused)
    return {"memory_gb": memory["breakdown"]["total"], "breakdown": memory["breakdown"],
            "step_s": plan.micro_batch_seconds(shape, request, "H100", 1, batch)}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="bench-results")
    parser.add_argument("--only", default=None, help="comma-separated case names")
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    import torch

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path("/tmp/hflt-bench")
    work.mkdir(exist_ok=True)
    liger = __import__("importlib").util.find_spec("liger_kernel") is not None
    device = torch.cuda.get_device_name(0)
    print(f"device: {device}, torch {torch.__version__}, liger: {liger}", flush=True)
    small, medium = build_model("qwen3-0.6b", work), build_model("qwen3-1.7b", work)
    vocab = 151936
    cases = {
        # name: (script, model, method, peft, length, batch, extra flags); each at two batch sizes to separate
        # what grows with tokens (activations) from what does not (weights, optimizer)
        "0.6b-full": ("train_sft.py", small, "sft", "none", 2048, (1, 4), []),
        "0.6b-lora": ("train_sft.py", small, "sft", "lora", 2048, (1, 4), ["--peft", "lora"]),
        "1.7b-full": ("train_sft.py", medium, "sft", "none", 2048, (1, 4), []),
        "1.7b-lora": ("train_sft.py", medium, "sft", "lora", 2048, (1, 4), ["--peft", "lora"]),
        "1.7b-qlora": ("train_sft.py", medium, "sft", "qlora", 2048, (1, 4), ["--peft", "qlora"]),
        "0.6b-dpo-full": ("train_dpo.py", small, "dpo", "none", 512, (1, 4), []),
    }
    wanted = set(args.only.split(",")) if args.only else set(cases) | {"throughput"}
    results = {"device": device, "date": time.strftime("%Y-%m-%d"), "liger": liger, "accuracy": {}, "throughput": {}}
    for name, (script, model, method, peft, length, batches, extra) in cases.items():
        if name not in wanted:
            continue
        data = (preference_dataset(work, length, 200) if method == "dpo"
                else token_dataset(work, vocab, length, 400, variable=False))
        for batch in batches:
            flags = ["--max_length", str(length), "--per_device_train_batch_size", str(batch),
                     "--gradient_accumulation_steps", "1", *extra]
            if method == "sft":
                flags += ["--packing", "false", "--padding_free", "false"]  # fixed-length rows: no packing effect
            measured = run(script, model, data, work / name, flags, args.steps)
            predicted = predict(model, method, peft, length, batch, True, True)
            key = f"{name}-{length}x{batch}"
            results["accuracy"][key] = {"measured": measured, "predicted": predicted}
            if "error" in measured:
                print(f"{key}: FAILED\n{measured['error']}", flush=True)
                continue
            print(f"{key}: memory measured {measured['peak_memory_gb']:.2f} GB (allocated "
                  f"{measured['peak_allocated_gb']:.2f}), predicted {predicted['memory_gb']:.2f} GB "
                  f"(ratio {predicted['memory_gb'] / measured['peak_memory_gb']:.2f}); step measured "
                  f"{measured['step_s']:.3f}s, predicted {predicted['step_s']:.3f}s "
                  f"(ratio {predicted['step_s'] / measured['step_s']:.2f})", flush=True)
    if "throughput" in wanted:
        import sft_throughput

        data = token_dataset(work, vocab, 2048, 800, variable=True)
        results["throughput"] = sft_throughput.compare(small, data, work, 2048, args.steps)
    (out / "gpu_bench.json").write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
