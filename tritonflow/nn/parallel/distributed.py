"""tritonflow.nn.parallel.DistributedDataParallel: one model replica per process, gradients averaged.

Front end stage (data-parallel training), with torch's names and behaviour:

- At wrap time every rank's parameters and buffers are compared (names, shapes, dtypes): a rank
  whose model differs fails with a ShapeError naming the first difference, on every rank. Then
  rank 0's values are broadcast, so all replicas start equal.
- In the backward, gradients are averaged in buckets (25 MB by default, `bucket_cap_mb`) as they
  become ready, each bucket's all-reduce running while the backward goes on (reducer.py).
- `with model.no_sync():` skips the averaging, for gradient accumulation: the next backward
  outside it averages the accumulated gradients.
- Buffers (running statistics) are broadcast from rank 0 before each forward (`broadcast_buffers`).

With `tritonflow.compile(ddp)` (or DDP around a compiled module) the forward runs as a graph and
the compiled backward is cut at the bucket boundaries, so it hands gradients to the reducer bucket
by bucket (tritonflow/staged_backward.py). In a jitted training step that takes the DDP model as
an argument, or reads it from a global or a closure, the forward, backward, averaging and
optimizer update all land in one graph: the all-reduces are recorded into it.
"""
from __future__ import annotations

import contextlib

import tritonflow.api as T
from tritonflow.tracer import state as trace_state
from tritonflow.errors import DTypeError, ShapeError, UnsupportedError
from tritonflow.nn.modules import Module, functional_clone
from tritonflow.nn.parallel.buckets import assign_buckets, bucket_limits
from tritonflow.nn.parallel.reducer import Reducer
from tritonflow.staged_backward import mark_backward_stages

BROADCAST_BUCKET_BYTES = 250 * 1024 * 1024  # torch's bucket for the start-up broadcast


