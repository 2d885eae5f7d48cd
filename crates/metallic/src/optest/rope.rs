//! RoPE cases: both modes, full and partial rotary dims, odd head_dim,
//! decode (seq 1) and prefill, positions from 0 to 100000, several bases,
//! padded and transposed views, every float dtype, and in place (out = x).

use super::views::{check_untouched, poisoned, random, Placement};
use super::{float_budget, OpCase, Rng, Run, Target};
use crate::error::Result;
use crate::ops::rope::{reference, rope, Rope, RopeMode};
use crate::tensor::{DType, Tensor};

#[derive(Debug, Clone)]
pub struct RopeCase {
    pub seq: usize,
    pub n_heads: usize,
    pub head_dim: usize,
    pub p: Rope,
    pub x: (Placement, DType),
    pub out: (Placement, DType),
    /// `out` is `x` itself.
    pub in_place: bool,
    pub seed: u64,
}

impl RopeCase {
    fn shape(&self) -> [usize; 3] {
        [self.seq, self.n_heads, self.head_dim]
    }

    fn input(&self) -> Result<Tensor> {
        random(
            &self.shape(),
            self.x.1,
            self.x.0,
            1.0,
            &mut Rng::new(self.seed),
        )
    }
}

impl OpCase for RopeCase {
    fn op(&self) -> &'static str {
        "rope"
    }

    fn describe(&self) -> String {
        format!(
            "seq={} heads={} head_dim={} {:?} dims={} base={} pos_offset={} x={},{} out={}",
            self.seq,
            self.n_heads,
            self.head_dim,
            self.p.mode,
            self.p.dims,
            self.p.base,
            self.p.pos_offset,
            self.x.1,
            self.x.0.short(),
            if self.in_place {
                "x (in place)".to_string()
            } else {
                format!("{},{}", self.out.1, self.out.0.short())
            }
        )
    }

    fn seed(&self) -> u64 {
        self.seed
    }

    fn budget(&self) -> f64 {
        float_budget(self.out.1)
    }

    fn reference(&self) -> Result<Vec<f32>> {
        let x = self.input()?.to_vec_f32()?;
        Ok(reference(
            &x,
            (self.seq, self.n_heads, self.head_dim),
            &self.p,
        ))
    }

    fn run(&self, target: &Target) -> Result<Run> {
        let dev = &target.device;
        let x = self.input()?.to_device(dev)?;
        let out = if self.in_place {
            x.clone()
        } else {
            poisoned(&self.shape(), self.out.1, self.out.0)?.to_device(dev)?
        };
        rope(&x, &self.p, &out)?;
        check_untouched(&out)?;
        Ok(Run::Output(out.to_vec_f32()?))
    }
}

pub fn cases() -> Vec<Box<dyn OpCase>> {
    let pl = |i: usize| Placement::ALL[i % 4];
    let dt = |i: usize| DType::FLOAT[i % 3];
    let bases = [10000.0, 1_000_000.0, 500_000.0];
    // (seq, n_heads, head_dim, dims, pos_offset)
    let shapes = [
        (1, 14, 64, 64, 17),
        (7, 2, 64, 64, 0),
        (5, 3, 64, 32, 4000),
        (3, 4, 17, 16, 9),
        (2, 3, 18, 10, 1),
        (1, 1, 128, 128, 100_000),
        (9, 2, 64, 0, 3),
    ];
    let mut v = Vec::new();
    for (mi, mode) in [RopeMode::Neox, RopeMode::Interleaved]
        .into_iter()
        .enumerate()
    {
        for (i, &(seq, n_heads, head_dim, dims, pos_offset)) in shapes.iter().enumerate() {
            for j in 0..2 {
                let k = mi + i + 2 * j;
                v.push(RopeCase {
                    seq,
                    n_heads,
                    head_dim,
                    p: Rope {
                        mode,
                        base: bases[k % 3],
                        dims,
                        pos_offset,
                    },
                    x: (pl(k), dt(k)),
                    out: (pl(k + 1), dt(k + 1 + j)),
                    in_place: false,
                    seed: 0,
                });
            }
        }
        // In place, every dtype and placement.
        for (k, p) in Placement::ALL.into_iter().enumerate() {
            for d in DType::FLOAT {
                v.push(RopeCase {
                    seq: 5,
                    n_heads: 3,
                    head_dim: 64,
                    p: Rope {
                        mode,
                        base: bases[k % 3],
                        dims: if k == 3 { 48 } else { 64 },
                        pos_offset: 11 * k,
                    },
                    x: (p, d),
                    out: (p, d),
                    in_place: true,
                    seed: 0,
                });
            }
        }
    }
    v.into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            c.seed = 4000 + i as u64;
            Box::new(c) as Box<dyn OpCase>
        })
        .collect()
}
