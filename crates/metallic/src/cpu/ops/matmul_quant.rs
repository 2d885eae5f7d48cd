//! Quantized-weight matmul on the CPU, `y = x * W^T`, as llama.cpp's CPU
//! backend computes it: integer dot products of weight blocks with
//! activations quantized to an 8-bit block format.
//!
//! Treatment of activations: each row of `op(A)` (F32, F16 or BF16, any
//! strides) is read as f32 (F16/BF16 widen exactly) and quantized once per
//! batch matrix, before the parallel loop, as llama.cpp's CPU backend
//! quantizes them at run time (`quant::quantize_activation_row`), to the
//! weight's `vec_dot_type`: Q8_0 for Q4_0/Q5_0/Q8_0 (and Q8_1) weights,
//! Q8_1 for Q4_1/Q5_1, Q8_K for the K-quants. That rounds each activation to
//! one of 255 levels of its block's absolute maximum (a relative error of
//! about 2^-9 per element), the same approximation llama.cpp makes; the
//! op tests budget for it. Accumulation is exact in i32 within a block and
//! f32 across blocks. Float weights (never dispatched here, but accepted)
//! use f32 activations and f32 products.
//!
//! Two paths:
//! - SIMD (x86-64 AVX2 or AVX-512 VNNI, `x86.rs`; aarch64 NEON or NEON with
//!   `dotprod`, `neon.rs`; the level chosen at run time) for
//!   Q4_0, Q4_1, Q5_0, Q8_0, Q4_K and Q6_K: activations go into a reused
//!   [`panel::Panel`] (the same quantized values, laid out for vector loads);
//!   rayon tasks take chunks of weight rows, and within a chunk each decoded
//!   weight block is dotted with a tile of up to `Isa::MR` activation rows
//!   (prefill decodes each block once per tile, not once per row). Its
//!   product is `[m, n]`.
//! - The scalar reference (`quant::dot`), for every other format and CPU:
//!   parallel over weight rows, each dotted with every activation row. Its
//!   product is `[n, m]`.
//!
//! The SIMD kernels are tested against the scalar `vec_dot_*` in
//! `simd_tests.rs` (the aarch64 ones under emulation: scripts/test_aarch64.sh).

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use std::cell::RefCell;

use bytemuck::Pod;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::ops::matmul::MatmulProblem;
use crate::quant::{self, dot};
use crate::tensor::{read_f32, DType};

/// The per-architecture tile driver, written once: `gemm_rows_generic`
/// walks the activation tiles and `rows_tile` the weight rows of one tile,
/// calling the module's kernels `q4_0` .. `q6_k` (each `<I, R, NW>`, `NW`
/// weight rows against an `R`-row tile) and its `prefetch_rows`. Expanded
/// inside `x86` and `neon`, where those names resolve.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
macro_rules! tile_driver {
    // `$d` is a literal `$` for the macros the driver defines inside.
    ($d:tt) => {
        #[inline(always)]
        #[allow(clippy::too_many_arguments)]
        unsafe fn gemm_rows_generic<I: Isa>(
            dtype: DType,
            w: *const u8,
            row_bytes: usize,
            rows: usize,
            k: usize,
            tiles: &[ActTile],
            out: *mut f32,
            ldo: usize,
        ) {
            let mut i0 = 0;
            for tile in tiles {
                let o = out.add(i0 * ldo);
                macro_rules! tile {
                    ($d($d n:literal)*) => {
                        match tile.rows {
                            $d($d n if $d n <= I::MR => rows_tile::<I, $d n>(dtype, w, row_bytes, rows, k, tile, o, ldo),)*
                            n => unreachable!("a tile of {n} rows for a level of at most {}", I::MR),
                        }
                    };
                }
                tile!(1 2 3 4 5 6 7 8);
                i0 += tile.rows;
            }
        }

        #[inline(always)]
        #[allow(clippy::too_many_arguments)]
        unsafe fn rows_tile<I: Isa, const R: usize>(
            dtype: DType,
            w: *const u8,
            row_bytes: usize,
            rows: usize,
            k: usize,
            a: &ActTile,
            out: *mut f32,
            ldo: usize,
        ) {
            // Decode (one activation row) takes 4 weight rows at a time, so that 4
            // independent accumulator chains hide the FMA latency and each
            // activation block is loaded once for them.
            macro_rules! each_row {
                ($d blk:ty, $d kern:ident, $d elems:expr) => {{
                    let nb = k / $d elems;
                    let row = |j: usize| w.add(j * row_bytes) as *const $d blk;
                    let mut j = 0;
                    if R == 1 {
                        while j + 4 <= rows {
                            prefetch_rows(w, row_bytes, j + 8, rows);
                            let v = $d kern::<I, R, 4>([row(j), row(j + 1), row(j + 2), row(j + 3)], nb, a);
                            for (wi, vr) in v.iter().enumerate() {
                                *out.add(j + wi) = vr[0];
                            }
                            j += 4;
                        }
                    }
                    while j < rows {
                        let [v] = $d kern::<I, R, 1>([row(j)], nb, a);
                        for (r, x) in v.iter().enumerate() {
                            *out.add(r * ldo + j) = *x;
                        }
                        j += 1;
                    }
                }};
            }
            match dtype {
                DType::Q4_0 => each_row!(BlockQ4_0, q4_0, QK),
                DType::Q4_1 => each_row!(BlockQ4_1, q4_1, QK),
                DType::Q5_0 => each_row!(BlockQ5_0, q5_0, QK),
                DType::Q8_0 => each_row!(BlockQ8_0, q8_0, QK),
                DType::Q4K => each_row!(BlockQ4K, q4_k, QK_K),
                DType::Q6K => each_row!(BlockQ6K, q6_k, QK_K),
                _ => unreachable!("gemm_rows called for {dtype}, which `supports` rejects"),
            }
        }
    };
}

