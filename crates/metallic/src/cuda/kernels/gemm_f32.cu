// Our GEMM for f32 operands, in three kinds of arithmetic (GEMM_MATH):
//   exact (0): fp32 FMA on the CUDA cores, the result cuBLAS's SGEMM gives
//     with TF32 off; each thread accumulates an 8x8 micro-tile.
//   tf32 (1): `mma.sync.m16n8k8` on the tensor cores with operands rounded
//     to TF32 (10-bit mantissa, PTX ISA "Floating Point Data Types: tf32")
//     and f32 accumulation; only ever run when asked for by name.
//   dmma (2): the f64 tensor cores (`mma.sync.m16n8k8.f64`, sm_90; four
//     m8n8k4 on sm_80): each f32 operand widened to f64 exactly as its
//     fragment is read from shared memory, products exact and summed in
//     f64, the sum rounded to f32 once. At least as accurate as the exact
//     kernel; on Hopper the f64 tensor cores' rate (67 TFLOP/s on an H100
//     SXM) is the CUDA cores' fp32 FMA rate without their instruction-issue
//     bound. Its own pipeline (see `DMMA pipeline` below).
//
// One module per tile, specialised by defines (set by the host wrapper,
// cuda/ops/matmul/f32.rs):
//   GEMM_NAME    kernel name prefix, e.g. gemm_f32_simt_128x128x8 (it encodes the tile)
//   GEMM_BM, GEMM_BN, GEMM_BK   block tile (BK a multiple of 8)
//   GEMM_MATH    0 (exact), 1 (tf32 tensor cores) or 2 (f64 tensor cores)
//   GEMM_STAGES  the f64 kernel's shared-memory stages (the others have two)
//
// Each module holds five kernels (the f64 one two, `_kk` and `_ss`), one
// per operand layout pair, suffixed `_<a><b>`: A is `k` (row-major [M, K], K contiguous), `m` (stored
// transposed, M contiguous); B is `k` (the transpose of a row-major [N, K]
// weight, K contiguous) or `n` (row-major [K, N], N contiguous); `_ss` takes
// any strides. Contiguous layouts load 16 bytes at a time; the host sends
// one only when its base address, offset, other stride and batch stride keep
// every 4-element group 16-byte aligned. A group that crosses the M, N or K
// edge is read element by element (zeros past the edge).
//
// Both operands sit in shared memory K-major (As[k][m], Bs[k][n], rows
// padded), so the inner loop reads 4 consecutive M (or N) values
// per 16-byte load; a K-contiguous operand is transposed on the way in. Two
// shared-memory buffers: the global loads of tile k + 1 are in flight (in
// registers) while tile k is multiplied, one barrier per tile.
//
// The epilogue (matmul_epilogue.cuh) runs from the f32 tile staged in the
// same shared memory, half the rows at a time, in a rolled loop (stores
// coalesced along N, its code emitted once). With split K (gridDim.y > 1)
// each block writes its f32 partial tile instead, and matmul.cu's
// gemm_splitk_epilogue sums the splits and applies the epilogue.

#define LAYOUT_X 0        // contiguous along M (A) or N (B)
#define LAYOUT_K 1        // contiguous along K
#define LAYOUT_STRIDED 2  // any strides, element by element

#define GEMM_TF32 (GEMM_MATH == 1)
#define GEMM_DMMA (GEMM_MATH == 2)
#define GEMM_TC (GEMM_MATH != 0)  // on the tensor cores: 8 warps of mma fragments

// Shared-memory rows padded by 8 floats for the tf32 fragment reads (see
// mma1688), by 4 for the exact kernel: there the transposing stores of a
// K-contiguous operand (4 K rows of 8 columns per warp and store) land 2
// ways deep in one bank instead of 4.
#if GEMM_TF32
#define PAD 8
#else
#define PAD 4
#endif
typedef float Smem;
#define LDA (GEMM_BM + PAD)
#define LDB (GEMM_BN + PAD)
#define LDC (GEMM_BN + 4)  // staged output rows
#define GROUP_M 8          // block rows swept together (L2 reuse of B)

