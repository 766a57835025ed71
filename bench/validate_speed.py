"""validate_dataset.py on a 1,000,000-row local parquet file (default mode) against a naive full load_dataset +
pandas scan of the same file, side by side: wall time and peak RSS of each, as separate processes.

    python bench/validate_speed.py
"""

import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAIVE = """
import sys
from datasets import load_dataset
dataset = load_dataset("parquet", data_files=sys.argv[1], split="train")
frame = dataset.to_pandas()
print(len(frame), frame["messages"].map(len).describe()["mean"], frame.duplicated(subset=["id"]).sum())
"""


def measure(command: list[str]) -> tuple[float, float]:
    started = time.time()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = __import__("os").wait4(child.pid, 0)
    assert status == 0, command
    return time.time() - started, usage.ru_maxrss / 1024  # KiB -> MiB


def main():
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(tempfile.gettempdir()) / "hflt-1m.parquet"
    if not path.exists():
        rng = random.Random(0)
        words = ["def", "return", "sort", "list", "value", "python", "function", "loop", "print", "string"]
        writer = None
        for chunk in range(10):
            rows = [{"id": chunk * 100_000 + i,
                     "messages": [{"role": "user", "content": " ".join(rng.choices(words, k=12))},
                                  {"role": "assistant", "content": " ".join(rng.choices(words, k=30))}]}
                    for i in range(100_000)]
            table = pa.Table.from_pylist(rows)
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
        writer.close()
    ours = measure([sys.executable, str(ROOT / "skills/hf-llm-trainer/scripts/validate_dataset.py"), "--dataset",
                    str(path), "--json"])
    naive = measure([sys.executable, "-c", NAIVE, str(path)])
    print(json.dumps({"rows": 1_000_000, "file_mb": round(path.stat().st_size / 2**20, 1),
                      "validate_dataset": {"seconds": round(ours[0], 2), "peak_rss_mb": round(ours[1])},
                      "naive_load_and_pandas": {"seconds": round(naive[0], 2), "peak_rss_mb": round(naive[1])},
                      "speedup": round(naive[0] / ours[0], 1), "memory_ratio": round(naive[1] / ours[1], 1)}, indent=2))


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
