//! Softmax over the last dimension with a scale and an optional causal mask:
//!
//! `y[.., i, j] = exp(scale * x[.., i, j] - m_i) / sum_j' exp(scale * x[.., i, j'] - m_i)`
//!
//! where `m_i` is the row's maximum (subtracted for stability). With
//! `causal = Some(offset)`, row `i` (the second-to-last index) masks every
//! column `j > offset + i`: masked entries get probability 0 and take no part
//! in the maximum or the sum, as if `x` were -inf there (ggml's
//! `soft_max_ext` with a causal mask; `offset` is the number of earlier
//! positions, so column 0 is never masked). As in ggml, `exp` is f32 and the
//! row sum f64. `out` must not share storage with `x`.

use crate::error::Result;
use crate::ops::check;
use crate::tensor::{Storage, Tensor};

const OP: &str = "softmax";

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Softmax {
    /// Multiplies `x` before the softmax (`1/sqrt(head_dim)` for attention).
    pub scale: f32,
    /// `Some(offset)`: row `i` keeps columns `0..=offset + i`.
    pub causal: Option<usize>,
}

impl Default for Softmax {
    fn default() -> Self {
        Softmax {
            scale: 1.0,
            causal: None,
        }
    }
}

impl Softmax {
    /// Columns of row `i` that take part (the rest are masked to 0).
    #[inline]
    pub fn kept(&self, row: usize, cols: usize) -> usize {
        match self.causal {
            Some(offset) => offset.saturating_add(row).saturating_add(1).min(cols),
            None => cols,
        }
    }
}

pub fn softmax(x: &Tensor, p: &Softmax, out: &Tensor) -> Result<()> {
    let min_rank = if p.causal.is_some() { 2 } else { 1 };
    if x.rank() < min_rank {
        crate::bail!(
            OP,
            "x must have rank >= {min_rank}{}, got {}",
            if p.causal.is_some() {
                " for a causal mask"
            } else {
                ""
            },
            check::dims(x)
        );
    }
    if x.shape() != out.shape() {
        crate::bail!(
            OP,
            "x is {} but out is {}",
            check::dims(x),
            check::dims(out)
        );
    }
    if !p.scale.is_finite() {
        crate::bail!(OP, "scale must be finite, got {}", p.scale);
    }
    check::float(OP, "x", x)?;
    check::float(OP, "out", out)?;
    check::same_device(OP, out, &[("x", x)])?;
    check::writable(OP, out)?;
    check::no_alias(OP, out, &[("x", x)])?;
    if out.elem_count() == 0 {
        return Ok(());
    }
    match out.storage() {
        Storage::Cpu(_) => crate::cpu::ops::softmax::softmax(x, p, out),
        Storage::Cuda(_) => crate::cuda::ops::softmax::softmax(x, p, out),
    }
}

/// The reference on row-major f32 data of `shape`, in f64: masked entries are
/// left out of the maximum and the sum and come out as 0.
pub fn reference(x: &[f32], shape: &[usize], p: &Softmax) -> Vec<f32> {
    let cols = shape.last().copied().unwrap_or(1);
    let rows_per_matrix = if shape.len() >= 2 {
        shape[shape.len() - 2]
    } else {
        1
    };
    let mut out = vec![0.0f32; x.len()];
    if cols == 0 {
        return out;
    }
    for (r, (row, y)) in x
        .chunks_exact(cols)
        .zip(out.chunks_exact_mut(cols))
        .enumerate()
    {
        let i = r % rows_per_matrix;
        let kept = |j: usize| p.causal.is_none_or(|offset| j <= offset.saturating_add(i));
        let scaled: Vec<f64> = row.iter().map(|&v| p.scale as f64 * v as f64).collect();
        let max = (0..cols)
            .filter(|&j| kept(j))
            .map(|j| scaled[j])
            .fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = (0..cols)
            .filter(|&j| kept(j))
            .map(|j| (scaled[j] - max).exp())
            .sum();
        for j in (0..cols).filter(|&j| kept(j)) {
            y[j] = ((scaled[j] - max).exp() / sum) as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::DType;

    use crate::ops::test_util::{err, t};

    #[test]
    fn rejects_bad_arguments() {
        let causal = Softmax {
            scale: 1.0,
            causal: Some(0),
        };
        let e = err(softmax(&t(&[4]), &causal, &t(&[4])));
        assert!(
            e.starts_with("[softmax] x must have rank >= 2 for a causal mask"),
            "{e}"
        );
        let e = err(softmax(&t(&[2, 4]), &Softmax::default(), &t(&[2, 5])));
        assert!(e.starts_with("[softmax] x is 2x4 but out is 2x5"), "{e}");
        let inf = Softmax {
            scale: f32::INFINITY,
            causal: None,
        };
        let e = err(softmax(&t(&[2, 4]), &inf, &t(&[2, 4])));
        assert!(e.starts_with("[softmax] scale must be finite"), "{e}");
        let q = Tensor::zeros(&[2, 32], DType::Q4_0, &Default::default()).unwrap();
        let e = err(softmax(&t(&[2, 32]), &Softmax::default(), &q));
        assert!(
            e.starts_with("[softmax] unsupported dtype q4_0: out"),
            "{e}"
        );
        let x = t(&[2, 4]);
        let e = err(softmax(&x, &Softmax::default(), &x));
        assert!(e.starts_with("[softmax] x shares storage with out"), "{e}");
    }

    #[test]
    fn reference_masks_causally() {
        let p = Softmax {
            scale: 1.0,
            causal: Some(1),
        };
        let y = reference(&[0.0; 6], &[2, 3], &p);
        assert_eq!(y, vec![0.5, 0.5, 0.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0]);
        assert_eq!(p.kept(0, 3), 2);
        // Large inputs do not overflow: the max is subtracted.
        let y = reference(&[1000.0, 1000.0], &[1, 2], &Softmax::default());
        assert_eq!(y, vec![0.5, 0.5]);
    }
}
