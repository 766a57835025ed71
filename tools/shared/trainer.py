"""The part of train_sft.py, train_dpo.py and train_grpo.py that is the same for every method: flags, hardware
defaults, the launcher for several GPUs or nodes, the run record, and the end of training (save, card, push)."""

import importlib.resources
import importlib.util
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from transformers import TrainerCallback

from .contamination import screen_contamination
from .data import check_chat_template, check_training_rows, drop_unfinished_rows, open_rows, parse_map, prepare_dataset
from .errors import BadInput, first_line
from .models import adapter_base, check_weights, merge_adapter, meta_model
from .recipes import default_learning_rate, default_peft, training_strategy
from .run_record import RUN_FILE, append_to_run, job_from_env, lockless, push_run, utcnow

# TRL's configs default gradient_checkpointing=True, which transformers reports as a deprecated name on every run.
warnings.filterwarnings("ignore", message="`gradient_checkpointing` is deprecated", category=FutureWarning)
RECORD_KEYS = ("num_train_epochs", "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps",
               "learning_rate", "weight_decay", "warmup_steps", "lr_scheduler_type", "max_length", "bf16", "fp16",
               "gradient_checkpointing", "packing", "padding_free", "use_liger_kernel", "assistant_only_loss",
               "completion_only_loss", "beta", "num_generations", "max_completion_length", "use_vllm",
               "eval_strategy", "eval_steps", "save_steps", "save_total_limit", "hub_strategy", "seed")


@dataclass
class RunArguments:
    map: str | None = field(default=None, metadata={"help": "Rename columns before training: 'new=old,...', e.g. "
                                                            "'chosen=good_response,rejected=bad_response'."})
    convert: str | None = field(default=None, metadata={"help": "Structural conversion: sharegpt, alpaca or gsm8k."})
    max_samples: int | None = field(default=None, metadata={"help": "Train on the first N rows only (quick test runs)."})
    drop_unfinished: bool = field(default=False, metadata={"help": "Leave out generations cut at the generator's "
                                                                   "limit (finish_reason 'length', or an assistant "
                                                                   "turn ending inside an unclosed <think>)."})
    drop_contaminated: bool = field(default=False, metadata={"help": "Leave out rows that share a 13-gram with a "
                                                                     "HumanEval problem (prompt or canonical "
                                                                     "solution); the count is in run.json either way."})
    eval_ratio: float = field(default=0.0, metadata={"help": "Hold out this share of rows for evaluation (0 = none)."})
    peft: str = field(default="auto", metadata={"help": "auto (LoRA above 3B parameters), none, lora or qlora."})
    strategy: str = field(default="auto", metadata={"help": "Several GPUs: auto (what plan.py decides: DDP while a "
                                                            "replica fits one GPU, else FSDP), ddp or fsdp."})
    resume: bool = field(default=False, metadata={"help": "Continue from the last checkpoint in --output_dir."})
    resume_from_hub: bool = field(default=False, metadata={"help": "Fetch the last checkpoint pushed to the output "
                                                                   "repo (--hub_model_id) and continue from it."})
    num_processes: int | None = field(default=None, metadata={"help": "Processes to launch per node (default: one "
                                                                       "per GPU)."})


@dataclass(frozen=True)
class Run:
    """What a run resolved before training: the parsed flags and the decisions taken for them. `resolve_run` takes
    the decisions without touching the flags; `apply_decisions` is the one place that writes them into TRL's
    argument objects."""
    method: str
    script_args: object  # TRL's ScriptArguments
    training_args: object  # the method's TRL config (SFTConfig, DPOConfig, GRPOConfig)
    model_args: object  # TRL's ModelConfig
    run_args: RunArguments
    method_args: tuple  # a trainer's own argument dataclasses, after the four every trainer parses
    hardware: dict
    params: int
    model_config: object  # the base model's transformers config
    peft: str
    strategy: str
    learning_rate: float
    learning_rate_reason: str
    dtype: str
    output_dir: str
    project: str
    run_name: str
    hub_model_id: str | None
    eval_strategy: str
    eval_steps: float | None
    launcher: tuple[str, ...] | None  # the multi-process launch this process must hand over to, if any
    resume_from: str | None = None  # set by main once the output directory is held
    notes: dict = field(default_factory=dict)  # method decisions for the Resolved line and run.json


def hardware() -> dict:
    import torch

    nodes = int(os.environ.get("HFLT_NUM_NODES", "1"))
    if torch.cuda.is_available():
        return {"device": "cuda", "gpu": torch.cuda.get_device_name(0), "gpus": torch.cuda.device_count(),
                "bf16": torch.cuda.is_bf16_supported(), "nodes": nodes,
                "memory_gb": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)}
    return {"device": "cpu", "gpu": None, "gpus": 0, "bf16": False, "memory_gb": None, "nodes": nodes}


