#!/usr/bin/env bash
# Here (no GPU needed): builds what scripts/gpu_gemm.sh and
# scripts/gpu_gemm_profile.sh run on the lent GPU machine, the test binaries
# ops, cuda_kernels, cuda_wgmma, cuda_f32 (test profile) and the gemm_bench
# example (release), stripped of debug info, into .carry-gemm/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '.carry-gemm' .git/info/exclude 2>/dev/null || echo '.carry-gemm' >>.git/info/exclude
cargo build -q --release -p metallic --example gemm_bench
tests=(ops cuda_kernels cuda_wgmma cuda_f32)
json="$(cargo test -q -p metallic --no-run --message-format=json ${tests[@]/#/--test })"
rm -rf .carry-gemm && mkdir -p .carry-gemm
for t in "${tests[@]}"; do
    exe="$(echo "$json" | python3 -c "
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get('reason') == 'compiler-artifact' and m['target']['name'] == '$t' and m.get('executable'):
        print(m['executable'])")"
    cp "$exe" .carry-gemm/"$t"
done
cp target/release/examples/gemm_bench .carry-gemm/
strip --strip-debug .carry-gemm/*
du -sh .carry-gemm
