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
    /// `gemm_f32_rows_k<KC>_m<MR>` for M <= 16 against a K-contiguous weight,
    /// else `gemm_f32_simt_<BM>x<BN>x<BK>`); f32 activations against an
    /// f16 / bf16 weight at M <= 16 on the same rows kernel, reading the
    /// weight in its own dtype; other dtype pairs on a simple tiled one
    /// (`gemm_simt_64x64x16_*`).
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
    half(p.a.dtype)
        && p.b.dtype == p.a.dtype
        && p.a.col_stride == 1
        && aligned(&p.a, p.a.row_stride)
        && weight_fits(p)
}

fn half(d: DType) -> bool {
    matches!(d, DType::F16 | DType::BF16)
}

/// A view whose leading dimension `ld`, offset and batch strides are
/// multiples of 8 elements.
fn aligned(v: &super::MatView, ld: usize) -> bool {
    ld.is_multiple_of(8)
        && v.offset.is_multiple_of(8)
        && v.batch_strides.iter().all(|s| s.is_multiple_of(8))
}

/// B as the tensor-core GEMMs take it: the transpose of a row-major
/// `[N, K]` weight, rows 16-byte aligned, K a multiple of 8.
fn weight_fits(p: &MatmulProblem) -> bool {
    p.k.is_multiple_of(8) && p.b.row_stride == 1 && aligned(&p.b, p.b.col_stride)
}

/// Whether the tensor-core GEMMs take `p` as a mixed pair: more than 16
/// rows of f32 activations (any layout: they are rounded into a
/// K-contiguous copy in f16, cuda/ops/matmul.rs `rounded_a`) against an f16
/// weight that `mma_fits` would take: a model's f16 GGUF weights at
/// prefill. At M <= 16 the rows kernel reads the f32 activations as they
/// are (`mixed_rows_fits`). Not bf16 weights: rounding the activations to
/// bf16 (8 significant bits) moved a synthetic Qwen2.5-1.5B's prefill
/// logits by an NMSE of 1.3e-4 against the exact product, past the 1e-5
/// its f32 paths keep; f16 (11 bits) moved them by 2.9e-6 (H100,
/// bench/results/2026-12-06-nvidia-h100-synthetic-1.5b-mixed-prefill-session14.log).
/// bf16 weights at M > 16 stay on the exact paths.
pub fn mixed_tensor_cores_fit(p: &MatmulProblem) -> bool {
    p.m > 16 && p.a.dtype == DType::F32 && p.b.dtype == DType::F16 && weight_fits(p)
}

/// Whether our f32 rows kernel takes `p` (cuda/ops/matmul/f32.rs: M <= 16,
/// f32 A and B, B the transpose of a row-major `[N, K]` weight whose rows
/// start on 16-byte boundaries); elsewhere `CudaNative` runs the tiled f32
/// GEMM, which no tuning entry stands for.
pub fn f32_rows_fits(p: &MatmulProblem) -> bool {
    p.b.dtype == DType::F32 && rows_fits(p)
}

/// Whether the rows kernel takes `p` as a mixed pair: f32 activations
/// against an f16 or bf16 weight (a model's f16 / bf16 GGUF weights at
/// decode), read in its own dtype.
pub fn mixed_rows_fits(p: &MatmulProblem) -> bool {
    matches!(p.b.dtype, DType::F16 | DType::BF16) && rows_fits(p)
}

/// M <= 16, f32 A, B the transpose of a row-major `[N, K]` weight whose
/// rows start on 16-byte boundaries (the rows kernel's W loads: groups of 4
/// f32 or 8 f16 / bf16 elements).
fn rows_fits(p: &MatmulProblem) -> bool {
    let group = if p.b.dtype == DType::F32 { 4 } else { 8 };
    p.m <= 16
        && p.a.dtype == DType::F32
        && p.b.row_stride == 1
        && p.b.col_stride.is_multiple_of(group)
        && p.b.offset.is_multiple_of(group)
        && p.b.batch_strides.iter().all(|s| s.is_multiple_of(group))
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

/// Weight classes of the CUDA tuning table, by the size and aspect of B seen
/// as the transpose of a `[N, K]` weight (the per-matrix size of a batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightClass {
    /// At least 2^26 elements (128 MiB of f16) with N >= K: the wide
    /// projections (a 7B model's gate+up and lm_head, 8192^2).
    Wide,
    /// At least 2^26 elements with N < K (a 7B model's down projection).
    Deep,
    /// Under 2^26 elements: qkv, every 0.5B weight, attention's operands.
    Small,
}

