"""Model loading shared by the trainers, plan.py, evaluation and GGUF export: LoRA adapters and exact counts."""

import json
from pathlib import Path

from .errors import BadInput


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
