"""Golden files for generated kernels: a pointwise, a reduction and a matmul-epilogue kernel.

tests/kernels/golden/*.py hold the exact Triton source tritonflow generates for the three small
graphs below (their nodes carry made-up `model.py:N` source lines, as a traced model's would).
A change to code generation that changes any of them fails `test_generated_source_matches_golden`;
when the change is intended, regenerate the files and review their diff:

    python tests/kernels/test_golden_kernels.py --update

Every golden kernel also runs (under Triton's interpreter without a GPU) and must match float64
NumPy, so a golden file is always a working kernel, and the readability rules the files show
(one numbering, short comments, shortest float32 literals, no dead lines) are asserted directly.
"""
from __future__ import annotations

import os
import re
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if __name__ == "__main__":  # run as a script (--update): make the repository and helpers importable
    sys.path[:0] = [os.path.dirname(os.path.dirname(HERE)), HERE]
    if "TRITON_INTERPRET" not in os.environ:
        import torch
        if not torch.cuda.is_available():
            os.environ["TRITON_INTERPRET"] = "1"

from kernel_helpers import assert_close, to_numpy, to_torch  # noqa: E402
from tritonflow import dtypes as D  # noqa: E402
from tritonflow import kernels  # noqa: E402
from tritonflow.errors import SourceLoc  # noqa: E402
from tritonflow.ir import Graph, TensorType  # noqa: E402
from tritonflow.ops.registry import OPS  # noqa: E402

GOLDEN = os.path.join(HERE, "golden")


class ModelGraph:
    """Builds a graph whose nodes come from `model.py:<line>` (types from the op table)."""

    def __init__(self, name: str) -> None:
        self.graph = Graph(name)

    def input(self, name: str, shape, dtype=D.float32):
        return self.graph.add_input(name, TensorType(tuple(shape), dtype))

    def const(self, value, dtype, line: int):
        value = np.asarray(value).astype(dtype.np)
        return self.graph.add_constant(value, TensorType(value.shape, dtype), SourceLoc("model.py", line, "forward"))

    def op(self, line: int, name: str, *inputs, **attrs):
        out_type = OPS[name].infer([i.type for i in inputs], attrs)
        return self.graph.add(name, inputs, attrs, out_type, SourceLoc("model.py", line, "forward"))


def pointwise_case():
    """where(x > 0, x * 1e-5 + bias, sigmoid(bias)) stored as float16: a broadcast, a float16 load."""
    m = ModelGraph("pointwise")
    x, bias = m.input("x", (4, 6), D.float16), m.input("bias", (6,))
    wide = m.op(3, "cast", x, dtype=D.float32)
    scaled = m.op(4, "add", m.op(4, "mul", wide, m.const(1e-5, D.float32, 4)), bias)
    out = m.op(5, "cast", m.op(5, "where", m.op(5, "gt", wide, m.const(0.0, D.float32, 5)), scaled,
                               m.op(5, "sigmoid", bias)), dtype=D.float16)
    m.graph.outputs = [out]
    rng = np.random.default_rng(0)
    arrays = [rng.uniform(-2, 2, (4, 6)).astype(np.float16), rng.uniform(-2, 2, 6).astype(np.float32)]

    def want(x, bias):
        x = x.astype(np.float64)
        return np.where(x > 0, x * np.float32(1e-5) + bias, 1 / (1 + np.exp(-bias.astype(np.float64))))
    return m.graph, arrays, want, D.float16


def reduction_case():
    """softmax(x * 0.125) over rows: two reductions (max, then sum) and the division, one kernel."""
    m = ModelGraph("softmax")
    x = m.input("x", (5, 37))
    z = m.op(8, "mul", x, m.const(0.125, D.float32, 8))
    top = m.op(9, "reduce_max", z, dims=(1,), keepdim=True)
    e = m.op(10, "exp", m.op(10, "sub", z, m.op(10, "expand", top, shape=(5, 37))))
    total = m.op(11, "reduce_sum", e, dims=(1,), keepdim=True)
    m.graph.outputs = [m.op(12, "div", e, m.op(12, "expand", total, shape=(5, 37)))]
    arrays = [np.random.default_rng(1).uniform(-8, 8, (5, 37)).astype(np.float32)]

    def want(x):
        z = x.astype(np.float64) * 0.125
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)
    return m.graph, arrays, want, D.float32


