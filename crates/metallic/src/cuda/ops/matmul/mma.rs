//! Host side of our tensor-core GEMM (kernels/gemm_mma.cu): `mma.sync`
//! m16n8k16 fed by `ldmatrix` from a `cp.async` pipeline, f16/bf16 operands,
//! f32 accumulation, the matmul epilogue fused.
//!
//! One module per (tile, dtype), specialised by defines; the kernel's name
//! says which (`gemm_bf16_mma_128x128x32`). The dispatcher sends only
//! problems that [`mma_fits`](crate::ops::matmul::mma_fits) accepts; this
//! wrapper also needs 16-byte aligned operand addresses and falls back to
//! the SIMT kernel otherwise.

use super::{arg, i32_dim, Chunk, Epilogue, Module, Ptrs, COMMON, EPILOGUE, OP, QUANT};
use crate::cuda::KernelSource;
use crate::error::Result;
use crate::ops::matmul::MatmulProblem;
use crate::tensor::DType;

/// A block tile, its warp tile and the pipeline depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmaTile {
    pub bm: usize,
    pub bn: usize,
    pub bk: usize,
    pub wm: usize,
    pub wn: usize,
    pub stages: usize,
}

impl MmaTile {
    pub const fn threads(&self) -> usize {
        (self.bm / self.wm) * (self.bn / self.wn) * 32
    }

    /// Dynamic shared memory: the pipeline's stages, or the f32 output tile
    /// the epilogue stages in the same memory, whichever is larger.
    pub const fn shared_bytes(&self) -> usize {
        let pipe = self.stages * (self.bm + self.bn) * self.bk * 2;
        let out = self.bm * (self.bn + 4) * 4;
        if pipe > out {
            pipe
        } else {
            out
        }
    }

    /// `gemm_bf16_mma_128x128x32`; pipelines deeper than 4 stages carry
    /// their depth (`gemm_bf16_mma_16x64x64s8`).
    pub fn name(&self, dtype: DType) -> String {
        format!("gemm_{}_mma_{}", short(dtype), self.suffix())
    }

    fn suffix(&self) -> String {
        let deep = if self.stages > 4 {
            format!("s{}", self.stages)
        } else {
            String::new()
        };
        format!("{}x{}x{}{deep}", self.bm, self.bn, self.bk)
    }

    fn source(&self, dtype: DType) -> KernelSource {
        KernelSource::new(
            &self.name(dtype),
            &[COMMON, EPILOGUE],
            include_str!("../../kernels/gemm_mma.cu"),
        )
        .define("GEMM_NAME", self.name(dtype))
        .define("GEMM_DT", super::gemm_dt(dtype))
        .define("GEMM_BM", self.bm)
        .define("GEMM_BN", self.bn)
        .define("GEMM_BK", self.bk)
        .define("GEMM_WM", self.wm)
        .define("GEMM_WN", self.wn)
        .define("GEMM_STAGES", self.stages)
    }
}

/// The block types the tensor-core kernel decodes (`E8<T>` in quant.cuh:
/// wide loads for the first seven, `Q<T>::get` element by element for the
/// other K-quants).
pub const QUANT_TYPES: [DType; 10] = [
    DType::Q4_0,
    DType::Q4_1,
    DType::Q5_0,
    DType::Q5_1,
    DType::Q8_0,
    DType::Q4K,
    DType::Q6K,
    DType::Q2K,
    DType::Q3K,
    DType::Q5K,
];

impl MmaTile {
    /// `gemm_q4_k_mma_128x128x32`: B a GGUF block weight of type `qt`,
    /// decoded into the f16 tiles (kernels/gemm_mma.cu `GEMM_BQ`).
    pub fn quant_name(&self, qt: DType) -> String {
        format!(
            "gemm_{}_mma_{}",
            crate::cuda::ops::get_rows::qname(qt),
            self.suffix()
        )
    }

