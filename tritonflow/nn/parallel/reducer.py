"""tritonflow.nn.parallel: the Reducer — averages gradients across ranks, bucket by bucket, during backward.

Front end stage (data-parallel training). A post-accumulate-grad hook on each parameter tells the
reducer its gradient is complete for this backward. When every gradient of the next bucket is in,
the bucket is flattened into one fresh buffer, divided by the world size, and its all-reduce is
started asynchronously; buckets start strictly in order, so every rank issues the same sequence
of collectives. The rest of the backward runs while the bytes travel. At the end of the backward
(autograd's queue_callback) the reducer waits for the buckets and sets each `param.grad` to its
slice of the averaged buffer (a view: nothing is copied back).

The same code runs inside a trace (a jitted training step): the parameters are then the trace's
proxies, the all-reduce is recorded into the graph, and the averaged gradients become the grads
the graph writes back. With `find_unused_parameters`, buckets whose parameters got no gradient
are reduced at the end with zeros in their place, and a small all-reduce of which parameters
each rank used decides which gradients stay None (unused on every rank), as in torch.
"""
from __future__ import annotations

import tritonflow.api as T
from tritonflow import autograd_hooks
from tritonflow.tracer import state as trace_state
from tritonflow.errors import DistributedError


class Reducer:
    """Gradient averaging for `params` (parallel `names`) in `buckets` (lists of indices)."""

    def __init__(self, params: list, names: list, buckets: list, group, find_unused_parameters: bool,
                 sync_enabled) -> None:
        self.params = params
        self.names = names
        self.buckets = buckets
        self.group = group
        self.world = group.size()
        self.find_unused = find_unused_parameters
        self.sync_enabled = sync_enabled  # () -> bool: False inside no_sync()
        self.bucket_of = {i: b for b, bucket in enumerate(buckets) for i in bucket}
        self.handles = [p.register_post_accumulate_grad_hook(lambda p, i=i: self._grad_ready(i))
                        for i, p in enumerate(params)]
        self._reset()
        self.buckets_launched = 0  # over the reducer's life: tests and benchmarks read it

    def _reset(self) -> None:
        self.backward = None   # the backward this state belongs to (autograd_hooks.current_backward)
        self.ready: set[int] = set()
        self.counts = [0] * len(self.buckets)
        self.next_bucket = 0
        self.in_flight: list = []   # (bucket index, flat buffer, work)

    def remove_hooks(self) -> None:
        for handle in self.handles:
            handle.remove()

    # ---------------------------------------------------------------- during backward

    def _grad_ready(self, index: int) -> None:
        if not self.sync_enabled():
            return
        running = autograd_hooks.current_backward()
        if self.backward is not running:
            # A new backward (an earlier one that failed midway never finished: start afresh).
            self._reset()
            self.backward = running
            autograd_hooks.queue_callback(self._finish)
        if index in self.ready:
            return
        self.ready.add(index)
        self.counts[self.bucket_of[index]] += 1
        self._launch_ready_buckets()

    def _launch_ready_buckets(self) -> None:
        while self.next_bucket < len(self.buckets) and \
                self.counts[self.next_bucket] == len(self.buckets[self.next_bucket]):
            self._launch(self.next_bucket)
            self.next_bucket += 1

    def _launch(self, b: int) -> None:
        from tritonflow.distributed.collectives import ReduceOp, all_reduce_
        pieces = []
        for i in self.buckets[b]:
            p = self.params[i]
            g = p.grad if p.grad is not None else T.zeros(tuple(p.shape), dtype=p.dtype, device=p.device)
            pieces.append(T.reshape(g.detach(), (-1,)))
        # Divided before the sum (as torch's default hook): fp16 sums of many ranks stay in range.
        flat = (T.cat(pieces) if len(pieces) > 1 else pieces[0]) / self.world
        work = all_reduce_(flat, ReduceOp.SUM, self.group, async_op=True, owned=True)
        self.in_flight.append((b, flat, work))
        self.buckets_launched += 1

    # ---------------------------------------------------------------- end of backward

    def _finish(self) -> None:
        try:
            globally_used = None
            if self.next_bucket < len(self.buckets):
                if not self.find_unused:
                    missing = [self.names[i] for i in range(len(self.params)) if i not in self.ready]
                    raise DistributedError(
                        f"DistributedDataParallel: parameters received no gradient in this backward: "
                        f"{missing[:8]}{' ...' if len(missing) > 8 else ''}; every rank must produce a gradient "
                        f"for every parameter, or pass find_unused_parameters=True")
                # Traced, which parameters were used is a value of the graph: all get a gradient.
                globally_used = self._used_anywhere() if trace_state.current() is None else None
                for b in range(self.next_bucket, len(self.buckets)):
                    self._launch(b)
            for b, flat, work in self.in_flight:
                work.wait()
                self._unpack(b, flat, globally_used)
        finally:
            self._reset()

    def _used_anywhere(self) -> list:
        """Whether each parameter got a gradient on some rank (one small all-reduce)."""
        from tritonflow.distributed.collectives import all_reduce_
        used = T.tensor([1.0 if i in self.ready else 0.0 for i in range(len(self.params))], dtype="float32")
        all_reduce_(used, "max", self.group)
        return [bool(v) for v in used.tolist()]

    def _unpack(self, b: int, flat, globally_used) -> None:
        offset = 0
        for i in self.buckets[b]:
            p = self.params[i]
            size = 1
            for d in p.shape:
                size *= int(d)
            if globally_used is None or globally_used[i]:
                p.grad = T.reshape(flat[offset:offset + size], tuple(p.shape))
            offset += size
