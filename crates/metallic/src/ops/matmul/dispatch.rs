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
    /// epilogue fused (`gemm_simt_64x64x16_*`), until the wgmma / mma.sync
    /// kernels land.
    CudaNative,
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

/// On CUDA: cuBLAS for float operands (the baseline our GEMM must beat), our
/// kernel for block weights; `Native` forces our float GEMM.
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