def hardware_defaults(hw: dict) -> dict:
    on_gpu = hw["device"] == "cuda"
    return {"bf16": hw["bf16"], "fp16": on_gpu and not hw["bf16"], "use_cpu": not on_gpu,
            "gradient_checkpointing": on_gpu,
            "use_liger_kernel": on_gpu and importlib.util.find_spec("liger_kernel") is not None,
            "report_to": ["trackio"], "trackio_static_space_id": False,  # no Space unless one is named
            "logging_steps": 5, "save_steps": 100, "save_total_limit": 2,
            "hub_strategy": "checkpoint", "num_train_epochs": 1, "lr_scheduler_type": "cosine", "warmup_steps": 0.03,
            "per_device_train_batch_size": 4, "gradient_accumulation_steps": 4,
            "learning_rate": None, "dtype": None}  # None: decided after parsing, from the method and PEFT choice


def weights_dtype(training_args, peft: str) -> str:
    """Full fine-tuning keeps fp32 master weights under bf16/fp16 autocast (16 bytes a parameter with AdamW); a
    LoRA base is frozen, so it is loaded in the compute dtype and only the adapters stay fp32."""
    if peft == "none" or not (training_args.bf16 or training_args.fp16):
        return "float32"
    return "bfloat16" if training_args.bf16 else "float16"


def resolve_peft(run_args, model_args, n_params: int, hw: dict) -> str:
    choice = "lora" if model_args.use_peft and run_args.peft == "auto" else run_args.peft
    if choice == "auto":
        choice = default_peft(n_params)
    if choice not in ("none", "lora", "qlora"):
        raise BadInput(f"--peft {choice!r} is unknown; use auto, none, lora or qlora.")
    if choice == "qlora" and adapter_base(model_args.model_name_or_path, model_args.model_revision):
        raise BadInput(f"--peft qlora cannot start from the LoRA adapter {model_args.model_name_or_path}: it is merged "
                       "into its base in 16 bit first; use --peft lora, or QLoRA from the base model.")
    if choice == "qlora" and (hw["device"] != "cuda" or importlib.util.find_spec("bitsandbytes") is None):
        raise BadInput("--peft qlora needs a CUDA GPU with bitsandbytes installed; use --peft lora here, or run on a "
                       "GPU flavor.")
    return choice


def resolve_strategy(run_args, hw: dict, n_params: int, peft: str) -> str:
    if run_args.strategy not in ("auto", "ddp", "fsdp"):
        raise BadInput(f"--strategy {run_args.strategy!r} is unknown; use auto, ddp or fsdp.")
    gpus = (run_args.num_processes or max(hw["gpus"], 1)) * hw["nodes"]  # processes: one a device, CPU too
    if gpus <= 1:
        return "single"
    if run_args.strategy != "auto":
        return run_args.strategy
    return training_strategy(n_params, peft, gpus, hw["memory_gb"] or 0.0) if hw["device"] == "cuda" else "ddp"


RENDEZVOUS_TIMEOUT_S = 1800


def launch_command(run_args, hw: dict, strategy: str) -> list[str] | None:
    """Several GPUs, several nodes or --num_processes, and not launched yet: the launcher that starts one process
    per device on each node. Nodes of a jobs.py group learn their rank and the main node from the environment."""
    nodes = hw["nodes"]
    processes = run_args.num_processes or max(hw["gpus"], 1)
    if (processes <= 1 and nodes <= 1) or "LOCAL_RANK" in os.environ:
        return None
    rank, port = os.environ.get("HFLT_NODE_RANK", "0"), os.environ.get("HFLT_MAIN_PORT", "29500")
    address = os.environ.get("HFLT_MAIN_ADDRESS") or os.environ.get("HF_NETWORK_GROUP_PREFIX", "") + "main"
    # Members of a group start when their machines do, minutes apart: each waits this long for all to join
    # (torch's static rendezvous; the others retry connecting to the main node until it listens).
    rendezvous = f"timeout={RENDEZVOUS_TIMEOUT_S}"
    if hw["device"] == "cpu":  # accelerate has no multi-process CPU launch with FSDP; plain torch.distributed
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes)]
        if nodes > 1:
            command += ["--nnodes", str(nodes), "--node_rank", rank, "--master_addr", address, "--master_port", port,
                        "--rdzv_conf", rendezvous]
        return command
    config = "fsdp2.yaml" if strategy == "fsdp" else "multi_gpu.yaml"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(importlib.resources.files("trl") / "accelerate_configs" / config),
               "--num_processes", str(processes * nodes), "--num_machines", str(nodes),
               "--mixed_precision", "bf16" if hw["bf16"] else "fp16"]
    if nodes > 1:
        command += ["--machine_rank", rank, "--main_process_ip", address, "--main_process_port", port,
                    "--rdzv_conf", rendezvous]
    return command


