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
//   GEMM_BN      a multiple of 16 from 64 to 256 (block tile N; M is 128,
//                K 64): 128 and 256, and widths between them that make the
//                tiles of a shape fill whole waves of SMs
//   GEMM_STAGES  shared-memory pipeline depth
//   GEMM_CONSUMERS 2 (one block per SM), or 1 (BN 128 only: one consumer
//                warpgroup takes both m64 halves, two blocks per SM)
//   GEMM_CLUSTER 1, or 2: blocks in clusters of 2 along M that share each
//                B tile, every block loading half of it and multicasting
//                it to both (half the B traffic out of L2)
//   GEMM_PINGPONG 0, or 1 (BN 128, 2 consumers, no cluster): each consumer
//                warpgroup takes whole 128 x BN tiles, the two alternating,
//                so that one's epilogue runs under the other's main loop
//
// Layout taken: y = x W^T, both operands K-contiguous (A [M, K], W [N, K],
// row strides and batch strides multiples of 16 bytes, base addresses 16-byte
// aligned: TMA's requirements, checked on the host). The tensor maps are 3-D
// (K, rows, batch); TMA zero-fills every element past K, past the rows and
// past the batch, so tails need no code in the main loop, and the stores are
// bounds-checked.
//
// Roles (a block of 3 warpgroups, one block per SM, the grid no larger than
// the SM count; with GEMM_CONSUMERS 1, 2 warpgroups and two blocks per SM):
//   warpgroup 0: one thread issues the TMA loads of every (unit, k tile) in
//     order; the rest of the warpgroup gives its registers away (setmaxnreg).
//   warpgroups 1, 2: each multiplies 64 rows of the 128-row tile by all BN
//     columns (m64nBNk16 wgmma, four per 64-wide k tile, one commit group
//     per k tile with one group left in flight), then runs the epilogue
//     while the producer already loads the next unit's tiles. The common
//     epilogue (alpha, bias, D in the operands' dtype) is stored straight
//     from the registers; the rest (beta * C, activations, other dtypes,
//     split-K partials) goes through a small shared-memory staging buffer
//     and matmul_epilogue.cuh. With GEMM_PINGPONG each of the two takes
//     all 128 rows of every other unit of the block instead (m64nBNk16 on
//     both m64 halves), and a turn barrier runs their main loops in order.
// A unit is one (split, batch, tile) triple (with clusters: a column of
// GEMM_CLUSTER tiles, one per block); units go to blocks (clusters)
// round-robin, in groups of `group` rows of units so that a wave shares A's
// band and B's columns in L2. With `splits` > 1 every unit takes 1/splits of
// the K tiles and writes its f32 partial product; gemm_splitk_epilogue sums.

#define BM 128
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
#define MH (GEMM_PINGPONG ? 2 : 2 / CONSUMERS)
// The first m64 row block of consumer warpgroup `cw` within the tile.
#define WG_MH0(cw) (GEMM_PINGPONG ? 0 : (cw) * MH)
// Consumer warpgroups that read each stage (ping-pong: only the stage's owner).
#define READERS (GEMM_PINGPONG ? 1 : CONSUMERS)
#define ACC (MH * GEMM_BN / 2)
// One consumer warpgroup: two blocks share an SM, so that one block's
// epilogue runs while the other's tensor cores work.
#define BLOCKS_PER_SM (3 - CONSUMERS)
#define CONSUMER_REGS (CONSUMERS == 2 ? 232 : 216)
#define A_STAGE (BM * BK * 2)
#define B_STAGE (GEMM_BN * BK * 2)
#ifndef GEMM_CLUSTER
#define GEMM_CLUSTER 1
#endif
// Rows of each B tile this block loads (and multicasts).
#define B_ROWS (GEMM_BN / GEMM_CLUSTER)
// Epilogue staging: per consumer warpgroup 64 rows x 32 columns of f32 (16
// where BN is an odd multiple of 16), rows padded by 4 floats against bank
// conflicts.
#define EPI_COLS (GEMM_BN % 32 ? 16 : 32)
#define EPI_LD (32 + 4)
#define EPI_BYTES (64 * EPI_LD * 4)

#if GEMM_DT == DT_BF16
#define MMA_TYPE "bf16"
#else
#define MMA_TYPE "f16"
#endif

