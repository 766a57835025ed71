"""Defaults that decide how well a run trains, shared by plan.py (the card) and the trainers (the run)."""

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
