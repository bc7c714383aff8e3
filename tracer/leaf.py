"""Tracer stage: what the tracer takes for a tensor — a type the front end registers, never imports.

The tracer records tensors without importing the front end: tritonflow's Tensor registers itself
here (tensor_class.py) with the way to make a proxy standing for an argument, and nn.Parameter
registers as a type whose shapes stay static under `jit(dynamic=True)` (a weight's rows are not
a batch). What the tracer reads of a tensor: `.shape`, `.dtype`, `.device`, `.requires_grad`,
its gradient through the registered `raw_grad` (`.grad` itself asks the trace while one records),
and of a proxy its `._node` and `._trace` (the TraceContext recording it).
"""
from __future__ import annotations

from typing import Any, Callable


class _NoTensorType:
    """Until the front end registers its tensor type, nothing is a tensor leaf."""


tensor_type: type = _NoTensorType
_make_proxy: Callable | None = None
_raw_grad: Callable[[Any], Any] = lambda tensor: None
_static_shape_types: tuple = ()


def register_tensor_type(cls: type, make_proxy: Callable[[Any, Any, Any], Any],
                         raw_grad: Callable[[Any], Any]) -> None:
    """`cls` instances are tensor leaves; `make_proxy(node, ctx, tensor)` is the proxy for argument
    `tensor`; `raw_grad(tensor)` is the gradient the tensor holds, read without asking a trace."""
    global tensor_type, _make_proxy, _raw_grad
    tensor_type, _make_proxy, _raw_grad = cls, make_proxy, raw_grad


def raw_grad(tensor: Any) -> Any:
    return _raw_grad(tensor)


def register_static_shape_type(cls: type) -> None:
    """Tensors of type `cls` keep static shapes when a function is jitted with dynamic=True."""
    global _static_shape_types
    if cls not in _static_shape_types:
        _static_shape_types = _static_shape_types + (cls,)


def is_tensor(value: Any) -> bool:
    return isinstance(value, tensor_type)


def has_static_shape(tensor: Any) -> bool:
    return isinstance(tensor, _static_shape_types)


def proxy_for(node, ctx, tensor):
    """The proxy that stands for argument `tensor` (graph input `node`) while `ctx` traces."""
    if _make_proxy is None:
        raise RuntimeError("tritonflow.tracer: no tensor type registered (import tritonflow first)")
    return _make_proxy(node, ctx, tensor)
