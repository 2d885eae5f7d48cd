// Matmul against GGUF block weights: sum_k A[b, m, k] * W[n, k], A in f32,
// W rows of blocks. Three kernels (the third, `matmul_<type>_mv<R>` for
// M = 1, at the end of the file):
//
// `matmul_<type>_warp_row`, every block type: A contiguous [batch, M, K],
// the product into an f32 T[b, m, n]; the shared epilogue kernel
// (matmul.cu) then applies alpha, C, bias and the activation and writes D.
// One warp per weight row n and MT rows of A: the warp walks the row's
// blocks, each lane decoding element `lane (+ 32 t)` of the block, so every
// weight byte is read once per MT activation rows; the MT partial sums are
// reduced across the warp at the end. Simple and correct: the path for the
// other block types, and where the wide kernel's alignment does not hold.

#define MMQ_WARPS 4
#define MMQ_MT 8

template <int T>
__device__ __forceinline__ void mmq(const float* a, const u8* w, i64 row_bytes, float* t, int M, int N, int K) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int n = blockIdx.x * MMQ_WARPS + warp;
    if (n >= N) return;
    const int m0 = blockIdx.y * MMQ_MT;
    const int rows = min(MMQ_MT, M - m0);
    const u8* wrow = w + (i64)n * row_bytes;
    const float* arow = a + (i64)m0 * K;
    float acc[MMQ_MT];
#pragma unroll
    for (int r = 0; r < MMQ_MT; ++r) acc[r] = 0.0f;
    const int nb = K / Q<T>::BE;
    for (int blk = 0; blk < nb; ++blk) {
        const u8* bp = wrow + (i64)blk * Q<T>::BB;
#pragma unroll
        for (int s = 0; s < Q<T>::BE / 32; ++s) {
            const int i = s * 32 + lane;
            const float wv = Q<T>::get(bp, i);
            const i64 k = (i64)blk * Q<T>::BE + i;
#pragma unroll
            for (int r = 0; r < MMQ_MT; ++r)
                if (r < rows) acc[r] += wv * arow[(i64)r * K + k];
        }
    }
#pragma unroll
    for (int r = 0; r < MMQ_MT; ++r) {
        const float v = warp_sum(acc[r]);
        if (lane == 0 && r < rows) t[(i64)(m0 + r) * N + n] = v;
    }
}

#define MATMUL_Q(name, T)                                                                                         \
    extern "C" __global__ void __launch_bounds__(32 * MMQ_WARPS)                                                  \
        matmul_##name##_warp_row(const float* a, const u8* w, i64 row_bytes, float* t, int M, int N, int K) {     \
        mmq<T>(a, w, row_bytes, t, M, N, K);                                                                      \
    }
FOR_EACH_QTYPE(MATMUL_Q)

// `matmul_<type>_mmv<R>`: the same product with wide loads and the
// epilogue fused, for the block types with a V<T> (quant.cuh: Q4_0, Q4_1,
// Q5_0, Q5_1, Q8_0, Q4_K, Q6_K). A's rows are `lda` floats apart (A read in
// place where it is f32 with unit column stride). A block of MMV_THREADS
// threads per R weight rows and MMV_MT activation rows (grid y), each
// thread taking parts of the rows' blocks (V<T>::decode: each weight
// decoded once, bit-identical to Q<T>::get), every value then used for all
// the block's activation rows, each activation float4 for all R weight
// rows. The partial sums are reduced across the warp and the block, and
// epilogue_store writes D. The host sends only weights whose rows are
// aligned for the loads (16 bytes for Q4_K's header, 2 for the rest) and A
// with 16-byte aligned rows.

#define MMV_THREADS 128
#define MMV_MT 8

