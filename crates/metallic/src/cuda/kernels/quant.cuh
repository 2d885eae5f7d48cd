// GGUF block formats on the GPU: element i of one block, computed with the
// same f32 operations in the same order as the scalar reference
// (crate::quant::dequantize_row, bit-exact with ggml's dequantize_row_*).
// Layouts are crate::quant::blocks (ggml-common.h); `__fmul_rn` and friends
// stop the compiler from fusing a multiply and an add into one rounding, so
// the values match the reference bit for bit.
//
// Fields are read byte by byte: blocks of 18, 22 or 110 bytes leave their
// f16 scales only 2-byte aligned.

#define QK 32
#define QK_K 256

// The block types, numbered as their host wrapper instantiates them.
#define QT_Q4_0 0
#define QT_Q4_1 1
#define QT_Q5_0 2
#define QT_Q5_1 3
#define QT_Q8_0 4
#define QT_Q8_1 5
#define QT_Q2_K 6
#define QT_Q3_K 7
#define QT_Q4_K 8
#define QT_Q5_K 9
#define QT_Q6_K 10
#define QT_Q8_K 11

__device__ __forceinline__ float ld_f16(const u8* p) { return f16_to_f32((u16)(p[0] | (p[1] << 8))); }

__device__ __forceinline__ float ld_f32(const u8* p) {
    return __uint_as_float((unsigned)p[0] | ((unsigned)p[1] << 8) | ((unsigned)p[2] << 16) | ((unsigned)p[3] << 24));
}

__device__ __forceinline__ unsigned ld_u32(const u8* p) {
    return (unsigned)p[0] | ((unsigned)p[1] << 8) | ((unsigned)p[2] << 16) | ((unsigned)p[3] << 24);
}

// Low nibbles hold elements 0..16, high nibbles 16..32.
__device__ __forceinline__ int nibble32(const u8* qs, int i) { return i < 16 ? (qs[i] & 15) : (qs[i - 16] >> 4); }

// K-quant element: (d * sc) * q - dmin * m, as KUnpacked::dequantize.
__device__ __forceinline__ float kq(float d, int sc, int q, float dmin, int m) {
    return __fsub_rn(__fmul_rn(__fmul_rn(d, (float)sc), (float)q), __fmul_rn(dmin, (float)m));
}

