"""Fuzzer stage: gradients of random programs, eager, jitted and `jit(grad)`, against torch float64.

A gradient program (generate(grad=True)) is differentiated through the scalar
L = sum_k sum(out_k * w_k), with fixed random cotangents w_k, with respect to every input, three
ways on the backend under test: eagerly (`L.backward()`, the tape and the op table's vjp rules),
jitted (`tf.jit(L)` then `.backward()`: the compiled joint forward+backward) and
`tf.jit(tf.grad(L))` (the gradient computed inside one graph).

The reference is torch in float64 running the same source (the programs use PyTorch's names,
so `tf` and `F` simply name torch and torch.nn.functional), on the inputs the backend sees, upcast.
Without torch, each gradient is checked along three random directions against float64 central
differences of tritonflow's eager NumPy forward (no vjp rule involved).

Tolerances follow check.py's, counting the backward's lines too: each of the 2n+2 lines may
round once at the program's dtype, reductions and matmuls accumulate in float32 or better, and
the absolute error is measured against the largest gradient or intermediate value (a rounding
made at a large term survives a later cancellation). A wrong rule is off by O(1).
"""
from __future__ import annotations

import re
import warnings

import numpy as np

import tritonflow as tf
from tritonflow import dtypes as D
from tritonflow.errors import UnsupportedError
from tritonflow.fuzz.check import (ACCUMULATE_RTOL, SAFETY, TOLERANCES, Outcome, _numpy, _seeded,
                                   out_of_tolerance)
from tritonflow.fuzz.program import Node, Program

MODES = ("eager", "jit", "jit(grad)")
DIRECTIONS = 3
STEP = 1e-6        # central differences in float64: truncation ~STEP^2, roundoff ~1e-16 / STEP


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _loss_of(program_fn, n_inputs: int):
    def loss(*args):
        outs = program_fn(*args[:n_inputs])
        total = None
        for out, weight in zip(outs, args[n_inputs:]):
            term = (out.to(weight.dtype) * weight).sum()
            total = term if total is None else total + term
        return total
    return loss


def cotangents(prog: Program, shapes: list) -> list:
    """float64 weights, one array per output, from the program's seed."""
    rng = np.random.default_rng(prog.input_seed + 1)
    return [np.asarray(rng.uniform(-1.0, 1.0, size=shape)) for shape in shapes]


def _inputs(prog: Program) -> list:
    """The inputs at the program's dtype, as float64 arrays (what every run starts from)."""
    return [a.astype(np.float64) for a in prog.make_inputs()]


# ---------------------------------------------------------------- references

class _TorchNames:
    """torch under the names the programs use; the few signatures tritonflow widens (prod over
    several dims, logsumexp over all, sorts stable by default) are written out."""

    def __init__(self, torch) -> None:
        self.torch = torch

    def __getattr__(self, name: str):
        return getattr(self.torch, name)

    def prod(self, x, dim=None, keepdim: bool = False):
        if dim is None:
            dim = tuple(range(x.ndim))
        for d in sorted((dim,) if isinstance(dim, int) else dim, key=lambda d: d % max(x.ndim, 1), reverse=True):
            x = self.torch.prod(x, d, keepdim=keepdim)
        return x

    def argsort(self, x, dim: int = -1, descending: bool = False, stable: bool = True):
        # tritonflow keeps ties in input order always (README), torch only when asked
        return self.torch.argsort(x, dim=dim, descending=descending, stable=True)

    def sort(self, x, dim: int = -1, descending: bool = False, stable: bool = True):
        return self.torch.sort(x, dim=dim, descending=descending, stable=True)

    def logsumexp(self, x, dim=None, keepdim: bool = False):
        return self.torch.logsumexp(x, tuple(range(x.ndim)) if dim is None else dim, keepdim=keepdim)


# torch slices take no negative steps: x[..., ::-2] is flip(x)[..., ::2], x[::-1] is flip(x, (0,))
_NEGATIVE_STEPS = [(re.compile(r"\b([xv]\d+)\[\.\.\., ::-2\]"), r"tf.flip(\1, (-1,))[..., ::2]"),
                   (re.compile(r"\b([xv]\d+)\[::-1\]"), r"tf.flip(\1, (0,))")]