template <int T, int R>
__device__ __forceinline__ void mmv(const float* a, i64 lda, const u8* w, i64 row_bytes, const Epilogue& e,
                                    const void* c, void* d, const void* bias, int z, int M, int N, int K) {
    constexpr int EPL = V<T>::EPL, LPB = V<T>::LPB;
    __shared__ float part_sums[MMV_THREADS / 32][R * MMV_MT];
    const int n0 = blockIdx.x * R, m0 = blockIdx.y * MMV_MT;
    const int rows = min(MMV_MT, M - m0);
    // Rows past N (the last block's) read row N - 1 and store nothing.
    const u8* wrow[R];
#pragma unroll
    for (int j = 0; j < R; ++j) wrow[j] = w + (i64)min(n0 + j, N - 1) * row_bytes;
    const float* arow = a + (i64)m0 * lda;
    float acc[R][MMV_MT];
#pragma unroll
    for (int j = 0; j < R; ++j)
#pragma unroll
        for (int r = 0; r < MMV_MT; ++r) acc[j][r] = 0.0f;
    const int parts = K / Q<T>::BE * LPB;
    for (int q = threadIdx.x; q < parts; q += MMV_THREADS) {
        const int blk = q / LPB;
        float wv[R][EPL];
        int off[EPL / 4];
#pragma unroll
        for (int j = 0; j < R; ++j) V<T>::decode(wrow[j] + (i64)blk * Q<T>::BB, q % LPB, wv[j], off);
        const float* ab = arow + (i64)blk * Q<T>::BE;
#pragma unroll
        for (int r = 0; r < MMV_MT; ++r) {
            if (r < rows) {
#pragma unroll
                for (int g = 0; g < EPL / 4; ++g) {
                    const float4 x = *(const float4*)(ab + (i64)r * lda + off[g]);
#pragma unroll
                    for (int j = 0; j < R; ++j) {
                        acc[j][r] = fmaf(wv[j][4 * g], x.x, acc[j][r]);
                        acc[j][r] = fmaf(wv[j][4 * g + 1], x.y, acc[j][r]);
                        acc[j][r] = fmaf(wv[j][4 * g + 2], x.z, acc[j][r]);
                        acc[j][r] = fmaf(wv[j][4 * g + 3], x.w, acc[j][r]);
                    }
                }
            }
        }
    }
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    // Only the block's rows of A: at decode (M = 1) the other seven
    // reductions would be most of the block's time.
#pragma unroll
    for (int j = 0; j < R; ++j)
#pragma unroll
        for (int r = 0; r < MMV_MT; ++r) {
            if (r < rows) {
                const float v = warp_sum(acc[j][r]);
                if (lane == 0) part_sums[warp][j * MMV_MT + r] = v;
            }
        }
    __syncthreads();
    // Thread j * MMV_MT + r: output (m0 + r, n0 + j).
    const int j = threadIdx.x / MMV_MT, r = threadIdx.x % MMV_MT;
    if (j < R && r < rows && n0 + j < N) {
        float s = 0.0f;
#pragma unroll
        for (int i = 0; i < MMV_THREADS / 32; ++i) s += part_sums[i][threadIdx.x];
        epilogue_store(e, c, d, bias, z, m0 + r, n0 + j, s);
    }
}

// Kernels `matmul_<type>_mmv<R>`: R weight rows a block (each activation
// load serves R rows).
#define MATMUL_V(name, T)                                                                                        \
    MATMUL_VR(name, T, 1)                                                                                        \
    MATMUL_VR(name, T, 2)                                                                                        \
    MATMUL_VR(name, T, 4)
#define MATMUL_VR(name, T, R)                                                                                    \
    extern "C" __global__ void __launch_bounds__(MMV_THREADS)                                                    \
        matmul_##name##_mmv##R(const float* a, i64 lda, const u8* w, i64 row_bytes, Epilogue e, const void* c,   \
                               void* d, const void* bias, int z, int M, int N, int K) {                          \
        mmv<T, R>(a, lda, w, row_bytes, e, c, d, bias, z, M, N, K);                                              \
    }
MATMUL_V(q4_0, QT_Q4_0)
MATMUL_V(q4_1, QT_Q4_1)
MATMUL_V(q5_0, QT_Q5_0)
MATMUL_V(q5_1, QT_Q5_1)
MATMUL_V(q8_0, QT_Q8_0)
MATMUL_V(q4_k, QT_Q4_K)
MATMUL_V(q6_k, QT_Q6_K)