// ggml's get_scale_min_k4: the j-th 6-bit (scale, min) pair of Q4_K/Q5_K.
__device__ __forceinline__ void scale_min_k4(int j, const u8* s, int* sc, int* m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

template <int T> struct Q;

template <> struct Q<QT_Q4_0> {
    static constexpr int BE = QK, BB = 18;
    __device__ static float get(const u8* b, int i) { return __fmul_rn((float)(nibble32(b + 2, i) - 8), ld_f16(b)); }
};

template <> struct Q<QT_Q4_1> {
    static constexpr int BE = QK, BB = 20;
    __device__ static float get(const u8* b, int i) {
        return __fadd_rn(__fmul_rn((float)nibble32(b + 4, i), ld_f16(b)), ld_f16(b + 2));
    }
};

template <> struct Q<QT_Q5_0> {
    static constexpr int BE = QK, BB = 22;
    __device__ static float get(const u8* b, int i) {
        const int q = nibble32(b + 6, i) | (((ld_u32(b + 2) >> i) & 1) << 4);
        return __fmul_rn((float)(q - 16), ld_f16(b));
    }
};

template <> struct Q<QT_Q5_1> {
    static constexpr int BE = QK, BB = 24;
    __device__ static float get(const u8* b, int i) {
        const int q = nibble32(b + 8, i) | (((ld_u32(b + 4) >> i) & 1) << 4);
        return __fadd_rn(__fmul_rn((float)q, ld_f16(b)), ld_f16(b + 2));
    }
};

template <> struct Q<QT_Q8_0> {
    static constexpr int BE = QK, BB = 34;
    __device__ static float get(const u8* b, int i) { return __fmul_rn((float)(signed char)b[2 + i], ld_f16(b)); }
};

template <> struct Q<QT_Q8_1> {
    static constexpr int BE = QK, BB = 36;
    __device__ static float get(const u8* b, int i) { return __fmul_rn((float)(signed char)b[4 + i], ld_f16(b)); }
};

// Q2_K: scales[16] @0, qs[64] @16, d @80, dmin @82.
template <> struct Q<QT_Q2_K> {
    static constexpr int BE = QK_K, BB = 84;
    __device__ static float get(const u8* b, int i) {
        const int half = i >> 7, shift = (i & 127) >> 5, l = i & 31;
        const int q = (b[16 + half * 32 + l] >> (2 * shift)) & 3;
        const int sc = b[i >> 4];
        return kq(ld_f16(b + 80), sc & 15, q, ld_f16(b + 82), sc >> 4);
    }
};

// Q3_K: hmask[32] @0, qs[64] @32, scales[12] @96, d @108.
template <> struct Q<QT_Q3_K> {
    static constexpr int BE = QK_K, BB = 110;
    __device__ static float get(const u8* b, int i) {
        const int group = i >> 5, half = group >> 2, shift = group & 3, l = i & 31;
        const int low = (b[32 + half * 32 + l] >> (2 * shift)) & 3;
        const int q = low - ((b[l] & (1 << group)) ? 0 : 4);
        const int j = i >> 4;
        const u8* s = b + 96;
        const int lo4 = j < 8 ? (s[j] & 15) : (s[j - 8] >> 4);
        const int hi2 = (s[8 + (j & 3)] >> (2 * (j >> 2))) & 3;
        return kq(ld_f16(b + 108), (lo4 | (hi2 << 4)) - 32, q, 0.0f, 0);
    }
};

// Q4_K: d @0, dmin @2, scales[12] @4, qs[128] @16.
template <> struct Q<QT_Q4_K> {
    static constexpr int BE = QK_K, BB = 144;
    __device__ static float get(const u8* b, int i) {
        const int chunk = i >> 6, l = i & 31, hi = (i >> 5) & 1;
        const u8 byte = b[16 + chunk * 32 + l];
        const int q = hi ? (byte >> 4) : (byte & 15);
        int sc, m;
        scale_min_k4(i >> 5, b + 4, &sc, &m);
        return kq(ld_f16(b), sc, q, ld_f16(b + 2), m);
    }
};

// Q5_K: d @0, dmin @2, scales[12] @4, qh[32] @16, qs[128] @48.
template <> struct Q<QT_Q5_K> {
    static constexpr int BE = QK_K, BB = 176;
    __device__ static float get(const u8* b, int i) {
        const int chunk = i >> 6, l = i & 31, hi = (i >> 5) & 1;
        const u8 byte = b[48 + chunk * 32 + l];
        const int g = 2 * chunk + hi;
        const int q = (hi ? (byte >> 4) : (byte & 15)) | (((b[16 + l] >> g) & 1) << 4);
        int sc, m;
        scale_min_k4(i >> 5, b + 4, &sc, &m);
        return kq(ld_f16(b), sc, q, ld_f16(b + 2), m);
    }
};

// Q6_K: ql[128] @0, qh[64] @128, scales[16] (i8) @192, d @208.
template <> struct Q<QT_Q6_K> {
    static constexpr int BE = QK_K, BB = 210;
    __device__ static float get(const u8* b, int i) {
        const int half = i >> 7, g = (i & 127) >> 5, l = i & 31;
        const int low = (b[half * 64 + l + 32 * (g & 1)] >> (4 * (g >> 1))) & 15;
        const int high = (b[128 + half * 32 + l] >> (2 * g)) & 3;
        const int q = (low | (high << 4)) - 32;
        return kq(ld_f16(b + 208), (int)(signed char)b[192 + (i >> 4)], q, 0.0f, 0);
    }
};

// Q8_K: d (f32) @0, qs[256] (i8) @4, bsums @260.
template <> struct Q<QT_Q8_K> {
    static constexpr int BE = QK_K, BB = 292;
    __device__ static float get(const u8* b, int i) { return __fmul_rn((float)(signed char)b[4 + i], ld_f32(b)); }
};

// Parts of a block for the wide-load kernels (matmul_quant.cu
// `matmul_<type>_mmv<R>`), for the block types most GGUF models use:
// V<T>::decode reads part p of LPB with a few 2- to 16-byte loads and
// yields its EPL elements as EPL / 4 runs of four consecutive ones (their
// offsets in the block in `off`), each value computed with the same f32
// operations as Q<T>::get, so bit-identical to it (tests/cuda_decode_host.rs
// checks that on the host, every element of random blocks). Integers go to
// float by the exponent trick (2^23 + q, minus 2^23: exact), not I2F, which
// issues at a sixteenth of the FMA rate.

// q in [0, 2^23), exactly.
__device__ __forceinline__ float u2f(unsigned q) { return __uint_as_float(0x4B000000u | q) - 8388608.0f; }

// Four bytes at a 2-byte aligned address.
__device__ __forceinline__ unsigned ld_u32_a2(const u8* p) {
    const u16* h = (const u16*)p;
    return (unsigned)h[0] | ((unsigned)h[1] << 16);
}

// Byte k (0..11) of the three words w1, w2, w3 (the K-quants' 12 scale bytes).
__device__ __forceinline__ int byte12(unsigned w1, unsigned w2, unsigned w3, int k) {
    const unsigned w = k < 4 ? w1 : (k < 8 ? w2 : w3);
    return (w >> (8 * (k & 3))) & 255;
}

template <int T> struct V;

// Q4_K's 6-bit scale and min of sub-block j (0..7) from the header h (d,
// dmin, then the 12 scale bytes in h.y, h.z, h.w): ggml's get_scale_min_k4.
__device__ __forceinline__ void scale_min_k4(const uint4& h, int j, int& sc, int& m) {
    if (j < 4) {
        sc = byte12(h.y, h.z, h.w, j) & 63;
        m = byte12(h.y, h.z, h.w, j + 4) & 63;
    } else {
        sc = (byte12(h.y, h.z, h.w, j + 4) & 15) | ((byte12(h.y, h.z, h.w, j - 4) >> 6) << 4);
        m = (byte12(h.y, h.z, h.w, j + 4) >> 4) | ((byte12(h.y, h.z, h.w, j) >> 6) << 4);
    }
}

// Q4_0: d @0, qs[16] @2. Part p (2 a block): bytes 8p..8p+8 of qs, whose
// low nibbles are elements 8p.., high nibbles 16 + 8p...
template <> struct V<QT_Q4_0> {
    static constexpr int LPB = 2, EPL = 16;
    __device__ static void decode(const u8* b, int p, float* w, int* off) {
        const float d = f16_to_f32(*(const u16*)b);
        const unsigned q0 = ld_u32_a2(b + 2 + 8 * p), q1 = ld_u32_a2(b + 6 + 8 * p);
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            const unsigned v = (i < 4 ? q0 : q1) >> (8 * (i & 3));
            w[i] = __fmul_rn(u2f(v & 15) - 8.0f, d);
            w[8 + i] = __fmul_rn(u2f((v >> 4) & 15) - 8.0f, d);
        }
        off[0] = 8 * p, off[1] = 8 * p + 4, off[2] = 16 + 8 * p, off[3] = 20 + 8 * p;
    }
};

