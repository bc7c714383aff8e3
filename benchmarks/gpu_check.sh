#!/usr/bin/env bash
# GPU check for the lowering (issue 3, item 10): the kernels test suite on CUDA, then the
# memory-bound benchmark against torch eager and torch.compile. Run from the repository root:
#   PYTHONPATH=. bash benchmarks/gpu_check.sh
# Budget: under 5 minutes on one H100/H200. The benchmark's table is printed last.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="${PYTHONPATH:-.}:."
unset TRITON_INTERPRET  # real GPU kernels, not the interpreter
export TRITONFLOW_CACHE_DIR="${TRITONFLOW_CACHE_DIR:-$(mktemp -d)}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
echo "== kernels tests on CUDA =="
timeout 150 python -m pytest tests/kernels -q -x -p no:cacheprovider 2>&1 | tail -25
tests_rc=${PIPESTATUS[0]}
echo "== benchmark =="
timeout 140 python benchmarks/gpu_bench.py
bench_rc=$?
timeout 150 python benchmarks/gpu_bench_matmul.py || bench_rc=1  # matmul/attention templates (issue 5)
timeout 120 python benchmarks/gpu_bench_train.py || bench_rc=1  # GPT block fwd+bwd vs torch eager/compile (issue 4)
echo "tests rc=$tests_rc bench rc=$bench_rc"
exit $(( tests_rc != 0 || bench_rc != 0 ))
