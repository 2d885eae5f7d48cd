//! RoPE on the CPU: one cos/sin table per sequence row (as ggml's rope cache),
//! applied to every head of the row; rows in parallel. In place (`out` is
//! `x`) reads every row before any is written.

use rayon::prelude::*;

use crate::error::Result;
use crate::ops::rope::{Rope, RopeMode};
use crate::tensor::{read_f32, write_f32, Tensor};

const OP: &str = "rope";

pub fn rope(x: &Tensor, p: &Rope, out: &Tensor) -> Result<()> {
    let (seq, n_heads, head_dim) = (x.dim(0), x.dim(1), x.dim(2));
    let out_storage = out.cpu_storage(OP)?;
    let mut out_guard = out_storage.write(OP)?;
    let out_bytes = out_guard
        .bytes_mut()
        .expect("write() refuses read-only storage");
    let x_guard = if x.storage().same(out.storage()) {
        None
    } else {
        Some(x.cpu_storage(OP)?.read())
    };
    let x_bytes: &[u8] = x_guard.as_ref().map_or(&*out_bytes, |g| g.bytes());
    let (xs, xo) = (x.strides(), x.layout().offset());
    let theta_scale = p.base.powf(-2.0 / p.dims as f32);
    let half = p.dims / 2;
    let row_len = n_heads * head_dim;

    let mut result = vec![0.0f32; seq * row_len];
    result
        .par_chunks_mut(row_len)
        .enumerate()
        .for_each(|(s, row)| {
            // ggml_rope_cache_init: theta_0 = pos, theta_i = theta_{i-1} * theta_scale.
            let mut theta = (p.pos_offset + s) as f32;
            let cos_sin: Vec<(f32, f32)> = (0..half)
                .map(|_| {
                    let cs = (theta.cos(), theta.sin());
                    theta *= theta_scale;
                    cs
                })
                .collect();
            for (h, head) in row.chunks_exact_mut(head_dim).enumerate() {
                let base = xo + s * xs[0] + h * xs[1];
                for (j, v) in head.iter_mut().enumerate() {
                    *v = read_f32(x_bytes, x.dtype(), base + j * xs[2]);
                }
                for (i, &(c, sn)) in cos_sin.iter().enumerate() {
                    let (i0, i1) = match p.mode {
                        RopeMode::Neox => (i, i + half),
                        RopeMode::Interleaved => (2 * i, 2 * i + 1),
                    };
                    let (x0, x1) = (head[i0], head[i1]);
                    head[i0] = x0 * c - x1 * sn;
                    head[i1] = x0 * sn + x1 * c;
                }
            }
        });
    drop(x_guard);
    let (os, oo) = (out.strides(), out.layout().offset());
    for (s, row) in result.chunks_exact(row_len).enumerate() {
        for (h, head) in row.chunks_exact(head_dim).enumerate() {
            let base = oo + s * os[0] + h * os[1];
            for (j, &v) in head.iter().enumerate() {
                write_f32(out_bytes, out.dtype(), base + j * os[2], v);
            }
        }
    }
    Ok(())
}
