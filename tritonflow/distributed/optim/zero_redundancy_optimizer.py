"""tritonflow.distributed.optim.ZeroRedundancyOptimizer: optimizer state sharded across ranks (ZeRO stage 1).

Front end stage (data-parallel training). With DDP every rank holds the same averaged gradients
and would run the same update on every parameter, keeping a full copy of, say, Adam's two
moments. Here each parameter has one owner rank (largest first, to the least loaded rank, per
parameter group, as torch's ZeroRedundancyOptimizer partitions them): only the owner keeps its
optimizer state and runs its update (a local instance of `optimizer_class` over the owned
parameters), then the updated parameters are all-gathered — per dtype, each rank's share
flattened into one buffer padded to the largest share — and every rank rebinds the others'
parameters to their slices. The result equals the unsharded optimizer's; each rank keeps about
1/world of the state (`state_bytes()`).

`consolidate_state_dict(to)` gathers the shards into an ordinary optimizer state dict (the one
`optimizer_class` itself would save) on rank `to`; `load_state_dict` takes such a dict on every rank.
"""
from __future__ import annotations

import numpy as np

import tritonflow.api as T
from tritonflow.tracer import state as trace_state
from tritonflow.errors import DistributedError, DTypeError, UnsupportedError
from tritonflow.nn.parallel.buckets import nbytes
from tritonflow.tensor_class import Tensor


def optimizer_state_bytes(optimizer) -> int:
    """Bytes of the state tensors `optimizer` keeps (moments, step counts) in this process."""
    return sum(nbytes(v) for state in optimizer.state.values() for v in state.values() if isinstance(v, Tensor))


def _numel(p) -> int:
    size = 1
    for d in p.shape:
        size *= int(d)
    return size


