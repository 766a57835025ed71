# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "transformers>=5.23,<6",
#     "huggingface_hub>=2.4,<3",
#     "safetensors>=0.5,<1",
#     "torch>=2.6,<2.14",
#     "peft>=0.17,<1",
# ]
# [tool.uv]
# exclude-newer = "2026-11-21T00:00:00Z"
# constraint-dependencies = [
#     "accelerate==1.15.0",
#     "datasets==5.2.0",
#     "huggingface-hub==2.4.0",
#     "lighteval==0.13.0",
#     "peft==0.21.2",
#     "pyarrow==26.0.1",
#     "torch==2.13.0",
#     "trackio==0.43.0",
#     "transformers==5.23.0",
#     "trl==1.16.0",
# ]
# ///
"""Plan a training run: the cheapest Hugging Face Jobs flavor that fits, with memory, time and cost estimates.

    uv run plan.py --model Qwen/Qwen3-0.6B --method sft --validation validation.json
    uv run plan.py --model ./my-model --method dpo --peft lora --max_length 1024 --json
    uv run plan.py --model Qwen/Qwen3-0.6B --method sft --validation validation.json --max_steps 20 --max_samples 100

Parameters and shapes come from the model's config, instantiated on the meta device (never guessed from the name);
a mixture of experts is held whole in memory and computed on its active parameters (num_experts_per_tok experts).
Memory per GPU = weights + trainable state (gradients, AdamW moments) + activations + logits (+ DPO reference,
GRPO KV cache) + CUDA context, sharded with FSDP over every GPU when one replica does not fit. Time = training
FLOPs / (GPU peak x utilisation), calibrated against measured runs (bench/RESULTS.md), plus inter-node traffic on
several nodes. When no single machine fits (e.g. a 70B model fully fine-tuned), it proposes N machines of one
multi-GPU flavor (jobs.py submit --nodes N). Prices come live from `list_jobs_hardware()` when online, else from the
bundled snapshot below. The cheapest flavor wins unless another finishes 3x sooner for at most 10% more. With
--max_steps or --max_samples it prices that test run, beside the full run. From the validation's token lengths it
proposes the --max_length that keeps 95% of sequences whole (or the longest that fits). A run past one job's limit
(a 7-day timeout) or --max_cost_usd is refused. Without --json prints the confirmation card the agent shows.
"""

import argparse
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, replace
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
DEFAULT_EFFECTIVE_BATCH = 16  # sequences per optimizer step when the person fixes neither batch nor accumulation
BATCH_CANDIDATES = (8, 4, 2, 1)
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# Several nodes: an assumption, not a measurement (HF Jobs publishes no inter-node bandwidth). FSDP gathers the
# weights in 16 bit (a QLoRA base in 4 bit with its constants).
INTER_NODE_GB_PER_S = 50  # per node, each direction (400 Gb/s)
GATHERED_BYTES_PER_PARAM = {"none": 2.0, "lora": 2.0, "qlora": 0.55}
MAX_NODES = 8
# What one plan may launch. HF Jobs publishes no longest timeout we could check: a week is where a single failure
# costs too much, and longer work is chained (--max_steps, then --resume_from_hub). The cost bound catches a typo
# (--epochs 1e9) before it reaches a card; --max_cost_usd raises it for a deliberate large run.
MAX_TIMEOUT_HOURS = 7 * 24
DEFAULT_MAX_COST_USD = 10_000
# The cheapest flavor is not always the answer: one that finishes this many times sooner for at most this much more
# money is worth the wait it saves.
SOONER, AT_MOST_MORE = 3.0, 0.10
LENGTH_STEP = 128  # a proposed --max_length is a multiple of this
CACHE = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hf-llm-trainer-hardware.json"


@dataclass(frozen=True)
class Request:
    """The flags, checked. Every estimate reads them and none changes them: what the planner decides (PEFT when
    auto, strategy, batch, nodes) travels as explicit values."""
    model: str
    method: str
    peft: str
    lora_r: int
    max_length: int
    per_device_train_batch_size: int | None
    gradient_accumulation_steps: int | None
    gradient_checkpointing: bool
    learning_rate: float | None
    epochs: float
    max_steps: int | None
    max_samples: int | None
    max_cost_usd: float
    dataset_tokens: float | None
    validation: str | None
    dataset: str | None
    dataset_config: str | None
    output_repo: str | None
    flavor: str | None
    nodes: int | None
    num_generations: int
    max_prompt_length: int
    max_completion_length: int
    vllm: bool
    json: bool

    @property
    def sequence_length(self) -> int:
        """Tokens in one training sequence: GRPO trains on prompt + completion, the others on --max_length."""
        return self.max_prompt_length + self.max_completion_length if self.method == "grpo" else self.max_length

    @property
    def test_run(self) -> bool:
        """--max_steps or --max_samples cut the run short: it is priced as asked, beside the full run."""
        return bool(self.max_steps or self.max_samples)


@dataclass(frozen=True)
class Data:
    """One epoch of the dataset as priced: training tokens (DPO: chosen and rejected sequences both) and rows (DPO:
    pairs, GRPO: prompts), counted by the validation or assumed."""
    tokens: float
    rows: float


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
    """Exact counts and shapes from the config on the meta device; an adapter counts as its base. A mixture of
    experts holds all its parameters in memory but runs each token through num_experts_per_tok experts only:
    `params` prices memory, `active_params` compute."""
    import torch

    instance = meta_model(model)
    config = instance.config
    text = config.get_text_config()
    linear = {name: (module.in_features, module.out_features) for name, module in instance.named_modules()
              if isinstance(module, torch.nn.Linear) and "lm_head" not in name}
    heads = text.num_attention_heads
    params = sum(p.numel() for p in instance.parameters())
    routed, share = routed_experts(instance, text)
    intermediate = getattr(text, "intermediate_size", 4 * text.hidden_size)
    if routed:  # a token's MLP activations: its experts' widths together
        intermediate = (getattr(text, "moe_intermediate_size", None) or intermediate) * text.num_experts_per_tok
    return {
        "params": params, "active_params": params - round(routed * (1 - share)), "routed_params": routed,
        "expert_share": share, "linear": linear,
        "hidden": text.hidden_size, "layers": text.num_hidden_layers, "vocab": text.vocab_size,
        "intermediate": intermediate, "heads": heads,
        "kv_heads": getattr(text, "num_key_value_heads", heads) or heads,
        "head_dim": getattr(text, "head_dim", None) or text.hidden_size // heads,
        "model_type": config.model_type, "positions": getattr(text, "max_position_embeddings", None),
    }


def routed_experts(instance, text) -> tuple[int, float]:
    """Parameters of the routed experts (transformers keeps a layer's experts in 3-D tensors, one slice an expert) and
    the share of them one token goes through; (0, 1.0) for a dense model."""
    experts = next((getattr(text, key) for key in ("num_experts", "num_local_experts", "n_routed_experts")
                    if getattr(text, key, None)), None)
    per_token = getattr(text, "num_experts_per_tok", None)
    if not experts or not per_token:
        return 0, 1.0
    routed = sum(p.numel() for p in instance.parameters() if p.dim() == 3 and p.shape[0] == experts)
    return routed, per_token / experts


