#!/usr/bin/env bash
# The README's first command: fetch the default model if it is missing, build
# the CLI, and generate text from a prompt (default: a small coding request)
# with the model's chat template.
set -euo pipefail
cd "$(dirname "$0")/.."
prompt=${1:-"Write a Rust function that reverses a string."}
shift || true
bash scripts/fetch_models.sh qwen
cargo build --release -q -p metallic-cli
exec ./target/release/metallic run --chat -p "$prompt" -n 256 "$@"
