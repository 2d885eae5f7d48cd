//! Causal grouped-query attention over a KV cache:
//!
//! `out[s, h] = softmax_j(scale * q[s, h] . k[j, g]) @ v[:, g]`,
//! `j in 0..=pos_offset + s`, `g = h / (n_heads / n_kv_heads)`.
//!
//! `q` and `out` are `[seq, n_heads, head_dim]`; `k` and `v` are
//! `[kv_len, n_kv_heads, head_dim]` views, typically narrowed from a
//! preallocated cache `[ctx, n_kv_heads, head_dim]`. Query row `s` sits at
//! position `pos_offset + s` and sees the keys at positions `0..=pos_offset + s`
//! (so decode is `seq = 1, pos_offset = tokens so far`, prefill is
//! `pos_offset = 0`, and a chunked prefill is anything in between); `kv_len`
//! must be at least `pos_offset + seq`, and keys past that are never read.
//! Scores, softmax (max-subtracted) and the weighted sum are f32; any float
//! dtype for each operand. `out` must not share storage with `q`, `k` or `v`.
//!
//! Operand precision follows the cache: each of the two products takes both
//! operands in the dtype of its cached operand, so `q` is rounded to `k`'s
//! dtype before `q . k` and the normalised probabilities to `v`'s dtype before
//! `P v`, accumulating in f32. An F16 cache therefore means F16 x F16 products
//! with F32 accumulation, as on tensor cores and in ggml's attention (whose
//! outputs we check the models against); an F32 cache rounds nothing.
//!
//! The unfused composition (and the reference) is scores = `q k^T`, then
//! `ops::softmax` with `causal: Some(pos_offset)`, then `P v`.

use crate::error::Result;
use crate::ops::check;
use crate::tensor::{DType, Storage, Tensor};

const OP: &str = "attention";

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Attention {
    /// Multiplies the scores before the softmax, usually `1/sqrt(head_dim)`.
    pub scale: f32,
    /// Position of the first query row (= number of cached tokens before it).
    pub pos_offset: usize,
}

pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, p: &Attention, out: &Tensor) -> Result<()> {
    if !validate(q, k, v, p, out)? {
        return Ok(());
    }
    match out.storage() {
        Storage::Cpu(_) => crate::cpu::ops::attention::attention(q, k, v, p, out),
        Storage::Cuda(_) => crate::cuda::ops::attention::attention(q, k, v, p, out),
    }
}

/// The checks of [`attention`]; false where there is nothing to compute.
fn validate(q: &Tensor, k: &Tensor, v: &Tensor, p: &Attention, out: &Tensor) -> Result<bool> {
    if q.rank() != 3 {
        crate::bail!(
            OP,
            "q must be [seq, n_heads, head_dim], got {}",
            check::dims(q)
        );
    }
    for (name, t) in [("k", k), ("v", v)] {
        if t.rank() != 3 {
            crate::bail!(
                OP,
                "{name} must be [kv_len, n_kv_heads, head_dim], got {}",
                check::dims(t)
            );
        }
    }
    if k.shape() != v.shape() {
        crate::bail!(OP, "k is {} but v is {}", check::dims(k), check::dims(v));
    }
    if out.shape() != q.shape() {
        crate::bail!(
            OP,
            "q is {} but out is {}",
            check::dims(q),
            check::dims(out)
        );
    }
    let (seq, n_heads, head_dim) = (q.dim(0), q.dim(1), q.dim(2));
    let (kv_len, n_kv_heads) = (k.dim(0), k.dim(1));
    if k.dim(2) != head_dim {
        crate::bail!(
            OP,
            "head_dim mismatch: q is {}, k is {}",
            check::dims(q),
            check::dims(k)
        );
    }
    if n_kv_heads == 0 || n_heads % n_kv_heads != 0 {
        crate::bail!(
            OP,
            "n_heads {n_heads} (q {}) is not a multiple of n_kv_heads {n_kv_heads} (k {})",
            check::dims(q),
            check::dims(k)
        );
    }
    if p.pos_offset
        .checked_add(seq)
        .is_none_or(|need| kv_len < need)
    {
        crate::bail!(
            OP,
            "kv_len {kv_len} is shorter than pos_offset {} + seq {seq}",
            p.pos_offset
        );
    }
    if !p.scale.is_finite() {
        crate::bail!(OP, "scale must be finite, got {}", p.scale);
    }
    for (name, t) in [("q", q), ("k", k), ("v", v), ("out", out)] {
        check::float(OP, name, t)?;
    }
    let inputs = [("q", q), ("k", k), ("v", v)];
    check::same_device(OP, out, &inputs)?;
    check::writable(OP, out)?;
    check::no_alias(OP, out, &inputs)?;
    Ok(out.elem_count() > 0)
}

