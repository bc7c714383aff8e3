#!/usr/bin/env bash
# GPU check for the lowering (issues 3 and 10): the kernels and templates test suites on CUDA; then
# ahead-of-time compilation against the real GPU (benchmarks/aot_vs_gpu.py: a Triton cache
# precompiled for the named target must serve every kernel of every workload with no compile, the
# AOT registers/spills must match what the GPU loaded, and the cost model's predicted time is put
# next to the measured one); then the memory-bound benchmark (against torch eager and
# torch.compile, as a fraction of a device copy, with the cost model's column) with the runtime's
# host overhead and compile times, then the template and training-step benchmarks.
# Run from the repository root on a CUDA machine:
#   PYTHONPATH=. bash benchmarks/gpu_check.sh
# Budget: under 5 minutes on one H100/H200. Each step has its own timeout (a step that runs out
# is reported as such, never hangs the check); the last thing printed is a short summary table:
# each step's status and time, then the memory-bound benchmark's table.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="${PYTHONPATH:-.}:."
unset TRITON_INTERPRET  # real GPU kernels, not the interpreter
export TRITONFLOW_CACHE_DIR="${TRITONFLOW_CACHE_DIR:-$(mktemp -d)}"
PY="$(command -v python || command -v python3)"
LOG="$(mktemp -d)"
RESULTS="benchmarks/results"
mkdir -p "$RESULTS"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true

summary=()
failed=0
# step NAME SECONDS COMMAND...: run with a timeout, keep the output's tail, record status and time.
step() {
  local name="$1" limit="$2"
  shift 2
  echo "== $name (timeout ${limit}s) =="
  local start=$SECONDS
  timeout "$limit" "$@" >"$LOG/$name.out" 2>&1
  local rc=$?
  tail -n 30 "$LOG/$name.out"
  local status="ok"
  if [ $rc -eq 124 ]; then status="TIMEOUT"; failed=1
  elif [ $rc -ne 0 ]; then status="FAILED (rc=$rc)"; failed=1; fi
  summary+=("| $name | $status | $((SECONDS - start)) s |")
}

# Under 5 minutes in all, worst case: 80 + 80 + 80 + 30 + 30 seconds plus start-up.
step kernels-tests 80 "$PY" -m pytest tests/kernels tests/templates -q -p no:cacheprovider
step aot-vs-gpu 80 "$PY" benchmarks/aot_vs_gpu.py --budget 65                       # issue 10
step memory-bound-bench 80 "$PY" benchmarks/gpu_bench.py --budget 55 --out "$RESULTS"
step matmul-bench 30 "$PY" benchmarks/gpu_bench_matmul.py --quick --out "$RESULTS"   # issue 5
step train-bench 30 "$PY" benchmarks/gpu_bench_train.py --out "$RESULTS"            # issue 4

echo
echo "== summary =="
passed_line="$(grep -E '[0-9]+ (passed|failed)' "$LOG/kernels-tests.out" | tail -n 1)"
echo "kernels tests: ${passed_line:-no pytest summary (see above)}"
echo "| step | status | time |"
echo "| --- | --- | --- |"
printf '%s\n' "${summary[@]}"
latest="$(find "$RESULTS" -name 'gpu_check-*.md' -newer "$LOG" 2>/dev/null | sort | tail -n 1)"
if [ -n "$latest" ]; then
  echo
  cat "$latest"
fi
exit $failed
