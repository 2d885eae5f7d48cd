//! Host side of our f32 GEMM (kernels/gemm_f32.cu): block tiles through a
//! double-buffered shared-memory pipeline, the matmul epilogue fused, any
//! strides, transposes and batches, split K where the tiles cannot fill the
//! GPU.
//!
//! Three kinds of arithmetic, one kernel source:
//! - exact (`gemm_f32_simt_<BM>x<BN>x<BK>`): fp32 FMA on the CUDA cores, an
//!   8x8 micro-tile per thread: the same arithmetic as cuBLAS's SGEMM with
//!   TF32 off. What `MatmulBackend::Native` runs for f32 operands at
//!   M > 16, except where the dmma tile takes them ([`pick_tile`]).
//! - tf32 (`gemm_f32_tf32_<BM>x<BN>x<BK>`): `mma.sync.m16n8k8` with the
//!   operands rounded to TF32 (about 3 decimal digits), f32 accumulation.
//!   Never picked by the dispatcher: only by name
//!   ([`matmul_f32_tile`](super::matmul_f32_tile), `--tiles tf32_128x128x16`).
//! - dmma (`gemm_f32_dmma_<BM>x<BN>x<BK>`): the f64 tensor cores, operands
//!   widened to f64 exactly, products summed in f64 and rounded to f32 once
//!   (at least as accurate as exact). On Hopper `Native` takes
//!   `dmma_128x128x32` for K-contiguous operands from K = 512 and M = 128
//!   ([`pick_tile`]); the other dmma tiles only by name
//!   (`--tiles dmma_128x128x16`).
//!
//! - rows (`gemm_f32_rows_k<KC>_m<MR>[_s]`, kernels/gemm_f32_rows.cu):
//!   exact, for M <= 16 against a K-contiguous weight (y = x W^T): streams
//!   W once, A's few rows through shared memory in chunks of KC columns,
//!   copied asynchronously (16 bytes at a time where A is K-contiguous and
//!   aligned, element by element with `_s`), split K where W's rows cannot
//!   fill the GPU.
//!
//! Each tiled module holds one kernel per operand layout pair (suffix `_kk`, `_kn`,
//! `_mk`, `_mn`, `_ss`; see the kernel source): an operand contiguous along
//! K or along M / N, with 16-byte aligned groups of 4, is read 16 bytes at a
//! time; anything else element by element.

use super::{arg, i32_dim, Chunk, Epilogue, Geom, Module, Ptrs, COMMON, EPILOGUE, OP};
use crate::cuda::KernelSource;
use crate::error::Result;
use crate::ops::matmul::MatmulProblem;
use crate::tensor::DType;

/// How an f32 tile multiplies (gemm_f32.cu GEMM_MATH).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum F32Math {
    /// fp32 FMA on the CUDA cores: cuBLAS's SGEMM with TF32 off.
    Exact,
    /// The tensor cores on operands rounded to TF32.
    Tf32,
    /// The f64 tensor cores on operands widened to f64.
    F64,
}

impl F32Math {
    /// The kernel-name prefix.
    pub const fn name(self) -> &'static str {
        match self {
            F32Math::Exact => "simt",
            F32Math::Tf32 => "tf32",
            F32Math::F64 => "dmma",
        }
    }

    /// The error against cuBLAS's SGEMM the tile is held to in the tests:
    /// TF32's 10-bit mantissa, or f32 rounding.
    pub const fn tolerance(self) -> f64 {
        match self {
            F32Math::Tf32 => 3e-3,
            F32Math::Exact | F32Math::F64 => 1e-5,
        }
    }
}

/// A block tile and its arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct F32Tile {
    pub bm: usize,
    pub bn: usize,
    pub bk: usize,
    pub math: F32Math,
}

impl F32Tile {
    pub const fn threads(&self) -> usize {
        match self.math {
            F32Math::Exact => (self.bm / 8) * (self.bn / 8),
            F32Math::Tf32 | F32Math::F64 => 256,
        }
    }

    /// Shared-memory stages of the operand tiles (gemm_f32.cu GEMM_STAGES):
    /// the f64 tiles' cp.async pipeline holds three K tiles of 32 (five of
    /// 16) in flight while one is multiplied; the others double-buffer
    /// through registers.
    pub const fn stages(&self) -> usize {
        match self.math {
            F32Math::F64 if self.bk >= 32 => 4,
            F32Math::F64 => 6,
            _ => 2,
        }
    }

