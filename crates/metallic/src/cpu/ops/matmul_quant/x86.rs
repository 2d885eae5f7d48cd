//! x86-64 block-dot kernels: weight rows against a tile of up to `MR`
//! activation rows of a [`Panel`](super::panel::Panel), for Q4_0, Q4_1,
//! Q5_0, Q8_0 (against Q8_0/Q8_1 activations) and Q4_K, Q6_K (against Q8_K).
//!
//! Each weight block is decoded once into bytes in a 256-bit register and
//! dotted with the tile's rows (prefill reuses it up to `MR` times; decode,
//! one activation row, takes 4 weight rows at a time instead). Weights are
//! decoded as unsigned bytes and multiplied with the signed activations by
//! `u8 x i8 -> i32` dot products; Q8_0's signed weights use the sign trick
//! (`|w| * sign(a, w)`), so their block sums are exactly the reference's.
//! A format's offset (Q4_0's 8, Q5_0's 16, Q6_K's 32) is taken out exactly
//! in integers through the activation block sums, so each block's (or
//! sub-block's) integer sum is exactly the reference's; the f32 combination
//! differs in order only (8 lanes of f32 FMAs, one horizontal sum per row at
//! the end). Keeping ggml's integer arithmetic matters beyond precision: the
//! closer our rounding follows llama.cpp's, the more often the two engines
//! break near-ties the same way (see tests/model_e2e.rs).
//!
//! Two instruction sets, one body: [`Avx2`] emulates the byte dot with
//! `vpmaddubsw` + `vpmaddwd` (no overflow: weights are below 64, or at most
//! 128 in magnitude against activations of at most 127, so pair sums stay
//! below 2^15), [`Vnni`] uses AVX-512 VNNI's `vpdpbusd` on 256-bit registers
//! (AVX512VL) and a masked byte move for Q5_0's high bits. Both give bit-identical
//! results. AMX and AVX512-FP16 are never used (advertised by some VMs that
//! fault on them).

use std::arch::x86_64::*;

use super::panel::{ActTile, LANES};
use crate::quant::blocks::*;
use crate::tensor::DType;

/// The instruction-set specific pieces.
pub(crate) trait Isa {
    /// Rows per activation tile: each decoded weight block is dotted with up
    /// to this many activation rows (bounded by the vector registers).
    const MR: usize;
    /// `acc + sum of u[4i..4i+4] * s[4i..4i+4]` per i32 lane (u unsigned, s signed).
    unsafe fn dot_u8i8(acc: __m256i, u: __m256i, s: __m256i) -> __m256i;
    /// Byte j is `value` where bit j of `bits` is set, 0 elsewhere.
    unsafe fn bit_bytes(bits: u32, value: i8) -> __m256i;
}

pub(crate) struct Avx2;
pub(crate) struct Vnni;

impl Isa for Avx2 {
    const MR: usize = 4;
    #[inline(always)]
    unsafe fn dot_u8i8(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
        let pairs = _mm256_maddubs_epi16(u, s);
        _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
    }

    #[inline(always)]
    unsafe fn bit_bytes(bits: u32, value: i8) -> __m256i {
        // Byte j gets byte j / 8 of `bits`; OR-ing every bit but j % 8 makes
        // it all ones exactly when bit j % 8 was set.
        let v = _mm256_set1_epi32(bits as i32);
        let spread = _mm256_setr_epi8(
            0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3,
            3, 3, 3,
        );
        let others = _mm256_set1_epi64x(0x7FBF_DFEF_F7FB_FDFE);
        let x = _mm256_or_si256(_mm256_shuffle_epi8(v, spread), others);
        _mm256_and_si256(
            _mm256_cmpeq_epi8(x, _mm256_set1_epi64x(-1)),
            _mm256_set1_epi8(value),
        )
    }
}

impl Isa for Vnni {
    const MR: usize = 8;
    #[inline(always)]
    unsafe fn dot_u8i8(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(acc, u, s)
    }

    #[inline(always)]
    unsafe fn bit_bytes(bits: u32, value: i8) -> __m256i {
        _mm256_maskz_mov_epi8(bits, _mm256_set1_epi8(value))
    }
}

