"""Lowering stage: launch heuristics — block sizes, num_warps, persistent or looped reductions.

Every choice is made for a `Target` (tritonflow/target.py), never from the environment. On a CUDA
target the numbers follow DESIGN.md's measured table (H200, Triton 3.6):
- pointwise: any BLOCK 512-4096 with 4-8 warps reaches the copy ceiling -> 1024, 4 warps;
- persistent row reductions: the whole row in registers, one row per program for long rows
  (softmax 4096 f32: BLOCK 4096, 8 warps; layer_norm 4096 bf16: 8 warps, 16 is worse);
- looped reductions (rows too long for registers): BLOCK 4096-8192 with 4 warps
  (cross-entropy 32000 bf16: 8192, 4 warps; 1024-wide or 16 warps ran at 20%);
- column reductions (the reduced dim is not the innermost one): a program takes a few dozen
  columns side by side so loads stay coalesced, so it can only hold a short stretch of rows; a long
  column (layer_norm's weight gradient sums 8192 rows) is looped, never held whole: 64 columns x
  8192 rows in registers spilled 16 KB per thread and needed 512 KB of shared memory on sm_80.
On the interpreter target every program instance costs about a millisecond, so blocks are as
large as the problem allows there.
"""
from __future__ import annotations

from tritonflow.target import Target

PERSISTENT_MAX = 8192        # longest row kept whole in registers (elements)
# Longest row a sort kernel holds in one block. Compiled for sm_90 (Triton 3.6, ptxas), the
# bitonic network over (int32 key, position) pairs needs 121 registers and no stack at 4096
# elements with 8 warps (33 s to compile on a 2-core machine; 8192 with 16 warps: 124, 45 s;
# 16384 spills). Longer rows of a static length are sorted in chunks of SORT_CHUNK (one program
# each: 56 registers, 9 s) and then merged pairwise, each merge kernel doubling the sorted runs
# (64-72 registers, no stack; kernels/codegen/sort.py).
SORT_MAX = 4096
SORT_CHUNK = 1024
MERGE_BLOCK = 1024
LOOPED_BLOCK = {2: 8192, 1: 8192, 4: 4096, 8: 2048}
COLUMN_BLOCK = 64            # columns per program of a column reduction (coalesced loads)
COLUMN_PERSISTENT_ELEMENTS = 8192  # a column reduction holds at most this many elements per program
MIN_COLUMN_BLOCK = 16
COLUMN_STEP_ELEMENTS = 4096  # elements a looped column reduction loads per step (64 columns x 64 rows)
# A persistent reduction holds a block of every buffer it loads. Past READS_AT_FULL_BLOCK loads a
# program loads at most LOADED_ELEMENTS elements in all: the position-embedding gradient of a
# 2-layer GPT (bf16, B8 T1024 C768) sums over the batch an inlined chain of five layer_norm
# backwards, 43 loads; at 512 columns x 8 rows per program it spilled 2.6 KB of stack per thread on
# sm_90 and sm_80, at 256 x 8 still 1 KB (255 registers); at 64 x 8, 128 registers and no stack.
READS_AT_FULL_BLOCK = 16
LOADED_ELEMENTS = 32768


def next_pow2(n: int) -> int:
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()


def pointwise_config(numel: int, target: Target) -> dict:
    if target.interpreted:
        return {"XBLOCK": min(next_pow2(max(numel, 1)), 4096), "num_warps": 4}
    return {"XBLOCK": 1024 if numel >= 1024 else max(next_pow2(numel), 128), "num_warps": 4}


def use_persistent(rnumel_static, rows_contiguous: bool, target: Target) -> bool:
    """Persistent when the reduced length is known at compile time and the whole of it fits a
    program's registers; a column reduction fits only when its columns-wide block does too."""
    if rnumel_static is None or next_pow2(rnumel_static) > PERSISTENT_MAX:
        return False
    if rows_contiguous or target.interpreted:
        return True
    return next_pow2(rnumel_static) * COLUMN_BLOCK <= COLUMN_PERSISTENT_ELEMENTS


