//! Fused ops of a transformer layer's hot path, each defined as the
//! composition of ops it replaces:
//!
//! - [`rms_norm_matmul`]: `out = rms_norm(x, gamma, eps) W^T` with the
//!   matmul parameters `p` (bias, alpha, C, activation, backend): the
//!   RMSNorm + Q / K / V (or any) projection;
//! - [`rms_norm_matmuls`]: several such projections of the same x (q, k
//!   and v), each with its own bias;
//! - [`rms_norm_swiglu`]: `out = swiglu(h W_gate^T, h W_up^T)`, `h =
//!   rms_norm(x, gamma, eps)`: the RMSNorm + gate / up + SwiGLU of the MLP.
//!
//! Weights are as stored, `[N, K]` (y = x W^T). Where no fused kernel takes
//! the problem the composition runs, its intermediate results in the
//! caller's scratch tensors (`h`, and `gate` / `up`), so the op allocates
//! nothing either way; a fused run leaves them untouched.
//!
//! On CUDA, one row of x (a decode step) against GGUF block weights of the
//! types with a one-row kernel takes two launches: one kernel normalises x
//! and quantizes it to 8 bits (as the CPU's default quantized matmul does:
//! Q8_0 for Q4_0 / Q5_0 / Q8_0, Q8_1 for Q4_1 / Q5_1, Q8_K for Q4_K /
//! Q6_K), and the products read that (`matmul_<type>_q8mv_seg`, up to three
//! projections, a launch per type where q, k and v mix types of one
//! quantizer; `matmul_<type>_q8mv_swiglu`). The matmul parameters must
//! then be the plain product (alpha 1, no C, no activation; a bias for the
//! projection) and the backend not `Vendor`, and a projection at most 16
//! rows per column of x (not an output projection over the vocabulary,
//! where on the f32 path each warp's share of the norm costs more than the
//! launch it saves). With
//! f32 activations (`METALLIC_MV=mv1u4`) the types with an f32 one-row
//! kernel (Q4_0, Q8_0, Q4_K, Q6_K) take one launch
//! (`matmul_<type>_norm_mv_u<U>`, projections of one type;
//! `matmul_<type>_norm_swiglu_mv_u<U>`): each warp sums the squares of x
//! as it reads x for the product, scaling its sums at the end.
//! `METALLIC_FUSED=off` runs the composition instead.

use crate::error::Result;
use crate::ops::check;
use crate::ops::elementwise::swiglu;
use crate::ops::matmul::{matmul, Activation, Matmul, MatmulBackend};
use crate::ops::norm::rms_norm;
use crate::tensor::{Storage, Tensor};

/// Whether a fused kernel can take the matmul parameters.
fn plain_product(p: &Matmul) -> bool {
    p.alpha == 1.0
        && (p.c.is_none() || p.beta == 0.0)
        && p.activation == Activation::None
        && p.backend != MatmulBackend::Vendor
}

/// `out = rms_norm(x, gamma, eps) w^T` under `p`; `h` (x's shape) receives
/// the normalised x where the composition runs. `Ok(true)` where the fused
/// kernel ran (h untouched), `Ok(false)` where h now holds the normalised x
/// (a caller with more products of it can run them on h).
pub fn rms_norm_matmul(
    x: &Tensor,
    (gamma, eps): (&Tensor, f32),
    w: &Tensor,
    out: &Tensor,
    p: &Matmul,
    h: &Tensor,
) -> Result<bool> {
    const OP: &str = "rms_norm_matmul";
    check::no_alias(OP, out, &[("x", x), ("gamma", gamma), ("w", w)])?;
    if plain_product(p)
        && matches!(out.storage(), Storage::Cuda(_))
        && crate::cuda::ops::matmul::norm_rows(x, (gamma, eps), &[(w, p.bias, out)])?
    {
        return Ok(true);
    }
    rms_norm(x, gamma, eps, h)?;
    matmul(h, &w.t()?, out, p)?;
    Ok(false)
}

/// Several projections of the same normalised row, `outs[i] = rms_norm(x,
/// gamma, eps) W_i^T + bias_i` under `p` (which must carry no bias of its
/// own), given as `(W_i, bias_i, out_i)`: q, k and v. On CUDA up to three
/// of one block type in one launch; otherwise each as [`rms_norm_matmul`],
/// and once one composes, the rest are products of `h`.
pub fn rms_norm_matmuls(
    x: &Tensor,
    (gamma, eps): (&Tensor, f32),
    proj: &[(&Tensor, Option<&Tensor>, &Tensor)],
    p: &Matmul,
    h: &Tensor,
) -> Result<()> {
    const OP: &str = "rms_norm_matmuls";
    if p.bias.is_some() {
        crate::bail!(
            OP,
            "give each projection's bias with it, not in the matmul parameters"
        );
    }
    for (w, _, out) in proj {
        check::no_alias(OP, out, &[("x", x), ("gamma", gamma), ("w", w)])?;
    }
    if plain_product(p)
        && proj
            .first()
            .is_some_and(|(_, _, out)| matches!(out.storage(), Storage::Cuda(_)))
        && crate::cuda::ops::matmul::norm_rows(x, (gamma, eps), proj)?
    {
        return Ok(());
    }
    let mut normed = false;
    for (w, bias, out) in proj {
        let pb = Matmul { bias: *bias, ..*p };
        if normed {
            matmul(h, &w.t()?, out, &pb)?;
        } else {
            normed = !rms_norm_matmul(x, (gamma, eps), w, out, &pb, h)?;
        }
    }
    Ok(())
}

/// `out = swiglu(h w_gate^T, h w_up^T)` with `h = rms_norm(x, gamma, eps)`,
/// the products under `p` (no bias); `h`, `gate` and `up` receive the
/// intermediate results where the composition runs.
pub fn rms_norm_swiglu(
    x: &Tensor,
    (gamma, eps): (&Tensor, f32),
    (w_gate, w_up): (&Tensor, &Tensor),
    out: &Tensor,
    p: &Matmul,
    (h, gate, up): (&Tensor, &Tensor, &Tensor),
) -> Result<()> {
    const OP: &str = "rms_norm_swiglu";
    if p.bias.is_some() {
        crate::bail!(OP, "the gate and up products take no bias");
    }
    let inputs = [
        ("x", x),
        ("gamma", gamma),
        ("w_gate", w_gate),
        ("w_up", w_up),
    ];
    check::no_alias(OP, out, &inputs)?;
    if plain_product(p)
        && matches!(out.storage(), Storage::Cuda(_))
        && crate::cuda::ops::matmul::norm_swiglu_row(x, (gamma, eps), (w_gate, w_up), out)?
    {
        return Ok(());
    }
    rms_norm(x, gamma, eps, h)?;
    matmul(h, &w_gate.t()?, gate, p)?;
    matmul(h, &w_up.t()?, up, p)?;
    swiglu(gate, up, out)
}
