// Our Hopper GEMM for f16 / bf16 operands with f32 accumulation: `wgmma`
// reading both operands from 128-byte-swizzled shared memory that the
// tensor memory accelerator (TMA, `cp.async.bulk.tensor`) fills, an mbarrier
// pipeline between one producer thread and two consumer warpgroups, and a
// persistent tile scheduler (sm_90a only: wgmma and setmaxnreg are
// arch-specific; PTX ISA 9.7.15 "Asynchronous Warpgroup Level Matrix
// Multiply-Accumulate", 9.7.9.25 "cp.async.bulk.tensor", 9.7.13.15 "mbarrier").
//
// Specialised by defines (host side: cuda/ops/matmul/wgmma.rs):
//   GEMM_NAME    kernel name, e.g. gemm_bf16_wgmma_128x256x64
//   GEMM_DT      DT_F16 or DT_BF16 (both operands)
//   GEMM_BM      block tile M: 128; 256 (2 consumer warpgroups of 128
//                rows each, no cluster, no ping-pong: half the tiles of a
//                shape, for shapes whose 128-row tiles make a few waves
//                with a partly idle last one); or 64 (1 consumer
//                warpgroup, two blocks per SM, or one whose stages take
//                the SM's shared memory: products of few rows, or of few
//                tiles over a long K)
//   GEMM_BN      a multiple of 16 from 16 to 256 (block tile N; K is 64):
//                128 and 256, widths between them that make the tiles of
//                a shape fill whole waves of SMs, 64, and 16 (products of
//                at most 16 columns: an M <= 16 product transposed)
//   GEMM_STAGES  shared-memory pipeline depth
//   GEMM_CONSUMERS 2 (one block per SM), or 1 (two blocks per SM where
//                their stages fit; BN 128 with BM 128: one consumer
//                warpgroup takes both m64 halves)
//   GEMM_CLUSTER 1, or 2: blocks in clusters of 2 along M that share each
//                B tile, every block loading half of it and multicasting
//                it to both (half the B traffic out of L2)
//   GEMM_CLUSTER_N 1, or 2: likewise along N, sharing each A tile (with
//                GEMM_CLUSTER 2, a 2 x 2 cluster halves both operands'
//                traffic out of L2); BM 64 or 128
//   GEMM_PINGPONG 0, or 1 (BN 128, 2 consumers, no cluster): each consumer
//                warpgroup takes whole 128 x BN tiles, the two alternating,
//                so that one's epilogue runs under the other's main loop
//   GEMM_EPI_BUFS staging buffers of the common epilogue per consumer
//                warpgroup (default 2 with 2 consumers, 1 with 1): as many
//                as a tile's 64-column chunks lets every chunk's TMA store
//                start without waiting for the one before it to have read
//                its buffer (a unit of one K tile is mostly its epilogue)
//
// Layout taken: y = x W^T, both operands K-contiguous (A [M, K], W [N, K],
// row strides and batch strides multiples of 16 bytes, base addresses 16-byte
// aligned: TMA's requirements, checked on the host). The tensor maps are 3-D
// (K, rows, batch); TMA zero-fills every element past K, past the rows and
// past the batch, so tails need no code in the main loop, and the stores are
// bounds-checked. a_scale (null, or one f32 per row of A and per batch of A,
// copy.cu round_rows_f16_scaled; f16 modules only) multiplies each row's sums
// before the epilogue: an f16 copy of f32 activations, each row divided by a
// power of two to fit f16's range.
//
// Roles (a block of 3 warpgroups, one block per SM, the grid no larger than
// the SM count; with GEMM_CONSUMERS 1, 2 warpgroups and two blocks per SM
// where their stages fit):
//   warpgroup 0: one thread issues the TMA loads of every (unit, k tile) in
//     order; the rest of the warpgroup gives its registers away (setmaxnreg).
//   warpgroups 1, 2: each multiplies 64 rows of the 128-row tile (MH = 2
//     m64 blocks of a 256-row tile; the one consumer of a 64-row tile all
//     of it) by all BN columns (m64nBNk16 wgmma, four per 64-wide k tile
//     and m64 block, one commit group
//     per k tile with one group left in flight), then runs the epilogue
//     while the producer already loads the next unit's tiles. The common
//     epilogue (alpha, bias, D in the operands' dtype) packs 64 x 64 chunks
//     into swizzled shared memory and stores each with one TMA store, which
//     runs on while the warpgroup starts the next unit; split-K partials go
//     straight from the registers; the rest (beta * C, activations, other
//     dtypes) goes through a small shared-memory staging buffer and
//     matmul_epilogue.cuh. With GEMM_PINGPONG each of the two takes all 128
//     rows of every other unit of the block instead (m64nBNk16 on both m64
//     halves), and a turn barrier runs their main loops in order.
// A unit is one (split, batch, tile) triple (with clusters: GEMM_CLUSTER x
// GEMM_CLUSTER_N tiles, one per block); units go to blocks (clusters)
// round-robin, in groups of `group` rows of units so that a wave shares A's
// band and B's columns in L2. With `splits` > 1 every unit takes 1/splits of
// the K tiles and writes its f32 partial product; gemm_splitk_epilogue sums.

