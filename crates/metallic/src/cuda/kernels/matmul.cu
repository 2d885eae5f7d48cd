// Float matmul pieces: the epilogue pass after the vendor and quantized
// products, the split-K sum of our GEMMs, and our simple tiled SIMT GEMM
// (the `Native` GEMM for the dtype pairs that gemm_f32.cu and the
// tensor-core GEMMs do not take).
// The epilogue itself (struct Epilogue, epilogue_store) is in
// matmul_epilogue.cuh.

// D from an f32 product T, contiguous [batch, M, N] (the vendor and
// quantized paths).
extern "C" __global__ void matmul_epilogue(const float* t, Epilogue e, const void* c, void* d, const void* bias, int M,
                                           int N, i64 total) {
    GRID_STRIDE_LOOP(i, total) {
        const i64 n = i % N, m = (i / N) % M, z = i / ((i64)M * N);
        epilogue_store(e, c, d, bias, z, m, n, t[i]);
    }
}

// The split-K sum of our wgmma and f32 GEMMs (gemm_mma.cu sums its own in
// the kernel, by each tile's last block):
// `splits` f32 partial products ([split][batch][M][N]) added in a fixed
// order (deterministic: 0 + p0 + p1 + ..), then the epilogue. Where N is a
// multiple of 4, a thread takes four neighbouring columns and issues the
// loads of up to SPLITK_BATCH splits before adding them: one L2 round trip
// per four elements and batch of splits (one dependent load per element
// and split made the sum a chain of round trips: 6.8 us for 4 splits of
// 512 x 896 on an H200, against a 2 us floor for its 8 MB).
// On sm_90 and newer the host launches it as the GEMM's programmatic
// dependent (PDL): its blocks may start while the GEMM's last ones run, and
// wait here until the GEMM has finished and its partials are visible; the
// launch and the blocks' start-up no longer sit between the two kernels
// (PTX ISA "griddepcontrol"; launched plainly, the wait returns at once).
#define SPLITK_BATCH 8
extern "C" __global__ void gemm_splitk_epilogue(const float* partial, int splits, Epilogue e, const void* c, void* d,
                                                const void* bias, int M, int N, i64 total) {
    grid_dependency_wait();
    if (!(N & 3)) {
        GRID_STRIDE_LOOP(q, total / 4) {
            const i64 i = 4 * q, row = i / N, n = i - row * N, m = row % M, z = row / M;
            float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            for (int s0 = 0; s0 < splits; s0 += SPLITK_BATCH) {
                float4 v[SPLITK_BATCH];
#pragma unroll
                for (int s = 0; s < SPLITK_BATCH; ++s)
                    if (s0 + s < splits) v[s] = __ldcs((const float4*)(partial + (s0 + s) * total + i));
#pragma unroll
                for (int s = 0; s < SPLITK_BATCH; ++s)
                    if (s0 + s < splits) {
                        acc.x += v[s].x;
                        acc.y += v[s].y;
                        acc.z += v[s].z;
                        acc.w += v[s].w;
                    }
            }
            epilogue_pair(e, c, d, bias, z, m, n, acc.x, acc.y);
            epilogue_pair(e, c, d, bias, z, m, n + 2, acc.z, acc.w);
        }
        return;
    }
    GRID_STRIDE_LOOP(i, total) {
        const i64 n = i % N, m = (i / N) % M, z = i / ((i64)M * N);
        float acc = 0.0f;
        for (int s = 0; s < splits; ++s) acc += partial[s * total + i];
        epilogue_store(e, c, d, bias, z, m, n, acc);
    }
}

// Our tiled GEMM: 64x64 output tiles, K in steps of 16 through shared
// memory, 256 threads each accumulating a 4x4 sub-tile in registers (rows
// ty + 16 i, columns tx + 16 j). Operands are read through their strides
// (any transpose, padding or broadcast batch), converted to f32 on load.
#define GEMM_BM 64
#define GEMM_BN 64
#define GEMM_BK 16

template <int DA, int DB>
__device__ __forceinline__ void gemm_simt(const void* a, Operand ga, const void* b, Operand gb, const Epilogue& e,
                                          const void* c, void* d, const void* bias, int M, int N, int K) {
    __shared__ float As[GEMM_BK][GEMM_BM + 1];
    __shared__ float Bs[GEMM_BK][GEMM_BN + 1];
    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    const i64 z = blockIdx.z;
    const int m0 = blockIdx.y * GEMM_BM, n0 = blockIdx.x * GEMM_BN;
    const i64 a0 = ga.off + z * ga.bs, b0 = gb.off + z * gb.bs;
    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
    for (int k0 = 0; k0 < K; k0 += GEMM_BK) {
        // 1024 elements of each tile, 4 per thread.
#pragma unroll
        for (int l = 0; l < 4; ++l) {
            const int idx = threadIdx.x + l * 256;
            const int kk = idx & 15, mm = idx >> 4;
            const int m = m0 + mm, k = k0 + kk;
            As[kk][mm] = (m < M && k < K) ? load_t<DA>(a, a0 + m * ga.rs + k * ga.cs) : 0.0f;
            const int nn = idx & 63, kb = idx >> 6;
            const int n = n0 + nn, k2 = k0 + kb;
            Bs[kb][nn] = (n < N && k2 < K) ? load_t<DB>(b, b0 + k2 * gb.rs + n * gb.cs) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < GEMM_BK; ++kk) {
            float av[4], bv[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) av[i] = As[kk][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < 4; ++j) bv[j] = Bs[kk][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] += av[i] * bv[j];
        }
        __syncthreads();
    }
    // The epilogue runs from shared memory in a rolled loop: one inlined
    // copy of its dtype switches and activations instead of sixteen (which
    // made the module ~40x larger and minutes slower to compile).
    __shared__ float Cs[GEMM_BM][GEMM_BN + 1];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) Cs[ty + 16 * i][tx + 16 * j] = acc[i][j];
    __syncthreads();
#pragma unroll 1
    for (int idx = threadIdx.x; idx < GEMM_BM * GEMM_BN; idx += 256) {
        const int mm = idx / GEMM_BN, nn = idx % GEMM_BN;
        const int m = m0 + mm, n = n0 + nn;
        if (m < M && n < N) epilogue_store(e, c, d, bias, z, m, n, Cs[mm][nn]);
    }
}

#define GEMM_SIMT(na, DA, nb, DB)                                                                                 \
    extern "C" __global__ void __launch_bounds__(256) gemm_simt_64x64x16_##na##_##nb(                            \
        const void* a, Operand ga, const void* b, Operand gb, Epilogue e, const void* c, void* d, const void* bias, \
        int M, int N, int K) {                                                                                    \
        gemm_simt<DA, DB>(a, ga, b, gb, e, c, d, bias, M, N, K);                                                  \
    }
#define GEMM_SIMT_B(na, DA)              \
    GEMM_SIMT(na, DA, f32, DT_F32)       \
    GEMM_SIMT(na, DA, f16, DT_F16)       \
    GEMM_SIMT(na, DA, bf16, DT_BF16)
GEMM_SIMT_B(f32, DT_F32)
GEMM_SIMT_B(f16, DT_F16)
GEMM_SIMT_B(bf16, DT_BF16)
