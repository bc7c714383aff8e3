"""Core: the C backend's toolchain — the system C compiler, its flags, and the shared-library cache.

Generated sources are compiled with the machine's C compiler (TRITONFLOW_CC, else CC, else gcc,
cc or clang on PATH) for this CPU (-march=native), as Inductor's C++ backend does, linked by `ld`
and loaded with ctypes. Builds run in threads (`start_build`), one compiler process per core. Libraries are kept under TRITONFLOW_CACHE_DIR/c, named by a hash of the source, the
compiler's version, the flags and the CPU, so a later process loads them without compiling.

Flags, and why:
    -O1 -march=native -ftree-vectorize --param=vect-epilogues-nomask=0
                           vectorised loops for this CPU, compiled fast: the generated loops are
                           straight-line code that -O2 and -O3 run no faster (measured: softmax,
                           layer_norm and cross-entropy backward, GPT-2 block), at 25-40% more
                           compile time; no second, narrower vector loop for the remainder, and no
                           straight-line (SLP) vectoriser: the loops are vectorised as loops
    -fno-math-errno        math calls without errno, so they can be vectorised
    -fno-trapping-math     selects (where, max) vectorised as blends; no code reads FP traps
    -ffp-contract=off      a*b+c rounded twice, as NumPy computes it (no fused multiply-add)
    -fwrapv                integer overflow wraps, as NumPy's does
    -fopenmp-simd          `#pragma omp simd` (vector reductions) without an OpenMP runtime
No -ffast-math: NaN, infinities and signed zeros keep their IEEE meaning.

Transcendentals vectorise through glibc's libmvec (expf over 8 floats per call on AVX2): a math
function is declared with GCC's `simd` attribute when libmvec exports every width of it.
"""
from __future__ import annotations

import concurrent.futures
import ctypes
import ctypes.util
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading

from tritonflow import environment
from tritonflow.errors import UnsupportedError

FLAGS = ("-O1", "-march=native", "-ftree-vectorize", "--param=vect-epilogues-nomask=0", "-fno-tree-slp-vectorize",
         "-fPIC", "-pipe",
         "-fno-math-errno", "-fno-trapping-math",
         "-ffp-contract=off", "-fwrapv", "-fopenmp-simd", "-w")

# Vector-math functions' symbol stems in libmvec: (SSE, AVX, AVX2, AVX-512) widths for float and double.
_FLOAT_WIDTHS = ("bN4", "cN8", "dN8", "eN16")
_DOUBLE_WIDTHS = ("bN2", "cN4", "dN4", "eN8")
_UNARY = ("exp", "exp2", "log", "log2", "log1p", "expm1", "sin", "cos", "tanh", "erf")
_BINARY = ("pow",)

_lock = threading.Lock()
_loaded: dict = {}
_compiled = [0]   # sources compiled by this process (not loaded from the cache)


class CompileFailed(RuntimeError):
    """The C compiler rejected a generated source (a bug of the code generator)."""


@functools.lru_cache(maxsize=None)
def compiler() -> str | None:
    """The C compiler's path, or None when the machine has none. A TRITONFLOW_CC that names no
    executable is an error (CC, which other tools set too, falls back to gcc, cc or clang)."""
    chosen = environment.c_compiler()
    if chosen is not None:
        found = shutil.which(chosen[1])
        if found:
            return found
        if chosen[0] == "TRITONFLOW_CC":
            raise UnsupportedError(f"TRITONFLOW_CC={chosen[1]!r}: no such executable (unset it to use gcc, cc or "
                                   "clang from PATH, or set TRITONFLOW_CPU_BACKEND=numpy)")
    for candidate in ("gcc", "cc", "clang"):
        found = shutil.which(candidate)
        if found:
            return found
    return None


@functools.lru_cache(maxsize=None)
def _compiler_identity() -> str:
    cc = compiler()
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        version = ""
    return f"{cc}\n{version.splitlines()[0] if version else ''}"


@functools.lru_cache(maxsize=None)
def _cpu_identity() -> str:
    text = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "flags")):
                    text += line
                    if line.startswith("flags"):
                        break
    except OSError:
        pass
    return text


@functools.lru_cache(maxsize=None)
def vector_math() -> frozenset:
    """C math functions that libmvec exports at every vector width (empty without libmvec)."""
    path = ctypes.util.find_library("mvec")
    if not path:
        return frozenset()
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return frozenset()
    found = set()
    for name in _UNARY + _BINARY:
        args = "vv" if name in _BINARY else "v"
        for c_name, widths in ((name + "f", _FLOAT_WIDTHS), (name, _DOUBLE_WIDTHS)):
            if all(hasattr(lib, f"_ZGV{w}{args}_{c_name}") for w in widths):
                found.add(c_name)
    return frozenset(found)