// `matmul_<type>_mv<R>[u<U>]`: one row of A (M = 1, a decode step), for
// the block types with a D<T> (quant.cuh). A warp per R weight rows, the
// lanes taking the rows' parts in turn, U parts a lane in flight at once:
// each part's activations (and their sums) are loaded once for the R rows
// and every weight costs one integer-to-float and one FMA (the scales
// factored out of each sub-block's sum). No shared memory, no block
// barrier: the lanes' sums are reduced across the warp and lane 0 writes
// the outputs through epilogue_store. Same alignment as the mmv kernels;
// A's row 16-byte aligned.
//
// Fused variants, one weight row a warp and U parts a lane (suffix u<U>),
// A's row taken through RMSNorm first (norm weight `gamma`, f32, aligned as
// A): each warp sees every element of the row, so it sums the squares
// itself (in f64, as rms_norm.cu) while it multiplies x * gamma into the
// product, and scales its sums by 1 / sqrt(mean + eps) at the end.
//   `matmul_<type>_norm_mv_u<U>`: up to three projections of the same x
//     in one launch (q, k and v), rows numbered across them (struct MvSeg);
//   `matmul_<type>_norm_swiglu_mv_u<U>`: a gate weight `w` and an up weight
//     `w2`, writing silu(gate) * up.

#define MV_WARPS 4

// The lanes' partial sums of R weight rows (NW weights each) against A's
// row, and with NORM the lane's share of the squares of A's row.
template <int T, int R, int U, bool NORM, int NW>
__device__ __forceinline__ void mv_sums(const float* a, const float* gamma, const u8* const (&wrow)[NW][R], int K,
                                        float (&acc)[NW][R], double& ss) {
    constexpr int EPL = D<T>::EPL, LPB = D<T>::LPB, NS = D<T>::NS;
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int i = 0; i < NW; ++i)
#pragma unroll
        for (int j = 0; j < R; ++j) acc[i][j] = 0.0f;
    ss = 0.0;
    const int parts = K / Q<T>::BE * LPB;
    for (int q0 = lane; q0 < parts; q0 += 32 * U) {
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int q = q0 + 32 * u;
            if (q < parts) {
                const int blk = q / LPB, p = q % LPB;
                float x[EPL], s[NS];
                D<T>::template xs<NORM>(a + (i64)blk * Q<T>::BE, gamma + (i64)blk * Q<T>::BE, p, x, s, ss);
#pragma unroll
                for (int i = 0; i < NW; ++i)
#pragma unroll
                    for (int j = 0; j < R; ++j) acc[i][j] += D<T>::dot(wrow[i][j] + (i64)blk * Q<T>::BB, p, x, s);
            }
        }
    }
}

// 1 / sqrt(mean + eps) of A's row from the lanes' sums of squares.
__device__ __forceinline__ float mv_norm_scale(double ss, int K, float eps) {
    ss = warp_sum_d(ss);
    return 1.0f / sqrtf((float)(ss / K) + eps);
}

template <int T, int R, int U>
__device__ __forceinline__ void mv(const float* a, const u8* w, i64 row_bytes, const Epilogue& e, const void* c,
                                   void* d, const void* bias, int z, int N, int K) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int n0 = (blockIdx.x * MV_WARPS + warp) * R;
    if (n0 >= N) return;
    // Rows past N (the last warp's) read row N - 1 and store nothing.
    const u8* wrow[1][R];
#pragma unroll
    for (int j = 0; j < R; ++j) wrow[0][j] = w + (i64)min(n0 + j, N - 1) * row_bytes;
    float acc[1][R];
    double ss;
    mv_sums<T, R, U, false, 1>(a, nullptr, wrow, K, acc, ss);
#pragma unroll
    for (int j = 0; j < R; ++j) {
        const float v = warp_sum(acc[0][j]);
        if (lane == 0 && n0 + j < N) epilogue_store(e, c, d, bias, z, 0, n0 + j, v);
    }
}

