//! Host side of our Hopper GEMM (kernels/gemm_wgmma.cu): `wgmma` on
//! TMA-loaded, 128-byte-swizzled tiles, an mbarrier pipeline between a
//! producer warp and two consumer warpgroups (one for the 64-row tiles, two
//! blocks per SM), a persistent grid, optionally clusters of 2 blocks along
//! M that multicast each B tile to both (and of 2 along N that multicast
//! each A tile), or a ping-pong schedule (each consumer warpgroup takes
//! whole 128x128 tiles in turn, one's epilogue under the other's main loop),
//! split K where the tiles cannot fill the GPU, the matmul epilogue fused.
//!
//! One module per (tile, dtype), specialised by defines; the kernel's name
//! says which (`gemm_bf16_wgmma_128x256x64`). It runs only on sm_90a, and
//! only where TMA can describe the operands: the layout of
//! [`mma_fits`](crate::ops::matmul::mma_fits) with 16-byte aligned base
//! addresses and strides that a tensor map accepts; `run` returns
//! `Ok(false)` otherwise and the caller falls back to the `mma.sync` GEMM.

use std::ffi::c_void;
use std::sync::Mutex;

use cudarc::driver::sys;

use super::{arg, i32_dim, Chunk, Epilogue, Module, Ptrs, COMMON, EPILOGUE, OP};
use crate::cuda::{CudaDevice, KernelSource};
use crate::error::Result;
use crate::ops::matmul::MatmulProblem;
use crate::tensor::DType;

/// The usual block tile rows (two consumer warpgroups of m64) and the K
/// step (64 bf16 = 128 bytes, the swizzle's row).
const BM: usize = 128;
const BK: usize = 64;
/// Shared memory of the epilogue's staging buffers per consumer warpgroup
/// (gemm_wgmma.cu EPI_BYTES: `bufs` 8 KB chunks of D, by default two with
/// two consumer warpgroups and one with one, and at least the 64 x 36
/// floats of the general epilogue) and the slack for aligning stages to 1024.
const fn epi_bytes(consumers: usize, bufs: usize) -> usize {
    let chunks = if bufs > 0 {
        bufs * 8192
    } else if consumers == 2 {
        2 * 8192
    } else {
        8192
    };
    let floats = 64 * 36 * 4;
    if chunks > floats {
        chunks
    } else {
        floats
    }
}
const ALIGN_SLACK: usize = 1024;
/// The bias of the common epilogue's 64-column chunk, per consumer
/// warpgroup (gemm_wgmma.cu EPI_BIAS floats).
const EPI_BIAS_BYTES: usize = 64 * 4;
/// Shared memory of one Hopper SM.
const SMEM_PER_SM: usize = 228 * 1024;

/// A block tile (128 x `bn` x 64), its pipeline depth, the blocks per
/// cluster along M (1, or 2 sharing B tiles through TMA multicast) and
/// along N (1, or 2 sharing A tiles), and the consumer
/// warpgroups (2, one per m64 half; or 1 taking both, with two blocks per
/// SM so that one block's epilogue overlaps the other's main loop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WgmmaTile {
    /// 128, or 256: each of the two consumer warpgroups takes 128 rows.
    pub bm: usize,
    pub bn: usize,
    pub stages: usize,
    pub cluster: usize,
    /// Blocks per cluster along N (1 or 2), sharing each A tile.
    pub cluster_n: usize,
    pub consumers: usize,
    /// Ping-pong (128x128, 2 consumers, no cluster): each consumer
    /// warpgroup takes whole tiles, the two alternating, so that one's
    /// epilogue runs while the other's main loop keeps the tensor cores busy.
    pub pingpong: bool,
    /// Staging buffers of the common epilogue per consumer warpgroup (0:
    /// the default, gemm_wgmma.cu EPI_BUFS), `_e<n>` in the name otherwise.
    pub epi_bufs: usize,
    /// Rows of units swept together (a run-time argument, not a define):
    /// a wave of blocks then reads `group` rows of A tiles and about
    /// SMs / `group` columns of B tiles, which stay in L2.
    pub group: usize,
}

impl WgmmaTile {
    /// This tile's schedule on a `bm` x `bn` block with `stages` stages.
    const fn sized(self, bm: usize, bn: usize, stages: usize) -> WgmmaTile {
        WgmmaTile {
            bm,
            bn,
            stages,
            ..self
        }
    }

    /// Blocks per cluster.
    pub const fn cluster_blocks(&self) -> usize {
        self.cluster * self.cluster_n
    }

    /// This tile in clusters of `m` x `n` blocks.
    const fn clustered(self, m: usize, n: usize) -> WgmmaTile {
        WgmmaTile {
            cluster: m,
            cluster_n: n,
            ..self
        }
    }

    pub const fn threads(&self) -> usize {
        128 * (self.consumers + 1)
    }

    /// Blocks resident on one SM (the persistent grid is this many per SM):
    /// one consumer warpgroup leaves room for two, where their shared memory
    /// fits (with the 1 KB the driver reserves per block and the static
    /// barriers).
    pub const fn blocks_per_sm(&self) -> usize {
        if self.consumers == 1 && 2 * (self.shared_bytes() + 1024 + 256) <= SMEM_PER_SM {
            2
        } else {
            1
        }
    }

    pub const fn shared_bytes(&self) -> usize {
        self.stages * (self.bm + self.bn) * BK * 2
            + self.consumers * (epi_bytes(self.consumers, self.epi_bufs) + EPI_BIAS_BYTES)
            + ALIGN_SLACK
    }

    /// `gemm_bf16_wgmma_128x256x64`, with `_c2` for clusters of 2 along M,
    /// `_c1x2` / `_c2x2` for clusters along N too.
    pub fn name(&self, dtype: DType) -> String {
        format!("gemm_{}_wgmma_{}", short(dtype), self.suffix())
    }

    fn suffix(&self) -> String {
        let c = if self.cluster_n > 1 {
            format!("_c{}x{}", self.cluster, self.cluster_n)
        } else if self.cluster > 1 {
            format!("_c{}", self.cluster)
        } else {
            String::new()
        };
        let o = if self.consumers == 1 && self.bm == BM {
            "_occ2"
        } else if self.consumers == 1 && self.blocks_per_sm() == 1 {
            "_occ1"
        } else {
            ""
        };
        let p = if self.pingpong { "_pingpong" } else { "" };
        let e = if self.epi_bufs > 0 {
            format!("_e{}", self.epi_bufs)
        } else {
            String::new()
        };
        let g = if self.group != GROUP {
            format!("_g{}", self.group)
        } else {
            String::new()
        };
        format!("{}x{}x{BK}{c}{o}{p}{e}{g}", self.bm, self.bn)
    }

    /// f32 accumulators per consumer thread (gemm_wgmma.cu ACC): m64
    /// row blocks per consumer warpgroup times BN / 2.
    const fn acc(&self) -> usize {
        let mh = if self.pingpong {
            2
        } else {
            self.bm / 64 / self.consumers
        };
        mh * self.bn / 2
    }

