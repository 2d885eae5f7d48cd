#!/usr/bin/env bash
# Reference CPU throughput of llama.cpp on this machine (peer benchmark for
# metallic). Runs llama-bench on both shipped models and stores one JSON file
# per run under bench/results/, named by date and CPU model so numbers from
# different machines are never mixed up.
#
# Usage: scripts/bench_cpu.sh [extra llama-bench args...]
#   env: THREADS (default 2), REPS (default 3), PP (512), TG (128)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${LLAMA_BUILD_DIR:-$ROOT/third_party/llama.cpp-build-cpu}/bin"
THREADS="${THREADS:-2}"; REPS="${REPS:-3}"; PP="${PP:-512}"; TG="${TG:-128}"

[[ -x "$BIN/llama-bench" ]] || "$ROOT/scripts/build_llama_cpp.sh"
"$ROOT/scripts/fetch_models.sh" all

cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//; s/([^)]*)//g; s/[^A-Za-z0-9]\+/-/g; s/^-//; s/-$//' | tr 'A-Z' 'a-z')"
out_dir="$ROOT/bench/results"; mkdir -p "$out_dir"
out="$out_dir/$(date +%Y-%m-%d)-llamacpp-cpu-${cpu}-$(nproc)c.json"

# The machine is shared: record the load around the run next to the results,
# so a noisy measurement can be recognised as such later.
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"

# llama-bench accepts several -m and emits one JSON array covering all of them.
# nice: the machine is shared with Rust builds; the numbers are noisier, but
# a benchmark that starves everybody else is worse.
nice -n 10 "$BIN/llama-bench" \
  -m "$ROOT/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf" \
  -m "$ROOT/models/smollm2-135m-instruct-q4_1.gguf" \
  -p "$PP" -n "$TG" -t "$THREADS" -r "$REPS" -o json "$@" > "$out.tmp"
mv "$out.tmp" "$out"
cat > "${out%.json}.env.json" <<JSON
{"cpu": "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')", "nproc": $(nproc),
 "threads": $THREADS, "loadavg_before": "$load_before", "loadavg_after": "$(cut -d' ' -f1-3 /proc/loadavg)",
 "nice": 10, "llama_cpp": "llama-cpp-python 0.3.36 sdist (ggml-org/llama.cpp@0c1e57098), scripts/build_llama_cpp.sh"}
JSON
echo "wrote $out"
python3 - "$out" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1])):
    test = f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}"
    print(f"{r['model_filename'].split('/')[-1]:45s} {test:6s} {r['avg_ts']:9.2f} ± {r['stddev_ts']:.2f} t/s")
PY
