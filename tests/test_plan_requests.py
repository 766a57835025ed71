"""plan.py on what people ask for (issue #21): a test run priced as one, a max_length from the data's lengths,
absurd requests refused, DPO pairs counted whole, mixtures of experts priced on their active parameters, a much
faster flavor for a little more, and validations made for something else."""

import json
import math
import shutil
import sys

import pytest
from conftest import CONFIGS, SCRIPTS, flag_value, json_output, plan

sys.path.insert(0, str(SCRIPTS))
import plan as planner  # noqa: E402

QWEN = CONFIGS / "qwen3-0.6b"
MOE = CONFIGS / "qwen3-30b-a3b"


def refused(result) -> str:
    assert result.returncode == 2, result.output[-2000:]
    assert "Traceback" not in result.stderr and not result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def validation_file(path, lengths: list[int], rows: int = 1000, tokens: dict | None = None, **fields) -> str:
    """A validate_dataset.py --json report (measured at --max_length 2048) whose sample has these sequence lengths,
    one a row."""
    ordered = sorted(lengths)
    percentiles = [ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] for q in range(101)]
    total = int(sum(ordered) / len(ordered) * rows)
    counted = {"model": str(QWEN), "p50": percentiles[50], "p95": percentiles[95], "max": ordered[-1],
               "max_length": 2048, "length_percentiles": percentiles, "total_estimate": total, "total": total,
               "seen_at_max_length": int(sum(min(n, 2048) for n in ordered) / len(ordered) * rows),
               "share_cut": sum(n > 2048 for n in ordered) / len(ordered)}
    path.write_text(json.dumps({"rows": rows, "rows_checked": len(ordered), "methods": {}, **fields,
                                "tokens": counted | (tokens or {})}))
    return str(path)


def test_a_test_run_is_priced_as_a_test_run_beside_the_full_run(tmp_path, run_script):
    """'Do a quick test run on 100 examples first': the card and plan.json price that run, and show the full one."""
    validation = validation_file(tmp_path / "v.json", [1500] * 100, rows=100_000)
    common = ["--model", QWEN, "--method", "sft", "--validation", validation, "--flavor", "l4x1"]
    full = plan(run_script, *common)
    test = plan(run_script, *common, "--max_steps", "20", "--max_samples", "100")
    assert full["test_run"] is False and full["max_steps"] is None and full["estimate"] == full["full_run_estimate"]
    assert test["test_run"] is True and test["max_steps"] == 20 and test["max_samples"] == 100
    assert test["full_run_estimate"] == full["estimate"], "the full run is priced as a plan without the flags"
    estimate = test["estimate"]
    assert (estimate["time_hours"], estimate["cost_usd"], estimate["timeout"]) == \
        (test["time_hours"], test["cost_usd"], test["timeout"]), "the top level is the run this plan launches"
    per_step = test["per_device_train_batch_size"] * test["gradient_accumulation_steps"] * test["gpus"]
    assert estimate["steps"] == 20 and estimate["rows"] == 20 * per_step
    assert full["estimate"]["steps"] == math.ceil(100_000 / per_step) and full["estimate"]["rows"] == 100_000
    assert estimate["cost_usd"] < full["cost_usd"] / 10 and estimate["timeout"] == "30m" != full["timeout"]
    args = test["training_args"]
    assert flag_value(args, "--max_steps") == "20" and flag_value(args, "--max_samples") == "100"
    assert "--max_steps" not in full["training_args"]
    card = run_script("plan.py", *common, "--max_steps", "20", "--max_samples", "100").stdout
    assert "first as a test run (--max_steps 20, --max_samples 100)" in card
    assert f"- Estimated cost: ~${test['cost_usd']:.2f} (test run)" in card and "- Timeout: 30m" in card
    assert f"- Full run (not submitted by this plan): ~{planner.duration(full['time_hours'])}, " \
           f"~${full['cost_usd']:.2f}, {full['estimate']['steps']:,} steps, timeout {full['timeout']}" in card
    samples = plan(run_script, *common, "--max_samples", "2000", "--epochs", "2")["estimate"]
    assert samples["rows"] == 4000, "the first 2,000 rows, twice"


