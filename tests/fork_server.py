"""A Python with torch already imported, from which the tests' runs of the bundled scripts are forked.

Every script that trains, evaluates, plans or converts imports torch and the parts of it that transformers pulls in
(dynamo, distributed tensors and checkpoints, sympy), and through datasets and transformers pandas, pyarrow and
scipy.optimize: about 3.5 CPU seconds a start on the 2-core machine, paid by hundreds of runs.
Imported once here, each run is a fork that sets up what a fresh `python script.py args` would have (argv,
sys.path, environment and locale, working directory, standard streams, signal handlers) and runs the script as
`__main__`, then exits the way that interpreter would (non-daemon threads joined, atexit handlers run, streams flushed, exit
code, a traceback and 1 for an uncaught error), except that it does not tear its modules down: in a fork, freeing
torch's and pandas's objects touches (and so copies) every page shared with the server, 1.3 CPU seconds a run for
nothing. An exit handler registered before any module is imported runs after every other one and ends the run there.
What reads the environment when it is imported (huggingface_hub, transformers, datasets, TRL) is never imported
by the server, only under a run's own environment (in the run, or in a zygote made for that environment); tqdm,
which torch imports and which reads its TQDM_* settings then, is dropped from the fork's modules before the script
runs.

Zygotes. A trainer opens by importing transformers, TRL and peft: 1.7 CPU seconds of every run, more than a run
that stops on a bad flag spends on anything else. The second time a script is run with the same environment and
working directory, the server forks a zygote for that triple: a process that sets that environment, directory and
sys.path exactly as the run would, then executes the script's opening import statements (the ones between its
docstring and its first other statement, the imports a fresh run executes first). That run and the later ones of
the triple are forked from the zygote. What a library reads when it is imported is then what the run itself would
have read: the same environment and directory, and the same files. A zygote is refused (the runs go on from the
server) when those imports print anything, start a thread, or read sys.argv, the one thing that differs between
runs. At most six zygotes live at once; a retired one ends once its runs have ended, and so does one whose
server is gone. The zygote's imports are charged to the CPU seconds of its first run.

Protocol, over a Unix socket: the client sends one JSON line {"argv", "env", "cwd", "session"} with its stdin,
stdout and stderr descriptors attached; the server answers {"pid"} at once (with "session", once the run leads a
session of its own, as Popen(start_new_session=True) starts a process) and, when the run ends, {"status"} (as
os.waitstatus_to_exitcode gives it) with the CPU seconds the run used. Or it answers {"zygote": socket}: the client
sends the same request there, or back to the server with "no_zygote" when that zygote is gone or was refused.
tests/fork_client.py is the client.
"""

import atexit
import os
import sys

SERVER_PID = os.getpid()
EXIT_STATUS = [0]
ZYGOTE = []  # set in a zygote: its parent's pid, its preloading's CPU seconds (charged to its first run)


def exit_without_teardown():
    """The last exit handler of a run (registered first): the streams flushed, the run's status, no teardown."""
    if os.getpid() != SERVER_PID:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed or broken stream loses nothing more than in a fresh run
                pass
        os._exit(EXIT_STATUS[0])


atexit.register(exit_without_teardown)

import ast  # noqa: E402
import functools  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import locale  # noqa: E402
import resource  # noqa: E402
import runpy  # noqa: E402
import selectors  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import tempfile  # noqa: E402

import pandas  # noqa: E402, F401
import pyarrow  # noqa: E402, F401
import scipy.optimize  # noqa: E402, F401  (transformers' losses import it)
import sympy  # noqa: E402, F401
import torch  # noqa: E402, F401
import torch._dynamo  # noqa: E402, F401
import torch.distributed.checkpoint  # noqa: E402, F401
import torch.distributed.tensor  # noqa: E402, F401

BASE_PATH = sys.path[1:]  # the interpreter's own sys.path, after the script's folder
MAX_ZYGOTES = 6  # the shared environment keeps three (one per trainer); tests that run a trainer twice make more
ZYGOTE_NUMBERS = itertools.count()


def listen(path: str) -> socket.socket:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    return listener


