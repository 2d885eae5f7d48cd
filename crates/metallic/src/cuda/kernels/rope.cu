// RoPE on [seq, n_heads, head_dim] views. One thread per rotated pair or
// passed-through element of a head. The angle is built exactly as ggml's
// rope cache does (theta_0 = pos, theta_i = theta_{i-1} * theta_scale in
// f32, with theta_scale computed on the host), so large positions round the
// same way as the CPU reference and llama.cpp. In place (out is x) is safe:
// each thread reads its own pair before writing it.

extern "C" __global__ void rope(const void* x, const __grid_constant__ Strided sx, void* out,
                                const __grid_constant__ Strided so, int seq, int n_heads, int head_dim, int dims,
                                long long pos_offset, float theta_scale, int neox) {
    const int half = dims / 2;
    const int per_head = half + (head_dim - dims);
    const i64 total = (i64)seq * n_heads * per_head;
    GRID_STRIDE_LOOP(t, total) {
        const int j = (int)(t % per_head);
        const i64 sh = t / per_head;
        const int h = (int)(sh % n_heads);
        const int s = (int)(sh / n_heads);
        const i64 xb = sx.offset + s * sx.strides[0] + h * sx.strides[1];
        const i64 ob = so.offset + s * so.strides[0] + h * so.strides[1];
        if (j < half) {
            float theta = (float)(pos_offset + s);
            for (int k = 0; k < j; ++k) theta = __fmul_rn(theta, theta_scale);
            const float c = cosf(theta), sn = sinf(theta);
            const int i0 = neox ? j : 2 * j;
            const int i1 = neox ? j + half : 2 * j + 1;
            const float x0 = load_f32(x, sx.dtype, xb + i0 * sx.strides[2]);
            const float x1 = load_f32(x, sx.dtype, xb + i1 * sx.strides[2]);
            store_f32(out, so.dtype, ob + i0 * so.strides[2], __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, sn)));
            store_f32(out, so.dtype, ob + i1 * so.strides[2], __fadd_rn(__fmul_rn(x0, sn), __fmul_rn(x1, c)));
        } else {
            const int e = dims + (j - half);
            store_f32(out, so.dtype, ob + e * so.strides[2], load_f32(x, sx.dtype, xb + e * sx.strides[2]));
        }
    }
}

// A layer's rope and KV-cache store in one launch (the model's step on
// CUDA): q [seq, n_heads, head_dim] roped in place; k [seq, n_kv_heads,
// head_dim] roped into the cache view kc; v copied into vc. The cache views
// are [seq, n_kv_heads, head_dim] at the step's first position, moved by
// *pos_ptr rows (kc_row / vc_row elements each) where pos_ptr is not null,
// which then also gives the position (a decode graph's replay). The same
// arithmetic as `rope` followed by `copy_strided`: bit-identical results.
__device__ __forceinline__ void rope_pair(const void* x, const Strided& sx, i64 xb, void* out, const Strided& so, i64 ob,
                                          int j, int half, int neox, float theta, float theta_scale) {
    for (int k = 0; k < j; ++k) theta = __fmul_rn(theta, theta_scale);
    const float c = cosf(theta), sn = sinf(theta);
    const int i0 = neox ? j : 2 * j;
    const int i1 = neox ? j + half : 2 * j + 1;
    const float x0 = load_f32(x, sx.dtype, xb + i0 * sx.strides[2]);
    const float x1 = load_f32(x, sx.dtype, xb + i1 * sx.strides[2]);
    store_f32(out, so.dtype, ob + i0 * so.strides[2], __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, sn)));
    store_f32(out, so.dtype, ob + i1 * so.strides[2], __fadd_rn(__fmul_rn(x0, sn), __fmul_rn(x1, c)));
}

extern "C" __global__ void rope_kv(void* q, const __grid_constant__ Strided sq, const void* k,
                                   const __grid_constant__ Strided sk, const void* v,
                                   const __grid_constant__ Strided sv, void* kc, const __grid_constant__ Strided skc,
                                   void* vc, const __grid_constant__ Strided svc, int seq, int n_heads, int n_kv_heads,
                                   int head_dim, int dims, long long pos_offset, float theta_scale, int neox,
                                   const long long* pos_ptr, i64 kc_row, i64 vc_row) {
    const i64 kc_shift = pos_ptr ? *pos_ptr * kc_row : 0, vc_shift = pos_ptr ? *pos_ptr * vc_row : 0;
    if (pos_ptr) pos_offset = *pos_ptr;
    const int half = dims / 2;
    const int per_head = half + (head_dim - dims);
    const i64 nq = (i64)seq * n_heads * per_head, nk = (i64)seq * n_kv_heads * per_head;
    const i64 nv = (i64)seq * n_kv_heads * head_dim;
    GRID_STRIDE_LOOP(t, nq + nk + nv) {
        if (t < nq + nk) {
            // q (in place) or k (into the cache): one rotated pair or one
            // passed-through element, as `rope`.
            const bool is_q = t < nq;
            const i64 u = is_q ? t : t - nq;
            const int heads = is_q ? n_heads : n_kv_heads;
            const int j = (int)(u % per_head);
            const i64 sh = u / per_head;
            const int h = (int)(sh % heads), s = (int)(sh / heads);
            const Strided& sx = is_q ? sq : sk;
            const Strided& so = is_q ? sq : skc;
            const void* x = is_q ? (const void*)q : k;
            void* out = is_q ? q : kc;
            const i64 xb = sx.offset + s * sx.strides[0] + h * sx.strides[1];
            const i64 ob = so.offset + (is_q ? 0 : kc_shift) + s * so.strides[0] + h * so.strides[1];
            if (j < half) {
                rope_pair(x, sx, xb, out, so, ob, j, half, neox, (float)(pos_offset + s), theta_scale);
            } else {
                const int e = dims + (j - half);
                store_f32(out, so.dtype, ob + e * so.strides[2], load_f32(x, sx.dtype, xb + e * sx.strides[2]));
            }
        } else {
            // v into the cache, element by element.
            const i64 u = t - nq - nk;
            const int e = (int)(u % head_dim);
            const i64 sh = u / head_dim;
            const int h = (int)(sh % n_kv_heads), s = (int)(sh / n_kv_heads);
            const i64 src = sv.offset + s * sv.strides[0] + h * sv.strides[1] + e * sv.strides[2];
            const i64 dst = svc.offset + vc_shift + s * svc.strides[0] + h * svc.strides[1] + e * svc.strides[2];
            store_f32(vc, svc.dtype, dst, load_f32(v, sv.dtype, src));
        }
    }
}
