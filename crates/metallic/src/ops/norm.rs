//! RMS normalisation over the last dimension, as llama.cpp's `ggml_rms_norm`
//! followed by the multiplication with the weight (`llm_build_norm`):
//!
//! `y = x / sqrt(mean(x^2) + eps) * weight`
//!
//! `x` and `out` are `[.., n]` views of one shape (every leading index is a
//! row); `weight` is `[n]`. Each may be f32, f16 or bf16. As in ggml, the sum
//! of squares is accumulated in f64 and the mean and scale are f32; `out` must
//! not share storage with `x` or `weight`.

use crate::error::Result;
use crate::ops::check;
use crate::tensor::{Storage, Tensor};

const OP: &str = "rms_norm";

pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f32, out: &Tensor) -> Result<()> {
    if x.rank() == 0 {
        crate::bail!(OP, "x must have rank >= 1, got a scalar");
    }
    if x.shape() != out.shape() {
        crate::bail!(
            OP,
            "x is {} but out is {}",
            check::dims(x),
            check::dims(out)
        );
    }
    let n = x.dim(x.rank() - 1);
    if weight.shape() != [n] {
        crate::bail!(
            OP,
            "weight must be [{n}] for x {}, got {}",
            check::dims(x),
            check::dims(weight)
        );
    }
    if !(eps >= 0.0 && eps.is_finite()) {
        crate::bail!(OP, "eps must be finite and >= 0, got {eps}");
    }
    for (name, t) in [("x", x), ("weight", weight), ("out", out)] {
        check::float(OP, name, t)?;
    }
    let inputs = [("x", x), ("weight", weight)];
    check::same_device(OP, out, &inputs)?;
    check::writable(OP, out)?;
    check::no_alias(OP, out, &inputs)?;
    if out.elem_count() == 0 {
        return Ok(());
    }
    match out.storage() {
        Storage::Cpu(_) => crate::cpu::ops::norm::rms_norm(x, weight, eps, out),
        Storage::Cuda(_) => crate::cuda::ops::norm::rms_norm(x, weight, eps, out),
    }
}

/// The reference on row-major f32 data: `x` holds whole rows of
/// `weight.len()` elements; computed in f64.
pub fn reference(x: &[f32], weight: &[f32], eps: f32) -> Vec<f32> {
    let n = weight.len();
    let mut out = Vec::with_capacity(x.len());
    if n == 0 {
        return out;
    }
    for row in x.chunks_exact(n) {
        let mean = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / n as f64;
        let inv = 1.0 / (mean + eps as f64).sqrt();
        out.extend(
            row.iter()
                .zip(weight)
                .map(|(&v, &w)| (v as f64 * inv * w as f64) as f32),
        );
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
        let e = err(rms_norm(&t(&[2, 4]), &t(&[5]), 1e-6, &t(&[2, 4])));
        assert!(e.starts_with("[rms_norm] weight must be [4]"), "{e}");
        let e = err(rms_norm(&t(&[2, 4]), &t(&[4]), 1e-6, &t(&[4, 2])));
        assert!(e.starts_with("[rms_norm] x is 2x4 but out is 4x2"), "{e}");
        let e = err(rms_norm(&t(&[]), &t(&[1]), 1e-6, &t(&[])));
        assert!(e.starts_with("[rms_norm] x must have rank >= 1"), "{e}");
        let e = err(rms_norm(&t(&[2, 4]), &t(&[4]), f32::NAN, &t(&[2, 4])));
        assert!(e.starts_with("[rms_norm] eps must be finite"), "{e}");
        let q = Tensor::zeros(&[32], DType::Q4_0, &Default::default()).unwrap();
        let e = err(rms_norm(&t(&[2, 32]), &q, 1e-6, &t(&[2, 32])));
        assert!(
            e.starts_with("[rms_norm] unsupported dtype q4_0: weight"),
            "{e}"
        );
        let x = t(&[2, 4]);
        let e = err(rms_norm(&x, &t(&[4]), 1e-6, &x));
        assert!(e.starts_with("[rms_norm] x shares storage with out"), "{e}");
    }

    #[test]
    fn reference_normalises_rows() {
        // Row [3, 4]: mean of squares 12.5.
        let y = reference(&[3.0, 4.0], &[1.0, 2.0], 0.0);
        let r = 12.5f64.sqrt();
        assert!((y[0] as f64 - 3.0 / r).abs() < 1e-6 && (y[1] as f64 - 8.0 / r).abs() < 1e-6);
    }
}
