"""Copies the code several scripts share from its one source, tools/shared/<block>.py, into each script.

The bundled scripts are standalone PEP 723 files (they run from a URL and inline in a Job, importing nothing from
siblings), so what they share is copied into them between two marker lines:

    # ---- shared block: <block> (tools/shared/<block>.py; `make shared` copies it here, edit it there) ----
    ...
    # ---- end of shared block: <block> ----

A script opts into a block by carrying its markers. The copy is the source module without its docstring and
imports: the script imports what the block uses (ruff's undefined-name check catches a missing one).
`--check` exits 1 when a copy differs from its source.
"""

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "tools" / "shared"
SCRIPTS = ROOT / "skills" / "hf-llm-trainer" / "scripts"
BLOCK = re.compile(r"^# ---- shared block: (?P<name>\w+) .*?----\n(?P<body>.*?)^# ---- end of shared block: (?P=name) ----$",
                   flags=re.S | re.M)


def block_body(name: str) -> str:
    source = (SOURCES / f"{name}.py").read_text()
    tree = ast.parse(source)
    header = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
              or (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
    first_line = max((node.end_lineno for node in header), default=0)
    return "\n".join(source.splitlines()[first_line:]).strip("\n") + "\n"


def header(name: str) -> str:
    return f"# ---- shared block: {name} (tools/shared/{name}.py; `make shared` copies it here, edit it there) ----\n"


def synced(text: str) -> str:
    return BLOCK.sub(lambda m: f"{header(m['name'])}\n{block_body(m['name'])}\n"
                               f"# ---- end of shared block: {m['name']} ----", text)


def blocks_in(text: str) -> list[str]:
    return [match["name"] for match in BLOCK.finditer(text)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if a script's copy differs from its source")
    args = parser.parse_args()
    stale = []
    for script in sorted(SCRIPTS.glob("*.py")):
        text = script.read_text()
        new = synced(text)
        if new == text:
            continue
        stale.append(script.name)
        if not args.check:
            script.write_text(new)
            print(f"refreshed {script.relative_to(ROOT)}: {', '.join(blocks_in(new))}")
    if args.check and stale:
        print(f"Shared blocks are out of date in {', '.join(stale)}: run `make shared`.", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
