"""eval_humaneval.py's sandbox: model-written programs that try to escape, run through `--completions` as the agent
runs the script. Each attempt returns the right answer after its attack, so an attack that works passes; attacks
that read secrets raise what they read, so a leak shows in the saved results."""

import ctypes
import json
import os
import platform
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SCRIPTS, json_output

MARKER = "hf_marker_token_must_not_leak"
WORLD_WRITABLE = [folder for folder in ("/tmp", "/var/tmp", "/dev/shm") if os.access(folder, os.W_OK)]
ADD = {"entry_point": "add", "prompt": "def add(a, b):\n", "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n"}


def escape_attempts(outside: Path, port: int, token_file: Path, sleeper: str, shared: Path | None) -> dict[str, str]:
    """`shared`: a file any uid may write, in a world-writable folder with user extended attributes: a program must
    still not change its metadata (times, extended attributes)."""
    syscall_socket = {"x86_64": 41, "aarch64": 198}[platform.machine()]
    libc = "import ctypes; libc = ctypes.CDLL(None); "
    metadata = {} if shared is None else {
        "os.utime": f"import os; os.utime({str(shared)!r}, None); return a + b",
        "os.setxattr": f"import os; os.setxattr({str(shared)!r}, 'user.hflt', b'escaped'); return a + b",
        "fsetxattr": f"import os; os.setxattr(os.open({str(shared)!r}, os.O_RDONLY), 'user.hflt', b'x'); return a + b",
        "os.removexattr": f"import os; os.removexattr({str(shared)!r}, 'user.hflt_keep'); return a + b",
        **({"utime syscall": libc + f"assert libc.syscall(132, {str(shared).encode()!r}, None) == 0; return a + b",
            "futimesat syscall": libc + f"assert libc.syscall(261, -100, {str(shared).encode()!r}, None) == 0; "
                                        "return a + b"} if platform.machine() == "x86_64" else {}),
    }
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
        # SysV IPC and POSIX message queues outlive the program (IPC_PRIVATE, IPC_CREAT | 0600; O_CREAT | O_RDWR)
        "shmget": libc + "assert libc.shmget(0, 256 * 2 ** 20, 0o1600) >= 0; return a + b",
        "msgget": libc + "assert libc.msgget(0, 0o1600) >= 0; return a + b",
        "semget": libc + "assert libc.semget(0, 1, 0o1600) >= 0; return a + b",
        "mq_open": libc + f"assert libc.mq_open(b'/hflt{sleeper}', 0o102, 0o600, None) >= 0; return a + b",
        **metadata,
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


def shared_file(sleeper: str) -> Path | None:
    """A file every uid may write, with an extended attribute, in a world-writable folder that has them."""
    for folder in WORLD_WRITABLE:
        path = Path(folder, f"{sleeper}.shared")
        path.write_text("shared")
        try:
            os.setxattr(path, "user.hflt_keep", b"keep")
        except OSError:
            path.unlink()
            continue
        path.chmod(0o666)
        os.utime(path, (1_000_000_000, 1_000_000_000))
        return path
    return None


def ipc_objects_of(uid: int) -> list[str]:
    """The SysV IPC objects (shared memory, message queues, semaphores) this machine holds for `uid`."""
    found = []
    for kind in ("shm", "msg", "sem"):
        try:
            lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()
        except OSError:
            continue
        header = lines[0].split()
        found += [f"{kind} {line}" for line in lines[1:] if int(line.split()[header.index("uid")]) == uid]
    return found


def run_escapes(tmp_path: Path, run_script, env: dict, *flags, extra_env: dict | None = None):
    sleeper = f"{random.randint(1000, 9999)}.{random.randint(1000, 9999)}"
    shared = shared_file(sleeper)
    try:
        return attempt_escapes(tmp_path, run_script, env, sleeper, shared, *flags, extra_env=extra_env)
    finally:
        if shared:
            shared.unlink()


