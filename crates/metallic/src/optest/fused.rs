//! Fused-op cases (ops/fused.rs): RMSNorm + a projection (with and without
//! a bias) and RMSNorm + gate / up + SwiGLU, against the composition's
//! reference (rms_norm's, then an f64 product of the dequantized weight,
//! then SwiGLU). One row of x against each block type with CUDA's fused
//! one-row kernels (Q4_0, Q8_0, Q4_K, Q6_K), at odd N and several K,
//! f32 and f16 outputs; then what the fused kernels do not take and the
//! composition runs: three rows, a block type without a one-row kernel.

use super::views::{check_untouched, poisoned, random, Placement};
use super::{float_budget, OpCase, Rng, Run, Target};
use crate::error::Result;
use crate::ops::fused::{rms_norm_matmul, rms_norm_swiglu};
use crate::ops::matmul::Matmul;
use crate::ops::norm;
use crate::tensor::{DType, HostBytes, Tensor};

#[derive(Debug, Clone)]
pub struct FusedCase {
    /// SwiGLU over a gate and an up weight, else one projection.
    pub swiglu: bool,
    pub bias: bool,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub w: DType,
    pub out: DType,
    /// Magnitude of x.
    pub amp: f32,
    pub seed: u64,
}

const EPS: f32 = 1e-6;

struct Inputs {
    x: Tensor,
    gamma: Tensor,
    /// The weights as stored, [N, K], and their values.
    w: Vec<(Tensor, Vec<f32>)>,
    bias: Option<Tensor>,
}

impl FusedCase {
    fn inputs(&self) -> Result<Inputs> {
        let mut rng = Rng::new(self.seed);
        let x = random(
            &[self.m, self.k],
            DType::F32,
            Placement::Contiguous,
            self.amp,
            &mut rng,
        )?;
        let gamma = random(&[self.k], DType::F32, Placement::Contiguous, 1.0, &mut rng)?;
        let w = (0..if self.swiglu { 2 } else { 1 })
            .map(|i| {
                let bytes = crate::quant::random_row(self.w, self.n * self.k, self.seed + 1 + i);
                let t = Tensor::from_raw(HostBytes::from_bytes(&bytes), &[self.n, self.k], self.w)?;
                let v = t.to_vec_f32()?;
                Ok((t, v))
            })
            .collect::<Result<Vec<_>>>()?;
        let bias = if self.bias {
            Some(random(
                &[self.n],
                DType::F32,
                Placement::Contiguous,
                1.0,
                &mut rng,
            )?)
        } else {
            None
        };
        Ok(Inputs { x, gamma, w, bias })
    }
}

impl OpCase for FusedCase {
    fn op(&self) -> &'static str {
        if self.swiglu {
            "rms_norm_swiglu"
        } else {
            "rms_norm_matmul"
        }
    }

    fn describe(&self) -> String {
        format!(
            "m={} n={} k={} w={} out={} bias={} amp={}",
            self.m, self.n, self.k, self.w, self.out, self.bias, self.amp
        )
    }

    fn seed(&self) -> u64 {
        self.seed
    }

    fn budget(&self) -> f64 {
        float_budget(self.w).max(float_budget(self.out))
    }

    fn reference(&self) -> Result<Vec<f32>> {
        let inp = self.inputs()?;
        let h = norm::reference(&inp.x.to_vec_f32()?, &inp.gamma.to_vec_f32()?, EPS);
        let bias = inp.bias.as_ref().map(|b| b.to_vec_f32()).transpose()?;
        let (n, k) = (self.n, self.k);
        let product = |w: &[f32], r: usize, c: usize| -> f64 {
            (0..k)
                .map(|l| h[r * k + l] as f64 * w[c * k + l] as f64)
                .sum()
        };
        let mut out = Vec::with_capacity(self.m * n);
        for r in 0..self.m {
            for c in 0..n {
                let v = if self.swiglu {
                    let g = product(&inp.w[0].1, r, c) as f32;
                    let u = product(&inp.w[1].1, r, c) as f32;
                    (g as f64 / (1.0 + (-g as f64).exp()) * u as f64) as f32
                } else {
                    (product(&inp.w[0].1, r, c) + bias.as_ref().map_or(0.0, |b| b[c] as f64)) as f32
                };
                out.push(v);
            }
        }
        Ok(out)
    }

    fn run(&self, target: &Target) -> Result<Run> {
        let inp = self.inputs()?;
        let dev = &target.device;
        let (m, n, k) = (self.m, self.n, self.k);
        let (x, gamma) = (inp.x.to_device(dev)?, inp.gamma.to_device(dev)?);
        let w = inp
            .w
            .iter()
            .map(|(t, _)| t.to_device(dev))
            .collect::<Result<Vec<_>>>()?;
        let bias = inp.bias.as_ref().map(|b| b.to_device(dev)).transpose()?;
        let out = poisoned(&[m, n], self.out, Placement::Contiguous)?.to_device(dev)?;
        let scratch = |shape: &[usize]| Tensor::zeros(shape, DType::F32, dev);
        let h = scratch(&[m, k])?;
        let p = Matmul {
            bias: bias.as_ref(),
            backend: target.matmul,
            ..Default::default()
        };
        if self.swiglu {
            let (gate, up) = (scratch(&[m, n])?, scratch(&[m, n])?);
            rms_norm_swiglu(
                &x,
                (&gamma, EPS),
                (&w[0], &w[1]),
                &out,
                &p,
                (&h, &gate, &up),
            )?;
        } else {
            rms_norm_matmul(&x, (&gamma, EPS), &w[0], &out, &p, &h)?;
        }
        check_untouched(&out)?;
        Ok(Run::Output(out.to_vec_f32()?))
    }

    fn varies_by_matmul_backend(&self) -> bool {
        true
    }
}

pub fn cases() -> Vec<Box<dyn OpCase>> {
    let mut v = Vec::new();
    let case = |swiglu, bias, m, n, k, w, out, amp| FusedCase {
        swiglu,
        bias,
        m,
        n,
        k,
        w,
        out,
        amp,
        seed: 0,
    };
    for (i, w) in [DType::Q4_0, DType::Q8_0, DType::Q4K, DType::Q6K]
        .into_iter()
        .enumerate()
    {
        let be = w.block_elems();
        // K of 1, 3 and 9 super-blocks (or 8, 24, 72 blocks of 32): one
        // part a lane or fewer, and several.
        for (j, kb) in [1, 3, 9].into_iter().enumerate() {
            let k = kb * if be == 32 { 8 * be } else { be };
            let out = if (i + j) % 3 == 2 {
                DType::F16
            } else {
                DType::F32
            };
            let amp = [1.0, 30.0, 0.05][j];
            v.push(case(false, j != 1, 1, 37, k, w, out, amp));
            v.push(case(true, false, 1, 37, k, w, out, amp));
        }
    }
    // The composition: several rows, and a type without a one-row kernel.
    for (m, w) in [(3, DType::Q4K), (1, DType::Q5K), (2, DType::F16)] {
        v.push(case(false, true, m, 20, 512, w, DType::F32, 1.0));
        v.push(case(true, false, m, 20, 512, w, DType::F32, 1.0));
    }
    v.into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            c.seed = 7000 + i as u64;
            Box::new(c) as Box<dyn OpCase>
        })
        .collect()
}