// One projection of a fused launch: its weight rows, output and bias
// (through its own epilogue), and its number of rows.
struct MvSeg {
    const u8* w;
    void* d;
    const void* bias;
    Epilogue e;
    int n;
};

// The projection of the warp's row n (renumbered within it), or null for a
// warp past the last row.
__device__ __forceinline__ const MvSeg* mv_seg(const MvSeg& s0, const MvSeg& s1, const MvSeg& s2, int& n) {
    if (n < s0.n) return &s0;
    n -= s0.n;
    if (n < s1.n) return &s1;
    n -= s1.n;
    return n < s2.n ? &s2 : nullptr;
}

template <int T, int U>
__device__ __forceinline__ void norm_mv(const float* a, const float* gamma, float eps, i64 row_bytes, const MvSeg& s0,
                                        const MvSeg& s1, const MvSeg& s2, int K) {
    const int lane = threadIdx.x & 31;
    int n = blockIdx.x * MV_WARPS + (threadIdx.x >> 5);
    const MvSeg* s = mv_seg(s0, s1, s2, n);
    if (s == nullptr) return;
    const u8* wrow[1][1] = {{s->w + (i64)n * row_bytes}};
    float acc[1][1];
    double ss;
    mv_sums<T, 1, U, true, 1>(a, gamma, wrow, K, acc, ss);
    const float scale = mv_norm_scale(ss, K, eps);
    const float v = warp_sum(acc[0][0]) * scale;
    if (lane == 0) epilogue_store(s->e, nullptr, s->d, s->bias, 0, 0, n, v);
}

template <int T, int U>
__device__ __forceinline__ void norm_swiglu_mv(const float* a, const float* gamma, float eps, const u8* w,
                                               const u8* w2, i64 row_bytes, const Epilogue& e, void* d, int N,
                                               int K) {
    const int lane = threadIdx.x & 31;
    const int n = blockIdx.x * MV_WARPS + (threadIdx.x >> 5);
    if (n >= N) return;
    const u8* wrow[2][1] = {{w + (i64)n * row_bytes}, {w2 + (i64)n * row_bytes}};
    float acc[2][1];
    double ss;
    mv_sums<T, 1, U, true, 2>(a, gamma, wrow, K, acc, ss);
    const float scale = mv_norm_scale(ss, K, eps);
    const float g = warp_sum(acc[0][0]) * scale, u = warp_sum(acc[1][0]) * scale;
    if (lane == 0) epilogue_store(e, nullptr, d, nullptr, 0, 0, n, activate(ACT_SILU, g) * u);
}

#define MATMUL_MV(name, T)                                                                                       \
    MATMUL_MVR(name, T, 1, 1, mv1)                                                                               \
    MATMUL_MVR(name, T, 1, 2, mv1u2)                                                                             \
    MATMUL_MVR(name, T, 1, 4, mv1u4)                                                                             \
    MATMUL_MVR(name, T, 2, 1, mv2)                                                                               \
    MATMUL_MV_FUSED(name, T, 2)                                                                                  \
    MATMUL_MV_FUSED(name, T, 4)
#define MATMUL_MVR(name, T, R, U, suffix)                                                                        \
    extern "C" __global__ void __launch_bounds__(32 * MV_WARPS)                                                  \
        matmul_##name##_##suffix(const float* a, const u8* w, i64 row_bytes, Epilogue e, const void* c, void* d, \
                                 const void* bias, int z, int N, int K) {                                        \
        mv<T, R, U>(a, w, row_bytes, e, c, d, bias, z, N, K);                                                    \
    }
