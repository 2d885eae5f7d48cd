// Causal grouped-query attention over a KV cache, flash-attention style: the
// scores never leave registers. One warp per (query row s, head h); lane l
// holds head elements l, l+32, ... (head_dim <= 256). Decode (seq = 1) and
// prefill (seq > 1, causal) are the same kernel.
//
// Operand precision follows the cache, as ops::attention specifies: q is
// rounded to k's dtype before q . k, and the normalised probabilities to v's
// dtype before P v, with f32 accumulation. Rounding the *normalised*
// probabilities needs the final maximum and sum first, so the warp walks the
// visible keys twice: pass 1 keeps a running maximum m and a running sum l
// (rescaled by exp(m_old - m_new) as m grows: the online softmax of Milakov &
// Gimelshein, as in FlashAttention), pass 2 recomputes each score and
// accumulates round(exp(score - m) / l) * v.

#define ATT_WARPS 4
#define ATT_MAX_PER_LANE 8

__device__ __forceinline__ float att_score(const float* qv, const void* k, const Strided& sk, i64 j, int g,
                                           int head_dim, int lane, float scale) {
    const i64 kb = sk.offset + j * sk.strides[0] + g * sk.strides[1];
    float dot = 0.0f;
#pragma unroll
    for (int t = 0; t < ATT_MAX_PER_LANE; ++t) {
        const int e = lane + 32 * t;
        if (e < head_dim) dot += qv[t] * load_f32(k, sk.dtype, kb + e * sk.strides[2]);
    }
    return scale * warp_sum(dot);
}

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
        qv[t] = e < head_dim ? round_to(sk.dtype, load_f32(q, sq.dtype, qb + e * sq.strides[2])) : 0.0f;
        acc[t] = 0.0f;
    }
    const i64 n_keys = pos_offset + s + 1;
    // Pass 1: the maximum and the sum of exp(score - max), online.
    float m = NEG_INF;
    double l = 0.0;
    for (i64 j = 0; j < n_keys; ++j) {
        const float score = att_score(qv, k, sk, j, g, head_dim, lane, scale);
        const float m_new = fmaxf(m, score);
        l = l * (double)expf(m - m_new) + (double)expf(score - m_new);
        m = m_new;
    }
    const float inv = (float)(1.0 / l);
    // Pass 2: P v with P normalised and rounded to v's dtype.
    for (i64 j = 0; j < n_keys; ++j) {
        const float score = att_score(qv, k, sk, j, g, head_dim, lane, scale);
        const float p = round_to(sv.dtype, expf(score - m) * inv);
        const i64 vb = sv.offset + j * sv.strides[0] + g * sv.strides[1];
#pragma unroll
        for (int t = 0; t < ATT_MAX_PER_LANE; ++t) {
            const int e = lane + 32 * t;
            if (e < head_dim) acc[t] += p * load_f32(v, sv.dtype, vb + e * sv.strides[2]);
        }
    }
    const i64 ob = so.offset + s * so.strides[0] + h * so.strides[1];
#pragma unroll
    for (int t = 0; t < ATT_MAX_PER_LANE; ++t) {
        const int e = lane + 32 * t;
        if (e < head_dim) store_f32(out, so.dtype, ob + e * so.strides[2], acc[t]);
    }
}
