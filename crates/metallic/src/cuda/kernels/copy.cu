// copy / cast between two strided views of one shape: dst[i] = src[i],
// converted through f32 (exact for every f32/f16/bf16 pair it rounds into).

extern "C" __global__ void copy_strided(const void* src, Strided s, void* dst, Strided d, i64 n) {
    GRID_STRIDE_LOOP(i, n) {
        store_f32(dst, d.dtype, strided_index(d, i), load_f32(src, s.dtype, strided_index(s, i)));
    }
}

// The same for `rows` rows of `cols` unit-stride elements into a contiguous
// [rows, cols] buffer: row r of the source starts at element
// off + (r / per) * bs + (r % per) * rs (`per` rows a matrix, matrices `bs`
// apart). One division per row instead of copy_strided's per element and
// dimension, which held its casts at about 3% of the copy bandwidth (the
// 7B gate+up f16 weight to f32: about 10 ms, H100, bench/results/
// 2026-12-06-nvidia-h100-gemm-bench-session14-mixed-strided-copy.log).
// Threads walk the columns, ROW_UNROLL elements a step (blockDim.x apart, so
// that each of the loads is coalesced and all of them are in flight at
// once: with one element a step, the 196 f32 -> f16 casts of a 512-token
// prompt on a 1.5B model, 512 x 1536 and 512 x 8960, ran at about 20% of
// the copy bandwidth, 13 us each on average, each block waiting on one load
// per thread), blocks of y the rows (both grid-stride).
#define ROW_UNROLL 4
extern "C" __global__ void convert_rows(const void* src, int sdt, i64 off, i64 rs, i64 bs, i64 per, void* dst, int ddt,
                                        i64 rows, i64 cols) {
    const i64 step = (i64)gridDim.x * blockDim.x * ROW_UNROLL;
    for (i64 r = blockIdx.y; r < rows; r += gridDim.y) {
        const i64 s0 = off + (r / per) * bs + (r % per) * rs, d0 = r * cols;
        for (i64 c0 = (i64)blockIdx.x * blockDim.x * ROW_UNROLL + threadIdx.x; c0 < cols; c0 += step) {
            float v[ROW_UNROLL];
#pragma unroll
            for (int u = 0; u < ROW_UNROLL; ++u) {
                const i64 c = c0 + u * blockDim.x;
                v[u] = c < cols ? load_f32(src, sdt, s0 + c) : 0.0f;
            }
#pragma unroll
            for (int u = 0; u < ROW_UNROLL; ++u) {
                const i64 c = c0 + u * blockDim.x;
                if (c < cols) store_f32(dst, ddt, d0 + c, v[u]);
            }
        }
    }
}
