//! get_rows on CUDA: float tables through their strides, block tables
//! dequantized per element (kernels/get_rows.cu). The ids are copied into a
//! small pool buffer, so a decode step allocates nothing from the driver.

use super::{arg, dev_ptr, grid_for, ptr_on, Module, Strided, COMMON, QUANT};
use crate::cuda::{CudaDevice, KernelSource};
use crate::error::Result;
use crate::tensor::{DType, Tensor};

const OP: &str = "get_rows";

pub(crate) static MODULE: Module = Module::new(|| {
    KernelSource::new(
        "get_rows",
        &[COMMON, QUANT],
        include_str!("../kernels/get_rows.cu"),
    )
});

/// The kernel-name suffix of a block type (`q4_k`).
pub(crate) fn qname(d: DType) -> String {
    d.name().to_ascii_lowercase()
}

pub fn get_rows(table: &Tensor, ids: &[u32], out: &Tensor) -> Result<()> {
    let dev = dev_ptr(OP, out)?.0;
    let ids_buf = dev.upload(bytemuck::cast_slice(ids))?;
    get_rows_at(table, ids_buf.ptr(), ids.len(), out)
}

/// As [`get_rows`], the `n_ids` ids (u32) read on the device at `ids_ptr`:
/// a decode step replayed from a CUDA graph takes its token from there.
pub(crate) fn get_rows_at(table: &Tensor, ids_ptr: u64, n_ids: usize, out: &Tensor) -> Result<()> {
    let (dev, optr) = dev_ptr(OP, out)?;
    let tptr = ptr_on(OP, &dev, table)?;
    let so = Strided::of(OP, out)?;
    let grid = grid_for(n_ids * table.dim(1), 256);
    let (n_ids, dim) = (n_ids as i64, table.dim(1) as i64);
    let dt = table.dtype();
    if dt.is_float() {
        let st = Strided::of(OP, table)?;
        let mut p = [
            arg(&tptr),
            arg(&st),
            arg(&ids_ptr),
            arg(&optr),
            arg(&so),
            arg(&n_ids),
            arg(&dim),
        ];
        return MODULE.launch(&dev, "get_rows_float", grid, (256, 1, 1), &mut p);
    }
    // Validated: rows start on blocks and run along storage.
    let (be, bb) = (dt.block_elems(), dt.block_bytes());
    let base = tptr + (table.layout().offset() / be * bb) as u64;
    let row_bytes = (table.strides()[0] / be * bb) as i64;
    let mut p = [
        arg(&base),
        arg(&row_bytes),
        arg(&ids_ptr),
        arg(&optr),
        arg(&so),
        arg(&n_ids),
        arg(&dim),
    ];
    MODULE.launch(
        &dev,
        &format!("get_rows_{}", qname(dt)),
        grid,
        (256, 1, 1),
        &mut p,
    )
}

/// Expands `rows` rows of `k` elements of block type `dt` (at `w`, rows
/// `row_bytes` apart) into f32 `[rows, k]` at `out`.
pub(crate) fn dequantize_rows(
    dev: &CudaDevice,
    dt: DType,
    w: u64,
    row_bytes: usize,
    (rows, k): (usize, usize),
    out: u64,
) -> Result<()> {
    let so = Strided::with(OP, &[rows, k], &[k, 1], 0, DType::F32)?;
    let null = 0u64;
    let (row_bytes, n, k64) = (row_bytes as i64, rows as i64, k as i64);
    let mut p = [
        arg(&w),
        arg(&row_bytes),
        arg(&null),
        arg(&out),
        arg(&so),
        arg(&n),
        arg(&k64),
    ];
    MODULE.launch(
        dev,
        &format!("get_rows_{}", qname(dt)),
        grid_for(rows * k, 256),
        (256, 1, 1),
        &mut p,
    )
}
