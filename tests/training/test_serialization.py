"""tritonflow.save / load: safetensors files, bfloat16 bit-exact, nested state, no pickle."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest

import tritonflow as tf
from tritonflow import nn


def test_state_dict_round_trip_all_float_dtypes(tmp_path):
    rng = np.random.default_rng(0)
    state = {name: tf.tensor(rng.standard_normal((3, 2)), dtype=name)
             for name in ("float16", "bfloat16", "float32", "float64")}
    state["ints"] = tf.tensor([1, 2, 3])
    state["scalar"] = tf.tensor(2.5)
    tf.save(state, tmp_path / "s.safetensors")
    back = tf.load(tmp_path / "s.safetensors")
    assert list(back) == list(state)
    for k, v in state.items():
        assert back[k].dtype is v.dtype and back[k].shape == v.shape
        a, b = np.atleast_1d(v.numpy()), np.atleast_1d(back[k].numpy())
        np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8))  # bit for bit (bfloat16 included)


def test_file_is_plain_safetensors(tmp_path):
    lin = nn.Linear(3, 2).to(tf.bfloat16)
    path = tmp_path / "lin.safetensors"
    tf.save(lin.state_dict(), path)
    raw = path.read_bytes()
    header_len = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + header_len])
    assert header["weight"]["dtype"] == "BF16" and header["weight"]["shape"] == [2, 3]
    assert b"\x80\x04" not in raw[:8 + header_len]  # no pickle protocol marker in the header
    from safetensors.numpy import load_file
    assert set(load_file(str(path))) == {"weight", "bias"}  # any safetensors reader can open it
    fresh = nn.Linear(3, 2).to(tf.bfloat16)
    fresh.load_state_dict(tf.load(path))
    np.testing.assert_array_equal(fresh.weight.detach().numpy().view(np.uint16),
                                  lin.weight.detach().numpy().view(np.uint16))


def test_nested_values_round_trip(tmp_path):
    obj = {"step": 3, "name": "run", "lrs": [0.1, 0.2], "pair": (1, None),
           "state": {0: {"m": tf.ones(2)}, 1: {"m": tf.zeros(3)}}}
    tf.save(obj, tmp_path / "n.safetensors")
    back = tf.load(tmp_path / "n.safetensors")
    assert back["step"] == 3 and back["name"] == "run" and back["lrs"] == [0.1, 0.2] and back["pair"] == (1, None)
    assert set(back["state"]) == {0, 1}
    np.testing.assert_array_equal(back["state"][1]["m"].numpy(), np.zeros(3, np.float32))


def test_unsupported_values_and_bad_files_raise(tmp_path):
    from tritonflow.serialization import SerializationError
    with pytest.raises(SerializationError, match="set"):
        tf.save({"x": {1, 2}}, tmp_path / "bad.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(SerializationError, match="not a readable safetensors"):
        tf.load(tmp_path / "junk.safetensors")