def serve(listener: socket.socket) -> dict:
    """Answers requests until it is killed (a zygote: until it is retired or its server is gone, and its runs have
    ended); in each forked run, returns that run's request."""
    wakeup_read, wakeup_write = socket.socketpair()
    wakeup_write.setblocking(False)
    signal.set_wakeup_fd(wakeup_write.fileno())
    signal.signal(signal.SIGCHLD, lambda *_: None)  # the wakeup fd is what matters
    retired = []
    if ZYGOTE:
        signal.signal(signal.SIGTERM, lambda *_: retired.append(True))
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(wakeup_read, selectors.EVENT_READ)
    if not ZYGOTE:
        print("ready", flush=True)
    waiting: dict[int, socket.socket] = {}
    zygotes: dict[str, tuple[int, str]] = {}  # by key, the least recently used first
    seen, refused, retiring = set(), set(), {}
    while True:
        if ZYGOTE and (retired or os.getppid() != ZYGOTE[0]):
            if listener.fileno() >= 0:
                selector.unregister(listener)
                listener.close()
            if not waiting:
                os._exit(0)
        for key, _ in selector.select(timeout=1 if ZYGOTE else None):
            if key.fileobj is wakeup_read:
                wakeup_read.recv(4096)
                report_ended(waiting)
                reap_zygotes(zygotes, retiring, refused)
                continue
            connection, _ = listener.accept()
            message, fds, _, _ = socket.recv_fds(connection, 1 << 16, 3)
            while not message.endswith(b"\n"):  # a long request arrives in several reads
                message += connection.recv(1 << 16)
            request = json.loads(message)
            zygote_key = None if ZYGOTE or request.get("no_zygote") else key_of(request)
            if zygote_key and zygote_key not in refused and (zygote_key in zygotes or zygote_key in seen):
                if zygote_key not in zygotes:
                    if len(zygotes) == MAX_ZYGOTES:
                        oldest = next(iter(zygotes))
                        retiring[zygotes[oldest][0]] = oldest
                        os.kill(zygotes.pop(oldest)[0], signal.SIGTERM)
                    zygotes[zygote_key] = start_zygote(request, listener, [wakeup_read, wakeup_write, connection,
                                                                           *waiting.values()], selector)
                zygotes[zygote_key] = zygotes.pop(zygote_key)  # now the most recently used
                for fd in fds:
                    os.close(fd)
                connection.sendall(json.dumps({"zygote": zygotes[zygote_key][1]}).encode() + b"\n")
                connection.close()
                continue
            if zygote_key:
                seen.add(zygote_key)
            started_read, started_write = os.pipe()
            pid = os.fork()
            if pid == 0:
                if request.get("session"):
                    os.setsid()
                os.close(started_read)
                os.close(started_write)  # the server may answer now: this run's process group exists
                leave_server(listener, [wakeup_read, wakeup_write, connection, *waiting.values()], selector)
                return request | {"fds": fds}
            os.close(started_write)
            os.read(started_read, 1)  # returns once the child has closed its end
            os.close(started_read)
            for fd in fds:
                os.close(fd)
            connection.sendall(json.dumps({"pid": pid}).encode() + b"\n")
            waiting[pid] = connection
        report_ended(waiting)


def leave_server(listener, sockets, selector):
    """In a forked child: the server's sockets and signal handling are not the child's."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for sock in (listener, *sockets):
        sock.close()
    selector.close()


def report_ended(waiting: dict):
    for pid in list(waiting):
        ended, status, usage = os.wait4(pid, os.WNOHANG)
        if ended:
            connection = waiting.pop(pid)
            cpu_s = usage.ru_utime + usage.ru_stime
            if ZYGOTE and len(ZYGOTE) == 2:  # the zygote's own imports, which this first run would have made
                cpu_s += ZYGOTE.pop()
            answer = {"status": os.waitstatus_to_exitcode(status), "cpu_s": cpu_s}
            try:
                connection.sendall(json.dumps(answer).encode() + b"\n")
            except OSError:  # the client gave up waiting (its timeout) and closed
                pass
            connection.close()


def leading_imports(script: str) -> ast.Module | None:
    """The script's opening import statements, when they import a package this process has not imported."""
    try:
        body = ast.parse(open(script, "rb").read()).body
    except (OSError, SyntaxError, ValueError):
        return None
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    block = list(itertools.takewhile(lambda node: isinstance(node, (ast.Import, ast.ImportFrom)), body))
    packages = {alias.name for node in block if isinstance(node, ast.Import) for alias in node.names}
    packages |= {node.module for node in block if isinstance(node, ast.ImportFrom) and node.level == 0}
    if all(package.split(".")[0] in sys.modules for package in packages):
        return None
    return ast.Module(block, type_ignores=[])


@functools.lru_cache(maxsize=256)
def has_imports_to_make(script: str, version: tuple) -> bool:
    """Parsed once for each version (mtime, size) of a script: hundreds of runs ask."""
    return leading_imports(script) is not None


def key_of(request: dict) -> str | None:
    """What a zygote for this run is made for (script, environment, working directory), if the script has
    something to preload."""
    script = os.path.abspath(os.path.join(request["cwd"] or os.getcwd(), request["argv"][0]))
    try:
        stat = os.stat(script)
    except OSError:
        return None
    if not has_imports_to_make(script, (stat.st_mtime_ns, stat.st_size)):
        return None
    identity = json.dumps([script, request["env"], request["cwd"] or os.getcwd()], sort_keys=True)
    return hashlib.sha256(identity.encode()).hexdigest()


