//! Softmax on the CPU: rows in parallel; `exp` in f32, the row sum in f64
//! (as ggml's `ggml_vec_soft_max_f32`), masked columns written as 0.

use rayon::prelude::*;

use super::strided::{read_row, row_starts, write_rows};
use crate::error::Result;
use crate::ops::softmax::Softmax;
use crate::tensor::Tensor;

const OP: &str = "softmax";

pub fn softmax(x: &Tensor, p: &Softmax, out: &Tensor) -> Result<()> {
    let cols = x.dim(x.rank() - 1);
    let rows_per_matrix = if x.rank() >= 2 {
        x.dim(x.rank() - 2)
    } else {
        1
    };
    let x_guard = x.cpu_storage(OP)?.read();
    let x_bytes = x_guard.bytes();
    let (x_starts, x_stride) = row_starts(x.layout());
    let mut result = vec![0.0f32; x_starts.len() * cols];
    result
        .par_chunks_mut(cols)
        .zip(x_starts.par_iter())
        .enumerate()
        .for_each(|(r, (row, &start))| {
            let kept = p.kept(r % rows_per_matrix, cols);
            let (live, masked) = row.split_at_mut(kept);
            read_row(x_bytes, x.dtype(), start, x_stride, live);
            let mut max = f32::NEG_INFINITY;
            for v in live.iter_mut() {
                *v *= p.scale;
                max = max.max(*v);
            }
            let mut sum = 0.0f64;
            for v in live.iter_mut() {
                *v = (*v - max).exp();
                sum += *v as f64;
            }
            let inv = (1.0 / sum) as f32;
            for v in live.iter_mut() {
                *v *= inv;
            }
            masked.fill(0.0);
        });
    drop(x_guard);
    let out_storage = out.cpu_storage(OP)?;
    let mut out_guard = out_storage.write(OP)?;
    let out_bytes = out_guard
        .bytes_mut()
        .expect("write() refuses read-only storage");
    let (out_starts, out_stride) = row_starts(out.layout());
    write_rows(out_bytes, out.dtype(), &out_starts, out_stride, &result);
    Ok(())
}
