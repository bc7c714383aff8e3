"""Lowering stage: what one kernel launch needs decided for a call's sizes — the `LaunchSetup`.

A setup is the same for every kind of kernel: the heuristic configuration, the grid as a function
of a configuration, the constexprs a configuration still lacks (templates add EVEN_K, BLOCK_D, the
input precision), and for mode="max-autotune" the candidates and the key their winner is
remembered under. runtime/launch.py builds the setups of pointwise, reduction, scan and scatter
kernels; templates/launch.py those of the matmul and attention templates; both launch, autotune and
compile ahead of time (kernels/aot.py) through the same path.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _same(config: dict) -> dict:
    return config


@dataclass
class LaunchSetup:
    base: dict                                   # the heuristic configuration (constexprs + options)
    grid: Callable[[dict], tuple]                # configuration -> grid
    finish: Callable[[dict], dict] = _same       # configuration -> every constexpr the kernel takes
    candidates: Callable[[], list] = field(default=lambda: [])  # autotuning candidates (base first)
    tuning_key: Optional[Callable[[], str]] = None  # None: this kernel is never autotuned

    def heuristic(self) -> tuple:
        """(the full heuristic configuration, its grid)."""
        config = self.finish(self.base)
        return config, self.grid(config)
