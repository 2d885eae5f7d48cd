//! The matmul dispatcher: one ordered list of named predicates per device; the
//! first rule whose predicate holds picks the kernel. Forcing `Native` or
//! `Vendor` is itself a predicate, so tests and benchmarks go through the same
//! table as `Auto`.

use super::{MatmulBackend, MatmulProblem};
use crate::device::Device;
use crate::error::Result;

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
    /// Ours on CUDA for float operands: a simple tiled SIMT GEMM with the
    /// epilogue fused (`gemm_simt_64x64x16_*`), for every layout and dtype.
    CudaNative,
    /// Ours on CUDA on the tensor cores: f16/bf16 operands, both K-contiguous
    /// (y = x W^T), `mma.sync` with a `cp.async` pipeline, epilogue fused
    /// (`gemm_<dtype>_mma_<BM>x<BN>x<BK>`). Falls back to `CudaNative` when
    /// the operands' addresses are not 16-byte aligned.
    CudaMma,
    /// Ours on CUDA for GGUF block weights: a warp per weight row, blocks
    /// decoded on the fly (`matmul_<type>_warp_row`).
    CudaQuant,
    /// cuBLAS on CUDA (block weights dequantized whole first).
    CudaVendor,
}

/// One entry of a dispatch table.
pub struct Rule {
    pub name: &'static str,
    pub applies: fn(&MatmulProblem, MatmulBackend) -> bool,
    pub kernel: MatmulKernel,
}

/// Below this many FLOPs the vendor's packing and threading set-up costs more
/// than it saves; above it, the `gemm` crate's tuned micro-kernels win on the
/// CPU (see the `matmul` section of the README for the measurement).
const CPU_VENDOR_MIN_FLOPS: f64 = 2.0 * 128.0 * 128.0 * 128.0;

pub const CPU_RULES: &[Rule] = &[
    Rule {
        name: "forced_vendor",
        applies: |_, backend| backend == MatmulBackend::Vendor,
        kernel: MatmulKernel::CpuVendor,
    },
    Rule {
        name: "quantized_weights",
        applies: |p, _| p.b.dtype.is_quantized(),
        kernel: MatmulKernel::CpuQuant,
    },
    Rule {
        name: "forced_native",
        applies: |_, backend| backend == MatmulBackend::Native,
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

/// On CUDA: cuBLAS for float operands (the baseline our GEMM must beat), our
/// kernel for block weights; `Native` forces our float GEMM: the tensor-core
/// kernel where the layout fits it, else the SIMT one.
pub const CUDA_RULES: &[Rule] = &[
    Rule {
        name: "forced_vendor",
        applies: |_, backend| backend == MatmulBackend::Vendor,
        kernel: MatmulKernel::CudaVendor,
    },
    Rule {
        name: "quantized_weights",
        applies: |p, _| p.b.dtype.is_quantized(),
        kernel: MatmulKernel::CudaQuant,
    },
    Rule {
        name: "forced_native_mma",
        applies: |p, backend| backend == MatmulBackend::Native && mma_fits(p),
        kernel: MatmulKernel::CudaMma,
    },
    Rule {
        name: "forced_native",
        applies: |_, backend| backend == MatmulBackend::Native,
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
    let rules = match device {
        Device::Cpu => CPU_RULES,
        Device::Cuda(_) => CUDA_RULES,
    };
    let rule = rules
        .iter()
        .find(|r| (r.applies)(problem, backend))
        .expect("every dispatch table ends with a rule that always applies");
    Ok((rule.name, rule.kernel))
}
