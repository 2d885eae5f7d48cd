// Every part of V<T>::decode (quant.cuh, the wide-load kernels' block
// decoding) against Q<T>::get (the element-at-a-time decoding, bit-exact
// with the scalar reference on the GPU): over random blocks, each element
// comes out of exactly one part, at the offset the part says, with the
// same bits. Then every block's sum over D<T> parts (the one-row kernel's
// factored dot products) against an f64 dot of Q<T>::get with random
// activations: within 1e-5 of max|w| * sum|x| (f32 rounding of sums of at
// most 16 products is near 1e-7 of that; a part reading the wrong elements
// or scales lands near 1); and with the RMSNorm fused in (D<T>::xs<true>):
// sum w x g within the same bound, the squares of x to 1e-12. Exit status 1
// on any difference.
#include "shim.h"
#include "quant.cuh"

#include <algorithm>
#include <cstdio>
#include <random>
#include <vector>

static std::mt19937 rng(7);

// A random block whose f16 scales are finite (random bits elsewhere).
template <int T> static void random_block(u8* b) {
    for (int i = 0; i < Q<T>::BB; ++i) b[i] = rng() & 255;
    auto scale = [&](int off) {
        const u16 h = (u16)((rng() & 0x8000) | ((rng() % 24 + 4) << 10) | (rng() & 1023));
        std::memcpy(b + off, &h, 2);
    };
    if (T == QT_Q4_K || T == QT_Q4_1 || T == QT_Q5_1) {
        scale(0);
        scale(2);
    } else if (T == QT_Q6_K) {
        scale(208);
    } else {
        scale(0);
    }
}

template <int T> static int check(const char* name, int blocks) {
    constexpr int BE = Q<T>::BE, LPB = V<T>::LPB, EPL = V<T>::EPL;
    static_assert(EPL * LPB == BE, "the parts cover the block");
    int bad = 0;
    for (int t = 0; t < blocks; ++t) {
        alignas(16) u8 b[Q<T>::BB];
        random_block<T>(b);
        std::vector<int> seen(BE, 0);
        for (int p = 0; p < LPB; ++p) {
            float w[EPL];
            int off[EPL / 4];
            V<T>::decode(b, p, w, off);
            for (int g = 0; g < EPL / 4; ++g)
                for (int e = 0; e < 4; ++e) {
                    const int i = off[g] + e;
                    if (i < 0 || i >= BE) {
                        if (bad++ < 5) std::printf("%s: part %d gives offset %d\n", name, p, i);
                        continue;
                    }
                    ++seen[i];
                    const float want = Q<T>::get(b, i);
                    if (std::memcmp(&want, &w[4 * g + e], 4) != 0 && bad++ < 5)
                        std::printf("%s: part %d, element %d: %a, want %a\n", name, p, i, w[4 * g + e], want);
                }
        }
        for (int i = 0; i < BE; ++i)
            if (seen[i] != 1 && bad++ < 5) std::printf("%s: element %d from %d parts\n", name, i, seen[i]);
    }
    std::printf("%s: %d random blocks, %d parts each: %s\n", name, blocks, LPB,
                bad ? "DIFFERENT" : "every element once, bit-identical");
    return bad;
}

// Every run of 8 of E8<T> (the tensor-core kernels' weight tiles) against
// Q<T>::get, over random blocks: the same bits.
template <int T> static int check_e8(const char* name, int blocks) {
    int bad = 0;
    for (int t = 0; t < blocks; ++t) {
        alignas(16) u8 b[Q<T>::BB];
        random_block<T>(b);
        for (int j = 0; j < Q<T>::BE; j += 8) {
            float w[8];
            E8<T>::decode(E8<T>::fetch(b, j), j, w);
            for (int i = 0; i < 8; ++i) {
                const float want = Q<T>::get(b, j + i);
                if (std::memcmp(&want, &w[i], 4) != 0 && bad++ < 5)
                    std::printf("%s runs of 8: element %d: %a, want %a\n", name, j + i, w[i], want);
            }
        }
    }
    std::printf("%s runs of 8: %d random blocks: %s\n", name, blocks, bad ? "DIFFERENT" : "every run bit-identical");
    return bad;
}

// Block b's sum over D<T>'s parts against the activations xb (with G, times
// the norm weight gb, the squares of xb summed into ss).
template <int T, bool G> static double parts_dot(const u8* b, const float* xb, const float* gb, double& ss) {
    double got = 0.0;
    for (int p = 0; p < D<T>::LPB; ++p) {
        float x[D<T>::EPL], s[D<T>::NS];
        D<T>::template xs<G>(xb, gb, p, x, s, ss);
        got += D<T>::dot(b, p, x, s);
    }
    return got;
}