    fn quant_source(&self, qt: DType) -> KernelSource {
        let name = self.quant_name(qt);
        KernelSource::new(
            &name,
            &[COMMON, EPILOGUE, QUANT],
            include_str!("../../kernels/gemm_mma.cu"),
        )
        .define("GEMM_NAME", &name)
        .define("GEMM_DT", super::gemm_dt(DType::F16))
        .define("GEMM_BQ", format!("QT_{}", qt.name().to_ascii_uppercase()))
        .define("GEMM_BM", self.bm)
        .define("GEMM_BN", self.bn)
        .define("GEMM_BK", self.bk)
        .define("GEMM_WM", self.wm)
        .define("GEMM_WN", self.wn)
        .define("GEMM_STAGES", self.stages)
    }
}

fn short(d: DType) -> &'static str {
    if d == DType::F16 {
        "f16"
    } else {
        "bf16"
    }
}

/// 8 warps of 64x32: the large-M tile.
pub const TILE_128X128X32: MmaTile = MmaTile {
    bm: 128,
    bn: 128,
    bk: 32,
    wm: 64,
    wn: 32,
    stages: 4,
};
/// 4 warps of 32x32: more blocks where 128x128 tiles leave SMs idle.
pub const TILE_64X64X32: MmaTile = MmaTile {
    bm: 64,
    bn: 64,
    bk: 32,
    wm: 32,
    wn: 32,
    stages: 4,
};
/// 4 warps of 16x16 along N: M <= 16 (decode, small batches), where the
/// weight stream is all that matters.
pub const TILE_16X64X64: MmaTile = MmaTile {
    bm: 16,
    bn: 64,
    bk: 64,
    wm: 16,
    wn: 16,
    stages: 4,
};

/// The M <= 16 tile with 8 stages: twice the weight stream in flight per
/// block, two blocks per SM instead of five (see [`small_m_tile`]).
pub const TILE_16X64X64_S8: MmaTile = MmaTile {
    stages: 8,
    ..TILE_16X64X64
};

/// 128x128 with K steps of 64: half the barriers of BK 32, 3 stages.
pub const TILE_128X128X64: MmaTile = MmaTile {
    bm: 128,
    bn: 128,
    bk: 64,
    wm: 64,
    wn: 32,
    stages: 3,
};
/// 8 warps of 64x64: twice the mma per ldmatrix of 64x32 warps, one block
/// per SM (the staged f32 output tile is 133 KB).
pub const TILE_128X256X32: MmaTile = MmaTile {
    bm: 128,
    bn: 256,
    bk: 32,
    wm: 64,
    wn: 64,
    stages: 4,
};

/// Every tile, for benchmarks that time them by name.
pub const TILES: [MmaTile; 6] = [
    TILE_128X128X32,
    TILE_64X64X32,
    TILE_16X64X64,
    TILE_16X64X64_S8,
    TILE_128X128X64,
    TILE_128X256X32,
];

impl std::str::FromStr for MmaTile {
    type Err = String;
    /// `128x128x32` (the kernel name's suffix).
    fn from_str(s: &str) -> std::result::Result<MmaTile, String> {
        TILES
            .into_iter()
            .find(|t| t.suffix() == s)
            .ok_or_else(|| format!("no mma tile {s:?}"))
    }
}

macro_rules! modules {
    ($source:ident, $lookup:ident, $all:ident; $($name:ident = $tile:expr, $dt:expr;)*) => {
        $(static $name: Module = Module::new(|| $tile.$source($dt));)*
        fn $lookup(tile: &MmaTile, dtype: DType) -> Option<&'static Module> {
            $(if *tile == $tile && dtype == $dt { return Some(&$name); })*
            None
        }
        /// Every variant, for the compile test.
        pub(crate) fn $all() -> Vec<KernelSource> {
            vec![$($name.source().clone()),*]
        }
    };
}

modules! {
    source, module, all_sources;
    BF16_128X128X32 = TILE_128X128X32, DType::BF16;
    F16_128X128X32 = TILE_128X128X32, DType::F16;
    BF16_64X64X32 = TILE_64X64X32, DType::BF16;
    F16_64X64X32 = TILE_64X64X32, DType::F16;
    BF16_16X64X64 = TILE_16X64X64, DType::BF16;
    F16_16X64X64 = TILE_16X64X64, DType::F16;
    BF16_16X64X64_S8 = TILE_16X64X64_S8, DType::BF16;
    F16_16X64X64_S8 = TILE_16X64X64_S8, DType::F16;
    BF16_128X128X64 = TILE_128X128X64, DType::BF16;
    F16_128X128X64 = TILE_128X128X64, DType::F16;
    BF16_128X256X32 = TILE_128X256X32, DType::BF16;
    F16_128X256X32 = TILE_128X256X32, DType::F16;
}