    fn source(&self, dtype: DType) -> KernelSource {
        let src = KernelSource::new(
            &self.name(dtype),
            &[COMMON, EPILOGUE, &wgmma_operands(self.bn, self.acc())],
            include_str!("../../kernels/gemm_wgmma.cu"),
        )
        .define("GEMM_NAME", self.name(dtype))
        .define("GEMM_DT", super::gemm_dt(dtype))
        .define("GEMM_BM", self.bm)
        .define("GEMM_BN", self.bn)
        .define("GEMM_STAGES", self.stages)
        .define("GEMM_CLUSTER", self.cluster)
        .define("GEMM_CLUSTER_N", self.cluster_n)
        .define("GEMM_CONSUMERS", self.consumers)
        .define("GEMM_PINGPONG", u8::from(self.pingpong));
        if self.epi_bufs > 0 {
            src.define("GEMM_EPI_BUFS", self.epi_bufs)
        } else {
            src
        }
    }
}

/// The inline-PTX operand lists of `wgmma.mma_async` m64n`bn`k16 and of
/// `wgmma.wait_group` over `acc` accumulators (gemm_wgmma.cu `wgmma`,
/// `wgmma_wait`): PTX names each of the BN / 2 accumulator registers of a
/// thread, so the lists are spelled out per width.
fn wgmma_operands(bn: usize, acc: usize) -> String {
    let half = bn / 2;
    let list = |n: usize| {
        (0..n)
            .map(|i| format!("%{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let ops = |n: usize, off: &str| {
        (0..n)
            .map(|i| format!("\"+f\"(d[{off}{i}])"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "#define WGMMA_SHAPE \"m64n{bn}k16\"\n\
         #define WGMMA_D_LIST \"{}\"\n\
         #define WGMMA_AB \"%{half}, %{}\"\n\
         #define WGMMA_SCALE \"%{}\"\n\
         #define WGMMA_D_OPS(OFF) {}\n\
         #define WGMMA_WAIT_N \"%{acc}\"\n\
         #define WGMMA_ACC_OPS {}\n",
        list(half),
        half + 1,
        half + 2,
        ops(half, "(OFF) + "),
        ops(acc, ""),
    )
}

fn short(d: DType) -> &'static str {
    if d == DType::F16 {
        "f16"
    } else {
        "bf16"
    }
}

/// Unit rows swept together by default.
const GROUP: usize = 16;

/// Two m64n256 warpgroups: the most math per byte of shared memory read.
pub const TILE_128X256X64: WgmmaTile = WgmmaTile {
    bm: BM,
    bn: 256,
    stages: 4,
    cluster: 1,
    cluster_n: 1,
    consumers: 2,
    pingpong: false,
    epi_bufs: 0,
    group: GROUP,
};
/// Two m64n128 warpgroups: twice the tiles, for shapes where 128x256 leaves
/// SMs idle.
pub const TILE_128X128X64: WgmmaTile = WgmmaTile {
    bm: BM,
    bn: 128,
    stages: 6,
    cluster: 1,
    cluster_n: 1,
    consumers: 2,
    pingpong: false,
    epi_bufs: 0,
    group: GROUP,
};
/// 128x128 with one consumer warpgroup and 3 stages: two blocks per SM.
pub const TILE_128X128X64_OCC2: WgmmaTile = WgmmaTile {
    stages: 3,
    consumers: 1,
    ..TILE_128X128X64
};
/// 128x256 in clusters of 2 along M: each B tile read from L2 once for two
/// blocks.
pub const TILE_128X256X64_C2: WgmmaTile = WgmmaTile {
    cluster: 2,
    ..TILE_128X256X64
};
pub const TILE_128X128X64_C2: WgmmaTile = WgmmaTile {
    cluster: 2,
    ..TILE_128X128X64
};

/// The wider middle widths in clusters of 2 along M (half the B traffic):
/// on an H200 (bench/results/2026-11-27-nvidia-h200-gemm-bench-session8.md)
/// 3-5% faster than unclustered on long runs (7B down at M = 4096: 806.5
/// against 849.7 us on 128x224; 7B qkv at M = 4096: 202.5 against 209.1 on
/// 128x192), as 128x256 is. 128x112 and 128x144 in clusters were not
/// faster (7B down at M = 512: 115.5 against 106.7 us on 128x112).
pub const TILE_128X192X64_C2: WgmmaTile = TILE_128X192X64.clustered(2, 1);
pub const TILE_128X224X64_C2: WgmmaTile = TILE_128X224X64.clustered(2, 1);
/// Tiles in 2 x 2 clusters (each A tile shared along N too: half of both
/// operands' traffic), by name only: slower than the planner's pick on
/// every benchmark shape (0.5B down at M = 512, unsplit: 21.8 us on 64x64
/// in 2 x 2 clusters against 18.0 unclustered; 8192^3: 1983.5 us on
/// 128x128 against 1772.2 in clusters of 2 along M). An H200 runs 30
/// clusters of 4 of the 128-row tiles at once (120 of 132 SMs).
pub const TILE_128X128X64_C2X2: WgmmaTile = TILE_128X128X64.clustered(2, 2);
pub const TILE_64X64X64_C2X2: WgmmaTile = TILE_64X64X64.clustered(2, 2);

/// 128x128 tiles, each taken whole by one of the two consumer warpgroups in
/// turn (ping-pong): the epilogue of one tile overlaps the next tile's main
/// loop instead of stalling the tensor cores.
pub const TILE_128X128X64_PINGPONG: WgmmaTile = WgmmaTile {
    pingpong: true,
    ..TILE_128X128X64
};

/// Widths between 128 and 256 (and one under 128) for shapes whose 128- or
/// 256-wide tiles leave a wave of SMs partly idle: each makes the tiles of
/// some of the benchmark's shapes fill whole waves on 132 SMs (7B qkv at
/// M = 512: 4 x 32 tiles of 128x144 against 4 x 18 of 128x256; 7B down at
/// M = 512: 4 x 32 of 128x112), as cuBLAS's own tile choice does. Their
/// pipelines are as deep as 227 KB of shared memory allows.
pub const TILE_128X112X64: WgmmaTile = TILE_128X128X64.sized(128, 112, 6);
pub const TILE_128X144X64: WgmmaTile = TILE_128X128X64.sized(128, 144, 5);
pub const TILE_128X192X64: WgmmaTile = TILE_128X128X64.sized(128, 192, 4);
pub const TILE_128X224X64: WgmmaTile = TILE_128X128X64.sized(128, 224, 4);

/// 256-row tiles, each consumer warpgroup taking 128 rows (two m64 blocks):
/// half the units of the 128-row tiles, and each unit reads its B tile once
/// for twice the rows. 256x160 makes 0.5B gate+up at M = 512 one wave of
/// 122 units on 132 SMs, where 128x112 makes 2.6.
pub const TILE_256X128X64: WgmmaTile = TILE_128X128X64.sized(256, 128, 4);
pub const TILE_256X160X64: WgmmaTile = TILE_256X128X64.sized(256, 160, 3);

/// 64-row tiles for products of at most 64 rows: one consumer warpgroup
/// (m64), two blocks per SM; no tensor-core work or A traffic on rows past
/// M as with 128-row tiles.
pub const TILE_64X128X64: WgmmaTile = WgmmaTile {
    bm: 64,
    stages: 4,
    consumers: 1,
    ..TILE_128X128X64
};
pub const TILE_64X64X64: WgmmaTile = TILE_64X128X64.sized(64, 64, 6);
pub const TILE_64X192X64: WgmmaTile = TILE_64X128X64.sized(64, 192, 3);

/// The 64-row tiles with one block per SM, for grids of at most one block
/// per SM: the pipeline as deep as the SM's shared memory allows (13, 8
/// and 6 stages against 6, 4 and 3). A lone 64-row block is bound by its
/// loads' round trip, not its math: on an H200 (bench/results/
/// 2026-11-27-nvidia-h200-gemm-bench-session10.md, back to back) 0.5B down
/// at M = 512 (112 units of 64x64) took 13.1-13.2 us against 16.3-16.4 on
/// 6 stages, and 7B qkv at M = 64 (72 units) 13.1 against 15.6.
pub const TILE_64X64X64_OCC1: WgmmaTile = TILE_64X64X64.sized(64, 64, 13);
pub const TILE_64X128X64_OCC1: WgmmaTile = TILE_64X64X64.sized(64, 128, 8);
pub const TILE_64X192X64_OCC1: WgmmaTile = TILE_64X64X64.sized(64, 192, 6);
/// 128x128 two per SM with two stages and four staging buffers for the
/// common epilogue: every 64 x 64 chunk of a tile goes to its TMA store
/// without waiting for the chunk before it (the products of one or two K
/// tiles, whose units are mostly their epilogue).
pub const TILE_128X128X64_OCC2_E4: WgmmaTile = WgmmaTile {
    stages: 2,
    epi_bufs: 4,
    ..TILE_128X128X64_OCC2
};
/// 64x16 with 20 stages, one block per SM: an M <= 16 product transposed
/// (the weight's rows as the tile's 64 rows, the activations as its 16
/// columns), where `swaps` takes it. On an H200 (bench/results/
/// 2026-11-27-nvidia-h200-gemm-bench-session10.md) 7B qkv at M = 1-16 took
/// 13.7-14.2 us against 14.2-15.9 on the `mma.sync` tile, level on the 7B
/// gate+up, down and lm_head products, slower on 0.5B gate+up (152 units)
/// and the batched attention products.
pub const TILE_64X16X64_OCC1: WgmmaTile = TILE_64X64X64.sized(64, 16, 20);

pub const TILES: [WgmmaTile; 24] = [
    TILE_64X64X64,
    TILE_64X128X64,
    TILE_64X192X64,
    TILE_256X128X64,
    TILE_256X160X64,
    TILE_128X256X64,
    TILE_128X128X64,
    TILE_128X128X64_OCC2,
    TILE_128X256X64_C2,
    TILE_128X128X64_C2,
    TILE_128X128X64_PINGPONG,
    TILE_128X112X64,
    TILE_128X144X64,
    TILE_128X192X64,
    TILE_128X224X64,
    TILE_128X192X64_C2,
    TILE_128X224X64_C2,
    TILE_128X128X64_C2X2,
    TILE_64X64X64_C2X2,
    TILE_64X64X64_OCC1,
    TILE_64X128X64_OCC1,
    TILE_64X192X64_OCC1,
    TILE_64X16X64_OCC1,
    TILE_128X128X64_OCC2_E4,
];

impl std::str::FromStr for WgmmaTile {
    type Err = String;
    /// `128x256x64`, `128x256x64_c2`, ... (the kernel name's suffix), with
    /// `_g<rows>` for another raster group.
    fn from_str(s: &str) -> std::result::Result<WgmmaTile, String> {
        let (base, group) = match s.rsplit_once("_g") {
            Some((b, g)) => (b, g.parse().map_err(|_| format!("bad group in {s:?}"))?),
            None => (s, GROUP),
        };
        TILES
            .into_iter()
            .find(|t| t.suffix() == base)
            .map(|t| WgmmaTile { group, ..t })
            .ok_or_else(|| format!("no wgmma tile {s:?}"))
    }
}

macro_rules! modules {
    ($($name:ident = $tile:expr, $dt:expr;)*) => {
        $(static $name: Module = Module::new(|| $tile.source($dt));)*
        fn module(tile: &WgmmaTile, dtype: DType) -> &'static Module {
            // The group is a kernel argument: any group shares the module.
            let tile = WgmmaTile { group: GROUP, ..*tile };
            $(if tile == $tile && dtype == $dt { return &$name; })*
            unreachable!("no gemm_wgmma module for {tile:?} {dtype}")
        }
        /// Every variant, for the compile test.
        pub(crate) fn all_sources() -> Vec<KernelSource> {
            vec![$($name.source().clone()),*]
        }
    };
}

modules! {
    BF16_128X256X64 = TILE_128X256X64, DType::BF16;
    F16_128X256X64 = TILE_128X256X64, DType::F16;
    BF16_128X128X64 = TILE_128X128X64, DType::BF16;
    F16_128X128X64 = TILE_128X128X64, DType::F16;
    BF16_128X128X64_OCC2 = TILE_128X128X64_OCC2, DType::BF16;
    F16_128X128X64_OCC2 = TILE_128X128X64_OCC2, DType::F16;
    BF16_128X256X64_C2 = TILE_128X256X64_C2, DType::BF16;
    F16_128X256X64_C2 = TILE_128X256X64_C2, DType::F16;
    BF16_128X128X64_C2 = TILE_128X128X64_C2, DType::BF16;
    F16_128X128X64_C2 = TILE_128X128X64_C2, DType::F16;
    BF16_128X128X64_PINGPONG = TILE_128X128X64_PINGPONG, DType::BF16;
    F16_128X128X64_PINGPONG = TILE_128X128X64_PINGPONG, DType::F16;
    BF16_128X112X64 = TILE_128X112X64, DType::BF16;
    F16_128X112X64 = TILE_128X112X64, DType::F16;
    BF16_128X144X64 = TILE_128X144X64, DType::BF16;
    F16_128X144X64 = TILE_128X144X64, DType::F16;
    BF16_128X192X64 = TILE_128X192X64, DType::BF16;
    F16_128X192X64 = TILE_128X192X64, DType::F16;
    BF16_64X64X64 = TILE_64X64X64, DType::BF16;
    F16_64X64X64 = TILE_64X64X64, DType::F16;
    BF16_64X128X64 = TILE_64X128X64, DType::BF16;
    F16_64X128X64 = TILE_64X128X64, DType::F16;
    BF16_64X192X64 = TILE_64X192X64, DType::BF16;
    F16_64X192X64 = TILE_64X192X64, DType::F16;
    BF16_256X128X64 = TILE_256X128X64, DType::BF16;
    F16_256X128X64 = TILE_256X128X64, DType::F16;
    BF16_256X160X64 = TILE_256X160X64, DType::BF16;
    F16_256X160X64 = TILE_256X160X64, DType::F16;
    BF16_128X224X64 = TILE_128X224X64, DType::BF16;
    F16_128X224X64 = TILE_128X224X64, DType::F16;
    BF16_128X192X64_C2 = TILE_128X192X64_C2, DType::BF16;
    F16_128X192X64_C2 = TILE_128X192X64_C2, DType::F16;
    BF16_128X224X64_C2 = TILE_128X224X64_C2, DType::BF16;
    F16_128X224X64_C2 = TILE_128X224X64_C2, DType::F16;
    BF16_128X128X64_C2X2 = TILE_128X128X64_C2X2, DType::BF16;
    F16_128X128X64_C2X2 = TILE_128X128X64_C2X2, DType::F16;
    BF16_64X64X64_C2X2 = TILE_64X64X64_C2X2, DType::BF16;
    F16_64X64X64_C2X2 = TILE_64X64X64_C2X2, DType::F16;
    BF16_64X64X64_OCC1 = TILE_64X64X64_OCC1, DType::BF16;
    F16_64X64X64_OCC1 = TILE_64X64X64_OCC1, DType::F16;
    BF16_64X128X64_OCC1 = TILE_64X128X64_OCC1, DType::BF16;
    F16_64X128X64_OCC1 = TILE_64X128X64_OCC1, DType::F16;
    BF16_64X192X64_OCC1 = TILE_64X192X64_OCC1, DType::BF16;
    F16_64X192X64_OCC1 = TILE_64X192X64_OCC1, DType::F16;
    BF16_64X16X64_OCC1 = TILE_64X16X64_OCC1, DType::BF16;
    F16_64X16X64_OCC1 = TILE_64X16X64_OCC1, DType::F16;
    BF16_128X128X64_OCC2_E4 = TILE_128X128X64_OCC2_E4, DType::BF16;
    F16_128X128X64_OCC2_E4 = TILE_128X128X64_OCC2_E4, DType::F16;
}

/// Units (`tile.cluster` x `tile.cluster_n` tiles, one K share) of `batch`
/// `m x n` products split `splits` ways.
fn units(tile: &WgmmaTile, (m, n, batch): (usize, usize, usize), splits: usize) -> usize {
    batch
        * m.div_ceil(tile.bm).div_ceil(tile.cluster)
        * n.div_ceil(tile.bn).div_ceil(tile.cluster_n)
        * splits
}

/// The most ways K is split.
const MAX_SPLITS: usize = 8;

/// Bytes per microsecond a 64-row block alone on its SM takes in through
/// TMA while every SM streams its own tiles: 16 KB (a 64x64 step) per
/// 0.18 us. 0.5B down at M = 1024 (224 units of 64x64, two waves on one
/// block per SM, 13 stages) took 29.8 us back to back on an H200, 16.5 of
/// them for the second wave (bench/results/2026-11-27-nvidia-h200-gemm-
/// bench-session10.md). A microbenchmark streaming 16 KB steps from a
/// buffer that stays in L2 reached 68 bytes per clock (about 134 KB/us).
const INTAKE_BYTES_PER_US: f64 = 91.0e3;

/// Estimated microseconds of `batch` `m x n x k` products with `tile` split
/// `splits` ways on `sms` SMs: waves of units, each streaming its K tiles
/// plus a fixed cost for the pipeline's drain and the epilogue; split K adds
/// the partials' round trip through memory and a second launch. Fitted to
/// the H200 runs of the TMA-store epilogue
/// (bench/results/2026-11-26-nvidia-h200-gemm-bench-tmastore.md and the
/// tuning round before it, bf16 and f16): a 128xBNx64 step takes
/// 0.05 + 0.00289 BN us with every SM busy (0.42 at 128, 0.79 at 256, as
/// measured on 8192^3 and the 7B lm_head at M = 4096), and a unit's fixed
/// cost (drain, epilogue) 1.0 + 0.01 (BN - 128) us. Over the 15 shapes with
/// M >= 512 of the four runs, the unsplit pick by this estimate reaches
/// within 0.2% of the geomean of the fastest tile per shape (0.89-0.90 of
/// cuBLAS), against 1.2% for the first fit. The ping-pong tile
/// keeps the old model (each epilogue under the other warpgroup's main
/// loop) but the planner no longer takes it: with the cheap epilogue it
/// won on one shape of 15 (0.5B gate+up at M = 4096, 5%) and lost on 8192^3.
fn estimate_us(
    tile: &WgmmaTile,
    (m, n, k, batch): (usize, usize, usize, usize),
    splits: usize,
    sms: usize,
) -> f64 {
    let w = tile.bn as f64;
    // A 256-row tile: twice the math per step and twice the epilogue.
    let rows = tile.bm as f64 / BM as f64;
    let (mut step_us, mut unit_us) = (0.05 + 0.00289 * w * rows, (1.0 + (w - 128.0) * 0.01) * rows);
    if tile.cluster_blocks() > 1 {
        // Each B tile read from L2 once for two blocks: 4.5% less per step
        // on the long runs (H200, 128x256: 8192^3 1619 against 1690 us, 7B
        // gate+up at M = 4096 1655 against 1725), the same unit cost.
        step_us *= 0.955;
    }
    if tile.consumers == 1 && tile.bm == BM {
        // Two blocks share an SM: each steps at half the rate, and one's
        // epilogue hides behind the other's main loop.
        (step_us, unit_us) = (2.0 * 0.38, 0.5);
    }
    if tile.bm == 64 && tile.blocks_per_sm() == 1 {
        // A 64-row block alone on its SM steps no faster than the SM takes
        // in its stage, and each unit pays the pipeline's fill.
        let stage_bytes = ((tile.bm + tile.bn) * BK * 2) as f64;
        step_us = step_us.max(stage_bytes / INTAKE_BYTES_PER_US);
        unit_us = unit_us.max(1.0);
    }
    let per_unit = k.div_ceil(BK).div_ceil(splits);
    let slots = (sms * tile.blocks_per_sm() / tile.cluster_blocks()).max(1);
    let waves = units(tile, (m, n, batch), splits).div_ceil(slots);
    let main_us = per_unit as f64 * step_us;
    let mut us = if tile.pingpong {
        waves as f64 * main_us.max((main_us + unit_us) / 2.0) + unit_us
    } else {
        waves as f64 * (main_us + unit_us)
    };
    if splits > 1 {
        // The partials' f32 round trip and the summing launch; 5 us fixed
        // (3 took 128x224 split 2 for 7B down at M = 512, 119 us, over
        // 128x128 unsplit, 112 us).
        let bytes = (batch * m * n) as f64 * (8.0 * splits as f64 + 2.0);
        us += 5.0 + bytes / 3.0e6;
    }
    us
}

/// The tiles the planner chooses from, earlier ones winning ties (a later
/// one must be 3% faster by the estimate). 128x256 in clusters of 2 wins the
/// long runs since its barrier arrivals stopped fencing at cluster scope
/// (bench/results/2026-11-27-nvidia-h200-gemm-bench-cluster.md; before, the
/// clustered tiles ran at 0.3-0.6x of the unclustered). The others are
/// correct (tests/cuda_wgmma.rs) but were not faster on an H200: 128x128 in
/// clusters matched 128x128, the
/// two-blocks-per-SM 128x128 tile matched 128x256 on the largest shapes only
/// (bench/results/2026-11-26-nvidia-h200-gemm-bench-wgmma.md), and the
/// ping-pong tile, see `estimate_us`. The widths between 128 and 256 fill
/// the SMs' last wave where 128 and 256 leave it partly idle (7B qkv at
/// M = 512: 4 x 32 tiles of 128x144 on 132 SMs, 30.6 us against 47-49 for
/// 128 and 256; 7B down at M = 512: 4 x 32 tiles of 128x112, 0.92x cuBLAS
/// against 0.83x on 128x128), as cuBLAS's own tile choice does. 256x160
/// makes 0.5B gate+up at M = 512 one wave (122 units) where 128x112 makes
/// 2.6: 23.0 against 26.5 us back to back (H200,
/// bench/results/2026-11-27-nvidia-h200-gemm-bench-bm256.md); the 256-row
/// tiles are slower on every other shape of the benchmark, which the
/// estimate's per-step cost (twice the math of a 128-row step) keeps them
/// from. 64x64 with one block per SM and 13 stages takes products of few
/// tiles over a long K: 0.5B down at M = 512, 112 units in one wave,
/// 13.1-13.2 us against 16.1 for 128x112 split 4 (H200, back to back,
/// bench/results/2026-11-27-nvidia-h200-gemm-bench-session10.md).
pub const AUTO_TILES: [WgmmaTile; 11] = [
    TILE_128X256X64,
    TILE_128X256X64_C2,
    TILE_128X128X64,
    TILE_128X192X64,
    TILE_128X192X64_C2,
    TILE_128X224X64,
    TILE_128X224X64_C2,
    TILE_128X144X64,
    TILE_128X112X64,
    TILE_256X160X64,
    TILE_64X64X64_OCC1,
];

/// The tiles for products of at most 64 rows, chosen by the same estimate
/// (a 64-row step costing half the math of a 128-row one, two blocks per
/// SM). On an H200 (bench/results/2026-11-27-nvidia-h200-gemm-bench-
/// bm64.md, bf16, M = 64, back to back) they took the 7B gate+up product
/// from 88.4 to 70.7 us (64x192; cuBLAS 76.8), lm_head from 294.5 to 262.0
/// (64x192; cuBLAS 273.5), qkv from 20.6 to 18.5 and down from 50.5 to
/// 46.6 (64x128), the 0.5B products 4-11% faster: a 128-row tile spends
/// half its tensor-core work and A traffic on rows past M. 64x64 (6 stages)
/// won where the units are few (bench/results/2026-11-27-nvidia-h200-gemm-
/// bench-bm64x64.md, back to back): 7B qkv 15.7 us against 18.8 on 64x128
/// split 4, 7B down 45.0 against 46.3, the 0.5B products 9.5 and 10.8
/// against 10.1 and 12.0. At M <= 16 the `mma.sync` kernel stays faster
/// than every 64-row tile (qkv 14.1-15.8 us against 16.4-19.7).
pub const SMALL_M_TILES: [WgmmaTile; 3] = [TILE_64X128X64, TILE_64X192X64, TILE_64X64X64];

/// Most rows for which the planner takes SMALL_M_TILES.
const SMALL_M: usize = 64;

/// The tile and the number of K splits for `batch` `m x n x k` products on
/// `sms` SMs (`tile` forces the tile): the lowest estimate, each split
/// keeping at least 4 K tiles, over SMALL_M_TILES for at most 64 rows;
/// longer products of at most SHORT_K_TILES K tiles take `short_k_tile`,
/// unsplit.
pub fn plan(
    (m, n, k, batch): (usize, usize, usize, usize),
    sms: usize,
    tile: Option<WgmmaTile>,
) -> (WgmmaTile, usize) {
    if tile.is_none() && m > SMALL_M && k.div_ceil(BK) <= SHORT_K_TILES {
        return (short_k_tile(), 1);
    }
    let max_splits = (k.div_ceil(BK) / 4).clamp(1, MAX_SPLITS);
    // The fastest (tile, splits) of `tiles` by the estimate; a later tile
    // must be `margin` under the best so far.
    let pick = |tiles: &[WgmmaTile], margin: f64| {
        let mut best = (tiles[0], 1, f64::INFINITY);
        for &t in tiles {
            for s in 1..=max_splits {
                let us = estimate_us(&t, (m, n, k, batch), s, sms);
                if us < best.2 * margin {
                    best = (t, s, us);
                }
            }
        }
        best
    };
    let (t, s, _) = match tile {
        Some(t) => pick(&[t], 0.97),
        None if m <= SMALL_M => pick(&SMALL_M_TILES, 0.97),
        None => pick(&AUTO_TILES, 0.97),
    };
    let s = super::nonempty_splits(k.div_ceil(BK), s);
    if tile.is_some() {
        return (t, s);
    }
    (deepen(t, units(&t, (m, n, batch), s), sms), s)
}

/// The one-block-per-SM variant of a 64-row tile whose `units` put at most
/// one block on each of `sms` SMs (the two-per-SM tile would leave half of
/// each SM's shared memory unused).
fn deepen(t: WgmmaTile, units: usize, sms: usize) -> WgmmaTile {
    if t.bm != 64 || t.blocks_per_sm() == 1 || t.cluster_blocks() > 1 || units > sms {
        return t;
    }
    [TILE_64X64X64_OCC1, TILE_64X128X64_OCC1, TILE_64X192X64_OCC1]
        .into_iter()
        .find(|d| d.bn == t.bn)
        .unwrap_or(t)
}

/// K tiles (of 64) up to which a product takes `short_k_tile`.
const SHORT_K_TILES: usize = 2;

/// The tile for a product of at most SHORT_K_TILES K tiles (the attention
/// products: Q K^T per head): its run is the operands' reads and the
/// output's writes, not the math, which the estimate (fitted to long-K
/// shapes, where a unit's epilogue is a small share) does not see. 128x128
/// with two blocks per SM (one consumer warpgroup each), whose blocks
/// overlap one's epilogue with the other's loads. Two K tiles (28 heads,
/// K = 128): back to back in two processes on an H200 (bench/results/
/// 2026-11-27-nvidia-h200-gemm-bench-session8.md) 10.9-11.1 us against
/// 11.5-11.9 on 128x256. One K tile (14 heads, K = 64): 128x256, the
/// tile whose units read the fewest bytes, was faster back to back on an
/// H200 (6.3-6.4 us against 6.7-6.9), but each call after the L2 and
/// instruction-cache flush (gemm_bench's method since session 12) took
/// 8.9-9.2 us on 128x128 two per SM against 9.2-9.4 on 128x256 in four of
/// four pairs, bf16 and f16 (H100, bench/results/2026-12-07-nvidia-h100-
/// session25-call1-kcluster-attn-qband-profile.log). With two stages and
/// four staging buffers (`TILE_128X128X64_OCC2_E4`), two rounds in one
/// process on an H100 (bench/results/2026-12-07-nvidia-h100-session28-
/// call1-e4-record.log): 7B 12.8 us against 14.0-14.1 (f16), level in
/// bf16 (13.1-13.2 against 13.2-13.3); 0.5B 8.7-8.8 against 9.5-9.6
/// (bf16) but 9.3-9.4 against 8.8-8.9 (f16): 3% faster over the four.
fn short_k_tile() -> WgmmaTile {
    TILE_128X128X64_OCC2_E4
}

/// A 3-D tensor map (K, rows, batch) of a K-contiguous operand: `rows` rows
/// of `k` elements `ld` apart, `count` matrices `bs` apart (one when `bs` is
/// 0: the kernel then reads batch 0 for every batch), boxes of `box_rows` x
/// 64 in the 128-byte swizzle; `None` where the driver refuses the layout.
fn tensor_map(
    base: u64,
    dtype: DType,
    (k, rows, ld): (usize, usize, usize),
    (count, bs): (usize, usize),
    box_rows: usize,
) -> Option<sys::CUtensorMap> {
    let es = 2u64;
    let batched = bs != 0 && count > 1;
    let dims: [u64; 3] = [
        k as u64,
        rows as u64,
        if batched { count as u64 } else { 1 },
    ];
    let strides: [u64; 2] = [
        ld as u64 * es,
        if batched {
            bs as u64 * es
        } else {
            (rows.max(1) * ld) as u64 * es
        },
    ];
    let boxes: [u32; 3] = [BK as u32, box_rows as u32, 1];
    let elem_strides: [u32; 3] = [1, 1, 1];
    let ty = if dtype == DType::F16 {
        sys::CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_FLOAT16
    } else {
        sys::CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
    };
    let mut map = sys::CUtensorMap { opaque: [0; 16] };
    // SAFETY: every array has the rank's length (3, or 2 for the strides);
    // the driver only writes `map` and reads the arrays; `base` is a device
    // address the driver checks for alignment.
    let r = unsafe {
        sys::cuTensorMapEncodeTiled(
            &mut map,
            ty,
            3,
            base as *mut c_void,
            dims.as_ptr(),
            strides.as_ptr(),
            boxes.as_ptr(),
            elem_strides.as_ptr(),
            sys::CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_NONE,
            sys::CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_128B,
            sys::CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            sys::CUtensorMapFloatOOBfill::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        )
    };
    match r.result() {
        Ok(()) => Some(map),
        Err(e) => {
            log::debug!(
                "[matmul] wgmma: cuTensorMapEncodeTiled refused {dims:?} {strides:?}: {e:?}"
            );
            None
        }
    }
}

/// METALLIC_WGMMA_CLUSTER_LAUNCH=n (2 to 16; a diagnostic for gemm_bench):
/// unclustered tiles launch in clusters of n blocks that share nothing.
fn cluster_launch() -> Option<usize> {
    static N: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::env::var("METALLIC_WGMMA_CLUSTER_LAUNCH")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|n| (2..=16).contains(n))
    })
}

