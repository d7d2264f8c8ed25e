"""attnrank.safetensors: the C++ writer's bytes, and the C++ reader's checks."""
import glob
import json
import os

import numpy as np
import pytest

import attnrank
from attnrank import safetensors
from conftest import ROOT


def test_rewrites_a_cpp_checkpoint_byte_for_byte(cli_run, tmp_path):
    path = os.path.join(cli_run, "model.safetensors")
    tensors, metadata = safetensors.read(path)
    assert metadata["format"] == "attnrank" and "\n" in metadata["config"]
    assert all(t.dtype == np.float32 for t in tensors.values())
    assert tensors["layers.0.attn.in_proj_weight"].shape == (12, 4)
    # The same tensors and metadata written by Python: the C++ binary's exact bytes.
    out = tmp_path / "again.safetensors"
    safetensors.save_file(tensors, out, metadata)
    with open(path, "rb") as f:
        assert out.read_bytes() == f.read()
    assert safetensors.load_file(out).keys() == tensors.keys()
    assert safetensors.load_metadata(out) == metadata


def test_rewrites_the_golden_files_byte_for_byte():
    # tests/test_safetensors.cpp checks that the C++ writer reproduces these files,
    # F64 tensors and all; so does Python.
    files = sorted(glob.glob(os.path.join(ROOT, "tests", "golden", "*.safetensors")))
    assert len(files) >= 10
    for path in files:
        tensors, metadata = safetensors.read(path)
        with open(path, "rb") as f:
            assert safetensors.serialize(tensors, metadata) == f.read(), path


def test_a_model_loads_python_written_weights(cli_run, tmp_path):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(cli_run, run)
    tensors, metadata = safetensors.read(run / "model.safetensors")
    tensors["layers.0.norm1.scale"] = np.array([3.0], dtype=np.float32)
    safetensors.save_file(tensors, run / "model.safetensors", metadata)
    assert attnrank.Model.load(run).parameters["layers.0.norm1.scale"][0] == 3.0


def test_dtypes_metadata_and_layout():
    tensors = {"b": np.arange(6, dtype=">f4").reshape(2, 3), "a": np.array([True, False]),
               "ints": np.arange(3, dtype=np.int64), "half": np.ones((1, 0), np.float16),
               "scalar": np.float64(2.5), "u8": np.arange(5, dtype=np.uint8)}
    metadata = {"z": "last", "a": "ünïcode \"quoted\"\n\ttab\x01"}
    data = safetensors.serialize(tensors, metadata)
    size = int.from_bytes(data[:8], "little")
    header = data[8:8 + size]
    assert size % 8 == 0 and header.rstrip(b" ").endswith(b"}")
    text = header.decode("utf-8")
    # nlohmann::json's compact dump: UTF-8 as is, control characters escaped.
    assert text.startswith('{"__metadata__":{"a":"ünïcode \\"quoted\\"\\n\\ttab\\u0001","z"')
    names = list(json.loads(text))
    assert names == ["__metadata__", "a", "b", "half", "ints", "scalar", "u8"]
    assert json.loads(text)["b"] == {"dtype": "F32", "shape": [2, 3], "data_offsets": [2, 26]}
    back, meta = safetensors.deserialize(data)
    assert meta == metadata
    for name, value in tensors.items():
        assert back[name].shape == np.shape(value)
        np.testing.assert_array_equal(back[name], value)
    assert back["b"].dtype == np.dtype("<f4") and back["b"].flags.writeable
    assert safetensors.serialize({}) == b"\x08" + b"\x00" * 7 + b"{}      "
    with pytest.raises(TypeError, match="cannot store"):
        safetensors.serialize({"c": np.zeros(2, complex)})
    with pytest.raises(ValueError, match="reserved"):
        safetensors.serialize({"__metadata__": np.zeros(1)})
    with pytest.raises(TypeError, match="metadata"):
        safetensors.serialize({}, {"k": 1})


def corrupt(header, data=b""):
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + data


@pytest.mark.parametrize("data,message", [
    (b"\x01\x02", "shorter than the 8-byte header length"),
    ((10 ** 9).to_bytes(8, "little") + b"{}", "is absurd"),
    ((100).to_bytes(8, "little") + b"{}", "runs past the end of the file"),
    ((4).to_bytes(8, "little") + b"{x:1", "not valid JSON"),
    ((3).to_bytes(8, "little") + b"[1]", "not a JSON object"),
    ((3).to_bytes(8, "little") + b" {}", "does not start with"),
    ((58).to_bytes(8, "little") + b'{"a":{"dtype":"U8","shape":[],"data_offsets":[0,1]},"a":1}'
     + b"\x00", "duplicate tensor name 'a'"),
    (corrupt({"a": {"dtype": "X9", "shape": [1], "data_offsets": [0, 1]}}, b"\x00"),
     "unknown dtype 'X9'"),
    (corrupt({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\x00" * 4),
     "span 4 bytes but dtype and shape need 8"),
    (corrupt({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}, b"\x00"),
     "beyond the data buffer"),
    (corrupt({"a": {"dtype": "U8", "shape": [-1], "data_offsets": [0, 0]}}), "negative"),
    (corrupt({"a": {"dtype": "U8", "shape": [True], "data_offsets": [0, 1]}}, b"\x00"),
     "not an integer"),
    (corrupt({"a": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}}, b"\x00\x00"),
     "belong to no tensor"),
    (corrupt({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
              "b": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}}, b"\x00\x00"),
     "overlap"),
    (corrupt({"a": {"dtype": "U8", "shape": [1]}}, b"\x00"), 'has no "data_offsets"'),
    (corrupt({"__metadata__": {"k": 1}}), "__metadata__ value 'k' is not a string"),
])
def test_rejects_corrupt_files(data, message, tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(data)
    with pytest.raises(attnrank.FormatError, match="bad.safetensors: invalid safetensors file: "
                       ".*" + message):
        safetensors.load_file(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such safetensors file"):
        safetensors.load_file(tmp_path / "none.safetensors")
