"""ONNX export stage: the non-elementwise primitives — movement, gathers, reductions, scans, matmul,
creation and fused attention — as ONNX operators.

Reductions accumulate as the interpreter does (float16/bfloat16 in float32, integers and bools in
int64), by casting around the ONNX reduction. Attention is decomposed into MatMul, the mask and
Softmax, which every ONNX runtime has (ONNX's own Attention operator needs opset 23).
Each emitter is `(builder, ir_node, input_names) -> output name`.
"""
from __future__ import annotations

import numpy as np
import sympy

from tritonflow import dtypes as D
from tritonflow.onnx.export_elementwise import cast

INT64_MIN = -(2 ** 63)


def _static(d) -> bool:
    return isinstance(d, (int, np.integer)) or (isinstance(d, sympy.Expr) and d.is_Integer)


# ---------------------------------------------------------------- movement

def emit_reshape(b, node, ins):
    shape = node.attrs["shape"]
    # A literal 0 in ONNX's shape copies the input's dim unless allowzero says it is an empty dim.
    allowzero = 1 if any(_static(d) and int(d) == 0 for d in shape) else None
    return b.op("Reshape", [ins[0], b.shape_value(shape)], allowzero=allowzero)


def emit_permute(b, node, ins):
    return b.op("Transpose", ins, perm=list(node.attrs["perm"]))


def emit_expand(b, node, ins):
    return b.op("Expand", [ins[0], b.shape_value(node.attrs["shape"])])


def emit_slice(b, node, ins):
    x_shape = node.inputs[0].type.shape
    starts, ends, axes, steps = [], [], [], []
    for axis, (start, step, size) in enumerate(zip(node.attrs["start"], node.attrs["step"], node.attrs["shape"])):
        if start == 0 and step == 1 and (size == x_shape[axis]):
            continue  # the whole axis
        if not _static(size) and step < 0:
            raise b.unsupported(f"slice: a negative step over the symbolic dim {size} has no fixed ONNX end")
        axes.append(axis)
        steps.append(step)
        starts.append(b.int64s([start]))
        if _static(size):
            end = start + int(size) * step
            ends.append(b.int64s([end if end >= 0 else INT64_MIN]))  # a negative end would wrap around
        else:
            ends.append(b.dim_value(sympy.expand(start + size * step)))
    if not axes:
        return b.op("Identity", ins)
    return b.op("Slice", [ins[0], b.op("Concat", starts, axis=0), b.op("Concat", ends, axis=0),
                          b.int64s(axes), b.int64s(steps)])


def emit_pad(b, node, ins):
    pads = node.attrs["pads"]
    widths = [int(lo) for lo, _ in pads] + [int(hi) for _, hi in pads]
    value = b.scalar(node.attrs["value"], node.type.dtype)
    return b.op("Pad", [ins[0], b.int64s(widths), value], mode="constant")


def emit_cat(b, node, ins):
    return b.op("Concat", ins, axis=node.attrs["dim"])


def _index64(b, node, ins, index: int) -> str:
    dtype = node.inputs[index].type.dtype
    return ins[index] if dtype is D.int64 else cast(b, ins[index], D.int64)


def emit_gather(b, node, ins):
    return b.op("GatherElements", [ins[0], _index64(b, node, ins, 1)], axis=node.attrs["dim"])


def emit_scatter_add(b, node, ins):
    return b.op("ScatterElements", [ins[0], _index64(b, node, ins, 1), ins[2]], axis=node.attrs["dim"],
                reduction="add")


def emit_scatter(b, node, ins):
    return b.op("ScatterElements", [ins[0], _index64(b, node, ins, 1), ins[2]], axis=node.attrs["dim"])