/// Which kernel family a CPU runs, detected once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Avx2,
    Avx512Vnni,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Avx2 => "avx2",
            Level::Avx512Vnni => "avx512vnni",
        }
    }

    /// Every level this CPU can run, best first.
    pub fn available() -> Vec<Level> {
        let mut v = Vec::new();
        let avx2 = is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c");
        if avx2
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512vnni")
        {
            v.push(Level::Avx512Vnni);
        }
        if avx2 {
            v.push(Level::Avx2);
        }
        v
    }
}

/// Whether a weight format has a kernel here.
pub(crate) fn supports(dtype: DType) -> bool {
    matches!(
        dtype,
        DType::Q4_0 | DType::Q4_1 | DType::Q5_0 | DType::Q8_0 | DType::Q4K | DType::Q6K
    )
}

/// Rows of activation tiles per level: each decoded weight block is dotted
/// with up to this many rows (the panel is tiled to match).
pub(crate) fn tile_rows(level: Level) -> usize {
    match level {
        Level::Avx2 => Avx2::MR,
        Level::Avx512Vnni => Vnni::MR,
    }
}

/// `out[i * ldo + j] = dot(weight row j, activation row i)` for `j < rows`
/// and every row `i` of the tiles, in order.
///
/// # Safety
/// `level` must be one of [`Level::available`]; `w` holds `rows` rows of
/// `row_bytes` bytes of `dtype` blocks (aligned for the block type), `k` =
/// the elements of a row; every `ActTile` points at a panel tile of `k`
/// elements per row in `dtype`'s activation format, at most
/// `tile_rows(level)` rows; `out` is valid for writing at
/// every `i * ldo + j`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_rows(
    level: Level,
    dtype: DType,
    w: *const u8,
    row_bytes: usize,
    rows: usize,
    k: usize,
    tiles: &[ActTile],
    out: *mut f32,
    ldo: usize,
) {
    match level {
        Level::Avx2 => gemm_rows_avx2(dtype, w, row_bytes, rows, k, tiles, out, ldo),
        Level::Avx512Vnni => gemm_rows_vnni(dtype, w, row_bytes, rows, k, tiles, out, ldo),
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_rows_avx2(
    dtype: DType,
    w: *const u8,
    row_bytes: usize,
    rows: usize,
    k: usize,
    tiles: &[ActTile],
    out: *mut f32,
    ldo: usize,
) {
    gemm_rows_generic::<Avx2>(dtype, w, row_bytes, rows, k, tiles, out, ldo)
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_rows_vnni(
    dtype: DType,
    w: *const u8,
    row_bytes: usize,
    rows: usize,
    k: usize,
    tiles: &[ActTile],
    out: *mut f32,
    ldo: usize,
) {
    gemm_rows_generic::<Vnni>(dtype, w, row_bytes, rows, k, tiles, out, ldo)
}

tile_driver!($);

/// Asks for weight rows `j..j + 4` (clipped to `rows`) to be brought into
/// L2 while the current rows are dotted: decode streams short rows (a few
/// hundred bytes), too short for the hardware prefetcher to get ahead.
#[inline(always)]
unsafe fn prefetch_rows(w: *const u8, row_bytes: usize, j: usize, rows: usize) {
    let end = (j + 4).min(rows) * row_bytes;
    let mut at = j * row_bytes;
    while at < end {
        _mm_prefetch::<_MM_HINT_T1>(w.add(at) as *const i8);
        at += 64;
    }
}

#[inline(always)]
unsafe fn f16_bits_to_f32(h: half::f16) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h.to_bits() as i32)))
}

#[inline(always)]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    hsum128(s)
}

