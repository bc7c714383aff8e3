"""Lowering stage: the runtime of a compiled function — call plans and direct kernel launches.

DESIGN.md, "Two runtime facts": Triton's JIT dispatch `kernel[grid](...)` costs 21-44 us of host
time per launch (it binds and specializes every argument, hashes a key, looks up the kernel);
the launcher of the `CompiledKernel` it returns, called with the stream and function handle,
costs about 8 us. So the first call of a LoweredGraph for a given (input layouts, symbol values,
device) runs the ordinary path and records every launch (runtime/launch.py's recorder): the kernel,
its grid and configuration.
From that record a `CallPlan` is built once:

- buffers: each graph output gets a `torch.empty` per call; intermediates (buffers only
  kernels read) share one per-call arena, packed by lifetime, so an intermediate whose last
  reader has run hands its bytes to the next one;
- steps: per kernel the argument sources (buffer slot, input stride, fixed symbol value), the
  grid and the constexpr values, all fixed for the plan.

A call then only allocates, reads data pointers, and launches. On a GPU each step keeps the
`CompiledKernel` per *specialization key* (16-byte alignment of every pointer, and for integer
arguments the same classes Triton specializes on: == 1, divisible by 16, 32/64-bit), so a
pointer that loses its alignment gets the kernel Triton would compile for it, never a wrong one.
Under Triton's interpreter (CPU tests) there is no CompiledKernel: steps keep the JIT dispatch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from tritonflow.errors import LoweringError
from tritonflow.kernels.runtime.launch import run_jit

ARENA_ALIGN = 256  # bytes; keeps every intermediate 16-byte aligned like a fresh allocation


# ---------------------------------------------------------------- plans

@dataclass
class Step:
    """One kernel launch of a plan."""

    kernel: object                  # lowered.CompiledKernel
    sources: tuple                  # per argument: ("slot", i) | ("stride", i, dim) | ("int", value)
    grid: tuple                     # (x, y, z)
    config: dict                    # constexprs and options, as the JIT path takes them
    tail: Optional[tuple]           # constexpr values in signature order (raw launcher); None: JIT only
    int_values: tuple               # the fixed integer arguments (part of the specialization key)
    launchers: dict = field(default_factory=dict)   # specialization key -> (run, function, metadata)


@dataclass
class Buffer:
    slot: int
    shape: tuple
    dtype: object                   # torch dtype
    nbytes: int
    offset: int = -1                # arena offset; -1: its own allocation (a graph output)


class CallPlan:
    """Everything a call with fixed layouts and sizes needs, computed once (module docstring)."""

    def __init__(self, n_slots: int, inputs: int, constants: dict, outputs: list, arena: list,
                 arena_bytes: int, steps: list, result_slots: list, device) -> None:
        self.n_slots = n_slots
        self.n_inputs = inputs
        self.constants = constants          # slot -> torch tensor (already on the device)
        self.outputs = outputs              # [Buffer] allocated per call
        self.arena = arena                  # [Buffer] placed in the arena
        self.arena_bytes = arena_bytes
        self.steps = steps
        self.result_slots = result_slots
        self.device = device
        self.interpreted = device.type != "cuda"
        self.calls = 0
        self.direct = None                  # the generated launcher (make_direct_runner), CUDA only

    # ------------------------------------------------------------ per call

    def allocate(self, inputs: list) -> list:
        import torch
        env: list = [None] * self.n_slots
        env[:self.n_inputs] = inputs
        for slot, tensor in self.constants.items():
            env[slot] = tensor
        device = self.device
        empty = torch.empty
        for b in self.outputs:
            env[b.slot] = empty(b.shape, dtype=b.dtype, device=device)
        if self.arena:
            arena = empty((self.arena_bytes,), dtype=torch.uint8, device=device)
            for b in self.arena:
                env[b.slot] = arena[b.offset:b.offset + b.nbytes].view(b.dtype).view(b.shape)
        return env

    def run(self, inputs: list) -> list:
        self.calls += 1
        if not self.interpreted:
            if self.direct is None:
                self.direct = make_direct_runner(self)
            outputs = self.direct(inputs)
            if outputs is not None:
                return outputs
        env = self.allocate(inputs)
        if self.interpreted:
            from tritonflow.kernels.runtime.launch import run_jit  # interpreted launches take turns there
            for step in self.steps:
                run_jit(step.kernel, step.grid, _tensor_args(step, env), step.config)
        else:
            launch_direct(self.steps, env, self.device)
        return [env[s] for s in self.result_slots]


def _tensor_args(step: Step, env: list) -> list:
    args = []
    for source in step.sources:
        kind = source[0]
        if kind == "slot":
            args.append(env[source[1]])
        elif kind == "stride":
            args.append(env[source[1]].stride(source[2]))
        else:
            args.append(source[1])
    return args


def _int_class(value: int) -> int:
    """The classes Triton 3.6 specializes an integer argument on (see native_specialize_impl)."""
    if value == 1:
        return 1
    width = 0 if -2 ** 31 <= value < 2 ** 31 else (2 if value < 2 ** 63 else 4)
    return width + (8 if value % 16 == 0 else 0)


def launch_direct(steps: list, env: list, device) -> None:
    """Launch every step through its CompiledKernel's launcher (GPU)."""
    from triton import knobs
    stream = _current_stream(device.index)
    hooked = knobs.runtime.launch_enter_hook is not None or knobs.runtime.launch_exit_hook is not None
    for step in steps:
        values = []
        key = []
        for source in step.sources:
            kind = source[0]
            if kind == "slot":
                pointer = env[source[1]].data_ptr()
                values.append(pointer)
                key.append(pointer & 15 == 0)
            elif kind == "stride":
                stride = env[source[1]].stride(source[2])
                values.append(stride)
                key.append(_int_class(stride))
            else:
                values.append(source[1])
        key = tuple(key)
        found = step.launchers.get(key)
        if found is None or hooked:
            # A new specialization (or a profiler hook that wants launch metadata): the JIT path
            # compiles or finds the right kernel; its launcher serves the next calls.
            compiled = _jit_launch(step, env)
            if compiled is not None and not hooked and step.tail is not None:
                compiled = compiled.result() if hasattr(compiled, "result") else compiled
                step.launchers[key] = (compiled.run, compiled.function, compiled.packed_metadata)
            continue
        run, function, metadata = found
        grid = step.grid
        run(grid[0], grid[1], grid[2], stream, function, metadata, None, None, None, *values, *step.tail)


