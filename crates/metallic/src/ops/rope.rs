//! Rotary position embedding (RoPE), as llama.cpp's `ggml_rope_ext` with no
//! context scaling (freq_scale 1, ext_factor 0, attn_factor 1).
//!
//! `x` and `out` are `[seq, n_heads, head_dim]`; row `s` sits at position
//! `pos = pos_offset + s`. The first `dims` elements of each head are rotated
//! in pairs by `theta_i = pos * base^(-2i/dims)`, `i in 0..dims/2`; the
//! remaining `head_dim - dims` elements pass through unchanged:
//!
//! - [`RopeMode::Neox`] pairs element `i` with `i + dims/2` (GPT-NeoX, used by
//!   Qwen2; llama.cpp's `LLAMA_ROPE_TYPE_NEOX`);
//! - [`RopeMode::Interleaved`] pairs `2i` with `2i + 1` (llama.cpp's "normal"
//!   mode, used by Llama).
//!
//! A pair `(x0, x1)` becomes `(x0 cos - x1 sin, x0 sin + x1 cos)`.
//!
//! Numerics follow ggml (`ggml_rope_cache_init`): `theta_scale =
//! powf(base, -2/dims)` in f32 and `theta_i = theta_{i-1} * theta_scale`
//! multiplied up in f32 from `theta_0 = pos`. That equals the formula above
//! up to f32 rounding, and matching ggml's rounding keeps large positions
//! comparable with llama.cpp. `out` may be `x` itself (same layout and dtype).

use crate::error::Result;
use crate::ops::check;
use crate::tensor::{Storage, Tensor};

const OP: &str = "rope";

/// Which elements of a head form the rotated pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeMode {
    /// Pairs `(i, i + dims/2)` (GPT-NeoX; Qwen2).
    Neox,
    /// Pairs `(2i, 2i + 1)` (llama.cpp's normal mode; Llama).
    Interleaved,
}

/// RoPE parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rope {
    pub mode: RopeMode,
    /// The frequency base (`rope.freq_base` in GGUF: 10000 for Llama 2, 1e6
    /// for Qwen2.5).
    pub base: f32,
    /// Rotated elements per head: even, `<= head_dim`; the rest pass through.
    pub dims: usize,
    /// Position of the first row of `x`.
    pub pos_offset: usize,
}

/// The angles `theta_i`, `i in 0..dims/2`, at `pos`, rounded as ggml rounds them.
pub fn thetas(pos: usize, base: f32, dims: usize) -> Vec<f32> {
    let theta_scale = base.powf(-2.0 / dims as f32);
    let mut theta = pos as f32;
    (0..dims / 2)
        .map(|_| {
            let t = theta;
            theta *= theta_scale;
            t
        })
        .collect()
}