_BINARY_NAMES = frozenset(_BINARY) | frozenset(n + "f" for n in _BINARY)


def declarations(functions: set) -> str:
    """Prototypes of the math functions a source calls; those libmvec vectorises get GCC's
    `simd` attribute, so a vectorised loop calls their vector forms."""
    lines = []
    vector = vector_math()
    for fn in sorted(functions):
        t = "float" if fn.endswith("f") and fn != "erf" else "double"
        params = f"{t}, {t}" if fn in _BINARY_NAMES else t
        attribute = '__attribute__((__simd__("notinbranch"))) ' if fn in vector else ""
        lines.append(f"{attribute}{t} {fn}({params});")
    return "\n".join(lines) + ("\n" if lines else "")


def describe() -> str:
    """The compiler and flags, for reports: "gcc 12.2.0, -O1 -march=native -ftree-vectorize, libmvec"."""
    cc = compiler()
    if cc is None:
        return "no C compiler"
    version = _compiler_identity().splitlines()[-1].split()[-1] if _compiler_identity().strip() else "?"
    return f"{os.path.basename(cc)} {version}, {' '.join(FLAGS[:3])}" + (", libmvec" if vector_math() else "")


def compiled_count() -> int:
    return _compiled[0]


def library_dir() -> str:
    return os.path.join(environment.cache_dir(), "c")


def _key(source: str) -> str:
    text = "\n".join((source, _compiler_identity(), " ".join(FLAGS), _cpu_identity()))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


_pool = None
_pool_pid = None


def _executor():
    """The compile threads (made again in a forked child, whose copy of the pool has no threads)."""
    global _pool, _pool_pid
    with _lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(os.cpu_count() or 1, 1),
                                                          thread_name_prefix="tritonflow-cc")
            _pool_pid = os.getpid()
        return _pool


def start_build(source: str, functions: set = frozenset()) -> "concurrent.futures.Future":
    """Begin `build(source)` in a compile thread: a jitted function's forward and backward graphs
    compile at the same time, each on a core (the compiler runs as its own process)."""
    return _executor().submit(build, source, functions)


def build(source: str, functions: set = frozenset()) -> ctypes.CDLL:
    """The loaded shared library of `source` (compiled now unless the cache has it)."""
    cc = compiler()
    if cc is None:
        raise CompileFailed("no C compiler found (set TRITONFLOW_CC or CC, or install gcc)")
    key = _key(source)
    with _lock:
        lib = _loaded.get(key)
        if lib is not None:
            return lib
    folder = library_dir()
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, f"{key}.so")
    if not os.path.exists(path):
        _compile(cc, source, folder, path)
    _load_math_libraries()
    lib = ctypes.CDLL(path)
    with _lock:
        _loaded[key] = lib
    return lib


@functools.lru_cache(maxsize=None)
def _load_math_libraries() -> None:
    """libm and libmvec into the process's global symbol scope: the region libraries are linked
    without them (a link through the compiler driver costs a third of a compile) and find their
    math functions there when loaded."""
    for name in ("m", "mvec"):
        path = ctypes.util.find_library(name)
        if path:
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            except OSError:
                pass


def _flags() -> tuple:
    """FLAGS for this compiler: clang has no GCC --param names."""
    if "clang" in _compiler_identity():
        return tuple(f for f in FLAGS if not f.startswith("--param"))
    return FLAGS


def _compile(cc: str, source: str, folder: str, path: str) -> None:
    with tempfile.TemporaryDirectory(dir=folder) as work:
        c_file = os.path.join(work, "region.c")
        with open(c_file, "w") as f:
            f.write(source)
        obj, so_file = os.path.join(work, "region.o"), os.path.join(work, "region.so")
        linker = shutil.which("ld")
        flags = _flags()
        if linker:
            steps = [[cc, *flags, "-c", c_file, "-o", obj], [linker, "-shared", obj, "-o", so_file]]
        else:
            steps = [[cc, *flags, "-shared", c_file, "-o", so_file]]
        for command in steps:
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise CompileFailed(f"{os.path.basename(command[0])} failed on a generated region:\n"
                                    f"{done.stderr[-2000:]}")
        os.replace(so_file, path)   # whole or absent: a concurrent loader never sees half a library
    with _lock:
        _compiled[0] += 1