def lora_params(shape: dict, rank: int) -> int:
    return sum(rank * (fan_in + fan_out) for name, (fan_in, fan_out) in shape["linear"].items()
               if name.split(".")[-1] in LORA_TARGETS)


# ---------------------------------------------------------------- memory model


def memory_breakdown(shape: dict, request: Request, strategy: str, gpus: int, batch: int,
                     gpu_memory_gb: float = 0.0, fused_ce: bool = True) -> dict:
    """Peak memory per GPU, calibrated on H100 measurements (bench/RESULTS.md). The trainers keep fp32 master
    weights for full fine-tuning (16 bytes a parameter with AdamW), load a LoRA base in 16 bit, and a QLoRA base in
    4 bit with the non-quantised parameters upcast to fp32 (peft's k-bit preparation). FSDP shards weights,
    gradients and optimizer states over all `gpus` (every node's)."""
    gb = 1024**3
    peft = request.peft
    params, hidden, layers = shape["params"], shape["hidden"], shape["layers"]
    trainable = params if peft == "none" else lora_params(shape, request.lora_r)
    tokens = batch * request.sequence_length * (2 if request.method == "dpo" else 1)  # DPO: chosen and rejected
    if peft == "qlora":  # 4-bit linear layers with their quantisation constants; the rest stays 16 bit
        non_linear = params - sum(i * o for i, o in shape["linear"].values())
        weights = (params - non_linear) * 0.53 + non_linear * 2
    else:
        weights = params * (4 if peft == "none" else 2)
    gradients = trainable * 4
    optimizer = trainable * 8 + (trainable * 4 if peft != "none" else 0)  # AdamW moments (+ fp32 adapters)
    shards = gpus if strategy == "fsdp" else 1
    weights, gradients, optimizer = weights / shards, gradients / shards, optimizer / shards
    # Residual stream between layers: fp32 when the weights are fp32 (full fine-tuning), else 16 bit.
    act_bytes = 7.2 if peft == "none" else 4.4
    if request.gradient_checkpointing:
        activations = tokens * layers * hidden * act_bytes
    else:
        per_layer = 6 * hidden + 2 * shape["kv_heads"] * shape["head_dim"] + 4 * shape["intermediate"]
        activations = tokens * layers * per_layer * act_bytes / 2
    # Logits: TRL computes the loss through a chunked LM head, so vocab x tokens is never materialised at once.
    unfused_logits = tokens * shape["vocab"] * (2 + 4 + 4)
    logits = 0.0 if fused_ce else unfused_logits
    # Full fine-tuning peaks either in the optimizer step or in the backward pass, where activations meet half-built
    # gradients; adapters' gradients are small, so LoRA's activations simply add up.
    live = max(gradients, activations + gradients / 2) if peft == "none" else gradients + activations
    reference = params * 4 / shards if request.method == "dpo" and peft == "none" else 0.0
    kv_cache = vllm = 0.0
    if request.method == "grpo" and request.vllm:  # its own weights and KV cache, a share of the GPU
        vllm = VLLM_GPU_SHARE * gpu_memory_gb * gb
    elif request.method == "grpo":
        kv_cache = 2 * layers * shape["kv_heads"] * shape["head_dim"] * request.sequence_length * batch * 2
    parts = {"weights": weights, "optimizer": optimizer, "gradients_and_activations": live * ALLOCATOR_SLACK,
             "logits": logits, "reference_model": reference, "kv_cache": kv_cache, "vllm": vllm}
    parts = {key: round(value / gb, 2) for key, value in parts.items()}
    parts["weights"] = round(parts["weights"] * ALLOCATOR_SLACK, 2)
    parts["logits_saved_by_chunking"] = round((unfused_logits - logits) / gb, 2)
    parts["cuda_context"] = CUDA_CONTEXT_GB
    parts["total"] = round(sum(v for k, v in parts.items() if k != "logits_saved_by_chunking"), 2)
    return {"breakdown": parts, "trainable": trainable}


# ---------------------------------------------------------------- time model


def utilisation(gpu: str, shape: dict, method: str) -> float:
    _, tflops, _, best = capabilities(gpu)
    saturating_width = 2560 * math.sqrt(tflops / 989)
    value = best * min(1.0, shape["hidden"] / saturating_width)
    return value * (DPO_EFFICIENCY if method == "dpo" else 1.0)


def training_flops(shape: dict, request: Request, tokens: float) -> float:
    n = shape["active_params"]
    per_token = 6 * n if request.peft == "none" else 4 * n  # LoRA skips the frozen weights' gradients
    if request.gradient_checkpointing:
        per_token += 2 * n  # one more forward pass
    per_token += 12 * shape["layers"] * shape["hidden"] * request.sequence_length  # causal attention, fwd + bwd
    if request.method == "dpo":
        per_token = 2 * per_token + 2 * 2 * n  # chosen and rejected, plus the reference model's two forwards
    return per_token * tokens


def micro_batch_seconds(shape: dict, request: Request, gpu: str, gpus: int, batch: int) -> float:
    """Compute time of one micro-batch per GPU, or the kernel-launch floor when the GPU outruns the host."""
    _, tflops, _, _ = capabilities(gpu)
    flops = training_flops(shape, request, batch * request.sequence_length)
    compute = flops / (tflops * 1e12 * utilisation(gpu, shape, request.method) * (0.9 if gpus > 1 else 1.0))
    return max(compute, LAUNCH_FLOOR_S_PER_LAYER[request.peft] * shape["layers"])


def generation_seconds(shape: dict, request: Request, completions: float, gpu: str, gpus: int, batch: int) -> float:
    """GRPO decoding is memory-bound: each new token of a batch reads the weights once (of a mixture of experts, the
    experts some token of the batch is routed to)."""
    if request.method != "grpo":
        return 0.0
    _, _, bandwidth, _ = capabilities(gpu)
    weights_read = shape["params"] - shape["routed_params"] * (1 - shape["expert_share"]) ** batch
    batches = completions / (batch * gpus)
    return batches * request.max_completion_length * weights_read * 2 / (bandwidth * 1e12) / 0.5


def micro_batches(request: Request, data: Data, rows: float, batch: int, gpus: int) -> float:
    """Micro-batches per GPU to train on `rows` rows, priced by their tokens (a short row costs its share of a full
    micro-batch item): an SFT sequence, a DPO pair of two, and for GRPO every completion (at
    --max_completion_length) trained with its prompt."""
    tokens_per_row = data.tokens / data.rows
    if request.method == "grpo":
        tokens_per_row = (tokens_per_row + request.max_completion_length) * request.num_generations
    tokens_per_item = request.sequence_length * (2 if request.method == "dpo" else 1)
    return rows * tokens_per_row / (batch * tokens_per_item * gpus)


