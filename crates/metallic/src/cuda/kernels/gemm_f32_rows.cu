// Our f32 GEMM for M <= 16 against a weight (y = x W^T, B K-contiguous):
// exact fp32 FMA, bound by streaming W once from memory. The tiled GEMM
// (gemm_f32.cu) would spend a 128-row tile on these few rows.
//
// A block takes 32 rows of W (N): each warp 4 rows (2 where MR >= 8, with
// 16 warps), each lane 16 bytes of each row per load, so a warp's loads are
// 512 contiguous bytes per row. W is software-pipelined: the next chunk's
// loads are issued before this chunk's FMAs. A's rows (M <= MR of them)
// pass through shared memory in chunks of KC columns (the instantiations
// at the end say which), shared by the block's warps: cp.async copies them
// into two buffers, the next chunk in flight while this one is multiplied,
// with one barrier per chunk and no wait on A's loads. At the end each warp
// sums its lanes (butterfly shuffles) and writes its rows x M outputs
// through the epilogue, or, with split K (gridDim.y > 1, each split an
// equal share of the chunks), f32 partial products that matmul.cu's
// gemm_splitk_epilogue sums.
//
// Kernels gemm_f32_rows_k<KC>_m<MR> for MR in 1, 2, 4, 8, 16: A K-contiguous
// with 16-byte aligned groups of 4 (16-byte copies, 2 per thread at MR 16);
// gemm_f32_rows_k256_m<MR>_s any strides of A (4-byte copies). Each is
// capped at 128 registers (2 blocks of 256 or 1 of 512 threads per SM): 4
// rows x MR accumulators and two sets of W registers would not fit that at
// MR >= 8, hence 2 rows per warp there. The host sends W only when its rows
// start on 16-byte boundaries (base, offset, row stride and batch stride);
// a K tail is read element by element. On an H100 (session 13) this kernel
// ran the 7B products at M = 16 1.5-1.9x faster than the one it replaced,
// which staged A synchronously with two barriers per chunk.

// ROWS_WDT: W's element type. DT_F32 (the default); DT_F16 or DT_BF16 for a
// mixed pair, f32 activations against a half-precision weight (a model's
// f16 / bf16 GGUF weights at decode), widened to f32 before the same FMAs.
// Either way a lane loads 16 bytes of a W row at a time: W_E elements, so a
// warp's load covers 32 W_E columns (128 in f32, 256 in f16 / bf16).
#ifndef ROWS_WDT
#define ROWS_WDT DT_F32
#endif
// A 16-byte load of W stays in its raw form (wpack) until the FMAs, so an
// f16 / bf16 chunk in flight takes the registers an f32 one does.
#if ROWS_WDT == DT_F32
typedef float w_t;
typedef float4 wpack;
#define W_E 4
#else
typedef u16 w_t;
typedef uint4 wpack;
#define W_E 8
#endif
#define W_Q (W_E / 4)  // float4s per 16-byte load of W

__device__ __forceinline__ float rows_w_f32(w_t v) {
#if ROWS_WDT == DT_F32
    return v;
#elif ROWS_WDT == DT_F16
    return f16_to_f32(v);
#else
    return bf16_to_f32(v);
#endif
}

// Elements 4q .. 4q + 3 of a 16-byte load of W as f32 (q < W_Q).
__device__ __forceinline__ float4 rows_wq(const wpack& v, int q) {
#if ROWS_WDT == DT_F32
    return v;
#else
    const unsigned lo = q ? v.z : v.x, hi = q ? v.w : v.y;
    return make_float4(rows_w_f32((u16)(lo & 0xffff)), rows_w_f32((u16)(lo >> 16)), rows_w_f32((u16)(hi & 0xffff)),
                       rows_w_f32((u16)(hi >> 16)));
#endif
}

// Elements k .. k + W_E - 1 of a W row (zeros from K on) packed as one
// 16-byte load of W.
__device__ __forceinline__ wpack rows_wtail(const w_t* row, int k, int K) {
    w_t t[W_E];
#pragma unroll
    for (int j = 0; j < W_E; ++j) t[j] = k + j < K ? __ldg(row + k + j) : (w_t)0;
#if ROWS_WDT == DT_F32
    return make_float4(t[0], t[1], t[2], t[3]);
#else
    return make_uint4(t[0] | (unsigned)t[1] << 16, t[2] | (unsigned)t[3] << 16, t[4] | (unsigned)t[5] << 16,
                      t[6] | (unsigned)t[7] << 16);
#endif
}

#define ROWS_N 32  // W rows per block
#define ROWS_PER_WARP (MR >= 8 ? 2 : 4)
#define ROWS_THREADS (ROWS_N / ROWS_PER_WARP * 32)

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

// One float global -> shared, zero-filled where `bytes` is 0.
__device__ __forceinline__ void rows_cp_async4(float* dst, const float* src, int bytes) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_u32(dst)), "l"(src), "r"(bytes));
}

