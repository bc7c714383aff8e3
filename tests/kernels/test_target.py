"""Targets (tritonflow/target.py): named machines, the default, and lowering choices made from them.

The configurations a CUDA target gets must be visible on a machine without a GPU: lowering for
"sm_90" inside this interpreter process yields the GPU code and launch configurations, and never
reads TRITON_INTERPRET for them.
"""
import pytest

import tritonflow as tf
from kernel_helpers import Builder
from tritonflow import dtypes as D
from tritonflow import kernels
from tritonflow.kernels import heuristics
from tritonflow.kernels.runtime.launch import launch_setup
from tritonflow.kernels.templates import configs
from tritonflow.target import INTERPRETER, SM_80, SM_89, SM_90, default_target, get_target, named_target


def test_named_targets_and_aliases():
    assert named_target("sm_90") is SM_90
    assert named_target("SM90") is SM_90 and named_target("h100") is SM_90 and named_target("H200") is SM_90
    assert named_target("a100") is SM_80 and named_target("sm_89") is SM_89
    assert SM_90.arch == 90 and SM_80.arch == 80 and SM_89.arch == 89
    assert SM_90.shared_memory == 232448 and SM_80.shared_memory == 166912 and SM_89.shared_memory == 101376
    assert SM_90.sm_count == 132 and SM_80.sm_count == 108
    # DESIGN.md's H200 anchors: 4221 GB/s copy, 700 TFLOP/s bf16 matmul, tf32 367.
    assert SM_90.memory_bandwidth == 4.221e12 and SM_90.matmul_peak("bfloat16") == 700e12
    assert SM_90.matmul_peak("float32", tf32=True) == 367e12 and SM_90.matmul_peak("float32") == 51e12
    assert INTERPRETER.interpreted and not SM_90.interpreted


def test_unknown_target_is_a_clear_error():
    with pytest.raises(tf.UnsupportedError, match=r"unknown target 'sm_75'.*sm_90"):
        get_target("sm_75")
    with pytest.raises(tf.UnsupportedError, match="target must be a name"):
        get_target(90)


def test_default_target_follows_the_interpreter_switch():
    # tests/conftest.py switched Triton's interpreter on (no GPU here).
    assert default_target() is INTERPRETER
    assert kernels.lower(_softmax_graph((8, 16))).target is INTERPRETER


def _softmax_graph(shape, dtype=D.float32):
    b = Builder("softmax")
    x = b.input("x", shape, dtype)
    m = b("reduce_max", x, dims=(1,), keepdim=True)
    e = b("exp", b("sub", x, b("expand", m, shape=shape)))
    s = b("reduce_sum", e, dims=(1,), keepdim=True)
    return b.finish(b("div", e, b("expand", s, shape=shape)))


def test_pointwise_and_reduction_configs_come_from_the_target():
    n = 1 << 20
    assert heuristics.pointwise_config(n, INTERPRETER) == {"XBLOCK": 4096, "num_warps": 4}
    assert heuristics.pointwise_config(n, SM_90) == {"XBLOCK": 1024, "num_warps": 4}
    lowered = kernels.lower(_softmax_graph((16384, 4096)), target="sm_90")
    (kernel,) = lowered.compiled_kernels
    config, grid = launch_setup(kernel, {}, lowered.target).heuristic()
    # DESIGN.md's measured softmax: BLOCK 4096, one row per program, 8 warps.
    assert config == {"XBLOCK": 1, "RBLOCK": 4096, "num_warps": 8} and grid == (16384,)


def test_long_column_reductions_loop_on_gpus_but_stay_whole_in_the_interpreter():
    # layer_norm's weight gradient: a sum over 8192 rows of every column.
    assert heuristics.use_persistent(8192, rows_contiguous=False, target=INTERPRETER)
    assert not heuristics.use_persistent(8192, rows_contiguous=False, target=SM_90)
    assert heuristics.use_persistent(8192, rows_contiguous=True, target=SM_90)
    assert heuristics.use_persistent(64, rows_contiguous=False, target=SM_90)
    b = Builder("colsum")
    x = b.input("x", (8192, 4096), D.bfloat16)
    g = b.finish(b("reduce_sum", b("cast", x, dtype=D.float32), dims=(0,), keepdim=False))
    (kernel,) = kernels.lower(g, target="sm_90").compiled_kernels
    assert not kernel.generated.config["persistent"] and "for roffset" in kernel.generated.source
    (kernel,) = kernels.lower(g).compiled_kernels
    assert kernel.generated.config["persistent"]



