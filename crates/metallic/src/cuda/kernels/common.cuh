// Shared by every metallic kernel (prepended to each source by the host
// wrapper; NVRTC sees one translation unit, no include paths).
//
// No CUDA headers: f16/bf16 are handled as raw 16-bit patterns converted with
// the PTX `cvt` instructions (PTX ISA, "cvt"), so the sources compile with a
// bare NVRTC from the package registry.

typedef long long i64;
typedef unsigned long long u64;
typedef unsigned short u16;
typedef unsigned char u8;

// Element types, as the host's `DType` codes them for kernels.
#define DT_F32 0
#define DT_F16 1
#define DT_BF16 2

#define MAX_DIMS 6

// NVRTC has no <math.h>: -inf by its bit pattern.
#define NEG_INF __int_as_float(0xff800000u)

// A generic pointer into shared memory as the 32-bit shared-window address
// PTX instructions take (cp.async, ldmatrix, TMA, mbarrier).
__device__ __forceinline__ unsigned smem_u32(const void* p) {
    unsigned r;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(r) : "l"(p));
    return r;
}

// Programmatic dependent launch (PTX ISA "griddepcontrol", sm_90 and
// newer; nothing below): a kernel launched as the dependent of the one
// before it in the stream waits here until that one has completed and its
// memory is visible; that one lets the dependent's blocks be scheduled once
// every one of its own blocks has signalled (or exited).
__device__ __forceinline__ void grid_dependency_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void grid_dependents_may_start() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

__device__ __forceinline__ float f16_to_f32(u16 h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ u16 f32_to_f16(float f) {
    u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

__device__ __forceinline__ float bf16_to_f32(u16 b) {
    return __uint_as_float(((unsigned)b) << 16);
}

// Round to nearest even, as `half::bf16::from_f32` (sm_80+).
__device__ __forceinline__ u16 f32_to_bf16(float f) {
    u16 b;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(b) : "f"(f));
    return b;
}

// A strided view: logical element (i0, .., i_{rank-1}) lives at storage
// element offset + sum(i_d * strides[d]) of a buffer of `dtype` elements.
// Kernels take it as `const __grid_constant__ Strided`: the helpers below
// index it at run time through a reference, and a plain by-value parameter
// so used is copied to local memory by every thread first (112 bytes a
// view; swiglu_rows ran at 325 GB/s so, H100, bench/results/2026-12-07-
// nvidia-h100-session23-call3-record.log). attention.cu keeps plain
// parameters: ptxas keeps those out of local memory, and its row kernels
// spill two registers with the other form.
struct Strided {
    i64 shape[MAX_DIMS];
    i64 strides[MAX_DIMS];
    i64 offset;
    int rank;
    int dtype;
};

template <int DT>
__device__ __forceinline__ float load_t(const void* base, i64 i) {
    if (DT == DT_F32) return ((const float*)base)[i];
    if (DT == DT_F16) return f16_to_f32(((const u16*)base)[i]);
    return bf16_to_f32(((const u16*)base)[i]);
}

template <int DT>
__device__ __forceinline__ void store_t(void* base, i64 i, float v) {
    if (DT == DT_F32) ((float*)base)[i] = v;
    else if (DT == DT_F16) ((u16*)base)[i] = f32_to_f16(v);
    else ((u16*)base)[i] = f32_to_bf16(v);
}

// Loads and stores with the dtype chosen at run time. The branch is uniform
// across a warp, and the ops that use it are memory-bound; the matmul and
// quantized kernels specialise on dtypes at compile time instead.
__device__ __forceinline__ float load_f32(const void* base, int dtype, i64 i) {
    switch (dtype) {
        case DT_F32: return load_t<DT_F32>(base, i);
        case DT_F16: return load_t<DT_F16>(base, i);
        default: return load_t<DT_BF16>(base, i);
    }
}

__device__ __forceinline__ void store_f32(void* base, int dtype, i64 i, float v) {
    switch (dtype) {
        case DT_F32: store_t<DT_F32>(base, i, v); break;
        case DT_F16: store_t<DT_F16>(base, i, v); break;
        default: store_t<DT_BF16>(base, i, v); break;
    }
}

// `x` rounded to `dtype` and back (identity for f32).
__device__ __forceinline__ float round_to(int dtype, float x) {
    if (dtype == DT_F16) return f16_to_f32(f32_to_f16(x));
    if (dtype == DT_BF16) return bf16_to_f32(f32_to_bf16(x));
    return x;
}

// Storage index of logical element `flat` (row-major order over the shape).
__device__ __forceinline__ i64 strided_index(const Strided& s, i64 flat) {
    i64 idx = s.offset;
    for (int d = s.rank - 1; d >= 0; --d) {
        const i64 n = s.shape[d];
        idx += (flat % n) * s.strides[d];
        flat /= n;
    }
    return idx;
}

// Storage index of the first element of row `row` (every dimension but the
// last is a row index, row-major).
__device__ __forceinline__ i64 row_start(const Strided& s, i64 row) {
    i64 idx = s.offset;
    for (int d = s.rank - 2; d >= 0; --d) {
        const i64 n = s.shape[d];
        idx += (row % n) * s.strides[d];
        row /= n;
    }
    return idx;
}

__device__ __forceinline__ i64 last_stride(const Strided& s) {
    return s.rank > 0 ? s.strides[s.rank - 1] : 1;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ double warp_sum_d(double v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over a block of up to 1024 threads; every thread gets the result.
// `scratch` holds 32 values; the block must call it uniformly.
__device__ __forceinline__ double block_sum_d(double v, double* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_sum_d(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    const int warps = (blockDim.x + 31) >> 5;
    v = lane < warps ? scratch[lane] : 0.0;
    return warp_sum_d(v);
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    const int warps = (blockDim.x + 31) >> 5;
    v = lane < warps ? scratch[lane] : NEG_INF;
    return warp_max(v);
}

#define GRID_STRIDE_LOOP(i, n) \
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)
