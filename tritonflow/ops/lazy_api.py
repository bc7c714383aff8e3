"""Core: `T` and `apply`, the front end's functions as the core sees them — installed, never imported.

vjp rules are written with tritonflow functions (`T.exp(g)`) and apply primitives to tensors
(`apply(OP, inputs, attrs)`), but the core imports no front end. Dependency inversion: the front end
installs its function namespace and its `apply` here when it is imported (tritonflow/api/__init__.py);
the names resolve at each use. Front-end modules below the API (Tensor, autograd) use `T` too, so
they need no import of the API above them.
"""
from __future__ import annotations

from typing import Any, Callable


class _Installed:
    namespace: Any = None
    apply: Callable | None = None


def install(namespace: Any, apply: Callable) -> None:
    """Make `T.<name>` read `namespace.<name>` and `apply(...)` call `apply`."""
    _Installed.namespace = namespace
    _Installed.apply = apply


def _missing() -> RuntimeError:
    return RuntimeError("tritonflow.ops: the front end has not installed its functions (import tritonflow first)")


class _Namespace:
    """The installed function namespace, resolved name by name at each use."""

    __slots__ = ()

    def __getattr__(self, name: str):
        namespace = _Installed.namespace
        if namespace is None:
            raise _missing()
        return getattr(namespace, name)


T = _Namespace()


def apply(op, inputs: list, attrs: dict):
    """Run or record primitive `op` on front-end tensors (the installed dispatch.apply)."""
    if _Installed.apply is None:
        raise _missing()
    return _Installed.apply(op, inputs, attrs)
