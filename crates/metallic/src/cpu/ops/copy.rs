use half::f16;
use half::slice::HalfFloatSliceExt;

use super::strided::row_starts;
use crate::error::Result;
use crate::tensor::{cast, cast_mut, read_f32, write_f32, DType, HostBytes, Tensor};

const OP: &str = "copy";

pub fn copy(src: &Tensor, dst: &Tensor) -> Result<()> {
    let d_storage = dst.cpu_storage(OP)?;
    let mut d_guard = d_storage.write(OP)?;
    let d_bytes = d_guard
        .bytes_mut()
        .expect("write() refuses read-only storage");
    if src.dtype().is_float() {
        let s_guard = src.cpu_storage(OP)?.read();
        let s_bytes = s_guard.bytes();
        if src.rank() > 0 {
            // Row by row: rows with unit stride on both sides convert as
            // slices (F16C where present; same rounding as `write_f32`).
            let (s_rows, s_stride) = row_starts(src.layout());
            let (d_rows, d_stride) = row_starts(dst.layout());
            let cols = src.shape()[src.rank() - 1];
            let (sd, dd) = (src.dtype(), dst.dtype());
            for (&ss, &ds) in s_rows.iter().zip(&d_rows) {
                if s_stride == 1
                    && d_stride == 1
                    && copy_slice(s_bytes, sd, ss, d_bytes, dd, ds, cols)
                {
                    continue;
                }
                for j in 0..cols {
                    let v = read_f32(s_bytes, sd, ss + j * s_stride);
                    write_f32(d_bytes, dd, ds + j * d_stride, v);
                }
            }
            return Ok(());
        }
        for (si, di) in src
            .layout()
            .storage_indices()
            .zip(dst.layout().storage_indices())
        {
            write_f32(d_bytes, dst.dtype(), di, read_f32(s_bytes, src.dtype(), si));
        }
    } else {
        let values = src.to_vec_f32()?;
        for (v, di) in values.into_iter().zip(dst.layout().storage_indices()) {
            write_f32(d_bytes, dst.dtype(), di, v);
        }
    }
    Ok(())
}

/// Copies `n` contiguous elements from element `si` of `src` (dtype `sd`)
/// to element `di` of `dst` (dtype `dd`) when the pair has a slice
/// conversion; false (nothing written) otherwise.
fn copy_slice(
    src: &[u8],
    sd: DType,
    si: usize,
    dst: &mut [u8],
    dd: DType,
    di: usize,
    n: usize,
) -> bool {
    match (sd, dd) {
        (DType::F32, DType::F32) => {
            cast_mut::<f32>(dst)[di..di + n].copy_from_slice(&cast::<f32>(src)[si..si + n])
        }
        (DType::F32, DType::F16) => {
            cast_mut::<f16>(dst)[di..di + n].convert_from_f32_slice(&cast::<f32>(src)[si..si + n])
        }
        (DType::F16, DType::F32) => {
            cast::<f16>(src)[si..si + n].convert_to_f32_slice(&mut cast_mut::<f32>(dst)[di..di + n])
        }
        (DType::F16, DType::F16) => {
            cast_mut::<f16>(dst)[di..di + n].copy_from_slice(&cast::<f16>(src)[si..si + n])
        }
        _ => return false,
    }
    true
}

/// An owned copy of a contiguous tensor's bytes (used for quantized tensors).
pub fn clone_contiguous_bytes(src: &Tensor) -> Result<Tensor> {
    let guard = src.cpu_storage(OP)?.read();
    let bs = src.dtype().block_bytes();
    let be = src.dtype().block_elems();
    let start = src.layout().offset() / be * bs;
    let len = src
        .dtype()
        .bytes_for(src.elem_count())
        .expect("validated at creation");
    let bytes = HostBytes::from_bytes(&guard.bytes()[start..start + len]);
    drop(guard);
    Tensor::from_raw(bytes, src.shape(), src.dtype())
}