def test_max_length_is_proposed_from_the_lengths_with_its_cost(tmp_path, run_script):
    """The smallest multiple of 128 that keeps p95 whole; the longest that fits when memory does not allow it; never
    past max_position_embeddings."""
    traces = [1000 + 40 * i for i in range(95)] + [30_000, 36_000, 40_000, 60_000, 90_000]
    validation = validation_file(tmp_path / "v.json", traces)
    p95 = sorted(traces)[95]
    common = ["--model", QWEN, "--method", "sft", "--validation", validation]
    result = plan(run_script, *common, "--max_length", "1024", "--flavor", "h200")
    proposal = result["max_length_proposal"]
    assert proposal["max_length"] == math.ceil(p95 / 128) * 128 and proposal["keeps_p95_whole"]
    at_proposal = plan(run_script, *common, "--max_length", str(proposal["max_length"]), "--flavor", "h200")
    assert proposal["full_run_estimate"] == at_proposal["full_run_estimate"], "the price of planning it"
    assert proposal["full_run_estimate"]["cost_usd"] > result["cost_usd"], "more tokens are kept"
    assert at_proposal["max_length_proposal"] is None, "nothing to propose once it is asked for"
    card = run_script("plan.py", *common, "--max_length", "1024", "--flavor", "h200").stdout
    assert f"--max_length {proposal['max_length']} keeps them whole" in card

    small = plan(run_script, *common, "--flavor", "t4-small")["max_length_proposal"]
    assert not small["keeps_p95_whole"] and small["limited_by"] == "memory" and small["max_length"] % 128 == 0
    assert run_script("plan.py", *common, "--flavor", "t4-small", "--max_length", str(small["max_length"]),
                      "--json").returncode == 0
    assert "GB per GPU" in refused(run_script("plan.py", *common, "--flavor", "t4-small", "--max_length",
                                              str(small["max_length"] + 128)))

    longest = validation_file(tmp_path / "long.json", [60_000] * 100)
    common[-1] = longest
    capped = plan(run_script, *common, "--flavor", "h200")["max_length_proposal"]
    assert capped["max_length"] == 40_960 and capped["limited_by"] == "max_position_embeddings"
    assert "40,960 positions" in refused(run_script("plan.py", *common, "--max_length", "61440"))


@pytest.mark.parametrize("flags,says", [
    (["--epochs", "1e9"], "hours even on h200x8, past the 168 hours (timeout included) one job may run"),
    (["--dataset_tokens", "2e8", "--max_cost_usd", "2"], "past --max_cost_usd 2; plan less work"),
    (["--nodes", "100"], "--nodes 100 is more than the 8 machines a plan spans"),
    (["--max_steps", "0"], "--max_steps 0 is too small"),
    (["--max_samples", "-5"], "--max_samples -5 is too small"),
    (["--max_cost_usd", "nan"], "--max_cost_usd nan must be a finite number above 0"),
])
def test_absurd_requests_are_one_sentence_and_exit_2(flags, says, run_script):
    assert says in refused(run_script("plan.py", "--model", QWEN, "--method", "sft", *flags))


def test_the_limits_are_explained_and_a_run_too_long_for_one_flavor_goes_to_a_faster_one(run_script):
    help_text = " ".join(planner.build_parser().format_help().split())
    assert "a run whose timeout passes 168 hours (a week) is refused" in help_text.lower()
    assert "--epochs 1e9 never reaches a card" in help_text
    result = plan(run_script, "--model", QWEN, "--method", "sft", "--dataset_tokens", "3e9")
    cheapest_hours = plan(run_script, "--model", QWEN, "--method", "sft", "--dataset_tokens", "3e9", "--flavor",
                          "t4-small", "--max_cost_usd", "1e6", "--max_steps", "1")["full_run_estimate"]["time_hours"]
    assert cheapest_hours > 168 and result["flavor"] != "t4-small"
    assert planner.timeout_minutes(result["time_hours"]) <= 168 * 60


def test_dpo_counts_the_rejected_answer_too(tmp_path, run_script, tiny_qwen3):
    """A 50,000-word rejected answer is trained on (cut at --max_length): the validator counts prompt + chosen and
    prompt + rejected, and the plan prices both sequences."""
    rows = [{"prompt": f"Question {i}?", "chosen": "A short answer.", "rejected": "Another short answer."}
            for i in range(19)] + [{"prompt": "Write a haiku.", "chosen": "An old silent pond",
                                    "rejected": " ".join(["word"] * 50_000)}]
    data = tmp_path / "prefs.jsonl"
    data.write_text("\n".join(json.dumps(row) for row in rows))
    validation = run_script("validate_dataset.py", "--dataset", data, "--model", tiny_qwen3, "--max_length", "1024",
                            "--json")
    tokens = json_output(validation)["tokens"]
    assert tokens["sequences_per_row"] == 2 and tokens["max"] > 50_000 and tokens["total"] > 50_000
    assert tokens["rows_cut"] == 1 and 1024 < tokens["seen_at_max_length"] < 1024 + 20 * 2 * 20
    (tmp_path / "validation.json").write_text(validation.stdout)
    result = plan(run_script, "--model", tiny_qwen3, "--method", "dpo", "--max_length", "1024", "--validation",
                  tmp_path / "validation.json")
    assert result["dataset_tokens"] == tokens["seen_at_max_length"]


