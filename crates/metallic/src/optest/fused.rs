//! Fused-op cases (ops/fused.rs): RMSNorm + a projection (with and without
//! a bias), RMSNorm + three projections (q, k, v, each with a bias; of one
//! block type, and with v of another) and RMSNorm + gate / up + SwiGLU,
//! against the composition's reference (rms_norm's, then an f64 product of
//! the dequantized weight, then SwiGLU). One row of x against each block
//! type with CUDA's fused one-row kernels (Q4_0, Q8_0, Q4_K, Q6_K; with
//! 8-bit activations also Q4_1, Q5_0, Q5_1), at odd N and several K, f32
//! and f16 outputs; q, k and v of mixed types; then what the fused kernels
//! do not take and the composition runs: three rows, a block type without
//! a one-row kernel, an f16 weight.

use super::views::{check_untouched, poisoned, random, Placement};
use super::{float_budget, OpCase, Rng, Run, Target};
use crate::error::Result;
use crate::ops::fused::{rms_norm_matmul, rms_norm_matmuls, rms_norm_swiglu};
use crate::ops::matmul::Matmul;
use crate::ops::norm;
use crate::tensor::{DType, HostBytes, Tensor};

#[derive(Debug, Clone)]
pub struct FusedCase {
    /// SwiGLU over a gate and an up weight, else `proj` projections.
    pub swiglu: bool,
    /// 1, or 3 (q, k, v: N, N / 3 + 1 and N / 3 + 1 rows), the last of
    /// type `mixed` where given.
    pub proj: usize,
    pub mixed: Option<DType>,
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
    /// The weights as stored, `[N_i, K]`, with their values.
    w: Vec<(Tensor, Vec<f32>)>,
    bias: Vec<Option<Tensor>>,
}

impl FusedCase {
    /// Rows of each weight (SwiGLU: gate and up).
    fn rows(&self) -> Vec<usize> {
        match (self.swiglu, self.proj) {
            (true, _) => vec![self.n; 2],
            (false, 3) => vec![self.n, self.n / 3 + 1, self.n / 3 + 1],
            _ => vec![self.n],
        }
    }

    fn inputs(&self) -> Result<Inputs> {
        let mut rng = Rng::new(self.seed);
        let amp = self.amp;
        let x = random(
            &[self.m, self.k],
            DType::F32,
            Placement::Contiguous,
            amp,
            &mut rng,
        )?;
        let gamma = random(&[self.k], DType::F32, Placement::Contiguous, 1.0, &mut rng)?;
        let mut w = Vec::new();
        let mut bias = Vec::new();
        for (i, n) in self.rows().into_iter().enumerate() {
            let dt = match self.mixed {
                Some(d) if i == 2 => d,
                _ => self.w,
            };
            let bytes = crate::quant::random_row(dt, n * self.k, self.seed + 1 + i as u64);
            let t = Tensor::from_raw(HostBytes::from_bytes(&bytes), &[n, self.k], dt)?;
            let v = t.to_vec_f32()?;
            w.push((t, v));
            bias.push(if self.bias && !self.swiglu {
                Some(random(
                    &[n],
                    DType::F32,
                    Placement::Contiguous,
                    1.0,
                    &mut rng,
                )?)
            } else {
                None
            });
        }
        Ok(Inputs { x, gamma, w, bias })
    }

    /// The output: each projection's `[M, N_i]` one after another (SwiGLU:
    /// one `[M, N]`).
    fn outputs(&self) -> Vec<usize> {
        if self.swiglu {
            vec![self.n]
        } else {
            self.rows()
        }
    }
}

