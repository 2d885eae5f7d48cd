#!/usr/bin/env bash
# Build the reference llama.cpp with its CUDA backend (sm_90: H100 / H200)
# on this machine, which has neither a GPU nor a CUDA toolkit, so that
# `llama-bench` can run beside `metallic bench` on the lent GPU machine in
# the same call, on the same files (device time there is scarce; this
# build takes about 25 minutes on the 2 cores here).
#
# - Sources: the llama-cpp-python 0.3.36 sdist, as scripts/build_llama_cpp.sh
#   fetches it (ggml-org/llama.cpp@0c1e57098).
# - Toolkit: the CUDA 13.0 pip wheels (nvcc, crt, runtime, cuBLAS, CCCL,
#   NVVM) into third_party/cuda13; they lay out nvidia/cu13/{bin,include,
#   lib} like a toolkit root. The GPU machine runs CUDA 13.0.
# - The driver library: a stub libcuda.so (soname libcuda.so.1) defining
#   the driver functions ggml-cuda calls (DRIVER_FUNCS; the script fails if
#   the built library needs another), so the link records libcuda.so.1 and
#   the GPU machine's driver provides them.
# - The executable links with --allow-shlib-undefined: libcudart and
#   libcublas are found at run time (scripts/gpu_env.sh puts the GPU
#   machine's on LD_LIBRARY_PATH).
#
# Usage: scripts/build_llama_cpp_cuda.sh [OUT_DIR]
#   OUT_DIR (default third_party/llama.cpp-cuda-bin): llama-bench and its
#   shared libraries, stripped; run it there with LD_LIBRARY_PATH=OUT_DIR.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TP="$ROOT/third_party"
LLAMA="$TP/llama_cpp_python-0.3.36/vendor/llama.cpp"
BUILD="$TP/llama.cpp-build-cuda"
OUT="${1:-$TP/llama.cpp-cuda-bin}"
CUDA="$TP/cuda13"
CU="$CUDA/nvidia/cu13"
JOBS="${JOBS:-2}"
DRIVER_FUNCS="cuDeviceGet cuDeviceGetAttribute cuGetErrorString cuMemAddressFree
  cuMemAddressReserve cuMemCreate cuMemGetAllocationGranularity cuMemMap cuMemRelease
  cuMemSetAccess cuMemUnmap"

"$ROOT/scripts/build_llama_cpp.sh" --no-build
for tool in cmake ninja; do
  command -v "$tool" >/dev/null || python3 -m pip install --quiet "$tool"
done

if [[ ! -x "$CU/bin/nvcc" ]]; then
  python3 -m pip install --quiet --target "$CUDA" \
    nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-cuda-runtime==13.0.96 \
    nvidia-cublas==13.1.1.3 nvidia-cuda-cccl==13.0.85 nvidia-nvvm==13.0.88
fi
# The link-time names a toolkit has and the wheels do not.
ln -sfn lib "$CU/lib64"
for l in cudart cublas cublasLt; do ln -sf "lib$l.so.13" "$CU/lib/lib$l.so"; done
mkdir -p "$CU/lib/stubs"
stub_src="$(mktemp --suffix=.c)"
for f in $DRIVER_FUNCS; do echo "void $f(void) {}"; done > "$stub_src"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$CU/lib/stubs/libcuda.so" "$stub_src"
rm -f "$stub_src"

export GIT_CEILING_DIRECTORIES="$TP"
if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
  cmake -S "$LLAMA" -B "$BUILD" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release \
    -DGGML_CUDA=ON -DCMAKE_CUDA_COMPILER="$CU/bin/nvcc" -DCUDAToolkit_ROOT="$CU" \
    -DCMAKE_CUDA_ARCHITECTURES=90-real \
    -DGGML_NATIVE=OFF -DGGML_AVX2=ON \
    -DCMAKE_EXE_LINKER_FLAGS="-Wl,--allow-shlib-undefined -Wl,-rpath-link,$CU/lib" \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF
fi
nice -n 5 cmake --build "$BUILD" -j "$JOBS" --target llama-bench

# Every driver function the library needs must be in the stub.
missing=$(nm -D --undefined-only "$BUILD/bin/libggml-cuda.so" | awk '{print $2}' \
  | grep -E '^cu[A-Z]' | sed 's/@.*//' | sort -u \
  | grep -vxF -f <(tr -s ' \n' '\n' <<< "$DRIVER_FUNCS") || true)
if [[ -n "$missing" ]]; then
  echo "add to DRIVER_FUNCS and rebuild (rm $BUILD/bin/libggml-cuda.so*): $missing" >&2
  exit 1
fi
readelf -d "$BUILD/bin/libggml-cuda.so" | grep -q 'libcuda.so.1' \
  || { echo "libggml-cuda.so does not record libcuda.so.1" >&2; exit 1; }

mkdir -p "$OUT"
cp -P "$BUILD"/bin/llama-bench "$BUILD"/bin/lib*.so* "$OUT/"
find "$OUT" -type f -exec strip --strip-unneeded {} +
echo "llama-bench and its libraries: $OUT ($(du -sh "$OUT" | cut -f1))"
