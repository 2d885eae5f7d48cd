//! RMS norm on CUDA: one block of 256 threads per row.

use super::{arg, dev_ptr, ptr_on, Module, Strided, COMMON};
use crate::cuda::KernelSource;
use crate::error::Result;
use crate::tensor::Tensor;

const OP: &str = "rms_norm";

pub(crate) static MODULE: Module =
    Module::new(|| KernelSource::new("norm", &[COMMON], include_str!("../kernels/norm.cu")));

pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f32, out: &Tensor) -> Result<()> {
    let (dev, optr) = dev_ptr(OP, out)?;
    let (xptr, wptr) = (ptr_on(OP, &dev, x)?, ptr_on(OP, &dev, weight)?);
    let (sx, sw, so) = (
        Strided::of(OP, x)?,
        Strided::of(OP, weight)?,
        Strided::of(OP, out)?,
    );
    let n = x.dim(x.rank() - 1);
    let rows = x.elem_count() / n;
    if rows > i32::MAX as usize || n > i32::MAX as usize {
        crate::bail!(OP, "{rows} rows of {n} exceed the CUDA kernel's grid");
    }
    let n = n as i32;
    let mut p = [
        arg(&xptr),
        arg(&sx),
        arg(&wptr),
        arg(&sw),
        arg(&optr),
        arg(&so),
        arg(&n),
        arg(&eps),
    ];
    MODULE.launch(&dev, "rms_norm", (rows as u32, 1, 1), (256, 1, 1), &mut p)
}