#ifndef GEMM_BM
#define GEMM_BM 128
#endif
#define BM GEMM_BM
#define BK 64
#ifndef GEMM_CONSUMERS
#define GEMM_CONSUMERS 2
#endif
#ifndef GEMM_PINGPONG
#define GEMM_PINGPONG 0
#endif
#define CONSUMERS GEMM_CONSUMERS
#define THREADS (128 * (CONSUMERS + 1))
// m64 row blocks per consumer warpgroup, and its f32 accumulators per thread.
#define MH (GEMM_PINGPONG ? 2 : BM / 64 / CONSUMERS)
// The first m64 row block of consumer warpgroup `cw` within the tile.
#define WG_MH0(cw) (GEMM_PINGPONG ? 0 : (cw) * MH)
// Consumer warpgroups that read each stage (ping-pong: only the stage's owner).
#define READERS (GEMM_PINGPONG ? 1 : CONSUMERS)
#define ACC (MH * GEMM_BN / 2)
// One consumer warpgroup: two blocks share an SM, so that one block's
// epilogue runs while the other's tensor cores work (the registers of two;
// the deep 64-row tiles, one block per SM by their shared memory, need no
// more).
#define BLOCKS_PER_SM (3 - CONSUMERS)
#define CONSUMER_REGS (CONSUMERS == 2 ? 232 : 216)
#define A_STAGE (BM * BK * 2)
#define B_STAGE (GEMM_BN * BK * 2)
#ifndef GEMM_CLUSTER
#define GEMM_CLUSTER 1
#endif
#ifndef GEMM_CLUSTER_N
#define GEMM_CLUSTER_N 1
#endif
// Blocks of a cluster: rank = GEMM_CLUSTER * (index along N) + index along M.
#define CLUSTER_BLOCKS (GEMM_CLUSTER * GEMM_CLUSTER_N)
// Rows of each B tile (A tile) this block loads and multicasts to the
// blocks of its cluster column (row).
#define B_ROWS (GEMM_BN / GEMM_CLUSTER)
#define A_ROWS (BM / GEMM_CLUSTER_N)
// Ranks 0, GEMM_CLUSTER, 2 GEMM_CLUSTER, ...: cluster row 0.
#define ROW_MASK (GEMM_CLUSTER_N == 2 ? 1 | (1 << GEMM_CLUSTER) : 1)
// Epilogue staging, per consumer warpgroup. The common epilogue (D in the
// operands' dtype) goes through EPI_BUFS buffers of 64 rows x 64 columns
// (8 KB, 128-byte rows in the 128-byte swizzle: TMA's layout for a 64 x 64
// box), so that one chunk is stored while the next is written. The others
// stage 64 rows x 32 columns of f32 (16 where BN is an odd multiple of 16),
// rows padded by 4 floats against bank conflicts, in the same space.
#define EPI_COLS (GEMM_BN % 32 ? 16 : 32)
#define EPI_LD (32 + 4)
#ifdef GEMM_EPI_BUFS
#define EPI_BUFS GEMM_EPI_BUFS
#else
#define EPI_BUFS (CONSUMERS == 2 ? 2 : 1)
#endif
#define EPI_CHUNK 8192
#define EPI_BYTES (EPI_BUFS * EPI_CHUNK > 64 * EPI_LD * 4 ? EPI_BUFS * EPI_CHUNK : 64 * EPI_LD * 4)
// After every consumer's staging space: the bias of the common epilogue's
// current 64-column chunk, per consumer warpgroup (64 floats).
#define EPI_BIAS 64

#if GEMM_DT == DT_BF16
#define MMA_TYPE "bf16"
#else
#define MMA_TYPE "f16"
#endif

#if GEMM_BN % 16 || GEMM_BN < 16 || GEMM_BN > 256
#error "gemm_wgmma: BN must be a multiple of 16 from 16 to 256"
#endif
#if (CONSUMERS != 1 && CONSUMERS != 2) || (CONSUMERS == 1 && GEMM_BM == 128 && GEMM_BN != 128)
#error "gemm_wgmma: 2 consumer warpgroups, or 1 with BM 64 or BN 128"
#endif
// Each block's share of a B tile (A tile) starts on a swizzle row group of
// 8 rows.
#if (GEMM_CLUSTER != 1 && GEMM_CLUSTER != 2) || (GEMM_CLUSTER_N != 1 && GEMM_CLUSTER_N != 2) || B_ROWS % 8 || A_ROWS % 8
#error "gemm_wgmma: clusters of 1 or 2 blocks along M and along N"
#endif
#if GEMM_BM != 128 && !((GEMM_BM == 256 && CONSUMERS == 2) || (GEMM_BM == 64 && CONSUMERS == 1))
#error "gemm_wgmma: BM 128, 256 with 2 consumer warpgroups, or 64 with 1"
#endif
#if (GEMM_BM == 256 && CLUSTER_BLOCKS != 1) || (GEMM_BM != 128 && GEMM_PINGPONG)
#error "gemm_wgmma: clusters need BM 64 or 128, ping-pong BM 128"
#endif
#if GEMM_PINGPONG && (GEMM_BN != 128 || CONSUMERS != 2 || CLUSTER_BLOCKS != 1)
#error "gemm_wgmma: ping-pong needs BN 128, 2 consumer warpgroups, no cluster"
#endif

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#error "gemm_wgmma needs the arch-specific target sm_90a"
#endif

// CUtensorMap as the driver encodes it (cuTensorMapEncodeTiled): 128 opaque
// bytes, passed by value as a __grid_constant__ parameter so that TMA reads
// it from the kernel's parameter space.
struct __align__(64) TmaMap {
    u64 opaque[16];
};

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

__device__ __forceinline__ void mbar_init(unsigned bar, unsigned count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count));
}

// Waits until the barrier's phase of parity `parity` has completed. A fresh
// barrier is in phase 0, so waiting for parity 1 returns at once: the
// producer's first pass over the empty barriers does not block.
// With clusters too the wait acquires at CTA scope only: the data it guards
// is written by TMA, which completes on this barrier, and the partner's
// arrivals on an empty barrier only say that its wgmma have finished reading
// (an acquire at cluster scope cost an L1 invalidation per wait).
__device__ __forceinline__ void mbar_wait(unsigned bar, unsigned parity) {
    unsigned done;
    do {
        asm volatile(
            "{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
            : "=r"(done)
            : "r"(bar), "r"(parity)
            : "memory");
    } while (!done);
}