def torch_expr(expr: str) -> str:
    """A program line as torch runs it (the same but for negative slice steps)."""
    for pattern, replacement in _NEGATIVE_STEPS:
        expr = pattern.sub(replacement, expr)
    return expr


def torch_modules() -> dict:
    """What `tf`, `F` and `FLOAT` name in a program's torch run."""
    import torch
    return {"tf": _TorchNames(torch), "F": torch.nn.functional, "FLOAT": torch.float64}


def torch_reference(prog: Program, inputs: list) -> tuple[list, list, list]:
    """(gradients, output shapes, all node values) in torch float64."""
    import torch
    torch_prog = prog.with_changes(nodes=[Node(n.name, torch_expr(n.expr)) for n in prog.nodes])
    fn = torch_prog.function(torch.float64, all_values=True, modules=torch_modules())
    xs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in inputs]
    with warnings.catch_warnings():   # torch's deprecation notes (x.T of a 1-D tensor)
        warnings.simplefilter("ignore")
        values = fn(*xs)
    by_name = {n.name: v for n, v in zip(prog.nodes, values)}
    outs = [by_name[name] for name in prog.outputs]
    weights = [torch.tensor(w) for w in cotangents(prog, [tuple(o.shape) for o in outs])]
    total = sum((o.to(torch.float64) * w).sum() for o, w in zip(outs, weights))
    grads = [None] * len(xs)
    if total.requires_grad:
        grads = torch.autograd.grad(total, xs, allow_unused=True)
    grads = [np.zeros_like(a) if g is None else g.detach().numpy() for a, g in zip(inputs, grads)]
    return grads, [tuple(o.shape) for o in outs], [v.detach().double().numpy() for v in values]


def _loss64(prog: Program, inputs: list, weights: list) -> float:
    fn = _loss_of(prog.function(tf.float64), len(inputs))
    with tf.no_grad():
        arrays = [np.asarray(a, np.float64) for a in list(inputs) + list(weights)]
        return float(fn(*[tf.from_numpy(a) for a in arrays]).item())


def directional_reference(prog: Program, inputs: list, weights: list) -> list:
    """[(direction per input, d L / dt along it, its error estimate)] by central differences in
    float64, at steps h and 2h: Richardson's combination is the value, their gap the error (large
    where the program curves sharply, as rms_norm near a zero row does)."""
    rng = np.random.default_rng(prog.input_seed + 2)
    found = []
    for _ in range(DIRECTIONS):
        u = [rng.uniform(-1.0, 1.0, size=a.shape) for a in inputs]

        def central(h):
            up = _loss64(prog, [a + h * d for a, d in zip(inputs, u)], weights)
            down = _loss64(prog, [a - h * d for a, d in zip(inputs, u)], weights)
            return (up - down) / (2 * h)

        small, large = central(STEP), central(2 * STEP)
        found.append((u, (4 * small - large) / 3, abs(small - large)))
    return found


def _eager_values(prog: Program, inputs: list) -> tuple[list, list]:
    """(output shapes, all node values) from tritonflow's float64 eager forward."""
    fn = prog.function(tf.float64, all_values=True)
    with tf.no_grad(), _seeded(prog):
        values = [_numpy(v) for v in fn(*[tf.from_numpy(a) for a in inputs])]
    by_name = dict(zip([n.name for n in prog.nodes], values))
    return [by_name[name].shape for name in prog.outputs], values


# ---------------------------------------------------------------- the runs under test

def run_mode(prog: Program, mode: str, backend: str, device: str, inputs: list, weights: list) -> list:
    """The gradient of L with respect to each input, computed `mode`'s way, as float64 arrays."""
    dtype = D.as_dtype(prog.dtype)
    loss = _loss_of(prog.function(dtype), len(inputs))

    def tensors(arrays, requires_grad):
        out = [tf.tensor(a.astype(dtype.np), requires_grad=requires_grad) for a in arrays]
        return out if device == "cpu" else [t.to(device).detach().requires_grad_(requires_grad) for t in out]

    ws = tensors(weights, False)
    with _seeded(prog):
        if mode == "jit(grad)":
            xs = tensors(inputs, False)
            grads = tf.jit(tf.grad(loss, argnums=tuple(range(len(xs)))), backend=backend)(*xs, *ws)
        else:
            xs = tensors(inputs, True)
            value = loss(*xs, *ws) if mode == "eager" else tf.jit(loss, backend=backend)(*xs, *ws)
            if value.requires_grad:
                value.backward()
            grads = [x.grad for x in xs]
    return [np.zeros(a.shape) if g is None else _numpy(g.to("cpu")).astype(np.float64) for a, g in zip(inputs, grads)]