#define MATMUL_MV_FUSED(name, T, U)                                                                              \
    extern "C" __global__ void __launch_bounds__(32 * MV_WARPS)                                                  \
        matmul_##name##_norm_mv_u##U(const float* a, const float* gamma, float eps, i64 row_bytes,               \
                                     __grid_constant__ const MvSeg s0, __grid_constant__ const MvSeg s1,         \
                                     __grid_constant__ const MvSeg s2, int K) {                                  \
        norm_mv<T, U>(a, gamma, eps, row_bytes, s0, s1, s2, K);                                                  \
    }                                                                                                            \
    extern "C" __global__ void __launch_bounds__(32 * MV_WARPS) matmul_##name##_norm_swiglu_mv_u##U(            \
        const float* a, const float* gamma, float eps, const u8* w, const u8* w2, i64 row_bytes, Epilogue e,     \
        void* d, int N, int K) {                                                                                 \
        norm_swiglu_mv<T, U>(a, gamma, eps, w, w2, row_bytes, e, d, N, K);                                       \
    }
MATMUL_MV(q4_0, QT_Q4_0)
MATMUL_MV(q8_0, QT_Q8_0)
MATMUL_MV(q4_k, QT_Q4_K)
MATMUL_MV(q6_k, QT_Q6_K)

// 8-bit activations (`METALLIC_MV=q8`, cuda/ops/matmul.rs): A's row is
// quantized once, as the CPU's default quantized matmul and llama.cpp
// quantize it (`quantize_q8_g32`: Q8_0, for Q4_0 / Q5_0 / Q8_0 weights;
// `_g32s`: Q8_1, for Q4_1 / Q5_1; `_g256`: Q8_K, for the K-quants),
// optionally through RMSNorm
// first; the products then take four weight and activation bytes a dp4a
// (quant.cuh I8<T>). The row's buffer X8: K quants, then K / 32 f32 scales
// (one per group of 32; Q8_K's repeated over its eight), then K / 32 i32
// sums of the groups' quants (Q8_1: the groups' f16 `s` = d * sum, with
// the f32 d, as f32 bits).

struct X8 {
    const u8* q;
    const float* d;
    const int* s;
};

__device__ __forceinline__ X8 x8_row(const u8* buf, int K) {
    return {buf, (const float*)(buf + K), (const int*)(buf + K + K / 8)};
}

#define Q8_WARPS 8

// One warp per group of G activations (8 warps a block). With gamma, the
// row goes through RMSNorm first, as rms_norm (norm.cu): the sum of squares
// in f64 over the whole row (each block sums it), then (x * scale) * gamma.
// S1 (G = 32): Q8_1, s in place of the sum.
template <int G, bool S1>
__device__ __forceinline__ void quantize_q8(const float* x, const float* gamma, float eps, u8* out, int K) {
    __shared__ double scratch[32];
    float scale = 1.0f;
    if (gamma != nullptr) {
        // Eight loads a thread in flight at once: a row of 3584 is two
        // trips to memory, not fourteen.
        double ss = 0.0;
        for (int j0 = threadIdx.x; j0 < K; j0 += 8 * blockDim.x) {
            float v[8];
#pragma unroll
            for (int u = 0; u < 8; ++u) {
                const int j = j0 + u * blockDim.x;
                v[u] = j < K ? x[j] : 0.0f;
            }
#pragma unroll
            for (int u = 0; u < 8; ++u) ss += (double)(v[u] * v[u]);
        }
        ss = block_sum_d(ss, scratch);
        scale = 1.0f / sqrtf((float)(ss / K) + eps);
    }
    const int lane = threadIdx.x & 31, g = blockIdx.x * Q8_WARPS + (threadIdx.x >> 5);
    if (g >= K / G) return;
    float* xd = (float*)(out + K);
    int* xs = (int*)(out + K + K / 8);
    constexpr int E = G / 32;
    float v[E];
#pragma unroll
    for (int i = 0; i < E; ++i) {
        const int j = g * G + 32 * i + lane;
        v[i] = x[j];
        if (gamma != nullptr) v[i] = __fmul_rn(__fmul_rn(v[i], scale), gamma[j]);
    }
    if (G == 32) {
        // Q8_0: d = amax / 127 (kept as its f16), q = rint(x * 127 / amax).
        const float amax = warp_max(fabsf(v[0]));
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        const int q = __float2int_rn(__fmul_rn(v[0], id));
        out[g * 32 + lane] = (u8)q;
        const int sum = __reduce_add_sync(0xffffffffu, q);
        if (lane == 0) {
            const float d = amax / 127.0f;
            xd[g] = f16_to_f32(f32_to_f16(d));
            xs[g] = S1 ? __float_as_int(f16_to_f32(f32_to_f16(__fmul_rn(d, (float)sum)))) : sum;
        }
        return;
    }
    // Q8_K: the first value of largest magnitude (index order, as the
    // CPU's strict `>` scan), iscale = -127 / it, q = min(rint(iscale x),
    // 127), d = 1 / iscale; an all-zero group stays zero.
    float amax = 0.0f, mx = 0.0f;
    int at = G;
#pragma unroll
    for (int i = 0; i < E; ++i)
        if (fabsf(v[i]) > amax) amax = fabsf(v[i]), mx = v[i], at = 32 * i + lane;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float oa = __shfl_xor_sync(0xffffffffu, amax, o), om = __shfl_xor_sync(0xffffffffu, mx, o);
        const int oat = __shfl_xor_sync(0xffffffffu, at, o);
        if (oa > amax || (oa == amax && oat < at)) amax = oa, mx = om, at = oat;
    }
    const float iscale = amax != 0.0f ? -127.0f / mx : 0.0f;