class DistributedDataParallel(Module):
    def __init__(self, module, device_ids=None, output_device=None, dim: int = 0, broadcast_buffers: bool = True,
                 process_group=None, bucket_cap_mb: float | None = None, find_unused_parameters: bool = False,
                 gradient_as_bucket_view: bool = False, static_graph: bool = False, init_sync: bool = True) -> None:
        from tritonflow.distributed.process_group import resolve
        from tritonflow.nn.compiled import CompiledModule
        super().__init__()
        compiled = module if isinstance(module, CompiledModule) else None
        if compiled is not None:
            module = compiled.module
        if not isinstance(module, Module):
            raise DTypeError(f"DistributedDataParallel: expected an nn.Module, got {type(module).__name__}")
        if device_ids is not None and len(list(device_ids)) > 1:
            raise UnsupportedError("DistributedDataParallel: one device per process (device_ids with one entry, "
                                   "or None); start one process per GPU with torchrun")
        self.module = module
        self.process_group = resolve(process_group, "DistributedDataParallel")
        self.broadcast_buffers = broadcast_buffers
        self.dim = dim
        self.require_backward_grad_sync = True
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        if not named:
            raise UnsupportedError("DistributedDataParallel: the module has no parameter that requires grad; "
                                   "there is nothing to synchronize")
        verify_same_model(module, self.process_group)
        if init_sync:
            sync_tensors([t for _, t in module.state_dict(keep_vars=True).items()], self.process_group)
        params = [p for _, p in named]
        self.bucket_indices = assign_buckets(params, bucket_limits(bucket_cap_mb))
        self.reducer = Reducer(params, [n for n, _ in named], self.bucket_indices, self.process_group,
                               find_unused_parameters, lambda: self.require_backward_grad_sync)
        self.find_unused_parameters = find_unused_parameters
        self._compiled = None
        if compiled is not None:
            jit = compiled.jit_function
            self._compiled = CompiledModule(self, backend=jit.backend, dynamic=jit.dynamic, mode=jit.mode)

    # ---------------------------------------------------------------- forward

    def forward(self, *inputs, **kwargs):
        tracing = trace_state.current() is not None
        if not tracing and self._compiled is not None:
            return self._compiled(*inputs, **kwargs)
        if tracing:
            self._prepare_traced_backward()
        if self.broadcast_buffers:
            buffers = list(self.module.buffers())
            if buffers and self.process_group.size() > 1:
                sync_tensors(buffers, self.process_group)
        return self.module(*inputs, **kwargs)

    def _prepare_traced_backward(self) -> None:
        """Inside a trace the parameters are proxies (the DDP model passed as an argument) or
        shadows (read from a global or a closure): reduce those (a jitted training step) and cut
        the compiled backward at the bucket boundaries (tritonflow.compile)."""
        ctx = trace_state.current()
        proxies = [p if p._node is not None else ctx.shadow_of(p) for p in self.module.parameters() if p.requires_grad]
        if len(proxies) != len(self.reducer.params):
            raise UnsupportedError(f"DistributedDataParallel: the module has {len(proxies)} parameters that require "
                                   f"grad, but {len(self.reducer.params)} when it was wrapped; wrap it again after "
                                   f"changing requires_grad")
        # Whether gradients are averaged shapes the graph: no_sync() entered or left compiles anew.
        ctx.guard_value(("ddp no_sync", id(self)), lambda: self.require_backward_grad_sync,
                        "DistributedDataParallel's no_sync()")
        Reducer(proxies, self.reducer.names, self.bucket_indices, self.process_group, self.find_unused_parameters,
                lambda: self.require_backward_grad_sync)
        mark_backward_stages([[proxies[i] for i in bucket] for bucket in self.bucket_indices])

    # ---------------------------------------------------------------- accumulation

    @contextlib.contextmanager
    def no_sync(self):
        """Backward passes inside accumulate gradients locally, without averaging them."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    # ---------------------------------------------------------------- jit arguments

    def __tritonflow_flatten__(self):
        # Whether gradients are averaged shapes a traced step's graph: part of its cache key.
        tensors, aux = super().__tritonflow_flatten__()
        return tensors, aux + (self.require_backward_grad_sync,)

    @classmethod
    def __tritonflow_unflatten__(cls, aux, tensors):
        module, names = aux[0], aux[1]
        return functional_clone(module, {name: tensors[i] for name, i in names})

    def extra_repr(self) -> str:
        return f"buckets={len(self.bucket_indices)}, world={self.process_group.size()}"


def _signature(module: Module) -> list:
    rows = [("parameter", n, tuple(int(d) for d in p.shape), p.dtype.name) for n, p in module.named_parameters()]
    rows += [("buffer", n, tuple(int(d) for d in b.shape), b.dtype.name) for n, b in module.named_buffers()]
    return rows


def verify_same_model(module: Module, group) -> None:
    """Raise, on every rank, when some rank's parameters or buffers differ from rank 0's."""
    from tritonflow.distributed.process_group import all_gather_object
    everyone: list = [None] * group.size()
    all_gather_object(everyone, _signature(module), group)
    reference = everyone[0]
    for rank, rows in enumerate(everyone[1:], start=1):
        if rows == reference:
            continue
        for mine, theirs in zip(rows, reference):
            if mine != theirs:
                raise ShapeError(f"DistributedDataParallel: the model on rank {rank} differs from rank 0's: "
                                 f"{mine[0]} {mine[1]!r} is {mine[3]}{mine[2]} on rank {rank}, but rank 0 has "
                                 f"{theirs[0]} {theirs[1]!r} {theirs[3]}{theirs[2]}")
        raise ShapeError(f"DistributedDataParallel: the model on rank {rank} has {len(rows)} parameters and buffers, "
                         f"rank 0's has {len(reference)}")


def sync_tensors(tensors: list, group) -> None:
    """Rank 0's values of `tensors` on every rank: flattened per dtype into few broadcasts."""
    from tritonflow.distributed.collectives import broadcast
    src = group.ranks[0]
    tensors = [t for t in tensors if t is not None]
    tracing = trace_state.current() is not None
    for bucket in assign_buckets(tensors, [BROADCAST_BUCKET_BYTES], reverse=False):
        members = [tensors[i] for i in bucket]
        pieces = [T.reshape(t.detach(), (-1,)) for t in members]
        flat = T.cat(pieces) if len(pieces) > 1 else T.clone(pieces[0])
        broadcast(flat, src, group)
        if group.rank() == 0 and not tracing:
            continue  # the source's values are what everyone now has (traced, the result must be used
            # on every rank, or dead-code elimination would drop rank 0's side of the broadcast)
        offset = 0
        for t in members:
            size = 1
            for d in t.shape:
                size *= int(d)
            value = T.reshape(flat[offset:offset + size], tuple(t.shape))
            offset += size
            if tracing:
                t._assign(value)
            else:
                t._data = value._data  # identity kept: optimizers and the reducer hold these tensors
                t._version += 1
