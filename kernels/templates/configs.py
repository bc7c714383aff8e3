"""Lowering stage: tile configurations for the template kernels — heuristics and autotuning memory.

Heuristic choices follow DESIGN.md's measured table (H200, Triton 3.6, plain tiled matmul):
float16/bfloat16 at 128x256x32, 8 warps, 4 stages reached 84-100% of cuBLAS at 4096^3 and
8192^3; 64x128 or 128x64 tiles lost 35-45%. Smaller problems take smaller tiles so the grid
still fills the GPU. float32 (tf32 or IEEE) has not been measured well yet; autotuning
(mode="max-autotune") tries the candidates below and remembers the winner on disk, keyed by
the template, dtype, a shape class (each size rounded up to a power of two) and the device.

Every choice is made for a `Target` (tritonflow/target.py). On the interpreter target every
program instance costs about a millisecond, so tiles there are small enough to exercise the masks
and grouping logic yet few enough to stay quick. On a CUDA target a tile's pipeline stages are
cut until its operand buffers fit the target's shared memory (an L4 has 99 KB, an H100 227 KB).
"""
from __future__ import annotations

import json

from tritonflow.kernels import heuristics
from tritonflow.target import Target

FIELDS = ("BLOCK_M", "BLOCK_N", "BLOCK_K", "num_warps", "num_stages")


def _tile(bm: int, bn: int, bk: int, warps: int, stages: int) -> dict:
    return dict(zip(FIELDS, (bm, bn, bk, warps, stages)))


def _pow2(n: int) -> int:
    return heuristics.next_pow2(max(int(n), 1))


ITEMSIZE = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8, "int8": 1, "int32": 4, "int64": 8}


def operand_shared_bytes(tile: dict, dtype: str) -> int:
    """Shared memory the software pipeline keeps for a tile: one A and one B block per stage."""
    block = tile["BLOCK_M"] * tile["BLOCK_K"] + tile["BLOCK_K"] * tile["BLOCK_N"]
    return tile["num_stages"] * block * ITEMSIZE.get(dtype, 4)


def fit_shared(tile: dict, dtype: str, target: Target) -> dict:
    """`tile` with its pipeline stages cut until the operand blocks fit the target's shared memory."""
    while tile["num_stages"] > 1 and operand_shared_bytes(tile, dtype) > target.shared_memory:
        tile = dict(tile, num_stages=tile["num_stages"] - 1)
    return tile


# Epilogue sizes (elementwise IR nodes fused after the K loop) past which a tile's accumulator plus
# the epilogue's temporaries no longer fit 255 registers per thread. Measured with the AOT check
# (sm_90 and sm_80, bf16): bias + tanh-GELU (about 11 nodes) spilled 40 bytes at 128x256 / 8 warps
# and none at 128x128; the GELU backward (about 25 nodes, one more loaded tile) spilled 1864 bytes at
# 128x256, 304 at 128x128 and none at 64x128 / 8 warps. Autotuning still tries the larger tiles.
LIGHT_EPILOGUE = 4
HEAVY_EPILOGUE = 16


def matmul_config(m: int, n: int, k: int, batch: int, dtype: str, target: Target, epilogue: int = 0) -> dict:
    """The heuristic tile for one matmul call; `epilogue`: elementwise nodes fused after the K loop."""
    if target.interpreted:
        # Small tiles: several programs per test problem, so tails and grouping are exercised.
        return dict(_tile(32, 32, 32, 4, 1), GROUP_M=2)
    tile = _gpu_tile(m, n, batch, dtype)
    if tile["BLOCK_M"] * tile["BLOCK_N"] > 64 * 128 and epilogue >= HEAVY_EPILOGUE:
        tile = _tile(64, 128, 32, 8, 4)
    elif tile["BLOCK_M"] * tile["BLOCK_N"] > 128 * 128 and epilogue >= LIGHT_EPILOGUE:
        tile = _tile(128, 128, 32, 8, 4)
    return fit_shared(dict(tile, GROUP_M=8), dtype, target)


