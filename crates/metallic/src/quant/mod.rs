//! GGUF block formats: layouts ([`blocks`], defined once and size-asserted),
//! scalar reference dequantization of every format, quantization of the
//! formats ggml can produce without an importance search (Q4_0, Q4_1, Q5_0,
//! Q5_1, Q8_0, Q8_1, Q8_K), and integer dot products ([`dot`]) against the
//! 8-bit activation formats that quantized matmul uses.
//!
//! Everything here is the plain reference: SIMD and GPU kernels are tested
//! against it, and it is tested bit for bit against the `gguf` Python
//! package (`scripts/gen_quant_golden.py`, `tests/golden/quant/`).

pub mod blocks;
mod dequant;
pub mod dot;
mod quantize;
mod random;

#[cfg(test)]
mod tests;

use std::borrow::Cow;

use bytemuck::Pod;

pub use dequant::{dequantize_row, dequantize_view};
pub use random::random_row;

use crate::error::{Error, Result};
use crate::tensor::DType;

/// The formats `quantize_row` can produce.
pub const QUANTIZABLE: [DType; 10] = [
    DType::F32,
    DType::F16,
    DType::BF16,
    DType::Q4_0,
    DType::Q4_1,
    DType::Q5_0,
    DType::Q5_1,
    DType::Q8_0,
    DType::Q8_1,
    DType::Q8K,
];

fn write_blocks<B: Pod, const N: usize>(src: &[f32], out: &mut [u8], f: fn(&[f32; N]) -> B) {
    let size = std::mem::size_of::<B>();
    for (x, o) in src.chunks_exact(N).zip(out.chunks_exact_mut(size)) {
        let x: &[f32; N] = x.try_into().expect("chunks_exact yields N elements");
        o.copy_from_slice(bytemuck::bytes_of(&f(x)));
    }
}

/// Quantizes a row of activations to a matmul's 8-bit partner format as
/// llama.cpp's CPU backend does at run time: Q8_0 and Q8_1 by its SIMD
/// quantizers (`quantize::q8_0_act`, `q8_1_act`), Q8_K (and anything else)
/// by [`quantize_row`].
pub fn quantize_activation_row(dtype: DType, src: &[f32], out: &mut [u8]) -> Result<()> {
    match dtype {
        DType::Q8_0 if dtype.bytes_for(src.len()) == Some(out.len()) => {
            write_blocks(src, out, quantize::q8_0_act);
            Ok(())
        }
        DType::Q8_1 if dtype.bytes_for(src.len()) == Some(out.len()) => {
            write_blocks(src, out, quantize::q8_1_act);
            Ok(())
        }
        _ => quantize_row(dtype, src, out),
    }
}

/// Quantizes `src` (whole blocks) into `out`, which must be exactly its size
/// in `dtype`. Bit-exact with ggml's `quantize_row_*_ref`.
pub fn quantize_row(dtype: DType, src: &[f32], out: &mut [u8]) -> Result<()> {
    if dtype.bytes_for(src.len()) != Some(out.len()) {
        return Err(Error::op(
            "quantize",
            format!(
                "{} {dtype} elements (whole blocks of {}) do not fill {} bytes",
                src.len(),
                dtype.block_elems(),
                out.len()
            ),
        ));
    }
    match dtype {
        DType::F32 => out.copy_from_slice(bytemuck::cast_slice(src)),
        DType::F16 => {
            for (o, &x) in out.chunks_exact_mut(2).zip(src) {
                o.copy_from_slice(&half::f16::from_f32(x).to_le_bytes());
            }
        }
        DType::BF16 => {
            for (o, &x) in out.chunks_exact_mut(2).zip(src) {
                o.copy_from_slice(&half::bf16::from_f32(x).to_le_bytes());
            }
        }
        DType::Q4_0 => write_blocks(src, out, quantize::q4_0),
        DType::Q4_1 => write_blocks(src, out, quantize::q4_1),
        DType::Q5_0 => write_blocks(src, out, quantize::q5_0),
        DType::Q5_1 => write_blocks(src, out, quantize::q5_1),
        DType::Q8_0 => write_blocks(src, out, quantize::q8_0),
        DType::Q8_1 => write_blocks(src, out, quantize::q8_1),
        DType::Q8K => write_blocks(src, out, quantize::q8_k),
        DType::Q2K | DType::Q3K | DType::Q4K | DType::Q5K | DType::Q6K => {
            return Err(Error::UnsupportedDType {
                op: "quantize",
                dtype,
                msg: "K-quant weights need ggml's importance search; only dequantization is implemented"
                    .into(),
            })
        }
    }
    Ok(())
}

