"""Every command in SKILL.md, references/ and README names a real script and only flags that script accepts."""

import os
import re
import shlex
from functools import cache
from pathlib import Path

import pytest
from conftest import ROOT, SCRIPTS, run_python

DOCS = [ROOT / "README.md", ROOT / "skills/hf-llm-trainer/SKILL.md",
        *sorted((ROOT / "skills/hf-llm-trainer/references").glob("*.md"))]


def commands():
    found = []
    for doc in DOCS:
        for block in re.findall(r"```bash\n(.*?)```", doc.read_text(), flags=re.S):
            for line in block.splitlines():
                if "scripts/" in line and "uv run" in line:
                    found.append((doc.name, line.split("#")[0].strip()))
    return found


@cache
def accepted_flags(script: str, subcommand: str | None = None) -> set[str]:
    args = [str(SCRIPTS / script)] + ([subcommand] if subcommand else []) + ["--help"]
    text = run_python(args, dict(os.environ), timeout=120).stdout
    return set(re.findall(r"(--[A-Za-z0-9_-]+)", text))


def test_the_docs_have_commands_for_every_script():
    used = {re.search(r"scripts/(\w+\.py)", line).group(1) for _, line in commands()}
    assert used == {p.name for p in SCRIPTS.glob("*.py")}, used


@pytest.mark.parametrize("doc,line", commands())
def test_command_uses_real_scripts_and_flags(doc, line):
    tokens = shlex.split(line.replace("<", "").replace(">", ""))
    tokens = [t for t in tokens if t not in ("|",)]
    start = tokens.index("run") + 1
    script = Path(tokens[start]).name
    assert (SCRIPTS / script).exists(), f"{doc}: {script} does not exist"
    rest = tokens[start + 1:]
    subcommand = rest[0] if script == "jobs.py" and rest and not rest[0].startswith("-") else None
    if "--" in rest:  # jobs.py submit -- <script> <args>: check both sides
        split = rest.index("--")
        inner = Path(rest[split + 1]).name
        assert (SCRIPTS / inner).exists(), f"{doc}: {inner} does not exist"
        bad = [t for t in rest[split + 2:] if t.startswith("--") and t not in accepted_flags(inner)]
        assert not bad, f"{doc}: {inner} does not accept {bad}"
        rest = rest[:split]
    flags = [t.split("=")[0] for t in rest if t.startswith("--")]
    bad = [f for f in flags if f not in accepted_flags(script, subcommand)]
    assert not bad, f"{doc}: {script} {subcommand or ''} does not accept {bad}"


def test_every_flag_of_our_parsers_has_help():
    """`--help` documents every flag (the trainers' TRL flags come with TRL's own help)."""
    import ast

    missing = [f"{path.name}:{node.lineno} {ast.unparse(node.args[0]) if node.args else ''}"
               for path in sorted(SCRIPTS.glob("*.py")) for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument"
               and not any(keyword.arg == "help" for keyword in node.keywords)]
    assert not missing, missing
