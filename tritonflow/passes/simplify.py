"""Pass: algebraic simplification — identities and chains of views, in one forward walk (O(n)).

Rules (each keeps the node's type, so a rewrite never changes a shape or dtype):

    x * 1, 1 * x, x + 0, 0 + x, x - 0, x / 1   -> x   (the constant must not broadcast x larger)
    cast(x, dtype of x)                          -> x
    neg(neg(x)), logical_not(logical_not(x))     -> x   (logical_not twice only for bool x)
    reshape(reshape(x, a), b)                    -> reshape(x, b);  reshape to x's own shape -> x
    permute(permute(x, p), q)                    -> permute(x, p o q);  the identity permutation -> x
    expand to x's own shape                      -> x
    gather(a op b, index, dim)                   -> gather(a, index, dim) op b
        for op in + - * / when b is alike along `dim` (length 1 there) and broadcasts to the
        index's shape, a has the result's type, and `a op b` has no other reader: a cross-entropy
        gathers one log-probability per row from log_softmax = x - logsumexp, and no longer
        computes the other classes' (the numpy backend's whole pass over the logits)

`x + 0 -> x` maps x = -0.0 to -0.0 where IEEE addition gives +0.0; the two compare equal and
no op in the table tells them apart except through division by zero, which we accept.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from tritonflow.ir.graph import Graph, Node
from tritonflow.ir.types import TensorType
from tritonflow.passes.rewrite import rebuilt, remap_inputs

SMALL_CONSTANT = 64  # only constants this small are inspected for identity values


def _constant_equal_to(node: Node, value) -> bool:
    if node.op != "constant":
        return False
    array = node.attrs["value"]
    if array.size == 0 or array.size > SMALL_CONSTANT:
        return False
    return bool(np.all(array == value))


def _same_type(node: Node, other: Node) -> bool:
    return node.type == other.type


def _identity_operand(node: Node, neutral, left_ok: bool) -> Optional[Node]:
    """x for `x op neutral` (and `neutral op x` when left_ok), when the result has x's type."""
    a, b = node.inputs
    if _constant_equal_to(b, neutral) and _same_type(node, a):
        return a
    if left_ok and _constant_equal_to(a, neutral) and _same_type(node, b):
        return b
    return None


def _mul(node: Node) -> Optional[Node]:
    return _identity_operand(node, 1, left_ok=True)


def _add(node: Node) -> Optional[Node]:
    return _identity_operand(node, 0, left_ok=True)


def _sub(node: Node) -> Optional[Node]:
    return _identity_operand(node, 0, left_ok=False)


def _div(node: Node) -> Optional[Node]:
    return _identity_operand(node, 1, left_ok=False)


def _cast(node: Node) -> Optional[Node]:
    (x,) = node.inputs
    return x if x.type.dtype is node.type.dtype else None


def _involution(node: Node) -> Optional[Node]:
    (x,) = node.inputs
    if x.op == node.op and _same_type(node, x.inputs[0]):
        return x.inputs[0]
    return None


def _reshape(node: Node) -> Optional[Node]:
    (x,) = node.inputs
    if tuple(x.type.shape) == tuple(node.type.shape):
        return x
    if x.op == "reshape":
        source = x.inputs[0]
        if tuple(source.type.shape) == tuple(node.type.shape):
            return source
        return Node("reshape", (source,), {"shape": tuple(node.type.shape)}, node.type, node.loc, node.name)
    return None


def _permute(node: Node) -> Optional[Node]:
    (x,) = node.inputs
    perm = tuple(node.attrs["perm"])
    source = x
    if x.op == "permute":
        # out[i] = x[perm[i]] and x[j] = source[inner[j]], so out[i] = source[inner[perm[i]]].
        inner = tuple(x.attrs["perm"])
        perm = tuple(inner[p] for p in perm)
        source = x.inputs[0]
    if perm == tuple(range(len(perm))):
        return source
    if source is x:
        return None
    return Node("permute", (source,), {"perm": perm}, node.type, node.loc, node.name)


def _expand(node: Node) -> Optional[Node]:
    (x,) = node.inputs
    return x if tuple(x.type.shape) == tuple(node.type.shape) else None


_PUSHED_THROUGH_GATHER = ("add", "sub", "mul", "div")


def _gather(node: Node, readers: dict) -> Optional[Node]:
    x, index = node.inputs
    if x.op not in _PUSHED_THROUGH_GATHER or readers.get(id(x), 0) != 1:
        return None
    a, b = x.inputs
    dim = node.attrs["dim"] % len(x.type.shape)
    out = tuple(node.type.shape)
    if a.type != x.type or b.type.dtype is not x.type.dtype or len(b.type.shape) != len(out):
        return None
    if b.type.shape[dim] != 1 or any(n not in (1, o) for n, o in zip(b.type.shape, out)):
        return None
    picked = Node("gather", (a, index), node.attrs, TensorType(out, a.type.dtype), node.loc)
    return Node(x.op, (picked, b), x.attrs, node.type, node.loc, node.name)


RULES: dict[str, Callable[[Node], Optional[Node]]] = {
    "mul": _mul, "add": _add, "sub": _sub, "div": _div, "cast": _cast, "neg": _involution,
    "logical_not": _involution, "reshape": _reshape, "permute": _permute, "expand": _expand,
}


def simplify(graph: Graph) -> Graph:
    """Apply RULES to every node once, in order (one O(n) walk).

    A rule returns None (keep the node), an existing value (the node is dropped and its users
    read that value), or a new node over earlier values (emitted in the node's place). Chains
    collapse as the walk goes: by the time a reshape is visited, its input chain is already one
    reshape long.
    """
    replace: dict[int, Node] = {}
    known: set[int] = {id(n) for n in graph.inputs}
    nodes: list[Node] = []
    readers = _reader_counts(graph)

    def emit(node: Node) -> None:       # a new node's new inputs first (gather's rule makes two)
        for i in node.inputs:
            if id(i) not in known:
                emit(i)
        known.add(id(node))
        nodes.append(node)

    for original in graph.nodes:
        node = remap_inputs(original, replace)
        if node.op == "gather":
            result = _gather(node, readers)
        else:
            rule = RULES.get(node.op)
            result = rule(node) if rule is not None else None
        if result is not None:
            node = result
        if node is not original:
            replace[id(original)] = node
        if id(node) not in known:
            emit(node)
    return rebuilt(graph, nodes, replace)


def _reader_counts(graph: Graph) -> dict:
    """id of a node -> how many nodes read it (a graph output counts as a reader)."""
    counts: dict[int, int] = {}
    for node in graph.nodes:
        for i in node.inputs:
            counts[id(i)] = counts.get(id(i), 0) + 1
    for node in graph.outputs:
        counts[id(node)] = counts.get(id(node), 0) + 1
    return counts
