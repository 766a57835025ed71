"""A verdict is a promise: what the validator calls ready trains, on the rows the trainer says it uses."""

import json

import pytest
from conftest import json_output


def test_a_conversation_without_an_answer_is_left_out_not_a_crash(run_script, tiny_model, tmp_path):
    rows = [{"messages": [{"role": "user", "content": f"Add {i} and 1."},
                          {"role": "assistant", "content": f"It is {i + 1}."}]} for i in range(39)]
    rows.insert(7, {"messages": [{"role": "user", "content": "Anyone there?"}]})
    data = tmp_path / "chats.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    verdict = json_output(run_script("validate_dataset.py", "--dataset", data, "--json"))
    assert verdict["methods"]["sft"]["status"] == "ready", verdict["methods"]["sft"]
    trained = run_script("train_sft.py", "--model_name_or_path", tiny_model, "--dataset_name", data, "--output_dir",
                         tmp_path / "out", "--max_steps", "1", "--max_length", "64", "--report_to", "none")
    assert trained.returncode == 0, trained.output[-3000:]
    assert "1 of 40 conversations have no assistant turn and are left out" in trained.stderr


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares its size and holds no pixels: what a reader sees before it decodes anything."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + \
        chunk(b"IEND", b"")


@pytest.mark.parametrize("case", ["missing", "corrupt", "huge"])
def test_a_bad_image_is_named_by_the_validator_and_the_trainer(case, run_script_shared, tiny_vlm, tmp_path):
    from PIL import Image

    good = tmp_path / "good.png"
    Image.new("RGB", (32, 32), "red").save(good)
    bad = tmp_path / f"{case}.png"
    if case == "corrupt":
        bad.write_bytes(good.read_bytes()[:40])
    elif case == "huge":
        bad.write_bytes(png_header(20000, 20000))
    rows = [{"images": [str(bad if i == 3 else good)],
             "messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Colour?"}]},
                          {"role": "assistant", "content": [{"type": "text", "text": "red"}]}]} for i in range(8)]
    data = tmp_path / "vision.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    verdict = run_script_shared("validate_dataset.py", "--dataset", data, "--json")
    assert verdict.returncode == 0, verdict.output[-2000:]
    sft = json.loads(verdict.stdout)["methods"]["sft"]
    assert sft["status"] == "incompatible" and bad.name in " ".join(sft["reasons"]), sft
    trained = run_script_shared("train_sft.py", "--model_name_or_path", tiny_vlm, "--dataset_name", data, "--output_dir",
                         tmp_path / "out", "--max_steps", "1", "--report_to", "none")
    assert trained.returncode == 2 and "Traceback" not in trained.output, trained.output[-3000:]
    assert bad.name in trained.stderr.strip().splitlines()[-1]
