"""Bad input, tested as a table: every user mistake raises a TritonflowError subclass whose message
names the op and points at the user's line (this file's name and the line of the offending call).

Each row is (id, callable, exception type, message regex). The callable is a lambda written on the
line the error must point at; when the mistake happens inside a jitted function, the line inside
that function counts too (the lines allowed are collected from the lambda and the functions it
names). A second table covers inputs that are legal but unusual (NaN, inf, empty, 0-d): no error,
values equal to NumPy's. Then "nothing left half-done": a failed compile caches nothing, a failed
in-place op changes nothing, a failed optimizer step changes no parameter.

Every row runs for real; the one skip is moving a tensor to CUDA, which is legal where a GPU is.
"""
from __future__ import annotations

import os
import re
import types

import numpy as np
import pytest

import tritonflow as tf
from tritonflow.errors import (AutogradError, DeviceError, DTypeError, ShapeError, TraceError,
                               TritonflowError, TritonflowIndexError, UnsupportedError)
from helpers import HAS_CUDA

F = tf.nn.functional
THIS_FILE = os.path.basename(__file__)

# ---------------------------------------------------------------- inputs shared by the rows

X23 = tf.from_numpy(np.arange(6, dtype=np.float32).reshape(2, 3))
X45 = tf.from_numpy(np.ones((4, 5), np.float32))
I3 = tf.tensor([0, 1, 2])
B3 = tf.tensor([True, False, True])
GLOBAL_BUFFER = tf.zeros(3)
ESCAPED: list = []


# ---------------------------------------------------------------- jitted functions the jit rows call

@tf.jit
def jit_add(a, b):
    return a + b


@tf.jit
def jit_matmul_self(a):
    return a @ a


@tf.jit
def jit_branch(a):
    if a.sum() > 0:
        return a
    return -a


@tf.jit
def jit_item(a):
    return a * a.sum().item()


@tf.jit
def jit_to_numpy(a):
    return a.numpy()


@tf.jit
def jit_int(a):
    return a * int(a[0, 0])


@tf.jit
def jit_mutate_global(a):
    GLOBAL_BUFFER.add_(a.sum())        # a write jit honours (written back after the call)...
    GLOBAL_BUFFER.resize_(7)           # ...and one it cannot: the graph's input has 3 elements
    return a


@tf.jit
def jit_setitem_global(a):
    GLOBAL_BUFFER.copy_(a)             # (2, 3) into (3,): no in-place op changes a shape
    return a


@tf.jit
def jit_escape(a):
    ESCAPED.append(a * 2)
    return a


@tf.jit
def jit_scale(a, s):
    return a * s


@tf.jit
def jit_softmax_bad_dim(a):
    return F.softmax(a, 4)


def use_escaped():
    jit_escape(X23)
    return ESCAPED[-1] + 1


def explain_matmul():
    return tf.explain(jit_matmul_self, X23)


def linear_module_mismatch():
    layer = tf.nn.Linear(4, 2)
    return layer(X23)


def sgd_negative_lr():
    layer = tf.nn.Linear(3, 2)
    return tf.optim.SGD(layer.parameters(), lr=-1.0)


def load_corrupt_safetensors(tmp=None):
    import tempfile
    path = os.path.join(tempfile.mkdtemp(), "corrupt.safetensors")
    with open(path, "wb") as f:
        f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    return tf.load(path)


def load_state_dict_wrong_shape():
    layer = tf.nn.Linear(3, 2)
    return layer.load_state_dict({"weight": tf.zeros((5, 5)), "bias": tf.zeros(2)})


# ---------------------------------------------------------------- the table

