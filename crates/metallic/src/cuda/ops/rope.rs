//! RoPE on CUDA: one thread per rotated pair or passed-through element.

use super::{arg, dev_ptr, grid_for, ptr_on, Module, Strided, COMMON};
use crate::cuda::KernelSource;
use crate::error::Result;
use crate::ops::rope::{Rope, RopeMode};
use crate::tensor::Tensor;

const OP: &str = "rope";

pub(crate) static MODULE: Module =
    Module::new(|| KernelSource::new("rope", &[COMMON], include_str!("../kernels/rope.cu")));

pub fn rope(x: &Tensor, p: &Rope, out: &Tensor) -> Result<()> {
    rope_at(x, p, out, 0)
}

/// As [`rope`], with the first row's position read on the device from
/// `pos_ptr` (an i64; 0: `p.pos_offset`), for a decode step replayed from a
/// CUDA graph.
pub(crate) fn rope_at(x: &Tensor, p: &Rope, out: &Tensor, pos_ptr: u64) -> Result<()> {
    let (dev, optr) = dev_ptr(OP, out)?;
    let xptr = ptr_on(OP, &dev, x)?;
    let (sx, so) = (Strided::of(OP, x)?, Strided::of(OP, out)?);
    let (seq, n_heads, head_dim) = (x.dim(0) as i32, x.dim(1) as i32, x.dim(2) as i32);
    let dims = p.dims as i32;
    let pos_offset = p.pos_offset as i64;
    // Computed here, with the CPU's powf, so both backends build the same angles.
    let theta_scale = p.base.powf(-2.0 / p.dims as f32);
    let neox = i32::from(p.mode == RopeMode::Neox);
    let work = x.dim(0) * x.dim(1) * (p.dims / 2 + x.dim(2) - p.dims);
    let mut a = [
        arg(&xptr),
        arg(&sx),
        arg(&optr),
        arg(&so),
        arg(&seq),
        arg(&n_heads),
        arg(&head_dim),
        arg(&dims),
        arg(&pos_offset),
        arg(&theta_scale),
        arg(&neox),
        arg(&pos_ptr),
    ];
    MODULE.launch(&dev, "rope", grid_for(work, 256), (256, 1, 1), &mut a)
}
