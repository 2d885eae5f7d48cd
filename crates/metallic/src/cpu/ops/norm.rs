//! RMS norm on the CPU: rows in parallel; per row the sum of squares in f64
//! (as ggml's `ggml_compute_forward_rms_norm_f32`), then `x * scale * w` in f32.

use rayon::prelude::*;

use super::strided::{read_row, row_starts, write_rows};
use crate::error::Result;
use crate::tensor::Tensor;

const OP: &str = "rms_norm";

pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f32, out: &Tensor) -> Result<()> {
    let w = weight.to_vec_f32()?;
    let n = w.len();
    let x_guard = x.cpu_storage(OP)?.read();
    let x_bytes = x_guard.bytes();
    let (x_starts, x_stride) = row_starts(x.layout());
    let mut result = vec![0.0f32; x_starts.len() * n];
    result
        .par_chunks_mut(n)
        .zip(x_starts.par_iter())
        .for_each(|(row, &start)| {
            read_row(x_bytes, x.dtype(), start, x_stride, row);
            let sum: f64 = row.iter().map(|&v| (v * v) as f64).sum();
            let mean = (sum / n as f64) as f32;
            let scale = 1.0 / (mean + eps).sqrt();
            for (v, &wj) in row.iter_mut().zip(&w) {
                *v = (*v * scale) * wj;
            }
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
