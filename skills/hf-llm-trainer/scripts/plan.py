# /// script
# requires-python = ">=3.10"
# dependencies = ["transformers>=5.0", "huggingface_hub>=1.0", "torch"]
# ///
"""Plan a training run: the cheapest Hugging Face Jobs flavor that fits, with memory, time and cost estimates.

    uv run plan.py --model Qwen/Qwen3-0.6B --method sft --validation validation.json
    uv run plan.py --model ./my-model --method dpo --peft lora --max_length 1024 --json

Parameters and shapes come from the model's config, instantiated on the meta device (never guessed from the name).
Memory per GPU = weights + trainable state (gradients, AdamW moments) + activations + logits (+ DPO reference,
GRPO KV cache) + CUDA context, sharded on multi-GPU flavors. Time = training FLOPs / (GPU peak x utilisation),
calibrated against measured runs (bench/RESULTS.md). Prices come live from `list_jobs_hardware()` when online,
else from the bundled snapshot below. Without --json prints the confirmation card the agent shows.
"""

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

SNAPSHOT_DATE = "2026-11-23"
# name: (accelerator, count, GB per GPU, USD per hour), as the Hub's Jobs pricing page lists them (checked on
# SNAPSHOT_DATE). Used offline only: list_jobs_hardware() replaces it whenever the Hub answers.
HARDWARE_SNAPSHOT = {
    "cpu-basic": (None, 0, 0, 0.01), "cpu-upgrade": (None, 0, 0, 0.03),
    "t4-small": ("T4", 1, 16, 0.40), "t4-medium": ("T4", 1, 16, 0.60),
    "l4x1": ("L4", 1, 24, 0.80), "l4x4": ("L4", 4, 24, 3.80),
    "a10g-small": ("A10G", 1, 24, 1.00), "a10g-large": ("A10G", 1, 24, 1.50),
    "a10g-largex2": ("A10G", 2, 24, 3.00), "a10g-largex4": ("A10G", 4, 24, 5.00),
    "l40sx1": ("L40S", 1, 48, 1.80), "l40sx4": ("L40S", 4, 48, 8.30), "l40sx8": ("L40S", 8, 48, 23.50),
    "a100-large": ("A100", 1, 80, 2.50), "a100x4": ("A100", 4, 80, 10.00), "a100x8": ("A100", 8, 80, 20.00),
    "h200": ("H200", 1, 141, 5.00), "h200x2": ("H200", 2, 141, 10.00), "h200x4": ("H200", 4, 141, 20.00),
    "h200x8": ("H200", 8, 141, 40.00),
    "rtx-pro-6000": ("RTXPRO6000", 1, 96, 2.75), "rtx-pro-6000x2": ("RTXPRO6000", 2, 96, 5.50),
    "rtx-pro-6000x4": ("RTXPRO6000", 4, 96, 11.00), "rtx-pro-6000x8": ("RTXPRO6000", 8, 96, 22.00),
}
# accelerator: (bf16 supported, peak dense 16-bit TFLOP/s, memory bandwidth TB/s, best model-FLOPs utilisation)
GPU_CAPABILITIES = {
    "T4": (False, 65, 0.32, 0.35), "L4": (True, 121, 0.30, 0.35), "A10G": (True, 70, 0.60, 0.40),
    "L40S": (True, 181, 0.86, 0.40), "A100": (True, 312, 2.0, 0.45), "H100": (True, 989, 3.35, 0.45),
    "H200": (True, 989, 4.8, 0.45), "RTXPRO6000": (True, 500, 1.8, 0.35),
}
# Utilisation falls for narrow models (small matrix products cannot fill a fast GPU). A micro-batch also never takes
# less than the host needs to launch its kernels, layer by layer (forward, recomputed forward, backward); adapters
# add kernels (LoRA matmuls, dequantisation). Calibrated on H100 runs of 0.6B/1.7B shapes (bench/RESULTS.md,
# bench/calibration.py).
LAUNCH_FLOOR_S_PER_LAYER = {"none": 0.0095, "lora": 0.016, "qlora": 0.0195}
DPO_EFFICIENCY = 0.5
VLLM_GPU_SHARE = 0.3  # TRL's vllm_gpu_memory_utilization default in colocate mode
CUDA_CONTEXT_GB = 0.5  # driver context, outside what PyTorch's allocator reserves
ALLOCATOR_SLACK = 1.04  # reserved / allocated, measured
SAFETY_MARGIN = 0.90  # use at most 90% of a GPU's memory
STARTUP_HOURS = 0.15  # image pull, uv install, model and data download, final push
DEFAULT_DATASET_TOKENS = 5_000_000
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
CACHE = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hf-llm-trainer-hardware.json"