CASES = [
    # tensors and creation
    ("tensor_ragged", lambda: tf.tensor([[1, 2], [3]]), DTypeError, r"^tensor: cannot build"),
    ("tensor_string", lambda: tf.tensor("abc"), DTypeError, r"^tensor: NumPy dtype <U3"),
    ("tensor_complex_dtype", lambda: tf.zeros((2,), dtype="complex64"), DTypeError, r"unsupported dtype 'complex64'"),
    ("from_numpy_list", lambda: tf.from_numpy([1, 2]), DTypeError, r"^from_numpy: expected a numpy.ndarray"),
    ("from_numpy_complex", lambda: tf.from_numpy(np.ones(3, np.complex64)), DTypeError, r"^from_numpy: .*complex64"),
    ("zeros_negative_dim", lambda: tf.zeros((-1, 2)), ShapeError, r"^zeros: negative dimension -1"),
    ("ones_float_dim", lambda: tf.ones((1.5, 2)), ShapeError, r"^ones: shape entries must be integers"),
    ("full_int_with_inf", lambda: tf.full((2,), float("inf"), dtype=tf.int32), DTypeError, r"^full: .*int32.*inf"),
    ("arange_zero_step", lambda: tf.arange(0, 5, 0), ShapeError, r"^arange: step must be non-zero"),
    ("linspace_negative_steps", lambda: tf.linspace(0, 1, -1), ShapeError, r"^linspace: .*-1"),
    ("randint_empty_range", lambda: tf.randint(5, 2, (3,)), ShapeError, r"^randint: high \(2\)"),
    pytest.param("to_cuda_without_gpu", lambda: X23.to("cuda"), DeviceError, r"^to\('cuda'\): no CUDA device",
                 marks=pytest.mark.skipif(HAS_CUDA, reason="a GPU is present: moving to cuda is legal here")),
    ("to_unknown_device", lambda: X23.to("tpu"), DeviceError, r"^to: unknown device 'tpu'"),
    ("item_of_many", lambda: X23.item(), UnsupportedError, r"^item\(\): only one-element .*\(2, 3\)"),
    ("bool_of_many", lambda: bool(X23), UnsupportedError, r"^bool\(\): .* 6 elements is ambiguous"),
    ("len_of_0d", lambda: len(tf.tensor(1.0)), DTypeError, r"^len\(\): .*0-d"),
    ("float_tensor_as_index", lambda: [1, 2][tf.tensor(1.0)], DTypeError, r"^__index__: only integer .*float32"),
    ("requires_grad_int", lambda: tf.ones((2,), dtype=tf.int32).requires_grad_(), AutogradError,
     r"^requires_grad_: only floating point .*int32"),
    ("backward_non_scalar", lambda: (tf.ones((2,), requires_grad=True) * 2).backward(), AutogradError,
     r"^backward: .*scalar.*\(2,\)"),
    ("numpy_requires_grad", lambda: tf.ones((2,), requires_grad=True).numpy(), AutogradError, r"^numpy\(\): "),
    ("inplace_on_grad_leaf", lambda: tf.ones((2,), requires_grad=True).add_(1.0), AutogradError,
     r"leaf tensor that requires grad .* in-place"),
    # elementwise ops
    ("add_broadcast", lambda: X23 + X45, ShapeError, r"^add: shapes \(2, 3\) and \(4, 5\) cannot be broadcast"),
    ("mul_broadcast", lambda: tf.mul(X23, tf.ones((4, 1, 5))), ShapeError, r"^mul: shapes .* cannot be broadcast"),
    ("where_broadcast", lambda: tf.where(B3, X23, X45), ShapeError, r"^where: shapes"),
    ("maximum_broadcast", lambda: tf.maximum(X23, tf.ones(4)), ShapeError, r"^maximum: shapes"),
    ("add_string", lambda: X23 + "a", DTypeError, r"^add: expected a tensor or a number, got str"),
    ("add_none", lambda: tf.add(X23, None), DTypeError, r"^add: .*NoneType"),
    ("exp_list", lambda: tf.exp([1.0, 2.0]), DTypeError, r"^exp: expected a tensor or a number, got list"),
    ("sub_bool", lambda: B3 - B3, DTypeError, r"^sub: bool operands"),
    ("neg_bool", lambda: -B3, DTypeError, r"^neg: bool tensors"),
    ("remainder_bool", lambda: B3 % B3, DTypeError, r"^remainder: bool operands"),
    ("bitwise_and_float", lambda: X23 & X23, DTypeError, r"^bitwise_and \(&\): only bool .*float32"),
    ("clamp_without_bounds", lambda: tf.clamp(X23), DTypeError, r"^clamp: at least one of min and max"),
    # matmul
    ("matmul_inner_dims", lambda: X23 @ X45, ShapeError, r"^matmul: inner dimensions differ: \(2, 3\) @ \(4, 5\)"),
    ("matmul_vector_inner", lambda: X23 @ tf.ones(4), ShapeError, r"^matmul: inner dimensions differ"),
    ("matmul_0d", lambda: tf.matmul(tf.tensor(1.0), X23), ShapeError, r"^matmul: both operands need at least 1 dim"),
    ("matmul_bool", lambda: tf.matmul(tf.ones((2, 2), dtype=tf.bool), tf.ones((2, 2), dtype=tf.bool)),
     DTypeError, r"^matmul: bool"),
    ("matmul_batch_broadcast", lambda: tf.ones((2, 3, 4)) @ tf.ones((5, 4, 2)), ShapeError,
     r"^matmul: shapes .* cannot be broadcast"),
    ("mm_3d", lambda: tf.mm(tf.ones((2, 2, 2)), X23), ShapeError, r"^mm: expects 2-D operands"),
    ("bmm_2d", lambda: tf.bmm(X23, X23), ShapeError, r"^bmm: expects 3-D operands"),
    ("dot_2d", lambda: tf.dot(X23, X23), ShapeError, r"^dot: expects 1-D operands"),
    # reductions
    ("sum_dim_out_of_range", lambda: tf.sum(X23, 5), ShapeError, r"^sum: dim 5 is out of range .* \(expected -2\.\.1\)"),
    ("sum_dim_float", lambda: tf.sum(X23, 1.5), ShapeError, r"^sum: dim must be an int, got float"),
    ("mean_of_int", lambda: tf.mean(I3), DTypeError, r"^mean: .*int64 must be floating point"),
    ("amax_over_empty", lambda: tf.amax(tf.ones((0, 3)), 0), ShapeError, r"^reduce_max: cannot reduce over a zero-size"),
    ("argmax_dim", lambda: tf.argmax(X23, 2), ShapeError, r"^argmax: dim 2 is out of range"),
    ("cumsum_dim", lambda: tf.cumsum(X23, -3), ShapeError, r"^cumsum: dim -3 is out of range"),
    ("var_dim", lambda: tf.var(X23, 3), ShapeError, r"^var: dim 3 is out of range"),
    ("logsumexp_dim", lambda: tf.logsumexp(X23, 2), ShapeError, r"^logsumexp: dim 2 is out of range"),
    # movement and indexing
    ("reshape_count", lambda: X23.reshape(4, 2), ShapeError, r"^reshape: shape \(4, 2\) is invalid for input of shape \(2, 3\)"),
    ("reshape_two_unknown", lambda: X23.reshape(-1, -1), ShapeError, r"^reshape: only one dimension can be -1"),
    ("permute_repeated", lambda: X23.permute(0, 0), ShapeError, r"^permute: \(0, 0\) is not a permutation"),
    ("permute_wrong_length", lambda: X23.permute(0, 1, 2), ShapeError, r"^permute: got 3 dims"),
    ("transpose_dim", lambda: X23.transpose(0, 5), ShapeError, r"^transpose: dim 5 is out of range"),
    ("expand_incompatible", lambda: X23.expand(3, 3), ShapeError, r"^expand: cannot expand shape \(2, 3\) to \(3, 3\)"),
    ("cat_shapes", lambda: tf.cat([X23, X45], 0), ShapeError, r"^cat: shapes \(2, 3\) and \(4, 5\) differ outside dim 0"),
    ("cat_ndims", lambda: tf.cat([X23, tf.ones(3)], 0), ShapeError, r"^cat: tensors must have the same number of dims"),
    ("stack_shapes", lambda: tf.stack([X23, X45]), ShapeError, r"^stack: all tensors must have the same shape"),
    ("squeeze_dim", lambda: X23.squeeze(4), ShapeError, r"^squeeze: dim 4 is out of range"),
    ("unsqueeze_dim", lambda: X23.unsqueeze(5), ShapeError, r"^unsqueeze: dim 5 is out of range"),
    ("flatten_order", lambda: X23.flatten(1, 0), ShapeError, r"^flatten: start_dim 1 comes after end_dim 0"),
    ("narrow_past_end", lambda: tf.narrow(X23, 1, 2, 5), ShapeError, r"^narrow: start 2 and length 5 do not fit"),
    ("pad_odd_length", lambda: tf.pad(X23, (1,)), ShapeError, r"^pad: padding \(1,\) must be \(low, high\) pairs"),
    ("flip_dim", lambda: tf.flip(X23, (3,)), ShapeError, r"^flip: dim 3 is out of range"),
    ("tril_1d", lambda: tf.tril(tf.ones(3)), ShapeError, r"^tril: needs at least 2 dims"),
    ("chunk_zero", lambda: tf.chunk(X23, 0), ShapeError, r"^chunk: cannot split dim 0 of size 2 into 0 chunks"),
    ("getitem_out_of_bounds", lambda: X23[5], TritonflowIndexError, r"index 5 is out of bounds for dimension 0 with size 2"),
    ("getitem_too_many", lambda: X23[0, 0, 0], TritonflowIndexError, r"too many indices for tensor of dimension 2"),
    ("getitem_float", lambda: X23[1.5], TritonflowIndexError, r"tensors can be indexed with .* got float"),
    ("setitem_value_shape", lambda: X23.clone().__setitem__(0, tf.ones(5)), ShapeError,
     r"^index_put \(x\[key\] = value\): value of shape \(5,\)"),
    ("gather_out_of_range", lambda: tf.gather(X23, 1, tf.tensor([[5]])), TritonflowIndexError,
     r"^gather: index out of range for dim 1 of size 3"),
    ("gather_float_index", lambda: tf.gather(X23, 1, tf.ones((2, 1))), DTypeError, r"^gather: index must be an integer"),
    ("index_select_out_of_range", lambda: tf.index_select(X23, 0, tf.tensor([7])), TritonflowIndexError,
     r"^(index_select|gather): index (7 is )?out of range for dim 0 of size 2"),
    # nn.functional
    ("softmax_int", lambda: F.softmax(I3), DTypeError, r"^softmax: expected a floating point tensor, got int64"),
    ("softmax_dim", lambda: F.softmax(X23, 3), ShapeError, r"^softmax: dim 3 is out of range"),
    ("log_softmax_list", lambda: F.log_softmax([1.0, 2.0]), DTypeError, r"^log_softmax: expected a tensor, got list"),
    ("layer_norm_shape", lambda: F.layer_norm(X23, (4,)), ShapeError, r"^layer_norm: normalized_shape \(4,\) does not match"),
    ("rms_norm_shape", lambda: F.rms_norm(X23, (2,)), ShapeError, r"^rms_norm: normalized_shape \(2,\)"),
    ("linear_features", lambda: F.linear(X23, X45), ShapeError, r"^linear: input features 3 do not match weight \(4, 5\)"),
    ("cross_entropy_int_logits", lambda: F.cross_entropy(I3.reshape(1, 3), tf.tensor([0])), DTypeError,
     r"^cross_entropy: expected a floating point tensor"),
    ("cross_entropy_target_shape", lambda: F.cross_entropy(X23, tf.tensor([0, 1, 2])), ShapeError,
     r"^(cross_entropy|nll_loss): target shape \(3,\) does not match input \(2, 3\)"),
    ("cross_entropy_prob_target_shape", lambda: F.cross_entropy(X23, tf.ones((2, 4))), ShapeError,
     r"^cross_entropy: probability target \(2, 4\) must match logits \(2, 3\)"),
    ("nll_loss_float_target", lambda: F.nll_loss(X23, tf.zeros(2)), DTypeError, r"^nll_loss: target must be an integer"),
    ("embedding_float_indices", lambda: F.embedding(X23, X45), DTypeError, r"^embedding: indices must be an integer"),
    ("one_hot_float", lambda: F.one_hot(X23), DTypeError, r"^one_hot: labels must be an integer"),
    ("dropout_probability", lambda: F.dropout(X23, 1.5), ShapeError, r"^dropout: probability must be in \[0, 1\]"),
    ("gelu_approximate", lambda: F.gelu(X23, "fast"), ShapeError, r"^gelu: approximate must be 'none' or 'tanh'"),
    ("mse_reduction", lambda: F.mse_loss(X23, X23, reduction="avg"), ShapeError, r"^mse_loss: reduction must be"),
    ("sdpa_head_dims", lambda: F.scaled_dot_product_attention(tf.ones((2, 4)), X45, X45), ShapeError,
     r"^scaled_dot_product_attention: query head dim 4 differs from key head dim 5"),
    ("sdpa_int_mask", lambda: F.scaled_dot_product_attention(X23, X23, X23, attn_mask=tf.ones((2, 2), dtype=tf.int32)),
     DTypeError, r"^scaled_dot_product_attention: attn_mask must be bool or float, got int32"),
    # jit: errors raised while tracing point at the line inside the jitted function
    ("jit_shape_error", lambda: jit_add(X23, X45), ShapeError, r"^add: shapes \(2, 3\) and \(4, 5\)"),
    ("jit_matmul_error", lambda: jit_matmul_self(X23), ShapeError, r"^matmul: inner dimensions differ"),
    ("jit_softmax_dim", lambda: jit_softmax_bad_dim(X23), ShapeError, r"^softmax: dim 4 is out of range"),
    ("jit_data_dependent_if", lambda: jit_branch(X23), TraceError, r"^bool\(\) of a tensor .* tritonflow\.where"),
    ("jit_item", lambda: jit_item(X23), TraceError, r"^\.item\(\) needs a concrete value"),
    ("jit_numpy", lambda: jit_to_numpy(X23), TraceError, r"^\.numpy\(\) needs a concrete value"),
    ("jit_int_of_tensor", lambda: jit_int(X23), TraceError, r"^int\(\) of a tensor needs a concrete value"),
    ("jit_resizes_global", lambda: jit_mutate_global(X23), TraceError,
     r"^resize_: captured tensor %GLOBAL_BUFFER would change shape from \(3,\) to \(7,\) inside a jitted function"),
    ("jit_writes_global_wrong_shape", lambda: jit_setitem_global(X23), ShapeError,
     r"^in-place write: a value of shape \(2, 3\) cannot be written into captured tensor %GLOBAL_BUFFER"),
    ("jit_escaped_tracer", lambda: use_escaped(), TraceError, r"^add: a traced tensor escaped its jitted function"),
    ("jit_numpy_argument", lambda: jit_add(np.ones(3), np.ones(3)), DTypeError, r"^jit: an argument is a numpy\.ndarray"),
    ("jit_string_argument", lambda: jit_scale(X23, "q"), DTypeError, r"^mul: expected a tensor or a number, got str"),
    ("jit_unknown_backend", lambda: tf.jit(lambda a: a, backend="cuda"), UnsupportedError, r"^jit: unknown backend 'cuda'"),
    ("jit_unknown_mode", lambda: tf.jit(lambda a: a, mode="fast"), UnsupportedError, r"^jit: unknown mode 'fast'"),
    # explain
    ("explain_shape_error", lambda: explain_matmul(), ShapeError, r"^matmul: inner dimensions differ"),
    ("explain_not_a_function", lambda: tf.explain(42), TritonflowError, r"^explain: "),
    # nn modules, optimizers, safetensors
    ("linear_module_features", lambda: linear_module_mismatch(), ShapeError, r"^linear: input features 3"),
    ("load_state_dict_shape", lambda: load_state_dict_wrong_shape(), ShapeError, r"^load_state_dict: .*weight"),
    ("sgd_negative_lr", lambda: sgd_negative_lr(), TritonflowError, r"^SGD: invalid learning rate -1\.0"),
    ("load_corrupt_safetensors", lambda: load_corrupt_safetensors(), TritonflowError, r"^load: "),
]