/// Applies RoPE to `x` (`[seq, n_heads, head_dim]`) into `out`.
pub fn rope(x: &Tensor, p: &Rope, out: &Tensor) -> Result<()> {
    if x.rank() != 3 {
        crate::bail!(
            OP,
            "x must be [seq, n_heads, head_dim], got {}",
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
    let head_dim = x.dim(2);
    if !p.dims.is_multiple_of(2) || p.dims > head_dim {
        crate::bail!(
            OP,
            "rotary dims {} must be even and <= head_dim {head_dim}",
            p.dims
        );
    }
    if !(p.base > 0.0 && p.base.is_finite()) {
        crate::bail!(OP, "base must be finite and > 0, got {}", p.base);
    }
    check::float(OP, "x", x)?;
    check::float(OP, "out", out)?;
    check::same_device(OP, out, &[("x", x)])?;
    check::writable(OP, out)?;
    check::in_place_or_separate(OP, "x", x, out)?;
    if out.elem_count() == 0 {
        return Ok(());
    }
    match out.storage() {
        Storage::Cpu(_) => crate::cpu::ops::rope::rope(x, p, out),
        Storage::Cuda(_) => crate::cuda::ops::rope::rope(x, p, out),
    }
}

/// The reference on row-major `[seq, n_heads, head_dim]` f32 data: angles from
/// [`thetas`], the rotation in f64.
pub fn reference(x: &[f32], (seq, n_heads, head_dim): (usize, usize, usize), p: &Rope) -> Vec<f32> {
    let mut out = x.to_vec();
    let half = p.dims / 2;
    for s in 0..seq {
        let theta = thetas(p.pos_offset + s, p.base, p.dims);
        for h in 0..n_heads {
            let head = (s * n_heads + h) * head_dim;
            for (i, &t) in theta.iter().enumerate() {
                let (i0, i1) = match p.mode {
                    RopeMode::Neox => (i, i + half),
                    RopeMode::Interleaved => (2 * i, 2 * i + 1),
                };
                let (c, sn) = ((t as f64).cos(), (t as f64).sin());
                let (x0, x1) = (x[head + i0] as f64, x[head + i1] as f64);
                out[head + i0] = (x0 * c - x1 * sn) as f32;
                out[head + i1] = (x0 * sn + x1 * c) as f32;
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

    fn p(dims: usize) -> Rope {
        Rope {
            mode: RopeMode::Neox,
            base: 10000.0,
            dims,
            pos_offset: 0,
        }
    }

    #[test]
    fn rejects_bad_arguments() {
        let e = err(rope(&t(&[2, 8]), &p(8), &t(&[2, 8])));
        assert!(
            e.starts_with("[rope] x must be [seq, n_heads, head_dim]"),
            "{e}"
        );
        let e = err(rope(&t(&[2, 1, 8]), &p(7), &t(&[2, 1, 8])));
        assert!(e.starts_with("[rope] rotary dims 7 must be even"), "{e}");
        let e = err(rope(&t(&[2, 1, 8]), &p(10), &t(&[2, 1, 8])));
        assert!(e.starts_with("[rope] rotary dims 10"), "{e}");
        let e = err(rope(&t(&[2, 1, 8]), &p(8), &t(&[1, 2, 8])));
        assert!(e.starts_with("[rope] x is 2x1x8 but out is 1x2x8"), "{e}");
        let bad_base = Rope { base: 0.0, ..p(8) };
        let e = err(rope(&t(&[2, 1, 8]), &bad_base, &t(&[2, 1, 8])));
        assert!(e.starts_with("[rope] base must be"), "{e}");
        let q = Tensor::zeros(&[1, 1, 32], DType::Q8_0, &Default::default()).unwrap();
        let e = err(rope(&q, &p(8), &t(&[1, 1, 32])));
        assert!(e.starts_with("[rope] unsupported dtype q8_0: x"), "{e}");
        let x = t(&[2, 2, 8]);
        let e = err(rope(&x, &p(8), &x.transpose(0, 1).unwrap()));
        assert!(
            e.starts_with("[rope] x shares storage with out but not its layout"),
            "{e}"
        );
    }

    #[test]
    fn thetas_match_the_closed_form() {
        let (pos, base, dims) = (37, 10000.0f32, 64);
        for (i, &t) in thetas(pos, base, dims).iter().enumerate() {
            let want = pos as f64 * (base as f64).powf(-2.0 * i as f64 / dims as f64);
            assert!(
                (t as f64 - want).abs() <= 1e-5 * want.max(1.0),
                "theta_{i}: {t} vs {want}"
            );
        }
    }

    #[test]
    fn reference_rotates_pairs() {
        // dims 2: one pair rotated by pos radians; the third element passes.
        let x = [1.0, 0.0, 5.0];
        for mode in [RopeMode::Neox, RopeMode::Interleaved] {
            let r = Rope {
                mode,
                base: 10000.0,
                dims: 2,
                pos_offset: 1,
            };
            let y = reference(&x, (1, 1, 3), &r);
            assert!((y[0] - 1f32.cos()).abs() < 1e-6 && (y[1] - 1f32.sin()).abs() < 1e-6);
            assert_eq!(y[2], 5.0);
        }
        // Neox pairs (0, 2) and (1, 3); interleaved pairs (0, 1) and (2, 3).
        let x = [1.0, 2.0, 3.0, 4.0];
        let neox = reference(
            &x,
            (1, 1, 4),
            &Rope {
                mode: RopeMode::Neox,
                base: 1.0,
                dims: 4,
                pos_offset: 1,
            },
        );
        let (c, s) = (1f64.cos(), 1f64.sin());
        assert!((neox[0] as f64 - (c - 3.0 * s)).abs() < 1e-6);
        let il = reference(
            &x,
            (1, 1, 4),
            &Rope {
                mode: RopeMode::Interleaved,
                base: 1.0,
                dims: 4,
                pos_offset: 1,
            },
        );
        assert!((il[0] as f64 - (c - 2.0 * s)).abs() < 1e-6);
    }
}
