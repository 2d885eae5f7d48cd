#!/usr/bin/env bash
# Runs on the lent GPU machine, from the repository root, over the carry
# scripts/gpu_session_carry.sh built (DIR, default .cs): the working tree's
# GPU code checked, then timed beside llama.cpp on the same card and files.
# In order of importance, each check under its own limit, so that a call
# cut short still brings back the first ones:
#   1. the block-weight and fused op cases on both CUDA paths, then the
#      block-weight ones again with METALLIC_QMMA=128x128x32 (the tensor-
#      core prefill's large tile; ignored by a build without it);
#   2. the lib tests that need a GPU (cuda::), the tiny models on CUDA
#      against the CPU (tests/cuda_model.rs);
#   3. every op case (every op) on both CUDA paths, and op_bench (the
#      prefill's non-GEMM ops against a device copy, 7B shapes);
#   4. per synthetic Qwen2.5 q4_k_m (SIZES, default "0.5b 1.5b 7b",
#      generated here in the background from step 1 on, with llama.cpp's
#      Q5_0 / Q8_0 fallbacks): `metallic bench -p 512 -n 128 -r 2` under
#      METALLIC_QMMA=off METALLIC_MV=mv1u4, under METALLIC_QMMA=off, and
#      as built, then `llama-bench -ngl 99 -fa 1 -p 512 -n 128 -r 3`;
#   5. synth_agreement on the 0.5B and the 1.5B (CPU f32 / q8-decode
#      references, every product against the CPU's), every wgmma tile
#      against cuBLAS (tests/cuda_wgmma.rs);
#   6. compute-sanitizer memcheck over step 1's cases, the pool off.
# Writes $OUT/session.log and ends with a PASS/FAIL summary.
set -uo pipefail
cd "$(dirname "$0")/.."
C=${1:-.cs}
OUT=${OUT:-/tmp/metallic-gpu}
mkdir -p "$OUT"
exec > >(tee "$OUT/session.log") 2>&1
T0=$SECONDS
tar -C "$C" -xJf "$C/pack.tar.xz"
B=$C/bin
export METALLIC_KERNEL_CACHE=$PWD/$C/kc
source scripts/gpu_env.sh
declare -a SUMMARY
check() { # limit_s, name, command...
    local limit=$1 name=$2
    shift 2
    echo
    echo "===== $name ($((SECONDS - T0)) s)"
    local t=$SECONDS
    timeout "$limit" "$@"
    local rc=$?
    SUMMARY+=("$([ $rc -eq 0 ] && echo PASS || echo "FAIL(rc=$rc)") $name ($((SECONDS - t)) s)")
    return $rc
}
summary() {
    echo
    echo "===== summary ($((SECONDS - T0)) s)"
    printf '%s\n' "${SUMMARY[@]}"
}

echo "===== machine ($(date -u +%Y-%m-%dT%H:%MZ)), unpacked in $((SECONDS - T0)) s"
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap,clocks.max.sm --format=csv
echo "$(ls $C/kc | wc -l) cached kernels"

M=/tmp/synth
SIZES=${SIZES:-"0.5b 1.5b 7b"}
mkdir -p $M
pip install --quiet --no-index --no-deps --target /tmp/site $C/whl/*.whl
(
    t=$SECONDS
    for s in $SIZES; do
        PYTHONPATH=/tmp/site python3 $C/synth_gguf_mix.py --tokenizer-from $C/qwen2.5-tokenizer.gguf \
            --size $s --type q4_k_m $M/tmp-$s.gguf && mv $M/tmp-$s.gguf $M/s-$s-q4_k_m.gguf
        echo "$s generated at $((SECONDS - t)) s"
    done >/tmp/gen.log 2>&1
) &
GEN=$!

Q="b=q,rms_norm_matmul,rms_norm_swiglu"
check 90 "block-weight and fused op cases on cuda" \
    env METALLIC_OPTEST_TARGET=cuda METALLIC_OPTEST_CASE=$Q $B/ops --nocapture
check 90 "block-weight op cases on cuda, METALLIC_QMMA=128x128x32" \
    env METALLIC_QMMA=128x128x32 METALLIC_OPTEST_TARGET=cuda METALLIC_OPTEST_CASE=b=q $B/ops --nocapture
check 90 "block-weight op cases on cuda, METALLIC_QBAND=all (decoded bands of 128 rows, wgmma)" \
    env METALLIC_QBAND=all METALLIC_OPTEST_TARGET=cuda METALLIC_OPTEST_CASE=b=q $B/ops --nocapture
check 60 "lib tests on the GPU (cuda::)" $B/lib --nocapture --test-threads 1 cuda::
check 120 "tiny models on cuda agree with the cpu" $B/cuda_model --nocapture --test-threads 1
check 240 "every op case on cuda-native and cuda-vendor" env METALLIC_OPTEST_TARGET=cuda $B/ops --nocapture
check 30 "op_bench, 7B prefill shapes" $B/op_bench 512 3584 18944

echo
echo "===== prefill and decode, synthetic Qwen2.5 q4_k_m ($((SECONDS - T0)) s)"
bench() { # label, env...
    local label=$1
    shift
    echo "-- $s: $label"
    env "$@" timeout 60 $B/metallic bench $f -p 512 -n 128 -r 2 --device cuda 2>&1 | grep -E '^\||rror'
}
for s in $SIZES; do
    f=$M/s-$s-q4_k_m.gguf
    while [ ! -f $f ] && kill -0 $GEN 2>/dev/null; do sleep 1; done
    cat /tmp/gen.log
    bench "METALLIC_QMMA=off METALLIC_MV=mv1u4" METALLIC_QMMA=off METALLIC_MV=mv1u4
    bench "METALLIC_QMMA=off" METALLIC_QMMA=off
    bench "METALLIC_QBAND=off" METALLIC_QBAND=off
    bench "as built"
    if [ -x $C/llama/llama-bench ]; then
        echo "-- $s: llama.cpp"
        LD_LIBRARY_PATH=$C/llama:$LD_LIBRARY_PATH timeout 90 $C/llama/llama-bench -m $f -ngl 99 -fa 1 \
            -p 512 -n 128 -r 3 2>&1 | grep -E '^\||rror'
    fi
done

check 150 "synth_agreement, 0.5B q4_k_m" $B/synth_agreement $M/s-0.5b-q4_k_m.gguf
if [ -f $M/s-1.5b-q4_k_m.gguf ]; then
    check 150 "synth_agreement, 1.5B q4_k_m" $B/synth_agreement $M/s-1.5b-q4_k_m.gguf
fi
check 200 "every wgmma tile against cuBLAS" $B/cuda_wgmma --nocapture --test-threads 1
summary
if command -v compute-sanitizer >/dev/null; then
    check 120 "memcheck: block-weight and fused op cases, pool off" env METALLIC_CUDA_POOL=off \
        METALLIC_OPTEST_TARGET=cuda METALLIC_OPTEST_CASE=$Q \
        compute-sanitizer --tool memcheck --error-exitcode 9 --print-limit 20 $B/ops --nocapture
    check 120 "memcheck: block-weight op cases, METALLIC_QBAND=all, pool off" env METALLIC_CUDA_POOL=off \
        METALLIC_QBAND=all METALLIC_OPTEST_TARGET=cuda METALLIC_OPTEST_CASE=b=q \
        compute-sanitizer --tool memcheck --error-exitcode 9 --print-limit 20 $B/ops --nocapture
else
    SUMMARY+=("FAIL compute-sanitizer not found")
fi
summary
! printf '%s\n' "${SUMMARY[@]}" | grep -q '^FAIL'
