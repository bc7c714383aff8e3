"""Lowering stage (ahead of time): compile one kernel launch for a named GPU with Triton, no GPU needed.

A *request* (plain JSON) names a generated kernel module, the launch's arguments as stand-ins
(`["ptr", dtype, aligned]` or `["int", value]`), its constexprs and options (num_warps,
num_stages), the target (`arch`, `warp_size`) and whether to read resources (`resources`, default
true; the test suite's compile check skips cuobjdump). `compile_request` turns the stand-ins into
small CPU tensors and integers and goes through Triton's own JIT machinery — the argument binder
Triton generates for the kernel (`create_function_from_signature`), `JITFunction._pack_args`, then
`triton.compile(ASTSource(...), target=GPUTarget(...), options=...)` — exactly the steps
`JITFunction.run` takes on a GPU after asking the driver for its target. So the signature,
specializations (16-byte pointer alignment, integers equal to 1 or divisible by 16), options and
therefore Triton's cache key are the ones a real launch computes, and the compiled kernel lands in
Triton's cache (TRITON_CACHE_DIR) where that launch finds it.

The result reads the compiled kernel: registers and stack (local-memory spill) bytes per thread
from the cubin through the wheel's `cuobjdump --dump-resource-usage`, the shared memory Triton
asks for at launch plus the cubin's static shared memory, and whether the PTX uses wgmma or TMA.

Triton's interpreter must be off in the process that compiles (kernels must be JITFunctions), so
kernels/aot.py runs this module as worker processes (`python -m tritonflow.kernels.aot_worker`,
one JSON request per stdin line, one JSON result per stdout line) when its own process interprets.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback

_RESOURCE = re.compile(r"REG:(\d+)\s+STACK:(\d+)\s+SHARED:(\d+)\s+LOCAL:(\d+)")
_modules: dict = {}


def _kernel_function(path: str, name: str):
    """The @triton.jit function `name` of the generated module at `path` (imported once)."""
    key = (path, name)
    found = _modules.get(key)
    if found is None:
        module_name = "tritonflow_aot_" + re.sub(r"\W", "_", os.path.basename(path))[:40]
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        found = _modules[key] = getattr(module, name)
    return found


def stand_in_args(args: list) -> list:
    """Stand-ins as the values a launch passes: CPU tensors (data_ptr and dtype are all Triton's
    binder reads of a pointer argument) with the requested alignment, and plain integers."""
    import torch
    values = []
    for arg in args:
        if arg[0] == "ptr":
            dtype = getattr(torch, arg[1])
            base = torch.empty(64, dtype=dtype)
            aligned = arg[2]
            offset = 0 if aligned else 1
            while (base.data_ptr() + offset * base.element_size()) % 16 == 0 and not aligned:
                offset += 1
            values.append(base[offset:])
        else:
            values.append(int(arg[1]))
    return values


def jit_compile_arguments(fn, args: list, kwargs: dict, target):
    """(ASTSource, options dict) that `fn.run(*args, **kwargs)` hands `triton.compile` on `target`."""
    from triton import knobs
    from triton.compiler import ASTSource, make_backend
    from triton.runtime.jit import create_function_from_signature
    kwargs = dict(kwargs)
    # The two options JITFunction.run adds before binding.
    kwargs["debug"] = kwargs.get("debug", fn.debug) or knobs.runtime.debug
    kwargs["instrumentation_mode"] = knobs.compilation.instrumentation_mode
    backend = make_backend(target)
    binder = create_function_from_signature(fn.signature, fn.params, backend)
    bound_args, specialization, options = binder(*args, **kwargs)
    options, signature, constexprs, attrs = fn._pack_args(backend, kwargs, bound_args, specialization, options)
    return ASTSource(fn, signature, constexprs, attrs), options.__dict__


def triton_cache_key(src, options: dict, target) -> str:
    """The hash `triton.compile(src, target, options)` files its result under (its own computation)."""
    import hashlib
    from triton._C.libtriton import get_cache_invalidating_env_vars
    from triton.compiler import make_backend
    from triton.runtime.cache import get_cache_key
    backend = make_backend(target)
    parsed = backend.parse_options(dict(options or {}, **src.parse_options()))
    key = get_cache_key(src, backend, parsed, env_vars=get_cache_invalidating_env_vars())
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _resources(cubin: bytes) -> dict:
    from triton import knobs
    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as f:
        f.write(cubin)
        path = f.name
    try:
        done = subprocess.run([knobs.nvidia.cuobjdump.path, "--dump-resource-usage", path],
                              capture_output=True, text=True, timeout=60)
    finally:
        os.unlink(path)
    found = _RESOURCE.search(done.stdout)
    if found is None:
        raise RuntimeError(f"cuobjdump printed no resource usage: {done.stdout[-500:]} {done.stderr[-500:]}")
    registers, stack, shared, local = (int(v) for v in found.groups())
    return {"registers": registers, "stack_bytes": stack, "static_shared": shared, "local_bytes": local}


def compile_request(request: dict) -> dict:
    """Compile one request (module docstring); never raises: a failure is the result's `error`."""
    start = time.perf_counter()
    try:
        import triton
        from triton.backends.compiler import GPUTarget
        target = GPUTarget("cuda", int(request["arch"]), int(request.get("warp_size", 32)))
        fn = _kernel_function(request["path"], request["name"])
        src, options = jit_compile_arguments(fn, stand_in_args(request["args"]), request["kwargs"], target)
        start = time.perf_counter()   # compile seconds: Triton's compile alone (imports excluded)
        compiled = triton.compile(src, target=target, options=options)
        seconds = time.perf_counter() - start
        result = _resources(compiled.asm["cubin"]) if request.get("resources", True) else {}
        ptx = compiled.asm.get("ptx", "")
        result.update(shared=int(compiled.metadata.shared), num_warps=int(compiled.metadata.num_warps),
                      num_stages=int(compiled.metadata.num_stages), wgmma="wgmma.mma_async" in ptx,
                      tma="cp.async.bulk.tensor" in ptx, hash=compiled.metadata.hash, error=None, seconds=seconds)
    except Exception as exc:  # reported per kernel: one failure must not hide the others
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        result = {"error": detail[-3000:], "seconds": time.perf_counter() - start}
    return result


def main() -> None:
    """Serve requests: one JSON object per stdin line, one JSON result per stdout line."""
    out = sys.stdout
    sys.stdout = sys.stderr  # anything a compile prints must not corrupt the protocol
    import torch  # noqa: F401  (start-up imports before the first request, not during it)
    import triton.compiler  # noqa: F401
    for line in sys.stdin:
        if line.strip():
            out.write(json.dumps(compile_request(json.loads(line))) + "\n")
            out.flush()


if __name__ == "__main__":
    main()