// The two tiles `quant_tile` chooses at M > 16, for every type of
// QUANT_TYPES.
modules! {
    quant_source, quant_module, all_quant_sources;
    Q4_0_128 = TILE_128X128X32, DType::Q4_0;
    Q4_0_64 = TILE_64X64X32, DType::Q4_0;
    Q4_1_128 = TILE_128X128X32, DType::Q4_1;
    Q4_1_64 = TILE_64X64X32, DType::Q4_1;
    Q5_0_128 = TILE_128X128X32, DType::Q5_0;
    Q5_0_64 = TILE_64X64X32, DType::Q5_0;
    Q5_1_128 = TILE_128X128X32, DType::Q5_1;
    Q5_1_64 = TILE_64X64X32, DType::Q5_1;
    Q8_0_128 = TILE_128X128X32, DType::Q8_0;
    Q8_0_64 = TILE_64X64X32, DType::Q8_0;
    Q4K_128 = TILE_128X128X32, DType::Q4K;
    Q4K_64 = TILE_64X64X32, DType::Q4K;
    Q6K_128 = TILE_128X128X32, DType::Q6K;
    Q6K_64 = TILE_64X64X32, DType::Q6K;
    Q2K_128 = TILE_128X128X32, DType::Q2K;
    Q2K_64 = TILE_64X64X32, DType::Q2K;
    Q3K_128 = TILE_128X128X32, DType::Q3K;
    Q3K_64 = TILE_64X64X32, DType::Q3K;
    Q5K_128 = TILE_128X128X32, DType::Q5K;
    Q5K_64 = TILE_64X64X32, DType::Q5K;
}

/// Below this many 128x128 blocks per batch (about one wave on a 132-SM
/// Hopper) the 64x64 tile keeps more SMs busy.
const LARGE_TILE_MIN_BLOCKS: usize = 132;

/// The tile for an `m x n` product, `batch` times.
pub fn pick_tile(m: usize, n: usize, batch: usize) -> MmaTile {
    if m <= 16 {
        TILE_16X64X64
    } else if batch * m.div_ceil(128) * n.div_ceil(128) < LARGE_TILE_MIN_BLOCKS {
        TILE_64X64X32
    } else {
        TILE_128X128X32
    }
}

/// The tile of a block-weight product (M > 16, a prefill) on `sms` SMs:
/// 128x128 once its blocks fill three quarters of the SMs in one wave, not
/// the whole wave `pick_tile` asks of the f16 / bf16 products. Decoding the
/// weight into each tile costs the small tile twice the decode per output
/// that the large one pays. On an H100 (session 24, synthetic Qwen2.5 7B
/// q4_k_m, a 512-token prompt; bench/results/2026-12-07-nvidia-h100-
/// session24-call2-tiles-profile.log) the 7B's products of N = 3584 (112
/// blocks of 128x128) took 19.7 ms a prompt on 128x128 against 21.7 on
/// 64x64 (Q4_K: q, o, half the down products) and 12.9 against 15.7 (Q6_K
/// down), while k and v (N = 512, 16 blocks) took 6.7 and 2.7 ms against 5.2
/// and 1.9.
pub fn quant_tile(m: usize, n: usize, batch: usize, sms: usize) -> MmaTile {
    if 4 * batch * m.div_ceil(128) * n.div_ceil(128) >= 3 * sms {
        TILE_128X128X32
    } else {
        TILE_64X64X32
    }
}

