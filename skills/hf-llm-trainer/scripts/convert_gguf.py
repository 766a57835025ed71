# /// script
# requires-python = ">=3.10"
# dependencies = [
#     "transformers>=5.0",
#     "peft>=0.17",
#     "torch",
#     "huggingface_hub>=1.0",
#     "numpy",
#     "sentencepiece",
#     "protobuf",
#     "safetensors",
#     "gguf>=0.17",
#     "cmake>=3.24",
#     "pip",
# ]
# ///
"""Merge, convert, quantize, verify and publish GGUF files for llama.cpp, Ollama and LM Studio.

    uv run convert_gguf.py --model username/my-model --quant Q4_K_M,Q8_0 --push_to username/my-model-GGUF
    uv run convert_gguf.py --model ./sft-lora-output --base Qwen/Qwen3-0.6B --outdir gguf/

llama.cpp comes from the source tree vendored in the llama-cpp-python sdist on PyPI (pinned below), never a git
clone; its tools are built once with cmake (CPU) and cached in the user's cache dir. A LoRA adapter is merged into
its base first. Every file is verified before anything is published: it loads in llama.cpp and generates, its
metadata is right, and the f16 file's next-token logits match the Hugging Face model's. Exports are recorded in
the model's run.json.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from datetime import datetime, timezone
from pathlib import Path

LLAMA_CPP_PYTHON = "0.3.36"
TOOLS = ("llama-quantize", "llama-simple", "llama-debug")
QUANT_TYPES = {"F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_0", "Q4_K_M", "Q4_K_S", "Q4_0", "Q3_K_M",
               "Q2_K", "IQ4_XS"}
FILE_TYPES = {"F16": 1, "BF16": 32, "Q8_0": 7, "Q6_K": 18, "Q5_K_M": 17, "Q5_K_S": 16, "Q5_0": 8, "Q4_K_M": 15,
              "Q4_K_S": 14, "Q4_0": 2, "Q3_K_M": 12, "Q2_K": 10, "IQ4_XS": 30}
PROMPTS = ["def add(a, b):", "The capital of France is", "Write a Python function that reverses a string."]
LOGIT_TOLERANCE = 0.02  # max |softmax difference| between HF and the f16 GGUF on the next token
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hf-llm-trainer" / f"llama.cpp-{LLAMA_CPP_PYTHON}"


class BadInput(Exception):
    pass


def log(message: str):
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- llama.cpp, from a pinned PyPI sdist


def llama_cpp() -> Path:
    """The vendored llama.cpp source with its tools built; cached after the first call."""
    source, build = CACHE / "src", CACHE / "build"
    if not (source / "convert_hf_to_gguf.py").exists():
        log(f"Fetching llama.cpp from the llama-cpp-python {LLAMA_CPP_PYTHON} source distribution (one time)...")
        # pip is a dependency above: uv-made environments (uv run, HF Jobs) have none, and it honours index settings
        with tempfile.TemporaryDirectory() as download:
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                            f"llama-cpp-python=={LLAMA_CPP_PYTHON}", "-d", download], check=True)
            archive = next(Path(download).glob("llama_cpp_python-*.tar.gz"))
            staging = Path(tempfile.mkdtemp(dir=CACHE.parent if CACHE.parent.exists() else None))
            with tarfile.open(archive) as tar:
                members = [m for m in tar.getmembers() if "/vendor/llama.cpp/" in m.name]
                tar.extractall(staging, members=members, filter="data")
            CACHE.mkdir(parents=True, exist_ok=True)
            vendored = next(staging.glob("*/vendor/llama.cpp"))
            shutil.rmtree(source, ignore_errors=True)
            os.replace(vendored, source)
            shutil.rmtree(staging, ignore_errors=True)
    if not all((build / "bin" / tool).exists() for tool in TOOLS):
        log("Building llama.cpp's quantizer and runners with cmake (one time, a few minutes on 2 cores)...")
        cmake = shutil.which("cmake") or str(Path(sys.executable).parent / "cmake")
        subprocess.run([cmake, "-S", str(source), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=OFF",
                        "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_SERVER=OFF", "-DGGML_OPENMP=OFF"],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run([cmake, "--build", str(build), "-j", str(os.cpu_count() or 2), "--target", *TOOLS], check=True,
                       stdout=subprocess.DEVNULL)
    return CACHE


# ---------------------------------------------------------------- model preparation


def resolve_model(model: str, base: str | None, workdir: Path) -> Path:
    """A local directory or Hub repo with full weights; a LoRA adapter is merged into its base first."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    path = Path(model)
    if not path.is_dir():
        try:
            path = Path(snapshot_download(model, allow_patterns=["*.json", "*.safetensors", "*.model", "*.jinja",
                                                                  "*.txt", "*.py"]))
        except (RepositoryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError, ValueError) as error:
            raise BadInput(f"Model {model!r} is neither a local directory nor a reachable Hub repo ({error.__class__.__name__}).")
    adapter = path / "adapter_config.json"
    if not adapter.exists():
        if not (path / "config.json").exists():
            raise BadInput(f"{path} has no config.json or adapter_config.json; pass a model or a LoRA adapter directory.")
        return path
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = base or json.loads(adapter.read_text()).get("base_model_name_or_path")
    try:
        base_path = resolve_model(base, None, workdir) if base else None
    except BadInput:
        base_path = None
    if base_path is None:
        raise BadInput(f"{model} is a LoRA adapter and its base {base!r} cannot be reached; pass --base with a local "
                       "directory or a Hub id of the base model.")
    log(f"Merging the LoRA adapter {model} into {base} (fp32, then saved in the base's dtype)...")
    merged_dir = workdir / "merged"
    base_model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    merged = PeftModel.from_pretrained(base_model, path).merge_and_unload()
    merged.save_pretrained(merged_dir)
    tokenizer_source = path if (path / "tokenizer_config.json").exists() else base_path
    AutoTokenizer.from_pretrained(tokenizer_source).save_pretrained(merged_dir)
    for name in ("tokenizer.model", "chat_template.jinja"):  # the converter reads the SentencePiece model directly
        for candidate in (path / name, base_path / name):
            if candidate.exists() and not (merged_dir / name).exists():
                shutil.copy(candidate, merged_dir / name)
    return merged_dir


