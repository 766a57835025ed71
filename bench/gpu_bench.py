"""GPU benchmark: plan.py's memory/time predictions against measured training, and our SFT defaults against the
reference skill's template settings (real tokens/s, peak memory; bench/sft_throughput.py). Runs the bundled
trainers as subprocesses on models built from published configs (random weights) with pre-tokenized data. Prints
tables; writes JSON.

    python bench/gpu_bench.py --out results/
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "skills" / "hf-llm-trainer" / "scripts"
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


def token_dataset(work: Path, vocab: int, length: int, rows: int, variable: bool) -> Path:
    from datasets import Dataset

    path = work / f"tokens-{length}-{'var' if variable else 'fixed'}.parquet"
    if not path.exists():
        rng = random.Random(0)
        data = [{"input_ids": [rng.randrange(10, min(vocab, 500)) for _ in
                               range(rng.randint(length // 8, length) if variable else length)]} for _ in range(rows)]
        Dataset.from_list(data).to_parquet(path)
    return path


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


def run(script: str, model: Path, data: Path, out: Path, extra: list[str], steps: int) -> dict:
    """One trainer run as a subprocess; step times and real tokens from its [progress] lines, peak GPU memory from
    run.json, peak host memory (RSS) from the process's own resource usage."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    command = [sys.executable, str(SCRIPTS / script), "--model_name_or_path", str(model), "--dataset_name", str(data),
               "--output_dir", str(out), "--max_steps", str(steps), "--logging_steps", "1", "--report_to", "none",
               "--save_strategy", "no", *extra]
    started = time.time()
    log = out / "bench.log"
    with open(log, "w") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT,
                                   env={**os.environ, "HF_HUB_OFFLINE": "1"})
        _, status, usage = os.wait4(process.pid, 0)
    output = log.read_text()
    if os.waitstatus_to_exitcode(status) != 0:
        return {"error": output[-4000:]}
    lines = [json.loads(line.split("[progress] ", 1)[1]) for line in output.splitlines() if "[progress] " in line]
    steps_logged = [line for line in lines if "loss" in line]
    times = [b["time"] - a["time"] for a, b in zip(steps_logged, steps_logged[1:])]
    warm = steps_logged[2:]  # skip compilation / allocator warm-up
    tokens = (warm[-1]["num_tokens"] - warm[0]["num_tokens"]) if len(warm) > 1 and "num_tokens" in warm[0] else None
    seconds = warm[-1]["time"] - warm[0]["time"] if len(warm) > 1 else None
    record = json.loads((out / "run.json").read_text())
    return {"peak_memory_gb": record["hardware"].get("peak_memory_gb"),
            "peak_allocated_gb": record["hardware"].get("peak_memory_allocated_gb"),
            "peak_rss_gb": round(usage.ru_maxrss / 2**20, 2),
            "step_s": statistics.median(times[2:] or times),
            "tokens_per_s": tokens / seconds if tokens and seconds else None, "wall_s": round(time.time() - started, 1),
            "resolved": next((line for line in output.splitlines() if line.startswith("Resolved:")), "")}


def predict(model: Path, method: str, peft: str, length: int, batch: int, checkpointing: bool, fused: bool) -> dict:
    import plan

    shape = plan.model_shape(str(model))
    args = argparse.Namespace(method=method, peft=peft, lora_r=16, max_length=length, gradient_checkpointing=checkpointing,
                              strategy="single", max_prompt_length=512, max_completion_length=512, num_generations=8,
                              per_device_train_batch_size=batch)
    memory = plan.memory_breakdown(shape, args, True, 1, batch, fused)
    return {"memory_gb": memory["breakdown"]["total"], "breakdown": memory["breakdown"],
            "step_s": plan.micro_batch_seconds(shape, args, "H100", 1, batch)}


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
