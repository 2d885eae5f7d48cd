//! The matmul entry: `D = act(alpha * op(A) * op(B) + beta * C + bias)`.
//!
//! Operands are views: `A` is `[..batch, M, K]`, `B` is `[..batch, K, N]`, `C`
//! and `D` are `[..batch, M, N]`. `op` (identity or transpose) is whatever the
//! strides say, so a transposed weight is `w.t()`, never a copy. Batch
//! dimensions of `A` and `B` broadcast against `D`'s (numpy rules; a batch
//! stride of 0 shares one matrix across batches). The order of the epilogue
//! follows cuBLASLt: scale, add `beta * C`, add the per-column `bias`, then the
//! activation, then rounding to `D`'s dtype.
//!
//! - `beta == 0` never reads `C`: NaN in `C` does not reach `D`.
//! - `C` may be `D` itself (same storage and layout): the residual add.
//! - `A`, `C`, `D` and `bias` are F32/F16/BF16; `B` may also be any GGUF block
//!   type, given as the transpose of a `[N, K]` weight whose rows are blocks.
//! - Accumulation is F32 in every implementation (the scalar reference uses F64).
//!
//! ```
//! use metallic::{Tensor, ops::matmul::{matmul, Matmul}};
//! # fn main() -> metallic::Result<()> {
//! // A big [3, 8, 10] buffer; A is a [3, 4, 5] window of it, seen transposed:
//! // op(A) is [3, 5, 4] (M = 5, K = 4) with padded rows (leading dim 10).
//! let big: Vec<f32> = (0..240).map(|i| (i % 7) as f32 - 3.0).collect();
//! let a = Tensor::from_f32(&big, &[3, 8, 10])?.narrow(1, 2, 4)?.narrow(2, 1, 5)?.t()?;
//! // One [4, 6] weight shared by all three batches (batch stride 0).
//! let w: Vec<f32> = (0..24).map(|i| i as f32 * 0.25).collect();
//! let b = Tensor::from_f32(&w, &[1, 4, 6])?.broadcast_as(&[3, 4, 6])?;
//! let d = Tensor::full(&[3, 5, 6], 1.0, metallic::DType::F32, &Default::default())?;
//! // D = 2 * op(A) * B + 0.5 * D (C aliases D).
//! matmul(&a, &b, &d, &Matmul { alpha: 2.0, beta: 0.5, c: Some(&d), ..Default::default() })?;
//! let out = d.to_vec_f32()?;
//! // Check one element against the definition.
//! let (bi, m, n) = (1, 3, 2);
//! let mut acc = 0.0;
//! for k in 0..4 {
//!     acc += big[bi * 80 + (2 + k) * 10 + 1 + m] * w[k * 6 + n];
//! }
//! assert_eq!(out[bi * 30 + m * 6 + n], 2.0 * acc + 0.5);
//! # Ok(()) }
//! ```

mod dispatch;

pub use dispatch::{
    mixed_rows_fits, mma_fits, pick, select, wgmma_fits, Ctx, MatmulKernel, Rule, ShapeClass,
    Tuned, WeightClass, CPU_RULES, CUDA_RULES, CUDA_TUNING, TUNING_RECORDS,
};

use crate::error::{Error, Result};
use crate::tensor::{DType, Storage, Tensor};

const OP: &str = "matmul";

/// The activation applied in the epilogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    #[default]
    None,
    /// `x * sigmoid(x)`
    Silu,
    /// GELU, tanh approximation (as llama.cpp and PyTorch's `approximate="tanh"`).
    Gelu,
}

impl Activation {
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Silu => x / (1.0 + (-x).exp()),
            Activation::Gelu => {
                const SQRT_2_OVER_PI: f32 = 0.797_884_6;
                0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)).tanh())
            }
        }
    }
}

/// Which implementation family runs a matmul. `Auto` lets the dispatcher pick
/// by shape; the others force ours or the vendor library's (tests, benches).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatmulBackend {
    #[default]
    Auto,
    Native,
    Vendor,
}