def _gpu_tile(m: int, n: int, batch: int, dtype: str) -> dict:
    if dtype in ("float64", "int8", "int32", "int64"):
        return _tile(32, 32, 8, 4, 2)
    big = dtype in ("float16", "bfloat16")
    tiles_big = -(-m // 128) * -(-n // 256) * batch
    if big and m >= 128 and n >= 256 and tiles_big >= 96:
        return _tile(128, 256, 32, 8, 4)
    if m >= 128 and n >= 128 and -(-m // 128) * -(-n // 128) * batch >= 96:
        return _tile(128, 128, 32, 8, 3)
    if m <= 32:
        return _tile(16 if m <= 16 else 32, 64, 64 if big else 32, 4, 4)
    return _tile(64, 64, 32, 4, 4)


def matmul_candidates(m: int, n: int, k: int, batch: int, dtype: str, target: Target, epilogue: int = 0) -> list:
    """A handful of tiles around the heuristic, for mode="max-autotune"."""
    base = matmul_config(m, n, k, batch, dtype, target, epilogue)
    if dtype in ("float64", "int8", "int32", "int64"):
        return [base, dict(_tile(64, 64, 8, 4, 2), GROUP_M=8), dict(_tile(16, 16, 16, 4, 2), GROUP_M=8)]
    tiles = [
        _tile(128, 256, 32, 8, 4), _tile(128, 256, 64, 8, 3), _tile(256, 128, 32, 8, 4),
        _tile(128, 128, 32, 4, 4), _tile(128, 128, 64, 8, 3), _tile(128, 64, 32, 4, 4),
        _tile(64, 128, 32, 4, 4), _tile(64, 64, 32, 4, 4),
    ]
    if dtype == "float32":
        # tf32 operands are twice as wide in shared memory: fewer stages, shallower K.
        tiles = [_tile(128, 256, 32, 8, 3), _tile(256, 128, 32, 8, 3), _tile(128, 128, 32, 8, 3),
                 _tile(128, 128, 32, 4, 3), _tile(128, 128, 16, 8, 4), _tile(128, 64, 32, 4, 4),
                 _tile(64, 128, 32, 4, 4), _tile(64, 64, 32, 4, 4)]
    out = [base]
    for tile in tiles:
        if tile["BLOCK_M"] > 2 * _pow2(m) or tile["BLOCK_N"] > 2 * _pow2(n):
            continue  # a tile much larger than the problem only adds masked work
        cand = fit_shared(dict(tile, GROUP_M=8), dtype, target)
        if cand not in out:
            out.append(cand)
    return out


def attention_config(q_len: int, k_len: int, head_dim: int, dtype: str, backward: bool, target: Target) -> dict:
    """Tiles for the fused attention kernels (head_dim is the padded power of two)."""
    if target.interpreted:
        return {"BLOCK_M": 16, "BLOCK_N": 16, "num_warps": 4, "num_stages": 1}
    if backward:
        if head_dim <= 64:
            # Without wgmma (before sm_90) the dot operands and accumulators live in registers:
            # the dk/dv kernel spilled at 4 warps on sm_80 (8 bytes), not at 8.
            warps = 4 if target.capability >= (9, 0) else 8
            return {"BLOCK_M": 64, "BLOCK_N": 64, "num_warps": warps, "num_stages": 2}
        return {"BLOCK_M": 64, "BLOCK_N": 32 if head_dim > 128 else 64, "num_warps": 8, "num_stages": 1}
    if head_dim <= 64:
        return {"BLOCK_M": 128, "BLOCK_N": 64, "num_warps": 4, "num_stages": 3}
    if head_dim <= 128:
        return {"BLOCK_M": 128, "BLOCK_N": 64, "num_warps": 8, "num_stages": 2}
    return {"BLOCK_M": 64, "BLOCK_N": 32, "num_warps": 4, "num_stages": 1}


def attention_candidates(q_len: int, k_len: int, head_dim: int, dtype: str, backward: bool,
                         target: Target) -> list:
    base = attention_config(q_len, k_len, head_dim, dtype, backward, target)
    out = [base]
    if backward:
        tiles = [(32, 64, 4, 2), (64, 64, 4, 2), (64, 64, 8, 2), (64, 128, 8, 2), (128, 64, 8, 2), (32, 32, 4, 1)]
    else:
        tiles = [(128, 64, 4, 3), (128, 64, 8, 3), (128, 128, 8, 3), (64, 64, 4, 3), (128, 32, 4, 4), (64, 32, 4, 2)]
    for bm, bn, warps, stages in tiles:
        if head_dim >= 256 and bm * bn > 64 * 64:
            continue  # does not fit shared memory
        cand = {"BLOCK_M": bm, "BLOCK_N": bn, "num_warps": warps, "num_stages": stages}
        if cand not in out:
            out.append(cand)
    return out


def shape_class(*sizes: int) -> tuple:
    """Sizes rounded up to powers of two: problems of one class share a tuned configuration."""
    return tuple(_pow2(s) for s in sizes)


def tuning_key(template: str, dtype: str, layout: str, target: Target, *sizes: int) -> str:
    from tritonflow.kernels import cache
    text = json.dumps({"template": template, "dtype": dtype, "layout": layout,
                       "class": shape_class(*sizes), "device": target.description}, sort_keys=True)
    return cache.make_key(text, target)
