# /// script
# requires-python = ">=3.10"
# dependencies = [
#     "trl>=1.16",
#     "transformers>=5.0",
#     "peft>=0.17",
#     "datasets>=4.0",
#     "accelerate>=1.10",
#     "huggingface_hub>=1.0",
#     "trackio>=0.4",
#     "torch",
#     "pyyaml",
#     "bitsandbytes; sys_platform == 'linux'",
#     "liger-kernel; sys_platform == 'linux'",
# ]
# ///
"""Direct preference optimisation (DPO) with TRL, the same locally and on Hugging Face Jobs.

Every TRL `DPOConfig`/`ModelConfig` flag works, and `--config recipe.yaml`. Our own flags:
`--dataset_name` (Hub id, local file or directory), `--map new=old,...` (e.g. `chosen=good_response,rejected=bad_response`),
`--max_samples N`, `--eval_ratio F`, `--peft auto|none|lora|qlora`, `--resume`, `--resume_from_hub`.

    uv run train_dpo.py --model_name_or_path username/qwen3-0.6b-sft --dataset_name my-org/preference-data \
        --output_dir qwen3-0.6b-dpo --push_to_hub

The base can be an SFT output: a full model or a LoRA adapter (local directory or Hub repo), which is merged into
its base first; with LoRA the reference model is the adapter-free policy, so no second copy is loaded. Preference
data may be explicit (prompt/chosen/rejected) or implicit (TRL extracts the shared prompt). Defaults come from the
hardware found and are printed at start. Writes `run.json`; exit 2 on bad input, 1 on a runtime failure.
"""

import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

METHOD = "dpo"
RESOLVED_KEYS = ("bf16", "fp16", "gradient_checkpointing", "packing", "padding_free", "use_liger_kernel", "max_length",
                 "per_device_train_batch_size", "gradient_accumulation_steps", "learning_rate")
RECORD_KEYS = ("num_train_epochs", "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps",
               "learning_rate", "weight_decay", "warmup_steps", "lr_scheduler_type", "max_length", "bf16", "fp16",
               "gradient_checkpointing", "packing", "padding_free", "use_liger_kernel", "beta", "num_generations",
               "max_completion_length", "use_vllm", "eval_strategy", "eval_steps", "save_steps", "save_total_limit",
               "hub_strategy", "seed")
CONVERSIONS = ("sharegpt", "alpaca", "gsm8k")
ROLE_NAMES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
              "bot": "assistant", "system": "system", "tool": "tool"}


class BadInput(Exception):
    """A mistake in the flags or the data: one sentence, exit 2."""


@dataclass
class RunArguments:
    map: str | None = field(default=None, metadata={"help": "Rename columns before training: 'new=old,...', e.g. "
                                                            "'chosen=good_response,rejected=bad_response'."})
    convert: str | None = field(default=None, metadata={"help": f"Structural conversion: one of {', '.join(CONVERSIONS)}."})
    max_samples: int | None = field(default=None, metadata={"help": "Train on the first N rows only (quick test runs)."})
    eval_ratio: float = field(default=0.0, metadata={"help": "Hold out this share of rows for evaluation (0 = none)."})
    peft: str = field(default="auto", metadata={"help": "auto (LoRA above 3B parameters), none, lora or qlora."})
    resume: bool = field(default=False, metadata={"help": "Continue from the last checkpoint in --output_dir."})
    resume_from_hub: bool = field(default=False, metadata={"help": "Fetch the last checkpoint pushed to the output "
                                                                   "repo (--hub_model_id) and continue from it."})
    num_processes: int | None = field(default=None, metadata={"help": "Processes to launch (default: one per GPU)."})


# ---------------------------------------------------------------- data