// Q8_0: d @0, qs[32] (i8) @2. Part p (4 a block): elements 8p..8p+8.
template <> struct V<QT_Q8_0> {
    static constexpr int LPB = 4, EPL = 8;
    __device__ static void decode(const u8* b, int p, float* w, int* off) {
        const float d = f16_to_f32(*(const u16*)b);
        const unsigned q0 = ld_u32_a2(b + 2 + 8 * p), q1 = ld_u32_a2(b + 6 + 8 * p);
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            // The signed byte plus 128, then minus 128: exact.
            const unsigned v = (((i < 4 ? q0 : q1) >> (8 * (i & 3))) & 255) ^ 128;
            w[i] = __fmul_rn(u2f(v) - 128.0f, d);
        }
        off[0] = 8 * p, off[1] = 8 * p + 4;
    }
};

// Q4_1 / Q5_0 / Q5_1: d @0, then m (Q4_1 / Q5_1, @2), the fifth bits qh
// (Q5_0 @2, Q5_1 @4) and qs[16] (@4, @6, @8). Part p (2 a block), as Q4_0:
// bytes 8p..8p+8 of qs, whose low nibbles are elements 8p.., high nibbles
// 16 + 8p..; with H the element j's fifth bit is bit j of qh. w = (q - 16)
// d (Q5_0) or q d + m (Q4_1, Q5_1), rounded as Q<T>::get.
template <bool H, bool MIN, int QS>
__device__ __forceinline__ void decode_legacy(const u8* b, int p, float* w, int* off) {
    const float d = f16_to_f32(*(const u16*)b), m = MIN ? f16_to_f32(*(const u16*)(b + 2)) : 0.0f;
    const unsigned q0 = ld_u32_a2(b + QS + 8 * p), q1 = ld_u32_a2(b + QS + 4 + 8 * p);
    const unsigned qh = H ? ld_u32_a2(b + QS - 4) : 0u;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        const unsigned v = (i < 4 ? q0 : q1) >> (8 * (i & 3));
        unsigned lo = v & 15, hi = (v >> 4) & 15;
        if (H) {
            lo |= ((qh >> (8 * p + i)) & 1) << 4;
            hi |= ((qh >> (16 + 8 * p + i)) & 1) << 4;
        }
        if (MIN) {
            w[i] = __fadd_rn(__fmul_rn(u2f(lo), d), m);
            w[8 + i] = __fadd_rn(__fmul_rn(u2f(hi), d), m);
        } else {
            w[i] = __fmul_rn(u2f(lo) - 16.0f, d);
            w[8 + i] = __fmul_rn(u2f(hi) - 16.0f, d);
        }
    }
    off[0] = 8 * p, off[1] = 8 * p + 4, off[2] = 16 + 8 * p, off[3] = 20 + 8 * p;
}

template <> struct V<QT_Q4_1> {
    static constexpr int LPB = 2, EPL = 16;
    __device__ static void decode(const u8* b, int p, float* w, int* off) { decode_legacy<false, true, 4>(b, p, w, off); }
};

template <> struct V<QT_Q5_0> {
    static constexpr int LPB = 2, EPL = 16;
    __device__ static void decode(const u8* b, int p, float* w, int* off) { decode_legacy<true, false, 6>(b, p, w, off); }
};

template <> struct V<QT_Q5_1> {
    static constexpr int LPB = 2, EPL = 16;
    __device__ static void decode(const u8* b, int p, float* w, int* off) { decode_legacy<true, true, 8>(b, p, w, off); }
};

// Q4_K: d @0, dmin @2, scales[12] @4, qs[128] @16. Part p (16 a block):
// bytes 8 (p % 4).. of qs chunk c = p / 4, whose low nibbles are elements
// 64c + 8 (p % 4).. (sub-block 2c), high nibbles 32 more (sub-block 2c + 1).
template <> struct V<QT_Q4_K> {
    static constexpr int LPB = 16, EPL = 16;
    __device__ static void decode(const u8* b, int p, float* w, int* off) {
        const uint4 h = *(const uint4*)b;
        const uint2 qs = *(const uint2*)(b + 16 + 8 * p);
        const float d = f16_to_f32((u16)(h.x & 0xffff)), dmin = f16_to_f32((u16)(h.x >> 16));
        const int c = p >> 2, j0 = (p & 3) * 8;
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            int sc, m;
            scale_min_k4(h, 2 * c + half, sc, m);
            const float d1 = __fmul_rn(d, u2f(sc)), m1 = __fmul_rn(dmin, u2f(m));
#pragma unroll
            for (int i = 0; i < 8; ++i) {
                const unsigned v = ((i < 4 ? qs.x : qs.y) >> (8 * (i & 3) + 4 * half)) & 15;
                w[8 * half + i] = __fsub_rn(__fmul_rn(d1, u2f(v)), m1);
            }
        }
        off[0] = 64 * c + j0, off[1] = 64 * c + j0 + 4, off[2] = 64 * c + 32 + j0, off[3] = 64 * c + 36 + j0;
    }
};

