"""`python -m tritonflow.fuzz --graphs N --seed S --backend numpy|triton`: the differential fuzzer's CLI.

Exit status: 0 when every program matched the float64 reference, 1 when any mismatched or
crashed (each failure is shrunk and written to --out as a standalone reproducer).
"""
from __future__ import annotations

import argparse
import sys

from tritonflow import environment


def _prepare_triton_interpreter(backend: str, device: str) -> None:
    # Triton's interpreter has to be chosen before triton is first imported.
    if backend == "triton" and device == "cpu":
        environment.request_triton_interpreter()


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tritonflow.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", type=int, default=300, help="how many random programs to run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=("numpy", "c", "triton"), default="numpy")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="where the backend runs (default: cuda for triton when a GPU is present)")
    parser.add_argument("--dtypes", default=None, help="comma-separated dtypes (default: all)")
    parser.add_argument("--out", default="fuzz_failures", help="folder for reproducers")
    parser.add_argument("--no-shrink", action="store_true")
    parser.add_argument("--grad", action="store_true",
                        help="differentiate the programs (eager, jit, jit(grad)) against torch float64, or "
                             "float64 central differences without torch")
    args = parser.parse_args(argv)

    device = args.device
    if device is None:
        device = "cpu"
        if args.backend == "triton":
            try:
                import torch
                device = "cuda" if torch.cuda.is_available() else "cpu"
            except ImportError:
                pass
    _prepare_triton_interpreter(args.backend, device)
    from tritonflow.fuzz import fuzz

    dtypes = tuple(args.dtypes.split(",")) if args.dtypes else None
    summary = fuzz(args.graphs, args.seed, args.backend, device, args.out, not args.no_shrink, dtypes,
                   log=lambda line: print(line, file=sys.stderr, flush=True), grad=args.grad)
    print(f"tritonflow.fuzz: seed {args.seed}, backend {args.backend} on {device}"
          + (", gradients" if args.grad else ""))
    print(summary)
    return 1 if summary.mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
