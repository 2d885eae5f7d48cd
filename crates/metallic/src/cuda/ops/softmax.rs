//! Softmax on CUDA: one block of 256 threads per row.

use super::{arg, dev_ptr, ptr_on, Module, Strided, COMMON};
use crate::cuda::KernelSource;
use crate::error::Result;
use crate::ops::softmax::Softmax;
use crate::tensor::Tensor;

const OP: &str = "softmax";

pub(crate) static MODULE: Module =
    Module::new(|| KernelSource::new("softmax", &[COMMON], include_str!("../kernels/softmax.cu")));

pub fn softmax(x: &Tensor, p: &Softmax, out: &Tensor) -> Result<()> {
    let (dev, optr) = dev_ptr(OP, out)?;
    let xptr = ptr_on(OP, &dev, x)?;
    let (sx, so) = (Strided::of(OP, x)?, Strided::of(OP, out)?);
    let cols = x.dim(x.rank() - 1);
    let rows = x.elem_count() / cols;
    if rows > i32::MAX as usize || cols > i32::MAX as usize {
        crate::bail!(OP, "{rows} rows of {cols} exceed the CUDA kernel's grid");
    }
    let rows_per_matrix = if x.rank() >= 2 {
        x.dim(x.rank() - 2)
    } else {
        1
    } as i64;
    let cols = cols as i32;
    let causal = i32::from(p.causal.is_some());
    let offset = p.causal.unwrap_or(0) as i64;
    let mut a = [
        arg(&xptr),
        arg(&sx),
        arg(&optr),
        arg(&so),
        arg(&cols),
        arg(&rows_per_matrix),
        arg(&causal),
        arg(&offset),
        arg(&p.scale),
    ];
    MODULE.launch(&dev, "softmax", (rows as u32, 1, 1), (256, 1, 1), &mut a)
}
