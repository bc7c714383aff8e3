"""tritonflow.distributed: collectives on the arrays behind tensors — NumPy on CPU, torch on CUDA.

The host side of every collective, shared by the eager API (collectives.py) and by compiled
graphs (the op table's collectives call `HOST[name]`, installed here). A NumPy array crosses to
gloo as a torch view of the same memory (torch.from_numpy; bfloat16 as its 16-bit words), so
nothing is copied on the way; a CUDA tensor's torch storage goes to NCCL as it is.

tritonflow tensors have value semantics (an in-place op rebinds the storage, so values saved for
backward are never changed), so a collective writes only into memory nobody else can see: a
fresh output buffer, or the input itself when the caller says it owns it exclusively.
"""
from __future__ import annotations

import sys

import numpy as np

from tritonflow.distributed.process_group import ProcessGroup, collective_errors, resolve, torch_distributed
from tritonflow.ops import collective as collective_ops
from tritonflow.storage import numpy_to_torch

REDUCE_OPS = collective_ops.REDUCE_OPS


def torch_reduce_op(name: str):
    dist = torch_distributed()
    return {"sum": dist.ReduceOp.SUM, "avg": dist.ReduceOp.AVG, "product": dist.ReduceOp.PRODUCT,
            "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}[name]


def as_torch(array):
    """The torch tensor a collective reads or writes: a view of a NumPy array's memory."""
    if isinstance(array, np.ndarray):
        # Internal invariant: buffers handed here are contiguous and writeable, so the view is no copy.
        assert array.flags.c_contiguous and array.flags.writeable
        return numpy_to_torch(array)
    return array


def contiguous_copy(array):
    if isinstance(array, np.ndarray):
        return np.array(array, order="C", copy=True)
    import torch
    return array.clone(memory_format=torch.contiguous_format)


def readable(array):
    """`array` itself when a collective can read it in place, else a contiguous copy."""
    if isinstance(array, np.ndarray):
        return array if array.flags.c_contiguous and array.flags.writeable else contiguous_copy(array)
    return array if array.is_contiguous() else array.contiguous()


def empty(shape: tuple, like):
    if isinstance(like, np.ndarray):
        return np.empty(shape, like.dtype)
    import torch
    return torch.empty(shape, dtype=like.dtype, device=like.device)


def exclusively_owned(tensor) -> bool:
    """Whether `tensor`'s NumPy array is referenced by this tensor alone, so a collective may
    write the result into it: an array that owns its memory (not a view), with no other tensor,
    saved backward value or user variable holding it. CUDA storage is always copied."""
    array = tensor._data
    if not isinstance(array, np.ndarray) or array.base is not None:
        return False
    if not (array.flags.c_contiguous and array.flags.writeable and array.flags.owndata):
        return False
    # The references: the tensor's slot, `array` here, and getrefcount's own argument.
    return sys.getrefcount(array) <= 3


# Each returns (the result array, torch's async work handle); the caller waits on the handle.

def all_reduce(array, reduce_op: str, pg: ProcessGroup, owned: bool = False):
    buffer = array if owned else contiguous_copy(array)
    with collective_errors("all_reduce", pg):
        work = torch_distributed().all_reduce(as_torch(buffer), op=torch_reduce_op(reduce_op),
                                              group=pg.torch_group, async_op=True)
    return buffer, work


def broadcast(array, src: int, pg: ProcessGroup):
    dist = torch_distributed()
    # The source only sends (its array is read, never written); the others receive into fresh memory.
    buffer = readable(array) if dist.get_rank() == src else empty(tuple(array.shape), array)
    with collective_errors("broadcast", pg):
        work = dist.broadcast(as_torch(buffer), src=src, group=pg.torch_group, async_op=True)
    return buffer, work


def all_gather(array, pg: ProcessGroup):
    out = empty((array.shape[0] * pg.size(),) + tuple(array.shape[1:]), array)
    with collective_errors("all_gather", pg):
        work = torch_distributed().all_gather_into_tensor(as_torch(out), as_torch(readable(array)),
                                                          group=pg.torch_group, async_op=True)
    return out, work


def reduce_scatter(array, reduce_op: str, pg: ProcessGroup):
    out = empty((array.shape[0] // pg.size(),) + tuple(array.shape[1:]), array)
    with collective_errors("reduce_scatter", pg):
        work = torch_distributed().reduce_scatter_tensor(as_torch(out), as_torch(readable(array)),
                                                         op=torch_reduce_op(reduce_op), group=pg.torch_group,
                                                         async_op=True)
    return out, work


def wait(op: str, pg: ProcessGroup, work) -> None:
    with collective_errors(op, pg):
        work.wait()


def _in_graph(name: str, run):
    """The op table's implementation: a synchronous collective on one array of a compiled graph."""
    def implementation(array, **attrs):
        pg = resolve(attrs.pop("group"), name)
        attrs.pop("world", None)
        result, work = run(array, pg=pg, **attrs)
        wait(name, pg, work)
        return result
    return implementation


collective_ops.HOST.update({
    "all_reduce": _in_graph("all_reduce", all_reduce),
    "broadcast": _in_graph("broadcast", broadcast),
    "all_gather": _in_graph("all_gather", all_gather),
    "reduce_scatter": _in_graph("reduce_scatter", reduce_scatter),
})