def inter_node_seconds(shape: dict, request: Request, strategy: str, nodes: int, trainable: int,
                       micro_batches: float, accumulation: int) -> float:
    """Traffic between nodes at INTER_NODE_GB_PER_S, counted on top of compute (no overlap: an upper bound). FSDP
    all-gathers the weights for the forward and again for the backward, and reduce-scatters the 16-bit gradients,
    every micro-batch; DDP all-reduces the gradients once per optimizer step. Each node sends and receives
    (nodes - 1) / nodes of every collective."""
    if nodes == 1:
        return 0.0
    if strategy == "fsdp":
        volume = (2 * shape["params"] * GATHERED_BYTES_PER_PARAM[request.peft] + 2 * trainable) * micro_batches
    else:
        volume = 2 * 2 * trainable * micro_batches / accumulation
    return volume * (nodes - 1) / nodes / (INTER_NODE_GB_PER_S * 1e9)


# ---------------------------------------------------------------- decision


def largest_batch(shape: dict, request: Request, strategy: str, gpus: int, vram: float) -> tuple[int, dict, bool]:
    """The largest candidate batch that fits with its memory, else the smallest with the memory it would need."""
    batches = [request.per_device_train_batch_size] if request.per_device_train_batch_size else BATCH_CANDIDATES
    for batch in batches:
        memory = memory_breakdown(shape, request, strategy, gpus, batch, vram)
        if memory["breakdown"]["total"] <= vram * SAFETY_MARGIN:
            return batch, memory, True
    return batch, memory, False


def choose_strategy(shape: dict, request: Request, gpus: int, vram: float) -> tuple[str, str, int, dict, bool]:
    """The shared recipe decides (the trainers' --strategy auto asks the same function). One override: when the
    recipe keeps a whole replica on each GPU (DDP) and not even the smallest batch fits beside it, shard (FSDP)."""
    strategy = training_strategy(shape["params"], request.peft, gpus, vram)
    replica = f"a replica ({shape['params'] * REPLICA_BYTES_PER_PARAM[request.peft] / 2**30:.0f} GB of weights, " \
              "gradients and optimizer states)"
    reasons = {"single": "one GPU",
               "ddp": f"DDP: {replica} fits each GPU with room for activations",
               "fsdp": f"FSDP: {replica} takes more than {REPLICA_SHARE_OF_GPU:.0%} of a GPU, so it is sharded over "
                       f"the {gpus} GPUs"}
    batch, memory, fits = largest_batch(shape, request, strategy, gpus, vram)
    if strategy == "ddp" and not fits:
        sharded = largest_batch(shape, request, "fsdp", gpus, vram)
        if sharded[2]:
            return ("fsdp", f"FSDP: {replica} leaves no room for a batch of {batch} beside it, so it is sharded over "
                            f"the {gpus} GPUs", *sharded)
    return strategy, reasons[strategy], batch, memory, fits


def evaluate(name: str, spec: tuple, nodes: int, shape: dict, request: Request, data: Data) -> dict:
    """One flavor on `nodes` machines: strategy, the largest batch that fits, memory, and the time and cost of the
    run asked for (`estimate`, also at the top level) and of the full run (`full_run_estimate`)."""
    gpu, per_node, vram, price = spec
    gpus = per_node * nodes
    strategy, reason, batch, memory, fits = choose_strategy(shape, request, gpus, vram)
    accumulation = request.gradient_accumulation_steps or max(1, math.ceil(DEFAULT_EFFECTIVE_BATCH / (batch * gpus)))
    while request.method == "grpo" and (batch * accumulation * gpus) % request.num_generations:
        accumulation += 1  # TRL needs whole groups of completions in every generation batch
    bf16 = capabilities(gpu)[0]
    option = {
        "flavor": name, "nodes": nodes, "gpus_per_node": per_node, "gpu": gpu, "gpus": gpus,
        "gpu_memory_gb": vram, "price_per_hour": price, "bf16": bf16, "precision": "bf16" if bf16 else "fp16",
        "strategy": strategy, "strategy_reason": reason, "fits": fits,
        "memory_gb": memory["breakdown"]["total"], "breakdown": memory["breakdown"], "trainable": memory["trainable"],
        "per_device_train_batch_size": batch, "gradient_accumulation_steps": accumulation,
    }
    full = run_estimate(shape, replace(request, max_steps=None, max_samples=None), data, option)
    estimate = run_estimate(shape, request, data, option) if request.test_run else full
    return option | {"inter_node_hours": estimate["inter_node_hours"], "time_hours": estimate["time_hours"],
                     "cost_usd": estimate["cost_usd"], "estimate": estimate, "full_run_estimate": full}


def run_estimate(shape: dict, request: Request, data: Data, option: dict) -> dict:
    """Steps, rows, time, cost and timeout of the run `request` asks for on one option: every epoch, or a test run
    cut at --max_steps (the Trainer then stops there, whatever the epochs) or at the first --max_samples rows."""
    batch, gpus, accumulation = option["per_device_train_batch_size"], option["gpus"], \
        option["gradient_accumulation_steps"]
    rows_per_step = batch * accumulation * gpus / (request.num_generations if request.method == "grpo" else 1)
    if request.max_steps:
        rows = request.max_steps * rows_per_step
    else:
        rows = min(request.max_samples or data.rows, data.rows) * request.epochs
    micro = micro_batches(request, data, rows, batch, gpus)
    seconds = (micro * micro_batch_seconds(shape, request, option["gpu"], gpus, batch)
               + generation_seconds(shape, request, rows * request.num_generations, option["gpu"], gpus, batch))
    network = inter_node_seconds(shape, request, option["strategy"], option["nodes"], option["trainable"], micro,
                                 accumulation)
    hours = (seconds + network) / 3600 + STARTUP_HOURS
    return {"steps": request.max_steps or math.ceil(rows / rows_per_step), "rows": math.ceil(rows),
            "time_hours": round(hours, 3), "cost_usd": round(hours * option["price_per_hour"] * option["nodes"], 2),
            "timeout": timeout_for(hours), "inter_node_hours": round(network / 3600, 3)}


def timeout_minutes(hours: float) -> int:
    return max(30, math.ceil((hours * 1.3 + 0.25) * 60 / 15) * 15)


def timeout_for(hours: float) -> str:
    minutes = timeout_minutes(hours)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def read_validation(request: Request) -> dict | None:
    """The validate_dataset.py --json report --validation names, if any."""
    if not request.validation:
        return None
    not_a_report = f"--validation {request.validation} is not a validate_dataset.py --json file"
    try:
        report = json.loads(Path(request.validation).read_text())
    except (OSError, ValueError) as error:
        raise BadInput(f"{not_a_report} ({error}); write one with `validate_dataset.py --dataset ... --json`.")
    if not isinstance(report, dict) or "rows" not in report:
        raise BadInput(f"{not_a_report} (it has no rows); write one with "
                       "`validate_dataset.py --dataset ... --model ... --json`.")
    check_made_for_this_plan(request, report)
    return report


