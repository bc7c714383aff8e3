"""The static cost model (kernels/cost_model.py) at full GPU sizes for sm_90, against numbers worked
out here from the shapes alone: what each function must read and write at least, and what its
kernels load by construction (a broadcast operand once per program, a matmul's operand panels)."""
import pytest

import tritonflow as tf
import tritonflow.nn.functional as F
from tritonflow import aot
from tritonflow.target import SM_90

S = tf.TensorSpec


def test_relu_mul_add_moves_exactly_its_minimum():
    n = 2 ** 26
    cost = aot.cost(lambda a, b, c: tf.relu(a * b + c), S((n,)), S((n,)), S((n,)), target="sm_90")
    minimum = 4 * n * 4                       # three float32 inputs read, one output written
    assert cost.minimum_bytes == minimum and cost.bytes == minimum
    # Memory-bound: the predicted time is the bytes at H200's measured copy bandwidth (4221 GB/s).
    assert cost.seconds == pytest.approx(minimum / 4.221e12)


def test_softmax_moves_exactly_its_minimum():
    rows, cols = 16384, 4096
    cost = aot.cost(lambda x: F.softmax(x, dim=-1), S((rows, cols)), target="sm_90")
    assert len(cost.kernels) == 1
    assert cost.bytes == cost.minimum_bytes == 2 * rows * cols * 4


def test_layer_norm_forward_moves_exactly_its_minimum():
    rows, cols = 8192, 4096
    cost = aot.cost(lambda x, w, b: F.layer_norm(x, (cols,), w, b), S((rows, cols), "bfloat16"),
                    S((cols,), "bfloat16"), S((cols,), "bfloat16"), target="sm_90")
    minimum = (2 * rows * cols + 2 * cols) * 2   # x read and y written, weight and bias read, bf16
    assert cost.minimum_bytes == minimum and cost.bytes == minimum
    # Every program (one row each) loads the whole weight: 8192 requests, served from L2.
    (kernel,) = cost.kernels
    weight = kernel.buffers["in_w"]
    assert weight.requested == rows * cols * 2 and weight.memory == cols * 2


def test_cross_entropy_forward_and_backward_within_a_fifth_of_the_minimum():
    rows, classes = 8192, 32000
    cost = aot.cost(lambda logits, target: F.cross_entropy(logits, target),
                    S((rows, classes), "bfloat16", requires_grad=True), S((rows,), "int64"), target="sm_90")
    logits = rows * classes * 2
    # A training step must read the logits in the forward, read them again in the backward and
    # write their gradient: three passes over a bf16 [8192, 32000] (the rest is per-row vectors).
    floor = 3 * logits
    assert floor <= cost.minimum_bytes < 1.01 * floor
    assert cost.bytes <= 1.2 * floor


def test_broadcast_operand_counts_once_per_program():
    rows, cols = 4096, 1024
    cost = aot.cost(lambda x, b: x + b, S((rows, cols)), S((cols,)), target="sm_90")
    (kernel,) = cost.kernels
    xblock = 1024                               # sm_90's pointwise block
    programs = rows * cols // xblock
    bias = kernel.buffers["in_b"]
    assert bias.requested == programs * min(xblock, cols) * 4
    assert bias.memory == cols * 4               # 4 KB stays in L2 for every program
    assert kernel.buffers["in_x"].requested == rows * cols * 4


def test_matmul_flops_and_compute_bound_time():
    n = 8192
    cost = aot.cost(lambda a, b: a @ b, S((n, n), "bfloat16"), S((n, n), "bfloat16"), target="sm_90")
    (kernel,) = cost.kernels
    assert kernel.dot_flops == 2 * n ** 3
    # Compute-bound at the measured 700 TFLOP/s bf16 (DESIGN.md's anchor).
    assert cost.seconds == pytest.approx(2 * n ** 3 / SM_90.matmul_peak("bfloat16"))
    # Each 128x256 program reads a 128 x 8192 panel of A and an 8192 x 256 panel of B.
    programs = (n // 128) * (n // 256)
    a = kernel.buffers["in_a"]
    assert a.requested == programs * 128 * n * 2 and n * n * 2 <= a.memory < a.requested


def test_a_one_program_kernel_is_not_predicted_at_full_bandwidth():
    n = 1 << 20
    cost = aot.cost(lambda x: x.sum(), S((n,)), target="sm_90")
    (kernel,) = cost.kernels
    assert kernel.programs == 1
    assert kernel.seconds == pytest.approx(n * 4 / 4.221e12 * SM_90.sm_count, rel=1e-3)
