"""plan.py's predictions against the H100 measurements in bench/h100_measurements.json (no GPU needed).
Exits 1 when a prediction misses issue 5's goal (memory within +-15%, step time within +-30%).

    python bench/calibration.py
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "skills" / "hf-llm-trainer" / "scripts"))
import plan  # noqa: E402

CASES = {"0.6b": "qwen3-0.6b", "1.7b": "qwen3-1.7b"}


def main():
    measurements = json.loads((Path(__file__).parent / "h100_measurements.json").read_text())
    print(f"{'case':24} {'mem meas':>9} {'mem pred':>9} {'ratio':>6} {'step meas':>10} {'step pred':>10} {'ratio':>6}")
    memory_ratios, time_ratios = [], []
    for case in measurements["cases"]:
        model = str(ROOT / "tests" / "configs" / CASES[case["model"]])
        shape = plan.model_shape(model)
        request = plan.parse_request(["--model", model, "--method", case["method"], "--peft", case["peft"],
                                      "--max_length", str(case["length"])])
        memory = plan.memory_breakdown(shape, request, "single", 1, case["batch"])["breakdown"]
        reserved = memory["total"] - memory["cuda_context"]  # torch reserves everything but the driver context
        step = plan.micro_batch_seconds(shape, request, "H100", 1, case["batch"])
        memory_ratios.append(reserved / case["reserved_gb"])
        line = (f"{case['name']:24} {case['reserved_gb']:9.2f} {reserved:9.2f} {reserved / case['reserved_gb']:6.2f} "
                f"{case['step_s']:10.3f} {step:10.3f} {step / case['step_s']:6.2f}")
        time_ratios.append(step / case["step_s"])
        print(line)
    print(f"memory ratio range {min(memory_ratios):.2f}-{max(memory_ratios):.2f}; "
          f"time ratio range {min(time_ratios):.2f}-{max(time_ratios):.2f}")
    memory_ok = sum(0.85 <= r <= 1.15 for r in memory_ratios)
    time_ok = sum(0.7 <= r <= 1.3 for r in time_ratios)
    print(f"within goal: memory {memory_ok}/{len(memory_ratios)}, time {time_ok}/{len(time_ratios)}")
    return 0 if memory_ok == time_ok == len(memory_ratios) else 1


if __name__ == "__main__":
    sys.exit(main())