class BadInput(Exception):
    pass


# ---------------------------------------------------------------- hardware catalogue


def catalogue_as_api() -> list[dict]:
    """The snapshot in the shape the Hub's /api/jobs/hardware returns."""
    entries = []
    for name, (gpu, count, vram, price) in HARDWARE_SNAPSHOT.items():
        accelerator = {"type": "gpu", "model": gpu, "quantity": str(count), "vram": f"{vram * count} GB",
                       "manufacturer": "Nvidia"} if gpu else None
        entries.append({"name": name, "prettyName": name, "cpu": "8 vCPU", "ram": "32 GB", "accelerator": accelerator,
                        "unitCostMicroUSD": round(price / 60 * 1e6), "unitCostUSD": price / 60, "unitLabel": "minute"})
    return entries


def load_catalogue() -> tuple[dict, str]:
    """{flavor: (gpu, count, GB per GPU, USD/hour)} and where it came from."""
    if os.environ.get("HF_HUB_OFFLINE") != "1":
        try:
            from huggingface_hub import list_jobs_hardware

            live = {}
            for item in list_jobs_hardware():
                if item.accelerator is None:
                    continue
                count = int(item.accelerator.quantity)
                per_gpu = float(item.accelerator.vram.split()[0]) / count
                per_hour = item.unit_cost_usd * (60 if item.unit_label == "minute" else 1)
                live[item.name] = (item.accelerator.model.replace(" ", "").upper(), count, per_gpu, per_hour)
            CACHE.parent.mkdir(parents=True, exist_ok=True)
            CACHE.write_text(json.dumps({"fetched": time.strftime("%Y-%m-%d"), "flavors": live}))
            return live, "live price list"
        except Exception:  # noqa: BLE001 - offline, no token, or Hub down: fall back to the cache or snapshot
            pass
    if CACHE.exists():
        cached = json.loads(CACHE.read_text())
        return {k: tuple(v) for k, v in cached["flavors"].items()}, f"cached price list of {cached['fetched']}"
    flavors = {k: v for k, v in HARDWARE_SNAPSHOT.items() if v[0]}
    return flavors, f"bundled price snapshot of {SNAPSHOT_DATE}"


def capabilities(gpu: str) -> tuple:
    key = next((k for k in GPU_CAPABILITIES if gpu.upper().startswith(k)), None)
    return GPU_CAPABILITIES[key] if key else (True, 100, 1.0, 0.3)


# ---------------------------------------------------------------- model shape


def model_shape(model: str) -> dict:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    path = Path(model)
    if path.is_dir() and (path / "adapter_config.json").exists():
        model = json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"]
    try:
        config = AutoConfig.from_pretrained(model)
    except OSError as error:
        raise BadInput(f"Could not read the config of {model!r} ({error.__class__.__name__}); pass a Hub model id "
                       "(online) or a local directory with config.json.")
    with torch.device("meta"):
        try:
            instance = AutoModelForCausalLM.from_config(config)
        except ValueError:
            instance = AutoModelForImageTextToText.from_config(config)
    text = config.get_text_config()
    params = sum(p.numel() for p in instance.parameters())
    linear = {}
    for name, module in instance.named_modules():
        if isinstance(module, torch.nn.Linear) and "lm_head" not in name:
            linear[name] = (module.in_features, module.out_features)
    embedding_params = text.vocab_size * text.hidden_size * (1 if getattr(text, "tie_word_embeddings", False) else 2)
    heads = text.num_attention_heads
    return {
        "params": params, "linear": linear, "embedding_params": embedding_params,
        "hidden": text.hidden_size, "layers": text.num_hidden_layers, "vocab": text.vocab_size,
        "intermediate": getattr(text, "intermediate_size", 4 * text.hidden_size), "heads": heads,
        "kv_heads": getattr(text, "num_key_value_heads", heads) or heads,
        "head_dim": getattr(text, "head_dim", None) or text.hidden_size // heads,
        "model_type": config.model_type,
    }


