"""Benchmarks: small timing helpers shared by the CPU suites (median of repeats after warm-up)."""
from __future__ import annotations

import gc
import statistics
import time
from typing import Callable


def median_time(fn: Callable[[], object], repeats: int, number: int = 1, warmup: int = 1) -> float:
    """Median seconds per call of `fn` over `repeats` samples of `number` calls each."""
    for _ in range(warmup):
        fn()
    samples = []
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection landing in one sample is noise, not the code's cost
    try:
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(number):
                fn()
            samples.append((time.perf_counter() - start) / number)
    finally:
        if gc_was_enabled:
            gc.enable()
    return statistics.median(samples)


def calls_per_sample(fn: Callable[[], object], target_s: float = 0.02) -> int:
    """How many calls of `fn` make one sample of roughly `target_s` seconds."""
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    return max(1, int(target_s / once))


def interleaved_samples(fns: dict, repeats: int, number: int = 1, warmup: int = 1,
                        clock: Callable[[], float] = time.perf_counter) -> dict:
    """Seconds per call for each of `fns`, `repeats` samples each, taken in turn (a, b, c, a, b,
    c, ...), so that load from elsewhere on a shared machine hits every contender alike.

    `clock=time.process_time` counts only this process's CPU time: on a shared machine whose other
    processes take the CPU away in millisecond slices, wall-clock samples of microsecond calls
    come out bimodal (the slice lost or not), while CPU time measures the code itself."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict = {name: [] for name in fns}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            for name, fn in fns.items():
                start = clock()
                for _ in range(number):
                    fn()
                samples[name].append((clock() - start) / number)
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples


def interleaved_medians(fns: dict, repeats: int, number: int = 1, warmup: int = 1) -> dict:
    """Median seconds per call for each of `fns`, sampled in turn (see interleaved_samples)."""
    samples = interleaved_samples(fns, repeats, number, warmup)
    return {name: statistics.median(values) for name, values in samples.items()}


def paired_ratio(a: list, b: list) -> float:
    """Median over rounds of a[i] / b[i]: a burst of outside load that slows one round slows both
    contenders in it, so the per-round ratio is steadier than a ratio of medians."""
    return statistics.median(x / y for x, y in zip(a, b))
