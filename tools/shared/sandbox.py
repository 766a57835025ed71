"""The sandbox that runs model-written code (eval_humaneval.py's scoring, train_grpo.py's code_tests reward): each
program in a fresh process with the strongest isolation the machine allows (`namespaces`, else `seccomp` with an
unprivileged uid, else nothing unless the person named the risk), CPU, memory, file-size and wall-clock limits, and
its output kept bounded. A function-level test runs as two sandboxed programs, the candidate and the checker, joined
by pipes that carry only literals, so that no completion can forge a pass; a stdin/stdout test runs the program
alone, with the test's input only: its output is compared by the caller, outside the sandbox."""

import contextlib
import inspect
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from .errors import BadInput

ISOLATION_LEVELS = ("namespaces", "seccomp", "none")
NOBODY = 65534  # the candidate's uid at the seccomp level
CHECKER_UID = 65533  # the checker's: the candidate can neither read its files nor reach its process
OUTPUT_KEPT = 4096  # bytes of a program's stdout or stderr kept: the first and the last half
DENIED_SYSCALLS = [
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4", "sendto", "sendmsg", "sendmmsg",
    "fork", "vfork", "clone", "clone3", "ptrace", "process_vm_readv", "process_vm_writev", "kill", "tkill", "tgkill",
    "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_open", "pidfd_send_signal", "pidfd_getfd", "mount", "umount2",
    "pivot_root", "chroot", "unshare", "setns", "open_by_handle_at", "name_to_handle_at", "keyctl", "add_key",
    "request_key", "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "kexec_load", "init_module",
    "finit_module", "delete_module", "reboot", "swapon", "swapoff", "acct", "quotactl", "personality", "setsid",
    "setpgid",
    # SysV IPC and POSIX message queues outlive the process that made them (pinned memory, a channel to the next
    # program): refused at every level ("ipc" is the multiplexer of some architectures)
    "shmget", "shmat", "shmdt", "shmctl", "msgget", "msgsnd", "msgrcv", "msgctl", "semget", "semop", "semtimedop",
    "semctl", "ipc", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr"]
# Without a private file system (the seccomp level), world-writable directories (/tmp, /dev/shm) are open to any
# uid: the program may not write, create, rename or delete any file, change its metadata (times, mode, owner,
# extended attributes), nor open one for writing ((syscall, the index of its flags argument)).
DENIED_FILE_CHANGES = ["creat", "openat2", "unlink", "unlinkat", "rename", "renameat", "renameat2", "mkdir", "mkdirat",
                       "rmdir", "link", "linkat", "symlink", "symlinkat", "truncate", "ftruncate", "mknod", "mknodat",
                       "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat", "utime",
                       "utimes", "utimensat", "futimesat", "setxattr", "lsetxattr", "fsetxattr", "removexattr",
                       "lremovexattr", "fremovexattr"]
DENIED_WRITE_OPENS = [("open", 1), ("openat", 2)]


# ---------------------------------------------------------------- the sandbox's programs
# Each function below is the source of a program that runs inside the sandbox: its text (inspect.getsource) is what
# the sandbox executes, so it imports what it uses and reads no module-level name but the others listed in
# CHILD_SOURCES (tests/test_eval_sandbox.py lints each program as it is sent).


class CandidateError(Exception):
    """In the checker: the candidate raised, answered something that is not a plain value, or stopped answering."""


def literal(value) -> str:
    """`value` as Python literal text that ast.literal_eval reads back as a plain builtin value: a subclass of a
    builtin type crosses as its base (a namedtuple as a tuple, a Counter as a dict, an int with its own __eq__ as the
    int it holds, written by int's own repr); anything else (a generator, NaN, a frozenset) is refused."""
    if value is None or isinstance(value, bool):
        return repr(bool(value)) if value is not None else "None"
    if isinstance(value, float):
        if value != value:
            raise ValueError("NaN has no literal")
        return float.__repr__(value) if abs(value) != float("inf") else ("1e999" if value > 0 else "-1e999")
    for kind in (int, str, bytes):
        if isinstance(value, kind):
            return kind.__repr__(value)
    if isinstance(value, list):
        return "[" + ", ".join(literal(item) for item in value) + "]"
    if isinstance(value, tuple):
        return "(" + "".join(literal(item) + ", " for item in value) + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(literal(key) + ": " + literal(item) for key, item in value.items()) + "}"
    if isinstance(value, set):
        return "{" + ", ".join(literal(item) for item in value) + "}" if value else "set()"
    raise TypeError(f"a value of type {type(value).__name__} is not a plain value (numbers, strings, bytes, lists, "
                    "tuples, dicts, sets, None)")


def serve_candidate(entry_point: str):
    """The candidate's program: loads candidate.py (prompt + completion) and answers each call (a literal
    `(args, kwargs)` line on stdin) with a literal `("returned", value)` or `("raised", message)` line. Whatever the
    completion does to this process, only such lines reach the checker, and only as plain values."""
    import ast
    import os
    import traceback

    requests, answers = os.fdopen(os.dup(0), "rb"), os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)  # the completion's input() and prints stay off the pipes
    os.dup2(2, 1)
    namespace, failure = {"__name__": "__main__"}, None
    try:
        with open("candidate.py") as f:
            exec(compile(f.read(), "candidate.py", "exec"), namespace)
        function = namespace[entry_point]
    except BaseException as error:  # noqa: BLE001 - told to the checker at each call
        traceback.print_exc()
        failure = error
    for line in requests:
        try:
            if failure:
                raise failure
            args, kwargs = ast.literal_eval(line.decode())
            answer = literal(("returned", function(*args, **kwargs)))
        except BaseException as error:  # noqa: BLE001 - SystemExit too: a failure of this call
            answer = literal(("raised", f"{type(error).__name__}: {error}"[:2000]))
        answers.write(answer + "\n")
        answers.flush()