    /// Dynamic shared memory (gemm_f32.cu SMEM_BYTES): the A and B tiles'
    /// buffers (two K-major ones, f32 rows padded by 8 for TF32, 4 for
    /// exact; for the f64 tensor cores a stage's rows along K, padded by
    /// 4), or half the f32 output tile staged for the epilogue (rows padded
    /// by 4), whichever is larger.
    pub const fn shared_bytes(&self) -> usize {
        let pipe = match self.math {
            F32Math::Exact => 4 * 2 * self.bk * (self.bm + 4 + self.bn + 4),
            F32Math::Tf32 => 4 * 2 * self.bk * (self.bm + 8 + self.bn + 8),
            F32Math::F64 => 4 * self.stages() * (self.bm + self.bn) * (self.bk + 4),
        };
        let stage = 4 * self.bm / 2 * (self.bn + 4);
        if pipe > stage {
            pipe
        } else {
            stage
        }
    }

    /// Blocks resident on one SM (gemm_f32.cu MIN_BLOCKS: the register cap
    /// the kernel is compiled for).
    pub const fn blocks_per_sm(&self) -> usize {
        match self.math {
            F32Math::F64 => 1,
            F32Math::Tf32 if self.bk > 16 => 1,
            _ if self.threads() >= 256 => 2,
            _ => 1024 / self.threads() / 2,
        }
    }

    /// `simt_128x128x8`, `tf32_128x128x16` or `dmma_128x128x32`: the name
    /// `--tiles` takes.
    pub fn suffix(&self) -> String {
        let math = self.math.name();
        format!("{math}_{}x{}x{}", self.bm, self.bn, self.bk)
    }

    /// `gemm_f32_simt_128x128x8`: the kernels' name without the layout suffix.
    pub fn name(&self) -> String {
        format!("gemm_f32_{}", self.suffix())
    }

    fn source(&self) -> KernelSource {
        KernelSource::new(
            &self.name(),
            &[COMMON, EPILOGUE],
            include_str!("../../kernels/gemm_f32.cu"),
        )
        .define("GEMM_NAME", self.name())
        .define("GEMM_BM", self.bm)
        .define("GEMM_BN", self.bn)
        .define("GEMM_BK", self.bk)
        .define("GEMM_MATH", self.math as u8)
        .define("GEMM_STAGES", self.stages())
    }
}

/// 256 threads of 8x8 outputs: the large-M tile.
pub const SIMT_128X128X8: F32Tile = F32Tile {
    bm: 128,
    bn: 128,
    bk: 8,
    math: F32Math::Exact,
};
/// 128x128 with K steps of 16: half the barriers, twice the loads in flight.
pub const SIMT_128X128X16: F32Tile = F32Tile {
    bk: 16,
    ..SIMT_128X128X8
};
/// 64 threads of 8x8 outputs: four times the blocks, for shapes where
/// 128x128 tiles leave SMs idle.
pub const SIMT_64X64X8: F32Tile = F32Tile {
    bm: 64,
    bn: 64,
    bk: 8,
    ..SIMT_128X128X8
};
/// 8 warps of 64x32 on the TF32 tensor cores.
pub const TF32_128X128X16: F32Tile = F32Tile {
    bm: 128,
    bn: 128,
    bk: 16,
    math: F32Math::Tf32,
};
pub const TF32_128X128X32: F32Tile = F32Tile {
    bk: 32,
    ..TF32_128X128X16
};
/// The TF32 tile's warps (8 of 64x32) on the f64 tensor cores, one block
/// per SM, K steps of 32 in 4 stages (147 KB).
pub const DMMA_128X128X32: F32Tile = F32Tile {
    bk: 32,
    math: F32Math::F64,
    ..TF32_128X128X16
};
/// K steps of 16 in 6 stages (123 KB): half the work between barriers.
pub const DMMA_128X128X16: F32Tile = F32Tile {
    bk: 16,
    ..DMMA_128X128X32
};
/// Half the block rows (warps of 32x32): twice the blocks where 128x128
/// leaves SMs idle.
pub const DMMA_64X128X32: F32Tile = F32Tile {
    bm: 64,
    ..DMMA_128X128X32
};

