"""tritonflow.optim.lr_scheduler: learning-rate schedules (cosine with warm-up, step, lambda).

Framework stage. A scheduler writes `group["lr"]` and refreshes the optimizer's hyperparameter
tensors, which compiled updates read at each call: a schedule never causes a recompile.

Inside a jitted training step, `step()` is not traced: its Python arithmetic (the step count, the
float learning rate) is what torch.compile would guard on and recompile for at every step.
Instead jit runs it at every call, after the graph when the step's update has already read the
learning rate (the usual order: `opt.step(); sched.step()`), before it otherwise; the graph reads
the learning-rate tensor as an input. N scheduled steps therefore compile once, and the
scheduler's Python state (`last_epoch`, `get_last_lr()`, `group["lr"]`) is exact after each call.
"""
from __future__ import annotations

import math

from tritonflow.errors import ShapeError
from tritonflow.tracer import state as trace_state


class LRScheduler:
    def __init__(self, optimizer, last_epoch: int = -1) -> None:
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def get_lr(self) -> list[float]:
        return [base * self.factor(self.last_epoch) for base in self.base_lrs]

    def factor(self, step: int) -> float:
        raise NotImplementedError

    def step(self) -> None:
        ctx = trace_state.current()
        if ctx is None:
            self._advance()
            return
        lrs = tuple(hyper["lr"] for hyper in self.optimizer._hyper if "lr" in hyper)
        ctx.defer(None, self._advance, before=None, what=f"{ctx.name_of(self, type(self).__name__)}.step()",
                  writes=lrs)   # before the graph unless it has read the rate already

    def _advance(self) -> None:
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self.optimizer._sync_hyper()
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        return list(self._last_lr)

    def state_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer" and not callable(v)}

    def load_state_dict(self, state: dict) -> None:
        self.__dict__.update(state)


class LambdaLR(LRScheduler):
    """lr = base_lr * lr_lambda(step)."""

    def __init__(self, optimizer, lr_lambda, last_epoch: int = -1) -> None:
        self.lr_lambda = lr_lambda
        super().__init__(optimizer, last_epoch)

    def factor(self, step: int) -> float:
        return float(self.lr_lambda(step))


class StepLR(LRScheduler):
    def __init__(self, optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> None:
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def factor(self, step: int) -> float:
        return self.gamma ** (step // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base - eta_min) * (1 + cos(pi * step / T_max)) / 2 (closed form)."""

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        cos = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
        return [self.eta_min + (base - self.eta_min) * cos for base in self.base_lrs]


class CosineWarmupLR(LRScheduler):
    """Linear warm-up from 0 over `warmup_steps`, then cosine decay to `min_lr_ratio * base` at `total_steps`."""

    def __init__(self, optimizer, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0,
                 last_epoch: int = -1) -> None:
        if warmup_steps < 0 or total_steps <= warmup_steps:
            raise ShapeError(f"CosineWarmupLR: need 0 <= warmup_steps < total_steps, got {warmup_steps}, "
                             f"{total_steps}")
        self.warmup_steps, self.total_steps, self.min_lr_ratio = warmup_steps, total_steps, min_lr_ratio
        super().__init__(optimizer, last_epoch)

    def factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return step / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def get_cosine_schedule_with_warmup(optimizer, num_warmup_steps: int, num_training_steps: int,
                                    min_lr_ratio: float = 0.0) -> CosineWarmupLR:
    return CosineWarmupLR(optimizer, num_warmup_steps, num_training_steps, min_lr_ratio)
