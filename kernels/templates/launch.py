"""Lowering stage: launching template kernels — configuration, grid, constexprs, autotuning.

kernels/runtime/launch.py hands every kernel whose generated config names a template to
`launch_template`. The configuration is the heuristic one (configs.py), or in
mode="max-autotune" on a GPU the fastest of a few candidates, benchmarked on the first call of a
shape class and remembered on disk (per template, dtype, shape class and device), so a second
process, or another problem of the same class, does not benchmark again.
"""
from __future__ import annotations

from tritonflow.kernels import cache, heuristics
from tritonflow.kernels.templates import configs

_memory: dict = {}   # tuning key -> config (this process)


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _matmul_setup(g, symbols: dict):
    from tritonflow.matmul_precision import triton_input_precision
    m, n, k, batch = (f(symbols) for f in g.config["sizes"])
    precision = triton_input_precision()

    def finish(config: dict) -> dict:
        return dict(config, EVEN_K=(k % config["BLOCK_K"] == 0), INPUT_PRECISION=precision)

    def grid(config: dict) -> tuple:
        return (batch * _cdiv(m, config["BLOCK_M"]) * _cdiv(n, config["BLOCK_N"]),)

    base = configs.matmul_config(m, n, k, batch, g.config["dtype"])
    candidates = lambda: configs.matmul_candidates(m, n, k, batch, g.config["dtype"])  # noqa: E731
    key = lambda: configs.tuning_key("matmul", g.config["dtype"] + precision, g.config["paths"],  # noqa: E731
                                     m, n, k, batch)
    return base, candidates, key, finish, grid


def _attention_setup(g, symbols: dict):
    from tritonflow.matmul_precision import triton_input_precision
    q_len, k_len, batch = (f(symbols) for f in g.config["sizes"])
    head = g.config["head_block"]
    backward = g.config["template"] != "attention"
    precision = triton_input_precision()
    over = g.config["grid_over"]        # "q": one program per query block; "k": per key block

    def finish(config: dict) -> dict:
        return dict(config, BLOCK_D=g.config["block_d"], BLOCK_DV=g.config["block_dv"], INPUT_PRECISION=precision)

    def grid(config: dict) -> tuple:
        rows = q_len if over == "q" else k_len
        block = config["BLOCK_M"] if over == "q" else config["BLOCK_N"]
        return (_cdiv(rows, block), batch)

    base = configs.attention_config(q_len, k_len, head, g.config["dtype"], backward)
    candidates = lambda: configs.attention_candidates(q_len, k_len, head, g.config["dtype"], backward)  # noqa: E731
    key = lambda: configs.tuning_key(g.config["template"], g.config["dtype"] + precision,  # noqa: E731
                                     g.config.get("variant", ""), q_len, k_len, head, batch)
    return base, candidates, key, finish, grid


SETUPS = {"matmul": _matmul_setup, "attention": _attention_setup, "attention_lse": _attention_setup,
          "attention_delta": _attention_setup, "attention_dq": _attention_setup, "attention_dkv": _attention_setup}


def launch_template(kernel, env: dict, symbols: dict, mode: str = "default") -> None:
    from tritonflow.kernels.runtime.launch import _run, bind_args
    g = kernel.generated
    if g.numel(symbols) == 0:
        return
    args = bind_args(kernel, env, symbols)
    base, candidates, key, finish, grid = SETUPS[g.config["template"]](g, symbols)
    config = base
    if mode == "max-autotune" and not heuristics.interpreted():
        config = _autotune(kernel, args, base, candidates, key(), finish, grid)
    config = finish(config)
    _run(kernel, grid(config), args, config)


def _autotune(kernel, args: list, base: dict, candidates, key: str, finish, grid) -> dict:
    found = _memory.get((kernel.key, key))
    if found is not None:
        return found
    remembered = cache.load_tuned(key)
    if remembered is not None:
        _memory[(kernel.key, key)] = remembered
        return remembered
    import triton.testing
    best, best_time = base, float("inf")
    for config in candidates():
        full = finish(config)
        try:
            ms = triton.testing.do_bench(lambda: kernel.fn[grid(full)](*args, **full), warmup=10, rep=40)
        except Exception:  # a candidate that does not fit this chip (shared memory, registers) is skipped
            continue
        if ms < best_time:
            best, best_time = config, ms
    _memory[(kernel.key, key)] = best
    cache.save_tuned(key, best)
    return best