impl WeightClass {
    pub fn of(p: &MatmulProblem) -> WeightClass {
        if (p.n as u64) * (p.k as u64) < 1 << 26 {
            WeightClass::Small
        } else if p.n >= p.k {
            WeightClass::Wide
        } else {
            WeightClass::Deep
        }
    }
}

/// One entry of the CUDA tuning table: on compute capability `cc`, a
/// problem of `dtype` operands in `class` with a weight of class `weight`
/// (and in the tensor-core layout) runs `kernel` under `Auto`.
pub struct Tuned {
    pub cc: (i32, i32),
    pub dtype: DType,
    pub class: ShapeClass,
    pub weight: WeightClass,
    pub kernel: MatmulKernel,
}

const fn tuned(
    cc: (i32, i32),
    dtype: DType,
    class: ShapeClass,
    weight: WeightClass,
    kernel: MatmulKernel,
) -> Tuned {
    Tuned {
        cc,
        dtype,
        class,
        weight,
        kernel,
    }
}

/// The benchmark records that justify [`CUDA_TUNING`] (gemm_bench, ours and
/// cuBLAS in one process, each call after a flush of L2 and of the
/// instruction caches), with the dtypes whose kernels are unchanged since:
/// three on an H200 (session 11; its f32 rows ran the rows kernel that
/// session 13 replaced) and three on an H100 (session 13). The test
/// `tuning_table_is_justified_by_the_records` checks every entry against
/// them.
pub const TUNING_RECORDS: &[(&str, &[DType])] = &[
    (
        "2026-11-27-nvidia-h200-gemm-bench-session11-record-final.log",
        &[DType::BF16, DType::F16],
    ),
    (
        "2026-11-27-nvidia-h200-gemm-bench-session11-record-final-2.log",
        &[DType::BF16, DType::F16],
    ),
    (
        "2026-11-27-nvidia-h200-gemm-bench-session11-record-final-3.log",
        &[DType::BF16, DType::F16],
    ),
    (
        "2026-12-06-nvidia-h100-gemm-bench-session13-record-1.log",
        &[DType::BF16, DType::F16, DType::F32],
    ),
    (
        "2026-12-06-nvidia-h100-gemm-bench-session13-record-2.log",
        &[DType::BF16, DType::F16, DType::F32],
    ),
    (
        "2026-12-06-nvidia-h100-gemm-bench-session13-record-3.log",
        &[DType::BF16, DType::F16, DType::F32],
    ),
];

const SM90: (i32, i32) = (9, 0);

/// Where ours runs under `Auto`; everything not listed goes to cuBLAS. A
/// cell (cc x dtype x shape class x weight class) goes in when, over the
/// benchmark's shapes in it and the records in [`TUNING_RECORDS`], ours is
/// at 1.00x cuBLAS or better in geometric mean and no shape averages below
/// 0.99x (run-to-run noise is about 1%).
///
/// On Hopper, f16 and bf16: the wide weights at every M that was measured
/// (decode through 8192 rows; over both cards, geomeans 1.01-1.04x, shape
/// means 0.99x and up): 7B gate+up, 7B lm_head and 8192^3. f32: the wide
/// weight at M <= 16 on the rows kernel (7B gate+up: 1.06x at M = 1,
/// 1.36-1.38x at M = 16 on the H100). Not in: the deep weight (7B down;
/// at M <= 16 in bf16 0.99-1.06x on the H200 but 0.96-0.98x at M = 16 on
/// the H100, in f16 0.95x; 0.97-0.98x at M = 512), the small ones (7B qkv
/// 0.79-1.00x, the 0.5B weights 0.72-1.05x, the attention products
/// 0.77-0.93x), and f32 at M >= 512 (0.77-0.90x: the SIMT GEMM) and on the
/// small and deep weights at M <= 16 (the 0.5B attention product at M = 1:
/// 0.84x; 7B down at M = 1: 0.98x). (The f32 GEMM's TF32 variant, 1.5-1.9x
/// cuBLAS's exact SGEMM on the large shapes, is another function and never
/// goes in this table: it runs only by name.)
pub const CUDA_TUNING: &[Tuned] = &[
    tuned(
        SM90,
        DType::BF16,
        ShapeClass::Decode,
        WeightClass::Wide,
        MatmulKernel::CudaMma,
    ),
    tuned(
        SM90,
        DType::BF16,
        ShapeClass::Small,
        WeightClass::Wide,
        MatmulKernel::CudaWgmma,
    ),
    tuned(
        SM90,
        DType::BF16,
        ShapeClass::Large,
        WeightClass::Wide,
        MatmulKernel::CudaWgmma,
    ),
    tuned(
        SM90,
        DType::F16,
        ShapeClass::Decode,
        WeightClass::Wide,
        MatmulKernel::CudaMma,
    ),
    tuned(
        SM90,
        DType::F16,
        ShapeClass::Small,
        WeightClass::Wide,
        MatmulKernel::CudaWgmma,
    ),
    tuned(
        SM90,
        DType::F16,
        ShapeClass::Large,
        WeightClass::Wide,
        MatmulKernel::CudaWgmma,
    ),
    tuned(
        SM90,
        DType::F32,
        ShapeClass::Decode,
        WeightClass::Wide,
        MatmulKernel::CudaNative,
    ),
];

