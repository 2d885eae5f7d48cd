//! Elementwise ops on the CPU. Inputs arrive already broadcast to `out`'s
//! shape (stride-0 views). Rows (all dimensions but the last) are computed in
//! parallel into an f32 buffer, then written through `out`'s strides. An
//! input that is `out` itself (in-place `add`) is read from `out`'s storage
//! before anything is written.

use std::sync::RwLockReadGuard;

use rayon::prelude::*;

use super::strided::{read_row, row_starts, write_rows};
use crate::error::Result;
use crate::ops::elementwise::{silu_f32, Binary, Unary};
use crate::tensor::{HostBytes, Tensor};

pub fn binary(op: Binary, a: &Tensor, b: &Tensor, out: &Tensor) -> Result<()> {
    map(op.name(), [a, b], out, |[x, y]| op.apply(x, y))
}

pub fn unary(op: Unary, x: &Tensor, out: &Tensor) -> Result<()> {
    map(op.name(), [x], out, |[v]| op.apply(v))
}

pub fn swiglu(gate: &Tensor, up: &Tensor, out: &Tensor) -> Result<()> {
    map("swiglu", [gate, up], out, |[g, u]| silu_f32(g) * u)
}

/// `out[i] = f(inputs[0][i], .., inputs[N-1][i])` over views of `out`'s shape.
fn map<const N: usize>(
    op: &'static str,
    inputs: [&Tensor; N],
    out: &Tensor,
    f: impl Fn([f32; N]) -> f32 + Sync,
) -> Result<()> {
    let out_storage = out.cpu_storage(op)?;
    let mut out_guard = out_storage.write(op)?;
    let out_bytes = out_guard
        .bytes_mut()
        .expect("write() refuses read-only storage");
    // Inputs that are `out` itself are read from the locked output bytes.
    let mut guards: Vec<Option<RwLockReadGuard<'_, HostBytes>>> = Vec::with_capacity(N);
    for t in inputs {
        guards.push(if t.storage().same(out.storage()) {
            None
        } else {
            Some(t.cpu_storage(op)?.read())
        });
    }
    let in_bytes: Vec<&[u8]> = guards
        .iter()
        .map(|g| g.as_ref().map_or(&*out_bytes, |g| g.bytes()))
        .collect();
    let in_rows: Vec<(Vec<usize>, usize)> = inputs.iter().map(|t| row_starts(t.layout())).collect();
    let (out_starts, out_stride) = row_starts(out.layout());
    let cols = out.shape().last().copied().unwrap_or(1);

    let mut result = vec![0.0f32; out_starts.len() * cols];
    result
        .par_chunks_mut(cols)
        .with_min_len((4096 / cols).max(1))
        .enumerate()
        .for_each_init(
            || vec![0.0f32; N * cols],
            |scratch, (r, dst)| {
                for (i, t) in inputs.iter().enumerate() {
                    let (starts, stride) = &in_rows[i];
                    read_row(
                        in_bytes[i],
                        t.dtype(),
                        starts[r],
                        *stride,
                        &mut scratch[i * cols..(i + 1) * cols],
                    );
                }
                for (j, d) in dst.iter_mut().enumerate() {
                    *d = f(std::array::from_fn(|i| scratch[i * cols + j]));
                }
            },
        );
    drop(in_bytes);
    write_rows(out_bytes, out.dtype(), &out_starts, out_stride, &result);
    Ok(())
}