def _jit_launch(step: Step, env: list):
    return run_jit(step.kernel, step.grid, _tensor_args(step, env), step.config)


_stream_getter = None


def _current_stream(index: Optional[int]) -> int:
    global _stream_getter
    if _stream_getter is None:
        try:
            from torch._C import _cuda_getCurrentRawStream  # what Triton's own driver calls
            _stream_getter = _cuda_getCurrentRawStream
        except ImportError:  # older torch: the public (slower) spelling
            import torch
            _stream_getter = lambda i: torch.cuda.current_stream(i).cuda_stream  # noqa: E731
    if index is None:
        import torch
        index = torch.cuda.current_device()
    return _stream_getter(index)


# ---------------------------------------------------------------- building a plan

def constexpr_tail(fn, config: dict) -> Optional[tuple]:
    """Values of the kernel's constexpr parameters in signature order (raw launcher arguments).

    None when a constexpr parameter comes before a runtime one (generated kernels put them
    last): such a step keeps Triton's JIT dispatch rather than guessing the argument order."""
    params = getattr(fn, "params", None)
    if params is None:
        return None
    tail = []
    for p in params:
        if not p.is_constexpr:
            if tail:
                return None
            continue
        if p.name in config:
            tail.append(config[p.name])
        elif p.has_default:
            tail.append(p.default)
        else:
            raise LoweringError(f"kernel {fn.__name__}: no value for constexpr {p.name}")
    return tuple(tail)