def _code_lines(code: types.CodeType) -> set[int]:
    lines = {line for _, _, line in code.co_lines() if line is not None}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            lines |= _code_lines(const)
    return lines


def _allowed_lines(fn) -> set[int]:
    """The lambda's own lines plus those of the module-level functions it calls (jitted ones too)."""
    lines = _code_lines(fn.__code__)
    seen = set()
    pending = [fn.__code__]
    while pending:
        code = pending.pop()
        for name in code.co_names:
            target = fn.__globals__.get(name)
            target = getattr(target, "fn", target)  # a JitFunction wraps the user's function
            if isinstance(target, types.FunctionType) and target.__code__.co_filename == __file__ \
                    and name not in seen:
                seen.add(name)
                lines |= _code_lines(target.__code__)
                pending.append(target.__code__)
    return lines


def _reported_line(message: str) -> int:
    found = re.search(rf"at {re.escape(THIS_FILE)}:(\d+)", message)
    assert found, f"the message does not name the user's file {THIS_FILE}: {message!r}"
    return int(found.group(1))


def _as_param(case):
    if hasattr(case, "marks"):  # already a pytest.param (a ParameterSet) carrying marks
        return pytest.param(*case.values, id=case.values[0], marks=case.marks)
    return pytest.param(*case, id=case[0])


