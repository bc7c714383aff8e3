"""Passes: the pipeline run on every traced graph, with TRITONFLOW_LOG=ir printing after each pass."""
from __future__ import annotations

import sys
from typing import Callable

from tritonflow import environment
from tritonflow.ir.graph import Graph
from tritonflow.passes.cse import cse
from tritonflow.passes.dce import dce

PassFn = Callable[[Graph], Graph]


def default_passes() -> list[tuple[str, PassFn]]:
    # fold first: the constants it makes are the identities simplify looks for.
    from tritonflow.passes.fold import fold_constants
    from tritonflow.passes.simplify import simplify
    passes: list[tuple[str, PassFn]] = [("fold", fold_constants), ("simplify", simplify)]
    from tritonflow.passes.attention_pattern import attention_pattern  # written-out attention -> fused
    passes.append(("attention", attention_pattern))
    passes += [("cse", cse), ("dce", dce)]
    return passes


def run_passes(graph: Graph, passes: list | None = None, record: list | None = None,
               verify: bool | None = None) -> Graph:
    """Run each pass in order. `record` collects (pass name, graph text) for explain()."""
    from tritonflow.ir.verify import verify_graph
    if verify is None:
        verify = environment.debug_ir()
    logging = environment.log_enabled("ir")
    if record is not None:
        record.append(("trace", str(graph)))
    if logging:
        print(f"[tritonflow] IR after trace:\n{graph}", file=sys.stderr)
    for name, fn in passes if passes is not None else default_passes():
        graph = fn(graph)
        if verify:
            verify_graph(graph)
        if record is not None:
            record.append((name, str(graph)))
        if logging:
            print(f"[tritonflow] IR after {name}:\n{graph}", file=sys.stderr)
    return graph
