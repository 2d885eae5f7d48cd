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
    if (T == QT_Q4_K) {
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

int main() {
    const int n = 4000;
    const int bad = check<QT_Q4_0>("q4_0", n) + check<QT_Q8_0>("q8_0", n) + check<QT_Q4_K>("q4_k", n) +
                    check<QT_Q6_K>("q6_k", n);
    const int bad_dot = check_dot<QT_Q4_0>("q4_0", n) + check_dot<QT_Q8_0>("q8_0", n) +
                        check_dot<QT_Q4_K>("q4_k", n) + check_dot<QT_Q6_K>("q6_k", n);
    return bad || bad_dot ? 1 : 0;
}