#pragma unroll
    for (int i = 0; i < E; ++i) {
        const int q = min(__float2int_rn(__fmul_rn(iscale, v[i])), 127);
        out[g * G + 32 * i + lane] = (u8)q;
        const int sum = __reduce_add_sync(0xffffffffu, q);
        if (lane == 0) {
            xd[g * E + i] = amax != 0.0f ? 1.0f / iscale : 0.0f;
            xs[g * E + i] = sum;
        }
    }
}

extern "C" __global__ void __launch_bounds__(32 * Q8_WARPS)
    quantize_q8_g32(const float* x, const float* gamma, float eps, u8* out, int K) {
    quantize_q8<32, false>(x, gamma, eps, out, K);
}
extern "C" __global__ void __launch_bounds__(32 * Q8_WARPS)
    quantize_q8_g32s(const float* x, const float* gamma, float eps, u8* out, int K) {
    quantize_q8<32, true>(x, gamma, eps, out, K);
}
extern "C" __global__ void __launch_bounds__(32 * Q8_WARPS)
    quantize_q8_g256(const float* x, const float* gamma, float eps, u8* out, int K) {
    quantize_q8<256, false>(x, gamma, eps, out, K);
}

// The lanes' partial sums of NW weight rows against the quantized row, U
// blocks a lane in flight. A lane always takes the same part p of its
// blocks (LPB divides 32), so what depends on p is computed once.
template <int T, int NW, int U>
__device__ __forceinline__ void q8_sums(const X8& x, const u8* const (&wrow)[NW], int K, float (&acc)[NW]) {
    constexpr int LPB = I8<T>::LPB, GB = Q<T>::BE / 32, STEP = 32 / LPB;
    static_assert(32 % LPB == 0, "a lane keeps its part");
    const int lane = threadIdx.x & 31, p = lane % LPB;
#pragma unroll
    for (int i = 0; i < NW; ++i) acc[i] = 0.0f;
    const int blocks = K / Q<T>::BE;
    for (int b0 = lane / LPB; b0 < blocks; b0 += STEP * U) {
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int blk = b0 + STEP * u;
            if (blk < blocks) {
                const u8* xq = x.q + (i64)blk * Q<T>::BE;
#pragma unroll
                for (int i = 0; i < NW; ++i)
                    acc[i] += I8<T>::dot(wrow[i] + (i64)blk * Q<T>::BB, p, xq, x.d + blk * GB, x.s + blk * GB);
            }
        }
    }
}

#define Q8_U 4

