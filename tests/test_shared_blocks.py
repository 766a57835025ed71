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


def top_level_names(source: str) -> list[str]:
    return [node.name for node in ast.parse(source).body
            if isinstance(node, (ast.FunctionDef, ast.ClassDef))]


def test_copies_match_their_source():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "sync_shared.py"), "--check"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr


def test_a_hand_edit_inside_a_copy_is_refused_not_overwritten():
    text = (SCRIPTS / "train_sft.py").read_text()
    edited = text.replace("def utcnow() -> str:", "def utcnow() -> str:  # edited by hand", 1)
    assert edited != text
    with pytest.raises(sync_shared.SyncError, match="'run_record' was edited by hand"):
        sync_shared.synced(edited, "train_sft.py")


def test_a_drifted_copy_is_refreshed_from_its_source(tmp_path, monkeypatch):
    """The source changed after the last sync: the copy (untouched by hand) is rewritten, and --check would fail."""
    sources = tmp_path / "shared"
    sources.mkdir()
    for source in (ROOT / "tools" / "shared").glob("*.py"):
        (sources / source.name).write_text(source.read_text())
    errors = sources / "errors.py"
    errors.write_text(errors.read_text() + "\n\ndef added_later():\n    return 1\n")
    monkeypatch.setattr(sync_shared, "SOURCES", sources)
    text = (SCRIPTS / "jobs.py").read_text()
    refreshed = sync_shared.synced(text, "jobs.py")
    assert refreshed != text and "def added_later():" in refreshed
    assert sync_shared.synced(refreshed, "jobs.py") == refreshed


def test_a_late_import_in_a_source_fails_loudly(tmp_path, monkeypatch):
    """The copy starts after the leading imports: an import below the code would silently vanish from the copies."""
    sources = tmp_path / "shared"
    sources.mkdir()
    (sources / "errors.py").write_text('"""Doc."""\n\nimport re\n\n\ndef early():\n    return re\n\n\n'
                                       'import json  # late\n\n\ndef late():\n    return json\n')
    monkeypatch.setattr(sync_shared, "SOURCES", sources)
    with pytest.raises(sync_shared.SyncError, match="errors.py:10: an import below the code"):
        sync_shared.synced((SCRIPTS / "jobs.py").read_text(), "jobs.py")


@pytest.mark.parametrize("script", sorted(p.name for p in SCRIPTS.glob("*.py")))
def test_a_script_opens_on_its_own_code(script):
    """Docstring, imports, the script's own code and main; the copied blocks after it, each opening with its
    source's docstring as a comment."""
    text = (SCRIPTS / script).read_text()
    lines = text.splitlines()
    main = next(i for i, line in enumerate(lines) if line.startswith("def main("))
    markers = [i for i, line in enumerate(lines) if line.startswith("# ---- shared block: ")]
    assert all(i > main for i in markers), f"{script}: a shared block comes before main"
    for match in sync_shared.BLOCK.finditer(text):
        doc = ast.get_docstring(ast.parse((ROOT / "tools" / "shared" / f"{match['name']}.py").read_text()))
        assert match["body"].lstrip("\n").startswith(f"# {doc.splitlines()[0]}"), match["name"]


def test_headers_pin_the_tested_stack_from_the_dev_lock():
    lock = (ROOT / "requirements-dev.lock").read_text()
    for script in sorted(SCRIPTS.glob("*.py")):
        pins = re.search(r"^# constraint-dependencies = \[\n(.*?)^# \]", script.read_text(), flags=re.S | re.M)
        assert pins, f"{script.name} does not pin the tested stack"
        for line in pins[1].splitlines():
            name, version = line.strip('#", ').split("==")
            assert re.search(rf"^{name.replace('-', '[-_]')}=={re.escape(version)}(\+\w+)?$", lock, flags=re.M | re.I), line


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


@pytest.mark.parametrize("script", sorted(p.name for p in SCRIPTS.glob("*.py")))
def test_main_reads_in_one_sitting(script):
    """main is the outline of the script (parse, decide, compute, render, write), its work done by named functions."""
    tree = ast.parse((SCRIPTS / script).read_text())
    main = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "main")
    assert main.end_lineno - main.lineno < 60


@pytest.mark.parametrize("script", sorted(p.name for p in SCRIPTS.glob("*.py")))
def test_a_wrong_flag_is_one_sentence_and_exit_2(script, run_script_shared):
    result = run_script_shared(script, "--no_such_flag", "1")
    assert result.returncode == 2 and "Traceback" not in result.output, result.output[-2000:]
    assert len(result.stderr.strip().splitlines()) == 1 and "--help" in result.stderr, result.stderr
