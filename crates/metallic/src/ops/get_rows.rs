//! get_rows: the embedding lookup. `out[r, :] = table[ids[r], :]`.
//!
//! `table` is `[vocab, dim]` of any dtype: f32/f16/bf16 (any strides) or a
//! GGUF block type (rows of whole blocks, dequantized with
//! `crate::quant::dequantize_row`). `out` is `[ids.len(), dim]`, f32/f16/bf16.
//! An id `>= vocab` is an error naming the id; nothing is written then.

use crate::error::Result;
use crate::ops::check;
use crate::tensor::{Storage, Tensor};

const OP: &str = "get_rows";

pub fn get_rows(table: &Tensor, ids: &[u32], out: &Tensor) -> Result<()> {
    if table.rank() != 2 {
        crate::bail!(OP, "table must be [vocab, dim], got {}", check::dims(table));
    }
    let (vocab, dim) = (table.dim(0), table.dim(1));
    if out.shape() != [ids.len(), dim] {
        crate::bail!(
            OP,
            "out must be [{}, {dim}] for {} ids and table {}, got {}",
            ids.len(),
            ids.len(),
            check::dims(table),
            check::dims(out)
        );
    }
    if let Some((r, &id)) = ids.iter().enumerate().find(|(_, &id)| id as usize >= vocab) {
        crate::bail!(OP, "id {id} (ids[{r}]) out of range for vocab {vocab}");
    }
    let dt = table.dtype();
    if dt.is_quantized() {
        let be = dt.block_elems();
        // Each row must start on a block and run along storage.
        if table.strides()[1] != 1
            || !table.strides()[0].is_multiple_of(be)
            || !table.layout().offset().is_multiple_of(be)
        {
            crate::bail!(
                OP,
                "{dt} table {} (strides {:?}, offset {}) must have contiguous rows of whole blocks",
                check::dims(table),
                table.strides(),
                table.layout().offset()
            );
        }
    }
    check::float(OP, "out", out)?;
    check::same_device(OP, out, &[("table", table)])?;
    check::writable(OP, out)?;
    check::no_alias(OP, out, &[("table", table)])?;
    if out.elem_count() == 0 {
        return Ok(());
    }
    match out.storage() {
        Storage::Cpu(_) => crate::cpu::ops::get_rows::get_rows(table, ids, out),
        Storage::Cuda(_) => crate::cuda::ops::get_rows::get_rows(table, ids, out),
    }
}

/// The reference on a row-major f32 table with rows of `dim` elements.
pub fn reference(table: &[f32], dim: usize, ids: &[u32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(ids.len() * dim);
    for &id in ids {
        let start = id as usize * dim;
        out.extend_from_slice(&table[start..start + dim]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::DType;

    use crate::ops::test_util::{err, t};

    #[test]
    fn rejects_bad_arguments() {
        let table = t(&[5, 4]);
        let e = err(get_rows(&table, &[0, 7], &t(&[2, 4])));
        assert_eq!(e, "[get_rows] id 7 (ids[1]) out of range for vocab 5");
        let e = err(get_rows(&table, &[0], &t(&[2, 4])));
        assert!(e.starts_with("[get_rows] out must be [1, 4]"), "{e}");
        let e = err(get_rows(&t(&[5]), &[0], &t(&[1, 5])));
        assert!(
            e.starts_with("[get_rows] table must be [vocab, dim]"),
            "{e}"
        );
        let e = err(get_rows(&table, &[0], &table.narrow(0, 0, 1).unwrap()));
        assert!(
            e.starts_with("[get_rows] table shares storage with out"),
            "{e}"
        );
        let q = Tensor::zeros(&[2, 32], DType::Q4_0, &Default::default()).unwrap();
        let e = err(get_rows(&t(&[2, 32]), &[0], &q.narrow(0, 0, 1).unwrap()));
        assert!(
            e.starts_with("[get_rows] unsupported dtype q4_0: out"),
            "{e}"
        );
        // A transposed block table would split blocks.
        let q = Tensor::zeros(&[32, 32], DType::Q4_0, &Default::default()).unwrap();
        let qt = q.t().unwrap();
        let e = err(get_rows(&qt, &[0], &t(&[1, 32])));
        assert!(e.starts_with("[get_rows] q4_0 table 32x32"), "{e}");
    }

    #[test]
    fn reference_picks_rows() {
        let table = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(
            reference(&table, 2, &[2, 0, 2]),
            vec![4.0, 5.0, 0.0, 1.0, 4.0, 5.0]
        );
    }
}
