// Our f32 GEMM for M <= 16 against a weight (y = x W^T, B K-contiguous):
// exact fp32 FMA, bound by streaming W once from memory. The tiled GEMM
// (gemm_f32.cu) would spend a 128-row tile on these few rows.
//
// A block takes 32 rows of W (N): each warp 4 rows (2 where MR >= 8, with
// 16 warps), each lane 16 bytes of each row per 128 columns of K, so a
// warp's loads are 512 contiguous bytes per row. A's rows (M <= MR of them,
// any strides) pass through shared memory in chunks of KC columns, shared
// by the block's warps. W is software-pipelined: the next chunk's loads are
// issued before this chunk's A is staged and multiplied, so a block keeps
// HBM busy through its barriers. At the end each warp sums its lanes (butterfly
// shuffles) and writes its 4 x M outputs through the epilogue, or, with
// split K (gridDim.y > 1, each split an equal share of the chunks), f32
// partial products that matmul.cu's gemm_splitk_epilogue sums.
//
// One kernel per bound on M: gemm_f32_rows_m<MR> for MR in 1, 2, 4, 8, 16,
// each capped at 128 registers (2 blocks of 256 or 1 of 512 threads per
// SM): 4 rows x MR accumulators and two sets of W registers would not fit
// that at MR >= 8, hence 2 rows per warp there.
// The host sends W only when its rows start 16-byte aligned (base, offset,
// row stride and batch stride); a K tail is read element by element.

#define ROWS_N 32  // W rows per block
#define KC 256     // K columns per chunk: 2 float4 per lane
#define ROWS_PER_WARP (MR >= 8 ? 2 : 4)
#define ROWS_THREADS (ROWS_N / ROWS_PER_WARP * 32)

template <int MR>
__device__ __forceinline__ void gemm_f32_rows(const float* a, Operand ga, const float* b, Operand gb,
                                              const Epilogue& e, const void* c, void* d, const void* bias, int M,
                                              int N, int K, float* partial) {
    __shared__ __align__(16) float as[MR][KC];
    // Split K: gemm_splitk_epilogue, launched as this kernel's dependent,
    // may be scheduled once every block has started.
    if (partial) grid_dependents_may_start();
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const i64 z = blockIdx.z;
    const int n0 = blockIdx.x * ROWS_N + warp * ROWS_PER_WARP;

    const int chunks = (K + KC - 1) / KC;
    const int per = (chunks + gridDim.y - 1) / gridDim.y;
    const int c_begin = min(chunks, (int)blockIdx.y * per);
    const int c_end = min(chunks, c_begin + per);

    // Row r of W (n0 + r) starts at wr[r]; rows past N read row 0 (never
    // used: their outputs are not written).
    const float* wr[ROWS_PER_WARP];
#pragma unroll
    for (int r = 0; r < ROWS_PER_WARP; ++r) {
        const int n = n0 + r < N ? n0 + r : 0;
        wr[r] = b + gb.off + z * gb.bs + (i64)n * gb.cs;
    }
    const float* ar = a + ga.off + z * ga.bs;

    float acc[ROWS_PER_WARP][MR];
#pragma unroll
    for (int r = 0; r < ROWS_PER_WARP; ++r)
#pragma unroll
        for (int m = 0; m < MR; ++m) acc[r][m] = 0.0f;

    // W's 2 x 16 bytes per row of chunk ch into w (zeros past K).
    auto load_w = [&](float4(&w)[ROWS_PER_WARP][2], int ch) {
#pragma unroll
        for (int r = 0; r < ROWS_PER_WARP; ++r)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int k = ch * KC + h * 128 + lane * 4;
                if (k + 3 < K) {
                    w[r][h] = __ldg((const float4*)(wr[r] + k));
                } else {
                    float t[4];
#pragma unroll
                    for (int j = 0; j < 4; ++j) t[j] = k + j < K ? __ldg(wr[r] + k + j) : 0.0f;
                    w[r][h] = make_float4(t[0], t[1], t[2], t[3]);
                }
            }
    };
    float4 w_next[ROWS_PER_WARP][2];
    if (c_begin < c_end) load_w(w_next, c_begin);
