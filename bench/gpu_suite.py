"""Everything that needs a GPU, in one command that ends within 9 minutes on one H100:

1. varlen numerics: on the same rows, packed through the varlen attention path (tools/shared/attention.py) and
   padded through sdpa, loss and gradients match within bf16 tolerance, and no token attends across a row boundary;
2. SFT throughput: the reference skill's template settings against our defaults (full fine-tuning, LoRA, QLoRA) on
   Qwen3-0.6B and Qwen3-1.7B shapes (random weights): real (non-padding) tokens/s, peak reserved memory, MFU;
3. plan.py's memory and step-time predictions for each of our runs;
4. a few GRPO steps with timing.

Writes bench/results/gpu-<date>.json and refreshes the generated section of bench/RESULTS.md (which says how to
carry the packages the GPU machine lacks). Exit 2 without a CUDA GPU or without TRL/datasets; exit 1 when the
numerics check or a run fails (the results are written all the same).

    python bench/gpu_suite.py
"""

import argparse
import contextlib
import importlib.util
import inspect
import itertools
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "bench"))
from common import run, token_dataset  # noqa: E402
from gpu_bench import build_model, predict  # noqa: E402
from shared import attention  # noqa: E402

PEAK_FLOPS = 989e12  # dense bf16 of an H100 SXM; the H200's is the same
MFU_BASIS = "6N FLOPs per real token (N: all parameters, LoRA runs too) over 989 TFLOP/s dense bf16"
MODELS = ("qwen3-0.6b", "qwen3-1.7b")
VOCAB = 151936
MAX_LENGTH = 2048
# The reference skill's template: no packing, batch 4 x grad-acc 4, LoRA on q/v only, eval every 100 steps
REFERENCE = ["--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "4", "--packing", "false",
             "--padding_free", "false", "--use_liger_kernel", "false", "--peft", "lora", "--lora_target_modules",
             "q_proj", "v_proj", "--eval_ratio", "0.05", "--eval_strategy", "steps", "--eval_steps", "100"]
SETTINGS = {"reference": REFERENCE, "ours": [], "ours_lora": ["--peft", "lora"], "ours_qlora": ["--peft", "qlora"]}
# Our defaults with the attention they had before the varlen path, on the first model only (time)
BEFORE_VARLEN = {"ours_sdpa": ["--attn_implementation", "sdpa"]}
PEFT = {"ours": "none", "ours_sdpa": "none", "ours_lora": "lora", "ours_qlora": "qlora"}
BEGIN, END = "<!-- gpu_suite.py: begin -->", "<!-- gpu_suite.py: end -->"