__device__ __forceinline__ void mbar_arrive(unsigned bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}

// Arrival on the barrier at the same shared address in block `cta` of the
// cluster (PTX ISA "mapa": the address in that block's shared memory
// window). Release at CTA scope (the default): what it orders is this
// warp's wgmma reads of the stage, which wgmma.wait_group has already seen
// complete. `.release.cluster` put a memory barrier (ERRBAR) before every
// arrival: 36% of the stall samples of the clustered 128x128 tile, which
// ran at 0.28x of cuBLAS (ncu, H200, 2026-11-27).
__device__ __forceinline__ void mbar_arrive_cta(unsigned bar, unsigned cta) {
    asm volatile(
        "{ .reg .b32 r; mapa.shared::cluster.u32 r, %0, %1; mbarrier.arrive.shared::cluster.b64 _, [r]; }" ::"r"(bar),
        "r"(cta)
        : "memory");
}

__device__ __forceinline__ unsigned cluster_rank() {
    unsigned r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
    return r;
}

// Every thread of every block of the cluster (PTX ISA "barrier.cluster").
__device__ __forceinline__ void cluster_sync() {
    asm volatile("barrier.cluster.arrive.release;\nbarrier.cluster.wait.acquire;" ::: "memory");
}

// A consumer warp is done reading a stage: tell the producer of every block
// that writes into it (with clusters, every block of the cluster: those of
// its cluster row and column multicast into it), lane r arriving on block
// r's barrier (one lane arriving on each in turn cost a divergent loop per
// k tile).
__device__ __forceinline__ void release(unsigned empty, int lane) {
#if CLUSTER_BLOCKS > 1
    if (lane < CLUSTER_BLOCKS) mbar_arrive_cta(empty, lane);
#else
    if (lane == 0) mbar_arrive(empty);
#endif
}

// The producer's arrival on a full barrier: one arrival plus `bytes` of
// transactions that the TMA loads complete (zero-filled bytes count too).
__device__ __forceinline__ void mbar_expect(unsigned bar, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}

// As tma_load, into the same shared address of every block in `mask` of
// the cluster, completing on each one's barrier at `bar`'s address.
__device__ __forceinline__ void tma_load_multicast(unsigned dst, const TmaMap* map, int k, int row, int z, unsigned bar,
                                                   unsigned short mask) {
    asm volatile(
        "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.multicast::cluster [%0], "
        "[%1, {%2, %3, %4}], [%5], %6;" ::"r"(dst),
        "l"((u64)map), "r"(k), "r"(row), "r"(z), "r"(bar), "h"(mask)
        : "memory");
}

// One box of a 3-D tensor map (coordinates innermost first: k, row, batch)
// into shared memory at `dst`, completing on `bar`. Without a cluster, the
// CTA's own shared::cta addresses are valid shared::cluster addresses.
__device__ __forceinline__ void tma_load(unsigned dst, const TmaMap* map, int k, int row, int z, unsigned bar) {
    asm volatile(
        "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], "
        "[%5];" ::"r"(dst),
        "l"((u64)map), "r"(k), "r"(row), "r"(z), "r"(bar)
        : "memory");
}

// One 64 x 64 box of shared memory at `src` (128-byte swizzle) to the
// tensor of `map` at (column n, row m, batch z); TMA writes only the part
// inside the tensor. Issued by one thread, in its bulk async-group (PTX ISA
// 9.7.9.25 "cp.async.bulk.tensor", 9.7.9.26 "cp.async.bulk.commit_group").
__device__ __forceinline__ void tma_store(const TmaMap* map, unsigned src, int n, int m, int z) {
    asm volatile("cp.async.bulk.tensor.3d.global.shared::cta.bulk_group [%0, {%1, %2, %3}], [%4];" ::"l"((u64)map),
                 "r"(n), "r"(m), "r"(z), "r"(src)
                 : "memory");
    asm volatile("cp.async.bulk.commit_group;" ::: "memory");
}

// Waits until at most N of this thread's bulk groups still read shared memory.
template <int N>
__device__ __forceinline__ void tma_store_wait_read() {
    asm volatile("cp.async.bulk.wait_group.read %0;" ::"n"(N) : "memory");
}

// Shared-memory matrix descriptor (PTX ISA 9.7.15.5.1.2.2 "Matrix
// Descriptor Format") of a K-major tile in the 128-byte swizzle: rows of 64
// elements (128 bytes) in groups of 8 rows (1024 bytes, the stride byte
// offset); the leading byte offset is unused for this swizzle (1 by
// convention). Stages start 1024-byte aligned, so the base offset is 0; the
// k16 steps inside a row advance the start address by 32 bytes.
__device__ __forceinline__ u64 smem_desc(unsigned addr) {
    return (u64)((addr & 0x3ffff) >> 4) | ((u64)1 << 16) | ((u64)(1024 >> 4) << 32) | ((u64)1 << 62);
}

// d (64 x BN, f32, the fragment layout of PTX ISA 9.7.15.5.1.1.1) = A (64 x
// 16 at descriptor a) * B (16 x BN at descriptor b, stored [n][k]) + d where
// `accumulate` is nonzero (scale-d), without d where it is zero (a unit's
// first k step: the accumulators need no zeroing, whose register moves
// between wgmma made ptxas serialise them); no negation, both operands
// K-major (no transpose).
// The accumulators of row block OFF / (BN / 2) are d[OFF ..]. Inline PTX
// needs every accumulator named: the host generates the operand lists for
// the tile's BN (WGMMA_SHAPE, WGMMA_D_LIST, WGMMA_D_OPS, WGMMA_AB; wgmma.rs
// `wgmma_operands`).
template <int OFF>
__device__ __forceinline__ void wgmma(float (&d)[ACC], u64 a, u64 b, int accumulate) {
    asm volatile("{ .reg .pred p; setp.ne.b32 p, " WGMMA_SCALE ", 0;\n"
                 "wgmma.mma_async.sync.aligned." WGMMA_SHAPE ".f32." MMA_TYPE "." MMA_TYPE " {" WGMMA_D_LIST
                 "}, " WGMMA_AB ", p, 1, 1, 0, 0; }"
                 : WGMMA_D_OPS(OFF)
                 : "l"(a), "l"(b), "r"(accumulate));
}

