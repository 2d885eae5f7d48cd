// RMS norm over the last dimension, one block per row. As ggml (and our CPU
// reference): the sum of squares in f64, mean and scale in f32, then
// (x * scale) * w.
//
// Rows of at most NORM_HELD * blockDim.x elements (4096 with 256 threads:
// every Qwen2.5 and Llama width up to 7B) are read once: each thread loads
// all its x and w values together (every load in flight at once, one trip
// to memory), keeps them in registers over the reduction, and scales them
// from there. A decode step's norm (one row) waited on two trips before.
// Each thread sums its elements in the same order either way.
#define NORM_HELD 16

extern "C" __global__ void rms_norm(const void* x, const __grid_constant__ Strided sx, const void* w,
                                    const __grid_constant__ Strided sw, void* out, const __grid_constant__ Strided so,
                                    int n, float eps) {
    __shared__ double scratch[32];
    const i64 row = blockIdx.x;
    const i64 xs = row_start(sx, row), xl = last_stride(sx);
    const i64 os = row_start(so, row), ol = last_stride(so);
    const bool held = n <= NORM_HELD * (int)blockDim.x;
    float xv[NORM_HELD], wv[NORM_HELD];
    double sum = 0.0;
    if (held) {
#pragma unroll
        for (int t = 0; t < NORM_HELD; ++t) {
            const int j = threadIdx.x + t * blockDim.x;
            xv[t] = j < n ? load_f32(x, sx.dtype, xs + j * xl) : 0.0f;
            wv[t] = j < n ? load_f32(w, sw.dtype, sw.offset + j * sw.strides[0]) : 0.0f;
        }
#pragma unroll
        for (int t = 0; t < NORM_HELD; ++t)
            if (threadIdx.x + t * (int)blockDim.x < n) sum += (double)(xv[t] * xv[t]);
    } else {
        for (int j = threadIdx.x; j < n; j += blockDim.x) {
            const float v = load_f32(x, sx.dtype, xs + j * xl);
            sum += (double)(v * v);
        }
    }
    sum = block_sum_d(sum, scratch);
    const float mean = (float)(sum / n);
    const float scale = 1.0f / sqrtf(mean + eps);
    if (held) {
#pragma unroll
        for (int t = 0; t < NORM_HELD; ++t) {
            const int j = threadIdx.x + t * blockDim.x;
            if (j < n) store_f32(out, so.dtype, os + j * ol, __fmul_rn(__fmul_rn(xv[t], scale), wv[t]));
        }
        return;
    }
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        const float v = load_f32(x, sx.dtype, xs + j * xl);
        const float wj = load_f32(w, sw.dtype, sw.offset + j * sw.strides[0]);
        store_f32(out, so.dtype, os + j * ol, __fmul_rn(__fmul_rn(v, scale), wj));
    }
}