def check_made_for_this_plan(request: Request, report: dict):
    """Rows and tokens hold for the dataset (and configuration) and the tokenizer they were counted with only."""
    dataset, config = report.get("dataset"), report.get("config")
    if request.dataset and dataset and (not same_source(request.dataset, dataset) or request.dataset_config != config):
        raise BadInput(f"--validation {request.validation} was made for {dataset}{f' ({config})' if config else ''}, "
                       f"not for the --dataset {request.dataset}"
                       f"{f' ({request.dataset_config})' if request.dataset_config else ''} this plan is for; validate "
                       "that one with `validate_dataset.py --dataset ... --dataset_config ... --json`.")
    counted_with = (report.get("tokens") or {}).get("model")
    if counted_with and not same_tokenizer(counted_with, request.model):
        raise BadInput(f"--validation {request.validation} counted tokens with the tokenizer of {counted_with}, not "
                       f"of {request.model}; validate again with `validate_dataset.py --model {request.model} --json`.")


def same_source(first: str, second: str) -> bool:
    """The same Hub id, or the same local file or directory however it is spelled."""
    try:
        return first == second or os.path.samefile(first, second)
    except OSError:
        return False


def same_tokenizer(counted_with: str, model: str) -> bool:
    """Counts made with one model's tokenizer hold for any model with the same vocabulary and chat template: an
    adapter of it, a local copy, a fine-tuned version."""
    if same_source(counted_with, model) or same_source(counted_with, adapter_base(model) or model):
        return True
    from transformers import AutoTokenizer

    try:
        counted, planned = (AutoTokenizer.from_pretrained(name) for name in (counted_with, model))
    except (OSError, ValueError, KeyError):  # no tokenizer files (a config alone), or unreachable
        return False
    return counted.get_vocab() == planned.get_vocab() and counted.chat_template == planned.chat_template


def dataset_tokens(request: Request, report: dict | None) -> tuple[float, int | None, str | None]:
    """Training tokens in one epoch, the rows they come from when counted, and a warning when either is assumed."""
    if request.dataset_tokens:
        return request.dataset_tokens, None, None
    if report is None:
        return float(DEFAULT_DATASET_TOKENS), None, (f"no --dataset_tokens or --validation: assumed "
                                                     f"{DEFAULT_DATASET_TOKENS:,} tokens; pass --validation for a "
                                                     "real estimate")
    rows, counted = report["rows"], report.get("tokens") or {}
    if counted.get("total_estimate"):  # of the sample alone when the split's size is unknown
        tokens, warning = tokens_at(request, counted)
        return tokens, rows or report.get("rows_checked"), warning
    if rows is None:  # a streamed Hub split whose size its builder does not record
        return float(DEFAULT_DATASET_TOKENS), None, (f"the validation does not know the row count: assumed "
                                                     f"{DEFAULT_DATASET_TOKENS:,} tokens; pass --dataset_tokens")
    if not isinstance(rows, int) or rows < 1:
        raise BadInput(f"--validation {request.validation} counts {rows} rows: there is nothing to train on; check "
                       "the dataset and its split.")
    per_row = min(request.sequence_length, 512) * (2 if request.method == "dpo" else 1)
    return (float(rows * per_row), rows,
            "the validation has no token counts (run it with --model): assumed 512 tokens per sequence")


def tokens_at(request: Request, counted: dict) -> tuple[float, str | None]:
    """The tokens training sees: a sequence longer than --max_length is cut there (SFT, DPO), so a dataset of long
    reasoning traces is priced on what is kept, not on each row's whole length. Measured at another --max_length,
    what is kept is estimated from the validation's length percentiles."""
    total, measured_at = counted["total_estimate"], counted.get("max_length")
    if request.method == "grpo" or counted.get("seen_at_max_length") is None:
        return float(total), None
    if measured_at == request.max_length:
        seen, cut = counted["seen_at_max_length"], f"{counted.get('share_cut', 0):.0%} of rows are cut there"
    elif counted.get("length_percentiles"):
        seen, share = kept_at(counted, request.max_length)
        cut = (f"about {share:.0%} of sequences are cut there (estimated from the length percentiles the validation "
               f"measured at --max_length {measured_at})")
    else:
        return float(total), (f"the validation measured rows against --max_length {measured_at}, the plan is for "
                              f"{request.max_length}: priced on every row's whole length ({total:,} tokens); run "
                              f"validate_dataset.py with --max_length {request.max_length} to price what training sees")
    if seen < total:
        return float(seen), (f"priced on the {seen:,} tokens training sees at --max_length {request.max_length}: "
                             f"{cut}; the split has {total:,}")
    return float(total), None


def kept_at(counted: dict, max_length: int) -> tuple[int, float]:
    """Tokens kept at `max_length` and the share of sequences cut there, from the validation's length percentiles
    (each an equal slice of the sequences)."""
    lengths = counted["length_percentiles"]
    kept = sum(min(n, max_length) for n in lengths) / sum(lengths)
    return int(counted["total_estimate"] * kept), sum(n > max_length for n in lengths) / len(lengths)


def assumed_rows(request: Request, tokens: float) -> float:
    """Rows when none were counted: each a full training sequence (DPO: two), or a GRPO prompt of
    --max_prompt_length."""
    if request.method == "grpo":
        return tokens / request.max_prompt_length
    return tokens / (request.sequence_length * (2 if request.method == "dpo" else 1))


def candidate_flavors(request: Request, catalogue: dict) -> dict:
    """The GPU flavors to evaluate: all, or --flavor (a multi-GPU one with --nodes above 1)."""
    if request.flavor and request.flavor not in catalogue:
        raise BadInput(f"Unknown flavor {request.flavor!r}; choose one of {', '.join(sorted(catalogue))}.")
    flavors = {name: spec for name, spec in catalogue.items() if spec[1] > 0 and request.flavor in (None, name)}
    if request.nodes and request.nodes > 1 and not any(spec[1] > 1 for spec in flavors.values()):
        raise BadInput(f"--nodes {request.nodes} needs a multi-GPU flavor ({request.flavor} has one GPU); drop "
                       "--flavor or pick one such as h200x8.")
    return flavors


def options_for(request: Request, shape: dict, flavors: dict, data: Data) -> list[dict]:
    """Every flavor on one node; when none fits, or --nodes asks, on several nodes of a multi-GPU flavor."""
    if request.nodes == 1 or request.nodes is None:
        single = [evaluate(name, spec, 1, shape, request, data) for name, spec in flavors.items()]
        if request.nodes == 1 or any(option["fits"] for option in single):
            return single
    multi_gpu = {name: spec for name, spec in flavors.items() if spec[1] > 1}
    if not multi_gpu:
        return single
    node_counts = [request.nodes] if request.nodes else range(2, MAX_NODES + 1)
    return [evaluate(name, spec, nodes, shape, request, data) for name, spec in multi_gpu.items()
            for nodes in node_counts]


