//! The matmul dispatcher: one ordered list of named predicates per device; the
//! first rule whose predicate holds picks the kernel. Forcing `Native` or
//! `Vendor` is itself a predicate, so tests and benchmarks go through the same
//! table as `Auto`.

use super::{MatmulBackend, MatmulProblem};
use crate::device::Device;
use crate::error::Result;
use crate::tensor::DType;

/// The implementations a matmul can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatmulKernel {
    /// Ours on the CPU: packed panels, register-blocked, multithreaded.
    CpuBlocked,
    /// Ours on the CPU for GGUF block weights: streams W's blocks, never
    /// dequantizing the whole weight.
    CpuQuant,
    /// The `gemm` crate, in the vendor library's seat (quantized weights are
    /// dequantized whole first, as llama.cpp's BLAS path does).
    CpuVendor,
    /// Ours on CUDA for float operands on the CUDA cores, epilogue fused,
    /// every layout: f32 operands on the exact fp32 GEMM (never TF32:
    /// `gemm_f32_rows_m<MR>` for M <= 16 against a K-contiguous weight,
    /// else `gemm_f32_simt_<BM>x<BN>x<BK>`), other dtype pairs on a simple
    /// tiled one (`gemm_simt_64x64x16_*`).
    CudaNative,
    /// Ours on Hopper (sm_90a): f16/bf16 operands, both K-contiguous, `wgmma`
    /// on TMA-loaded swizzled tiles, warp-specialised and persistent, split K
    /// where tiles cannot fill the GPU, epilogue fused
    /// (`gemm_<dtype>_wgmma_<BM>x<BN>x64`). Falls back to `CudaMma` where TMA
    /// cannot take the operands.
    CudaWgmma,
    /// Ours on CUDA on the tensor cores: f16/bf16 operands, both K-contiguous
    /// (y = x W^T), `mma.sync` with a `cp.async` pipeline, epilogue fused
    /// (`gemm_<dtype>_mma_<BM>x<BN>x<BK>`). Falls back to `CudaNative` when
    /// the operands' addresses are not 16-byte aligned. On Hopper, an
    /// M <= 16 product whose weight makes at most one 64-row unit per SM
    /// and needs no K split runs transposed on the wgmma GEMM instead
    /// (`gemm_<dtype>_wgmma_64x16x64_occ1`, cuda/ops/matmul/wgmma.rs
    /// `swaps`).
    CudaMma,
    /// Ours on CUDA for GGUF block weights: a warp per weight row, blocks
    /// decoded on the fly (`matmul_<type>_warp_row`).
    CudaQuant,
    /// cuBLAS on CUDA (block weights dequantized whole first).
    CudaVendor,
}

/// What a rule may look at besides the problem: the forced backend and, on
/// CUDA, the device's compute capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ctx {
    pub backend: MatmulBackend,
    pub cc: Option<(i32, i32)>,
}

impl Ctx {
    fn hopper(&self) -> bool {
        self.cc == Some((9, 0))
    }
}

/// One entry of a dispatch table.
pub struct Rule {
    pub name: &'static str,
    pub applies: fn(&MatmulProblem, &Ctx) -> bool,
    pub kernel: MatmulKernel,
}

/// Below this many FLOPs the vendor's packing and threading set-up costs more
/// than it saves; above it, the `gemm` crate's tuned micro-kernels win on the
/// CPU (see the `matmul` section of the README for the measurement).
const CPU_VENDOR_MIN_FLOPS: f64 = 2.0 * 128.0 * 128.0 * 128.0;

pub const CPU_RULES: &[Rule] = &[
    Rule {
        name: "forced_vendor",
        applies: |_, x| x.backend == MatmulBackend::Vendor,
        kernel: MatmulKernel::CpuVendor,
    },
    Rule {
        name: "quantized_weights",
        applies: |p, _| p.b.dtype.is_quantized(),
        kernel: MatmulKernel::CpuQuant,
    },
    Rule {
        name: "forced_native",
        applies: |_, x| x.backend == MatmulBackend::Native,
        kernel: MatmulKernel::CpuBlocked,
    },
    Rule {
        name: "large_float",
        applies: |p, _| p.m > 1 && p.n > 1 && p.flops() >= CPU_VENDOR_MIN_FLOPS,
        kernel: MatmulKernel::CpuVendor,
    },
    Rule {
        name: "default",
        applies: |_, _| true,
        kernel: MatmulKernel::CpuBlocked,
    },
];

