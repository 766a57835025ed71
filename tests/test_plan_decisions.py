"""plan.py's decisions: bad input, the learning rate it shows, the multi-GPU strategy the trainer launches, and
plans over several nodes."""

import json
import sys

import pytest
from conftest import CONFIGS, SCRIPTS, flag_value, plan

sys.path.insert(0, str(SCRIPTS))
import plan as planner  # noqa: E402
import train_sft as trainer  # noqa: E402 - the trainer core (one shared block in the three trainers)
from shared.recipes import training_strategy  # noqa: E402 - the one source the trainers' --strategy auto calls

QWEN = CONFIGS / "qwen3-0.6b"


def refused(result) -> str:
    assert result.returncode == 2, result.output[-2000:]
    assert "Traceback" not in result.stderr and not result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("flags,says", [
    (["--epochs", "0"], "--epochs 0 must be a finite number above 0"),
    (["--epochs", "-2"], "--epochs -2 must be a finite number above 0"),
    (["--epochs", "nan"], "--epochs nan must be a finite number above 0"),
    (["--epochs", "inf"], "--epochs inf must be a finite number above 0"),
    (["--per_device_train_batch_size", "0"], "--per_device_train_batch_size 0 is too small"),
    (["--per_device_train_batch_size", "-4"], "--per_device_train_batch_size -4 is too small"),
    (["--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps 0 is too small"),
    (["--max_length", "-1"], "--max_length -1 is too small"),
    (["--dataset_tokens", "-5000000"], "--dataset_tokens -5e+06 must be a finite number above 0"),
    (["--dataset_tokens", "0"], "--dataset_tokens 0 must be a finite number above 0"),
    (["--learning_rate", "0"], "--learning_rate 0 must be a finite number above 0"),
    (["--nodes", "0"], "--nodes 0 is too small"),
    (["--epochs", "many"], "invalid float value: 'many'"),
    (["--method", "ppo"], "argument --method: invalid choice: 'ppo'"),
    (["--method", "sft", "--peft", "dora"], "argument --peft: invalid choice: 'dora'"),
    (["--method", "grpo", "--num_generations", "1"], "--num_generations 1 is too small; use at least 2"),
])
def test_bad_values_are_one_sentence_and_exit_2(flags, says, run_script):
    method = [] if "--method" in flags else ["--method", "sft"]
    assert says in refused(run_script("plan.py", "--model", QWEN, *method, *flags))


def test_validation_must_be_a_validation_report(tmp_path, run_script):
    as_list = tmp_path / "list.json"
    as_list.write_text(json.dumps([{"rows": 10}]))
    other = tmp_path / "plan.json"
    other.write_text(json.dumps({"flavor": "t4-small", "time_hours": 0.3}))
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"rows": 0, "methods": {}, "tokens": None}))
    for path, says in ((as_list, "is not a validate_dataset.py --json file (it has no rows)"),
                       (other, "is not a validate_dataset.py --json file (it has no rows)"),
                       (tmp_path / "absent.json", "is not a validate_dataset.py --json file"),
                       (empty, "counts 0 rows: there is nothing to train on")):
        assert says in refused(run_script("plan.py", "--model", QWEN, "--method", "sft", "--validation", path))


def test_models_that_cannot_be_read_are_one_sentence(tmp_path, run_script):
    no_config = tmp_path / "weights-only"
    no_config.mkdir()
    (no_config / "model.safetensors").write_bytes(b"")
    orphan = tmp_path / "adapter"
    orphan.mkdir()
    (orphan / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "nobody/missing-base"}))
    nameless = tmp_path / "nameless-adapter"
    nameless.mkdir()
    (nameless / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    for model, says in ((no_config, "has no config.json or adapter_config.json"),
                        (orphan, "The config of model 'nobody/missing-base' could not be read"),
                        (nameless, "does not name its base model"),
                        ("nobody/unreachable", "The config of model 'nobody/unreachable' could not be read")):
        assert says in refused(run_script("plan.py", "--model", model, "--method", "sft"))


def test_lora_learning_rate_is_shown_with_its_reason_and_left_to_the_trainer(tmp_path, run_script):
    adapter = tmp_path / "adapter"  # planned as its base
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(QWEN)}))
    sft = plan(run_script, "--model", adapter, "--method", "sft", "--peft", "lora")
    assert sft["params"] == 596_049_920
    assert sft["learning_rate"] == pytest.approx(2e-4) and "10x the full fine-tuning rate 2e-05" in \
        sft["learning_rate_reason"]
    assert "--learning_rate" not in sft["training_args"]  # the trainer applies the same default itself
    card = run_script("plan.py", "--model", QWEN, "--method", "dpo", "--peft", "qlora")
    assert card.returncode == 0 and "- Learning rate: 5e-05 (10x the full fine-tuning rate 5e-06" in card.stdout