#[cfg(target_arch = "aarch64")]
mod neon;
// The panel feeds the SIMD kernels, which exist for x86-64 and aarch64.
#[cfg(target_arch = "x86_64")]
mod packed;
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
mod panel;
#[cfg(test)]
mod simd_tests;
#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(target_arch = "x86_64")]
pub(crate) use packed::PackedWeights;
/// Weights repacked for the CPU's kernels; nothing is repacked on this
/// architecture.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) struct PackedWeights;

/// This architecture's kernels: each module has the same interface (`Level`,
/// `supports`, `tile_rows`, `offset`, `gemm_rows`), which the SIMD driver
/// below and `simd_tests.rs` use.
#[cfg(target_arch = "aarch64")]
use neon as arch;
#[cfg(target_arch = "x86_64")]
use x86 as arch;

const OP: &str = "matmul";

/// How a product buffer is laid out: element `(i, j)` is at
/// `i * row_stride + j * col_stride`.
pub(crate) struct ProductLayout {
    pub row_stride: usize,
    pub col_stride: usize,
}

/// The F32 product of one batch matrix into `out` (resized; reused across
/// calls by the caller), laid out as the returned strides say.
/// `packed`: the weight storage's repacked copy, if it has one (used when
/// it was packed from exactly this batch's view).
pub(crate) fn quantized(
    p: &MatmulProblem,
    a: &[u8],
    a_off: usize,
    b: &[u8],
    b_off: usize,
    packed: Option<&PackedWeights>,
    out: &mut Vec<f32>,
) -> Result<ProductLayout> {
    let x = Activations { p, a, a_off };
    let w = Weights { p, b, b_off };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = packed;
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    if let Some(level) = simd_level() {
        if arch::supports(p.b.dtype) && p.k > 0 {
            #[cfg(target_arch = "x86_64")]
            let packed = packed.filter(|pw| {
                level == arch::Level::Avx512Vnni
                    && (pw.dtype, pw.n, pw.k) == (p.b.dtype, p.n, p.k)
                    && pw.origin == (b_off, p.b.col_stride)
            });
            #[cfg(not(target_arch = "x86_64"))]
            let packed: Option<&PackedWeights> = None;
            if let Some(layout) = simd(&x, &w, level, packed, out)? {
                return Ok(layout);
            }
        }
    }
    let data = match p.b.dtype {
        DType::F32 | DType::F16 | DType::BF16 => float_weights(&x, &w),
        DType::Q4_0 => blocks(&x, &w, DType::Q8_0, dot::vec_dot_q4_0_q8_0),
        DType::Q5_0 => blocks(&x, &w, DType::Q8_0, dot::vec_dot_q5_0_q8_0),
        DType::Q8_0 => blocks(&x, &w, DType::Q8_0, dot::vec_dot_q8_0_q8_0),
        DType::Q8_1 => blocks(&x, &w, DType::Q8_0, dot::vec_dot_q8_1_q8_0),
        DType::Q4_1 => blocks(&x, &w, DType::Q8_1, dot::vec_dot_q4_1_q8_1),
        DType::Q5_1 => blocks(&x, &w, DType::Q8_1, dot::vec_dot_q5_1_q8_1),
        DType::Q2K => blocks(&x, &w, DType::Q8K, dot::vec_dot_q2_k_q8_k),
        DType::Q3K => blocks(&x, &w, DType::Q8K, dot::vec_dot_q3_k_q8_k),
        DType::Q4K => blocks(&x, &w, DType::Q8K, dot::vec_dot_q4_k_q8_k),
        DType::Q5K => blocks(&x, &w, DType::Q8K, dot::vec_dot_q5_k_q8_k),
        DType::Q6K => blocks(&x, &w, DType::Q8K, dot::vec_dot_q6_k_q8_k),
        DType::Q8K => blocks(&x, &w, DType::Q8K, dot::vec_dot_q8_k_q8_k),
    }?;
    *out = data;
    Ok(ProductLayout {
        row_stride: 1,
        col_stride: p.m,
    })
}

