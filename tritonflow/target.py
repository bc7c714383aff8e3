"""Core: the machine kernels are lowered for — Triton's interpreter, or one kind of CUDA device.

Lowering (tritonflow.kernels) picks block sizes, warps, stages, tiles and the persistent or looped
form of a reduction from a `Target`, and the ahead-of-time compiler (tritonflow.aot) compiles for
one with Triton on a machine that has no GPU. A target says what those choices depend on: the
compute capability (which instructions exist: tensor cores, wgmma and TMA on sm_90), how much shared
memory one program may use, the register file, the SM count, the L2 size, and, for the static cost
model, the copy bandwidth and the peak FLOP/s.

Named targets: `interpreter`, `sm_80` (A100), `sm_89` (L4), `rtx4090` (also sm_89), `sm_90`
(H100/H200). sm_90's bandwidth and matmul throughput are the ones measured on an H200 (the design
document's anchors: a 1 GiB device copy and torch.matmul per dtype); the others are datasheet
figures, and `measured` says which. The default target is the interpreter when TRITON_INTERPRET
is on (or no CUDA device is visible), else the active CUDA device, described from its properties.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from typing import Mapping, Optional, Union

from tritonflow import environment
from tritonflow.errors import UnsupportedError

KB = 1024
MB = 1024 * 1024


@dataclass(frozen=True)
class Target:
    """What lowering and the cost model need to know about the machine (module docstring)."""

    name: str
    capability: Optional[tuple]          # (major, minor); None for the interpreter
    description: str = ""
    sm_count: int = 1
    shared_memory: int = 0               # bytes one program (CTA) may use (the opt-in per-block limit)
    registers_per_sm: int = 65536        # 32-bit registers
    max_registers_per_thread: int = 255
    warp_size: int = 32
    l2_bytes: int = 0
    memory_bandwidth: float = 0.0        # bytes/s of a large device-to-device copy
    matmul_flops: Mapping[str, float] = field(default_factory=dict)  # operand dtype -> FLOP/s
    vector_flops: float = 0.0            # FLOP/s of ordinary float32 arithmetic
    measured: bool = False               # bandwidth and FLOP/s measured (True) or from a datasheet

    @property
    def interpreted(self) -> bool:
        """Kernels run in Triton's interpreter (a program instance costs about a millisecond)."""
        return self.capability is None

    @property
    def arch(self) -> int:
        """The capability as Triton's GPUTarget spells it: (9, 0) -> 90."""
        if self.capability is None:
            raise UnsupportedError("target 'interpreter' has no CUDA architecture")
        return 10 * self.capability[0] + self.capability[1]

    @property
    def cache_name(self) -> str:
        """What generated kernel source depends on: 'interpreter' or 'cuda-sm90' (not the SM count)."""
        return "interpreter" if self.interpreted else f"cuda-sm{self.arch}"

    def matmul_peak(self, dtype: str, tf32: bool = False) -> float:
        """Peak FLOP/s of a matmul with `dtype` operands (float32 with tf32 on uses the tf32 rate)."""
        key = "tf32" if dtype == "float32" and tf32 else dtype
        return self.matmul_flops.get(key, self.vector_flops)

    def triton_target(self):
        """Triton's GPUTarget for this target (triton imported here, lazily)."""
        from triton.backends.compiler import GPUTarget
        return GPUTarget("cuda", self.arch, self.warp_size)

    def __str__(self) -> str:
        return self.name


INTERPRETER = Target(name="interpreter", capability=None, description="Triton's interpreter on CPU")

def _gpu(name: str, capability: tuple, description: str, sm_count: int, shared_kb: int, l2_mb: int,
         bandwidth: float, tflops: tuple, vector_tflops: float, measured: bool = False) -> Target:
    """A named GPU; `tflops`: matmul TFLOP/s with (bf16, fp16, tf32, fp32) operands."""
    rates = dict(zip(("bfloat16", "float16", "tf32", "float32"), (t * 1e12 for t in tflops)))
    return Target(name=name, capability=capability, description=description, sm_count=sm_count,
                  shared_memory=shared_kb * KB, l2_bytes=l2_mb * MB, memory_bandwidth=bandwidth,
                  matmul_flops=rates, vector_flops=vector_tflops * 1e12, measured=measured)


