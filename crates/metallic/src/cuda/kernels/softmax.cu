// Softmax over the last dimension with a scale and an optional causal mask,
// one block per row. As the CPU reference: exp in f32, the row sum in f64,
// masked columns (j > offset + i, i the row within its matrix) written as 0.

extern "C" __global__ void softmax(const void* x, const __grid_constant__ Strided sx, void* out,
                                   const __grid_constant__ Strided so, int cols, i64 rows_per_matrix, int causal,
                                   i64 offset, float scale) {
    __shared__ float fscratch[32];
    __shared__ double dscratch[32];
    const i64 row = blockIdx.x;
    const i64 xs = row_start(sx, row), xl = last_stride(sx);
    const i64 os = row_start(so, row), ol = last_stride(so);
    const i64 i = row % rows_per_matrix;
    const int kept = causal ? (int)min((i64)cols, offset + i + 1) : cols;
    float m = NEG_INF;
    for (int j = threadIdx.x; j < kept; j += blockDim.x) m = fmaxf(m, scale * load_f32(x, sx.dtype, xs + j * xl));
    m = block_max(m, fscratch);
    double sum = 0.0;
    for (int j = threadIdx.x; j < kept; j += blockDim.x) sum += (double)expf(scale * load_f32(x, sx.dtype, xs + j * xl) - m);
    sum = block_sum_d(sum, dscratch);
    const float inv = (float)(1.0 / sum);
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        const float y = j < kept ? expf(scale * load_f32(x, sx.dtype, xs + j * xl) - m) * inv : 0.0f;
        store_f32(out, so.dtype, os + j * ol, y);
    }
}
