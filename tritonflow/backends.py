"""Core: the backend registry — a backend's name -> the object that runs graphs, imported on first use.

The front end (jit, dispatch's eager CUDA path, debug.verify, `tritonflow.cache_stats`) reaches a
backend only through `get(name)`. Each backend is written here as a module path, imported when it
is first asked for, so the core has no import edge to the lowering (kernels/) and `import
tritonflow` imports neither triton nor torch.

A backend object offers:
    name: str
    compile(graph, *, mode="default") -> runner   runner(arrays, device) -> arrays; runner.kernels
    run_op(op, arrays, attrs, out_type) -> array  one primitive now, on the backend's own arrays
    cache_stats() -> dict                         its compile cache counters ({} when it has none)
and a backend with kernels also `kernel_run(runner, arrays, device)`: the same run one
kernel at a time, for debug.verify (see kernels/backend.py). Optionally `recomputes(op) -> bool`:
whether a compiled backward recomputes a forward value of this op rather than saving it
(compiled_autograd.py; without it: elementwise ops, views and fills, what fused kernels recompute
for free). Optionally `runs_collectives = True`: its runners run collective ops themselves (else
jit_entry runs them between the backend's runners of the graph's other parts). New keywords of `compile` (a target)
come after `mode`, keyword-only, so every caller keeps working.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from dataclasses import dataclass

from tritonflow import environment
from tritonflow.errors import UnsupportedError


@dataclass(frozen=True)
class BackendSpec:
    """Where a backend lives and what it needs before its module may be imported."""

    module: str                        # imported on first use; holds the backend object
    attribute: str = "BACKEND"
    packages: tuple = ()               # must be installed (checked without importing them)
    install_hint: str = ""             # what to run when they are not
    # Triton runs CPU tensors in its interpreter, which is chosen when triton is first imported:
    # the environment variable has to be checked before the backend's module imports triton.
    interpreted_on_cpu: bool = False


_SPECS: dict[str, BackendSpec] = {
    "numpy": BackendSpec("tritonflow.numpy_backend"),
    "c": BackendSpec("tritonflow.native.backend"),
    "triton": BackendSpec("tritonflow.kernels.backend", packages=("triton", "torch"),
                          install_hint="pip install 'tritonflow[gpu]'", interpreted_on_cpu=True),
}
_loaded: dict[str, object] = {}
_lock = threading.Lock()


def default_backend(device: str) -> str:
    """The backend jit uses for tensors on `device` when none is named: triton on CUDA; on the CPU
    TRITONFLOW_CPU_BACKEND when set, else the c backend where a C compiler is found, else numpy."""
    if device == "cuda":
        return "triton"
    chosen = environment.cpu_backend()
    if chosen:
        check_name(chosen)
        return chosen
    from tritonflow.native import toolchain
    return "c" if toolchain.compiler() else "numpy"


def register(name: str, spec: BackendSpec) -> None:
    """Add a backend (or point a name at another module); it loads on first `get`."""
    with _lock:
        _SPECS[name] = spec
        _loaded.pop(name, None)


def names() -> tuple:
    return tuple(_SPECS)


def check_name(name: str | None) -> None:
    """Raise UnsupportedError unless `name` is None (the default backend) or a registered backend."""
    if name is not None and name not in _SPECS:
        raise UnsupportedError(f"jit: unknown backend {name!r} (choose from {', '.join(_SPECS)})")


def get(name: str, device: str | None = None):
    """The backend object `name`, ready for tensors on `device` (None: no device-specific check)."""
    check_name(name)
    spec = _SPECS[name]
    found = _loaded.get(name)
    if found is None:
        _check_packages(name, spec)
    if device == "cpu" and spec.interpreted_on_cpu:
        _check_interpreter(name)
    if found is None:
        with _lock:
            found = _loaded.get(name)
            if found is None:
                found = _loaded[name] = _load(name, spec)
    return found


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def _not_installed(name: str, spec: BackendSpec, detail: str) -> UnsupportedError:
    hint = f": {spec.install_hint}" if spec.install_hint else ""
    return UnsupportedError(f"backend={name!r} needs {' and '.join(spec.packages) or spec.module} "
                            f"installed{hint} ({detail})")


def _check_packages(name: str, spec: BackendSpec) -> None:
    # Checked without importing: importing triton would fix its interpreter setting too early, and
    # telling someone without triton to set TRITON_INTERPRET only sends them to a second error.
    missing = [p for p in spec.packages if not _installed(p)]
    if missing:
        raise _not_installed(name, spec, f"missing: {', '.join(missing)}")


def _check_interpreter(name: str) -> None:
    if environment.triton_interpret():
        return
    hint = ("set TRITON_INTERPRET=1 in the environment before triton is first imported "
            "(for example `TRITON_INTERPRET=1 python your_script.py`)")
    if "triton" in sys.modules:
        hint += "; triton is already imported in this process, so restart it with the variable set"
    raise UnsupportedError(f"backend={name!r} on CPU tensors runs kernels in Triton's interpreter: {hint}")


def _load(name: str, spec: BackendSpec):
    try:
        module = importlib.import_module(spec.module)
    except ImportError as exc:
        raise _not_installed(name, spec, str(exc)) from exc
    return getattr(module, spec.attribute)
