"""Helpers for the template tests: graph building, torch<->numpy, DESIGN.md's tolerances."""
from __future__ import annotations

import numpy as np
import torch

import tritonflow.ops  # noqa: F401  (registers the op table)
from tritonflow import dtypes as D
from tritonflow.ir import Graph, TensorType
from tritonflow.ops.registry import OPS

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TOL = {"float32": (1.3e-6, 1e-5), "float16": (1e-3, 1e-5), "bfloat16": (1.6e-2, 1e-5), "float64": (1e-12, 1e-12)}


class Builder:
    """Builds a Graph with types inferred from the op table."""

    def __init__(self, name: str = "g") -> None:
        self.graph = Graph(name)

    def input(self, name: str, shape, dtype=D.float32):
        return self.graph.add_input(name, TensorType(tuple(shape), dtype))

    def const(self, value, dtype=D.float32):
        value = np.asarray(value).astype(dtype.np)
        return self.graph.add_constant(value, TensorType(value.shape, dtype))

    def __call__(self, op: str, *inputs, **attrs):
        out_type = OPS[op].infer([i.type for i in inputs], attrs)
        return self.graph.add(op, inputs, attrs, out_type)

    def finish(self, *outputs) -> Graph:
        self.graph.outputs = list(outputs)
        return self.graph


def to_torch(a: np.ndarray) -> torch.Tensor:
    if a.dtype == D.bfloat16.np:
        return torch.from_numpy(np.ascontiguousarray(a).view(np.uint16).copy()).view(torch.bfloat16).to(DEVICE)
    return torch.from_numpy(np.ascontiguousarray(a).copy()).to(DEVICE)


def to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        return t.view(torch.uint16).numpy().view(D.bfloat16.np)
    return t.numpy()


def assert_close(got, want, dtype, scale: float = 1.0) -> None:
    """DESIGN.md's tolerance for `dtype`, both terms scaled by `scale` (matmuls: grows with K)."""
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    if dtype.is_floating_point:
        rtol, atol = TOL[dtype.name]
        g, w = got.astype(np.float64), want.astype(np.float64)
        assert np.array_equal(np.isnan(g), np.isnan(w)), "NaN positions differ"
        ok = np.isnan(w) | (g == w) | (np.abs(g - w) <= atol * scale + rtol * scale * np.abs(w))
        assert ok.all(), f"max abs err {np.nanmax(np.abs(g - w))}, at {np.argwhere(~ok)[:5].tolist()}"
    else:
        np.testing.assert_array_equal(got, want.astype(got.dtype))