@pytest.mark.parametrize("case_id, call, exc_type, pattern", [_as_param(c) for c in CASES])
def test_bad_input_raises_a_clear_error(case_id, call, exc_type, pattern):
    with pytest.raises(TritonflowError) as info:
        call()
    error = info.value
    assert isinstance(error, exc_type), f"{case_id}: raised {type(error).__name__}, want {exc_type.__name__}: {error}"
    assert re.search(pattern, error.raw_message), f"{case_id}: message {error.raw_message!r} !~ {pattern!r}"
    message = str(error)
    line = _reported_line(message)
    assert line in _allowed_lines(call), f"{case_id}: points at line {line}, not the offending call: {message}"


def test_the_table_has_at_least_60_cases():
    assert len(CASES) >= 60


# ---------------------------------------------------------------- legal but unusual inputs: no error, right values

NAN, INF = float("nan"), float("inf")
SPECIAL = np.array([NAN, INF, -INF, 0.0, -0.0, 1e30, -1.5], np.float32)


def _np(t):
    return np.asarray(t.numpy())


def _legal_cases():
    s = tf.from_numpy(SPECIAL)
    with np.errstate(all="ignore"):
        return [
            ("exp_specials", lambda: tf.exp(s), np.exp(SPECIAL)),
            ("log_specials", lambda: tf.log(s), np.log(SPECIAL)),
            ("div_by_zero", lambda: s / 0.0, SPECIAL / np.float32(0.0)),
            ("sqrt_negative", lambda: tf.sqrt(s), np.sqrt(SPECIAL)),
            ("tanh_specials", lambda: tf.tanh(s), np.tanh(SPECIAL)),
            ("sum_with_nan", lambda: tf.sum(s), np.array(np.nan, np.float32)),
            ("amax_with_nan", lambda: tf.amax(s), np.array(np.nan, np.float32)),
            ("maximum_with_nan", lambda: tf.maximum(s, 0.0), np.maximum(SPECIAL, np.float32(0))),
            ("isnan_isinf", lambda: tf.isnan(s) | tf.isinf(s), np.isnan(SPECIAL) | np.isinf(SPECIAL)),
            ("where_keeps_nan", lambda: tf.where(s > 0, s, 0.0), np.where(SPECIAL > 0, SPECIAL, np.float32(0))),
            ("sum_empty", lambda: tf.sum(tf.ones((0, 3)), 0), np.zeros(3, np.float32)),
            ("mean_empty", lambda: tf.mean(tf.ones((0, 3)), 0), np.full(3, np.nan, np.float32)),
            ("softmax_empty", lambda: F.softmax(tf.ones((0, 3)), -1), np.zeros((0, 3), np.float32)),
            ("matmul_empty_inner", lambda: tf.ones((2, 0)) @ tf.ones((0, 3)), np.zeros((2, 3), np.float32)),
            ("cat_with_empty", lambda: tf.cat([tf.ones((0, 2)), tf.ones((1, 2))], 0), np.ones((1, 2), np.float32)),
            ("reshape_empty", lambda: tf.ones((0, 4)).reshape(4, 0), np.zeros((4, 0), np.float32)),
            ("sum_0d", lambda: tf.sum(tf.tensor(3.0)), np.array(3.0, np.float32)),
            ("softmax_0d", lambda: F.softmax(tf.tensor(3.0), 0), np.array(1.0, np.float32)),
            ("broadcast_0d", lambda: tf.tensor(2.0) * tf.ones(3), np.full(3, 2.0, np.float32)),
            ("transpose_0d", lambda: tf.tensor(3.0).T, np.array(3.0, np.float32)),
            ("argmax_0d", lambda: tf.argmax(tf.tensor(3.0)), np.array(0, np.int64)),
            ("dot_gives_0d", lambda: tf.dot(tf.ones(3), tf.ones(3)), np.array(3.0, np.float32)),
        ]


