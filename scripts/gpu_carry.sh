#!/usr/bin/env bash
# Builds, here, everything the GPU checks run, and puts it in .carry/
# (git-ignored) for the lent GPU machine, which has no Rust: the op-test,
# model-agreement and kernel-compile test binaries (test profile: optimised,
# with debug assertions, so every kernel launch is followed by an error
# check), the CLI, and a tiny random model with the SmolLM2 tokenizer (real
# weights exceed the 64 MiB a call may carry). Then scripts/gpu_test.sh runs
# there. See docs/gpu-testing.md.
set -euo pipefail
cd "$(dirname "$0")/.."

rm -rf .carry
mkdir -p .carry/bin .carry/models

echo "== building (tests, CLI, tiny-model writer)"
cargo build --release -p metallic-cli
cargo build --release -p metallic --example tiny_model
cargo test -p metallic --no-run --message-format=json \
    --test ops --test cuda_model --test cuda_kernels --test cuda_device --test cuda_wgmma --test cuda_f32 >.carry/build.json
python3 - <<'PY'
import json, shutil
for line in open(".carry/build.json"):
    m = json.loads(line)
    exe = m.get("executable")
    if m.get("reason") == "compiler-artifact" and exe and m["target"]["kind"] == ["test"]:
        shutil.copy(exe, ".carry/bin/" + m["target"]["name"])
        print("carry", m["target"]["name"])
PY
rm .carry/build.json
cp target/release/metallic .carry/bin/metallic
# Debug info is most of their size; the carry limit is 64 MiB.
strip --strip-debug .carry/bin/*

echo "== tiny model"
tok=models/smollm2-135m-instruct-q4_1.gguf
if [ -f "$tok" ]; then
    target/release/examples/tiny_model --tokenizer-from "$tok" .carry/models/tiny-smollm2.gguf
else
    echo "no $tok (bash scripts/fetch_models.sh smollm): the CLI checks will be skipped" >&2
fi
# A text for perplexity: the project's own README.
head -c 6000 README.md >.carry/models/text.txt
du -sh .carry
