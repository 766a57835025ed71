"""What the GPU benchmark and the throughput comparison share: running a bundled trainer as a subprocess and
measuring it, and the pre-tokenized rows it trains on."""

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "skills" / "hf-llm-trainer" / "scripts"


def token_dataset(work: Path, vocab: int, length: int, rows: int, variable: bool) -> Path:
    from datasets import Dataset

    path = work / f"tokens-{length}-{'var' if variable else 'fixed'}.parquet"
    if not path.exists():
        rng = random.Random(0)
        data = [{"input_ids": [rng.randrange(10, min(vocab, 500)) for _ in
                               range(rng.randint(length // 8, length) if variable else length)]} for _ in range(rows)]
        Dataset.from_list(data).to_parquet(path)
    return path


def run(script: str, model: Path, data: Path, out: Path, extra: list[str], steps: int) -> dict:
    """One trainer run as a subprocess; step times and real tokens from its [progress] lines, peak GPU memory from
    run.json, peak host memory (RSS) from the process's own resource usage."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    command = [sys.executable, str(SCRIPTS / script), "--model_name_or_path", str(model), "--dataset_name", str(data),
               "--output_dir", str(out), "--max_steps", str(steps), "--logging_steps", "1", "--report_to", "none",
               "--save_strategy", "no", *extra]
    started = time.time()
    log = out / "bench.log"
    with open(log, "w") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT,
                                   env={**os.environ, "HF_HUB_OFFLINE": "1"})
        _, status, usage = os.wait4(process.pid, 0)
    output = log.read_text()
    if os.waitstatus_to_exitcode(status) != 0:
        return {"error": output[-4000:]}
    lines = [json.loads(line.split("[progress] ", 1)[1]) for line in output.splitlines() if "[progress] " in line]
    steps_logged = [line for line in lines if "loss" in line]
    times = [b["time"] - a["time"] for a, b in zip(steps_logged, steps_logged[1:])]
    warm = steps_logged[2:]  # skip compilation / allocator warm-up
    tokens = (warm[-1]["num_tokens"] - warm[0]["num_tokens"]) if len(warm) > 1 and "num_tokens" in warm[0] else None
    seconds = warm[-1]["time"] - warm[0]["time"] if len(warm) > 1 else None
    record = json.loads((out / "run.json").read_text())
    return {"peak_memory_gb": record["hardware"].get("peak_memory_gb"),
            "peak_allocated_gb": record["hardware"].get("peak_memory_allocated_gb"),
            "peak_rss_gb": round(usage.ru_maxrss / 2**20, 2),
            "step_s": statistics.median(times[2:] or times),
            "tokens_per_s": tokens / seconds if tokens and seconds else None, "wall_s": round(time.time() - started, 1),
            "resolved": next((line for line in output.splitlines() if line.startswith("Resolved:")), "")}