def within_limits(options: list[dict], request: Request) -> list[dict]:
    """The options whose run one job can hold (its timeout within MAX_TIMEOUT_HOURS) for at most --max_cost_usd;
    when none is, the one sentence that says why."""
    timely = [o for o in options if timeout_minutes(o["time_hours"]) <= MAX_TIMEOUT_HOURS * 60]
    affordable = [o for o in timely if o["cost_usd"] <= request.max_cost_usd]
    if affordable:
        return affordable
    size = f"--epochs {request.epochs:g}" + (f", --max_steps {request.max_steps}" if request.max_steps else "")
    if timely:
        cheapest = min(timely, key=lambda o: o["cost_usd"])
        raise BadInput(f"This run costs ${cheapest['cost_usd']:,.0f} even on {hardware_name(cheapest)}, past "
                       f"--max_cost_usd {request.max_cost_usd:,.0f}; plan less work ({size}, the dataset's tokens) or "
                       "raise --max_cost_usd if you mean it.")
    fastest = min(options, key=lambda o: o["time_hours"])
    raise BadInput(f"This run takes {fastest['time_hours']:,.0f} hours even on {hardware_name(fastest)}, past the "
                   f"{MAX_TIMEOUT_HOURS} hours (timeout included) one job may run; plan less work ({size}, the "
                   "dataset's tokens) or chain shorter runs (--max_steps, then --resume_from_hub).")


def choose_flavor(options: list[dict], request: Request) -> tuple[dict, str]:
    """The cheapest full run, unless another finishes SOONER times sooner for at most AT_MOST_MORE more money."""
    def full(option: dict) -> dict:
        return option["full_run_estimate"]

    cheapest = min(options, key=lambda o: (full(o)["cost_usd"], full(o)["time_hours"]))
    if request.flavor:
        return cheapest, "asked for (--flavor)"
    cost, hours = full(cheapest)["cost_usd"], full(cheapest)["time_hours"]
    fastest = min((o for o in options if full(o)["cost_usd"] <= cost * (1 + AT_MOST_MORE)),
                  key=lambda o: full(o)["time_hours"])
    if full(fastest)["time_hours"] * SOONER > hours:
        return cheapest, "the cheapest that fits"
    return fastest, (f"{hours / full(fastest)['time_hours']:.0f}x sooner than {hardware_name(cheapest)} "
                     f"(~{duration(hours)}, ~${cost:.2f}) for {full(fastest)['cost_usd'] / cost - 1:.0%} more")


def training_args(chosen: dict, request: Request) -> list[str]:
    """The flags jobs.py submit --plan adds to the trainer, so that the job launches what was planned."""
    flags = ["--per_device_train_batch_size", str(chosen["per_device_train_batch_size"]),
             "--gradient_accumulation_steps", str(chosen["gradient_accumulation_steps"]), "--peft", request.peft]
    if request.method == "grpo":
        flags += ["--num_generations", str(request.num_generations),
                  "--max_completion_length", str(request.max_completion_length)]
    else:
        flags += ["--max_length", str(request.max_length)]
    if chosen["gpus"] > 1:
        flags += ["--strategy", chosen["strategy"]]
    if request.learning_rate is not None:  # else the trainer applies the same default_learning_rate itself
        flags += ["--learning_rate", f"{request.learning_rate:g}"]
    if request.epochs != 1:
        flags += ["--num_train_epochs", f"{request.epochs:g}"]
    for flag in ("max_steps", "max_samples"):
        if getattr(request, flag):
            flags += [f"--{flag}", str(getattr(request, flag))]
    if not request.gradient_checkpointing:
        flags += ["--gradient_checkpointing", "false"]
    return flags


def plan(request: Request, shape: dict, flavors: dict, source: str, tokens: float, warnings: list[str],
         rows: int | None = None) -> dict:
    """The cheapest option that fits for `tokens` (and `rows`, assumed when not counted) per epoch, unless a much
    faster one costs barely more, with its training flags, alternatives and the reasons of its defaults."""
    request = replace(request, peft=default_peft(shape["params"]) if request.peft == "auto" else request.peft)
    warnings = list(warnings)
    learning_rate, reason = ((request.learning_rate, "given") if request.learning_rate is not None
                             else default_learning_rate(request.method, request.peft))
    options = options_for(request, shape, flavors, Data(tokens, rows or assumed_rows(request, tokens)))
    fitting = sorted([o for o in options if o["fits"]],
                     key=lambda o: (o["full_run_estimate"]["cost_usd"], o["full_run_estimate"]["time_hours"]))
    result = {"model": request.model, "method": request.method, "params": shape["params"],
              "active_params": shape["active_params"], "peft": request.peft, "max_length": request.max_length,
              "dataset": request.dataset, "dataset_config": request.dataset_config, "dataset_tokens": tokens,
              "epochs": request.epochs, "test_run": request.test_run, "max_steps": request.max_steps,
              "max_samples": request.max_samples, "learning_rate": learning_rate, "learning_rate_reason": reason,
              "catalogue": source, "inter_node_gb_per_s": INTER_NODE_GB_PER_S, "warnings": warnings}
    if not fitting:
        best = min(options, key=lambda o: o["memory_gb"] / o["gpu_memory_gb"])
        suggestions = []
        if request.peft == "none":
            suggestions.append("--peft lora")
        if request.peft in ("none", "lora"):
            suggestions.append("--peft qlora")
        if request.sequence_length > 1024:
            suggestions.append(f"--max_length {request.max_length // 2}" if request.method != "grpo"
                               else f"--max_completion_length {request.max_completion_length // 2}")
        if request.flavor:
            suggestions.append("a bigger flavor (drop --flavor to let the planner choose)")
        return result | best | {"fits": False, "alternatives": [], "suggestions": suggestions}
    allowed = within_limits(fitting, request)
    chosen, why = choose_flavor(allowed, request)
    result |= chosen | {"trainable_params": chosen["trainable"], "timeout": chosen["estimate"]["timeout"],
                        "flavor_reason": why}
    result["alternatives"] = [{key: o[key] for key in ("flavor", "nodes", "gpus", "strategy", "memory_gb",
                                                         "time_hours", "cost_usd", "per_device_train_batch_size")}
                              for o in allowed if o is not chosen][:3]
    if not chosen["bf16"]:
        warnings.append(f"{chosen['gpu']} has no bf16: training runs in fp16 mixed precision")
    result["training_args"] = training_args(chosen, request)
    return result


def max_length_proposal(request: Request, shape: dict, flavors: dict, source: str, report: dict | None) -> dict | None:
    """From the validation's token lengths (SFT, DPO): the smallest --max_length (a multiple of LENGTH_STEP, never
    past the model's positions) that keeps 95% of the sequences whole when a plan fits it, else the longest that
    fits, with its full run's time and cost; None when it is the --max_length asked for."""
    counted = (report or {}).get("tokens") or {}
    if request.method == "grpo" or not counted.get("p95") or not counted.get("length_percentiles"):
        return None

    def priced(length: int) -> dict | None:
        at = replace(request, max_length=length)
        tokens, rows, _ = dataset_tokens(at, report)
        try:
            result = plan(at, shape, flavors, source, tokens, [], rows)
        except BadInput:  # past one job's timeout or the cost bound
            return None
        return result if result["fits"] else None

    whole = math.ceil(counted["p95"] / LENGTH_STEP) * LENGTH_STEP
    length, limit = (whole, None) if not shape["positions"] or whole <= shape["positions"] else \
        (shape["positions"], "max_position_embeddings")
    if not priced(length):
        length, limit = longest_that_fits(priced, length), "memory"
    best = priced(length) if length else None
    if best is None or length == request.max_length:
        return None
    return {"max_length": length, "keeps_p95_whole": limit is None, "limited_by": limit, "p95": counted["p95"],
            "share_cut": round(kept_at(counted, length)[1], 4), "flavor": hardware_name(best),
            "full_run_estimate": best["full_run_estimate"]}