/// How many clusters of `cluster` blocks of `name` run at once on `dev`
/// (asked of the driver once per kernel and device).
fn cluster_slots(
    dev: &CudaDevice,
    module: &Module,
    name: &str,
    launch: ((u32, u32, u32), u32),
    cluster: usize,
) -> Result<usize> {
    // Keyed by the cluster's size too: METALLIC_WGMMA_CLUSTER_LAUNCH
    // launches a kernel in clusters of a size other than its tile's.
    static SLOTS: Mutex<Vec<(usize, String, usize, usize)>> = Mutex::new(Vec::new());
    let known = SLOTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|e| e.0 == dev.ordinal() && e.1 == name && e.2 == cluster)
        .map(|e| e.3);
    if let Some(n) = known {
        return Ok(n);
    }
    let n = module.max_active_clusters(dev, name, launch, cluster as u32)? as usize;
    if n == 0 {
        crate::bail!(OP, "{name}: no cluster of {cluster} blocks fits on the GPU");
    }
    SLOTS.lock().unwrap_or_else(|e| e.into_inner()).push((
        dev.ordinal(),
        name.to_string(),
        cluster,
        n,
    ));
    Ok(n)
}

/// How many clusters of `tile` (of `dtype`) the driver lets run at once on
/// `dev` (the persistent grid of the clustered tiles), for benchmarks.
pub fn max_clusters(dev: &CudaDevice, tile: &WgmmaTile, dtype: DType) -> Result<usize> {
    let name = WgmmaTile {
        group: GROUP,
        ..*tile
    }
    .name(dtype);
    let launch = ((tile.threads() as u32, 1, 1), tile.shared_bytes() as u32);
    if tile.blocks_per_sm() > 1 {
        prefer_shared(dev, module(tile, dtype), &name)?;
    }
    cluster_slots(
        dev,
        module(tile, dtype),
        &name,
        launch,
        tile.cluster_blocks(),
    )
}

