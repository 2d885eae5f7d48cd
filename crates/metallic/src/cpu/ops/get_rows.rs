//! get_rows on the CPU: float rows read through the table's strides, block
//! rows dequantized with the scalar reference, rows in parallel.

use rayon::prelude::*;

use super::strided::{read_row, row_starts, write_rows};
use crate::error::Result;
use crate::tensor::Tensor;

const OP: &str = "get_rows";

pub fn get_rows(table: &Tensor, ids: &[u32], out: &Tensor) -> Result<()> {
    let dim = table.dim(1);
    let dt = table.dtype();
    let (t_offset, t_strides) = (table.layout().offset(), table.strides());
    let guard = table.cpu_storage(OP)?.read();
    let bytes = guard.bytes();
    let mut result = vec![0.0f32; ids.len() * dim];
    result
        .par_chunks_mut(dim)
        .zip(ids.par_iter())
        .try_for_each(|(row, &id)| {
            let start = t_offset + id as usize * t_strides[0];
            if dt.is_float() {
                read_row(bytes, dt, start, t_strides[1], row);
                Ok(())
            } else {
                // Validation guarantees `start` is on a block boundary.
                let byte_start = start / dt.block_elems() * dt.block_bytes();
                let len = dt.bytes_for(dim).expect("rows are whole blocks");
                crate::quant::dequantize_row(dt, &bytes[byte_start..byte_start + len], row)
            }
        })?;
    drop(guard);
    let out_storage = out.cpu_storage(OP)?;
    let mut out_guard = out_storage.write(OP)?;
    let out_bytes = out_guard
        .bytes_mut()
        .expect("write() refuses read-only storage");
    let (out_starts, out_stride) = row_starts(out.layout());
    write_rows(out_bytes, out.dtype(), &out_starts, out_stride, &result);
    Ok(())
}