// The accumulator registers are about to be read or written by wgmma after
// other instructions touched them (PTX ISA "wgmma.fence").
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait(float (&d)[ACC]) {
    // The accumulators are operands so that no use of them moves above the wait.
    asm volatile("wgmma.wait_group.sync.aligned " WGMMA_WAIT_N ";" : WGMMA_ACC_OPS : "n"(N) : "memory");
}

__device__ __forceinline__ unsigned pack2(float lo, float hi) {
#if GEMM_DT == DT_BF16
    return f32_to_bf16(lo) | ((unsigned)f32_to_bf16(hi) << 16);
#else
    return f32_to_f16(lo) | ((unsigned)f32_to_f16(hi) << 16);
#endif
}

// Unit index -> (split, batch, first row, first column), grouped raster;
// `tiles_m` and `tiles_n` count rows and columns of units (of GEMM_CLUSTER
// x GEMM_CLUSTER_N tiles each); the block at (rm, rn) in its cluster takes
// tile row `GEMM_CLUSTER * unit row + rm` and tile column
// `GEMM_CLUSTER_N * unit column + rn`.
struct Unit {
    int split, z, m0, n0;
};

__device__ __forceinline__ Unit decode_unit(int u, int tiles_m, int tiles_n, int batch, int group, int rm, int rn) {
    const int per_batch = tiles_m * tiles_n, per_split = per_batch * batch;
    Unit r;
    r.split = u / per_split;
    const int rest = u % per_split;
    r.z = rest / per_batch;
    const int t = rest % per_batch, per_group = group * tiles_n;
    const int first_m = (t / per_group) * group;
    const int group_m = min(tiles_m - first_m, group);
    r.m0 = ((first_m + (t % per_group) % group_m) * GEMM_CLUSTER + rm) * BM;
    r.n0 = ((t % per_group) / group_m * GEMM_CLUSTER_N + rn) * GEMM_BN;
    return r;
}

// What the epilogue of one unit needs, for one consumer warpgroup.
struct EpiCtx {
    float* epi;           // this warpgroup's staging space (1024-byte aligned)
    const TmaMap* map_d;  // D for TMA stores, where d_tma
    int d_tma;
    const Epilogue& e;
    const void* c;
    void* d;
    const void* bias;
    float* bias_s;  // this warpgroup's EPI_BIAS floats of bias
    float* out;     // split-K partials of this unit's split and batch, or null
    // A's row scales of this unit's batch (row m's sums times a_scale[m]:
    // copy.cu round_rows_f16_scaled), or null.
    const float* a_scale;
    int M, N;
    int m0;  // first row of this warpgroup's rows of the tile
    int n0, z;
    int t;       // thread within the warpgroup
    int r0, c0;  // the thread's first fragment row and column
    int cw;      // consumer warpgroup (its named barrier is 1 + cw)
};

__device__ __forceinline__ void wg_sync(int cw) { asm volatile("bar.sync %0, 128;" ::"r"(1 + cw) : "memory"); }

// Row scales come only with f16 operands (an f16 copy of f32 activations):
// the bf16 modules compile them out, and keep the code they had without
// them (with them, 9 bf16 shapes at M = 512 ran about 0.7% slower, H100,
// bench/results/2026-12-07-nvidia-h100-session22-call8-row-scales-ab.log).
#define ROW_SCALES (GEMM_DT == DT_F16)

// Row m's scale: 1 without row scales, or past M.
__device__ __forceinline__ float row_scale(const EpiCtx& x, int m) {
#if ROW_SCALES
    return x.a_scale && m < x.M ? x.a_scale[m] : 1.0f;
#else
    return 1.0f;
#endif
}

