#!/usr/bin/env bash
# Runs on the lent GPU machine over .carry-gemm/ (scripts/gpu_gemm_carry.sh).
#
# Default: the GEMM benchmark under Nsight Compute, recording only each
# kernel's duration (gpu__time_duration: one pass, no replay, clocks left
# alone), so that the time of ours and cuBLAS's kernels can be set beside the
# CUDA-event times of the benchmark, which also hold launch gaps and host
# costs. Writes $OUT/gemm-ncu.csv.
#
# NCU_DETAIL=<kernel regex>: the full section set (speed of light, memory
# workload, warp states, scheduler, instruction statistics) and the SASS
# source counters (stall reasons sampled per instruction) of the first
# NCU_COUNT (default 2) launches whose name matches, clocks locked to base as
# ncu does by default. Writes $OUT/gemm-detail.txt (details page) and
# $OUT/gemm-source.csv (per-instruction counters of the profiled launches).
#
# Usage: [NCU_DETAIL=regex] bash scripts/gpu_gemm_profile.sh [bench args...]
#   e.g. NCU_DETAIL='gemm_bf16_wgmma|nvjet|sm90' ... --only '0.5B gate' --ms 4096 --reps 3
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/metallic-gpu}
mkdir -p "$OUT"
B=.carry-gemm
source scripts/gpu_env.sh
if [ -z "${NCU_DETAIL:-}" ]; then
    timeout ${PROFILE_TIMEOUT:-240} ncu --clock-control none --metrics gpu__time_duration.sum --csv \
        $B/gemm_bench "$@" >"$OUT/gemm-ncu.csv" 2>"$OUT/gemm-ncu.err"
    echo "ncu rc=$? $(wc -l <"$OUT/gemm-ncu.csv") lines"
    tail -3 "$OUT/gemm-ncu.err"
    exit 0
fi
rep=/tmp/gemm-detail
timeout ${PROFILE_TIMEOUT:-300} ncu --set full --import-source no -k "regex:${NCU_DETAIL}" \
    --launch-count "${NCU_COUNT:-2}" -f -o $rep $B/gemm_bench "$@" >"$OUT/gemm-detail.log" 2>&1
echo "ncu rc=$?"
tail -5 "$OUT/gemm-detail.log"
ncu -i $rep.ncu-rep --page details >"$OUT/gemm-detail.txt" 2>&1
echo "details: $(wc -l <"$OUT/gemm-detail.txt") lines"
ncu -i $rep.ncu-rep --page source --csv --print-source sass >"$OUT/gemm-source.csv" 2>&1
echo "source: $(wc -l <"$OUT/gemm-source.csv") lines"