class ProgressCallback(TrainerCallback):
    """One machine-readable line per log step, which jobs.py reads for progress."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            line = {"step": state.global_step, "total_steps": state.max_steps, "epoch": state.epoch,
                    "time": round(time.time(), 3), **logs}
            print("[progress] " + json.dumps(line, default=float), flush=True)


def parse_flags(parser) -> tuple:
    """The flags as TRL's parser reads them (command line and --config YAML), checked before anything loads."""
    def refuse(message: str):  # argparse would print its usage block and exit; one sentence is enough
        raise BadInput(f"{message}; see --help for the accepted flags.")

    parser.error = refuse
    import yaml

    try:
        script_args, training_args, model_args, run_args, *method_args = parser.parse_args_and_config()
    except ValueError as error:  # unknown flags, invalid values: TrlParser raises rather than exiting
        raise BadInput(f"{first_line(error)}; see --help for the accepted flags.")
    except (OSError, yaml.YAMLError) as error:
        raise BadInput(f"The --config file could not be read ({first_line(error)}); pass a YAML file of "
                       "flag: value lines.")
    check_numbers(training_args)
    check_repo_id(training_args.hub_model_id, "--hub_model_id")
    if not script_args.dataset_name:
        raise BadInput("--dataset_name is required: a Hub dataset id, a local file or a directory.")
    if not model_args.model_name_or_path:
        raise BadInput("--model_name_or_path is required: a Hub model id or a local directory.")
    if training_args.hub_token:
        raise BadInput("--hub_token is refused: a token travels only as HF_TOKEN, the stored login (`hf auth login`) "
                       "or a job secret, so it never lands in saved arguments or logs.")
    if Path(training_args.output_dir).is_file():
        raise BadInput(f"--output_dir {training_args.output_dir} is a file; pass a directory.")
    for flag in ("max_samples", "num_processes"):
        if getattr(run_args, flag) is not None and getattr(run_args, flag) < 1:
            raise BadInput(f"--{flag} must be at least 1.")
    if not 0 <= run_args.eval_ratio < 1:
        raise BadInput("--eval_ratio must be in [0, 1), e.g. 0.05.")
    return script_args, training_args, model_args, run_args, tuple(method_args)


def resolve_run(flags: tuple, method: str, hw: dict) -> Run:
    """Every decision that does not need the data, from the flags and the model's architecture: PEFT, learning
    rate, strategy, dtype, output names, evaluation schedule and the multi-process launch. Nothing is changed."""
    script_args, training_args, model_args, run_args, method_args = flags
    architecture = meta_model(model_args.model_name_or_path, model_args.model_revision)
    n_params = sum(p.numel() for p in architecture.parameters())
    peft = resolve_peft(run_args, model_args, n_params, hw)
    check_weights(model_args.model_name_or_path)
    learning_rate, reason = training_args.learning_rate, "given"
    if learning_rate is None:
        learning_rate, reason = default_learning_rate(method, peft)
    if "LOCAL_RANK" not in os.environ:  # once a machine, before its processes are launched
        check_push_access(training_args)
    output_dir, project, run_name, hub_model_id = output_names(script_args, training_args, model_args, method)
    evaluates = run_args.eval_ratio > 0 and training_args.eval_strategy == "no"
    strategy = resolve_strategy(run_args, hw, n_params, peft)
    launcher = launch_command(run_args, hw, strategy)
    return Run(method, script_args, training_args, model_args, run_args, method_args, hw, n_params,
               architecture.config, peft, strategy, learning_rate, reason,
               model_args.dtype or weights_dtype(training_args, peft), output_dir, project, run_name, hub_model_id,
               "steps" if evaluates else training_args.eval_strategy,
               training_args.eval_steps or training_args.save_steps if evaluates else training_args.eval_steps,
               tuple(launcher) if launcher else None)


def apply_decisions(run: Run):
    """Writes the run's decisions into TRL's argument objects, which the trainer reads."""
    args, model_args = run.training_args, run.model_args
    args.learning_rate, args.output_dir, args.project, args.run_name = (run.learning_rate, run.output_dir,
                                                                         run.project, run.run_name)
    args.hub_model_id, args.eval_strategy, args.eval_steps = run.hub_model_id, run.eval_strategy, run.eval_steps
    model_args.use_peft = run.peft in ("lora", "qlora")
    model_args.load_in_4bit = run.peft == "qlora" or model_args.load_in_4bit
    if model_args.use_peft and not model_args.lora_target_modules:
        model_args.lora_target_modules = "all-linear"
    if run.strategy == "fsdp" and run.peft == "qlora":  # FSDP shards tensors of one dtype: store the 4-bit weights
        model_args.bnb_4bit_quant_storage = "bfloat16" if run.hardware["bf16"] else "float16"
    model_args.dtype = run.dtype


def claim_output_dir(run: Run):
    """The machine's launching process holds the output directory for the processes it starts (main node only)."""
    if "LOCAL_RANK" not in os.environ and os.environ.get("HFLT_NODE_RANK", "0") == "0":
        hold_output_dir(run.output_dir)


def relaunch(run: Run) -> int:
    """Runs this same command under the multi-process launcher and returns its exit code."""
    print(f"Launching ({run.strategy}): {' '.join(run.launcher)}", flush=True)
    return subprocess.call([*run.launcher, sys.argv[0], *sys.argv[1:]])


def say_where_it_runs(hw: dict):
    """A GPU flavor whose container sees no CUDA device trains on CPU for hours: say so first, where `jobs.py
    status` finds it."""
    flavor = os.environ.get("HFLT_FLAVOR", "local")
    if hw["device"] != "cuda" and flavor not in ("local", "") and not flavor.startswith("cpu") \
            and "LOCAL_RANK" not in os.environ:
        print(f"[hardware] no CUDA device found on a GPU flavor ({flavor}): training runs on CPU", flush=True)


