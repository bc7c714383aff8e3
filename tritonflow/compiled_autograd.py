"""Compiled backward: a joint forward+backward trace, partitioned into a forward and a backward graph.

Framework stage (the autodiff pass). When a jitted function's tensor arguments require grad:

1. Joint trace: the user function is traced again on proxies that require grad; then one
   cotangent input per differentiable output is added and reverse mode runs on the proxies
   (`autograd.backward_many`). The vjp rules are tritonflow ops, so the backward is recorded into
   the same graph, with the gradients of the inputs as extra outputs.
2. Partition: nodes that do not depend on a cotangent are the forward; the rest the backward,
   with the nodes a checkpointed region recomputed during the backward (tritonflow/utils/checkpoint.py).
   The forward values the backward reads are the boundary. Values the backend says are cheaper
   to recompute than to keep (its `recomputes(op)`: elementwise ops and views on a fusing backend,
   whose kernels recompute them for free; on the numpy backend views, fills and one-pass
   arithmetic, which its row-blocked runs recompute in cache) and constants are recomputed in the
   backward from their inputs; what is left (matmul and reduction results, random numbers, and on
   the numpy backend transcendentals like erf and comparisons) becomes extra outputs of the forward graph: the
   saved activations. Graph inputs the backward reads are passed through by reference.
3. Both graphs run the pass pipeline and get a runner from the selected backend.

At run time the forward runner's outputs are wrapped as tensors and attached to one
`autograd.FunctionNode`, so `loss.backward()` runs the backward runner and sends the gradients
on to the arguments (and to captured tensors that require grad). Where the traced code marked
backward stages (tritonflow/staged_backward.py), the backward runs and hands gradients over stage
by stage.
"""
from __future__ import annotations

import dataclasses

import tritonflow.api as T
from tritonflow import autograd, autograd_hooks, backends, staged_backward
from tritonflow.errors import UnsupportedError
from tritonflow.ir.graph import Graph, Node
from tritonflow.ir.types import TensorType
from tritonflow.jit_entry import CompiledEntry, make_runner, write_back
from tritonflow.ops.registry import OPS, Kind
from tritonflow.passes.pipeline import run_passes
from tritonflow.tensor_class import Tensor
from tritonflow.tracer import pytree
from tritonflow.tracer import state as trace_state
from tritonflow.tracer.trace import trace

# What a backend without its own `recomputes` gets: the fusing backends' choice.
_RECOMPUTE_KINDS = (Kind.ELEMENTWISE, Kind.MOVEMENT)


@dataclasses.dataclass
class JointTrace:
    traced: object                 # tracer.trace.Traced of the joint graph (inputs: args, captured, rng)
    cotangents: list               # graph input nodes, one per differentiable output
    diff_outputs: list             # index (among the function's tensor outputs) of each differentiable one
    targets: list                  # ("arg", leaf index) or ("captured", index) per gradient output
    grad_nodes: list               # the gradient of each target (a node of the joint graph)
    target_stages: list | None = None  # the backward stage of each target (staged_backward), if marked
    recomputed: frozenset = frozenset()  # ids of nodes a checkpoint's backward recomputed (utils/checkpoint.py)


def trace_joint(fn, args: tuple, kwargs: dict, leaves: list, tensor_keys: tuple, name: str) -> JointTrace:
    """Trace `fn` and its backward into one graph (see module docstring, step 1)."""

    info: dict = {}

    def joint(*a, **k):
        result = fn(*a, **k)
        ctx = trace_state.current()
        outs: list = []
        pytree.flatten(result, outs)
        diff = [i for i, t in enumerate(outs) if t.requires_grad and t.dtype.is_floating_point]
        cotangents, seeds = [], []
        for i in diff:
            node = ctx.graph.add_input(f"ct{i}", TensorType(outs[i].shape, outs[i].dtype))
            node.attrs["cotangent"] = i
            cotangents.append(node)
            seeds.append(Tensor._proxy(node, ctx))
        targets, target_tensors = [], []
        for proxy in ctx.input_tensors.values():
            if proxy.requires_grad and proxy._grad_fn is None:
                targets.append(("arg", ctx.book.arg_index[id(proxy)]))
                target_tensors.append(proxy)
        for index, tensor in enumerate(ctx.captured):
            if tensor.requires_grad:
                targets.append(("captured", index))
                target_tensors.append(tensor)
        grads = [None] * len(target_tensors)
        if diff and target_tensors:
            grads = autograd.backward_many([outs[i] for i in diff], seeds, inputs=target_tensors)
        info.update(diff=diff, cotangents=cotangents, targets=targets,
                    grad_nodes=[None if g is None else ctx.node_of(g) for g in grads],
                    stages=staged_backward.target_stages(ctx, target_tensors),
                    recomputed=frozenset(getattr(ctx, "recomputed", ())))
        return result

    traced = trace(joint, args, kwargs, leaves, tensor_keys, name, named_as=fn)
    stages = info["stages"] or [0] * len(info["targets"])
    kept = [(t, g, s) for t, g, s in zip(info["targets"], info["grad_nodes"], stages) if g is not None]
    return JointTrace(traced, info["cotangents"], info["diff"], [t for t, _, _ in kept], [g for _, g, _ in kept],
                      [s for _, _, s in kept] if info["stages"] else None, info["recomputed"])