/// Asks for the largest shared-memory carveout for `name` (once per kernel
/// and device), so that two of its blocks fit on an SM.
fn prefer_shared(dev: &CudaDevice, module: &Module, name: &str) -> Result<()> {
    static DONE: Mutex<Vec<(usize, String)>> = Mutex::new(Vec::new());
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if !done.iter().any(|d| d.0 == dev.ordinal() && d.1 == name) {
        module.prefer_max_shared(dev, name)?;
        done.push((dev.ordinal(), name.to_string()));
    }
    Ok(())
}

/// Whether `dev` runs the wgmma kernel (Hopper, compiled for sm_90a).
pub fn supported(dev: &CudaDevice) -> bool {
    dev.arch() == "sm_90a"
}

/// Whether an M <= 16 product runs transposed on TILE_64X16X64_OCC1 (D^T =
/// W x^T: the weight's rows as the tile's 64, the activations as its 16
/// columns) instead of the `mma.sync` tile: on Hopper, one batch, the
/// tensor-core layout, at most one 64-row unit per SM and no K split. On
/// an H200 (bench/results/2026-11-27-nvidia-h200-gemm-bench-session10.md,
/// alternating with the build before) that took 7B qkv (72 units, unsplit)
/// from 14.2-16.0 to 13.8-14.4 us back to back; where it split K (7B down,
/// 56 units in 2 splits, 0.5B down, 14 in 8) it was 3% slower to 10%
/// faster, with more units (0.5B gate+up, 152) or batches (the attention
/// products) slower.
pub fn swaps(p: &MatmulProblem, dev: &CudaDevice) -> bool {
    let sms = dev.multiprocessors();
    supported(dev)
        && p.m <= 16
        && p.batch() == 1
        && crate::ops::matmul::mma_fits(p)
        && p.n.div_ceil(TILE_64X16X64_OCC1.bm) <= sms
        && plan((p.n, p.m, p.k, 1), sms, Some(TILE_64X16X64_OCC1)).1 == 1
}

