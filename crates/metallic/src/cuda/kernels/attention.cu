// Causal grouped-query attention over a KV cache, flash-attention style: the
// scores never leave registers. One warp per (query row s, head h): it walks
// the visible keys j = 0..=pos_offset+s keeping a running maximum m, a
// running sum l and an output accumulator rescaled by exp(m_old - m_new) as
// the maximum grows (the online softmax of Milakov & Gimelshein, as in
// FlashAttention). Lane l holds head elements l, l+32, ... (head_dim <= 256).
// Decode (seq = 1) and prefill (seq > 1, causal) are the same kernel.

#define ATT_WARPS 4
#define ATT_MAX_PER_LANE 8

extern "C" __global__ void __launch_bounds__(32 * ATT_WARPS)
    attention(const void* q, Strided sq, const void* k, Strided sk, const void* v, Strided sv, void* out, Strided so,
              int seq, int n_heads, int n_kv_heads, int head_dim, long long pos_offset, float scale) {
    const int lane = threadIdx.x & 31;
    const i64 pair = (i64)blockIdx.x * ATT_WARPS + (threadIdx.x >> 5);
    if (pair >= (i64)seq * n_heads) return;
    const int s = (int)(pair / n_heads), h = (int)(pair % n_heads);
    const int g = h / (n_heads / n_kv_heads);
    float qv[ATT_MAX_PER_LANE], acc[ATT_MAX_PER_LANE];
    const i64 qb = sq.offset + s * sq.strides[0] + h * sq.strides[1];
#pragma unroll
    for (int t = 0; t < ATT_MAX_PER_LANE; ++t) {
        const int e = lane + 32 * t;
        qv[t] = e < head_dim ? load_f32(q, sq.dtype, qb + e * sq.strides[2]) : 0.0f;
        acc[t] = 0.0f;
    }
    float m = NEG_INF, l = 0.0f;
    const i64 n_keys = pos_offset + s + 1;
    for (i64 j = 0; j < n_keys; ++j) {
        const i64 kb = sk.offset + j * sk.strides[0] + g * sk.strides[1];
        float dot = 0.0f;
#pragma unroll
        for (int t = 0; t < ATT_MAX_PER_LANE; ++t) {
            const int e = lane + 32 * t;
            if (e < head_dim) dot += qv[t] * load_f32(k, sk.dtype, kb + e * sk.strides[2]);
        }
        const float score = scale * warp_sum(dot);
        const float m_new = fmaxf(m, score);
        const float corr = expf(m - m_new);
        const float p = expf(score - m_new);
        l = l * corr + p;
        const i64 vb = sv.offset + j * sv.strides[0] + g * sv.strides[1];
#pragma unroll
        for (int t = 0; t < ATT_MAX_PER_LANE; ++t) {
            const int e = lane + 32 * t;
            if (e < head_dim) acc[t] = acc[t] * corr + p * load_f32(v, sv.dtype, vb + e * sv.strides[2]);
        }
        m = m_new;
    }
    const float inv = 1.0f / l;
    const i64 ob = so.offset + s * so.strides[0] + h * so.strides[1];
#pragma unroll
    for (int t = 0; t < ATT_MAX_PER_LANE; ++t) {
        const int e = lane + 32 * t;
        if (e < head_dim) store_f32(out, so.dtype, ob + e * so.strides[2], acc[t] * inv);
    }
}
