//! Scalar reference dot products of a weight row in a block format with an
//! activation row quantized to the matching 8-bit format, after ggml's
//! `ggml_vec_dot_<type>_q8_<x>` (generic versions): integer products within a
//! block, one f32 scale per block (per sub-block for the K-quants).
//!
//! The pairing is ggml's `vec_dot_type`: Q8_0 activations for Q4_0, Q5_0 and
//! Q8_0 weights; Q8_1 for Q4_1 and Q5_1 (whose offset `m` multiplies the
//! activation block's sum `s`); Q8_K for the K-quants. ggml never multiplies
//! Q8_1 or Q8_K weights; we pair them with Q8_0 and Q8_K.
//!
//! These are the obviously-correct versions that SIMD kernels are tested
//! against. Slices must have equal lengths (whole rows of blocks).

use super::blocks::*;

fn int_dot(x: &[i8], y: &[i8]) -> i32 {
    x.iter().zip(y).map(|(&a, &b)| a as i32 * b as i32).sum()
}

fn check_len(x: usize, y: usize) {
    assert_eq!(
        x, y,
        "vec_dot: weight and activation rows differ in block count"
    );
}

pub fn vec_dot_q4_0_q8_0(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    check_len(x.len(), y.len());
    x.iter()
        .zip(y)
        .map(|(x, y)| int_dot(&x.quants(), &y.qs) as f32 * (x.d.to_f32() * y.d.to_f32()))
        .sum()
}

pub fn vec_dot_q5_0_q8_0(x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
    check_len(x.len(), y.len());
    x.iter()
        .zip(y)
        .map(|(x, y)| int_dot(&x.quants(), &y.qs) as f32 * (x.d.to_f32() * y.d.to_f32()))
        .sum()
}

pub fn vec_dot_q8_0_q8_0(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    check_len(x.len(), y.len());
    x.iter()
        .zip(y)
        .map(|(x, y)| int_dot(&x.qs, &y.qs) as f32 * (x.d.to_f32() * y.d.to_f32()))
        .sum()
}

/// Q8_1 weights: the same product as Q8_0 (their `s` is not needed).
pub fn vec_dot_q8_1_q8_0(x: &[BlockQ8_1], y: &[BlockQ8_0]) -> f32 {
    check_len(x.len(), y.len());
    x.iter()
        .zip(y)
        .map(|(x, y)| int_dot(&x.qs, &y.qs) as f32 * (x.d.to_f32() * y.d.to_f32()))
        .sum()
}

/// `sum((d q + m) * (dy qy)) = d dy sum(q qy) + m (dy sum(qy))`, and the
/// last factor is the activation block's `s`.
pub fn vec_dot_q4_1_q8_1(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    check_len(x.len(), y.len());
    x.iter()
        .zip(y)
        .map(|(x, y)| {
            let sumi = int_dot(&x.quants(), &y.qs) as f32;
            (x.d.to_f32() * y.d.to_f32()) * sumi + x.m.to_f32() * y.s.to_f32()
        })
        .sum()
}

pub fn vec_dot_q5_1_q8_1(x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 {
    check_len(x.len(), y.len());
    x.iter()
        .zip(y)
        .map(|(x, y)| {
            let sumi = int_dot(&x.quants(), &y.qs) as f32;
            (x.d.to_f32() * y.d.to_f32()) * sumi + x.m.to_f32() * y.s.to_f32()
        })
        .sum()
}

/// One K-quant super-block times one Q8_K block:
/// `sum_i (d sc_s q_i - dmin m_s) dy qy_i
///   = dy (d sum_s sc_s sum_{i in s} q_i qy_i - dmin sum_s m_s bsum_s)`,
/// with both inner sums in integers (bounded by 16 * 64 * 127 * 64 per
/// sub-block, far inside i32).
fn k_block_dot(u: &KUnpacked, y: &BlockQ8K) -> f32 {
    let mut isum = 0i32;
    let mut msum = 0i32;
    for s in 0..QK_K / 16 {
        let r = s * 16..s * 16 + 16;
        isum += u.scales[s] * int_dot(&u.q[r.clone()], &y.qs[r]);
        msum += u.mins[s] * y.bsums[s] as i32;
    }
    y.d * (u.d * isum as f32) - y.d * (u.dmin * msum as f32)
}

fn vec_dot_k<B>(x: &[B], y: &[BlockQ8K], unpack: impl Fn(&B) -> KUnpacked) -> f32 {
    check_len(x.len(), y.len());
    x.iter()
        .zip(y)
        .map(|(x, y)| k_block_dot(&unpack(x), y))
        .sum()
}

pub fn vec_dot_q2_k_q8_k(x: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    vec_dot_k(x, y, BlockQ2K::unpack)
}

pub fn vec_dot_q3_k_q8_k(x: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    vec_dot_k(x, y, BlockQ3K::unpack)
}

pub fn vec_dot_q4_k_q8_k(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    vec_dot_k(x, y, BlockQ4K::unpack)
}

pub fn vec_dot_q5_k_q8_k(x: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    vec_dot_k(x, y, BlockQ5K::unpack)
}

pub fn vec_dot_q6_k_q8_k(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    vec_dot_k(x, y, BlockQ6K::unpack)
}

pub fn vec_dot_q8_k_q8_k(x: &[BlockQ8K], y: &[BlockQ8K]) -> f32 {
    check_len(x.len(), y.len());
    x.iter()
        .zip(y)
        .map(|(x, y)| int_dot(&x.qs, &y.qs) as f32 * (x.d * y.d))
        .sum()
}