// Q6_K: ql[128] @0, qh[64] @128, scales[16] (i8) @192, d @208 (blocks of
// 210 bytes: 2-byte loads). Part p (16 a block): half h = p / 8, columns
// l0 = 4 (p % 8).. of its four groups of 32: elements 128h + 32g + l0..,
// g < 4.
template <> struct V<QT_Q6_K> {
    static constexpr int LPB = 16, EPL = 16;
    __device__ static void decode(const u8* b, int p, float* w, int* off) {
        const int h = p >> 3, l0 = (p & 7) * 4;
        const unsigned lo0 = ld_u32_a2(b + 64 * h + l0), lo1 = ld_u32_a2(b + 64 * h + 32 + l0);
        const unsigned hi = ld_u32_a2(b + 128 + 32 * h + l0);
        const float d = f16_to_f32(*(const u16*)(b + 208));
#pragma unroll
        for (int g = 0; g < 4; ++g) {
            const float d1 = __fmul_rn(d, (float)(signed char)b[192 + 8 * h + 2 * g + (l0 >> 4)]);
            const unsigned lo = g & 1 ? lo1 : lo0;
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const unsigned q = ((lo >> (8 * i + 4 * (g >> 1))) & 15) | (((hi >> (8 * i + 2 * g)) & 3) << 4);
                // kq(d, sc, q - 32, 0, 0): the subtraction of 0 * 0 leaves it.
                w[4 * g + i] = __fmul_rn(d1, u2f(q) - 32.0f);
            }
            off[g] = 128 * h + 32 * g + l0;
        }
    }
};

// Eight consecutive elements j..j+8 of a block (j a multiple of 8), for the
// tensor-core kernels' weight tiles (gemm_mma.cu with GEMM_BQ): E8<T>::fetch
// issues the loads into a Raw (so a tile's loads are in flight while the
// tensor cores work on the previous one), E8<T>::decode computes the values
// from it, each with the same f32 operations as Q<T>::get, so bit-identical
// to it (tests/host_decode checks every run of random blocks). The block
// types without their own follow Q<T>::get element by element.
template <int T> struct E8 {
    struct Raw {
        const u8* b;
    };
    __device__ static Raw fetch(const u8* b, int) { return {b}; }
    __device__ static void decode(const Raw& r, int j, float* w) {
#pragma unroll
        for (int i = 0; i < 8; ++i) w[i] = Q<T>::get(r.b, j + i);
    }
};

// Q4_0 / Q4_1 / Q5_0 / Q5_1: d @0, m @2 (MIN), the fifth bits qh @QS - 4
// (H), qs[16] @QS. Elements j < 16 are the low nibbles of qs bytes j..,
// elements j >= 16 the high nibbles of bytes j - 16... w = (q - SUB) d, or
// q d + m.
template <bool H, bool MIN, int QS, int SUB> struct E8Legacy {
    struct Raw {
        unsigned dm, qh, q0, q1;
    };
    __device__ static Raw fetch(const u8* b, int j) {
        Raw r;
        r.dm = MIN ? ld_u32_a2(b) : (unsigned)*(const u16*)b;
        r.qh = H ? ld_u32_a2(b + QS - 4) : 0u;
        r.q0 = ld_u32_a2(b + QS + (j & 15));
        r.q1 = ld_u32_a2(b + QS + (j & 15) + 4);
        return r;
    }
    __device__ static void decode(const Raw& r, int j, float* w) {
        const float d = f16_to_f32((u16)(r.dm & 0xffff)), m = f16_to_f32((u16)(r.dm >> 16));
        const int shift = j < 16 ? 0 : 4;
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            unsigned q = (((i < 4 ? r.q0 : r.q1) >> (8 * (i & 3))) >> shift) & 15;
            if (H) q |= ((r.qh >> (j + i)) & 1) << 4;
            w[i] = MIN ? __fadd_rn(__fmul_rn(u2f(q), d), m) : __fmul_rn(u2f(q) - (float)SUB, d);
        }
    }
};
template <> struct E8<QT_Q4_0> : E8Legacy<false, false, 2, 8> {};
template <> struct E8<QT_Q4_1> : E8Legacy<false, true, 4, 0> {};
template <> struct E8<QT_Q5_0> : E8Legacy<true, false, 6, 16> {};
template <> struct E8<QT_Q5_1> : E8Legacy<true, true, 8, 0> {};

// Q8_0: d @0, qs[32] (i8) @2; w = q d.
template <> struct E8<QT_Q8_0> {
    struct Raw {
        unsigned d, q0, q1;
    };
    __device__ static Raw fetch(const u8* b, int j) {
        return {(unsigned)*(const u16*)b, ld_u32_a2(b + 2 + j), ld_u32_a2(b + 6 + j)};
    }
    __device__ static void decode(const Raw& r, int, float* w) {
        const float d = f16_to_f32((u16)r.d);
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            // The signed byte plus 128, then minus 128: exact.
            const unsigned v = (((i < 4 ? r.q0 : r.q1) >> (8 * (i & 3))) & 255) ^ 128;
            w[i] = __fmul_rn(u2f(v) - 128.0f, d);
        }
    }
};

// Q4_K: the 16-byte header (d, dmin, the 12 scale bytes), then qs[128] @16:
// elements 64c + l (l < 32) are the low nibbles of qs bytes 32c + l, 64c +
// 32 + l the high ones; sub-block j / 32's scale and min.
template <> struct E8<QT_Q4_K> {
    struct Raw {
        uint4 h;
        uint2 q;
    };
    __device__ static Raw fetch(const u8* b, int j) {
        return {*(const uint4*)b, *(const uint2*)(b + 16 + 32 * (j >> 6) + (j & 31))};
    }
    __device__ static void decode(const Raw& r, int j, float* w) {
        const float d = f16_to_f32((u16)(r.h.x & 0xffff)), dmin = f16_to_f32((u16)(r.h.x >> 16));
        int sc, m;
        scale_min_k4(r.h, j >> 5, sc, m);
        const float d1 = __fmul_rn(d, u2f(sc)), m1 = __fmul_rn(dmin, u2f(m));
        const int shift = (j >> 5) & 1 ? 4 : 0;
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            const unsigned v = (((i < 4 ? r.q.x : r.q.y) >> (8 * (i & 3))) >> shift) & 15;
            w[i] = __fsub_rn(__fmul_rn(d1, u2f(v)), m1);
        }
    }
};