@pytest.mark.parametrize("mode", ["eager", "jit"])
@pytest.mark.parametrize("case_id", [c[0] for c in _legal_cases()])
def test_legal_unusual_input_gives_numpy_values(case_id, mode):
    (call, want), = [(c[1], c[2]) for c in _legal_cases() if c[0] == case_id]
    got = call() if mode == "eager" else tf.jit(call, backend="numpy")()
    got = _np(got)
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, got.dtype, want.shape, want.dtype)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)


# ---------------------------------------------------------------- huge dims: 64-bit indexing or a clear refusal

def test_int32_overflowing_shape_lowers_with_int64_offsets():
    """2**20 x 2**12 int8 = 2**32 elements: a kernel over it must index in int64 (or refuse clearly)."""
    from tritonflow import kernels
    from tritonflow.ir.graph import Graph
    from tritonflow.ir.types import TensorType
    graph = Graph("huge")
    x = graph.add_input("x", TensorType((2**20, 2**12), tf.int8))
    y = graph.add("add", (x, x), {}, TensorType((2**20, 2**12), tf.int8))
    graph.outputs = [y]
    try:
        lowered = kernels.lower(graph, mode="default")
    except TritonflowError as error:  # refusing is allowed, if it says why
        assert re.search(r"int32|64-bit|too large", str(error)), str(error)
        return
    sources = [k.source for k in lowered.kernels]
    assert sources, "no kernel was generated"
    for source in sources:
        assert "int64" in source, f"a kernel over 2**32 elements uses no int64 index math:\n{source}"