POSITIVE_FLAGS = ("learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps", "max_length",
                  "max_prompt_length", "max_completion_length", "num_generations", "save_steps", "logging_steps",
                  "eval_steps")


def check_repo_id(repo: str | None, flag: str):
    """A repo id the Hub would refuse, found before the model and data load rather than at the first push."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        if repo is not None:
            validate_repo_id(repo)
    except HFValidationError:
        raise BadInput(f"{flag} {repo!r} is not a Hub repo id; use user/name (letters, digits, '-', '_', '.').")


def check_numbers(training_args):
    """Numbers the Trainer would take and fail on, or silently misuse, after the GPU is paid for."""
    for flag in POSITIVE_FLAGS:
        value = getattr(training_args, flag, None)
        if value is not None and not 0 < value < float("inf"):
            raise BadInput(f"--{flag} must be a positive number, got {value}.")
    if getattr(training_args, "beta", 0) < 0:
        raise BadInput(f"--beta must be at least 0, got {training_args.beta}.")
    if training_args.max_steps <= 0 and not 0 < training_args.num_train_epochs < float("inf"):
        raise BadInput(f"--num_train_epochs must be positive, got {training_args.num_train_epochs} (or pass "
                       "--max_steps).")


def check_push_access(args):
    """A run that pushes must be able to before it trains: a token, and a Hub that answers."""
    from huggingface_hub import HfApi, get_token

    if not args.push_to_hub:
        return
    if not get_token():
        raise BadInput("--push_to_hub needs a Hugging Face token with write access: set HF_TOKEN or run `hf auth "
                       "login` (on HF Jobs, jobs.py passes it as a secret).")
    try:
        HfApi().whoami()
    except Exception as error:  # noqa: BLE001 - offline, unreachable, refused: the same sentence and fix
        reason = first_line(error)[:200]
        raise BadInput(f"--push_to_hub cannot reach the Hub with this token ({reason}); check HF_TOKEN and the "
                       "network (HF_HUB_OFFLINE unset), or train without --push_to_hub.")


def output_names(script_args, training_args, model_args, method: str) -> tuple[str, str, str, str | None]:
    """Output directory, Trackio project, run name and Hub repo: given, or named after the model and dataset."""
    dataset_short = Path(script_args.dataset_name).stem.split("/")[-1]
    model_short = Path(model_args.model_name_or_path).name.lower()
    output_dir = training_args.output_dir
    if output_dir in (None, "trainer_output"):
        output_dir = f"outputs/{model_short}-{dataset_short}-{method}"
    project = training_args.project
    if project == "huggingface":
        project = f"{model_short}-{dataset_short}"
    hub_model_id = training_args.hub_model_id
    if training_args.push_to_hub and not hub_model_id:
        from huggingface_hub import whoami

        hub_model_id = f"{whoami()['name']}/{Path(output_dir).name}"
    return output_dir, project, training_args.run_name or Path(output_dir).name, hub_model_id


RUN_LOCK = ".hflt-run.lock"


def hold_output_dir(output_dir: str):
    """A local output directory belongs to one live run: the run holds an exclusive lock on a file in it for the
    whole process (the kernel lets go when the process ends, on a crash too), and a second run into it is refused
    before anything loads. On a normal exit the lock file goes, and the directory too when this run made it and
    left nothing in it (a refused run leaves nothing behind)."""
    import atexit
    import fcntl

    directory = Path(output_dir)
    created = not directory.exists()
    path = directory / RUN_LOCK
    while True:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise BadInput(f"--output_dir {output_dir} cannot be written ({error.strerror}); pass a directory you "
                           "can write to.")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise BadInput(f"--output_dir {output_dir} is in use by another run (process {holder}); wait for it to "
                           "end, or pass another --output_dir.")
        except OSError as error:
            if not lockless(error):
                raise
            os.close(fd)
            os.unlink(path)
            print(f"warning: {output_dir} is on a filesystem without file locks: a second run into it would not be "
                  "refused.", file=sys.stderr, flush=True)
            return
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:  # its holder ended and removed it between the open and the lock
            pass
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())

    def release():
        try:
            os.unlink(path)  # while holding it: a run that opened this file meanwhile sees it gone and opens anew
            if created and not any(directory.iterdir()):
                directory.rmdir()
        except OSError:  # the directory was moved or removed meanwhile: nothing left to tidy
            pass
        os.close(fd)

    atexit.register(release)


def safetensors_problem(file: Path) -> str | None:
    """Why a safetensors file is not whole (a save cut short), or None: its header parses and the file is as long
    as the header says."""
    size = file.stat().st_size
    with open(file, "rb") as f:
        prefix = f.read(8)
        length = int.from_bytes(prefix, "little") if len(prefix) == 8 else None
        if length is None or length > size - 8:
            return "is cut short inside its header"
        try:
            header = json.loads(f.read(length))
            end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"),
                      default=0)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError):
            return "has an unreadable header"
    if 8 + length + end != size:
        return f"has {size} bytes where its header describes {8 + length + end}"
    return None


def checkpoint_problem(checkpoint: Path) -> str | None:
    """Why a checkpoint cannot be resumed from, or None when it is complete: its trainer state parses, its weights
    are whole (safetensors headers and sizes, the shards an index names) and its torch files (optimizer, scheduler,
    RNG states) are whole archives."""
    import zipfile

    state = checkpoint / "trainer_state.json"
    if not state.is_file():
        return "trainer_state.json is missing"
    try:
        json.loads(state.read_text())
    except (ValueError, UnicodeDecodeError):
        return "trainer_state.json is not valid JSON"
    weights = sorted(checkpoint.glob("*.safetensors"))
    if not weights and not any(checkpoint.glob("*.bin")) and not any(checkpoint.glob("pytorch_model_fsdp_*")):
        return "it has no weights"
    for index in checkpoint.glob("*.index.json"):
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (ValueError, KeyError, AttributeError, TypeError):
            return f"{index.name} is not a valid weight index"
        missing = sorted(shard for shard in shards if not (checkpoint / shard).is_file())
        if missing:
            return f"the shard {missing[0]} that {index.name} names is missing"
    for file in weights:
        problem = safetensors_problem(file)
        if problem:
            return f"{file.name} {problem}"
    for file in sorted([*checkpoint.glob("*.pt"), *checkpoint.glob("*.pth"), *checkpoint.glob("*.bin")]):
        if file.is_file() and not zipfile.is_zipfile(file):  # torch.save writes zip archives: a cut one has no end
            return f"{file.name} is cut short"
    return None


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The newest checkpoint-N in `output_dir` that is complete; each newer one that is not is named on stderr."""
    def step(path: Path) -> int:
        return int(path.name.split("-", 1)[1])

    checkpoints = [p for p in Path(output_dir).glob("checkpoint-*") if p.is_dir() and p.name[11:].isdigit()]
    for checkpoint in sorted(checkpoints, key=step, reverse=True):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            return str(checkpoint)
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"Skipping {checkpoint.name}: {problem} (a save cut short); trying the checkpoint before it.",
                  file=sys.stderr, flush=True)
    return None


