"""Errors a user can act on: every one names the op, the shapes or dtypes, and the user's line.

Framework stage: shared by every stage. `user_location()` walks the Python stack outward until it
leaves tritonflow's own packages, so messages point at model code, never at our internals.
"""
from __future__ import annotations

import linecache
import os
import sys

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_INTERNAL_DIRS = tuple(
    os.path.join(_PACKAGE_ROOT, name) + os.sep for name in ("tritonflow", "tracer", "kernels")
)


class SourceLoc:
    """A user's source position: file, line, function name."""

    __slots__ = ("filename", "lineno", "function")

    def __init__(self, filename: str, lineno: int, function: str) -> None:
        self.filename = filename
        self.lineno = lineno
        self.function = function

    def short(self) -> str:
        return f"{os.path.basename(self.filename)}:{self.lineno}"

    def code(self) -> str:
        return linecache.getline(self.filename, self.lineno).strip()

    def describe(self) -> str:
        code = self.code()
        text = f"at {self.short()} in {self.function}"
        return f"{text}:   {code}" if code else text

    def __repr__(self) -> str:
        return f"SourceLoc({self.short()})"


def _is_internal(filename: str) -> bool:
    return filename.startswith(_INTERNAL_DIRS) or filename.startswith("<frozen")


def user_location(skip: int = 1) -> SourceLoc | None:
    """The innermost stack frame outside tritonflow, tracer and kernels."""
    frame = sys._getframe(skip)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not _is_internal(filename):
            return SourceLoc(filename, frame.f_lineno, frame.f_code.co_name)
        frame = frame.f_back
    return None


class TritonflowError(Exception):
    """Base of every error tritonflow raises for a user's mistake."""

    def __init__(self, message: str, loc: SourceLoc | None = None) -> None:
        if loc is None:
            loc = user_location(2)
        self.loc = loc
        self.raw_message = message
        if loc is not None:
            message = f"{message}\n  {loc.describe()}"
        super().__init__(message)


class ShapeError(TritonflowError, ValueError):
    """Shapes that do not fit the op: broadcast, matmul, reshape, out-of-range dim."""


class DTypeError(TritonflowError, TypeError):
    """A dtype the op cannot take, or an argument of the wrong type."""


class TraceError(TritonflowError):
    """Something a traced function did that cannot be captured into a graph."""


class UnsupportedError(TritonflowError):
    """A feature tritonflow does not provide (yet), said plainly."""


class TritonflowIndexError(TritonflowError, IndexError):
    """An index out of range."""


class InvalidValueError(TritonflowError, ValueError):
    """A value the op cannot take: a negative probability, a class past num_classes, an option that
    does not apply to the chosen mode."""


class DeviceError(TritonflowError, RuntimeError):
    """Tensors on different devices mixed in one op, or a device that is not available."""


class AutogradError(TritonflowError, RuntimeError):
    """backward() or grad() used in a way that has no answer."""


class DistributedError(TritonflowError, RuntimeError):
    """A collective across processes failed (a peer exited or timed out), or the process group is misused."""


class LoweringError(TritonflowError):
    """A kernel failed to generate or compile: names the kernel, its IR nodes and source path."""


class VerificationError(TritonflowError):
    """An internal IR invariant broke (raised by verify); a bug in tritonflow, not the user's."""
