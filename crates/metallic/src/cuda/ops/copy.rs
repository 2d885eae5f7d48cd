//! copy / cast on CUDA: one strided kernel for every dtype pair (and a
//! row-at-a-time one, `convert_rows`, for the matmul's operand copies).

use std::sync::Arc;

use super::{arg, dev_ptr, grid_for, ptr_on, Module, Strided, COMMON};
use crate::cuda::{CudaStorage, KernelSource};
use crate::error::Result;
use crate::tensor::{Storage, Tensor};

const OP: &str = "copy";

pub(crate) static MODULE: Module =
    Module::new(|| KernelSource::new("copy", &[COMMON], include_str!("../kernels/copy.cu")));

/// `dst[i] = src[i]` over two float views of one shape (validated by the op).
pub fn copy(src: &Tensor, dst: &Tensor) -> Result<()> {
    let n = dst.elem_count();
    if n == 0 {
        return Ok(());
    }
    let (dev, dptr) = dev_ptr(OP, dst)?;
    let sptr = ptr_on(OP, &dev, src)?;
    let (ss, ds) = (Strided::of(OP, src)?, Strided::of(OP, dst)?);
    let n = n as i64;
    let mut p = [arg(&sptr), arg(&ss), arg(&dptr), arg(&ds), arg(&n)];
    MODULE.launch(
        &dev,
        "copy_strided",
        grid_for(n as usize, 256),
        (256, 1, 1),
        &mut p,
    )
}

/// A contiguous device copy of a contiguous (quantized) tensor's bytes.
pub fn clone_contiguous_bytes(src: &Tensor) -> Result<Tensor> {
    let s = src.cuda_storage(OP)?;
    let dt = src.dtype();
    let start = src.layout().offset() / dt.block_elems() * dt.block_bytes();
    let len = dt
        .bytes_for(src.elem_count())
        .expect("validated at creation");
    let copy: Arc<CudaStorage> = s.copy_range(start, len)?;
    Ok(Tensor::from_parts(
        Storage::Cuda(copy),
        crate::tensor::Layout::contiguous(src.shape()),
        dt,
    ))
}
