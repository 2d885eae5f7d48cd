// The matmul epilogue, shared by every CUDA matmul kernel (matmul.cu's SIMT
// GEMM and epilogue pass, gemm_mma.cu's and gemm_wgmma.cu's tensor-core GEMMs).
//
// Epilogue order as the op defines it (cuBLASLt's): v = alpha * acc + bias[n]
// (bias[m] where bias_rows: a product run transposed, D^T = B^T A^T);
// v += beta * C (only when beta != 0, so a NaN C is never read); activation;
// one rounding to D's dtype. C may be D itself: each element is read and then
// written by the same thread.

#define ACT_NONE 0
#define ACT_SILU 1
#define ACT_GELU 2

// One operand's geometry in elements: offset, row / column stride, stride
// between batches (0 broadcasts).
struct Operand {
    i64 off, rs, cs, bs;
};

struct Epilogue {
    Operand c, d;
    i64 bias_off, bias_stride;
    float alpha, beta;
    int act, has_bias, c_dtype, d_dtype, bias_dtype, bias_rows;
};

__device__ __forceinline__ float activate(int act, float x) {
    if (act == ACT_SILU) return x / (1.0f + expf(-x));
    if (act == ACT_GELU) {
        const float k = 0.7978846f;  // sqrt(2 / pi)
        return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
    }
    return x;
}

__device__ __forceinline__ void epilogue_store(const Epilogue& e, const void* c, void* d, const void* bias, i64 z,
                                               i64 m, i64 n, float acc) {
    float v = e.alpha * acc;
    if (e.has_bias) v += load_f32(bias, e.bias_dtype, e.bias_off + (e.bias_rows ? m : n) * e.bias_stride);
    if (e.beta != 0.0f) v += e.beta * load_f32(c, e.c_dtype, e.c.off + z * e.c.bs + m * e.c.rs + n * e.c.cs);
    store_f32(d, e.d_dtype, e.d.off + z * e.d.bs + m * e.d.rs + n * e.d.cs, activate(e.act, v));
}

// Two neighbouring outputs (n, n + 1) of one row through the epilogue; one
// 4- or 8-byte store when D's row is contiguous there and aligned.
__device__ __forceinline__ void epilogue_pair(const Epilogue& e, const void* c, void* d, const void* bias, i64 z,
                                              i64 m, i64 n, float acc0, float acc1) {
    const i64 di = e.d.off + z * e.d.bs + m * e.d.rs + n * e.d.cs;
    if (e.d.cs != 1 || (di & 1)) {
        epilogue_store(e, c, d, bias, z, m, n, acc0);
        epilogue_store(e, c, d, bias, z, m, n + 1, acc1);
        return;
    }
    float v0 = e.alpha * acc0, v1 = e.alpha * acc1;
    if (e.has_bias && e.bias_rows) {
        const float b = load_f32(bias, e.bias_dtype, e.bias_off + m * e.bias_stride);
        v0 += b;
        v1 += b;
    } else if (e.has_bias) {
        v0 += load_f32(bias, e.bias_dtype, e.bias_off + n * e.bias_stride);
        v1 += load_f32(bias, e.bias_dtype, e.bias_off + (n + 1) * e.bias_stride);
    }
    if (e.beta != 0.0f) {
        const i64 ci = e.c.off + z * e.c.bs + m * e.c.rs + n * e.c.cs;
        v0 += e.beta * load_f32(c, e.c_dtype, ci);
        v1 += e.beta * load_f32(c, e.c_dtype, ci + e.c.cs);
    }
    v0 = activate(e.act, v0);
    v1 = activate(e.act, v1);
    if (e.d_dtype == DT_F32) {
        *(float2*)((float*)d + di) = make_float2(v0, v1);
    } else {
        const bool h = e.d_dtype == DT_F16;
        const unsigned lo = h ? f32_to_f16(v0) : f32_to_bf16(v0);
        const unsigned hi = h ? f32_to_f16(v1) : f32_to_bf16(v1);
        *(unsigned*)((u16*)d + di) = lo | (hi << 16);
    }
}
