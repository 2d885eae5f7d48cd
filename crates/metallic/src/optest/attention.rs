//! Attention cases: decode (seq 1 at a late position), prefill (pos_offset 0)
//! and chunked prefill; GQA ratios 1, 2 and 7; head_dim 64 and 17; K and V as
//! narrowed views of a larger cache (contiguous, padded or transposed) whose
//! never-visible positions hold huge values; f32/f16/bf16 caches, queries and
//! outputs.

use super::views::{check_untouched, place, poisoned, random, Placement};
use super::{float_budget, OpCase, Rng, Run, Target};
use crate::error::Result;
use crate::ops::attention::{attention, reference, Attention, AttentionDims};
use crate::tensor::{DType, Tensor};

#[derive(Debug, Clone)]
pub struct AttentionCase {
    pub seq: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub pos_offset: usize,
    /// Length of the k/v views handed to the op (>= pos_offset + seq).
    pub kv_len: usize,
    /// Positions in the preallocated cache the views are narrowed from.
    pub ctx: usize,
    pub q: (Placement, DType),
    pub cache: (Placement, DType),
    /// V's dtype where it differs from K's (`cache.1`).
    pub v_dtype: Option<DType>,
    pub out: (Placement, DType),
    pub seed: u64,
}

impl AttentionCase {
    fn params(&self) -> Attention {
        Attention {
            scale: 1.0 / (self.head_dim as f32).sqrt(),
            pos_offset: self.pos_offset,
        }
    }

    fn inputs(&self) -> Result<(Tensor, Tensor, Tensor)> {
        let mut rng = Rng::new(self.seed);
        let q = random(
            &[self.seq, self.n_heads, self.head_dim],
            self.q.1,
            self.q.0,
            2.0,
            &mut rng,
        )?;
        let row = self.n_kv_heads * self.head_dim;
        let visible = (self.pos_offset + self.seq) * row;
        let cache = |rng: &mut Rng, dtype: DType| -> Result<Tensor> {
            // Positions no query may see hold huge values: reading one shows.
            let mut values = rng.vec(self.ctx * row);
            values.iter_mut().skip(visible).for_each(|v| *v = 1e4);
            let full = place(
                &[self.ctx, self.n_kv_heads, self.head_dim],
                dtype,
                self.cache.0,
                &values,
            )?;
            full.narrow(0, 0, self.kv_len)
        };
        let k = cache(&mut rng, self.cache.1)?;
        let v = cache(&mut rng, self.v_dtype.unwrap_or(self.cache.1))?;
        Ok((q, k, v))
    }
}

impl OpCase for AttentionCase {
    fn op(&self) -> &'static str {
        "attention"
    }

    fn describe(&self) -> String {
        format!(
            "seq={} heads={}/{} head_dim={} pos_offset={} kv_len={} of ctx {} q={},{} cache={},{}{} out={},{}",
            self.seq,
            self.n_heads,
            self.n_kv_heads,
            self.head_dim,
            self.pos_offset,
            self.kv_len,
            self.ctx,
            self.q.1,
            self.q.0.short(),
            self.cache.1,
            self.cache.0.short(),
            self.v_dtype.map(|d| format!(" v={d}")).unwrap_or_default(),
            self.out.1,
            self.out.0.short()
        )
    }

    fn seed(&self) -> u64 {
        self.seed
    }

    fn budget(&self) -> f64 {
        // q and the probabilities are rounded to the cache's dtypes inside the
        // op (see ops::attention); a kernel whose f32 sums run in another order
        // can land on the other side of one such rounding, an error of one ulp
        // of the cache dtype: the budget is the looser of the two dtypes'.
        let v = self.v_dtype.unwrap_or(self.cache.1);
        float_budget(self.out.1)
            .max(float_budget(self.cache.1))
            .max(float_budget(v))
    }

    fn reference(&self) -> Result<Vec<f32>> {
        let (q, k, v) = self.inputs()?;
        let dims = AttentionDims {
            seq: self.seq,
            n_heads: self.n_heads,
            n_kv_heads: self.n_kv_heads,
            head_dim: self.head_dim,
            kv_len: self.kv_len,
            k_dtype: k.dtype(),
            v_dtype: v.dtype(),
        };
        Ok(reference(
            &q.to_vec_f32()?,
            &k.to_vec_f32()?,
            &v.to_vec_f32()?,
            dims,
            &self.params(),
        ))
    }

    fn run(&self, target: &Target) -> Result<Run> {
        let dev = &target.device;
        let (q, k, v) = self.inputs()?;
        let out = poisoned(
            &[self.seq, self.n_heads, self.head_dim],
            self.out.1,
            self.out.0,
        )?
        .to_device(dev)?;
        attention(
            &q.to_device(dev)?,
            &k.to_device(dev)?,
            &v.to_device(dev)?,
            &self.params(),
            &out,
        )?;
        check_untouched(&out)?;
        Ok(Run::Output(out.to_vec_f32()?))
    }
}

