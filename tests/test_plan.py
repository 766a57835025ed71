"""plan.py on published configs (config only, no weights): exact counts, sensible choices, card and JSON agree."""

import json
import subprocess
import sys

import pytest
from conftest import CONFIGS, ROOT, flag_value, plan


def hand_count(config: dict) -> int:
    """Parameters of a Llama/Qwen3 decoder written out from the config, independently of transformers."""
    h, layers, vocab, inter = (config["hidden_size"], config["num_hidden_layers"], config["vocab_size"],
                               config["intermediate_size"])
    heads, kv = config["num_attention_heads"], config["num_key_value_heads"]
    head_dim = config.get("head_dim") or h // heads
    attention = h * heads * head_dim + 2 * h * kv * head_dim + heads * head_dim * h
    qk_norm = 2 * head_dim if config["model_type"] == "qwen3" else 0
    per_layer = attention + 3 * h * inter + 2 * h + qk_norm
    embeddings = vocab * h * (1 if config["tie_word_embeddings"] else 2)
    return embeddings + layers * per_layer + h


@pytest.mark.parametrize("name,published", [("qwen3-0.6b", 596_049_920), ("qwen3-1.7b", 1_720_574_976),
                                            ("qwen3-8b", 8_190_735_360), ("llama-3.1-70b", 70_553_706_496)])
def test_exact_parameter_counts(name, published, run_script):
    config = json.loads((CONFIGS / name / "config.json").read_text())
    result = plan(run_script, "--model", CONFIGS / name, "--method", "sft", "--peft", "qlora")
    assert result["params"] == hand_count(config) == published


def test_small_model_full_sft_fits_a_small_gpu(run_script):
    result = plan(run_script, "--model", CONFIGS / "qwen3-0.6b", "--method", "sft", "--dataset_tokens", "2e7")
    assert result["fits"] and result["peft"] == "none" and result["gpus"] == 1
    assert result["gpu_memory_gb"] <= 24 and result["flavor"] in ("t4-small", "t4-medium", "l4x1", "a10g-small")
    assert result["cost_usd"] == pytest.approx(result["time_hours"] * result["price_per_hour"], abs=0.01)
    assert not result["bf16"] if result["gpu"] == "T4" else result["bf16"]


def test_t4_never_gets_bf16(run_script):
    result = plan(run_script, "--model", CONFIGS / "qwen3-0.6b", "--method", "sft", "--flavor", "t4-small")
    assert result["gpu"] == "T4" and result["bf16"] is False and result["precision"] == "fp16"
    assert any("no bf16" in w for w in result["warnings"])


def test_8b_full_does_not_fit_24gb_but_lora_and_qlora_do(run_script):
    full = run_script("plan.py", "--model", CONFIGS / "qwen3-8b", "--method", "sft", "--peft", "none",
                      "--flavor", "a10g-large")
    assert full.returncode == 2 and "--peft lora" in full.stderr and "Traceback" not in full.stderr
    for peft in ("lora", "qlora"):
        result = plan(run_script, "--model", CONFIGS / "qwen3-8b", "--method", "sft", "--peft", peft,
                      "--flavor", "a10g-large")
        assert result["fits"] and result["memory_gb"] <= 24 * 0.9
        assert 0 < result["trainable_params"] < 0.01 * result["params"]
    qlora = plan(run_script, "--model", CONFIGS / "qwen3-8b", "--method", "sft", "--peft", "qlora", "--flavor", "a10g-large")
    lora = plan(run_script, "--model", CONFIGS / "qwen3-8b", "--method", "sft", "--peft", "lora", "--flavor", "a10g-large")
    assert qlora["breakdown"]["weights"] < lora["breakdown"]["weights"] * 0.6  # 4-bit linears, fp32 embeddings


def test_auto_peft_picks_lora_above_3b(run_script):
    assert plan(run_script, "--model", CONFIGS / "qwen3-8b", "--method", "sft")["peft"] == "lora"
    assert plan(run_script, "--model", CONFIGS / "qwen3-1.7b", "--method", "sft")["peft"] == "none"


def test_70b_needs_qlora_or_several_large_gpus(run_script):
    single = run_script("plan.py", "--model", CONFIGS / "llama-3.1-70b", "--method", "sft", "--peft", "lora",
                        "--flavor", "a100-large")
    assert single.returncode == 2
    qlora = plan(run_script, "--model", CONFIGS / "llama-3.1-70b", "--method", "sft", "--peft", "qlora",
                 "--flavor", "a100-large")
    assert qlora["fits"]
    lora = plan(run_script, "--model", CONFIGS / "llama-3.1-70b", "--method", "sft", "--peft", "lora")
    assert lora["fits"] and lora["gpus"] > 1 and lora["gpu_memory_gb"] >= 80 and lora["strategy"] == "fsdp"
    assert lora["nodes"] == 1 and flag_value(lora["training_args"], "--strategy") == "fsdp"


