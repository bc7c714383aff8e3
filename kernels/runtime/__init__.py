"""Runtime (part of `tritonflow.kernels`): running generated kernels.

- `launch`: arguments, grid, configuration and autotuning of one kernel launch;
- `call_plan`: a compiled function's recorded launches replayed with direct launchers;
- `cuda_graphs`: mode="reduce-overhead", call plans captured as CUDA graphs;
- `eager`: one op on CUDA tensors as a one-node graph through the same lowering.
"""
