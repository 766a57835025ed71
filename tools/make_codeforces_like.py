"""Writes a small dataset repo shaped like open-r1/codeforces-cots, for the loopback Hub (tests, `make demo`).

What makes the real one hard, kept: several named configurations declared in the README's `configs:` YAML and no
default one; parquet shards in a folder per configuration (`solutions/train-00000-of-00002.parquet`);
conversational `messages` whose assistant turns are R1-style `<think>...</think>` traces, a few thousand tokens long
in some rows; a `finish_reason` column where some generations stopped at the generator's limit (`length`), their
assistant turn ending inside an unclosed `<think>`. What is not: its size (tens of rows, well under a megabyte),
made deterministically in a fraction of a second.

    python tools/make_codeforces_like.py OUT_DIR    # then: tests/hub_server.py --seed-dataset open-r1/codeforces-cots=OUT_DIR
"""

import io
import random
import sys
from pathlib import Path

NAME = "open-r1/codeforces-cots"
# configuration -> (rows, shards); the real dataset has 11 configurations, all without a default
CONFIGS = {
    "solutions": (24, 2),
    "solutions_decontaminated": (12, 1),
    "solutions_py": (12, 1),
    "solutions_py_decontaminated": (18, 2),
}
SEEDS = {name: index for index, name in enumerate(CONFIGS)}
WORDS = ("so the array has n elements and we need the minimum number of operations wait let me check the sample "
         "again if k is larger than n then the answer is zero otherwise we sort the values and take a prefix sum "
         "hmm but that is quadratic in the worst case so maybe a two pointer approach works better since each "
         "pointer moves at most n times the total is linear").split()
TASKS = ["count the pairs whose sum is divisible by k", "find the longest increasing segment",
         "print the minimum number of swaps that sorts the permutation", "decide whether the graph is bipartite",
         "answer q range-sum queries on the array", "find the lexicographically smallest rotation of s"]


def unfinished(index: int) -> bool:
    """Rows whose generation stopped at the generator's length limit: finish_reason 'length', no closing </think>."""
    return index % 6 == 5


def long_trace(index: int) -> bool:
    """Rows with a reasoning trace of a few thousand tokens (the rest have a few hundred)."""
    return index % 4 == 0 or unfinished(index)


def row(config: str, index: int) -> dict:
    rng = random.Random(SEEDS[config] * 1000 + index)
    task = TASKS[index % len(TASKS)]
    language = "python" if "_py" in config else rng.choice(["cpp", "python"])
    prompt = (f"You will be given a competitive programming problem.\n\n# Problem {index + 1}\n\nGiven an array of n "
              f"integers, {task}.\n\n## Input Format\nThe first line contains n (1 <= n <= 2*10^5).\n\nWrite a "
              f"solution in {language}.")
    words = rng.randint(1800, 2600) if long_trace(index) else rng.randint(120, 360)
    thought = " ".join(rng.choice(WORDS) for _ in range(words))
    if unfinished(index):
        answer, finish = f"<think>\n{thought}", "length"
    else:
        code = ("n = int(input())\nprint(n)" if language == "python" else
                "#include <bits/stdc++.h>\nint main() { int n; std::cin >> n; std::cout << n; }")
        answer, finish = f"<think>\n{thought}\n</think>\n\n```{language}\n{code}\n```", "stop"
    return {"id": f"{1000 + index}/{chr(65 + index % 6)}", "title": task.capitalize(), "prompt": prompt,
            "generation": answer, "finish_reason": finish,
            "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]}


def readme(sizes: dict[str, int]) -> str:
    """The card's YAML as the Hub writes it for a parquet dataset: `configs:` (no `default: true` anywhere) and
    `dataset_info:` with each configuration's split sizes."""
    configs = "".join(f"- config_name: {name}\n  data_files:\n  - split: train\n    path: {name}/train-*\n"
                      for name in CONFIGS)
    infos = "".join(f"- config_name: {name}\n  splits:\n  - name: train\n    num_bytes: {sizes[name]}\n"
                    f"    num_examples: {rows}\n  download_size: {sizes[name]}\n  dataset_size: {sizes[name]}\n"
                    for name, (rows, _) in CONFIGS.items())
    return (f"---\nlicense: cc-by-4.0\nlanguage:\n- en\nconfigs:\n{configs}dataset_info:\n{infos}---\n\n"
            f"# A codeforces-cots-shaped dataset\n\nMade by tools/make_codeforces_like.py for tests; shaped like "
            f"{NAME}: no default configuration, pick one with `--dataset_config`.\n")


def files() -> dict[str, bytes]:
    """Repo path -> content: README.md and every configuration's parquet shards."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out, sizes = {}, {}
    for name, (rows, shards) in CONFIGS.items():
        table = pa.Table.from_pylist([row(name, index) for index in range(rows)])
        per_shard = -(-rows // shards)
        for shard in range(shards):
            buffer = io.BytesIO()
            pq.write_table(table.slice(shard * per_shard, per_shard), buffer, row_group_size=4)
            out[f"{name}/train-{shard:05d}-of-{shards:05d}.parquet"] = buffer.getvalue()
        sizes[name] = sum(len(data) for path, data in out.items() if path.startswith(name + "/"))
    return {"README.md": readme(sizes).encode(), **out}


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