template <int T> static int check_dot(const char* name, int blocks) {
    constexpr int BE = Q<T>::BE, LPB = D<T>::LPB, EPL = D<T>::EPL;
    static_assert(EPL * LPB == BE, "the parts cover the block");
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    int bad = 0;
    double worst = 0.0;
    for (int t = 0; t < blocks; ++t) {
        alignas(16) u8 b[Q<T>::BB];
        alignas(16) float xb[BE];
        random_block<T>(b);
        for (float& v : xb) v = u(rng);
        double want = 0.0, wmax = 0.0, xsum = 0.0;
        for (int i = 0; i < BE; ++i) {
            const double w = Q<T>::get(b, i);
            want += w * xb[i];
            wmax = std::fmax(wmax, std::fabs(w));
            xsum += std::fabs(xb[i]);
        }
        double ss = 0.0;
        const double got = parts_dot<T, false>(b, xb, nullptr, ss);
        const double err = std::fabs(got - want) / (wmax * xsum);
        worst = std::fmax(worst, err);
        if (!(err <= 1e-5) && bad++ < 5) std::printf("%s dot: block %d: %g, want %g\n", name, t, got, want);
        // With the norm weight g: sum w x g, and the squares of x.
        alignas(16) float gb[BE];
        for (float& v : gb) v = u(rng);
        double want_g = 0.0, want_ss = 0.0, xg_sum = 0.0;
        for (int i = 0; i < BE; ++i) {
            want_g += (double)Q<T>::get(b, i) * xb[i] * gb[i];
            want_ss += (double)(xb[i] * xb[i]);
            xg_sum += std::fabs(xb[i] * gb[i]);
        }
        double ss_g = 0.0;
        const double got_g = parts_dot<T, true>(b, xb, gb, ss_g);
        const double err_g = std::fabs(got_g - want_g) / (wmax * xg_sum);
        worst = std::fmax(worst, err_g);
        if (!(err_g <= 1e-5) && bad++ < 5)
            std::printf("%s dot with norm weight: block %d: %g, want %g\n", name, t, got_g, want_g);
        if (!(std::fabs(ss_g - want_ss) <= 1e-12 * want_ss) && bad++ < 5)
            std::printf("%s squares: block %d: %.17g, want %.17g\n", name, t, ss_g, want_ss);
    }
    std::printf("%s dot: %d random blocks, worst error %.1e of max|w| sum|x|: %s\n", name, blocks, worst,
                bad ? "DIFFERENT" : "within 1e-5");
    return bad;
}

// The CPU's run-time activation quantization (crate::quant::quantize):
// Q8_0 for G = 32 (d = f16(amax / 127), q = rint(x 127 / amax)); Q8_1 for
// G = 32 with S1 (the same, and s = f16(amax / 127 * sum q), the f32 d);
// Q8_K for G = 256 (iscale = -127 / the first value of largest magnitude,
// q = min(rint(iscale x), 127), d = 1 / iscale), into X8's layout: quants,
// a scale per group of 32 (Q8_K's repeated), the sum of each group's
// quants (Q8_1: s as f32 bits).
static u16 to_f16(float f) {
    // Round to nearest even through the exact software conversion back.
    const float a = std::fabs(f);
    int e;
    std::frexp(a, &e);
    const float ulp = std::ldexp(1.0f, std::max(e - 11, -24));
    const float r = std::nearbyint(a / ulp) * ulp;
    u16 best = 0;
    for (u16 h = 0; h < 0x7c00; ++h)
        if (f16_to_f32(h) == r) {
            best = h;
            break;
        }
    return (u16)(best | (f < 0 ? 0x8000 : 0));
}
template <int G, bool S1>
static void quantize_x8(const float* x, int n, signed char* xq, float* xd, int* xs) {
    for (int g = 0; g < n / G; ++g) {
        const float* v = x + g * G;
        float amax = 0.0f, mx = 0.0f;
        for (int i = 0; i < G; ++i)
            if (amax < std::fabs(v[i])) amax = std::fabs(v[i]), mx = v[i];
        for (int i = 0; i < G; ++i) {
            int q;
            if (G == 32) {
                const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
                q = (int)std::nearbyint(__fmul_rn(v[i], id));
            } else {
                q = amax == 0.0f ? 0 : std::min((int)std::nearbyint(__fmul_rn(-127.0f / mx, v[i])), 127);
            }
            xq[g * G + i] = (signed char)q;
        }
        for (int s = 0; s < G / 32; ++s) {
            int sum = 0;
            for (int i = 0; i < 32; ++i) sum += xq[g * G + 32 * s + i];
            xs[g * G / 32 + s] = sum;
            if (S1) {
                const float sf = f16_to_f32(to_f16(__fmul_rn(amax / 127.0f, (float)sum)));
                std::memcpy(&xs[g * G / 32 + s], &sf, 4);
            }
            xd[g * G / 32 + s] = G == 32 ? f16_to_f32(to_f16(amax / 127.0f)) : (amax == 0.0f ? 0.0f : 1.0f / (-127.0f / mx));
        }
    }
}