def allowance(prog: Program, scale_values: list) -> tuple[float, float]:
    """(rtol, atol) for the gradients (see module docstring)."""
    rtol, atol = TOLERANCES[prog.dtype]
    acc = ACCUMULATE_RTOL.get(prog.dtype, TOLERANCES["float32"][0])
    lines = 2 * len(prog.nodes) + 2
    rtol_total = SAFETY * (rtol * lines + acc * prog.max_numel())
    finite = [float(np.abs(v[np.isfinite(v)]).max()) for v in scale_values
              if np.asarray(v).dtype.kind == "f" and np.asarray(v).size and np.isfinite(v).any()]
    return rtol_total, atol + rtol_total * max(finite + [1.0])


def _compare(got: list, want: list, rtol: float, atol: float, mode: str) -> Outcome:
    worst = 0.0
    for index, (g, w) in enumerate(zip(got, want)):
        if g.shape != w.shape:
            return Outcome("mismatch", f"{mode}: gradient of x{index} has shape {g.shape}, want {w.shape}",
                           float("inf"))
        if not np.isfinite(g).all():
            where = np.argwhere(~np.isfinite(g))[:3].tolist()
            return Outcome("mismatch", f"{mode}: gradient of x{index} is not finite at {where}", float("inf"))
        ratio = np.abs(g - w) / (atol + rtol * np.abs(w))
        judged = out_of_tolerance(f"{mode}: gradient of x{index}", g, w, ratio, rtol, atol)
        if judged.failed:
            return judged
        worst = max(worst, judged.max_error)
    return Outcome("ok", "", worst)


def _compare_directions(got: list, directions: list, rtol: float, atol: float, mode: str) -> Outcome:
    worst = 0.0
    for k, (u, want, error) in enumerate(directions):
        value = sum(float((g * d).sum()) for g, d in zip(got, u))
        size = sum(float(np.abs(d).sum()) for d in u)
        allowed = atol * size + rtol * abs(want) + 4 * error + 1e-8 * (1.0 + abs(want))  # + the differences' own
        worst = max(worst, abs(value - want) / allowed)
        if abs(value - want) > allowed:
            return Outcome("mismatch", f"{mode}: the gradient along direction {k} is {value!r}, central "
                                       f"differences give {want!r} (allowed {allowed:.3g})", worst)
    return Outcome("ok", "", worst)


def check_grad(prog: Program, backend: str, device: str = "cpu", use_torch: bool | None = None) -> Outcome:
    """The three gradients of `prog` on `backend` against the reference; never raises."""
    inputs = _inputs(prog)
    use_torch = torch_available() if use_torch is None else use_torch
    try:
        if use_torch:
            want, shapes, values = torch_reference(prog, inputs)
            weights = cotangents(prog, shapes)
            scale = values + want
        else:
            shapes, values = _eager_values(prog, inputs)
            weights = cotangents(prog, shapes)
            directions = directional_reference(prog, inputs, weights)
            scale = values
    except Exception as exc:  # the reference cannot run or differentiate it (a shrink step broke it)
        return Outcome("invalid", f"reference: {type(exc).__name__}: {str(exc)[:500]}")
    rtol, atol = allowance(prog, scale)
    worst = Outcome("ok")
    # eager ops on CPU tensors run the NumPy evaluator whatever the backend: checked once, on numpy
    modes = MODES if backend == "numpy" or device != "cpu" else MODES[1:]
    for mode in modes:
        try:
            got = run_mode(prog, mode, backend, device, inputs, weights)
        except UnsupportedError as exc:
            return Outcome("unsupported", f"{mode}: {type(exc).__name__}: {exc}")
        except Exception as exc:
            return Outcome("error", f"{mode}: {type(exc).__name__}: {str(exc)[:2000]}")
        outcome = (_compare(got, want, rtol, atol, mode) if use_torch
                   else _compare_directions(got, directions, rtol, atol, mode))
        if outcome.status != "ok":
            return outcome
        if outcome.max_error >= worst.max_error:
            worst = outcome
    return worst