#[inline(always)]
unsafe fn hsum128(s: __m128) -> f32 {
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// 16 packed bytes as 32 nibbles in bytes: low nibbles (elements 0..16),
/// then high nibbles (16..32), as the 32-element formats store them.
#[inline(always)]
unsafe fn nibbles32(qs: *const u8) -> __m256i {
    // Both halves get the 16 bytes (a broadcast load, no shuffle); the
    // upper half's 32-bit lanes shift right by 4, which brings each byte's
    // high nibble down (the bits shifted in from the next byte are masked).
    let q = _mm256_broadcastsi128_si256(_mm_loadu_si128(qs as *const __m128i));
    let shifted = _mm256_srlv_epi32(q, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
    _mm256_and_si256(shifted, _mm256_set1_epi8(0x0F))
}

/// The first f16 of a block (its `d`) and the one after it, converted from
/// one 8-byte load (every 32-element block is at least 18 bytes long).
#[inline(always)]
unsafe fn f16_head(block: *const u8) -> __m128 {
    _mm_cvtph_ps(_mm_loadl_epi64(block as *const __m128i))
}

/// The shared loop of the 32-element formats. `decode(block) -> (quants,
/// scale, min)` gives the block's 32 quants as bytes (unsigned, or signed
/// when `signed`), the weight scale, and Q4_1's min (its `m * s` term is
/// added when `min` is set). With `offset`, each row's block dot starts from
/// the panel's `corr` (`-offset * sum of the activation quants`), which
/// takes the format's offset out exactly, in integers.
///
/// Per block, one vector multiply gives every tile row's scale (`d` of the
/// weight times each row's `d`, lanes padded to 8) and one multiply-add the
/// min term of every row; per row only the integer dot, its conversion and
/// one FMA remain.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn legacy<I: Isa, B, const R: usize, const NW: usize>(
    w: [*const B; NW],
    nb: usize,
    a: &ActTile,
    signed: bool,
    offset: bool,
    min: bool,
    decode: impl Fn(&B) -> (__m256i, f32, f32),
) -> [[f32; R]; NW] {
    // Flat accumulators (lane `wi * R + r`; callers use NW = 1 or R = 1, so
    // at most 8 lanes): nested arrays made LLVM keep them in memory.
    let mut acc = [_mm256_setzero_ps(); 8];
    let mut tails = [_mm256_setzero_ps(); NW];
    for b in 0..nb {
        let dv = _mm256_loadu_ps(a.d.add(b * LANES));
        for wi in 0..NW {
            let blk = &*w[wi].add(b);
            let (x, dw, m) = decode(blk);
            // One row: its scale straight from scalars (no lane shuffle).
            let sc = if R == 1 {
                _mm256_set1_ps(dw * *a.d.add(b * LANES))
            } else {
                _mm256_mul_ps(_mm256_set1_ps(dw), dv)
            };
            if min {
                // Multiply, then add (not fused): per lane exactly the
                // scalar `tail += m * s` of the reference.
                let sv = _mm256_loadu_ps(a.s.add(b * LANES));
                tails[wi] = _mm256_add_ps(tails[wi], _mm256_mul_ps(_mm256_set1_ps(m), sv));
            }
            let xa = if signed { _mm256_sign_epi8(x, x) } else { x };
            for r in 0..R {
                let y = _mm256_loadu_si256(a.qs.add((b * R + r) * QK) as *const __m256i);
                let s = if signed {
                    I::dot_u8i8(_mm256_setzero_si256(), xa, _mm256_sign_epi8(y, x))
                } else if offset {
                    let init = _mm256_setr_epi32(*a.corr.add(b * LANES + r), 0, 0, 0, 0, 0, 0, 0);
                    I::dot_u8i8(init, x, y)
                } else {
                    I::dot_u8i8(_mm256_setzero_si256(), x, y)
                };
                let scale = if R == 1 {
                    sc
                } else {
                    _mm256_permutevar8x32_ps(sc, _mm256_set1_epi32(r as i32))
                };
                let l = wi * R + r;
                acc[l] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale, acc[l]);
            }
        }
    }
    // Loops, not `array::from_fn`: closures do not inherit the caller's
    // target features, so intrinsics in them become calls.
    let mut out = [[0.0f32; R]; NW];
    for wi in 0..NW {
        let mut t = [0.0f32; LANES];
        _mm256_storeu_ps(t.as_mut_ptr(), tails[wi]);
        for r in 0..R {
            out[wi][r] = hsum(acc[wi * R + r]) + t[r];
        }
    }
    out
}

macro_rules! legacy_kernel {
    ($name:ident, $blk:ty, $signed:expr, $offset:expr, $min:expr, $decode:expr) => {
        #[inline(always)]
        unsafe fn $name<I: Isa, const R: usize, const NW: usize>(
            w: [*const $blk; NW],
            nb: usize,
            a: &ActTile,
        ) -> [[f32; R]; NW] {
            legacy::<I, _, R, NW>(w, nb, a, $signed, $offset, $min, $decode)
        }
    };
}

legacy_kernel!(q4_0, BlockQ4_0, false, true, false, |b: &BlockQ4_0| {
    let d = _mm_cvtss_f32(f16_head(b as *const BlockQ4_0 as *const u8));
    (nibbles32(b.qs.as_ptr()), d, 0.0)
});