#pragma unroll 1
    for (int ch = c_begin; ch < c_end; ++ch) {
        float4 w[ROWS_PER_WARP][2];
#pragma unroll
        for (int r = 0; r < ROWS_PER_WARP; ++r) w[r][0] = w_next[r][0], w[r][1] = w_next[r][1];
        if (ch + 1 < c_end) load_w(w_next, ch + 1);
        const int k0 = ch * KC;
        __syncthreads();  // the previous chunk's reads of `as` are done
#pragma unroll
        for (int i = threadIdx.x; i < MR * KC; i += ROWS_THREADS) {
            const int m = i / KC, k = k0 + i % KC;
            as[m][i % KC] = m < M && k < K ? __ldg(ar + m * ga.rs + k * ga.cs) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
            for (int m = 0; m < MR; ++m) {
                const float4 x = *(const float4*)&as[m][h * 128 + lane * 4];
#pragma unroll
                for (int r = 0; r < ROWS_PER_WARP; ++r) {
                    acc[r][m] = fmaf(x.x, w[r][h].x, acc[r][m]);
                    acc[r][m] = fmaf(x.y, w[r][h].y, acc[r][m]);
                    acc[r][m] = fmaf(x.z, w[r][h].z, acc[r][m]);
                    acc[r][m] = fmaf(x.w, w[r][h].w, acc[r][m]);
                }
            }
    }

    // Lane l ends with outputs l and l + 32 of the warp's rows x MR (row-major
    // over (r, m)); compile-time indices only, since a run-time one would
    // move acc to local memory. The epilogue is then emitted twice, not
    // 4 * MR times.
    constexpr int OUTS = ROWS_PER_WARP * MR;
    float mine[2] = {0.0f, 0.0f};
#pragma unroll
    for (int r = 0; r < ROWS_PER_WARP; ++r)
#pragma unroll
        for (int m = 0; m < MR; ++m) {
            const float v = warp_sum(acc[r][m]);
            if (lane == (r * MR + m) % 32) mine[(r * MR + m) / 32] = v;
        }
#pragma unroll
    for (int s = 0; s < 2; ++s) {
        const int i = s * 32 + lane, r = i / MR, m = i % MR, n = n0 + r;
        if (i >= OUTS || m >= M || n >= N) continue;
        if (partial) {
            partial[((i64)blockIdx.y * gridDim.z + z) * M * N + (i64)m * N + n] = mine[s];
        } else {
            epilogue_store(e, c, d, bias, z, m, n, mine[s]);
        }
    }
}

// ---------------------------------------------------------------------------
// Candidate, run by name only (not yet timed): gemm_f32_rows_pipe_k<KCP>_m<MR>.
// The kernel above with A's chunks copied into two shared-memory buffers by
// cp.async, the next chunk's in flight while this one is multiplied: one
// barrier per chunk instead of two, no wait on A's loads from L2, and a
// fixed number of 16-byte copies per thread (2 at MR 16, against 8 scalar
// loads and stores). KCP 128 halves the chunk for K <= 128 (the attention
// products), where a 256-column chunk leaves half the lanes or more idle.
// Only for A with K contiguous and 16-byte aligned 4-element groups (the
// host checks). If the A/B keeps it, it replaces gemm_f32_rows and the two
// share rows_store; if not, it goes.

