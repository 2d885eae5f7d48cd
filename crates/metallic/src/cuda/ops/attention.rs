//! Attention on CUDA: one warp per (query row, head), two passes over the
//! visible keys (online maximum and sum, then `P v` with the probabilities
//! rounded to the cache's dtype; see kernels/attention.cu).

use super::{arg, dev_ptr, ptr_on, Module, Strided, COMMON};
use crate::cuda::KernelSource;
use crate::error::Result;
use crate::ops::attention::Attention;
use crate::tensor::Tensor;

const OP: &str = "attention";
const WARPS: usize = 4;
/// Lanes hold 8 elements each (`ATT_MAX_PER_LANE` in the kernel).
const MAX_HEAD_DIM: usize = 256;

pub(crate) static MODULE: Module = Module::new(|| {
    KernelSource::new(
        "attention",
        &[COMMON],
        include_str!("../kernels/attention.cu"),
    )
});

pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, p: &Attention, out: &Tensor) -> Result<()> {
    let (seq, n_heads, head_dim) = (q.dim(0), q.dim(1), q.dim(2));
    if head_dim > MAX_HEAD_DIM {
        crate::bail!(
            OP,
            "head_dim {head_dim} > {MAX_HEAD_DIM} is not supported by the CUDA kernel"
        );
    }
    let (dev, optr) = dev_ptr(OP, out)?;
    let (qptr, kptr, vptr) = (
        ptr_on(OP, &dev, q)?,
        ptr_on(OP, &dev, k)?,
        ptr_on(OP, &dev, v)?,
    );
    let (sq, sk, sv, so) = (
        Strided::of(OP, q)?,
        Strided::of(OP, k)?,
        Strided::of(OP, v)?,
        Strided::of(OP, out)?,
    );
    let pairs = seq * n_heads;
    let (seq, n_heads, n_kv, hd) = (seq as i32, n_heads as i32, k.dim(1) as i32, head_dim as i32);
    let pos_offset = p.pos_offset as i64;
    let mut a = [
        arg(&qptr),
        arg(&sq),
        arg(&kptr),
        arg(&sk),
        arg(&vptr),
        arg(&sv),
        arg(&optr),
        arg(&so),
        arg(&seq),
        arg(&n_heads),
        arg(&n_kv),
        arg(&hd),
        arg(&pos_offset),
        arg(&p.scale),
    ];
    let grid = (pairs.div_ceil(WARPS) as u32, 1, 1);
    MODULE.launch(&dev, "attention", grid, (32 * WARPS as u32, 1, 1), &mut a)
}
