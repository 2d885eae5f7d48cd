// Microbenchmark (issue 7, session 10): what one SM can do per 64x64x64 k
// step of our 64-row wgmma tile, with the operands already in shared memory.
// - the consumer warpgroups' chains of four m64n64k16 wgmma (both operands
//   from shared memory), one or two warpgroups;
// - the same while a producer thread streams 16 KB per step into shared
//   memory with bulk copies (cp.async.bulk) from a 512 KB buffer that stays
//   in L2: the SM's intake rate, and whether the writes slow the wgmma.
// "consumer alone" is the consumers' cycles per step; the next column is the
// block's (until the copies are done too).
// Build and run on the GPU machine (nvcc, no Rust needed):
//   nvcc -O3 -gencode arch=compute_90a,code=sm_90a -o wgmma_intake wgmma_intake.cu && ./wgmma_intake
// Results: bench/results/2026-11-27-nvidia-h200-gemm-bench-session10.md.
#include <cstdio>
#include <cstdint>
#include <cuda_runtime.h>
typedef unsigned long long u64;

__device__ __forceinline__ unsigned smem_u32(const void* p) { return (unsigned)__cvta_generic_to_shared(p); }
__device__ __forceinline__ u64 desc(unsigned addr) {
    return (u64)((addr & 0x3ffff) >> 4) | ((u64)1 << 16) | ((u64)(1024 >> 4) << 32) | ((u64)1 << 62);
}
#define WG64(d, a, b, acc) asm volatile("{ .reg .pred p; setp.ne.b32 p, %34, 0;\n" \
 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, 1, 0, 0; }" \
 : "+f"(d[0]),"+f"(d[1]),"+f"(d[2]),"+f"(d[3]),"+f"(d[4]),"+f"(d[5]),"+f"(d[6]),"+f"(d[7]),"+f"(d[8]),"+f"(d[9]),"+f"(d[10]),"+f"(d[11]),"+f"(d[12]),"+f"(d[13]),"+f"(d[14]),"+f"(d[15]), \
   "+f"(d[16]),"+f"(d[17]),"+f"(d[18]),"+f"(d[19]),"+f"(d[20]),"+f"(d[21]),"+f"(d[22]),"+f"(d[23]),"+f"(d[24]),"+f"(d[25]),"+f"(d[26]),"+f"(d[27]),"+f"(d[28]),"+f"(d[29]),"+f"(d[30]),"+f"(d[31]) \
 : "l"(a), "l"(b), "r"(acc))

__device__ __forceinline__ void mbar_init(unsigned bar, unsigned c) { asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(c)); }
__device__ __forceinline__ void mbar_wait(unsigned bar, unsigned ph) {
    unsigned done;
    do { asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }" : "=r"(done) : "r"(bar), "r"(ph) : "memory"); } while (!done);
}