def lora_params(shape: dict, rank: int) -> int:
    return sum(rank * (fan_in + fan_out) for name, (fan_in, fan_out) in shape["linear"].items()
               if name.split(".")[-1] in LORA_TARGETS)


# ---------------------------------------------------------------- memory model


def memory_breakdown(shape: dict, args, bf16: bool, gpus: int, batch: int, fused_ce: bool,
                     gpu_memory_gb: float = 0.0) -> dict:
    """Peak memory per GPU, calibrated on H100 measurements (bench/RESULTS.md). The trainers keep fp32 master
    weights for full fine-tuning (16 bytes a parameter with AdamW), load a LoRA base in 16 bit, and a QLoRA base in
    4 bit with the non-quantised parameters upcast to fp32 (peft's k-bit preparation)."""
    gb = 1024**3
    params, hidden, layers = shape["params"], shape["hidden"], shape["layers"]
    trainable = params if args.peft == "none" else lora_params(shape, args.lora_r)
    tokens = batch * args.max_length * (2 if args.method == "dpo" else 1)  # DPO runs chosen and rejected together
    if args.peft == "qlora":  # 4-bit linear layers with their quantisation constants; the rest stays 16 bit
        non_linear = params - sum(i * o for i, o in shape["linear"].values())
        weights = (params - non_linear) * 0.53 + non_linear * 2
    else:
        weights = params * (4 if args.peft == "none" else 2)
    gradients = trainable * 4
    optimizer = trainable * 8 + (trainable * 4 if args.peft != "none" else 0)  # AdamW moments (+ fp32 adapters)
    sharded = gpus > 1 and args.strategy == "fsdp"
    if sharded:
        weights, gradients, optimizer = weights / gpus, gradients / gpus, optimizer / gpus
    # Residual stream between layers: fp32 when the weights are fp32 (full fine-tuning), else 16 bit.
    act_bytes = 7.2 if args.peft == "none" else 4.4
    if args.gradient_checkpointing:
        activations = tokens * layers * hidden * act_bytes
    else:
        per_layer = 6 * hidden + 2 * shape["kv_heads"] * shape["head_dim"] + 4 * shape["intermediate"]
        activations = tokens * layers * per_layer * act_bytes / 2
    # Logits: TRL computes the loss through a chunked LM head, so vocab x tokens is never materialised at once.
    unfused_logits = tokens * shape["vocab"] * (2 + 4 + 4)
    logits = 0.0 if fused_ce else unfused_logits
    # Full fine-tuning peaks either in the optimizer step or in the backward pass, where activations meet half-built
    # gradients; adapters' gradients are small, so LoRA's activations simply add up.
    live = max(gradients, activations + gradients / 2) if args.peft == "none" else gradients + activations
    reference = params * 4 / (gpus if sharded else 1) if args.method == "dpo" and args.peft == "none" else 0.0
    kv_cache = vllm = 0.0
    if args.method == "grpo" and getattr(args, "vllm", False):  # its own weights and KV cache, a share of the GPU
        vllm = VLLM_GPU_SHARE * gpu_memory_gb * gb
    elif args.method == "grpo":
        sequence = args.max_prompt_length + args.max_completion_length
        kv_cache = 2 * layers * shape["kv_heads"] * shape["head_dim"] * sequence * batch * 2
    parts = {"weights": weights, "optimizer": optimizer, "gradients_and_activations": live * ALLOCATOR_SLACK,
             "logits": logits, "reference_model": reference, "kv_cache": kv_cache, "vllm": vllm}
    parts = {key: round(value / gb, 2) for key, value in parts.items()}
    parts["weights"] = round(parts["weights"] * ALLOCATOR_SLACK, 2)
    parts["logits_saved_by_chunking"] = round((unfused_logits - logits) / gb, 2)
    parts["cuda_context"] = CUDA_CONTEXT_GB
    parts["total"] = round(sum(v for k, v in parts.items() if k != "logits_saved_by_chunking"), 2)
    return {"breakdown": parts, "trainable": trainable}


# ---------------------------------------------------------------- time model


