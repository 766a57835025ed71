"""Copies the code several scripts share from its one source, the package tools/shared/, into each script, and
pins the tested ML stack in every script's header.

The bundled scripts are standalone PEP 723 files (they run from a URL and inline in a Job, importing nothing from
siblings), so what they share is copied into them, at the end of the file (a script opens on its own code), between
two marker lines:

    # ---- shared block: <block> (tools/shared/<block>.py; edit it there, then `make shared`) sha256:<hash> ----
    # <the source module's docstring, as a comment>
    ...
    # ---- end of shared block: <block> ----

A script opts into a block by carrying its markers. The copy is the source module without its docstring (kept as a
comment) and its leading imports: the script imports what the block uses (ruff's undefined-name check catches a
missing one). A source with an import below its code is refused (the copy would lose it). The hash is that of what
the sync last wrote: a copy edited by hand is refused, never overwritten (move the edit to the source first).

Every header carries `[tool.uv] constraint-dependencies` pinning the packages of the tested stack to the versions in
requirements-dev.lock, direct or not (peft brings accelerate), so a job resolves what the suite tested whatever the
package index gains.

`--check` exits 1 when a copy or a header differs from what the sync would write.
"""

import argparse
import ast
import hashlib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "tools" / "shared"
SCRIPTS = ROOT / "skills" / "hf-llm-trainer" / "scripts"
LOCK = ROOT / "requirements-dev.lock"
# What the scripts' behaviour rests on: a job must run the versions the suite ran.
STACK = ("accelerate", "datasets", "huggingface-hub", "lighteval", "peft", "pyarrow", "torch", "trackio",
         "transformers", "trl")
BLOCK = re.compile(r"^# ---- shared block: (?P<name>\w+) \(.*?\)(?: sha256:(?P<hash>[0-9a-f]+))? ----\n"
                   r"(?P<body>.*?)^# ---- end of shared block: (?P=name) ----\n", flags=re.S | re.M)
CONSTRAINTS = re.compile(r"^# constraint-dependencies = \[\n(?:#     .*\n)*# \]\n", flags=re.M)
MAIN_GUARD = re.compile(r"^if __name__ == \"__main__\":", flags=re.M)


class SyncError(Exception):
    pass


def block_body(name: str) -> str:
    """The source module as a script carries it: its docstring as a comment, then everything after its imports."""
    path = SOURCES / f"{name}.py"
    source = path.read_text()
    body = ast.parse(source).body
    docstring = ast.get_docstring(ast.parse(source)) or ""
    start = 1 if docstring else 0
    while start < len(body) and isinstance(body[start], (ast.Import, ast.ImportFrom)):
        start += 1
    late = [node.lineno for node in body[start:] if isinstance(node, (ast.Import, ast.ImportFrom))]
    if late:
        raise SyncError(f"tools/shared/{path.name}:{late[0]}: an import below the code would be lost in the copies; "
                        "move it to the top of the module.")
    first_line = body[start - 1].end_lineno if start else 0
    code = "\n".join(source.splitlines()[first_line:]).strip("\n")
    comment = "\n".join(f"# {line}".rstrip() for line in docstring.splitlines())
    return (f"{comment}\n\n" if comment else "") + f"{code}\n"


def digest(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def block(name: str) -> str:
    body = block_body(name)
    return (f"# ---- shared block: {name} (tools/shared/{name}.py; edit it there, then `make shared`) "
            f"sha256:{digest(body)} ----\n\n{body}\n# ---- end of shared block: {name} ----\n")


def blocks_in(text: str) -> list[str]:
    return [match["name"] for match in BLOCK.finditer(text)]


def stack_constraints() -> str:
    pins = dict(line.split("==", 1) for line in LOCK.read_text().splitlines() if "==" in line)
    versions = {name.lower().replace("_", "-"): version.split("+")[0].strip() for name, version in pins.items()}
    lines = "".join(f'#     "{name}=={versions[name]}",\n' for name in STACK)
    return f"# constraint-dependencies = [\n{lines}# ]\n"


def synced(text: str, script: str = "script") -> str:
    """The script with its header's stack pinned and its blocks, freshly copied, gathered before the main guard."""
    for match in BLOCK.finditer(text):
        if match["hash"] and digest(match["body"].strip("\n") + "\n") != match["hash"]:
            raise SyncError(f"{script}: the copy of block '{match['name']}' was edited by hand; move the edit to "
                            f"tools/shared/{match['name']}.py (or undo it), then run `make shared`.")
    names = blocks_in(text)
    if CONSTRAINTS.search(text):
        text = CONSTRAINTS.sub(lambda _: stack_constraints(), text, count=1)
    else:
        text = re.sub(r"^(# exclude-newer = .*\n)", lambda m: m[1] + stack_constraints(), text, count=1, flags=re.M)
    if not names:
        return text
    own = re.sub(r"\n{3,}", "\n\n\n", BLOCK.sub("", text))
    guard = MAIN_GUARD.search(own)
    if not guard:
        raise SyncError(f"{script} has shared blocks but no `if __name__ == \"__main__\":` to put them before.")
    blocks = "\n\n".join(block(name) for name in names)
    return f"{own[:guard.start()].rstrip()}\n\n\n{blocks}\n\n{own[guard.start():]}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if a copy or a header is not what the sync writes")
    args = parser.parse_args()
    stale = []
    try:
        for script in sorted(SCRIPTS.glob("*.py")):
            text = script.read_text()
            new = synced(text, script.name)
            if new == text:
                continue
            stale.append(script.name)
            if not args.check:
                script.write_text(new)
                print(f"refreshed {script.relative_to(ROOT)}: {', '.join(blocks_in(new)) or 'header'}")
    except SyncError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    if args.check and stale:
        print(f"Shared blocks or headers are out of date in {', '.join(stale)}: run `make shared`.", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