def varlen_numerics(device: str, autocast_dtype=None) -> dict:
    """The same rows packed through the varlen path and padded through sdpa, in one model (GQA, like Qwen3). On a
    GPU: fp32 weights under bf16 autocast, as full fine-tuning runs; on CPU (tests) fp32."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    attention.register_varlen_attention()
    torch.manual_seed(0)
    config = Qwen3Config(vocab_size=1000, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                         num_attention_heads=8, num_key_value_heads=2, head_dim=32, attn_implementation="sdpa")
    model = Qwen3ForCausalLM(config).to(device)
    rows = [torch.randint(0, config.vocab_size, (length,), device=device) for length in (37, 64, 23)]
    longest = max(len(row) for row in rows)
    mask = torch.stack([torch.arange(longest, device=device) < len(row) for row in rows])
    ids = torch.stack([torch.nn.functional.pad(row, (0, longest - len(row))) for row in rows])
    padded = {"input_ids": ids, "attention_mask": mask.long(), "labels": ids.masked_fill(~mask, -100)}
    # what TRL's padding-free collator hands the model
    positions = torch.cat([torch.arange(len(row), device=device) for row in rows])[None]
    bounds = torch.tensor([0, *itertools.accumulate(len(row) for row in rows)], dtype=torch.int32, device=device)
    packed = {"input_ids": torch.cat(rows)[None], "position_ids": positions, "cu_seq_lens_q": bounds,
              "cu_seq_lens_k": bounds, "max_length_q": longest, "max_length_k": longest}
    packed["labels"] = packed["input_ids"].masked_fill(positions == 0, -100)

    def loss_and_gradients(implementation: str, batch: dict) -> tuple[float, dict]:
        model.set_attn_implementation(implementation)
        model.zero_grad()
        with torch.autocast(device, dtype=autocast_dtype) if autocast_dtype else contextlib.nullcontext():
            loss = model(**batch).loss
        loss.backward()
        return loss.item(), {name: p.grad.clone() for name, p in model.named_parameters()}

    loss_sdpa, gradients_sdpa = loss_and_gradients("sdpa", padded)
    loss_varlen, gradients_varlen = loss_and_gradients(attention.VARLEN, packed)
    gradient_difference = max(((gradients_varlen[name] - gradient).norm() / gradient.norm()).item()
                              for name, gradient in gradients_sdpa.items())
    # the last row's loss alone: the tokens of the rows before it must get no gradient from it
    model.zero_grad()
    last_row = int(bounds[-2])
    embeddings = model.get_input_embeddings()(packed["input_ids"]).detach().requires_grad_()
    labels = packed["labels"].clone()
    labels[:, :last_row] = -100
    rest = {key: value for key, value in packed.items() if key not in ("input_ids", "labels")}
    with torch.autocast(device, dtype=autocast_dtype) if autocast_dtype else contextlib.nullcontext():
        model(inputs_embeds=embeddings, labels=labels, **rest).loss.backward()
    across_rows = embeddings.grad[0, :last_row].abs().max().item()
    within_row = embeddings.grad[0, last_row:].abs().max().item()
    loss_tolerance, gradient_tolerance = (5e-3, 5e-2) if autocast_dtype else (1e-5, 1e-4)
    loss_difference = abs(loss_varlen - loss_sdpa) / abs(loss_sdpa)
    from torch.nn.attention import varlen

    return {"device": device, "compute_dtype": str(autocast_dtype or torch.float32).removeprefix("torch."),
            "torch": torch.__version__,
            "varlen_attn_parameters": list(inspect.signature(varlen.varlen_attn).parameters),
            "loss_sdpa_padded": loss_sdpa, "loss_varlen_packed": loss_varlen,
            "loss_relative_difference": loss_difference, "gradient_relative_difference": gradient_difference,
            "gradient_across_rows": across_rows, "gradient_within_row": within_row,
            "tolerance": {"loss": loss_tolerance, "gradient": gradient_tolerance},
            "ok": loss_difference <= loss_tolerance and gradient_difference <= gradient_tolerance
            and across_rows == 0 and within_row > 0}


def measure_sft(name: str, model_name: str, model: Path, data: Path, work: Path, flags: list[str], steps: int) -> dict:
    """One train_sft.py run (gpu_bench.run: a subprocess with the real flags) as a record of the results file."""
    out = work / f"{model_name}-{name}"
    result = run("train_sft.py", model, data, out, ["--max_length", str(MAX_LENGTH), *flags], steps)
    record = {"name": name, "model": model_name, "flags": flags, "real_tokens_per_s": None, "peak_memory_gb": None,
              "mfu": None}
    if "error" in result:
        return record | {"error": result["error"][-2000:]}
    params = json.loads((out / "run.json").read_text())["params"]
    tokens_per_s = result["tokens_per_s"]
    chosen = re.search(r"attention=(\S+)", result["resolved"])
    return record | {"real_tokens_per_s": round(tokens_per_s) if tokens_per_s else None,
                     "peak_memory_gb": result["peak_memory_gb"], "peak_rss_gb": result["peak_rss_gb"],
                     "mfu": 6 * params * tokens_per_s / PEAK_FLOPS if tokens_per_s else None,
                     "step_s": round(result["step_s"], 3), "params": params, "wall_s": result["wall_s"],
                     "attention": chosen[1] if chosen else None}


def plan_accuracy(record: dict, model: Path) -> dict:
    """plan.py's prediction for one of our runs: batch 4 x 2048 tokens a micro-batch, 4 micro-batches a step."""
    predicted = predict(model, "sft", PEFT[record["name"]], MAX_LENGTH, 4, True, True)
    memory = predicted["breakdown"]["total"] - predicted["breakdown"]["cuda_context"]  # torch reserves the rest
    step = predicted["step_s"] * 4
    return {"case": f"{record['model']}-{record['name']}", "memory_measured_gb": record["peak_memory_gb"],
            "memory_predicted_gb": round(memory, 2), "memory_ratio": round(memory / record["peak_memory_gb"], 2),
            "step_measured_s": record["step_s"], "step_predicted_s": round(step, 3),
            "step_ratio": round(step / record["step_s"], 2)}


