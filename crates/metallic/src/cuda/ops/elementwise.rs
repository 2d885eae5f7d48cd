//! Elementwise ops on CUDA: one thread per element over strided views that
//! the op layer has already broadcast to the output's shape.

use super::{arg, dev_ptr, grid_for, ptr_on, Module, Strided, COMMON};
use crate::cuda::KernelSource;
use crate::error::Result;
use crate::ops::elementwise::{Binary, Unary};
use crate::tensor::Tensor;

pub(crate) static MODULE: Module = Module::new(|| {
    KernelSource::new(
        "elementwise",
        &[COMMON],
        include_str!("../kernels/elementwise.cu"),
    )
});

const THREADS: u32 = 256;

pub fn binary(op: Binary, a: &Tensor, b: &Tensor, out: &Tensor) -> Result<()> {
    let name = op.name();
    let (dev, optr) = dev_ptr(name, out)?;
    let (aptr, bptr) = (ptr_on(name, &dev, a)?, ptr_on(name, &dev, b)?);
    let (sa, sb, so) = (
        Strided::of(name, a)?,
        Strided::of(name, b)?,
        Strided::of(name, out)?,
    );
    let code: i32 = match op {
        Binary::Add => 0,
        Binary::Mul => 1,
    };
    let n = out.elem_count() as i64;
    let mut p = [
        arg(&code),
        arg(&aptr),
        arg(&sa),
        arg(&bptr),
        arg(&sb),
        arg(&optr),
        arg(&so),
        arg(&n),
    ];
    MODULE.launch(
        &dev,
        "binary",
        grid_for(n as usize, THREADS),
        (THREADS, 1, 1),
        &mut p,
    )
}

pub fn unary(op: Unary, x: &Tensor, out: &Tensor) -> Result<()> {
    let name = op.name();
    let (dev, optr) = dev_ptr(name, out)?;
    let xptr = ptr_on(name, &dev, x)?;
    let (sx, so) = (Strided::of(name, x)?, Strided::of(name, out)?);
    let (code, scale): (i32, f32) = match op {
        Unary::Silu => (0, 1.0),
        Unary::Scale(s) => (1, s),
    };
    let n = out.elem_count() as i64;
    let mut p = [
        arg(&code),
        arg(&scale),
        arg(&xptr),
        arg(&sx),
        arg(&optr),
        arg(&so),
        arg(&n),
    ];
    MODULE.launch(
        &dev,
        "unary",
        grid_for(n as usize, THREADS),
        (THREADS, 1, 1),
        &mut p,
    )
}

pub fn swiglu(gate: &Tensor, up: &Tensor, out: &Tensor) -> Result<()> {
    const OP: &str = "swiglu";
    let (dev, optr) = dev_ptr(OP, out)?;
    let (gptr, uptr) = (ptr_on(OP, &dev, gate)?, ptr_on(OP, &dev, up)?);
    let (sg, su, so) = (
        Strided::of(OP, gate)?,
        Strided::of(OP, up)?,
        Strided::of(OP, out)?,
    );
    let n = out.elem_count() as i64;
    // Rows of unit-stride elements in all three views: a row at a time.
    let cols = out.shape().last().copied().unwrap_or(1);
    let unit = |t: &Tensor| t.strides().last().is_none_or(|&s| s == 1);
    if n > 0 && cols > 0 && unit(gate) && unit(up) && unit(out) {
        let (rows, cols) = (n / cols as i64, cols as i64);
        let mut p = [
            arg(&gptr),
            arg(&sg),
            arg(&uptr),
            arg(&su),
            arg(&optr),
            arg(&so),
            arg(&rows),
            arg(&cols),
        ];
        let grid = (
            (cols as usize)
                .div_ceil(super::ROW_UNROLL * THREADS as usize)
                .min(64) as u32,
            rows.min(65535) as u32,
            1,
        );
        return MODULE.launch(&dev, "swiglu_rows", grid, (THREADS, 1, 1), &mut p);
    }
    let mut p = [
        arg(&gptr),
        arg(&sg),
        arg(&uptr),
        arg(&su),
        arg(&optr),
        arg(&so),
        arg(&n),
    ];
    MODULE.launch(
        &dev,
        "swiglu",
        grid_for(n as usize, THREADS),
        (THREADS, 1, 1),
        &mut p,
    )
}