// Q6_K: ql[128] @0, qh[64] @128, scales[16] (i8) @192, d @208. Element
// 128h + 32g + l: the low four bits in ql byte 64h + 32 (g & 1) + l (high
// nibble for g >= 2), the top two in qh byte 128 + 32h + l (bits 2g), the
// scale byte 192 + (element / 16); w = d sc (q - 32).
template <> struct E8<QT_Q6_K> {
    struct Raw {
        unsigned lo0, lo1, hi0, hi1, d;
        int sc;
    };
    __device__ static Raw fetch(const u8* b, int j) {
        const int h = j >> 7, g = (j >> 5) & 3, l = j & 31;
        const u8* ql = b + 64 * h + 32 * (g & 1) + l;
        const u8* qh = b + 128 + 32 * h + l;
        return {ld_u32_a2(ql), ld_u32_a2(ql + 4), ld_u32_a2(qh), ld_u32_a2(qh + 4), (unsigned)*(const u16*)(b + 208),
                (int)(signed char)b[192 + (j >> 4)]};
    }
    __device__ static void decode(const Raw& r, int j, float* w) {
        const int g = (j >> 5) & 3;
        const float d1 = __fmul_rn(f16_to_f32((u16)r.d), (float)r.sc);
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            const unsigned lo = ((i < 4 ? r.lo0 : r.lo1) >> (8 * (i & 3) + 4 * (g >> 1))) & 15;
            const unsigned hi = ((i < 4 ? r.hi0 : r.hi1) >> (8 * (i & 3) + 2 * g)) & 3;
            // kq(d, sc, q - 32, 0, 0): the subtraction of 0 * 0 leaves it.
            w[i] = __fmul_rn(d1, u2f(lo | (hi << 4)) - 32.0f);
        }
    }
};

// Parts of a block for the one-row kernel (matmul_quant.cu
// `matmul_<type>_mv<R>`, M = 1): D<T>::xs loads the part's EPL activations
// (x of the block, `xb`, 16-byte aligned) with NS sums of them, once for
// all of a thread's weight rows (with G, the RMSNorm fused in: each x
// squared into `ss` as the reference sums it, (double)(x * x), then
// multiplied by the norm weight at `gb`); D<T>::dot returns the part's share of
// sum_i w_i x_i with the scales factored out of each sub-block's sum,
// d_s * sum(q x) - m_s * sum(x), so a weight costs one integer-to-float
// (u2f) and one FMA. Not bit-identical to the reference's dequantize-then-
// multiply (the rounding differs by the order of operations, about 2^-24
// relative); tests/host_decode checks every part against an f64 dot of the
// element decoding.

template <int T> struct D;

// N (4 or 8) activations at p (16-byte aligned); with G, their squares
// summed into ss and each multiplied by the norm weight at g.
template <int N, bool G>
__device__ __forceinline__ void ld_x(const float* p, const float* g, float* x, double& ss) {
#pragma unroll
    for (int h = 0; h < N / 4; ++h) {
        const float4 a = *(const float4*)(p + 4 * h);
        x[4 * h] = a.x, x[4 * h + 1] = a.y, x[4 * h + 2] = a.z, x[4 * h + 3] = a.w;
    }
    if (G) {
#pragma unroll
        for (int h = 0; h < N / 4; ++h) {
            const float4 b = *(const float4*)(g + 4 * h);
            const float gv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                ss += (double)(x[4 * h + i] * x[4 * h + i]);
                x[4 * h + i] *= gv[i];
            }
        }
    }
}

template <int N> __device__ __forceinline__ float sum_n(const float* x) {
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < N; ++i) s += x[i];
    return s;
}

// Q4_0: part p (2 a block) as V<QT_Q4_0>: low nibbles of qs bytes 8p.. are
// elements 8p.., high nibbles 16 + 8p..; w = (q - 8) d.
template <> struct D<QT_Q4_0> {
    static constexpr int LPB = 2, EPL = 16, NS = 1;
    template <bool G>
    __device__ static void xs(const float* xb, const float* gb, int p, float* x, float* s, double& ss) {
        ld_x<8, G>(xb + 8 * p, gb + 8 * p, x, ss);
        ld_x<8, G>(xb + 16 + 8 * p, gb + 16 + 8 * p, x + 8, ss);
        s[0] = sum_n<16>(x);
    }
    __device__ static float dot(const u8* b, int p, const float* x, const float* s) {
        const float d = f16_to_f32(*(const u16*)b);
        const unsigned q0 = ld_u32_a2(b + 2 + 8 * p), q1 = ld_u32_a2(b + 6 + 8 * p);
        float acc = 0.0f;
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            const unsigned v = (i < 4 ? q0 : q1) >> (8 * (i & 3));
            acc = fmaf(u2f(v & 15), x[i], acc);
            acc = fmaf(u2f((v >> 4) & 15), x[8 + i], acc);
        }
        return d * fmaf(-8.0f, s[0], acc);
    }
};

