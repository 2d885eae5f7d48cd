// Our tensor-core GEMM for f16 / bf16 operands with f32 accumulation:
// `mma.sync.aligned.m16n8k16` fed by `ldmatrix` from a multi-stage
// `cp.async` shared-memory pipeline (sm_80 and newer; on Hopper the wgmma
// path is the goal, this is the portable one).
//
// One module per tile configuration and dtype, specialised by defines (set
// by the host wrapper, cuda/ops/matmul/mma.rs):
//   GEMM_NAME    kernel name, e.g. gemm_bf16_mma_128x128x32 (it encodes the tile)
//   GEMM_DT      DT_F16 or DT_BF16 (both operands)
//   GEMM_BM, GEMM_BN, GEMM_BK   block tile (BK = 32 or 64)
//   GEMM_WM, GEMM_WN            warp tile (WM a multiple of 16, WN of 16)
//   GEMM_STAGES  shared-memory pipeline depth
//   GEMM_BQ      (optional) B is a GGUF block weight of this type (QT_* in
//                quant.cuh, which the module then includes); GEMM_DT is f16
//
// With GEMM_BQ, B's tiles are decoded from the weight's blocks into the same
// f16 shared-memory layout (QuantLoader below): the block-weight product at
// M > 16 (a prefill) on the tensor cores, A rounded to f16 by the host
// first, the weight's values rounded to f16 as they are decoded, never a
// whole dequantized weight in memory. gb then describes the weight in
// bytes: off (batch 0's first row), cs (bytes between rows), bs (between
// batches). a_scale (null, or where A is an f16 copy of f32 rows: the block
// weights' products and the f16 weights' mixed pairs) holds a power of two
// per row of A (M a batch, one set where A is broadcast) that the host
// divided the row by before rounding it to f16, so that it fits f16's range;
// the epilogue multiplies the row's sums back by it.
//
// Layout taken: both operands K-contiguous, the LLM case y = x W^T: A is
// [M, K] with unit column stride, B = W^T with W [N, K] row-major (B's row
// stride, along K, is 1). Row strides, offsets and batch strides are
// multiples of 8 elements so that every 16-byte cp.async is aligned; the
// host checks this and sends everything else to the SIMT kernel. M, N and K
// tails are zero-filled by cp.async's src-size operand (PTX ISA, "cp.async":
// bytes past src-size are written as zeros).
//
// The epilogue (matmul_epilogue.cuh: alpha, bias, beta * C with C possibly D,
// activation, D's dtype) runs from an f32 tile staged in the pipeline's
// shared memory, so the stores are coalesced along N and its code is
// emitted once (a rolled loop) rather than once per accumulator.

#define THREADS ((GEMM_BM / GEMM_WM) * (GEMM_BN / GEMM_WN) * 32)
#define MT (GEMM_WM / 16)  // m16 tiles per warp
#define NT (GEMM_WN / 8)   // n8 tiles per warp
#define CPR (GEMM_BK / 8)  // 16-byte chunks per tile row
#define GROUP_M 16         // block rows swept together (L2 reuse of B)

#if GEMM_DT == DT_BF16
#define MMA_TYPE "bf16"
#else
#define MMA_TYPE "f16"
#endif

#if (GEMM_BK != 32 && GEMM_BK != 64) || (GEMM_WN % 16) || (GEMM_WM % 16)
#error "unsupported gemm_mma tile"
#endif

// Half-element offset of 16-byte chunk `ch` of tile row `row`. The XOR
// swizzle puts the 8 rows one ldmatrix reads (and the chunks one cp.async
// phase writes) in 8 different 16-byte bank groups: rows of 64 bytes (BK 32)
// alias every 2 rows, rows of 128 bytes (BK 64) every row.
__device__ __forceinline__ int swz(int row, int ch) {
#if GEMM_BK == 32
    return row * GEMM_BK + ((ch ^ ((row >> 1) & 3)) << 3);
#else
    return row * GEMM_BK + ((ch ^ (row & 7)) << 3);
#endif
}

__device__ __forceinline__ void cp_async16(unsigned dst, const void* src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes));
}