def moe_count(config: dict, experts_used: int) -> int:
    """Parameters of a Qwen3-MoE decoder written out from the config, with `experts_used` experts a layer."""
    h, heads, kv, head_dim = (config["hidden_size"], config["num_attention_heads"], config["num_key_value_heads"],
                              config["head_dim"])
    attention = 2 * h * heads * head_dim + 2 * h * kv * head_dim + 2 * head_dim  # q, o, k, v and the q/k norms
    experts = experts_used * 3 * h * config["moe_intermediate_size"]
    per_layer = attention + h * config["num_experts"] + experts + 2 * h  # router, experts, two norms
    return 2 * config["vocab_size"] * h + config["num_hidden_layers"] * per_layer + h


def test_a_mixture_of_experts_is_priced_on_its_active_parameters(tmp_path, run_script):
    """Qwen3-30B-A3B holds 30.5B parameters and runs 3.3B a token: memory counts them all, time like a dense model of
    the active ones (its twin: the same layers with one MLP as wide as the 8 experts a token goes through)."""
    config = json.loads((MOE / "config.json").read_text())
    twin = tmp_path / "dense-twin"
    twin.mkdir()
    (twin / "config.json").write_text(json.dumps(
        json.loads((QWEN / "config.json").read_text()) | {key: config[key] for key in (
            "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
            "tie_word_embeddings", "vocab_size")} | {"intermediate_size": 8 * config["moe_intermediate_size"]}))
    common = ["--method", "sft", "--peft", "lora", "--flavor", "h200", "--dataset_tokens", "2e7",
              "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "8"]
    moe, dense = plan(run_script, "--model", MOE, *common), plan(run_script, "--model", twin, *common)
    assert moe["params"] == moe_count(config, config["num_experts"]) == 30_532_122_624
    assert moe["active_params"] == moe_count(config, config["num_experts_per_tok"]) == 3_353_032_704
    assert dense["params"] == dense["active_params"] == moe["active_params"] - 48 * 2048 * 128  # no router
    assert moe["time_hours"] == pytest.approx(dense["time_hours"], rel=0.01), "priced on the active parameters"
    assert moe["breakdown"]["weights"] > 50 > 10 > dense["breakdown"]["weights"], "held whole in memory"


def test_a_much_faster_flavor_for_a_little_more_is_proposed(run_script):
    """Qwen3-8B DPO on 2M tokens: l4x1 is the cheapest (about 2 hours), h200 finishes 6x sooner for 3% more. (The
    GRPO example of the issue, 0.6B on t4-small against h200, no longer qualifies: priced with the completions it
    trains on, h200 costs a quarter more.)"""
    args = ["--model", CONFIGS / "qwen3-8b", "--method", "dpo", "--dataset_tokens", "2e6"]
    result = plan(run_script, *args)
    cheapest = result["alternatives"][0]
    assert cheapest["cost_usd"] < result["cost_usd"] <= 1.1 * cheapest["cost_usd"]
    assert result["time_hours"] * 3 <= cheapest["time_hours"]
    assert result["flavor_reason"].startswith(f"{cheapest['time_hours'] / result['time_hours']:.0f}x sooner than "
                                              f"{cheapest['flavor']}")
    assert f"- Why {result['flavor']}: {result['flavor_reason']}" in run_script("plan.py", *args).stdout
    pinned = plan(run_script, *args, "--flavor", cheapest["flavor"])
    assert pinned["flavor"] == cheapest["flavor"] and pinned["flavor_reason"] == "asked for (--flavor)"


def test_a_validation_made_for_another_dataset_or_tokenizer_is_refused(tmp_path, run_script, tiny_qwen3):
    made_for = validation_file(tmp_path / "v.json", [800] * 100, dataset="open-r1/codeforces-cots",
                               config="solutions")
    common = ["--method", "sft", "--validation", made_for]
    other = refused(run_script("plan.py", "--model", QWEN, *common, "--dataset", "my-org/other"))
    assert "was made for open-r1/codeforces-cots (solutions), not for the --dataset my-org/other" in other
    assert "not for the --dataset open-r1/codeforces-cots this plan" in refused(
        run_script("plan.py", "--model", QWEN, *common, "--dataset", "open-r1/codeforces-cots"))
    assert plan(run_script, "--model", QWEN, *common, "--dataset", "open-r1/codeforces-cots", "--dataset_config",
                "solutions")["dataset_tokens"] == 800_000

    counted_with_qwen3 = validation_file(tmp_path / "t.json", [800] * 100, tokens={"model": str(tiny_qwen3)})
    says = refused(run_script("plan.py", "--model", QWEN, "--method", "sft", "--validation", counted_with_qwen3))
    assert f"counted tokens with the tokenizer of {tiny_qwen3}, not of {QWEN}" in says
    copy = shutil.copytree(tiny_qwen3, tmp_path / "local-copy")  # the same tokenizer under another name
    assert plan(run_script, "--model", copy, "--method", "sft", "--validation",
                counted_with_qwen3)["dataset_tokens"] == 800_000