def grpo_timing(model_name: str, model: Path, work: Path, steps: int) -> dict:
    """A few train_grpo.py steps (4 prompts x 4 generations of 64 tokens, plain `generate`) with their timing."""
    data = work / "gsm8k.jsonl"
    data.write_text("".join(json.dumps({"question": f"What is {a} plus {b}?", "answer": f"{a} + {b}\n#### {a + b}"})
                            + "\n" for a in range(8) for b in range(8)))
    flags = ["--convert", "gsm8k", "--reward_funcs", "number_match", "--num_generations", "4",
             "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1",
             "--max_completion_length", "64"]
    result = run("train_grpo.py", model, data, work / "grpo", flags, steps)
    record = {"model": model_name, "steps": steps, "flags": flags}
    if "error" in result:
        return record | {"error": result["error"][-2000:]}
    return record | {"step_s": round(result["step_s"], 3), "wall_s": result["wall_s"],
                     "peak_memory_gb": result["peak_memory_gb"], "resolved": result["resolved"]}


def ratio(record: dict, base: dict, key: str) -> float | None:
    value, reference = record.get(key), base.get(key)
    return round(value / reference, 3) if value and reference else None


def ratios(named: dict) -> dict:
    """Our runs against the reference of the same model, and our defaults against the same with sdpa."""
    reference, sdpa = named.get("reference", {}), named.get("ours_sdpa", {})
    found = {}
    for label, name in (("full", "ours"), ("lora", "ours_lora"), ("qlora", "ours_qlora")):
        found[f"{label}_speed_vs_reference"] = ratio(named.get(name, {}), reference, "real_tokens_per_s")
        found[f"{label}_memory_vs_reference"] = ratio(named.get(name, {}), reference, "peak_memory_gb")
    return found | {"full_speed_vs_sdpa_packing": ratio(named.get("ours", {}), sdpa, "real_tokens_per_s")}


def results_document(device: str, date: str, runs: list[dict], **sections) -> dict:
    """The results file. `ratios` are the first model's (Qwen3-0.6B, the issue's headline); every model's are in
    `ratios_by_model`."""
    by_model = {}
    for record in runs:
        by_model.setdefault(record["model"], {})[record["name"]] = record
    ratios_by_model = {model: ratios(named) for model, named in by_model.items()}
    return {"device": device, "date": date, "mfu_basis": MFU_BASIS, "runs": runs,
            "ratios": next(iter(ratios_by_model.values()), ratios({})), "ratios_by_model": ratios_by_model,
            **sections}


def cell(value, form: str = "{}") -> str:
    return "—" if value is None else form.format(value)


def render_tables(document: dict) -> str:
    """The generated section of RESULTS.md, from a results file."""
    versions = ", ".join(f"{name} {version}" for name, version in document.get("versions", {}).items())
    lines = [f"Last run: {document['date']}, {document['device']}; {versions}. MFU: {document['mfu_basis']}.", ""]
    numerics = document.get("numerics")
    if numerics and "error" in numerics:
        lines += [f"Varlen numerics: **FAIL**, {numerics['error']}", ""]
    elif numerics:
        lines += [f"Varlen numerics ({numerics['compute_dtype']} on {numerics['device']}): loss "
                  f"{numerics['loss_sdpa_padded']:.4f} padded through sdpa, {numerics['loss_varlen_packed']:.4f} "
                  f"packed through varlen (relative difference {numerics['loss_relative_difference']:.1e}, "
                  f"tolerance {numerics['tolerance']['loss']:g}); gradients differ by "
                  f"{numerics['gradient_relative_difference']:.1e} (tolerance {numerics['tolerance']['gradient']:g}); "
                  f"largest gradient across a row boundary {numerics['gradient_across_rows']:g}: "
                  f"**{'pass' if numerics['ok'] else 'FAIL'}**.", ""]
    lines += ["| Model | Run | Attention | Real tokens/s | vs reference | Peak reserved | vs reference | MFU |",
              "|---|---|---|---|---|---|---|---|"]
    for record in document["runs"]:
        reference = next((r for r in document["runs"] if r["model"] == record["model"] and r["name"] == "reference"),
                         {})
        status = record.get("skipped") or ("failed" if "error" in record else None)
        speed, memory = ratio(record, reference, "real_tokens_per_s"), ratio(record, reference, "peak_memory_gb")
        lines.append(f"| {record['model']} | {record['name']} | {cell(record.get('attention'))} | "
                     f"{status or cell(record['real_tokens_per_s'], '{:,}')} | {cell(speed, '{:.2f}x')} | "
                     f"{cell(record['peak_memory_gb'], '{:.2f} GB')} | {cell(memory, '{:.2f}x')} | "
                     f"{cell(record['mfu'], '{:.1%}')} |")
    lines += ["", "Ratios (" + ", ".join(f"{name} {cell(value, '{:.2f}x')}"
                                         for name, value in document["ratios"].items()) + ")."]
    if document.get("plan_accuracy"):
        lines += ["", "| plan.py case | Memory measured | predicted | ratio | Step measured | predicted | ratio |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {case['case']} | {case['memory_measured_gb']:.2f} GB | {case['memory_predicted_gb']:.2f} GB | "
                  f"{case['memory_ratio']:.2f} | {case['step_measured_s']:.3f} s | {case['step_predicted_s']:.3f} s | "
                  f"{case['step_ratio']:.2f} |" for case in document["plan_accuracy"]]
    grpo = document.get("grpo")
    if grpo:
        outcome = (grpo.get("skipped") or ("failed" if "error" in grpo else
                   f"median step {grpo['step_s']:.2f} s, whole run {grpo['wall_s']:.0f} s"))
        lines += ["", f"GRPO, {grpo['model']}, {grpo['steps']} steps ({' '.join(grpo['flags'])}): {outcome}."]
    return "\n".join(lines) + "\n"


