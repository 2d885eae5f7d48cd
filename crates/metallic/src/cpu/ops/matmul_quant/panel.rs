//! Activation rows quantized for the SIMD block-dot kernels.
//!
//! The values are exactly those of `quant::quantize_activation_row` (Q8_0
//! and Q8_1 as llama.cpp's CPU backend quantizes activations at run time,
//! Q8_K by ggml's reference quantizer); only the layout differs from the GGUF blocks: all quants of a
//! row are contiguous (a kernel loads 32 of them with one unaligned load), and
//! each block's scale and sums sit in arrays beside them, already widened:
//! `d` as f32, the block sum of the quants times minus the weight format's
//! offset as i32 (`-16 * sum` for Q5_0: the kernels start the block's integer
//! dot from it, which takes the offset out exactly, as ggml's integer sums
//! do), Q8_1's `s` as f32, and Q8_K's 16-element sums plus their pairwise
//! 32-element sums (Q4_K's mins apply per 32).
//!
//! A panel is reused across calls (the caller keeps one per thread), so the
//! decode loop does not allocate once the buffers have grown.

use rayon::prelude::*;

use crate::error::Result;
use crate::quant::blocks::{BlockQ8K, BlockQ8_0, BlockQ8_1, QK, QK_K};
use crate::quant::quantize_activation_row;
use crate::tensor::DType;

/// Which 8-bit activation format a panel holds (ggml's `vec_dot_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ActFormat {
    Q8_0,
    Q8_1,
    Q8K,
}

impl ActFormat {
    /// The activation format for weights of `weight` (ggml's `vec_dot_type`).
    pub fn for_weight(weight: DType) -> ActFormat {
        match crate::quant::vec_dot_type(weight) {
            DType::Q8_0 => ActFormat::Q8_0,
            DType::Q8_1 => ActFormat::Q8_1,
            _ => ActFormat::Q8K,
        }
    }

    #[cfg(test)]
    pub fn dtype(self) -> DType {
        match self {
            ActFormat::Q8_0 => DType::Q8_0,
            ActFormat::Q8_1 => DType::Q8_1,
            ActFormat::Q8K => DType::Q8K,
        }
    }

    fn block(self) -> usize {
        match self {
            ActFormat::Q8_0 | ActFormat::Q8_1 => QK,
            ActFormat::Q8K => QK_K,
        }
    }
}

/// `m` rows of `k` activations quantized to `fmt`, in the kernels' layout.
#[derive(Debug)]
pub(crate) struct Panel {
    pub fmt: ActFormat,
    pub m: usize,
    pub k: usize,
    /// `[m, k]` quants.
    pub qs: Vec<i8>,
    /// `[m, k / block]` block scales.
    pub d: Vec<f32>,
    /// Q8_0/Q8_1: `[m, k / 32]` block sums of the quants times `-offset`;
    /// Q8_K with a non-zero offset: `[m, k / 16]` the 16-element sums times
    /// `-offset` (empty otherwise).
    pub corr: Vec<i32>,
    /// Q8_1: `[m, k / 32]` the blocks' `s` (f16, widened).
    pub s: Vec<f32>,
    /// Q8_K: `[m, k / 16]` sums of 16 quants (the blocks' `bsums`).
    pub bsum16: Vec<i16>,
    /// Q8_K: `[m, k / 32]` sums of 32 quants.
    pub bsum32: Vec<i16>,
    /// The same, tiled for the kernels (made by `tiles`).
    tiled: Interleaved,
}

/// Lanes per block of a tile's `d`, `corr` and `s`: one per row, padded
/// with zeros to a full vector, so a kernel loads all rows' scales of a
/// block at once.
pub(crate) const LANES: usize = 8;