// The warp's ROWS_PER_WARP x MR sums (each lane holds a part of each) to D
// through the epilogue, or to the split's f32 partial product: lane l ends
// with outputs l and l + 32 of the warp's rows x MR (row-major over (r, m)),
// so the epilogue is emitted twice, not ROWS_PER_WARP * MR times.
template <int MR>
__device__ __forceinline__ void rows_store(const float (&acc)[ROWS_PER_WARP][MR], int lane, int n0, i64 z, int M,
                                           int N, float* partial, const Epilogue& e, const void* c, void* d,
                                           const void* bias) {
    constexpr int OUTS = ROWS_PER_WARP * MR;
    float mine[2] = {0.0f, 0.0f};
#pragma unroll
    for (int r = 0; r < ROWS_PER_WARP; ++r)
#pragma unroll
        for (int m = 0; m < MR; ++m) {
            const float v = warp_sum(acc[r][m]);
            if (lane == (r * MR + m) % 32) mine[(r * MR + m) / 32] = v;
        }
#pragma unroll
    for (int s = 0; s < 2; ++s) {
        const int i = s * 32 + lane, r = i / MR, m = i % MR, n = n0 + r;
        if (i >= OUTS || m >= M || n >= N) continue;
        if (partial) {
            partial[((i64)blockIdx.y * gridDim.z + z) * M * N + (i64)m * N + n] = mine[s];
        } else {
            epilogue_store(e, c, d, bias, z, m, n, mine[s]);
        }
    }
}

// 16 bytes global -> shared, zero-filled past `bytes` (PTX ISA "cp.async",
// src-size); both addresses 16-byte aligned.
__device__ __forceinline__ void rows_cp_async16(float* dst, const float* src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src), "r"(bytes));
}

template <int MR, int KCP>
__device__ __forceinline__ void gemm_f32_rows_pipe(const float* a, Operand ga, const float* b, Operand gb,
                                                   const Epilogue& e, const void* c, void* d, const void* bias,
                                                   int M, int N, int K, float* partial) {
    constexpr int H = KCP / 128;          // 16-byte groups per lane, W row and chunk
    constexpr int GROUPS = MR * KCP / 4;  // A's 16-byte groups per chunk
    constexpr int COPIES = (GROUPS + ROWS_THREADS - 1) / ROWS_THREADS;
    __shared__ __align__(16) float as[2][MR][KCP];
    if (partial) grid_dependents_may_start();
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const i64 z = blockIdx.z;
    const int n0 = blockIdx.x * ROWS_N + warp * ROWS_PER_WARP;

    const int chunks = (K + KCP - 1) / KCP;
    const int per = (chunks + gridDim.y - 1) / gridDim.y;
    const int c_begin = min(chunks, (int)blockIdx.y * per);
    const int c_end = min(chunks, c_begin + per);

    const float* wr[ROWS_PER_WARP];
#pragma unroll
    for (int r = 0; r < ROWS_PER_WARP; ++r) {
        const int n = n0 + r < N ? n0 + r : 0;
        wr[r] = b + gb.off + z * gb.bs + (i64)n * gb.cs;
    }
    const float* ar = a + ga.off + z * ga.bs;

    float acc[ROWS_PER_WARP][MR];
#pragma unroll
    for (int r = 0; r < ROWS_PER_WARP; ++r)
#pragma unroll
        for (int m = 0; m < MR; ++m) acc[r][m] = 0.0f;

    auto load_w = [&](float4(&w)[ROWS_PER_WARP][H], int ch) {
#pragma unroll
        for (int r = 0; r < ROWS_PER_WARP; ++r)
#pragma unroll
            for (int h = 0; h < H; ++h) {
                const int k = ch * KCP + h * 128 + lane * 4;
                if (k + 3 < K) {
                    w[r][h] = __ldg((const float4*)(wr[r] + k));
                } else {
                    float t[4];
#pragma unroll
                    for (int j = 0; j < 4; ++j) t[j] = k + j < K ? __ldg(wr[r] + k + j) : 0.0f;
                    w[r][h] = make_float4(t[0], t[1], t[2], t[3]);
                }
            }
    };
    // A's chunk ch into buffer buf as one cp.async group: zeros past K and
    // for rows past M.
    auto copy_a = [&](int buf, int ch) {
#pragma unroll
        for (int j = 0; j < COPIES; ++j) {
            const int i = threadIdx.x + j * ROWS_THREADS;
            if (GROUPS % ROWS_THREADS == 0 || i < GROUPS) {
                const int m = i / (KCP / 4), kc = i % (KCP / 4) * 4, k = ch * KCP + kc;
                const int left = m < M ? K - k : 0;
                const int bytes = left >= 4 ? 16 : left > 0 ? 4 * left : 0;
                rows_cp_async16(&as[buf][m][kc], bytes ? ar + (i64)m * ga.rs + k : ar, bytes);
            }
        }
        asm volatile("cp.async.commit_group;\n" ::);
    };

    float4 w_next[ROWS_PER_WARP][H];
    if (c_begin < c_end) {
        copy_a(0, c_begin);
        load_w(w_next, c_begin);
    }
#pragma unroll 1
    for (int ch = c_begin; ch < c_end; ++ch) {
        const int buf = (ch - c_begin) & 1;
        float4 w[ROWS_PER_WARP][H];
#pragma unroll
        for (int r = 0; r < ROWS_PER_WARP; ++r)
#pragma unroll
            for (int h = 0; h < H; ++h) w[r][h] = w_next[r][h];
        if (ch + 1 < c_end) load_w(w_next, ch + 1);
        // This thread's copies of chunk ch have landed; after the barrier
        // every thread's have, and every warp is done with chunk ch - 1,
        // whose buffer chunk ch + 1 then fills.
        asm volatile("cp.async.wait_group 0;\n" ::);
        __syncthreads();
        if (ch + 1 < c_end) copy_a(buf ^ 1, ch + 1);
#pragma unroll
        for (int h = 0; h < H; ++h)
#pragma unroll
            for (int m = 0; m < MR; ++m) {
                const float4 x = *(const float4*)&as[buf][m][h * 128 + lane * 4];
#pragma unroll
                for (int r = 0; r < ROWS_PER_WARP; ++r) {
                    acc[r][m] = fmaf(x.x, w[r][h].x, acc[r][m]);
                    acc[r][m] = fmaf(x.y, w[r][h].y, acc[r][m]);
                    acc[r][m] = fmaf(x.z, w[r][h].z, acc[r][m]);
                    acc[r][m] = fmaf(x.w, w[r][h].w, acc[r][m]);
                }
            }
    }
    rows_store<MR>(acc, lane, n0, z, M, N, partial, e, c, d, bias);
}