def longest_that_fits(priced, too_long: int) -> int:
    """The longest multiple of LENGTH_STEP below `too_long` that `priced` plans (memory grows with length); 0 if
    none."""
    fits, too_long = 0, too_long // LENGTH_STEP
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        fits, too_long = (middle, too_long) if priced(middle * LENGTH_STEP) else (fits, middle)
    return fits * LENGTH_STEP


def hardware_name(option: dict) -> str:
    return f"{option['nodes']} x {option['flavor']}" if option["nodes"] > 1 else option["flavor"]


def duration(hours: float) -> str:
    return f"{hours * 60:.0f} minutes" if hours < 2 else f"{hours:.1f} hours"


def card(result: dict, request: Request) -> str:
    model_short = Path(result["model"]).name.lower()
    dataset_short = (request.dataset or "dataset").split("/")[-1].lower()
    repo = request.output_repo or f"<your-username>/{model_short}-{dataset_short}-{request.method}"
    nodes, estimate, full = result["nodes"], result["estimate"], result["full_run_estimate"]
    price = result["price_per_hour"] * nodes
    test = " (test run)" if request.test_run else ""
    cut = ", ".join(f"--{flag} {getattr(request, flag)}" for flag in ("max_steps", "max_samples")
                    if getattr(request, flag))
    lines = [
        f"I'll fine-tune {result['model']}{' on ' + request.dataset if request.dataset else ''}"
        f"{f' (configuration {request.dataset_config})' if request.dataset and request.dataset_config else ''} with "
        f"{request.method.upper()}{' (' + result['peft'].upper() + ')' if result['peft'] != 'none' else ''}"
        f"{f', first as a test run ({cut})' if request.test_run else ''}.",
        "Configuration:",
        f"- Hardware: {hardware_name(result)} (~${price:.2f}/hour, {result['gpus']}x {result['gpu']}"
        f"{f' on {nodes} nodes' if nodes > 1 else ''})",
        f"- Estimated time: ~{duration(result['time_hours'])}{test}: {estimate['steps']:,} steps, "
        f"{estimate['rows']:,} rows trained",
        f"- Estimated cost: ~${result['cost_usd']:.2f}{test}",
        f"- Timeout: {result['timeout']} (estimate + buffer)",
    ]
    if request.test_run:
        lines.append(f"- Full run (not submitted by this plan): ~{duration(full['time_hours'])}, "
                     f"~${full['cost_usd']:.2f}, {full['steps']:,} steps, timeout {full['timeout']}, on the same "
                     "hardware")
    lines += [
        f"- Output: {repo}",
        f"- Memory: {result['memory_gb']:.1f} GB of {result['gpu_memory_gb']} GB per GPU, batch "
        f"{result['per_device_train_batch_size']} x {result['gradient_accumulation_steps']} accumulation",
        f"- Learning rate: {result['learning_rate']:.1e} ({result['learning_rate_reason']})".replace(".0e", "e"),
    ]
    if "sooner" in result["flavor_reason"]:
        lines.append(f"- Why {hardware_name(result)}: {result['flavor_reason']}")
    if result["gpus"] > 1:
        lines.append(f"- Strategy: {result['strategy_reason']}")
    if nodes > 1:
        lines.append(f"- Nodes: {nodes} machines; {result['strategy'].upper()}'s traffic between them, at an assumed "
                     f"{INTER_NODE_GB_PER_S} GB/s per node and not overlapped with compute, adds "
                     f"~{result['inter_node_hours'] * 60:.0f} minutes. Submit with `jobs.py submit --plan plan.json` "
                     f"(it carries the nodes) or `jobs.py submit --nodes {nodes}`.")
    if result.get("max_length_proposal"):
        lines.append(proposal_line(result["max_length_proposal"]))
    lines += [f"- Note: {w}" for w in result["warnings"]]
    if result["alternatives"]:
        lines.append(f"Alternatives{test}: " + ", ".join(f"{hardware_name(a)} (~${a['cost_usd']:.2f}, "
                                                   f"{a['time_hours'] * 60:.0f} min)" for a in result["alternatives"]))
    lines.append("The model will be pushed to the Hub automatically. Submit?")
    return "\n".join(lines)


def proposal_line(proposal: dict) -> str:
    full = proposal["full_run_estimate"]
    price = f"~{duration(full['time_hours'])}, ~${full['cost_usd']:.2f} for the full run on {proposal['flavor']}"
    if proposal["keeps_p95_whole"]:
        return (f"- Max length: 95% of sequences are at most {proposal['p95']:,} tokens; --max_length "
                f"{proposal['max_length']} keeps them whole ({price})")
    limit = {"memory": "the longest that fits", "max_position_embeddings": "the model's max_position_embeddings"}
    return (f"- Max length: keeping 95% of sequences whole takes {proposal['p95']:,} tokens; --max_length "
            f"{proposal['max_length']} is {limit[proposal['limited_by']]} and cuts {proposal['share_cut']:.0%} of "
            f"them ({price})")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="Hub model id, local directory (config.json is enough) or "
                                                       "LoRA adapter (planned as its base)")
    parser.add_argument("--method", required=True, choices=["sft", "dpo", "grpo"], help="training method")
    parser.add_argument("--peft", default="auto", choices=["auto", "none", "lora", "qlora"],
                        help="auto: LoRA above 3B parameters, else full fine-tuning")
    parser.add_argument("--lora_r", type=int, default=16, help="LoRA rank (all linear layers are targeted)")
    parser.add_argument("--max_length", type=int, default=2048, help="tokens per training sequence (SFT, DPO)")
    parser.add_argument("--per_device_train_batch_size", type=int, default=None,
                        help="fix the per-GPU batch (default: the largest of 8, 4, 2, 1 that fits)")
    parser.add_argument("--gradient_accumulation_steps", type=int, default=None,
                        help=f"fix the accumulation (default: enough for {DEFAULT_EFFECTIVE_BATCH} sequences a step)")
    parser.add_argument("--no_gradient_checkpointing", dest="gradient_checkpointing", action="store_false",
                        help="plan without gradient checkpointing (the trainers enable it on GPU)")
    parser.add_argument("--learning_rate", type=float, default=None,
                        help="default: the trainers' default for the method and PEFT (LoRA/QLoRA: 10x the full rate)")
    parser.add_argument("--epochs", type=float, default=1.0, help="passes over the dataset")
    parser.add_argument("--max_steps", type=int, default=None,
                        help="a test run: stop after N optimizer steps (the trainers' flag; it overrides --epochs); "
                             "priced as such, beside the full run")
    parser.add_argument("--max_samples", type=int, default=None,
                        help="a test run: train on the first N rows only (the trainers' flag); priced as such, beside "
                             "the full run")
    parser.add_argument("--max_cost_usd", type=float, default=DEFAULT_MAX_COST_USD,
                        help=f"refuse a run that costs more (default {DEFAULT_MAX_COST_USD:,}), so that a typo such as "
                             "--epochs 1e9 never reaches a card; raise it for a deliberate large run. A run whose "
                             f"timeout passes {MAX_TIMEOUT_HOURS} hours (a week) is refused too: HF Jobs publishes no "
                             "longer limit and one failure would lose days; chain shorter runs (--max_steps, then "
                             "--resume_from_hub)")
    parser.add_argument("--dataset_tokens", type=float, default=None,
                        help="training tokens in one epoch (DPO: chosen and rejected sequences both count)")
    parser.add_argument("--validation", default=None, help="a validate_dataset.py --json output (gives the tokens)")
    parser.add_argument("--dataset", "--dataset_name", dest="dataset", default=None,
                        help="dataset name, for the card and plan.json (--dataset_name: the trainers' spelling)")
    parser.add_argument("--dataset_config", default=None,
                        help="dataset configuration (subset), as the trainers' --dataset_config: for the card and "
                             "plan.json")
    parser.add_argument("--hub_model_id", "--output_repo", dest="output_repo", default=None,
                        help="the repo the trainer pushes to, for the card; --output_repo is the old spelling")
    parser.add_argument("--flavor", default=None, help="evaluate this flavor only")
    parser.add_argument("--nodes", type=int, default=None,
                        help=f"machines of one multi-GPU flavor, FSDP over all their GPUs (default: 1, or the fewest "
                             f"up to {MAX_NODES} that fit when no single machine does)")
    parser.add_argument("--num_generations", type=int, default=8, help="GRPO completions per prompt")
    parser.add_argument("--max_prompt_length", type=int, default=512, help="GRPO prompt tokens")
    parser.add_argument("--max_completion_length", type=int, default=512, help="GRPO completion tokens")
    parser.add_argument("--vllm", action="store_true",
                        help="GRPO generates with vLLM colocated (jobs.py submit --with vllm): reserve its share")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    return parser