#if GEMM_TC
// 8 warps of 64x32 (2 along M, 4 along N).
#define WARPS_N 4
#define WM (GEMM_BM / 2)
#define WN (GEMM_BN / WARPS_N)
#define THREADS 256
#define MT (WM / 16)  // m16 tiles per warp
#define NT (WN / 8)   // n8 tiles per warp
#else
// One thread per 8x8 outputs: rows ty * 4 + i and BM / 2 + ty * 4 + i,
// columns tx * 4 + j and BN / 2 + tx * 4 + j (i, j < 4). The split keeps the
// 16-byte shared-memory reads of a warp on consecutive addresses.
#define TX (GEMM_BN / 8)
#define TY (GEMM_BM / 8)
#define THREADS (TX * TY)
#endif
// Two 256-thread blocks per SM (at most 128 registers a thread); the TF32
// tile with K steps of 32 spills under that cap, so it gets one, as does
// the f64 one (its 64 f64 accumulators alone are 128 registers).
#if (GEMM_TF32 && GEMM_BK > 16) || GEMM_DMMA
#define MIN_BLOCKS 1
#else
#define MIN_BLOCKS (THREADS >= 256 ? 2 : 1024 / THREADS / 2)
#endif

#if (GEMM_BK % 8) || (GEMM_BM * GEMM_BK) % (4 * THREADS) || (GEMM_BN * GEMM_BK) % (4 * THREADS)
#error "unsupported gemm_f32 tile"
#endif

// Dynamic shared memory (the host's F32Tile::shared_bytes): the A and B
// tiles' buffers (two K-major ones; the f64 kernel's GEMM_STAGES of rows
// along K, LDK floats each), or half the f32 output tile staged for the
// epilogue.
#if GEMM_DMMA
#define LDK (GEMM_BK + 4)
#define STAGES GEMM_STAGES
#define A_TILE (GEMM_BM * LDK)
#define B_TILE (GEMM_BN * LDK)
#define PIPE_BYTES (STAGES * (A_TILE + B_TILE) * 4)
#else
#define PIPE_BYTES (2 * GEMM_BK * (LDA + LDB) * (int)sizeof(Smem))
#endif
#define STAGE_BYTES (GEMM_BM / 2 * LDC * 4)
#define SMEM_BYTES (PIPE_BYTES > STAGE_BYTES ? PIPE_BYTES : STAGE_BYTES)

// An operand element as shared memory holds it: rounded to TF32 for the
// TF32 tensor cores (once per element here rather than once per fragment
// read).
__device__ __forceinline__ Smem to_smem(float x) {
#if GEMM_TF32
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
    return __uint_as_float(r);
#else
    return x;
#endif
}

// Moves one operand's BK x BX tiles from global into shared memory (S[k][x],
// row length LD) through registers. X is M for A and N for B; `xs` and `ks`
// are the strides along X and K. Each thread owns V groups of 4 elements,
// 4 consecutive along the contiguous dimension (along X when strided).
template <int LAYOUT, int BX, int LD>
struct TileLoader {
    static constexpr int V = GEMM_BK * BX / (4 * THREADS);
    static constexpr int KG = GEMM_BK / 4;  // 4-groups per row along K
    const float* p[V];                      // group start at k = 0
    int x[V], k[V];                         // group start within the tile
    i64 xs, ks;
    int x_left;
    float4 v[V];

