// copy / cast between two strided views of one shape: dst[i] = src[i],
// converted through f32 (exact for every f32/f16/bf16 pair it rounds into).

extern "C" __global__ void copy_strided(const void* src, const __grid_constant__ Strided s, void* dst,
                                        const __grid_constant__ Strided d, i64 n) {
    GRID_STRIDE_LOOP(i, n) {
        store_f32(dst, d.dtype, strided_index(d, i), load_f32(src, s.dtype, strided_index(s, i)));
    }
}

// The same for `rows` rows of `cols` unit-stride elements into a contiguous
// [rows, cols] buffer: row r of the source starts at element
// off + (r / per) * bs + (r % per) * rs (`per` rows a matrix, matrices `bs`
// apart). One division per row instead of copy_strided's per element and
// dimension, which held its casts at about 3% of the copy bandwidth (the
// 7B gate+up f16 weight to f32: about 10 ms, H100, bench/results/
// 2026-12-06-nvidia-h100-gemm-bench-session14-mixed-strided-copy.log).
// Threads walk the columns, ROW_UNROLL elements a step (blockDim.x apart, so
// that each of the loads is coalesced and all of them are in flight at
// once: with one element a step, the 196 f32 -> f16 casts of a 512-token
// prompt on a 1.5B model, 512 x 1536 and 512 x 8960, ran at about 20% of
// the copy bandwidth, 13 us each on average, each block waiting on one load
// per thread), blocks of y the rows (both grid-stride).
#define ROW_UNROLL 4
extern "C" __global__ void convert_rows(const void* src, int sdt, i64 off, i64 rs, i64 bs, i64 per, void* dst, int ddt,
                                        i64 rows, i64 cols) {
    const i64 step = (i64)gridDim.x * blockDim.x * ROW_UNROLL;
    for (i64 r = blockIdx.y; r < rows; r += gridDim.y) {
        const i64 s0 = off + (r / per) * bs + (r % per) * rs, d0 = r * cols;
        for (i64 c0 = (i64)blockIdx.x * blockDim.x * ROW_UNROLL + threadIdx.x; c0 < cols; c0 += step) {
            float v[ROW_UNROLL];
#pragma unroll
            for (int u = 0; u < ROW_UNROLL; ++u) {
                const i64 c = c0 + u * blockDim.x;
                v[u] = c < cols ? load_f32(src, sdt, s0 + c) : 0.0f;
            }
#pragma unroll
            for (int u = 0; u < ROW_UNROLL; ++u) {
                const i64 c = c0 + u * blockDim.x;
                if (c < cols) store_f32(dst, ddt, d0 + c, v[u]);
            }
        }
    }
}

// Rows for the f16 tensor cores: as convert_rows into f16 (the source's
// elements `cs` apart), each row first multiplied by a power of two 1 / s
// that brings its largest magnitude under 2^15, s to scale[r], for the
// GEMM's epilogue to multiply the row's sums by. f16's largest finite value
// is 65504: a model's outlier activations past it (a synthetic Qwen2.5-1.5B
// fed its down projection 6.0e5) would round to infinity. Scaling by a power
// of two is exact short of f16's subnormals, which only the smallest
// values of such a row reach; a row that fits (the common case) keeps s = 1
// and convert_rows' rounding. A row holding infinity keeps s = 1 too, and
// the infinity. One block of threads a row, grid-stride over the rows; the
// row is read twice (its largest magnitude, then the rounding), the second
// time mostly from L2, ROW_UNROLL loads a thread in flight in each pass (with
// one, 3.5% of a 7B prompt's time, about 0.55 of the copy bandwidth: H100,
// bench/results/2026-12-07-session22.md).
extern "C" __global__ void round_rows_f16_scaled(const void* src, int sdt, i64 off, i64 rs, i64 cs, i64 bs, i64 per,
                                                 u16* dst, float* scale, i64 rows, i64 cols) {
    __shared__ float warp_max[32];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const i64 s0 = off + (r / per) * bs + (r % per) * rs, d0 = r * cols;
        // fmaxf drops NaN: a NaN element leaves the scale alone and stays NaN.
        float mx = 0.0f;
        for (i64 c0 = threadIdx.x; c0 < cols; c0 += (i64)blockDim.x * ROW_UNROLL) {
            float v[ROW_UNROLL];
#pragma unroll
            for (int u = 0; u < ROW_UNROLL; ++u) {
                const i64 c = c0 + u * blockDim.x;
                v[u] = c < cols ? fabsf(load_f32(src, sdt, s0 + c * cs)) : 0.0f;
            }
#pragma unroll
            for (int u = 0; u < ROW_UNROLL; ++u) mx = fmaxf(mx, v[u]);
        }
#pragma unroll
        for (int o = 16; o; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
        if (lane == 0) warp_max[warp] = mx;
        __syncthreads();
        mx = 0.0f;
        for (int w = 0; w < warps; ++w) mx = fmaxf(mx, warp_max[w]);
        // Every thread has read warp_max before the next row writes it.
        __syncthreads();
        // mx < 2^e, so mx / 2^(e - 15) < 2^15.
        int e = 0;
        if (mx > 32768.0f && mx <= 3.4028235e38f) {
            frexpf(mx, &e);
            e -= 15;
        }
        const float inv = ldexpf(1.0f, -e);
        if (threadIdx.x == 0) scale[r] = ldexpf(1.0f, e);
        for (i64 c0 = threadIdx.x; c0 < cols; c0 += (i64)blockDim.x * ROW_UNROLL) {
            float v[ROW_UNROLL];
#pragma unroll
            for (int u = 0; u < ROW_UNROLL; ++u) {
                const i64 c = c0 + u * blockDim.x;
                v[u] = c < cols ? load_f32(src, sdt, s0 + c * cs) : 0.0f;
            }
#pragma unroll
            for (int u = 0; u < ROW_UNROLL; ++u) {
                const i64 c = c0 + u * blockDim.x;
                if (c < cols) dst[d0 + c] = f32_to_f16(v[u] * inv);
            }
        }
    }
}

