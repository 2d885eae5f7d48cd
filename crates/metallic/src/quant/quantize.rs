//! Scalar reference quantizers, transcribed from ggml's `quantize_row_*_ref`
//! (ggml-quants.c) so that they agree with it bit for bit: the same f32
//! operations in the same order, the same tie-breaking (first maximum wins),
//! and C's float-to-int truncation (`(int8_t)(x + 8.5f)`) or `roundf`.

use half::f16;

use super::blocks::*;

/// The first element of largest magnitude, and that magnitude.
fn abs_max(x: &[f32]) -> (f32, f32) {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    (amax, max)
}

fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

fn inverse(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

/// Packs 32 values below 16 into nibbles (elements 0..16 low, 16..32 high).
fn pack_nibbles(q: &[u8; QK]) -> [u8; QK / 2] {
    std::array::from_fn(|j| (q[j] & 0x0F) | ((q[j + QK / 2] & 0x0F) << 4))
}

/// Bit 4 of each of 32 values, as the little-endian u32 `qh`.
fn pack_high_bits(q: &[u8; QK]) -> [u8; 4] {
    let qh = q
        .iter()
        .enumerate()
        .fold(0u32, |acc, (j, &x)| acc | (((x as u32 >> 4) & 1) << j));
    qh.to_le_bytes()
}

pub fn q4_0(x: &[f32; QK]) -> BlockQ4_0 {
    let (_, max) = abs_max(x);
    let d = max / -8.0;
    let id = inverse(d);
    // C: MIN(15, (int8_t)(x * id + 8.5f)); Rust's `as` truncates like C here.
    let q = x.map(|v| ((v * id + 8.5) as i8).min(15) as u8);
    BlockQ4_0 {
        d: f16::from_f32(d),
        qs: pack_nibbles(&q),
    }
}

pub fn q4_1(x: &[f32; QK]) -> BlockQ4_1 {
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = inverse(d);
    let q = x.map(|v| (((v - min) * id + 0.5) as i8).min(15) as u8);
    BlockQ4_1 {
        d: f16::from_f32(d),
        m: f16::from_f32(min),
        qs: pack_nibbles(&q),
    }
}

pub fn q5_0(x: &[f32; QK]) -> BlockQ5_0 {
    let (_, max) = abs_max(x);
    let d = max / -16.0;
    let id = inverse(d);
    let q = x.map(|v| ((v * id + 16.5) as i8).min(31) as u8);
    BlockQ5_0 {
        d: f16::from_f32(d),
        qh: pack_high_bits(&q),
        qs: pack_nibbles(&q),
    }
}

pub fn q5_1(x: &[f32; QK]) -> BlockQ5_1 {
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = inverse(d);
    // ggml has no MIN(31, ..) here: (max - min) * id cannot round above 31.5.
    let q = x.map(|v| ((v - min) * id + 0.5) as u8);
    BlockQ5_1 {
        d: f16::from_f32(d),
        m: f16::from_f32(min),
        qh: pack_high_bits(&q),
        qs: pack_nibbles(&q),
    }
}

pub fn q8_0(x: &[f32; QK]) -> BlockQ8_0 {
    let (amax, _) = abs_max(x);
    let d = amax / 127.0;
    let id = inverse(d);
    BlockQ8_0 {
        d: f16::from_f32(d),
        // roundf: halves away from zero, as f32::round.
        qs: x.map(|v| (v * id).round() as i8),
    }
}

pub fn q8_1(x: &[f32; QK]) -> BlockQ8_1 {
    let (amax, _) = abs_max(x);
    let d = amax / 127.0;
    let id = inverse(d);
    let qs = x.map(|v| (v * id).round() as i8);
    let sum: i32 = qs.iter().map(|&q| q as i32).sum();
    BlockQ8_1 {
        d: f16::from_f32(d),
        s: f16::from_f32(sum as f32 * d),
        qs,
    }
}

/// Q8_0 as llama.cpp's CPU backend quantizes activations at run time (its
/// AVX and NEON `quantize_row_q8_0`, not the `_ref` above): the inverse
/// scale is `127 / amax` rather than `1 / (amax / 127)` (they differ by an
/// ulp for some `amax`), and halves round to even. Matching it keeps our
/// 8-bit activations identical to llama.cpp's.
pub fn q8_0_act(x: &[f32; QK]) -> BlockQ8_0 {
    let (d, id) = act_scale(x);
    BlockQ8_0 {
        d: f16::from_f32(d),
        qs: act_quants(x, id),
    }
}

/// `round_half_even(x * id)` of each element. A plain loop: `[f32; 32]::map`
/// compiled to an out-of-line scalar call that took a fifth of a small
/// decode matmul (SmolLM2's 192 x 576 K projection).
#[inline]
fn act_quants(x: &[f32; QK], id: f32) -> [i8; QK] {
    let mut qs = [0i8; QK];
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = round_half_even(v * id) as i8;
    }
    qs
}

/// Q8_1 at run time, as [`q8_0_act`]; `s` is `d * sum(q)` with the f32 `d`.
pub fn q8_1_act(x: &[f32; QK]) -> BlockQ8_1 {
    let (d, id) = act_scale(x);
    let qs = act_quants(x, id);
    let sum: i32 = qs.iter().map(|&q| q as i32).sum();
    BlockQ8_1 {
        d: f16::from_f32(d),
        s: f16::from_f32(d * sum as f32),
        qs,
    }
}

/// The run-time quantizers' `(d, id)`: `amax / 127` and `127 / amax` (0
/// for an all-zero block).
fn act_scale(x: &[f32; QK]) -> (f32, f32) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    (amax / 127.0, id)
}

/// Round half to even for |x| <= 2^22 (adding and removing 1.5 * 2^23
/// leaves the integer part, rounded by the f32 addition itself), as the
/// SIMD rounding instructions do; plain adds, so it vectorises.
fn round_half_even(x: f32) -> i32 {
    ((x + 12_582_912.0) - 12_582_912.0) as i32
}

/// ggml's `nearest_int`: round half to even by adding 1.5 * 2^23, valid for
/// |x| <= 2^22 (Q8_K values are within +-127).
fn nearest_int(x: f32) -> i32 {
    let v = x + 12_582_912.0;
    (v.to_bits() as i32 & 0x007F_FFFF) - 0x0040_0000
}

pub fn q8_k(x: &[f32; QK_K]) -> BlockQ8K {
    let mut b = BlockQ8K {
        d: 0.0,
        qs: [0; QK_K],
        bsums: [0; QK_K / 16],
    };
    // Q8_K keeps the first maximum with a strict `>` (same as abs_max).
    let (amax, max) = abs_max(x);
    if amax == 0.0 {
        return b;
    }
    // -127 rather than -128 keeps every value in the symmetric range that the
    // AVX code paths of ggml assume.
    let iscale = -127.0 / max;
    for (q, &v) in b.qs.iter_mut().zip(x) {
        *q = nearest_int(iscale * v).min(127) as i8;
    }
    for (s, chunk) in b.bsums.iter_mut().zip(b.qs.chunks_exact(16)) {
        *s = chunk.iter().map(|&q| q as i16).sum();
    }
    b.d = 1.0 / iscale;
    b
}
