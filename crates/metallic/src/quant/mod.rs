//! GGUF block formats: layouts, scalar reference (de)quantization, dot products.

use crate::error::{Error, Result};
use crate::tensor::{DType, Layout};

/// Dequantizes `out.len()` elements (whole blocks) from `bytes`.
pub fn dequantize_row(dtype: DType, bytes: &[u8], out: &mut [f32]) -> Result<()> {
    let _ = (bytes, out);
    Err(Error::UnsupportedDType {
        op: "dequantize",
        dtype,
        msg: "not implemented yet".into(),
    })
}

/// Every element of a quantized view (rows must be whole, contiguous blocks)
/// in row-major logical order.
pub fn dequantize_view(dtype: DType, bytes: &[u8], layout: &Layout) -> Result<Vec<f32>> {
    let _ = layout;
    let mut out = vec![0.0; 0];
    dequantize_row(dtype, bytes, &mut out)?;
    Ok(out)
}

/// Valid random blocks for `k` elements of `dtype` (placeholder until the
/// block formats land).
pub fn random_row(dtype: DType, k: usize, seed: u64) -> Vec<u8> {
    let _ = seed;
    vec![0; dtype.bytes_for(k).unwrap_or(0)]
}
