"""eval_humaneval.py's sandbox: model-written programs that try to escape, run through `--completions` as the agent
runs the script. Each attempt returns the right answer after its attack, so an attack that works passes; attacks
that read secrets raise what they read, so a leak shows in the saved results."""

import json
import os
import platform
import random
import socket
from pathlib import Path

import pytest
from conftest import json_output

MARKER = "hf_marker_token_must_not_leak"
WORLD_WRITABLE = [folder for folder in ("/tmp", "/var/tmp", "/dev/shm") if os.access(folder, os.W_OK)]
ADD = {"entry_point": "add", "prompt": "def add(a, b):\n", "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n"}


def escape_attempts(outside: Path, port: int, token_file: Path, sleeper: str) -> dict[str, str]:
    syscall_socket = {"x86_64": 41, "aarch64": 198}[platform.machine()]
    return {
        "control": "return a + b",
        "posix.unlink": f"import posix; posix.unlink({str(outside / 'keep.txt')!r}); return a + b",
        "open for writing": f"open({str(outside / 'written.txt')!r}, 'w').write('escaped'); return a + b",
        "_socket": f"import _socket; s = _socket.socket(); s.connect(('127.0.0.1', {port})); s.send(b'escaped'); "
                   "return a + b",
        "parent environ": "import os; raise RuntimeError(open(f'/proc/{os.getppid()}/environ').read())",
        "any environ": "import os; raise RuntimeError([open(f'/proc/{p}/environ').read() for p in os.listdir('/proc') "
                       "if p.isdigit()])",
        "own environment": "import os; raise RuntimeError(str(os.environ))",
        "stored login token": f"raise RuntimeError(open({str(token_file)!r}).read())",
        "ctypes unlink": f"import ctypes; assert ctypes.CDLL(None).unlink({str(outside / 'keep.txt')!r}.encode()) == 0; "
                         "return a + b",
        "ctypes socket syscall": f"import ctypes; assert ctypes.CDLL(None).syscall({syscall_socket}, 2, 1, 0) >= 0; "
                                 "return a + b",
        "os.fork through posix": f"import posix\n    if posix.fork() == 0:\n        posix.execv('/bin/sleep', "
                                 f"['sleep', {sleeper!r}])\n    return a + b",
        "thread bomb": "import threading, time\n    for _ in range(100000):\n        threading.Thread(target=time.sleep, "
                       "args=(60,)).start()\n    return a + b",
        "huge allocation": "x = bytearray(8 * 1024 ** 3); return a + b",
        "huge file": "open('big', 'wb').write(b'x' * 200 * 1024 ** 2); return a + b",
        "infinite loop": "while True:\n        pass",
        **{f"world-writable {folder}": f"open({folder + '/' + sleeper!r}, 'w').write('escaped'); return a + b"
           for folder in WORLD_WRITABLE},
    }


def processes_with(argument: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if argument in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0"):
                found.append(pid)
        except OSError:
            pass
    return found


def run_escapes(tmp_path: Path, run_script, env: dict, *flags, extra_env: dict | None = None):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("still here")
    token_file = Path(env["HF_HOME"]) / "token"
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text(MARKER)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    sleeper = f"{random.randint(1000, 9999)}.{random.randint(1000, 9999)}"
    attempts = escape_attempts(outside, listener.getsockname()[1], token_file, sleeper)
    with open(tmp_path / "problems.jsonl", "w") as f:
        f.writelines(json.dumps({"task_id": f"Escape/{name}", **ADD}) + "\n" for name in attempts)
    with open(tmp_path / "completions.jsonl", "w") as f:
        f.writelines(json.dumps({"task_id": f"Escape/{name}", "completion": f"    {code}\n"}) + "\n"
                     for name, code in attempts.items())
    result = run_script("eval_humaneval.py", "--completions", tmp_path / "completions.jsonl", "--problems",
                        tmp_path / "problems.jsonl", "--timeout", "4", "--save_samples", tmp_path / "samples.jsonl",
                        "--json", *flags, extra_env={"HF_TOKEN": MARKER, **(extra_env or {})})
    try:
        connection = listener.accept()[0]
        received = connection.recv(100)
    except BlockingIOError:
        received = b""
    listener.close()
    outcomes = {row["task_id"].split("/", 1)[1]: row for row in map(json.loads, open(tmp_path / "samples.jsonl"))}
    assert outcomes["control"]["passed"], outcomes["control"]
    for name, outcome in outcomes.items():
        assert name == "control" or not outcome["passed"], f"{name} escaped: {outcome}"
    assert outcomes["infinite loop"]["result"] == "timed out"
    assert sorted(os.listdir(outside)) == ["keep.txt"] and (outside / "keep.txt").read_text() == "still here"
    assert received == b""
    assert not [folder for folder in WORLD_WRITABLE if os.path.exists(f"{folder}/{sleeper}")]
    assert processes_with(sleeper) == []
    assert MARKER not in result.stdout + result.stderr + (tmp_path / "samples.jsonl").read_text()
    return json_output(result)


def test_escape_attempts_are_contained_by_namespaces(tmp_path, run_script, env):
    """The strongest level, which this machine allows: user, mount, pid and network namespaces plus seccomp."""
    result = run_escapes(tmp_path, run_script, env)
    assert result["isolation"] == "namespaces"
    assert result["results"] == {"passed": 1, "failed": 13 + len(WORLD_WRITABLE), "timed out": 1}


@pytest.mark.skipif(os.geteuid() != 0, reason="the seccomp level drops to an unprivileged uid, which needs root")
def test_escape_attempts_are_contained_by_seccomp_and_an_unprivileged_uid(tmp_path, run_script, env):
    """The fallback where namespaces are refused (as in some containers), forced by lowering the ceiling."""
    result = run_escapes(tmp_path, run_script, env, extra_env={"HFLT_MAX_ISOLATION": "seccomp"})
    assert result["isolation"] == "seccomp"


def test_without_a_sandbox_nothing_runs_unless_the_risk_is_named(tmp_path, run_script):
    (tmp_path / "problems.jsonl").write_text(json.dumps({"task_id": "T/0", **ADD}) + "\n")
    (tmp_path / "completions.jsonl").write_text(json.dumps({"task_id": "T/0", "completion": "    return a + b\n"}))
    flags = ["--completions", tmp_path / "completions.jsonl", "--problems", tmp_path / "problems.jsonl",
             "--save_samples", tmp_path / "samples.jsonl", "--json"]
    refused = run_script("eval_humaneval.py", *flags, extra_env={"HFLT_MAX_ISOLATION": "none"})
    assert refused.returncode == 2 and "--allow_unsandboxed_code_execution" in refused.stderr, refused.output
    assert "Traceback" not in refused.stderr and not (tmp_path / "samples.jsonl").exists()
    allowed = json_output(run_script("eval_humaneval.py", *flags, "--allow_unsandboxed_code_execution",
                                     extra_env={"HFLT_MAX_ISOLATION": "none"}))
    assert allowed["isolation"] == "none" and allowed["pass@1"] == 1.0
    raised = run_script("eval_humaneval.py", *flags, extra_env={"HFLT_MAX_ISOLATION": "everything"})
    assert raised.returncode == 2 and "HFLT_MAX_ISOLATION" in raised.stderr
