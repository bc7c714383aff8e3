"""Core: the profiler's one seam the runtime reads — which recorder, if any, is recording now.

jit (each compiled call), the NumPy interpreter (each IR node) and the kernel launcher (each
kernel) ask `active()`; it is None unless a `with tritonflow.profile():` block is open, so the
hot paths pay one global read. This module imports nothing, so every stage may import it.
"""
from __future__ import annotations

_recording: list = []   # the open recorders, innermost last


def active():
    """The innermost recording Profile, or None."""
    return _recording[-1] if _recording else None


def push(recorder) -> None:
    _recording.append(recorder)


def pop(recorder) -> None:
    if recorder in _recording:
        _recording.remove(recorder)