legacy_kernel!(q4_1, BlockQ4_1, false, false, true, |b: &BlockQ4_1| {
    // `d` and `m` are the block's first two f16s.
    let dm = f16_head(b as *const BlockQ4_1 as *const u8);
    (
        nibbles32(b.qs.as_ptr()),
        _mm_cvtss_f32(dm),
        _mm_cvtss_f32(_mm_movehdup_ps(dm)),
    )
});

legacy_kernel!(q5_0, BlockQ5_0, false, true, false, |b: &BlockQ5_0| {
    let high = I::bit_bytes(u32::from_le_bytes(b.qh), 0x10);
    let x = _mm256_or_si256(nibbles32(b.qs.as_ptr()), high);
    let d = _mm_cvtss_f32(f16_head(b as *const BlockQ5_0 as *const u8));
    (x, d, 0.0)
});

legacy_kernel!(q8_0, BlockQ8_0, true, false, false, |b: &BlockQ8_0| {
    let x = _mm256_loadu_si256(b.qs.as_ptr() as *const __m256i);
    let d = _mm_cvtss_f32(f16_head(b as *const BlockQ8_0 as *const u8));
    (x, d, 0.0)
});

/// The offset each quant of `dtype` carries in the kernels' unsigned
/// decoding (what the activation panel's `corr` must take out).
pub(crate) fn offset(dtype: DType) -> i32 {
    match dtype {
        DType::Q4_0 => 8,
        DType::Q5_0 => 16,
        _ => 0,
    }
}

/// Q4_K's 8 (scale, min) pairs of 6 bits (see `blocks::scale_min_k4`).
#[inline(always)]
fn q4_k_scales(s: &[u8; K_SCALE_SIZE]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut mn = [0u8; 8];
    for j in 0..4 {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
        sc[j + 4] = (s[j + 8] & 0x0F) | ((s[j] >> 6) << 4);
        mn[j + 4] = (s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4);
    }
    (sc, mn)
}

/// Q4_K x Q8_K: per super-block, `d * sum_s sc_s * dot_s - dmin * sum_s
/// m_s * bsum32_s`, times the activation scale.
#[inline(always)]
unsafe fn q4_k<I: Isa, const R: usize, const NW: usize>(
    w: [*const BlockQ4K; NW],
    nb: usize,
    a: &ActTile,
) -> [[f32; R]; NW] {
    let m4 = _mm256_set1_epi8(0x0F);
    let mut acc = [[_mm256_setzero_ps(); R]; NW];
    let mut macc = [[_mm_setzero_ps(); R]; NW];
    for b in 0..nb {
        for wi in 0..NW {
            let (acc, macc) = (&mut acc[wi], &mut macc[wi]);
            let blk = &*w[wi].add(b);
            let (sc, mn) = q4_k_scales(&blk.scales);
            let d = f16_bits_to_f32(blk.d);
            let dmin = f16_bits_to_f32(blk.dmin);
            let mut dsc = [_mm256_setzero_ps(); 8];
            for s in 0..8 {
                dsc[s] = _mm256_set1_ps(d * sc[s] as f32);
            }
            let mins = _mm_cvtepu8_epi16(_mm_loadl_epi64(mn.as_ptr() as *const __m128i));
            let mut q = [_mm256_setzero_si256(); 8];
            for c in 0..4 {
                let v = _mm256_loadu_si256(blk.qs.as_ptr().add(32 * c) as *const __m256i);
                q[2 * c] = _mm256_and_si256(v, m4);
                q[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16::<4>(v), m4);
            }
            for r in 0..R {
                let u = b * R + r;
                let ap = a.qs.add(u * QK_K);
                let du = b * LANES + r;
                let mut t = _mm256_setzero_ps();
                for s in 0..8 {
                    let y = _mm256_loadu_si256(ap.add(32 * s) as *const __m256i);
                    let p = I::dot_u8i8(_mm256_setzero_si256(), q[s], y);
                    t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), dsc[s], t);
                }
                let da = *a.d.add(du);
                acc[r] = _mm256_fmadd_ps(t, _mm256_set1_ps(da), acc[r]);
                let b32 = _mm_loadu_si128(a.bsum32.add(u * 8) as *const __m128i);
                let msum = _mm_cvtepi32_ps(_mm_madd_epi16(mins, b32));
                macc[r] = _mm_fmadd_ps(msum, _mm_set1_ps(dmin * da), macc[r]);
            }
        }
    }
    let mut out = [[0.0f32; R]; NW];
    for wi in 0..NW {
        for r in 0..R {
            out[wi][r] = hsum(acc[wi][r]) - hsum128(macc[wi][r]);
        }
    }
    out
}