/// Scores of one pass of [`attention_unfused`] (every head, a chunk of
/// query rows): at most this many bytes of f32.
const UNFUSED_SCORES_BYTES: usize = 64 << 20;

/// The op as its definition composes it (module docs), on the device's own
/// copy, matmul and softmax: the query rows rounded to the cache's dtype (a
/// copy, heads first), per KV head `scores = q k^T` in f32 for its group of
/// query heads, the causal softmax of every head into `v`'s dtype, then per
/// KV head `P v` into `out`. Query rows go in chunks whose scores take at
/// most 64 MB; a chunk sees the keys up to its last row. `v` is copied
/// transposed (`[kv heads, head_dim, keys]`), and the probabilities' and
/// that copy's rows padded to 8 elements, so that both products take the
/// tensor-core GEMMs' layout (K-contiguous operands, 16-byte rows).
/// Arguments and checks as [`attention`]. On CUDA a prompt's attention
/// takes this path (cuda::ops::attention).
pub fn attention_unfused(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    p: &Attention,
    out: &Tensor,
) -> Result<()> {
    if !validate(q, k, v, p, out)? {
        return Ok(());
    }
    unfused(q, k, v, p, out)
}

/// [`attention_unfused`] on validated arguments.
pub(crate) fn unfused(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    p: &Attention,
    out: &Tensor,
) -> Result<()> {
    unfused_in_chunks(q, k, v, p, out, UNFUSED_SCORES_BYTES)
}

/// [`attention_unfused`] with chunks of at most `scores_bytes` of scores.
fn unfused_in_chunks(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    p: &Attention,
    out: &Tensor,
    scores_bytes: usize,
) -> Result<()> {
    use crate::ops::copy::{copy, copy_to_contiguous};
    use crate::ops::matmul::{matmul, Matmul};
    use crate::ops::softmax::{softmax, Softmax};
    let (seq, n_heads, head_dim) = (q.dim(0), q.dim(1), q.dim(2));
    let n_kv_heads = k.dim(1);
    let group = n_heads / n_kv_heads;
    let dev = out.device();
    let keys = p.pos_offset + seq;
    let rows_per = (scores_bytes / (n_heads * keys * 4)).clamp(1, seq);
    let plain = Matmul::default();
    for s0 in (0..seq).step_by(rows_per) {
        let rows = rows_per.min(seq - s0);
        let visible = p.pos_offset + s0 + rows;
        let padded = visible.next_multiple_of(8);
        // [n_heads, rows, head_dim] in k's dtype; [n_kv_heads, head_dim, visible] of v.
        let qh = copy_to_contiguous(&q.narrow(0, s0, rows)?.permute(&[1, 0, 2])?, k.dtype())?;
        let vt = Tensor::zeros(&[n_kv_heads, head_dim, padded], v.dtype(), &dev)?
            .narrow(2, 0, visible)?;
        copy(&v.narrow(0, 0, visible)?.permute(&[1, 2, 0])?, &vt)?;
        let scores = Tensor::zeros(&[n_heads, rows, visible], DType::F32, &dev)?;
        let probs =
            Tensor::zeros(&[n_heads, rows, padded], v.dtype(), &dev)?.narrow(2, 0, visible)?;
        let (group_of, head_of) = (
            |t: &Tensor, g: usize| t.narrow(0, g * group, group),
            |t: &Tensor, g: usize| t.narrow(0, g, 1),
        );
        for g in 0..n_kv_heads {
            // K^T of KV head g, [1, head_dim, visible], shared by its group.
            let kt = k
                .narrow(0, 0, visible)?
                .narrow(1, g, 1)?
                .permute(&[1, 2, 0])?;
            matmul(&group_of(&qh, g)?, &kt, &group_of(&scores, g)?, &plain)?;
        }
        let sm = Softmax {
            scale: p.scale,
            causal: Some(p.pos_offset + s0),
        };
        softmax(&scores, &sm, &probs)?;
        for g in 0..n_kv_heads {
            let o = out
                .narrow(0, s0, rows)?
                .narrow(1, g * group, group)?
                .permute(&[1, 0, 2])?;
            let vg = head_of(&vt, g)?.transpose(1, 2)?;
            matmul(&group_of(&probs, g)?, &vg, &o, &plain)?;
        }
    }
    Ok(())
}

