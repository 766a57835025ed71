"""The three trainers are self-contained uv scripts (they run alone inside a job, importing nothing from siblings),
so they carry the same helpers. This test keeps those copies identical: change one, change all three."""

import ast

import pytest
from conftest import SCRIPTS

TRAINERS = ["train_sft.py", "train_dpo.py", "train_grpo.py"]
SHARED = ["BadInput", "load_rows", "parse_map", "sharegpt_to_messages", "alpaca_to_messages", "gsm8k_to_prompt",
          "prepare_dataset", "hardware", "hardware_defaults", "count_parameters", "weights_dtype", "resolve_peft",
          "launch_command", "load_model", "load_processing_class", "utcnow", "write_run_record",
          "make_progress_callback", "push_with_retries", "model_card", "build_parser"]


def definitions(script: str) -> dict[str, str]:
    source = (SCRIPTS / script).read_text()
    tree = ast.parse(source)
    return {node.name: ast.get_source_segment(source, node) for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.ClassDef))}


@pytest.mark.parametrize("name", SHARED)
def test_shared_helpers_are_identical(name):
    copies = {script: definitions(script).get(name) for script in TRAINERS}
    assert all(copies.values()), f"{name} is missing from {[s for s, c in copies.items() if not c]}"
    if name == "build_parser":  # differs only in the config class (and so in the sorted import line)
        copies = {s: "\n".join(line for line in c.replace("SFTConfig", "X").replace("DPOConfig", "X")
                               .replace("GRPOConfig", "X").splitlines() if "from trl import" not in line)
                  for s, c in copies.items()}
    assert len(set(copies.values())) == 1, f"{name} differs between the trainers"


def test_main_differs_only_in_the_trainer():
    mains = {s: definitions(s)["main"] for s in TRAINERS}
    normalised = {s: m.replace("SFTTrainer", "T").replace("DPOTrainer", "T").replace("GRPOTrainer", "T")
                  for s, m in mains.items()}
    sft = normalised["train_sft.py"].splitlines()
    for script in ("train_dpo.py", "train_grpo.py"):
        other = normalised[script].splitlines()
        extra = [line for line in other if line not in sft]
        assert len(extra) <= 6, f"{script} main drifted from train_sft.py: {extra}"