def test_grpo_training_args_are_flags_the_grpo_trainer_takes(run_script):
    result = plan(run_script, "--model", QWEN, "--method", "grpo", "--num_generations", "6", "--flavor", "h200x2",
                  "--learning_rate", "3e-5", "--epochs", "2")
    args = result["training_args"]
    assert "--max_length" not in args and flag_value(args, "--num_generations") == "6"
    batch, accumulation = result["per_device_train_batch_size"], result["gradient_accumulation_steps"]
    assert batch * accumulation * result["gpus"] % 6 == 0  # TRL refuses partial groups of completions
    assert flag_value(args, "--strategy") == result["strategy"] == "ddp"
    assert result["learning_rate"] == 3e-5 and result["learning_rate_reason"] == "given"
    assert flag_value(args, "--learning_rate") == "3e-05" and flag_value(args, "--num_train_epochs") == "2"


def test_the_trainer_is_told_the_strategy_the_plan_needed(run_script):
    """The one override of the shared recipe: it keeps a whole 1.7B replica (26 GB) on each 48 GB GPU, but without
    gradient checkpointing DPO's activations do not fit beside it; the trainer's --strategy auto would pick DDP, so
    the plan passes --strategy fsdp."""
    result = plan(run_script, "--model", CONFIGS / "qwen3-1.7b", "--method", "dpo", "--peft", "none",
                  "--no_gradient_checkpointing", "--flavor", "l40sx4")
    assert training_strategy(result["params"], "none", 4, 48) == "ddp"
    assert result["fits"] and result["strategy"] == "fsdp" and "leaves no room" in result["strategy_reason"]
    assert flag_value(result["training_args"], "--strategy") == "fsdp"
    assert flag_value(result["training_args"], "--gradient_checkpointing") == "false"


# A 0.6B replica fits every GPU; the larger models shard when fully fine-tuned and keep a replica per GPU with
# QLoRA on large GPUs (a 70B QLoRA base is 36 GB)
EXPECTED_STRATEGIES = {"qwen3-0.6b": {"ddp"}, "qwen3-1.7b": {"ddp", "fsdp"}, "qwen3-8b": {"ddp", "fsdp"},
                       "llama-3.1-70b": {"ddp", "fsdp"}}


def launch_of(result: dict) -> dict:
    """The launch the trainer builds on the plan's flavor with the plan's flags: the accelerate config, processes
    and machines it starts."""
    run_args = trainer.RunArguments(strategy=flag_value(result["training_args"], "--strategy"))
    hardware = {"device": "cuda", "gpu": result["gpu"], "gpus": result["gpus_per_node"], "bf16": True,
                "memory_gb": result["gpu_memory_gb"], "nodes": result["nodes"]}
    strategy = trainer.resolve_strategy(run_args, hardware, result["params"], result["peft"])
    command = trainer.launch_command(run_args, hardware, strategy)
    return {"config": command[command.index("--config_file") + 1].rsplit("/", 1)[-1],
            "processes": int(command[command.index("--num_processes") + 1]),
            "machines": int(command[command.index("--num_machines") + 1])}


