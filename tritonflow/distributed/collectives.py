"""tritonflow.distributed: collectives on tritonflow tensors — all_reduce, broadcast, all_gather, reduce_scatter.

torch.distributed's names and in-place contract: after the call (or after `work.wait()` with
`async_op=True`) the tensor holds the result. Eagerly the work runs on the tensor's memory through
host.py (gloo for CPU, NCCL for CUDA); the tensor is rebound to the result buffer, as every
in-place op in tritonflow is. Inside a trace (a jitted training step) the same call records the
op table's functional collective, so the compiled graph exchanges data at each call; the work
handle it returns is already complete.
"""
from __future__ import annotations

from tritonflow.tracer import state as trace_state
from tritonflow.distributed import host
from tritonflow.distributed.process_group import ProcessGroup, resolve
from tritonflow.errors import DTypeError, ShapeError
from tritonflow.ops.registry import OPS
from tritonflow.tensor_class import Tensor


class ReduceOp:
    """Reductions for all_reduce and reduce_scatter (torch.distributed.ReduceOp's are accepted too)."""

    SUM = "sum"
    AVG = "avg"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"


def reduce_op_name(op, who: str) -> str:
    name = op if isinstance(op, str) else getattr(op, "name", str(op).rsplit(".", 1)[-1])
    name = str(name).lower()
    if name not in host.REDUCE_OPS:
        raise DTypeError(f"{who}: unknown reduction {op!r} (ReduceOp.SUM, AVG, PRODUCT, MIN or MAX)")
    return name


class Work:
    """The handle of an asynchronous collective: `wait()` blocks until the result is in place."""

    def __init__(self, op: str, pg: ProcessGroup | None, torch_work=None, then=None) -> None:
        self._op = op
        self._pg = pg
        self._work = torch_work
        self._then = then
        self._done = torch_work is None

    def wait(self, timeout=None) -> bool:
        if not self._done:
            host.wait(self._op, self._pg, self._work)
            self._done = True
            if self._then is not None:
                self._then()
        return True

    def is_completed(self) -> bool:
        return self._done or bool(self._work.is_completed())


def _check(tensor, who: str) -> None:
    if not isinstance(tensor, Tensor):
        raise DTypeError(f"{who}: expected a tritonflow Tensor, got {type(tensor).__name__}")


def _finish(op: str, pg: ProcessGroup, work, async_op: bool, then=None):
    handle = Work(op, pg, work, then)
    if async_op:
        return handle
    handle.wait()
    return None


def _rebind(tensor: Tensor, array) -> None:
    tensor._data = array
    tensor._version += 1


def _traced(op: str, inputs: list, attrs: dict) -> Tensor:
    from tritonflow.dispatch import apply
    return apply(OPS[op], inputs, attrs)


def all_reduce(tensor: Tensor, op=ReduceOp.SUM, group: ProcessGroup | None = None, async_op: bool = False):
    """Reduce `tensor` over the group's ranks; every rank ends up with the result."""
    return all_reduce_(tensor, op, group, async_op)


def all_reduce_(tensor: Tensor, op=ReduceOp.SUM, group=None, async_op: bool = False, owned: bool = False):
    """all_reduce; `owned=True` promises that nothing else holds the tensor's array (DDP's fresh
    buckets), so it is reduced in place; otherwise that is checked (host.exclusively_owned)."""
    _check(tensor, "all_reduce")
    pg = resolve(group, "all_reduce")
    name = reduce_op_name(op, "all_reduce")
    if trace_state.current() is not None:
        tensor._assign(_traced("all_reduce", [tensor], {"reduce_op": name, "group": pg.id}))
        return Work("all_reduce", pg) if async_op else None
    owned = owned or host.exclusively_owned(tensor)  # asked before anything else holds the array
    buffer, work = host.all_reduce(tensor._data, name, pg, owned=owned)
    _rebind(tensor, buffer)
    return _finish("all_reduce", pg, work, async_op)


def broadcast(tensor: Tensor, src: int, group: ProcessGroup | None = None, async_op: bool = False):
    """Rank `src`'s value of `tensor` on every rank (`src` is a rank of the world, as in torch)."""
    _check(tensor, "broadcast")
    pg = resolve(group, "broadcast")
    if src not in pg.ranks:
        raise ShapeError(f"broadcast: src {src} is not a rank of the group (ranks {pg.ranks})")
    if trace_state.current() is not None:
        tensor._assign(_traced("broadcast", [tensor], {"src": int(src), "group": pg.id}))
        return Work("broadcast", pg) if async_op else None
    buffer, work = host.broadcast(tensor._data, int(src), pg)
    if buffer is not tensor._data:
        _rebind(tensor, buffer)
    return _finish("broadcast", pg, work, async_op)