/// The M <= 16 tile and its K splits for `batch` `m x n x k` products on
/// `sms` SMs: the 8-stage pipeline where its two blocks per SM hold every
/// block in one wave (qkv, the 0.5B weights) or the blocks make many waves
/// (lm_head), each block streaming at least 8 K tiles; the 4-stage one
/// (five blocks per SM) elsewhere: a few waves of two (gate+up: 592 blocks,
/// 2.2 waves) or short K (the attention products). Fitted to a sweep on an
/// H200 (bf16, M = 1, bench/results/2026-11-27-nvidia-h200-gemm-bench-
/// session6.md): 8 stages took lm_head 254 us against 270, qkv 15.8
/// against 16.6, the 0.5B gate+up and down 10.7 and 10.6 against 11.2 and
/// 11.0; gate+up 77.4 against 70.7, the attention products 12.9 and 21.6
/// against 9.5 and 14.4.
pub fn small_m_tile(
    (m, n, k, batch): (usize, usize, usize, usize),
    sms: usize,
) -> (MmaTile, usize) {
    let splits = k_splits(&TILE_16X64X64, (m, n, k, batch), sms);
    let blocks = batch * n.div_ceil(TILE_16X64X64.bn) * splits;
    let per_block = k.div_ceil(TILE_16X64X64.bk) / splits;
    let slots = 2 * sms.max(1);
    let deep = per_block >= 8 && (blocks <= slots || blocks >= 8 * slots);
    (
        if deep {
            TILE_16X64X64_S8
        } else {
            TILE_16X64X64
        },
        splits,
    )
}

/// A block's fixed cost in the split estimate, in K tiles streamed.
const SPLIT_BLOCK_TILES: usize = 8;

/// The most ways the small-M tile splits K (the kernel's SUM_MAX_SPLITS).
const MAX_SPLITS: usize = 16;

/// How many ways to split K for the small-M tile (M <= 16: the weight
/// stream is the whole cost). Blocks spread over `sms` SMs round-robin, so
/// the busiest SM streams ceil(blocks / sms) shares of ceil(k tiles /
/// splits) tiles each, plus a fixed cost per block of SPLIT_BLOCK_TILES
/// tiles' worth (prologue, partial store, ticket, the last block's sum);
/// split partials add their f32 round trip. The estimate's lowest pick,
/// keeping at least 2 K tiles per split and no empty split. Fitted to a
/// sweep of forced splits on an H200 (bf16, M 1 and 16, 2026-11-27): 7B
/// down (56 column blocks, 296 K tiles) fastest at 6-9 splits (7 picked,
/// 39.6 us against 84.9 unsplit), qkv (72 blocks, 56 tiles) at 3-6 (3
/// picked, within 4% of the best), gate+up (592 blocks) and lm_head
/// unsplit (2 splits cost 4-9%).
pub fn k_splits(
    tile: &MmaTile,
    (m, n, k, batch): (usize, usize, usize, usize),
    sms: usize,
) -> usize {
    if tile.bm != 16 {
        return 1;
    }
    let blocks = batch * m.div_ceil(tile.bm) * n.div_ceil(tile.bn);
    let k_tiles = k.div_ceil(tile.bk);
    let tile_bytes = (tile.bn * tile.bk * 2) as f64;
    let cost = |s: usize| {
        let per_sm = (blocks * s).div_ceil(sms.max(1)) as f64;
        let stream = per_sm * (k_tiles.div_ceil(s) + SPLIT_BLOCK_TILES) as f64 * tile_bytes;
        let partials = if s > 1 {
            (2 * s * batch * m * n * 4) as f64 / sms.max(1) as f64
        } else {
            0.0
        };
        stream + partials
    };
    let best = (1..=(k_tiles / 2).clamp(1, MAX_SPLITS))
        .min_by(|&a, &b| cost(a).total_cmp(&cost(b)))
        .unwrap_or(1);
    super::nonempty_splits(k_tiles, best)
}

/// Whether every operand address of this chunk is 16-byte aligned.
fn aligned(p: &MatmulProblem, x: &Ptrs, ch: &Chunk) -> bool {
    let ok = |ptr: u64, off: i64| (ptr + off as u64 * 2).is_multiple_of(16);
    ok(x.a, ch.a.off) && ok(x.b, ch.b.off) && p.a.dtype.block_bytes() == 2
}

