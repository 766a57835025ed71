import atexit
import fcntl
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import pytest

# The suite runs more workers than cores (Makefile): torch running one thread per core in each of them spends most
# of its CPU waiting on the others' threads (a 40-step training: 49 CPU seconds against 16 with one thread). Set here,
# before torch loads, for every worker, fork server, script and job; llama.cpp's tools (llama-server, llama-debug)
# take theirs from LLAMA_ARG_THREADS.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("LLAMA_ARG_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "skills" / "hf-llm-trainer" / "scripts"
SAMPLE = ROOT / "data" / "sample"
CONFIGS = Path(__file__).resolve().parent / "configs"  # published configs, no weights
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import tiny_models  # noqa: E402
from fork_client import CPU_S as FORKED_CPU_S  # noqa: E402
from fork_client import ForkedProcess  # noqa: E402
from hub_server import TOKEN, LoopbackHub  # noqa: E402


def base_env(tmp_path: Path) -> dict:
    """An environment with no token and no network: the Hub is unreachable unless a test adds the loopback one."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "HUGGING"))}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"), TRACKIO_DIR=str(tmp_path / "trackio"),
               HF_HUB_DISABLE_TELEMETRY="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1",
               HFLT_STATE_DIR=str(tmp_path / "jobs_state"), TQDM_DISABLE="1")
    return env


@pytest.fixture
def env(tmp_path):
    return base_env(tmp_path)


def script_runner(env: Mapping):
    def run(name: str, *args, extra_env: dict | None = None, timeout: int = 600, cwd=None):
        result = run_python([str(SCRIPTS / name), *map(str, args)], {**env, **(extra_env or {})}, cwd, timeout)
        result.output = result.stdout + result.stderr
        return result

    return run


@pytest.fixture
def run_script(env):
    """Runs a bundled script the way the agent does (a subprocess with real flags), with the dev venv's Python."""
    return script_runner(env)


@pytest.fixture(scope="session")
def shared_env(tmp_path_factory) -> Mapping:
    """One environment, read-only, for the tests whose runs stop on bad input or write only into their own folders.
    Runs of a trainer in one environment are forked from one zygote that has imported transformers and TRL under it
    (tests/fork_server.py): 0.1 CPU seconds for a bad flag instead of 2."""
    return MappingProxyType(base_env(tmp_path_factory.mktemp("shared-env")))


@pytest.fixture
def run_script_shared(shared_env):
    """run_script in the shared environment."""
    return script_runner(shared_env)


FORK_SERVER: list[str] = []  # this worker's fork server socket, once started
FRESH_PYTHON = bool(os.environ.get("HFLT_TEST_FRESH_PYTHON"))  # a fresh interpreter for each run instead


