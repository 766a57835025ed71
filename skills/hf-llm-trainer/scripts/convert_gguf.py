# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "transformers>=5.23,<6",
#     "peft>=0.17,<1",
#     "torch>=2.6,<2.14",
#     "huggingface_hub>=2.4,<3",
#     "numpy>=1.26,<3",
#     "sentencepiece>=0.2,<1",
#     "protobuf>=5,<8",
#     "safetensors>=0.5,<1",
#     "gguf>=0.17,<1",
#     "cmake>=3.24,<5",
#     "pip>=24,<27",
#     "jinja2>=3.1,<4",
# ]
# [tool.uv]
# exclude-newer = "2026-11-21T00:00:00Z"
# constraint-dependencies = [
#     "accelerate==1.15.0",
#     "datasets==5.2.0",
#     "huggingface-hub==2.4.0",
#     "lighteval==0.13.0",
#     "peft==0.21.2",
#     "pyarrow==26.0.1",
#     "torch==2.13.0",
#     "trackio==0.43.0",
#     "transformers==5.23.0",
#     "trl==1.16.0",
# ]
# ///
"""Merge, convert, quantize, verify and publish GGUF files for llama.cpp, Ollama and LM Studio.

    uv run convert_gguf.py --model username/my-model --quant Q4_K_M,Q8_0 --push_to username/my-model-GGUF
    uv run convert_gguf.py --model ./sft-lora-output --base Qwen/Qwen3-0.6B --outdir gguf/

llama.cpp comes from the source tree vendored in the llama-cpp-python sdist on PyPI (pinned below), never a git
clone; its tools are built once with cmake (CPU) and cached in the user's cache dir. A LoRA adapter is merged into
its base first. Every file is verified before anything is published: its metadata is right (architecture,
tokenizer, the model's chat template, file type), the f16 file's next-token probabilities and its greedy answer to a
chat prompt match the Hugging Face model's, and it answers a chat turn through llama-server's OpenAI-compatible API.
Each file gets an Ollama Modelfile beside it. Exports are recorded in the model's run.json.
"""

import argparse
import fcntl
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

LLAMA_CPP_PYTHON = "0.3.36"
TOOLS = ("llama-quantize", "llama-debug", "llama-server")
QUANT_TYPES = {"F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_0", "Q4_K_M", "Q4_K_S", "Q4_0", "Q3_K_M",
               "Q2_K", "IQ4_XS"}
FILE_TYPES = {"F16": 1, "BF16": 32, "Q8_0": 7, "Q6_K": 18, "Q5_K_M": 17, "Q5_K_S": 16, "Q5_0": 8, "Q4_K_M": 15,
              "Q4_K_S": 14, "Q4_0": 2, "Q3_K_M": 12, "Q2_K": 10, "IQ4_XS": 30}
PROMPTS = ["def add(a, b):", "The capital of France is", "Write a Python function that reverses a string."]
LOGIT_TOLERANCE = 0.02  # max |softmax difference| between HF and the f16 GGUF on the next token
CHAT = [{"role": "user", "content": "Write a Python function that reverses a string."}]
GOLDEN_TOKENS = 8  # greedy tokens of the chat prompt the f16 file must produce exactly as the HF model does
CHAT_MAX_TOKENS = 256
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hf-llm-trainer" / f"llama.cpp-{LLAMA_CPP_PYTHON}"
# Ollama's Go-template form of ChatML (Qwen's template family), for multi-turn chats and for single prompts
CHATML_OLLAMA = """{{- if .Messages }}
{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ .Content }}{{ if not $last }}<|im_end|>
{{ end }}
{{- end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ end }}
{{- end }}
{{- else }}
{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{ if .Prompt }}<|im_start|>user
{{ .Prompt }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ end }}{{ .Response }}{{ if .Response }}<|im_end|>{{ end }}"""


class Failed(Exception):
    """A runtime failure with a message that says what happened and what to do next (exit 1, no traceback)."""


def log(message: str):
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- llama.cpp, from a pinned PyPI sdist