// Streams `ROWS` x BK tiles of a K-contiguous operand (row r at base + r *
// ld) into shared memory. Each thread owns the same IT 16-byte chunks of
// every tile, so their source pointers, swizzled destinations and row
// predicates are computed once; a tile costs a pointer add, a clamp and the
// cp.async per chunk. Rows past `rows_left` and columns past K are
// zero-filled.
template <int ROWS>
struct TileLoader {
    static constexpr int IT = (ROWS * CPR + THREADS - 1) / THREADS;
    const u16* src[IT];
    unsigned dst[IT];  // byte offset within a stage
    int k8[IT];        // first column of the chunk; INT_MAX-ish when idle
    __device__ __forceinline__ TileLoader(const u16* base, i64 ld, int rows_left) {
#pragma unroll
        for (int i = 0; i < IT; ++i) {
            const int idx = threadIdx.x + i * THREADS;
            const int row = idx / CPR, ch = idx % CPR;
            const bool live = (ROWS * CPR % THREADS == 0 || idx < ROWS * CPR) && row < rows_left;
            src[i] = live ? base + row * ld + ch * 8 : base;
            dst[i] = (idx < ROWS * CPR ? swz(row, ch) : 0) * 2;
            k8[i] = live ? ch * 8 : (1 << 30);
        }
    }
    // Tile starting at column k0 (of `k_end` columns) into the stage at
    // shared address `stage`.
    __device__ __forceinline__ void load(unsigned stage, int k0, int k_end) const {
        if (k0 + GEMM_BK <= k_end) {
            // Every tile but the last along K: no column tail to clamp.
#pragma unroll
            for (int i = 0; i < IT; ++i) {
                if (ROWS * CPR % THREADS == 0 || threadIdx.x + i * THREADS < ROWS * CPR) {
                    const bool live = k8[i] < GEMM_BK;
                    cp_async16(stage + dst[i], live ? src[i] + k0 : src[i], live ? 16 : 0);
                }
            }
            return;
        }
#pragma unroll
        for (int i = 0; i < IT; ++i) {
            if (ROWS * CPR % THREADS == 0 || threadIdx.x + i * THREADS < ROWS * CPR) {
                const int left = k_end - k0 - k8[i];
                const int bytes = left >= 8 ? 16 : (left > 0 ? left * 2 : 0);
                // A zero-byte copy still needs a valid address: the tile's base.
                cp_async16(stage + dst[i], bytes ? src[i] + k0 : src[i], bytes);
            }
        }
    }
};

#ifdef GEMM_BQ
__device__ __forceinline__ void st_shared_v4(unsigned addr, const unsigned (&v)[4]) {
    asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"r"(addr), "r"(v[0]), "r"(v[1]), "r"(v[2]), "r"(v[3]));
}

// Streams `ROWS` x BK tiles of a GGUF block weight (row r at base + r *
// row_bytes, element k of a row in its block k / BE) into shared memory as
// f16, in TileLoader's swizzled layout: each thread owns the same IT runs
// of 8 elements (one 16-byte chunk) of every tile. fetch issues a tile's
// loads (E8<T>::fetch, quant.cuh) into registers and store decodes and
// writes them, so the loads are in flight while the tensor cores work on
// the tile before. Rows past `rows_left` and columns past K are zeros.
template <int ROWS>
struct QuantLoader {
    static constexpr int IT = (ROWS * CPR + THREADS - 1) / THREADS;
    static constexpr int BE = Q<GEMM_BQ>::BE, BB = Q<GEMM_BQ>::BB;
    using E = E8<GEMM_BQ>;
    using Raw = typename E::Raw;
    const u8* row[IT];
    unsigned dst[IT];  // byte offset within a stage
    int k8[IT];        // first column of the chunk; INT_MAX-ish when idle
    int k_base;        // the element of the split's first column
    __device__ __forceinline__ QuantLoader(const u8* base, i64 row_bytes, int rows_left, int kb) : k_base(kb) {
#pragma unroll
        for (int i = 0; i < IT; ++i) {
            const int idx = threadIdx.x + i * THREADS;
            const int r = idx / CPR, ch = idx % CPR;
            const bool live = (ROWS * CPR % THREADS == 0 || idx < ROWS * CPR) && r < rows_left;
            row[i] = base + (live ? r : 0) * row_bytes;
            dst[i] = (idx < ROWS * CPR ? swz(r, ch) : 0) * 2;
            k8[i] = live ? ch * 8 : (1 << 30);
        }
    }
    // The loads of the tile at column k0 (of `k_end`).
    __device__ __forceinline__ void fetch(Raw (&raw)[IT], int k0, int k_end) const {
#pragma unroll
        for (int i = 0; i < IT; ++i) {
            if (k0 + k8[i] < k_end) {
                const int e = k_base + k0 + k8[i];
                raw[i] = E::fetch(row[i] + (i64)(e / BE) * BB, e % BE);
            }
        }
    }
    // That tile decoded into the stage at shared address `stage`.
    __device__ __forceinline__ void store(const Raw (&raw)[IT], unsigned stage, int k0, int k_end) const {
#pragma unroll
        for (int i = 0; i < IT; ++i) {
            if (ROWS * CPR % THREADS == 0 || threadIdx.x + i * THREADS < ROWS * CPR) {
                unsigned v[4] = {0u, 0u, 0u, 0u};
                if (k0 + k8[i] < k_end) {
                    float w[8];
                    E::decode(raw[i], (k_base + k0 + k8[i]) % BE, w);
#pragma unroll
                    for (int h = 0; h < 4; ++h)
                        v[h] = (unsigned)f32_to_f16(w[2 * h]) | ((unsigned)f32_to_f16(w[2 * h + 1]) << 16);
                }
                st_shared_v4(stage + dst[i], v);
            }
        }
    }
};
#endif

