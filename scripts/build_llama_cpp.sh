#!/usr/bin/env bash
# Build the reference llama.cpp (CPU) from the llama-cpp-python sdist.
#
# Why the sdist: no machine here reaches a code host, but the package
# registry carries llama-cpp-python, whose sdist vendors a pinned llama.cpp
# (0.3.36 -> ggml-org/llama.cpp@0c1e57098, per its CHANGELOG). Nothing of it is
# committed: it lives in the git-ignored third_party/ folder.
#
# Usage:
#   scripts/build_llama_cpp.sh                 # fetch + unpack + build (idempotent)
#   scripts/build_llama_cpp.sh --trim-to DIR   # also write a trimmed source tree
#                                              # to DIR (for carrying to a GPU box)
#   scripts/build_llama_cpp.sh --no-build --trim-to DIR   # trim only
#
# Outputs (paths relative to the repo root):
#   third_party/llama_cpp_python-0.3.36/            unpacked sdist (llama_cpp/ = Python bindings)
#   third_party/llama_cpp_python-0.3.36/vendor/llama.cpp/   llama.cpp sources
#   third_party/llama.cpp-build-cpu/bin/            llama-tokenize, llama-completion,
#                                                   llama-simple, llama-perplexity, llama-bench,
#                                                   libllama.so, libggml*.so
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="0.3.36"
TP="$ROOT/third_party"
SRC="$TP/llama_cpp_python-$VERSION"
LLAMA="$SRC/vendor/llama.cpp"
BUILD="${LLAMA_BUILD_DIR:-$TP/llama.cpp-build-cpu}"
JOBS="${JOBS:-2}"   # 2-core machine shared with Rust builds: never more

TRIM_TO=""
DO_BUILD=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --trim-to) TRIM_TO="$2"; shift 2 ;;
    --no-build) DO_BUILD=0; shift ;;
    -h|--help) sed -n 2,21p "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

mkdir -p "$TP"

# --- 1. fetch + unpack the sdist ------------------------------------------
if [[ ! -f "$LLAMA/CMakeLists.txt" ]]; then
  tmp="$(mktemp -d "$TP/.dl.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  # `--no-binary :all:` forces the sdist, but pip must still prepare its
  # metadata, which would otherwise build cmake/ninja themselves from source
  # (tens of minutes); their wheels are fine, so exempt the build backends.
  python3 -m pip download --quiet --no-deps --disable-pip-version-check \
    --no-binary :all: \
    --only-binary cmake,ninja,scikit-build-core,pathspec,packaging \
    --dest "$tmp" "llama-cpp-python==$VERSION"
  tar -xzf "$tmp/llama_cpp_python-$VERSION.tar.gz" -C "$TP"
  rm -rf "$tmp"; trap - EXIT
fi
echo "sources: $LLAMA"

# --- 2. build ---------------------------------------------------------------
if [[ "$DO_BUILD" == 1 ]]; then
  if ! command -v cmake >/dev/null; then
    python3 -m pip install --quiet cmake
  fi
  GEN=()
  if command -v ninja >/dev/null; then GEN=(-G Ninja); fi

  # third_party/ sits inside our git checkout; without a ceiling, llama.cpp's
  # build-info.cmake would stamp *our* commit into the binaries' version string.
  export GIT_CEILING_DIRECTORIES="$TP"

  # ISA flags: -DGGML_NATIVE=ON dies with SIGILL on these CPUs (they advertise
  # AMX / AVX512-FP16 that the VM does not actually allow), so pin AVX-512 with
  # VNNI/BF16 and switch AMX off explicitly (see shared/MODELS.md).
  if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
    cmake -S "$LLAMA" -B "$BUILD" "${GEN[@]}" \
      -DCMAKE_BUILD_TYPE=Release \
      -DBUILD_SHARED_LIBS=ON \
      -DGGML_NATIVE=OFF \
      -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON \
      -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
      -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
      -DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_TOOLS=ON \
      -DLLAMA_OPENSSL=OFF
  fi
  # Only what the reference scripts use; building everything would take ~3x longer.
  nice -n 10 cmake --build "$BUILD" -j "$JOBS" --target \
    llama ggml llama-tokenize llama-completion llama-simple llama-perplexity llama-bench
  echo "binaries: $BUILD/bin"
  ls "$BUILD/bin"
fi

# --- 3. optional trimmed tree ------------------------------------------------
# The full vendor tree is ~176 MB; a GPU machine takes at most 64 MiB of carried
# files, so keep only what a CPU+CUDA build of the tools needs.
if [[ -n "$TRIM_TO" ]]; then
  mkdir -p "$TRIM_TO"
  for d in CMakeLists.txt cmake ggml src include common vendor tools app licenses gguf-py LICENSE; do
    [[ -e "$LLAMA/$d" ]] && cp -a "$LLAMA/$d" "$TRIM_TO/"
  done
  rm -rf "$TRIM_TO/tools/ui" "$TRIM_TO/tools/server"
  for b in "$TRIM_TO"/ggml/src/ggml-*/; do
    case "$(basename "$b")" in ggml-cpu|ggml-cuda) ;; *) rm -rf "$b" ;; esac
  done
  # Also carry the Python bindings (pure Python, tiny) so the same
  # gen_reference.py can run against a CUDA libllama.
  cp -a "$SRC/llama_cpp" "$TRIM_TO/llama_cpp_python"
  echo "trimmed tree: $TRIM_TO ($(du -sh "$TRIM_TO" | cut -f1))"
  echo "  build it with: cmake -S $TRIM_TO -B build -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DGGML_CUDA=ON ..."
fi
