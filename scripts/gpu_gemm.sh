#!/usr/bin/env bash
# Runs on the lent GPU machine over .carry-gemm/ (the ops and cuda_kernels
# test binaries and examples/gemm_bench, built here): the matmul op cases on
# cuda-native and cuda-vendor, racecheck over them, the register / shared
# memory report of the tensor-core GEMM's CUBINs, then the benchmark.
# Logs go to $OUT. Usage: bash scripts/gpu_gemm.sh [bench args...]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/metallic-gpu}
mkdir -p "$OUT"
B=.carry-gemm
export METALLIC_KERNEL_CACHE=/tmp/metallic-kernels RUST_BACKTRACE=1
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
    $(python3 -c 'import nvidia, os; [print(os.path.join(p, "cu13", "lib")) for p in nvidia.__path__]' 2>/dev/null); do
    [ -d "$d" ] && LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
export LD_LIBRARY_PATH
{
    echo "===== machine ($(date -u +%Y-%m-%dT%H:%MZ))"
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap,clocks.sm,clocks.max.sm --format=csv
    echo "===== kernels compile (sm_80, sm_90a)"
    timeout 120 $B/cuda_kernels --nocapture 2>&1 | grep -E "gemm_|test result"
    echo "===== op cases on cuda-native and cuda-vendor (every op)"
    METALLIC_OPTEST_TARGET=cuda timeout 240 $B/ops --nocapture; echo "rc=$?"
    echo "===== op cases, matmul only, verbose"
    METALLIC_OPTEST_TARGET=cuda METALLIC_OPTEST_OP=matmul METALLIC_OPTEST_VERBOSE=1 timeout 120 $B/ops --nocapture; echo "rc=$?"
} 2>&1 | tee "$OUT/gemm-optests.log"
{
    echo "===== compute-sanitizer racecheck (matmul on cuda)"
    METALLIC_OPTEST_TARGET=cuda METALLIC_OPTEST_OP=matmul timeout 150 compute-sanitizer --tool racecheck --error-exitcode 9 --print-limit 20 $B/ops --nocapture 2>&1 | tail -5; echo "rc=$?"
    echo "===== resource usage of the gemm_mma CUBINs"
    for f in /tmp/metallic-kernels/gemm_*.cubin; do cuobjdump -res-usage "$f" 2>&1 | grep -E "Function|REG"; done
} 2>&1 | tee -a "$OUT/gemm-optests.log"
timeout 300 $B/gemm_bench "$@" 2>&1 | tee "$OUT/gemm-bench.log"
