#!/usr/bin/env bash
# Runs on the lent GPU machine over what scripts/gpu_synth_carry.sh put in
# .carry-synth/: generates synthetic (random-weight) Qwen2.5-1.5B models of
# each type f16, q8_0, q4_0, q4_k_m into /tmp with synth_gguf.py, then for
# each runs synth_agreement: 32 greedy tokens and their logits on the CPU
# (f32 reference, and the q8-activation default) and on CUDA (Auto, Vendor,
# Native), CUDA judged against the f32 reference. TYPES="f16 q4_k_m" picks
# the types; PROFILE=1 first runs `metallic bench` on each, plain and with
# METALLIC_CUDA_PROFILE=1 (our kernels' time by name). Writes
# $OUT/synthetic-1.5b-agreement.log. See docs/gpu-testing.md.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/metallic-gpu}
mkdir -p "$OUT"
exec > >(tee "$OUT/synthetic-1.5b-agreement.log") 2>&1

C=.carry-synth
M=${SYNTH_DIR:-/tmp/synth}
TYPES=${TYPES:-"f16 q8_0 q4_0 q4_k_m"}
source scripts/gpu_env.sh

echo "===== machine ($(date -u +%Y-%m-%dT%H:%MZ))"
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
echo "cpu: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"

if ! python3 -c 'import gguf' 2>/dev/null; then
    pip install --quiet --no-index --no-deps --target /tmp/site $C/whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
python3 -c 'import gguf; print("gguf", gguf.__file__)'

echo; echo "===== generating synthetic Qwen2.5-1.5B models: $TYPES"
mkdir -p "$M"
t0=$SECONDS
pids=()
for t in $TYPES; do
    python3 $C/synth_gguf.py --tokenizer-from $C/qwen2.5-tokenizer.gguf --size 1.5b --type $t "$M/synth-qwen2.5-1.5b-$t.gguf" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || { echo "FAIL generating models"; exit 1; }; done
ls -la "$M"
echo "generated in $((SECONDS - t0)) s"

# PROFILE=1: first, where a 512-token prompt's time goes on each model
# (`metallic bench` with METALLIC_CUDA_PROFILE=1: our kernels by name).
if [ "${PROFILE:-0}" = 1 ]; then
    for t in $TYPES; do
        echo; echo "===== bench $t, pp512 and tg32, then pp512 with METALLIC_CUDA_PROFILE=1"
        timeout 90 $C/bin/metallic bench "$M/synth-qwen2.5-1.5b-$t.gguf" -p 512 -n 32 -r 3 --device cuda
        METALLIC_CUDA_PROFILE=1 timeout 60 $C/bin/metallic bench "$M/synth-qwen2.5-1.5b-$t.gguf" -p 512 -n 0 -r 3 --device cuda
    done
fi

echo; echo "===== synth_agreement"
files=()
for t in $TYPES; do files+=("$M/synth-qwen2.5-1.5b-$t.gguf"); done
timeout "${LIMIT:-420}" $C/bin/synth_agreement "${files[@]}"
rc=$?
echo; echo "===== $( [ $rc -eq 0 ] && echo PASS || echo "FAIL(rc=$rc)" ) synth_agreement ($((SECONDS - t0)) s from generation start)"
exit $rc
