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
    let dp = dptr + (dst.layout().offset() * dst.dtype().block_bytes()) as u64;
    let geometry = RowsGeometry {
        off: src.layout().offset() as i64,
        rs: strides[1] as i64,
        bs: strides[0] as i64,
        per: shape[1] as i64,
    };
    let sizes = ((shape[0] * shape[1]) as i64, shape[2] as i64);
    convert_rows(dev, (sptr, src.dtype(), geometry), (dp, dst.dtype()), sizes)
}

/// Where row r of a `convert_rows` source starts: element
/// `off + (r / per) * bs + (r % per) * rs` (`per` rows a matrix, matrices
/// `bs` apart).
pub(crate) struct RowsGeometry {
    pub off: i64,
    pub rs: i64,
    pub bs: i64,
    pub per: i64,
}

/// copy.cu `convert_rows`: `lines` rows of `len` unit-stride elements of
/// `src` (dtype `from`, rows as `g` says) into the contiguous `[lines, len]`
/// buffer at `dst` in `to`.
pub(crate) fn convert_rows(
    dev: &crate::cuda::CudaDevice,
    (src, from, g): (u64, crate::tensor::DType, RowsGeometry),
    (dst, to): (u64, crate::tensor::DType),
    (lines, len): (i64, i64),
) -> Result<()> {
    let (sdt, ddt) = (dtype_code(OP, from)?, dtype_code(OP, to)?);
    let mut a = [
        arg(&src),
        arg(&sdt),
        arg(&g.off),
        arg(&g.rs),
        arg(&g.bs),
        arg(&g.per),
        arg(&dst),
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