def load_rows(name: str, config: str | None, split: str, streaming: bool = False):
    from datasets import load_dataset, load_from_disk

    path = Path(name)
    builders = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".arrow": "arrow"}
    try:
        if path.is_file():
            if path.suffix not in builders:
                raise BadInput(f"{name} is a {path.suffix or 'extensionless'} file; use jsonl, json, csv, parquet or arrow.")
            return load_dataset(builders[path.suffix], data_files=str(path), split="train", streaming=streaming)
        if path.is_dir() and (path / "dataset_info.json").exists():
            return load_from_disk(str(path))
        if not path.exists() and (path.suffix in builders or name.startswith((".", "/"))):
            raise BadInput(f"Dataset file {name} was not found; check the path.")
        return load_dataset(name, config, split=split, streaming=streaming)
    except BadInput:
        raise
    except ConnectionError as error:
        raise BadInput(f"Dataset {name!r} could not be fetched ({error}); check the id and the network, or pass a local file.")
    except FileNotFoundError as error:
        raise BadInput(f"Dataset {name!r} was not found ({error}); pass a Hub dataset id, a local file or a directory.")
    except ValueError as error:
        if "split" in str(error).lower():
            raise BadInput(f"Dataset {name!r} has no split {split!r}; pass --dataset_train_split with an existing one.")
        raise BadInput(f"Dataset {name!r} could not be read: {error}")


def parse_map(spec: str | None) -> dict[str, str]:
    mapping = {}
    for pair in filter(None, (spec or "").split(",")):
        new, sep, old = pair.partition("=")
        if not sep or not new.strip() or not old.strip():
            raise BadInput(f"--map takes 'new=old' pairs separated by commas, got {pair!r}.")
        mapping[new.strip()] = old.strip()
    return mapping


def sharegpt_to_messages(row):
    turns = row["conversations"]
    return {"messages": [{"role": ROLE_NAMES.get(turn.get("from", turn.get("role")), turn.get("from")),
                          "content": turn.get("value", turn.get("content"))} for turn in turns]}


def alpaca_to_messages(row):
    prompt = row["instruction"] if not row.get("input") else f"{row['instruction']}\n\n{row['input']}"
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": row["output"]}]}


def gsm8k_to_prompt(row):
    return {"prompt": [{"role": "user", "content": row["question"]}],
            "solution": row["answer"].split("####")[-1].strip().replace(",", "")}


def prepare_dataset(dataset, run_args):
    mapping = parse_map(run_args.map)
    missing = [old for old in mapping.values() if old not in dataset.column_names]
    if missing:
        raise BadInput(f"--map names columns {missing} that the dataset does not have (it has {dataset.column_names}).")
    dataset = dataset.rename_columns({old: new for new, old in mapping.items() if new != old})
    if run_args.convert:
        conversions = {"sharegpt": (sharegpt_to_messages, ["conversations"]),
                       "alpaca": (alpaca_to_messages, ["instruction", "output"]),
                       "gsm8k": (gsm8k_to_prompt, ["question", "answer"])}
        if run_args.convert not in conversions:
            raise BadInput(f"--convert {run_args.convert!r} is unknown; use one of {', '.join(CONVERSIONS)}.")
        function, needs = conversions[run_args.convert]
        if any(column not in dataset.column_names for column in needs):
            raise BadInput(f"--convert {run_args.convert} needs columns {needs}; the dataset has {dataset.column_names}.")
        dataset = dataset.map(function, remove_columns=[c for c in dataset.column_names if c not in ("images", "image")])
    if run_args.max_samples:
        dataset = dataset.select(range(min(run_args.max_samples, len(dataset))))
    return dataset


def check_columns(dataset):
    columns = set(dataset.column_names)
    if not {"chosen", "rejected"} <= columns:
        raise BadInput(f"DPO needs 'chosen' and 'rejected' columns (and optionally 'prompt') but the dataset has "
                       f"{sorted(columns)}; run validate_dataset.py on it for the --map flags.")
    if len(dataset) == 0:
        raise BadInput("The dataset has no rows; check --dataset_train_split and --max_samples.")


# ---------------------------------------------------------------- hardware and defaults


def hardware() -> dict:
    import torch

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        return {"device": "cuda", "gpu": name, "gpus": torch.cuda.device_count(),
                "bf16": torch.cuda.is_bf16_supported(), "memory_gb": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)}
    return {"device": "cpu", "gpu": None, "gpus": 0, "bf16": False, "memory_gb": None}


def hardware_defaults(hw: dict) -> dict:
    on_gpu = hw["device"] == "cuda"
    return {
        "bf16": hw["bf16"], "fp16": on_gpu and not hw["bf16"], "use_cpu": not on_gpu, "gradient_checkpointing": on_gpu,
        "use_liger_kernel": on_gpu and importlib.util.find_spec("liger_kernel") is not None,
        "report_to": ["trackio"], "logging_steps": 5, "save_steps": 100, "save_total_limit": 2,
        "hub_strategy": "checkpoint", "num_train_epochs": 1, "lr_scheduler_type": "cosine", "warmup_steps": 0.03,
        "per_device_train_batch_size": 4, "gradient_accumulation_steps": 4,
    } | method_defaults(on_gpu)