def test_dpo_costs_more_memory_than_sft_and_grpo_counts_the_kv_cache(run_script):
    sft = plan(run_script, "--model", CONFIGS / "qwen3-1.7b", "--method", "sft", "--flavor", "a100-large",
               "--per_device_train_batch_size", "4")
    dpo = plan(run_script, "--model", CONFIGS / "qwen3-1.7b", "--method", "dpo", "--flavor", "a100-large",
               "--per_device_train_batch_size", "4")
    grpo = plan(run_script, "--model", CONFIGS / "qwen3-1.7b", "--method", "grpo", "--flavor", "a100-large",
                "--per_device_train_batch_size", "4")
    assert dpo["breakdown"]["reference_model"] > 0 and dpo["memory_gb"] > sft["memory_gb"]
    assert grpo["breakdown"]["kv_cache"] > 0 and sft["breakdown"]["kv_cache"] == 0


def test_grpo_with_vllm_reserves_its_share_of_each_gpu(run_script):
    common = ["--model", CONFIGS / "qwen3-1.7b", "--method", "grpo", "--dataset_tokens", "2e6"]
    plain, vllm = plan(run_script, *common), plan(run_script, *common, "--vllm")
    assert vllm["breakdown"]["vllm"] == pytest.approx(0.3 * vllm["gpu_memory_gb"], abs=0.01)
    assert vllm["breakdown"]["kv_cache"] == 0 and plain["breakdown"]["vllm"] == 0
    assert vllm["memory_gb"] <= 0.9 * vllm["gpu_memory_gb"]
    refused = run_script("plan.py", "--model", CONFIGS / "qwen3-1.7b", "--method", "sft", "--vllm")
    assert refused.returncode == 2 and "--vllm only applies to --method grpo" in refused.stderr


def test_card_and_json_agree(run_script):
    args = ["--model", CONFIGS / "qwen3-0.6b", "--method", "sft", "--dataset_tokens", "2e7", "--dataset",
            "open-r1/codeforces-cots", "--output_repo", "alice/qwen3-cf-sft"]
    data = plan(run_script, *args)
    card = run_script("plan.py", *args)
    assert card.returncode == 0
    text = card.stdout
    assert f"- Hardware: {data['flavor']} (~${data['price_per_hour']:.2f}/hour" in text
    assert f"- Estimated cost: ~${data['cost_usd']:.2f}" in text
    assert f"- Timeout: {data['timeout']}" in text and "- Output: alice/qwen3-cf-sft" in text
    assert text.strip().endswith("Submit?")


def test_timeout_covers_the_estimate_with_a_buffer(run_script):
    result = plan(run_script, "--model", CONFIGS / "qwen3-8b", "--method", "sft", "--dataset_tokens", "1e8")
    hours, minutes = result["timeout"].split("h") if "h" in result["timeout"] else ("0", result["timeout"])
    timeout_hours = int(hours) + int(minutes.rstrip("m") or 0) / 60
    assert timeout_hours >= result["time_hours"] * 1.2 and timeout_hours > 0.5


def test_validation_file_gives_the_tokens(tmp_path, run_script):
    validation = tmp_path / "validation.json"
    validation.write_text(json.dumps({"rows": 1000, "methods": {}, "tokens": {"total_estimate": 3_000_000}}))
    result = plan(run_script, "--model", CONFIGS / "qwen3-0.6b", "--method", "sft", "--validation", validation)
    assert result["dataset_tokens"] == 3_000_000 and not result["warnings"] or "no bf16" in result["warnings"][0]


def test_live_price_list_is_used_when_online(run_script, hub):
    hub.state.hardware = [h | {"unitCostUSD": h["unitCostUSD"] * 2} for h in hub.state.hardware]
    result = plan(run_script, "--model", CONFIGS / "qwen3-0.6b", "--method", "sft", "--flavor", "l4x1")
    assert result["catalogue"] == "live price list" and result["price_per_hour"] == pytest.approx(1.60)
    assert hub.requests("GET", "/api/jobs/hardware")


def test_unknown_flavor_and_model_exit_2(tmp_path, run_script):
    bad = run_script("plan.py", "--model", CONFIGS / "qwen3-0.6b", "--method", "sft", "--flavor", "z80")
    assert bad.returncode == 2 and "Unknown flavor 'z80'" in bad.stderr
    missing = run_script("plan.py", "--model", tmp_path / "nothing", "--method", "sft")
    assert missing.returncode == 2 and "was not found" in missing.stderr and "Traceback" not in missing.stderr


def test_predictions_stay_within_the_goal_on_the_recorded_h100_runs():
    """Guards the calibrated constants: plan.py against the measured H100 runs in bench/h100_measurements.json."""
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "calibration.py")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "within goal: memory 12/12, time 12/12" in result.stdout