def llama_cpp() -> Path:
    """The vendored llama.cpp source with its tools built; cached after the first call. Conversions running side
    by side wait for one build rather than racing in the same build directory."""
    source, build = CACHE / "src", CACHE / "build"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        fetch_and_build(source, build)
    return CACHE


def fetch_and_build(source: Path, build: Path):
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
        log("Building llama.cpp's quantizer, runner and server with cmake (one time, minutes on 2 cores)...")
        cmake = shutil.which("cmake") or str(Path(sys.executable).parent / "cmake")
        subprocess.run([cmake, "-S", str(source), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=OFF",
                        "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_SERVER=ON", "-DGGML_OPENMP=OFF"],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run([cmake, "--build", str(build), "-j", str(os.cpu_count() or 2), "--target", *TOOLS], check=True,
                       stdout=subprocess.DEVNULL)


# ---------------------------------------------------------------- model preparation


def resolve_model(model: str, base: str | None, workdir: Path) -> Path:
    """A local directory or Hub repo with full weights; a LoRA adapter is merged into its base first."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    path = Path(model)
    if not path.is_dir():
        try:
            path = Path(snapshot_download(model, allow_patterns=["*.json", "*.safetensors", "*.bin", "*.model",
                                                                  "*.jinja", "*.txt", "*.py"]))
        except (RepositoryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError, ValueError) as error:
            raise BadInput(f"Model {model!r} is neither a local directory nor a reachable Hub repo ({error.__class__.__name__}).")
    adapter = path / "adapter_config.json"
    if not adapter.exists():
        if not (path / "config.json").exists():
            raise BadInput(f"{path} has no config.json or adapter_config.json; pass a model or a LoRA adapter directory.")
        try:
            json.loads((path / "config.json").read_text())
        except ValueError:
            raise BadInput(f"{path / 'config.json'} is not valid JSON; restore it from the training output.")
        check_weights(str(path))
        return path
    check_weights(str(path))  # before its base is fetched
    base = base or adapter_base(str(path))
    try:
        base_path = resolve_model(base, None, workdir) if base else None
    except BadInput:
        base_path = None
    if base_path is None:
        raise BadInput(f"{model} is a LoRA adapter and its base {base!r} cannot be reached; pass --base with a local "
                       "directory or a Hub id of the base model.")
    log(f"Merging the LoRA adapter {model} into {base} (fp32, then saved in the base's dtype)...")
    return save_merged(str(path), str(base_path), workdir / "merged")


def convert(llama: Path, model_dir: Path, outfile: Path):
    env = {**os.environ, "PYTHONPATH": str(llama / "src" / "gguf-py")}
    result = subprocess.run([sys.executable, str(llama / "src" / "convert_hf_to_gguf.py"), str(model_dir), "--outfile",
                             str(outfile), "--outtype", "f16"], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        message = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "unknown error"
        if "not supported" in result.stderr or "NotImplementedError" in result.stderr:
            raise BadInput(f"llama.cpp's converter does not support this model: {message}")
        raise Failed(f"convert_hf_to_gguf.py failed: {message}")


def quantize(llama: Path, f16: Path, outfile: Path, quant: str):
    result = subprocess.run([str(llama / "build" / "bin" / "llama-quantize"), str(f16), str(outfile), quant],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise Failed(f"llama-quantize {quant} failed: {result.stderr.strip().splitlines()[-1:]}")
    fallbacks = result.stdout.count("fallback") + result.stderr.count("fallback")
    return fallbacks


# ---------------------------------------------------------------- verification


def metadata(path: Path) -> dict:
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    fields = reader.fields

    def field(name):
        return fields[name].contents() if name in fields else None

    return {"architecture": field("general.architecture"), "tokenizer": field("tokenizer.ggml.model"),
            "pre_tokenizer": field("tokenizer.ggml.pre"), "chat_template": field("tokenizer.chat_template"),
            "file_type": field("general.file_type"),
            "tensor_types": sorted({tensor.tensor_type.name for tensor in reader.tensors}),
            "tensors": len(reader.tensors)}


def logits_gap(llama: Path, f16: Path, model) -> float:
    """Largest next-token probability difference between the HF model and the f16 GGUF over a few prompts."""
    import numpy as np
    import torch

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


def end_tokens(model, tokenizer) -> list[str]:
    """The tokens that end a turn: ChatML's <|im_end|> when the template uses it, then the eos tokens."""
    eos_ids = model.generation_config.eos_token_id
    eos_ids = eos_ids if isinstance(eos_ids, list) else [eos_ids]
    names = ["<|im_end|>"] if "<|im_end|>" in (tokenizer.chat_template or "") else []
    names += [tokenizer.eos_token] + tokenizer.convert_ids_to_tokens([i for i in eos_ids if i is not None])
    return list(dict.fromkeys(name for name in names if name))


def golden_prompt(model, tokenizer) -> dict:
    """The chat prompt (with the generation prompt) as token ids and the HF model's greedy continuation of it."""
    import torch

    if tokenizer.chat_template:
        text = tokenizer.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    else:
        text = PROMPTS[2]
    prompt = tokenizer(text).input_ids
    stop_ids = set(tokenizer.convert_tokens_to_ids(end_tokens(model, tokenizer)))
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(GOLDEN_TOKENS):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
            if ids[-1] in stop_ids:
                break
    return {"text": text, "prompt_ids": prompt, "hf_ids": ids[len(prompt):],
            "hf_continuation": tokenizer.decode(ids[len(prompt):])}


def ollama_template(tokenizer) -> tuple[str | None, str]:
    """Ollama's Go template for the model's chat template when it is ChatML, else None and the reason."""
    from jinja2 import TemplateError

    if not tokenizer.chat_template:
        return None, "the model has no chat template"
    probes = [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
              [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
               {"role": "user", "content": "Bye"}]]
    for messages in probes:
        chatml = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        try:
            rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except TemplateError:
            rendered = None
        if rendered != chatml + "<|im_start|>assistant\n":
            return None, ("the chat template is not ChatML, the one form translated to Ollama's Go template; Ollama "
                          "falls back to the GGUF's own template")
    return CHATML_OLLAMA, "ChatML"


def modelfile(gguf_name: str, template: str | None, stops: list[str]) -> str:
    lines = [f"FROM ./{gguf_name}"] + ([f'TEMPLATE """{template}"""'] if template else [])
    return "\n".join(lines + [f'PARAMETER stop "{stop}"' for stop in stops]) + "\n"


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with LOOPBACK.open(request, timeout=600) as response:
            return json.loads(response.read())
    except OSError as error:
        raise Failed(f"llama-server failed on {url.split('/', 3)[-1]}: {error}")


LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # llama-server is local: never via a proxy


@contextmanager
def llama_server(llama: Path, gguf: Path):
    """llama-server for one GGUF file on a free loopback port; stopped and waited for when the block ends."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as server_log:
        server = subprocess.Popen([str(llama / "build" / "bin" / "llama-server"), "-m", str(gguf), "--host",
                                   "127.0.0.1", "--port", str(port), "-c", "2048", "-np", "1", "--jinja",
                                   "--reasoning-format", "none", "--no-webui", "--no-warmup"],
                                  stdout=server_log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 300
            while True:
                try:
                    with LOOPBACK.open(f"{url}/health", timeout=5):
                        break
                except OSError:  # not listening yet, or 503 while the model loads
                    if server.poll() is not None or time.monotonic() > deadline:
                        server_log.seek(0)
                        tail = server_log.read().decode(errors="replace").strip().splitlines()[-3:]
                        raise Failed(f"llama-server could not serve {gguf.name}: {' / '.join(tail)}")
                    time.sleep(0.2)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def check_in_server(llama: Path, gguf: Path, golden: dict, chat: bool) -> dict:
    """The file's greedy continuation of the golden prompt, and one chat turn through the OpenAI-compatible API."""
    with llama_server(llama, gguf) as url:
        completion = post(f"{url}/completion", {"prompt": golden["prompt_ids"], "n_predict": len(golden["hf_ids"]),
                                                "temperature": 0, "return_tokens": True, "cache_prompt": False})
        gguf_ids = completion["tokens"]
        agree = next((i for i, (a, b) in enumerate(zip(golden["hf_ids"], gguf_ids)) if a != b),
                     min(len(golden["hf_ids"]), len(gguf_ids)))
        result = {"golden": {"agree": agree, "of": len(golden["hf_ids"]), "continuation": completion["content"]}}
        if chat:
            # enable_thinking=false: a reasoning model (Qwen3) answers directly instead of thinking past the limit
            reply = post(f"{url}/v1/chat/completions", {"messages": CHAT, "max_tokens": CHAT_MAX_TOKENS,
                                                        "temperature": 0,
                                                        "chat_template_kwargs": {"enable_thinking": False}})["choices"][0]
            answer = reply["message"].get("content") or ""
            if not answer.strip():
                raise Failed(f"{gguf.name} gave an empty answer to a chat turn in llama-server; not publishing")
            result["chat"] = {"answer": answer[:500], "finish_reason": reply["finish_reason"],
                              "stops_at_end_of_turn": reply["finish_reason"] == "stop"}
    return result


# ---------------------------------------------------------------- publishing


def model_card(repo: str, source: str, files: list[dict]) -> str:
    rows = "\n".join(f"| `{f['file']}` | {f['quant']} | {f['size_mb']:.1f} MB | `{f['modelfile']}` |" for f in files)
    default = next((f for f in files if f["quant"] == "Q4_K_M"), files[-1])
    on_hub = not Path(source).exists()  # a local directory is no valid base_model
    origin = f"[{source}](https://huggingface.co/{source})" if on_hub else f"the local model `{Path(source).name}`"
    job = job_from_env()
    made_by = f" Made by job [{job['id']}]({job['url']})." if job.get("url") else ""
    base_model = f"base_model: {source}\n" if on_hub else ""
    return f"""---
{base_model}tags:
- gguf
- llama.cpp
- hf-llm-trainer
---
# {repo.split('/')[-1]}

GGUF files of {origin}, converted and quantized with llama.cpp and verified
(f16 logits and greedy chat answer match the original; every file answers a chat turn in llama-server).{made_by}

| File | Quantization | Size | Ollama Modelfile |
|---|---|---|---|
{rows}

## Use

```bash
llama-server -hf {repo}:{default['quant']}
ollama run hf.co/{repo}:{default['quant']}
```

With the Modelfile (chat template and stop tokens) after downloading the repo:
`ollama create {repo.split('/')[-1].lower()} -f {default['modelfile']}`.

LM Studio: search for `{repo}` in the model browser and pick the {default['quant']} file.
"""


def publish(repo: str, outdir: Path, files: list[dict], source: str):
    from huggingface_hub import HfApi

    (outdir / "README.md").write_text(model_card(repo, source, files))
    api = HfApi()
    api.create_repo(repo, exist_ok=True)
    api.upload_folder(repo_id=repo, folder_path=outdir, allow_patterns=upload_patterns(files),
                      commit_message="GGUF export (hf-llm-trainer)")


def upload_patterns(files: list[dict]) -> list[str]:
    return [name for f in files for name in (f["file"], f["modelfile"])] + ["README.md"]


def record_exports(model: str, entries: list[dict], repo: str | None):
    """The exports join the run's record: a local run directory's run.json, or the run.json of the Hub repo the
    training pushed to (a model trained elsewhere has none: nothing is recorded)."""
    stamp, job = utcnow(), job_from_env()
    exports = [{**entry, "repo": repo, "date": stamp, "job": job} for entry in entries]
    if (Path(model) / "run.json").exists():
        update_run_record(model, {}, append={"exports": exports})
        return
    try:
        if not Path(model).exists() and hub_run_record(model)[0]:
            append_to_hub_run_record(model, "exports", exports, f"GGUF {', '.join(e['quant'] for e in exports)} "
                                     f"exported to {repo or 'a local directory'}")
    except Exception as error:  # noqa: BLE001 - the files are made and verified: the record is a side note
        log(f"warning: the exports were not recorded in {model}'s run.json ({error}).")


def check_arguments(args) -> list[str]:
    """Everything that can be refused before any work is done; returns the quantization types."""
    from huggingface_hub import get_token
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    quants = list(dict.fromkeys(q.strip().upper() for q in args.quant.split(",") if q.strip()))
    unknown = [q for q in quants if q not in QUANT_TYPES]
    if unknown or not quants:
        raise BadInput(f"Unknown quantization {', '.join(unknown) or '(none)'}; use one of {', '.join(sorted(QUANT_TYPES))}.")
    if args.outdir and Path(args.outdir).exists() and not Path(args.outdir).is_dir():
        raise BadInput(f"--outdir {args.outdir} is a file; pass a directory (it is created if missing).")
    if args.push_to:
        try:
            validate_repo_id(args.push_to)
        except HFValidationError:
            raise BadInput(f"--push_to {args.push_to!r} is not a Hub repo id; use username/name-GGUF.")
        if get_token() is None:
            raise BadInput("--push_to needs a Hugging Face token with write access: run `hf auth login` or set HF_TOKEN.")
    return quants


def main():
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="Hub id, local directory or LoRA adapter")
    parser.add_argument("--base", default=None, help="base model of an adapter (default: the adapter's own record)")
    parser.add_argument("--quant", default="Q4_K_M", help=f"comma-separated: {', '.join(sorted(QUANT_TYPES))}")
    parser.add_argument("--outdir", default=None, help="where the .gguf files go (default: <model name>-GGUF)")
    parser.add_argument("--push_to", default=None, help="Hub repo for the files, e.g. username/my-model-GGUF")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    quants = check_arguments(args)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = Path(args.model.rstrip("/")).name
    outdir = Path(args.outdir or f"{name}-GGUF")
    with tempfile.TemporaryDirectory() as work:
        model_dir = resolve_model(args.model, args.base, Path(work))
        llama = llama_cpp()
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        template, template_note = ollama_template(tokenizer)
        stops = end_tokens(model, tokenizer)
        golden = golden_prompt(model, tokenizer)
        created = not outdir.exists()
        outdir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=outdir))  # files appear in outdir only when verified
        try:
            f16 = staging / f"{name}-F16.gguf"
            log(f"Converting {model_dir} to {f16.name} ...")
            convert(llama, model_dir, f16)
            gap = logits_gap(llama, f16, model)
            if gap > LOGIT_TOLERANCE:
                raise Failed(f"the f16 GGUF disagrees with the HF model (probability gap {gap:.4f} > "
                             f"{LOGIT_TOLERANCE}); not publishing")
            log(f"f16 logits match the HF model (max probability gap {gap:.5f}).")
            outputs = []
            for quant in ["F16"] + [q for q in quants if q != "F16"]:
                path = f16 if quant == "F16" else staging / f"{name}-{quant}.gguf"
                fallbacks = 0 if quant == "F16" else quantize(llama, f16, path, quant)
                meta = metadata(path)
                problems = [text for ok, text in [
                    (meta["architecture"], "no architecture"), (meta["tokenizer"], "no tokenizer"),
                    (meta["chat_template"] == tokenizer.chat_template, "chat template lost"),
                    (meta["file_type"] == FILE_TYPES[quant], f"file type {meta['file_type']} is not {quant}")] if not ok]
                if problems:
                    raise Failed(f"{path.name}: {', '.join(problems)}; not publishing")
                checks = check_in_server(llama, path, golden, chat=bool(tokenizer.chat_template))
                agree = checks["golden"]
                if quant == "F16" and agree["agree"] < agree["of"]:
                    raise Failed(f"the f16 GGUF continues the golden chat prompt differently from the HF model "
                                 f"({agree['agree']}/{agree['of']} greedy tokens agree); not publishing")
                meta["chat_template"] = bool(meta["chat_template"])
                entry = {"file": path.name, "quant": quant, "size_mb": path.stat().st_size / 2**20,
                         "modelfile": f"{path.stem}.Modelfile", "metadata": meta, "fallback_tensors": fallbacks,
                         **checks}
                (staging / entry["modelfile"]).write_text(modelfile(path.name, template, stops))
                chat = checks.get("chat")
                log(f"{path.name}: {entry['size_mb']:.1f} MB, {meta['architecture']}, tensors {meta['tensor_types']}, "
                    f"golden prompt {agree['agree']}/{agree['of']} greedy tokens agree with HF"
                    + (f", chat turn ends with finish_reason={chat['finish_reason']}" if chat else "") + ".")
                if chat and not chat["stops_at_end_of_turn"]:
                    log(f"warning: {path.name} did not end its chat turn within {CHAT_MAX_TOKENS} tokens: expected of "
                        "a base model, but a chat model should stop at its end-of-turn token (check eos and the template).")
                if quant in quants:
                    outputs.append(entry)
            for entry in outputs:
                for file in (entry["file"], entry["modelfile"]):
                    os.replace(staging / file, outdir / file)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            if created and not any(outdir.iterdir()):
                outdir.rmdir()
    if not template:
        log(f"Modelfiles have no TEMPLATE: {template_note}.")
    pushed = None
    if args.push_to:
        try:
            publish(args.push_to, outdir, outputs, args.base or args.model)
            pushed = args.push_to
            log(f"Pushed to https://huggingface.co/{args.push_to}")
        except Exception as error:  # any upload failure has the same remedy: the verified files are kept
            record_exports(args.model, export_entries(outputs), None)
            command = shlex.join(["hf", "upload", args.push_to, str(outdir), ".",
                                  *[arg for pattern in upload_patterns(outputs) for arg in ("--include", pattern)]])
            raise Failed(f"the files are verified and kept in {outdir}, but the push to {args.push_to} failed "
                         f"({error.__class__.__name__}); finish it with: {command}")
    record_exports(args.model, export_entries(outputs), pushed)
    usage = f"llama-server -hf {pushed}:{quants[0]}" if pushed else f"llama-server -m {outdir / outputs[0]['file']}"
    result = {"model": args.model, "outdir": str(outdir.resolve()), "logits_max_prob_gap": gap,
              "golden_prompt": golden["text"], "hf_continuation": golden["hf_continuation"],
              "ollama_template": "chatml" if template else None, "ollama_template_note": template_note,
              "stop_tokens": stops, "files": outputs, "repo": pushed, "usage": usage,
              "ollama": f"ollama create {name.lower()} -f {outdir / outputs[0]['modelfile']}"}
    print(json.dumps(result, indent=2) if args.json else f"Done: {len(outputs)} verified file(s) in {outdir}. "
          f"Run with: {usage} (Ollama: {result['ollama']})")