// Q8_0: part p (4 a block): elements 8p..8p+8; w = q d, q the signed byte
// (taken as u = q + 128: q x summed as u x - 128 x).
template <> struct D<QT_Q8_0> {
    static constexpr int LPB = 4, EPL = 8, NS = 1;
    template <bool G>
    __device__ static void xs(const float* xb, const float* gb, int p, float* x, float* s, double& ss) {
        ld_x<8, G>(xb + 8 * p, gb + 8 * p, x, ss);
        s[0] = sum_n<8>(x);
    }
    __device__ static float dot(const u8* b, int p, const float* x, const float* s) {
        const float d = f16_to_f32(*(const u16*)b);
        const unsigned q0 = ld_u32_a2(b + 2 + 8 * p), q1 = ld_u32_a2(b + 6 + 8 * p);
        float acc = 0.0f;
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            const unsigned v = (((i < 4 ? q0 : q1) >> (8 * (i & 3))) & 255) ^ 128;
            acc = fmaf(u2f(v), x[i], acc);
        }
        return d * fmaf(-128.0f, s[0], acc);
    }
};

// Q4_K: part p (16 a block) as V<QT_Q4_K>: qs bytes 8 (p % 4).. of chunk
// c = p / 4, low nibbles elements 64c + 8 (p % 4).. (sub-block 2c), high
// nibbles 32 more (sub-block 2c + 1); w = d sc q - dmin m per sub-block.
template <> struct D<QT_Q4_K> {
    static constexpr int LPB = 16, EPL = 16, NS = 2;
    template <bool G>
    __device__ static void xs(const float* xb, const float* gb, int p, float* x, float* s, double& ss) {
        const int c = p >> 2, j0 = (p & 3) * 8;
        ld_x<8, G>(xb + 64 * c + j0, gb + 64 * c + j0, x, ss);
        ld_x<8, G>(xb + 64 * c + 32 + j0, gb + 64 * c + 32 + j0, x + 8, ss);
        s[0] = sum_n<8>(x);
        s[1] = sum_n<8>(x + 8);
    }
    __device__ static float dot(const u8* b, int p, const float* x, const float* s) {
        const uint4 h = *(const uint4*)b;
        const uint2 qs = *(const uint2*)(b + 16 + 8 * p);
        const float d = f16_to_f32((u16)(h.x & 0xffff)), dmin = f16_to_f32((u16)(h.x >> 16));
        const int c = p >> 2;
        float lo = 0.0f, hi = 0.0f;
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            const unsigned v = (i < 4 ? qs.x : qs.y) >> (8 * (i & 3));
            lo = fmaf(u2f(v & 15), x[i], lo);
            hi = fmaf(u2f((v >> 4) & 15), x[8 + i], hi);
        }
        float out = 0.0f;
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            int sc, m;
            scale_min_k4(h, 2 * c + half, sc, m);
            out = fmaf(d * u2f(sc), half ? hi : lo, out);
            out = fmaf(-dmin * u2f(m), s[half], out);
        }
        return out;
    }
};

// Q6_K: part p (16 a block) as V<QT_Q6_K>: half h = p / 8, columns
// l0 = 4 (p % 8).. of its four groups g of 32 (elements 128h + 32g + l0..);
// w = d sc_g (q - 32).
template <> struct D<QT_Q6_K> {
    static constexpr int LPB = 16, EPL = 16, NS = 4;
    template <bool G>
    __device__ static void xs(const float* xb, const float* gb, int p, float* x, float* s, double& ss) {
        const int h = p >> 3, l0 = (p & 7) * 4;
#pragma unroll
        for (int g = 0; g < 4; ++g) {
            const int o = 128 * h + 32 * g + l0;
            ld_x<4, G>(xb + o, gb + o, x + 4 * g, ss);
            s[g] = sum_n<4>(x + 4 * g);
        }
    }
    __device__ static float dot(const u8* b, int p, const float* x, const float* s) {
        const int h = p >> 3, l0 = (p & 7) * 4;
        const unsigned lo0 = ld_u32_a2(b + 64 * h + l0), lo1 = ld_u32_a2(b + 64 * h + 32 + l0);
        const unsigned hi = ld_u32_a2(b + 128 + 32 * h + l0);
        const float d = f16_to_f32(*(const u16*)(b + 208));
        float out = 0.0f;
#pragma unroll
        for (int g = 0; g < 4; ++g) {
            const unsigned lo = g & 1 ? lo1 : lo0;
            float acc = 0.0f;
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const unsigned q = ((lo >> (8 * i + 4 * (g >> 1))) & 15) | (((hi >> (8 * i + 2 * g)) & 3) << 4);
                acc = fmaf(u2f(q), x[4 * g + i], acc);
            }
            // The signed scale byte plus 128, then minus 128: exact.
            const float sc = u2f((unsigned)b[192 + 8 * h + 2 * g + (l0 >> 4)] ^ 128) - 128.0f;
            out = fmaf(sc, fmaf(-32.0f, s[g], acc), out);
        }
        return d * out;
    }
};

// Parts of a block against 8-bit activations (matmul_quant.cu
// `matmul_<type>_q8mv*`): the activations of a row quantized as the CPU's
// vec_dot_type quantizes them (Q8_0 for Q4_0 / Q5_0 / Q8_0 weights, Q8_1
// for Q4_1 / Q5_1, Q8_K for the K-quants; quantize_q8_g32 / _g32s /
// _g256), held as X8 (matmul_quant.cu): the quants `xq`, and per group of
// 32 a scale `xd` (Q8_K's one scale repeated over its eight groups) and
// the sum of the group's quants `xs` (Q8_1: its f16 `s` as f32 bits).
// I8<T>::dot returns part p's share of sum_i w_i x_i: integer dot products
// of four byte pairs at a time (dp4a), exact within a sub-block, each
// scaled once. Where a sub-block's min or offset term is taken from xs, the
// part that starts the sub-block adds it. tests/host_decode checks every
// part against an f64 dot of Q<T>::get with the dequantized activations.

