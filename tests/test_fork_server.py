"""The fork server that runs the scripts in tests (tests/fork_server.py) gives a script what a fresh `python script.py
args` gives it: the same argv, sys.path, environment, locale, working directory, exit code (an exit message too),
threads joined, atexit handlers, flushed streams and traceback; tqdm (imported with torch in the server) reads the
run's own TQDM_* settings. A run in a session of its own (a loopback job) is stopped with its process group."""

import os
import signal
import subprocess
import sys
import time

from conftest import alive, fork_server, run_python
from fork_client import ForkedProcess

PROBE = '''
import atexit, codecs, json, locale, os, sys, threading, time
import tqdm.auto

locale.setlocale(locale.LC_ALL, "")  # as some libraries do: in the C locale, the interpreter made it C.UTF-8
print("caf\u00e9", codecs.lookup(locale.getpreferredencoding()).name, os.environ.get("LC_CTYPE"))

atexit.register(lambda: print("atexit ran", flush=True))
threading.Thread(target=lambda: (time.sleep(0.5), print("thread joined"))).start()  # not flushed: exit flushes it
print(json.dumps({"argv": sys.argv, "path0": sys.path[0], "cwd": os.getcwd(), "marker": os.environ.get("PROBE"),
                  "leaked": os.environ.get("PROBE_PARENT_ONLY"), "main": __name__, "file": __file__,
                  "tqdm_disabled": tqdm.auto.tqdm(range(1)).disable}))
print("to stderr", file=sys.stderr)
if sys.argv[1] == "raise":
    raise ValueError("boom")
sys.exit(int(sys.argv[1]) if sys.argv[1].isdigit() else sys.argv[1])
'''


def test_a_forked_run_is_a_fresh_python_run(tmp_path, monkeypatch):
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("PROBE_PARENT_ONLY", "1")
    env = {"PATH": "/usr/bin:/bin", "PROBE": "yes", "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1"}
    for outcome in ("0", "3", "raise", "a message"):
        forked = run_python([str(script), outcome], env, cwd=work, timeout=60)
        fresh = subprocess.run([sys.executable, str(script), outcome], capture_output=True, text=True, env=env,
                               cwd=work, timeout=60)
        assert (forked.returncode, forked.stdout) == (fresh.returncode, fresh.stdout), (forked, fresh)
        assert forked.stderr.splitlines()[0] == fresh.stderr.splitlines()[0] == "to stderr"
        assert forked.stderr.splitlines()[-1] == fresh.stderr.splitlines()[-1]
        if outcome == "raise":
            assert fresh.returncode == 1 and fresh.stderr.splitlines()[-1] == "ValueError: boom"
    assert fresh.returncode == 1 and fresh.stderr.splitlines()[-1] == "a message"
    assert '"marker": "yes", "leaked": null' in fresh.stdout and '"tqdm_disabled": true' in fresh.stdout
    assert fresh.stdout.endswith("thread joined\natexit ran\n")


def test_a_run_past_its_timeout_is_killed(tmp_path):
    script = tmp_path / "sleeper.py"
    script.write_text("import time\ntime.sleep(60)\n")
    try:
        run_python([str(script)], {"PATH": "/usr/bin:/bin"}, timeout=1)
    except subprocess.TimeoutExpired as expired:
        assert expired.timeout == 1
    else:
        raise AssertionError("a run past its timeout must raise TimeoutExpired, as subprocess.run does")


def test_a_run_in_a_session_of_its_own_is_stopped_with_its_process_group(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text("import subprocess, sys, time\n"
                      "child = subprocess.Popen(['sleep', '600'])\n"
                      "print(child.pid, flush=True)\n"
                      "time.sleep(600)\n")
    output, output_write = os.pipe()
    with open(os.devnull) as stdin:
        process = ForkedProcess(fork_server(), [str(script)], {"PATH": "/usr/bin:/bin"}, tmp_path,
                                (stdin.fileno(), output_write, output_write), session=True)
    os.close(output_write)
    assert os.getsid(process.pid) == os.getpgid(process.pid) == process.pid, "it leads its own session"
    with open(output) as printed:
        child = int(printed.readline())
        assert process.poll() is None and alive(child)
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(timeout=30) == -signal.SIGTERM
    for _ in range(100):
        if not alive(child):
            break
        time.sleep(0.1)
    assert not alive(child), "the group's other process got the signal too"
