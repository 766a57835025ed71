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
here, so each run imports those afresh under its own environment; tqdm, which torch imports and which reads its
TQDM_* settings then, is dropped from the fork's modules before the script runs.

Protocol, over a Unix socket: the client sends one JSON line {"argv", "env", "cwd", "session"} with its stdin,
stdout and stderr descriptors attached; the server answers {"pid"} at once (with "session", once the run leads a
session of its own, as Popen(start_new_session=True) starts a process) and, when the run ends, {"status"} (as
os.waitstatus_to_exitcode gives it) with the CPU seconds the run used. tests/fork_client.py is the client.
"""

import atexit
import os
import sys

SERVER_PID = os.getpid()
EXIT_STATUS = [0]


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

import io  # noqa: E402
import json  # noqa: E402
import locale  # noqa: E402
import runpy  # noqa: E402
import selectors  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402

import pandas  # noqa: E402, F401
import pyarrow  # noqa: E402, F401
import scipy.optimize  # noqa: E402, F401  (transformers' losses import it)
import sympy  # noqa: E402, F401
import torch  # noqa: E402, F401
import torch._dynamo  # noqa: E402, F401
import torch.distributed.checkpoint  # noqa: E402, F401
import torch.distributed.tensor  # noqa: E402, F401


def serve(path: str) -> dict:
    """Answers requests until it is killed; in each forked child, returns that child's request."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    wakeup_read, wakeup_write = socket.socketpair()
    wakeup_write.setblocking(False)
    signal.set_wakeup_fd(wakeup_write.fileno())
    signal.signal(signal.SIGCHLD, lambda *_: None)  # the wakeup fd is what matters
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(wakeup_read, selectors.EVENT_READ)
    print("ready", flush=True)
    waiting: dict[int, socket.socket] = {}
    while True:
        for key, _ in selector.select():
            if key.fileobj is wakeup_read:
                wakeup_read.recv(4096)
                report_ended(waiting)
                continue
            connection, _ = listener.accept()
            message, fds, _, _ = socket.recv_fds(connection, 1 << 16, 3)
            while not message.endswith(b"\n"):  # a long request arrives in several reads
                message += connection.recv(1 << 16)
            request = json.loads(message)
            started_read, started_write = os.pipe()
            pid = os.fork()
            if pid == 0:
                if request.get("session"):
                    os.setsid()
                os.close(started_read)
                os.close(started_write)  # the server may answer now: this run's process group exists
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                for sock in (listener, wakeup_read, wakeup_write, connection, *waiting.values()):
                    sock.close()
                selector.close()
                return request | {"fds": fds}
            os.close(started_write)
            os.read(started_read, 1)  # returns once the child has closed its end
            os.close(started_read)
            for fd in fds:
                os.close(fd)
            connection.sendall(json.dumps({"pid": pid}).encode() + b"\n")
            waiting[pid] = connection
        report_ended(waiting)


def report_ended(waiting: dict):
    for pid in list(waiting):
        ended, status, usage = os.wait4(pid, os.WNOHANG)
        if ended:
            connection = waiting.pop(pid)
            answer = {"status": os.waitstatus_to_exitcode(status), "cpu_s": usage.ru_utime + usage.ru_stime}
            try:
                connection.sendall(json.dumps(answer).encode() + b"\n")
            except OSError:  # the client gave up waiting (its timeout) and closed
                pass
            connection.close()


def become(request: dict):
    """Turns this forked child into `python script.py args` as run with the request's environment and streams."""
    for target, fd in enumerate(request["fds"]):
        os.dup2(fd, target)
        os.close(fd)
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
    for name in [name for name in sys.modules if name == "tqdm" or name.startswith("tqdm.")]:
        del sys.modules[name]
    script = os.path.abspath(request["argv"][0])
    extra = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [os.path.dirname(script), *extra, *sys.path[1:]]
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
    become(serve(sys.argv[1]))