// The common epilogue (alpha, bias, D in the operands' dtype, rows of D
// 16-byte aligned, N a multiple of 8), chunk CH (64 columns) of m64 row
// block MHI: the chunk is packed into a staging buffer in the 128-byte
// swizzle (a lane's pair of columns goes to 16-byte chunk j ^ (row % 8) of
// its row: the 32 lanes of a warp hit 32 banks), then stored either by one
// TMA store, which runs on while the warpgroup goes ahead, or by the
// warpgroup's threads in 16-byte loads and stores (BN's last chunk where BN
// is not a multiple of 64). D is described by map_d (where the driver
// refuses D's layout, the general epilogue takes it). A
// scalar tail for other alignments here made ptxas serialise the wgmma of
// the main loop (its advisory C7514, which tests/cuda_kernels.rs fails on):
// they take the general epilogue.
template <int MHI, int CH>
__device__ __forceinline__ void direct_chunk(const float (&acc)[ACC], const EpiCtx& x, int& eb) {
    if constexpr (MHI < MH && CH * 64 < GEMM_BN) {
        constexpr int width = GEMM_BN - CH * 64 < 64 ? GEMM_BN - CH * 64 : 64;
        const Epilogue& e = x.e;
        const int buf_off = (eb % EPI_BUFS) * EPI_CHUNK;
        unsigned char* buf = (unsigned char*)x.epi + buf_off;
        ++eb;
        // The TMA store that last read this buffer is done reading it (the
        // threads' own reads of it are behind the barrier). Only TMA chunks
        // commit bulk groups: after a chunk the threads stored (BN's last,
        // where BN is not a multiple of 64), the newest group may be this
        // buffer's, so none may stay pending.
        constexpr int pending = CH == 0 && GEMM_BN % 64 ? 0 : EPI_BUFS - 1;
        if (x.t == 0) tma_store_wait_read<pending>();
        // The chunk's bias, one column per thread, into shared memory (zero
        // past N): one load per column in the code, where loading each
        // thread's columns in the unrolled loop below made every chunk
        // about 1200 instructions of dtype cases, most of the kernel's text.
        // Every SM fetches the code it runs when the kernel starts after
        // others, as in a model: the 7B attention product took 16.4 us with
        // those 11k instructions and 14.2 with 7k (H200, bench/results/
        // 2026-11-27-nvidia-h200-gemm-bench-session11-epilogue-code-ab.log).
        // The previous chunk's readers are past its closing barrier.
        const bool plain = e.alpha == 1.0f && !e.has_bias && !(ROW_SCALES && x.a_scale);
        if (!plain && x.t < width) {
            const int n = x.n0 + CH * 64 + x.t;
            x.bias_s[x.t] =
                e.has_bias && n < x.N ? load_f32(x.bias, e.bias_dtype, e.bias_off + n * e.bias_stride) : 0.0f;
        }
        wg_sync(x.cw);
        const int q = x.c0 / 2;
        // alpha times the row scale of the thread's two fragment rows.
        float al[2] = {e.alpha, e.alpha};
#if ROW_SCALES
        if (x.a_scale)
#pragma unroll
            for (int h = 0; h < 2; ++h) al[h] *= row_scale(x, x.m0 + MHI * 64 + x.r0 + 8 * h);
#endif
        if constexpr (width == 64) {
            // A warp's 16 rows x 64 columns are sixteen 8 x 8 matrices of
            // the accumulator layout (lane l: row l / 4, columns 2 (l % 4)
            // and one more), p[2 jl + h] the lane's pair of column block jl
            // in row half h. stmatrix stores four per instruction, lane l
            // giving the address of row l % 8 of matrix l / 8 (PTX ISA
            // "stmatrix"): 4 instructions where 4-byte stores took 16, and
            // no multiply where alpha is 1 without bias (the 7B attention
            // product after other kernels: 13.6-13.9 us against 14.0, H200,
            // bench/results/2026-11-27-nvidia-h200-gemm-bench-session11-
            // stmatrix-ab.log).
            unsigned p[16];
#pragma unroll
            for (int jl = 0; jl < 8; ++jl) {
                const int i = MHI * (GEMM_BN / 2) + 4 * (CH * 8 + jl);
                float2 b = make_float2(0.0f, 0.0f);
                if (!plain) b = *(const float2*)(x.bias_s + 8 * jl + x.c0);
#pragma unroll
                for (int h = 0; h < 2; ++h)
                    p[2 * jl + h] = plain ? pack2(acc[i + 2 * h], acc[i + 2 * h + 1])
                                          : pack2(al[h] * acc[i + 2 * h] + b.x, al[h] * acc[i + 2 * h + 1] + b.y);
            }
            const int lane = x.t % 32, rr = lane % 8, h = (lane / 8) % 2, jo = lane / 16;
            const unsigned row = smem_u32(buf) + ((x.r0 & ~15) + 8 * h + rr) * 128;
#pragma unroll
            for (int g = 0; g < 4; ++g)
                asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};" ::"r"(
                                 row + (((2 * g + jo) ^ rr) << 4)),
                             "r"(p[4 * g]), "r"(p[4 * g + 1]), "r"(p[4 * g + 2]), "r"(p[4 * g + 3])
                             : "memory");
        } else {
#pragma unroll
            for (int jl = 0; jl < width / 8; ++jl) {
                const int j = CH * 8 + jl;
                float b0 = 0.0f, b1 = 0.0f;
                if (e.has_bias) {
                    const float2 b = *(const float2*)(x.bias_s + 8 * jl + x.c0);
                    b0 = b.x;
                    b1 = b.y;
                }
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    const int r = x.r0 + 8 * h;
                    const int i = MHI * (GEMM_BN / 2) + 4 * j + 2 * h;
                    *(unsigned*)(buf + r * 128 + ((jl ^ (r & 7)) << 4) + 4 * q) =
                        pack2(al[h] * acc[i] + b0, al[h] * acc[i + 1] + b1);
                }
            }
        }
        const int row0 = x.m0 + MHI * 64, col0 = x.n0 + CH * 64;
        // Each chunk's code holds one of the two ways only (an unrolled
        // kernel's code is what a cold start fetches: at most one 64 x 64
        // chunk per m64 block has fewer than 64 columns).
        if constexpr (width == 64) {
            // The threads' writes must be visible to the async proxy.
            asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
            wg_sync(x.cw);
            if (x.t == 0) tma_store(x.map_d, smem_u32(buf), col0, row0, x.z);
        } else {
            wg_sync(x.cw);
            u16* dz = (u16*)x.d + e.d.off + (i64)x.z * e.d.bs;
            constexpr int per_row = width / 8;
#pragma unroll
            for (int pass = 0; pass < per_row / 2; ++pass) {
                const int idx = x.t + 128 * pass, r = idx / per_row, cc = idx % per_row;
                const int m = row0 + r, n = col0 + 8 * cc;
                const uint4 v = *(const uint4*)(buf + r * 128 + ((cc ^ (r & 7)) << 4));
                if (m < x.M && n < x.N) *(uint4*)(dz + (i64)m * e.d.rs + n) = v;
            }
        }
    }
}

