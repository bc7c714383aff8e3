"""Benchmark: the activation bytes a GPT-2 block keeps for its backward, with and without
tritonflow.utils.checkpoint (issue 12 item 3), eagerly and compiled (numpy backend, CPU).

Eager: the distinct buffers the tape reachable from the block's output holds (each GradNode's
saved inputs and output, a checkpoint node's region inputs), parameters left out. Compiled: the
forward graph's saved values plus the forward inputs the backward graph reads, parameters left
out. Both count bytes from shapes and dtypes, so the numbers are exact and machine independent.
Target: checkpointing keeps at most half the bytes (exit status 1 otherwise).
Run: python -m benchmarks.checkpoint_memory [--quick]
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tritonflow as tflow  # noqa: E402
from tritonflow.models import GPT2Config  # noqa: E402
from tritonflow.models.gpt2 import GPT2Block  # noqa: E402


def _block(width: int, heads: int):
    tflow.manual_seed(0)
    config = GPT2Config(vocab_size=16, n_positions=1024, n_embd=width, n_layer=1, n_head=heads,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2Block(config, 0)


def _nbytes(t) -> int:
    return int(np.prod(t.shape, dtype=np.int64)) * t.dtype.itemsize


def eager_saved_bytes(out, params: set) -> int:
    """Bytes of the distinct buffers the tape behind `out` keeps alive, parameters excluded."""
    seen_nodes, buffers, stack = set(), {}, [out._grad_fn]
    while stack:
        node = stack.pop()
        node = getattr(node, "node", node)        # an OutputSlot
        if node is None or id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        kept = list(node.saved or []) + ([node.out] if node.out is not None else [])
        for t in kept:
            if id(t._data) not in params:
                buffers[id(t._data)] = _nbytes(t)
        stack.extend(parent for parent, _, _ in node.edges if parent is not None)
    return sum(buffers.values())


def compiled_saved_bytes(jitted) -> int:
    """Bytes of the values the compiled forward hands its backward: its saved values, and the
    block input if the backward reads it (graph input 0; the others are parameters)."""
    entry = next(iter(jitted._variants.values()))[0]
    runner = entry.backward
    saved = runner.forward_graph.outputs[len(runner.forward_graph.outputs) - runner.n_saved:]
    total = sum(_nbytes(n.type) for n in saved)
    if 0 in runner.passed_positions:
        total += _nbytes(runner.forward_graph.inputs[0].type)
    return total


def measure(width: int, heads: int, batch: int, length: int) -> dict:
    block = _block(width, heads)
    params = {id(p._data) for p in block.parameters()}
    rng = np.random.default_rng(0)
    x = tflow.tensor(rng.standard_normal((batch, length, width)).astype(np.float32), requires_grad=True)
    region = lambda h: tflow.utils.checkpoint(block, h)  # noqa: E731
    row = {"eager": eager_saved_bytes(block(x), params), "eager, checkpointed": eager_saved_bytes(region(x), params)}
    for name, fn in (("compiled", block), ("compiled, checkpointed", region)):
        jitted = tflow.jit(lambda h, fn=fn: fn(h), backend="numpy")
        jitted(x)
        row[name] = compiled_saved_bytes(jitted)
    return row


SHAPES = [(64, 4, 2, 32), (256, 8, 4, 128)]


def run(quick: bool = False) -> dict:
    """The `tritonflow bench` suite: saved bytes per shape and mode, and the ratio's verdict."""
    result = {"name": "checkpoint_memory", "pass": True, "rows": []}
    for width, heads, batch, length in SHAPES[:1] if quick else SHAPES:
        row = measure(width, heads, batch, length)
        shape = f"n_embd={width} heads={heads} batch={batch} length={length}"
        for mode in ("eager", "compiled"):
            plain, kept = row[mode], row[f"{mode}, checkpointed"]
            result["pass"] &= kept <= 0.5 * plain
            result["rows"].append((shape, mode, plain, kept))
            result[f"{mode} ratio ({shape})"] = kept / plain
    return result


def markdown(result: dict) -> str:
    lines = ["### checkpoint_memory: activation bytes a GPT-2 block keeps for backward", "",
             "| block | mode | saved | checkpointed | ratio |", "| --- | --- | --- | --- | --- |"]
    for shape, mode, plain, kept in result["rows"]:
        lines.append(f"| {shape} | {mode} | {plain} B | {kept} B | {kept / plain:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the small shape only")
    result = run(parser.parse_args(argv).quick)
    print(markdown(result))
    print("target (checkpointed <= half): " + ("PASS" if result["pass"] else "FAIL"))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
