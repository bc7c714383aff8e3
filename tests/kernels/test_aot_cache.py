"""A warm Triton cache made without a GPU is found by a GPU launch (kernels/aot_worker.py).

In a process without Triton's interpreter (as `tritonflow precompile` runs), the test precompiles a
generated kernel for sm_90 into an empty TRITON_CACHE_DIR, then launches the same kernel through
Triton's own `JITFunction.run` with a stand-in driver that reports an sm_90 device: the JIT binds
and specializes real arguments (16-byte aligned tensors, a size divisible by 16) and hands
`triton.compile` its source, target and options; that call is captured, and repeated with Triton's
compilation listener on. It must be a cache hit with the precompiled kernel's hash: the key Triton's
JIT computes for the launch is the key the precompile filed under. (The hit on a real GPU is one of
the GPU checks benchmarks/gpu_check.sh owes.)
"""
import json
import os
import subprocess
import sys

from tritonflow import environment

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = r"""
import json, sys
import torch
import triton
from triton import knobs
from triton.backends.compiler import GPUTarget
from triton.runtime.driver import driver
import tritonflow
from tritonflow import dtypes as D
from tritonflow.ir import Graph, TensorType
from tritonflow.ops.registry import OPS
from tritonflow.kernels import lower
from tritonflow.kernels.aot import kernel_request
from tritonflow.kernels.aot_worker import compile_request
import sympy

rows = sympy.Symbol("s0", integer=True, positive=True)
g = Graph("scaled_softmax")
x = g.add_input("x", TensorType((rows, 96), D.bfloat16))
def op(name, *xs, **attrs):
    return g.add(name, xs, attrs, OPS[name].infer([v.type for v in xs], attrs))
f = op("cast", x, dtype=D.float32)
m = op("reduce_max", f, dims=(1,), keepdim=True)
e = op("exp", op("sub", f, op("expand", m, shape=(rows, 96))))
s = op("reduce_sum", e, dims=(1,), keepdim=True)
g.outputs = [op("cast", op("div", e, op("expand", s, shape=(rows, 96))), dtype=D.bfloat16)]
symbols = {"s0": 4096}
lowered = lower(g, target="sm_90")
(kernel,) = lowered.compiled_kernels
request, config, grid = kernel_request(kernel, symbols, lowered.target)
pre = compile_request(request)
assert pre["error"] is None, pre["error"]

class Sm90Driver:
    def get_current_device(self): return 0
    def get_current_stream(self, device=None): return 0
    def get_current_target(self): return GPUTarget("cuda", 90, 32)

driver.set_active(Sm90Driver())
fn = kernel.fn
fn.device_caches[0]            # the JIT's per-device binder, made for the driver's target
captured = {}
class Stop(Exception):
    pass
def capture(src, target=None, options=None):
    captured.update(src=src, target=target, options=options)
    raise Stop()
fn.compile = capture
args = []
for arg in kernel.generated.args:
    if arg.kind == "buffer":
        args.append(torch.empty(8, dtype=getattr(torch, arg.ref.dtype.name)))
    else:
        args.append(symbols[arg.ref])
try:
    fn.run(*args, grid=grid, warmup=False, **config)
except Stop:
    pass
hits = []
knobs.compilation.listener = lambda **kw: hits.append(kw["cache_hit"])
again = triton.compile(captured["src"], target=captured["target"], options=captured["options"])
print(json.dumps({"precompiled": pre["hash"], "jit": again.hash, "hit": hits,
                  "signature": {k: str(v) for k, v in captured["src"].signature.items()},
                  "attrs": {str(k): v for k, v in captured["src"].attrs.items()},
                  "int_args": [a for a in args if isinstance(a, int)]}))
"""


def test_precompiled_kernel_is_what_the_jit_finds(tmp_path):
    env = environment.child_environment(unset=("TRITON_INTERPRET",), PYTHONPATH=ROOT,
                                        TRITON_CACHE_DIR=str(tmp_path / "triton"),
                                        TRITONFLOW_CACHE_DIR=str(tmp_path / "tritonflow"))
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["hit"] == [True], result            # Triton's own compile call: no compiling
    assert result["jit"] == result["precompiled"]
    # The launch specialized what a real one does: aligned pointers, a size divisible by 16.
    assert result["int_args"] == [4096]
    assert result["signature"]["in_x_ptr"] == "*bf16"
    assert any("tt.divisibility" in json.dumps(v) for v in result["attrs"].values())
    assert os.listdir(tmp_path / "triton")
