"""tritonflow.optim.Adam and AdamW: adaptive moments with bias correction (optionally AMSGrad).

Framework stage. Same update as torch.optim.Adam/AdamW (Adam folds weight decay into the
gradient; AdamW decays the weights directly). The step count is a per-parameter tensor, so bias
correction is computed in-graph and the update compiles once.
"""
from __future__ import annotations

import tritonflow.api as T
from tritonflow.errors import ShapeError
from tritonflow.optim.optimizer import Optimizer, step_state, zeros_state


class Adam(Optimizer):
    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, maximize: bool = False,
                 backend: str | None = None) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize)
        super().__init__(params, defaults, backend)

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        b1, b2 = group["betas"]
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ShapeError(f"{type(self).__name__}: betas must be in [0, 1), got {group['betas']}")
        if group["eps"] < 0 or group["weight_decay"] < 0:
            raise ShapeError(f"{type(self).__name__}: eps and weight_decay must be >= 0")

    def _init_state(self, p, group: dict) -> dict:
        state = {"step": step_state(p), "exp_avg": zeros_state(p), "exp_avg_sq": zeros_state(p)}
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = zeros_state(p)
        return state

    def _hyper_values(self, group: dict) -> dict:
        b1, b2 = group["betas"]
        return {"lr": group["lr"], "beta1": b1, "beta2": b2, "eps": group["eps"],
                "weight_decay": group["weight_decay"]}

    def _static(self, group: dict) -> tuple:
        return (self.decoupled, group["weight_decay"] != 0, bool(group["amsgrad"]), bool(group["maximize"]))

    @staticmethod
    def _update(params, grads, states, hyper, static) -> None:
        decoupled, use_decay, amsgrad, maximize = static
        lr, b1, b2, eps = hyper["lr"], hyper["beta1"], hyper["beta2"], hyper["eps"]
        for p, g, state in zip(params, grads, states):
            if maximize:
                g = -g
            if use_decay:
                if decoupled:
                    p.mul_(1.0 - lr * hyper["weight_decay"])
                else:
                    g = g + p * hyper["weight_decay"]
            step = state["step"]
            step.add_(1)
            m, v = state["exp_avg"], state["exp_avg_sq"]
            m.copy_(m * b1 + g * (1.0 - b1))
            v.copy_(v * b2 + g * g * (1.0 - b2))
            bias1 = 1.0 - T.pow(b1, step)
            bias2_sqrt = T.sqrt(1.0 - T.pow(b2, step))
            if amsgrad:
                vmax = state["max_exp_avg_sq"]
                vmax.copy_(T.maximum(vmax, v))
                v = vmax
            denom = T.sqrt(v) / bias2_sqrt + eps
            p.sub_(m / denom * (lr / bias1))


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.01, as in PyTorch)."""

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, maximize: bool = False,
                 backend: str | None = None) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize, backend)
