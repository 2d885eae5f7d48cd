// Elementwise ops over strided views already broadcast to the output's shape
// (stride 0 repeats). One thread per element, f32 arithmetic, one rounding on
// store. An input that is the output itself (in-place add) is read before the
// same thread writes the same element.

#define OP_ADD 0
#define OP_MUL 1
#define OP_SILU 0
#define OP_SCALE 1

__device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }

extern "C" __global__ void binary(int op, const void* a, const __grid_constant__ Strided sa, const void* b,
                                  const __grid_constant__ Strided sb, void* out, const __grid_constant__ Strided so,
                                  i64 n) {
    GRID_STRIDE_LOOP(i, n) {
        const float x = load_f32(a, sa.dtype, strided_index(sa, i));
        const float y = load_f32(b, sb.dtype, strided_index(sb, i));
        store_f32(out, so.dtype, strided_index(so, i), op == OP_ADD ? x + y : x * y);
    }
}

extern "C" __global__ void unary(int op, float scale, const void* x, const __grid_constant__ Strided sx, void* out,
                                 const __grid_constant__ Strided so, i64 n) {
    GRID_STRIDE_LOOP(i, n) {
        const float v = load_f32(x, sx.dtype, strided_index(sx, i));
        store_f32(out, so.dtype, strided_index(so, i), op == OP_SILU ? silu(v) : scale * v);
    }
}

extern "C" __global__ void swiglu(const void* gate, const __grid_constant__ Strided sg, const void* up,
                                  const __grid_constant__ Strided su, void* out, const __grid_constant__ Strided so,
                                  i64 n) {
    GRID_STRIDE_LOOP(i, n) {
        const float g = load_f32(gate, sg.dtype, strided_index(sg, i));
        const float u = load_f32(up, su.dtype, strided_index(su, i));
        store_f32(out, so.dtype, strided_index(so, i), silu(g) * u);
    }
}

// swiglu where every view's last dimension is unit-stride (the gate and up
// halves of the fused projection, a contiguous output): a row at a time, one
// row_start per row and view where `swiglu` spends a chain of 64-bit
// divisions per element and view (0.55 ms a layer for 512 rows of a
// synthetic Qwen2.5-1.5B, 28% of its prompt processing; H100, bench/results/
// 2026-12-06-nvidia-h100-profile-1.5b-pp512-session14.log). Blocks of y walk
// the rows, threads the columns, ROW_UNROLL elements a step blockDim.x apart
// (all their loads in flight at once; both grid-stride).
#define ROW_UNROLL 4
extern "C" __global__ void swiglu_rows(const void* gate, const __grid_constant__ Strided sg, const void* up,
                                       const __grid_constant__ Strided su, void* out,
                                       const __grid_constant__ Strided so, i64 rows, i64 cols) {
    const i64 step = (i64)gridDim.x * blockDim.x * ROW_UNROLL;
    for (i64 r = blockIdx.y; r < rows; r += gridDim.y) {
        const i64 g0 = row_start(sg, r), u0 = row_start(su, r), o0 = row_start(so, r);
        for (i64 c0 = (i64)blockIdx.x * blockDim.x * ROW_UNROLL + threadIdx.x; c0 < cols; c0 += step) {
            float g[ROW_UNROLL], u[ROW_UNROLL];
#pragma unroll
            for (int k = 0; k < ROW_UNROLL; ++k) {
                const i64 c = c0 + k * blockDim.x;
                g[k] = c < cols ? load_f32(gate, sg.dtype, g0 + c) : 0.0f;
                u[k] = c < cols ? load_f32(up, su.dtype, u0 + c) : 0.0f;
            }
#pragma unroll
            for (int k = 0; k < ROW_UNROLL; ++k) {
                const i64 c = c0 + k * blockDim.x;
                if (c < cols) store_f32(out, so.dtype, o0 + c, silu(g[k]) * u[k]);
            }
        }
    }
}
