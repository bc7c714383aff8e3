"""Lowering stage: launching one compiled kernel — arguments, grid, configuration, autotuning.

The configuration comes from heuristics.py, or in mode="max-autotune" on a GPU from
benchmarking a few candidates on the first call with real arguments; the winner is remembered
on disk per kernel and problem size. A Triton compile failure becomes a LoweringError naming
the kernel, its IR nodes and the path of its generated source.
"""
from __future__ import annotations

from tritonflow.kernels import cache, heuristics
from tritonflow.errors import LoweringError, UnsupportedError


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def bind_args(kernel, env: dict, symbols: dict) -> list:
    values = []
    for arg in kernel.generated.args:
        if arg.kind == "buffer":
            values.append(env[id(arg.ref)])
        elif arg.kind == "stride":
            node, dim = arg.ref
            values.append(env[id(node)].stride(dim))
        else:
            values.append(int(symbols[arg.ref]))
    return values


def base_config(kernel, env: dict, symbols: dict) -> tuple:
    """(config, grid function of config) for this call's sizes."""
    g = kernel.generated
    numel = g.numel(symbols)
    if g.kind == "pointwise":
        return heuristics.pointwise_config(numel), lambda c: (_cdiv(numel, c["XBLOCK"]),)
    if g.kind == "reduction":
        rnumel = g.config["rnumel"](symbols)
        itemsize = max((env[id(n)].element_size() for n in g.reads if id(n) in env), default=4)
        config = heuristics.reduction_config(numel, rnumel, itemsize, g.config["persistent"],
                                             g.config.get("rows_contiguous", True))
        return config, lambda c: (_cdiv(numel, c["XBLOCK"]),)
    if g.kind == "scan":
        rnumel = g.config["rnumel"](symbols)
        return heuristics.scan_config(numel, rnumel), lambda c: (_cdiv(numel, c["XBLOCK"]),)
    if g.kind == "sort":
        rnumel, chunk = g.config["rnumel"](symbols), g.config.get("chunk")
        if chunk is not None:  # a long row in chunks, merged by the kernels after this one
            return heuristics.sort_config(numel, rnumel, chunk), lambda c: (_cdiv(numel, c["XBLOCK"]),
                                                                           _cdiv(rnumel, chunk))
        if rnumel > heuristics.SORT_MAX:  # a dynamic length (static ones are sorted in chunks)
            raise UnsupportedError(heuristics.sort_too_long(g.config["op"], rnumel), loc=g.config["where"])
        return heuristics.sort_config(numel, rnumel), lambda c: (_cdiv(numel, c["XBLOCK"]),)
    if g.kind == "sort_merge":
        rnumel = g.config["rnumel"](symbols)
        return heuristics.merge_config(numel, rnumel), lambda c: (_cdiv(numel, c["XBLOCK"]),
                                                                  _cdiv(rnumel, c["RBLOCK"]))
    if g.kind == "matmul":
        m, n, k, batch = (f(symbols) for f in g.config["mnkb"])
        config = heuristics.matmul_config(m, n, k, g.config["dtype"])
        return config, lambda c: (_cdiv(m, c["BLOCK_M"]), _cdiv(n, c["BLOCK_N"]), batch)
    return heuristics.pointwise_config(numel), lambda c: (_cdiv(numel, c["XBLOCK"]),)


def _run(kernel, grid: tuple, args: list, config: dict) -> None:
    compiled = run_jit(kernel, grid, args, config)
    from tritonflow.kernels.runtime.call_plan import record_launch  # a call plan being built remembers this launch
    record_launch(kernel, grid, config, compiled)


def run_jit(kernel, grid: tuple, args: list, config: dict):
    """One launch through Triton's JIT dispatch; returns its CompiledKernel (None when interpreted)."""
    try:
        return kernel.fn[grid](*args, **config)
    except Exception as exc:
        if isinstance(exc, LoweringError):
            raise
        lines = "\n  ".join(kernel.generated.node_lines)
        raise LoweringError(f"Triton failed to compile or run kernel {kernel.generated.name} "
                            f"({type(exc).__name__}: {str(exc)[:2000]})\n  generated source: {kernel.path}\n"
                            f"  IR nodes:\n  {lines}") from exc


def launch(kernel, env: dict, symbols: dict, mode: str = "default") -> None:
    g = kernel.generated
    if g.config.get("template"):
        from tritonflow.kernels.templates import launch_template  # matmul/attention templates
        return launch_template(kernel, env, symbols, mode)
    if g.numel(symbols) == 0:
        return
    args = bind_args(kernel, env, symbols)
    config, grid_of = base_config(kernel, env, symbols)
    if mode == "max-autotune" and not heuristics.interpreted() and g.kind not in ("scatter", "sort", "sort_merge"):
        config = autotune(kernel, args, config, grid_of, symbols)
    _run(kernel, grid_of(config), args, config)


def autotune(kernel, args: list, base: dict, grid_of, symbols: dict) -> dict:
    """Benchmark a few configurations once per problem size; remember the winner on disk."""
    size_key = tuple(sorted(symbols.items())) + (kernel.generated.numel(symbols),)
    if size_key in kernel.tuned:
        return kernel.tuned[size_key]
    disk_key = cache.make_key(f"{kernel.key} sizes={size_key}")
    remembered = cache.load_tuned(disk_key)
    if remembered is not None:
        kernel.tuned[size_key] = remembered
        return remembered
    import triton.testing
    persistent = kernel.generated.config.get("persistent", False)
    best, best_time = base, float("inf")
    for config in heuristics.autotune_candidates(kernel.generated.kind, base, persistent):
        if persistent and config.get("RBLOCK", 0) < base.get("RBLOCK", 0):
            continue
        try:
            ms = triton.testing.do_bench(lambda: kernel.fn[grid_of(config)](*args, **config), warmup=5, rep=20)
        except Exception:  # a candidate that does not fit the chip is skipped, not fatal
            continue
        if ms < best_time:
            best, best_time = config, ms
    kernel.tuned[size_key] = best
    cache.save_tuned(disk_key, best)
    return best
