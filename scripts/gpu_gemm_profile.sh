#!/usr/bin/env bash
# Runs on the lent GPU machine over .carry-gemm/ (see scripts/gpu_gemm.sh):
# the GEMM benchmark under Nsight Compute, recording only each kernel's
# duration (gpu__time_duration: one pass, no replay, clocks left alone), so
# that the time of ours and cuBLAS's kernels can be set beside the CUDA-event
# times of the benchmark, which also hold launch gaps and host costs.
# Writes $OUT/gemm-ncu.csv. Usage: bash scripts/gpu_gemm_profile.sh [bench args...]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/metallic-gpu}
mkdir -p "$OUT"
B=.carry-gemm
source scripts/gpu_env.sh
timeout ${PROFILE_TIMEOUT:-240} ncu --clock-control none --metrics gpu__time_duration.sum --csv \
    $B/gemm_bench "$@" >"$OUT/gemm-ncu.csv" 2>"$OUT/gemm-ncu.err"
echo "ncu rc=$? $(wc -l <"$OUT/gemm-ncu.csv") lines"
tail -3 "$OUT/gemm-ncu.err"