// Split-K partials (f32, rows of N, N even) of m64 row block MHI, straight
// from the registers: each lane's column pair is one 8-byte store, and a
// warp's store of one register pair fills 8 whole 32-byte sectors.
template <int MHI>
__device__ __forceinline__ void partial_store(const float (&acc)[ACC], const EpiCtx& x) {
    if constexpr (MHI < MH) {
#pragma unroll
        for (int j = 0; j < GEMM_BN / 8; ++j)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int m = x.m0 + MHI * 64 + x.r0 + 8 * h, n = x.n0 + 8 * j + x.c0;
                const int i = MHI * (GEMM_BN / 2) + 4 * j + 2 * h;
                const float sc = row_scale(x, m);
                if (m < x.M && n < x.N) *(float2*)(x.out + (i64)m * x.N + n) = make_float2(sc * acc[i], sc * acc[i + 1]);
            }
    }
}

// Every other epilogue (beta * C, activations, other output dtypes, strided
// D, split-K partials of odd N) for m64 row block MHI, EPI_COLS columns at a
// time through shared memory, so that the stores run along rows and
// matmul_epilogue.cuh's code is emitted once per chunk.
template <int MHI>
__device__ __forceinline__ void staged_chunks(const float (&acc)[ACC], const EpiCtx& x) {
    if constexpr (MHI < MH) {
#pragma unroll
        for (int ch = 0; ch < GEMM_BN / EPI_COLS; ++ch) {
            wg_sync(x.cw);
#pragma unroll
            for (int jj = 0; jj < EPI_COLS / 8; ++jj) {
                const int j = ch * (EPI_COLS / 8) + jj;
#pragma unroll
                for (int h = 0; h < 2; ++h)
                    *(float2*)(x.epi + (x.r0 + 8 * h) * EPI_LD + jj * 8 + x.c0) =
                        make_float2(acc[MHI * (GEMM_BN / 2) + 4 * j + 2 * h], acc[MHI * (GEMM_BN / 2) + 4 * j + 2 * h + 1]);
            }
            wg_sync(x.cw);
#pragma unroll 1
            for (int idx = x.t; idx < 64 * EPI_COLS / 2; idx += 128) {
                const int r = idx / (EPI_COLS / 2), col = (idx % (EPI_COLS / 2)) * 2;
                const int m = x.m0 + MHI * 64 + r, n = x.n0 + ch * EPI_COLS + col;
                if (m >= x.M || n >= x.N) continue;
                const float sc = row_scale(x, m);
                const float v0 = sc * x.epi[r * EPI_LD + col], v1 = sc * x.epi[r * EPI_LD + col + 1];
                if (x.out) {
                    x.out[(i64)m * x.N + n] = v0;
                    if (n + 1 < x.N) x.out[(i64)m * x.N + n + 1] = v1;
                } else if (n + 1 < x.N) {
                    epilogue_pair(x.e, x.c, x.d, x.bias, x.z, m, n, v0, v1);
                } else {
                    epilogue_store(x.e, x.c, x.d, x.bias, x.z, m, n, v0);
                }
            }
        }
    }
}