/// Repacks a quantized weight matrix `[n, k]` (a 2-D tensor with unit
/// column stride) for this CPU's fastest kernels and attaches the copy to
/// its storage, where `quantized` finds it; the storage's bytes are kept
/// (other views, e.g. a tied embedding's row lookups, read them). Returns
/// whether it packed: only on x86-64 with AVX-512 VNNI, for Q4_0, Q4_1,
/// Q5_0, Q8_0, Q4_K and Q6_K, and not when `METALLIC_CPU_REPACK=0`.
pub(crate) fn prepack(w: &crate::tensor::Tensor) -> Result<bool> {
    #[cfg(target_arch = "x86_64")]
    {
        let dtype = w.dtype();
        let enabled = std::env::var("METALLIC_CPU_REPACK").map_or(true, |v| v != "0");
        if !enabled
            || simd_level() != Some(arch::Level::Avx512Vnni)
            || !packed::supports(dtype)
            || w.shape().len() != 2
            || w.strides()[1] != 1
        {
            return Ok(false);
        }
        let Ok(store) = w.cpu_storage("prepack") else {
            return Ok(false);
        };
        let (n, k, be) = (w.shape()[0], w.shape()[1], dtype.block_elems());
        let (off, stride) = (w.layout().offset(), w.strides()[0]);
        if off % be != 0 || stride % be != 0 {
            return Ok(false);
        }
        let bytes = store.read();
        let start = off / be * dtype.block_bytes();
        let row_bytes = stride / be * dtype.block_bytes();
        let Some(src) = bytes.bytes().get(start..) else {
            return Ok(false);
        };
        let Some(pw) = packed::pack(dtype, src, row_bytes, n, k, (off, stride)) else {
            return Ok(false);
        };
        // The matmul reads only the packed copy now.
        bytes.release_pages();
        drop(bytes);
        log::debug!("[matmul] repacked {dtype} [{n}, {k}] ({} bytes)", pw.len());
        store.set_derived(std::sync::Arc::new(pw));
        Ok(true)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = w;
        Ok(false)
    }
}

/// The SIMD level this CPU runs, detected once; `None` leaves every format
/// on the scalar path.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn simd_level() -> Option<arch::Level> {
    static LEVEL: std::sync::OnceLock<Option<arch::Level>> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        let level = arch::Level::available().first().copied();
        log::debug!(
            "[matmul] quantized kernels: {}",
            level.map_or("scalar", |l| l.name())
        );
        level
    })
}