def matmul_epilogue_case():
    """relu(x @ w + b) * 0.5: bias, activation and scale fused into the matmul's epilogue."""
    m = ModelGraph("mlp")
    x, w, b = m.input("x", (8, 16)), m.input("w", (16, 12)), m.input("b", (12,))
    h = m.op(15, "relu", m.op(15, "add", m.op(15, "matmul", x, w), b))
    m.graph.outputs = [m.op(16, "mul", h, m.const(0.5, D.float32, 16))]
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in ((8, 16), (16, 12), (12,))]

    def want(x, w, b):
        return np.maximum(x.astype(np.float64) @ w + b, 0) * 0.5
    return m.graph, arrays, want, D.float32


CASES = {"pointwise": pointwise_case, "reduction": reduction_case, "matmul_epilogue": matmul_epilogue_case}


def generated_source(case: str) -> str:
    graph, _, _, _ = CASES[case]()
    (kernel,) = kernels.lower(graph).kernels
    return kernel.source


def golden_path(case: str) -> str:
    return os.path.join(GOLDEN, f"{case}.py")


def update_golden() -> None:
    """Rewrite every golden file from the current code generation."""
    os.makedirs(GOLDEN, exist_ok=True)
    for case in CASES:
        with open(golden_path(case), "w") as f:
            f.write(generated_source(case))
        print(f"wrote {golden_path(case)}")


@pytest.mark.parametrize("case", list(CASES))
def test_generated_source_matches_golden(case):
    with open(golden_path(case)) as f:
        golden = f.read()
    got = generated_source(case)
    assert got == golden, (f"generated source for {case} differs from {golden_path(case)}; if intended, run "
                           f"`python tests/kernels/test_golden_kernels.py --update` and review the diff")


@pytest.mark.parametrize("case", list(CASES))
def test_golden_kernel_runs_and_matches_float64_numpy(case):
    graph, arrays, want, dtype = CASES[case]()
    lowered = kernels.lower(graph)
    assert len(lowered.kernels) == 1
    with open(golden_path(case)) as f:
        assert lowered.kernels[0].source == f.read()  # the kernel that runs is the golden one
    (out,) = lowered([to_torch(a) for a in arrays], {})
    assert_close(to_numpy(out), want(*arrays), dtype, scale=4.0)


@pytest.mark.parametrize("case", list(CASES))
def test_golden_kernel_is_readable(case):
    with open(golden_path(case)) as f:
        source = f.read()
    doc, code = source.split('"""', 2)[1:]
    body = code.split("):\n", 1)[1]
    # One numbering: every tN variable holds %N, and the comment of its defining line says so.
    for name, number, comment in re.findall(r"^\s+(t(\d+)) = .*?  # (.*)$", body, re.M):
        assert comment.startswith(f"%{number} = "), (name, comment)
        assert "#" not in comment and "  " not in comment.split("   ")[0], comment  # no padding, one '#'
    # Every value the IR text names is listed, constants with their values.
    listed = set(re.findall(r"^  %(\w+):", doc, re.M))
    named = set(re.findall(r"%(\w+)", body))
    assert named <= listed, named - listed
    assert re.search(r"^Specialised on: sizes [0-9, ]+, .*32-bit indices\.$", doc, re.M), doc
    # float32 literals are shortest round-trip; nothing is assigned that nothing reads.
    assert not re.search(r"\d\.\d{9,}", body), body
    assigned = re.findall(r"^\s+([A-Za-z_]\w*) = ", body, re.M)
    code_only = "\n".join(line.split("#")[0] for line in body.splitlines())
    for name in assigned:
        assert len(re.findall(rf"\b{name}\b", code_only)) > 1, f"{name} is assigned but never read"
    for unused in ("_NAN", "_INF", "th", "libdevice"):
        if re.search(rf"\b{unused}\b", code.split("@triton.jit", 1)[0]):
            assert re.search(rf"\b{unused}\.|\b{unused}\b", code.split("@triton.jit", 1)[1]), unused


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: python tests/kernels/test_golden_kernels.py --update")
    update_golden()
