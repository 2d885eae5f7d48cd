//! Scalar reference dequantization of every format, bit-exact with ggml's
//! `dequantize_row_*` (and the `gguf` Python package's numpy versions): each
//! value is computed with the same f32 operations in the same order.

use bytemuck::Pod;
use half::{bf16, f16};

use super::blocks::*;
use crate::error::{Error, Result};
use crate::tensor::{contiguous_strides, DType, Layout};

const OP: &str = "dequantize";

/// Reads consecutive blocks from bytes of any alignment (GGUF data is aligned,
/// but callers may hand us any slice).
pub(crate) fn blocks<B: Pod>(bytes: &[u8]) -> impl Iterator<Item = B> + '_ {
    bytes
        .chunks_exact(std::mem::size_of::<B>())
        .map(bytemuck::pod_read_unaligned::<B>)
}

fn legacy<B: Pod>(bytes: &[u8], out: &mut [f32], f: impl Fn(&B, &mut [f32])) {
    for (b, o) in blocks::<B>(bytes).zip(out.chunks_exact_mut(QK)) {
        f(&b, o);
    }
}

fn k_quant<B: Pod>(bytes: &[u8], out: &mut [f32], unpack: impl Fn(&B) -> KUnpacked) {
    for (b, o) in blocks::<B>(bytes).zip(out.chunks_exact_mut(QK_K)) {
        unpack(&b).dequantize(o);
    }
}

/// Dequantizes `out.len()` elements from `bytes`, which must hold exactly that
/// many elements of `dtype` (whole blocks for the block formats).
pub fn dequantize_row(dtype: DType, bytes: &[u8], out: &mut [f32]) -> Result<()> {
    if dtype.bytes_for(out.len()) != Some(bytes.len()) {
        return Err(Error::op(
            OP,
            format!(
                "{} bytes do not hold exactly {} {dtype} elements (whole blocks of {})",
                bytes.len(),
                out.len(),
                dtype.block_elems()
            ),
        ));
    }
    match dtype {
        DType::F32 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        DType::F16 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f16::from_le_bytes([b[0], b[1]]).to_f32();
            }
        }
        DType::BF16 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = bf16::from_le_bytes([b[0], b[1]]).to_f32();
            }
        }
        DType::Q4_0 => legacy(bytes, out, |b: &BlockQ4_0, o| {
            let d = b.d.to_f32();
            for (o, q) in o.iter_mut().zip(b.quants()) {
                *o = q as f32 * d;
            }
        }),
        DType::Q4_1 => legacy(bytes, out, |b: &BlockQ4_1, o| {
            let (d, m) = (b.d.to_f32(), b.m.to_f32());
            for (o, q) in o.iter_mut().zip(b.quants()) {
                *o = q as f32 * d + m;
            }
        }),
        DType::Q5_0 => legacy(bytes, out, |b: &BlockQ5_0, o| {
            let d = b.d.to_f32();
            for (o, q) in o.iter_mut().zip(b.quants()) {
                *o = q as f32 * d;
            }
        }),
        DType::Q5_1 => legacy(bytes, out, |b: &BlockQ5_1, o| {
            let (d, m) = (b.d.to_f32(), b.m.to_f32());
            for (o, q) in o.iter_mut().zip(b.quants()) {
                *o = q as f32 * d + m;
            }
        }),
        DType::Q8_0 => legacy(bytes, out, |b: &BlockQ8_0, o| {
            let d = b.d.to_f32();
            for (o, &q) in o.iter_mut().zip(&b.qs) {
                *o = q as f32 * d;
            }
        }),
        DType::Q8_1 => legacy(bytes, out, |b: &BlockQ8_1, o| {
            let d = b.d.to_f32();
            for (o, &q) in o.iter_mut().zip(&b.qs) {
                *o = q as f32 * d;
            }
        }),
        DType::Q2K => k_quant(bytes, out, BlockQ2K::unpack),
        DType::Q3K => k_quant(bytes, out, BlockQ3K::unpack),
        DType::Q4K => k_quant(bytes, out, BlockQ4K::unpack),
        DType::Q5K => k_quant(bytes, out, BlockQ5K::unpack),
        DType::Q6K => k_quant(bytes, out, BlockQ6K::unpack),
        DType::Q8K => {
            for (b, o) in blocks::<BlockQ8K>(bytes).zip(out.chunks_exact_mut(QK_K)) {
                for (o, &q) in o.iter_mut().zip(&b.qs) {
                    *o = q as f32 * b.d;
                }
            }
        }
    }
    Ok(())
}

