//! Walking strided tensors row by row: the CPU ops read each input row into a
//! contiguous f32 buffer, compute, and write the result rows back through the
//! output's strides.

use crate::tensor::{cast, cast_mut, read_f32, write_f32, DType, Layout};

/// The storage index of the first element of every row (all dimensions but
/// the last, in row-major order) and the stride along the last dimension. A
/// rank-0 layout is one row of one element.
pub(crate) fn row_starts(layout: &Layout) -> (Vec<usize>, usize) {
    let r = layout.rank();
    if r == 0 {
        return (vec![layout.offset()], 1);
    }
    let rows = Layout::new(
        &layout.shape()[..r - 1],
        &layout.strides()[..r - 1],
        layout.offset(),
    )
    .expect("shape and strides of one layout have one rank");
    (rows.storage_indices().collect(), layout.strides()[r - 1])
}

/// Reads `out.len()` elements starting at storage index `start`, `stride` apart.
#[inline]
pub(crate) fn read_row(bytes: &[u8], dtype: DType, start: usize, stride: usize, out: &mut [f32]) {
    if stride == 1 && dtype == DType::F32 {
        out.copy_from_slice(&cast::<f32>(bytes)[start..start + out.len()]);
        return;
    }
    for (j, o) in out.iter_mut().enumerate() {
        *o = read_f32(bytes, dtype, start + j * stride);
    }
}

/// Writes `rows` (row-major, `starts.len()` rows of equal length) through the
/// given row starts and element stride, rounding to `dtype`.
pub(crate) fn write_rows(
    bytes: &mut [u8],
    dtype: DType,
    starts: &[usize],
    stride: usize,
    rows: &[f32],
) {
    if starts.is_empty() {
        return;
    }
    let cols = rows.len() / starts.len();
    if cols == 0 {
        return;
    }
    for (&start, row) in starts.iter().zip(rows.chunks_exact(cols)) {
        if stride == 1 && dtype == DType::F32 {
            cast_mut::<f32>(bytes)[start..start + cols].copy_from_slice(row);
            continue;
        }
        for (j, &v) in row.iter().enumerate() {
            write_f32(bytes, dtype, start + j * stride, v);
        }
    }
}
