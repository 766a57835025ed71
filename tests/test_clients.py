"""The manifests, checked by the real agent clients (npm) and the Agent Skills reference validator (PyPI)."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT

CLIENTS = Path(os.environ.get("HFLT_CLIENTS", ""))
VENV_BIN = Path(os.sys.executable).parent


def client(name: str) -> str:
    path = CLIENTS / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run the tests through `make test`, which installs the agent clients")
    return str(path)


@pytest.fixture
def home(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / ".config"), "CI": "true",
           "DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
    return env


def run(command, env, cwd=ROOT):
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    result.output = result.stdout + result.stderr
    return result


def test_claude_plugin_validate_has_no_errors_or_warnings(home):
    result = run([client("claude"), "plugin", "validate", "."], home)
    assert result.returncode == 0, result.output
    assert "✔ Validation passed" in result.output and "with warnings" not in result.output, result.output
    assert "warning" not in result.output.lower() and "✘" not in result.output, result.output


def test_claude_marketplace_install_enables_the_plugin(home, tmp_path):
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT, checkout, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "demo_outputs"))
    assert run([client("claude"), "plugin", "marketplace", "add", str(checkout)], home).returncode == 0
    install = run([client("claude"), "plugin", "install", "hf-llm-trainer@huggingface-skills"], home)
    assert install.returncode == 0, install.output
    listing = run([client("claude"), "plugin", "list"], home)
    assert re.search(r"hf-llm-trainer@huggingface-skills.*?Status: ✔ enabled", listing.output, re.S), listing.output


def test_skill_token_budget(home, tmp_path):
    """What the agent pays: ~200 tokens always on, at most ~4k when the skill fires."""
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT, checkout, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "demo_outputs"))
    run([client("claude"), "plugin", "marketplace", "add", str(checkout)], home)
    run([client("claude"), "plugin", "install", "hf-llm-trainer@huggingface-skills"], home)
    details = run([client("claude"), "plugin", "details", "hf-llm-trainer@huggingface-skills"], home)
    row = re.search(r"^\s*hf-llm-trainer\s+~([\d.]+k?)\s+~([\d.]+k?)", details.output, re.M)
    assert row, details.output
    always_on, on_invoke = (float(v.rstrip("k")) * (1000 if v.endswith("k") else 1) for v in row.groups())
    assert always_on <= 220, details.output
    assert on_invoke <= 4000, details.output


def test_gemini_extension_validates(home):
    result = run([client("gemini"), "extensions", "validate", "."], home)
    assert result.returncode == 0 and "successfully validated" in result.output, result.output


def test_agent_skills_reference_validator(home):
    # PyPI's skills-ref installs its CLI as `agentskills`
    result = run([str(VENV_BIN / "agentskills"), "validate", "skills/hf-llm-trainer"], home)
    assert result.returncode == 0 and "Valid skill" in result.output, result.output