def parse_request(argv: list[str] | None = None) -> Request:
    """The flags as a Request, or BadInput naming the first value that cannot be planned."""
    request = Request(**vars(build_parser().parse_args(argv)))
    at_least = {"lora_r": 1, "max_length": 16, "per_device_train_batch_size": 1, "gradient_accumulation_steps": 1,
                "nodes": 1, "num_generations": 2, "max_prompt_length": 1, "max_completion_length": 1, "max_steps": 1,
                "max_samples": 1}
    for flag, minimum in at_least.items():
        value = getattr(request, flag)
        if value is not None and value < minimum:
            raise BadInput(f"--{flag} {value} is too small; use at least {minimum}.")
    if request.nodes and request.nodes > MAX_NODES:
        raise BadInput(f"--nodes {request.nodes} is more than the {MAX_NODES} machines a plan spans; use at most "
                       f"{MAX_NODES} of a multi-GPU flavor such as h200x8.")
    for flag in ("epochs", "dataset_tokens", "learning_rate", "max_cost_usd"):
        value = getattr(request, flag)
        if value is not None and not 0 < value < float("inf"):  # also refuses nan
            raise BadInput(f"--{flag} {value:g} must be a finite number above 0.")
    if request.output_repo is not None:
        from huggingface_hub.errors import HFValidationError
        from huggingface_hub.utils import validate_repo_id

        try:
            validate_repo_id(request.output_repo)
        except HFValidationError:
            raise BadInput(f"--hub_model_id {request.output_repo!r} is not a Hub repo id; use user/name.")
    if request.vllm and request.method != "grpo":
        raise BadInput("--vllm only applies to --method grpo (vLLM generates GRPO's completions); drop it.")
    return request


def main():
    request = parse_request()
    report = read_validation(request)  # before the model: a wrong file or flavor fails fast
    tokens, rows, warning = dataset_tokens(request, report)
    catalogue, source = load_catalogue()
    flavors = candidate_flavors(request, catalogue)
    shape = model_shape(request.model)
    if shape["positions"] and request.sequence_length > shape["positions"]:
        flags = "--max_length" if request.method != "grpo" else "--max_prompt_length + --max_completion_length"
        raise BadInput(f"{flags} {request.sequence_length} is past the {shape['positions']:,} positions "
                       f"{request.model} was built for (max_position_embeddings); plan with {shape['positions']:,} "
                       "or less.")
    result = plan(request, shape, flavors, source, tokens, [warning] if warning else [], rows)
    result["max_length_proposal"] = max_length_proposal(request, shape, flavors, source, report) if result["fits"] \
        else None
    if request.json:
        print(json.dumps(result, indent=2))
    elif result["fits"]:
        print(card(result, request))
    if not result["fits"]:
        raise BadInput(f"{request.model} ({result['params'] / 1e9:.1f}B parameters, {request.method}, "
                       f"peft={result['peft']}, max_length={request.sequence_length}) needs {result['memory_gb']:.0f} "
                       f"GB per GPU even on {hardware_name(result)}, which has {result['gpu_memory_gb']} GB; try "
                       f"{' or '.join(result['suggestions']) or 'a shorter --max_length'}.")


# ---- shared block: errors (tools/shared/errors.py; edit it there, then `make shared`) sha256:aa79b8ee73e35093 ----

# The two exceptions every script turns into one sentence on stderr, and the entry point that does it: BadInput (a
# mistake the person fixes: exit 2) and Failure (something failed at run time: exit 1); anything else is a bug and
# keeps its traceback.

class BadInput(Exception):
    """A mistake in the flags, paths or data: one sentence on stderr, exit 2. A token quoted back from the flags
    (`--hub_tokne hf_...`) is masked, since the sentence is printed and logged."""

    def __init__(self, message: str):
        super().__init__(mask_tokens(message))


class Failure(Exception):
    """Something failed at run time (network, a tool, corrupt state), with a message that says what happened and
    what to do next: one sentence on stderr, exit 1, no traceback."""

    def __init__(self, message: str):
        super().__init__(mask_tokens(message))


def mask_tokens(text: str) -> str:
    return re.sub(r"hf_[A-Za-z0-9]{8,}", "hf_***", text)


def first_line(error) -> str:
    """What an exception (or a server's message) says, in one line; its class name when it says nothing."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def run_cli(main):
    """Runs a script's main: BadInput exits 2 and Failure exits 1, each with its one sentence on stderr."""
    try:
        main()
    except BadInput as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except Failure as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)

# ---- end of shared block: errors ----


# ---- shared block: cli (tools/shared/cli.py; edit it there, then `make shared`) sha256:9b103f0819db4f39 ----

# The argument parser of the scripts that are not trainers (those use TRL's parser): a mistake in the flags is one
# sentence and exit 2, not argparse's usage block.