@pytest.mark.parametrize("config", ["qwen3-0.6b", "qwen3-1.7b", "qwen3-8b", "llama-3.1-70b"])
def test_plan_strategy_is_what_the_trainer_launches(config):
    """Every method x PEFT x multi-GPU flavor of the snapshot (108 plans a model, too many for a subprocess each):
    the plan passes --strategy to the trainer, and it is the shared recipe's answer unless DDP left no room for the
    smallest batch."""
    shape = planner.model_shape(str(CONFIGS / config))
    catalogue = {name: spec for name, spec in planner.HARDWARE_SNAPSHOT.items() if spec[0]}
    seen = set()
    for method in ("sft", "dpo", "grpo"):
        for peft in ("none", "lora", "qlora"):
            for flavor in [name for name, spec in catalogue.items() if spec[1] > 1]:
                request = planner.parse_request(["--model", str(CONFIGS / config), "--method", method, "--peft", peft,
                                                 "--flavor", flavor])
                flavors = planner.candidate_flavors(request, catalogue)
                try:
                    result = planner.plan(request, shape, flavors, "snapshot", 5e6, [])
                except planner.BadInput:  # longer than one job may run (70B GRPO on small GPUs): nothing launches
                    continue
                if not result["fits"]:
                    continue
                assert result["gpus"] == result["nodes"] * result["gpus_per_node"] > 1
                assert flag_value(result["training_args"], "--strategy") == result["strategy"]
                assert flag_value(result["training_args"], "--peft") == peft
                launched = launch_of(result)
                assert launched["config"] == {"fsdp": "fsdp2.yaml", "ddp": "multi_gpu.yaml"}[result["strategy"]]
                assert launched["processes"] == result["gpus"] and launched["machines"] == result["nodes"]
                recipe = training_strategy(result["params"], peft, result["gpus"], result["gpu_memory_gb"])
                if result["strategy"] != recipe:
                    assert (recipe, result["strategy"]) == ("ddp", "fsdp")
                    whole = planner.memory_breakdown(shape, request, "ddp", result["gpus"], 1,
                                                     result["gpu_memory_gb"])
                    assert whole["breakdown"]["total"] > 0.9 * result["gpu_memory_gb"]
                seen.add(result["strategy"])
    assert seen == EXPECTED_STRATEGIES[config]
    if config == "llama-3.1-70b":
        request = planner.parse_request(["--model", str(CONFIGS / config), "--method", "sft", "--peft", "lora",
                                         "--flavor", "h200x2"])
        flavors = planner.candidate_flavors(request, catalogue)
        assert planner.plan(request, shape, flavors, "snapshot", 5e6, [])["strategy"] == "fsdp"


def test_70b_full_fine_tuning_is_planned_over_several_nodes(run_script):
    args = ["--model", CONFIGS / "llama-3.1-70b", "--method", "sft", "--peft", "none", "--dataset_tokens", "2e7"]
    assert "GB per GPU even on" in refused(run_script("plan.py", *args, "--nodes", "1"))  # no single machine fits
    result = plan(run_script, *args)
    assert result["fits"] and result["nodes"] >= 2 and result["gpus_per_node"] > 1
    assert result["gpus"] == result["nodes"] * result["gpus_per_node"]
    assert result["memory_gb"] <= 0.9 * result["gpu_memory_gb"]
    assert result["breakdown"]["weights"] < 70e9 * 4 / 2**30 / result["gpus"] * 1.1  # sharded over every node's GPUs
    assert result["strategy"] == "fsdp" and flag_value(result["training_args"], "--strategy") == "fsdp"
    assert result["cost_usd"] == pytest.approx(result["nodes"] * result["price_per_hour"] * result["time_hours"],
                                               rel=1e-3)
    assert result["inter_node_hours"] > 0 and all(a["cost_usd"] >= result["cost_usd"] for a in result["alternatives"])
    card = run_script("plan.py", *args)
    assert card.returncode == 0
    assert f"- Hardware: {result['nodes']} x {result['flavor']} (~${result['nodes'] * result['price_per_hour']:.2f}" \
           in card.stdout
    assert f"jobs.py submit --nodes {result['nodes']}" in card.stdout and "assumed 50 GB/s" in card.stdout


def test_nodes_can_be_asked_for(run_script):
    asked = plan(run_script, "--model", CONFIGS / "qwen3-8b", "--method", "sft", "--peft", "none", "--nodes", "2",
                 "--flavor", "a100x8")
    assert asked["nodes"] == 2 and asked["gpus"] == 16 and asked["flavor"] == "a100x8"
    single_gpu = run_script("plan.py", "--model", QWEN, "--method", "sft", "--nodes", "2", "--flavor", "a100-large")
    assert "--nodes 2 needs a multi-GPU flavor" in refused(single_gpu)