def default_recomputes(op) -> bool:
    return op.kind in _RECOMPUTE_KINDS or op.kind is Kind.CREATION


def _recomputable(node: Node, recomputes) -> bool:
    if node.op == "constant":
        return True
    if node.op == "input":
        return False
    op = OPS[node.op]
    if op.kind is Kind.CREATION and node.inputs:
        return False                 # random numbers are saved, not redrawn
    return recomputes(op)


def recompute_policy(backend: str, device: str):
    """The backend's `recomputes(op)`, or the default for a backend that does not say."""
    return getattr(backends.get(backend, device), "recomputes", default_recomputes)


def partition(joint: JointTrace, recomputes=default_recomputes) -> tuple[Graph, Graph, list, int]:
    """(forward graph, backward graph, forward-input positions the backward reads, number of saved values).

    Forward outputs: the function's outputs, written-back arguments, captured tensors and
    gradients, then the saved values.
    Backward inputs: the passed-through forward inputs, the saved values, then the cotangents.
    Backward outputs: one gradient per target.
    """
    graph = joint.traced.graph
    forward_inputs = list(graph.inputs)
    cotangent_ids = {id(n) for n in joint.cotangents}
    # a checkpointed region's recomputation belongs to the backward, though it needs no cotangent
    depends = set(cotangent_ids) | joint.recomputed
    for node in graph.nodes:
        if any(id(i) in depends for i in node.inputs):
            depends.add(id(node))

    # Walk back from what the backward reads, pulling cheap forward values into the backward.
    position_of_input = {id(n): i for i, n in enumerate(forward_inputs)}
    recompute: set[int] = set()
    saved: list[Node] = []
    passed: set[int] = set()
    seen: set[int] = set()
    boundary = [i for n in graph.nodes if id(n) in depends for i in n.inputs if id(i) not in depends]
    boundary += [g for g in joint.grad_nodes if id(g) not in depends]
    while boundary:
        value = boundary.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if id(value) in position_of_input:
            passed.add(id(value))
        elif _recomputable(value, recomputes):
            recompute.add(id(value))
            boundary.extend(value.inputs)
        else:
            saved.append(value)
    order = {id(n): i for i, n in enumerate(graph.nodes)}
    saved.sort(key=lambda n: order[id(n)])
    passed_inputs = [n for n in forward_inputs if id(n) in passed]

    forward = Graph(graph.name)
    forward.inputs = forward_inputs
    forward.nodes = [n for n in graph.nodes if id(n) not in depends]
    forward.outputs = list(graph.outputs) + saved

    backward = Graph(f"{graph.name}_backward")
    remap: dict[int, Node] = {}
    for index, node in enumerate(passed_inputs):
        remap[id(node)] = backward.add_input(f"in{position_of_input[id(node)]}", node.type)
    for index, node in enumerate(saved):
        remap[id(node)] = backward.add_input(f"saved{index}", node.type)
    for node in joint.cotangents:
        remap[id(node)] = node
        backward.inputs.append(node)
    for node in graph.nodes:
        if id(node) in depends or id(node) in recompute:
            new = Node(node.op, tuple(remap[id(i)] for i in node.inputs), node.attrs, node.type, node.loc)
            remap[id(node)] = new
            backward.nodes.append(new)
    backward.outputs = [remap[id(g)] for g in joint.grad_nodes]
    return forward, backward, [position_of_input[id(n)] for n in passed_inputs], len(saved)