// The kernel. DIRECT_ONLY: the common epilogue's code only, for launches
// whose every unit takes it (the host checks the same conditions as
// `direct` below, and splits nothing). Without the split-K and staged
// epilogues' code the kernel is a fraction of the size (128x128 two per SM:
// about 1200 instructions against 6600), and a kernel that starts after
// others fetches its code afresh on every SM.
template <bool DIRECT_ONLY>
__device__ __forceinline__ void gemm_wgmma(const TmaMap* map_a, const TmaMap* map_b, const TmaMap* map_d, int d_tma,
                                           const Epilogue& e, const void* c, void* d, const void* bias, int M, int N,
                                           int K, int batch, int a_batched, int b_batched, int splits, float* partial,
                                           int group, const float* a_scale) {
    __shared__ __align__(8) u64 full_bar[GEMM_STAGES], empty_bar[GEMM_STAGES];
    // Ping-pong: turn_bar[c] completes a phase each time the other consumer
    // warpgroup has passed the full-barrier waits of one of its units.
    __shared__ __align__(8) u64 turn_bar[2];
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    // The swizzle pattern repeats every 1024 bytes and the descriptors
    // assume stages start on that boundary: align by hand (the host adds
    // 1024 bytes of slack).
    const unsigned raw = smem_u32(smem_raw);
    const unsigned pad = ((raw + 1023) & ~1023u) - raw;
    unsigned char* smem = smem_raw + pad;
    const unsigned sA = raw + pad, sB = sA + GEMM_STAGES * A_STAGE;
    float* epi_base = (float*)(smem + GEMM_STAGES * (A_STAGE + B_STAGE));

    // Rows (columns) of units: tile rows (columns) in groups of GEMM_CLUSTER
    // (GEMM_CLUSTER_N). A block whose tile is past M or N still loads its
    // shares for its partners (TMA zero-fills what is outside the operand)
    // and stores nothing.
    const int tiles_m = ((M + BM - 1) / BM + GEMM_CLUSTER - 1) / GEMM_CLUSTER;
    const int tiles_n = ((N + GEMM_BN - 1) / GEMM_BN + GEMM_CLUSTER_N - 1) / GEMM_CLUSTER_N;
    const int units = tiles_m * tiles_n * batch * splits;
    const int rank = CLUSTER_BLOCKS > 1 ? (int)cluster_rank() : 0;
    const int rm = rank % GEMM_CLUSTER, rn = rank / GEMM_CLUSTER;
    const int first_unit = blockIdx.x / CLUSTER_BLOCKS, unit_step = gridDim.x / CLUSTER_BLOCKS;
    const int kt_all = (K + BK - 1) / BK, kt_per = (kt_all + splits - 1) / splits;
    // Broadcast from lane 0, so that ptxas knows it warp-uniform: values
    // derived from it (a consumer's A descriptors) then stay in uniform
    // registers instead of being moved there before every wgmma.
    const int wg = __shfl_sync(0xffffffffu, threadIdx.x / 128, 0);
    // Shared addresses of the barriers of stage 0 (stage s: + 8 s), taken
    // once: a generic-to-shared conversion per k tile cost special-register
    // reads on the main loops' path.
    const unsigned full0 = smem_u32(full_bar), empty0 = smem_u32(empty_bar);
    // Split K: gemm_splitk_epilogue, launched as this kernel's dependent,
    // may take its place on the SMs (the grid is resident from the start).
    if (!DIRECT_ONLY && partial) grid_dependents_may_start();

    if (threadIdx.x == 0) {
        for (int s = 0; s < GEMM_STAGES; ++s) {
            mbar_init(smem_u32(&full_bar[s]), 1);
            // One arrival per consumer warp of every block in the cluster:
            // a stage is free only when all of them have read it.
            mbar_init(smem_u32(&empty_bar[s]), READERS * 4 * CLUSTER_BLOCKS);
        }
        for (int c = 0; c < 2; ++c) mbar_init(smem_u32(&turn_bar[c]), 1);
        // Make the initialised barriers visible to the async (TMA) proxy.
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
        asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    }
#if CLUSTER_BLOCKS > 1
    // The partners' barriers must exist before anything arrives on them.
    cluster_sync();
#else
    __syncthreads();
#endif

    if (wg == 0) {
        // Producer. Its warpgroup keeps 40 registers; the consumers take the rest.
        asm volatile("setmaxnreg.dec.sync.aligned.u32 40;");
        if (threadIdx.x == 0) {
            // The stage and its phase parity, advanced per k tile.
            int s = 0;
            unsigned ph = 0;
            for (int u = first_unit; u < units; u += unit_step) {
                const Unit w = decode_unit(u, tiles_m, tiles_n, batch, group, rm, rn);
                const int kt0 = w.split * kt_per, kt1 = min(kt_all, kt0 + kt_per);
                const int za = a_batched ? w.z : 0, zb = b_batched ? w.z : 0;
                for (int kt = kt0; kt < kt1; ++kt, s = s + 1 == GEMM_STAGES ? 0 : s + 1, ph ^= s == 0) {
                    mbar_wait(empty0 + 8 * s, ph ^ 1);
                    const unsigned fb = full0 + 8 * s;
                    mbar_expect(fb, A_STAGE + B_STAGE);
#if GEMM_CLUSTER_N > 1
                    // To the blocks of this cluster row (the same tile row):
                    // ranks rm, rm + GEMM_CLUSTER, ...
                    tma_load_multicast(sA + s * A_STAGE + rn * A_ROWS * 128, map_a, kt * BK, w.m0 + rn * A_ROWS, za, fb,
                                       (unsigned short)(ROW_MASK << rm));
#else
                    tma_load(sA + s * A_STAGE, map_a, kt * BK, w.m0, za, fb);
#endif
#if GEMM_CLUSTER > 1
                    // To the blocks of this cluster column (the same tile
                    // column): ranks GEMM_CLUSTER rn .. GEMM_CLUSTER rn + 1.
                    tma_load_multicast(sB + s * B_STAGE + rm * B_ROWS * 128, map_b, kt * BK, w.n0 + rm * B_ROWS, zb,
                                       fb, (unsigned short)(((1 << GEMM_CLUSTER) - 1) << (rn * GEMM_CLUSTER)));
#else
                    tma_load(sB + s * B_STAGE, map_b, kt * BK, w.n0, zb, fb);
#endif
                }
            }
        }
    } else {
        // Consumers.
        asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(CONSUMER_REGS));
        const int cw = wg - 1, t = threadIdx.x % 128, warp = t / 32, lane = t % 32;
        float* epi = epi_base + cw * (EPI_BYTES / 4);
        float* bias_s = epi_base + CONSUMERS * (EPI_BYTES / 4) + cw * EPI_BIAS;
        // Stage 0's descriptors of this warpgroup's A rows and of B.
        const u64 desc_a = smem_desc(sA + WG_MH0(cw) * 64 * 128), desc_b = smem_desc(sB);
        // The common epilogue, where every row of D starts 16-byte aligned
        // and N is a multiple of 8 (the threads' stores are 16 bytes, and
        // TMA needs the same alignment) and D has a tensor map: see below.
        const bool direct = DIRECT_ONLY || (d_tma && !partial && e.beta == 0.0f && e.act == ACT_NONE && e.d_dtype == GEMM_DT && !e.bias_rows &&
                            e.d.cs == 1 && !(((u64)d + 2 * e.d.off) & 15) && !((e.d.rs | e.d.bs) & 7) && !(N & 7));
        // Zeroed once: every unit's first k step overwrites them (the host
        // plans no empty K share).
        float acc[ACC];
#pragma unroll
        for (int i = 0; i < ACC; ++i) acc[i] = 0.0f;
        int it = 0;
        // Staging buffers used so far (the direct epilogue alternates them).
        int eb = 0;
        for (int u = first_unit, ui = 0; u < units; u += unit_step, ++ui) {
            const Unit w = decode_unit(u, tiles_m, tiles_n, batch, group, rm, rn);
            const int kt0 = w.split * kt_per, kt1 = min(kt_all, kt0 + kt_per);
#if GEMM_PINGPONG
            // The block's units alternate between the two warpgroups; the
            // producer loads them all in order, so the other's k tiles are
            // skipped in the stage count.
            if ((ui & 1) != cw) {
                it += max(kt1 - kt0, 0);
                continue;
            }
            // A full-barrier wait by parity cannot tell the phase wanted from
            // the one before it: start only once the other warpgroup has
            // seen every load of its previous unit arrive (then the previous
            // phase of every stage this unit waits on has completed). This
            // also runs the two main loops one after the other, each
            // warpgroup's epilogue under the other's main loop.
            if (ui > 0) mbar_wait(smem_u32(&turn_bar[cw]), ((ui - 1) / 2) & 1);
#endif
            // Each k tile's wgmma form one group; one group stays in flight
            // while the next tile's are issued, and the stage of a completed
            // group goes back to the producer. (Two in flight did not make
            // the ping-pong tile faster: 7B down at M = 512 took 1.24x the
            // cooperative 128x128's time, against 1.11-1.22x with one; H100,
            // 2026-11-26.)
            // The stage and its phase parity, advanced per k tile; the
            // descriptors of stage s are those of stage 0 plus s stages (a
            // descriptor's low bits are the address / 16, and no address
            // of the 227 KB carries out of them), each k16 step 32 bytes on.
            int prev = -1, s = it % GEMM_STAGES;
            unsigned ph = (it / GEMM_STAGES) & 1;
            for (int kt = kt0; kt < kt1; ++kt, ++it, s = s + 1 == GEMM_STAGES ? 0 : s + 1, ph ^= s == 0) {
                mbar_wait(full0 + 8 * s, ph);
                wgmma_fence();
                const u64 a0 = desc_a + s * (A_STAGE >> 4), b0 = desc_b + s * (B_STAGE >> 4);
                const int more = kt != kt0;
#pragma unroll
                for (int ks = 0; ks < BK / 16; ++ks) wgmma<0>(acc, a0 + 2 * ks, b0 + 2 * ks, ks ? 1 : more);
#if MH == 2
#pragma unroll
                for (int ks = 0; ks < BK / 16; ++ks)
                    wgmma<GEMM_BN / 2>(acc, a0 + (64 * 128 >> 4) + 2 * ks, b0 + 2 * ks, ks ? 1 : more);
#endif
                wgmma_commit();
                wgmma_wait<1>(acc);
                if (prev >= 0) release(empty0 + 8 * prev, lane);
                prev = s;
            }
#if GEMM_PINGPONG
            if (t == 0) mbar_arrive(smem_u32(&turn_bar[1 - cw]));
#endif
            wgmma_wait<0>(acc);
            if (prev >= 0) release(empty0 + 8 * prev, lane);

            // Fragment: register 4j + 2h + c holds row 16 warp + lane / 4 + 8h,
            // column 8j + 2 (lane % 4) + c.
            const EpiCtx x{epi,
                           map_d,
                           d_tma,
                           e,
                           c,
                           d,
                           bias,
                           bias_s,
                           partial ? partial + ((i64)w.split * batch + w.z) * M * N : nullptr,
                           a_scale ? a_scale + (a_batched ? (i64)w.z * M : 0) : nullptr,
                           M,
                           N,
                           w.m0 + WG_MH0(cw) * 64,
                           w.n0,
                           w.z,
                           t,
                           warp * 16 + lane / 4,
                           (lane % 4) * 2,
                           cw};
            // The chunks by compile-time index (templates, not loops: a loop
            // left rolled indexes the accumulators at run time, which puts
            // them in local memory and makes ptxas serialise the wgmma).
            if (direct) {
                direct_chunk<0, 0>(acc, x, eb);
                direct_chunk<0, 1>(acc, x, eb);
                direct_chunk<0, 2>(acc, x, eb);
                direct_chunk<0, 3>(acc, x, eb);
                direct_chunk<1, 0>(acc, x, eb);
                direct_chunk<1, 1>(acc, x, eb);
                direct_chunk<1, 2>(acc, x, eb);
                direct_chunk<1, 3>(acc, x, eb);
            } else if constexpr (!DIRECT_ONLY) {
                if (partial && !(N & 1)) {
                    partial_store<0>(acc, x);
                    partial_store<1>(acc, x);
                } else {
                    staged_chunks<0>(acc, x);
                    staged_chunks<1>(acc, x);
                }
            }
        }
        // Shared memory must outlive the TMA stores that read it.
        if (t == 0) tma_store_wait_read<0>();
    }
