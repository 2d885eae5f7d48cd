//! Elementwise ops, computed in f32 and rounded once on store:
//!
//! - `add(a, b, out)`, `mul(a, b, out)`: `a` and `b` broadcast to `out`'s
//!   shape (numpy rules: dimensions aligned from the right, size 1 repeats,
//!   missing leading dimensions repeat).
//! - `silu(x, out)`: `x * sigmoid(x)`, computed as ggml does, `x / (1 + e^-x)`.
//! - `swiglu(gate, up, out)`: `silu(gate) * up` (the Llama/Qwen2 FFN), all
//!   three of one shape.
//! - `scale(x, s, out)`: `s * x`.
//!
//! Inputs and outputs are any strided f32/f16/bf16 views. Only `add` may run
//! in place: `out` may be `a` itself (same storage, layout and dtype), the
//! residual add `h += attn(h)`. Any other sharing of storage between an input
//! and `out` is an error.

use crate::error::Result;
use crate::ops::check;
use crate::tensor::{Storage, Tensor};

/// The two-input ops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binary {
    Add,
    Mul,
}

impl Binary {
    pub fn name(self) -> &'static str {
        match self {
            Binary::Add => "add",
            Binary::Mul => "mul",
        }
    }

    #[inline]
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            Binary::Add => a + b,
            Binary::Mul => a * b,
        }
    }
}

/// The one-input ops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unary {
    Silu,
    Scale(f32),
}

impl Unary {
    pub fn name(self) -> &'static str {
        match self {
            Unary::Silu => "silu",
            Unary::Scale(_) => "scale",
        }
    }

    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Unary::Silu => silu_f32(x),
            Unary::Scale(s) => s * x,
        }
    }
}

/// `x * sigmoid(x)` in f32, the way ggml's `ggml_silu_f32` computes it.
#[inline]
pub fn silu_f32(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// `out = a + b`, broadcasting `a` and `b` to `out`'s shape. `out` may be `a`.
pub fn add(a: &Tensor, b: &Tensor, out: &Tensor) -> Result<()> {
    binary(Binary::Add, a, b, out)
}

/// `out = a * b`, broadcasting `a` and `b` to `out`'s shape.
pub fn mul(a: &Tensor, b: &Tensor, out: &Tensor) -> Result<()> {
    binary(Binary::Mul, a, b, out)
}

/// `out = x * sigmoid(x)`.
pub fn silu(x: &Tensor, out: &Tensor) -> Result<()> {
    unary(Unary::Silu, x, out)
}

/// `out = s * x`.
pub fn scale(x: &Tensor, s: f32, out: &Tensor) -> Result<()> {
    unary(Unary::Scale(s), x, out)
}

/// `out = silu(gate) * up`.
pub fn swiglu(gate: &Tensor, up: &Tensor, out: &Tensor) -> Result<()> {
    const OP: &str = "swiglu";
    for (name, t) in [("gate", gate), ("up", up)] {
        if t.shape() != out.shape() {
            crate::bail!(
                OP,
                "{name} is {} but out is {} (swiglu does not broadcast)",
                check::dims(t),
                check::dims(out)
            );
        }
    }
    check_common(OP, out, &[("gate", gate), ("up", up)])?;
    check::no_alias(OP, out, &[("gate", gate), ("up", up)])?;
    if out.elem_count() == 0 {
        return Ok(());
    }
    match out.storage() {
        Storage::Cpu(_) => crate::cpu::ops::elementwise::swiglu(gate, up, out),
        Storage::Cuda(_) => crate::cuda::ops::elementwise::swiglu(gate, up, out),
    }
}

fn check_common(op: &'static str, out: &Tensor, inputs: &[(&str, &Tensor)]) -> Result<()> {
    for (name, t) in inputs {
        check::float(op, name, t)?;
    }
    check::float(op, "out", out)?;
    check::same_device(op, out, inputs)?;
    check::writable(op, out)
}

/// Whether `from` broadcasts to `to` under numpy's rules.
fn broadcasts(from: &[usize], to: &[usize]) -> bool {
    from.len() <= to.len()
        && from
            .iter()
            .rev()
            .zip(to.iter().rev())
            .all(|(&f, &t)| f == t || f == 1)
}

fn binary(op: Binary, a: &Tensor, b: &Tensor, out: &Tensor) -> Result<()> {
    let name = op.name();
    for (arg, t) in [("a", a), ("b", b)] {
        if !broadcasts(t.shape(), out.shape()) {
            crate::bail!(
                name,
                "{arg} ({}) does not broadcast to out ({})",
                check::dims(t),
                check::dims(out)
            );
        }
    }
    check_common(name, out, &[("a", a), ("b", b)])?;
    match op {
        Binary::Add => check::in_place_or_separate(name, "a", a, out)?,
        Binary::Mul => check::no_alias(name, out, &[("a", a)])?,
    }
    check::no_alias(name, out, &[("b", b)])?;
    if out.elem_count() == 0 {
        return Ok(());
    }
    let a = a.broadcast_as(out.shape())?;
    let b = b.broadcast_as(out.shape())?;
    match out.storage() {
        Storage::Cpu(_) => crate::cpu::ops::elementwise::binary(op, &a, &b, out),
        Storage::Cuda(_) => crate::cuda::ops::elementwise::binary(op, &a, &b, out),
    }
}

fn unary(op: Unary, x: &Tensor, out: &Tensor) -> Result<()> {
    let name = op.name();
    if x.shape() != out.shape() {
        crate::bail!(
            name,
            "x is {} but out is {}",
            check::dims(x),
            check::dims(out)
        );
    }
    check_common(name, out, &[("x", x)])?;
    check::no_alias(name, out, &[("x", x)])?;
    if out.elem_count() == 0 {
        return Ok(());
    }
    match out.storage() {
        Storage::Cpu(_) => crate::cpu::ops::elementwise::unary(op, x, out),
        Storage::Cuda(_) => crate::cuda::ops::elementwise::unary(op, x, out),
    }
}

/// Row-major strides of `shape` as `to`'s trailing dimensions, 0 where
/// `shape` is broadcast (size 1 or missing).
fn broadcast_strides(shape: &[usize], to: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; to.len()];
    let extra = to.len() - shape.len();
    let mut s = 1;
    for i in (0..shape.len()).rev() {
        if shape[i] != 1 {
            strides[extra + i] = s;
        }
        s *= shape[i];
    }
    strides
}