def attempt_escapes(tmp_path: Path, run_script, env: dict, sleeper: str, shared: Path | None, *flags,
                    extra_env: dict | None = None):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("still here")
    token_file = Path(env["HF_HOME"]) / "token"
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text(MARKER)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    ipc_before = ipc_objects_of(65534) + ipc_objects_of(65533)
    attempts = escape_attempts(outside, listener.getsockname()[1], token_file, sleeper, shared)
    with open(tmp_path / "problems.jsonl", "w") as f:
        f.writelines(json.dumps({"task_id": f"Escape/{name}", **ADD}) + "\n" for name in attempts)
    with open(tmp_path / "completions.jsonl", "w") as f:
        f.writelines(json.dumps({"task_id": f"Escape/{name}", "completion": f"    {code}\n"}) + "\n"
                     for name, code in attempts.items())
    result = run_script("eval_humaneval.py", "--completions", tmp_path / "completions.jsonl", "--problems",
                        tmp_path / "problems.jsonl", "--timeout", "4", "--save_samples", tmp_path / "samples.jsonl",
                        "--json", *flags, extra_env={"HF_TOKEN": MARKER, **(extra_env or {})})
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mq_open(f"/hflt{sleeper}".encode(), 0) >= 0:  # a POSIX message queue the program left
        libc.mq_unlink(f"/hflt{sleeper}".encode())
        raise AssertionError("a POSIX message queue outlived the evaluation")
    try:
        connection = listener.accept()[0]
        received = connection.recv(100)
    except BlockingIOError:
        received = b""
    listener.close()
    outcomes = {row["task_id"].split("/", 1)[1]: row for row in map(json.loads, open(tmp_path / "samples.jsonl"))}
    assert outcomes["control"]["passed"], outcomes["control"]
    assert [name for name, outcome in outcomes.items() if outcome["passed"] and name != "control"] == []
    assert outcomes["infinite loop"]["result"] == "timed out"
    assert sorted(os.listdir(outside)) == ["keep.txt"] and (outside / "keep.txt").read_text() == "still here"
    assert received == b""
    assert not [folder for folder in WORLD_WRITABLE if os.path.exists(f"{folder}/{sleeper}")]
    assert processes_with(sleeper) == []
    assert MARKER not in result.stdout + result.stderr + (tmp_path / "samples.jsonl").read_text()
    assert ipc_objects_of(65534) + ipc_objects_of(65533) == ipc_before
    if shared:
        assert shared.stat().st_mtime == 1_000_000_000 and os.listxattr(shared) == ["user.hflt_keep"]
        assert os.getxattr(shared, "user.hflt_keep") == b"keep"
    result = json_output(result)
    assert result["results"] == {"passed": 1, "failed": len(attempts) - 2, "timed out": 1}
    return result


def test_escape_attempts_are_contained_by_namespaces(tmp_path, run_script, env):
    """The strongest level, which this machine allows: user, mount, pid and network namespaces plus seccomp."""
    result = run_escapes(tmp_path, run_script, env)
    assert result["isolation"] == "namespaces"


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


# A wrong answer (2 + 3 is not 0) dressed up to be scored "passed": each worked on the evaluator before the checker
# ran apart from the candidate (the pass marker was in the program; results were compared in the candidate's process).
FORGERIES = {
    "honest right answer": "return a + b",
    "honest wrong answer": "return 0",
    "pass marker read from the program, then exit before the asserts":
        "import os\n    for name in filter(os.path.isfile, os.listdir('.')):\n        print(open(name).read(), flush=True)\n"
        "    os._exit(0)",
    "pass marker read from the frames' code constants, then exit":
        "import os, sys\n    frame = sys._getframe()\n    while frame:\n        print(*frame.f_code.co_consts, flush=True)\n"
        "        frame = frame.f_back\n    os._exit(0)",
    "an object equal to everything": "class E(int):\n        __eq__ = lambda *a: True\n    return E(0)",
    "an always-equal object whose repr is a literal":
        "class E(int):\n        __eq__ = lambda *a: True\n        __repr__ = lambda self: '0'\n    return E(0)",
    "exit 0 before the asserts": "raise SystemExit(0)",
}


@pytest.mark.parametrize("level", ["namespaces", "seccomp"])
def test_no_completion_can_forge_a_pass(tmp_path, run_script, level):
    """The three forgeries found on the evaluator and an always-equal object score 0 at both isolation levels; the
    honest answers score as they should."""
    if level == "seccomp" and os.geteuid() != 0:
        pytest.skip("the seccomp level drops to unprivileged uids, which needs root")
    (tmp_path / "problems.jsonl").write_text("".join(json.dumps({"task_id": f"F/{name}", **ADD}) + "\n"
                                                     for name in FORGERIES))
    (tmp_path / "completions.jsonl").write_text("".join(
        json.dumps({"task_id": f"F/{name}", "completion": f"    {code}\n"}) + "\n" for name, code in FORGERIES.items()))
    result = run_script("eval_humaneval.py", "--completions", tmp_path / "completions.jsonl", "--problems",
                        tmp_path / "problems.jsonl", "--save_samples", tmp_path / "samples.jsonl", "--json",
                        extra_env={"HFLT_MAX_ISOLATION": level})
    if json_output(result)["isolation"] != level:
        pytest.skip(f"this machine cannot sandbox at the {level} level: {result.stderr.splitlines()[0]}")
    passed = {row["task_id"].split("/", 1)[1]: row["passed"] for row in map(json.loads, open(tmp_path / "samples.jsonl"))}
    assert passed == {name: name == "honest right answer" for name in FORGERIES}