def method_defaults(on_gpu: bool) -> dict:
    return {"learning_rate": 5e-6, "max_length": 1024}


def count_parameters(model_name: str, revision: str | None) -> int:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    adapter = Path(model_name) / "adapter_config.json"
    if adapter.exists():  # count the base the adapter is merged into
        model_name, revision = json.loads(adapter.read_text())["base_model_name_or_path"], None
    config = AutoConfig.from_pretrained(model_name, revision=revision)
    with torch.device("meta"):
        try:
            model = AutoModelForCausalLM.from_config(config)
        except ValueError:
            model = AutoModelForImageTextToText.from_config(config)
    return sum(p.numel() for p in model.parameters())


def weights_dtype(training_args, peft_choice: str) -> str:
    """Full fine-tuning keeps fp32 master weights under bf16/fp16 autocast (16 bytes a parameter with AdamW); a
    LoRA base is frozen, so it is loaded in the compute dtype and only the adapters stay fp32."""
    if peft_choice == "none" or not (training_args.bf16 or training_args.fp16):
        return "float32"
    return "bfloat16" if training_args.bf16 else "float16"


def resolve_peft(run_args, model_args, n_params: int) -> str:
    choice = "lora" if model_args.use_peft and run_args.peft == "auto" else run_args.peft
    if choice == "auto":
        choice = "lora" if n_params > 3e9 else "none"
    if choice not in ("none", "lora", "qlora"):
        raise BadInput(f"--peft {choice!r} is unknown; use auto, none, lora or qlora.")
    model_args.use_peft = choice in ("lora", "qlora")
    model_args.load_in_4bit = choice == "qlora" or model_args.load_in_4bit
    if model_args.use_peft and not model_args.lora_target_modules:
        model_args.lora_target_modules = "all-linear"
    return choice


def launch_command(run_args, hw, n_params: int, full_finetune: bool) -> list[str] | None:
    """Several GPUs (or --num_processes) and no launcher yet: the launcher that starts one process per device. Full
    fine-tuning whose weights, gradients and AdamW states (~16 bytes a parameter) would fill more than 60% of one
    GPU is sharded with FSDP; everything else is plain DDP."""
    processes = run_args.num_processes or hw["gpus"]
    if processes <= 1 or "LOCAL_RANK" in os.environ:
        return None
    if hw["device"] == "cpu":
        return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes)]
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(processes)]
    if full_finetune and n_params * 16 > 0.6 * hw["memory_gb"] * 2**30:
        command += ["--use_fsdp", "--fsdp_sharding_strategy", "FULL_SHARD", "--fsdp_auto_wrap_policy",
                    "TRANSFORMER_BASED_WRAP", "--fsdp_state_dict_type", "FULL_STATE_DICT",
                    "--fsdp_cpu_ram_efficient_loading", "true", "--fsdp_sync_module_states", "true"]
    return command


def load_model(model_args, dtype: str):
    """A LoRA adapter directory or repo (e.g. an SFT output) is merged into its base; anything else stays a path."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    name = model_args.model_name_or_path
    try:
        adapter_config = (Path(name) / "adapter_config.json" if Path(name).is_dir()
                          else Path(hf_hub_download(name, "adapter_config.json", revision=model_args.model_revision)))
    except (EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError, OSError):
        return name
    if not adapter_config.exists():
        return name
    import torch
    from peft import AutoPeftModelForCausalLM

    print(f"{name} is a LoRA adapter: merging it into its base model first.", flush=True)
    return AutoPeftModelForCausalLM.from_pretrained(name, dtype=getattr(torch, dtype)).merge_and_unload()


def load_processing_class(name: str):
    from transformers import AutoProcessor, AutoTokenizer

    try:
        processor = AutoProcessor.from_pretrained(name)
        return processor if hasattr(processor, "image_processor") else AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError):
        return AutoTokenizer.from_pretrained(name)


# ---------------------------------------------------------------- run record, progress, hub


def utcnow() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_run_record(output_dir: str, record: dict):
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    target = Path(output_dir) / "run.json"
    previous = json.loads(target.read_text()) if target.exists() else {}
    for key in ("evaluations", "exports"):  # appended by eval_humaneval.py and convert_gguf.py
        record.setdefault(key, previous.get(key, []))
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str))
    os.replace(tmp, target)


def make_progress_callback():
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        """One machine-readable line per log step, which jobs.py reads for progress."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                line = {"step": state.global_step, "total_steps": state.max_steps, "epoch": state.epoch,
                        "time": round(time.time(), 3), **logs}
                print("[progress] " + json.dumps(line, default=float), flush=True)

    return ProgressCallback()