# ---------------------------------------------------------------- nothing left half-done

def test_failed_compile_caches_nothing():
    @tf.jit
    def bad(a):
        return a @ a

    for _ in range(2):
        with pytest.raises(ShapeError):
            bad(X23)
    assert bad.cache_info().entries == 0
    assert bad.cache_info().misses == 2  # the second call traced again instead of trusting a broken entry
    square = tf.ones((3, 3))
    np.testing.assert_array_equal(_np(bad(square)), np.full((3, 3), 3.0, np.float32))
    assert bad.cache_info().entries == 1


def test_failed_trace_leaves_no_global_write():
    before = _np(GLOBAL_BUFFER).copy()
    version = GLOBAL_BUFFER._version
    with pytest.raises(TraceError):
        jit_mutate_global(X23)
    np.testing.assert_array_equal(_np(GLOBAL_BUFFER), before)
    assert GLOBAL_BUFFER._version == version
    assert jit_mutate_global.cache_info().entries == 0


def test_failed_inplace_op_changes_nothing():
    x = tf.from_numpy(np.arange(6, dtype=np.float32).reshape(2, 3))
    before, version = _np(x).copy(), x._version
    with pytest.raises(ShapeError):
        x.add_(X45)
    with pytest.raises(ShapeError):
        x[0] = tf.ones(5)
    np.testing.assert_array_equal(_np(x), before)
    assert x._version == version