    __device__ __forceinline__ TileLoader(const float* base, i64 xs_, i64 ks_, int x_left_)
        : xs(xs_), ks(ks_), x_left(x_left_) {
#pragma unroll
        for (int i = 0; i < V; ++i) {
            const int g = threadIdx.x + i * THREADS;
            if (LAYOUT == LAYOUT_K) {
                // A warp reads 32 / KG rows, each KG * 16 contiguous bytes.
                x[i] = g / KG;
                k[i] = (g % KG) * 4;
            } else {
                // A warp reads 128 consecutive X of one K row.
                x[i] = (g % (BX / 4)) * 4;
                k[i] = g / (BX / 4);
            }
            p[i] = base + x[i] * xs + k[i] * ks;
        }
    }

    // The tile starting at column k0 of K into registers.
    __device__ __forceinline__ void load(int k0, int K) {
#pragma unroll
        for (int i = 0; i < V; ++i) {
            const float* q = p[i] + k0 * ks;
            const int kk = k0 + k[i];
            float e[4];
            if (LAYOUT == LAYOUT_K && x[i] < x_left && kk + 3 < K) {
                v[i] = __ldg((const float4*)q);
                continue;
            }
            if (LAYOUT == LAYOUT_X && kk < K && x[i] + 3 < x_left) {
                v[i] = __ldg((const float4*)q);
                continue;
            }
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const bool in = LAYOUT == LAYOUT_K ? (x[i] < x_left && kk + j < K) : (x[i] + j < x_left && kk < K);
                const i64 step = LAYOUT == LAYOUT_K ? j * ks : j * xs;
                e[j] = in ? __ldg(q + step) : 0.0f;
            }
            v[i] = make_float4(e[0], e[1], e[2], e[3]);
        }
    }

    // The registers into the shared-memory tile s (see to_smem).
    __device__ __forceinline__ void store(Smem* s) const {
#pragma unroll
        for (int i = 0; i < V; ++i) {
            const Smem t[4] = {to_smem(v[i].x), to_smem(v[i].y), to_smem(v[i].z), to_smem(v[i].w)};
            if (LAYOUT == LAYOUT_K) {
#pragma unroll
                for (int j = 0; j < 4; ++j) s[(k[i] + j) * LD + x[i]] = t[j];
            } else {
                *(float4*)(s + k[i] * LD + x[i]) = make_float4(t[0], t[1], t[2], t[3]);
            }
        }
    }
};

#if GEMM_TC
// D (16x8) += A (16x8) * B (8x8); fragment layouts in PTX ISA, "Matrix
// Fragments for mma.m16n8k8" (.tf32, and .f64, the same positions): with
// g = lane / 4 and t = lane % 4, a0 (g, t), a1 (g + 8, t), a2 (g, t + 4),
// a3 (g + 8, t + 4); b0 (k t, n g), b1 (k t + 4, n g); c0, c1 (g, 2t,
// 2t + 1), c2, c3 (g + 8, ..). TF32: with rows of LD = 8 mod 32 floats,
// the 32 lanes' (t, g) reads land in 32 different banks.
#if GEMM_TF32
typedef float AccT;
__device__ __forceinline__ void mma1688(float (&d)[4], const Smem (&a)[4], Smem b0, Smem b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(__float_as_uint(a[0])), "r"(__float_as_uint(a[1])), "r"(__float_as_uint(a[2])),
          "r"(__float_as_uint(a[3])), "r"(__float_as_uint(b0)), "r"(__float_as_uint(b1)));
}
#else
typedef double AccT;
#if __CUDA_ARCH__ < 900
// D (8x8) += A (8x4) * B (4x8) in f64: a (g, t), b (k t, n g), d0, d1
// (g, 2t, 2t + 1).
__device__ __forceinline__ void mma884(double& d0, double& d1, double a, double b) {
    asm volatile("mma.sync.aligned.m8n8k4.row.col.f64.f64.f64.f64 {%0, %1}, {%2}, {%3}, {%0, %1};\n"
                 : "+d"(d0), "+d"(d1)
                 : "d"(a), "d"(b));
}
#endif
__device__ __forceinline__ void mma1688(double (&d)[4], const double (&a)[4], double b0, double b1) {
#if __CUDA_ARCH__ >= 900
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f64.f64.f64.f64 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+d"(d[0]), "+d"(d[1]), "+d"(d[2]), "+d"(d[3])
        : "d"(a[0]), "d"(a[1]), "d"(a[2]), "d"(a[3]), "d"(b0), "d"(b1));
