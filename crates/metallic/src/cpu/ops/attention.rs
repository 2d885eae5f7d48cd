//! Attention on the CPU. The visible part of K and V (`pos_offset + seq`
//! positions) is first converted to contiguous f32 `[pos, kv_head, head_dim]`
//! so the inner loops are plain slices; then every (query row, head) pair runs
//! in parallel: scores, max-subtracted softmax (f32 `exp`, f64 sum), and the
//! weighted sum of values, with operands rounded to the cache's dtypes as
//! `ops::attention` specifies.

use rayon::prelude::*;

use crate::error::Result;
use crate::ops::attention::{round_to, Attention};
use half::slice::HalfFloatSliceExt;

use crate::tensor::{cast, read_f32, write_f32, DType, Tensor};

const OP: &str = "attention";

/// `[n, heads, head_dim]` rows `0..n` of a rank-3 view, as contiguous f32.
fn to_f32(t: &Tensor, n: usize) -> Result<Vec<f32>> {
    let (heads, head_dim) = (t.dim(1), t.dim(2));
    let (st, off) = (t.strides(), t.layout().offset());
    let guard = t.cpu_storage(OP)?.read();
    let bytes = guard.bytes();
    let mut out = vec![0.0f32; n * heads * head_dim];
    let dtype = t.dtype();
    out.par_chunks_mut(heads * head_dim)
        .enumerate()
        .for_each(|(j, row)| {
            for (h, head) in row.chunks_exact_mut(head_dim).enumerate() {
                let base = off + j * st[0] + h * st[1];
                // Contiguous heads (the KV cache's layout) convert as slices
                // (F16C where present); other views element by element.
                match dtype {
                    DType::F16 if st[2] == 1 => {
                        cast::<half::f16>(bytes)[base..base + head_dim].convert_to_f32_slice(head)
                    }
                    DType::F32 if st[2] == 1 => {
                        head.copy_from_slice(&cast::<f32>(bytes)[base..base + head_dim])
                    }
                    _ => {
                        for (e, x) in head.iter_mut().enumerate() {
                            *x = read_f32(bytes, dtype, base + e * st[2]);
                        }
                    }
                }
            }
        });
    Ok(out)
}

pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, p: &Attention, out: &Tensor) -> Result<()> {
    let (seq, n_heads, head_dim) = (q.dim(0), q.dim(1), q.dim(2));
    let n_kv_heads = k.dim(1);
    let group = n_heads / n_kv_heads;
    let visible = p.pos_offset + seq;
    let mut qf = to_f32(q, seq)?;
    let (k_dtype, v_dtype) = (k.dtype(), v.dtype());
    qf.iter_mut().for_each(|x| *x = round_to(k_dtype, *x));
    let kf = to_f32(k, visible)?;
    let vf = to_f32(v, visible)?;
    let kv_row = n_kv_heads * head_dim;

    let mut result = vec![0.0f32; seq * n_heads * head_dim];
    let shape = Shape {
        n_heads,
        head_dim,
        group,
        kv_row,
        scale: p.scale,
        pos_offset: p.pos_offset,
        v_dtype,
    };
    #[cfg(target_arch = "x86_64")]
    let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
    result.par_chunks_mut(head_dim).enumerate().for_each_init(
        || vec![0.0f32; visible],
        |scores, (sh, o)| {
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: AVX2 and FMA were detected on this CPU.
                unsafe { head_avx2(&shape, &qf, &kf, &vf, scores, sh, o) };
                return;
            }
            head(&shape, &qf, &kf, &vf, scores, sh, o);
        },
    );

    let out_storage = out.cpu_storage(OP)?;
    let mut out_guard = out_storage.write(OP)?;
    let out_bytes = out_guard
        .bytes_mut()
        .expect("write() refuses read-only storage");
    let (os, oo) = (out.strides(), out.layout().offset());
    for (sh, o) in result.chunks_exact(head_dim).enumerate() {
        let base = oo + (sh / n_heads) * os[0] + (sh % n_heads) * os[1];
        for (e, &x) in o.iter().enumerate() {
            write_f32(out_bytes, out.dtype(), base + e * os[2], x);
        }
    }
    Ok(())
}

/// What one (query row, head) needs to know of the problem.
struct Shape {
    n_heads: usize,
    head_dim: usize,
    group: usize,
    kv_row: usize,
    scale: f32,
    pos_offset: usize,
    v_dtype: crate::tensor::DType,
}

/// Query row and head `sh` (`s * n_heads + h`): scores, max-subtracted
/// softmax and the weighted sum of values into `o`.
#[inline(always)]
fn head(
    p: &Shape,
    qf: &[f32],
    kf: &[f32],
    vf: &[f32],
    scores: &mut [f32],
    sh: usize,
    o: &mut [f32],
) {
    let hd = p.head_dim;
    let (s, h) = (sh / p.n_heads, sh % p.n_heads);
    let g = h / p.group;
    let qh = &qf[sh * hd..(sh + 1) * hd];
    let n_keys = p.pos_offset + s + 1;
    let mut max = f32::NEG_INFINITY;
    for (j, sc) in scores[..n_keys].iter_mut().enumerate() {
        let kh = &kf[j * p.kv_row + g * hd..][..hd];
        *sc = p.scale * dot(qh, kh);
        max = max.max(*sc);
    }
    let mut sum = 0.0f64;
    for sc in scores[..n_keys].iter_mut() {
        *sc = (*sc - max).exp();
        sum += *sc as f64;
    }
    o.fill(0.0);
    let inv = (1.0 / sum) as f32;
    for (j, &w) in scores[..n_keys].iter().enumerate() {
        let vh = &vf[j * p.kv_row + g * hd..][..hd];
        let pj = round_to(p.v_dtype, w * inv);
        for (x, &y) in o.iter_mut().zip(vh) {
            *x += pj * y;
        }
    }
}

/// [`head`] compiled for AVX2 (same operations in the same order, so the
/// same results; the loops vectorise to 256 bits).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn head_avx2(
    p: &Shape,
    qf: &[f32],
    kf: &[f32],
    vf: &[f32],
    scores: &mut [f32],
    sh: usize,
    o: &mut [f32],
) {
    head(p, qf, kf, vf, scores, sh, o)
}

/// A dot product in 8 independent lanes (vectorises without reassociation).
#[inline(always)]
fn dot(x: &[f32], y: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (xc, yc) = (x.chunks_exact(8), y.chunks_exact(8));
    let tail: f32 = xc
        .remainder()
        .iter()
        .zip(yc.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (xs, ys) in xc.zip(yc) {
        for l in 0..8 {
            lanes[l] += xs[l] * ys[l];
        }
    }
    lanes.iter().sum::<f32>() + tail
}
