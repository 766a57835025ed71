"""The varlen attention path (tools/shared/attention.py) and the GPU suite (bench/gpu_suite.py), on CPU.

torch's varlen_attn is a flash kernel with no CPU backend, so the tests that run a model through the "varlen"
implementation swap in a reference with the same signature (one per torch release whose signature we know): it
attends within each packed row with sdpa and checks what the real kernel requires (int32 boundaries, int lengths,
equal head counts unless enable_gqa). bench/gpu_suite.py runs the same numerics check on the real kernel first."""

import functools
import importlib.util
import json
import subprocess
import sys
from types import SimpleNamespace

import huggingface_hub.constants
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT
from torch.nn.attention import varlen
from transformers import AutoModelForCausalLM, Gemma2Config, MistralConfig, Qwen3Config

sys.path.insert(0, str(ROOT / "bench"))
import gpu_suite  # noqa: E402
from shared import attention  # noqa: E402
from shared.errors import BadInput  # noqa: E402

QWEN3 = Qwen3Config(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, head_dim=16)
GEMMA2 = Gemma2Config(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=16)


def attend_within_rows(query, key, value, cu_seq_q, max_q, causal, scale=None, enable_gqa=False):
    assert cu_seq_q.dtype == torch.int32 and isinstance(max_q, int)
    assert enable_gqa or query.shape[1] == key.shape[1], "fewer key/value heads need enable_gqa"
    rows = []
    for start, end in zip(cu_seq_q[:-1].tolist(), cu_seq_q[1:].tolist()):
        assert end - start <= max_q
        q, k, v = (t[start:end].transpose(0, 1) for t in (query, key, value))
        rows.append(F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale,
                                                   enable_gqa=enable_gqa).transpose(0, 1))
    return torch.cat(rows)


def varlen_2_10(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, is_causal=False, return_aux=None):
    return attend_within_rows(query, key, value, cu_seq_q, max_q, is_causal)


def varlen_2_11(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, return_aux=None, scale=None,
                window_size=(-1, -1)):
    return attend_within_rows(query, key, value, cu_seq_q, max_q, window_size == (-1, 0), scale)


def varlen_2_13(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, return_aux=None, scale=None,
                window_size=(-1, -1), enable_gqa=False, seqused_k=None, block_table=None, num_splits=None):
    return attend_within_rows(query, key, value, cu_seq_q, max_q, window_size == (-1, 0), scale, enable_gqa)


def across_rows(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, **options):
    """A kernel that ignores the row boundaries: what the numerics check must catch."""
    whole = torch.tensor([0, query.shape[0]], dtype=torch.int32)
    return varlen_2_13(query, key, value, whole, whole, query.shape[0], query.shape[0], **options)


@pytest.fixture
def on_gpu(monkeypatch):
    """A pure selection function asked about an Ampere-or-later GPU, on this CPU machine."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *args: (9, 0))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


def installed(monkeypatch, *names):
    """These packages look installed to the selection function (only there: transformers' own checks are left)."""
    real = importlib.util.find_spec
    find_spec = lambda name, *args: SimpleNamespace(name=name) if name in names else real(name, *args)  # noqa: E731
    monkeypatch.setattr(attention, "importlib", SimpleNamespace(util=SimpleNamespace(find_spec=find_spec)))


def test_explicit_attention_always_wins(on_gpu, monkeypatch):
    installed(monkeypatch, "flash_attn")
    assert attention.choose_attention("sdpa", "cuda", True, True, QWEN3) == ("sdpa", "sdpa (given)")
    assert attention.choose_attention("eager", "cpu", False, False, QWEN3) == ("eager", "eager (given)")
    assert attention.choose_attention("varlen", "cuda", False, True, QWEN3) == ("varlen", "varlen (given)")


def test_explicit_varlen_where_it_cannot_run_is_bad_input(monkeypatch):
    with pytest.raises(BadInput, match=r"varlen cannot run here \(no CUDA GPU\)"):
        attention.choose_attention("varlen", "cpu", True, False, QWEN3)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *args: (9, 0))
    with pytest.raises(BadInput, match="softcaps"):
        attention.choose_attention("varlen", "cuda", True, True, GEMMA2)


def test_cpu_and_unpacked_runs_keep_the_default(on_gpu, monkeypatch):
    installed(monkeypatch, "flash_attn")
    assert attention.choose_attention(None, "cpu", True, False, QWEN3) == (None, "default (no CUDA GPU)")
    assert attention.choose_attention(None, "cuda", False, True, QWEN3) == (None, "default (no padding-free packing)")


def test_flash_attn_package_comes_first(on_gpu, monkeypatch):
    installed(monkeypatch, "flash_attn", "kernels")
    implementation, note = attention.choose_attention(None, "cuda", True, True, QWEN3)
    assert implementation == "flash_attention_2" and note.startswith("flash_attention_2 (")


