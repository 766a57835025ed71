"""The fork server that runs the scripts in tests (tests/fork_server.py) gives a script what a fresh `python script.py
args` gives it: the same argv, sys.path, environment, locale, working directory, exit code (an exit message too),
threads joined, atexit handlers, flushed streams and traceback; tqdm (imported with torch in the server) reads the
run's own TQDM_* settings. A run in a session of its own (a loopback job) is stopped with its process group."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
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


LIBRARY = '''
import os, sys, threading
SEEN = os.environ.get("PROBE")  # read once, when it is imported, as huggingface_hub reads HF_HOME
IMPORTED_BY = os.getpid()
{extra}
'''
LIBRARY_USER = '''"""Its first statements are imports: a zygote may make them for it."""
import json
import os
import sys

import probe_library

print(json.dumps({"seen": probe_library.SEEN, "argv": sys.argv[1:], "cwd": os.getcwd(),
                  "imported_here": probe_library.IMPORTED_BY == os.getpid()}))
'''


def test_a_script_run_again_in_one_environment_is_forked_from_a_zygote_that_imported_under_it(tmp_path):
    """From the second run of a script with one environment and folder on, runs start from a zygote: their opening
    imports were made once, under that environment; what a fresh run prints, they print. Another environment:
    another zygote."""
    (tmp_path / "probe_library.py").write_text(LIBRARY.format(extra=""))
    script = tmp_path / "user.py"
    script.write_text(LIBRARY_USER)
    for value in ("first", "second"):
        env = {"PATH": "/usr/bin:/bin", "PROBE": value}
        fresh = subprocess.run([sys.executable, str(script), "a"], capture_output=True, text=True, env=env,
                               cwd=tmp_path, timeout=60)
        runs = [run_python([str(script), str(n)], env, cwd=tmp_path, timeout=60) for n in range(4)]
        printed = [json.loads(run.stdout) for run in runs]
        assert [p["imported_here"] for p in printed] == [True, False, False, False], "from the second run on: a zygote"
        for n, (run, line) in enumerate(zip(runs, printed)):
            assert run.returncode == 0 and run.stderr == ""
            assert line | {"imported_here": True, "argv": ["a"]} == json.loads(fresh.stdout)
            assert line["seen"] == value and line["argv"] == [str(n)]


@pytest.mark.parametrize("extra", ['print("imported")', 'threading.Thread(target=input, daemon=True).start()',
                                   'FLAGS = sys.argv[1:]'])
def test_imports_that_print_start_a_thread_or_read_argv_get_no_zygote(extra, tmp_path):
    (tmp_path / "probe_library.py").write_text(LIBRARY.format(extra=extra))
    script = tmp_path / "user.py"
    script.write_text(LIBRARY_USER)
    env = {"PATH": "/usr/bin:/bin", "PROBE": "x"}
    for n in range(4):
        run = run_python([str(script), str(n)], env, cwd=tmp_path, timeout=60)
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout.splitlines()[-1])["imported_here"], f"run {n} came from a zygote"
        assert run.stdout.startswith("imported\n") == ("print" in extra)


def test_the_least_recently_used_zygote_retires(tmp_path):
    """Six zygotes at most: making a seventh retires the oldest, which ends once its runs have ended."""
    (tmp_path / "probe_library.py").write_text(LIBRARY.format(extra=""))
    script = tmp_path / "user.py"
    script.write_text(LIBRARY_USER.replace('"imported_here"', '"parent": os.getppid(), "imported_here"'))

    def run(value: str) -> dict:
        return json.loads(run_python([str(script)], {"PATH": "/usr/bin:/bin", "PROBE": value}, cwd=tmp_path).stdout)

    zygotes = []
    for n in range(7):
        assert run(str(n))["imported_here"]
        second = run(str(n))
        assert not second["imported_here"] and second["seen"] == str(n)
        zygotes.append(second["parent"])
    assert len(set(zygotes)) == 7
    for _ in range(50):
        if not alive(zygotes[0]):
            break
        time.sleep(0.1)
    assert not alive(zygotes[0]) and all(alive(pid) for pid in zygotes[1:])