def utilisation(gpu: str, shape: dict, args) -> float:
    _, tflops, _, best = capabilities(gpu)
    saturating_width = 2560 * math.sqrt(tflops / 989)
    value = best * min(1.0, shape["hidden"] / saturating_width)
    return value * (DPO_EFFICIENCY if args.method == "dpo" else 1.0)


def training_flops(shape: dict, args, tokens: float) -> float:
    n = shape["params"]
    per_token = 6 * n if args.peft == "none" else 4 * n  # LoRA skips the frozen weights' gradients
    if args.gradient_checkpointing:
        per_token += 2 * n  # one more forward pass
    attention = 12 * shape["layers"] * shape["hidden"] * args.max_length  # causal attention, fwd + bwd
    per_token += attention
    if args.method == "dpo":
        per_token = 2 * per_token + 2 * 2 * n  # chosen and rejected, plus the reference model's two forwards
    return per_token * tokens


def micro_batch_seconds(shape: dict, args, gpu: str, gpus: int, batch: int) -> float:
    """Compute time of one micro-batch per GPU, or the kernel-launch floor when the GPU outruns the host."""
    _, tflops, _, _ = capabilities(gpu)
    flops = training_flops(shape, args, batch * args.max_length)
    compute = flops / (tflops * 1e12 * utilisation(gpu, shape, args) * (0.9 if gpus > 1 else 1.0))
    return max(compute, LAUNCH_FLOOR_S_PER_LAYER[args.peft] * shape["layers"])


def generation_seconds(shape: dict, args, tokens: float, gpu: str, gpus: int) -> float:
    """GRPO decoding is memory-bound: each new token of a batch reads the weights once."""
    if args.method != "grpo":
        return 0.0
    _, _, bandwidth, _ = capabilities(gpu)
    completions = tokens / max(args.max_prompt_length, 1) * args.num_generations
    batches = completions / max(args.per_device_train_batch_size * gpus, 1)
    return batches * args.max_completion_length * shape["params"] * 2 / (bandwidth * 1e12) / 0.5


# ---------------------------------------------------------------- decision


def evaluate_flavor(name, spec, shape, args, tokens):
    gpu, count, vram, price = spec
    bf16 = capabilities(gpu)[0]
    fused = True  # Liger's fused cross-entropy is on by default on GPU
    batch = args.per_device_train_batch_size
    strategy = "single" if count == 1 else "ddp"
    candidates = [batch] if args.batch_given else [8, 4, 2, 1]
    chosen = None
    for strategy_try in (["ddp", "fsdp"] if count > 1 else ["single"]):
        args.strategy = strategy_try
        for b in candidates:
            memory = memory_breakdown(shape, args, bf16, count, b, fused, vram)
            if memory["breakdown"]["total"] <= vram * SAFETY_MARGIN:
                chosen, strategy = (b, memory), strategy_try
                break
        if chosen:
            break
    if chosen is None:
        args.strategy = "fsdp" if count > 1 else "single"
        memory = memory_breakdown(shape, args, bf16, count, candidates[-1], fused, vram)
        chosen, strategy = (candidates[-1], memory), args.strategy
    batch, memory = chosen
    effective = args.effective_batch
    accumulation = max(1, math.ceil(effective / (batch * count)))
    micro_batches = tokens / (batch * args.max_length * count)
    seconds = micro_batches * micro_batch_seconds(shape, args, gpu, count, batch)
    seconds += generation_seconds(shape, args, tokens, gpu, count)
    hours = seconds / 3600 + STARTUP_HOURS
    return {
        "flavor": name, "gpu": gpu, "gpus": count, "gpu_memory_gb": vram, "price_per_hour": price,
        "bf16": bf16, "precision": "bf16" if bf16 else "fp16", "strategy": strategy,
        "fits": memory["breakdown"]["total"] <= vram * SAFETY_MARGIN,
        "memory_gb": memory["breakdown"]["total"], "breakdown": memory["breakdown"], "trainable": memory["trainable"],
        "per_device_train_batch_size": batch, "gradient_accumulation_steps": accumulation,
        "time_hours": round(hours, 3), "cost_usd": round(hours * price, 2),
    }