/// Every tile, for benchmarks and tests that run them by name.
pub const TILES: [F32Tile; 8] = [
    SIMT_128X128X8,
    SIMT_128X128X16,
    SIMT_64X64X8,
    TF32_128X128X16,
    TF32_128X128X32,
    DMMA_128X128X32,
    DMMA_128X128X16,
    DMMA_64X128X32,
];

impl std::str::FromStr for F32Tile {
    type Err = String;
    /// `simt_128x128x8`, `tf32_128x128x16` (the kernel name's suffix).
    fn from_str(s: &str) -> std::result::Result<F32Tile, String> {
        TILES
            .into_iter()
            .find(|t| t.suffix() == s)
            .ok_or_else(|| format!("no f32 tile {s:?}"))
    }
}

/// The rows kernels: f32 W, and the mixed pairs' f16 and bf16 W (same
/// names, one module per W dtype, so that each compiles only when used).
fn rows_source(name: &str, w: &str) -> KernelSource {
    KernelSource::new(
        name,
        &[COMMON, EPILOGUE],
        include_str!("../../kernels/gemm_f32_rows.cu"),
    )
    .define("ROWS_WDT", w)
}
static ROWS_MODULE: Module = Module::new(|| rows_source("gemm_f32_rows", "DT_F32"));
static ROWS_F16W_MODULE: Module = Module::new(|| rows_source("gemm_f32_rows_wf16", "DT_F16"));
static ROWS_BF16W_MODULE: Module = Module::new(|| rows_source("gemm_f32_rows_wbf16", "DT_BF16"));

macro_rules! modules {
    ($($name:ident = $tile:expr;)*) => {
        $(static $name: Module = Module::new(|| $tile.source());)*
        fn module(tile: &F32Tile) -> &'static Module {
            $(if *tile == $tile { return &$name; })*
            unreachable!("no gemm_f32 module for {tile:?}")
        }
        /// Every variant, for the compile test.
        pub(crate) fn all_sources() -> Vec<KernelSource> {
            vec![
                ROWS_MODULE.source().clone(),
                ROWS_F16W_MODULE.source().clone(),
                ROWS_BF16W_MODULE.source().clone(),
                $($name.source().clone()),*
            ]
        }
    };
}

modules! {
    M_SIMT_128X128X8 = SIMT_128X128X8;
    M_SIMT_128X128X16 = SIMT_128X128X16;
    M_SIMT_64X64X8 = SIMT_64X64X8;
    M_TF32_128X128X16 = TF32_128X128X16;
    M_TF32_128X128X32 = TF32_128X128X32;
    M_DMMA_128X128X32 = DMMA_128X128X32;
    M_DMMA_128X128X16 = DMMA_128X128X16;
    M_DMMA_64X128X32 = DMMA_64X128X32;
}

/// Products of at least this many K columns and rows take the f64
/// tensor-core tile where it can run them (see [`pick_tile`]).
pub const DMMA_MIN_K: usize = 512;
pub const DMMA_MIN_M: usize = 128;

/// The tile for an `m x n x k` product, `batch` times, on `sms` SMs;
/// `dmma`: the f64 tensor-core tiles can take it (a Hopper GPU, both
/// operands K-contiguous in 16-byte aligned groups). There, from
/// DMMA_MIN_K and DMMA_MIN_M on (a whole 128-row tile; fewer rows were
/// not measured), DMMA_128X128X32: on an H100 (bench/results/2026-12-07-
/// nvidia-h100-session26-call2-f32-dmma.log) 0.93-1.05x cuBLAS's SGEMM on
/// 4096^3 and the 7B products at M = 512 and 4096 where the SIMT tile
/// reaches 0.79-0.88x, and more accurate (f64 sums); on the attention
/// products (K = 64 and 128, few K tiles for its pipeline to overlap)
/// 0.64-0.78x against the SIMT tile's 0.75-0.83x. Otherwise the exact SIMT
/// tile: 128x128x16 (on an H200, 4-17% faster than x8 and 20-35% faster
/// than 64x64 at M = 512 and 4096) unless its blocks cannot fill half the
/// SMs (64x64, four times the blocks).
pub fn pick_tile(
    (m, n, k, batch): (usize, usize, usize, usize),
    dmma: bool,
    sms: usize,
) -> F32Tile {
    if dmma && k >= DMMA_MIN_K && m >= DMMA_MIN_M {
        DMMA_128X128X32
    } else if 2 * batch * m.div_ceil(128) * n.div_ceil(128) >= sms {
        SIMT_128X128X16
    } else {
        SIMT_64X64X8
    }
}