def run_check(entry_point: str):
    """The checker's program: runs the problem's prompt and test, then `check` on a stand-in for the candidate's
    function that crosses the pipes (requests on fd 3, answers on stdin). Only when `check` returns after at least one
    call does it write its verdict, on its stdout, which only the evaluator reads (the test's prints go to stderr)."""
    import ast
    import json
    import os

    verdict, requests, answers = os.fdopen(os.dup(1), "w"), os.fdopen(3, "w"), os.fdopen(0, "rb")
    os.dup2(2, 1)
    calls = 0

    def candidate(*args, **kwargs):
        nonlocal calls
        calls += 1
        try:
            requests.write(literal((args, kwargs)) + "\n")
            requests.flush()
        except BrokenPipeError:
            raise CandidateError("the candidate exited before it was called") from None
        line = answers.readline(16 * 2**20 + 1)
        if not line.endswith(b"\n"):
            raise CandidateError("the candidate stopped answering (it exited, or an answer passed 16 MiB)")
        try:
            answer = ast.literal_eval(line.decode())
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError, UnicodeDecodeError):
            answer = None
        if type(answer) is not tuple or len(answer) != 2 or answer[0] not in ("returned", "raised"):
            raise CandidateError("the candidate's answer is not a plain value")
        if answer[0] == "raised":
            raise CandidateError(str(answer[1]))
        return answer[1]

    namespace = {"__name__": "__main__"}
    with open("prompt.py") as f:
        prompt = f.read()
    # the prompt defines helpers some tests use (poly, encode_cyclic); it ends with the function's signature (and
    # docstring), given a body here when it has none
    for source in (prompt, prompt + "    pass\n", ""):
        try:
            code = compile(source, "prompt.py", "exec")
            break
        except SyntaxError:
            continue
    exec(code, namespace)
    with open("test.py") as f:
        exec(compile(f.read(), "test.py", "exec"), namespace)
    namespace[entry_point] = candidate
    namespace["check"](candidate)
    if not calls:
        raise CandidateError("the test never called the candidate: a test that calls nothing passes nothing")
    verdict.write(json.dumps({"check": "returned", "calls": calls}))
    verdict.flush()


def probe(paths: list[str]):
    """The probe's program: prints "contained" when it can read none of `paths` (the token) and open no socket."""
    import os
    import socket

    exposed = [path for path in paths if os.access(path, os.R_OK)]
    try:
        socket.socket().close()
        exposed.append("the network")
    except OSError:
        pass
    print("contained" if not exposed else "exposes " + ", ".join(exposed))