def convert(llama: Path, model_dir: Path, outfile: Path):
    env = {**os.environ, "PYTHONPATH": str(llama / "src" / "gguf-py")}
    result = subprocess.run([sys.executable, str(llama / "src" / "convert_hf_to_gguf.py"), str(model_dir), "--outfile",
                             str(outfile), "--outtype", "f16"], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        message = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "unknown error"
        if "not supported" in result.stderr or "NotImplementedError" in result.stderr:
            raise BadInput(f"llama.cpp's converter does not support this model: {message}")
        raise RuntimeError(f"convert_hf_to_gguf.py failed: {message}")


def quantize(llama: Path, f16: Path, outfile: Path, quant: str):
    result = subprocess.run([str(llama / "build" / "bin" / "llama-quantize"), str(f16), str(outfile), quant],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"llama-quantize {quant} failed: {result.stderr.strip().splitlines()[-1:]}")
    fallbacks = result.stdout.count("fallback") + result.stderr.count("fallback")
    return fallbacks


# ---------------------------------------------------------------- verification


def metadata(path: Path) -> dict:
    from gguf import GGUFReader

    reader = GGUFReader(str(path))

    def field(name):
        item = reader.fields.get(name)
        if item is None:
            return None
        value = item.parts[item.data[0]]
        return bytes(value).decode() if item.types and item.types[0].name == "STRING" else value.tolist()[0]

    tensor_types = sorted({tensor.tensor_type.name for tensor in reader.tensors})
    architecture = field("general.architecture")
    return {"architecture": architecture, "tokenizer": field("tokenizer.ggml.model"),
            "chat_template": bool(field("tokenizer.chat_template")), "file_type": field("general.file_type"),
            "tensor_types": tensor_types, "tensors": len(reader.tensors)}


def generates(llama: Path, path: Path) -> str:
    result = subprocess.run([str(llama / "build" / "bin" / "llama-simple"), "-m", str(path), "-n", "8", PROMPTS[0]],
                            capture_output=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"{path.name} does not run in llama.cpp: {result.stderr.decode(errors='replace')[-300:]}")
    text = result.stdout.decode(errors="replace")
    if PROMPTS[0] not in text:
        raise RuntimeError(f"{path.name} generated nothing in llama.cpp")
    return text


def logits_gap(llama: Path, f16: Path, model_dir: Path) -> float:
    """Largest next-token probability difference between the HF model and the f16 GGUF over a few prompts."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    worst = 0.0
    with tempfile.TemporaryDirectory() as out:
        for prompt in PROMPTS:
            subprocess.run([str(llama / "build" / "bin" / "llama-debug"), "-m", str(f16), "-p", prompt, "--save-logits",
                            "--logits-output-dir", out], capture_output=True, check=True, timeout=300)
            tokens = np.fromfile(Path(out) / f"llamacpp-{f16.stem}-tokens.bin", dtype=np.int32)
            gguf_logits = np.fromfile(Path(out) / f"llamacpp-{f16.stem}.bin", dtype=np.float32)
            with torch.no_grad():
                hf_logits = model(torch.tensor([tokens.tolist()])).logits[0, -1].numpy()
            gguf_logits = gguf_logits[: hf_logits.shape[0]]
            softmax = lambda x: np.exp(x - x.max()) / np.exp(x - x.max()).sum()  # noqa: E731
            worst = max(worst, float(np.abs(softmax(hf_logits) - softmax(gguf_logits)).max()))
    return worst


# ---------------------------------------------------------------- publishing


def model_card(repo: str, source: str, files: list[dict]) -> str:
    rows = "\n".join(f"| `{f['file']}` | {f['quant']} | {f['size_mb']:.1f} MB |" for f in files)
    default = next((f["quant"] for f in files if f["quant"] == "Q4_K_M"), files[-1]["quant"])
    return f"""---
base_model: {source}
tags:
- gguf
- llama.cpp
- hf-llm-trainer
---
# {repo.split('/')[-1]}

GGUF files of [{source}](https://huggingface.co/{source}), converted and quantized with llama.cpp and verified
(loads, generates, f16 logits match the original).

| File | Quantization | Size |
|---|---|---|
{rows}

## Use

```bash
llama-server -hf {repo}:{default}
ollama run hf.co/{repo}:{default}
```

LM Studio: search for `{repo}` in the model browser and pick the {default} file.
"""


def publish(repo: str, outdir: Path, files: list[dict], source: str):
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo, exist_ok=True)
    (outdir / "README.md").write_text(model_card(repo, source, files))
    api.upload_folder(repo_id=repo, folder_path=outdir, allow_patterns=["*.gguf", "README.md"],
                      commit_message="GGUF export (hf-llm-trainer)")


def record_exports(model: str, entries: list[dict], repo: str | None):
    run = Path(model) / "run.json"
    if not run.exists():
        return
    data = json.loads(run.read_text())
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    data.setdefault("exports", []).extend({**entry, "repo": repo, "date": stamp} for entry in entries)
    tmp = run.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, run)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="Hub id, local directory or LoRA adapter")
    parser.add_argument("--base", default=None, help="base model of an adapter (default: the adapter's own record)")
    parser.add_argument("--quant", default="Q4_K_M", help=f"comma-separated: {', '.join(sorted(QUANT_TYPES))}")
    parser.add_argument("--outdir", default=None, help="where the .gguf files go (default: <model name>-GGUF)")
    parser.add_argument("--push_to", default=None, help="Hub repo for the files, e.g. username/my-model-GGUF")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()

    quants = [q.strip().upper() for q in args.quant.split(",") if q.strip()]
    unknown = [q for q in quants if q not in QUANT_TYPES]
    if unknown or not quants:
        raise BadInput(f"Unknown quantization {', '.join(unknown) or '(none)'}; use one of {', '.join(sorted(QUANT_TYPES))}.")
    name = Path(args.model.rstrip("/")).name
    outdir = Path(args.outdir or f"{name}-GGUF")
    outdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        model_dir = resolve_model(args.model, args.base, Path(work))
        llama = llama_cpp()
        f16 = outdir / f"{name}-F16.gguf"
        log(f"Converting {model_dir} to {f16} ...")
        convert(llama, model_dir, f16)
        gap = logits_gap(llama, f16, model_dir)
        if gap > LOGIT_TOLERANCE:
            raise RuntimeError(f"the f16 GGUF disagrees with the HF model (probability gap {gap:.4f} > "
                               f"{LOGIT_TOLERANCE}); not publishing")
        log(f"f16 logits match the HF model (max probability gap {gap:.5f}).")
        outputs = []
        for quant in quants:
            path = f16 if quant == "F16" else outdir / f"{name}-{quant}.gguf"
            fallbacks = 0 if quant == "F16" else quantize(llama, f16, path, quant)
            meta = metadata(path)
            problems = [text for ok, text in [
                (meta["architecture"], "no architecture"), (meta["tokenizer"], "no tokenizer"),
                (meta["chat_template"] or not (model_dir / "chat_template.jinja").exists(), "chat template lost"),
                (meta["file_type"] == FILE_TYPES[quant], f"file type {meta['file_type']} is not {quant}")] if not ok]
            if problems:
                raise RuntimeError(f"{path.name}: {', '.join(problems)}; not publishing")
            sample = generates(llama, path)
            outputs.append({"file": path.name, "quant": quant, "size_mb": path.stat().st_size / 2**20,
                            "metadata": meta, "fallback_tensors": fallbacks, "sample": sample[-120:]})
            log(f"{path.name}: {outputs[-1]['size_mb']:.1f} MB, {meta['architecture']}, tensors {meta['tensor_types']}, "
                "loads and generates.")
        if "F16" not in quants:
            f16.unlink()
        if args.push_to:
            publish(args.push_to, outdir, outputs, args.base or args.model)
            log(f"Pushed to https://huggingface.co/{args.push_to}")
    record_exports(args.model, [{k: o[k] for k in ("file", "quant", "size_mb")} for o in outputs], args.push_to)
    result = {"model": args.model, "outdir": str(outdir.resolve()), "logits_max_prob_gap": gap, "files": outputs,
              "repo": args.push_to,
              "usage": f"llama-server -hf {args.push_to}:{quants[0]}" if args.push_to else
              f"llama-server -m {outdir / outputs[0]['file']}"}
    print(json.dumps(result, indent=2) if args.json else f"Done: {len(outputs)} verified file(s) in {outdir}. "
          f"Run with: {result['usage']}")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        main()
    except BadInput as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