def test_failed_optimizer_step_changes_no_parameter():
    layer = tf.nn.Linear(3, 2)
    opt = tf.optim.SGD(layer.parameters(), lr=0.1)
    before = [_np(p.detach()).copy() for p in layer.parameters()]
    params = list(layer.parameters())
    params[0].grad = tf.ones((7, 7))  # a gradient of the wrong shape: the step must refuse before any write
    params[1].grad = tf.ones(params[1].shape)
    with pytest.raises(ShapeError):
        opt.step()
    for p, b in zip(layer.parameters(), before):
        np.testing.assert_array_equal(_np(p.detach()), b)


def test_corrupt_kernel_cache_file_is_rebuilt(tmp_path, monkeypatch):
    """A corrupt entry in $TRITONFLOW_CACHE_DIR is rebuilt, never trusted."""
    monkeypatch.setenv("TRITONFLOW_CACHE_DIR", str(tmp_path))
    from tritonflow import kernels
    # Forget kernels compiled by earlier tests, so that both calls below go to the disk cache.
    kernels.cache.reset_memory()

    def f(a):
        return tf.exp(a) + 1.0

    x = tf.from_numpy(np.linspace(-1, 1, 7, dtype=np.float32))
    want = np.exp(np.linspace(-1, 1, 7, dtype=np.float32)) + 1
    np.testing.assert_allclose(_np(tf.jit(f, backend="triton")(x)), want, rtol=1e-6)
    written = [p for p in tmp_path.rglob("*.py") if p.is_file()]
    assert written, "the kernel cache wrote nothing to TRITONFLOW_CACHE_DIR"
    for path in written:
        path.write_bytes(b"\x00garbage\xff" * 3)
    kernels.cache.reset_memory()
    rebuilt_before = tf.cache_stats()["rebuilt"]
    np.testing.assert_allclose(_np(tf.jit(f, backend="triton")(x)), want, rtol=1e-6)
    assert tf.cache_stats()["rebuilt"] == rebuilt_before + len(written), tf.cache_stats()
    for path in written:  # the garbage was replaced by a valid entry
        assert b"garbage" not in path.read_bytes()