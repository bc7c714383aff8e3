"""tritonflow.optim: the Optimizer base — parameter groups, state, and one compiled update per group.

Framework stage. `step()` runs the update of all parameters of a group (with gradients) as ONE
jitted function over lists of parameters, gradients and state tensors; the jit writes the in-place
updates back. Hyperparameters live in persistent 0-d tensors passed as arguments, so a learning
rate schedule changes values without recompiling. State tensors are created when a parameter is
added (not lazily at the first step), so a whole training step can be jitted with the optimizer
inside. Everything is validated before anything is written: a failed step changes no parameter.

Called inside a jitted function that closes over the optimizer, `step()` traces its update into
the caller's graph: parameters, gradients, state and hyperparameter tensors are captured state,
written back after each call. It asks jit to refresh the hyperparameter tensors from the groups'
Python values before every call, and guards the groups' membership and graph-shaping flags.
"""
from __future__ import annotations

from collections import OrderedDict

import tritonflow.api as T
from tritonflow import dtypes as D
from tritonflow.tracer import state as trace_state
from tritonflow.tracer.sources import ATTR, ITEM, register_container
from tritonflow.autograd import enable_grad, no_grad
from tritonflow.errors import AutogradError, DeviceError, DTypeError, ShapeError, TritonflowError
from tritonflow.tensor_class import Tensor