/// Scratch reused by every quantized matmul on a thread: the activation
/// panel and its row pointers.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[derive(Default)]
struct Scratch {
    panel: panel::Panel,
    tiles: Vec<panel::ActTile>,
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

/// A raw output pointer shared by tasks that write disjoint columns.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint elements (their own weight rows' columns).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
unsafe impl Send for OutPtr {}
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
unsafe impl Sync for OutPtr {}

/// The SIMD path; `None` when the weight layout does not suit it (rows not
/// evenly spaced or not aligned for the block type), leaving the scalar path.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
// `packed` (AVX-512 repacked rows) is read only on x86_64.
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
fn simd(
    x: &Activations,
    w: &Weights,
    level: arch::Level,
    packed: Option<&PackedWeights>,
    out: &mut Vec<f32>,
) -> Result<Option<ProductLayout>> {
    let (m, n, k) = (x.p.m, x.p.n, x.p.k);
    let dtype = w.p.b.dtype;
    let act = quant::vec_dot_type(dtype);
    if k % act.block_elems() != 0 || k % dtype.block_elems() != 0 {
        return Ok(None);
    }
    // Rows are `col_stride` elements apart: check the first and last (bounds
    // and block boundaries) and derive the byte stride.
    let first = w.row(0)?;
    w.row(n - 1)?;
    let be = dtype.block_elems();
    if !w.p.b.col_stride.is_multiple_of(be) {
        return Ok(None);
    }
    let stride = w.p.b.col_stride / be * dtype.block_bytes();
    // An address, not a pointer, so that the tasks' closure is Sync.
    let base = first.as_ptr() as usize;
    // Block types hold f16 (or f32, Q8_K only) fields: 2-aligned, 4 for Q8_K.
    let align = if dtype == DType::Q8K { 4 } else { 2 };
    if !base.is_multiple_of(align) || !stride.is_multiple_of(align) && n > 1 {
        return Ok(None);
    }
    let fmt = panel::ActFormat::for_weight(dtype);
    // The repacked weights' quants carry their own offsets, and their
    // kernels take tiles of up to 8 rows.
    #[cfg(target_arch = "x86_64")]
    let (offset, mr) = match packed {
        Some(_) => (packed::offset(dtype), panel::LANES),
        None => (arch::offset(dtype), arch::tile_rows(level)),
    };
    #[cfg(not(target_arch = "x86_64"))]
    let (offset, mr) = (arch::offset(dtype), arch::tile_rows(level));
    // Taken out of the thread-local for the call, not borrowed: while this
    // thread waits in the parallel loop below, rayon may run another task on
    // it (another sequence's matmul), which then finds an empty scratch
    // rather than a borrowed one.
    let mut scratch = SCRATCH.with(|s| s.take());
    let r = (|| -> Result<()> {
        let s = &mut scratch;
        s.panel.fill(fmt, offset, m, k, |i, buf| x.row(i, buf))?;
        s.panel.tiles(mr, &mut s.tiles);
        out.clear();
        out.resize(m * n, 0.0);
        let tiles = &s.tiles;
        let o = OutPtr(out.as_mut_ptr());
        let threads = rayon::current_num_threads().max(1);
        #[cfg(target_arch = "x86_64")]
        if let Some(pw) = packed {
            // Tasks take a few groups of 16 weight rows each: four per
            // thread for balance in prefill; one per thread in decode (M of
            // a tile or less), where every group costs the same and each
            // further task is another steal (a 192 x 576 SmolLM2 projection
            // took 6.7 us on 2 threads in 6 tasks, against 3.7 us on one).
            let groups = packed::groups(pw);
            let per_thread = if m <= panel::LANES { 1 } else { 4 };
            let chunk = groups.div_ceil(threads * per_thread).max(1);
            let run = |t: usize| {
                let g0 = t * chunk;
                #[allow(clippy::redundant_locals)]
                let o = o;
                // SAFETY: `packed` was kept only where the level is
                // Avx512Vnni and the packing matches this matmul's dtype, n
                // and k; the panel was filled with the packed offset and
                // tiled by 8; `out` has m * n elements.
                unsafe { packed::gemm_groups(pw, g0, (g0 + chunk).min(groups), tiles, o.0, n) }
            };
            let tasks = groups.div_ceil(chunk);
            if tasks == 1 {
                run(0);
            } else {
                (0..tasks).into_par_iter().for_each(run);
            }
            return Ok(());
        }
        // Chunks of weight rows: a few per thread for balance, at least 8
        // rows so that per-task overhead stays small in decode.
        let chunk = n.div_ceil(threads * 4).clamp(8, 256);
        let tasks = n.div_ceil(chunk);
        let run = |t: usize| {
            let j0 = t * chunk;
            let nr = chunk.min(n - j0);
            // Rebinding makes the closure capture the whole `Send` wrapper
            // rather than (edition 2021) its raw-pointer field alone.
            #[allow(clippy::redundant_locals)]
            let o = o;
            // SAFETY: the level was detected on this CPU; rows j0..j0+nr lie
            // in the weight storage (first and last row checked above, evenly
            // spaced) and aligned for the block type; the panel tiles hold m rows of k
            // quantized elements in `dtype`'s activation format; `out` has
            // m * n elements and this task writes only columns j0..j0+nr.
            unsafe {
                arch::gemm_rows(
                    level,
                    dtype,
                    (base + j0 * stride) as *const u8,
                    stride,
                    nr,
                    k,
                    tiles,
                    o.0.add(j0),
                    n,
                )
            }
        };
        if tasks == 1 {
            run(0);
        } else {
            (0..tasks).into_par_iter().for_each(run);
        }
        Ok(())
    })();
    SCRATCH.with(|s| *s.borrow_mut() = scratch);
    r?;
    Ok(Some(ProductLayout {
        row_stride: n,
        col_stride: 1,
    }))
}

/// `op(A)` of one batch: `[m, k]` floats with arbitrary strides.
struct Activations<'a> {
    p: &'a MatmulProblem,
    a: &'a [u8],
    a_off: usize,
}

