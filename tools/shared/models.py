"""Model loading shared by the trainers, plan.py, evaluation and GGUF export: LoRA adapters and exact counts."""

import json
from pathlib import Path

from errors import BadInput


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
    base = json.loads(config.read_text()).get("base_model_name_or_path")
    if not base:
        raise BadInput(f"The LoRA adapter {name} does not name its base model (base_model_name_or_path); merge it "
                       "first or pass the base model.")
    return base


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