class Optimizer:
    """Subclasses define `_hyper_values(group)` (float hyperparameters, passed as tensors),
    `_static(group)` (hashable flags that shape the graph), `_init_state(p, group)` and the static
    `_update(params, grads, states, hyper, static)` that writes its results in place."""

    def __init__(self, params, defaults: dict, backend: str | None = None) -> None:
        self.defaults = dict(defaults)
        self.param_groups: list[dict] = []
        self.state: dict = {}
        self._hyper: list[dict] = []
        self._backend = backend
        self._jitted = None
        if isinstance(params, Tensor):
            raise DTypeError(f"{type(self).__name__}: params must be an iterable of tensors or of dicts, "
                             f"got a single Tensor (wrap it in a list)")
        params = list(params)
        if not params:
            raise ShapeError(f"{type(self).__name__}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)

    # ---------------------------------------------------------------- groups and state

    def add_param_group(self, group: dict) -> None:
        group = dict(group)
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        name = type(self).__name__
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise DTypeError(f"{name}: parameter {i} is a {type(p).__name__}, not a Tensor")
            if p._grad_fn is not None:
                raise AutogradError(f"{name}: can only optimize leaf tensors, but parameter {i} (shape "
                                    f"{tuple(p.shape)}) is the result of an operation ({p._grad_fn!r}); "
                                    f"pass the original tensor or use .detach().requires_grad_()")
            if not p.dtype.is_floating_point:
                raise DTypeError(f"{name}: parameter {i} has dtype {p.dtype.name}; only floating point "
                                 f"tensors can be optimized")
            if id(p) in seen:
                raise TritonflowError(f"{name}: parameter {i} (shape {tuple(p.shape)}) appears in more than one "
                                      f"parameter group (or twice in one)")
            seen.add(id(p))
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        group["params"] = params
        self._check_group(group)
        self.param_groups.append(group)
        self._hyper.append({})
        with no_grad():
            for p in params:
                self.state[p] = self._init_state(p, group)
        self._sync_hyper()

    def _check_group(self, group: dict) -> None:
        if group["lr"] < 0:
            raise ShapeError(f"{type(self).__name__}: invalid learning rate {group['lr']}")

    def _init_state(self, p: Tensor, group: dict) -> dict:
        return {}

    def _hyper_values(self, group: dict) -> dict:
        return {"lr": group["lr"]}

    def _static(self, group: dict) -> tuple:
        return ()

    def _sync_hyper(self) -> None:
        """Bring each group's hyperparameter tensors in line with its (Python) values."""
        if trace_state.current() is not None:
            if self.__dict__.get("_tritonflow_clone"):
                return   # an optimizer passed to jit: its tensors are arguments, refreshed by flattening
            # Closed over by a jitted step, the tensors are captured inputs: refreshed now, eagerly,
            # so the trace reads their current dtype and device, and by jit before every call.
            with trace_state.suspended():
                self._sync_hyper()
            return
        for group, hyper in zip(self.param_groups, self._hyper):
            device = group["params"][0].device if group["params"] else "cpu"
            dtype = D.float64 if any(p.dtype is D.float64 for p in group["params"]) else D.float32
            for key, value in self._hyper_values(group).items():
                value = float(value)
                current = hyper.get(key)
                if current is not None and current.device == device and current.dtype is dtype and \
                        current._cached == value:
                    continue
                fresh = T.tensor(value, dtype=dtype, device=device)
                if current is None:
                    hyper[key] = _HyperTensor(fresh, value)
                else:
                    # Rebind in place: a jitted step that captured this tensor reads the new value.
                    current._data, current.dtype, current.device = fresh._data, fresh.dtype, fresh.device
                    current._cached = value
                    current._version += 1

    # ---------------------------------------------------------------- stepping

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None   # written without reading: a jitted step need not guard what it held
                elif p.grad is not None:
                    p.grad = T.zeros_like(p.grad)

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        ctx = trace_state.current()
        if ctx is not None and not self.__dict__.get("_tritonflow_clone"):
            name = ctx.name_of(self, type(self).__name__)
            ctx.defer(("sync_hyper", id(self)), self._sync_hyper, before=True,
                      what=f"{name}: hyperparameter tensors refreshed from param_groups")
            ctx.guard_value(("optimizer", id(self)), self._graph_signature,
                            f"{name}: its parameter groups and the flags that shape its update", show=False)
        self._sync_hyper()
        plans = []
        for index, group in enumerate(self.param_groups):
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                self._check_grads(params)
                plans.append((index, group, params))
        with no_grad():
            for index, group, params in plans:
                grads = [p.grad for p in params]
                states = [self.state[p] for p in params]
                self._run_update(params, grads, states, self._hyper[index], self._static(group))
        return loss

    def _graph_signature(self) -> tuple:
        """What a traced update depends on besides tensors: which parameters, which flags."""
        return tuple((tuple(map(id, g["params"])), self._static(g)) for g in self.param_groups)

    def _check_grads(self, params: list) -> None:
        name = type(self).__name__
        for i, p in enumerate(params):
            g = p.grad
            if tuple(g.shape) != tuple(p.shape):
                raise ShapeError(f"{name}.step: parameter {i} has shape {tuple(p.shape)} but its gradient has "
                                 f"shape {tuple(g.shape)}")
            if g.device != p.device:
                raise DeviceError(f"{name}.step: parameter {i} is on {p.device} but its gradient is on {g.device}")
            if not g.dtype.is_floating_point:
                raise DTypeError(f"{name}.step: the gradient of parameter {i} has dtype {g.dtype.name}")

    def _run_update(self, params, grads, states, hyper, static) -> None:
        if trace_state.current() is not None:
            type(self)._update(params, grads, states, hyper, static)
            return
        if self._jitted is None:
            from tritonflow.jit_function import jit
            self._jitted = jit(type(self)._update, backend=self._backend)
        self._jitted(params, grads, states, hyper, static)

    @staticmethod
    def _update(params: list, grads: list, states: list, hyper: dict, static: tuple) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------------- saving

    def state_dict(self) -> dict:
        """{"state": {param index: {name: tensor}}, "param_groups": [{hyperparameters, "params": [indices]}]}."""
        index_of, state, groups = {}, OrderedDict(), []
        for group in self.param_groups:
            indices = []
            for p in group["params"]:
                index_of.setdefault(id(p), len(index_of))
                indices.append(index_of[id(p)])
                state[index_of[id(p)]] = {k: v.detach() for k, v in self.state[p].items()}
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": indices})
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        groups = state_dict["param_groups"]
        name = type(self).__name__
        if len(groups) != len(self.param_groups):
            raise ShapeError(f"{name}.load_state_dict: {len(groups)} parameter groups in the state dict, "
                             f"{len(self.param_groups)} in the optimizer")
        plan = []
        for gi, (saved, group) in enumerate(zip(groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ShapeError(f"{name}.load_state_dict: group {gi} has {len(saved['params'])} parameters in "
                                 f"the state dict and {len(group['params'])} in the optimizer")
            for index, p in zip(saved["params"], group["params"]):
                entries = state_dict["state"].get(index, state_dict["state"].get(str(index), {}))
                for key, target in self.state[p].items():
                    if key not in entries:
                        raise ShapeError(f"{name}.load_state_dict: state {key!r} of parameter {index} is missing")
                    value = entries[key]
                    value = value if isinstance(value, Tensor) else T.tensor(value)
                    if tuple(value.shape) != tuple(target.shape):
                        raise ShapeError(f"{name}.load_state_dict: state {key!r} of parameter {index} has shape "
                                         f"{tuple(value.shape)}, expected {tuple(target.shape)}")
                    plan.append((target, value))
        with no_grad():
            for target, value in plan:
                target.copy_(T.to(value.detach(), target.device))
        for saved, group in zip(groups, self.param_groups):
            for key, value in saved.items():
                if key != "params":
                    group[key] = tuple(value) if isinstance(value, list) else value
        self._sync_hyper()

    # ---------------------------------------------------------------- jit arguments

    def __tritonflow_flatten__(self):
        """An optimizer passed to a jitted step: parameters, state and hyperparameter tensors are
        arguments (read and written back at each call); the graph-shaping flags are static."""
        self._sync_hyper()
        groups = [{"params": list(g["params"]),
                   "state": [self.state[p] for p in g["params"]],
                   "hyper": dict(h)} for g, h in zip(self.param_groups, self._hyper)]
        static = tuple(self._static(g) for g in self.param_groups)
        return groups, (self, static)

    def __tritonflow_labels__(self) -> list[str]:
        """A name per flattened tensor, in `__tritonflow_flatten__`'s order (graph input names)."""
        labels, index_of = [], {}
        for g, (group, hyper) in enumerate(zip(self.param_groups, self._hyper)):
            labels += [f"param_groups.{g}.params.{j}" for j in range(len(group["params"]))]
            for p in group["params"]:
                index = index_of.setdefault(id(p), len(index_of))
                labels += [f"state.{index}.{key}" for key in self.state[p]]
            labels += [f"param_groups.{g}.{key}" for key in hyper]
        return labels

    @classmethod
    def __tritonflow_unflatten__(cls, aux, groups):
        original = aux[0]
        clone = object.__new__(type(original))
        clone.__dict__.update(original.__dict__)
        clone._tritonflow_clone = True   # runs on proxies: not captured state
        clone.param_groups = [dict(g, params=list(t["params"])) for g, t in zip(original.param_groups, groups)]
        clone.state = {p: s for t in groups for p, s in zip(t["params"], t["state"])}
        clone._hyper = [t["hyper"] for t in groups]
        return clone

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        return "\n".join(lines) + "\n)"


class _HyperTensor(Tensor):
    """A persistent 0-d hyperparameter tensor that remembers the Python value it holds."""

    __slots__ = ("_cached",)

    def __init__(self, src: Tensor, value) -> None:  # noqa: D107
        self._data, self._node, self._trace = src._data, None, None
        self.dtype, self._shape, self.device = src.dtype, src._shape, src.device
        self.requires_grad, self.grad, self._grad_fn = False, None, None
        self._version, self._retains_grad = 0, False
        self._cached = value


def _state_children(opt: Optimizer) -> list:
    """Where an optimizer keeps tensors, for captured-state names (tracer/sources.py): its state
    per parameter (by the parameter's index, as in state_dict), its hyperparameter tensors, and
    its parameters (named after the model first, when the walk finds one)."""
    children, index_of = [], {}
    for g, group in enumerate(opt.param_groups):
        for p in group["params"]:
            index = index_of.setdefault(id(p), len(index_of))
            children.append((f"state.{index}", ((ATTR, "state"), (ITEM, p)), opt.state[p], False))
    for g, hyper in enumerate(opt._hyper):
        children.append((f"param_groups.{g}", ((ATTR, "_hyper"), (ITEM, g)), hyper, False))
    for g, group in enumerate(opt.param_groups):
        for j, p in enumerate(group["params"]):
            children.append((f"param_groups.{g}.params.{j}",
                             ((ATTR, "param_groups"), (ITEM, g), (ITEM, "params"), (ITEM, j)), p, True))
    return children


register_container(Optimizer, _state_children)


def zeros_state(p: Tensor) -> Tensor:
    return T.zeros(tuple(p.shape), dtype=p.dtype, device=p.device)


def step_state(p: Tensor) -> Tensor:
    dtype = D.float64 if p.dtype is D.float64 else D.float32
    return T.zeros((), dtype=dtype, device=p.device)