class ZeroRedundancyOptimizer:
    def __init__(self, params, optimizer_class, process_group=None, parameters_as_bucket_view: bool = False,
                 overlap_with_ddp: bool = False, **defaults) -> None:
        from tritonflow.distributed.process_group import resolve
        if overlap_with_ddp:
            raise UnsupportedError("ZeroRedundancyOptimizer: overlap_with_ddp is not supported; step after backward")
        if isinstance(params, Tensor):
            raise DTypeError("ZeroRedundancyOptimizer: params must be an iterable of tensors or of dicts, "
                             "got a single Tensor (wrap it in a list)")
        params = list(params)
        if not params:
            raise DTypeError("ZeroRedundancyOptimizer: got an empty parameter list")
        self.group = resolve(process_group, "ZeroRedundancyOptimizer")
        self.world, self.rank = self.group.size(), self.group.rank()
        self.optimizer_class = optimizer_class
        self.defaults = dict(defaults)
        self.param_groups: list[dict] = []
        self.owner: dict[int, int] = {}           # id(param) -> owning rank
        self._loads = [0] * self.world
        self._consolidated = None
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        local = [self._partition(dict(g)) for g in groups]
        self.optim = optimizer_class(local, **defaults)
        self._fill_defaults()
        self._plan_exchange()

    def _fill_defaults(self) -> None:
        # This optimizer's groups carry every hyperparameter, as the local optimizer's do (lr schedules read them).
        for group, mine in zip(self.param_groups, self.optim.param_groups):
            for key, value in mine.items():
                if key != "params":
                    group.setdefault(key, value)

    # ---------------------------------------------------------------- partition

    def _partition(self, group: dict) -> dict:
        """Give each parameter of `group` an owner; return this rank's share of the group."""
        params = [group["params"]] if isinstance(group["params"], Tensor) else list(group["params"])
        group["params"] = params
        for p in sorted(params, key=_numel, reverse=True):  # sorted() is stable: ties keep their order
            rank = min(range(self.world), key=lambda r: self._loads[r])
            self.owner[id(p)] = rank
            self._loads[rank] += _numel(p)
        self.param_groups.append(group)
        return dict(group, params=[p for p in params if self.owner[id(p)] == self.rank])

    def add_param_group(self, group: dict) -> None:
        self.optim.add_param_group(self._partition(dict(group)))
        self._fill_defaults()
        self._plan_exchange()

    def _plan_exchange(self) -> None:
        """Per (dtype, device): each rank's owned parameters, in a fixed order every rank agrees on."""
        plan: dict = {}
        for group in self.param_groups:
            for p in group["params"]:
                shares = plan.setdefault((p.dtype.name, p.device), [[] for _ in range(self.world)])
                shares[self.owner[id(p)]].append(p)
        self._exchange = list(plan.values())

    @property
    def state(self) -> dict:
        return self.optim.state

    def state_bytes(self) -> int:
        """Bytes of optimizer state this rank keeps (its shard)."""
        return optimizer_state_bytes(self.optim)

    # ---------------------------------------------------------------- stepping

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad = None if set_to_none else T.zeros_like(p.grad)

    def _sync_hyper(self) -> None:
        """Hyperparameters set on this optimizer's groups (an lr schedule) reach the local shard's."""
        for group, mine in zip(self.param_groups, self.optim.param_groups):
            for key, value in group.items():
                if key != "params":
                    mine[key] = value
        self.optim._sync_hyper()

    def step(self, closure=None):
        if trace_state.current() is not None:
            raise UnsupportedError("ZeroRedundancyOptimizer.step inside a jitted function is not supported: call "
                                   "it outside (jit the forward and backward, or use a plain optimizer in the step)")
        self._sync_hyper()
        loss = self.optim.step(closure)
        self._all_gather_parameters()
        return loss

    def _all_gather_parameters(self) -> None:
        from tritonflow.distributed.collectives import all_gather_into_tensor
        for shares in self._exchange:
            longest = max(sum(_numel(p) for p in share) for share in shares)
            if longest == 0:
                continue
            mine = [T.reshape(p.detach(), (-1,)) for p in shares[self.rank]]
            sample = next(p for share in shares for p in share)
            pad = longest - sum(_numel(p) for p in shares[self.rank])
            if pad or not mine:
                mine.append(T.zeros((pad,), dtype=sample.dtype, device=sample.device))
            gathered = T.zeros((longest * self.world,), dtype=sample.dtype, device=sample.device)
            all_gather_into_tensor(gathered, T.cat(mine) if len(mine) > 1 else mine[0], self.group)
            for rank, share in enumerate(shares):
                if rank == self.rank:
                    continue
                offset = rank * longest
                for p in share:
                    value = T.reshape(gathered[offset:offset + _numel(p)], tuple(p.shape))
                    p._data = value._data  # identity kept: the model and DDP hold these tensors
                    p._version += 1
                    offset += _numel(p)

    # ---------------------------------------------------------------- saving

    def _global_index(self) -> dict:
        index, n = {}, 0
        for group in self.param_groups:
            for p in group["params"]:
                index.setdefault(id(p), n)
                n = len(index)
        return index

    def consolidate_state_dict(self, to: int = 0) -> None:
        """Gather every rank's shard of the state into a full state dict on rank `to` (collective)."""
        from tritonflow.distributed.process_group import all_gather_object
        index = self._global_index()
        local = self.optim.state_dict()
        owned = [p for g in self.optim.param_groups for p in g["params"]]
        mine = {index[id(owned[i])]: {k: (str(v.dtype.name), v.numpy()) for k, v in entry.items()}
                for i, entry in local["state"].items()}
        everyone: list = [None] * self.world
        all_gather_object(everyone, mine, self.group)
        if self.rank != to:
            self._consolidated = None
            return
        state = {}
        for shard in everyone:
            for i, entry in shard.items():
                state[i] = {k: T.tensor(np.asarray(a), dtype=dtype) for k, (dtype, a) in entry.items()}
        groups = []
        for group, saved in zip(self.param_groups, local["param_groups"]):
            hyper = {k: v for k, v in saved.items() if k != "params"}
            groups.append({**hyper, "params": [index[id(p)] for p in group["params"]]})
        self._consolidated = {"state": dict(sorted(state.items())), "param_groups": groups}

    def state_dict(self) -> dict:
        if self._consolidated is None:
            raise DistributedError(f"ZeroRedundancyOptimizer.state_dict on rank {self.rank}: call "
                                   f"consolidate_state_dict(to={self.rank}) on every rank first")
        return self._consolidated

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a full state dict (a consolidated one, or the unsharded optimizer's): each rank keeps its shard."""
        index = self._global_index()
        owned = [p for g in self.optim.param_groups for p in g["params"]]
        local_groups = []
        for saved, group in zip(state_dict["param_groups"], self.optim.param_groups):
            local_groups.append({**{k: v for k, v in saved.items() if k != "params"},
                                 "params": [index[id(p)] for p in group["params"]]})
        states = state_dict["state"]
        local_state = {index[id(p)]: states.get(index[id(p)], states.get(str(index[id(p)]), {})) for p in owned}
        self.optim.load_state_dict({"state": local_state, "param_groups": local_groups})
        for group, saved in zip(self.param_groups, state_dict["param_groups"]):
            group.update({k: v for k, v in saved.items() if k != "params"})

    def __repr__(self) -> str:
        return f"ZeroRedundancyOptimizer({self.optimizer_class.__name__}, rank {self.rank} of {self.world})"