def resume_point(run: Run) -> str | None:
    """The checkpoint --resume or --resume_from_hub continues from (None: from scratch)."""
    from huggingface_hub import snapshot_download

    args = run.training_args
    if run.run_args.resume_from_hub:
        if not args.hub_model_id:
            raise BadInput("--resume_from_hub needs --hub_model_id (the repo the interrupted run pushed to).")
        local = snapshot_download(args.hub_model_id, allow_patterns=["last-checkpoint/*"],
                                  local_dir=Path(args.output_dir) / "hub-resume")
        checkpoint = Path(local) / "last-checkpoint"
        problem = checkpoint_problem(checkpoint) if checkpoint.is_dir() else "missing"
        if problem:
            shutil.rmtree(local, ignore_errors=True)
        if not checkpoint.is_dir():
            raise BadInput(f"{args.hub_model_id} has no last-checkpoint/ to resume from; start without "
                           "--resume_from_hub.")
        if problem:
            raise BadInput(f"last-checkpoint/ in {args.hub_model_id} is incomplete ({problem}); resume from a local "
                           "checkpoint with --resume, or start without --resume_from_hub.")
        return str(checkpoint)
    if run.run_args.resume:
        checkpoint = last_complete_checkpoint(args.output_dir) if Path(args.output_dir).is_dir() else None
        if checkpoint is None:
            print(f"No complete checkpoint in {args.output_dir}; starting from scratch.", flush=True)
        return checkpoint
    return None


def load_training_data(run: Run, processor, reward_columns: tuple[str, ...] = ()):
    """The training rows after the fixes, --map/--convert/--max_samples, checked for the method as
    validate_dataset.py checks them; the held-out rows; and the HumanEval contamination figure for run.json."""
    dataset, _ = open_rows(run.script_args.dataset_name, run.script_args.dataset_config,
                           run.script_args.dataset_train_split)
    if run.run_args.drop_unfinished:
        kept = drop_unfinished_rows(dataset)
        print(f"--drop_unfinished: {len(dataset) - len(kept):,} of {len(dataset):,} rows left out (generations cut "
              "at the generator's limit).", flush=True)
        dataset = kept
    dataset, contamination = screen_contamination(dataset, run.run_args.drop_contaminated)
    dataset = prepare_dataset(dataset, run.run_args.map, run.run_args.convert, run.run_args.max_samples)
    dataset = check_training_rows(dataset, run.method, reward_columns)
    if "input_ids" not in dataset.column_names:
        template = (getattr(run.training_args, "chat_template_path", None) or processor.chat_template
                    or getattr(getattr(processor, "tokenizer", None), "chat_template", None))
        check_chat_template(dataset, run.method, run.model_args.model_name_or_path, template is not None)
    if run.run_args.eval_ratio == 0:
        return dataset, None, contamination
    split = dataset.train_test_split(test_size=run.run_args.eval_ratio, seed=run.training_args.seed)
    return split["train"], split["test"], contamination


