"""Code generation (part of `tritonflow.kernels`): one fusion group -> one readable Triton kernel.

- `indexing`: views as SymPy index expressions, simplified and printed as Triton arithmetic;
- `triton_types`: how tritonflow dtypes are stored, computed and written as literals in Triton;
- `emit`: one IR value at one index as Triton source lines (the op table's spellings);
- `context`: what one kernel's emitters share, and the rendered module;
- `pointwise`, `reduction`, `online_sum`, `scan_scatter`: the kernel kinds.
"""
