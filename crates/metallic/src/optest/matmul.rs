//! Matmul op cases: transposes, alpha/beta, padded and sliced operands, odd
//! sizes, strided and broadcast batches, every dtype, C aliasing D, bias and
//! activations, and every GGUF block type for B.

use super::{float_budget, OpCase, Rng, Run, Target};
use crate::error::{Error, Result};
use crate::ops::copy::copy;
use crate::ops::matmul::{matmul, reference, Activation, Matmul};
use crate::tensor::{DType, HostBytes, Tensor};

/// How an operand's batch dimension is laid out in storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// Matrices back to back.
    Dense,
    /// A gap of a few elements between matrices (batch stride > matrix size).
    Strided,
    /// One matrix for every batch (batch stride 0).
    Broadcast,
    /// The operand has no batch dimension at all (rank 2 against a rank-3 D).
    Missing,
}

/// How one operand sits in its storage.
#[derive(Debug, Clone, Copy)]
pub struct Operand {
    /// Stored transposed: the logical matrix is `stored.t()`.
    pub trans: bool,
    /// Extra elements per stored row (leading dimension = cols + pad); when
    /// non-zero the view also starts one column in (a slice of a wider matrix).
    pub pad: usize,
    /// Rows of the bigger matrix skipped before the view starts.
    pub row_off: usize,
    pub batch: Batch,
}