class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise BadInput(f"{message}; see `{self.prog} --help`.")

# ---- end of shared block: cli ----


# ---- shared block: models (tools/shared/models.py; edit it there, then `make shared`) sha256:6b332c6b6df410ce ----

# Model loading shared by the trainers, plan.py, evaluation and GGUF export: LoRA adapters and exact counts.

def adapter_base(name: str, revision: str | None = None) -> str | None:
    """The base model of a LoRA adapter (a local directory or a Hub repo); None when `name` is a full model."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    path = Path(name)
    if path.is_dir():
        config = path / "adapter_config.json"
        if not config.exists():
            if not (path / "config.json").exists():
                raise BadInput(f"{name} has no config.json or adapter_config.json; pass a model directory, a LoRA "
                               "adapter directory or a Hub model id.")
            return None
    elif name.startswith((".", "/")) or name.count("/") > 1:
        raise BadInput(f"Model {name!r} was not found; pass a Hub model id or a local model directory.")
    else:
        try:
            config = Path(hf_hub_download(name, "adapter_config.json", revision=revision))
        except (EntryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError):
            return None
    try:
        base = json.loads(config.read_text()).get("base_model_name_or_path")
    except (ValueError, AttributeError):
        raise BadInput(f"{config} is not a valid adapter config (JSON object); restore it from the training output.")
    if not base:
        raise BadInput(f"The LoRA adapter {name} does not name its base model (base_model_name_or_path); merge it "
                       "first or pass the base model.")
    return base


def check_weights(name: str):
    """A local model or adapter directory must hold readable weights: a config alone (a copy cut short, a download
    interrupted) would fail only when the model loads, on the GPU machine."""
    from safetensors import safe_open

    path = Path(name)
    if not path.is_dir():
        return
    weights = [*path.glob("*.safetensors"), *(p for p in path.glob("*.bin") if p.name != "training_args.bin")]
    if not weights:
        raise BadInput(f"{name} has a config but no weights (*.safetensors or *.bin); copy the whole model "
                       "directory.")
    for index in path.glob("*.index.json"):  # sharded weights: every shard the index names
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (ValueError, KeyError, AttributeError):
            raise BadInput(f"{index} is not a valid weight index; copy it again.")
        missing = sorted(shard for shard in shards if not (path / shard).exists())
        if missing:
            raise BadInput(f"{name} lacks the weight shards {missing[:3]} its index names; copy the whole model "
                           "directory.")
    for file in weights:
        if file.suffix == ".safetensors":
            try:
                with safe_open(file, framework="pt"):
                    pass
            except Exception as error:  # noqa: BLE001 - safetensors raises its own error types for a bad header
                raise BadInput(f"{file} is not a readable safetensors file ({str(error)[:120]}); copy it again.")


def meta_model(name: str, revision: str | None = None):
    """The architecture on the meta device, without weights: exact parameter counts at no memory cost. An adapter
    counts as the base it is merged into."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    base = adapter_base(name, revision)
    try:
        config = AutoConfig.from_pretrained(base or name, revision=None if base else revision)
    except (OSError, ValueError) as error:
        raise BadInput(f"The config of model {base or name!r} could not be read ({error.__class__.__name__}); pass a "
                       "Hub model id (online) or a local directory with config.json.")
    with torch.device("meta"):
        try:
            return AutoModelForCausalLM.from_config(config)
        except ValueError:
            return AutoModelForImageTextToText.from_config(config)


def merge_adapter(adapter: str, dtype, base: str | None = None, revision: str | None = None):
    """A LoRA adapter merged into its base model, ready to train further, evaluate or export."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = base or adapter_base(adapter, revision)
    try:
        base_model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
        return PeftModel.from_pretrained(base_model, adapter, revision=revision).merge_and_unload()
    except OSError as error:
        raise BadInput(f"The LoRA adapter {adapter!r} or its base {base!r} could not be loaded "
                       f"({error.__class__.__name__}); pass a reachable base model.")


def save_merged(adapter: str, base: str, out: Path) -> Path:
    """The adapter merged into its base and saved as a full model (what lighteval and llama.cpp load), with the
    adapter's tokenizer (else the base's) and the files llama.cpp's converter reads directly."""
    import shutil

    import torch
    from transformers import AutoTokenizer

    merge_adapter(adapter, torch.float32, base).save_pretrained(out)
    tokenizer = adapter if (Path(adapter) / "tokenizer_config.json").exists() else base
    AutoTokenizer.from_pretrained(tokenizer).save_pretrained(out)
    for name in ("tokenizer.model", "chat_template.jinja"):
        for candidate in (Path(adapter) / name, Path(base) / name):
            if candidate.exists() and not (out / name).exists():
                shutil.copy(candidate, out / name)
    return out

# ---- end of shared block: models ----


# ---- shared block: recipes (tools/shared/recipes.py; edit it there, then `make shared`) sha256:bc9544680e65574f ----

# Defaults that decide how well a run trains, shared by plan.py (the card) and the trainers (the run).

FULL_LEARNING_RATE = {"sft": 2e-5, "dpo": 5e-6, "grpo": 1e-6}
LORA_LEARNING_RATE_SCALE = 10
# Bytes a parameter for one model replica's weights, gradients and optimizer states: full fine-tuning keeps fp32
# masters with AdamW (4 + 4 + 8); a LoRA base is frozen in 16 bit; a QLoRA base in 4 bit with its constants.
REPLICA_BYTES_PER_PARAM = {"none": 16.0, "lora": 2.0, "qlora": 0.55}
REPLICA_SHARE_OF_GPU = 0.6  # above this, activations no longer fit beside a whole replica: shard it
LORA_ABOVE_PARAMS = 3e9  # --peft auto: full fine-tuning up to this size, LoRA above


def default_peft(n_params: int) -> str:
    """What --peft auto means for a model of this size."""
    return "lora" if n_params > LORA_ABOVE_PARAMS else "none"


def default_learning_rate(method: str, peft: str) -> tuple[float, str]:
    """The learning rate when the person gave none, with the reason shown on the card and kept in run.json."""
    full = FULL_LEARNING_RATE[method]
    if peft == "none":
        return full, f"full fine-tuning default for {method.upper()}"
    return full * LORA_LEARNING_RATE_SCALE, (f"{LORA_LEARNING_RATE_SCALE}x the full fine-tuning rate {full:g}: "
                                             "LoRA on all linear layers needs about 10x (TRL, LoRA Without Regret)")


def training_strategy(n_params: int, peft: str, gpus: int, gpu_memory_gb: float) -> str:
    """'single' on one device; on several, DDP while one replica fits a GPU with room for activations, else FSDP
    (a LoRA or QLoRA base too: its frozen weights are sharded)."""
    if gpus <= 1:
        return "single"
    replica_gb = n_params * REPLICA_BYTES_PER_PARAM[peft] / 2**30
    return "fsdp" if replica_gb > REPLICA_SHARE_OF_GPU * gpu_memory_gb else "ddp"

# ---- end of shared block: recipes ----


if __name__ == "__main__":
    run_cli(main)
