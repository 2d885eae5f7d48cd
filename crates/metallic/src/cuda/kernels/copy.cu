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
// Threads walk the columns, blocks of y the rows (both grid-stride).
extern "C" __global__ void convert_rows(const void* src, int sdt, i64 off, i64 rs, i64 bs, i64 per, void* dst, int ddt,
                                        i64 rows, i64 cols) {
    for (i64 r = blockIdx.y; r < rows; r += gridDim.y) {
        const i64 s0 = off + (r / per) * bs + (r % per) * rs, d0 = r * cols;
        for (i64 c = (i64)blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += (i64)gridDim.x * blockDim.x)
            store_f32(dst, ddt, d0 + c, load_f32(src, sdt, s0 + c));
    }
}
