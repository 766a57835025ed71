"""Recipes that train well: loss on the answers, a model that stops, LoRA at a learning rate that learns.
Learning tests compare two short runs side by side; none reads a clock."""

import importlib.util
import json
from types import SimpleNamespace

import pytest
import torch
from conftest import SAMPLE, SCRIPTS
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

FAST = ["--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "1", "--max_length", "192",
        "--logging_steps", "2", "--report_to", "none"]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), SCRIPTS / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def conversation(answer: str) -> dict:
    return {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Add 2 and 3."},
                         {"role": "assistant", "content": answer}]}


@pytest.mark.parametrize("fixture,answer", [("tiny_model", "It is 5."),
                                            ("tiny_qwen3", "<think>\nTwo plus three.\n</think>\n\nIt is 5.")])
def test_labels_cover_the_assistant_turn_and_its_end(fixture, answer, request, tmp_path):
    model_dir = request.getfixturevalue(fixture)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    dataset = Dataset.from_list([conversation(answer)] * 4)
    args = SFTConfig(output_dir=str(tmp_path), assistant_only_loss=None, report_to="none", use_cpu=True,
                     max_length=128, per_device_train_batch_size=2)
    args.assistant_only_loss, masking = load_script("train_sft.py").choose_loss_masking(
        SimpleNamespace(training_args=args), dataset, tokenizer)
    assert masking == "assistant tokens" and args.assistant_only_loss is True
    trainer = SFTTrainer(model=str(model_dir), args=args, processing_class=tokenizer, train_dataset=dataset)
    batch = next(iter(trainer.get_train_dataloader()))
    ids, labels = batch["input_ids"][0], batch["labels"][0]
    trained = tokenizer.decode(ids[labels != -100])
    untrained = tokenizer.decode(ids[(labels == -100) & (batch["attention_mask"][0] == 1)])
    assert "Be brief" in untrained and "Add 2 and 3" in untrained
    assert "Be brief" not in trained and "Add 2 and 3" not in trained
    assert "It is 5." in trained and trained.rstrip().endswith("<|im_end|>")
    if "<think>" in answer:
        assert "Two plus three" in trained


def test_a_short_sft_run_learns_to_stop(chat_trained_llama):
    out, printed = chat_trained_llama  # 120 steps of train_sft.py on the first 260 rows, shared with the GGUF tests
    assert "loss_masking=assistant tokens" in printed
    assert json.loads((out / "run.json").read_text())["loss_masking"] == "assistant tokens"
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    held_out = [json.loads(line) for line in (SAMPLE / "sft_code.jsonl").read_text().splitlines()[260:268]]
    stopped = 0
    for row in held_out:
        prompt = tokenizer.apply_chat_template(row["messages"][:1], add_generation_prompt=True, return_tensors="pt",
                                               return_dict=True)
        with torch.no_grad():
            output = model.generate(**prompt, max_new_tokens=96, do_sample=False)
        new = output[0, prompt["input_ids"].shape[1]:].tolist()
        stopped += tokenizer.eos_token_id in new[:80]
    assert stopped >= 6, f"only {stopped} of {len(held_out)} held-out answers ended with the end-of-turn token"


@pytest.mark.parametrize("packing", ["false", "true"])  # packed rows (the GPU default) are checked too
def test_a_template_that_masks_the_end_of_turn_is_refused(packing, tiny_model, tmp_path, run_script_shared):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    masked = tokenizer.chat_template.replace("{{ content + '<|im_end|>' }}{% endgeneration %}",
                                             "{{ content }}{% endgeneration %}{{ '<|im_end|>' }}")
    assert masked != tokenizer.chat_template
    template = tmp_path / "masked.jinja"
    template.write_text(masked)
    out = tmp_path / "sft"
    result = run_script_shared("train_sft.py", "--model_name_or_path", tiny_model, "--dataset_name", SAMPLE / "sft_code.jsonl",
                        "--output_dir", out, "--max_steps", "1", "--chat_template_path", template, *FAST,
                        "--packing", packing)
    assert result.returncode == 2, result.output[-2000:]
    assert "never in the loss" in result.stderr and "Traceback" not in result.output
    assert not (out / "run.json").exists()


