// RMS norm over the last dimension, one block per row. As ggml (and our CPU
// reference): the sum of squares in f64, mean and scale in f32, then
// (x * scale) * w.

extern "C" __global__ void rms_norm(const void* x, Strided sx, const void* w, Strided sw,
                                    void* out, Strided so, int n, float eps) {
    __shared__ double scratch[32];
    const i64 row = blockIdx.x;
    const i64 xs = row_start(sx, row), xl = last_stride(sx);
    const i64 os = row_start(so, row), ol = last_stride(so);
    double sum = 0.0;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        const float v = load_f32(x, sx.dtype, xs + j * xl);
        sum += (double)(v * v);
    }
    sum = block_sum_d(sum, scratch);
    const float mean = (float)(sum / n);
    const float scale = 1.0f / sqrtf(mean + eps);
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        const float v = load_f32(x, sx.dtype, xs + j * xl);
        const float wj = load_f32(w, sw.dtype, sw.offset + j * sw.strides[0]);
        store_f32(out, so.dtype, os + j * ol, __fmul_rn(__fmul_rn(v, scale), wj));
    }
}