def sandbox_boot():
    """Run as `python -I -S -c <this> CONFIG` by the sandbox's interpreter: builds the isolation, then execs
    `python -I program.py` in it."""
    import ctypes
    import json
    import os
    import resource
    import sys

    config = json.loads(sys.argv[1])
    libc = ctypes.CDLL(None, use_errno=True)

    def check(result, what):
        if result != 0:
            raise OSError(ctypes.get_errno(), what)

    def mount(source, target, fstype, flags, data=None):
        def encode(text):
            return text.encode() if text else None

        check(libc.mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data)), target)

    for source, target in config["fds"]:  # the pipes to the other program, where it expects them
        if source != target:
            os.dup2(source, target)
            os.close(source)
    if config["level"] == "namespaces":
        rdonly, nosuid, nodev, remount, bind, rec, private, relatime = 1, 2, 4, 32, 4096, 16384, 1 << 18, 1 << 21
        root, files = config["root"], {}
        for name in config["files"]:
            with open(name) as f:
                files[name] = f.read()
        mount(None, "/", None, rec | private)
        mount("tmpfs", root, "tmpfs", nosuid | nodev, "size=1m,mode=0755")
        for path in config["read_only"]:
            target = root + path
            if os.path.islink(path):  # merged /usr: /bin -> usr/bin
                os.symlink(os.readlink(path), target)
                continue
            os.makedirs(target if os.path.isdir(path) else os.path.dirname(target), exist_ok=True)
            if not os.path.isdir(path):
                open(target, "w").close()
            mount(path, target, None, bind | rec)
            # a remount must keep the flags the outer namespace locked (nosuid, nodev, noexec, atime)
            flags = os.statvfs(path).f_flag
            locked = flags & (2 | 4 | 8 | 1024 | 2048) | (relatime if flags & 4096 else 0)
            mount(None, target, None, remount | bind | rdonly | locked)
        os.makedirs(root + "/dev")
        for device in ("null", "zero", "random", "urandom"):
            open(f"{root}/dev/{device}", "w").close()
            mount(f"/dev/{device}", f"{root}/dev/{device}", None, bind)
        os.makedirs(root + "/sandbox")
        mount("tmpfs", root + "/sandbox", "tmpfs", nosuid | nodev, f"size={config['disk_mb']}m,mode=0777")
        mount(None, root, None, remount | bind | rdonly | nosuid | nodev)
        os.chroot(root)
        os.chdir("/sandbox")
        for name, text in files.items():
            with open(name, "w") as f:
                f.write(text)
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
            if number >= 0:  # fork, vfork and ipc do not exist on every architecture
                # clone3 answers ENOSYS so that libc falls back to clone, which the filter can inspect and refuses
                errno = 38 if name == "clone3" else 1
                check(seccomp.seccomp_rule_add(ctypes.c_void_p(rules), 0x00050000 | errno, number, 0), name)

        class ArgumentTest(ctypes.Structure):  # libseccomp's struct scmp_arg_cmp
            _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("mask", ctypes.c_uint64),
                        ("value", ctypes.c_uint64)]

        for name, flags_argument in config["denied_write_opens"]:  # an open for writing, creating or truncating
            number = seccomp.seccomp_syscall_resolve_name(name.encode())
            for bit in (0o1, 0o2, 0o100, 0o1000):  # O_WRONLY, O_RDWR, O_CREAT, O_TRUNC: one rule each, any denies
                test = ArgumentTest(flags_argument, 7, bit, bit)  # SCMP_CMP_MASKED_EQ
                check(seccomp.seccomp_rule_add_array(ctypes.c_void_p(rules), 0x00050001, number, 1,
                                                     ctypes.byref(test)), name)
        check(seccomp.seccomp_load(ctypes.c_void_p(rules)), "seccomp")
    os.execv(config["python"], [config["python"], "-I", "program.py"])


# What each program is made of: its function's source and the sources it calls.
CHILD_SOURCES = {serve_candidate: [literal], run_check: [CandidateError, literal], probe: [], sandbox_boot: []}


def child_program(function, *arguments) -> str:
    """The text of a sandbox program: the function's source (and what it calls), then the call."""
    parts = [inspect.getsource(part) for part in [*CHILD_SOURCES[function], function]]
    return "\n\n".join(parts) + f"\n\n{function.__name__}({', '.join(map(repr, arguments))})\n"


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


