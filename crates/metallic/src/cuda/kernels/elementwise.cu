// Elementwise ops over strided views already broadcast to the output's shape
// (stride 0 repeats). One thread per element, f32 arithmetic, one rounding on
// store. An input that is the output itself (in-place add) is read before the
// same thread writes the same element.

#define OP_ADD 0
#define OP_MUL 1
#define OP_SILU 0
#define OP_SCALE 1

__device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }

extern "C" __global__ void binary(int op, const void* a, Strided sa, const void* b, Strided sb,
                                  void* out, Strided so, i64 n) {
    GRID_STRIDE_LOOP(i, n) {
        const float x = load_f32(a, sa.dtype, strided_index(sa, i));
        const float y = load_f32(b, sb.dtype, strided_index(sb, i));
        store_f32(out, so.dtype, strided_index(so, i), op == OP_ADD ? x + y : x * y);
    }
}

extern "C" __global__ void unary(int op, float scale, const void* x, Strided sx, void* out, Strided so, i64 n) {
    GRID_STRIDE_LOOP(i, n) {
        const float v = load_f32(x, sx.dtype, strided_index(sx, i));
        store_f32(out, so.dtype, strided_index(so, i), op == OP_SILU ? silu(v) : scale * v);
    }
}

extern "C" __global__ void swiglu(const void* gate, Strided sg, const void* up, Strided su,
                                  void* out, Strided so, i64 n) {
    GRID_STRIDE_LOOP(i, n) {
        const float g = load_f32(gate, sg.dtype, strided_index(sg, i));
        const float u = load_f32(up, su.dtype, strided_index(su, i));
        store_f32(out, so.dtype, strided_index(so, i), silu(g) * u);
    }
}