/// Runs the chunk on the wgmma GEMM; `Ok(false)` when the device or the
/// operands do not suit it (the caller falls back to the `mma.sync` GEMM).
/// `tile` forces the tile (benchmarks); the splits are always planned.
pub(super) fn run(
    p: &MatmulProblem,
    x: &Ptrs,
    ch: &Chunk,
    e: &Epilogue,
    tile: Option<WgmmaTile>,
) -> Result<bool> {
    // K = 0 (D = beta C + bias) is left to the other kernels: every unit
    // here starts its sum with a product.
    if !supported(&x.dev) || p.a.dtype.block_bytes() != 2 || p.b.dtype != p.a.dtype || p.k == 0 {
        return Ok(false);
    }
    let (m, n, k) = (i32_dim("m", p.m)?, i32_dim("n", p.n)?, i32_dim("k", p.k)?);
    let count = ch.count;
    let sms = x.dev.multiprocessors();
    let (tile, mut splits) = plan((p.m, p.n, p.k, count), sms, tile);
    // METALLIC_WGMMA_SPLITS forces the count.
    static FORCED: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    if let Some(s) = super::forced_splits(
        &FORCED,
        "METALLIC_WGMMA_SPLITS",
        p.k.div_ceil(BK),
        MAX_SPLITS,
    ) {
        splits = s;
    }
    // A = x: rows of K at A's row stride; B = W^T: W's rows (B's columns)
    // at B's column stride.
    let a_base = x.a + ch.a.off as u64 * 2;
    let b_base = x.b + ch.b.off as u64 * 2;
    if ch.a.cs != 1 || ch.b.rs != 1 || !a_base.is_multiple_of(16) || !b_base.is_multiple_of(16) {
        log::debug!("[matmul] wgmma: operands not TMA-aligned, mma.sync fallback");
        return Ok(false);
    }
    let map_a = tensor_map(
        a_base,
        p.a.dtype,
        (p.k, p.m, ch.a.rs as usize),
        (count, ch.a.bs as usize),
        tile.bm / tile.cluster_n,
    );
    let map_b = tensor_map(
        b_base,
        p.b.dtype,
        (p.k, p.n, ch.b.cs as usize),
        (count, ch.b.bs as usize),
        tile.bn / tile.cluster,
    );
    let (Some(map_a), Some(map_b)) = (map_a, map_b) else {
        return Ok(false);
    };
    // D for the TMA stores of the common epilogue (alpha, bias, D in the
    // operands' dtype with contiguous rows): boxes of 64 x 64; the kernel's
    // threads store D where TMA cannot describe it.
    let d_base = x.d + ch.d.off as u64 * 2;
    // The kernel's own test for that epilogue (gemm_wgmma.cu `direct`):
    // rows (and batches) 16-byte aligned and N a multiple of 8, which TMA
    // needs too; the driver is not asked to describe anything else.
    let map_d = if splits == 1
        && e.beta == 0.0
        && e.act == 0
        && p.d.dtype == p.a.dtype
        && ch.d.cs == 1
        && d_base.is_multiple_of(16)
        && ch.d.rs % 8 == 0
        && ch.d.bs % 8 == 0
        && p.n.is_multiple_of(8)
    {
        tensor_map(
            d_base,
            p.d.dtype,
            (p.n, p.m, ch.d.rs as usize),
            (count, ch.d.bs as usize),
            64,
        )
    } else {
        None
    };
    let d_tma = i32::from(map_d.is_some());
    // Every unit takes the common epilogue (gemm_wgmma.cu `direct`: D's
    // tensor map, and a bias along D's columns): the kernel without the
    // other epilogues' code. METALLIC_WGMMA_DIRECT=0 keeps the full kernel
    // (an A/B switch for gemm_bench).
    static LEAN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let lean =
        *LEAN.get_or_init(|| std::env::var("METALLIC_WGMMA_DIRECT").map_or(true, |v| v != "0"));
    let direct = lean && map_d.is_some() && e.bias_rows == 0;
    let map_d = map_d.unwrap_or(sys::CUtensorMap { opaque: [0; 16] });
    let units = units(&tile, (p.m, p.n, count), splits);
    if units > i32::MAX as usize {
        crate::bail!(
            OP,
            "{}x{} batch {count} needs more tiles than one launch holds",
            p.m,
            p.n
        );
    }
    let total = count * p.m * p.n;
    let scratch = if splits > 1 {
        Some(x.dev.alloc(splits * total * 4)?)
    } else {
        None
    };
    let partial = scratch.as_ref().map_or(0u64, |s| s.ptr());
    let group = tile.group.max(1) as i32;
    let (batch, a_batched, b_batched, s32) = (
        count as i32,
        i32::from(ch.a.bs != 0 && count > 1),
        i32::from(ch.b.bs != 0 && count > 1),
        splits as i32,
    );
    let mut a = [
        arg(&map_a),
        arg(&map_b),
        arg(&map_d),
        arg(&d_tma),
        arg(e),
        arg(&x.c),
        arg(&x.d),
        arg(&x.bias),
        arg(&m),
        arg(&n),
        arg(&k),
        arg(&batch),
        arg(&a_batched),
        arg(&b_batched),
        arg(&s32),
        arg(&partial),
        arg(&group),
        arg(&x.a_scale),
    ];
    // gemm_wgmma.cu ROW_SCALES: the bf16 modules ignore them.
    debug_assert!(x.a_scale == 0 || p.a.dtype == DType::F16);
    // The kernel's name (the group is an argument, not part of it).
    let name = WgmmaTile {
        group: GROUP,
        ..tile
    }
    .name(p.a.dtype);
    let name = if direct {
        format!("{name}_direct")
    } else {
        name
    };
    let module = module(&tile, p.a.dtype);
    let launch = ((tile.threads() as u32, 1, 1), tile.shared_bytes() as u32);
    if tile.blocks_per_sm() > 1 {
        prefer_shared(&x.dev, module, &name)?;
    }
    // Clusters of blocks: the tile's own (a unit is a cluster's tiles), or,
    // as a diagnostic, METALLIC_WGMMA_CLUSTER_LAUNCH's around blocks of an
    // unclustered tile, which share nothing: that times what the cluster
    // launch alone costs (the blocks' placement on the SMs), apart from the
    // clustered kernels' multicast and cross-block barriers.
    let clusters = if tile.cluster_blocks() > 1 {
        Some((tile.cluster_blocks(), units))
    } else {
        cluster_launch().map(|n| (n, units.div_ceil(n)))
    };
    if let Some((n, clusters)) = clusters {
        let slots = cluster_slots(&x.dev, module, &name, launch, n)?;
        let grid = (clusters.min(slots) * n) as u32;
        log::debug!(
            "[matmul] {name}: {units} units over {grid} blocks in clusters of {n}, {splits} K splits"
        );
        module.launch_cluster(
            &x.dev,
            &name,
            ((grid, 1, 1), launch.0, launch.1),
            n as u32,
            &mut a,
        )?;
    } else {
        let grid = (units.min(sms * tile.blocks_per_sm()) as u32, 1, 1);
        log::debug!(
            "[matmul] {name}: {units} units over {} blocks, {splits} K splits",
            grid.0
        );
        module.launch_shared(&x.dev, &name, (grid, launch.0, launch.1), &mut a)?;
    }
    if splits > 1 {
        super::sum_splits(p, x, e, (partial, splits), total)?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_splits_only_where_tiles_cannot_fill_the_gpu() {
        // 8192^3: thousands of tiles, no split, a wide tile.
        let (t, s) = plan((8192, 8192, 8192, 1), 132, None);
        assert!(t.bn >= 192 && s == 1, "{t:?} {s}");
        // Two tiles and a long K: split.
        let (_, s) = plan((200, 300, 4096, 1), 132, None);
        assert!(s > 1, "{s}");
        // Short K: never below 4 K tiles per split.
        assert_eq!(plan((200, 300, 256, 1), 132, None).1, 1);
    }

    #[test]
    fn plan_picks_the_measured_faster_tile() {
        // H200, bench/results/2026-11-26-nvidia-h200-gemm-bench-tmastore.md:
        // where the fastest tile beat the others by more than 4% (closer
        // calls are within the estimate's error and the run's noise).
        let cases = [
            // 7B qkv, M = 512: 128x144 fills one wave (30.6 us; 37-50 the others).
            ((512, 4608, 3584, 1), TILE_128X144X64),
            // 7B down, M = 512: 128x112 fills one wave (0.92x cuBLAS; 0.83x
            // on 128x128, 0.75-0.82x the others).
            ((512, 3584, 18944, 1), TILE_128X112X64),
            // 8192^3 and 7B gate+up at M = 4096: 128x256 in clusters of 2
            // (1.00x and 0.98x cuBLAS; 0.96x and 0.94x unclustered).
            ((8192, 8192, 8192, 1), TILE_128X256X64_C2),
            ((4096, 37888, 3584, 1), TILE_128X256X64_C2),
            // 128x192 and 128x224 in clusters of 2 (session 8): 7B gate+up
            // at M = 512 196.9 us against 201.5 unclustered, 7B down at
            // M = 4096 806.5 against 849.7, 7B qkv at M = 4096 202.5
            // against 209.1.
            ((512, 37888, 3584, 1), TILE_128X192X64_C2),
            ((4096, 3584, 18944, 1), TILE_128X224X64_C2),
            ((4096, 4608, 3584, 1), TILE_128X192X64_C2),
            // The attention products, one or two K tiles: 128x128 two
            // blocks per SM (`short_k_tile`).
            ((512, 512, 128, 28), TILE_128X128X64_OCC2_E4),
            ((512, 512, 64, 14), TILE_128X128X64_OCC2_E4),
            ((1024, 1280, 64, 1), TILE_128X128X64_OCC2_E4),
            // 0.5B gate+up, M = 512: one wave of 256x160 (2026-11-27,
            // 23.0 us back to back against 26.5 on 128x112). The other 0.5B
            // product takes 64x64 with 13 stages (session 10: 13.1 us back
            // to back against 16.1 for 128x112 split 4).
            ((512, 9728, 896, 1), TILE_256X160X64),
            ((512, 896, 4864, 1), TILE_64X64X64_OCC1),
            // Two waves of it lose (M = 1024: 29.8 us against 22.7-23.0 for
            // 128x112 split 2).
            ((1024, 896, 4864, 1), TILE_128X112X64),
            // M = 64: 64-row tiles, 64x192 on the widest products, 64x64
            // on the others (bench/results/2026-11-27-nvidia-h200-gemm-
            // bench-bm64.md and -bm64x64.md).
            ((64, 37888, 3584, 1), TILE_64X192X64),
            ((64, 152064, 3584, 1), TILE_64X192X64),
            ((64, 3584, 18944, 1), TILE_64X64X64),
            // 72 units of 64x64: one block per SM, 13 stages (session 10:
            // 13.1 us against 15.6 on 6 stages).
            ((64, 4608, 3584, 1), TILE_64X64X64_OCC1),
            ((64, 9728, 896, 1), TILE_64X64X64),
            // 84 units (split 6): deep too, as fast as before (session 10,
            // 9.2-13.9 us queued against 9.3-12.5).
            ((64, 896, 4864, 1), TILE_64X64X64_OCC1),
        ];
        for (shape, want) in cases {
            assert_eq!(plan(shape, 132, None).0, want, "{shape:?}");
        }
        // The ping-pong tile runs only by name.
        for m in [512, 4096] {
            assert!(!plan((m, 37888, 3584, 1), 132, None).0.pingpong);
        }
    }

    #[test]
    fn no_k_share_is_empty() {
        for k in 1usize..=64 * 200 {
            for s in 1..=MAX_SPLITS {
                let kt = k.div_ceil(BK);
                let n = super::super::nonempty_splits(k.div_ceil(BK), s);
                let per = kt.div_ceil(n);
                // The kernel's shares: [i * per, min(kt, (i + 1) * per)).
                assert!(n >= 1 && n <= s.max(1));
                assert!(
                    (n - 1) * per < kt,
                    "k {k} splits {s}: share {} empty",
                    n - 1
                );
            }
        }
    }

    #[test]
    fn tile_names_parse_back() {
        for t in TILES {
            let name = t.name(DType::BF16);
            let suffix = name.strip_prefix("gemm_bf16_wgmma_").unwrap();
            assert_eq!(suffix.parse::<WgmmaTile>(), Ok(t));
        }
    }

    #[test]
    fn shared_memory_fits_a_hopper_block() {
        for t in TILES {
            assert!(
                t.shared_bytes() <= 227 * 1024,
                "{t:?}: {}",
                t.shared_bytes()
            );
            // The blocks the persistent grid puts on one SM must all be
            // resident: 228 KB per SM, 1 KB of it reserved per block, and
            // the kernel's static barriers (under 256 bytes).
            let per_block = t.shared_bytes() + 1024 + 256;
            assert!(t.blocks_per_sm() * per_block <= 228 * 1024, "{t:?}");
        }
    }
}
