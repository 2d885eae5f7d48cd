//! copy / cast on CUDA: one strided kernel for every dtype pair (and a
//! row-at-a-time one, `convert_rows`, for the matmul's operand copies).

use std::sync::Arc;

use super::{arg, dev_ptr, dtype_code, grid_for, ptr_on, Module, Strided, COMMON, ROW_UNROLL};
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
    if dst.is_contiguous() && src.rank() <= 3 && src.strides().last() == Some(&1) {
        return copy_rows(&dev, (sptr, src), (dptr, dst));
    }
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

/// `copy` into a contiguous `dst` from a source of at most three dimensions
/// `[n, rows, cols]` whose columns are unit-stride (e.g. a group of
/// attention heads' query rows, `[heads, seq, head_dim]` seen through a
/// permute): a row at a time (`convert_rows`), not copy_strided's 64-bit
/// divisions per element and dimension.
fn copy_rows(
    dev: &crate::cuda::CudaDevice,
    (sptr, src): (u64, &Tensor),
    (dptr, dst): (u64, &Tensor),
) -> Result<()> {
    let pad = 3 - src.rank();
    let dims = |v: &[usize], fill: usize| -> [usize; 3] {
        let mut a = [fill; 3];
        a[pad..].copy_from_slice(v);
        a
    };
    let (shape, strides) = (dims(src.shape(), 1), dims(src.strides(), 0));
    let (sdt, ddt) = (dtype_code(OP, src.dtype())?, dtype_code(OP, dst.dtype())?);
    let off = src.layout().offset() as i64;
    let (rs, bs, per) = (strides[1] as i64, strides[0] as i64, shape[1] as i64);
    let (lines, len) = ((shape[0] * shape[1]) as i64, shape[2] as i64);
    let dp = dptr + (dst.layout().offset() * dst.dtype().block_bytes()) as u64;
    let mut a = [
        arg(&sptr),
        arg(&sdt),
        arg(&off),
        arg(&rs),
        arg(&bs),
        arg(&per),
        arg(&dp),
        arg(&ddt),
        arg(&lines),
        arg(&len),
    ];
    // 256 threads of ROW_UNROLL elements a block.
    let grid = (
        (len as usize).div_ceil(256 * ROW_UNROLL).min(64) as u32,
        lines.min(65535) as u32,
        1,
    );
    MODULE.launch(dev, "convert_rows", grid, (256, 1, 1), &mut a)
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
