"""The ground everything stands on: offline fixtures, sample data, generated AGENTS.md, the loopback Hub."""

import json
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT, SAMPLE


def test_tiny_causal_lm_is_a_working_chat_model(tiny_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert (tiny_model / "tokenizer.model").exists(), "llama.cpp's converter needs the SentencePiece model"
    assert model.config.hidden_size % 256 == 0, "K-quants need rows divisible by 256"
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Write add(a, b) in Python."}],
                                         tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    ids = tokenizer(text).input_ids
    assert tokenizer.convert_tokens_to_ids("<|im_start|>") in ids
    assert "Write add(a, b) in Python." in tokenizer.decode(ids)
    output = model.generate(**tokenizer(text, return_tensors="pt"), max_new_tokens=4, do_sample=False)
    assert output.shape[1] == len(ids) + 4 or tokenizer.eos_token_id in output[0].tolist()
    assert model.config.eos_token_id == tokenizer.eos_token_id == tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_fixtures_are_cached(tiny_model):
    import tiny_models

    assert tiny_models.tiny_causal_lm() == tiny_model
    before = (tiny_model / "model.safetensors").stat().st_mtime
    tiny_models.tiny_causal_lm()
    assert (tiny_model / "model.safetensors").stat().st_mtime == before


def test_tiny_vlm_sees_images(tiny_vlm):
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_vlm)
    model = AutoModelForImageTextToText.from_pretrained(tiny_vlm)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour is this?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(images=[Image.new("RGB", (40, 30), "red")], text=[text], return_tensors="pt")
    red = model(**inputs).logits
    inputs["pixel_values"] = processor(images=[Image.new("RGB", (40, 30), "blue")], text=[text],
                                       return_tensors="pt")["pixel_values"]
    blue = model(**inputs).logits
    assert red.shape[-1] == model.config.text_config.vocab_size
    assert not (red - blue).abs().max() < 1e-6, "the image must change the logits"


@pytest.mark.parametrize("filename,rows,columns", [("sft_code.jsonl", 300, {"messages"}),
                                                   ("dpo_code.jsonl", 150, {"prompt", "chosen", "rejected"}),
                                                   ("grpo_math.jsonl", 200, {"question", "answer"})])
def test_sample_data(filename, rows, columns):
    lines = (SAMPLE / filename).read_text().splitlines()
    assert len(lines) == rows
    for line in lines:
        row = json.loads(line)
        assert set(row) == columns
        if "messages" in row:
            assert row["messages"][-1]["role"] == "assistant"
        if "chosen" in row:
            assert row["chosen"] != row["rejected"]
        if "answer" in row:
            assert "####" in row["answer"]


def test_skill_frontmatter():
    text = (ROOT / "skills/hf-llm-trainer/SKILL.md").read_text()
    front = yaml.safe_load(text.split("---")[1])
    assert front["name"] == "hf-llm-trainer"
    assert 100 < len(front["description"]) <= 1024
    assert "fine-tune" in front["description"].lower()


def test_agents_md_is_generated_from_skill_md(tmp_path, monkeypatch):
    check = subprocess.run([sys.executable, str(ROOT / "tools/sync_agents.py"), "--check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    agents = (ROOT / "AGENTS.md").read_text()
    skill = (ROOT / "skills/hf-llm-trainer/SKILL.md").read_text()
    assert yaml.safe_load(skill.split("---")[1])["description"] in agents
    # drift is caught: a changed rule in a copy of the skill no longer matches AGENTS.md
    import sync_agents

    copy = tmp_path / "repo"
    (copy / "skills/hf-llm-trainer").mkdir(parents=True)
    (copy / "skills/hf-llm-trainer/SKILL.md").write_text(skill.replace("## Rules\n", "## Rules\n\n- A new rule.\n"))
    (copy / "AGENTS.md").write_text(agents)
    monkeypatch.setattr(sync_agents, "ROOT", copy)
    assert sync_agents.render() != agents
    assert "- A new rule." in sync_agents.render()


HUB_CLIENT = """
import json, pathlib, sys
from huggingface_hub import HfApi, get_token
api, tmp = HfApi(), pathlib.Path(sys.argv[1])
out = {"whoami": api.whoami()["name"]}
folder = tmp / "model"
(folder / "sub").mkdir(parents=True)
(folder / "config.json").write_text('{"a": 1}')
(folder / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 8)
api.create_repo("tester/demo")
api.upload_folder(repo_id="tester/demo", folder_path=folder)
out["files"] = sorted(api.list_repo_files("tester/demo"))
api.snapshot_download("tester/demo", local_dir=tmp / "download", allow_patterns=["sub/*"])
out["downloaded"] = sorted(str(p.relative_to(tmp / "download")) for p in (tmp / "download").rglob("*") if p.is_file()
                           and ".cache" not in p.parts)
out["weights_ok"] = (tmp / "download" / "sub" / "weights.bin").read_bytes() == bytes(range(256)) * 8
out["hardware"] = {h.name: h.accelerator.model for h in api.list_jobs_hardware() if h.accelerator}
job = api.run_job(image="python:3.12", command=["python", "-c", "print(1)"], flavor="t4-small",
                  secrets={"HF_TOKEN": get_token()}, timeout="1h", labels={"experiment": "demo"})
out["job"], out["stage"] = job.id, api.inspect_job(job_id=job.id).status.stage
print(json.dumps(out), flush=True)
sys.stdin.readline()  # the test appends log lines meanwhile
out = {"logs": list(api.fetch_job_logs(job_id=job.id))}
api.cancel_job(job_id=job.id)
out["after_cancel"] = api.inspect_job(job_id=job.id).status.stage
out["listed"] = [j.id for j in api.list_jobs()]
print(json.dumps(out), flush=True)
"""


def test_loopback_hub_answers_like_the_hub(hub, env, tmp_path):
    process = subprocess.Popen([sys.executable, "-c", HUB_CLIENT, str(tmp_path)], env=env, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = json.loads(process.stdout.readline() or process.stderr.read())
    assert first["whoami"] == "tester"
    assert first["files"] == ["config.json", "sub/weights.bin"]
    assert first["downloaded"] == ["sub/weights.bin"] and first["weights_ok"]
    assert first["hardware"]["t4-small"] == "T4" and first["stage"] == "SCHEDULING"
    hub.state.job_logs[first["job"]] += ["line one", "line two"]
    second, errors = process.communicate("go\n", timeout=60)
    second = json.loads(second)
    assert second["logs"] == ["line one", "line two"], errors
    assert second["after_cancel"] == "CANCELED" and second["listed"] == [first["job"]]
    sent = hub.requests("POST", "/api/jobs/tester")[0]["json"]
    assert sent["secrets"] == {"HF_TOKEN": env["HF_TOKEN"]} and "HF_TOKEN" not in sent["environment"]
    assert sent["timeoutSeconds"] == 3600 and sent["flavor"] == "t4-small" and sent["labels"]["experiment"] == "demo"