SM_80 = _gpu("sm_80", (8, 0), "NVIDIA A100 SXM (datasheet figures)", 108, 163, 40, 2.039e12,
             (312, 312, 156, 19.5), 19.5)
SM_89 = _gpu("sm_89", (8, 9), "NVIDIA L4 (datasheet figures)", 58, 99, 48, 300e9, (121, 121, 60, 30.3), 30.3)
RTX_4090 = _gpu("rtx4090", (8, 9), "NVIDIA GeForce RTX 4090 (datasheet figures)", 128, 99, 72, 1.008e12,
                (165, 165, 82.6, 82.6), 82.6)
# DESIGN.md's H200 anchors: 1 GiB device copy 4221 GB/s; torch.matmul bf16 700, fp16 668,
# tf32 367, fp32 51 TFLOP/s. H100 SXM has the same SM count, shared memory and L2.
SM_90 = _gpu("sm_90", (9, 0), "NVIDIA H100/H200 (bandwidth and matmul rates measured on H200)", 132, 227, 50,
             4.221e12, (700, 668, 367, 51), 60, measured=True)

NAMED = {t.name: t for t in (INTERPRETER, SM_80, SM_89, RTX_4090, SM_90)}
ALIASES = {"a100": "sm_80", "l4": "sm_89", "h100": "sm_90", "h200": "sm_90", "cpu": "interpreter"}


def named_target(name: str) -> Target:
    """The named target `name` ('sm_90', 'sm90', 'h100', 'interpreter', ...); UnsupportedError if unknown."""
    key = str(name).strip().lower().replace("-", "_")
    if key.startswith("sm") and not key.startswith("sm_"):
        key = "sm_" + key[2:]
    key = ALIASES.get(key, key)
    found = NAMED.get(key)
    if found is None:
        known = ", ".join(list(NAMED) + sorted(ALIASES))
        raise UnsupportedError(f"unknown target {name!r}: choose one of {known}")
    return found


def get_target(target: Union[str, Target, None] = None) -> Target:
    """A Target from a name, a Target, or None (the default target)."""
    if target is None:
        return default_target()
    if isinstance(target, Target):
        return target
    if isinstance(target, str):
        return named_target(target)
    raise UnsupportedError(f"target must be a name like 'sm_90' or a tritonflow.target.Target, "
                           f"got {type(target).__name__}")


def default_target() -> Target:
    """The interpreter under TRITON_INTERPRET or without a CUDA device, else the active device."""
    if environment.triton_interpret():
        return INTERPRETER
    index = _active_cuda_device()
    return INTERPRETER if index is None else device_target(index)


def _active_cuda_device() -> Optional[int]:
    try:
        import torch
    except ImportError:
        return None
    try:
        return torch.cuda.current_device() if torch.cuda.is_available() else None
    except Exception:  # a broken driver reads as no device; lowering then targets the interpreter
        return None


@functools.lru_cache(maxsize=None)
def device_target(index: int) -> Target:
    """The CUDA device `index` as a Target: its own SM count, shared memory, registers and L2;
    bandwidth and FLOP/s from the named target of the same capability (the closest known part)."""
    import torch
    props = torch.cuda.get_device_properties(index)
    capability = (props.major, props.minor)
    same = [t for t in NAMED.values() if t.capability == capability]
    base = same[0] if same else max((t for t in NAMED.values() if t.capability and t.capability <= capability),
                                    key=lambda t: t.capability, default=SM_80)
    shared = getattr(props, "shared_memory_per_block_optin", 0) or base.shared_memory
    return replace(base, name=f"sm_{props.major}{props.minor}", description=props.name,
                   capability=capability, sm_count=props.multi_processor_count, shared_memory=shared,
                   registers_per_sm=getattr(props, "regs_per_multiprocessor", 0) or base.registers_per_sm,
                   warp_size=getattr(props, "warp_size", 32) or 32,
                   l2_bytes=getattr(props, "L2_cache_size", 0) or base.l2_bytes,
                   measured=base.measured and same == [base])
