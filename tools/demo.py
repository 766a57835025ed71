"""`make demo`: the whole experiment on the embedded defaults, offline, on a tiny model and the bundled sample data.

The same commands an agent runs (SKILL.md), with the local backend: validate, plan, SFT as a local job followed to
the end, HumanEval on the base and the fine-tuned model, DPO on top, the experiment report with loss curves, a
verified Q4_K_M GGUF, and a summary of where everything is. Idempotent: it starts from a clean demo_outputs/.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import tiny_models

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "skills" / "hf-llm-trainer" / "scripts"
OUT = ROOT / "demo_outputs"
SAMPLE = ROOT / "data" / "sample"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRACKIO_DIR": str(OUT / "trackio"), "PYTHONUNBUFFERED": "1",
       "HFLT_STATE_DIR": str(OUT / "jobs"), "HFLT_LOCAL_PYTHON": sys.executable, "HFLT_POLL_S": "2",
       "TOKENIZERS_PARALLELISM": "false"}
TRAINING = ["--max_length", "256", "--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "1",
            "--logging_steps", "5", "--save_steps", "40"]


def step(title: str, script: str, *args, capture: bool = False) -> str:
    shown = " ".join(str(a).replace(str(ROOT) + "/", "") for a in args)
    print(f"\n=== {title}\n$ uv run scripts/{script} {shown}", flush=True)
    result = subprocess.run([sys.executable, str(SCRIPTS / script), *map(str, args)], env=ENV, check=True,
                            stdout=subprocess.PIPE if capture else None, text=True)
    return result.stdout if capture else ""


def submit_and_follow(title: str, *script_and_args) -> str:
    submitted = json.loads(step(title, "jobs.py", "submit", "--backend", "local", "--experiment", "demo", "--json",
                                "--", *script_and_args, capture=True))
    print(f"Job {submitted['id']} submitted; following it:", flush=True)
    step("Follow the job until it ends", "jobs.py", "wait", submitted["id"])
    return submitted["id"]


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    model = tiny_models.tiny_causal_lm()
    print(f"Tiny model (Llama-shaped, SentencePiece tokenizer, built offline and cached): {model}")
    validation = step("Validate the bundled SFT data", "validate_dataset.py", "--dataset", SAMPLE / "sft_code.jsonl",
                      "--model", model, "--json", capture=True)
    (OUT / "validation.json").write_text(validation)
    step("Validate the bundled SFT data (what the person sees)", "validate_dataset.py", "--dataset",
         SAMPLE / "sft_code.jsonl")
    step("Plan the run (the card the person confirms)", "plan.py", "--model", model, "--method", "sft", "--validation",
         OUT / "validation.json", "--dataset", "data/sample/sft_code.jsonl", "--hub_model_id", "local/demo-sft")
    sft = OUT / "sft"
    submit_and_follow("SFT as a local job", SCRIPTS / "train_sft.py", "--model_name_or_path", model, "--dataset_name",
                      SAMPLE / "sft_code.jsonl", "--output_dir", sft, "--max_steps", "80", "--learning_rate", "1e-3",
                      "--eval_ratio", "0.05", "--eval_steps", "40", "--project", "demo", *TRAINING)
    base_eval = step("HumanEval on the base model", "eval_humaneval.py", "--model", model, "--limit", "10",
                     "--max_new_tokens", "48", "--json", capture=True)
    (OUT / "base_humaneval.json").write_text(base_eval)
    step("HumanEval on the fine-tuned model, recorded in its run.json", "eval_humaneval.py", "--model", sft,
         "--limit", "10", "--max_new_tokens", "48", "--run", sft)
    dpo = OUT / "dpo"
    submit_and_follow("DPO on top of the SFT model as a local job", SCRIPTS / "train_dpo.py", "--model_name_or_path",
                      sft, "--dataset_name", SAMPLE / "dpo_code.jsonl", "--output_dir", dpo, "--max_steps", "30",
                      "--learning_rate", "5e-5", "--project", "demo", *TRAINING)
    step("HumanEval on the DPO model", "eval_humaneval.py", "--model", dpo, "--limit", "10", "--max_new_tokens", "48",
         "--run", dpo)
    step("Experiment report", "report.py", "--experiment", "demo", "--runs", sft, dpo, "--evals", OUT / "base_humaneval.json",
         "--out", OUT / "training_reports")
    step("GGUF Q4_K_M, verified in llama.cpp (builds llama.cpp once, cached)", "convert_gguf.py", "--model", dpo,
         "--quant", "Q4_K_M", "--output_dir", OUT / "gguf")
    print("\n=== Summary")
    for label, path in [("validation", OUT / "validation.json"), ("SFT model + run.json", sft), ("DPO model", dpo),
                        ("report", OUT / "training_reports" / "demo.md"), ("loss curves", OUT / "training_reports" / "demo"),
                        ("GGUF", OUT / "gguf"), ("local job state", OUT / "jobs"), ("trackio store", OUT / "trackio")]:
        print(f"{label:22} {path.relative_to(ROOT)}")
    report = (OUT / "training_reports" / "demo.md").read_text()
    print("\n" + report[report.index("# Experiment evaluations"):].split("<!--")[0].strip())


if __name__ == "__main__":
    main()