// round_rows_f16_scaled for f32 rows of unit column stride whose every row
// starts 16-byte aligned, with cols a multiple of 4 (a model's activations):
// float4 loads and 8-byte stores, the same operations per element (so the
// same bits); a row of at most blockDim.x * 4 * ROW_UNROLL elements (4096
// with 256 threads: the 7B's hidden rows) stays in registers between the
// two passes and is read once.
extern "C" __global__ void round_rows_f16_scaled_f32x4(const float* src, i64 off, i64 rs, i64 bs, i64 per, u16* dst,
                                                      float* scale, i64 rows, i64 cols) {
    __shared__ float warp_max[32];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    const i64 quads = cols / 4, step = (i64)blockDim.x * ROW_UNROLL;
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const float4* s = (const float4*)(src + off + (r / per) * bs + (r % per) * rs);
        uint2* d = (uint2*)(dst + r * cols);
        float4 v[ROW_UNROLL];
        float mx = 0.0f;
        for (i64 q0 = threadIdx.x; q0 < quads; q0 += step) {
#pragma unroll
            for (int u = 0; u < ROW_UNROLL; ++u) {
                const i64 q = q0 + u * blockDim.x;
                v[u] = q < quads ? s[q] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            }
#pragma unroll
            for (int u = 0; u < ROW_UNROLL; ++u)
                mx = fmaxf(fmaxf(fmaxf(mx, fabsf(v[u].x)), fabsf(v[u].y)), fmaxf(fabsf(v[u].z), fabsf(v[u].w)));
        }
#pragma unroll
        for (int o = 16; o; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
        if (lane == 0) warp_max[warp] = mx;
        __syncthreads();
        mx = 0.0f;
        for (int w = 0; w < warps; ++w) mx = fmaxf(mx, warp_max[w]);
        __syncthreads();
        int e = 0;
        if (mx > 32768.0f && mx <= 3.4028235e38f) {
            frexpf(mx, &e);
            e -= 15;
        }
        const float inv = ldexpf(1.0f, -e);
        if (threadIdx.x == 0) scale[r] = ldexpf(1.0f, e);
        for (i64 q0 = threadIdx.x; q0 < quads; q0 += step) {
            if (quads > step) {
#pragma unroll
                for (int u = 0; u < ROW_UNROLL; ++u) {
                    const i64 q = q0 + u * blockDim.x;
                    if (q < quads) v[u] = s[q];
                }
            }
#pragma unroll
            for (int u = 0; u < ROW_UNROLL; ++u) {
                const i64 q = q0 + u * blockDim.x;
                if (q < quads)
                    d[q] = make_uint2(f32_to_f16(v[u].x * inv) | ((unsigned)f32_to_f16(v[u].y * inv) << 16),
                                      f32_to_f16(v[u].z * inv) | ((unsigned)f32_to_f16(v[u].w * inv) << 16));
            }
        }
    }
}
