#!/usr/bin/env bash
# Builds, here, the carry for one GPU call that checks the working tree's
# GPU code and times it against llama.cpp on the same card: the op-test,
# lib, model and wgmma-tile test binaries (test profile: debug assertions, every launch
# checked), the CLI and the synth_agreement and op_bench examples, a kernel cache for
# sm_90a (so the lent machine compiles nothing), llama.cpp's llama-bench
# with CUDA (scripts/build_llama_cpp_cuda.sh, when third_party has it), the
# Qwen2.5 tokenizer and the gguf wheel for synthetic models, and a variant
# of ../shared/tools/synth_gguf.py that writes q4_k_m as llama.cpp does
# where rows are not whole 256-element super-blocks (Q5_0 for Q4_K, Q8_0
# for Q6_K: the real Qwen2.5-0.5B's mix). Then, with the device tool:
#   run, carry ["DIR"], command `bash scripts/gpu_session_run.sh DIR`
# (scripts/gpu_session_run.sh says what it runs). About 15 minutes on the 2
# cores here (the kernel cache is most of it); llama.cpp adds about 25 if
# it must be built first (LLAMA=build). See docs/gpu-testing.md.
#
# Usage: scripts/gpu_session_carry.sh [DIR]   (DIR default .cs, git-ignored)
set -euo pipefail
cd "$(dirname "$0")/.."
C=${1:-.cs}
rm -rf "$C"
mkdir -p "$C/pack/bin" "$C/pack/kc" "$C/whl"

echo "== binaries"
cargo test -q -p metallic --no-run --message-format=json \
    --lib --test ops --test cuda_model --test cuda_wgmma --test cuda_kernels >"$C/build.json"
cargo build -q --release -p metallic-cli
cargo build -q --release -p metallic --example synth_agreement --example op_bench
python3 - "$C" <<'PY'
import json, shutil, sys
c = sys.argv[1]
for line in open(f"{c}/build.json"):
    m = json.loads(line)
    exe = m.get("executable")
    if m.get("reason") == "compiler-artifact" and exe:
        name = "lib" if m["target"]["kind"] == ["lib"] else m["target"]["name"]
        shutil.copy(exe, f"{c}/{name}" if name == "cuda_kernels" else f"{c}/pack/bin/{name}")
PY
rm "$C/build.json"
cp target/release/metallic target/release/examples/{synth_agreement,op_bench} "$C/pack/bin/"
strip --strip-debug "$C"/pack/bin/*

echo "== kernel cache (sm_90a)"
python3 -m pip show nvidia-cuda-nvrtc >/dev/null 2>&1 || python3 -m pip install --quiet "nvidia-cuda-nvrtc==13.0.88"
(
    source scripts/nvrtc_env.sh
    METALLIC_COMPILE_CACHE="$PWD/$C/pack/kc" "$C/cuda_kernels" every_kernel >"$C/compile.log" 2>&1
) || { tail -20 "$C/compile.log"; exit 1; }
rm -f "$C"/pack/kc/*-sm_80-*.cubin "$C/cuda_kernels"
echo "$(ls "$C/pack/kc" | wc -l) kernels"

echo "== llama.cpp (CUDA)"
L=third_party/llama.cpp-cuda-bin
if [ ! -x $L/llama-bench ] && [ "${LLAMA:-}" = build ]; then
    bash scripts/build_llama_cpp_cuda.sh
fi
if [ -x $L/llama-bench ]; then
    cp -a $L "$C/pack/llama"
else
    echo "no $L/llama-bench (LLAMA=build builds it): the run skips llama.cpp" >&2
fi

echo "== synthetic models' inputs"
tok=models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
[ -f $tok ] || bash scripts/fetch_models.sh qwen
python3 -c 'import gguf' 2>/dev/null || python3 -m pip install --quiet gguf==0.19.0
python3 scripts/make_tokenizer_gguf.py $tok "$C/qwen2.5-tokenizer.gguf"
python3 -m pip download --quiet gguf==0.19.0 --no-deps -d "$C/whl"
python3 - ../shared/tools/synth_gguf.py "$C/synth_gguf_mix.py" <<'PY'
import sys
src, out = sys.argv[1], sys.argv[2]
s = open(src).read()
def edit(old, new):
    global s
    assert s.count(old) == 1, f"synth_gguf.py changed: {old!r}"
    s = s.replace(old, new)
edit("    Q.Q4_K: (256, 144, [0, 2]), Q.Q6_K: (256, 210, [208]),\n",
     "    Q.Q4_K: (256, 144, [0, 2]), Q.Q6_K: (256, 210, [208]),\n    Q.Q5_0: (32, 22, [0]),\n")
edit("    bs, nb, scale_offs = BLOCK[qt]\n",
     "    if qt in (Q.Q4_K, Q.Q6_K) and cols % 256:  # llama.cpp's fallback for partial super-blocks\n"
     "        qt = Q.Q5_0 if qt == Q.Q4_K else Q.Q8_0\n"
     "    bs, nb, scale_offs = BLOCK[qt]\n")
edit("    if main_t in (Q.Q4_K, Q.Q6_K) and n_embd % 256:\n"
     "        raise SystemExit(f'{a.size}: n_embd {n_embd} is not a multiple of 256; use q8_0 or q4_0')\n", "")
open(out, "w").write(s)
PY

echo "== packing"
tar -C "$C/pack" -cJf "$C/pack.tar.xz" .
rm -rf "$C/pack"
du -sh "$C"
