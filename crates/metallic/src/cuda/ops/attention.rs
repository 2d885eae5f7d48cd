//! Attention on CUDA (kernels/attention.cu): two passes over the visible
//! keys (online maximum and sum, then `P v` with the probabilities rounded to
//! the cache's dtype). Where K and V share a dtype, `attention_rows_<dtype>`:
//! a block of 256 threads per (query row, head), the keys split over the
//! threads, or, where few (row, head) pairs see many keys (decode), the
//! `attention_split_*` kernels: the keys split over blocks of 256 as well;
//! otherwise `attention`, one warp per (query row, head).
//!
//! A prompt (at least UNFUSED_MIN_ROWS query rows) on an F16 or BF16 cache
//! takes the op's unfused composition instead
//! (`ops::attention::attention_unfused`): the queries rounded to the cache's
//! dtype, `q k^T` and `P v` on the tensor-core GEMMs, the causal softmax
//! between them, with the same roundings as the kernels.

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

/// `METALLIC_ATTENTION`: `warp`, the one-warp kernel for every dtype;
/// `rows`, never the split-keys kernels; `fused`, the kernels for prompts
/// too (A/B of the kernels); read once.
fn forced() -> Option<&'static str> {
    static KIND: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    KIND.get_or_init(|| std::env::var("METALLIC_ATTENTION").ok())
        .as_deref()
        .filter(|k| ["warp", "rows", "fused"].contains(k))
}

/// Query rows from which a prompt takes the unfused path. On the 7B's heads
/// (28 / 4 of 128, F16 cache, from position 0) the kernels took 67 us at
/// 128 rows against the unfused path's 165, and 213 at 256 against 167
/// (H100, op_bench, bench/results/2026-12-07-nvidia-h100-session23-call4-
/// session.log); the unfused path's launches cost about 140 us whatever
/// the length.
pub const UNFUSED_MIN_ROWS: usize = 256;

/// Keys a block of the split-keys kernels takes (`AR_THREADS`).
const SPLIT_KEYS: usize = 256;

pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, p: &Attention, out: &Tensor) -> Result<()> {
    if q.dim(0) >= UNFUSED_MIN_ROWS
        && matches!(k.dtype(), DType::F16 | DType::BF16)
        && v.dtype() == k.dtype()
        && forced().is_none()
    {
        return crate::ops::attention::unfused(q, k, v, p, out);
    }
    attention_at(q, k, v, p, out, None)
}

