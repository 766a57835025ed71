"""`make demo`: the main job on the embedded defaults, offline, on a tiny model and the bundled sample data."""

import os
import subprocess
import sys
from pathlib import Path

import tiny_models

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "skills" / "hf-llm-trainer" / "scripts"
OUT = ROOT / "demo_outputs"


def step(title: str, script: str, *args):
    print(f"\n=== {title}\n$ uv run scripts/{script} {' '.join(map(str, args))}", flush=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRACKIO_DIR": str(OUT / "trackio"), "PYTHONUNBUFFERED": "1"}
    subprocess.run([sys.executable, str(SCRIPTS / script), *map(str, args)], check=True, env=env)


def main():
    model = tiny_models.tiny_causal_lm()
    print(f"Tiny model: {model}")
    step("SFT on the bundled code data (local, CPU)", "train_sft.py", "--model_name_or_path", model,
         "--dataset_name", ROOT / "data/sample/sft_code.jsonl", "--output_dir", OUT / "sft", "--max_steps", 30,
         "--learning_rate", 1e-3, "--per_device_train_batch_size", 8, "--gradient_accumulation_steps", 1,
         "--max_length", 256, "--logging_steps", 5)
    print(f"\nDone. Outputs in {OUT}")


if __name__ == "__main__":
    main()