def timeout_for(hours: float) -> str:
    minutes = max(30, math.ceil((hours * 1.3 + 0.25) * 60 / 15) * 15)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def dataset_tokens(args) -> tuple[float, str | None]:
    if args.dataset_tokens:
        return float(args.dataset_tokens), None
    if args.validation:
        try:
            report = json.loads(Path(args.validation).read_text())
        except (OSError, ValueError) as error:
            raise BadInput(f"--validation {args.validation} is not a validate_dataset.py --json file ({error}).")
        tokens = (report.get("tokens") or {}).get("total_estimate")
        if tokens:
            return float(tokens), None
        if report.get("rows"):
            return float(report["rows"]) * min(args.max_length, 512), "the validation has no token counts (run it with --model): assumed 512 tokens per row"
    return float(DEFAULT_DATASET_TOKENS), (f"no --dataset_tokens or --validation: assumed {DEFAULT_DATASET_TOKENS:,} "
                                           "tokens; pass --validation for a real estimate")


def plan(args) -> dict:
    shape = model_shape(args.model)
    catalogue, source = load_catalogue()
    tokens, warning = dataset_tokens(args)
    tokens *= args.epochs
    if args.method == "grpo":
        tokens = min(tokens, args.max_samples_tokens) if args.max_samples_tokens else tokens
    if args.peft == "auto":
        args.peft = "lora" if shape["params"] > 3e9 else "none"
    warnings = [w for w in [warning] if w]
    if args.flavor:
        if args.flavor not in catalogue:
            raise BadInput(f"Unknown flavor {args.flavor!r}; choose one of {', '.join(sorted(catalogue))}.")
        options = [evaluate_flavor(args.flavor, catalogue[args.flavor], shape, args, tokens)]
    else:
        options = [evaluate_flavor(name, spec, shape, args, tokens) for name, spec in catalogue.items() if spec[1] > 0]
    fitting = sorted([o for o in options if o["fits"]], key=lambda o: (o["cost_usd"], o["time_hours"]))
    result = {"model": args.model, "method": args.method, "params": shape["params"], "peft": args.peft,
              "max_length": args.max_length, "dataset_tokens": tokens / args.epochs, "epochs": args.epochs,
              "catalogue": source, "warnings": warnings}
    if not fitting:
        best = min(options, key=lambda o: o["memory_gb"] / (o["gpu_memory_gb"] or 1))
        suggestions = []
        if args.peft == "none":
            suggestions.append("--peft lora")
        if args.peft in ("none", "lora"):
            suggestions.append("--peft qlora")
        if args.max_length > 1024:
            suggestions.append(f"--max_length {args.max_length // 2}")
        if args.flavor:
            suggestions.append("a bigger flavor (drop --flavor to let the planner choose)")
        result.update(best | {"fits": False, "alternatives": [], "suggestions": suggestions})
        return result
    chosen = fitting[0]
    result.update(chosen)
    result["trainable_params"] = chosen["trainable"]
    result["memory_gb"] = chosen["memory_gb"]
    result["timeout"] = timeout_for(chosen["time_hours"])
    result["alternatives"] = [{key: o[key] for key in ("flavor", "gpus", "memory_gb", "time_hours", "cost_usd",
                                                         "per_device_train_batch_size")} for o in fitting[1:4]]
    if not chosen["bf16"]:
        warnings.append(f"{chosen['gpu']} has no bf16: training runs in fp16 mixed precision")
    result["training_args"] = [
        "--per_device_train_batch_size", str(chosen["per_device_train_batch_size"]),
        "--gradient_accumulation_steps", str(chosen["gradient_accumulation_steps"]),
        "--max_length", str(args.max_length), "--peft", args.peft,
    ]
    return result