@pytest.mark.parametrize("packing", ["false", "true"])  # best-fit packing puts the cut, longest rows first
def test_rows_cut_by_max_length_warn_instead_of_blaming_the_template(packing, tiny_model, tmp_path,
                                                                     run_script_shared):
    out = tmp_path / "sft"
    result = run_script_shared("train_sft.py", "--model_name_or_path", tiny_model, "--dataset_name", SAMPLE / "sft_code.jsonl",
                        "--output_dir", out, "--max_steps", "1", *FAST, "--max_length", "64", "--packing", packing)
    assert result.returncode == 0, result.output[-2000:]
    assert "longer than --max_length 64" in result.stderr and "never in the loss" not in result.stderr
    assert json.loads((out / "run.json").read_text())["status"] == "completed"
    result = run_script_shared("train_sft.py", "--model_name_or_path", tiny_model, "--dataset_name", SAMPLE / "sft_code.jsonl",
                        "--output_dir", tmp_path / "none", "--max_steps", "1", *FAST, "--max_length", "16",
                        "--packing", packing)
    assert result.returncode == 2 and "No row has an answer token within --max_length 16" in result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "none").exists()


@pytest.mark.long
def test_lora_learns_faster_at_its_default_rate(tiny_model, tmp_path, run_script):
    losses = {}
    for name, extra in (("default", []), ("full_rate", ["--learning_rate", "2e-5"])):
        out = tmp_path / name
        result = run_script("train_sft.py", "--model_name_or_path", tiny_model, "--dataset_name",
                            SAMPLE / "sft_code.jsonl", "--output_dir", out, "--peft", "lora", "--max_steps", "24",
                            *FAST, *extra)
        assert result.returncode == 0, result.output[-3000:]
        run = json.loads((out / "run.json").read_text())
        losses[name] = [e["loss"] for e in run["log_history"] if "loss" in e]
        if name == "default":
            assert run["config"]["learning_rate"] == 2e-4 and "10x" in run["learning_rate_reason"]
    assert sum(losses["default"][-3:]) < sum(losses["full_rate"][-3:]), losses


@pytest.mark.parametrize("fixture", ["tiny_model", "tiny_qwen3"])
def test_padding_is_never_the_end_of_a_sequence_or_a_turn(fixture, request):
    train_sft = load_script("train_sft.py")
    tokenizer = AutoTokenizer.from_pretrained(request.getfixturevalue(fixture))
    tokenizer.pad_token = tokenizer.eos_token  # as Qwen base models and many fine-tunes ship
    run = SimpleNamespace(training_args=SimpleNamespace(pad_token=None))
    pad = train_sft.choose_pad_token(run, tokenizer)
    assert run.training_args.pad_token is None, "a decision returned, not applied"
    specials = {token.content for token in tokenizer.added_tokens_decoder.values() if token.special}
    assert pad in specials and pad != tokenizer.eos_token and pad not in tokenizer.chat_template, pad
    tokenizer.chat_template += "".join(specials)  # every special token now written by the template: none can pad
    with pytest.raises(train_sft.BadInput, match="--pad_token"):
        train_sft.choose_pad_token(SimpleNamespace(training_args=SimpleNamespace(pad_token=None)), tokenizer)


def test_loss_masking_follows_the_data_the_template_and_the_flag(tiny_model, tmp_path):
    train_sft = load_script("train_sft.py")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)

    def masking(rows, **flags):
        args = SFTConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True, **{"assistant_only_loss": None,
                                                                                      **flags})
        return train_sft.choose_loss_masking(SimpleNamespace(training_args=args), Dataset.from_list(rows), tokenizer)

    chats = [conversation("It is 5.")]
    assert masking(chats) == (True, "assistant tokens")
    assert masking(chats, assistant_only_loss=False) == (False, "whole sequence (--assistant_only_loss false)")
    assert masking([{"prompt": "Add 2 and 3.", "completion": "5"}]) == (False, "completion tokens")
    assert masking([{"prompt": "Add 2 and 3.", "completion": "5"}], completion_only_loss=False)[1].startswith(
        "whole sequence")
    assert masking([{"text": "Add 2 and 3: 5"}]) == (False, "whole sequence (not conversational data)")
    tokenizer.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    assert masking(chats)[1].startswith("whole sequence (the chat template has no {% generation %} markers")
