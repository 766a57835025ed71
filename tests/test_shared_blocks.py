"""Code several scripts share has one source, tools/shared/<block>.py, copied into each script by
tools/sync_shared.py. These tests fail when a copy drifts, when shared logic is written again outside a block, or
when a copied block uses a name its script does not import."""

import ast
import re
import subprocess
import sys

import pytest
from conftest import ROOT, SCRIPTS

sys.path.insert(0, str(ROOT / "tools"))
import sync_shared  # noqa: E402

TRAINERS = ["train_sft.py", "train_dpo.py", "train_grpo.py"]


def top_level_names(source: str) -> list[str]:
    return [node.name for node in ast.parse(source).body
            if isinstance(node, (ast.FunctionDef, ast.ClassDef))]


def test_copies_match_their_source():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "sync_shared.py"), "--check"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr


def test_check_catches_a_drifted_copy(tmp_path, monkeypatch):
    script = tmp_path / "script.py"
    text = (SCRIPTS / "train_sft.py").read_text()
    script.write_text(text.replace("def utcnow() -> str:", "def utcnow() -> str:  # edited by hand", 1))
    assert sync_shared.synced(script.read_text()) == text


@pytest.mark.parametrize("script", sorted(p.name for p in SCRIPTS.glob("*.py")))
def test_shared_definitions_live_only_in_blocks(script):
    shared = {name for source in (ROOT / "tools" / "shared").glob("*.py") for name in top_level_names(source.read_text())}
    text = (SCRIPTS / script).read_text()
    outside = sync_shared.BLOCK.sub("", text)
    redefined = shared & set(top_level_names(outside))
    assert not redefined, f"{script} defines {sorted(redefined)} again outside the shared blocks"


def test_scripts_import_what_their_blocks_use():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "F821,F401,F811", str(SCRIPTS)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("script", TRAINERS)
def test_trainer_main_reads_in_one_sitting(script):
    tree = ast.parse((SCRIPTS / script).read_text())
    main = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "main")
    assert main.end_lineno - main.lineno < 80


def test_trainer_code_stays_under_1100_lines():
    """The code a person maintains for the trainers: each trainer's own lines (outside the copied blocks, with the
    blank lines a removed block leaves counted as the two PEP 8 puts between definitions) and the blocks only the
    trainers use. Blocks the validator, plan.py, eval and GGUF scripts share are counted where they live, not here."""
    users = {}
    for script in SCRIPTS.glob("*.py"):
        for name in sync_shared.blocks_in(script.read_text()):
            users.setdefault(name, set()).add(script.name)
    trainer_only = [name for name, scripts in users.items() if scripts <= set(TRAINERS)]
    assert "trainer" in trainer_only
    own = sum(len(re.sub(r"\n{4,}", "\n\n\n", sync_shared.BLOCK.sub("", (SCRIPTS / script).read_text())).splitlines())
              for script in TRAINERS)
    shared = sum(len((ROOT / "tools" / "shared" / f"{name}.py").read_text().splitlines()) for name in trainer_only)
    assert own + shared < 1100, f"trainers {own} + their blocks {sorted(trainer_only)} {shared} lines"


@pytest.mark.parametrize("script", sorted(p.name for p in SCRIPTS.glob("*.py")))
def test_a_wrong_flag_is_one_sentence_and_exit_2(script, run_script):
    result = run_script(script, "--no_such_flag", "1")
    assert result.returncode == 2 and "Traceback" not in result.output, result.output[-2000:]
    assert len(result.stderr.strip().splitlines()) == 1 and "--help" in result.stderr, result.stderr