def card(result: dict, args) -> str:
    model_short = Path(result["model"]).name.lower()
    dataset_short = (args.dataset or "dataset").split("/")[-1].lower()
    repo = args.output_repo or f"<your-username>/{model_short}-{dataset_short}-{args.method}"
    minutes = result["time_hours"] * 60
    duration = f"~{minutes:.0f} minutes" if minutes < 120 else f"~{result['time_hours']:.1f} hours"
    lines = [
        f"I'll fine-tune {result['model']}{' on ' + args.dataset if args.dataset else ''} with {args.method.upper()}"
        f"{' (' + result['peft'].upper() + ')' if result['peft'] != 'none' else ''}.",
        "Configuration:",
        f"- Hardware: {result['flavor']} (~${result['price_per_hour']:.2f}/hour, {result['gpus']}x {result['gpu']})",
        f"- Estimated time: {duration}",
        f"- Estimated cost: ~${result['cost_usd']:.2f}",
        f"- Timeout: {result['timeout']} (estimate + buffer)",
        f"- Output: {repo}",
        f"- Memory: {result['memory_gb']:.1f} GB of {result['gpu_memory_gb']} GB per GPU, batch "
        f"{result['per_device_train_batch_size']} x {result['gradient_accumulation_steps']} accumulation",
    ]
    lines += [f"- Note: {w}" for w in result["warnings"]]
    if result["alternatives"]:
        lines.append("Alternatives: " + ", ".join(f"{a['flavor']} (~${a['cost_usd']:.2f}, {a['time_hours'] * 60:.0f} min)"
                                                   for a in result["alternatives"]))
    lines.append("The model will be pushed to the Hub automatically. Submit?")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="Hub model id or local directory (config.json is enough)")
    parser.add_argument("--method", required=True, choices=["sft", "dpo", "grpo"])
    parser.add_argument("--peft", default="auto", choices=["auto", "none", "lora", "qlora"],
                        help="auto: LoRA above 3B parameters, else full fine-tuning")
    parser.add_argument("--lora_r", type=int, default=16, help="LoRA rank (all linear layers are targeted)")
    parser.add_argument("--max_length", type=int, default=2048, help="tokens per training sequence")
    parser.add_argument("--per_device_train_batch_size", type=int, default=None,
                        help="fix the per-GPU batch (default: the largest of 8, 4, 2, 1 that fits)")
    parser.add_argument("--gradient_accumulation_steps", type=int, default=None,
                        help="with --per_device_train_batch_size, fixes the effective batch (default effective: 16)")
    parser.add_argument("--no_gradient_checkpointing", dest="gradient_checkpointing", action="store_false",
                        help="plan without gradient checkpointing (the trainers enable it on GPU)")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--dataset_tokens", type=float, default=None, help="training tokens in one epoch")
    parser.add_argument("--validation", default=None, help="a validate_dataset.py --json output (gives the tokens)")
    parser.add_argument("--dataset", default=None, help="dataset name, for the card")
    parser.add_argument("--output_repo", default=None, help="output repo, for the card")
    parser.add_argument("--flavor", default=None, help="evaluate this flavor only")
    parser.add_argument("--num_generations", type=int, default=8, help="GRPO completions per prompt")
    parser.add_argument("--max_prompt_length", type=int, default=512, help="GRPO prompt tokens")
    parser.add_argument("--max_completion_length", type=int, default=512, help="GRPO completion tokens")
    parser.add_argument("--vllm", action="store_true",
                        help="GRPO generates with vLLM colocated (jobs.py submit --with vllm): reserve its share")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    return parser


def main():
    args = build_parser().parse_args()
    args.batch_given = args.per_device_train_batch_size is not None
    args.per_device_train_batch_size = args.per_device_train_batch_size or 4
    args.effective_batch = args.per_device_train_batch_size * (args.gradient_accumulation_steps or 4) if args.batch_given else 16
    args.max_samples_tokens = None
    if args.vllm and args.method != "grpo":
        raise BadInput("--vllm only applies to --method grpo (vLLM generates GRPO's completions); drop it.")
    if args.max_length < 16:
        raise BadInput(f"--max_length {args.max_length} is too short; use at least 16 tokens.")
    result = plan(args)
    if args.json:
        print(json.dumps(result, indent=2))
    elif result["fits"]:
        print(card(result, args))
    if not result["fits"]:
        raise BadInput(f"{args.model} ({result['params'] / 1e9:.1f}B parameters, {args.method}, peft={result['peft']}, "
                       f"max_length={args.max_length}) needs {result['memory_gb']:.0f} GB per GPU even on "
                       f"{result['flavor']}, which has {result['gpu_memory_gb']} GB; try "
                       f"{' or '.join(result['suggestions']) or 'a shorter --max_length'}.")


if __name__ == "__main__":
    try:
        main()
    except BadInput as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