/// How many ways to split K, where the tiles make at most two waves of the
/// GPU's block slots (`sms` x [`F32Tile::blocks_per_sm`]). B tiles split s
/// ways take about ceil(B s / slots) / s of the unsplit time (a last wave is
/// as long as a full one), so the split with the fewest such waves wins
/// where it saves at least 5% (each split also writes an f32 partial
/// product that `gemm_splitk_epilogue` sums), keeping at least 16 K tiles
/// per split. On an H200, 7B down at M = 512 (112 tiles of 128x128 for 264
/// slots) went from 0.64x cuBLAS unsplit to 0.82x in 7 splits, 7B qkv (144
/// tiles) from 0.49x to 0.75x in 5; 7B gate+up (1184 tiles, 4.5 waves),
/// which the model would split in 2, lost 5% that way, hence no split past
/// two waves. The f64 tile (one block per SM) leaves 7B qkv at M = 512 a
/// second wave of 12 tiles unsplit: 0.57x cuBLAS on an H100, 0.87x in 6
/// splits (bench/results/2026-12-07-nvidia-h100-session26-call2-f32-dmma.log
/// and -call3-f32-dispatch-record.log); 7B down at M = 512 (112 tiles)
/// ran at 0.96x both unsplit and in 7 splits.
pub fn k_splits(
    tile: &F32Tile,
    (m, n, k, batch): (usize, usize, usize, usize),
    sms: usize,
) -> usize {
    let blocks = (batch * m.div_ceil(tile.bm) * n.div_ceil(tile.bn)).max(1);
    let slots = sms.max(1) * tile.blocks_per_sm();
    if blocks >= 2 * slots {
        return 1;
    }
    let k_tiles = k.div_ceil(tile.bk);
    let time = |s: usize| (blocks * s).div_ceil(slots) as f64 / s as f64;
    let mut best = 1;
    for s in 2..=8 {
        if k_tiles / s < 16 {
            break;
        }
        if time(s) < 0.95 * time(best) {
            best = s;
        }
    }
    best
}

/// Most rows of A the rows kernel takes (gemm_f32_rows.cu).
pub const ROWS_MAX_M: usize = 16;
/// W rows per block and K columns per chunk of the rows kernel.
const ROWS_N: usize = 32;
const ROWS_KC: usize = 256;

/// The rows kernel for `m` rows and depth `k`, given whether A is
/// K-contiguous in 16-byte aligned groups and whether W is f16 /
/// bf16 (a mixed pair; its own module): `gemm_f32_rows_k<KC>_m<MR>`, MR
/// the bound on M. An f32 W takes KC 256, or 128 where K fits one such
/// chunk (a 256-column chunk would leave half the lanes or more idle); an
/// f16 / bf16 W 512 (two 16-byte loads per lane and row, as f32's 256), at
/// MR 16 or where K <= 256, 256. A's other layouts (not the hot path)
/// take 256-column chunks only, suffixed `_s`.
fn rows_kernel(m: usize, k: usize, a_k_contiguous: bool, w_half: bool) -> String {
    let bound = m.next_power_of_two().max(1);
    let long = if w_half && bound < 16 { 512 } else { ROWS_KC };
    let short = if w_half { ROWS_KC } else { 128 };
    match (a_k_contiguous, k <= short) {
        (true, true) => format!("gemm_f32_rows_k{short}_m{bound}"),
        (true, false) => format!("gemm_f32_rows_k{long}_m{bound}"),
        (false, _) => format!("gemm_f32_rows_k{ROWS_KC}_m{bound}_s"),
    }
}

/// Splits of K for the rows kernel: enough blocks for 4 per SM, every
/// split keeping at least 4 chunks of 256 columns (2 of the f16 / bf16
/// kernels' 512).
pub fn rows_splits((n, k, batch): (usize, usize, usize), sms: usize) -> usize {
    let blocks = batch * n.div_ceil(ROWS_N);
    (4 * sms / blocks.max(1))
        .min(k.div_ceil(ROWS_KC) / 4)
        .clamp(1, 16)
}

