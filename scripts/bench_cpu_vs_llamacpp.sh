#!/usr/bin/env bash
# metallic vs llama.cpp on this CPU, side by side in one run: llama-bench and
# `metallic bench` on both shipped models with the same thread count, prompt
# processing (pp) and generation (tg) tokens/s, and the ratio ours / theirs.
# The engines alternate per model, so that a disturbance (the machine is
# shared with builds) hits both; the load average is recorded with the table.
#
# Usage: scripts/bench_cpu_vs_llamacpp.sh
#   env: THREADS (default 2), REPS (3), PP (512), TG (128)
# Writes bench/results/<date>-cpu-<cpu model>.md and prints it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${LLAMA_BUILD_DIR:-$ROOT/third_party/llama.cpp-build-cpu}/bin"
THREADS="${THREADS:-2}"; REPS="${REPS:-3}"; PP="${PP:-512}"; TG="${TG:-128}"
MODELS=(qwen2.5-coder-0.5b-instruct-q4_k_m smollm2-135m-instruct-q4_1)

[[ -x "$BIN/llama-bench" ]] || nice "$ROOT/scripts/build_llama_cpp.sh"
"$ROOT/scripts/fetch_models.sh" all >/dev/null
(cd "$ROOT" && nice cargo build --release -q -p metallic-cli && nice cargo build --release -q --example membw)
OURS="$ROOT/target/release/metallic"
# The decode ceiling: read bandwidth with the same thread count, over a
# buffer past the last-level cache.
bw="$("$ROOT/target/release/examples/membw" "$THREADS" 1024 | sed 's/.*: \([0-9.]*\) GB\/s.*/\1/')"

cpu_full="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
cpu="$(echo "$cpu_full" | sed 's/([^)]*)//g; s/[^A-Za-z0-9]\+/-/g; s/^-//; s/-$//' | tr 'A-Z' 'a-z')"
out_dir="$ROOT/bench/results"; mkdir -p "$out_dir"
out="$out_dir/$(date +%Y-%m-%d)-cpu-${cpu}-$(nproc)c.md"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
for m in "${MODELS[@]}"; do
  gguf="$ROOT/models/$m.gguf"
  echo "== $m: llama.cpp" >&2
  "$BIN/llama-bench" -m "$gguf" -p "$PP" -n "$TG" -t "$THREADS" -r "$REPS" -o json > "$tmp/$m.llama.json"
  echo "== $m: metallic" >&2
  "$OURS" bench "$gguf" -p "$PP" -n "$TG" -t "$THREADS" -r "$REPS" -o json > "$tmp/$m.ours.json"
done
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$tmp" "$out" "$cpu_full" "$THREADS" "$REPS" "$PP" "$TG" "$load_before" "$load_after" "$bw" "${MODELS[@]}" <<'PY'
import json, sys, datetime, subprocess
tmp, out, cpu, threads, reps, pp, tg, lb, la, bw, *models = sys.argv[1:]
bw = float(bw)
def flags():
    f = open("/proc/cpuinfo").read().split("flags")[1].split("\n")[0]
    keep = ["avx2", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8"]
    return " ".join(k for k in keep if f" {k}" in f)
rows = []
for m in models:
    llama = {}
    for r in json.load(open(f"{tmp}/{m}.llama.json")):
        test = f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}"
        llama[test] = (r["avg_ts"], r["stddev_ts"])
    ours_rows = json.load(open(f"{tmp}/{m}.ours.json"))
    ours = {r["test"]: (r["avg_ts"], r["stddev_ts"]) for r in ours_rows}
    mb = ours_rows[0]["decode_bytes"] / 1e6
    for test in (f"pp{pp}", f"tg{tg}"):
        (o, os_), (l, ls) = ours[test], llama[test]
        if test.startswith("tg"):
            roof = (f"{mb:.0f} MB/token: {bw * 1e3 / mb:.1f} t/s; metallic {o * mb / 1e3:.1f} GB/s "
                    f"({100 * o * mb / 1e3 / bw:.0f}%), llama.cpp {100 * l * mb / 1e3 / bw:.0f}%")
        else:
            roof = ""
        rows.append(f"| {m} | {test} | {o:.2f} ± {os_:.2f} | {l:.2f} ± {ls:.2f} | {o / l:.2f}x | {roof} |")
try:
    commit = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True).strip()
except Exception:
    commit = "?"
text = "\n".join([
    f"# metallic vs llama.cpp, CPU ({datetime.date.today()})",
    "",
    f"- CPU: {cpu}, {subprocess.check_output(['nproc'], text=True).strip()} cores; flags: {flags()}",
    f"- threads {threads}, {reps} repetitions, mean ± sd of tokens/s; metallic at {commit} (+ working tree)",
    f"- llama.cpp: llama-bench from scripts/build_llama_cpp.sh (AVX-512 VNNI, no AMX, repack on)",
    f"- load average before/after: {lb} / {la} (the machine is shared: other builds disturb both engines)",
    f"- measured read bandwidth with {threads} threads (examples/membw.rs, 1 GiB, best of 5): {bw:.1f} GB/s; "
    "the decode ceiling is that over the weight bytes a token reads (`metallic bench` counts them)",
    "",
    "| model | test | metallic t/s | llama.cpp t/s | ratio | decode ceiling and fraction reached |",
    "| --- | --- | ---: | ---: | ---: | --- |",
    *rows,
    "",
])
open(out, "w").write(text)
print(text)
print(f"wrote {out}", file=sys.stderr)
PY
