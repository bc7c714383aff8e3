"""Fuzzer stage: a random program — inputs over shared size variables, SSA lines of tritonflow code.

A program is plain Python source (one `vN = <expression>` line per node) so that running it,
shrinking it and writing it out as a reproducer all use the same text. Input shapes are written
over size variables (dims that must stay equal share one), so shrinking a size keeps every
broadcast and matmul valid. `FLOAT` in an expression is the program's float dtype (float64 in the
reference run), so casts follow the upcast.
"""
from __future__ import annotations

import linecache
from dataclasses import dataclass, field, replace

import numpy as np

import tritonflow as tf
from tritonflow import dtypes as D

ONE = -1  # a dim written as a literal 1 in an input shape (broadcasts against anything)


@dataclass(frozen=True)
class Node:
    name: str
    expr: str          # Python expression over earlier names (x0.., v0..), `tf`, `F`, `FLOAT`


@dataclass
class Program:
    """One fuzz program; `dtype` is the dtype every input has on the backend under test."""

    dtype: str
    sizes: list                      # size variables
    inputs: list                     # [(name, dims)]; each dim a size-variable index or ONE
    nodes: list                      # [Node]
    outputs: list                    # names returned
    input_seed: int
    tags: dict = field(default_factory=dict)

    # ---------------------------------------------------------------- shapes and inputs

    def input_shape(self, dims) -> tuple:
        return tuple(1 if d == ONE else self.sizes[d] for d in dims)

    def max_numel(self) -> int:
        return max([int(np.prod(self.input_shape(d))) for _, d in self.inputs] + [1])

    def make_inputs(self) -> list:
        """NumPy arrays at the program's dtype, from `input_seed` (the same on every run)."""
        rng = np.random.default_rng(self.input_seed)
        dtype = D.as_dtype(self.dtype)
        arrays = []
        for _, dims in self.inputs:
            shape = self.input_shape(dims)
            if dtype.is_floating_point:
                values = rng.uniform(-2.0, 2.0, size=shape)
            else:
                values = rng.integers(-3, 4, size=shape)
            arrays.append(np.asarray(values).astype(dtype.np))
        return arrays

    # ---------------------------------------------------------------- source

    def body_lines(self) -> list:
        return [f"    {n.name} = {n.expr}" for n in self.nodes]

    def source(self, name: str = "program", outputs: list | None = None) -> str:
        params = ", ".join(n for n, _ in self.inputs)
        outs = outputs if outputs is not None else self.outputs
        lines = [f"def {name}({params}):"] + self.body_lines()
        lines.append(f"    return ({', '.join(outs)},)")
        return "\n".join(lines) + "\n"

    def function(self, float_dtype, all_values: bool = False, modules: dict | None = None):
        """The program as a Python function; `float_dtype` is what FLOAT means in it. `modules`
        replaces what `tf` and `F` name (torch and torch.nn.functional for fuzz/grad.py's
        reference: the programs use PyTorch's names)."""
        outs = [n.name for n in self.nodes] if all_values else None
        src = self.source("program", outs)
        filename = f"<tritonflow.fuzz program {abs(hash(src)) % 10**12}>"
        # Register the text so error messages and tracebacks can show the program's lines.
        linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
        namespace = {"tf": tf, "F": tf.nn.functional, "FLOAT": float_dtype, **(modules or {})}
        exec(compile(src, filename, "exec"), namespace)
        return namespace["program"]

    def with_changes(self, **changes) -> "Program":
        return replace(self, **changes)

    def describe(self) -> str:
        shapes = ", ".join(f"{n}: {self.input_shape(d)}" for n, d in self.inputs)
        return f"dtype {self.dtype}, inputs {shapes}, {len(self.nodes)} nodes"


def reference_dtype(dtype: str) -> str:
    """The upcast dtype the reference runs in: float64 for floats, int64 for integers."""
    return "float64" if D.as_dtype(dtype).is_floating_point else "int64"
