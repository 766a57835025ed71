"""convert_gguf.py's GGUF header reader: it agrees with gguf.GGUFReader on every scalar and string field and on the
tensor types, and a file cut short or not GGUF at all is one clear Failure, not a struct error."""

import shutil
import struct
import sys

import pytest
from conftest import SCRIPTS

sys.path.insert(0, str(SCRIPTS))
import convert_gguf  # noqa: E402


@pytest.fixture(scope="module")
def gguf_files(tiny_model, tmp_path_factory):
    """The tiny Llama converted by llama.cpp to F16, and quantized to Q4_K_M (K-quants, Q6_K and F32 mixed)."""
    work = tmp_path_factory.mktemp("gguf")
    llama = convert_gguf.llama_cpp()
    f16, q4 = work / "tiny-F16.gguf", work / "tiny-Q4_K_M.gguf"
    convert_gguf.convert(llama, tiny_model, f16)
    convert_gguf.quantize(llama, f16, q4, "Q4_K_M")
    return f16, q4


def ggufreader_metadata(reader) -> dict:
    """What metadata() returned when it used gguf.GGUFReader."""
    def field(name):
        return reader.fields[name].contents() if name in reader.fields else None

    return {"architecture": field("general.architecture"), "tokenizer": field("tokenizer.ggml.model"),
            "pre_tokenizer": field("tokenizer.ggml.pre"), "chat_template": field("tokenizer.chat_template"),
            "file_type": field("general.file_type"),
            "tensor_types": sorted({tensor.tensor_type.name for tensor in reader.tensors}), "tensors": len(reader.tensors)}


def test_the_header_reader_agrees_with_ggufreader(gguf_files):
    from gguf import GGUFReader, GGUFValueType

    for path in gguf_files:
        reader = GGUFReader(str(path))
        header = convert_gguf.GGUFHeader(path)
        assert header.fields == {name: field.contents() for name, field in reader.fields.items()
                                 if not name.startswith("GGUF.") and field.types[0] != GGUFValueType.ARRAY}
        assert header.fields["tokenizer.ggml.eos_token_id"] == 5 and header.fields["general.file_type"] in (1, 15)
        assert header.tensor_types == [tensor.tensor_type for tensor in reader.tensors]
        before, after = ggufreader_metadata(reader), convert_gguf.metadata(path)
        assert after == before and {k: type(v) for k, v in after.items()} == {k: type(v) for k, v in before.items()}
    assert {"Q4_K", "Q6_K", "F32"} <= set(convert_gguf.metadata(gguf_files[1])["tensor_types"])


@pytest.mark.parametrize("cut", ["empty", "in the magic", "in the metadata", "in the tensor infos", "in the data"])
def test_a_file_cut_short_is_one_clear_failure(cut, gguf_files, tmp_path):
    from gguf import GGUFReader

    f16 = gguf_files[0]
    data = f16.read_bytes()
    first_tensor = GGUFReader(str(f16)).tensors[0].field.offset
    end = {"empty": 0, "in the magic": 2, "in the metadata": 100, "in the tensor infos": first_tensor + 5,
           "in the data": len(data) - 1}[cut]
    path = tmp_path / "cut.gguf"
    path.write_bytes(data[:end])
    with pytest.raises(convert_gguf.Failure) as failure:
        convert_gguf.metadata(path)
    expected = "is not a GGUF file" if end < 4 else "is cut short"
    assert str(failure.value).startswith(f"cut.gguf {expected}") and "\n" not in str(failure.value)


def test_a_foreign_or_corrupt_file_is_one_clear_failure(gguf_files, tmp_path):
    config = tmp_path / "config.json"
    config.write_text('{"model_type": "llama"}')
    with pytest.raises(convert_gguf.Failure, match=r"^config.json is not a GGUF file \(it does not begin with"):
        convert_gguf.metadata(config)
    corrupt = tmp_path / "corrupt.gguf"
    shutil.copy(gguf_files[0], corrupt)
    data = bytearray(corrupt.read_bytes())
    (key_length,) = struct.unpack_from("<Q", data, 24)  # the first key, after magic, version and the two counts
    struct.pack_into("<I", data, 32 + key_length, 99)  # its value type
    corrupt.write_bytes(data)
    with pytest.raises(convert_gguf.Failure, match=r"^corrupt.gguf is not a readable GGUF file \(99 is not a valid "
                                                   r"GGUFValueType\); not publishing$"):
        convert_gguf.metadata(corrupt)
