import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "skills" / "hf-llm-trainer" / "scripts"
SAMPLE = ROOT / "data" / "sample"
CONFIGS = Path(__file__).resolve().parent / "configs"  # published configs, no weights
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import tiny_models  # noqa: E402
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


@pytest.fixture
def run_script(env):
    """Runs a bundled script the way the agent does (a subprocess with real flags), with the dev venv's Python."""

    def run(name: str, *args, extra_env: dict | None = None, timeout: int = 600, cwd=None):
        result = subprocess.run([sys.executable, str(SCRIPTS / name), *map(str, args)], capture_output=True,
                                text=True, env={**env, **(extra_env or {})}, timeout=timeout, cwd=cwd)
        result.output = result.stdout + result.stderr
        return result

    return run


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


def loopback_hub(env: dict, run_jobs: bool):
    sys.path.insert(0, str(SCRIPTS))
    import plan

    server = LoopbackHub(plan.catalogue_as_api(), run_jobs=run_jobs)
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
