//! get_rows cases: float tables in every dtype and placement, quantized tables
//! of every GGUF block type (narrowed to a window of rows), repeated, first
//! and last ids, no ids, and padded or transposed outputs of every dtype.

use super::views::{check_untouched, poisoned, random, Placement};
use super::{float_budget, OpCase, Rng, Run, Target};
use crate::error::Result;
use crate::ops::get_rows::{get_rows, reference};
use crate::tensor::{DType, HostBytes, Tensor};

#[derive(Debug, Clone)]
pub struct GetRowsCase {
    pub vocab: usize,
    pub dim: usize,
    /// Float tables use the placement; block tables are rows `2..2 + vocab`
    /// of a bigger contiguous table.
    pub table: (Placement, DType),
    pub out: (Placement, DType),
    pub ids: Vec<u32>,
    pub seed: u64,
}

impl GetRowsCase {
    fn table(&self) -> Result<Tensor> {
        let (place, dt) = self.table;
        if dt.is_float() {
            return random(
                &[self.vocab, self.dim],
                dt,
                place,
                1.0,
                &mut Rng::new(self.seed),
            );
        }
        let rows = self.vocab + 3;
        let bytes = crate::quant::random_row(dt, rows * self.dim, self.seed);
        Tensor::from_raw(HostBytes::from_bytes(&bytes), &[rows, self.dim], dt)?
            .narrow(0, 2, self.vocab)
    }
}

impl OpCase for GetRowsCase {
    fn op(&self) -> &'static str {
        "get_rows"
    }

    fn describe(&self) -> String {
        format!(
            "table={}x{}({},{}) ids={:?} out={},{}",
            self.vocab,
            self.dim,
            self.table.1,
            if self.table.1.is_float() {
                self.table.0.short()
            } else {
                "rows 2.."
            },
            self.ids,
            self.out.1,
            self.out.0.short()
        )
    }

    fn seed(&self) -> u64 {
        self.seed
    }

    fn budget(&self) -> f64 {
        // The reference dequantizes block tables too: only out's rounding remains.
        float_budget(self.out.1)
    }

    fn reference(&self) -> Result<Vec<f32>> {
        Ok(reference(&self.table()?.to_vec_f32()?, self.dim, &self.ids))
    }

    fn run(&self, target: &Target) -> Result<Run> {
        let dev = &target.device;
        let table = self.table()?.to_device(dev)?;
        let out = poisoned(&[self.ids.len(), self.dim], self.out.1, self.out.0)?.to_device(dev)?;
        get_rows(&table, &self.ids, &out)?;
        check_untouched(&out)?;
        Ok(Run::Output(out.to_vec_f32()?))
    }
}

pub fn cases() -> Vec<Box<dyn OpCase>> {
    let pl = |i: usize| Placement::ALL[i % 4];
    let dt = |i: usize| DType::FLOAT[i % 3];
    let id_sets: [&[u32]; 4] = [
        &[0, 36, 5, 5, 17],
        &[36],
        &[],
        &[3, 2, 1, 0, 35, 34, 33, 36, 7],
    ];
    let mut v = Vec::new();
    for (i, &table_dt) in DType::FLOAT.iter().enumerate() {
        for (j, ids) in id_sets.iter().enumerate() {
            let k = i + j;
            v.push(GetRowsCase {
                vocab: 37,
                dim: if j == 1 { 1 } else { 65 },
                table: (pl(k), table_dt),
                out: (pl(k + 1), dt(k)),
                ids: ids.to_vec(),
                seed: 0,
            });
        }
    }
    for (i, q) in DType::ALL
        .into_iter()
        .filter(|d| d.is_quantized())
        .enumerate()
    {
        for j in 0..2 {
            v.push(GetRowsCase {
                vocab: 9,
                dim: q.block_elems() * (j + 1),
                table: (Placement::Contiguous, q),
                out: (pl(i + j), dt(i + j)),
                ids: vec![8, 0, 3, 3, 5],
                seed: 0,
            });
        }
    }
    v.into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            c.seed = 6000 + i as u64;
            Box::new(c) as Box<dyn OpCase>
        })
        .collect()
}