def emit_argsort(b, node, ins):
    """TopK over the whole dim: ONNX breaks its ties by the lower index, largest or smallest, which
    is argsort's stable order (onnxruntime's order of NaN is its own)."""
    x_type = node.inputs[0].type
    if not x_type.shape:
        return b.constant(np.zeros((), np.int64))
    dim = node.attrs["dim"]
    size = x_type.shape[dim]
    if not isinstance(size, int):
        raise b.unsupported(f"argsort along dim {dim} of dynamic size {size}")
    x = ins[0]
    if x_type.dtype.name in ("float16", "bfloat16"):
        x = cast(b, x, D.float32)  # exact; TopK kernels take float32
    elif x_type.dtype.name in ("bool", "int8"):
        x = cast(b, x, D.int32)
    _, indices = b.op("TopK", [x, b.int64s([size])], n_outputs=2, axis=dim,
                      largest=1 if node.attrs["descending"] else 0, sorted=1)
    return indices


def emit_matmul(b, node, ins):
    return b.op("MatMul", ins)


# ---------------------------------------------------------------- reductions and scans

_REDUCTIONS = {"reduce_sum": "ReduceSum", "reduce_prod": "ReduceProd", "reduce_max": "ReduceMax",
               "reduce_min": "ReduceMin"}


def _compute_dtype(op: str, dtype):
    if op in ("reduce_sum", "reduce_prod", "cumsum"):
        if dtype.category in ("bool", "int"):
            return D.int64
        if dtype.is_low_precision:
            return D.float32
    if dtype.is_bool:
        return D.int8  # ONNX orders numbers only (bool max/min arrived in opset 20)
    return dtype


def _reduce_node(b, op_type: str, x: str, dims: tuple, keepdim: bool) -> str:
    keepdims = 1 if keepdim else 0
    if op_type == "ReduceSum" or b.opset >= 18:
        return b.op(op_type, [x, b.int64s(dims)], keepdims=keepdims)
    return b.op(op_type, [x], axes=list(dims), keepdims=keepdims)  # opset 17: axes as an attribute


def emit_reduce(b, node, ins):
    dims, keepdim = tuple(node.attrs["dims"]), node.attrs["keepdim"]
    x_dtype = node.inputs[0].type.dtype
    compute = _compute_dtype(node.op, x_dtype)
    x = ins[0] if compute is x_dtype else cast(b, ins[0], compute)
    if not dims or not node.inputs[0].type.shape:
        # tritonflow reduces nothing for dims=() (NumPy's axis=()); ONNX would reduce everything.
        result = b.op("Identity", [x])
    else:
        result = _reduce_node(b, _REDUCTIONS[node.op], x, dims, keepdim)
    return result if compute is node.type.dtype else cast(b, result, node.type.dtype)


def emit_arg(b, node, ins):
    x_type = node.inputs[0].type
    if not x_type.shape:
        return b.constant(np.zeros((), np.int64))
    (axis,) = node.attrs["dims"]
    x = ins[0] if not x_type.dtype.is_bool else cast(b, ins[0], D.int8)
    op_type = "ArgMax" if node.op == "argmax" else "ArgMin"
    return b.op(op_type, [x], axis=axis, keepdims=1 if node.attrs["keepdim"] else 0, select_last_index=0)


def emit_cumsum(b, node, ins):
    x_type = node.inputs[0].type
    compute = _compute_dtype("cumsum", x_type.dtype)
    x = ins[0] if compute is x_type.dtype else cast(b, ins[0], compute)
    if not x_type.shape:
        result = b.op("Identity", [x])
    else:
        result = b.op("CumSum", [x, b.constant(np.asarray(node.attrs["dim"], np.int64))])
    return result if compute is node.type.dtype else cast(b, result, node.type.dtype)


# ---------------------------------------------------------------- creation

def emit_full(b, node, ins):
    value = np.asarray(node.attrs["value"]).astype(node.type.dtype.np).reshape(1)
    from onnx import numpy_helper
    return b.op("ConstantOfShape", [b.shape_value(node.attrs["shape"])], value=numpy_helper.from_array(value))


def _range(b, length) -> str:
    """0, 1, ..., length - 1 as int64 (length may be symbolic)."""
    limit = b.op("Squeeze", [b.dim_value(length)])
    return b.op("Range", [b.constant(np.asarray(0, np.int64)), limit, b.constant(np.asarray(1, np.int64))])