#define GEMM_F32_ROWS(MR)                                                                                          \
    extern "C" __global__ void __launch_bounds__(ROWS_N / ((MR) >= 8 ? 2 : 4) * 32, ((MR) >= 8 ? 1 : 2))          \
        gemm_f32_rows_m##MR(const float* a, Operand ga, const float* b, Operand gb, Epilogue e, const void* c,     \
                            void* d, const void* bias, int M, int N, int K, float* partial) {                      \
        gemm_f32_rows<MR>(a, ga, b, gb, e, c, d, bias, M, N, K, partial);                                         \
    }
GEMM_F32_ROWS(1)
GEMM_F32_ROWS(2)
GEMM_F32_ROWS(4)
GEMM_F32_ROWS(8)
GEMM_F32_ROWS(16)

#define GEMM_F32_ROWS_PIPE(KCP, MR)                                                                                \
    extern "C" __global__ void __launch_bounds__(ROWS_N / ((MR) >= 8 ? 2 : 4) * 32, ((MR) >= 8 ? 1 : 2))          \
        gemm_f32_rows_pipe_k##KCP##_m##MR(const float* a, Operand ga, const float* b, Operand gb, Epilogue e,      \
                                          const void* c, void* d, const void* bias, int M, int N, int K,          \
                                          float* partial) {                                                        \
        gemm_f32_rows_pipe<MR, KCP>(a, ga, b, gb, e, c, d, bias, M, N, K, partial);                               \
    }
GEMM_F32_ROWS_PIPE(256, 1)
GEMM_F32_ROWS_PIPE(256, 2)
GEMM_F32_ROWS_PIPE(256, 4)
GEMM_F32_ROWS_PIPE(256, 8)
GEMM_F32_ROWS_PIPE(256, 16)
GEMM_F32_ROWS_PIPE(128, 1)
GEMM_F32_ROWS_PIPE(128, 2)
GEMM_F32_ROWS_PIPE(128, 4)
GEMM_F32_ROWS_PIPE(128, 8)
GEMM_F32_ROWS_PIPE(128, 16)