def push_with_retries(output_dir: str, repo_id: str, token: str | None, attempts: int = 4):
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    for attempt in range(1, attempts + 1):
        try:
            api.create_repo(repo_id, exist_ok=True)
            api.upload_folder(repo_id=repo_id, folder_path=output_dir, commit_message="End of training",
                              ignore_patterns=["checkpoint-*", "checkpoint-*/**", "_*", "hub-resume/**"])
            return
        except Exception as error:  # noqa: BLE001 - network, 5xx and rate limits are all worth another try
            status = getattr(getattr(error, "response", None), "status_code", None)
            if status in (401, 403) or attempt == attempts:
                raise
            wait = 2 ** attempt
            print(f"Push attempt {attempt} failed ({error}); retrying in {wait}s.", flush=True)
            time.sleep(wait)


def model_card(record: dict) -> str:
    repo = record.get("hub_repo") or record["output_dir"]
    final = record["metrics"]["final"]
    rows = "\n".join(f"| {key} | {value} |" for key, value in record["config"].items())
    metrics = "\n".join(f"| {key} | {value} |" for key, value in final.items())
    trackio = record["trackio"]
    if trackio.get("space"):
        trackio_line = f"[Trackio dashboard](https://huggingface.co/spaces/{trackio['space']})"
    elif trackio:
        trackio_line = f"Trackio project `{trackio['project']}`, run `{trackio['run']}` (local store)."
    else:
        trackio_line = "Not tracked."
    loader = "AutoPeftModelForCausalLM" if record["peft"] != "none" else "AutoModelForCausalLM"
    package = "peft" if record["peft"] != "none" else "transformers"
    return f"""---
base_model: {record['base_model']}
datasets:
- {record['dataset']['name']}
library_name: {package}
tags:
- trl
- {record['method']}
- hf-llm-trainer
---
# {repo.split('/')[-1]}

Fine-tuned from [{record['base_model']}](https://huggingface.co/{record['base_model']}) on
`{record['dataset']['name']}` with {record['method'].upper()} (TRL {record['versions'].get('trl')}), PEFT: {record['peft']}.

## Usage

```python
from {package} import {loader}
from transformers import AutoTokenizer

model = {loader}.from_pretrained("{repo}")
tokenizer = AutoTokenizer.from_pretrained("{repo}")
```

## Training hyperparameters

| Parameter | Value |
|---|---|
{rows}

## Final metrics

| Metric | Value |
|---|---|
{metrics}

## Tracking

{trackio_line}
"""


# ---------------------------------------------------------------- main


def build_parser():
    from trl import DPOConfig, ModelConfig, ScriptArguments, TrlParser

    return TrlParser((ScriptArguments, DPOConfig, ModelConfig, RunArguments))