#if GEMM_BN % 16 || GEMM_BN < 64 || GEMM_BN > 256
#error "gemm_wgmma: BN must be a multiple of 16 from 64 to 256"
#endif
#if (CONSUMERS != 1 && CONSUMERS != 2) || (CONSUMERS == 1 && GEMM_BN != 128)
#error "gemm_wgmma: 2 consumer warpgroups, or 1 with BN 128"
#endif
#if (GEMM_CLUSTER != 1 && GEMM_CLUSTER != 2) || (GEMM_CLUSTER > 1 && GEMM_BN % 128)
#error "gemm_wgmma: clusters of 1, or of 2 blocks with BN 128 or 256"
#endif
#if GEMM_PINGPONG && (GEMM_BN != 128 || CONSUMERS != 2 || GEMM_CLUSTER != 1)
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

__device__ __forceinline__ unsigned smem_addr(const void* p) {
    unsigned r;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(r) : "l"(p));
    return r;
}

__device__ __forceinline__ void mbar_init(unsigned bar, unsigned count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count));
}

// Waits until the barrier's phase of parity `parity` has completed. A fresh
// barrier is in phase 0, so waiting for parity 1 returns at once: the
// producer's first pass over the empty barriers does not block.
// With clusters the arrivals and transactions come from both blocks: the
// wait acquires at cluster scope.
__device__ __forceinline__ void mbar_wait(unsigned bar, unsigned parity) {
    unsigned done;
    do {
#if GEMM_CLUSTER > 1
        asm volatile(
            "{ .reg .pred p; mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, "
            "p; }"
            : "=r"(done)
            : "r"(bar), "r"(parity)
            : "memory");
#else
        asm volatile(
            "{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
            : "=r"(done)
            : "r"(bar), "r"(parity)
            : "memory");
#endif
    } while (!done);
}

__device__ __forceinline__ void mbar_arrive(unsigned bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}

