//! Attention on CUDA (kernels/attention.cu): two passes over the visible
//! keys (online maximum and sum, then `P v` with the probabilities rounded to
//! the cache's dtype). Where K and V share a dtype, `attention_rows_<dtype>`:
//! a block of 256 threads per (query row, head), the keys split over the
//! threads; otherwise `attention`, one warp per (query row, head).

use super::{arg, dev_ptr, ptr_on, Module, Strided, COMMON};
use crate::cuda::KernelSource;
use crate::error::Result;
use crate::ops::attention::Attention;
use crate::tensor::{DType, Tensor};

const OP: &str = "attention";
const WARPS: usize = 4;
/// Lanes hold 8 elements each (`ATT_MAX_PER_LANE` in the kernel).
const MAX_HEAD_DIM: usize = 256;
/// `attention_rows`: threads a block (`AR_THREADS`).
const ROWS_THREADS: u32 = 256;
/// `attention_rows` keeps the scores in shared memory up to this many keys
/// (32 KB beside its 10 KB of static arrays, under the 48 KB a launch gets
/// without opting in); past it, step 2 computes them again.
const ROWS_CACHED_KEYS: usize = 8192;

pub(crate) static MODULE: Module = Module::new(|| {
    KernelSource::new(
        "attention",
        &[COMMON],
        include_str!("../kernels/attention.cu"),
    )
});

/// `METALLIC_ATTENTION=warp`: the one-warp kernel for every dtype (an A/B
/// of the two kernels), read once.
fn warp_only() -> bool {
    static WARP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WARP.get_or_init(|| std::env::var("METALLIC_ATTENTION").is_ok_and(|v| v == "warp"))
}

pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, p: &Attention, out: &Tensor) -> Result<()> {
    attention_at(q, k, v, p, out, None)
}

/// As [`attention`], with the first query row's position read on the device
/// where `at` is `Some((pos_ptr, max_keys))` (an i64; `p.pos_offset` is then
/// ignored and the visible keys never exceed `max_keys`, which sizes the
/// shared memory): a decode step replayed from a CUDA graph.
pub(crate) fn attention_at(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    p: &Attention,
    out: &Tensor,
    at: Option<(u64, usize)>,
) -> Result<()> {
    let pos_ptr = at.map_or(0, |a| a.0);
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
        arg(&pos_ptr),
    ];
    if k.dtype() == v.dtype() && pairs <= u32::MAX as usize && !warp_only() {
        let es = k.dtype().block_bytes();
        let (kptr_al, kst) = (kptr as usize + k.layout().offset() * es, k.strides());
        // 16-byte loads of a key row: contiguous along the head, every row
        // (position and KV head) starting 16-byte aligned, whole 16 bytes.
        let kvec = i32::from(
            kst[2] == 1
                && [kptr_al, kst[0] * es, kst[1] * es, head_dim * es]
                    .iter()
                    .all(|b| b % 16 == 0),
        );
        let n_keys = at.map_or(p.pos_offset + seq as usize, |a| a.1);
        let cached = i32::from(n_keys <= ROWS_CACHED_KEYS);
        let shared = if cached == 1 { 4 * n_keys as u32 } else { 0 };
        let mut a = [
            arg(&qptr),
            arg(&sq),
            arg(&kptr),
            arg(&sk),
            arg(&vptr),
            arg(&sv),
            arg(&optr),
            arg(&so),
            arg(&n_heads),
            arg(&n_kv),
            arg(&hd),
            arg(&pos_offset),
            arg(&p.scale),
            arg(&kvec),
            arg(&cached),
            arg(&pos_ptr),
        ];
        let func = match k.dtype() {
            DType::F32 => "attention_rows_f32",
            DType::F16 => "attention_rows_f16",
            _ => "attention_rows_bf16",
        };
        let grid = (pairs as u32, 1, 1);
        return MODULE.launch_shared(&dev, func, (grid, (ROWS_THREADS, 1, 1), shared), &mut a);
    }
    let grid = (pairs.div_ceil(WARPS) as u32, 1, 1);
    MODULE.launch(&dev, "attention", grid, (32 * WARPS as u32, 1, 1), &mut a)
}