#else
    // Rows g and g + 8 times K columns t and t + 4.
    mma884(d[0], d[1], a[0], b0);
    mma884(d[2], d[3], a[1], b0);
    mma884(d[0], d[1], a[2], b1);
    mma884(d[2], d[3], a[3], b1);
#endif
}
#endif

struct Acc {
    AccT c[MT][NT][4];
};

#if GEMM_DMMA
// One stage of the f64 kernel: A's and B's rows along K (as[m][k],
// bs[n][k], LDK floats apart), each fragment element widened to f64 as it
// is read. The 8 K columns of each k8 step are permuted: the fragments'
// K index t (0..3) is column 2t, and t + 4 is column 2t + 1 (the same for
// A and B, so the sum is the same), so that a0 and a2 (a1 and a3, b0 and
// b1) are one 8-byte read. With rows LDK = 4 mod 32 floats apart, the 16
// lanes (g < 4 or g >= 4, t < 4) of each half-warp's read cover the 32
// banks once.
__device__ __forceinline__ void multiply_stage(Acc& acc, const float* as, const float* bs) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int wm = (warp / WARPS_N) * WM, wn = (warp % WARPS_N) * WN;
    const float* a0 = as + (wm + g) * LDK + 2 * t;
    const float* b0 = bs + (wn + g) * LDK + 2 * t;
#pragma unroll
    for (int ks = 0; ks < GEMM_BK; ks += 8) {
        double af[MT][4], bf[NT][2];
#pragma unroll
        for (int i = 0; i < MT; ++i) {
            const float2 lo = *(const float2*)(a0 + i * 16 * LDK + ks);
            const float2 hi = *(const float2*)(a0 + (i * 16 + 8) * LDK + ks);
            af[i][0] = lo.x;
            af[i][2] = lo.y;
            af[i][1] = hi.x;
            af[i][3] = hi.y;
        }
#pragma unroll
        for (int j = 0; j < NT; ++j) {
            const float2 v = *(const float2*)(b0 + j * 8 * LDK + ks);
            bf[j][0] = v.x;
            bf[j][1] = v.y;
        }
#pragma unroll
        for (int i = 0; i < MT; ++i)
#pragma unroll
            for (int j = 0; j < NT; ++j) mma1688(acc.c[i][j], af[i], bf[j][0], bf[j][1]);
    }
}

// Copies one operand's BX x BK tiles from global into a stage's rows along K
// (S[x][k], LDK floats apart) with cp.async, zeros past K and past the
// operand's rows (X: M for A, N for B; `xs` and `ks` the strides along X and
// K). VEC: K-contiguous in 16-byte aligned groups of 4, copied 16 bytes at
// a time (8 lanes a row of 32 floats: 128 contiguous bytes each way);
// otherwise element by element, any strides.
template <bool VEC, int BX>
struct StageCopier {
    static constexpr int PER = VEC ? 4 : 1;  // floats a copy
    static constexpr int V = BX * GEMM_BK / PER / THREADS;
    const float* base;
    i64 xs, ks;
    int x_left;

    __device__ __forceinline__ void copy(float* s, int k0, int K) const {
#pragma unroll
        for (int i = 0; i < V; ++i) {
            const int q = threadIdx.x + i * THREADS;
            const int x = q / (GEMM_BK / PER), kc = q % (GEMM_BK / PER) * PER, k = k0 + kc;
            const int left = x < x_left ? K - k : 0;
            const unsigned dst = smem_u32(s + x * LDK + kc);
            if (VEC) {
                const int bytes = left >= 4 ? 16 : left > 0 ? 4 * left : 0;
                const float* src = bytes ? base + x * xs + k : base;
                asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes));
            } else {
                const int bytes = left > 0 ? 4 : 0;
                const float* src = bytes ? base + x * xs + (i64)k * ks : base;
                asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(bytes));
            }
        }
    }
};

