"""Bad checkpoints and configs: each is a clear error naming the file and the field or tensor, and
a failed load leaves the model exactly as it was.

The broken directories are made from a good transformers checkpoint by editing config.json or
rewriting model.safetensors (safetensors' own writer) or its raw bytes.
"""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from tritonflow import models
from tritonflow.models import CheckpointError, ConfigError
from tritonflow.models.safetensors_reader import checkpoint_tensors

WEIGHTS = "model.safetensors"


@pytest.fixture
def gpt2_dir(saved, tmp_path):
    """A private copy of the tiny GPT-2 checkpoint, free to break."""
    _, path = saved("gpt2")
    target = tmp_path / "gpt2"
    shutil.copytree(path, target)
    return target


def edit_config(directory, **changes):
    path = directory / "config.json"
    values = json.loads(path.read_text())
    for key, value in changes.items():
        if value is _DELETE:
            del values[key]
        else:
            values[key] = value
    path.write_text(json.dumps(values))


_DELETE = object()


def rewrite_tensors(directory, edit):
    from safetensors.numpy import load_file, save_file
    path = str(directory / WEIGHTS)
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path)


def fresh_model(directory):
    """A randomly initialised GPT-2 of the checkpoint's configuration: every weight differs from
    the file's, so a partial load would show."""
    return models.GPT2(models.GPT2Config.from_pretrained(directory))


def snapshot(model) -> dict:
    return {name: t.detach().numpy().copy() for name, t in model.state_dict().items()}


def assert_unchanged(model, before: dict):
    after = snapshot(model)
    assert after.keys() == before.keys()
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)


# ---------------------------------------------------------------- config.json


@pytest.mark.parametrize("changes, pattern", [
    ({"sliding_window": 16}, r"unknown field 'sliding_window' for a gpt2 model.*ignore_unknown=\['sliding_window'\]"),
    ({"n_embd": _DELETE}, r"missing required field 'n_embd'"),
    ({"n_head": "four"}, r"field 'n_head' must be int, got 'four'"),
    ({"n_layer": True}, r"field 'n_layer' must be int, got True"),
    ({"n_head": 5}, r"field 'n_head' is 5; tritonflow supports a head count that divides n_embd \(32\)"),
    ({"activation_function": "gelu_10"}, r"field 'activation_function' is 'gelu_10'"),
    ({"add_cross_attention": True}, r"field 'add_cross_attention' is True"),
    ({"model_type": "llama"}, r"model_type is 'llama', but GPT2Config reads 'gpt2'"),
])
def test_config_errors_name_the_file_and_field(gpt2_dir, changes, pattern):
    edit_config(gpt2_dir, **changes)
    with pytest.raises(ConfigError, match=pattern) as info:
        models.GPT2.from_pretrained(gpt2_dir)
    assert str(gpt2_dir / "config.json") in str(info.value)


def test_an_unknown_field_loads_when_the_user_vouches_for_it(saved, gpt2_dir, token_ids):
    edit_config(gpt2_dir, sliding_window=16, n_ctx=64)  # n_ctx: old GPT-2 files, known to be harmless
    model = models.GPT2.from_pretrained(gpt2_dir, ignore_unknown=["sliding_window"])
    assert model.config.n_embd == 32


