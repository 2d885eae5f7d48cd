// copy / cast between two strided views of one shape: dst[i] = src[i],
// converted through f32 (exact for every f32/f16/bf16 pair it rounds into).

extern "C" __global__ void copy_strided(const void* src, Strided s, void* dst, Strided d, i64 n) {
    GRID_STRIDE_LOOP(i, n) {
        store_f32(dst, d.dtype, strided_index(d, i), load_f32(src, s.dtype, strided_index(s, i)));
    }
}