/// Raw pointers to a tile of `rows` (at most [`LANES`]) consecutive
/// activation rows of a panel, as the kernels take it: the rows are
/// interleaved unit by unit, so unit `b` of the tile's row `r` is at
/// `(b * rows + r) * unit` (units: one block of quants, 16 `bsum16` or 8
/// `bsum32` per Q8_K block), and its `d`, `corr` and `s` at `b * LANES + r`. A kernel
/// then addresses every row of the tile from one pointer per array. Valid
/// while the panel is borrowed and not resized.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ActTile {
    pub rows: usize,
    pub qs: *const i8,
    pub d: *const f32,
    pub corr: *const i32,
    pub s: *const f32,
    pub bsum16: *const i16,
    pub bsum32: *const i16,
}

// SAFETY: an ActTile only reads panel memory that is not written while the
// kernels run (the panel is borrowed immutably for their whole duration).
unsafe impl Send for ActTile {}
unsafe impl Sync for ActTile {}

/// The panel's arrays with rows interleaved per tile (see [`ActTile`]).
#[derive(Debug, Default)]
struct Interleaved {
    qs: Vec<i8>,
    d: Vec<f32>,
    corr: Vec<i32>,
    s: Vec<f32>,
    bsum16: Vec<i16>,
    bsum32: Vec<i16>,
}

/// Copies `m` rows of `src` (row-major, `nb` per row) into `dst` as tiles
/// of up to `mr` rows, each block's values of a tile in [`LANES`] slots.
fn interleave_lanes<T: Copy + Default>(src: &[T], dst: &mut Vec<T>, m: usize, mr: usize) {
    let nb = src.len() / m.max(1);
    dst.clear();
    dst.resize(m.div_ceil(mr) * nb * LANES, T::default());
    for (t, t0) in (0..m).step_by(mr).enumerate() {
        for r in 0..mr.min(m - t0) {
            for (b, &v) in src[(t0 + r) * nb..(t0 + r + 1) * nb].iter().enumerate() {
                dst[(t * nb + b) * LANES + r] = v;
            }
        }
    }
}

/// Copies `m` rows of `src` (row-major, each `units * unit` long) into
/// `dst` with each tile of up to `mr` rows interleaved unit by unit.
fn interleave<T: Copy + Default>(src: &[T], dst: &mut Vec<T>, m: usize, mr: usize, unit: usize) {
    dst.resize(src.len(), T::default());
    if src.is_empty() {
        return;
    }
    let row_len = src.len() / m;
    for t0 in (0..m).step_by(mr) {
        let rows = mr.min(m - t0);
        let base = t0 * row_len;
        for r in 0..rows {
            let row = &src[base + r * row_len..base + (r + 1) * row_len];
            for (b, chunk) in row.chunks_exact(unit).enumerate() {
                let at = base + (b * rows + r) * unit;
                dst[at..at + unit].copy_from_slice(chunk);
            }
        }
    }
}

impl Default for Panel {
    fn default() -> Self {
        Panel {
            fmt: ActFormat::Q8_0,
            m: 0,
            k: 0,
            qs: Vec::new(),
            d: Vec::new(),
            s: Vec::new(),
            corr: Vec::new(),
            bsum16: Vec::new(),
            bsum32: Vec::new(),
            tiled: Interleaved::default(),
        }
    }
}

/// Per-row scratch of the reference quantizer's output (whole GGUF blocks).
#[derive(Default)]
struct RowScratch {
    f: Vec<f32>,
    q8_0: Vec<BlockQ8_0>,
    q8_1: Vec<BlockQ8_1>,
    q8k: Vec<BlockQ8K>,
}