def bounded(file, kept: int = OUTPUT_KEPT) -> str:
    """What a program wrote to `file`, read without loading more than `kept` bytes: all of it when short, else its
    head and its tail around a note of what was cut."""
    size = file.seek(0, os.SEEK_END)
    file.seek(0)
    if size <= kept:
        return file.read().decode(errors="replace")
    head = file.read(kept // 2).decode(errors="replace")
    file.seek(size - kept // 2)
    return f"{head}\n[... {size - kept} bytes cut ...]\n{file.read().decode(errors='replace')}"


def start(stack: contextlib.ExitStack, files: dict[str, str], isolation: dict, timeout: float, uid: int, stdin,
          stdout, fds: tuple[tuple[int, int], ...] = ()) -> tuple[subprocess.Popen, object]:
    """Starts `python -I program.py` in a fresh sandbox whose working directory holds `files`, with `fds` ((fd here,
    fd there) pairs) handed over; returns the process (killed with everything it ran when `stack` closes) and the
    file its stderr goes to. At the seccomp level it runs as `uid`, in a directory only that uid can read."""
    level = isolation["level"]
    sandbox = stack.enter_context(tempfile.TemporaryDirectory(prefix="sandbox-"))
    stderr = stack.enter_context(tempfile.TemporaryFile())
    for name, text in files.items():
        Path(sandbox, name).write_text(text)
    Path(sandbox, "root").mkdir()
    limits = {"RLIMIT_AS": 1024 * 2**20, "RLIMIT_CPU": math.ceil(timeout), "RLIMIT_FSIZE": 10 * 2**20,
              "RLIMIT_CORE": 0, "RLIMIT_NOFILE": 64}
    private_files = level == "namespaces"  # a read-only root and a tmpfs of its own
    config = {"level": level, "python": isolation["python"], "root": f"{sandbox}/root", "disk_mb": 64,
              "read_only": read_only_paths(), "limits": limits, "files": list(files), "fds": list(fds),
              "denied_syscalls": DENIED_SYSCALLS + ([] if private_files else DENIED_FILE_CHANGES),
              "denied_write_opens": [] if private_files else DENIED_WRITE_OPENS}
    command = [isolation["python"], "-I", "-S", "-c", child_program(sandbox_boot), json.dumps(config)]
    user = None
    if level == "namespaces":
        command = [shutil.which("unshare"), "--user", "--map-root-user", "--net", "--mount", "--pid", "--ipc",
                   "--uts", "--fork", "--kill-child", "--", *command]
    elif level == "seccomp" and os.geteuid() == 0:
        user = uid
        os.chown(sandbox, uid, uid)
    process = subprocess.Popen(command, cwd=sandbox, env={"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"},
                               stdin=stdin, stdout=stdout, stderr=stderr, start_new_session=True, user=user,
                               group=user, extra_groups=[] if user else None, pass_fds=[fd for fd, _ in fds])
    stack.callback(stop, process)
    return process, stderr


def stop(process: subprocess.Popen):
    # the sandbox cannot start processes (and in namespaces, its pid namespace dies with its first process):
    # killing the group ends everything it ran
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def out_of_time(process: subprocess.Popen) -> bool:
    """Ended by its CPU limit (the same seconds as the wall-clock one): a program that ran out of time, whichever of
    the two limits came first on a loaded machine."""
    ended = {-signal.SIGXCPU, -signal.SIGKILL, 128 + signal.SIGXCPU, 128 + signal.SIGKILL}
    return finished(process, 1.0) and process.returncode in ended


def finished(process: subprocess.Popen, timeout: float) -> bool:
    try:
        process.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def execute(program: str, isolation: dict, timeout: float = 10.0) -> tuple[bool, str, str]:
    """Runs one program in a fresh sandbox: (timed out, stdout, stderr), each bounded."""
    with contextlib.ExitStack() as stack:
        stdout = stack.enter_context(tempfile.TemporaryFile())
        process, stderr = start(stack, {"program.py": program}, isolation, timeout, NOBODY, subprocess.DEVNULL, stdout)
        timed_out = not finished(process, timeout)
        return timed_out, bounded(stdout), bounded(stderr)


def run_with_input(program: str, given: bytes, isolation: dict, timeout: float,
                   max_output: int) -> tuple[bool, int | None, bytes | None, str]:
    """Runs one program in a fresh sandbox with `given` as its standard input: (timed out, exit status, its stdout,
    or None when it wrote more than `max_output` bytes, its stderr bounded). Only the input enters the sandbox: what
    the output is compared with stays with the caller, who compares the bytes the program wrote."""
    with contextlib.ExitStack() as stack:
        stdin, stdout = (stack.enter_context(tempfile.TemporaryFile()) for _ in range(2))
        stdin.write(given)
        stdin.seek(0)
        process, stderr = start(stack, {"program.py": program}, isolation, timeout, NOBODY, stdin, stdout)
        timed_out = not finished(process, timeout) or out_of_time(process)
        size = stdout.seek(0, os.SEEK_END)
        stdout.seek(0)
        return timed_out, process.returncode, stdout.read() if size <= max_output else None, bounded(stderr)


def run_sample(problem: dict, completion: str, isolation: dict, timeout: float = 10.0,
               candidate_program: str | None = None) -> dict:
    """Runs one completion against its problem's test: the candidate (`candidate_program`, by default the problem's
    prompt followed by the completion) and the checker, each sandboxed, joined by two pipes that carry only literals;
    passed only on the checker's verdict."""
    entry_point = problem["entry_point"]
    with contextlib.ExitStack() as stack:
        verdict = stack.enter_context(tempfile.TemporaryFile())
        requests_read, requests_write = os.pipe()
        answers_read, answers_write = os.pipe()
        try:
            candidate, candidate_err = start(
                stack, {"program.py": child_program(serve_candidate, entry_point),
                        "candidate.py": problem["prompt"] + completion if candidate_program is None
                        else candidate_program}, isolation, timeout, NOBODY,
                requests_read, answers_write)
            checker, checker_err = start(
                stack, {"program.py": child_program(run_check, entry_point), "prompt.py": problem["prompt"],
                        "test.py": problem["test"]}, isolation, timeout, CHECKER_UID, answers_read, verdict,
                fds=((requests_write, 3),))
        finally:  # only the two programs hold the pipes now: either one's end is the other's end of file
            for fd in (requests_read, requests_write, answers_read, answers_write):
                os.close(fd)
        timed_out = not finished(checker, timeout) or out_of_time(candidate)
        try:
            said = json.loads(bounded(verdict, 1024))
        except ValueError:
            said = {}
        passed = not timed_out and checker.returncode == 0 and said.get("check") == "returned" and said["calls"] > 0
        result = "timed out" if timed_out else "passed" if passed else "failed"
        error = bounded(checker_err).strip().splitlines()[-1:] if result == "failed" else []
        output = bounded(candidate_err).strip()
    return {"task_id": problem["task_id"], "completion": completion, "passed": passed, "result": result,
            "error": [line[:1000] for line in error]} | ({"output": output} if output and not passed else {})


def sandbox_interpreters(level: str) -> list[str]:
    """Pythons to try at a level: as an unprivileged uid, a Python installed in root's home is unreadable, and the
    system's Python runs the (standard-library only) programs as well."""
    if level == "namespaces":
        return [sys.executable] if shutil.which("unshare") else []
    system = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    return [sys.executable] + ([system] if system and os.path.realpath(system) != os.path.realpath(sys.executable)
                               else [])


def choose_isolation(allow_unsandboxed: bool, tag: str = "eval") -> dict:
    """The strongest isolation that really contains a probe here: it must see no token and no network. Refuses (one
    sentence naming --allow_unsandboxed_code_execution) where none does, unless the person passed that flag."""
    from huggingface_hub import constants

    def log(message: str):
        print(f"[{tag}] {message}", file=sys.stderr, flush=True)

    ceiling = os.environ.get("HFLT_MAX_ISOLATION", ISOLATION_LEVELS[0])
    if ceiling not in ISOLATION_LEVELS:
        raise BadInput(f"HFLT_MAX_ISOLATION={ceiling!r} is not one of {', '.join(ISOLATION_LEVELS)}; unset it.")
    secrets_here = [constants.HF_TOKEN_PATH, constants.HF_STORED_TOKENS_PATH, f"/proc/{os.getpid()}/environ"]
    for level in ISOLATION_LEVELS[ISOLATION_LEVELS.index(ceiling):-1]:
        for python in sandbox_interpreters(level):
            isolation = {"level": level, "python": python}
            try:
                timed_out, stdout, stderr = execute(child_program(probe, secrets_here), isolation)
                reason = stdout.strip() or (stderr.strip().splitlines() or ["timed out"])[-1]
            except OSError as error:  # e.g. a Python the unprivileged uid may not execute
                reason = str(error)
            if reason == "contained":
                return isolation
            log(f"sandbox level {level} with {python} is not available here: {reason}")
    if not allow_unsandboxed:
        raise BadInput("No sandbox can contain generated code on this machine (user namespaces refused, and no "
                       "seccomp filter with an unprivileged uid); pass --allow_unsandboxed_code_execution to run "
                       "model-written code with your own rights, your token and your network.")
    log("WARNING: generated code runs unsandboxed (resource limits only): it can read your token and files.")
    return {"level": "none", "python": sys.executable}
