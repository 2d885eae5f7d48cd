// The matmul epilogue, shared by every CUDA matmul kernel (matmul.cu's SIMT
// GEMM and epilogue pass, gemm_mma.cu's tensor-core GEMM).
//
// Epilogue order as the op defines it (cuBLASLt's): v = alpha * acc + bias[n];
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
    int act, has_bias, c_dtype, d_dtype, bias_dtype, pad;
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
    if (e.has_bias) v += load_f32(bias, e.bias_dtype, e.bias_off + n * e.bias_stride);
    if (e.beta != 0.0f) v += e.beta * load_f32(c, e.c_dtype, e.c.off + z * e.c.bs + m * e.c.rs + n * e.c.cs);
    store_f32(d, e.d_dtype, e.d.off + z * e.d.bs + m * e.d.rs + n * e.d.cs, activate(e.act, v));
}