/// The kernels alone, at any number of query rows (op_bench's A/B against
/// the unfused path).
pub fn attention_fused(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    p: &Attention,
    out: &Tensor,
) -> Result<()> {
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
    if k.dtype() == v.dtype() && pairs <= u32::MAX as usize && forced() != Some("warp") {
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
        let dt = match k.dtype() {
            DType::F32 => "f32",
            DType::F16 => "f16",
            _ => "bf16",
        };
        // Few (row, head) pairs over many keys (decode): the keys split
        // over blocks, so that every SM takes part.
        if 2 * pairs <= dev.multiprocessors()
            && n_keys > SPLIT_KEYS
            && forced().is_none()
            && n_keys <= i32::MAX as usize
        {
            let chunks = n_keys.div_ceil(SPLIT_KEYS);
            let sc = dev.alloc(pairs * n_keys * 4)?;
            let st = dev.alloc(pairs * chunks * 16)?;
            let pa = dev.alloc(pairs * chunks * head_dim * 4)?;
            let (scp, stp, pap) = (sc.ptr(), st.ptr(), pa.ptr());
            let (max_keys, chunks32) = (n_keys as i32, chunks as i32);
            let grid = (chunks as u32, pairs as u32, 1);
            let block = (ROWS_THREADS, 1, 1);
            let mut a = [
                arg(&qptr),
                arg(&sq),
                arg(&kptr),
                arg(&sk),
                arg(&scp),
                arg(&stp),
                arg(&n_heads),
                arg(&n_kv),
                arg(&hd),
                arg(&pos_offset),
                arg(&p.scale),
                arg(&kvec),
                arg(&max_keys),
                arg(&pos_ptr),
            ];
            let f = format!("attention_split_scores_{dt}");
            MODULE.launch(&dev, &f, grid, block, &mut a)?;
            let mut a = [
                arg(&vptr),
                arg(&sv),
                arg(&scp),
                arg(&stp),
                arg(&pap),
                arg(&n_heads),
                arg(&n_kv),
                arg(&hd),
                arg(&pos_offset),
                arg(&max_keys),
                arg(&pos_ptr),
            ];
            MODULE.launch(
                &dev,
                &format!("attention_split_pv_{dt}"),
                grid,
                block,
                &mut a,
            )?;
            let mut a = [
                arg(&pap),
                arg(&optr),
                arg(&so),
                arg(&n_heads),
                arg(&chunks32),
                arg(&hd),
                arg(&pos_offset),
                arg(&pos_ptr),
            ];
            let threads = (head_dim.div_ceil(32) * 32) as u32;
            let grid = (pairs as u32, 1, 1);
            return MODULE.launch(&dev, "attention_split_sum", grid, (threads, 1, 1), &mut a);
        }
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
        let func = format!("attention_rows_{dt}");
        let grid = (pairs as u32, 1, 1);
        return MODULE.launch_shared(&dev, &func, (grid, (ROWS_THREADS, 1, 1), shared), &mut a);
    }
    let grid = (pairs.div_ceil(WARPS) as u32, 1, 1);
    MODULE.launch(&dev, "attention", grid, (32 * WARPS as u32, 1, 1), &mut a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Device;
    use crate::optest::{nmse, Rng};

    /// With the position read on the device (a decode graph's replay:
    /// kernels sized for the whole cache, `p.pos_offset` ignored), the
    /// result is the op's at that position: caches that fit one block of
    /// keys, and caches past it (the split-keys kernels, their chunks past
    /// the visible keys idle) with few and many keys visible. Prints SKIP
    /// without a GPU.
    #[test]
    fn position_read_on_the_device_gives_the_ops_result() {
        let Some(dev) = crate::cuda::default_device() else {
            println!("SKIP attention with a device position: no CUDA device");
            return;
        };
        let gpu = Device::Cuda(dev.clone());
        let (heads, kv_heads, hd) = (14, 2, 64);
        let mut rng = Rng::new(11);
        for (ctx, pos) in [(80, 37), (1000, 37), (1000, 700), (1000, 999)] {
            let q = Tensor::from_f32(&rng.vec(heads * hd), &[1, heads, hd]).unwrap();
            let cache = |rng: &mut Rng| {
                Tensor::from_f32(&rng.vec(ctx * kv_heads * hd), &[ctx, kv_heads, hd])
                    .and_then(|t| t.to_dtype(DType::F16))
                    .and_then(|t| t.to_device(&gpu))
                    .unwrap()
            };
            let (k, v) = (cache(&mut rng), cache(&mut rng));
            let q = q.to_device(&gpu).unwrap();
            let p = Attention {
                scale: 0.125,
                pos_offset: pos,
            };
            let want = Tensor::zeros(&[1, heads, hd], DType::F32, &gpu).unwrap();
            let (kv, vv) = (
                k.narrow(0, 0, pos + 1).unwrap(),
                v.narrow(0, 0, pos + 1).unwrap(),
            );
            attention(&q, &kv, &vv, &p, &want).unwrap();
            let got = Tensor::zeros(&[1, heads, hd], DType::F32, &gpu).unwrap();
            let at = dev.upload(&(pos as i64).to_le_bytes()).unwrap();
            let p0 = Attention { pos_offset: 0, ..p };
            attention_at(&q, &k, &v, &p0, &got, Some((at.ptr(), ctx))).unwrap();
            let (got, want) = (got.to_vec_f32().unwrap(), want.to_vec_f32().unwrap());
            let e = nmse(&got, &want);
            println!("ctx {ctx}, position {pos}: nmse {e:.2e}");
            // Another kernel may sum in another order and land on the other
            // side of a probability's f16 rounding.
            assert!(e < 1e-6, "ctx {ctx}, position {pos}: nmse {e:.2e}");
        }
    }
}