impl Panel {
    /// Quantizes `m` rows of `k` activations; `row(i, buf)` writes row `i`
    /// into `buf` (length `k`). `offset` is the weight format's (see
    /// `corr`).
    pub fn fill<F>(&mut self, fmt: ActFormat, offset: i32, m: usize, k: usize, row: F) -> Result<()>
    where
        F: Fn(usize, &mut [f32]) + Sync,
    {
        debug_assert_eq!(k % fmt.block(), 0);
        let n32 = k / QK;
        // Per-row lengths of each array; 0 where the format does not use it.
        let lens = RowLens {
            k,
            nb: k / fmt.block(),
            corr: match fmt {
                ActFormat::Q8K if offset != 0 => k / 16,
                ActFormat::Q8K => 0,
                _ => n32,
            },
            s: if fmt == ActFormat::Q8_1 { n32 } else { 0 },
            bsum16: if fmt == ActFormat::Q8K { k / 16 } else { 0 },
            bsum32: if fmt == ActFormat::Q8K { n32 } else { 0 },
        };
        self.fmt = fmt;
        self.m = m;
        self.k = k;
        self.qs.resize(m * lens.k, 0);
        self.d.resize(m * lens.nb, 0.0);
        self.corr.resize(m * lens.corr, 0);
        self.s.resize(m * lens.s, 0.0);
        self.bsum16.resize(m * lens.bsum16, 0);
        self.bsum32.resize(m * lens.bsum32, 0);
        if m == 0 || k == 0 {
            return Ok(());
        }
        let outs = RowOuts::new(self, lens);
        let one_row = |scratch: &mut RowScratch, i: usize| -> Result<()> {
            scratch.f.resize(k, 0.0);
            row(i, &mut scratch.f);
            let x = std::mem::take(&mut scratch.f);
            let r = quantize_one(fmt, offset, &x, scratch, outs.row(i));
            scratch.f = x;
            r
        };
        if m == 1 {
            let mut scratch = ROW_SCRATCH.with(|s| s.take());
            let r = one_row(&mut scratch, 0);
            ROW_SCRATCH.with(|s| *s.borrow_mut() = scratch);
            return r;
        }
        (0..m)
            .into_par_iter()
            .try_for_each_init(RowScratch::default, |scratch, i| one_row(scratch, i))
    }

    /// The panel's rows as tiles of up to `mr` rows, in `out`. One row needs
    /// no copy (its layout is already the tile's); more are interleaved into
    /// the panel's second set of arrays, reused across calls.
    pub fn tiles(&mut self, mr: usize, out: &mut Vec<ActTile>) {
        debug_assert!((1..=LANES).contains(&mr));
        let (m, k) = (self.m, self.k);
        let nb = k / self.fmt.block();
        let n32 = k / QK;
        let ncorr = self.corr.len() / m.max(1);
        let t = &mut self.tiled;
        interleave(&self.qs, &mut t.qs, m, mr, self.fmt.block());
        interleave_lanes(&self.d, &mut t.d, m, mr);
        interleave_lanes(&self.corr, &mut t.corr, m, mr);
        interleave_lanes(&self.s, &mut t.s, m, mr);
        interleave(&self.bsum16, &mut t.bsum16, m, mr, 16);
        interleave(&self.bsum32, &mut t.bsum32, m, mr, 8);
        out.clear();
        // `wrapping_add`: arrays a format does not use are empty.
        out.extend((0..m).step_by(mr).enumerate().map(|(ti, i)| ActTile {
            rows: mr.min(m - i),
            qs: t.qs.as_ptr().wrapping_add(i * k),
            d: t.d.as_ptr().wrapping_add(ti * nb * LANES),
            corr: t.corr.as_ptr().wrapping_add(ti * ncorr * LANES),
            s: t.s.as_ptr().wrapping_add(ti * n32 * LANES),
            bsum16: t.bsum16.as_ptr().wrapping_add(i * (k / 16)),
            bsum32: t.bsum32.as_ptr().wrapping_add(i * n32),
        }));
    }
}

thread_local! {
    static ROW_SCRATCH: std::cell::RefCell<RowScratch> = Default::default();
}

#[derive(Clone, Copy)]
struct RowLens {
    k: usize,
    nb: usize,
    corr: usize,
    s: usize,
    bsum16: usize,
    bsum32: usize,
}

/// Mutable pointers into a panel's arrays for writing rows in parallel.
struct RowOuts {
    lens: RowLens,
    qs: *mut i8,
    d: *mut f32,
    corr: *mut i32,
    s: *mut f32,
    bsum16: *mut i16,
    bsum32: *mut i16,
}

// SAFETY: each parallel task writes only the disjoint row it is given.
unsafe impl Send for RowOuts {}
unsafe impl Sync for RowOuts {}