#define NIB_LO 0x0F0F0F0Fu

__device__ __forceinline__ int dp4(unsigned w, unsigned x, int acc) { return __dp4a((int)w, (int)x, acc); }

// Eight bytes at a 2-byte aligned address p: three aligned words from p
// rounded down to 4, shifted into place. Reads up to 2 bytes before p and
// 4 after p + 8; the callers' parts have that much of their own block
// around them (or, before a block's first byte, the previous block's).
__device__ __forceinline__ uint2 ld2_a2(const u8* p) {
    const unsigned* a = (const unsigned*)((u64)p & ~(u64)3);
    const unsigned sh = ((unsigned)(u64)p & 2u) * 8u;
    const unsigned w0 = a[0], w1 = a[1], w2 = a[2];
    uint2 r;
    r.x = __funnelshift_r(w0, w1, sh);
    r.y = __funnelshift_r(w1, w2, sh);
    return r;
}

// Q4_K's scales and mins of sub-blocks 2c and 2c + 1 (c = 0..3) as the two
// bytes of `sc` and `m`: get_scale_min_k4 for the pair, without branches
// (the lanes of a warp take different c).
__device__ __forceinline__ void scale_min_pair_k4(const uint4& h, int c, unsigned& sc, unsigned& m) {
    // 16-bit word k of the 12 scale bytes (h.y, h.z, h.w).
    const auto half = [&](int k) { return ((k < 2 ? h.y : (k < 4 ? h.z : h.w)) >> (16 * (k & 1))) & 0xffffu; };
    const bool lo = c < 2;
    const unsigned a = half(lo ? c : c + 2), b = half(lo ? c + 2 : c - 2), e = half(c);
    sc = lo ? a & 0x3f3fu : (a & 0x0f0fu) | ((b & 0xc0c0u) >> 2);
    m = lo ? b & 0x3f3fu : ((a >> 4) & 0x0f0fu) | ((e & 0xc0c0u) >> 2);
}

// q - 32 in each byte of q (bytes 0..63), as signed bytes: each byte
// offset by 128 first, so no borrow crosses bytes.
__device__ __forceinline__ unsigned sub32_bytes(unsigned q) { return ((q | 0x80808080u) - 0x20202020u) ^ 0x80808080u; }

template <int T> struct I8;

// The four bits n (0..15) as bit 4 of four bytes: Q5_0 / Q5_1's fifth
// bits of four elements, beside their nibbles.
__device__ __forceinline__ unsigned bits_to_bytes4(unsigned n) { return ((n * 0x00204081u) & 0x01010101u) << 4; }

// sum q x over the 32 elements of a legacy block against its group's
// quants xq: q the nibbles at qs (element j low nibble of byte j, element
// j + 16 the high one), plus the fifth bits of qh where H (bit j for
// element j). A4: qs is 4-byte aligned (Q4_1 / Q5_1 blocks of 20 / 24
// bytes), else 2-byte (Q4_0 / Q5_0 blocks of 18 / 22).
template <bool H, bool A4> __device__ __forceinline__ int nib_dot(const u8* qs, unsigned qh, const u8* xq) {
    const uint4 x0 = *(const uint4*)xq, x1 = *(const uint4*)(xq + 16);
    const unsigned lo[4] = {x0.x, x0.y, x0.z, x0.w}, hi[4] = {x1.x, x1.y, x1.z, x1.w};
    int s = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const unsigned q = A4 ? *(const unsigned*)(qs + 4 * i) : ld_u32_a2(qs + 4 * i);
        unsigned a = q & NIB_LO, b = (q >> 4) & NIB_LO;
        if (H) {
            a |= bits_to_bytes4((qh >> (4 * i)) & 15u);
            b |= bits_to_bytes4((qh >> (16 + 4 * i)) & 15u);
        }
        s = dp4(a, lo[i], s);
        s = dp4(b, hi[i], s);
    }
    return s;
}

// Q4_0 (one part a block): (q - 8) x over the 32 elements, the offset
// through xs: sum q x - 8 sum x.
template <> struct I8<QT_Q4_0> {
    static constexpr int LPB = 1;
    __device__ static float dot(const u8* b, int, const u8* xq, const float* xd, const int* xs) {
        const int s = nib_dot<false, false>(b + 2, 0u, xq);
        return (float)(s - 8 * xs[0]) * (f16_to_f32(*(const u16*)b) * xd[0]);
    }
};

// Q5_0 (one part a block): as Q4_0 with the fifth bits, offset 16.
template <> struct I8<QT_Q5_0> {
    static constexpr int LPB = 1;
    __device__ static float dot(const u8* b, int, const u8* xq, const float* xd, const int* xs) {
        const int s = nib_dot<true, false>(b + 6, ld_u32_a2(b + 2), xq);
        return (float)(s - 16 * xs[0]) * (f16_to_f32(*(const u16*)b) * xd[0]);
    }
};

// Q4_1 / Q5_1 (one part a block) against Q8_1 activations (the CPU's
// vec_dot_type for them): w = d q + m, so sum w x = d xd sum q xq + m s,
// where s is the group's f16 `d * sum xq` (quantize_q8_g32s keeps it in
// xs, as f32 bits), as ggml's vec_dot_q4_1_q8_1 / _q5_1_q8_1.
template <> struct I8<QT_Q4_1> {
    static constexpr int LPB = 1;
    __device__ static float dot(const u8* b, int, const u8* xq, const float* xd, const int* xs) {
        const int s = nib_dot<false, true>(b + 4, 0u, xq);
        return (f16_to_f32(*(const u16*)b) * xd[0]) * (float)s + f16_to_f32(*(const u16*)(b + 2)) * __int_as_float(xs[0]);
    }
};