pub fn cases() -> Vec<Box<dyn OpCase>> {
    let pl = |i: usize| Placement::ALL[i % 4];
    let dt = |i: usize| DType::FLOAT[i % 3];
    // (seq, pos_offset, extra kv_len beyond the visible part, ctx)
    let steps = [
        (1, 37, 0, 64), // decode
        (9, 0, 0, 16),  // prefill
        (9, 0, 3, 16),  // prefill, views longer than needed
        (5, 11, 0, 20), // chunked prefill
        (1, 0, 0, 1),   // first token
    ];
    let heads = [(4, 4), (4, 2), (14, 2)];
    let mut v = Vec::new();
    for (i, &(seq, pos_offset, extra, ctx)) in steps.iter().enumerate() {
        for (j, &(n_heads, n_kv_heads)) in heads.iter().enumerate() {
            for (l, head_dim) in [64, 17].into_iter().enumerate() {
                let k = i + j + l;
                v.push(AttentionCase {
                    seq,
                    n_heads,
                    n_kv_heads,
                    head_dim,
                    pos_offset,
                    kv_len: pos_offset + seq + extra,
                    ctx,
                    q: (pl(k), dt(k + 1)),
                    cache: (pl(k + 1), dt(k)),
                    v_dtype: None,
                    out: (pl(k + 2), dt(k + 2)),
                    seed: 0,
                });
            }
        }
    }
    // A long decode on every cache dtype (Qwen2.5-0.5B's heads).
    for d in DType::FLOAT {
        v.push(AttentionCase {
            seq: 1,
            n_heads: 14,
            n_kv_heads: 2,
            head_dim: 64,
            pos_offset: 700,
            kv_len: 701,
            ctx: 1024,
            q: (Placement::Contiguous, DType::F32),
            cache: (Placement::Contiguous, d),
            v_dtype: None,
            out: (Placement::Contiguous, DType::F32),
            seed: 0,
        });
    }
    // Decode on F16 caches (the CPU reads them in place when head_dim is a
    // multiple of 16): GQA groups of 3 and 4, head_dim 64 and 128, the
    // first token and later ones, caches contiguous and padded (strided).
    for (i, &(n_heads, n_kv_heads, head_dim, pos_offset)) in [
        (9, 3, 64, 0),
        (9, 3, 64, 200),
        (4, 1, 128, 33),
        (14, 2, 64, 5),
    ]
    .iter()
    .enumerate()
    {
        v.push(AttentionCase {
            seq: 1,
            n_heads,
            n_kv_heads,
            head_dim,
            pos_offset,
            kv_len: pos_offset + 1 + i % 2,
            ctx: pos_offset + 8,
            q: (pl(i + 1), dt(i)),
            cache: (Placement::ALL[i % 2], DType::F16),
            v_dtype: None,
            out: (pl(i + 2), dt(i + 1)),
            seed: 0,
        });
    }
    // Prefills of more keys than a warp has lanes, from position 0 and
    // after a cached prefix, head_dim 128, 80 (not a multiple of 32) and
    // 256, every cache dtype.
    for (i, &(seq, pos_offset, n_heads, n_kv_heads, head_dim)) in
        [(70, 0, 14, 2, 128), (40, 30, 6, 3, 80), (33, 0, 2, 1, 256)]
            .iter()
            .enumerate()
    {
        v.push(AttentionCase {
            seq,
            n_heads,
            n_kv_heads,
            head_dim,
            pos_offset,
            kv_len: pos_offset + seq + i % 2,
            ctx: pos_offset + seq + 4,
            q: (pl(i), dt(i + 1)),
            cache: (pl(i + 1), dt(i)),
            v_dtype: None,
            out: (pl(i + 2), dt(i + 2)),
            seed: 0,
        });
    }
    // Prompts long enough for CUDA's unfused path (cuda::ops::attention,
    // at least UNFUSED_MIN_ROWS query rows: the products on the GEMMs):
    // F16 and BF16 caches, contiguous and padded, Qwen2.5-0.5B's and -7B's
    // head shapes, from position 0 and after a cached prefix.
    for (i, &(seq, pos_offset, n_heads, n_kv_heads, head_dim)) in [
        (260, 0, 14, 2, 64),
        (257, 37, 7, 1, 128),
        (300, 3, 4, 2, 80),
    ]
    .iter()
    .enumerate()
    {
        v.push(AttentionCase {
            seq,
            n_heads,
            n_kv_heads,
            head_dim,
            pos_offset,
            kv_len: pos_offset + seq + i % 2,
            ctx: pos_offset + seq + 4,
            q: (pl(i + 2), dt(i)),
            cache: (Placement::ALL[i % 2], [DType::F16, DType::BF16][i % 2]),
            v_dtype: None,
            out: (pl(i + 1), dt(i + 2)),
            seed: 0,
        });
    }
    // Past the keys the CUDA kernel keeps in shared memory (8192: step 2
    // computes the scores again), aligned f16 rows (16-byte loads) and
    // padded bf16 ones; and K and V of different dtypes (the one-warp
    // kernel).
    for (i, (cache, n_heads, head_dim)) in [
        ((Placement::Contiguous, DType::F16), 4, 64),
        ((Placement::ALL[1], DType::BF16), 2, 40),
    ]
    .into_iter()
    .enumerate()
    {
        v.push(AttentionCase {
            seq: 1 + i,
            n_heads,
            n_kv_heads: 2,
            head_dim,
            pos_offset: 8300,
            kv_len: 8302,
            ctx: 8310,
            q: (Placement::Contiguous, DType::F32),
            cache,
            v_dtype: None,
            out: (pl(i), DType::F32),
            seed: 0,
        });
    }
    for (i, (k_dt, v_dt)) in [(DType::F16, DType::F32), (DType::BF16, DType::F16)]
        .into_iter()
        .enumerate()
    {
        v.push(AttentionCase {
            seq: 3 - 2 * i,
            n_heads: 6,
            n_kv_heads: 3,
            head_dim: 64,
            pos_offset: 40,
            kv_len: 44 - 2 * i,
            ctx: 48,
            q: (pl(i), DType::F32),
            cache: (pl(i + 1), k_dt),
            v_dtype: Some(v_dt),
            out: (pl(i + 2), DType::F32),
            seed: 0,
        });
    }
    v.into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            c.seed = 7000 + i as u64;
            Box::new(c) as Box<dyn OpCase>
        })
        .collect()
}
