//! aarch64 block-dot kernels: weight rows against a tile of up to `MR`
//! activation rows of a [`Panel`](super::panel::Panel), for Q4_0, Q4_1,
//! Q5_0, Q8_0 (against Q8_0/Q8_1 activations) and Q4_K, Q6_K (against Q8_K);
//! the NEON counterpart of `x86.rs`, with the same entry point and panel.
//!
//! Each weight block is decoded once into 16-byte registers of signed bytes
//! and dotted with the tile's rows (prefill reuses it up to `MR` times;
//! decode, one activation row, takes 4 weight rows at a time instead).
//! Weights decode to their stored unsigned values (0..16 for Q4_0, 0..32 for
//! Q5_0, 0..64 for Q6_K; Q8_0 is already signed); as on x86 the format's
//! offset is taken out exactly in integers, through the panel's `corr` for
//! the 32-element formats and the activation sums `bsum16` for Q6_K, so each
//! block's integer sum is exactly the reference's.
//!
//! The f32 combination: the 32-element formats keep 4 f32 lanes per row
//! (one FMA per block, one horizontal sum at the end, as ggml's NEON
//! kernels do); the K-quants reduce each super-block to the reference's two
//! integers (`sum_s sc_s * dot_s` and `sum_s m_s * bsum_s`) and combine them
//! in f32 exactly as `quant::dot::k_block_dot` does, in the same order (so
//! their results equal the scalar reference's, bit for bit, unlike x86's).
//!
//! Two levels, one body: [`Neon`] forms the 4-byte dot products from
//! `vmull_s8` and two pairwise adds (products of bytes fit i16: at most
//! 128 * 128), [`Dotprod`] uses the Armv8.2 `sdot` instruction. Both put the
//! products of bytes `4i..4i+4` in lane `i`, so their results are
//! bit-identical.

use std::arch::aarch64::*;
use std::arch::asm;

use super::panel::{ActTile, LANES};
use crate::quant::blocks::*;
use crate::tensor::DType;

/// The level-specific pieces.
pub(crate) trait Isa {
    /// Rows per activation tile: each decoded weight block is dotted with up
    /// to this many activation rows (bounded by the vector registers).
    const MR: usize;
    /// `acc + sum of a[4i..4i+4] * b[4i..4i+4]` per i32 lane.
    unsafe fn dot_i8(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t;
}

pub(crate) struct Neon;
pub(crate) struct Dotprod;

impl Isa for Neon {
    const MR: usize = 4;
    #[inline(always)]
    unsafe fn dot_i8(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        let lo = vpaddlq_s16(vmull_s8(vget_low_s8(a), vget_low_s8(b)));
        let hi = vpaddlq_s16(vmull_high_s8(a, b));
        vaddq_s32(acc, vpaddq_s32(lo, hi))
    }
}

impl Isa for Dotprod {
    const MR: usize = 8;
    #[inline(always)]
    unsafe fn dot_i8(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        // `vdotq_s32` is still unstable in Rust (stdarch_neon_dotprod); the
        // instruction itself is what it would emit. Only inlined into
        // `gemm_rows_dotprod`, which enables the feature.
        asm!(
            "sdot {0:v}.4s, {1:v}.16b, {2:v}.16b",
            inout(vreg) acc,
            in(vreg) a,
            in(vreg) b,
            options(pure, nomem, nostack, preserves_flags)
        );
        acc
    }
}

/// Which kernel family a CPU runs, detected once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Neon,
    Dotprod,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Neon => "neon",
            Level::Dotprod => "neon-dotprod",
        }
    }

    /// Every level this CPU can run, best first.
    pub fn available() -> Vec<Level> {
        let mut v = Vec::new();
        // NEON (ASIMD) is part of every aarch64 CPU Rust targets; checked
        // anyway, so that a CPU without it falls to the scalar path.
        if std::arch::is_aarch64_feature_detected!("neon") {
            if std::arch::is_aarch64_feature_detected!("dotprod") {
                v.push(Level::Dotprod);
            }
            v.push(Level::Neon);
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
        Level::Neon => Neon::MR,
        Level::Dotprod => Dotprod::MR,
    }
}

/// The offset each quant of `dtype` carries in the kernels' unsigned
/// decoding (what the activation panel's `corr` must take out).
pub(crate) fn offset(dtype: DType) -> i32 {
    match dtype {
        DType::Q4_0 => 8,
        DType::Q5_0 => 16,
        _ => 0,
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
        Level::Neon => gemm_rows_neon(dtype, w, row_bytes, rows, k, tiles, out, ldo),
        Level::Dotprod => gemm_rows_dotprod(dtype, w, row_bytes, rows, k, tiles, out, ldo),
    }
}