def test_hub_kernel_next_and_only_online(on_gpu, monkeypatch):
    installed(monkeypatch, "kernels")
    assert attention.choose_attention(None, "cuda", True, True, QWEN3)[0] == "kernels-community/flash-attn2"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert attention.choose_attention(None, "cuda", True, True, QWEN3)[0] == "varlen"


def test_varlen_without_a_flash_package(on_gpu, monkeypatch):
    implementation, note = attention.choose_attention(None, "cuda", True, True, QWEN3)
    assert implementation == "varlen" and note.startswith("varlen (")
    monkeypatch.setattr(varlen, "varlen_attn", varlen_2_13)
    model = AutoModelForCausalLM.from_config(QWEN3, attn_implementation=implementation)  # the name is registered
    assert model(input_ids=torch.randint(0, 128, (1, 8))).logits.shape[1] == 8


@pytest.mark.parametrize("config, fp16_or_bf16, reason", [
    (QWEN3, False, "bf16 or fp16"),
    (GEMMA2, True, "softcaps"),
    (MistralConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, sliding_window=4096), True, "sliding-window"),
])
def test_what_the_varlen_kernel_cannot_do_keeps_the_default(on_gpu, config, fp16_or_bf16, reason):
    implementation, note = attention.choose_attention(None, "cuda", True, fp16_or_bf16, config)
    assert implementation is None and note.startswith("default (") and reason in note


def test_old_gpu_or_old_torch_keeps_the_default(on_gpu, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.nn.attention.varlen", None)  # torch < 2.10: no such module
    assert "torch 2.10" in attention.choose_attention(None, "cuda", True, True, QWEN3)[1]
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *args: (7, 5))  # T4
    assert attention.choose_attention(None, "cuda", True, True, QWEN3) == (
        None, "default (GPU compute capability 7.5; flash kernels need 8.0+)")


def test_registered_name_loads_and_padded_rows_take_the_sdpa_path():
    attention.register_varlen_attention()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(QWEN3, attn_implementation="sdpa").eval()
    ids = torch.randint(0, 128, (2, 12))
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    expected = model(input_ids=ids, attention_mask=mask).logits
    model.set_attn_implementation("varlen")
    assert torch.equal(model(input_ids=ids, attention_mask=mask).logits, expected)


@pytest.mark.parametrize("kernel", [varlen_2_10, varlen_2_11, varlen_2_13])
def test_packed_rows_match_padded_sdpa_and_stay_apart(monkeypatch, kernel):
    monkeypatch.setattr(varlen, "varlen_attn", kernel)
    numerics = gpu_suite.varlen_numerics("cpu")
    assert numerics["ok"], numerics
    assert numerics["gradient_across_rows"] == 0 and numerics["gradient_within_row"] > 0


def test_numerics_check_catches_attention_across_rows(monkeypatch):
    monkeypatch.setattr(varlen, "varlen_attn", across_rows)
    numerics = gpu_suite.varlen_numerics("cpu")
    assert not numerics["ok"] and numerics["gradient_across_rows"] > 0


def test_rows_without_boundaries_are_split_where_positions_restart(monkeypatch):
    monkeypatch.setattr(varlen, "varlen_attn", varlen_2_13)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(QWEN3, attn_implementation="sdpa").eval()
    ids = torch.randint(0, 128, (2, 10))
    expected = model(input_ids=ids).logits
    attention.register_varlen_attention()
    model.set_attn_implementation("varlen")
    assert torch.allclose(model(input_ids=ids).logits, expected, atol=1e-5)
    packed = model(input_ids=ids.reshape(1, 20), position_ids=torch.arange(10).repeat(2)[None]).logits
    assert torch.allclose(packed.reshape(2, 10, -1), expected, atol=1e-5)


