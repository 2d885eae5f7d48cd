#!/usr/bin/env bash
# Builds, here, what the synthetic-model agreement check (issue 6: the model
# on CUDA agrees with the CPU at Qwen2.5-1.5B size, for f16, q8_0, q4_0 and
# q4_k_m) needs on the lent GPU machine, into .carry-synth/ (git-ignored):
# the synth_agreement example, the CLI (for PROFILE=1), a tokenizer-only GGUF (a few MB; the 1.5B
# models themselves, 1-3 GB each, are generated there), synth_gguf.py and
# the gguf wheel (not in the machine's image). Then, with the device tool:
# run with carry [".carry-synth"] and `bash scripts/gpu_synth_agreement.sh`.
# See docs/gpu-testing.md.
set -euo pipefail
cd "$(dirname "$0")/.."

C=.carry-synth
rm -rf $C
mkdir -p $C/bin $C/whl
cargo build --release -p metallic --example synth_agreement
cargo build --release -p metallic-cli
cp target/release/examples/synth_agreement target/release/metallic $C/bin/
strip --strip-debug $C/bin/synth_agreement $C/bin/metallic
python3 scripts/make_tokenizer_gguf.py models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf $C/qwen2.5-tokenizer.gguf
cp ../shared/tools/synth_gguf.py $C/
pip download gguf==0.19.0 --no-deps -d $C/whl
du -sh $C