def load_tokenizer(model_args):
    """The model's own processor (an adapter saved by a trainer carries it, with its template and pad token), else
    the adapter's base model's."""
    from transformers import AutoProcessor, AutoTokenizer

    path = model_args.model_name_or_path
    base = adapter_base(path, model_args.model_revision)
    for name, revision in [(path, model_args.model_revision)] + ([(base, None)] if base else []):
        for auto in (AutoProcessor, AutoTokenizer):
            try:
                processor = auto.from_pretrained(name, revision=revision)
            except (OSError, ValueError, KeyError):
                continue
            return processor if hasattr(processor, "image_processor") else AutoTokenizer.from_pretrained(
                name, revision=revision)
    raise BadInput(f"No tokenizer found in {path} or its base model; save the tokenizer beside the weights.")



def load_model(run: Run):
    """The model name for the trainer to load, or the merged model when the base is a LoRA adapter (an SFT output
    trained further with DPO, say)."""
    from trl import get_quantization_config

    kwargs = dict(revision=run.model_args.model_revision, attn_implementation=run.model_args.attn_implementation,
                  dtype=run.model_args.dtype)
    quantization = get_quantization_config(run.model_args)
    if quantization is not None:
        kwargs["quantization_config"] = quantization
    run.training_args.model_init_kwargs = {**(run.training_args.model_init_kwargs or {}), **kwargs}
    name = run.model_args.model_name_or_path
    if adapter_base(name, run.model_args.model_revision) is None:
        return name
    import torch

    print(f"{name} is a LoRA adapter: merging it into its base model first.", flush=True)
    return merge_adapter(name, getattr(torch, run.model_args.dtype), revision=run.model_args.model_revision)


def starting_record(run: Run, dataset, eval_dataset) -> dict:
    """What run.json says when training starts."""
    import torch
    import transformers
    import trl

    args = run.training_args
    return {
        "schema": 1, "method": run.method, "base_model": run.model_args.model_name_or_path, "status": "running",
        "dataset": {"name": run.script_args.dataset_name, "config": run.script_args.dataset_config,
                    "split": run.script_args.dataset_train_split, "mapping": parse_map(run.run_args.map),
                    "convert": run.run_args.convert, "max_samples": run.run_args.max_samples, "rows": len(dataset),
                    "eval_rows": len(eval_dataset) if eval_dataset is not None else 0,
                    "eval_ratio": run.run_args.eval_ratio},
        "peft": run.peft, "params": run.params, "learning_rate_reason": run.learning_rate_reason, **run.notes,
        "config": {key: getattr(args, key) for key in RECORD_KEYS if hasattr(args, key)}
        | ({"lora_r": run.model_args.lora_r, "lora_alpha": run.model_args.lora_alpha,
            "lora_target_modules": run.model_args.lora_target_modules} if run.peft != "none" else {}),
        "hardware": {**run.hardware, "flavor": os.environ.get("HFLT_FLAVOR", "local"), "strategy": run.strategy,
                     "world_size": args.world_size, "processes_per_node": args.world_size // run.hardware["nodes"]},
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "trl": trl.__version__},
        "job": job_from_env(),
        "trackio": {"project": args.project, "run": args.run_name, "space": args.trackio_space_id}
        if "trackio" in args.report_to else {},
        "hub_repo": args.hub_model_id if args.push_to_hub else None,
        "output_dir": str(Path(args.output_dir).resolve()), "started_at": utcnow(), "resumed_from": run.resume_from,
        "steps": {"done": 0, "total": None}, "metrics": {"final": {}, "best": {}},
        "finished_at": None, "error": None,  # a resumed run clears what a failed attempt left
    }


def print_resolved(run: Run, dataset):
    args = run.training_args
    keys = ("bf16", "fp16", "gradient_checkpointing", "packing", "padding_free", "use_liger_kernel", "max_length",
            "num_generations", "max_completion_length", "use_vllm", "per_device_train_batch_size",
            "gradient_accumulation_steps", "learning_rate")
    print(f"Resolved: device={run.hardware['device']} gpu={run.hardware['gpu']} gpus={run.hardware['gpus']} "
          f"nodes={run.hardware['nodes']} strategy={run.strategy} params={run.params:,} peft={run.peft} "
          + " ".join(f"{key}={getattr(args, key)}" for key in keys if hasattr(args, key))
          + f" ({run.learning_rate_reason}) "
          + " ".join(f"{key}={value}" for key, value in run.notes.items() if not isinstance(value, dict))
          + f" rows={len(dataset)} output={args.output_dir} hub={args.hub_model_id if args.push_to_hub else None}",
          flush=True)