/// Every element of a view of `dtype` storage in row-major logical order.
///
/// Block rows must stay whole: one dimension of the view (the last, or the
/// second-to-last for a transposed `[.., K, N]` view of a `[.., N, K]`
/// weight) has stride 1 and runs over whole blocks starting on a block
/// boundary. Other dimensions may be narrowed, permuted or broadcast.
pub fn dequantize_view(dtype: DType, bytes: &[u8], layout: &Layout) -> Result<Vec<f32>> {
    let shape = layout.shape();
    let strides = layout.strides();
    let n = layout.elem_count();
    if n == 0 {
        return Ok(Vec::new());
    }
    if dtype.is_float() {
        let mut out = Vec::with_capacity(n);
        let mut one = [0.0f32];
        let size = dtype.block_bytes();
        for i in layout.storage_indices() {
            let src = bytes.get(i * size..(i + 1) * size).ok_or_else(|| {
                Error::op(
                    OP,
                    format!("element {i} lies outside {} bytes", bytes.len()),
                )
            })?;
            dequantize_row(dtype, src, &mut one)?;
            out.push(one[0]);
        }
        return Ok(out);
    }
    let be = dtype.block_elems();
    let layout_err = |msg: String| Error::Layout {
        op: OP,
        msg,
        shape: shape.to_vec(),
        strides: strides.to_vec(),
    };
    // The dimension along which storage rows run: stride 1, whole blocks.
    let rank = shape.len();
    let row_dim = [rank.checked_sub(1), rank.checked_sub(2)]
        .into_iter()
        .flatten()
        .find(|&d| (strides[d] == 1 || shape[d] == 1) && shape[d].is_multiple_of(be))
        .ok_or_else(|| {
            layout_err(format!(
                "no dimension holds whole contiguous {dtype} blocks"
            ))
        })?;
    let row_len = shape[row_dim];
    let row_bytes = dtype.bytes_for(row_len).expect("row_len is whole blocks");
    let out_strides = contiguous_strides(shape);

    let mut out = vec![0.0f32; n];
    let mut row = vec![0.0f32; row_len];
    // Walk every index of the other dimensions (odometer order).
    let others: Vec<usize> = (0..rank).filter(|&d| d != row_dim).collect();
    let mut idx = vec![0usize; rank];
    loop {
        let start: usize =
            layout.offset() + others.iter().map(|&d| idx[d] * strides[d]).sum::<usize>();
        if !start.is_multiple_of(be) {
            return Err(layout_err(format!(
                "row at element {start} does not start on a {dtype} block boundary"
            )));
        }
        let b0 = start / be * dtype.block_bytes();
        let src = bytes.get(b0..b0.saturating_add(row_bytes)).ok_or_else(|| {
            layout_err(format!(
                "row bytes {b0}..{} lie outside the {} bytes of storage",
                b0 + row_bytes,
                bytes.len()
            ))
        })?;
        dequantize_row(dtype, src, &mut row)?;
        let base: usize = others.iter().map(|&d| idx[d] * out_strides[d]).sum();
        for (j, &v) in row.iter().enumerate() {
            out[base + j * out_strides[row_dim]] = v;
        }
        // Advance the odometer over the other dimensions.
        let mut carried = true;
        for &d in others.iter().rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                carried = false;
                break;
            }
            idx[d] = 0;
        }
        if carried {
            break;
        }
    }
    Ok(out)
}
