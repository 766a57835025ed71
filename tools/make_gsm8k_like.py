"""Writes a small dataset repo shaped like openai/gsm8k, for the loopback Hub (tests, demos).

What the real one has, kept: two configurations declared in the README's `configs:` YAML, `main` and `socratic`, and
no default one; parquet shards in a folder per configuration (`main/train-00000-of-00001.parquet`,
`main/test-00000-of-00001.parquet`); a `question` and an `answer` whose reasoning carries calculator annotations
(`<<3*4=12>>`) and ends in `#### <number>`, with thousands separators in some answers (`#### 1,200`); socratic answers
interleave sub-questions. What is not: its size (a few rows a split), made deterministically in a fraction of a
second.

    python tools/make_gsm8k_like.py OUT_DIR    # then: tests/hub_server.py --seed-dataset openai/gsm8k=OUT_DIR
"""

import io
import sys
from pathlib import Path

NAME = "openai/gsm8k"
CONFIGS = ("main", "socratic")
SPLITS = {"train": 8, "test": 6}
PEOPLE = ("Janet", "Tom", "Maria", "Ahmed", "Lena", "Ravi", "Sofia", "Ken")
ITEMS = ("apples", "marbles", "stickers", "books", "eggs", "pencils", "cards", "shells")


def numbers(split: str, index: int) -> tuple[int, int, int]:
    """(boxes, per box, given away) of row `index`; a few test rows have answers in the thousands."""
    seed = index + (0 if split == "train" else 100)
    boxes, per_box = 3 + seed % 5, 4 + (seed * 7) % 9
    if split == "test" and index % 3 == 2:
        per_box *= 100
    return boxes, per_box, 1 + seed % 3


def answer(split: str, index: int) -> int:
    """The row's gold answer: what is left after giving some away."""
    boxes, per_box, given = numbers(split, index)
    return boxes * per_box - given


def row(config: str, split: str, index: int) -> dict:
    boxes, per_box, given = numbers(split, index)
    person, item = PEOPLE[index % len(PEOPLE)], ITEMS[(index * 3) % len(ITEMS)]
    total = boxes * per_box
    question = (f"{person} has {boxes} boxes with {per_box} {item} in each box. {person} gives {given} {item} to a "
                f"friend. How many {item} does {person} have left?")
    steps = [(f"How many {item} are in the boxes?", f"{person} has {boxes}*{per_box}=<<{boxes}*{per_box}={total}>>"
              f"{total} {item} in the boxes."),
             (f"How many {item} are left?", f"After giving {given} away, {person} has {total}-{given}=<<{total}-{given}="
              f"{total - given}>>{total - given} {item} left.")]
    lines = [f"{sub} ** {text}" if config == "socratic" else text for sub, text in steps]
    return {"question": question, "answer": "\n".join(lines) + f"\n#### {answer(split, index):,}"}


def readme(sizes: dict[tuple[str, str], int], configs: tuple[str, ...] = CONFIGS) -> str:
    """The card's YAML as the Hub writes it for a parquet dataset: `configs:` (no `default: true` anywhere) and
    `dataset_info:` with each configuration's split sizes."""
    declared = "".join(f"- config_name: {name}\n  data_files:\n" + "".join(
        f"  - split: {split}\n    path: {name}/{split}-*\n" for split in SPLITS) for name in configs)
    infos = "".join(f"- config_name: {name}\n  splits:\n" + "".join(
        f"  - name: {split}\n    num_bytes: {sizes[name, split]}\n    num_examples: {rows}\n"
        for split, rows in SPLITS.items()) for name in configs)
    return (f"---\nlicense: mit\nlanguage:\n- en\nconfigs:\n{declared}dataset_info:\n{infos}---\n\n"
            f"# A gsm8k-shaped dataset\n\nMade by tools/make_gsm8k_like.py for tests; shaped like {NAME}: no default "
            "configuration, pick one with `--dataset_config`.\n")


def files(configs: tuple[str, ...] = CONFIGS) -> dict[str, bytes]:
    """Repo path -> content: README.md and every configuration's parquet shards, one per split (configurations
    other than gsm8k's own hold main's rows)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out, sizes = {}, {}
    for name in configs:
        for split, rows in SPLITS.items():
            buffer = io.BytesIO()
            pq.write_table(pa.Table.from_pylist([row(name if name in CONFIGS else "main", split, index) for index in range(rows)]), buffer)
            out[f"{name}/{split}-00000-of-00001.parquet"] = buffer.getvalue()
            sizes[name, split] = len(buffer.getvalue())
    return {"README.md": readme(sizes, configs).encode(), **out}


def write(directory: str | Path) -> Path:
    directory = Path(directory)
    for path, content in files().items():
        (directory / path).parent.mkdir(parents=True, exist_ok=True)
        (directory / path).write_bytes(content)
    return directory


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUT_DIR")
    print(write(sys.argv[1]))
