"""Lowering stage: the launch setups of template kernels — configuration, grid, constexprs, tuning key.

runtime/launch.py launches every kernel through one path; for a kernel whose generated config names
a template it asks `template_setup` for the heuristic tile (configs.py), the grid, the constexprs a
tile still lacks, and for mode="max-autotune" the candidate tiles and the key the winner is kept
under on disk (per template, dtype, shape class and device), so a second process, or another
problem of the same class, does not benchmark again.
"""
from __future__ import annotations

import re

from tritonflow.kernels.runtime.launch_setup import LaunchSetup, cdiv
from tritonflow.kernels.templates import configs
from tritonflow.ops.registry import OPS, Kind
from tritonflow.target import Target


_OP = re.compile(r"^\s*%[0-9]+: \S+ = (\w+)")


def epilogue_size(generated) -> int:
    """Elementwise IR nodes a template kernel computes besides its dot (its IR node lines)."""
    count = 0
    for line in generated.node_lines:
        found = _OP.match(line)
        op = OPS.get(found.group(1)) if found else None
        if op is not None and op.kind is Kind.ELEMENTWISE:
            count += 1
    return count


def _matmul_setup(g, symbols: dict, target: Target) -> LaunchSetup:
    from tritonflow.matmul_precision import triton_input_precision
    m, n, k, batch = (f(symbols) for f in g.config["sizes"])
    dtype = g.config["dtype"]
    precision = triton_input_precision()
    epilogue = epilogue_size(g)
    return LaunchSetup(
        base=configs.matmul_config(m, n, k, batch, dtype, target, epilogue),
        grid=lambda c: (batch * cdiv(m, c["BLOCK_M"]) * cdiv(n, c["BLOCK_N"]),),
        finish=lambda c: dict(c, EVEN_K=(k % c["BLOCK_K"] == 0), INPUT_PRECISION=precision),
        candidates=lambda: configs.matmul_candidates(m, n, k, batch, dtype, target, epilogue),
        tuning_key=lambda: configs.tuning_key("matmul", dtype + precision, g.config["paths"], target,
                                              m, n, k, batch))


def _attention_setup(g, symbols: dict, target: Target) -> LaunchSetup:
    from tritonflow.matmul_precision import triton_input_precision
    q_len, k_len, batch = (f(symbols) for f in g.config["sizes"])
    head = g.config["head_block"]
    dtype = g.config["dtype"]
    backward = g.config["template"] != "attention"
    precision = triton_input_precision()
    over_queries = g.config["grid_over"] == "q"    # one program per query block, else per key block

    def grid(config: dict) -> tuple:
        if over_queries:
            return (cdiv(q_len, config["BLOCK_M"]), batch)
        return (cdiv(k_len, config["BLOCK_N"]), batch)

    return LaunchSetup(
        base=configs.attention_config(q_len, k_len, head, dtype, backward, target),
        grid=grid,
        finish=lambda c: dict(c, BLOCK_D=g.config["block_d"], BLOCK_DV=g.config["block_dv"],
                              INPUT_PRECISION=precision),
        candidates=lambda: configs.attention_candidates(q_len, k_len, head, dtype, backward, target),
        tuning_key=lambda: configs.tuning_key(g.config["template"], dtype + precision, g.config.get("variant", ""),
                                              target, q_len, k_len, head, batch))


SETUPS = {"matmul": _matmul_setup, "attention": _attention_setup, "attention_lse": _attention_setup,
          "attention_delta": _attention_setup, "attention_dq": _attention_setup, "attention_dkv": _attention_setup}


def template_setup(generated, symbols: dict, target: Target) -> LaunchSetup:
    """The LaunchSetup of a template kernel (its generated config names the template)."""
    return SETUPS[generated.config["template"]](generated, symbols, target)
