import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "skills" / "hf-llm-trainer" / "scripts"
SAMPLE = ROOT / "data" / "sample"
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