impl std::str::FromStr for MatmulBackend {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(MatmulBackend::Auto),
            "native" => Ok(MatmulBackend::Native),
            "vendor" => Ok(MatmulBackend::Vendor),
            _ => Err(format!("unknown matmul backend {s:?} (auto|native|vendor)")),
        }
    }
}

/// Everything a matmul takes besides `A`, `B` and the output `D`.
#[derive(Debug, Clone, Copy)]
pub struct Matmul<'a> {
    pub alpha: f32,
    pub beta: f32,
    /// Read only when `beta != 0`; may be `D` itself.
    pub c: Option<&'a Tensor>,
    /// One value per output column, shape `[N]`.
    pub bias: Option<&'a Tensor>,
    pub activation: Activation,
    pub backend: MatmulBackend,
}

impl Default for Matmul<'_> {
    fn default() -> Self {
        Matmul {
            alpha: 1.0,
            beta: 0.0,
            c: None,
            bias: None,
            activation: Activation::None,
            backend: MatmulBackend::Auto,
        }
    }
}

/// One operand's geometry as the kernels see it: element offset, row and
/// column strides, and a stride for each of `D`'s batch dimensions (0 where
/// the operand is broadcast).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatView {
    pub offset: usize,
    pub row_stride: usize,
    pub col_stride: usize,
    pub batch_strides: Vec<usize>,
    pub dtype: DType,
}

impl MatView {
    fn of(t: &Tensor, batch_rank: usize) -> MatView {
        let r = t.rank();
        let own_batch = r - 2;
        let mut batch_strides = vec![0; batch_rank];
        for i in 0..own_batch {
            let dst = batch_rank - own_batch + i;
            batch_strides[dst] = if t.shape()[i] == 1 { 0 } else { t.strides()[i] };
        }
        MatView {
            offset: t.layout().offset(),
            row_stride: t.strides()[r - 2],
            col_stride: t.strides()[r - 1],
            batch_strides,
            dtype: t.dtype(),
        }
    }

    /// Element offset of the matrix for flat batch index `b`.
    pub fn batch_offset(&self, batch_shape: &[usize], mut b: usize) -> usize {
        let mut off = self.offset;
        for (d, s) in batch_shape.iter().zip(&self.batch_strides).rev() {
            off += (b % d) * s;
            b /= d;
        }
        off
    }
}

/// A validated matmul: the shapes and views every implementation works from.
#[derive(Debug, Clone)]
pub struct MatmulProblem {
    pub batch_shape: Vec<usize>,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: MatView,
    pub b: MatView,
    /// `None` when `beta == 0` (C is never read) or no C was given.
    pub c: Option<MatView>,
    /// `C` is `D` (same storage, same layout).
    pub c_is_d: bool,
    pub d: MatView,
    pub alpha: f32,
    pub beta: f32,
    pub bias_dtype: Option<DType>,
    pub activation: Activation,
}

impl MatmulProblem {
    pub fn batch(&self) -> usize {
        self.batch_shape.iter().product()
    }
    pub fn flops(&self) -> f64 {
        2.0 * self.batch() as f64 * self.m as f64 * self.n as f64 * self.k as f64
    }
}

fn dims(t: &Tensor) -> String {
    t.shape()
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("x")
}