@pytest.mark.parametrize("kernel", [varlen_2_10, varlen_2_11, varlen_2_13])
def test_scale_gqa_and_autocast_reach_the_kernel(monkeypatch, kernel):
    seen = []

    @functools.wraps(kernel)  # the wrapper reads the signature through __wrapped__
    def recording(query, *args, **options):
        seen.append(query.dtype)
        return kernel(query, *args, **options)

    monkeypatch.setattr(varlen, "varlen_attn", recording)
    query, key, value = torch.randn(1, 4, 9, 16), torch.randn(1, 2, 9, 16), torch.randn(1, 2, 9, 16)
    bounds = torch.tensor([0, 4, 9], dtype=torch.int32)
    kwargs = {"cu_seq_lens_q": bounds, "cu_seq_lens_k": bounds, "max_length_q": 5, "max_length_k": 5}
    causal = SimpleNamespace(is_causal=True)
    output, _ = attention.varlen_attention_forward(causal, query, key, value, None, scaling=0.3, **kwargs)
    rows = [slice(0, 4), slice(4, 9)]
    expected = torch.cat([F.scaled_dot_product_attention(query[:, :, r], key[:, :, r], value[:, :, r], is_causal=True,
                                                         scale=0.3, enable_gqa=True) for r in rows], dim=2)
    assert torch.allclose(output, expected.transpose(1, 2), atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        attention.varlen_attention_forward(causal, query, key, value, None, scaling=0.3, **kwargs)
    assert seen == [torch.float32, torch.bfloat16]


def test_features_the_kernel_lacks_are_refused():
    query = torch.randn(1, 4, 6, 16)
    bounds = torch.tensor([0, 6], dtype=torch.int32)
    with pytest.raises(ValueError, match="sdpa"):
        attention.varlen_attention_forward(SimpleNamespace(is_causal=True), query, query, query, None, softcap=30.0,
                                           cu_seq_lens_q=bounds, cu_seq_lens_k=bounds, max_length_q=6,
                                           max_length_k=6)


def test_gpu_suite_without_a_gpu_says_so():
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_suite.py")], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "needs a CUDA GPU" in result.stderr and "Traceback" not in result.stderr


def suite_run(name, model, tokens_per_s, memory_gb):
    return {"name": name, "model": model, "real_tokens_per_s": tokens_per_s, "peak_memory_gb": memory_gb,
            "mfu": None if tokens_per_s is None else 0.01}


def test_results_file_has_the_issue_schema_and_its_ratios():
    runs = [suite_run("reference", "qwen3-0.6b", 1000, 4.0), suite_run("ours", "qwen3-0.6b", 2500, 12.0),
            suite_run("ours_lora", "qwen3-0.6b", 2000, 3.0), suite_run("ours_sdpa", "qwen3-0.6b", 1250, 12.0),
            suite_run("reference", "qwen3-1.7b", 500, 8.0), suite_run("ours_lora", "qwen3-1.7b", None, None)]
    document = json.loads(json.dumps(gpu_suite.results_document("NVIDIA H100 80GB HBM3", "2026-11-23", runs)))
    assert {"device", "date", "runs", "ratios"} <= set(document)
    assert all({"name", "model", "real_tokens_per_s", "peak_memory_gb", "mfu"} <= set(run) for run in document["runs"])
    assert document["ratios"] == document["ratios_by_model"]["qwen3-0.6b"]
    assert document["ratios"]["lora_speed_vs_reference"] == 2.0
    assert document["ratios"]["lora_memory_vs_reference"] == 0.75
    assert document["ratios"]["full_speed_vs_reference"] == 2.5
    assert document["ratios"]["full_speed_vs_sdpa_packing"] == 2.0
    assert document["ratios"]["qlora_speed_vs_reference"] is None  # not run
    assert document["ratios_by_model"]["qwen3-1.7b"]["lora_speed_vs_reference"] is None  # failed


def test_results_tables_replace_only_the_generated_section():
    runs = [suite_run("reference", "qwen3-0.6b", 1000, 4.0), suite_run("ours_lora", "qwen3-0.6b", 1600, 3.0)]
    document = gpu_suite.results_document("NVIDIA H100 80GB HBM3", "2026-11-23", runs, versions={"torch": "2.11.0"})
    text = (ROOT / "bench" / "RESULTS.md").read_text()
    refreshed = gpu_suite.refresh_results(text, gpu_suite.render_tables(document))
    assert "| qwen3-0.6b | ours_lora | — | 1,600 | 1.60x | 3.00 GB | 0.75x | 1.0% |" in refreshed
    before, after = text.split(gpu_suite.BEGIN)[0], text.split(gpu_suite.END)[1]
    assert refreshed.startswith(before + gpu_suite.BEGIN) and refreshed.endswith(gpu_suite.END + after)
    assert gpu_suite.refresh_results(refreshed, gpu_suite.render_tables(document)) == refreshed


def test_suite_measures_a_real_trainer_run(tmp_path, tiny_model):
    data = gpu_suite.token_dataset(tmp_path, 512, 256, 64, variable=True)
    record = gpu_suite.measure_sft("ours", "tiny", tiny_model, data, tmp_path, ["--per_device_train_batch_size", "2",
                                                                               "--gradient_accumulation_steps", "1"], 4)
    assert "error" not in record, record.get("error")
    assert record["real_tokens_per_s"] > 0 and record["params"] > 0
    assert record["mfu"] == pytest.approx(6 * record["params"] * record["real_tokens_per_s"] / gpu_suite.PEAK_FLOPS,
                                          rel=1e-2)  # tokens/s is rounded