// `matmul_<type>_q8mv`: a warp per weight row, the epilogue as `mv`.
template <int T>
__device__ __forceinline__ void q8mv(const u8* xb, const u8* w, i64 row_bytes, const Epilogue& e, const void* c,
                                     void* d, const void* bias, int z, int N, int K) {
    const int n = blockIdx.x * MV_WARPS + (threadIdx.x >> 5);
    if (n >= N) return;
    const u8* wrow[1] = {w + (i64)n * row_bytes};
    float acc[1];
    q8_sums<T, 1, Q8_U>(x8_row(xb, K), wrow, K, acc);
    const float v = warp_sum(acc[0]);
    if ((threadIdx.x & 31) == 0) epilogue_store(e, c, d, bias, z, 0, n, v);
}

// `matmul_<type>_q8mv_seg`: up to three projections of one quantized row
// (q, k and v), rows numbered across them, as `norm_mv`.
template <int T>
__device__ __forceinline__ void q8mv_seg(const u8* xb, i64 row_bytes, const MvSeg& s0, const MvSeg& s1,
                                         const MvSeg& s2, int K) {
    int n = blockIdx.x * MV_WARPS + (threadIdx.x >> 5);
    const MvSeg* s = mv_seg(s0, s1, s2, n);
    if (s == nullptr) return;
    const u8* wrow[1] = {s->w + (i64)n * row_bytes};
    float acc[1];
    q8_sums<T, 1, Q8_U>(x8_row(xb, K), wrow, K, acc);
    const float v = warp_sum(acc[0]);
    if ((threadIdx.x & 31) == 0) epilogue_store(s->e, nullptr, s->d, s->bias, 0, 0, n, v);
}

// `matmul_<type>_q8mv_swiglu`: silu(gate) * up of rows n of `w` and `w2`.
template <int T>
__device__ __forceinline__ void q8mv_swiglu(const u8* xb, const u8* w, const u8* w2, i64 row_bytes,
                                            const Epilogue& e, void* d, int N, int K) {
    const int n = blockIdx.x * MV_WARPS + (threadIdx.x >> 5);
    if (n >= N) return;
    const u8* wrow[2] = {w + (i64)n * row_bytes, w2 + (i64)n * row_bytes};
    float acc[2];
    q8_sums<T, 2, Q8_U>(x8_row(xb, K), wrow, K, acc);
    const float g = warp_sum(acc[0]), u = warp_sum(acc[1]);
    if ((threadIdx.x & 31) == 0) epilogue_store(e, nullptr, d, nullptr, 0, 0, n, activate(ACT_SILU, g) * u);
}

#define MATMUL_Q8(name, T)                                                                                      \
    extern "C" __global__ void __launch_bounds__(32 * MV_WARPS)                                                 \
        matmul_##name##_q8mv(const u8* xb, const u8* w, i64 row_bytes, Epilogue e, const void* c, void* d,      \
                             const void* bias, int z, int N, int K) {                                           \
        q8mv<T>(xb, w, row_bytes, e, c, d, bias, z, N, K);                                                      \
    }                                                                                                           \
    extern "C" __global__ void __launch_bounds__(32 * MV_WARPS)                                                 \
        matmul_##name##_q8mv_seg(const u8* xb, i64 row_bytes, __grid_constant__ const MvSeg s0,                 \
                                 __grid_constant__ const MvSeg s1, __grid_constant__ const MvSeg s2, int K) {   \
        q8mv_seg<T>(xb, row_bytes, s0, s1, s2, K);                                                              \
    }                                                                                                           \
    extern "C" __global__ void __launch_bounds__(32 * MV_WARPS) matmul_##name##_q8mv_swiglu(                   \
        const u8* xb, const u8* w, const u8* w2, i64 row_bytes, Epilogue e, void* d, int N, int K) {            \
        q8mv_swiglu<T>(xb, w, w2, row_bytes, e, d, N, K);                                                       \
    }
MATMUL_Q8(q4_0, QT_Q4_0)
MATMUL_Q8(q4_1, QT_Q4_1)
MATMUL_Q8(q5_0, QT_Q5_0)
MATMUL_Q8(q5_1, QT_Q5_1)
MATMUL_Q8(q8_0, QT_Q8_0)
MATMUL_Q8(q4_k, QT_Q4_K)
MATMUL_Q8(q6_k, QT_Q6_K)
