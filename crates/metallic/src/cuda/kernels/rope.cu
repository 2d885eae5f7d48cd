// RoPE on [seq, n_heads, head_dim] views. One thread per rotated pair or
// passed-through element of a head. The angle is built exactly as ggml's
// rope cache does (theta_0 = pos, theta_i = theta_{i-1} * theta_scale in
// f32, with theta_scale computed on the host), so large positions round the
// same way as the CPU reference and llama.cpp. In place (out is x) is safe:
// each thread reads its own pair before writing it.

// `pos_ptr`, where not null, holds the first row's position on the device
// (a decode step replayed from a CUDA graph) in place of `pos_offset`.
extern "C" __global__ void rope(const void* x, Strided sx, void* out, Strided so, int seq, int n_heads,
                                int head_dim, int dims, long long pos_offset, float theta_scale, int neox,
                                const long long* pos_ptr) {
    if (pos_ptr) pos_offset = *pos_ptr;
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