/// Checks shapes, dtypes, devices and aliasing; returns the problem the
/// kernels run.
pub fn validate(a: &Tensor, b: &Tensor, d: &Tensor, p: &Matmul) -> Result<MatmulProblem> {
    for (name, t) in [("a", a), ("b", b), ("d", d)] {
        if t.rank() < 2 {
            crate::bail!(OP, "{name} must have rank >= 2, got shape {}", dims(t));
        }
    }
    let (m, k) = (a.dim(a.rank() - 2), a.dim(a.rank() - 1));
    let (kb, n) = (b.dim(b.rank() - 2), b.dim(b.rank() - 1));
    if k != kb {
        crate::bail!(OP, "k mismatch: a is {}, b is {}", dims(a), dims(b));
    }
    let d_batch = &d.shape()[..d.rank() - 2];
    if d.dim(d.rank() - 2) != m || d.dim(d.rank() - 1) != n {
        crate::bail!(
            OP,
            "output shape mismatch: a is {}, b is {}, d is {}",
            dims(a),
            dims(b),
            dims(d)
        );
    }
    for (name, t) in [("a", a), ("b", b)] {
        let own = &t.shape()[..t.rank() - 2];
        let ok = own.len() <= d_batch.len()
            && own
                .iter()
                .zip(&d_batch[d_batch.len() - own.len()..])
                .all(|(&x, &y)| x == y || x == 1);
        if !ok {
            crate::bail!(
                OP,
                "batch dims of {name} ({}) do not broadcast to d ({})",
                dims(t),
                dims(d)
            );
        }
    }
    for (name, t) in [("a", a), ("d", d)] {
        if !t.dtype().is_float() {
            return Err(Error::UnsupportedDType {
                op: OP,
                dtype: t.dtype(),
                msg: format!("{name} must be f32, f16 or bf16"),
            });
        }
    }
    if b.dtype().is_quantized() {
        let r = b.rank();
        // B = W^T with W [N, K] made of rows of blocks: K runs along storage.
        if b.strides()[r - 2] != 1 || k % b.dtype().block_elems() != 0 {
            crate::bail!(
                OP,
                "quantized b ({} {}, strides {:?}) must be the transpose of a [N, K] weight with whole-block rows",
                b.dtype(),
                dims(b),
                b.strides()
            );
        }
    }
    if d.shape()
        .iter()
        .zip(d.strides())
        .any(|(&size, &stride)| size > 1 && stride == 0)
    {
        crate::bail!(OP, "d ({}) has a broadcast (stride 0) dimension", dims(d));
    }
    let device = d.device();
    for (name, t) in [("a", Some(a)), ("b", Some(b)), ("c", p.c), ("bias", p.bias)] {
        if let Some(t) = t {
            if t.device() != device {
                return Err(Error::Device {
                    op: OP,
                    msg: format!("{name} is on {}, d on {}", t.device().name(), device.name()),
                });
            }
        }
    }
    for (name, t) in [("a", Some(a)), ("b", Some(b)), ("bias", p.bias)] {
        if let Some(t) = t {
            if t.storage().same(d.storage()) {
                crate::bail!(OP, "{name} shares storage with the output d");
            }
        }
    }
    let batch_rank = d_batch.len();
    let mut c_view = None;
    let mut c_is_d = false;
    if p.beta != 0.0 {
        let Some(c) = p.c else {
            crate::bail!(OP, "beta is {} but no c was given", p.beta);
        };
        if c.shape() != d.shape() {
            crate::bail!(OP, "c is {} but d is {}", dims(c), dims(d));
        }
        if !c.dtype().is_float() {
            return Err(Error::UnsupportedDType {
                op: OP,
                dtype: c.dtype(),
                msg: "c must be f32, f16 or bf16".into(),
            });
        }
        if c.storage().same(d.storage()) {
            if c.layout() != d.layout() || c.dtype() != d.dtype() {
                crate::bail!(OP, "c aliases d with a different layout or dtype");
            }
            c_is_d = true;
        }
        c_view = Some(MatView::of(c, batch_rank));
    }
    let bias_dtype = match p.bias {
        Some(bias) => {
            if bias.shape() != [n] {
                crate::bail!(OP, "bias must be [{n}], got {}", dims(bias));
            }
            if !bias.dtype().is_float() {
                return Err(Error::UnsupportedDType {
                    op: OP,
                    dtype: bias.dtype(),
                    msg: "bias must be f32, f16 or bf16".into(),
                });
            }
            Some(bias.dtype())
        }
        None => None,
    };
    Ok(MatmulProblem {
        batch_shape: d_batch.to_vec(),
        m,
        n,
        k,
        a: MatView::of(a, batch_rank),
        b: MatView::of(b, batch_rank),
        c: c_view,
        c_is_d,
        d: MatView::of(d, batch_rank),
        alpha: p.alpha,
        beta: p.beta,
        bias_dtype,
        activation: p.activation,
    })
}

