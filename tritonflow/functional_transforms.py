"""`tritonflow.grad` and `tritonflow.value_and_grad`: gradients as functions, traceable by jit.

Framework stage. The transformed function runs `fn` on fresh leaf copies of the chosen
arguments and runs reverse mode to them (never touching anyone's `.grad`). The vjp rules are
tritonflow ops, so under `jit(grad(loss_fn))` forward and backward land in one graph.
"""
from __future__ import annotations

import functools

from tritonflow import autograd
from tritonflow.errors import AutogradError, DTypeError


def _fresh_leaves(value, position: int):
    """(structure spec, fresh leaves): `value`'s tensors as new leaves that require grad."""
    from tritonflow.tracer import pytree
    leaves: list = []
    spec = pytree.flatten(value, leaves)
    if not leaves:
        raise DTypeError(f"grad: argument {position} contains no tensor to differentiate with respect to")
    fresh = []
    for t in leaves:
        if not t.dtype.is_floating_point:
            raise DTypeError(f"grad: argument {position} holds a {t.dtype.name} tensor; only floating point "
                             f"inputs can be differentiated")
        leaf = t.detach()
        leaf.requires_grad = True
        fresh.append(leaf)
    return spec, fresh


def _check_scalar(value, fn_name: str):
    from tritonflow.tensor_class import Tensor
    if not isinstance(value, Tensor):
        raise AutogradError(f"grad: {fn_name} must return a scalar tensor, got {type(value).__name__}")
    if value.numel() != 1:
        raise AutogradError(f"grad: {fn_name} must return a scalar (one-element) tensor, got shape "
                            f"{tuple(value.shape)}; reduce it (for example with .sum()) or use "
                            f"tritonflow.autograd.grad with grad_outputs")
    if not value.dtype.is_floating_point:
        raise AutogradError(f"grad: {fn_name} returned a {value.dtype.name} tensor; it must be floating point")


def value_and_grad(fn, argnums=0, has_aux: bool = False):
    """A function returning `(fn(*args), d fn / d args[argnums])` (`((value, aux), grads)` with has_aux)."""
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    fn_name = getattr(fn, "__name__", "the function")

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        from tritonflow.tracer import pytree
        import tritonflow.api as T
        args = list(args)
        groups = []
        for n in nums:
            if not -len(args) <= n < len(args):
                raise AutogradError(f"grad: argnums {n} is out of range for {len(args)} positional arguments")
            spec, fresh = _fresh_leaves(args[n], n)
            args[n] = pytree.unflatten(spec, fresh)
            groups.append((spec, fresh))
        with autograd.enable_grad():
            out = fn(*args, **kwargs)
        if has_aux:
            if not (isinstance(out, tuple) and len(out) == 2):
                raise AutogradError(f"grad: with has_aux=True, {fn_name} must return (value, aux)")
            value, aux = out
        else:
            value, aux = out, None
        _check_scalar(value, fn_name)
        inputs = [t for _, fresh in groups for t in fresh]
        if value.requires_grad:
            results = autograd.backward_many([value], [None], inputs=inputs)
        else:
            results = [None] * len(inputs)
        results = [T.zeros_like(t) if r is None else r for t, r in zip(inputs, results)]
        grads, position = [], 0
        for spec, fresh in groups:
            grads.append(pytree.unflatten(spec, results[position:position + len(fresh)]))
            position += len(fresh)
        grads = grads[0] if isinstance(argnums, int) else tuple(grads)
        value = value.detach()
        return ((value, aux) if has_aux else value), grads

    return wrapped


def grad(fn, argnums=0, has_aux: bool = False):
    """A function returning the gradient of scalar-valued `fn` with respect to `args[argnums]`."""
    vg = value_and_grad(fn, argnums, has_aux)

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        value, grads = vg(*args, **kwargs)
        return (grads, value[1]) if has_aux else grads

    return wrapped
