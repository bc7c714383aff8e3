#!/usr/bin/env bash
# GPU check (issues 3, 10, 11): the kernels and templates test suites on CUDA; ahead-of-time
# compilation against the real GPU (benchmarks/aot_vs_gpu.py: a Triton cache precompiled for the
# named target must serve every kernel of every workload with no compile, the AOT registers/spills
# must match what the GPU loaded, and the cost model's predicted time is put next to the measured
# one); then `tritonflow bench --device cuda --quick`: the workload list against torch eager and
# torch.compile, every provider checked against float64 first, with the copy bandwidth and
# torch.matmul measured in the same run, the cost model's column and the fraction of the copy
# bandwidth, and Liger-Kernel's kernels where liger_kernel is installed (`pip install -e ".[liger]"`;
# in --quick only cross_entropy is one of Liger's: one more do_bench call); then the runtime's host overhead and reduce-overhead (benchmarks/gpu_bench.py) and
# the training-step benchmark.
# Run from the repository root on a CUDA machine:
#   PYTHONPATH=. bash benchmarks/gpu_check.sh
# Budget: under 5 minutes on one H100/H200. Each step has its own timeout (a step that runs out
# is reported as such, never hangs the check); the last thing printed is a short summary table:
# each step's status and time, then the peer table of `tritonflow bench`.
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

# Under 5 minutes in all, worst case: 70 + 50 + 120 + 35 + 20 seconds plus start-up.
BENCH_JSON="$RESULTS/cuda-$(date +%Y-%m-%d)-quick.json"
step kernels-tests 70 "$PY" -m pytest tests/kernels tests/templates -q -p no:cacheprovider
step aot-vs-gpu 50 "$PY" benchmarks/aot_vs_gpu.py --budget 40                       # issue 10
step tritonflow-bench 120 "$PY" -m tritonflow.cli bench --device cuda --quick --budget 100 --json "$BENCH_JSON"  # issue 11
step overhead-bench 35 "$PY" benchmarks/gpu_bench.py --budget 25 --out "$RESULTS"   # host overhead, CUDA graphs
step train-bench 20 "$PY" benchmarks/gpu_bench_train.py --out "$RESULTS"            # issue 4

echo
echo "== summary =="
passed_line="$(grep -E '[0-9]+ (passed|failed)' "$LOG/kernels-tests.out" | tail -n 1)"
echo "kernels tests: ${passed_line:-no pytest summary (see above)}"
echo "| step | status | time |"
echo "| --- | --- | --- |"
printf '%s\n' "${summary[@]}"
if [ -f "${BENCH_JSON%.json}.md" ]; then
  echo
  cat "${BENCH_JSON%.json}.md"
fi
exit $failed