#[target_feature(enable = "neon")]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_rows_neon(
    dtype: DType,
    w: *const u8,
    row_bytes: usize,
    rows: usize,
    k: usize,
    tiles: &[ActTile],
    out: *mut f32,
    ldo: usize,
) {
    gemm_rows_generic::<Neon>(dtype, w, row_bytes, rows, k, tiles, out, ldo)
}

#[target_feature(enable = "neon,dotprod")]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_rows_dotprod(
    dtype: DType,
    w: *const u8,
    row_bytes: usize,
    rows: usize,
    k: usize,
    tiles: &[ActTile],
    out: *mut f32,
    ldo: usize,
) {
    gemm_rows_generic::<Dotprod>(dtype, w, row_bytes, rows, k, tiles, out, ldo)
}

tile_driver!($);

/// Asks for weight rows `j..j + 4` (clipped to `rows`) to be brought into
/// L2 while the current rows are dotted: decode streams short rows (a few
/// hundred bytes), too short for the hardware prefetcher to get ahead.
/// (`PRFM` by inline assembly: the prefetch intrinsic is unstable.)
#[inline(always)]
unsafe fn prefetch_rows(w: *const u8, row_bytes: usize, j: usize, rows: usize) {
    let end = (j + 4).min(rows) * row_bytes;
    let mut at = j * row_bytes;
    while at < end {
        asm!(
            "prfm pldl2keep, [{0}]",
            in(reg) w.wrapping_add(at),
            options(nostack, preserves_flags, readonly)
        );
        at += 64;
    }
}

/// An f16 scale widened with one `FCVT`: conversion from half precision is
/// Armv8.0 base floating point (FEAT_FP16 adds half-precision arithmetic
/// only), so unlike `half::f16::to_f32` this needs no run-time check.
#[inline(always)]
unsafe fn f16_to_f32(h: half::f16) -> f32 {
    let out: f32;
    asm!(
        "fcvt {0:s}, {1:h}",
        out(vreg) out,
        in(vreg) h.to_bits(),
        options(pure, nomem, nostack, preserves_flags)
    );
    out
}

/// 16 packed bytes as 32 nibbles: low nibbles (elements 0..16), then high
/// nibbles (16..32), as the 32-element formats store them.
#[inline(always)]
unsafe fn nibbles32(qs: *const u8) -> [uint8x16_t; 2] {
    let q = vld1q_u8(qs);
    [vandq_u8(q, vdupq_n_u8(0x0F)), vshrq_n_u8::<4>(q)]
}

/// The shared loop of the 32-element formats. `decode(block) -> (quants,
/// scale, min)` gives the block's 32 quants as bytes, the weight scale, and
/// Q4_1's min (its `m * s` term is added when `min` is set). With `offset`,
/// each row's block dot starts from the panel's `corr` (`-offset * sum of
/// the activation quants`), which takes the format's offset out exactly.
#[inline(always)]
unsafe fn legacy<I: Isa, B, const R: usize, const NW: usize>(
    w: [*const B; NW],
    nb: usize,
    a: &ActTile,
    offset: bool,
    min: bool,
    decode: impl Fn(&B) -> ([int8x16_t; 2], f32, f32),
) -> [[f32; R]; NW] {
    // Flat accumulators (lane `wi * R + r`; callers use NW = 1 or R = 1, so
    // at most 8), as in x86.rs: nested arrays can end up in memory.
    let mut acc = [vdupq_n_f32(0.0); 8];
    let mut tails = [0.0f32; 8];
    for b in 0..nb {
        for (wi, wp) in w.iter().enumerate() {
            let (x, dw, m) = decode(&*wp.add(b));
            for r in 0..R {
                let y = a.qs.add((b * R + r) * QK);
                let init = if offset {
                    vsetq_lane_s32::<0>(*a.corr.add(b * LANES + r), vdupq_n_s32(0))
                } else {
                    vdupq_n_s32(0)
                };
                let s = I::dot_i8(init, x[0], vld1q_s8(y));
                let s = I::dot_i8(s, x[1], vld1q_s8(y.add(16)));
                let l = wi * R + r;
                let scale = dw * *a.d.add(b * LANES + r);
                acc[l] = vfmaq_n_f32(acc[l], vcvtq_f32_s32(s), scale);
                if min {
                    tails[l] += m * *a.s.add(b * LANES + r);
                }
            }
        }
    }
    let mut out = [[0.0f32; R]; NW];
    for wi in 0..NW {
        for r in 0..R {
            out[wi][r] = vaddvq_f32(acc[wi * R + r]) + tails[wi * R + r];
        }
    }
    out
}

