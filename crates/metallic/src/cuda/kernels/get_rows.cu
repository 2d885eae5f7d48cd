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

// `dequantize_f16_<type>`, for the block types with a V<T> (quant.cuh: the
// wide-load kernels' decoders, bit-identical to Q<T>::get): `rows` rows of
// `k` elements (rows `row_bytes` apart at `w`) into f16 [rows, k] at
// `out`, each thread decoding one part of a block (EPL elements) and
// storing its runs of four as 8 bytes. Grid: x over a row's parts, y over
// rows (both strided). The weights must be aligned for V<T> (the host
// checks, as for the wide-load kernels); `out` 8-byte aligned, k a
// multiple of the block.
template <int T>
__device__ __forceinline__ void dequantize_f16(const u8* w, i64 row_bytes, u16* out, int rows, int k) {
    constexpr int EPL = V<T>::EPL, LPB = V<T>::LPB;
    const int parts = k / Q<T>::BE * LPB;
    for (int row = blockIdx.y; row < rows; row += gridDim.y) {
        const u8* wr = w + (i64)row * row_bytes;
        u16* o = out + (i64)row * k;
        for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < parts; t += gridDim.x * blockDim.x) {
            const int blk = t / LPB, p = t % LPB;
            float v[EPL];
            int off[EPL / 4];
            V<T>::decode(wr + (i64)blk * Q<T>::BB, p, v, off);
#pragma unroll
            for (int r = 0; r < EPL / 4; ++r) {
                const uint2 h = make_uint2((unsigned)f32_to_f16(v[4 * r]) | ((unsigned)f32_to_f16(v[4 * r + 1]) << 16),
                                           (unsigned)f32_to_f16(v[4 * r + 2]) | ((unsigned)f32_to_f16(v[4 * r + 3]) << 16));
                *(uint2*)(o + blk * Q<T>::BE + off[r]) = h;
            }
        }
    }
}

#define DEQUANTIZE_F16(name, T)                                                                                   \
    extern "C" __global__ void __launch_bounds__(256)                                                             \
        dequantize_f16_##name(const u8* w, i64 row_bytes, u16* out, int rows, int k) {                            \
        dequantize_f16<T>(w, row_bytes, out, rows, k);                                                            \
    }
DEQUANTIZE_F16(q4_0, QT_Q4_0)
DEQUANTIZE_F16(q4_1, QT_Q4_1)
DEQUANTIZE_F16(q5_0, QT_Q5_0)
DEQUANTIZE_F16(q5_1, QT_Q5_1)
DEQUANTIZE_F16(q8_0, QT_Q8_0)
DEQUANTIZE_F16(q4_k, QT_Q4_K)
DEQUANTIZE_F16(q6_k, QT_Q6_K)