impl Activations<'_> {
    fn row(&self, i: usize, out: &mut [f32]) {
        let v = &self.p.a;
        if v.dtype == DType::F32 && v.col_stride == 1 {
            let start = self.a_off + i * v.row_stride;
            out.copy_from_slice(&crate::tensor::cast::<f32>(self.a)[start..start + out.len()]);
            return;
        }
        for (l, o) in out.iter_mut().enumerate() {
            *o = read_f32(
                self.a,
                v.dtype,
                self.a_off + i * v.row_stride + l * v.col_stride,
            );
        }
    }
}

/// `W` of one batch: `[n, k]`, given to matmul as `B = W^T` (`[k, n]` with
/// unit row stride, so each weight row runs along storage).
struct Weights<'a> {
    p: &'a MatmulProblem,
    b: &'a [u8],
    b_off: usize,
}

impl Weights<'_> {
    /// The bytes of weight row `j` (whole blocks, validated in bounds).
    fn row(&self, j: usize) -> Result<&[u8]> {
        let dtype = self.p.b.dtype;
        let (be, k) = (dtype.block_elems(), self.p.k);
        let elem = self.b_off + j * self.p.b.col_stride;
        if !elem.is_multiple_of(be) || self.p.b.row_stride != 1 {
            return Err(Error::op(
                OP,
                format!(
                    "{dtype} weight row {j} does not start on a block boundary (element {elem})"
                ),
            ));
        }
        let start = elem / be * dtype.block_bytes();
        let len = dtype.bytes_for(k).unwrap_or(usize::MAX);
        start
            .checked_add(len)
            .and_then(|end| self.b.get(start..end))
            .ok_or_else(|| {
                Error::op(
                    OP,
                    format!(
                        "{dtype} weight row {j} lies outside its {} bytes of storage",
                        self.b.len()
                    ),
                )
            })
    }
}

/// Every activation row quantized to `act` (`m` rows of `k / block` blocks).
fn quantize_activations<A: Pod>(x: &Activations, act: DType) -> Result<Vec<A>> {
    let (m, k) = (x.p.m, x.p.k);
    let nb = k / act.block_elems();
    let mut out: Vec<A> = vec![A::zeroed(); m * nb];
    let mut row = vec![0.0f32; k];
    for (i, dst) in out.chunks_exact_mut(nb.max(1)).enumerate().take(m) {
        x.row(i, &mut row);
        quant::quantize_activation_row(act, &row, bytemuck::cast_slice_mut(dst))?;
    }
    Ok(out)
}

