"""Core: every environment variable tritonflow reads, read here and nowhere else, with one rule each.

Flags follow Triton's own rule for TRITON_INTERPRET (case-insensitive "1", "true", "on", "yes" are
on; anything else, or unset, is off), so `TRITON_INTERPRET=true` means the same to tritonflow as to
Triton. Values are read when asked for, not at import, so a test or a script that sets one before
the first use sees it. (Triton itself reads TRITON_INTERPRET once, when it is first imported: set
it before that.)
"""
from __future__ import annotations

import contextlib
import os

_ON = ("1", "true", "on", "yes")

# name -> what it does; README.md's table lists the same names (tests/test_layering.py checks).
VARIABLES = {
    "TRITON_INTERPRET": "run Triton kernels on CPU in Triton's interpreter (set before triton is imported)",
    "TRITONFLOW_CACHE_DIR": "where generated kernels and autotuning results are kept (default ~/.cache/tritonflow)",
    "TRITONFLOW_CPU_BACKEND": "the backend jit uses for CPU tensors when none is named: `c` (the default "
                              "where a C compiler is found) or `numpy`",
    "TRITONFLOW_CC": "the C compiler of the c backend (default: CC, else gcc, cc or clang on PATH)",
    "TRITONFLOW_LOG": "comma-separated topics printed to stderr: `ir` (the graph after each pass), "
                      "`recompiles` (each retrace and its reason)",
    "TRITONFLOW_DEBUG": "verify the IR after every pass (flag)",
    "TRITONFLOW_VERIFY": "check each compiled graph against the interpreter on its first call: a flag "
                         "or `warn` (warn on a mismatch), or `raise`",
    # Set by torchrun for each process; tritonflow.distributed.init_process_group reads them.
    "RANK": "this process's rank among all processes (set by torchrun)",
    "WORLD_SIZE": "the number of processes (set by torchrun)",
    "LOCAL_RANK": "this process's rank on its machine: the CUDA device it uses (set by torchrun)",
    "MASTER_ADDR": "host of the rank-0 rendezvous (set by torchrun)",
    "MASTER_PORT": "port of the rank-0 rendezvous (set by torchrun)",
}

LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def flag(name: str) -> bool:
    """Whether the flag variable `name` is on (Triton's rule, see the module docstring)."""
    return os.environ.get(name, "").strip().lower() in _ON


def triton_interpret() -> bool:
    """TRITON_INTERPRET: kernels run in Triton's interpreter on CPU tensors."""
    return flag("TRITON_INTERPRET")


def request_triton_interpreter() -> None:
    """Switch Triton's interpreter on unless the user chose otherwise (before triton is imported)."""
    os.environ.setdefault("TRITON_INTERPRET", "1")


def cpu_backend() -> str | None:
    """TRITONFLOW_CPU_BACKEND, or None when unset."""
    return os.environ.get("TRITONFLOW_CPU_BACKEND") or None


def c_compiler() -> tuple | None:
    """(variable, value) of TRITONFLOW_CC, else of CC, or None when neither is set."""
    for name in ("TRITONFLOW_CC", "CC"):
        if os.environ.get(name):
            return name, os.environ[name]
    return None


def cache_dir() -> str:
    """TRITONFLOW_CACHE_DIR, or ~/.cache/tritonflow."""
    return os.environ.get("TRITONFLOW_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "tritonflow")


@contextlib.contextmanager
def cache_dir_set_to(folder: str):
    """TRITONFLOW_CACHE_DIR is `folder` inside the block, and what it was after it (the bench's
    cold compile cache)."""
    saved = os.environ.get("TRITONFLOW_CACHE_DIR")
    os.environ["TRITONFLOW_CACHE_DIR"] = folder
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TRITONFLOW_CACHE_DIR", None)
        else:
            os.environ["TRITONFLOW_CACHE_DIR"] = saved


def log_enabled(topic: str) -> bool:
    """Whether TRITONFLOW_LOG names `topic`."""
    return topic in [t.strip() for t in os.environ.get("TRITONFLOW_LOG", "").split(",")]


def debug_ir() -> bool:
    """TRITONFLOW_DEBUG: verify the graph after every pass."""
    return flag("TRITONFLOW_DEBUG")


def verify_mode() -> str | None:
    """TRITONFLOW_VERIFY: None (off), "warn" (a flag) or "raise"."""
    value = os.environ.get("TRITONFLOW_VERIFY", "").strip().lower()
    if value in ("raise", "warn"):
        return value
    return "warn" if value in _ON else None


def launch_variables() -> dict:
    """torchrun's RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT (None where unset)."""
    return {name: os.environ.get(name) for name in LAUNCH_VARIABLES}


def child_environment(unset: tuple = (), **values: str) -> dict:
    """This process's environment for a child process: the `unset` names removed, `values` set.

    The ahead-of-time compiler starts its workers with TRITON_INTERPRET removed (they compile real
    GPU kernels even when this process runs them in Triton's interpreter)."""
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update({k: v for k, v in values.items() if v is not None})
    return env