/// One row's slices of the panel's arrays.
struct RowOut<'a> {
    qs: &'a mut [i8],
    d: &'a mut [f32],
    corr: &'a mut [i32],
    s: &'a mut [f32],
    bsum16: &'a mut [i16],
    bsum32: &'a mut [i16],
}

impl RowOuts {
    fn new(p: &mut Panel, lens: RowLens) -> RowOuts {
        RowOuts {
            lens,
            qs: p.qs.as_mut_ptr(),
            d: p.d.as_mut_ptr(),
            corr: p.corr.as_mut_ptr(),
            s: p.s.as_mut_ptr(),
            bsum16: p.bsum16.as_mut_ptr(),
            bsum32: p.bsum32.as_mut_ptr(),
        }
    }

    fn row(&self, i: usize) -> RowOut<'_> {
        unsafe fn part<'a, T>(ptr: *mut T, i: usize, len: usize) -> &'a mut [T] {
            std::slice::from_raw_parts_mut(ptr.add(i * len), len)
        }
        let l = self.lens;
        // SAFETY: `fill` sized every array to `m * len` (len 0 for arrays the
        // format does not use, where `add(0)` on the Vec's pointer is valid),
        // and each `i < m` is passed once, so the slices are in bounds and
        // disjoint.
        unsafe {
            RowOut {
                qs: part(self.qs, i, l.k),
                d: part(self.d, i, l.nb),
                corr: part(self.corr, i, l.corr),
                s: part(self.s, i, l.s),
                bsum16: part(self.bsum16, i, l.bsum16),
                bsum32: part(self.bsum32, i, l.bsum32),
            }
        }
    }
}

fn quantize_one(
    fmt: ActFormat,
    offset: i32,
    x: &[f32],
    sc: &mut RowScratch,
    out: RowOut<'_>,
) -> Result<()> {
    let k = x.len();
    match fmt {
        ActFormat::Q8_0 => {
            sc.q8_0.resize(k / QK, bytemuck::Zeroable::zeroed());
            quantize_activation_row(DType::Q8_0, x, bytemuck::cast_slice_mut(&mut sc.q8_0))?;
            for (b, blk) in sc.q8_0.iter().enumerate() {
                out.qs[b * QK..(b + 1) * QK].copy_from_slice(&blk.qs);
                out.d[b] = blk.d.to_f32();
                out.corr[b] = -offset * blk.qs.iter().map(|&q| q as i32).sum::<i32>();
            }
        }
        ActFormat::Q8_1 => {
            sc.q8_1.resize(k / QK, bytemuck::Zeroable::zeroed());
            quantize_activation_row(DType::Q8_1, x, bytemuck::cast_slice_mut(&mut sc.q8_1))?;
            for (b, blk) in sc.q8_1.iter().enumerate() {
                out.qs[b * QK..(b + 1) * QK].copy_from_slice(&blk.qs);
                out.d[b] = blk.d.to_f32();
                out.s[b] = blk.s.to_f32();
                out.corr[b] = -offset * blk.qs.iter().map(|&q| q as i32).sum::<i32>();
            }
        }
        ActFormat::Q8K => {
            sc.q8k.resize(k / QK_K, bytemuck::Zeroable::zeroed());
            quantize_activation_row(DType::Q8K, x, bytemuck::cast_slice_mut(&mut sc.q8k))?;
            for (b, blk) in sc.q8k.iter().enumerate() {
                out.qs[b * QK_K..(b + 1) * QK_K].copy_from_slice(&blk.qs);
                out.d[b] = blk.d;
                out.bsum16[b * 16..(b + 1) * 16].copy_from_slice(&blk.bsums);
                if offset != 0 {
                    for (c, &s) in out.corr[b * 16..(b + 1) * 16].iter_mut().zip(&blk.bsums) {
                        *c = -offset * s as i32;
                    }
                }
                for s in 0..8 {
                    out.bsum32[b * 8 + s] = blk.bsums[2 * s] + blk.bsums[2 * s + 1];
                }
            }
        }
    }
    Ok(())
}
