"""tritonflow.models: reading safetensors weight files, single or sharded, with checked headers.

Framework stage (model loading). The format is an 8-byte little-endian header length, a JSON
header mapping each tensor name to its dtype, shape and byte range, then the raw bytes. The
header is validated in full before any data is read — every byte range inside the file, of the
size its shape and dtype need, no two overlapping — so a corrupt or truncated file is reported
with the file and the tensor it breaks, never half-read. Data is read with one `np.fromfile` per
tensor (little-endian; bfloat16 through ml_dtypes). A sharded checkpoint's
`model.safetensors.index.json` maps each tensor to its shard; every shard it names is opened and
checked the same way. Nothing here executes code from a file (pickle `.bin` checkpoints are
refused with a message saying how to convert them).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
import os
import struct

import ml_dtypes
import numpy as np

from tritonflow.models.errors import CheckpointError

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
PICKLE_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the limit the safetensors library itself enforces

_DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "BF16": np.dtype(ml_dtypes.bfloat16), "I64": np.dtype("<i8"), "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"), "I8": np.dtype("i1"), "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """Where one tensor lies: its file, dtype, shape and absolute byte offset."""

    name: str
    path: str
    dtype: np.dtype
    shape: tuple
    offset: int

    @property
    def is_floating_point(self) -> bool:
        return self.dtype.kind == "f" or self.dtype == _DTYPES["BF16"]

    def read(self) -> np.ndarray:
        count = int(np.prod(self.shape, dtype=np.int64))
        try:
            data = np.fromfile(self.path, dtype=self.dtype, count=count, offset=self.offset)
        except OSError as exc:
            raise CheckpointError(f"{self.path}: reading tensor {self.name!r} failed ({exc})") from exc
        if data.size != count:  # the file shrank after its header was checked
            raise CheckpointError(f"{self.path}: tensor {self.name!r} is truncated (read {data.size} of "
                                  f"{count} elements)")
        return data.reshape(self.shape)


def _fail(path: str, message: str):
    raise CheckpointError(f"{path}: {message}")


def read_header(path: str) -> dict[str, TensorInfo]:
    """Every tensor of one safetensors file, its header checked against the file's size."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                _fail(path, f"not a safetensors file: {size} bytes, too short to hold the header length "
                            f"(the file is truncated or empty)")
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len > MAX_HEADER_BYTES or 8 + header_len > size:
                _fail(path, f"corrupt or truncated: the header claims {header_len} bytes but the file has "
                            f"{size} bytes in all")
            raw = f.read(header_len)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the file ({exc})") from exc
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: corrupt header, not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        _fail(path, "corrupt header: expected a JSON object of tensors")
    data_start = 8 + header_len
    infos = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        infos[name] = _tensor_info(path, name, entry, data_start, size)
    _check_no_overlap(path, infos, data_start)
    return infos


def _tensor_info(path: str, name: str, entry, data_start: int, size: int) -> TensorInfo:
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
        _fail(path, f"corrupt header entry for tensor {name!r}: expected dtype, shape and data_offsets, "
                    f"got {entry!r}")
    dtype = _DTYPES.get(entry["dtype"])
    if dtype is None:
        _fail(path, f"tensor {name!r} has dtype {entry['dtype']!r}, which tritonflow cannot load "
                    f"(supported: {', '.join(_DTYPES)})")
    shape, offsets = entry["shape"], entry["data_offsets"]
    if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
        _fail(path, f"corrupt header: tensor {name!r} has shape {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)
            and 0 <= offsets[0] <= offsets[1]):
        _fail(path, f"corrupt header: tensor {name!r} has byte range {offsets!r}")
    begin, end = offsets
    need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if end - begin != need:
        _fail(path, f"corrupt header: tensor {name!r} ({entry['dtype']}, shape {tuple(shape)}) needs {need} "
                    f"bytes but its byte range [{begin}, {end}) holds {end - begin}")
    if data_start + end > size:
        _fail(path, f"truncated: tensor {name!r} ends at byte {data_start + end} but the file has only "
                    f"{size} bytes")
    return TensorInfo(name, path, dtype, tuple(shape), data_start + begin)


def _check_no_overlap(path: str, infos: dict, data_start: int) -> None:
    spans = sorted((info.offset, info.offset + info.dtype.itemsize * int(np.prod(info.shape, dtype=np.int64)),
                    name) for name, info in infos.items())
    for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
        if b1 < e0 and e1 > b1:
            _fail(path, f"corrupt header: the bytes of tensors {n0!r} and {n1!r} overlap "
                        f"([{b0 - data_start}, {e0 - data_start}) and [{b1 - data_start}, {e1 - data_start}))")


def checkpoint_tensors(directory: str) -> dict[str, TensorInfo]:
    """All tensors of a Hugging Face checkpoint directory: model.safetensors, or the shards its
    model.safetensors.index.json lists. Headers are checked; no tensor data is read yet."""
    single = os.path.join(directory, SINGLE_FILE)
    index = os.path.join(directory, INDEX_FILE)
    if os.path.isfile(single):
        return read_header(single)
    if os.path.isfile(index):
        return _sharded_tensors(directory, index)
    if not os.path.isdir(directory):
        raise CheckpointError(f"{directory}: no such checkpoint directory")
    pickled = [name for name in PICKLE_FILES if os.path.isfile(os.path.join(directory, name))]
    if pickled:
        raise CheckpointError(f"{directory}: has only {pickled[0]}, a pickle file (loading one can run arbitrary "
                              f"code); convert it to {SINGLE_FILE} first, e.g. with transformers: "
                              f"AutoModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)")
    raise CheckpointError(f"{directory}: neither {SINGLE_FILE} nor {INDEX_FILE} is there")


def _sharded_tensors(directory: str, index: str) -> dict[str, TensorInfo]:
    try:
        with open(index, encoding="utf-8") as f:
            weight_map = json.load(f)["weight_map"]
        if not isinstance(weight_map, dict):
            raise TypeError("weight_map is not an object")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{index}: not a readable shard index ({type(exc).__name__}: {exc})") from None
    shards: dict[str, dict] = {}
    out = {}
    for name, shard in weight_map.items():
        shard_path = os.path.join(directory, str(shard))
        if os.path.dirname(os.path.normpath(str(shard))) or not str(shard).endswith(".safetensors"):
            raise CheckpointError(f"{index}: tensor {name!r} names shard {shard!r}, which is not a "
                                  f".safetensors file in the checkpoint directory")
        if shard not in shards:
            if not os.path.isfile(shard_path):
                raise CheckpointError(f"{index}: tensor {name!r} is in shard {shard!r}, which is missing")
            shards[shard] = read_header(shard_path)
        if name not in shards[shard]:
            raise CheckpointError(f"{index}: tensor {name!r} should be in {shard_path} but that shard does not "
                                  f"contain it")
        out[name] = shards[shard][name]
    for shard, infos in shards.items():
        for name in infos:
            if name not in weight_map:
                raise CheckpointError(f"{os.path.join(directory, shard)}: tensor {name!r} is not listed in "
                                      f"{INDEX_FILE}")
    return out