def main():
    hw = hardware()
    parser = build_parser()
    parser.set_defaults(**hardware_defaults(hw), dtype=None)  # None: weights_dtype() decides
    try:
        script_args, training_args, model_args, run_args = parser.parse_args_and_config()
    except ValueError as error:  # unknown flags, invalid values: TrlParser raises rather than exiting
        raise BadInput(f"{str(error).splitlines()[0]}; see --help for the accepted flags.")

    import torch
    import transformers
    import trl
    from huggingface_hub import snapshot_download
    from transformers.trainer_utils import get_last_checkpoint
    from trl import DPOTrainer, get_peft_config, get_quantization_config

    if not script_args.dataset_name:
        raise BadInput("--dataset_name is required: a Hub dataset id, a local file or a directory.")
    if not model_args.model_name_or_path:
        raise BadInput("--model_name_or_path is required: a Hub model id or a local directory.")
    try:
        n_params = count_parameters(model_args.model_name_or_path, model_args.model_revision)
    except OSError as error:
        raise BadInput(f"Model {model_args.model_name_or_path!r} could not be found ({error.__class__.__name__}); "
                       "pass a Hub model id or a local directory with config.json.")
    peft_choice = resolve_peft(run_args, model_args, n_params)
    launcher = launch_command(run_args, hw, n_params, full_finetune=peft_choice == "none")
    if launcher:
        print(f"Launching: {' '.join(launcher)}", flush=True)
        sys.exit(subprocess.call(launcher + [sys.argv[0], *sys.argv[1:]]))

    dataset = load_rows(script_args.dataset_name, script_args.dataset_config, script_args.dataset_train_split)
    dataset = prepare_dataset(dataset, run_args)
    check_columns(dataset)
    eval_dataset = None
    if run_args.eval_ratio > 0:
        split = dataset.train_test_split(test_size=run_args.eval_ratio, seed=training_args.seed)
        dataset, eval_dataset = split["train"], split["test"]
        if training_args.eval_strategy == "no":
            training_args.eval_strategy, training_args.eval_steps = "steps", training_args.save_steps

    dataset_short = Path(script_args.dataset_name).stem.split("/")[-1]
    model_short = Path(model_args.model_name_or_path).name.lower()
    if training_args.output_dir in (None, "trainer_output"):
        training_args.output_dir = f"outputs/{model_short}-{dataset_short}-{METHOD}"
    if training_args.project == "huggingface":
        training_args.project = f"{model_short}-{dataset_short}"
    training_args.run_name = training_args.run_name or Path(training_args.output_dir).name
    if training_args.push_to_hub and not training_args.hub_model_id:
        from huggingface_hub import whoami

        training_args.hub_model_id = f"{whoami()['name']}/{Path(training_args.output_dir).name}"

    model_kwargs = dict(revision=model_args.model_revision, attn_implementation=model_args.attn_implementation,
                        dtype=model_args.dtype or weights_dtype(training_args, peft_choice))
    quantization = get_quantization_config(model_args)
    if quantization is not None:
        model_kwargs["quantization_config"] = quantization
    training_args.model_init_kwargs = {**(training_args.model_init_kwargs or {}), **model_kwargs}

    resume_from = None
    if run_args.resume_from_hub:
        if not training_args.hub_model_id:
            raise BadInput("--resume_from_hub needs --hub_model_id (the repo the interrupted run pushed to).")
        local = snapshot_download(training_args.hub_model_id, allow_patterns=["last-checkpoint/*"],
                                  local_dir=Path(training_args.output_dir) / "hub-resume")
        resume_from = str(Path(local) / "last-checkpoint")
        if not (Path(resume_from) / "trainer_state.json").exists():
            raise BadInput(f"{training_args.hub_model_id} has no last-checkpoint/ to resume from; start without "
                           "--resume_from_hub.")
    elif run_args.resume:
        resume_from = get_last_checkpoint(training_args.output_dir) if Path(training_args.output_dir).is_dir() else None
        if resume_from is None:
            print(f"No checkpoint in {training_args.output_dir}; starting from scratch.", flush=True)

    resolved = {key: getattr(training_args, key) for key in RESOLVED_KEYS if hasattr(training_args, key)}
    print(f"Resolved: device={hw['device']} gpu={hw['gpu']} gpus={hw['gpus']} params={n_params:,} peft={peft_choice} "
          + " ".join(f"{key}={value}" for key, value in resolved.items())
          + f" rows={len(dataset)} output={training_args.output_dir} "
          f"hub={training_args.hub_model_id if training_args.push_to_hub else None}", flush=True)

    model = load_model(model_args, model_kwargs["dtype"])
    trainer = DPOTrainer(
        model=model,
        args=training_args,
        processing_class=load_processing_class(model_args.model_name_or_path),
        train_dataset=dataset,
        eval_dataset=eval_dataset,
        peft_config=get_peft_config(model_args),
        callbacks=[make_progress_callback()],
    )

    record = {
        "schema": 1, "method": METHOD, "base_model": model_args.model_name_or_path, "status": "running",
        "dataset": {"name": script_args.dataset_name, "config": script_args.dataset_config,
                    "split": script_args.dataset_train_split, "mapping": parse_map(run_args.map),
                    "convert": run_args.convert, "rows": len(dataset),
                    "eval_rows": len(eval_dataset) if eval_dataset is not None else 0,
                    "eval_ratio": run_args.eval_ratio},
        "peft": peft_choice, "params": n_params,
        "config": {key: getattr(training_args, key) for key in RECORD_KEYS if hasattr(training_args, key)}
        | ({"lora_r": model_args.lora_r, "lora_alpha": model_args.lora_alpha,
            "lora_target_modules": model_args.lora_target_modules} if peft_choice != "none" else {}),
        "hardware": {**hw, "flavor": os.environ.get("HFLT_FLAVOR", "local"), "processes": trainer.args.world_size},
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "trl": trl.__version__},
        "job": {"id": os.environ.get("HFLT_JOB_ID"), "url": os.environ.get("HFLT_JOB_URL")},
        "trackio": {"project": training_args.project, "run": training_args.run_name,
                    "space": training_args.trackio_space_id} if "trackio" in training_args.report_to else {},
        "hub_repo": training_args.hub_model_id if training_args.push_to_hub else None,
        "output_dir": str(Path(training_args.output_dir).resolve()), "started_at": utcnow(), "resumed_from": resume_from,
    }
    if trainer.is_world_process_zero():
        write_run_record(training_args.output_dir, record | {"steps": {"done": 0, "total": None},
                                                              "metrics": {"final": {}, "best": {}}})
        print("[run] " + json.dumps({key: record[key] for key in ("method", "output_dir", "hub_repo", "trackio")}),
              flush=True)

    try:
        trainer.train(resume_from_checkpoint=resume_from)
    except torch.OutOfMemoryError:
        print("CUDA out of memory: halve --per_device_train_batch_size (double --gradient_accumulation_steps), "
              "shorten --max_length, use --peft lora/qlora, or a bigger flavor from plan.py.", flush=True)
        raise
    trainer.save_model(training_args.output_dir, _internal_call=True)  # we push below, with our card and retries
    if not trainer.is_world_process_zero():
        if hasattr(trainer, "end"):
            trainer.end()
        return

    history = trainer.state.log_history
    losses = [entry for entry in history if "loss" in entry]
    evals = [entry for entry in history if "eval_loss" in entry]
    final = {key: value for key, value in (losses[-1] if losses else {}).items() if key in ("loss", "learning_rate", "epoch")}
    if evals:
        final["eval_loss"] = evals[-1]["eval_loss"]
    record |= {
        "status": "completed", "finished_at": utcnow(), "log_history": history,
        "steps": {"done": trainer.state.global_step, "total": trainer.state.max_steps},
        "metrics": {"final": final, "first_loss": losses[0]["loss"] if losses else None,
                    "best": {"eval_loss": min(e["eval_loss"] for e in evals)} if evals else {}},
        "checkpoints": sorted(p.name for p in Path(training_args.output_dir).glob("checkpoint-*")),
    }
    if torch.cuda.is_available():
        record["hardware"]["peak_memory_gb"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
        record["hardware"]["peak_memory_allocated_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    write_run_record(training_args.output_dir, record)
    (Path(training_args.output_dir) / "README.md").write_text(model_card(record))
    shutil.rmtree(Path(training_args.output_dir) / "hub-resume", ignore_errors=True)
    print(f"Training completed: {record['steps']['done']} steps, final loss {final.get('loss')}. "
          f"Saved to {training_args.output_dir}.", flush=True)

    if training_args.push_to_hub:
        trainer._finish_current_push()
        try:
            push_with_retries(training_args.output_dir, training_args.hub_model_id, training_args.hub_token)
        except Exception as error:  # noqa: BLE001
            print(f"Push to {training_args.hub_model_id} failed: {error}. The model is kept in "
                  f"{training_args.output_dir}; push it with: hf upload {training_args.hub_model_id} "
                  f"{training_args.output_dir} . --exclude 'checkpoint-*/*'", flush=True)
            sys.exit(1)
        print(f"Pushed to https://huggingface.co/{training_args.hub_model_id}", flush=True)
    if hasattr(trainer, "end"):  # transformers >= 5.18: finish the trackers, destroy the process group
        trainer.end()


if __name__ == "__main__":
    try:
        main()
    except BadInput as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
