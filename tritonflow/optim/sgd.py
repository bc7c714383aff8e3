"""tritonflow.optim.SGD: stochastic gradient descent with momentum, dampening, Nesterov, weight decay.

Framework stage. Same update as torch.optim.SGD: the first step's momentum buffer is the gradient
itself (chosen in-graph from the per-parameter step count, so it compiles once).
"""
from __future__ import annotations

import tritonflow.api as T
from tritonflow.errors import ShapeError
from tritonflow.optim.optimizer import Optimizer, step_state, zeros_state


class SGD(Optimizer):
    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, maximize: bool = False,
                 backend: str | None = None) -> None:
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ShapeError("SGD: Nesterov momentum needs momentum > 0 and dampening = 0")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults, backend)

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        if group["momentum"] < 0 or group["weight_decay"] < 0:
            raise ShapeError(f"SGD: momentum and weight_decay must be >= 0, got {group['momentum']}, "
                             f"{group['weight_decay']}")

    def _init_state(self, p, group: dict) -> dict:
        if group["momentum"] == 0:
            return {}
        return {"momentum_buffer": zeros_state(p), "step": step_state(p)}

    def _hyper_values(self, group: dict) -> dict:
        return {"lr": group["lr"], "momentum": group["momentum"], "dampening": group["dampening"],
                "weight_decay": group["weight_decay"]}

    def _static(self, group: dict) -> tuple:
        return (group["momentum"] != 0, group["weight_decay"] != 0, bool(group["nesterov"]), bool(group["maximize"]))

    @staticmethod
    def _update(params, grads, states, hyper, static) -> None:
        use_momentum, use_decay, nesterov, maximize = static
        lr = hyper["lr"]
        for p, g, state in zip(params, grads, states):
            if maximize:
                g = -g
            if use_decay:
                g = g + p * hyper["weight_decay"]
            if use_momentum:
                buf, step = state["momentum_buffer"], state["step"]
                blended = buf * hyper["momentum"] + g * (1.0 - hyper["dampening"])
                buf.copy_(T.where(step == 0, g, blended))
                step.add_(1)
                g = g + buf * hyper["momentum"] if nesterov else buf
            p.sub_(g * lr)