impl Operand {
    pub const PLAIN: Operand = Operand {
        trans: false,
        pad: 0,
        row_off: 0,
        batch: Batch::Dense,
    };
    pub const T: Operand = Operand {
        trans: true,
        ..Operand::PLAIN
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CMode {
    /// No C at all (beta must be 0).
    Absent,
    /// A separate C tensor of `c_dtype`.
    Separate,
    /// C is D itself (in-place accumulation).
    AliasD,
    /// C given but all NaN, with beta = 0: C must not be read.
    NanIgnored,
}

#[derive(Debug, Clone)]
pub struct MatmulCase {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// Batch count; 0 means rank-2 operands (no batch dimension).
    pub batch: usize,
    pub a: Operand,
    pub b: Operand,
    pub d: Operand,
    pub alpha: f32,
    pub beta: f32,
    pub c: CMode,
    pub bias: bool,
    pub act: Activation,
    pub a_dtype: DType,
    pub b_dtype: DType,
    pub d_dtype: DType,
    /// Every other line of A's storage (every other row of a plain A) times
    /// this: rows past f16's range (65504) beside rows inside it.
    pub a_big: f32,
    pub seed: u64,
}

impl MatmulCase {
    pub fn new(m: usize, n: usize, k: usize) -> MatmulCase {
        MatmulCase {
            m,
            n,
            k,
            batch: 0,
            a: Operand::PLAIN,
            b: Operand::PLAIN,
            d: Operand::PLAIN,
            alpha: 1.0,
            beta: 0.0,
            c: CMode::Absent,
            bias: false,
            act: Activation::None,
            a_dtype: DType::F32,
            b_dtype: DType::F32,
            d_dtype: DType::F32,
            a_big: 1.0,
            seed: 0,
        }
    }

    fn dtypes(mut self, a: DType, b: DType, d: DType) -> Self {
        (self.a_dtype, self.b_dtype, self.d_dtype) = (a, b, d);
        self
    }

    fn batch_dims(&self) -> Vec<usize> {
        if self.batch == 0 {
            vec![]
        } else {
            vec![self.batch]
        }
    }
}

/// A float operand view over a bigger, randomly filled (or NaN-filled) buffer.
struct Built {
    view: Tensor,
}

fn build_float(
    op: &Operand,
    batch: usize,
    (rows, cols): (usize, usize),
    dtype: DType,
    fill: &mut dyn FnMut(usize) -> Vec<f32>,
) -> Result<Built> {
    let (sr, sc) = if op.trans { (cols, rows) } else { (rows, cols) };
    let col_off = op.pad.min(1);
    let ld = sc + op.pad;
    let per_matrix = (sr + op.row_off) * ld;
    let (nb, bstride) = match op.batch {
        _ if batch == 0 => (0, 0),
        Batch::Dense => (batch, per_matrix),
        Batch::Strided => (batch, per_matrix + 7),
        Batch::Broadcast => (batch, 0),
        Batch::Missing => (0, 0),
    };
    let offset = op.row_off * ld + col_off;
    let total = offset + bstride * nb.saturating_sub(1) + sr * ld + 3;
    let base = Tensor::from_f32(&fill(total), &[total])?.to_dtype(dtype)?;
    let mut view = if nb == 0 {
        base.as_strided(&[sr, sc], &[ld, 1], offset)?
    } else {
        base.as_strided(&[nb, sr, sc], &[bstride, ld, 1], offset)?
    };
    if op.trans {
        view = view.t()?;
    }
    Ok(Built { view })
}

/// Everything a case needs, built deterministically from its seed on the CPU.
struct Inputs {
    a: Built,
    b: Tensor,
    /// B's logical values broadcast to `[batch, k, n]`.
    b_values: Vec<f32>,
    c: Option<Tensor>,
    d: Built,
    bias: Option<Tensor>,
}

impl MatmulCase {
    fn inputs(&self) -> Result<Inputs> {
        let mut rng = Rng::new(self.seed);
        let mut random = |n: usize| rng.vec(n);
        let line = if self.a.trans { self.m } else { self.k } + self.a.pad;
        let a = build_float(
            &self.a,
            self.batch,
            (self.m, self.k),
            self.a_dtype,
            &mut |n| {
                let mut v = random(n);
                if self.a_big != 1.0 {
                    for (i, x) in v.iter_mut().enumerate() {
                        if (i / line) % 2 == 1 {
                            *x *= self.a_big;
                        }
                    }
                }
                v
            },
        )?;
        let nb = self.batch.max(1);
        let (b, b_values) = if self.b_dtype.is_quantized() {
            // W is [N, K] rows of blocks; B = W^T, shared by every batch.
            let bytes = crate::quant::random_row(self.b_dtype, self.n * self.k, self.seed + 1);
            let w = Tensor::from_raw(
                HostBytes::from_bytes(&bytes),
                &[self.n, self.k],
                self.b_dtype,
            )?;
            let wv = w.to_vec_f32()?;
            let mut vals = Vec::with_capacity(nb * self.k * self.n);
            for _ in 0..nb {
                for l in 0..self.k {
                    vals.extend((0..self.n).map(|j| wv[j * self.k + l]));
                }
            }
            let b = if self.batch == 0 || self.b.batch == Batch::Missing {
                w.t()?
            } else {
                w.reshape(&[1, self.n, self.k])?
                    .broadcast_as(&[self.batch, self.n, self.k])?
                    .t()?
            };
            (b, vals)
        } else {
            let built = build_float(
                &self.b,
                self.batch,
                (self.k, self.n),
                self.b_dtype,
                &mut random,
            )?;
            let vals = expand(&built.view, &self.batch_dims(), self.k, self.n)?;
            (built.view, vals)
        };
        let c = match self.c {
            CMode::Absent => None,
            CMode::NanIgnored => {
                let mut shape = self.batch_dims();
                shape.extend([self.m, self.n]);
                Some(Tensor::full(
                    &shape,
                    f32::NAN,
                    self.d_dtype,
                    &Default::default(),
                )?)
            }
            _ => {
                let mut shape = self.batch_dims();
                shape.extend([self.m, self.n]);
                Some(
                    Tensor::from_f32(&random(self.m * self.n * nb), &shape)?
                        .to_dtype(self.d_dtype)?,
                )
            }
        };
        let d = build_float(
            &self.d,
            self.batch,
            (self.m, self.n),
            self.d_dtype,
            &mut |n| vec![f32::NAN; n],
        )?;
        let bias = if self.bias {
            Some(Tensor::from_f32(&random(self.n), &[self.n])?)
        } else {
            None
        };
        Ok(Inputs {
            a,
            b,
            b_values,
            c,
            d,
            bias,
        })
    }
}

/// A view's logical values, broadcast to `[batch.., rows, cols]`.
fn expand(view: &Tensor, batch: &[usize], rows: usize, cols: usize) -> Result<Vec<f32>> {
    let mut shape = batch.to_vec();
    shape.extend([rows, cols]);
    view.broadcast_as(&shape)?.to_vec_f32()
}

impl OpCase for MatmulCase {
    fn op(&self) -> &'static str {
        "matmul"
    }

    fn describe(&self) -> String {
        let od = |o: &Operand| {
            format!(
                "{}{}{}{}",
                if o.trans { "T" } else { "N" },
                if o.pad > 0 {
                    format!(",ld+{}", o.pad)
                } else {
                    String::new()
                },
                if o.row_off > 0 {
                    format!(",off{}", o.row_off)
                } else {
                    String::new()
                },
                match o.batch {
                    Batch::Dense => "",
                    Batch::Strided => ",bstrided",
                    Batch::Broadcast => ",bcast",
                    Batch::Missing => ",rank2",
                }
            )
        };
        format!(
            "m={} n={} k={} batch={} a={}({}{}) b={}({}) d={}({}) alpha={} beta={} c={:?} bias={} act={:?}",
            self.m,
            self.n,
            self.k,
            self.batch,
            self.a_dtype,
            od(&self.a),
            if self.a_big != 1.0 {
                format!(",rows x{:e}", self.a_big)
            } else {
                String::new()
            },
            self.b_dtype,
            od(&self.b),
            self.d_dtype,
            od(&self.d),
            self.alpha,
            self.beta,
            self.c,
            self.bias,
            self.act
        )
    }

    fn seed(&self) -> u64 {
        self.seed
    }

    fn budget(&self) -> f64 {
        if self.b_dtype.is_quantized() {
            return float_budget(self.b_dtype);
        }
        [self.a_dtype, self.b_dtype, self.d_dtype]
            .into_iter()
            .map(float_budget)
            .fold(0.0, f64::max)
    }

    fn varies_by_matmul_backend(&self) -> bool {
        true
    }

    fn reference(&self) -> Result<Vec<f32>> {
        let inp = self.inputs()?;
        let dims = self.batch_dims();
        let a = expand(&inp.a.view, &dims, self.m, self.k)?;
        let c = inp.c.as_ref().map(|c| c.to_vec_f32()).transpose()?;
        let bias = inp.bias.as_ref().map(|b| b.to_vec_f32()).transpose()?;
        Ok(reference(
            &a,
            &inp.b_values,
            c.as_deref(),
            bias.as_deref(),
            (self.batch.max(1), self.m, self.n, self.k),
            self.alpha,
            self.beta,
            self.act,
        ))
    }

    fn run(&self, target: &Target) -> Result<Run> {
        let inp = self.inputs()?;
        let dev = &target.device;
        let a = inp.a.view.to_device(dev)?;
        let b = inp.b.to_device(dev)?;
        let d = inp.d.view.to_device(dev)?;
        let bias = inp.bias.map(|t| t.to_device(dev)).transpose()?;
        let c = match self.c {
            CMode::Absent => None,
            CMode::Separate | CMode::NanIgnored => {
                Some(inp.c.as_ref().expect("built").to_device(dev)?)
            }
            CMode::AliasD => {
                // With beta = 0, D stays poisoned: C (= D) must not be read.
                if self.beta != 0.0 {
                    copy(&inp.c.as_ref().expect("built").to_device(dev)?, &d)?;
                }
                Some(d.clone())
            }
        };
        matmul(
            &a,
            &b,
            &d,
            &Matmul {
                alpha: self.alpha,
                beta: self.beta,
                c: c.as_ref(),
                bias: bias.as_ref(),
                activation: self.act,
                backend: target.matmul,
            },
        )?;
        check_untouched(&d)?;
        Ok(Run::Output(d.to_vec_f32()?))
    }
}

/// Fails when a kernel wrote storage outside the output view (it was NaN).
fn check_untouched(view: &Tensor) -> Result<()> {
    let all = view.storage_view()?.to_vec_f32()?;
    let mut inside = vec![false; all.len()];
    for i in view.layout().storage_indices() {
        inside[i] = true;
    }
    if let Some(i) = (0..all.len()).find(|&i| !inside[i] && !all[i].is_nan()) {
        return Err(Error::op(
            "optest",
            format!("kernel wrote element {i} outside the output view"),
        ));
    }
    Ok(())
}

/// The cases the issue lists, each with its own seed.
pub fn cases() -> Vec<Box<dyn OpCase>> {
    let mut v: Vec<MatmulCase> = Vec::new();
    // All four transposes x alpha x beta, with C separate (and C = D for beta 1).
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        for alpha in [1.0, 0.5, -2.0] {
            for beta in [0.0, 1.0, 0.25] {
                let mut c = MatmulCase::new(17, 63, 65);
                c.a.trans = ta;
                c.b.trans = tb;
                (c.alpha, c.beta) = (alpha, beta);
                c.c = if beta == 0.0 {
                    CMode::Absent
                } else {
                    CMode::Separate
                };
                v.push(c);
            }
        }
    }
    // beta = 0 must not read C: a NaN C (separate, or D itself still poisoned).
    for dt in DType::FLOAT {
        let mut c = MatmulCase::new(9, 65, 17).dtypes(dt, dt, dt);
        c.c = CMode::NanIgnored;
        v.push(c);
        let mut c = MatmulCase::new(9, 65, 17).dtypes(dt, dt, dt);
        (c.c, c.alpha) = (CMode::AliasD, 0.5);
        v.push(c);
    }
    // Every dtype, every transpose, in and out.
    for dt in DType::FLOAT {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let mut c = MatmulCase::new(65, 33, 129).dtypes(dt, dt, dt);
            c.a.trans = ta;
            c.b.trans = tb;
            (c.alpha, c.beta, c.c) = (0.5, 0.25, CMode::Separate);
            v.push(c);
        }
    }
    for (a, b, d) in [
        (DType::F16, DType::F16, DType::F32),
        (DType::BF16, DType::BF16, DType::F32),
        (DType::F32, DType::F32, DType::BF16),
        (DType::BF16, DType::F16, DType::F16),
        (DType::F32, DType::BF16, DType::F32),
    ] {
        v.push(MatmulCase::new(31, 47, 63).dtypes(a, b, d));
    }
    // Odd sizes, M = 1 and N = 1 included.
    for (m, n, k) in [
        (1, 1, 1),
        (1, 129, 1000),
        (1000, 1, 65),
        (3, 1000, 17),
        (1, 3, 127),
        (127, 65, 129),
        (63, 127, 3),
        (129, 17, 63),
        (1000, 129, 65),
        (65, 1000, 1),
    ] {
        v.push(MatmulCase::new(m, n, k));
        let mut t = MatmulCase::new(m, n, k);
        (t.a.trans, t.b.trans) = (true, true);
        v.push(t);
    }
    // Padded leading dimensions and slices of larger matrices, every operand.
    for (pad, off) in [(5, 0), (0, 2), (3, 4)] {
        for trans in [false, true] {
            let mut c = MatmulCase::new(63, 17, 65);
            let op = Operand {
                trans,
                pad,
                row_off: off,
                batch: Batch::Dense,
            };
            (c.a, c.b, c.d) = (op, op, Operand { trans: false, ..op });
            (c.beta, c.c) = (1.0, CMode::Separate);
            v.push(c);
        }
    }
    // Batches: dense, strided and broadcast on either side, and rank-2 weights.
    for batch in [1, 3, 8] {
        for (ab, bb) in [
            (Batch::Dense, Batch::Dense),
            (Batch::Strided, Batch::Strided),
            (Batch::Dense, Batch::Broadcast),
            (Batch::Broadcast, Batch::Strided),
            (Batch::Strided, Batch::Missing),
        ] {
            let mut c = MatmulCase::new(17, 33, 65);
            c.batch = batch;
            c.a.batch = ab;
            c.b.batch = bb;
            c.b.trans = batch == 3;
            c.d.batch = if batch == 8 {
                Batch::Strided
            } else {
                Batch::Dense
            };
            v.push(c);
        }
    }
    // C aliasing D (the residual add), in each dtype and with a strided D.
    for dt in DType::FLOAT {
        let mut c = MatmulCase::new(33, 65, 17).dtypes(dt, dt, dt);
        (c.beta, c.c) = (1.0, CMode::AliasD);
        c.d.pad = 3;
        v.push(c);
        let mut c = MatmulCase::new(5, 17, 63).dtypes(dt, dt, dt);
        (c.alpha, c.beta, c.c, c.batch) = (-2.0, 0.25, CMode::AliasD, 3);
        v.push(c);
    }
    // Bias and activations, alone and with C.
    for act in [Activation::None, Activation::Silu, Activation::Gelu] {
        let mut c = MatmulCase::new(17, 127, 65);
        (c.bias, c.act) = (true, act);
        v.push(c);
        let mut c = MatmulCase::new(3, 65, 33).dtypes(DType::BF16, DType::BF16, DType::BF16);
        (c.bias, c.act, c.beta, c.c) = (true, act, 1.0, CMode::AliasD);
        v.push(c);
    }
    // The tensor-core GEMM's layout (f16/bf16, y = x W^T, K % 8 == 0): each
    // of its tiles (M <= 16; fewer than a wave of 128x128 blocks; more), M,
    // N and K tails (K 24 and 40 against BK 32, K 8 against BK 64), a weight
    // that starts some rows into its buffer, split K, and the whole epilogue.
    for dt in [DType::BF16, DType::F16] {
        for (m, n, k, d_dt) in [
            (1, 64, 64, dt),
            (16, 200, 136, DType::F32),
            (17, 100, 40, dt),
            (130, 129, 72, DType::F32),
            (300, 520, 264, dt),
            (1100, 2000, 24, dt),
        ] {
            let mut c = MatmulCase::new(m, n, k).dtypes(dt, dt, d_dt);
            c.b.trans = true;
            v.push(c);
        }
        let mut c = MatmulCase::new(33, 70, 96).dtypes(dt, dt, dt);
        c.b = Operand {
            row_off: 3,
            ..Operand::T
        };
        (c.alpha, c.beta, c.c) = (0.5, 0.25, CMode::Separate);
        v.push(c);
        for act in [Activation::Silu, Activation::Gelu] {
            let mut c = MatmulCase::new(70, 65, 48).dtypes(dt, dt, dt);
            c.b.trans = true;
            (c.bias, c.act, c.beta, c.c) = (true, act, 1.0, CMode::AliasD);
            v.push(c);
        }
        let mut c = MatmulCase::new(5, 33, 64).dtypes(dt, dt, DType::F32);
        c.b = Operand {
            batch: Batch::Broadcast,
            ..Operand::T
        };
        (c.batch, c.alpha, c.c, c.beta) = (3, -2.0, CMode::AliasD, 0.5);
        v.push(c);
        // M <= 16 with a long K: split K, then the summing epilogue.
        let mut c = MatmulCase::new(7, 96, 1024).dtypes(dt, dt, DType::F32);
        c.b.trans = true;
        v.push(c);
        let mut c = MatmulCase::new(3, 130, 520).dtypes(dt, dt, dt);
        c.b.trans = true;
        (c.bias, c.act, c.alpha, c.beta, c.c) = (true, Activation::Silu, 0.5, 1.0, CMode::AliasD);
        v.push(c);
        let mut c = MatmulCase::new(4, 64, 512).dtypes(dt, dt, dt);
        c.b = Operand {
            batch: Batch::Broadcast,
            ..Operand::T
        };
        (c.batch, c.beta, c.c) = (2, -1.0, CMode::Separate);
        v.push(c);
        // Enough K iterations (47 tiles of 47) that the stream-K grid is two
        // blocks per SM with ranges that end mid-tile, a K tail.
        let mut c = MatmulCase::new(3, 3000, 3000).dtypes(dt, dt, dt);
        c.b.trans = true;
        (c.bias, c.alpha) = (true, 0.75);
        v.push(c);
    }
    // The exact f32 GEMM's tiles (64x64, and 128x128 where its blocks fill
    // the GPU) and operand layouts: y = x W^T, row-major B, A transposed,
    // the strided fallback (a padded view one element in), M, N and K tails,
    // and the epilogue.
    for (m, n, k, ta, tb) in [
        (300, 520, 264, false, true),
        (1500, 1500, 36, false, true),
        (1100, 1300, 20, true, false),
        (257, 130, 72, false, false),
        (200, 300, 65, true, true),
    ] {
        let mut c = MatmulCase::new(m, n, k);
        (c.a.trans, c.b.trans) = (ta, tb);
        v.push(c);
    }
    let mut c = MatmulCase::new(150, 170, 99);
    c.a = Operand {
        pad: 3,
        ..Operand::PLAIN
    };
    c.b.trans = true;
    (c.bias, c.act, c.alpha, c.beta, c.c) = (true, Activation::Silu, 0.5, 1.0, CMode::AliasD);
    v.push(c);
    let mut c = MatmulCase::new(130, 200, 72);
    c.b = Operand {
        batch: Batch::Broadcast,
        ..Operand::T
    };
    (c.batch, c.beta, c.c) = (3, 0.25, CMode::Separate);
    v.push(c);
    // The Hopper (wgmma) GEMM's own paths, for M > 16 in the same layout:
    // more tiles than SMs (each block loops over several) with K under one
    // 64-wide step; few tiles and a long K (split K, the summing epilogue
    // with bias and C); batches of A and W back to back, and A batched
    // against a rank-2 W (TMA's third dimension, or none), with split K; a
    // D whose rows are not 16-byte aligned.
    for dt in [DType::BF16, DType::F16] {
        let mut c = MatmulCase::new(1500, 3000, 40).dtypes(dt, dt, dt);
        c.b.trans = true;
        v.push(c);
        let mut c = MatmulCase::new(200, 300, 4096).dtypes(dt, dt, DType::F32);
        c.b.trans = true;
        (c.bias, c.alpha, c.beta, c.c) = (true, 0.5, 0.25, CMode::Separate);
        v.push(c);
        // The same with N odd: the split sum's element-wise path.
        let mut c = MatmulCase::new(200, 301, 4096).dtypes(dt, dt, dt);
        c.b.trans = true;
        v.push(c);
        let mut c = MatmulCase::new(130, 200, 72).dtypes(dt, dt, dt);
        (c.batch, c.b.trans) = (3, true);
        v.push(c);
        let mut c = MatmulCase::new(150, 260, 2048).dtypes(dt, dt, dt);
        c.b = Operand {
            batch: Batch::Missing,
            ..Operand::T
        };
        (c.batch, c.act) = (2, Activation::Silu);
        v.push(c);
        // D's rows not 16-byte aligned (a column slice of a wider D): the
        // direct epilogue's element-wise stores.
        let mut c = MatmulCase::new(150, 100, 64).dtypes(dt, dt, dt);
        c.b.trans = true;
        c.d.pad = 3;
        v.push(c);
    }
    // Mixed pairs at M > 16 (f32 activations, an f16 / bf16 weight as a
    // model stores it: a prefill): on CUDA an f16 weight's activations are
    // rounded to f16, then the tensor cores run, within f16's budget (NMSE
    // about u^2 / 3 = 8e-8 from that rounding); a bf16 weight's product
    // stays exact. A in other layouts (transposed, a padded slice), a
    // weight shared by a batch, split K, and the epilogue in every form.
    for wt in [DType::F16, DType::BF16] {
        let mut c = MatmulCase::new(300, 520, 264).dtypes(DType::F32, wt, DType::F32);
        c.b.trans = true;
        v.push(c);
        let mut c = MatmulCase::new(33, 70, 96).dtypes(DType::F32, wt, DType::F32);
        (c.a.trans, c.b.trans) = (true, true);
        (c.bias, c.act, c.alpha, c.beta, c.c) = (true, Activation::Silu, 0.5, 1.0, CMode::AliasD);
        v.push(c);
        let mut c = MatmulCase::new(130, 200, 72).dtypes(DType::F32, wt, wt);
        c.a = Operand {
            pad: 3,
            row_off: 2,
            ..Operand::PLAIN
        };
        c.b = Operand {
            batch: Batch::Broadcast,
            ..Operand::T
        };
        (c.batch, c.beta, c.c) = (3, 0.25, CMode::Separate);
        v.push(c);
        let mut c = MatmulCase::new(200, 300, 4096).dtypes(DType::F32, wt, DType::F32);
        c.b.trans = true;
        c.bias = true;
        v.push(c);
        // Every other row of A past f16's range (an f16 weight's rows are
        // scaled into it before the rounding), with a bias: A dense over a
        // batch with D in the weight's dtype (on Hopper the epilogue that
        // stores D by TMA; alpha brings D inside f16's range), A broadcast
        // with f32 D (the staged epilogue), and one tile over a long K
        // (split K: the partial sums).
        for (a_batch, d, k, alpha) in [
            (Batch::Dense, wt, 96, 1.0 / 1024.0),
            (Batch::Broadcast, DType::F32, 96, 1.0),
            (Batch::Dense, DType::F32, 4096, 1.0),
        ] {
            let mut c = MatmulCase::new(41, 72, k).dtypes(DType::F32, wt, d);
            c.b = Operand {
                batch: Batch::Broadcast,
                ..Operand::T
            };
            (c.batch, c.a.batch, c.a_big, c.bias, c.alpha) = (2, a_batch, 3e5, true, alpha);
            v.push(c);
        }
    }
    // GGUF block weights: y = x W^T, M = 1 (decode; long K gives CUDA's
    // one-row kernel several parts a lane) and M > 1 (prefill), odd
    // block counts along K, batched with a shared weight. M = 19 spans two
    // full activation tiles of the SIMD kernels (4 or 8 rows) and a tail.
    // K of 9 super-blocks (72 blocks of 32) gives every thread of CUDA's
    // wide-load kernel (128 a row) more than one part of the row.
    for q in DType::ALL.into_iter().filter(|d| d.is_quantized()) {
        let blk = q.block_elems();
        let long = if blk == 32 { 72 } else { 9 };
        for (m, k) in [
            (1, 3 * blk),
            (7, 2 * blk),
            (19, blk),
            (2, long * blk),
            (1, long * blk),
        ] {
            let mut c = MatmulCase::new(m, 33, k).dtypes(DType::F32, q, DType::F32);
            c.b.trans = true;
            v.push(c);
        }
        // More than 16 rows (a prefill): several 64- and 128-row tiles
        // along M and N with tails of both, many K tiles; A transposed
        // (copied on CUDA).
        let mut c = MatmulCase::new(141, 200, long * blk).dtypes(DType::F32, q, DType::F32);
        c.b.trans = true;
        v.push(c);
        let mut c = MatmulCase::new(33, 70, 2 * blk).dtypes(DType::F32, q, DType::F32);
        (c.a.trans, c.b.trans) = (true, true);
        v.push(c);
        // The epilogue and a shared weight over batches, at M = 4, at M = 1
        // (CUDA's one-row kernel) and at M = 40 (more than 16 rows).
        for m in [4, 1, 40] {
            let mut c = MatmulCase::new(m, 17, blk).dtypes(DType::F16, q, DType::BF16);
            (c.batch, c.b.batch, c.bias, c.beta, c.c) =
                (3, Batch::Broadcast, true, 1.0, CMode::AliasD);
            v.push(c);
        }
        // Every other row of A past f16's range, at M > 16: CUDA's tensor-
        // core prefill scales those rows into it before rounding A to f16
        // (multiplying their sums back in the epilogue); an odd M alternates
        // the big rows' parity from one batch to the next, and a broadcast
        // A has one set of scales for every batch. Not for Q4_1 / Q5_1: the
        // CPU's 8-bit activations for them (Q8_1, as llama.cpp's) keep
        // s = d * sum(q) in f16, which such rows overflow.
        let batches = if matches!(q, DType::Q4_1 | DType::Q5_1) {
            vec![]
        } else {
            vec![Batch::Dense, Batch::Broadcast]
        };
        for a_batch in batches {
            let mut c = MatmulCase::new(41, 40, 2 * blk).dtypes(DType::F32, q, DType::F32);
            (c.batch, c.a.batch, c.b.batch, c.a_big) = (2, a_batch, Batch::Broadcast, 3e5);
            v.push(c);
        }
        // A as a view: rows skipped (read in place on CUDA), and padded
        // rows one column in (not 16-byte aligned: copied first).
        for a in [
            Operand {
                row_off: 1,
                ..Operand::PLAIN
            },
            Operand {
                pad: 3,
                ..Operand::PLAIN
            },
        ] {
            let mut c = MatmulCase::new(3, 20, 2 * blk).dtypes(DType::F32, q, DType::F32);
            c.a = a;
            c.b.trans = true;
            v.push(c);
        }
    }
    v.into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            c.seed = 1000 + i as u64;
            Box::new(c) as Box<dyn OpCase>
        })
        .collect()
}
