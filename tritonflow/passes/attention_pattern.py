"""Pass: recognise written-out attention and rewrite it to the fused `attention` primitive.

The pattern is what F.scaled_dot_product_attention (and hand-written attention) traces to:

    scores = matmul(q, permute(k, swap last two)) [* scale]
    scores = where(bool_mask, scores, -inf) | scores + additive_mask | where(causal, scores, -inf)
    probs  = softmax(scores, -1)        # F.softmax: [cast f32] max, where(isinf), sub, exp, sum,
                                        #            where(sum == 0), div [cast back]
    probs  = where(rand >= p, probs * (1 / (1 - p)), 0)     # optional F.dropout
    out    = matmul(probs, v)

A causal mask may appear as `iota(dim=1) <= iota(dim=0)` or, after constant folding, as a
constant bool array equal to the lower triangle. The rewrite happens only when every
intermediate value is used inside the pattern alone (a caller that also returns the
probabilities keeps the written-out form) and the fused kernel supports the call (float
operands of one dtype, head dims 1..256, a mask that does not enlarge the scores).

Numerics: the fused kernel keeps the scores in float32 for float16/bfloat16 inputs instead of
rounding them to the input dtype before the softmax, so results differ from the written-out
form by at most that rounding.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from tritonflow.ir.graph import Graph, Node
from tritonflow.ops.attention import FLOAT_DTYPES, MAX_HEAD_DIM
from tritonflow.passes.rewrite import rebuilt, remap_inputs


def _scalar(node: Node) -> Optional[float]:
    if node.op == "constant" and node.attrs["value"].size == 1:
        return float(np.asarray(node.attrs["value"]).reshape(()))
    if node.op == "full" and all(d == 1 for d in node.shape):
        return float(node.attrs["value"])
    return None


def _strip_cast(node: Node, seen: list) -> Node:
    while node.op == "cast":
        seen.append(node)
        node = node.inputs[0]
    return node


class _Match:
    """The pieces of one attention occurrence, and the nodes it replaces."""

    def __init__(self) -> None:
        self.inner: list = []      # nodes that become dead after the rewrite
        self.q = self.k = self.v = None
        self.scale = 1.0
        self.causal = False
        self.mask = None
        self.mask_kind = "none"
        self.dropout_p = 0.0
        self.rng = None


def _match_dropout(node: Node, m: _Match) -> Node:
    """Strip F.dropout around the probabilities; returns the node below it."""
    if node.op != "where":
        return node
    keep, scaled, zero = node.inputs
    if _scalar(zero) != 0.0 or keep.op != "ge" or scaled.op != "mul":
        return node
    u, p_node = keep.inputs
    p = _scalar(p_node)
    if u.op != "philox_uniform" or u.attrs.get("lane", 0) != 0 or p is None or not 0.0 < p < 1.0:
        return node
    probs, factor = scaled.inputs
    if _scalar(factor) is None:
        probs, factor = factor, probs
    if _scalar(factor) is None or abs(_scalar(factor) - 1.0 / (1.0 - p)) > 1e-5 / (1.0 - p):
        return node
    if tuple(u.shape) != tuple(probs.shape):
        return node
    m.dropout_p = p
    m.rng = u.inputs
    m.inner += [node, keep, scaled, u]
    return probs


def _match_softmax(node: Node, m: _Match) -> Optional[Node]:
    """The scores a written-out softmax over the last dim reads, or None."""
    node = _strip_cast(node, m.inner)
    if node.op != "div":
        return None
    e, denom = node.inputs
    if denom.op != "where" or e.op != "exp":
        return None
    is_zero, one, total = denom.inputs
    if _scalar(one) != 1.0 or is_zero.op != "eq" or total.op != "reduce_sum":
        return None
    if is_zero.inputs[0] is not total or _scalar(is_zero.inputs[1]) != 0.0 or total.inputs[0] is not e:
        return None
    shifted = e.inputs[0]
    if shifted.op != "sub":
        return None
    x, safe_max = shifted.inputs
    if safe_max.op != "where":
        return None
    is_inf, zero, mx = safe_max.inputs
    if is_inf.op != "isinf" or is_inf.inputs[0] is not mx or _scalar(zero) != 0.0 or mx.op != "reduce_max":
        return None
    last = len(x.shape) - 1
    for red in (total, mx):
        if tuple(red.attrs["dims"]) != (last,) or not red.attrs["keepdim"]:
            return None
    if mx.inputs[0] is not x:
        return None
    m.inner += [node, e, denom, is_zero, total, shifted, safe_max, is_inf, mx]
    return _strip_cast(x, m.inner)


def _is_causal_constant(node: Node) -> bool:
    if node.op != "constant" or not node.dtype.is_bool or len(node.shape) < 2:
        return False
    value = np.asarray(node.attrs["value"])
    L, S = value.shape[-2:]
    tril = np.arange(S)[None, :] <= np.arange(L)[:, None]
    return bool(np.all(value == np.broadcast_to(tril, value.shape)))


def _is_causal_iota(node: Node) -> bool:
    if node.op != "le":
        return False
    a, b = node.inputs
    return (a.op == "iota" and b.op == "iota" and a.attrs["dim"] == 1 and b.attrs["dim"] == 0
            and tuple(a.shape) == tuple(b.shape) and len(a.shape) == 2)


def _match_mask(node: Node, m: _Match) -> Node:
    """Strip the mask applied to the scores; returns the unmasked scores."""
    if node.op == "where" and _scalar(node.inputs[2]) == float("-inf"):
        cond, scores, _ = node.inputs
        if _is_causal_iota(cond) or _is_causal_constant(cond):
            m.causal = True
        elif cond.dtype.is_bool:
            m.mask, m.mask_kind = cond, "bool"
        else:
            return node
        m.inner.append(node)
        return scores
    if node.op == "add":
        a, b = node.inputs
        for scores, mask in ((a, b), (b, a)):
            if scores.op in ("mul", "matmul") and mask.dtype.is_floating_point and _scalar(mask) is None:
                m.mask, m.mask_kind = mask, "additive"
                m.inner.append(node)
                return scores
    return node


def _match_scores(node: Node, m: _Match) -> bool:
    if node.op == "mul":
        a, b = node.inputs
        if _scalar(b) is None:
            a, b = b, a
        if _scalar(b) is None:
            return False
        m.scale = _scalar(b)
        m.inner.append(node)
        node = a
    if node.op != "matmul":
        return False
    q, kt = node.inputs
    nd = len(kt.shape)
    swap = tuple(range(nd - 2)) + (nd - 1, nd - 2)
    if kt.op != "permute" or tuple(kt.attrs["perm"]) != swap:
        return False
    m.inner += [node, kt]
    m.q, m.k = q, kt.inputs[0]
    return True


def _match(out: Node) -> Optional[_Match]:
    if out.op != "matmul":
        return None
    m = _Match()
    probs, v = out.inputs
    m.v = v
    below = _match_dropout(probs, m)
    scores = _match_softmax(below, m)
    if scores is None:
        return None
    unmasked = _match_mask(scores, m)
    if m.mask_kind == "none" and not m.causal and unmasked is scores and scores.op not in ("mul", "matmul"):
        return None
    if not _match_scores(unmasked, m):
        return None
    return m if _supported(m, out) else None


def _supported(m: _Match, out: Node) -> bool:
    q, k, v = m.q, m.k, m.v
    if not (q.dtype is k.dtype is v.dtype) or q.dtype.name not in FLOAT_DTYPES or out.dtype is not q.dtype:
        return False
    for d in (q.shape[-1], v.shape[-1]):
        if not isinstance(d, int) or not 1 <= d <= MAX_HEAD_DIM:
            return False
    if m.mask is not None and len(m.mask.shape) > len(out.shape):
        return False
    return True


def _uses_are_internal(m: _Match, out: Node, users: dict, outputs: set) -> bool:
    inner = {id(n) for n in m.inner}
    for node in m.inner:
        if id(node) in outputs:
            return False
        for user in users.get(id(node), ()):
            if id(user) not in inner and user is not out:
                return False
    return True


def _rewrite_first(graph: Graph, done: set) -> Optional[Graph]:
    """The graph with the first not-yet-tried written-out attention fused, or None if none is left."""
    from tritonflow.ops.attention import ATTENTION
    users = graph.users()
    outputs = {id(n) for n in graph.outputs}
    for position, node in enumerate(graph.nodes):
        if node.op != "matmul" or id(node) in done:
            continue
        done.add(id(node))
        m = _match(node)
        if m is None or not _uses_are_internal(m, node, users, outputs):
            continue
        attrs = {"scale": m.scale, "is_causal": m.causal, "mask": m.mask_kind, "dropout_p": m.dropout_p}
        inputs = [m.q, m.k, m.v] + ([m.mask] if m.mask is not None else []) + (list(m.rng) if m.rng else [])
        try:
            out_type = ATTENTION.infer([i.type for i in inputs], attrs)
        except Exception:  # a shape the primitive rejects stays written out
            continue
        if tuple(out_type.shape) != tuple(node.shape) or out_type.dtype is not node.dtype:
            continue
        fused = Node("attention", tuple(inputs), attrs, out_type, node.loc)
        replace = {id(node): fused}
        nodes = list(graph.nodes[:position]) + [fused]
        for later in graph.nodes[position + 1:]:
            new = remap_inputs(later, replace)
            if new is not later:
                replace[id(later)] = new
            nodes.append(new)
        return rebuilt(graph, nodes, replace)
    return None


def attention_pattern(graph: Graph) -> Graph:
    """Rewrite every supported written-out attention to one `attention` node (see module docstring).

    The nodes the pattern made dead are left for the dead-code pass.
    """
    done: set = set()
    while True:
        rewritten = _rewrite_first(graph, done)
        if rewritten is None:
            return graph
        graph = rewritten