/// Runs the chunk on the tensor cores; `Ok(false)` when its addresses are
/// not aligned (the caller falls back to the SIMT kernel).
pub(super) fn run(
    p: &MatmulProblem,
    x: &Ptrs,
    ch: &Chunk,
    e: &Epilogue,
    tile: Option<MmaTile>,
) -> Result<bool> {
    if !aligned(p, x, ch) {
        log::debug!("[matmul] mma: operands not 16-byte aligned, SIMT fallback");
        return Ok(false);
    }
    let sms = x.dev.multiprocessors();
    // The M <= 16 plan comes with its splits.
    let (tile, planned) = match tile {
        Some(t) => (t, None),
        None if p.m <= 16 => {
            let (t, s) = small_m_tile((p.m, p.n, p.k, ch.count), sms);
            (t, Some(s))
        }
        None => (pick_tile(p.m, p.n, ch.count), None),
    };
    let blocks = blocks(p, &tile)?;
    // METALLIC_MMA_SPLITS forces the count of the M <= 16 tiles.
    static FORCED: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    let forced = super::forced_splits(
        &FORCED,
        "METALLIC_MMA_SPLITS",
        p.k.div_ceil(tile.bk),
        MAX_SPLITS,
    );
    let splits = match forced {
        Some(s) if tile.bm == 16 => s,
        _ => planned.unwrap_or_else(|| k_splits(&tile, (p.m, p.n, p.k, ch.count), sms)),
    };
    // The kernel sums at most SUM_MAX_SPLITS (= MAX_SPLITS) partials.
    debug_assert!(splits <= MAX_SPLITS);
    let total = ch.count * p.m * p.n;
    let scratch = if splits > 1 {
        Some(x.dev.alloc(splits * total * 4)?)
    } else {
        None
    };
    let partial = scratch.as_ref().map_or(0u64, |s| s.ptr());
    let tickets = if splits > 1 {
        x.dev.tickets(blocks * ch.count)?
    } else {
        0
    };
    let Some(module) = module(&tile, p.a.dtype) else {
        unreachable!("no gemm_mma module for {tile:?} {}", p.a.dtype)
    };
    let name = tile.name(p.a.dtype);
    launch(
        module,
        &name,
        &tile,
        (blocks, splits),
        (p, x, ch, e),
        (partial, tickets),
    )?;
    Ok(true)
}

/// `blocks` x `splits` blocks of `tile` (x the tiles of the product, y
/// its K shares, z the chunk's batch) with the kernel's arguments (A's row
/// scales from `x.a_scale`).
fn launch(
    module: &Module,
    name: &str,
    tile: &MmaTile,
    (blocks, splits): (usize, usize),
    (p, x, ch, e): (&MatmulProblem, &Ptrs, &Chunk, &Epilogue),
    (partial, tickets): (u64, u64),
) -> Result<()> {
    let (m, n, k) = (i32_dim("m", p.m)?, i32_dim("n", p.n)?, i32_dim("k", p.k)?);
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
        arg(&tickets),
        arg(&x.a_scale),
    ];
    let launch = (
        (blocks as u32, splits as u32, ch.count as u32),
        (tile.threads() as u32, 1, 1),
        tile.shared_bytes() as u32,
    );
    module.launch_shared(&x.dev, name, launch, &mut a)
}

/// The tiles of `p` for `tile`, which one launch's grid must hold.
fn blocks(p: &MatmulProblem, tile: &MmaTile) -> Result<usize> {
    let blocks = p.m.div_ceil(tile.bm) * p.n.div_ceil(tile.bn);
    if blocks > i32::MAX as usize {
        crate::bail!(
            OP,
            "{}x{} needs more blocks than one launch holds",
            p.m,
            p.n
        );
    }
    Ok(blocks)
}