macro_rules! legacy_kernel {
    ($name:ident, $blk:ty, $offset:expr, $min:expr, $decode:expr) => {
        #[inline(always)]
        unsafe fn $name<I: Isa, const R: usize, const NW: usize>(
            w: [*const $blk; NW],
            nb: usize,
            a: &ActTile,
        ) -> [[f32; R]; NW] {
            legacy::<I, _, R, NW>(w, nb, a, $offset, $min, $decode)
        }
    };
}

legacy_kernel!(q4_0, BlockQ4_0, true, false, |b: &BlockQ4_0| {
    let [lo, hi] = nibbles32(b.qs.as_ptr());
    let x = [vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi)];
    (x, f16_to_f32(b.d), 0.0)
});

legacy_kernel!(q4_1, BlockQ4_1, false, true, |b: &BlockQ4_1| {
    let [lo, hi] = nibbles32(b.qs.as_ptr());
    let x = [vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi)];
    (x, f16_to_f32(b.d), f16_to_f32(b.m))
});

legacy_kernel!(q5_0, BlockQ5_0, true, false, |b: &BlockQ5_0| {
    // Bit j of `qh` is element j's fifth bit: spread byte j / 8 of it over
    // bytes j, test bit j % 8, keep 0x10 where set.
    const SPREAD: [u8; 32] = [
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3,
        3, 3,
    ];
    const BIT: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    let qh = vreinterpretq_u8_u32(vdupq_n_u32(u32::from_le_bytes(b.qh)));
    let bit = vld1q_u8(BIT.as_ptr());
    let [lo, hi] = nibbles32(b.qs.as_ptr());
    let mut x = [vdupq_n_s8(0); 2];
    for (h, q) in [lo, hi].into_iter().enumerate() {
        let bytes = vqtbl1q_u8(qh, vld1q_u8(SPREAD.as_ptr().add(16 * h)));
        let high = vandq_u8(vtstq_u8(bytes, bit), vdupq_n_u8(0x10));
        x[h] = vreinterpretq_s8_u8(vorrq_u8(q, high));
    }
    (x, f16_to_f32(b.d), 0.0)
});

legacy_kernel!(q8_0, BlockQ8_0, false, false, |b: &BlockQ8_0| {
    let p = b.qs.as_ptr();
    ([vld1q_s8(p), vld1q_s8(p.add(16))], f16_to_f32(b.d), 0.0)
});

/// One super-block's result from its two integer sums, exactly as the
/// reference (`quant::dot::k_block_dot`) combines them.
#[inline(always)]
fn k_combine(da: f32, d: f32, isum: i32, dmin: f32, msum: i32) -> f32 {
    da * (d * isum as f32) - da * (dmin * msum as f32)
}

/// Q4_K x Q8_K: per super-block the integers `sum_s sc_s * dot_s` and
/// `sum_s m_s * bsum32_s` (s over the 8 sub-blocks of 32).
#[inline(always)]
unsafe fn q4_k<I: Isa, const R: usize, const NW: usize>(
    w: [*const BlockQ4K; NW],
    nb: usize,
    a: &ActTile,
) -> [[f32; R]; NW] {
    let mut out = [[0.0f32; R]; NW];
    for b in 0..nb {
        for (wp, o) in w.iter().zip(out.iter_mut()) {
            let blk = &*wp.add(b);
            let mut sc = [0i32; 8];
            let mut mn = [0i16; 8];
            for (s, (sc, mn)) in sc.iter_mut().zip(&mut mn).enumerate() {
                let (x, m) = scale_min_k4(s, &blk.scales);
                (*sc, *mn) = (x as i32, m as i16);
            }
            let mins = vld1q_s16(mn.as_ptr());
            // q[2s], q[2s + 1]: sub-block s (elements 32s..32s+32). Bytes
            // 32c..32c+32 hold sub-block 2c in their low nibbles, 2c+1 in
            // their high ones.
            let mut q = [vdupq_n_s8(0); 16];
            for c in 0..4 {
                for h in 0..2 {
                    let [lo, hi] = nibbles32(blk.qs.as_ptr().add(32 * c + 16 * h));
                    q[4 * c + h] = vreinterpretq_s8_u8(lo);
                    q[4 * c + 2 + h] = vreinterpretq_s8_u8(hi);
                }
            }
            let d = f16_to_f32(blk.d);
            let dmin = f16_to_f32(blk.dmin);
            for (r, o) in o.iter_mut().enumerate() {
                let u = b * R + r;
                let ap = a.qs.add(u * QK_K);
                let mut isum = vdupq_n_s32(0);
                for s in 0..8 {
                    let p = I::dot_i8(vdupq_n_s32(0), q[2 * s], vld1q_s8(ap.add(32 * s)));
                    let p = I::dot_i8(p, q[2 * s + 1], vld1q_s8(ap.add(32 * s + 16)));
                    isum = vmlaq_n_s32(isum, p, sc[s]);
                }
                let b32 = vld1q_s16(a.bsum32.add(u * 8));
                let msum =
                    vmlal_high_s16(vmull_s16(vget_low_s16(mins), vget_low_s16(b32)), mins, b32);
                let da = *a.d.add(b * LANES + r);
                *o += k_combine(da, d, vaddvq_s32(isum), dmin, vaddvq_s32(msum));
            }
        }
    }
    out
}