/// The name of what `Native` runs for an f32 problem, or for f32 A against
/// an f16 / bf16 B (`w_half`) at M <= 16 (the bench's label), given whether
/// A and B are K-contiguous in 16-byte aligned groups, on a Hopper GPU
/// (`hopper`) or not, of `sms` SMs.
pub fn kernel_label(
    (m, n, k, batch): (usize, usize, usize, usize),
    (a_k_contiguous, b_k_contiguous): (bool, bool),
    w_half: bool,
    (hopper, sms): (bool, usize),
) -> String {
    if m <= ROWS_MAX_M && b_k_contiguous {
        let name = rows_kernel(m, k, a_k_contiguous, w_half);
        return match rows_splits((n, k, batch), sms) {
            1 => name,
            splits => format!("{name} split {splits}"),
        };
    }
    let dmma = hopper && a_k_contiguous && b_k_contiguous && !w_half;
    let tile = pick_tile((m, n, k, batch), dmma, sms);
    let splits = k_splits(&tile, (m, n, k, batch), sms);
    if splits > 1 {
        format!("{} split {splits}", tile.name())
    } else {
        tile.name()
    }
}

/// How the kernel reads one operand (gemm_f32.cu LAYOUT_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Unit stride along M (A) or N (B), 16-byte groups: `m` / `n`.
    X,
    /// Unit stride along K, 16-byte groups: `k`.
    K,
    /// Anything else, element by element.
    Strided,
}

/// The layout of an operand of `elem` bytes per element at `ptr` with
/// geometry `g`, `x_stride` and `k_stride` its strides along M (or N) and K,
/// over `count` batches: 16-byte aligned groups (of 4 f32, or of 8 f16 /
/// bf16 elements).
fn layout(
    (ptr, elem): (u64, u64),
    g: &Geom,
    (x_stride, k_stride): (i64, i64),
    count: usize,
) -> Layout {
    let group = 16 / elem as i64;
    let base = (ptr + g.off as u64 * elem).is_multiple_of(16) && (count == 1 || g.bs % group == 0);
    if base && k_stride == 1 && x_stride % group == 0 {
        Layout::K
    } else if base && x_stride == 1 && k_stride % group == 0 {
        Layout::X
    } else {
        Layout::Strided
    }
}

/// The kernel suffix for A's and B's layouts (the f64 tensor-core tiles
/// have `kk`, both K-contiguous, and `ss` for every other pair).
fn layout_suffix(math: F32Math, a: Layout, b: Layout) -> &'static str {
    match (a, b) {
        (Layout::K, Layout::K) => "kk",
        _ if math == F32Math::F64 => "ss",
        (Layout::K, Layout::X) => "kn",
        (Layout::X, Layout::K) => "mk",
        (Layout::X, Layout::X) => "mn",
        _ => "ss",
    }
}

/// Runs the chunk on the `forced` tile, or when `None` on the rows kernel
/// (M <= 16 against an aligned K-contiguous B) or the exact tile for the
/// shape; A and B must be f32.
pub(super) fn run(
    p: &MatmulProblem,
    x: &Ptrs,
    ch: &Chunk,
    e: &Epilogue,
    forced: Option<F32Tile>,
) -> Result<()> {
    if p.a.dtype != DType::F32 || p.b.dtype != DType::F32 {
        crate::bail!(
            OP,
            "the f32 GEMM takes f32 operands, got {} x {}",
            p.a.dtype,
            p.b.dtype
        );
    }
    let sms = x.dev.multiprocessors();
    let la = layout((x.a, 4), &ch.a, (ch.a.rs, ch.a.cs), ch.count);
    let lb = layout((x.b, 4), &ch.b, (ch.b.cs, ch.b.rs), ch.count);
    if forced.is_none() && p.m <= ROWS_MAX_M && lb == Layout::K {
        return rows(p, x, ch, e, la == Layout::K);
    }
    // The f64 tensor-core tiles: Hopper (sm_90a), both operands K-contiguous.
    let dmma = x.dev.arch() == "sm_90a" && la == Layout::K && lb == Layout::K;
    let tile = forced.unwrap_or_else(|| pick_tile((p.m, p.n, p.k, ch.count), dmma, sms));
    let (m, n, k) = (i32_dim("m", p.m)?, i32_dim("n", p.n)?, i32_dim("k", p.k)?);
    let blocks = p.m.div_ceil(tile.bm) * p.n.div_ceil(tile.bn);
    if blocks > i32::MAX as usize {
        crate::bail!(
            OP,
            "{}x{} needs more blocks than one launch holds",
            p.m,
            p.n
        );
    }
    let name = format!("{}_{}", tile.name(), layout_suffix(tile.math, la, lb));
    let splits = k_splits(&tile, (p.m, p.n, p.k, ch.count), sms);
    let total = ch.count * p.m * p.n;
    let scratch = if splits > 1 {
        Some(x.dev.alloc(splits * total * 4)?)
    } else {
        None
    };
    let partial = scratch.as_ref().map_or(0u64, |s| s.ptr());
    let mut a = [
        arg(&x.a),
        arg(&ch.a),
        arg(&x.b),
        arg(&ch.b),
        arg(e),
        arg(&x.c),
        arg(&x.d),
        arg(&x.bias),
        arg(&m),
        arg(&n),
        arg(&k),
        arg(&partial),
    ];
    let launch = (
        (blocks as u32, splits as u32, ch.count as u32),
        (tile.threads() as u32, 1, 1),
        tile.shared_bytes() as u32,
    );
    module(&tile).launch_shared(&x.dev, &name, launch, &mut a)?;
    if splits > 1 {
        super::sum_splits(p, x, e, (partial, splits), total)?;
    }
    Ok(())
}