fn blocks<W: Pod + Sync, A: Pod + Send + Sync>(
    x: &Activations,
    w: &Weights,
    act: DType,
    dot: fn(&[W], &[A]) -> f32,
) -> Result<Vec<f32>> {
    let (m, n, k) = (x.p.m, x.p.n, x.p.k);
    if k % act.block_elems() != 0 || k % w.p.b.dtype.block_elems() != 0 {
        return Err(Error::op(
            OP,
            format!(
                "k = {k} is not a whole number of {} / {act} blocks",
                w.p.b.dtype
            ),
        ));
    }
    if k == 0 {
        return Ok(vec![0.0; n * m]);
    }
    let xq: Vec<A> = quantize_activations(x, act)?;
    let nb = k / act.block_elems();
    let mut out = vec![0.0f32; n * m];
    out.par_chunks_mut(m)
        .enumerate()
        .try_for_each(|(j, out_col)| -> Result<()> {
            // Mapped GGUF weights are aligned for W; other slices are copied.
            let row = quant::typed_blocks::<W>(w.row(j)?);
            for (o, xi) in out_col.iter_mut().zip(xq.chunks_exact(nb)) {
                *o = dot(&row, xi);
            }
            Ok(())
        })?;
    Ok(out)
}

/// Float weights with any strides: f32 products, one weight row at a time.
fn float_weights(x: &Activations, w: &Weights) -> Result<Vec<f32>> {
    let (m, n, k) = (x.p.m, x.p.n, x.p.k);
    let mut xs = vec![0.0f32; m * k];
    for (i, row) in xs.chunks_exact_mut(k.max(1)).enumerate().take(m) {
        x.row(i, row);
    }
    let bv = &w.p.b;
    let mut out = vec![0.0f32; n * m];
    out.par_chunks_mut(m).enumerate().for_each(|(j, out_col)| {
        let wrow: Vec<f32> = (0..k)
            .map(|l| {
                read_f32(
                    w.b,
                    bv.dtype,
                    w.b_off + l * bv.row_stride + j * bv.col_stride,
                )
            })
            .collect();
        for (i, o) in out_col.iter_mut().enumerate() {
            *o = xs[i * k..(i + 1) * k]
                .iter()
                .zip(&wrow)
                .map(|(a, b)| a * b)
                .sum();
        }
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::ops::matmul::{matmul_new, reference, Matmul, MatmulBackend};
    use crate::optest::nmse;
    use crate::quant::{dequantize_row, random_row};
    use crate::tensor::{DType, HostBytes, Tensor};

    /// NMSE budgets against dequantize-then-F32-matmul. The weights are exact
    /// on both sides, so the error is that of quantizing the activations to
    /// 8 bits: about 1e-5 for a long dot product, more where the weights'
    /// offsets (Q4_1, Q5_1, the mins of Q2_K/Q4_K/Q5_K) make the output a
    /// small difference of large terms. llama.cpp's test-backend-ops allows
    /// 5e-4 for quantized matmul; a wrong scale or bit gives O(1).
    fn budget(dtype: DType) -> f64 {
        match dtype {
            DType::F32 | DType::F16 | DType::BF16 => 1e-10,
            _ => 5e-4,
        }
    }

    /// One case: `x [batch, m, k]` (F32 or, strided, a transposed view) times
    /// `W^T` with `W [n, k]` random blocks of `dtype`.
    fn check(dtype: DType, m: usize, n: usize, k: usize, seed: u64, transposed_x: bool) {
        let w_bytes = random_row(dtype, n * k, seed);
        let w = Tensor::from_raw(HostBytes::from_bytes(&w_bytes), &[n, k], dtype).unwrap();
        let xs: Vec<f32> = (0..m * k)
            .map(|i| (((i as u64 * 2654435761 + seed) % 1000) as f32 - 500.0) / 250.0)
            .collect();
        let x = if transposed_x {
            // Store x^T [k, m] and view it transposed: non-unit column stride.
            let mut xt = vec![0.0; m * k];
            for i in 0..m {
                for l in 0..k {
                    xt[l * m + i] = xs[i * k + l];
                }
            }
            Tensor::from_f32(&xt, &[k, m]).unwrap().t().unwrap()
        } else {
            Tensor::from_f32(&xs, &[m, k]).unwrap()
        };
        let p = Matmul {
            backend: MatmulBackend::Native,
            ..Default::default()
        };
        let got = matmul_new(&x, &w.t().unwrap(), DType::F32, &p)
            .unwrap()
            .to_vec_f32()
            .unwrap();
        let wt = w.t().unwrap().to_vec_f32().unwrap();
        let want = reference(
            &xs,
            &wt,
            None,
            None,
            (1, m, n, k),
            1.0,
            0.0,
            Default::default(),
        );
        let err = nmse(&got, &want);
        println!("{dtype} m={m} n={n} k={k} transposed_x={transposed_x}: nmse {err:.2e}");
        assert!(
            err <= budget(dtype),
            "{dtype} m={m} n={n} k={k} transposed_x={transposed_x}: nmse {err:.3e} > {:.1e}",
            budget(dtype)
        );
    }

    #[test]
    fn quantized_matmul_matches_dequantized_f32_for_every_format() {
        for (i, dtype) in DType::ALL.into_iter().enumerate() {
            let be = dtype.block_elems().max(32);
            let seed = 10 + i as u64;
            // GEMV, M > 1, an odd number of blocks (K tail for SIMD widths),
            // odd N, and a strided activation view.
            check(dtype, 1, 7, be, seed, false);
            check(dtype, 5, 3, 3 * be, seed + 1, false);
            check(dtype, 3, 17, 5 * be, seed + 2, true);
            if dtype.block_elems() == 32 {
                // Non-power-of-two K: 7 blocks of 32.
                check(dtype, 4, 9, 7 * 32, seed + 3, false);
            }
        }
    }

    /// The dispatcher sends float weights to the float kernels; called
    /// directly, this kernel still computes them (f32 products).
    #[test]
    fn float_weights_called_directly_match_the_reference() {
        use crate::ops::matmul::validate;
        let (m, n, k) = (3, 4, 5);
        let xs: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.25 - 1.0).collect();
        let ws: Vec<f32> = (0..n * k).map(|i| 1.0 - i as f32 * 0.125).collect();
        let x = Tensor::from_f32(&xs, &[m, k]).unwrap();
        let w = Tensor::from_f32(&ws, &[n, k])
            .unwrap()
            .to_dtype(DType::BF16)
            .unwrap();
        let b = w.t().unwrap();
        let d = Tensor::zeros(&[m, n], DType::F32, &Default::default()).unwrap();
        let p = validate(&x, &b, &d, &Matmul::default()).unwrap();
        let (xa, wb) = (
            x.cpu_storage("t").unwrap().read(),
            b.cpu_storage("t").unwrap().read(),
        );
        let mut got = Vec::new();
        let l = super::quantized(&p, xa.bytes(), 0, wb.bytes(), 0, None, &mut got).unwrap();
        assert_eq!(
            (l.row_stride, l.col_stride),
            (1, m),
            "float weights take the scalar path"
        );
        let wt = b.to_vec_f32().unwrap();
        let want = reference(
            &xs,
            &wt,
            None,
            None,
            (1, m, n, k),
            1.0,
            0.0,
            Default::default(),
        );
        for i in 0..m {
            for j in 0..n {
                assert_eq!(got[j * m + i], want[i * n + j], "[{i}, {j}]");
            }
        }
    }

    #[test]
    fn quantized_matmul_runs_batched_and_with_f16_activations() {
        let (b, m, n, k) = (3, 2, 5, 256);
        let dtype = DType::Q4K;
        let w_bytes = random_row(dtype, n * k, 77);
        let w = Tensor::from_raw(HostBytes::from_bytes(&w_bytes), &[n, k], dtype).unwrap();
        let xs: Vec<f32> = (0..b * m * k)
            .map(|i| ((i % 17) as f32 - 8.0) / 8.0)
            .collect();
        let x = Tensor::from_f32(&xs, &[b, m, k])
            .unwrap()
            .to_dtype(DType::F16)
            .unwrap();
        // One weight shared by every batch (B has no batch dims: broadcast).
        let wb = w.t().unwrap();
        let got = matmul_new(&x, &wb, DType::F32, &Matmul::default())
            .unwrap()
            .to_vec_f32()
            .unwrap();
        let mut wf = vec![0.0; n * k];
        dequantize_row(dtype, &w_bytes, &mut wf).unwrap();
        let mut wt = vec![0.0; b * k * n];
        for bi in 0..b {
            for j in 0..n {
                for l in 0..k {
                    wt[(bi * k + l) * n + j] = wf[j * k + l];
                }
            }
        }
        let xh = x.to_vec_f32().unwrap();
        let want = reference(
            &xh,
            &wt,
            None,
            None,
            (b, m, n, k),
            1.0,
            0.0,
            Default::default(),
        );
        let err = nmse(&got, &want);
        assert!(err <= 5e-5, "batched q4_K: nmse {err:.3e}");
    }
}