// STAGES smem stages of A (64x64) + B (64x64); CONS consumer warpgroups each
// running ITERS k tiles of 4 wgmma m64n64k16 (stage it % STAGES, own or shared
// stages); COPY: a producer thread bulk-copies 16 KB per k tile into a separate
// ring from a small L2-resident global buffer.
template <int CONS, int COPY, int PAIR>
__global__ void __launch_bounds__(128 * (CONS + 1)) mb(const char* src, int iters, float* out, long long* cyc) {
    extern __shared__ __align__(1024) unsigned char sm[];
    __shared__ __align__(8) u64 bar[8];
    const unsigned raw = smem_u32(sm), base = (raw + 1023) & ~1023u;
    const int wg = threadIdx.x / 128;
    const unsigned ring = base + 8 * 16384;  // 4 x 16 KB copy ring after 8 stages
    if (threadIdx.x == 0) { for (int i = 0; i < 8; ++i) mbar_init(smem_u32(&bar[i]), 1); asm volatile("fence.mbarrier_init.release.cluster;"); }
    __syncthreads();
    long long t0 = clock64();
    if (wg == 0) {
        if (COPY && threadIdx.x == 0) {
            // 16 KB per iteration per consumer-equivalent k tile, as 2 x 8 KB bulk copies, 4-deep ring.
            const int total = iters * CONS;
            for (int i = 0; i < total; ++i) {
                const int s = i % 4;
                const unsigned b = smem_u32(&bar[s]);
                if (i >= 4) mbar_wait(b, ((i / 4) - 1) & 1);
                asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(b), "r"(16384) : "memory");
                for (int h = 0; h < 2; ++h)
                    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
                                 ::"r"(ring + s * 16384 + h * 8192), "l"(src + ((i * 2 + h) % 64) * 8192), "r"(8192), "r"(b) : "memory");
            }
            mbar_wait(smem_u32(&bar[(total - 1) % 4]), ((total - 1) / 4) & 1);
        }
    } else {
        const int cw = wg - 1;
        float d[32];
        for (int i = 0; i < 32; ++i) d[i] = 0.f;
        const u64 da = desc(base), db = desc(base + 4 * 16384);
        for (int it = 0; it < iters; ++it) {
            const int s = (PAIR ? (2 * it + cw) : it) % 4;
            const u64 a = da + s * (8192 >> 4), b = db + s * (8192 >> 4);
            asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
#pragma unroll
            for (int k = 0; k < 4; ++k) WG64(d, a + 2 * k, b + 2 * k, 1);
            asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
            asm volatile("wgmma.wait_group.sync.aligned 1;" ::: "memory");
        }
        asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory");
        float s = 0; for (int i = 0; i < 32; ++i) s += d[i];
        if (s == 12345.f) out[threadIdx.x] = s;
        if (threadIdx.x == 128) cyc[1024 + blockIdx.x] = clock64() - t0;
    }
    __syncthreads();
    if (threadIdx.x == 0) cyc[blockIdx.x] = clock64() - t0;
}

template <int CONS, int COPY, int PAIR>
void run(const char* name, const char* src, float* out, long long* cyc, int blocks) {
    const int iters = 4000;
    auto k = mb<CONS, COPY, PAIR>;
    const int smem = 12 * 16384 + 1024;
    cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    for (int w = 0; w < 3; ++w) k<<<blocks, 128 * (CONS + 1), smem>>>(src, iters, out, cyc);
    cudaEvent_t a, b; cudaEventCreate(&a); cudaEventCreate(&b);
    cudaEventRecord(a);
    k<<<blocks, 128 * (CONS + 1), smem>>>(src, iters, out, cyc);
    cudaEventRecord(b); cudaEventSynchronize(b);
    float ms; cudaEventElapsedTime(&ms, a, b);
    long long h[1], hc[1]; cudaMemcpy(h, cyc, 8, cudaMemcpyDeviceToHost); cudaMemcpy(hc, cyc + 1024, 8, cudaMemcpyDeviceToHost);
    cudaError_t e = cudaGetLastError();
    // per consumer k tile (64x64x64): cycles of block 0 / iters; all consumers together
    printf("%-40s blocks %3d: %.1f us, consumer alone %.0f, %.0f cycles per k tile per consumer, %.0f cycles per k tile of the SM, %.0f TFLOP/s %s\n",
           name, blocks, ms * 1e3, (double)hc[0] / iters, (double)h[0] / iters, (double)h[0] / iters / CONS,
           2.0 * 64 * 64 * 64 * iters * CONS * blocks / (ms * 1e-3) / 1e12, e ? cudaGetErrorString(e) : "");
}

int main() {
    char* src; float* out; long long* cyc;
    cudaMalloc(&src, 64 * 8192); cudaMemset(src, 0, 64 * 8192);
    cudaMalloc(&out, 4096); cudaMalloc(&cyc, 8 * 2048);
    int clk; cudaDeviceGetAttribute(&clk, cudaDevAttrClockRate, 0); printf("clock %d MHz\n", clk / 1000);
    for (int blocks : {112}) {
        run<1, 0, 0>("1 consumer, no copy", src, out, cyc, blocks);
        run<2, 0, 0>("2 consumers, same stages, no copy", src, out, cyc, blocks);
        run<2, 0, 1>("2 consumers, own stages, no copy", src, out, cyc, blocks);
        run<1, 1, 0>("1 consumer, 16 KB copy per k tile", src, out, cyc, blocks);
        run<2, 1, 1>("2 consumers own stages, 16 KB copy each", src, out, cyc, blocks);
    }
    return 0;
}
