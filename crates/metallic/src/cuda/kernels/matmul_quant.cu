// Matmul against GGUF block weights: T[b, m, n] = sum_k A[b, m, k] * W[n, k],
// A in f32 (contiguous [batch, M, K]), W rows of blocks, T in f32; the
// shared epilogue kernel (matmul.cu) then applies alpha, C, bias and the
// activation and writes D.
//
// One warp per weight row n and MT rows of A: the warp walks the row's
// blocks, each lane decoding element `lane (+ 32 t)` of the block, so every
// weight byte is read once per MT activation rows; the MT partial sums are
// reduced across the warp at the end. Simple and correct; the fast GEMV and
// MMA paths are later work.

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
