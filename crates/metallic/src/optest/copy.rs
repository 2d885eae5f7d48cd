//! copy cases: strided to strided (padded and transposed on either side)
//! with every float dtype pair, and broadcast sources.

use super::views::{check_untouched, poisoned, random, shape_str, Placement};
use super::{float_budget, OpCase, Rng, Run, Target};
use crate::error::Result;
use crate::ops::copy::{copy, reference};
use crate::tensor::{DType, Tensor};

#[derive(Debug, Clone)]
pub struct CopyCase {
    /// The source's own shape; it is broadcast to `shape` when they differ.
    pub src_shape: Vec<usize>,
    pub shape: Vec<usize>,
    pub src: (Placement, DType),
    pub dst: (Placement, DType),
    pub seed: u64,
}

impl CopyCase {
    fn source(&self) -> Result<Tensor> {
        random(
            &self.src_shape,
            self.src.1,
            self.src.0,
            1.0,
            &mut Rng::new(self.seed),
        )?
        .broadcast_as(&self.shape)
    }
}

impl OpCase for CopyCase {
    fn op(&self) -> &'static str {
        "copy"
    }

    fn describe(&self) -> String {
        format!(
            "src={}({},{}) dst={}({},{})",
            shape_str(&self.src_shape),
            self.src.1,
            self.src.0.short(),
            shape_str(&self.shape),
            self.dst.1,
            self.dst.0.short()
        )
    }

    fn seed(&self) -> u64 {
        self.seed
    }

    fn budget(&self) -> f64 {
        float_budget(self.dst.1)
    }

    fn reference(&self) -> Result<Vec<f32>> {
        Ok(reference(&self.source()?.to_vec_f32()?))
    }

    fn run(&self, target: &Target) -> Result<Run> {
        let dev = &target.device;
        let src = self.source()?.to_device(dev)?;
        let dst = poisoned(&self.shape, self.dst.1, self.dst.0)?.to_device(dev)?;
        copy(&src, &dst)?;
        check_untouched(&dst)?;
        Ok(Run::Output(dst.to_vec_f32()?))
    }
}

pub fn cases() -> Vec<Box<dyn OpCase>> {
    let pl = |i: usize| Placement::ALL[i % 4];
    let mut v = Vec::new();
    for (i, &s) in DType::FLOAT.iter().enumerate() {
        for (j, &d) in DType::FLOAT.iter().enumerate() {
            for (l, shape) in [vec![7, 33], vec![3, 5, 17]].into_iter().enumerate() {
                let k = i + j + l;
                v.push(CopyCase {
                    src_shape: shape.clone(),
                    shape,
                    src: (pl(k), s),
                    dst: (pl(k + 1 + l), d),
                    seed: 0,
                });
            }
        }
    }
    let broadcasts: [(&[usize], &[usize]); 4] = [
        (&[1, 33], &[7, 33]),
        (&[7, 1], &[7, 33]),
        (&[17], &[3, 5, 17]),
        (&[1], &[4, 1, 9]),
    ];
    for (i, (from, to)) in broadcasts.into_iter().enumerate() {
        v.push(CopyCase {
            src_shape: from.to_vec(),
            shape: to.to_vec(),
            src: (pl(i), DType::FLOAT[i % 3]),
            dst: (pl(i + 1), DType::FLOAT[(i + 1) % 3]),
            seed: 0,
        });
    }
    v.into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            c.seed = 8000 + i as u64;
            Box::new(c) as Box<dyn OpCase>
        })
        .collect()
}
