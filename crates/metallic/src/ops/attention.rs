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
    if out.elem_count() == 0 {
        return Ok(());
    }
    match out.storage() {
        Storage::Cpu(_) => crate::cpu::ops::attention::attention(q, k, v, p, out),
        Storage::Cuda(_) => crate::cuda::ops::attention::attention(q, k, v, p, out),
    }
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