/// Q6_K x Q8_K: quants decoded to 0..64, the offset 32 taken out through the
/// 16-element activation sums: `sum_s sc_s * (dot_s - 32 * bsum16_s)`.
#[inline(always)]
unsafe fn q6_k<I: Isa, const R: usize, const NW: usize>(
    w: [*const BlockQ6K; NW],
    nb: usize,
    a: &ActTile,
) -> [[f32; R]; NW] {
    let m4 = vdupq_n_u8(0x0F);
    let m30 = vdupq_n_u8(0x30);
    let mut out = [[0.0f32; R]; NW];
    for b in 0..nb {
        for (wp, o) in w.iter().zip(out.iter_mut()) {
            let blk = &*wp.add(b);
            let sc8 = vld1q_s8(blk.scales.as_ptr());
            let sc16 = [vmovl_s8(vget_low_s8(sc8)), vmovl_high_s8(sc8)];
            // q[s]: sub-block s of 16 elements. Each half h (128 elements)
            // takes its low 4 bits from 64 bytes of `ql` (elements 0..32 and
            // 32..64 in the low nibbles, 64..96 and 96..128 in the high
            // ones) and its top 2 bits from 32 bytes of `qh` (bits 0-1, 2-3,
            // 4-5 and 6-7 for those four runs of 32).
            let mut q = [vdupq_n_s8(0); 16];
            for h in 0..2 {
                for g in 0..2 {
                    let ql0 = vld1q_u8(blk.ql.as_ptr().add(64 * h + 16 * g));
                    let ql1 = vld1q_u8(blk.ql.as_ptr().add(64 * h + 32 + 16 * g));
                    let qh = vld1q_u8(blk.qh.as_ptr().add(32 * h + 16 * g));
                    let runs = [
                        vorrq_u8(vandq_u8(ql0, m4), vandq_u8(vshlq_n_u8::<4>(qh), m30)),
                        vorrq_u8(vandq_u8(ql1, m4), vandq_u8(vshlq_n_u8::<2>(qh), m30)),
                        vorrq_u8(vshrq_n_u8::<4>(ql0), vandq_u8(qh, m30)),
                        vorrq_u8(vshrq_n_u8::<4>(ql1), vandq_u8(vshrq_n_u8::<2>(qh), m30)),
                    ];
                    for (t, v) in runs.into_iter().enumerate() {
                        q[8 * h + 2 * t + g] = vreinterpretq_s8_u8(v);
                    }
                }
            }
            let d = f16_to_f32(blk.d);
            for (r, o) in o.iter_mut().enumerate() {
                let u = b * R + r;
                let ap = a.qs.add(u * QK_K);
                let mut isum = vdupq_n_s32(0);
                for (s, qs) in q.iter().enumerate() {
                    let p = I::dot_i8(vdupq_n_s32(0), *qs, vld1q_s8(ap.add(16 * s)));
                    isum = vmlaq_n_s32(isum, p, blk.scales[s] as i32);
                }
                let bp = a.bsum16.add(u * 16);
                let (b0, b1) = (vld1q_s16(bp), vld1q_s16(bp.add(8)));
                let off = vmull_s16(vget_low_s16(sc16[0]), vget_low_s16(b0));
                let off = vmlal_high_s16(off, sc16[0], b0);
                let off = vmlal_s16(off, vget_low_s16(sc16[1]), vget_low_s16(b1));
                let off = vmlal_high_s16(off, sc16[1], b1);
                let isum = vmlsq_n_s32(isum, off, 32);
                let da = *a.d.add(b * LANES + r);
                *o += k_combine(da, d, vaddvq_s32(isum), 0.0, 0);
            }
        }
    }
    out
}