/// Computes `D = act(alpha * A * B + beta * C + bias)` into `d`.
pub fn matmul(a: &Tensor, b: &Tensor, d: &Tensor, p: &Matmul) -> Result<()> {
    let problem = validate(a, b, d, p)?;
    if problem.batch() == 0 || problem.m == 0 || problem.n == 0 {
        return Ok(());
    }
    let (rule, kernel) = select(&problem, p.backend, &d.device())?;
    log::debug!(
        "[matmul] {}x{}x{} batch {:?} {}*{}->{}: rule {rule} -> {kernel:?}",
        problem.m,
        problem.n,
        problem.k,
        problem.batch_shape,
        problem.a.dtype,
        problem.b.dtype,
        problem.d.dtype
    );
    let operands = Operands {
        a,
        b,
        c: p.c.filter(|_| problem.c.is_some()),
        bias: p.bias,
        d,
    };
    match d.storage() {
        Storage::Cpu(_) => crate::cpu::ops::matmul::run(kernel, &problem, &operands),
        Storage::Cuda(_) => crate::cuda::ops::matmul::run(kernel, &problem, &operands),
    }
}

/// `A * B` into a new contiguous tensor of `out_dtype` on `a`'s device.
pub fn matmul_new(a: &Tensor, b: &Tensor, out_dtype: DType, p: &Matmul) -> Result<Tensor> {
    let m = a.dim(a.rank().max(2) - 2);
    let n = b.dim(b.rank().max(2) - 1);
    let batch: Vec<usize> = if a.rank() >= b.rank() {
        a.shape()[..a.rank().saturating_sub(2)].to_vec()
    } else {
        b.shape()[..b.rank().saturating_sub(2)].to_vec()
    };
    let mut shape = batch;
    shape.extend([m, n]);
    let d = Tensor::zeros(&shape, out_dtype, &a.device())?;
    matmul(a, b, &d, p)?;
    Ok(d)
}

/// The tensors of a validated problem, handed to the backend.
pub struct Operands<'a> {
    pub a: &'a Tensor,
    pub b: &'a Tensor,
    pub c: Option<&'a Tensor>,
    pub bias: Option<&'a Tensor>,
    pub d: &'a Tensor,
}

/// The epilogue every implementation applies to an F32 accumulator; `c` is
/// ignored when `beta == 0` (callers pass 0.0 without reading C).
#[inline]
pub fn epilogue(acc: f32, alpha: f32, beta: f32, c: f32, bias: f32, act: Activation) -> f32 {
    let mut v = alpha * acc + bias;
    if beta != 0.0 {
        v += beta * c;
    }
    act.apply(v)
}

/// The scalar reference on logical, row-major F32 data: `a` is
/// `[batch, m, k]`, `b` is `[batch, k, n]`, `c` and the result `[batch, m, n]`,
/// accumulated in F64. Obviously correct, never optimised.
#[allow(clippy::too_many_arguments)]
pub fn reference(
    a: &[f32],
    b: &[f32],
    c: Option<&[f32]>,
    bias: Option<&[f32]>,
    (batch, m, n, k): (usize, usize, usize, usize),
    alpha: f32,
    beta: f32,
    act: Activation,
) -> Vec<f32> {
    let mut out = vec![0.0; batch * m * n];
    for bi in 0..batch {
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0f64;
                for l in 0..k {
                    acc += a[(bi * m + i) * k + l] as f64 * b[(bi * k + l) * n + j] as f64;
                }
                let idx = (bi * m + i) * n + j;
                let cv = if beta != 0.0 {
                    c.map_or(0.0, |c| c[idx])
                } else {
                    0.0
                };
                let bv = bias.map_or(0.0, |b| b[j]);
                out[idx] = epilogue(acc as f32, alpha, beta, cv, bv, act);
            }
        }
    }
    out
}
