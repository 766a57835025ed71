"""train_sft.py, train_dpo.py, train_grpo.py as the agent runs them: subprocesses with real flags, tiny models."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SAMPLE, SCRIPTS, run_python, start_python
from datasets_corpus import CORPUS, llava_dataset, rlaif_dataset, write_jsonl

FAST = ["--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "1", "--max_length", "192",
        "--logging_steps", "2", "--report_to", "none"]


def first_progress_step(stdout: str) -> int:
    return min(json.loads(line.split("[progress] ", 1)[1])["step"] for line in stdout.splitlines()
               if "[progress] " in line)


def record(output_dir):
    return json.loads((output_dir / "run.json").read_text())


def test_sft_loss_decreases_and_writes_outputs(tiny_model, tmp_path, run_script):
    out = tmp_path / "sft"
    result = run_script("train_sft.py", "--model_name_or_path", tiny_model, "--dataset_name", SAMPLE / "sft_code.jsonl",
                        "--output_dir", out, "--max_steps", "30", "--learning_rate", "2e-3", *FAST)
    assert result.returncode == 0, result.output[-3000:]
    assert "Resolved: device=cpu" in result.stdout and "bf16=False" in result.stdout
    assert "attention=default (no CUDA GPU)" in result.stdout and "strategy=single" in result.stdout
    run = record(out)
    assert run["attention"] == "default (no CUDA GPU)" and run["hardware"]["world_size"] == 1
    assert run["status"] == "completed" and run["method"] == "sft" and run["steps"]["done"] == 30
    losses = [e["loss"] for e in run["log_history"] if "loss" in e]
    assert losses[-1] < losses[0] * 0.8, losses
    assert (out / "model.safetensors").exists() and (out / "README.md").exists()
    assert run["config"]["learning_rate"] == 2e-3 and run["versions"]["trl"]
    card = (out / "README.md").read_text()
    metadata = card.split("---")[1]
    assert "## Training record (hf-llm-trainer)" in card and "| learning_rate | 0.002 |" in card
    assert str(tiny_model) not in metadata and "base_model:" not in metadata, "a local path is no Hub metadata"


def test_sft_trackio_run_is_stored_locally(tiny_model, tmp_path, run_script, env):
    out = tmp_path / "sft"
    result = run_script("train_sft.py", "--model_name_or_path", tiny_model, "--dataset_name", SAMPLE / "sft_code.jsonl",
                        "--output_dir", out, "--max_steps", "4", "--project", "demo-project",
                        *[a for a in FAST if a not in ("--report_to", "none")])
    assert result.returncode == 0, result.output[-3000:]
    assert record(out)["trackio"] == {"project": "demo-project", "run": "sft", "space": None}
    assert any(p.suffix == ".db" for p in (tmp_path / "trackio").rglob("*")), "trackio's local store has the run"


def test_lora_max_samples_and_convert(tiny_model, tmp_path, run_script):
    rows, _, _ = CORPUS["sharegpt"]
    data = write_jsonl(tmp_path / "sharegpt.jsonl", rows)
    out = tmp_path / "lora"
    result = run_script("train_sft.py", "--model_name_or_path", tiny_model, "--dataset_name", data, "--convert",
                        "sharegpt", "--max_samples", "16", "--peft", "lora", "--output_dir", out, "--max_steps", "2",
                        *FAST)
    assert result.returncode == 0, result.output[-3000:]
    assert (out / "adapter_config.json").exists() and not (out / "model.safetensors").exists()
    run = record(out)
    assert run["dataset"]["rows"] == 16 and run["dataset"]["convert"] == "sharegpt" and run["peft"] == "lora"
    assert run["dataset"]["max_samples"] == 16, "the report tells a test run from a small dataset by it"


@pytest.mark.long
def test_kill_then_resume_finishes_the_planned_steps(tiny_model, tmp_path, env):
    out = tmp_path / "resume"
    command = [str(SCRIPTS / "train_sft.py"), "--model_name_or_path", str(tiny_model), "--dataset_name",
               str(SAMPLE / "sft_code.jsonl"), "--output_dir", str(out), "--max_steps", "60", "--save_steps", "5",
               "--save_total_limit", "2", *FAST]
    process = start_python(command, env)
    deadline = time.time() + 300
    while not (out / "checkpoint-10" / "trainer_state.json").exists():
        assert process.poll() is None and time.time() < deadline, "training ended before a checkpoint"
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert record(out)["status"] == "running", "a killed run is visibly unfinished"
    resumed = run_python(command + ["--resume"], env, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    run = record(out)
    assert run["status"] == "completed" and run["steps"] == {"done": 60, "total": 60}
    assert "checkpoint-" in run["resumed_from"]
    assert first_progress_step(resumed.stdout) > 10, "training continued from the checkpoint, not from step 0"
    assert len([e for e in run["log_history"] if "loss" in e]) == 30, "the history is whole: restored + new"


def test_push_to_hub_sends_model_card_and_run_record(tiny_model, tmp_path, run_script, hub):
    out = tmp_path / "pushed"
    hub.state.fail_commits = 1  # a transient 503 is retried
    result = run_script("train_sft.py", "--model_name_or_path", tiny_model, "--dataset_name", SAMPLE / "sft_code.jsonl",
                        "--output_dir", out, "--max_steps", "6", "--save_steps", "3", "--push_to_hub",
                        "--hub_model_id", "tester/tiny-sft", *FAST)
    assert result.returncode == 0, result.output[-3000:]
    files = hub.state.repos[("model", "tester/tiny-sft")]["files"]
    assert {"model.safetensors", "config.json", "README.md", "run.json", "tokenizer.json"} <= set(files)
    assert "last-checkpoint/optimizer.pt" in files and "last-checkpoint/trainer_state.json" in files
    assert not any(path.startswith("checkpoint-") for path in files)
    card = files["README.md"].decode()
    assert "tester/tiny-sft" in card and "sft_code" in card and "| learning_rate |" in card
    assert json.loads(files["run.json"])["hub_repo"] == "tester/tiny-sft"
    authorizations = {r["authorization"] for r in hub.state.requests}
    assert hub.endpoint and all(a in (None, f"Bearer {hub_token()}") for a in authorizations)
    assert hub_token() not in (out / "run.json").read_text() + result.output


def hub_token():
    from hub_server import TOKEN

    return TOKEN


def test_refused_push_keeps_the_model_and_says_how_to_push(tiny_model, tmp_path, run_script, hub, env):
    out = tmp_path / "refused"
    hub.state.refuse_commits = True
    result = run_script("train_sft.py", "--model_name_or_path", tiny_model, "--dataset_name", SAMPLE / "sft_code.jsonl",
                        "--output_dir", out, "--max_steps", "2", "--push_to_hub", "--hub_model_id", "tester/refused",
                        "--hub_strategy", "end", *FAST)
    assert result.returncode == 1
    assert (out / "model.safetensors").exists() and record(out)["status"] == "completed"
    assert "## Training record (hf-llm-trainer)" in (out / "README.md").read_text(), "the push by hand carries it"
    assert f"its record stays in {out / 'run.json'}" in result.output
    command = re.search(r"push the model with: (hf upload .*)", result.output).group(1)
    hub.state.refuse_commits = False
    repo = hub.state.repos[("model", "tester/refused")]["files"]
    repo["run.json"] = json.dumps({"evaluations": [{"benchmark": "humaneval", "pass@1": 0.25}]}).encode()
    finish = subprocess.run(command.replace("hf upload", f"{Path(sys.executable).parent / 'hf'} upload", 1),
                            shell=True, capture_output=True, text=True, env=env, timeout=300)
    assert finish.returncode == 0, finish.stderr[-2000:]
    assert {"model.safetensors", "README.md"} <= set(repo) and not any(name.startswith("checkpoint-") for name in repo)
    assert json.loads(repo["run.json"])["evaluations"], "the upload by hand leaves the repo's record alone"


def test_resume_from_hub_continues_the_pushed_checkpoint(tiny_model, tmp_path, run_script, hub):
    first = tmp_path / "first"
    common = ["--model_name_or_path", tiny_model, "--dataset_name", SAMPLE / "sft_code.jsonl", "--save_steps", "4",
              "--push_to_hub", "--hub_model_id", "tester/resumable", *FAST]
    assert run_script("train_sft.py", *common, "--output_dir", first, "--max_steps", "8").returncode == 0
    state = json.loads(hub.state.repos[("model", "tester/resumable")]["files"]["last-checkpoint/trainer_state.json"])
    assert state["global_step"] == 8
    second = tmp_path / "second"  # a fresh machine: nothing local
    result = run_script("train_sft.py", *common, "--output_dir", second, "--max_steps", "12", "--resume_from_hub")
    assert result.returncode == 0, result.output[-3000:]
    run = record(second)
    assert run["steps"]["done"] == 12 and "hub-resume" in run["resumed_from"]
    assert first_progress_step(result.stdout) > 8


def test_two_process_ddp_on_cpu(tiny_model, tmp_path, run_script):
    out = tmp_path / "ddp"
    result = run_script("train_sft.py", "--model_name_or_path", tiny_model, "--dataset_name", SAMPLE / "sft_code.jsonl",
                        "--output_dir", out, "--max_steps", "4", "--num_processes", "2", *FAST)
    assert result.returncode == 0, result.output[-3000:]
    assert "torch.distributed.run --nproc_per_node 2" in result.output
    assert record(out)["hardware"]["world_size"] == 2


PROBE = """import json, os
from pathlib import Path
Path(f"seen-{os.getpid()}.json").write_text(json.dumps({k: v for k, v in os.environ.items() if k.startswith("FSDP_")}))
"""


def planned_launch(trainer, n_params: float, peft: str, strategy: str = "auto", gpus: int = 2, nodes: int = 1):
    """The strategy and launch command the trainer resolves for a model of n_params on `gpus` L4s a node."""
    hardware = {"device": "cuda", "gpu": "NVIDIA L4", "gpus": gpus, "memory_gb": 24.0, "bf16": True, "nodes": nodes}
    run_args = trainer.RunArguments(strategy=strategy)
    chosen = trainer.resolve_strategy(run_args, hardware, int(n_params), peft)
    return chosen, trainer.launch_command(run_args, hardware, chosen)


@pytest.mark.parametrize("script", ["train_sft.py", "train_dpo.py", "train_grpo.py"])
def test_multi_gpu_launcher_shards_big_full_finetuning_with_fsdp(script, tmp_path):
    """No multi-GPU machine here: the launcher each trainer builds for 2 x 24 GB GPUs is run by accelerate with a
    probe in place of the trainer, so the flags and the FSDP settings the processes receive are checked for real."""
    sys.path.insert(0, str(SCRIPTS))
    trainer = __import__(script.removesuffix(".py"))
    assert planned_launch(trainer, 8e9, "none", gpus=1)[1] is None
    strategy, launch = planned_launch(trainer, 3e9, "lora")  # a 6 GB frozen base fits one GPU beside its activations
    assert strategy == "ddp" and "multi_gpu.yaml" in " ".join(launch)
    assert planned_launch(trainer, 8e9, "none", strategy="ddp")[0] == "ddp", "--strategy from the plan wins"
    strategy, fsdp = planned_launch(trainer, 8e9, "none")  # 128 GB of weights and states
    assert strategy == "fsdp" and fsdp[fsdp.index("--num_processes") + 1] == "2"
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k != "LOCAL_RANK"} | {"CUDA_VISIBLE_DEVICES": ""}
    if script == "train_sft.py":  # a node of a jobs.py group: one launch across nodes, main node from the group
        group = {"HFLT_NUM_NODES": "2", "HFLT_NODE_RANK": "1", "HF_NETWORK_GROUP_PREFIX": "grp-"}
        with pytest.MonkeyPatch.context() as patch:
            for key, value in group.items():
                patch.setenv(key, value)
            across = " ".join(planned_launch(trainer, 70e9, "none", nodes=2)[1])
        assert "fsdp2.yaml" in across and "--num_processes 4 --num_machines 2" in across
        assert "--machine_rank 1 --main_process_ip grp-main --main_process_port 29500" in across
        assert "--rdzv_conf timeout=1800" in across, "members that start minutes apart still meet"
    result = subprocess.run(fsdp + [str(probe)], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = [json.loads(path.read_text()) for path in tmp_path.glob("seen-*.json")]
    assert len(seen) == 2
    assert all(p["FSDP_VERSION"] == "2" and p["FSDP_AUTO_WRAP_POLICY"] == "TRANSFORMER_BASED_WRAP"
               and p["FSDP_STATE_DICT_TYPE"] == "FULL_STATE_DICT" and p["FSDP_CPU_RAM_EFFICIENT_LOADING"] == "true"
               for p in seen), seen


def test_qlora_under_fsdp_stores_its_4bit_weights_in_the_compute_dtype(tiny_model, tmp_path, monkeypatch):
    """FSDP shards tensors of one dtype: a QLoRA base sharded across GPUs keeps its 4-bit weights in bf16 storage.
    Built on two GPUs the run is told it has, without the launch (its flags are checked above)."""
    sys.path.insert(0, str(SCRIPTS))
    trainer = __import__("train_sft")
    find_spec = trainer.importlib.util.find_spec
    monkeypatch.setattr(trainer.importlib.util, "find_spec",
                        lambda name, *rest: object() if name == "bitsandbytes" else find_spec(name, *rest))
    monkeypatch.setattr(trainer, "launch_command", lambda *args: None)
    monkeypatch.setattr(sys, "argv", ["train_sft.py", "--model_name_or_path", str(tiny_model), "--dataset_name",
                                      "data.jsonl", "--peft", "qlora", "--strategy", "fsdp", "--output_dir",
                                      str(tmp_path / "out"), "--bf16", "false"])  # this CPU has no bf16 GPU
    hardware = {"device": "cuda", "gpu": "NVIDIA L4", "gpus": 2, "memory_gb": 24.0, "bf16": True, "nodes": 1}
    parser = trainer.TrlParser((trainer.ScriptArguments, trainer.SFTConfig, trainer.ModelConfig, trainer.RunArguments))
    run = trainer.resolve_run(trainer.parse_flags(parser), "sft", hardware)
    assert run.strategy == "fsdp" and run.peft == "qlora" and not run.model_args.load_in_4bit, "nothing applied yet"
    trainer.apply_decisions(run)
    assert run.model_args.load_in_4bit
    assert run.model_args.bnb_4bit_quant_storage == "bfloat16"


def test_sft_then_dpo_on_the_adapter(tiny_model, tmp_path, run_script):
    sft = tmp_path / "sft"
    assert run_script("train_sft.py", "--model_name_or_path", tiny_model, "--dataset_name", SAMPLE / "sft_code.jsonl",
                      "--output_dir", sft, "--max_steps", "3", "--peft", "lora", *FAST).returncode == 0
    rows = [{"prompt": r["prompt"], "good_response": r["chosen"], "bad_response": r["rejected"]}
            for r in map(json.loads, (SAMPLE / "dpo_code.jsonl").read_text().splitlines())]
    data = write_jsonl(tmp_path / "prefs.jsonl", rows)
    dpo = tmp_path / "dpo"
    result = run_script("train_dpo.py", "--model_name_or_path", sft, "--dataset_name", data, "--map",
                        "chosen=good_response,rejected=bad_response", "--output_dir", dpo, "--max_steps", "4",
                        "--peft", "lora", *FAST)
    assert result.returncode == 0, result.output[-3000:]
    assert "merging it into its base model" in result.output
    run = record(dpo)
    assert run["method"] == "dpo" and run["dataset"]["mapping"] == {"chosen": "good_response", "rejected": "bad_response"}
    assert any("rewards/margins" in e for e in run["log_history"])


def test_grpo_with_math_and_custom_rewards(tiny_model, tmp_path, run_script):
    reward_file = tmp_path / "my_rewards.py"
    reward_file.write_text("def short(completions, **kwargs):\n    return [1.0 / (1 + len(str(c))) for c in completions]\n")
    out = tmp_path / "grpo"
    result = run_script("train_grpo.py", "--model_name_or_path", tiny_model, "--dataset_name", SAMPLE / "grpo_math.jsonl",
                        "--convert", "gsm8k", "--reward_funcs", f"number_match,answer_format,{reward_file}:short",
                        "--output_dir", out, "--max_steps", "2", "--num_generations", "4",
                        "--max_completion_length", "12", "--per_device_train_batch_size", "4", "--logging_steps", "1",
                        "--report_to", "none")
    assert result.returncode == 0, result.output[-3000:]
    history = record(out)["log_history"]
    assert any("rewards/number_match/mean" in e and "rewards/short/mean" in e for e in history)
    assert record(out)["metrics"]["final"]["reward"] > 0, "the custom reward is always positive"


def test_grpo_rewards_score_right_answers():
    sys.path.insert(0, str(SCRIPTS))
    import train_grpo

    completions = [[{"content": "3 + 4 = 7\n#### 7"}], [{"content": "It is 8"}], [{"content": "no idea"}]]
    assert train_grpo.number_match(completions, solution=["7", "7", "7"]) == [1.0, 0.0, 0.0]
    assert train_grpo.answer_format(completions) == [0.5, 0.0, 0.0]


def test_vlm_sft(tiny_vlm, tmp_path, run_script):
    out = tmp_path / "vlm"
    result = run_script("train_sft.py", "--model_name_or_path", tiny_vlm, "--dataset_name", llava_dataset(tmp_path),
                        "--output_dir", out, "--max_steps", "3", "--per_device_train_batch_size", "4",
                        "--gradient_accumulation_steps", "1", "--logging_steps", "1", "--report_to", "none",
                        "--max_length", "None")
    assert result.returncode == 0, result.output[-3000:]
    run = record(out)
    assert run["status"] == "completed" and run["steps"]["done"] == 3
    assert (out / "preprocessor_config.json").exists() or (out / "processor_config.json").exists()


def test_vlm_dpo(tiny_vlm, tmp_path, run_script):
    out = tmp_path / "vlm-dpo"
    result = run_script("train_dpo.py", "--model_name_or_path", tiny_vlm, "--dataset_name", rlaif_dataset(tmp_path),
                        "--output_dir", out, "--max_steps", "2", "--per_device_train_batch_size", "2",
                        "--logging_steps", "1", "--report_to", "none", "--max_length", "None")
    assert result.returncode == 0, result.output[-3000:]
    run = record(out)
    assert run["method"] == "dpo" and run["steps"]["done"] == 2
    assert any("rewards/margins" in e for e in run["log_history"])


def bad_models(root, base=None):
    empty = root / "empty-model"
    empty.mkdir()
    orphan = root / "orphan-adapter"
    orphan.mkdir()
    (orphan / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    adapter = root / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": str(base)}))
    (adapter / "adapter_model.safetensors").write_bytes(b"")  # a header is all the check reads: it is missing
    return empty, orphan, adapter


SFT_DATA = str(SAMPLE / "sft_code.jsonl")


@pytest.mark.parametrize("args,needle", [
    (["--dataset_name", "missing.jsonl"], "not found"),
    (["--dataset_name", str(SAMPLE / "grpo_math.jsonl")], "SFT needs a 'messages'"),
    (["--dataset_name", SFT_DATA, "--convert", "yaml"], "--convert 'yaml' is unknown"),
    (["--dataset_name", SFT_DATA, "--map", "prompt"], "--map takes 'new=old' pairs"),
    (["--dataset_name", SFT_DATA, "--map", "text=body"], "--map names columns ['body']"),
    (["--dataset_name", SFT_DATA, "--max_samples", "0"], "--max_samples must be at least 1"),
    (["--dataset_name", SFT_DATA, "--max_samples", "-3"], "--max_samples must be at least 1"),
    (["--dataset_name", SFT_DATA, "--eval_ratio", "1.5"], "--eval_ratio must be in [0, 1)"),
    (["--dataset_name", SFT_DATA, "--peft", "qlora"], "--peft qlora needs a CUDA GPU"),
    (["--dataset_name", SFT_DATA, "--peft", "dora"], "--peft 'dora' is unknown"),
    (["--dataset_name", SFT_DATA, "--strategy", "zero3"], "--strategy 'zero3' is unknown"),
    (["--dataset_name", SFT_DATA, "--max_steps", "many"], "see --help"),
    (["--dataset_name", SFT_DATA, "--model_name_or_path", "EMPTY"], "has no config.json or adapter_config.json"),
    (["--dataset_name", SFT_DATA, "--model_name_or_path", "ORPHAN"], "does not name its base model"),
    (["--dataset_name", SFT_DATA, "--model_name_or_path", "ADAPTER", "--peft", "qlora"], "cannot start from the LoRA"),
    (["--dataset_name", SFT_DATA, "--model_name_or_path", "ADAPTER"], "is not a readable safetensors file"),
    (["--dataset_name", SFT_DATA, "--model_name_or_path", "CONFIG_ONLY"], "has a config but no weights"),
    (["--dataset_name", SFT_DATA, "--model_name_or_path", "BROKEN_ADAPTER"], "is not a valid adapter config"),
    (["--dataset_name", SFT_DATA, "--output_dir", "FILE"], "is a file; pass a directory"),
    (["--dataset_name", SFT_DATA, "--attn_implementation", "varlen"], "--attn_implementation varlen cannot run here"),
    (["--dataset_name", SFT_DATA, "--learning_rate", "-1"], "--learning_rate must be a positive number"),
    (["--dataset_name", SFT_DATA, "--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps must be a"),
    (["--dataset_name", SFT_DATA, "--per_device_train_batch_size", "0"], "--per_device_train_batch_size must be a"),
    (["--dataset_name", SFT_DATA, "--max_length", "-5"], "--max_length must be a positive number"),
    (["--dataset_name", SFT_DATA, "--num_train_epochs", "-1"], "--num_train_epochs must be positive"),
    (["--dataset_name", SFT_DATA, "--dataset_train_split", "trian"], "has one split, 'train'"),
    (["--dataset_name", "EMPTY_DATA"], "is empty"),
    (["--dataset_name", SFT_DATA, "--config", "MISSING_YAML"], "--config file could not be read"),
    (["--dataset_name", SFT_DATA, "--config", "BROKEN_YAML"], "--config file could not be read"),
    (["--dataset_name", SFT_DATA, "--push_to_hub", "--hub_model_id", "u/x"], "--push_to_hub needs a Hugging Face"),
    (["--dataset_name", SFT_DATA, "--hub_tokne", "hf_abcdefghijklmnop"], "hf_***"),
])
def test_bad_input_exits_2_with_one_sentence(args, needle, tiny_model, tmp_path, run_script_shared):
    empty, orphan, adapter = bad_models(tmp_path, base=tiny_model)
    out = tmp_path / "existing-run"
    out.mkdir()
    (out / "notes.txt").write_text("kept")
    a_file = tmp_path / "a-file.txt"
    a_file.write_text("not a directory")
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "broken.yaml").write_text("learning_rate: [1e-4\n")
    config_only, broken_adapter = tmp_path / "config-only", tmp_path / "broken-adapter"
    config_only.mkdir()
    shutil.copy(Path(tiny_model) / "config.json", config_only)
    broken_adapter.mkdir()
    (broken_adapter / "adapter_config.json").write_text('{"peft_type": ')
    places = {"EMPTY": empty, "ORPHAN": orphan, "ADAPTER": adapter, "FILE": a_file, "EMPTY_DATA": tmp_path / "empty.jsonl",
              "MISSING_YAML": tmp_path / "nope.yaml", "BROKEN_YAML": tmp_path / "broken.yaml",
              "CONFIG_ONLY": config_only, "BROKEN_ADAPTER": broken_adapter}
    args = [places.get(arg, arg) for arg in args]
    if "--output_dir" not in args:
        args += ["--output_dir", out]
    result = run_script_shared("train_sft.py", "--model_name_or_path", tiny_model, *args)
    assert result.returncode == 2, result.output[-2000:]
    assert needle in result.stderr and "Traceback" not in result.output and "hf_abcdefghijklmnop" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and a_file.read_text() == "not a directory"


@pytest.mark.parametrize("script,data", [("train_dpo.py", "dpo_code.jsonl"), ("train_grpo.py", "grpo_math.jsonl")])
@pytest.mark.parametrize("args,needle", [
    (["--learning_rate", "-1"], "--learning_rate must be a positive number"),
    (["--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps must be a positive number"),
    (["--beta", "-1"], "--beta must be at least 0"),
    (["--push_to_hub", "--hub_model_id", "u/x"], "--push_to_hub needs a Hugging Face token"),
    (["--dataset_name", "EMPTY_DATA"], "is empty"),
])
def test_dpo_and_grpo_bad_input_exits_2_with_one_sentence(script, data, args, needle, tiny_model, tmp_path,
                                                          run_script_shared):
    (tmp_path / "empty.jsonl").write_text("")
    args = [tmp_path / "empty.jsonl" if arg == "EMPTY_DATA" else arg for arg in args]
    out = tmp_path / "out"
    result = run_script_shared(script, "--model_name_or_path", tiny_model, "--dataset_name", SAMPLE / data,
                        "--convert" if "grpo" in script else "--max_length", "gsm8k" if "grpo" in script else "64",
                        *args, "--output_dir", out)
    assert result.returncode == 2 and needle in result.stderr, result.output[-2000:]
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not out.exists()


def test_unknown_flag_exits_2(tiny_model, run_script_shared):
    result = run_script_shared("train_grpo.py", "--model_name_or_path", tiny_model, "--dataset_name",
                        SAMPLE / "grpo_math.jsonl", "--max_lenght", "10")
    assert result.returncode == 2 and "--max_lenght" in result.stderr and "Traceback" not in result.stderr


def test_model_not_found_exits_2(tmp_path, run_script_shared):
    result = run_script_shared("train_sft.py", "--model_name_or_path", tmp_path / "no-model", "--dataset_name",
                        SAMPLE / "sft_code.jsonl")
    assert result.returncode == 2 and "was not found" in result.stderr, result.output[-2000:]


@pytest.mark.parametrize("flavor, warned", [("t4-small", True), ("cpu-basic", False)])
def test_a_gpu_flavor_without_cuda_says_so_in_its_first_line(flavor, warned, run_script, tmp_path):
    """A container that sees no GPU would train on CPU for hours: the trainer's first line says so, before any flag is
    read (here the flags are wrong on purpose: nothing else runs)."""
    result = run_script("train_sft.py", "--dataset_name", tmp_path / "missing.jsonl",
                        extra_env={"HFLT_FLAVOR": flavor, "CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 2, result.output[-2000:]
    line = f"[hardware] no CUDA device found on a GPU flavor ({flavor}): training runs on CPU"
    assert (result.stdout.splitlines()[:1] == [line]) is warned, result.output[-2000:]


def test_resolving_a_run_changes_no_flag_and_its_decisions_are_frozen(tiny_model, tmp_path, monkeypatch):
    """resolve_run only decides; apply_decisions is where TRL's arguments change."""
    import dataclasses

    sys.path.insert(0, str(SCRIPTS))
    trainer = __import__("train_sft")
    monkeypatch.setattr(sys, "argv", ["train_sft.py", "--model_name_or_path", str(tiny_model), "--dataset_name",
                                      "data.jsonl", "--eval_ratio", "0.1", "--peft", "lora"])
    hardware = {"device": "cpu", "gpu": None, "gpus": 0, "memory_gb": None, "bf16": False, "nodes": 1}
    parser = trainer.TrlParser((trainer.ScriptArguments, trainer.SFTConfig, trainer.ModelConfig, trainer.RunArguments))
    parser.set_defaults(**trainer.hardware_defaults(hardware))
    flags = trainer.parse_flags(parser)
    before = [dataclasses.asdict(flag) for flag in flags[:4]]
    run = trainer.resolve_run(flags, "sft", hardware)
    assert [dataclasses.asdict(flag) for flag in flags[:4]] == before
    assert (run.peft, run.eval_strategy, run.launcher) == ("lora", "steps", None) and run.learning_rate > 2e-5
    assert run.output_dir.startswith("outputs/") and run.dtype == "float32"
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.peft = "none"
    trainer.apply_decisions(run)
    args = run.training_args
    assert (args.learning_rate, args.eval_strategy, args.output_dir) == (run.learning_rate, "steps", run.output_dir)
    assert run.model_args.use_peft and run.model_args.lora_target_modules == "all-linear"