template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
#else
__device__ __forceinline__ void multiply_tile(Acc& acc, const Smem* as, const Smem* bs) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int wm = (warp / WARPS_N) * WM, wn = (warp % WARPS_N) * WN;
#pragma unroll
    for (int ks = 0; ks < GEMM_BK; ks += 8) {
        Smem af[MT][4], bf[NT][2];
        const Smem* a0 = as + (ks + t) * LDA + wm + g;
        const Smem* b0 = bs + (ks + t) * LDB + wn + g;
#pragma unroll
        for (int i = 0; i < MT; ++i) {
            af[i][0] = a0[i * 16];
            af[i][1] = a0[i * 16 + 8];
            af[i][2] = a0[4 * LDA + i * 16];
            af[i][3] = a0[4 * LDA + i * 16 + 8];
        }
#pragma unroll
        for (int j = 0; j < NT; ++j) {
            bf[j][0] = b0[j * 8];
            bf[j][1] = b0[4 * LDB + j * 8];
        }
#pragma unroll
        for (int i = 0; i < MT; ++i)
#pragma unroll
            for (int j = 0; j < NT; ++j) mma1688(acc.c[i][j], af[i], bf[j][0], bf[j][1]);
    }
}
#endif

// Rows [H * BM / 2, (H + 1) * BM / 2) of the block tile into cs: the warps
// of warp row H.
template <int H>
__device__ __forceinline__ void stage_half(const Acc& acc, float* cs) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    if (warp / WARPS_N != H) return;
    const int wn = (warp % WARPS_N) * WN;
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j) {
            const int r = i * 16 + g, col = wn + j * 8 + 2 * t;
            *(float2*)(cs + r * LDC + col) = make_float2((float)acc.c[i][j][0], (float)acc.c[i][j][1]);
            *(float2*)(cs + (r + 8) * LDC + col) = make_float2((float)acc.c[i][j][2], (float)acc.c[i][j][3]);
        }
}
#else
struct Acc {
    float c[8][8];
};

// One K tile: per k, two 16-byte reads of A and two of B, 64 FMAs. The next
// k's fragments are read before this k's FMAs (register double buffering).
__device__ __forceinline__ void multiply_tile(Acc& acc, const Smem* as, const Smem* bs) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    // A warp is 4 x 8 threads: its 16-byte reads touch 4 (A) and 8 (B)
    // addresses, one shared-memory wavefront each.
    const int tx = (warp % (TX / 8)) * 8 + lane % 8, ty = (warp / (TX / 8)) * 4 + lane / 8;
    float a[2][8], b[2][8];
    auto frag = [&](int kk, float(&fa)[8], float(&fb)[8]) {
        const float4 a0 = *(const float4*)(as + kk * LDA + ty * 4);
        const float4 a1 = *(const float4*)(as + kk * LDA + GEMM_BM / 2 + ty * 4);
        const float4 b0 = *(const float4*)(bs + kk * LDB + tx * 4);
        const float4 b1 = *(const float4*)(bs + kk * LDB + GEMM_BN / 2 + tx * 4);
        fa[0] = a0.x, fa[1] = a0.y, fa[2] = a0.z, fa[3] = a0.w;
        fa[4] = a1.x, fa[5] = a1.y, fa[6] = a1.z, fa[7] = a1.w;
        fb[0] = b0.x, fb[1] = b0.y, fb[2] = b0.z, fb[3] = b0.w;
        fb[4] = b1.x, fb[5] = b1.y, fb[6] = b1.z, fb[7] = b1.w;
    };
    frag(0, a[0], b[0]);