/// Sizes for [`reference`]: `q` is `[seq, n_heads, head_dim]`, `k` and `v`
/// are `[kv_len, n_kv_heads, head_dim]`.
#[derive(Debug, Clone, Copy)]
pub struct AttentionDims {
    pub seq: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub kv_len: usize,
    /// The cache's dtypes: `q` is rounded to `k_dtype`, probabilities to `v_dtype`.
    pub k_dtype: DType,
    pub v_dtype: DType,
}

/// `x` rounded to `dtype` (identity for F32).
#[inline]
pub fn round_to(dtype: DType, x: f32) -> f32 {
    match dtype {
        DType::F16 => half::f16::from_f32(x).to_f32(),
        DType::BF16 => half::bf16::from_f32(x).to_f32(),
        _ => x,
    }
}

/// The reference on row-major f32 data, composed plainly per head: scores
/// `q k^T` (f64 sums), `softmax::reference` with the causal mask, then `P v`.
pub fn reference(q: &[f32], k: &[f32], v: &[f32], d: AttentionDims, p: &Attention) -> Vec<f32> {
    let AttentionDims {
        seq,
        n_heads,
        n_kv_heads,
        head_dim,
        kv_len,
        k_dtype,
        v_dtype,
    } = d;
    let group = n_heads / n_kv_heads;
    let mut out = vec![0.0f32; seq * n_heads * head_dim];
    for h in 0..n_heads {
        let g = h / group;
        let mut scores = vec![0.0f32; seq * kv_len];
        for s in 0..seq {
            for j in 0..kv_len {
                let mut acc = 0.0f64;
                for e in 0..head_dim {
                    acc += round_to(k_dtype, q[(s * n_heads + h) * head_dim + e]) as f64
                        * k[(j * n_kv_heads + g) * head_dim + e] as f64;
                }
                scores[s * kv_len + j] = acc as f32;
            }
        }
        let probs = crate::ops::softmax::reference(
            &scores,
            &[seq, kv_len],
            &crate::ops::softmax::Softmax {
                scale: p.scale,
                causal: Some(p.pos_offset),
            },
        );
        for s in 0..seq {
            for e in 0..head_dim {
                let mut acc = 0.0f64;
                for j in 0..kv_len {
                    acc += round_to(v_dtype, probs[s * kv_len + j]) as f64
                        * v[(j * n_kv_heads + g) * head_dim + e] as f64;
                }
                out[(s * n_heads + h) * head_dim + e] = acc as f32;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::DType;

    use crate::ops::test_util::{err, t};

    const P: Attention = Attention {
        scale: 0.125,
        pos_offset: 0,
    };

    #[test]
    fn rejects_bad_arguments() {
        let (q, kv, o) = (t(&[2, 4, 8]), t(&[5, 2, 8]), t(&[2, 4, 8]));
        let e = err(attention(&t(&[2, 32]), &kv, &kv, &P, &o));
        assert!(
            e.starts_with("[attention] q must be [seq, n_heads, head_dim]"),
            "{e}"
        );
        let e = err(attention(&q, &t(&[5, 16]), &kv, &P, &o));
        assert!(e.starts_with("[attention] k must be [kv_len"), "{e}");
        let e = err(attention(&q, &kv, &t(&[6, 2, 8]), &P, &o));
        assert!(
            e.starts_with("[attention] k is 5x2x8 but v is 6x2x8"),
            "{e}"
        );
        let e = err(attention(&q, &t(&[5, 3, 8]), &t(&[5, 3, 8]), &P, &o));
        assert!(e.starts_with("[attention] n_heads 4"), "{e}");
        let e = err(attention(&q, &t(&[5, 2, 7]), &t(&[5, 2, 7]), &P, &o));
        assert!(e.starts_with("[attention] head_dim mismatch"), "{e}");
        let late = Attention { pos_offset: 4, ..P };
        let e = err(attention(&q, &kv, &kv, &late, &o));
        assert_eq!(
            e,
            "[attention] kv_len 5 is shorter than pos_offset 4 + seq 2"
        );
        let e = err(attention(&q, &kv, &kv, &P, &t(&[2, 4, 9])));
        assert!(
            e.starts_with("[attention] q is 2x4x8 but out is 2x4x9"),
            "{e}"
        );
        let e = err(attention(&q, &kv, &kv, &P, &q));
        assert!(
            e.starts_with("[attention] q shares storage with out"),
            "{e}"
        );
        let qk = Tensor::zeros(&[5, 2, 32], DType::Q8_0, &Default::default()).unwrap();
        let e = err(attention(
            &t(&[2, 4, 32]),
            &qk,
            &t(&[5, 2, 32]),
            &P,
            &t(&[2, 4, 32]),
        ));
        assert!(
            e.starts_with("[attention] unsupported dtype q8_0: k"),
            "{e}"
        );
    }

    /// `attention_unfused` (whole, and in chunks of 1 and 3 query rows)
    /// against the fused op on the CPU: F16 and BF16 caches (q rounded to
    /// them), GQA groups of 3, a chunked prefill (pos_offset 4), views of
    /// longer caches, an F16 output.
    #[test]
    fn unfused_path_matches_the_fused_op() {
        let (seq, heads, kv_heads, hd, pos, ctx) = (7, 6, 2, 24, 4, 16);
        let mut rng = crate::optest::Rng::new(7);
        let dev = crate::Device::Cpu;
        let q = Tensor::from_f32(&rng.vec(seq * heads * hd), &[seq, heads, hd]).unwrap();
        for (cache, out_dt) in [(DType::F16, DType::F32), (DType::BF16, DType::F16)] {
            let kc = Tensor::from_f32(&rng.vec(ctx * kv_heads * hd), &[ctx, kv_heads, hd])
                .unwrap()
                .to_dtype(cache)
                .unwrap();
            let vc = Tensor::from_f32(&rng.vec(ctx * kv_heads * hd), &[ctx, kv_heads, hd])
                .unwrap()
                .to_dtype(cache)
                .unwrap();
            let (k, v) = (
                kc.narrow(0, 0, pos + seq + 2).unwrap(),
                vc.narrow(0, 0, pos + seq + 2).unwrap(),
            );
            let p = Attention {
                scale: 0.2,
                pos_offset: pos,
            };
            let fused = Tensor::zeros(&[seq, heads, hd], out_dt, &dev).unwrap();
            attention(&q, &k, &v, &p, &fused).unwrap();
            let want = fused.to_vec_f32().unwrap();
            // Scores of one query row: 6 heads x 11 keys x 4 bytes.
            for bytes in [usize::MAX, 6 * 11 * 4, 3 * 6 * 11 * 4] {
                let got = Tensor::full(&[seq, heads, hd], f32::NAN, out_dt, &dev).unwrap();
                unfused_in_chunks(&q, &k, &v, &p, &got, bytes).unwrap();
                let got = got.to_vec_f32().unwrap();
                let tol = if out_dt == DType::F32 { 1e-5 } else { 2e-3 };
                for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (a - b).abs() <= tol * (1.0 + b.abs()),
                        "{cache} cache, {bytes} bytes: [{i}] {a} against {b}"
                    );
                }
            }
        }
    }

    /// The fused op against its unfused composition from our own ops: per
    /// head, scores = q_h k_g^T (matmul), causal softmax, then P v_g (matmul).
    #[test]
    fn fused_matches_unfused_composition() {
        use crate::ops::matmul::{matmul, Matmul};
        use crate::ops::softmax::{softmax, Softmax};
        let (seq, heads, kv_heads, hd, pos, kv_len) = (5, 6, 2, 17, 3, 9);
        let mut rng = crate::optest::Rng::new(42);
        let q = Tensor::from_f32(&rng.vec(seq * heads * hd), &[seq, heads, hd]).unwrap();
        let k =
            Tensor::from_f32(&rng.vec(kv_len * kv_heads * hd), &[kv_len, kv_heads, hd]).unwrap();
        let v =
            Tensor::from_f32(&rng.vec(kv_len * kv_heads * hd), &[kv_len, kv_heads, hd]).unwrap();
        let p = Attention {
            scale: 0.3,
            pos_offset: pos,
        };
        let fused = Tensor::zeros(&[seq, heads, hd], DType::F32, &Default::default()).unwrap();
        attention(&q, &k, &v, &p, &fused).unwrap();

        let unfused = Tensor::zeros(&[seq, heads, hd], DType::F32, &Default::default()).unwrap();
        let head = |t: &Tensor, rows: usize, n: usize, i: usize| {
            t.as_strided(&[rows, hd], &[n * hd, 1], i * hd).unwrap()
        };
        for h in 0..heads {
            let g = h / (heads / kv_heads);
            let scores = Tensor::zeros(&[seq, kv_len], DType::F32, &Default::default()).unwrap();
            let k_t = head(&k, kv_len, kv_heads, g).t().unwrap();
            matmul(&head(&q, seq, heads, h), &k_t, &scores, &Matmul::default()).unwrap();
            let probs = Tensor::zeros(&[seq, kv_len], DType::F32, &Default::default()).unwrap();
            softmax(
                &scores,
                &Softmax {
                    scale: p.scale,
                    causal: Some(pos),
                },
                &probs,
            )
            .unwrap();
            let out_h = head(&unfused, seq, heads, h);
            matmul(
                &probs,
                &head(&v, kv_len, kv_heads, g),
                &out_h,
                &Matmul::default(),
            )
            .unwrap();
        }
        let (a, b) = (fused.to_vec_f32().unwrap(), unfused.to_vec_f32().unwrap());
        let err = crate::optest::nmse(&a, &b);
        assert!(err < 1e-10, "nmse {err:e}");
    }

    #[test]
    fn reference_decode_with_equal_keys_averages_values() {
        // Equal scores: the output is the mean of the visible values.
        let (q, k) = (vec![0.0; 2], vec![0.0; 3 * 2]);
        let v = [1.0, 10.0, 2.0, 20.0, 3.0, 30.0];
        let d = AttentionDims {
            seq: 1,
            n_heads: 1,
            n_kv_heads: 1,
            head_dim: 2,
            kv_len: 3,
            k_dtype: DType::F32,
            v_dtype: DType::F32,
        };
        let y = reference(
            &q,
            &k,
            &v,
            d,
            &Attention {
                scale: 1.0,
                pos_offset: 1,
            },
        );
        assert!(
            (y[0] - 1.5).abs() < 1e-6 && (y[1] - 15.0).abs() < 1e-5,
            "{y:?}"
        );
    }
}