def start_zygote(request: dict, listener, sockets, selector) -> tuple[int, str]:
    """Forks the zygote for this request's script, environment and directory: (its pid, its socket). The socket
    listens at once: the first run waits in its backlog while the zygote imports."""
    path = os.path.join(os.path.dirname(listener.getsockname()), f"zygote-{next(ZYGOTE_NUMBERS)}")
    zygote_listener = listen(path)
    server = os.getpid()
    pid = os.fork()
    if pid == 0:
        leave_server(listener, sockets, selector)
        become(serve_as_zygote(request, zygote_listener, server))
        sys.exit(0)  # not reached: become ends the run
    zygote_listener.close()
    return pid, path


def serve_as_zygote(request: dict, listener, server: int) -> dict:
    """Prepares this process as the request's run would be prepared, imports the script's opening imports, then
    serves runs forked from it; exits 3 when those imports printed, started a thread or read sys.argv."""
    prepare(request)
    null, printed = os.open(os.devnull, os.O_RDWR), tempfile.TemporaryFile()
    for target, fd in ((0, null), (1, printed.fileno()), (2, printed.fileno())):
        os.dup2(fd, target)
    threads = len(os.listdir("/proc/self/task"))
    script = os.path.abspath(request["argv"][0])
    sys.argv = WatchedArgv([request["argv"][0]])
    started = resource.getrusage(resource.RUSAGE_SELF)
    try:
        exec(compile(leading_imports(script), script, "exec"), {"__name__": "__zygote__"})
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
    except BaseException:
        os._exit(3)
    ended = resource.getrusage(resource.RUSAGE_SELF)
    if os.lseek(printed.fileno(), 0, os.SEEK_END) or len(os.listdir("/proc/self/task")) != threads or WatchedArgv.read:
        os._exit(3)
    for target in (1, 2):
        os.dup2(null, target)
    ZYGOTE[:] = [server, ended.ru_utime + ended.ru_stime - started.ru_utime - started.ru_stime]
    return serve(listener)


class WatchedArgv(list):
    """sys.argv while a zygote imports: a library that reads it would see another run's flags."""
    read = False

    def __getitem__(self, index):
        WatchedArgv.read = True
        return super().__getitem__(index)

    def __iter__(self):
        WatchedArgv.read = True
        return super().__iter__()

    def __len__(self):
        WatchedArgv.read = True
        return super().__len__()


def reap_zygotes(zygotes: dict, retiring: dict, refused: set):
    """Zygotes that ended: a refused one (exit 3) is not made again for its key."""
    for pid, key in [(pid, key) for key, (pid, _) in zygotes.items()] + list(retiring.items()):
        ended, status = os.waitpid(pid, os.WNOHANG)
        if ended:
            retiring.pop(pid, None)
            if zygotes.get(key, (None,))[0] == pid:
                del zygotes[key]
                if os.waitstatus_to_exitcode(status) == 3:
                    refused.add(key)


def prepare(request: dict):
    """The working directory, environment, locale and sys.path a fresh `python script.py` would start with."""
    if request["cwd"]:
        os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    # A fresh interpreter in the C locale (a job's environment names none) switches to C.UTF-8 (PEP 538)
    if not os.environ.get("LC_ALL") and (os.environ.get("LC_CTYPE") or os.environ.get("LANG") or "C") in ("C", "POSIX"):
        os.environ["LC_CTYPE"] = "C.UTF-8"
    try:
        locale.setlocale(locale.LC_CTYPE, "")  # as at startup, from this environment
    except locale.Error:
        pass
    if not ZYGOTE:  # a zygote imported tqdm, if at all, under this environment
        for name in [name for name in sys.modules if name == "tqdm" or name.startswith("tqdm.")]:
            del sys.modules[name]
    script = os.path.abspath(request["argv"][0])
    extra = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [os.path.dirname(script), *extra, *BASE_PATH]


def become(request: dict):
    """Turns this forked child into `python script.py args` as run with the request's environment and streams."""
    for target, fd in enumerate(request["fds"]):
        os.dup2(fd, target)
        os.close(fd)
    prepare(request)
    script = os.path.abspath(request["argv"][0])
    sys.argv = [request["argv"][0], *request["argv"][1:]]
    unbuffered = bool(request["env"].get("PYTHONUNBUFFERED"))
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(open(0, "rb", closefd=False), encoding="utf-8")
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(open(1, "wb", buffering=0 if unbuffered else -1, closefd=False), encoding="utf-8",
                                                   write_through=unbuffered)
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(open(2, "wb", buffering=0 if unbuffered else -1, closefd=False), encoding="utf-8",
                                                   errors="backslashreplace", line_buffering=True,
                                                   write_through=unbuffered)
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exit:  # the interpreter prints a message code, then exits with 1, as a fresh one does
        EXIT_STATUS[0] = exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 1
        raise
    except KeyboardInterrupt:  # Python ends itself with SIGINT then: its own exit, teardown included
        atexit.unregister(exit_without_teardown)
        raise
    except BaseException:
        EXIT_STATUS[0] = 1
        raise


if __name__ == "__main__":
    become(serve(listen(sys.argv[1])))