#pragma unroll
    for (int kk = 0; kk < GEMM_BK; ++kk) {
        if (kk + 1 < GEMM_BK) frag(kk + 1, a[(kk + 1) % 2], b[(kk + 1) % 2]);
#pragma unroll
        for (int i = 0; i < 8; ++i)
#pragma unroll
            for (int j = 0; j < 8; ++j) acc.c[i][j] = fmaf(a[kk % 2][i], b[kk % 2][j], acc.c[i][j]);
    }
}

// Rows [H * BM / 2, (H + 1) * BM / 2) of the block tile into cs: each
// thread's rows of half H.
template <int H>
__device__ __forceinline__ void stage_half(const Acc& acc, float* cs) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int tx = (warp % (TX / 8)) * 8 + lane % 8, ty = (warp / (TX / 8)) * 4 + lane / 8;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const float* c = acc.c[H * 4 + i];
        float* row = cs + (ty * 4 + i) * LDC;
        *(float4*)(row + tx * 4) = make_float4(c[0], c[1], c[2], c[3]);
        *(float4*)(row + GEMM_BN / 2 + tx * 4) = make_float4(c[4], c[5], c[6], c[7]);
    }
}
#endif

template <int LA, int LB>
__device__ __forceinline__ void gemm_f32(const float* a, Operand ga, const float* b, Operand gb, const Epilogue& e,
                                         const void* c, void* d, const void* bias, int M, int N, int K,
                                         float* partial) {
    extern __shared__ __align__(16) float smem[];
    // Split K: gemm_splitk_epilogue, launched as this kernel's dependent,
    // may be scheduled once every block has started.
    if (partial) grid_dependents_may_start();

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
    // writes its f32 partial tile; gemm_splitk_epilogue (matmul.cu) sums them.
    const int kt_all = (K + GEMM_BK - 1) / GEMM_BK;
    const int kt_per = (kt_all + gridDim.y - 1) / gridDim.y;
    const int kt_begin = min(kt_all, (int)blockIdx.y * kt_per);
    const int kt_count = min(kt_all, kt_begin + kt_per) - kt_begin;
    const i64 kb = (i64)kt_begin * GEMM_BK;
    K -= kt_begin * GEMM_BK;

    const float* const a_tile = a + ga.off + z * ga.bs + m0 * ga.rs + kb * ga.cs;
    const float* const b_tile = b + gb.off + z * gb.bs + n0 * gb.cs + kb * gb.rs;
    Acc acc = {};
#if GEMM_DMMA
    // DMMA pipeline: STAGES buffers filled by cp.async, STAGES - 1 K tiles
    // in flight while one is multiplied, one barrier per K tile; every
    // iteration commits one group (empty past the last tile) so that
    // waiting for all but STAGES - 2 groups always means this tile's.
    const StageCopier<LA == LAYOUT_K, GEMM_BM> copy_a{a_tile, ga.rs, ga.cs, M - m0};
    const StageCopier<LB == LAYOUT_K, GEMM_BN> copy_b{b_tile, gb.cs, gb.rs, N - n0};
    float* const fs = smem;
    auto fill = [&](int kt) {
        if (kt < kt_count) {
            const int st = kt % STAGES;
            copy_a.copy(fs + st * A_TILE, kt * GEMM_BK, K);
            copy_b.copy(fs + STAGES * A_TILE + st * B_TILE, kt * GEMM_BK, K);
        }
        asm volatile("cp.async.commit_group;\n" ::: "memory");
    };
#pragma unroll
    for (int kt = 0; kt < STAGES - 1; ++kt) fill(kt);
#pragma unroll 1
    for (int kt = 0; kt < kt_count; ++kt) {
        cp_async_wait<STAGES - 2>();
        // Also: every warp is done with the stage the fill below overwrites
        // (tile kt - 1's).
        __syncthreads();
        fill(kt + STAGES - 1);
        const int st = kt % STAGES;
        multiply_stage(acc, fs + st * A_TILE, fs + STAGES * A_TILE + st * B_TILE);
    }
    cp_async_wait<0>();
    __syncthreads();
#else
    TileLoader<LA, GEMM_BM, LDA> load_a(a_tile, ga.rs, ga.cs, M - m0);
    TileLoader<LB, GEMM_BN, LDB> load_b(b_tile, gb.cs, gb.rs, N - n0);
    Smem* const pipe = smem;
    // Buffer i: A at pipe + i * A_BUF, B at pipe + 2 * A_BUF + i * B_BUF.
    constexpr int A_BUF = GEMM_BK * LDA, B_BUF = GEMM_BK * LDB;
    Smem* const bs0 = pipe + 2 * A_BUF;

    load_a.load(0, K);
    load_b.load(0, K);
    load_a.store(pipe);
    load_b.store(bs0);
    __syncthreads();
#pragma unroll 1
    for (int kt = 0; kt < kt_count; ++kt) {
        const int cur = kt & 1;
        const bool more = kt + 1 < kt_count;
        if (more) {
            load_a.load((kt + 1) * GEMM_BK, K);
            load_b.load((kt + 1) * GEMM_BK, K);
        }
        multiply_tile(acc, pipe + cur * A_BUF, bs0 + cur * B_BUF);
        if (more) {
            // The other buffer was last read in iteration kt - 1, before its
            // closing barrier.
            load_a.store(pipe + (cur ^ 1) * A_BUF);
            load_b.store(bs0 + (cur ^ 1) * B_BUF);
        }
        __syncthreads();
    }
#endif

    float* cs = smem;
#pragma unroll 1
    for (int h = 0; h < 2; ++h) {
        // A compile-time half: indexing the accumulators with a run-time
        // one would move them to local memory.
        if (h == 0) {
            stage_half<0>(acc, cs);
        } else {
            stage_half<1>(acc, cs);
        }
        __syncthreads();
#pragma unroll 1
        for (int idx = threadIdx.x; idx < GEMM_BM / 2 * GEMM_BN / 2; idx += THREADS) {
            const int r = idx / (GEMM_BN / 2), col = (idx % (GEMM_BN / 2)) * 2;
            const int m = m0 + h * GEMM_BM / 2 + r, n = n0 + col;
            if (m >= M || n >= N) continue;
            const float v0 = cs[r * LDC + col], v1 = cs[r * LDC + col + 1];
            if (partial) {
                float* out = partial + ((i64)blockIdx.y * gridDim.z + z) * M * N + (i64)m * N + n;
                out[0] = v0;
                if (n + 1 < N) out[1] = v1;
            } else if (n + 1 < N) {
                epilogue_pair(e, c, d, bias, z, m, n, v0, v1);
            } else {
                epilogue_store(e, c, d, bias, z, m, n, v0);
            }
        }
        __syncthreads();
    }
}

#define CAT3(a, b, c) a##b##c
#define KERNEL_NAME(prefix, suffix) CAT3(prefix, _, suffix)
#define GEMM_F32(suffix, LA, LB)                                                                                      \
    extern "C" __global__ void __launch_bounds__(THREADS, MIN_BLOCKS)                                                 \
        KERNEL_NAME(GEMM_NAME, suffix)(const float* a, Operand ga, const float* b, Operand gb, Epilogue e,            \
                                       const void* c, void* d, const void* bias, int M, int N, int K,                \
                                       float* partial) {                                                             \
        gemm_f32<LA, LB>(a, ga, b, gb, e, c, d, bias, M, N, K, partial);                                             \
    }
GEMM_F32(kk, LAYOUT_K, LAYOUT_K)
#if !GEMM_DMMA
GEMM_F32(kn, LAYOUT_K, LAYOUT_X)
GEMM_F32(mk, LAYOUT_X, LAYOUT_K)
GEMM_F32(mn, LAYOUT_X, LAYOUT_X)
#endif
GEMM_F32(ss, LAYOUT_STRIDED, LAYOUT_STRIDED)