def export_entries(outputs: list[dict]) -> list[dict]:
    return [{"file": o["file"], "quant": o["quant"], "size_mb": o["size_mb"], "modelfile": o["modelfile"],
             "golden_agree": f"{o['golden']['agree']}/{o['golden']['of']}",
             "chat_finish_reason": o.get("chat", {}).get("finish_reason")} for o in outputs]


# ---- shared block: errors (tools/shared/errors.py; edit it there, then `make shared`) sha256:83701308960d8e22 ----

# The exception every script turns into one sentence on stderr and exit code 2.

class BadInput(Exception):
    """A mistake in the flags, paths or data: one sentence on stderr, exit 2. A token quoted back from the flags
    (`--hub_tokne hf_...`) is masked, since the sentence is printed and logged."""

    def __init__(self, message: str):
        super().__init__(re.sub(r"hf_[A-Za-z0-9]{8,}", "hf_***", message))


def first_line(error) -> str:
    """What an exception (or a server's message) says, in one line; its class name when it says nothing."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]

# ---- end of shared block: errors ----


# ---- shared block: cli (tools/shared/cli.py; edit it there, then `make shared`) sha256:9b103f0819db4f39 ----

# The argument parser of the scripts that are not trainers (those use TRL's parser): a mistake in the flags is one
# sentence and exit 2, not argparse's usage block.

class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise BadInput(f"{message}; see `{self.prog} --help`.")

# ---- end of shared block: cli ----


# ---- shared block: run_record (tools/shared/run_record.py; edit it there, then `make shared`) sha256:0665ecf0cade8a92 ----

# run.json: the record of one training run, which evaluations and GGUF exports append to.

def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def job_from_env() -> dict:
    """The job this process runs in: HF Jobs sets JOB_ID (jobs.py adds the namespace for the link, and the group id
    of a multi-node job); the local backend of jobs.py sets JOB_ID and HFLT_JOB_URL."""
    job_id = os.environ.get("JOB_ID")
    url = os.environ.get("HFLT_JOB_URL")
    if job_id and not url and os.environ.get("HFLT_JOB_NAMESPACE"):
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
        url = f"{endpoint}/jobs/{os.environ['HFLT_JOB_NAMESPACE']}/{job_id}"
    group = os.environ.get("HFLT_JOB_GROUP")
    return {"id": job_id, "url": url} | ({"group": group} if group else {})


def read_run_record(path: Path) -> dict:
    try:
        record = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        raise BadInput(f"{path} is not valid JSON; restore it (or move it away) and run again.")
    if not isinstance(record, dict):
        raise BadInput(f"{path} is not a run record (a JSON object); restore it (or move it away) and run again.")
    return record


def update_run_record(directory, fields: dict, append: dict | None = None) -> dict:
    """Merges `fields` into <directory>/run.json and appends `append`'s entries to its lists, atomically: a reader
    never sees half a file, and what evaluations and exports appended is kept."""
    target = Path(directory) / "run.json"
    record = read_run_record(target) | fields
    for key, entries in (append or {}).items():
        record[key] = record.get(key, []) + entries
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".run.json.{os.getpid()}.tmp")
    partial.write_text(json.dumps(record, indent=2, default=str))
    os.replace(partial, target)
    return record


def hub_run_record(repo: str) -> tuple[dict, str]:
    """The run.json of a Hub model repo ({} when it has none) and the commit it was read at."""
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError

    try:
        head = HfApi().model_info(repo).sha
        path = Path(hf_hub_download(repo, "run.json", revision=head))
    except RepositoryNotFoundError:
        raise BadInput(f"{repo}: no such model repo (or your token cannot read it); pass a run directory or the "
                       "repo the training pushed to.")
    except EntryNotFoundError:
        return {}, head
    except (HfHubHTTPError, OSError) as error:
        raise BadInput(f"{repo}: the Hub could not be reached ({error.__class__.__name__}); pass a local run "
                       "directory or go online.")
    try:
        record = json.loads(path.read_text())
    except ValueError:
        raise BadInput(f"run.json in {repo} is not valid JSON; fix it in the repo before recording into it.")
    if not isinstance(record, dict):
        raise BadInput(f"run.json in {repo} is not a run record (a JSON object); fix it in the repo first.")
    return record, head


def append_to_hub_run_record(repo: str, key: str, entries: list[dict], message: str, attempts: int = 5):
    """Appends `entries` to the list `key` of the repo's run.json in one commit on top of the head it read: when
    another writer committed first, the Hub refuses (412/409) and they are appended again to the new head."""
    import sys

    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    for attempt in range(1, attempts + 1):
        record, head = hub_run_record(repo)
        record[key] = record.get(key, []) + entries
        try:
            HfApi().create_commit(repo, [CommitOperationAdd("run.json", json.dumps(record, indent=2).encode())],
                                  commit_message=message, parent_commit=head)
            return
        except HfHubHTTPError as error:
            if error.response is None or error.response.status_code not in (409, 412) or attempt == attempts:
                raise
            print(f"{repo} changed while recording; appending again to its new head ({attempt}/{attempts})",
                  file=sys.stderr, flush=True)

# ---- end of shared block: run_record ----


# ---- shared block: models (tools/shared/models.py; edit it there, then `make shared`) sha256:6b332c6b6df410ce ----

# Model loading shared by the trainers, plan.py, evaluation and GGUF export: LoRA adapters and exact counts.

def adapter_base(name: str, revision: str | None = None) -> str | None:
    """The base model of a LoRA adapter (a local directory or a Hub repo); None when `name` is a full model."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    path = Path(name)
    if path.is_dir():
        config = path / "adapter_config.json"
        if not config.exists():
            if not (path / "config.json").exists():
                raise BadInput(f"{name} has no config.json or adapter_config.json; pass a model directory, a LoRA "
                               "adapter directory or a Hub model id.")
            return None
    elif name.startswith((".", "/")) or name.count("/") > 1:
        raise BadInput(f"Model {name!r} was not found; pass a Hub model id or a local model directory.")
    else:
        try:
            config = Path(hf_hub_download(name, "adapter_config.json", revision=revision))
        except (EntryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError):
            return None
    try:
        base = json.loads(config.read_text()).get("base_model_name_or_path")
    except (ValueError, AttributeError):
        raise BadInput(f"{config} is not a valid adapter config (JSON object); restore it from the training output.")
    if not base:
        raise BadInput(f"The LoRA adapter {name} does not name its base model (base_model_name_or_path); merge it "
                       "first or pass the base model.")
    return base