/// The format activations are quantized to for a dot product with weights of
/// `weight` (ggml's `vec_dot_type`); float weights take F32 activations.
pub fn vec_dot_type(weight: DType) -> DType {
    match weight {
        DType::F32 | DType::F16 | DType::BF16 => DType::F32,
        DType::Q4_0 | DType::Q5_0 | DType::Q8_0 | DType::Q8_1 => DType::Q8_0,
        DType::Q4_1 | DType::Q5_1 => DType::Q8_1,
        DType::Q2K | DType::Q3K | DType::Q4K | DType::Q5K | DType::Q6K | DType::Q8K => DType::Q8K,
    }
}

/// Blocks viewed in place when `bytes` is aligned for `B`, copied otherwise.
pub fn typed_blocks<B: Pod>(bytes: &[u8]) -> Cow<'_, [B]> {
    match bytemuck::try_cast_slice(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(dequant::blocks::<B>(bytes).collect()),
    }
}

/// The dot product of one weight row (`w`, whole blocks of `weight`) with one
/// activation row already quantized to `vec_dot_type(weight)` (`a`).
pub fn vec_dot(weight: DType, w: &[u8], a: &[u8]) -> Result<f32> {
    let act = vec_dot_type(weight);
    let k_w = w.len() / weight.block_bytes() * weight.block_elems();
    let k_a = a.len() / act.block_bytes() * act.block_elems();
    if weight.bytes_for(k_w) != Some(w.len()) || act.bytes_for(k_a) != Some(a.len()) || k_w != k_a {
        return Err(Error::op(
            "vec_dot",
            format!(
                "{} bytes of {weight} and {} bytes of {act} are not rows of equal length",
                w.len(),
                a.len()
            ),
        ));
    }
    use dot::*;
    Ok(match weight {
        DType::F32 | DType::F16 | DType::BF16 => {
            let mut row = vec![0.0f32; k_w];
            dequantize_row(weight, w, &mut row)?;
            let a = typed_blocks::<f32>(a);
            row.iter().zip(a.iter()).map(|(x, y)| x * y).sum()
        }
        DType::Q4_0 => vec_dot_q4_0_q8_0(&typed_blocks(w), &typed_blocks(a)),
        DType::Q5_0 => vec_dot_q5_0_q8_0(&typed_blocks(w), &typed_blocks(a)),
        DType::Q8_0 => vec_dot_q8_0_q8_0(&typed_blocks(w), &typed_blocks(a)),
        DType::Q8_1 => vec_dot_q8_1_q8_0(&typed_blocks(w), &typed_blocks(a)),
        DType::Q4_1 => vec_dot_q4_1_q8_1(&typed_blocks(w), &typed_blocks(a)),
        DType::Q5_1 => vec_dot_q5_1_q8_1(&typed_blocks(w), &typed_blocks(a)),
        DType::Q2K => vec_dot_q2_k_q8_k(&typed_blocks(w), &typed_blocks(a)),
        DType::Q3K => vec_dot_q3_k_q8_k(&typed_blocks(w), &typed_blocks(a)),
        DType::Q4K => vec_dot_q4_k_q8_k(&typed_blocks(w), &typed_blocks(a)),
        DType::Q5K => vec_dot_q5_k_q8_k(&typed_blocks(w), &typed_blocks(a)),
        DType::Q6K => vec_dot_q6_k_q8_k(&typed_blocks(w), &typed_blocks(a)),
        DType::Q8K => vec_dot_q8_k_q8_k(&typed_blocks(w), &typed_blocks(a)),
    })
}
