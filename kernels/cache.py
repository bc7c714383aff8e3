"""Lowering stage: the kernel cache — in memory and on disk, thread-safe.

Key: SHA-256 of the kernel's IR text (the IR lines it holds plus its variant: layouts, index
width, persistent/looped), the tritonflow version, a hash of the code generator's own sources,
the triton version and the target's code generation name ('interpreter', 'cuda-sm90'). The entry
on disk is the generated module (`<dir>/<key[:2]>/<key>.py`): Triton reads kernel source through `inspect`, so kernels must live
in real files. Its first line carries a checksum of the rest; an entry that is truncated,
garbage or fails to import is logged and rebuilt, never run.

Concurrent first requests for one key generate and import it once (a lock per key).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import sys
import threading
from typing import Callable, Optional

from tritonflow import environment
from tritonflow.target import Target
from tritonflow.version import __version__

log = logging.getLogger("tritonflow.kernels")

CHECKSUM_PREFIX = "# tritonflow-kernel sha256="

_stats = {"compiled": 0, "memory_hits": 0, "disk_hits": 0, "rebuilt": 0, "autotuned": 0}
_memory: dict = {}
_locks: dict = {}
_global_lock = threading.Lock()


def cache_dir() -> str:
    path = environment.cache_dir()
    if not os.path.isdir(path):
        os.makedirs(path, mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)
    return path


def _codegen_hash() -> str:
    """A hash of every source file of the lowering (kernels/ and its subpackages)."""
    here = os.path.dirname(os.path.abspath(__file__))
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(here):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                digest.update(os.path.relpath(path, here).encode())
                with open(path, "rb") as f:
                    digest.update(f.read())
    return digest.hexdigest()[:16]


_CODEGEN_HASH: Optional[str] = None


def environment_key(target: Target) -> str:
    """Versions and the target's code generation name: part of every key."""
    global _CODEGEN_HASH
    if _CODEGEN_HASH is None:
        _CODEGEN_HASH = _codegen_hash()
    import triton
    return f"tritonflow={__version__} codegen={_CODEGEN_HASH} triton={triton.__version__} target={target.cache_name}"


def make_key(ir_text: str, target: Target) -> str:
    return hashlib.sha256(f"{ir_text}\n{environment_key(target)}".encode()).hexdigest()


def stats() -> dict:
    return dict(_stats)


def reset_memory() -> None:
    """Forget in-memory entries (tests use it to exercise the disk path)."""
    with _global_lock:
        _memory.clear()


def _lock_for(key: str) -> threading.Lock:
    with _global_lock:
        lock = _locks.get(key)
        if lock is None:
            lock = _locks[key] = threading.Lock()
        return lock


def entry_path(key: str) -> str:
    folder = os.path.join(cache_dir(), key[:2])
    os.makedirs(folder, mode=0o700, exist_ok=True)
    return os.path.join(folder, f"{key}.py")


def _checksum(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


def _read_valid(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError):
        return None
    first, _, body = text.partition("\n")
    if not first.startswith(CHECKSUM_PREFIX) or first[len(CHECKSUM_PREFIX):] != _checksum(body):
        return None
    return body


def _write(path: str, body: str) -> None:
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f"{CHECKSUM_PREFIX}{_checksum(body)}\n{body}")
    os.replace(tmp, path)


def _import(path: str, key: str, name: str):
    module_name = f"tritonflow_kernel_{key[:24]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return getattr(module, name)


def get_kernel(key: str, name: str, generate: Callable[[], str]):
    """The @triton.jit function for `key`: from memory, from disk, or generated now.

    Returns (function, path of its source file).
    """
    found = _memory.get(key)
    if found is not None:
        _stats["memory_hits"] += 1
        return found
    with _lock_for(key):
        found = _memory.get(key)
        if found is not None:
            _stats["memory_hits"] += 1
            return found
        path = entry_path(key)
        if os.path.exists(path):
            body = _read_valid(path)
            if body is not None:
                try:
                    fn = _import(path, key, name)
                    _memory[key] = (fn, path)
                    _stats["disk_hits"] += 1
                    return fn, path
                except Exception as exc:  # a damaged entry: rebuild below
                    log.warning("tritonflow: kernel cache entry %s failed to import (%s); rebuilding", path, exc)
            else:
                log.warning("tritonflow: kernel cache entry %s is corrupt (bad checksum); rebuilding", path)
            _stats["rebuilt"] += 1
        source = generate()
        _write(path, source)
        fn = _import(path, key, name)
        _memory[key] = (fn, path)
        _stats["compiled"] += 1
        return fn, path


# ---------------------------------------------------------------- autotune memory

def _tune_path(key: str) -> str:
    folder = os.path.join(cache_dir(), "autotune")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    return os.path.join(folder, f"{key}.json")


def load_tuned(key: str) -> Optional[dict]:
    try:
        with open(_tune_path(key), encoding="utf-8") as f:
            value = json.load(f)
        return value if isinstance(value, dict) else None
    except (OSError, ValueError):
        return None


def save_tuned(key: str, config: dict) -> None:
    path = _tune_path(key)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(config, f)
    os.replace(tmp, path)
    _stats["autotuned"] += 1