def check_weights(name: str):
    """A local model or adapter directory must hold readable weights: a config alone (a copy cut short, a download
    interrupted) would fail only when the model loads, on the GPU machine."""
    from safetensors import safe_open

    path = Path(name)
    if not path.is_dir():
        return
    weights = [*path.glob("*.safetensors"), *(p for p in path.glob("*.bin") if p.name != "training_args.bin")]
    if not weights:
        raise BadInput(f"{name} has a config but no weights (*.safetensors or *.bin); copy the whole model "
                       "directory.")
    for index in path.glob("*.index.json"):  # sharded weights: every shard the index names
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (ValueError, KeyError, AttributeError):
            raise BadInput(f"{index} is not a valid weight index; copy it again.")
        missing = sorted(shard for shard in shards if not (path / shard).exists())
        if missing:
            raise BadInput(f"{name} lacks the weight shards {missing[:3]} its index names; copy the whole model "
                           "directory.")
    for file in weights:
        if file.suffix == ".safetensors":
            try:
                with safe_open(file, framework="pt"):
                    pass
            except Exception as error:  # noqa: BLE001 - safetensors raises its own error types for a bad header
                raise BadInput(f"{file} is not a readable safetensors file ({str(error)[:120]}); copy it again.")


def meta_model(name: str, revision: str | None = None):
    """The architecture on the meta device, without weights: exact parameter counts at no memory cost. An adapter
    counts as the base it is merged into."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    base = adapter_base(name, revision)
    try:
        config = AutoConfig.from_pretrained(base or name, revision=None if base else revision)
    except (OSError, ValueError) as error:
        raise BadInput(f"The config of model {base or name!r} could not be read ({error.__class__.__name__}); pass a "
                       "Hub model id (online) or a local directory with config.json.")
    with torch.device("meta"):
        try:
            return AutoModelForCausalLM.from_config(config)
        except ValueError:
            return AutoModelForImageTextToText.from_config(config)


def merge_adapter(adapter: str, dtype, base: str | None = None, revision: str | None = None):
    """A LoRA adapter merged into its base model, ready to train further, evaluate or export."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = base or adapter_base(adapter, revision)
    try:
        base_model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
        return PeftModel.from_pretrained(base_model, adapter, revision=revision).merge_and_unload()
    except OSError as error:
        raise BadInput(f"The LoRA adapter {adapter!r} or its base {base!r} could not be loaded "
                       f"({error.__class__.__name__}); pass a reachable base model.")


def save_merged(adapter: str, base: str, out: Path) -> Path:
    """The adapter merged into its base and saved as a full model (what lighteval and llama.cpp load), with the
    adapter's tokenizer (else the base's) and the files llama.cpp's converter reads directly."""
    import shutil

    import torch
    from transformers import AutoTokenizer

    merge_adapter(adapter, torch.float32, base).save_pretrained(out)
    tokenizer = adapter if (Path(adapter) / "tokenizer_config.json").exists() else base
    AutoTokenizer.from_pretrained(tokenizer).save_pretrained(out)
    for name in ("tokenizer.model", "chat_template.jinja"):
        for candidate in (Path(adapter) / name, Path(base) / name):
            if candidate.exists() and not (out / name).exists():
                shutil.copy(candidate, out / name)
    return out

# ---- end of shared block: models ----


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        main()
    except BadInput as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except Failed as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