def _check_list(who: str, tensors: list, like: Tensor, pg: ProcessGroup, role: str) -> None:
    """One tensor per rank, each with `like`'s shape and dtype."""
    if len(tensors) != pg.size():
        raise ShapeError(f"{who}: {role} has {len(tensors)} entries for {pg.size()} ranks")
    for i, t in enumerate(tensors):
        _check(t, who)
        if tuple(t.shape) != tuple(like.shape) or t.dtype is not like.dtype:
            raise ShapeError(f"{who}: {role}[{i}] is {t.dtype.name}{tuple(t.shape)}, but it must be "
                             f"{like.dtype.name}{tuple(like.shape)}")


def _gathered(tensor: Tensor, pg: ProcessGroup) -> Tensor:
    """The ranks' values of `tensor` stacked along a new leading dim, traced."""
    from tritonflow import api as T
    flat = T.reshape(tensor, (1,) + tuple(tensor.shape))
    return _traced("all_gather", [flat], {"group": pg.id, "world": pg.size()})


def all_gather(tensor_list: list, tensor: Tensor, group: ProcessGroup | None = None, async_op: bool = False):
    """Rank r's `tensor` into `tensor_list[r]` on every rank (each entry: the same shape and dtype)."""
    _check(tensor, "all_gather")
    pg = resolve(group, "all_gather")
    _check_list("all_gather", tensor_list, tensor, pg, "tensor_list")
    if trace_state.current() is not None:
        stacked = _gathered(tensor, pg)
        for i, t in enumerate(tensor_list):
            t._assign(stacked[i])
        return Work("all_gather", pg) if async_op else None
    out, work = host.all_gather(tensor._data.reshape((1,) + tuple(tensor.shape)), pg)

    def unpack():
        for i, t in enumerate(tensor_list):
            _rebind(t, out[i])
    return _finish("all_gather", pg, work, async_op, unpack)


def all_gather_into_tensor(output: Tensor, input: Tensor, group: ProcessGroup | None = None,
                           async_op: bool = False):
    """The ranks' `input`s concatenated along dim 0 into `output` (shape (world * n, ...))."""
    _check(output, "all_gather_into_tensor")
    _check(input, "all_gather_into_tensor")
    pg = resolve(group, "all_gather_into_tensor")
    want = ((input.shape[0] * pg.size(),) + tuple(input.shape[1:])) if input.shape else None
    if want is None or tuple(output.shape) != want or output.dtype is not input.dtype:
        raise ShapeError(f"all_gather_into_tensor: output {output.dtype.name}{tuple(output.shape)} must be "
                         f"{input.dtype.name}{want} for input {tuple(input.shape)} over {pg.size()} ranks")
    if trace_state.current() is not None:
        output._assign(_traced("all_gather", [input], {"group": pg.id, "world": pg.size()}))
        return Work("all_gather_into_tensor", pg) if async_op else None
    out, work = host.all_gather(input._data, pg)
    _rebind(output, out)
    return _finish("all_gather_into_tensor", pg, work, async_op)


def reduce_scatter_tensor(output: Tensor, input: Tensor, op=ReduceOp.SUM, group: ProcessGroup | None = None,
                          async_op: bool = False):
    """Reduce `input` (shape (world * n, ...)) over the ranks; rank r keeps rows [r*n, (r+1)*n)."""
    _check(output, "reduce_scatter_tensor")
    _check(input, "reduce_scatter_tensor")
    pg = resolve(group, "reduce_scatter_tensor")
    name = reduce_op_name(op, "reduce_scatter_tensor")
    world = pg.size()
    if not input.shape or input.shape[0] % world or \
            tuple(output.shape) != (input.shape[0] // world,) + tuple(input.shape[1:]) or output.dtype is not input.dtype:
        raise ShapeError(f"reduce_scatter_tensor: input {input.dtype.name}{tuple(input.shape)} must split over "
                         f"{world} ranks into the output {output.dtype.name}{tuple(output.shape)}")
    if trace_state.current() is not None:
        output._assign(_traced("reduce_scatter", [input], {"reduce_op": name, "group": pg.id, "world": world}))
        return Work("reduce_scatter_tensor", pg) if async_op else None
    out, work = host.reduce_scatter(input._data, name, pg)
    _rebind(output, out)
    return _finish("reduce_scatter_tensor", pg, work, async_op)


def reduce_scatter(output: Tensor, input_list: list, op=ReduceOp.SUM, group: ProcessGroup | None = None,
                   async_op: bool = False):
    """Reduce `input_list[r]` over the ranks into rank r's `output` (torch's list form)."""
    from tritonflow import api as T
    _check(output, "reduce_scatter")
    pg = resolve(group, "reduce_scatter")
    name = reduce_op_name(op, "reduce_scatter")
    _check_list("reduce_scatter", input_list, output, pg, "input_list")
    stacked = T.stack(list(input_list))  # (world, *shape): rank r's share is row r
    if trace_state.current() is not None:
        mine = _traced("reduce_scatter", [stacked], {"reduce_op": name, "group": pg.id, "world": pg.size()})
        output._assign(T.reshape(mine, tuple(output.shape)))
        return Work("reduce_scatter", pg) if async_op else None
    out, work = host.reduce_scatter(stacked._data, name, pg)
    return _finish("reduce_scatter", pg, work, async_op, lambda: _rebind(output, out.reshape(tuple(output.shape))))
