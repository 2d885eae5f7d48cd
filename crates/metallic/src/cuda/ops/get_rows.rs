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
/// `row_bytes` apart) into `[rows, k]` of `out_dt` (f32, or f16 / bf16
/// rounded from the decoded f32 value) at `out`.
pub(crate) fn dequantize_rows(
    dev: &CudaDevice,
    dt: DType,
    w: u64,
    row_bytes: usize,
    (rows, k): (usize, usize),
    (out, out_dt): (u64, DType),
) -> Result<()> {
    let so = Strided::with(OP, &[rows, k], &[k, 1], 0, out_dt)?;
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

/// The block types with part decoders (quant.cuh `V<T>`), and their parts
/// per block (`V<T>::LPB`).
const PART_DECODERS: [(DType, usize); 7] = [
    (DType::Q4_0, 2),
    (DType::Q4_1, 2),
    (DType::Q5_0, 2),
    (DType::Q5_1, 2),
    (DType::Q8_0, 4),
    (DType::Q4K, 16),
    (DType::Q6K, 16),
];

/// As [`dequantize_rows`] into f16, on `dequantize_f16_<type>` (get_rows.cu:
/// a part of a block a thread, the wide-load kernels' decoders, 8-byte
/// stores): for the block types with those decoders, whose weight address
/// and row stride are aligned for them (the caller checks, as for the
/// wide-load kernels); `k` a multiple of the block, `out` 8-byte aligned.
pub(crate) fn dequantize_rows_f16_parts(
    dev: &CudaDevice,
    dt: DType,
    w: u64,
    row_bytes: usize,
    (rows, k): (usize, usize),
    out: u64,
) -> Result<()> {
    let Some(&(_, parts_per_block)) = PART_DECODERS.iter().find(|(t, _)| *t == dt) else {
        crate::bail!(OP, "no part decoder for {dt}");
    };
    let parts = k / dt.block_elems() * parts_per_block;
    let row_bytes = row_bytes as i64;
    let (rows32, k32) = (rows as i32, k as i32);
    let mut p = [arg(&w), arg(&row_bytes), arg(&out), arg(&rows32), arg(&k32)];
    let grid = (
        parts.div_ceil(256).clamp(1, 64) as u32,
        rows.clamp(1, 65535) as u32,
        1,
    );
    MODULE.launch(
        dev,
        &format!("dequantize_f16_{}", qname(dt)),
        grid,
        (256, 1, 1),
        &mut p,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Device;
    use crate::tensor::HostBytes;

    /// The part decoders into f16 give the element decoders' f16 bits, on
    /// random blocks of every type that has them, over rows of several
    /// blocks (the output of each compared in full: a part written to the
    /// wrong place leaves the poisoned value there). Prints SKIP without a
    /// GPU.
    #[test]
    fn part_decoders_match_the_element_decoders_in_f16() {
        let Some(dev) = crate::cuda::default_device() else {
            println!("SKIP dequantize_f16 parts: no CUDA device");
            return;
        };
        let gpu = Device::Cuda(dev.clone());
        for (i, &(dt, _)) in PART_DECODERS.iter().enumerate() {
            let (rows, k) = (37, 3 * dt.block_elems().max(256));
            let bytes = crate::quant::random_row(dt, rows * k, 40 + i as u64);
            let w = Tensor::from_raw(HostBytes::from_bytes(&bytes), &[rows, k], dt)
                .and_then(|t| t.to_device(&gpu))
                .unwrap();
            let row_bytes = dt.bytes_for(k).unwrap();
            let poison = vec![f32::NAN; rows * k];
            let out = |f: &dyn Fn(u64)| {
                let t = Tensor::from_f32(&poison, &[rows, k])
                    .and_then(|t| t.to_dtype(DType::F16))
                    .and_then(|t| t.to_device(&gpu))
                    .unwrap();
                f(ptr_on(OP, &dev, &t).unwrap());
                t.to_vec_f32().unwrap()
            };
            let wp = ptr_on(OP, &dev, &w).unwrap();
            let want = out(&|o| {
                dequantize_rows(&dev, dt, wp, row_bytes, (rows, k), (o, DType::F16)).unwrap()
            });
            let got =
                out(&|o| dequantize_rows_f16_parts(&dev, dt, wp, row_bytes, (rows, k), o).unwrap());
            let same = want
                .iter()
                .zip(&got)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{dt}: the part decoder differs");
            assert!(want.iter().all(|v| !v.is_nan()), "{dt}: unwritten elements");
        }
    }
}