def reduction_config(xnumel: int, rnumel: int, itemsize: int, persistent: bool, rows_contiguous: bool,
                     target: Target, loads: int = 1) -> dict:
    """Block sizes for a reduction kernel that emits `loads` loads of buffers.

    `rows_contiguous` is False when the reduced dim is not the innermost one in memory
    (column sums): then programs take many columns side by side so loads stay coalesced.
    """
    interpreted = target.interpreted
    if persistent:
        rblock = next_pow2(max(rnumel, 1))
        elements = 16384 if interpreted else 4096
        if not interpreted and loads > READS_AT_FULL_BLOCK:
            elements = max(rblock, next_pow2(LOADED_ELEMENTS // loads + 1) // 2)
        xblock = max(1, min(elements // rblock, next_pow2(max(xnumel, 1))))
        if not rows_contiguous and not interpreted:
            xblock = max(xblock, min(COLUMN_BLOCK, next_pow2(max(xnumel, 1))))
        elements = xblock * rblock
        warps = 4 if elements <= 2048 else (8 if elements <= 8192 else 16)
        return {"XBLOCK": xblock, "RBLOCK": rblock, "num_warps": warps}
    if not rows_contiguous:
        xblock = min(COLUMN_BLOCK, next_pow2(max(xnumel, 1)))
        if interpreted:
            return {"XBLOCK": xblock, "RBLOCK": min(next_pow2(max(rnumel, 1)), 1024), "num_warps": 8}
        # Fewer column blocks than SMs leave the chip idle (1024 columns in blocks of 64: 16
        # programs for 132 SMs): narrower blocks, down to 16 columns (64 bytes of float32 per row),
        # and proportionally more rows per step.
        while xblock > MIN_COLUMN_BLOCK and -(-xnumel // xblock) < target.sm_count:
            xblock //= 2
        return {"XBLOCK": xblock, "RBLOCK": COLUMN_STEP_ELEMENTS // xblock, "num_warps": 8}
    rblock = min(LOOPED_BLOCK.get(itemsize, 4096), next_pow2(max(rnumel, 1)))
    if interpreted:
        rblock = min(rblock, 1024)
    return {"XBLOCK": 1, "RBLOCK": rblock, "num_warps": 4}


def sort_too_long(op: str, length) -> str:
    return (f"{op}: the triton backend sorts a row of a dynamic length in one block of at most {SORT_MAX} "
            f"elements, and this row has {length}; longer rows are sorted when their length is static (jit "
            f"without dynamic=True), or on the numpy backend")


def sort_config(xnumel: int, rnumel: int, target: Target, chunk: int | None = None) -> dict:
    """Whole rows (or `chunk`s of a long row) in one block of a power-of-two width; short rows share
    a program."""
    if chunk is not None:
        xblock = max(1, min(next_pow2(max(xnumel, 1)), 4096 // chunk)) if target.interpreted else 1
        return {"XBLOCK": xblock, "RBLOCK": chunk, "LOG_N": chunk.bit_length() - 1,
                "num_warps": 4 if chunk <= 1024 else 8}
    rblock = max(2, next_pow2(max(rnumel, 1)))
    elements = 4096 if target.interpreted else 1024
    xblock = max(1, min(elements // rblock, next_pow2(max(xnumel, 1))))
    elements = xblock * rblock
    warps = 4 if elements <= 1024 else (8 if elements <= 4096 else 16)
    return {"XBLOCK": xblock, "RBLOCK": rblock, "LOG_N": rblock.bit_length() - 1, "num_warps": warps}


def merge_config(xnumel: int, rnumel: int, target: Target) -> dict:
    """A merge pass of a long sort: every element of a row finds its place independently."""
    block = min(next_pow2(max(rnumel, 1)), 4096 if target.interpreted else MERGE_BLOCK)
    xblock = max(1, min(next_pow2(max(xnumel, 1)), 4096 // block)) if target.interpreted else 1
    return {"XBLOCK": xblock, "RBLOCK": block, "num_warps": 4}


def scan_config(xnumel: int, rnumel: int, target: Target) -> dict:
    rblock = min(next_pow2(max(rnumel, 1)), 1024)
    return {"XBLOCK": 1, "RBLOCK": rblock, "num_warps": 4}


def autotune_candidates(kind: str, base: dict, persistent: bool) -> list:
    """A few configurations around the heuristic for mode="max-autotune" (pointwise, reductions)."""
    out = [dict(base)]
    if kind == "pointwise":
        for block, warps in ((512, 4), (2048, 8), (4096, 8)):
            out.append({"XBLOCK": block, "num_warps": warps})
    elif kind == "reduction":
        for warps in (4, 8, 16):
            if warps != base["num_warps"]:
                out.append(dict(base, num_warps=warps))
        if not persistent:
            for rblock in (1024, 2048, 8192):
                if rblock != base["RBLOCK"]:
                    out.append(dict(base, RBLOCK=rblock))
        elif base["XBLOCK"] > 1:
            out.append(dict(base, XBLOCK=base["XBLOCK"] // 2))
    # A persistent kernel needs its whole row in one block: never a smaller RBLOCK than the base.
    return [c for c in out if not persistent or c.get("RBLOCK", 0) >= base.get("RBLOCK", 0)]