/// The reference for `add` and `mul`: `a` (row-major, `a_shape`) and `b`
/// broadcast to `out_shape`, combined in f64.
pub fn reference_binary(
    op: Binary,
    (a, a_shape): (&[f32], &[usize]),
    (b, b_shape): (&[f32], &[usize]),
    out_shape: &[usize],
) -> Vec<f32> {
    let n: usize = out_shape.iter().product();
    let (sa, sb) = (
        broadcast_strides(a_shape, out_shape),
        broadcast_strides(b_shape, out_shape),
    );
    let mut out = Vec::with_capacity(n);
    for flat in 0..n {
        // Unravel the output index, then ravel it into a and b.
        let (mut rem, mut ia, mut ib) = (flat, 0, 0);
        for d in (0..out_shape.len()).rev() {
            let i = rem % out_shape[d];
            rem /= out_shape[d];
            ia += i * sa[d];
            ib += i * sb[d];
        }
        let (x, y) = (a[ia] as f64, b[ib] as f64);
        out.push(match op {
            Binary::Add => (x + y) as f32,
            Binary::Mul => (x * y) as f32,
        });
    }
    out
}

/// The reference for `silu` and `scale`, in f64.
pub fn reference_unary(op: Unary, x: &[f32]) -> Vec<f32> {
    x.iter()
        .map(|&v| {
            let v = v as f64;
            (match op {
                Unary::Silu => v / (1.0 + (-v).exp()),
                Unary::Scale(s) => s as f64 * v,
            }) as f32
        })
        .collect()
}

/// The reference for `swiglu`: `silu(gate) * up`, in f64.
pub fn reference_swiglu(gate: &[f32], up: &[f32]) -> Vec<f32> {
    gate.iter()
        .zip(up)
        .map(|(&g, &u)| {
            let g = g as f64;
            (g / (1.0 + (-g).exp()) * u as f64) as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::DType;

    use crate::ops::test_util::{err, t};

    #[test]
    fn binary_rejects_bad_broadcasts_and_aliasing() {
        let e = err(add(&t(&[3, 4]), &t(&[5]), &t(&[3, 4])));
        assert!(e.starts_with("[add] b (5) does not broadcast"), "{e}");
        let e = err(mul(&t(&[2, 3, 4]), &t(&[4]), &t(&[3, 4])));
        assert!(e.starts_with("[mul] a (2x3x4)"), "{e}");
        let a = t(&[3, 4]);
        let e = err(add(&t(&[3, 4]), &a, &a));
        assert!(e.starts_with("[add] b shares storage"), "{e}");
        let e = err(mul(&a, &t(&[4]), &a));
        assert!(e.starts_with("[mul] a shares storage"), "{e}");
        // In place only with the very same view.
        let sq = t(&[4, 4]);
        let e = err(add(&sq.t().unwrap(), &t(&[4]), &sq));
        assert!(
            e.starts_with("[add] a shares storage with out but not its layout"),
            "{e}"
        );
        add(&a, &t(&[4]), &a).unwrap();
        assert_eq!(a.to_vec_f32().unwrap(), vec![2.0; 12]);
    }

    #[test]
    fn rejects_wrong_dtypes_shapes_and_broadcast_outputs() {
        let q = Tensor::zeros(&[1, 32], DType::Q8_0, &Default::default()).unwrap();
        let e = err(silu(&q, &t(&[1, 32])));
        assert!(e.starts_with("[silu] unsupported dtype q8_0"), "{e}");
        let e = err(scale(&t(&[2, 3]), 2.0, &q));
        assert!(e.starts_with("[scale] x is 2x3 but out is 1x32"), "{e}");
        let e = err(swiglu(&t(&[2, 3]), &t(&[3]), &t(&[2, 3])));
        assert!(e.starts_with("[swiglu] up is 3 but out is 2x3"), "{e}");
        let bcast = t(&[1, 3]).broadcast_as(&[4, 3]).unwrap();
        let e = err(add(&t(&[4, 3]), &t(&[3]), &bcast));
        assert!(e.starts_with("[add] out (4x3) has a broadcast"), "{e}");
        let x = t(&[4]);
        let e = err(swiglu(&x, &t(&[4]), &x));
        assert!(e.starts_with("[swiglu] gate shares storage"), "{e}");
    }

    #[test]
    fn reference_broadcasts_like_numpy() {
        let a = [1.0, 2.0, 3.0];
        let b = [10.0, 20.0];
        let got = reference_binary(Binary::Add, (&a, &[1, 3]), (&b, &[2, 1]), &[2, 3]);
        assert_eq!(got, vec![11.0, 12.0, 13.0, 21.0, 22.0, 23.0]);
        assert_eq!(
            reference_unary(Unary::Scale(-2.0), &a),
            vec![-2.0, -4.0, -6.0]
        );
        assert_eq!(reference_unary(Unary::Silu, &[0.0]), vec![0.0]);
    }
}