def _batch_sum_of_inputs(count: int):
    """sum over the batch of x_0 + ... + x_{count-1} ((8, 1024, 768) bf16, as a GPT's position-
    embedding gradient sums its layers' contributions): one persistent column reduction."""
    b = Builder(f"sum_of_{count}")
    total = None
    for i in range(count):
        x = b("cast", b.input(f"x{i}", (8, 1024, 768), D.bfloat16), dtype=D.float32)
        total = x if total is None else b("add", total, x)
    (kernel,) = kernels.lower(b.finish(b("reduce_sum", total, dims=(0,), keepdim=False)),
                              target="sm_90").compiled_kernels
    config, _ = launch_setup(kernel, {}, SM_90).heuristic()
    return kernel, config


def test_a_reduction_reading_many_buffers_takes_a_smaller_block_on_gpus():
    kernel, few = _batch_sum_of_inputs(4)
    assert kernel.generated.config["persistent"] and len(kernel.generated.loads) == 4
    assert few == {"XBLOCK": 512, "RBLOCK": 8, "num_warps": 8}   # unchanged up to READS_AT_FULL_BLOCK loads
    kernel, many = _batch_sum_of_inputs(43)
    assert len(kernel.generated.loads) == 43
    # 43 loaded blocks of 512 x 8 spilled on sm_90 (the GPT training step's k72): 64 x 8 did not.
    assert many == {"XBLOCK": 64, "RBLOCK": 8, "num_warps": 4}
    assert many["XBLOCK"] * 8 * 43 <= heuristics.LOADED_ELEMENTS < many["XBLOCK"] * 2 * 8 * 43

def test_matmul_stages_fit_the_targets_shared_memory():
    tile = configs.matmul_config(8192, 8192, 8192, 1, "bfloat16", SM_90)
    assert (tile["BLOCK_M"], tile["BLOCK_N"], tile["BLOCK_K"], tile["num_stages"]) == (128, 256, 32, 4)
    want = 4 * (128 * 32 + 32 * 256) * 2     # four stages of an A and a B block, bf16
    assert configs.operand_shared_bytes(tile, "bfloat16") == want <= SM_90.shared_memory
    big_k = dict(tile, BLOCK_K=64)
    fitted = configs.fit_shared(big_k, "bfloat16", SM_89)
    assert fitted["num_stages"] * (128 * 64 + 64 * 256) * 2 <= SM_89.shared_memory < 4 * (128 * 64 + 64 * 256) * 2
    assert configs.matmul_config(8192, 8192, 8192, 1, "bfloat16", INTERPRETER)["BLOCK_M"] == 32


def test_bfloat16_dot_is_widened_only_for_the_interpreter():
    b = Builder("mm")
    x, w = b.input("x", (64, 64), D.bfloat16), b.input("w", (64, 64), D.bfloat16)
    g = b.finish(b("matmul", x, w))
    (gpu,) = kernels.lower(g, target="sm_90").compiled_kernels
    (interp,) = kernels.lower(g).compiled_kernels
    assert "acc = tl.dot(a, b, acc)" in gpu.generated.source
    assert "a.to(tl.float32)" in interp.generated.source and "a.to(tl.float32)" not in gpu.generated.source
    assert gpu.key != interp.key


def test_one_launch_setup_for_templates_and_generated_kernels():
    b = Builder("mm")
    x, w = b.input("x", (1000, 512), D.bfloat16), b.input("w", (512, 300), D.bfloat16)
    (kernel,) = kernels.lower(b.finish(b("matmul", x, w)), target="sm_90").compiled_kernels
    setup = launch_setup(kernel, {}, SM_90)
    config, grid = setup.heuristic()
    tiles = -(-1000 // config["BLOCK_M"]) * -(-300 // config["BLOCK_N"])
    assert grid == (tiles,)
    assert config["EVEN_K"] == (512 % config["BLOCK_K"] == 0) and config["INPUT_PRECISION"] == "ieee"
    assert setup.candidates()[0] == setup.base and setup.tuning_key() != ""
    # A persistent reduction's candidates keep the whole row in one block.
    candidates = heuristics.autotune_candidates("reduction", {"XBLOCK": 4, "RBLOCK": 1024, "num_warps": 8}, True)
    assert candidates and all(c["RBLOCK"] == 1024 for c in candidates)