def pack_arena(buffers: list, lifetimes: dict) -> int:
    """Give each buffer an arena offset; buffers whose lifetimes do not overlap share bytes.

    `lifetimes[slot] = (first step, last step)` that touches it. Greedy first fit over blocks
    freed by earlier buffers, in order of first use. Returns the arena size in bytes.
    """
    blocks: list = []    # [offset, size, busy until step]
    end = 0
    for b in sorted(buffers, key=lambda b: lifetimes[b.slot][0]):
        first, last = lifetimes[b.slot]
        need = -(-max(b.nbytes, 1) // ARENA_ALIGN) * ARENA_ALIGN
        chosen = None
        for block in blocks:
            if block[2] < first and block[1] >= need:
                if chosen is None or block[1] < chosen[1]:
                    chosen = block
        if chosen is None:
            chosen = [end, need, last]
            blocks.append(chosen)
            end += need
        chosen[2] = last
        b.offset = chosen[0]
    return end


def build_plan(graph, schedule, env: dict, inputs: list, symbols: dict, launches: list, device) -> CallPlan:
    """A CallPlan from the first call's buffers (`env`: id(node) -> tensor) and recorded launches."""
    slot_of_tensor: dict = {}        # id(tensor) -> slot
    tensors: list = []

    def slot(tensor) -> int:
        found = slot_of_tensor.get(id(tensor))
        if found is None:
            found = slot_of_tensor[id(tensor)] = len(tensors)
            tensors.append(tensor)
        return found

    for tensor in inputs:
        slot(tensor)
    constants = {}
    for node in graph.nodes:
        if node.op == "constant" and id(node) in env:
            constants[slot(env[id(node)])] = env[id(node)]
    result_slots = [slot(env[id(schedule.output_buffers.get(id(node), node))]) for node in graph.outputs]
    steps = []
    lifetimes: dict = {}
    for index, (kernel, grid, config, compiled) in enumerate(launches):
        sources = []
        for arg in kernel.generated.args:
            if arg.kind == "buffer":
                s = slot(env[id(arg.ref)])
                sources.append(("slot", s))
            elif arg.kind == "stride":
                node, dim = arg.ref
                s = slot(env[id(node)])
                sources.append(("stride", s, dim))
            else:
                sources.append(("int", int(symbols[arg.ref])))
                continue
            first, last = lifetimes.get(s, (index, index))
            lifetimes[s] = (min(first, index), max(last, index))
        grid = tuple(grid) + (1,) * (3 - len(grid))
        tail = () if device.type != "cuda" else constexpr_tail(kernel.fn, config)
        step = Step(kernel, tuple(sources), grid, config, tail, ())
        if compiled is not None and device.type == "cuda" and tail is not None:
            compiled = compiled.result() if hasattr(compiled, "result") else compiled
            step.launchers[_specialization_key(step, tensors)] = (compiled.run, compiled.function,
                                                                  compiled.packed_metadata)
        steps.append(step)
    # Aliased nodes (a scatter result and its accumulator) share one tensor, hence one slot.
    outputs, arena = [], []
    results = set(result_slots)
    n_inputs = len(inputs)
    for s, tensor in enumerate(tensors):
        if s < n_inputs or s in constants:
            continue
        nbytes = tensor.numel() * tensor.element_size()
        buffer = Buffer(s, tuple(tensor.shape), tensor.dtype, nbytes)
        if s in results or s not in lifetimes:
            outputs.append(buffer)
        else:
            arena.append(buffer)
    arena_bytes = pack_arena(arena, lifetimes)
    return CallPlan(len(tensors), n_inputs, constants, outputs, arena, arena_bytes, steps, result_slots, device)


def _specialization_key(step: Step, env: list) -> tuple:
    key = []
    for source in step.sources:
        kind = source[0]
        if kind == "slot":
            key.append(env[source[1]].data_ptr() & 15 == 0)
        elif kind == "stride":
            key.append(_int_class(env[source[1]].stride(source[2])))
    return tuple(key)


# ---------------------------------------------------------------- the generated launcher

def direct_runner_source(plan: CallPlan) -> str:
    """Straight-line Python for one plan: allocate, read pointers, look up every step's launcher,
    launch. It returns None (before launching anything) when a step has no launcher for this
    call's alignments, or a profiler hook is set: the caller then takes the general loop."""
    lines = ["def direct_call(inputs):"]
    add = lines.append
    names = {}
    if plan.n_inputs:
        ins = [f"in{i}" for i in range(plan.n_inputs)]
        add(f"    {', '.join(ins)}{',' if len(ins) == 1 else ''} = inputs")
        names.update({i: f"in{i}" for i in range(plan.n_inputs)})
    for slot in plan.constants:
        names[slot] = f"_const{slot}"
    for b in plan.outputs:
        names[b.slot] = f"buf{b.slot}"
        add(f"    buf{b.slot} = _empty({b.shape!r}, dtype=_dtype{b.slot}, device=_device)")
    pointers = {}
    if plan.arena:
        # The tensor stays referenced until the launches are queued (the allocator is stream-ordered).
        add(f"    arena_tensor = _empty(({plan.arena_bytes},), dtype=_uint8, device=_device)")
        add("    arena = arena_tensor.data_ptr()")
        for b in plan.arena:
            pointers[b.slot] = f"(arena + {b.offset})" if b.offset else "arena"
    used = sorted({src[1] for step in plan.steps for src in step.sources if src[0] == "slot"})
    for slot in used:
        if slot not in pointers:
            add(f"    p{slot} = {names[slot]}.data_ptr()")
            pointers[slot] = f"p{slot}"
    strides = {}
    calls = []
    for k, step in enumerate(plan.steps):
        values, key = [], []
        for src in step.sources:
            if src[0] == "slot":
                values.append(pointers[src[1]])
                key.append(f"{pointers[src[1]]} & 15 == 0")
            elif src[0] == "stride":
                name = strides.get((src[1], src[2]))
                if name is None:
                    name = strides[(src[1], src[2])] = f"stride{src[1]}_{src[2]}"
                    add(f"    {name} = {names[src[1]]}.stride({src[2]})")
                values.append(name)
                key.append(f"_int_class({name})")
            else:
                values.append(repr(src[1]))
        key_text = "(" + ", ".join(key) + ("," if len(key) == 1 else "") + ")"
        add(f"    l{k} = _launchers{k}.get({key_text})")
        args = ", ".join(values + ([f"*_tail{k}"] if step.tail else []))
        gx, gy, gz = step.grid
        calls.append(f"    l{k}[0]({gx}, {gy}, {gz}, stream, l{k}[1], l{k}[2], None, None, None, {args})"
                     f"  # {step.kernel.generated.name}")
    missing = " or ".join([f"l{k} is None" for k in range(len(plan.steps))] +
                          ["_hooks.launch_enter_hook is not None", "_hooks.launch_exit_hook is not None"])
    add(f"    if {missing}:")
    add("        return None")
    add("    stream = _stream(_device_index)")
    lines += calls
    results = ", ".join(names[s] for s in plan.result_slots)
    add(f"    return [{results}]")
    return "\n".join(lines) + "\n"


def make_direct_runner(plan: CallPlan, stream_getter=None, hooks=None):
    """Compile `direct_runner_source(plan)` with the plan's constants bound as globals."""
    import torch
    if hooks is None:
        from triton import knobs
        hooks = knobs.runtime
    namespace = {"_empty": torch.empty, "_uint8": torch.uint8, "_device": plan.device,
                 "_device_index": plan.device.index, "_int_class": _int_class, "_hooks": hooks,
                 "_stream": stream_getter or _current_stream}
    for slot, tensor in plan.constants.items():
        namespace[f"_const{slot}"] = tensor
    for b in plan.outputs:
        namespace[f"_dtype{b.slot}"] = b.dtype
    for k, step in enumerate(plan.steps):
        namespace[f"_launchers{k}"] = step.launchers
        namespace[f"_tail{k}"] = tuple(step.tail or ())
    source = direct_runner_source(plan)
    exec(compile(source, f"<tritonflow launcher {len(plan.steps)} kernels>", "exec"), namespace)
    function = namespace["direct_call"]
    function.source = source
    return function