def fork_server() -> str:
    """The socket of this worker's fork server (tests/fork_server.py), started on first use."""
    if not FORK_SERVER:
        path = str(Path(tempfile.mkdtemp(prefix="hflt-fork-")) / "socket")
        server = subprocess.Popen([sys.executable, str(Path(__file__).parent / "fork_server.py"), path],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        assert server.stdout.readline() == b"ready\n", "the fork server did not start"
        atexit.register(server.kill)
        FORK_SERVER.append(path)
    return FORK_SERVER[0]


def run_python(argv: list[str], env: dict, cwd=None, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python *argv` as subprocess.run(capture_output=True, text=True) runs it, forked from a Python that has
    imported torch already (see tests/fork_server.py)."""
    if FRESH_PYTHON:
        return subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env, timeout=timeout,
                              cwd=cwd)
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr, open(os.devnull) as stdin:
        process = ForkedProcess(fork_server(), argv, env, cwd, (stdin.fileno(), stdout.fileno(), stderr.fileno()))
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            raise

        def text(file) -> str:  # universal newlines, as text=True reads them
            file.seek(0)
            return file.read().decode(errors="replace").replace("\r\n", "\n").replace("\r", "\n")

        return subprocess.CompletedProcess(argv, process.returncode, text(stdout), text(stderr))


def start_python(argv: list[str], env: dict) -> ForkedProcess | subprocess.Popen:
    """`python *argv` started in a session of its own, as Popen(start_new_session=True) starts it, its output
    discarded; forked as run_python forks."""
    if FRESH_PYTHON:
        return subprocess.Popen([sys.executable, *argv], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    with open(os.devnull, "r+") as devnull:
        return ForkedProcess(fork_server(), argv, env, fds=(devnull.fileno(),) * 3, session=True)


def json_output(result) -> dict:
    assert result.returncode == 0, result.output[-4000:]
    return json.loads(result.stdout)


def plan(run_script, *args) -> dict:
    return json_output(run_script("plan.py", *args, "--json"))


def flag_value(training_args: list[str], flag: str) -> str | None:
    return training_args[training_args.index(flag) + 1] if flag in training_args else None


@pytest.fixture
def jobs(run_script, env):
    """jobs.py as the agent calls it; local jobs run with the dev venv's Python and poll quickly."""
    env["HFLT_LOCAL_PYTHON"] = sys.executable
    env["HFLT_POLL_S"] = "0.3"

    def call(*args, **kwargs):
        return run_script("jobs.py", *args, **kwargs)

    return call


def wait_for(predicate, timeout=300, every=0.3):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not reached in time")


def alive(pid: int) -> bool:
    """Running, not a zombie (the state field follows the command name, which may hold spaces and parentheses)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    return tiny_models.tiny_causal_lm()


@pytest.fixture(scope="session")
def tiny_vlm() -> Path:
    return tiny_models.tiny_vlm()


@pytest.fixture(scope="session")
def tiny_qwen3() -> Path:
    return tiny_models.tiny_qwen3()


@pytest.fixture(scope="session")
def chat_trained_llama(tiny_model, tmp_path_factory) -> tuple[Path, str]:
    """The tiny Llama trained by train_sft.py on the first 260 sample code chats (the rest are held out) until it ends
    its turns: (its output dir, what the run printed). Trained once per run of the suite by the first worker that
    asks; the others wait for it. Tests that write into a run copy it first."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the run's folder, above each worker's
    out, printed = shared / "chat-trained-llama", shared / "chat-trained-llama.stdout"
    with open(shared / "chat-trained-llama.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not printed.exists():
            result = run_python([str(SCRIPTS / "train_sft.py"), "--model_name_or_path", str(tiny_model),
                                 "--dataset_name", str(SAMPLE / "sft_code.jsonl"), "--output_dir", str(out),
                                 "--max_steps", "120", "--learning_rate", "3e-3", "--max_samples", "260",
                                 "--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "1",
                                 "--max_length", "192", "--logging_steps", "20", "--report_to", "none"],
                                base_env(shared / "chat-trained-llama-env"), timeout=1500)
            assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
            printed.write_text(result.stdout)
    return out, printed.read_text()


def loopback_hub(env: dict, run_jobs: bool):
    sys.path.insert(0, str(SCRIPTS))
    import plan

    server = LoopbackHub(plan.catalogue_as_api(), run_jobs=run_jobs,
                         fork_server=None if FRESH_PYTHON or not run_jobs else fork_server())
    env.pop("HF_HUB_OFFLINE", None)
    env.update(HF_ENDPOINT=server.endpoint, HF_TOKEN=TOKEN)
    yield server
    server.close()


@pytest.fixture
def hub(env):
    """The loopback Hub; the environment gets HF_ENDPOINT and a token, online. Created jobs stay as tests set them."""
    yield from loopback_hub(env, run_jobs=False)


@pytest.fixture
def hub_runner(env):
    """The loopback Hub whose Jobs API really runs submitted jobs on this machine (see tests/hub_server.py)."""
    yield from loopback_hub(env, run_jobs=True)


def pytest_collection_modifyitems(items):
    """Long tests first: with several workers, a long test started last would run on alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


def cpu_seconds() -> float:
    """CPU time of this process and of the processes it has waited for: what a test costs whatever the load."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime + FORKED_CPU_S[0]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    start = cpu_seconds()
    item.user_properties.append(("cpu_start", start))
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    start = dict(item.user_properties)["cpu_start"]
    item.user_properties[:] = [p for p in item.user_properties if p[0] != "cpu_s"] + [("cpu_s", cpu_seconds() - start)]
    yield


def pytest_terminal_summary(terminalreporter):
    """Wall time hides what a test costs on a loaded machine; CPU seconds (its subprocesses included) do not."""
    costs = {report.nodeid: dict(report.user_properties).get("cpu_s", 0.0)
             for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", [])
             + terminalreporter.stats.get("", []) if report.when == "teardown"}
    if not costs:
        return
    terminalreporter.write_sep("=", f"CPU seconds: {sum(costs.values()):.0f} in all, the 25 heaviest tests")
    for nodeid, cost in sorted(costs.items(), key=lambda item: -item[1])[:25]:
        terminalreporter.write_line(f"{cost:8.1f}s  {nodeid}")
    by_file: dict[str, list[float]] = {}
    for nodeid, cost in costs.items():
        by_file.setdefault(nodeid.split("::")[0], []).append(cost)
    terminalreporter.write_sep("-", "CPU seconds by file, the 15 heaviest")
    for path, file_costs in sorted(by_file.items(), key=lambda item: -sum(item[1]))[:15]:
        terminalreporter.write_line(f"{sum(file_costs):8.1f}s  {path} ({len(file_costs)} tests)")