#if CLUSTER_BLOCKS > 1
    // No block may leave while a partner can still multicast into its
    // shared memory or arrive on its barriers.
    cluster_sync();
#endif
}

#endif  // __CUDA_ARCH_FEAT_SM90_ALL

// GEMM_NAME, and GEMM_NAME_direct with the common epilogue only (DIRECT_ONLY).
#define GEMM_CAT_(a, b) a##b
#define GEMM_CAT(a, b) GEMM_CAT_(a, b)
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define GEMM_BODY(direct_only)                                                                                        \
    gemm_wgmma<direct_only>(&map_a, &map_b, &map_d, d_tma, e, c, d, bias, M, N, K, batch, a_batched, b_batched,      \
                            splits, partial, group, a_scale)
#else
// Never launched below sm_90a (the host checks the architecture); the stub
// keeps the module compilable for every target.
#define GEMM_BODY(direct_only) __trap()
#endif
#define GEMM_KERNEL(name, direct_only)                                                                                \
    extern "C" __global__ void __launch_bounds__(THREADS, BLOCKS_PER_SM)                                              \
        name(const __grid_constant__ TmaMap map_a, const __grid_constant__ TmaMap map_b,                              \
             const __grid_constant__ TmaMap map_d, int d_tma, Epilogue e, const void* c, void* d, const void* bias,   \
             int M, int N, int K, int batch, int a_batched, int b_batched, int splits, float* partial, int group,    \
             const float* a_scale) {                                                                                 \
        GEMM_BODY(direct_only);                                                                                       \
    }
GEMM_KERNEL(GEMM_NAME, false)
GEMM_KERNEL(GEMM_CAT(GEMM_NAME, _direct), true)