/// Q6_K x Q8_K: quants decoded to 0..64, the offset 32 taken out through the
/// 16-element activation sums: `d * sum_s sc_s * (dot_s - 32 * bsum16_s)`.
#[inline(always)]
unsafe fn q6_k<I: Isa, const R: usize, const NW: usize>(
    w: [*const BlockQ6K; NW],
    nb: usize,
    a: &ActTile,
) -> [[f32; R]; NW] {
    let m4 = _mm256_set1_epi8(0x0F);
    let m30 = _mm256_set1_epi8(0x30);
    let mut acc = [[_mm256_setzero_ps(); R]; NW];
    let mut macc = [[_mm256_setzero_ps(); R]; NW];
    for b in 0..nb {
        for wi in 0..NW {
            let (acc, macc) = (&mut acc[wi], &mut macc[wi]);
            let blk = &*w[wi].add(b);
            let d = f16_bits_to_f32(blk.d);
            let sc8 = _mm_loadu_si128(blk.scales.as_ptr() as *const __m128i);
            let sc16 = _mm256_cvtepi8_epi16(sc8);
            let dv = _mm256_set1_ps(d);
            let scf = [
                _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc8)), dv),
                _mm256_mul_ps(
                    _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128::<8>(sc8))),
                    dv,
                ),
            ];
            // Register t holds elements 32t..32t+32: sub-blocks 2t (lanes 0..4)
            // and 2t+1 (lanes 4..8).
            let mut dsc = [_mm256_setzero_ps(); 8];
            for (t, v) in dsc.iter_mut().enumerate() {
                let lo = (2 * t % 8) as i32;
                let idx = _mm256_setr_epi32(lo, lo, lo, lo, lo + 1, lo + 1, lo + 1, lo + 1);
                *v = _mm256_permutevar8x32_ps(scf[t / 4], idx);
            }
            let mut q = [_mm256_setzero_si256(); 8];
            for h in 0..2 {
                let ql0 = _mm256_loadu_si256(blk.ql.as_ptr().add(64 * h) as *const __m256i);
                let ql1 = _mm256_loadu_si256(blk.ql.as_ptr().add(64 * h + 32) as *const __m256i);
                let qh = _mm256_loadu_si256(blk.qh.as_ptr().add(32 * h) as *const __m256i);
                let hi = |x: __m256i| _mm256_and_si256(x, m30);
                q[4 * h] =
                    _mm256_or_si256(_mm256_and_si256(ql0, m4), hi(_mm256_slli_epi16::<4>(qh)));
                q[4 * h + 1] =
                    _mm256_or_si256(_mm256_and_si256(ql1, m4), hi(_mm256_slli_epi16::<2>(qh)));
                q[4 * h + 2] =
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(ql0), m4), hi(qh));
                q[4 * h + 3] = _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16::<4>(ql1), m4),
                    hi(_mm256_srli_epi16::<2>(qh)),
                );
            }
            for r in 0..R {
                let u = b * R + r;
                let ap = a.qs.add(u * QK_K);
                let du = b * LANES + r;
                let mut t = _mm256_setzero_ps();
                for (s, qs) in q.iter().enumerate() {
                    let y = _mm256_loadu_si256(ap.add(32 * s) as *const __m256i);
                    let p = I::dot_u8i8(_mm256_setzero_si256(), *qs, y);
                    t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), dsc[s], t);
                }
                let da = *a.d.add(du);
                acc[r] = _mm256_fmadd_ps(t, _mm256_set1_ps(da), acc[r]);
                let b16 = _mm256_loadu_si256(a.bsum16.add(u * 16) as *const __m256i);
                let off = _mm256_cvtepi32_ps(_mm256_madd_epi16(sc16, b16));
                macc[r] = _mm256_fmadd_ps(off, _mm256_set1_ps(32.0 * d * da), macc[r]);
            }
        }
    }
    let mut out = [[0.0f32; R]; NW];
    for wi in 0..NW {
        for r in 0..R {
            out[wi][r] = hsum(acc[wi][r]) - hsum(macc[wi][r]);
        }
    }
    out
}
