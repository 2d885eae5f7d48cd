//! softmax cases: odd row lengths, rank 1 to 3, scales, no mask and causal
//! masks with offsets (including one past the last column), large inputs
//! (stability), padded and transposed views, every float dtype.

use super::views::{check_untouched, poisoned, random, shape_str, Placement};
use super::{float_budget, OpCase, Rng, Run, Target};
use crate::error::Result;
use crate::ops::softmax::{reference, softmax, Softmax};
use crate::tensor::{DType, Tensor};

#[derive(Debug, Clone)]
pub struct SoftmaxCase {
    pub shape: Vec<usize>,
    pub p: Softmax,
    pub x: (Placement, DType),
    pub out: (Placement, DType),
    pub amp: f32,
    pub seed: u64,
}

impl SoftmaxCase {
    fn input(&self) -> Result<Tensor> {
        random(
            &self.shape,
            self.x.1,
            self.x.0,
            self.amp,
            &mut Rng::new(self.seed),
        )
    }
}

impl OpCase for SoftmaxCase {
    fn op(&self) -> &'static str {
        "softmax"
    }

    fn describe(&self) -> String {
        format!(
            "x={}({},{}) out={},{} scale={} causal={:?} amp={}",
            shape_str(&self.shape),
            self.x.1,
            self.x.0.short(),
            self.out.1,
            self.out.0.short(),
            self.p.scale,
            self.p.causal,
            self.amp
        )
    }

    fn seed(&self) -> u64 {
        self.seed
    }

    fn budget(&self) -> f64 {
        float_budget(self.out.1)
    }

    fn reference(&self) -> Result<Vec<f32>> {
        Ok(reference(
            &self.input()?.to_vec_f32()?,
            &self.shape,
            &self.p,
        ))
    }

    fn run(&self, target: &Target) -> Result<Run> {
        let dev = &target.device;
        let x = self.input()?.to_device(dev)?;
        let out = poisoned(&self.shape, self.out.1, self.out.0)?.to_device(dev)?;
        softmax(&x, &self.p, &out)?;
        check_untouched(&out)?;
        Ok(Run::Output(out.to_vec_f32()?))
    }
}

pub fn cases() -> Vec<Box<dyn OpCase>> {
    let pl = |i: usize| Placement::ALL[i % 4];
    let dt = |i: usize| DType::FLOAT[i % 3];
    let shapes: [&[usize]; 6] = [
        &[1, 1],
        &[7, 33],
        &[2, 5, 65],
        &[3, 1, 1000],
        &[4, 4, 4],
        &[9, 17],
    ];
    let masks = [None, Some(0), Some(3), Some(40)];
    let mut v = Vec::new();
    for (i, s) in shapes.iter().enumerate() {
        for (m, causal) in masks.into_iter().enumerate() {
            let k = i + m;
            v.push(SoftmaxCase {
                shape: s.to_vec(),
                p: Softmax {
                    scale: [1.0, 0.125, -0.5][k % 3],
                    causal,
                },
                x: (pl(k), dt(k)),
                out: (pl(k + 1), dt(k + 2)),
                amp: [1.0, 8.0, 40.0][m % 3],
                seed: 0,
            });
        }
    }
    // Rank 1, and huge logits that overflow exp without the max subtraction.
    for d in DType::FLOAT {
        v.push(SoftmaxCase {
            shape: vec![65],
            p: Softmax::default(),
            x: (Placement::Padded, d),
            out: (Placement::Contiguous, d),
            amp: 1.0,
            seed: 0,
        });
        v.push(SoftmaxCase {
            shape: vec![3, 129],
            p: Softmax {
                scale: 1.0,
                causal: Some(100),
            },
            x: (Placement::Transposed, DType::F32),
            out: (Placement::Padded, d),
            amp: 200.0,
            seed: 0,
        });
    }
    v.into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            c.seed = 5000 + i as u64;
            Box::new(c) as Box<dyn OpCase>
        })
        .collect()
}
