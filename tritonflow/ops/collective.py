"""The op table's collectives: all_reduce, broadcast, all_gather, reduce_scatter across processes.

Framework stage (op table). These are the functional form a trace records when traced code calls
`tritonflow.distributed.all_reduce` and friends (DDP's gradient buckets inside a jitted training
step): the output is a new value, the input is never written. Their meaning needs other processes,
so it lives with the process group: `tritonflow.distributed` installs the host implementation
(`HOST[name]`, taking NumPy arrays or torch tensors) when it is imported. Kernel lowering does not
fuse them: the triton backend runs a graph holding one as kernel segments with the collective run
on the host in between (tritonflow/segmented_runner.py). Flagged `extra["collective"]`: never
constant-folded, and they have no single-process samples (tests/distributed runs them across
processes).
"""
from __future__ import annotations

from tritonflow.errors import ShapeError, UnsupportedError
from tritonflow.ir.types import TensorType
from tritonflow.ops.lazy_api import apply
from tritonflow.ops.registry import Kind, OpDef, register
from tritonflow.ops.shapes import fmt

REDUCE_OPS = ("sum", "avg", "product", "min", "max")
HOST: dict = {}  # op name -> implementation(array, **attrs), installed by tritonflow.distributed


def _host(name: str):
    def run(x, **attrs):
        impl = HOST.get(name)
        if impl is None:
            raise UnsupportedError(f"{name}: a graph holding a collective runs only in a process that imported "
                                   f"tritonflow.distributed and called init_process_group()")
        return impl(x, **attrs)
    run.__name__ = f"host_{name}"
    return run


def _same_type(types, attrs):
    if attrs.get("reduce_op", "sum") not in REDUCE_OPS:
        raise ShapeError(f"all_reduce: unknown reduction {attrs['reduce_op']!r} (one of {', '.join(REDUCE_OPS)})")
    return types[0]


def _infer_all_gather(types, attrs):
    x = types[0]
    if not x.shape:
        raise ShapeError("all_gather: a 0-d tensor cannot be gathered along dim 0; reshape it to (1,) first")
    return TensorType((x.shape[0] * attrs["world"],) + tuple(x.shape[1:]), x.dtype)


def _infer_reduce_scatter(types, attrs):
    x, world = types[0], attrs["world"]
    _same_type(types, attrs)
    if not x.shape or not isinstance(x.shape[0], int) or x.shape[0] % world:
        raise ShapeError(f"reduce_scatter: dim 0 of the input {fmt(x.shape)} must split evenly over the "
                         f"{world} ranks")
    return TensorType((x.shape[0] // world,) + tuple(x.shape[1:]), x.dtype)


def _all_reduce_vjp(g, out, x, reduce_op, group):
    # Every rank's output reads every rank's input: the cotangents are reduced the same way back.
    if reduce_op not in ("sum", "avg"):
        raise UnsupportedError(f"all_reduce: the gradient of a {reduce_op} reduction is not defined here")
    return (apply(ALL_REDUCE, [g], {"reduce_op": reduce_op, "group": group}),)


_EXTRA = {"collective": True}

ALL_REDUCE = register(OpDef("all_reduce", Kind.OPAQUE, _same_type, _host("all_reduce"), _all_reduce_vjp,
                            extra=dict(_EXTRA), doc="reduce_op over the group's ranks; attrs reduce_op, group"))
BROADCAST = register(OpDef("broadcast", Kind.OPAQUE, lambda types, attrs: types[0], _host("broadcast"),
                           differentiable=False, extra=dict(_EXTRA), doc="rank src's value; attrs src, group"))
ALL_GATHER = register(OpDef("all_gather", Kind.OPAQUE, _infer_all_gather, _host("all_gather"),
                            differentiable=False, extra=dict(_EXTRA),
                            doc="the ranks' inputs concatenated along dim 0; attrs group, world"))
REDUCE_SCATTER = register(OpDef("reduce_scatter", Kind.OPAQUE, _infer_reduce_scatter, _host("reduce_scatter"),
                                differentiable=False, extra=dict(_EXTRA),
                                doc="rank r's 1/world slice of the reduction; attrs reduce_op, group, world"))
