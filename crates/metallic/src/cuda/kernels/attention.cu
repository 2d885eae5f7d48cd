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
              int seq, int n_heads, int n_kv_heads, int head_dim, long long pos_offset, float scale,
              const long long* pos_ptr) {
    if (pos_ptr) pos_offset = *pos_ptr;
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

// The same attention with a block of AR_THREADS threads per (query row s,
// head h), for K and V of one dtype DT: the visible keys are split over the
// block's threads instead of walked by one warp, so a decode step (seq 1,
// a handful of heads) spreads each head's keys over 256 threads, and no
// per-key warp reduction sits on the critical path.
//   1. q (rounded to DT) into shared memory; each thread takes keys
//      j = t, t + AR_THREADS, ..: the whole dot product q . k[j] in one
//      thread (16-byte loads of k where rows are contiguous and aligned),
//      keeping its own running maximum and sum (online softmax); the block
//      then combines them (block_max, block_sum_d). Scores are kept in
//      shared memory when the host passes room for them (`cached`), else
//      recomputed in step 2 (bit-identical: the same code).
//   2. In tiles of AR_THREADS keys: each thread turns its key's score into
//      its normalised probability rounded to DT (as the one-warp kernel
//      does), then each warp accumulates P v over every AR_WARPS-th key of
//      the tile with lanes across the head (coalesced), and the warps' sums
//      are added in shared memory.
#define AR_THREADS 256
#define AR_WARPS (AR_THREADS / 32)
#define AR_MAX_HEAD 256

template <int DT>
__device__ __forceinline__ float ar_score(const float* qs, const void* k, i64 kb, i64 ke, int head_dim, bool kvec,
                                          float scale) {
    float dot = 0.0f;
    if (kvec) {
        // Row kb starts 16-byte aligned and holds head_dim contiguous
        // elements, a multiple of 16 bytes.
        constexpr int V = DT == DT_F32 ? 4 : 8;
        const uint4* p = (const uint4*)((const char*)k + kb * (DT == DT_F32 ? 4 : 2));
        for (int e = 0; e < head_dim; e += V) {
            const uint4 w = __ldg(p + e / V);
            const unsigned u[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                if (DT == DT_F32) {
                    dot = fmaf(qs[e + i], __uint_as_float(u[i]), dot);
                } else {
                    const float lo = DT == DT_F16 ? f16_to_f32((u16)(u[i] & 0xffffu)) : bf16_to_f32((u16)(u[i] & 0xffffu));
                    const float hi = DT == DT_F16 ? f16_to_f32((u16)(u[i] >> 16)) : bf16_to_f32((u16)(u[i] >> 16));
                    dot = fmaf(qs[e + 2 * i], lo, dot);
                    dot = fmaf(qs[e + 2 * i + 1], hi, dot);
                }
            }
        }
    } else {
        for (int e = 0; e < head_dim; ++e) dot = fmaf(qs[e], load_t<DT>(k, kb + e * ke), dot);
    }
    return scale * dot;
}

template <int DT>
__device__ __forceinline__ void attention_rows(const void* q, const Strided& sq, const void* k, const Strided& sk,
                                               const void* v, const Strided& sv, void* out, const Strided& so,
                                               int n_heads, int n_kv_heads, int head_dim, long long pos_offset,
                                               float scale, int kvec, int cached, const long long* pos_ptr) {
    if (pos_ptr) pos_offset = *pos_ptr;
    __shared__ float qs[AR_MAX_HEAD];
    __shared__ float ps[AR_THREADS];
    __shared__ float red[AR_WARPS][AR_MAX_HEAD];
    __shared__ double scratch[32];
    extern __shared__ float scores[];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const i64 pair = blockIdx.x;
    const int s = (int)(pair / n_heads), h = (int)(pair % n_heads);
    const int g = h / (n_heads / n_kv_heads);
    const i64 qb = sq.offset + s * sq.strides[0] + h * sq.strides[1];
    for (int e = tid; e < head_dim; e += AR_THREADS)
        qs[e] = round_to(DT, load_f32(q, sq.dtype, qb + e * sq.strides[2]));
    __syncthreads();
    const i64 n_keys = pos_offset + s + 1;
    const i64 k0 = sk.offset + g * sk.strides[1], v0 = sv.offset + g * sv.strides[1];

    // 1. Scores, each thread's running maximum and sum, then the block's.
    float m = NEG_INF;
    double l = 0.0;
    for (i64 j = tid; j < n_keys; j += AR_THREADS) {
        const float sc = ar_score<DT>(qs, k, k0 + j * sk.strides[0], sk.strides[2], head_dim, kvec, scale);
        if (cached) scores[j] = sc;
        const float m_new = fmaxf(m, sc);
        l = l * (double)expf(m - m_new) + (double)expf(sc - m_new);
        m = m_new;
    }
    const float m_all = block_max(m, (float*)scratch);
    const double l_all = block_sum_d(m == NEG_INF ? 0.0 : l * (double)expf(m - m_all), scratch);
    const float inv = (float)(1.0 / l_all);

    // 2. P v, a tile of AR_THREADS keys at a time.
    float acc[AR_MAX_HEAD / 32];
#pragma unroll
    for (int t = 0; t < AR_MAX_HEAD / 32; ++t) acc[t] = 0.0f;
    for (i64 j0 = 0; j0 < n_keys; j0 += AR_THREADS) {
        const i64 j = j0 + tid;
        if (j < n_keys) {
            const float sc = cached ? scores[j]
                                    : ar_score<DT>(qs, k, k0 + j * sk.strides[0], sk.strides[2], head_dim, kvec, scale);
            ps[tid] = round_to(DT, expf(sc - m_all) * inv);
        }
        __syncthreads();
        const int count = (int)min((i64)AR_THREADS, n_keys - j0);
        for (int jj = warp; jj < count; jj += AR_WARPS) {
            const float p = ps[jj];
            const i64 vb = v0 + (j0 + jj) * sv.strides[0];
#pragma unroll
            for (int t = 0; t < AR_MAX_HEAD / 32; ++t) {
                const int e = lane + 32 * t;
                if (e < head_dim) acc[t] = fmaf(p, load_t<DT>(v, vb + e * sv.strides[2]), acc[t]);
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int t = 0; t < AR_MAX_HEAD / 32; ++t) {
        const int e = lane + 32 * t;
        if (e < head_dim) red[warp][e] = acc[t];
    }
    __syncthreads();
    const i64 ob = so.offset + s * so.strides[0] + h * so.strides[1];
    for (int e = tid; e < head_dim; e += AR_THREADS) {
        float sum = 0.0f;
#pragma unroll
        for (int w = 0; w < AR_WARPS; ++w) sum += red[w][e];
        store_f32(out, so.dtype, ob + e * so.strides[2], sum);
    }
}

#define ATTENTION_ROWS(suffix, DT)                                                                                   \
    extern "C" __global__ void __launch_bounds__(AR_THREADS)                                                         \
        attention_rows_##suffix(const void* q, Strided sq, const void* k, Strided sk, const void* v, Strided sv,     \
                                void* out, Strided so, int n_heads, int n_kv_heads, int head_dim,                    \
                                long long pos_offset, float scale, int kvec, int cached,                             \
                                const long long* pos_ptr) {                                                          \
        attention_rows<DT>(q, sq, k, sk, v, sv, out, so, n_heads, n_kv_heads, head_dim, pos_offset, scale, kvec,    \
                           cached, pos_ptr);                                                                         \
    }
ATTENTION_ROWS(f32, DT_F32)
ATTENTION_ROWS(f16, DT_F16)
ATTENTION_ROWS(bf16, DT_BF16)

// Decode over many keys with few (row, head) pairs (a handful of heads at
// seq 1): one block per pair leaves most SMs idle, so the keys are split
// into chunks of AR_THREADS, a block each, in three kernels over an f32
// scratch (`sc` scores [pairs][max_keys], `st` per-chunk maximum and sum
// [pairs][chunks][2] as f64, `pa` per-chunk P v [pairs][chunks][head_dim]):
//   attention_split_scores_<dtype>  grid (chunks, pairs): each thread one
//     key's score; the chunk's maximum and sum of exp(score - max);
//   attention_split_pv_<dtype>      grid (chunks, pairs): every chunk's
//     statistics combined into the row's maximum and sum, then the chunk's
//     probabilities (normalised, rounded to V's dtype, as everywhere) times
//     V, warps over keys and lanes across the head;
//   attention_split_sum             grid (pairs): the chunks' P v added.
// Chunks at or past the visible keys (a graph's replay sizes the grid for
// the whole cache) do nothing and are left out of the sums.
template <int DT>
__device__ __forceinline__ void split_scores(const void* q, const Strided& sq, const void* k, const Strided& sk,
                                             float* sc, double* st, int n_heads, int n_kv_heads, int head_dim,
                                             long long pos_offset, float scale, int kvec, int max_keys,
                                             const long long* pos_ptr) {
    if (pos_ptr) pos_offset = *pos_ptr;
    __shared__ float qs[AR_MAX_HEAD];
    __shared__ double scratch[32];
    const int tid = threadIdx.x, chunk = blockIdx.x, chunks = gridDim.x;
    const i64 pair = blockIdx.y;
    const int s = (int)(pair / n_heads), h = (int)(pair % n_heads);
    const int g = h / (n_heads / n_kv_heads);
    const i64 n_keys = pos_offset + s + 1;
    if ((i64)chunk * AR_THREADS >= n_keys) return;
    const i64 qb = sq.offset + s * sq.strides[0] + h * sq.strides[1];
    for (int e = tid; e < head_dim; e += AR_THREADS)
        qs[e] = round_to(DT, load_f32(q, sq.dtype, qb + e * sq.strides[2]));
    __syncthreads();
    const i64 j = (i64)chunk * AR_THREADS + tid;
    float score = NEG_INF;
    if (j < n_keys) {
        score = ar_score<DT>(qs, k, sk.offset + g * sk.strides[1] + j * sk.strides[0], sk.strides[2], head_dim, kvec,
                             scale);
        sc[pair * max_keys + j] = score;
    }
    const float m = block_max(score, (float*)scratch);
    const double l = block_sum_d(j < n_keys ? (double)expf(score - m) : 0.0, scratch);
    if (tid == 0) {
        st[(pair * chunks + chunk) * 2] = (double)m;
        st[(pair * chunks + chunk) * 2 + 1] = l;
    }
}

template <int DT>
__device__ __forceinline__ void split_pv(const void* v, const Strided& sv, const float* sc, const double* st,
                                         float* pa, int n_heads, int n_kv_heads, int head_dim, long long pos_offset,
                                         int max_keys, const long long* pos_ptr) {
    if (pos_ptr) pos_offset = *pos_ptr;
    __shared__ float ps[AR_THREADS];
    __shared__ float red[AR_WARPS][AR_MAX_HEAD];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, chunk = blockIdx.x, chunks = gridDim.x;
    const i64 pair = blockIdx.y;
    const int s = (int)(pair / n_heads), h = (int)(pair % n_heads);
    const int g = h / (n_heads / n_kv_heads);
    const i64 n_keys = pos_offset + s + 1;
    const i64 j0 = (i64)chunk * AR_THREADS;
    if (j0 >= n_keys) return;
    const int used = (int)((n_keys + AR_THREADS - 1) / AR_THREADS);
    // The row's maximum and sum from every visible chunk's (each thread
    // the same, in the same order).
    float m = NEG_INF;
    for (int c = 0; c < used; ++c) m = fmaxf(m, (float)st[(pair * chunks + c) * 2]);
    double l = 0.0;
    for (int c = 0; c < used; ++c) {
        const double* sc2 = st + (pair * chunks + c) * 2;
        l += sc2[1] * (double)expf((float)sc2[0] - m);
    }
    const float inv = (float)(1.0 / l);
    const i64 j = j0 + tid;
    if (j < n_keys) ps[tid] = round_to(DT, expf(sc[pair * max_keys + j] - m) * inv);
    __syncthreads();
    const int count = (int)min((i64)AR_THREADS, n_keys - j0);
    float acc[AR_MAX_HEAD / 32];
#pragma unroll
    for (int t = 0; t < AR_MAX_HEAD / 32; ++t) acc[t] = 0.0f;
    const i64 v0 = sv.offset + g * sv.strides[1];
    for (int jj = warp; jj < count; jj += AR_WARPS) {
        const float p = ps[jj];
        const i64 vb = v0 + (j0 + jj) * sv.strides[0];
#pragma unroll
        for (int t = 0; t < AR_MAX_HEAD / 32; ++t) {
            const int e = lane + 32 * t;
            if (e < head_dim) acc[t] = fmaf(p, load_t<DT>(v, vb + e * sv.strides[2]), acc[t]);
        }
    }
#pragma unroll
    for (int t = 0; t < AR_MAX_HEAD / 32; ++t) {
        const int e = lane + 32 * t;
        if (e < head_dim) red[warp][e] = acc[t];
    }
    __syncthreads();
    for (int e = tid; e < head_dim; e += AR_THREADS) {
        float sum = 0.0f;
#pragma unroll
        for (int w = 0; w < AR_WARPS; ++w) sum += red[w][e];
        pa[(pair * chunks + chunk) * head_dim + e] = sum;
    }
}

#define ATTENTION_SPLIT(suffix, DT)                                                                                  \
    extern "C" __global__ void __launch_bounds__(AR_THREADS) attention_split_scores_##suffix(                       \
        const void* q, Strided sq, const void* k, Strided sk, float* sc, double* st, int n_heads, int n_kv_heads,    \
        int head_dim, long long pos_offset, float scale, int kvec, int max_keys, const long long* pos_ptr) {         \
        split_scores<DT>(q, sq, k, sk, sc, st, n_heads, n_kv_heads, head_dim, pos_offset, scale, kvec, max_keys,     \
                         pos_ptr);                                                                                   \
    }                                                                                                                \
    extern "C" __global__ void __launch_bounds__(AR_THREADS) attention_split_pv_##suffix(                           \
        const void* v, Strided sv, const float* sc, const double* st, float* pa, int n_heads, int n_kv_heads,        \
        int head_dim, long long pos_offset, int max_keys, const long long* pos_ptr) {                                \
        split_pv<DT>(v, sv, sc, st, pa, n_heads, n_kv_heads, head_dim, pos_offset, max_keys, pos_ptr);               \
    }
ATTENTION_SPLIT(f32, DT_F32)
ATTENTION_SPLIT(f16, DT_F16)
ATTENTION_SPLIT(bf16, DT_BF16)

extern "C" __global__ void attention_split_sum(const float* pa, void* out, Strided so, int n_heads, int chunks,
                                               int head_dim, long long pos_offset, const long long* pos_ptr) {
    if (pos_ptr) pos_offset = *pos_ptr;
    const i64 pair = blockIdx.x;
    const int s = (int)(pair / n_heads), h = (int)(pair % n_heads);
    const i64 n_keys = pos_offset + s + 1;
    const int used = (int)((n_keys + AR_THREADS - 1) / AR_THREADS);
    const i64 ob = so.offset + s * so.strides[0] + h * so.strides[1];
    for (int e = threadIdx.x; e < head_dim; e += blockDim.x) {
        float sum = 0.0f;
        for (int c = 0; c < used; ++c) sum += pa[(pair * chunks + c) * head_dim + e];
        store_f32(out, so.dtype, ob + e * so.strides[2], sum);
    }
}