fn tuned_kernel(p: &MatmulProblem, x: &Ctx) -> Option<MatmulKernel> {
    tuned_in(CUDA_TUNING, p, x)
}

fn tuned_in(table: &[Tuned], p: &MatmulProblem, x: &Ctx) -> Option<MatmulKernel> {
    let cc = x.cc?;
    let (class, weight) = (ShapeClass::of(p), WeightClass::of(p));
    table
        .iter()
        .find(|t| t.cc == cc && t.dtype == p.a.dtype && t.class == class && t.weight == weight)
        .map(|t| t.kernel)
        .filter(|k| match k {
            MatmulKernel::CudaWgmma => wgmma_fits(p, x),
            MatmulKernel::CudaMma => mma_fits(p),
            MatmulKernel::CudaNative => f32_rows_fits(p),
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
    // f32 activations against an f16 weight at M > 16, under `auto` and
    // `native`: the activations rounded to f16, then the tensor cores
    // (cuda/ops/matmul.rs `rounded_a`). cuBLAS takes only matching dtypes,
    // and the vendor path converts the whole weight to f32 for an SGEMM on
    // every call: 3.2-13.7x slower at M = 64-4096 on the 7B and 0.5B
    // weights (6.9-13.7x on the 7B ones), and a synthetic Qwen2.5-1.5B in
    // f16 processes a 512-token prompt at 9.0k tok/s against 5.4k (H100,
    // bench/results/2026-12-06-nvidia-h100-gemm-bench-session14-mixed.log,
    // -synthetic-1.5b-mixed-prefill-session14.log).
    Rule {
        name: "mixed_wgmma",
        applies: |p, x| x.hopper() && mixed_tensor_cores_fit(p),
        kernel: MatmulKernel::CudaWgmma,
    },
    Rule {
        name: "mixed_mma",
        applies: |p, x| x.cc >= Some((8, 0)) && mixed_tensor_cores_fit(p),
        kernel: MatmulKernel::CudaMma,
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
        name: "tuned_f32_rows",
        applies: |p, x| tuned_kernel(p, x) == Some(MatmulKernel::CudaNative),
        kernel: MatmulKernel::CudaNative,
    },
    // f32 activations against an f16 / bf16 weight at M <= 16, on every
    // architecture: cuBLAS takes only matching dtypes, so the vendor path
    // first converts the whole weight to f32 (2 bytes read, 4 written and
    // read again per weight element, every call) where the rows kernel
    // reads its 2 bytes once. On an H100: 7B and 0.5B weights 13-125x
    // faster (bench/results/2026-12-06-nvidia-h100-gemm-bench-session13-mixed.log),
    // a synthetic Qwen2.5-1.5B in f16 / bf16 decoding at 160-177 tok/s
    // against 7.3 (-synthetic-1.5b-f16-bf16-decode.log).
    Rule {
        name: "mixed_rows",
        applies: |p, _| mixed_rows_fits(p),
        kernel: MatmulKernel::CudaNative,
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
    Ok(pick(rules, problem, &Ctx { backend, cc }))
}

/// The first rule of `rules` that takes `problem` in context `x`.
pub fn pick(rules: &[Rule], problem: &MatmulProblem, x: &Ctx) -> (&'static str, MatmulKernel) {
    let rule = rules
        .iter()
        .find(|r| (r.applies)(problem, x))
        .expect("every dispatch table ends with a rule that always applies");
    (rule.name, rule.kernel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::matmul::{Activation, MatView};

    /// `y = x W^T` as the benchmark runs it: A `[batch, M, K]` row-major,
    /// B the transpose of a row-major `[batch, N, K]`, D `[batch, M, N]`.
    fn xwt(dtype: DType, batch: usize, m: usize, n: usize, k: usize) -> MatmulProblem {
        let view = |row_stride, col_stride, matrix| MatView {
            offset: 0,
            row_stride,
            col_stride,
            batch_strides: if batch > 1 { vec![matrix] } else { vec![] },
            dtype,
        };
        MatmulProblem {
            batch_shape: if batch > 1 { vec![batch] } else { vec![] },
            m,
            n,
            k,
            a: view(k, 1, m * k),
            b: view(1, k, n * k),
            c: None,
            c_is_d: false,
            d: view(n, 1, m * n),
            alpha: 1.0,
            beta: 0.0,
            bias_dtype: None,
            activation: Activation::None,
        }
    }

    fn ctx(backend: MatmulBackend, cc: Option<(i32, i32)>) -> Ctx {
        Ctx { backend, cc }
    }

    #[test]
    fn cpu_rules_in_order() {
        let auto = ctx(MatmulBackend::Auto, None);
        let small = xwt(DType::F32, 1, 8, 8, 8);
        let big = xwt(DType::F32, 1, 256, 256, 256);
        let mut quant = xwt(DType::F32, 1, 4, 64, 256);
        quant.b.dtype = DType::Q8_0;
        assert_eq!(pick(CPU_RULES, &small, &auto).1, MatmulKernel::CpuBlocked);
        assert_eq!(pick(CPU_RULES, &big, &auto).1, MatmulKernel::CpuVendor);
        assert_eq!(pick(CPU_RULES, &quant, &auto).1, MatmulKernel::CpuQuant);
        // A GEMV never goes to the vendor's packing, however large.
        let gemv = xwt(DType::F32, 1, 1, 4096, 4096);
        assert_eq!(pick(CPU_RULES, &gemv, &auto).1, MatmulKernel::CpuBlocked);
        let native = ctx(MatmulBackend::Native, None);
        assert_eq!(pick(CPU_RULES, &big, &native).1, MatmulKernel::CpuBlocked);
        assert_eq!(pick(CPU_RULES, &quant, &native).1, MatmulKernel::CpuQuant);
        let vendor = ctx(MatmulBackend::Vendor, None);
        assert_eq!(pick(CPU_RULES, &small, &vendor).1, MatmulKernel::CpuVendor);
        assert_eq!(pick(CPU_RULES, &quant, &vendor).1, MatmulKernel::CpuVendor);
    }

    #[test]
    fn cuda_forced_rules_follow_the_layout_and_the_architecture() {
        let hopper = Some((9, 0));
        let ada = Some((8, 9));
        let native = |cc| ctx(MatmulBackend::Native, cc);
        let p = xwt(DType::BF16, 1, 512, 4608, 3584);
        assert_eq!(
            pick(CUDA_RULES, &p, &native(hopper)).1,
            MatmulKernel::CudaWgmma
        );
        assert_eq!(pick(CUDA_RULES, &p, &native(ada)).1, MatmulKernel::CudaMma);
        // At M <= 16 the weight stream decides: the mma.sync kernel's tile.
        let decode = xwt(DType::BF16, 1, 16, 4608, 3584);
        assert_eq!(
            pick(CUDA_RULES, &decode, &native(hopper)).1,
            MatmulKernel::CudaMma
        );
        // Rows not a multiple of 8 elements (16 bytes): the SIMT GEMM.
        let mut odd = xwt(DType::F16, 1, 512, 4608, 3584);
        odd.a.row_stride = 3585;
        assert_eq!(
            pick(CUDA_RULES, &odd, &native(hopper)).1,
            MatmulKernel::CudaNative
        );
        // W not K-contiguous (B row-major [K, N]): the SIMT GEMM.
        let mut kn = xwt(DType::F16, 1, 512, 4608, 3584);
        (kn.b.row_stride, kn.b.col_stride) = (4608, 1);
        assert_eq!(
            pick(CUDA_RULES, &kn, &native(hopper)).1,
            MatmulKernel::CudaNative
        );
        let f32p = xwt(DType::F32, 1, 512, 4608, 3584);
        assert_eq!(
            pick(CUDA_RULES, &f32p, &native(hopper)).1,
            MatmulKernel::CudaNative
        );
        let vendor = ctx(MatmulBackend::Vendor, hopper);
        assert_eq!(pick(CUDA_RULES, &p, &vendor).1, MatmulKernel::CudaVendor);
        let mut quant = xwt(DType::F32, 1, 4, 64, 256);
        quant.b.dtype = DType::Q4K;
        for backend in [MatmulBackend::Auto, MatmulBackend::Native] {
            assert_eq!(
                pick(CUDA_RULES, &quant, &ctx(backend, hopper)).1,
                MatmulKernel::CudaQuant
            );
        }
    }

    #[test]
    fn cuda_auto_follows_the_tuning_table() {
        let auto = |cc| ctx(MatmulBackend::Auto, cc);
        let hopper = Some((9, 0));
        // 7B gate+up: a wide weight, ours at every M on Hopper.
        for (m, kernel) in [
            (1, MatmulKernel::CudaMma),
            (16, MatmulKernel::CudaMma),
            (64, MatmulKernel::CudaWgmma),
            (4096, MatmulKernel::CudaWgmma),
        ] {
            for dtype in [DType::BF16, DType::F16] {
                let p = xwt(dtype, 1, m, 37888, 3584);
                assert_eq!(WeightClass::of(&p), WeightClass::Wide);
                assert_eq!(
                    pick(CUDA_RULES, &p, &auto(hopper)).1,
                    kernel,
                    "M = {m} {dtype}"
                );
                // Off Hopper no run justifies ours: cuBLAS.
                let v = pick(CUDA_RULES, &p, &auto(Some((8, 9)))).1;
                assert_eq!(v, MatmulKernel::CudaVendor);
            }
        }
        // A wide weight whose layout the tensor-core kernels cannot take.
        let mut odd = xwt(DType::BF16, 1, 512, 37888, 3584);
        odd.a.offset = 3;
        assert_eq!(
            pick(CUDA_RULES, &odd, &auto(hopper)).1,
            MatmulKernel::CudaVendor
        );
        // f32 7B gate+up at M <= 16: the rows kernel; not where the weight
        // is stored M-major (the tiled GEMM would run) or off Hopper.
        let f32_wide = xwt(DType::F32, 1, 16, 37888, 3584);
        assert!(f32_rows_fits(&f32_wide));
        assert_eq!(
            pick(CUDA_RULES, &f32_wide, &auto(hopper)),
            ("tuned_f32_rows", MatmulKernel::CudaNative)
        );
        let v = pick(CUDA_RULES, &f32_wide, &auto(Some((8, 9)))).1;
        assert_eq!(v, MatmulKernel::CudaVendor);
        let mut kn = xwt(DType::F32, 1, 16, 37888, 3584);
        (kn.b.row_stride, kn.b.col_stride) = (37888, 1);
        assert!(!f32_rows_fits(&kn));
        assert_eq!(
            pick(CUDA_RULES, &kn, &auto(hopper)).1,
            MatmulKernel::CudaVendor
        );
        // Mixed pairs (f32 activations, an f16 / bf16 weight): at M <= 16
        // the rows kernel on any GPU; at M > 16 with an f16 weight the
        // tensor cores (wgmma on Hopper, mma.sync from sm_80), with a bf16
        // one the exact paths; neither where the weight's rows do not start
        // on 16-byte boundaries, nor before sm_80 at M > 16.
        let (ada, turing) = (Some((8, 9)), Some((7, 5)));
        for (dt, m, cc, odd, want) in [
            (DType::F16, 1, hopper, false, MatmulKernel::CudaNative),
            (DType::BF16, 16, ada, false, MatmulKernel::CudaNative),
            (DType::F16, 17, hopper, false, MatmulKernel::CudaWgmma),
            (DType::F16, 512, hopper, false, MatmulKernel::CudaWgmma),
            (DType::BF16, 512, hopper, false, MatmulKernel::CudaVendor),
            (DType::F16, 512, ada, false, MatmulKernel::CudaMma),
            (DType::F16, 512, turing, false, MatmulKernel::CudaVendor),
            (DType::BF16, 8, hopper, true, MatmulKernel::CudaVendor),
            (DType::F16, 64, hopper, true, MatmulKernel::CudaVendor),
        ] {
            let mut mixed = xwt(DType::F32, 1, m, 896, 4864);
            mixed.b.dtype = dt;
            if odd {
                mixed.b.offset = 4;
            }
            assert_eq!(mixed_rows_fits(&mixed), want == MatmulKernel::CudaNative);
            assert_eq!(
                mixed_tensor_cores_fit(&mixed),
                m > 16 && !odd && dt == DType::F16,
                "{dt} M = {m}"
            );
            assert_eq!(pick(CUDA_RULES, &mixed, &auto(cc)).1, want, "{dt} M = {m}");
            // `native` takes the tensor-core or rows kernel where `auto`
            // does, else the SIMT GEMM (exact).
            let native = pick(CUDA_RULES, &mixed, &ctx(MatmulBackend::Native, cc)).1;
            let native_want = match want {
                MatmulKernel::CudaVendor => MatmulKernel::CudaNative,
                other => other,
            };
            assert_eq!(native, native_want, "{dt} M = {m} native");
            let vendor = pick(CUDA_RULES, &mixed, &ctx(MatmulBackend::Vendor, cc)).1;
            assert_eq!(vendor, MatmulKernel::CudaVendor);
        }
        // The activations may take any layout: they are copied first.
        let mut at = xwt(DType::F32, 1, 512, 896, 4864);
        (at.a.row_stride, at.a.col_stride, at.b.dtype) = (1, 513, DType::F16);
        assert_eq!(
            pick(CUDA_RULES, &at, &auto(hopper)),
            ("mixed_wgmma", MatmulKernel::CudaWgmma)
        );
        // 7B down (a deep weight) at M <= 16 and 512, f32 at M >= 512, a
        // small weight, attention: cuBLAS.
        let down = |dtype, m| xwt(dtype, 1, m, 3584, 18944);
        assert_eq!(WeightClass::of(&down(DType::BF16, 1)), WeightClass::Deep);
        for p in [
            down(DType::BF16, 8),
            down(DType::F16, 8),
            down(DType::F32, 8),
            xwt(DType::F32, 1, 512, 37888, 3584),
            down(DType::BF16, 512),
            xwt(DType::BF16, 1, 512, 4608, 3584),
            xwt(DType::BF16, 28, 512, 512, 128),
            xwt(DType::F32, 14, 1, 4096, 64),
        ] {
            assert_eq!(
                pick(CUDA_RULES, &p, &auto(hopper)).1,
                MatmulKernel::CudaVendor
            );
        }
    }

    /// One row of a gemm_bench record: dtype, batch, M, N, K and the ratio
    /// cuBLAS time / ours.
    struct Measured {
        label: String,
        dtype: DType,
        shape: (usize, usize, usize, usize),
        ratio: f64,
    }

    fn read_records() -> Vec<Measured> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/results");
        let mut rows = Vec::new();
        for (name, dtypes) in TUNING_RECORDS {
            let path = format!("{dir}/{name}");
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            let before = rows.len();
            for line in text.lines().filter(|l| l.starts_with("| ")) {
                let c: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
                let dtype = match c.get(5) {
                    Some(&"bf16") => DType::BF16,
                    Some(&"f16") => DType::F16,
                    Some(&"f32") => DType::F32,
                    _ => continue,
                };
                if !dtypes.contains(&dtype) {
                    continue;
                }
                let num = |i: usize| c[i].parse::<usize>().unwrap();
                rows.push(Measured {
                    label: format!("{} M={} {}", c[0], c[2], c[5]),
                    dtype,
                    shape: (num(1), num(2), num(3), num(4)),
                    ratio: c[13].parse().unwrap(),
                });
            }
            for dtype in *dtypes {
                let of = rows[before..].iter().filter(|r| r.dtype == *dtype).count();
                assert!(of >= 10, "{path}: {of} rows of {dtype}");
            }
        }
        rows
    }

    /// Checks each entry of `table` against the records: the cell's shapes
    /// at a geometric mean of at least 1.00x cuBLAS, no shape's mean below
    /// 0.99x, and at least one measured shape in the cell.
    fn justify(table: &[Tuned]) -> std::result::Result<(), String> {
        let rows = read_records();
        let mut errors = Vec::new();
        for t in table {
            let x = ctx(MatmulBackend::Auto, Some(t.cc));
            let mut in_cell: Vec<&Measured> = Vec::new();
            if t.cc == SM90 {
                in_cell = rows
                    .iter()
                    .filter(|r| {
                        let (batch, m, n, k) = r.shape;
                        let p = xwt(r.dtype, batch, m, n, k);
                        r.dtype == t.dtype && tuned_in(std::slice::from_ref(t), &p, &x).is_some()
                    })
                    .collect();
            }
            let cell = format!("{:?} {} {:?} {:?}", t.cc, t.dtype, t.class, t.weight);
            if in_cell.is_empty() {
                errors.push(format!("{cell}: no measured shape"));
                continue;
            }
            let log_mean = in_cell.iter().map(|r| r.ratio.ln()).sum::<f64>() / in_cell.len() as f64;
            if log_mean.exp() < 1.0 - 1e-9 {
                errors.push(format!("{cell}: geomean {:.3}x cuBLAS", log_mean.exp()));
            }
            let mut labels: Vec<&str> = in_cell.iter().map(|r| r.label.as_str()).collect();
            labels.sort_unstable();
            labels.dedup();
            for label in labels {
                let of: Vec<f64> = in_cell
                    .iter()
                    .filter(|r| r.label == label)
                    .map(|r| r.ratio)
                    .collect();
                let mean = of.iter().sum::<f64>() / of.len() as f64;
                if mean < 0.99 - 1e-9 {
                    errors.push(format!("{cell}: {label} at {mean:.3}x cuBLAS"));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("\n"))
        }
    }

    #[test]
    fn tuning_table_is_justified_by_the_records() {
        assert!(!CUDA_TUNING.is_empty());
        if let Err(e) = justify(CUDA_TUNING) {
            panic!("{e}");
        }
    }

    #[test]
    fn an_unjustified_entry_is_refused() {
        use MatmulKernel::{CudaMma, CudaWgmma};
        // The attention products (0.77-0.93x), the deep weight at M = 512
        // (0.97-0.98x), qkv at M <= 16 (0.79-0.93x), bf16's deep weight at
        // M <= 16 (0.96-0.98x at M = 16 on the H100), f32's small weights at
        // M <= 16 (the 0.5B attention product at M = 1: 0.84x).
        for t in [
            tuned(
                SM90,
                DType::BF16,
                ShapeClass::Decode,
                WeightClass::Deep,
                CudaMma,
            ),
            tuned(
                SM90,
                DType::F32,
                ShapeClass::Decode,
                WeightClass::Small,
                MatmulKernel::CudaNative,
            ),
            tuned(
                SM90,
                DType::BF16,
                ShapeClass::Medium,
                WeightClass::Small,
                CudaWgmma,
            ),
            tuned(
                SM90,
                DType::F16,
                ShapeClass::Large,
                WeightClass::Deep,
                CudaWgmma,
            ),
            tuned(
                SM90,
                DType::F16,
                ShapeClass::Decode,
                WeightClass::Small,
                CudaMma,
            ),
        ] {
            let e = justify(std::slice::from_ref(&t)).unwrap_err();
            assert!(e.contains("x cuBLAS"), "{e}");
        }
        // Nothing measured on this architecture.
        let t = tuned(
            (8, 9),
            DType::BF16,
            ShapeClass::Large,
            WeightClass::Wide,
            CudaWgmma,
        );
        let e = justify(std::slice::from_ref(&t)).unwrap_err();
        assert!(e.contains("no measured shape"), "{e}");
    }
}
