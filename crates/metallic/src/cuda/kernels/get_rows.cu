// get_rows (the embedding lookup): out[r, :] = table[ids[r], :], one thread
// per output element. Block tables are dequantized on the fly with the
// element decoders of quant.cuh. `dequantize_<type>` is the same kernel with
// the identity as ids: it expands a whole [rows, k] weight to f32 (the
// vendor matmul path on block weights, as llama.cpp's BLAS path does).

extern "C" __global__ void get_rows_float(const void* table, const __grid_constant__ Strided st, const unsigned* ids,
                                          void* out, const __grid_constant__ Strided so, i64 n_ids, i64 dim) {
    GRID_STRIDE_LOOP(t, n_ids * dim) {
        const i64 r = t / dim, e = t % dim;
        const i64 src = st.offset + (i64)ids[r] * st.strides[0] + e * st.strides[1];
        store_f32(out, so.dtype, so.offset + r * so.strides[0] + e * so.strides[1], load_f32(table, st.dtype, src));
    }
}

// `table` points at the first block of row 0; rows are `row_bytes` apart.
template <int T>
__device__ __forceinline__ void get_rows_q(const u8* table, i64 row_bytes, const unsigned* ids, void* out,
                                           const Strided& so, i64 n_ids, i64 dim) {
    GRID_STRIDE_LOOP(t, n_ids * dim) {
        const i64 r = t / dim, e = t % dim;
        const i64 row = ids ? (i64)ids[r] : r;
        const u8* blk = table + row * row_bytes + (e / Q<T>::BE) * Q<T>::BB;
        store_f32(out, so.dtype, so.offset + r * so.strides[0] + e * so.strides[1], Q<T>::get(blk, (int)(e % Q<T>::BE)));
    }
}

#define GET_ROWS_Q(name, T)                                                                                   \
    extern "C" __global__ void get_rows_##name(const u8* table, i64 row_bytes, const unsigned* ids, void* out, \
                                               Strided so, i64 n_ids, i64 dim) {                              \
        get_rows_q<T>(table, row_bytes, ids, out, so, n_ids, dim);                                            \
    }
FOR_EACH_QTYPE(GET_ROWS_Q)