// Arrival on the barrier at the same shared address in block `cta` of the
// cluster (PTX ISA "mapa": the address in that block's shared memory window).
__device__ __forceinline__ void mbar_arrive_cta(unsigned bar, unsigned cta) {
    asm volatile(
        "{ .reg .b32 r; mapa.shared::cluster.u32 r, %0, %1; mbarrier.arrive.release.cluster.shared::cluster.b64 _, "
        "[r]; }" ::"r"(bar),
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
// that writes into it (with clusters, both blocks multicast into it).
__device__ __forceinline__ void release(unsigned empty) {
#if GEMM_CLUSTER > 1
    for (unsigned r = 0; r < GEMM_CLUSTER; ++r) mbar_arrive_cta(empty, r);
#else
    mbar_arrive(empty);
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

// Shared-memory matrix descriptor (PTX ISA 9.7.15.5.1.2.2 "Matrix
// Descriptor Format") of a K-major tile in the 128-byte swizzle: rows of 64
// elements (128 bytes) in groups of 8 rows (1024 bytes, the stride byte
// offset); the leading byte offset is unused for this swizzle (1 by
// convention). Stages start 1024-byte aligned, so the base offset is 0; the
// k16 steps inside a row advance the start address by 32 bytes.
__device__ __forceinline__ u64 smem_desc(unsigned addr) {
    return (u64)((addr & 0x3ffff) >> 4) | ((u64)1 << 16) | ((u64)(1024 >> 4) << 32) | ((u64)1 << 62);
}

// d (64 x BN, f32, the fragment layout of PTX ISA 9.7.15.5.1.1.1) += A (64 x
// 16 at descriptor a) * B (16 x BN at descriptor b, stored [n][k]); scale-d
// 1, no negation, both operands K-major (no transpose).
// The accumulators of row block OFF / (BN / 2) are d[OFF ..]. Inline PTX
// needs every accumulator named: the host generates the operand lists for
// the tile's BN (WGMMA_SHAPE, WGMMA_D_LIST, WGMMA_D_OPS, WGMMA_AB; wgmma.rs
// `wgmma_operands`).
template <int OFF>
__device__ __forceinline__ void wgmma(float (&d)[ACC], u64 a, u64 b) {
    asm volatile("{ .reg .pred p; setp.ne.b32 p, 1, 0;\n"
                 "wgmma.mma_async.sync.aligned." WGMMA_SHAPE ".f32." MMA_TYPE "." MMA_TYPE " {" WGMMA_D_LIST
                 "}, " WGMMA_AB ", p, 1, 1, 0, 0; }"
                 : WGMMA_D_OPS(OFF)
                 : "l"(a), "l"(b));
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

// Within each quad of lanes, word i of lane q becomes word q of lane i (a
// 4x4 transpose of 4-byte words in four rotated shuffles; the selects keep
// the arrays in registers).
__device__ __forceinline__ void quad_transpose(unsigned (&w)[4], int lane) {
    const int q = lane & 3;
    unsigned out[4] = {0, 0, 0, 0};
#pragma unroll
    for (int r = 0; r < 4; ++r) {
        const int send = (q - r) & 3, from = (q + r) & 3;
        const unsigned v = send == 0 ? w[0] : send == 1 ? w[1] : send == 2 ? w[2] : w[3];
        const unsigned got = __shfl_sync(0xffffffffu, v, (lane & ~3) | from);
#pragma unroll
        for (int i = 0; i < 4; ++i) out[i] = from == i ? got : out[i];
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) w[i] = out[i];
}

// Unit index -> (split, batch, first row, first column), grouped raster;
// `tiles_m` counts rows of units (of GEMM_CLUSTER tiles each); the block of
// rank `rank` takes tile row `GEMM_CLUSTER * unit row + rank`.
struct Unit {
    int split, z, m0, n0;
};

__device__ __forceinline__ Unit decode_unit(int u, int tiles_m, int tiles_n, int batch, int group, int rank) {
    const int per_batch = tiles_m * tiles_n, per_split = per_batch * batch;
    Unit r;
    r.split = u / per_split;
    const int rest = u % per_split;
    r.z = rest / per_batch;
    const int t = rest % per_batch, per_group = group * tiles_n;
    const int first_m = (t / per_group) * group;
    const int group_m = min(tiles_m - first_m, group);
    r.m0 = ((first_m + (t % per_group) % group_m) * GEMM_CLUSTER + rank) * BM;
    r.n0 = ((t % per_group) / group_m) * GEMM_BN;
    return r;
}

#endif  // __CUDA_ARCH_FEAT_SM90_ALL

extern "C" __global__ void __launch_bounds__(THREADS, BLOCKS_PER_SM)
    GEMM_NAME(const __grid_constant__ TmaMap map_a, const __grid_constant__ TmaMap map_b, Epilogue e, const void* c,
              void* d, const void* bias, int M, int N, int K, int batch, int a_batched, int b_batched, int splits,
              float* partial, int group) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    __shared__ __align__(8) u64 full_bar[GEMM_STAGES], empty_bar[GEMM_STAGES];
    // Ping-pong: turn_bar[c] completes a phase each time the other consumer
    // warpgroup has passed the full-barrier waits of one of its units.
    __shared__ __align__(8) u64 turn_bar[2];
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    // The swizzle pattern repeats every 1024 bytes and the descriptors
    // assume stages start on that boundary: align by hand (the host adds
    // 1024 bytes of slack).
    const unsigned raw = smem_addr(smem_raw);
    const unsigned pad = ((raw + 1023) & ~1023u) - raw;
    unsigned char* smem = smem_raw + pad;
    const unsigned sA = raw + pad, sB = sA + GEMM_STAGES * A_STAGE;
    float* epi_base = (float*)(smem + GEMM_STAGES * (A_STAGE + B_STAGE));

    // Rows of units: tile rows in groups of GEMM_CLUSTER (a block whose tile
    // row is past M still loads its share of B for its partner, and its own
    // A box is all zeros, and stores nothing).
    const int tiles_m = ((M + BM - 1) / BM + GEMM_CLUSTER - 1) / GEMM_CLUSTER, tiles_n = (N + GEMM_BN - 1) / GEMM_BN;
    const int units = tiles_m * tiles_n * batch * splits;
    const int rank = GEMM_CLUSTER > 1 ? (int)cluster_rank() : 0;
    const int first_unit = blockIdx.x / GEMM_CLUSTER, unit_step = gridDim.x / GEMM_CLUSTER;
    const int kt_all = (K + BK - 1) / BK, kt_per = (kt_all + splits - 1) / splits;
    const int wg = threadIdx.x / 128;

    if (threadIdx.x == 0) {
        for (int s = 0; s < GEMM_STAGES; ++s) {
            mbar_init(smem_addr(&full_bar[s]), 1);
            // One arrival per consumer warp of every block in the cluster:
            // a stage is free only when all of them have read it.
            mbar_init(smem_addr(&empty_bar[s]), READERS * 4 * GEMM_CLUSTER);
        }
        for (int c = 0; c < 2; ++c) mbar_init(smem_addr(&turn_bar[c]), 1);
        // Make the initialised barriers visible to the async (TMA) proxy.
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
        asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    }
#if GEMM_CLUSTER > 1
    // The partner's barriers must exist before anything arrives on them.
    cluster_sync();
#else
    __syncthreads();
#endif

    if (wg == 0) {
        // Producer. Its warpgroup keeps 40 registers; the consumers take the rest.
        asm volatile("setmaxnreg.dec.sync.aligned.u32 40;");
        if (threadIdx.x == 0) {
            int it = 0;
            for (int u = first_unit; u < units; u += unit_step) {
                const Unit w = decode_unit(u, tiles_m, tiles_n, batch, group, rank);
                const int kt0 = w.split * kt_per, kt1 = min(kt_all, kt0 + kt_per);
                const int za = a_batched ? w.z : 0, zb = b_batched ? w.z : 0;
                for (int kt = kt0; kt < kt1; ++kt, ++it) {
                    const int s = it % GEMM_STAGES;
                    const unsigned ph = (it / GEMM_STAGES) & 1;
                    mbar_wait(smem_addr(&empty_bar[s]), ph ^ 1);
                    const unsigned fb = smem_addr(&full_bar[s]);
                    mbar_expect(fb, A_STAGE + B_STAGE);
                    tma_load(sA + s * A_STAGE, &map_a, kt * BK, w.m0, za, fb);
#if GEMM_CLUSTER > 1
                    tma_load_multicast(sB + s * B_STAGE + rank * B_ROWS * 128, &map_b, kt * BK, w.n0 + rank * B_ROWS, zb,
                                       fb, (1 << GEMM_CLUSTER) - 1);
#else
                    tma_load(sB + s * B_STAGE, &map_b, kt * BK, w.n0, zb, fb);
#endif
                }
            }
        }
    } else {
        // Consumers.
        asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(CONSUMER_REGS));
        const int cw = wg - 1, t = threadIdx.x % 128, warp = t / 32, lane = t % 32;
        float* epi = epi_base + cw * (EPI_BYTES / 4);
        const bool direct = !partial && e.beta == 0.0f && e.act == ACT_NONE && e.d_dtype == GEMM_DT && e.d.cs == 1;
        // 16-byte stores need every row start 16-byte aligned.
        const bool vec16 = !(((u64)d + 2 * e.d.off) & 15) && !((e.d.rs | e.d.bs) & 7);
        float acc[ACC];
        int it = 0;
        for (int u = first_unit, ui = 0; u < units; u += unit_step, ++ui) {
            const Unit w = decode_unit(u, tiles_m, tiles_n, batch, group, rank);
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
            if (ui > 0) mbar_wait(smem_addr(&turn_bar[cw]), ((ui - 1) / 2) & 1);
#endif
#pragma unroll
            for (int i = 0; i < ACC; ++i) acc[i] = 0.0f;
            // Each k tile's wgmma form one group; one group stays in flight
            // while the next tile's are issued, and the stage of a completed
            // group goes back to the producer. (Two in flight did not make
            // the ping-pong tile faster: 7B down at M = 512 took 1.24x the
            // cooperative 128x128's time, against 1.11-1.22x with one; H100,
            // 2026-11-26.)
            int prev = -1;
            for (int kt = kt0; kt < kt1; ++kt, ++it) {
                const int s = it % GEMM_STAGES;
                mbar_wait(smem_addr(&full_bar[s]), (it / GEMM_STAGES) & 1);
                wgmma_fence();
                const unsigned a0 = sA + s * A_STAGE + WG_MH0(cw) * 64 * 128, b0 = sB + s * B_STAGE;
#pragma unroll
                for (int ks = 0; ks < BK / 16; ++ks) wgmma<0>(acc, smem_desc(a0 + ks * 32), smem_desc(b0 + ks * 32));
#if MH == 2
#pragma unroll
                for (int ks = 0; ks < BK / 16; ++ks)
                    wgmma<GEMM_BN / 2>(acc, smem_desc(a0 + 64 * 128 + ks * 32), smem_desc(b0 + ks * 32));
#endif
                wgmma_commit();
                wgmma_wait<1>(acc);
                if (prev >= 0 && lane == 0) release(smem_addr(&empty_bar[prev]));
                prev = s;
            }
#if GEMM_PINGPONG
            if (t == 0) mbar_arrive(smem_addr(&turn_bar[1 - cw]));
#endif
            wgmma_wait<0>(acc);
            if (prev >= 0 && lane == 0) release(smem_addr(&empty_bar[prev]));

            // Fragment: register 4j + 2h + c holds row 16 warp + lane / 4 + 8h,
            // column 8j + 2 (lane % 4) + c.
            const int r0 = warp * 16 + lane / 4, c0 = (lane % 4) * 2;
            if (direct) {
                // The common epilogue (alpha, bias, D in the operands' dtype,
                // rows of D contiguous) straight from the registers. Each
                // lane quad holds 8 columns x 2 rows of two adjacent n8
                // blocks as 4-byte pairs; a transpose within the quad gives
                // every lane 8 consecutive columns of one row: one 16-byte
                // store, and a warp fills whole 32-byte sectors.
                u16* dz = (u16*)d + e.d.off + (i64)w.z * e.d.bs;
                const int q = lane % 4;
#pragma unroll
                for (int mh = 0; mh < MH; ++mh)
#pragma unroll
                for (int j = 0; j < GEMM_BN / 8; j += 2) {
                    unsigned wd[4];
#pragma unroll
                    for (int jj = 0; jj < 2; ++jj) {
                        const int n = w.n0 + 8 * (j + jj) + c0;
                        float b0 = 0.0f, b1 = 0.0f;
                        if (e.has_bias && n < N) {
                            b0 = load_f32(bias, e.bias_dtype, e.bias_off + n * e.bias_stride);
                            if (n + 1 < N) b1 = load_f32(bias, e.bias_dtype, e.bias_off + (n + 1) * e.bias_stride);
                        }
#pragma unroll
                        for (int h = 0; h < 2; ++h)
                            wd[2 * jj + h] = pack2(e.alpha * acc[mh * (GEMM_BN / 2) + 4 * (j + jj) + 2 * h] + b0,
                                                   e.alpha * acc[mh * (GEMM_BN / 2) + 4 * (j + jj) + 2 * h + 1] + b1);
                    }
                    quad_transpose(wd, lane);
                    const int m = w.m0 + (WG_MH0(cw) + mh) * 64 + r0 + 8 * (q & 1), n = w.n0 + 8 * (j + (q >> 1));
                    if (m >= M || n >= N) continue;
                    u16* p = dz + (i64)m * e.d.rs + n;
                    if (vec16 && n + 8 <= N) {
                        *(uint4*)p = make_uint4(wd[0], wd[1], wd[2], wd[3]);
                    } else {
#pragma unroll
                        for (int t = 0; t < 8; ++t)
                            if (n + t < N) p[t] = (u16)(wd[t / 2] >> (16 * (t % 2)));
                    }
                }
                continue;
            }
            // Every other epilogue, 32 columns at a time through shared memory
            // so that the stores run along rows and the epilogue's code is
            // emitted once per chunk.
            float* out = partial ? partial + ((i64)w.split * batch + w.z) * M * N : nullptr;
#pragma unroll
            for (int mh = 0; mh < MH; ++mh)
#pragma unroll
            for (int ch = 0; ch < GEMM_BN / EPI_COLS; ++ch) {
                asm volatile("bar.sync %0, 128;" ::"r"(1 + cw) : "memory");
#pragma unroll
                for (int jj = 0; jj < EPI_COLS / 8; ++jj) {
                    const int j = ch * (EPI_COLS / 8) + jj;
#pragma unroll
                    for (int h = 0; h < 2; ++h)
                        *(float2*)(epi + (r0 + 8 * h) * EPI_LD + jj * 8 + c0) =
                            make_float2(acc[mh * (GEMM_BN / 2) + 4 * j + 2 * h], acc[mh * (GEMM_BN / 2) + 4 * j + 2 * h + 1]);
                }
                asm volatile("bar.sync %0, 128;" ::"r"(1 + cw) : "memory");
#pragma unroll 1
                for (int idx = t; idx < 64 * EPI_COLS / 2; idx += 128) {
                    const int r = idx / (EPI_COLS / 2), col = (idx % (EPI_COLS / 2)) * 2;
                    const int m = w.m0 + (WG_MH0(cw) + mh) * 64 + r, n = w.n0 + ch * EPI_COLS + col;
                    if (m >= M || n >= N) continue;
                    const float v0 = epi[r * EPI_LD + col], v1 = epi[r * EPI_LD + col + 1];
                    if (out) {
                        out[(i64)m * N + n] = v0;
                        if (n + 1 < N) out[(i64)m * N + n + 1] = v1;
                    } else if (n + 1 < N) {
                        epilogue_pair(e, c, d, bias, w.z, m, n, v0, v1);
                    } else {
                        epilogue_store(e, c, d, bias, w.z, m, n, v0);
                    }
                }
            }
        }
    }
#if GEMM_CLUSTER > 1
    // No block may leave while its partner can still multicast into its
    // shared memory or arrive on its barriers.
    cluster_sync();
#endif
#else
    // Never launched below sm_90a (the host checks the architecture); the
    // stub keeps the module compilable for every target.
    __trap();
#endif
}