template <> struct I8<QT_Q5_1> {
    static constexpr int LPB = 1;
    __device__ static float dot(const u8* b, int, const u8* xq, const float* xd, const int* xs) {
        const int s = nib_dot<true, true>(b + 8, *(const unsigned*)(b + 4), xq);
        return (f16_to_f32(*(const u16*)b) * xd[0]) * (float)s + f16_to_f32(*(const u16*)(b + 2)) * __int_as_float(xs[0]);
    }
};

// Q8_0: part p (2 a block) is quants 16p..16p+16.
template <> struct I8<QT_Q8_0> {
    static constexpr int LPB = 2;
    __device__ static float dot(const u8* b, int p, const u8* xq, const float* xd, const int*) {
        const uint4 x = *(const uint4*)(xq + 16 * p);
        const unsigned xw[4] = {x.x, x.y, x.z, x.w};
        int s = 0;
#pragma unroll
        for (int i = 0; i < 4; ++i) s = dp4(ld_u32_a2(b + 2 + 16 * p + 4 * i), xw[i], s);
        return (float)s * (f16_to_f32(*(const u16*)b) * xd[0]);
    }
};

// Q4_K: part p (8 a block) is qs bytes 16 (p % 2).. of chunk c = p / 2:
// low nibbles elements 64c + 16 (p % 2).. (sub-block 2c), high nibbles 32
// more (sub-block 2c + 1); w = d sc q - dmin m.
template <> struct I8<QT_Q4_K> {
    static constexpr int LPB = 8;
    __device__ static float dot(const u8* b, int p, const u8* xq, const float* xd, const int* xs) {
        const int c = p >> 1, j0 = (p & 1) * 16;
        const uint4 h = *(const uint4*)b;
        const uint4 q = *(const uint4*)(b + 16 + 32 * c + j0);
        const uint4 xl = *(const uint4*)(xq + 64 * c + j0), xh = *(const uint4*)(xq + 64 * c + 32 + j0);
        int sl = 0, sh = 0;
        sl = dp4(q.x & NIB_LO, xl.x, sl);
        sl = dp4(q.y & NIB_LO, xl.y, sl);
        sl = dp4(q.z & NIB_LO, xl.z, sl);
        sl = dp4(q.w & NIB_LO, xl.w, sl);
        sh = dp4((q.x >> 4) & NIB_LO, xh.x, sh);
        sh = dp4((q.y >> 4) & NIB_LO, xh.y, sh);
        sh = dp4((q.z >> 4) & NIB_LO, xh.z, sh);
        sh = dp4((q.w >> 4) & NIB_LO, xh.w, sh);
        unsigned sc, m;
        scale_min_pair_k4(h, c, sc, m);
        const float yd = xd[0];
        float r = (f16_to_f32((u16)(h.x & 0xffff)) * yd) * (float)((int)(sc & 255) * sl + (int)(sc >> 8) * sh);
        if (j0 == 0)
            r -= (f16_to_f32((u16)(h.x >> 16)) * yd) * (float)((int)(m & 255) * xs[2 * c] + (int)(m >> 8) * xs[2 * c + 1]);
        return r;
    }
};

// Q6_K: part p (8 a block): half h = p / 4, columns l0 = 8 (p % 4).. of
// its four groups g of 32 (elements 128h + 32g + l0..); w = d sc (q - 32).
template <> struct I8<QT_Q6_K> {
    static constexpr int LPB = 8;
    __device__ static float dot(const u8* b, int p, const u8* xq, const float* xd, const int*) {
        const int h = p >> 2, l0 = (p & 3) * 8;
        const uint2 qa = ld2_a2(b + 64 * h + l0), qb = ld2_a2(b + 64 * h + 32 + l0);
        const uint2 qh = ld2_a2(b + 128 + 32 * h + l0);
        int acc = 0;
#pragma unroll
        for (int g = 0; g < 4; ++g) {
            const uint2 lo = g & 1 ? qb : qa;
            const int nsh = 4 * (g >> 1);
            const uint2 x = *(const uint2*)(xq + 128 * h + 32 * g + l0);
            const unsigned q0 = ((lo.x >> nsh) & NIB_LO) | (((qh.x >> (2 * g)) & 0x03030303u) << 4);
            const unsigned q1 = ((lo.y >> nsh) & NIB_LO) | (((qh.y >> (2 * g)) & 0x03030303u) << 4);
            int s = dp4(sub32_bytes(q0), x.x, 0);
            s = dp4(sub32_bytes(q1), x.y, s);
            acc += (int)(signed char)b[192 + 8 * h + 2 * g + (l0 >> 4)] * s;
        }
        return (float)acc * (f16_to_f32(*(const u16*)(b + 208)) * xd[0]);
    }
};

// One kernel per block type, named `<kernel>_<type>`, from a template body.
#define FOR_EACH_QTYPE(X) \
    X(q4_0, QT_Q4_0)      \
    X(q4_1, QT_Q4_1)      \
    X(q5_0, QT_Q5_0)      \
    X(q5_1, QT_Q5_1)      \
    X(q8_0, QT_Q8_0)      \
    X(q8_1, QT_Q8_1)      \
    X(q2_k, QT_Q2_K)      \
    X(q3_k, QT_Q3_K)      \
    X(q4_k, QT_Q4_K)      \
    X(q5_k, QT_Q5_K)      \
    X(q6_k, QT_Q6_K)      \
    X(q8_k, QT_Q8_K)