// Block b's sum over I8<T>'s parts against quantized activations, against
// an f64 dot of Q<T>::get with them dequantized: within 1e-5 of max|w|
// sum|x| (a few roundings of exact integer sums; for Q4_1 / Q5_1 the f64
// dot takes m s, s the f16 the quantizer kept, in place of m xd sum q, as
// the CPU does); half the blocks sit at an
// address 2 mod 4 (not Q4_K, whose rows are 16-byte aligned, nor Q4_1 /
// Q5_1, whose are 4-byte aligned) to cover ld2_a2's shifted loads.
template <int T> static int check_i8(const char* name, int blocks) {
    constexpr int BE = Q<T>::BE, BB = Q<T>::BB, G = (T == QT_Q4_K || T == QT_Q6_K) ? 256 : 32;
    constexpr bool S1 = T == QT_Q4_1 || T == QT_Q5_1, A4 = S1 || T == QT_Q4_K;
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    int bad = 0;
    double worst = 0.0;
    for (int t = 0; t < blocks; ++t) {
        alignas(16) u8 buf[BB + 32];
        const int at = (!A4 && (t & 1)) ? 6 : 8;
        u8* b = buf + at;
        random_block<T>(b);
        alignas(16) float x[BE];
        alignas(16) signed char xq[BE];
        alignas(16) float xd[BE / 32];
        alignas(16) int xs[BE / 32];
        // Some blocks of all-zero activations, and ties of magnitude.
        for (float& v : x) v = t % 97 == 5 ? 0.0f : u(rng);
        if (t % 13 == 3) x[rng() % BE] = -x[rng() % BE];
        quantize_x8<G, S1>(x, BE, xq, xd, xs);
        double want = 0.0, wmax = 0.0, xsum = 0.0;
        for (int i = 0; i < BE; ++i) {
            const double w = Q<T>::get(b, i), xv = (double)xd[i / 32] * xq[i];
            want += w * xv;
            wmax = std::fmax(wmax, std::fabs(w));
            xsum += std::fabs(xv);
        }
        if (S1) {
            // m xd sum q -> m s.
            int sum = 0;
            for (int i = 0; i < BE; ++i) sum += xq[i];
            float sf;
            std::memcpy(&sf, xs, 4);
            want += (double)f16_to_f32(*(const u16*)(b + 2)) * ((double)sf - (double)xd[0] * sum);
        }
        double got = 0.0;
        for (int p = 0; p < I8<T>::LPB; ++p) got += I8<T>::dot(b, p, (const u8*)xq, xd, xs);
        const double err = xsum == 0.0 ? std::fabs(got) : std::fabs(got - want) / (wmax * xsum);
        worst = std::fmax(worst, err);
        if (!(err <= 1e-5) && bad++ < 5) std::printf("%s i8 dot: block %d: %g, want %g\n", name, t, got, want);
    }
    std::printf("%s i8 dot: %d random blocks, worst error %.1e of max|w| sum|x|: %s\n", name, blocks, worst,
                bad ? "DIFFERENT" : "within 1e-5 (8-bit)");
    return bad;
}

int main() {
    const int n = 4000;
    const int bad = check<QT_Q4_0>("q4_0", n) + check<QT_Q8_0>("q8_0", n) + check<QT_Q4_K>("q4_k", n) +
                    check<QT_Q6_K>("q6_k", n) + check<QT_Q4_1>("q4_1", n) + check<QT_Q5_0>("q5_0", n) +
                    check<QT_Q5_1>("q5_1", n);
    const int bad_dot = check_dot<QT_Q4_0>("q4_0", n) + check_dot<QT_Q8_0>("q8_0", n) +
                        check_dot<QT_Q4_K>("q4_k", n) + check_dot<QT_Q6_K>("q6_k", n);
    const int bad_i8 = check_i8<QT_Q4_0>("q4_0", n) + check_i8<QT_Q8_0>("q8_0", n) + check_i8<QT_Q4_K>("q4_k", n) +
                       check_i8<QT_Q6_K>("q6_k", n) + check_i8<QT_Q5_0>("q5_0", n) + check_i8<QT_Q4_1>("q4_1", n) +
                       check_i8<QT_Q5_1>("q5_1", n);
    const int bad_e8 = check_e8<QT_Q4_0>("q4_0", n) + check_e8<QT_Q4_1>("q4_1", n) + check_e8<QT_Q5_0>("q5_0", n) +
                       check_e8<QT_Q5_1>("q5_1", n) + check_e8<QT_Q8_0>("q8_0", n) + check_e8<QT_Q4_K>("q4_k", n) +
                       check_e8<QT_Q6_K>("q6_k", n);
    return bad || bad_dot || bad_i8 || bad_e8 ? 1 : 0;
}
