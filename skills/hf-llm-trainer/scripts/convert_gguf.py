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

    uv run convert_gguf.py --model username/my-model --quant Q4_K_M,Q8_0 --hub_model_id username/my-model-GGUF
    uv run convert_gguf.py --model ./sft-lora-output --base Qwen/Qwen3-0.6B --output_dir gguf/

llama.cpp comes from the source tree vendored in the llama-cpp-python sdist on PyPI (pinned below), never a git
clone; its tools are built once with cmake (CPU) and cached in the user's cache dir. A LoRA adapter is merged into
its base first. Every file is verified before anything is published: its metadata is right (architecture,
tokenizer, the model's chat template, file type); the f16 file's next-token probabilities, the prompt its chat template
renders and its greedy answer to a chat turn (llama-server's OpenAI-compatible API) match the Hugging Face model's, or
nothing is published; each quantized file's greedy answer is compared token by token with the HF model's, and the
card and run.json say how far it agrees. Each file gets an Ollama Modelfile beside it. Exports are recorded in the
model's run.json. SIGTERM stops llama-server and removes the half-made files.
"""

import argparse
import fcntl
import json
import math
import mmap
import os
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
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
        raise Failure(f"convert_hf_to_gguf.py failed: {message}")


def quantize(llama: Path, f16: Path, outfile: Path, quant: str):
    result = subprocess.run([str(llama / "build" / "bin" / "llama-quantize"), str(f16), str(outfile), quant],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise Failure(f"llama-quantize {quant} failed: {result.stderr.strip().splitlines()[-1:]}")
    fallbacks = result.stdout.count("fallback") + result.stderr.count("fallback")
    return fallbacks


# ---------------------------------------------------------------- verification


# struct formats of GGUF's scalar value types, by gguf.GGUFValueType name
GGUF_SCALARS = {"UINT8": "B", "INT8": "b", "UINT16": "H", "INT16": "h", "UINT32": "I", "INT32": "i", "FLOAT32": "f",
                "BOOL": "?", "UINT64": "Q", "INT64": "q", "FLOAT64": "d"}


class GGUFHeader:
    """A GGUF file's metadata (its scalars and strings; arrays are stepped over, not kept) and its tensors' types,
    read from its header. gguf.GGUFReader makes a numpy view of every element of every metadata array: over a million
    for a 151,936-token vocabulary and its merges, 10-18 CPU seconds a file, paid for each quantization on the billed
    GPU job. A file cut short (its tensors' data included) or not GGUF at all is a Failure."""

    def __init__(self, path: Path):
        from gguf import GGUF_MAGIC

        self.pos = 4
        with open(path, "rb") as file:
            if file.read(4) != GGUF_MAGIC.to_bytes(4, "little"):
                raise Failure(f"{path.name} is not a GGUF file (it does not begin with GGUF's magic bytes); not "
                              "publishing")
            with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as self.data:
                try:
                    self.fields, self.tensor_types = self.parse()
                except (EOFError, struct.error):
                    raise Failure(f"{path.name} is cut short (its GGUF header promises more bytes than the file "
                                  "holds); not publishing")
                except ValueError as error:  # an unknown type code, a name that is not UTF-8
                    raise Failure(f"{path.name} is not a readable GGUF file ({error}); not publishing")

    def parse(self) -> tuple[dict, list]:
        from gguf import GGML_QUANT_SIZES, GGUF_DEFAULT_ALIGNMENT, GGUF_VERSION, GGMLQuantizationType, GGUFValueType

        version, tensor_count, field_count = self.read("IQQ")
        if not 2 <= version <= GGUF_VERSION:
            raise ValueError(f"version {version}, where little-endian versions 2 to {GGUF_VERSION} are read")
        fields = {}
        for _ in range(field_count):
            key, kind = self.string(), GGUFValueType(self.read("I")[0])
            if kind == GGUFValueType.ARRAY:
                self.skip_array()
            else:
                fields[key] = self.string() if kind == GGUFValueType.STRING else self.read(GGUF_SCALARS[kind.name])[0]
        types, data_ends = [], []
        for _ in range(tensor_count):
            self.string()
            shape = self.read(f"{self.read('I')[0]}Q")
            kind, offset = self.read("IQ")
            types.append(GGMLQuantizationType(kind))
            block, size = GGML_QUANT_SIZES[types[-1]]
            data_ends.append(offset + math.prod(shape) * size // block)
        alignment = fields.get("general.alignment", GGUF_DEFAULT_ALIGNMENT)
        data_start = -(-self.pos // alignment) * alignment
        if data_ends and data_start + max(data_ends) > len(self.data):
            raise EOFError
        return fields, types

    def read(self, layout: str) -> tuple:
        values = struct.unpack_from(f"<{layout}", self.data, self.pos)
        self.pos += struct.calcsize(f"<{layout}")
        return values

    def skip(self, size: int):
        self.pos += size
        if self.pos > len(self.data):
            raise EOFError

    def string(self) -> str:
        (length,) = self.read("Q")
        start = self.pos
        self.skip(length)
        return str(self.data[start:self.pos], "utf-8")

    def skip_array(self):
        from gguf import GGUFValueType

        kind, count = self.read("IQ")
        kind = GGUFValueType(kind)
        if kind == GGUFValueType.STRING:  # a length before each: walked in one tight loop (150k tokens, 150k merges)
            length, pos = struct.Struct("<Q").unpack_from, self.pos
            for _ in range(count):
                pos += 8 + length(self.data, pos)[0]
            self.skip(pos - self.pos)
        elif kind.name in GGUF_SCALARS:
            self.skip(count * struct.calcsize(GGUF_SCALARS[kind.name]))
        else:
            raise ValueError("an array of arrays, which llama.cpp does not read")


def metadata(path: Path) -> dict:
    header = GGUFHeader(path)
    field = header.fields.get
    return {"architecture": field("general.architecture"), "tokenizer": field("tokenizer.ggml.model"),
            "pre_tokenizer": field("tokenizer.ggml.pre"), "chat_template": field("tokenizer.chat_template"),
            "file_type": field("general.file_type"),
            "tensor_types": sorted({kind.name for kind in header.tensor_types}), "tensors": len(header.tensor_types)}


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
    """The chat prompt (with the generation prompt, thinking off as in the llama-server turn) as text and token ids,
    and the HF model's greedy continuation of it: the answer every GGUF file is compared with."""
    import torch

    if tokenizer.chat_template:
        text = tokenizer.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True, enable_thinking=False)
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
    answer = ids[len(prompt):]
    return {"text": text, "prompt_ids": prompt, "hf_ids": answer, "hf_continuation": tokenizer.decode(answer),
            "chat_ids": tokenizer(text, add_special_tokens=False).input_ids}  # the template's text, as tokens


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
        raise Failure(f"llama-server failed on {url.split('/', 3)[-1]}: {error}")


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
                        raise Failure(f"llama-server could not serve {gguf.name}: {' / '.join(tail)}")
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
    """The file's greedy continuation of the golden prompt's tokens and, for a chat model, the prompt its own chat
    template renders and its answer to the same chat turn through the OpenAI-compatible API, beside the HF model's."""
    with llama_server(llama, gguf) as url:
        completion = post(f"{url}/completion", {"prompt": golden["prompt_ids"], "n_predict": len(golden["hf_ids"]),
                                                "temperature": 0, "return_tokens": True, "cache_prompt": False})
        gguf_ids = completion["tokens"]
        agree = next((i for i, (a, b) in enumerate(zip(golden["hf_ids"], gguf_ids)) if a != b),
                     min(len(golden["hf_ids"]), len(gguf_ids)))
        result = {"golden": {"agree": agree, "of": len(golden["hf_ids"]), "continuation": completion["content"],
                             "ids": gguf_ids}}
        if chat:
            # enable_thinking=false: a reasoning model (Qwen3) answers directly instead of thinking past the limit
            options = {"chat_template_kwargs": {"enable_thinking": False}}
            rendered = post(f"{url}/apply-template", {"messages": CHAT, **options})["prompt"]
            prompt = post(f"{url}/tokenize", {"content": rendered, "add_special": False, "parse_special": True})
            reply = post(f"{url}/v1/chat/completions", {"messages": CHAT, "max_tokens": CHAT_MAX_TOKENS,
                                                        "temperature": 0, **options})["choices"][0]
            result["chat"] = {"answer": (reply["message"].get("content") or "")[:500],
                              "finish_reason": reply["finish_reason"],
                              "stops_at_end_of_turn": reply["finish_reason"] == "stop",
                              "prompt_ids": prompt["tokens"]}
    return result


# ---------------------------------------------------------------- publishing


def model_card(repo: str, source: str, files: list[dict]) -> str:
    from huggingface_hub import constants

    rows = "\n".join(f"| `{f['file']}` | {f['quant']} | {f['size_mb']:.1f} MB | {f['golden']['verdict']} | "
                     f"`{f['modelfile']}` |" for f in files)
    default = next((f for f in files if f["quant"] == "Q4_K_M"), files[-1])
    on_hub = not Path(source).exists()  # a local directory is no valid base_model
    origin = f"[{source}]({constants.ENDPOINT}/{source})" if on_hub else f"the local model `{Path(source).name}`"
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

GGUF files of {origin}, converted and quantized with llama.cpp and checked against the original in transformers:
the f16 file's next-token probabilities, its chat template and its greedy answer to a chat prompt match it exactly;
each file's greedy answer to the same prompt, compared token by token, is in the table.{made_by}

| File | Quantization | Size | Greedy answer vs. the original | Ollama Modelfile |
|---|---|---|---|---|
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
    training pushed to (a model trained elsewhere has none: nothing is recorded). The files are made and verified
    whatever happens here: a record that cannot be written is a warning, not a failure."""
    stamp, job = utcnow(), job_from_env()
    exports = [{**entry, "repo": repo, "date": stamp, "job": job} for entry in entries]
    try:
        run = locate_run(model)
        if run is not None:
            append_to_run(run, append={"exports": exports}, message=f"GGUF {', '.join(e['quant'] for e in exports)} "
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
        raise BadInput(f"--output_dir {args.outdir} is a file; pass a directory (it is created if missing).")
    if args.push_to:
        try:
            validate_repo_id(args.push_to)
        except HFValidationError:
            raise BadInput(f"--hub_model_id {args.push_to!r} is not a Hub repo id; use username/name-GGUF.")
        if get_token() is None:
            raise BadInput("--hub_model_id needs a Hugging Face token with write access: run `hf auth login` or set HF_TOKEN.")
    return quants


@dataclass(frozen=True)
class Request:
    model: str
    base: str | None
    quants: tuple[str, ...]
    output_dir: Path
    hub_model_id: str | None
    json: bool

    @property
    def name(self) -> str:
        return Path(self.model.rstrip("/")).name


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="Hub id, local directory or LoRA adapter")
    parser.add_argument("--base", default=None, help="base model of an adapter (default: the adapter's own record)")
    parser.add_argument("--quant", default="Q4_K_M", help=f"comma-separated: {', '.join(sorted(QUANT_TYPES))}")
    parser.add_argument("--output_dir", "--outdir", dest="outdir", default=None, metavar="DIR",
                        help="where the .gguf files go (default: <model name>-GGUF); --outdir is the old spelling")
    parser.add_argument("--hub_model_id", "--push_to", dest="push_to", default=None, metavar="REPO",
                        help="Hub repo to push the files to, e.g. username/my-model-GGUF; --push_to is the old spelling")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    return parser


def parse_request(argv: list[str] | None = None) -> Request:
    args = build_parser().parse_args(argv)
    quants = check_arguments(args)
    output_dir = Path(args.outdir or f"{Path(args.model.rstrip('/')).name}-GGUF")
    return Request(args.model, args.base, tuple(quants), output_dir, args.push_to, args.json)


@contextmanager
def staged(output_dir: Path):
    """A staging folder inside output_dir: files move out of it only once verified, and whatever ends the run
    (a failed check, an exception, SIGTERM) removes it and the output_dir it created. Folders left by runs killed
    outright (SIGKILL) are removed by the next run."""
    created = not output_dir.exists()
    output_dir.mkdir(parents=True, exist_ok=True)
    for stale in output_dir.glob(".partial-*"):
        pid = stale.name.split("-")[1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".partial-{os.getpid()}-", dir=output_dir))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not any(output_dir.iterdir()):
            output_dir.rmdir()


def verify(llama: Path, path: Path, quant: str, tokenizer, golden: dict) -> dict:
    """One file: its metadata, then its parity with the HF model in llama-server. The f16 file must agree exactly
    (or nothing is published); a quantized file's agreement is measured and stated, never assumed."""
    meta = metadata(path)
    problems = [text for ok, text in [
        (meta["architecture"], "no architecture"), (meta["tokenizer"], "no tokenizer"),
        (meta["chat_template"] == tokenizer.chat_template, "chat template lost"),
        (meta["file_type"] == FILE_TYPES[quant], f"file type {meta['file_type']} is not {quant}")] if not ok]
    if problems:
        raise Failure(f"{path.name}: {', '.join(problems)}; not publishing")
    checks = check_in_server(llama, path, golden, chat=bool(tokenizer.chat_template))
    parity = checks["golden"]
    parity["first_difference"] = first_difference(golden["hf_ids"], parity.pop("ids"), tokenizer)
    parity["verdict"] = parity_verdict(quant, parity)
    chat = checks.get("chat")
    if quant == "F16" and parity["first_difference"]:
        difference = parity["first_difference"]
        raise Failure(f"the f16 GGUF continues the golden chat prompt differently from the HF model at token "
                      f"{difference['position']} (HF {difference['hf']!r}, llama.cpp {difference['gguf']!r}); not "
                      "publishing")
    if chat:  # the chat turn's prompt, from the file's own template and tokenizer, token for token against HF's
        chat["prompt_difference"] = first_difference(golden["chat_ids"], chat.pop("prompt_ids"), tokenizer)
    if quant == "F16" and chat and chat["prompt_difference"]:  # the same text, tokenized another way (a warning)
        difference = chat["prompt_difference"]
        log(f"warning: llama.cpp tokenizes the chat prompt differently from transformers at token "
            f"{difference['position']} (HF {difference['hf']!r}, llama.cpp {difference['gguf']!r}), so chat answers "
            "in llama.cpp may differ from the HF model's; check the chat template and the tokenizer's settings.")
    meta["chat_template"] = bool(meta["chat_template"])
    return {"file": path.name, "quant": quant, "size_mb": path.stat().st_size / 2**20,
            "modelfile": f"{path.stem}.Modelfile", "metadata": meta, **checks}


def parity_verdict(quant: str, parity: dict) -> str:
    """Greedy decoding amplifies one flipped near-tie into a different text, so a quantized file is judged on the
    share of golden tokens it reproduces: at least half is "agrees", fewer is said plainly."""
    agree, total = parity["agree"], parity["of"]
    if not parity["first_difference"]:
        return f"identical ({agree}/{total} greedy tokens)"
    if quant != "F16" and agree * 2 >= total:
        return f"agrees ({agree}/{total} greedy tokens, then differs)"
    return f"differs from token {agree} ({agree}/{total} greedy tokens agree)"


def first_difference(hf_ids: list[int], gguf_ids: list[int], tokenizer) -> dict | None:
    for position, (hf, gguf) in enumerate(zip(hf_ids, gguf_ids)):
        if hf != gguf:
            return {"position": position, "hf": tokenizer.decode([hf]), "gguf": tokenizer.decode([gguf])}
    if len(gguf_ids) != len(hf_ids):
        position = min(len(hf_ids), len(gguf_ids))
        return {"position": position, "hf": tokenizer.decode(hf_ids[position:][:1]) or "(end)",
                "gguf": tokenizer.decode(gguf_ids[position:][:1]) or "(end)"}
    return None


def export(request: Request, work: Path) -> dict:
    """Converts, quantizes and verifies every file; the requested ones that pass end up in output_dir."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = resolve_model(request.model, request.base, work)
    llama = llama_cpp()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    template, template_note = ollama_template(tokenizer)
    stops = end_tokens(model, tokenizer)
    golden = golden_prompt(model, tokenizer)
    with staged(request.output_dir) as staging:
        f16 = staging / f"{request.name}-F16.gguf"
        log(f"Converting {model_dir} to {f16.name} ...")
        convert(llama, model_dir, f16)
        files = []
        for quant in ["F16"] + [q for q in request.quants if q != "F16"]:
            path = f16 if quant == "F16" else staging / f"{request.name}-{quant}.gguf"
            fallbacks = 0 if quant == "F16" else quantize(llama, f16, path, quant)
            entry = verify(llama, path, quant, tokenizer, golden) | {"fallback_tensors": fallbacks}
            if quant == "F16":  # its greedy tokens agree (verify names the first that does not): now every logit
                gap = logits_gap(llama, f16, model)
                if gap > LOGIT_TOLERANCE:
                    raise Failure(f"the f16 GGUF disagrees with the HF model (probability gap {gap:.4f} > "
                                  f"{LOGIT_TOLERANCE}); not publishing")
                log(f"f16 logits match the HF model (max probability gap {gap:.5f}).")
            (staging / entry["modelfile"]).write_text(modelfile(path.name, template, stops))
            log_file(entry)
            if quant in request.quants:
                files.append(entry)
        for entry in files:
            for file in (entry["file"], entry["modelfile"]):
                os.replace(staging / file, request.output_dir / file)
    if not template:
        log(f"Modelfiles have no TEMPLATE: {template_note}.")
    return {"logits_max_prob_gap": gap, "golden_prompt": golden["text"], "hf_continuation": golden["hf_continuation"],
            "ollama_template": "chatml" if template else None, "ollama_template_note": template_note,
            "stop_tokens": stops, "files": files}


def log_file(entry: dict):
    chat = entry.get("chat")
    log(f"{entry['file']}: {entry['size_mb']:.1f} MB, {entry['metadata']['architecture']}, tensors "
        f"{entry['metadata']['tensor_types']}, golden prompt {entry['golden']['verdict']} against HF"
        + (f", chat turn ends with finish_reason={chat['finish_reason']}" if chat else "") + ".")
    if entry["quant"] != "F16" and entry["golden"]["verdict"].startswith("differs"):
        log(f"warning: {entry['file']} reproduces few of the HF model's greedy tokens; try a larger quantization "
            "(Q8_0, Q6_K) if its answers look wrong.")
    if chat and not chat["stops_at_end_of_turn"]:
        log(f"warning: {entry['file']} did not end its chat turn within {CHAT_MAX_TOKENS} tokens: expected of a base "
            "model, but a chat model should stop at its end-of-turn token (check eos and the template).")


def push(request: Request, files: list[dict]) -> str | None:
    """Publishes the verified files; when the push fails they stay in output_dir with the command that finishes it."""
    if not request.hub_model_id:
        return None
    from huggingface_hub import constants

    try:
        publish(request.hub_model_id, request.output_dir, files, request.base or request.model)
    except Exception as error:  # any upload failure has the same remedy: the verified files are kept
        record_exports(request.model, export_entries(files), None)
        command = shlex.join(["hf", "upload", request.hub_model_id, str(request.output_dir), ".",
                              *[arg for pattern in upload_patterns(files) for arg in ("--include", pattern)]])
        raise Failure(f"the files are verified and kept in {request.output_dir}, but the push to "
                      f"{request.hub_model_id} failed ({error.__class__.__name__}); finish it with: {command}")
    log(f"Pushed to {constants.ENDPOINT}/{request.hub_model_id}")
    return request.hub_model_id


def main():
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # runs the cleanups on the way out
    request = parse_request()
    with tempfile.TemporaryDirectory() as work:
        result = export(request, Path(work))
    files = result["files"]
    pushed = push(request, files)
    record_exports(request.model, export_entries(files), pushed)
    first = files[0]
    usage = shlex.join(["llama-server", "-hf", f"{pushed}:{request.quants[0]}"] if pushed else
                       ["llama-server", "-m", str(request.output_dir / first["file"])])
    ollama = shlex.join(["ollama", "create", request.name.lower(), "-f", str(request.output_dir / first["modelfile"])])
    result = {"model": request.model, "outdir": str(request.output_dir.resolve()), **result, "repo": pushed,
              "usage": usage, "ollama": ollama}
    print(json.dumps(result, indent=2) if request.json else f"Done: {len(files)} verified file(s) in "
          f"{request.output_dir}. Run with: {usage} (Ollama: {ollama})")


def export_entries(outputs: list[dict]) -> list[dict]:
    return [{"file": o["file"], "quant": o["quant"], "size_mb": o["size_mb"], "modelfile": o["modelfile"],
             "golden_agree": f"{o['golden']['agree']}/{o['golden']['of']}", "parity": o["golden"]["verdict"],
             "chat_finish_reason": o.get("chat", {}).get("finish_reason")} for o in outputs]


# ---- shared block: errors (tools/shared/errors.py; edit it there, then `make shared`) sha256:aa79b8ee73e35093 ----

# The two exceptions every script turns into one sentence on stderr, and the entry point that does it: BadInput (a
# mistake the person fixes: exit 2) and Failure (something failed at run time: exit 1); anything else is a bug and
# keeps its traceback.

class BadInput(Exception):
    """A mistake in the flags, paths or data: one sentence on stderr, exit 2. A token quoted back from the flags
    (`--hub_tokne hf_...`) is masked, since the sentence is printed and logged."""

    def __init__(self, message: str):
        super().__init__(mask_tokens(message))


class Failure(Exception):
    """Something failed at run time (network, a tool, corrupt state), with a message that says what happened and
    what to do next: one sentence on stderr, exit 1, no traceback."""

    def __init__(self, message: str):
        super().__init__(mask_tokens(message))


def mask_tokens(text: str) -> str:
    return re.sub(r"hf_[A-Za-z0-9]{8,}", "hf_***", text)


def first_line(error) -> str:
    """What an exception (or a server's message) says, in one line; its class name when it says nothing."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def run_cli(main):
    """Runs a script's main: BadInput exits 2 and Failure exits 1, each with its one sentence on stderr."""
    try:
        main()
    except BadInput as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except Failure as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)

# ---- end of shared block: errors ----


# ---- shared block: cli (tools/shared/cli.py; edit it there, then `make shared`) sha256:9b103f0819db4f39 ----

# The argument parser of the scripts that are not trainers (those use TRL's parser): a mistake in the flags is one
# sentence and exit 2, not argparse's usage block.

class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise BadInput(f"{message}; see `{self.prog} --help`.")

# ---- end of shared block: cli ----


# ---- shared block: run_record (tools/shared/run_record.py; edit it there, then `make shared`) sha256:056dd695ae6cdc47 ----

# run.json: the record of one training run. The trainer writes it; evaluations and GGUF exports append to it, in
# the run's output directory or in the Hub repo it pushed to, sometimes while training goes on. Every write merges what
# the other writers wrote: locally a read-modify-write under a file lock and an atomic replace, on the Hub a commit on
# the parent it read, merged again and retried when another writer committed first. `append_to_run` is the one way to
# write; `push_run` is the trainer's push of its own record, which keeps what others appended to the repo's copy.

RUN_FILE = "run.json"
# The lists other writers append to. A writer that pushes its own copy of the record keeps the entries of these lists
# it does not have; every other field is the writer's own.
APPENDED = ("evaluations", "exports")
HUB_ATTEMPTS = 12


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


def is_local(target) -> bool:
    """A Path, or a string naming something on disk, is a local run; any other string is a Hub model repo id."""
    return isinstance(target, Path) or Path(target).exists()


def record_file(target) -> Path:
    """The run.json of a local run: `target` is its directory (existing or not yet) or a .json file itself."""
    path = Path(target)
    return path if path.suffix == ".json" and not path.is_dir() else path / RUN_FILE


def read_run(target) -> dict:
    """A run's record, {} when it has none yet: a local run directory or its run.json, or a Hub model repo id."""
    if is_local(target):
        return parse_record(record_file(target))
    return read_hub_run(str(target))[0]


def locate_run(target: str, flag: str = "") -> str | None:
    """The run `target` names, as append_to_run takes it: a local directory holding run.json (given as the
    directory or the file) or a Hub model repo id whose repo has a run.json; None when there is no record there.
    A record that cannot be read, a repo that does not exist or a Hub out of reach is refused (BadInput, its
    sentence opening with `flag`)."""
    target = str(target)
    path = Path(target)
    if path.is_file() and path.name == RUN_FILE:
        path = path.parent
    if path.is_dir():
        if not (path / RUN_FILE).exists():
            return None
        parse_record(path / RUN_FILE)
        return str(path)
    if path.exists() or not is_repo_id(target):
        raise BadInput(f"{flag} {target!r} is neither a run directory (with run.json) nor a Hub model repo id."
                       .lstrip())
    return target if read_hub_run(target)[0] else None


def is_repo_id(text: str) -> bool:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return "/" in text and not text.startswith((".", "/"))


def append_to_run(target, fields: dict | None = None, append: dict | None = None,
                  message: str = "Update run.json", create: bool = False) -> dict:
    """Merges `fields` into the run's record and appends `append`'s entries to its lists; returns the record written.
    `target` is a local run directory (locked read-modify-write, atomic replace: a reader never sees half a file and
    concurrent writers never lose each other's entries) or a Hub model repo id (a commit on the parent read, redone
    on top of the new head when another writer committed first). A run without a record is refused unless `create`
    (the trainer's first write)."""
    def change(record: dict) -> dict:
        if not record and not create:
            raise BadInput(f"{target} has no {RUN_FILE}; pass the output directory or the Hub repo of a training run.")
        record = record | (fields or {})
        for key, entries in (append or {}).items():
            existing = record.get(key)
            record[key] = (existing if isinstance(existing, list) else []) + list(entries)
        return record

    if is_local(target):
        if not create and not record_file(target).exists():
            change({})  # refused before anything is made
        return update_local_run(target, change)
    return update_hub_run(str(target), change, message)


def merge_runs(ours: dict, theirs: dict) -> dict:
    """`ours` written over `theirs`, keeping what only `theirs` has: its other fields, and the entries of the
    appended lists that `ours` lacks."""
    merged = theirs | ours
    for key in APPENDED:
        mine, other = ours.get(key), theirs.get(key)
        if isinstance(other, list):
            mine = mine if isinstance(mine, list) else []
            merged[key] = mine + [entry for entry in other if entry not in mine]
    return merged


def push_run(directory, repo: str, message: str, revision: str | None = None) -> dict:
    """The trainer's push of its record: the repo's record is merged into the local one (under the local lock) and
    the result committed on the parent that was read, so evaluations and exports recorded in the repo meanwhile stay
    in both. A repo record that cannot be read is replaced by the local one, with a warning."""
    return update_hub_run(repo, lambda theirs: update_local_run(directory, lambda ours: merge_runs(ours, theirs)),
                          message, revision=revision, unreadable_is_empty=True)


def lockless(error: OSError) -> bool:
    """Whether a lock was refused because the filesystem has none (some network mounts)."""
    import errno

    return error.errno in (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP)


class RecordLock:
    """An exclusive lock beside a run.json, for one read-modify-write. The lock file is removed by its holder before
    it lets go, so a run directory keeps only run.json; a waiter that wakes on a removed lock file takes the new one."""

    def __init__(self, record: Path):
        self.path = record.with_name(f".{record.name}.lock")
        self.fd = None

    def __enter__(self):
        import fcntl

        while True:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:  # its directory was removed meanwhile
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as error:  # a filesystem without locks (some network mounts): write unlocked
                if not lockless(error):
                    raise
            try:
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    self.fd = fd
                    return self
            except FileNotFoundError:  # the previous holder removed it while this one waited
                pass
            os.close(fd)

    def __exit__(self, *exc):
        os.unlink(self.path)
        os.close(self.fd)


def parse_record(path: Path) -> dict:
    try:
        record = json.loads(path.read_text()) if path.exists() else {}
    except (ValueError, UnicodeDecodeError):
        raise BadInput(f"{path} is not valid JSON; restore it (or move it away) and run again.")
    if not isinstance(record, dict):
        raise BadInput(f"{path} is not a run record (a JSON object); restore it (or move it away) and run again.")
    return record


def update_local_run(target, change) -> dict:
    """Applies `change` (record -> new record) to a local run.json under its lock, replacing the file atomically."""
    path = record_file(target)
    with RecordLock(path):
        record = change(parse_record(path))
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(partial, "w") as f:
            f.write(json.dumps(record, indent=2, default=str))
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    return record


def read_hub_run(repo: str, revision: str | None = None, unreadable_is_empty: bool = False) -> tuple[dict, str]:
    """The run.json of a Hub model repo ({} when it has none) and the commit it was read at."""
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError

    try:
        head = HfApi().model_info(repo, revision=revision).sha
        path = Path(hf_hub_download(repo, RUN_FILE, revision=head))
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
        problem = None if isinstance(record, dict) else "is not a run record (a JSON object)"
    except (ValueError, UnicodeDecodeError):
        problem = "is not valid JSON"
    if problem and unreadable_is_empty:
        import sys

        print(f"warning: {RUN_FILE} in {repo} {problem}; replacing it with this run's record.", file=sys.stderr)
        return {}, head
    if problem:
        raise BadInput(f"{RUN_FILE} in {repo} {problem}; fix it in the repo before recording into it.")
    return record, head


def update_hub_run(repo: str, change, message: str, revision: str | None = None,
                   unreadable_is_empty: bool = False) -> dict:
    """Applies `change` to the repo's run.json in one commit on the head it read: when another writer committed
    first, the Hub refuses (412/409) and the change is applied again to the new head."""
    import random
    import sys
    import time

    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    for attempt in range(1, HUB_ATTEMPTS + 1):
        record, head = read_hub_run(repo, revision, unreadable_is_empty)
        record = change(record)
        try:
            HfApi().create_commit(repo, [CommitOperationAdd(RUN_FILE, json.dumps(record, indent=2, default=str)
                                                            .encode())],
                                  commit_message=message, parent_commit=head, revision=revision)
            return record
        except HfHubHTTPError as error:
            if error.response is None or error.response.status_code not in (409, 412) or attempt == HUB_ATTEMPTS:
                raise
            print(f"{repo} changed while recording; merging again on its new head ({attempt}/{HUB_ATTEMPTS})",
                  file=sys.stderr, flush=True)
            time.sleep(random.uniform(0, 0.2 * attempt))

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
    run_cli(main)
