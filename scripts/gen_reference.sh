#!/usr/bin/env bash
# One-shot: fetch models, build llama.cpp (both only if missing), regenerate
# every golden file in tests/golden/, then the exact float64 reference. Extra args go to gen_reference.py
# (e.g. --models qwen --only tok,greedy).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/fetch_models.sh" all
"$ROOT/scripts/build_llama_cpp.sh"
python3 -c 'import numpy' 2>/dev/null || python3 -m pip install --quiet numpy
nice -n 10 python3 "$ROOT/scripts/gen_reference.py" --no-setup "$@"
# The exact float64 referee follows the teacher-forced tokens (see
# tests/golden/README.md); it needs the gguf package.
python3 -c 'import gguf' 2>/dev/null || python3 -m pip install --quiet gguf
nice -n 10 python3 "$ROOT/scripts/exact_reference.py"