__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], unsigned addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

// D (16x8, f32) += A (16x16) * B (16x8); fragment layouts in PTX ISA,
// "Matrix Fragments for mma.m16n8k16 with floating point type".
__device__ __forceinline__ void mma16816(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32." MMA_TYPE "." MMA_TYPE
                 ".f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// The A and B fragments of k16 step `ks` of a warp's tile.
// A: matrices (rows 0-7 | 8-15) x (k 0-7 | 8-15); lane l names row l % 16
// of k-half l / 16. B (stored [n][k]): matrices (n 0-7, k 0-7), (n 0-7,
// k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15): two n8 tiles per ldmatrix.
__device__ __forceinline__ void load_frags(unsigned (&af)[MT][4], unsigned (&bf)[NT / 2][4], unsigned sa,
                                           unsigned sb, int wm, int wn, int lane, int ks) {
#pragma unroll
    for (int i = 0; i < MT; ++i) ldmatrix_x4(af[i], sa + 2 * swz(wm + i * 16 + lane % 16, ks * 2 + lane / 16));
#pragma unroll
    for (int j = 0; j < NT / 2; ++j)
        ldmatrix_x4(bf[j], sb + 2 * swz(wn + j * 16 + lane % 8 + (lane / 16) * 8, ks * 2 + (lane / 8) % 2));
}

// The last split block's sum: tile element (r, col) of the `splits` partial
// planes (`plane` floats apart) into cs[r * ld + col], added in split order.
// Every split's load is issued before the adds, and four columns go per
// load where N allows: one L2 round trip per four elements instead of one
// per element and split (the loop of dependent loads took ~10 us per tile
// at M = 16).
#define SUM_MAX_SPLITS 16
__device__ __forceinline__ void sum_partials(const float* p, i64 plane, int splits, float* cs, int ld, int m0, int n0,
                                             int M, int N) {
    constexpr int QUADS = GEMM_BM * GEMM_BN / 4;
#pragma unroll 1
    for (int q = threadIdx.x; q < QUADS; q += THREADS) {
        const int r = q / (GEMM_BN / 4), col = (q % (GEMM_BN / 4)) * 4;
        const int m = m0 + r, n = n0 + col;
        if (m >= M || n >= N) continue;
        const float* src = p + (i64)m * N + n;
        if (!(N & 3)) {
            float4 v[SUM_MAX_SPLITS];
#pragma unroll
            for (int s = 0; s < SUM_MAX_SPLITS; ++s)
                if (s < splits) v[s] = __ldcg((const float4*)(src + s * plane));
            float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
            for (int s = 0; s < SUM_MAX_SPLITS; ++s)
                if (s < splits) {
                    acc.x += v[s].x;
                    acc.y += v[s].y;
                    acc.z += v[s].z;
                    acc.w += v[s].w;
                }
            *(float4*)(cs + r * ld + col) = acc;
        } else {
            for (int c = 0; c < 4 && n + c < N; ++c) {
                float acc = 0.0f;
                for (int s = 0; s < splits; ++s) acc += __ldcg(src + s * plane + c);
                cs[r * ld + col + c] = acc;
            }
        }
    }
}

extern "C" __global__ void __launch_bounds__(THREADS)
    GEMM_NAME(const void* a, Operand ga, const void* b, Operand gb, Epilogue e, const void* c, void* d,
              const void* bias, int M, int N, int K, float* partial, unsigned* tickets, const float* a_scale) {
    extern __shared__ __align__(128) unsigned char smem[];
    u16* As = (u16*)smem;
    u16* Bs = As + GEMM_STAGES * GEMM_BM * GEMM_BK;

    // Grouped raster: GROUP_M block rows share each sweep along N, so a wave
    // of blocks reads a band of A and a few tiles of B that stay in L2.
    const int tiles_m = (M + GEMM_BM - 1) / GEMM_BM, tiles_n = (N + GEMM_BN - 1) / GEMM_BN;
    const int pid = blockIdx.x, per_group = GROUP_M * tiles_n;
    const int first_m = (pid / per_group) * GROUP_M;
    const int group_m = min(tiles_m - first_m, GROUP_M);
    const int tm = first_m + (pid % per_group) % group_m, tn = (pid % per_group) / group_m;
    const int m0 = tm * GEMM_BM, n0 = tn * GEMM_BN;
    const i64 z = blockIdx.z;

    // Split K: block y of gridDim.y takes an equal share of the K tiles and
    // writes its f32 partial tile ([y][z][M][N] at `partial`); the last block
    // of the tile sums them (`tickets`: one zeroed counter per tile and batch).
    const int kt_all = (K + GEMM_BK - 1) / GEMM_BK;
    const int kt_per = (kt_all + gridDim.y - 1) / gridDim.y;
    const int kt_begin = min(kt_all, (int)blockIdx.y * kt_per);
    const int kt_count = min(kt_all, kt_begin + kt_per) - kt_begin;
    K -= kt_begin * GEMM_BK;

    const TileLoader<GEMM_BM> load_a((const u16*)a + ga.off + z * ga.bs + (i64)m0 * ga.rs + kt_begin * GEMM_BK, ga.rs,
                                     M - m0);
#ifdef GEMM_BQ
    const QuantLoader<GEMM_BN> load_b((const u8*)b + gb.off + z * gb.bs + (i64)n0 * gb.cs, gb.cs, N - n0,
                                      kt_begin * GEMM_BK);
    typename QuantLoader<GEMM_BN>::Raw raw[QuantLoader<GEMM_BN>::IT];
#else
    const TileLoader<GEMM_BN> load_b((const u16*)b + gb.off + z * gb.bs + (i64)n0 * gb.cs + kt_begin * GEMM_BK, gb.cs,
                                     N - n0);
#endif
    const unsigned sA = smem_u32(As), sB = smem_u32(Bs);
    constexpr unsigned A_STAGE = GEMM_BM * GEMM_BK * 2, B_STAGE = GEMM_BN * GEMM_BK * 2;

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int wm = (warp / (GEMM_BN / GEMM_WN)) * GEMM_WM, wn = (warp % (GEMM_BN / GEMM_WN)) * GEMM_WN;

    float acc[MT][NT][4];
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
            for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.0f;

    // Prologue: STAGES - 1 tiles in flight (empty groups past the end keep
    // the wait_group arithmetic uniform).
#pragma unroll
    for (int s = 0; s < GEMM_STAGES - 1; ++s) {
        if (s < kt_count) {
            load_a.load(sA + s * A_STAGE, s * GEMM_BK, K);
#ifdef GEMM_BQ
            load_b.fetch(raw, s * GEMM_BK, K);
            load_b.store(raw, sB + s * B_STAGE, s * GEMM_BK, K);
#else
            load_b.load(sB + s * B_STAGE, s * GEMM_BK, K);
#endif
        }
        asm volatile("cp.async.commit_group;\n" ::);
    }

#pragma unroll 1
    for (int kt = 0; kt < kt_count; ++kt) {
        // Tile kt has landed (at most STAGES - 2 younger groups pending); the
        // barrier also tells every warp that the stage read at kt - 1 is free.
        asm volatile("cp.async.wait_group %0;\n" ::"n"(GEMM_STAGES - 2));
        __syncthreads();
        // The tile STAGES - 1 ahead goes to the stage read at kt - 1.
        const int next = kt + GEMM_STAGES - 1;
        if (next < kt_count) {
            const int s = next % GEMM_STAGES;
            load_a.load(sA + s * A_STAGE, next * GEMM_BK, K);
#ifdef GEMM_BQ
            // Its weight loads fly during this tile's mma; decoded after.
            load_b.fetch(raw, next * GEMM_BK, K);
#else
            load_b.load(sB + s * B_STAGE, next * GEMM_BK, K);
#endif
        }
        asm volatile("cp.async.commit_group;\n" ::);
        const unsigned sa = sA + (kt % GEMM_STAGES) * A_STAGE, sb = sB + (kt % GEMM_STAGES) * B_STAGE;
        // Fragments double-buffered: step ks + 1's ldmatrix is issued before
        // step ks's mma, so shared-memory latency hides behind the math.
        unsigned af[2][MT][4], bf[2][NT / 2][4];
        load_frags(af[0], bf[0], sa, sb, wm, wn, lane, 0);
#pragma unroll
        for (int ks = 0; ks < GEMM_BK / 16; ++ks) {
            if (ks + 1 < GEMM_BK / 16) load_frags(af[(ks + 1) % 2], bf[(ks + 1) % 2], sa, sb, wm, wn, lane, ks + 1);
#pragma unroll
            for (int i = 0; i < MT; ++i)
#pragma unroll
                for (int j = 0; j < NT; ++j)
                    mma16816(acc[i][j], af[ks % 2][i], bf[ks % 2][j / 2][(j % 2) * 2],
                             bf[ks % 2][j / 2][(j % 2) * 2 + 1]);
        }
#ifdef GEMM_BQ
        if (next < kt_count) load_b.store(raw, sB + (next % GEMM_STAGES) * B_STAGE, next * GEMM_BK, K);
#endif
    }
    asm volatile("cp.async.wait_group 0;\n" ::);
    __syncthreads();

    // Stage the f32 tile (rows padded by 4 floats against bank conflicts).
    float* cs = (float*)smem;
    const int ld = GEMM_BN + 4;
    const int g = lane / 4, q = (lane % 4) * 2;
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j) {
            const int r = wm + i * 16 + g, col = wn + j * 8 + q;
            *(float2*)(cs + r * ld + col) = make_float2(acc[i][j][0], acc[i][j][1]);
            *(float2*)(cs + (r + 8) * ld + col) = make_float2(acc[i][j][2], acc[i][j][3]);
        }
    __syncthreads();
    if (partial) {
        float* out = partial + ((i64)blockIdx.y * gridDim.z + z) * M * N;
#pragma unroll 1
        for (int idx = threadIdx.x; idx < GEMM_BM * GEMM_BN; idx += THREADS) {
            const int r = idx / GEMM_BN, col = idx % GEMM_BN;
            const int m = m0 + r, n = n0 + col;
            if (m < M && n < N) out[(i64)m * N + n] = cs[r * ld + col];
        }
        // The last of the tile's gridDim.y blocks to get here sums the
        // partials in split order (the same sum whichever block is last) and
        // runs the epilogue; the others are done. The fence before the
        // ticket makes this block's partial visible to the last one; the
        // last resets the ticket (every other block has taken its own).
        __shared__ int last;
        __threadfence();
        __syncthreads();
        if (threadIdx.x == 0) {
            unsigned* t = tickets + z * gridDim.x + blockIdx.x;
            last = atomicAdd(t, 1u) == gridDim.y - 1;
            if (last) *t = 0;
        }
        __syncthreads();
        if (!last) return;
        __threadfence();
        sum_partials(partial + z * M * N, (i64)gridDim.z * M * N, gridDim.y, cs, ld, m0, n0, M, N);
        __syncthreads();
    }
#pragma unroll 1
    for (int idx = threadIdx.x; idx < GEMM_BM * GEMM_BN / 2; idx += THREADS) {
        const int r = idx / (GEMM_BN / 2), col = (idx % (GEMM_BN / 2)) * 2;
        const int m = m0 + r, n = n0 + col;
        if (m >= M || n >= N) continue;
        float v0 = cs[r * ld + col], v1 = cs[r * ld + col + 1];
        if (a_scale) {
            // A's row was rounded to f16 divided by this power of two
            // (copy.cu round_rows_f16_scaled; a broadcast A has one set).
            const float s = a_scale[(ga.bs ? (i64)z * M : 0) + m];
            v0 *= s;
            v1 *= s;
        }
        if (n + 1 < N) {
            epilogue_pair(e, c, d, bias, z, m, n, v0, v1);
        } else {
            epilogue_store(e, c, d, bias, z, m, n, v0);
        }
    }
}
