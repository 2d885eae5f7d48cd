#!/usr/bin/env bash
# Runs on the lent GPU machine, from the repository root, over what
# scripts/gpu_carry.sh put in .carry/: every op case on the CUDA targets
# against the CPU reference, the model on CUDA against the CPU, the CLI end
# to end, and compute-sanitizer memcheck over the op cases. Writes the log
# to $OUT/gpu-tests.log (the device tool brings $OUT back) and ends with a
# summary; exits non-zero when any check fails. See docs/gpu-testing.md.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/metallic-gpu}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu-tests.log") 2>&1

B=.carry/bin
source scripts/gpu_env.sh
declare -a SUMMARY
# The device tool stops a command after 10 minutes: every check gets its own
# limit, and the sanitizer run whatever is left of 9.
DEADLINE=${DEADLINE:-540}
check() { # limit_s, name, command...
    local limit=$1 name=$2; shift 2
    echo; echo "===== $name: $*"
    local t0=$SECONDS
    timeout "$limit" "$@"; local rc=$?
    SUMMARY+=("$( [ $rc -eq 0 ] && echo PASS || echo "FAIL(rc=$rc)" ) $name ($((SECONDS - t0)) s)")
    return $rc
}

echo "===== machine ($(date -u +%Y-%m-%dT%H:%MZ))"
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
nvcc --version 2>/dev/null | tail -2
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
ls $B

MODE=${1:-full}
# Every module for two targets on the machine's CPU: 108 s on one lent
# H200 machine, past 120 on another (2026-11-27).
check 200 "kernels compile (sm_80, sm_90a)" $B/cuda_kernels --nocapture
if [ "$MODE" = smoke ]; then
    check 120 "op cases on cuda (smoke: rms_norm, softmax)" env METALLIC_OPTEST_TARGET=cuda METALLIC_OPTEST_OP=rms_norm,softmax \
        METALLIC_OPTEST_VERBOSE=1 $B/ops --nocapture
else
    check 240 "op cases on cuda-native and cuda-vendor" env METALLIC_OPTEST_TARGET=cuda $B/ops --nocapture
    check 120 "block-weight and fused op cases on the f32 one-row path (METALLIC_MV=mv1u4)" env METALLIC_MV=mv1u4 \
        METALLIC_OPTEST_TARGET=cuda METALLIC_OPTEST_OP=matmul,rms_norm_matmul,rms_norm_matmuls,rms_norm_swiglu $B/ops --nocapture
    check 60 "device layer (views across devices, out of memory)" $B/cuda_device --nocapture --test-threads 1
    check 150 "model on cuda agrees with cpu" $B/cuda_model --nocapture --test-threads 1
    check 200 "our Hopper GEMM (every wgmma tile) against cuBLAS" $B/cuda_wgmma --nocapture --test-threads 1
    check 120 "our F32 GEMMs (exact, TF32, M <= 16) against cuBLAS" $B/cuda_f32 --nocapture --test-threads 1
    M=.carry/models/tiny-smollm2.gguf
    if [ -f $M ]; then
        check 60 "cli run --device cpu" $B/metallic run $M -p "The GPU says" -n 32 --temp 0 --matmul vendor --device cpu
        check 60 "cli run --device cuda" $B/metallic run $M -p "The GPU says" -n 32 --temp 0 --device cuda
        check 60 "cli bench --device cuda" $B/metallic bench $M -p 64 -n 32 -r 3 --device cuda
        check 60 "cli perplexity --device cuda" $B/metallic perplexity $M -f .carry/models/text.txt -c 128 --device cuda
        check 60 "cli perplexity --device cpu" $B/metallic perplexity $M -f .carry/models/text.txt -c 128 --device cpu --matmul vendor
    fi
    if command -v compute-sanitizer >/dev/null; then
        # Buffer caching off: exact-size allocations, so memcheck sees every
        # tensor's real bounds (a rounded-up pool buffer would hide overruns).
        export METALLIC_CUDA_POOL=off METALLIC_OPTEST_TARGET=cuda
        left() { echo $((DEADLINE - SECONDS > 30 ? DEADLINE - SECONDS : 30)); }
        check "$(left)" "compute-sanitizer memcheck (op cases on cuda)" \
            compute-sanitizer --tool memcheck --error-exitcode 9 --print-limit 20 $B/ops --nocapture
        check "$(left)" "compute-sanitizer memcheck (model on cuda)" \
            compute-sanitizer --tool memcheck --error-exitcode 9 --print-limit 20 \
            $B/cuda_model --nocapture --test-threads 1 tiny_models
        # The kernels that share data through shared memory (block reductions,
        # GEMM tiles) under racecheck: ours (cuda-native). cuBLAS's own
        # split-K kernels (nvjet_sm90_*_splitK, picked for the M = 3, K = 3000
        # case) are reported by racecheck, which does not follow their
        # mbarrier hand-offs (H200, 2026-11-27); they are not ours to fix.
        export METALLIC_OPTEST_OP=rms_norm,softmax,matmul METALLIC_OPTEST_TARGET=cuda-native
        check "$(left)" "compute-sanitizer racecheck (rms_norm, softmax, matmul on cuda-native)" \
            compute-sanitizer --tool racecheck --error-exitcode 9 --print-limit 20 $B/ops --nocapture
        unset METALLIC_CUDA_POOL METALLIC_OPTEST_TARGET METALLIC_OPTEST_OP
    else
        SUMMARY+=("FAIL compute-sanitizer not found")
    fi
fi

echo; echo "===== summary"
printf '%s\n' "${SUMMARY[@]}"
! printf '%s\n' "${SUMMARY[@]}" | grep -q '^FAIL'