def test_llama_rope_scaling_it_does_not_build_is_refused(saved, tmp_path):
    _, path = saved("llama")
    target = tmp_path / "llama"
    shutil.copytree(path, target)
    edit_config(target, rope_parameters={"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0})
    with pytest.raises(ConfigError, match=r"field 'rope_parameters' is .*llama3.*only the default rotary"):
        models.Llama.from_pretrained(target)


def test_unreadable_or_absent_config(gpt2_dir, tmp_path):
    (gpt2_dir / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not a readable JSON file"):
        models.GPT2.from_pretrained(gpt2_dir)
    with pytest.raises(ConfigError, match="not a readable JSON object"):
        models.from_pretrained(gpt2_dir)
    with pytest.raises(ConfigError, match="no config.json"):
        models.from_pretrained(tmp_path)
    (gpt2_dir / "config.json").write_text(json.dumps({"model_type": "t5"}))
    with pytest.raises(ConfigError, match="model_type 't5' is not one tritonflow builds"):
        models.from_pretrained(gpt2_dir)


def test_dtype_argument_is_checked(gpt2_dir):
    with pytest.raises(ConfigError, match="dtype must be a floating point dtype"):
        models.GPT2.from_pretrained(gpt2_dir, dtype="int32")


# ---------------------------------------------------------------- tensors that do not fit


def _drop(name):
    return lambda tensors: tensors.pop(name)


def _add(name, value):
    return lambda tensors: tensors.__setitem__(name, value)


def _replace(name, value):
    return lambda tensors: tensors.__setitem__(name, value)


@pytest.mark.parametrize("edit, pattern", [
    (_drop("transformer.h.1.ln_2.weight"), r"missing tensor 'transformer.h.1.ln_2.weight', which the GPT2 model needs"),
    (_add("transformer.h.0.attn.rotary.weight", np.zeros(3, np.float32)),
     r"unexpected tensor 'transformer.h.0.attn.rotary.weight' \(.*model.safetensors\).*strict=False"),
    (_replace("transformer.h.1.mlp.c_fc.weight", np.zeros((128, 32), np.float32)),
     r"model.safetensors: tensor 'transformer.h.1.mlp.c_fc.weight' has shape \(128, 32\), but the model's "
     r"'blocks.1.mlp.fc.weight' needs \(32, 128\) \(stored transposed"),
    (_replace("transformer.ln_f.bias", np.zeros(32, np.int32)),
     r"tensor 'transformer.ln_f.bias' is int32, but the model's 'final_norm.bias' is a floating point"),
    (_add("h.0.ln_1.weight", np.ones(32, np.float32)),
     r"tensors '(transformer\.)?h\.0\.ln_1\.weight' and '(transformer\.)?h\.0\.ln_1\.weight' both hold "
     r"the model's 'blocks.0.attn_norm.weight'"),
])
def test_tensor_errors_name_the_file_and_tensor_and_change_nothing(gpt2_dir, edit, pattern):
    model = fresh_model(gpt2_dir)
    before = snapshot(model)
    rewrite_tensors(gpt2_dir, edit)
    with pytest.raises(CheckpointError, match=pattern) as info:
        model.load_checkpoint(gpt2_dir)
    assert str(gpt2_dir) in str(info.value)
    assert_unchanged(model, before)
    with pytest.raises(CheckpointError, match=pattern):
        models.GPT2.from_pretrained(gpt2_dir)


def test_strict_false_skips_a_task_head_and_reports_it(gpt2_dir):
    rewrite_tensors(gpt2_dir, _add("score.weight", np.zeros((2, 32), np.float32)))
    model = fresh_model(gpt2_dir)
    assert model.load_checkpoint(gpt2_dir, strict=False) == ["score.weight"]


# ---------------------------------------------------------------- corrupt and truncated files


def _bytes(directory) -> bytes:
    return (directory / WEIGHTS).read_bytes()


def _header_length(data: bytes) -> int:
    return int.from_bytes(data[:8], "little")


@pytest.mark.parametrize("damage, pattern", [
    (lambda d: d[: len(d) - 100], r"truncated: tensor '[\w.]+' ends at byte \d+ but the file has only \d+ bytes"),
    (lambda d: d[:5], r"too short to hold the header length"),
    (lambda d: b"", r"too short to hold the header length"),
    (lambda d: d[:20], r"the header claims \d+ bytes but the file has 20 bytes"),
    (lambda d: d[:8] + b"\xff" * 10 + d[18:], r"corrupt header, not valid JSON"),
    (lambda d: (10 ** 12).to_bytes(8, "little") + d[8:], r"the header claims 1000000000000 bytes"),
    (lambda d: d.replace(b'"F32"', b'"F8_X"', 1), r"has dtype 'F8_X', which tritonflow cannot load"),
    (lambda d: d.replace(b'"data_offsets":[0,', b'"data_offsets":[4,', 1), r"needs \d+ bytes but its byte range"),
])
def test_damaged_files_name_the_file_and_change_nothing(gpt2_dir, damage, pattern):
    model = fresh_model(gpt2_dir)
    before = snapshot(model)
    (gpt2_dir / WEIGHTS).write_bytes(damage(_bytes(gpt2_dir)))
    with pytest.raises(CheckpointError, match=pattern) as info:
        model.load_checkpoint(gpt2_dir)
    assert str(gpt2_dir / WEIGHTS) in str(info.value)
    assert_unchanged(model, before)


def test_overlapping_byte_ranges_are_corrupt(gpt2_dir):
    data = _bytes(gpt2_dir)
    n = _header_length(data)
    header = json.loads(data[8:8 + n])
    names = [k for k in header if k != "__metadata__"]
    a, b = names[0], names[1]
    size_a = header[a]["data_offsets"][1] - header[a]["data_offsets"][0]
    size_b = header[b]["data_offsets"][1] - header[b]["data_offsets"][0]
    start = header[a]["data_offsets"][0]
    header[b]["data_offsets"] = [start + size_a // 2, start + size_a // 2 + size_b]  # half inside a
    raw = json.dumps(header).encode()  # offsets count from the end of the header: its length may change
    (gpt2_dir / WEIGHTS).write_bytes(len(raw).to_bytes(8, "little") + raw + data[8 + n:])
    with pytest.raises(CheckpointError, match="overlap"):
        checkpoint_tensors(str(gpt2_dir))


def test_a_file_that_shrinks_after_its_header_was_read_fails_before_writing(gpt2_dir, monkeypatch):
    """The data is read in full before anything is copied: a read that fails on the last tensor
    leaves every parameter as it was."""
    from tritonflow.models import loading
    infos = checkpoint_tensors(str(gpt2_dir))
    model = fresh_model(gpt2_dir)
    before = snapshot(model)
    data = _bytes(gpt2_dir)
    last = max(infos.values(), key=lambda info: info.offset)
    (gpt2_dir / WEIGHTS).write_bytes(data[: last.offset + 4])
    monkeypatch.setattr(loading, "checkpoint_tensors", lambda directory: infos)
    with pytest.raises(CheckpointError, match=rf"tensor '{last.name}' is truncated"):
        model.load_checkpoint(gpt2_dir)
    assert_unchanged(model, before)


# ---------------------------------------------------------------- directories


def test_sharded_index_errors(saved, tmp_path):
    _, path = saved("llama", shard="20KB")
    target = tmp_path / "sharded"
    shutil.copytree(path, target)
    index_path = target / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    name, shard = next(iter(index["weight_map"].items()))
    os.rename(target / shard, target / "moved.safetensors")
    with pytest.raises(CheckpointError, match=rf"tensor '{name}' is in shard '{shard}', which is missing"):
        models.Llama.from_pretrained(target)
    os.rename(target / "moved.safetensors", target / shard)
    other = next(s for s in index["weight_map"].values() if s != shard)
    index["weight_map"][name] = other
    index_path.write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=rf"tensor '{name}' should be in .*{other} but that shard does not"):
        models.Llama.from_pretrained(target)
    index_path.write_text("[]")
    with pytest.raises(CheckpointError, match="not a readable shard index"):
        models.Llama.from_pretrained(target)


def test_pickle_only_or_empty_directories(gpt2_dir, tmp_path):
    os.remove(gpt2_dir / WEIGHTS)
    with pytest.raises(CheckpointError, match="neither model.safetensors nor model.safetensors.index.json"):
        models.GPT2.from_pretrained(gpt2_dir)
    (gpt2_dir / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(CheckpointError, match="pytorch_model.bin, a pickle file .* convert it"):
        models.GPT2.from_pretrained(gpt2_dir)
    with pytest.raises(CheckpointError, match="no such checkpoint directory"):
        checkpoint_tensors(str(tmp_path / "absent"))


def test_random_initialisation_is_restored_after_loading(gpt2_dir):
    """from_pretrained skips the random fills while it builds the model; they work again after,
    also when building failed."""
    import tritonflow as tf
    with pytest.raises(TypeError):
        models.GPT2.from_pretrained(gpt2_dir, no_such_argument=1)
    models.GPT2.from_pretrained(gpt2_dir)
    tf.manual_seed(0)
    weight = tf.nn.Linear(8, 8).weight.detach().numpy()
    assert np.abs(weight).max() > 0 and len(np.unique(weight)) == 64


def test_name_map_rules_map_layer_numbers_and_reject_malformed_lines():
    from tritonflow.models.loading import NameMap
    names = NameMap("""
        blocks.{n}.attn.qkv.{w} -> transformer.h.{n}.attn.c_attn.{w}
        lm_head.weight          -> lm_head.weight
    """, backbone_prefix="transformer.")
    assert names.hf_name("blocks.11.attn.qkv.bias") == "transformer.h.11.attn.c_attn.bias"
    assert names.spellings("blocks.0.attn.qkv.weight") == ("transformer.h.0.attn.c_attn.weight",
                                                            "h.0.attn.c_attn.weight")
    with pytest.raises(KeyError, match="blocksX0"):
        names.hf_name("blocksX0.attn.qkv.bias")          # dots are literal, {n} only digits
    with pytest.raises(KeyError, match="blocks.a"):
        names.hf_name("blocks.a.attn.qkv.bias")
    with pytest.raises(ValueError, match="has no '->'"):
        NameMap("wte.weight transformer.wte.weight", backbone_prefix="transformer.")