def test_a_flooding_program_leaves_a_few_kilobytes(tmp_path, run_script):
    """Candidate and test alike write megabytes (on stdout, stderr, in one line and in many, in an exception's
    message): the recorded error and the saved sample keep a few KB, the head and the tail."""
    flood = ("import sys\n    sys.stdout.write('o' * 3_000_000)\n    sys.stderr.write('e\\n' * 1_000_000)\n"
             "    raise RuntimeError('r' * 3_000_000)")
    loud_test = ("def check(candidate):\n    import sys\n    print('p' * 3_000_000)\n"
                 "    assert candidate(2, 3) == 5, 'm' * 3_000_000\n")
    (tmp_path / "problems.jsonl").write_text(json.dumps({"task_id": "Flood/candidate", **ADD}) + "\n"
                                             + json.dumps({"task_id": "Flood/test", **ADD, "test": loud_test}) + "\n")
    (tmp_path / "completions.jsonl").write_text(
        json.dumps({"task_id": "Flood/candidate", "completion": f"    {flood}\n"}) + "\n"
        + json.dumps({"task_id": "Flood/test", "completion": "    return a - b\n"}) + "\n")
    result = json_output(run_script("eval_humaneval.py", "--completions", tmp_path / "completions.jsonl", "--problems",
                                    tmp_path / "problems.jsonl", "--save_samples", tmp_path / "samples.jsonl", "--json"))
    assert result["results"]["failed"] == 2
    rows = (tmp_path / "samples.jsonl").read_text().splitlines()
    for row in rows:
        sample = json.loads(row)
        assert not sample["passed"] and len(row) < 12_000, (sample["task_id"], len(row))
        assert sample["error"] and len(sample["error"][0]) <= 1000
    candidate = json.loads(rows[0])
    assert candidate["output"].startswith("o") and "bytes cut" in candidate["output"] and "RuntimeError" in candidate["error"][0]


def test_each_sandbox_program_stands_alone():
    """The programs the sandbox runs are functions of the script, sent as their source: each must compile and use
    no name of the script it does not carry (ruff's undefined-name check on the text as sent)."""
    sys.path.insert(0, str(SCRIPTS))
    import eval_humaneval

    for function in eval_humaneval.CHILD_SOURCES:
        program = eval_humaneval.child_program(function, *(["x"] if function.__code__.co_argcount else []))
        compile(program, function.__name__, "exec")
        lint = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "F",
                               "--stdin-filename", f"{function.__name__}.py", "-"], input=program, text=True,
                              capture_output=True)
        assert lint.returncode == 0, lint.stdout


def test_a_datasets_own_test_code_runs_sandboxed(tmp_path, run_script, env):
    """A --problems file is untrusted too: its test code runs in the checker's sandbox, never in the evaluator."""
    token_file = Path(env["HF_HOME"]) / "token"
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text(MARKER)
    written = tmp_path / "written-by-the-test.txt"
    hostile = (f"def check(candidate):\n    assert candidate(2, 3) == 5\n    open({str(written)!r}, 'w').write('x')\n"
               f"    raise RuntimeError(open({str(token_file)!r}).read())\n")
    (tmp_path / "problems.jsonl").write_text(json.dumps({"task_id": "T/0", **ADD, "test": hostile}) + "\n")
    (tmp_path / "completions.jsonl").write_text(json.dumps({"task_id": "T/0", "completion": "    return a + b\n"}))
    result = run_script("eval_humaneval.py", "--completions", tmp_path / "completions.jsonl", "--problems",
                        tmp_path / "problems.jsonl", "--save_samples", tmp_path / "samples.jsonl", "--json",
                        extra_env={"HF_TOKEN": MARKER})
    assert json_output(result)["pass@1"] == 0.0 and not written.exists()
    assert MARKER not in result.output + (tmp_path / "samples.jsonl").read_text()