def final_metrics(history: list[dict]) -> dict:
    losses = [entry for entry in history if "loss" in entry]
    evals = [entry for entry in history if "eval_loss" in entry]
    rewards = [entry["reward"] for entry in history if "reward" in entry]
    final = {key: value for key, value in (losses[-1] if losses else {}).items() if key in ("loss", "learning_rate", "epoch")}
    if evals:
        final["eval_loss"] = evals[-1]["eval_loss"]
    if rewards:
        final["reward"] = rewards[-1]
    if history and "train_loss" in history[-1]:  # the Trainer's mean over the run, there when no step logged a loss
        final["train_loss"] = history[-1]["train_loss"]
    return {"final": final, "first_loss": losses[0]["loss"] if losses else None,
            "best": {"eval_loss": min(e["eval_loss"] for e in evals)} if evals else {}}


def card_sections(record: dict) -> str:
    """What we add to TRL's model card: the hyperparameters, the metrics and where the run happened."""
    rows = "\n".join(f"| {key} | {value} |" for key, value in record["config"].items())
    metrics = "\n".join(f"| {key} | {value} |" for key, value in record["metrics"]["final"].items())
    job = record["job"]
    where = f"[{job['id']}]({job['url']})" if job.get("url") else "a local run"
    return (f"\n## Training record (hf-llm-trainer)\n\n{record['method'].upper()} on `{record['dataset']['name']}` "
            f"({record['dataset']['rows']} rows), PEFT: {record['peft']}, {record['hardware']['world_size']} "
            f"process(es) on {record['hardware']['flavor']}, job: {where}. The full record is in `run.json`.\n\n"
            f"| Parameter | Value |\n|---|---|\n{rows}\n\n| Final metric | Value |\n|---|---|\n{metrics}\n")


def add_training_record(output_dir: str, record: dict) -> Path:
    readme = Path(output_dir) / "README.md"
    if readme.exists() and "## Training record (hf-llm-trainer)" not in readme.read_text():
        readme.write_text(readme.read_text() + card_sections(record))
    return readme


def merge_record_on_push(output_dir: str):
    """The Trainer uploads the output directory at each checkpoint and at the end, and run.json with it: that upload
    would replace what evaluations and exports appended to the repo's record meanwhile. Its uploads of the output
    directory leave run.json (and the lock files) out; after each, push_run merges the repo's record with the local
    one and commits it on the parent it read."""
    import transformers
    import transformers.trainer
    from huggingface_hub import HfApi

    folder = Path(output_dir).resolve()

    class RecordMergingApi(HfApi):
        def upload_folder(self, *, folder_path, run_as_future: bool = False, **kwargs):
            if Path(folder_path).resolve() != folder:
                return super().upload_folder(folder_path=folder_path, run_as_future=run_as_future, **kwargs)
            if run_as_future:  # the Trainer's checkpoint pushes: in its background thread, record after upload
                return self.run_as_future(self.upload_with_record, folder_path, kwargs)
            return self.upload_with_record(folder_path, kwargs)

        def upload_with_record(self, folder_path, kwargs: dict):
            ignore = [*(kwargs.pop("ignore_patterns", None) or []), RUN_FILE, f".{RUN_FILE}*", RUN_LOCK]
            info = super().upload_folder(folder_path=folder_path, ignore_patterns=ignore, **kwargs)
            push_run(folder_path, kwargs["repo_id"], f"{kwargs.get('commit_message') or 'Upload'}: run.json",
                     revision=kwargs.get("revision"))
            return info

    api = RecordMergingApi(library_name="transformers", library_version=transformers.__version__)
    transformers.trainer.hf_api = lambda: api


def guard_tracking(trainer):
    """A tracker (Trackio or any other report_to integration) that fails to start or to log must not end a paid run:
    it warns once, says why in a [tracking] line that `jobs.py status` shows, and training goes on without it.
    Trackio keeps what fails after its start to itself (its logging thread warns and goes on): its first warning is
    reported the same way."""
    from transformers.integrations import get_reporting_integration_callbacks

    trackers = tuple(get_reporting_integration_callbacks(trainer.args.report_to))
    events = [name for name in vars(TrainerCallback) if name.startswith("on_")]
    for callback in trainer.callback_handler.callbacks:
        if trackers and isinstance(callback, trackers):
            for event in events:
                setattr(callback, event, tracker_event(callback, getattr(callback, event)))
            if type(callback).__name__ == "TrackioCallback":
                report_trackio_warnings(callback)


def report_trackio_warnings(callback):
    """A UserWarning raised in the trackio package says the run's metrics are not reaching the Hub; the tracker stays
    on, in case it recovers."""
    show = warnings.showwarning

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if category is UserWarning and f"{os.sep}trackio{os.sep}" in filename and not hasattr(callback, "warned"):
            callback.warned = True
            say_tracking_unavailable(f"Trackio: {first_line(message)[:300]}")
        show(message, category, filename, lineno, file, line)

    warnings.showwarning = showwarning


def say_tracking_unavailable(reason: str):
    print(f"warning: tracking unavailable ({reason}); training goes on and the loss stays in the logs. Pass "
          "--report_to none to train without it.", file=sys.stderr, flush=True)
    print("[tracking] " + json.dumps({"unavailable": reason}), flush=True)