/// A block-weight product at M > 16 on the tensor cores
/// (`gemm_<type>_mma_<tile>`): `x.a` / `ch.a` an f16 K-contiguous copy of
/// A, each row divided by its power of two at `x.a_scale`, `x.b` / `ch.b`
/// the weight in bytes (offset of batch 0's first row, bytes between rows
/// in `cs`, between batches in `bs`). `Ok(false)` where no kernel takes the
/// type (the caller runs the SIMT kernels).
pub(super) fn run_quant(
    p: &MatmulProblem,
    x: &Ptrs,
    ch: &Chunk,
    e: &Epilogue,
    tile: Option<MmaTile>,
) -> Result<bool> {
    let qt = p.b.dtype;
    let sms = x.dev.multiprocessors();
    let tile = tile.unwrap_or_else(|| quant_tile(p.m, p.n, ch.count, sms));
    let Some(module) = quant_module(&tile, qt) else {
        return Ok(false);
    };
    let blocks = blocks(p, &tile)?;
    // One K share: no partials, no tickets.
    let name = tile.quant_name(qt);
    launch(module, &name, &tile, (blocks, 1), (p, x, ch, e), (0, 0))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_weight_products_take_the_large_tile_from_three_quarters_of_a_wave() {
        // The 7B at M = 512 on 132 SMs: q / o / down (112 blocks of 128x128)
        // and gate / up (592) take 128x128; k and v (16) take 64x64.
        assert_eq!(quant_tile(512, 3584, 1, 132), TILE_128X128X32);
        assert_eq!(quant_tile(512, 18944, 1, 132), TILE_128X128X32);
        assert_eq!(quant_tile(512, 512, 1, 132), TILE_64X64X32);
        // 99 blocks is three quarters of 132; 98 is not.
        assert_eq!(quant_tile(128 * 99, 128, 1, 132), TILE_128X128X32);
        assert_eq!(quant_tile(128 * 98, 128, 1, 132), TILE_64X64X32);
        assert_eq!(quant_tile(128 * 49, 128, 2, 132), TILE_64X64X32);
        // The 1.5B's q / o at M = 512 (48 blocks) stay on 64x64.
        assert_eq!(quant_tile(512, 1536, 1, 132), TILE_64X64X32);
    }

    #[test]
    fn small_m_splits_balance_the_sms() {
        let t = TILE_16X64X64;
        // 7B down, qkv, gate+up, lm_head at M = 1 on 132 SMs.
        assert_eq!(k_splits(&t, (1, 3584, 18944, 1), 132), 7);
        assert_eq!(k_splits(&t, (1, 4608, 3584, 1), 132), 3);
        assert_eq!(k_splits(&t, (1, 37888, 3584, 1), 132), 1);
        assert_eq!(k_splits(&t, (16, 152064, 3584, 1), 132), 1);
        // The 8-stage tile: one wave of two blocks per SM, or many waves.
        let pick = |shape| small_m_tile(shape, 132).0;
        assert_eq!(pick((1, 4608, 3584, 1)), TILE_16X64X64_S8); // qkv
        assert_eq!(pick((1, 152064, 3584, 1)), TILE_16X64X64_S8); // lm_head
        assert_eq!(pick((1, 9728, 896, 1)), TILE_16X64X64_S8); // 0.5B gate+up
        assert_eq!(pick((1, 37888, 3584, 1)), TILE_16X64X64); // gate+up
        assert_eq!(pick((1, 3584, 18944, 1)), TILE_16X64X64); // down, 7 splits
        assert_eq!(pick((1, 4096, 128, 28)), TILE_16X64X64); // attention

        // The op cases reach both: 3 x 3000 x 3000 (optest/matmul.rs) runs
        // the 8-stage tile on the GPU.
        assert_eq!(pick((3, 3000, 3000, 1)), TILE_16X64X64_S8);

        // Short K: at least 2 K tiles a split; larger tiles never split.
        assert_eq!(k_splits(&t, (1, 64, 128, 1), 132), 1);
        assert_eq!(k_splits(&t, (1, 64, 256, 1), 132), 2);
        assert_eq!(k_splits(&TILE_128X128X32, (16, 64, 18944, 1), 132), 1);
        for k in [64, 100, 4864, 18944] {
            let s = k_splits(&t, (8, 896, k, 3), 132);
            let kt = k.div_ceil(64);
            assert!(
                (s - 1) * kt.div_ceil(s) < kt,
                "k {k}: split {s} has an empty share"
            );
        }
    }
}