// AVEC: A K-contiguous in 16-byte aligned groups of 4, copied 16 bytes at a
// time; otherwise element by element, any strides.
template <int MR, int KCP, bool AVEC>
__device__ __forceinline__ void gemm_f32_rows(const float* a, Operand ga, const w_t* b, Operand gb,
                                              const Epilogue& e, const void* c, void* d, const void* bias, int M,
                                              int N, int K, float* partial) {
    constexpr int H = KCP / (32 * W_E);  // 16-byte loads per lane, W row and chunk
    constexpr int VEC = AVEC ? 4 : 1;
    constexpr int GROUPS = MR * KCP / VEC;  // A's copies per chunk
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

    const w_t* wr[ROWS_PER_WARP];
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

    auto load_w = [&](wpack(&w)[ROWS_PER_WARP][H], int ch) {
#pragma unroll
        for (int r = 0; r < ROWS_PER_WARP; ++r)
#pragma unroll
            for (int h = 0; h < H; ++h) {
                const int k = ch * KCP + h * 32 * W_E + lane * W_E;
                if (k + W_E - 1 < K) {
                    w[r][h] = __ldg((const wpack*)(wr[r] + k));
                } else {
                    w[r][h] = rows_wtail(wr[r], k, K);
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
                const int m = i / (KCP / VEC), kc = i % (KCP / VEC) * VEC, k = ch * KCP + kc;
                const int left = m < M ? K - k : 0;
                if (AVEC) {
                    const int bytes = left >= 4 ? 16 : left > 0 ? 4 * left : 0;
                    rows_cp_async16(&as[buf][m][kc], bytes ? ar + (i64)m * ga.rs + k : ar, bytes);
                } else {
                    const int bytes = left > 0 ? 4 : 0;
                    rows_cp_async4(&as[buf][m][kc], bytes ? ar + (i64)m * ga.rs + (i64)k * ga.cs : ar, bytes);
                }
            }
        }
        asm volatile("cp.async.commit_group;\n" ::);
    };

    wpack w_next[ROWS_PER_WARP][H];
    if (c_begin < c_end) {
        copy_a(0, c_begin);
        load_w(w_next, c_begin);
    }
#pragma unroll 1
    for (int ch = c_begin; ch < c_end; ++ch) {
        const int buf = (ch - c_begin) & 1;
        wpack w[ROWS_PER_WARP][H];
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
            for (int q = 0; q < W_Q; ++q) {
                float4 wf[ROWS_PER_WARP];
#pragma unroll
                for (int r = 0; r < ROWS_PER_WARP; ++r) wf[r] = rows_wq(w[r][h], q);
#pragma unroll
                for (int m = 0; m < MR; ++m) {
                    const float4 x = *(const float4*)&as[buf][m][h * 32 * W_E + lane * W_E + 4 * q];
#pragma unroll
                    for (int r = 0; r < ROWS_PER_WARP; ++r) {
                        acc[r][m] = fmaf(x.x, wf[r].x, acc[r][m]);
                        acc[r][m] = fmaf(x.y, wf[r].y, acc[r][m]);
                        acc[r][m] = fmaf(x.z, wf[r].z, acc[r][m]);
                        acc[r][m] = fmaf(x.w, wf[r].w, acc[r][m]);
                    }
                }
            }
    }
    rows_store<MR>(acc, lane, n0, z, M, N, partial, e, c, d, bias);
}

#define GEMM_F32_ROWS(KCP, MR, AVEC, SUFFIX)                                                                       \
    extern "C" __global__ void __launch_bounds__(ROWS_N / ((MR) >= 8 ? 2 : 4) * 32, ((MR) >= 8 ? 1 : 2))          \
        gemm_f32_rows_k##KCP##_m##MR##SUFFIX(const float* a, Operand ga, const w_t* b, Operand gb, Epilogue e,     \
                                             const void* c, void* d, const void* bias, int M, int N, int K,       \
                                             float* partial) {                                                     \
        gemm_f32_rows<MR, KCP, AVEC>(a, ga, b, gb, e, c, d, bias, M, N, K, partial);                              \
    }
#if ROWS_WDT == DT_F32
// A K-contiguous and aligned: 256- and 128-column chunks; any other A (not
// the hot path): 256-column chunks only.
GEMM_F32_ROWS(256, 1, true, )
GEMM_F32_ROWS(256, 2, true, )
GEMM_F32_ROWS(256, 4, true, )
GEMM_F32_ROWS(256, 8, true, )
GEMM_F32_ROWS(256, 16, true, )
GEMM_F32_ROWS(128, 1, true, )
GEMM_F32_ROWS(128, 2, true, )
GEMM_F32_ROWS(128, 4, true, )
GEMM_F32_ROWS(128, 8, true, )
GEMM_F32_ROWS(128, 16, true, )
GEMM_F32_ROWS(256, 1, false, _s)
GEMM_F32_ROWS(256, 2, false, _s)
GEMM_F32_ROWS(256, 4, false, _s)
GEMM_F32_ROWS(256, 8, false, _s)
GEMM_F32_ROWS(256, 16, false, _s)
#else
// f16 / bf16 W: two 16-byte loads per lane and row in flight, as in f32,
// take 512-column chunks (A's two buffers: 32 KB at MR 8); at MR 16 (64 KB,
// past the static shared-memory limit) one load in 256 columns. Chunks
// narrower than a warp's 256-column load do not exist: K <= 256 takes 256.
// Any other A: 256-column chunks (at 512 its element copies spill).
GEMM_F32_ROWS(512, 1, true, )
GEMM_F32_ROWS(512, 2, true, )
GEMM_F32_ROWS(512, 4, true, )
GEMM_F32_ROWS(512, 8, true, )
GEMM_F32_ROWS(256, 16, true, )
GEMM_F32_ROWS(256, 1, true, )
GEMM_F32_ROWS(256, 2, true, )
GEMM_F32_ROWS(256, 4, true, )
GEMM_F32_ROWS(256, 8, true, )
GEMM_F32_ROWS(256, 1, false, _s)
GEMM_F32_ROWS(256, 2, false, _s)
GEMM_F32_ROWS(256, 4, false, _s)
GEMM_F32_ROWS(256, 8, false, _s)
GEMM_F32_ROWS(256, 16, false, _s)
#endif