def emit_iota(b, node, ins):
    shape, dim = node.attrs["shape"], node.attrs["dim"]
    view = [1] * len(shape)
    view[dim] = shape[dim]
    line = b.op("Reshape", [_range(b, shape[dim]), b.shape_value(view)])
    result = b.op("Expand", [line, b.shape_value(shape)])
    return result if node.type.dtype is D.int64 else cast(b, result, node.type.dtype)


def emit_random(b, node, ins):
    raise b.unsupported(f"{node.op} (random numbers: rand, randn, dropout in training mode) has no ONNX form "
                        f"that reproduces tritonflow's Philox stream; export the model in eval() mode "
                        f"or pass the random tensor as an input")


def emit_backward(b, node, ins):
    raise b.unsupported(f"{node.op} is a primitive of attention's backward pass, which has no ONNX form; "
                        f"export a forward function")


def emit_collective(b, node, ins):
    raise b.unsupported(f"{node.op} exchanges data with other processes (tritonflow.distributed), which an ONNX "
                        f"graph cannot; export the model itself, not the DistributedDataParallel training step")


# ---------------------------------------------------------------- attention

def emit_attention(b, node, ins):
    attrs = node.attrs
    if attrs.get("dropout_p", 0.0) > 0:
        raise b.unsupported("attention with dropout_p > 0 draws random numbers, which have no ONNX form "
                            "reproducing tritonflow's; export in eval() mode (dropout_p=0)")
    q_type, k_type = node.inputs[0].type, node.inputs[1].type
    dtype = q_type.dtype
    rank = k_type.ndim
    perm = list(range(rank - 2)) + [rank - 1, rank - 2]
    scores = b.op("MatMul", [ins[0], b.op("Transpose", [ins[1]], perm=perm)])
    scores = b.op("Mul", [scores, b.scalar(attrs["scale"], dtype)])
    minus_inf = b.scalar(-np.inf, dtype)
    mask_kind = attrs.get("mask", "none")
    if attrs.get("is_causal"):
        rows = b.op("Unsqueeze", [_range(b, q_type.shape[-2]), b.int64s([1])])
        allowed = b.op("LessOrEqual", [_range(b, k_type.shape[-2]), rows])   # key j visible from query i: j <= i
        scores = b.op("Where", [allowed, scores, minus_inf])
    if mask_kind == "bool":
        scores = b.op("Where", [ins[3], scores, minus_inf])
    elif mask_kind == "additive":
        mask_dtype = node.inputs[3].type.dtype
        scores = b.op("Add", [scores, ins[3] if mask_dtype is dtype else cast(b, ins[3], dtype)])
    probs = b.op("Softmax", [scores], axis=-1)
    if mask_kind != "none":
        # A row with every key masked is all zeros in tritonflow; ONNX's Softmax makes it NaN.
        probs = b.op("Where", [b.op("IsNaN", [probs]), b.scalar(0.0, dtype), probs])
    return b.op("MatMul", [probs, ins[2]])


EMITTERS = {
    "reshape": emit_reshape, "permute": emit_permute, "expand": emit_expand, "slice": emit_slice, "pad": emit_pad,
    "cat": emit_cat, "gather": emit_gather, "scatter_add": emit_scatter_add, "scatter": emit_scatter,
    "argsort": emit_argsort, "matmul": emit_matmul,
    "reduce_sum": emit_reduce, "reduce_prod": emit_reduce, "reduce_max": emit_reduce, "reduce_min": emit_reduce,
    "argmax": emit_arg, "argmin": emit_arg, "cumsum": emit_cumsum, "full": emit_full, "iota": emit_iota,
    "philox_uniform": emit_random, "attention": emit_attention, "attention_lse": emit_backward,
    "attention_delta": emit_backward, "attention_dq": emit_backward, "attention_dkv": emit_backward,
    "all_reduce": emit_collective, "broadcast": emit_collective, "all_gather": emit_collective,
    "reduce_scatter": emit_collective,
}