class DifferentiableRunner:
    """`entry.backward`: run the forward graph and hook its outputs into the autograd tape."""

    def __init__(self, name: str, traced, joint: JointTrace, forward: Graph, backward: Graph,
                 backward_runner, passed_positions: list, n_saved: int) -> None:
        self.name = name
        self.traced = traced
        self.joint = joint
        self.forward_graph = forward
        self.backward_graph = backward
        self.backward_runner = backward_runner
        self.passed_positions = passed_positions
        self.n_saved = n_saved

    def __call__(self, entry, leaves: list, arrays: list, bound: list):
        traced = self.traced
        outs = entry.runner(arrays, entry.device)
        n = traced.n_outputs
        results = [Tensor._wrap(o, node.type.dtype, entry.device) for o, node in zip(outs[:n], entry.graph.outputs)]
        write_back(traced, leaves, bound, outs, entry)
        first_saved = n + traced.n_written
        saved = list(outs[first_saved:first_saved + self.n_saved])
        passed = [arrays[i] for i in self.passed_positions]
        captured = traced.state.captured
        targets = [leaves[i] if kind == "arg" else bound[captured[i]] for kind, i in self.joint.targets]
        diff_results = [results[i] for i in self.joint.diff_outputs]
        if targets and diff_results:
            self._attach(entry, diff_results, targets, passed + saved)
        return pytree.unflatten(traced.out_spec, results)

    def _attach(self, entry, diff_results: list, targets: list, saved: list) -> None:
        runner, device = self.backward_runner, entry.device
        shapes = [(tuple(r.shape), r.dtype) for r in diff_results]

        def backward(grads: list):
            cotangents = []
            for g, (shape, dtype) in zip(grads, shapes):
                if g is None:
                    g = T.zeros(shape, dtype=dtype, device=device)
                cotangents.append(g._data)
            if isinstance(runner, staged_backward.StagedBackwardRunner):
                stages = runner.run_in_stages(saved + cotangents, device)
                return autograd_hooks.StagedGradients(
                    [(p, Tensor._wrap(o, targets[p].dtype, device)) for p, o in stage] for stage in stages)
            outs = runner(saved + cotangents, device)
            return tuple(Tensor._wrap(o, t.dtype, device) for o, t in zip(outs, targets))

        vjp = (lambda g: backward([g])) if len(diff_results) == 1 else backward
        node = autograd.FunctionNode(self.name, vjp, targets, diff_results)
        node.attach(diff_results)


def build_differentiable_entry(jitfn, key, traced, graph, record, backend: str, device: str, guards, leaves):
    """The CompiledEntry for a call whose inputs require grad (see module docstring)."""

    name = jitfn.display_name
    try:
        args, kwargs = pytree.unflatten(key[0], list(leaves))
    except TypeError as exc:
        raise UnsupportedError(f"jit: cannot differentiate {name}: an argument is an unhashable static value "
                               f"({exc})") from exc
    joint = trace_joint(jitfn.fn, args, kwargs, leaves, key[1], name)
    if not joint.diff_outputs or not joint.targets:
        # Nothing to differentiate (integer outputs, or outputs that do not depend on the inputs).
        runner = make_runner(graph, backend, device, jitfn.mode)
        return CompiledEntry(key, traced, graph, record, runner, backend, device, guards)
    if jitfn.recompute_backend:    # aot: partitioned as the backend it lowers for, not run here
        policy = recompute_policy(jitfn.recompute_backend, None)
    else:
        policy = recompute_policy(backend, device)
    forward, backward, passed_positions, n_saved = partition(joint, policy)
    record.append(("autodiff: joint", str(joint.traced.graph)))
    forward = run_passes(forward, record=record)
    backward_record: list = []
    backward = run_passes(backward, record=backward_record)
    record.extend((f"backward {step}", text) for step, text in backward_record)
    forward_runner = make_runner(forward, backend, device, jitfn.mode)
    groups = staged_backward.output_groups(joint.target_stages, backward)
    if groups is not None:
        backward_runner = staged_backward.StagedBackwardRunner(backward, groups, backend, device, jitfn.mode)
    else:
        backward_runner = make_runner(backward, backend, device, jitfn.mode)
    fwd_traced = dataclasses.replace(joint.traced, graph=forward)
    entry = CompiledEntry(key, fwd_traced, forward, record, forward_runner, backend, device, guards)
    entry.backward = DifferentiableRunner(name, fwd_traced, joint, forward, backward, backward_runner,
                                          passed_positions, n_saved)
    entry.backward_graph = backward
    entry.backward_runner = backward_runner
    return entry