/// Whether the tensor-core GEMM takes `p`: f16 or bf16 A and B, both with
/// unit stride along K (A `[M, K]` row-major, B the transpose of a row-major
/// `[N, K]` weight), and every row stride, offset and batch stride a
/// multiple of 8 elements (16-byte `cp.async` chunks), K included.
pub fn mma_fits(p: &MatmulProblem) -> bool {
    let half = |d: crate::tensor::DType| {
        matches!(d, crate::tensor::DType::F16 | crate::tensor::DType::BF16)
    };
    let aligned = |v: &super::MatView, ld: usize| {
        ld.is_multiple_of(8)
            && v.offset.is_multiple_of(8)
            && v.batch_strides.iter().all(|s| s.is_multiple_of(8))
    };
    half(p.a.dtype)
        && p.b.dtype == p.a.dtype
        && p.k.is_multiple_of(8)
        && p.a.col_stride == 1
        && p.b.row_stride == 1
        && aligned(&p.a, p.a.row_stride)
        && aligned(&p.b, p.b.col_stride)
}

/// Whether the wgmma GEMM takes `p` on a device of context `x`: Hopper, the
/// tensor-core layout, and more than 16 rows (at M <= 16 the weight stream
/// is all that matters, and the `mma.sync` kernel's 16-row tile wastes
/// none of it). TMA's address alignment is checked at launch.
pub fn wgmma_fits(p: &MatmulProblem, x: &Ctx) -> bool {
    x.hopper() && p.m > 16 && mma_fits(p)
}

/// Shape classes of the CUDA tuning table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapeClass {
    /// M <= 16: decode and small batches (weight-stream bound).
    Decode,
    /// 16 < M < 256.
    Small,
    /// M >= 256 and under 2^34 FLOPs (about a 2048^3 product): at most a few
    /// waves of tiles, where wave quantisation and split K decide.
    Medium,
    /// M >= 256 and at least 2^34 FLOPs: many waves, throughput-bound.
    Large,
}

impl ShapeClass {
    pub fn of(p: &MatmulProblem) -> ShapeClass {
        if p.m <= 16 {
            ShapeClass::Decode
        } else if p.m < 256 {
            ShapeClass::Small
        } else if p.flops() < (1u64 << 34) as f64 {
            ShapeClass::Medium
        } else {
            ShapeClass::Large
        }
    }
}

/// One entry of the CUDA tuning table: on compute capability `cc`, a
/// problem of `dtype` operands in `class` (and in the tensor-core layout)
/// runs `kernel` under `Auto`.
pub struct Tuned {
    pub cc: (i32, i32),
    pub dtype: DType,
    pub class: ShapeClass,
    pub kernel: MatmulKernel,
}

#[allow(dead_code)]
const fn tuned(cc: (i32, i32), dtype: DType, class: ShapeClass, kernel: MatmulKernel) -> Tuned {
    Tuned {
        cc,
        dtype,
        class,
        kernel,
    }
}

