//! rms_norm cases: odd and model-sized rows, rank 1 to 3, padded and
//! transposed inputs and outputs, every float dtype for x, weight and out,
//! small and large magnitudes.

use super::views::{check_untouched, poisoned, random, shape_str, Placement};
use super::{float_budget, OpCase, Rng, Run, Target};
use crate::error::Result;
use crate::ops::norm::{reference, rms_norm};
use crate::tensor::{DType, Tensor};

#[derive(Debug, Clone)]
pub struct RmsNormCase {
    pub shape: Vec<usize>,
    pub x: (Placement, DType),
    pub weight: (Placement, DType),
    pub out: (Placement, DType),
    pub eps: f32,
    /// Magnitude of x (the norm must not depend on it beyond eps).
    pub amp: f32,
    pub seed: u64,
}

impl RmsNormCase {
    fn inputs(&self) -> Result<(Tensor, Tensor)> {
        let mut rng = Rng::new(self.seed);
        let n = *self.shape.last().expect("rank >= 1");
        let x = random(&self.shape, self.x.1, self.x.0, self.amp, &mut rng)?;
        let w = random(&[n], self.weight.1, self.weight.0, 1.0, &mut rng)?;
        Ok((x, w))
    }
}

impl OpCase for RmsNormCase {
    fn op(&self) -> &'static str {
        "rms_norm"
    }

    fn describe(&self) -> String {
        format!(
            "x={}({},{}) weight={},{} out={},{} eps={} amp={}",
            shape_str(&self.shape),
            self.x.1,
            self.x.0.short(),
            self.weight.1,
            self.weight.0.short(),
            self.out.1,
            self.out.0.short(),
            self.eps,
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
        let (x, w) = self.inputs()?;
        Ok(reference(&x.to_vec_f32()?, &w.to_vec_f32()?, self.eps))
    }

    fn run(&self, target: &Target) -> Result<Run> {
        let (x, w) = self.inputs()?;
        let dev = &target.device;
        let out = poisoned(&self.shape, self.out.1, self.out.0)?.to_device(dev)?;
        rms_norm(&x.to_device(dev)?, &w.to_device(dev)?, self.eps, &out)?;
        check_untouched(&out)?;
        Ok(Run::Output(out.to_vec_f32()?))
    }
}

pub fn cases() -> Vec<Box<dyn OpCase>> {
    let pl = |i: usize| Placement::ALL[i % 4];
    let dt = |i: usize| DType::FLOAT[i % 3];
    // 4096 and 3584: the longest rows the CUDA kernel holds in registers
    // (16 a thread), and a 7B model's; 4099 past them.
    let shapes: [&[usize]; 9] = [
        &[1, 896],
        &[7, 65],
        &[3, 5, 17],
        &[2, 1],
        &[4099],
        &[1, 1],
        &[9, 128],
        &[2, 4096],
        &[1, 3584],
    ];
    let mut v = Vec::new();
    for (i, s) in shapes.iter().enumerate() {
        for j in 0..3 {
            let k = i + j;
            v.push(RmsNormCase {
                shape: s.to_vec(),
                x: (pl(k), dt(k)),
                weight: (pl(k + 1), dt(k + 2)),
                out: (pl(k + 2), dt(k + 1)),
                eps: if j == 2 { 1e-5 } else { 1e-6 },
                amp: [1.0, 100.0, 0.01][j],
                seed: 0,
            });
        }
    }
    // Every dtype for out with f32 inputs, and every input dtype with f32 out.
    for d in DType::FLOAT {
        for (x, w, o) in [
            (DType::F32, DType::F32, d),
            (d, d, DType::F32),
            (d, DType::F32, d),
        ] {
            v.push(RmsNormCase {
                shape: vec![5, 896],
                x: (Placement::Contiguous, x),
                weight: (Placement::Contiguous, w),
                out: (Placement::Padded, o),
                eps: 1e-6,
                amp: 1.0,
                seed: 0,
            });
        }
    }
    v.into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            c.seed = 3000 + i as u64;
            Box::new(c) as Box<dyn OpCase>
        })
        .collect()
}