impl OpCase for FusedCase {
    fn op(&self) -> &'static str {
        match (self.swiglu, self.proj) {
            (true, _) => "rms_norm_swiglu",
            (false, 1) => "rms_norm_matmul",
            _ => "rms_norm_matmuls",
        }
    }

    fn describe(&self) -> String {
        let mixed = self.mixed.map_or(String::new(), |d| format!(" (v {d})"));
        format!(
            "m={} n={:?} k={} w={}{mixed} out={} bias={} amp={}",
            self.m,
            self.rows(),
            self.k,
            self.w,
            self.out,
            self.bias,
            self.amp
        )
    }

    fn seed(&self) -> u64 {
        self.seed
    }

    /// The matmul budget of the weight type (or the output's, if larger);
    /// SwiGLU's product of two products carries both their errors: twice
    /// that (the CPU's Q8 activations reach 8.5e-4 against the quantized
    /// matmul budget of 5e-4 on one case).
    fn budget(&self) -> f64 {
        let w = self.mixed.map_or(0.0, float_budget);
        let b = float_budget(self.w).max(float_budget(self.out)).max(w);
        if self.swiglu {
            2.0 * b
        } else {
            b
        }
    }

    fn reference(&self) -> Result<Vec<f32>> {
        let inp = self.inputs()?;
        let h = norm::reference(&inp.x.to_vec_f32()?, &inp.gamma.to_vec_f32()?, EPS);
        let k = self.k;
        let product = |w: &[f32], r: usize, c: usize| -> f64 {
            (0..k)
                .map(|l| h[r * k + l] as f64 * w[c * k + l] as f64)
                .sum()
        };
        let mut out = Vec::new();
        if self.swiglu {
            for r in 0..self.m {
                for c in 0..self.n {
                    let g = product(&inp.w[0].1, r, c) as f32;
                    let u = product(&inp.w[1].1, r, c) as f32;
                    out.push((g as f64 / (1.0 + (-g as f64).exp()) * u as f64) as f32);
                }
            }
            return Ok(out);
        }
        for ((_, w), b) in inp.w.iter().zip(&inp.bias) {
            let b = b.as_ref().map(|b| b.to_vec_f32()).transpose()?;
            let n = w.len() / k;
            for r in 0..self.m {
                for c in 0..n {
                    let bias = b.as_ref().map_or(0.0, |b| b[c] as f64);
                    out.push((product(w, r, c) + bias) as f32);
                }
            }
        }
        Ok(out)
    }

    fn run(&self, target: &Target) -> Result<Run> {
        let inp = self.inputs()?;
        let dev = &target.device;
        let (m, k) = (self.m, self.k);
        let (x, gamma) = (inp.x.to_device(dev)?, inp.gamma.to_device(dev)?);
        let w = inp
            .w
            .iter()
            .map(|(t, _)| t.to_device(dev))
            .collect::<Result<Vec<_>>>()?;
        let bias = inp
            .bias
            .iter()
            .map(|b| b.as_ref().map(|b| b.to_device(dev)).transpose())
            .collect::<Result<Vec<_>>>()?;
        let outs = self
            .outputs()
            .iter()
            .map(|&n| poisoned(&[m, n], self.out, Placement::Contiguous)?.to_device(dev))
            .collect::<Result<Vec<_>>>()?;
        let scratch = |shape: &[usize]| Tensor::zeros(shape, DType::F32, dev);
        let h = scratch(&[m, k])?;
        let p = Matmul {
            backend: target.matmul,
            ..Default::default()
        };
        match (self.swiglu, self.proj) {
            (true, _) => {
                let (gate, up) = (scratch(&[m, self.n])?, scratch(&[m, self.n])?);
                let (g, u) = (&w[0], &w[1]);
                rms_norm_swiglu(&x, (&gamma, EPS), (g, u), &outs[0], &p, (&h, &gate, &up))?;
            }
            (false, 1) => {
                let pb = Matmul {
                    bias: bias[0].as_ref(),
                    ..p
                };
                rms_norm_matmul(&x, (&gamma, EPS), &w[0], &outs[0], &pb, &h)?;
            }
            _ => {
                let proj: Vec<_> = (0..w.len())
                    .map(|i| (&w[i], bias[i].as_ref(), &outs[i]))
                    .collect();
                rms_norm_matmuls(&x, (&gamma, EPS), &proj, &p, &h)?;
            }
        }
        let mut got = Vec::new();
        for o in &outs {
            check_untouched(o)?;
            got.extend(o.to_vec_f32()?);
        }
        Ok(Run::Output(got))
    }

    fn varies_by_matmul_backend(&self) -> bool {
        true
    }
}

pub fn cases() -> Vec<Box<dyn OpCase>> {
    let mut v = Vec::new();
    let case = |swiglu, proj, bias, (m, n, k), w, out, amp| FusedCase {
        swiglu,
        proj,
        mixed: None,
        bias,
        m,
        n,
        k,
        w,
        out,
        amp,
        seed: 0,
    };
    for (i, w) in [
        DType::Q4_0,
        DType::Q8_0,
        DType::Q4K,
        DType::Q6K,
        DType::Q4_1,
        DType::Q5_0,
        DType::Q5_1,
    ]
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
            v.push(case(false, 1, j != 1, (1, 37, k), w, out, amp));
            v.push(case(false, 3, true, (1, 37, k), w, out, amp));
            v.push(case(true, 1, false, (1, 37, k), w, out, amp));
        }
    }
    // The composition: several rows, a type without a one-row kernel, an
    // f16 weight; q, k of one type and v of another.
    for (m, w) in [(3, DType::Q4K), (1, DType::Q5K), (2, DType::F16)] {
        v.push(case(false, 1, true, (m, 20, 512), w, DType::F32, 1.0));
        v.push(case(false, 3, true, (m, 20, 512), w, DType::F32, 1.0));
        v.push(case(true, 1, false, (m, 20, 512), w, DType::F32, 1.0));
    }
    v.push(FusedCase {
        mixed: Some(DType::Q6K),
        ..case(false, 3, true, (1, 40, 768), DType::Q4K, DType::F32, 1.0)
    });
    v.push(FusedCase {
        mixed: Some(DType::Q8_0),
        ..case(false, 3, true, (1, 40, 768), DType::Q5_0, DType::F32, 1.0)
    });
    v.into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            c.seed = 9000 + i as u64;
            Box::new(c) as Box<dyn OpCase>
        })
        .collect()
}