/// Where ours beats cuBLAS under `Auto`, by the benchmark; everything not
/// listed goes to cuBLAS. Empty for now: on an H200
/// (bench/results/2026-11-27-nvidia-h200-gemm-bench-session11.md, the final
/// record, each call after a flush of L2 and of the instruction caches) no
/// class has ours ahead on all of its shapes. Large (bf16): 8192^3 1.02x,
/// 7B gate+up at M = 512 and 4096 1.01x, 7B lm_head 1.00-1.01x, 7B down at
/// M = 4096 1.08x, but 7B qkv 0.93-0.96x, 7B down at M = 512 0.98x, the
/// 0.5B products at M = 4096 0.97-0.99x. Medium: 0.79-0.90x at worst (the
/// attention products; the 7B one 0.80-0.82x timed alone). Geomean over the
/// shapes with M >= 512: 0.97 bf16, 0.96-0.97 f16 (0.98 and 1.00 without
/// the flush).
/// At M = 64 (Small, same record) ours leads on the 7B gate+up and lm_head
/// products (1.03-1.06x) but not on 7B down (0.94), qkv (0.94-0.99) or the
/// 0.5B products (0.90-1.05). At M <= 16 (Decode) ours is at 0.94-1.03x on
/// the 7B gate+up, down and lm_head products, 0.79-0.92 on qkv (run
/// transposed), 0.82-1.00 on the 0.5B weights. A
/// class goes in (for example
/// `tuned((9, 0), DType::BF16, ShapeClass::Large, MatmulKernel::CudaWgmma)`)
/// when a run shows ours at or above 1.00x over all of its shapes. f32
/// (bench/results/2026-11-27-nvidia-h200-gemm-bench-session9.md): 0.80-0.83
/// over the six shapes with M >= 512, no class at 1.00x. (Its TF32 variant,
/// 1.5-1.9x cuBLAS's exact SGEMM on the large shapes, is another function
/// and never goes in this table: it runs only by name.)
pub const CUDA_TUNING: &[Tuned] = &[];

fn tuned_kernel(p: &MatmulProblem, x: &Ctx) -> Option<MatmulKernel> {
    let cc = x.cc?;
    let class = ShapeClass::of(p);
    CUDA_TUNING
        .iter()
        .find(|t| t.cc == cc && t.dtype == p.a.dtype && t.class == class)
        .map(|t| t.kernel)
        .filter(|k| match k {
            MatmulKernel::CudaWgmma => wgmma_fits(p, x),
            MatmulKernel::CudaMma => mma_fits(p),
            _ => true,
        })
}

/// On CUDA: our kernel for block weights; for float operands the tuning
/// table decides between ours and cuBLAS (the baseline our GEMM must beat).
/// `Native` forces our float GEMM: wgmma on Hopper where the layout fits,
/// else the `mma.sync` kernel where it fits, else the SIMT one.
pub const CUDA_RULES: &[Rule] = &[
    Rule {
        name: "forced_vendor",
        applies: |_, x| x.backend == MatmulBackend::Vendor,
        kernel: MatmulKernel::CudaVendor,
    },
    Rule {
        name: "quantized_weights",
        applies: |p, _| p.b.dtype.is_quantized(),
        kernel: MatmulKernel::CudaQuant,
    },
    Rule {
        name: "forced_native_wgmma",
        applies: |p, x| x.backend == MatmulBackend::Native && wgmma_fits(p, x),
        kernel: MatmulKernel::CudaWgmma,
    },
    Rule {
        name: "forced_native_mma",
        applies: |p, x| x.backend == MatmulBackend::Native && mma_fits(p),
        kernel: MatmulKernel::CudaMma,
    },
    Rule {
        name: "forced_native",
        applies: |_, x| x.backend == MatmulBackend::Native,
        kernel: MatmulKernel::CudaNative,
    },
    Rule {
        name: "tuned_wgmma",
        applies: |p, x| tuned_kernel(p, x) == Some(MatmulKernel::CudaWgmma),
        kernel: MatmulKernel::CudaWgmma,
    },
    Rule {
        name: "tuned_mma",
        applies: |p, x| tuned_kernel(p, x) == Some(MatmulKernel::CudaMma),
        kernel: MatmulKernel::CudaMma,
    },
    Rule {
        name: "default",
        applies: |_, _| true,
        kernel: MatmulKernel::CudaVendor,
    },
];

/// Picks the kernel for `problem` on `device`; returns the rule's name too.
pub fn select(
    problem: &MatmulProblem,
    backend: MatmulBackend,
    device: &Device,
) -> Result<(&'static str, MatmulKernel)> {
    let (rules, cc) = match device {
        Device::Cpu => (CPU_RULES, None),
        Device::Cuda(d) => (CUDA_RULES, Some(d.compute_capability())),
    };
    let ctx = Ctx { backend, cc };
    let rule = rules
        .iter()
        .find(|r| (r.applies)(problem, &ctx))
        .expect("every dispatch table ends with a rule that always applies");
    Ok((rule.name, rule.kernel))
}