def tracker_event(callback, event):
    def call(*args, **kwargs):
        if getattr(callback, "unavailable", None):
            return None
        try:
            return event(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - whatever the tracker raised, the loss is still in the logs
            callback.unavailable = f"{type(callback).__name__.removesuffix('Callback')}: {first_line(error)[:300]}"
            say_tracking_unavailable(callback.unavailable)
    return call


def train_and_save(run: Run, trainer, dataset, eval_dataset):
    """Trains, then saves the model with run.json and TRL's model card (extended with ours), pushing them when
    --push_to_hub. A push that fails keeps everything local and prints the command that finishes it."""
    import torch
    from huggingface_hub import HfApi, constants

    args = run.training_args
    output = Path(args.output_dir)
    record = starting_record(run, dataset, eval_dataset)
    if trainer.is_world_process_zero():
        append_to_run(output, fields=record, create=True)
        print("[run] " + json.dumps({key: record[key] for key in ("method", "output_dir", "hub_repo", "trackio", "job")}),
              flush=True)
    if args.push_to_hub:
        merge_record_on_push(args.output_dir)
    guard_tracking(trainer)
    try:
        trainer.train(resume_from_checkpoint=run.resume_from)
    except BaseException as error:  # the record says the run ended, and how (in the repo too, when it can)
        if trainer.is_world_process_zero():
            append_to_run(output, fields={"status": "failed", "finished_at": utcnow(),
                                          "error": f"{error.__class__.__name__}: {error}"[:500]})
            if args.push_to_hub:
                try:
                    push_run(output, args.hub_model_id, "Training failed: run.json", revision=args.hub_revision)
                except Exception:  # noqa: BLE001 - the local record says it; the error below is what matters
                    pass
        if isinstance(error, torch.OutOfMemoryError):
            print("CUDA out of memory: halve --per_device_train_batch_size (double --gradient_accumulation_steps), "
                  "shorten --max_length, use --peft lora/qlora, or a bigger flavor from plan.py.", flush=True)
        raise
    record |= {"status": "completed", "finished_at": utcnow(), "log_history": trainer.state.log_history,
               "steps": {"done": trainer.state.global_step, "total": trainer.state.max_steps},
               "metrics": final_metrics(trainer.state.log_history),
               "checkpoints": sorted(p.name for p in Path(args.output_dir).glob("checkpoint-*"))}
    if torch.cuda.is_available():
        record["hardware"]["peak_memory_gb"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
        record["hardware"]["peak_memory_allocated_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    if trainer.is_world_process_zero():
        record = append_to_run(output, fields=record)
        shutil.rmtree(Path(args.output_dir) / "hub-resume", ignore_errors=True)
    card = dict(dataset_name=None if Path(run.script_args.dataset_name).exists() else run.script_args.dataset_name,
                tags=[run.method, "hf-llm-trainer"])
    try:
        if args.push_to_hub:  # saves, writes TRL's card, waits for the checkpoint pushes, uploads the folder
            trainer.push_to_hub(commit_message="End of training", **card)
        else:
            trainer.save_model(args.output_dir)
            trainer.create_model_card(**card)
        if trainer.is_world_process_zero():
            readme = add_training_record(args.output_dir, record)
            if args.push_to_hub:
                HfApi().upload_file(path_or_fileobj=readme, path_in_repo="README.md", repo_id=args.hub_model_id,
                                    commit_message="Training record in the model card")
    except Exception as error:  # noqa: BLE001 - the model is saved; say how to finish the push by hand
        if not args.push_to_hub:
            raise
        if trainer.is_world_process_zero():
            add_training_record(args.output_dir, record)  # the push by hand carries it too
        recorded = "its record is merged into the repo's run.json"
        try:  # the record merges (evaluations and exports recorded meanwhile are kept); the upload by hand leaves it out
            push_run(output, args.hub_model_id, "End of training: run.json", revision=args.hub_revision)
        except Exception:  # noqa: BLE001 - the Hub that refused the model refuses this too: it stays local
            recorded = f"its record stays in {output / RUN_FILE}"
        revision = f" --revision {args.hub_revision}" if args.hub_revision else ""
        print(f"Push to {args.hub_model_id} failed: {error}. The model is kept in {args.output_dir} and {recorded}; "
              f"push the model with: hf upload {args.hub_model_id} {shlex.quote(args.output_dir)} .{revision} "
              f"--exclude 'checkpoint-*/*' --exclude {RUN_FILE} --exclude '.{RUN_FILE}*' --exclude {RUN_LOCK}",
              flush=True)
        sys.exit(1)
    finally:
        trainer.end()  # finish the trackers, destroy the process group
    if trainer.is_world_process_zero():
        final = record["metrics"]["final"]
        loss = f"final loss {final['loss']}" if "loss" in final else f"mean loss {final.get('train_loss')}"
        print(f"Training completed: {record['steps']['done']} steps, {loss}. Saved to {args.output_dir}.", flush=True)
        if args.push_to_hub:
            print(f"Pushed to {constants.ENDPOINT}/{args.hub_model_id}", flush=True)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # torch's gloo process group can deadlock in its destructor at interpreter exit (its worker thread waits for
        # the GIL that the joining main thread holds). Everything is saved, pushed and flushed: leave without it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
