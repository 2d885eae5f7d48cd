#!/usr/bin/env bash
# The project's test command (the README's second set-up command, and what CI
# runs): formatting, lints as errors, then every test, optimised (the end-to-end
# tests run real models). Fails on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
# NVRTC for tests/cuda_kernels.rs (pip's nvidia-cuda-nvrtc; see .ci/run).
source scripts/nvrtc_env.sh
cargo test --workspace -- --nocapture 2>&1 | tee target/test.log
echo "== aarch64 NEON kernels under qemu"
bash scripts/test_aarch64.sh
# Surface the op-test summary lines at the end of the log.
grep -E "^op tests:" target/test.log || true