/// Runs a mixed pair, f32 A against an f16 or bf16 W, on the rows kernel
/// (W read in its own dtype and widened in registers): `Ok(false)` unless
/// M <= 16 and W is K-contiguous in 16-byte aligned groups of 8.
pub(super) fn run_rows_mixed(
    p: &MatmulProblem,
    x: &Ptrs,
    ch: &Chunk,
    e: &Epilogue,
) -> Result<bool> {
    let half = matches!(p.b.dtype, DType::F16 | DType::BF16);
    let lb = layout((x.b, 2), &ch.b, (ch.b.cs, ch.b.rs), ch.count);
    if p.a.dtype != DType::F32 || !half || p.m > ROWS_MAX_M || lb != Layout::K {
        return Ok(false);
    }
    let la = layout((x.a, 4), &ch.a, (ch.a.rs, ch.a.cs), ch.count);
    rows(p, x, ch, e, la == Layout::K).map(|()| true)
}

/// The rows kernel (M <= 16, B K-contiguous and aligned; B f32, or f16 /
/// bf16 against f32 A), then the split sum where K is split.
fn rows(p: &MatmulProblem, x: &Ptrs, ch: &Chunk, e: &Epilogue, a_k_contiguous: bool) -> Result<()> {
    let (m, n, k) = (i32_dim("m", p.m)?, i32_dim("n", p.n)?, i32_dim("k", p.k)?);
    let splits = rows_splits((p.n, p.k, ch.count), x.dev.multiprocessors());
    let total = ch.count * p.m * p.n;
    let scratch = if splits > 1 {
        Some(x.dev.alloc(splits * total * 4)?)
    } else {
        None
    };
    let partial = scratch.as_ref().map_or(0u64, |s| s.ptr());
    let mut a = [
        arg(&x.a),
        arg(&ch.a),
        arg(&x.b),
        arg(&ch.b),
        arg(e),
        arg(&x.c),
        arg(&x.d),
        arg(&x.bias),
        arg(&m),
        arg(&n),
        arg(&k),
        arg(&partial),
    ];
    let grid = (p.n.div_ceil(ROWS_N) as u32, splits as u32, ch.count as u32);
    // gemm_f32_rows.cu: 4 W rows per warp, 2 from MR 8 on (twice the warps).
    let threads = if p.m > 4 { 512 } else { 256 };
    let w_half = matches!(p.b.dtype, DType::F16 | DType::BF16);
    let name = rows_kernel(p.m, p.k, a_k_contiguous, w_half);
    let module = match p.b.dtype {
        DType::F16 => &ROWS_F16W_MODULE,
        DType::BF16 => &ROWS_BF16W_MODULE,
        _ => &ROWS_MODULE,
    };
    module.launch(&x.dev, &name, grid, (threads, 1, 1), &mut a)?;
    if splits > 1 {
        super::sum_splits(p, x, e, (partial, splits), total)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_names_parse_back() {
        for t in TILES {
            assert_eq!(t.suffix().parse::<F32Tile>(), Ok(t));
        }
        assert!("simt_1x1x1".parse::<F32Tile>().is_err());
    }

    #[test]
    fn shared_memory_and_threads_match_the_kernel() {
        // 128x128x8: half the output tile (64 rows of 132 floats) is larger
        // than the two pipeline buffers.
        assert_eq!(SIMT_128X128X8.shared_bytes(), 64 * 132 * 4);
        assert_eq!(TF32_128X128X32.shared_bytes(), 2 * 32 * 272 * 4);
        // f64 tensor cores: 128 + 128 rows of 32 + 4 floats, four stages;
        // 64 + 128 rows; 256 rows of 16 + 4, six stages.
        assert_eq!(DMMA_128X128X32.shared_bytes(), 4 * 256 * 36 * 4);
        assert_eq!(DMMA_64X128X32.shared_bytes(), 4 * 192 * 36 * 4);
        assert_eq!(DMMA_128X128X16.shared_bytes(), 6 * 256 * 20 * 4);
        assert_eq!(DMMA_128X128X32.blocks_per_sm(), 1);
        assert_eq!(SIMT_128X128X8.threads(), 256);
        assert_eq!(SIMT_64X64X8.threads(), 64);
        for t in TILES {
            assert!(t.shared_bytes() <= 227 * 1024, "{t:?}");
        }
    }

    #[test]
    fn layouts_need_unit_stride_and_16_byte_groups() {
        let g = |off, rs, cs, bs| Geom { off, rs, cs, bs };
        // A [M, K] row-major with K % 4 == 0: K-contiguous.
        assert_eq!(layout((256, 4), &g(0, 64, 1, 0), (64, 1), 1), Layout::K);
        // One element in: not 16-byte aligned.
        assert_eq!(
            layout((256, 4), &g(1, 64, 1, 0), (64, 1), 1),
            Layout::Strided
        );
        // A row stride of 65 breaks the groups of later rows.
        assert_eq!(
            layout((256, 4), &g(0, 65, 1, 0), (65, 1), 1),
            Layout::Strided
        );
        // Transposed: contiguous along M.
        assert_eq!(layout((256, 4), &g(0, 1, 64, 0), (1, 64), 1), Layout::X);
        // A batch stride off the groups matters only with several batches.
        assert_eq!(layout((256, 4), &g(0, 64, 1, 7), (64, 1), 1), Layout::K);
        assert_eq!(
            layout((256, 4), &g(0, 64, 1, 7), (64, 1), 2),
            Layout::Strided
        );
        // f16 / bf16 (a mixed pair's W): 16-byte groups of 8 elements.
        let half = |ptr, off, rs| layout((ptr, 2), &g(off, rs, 1, 0), (rs, 1), 1);
        assert_eq!(half(256, 8, 64), Layout::K);
        assert_eq!(half(264, 0, 64), Layout::Strided);
        assert_eq!(half(256, 4, 64), Layout::Strided);
        assert_eq!(half(256, 0, 68), Layout::Strided);
        assert_eq!(
            layout_suffix(F32Math::Exact, Layout::K, Layout::Strided),
            "ss"
        );
        assert_eq!(layout_suffix(F32Math::Exact, Layout::K, Layout::X), "kn");
        // The f64 tensor-core tiles: `kk`, or element by element.
        assert_eq!(layout_suffix(F32Math::F64, Layout::K, Layout::K), "kk");
        assert_eq!(layout_suffix(F32Math::F64, Layout::K, Layout::X), "ss");
    }

    #[test]
    fn k_splits_only_where_tiles_cannot_fill_the_gpu() {
        let t = SIMT_128X128X16;
        // 7B down at M = 512: 112 tiles for 264 slots; 7 splits make 784
        // blocks, 2.97 waves of a seventh of the work each.
        assert_eq!(k_splits(&t, (512, 3584, 18944, 1), 132), 7);
        // 7B qkv at M = 512: 144 tiles, 5 splits (2.7 waves of a fifth).
        assert_eq!(k_splits(&t, (512, 4608, 3584, 1), 132), 5);
        // 4096^3 and 7B gate+up: more tiles than slots.
        assert_eq!(k_splits(&t, (4096, 4096, 4096, 1), 132), 1);
        assert_eq!(k_splits(&t, (512, 37888, 3584, 1), 132), 1);
        // Few tiles but a short K: at least 16 K tiles per split.
        assert_eq!(k_splits(&t, (512, 512, 64, 1), 132), 1);
        assert_eq!(
            pick_tile((4096, 4096, 4096, 1), false, 132),
            SIMT_128X128X16
        );
        assert_eq!(pick_tile((128, 256, 4096, 1), false, 132), SIMT_64X64X8);
        // Hopper, both operands K-contiguous: the f64 tensor cores from
        // K = 512 on; the attention products (K = 64, 128) stay SIMT.
        assert_eq!(pick_tile((4096, 4096, 4096, 1), true, 132), DMMA_128X128X32);
        assert_eq!(pick_tile((512, 512, 128, 28), true, 132), SIMT_128X128X16);
        assert_eq!(pick_tile((64, 4608, 3584, 1), true, 132), SIMT_64X64X8);
        let d = DMMA_128X128X32;
        // 7B qkv at M = 512: 144 tiles for 132 slots, 6 splits (6.5 waves
        // of a sixth); 7B down: 112 tiles, 7 splits (5.9 waves of a
        // seventh); 7B gate+up: 1184 tiles, none.
        assert_eq!(k_splits(&d, (512, 4608, 3584, 1), 132), 6);
        assert_eq!(k_splits(&d, (512, 3584, 18944, 1), 132), 7);
        assert_eq!(k_splits(&d, (512, 37888, 3584, 1), 132), 1);
    }

    #[test]
    fn rows_labels_name_the_kernel_launched() {
        assert_eq!(
            kernel_label((16, 3584, 18944, 1), (true, true), false, (false, 132)),
            "gemm_f32_rows_k256_m16 split 4"
        );
        // The attention product: K = 64 fits one 128-column chunk.
        assert_eq!(
            kernel_label((1, 4096, 64, 14), (true, true), false, (false, 132)),
            "gemm_f32_rows_k128_m1"
        );
        assert_eq!(
            kernel_label((5, 77, 100, 1), (false, true), false, (false, 132)),
            "gemm_f32_rows_k256_m8_s"
        );
        assert_eq!(
            kernel_label((3, 77, 129, 1), (true, true), false, (false, 132)),
            "gemm_f32_rows_k256_m4"
        );
        // An f16 / bf16 W: 512-column chunks below MR 16, 256 at MR 16 and
        // where K <= 256 (A K-contiguous).
        assert_eq!(
            kernel_label((1, 37888, 3584, 1), (true, true), true, (false, 132)),
            "gemm_f32_rows_k512_m1"
        );
        assert_eq!(
            kernel_label((16, 3584, 18944, 1), (true, true), true, (false, 132)),
            "gemm_f32_rows_k256_m16 split 4"
        );
        assert_eq!(
            kernel_label((3, 1000, 64, 1), (true, true), true, (false, 132)),
            "gemm_f32_rows_k256_m4"
        );
        assert_eq!(
            kernel_label((3, 1000, 600, 1), (false, true), true, (false, 132)),
            "gemm_f32_rows_k256_m4_s"
        );
        // On Hopper, both operands K-contiguous and K >= 512: the f64
        // tensor cores; B not K-contiguous: the SIMT tile.
        assert_eq!(
            kernel_label((512, 4608, 3584, 1), (true, true), false, (true, 132)),
            "gemm_f32_dmma_128x128x32 split 6"
        );
        assert_eq!(
            kernel_label((512, 4608, 3584, 1), (true, false), false, (true, 132)),
            "gemm_f32_simt_128x128x16 split 5"
        );
        // B not K-contiguous: the tiled GEMM.
        assert_eq!(
            kernel_label((3, 77, 129, 1), (true, false), false, (false, 132)),
            "gemm_f32_simt_64x64x8"
        );
    }

    #[test]
    fn rows_kernel_splits_k_for_few_weight_rows() {
        // 7B down (N 3584): 112 blocks of 32 rows for 528 slots.
        assert_eq!(rows_splits((3584, 18944, 1), 132), 4);
        // 7B gate+up (N 37888): 1184 blocks.
        assert_eq!(rows_splits((37888, 3584, 1), 132), 1);
    }
}