def refresh_results(text: str, tables: str) -> str:
    """RESULTS.md with its generated section replaced; everything around it kept."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return f"{text[:start]}\n{tables}{text[end:]}"


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("torch", "transformers", "trl", "peft", "liger-kernel", "bitsandbytes"):
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps a training run (2 are warm-up)")
    parser.add_argument("--minutes", type=float, default=9, help="runs that would end later are skipped, and say so")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="where gpu-<date>.json goes")
    parser.add_argument("--results_md", default=str(ROOT / "bench" / "RESULTS.md"), help="whose tables to refresh")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("error: bench/gpu_suite.py needs a CUDA GPU and none is visible here; run it on a GPU machine "
              "(bench/RESULTS.md says how).", file=sys.stderr)
        sys.exit(2)
    missing = [name for name in ("trl", "datasets") if importlib.util.find_spec(name) is None]
    if missing:
        print(f"error: {' and '.join(missing)} not installed; install them or carry their wheels as bench/RESULTS.md "
              "describes.", file=sys.stderr)
        sys.exit(2)
    deadline = time.time() + args.minutes * 60
    estimate = 60.0  # seconds the next run may take: 1.5x the longest so far (the 1.7B runs are longer)
    try:
        numerics = varlen_numerics("cuda", torch.bfloat16)
    except Exception as error:  # noqa: BLE001 - a kernel that fails is this check's finding; the timings still run
        numerics = {"ok": False, "error": f"{type(error).__name__}: {error}"}
    print(f"varlen numerics: {json.dumps(numerics)}", flush=True)
    work = Path("/tmp/hflt-suite")
    work.mkdir(exist_ok=True)
    data = token_dataset(work, VOCAB, MAX_LENGTH, 400, variable=True)
    runs, accuracy, grpo = [], [], {"model": MODELS[0], "steps": 4, "flags": []}
    too_late = f"skipped ({args.minutes:g}-minute limit)"
    for model_name in MODELS:
        model = build_model(model_name, work)
        for name, flags in (SETTINGS | (BEFORE_VARLEN if model_name == MODELS[0] else {})).items():
            if time.time() + estimate > deadline:
                runs.append({"name": name, "model": model_name, "flags": flags, "real_tokens_per_s": None,
                             "peak_memory_gb": None, "mfu": None, "skipped": too_late})
                continue
            record = measure_sft(name, model_name, model, data, work, flags, args.steps)
            estimate = max(estimate, 1.5 * (record.get("wall_s") or 0))
            runs.append(record)
            print(f"{model_name} {name}: {json.dumps({k: v for k, v in record.items() if k != 'error'})}"
                  + (f"\n{record['error']}" if "error" in record else ""), flush=True)
            if name in PEFT and record["peak_memory_gb"] and record.get("step_s"):
                accuracy.append(plan_accuracy(record, model))
        if model_name == MODELS[0]:
            grpo = grpo_timing(model_name, model, work, 4) if time.time() + estimate < deadline else grpo | {
                "skipped": too_late}
            print(f"grpo: {json.dumps(grpo)}", flush=True)
    date = time.strftime("%Y-%m-%d")
    document = results_document(torch.cuda.get_device_name(0), date, runs, versions=versions(), numerics=numerics,
                                 plan_accuracy=accuracy, grpo=grpo)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"gpu-{date}.json").write_text(json.dumps(document, indent=2) + "\n")
    tables = render_tables(document)
    results_md = Path(args.results_md)
    results_md.write_text(refresh_results(results_md.read_text(), tables))
    print(tables, flush=True)
    failed = not numerics["ok"] or "error" in grpo or any("error" in record for record in runs)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
