//! Matmul on CUDA: three implementations behind the dispatcher.
//!
//! - `CudaVendor`: cuBLAS (`cublasGemmStridedBatchedEx`, f32 accumulation, no
//!   TF32) into an f32 scratch product, then our epilogue kernel. Transposes
//!   and leading dimensions go to cuBLAS as they are; an operand cuBLAS cannot
//!   take (mixed dtypes, a layout with neither unit stride) is first copied
//!   to a contiguous buffer. Block weights are dequantized to f32 first, as
//!   llama.cpp's BLAS path does.
//! - `CudaWgmma`: our Hopper GEMM for f16/bf16 K-contiguous operands
//!   (`gemm_<dtype>_wgmma_<BM>x<BN>x64`, kernels/gemm_wgmma.cu, host side in
//!   `matmul/wgmma.rs`): wgmma + TMA, warp-specialised, persistent, epilogue
//!   fused. Falls back to `CudaMma` off sm_90a or where TMA cannot take the
//!   operands.
//! - `CudaMma`: our tensor-core GEMM for f16/bf16 K-contiguous operands
//!   (`gemm_<dtype>_mma_<BM>x<BN>x<BK>`, kernels/gemm_mma.cu, host side in
//!   `matmul/mma.rs`), epilogue fused.
//! - `CudaNative`: our SIMT GEMMs with the epilogue fused, for every
//!   layout: f32 operands on the exact fp32 GEMM (`gemm_f32_simt_<tile>`,
//!   kernels/gemm_f32.cu, host side in `matmul/f32.rs`, which also holds
//!   the TF32 tensor-core variant run only by name); other dtype pairs on
//!   the simple 64x64 one (`gemm_simt_64x64x16_<a>_<b>`, kernels/matmul.cu).
//! - `CudaQuant`: our block-weight kernels (kernels/matmul_quant.cu; see
//!   `quant`): at M > 16 the tensor-core GEMM with the weight's blocks
//!   decoded into its f16 tiles (`gemm_<type>_mma_<tile>`, kernels/
//!   gemm_mma.cu `GEMM_BQ`), at M = 1 the one-row kernels, between them
//!   the wide-load `matmul_<type>_mmv<R>`, and the warp-per-row kernel for
//!   the rest, epilogue fused or run after.
//!
//! Row-major `D = A B` is column-major `D^T = B^T A^T`, so cuBLAS gets B in
//! the first operand's seat and A in the second's. Every scratch buffer comes
//! from the device pool, so repeated shapes allocate nothing.

use std::ffi::c_void;

use cudarc::cublas::sys as cublas;

use super::{arg, dtype_code, grid_for, ptr_on, Module, Strided, COMMON, QUANT};
use crate::cuda::{CudaDevice, DeviceBuffer, KernelSource};
use crate::error::{Error, Result};
use crate::ops::matmul::{Activation, MatView, MatmulKernel, MatmulProblem, Operands};
use crate::tensor::{DType, Tensor};

/// `gemm_splitk_epilogue`: sums `splits` f32 partial products of `total`
/// elements each (`[split][batch][M][N]` at `partial`) in a fixed order,
/// then applies the epilogue (kernels/matmul.cu): the wgmma and f32 GEMMs'
/// split K (the mma GEMM sums its own in the kernel).
fn sum_splits(
    p: &MatmulProblem,
    x: &Ptrs,
    e: &Epilogue,
    (partial, splits): (u64, usize),
    total: usize,
) -> Result<()> {
    let (m, n) = (i32_dim("m", p.m)?, i32_dim("n", p.n)?);
    let (s32, total64) = (splits as i32, total as i64);
    let mut a = [
        arg(&partial),
        arg(&s32),
        arg(e),
        arg(&x.c),
        arg(&x.d),
        arg(&x.bias),
        arg(&m),
        arg(&n),
        arg(&total64),
    ];
    // Four columns per thread where N allows (the kernel's vector path).
    let items = if p.n.is_multiple_of(4) {
        total / 4
    } else {
        total
    };
    let grid = grid_for(items, 256);
    // Right after the GEMM that wrote the partials, as its dependent.
    MODULE.launch_dependent(&x.dev, "gemm_splitk_epilogue", grid, (256, 1, 1), &mut a)
}

/// Our GEMMs give each of `splits` K shares ceil(k tiles / splits) k tiles,
/// so the last shares can be empty (33 k tiles in 8 shares of 5); the
/// kernels need none empty (a share's first k step starts its sum, and the
/// split-K tickets count every share), so the count is that which the
/// share size fills.
pub(crate) fn nonempty_splits(k_tiles: usize, splits: usize) -> usize {
    let kt = k_tiles.max(1);
    kt.div_ceil(kt.div_ceil(splits.max(1)))
}

/// The split count forced by the environment variable `var` (tuning runs:
/// `METALLIC_MMA_SPLITS`, `METALLIC_WGMMA_SPLITS`), read once per process
/// into `cell`: at most `max`, none empty over `k_tiles`.
fn forced_splits(
    cell: &'static std::sync::OnceLock<Option<usize>>,
    var: &str,
    k_tiles: usize,
    max: usize,
) -> Option<usize> {
    let forced = *cell.get_or_init(|| std::env::var(var).ok().and_then(|v| v.parse().ok()));
    forced.map(|s: usize| nonempty_splits(k_tiles, s.clamp(1, max)))
}

pub mod f32;
pub mod mma;
pub mod wgmma;

const OP: &str = "matmul";

/// The epilogue every matmul kernel shares (struct Epilogue, epilogue_store).
pub(crate) const EPILOGUE: &str = include_str!("../kernels/matmul_epilogue.cuh");

pub(crate) static MODULE: Module = Module::new(|| {
    KernelSource::new(
        "matmul",
        &[COMMON, EPILOGUE],
        include_str!("../kernels/matmul.cu"),
    )
});

pub(crate) static QUANT_MODULE: Module = Module::new(|| {
    KernelSource::new(
        "matmul_quant",
        &[COMMON, EPILOGUE, QUANT],
        include_str!("../kernels/matmul_quant.cu"),
    )
});

/// `struct Operand` of kernels/matmul_epilogue.cuh: element offset, row, column and
/// batch strides.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct Geom {
    off: i64,
    rs: i64,
    cs: i64,
    bs: i64,
}

/// `struct Epilogue` of kernels/matmul_epilogue.cuh.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct Epilogue {
    c: Geom,
    d: Geom,
    bias_off: i64,
    bias_stride: i64,
    alpha: f32,
    beta: f32,
    act: i32,
    has_bias: i32,
    c_dtype: i32,
    d_dtype: i32,
    bias_dtype: i32,
    /// The bias runs along D's rows (a product run transposed).
    bias_rows: i32,
}

const _: () = assert!(std::mem::size_of::<Epilogue>() == 112);

/// Batches that one launch can cover with a single stride per operand: all
/// of them when the batch has at most one dimension, else one at a time.
struct Chunk {
    count: usize,
    a: Geom,
    b: Geom,
    c: Geom,
    d: Geom,
}

fn geom(v: &MatView, off: usize, bs: usize) -> Geom {
    Geom {
        off: off as i64,
        rs: v.row_stride as i64,
        cs: v.col_stride as i64,
        bs: bs as i64,
    }
}

fn chunks(p: &MatmulProblem) -> Vec<Chunk> {
    let c_view = p.c.clone().unwrap_or_else(|| p.d.clone());
    if p.batch_shape.len() <= 1 {
        let bs = |v: &MatView| v.batch_strides.first().copied().unwrap_or(0);
        return vec![Chunk {
            count: p.batch(),
            a: geom(&p.a, p.a.offset, bs(&p.a)),
            b: geom(&p.b, p.b.offset, bs(&p.b)),
            c: geom(&c_view, c_view.offset, bs(&c_view)),
            d: geom(&p.d, p.d.offset, bs(&p.d)),
        }];
    }
    (0..p.batch())
        .map(|z| {
            let off = |v: &MatView| v.batch_offset(&p.batch_shape, z);
            Chunk {
                count: 1,
                a: geom(&p.a, off(&p.a), 0),
                b: geom(&p.b, off(&p.b), 0),
                c: geom(&c_view, off(&c_view), 0),
                d: geom(&p.d, off(&p.d), 0),
            }
        })
        .collect()
}

/// Device addresses of the operands (0 for absent ones).
struct Ptrs {
    dev: CudaDevice,
    a: u64,
    b: u64,
    c: u64,
    d: u64,
    bias: u64,
    /// A's row scales (f32, one per row of each of A's matrices) where `a` is
    /// an f16 copy of f32 rows each divided by its scale (`rounded_rows_f16`):
    /// the tensor-core GEMMs multiply each row's sums by it. 0 otherwise.
    a_scale: u64,
}

fn ptrs(ops: &Operands) -> Result<Ptrs> {
    let s = ops.d.cuda_storage(OP)?;
    let dev = s.device().clone();
    let opt = |t: Option<&crate::tensor::Tensor>| t.map_or(Ok(0), |t| ptr_on(OP, &dev, t));
    Ok(Ptrs {
        a: ptr_on(OP, &dev, ops.a)?,
        b: ptr_on(OP, &dev, ops.b)?,
        c: opt(ops.c)?,
        bias: opt(ops.bias)?,
        d: s.ptr(),
        a_scale: 0,
        dev,
    })
}

fn epilogue(p: &MatmulProblem, ops: &Operands, ch: &Chunk) -> Result<Epilogue> {
    let (bias_off, bias_stride, bias_dtype) = match ops.bias {
        Some(b) => (
            b.layout().offset() as i64,
            b.strides()[0] as i64,
            dtype_code(OP, b.dtype())?,
        ),
        None => (0, 0, 0),
    };
    Ok(Epilogue {
        c: ch.c,
        d: ch.d,
        bias_off,
        bias_stride,
        alpha: p.alpha,
        beta: if p.c.is_some() { p.beta } else { 0.0 },
        act: match p.activation {
            Activation::None => 0,
            Activation::Silu => 1,
            Activation::Gelu => 2,
        },
        has_bias: i32::from(ops.bias.is_some()),
        c_dtype: dtype_code(OP, p.c.as_ref().map_or(p.d.dtype, |c| c.dtype))?,
        d_dtype: dtype_code(OP, p.d.dtype)?,
        bias_dtype,
        bias_rows: 0,
    })
}

fn i32_dim(what: &str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| {
        Error::op(
            OP,
            format!("{what} = {v} exceeds the CUDA kernels' 32-bit sizes"),
        )
    })
}

/// `p` transposed: D^T = B^T A^T (B^T the new A, A^T the new B, D^T and
/// C^T the new D and C, a bias of D's columns along the new D's rows).
fn transposed(p: &MatmulProblem) -> MatmulProblem {
    let t = |v: &MatView| MatView {
        row_stride: v.col_stride,
        col_stride: v.row_stride,
        ..v.clone()
    };
    MatmulProblem {
        batch_shape: p.batch_shape.clone(),
        m: p.n,
        n: p.m,
        k: p.k,
        a: t(&p.b),
        b: t(&p.a),
        c: p.c.as_ref().map(t),
        c_is_d: p.c_is_d,
        d: t(&p.d),
        alpha: p.alpha,
        beta: p.beta,
        bias_dtype: p.bias_dtype,
        activation: p.activation,
    }
}

/// An M <= 16 product on the wgmma GEMM transposed (`wgmma::swaps`):
/// `Ok(false)` where the kernel does not take it (the caller runs it as
/// it is).
fn run_transposed(p: &MatmulProblem, x: &Ptrs, ops: &Operands) -> Result<bool> {
    let pt = transposed(p);
    let xt = Ptrs {
        dev: x.dev.clone(),
        a: x.b,
        b: x.a,
        c: x.c,
        d: x.d,
        bias: x.bias,
        a_scale: 0,
    };
    let chs = chunks(&pt);
    let [ch] = chs.as_slice() else {
        return Ok(false);
    };
    let e = Epilogue {
        bias_rows: 1,
        ..epilogue(&pt, ops, ch)?
    };
    wgmma::run(&pt, &xt, ch, &e, Some(wgmma::TILE_64X16X64_OCC1))
}

pub fn run(kernel: MatmulKernel, p: &MatmulProblem, ops: &Operands) -> Result<()> {
    let ptrs = ptrs(ops)?;
    if kernel == MatmulKernel::CudaMma
        && !mixed_pair(p)
        && wgmma::swaps(p, &ptrs.dev)
        && run_transposed(p, &ptrs, ops)?
    {
        return Ok(());
    }
    for ch in chunks(p) {
        if ch.count > 65535 {
            crate::bail!(OP, "batch of {} exceeds one CUDA launch (65535)", ch.count);
        }
        let e = epilogue(p, ops, &ch)?;
        match kernel {
            MatmulKernel::CudaNative => native(p, &ptrs, &ch, &e)?,
            MatmulKernel::CudaWgmma | MatmulKernel::CudaMma if mixed_pair(p) => {
                rounded_a(kernel, p, &ptrs, &ch, &e)?
            }
            MatmulKernel::CudaWgmma | MatmulKernel::CudaMma => {
                tensor_cores(kernel, p, &ptrs, &ch, &e)?
            }
            MatmulKernel::CudaVendor => vendor(p, &ptrs, &ch, &e)?,
            MatmulKernel::CudaQuant => quant(p, &ptrs, &ch, &e)?,
            other => crate::bail!(OP, "kernel {other:?} does not run on CUDA"),
        }
    }
    Ok(())
}

/// The wgmma GEMM (falling back to the `mma.sync` one where TMA cannot take
/// the operands), or the `mma.sync` GEMM; the SIMT kernels where neither
/// takes the addresses.
fn tensor_cores(
    kernel: MatmulKernel,
    p: &MatmulProblem,
    x: &Ptrs,
    ch: &Chunk,
    e: &Epilogue,
) -> Result<()> {
    if kernel == MatmulKernel::CudaWgmma && wgmma::run(p, x, ch, e, None)? {
        return Ok(());
    }
    if !mma::run(p, x, ch, e, None)? {
        native(p, x, ch, e)?
    }
    Ok(())
}

/// f32 activations against an f16 / bf16 weight.
fn mixed_pair(p: &MatmulProblem) -> bool {
    p.a.dtype == DType::F32 && matches!(p.b.dtype, DType::F16 | DType::BF16)
}

/// A mixed pair on the tensor cores (`dispatch::mixed_tensor_cores_fit`:
/// an f16 weight): A rounded to the weight's dtype into a K-contiguous
/// scratch copy (M x K elements, a small fraction of the weight's bytes at
/// M <= 4096 on model shapes), then the half GEMM, accumulating in f32 with
/// the epilogue in f32. llama.cpp rounds the activations the same way for
/// its f16 weights on cuBLAS; the error is of the size of the weight's own
/// rounding, and the op tests hold the result to the weight dtype's budget.
/// Into f16 each row is first divided by a power of two that brings it into
/// f16's range (`rounded_rows_f16`; the GEMMs multiply its sums back), where
/// rounding it as it is could give infinity. Where the dispatcher does not
/// send a mixed pair here (bf16 weights, `vendor`) the product stays exact,
/// as it does where neither tensor-core GEMM takes the operands (the SIMT
/// kernel on the f32 rows).
fn rounded_a(
    kernel: MatmulKernel,
    p: &MatmulProblem,
    x: &Ptrs,
    ch: &Chunk,
    e: &Epilogue,
) -> Result<()> {
    let to = p.b.dtype;
    let (buf, a, scale) = if to == DType::F16 {
        let (buf, a, scale) =
            rounded_rows_f16(&x.dev, x.a, p.a.dtype, &ch.a, ch.count, (p.m, p.k))?;
        (buf, a, Some(scale))
    } else {
        let (buf, a) = contiguous(
            &x.dev,
            x.a,
            p.a.dtype,
            &ch.a,
            ch.count,
            (p.m, p.k),
            (to, false),
        )?;
        (buf, a, None)
    };
    let pa = MatmulProblem {
        a: MatView {
            offset: 0,
            row_stride: a.rs as usize,
            col_stride: 1,
            batch_strides: vec![a.bs as usize; p.batch_shape.len()],
            dtype: to,
        },
        ..p.clone()
    };
    let xa = Ptrs {
        dev: x.dev.clone(),
        a: buf.ptr(),
        a_scale: scale.as_ref().map_or(0, |s| s.ptr()),
        ..*x
    };
    let cha = Chunk { a, ..*ch };
    if kernel == MatmulKernel::CudaWgmma && wgmma::run(&pa, &xa, &cha, e, None)? {
        return Ok(());
    }
    if !mma::run(&pa, &xa, &cha, e, None)? {
        native(p, x, ch, e)?
    }
    Ok(())
}

/// `matmul` forced onto the tensor-core GEMM with a given tile (benchmarks
/// time the variants by name); errors where its layout does not fit.
pub fn matmul_mma_tile(
    a: &crate::tensor::Tensor,
    b: &crate::tensor::Tensor,
    d: &crate::tensor::Tensor,
    params: &crate::ops::matmul::Matmul,
    tile: mma::MmaTile,
) -> Result<()> {
    forced_tile(
        (a, b, d, params),
        ("the tensor-core GEMM", crate::ops::matmul::mma_fits),
        "operands not 16-byte aligned for the tensor-core GEMM",
        |p, x, ch, e| mma::run(p, x, ch, e, Some(tile)),
    )
}

/// Whether A and B are both f32 (what the f32 GEMMs take).
fn f32_operands(p: &MatmulProblem) -> bool {
    p.a.dtype == DType::F32 && p.b.dtype == DType::F32
}

/// `matmul` forced onto the f32 GEMM with a given tile, exact or TF32
/// (benchmarks and tests run the variants by name); errors unless A and B
/// are f32.
pub fn matmul_f32_tile(
    a: &crate::tensor::Tensor,
    b: &crate::tensor::Tensor,
    d: &crate::tensor::Tensor,
    params: &crate::ops::matmul::Matmul,
    tile: f32::F32Tile,
) -> Result<()> {
    forced_tile(
        (a, b, d, params),
        ("the f32 GEMM", f32_operands),
        "unreachable: the f32 GEMM takes every layout",
        |p, x, ch, e| f32::run(p, x, ch, e, Some(tile)).map(|()| true),
    )
}

/// `matmul` forced onto the wgmma GEMM with a given tile (benchmarks time
/// the variants by name); errors where the device or layout does not fit.
pub fn matmul_wgmma_tile(
    a: &crate::tensor::Tensor,
    b: &crate::tensor::Tensor,
    d: &crate::tensor::Tensor,
    params: &crate::ops::matmul::Matmul,
    tile: wgmma::WgmmaTile,
) -> Result<()> {
    forced_tile(
        (a, b, d, params),
        ("the wgmma GEMM", crate::ops::matmul::mma_fits),
        "the wgmma GEMM needs sm_90a and TMA-aligned operands",
        |p, x, ch, e| wgmma::run(p, x, ch, e, Some(tile)),
    )
}

type Args<'a> = (
    &'a crate::tensor::Tensor,
    &'a crate::tensor::Tensor,
    &'a crate::tensor::Tensor,
    &'a crate::ops::matmul::Matmul<'a>,
);

/// Validates a matmul for one of our kernels (`what`, which takes the
/// problems `fits` accepts) and runs `run` on each chunk; `run` returning
/// false (the kernel cannot take the operands) is the error `refused`.
fn forced_tile(
    (a, b, d, params): Args,
    (what, fits): (&str, fn(&MatmulProblem) -> bool),
    refused: &str,
    run: impl Fn(&MatmulProblem, &Ptrs, &Chunk, &Epilogue) -> Result<bool>,
) -> Result<()> {
    let p = crate::ops::matmul::validate(a, b, d, params)?;
    if !fits(&p) {
        crate::bail!(OP, "{what} does not take this layout");
    }
    let ops = Operands {
        a,
        b,
        c: params.c.filter(|_| p.c.is_some()),
        bias: params.bias,
        d,
    };
    let ptrs = ptrs(&ops)?;
    for ch in chunks(&p) {
        let e = epilogue(&p, &ops, &ch)?;
        if !run(&p, &ptrs, &ch, &e)? {
            crate::bail!(OP, "{refused}");
        }
    }
    Ok(())
}

/// The tensor-core GEMMs' `GEMM_DT` define for f16 or bf16 operands.
fn gemm_dt(d: DType) -> &'static str {
    if d == DType::F16 {
        "DT_F16"
    } else {
        "DT_BF16"
    }
}

fn short(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::F16 => "f16",
        _ => "bf16",
    }
}

/// Our SIMT GEMMs, epilogue fused: the exact f32 one for f32 operands, the
/// f32 rows kernel for f32 activations against an f16 / bf16 weight at
/// M <= 16, the simple 64x64 one for every other dtype pair.
fn native(p: &MatmulProblem, x: &Ptrs, ch: &Chunk, e: &Epilogue) -> Result<()> {
    if p.b.dtype.is_quantized() {
        crate::bail!(
            OP,
            "the native float GEMM does not take {} weights",
            p.b.dtype
        );
    }
    if f32_operands(p) {
        return f32::run(p, x, ch, e, None);
    }
    if f32::run_rows_mixed(p, x, ch, e)? {
        return Ok(());
    }
    let name = format!(
        "gemm_simt_64x64x16_{}_{}",
        short(p.a.dtype),
        short(p.b.dtype)
    );
    let (m, n, k) = (i32_dim("m", p.m)?, i32_dim("n", p.n)?, i32_dim("k", p.k)?);
    let grid = (
        p.n.div_ceil(64) as u32,
        p.m.div_ceil(64) as u32,
        ch.count as u32,
    );
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
    ];
    MODULE.launch(&x.dev, &name, grid, (256, 1, 1), &mut a)
}

/// Applies the epilogue to the f32 product `t` (contiguous `[count, M, N]`).
fn run_epilogue(
    p: &MatmulProblem,
    x: &Ptrs,
    ch: &Chunk,
    e: &Epilogue,
    t: &DeviceBuffer,
) -> Result<()> {
    let total = (ch.count * p.m * p.n) as i64;
    let tp = t.ptr();
    let (m, n) = (i32_dim("m", p.m)?, i32_dim("n", p.n)?);
    let mut a = [
        arg(&tp),
        arg(e),
        arg(&x.c),
        arg(&x.d),
        arg(&x.bias),
        arg(&m),
        arg(&n),
        arg(&total),
    ];
    MODULE.launch(
        &x.dev,
        "matmul_epilogue",
        grid_for(total as usize, 256),
        (256, 1, 1),
        &mut a,
    )
}

/// A's `count` matrices of `rows` x `cols` (`g`, one where its batch stride
/// is 0) as a contiguous f16 copy for the tensor cores, each row divided by
/// a power of two that brings it inside f16's range (1 where it is already:
/// copy.cu `round_rows_f16_scaled`), with those powers of two (f32, one per
/// row of the copy) for the GEMM's epilogue to multiply back.
fn rounded_rows_f16(
    dev: &CudaDevice,
    src: u64,
    from: DType,
    g: &Geom,
    count: usize,
    (rows, cols): (usize, usize),
) -> Result<(DeviceBuffer, Geom, DeviceBuffer)> {
    let n = if g.bs == 0 { 1 } else { count };
    let lines = n * rows;
    let buf = dev.alloc(lines * cols * 2)?;
    let scale = dev.alloc(lines * 4)?;
    let out = Geom {
        off: 0,
        rs: cols as i64,
        cs: 1,
        bs: if g.bs == 0 { 0 } else { (rows * cols) as i64 },
    };
    if lines * cols == 0 {
        return Ok((buf, out, scale));
    }
    let vector = rows_f32x4(src, from, g, cols);
    round_rows_into(
        dev,
        (src, from, g),
        (lines, rows, cols),
        (buf.ptr(), scale.ptr()),
        vector,
    )?;
    Ok((buf, out, scale))
}

/// Whether `round_rows_f16_scaled_f32x4` takes these rows: f32, unit column
/// stride, every row 16-byte aligned, a multiple of 4 columns.
fn rows_f32x4(src: u64, from: DType, g: &Geom, cols: usize) -> bool {
    from == DType::F32
        && g.cs == 1
        && src.is_multiple_of(16)
        && [g.off, g.rs, g.bs].iter().all(|v| v % 4 == 0)
        && cols.is_multiple_of(4)
}

/// `lines` rows of `cols` (`per` a matrix of `g`) rounded into `dst` with
/// their scales (`rounded_rows_f16`), on the float4 kernel where `vector`
/// (the caller checked `rows_f32x4`).
fn round_rows_into(
    dev: &CudaDevice,
    (src, from, g): (u64, DType, &Geom),
    (lines, per, cols): (usize, usize, usize),
    (dp, sp): (u64, u64),
    vector: bool,
) -> Result<()> {
    let (per, lines64, cols64) = (per as i64, lines as i64, cols as i64);
    let grid = (lines.min(65535) as u32, 1, 1);
    if vector {
        let mut a = [
            arg(&src),
            arg(&g.off),
            arg(&g.rs),
            arg(&g.bs),
            arg(&per),
            arg(&dp),
            arg(&sp),
            arg(&lines64),
            arg(&cols64),
        ];
        return super::copy::MODULE.launch(
            dev,
            "round_rows_f16_scaled_f32x4",
            grid,
            (256, 1, 1),
            &mut a,
        );
    }
    let sdt = dtype_code(OP, from)?;
    let mut a = [
        arg(&src),
        arg(&sdt),
        arg(&g.off),
        arg(&g.rs),
        arg(&g.cs),
        arg(&g.bs),
        arg(&per),
        arg(&dp),
        arg(&sp),
        arg(&lines64),
        arg(&cols64),
    ];
    super::copy::MODULE.launch(dev, "round_rows_f16_scaled", grid, (256, 1, 1), &mut a)
}

/// Copies `n` matrices (`rows x cols`, geometry `g`, one when `g.bs == 0`)
/// into a contiguous buffer of `to`; returns it with its geometry: row-major,
/// or with `any_order` column-major where the source is (unit row stride: a
/// weight `[N, K]` seen as B = W^T), so that both sides of the copy run
/// along memory. Where the source's fastest dimension is unit-stride the
/// copy goes a row at a time (`convert_rows`): the element-wise strided copy
/// spends two 64-bit divisions per element and dimension: with it the
/// vendor path's product of f32 activations and the 7B gate+up f16 weight
/// took 10.1 ms at M = 1 (1.06 ms now), and rounding a 512 x 3584
/// activation to f16 cost about 130 us more than now (H100, bench/results/
/// 2026-12-06-nvidia-h100-gemm-bench-session14-mixed-strided-copy.log).
fn contiguous(
    dev: &CudaDevice,
    src: u64,
    from: DType,
    g: &Geom,
    count: usize,
    (rows, cols): (usize, usize),
    (to, any_order): (DType, bool),
) -> Result<(DeviceBuffer, Geom)> {
    let n = if g.bs == 0 { 1 } else { count };
    let elems = n * rows * cols;
    let buf = dev.alloc(elems * to.block_bytes())?;
    let bs = if g.bs == 0 { 0 } else { (rows * cols) as i64 };
    // The copy walks its last dimension fastest: columns, or for a
    // column-major copy rows (the matrix seen transposed).
    let col_major = any_order && g.rs == 1 && g.cs != 1 && rows > 1 && cols > 1;
    let (shape, strides, out) = if col_major {
        let out = Geom {
            off: 0,
            rs: 1,
            cs: rows as i64,
            bs,
        };
        ([n, cols, rows], [g.bs, g.cs, g.rs], out)
    } else {
        let out = Geom {
            off: 0,
            rs: cols as i64,
            cs: 1,
            bs,
        };
        ([n, rows, cols], [g.bs, g.rs, g.cs], out)
    };
    if elems == 0 {
        return Ok((buf, out));
    }
    let dp = buf.ptr();
    if strides[2] == 1 {
        let geometry = super::copy::RowsGeometry {
            off: g.off,
            rs: strides[1],
            bs: strides[0],
            per: shape[1] as i64,
        };
        let sizes = ((n * shape[1]) as i64, shape[2] as i64);
        super::copy::convert_rows(dev, (src, from, geometry), (dp, to), sizes)?;
        return Ok((buf, out));
    }
    let ss = Strided::with(
        OP,
        &shape,
        &strides.map(|s| s as usize),
        g.off as usize,
        from,
    )?;
    let ds = Strided::with(OP, &shape, &[rows * cols, shape[2], 1], 0, to)?;
    let n64 = elems as i64;
    let mut a = [arg(&src), arg(&ss), arg(&dp), arg(&ds), arg(&n64)];
    super::copy::MODULE.launch(
        dev,
        "copy_strided",
        grid_for(elems, 256),
        (256, 1, 1),
        &mut a,
    )?;
    Ok((buf, out))
}

/// How cuBLAS takes `X^T` for a logical `rows x cols` operand `X`: as a
/// column-major matrix (`OP_N`, ld = row stride) when its columns are unit
/// stride, or as the transpose of one (`OP_T`, ld = column stride) when its
/// rows are. `None` when neither holds (a copy is needed).
fn blas_layout(g: &Geom, rows: usize, cols: usize) -> Option<(cublas::cublasOperation_t, i32)> {
    let fits = |ld: i64, min: usize| {
        (ld >= min.max(1) as i64)
            .then(|| i32::try_from(ld).ok())
            .flatten()
    };
    if cols == 1 {
        let ld = if rows == 1 { 1 } else { g.rs };
        return fits(ld, 1).map(|ld| (cublas::cublasOperation_t::CUBLAS_OP_N, ld));
    }
    if rows == 1 {
        return fits(g.cs, 1).map(|ld| (cublas::cublasOperation_t::CUBLAS_OP_T, ld));
    }
    if g.cs == 1 {
        return fits(g.rs, cols).map(|ld| (cublas::cublasOperation_t::CUBLAS_OP_N, ld));
    }
    if g.rs == 1 {
        return fits(g.cs, rows).map(|ld| (cublas::cublasOperation_t::CUBLAS_OP_T, ld));
    }
    None
}

fn blas_type(d: DType) -> cublas::cudaDataType {
    match d {
        DType::F32 => cublas::cudaDataType::CUDA_R_32F,
        DType::F16 => cublas::cudaDataType::CUDA_R_16F,
        _ => cublas::cudaDataType::CUDA_R_16BF,
    }
}

/// One operand as cuBLAS will read it, with the scratch copy it may need.
struct BlasOperand {
    ptr: u64,
    dtype: DType,
    op: cublas::cublasOperation_t,
    ld: i32,
    bs: i64,
    _scratch: Option<DeviceBuffer>,
}

fn blas_operand(
    dev: &CudaDevice,
    (ptr, dtype): (u64, DType),
    g: &Geom,
    count: usize,
    (rows, cols): (usize, usize),
    want: DType,
) -> Result<BlasOperand> {
    if dtype == want {
        if let Some((op, ld)) = blas_layout(g, rows, cols) {
            return Ok(BlasOperand {
                ptr: ptr + (g.off as u64) * dtype.block_bytes() as u64,
                dtype,
                op,
                ld,
                bs: g.bs,
                _scratch: None,
            });
        }
    }
    let (buf, cg) = contiguous(dev, ptr, dtype, g, count, (rows, cols), (want, true))?;
    let (op, ld) = blas_layout(&cg, rows, cols).expect("a contiguous matrix always fits cuBLAS");
    Ok(BlasOperand {
        ptr: buf.ptr(),
        dtype: want,
        op,
        ld,
        bs: cg.bs,
        _scratch: Some(buf),
    })
}

/// cuBLAS into an f32 product, then the epilogue.
fn vendor(p: &MatmulProblem, x: &Ptrs, ch: &Chunk, e: &Epilogue) -> Result<()> {
    let dev = &x.dev;
    let (m, n, k) = (p.m, p.n, p.k);
    // Block weights: the f32 expansion of W ([N, K] rows; B = W^T).
    let mut b_src = (x.b, p.b.dtype);
    let mut b_geom = ch.b;
    let _dequantized = if p.b.dtype.is_quantized() {
        let dt = p.b.dtype;
        let nw = if ch.b.bs == 0 { 1 } else { ch.count };
        let buf = dev.alloc(nw * n * k * 4)?;
        let row_bytes = ch.b.cs as usize / dt.block_elems() * dt.block_bytes();
        for z in 0..nw {
            let elem = ch.b.off as usize + z * ch.b.bs as usize;
            let w = x.b + (elem / dt.block_elems() * dt.block_bytes()) as u64;
            let out = buf.ptr() + (z * n * k * 4) as u64;
            super::get_rows::dequantize_rows(dev, dt, w, row_bytes, (n, k), (out, DType::F32))?;
        }
        b_src = (buf.ptr(), DType::F32);
        b_geom = Geom {
            off: 0,
            rs: 1,
            cs: k as i64,
            bs: if ch.b.bs == 0 { 0 } else { (n * k) as i64 },
        };
        Some(buf)
    } else {
        None
    };
    let want = if p.a.dtype == b_src.1 {
        p.a.dtype
    } else {
        DType::F32
    };
    let bo = blas_operand(dev, b_src, &b_geom, ch.count, (k, n), want)?;
    let ao = blas_operand(dev, (x.a, p.a.dtype), &ch.a, ch.count, (m, k), want)?;
    let (mi, ni, ki) = (i32_dim("m", m)?, i32_dim("n", n)?, i32_dim("k", k)?);
    // Where the epilogue is alpha times the product into f32 rows (no C,
    // bias or activation; D's rows unit-stride and at least N apart, its
    // matrices apart), cuBLAS writes D itself: no f32 scratch and no second
    // pass over it (a prompt's attention products: the 7B's took 2.6 of
    // 36.6 ms of our kernels a 512-token prompt in that pass, H100, session
    // 25 call 1's profile).
    let direct = e.beta == 0.0
        && e.has_bias == 0
        && e.act == 0
        && p.d.dtype == DType::F32
        && e.d.cs == 1
        && e.d.rs >= n as i64
        && e.d.rs <= i32::MAX as i64
        && (ch.count == 1 || e.d.bs != 0);
    let t = if direct {
        None
    } else {
        Some(dev.alloc(ch.count * m * n * 4)?)
    };
    let (out, ldc, stride_c, alpha) = match &t {
        Some(t) => (t.ptr(), ni, (m * n) as i64, 1.0f32),
        None => (x.d + e.d.off as u64 * 4, e.d.rs as i32, e.d.bs, e.alpha),
    };
    let zero = 0.0f32;
    dev.with_blas(|h| {
        // SAFETY: every pointer addresses a live device buffer holding the
        // matrices described by its (op, ld, batch stride); `out` holds
        // count matrices of m rows of n f32, `ldc` apart, `stride_c` from
        // one to the next (`t`, or D as its view describes it: the caller
        // checked that view against D's buffer); alpha/beta are host f32 as
        // the default pointer mode expects; the handle is bound to our
        // stream.
        unsafe {
            cublas::cublasGemmStridedBatchedEx(
                h,
                bo.op,
                ao.op,
                ni,
                mi,
                ki,
                &alpha as *const f32 as *const c_void,
                bo.ptr as *const c_void,
                blas_type(bo.dtype),
                bo.ld,
                bo.bs,
                ao.ptr as *const c_void,
                blas_type(ao.dtype),
                ao.ld,
                ao.bs,
                &zero as *const f32 as *const c_void,
                out as *mut c_void,
                cublas::cudaDataType::CUDA_R_32F,
                ldc,
                stride_c,
                ch.count as i32,
                cublas::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                cublas::cublasGemmAlgo_t::CUBLAS_GEMM_DFALT,
            )
        }
        .result()
        .map_err(|err| Error::Cuda {
            op: OP,
            call: "cublasGemmStridedBatchedEx",
            msg: format!(
                "{m}x{n}x{k} batch {} {}*{}: {err:?}",
                ch.count, ao.dtype, bo.dtype
            ),
        })
    })?;
    match &t {
        Some(t) => run_epilogue(p, x, ch, e, t),
        None => Ok(()),
    }
}

/// Our block-weight kernels, epilogue fused: at M > 16 the tensor cores
/// (A rounded to f16 into a scratch copy, each row scaled into f16's range
/// by a power of two, the weight decoded tile by tile in the kernel, never
/// whole); otherwise reading A in place when it is
/// f32 with unit column stride, where they have the type and their loads'
/// alignment holds: at M = 1 the one-row path's ([`mv_path`]: by default
/// A's row quantized to 8 bits, then `matmul_<type>_q8mv`), otherwise the
/// wide-load `matmul_<type>_mmv<R>`. Otherwise the warp-per-row one into an
/// f32 product, then the epilogue.
fn quant(p: &MatmulProblem, x: &Ptrs, ch: &Chunk, e: &Epilogue) -> Result<()> {
    let dev = &x.dev;
    let dt = p.b.dtype;
    if !dt.is_quantized() {
        crate::bail!(
            OP,
            "the block-weight kernel needs a GGUF block type, got {dt}"
        );
    }
    let (m, n, k) = (p.m, p.n, p.k);
    let (be, bb) = (dt.block_elems(), dt.block_bytes());
    let row_bytes = (ch.b.cs as usize / be * bb) as i64;
    let (mi, ni, ki) = (i32_dim("m", m)?, i32_dim("n", n)?, i32_dim("k", k)?);
    // Both kernels take 8 rows of A a block (MMV_MT, MMQ_MT).
    let grid_y = m.div_ceil(8) as u32;
    if grid_y > 65535 {
        crate::bail!(OP, "m = {m} exceeds the block-weight kernel's grid");
    }
    let weight_at = |z: usize| {
        let elem = ch.b.off as usize + z * ch.b.bs as usize;
        x.b + (elem / be * bb) as u64
    };
    let aligned = |align: u64| {
        (0..ch.count).all(|z| weight_at(z).is_multiple_of(align))
            && (row_bytes as u64).is_multiple_of(align)
    };
    // More than 16 rows (a prefill): the tensor cores, on A rounded to f16
    // (as the f16 weights' products, `rounded_a`, but each row first scaled
    // by a power of two into f16's range: `rounded_rows_f16`) and the
    // weight decoded into f16 tiles. Q4_K's decoding loads its 16-byte
    // header whole.
    let tc_align = if dt == DType::Q4K { 16 } else { 2 };
    if let Some(tile) = qmma() {
        if m > 16
            && mma::QUANT_TYPES.contains(&dt)
            && aligned(tc_align)
            && (ch.b.off as usize).is_multiple_of(be)
            && (ch.b.bs as usize).is_multiple_of(be)
        {
            let (buf, ga, scale) = rounded_rows_f16(dev, x.a, p.a.dtype, &ch.a, ch.count, (m, k))?;
            let wg = Geom {
                off: (weight_at(0) - x.b) as i64,
                rs: 0,
                cs: row_bytes,
                bs: (ch.b.bs as usize / be * bb) as i64,
            };
            let xq = Ptrs {
                dev: dev.clone(),
                a: buf.ptr(),
                a_scale: scale.ptr(),
                ..*x
            };
            let chq = Chunk {
                a: ga,
                b: wg,
                ..*ch
            };
            if tile.is_none()
                && qband().is_some_and(|(min_m, _)| m >= min_m)
                && ch.count == 1
                && k.is_multiple_of(8)
                && wgmma::supported(dev)
            {
                return quant_bands(p, &xq, &chq, e, weight_at(0));
            }
            if mma::run_quant(p, &xq, &chq, e, tile)? {
                return Ok(());
            }
        }
    }
    let wide = mmv_alignment(dt).is_some_and(aligned);
    // The one-row kernel of the one-row path, if it has one for this type
    // and its loads' alignment holds.
    let one_row = match mv_path() {
        _ if m != 1 => None,
        Some(MvPath::Q8) => q8_kernels(dt)
            .filter(|q| aligned(q.align))
            .map(|_| ("q8mv", 1)),
        Some(MvPath::F32 { suffix, rows }) => mv_alignment(dt)
            .is_some_and(aligned)
            .then_some((suffix, rows)),
        None => None,
    };
    // A's rows as the kernels read them: f32, unit column stride, row
    // stride `lda`; the wide kernel's float4 loads also need every row
    // 16-byte aligned.
    let a_at = |z: usize| x.a + 4 * (ch.a.off as u64 + z as u64 * ch.a.bs as u64);
    let a_in_place = (wide || one_row.is_some())
        && p.a.dtype == DType::F32
        && ch.a.cs == 1
        && (m == 1 || ch.a.rs % 4 == 0)
        && (0..ch.count).all(|z| a_at(z) % 16 == 0);
    // Otherwise A is copied (a pool buffer: its own cuMemAlloc, 256-byte
    // aligned), and the copy lives until the launches are queued.
    let (_copy, a_ptr, lda, a_bs) = if a_in_place {
        (None, a_at(0), ch.a.rs, ch.a.bs)
    } else {
        let (a, ag) = contiguous(
            dev,
            x.a,
            p.a.dtype,
            &ch.a,
            ch.count,
            (m, k),
            (DType::F32, false),
        )?;
        let ptr = a.ptr();
        (Some(a), ptr, ag.rs, ag.bs)
    };
    let qname = super::get_rows::qname(dt);
    if let Some((suffix, r)) = one_row {
        // With 8-bit activations each batch's row is quantized into `xb`
        // first, and the kernel reads that instead of A.
        let name = format!("matmul_{qname}_{suffix}");
        let xb = match mv_path() {
            Some(MvPath::Q8) => Some(dev.alloc(x8_bytes(k))?),
            _ => None,
        };
        for z in 0..ch.count {
            let ap = a_ptr + (z as u64) * (a_bs as u64) * 4;
            let row = match &xb {
                Some(b) => {
                    quantize_row_q8(dev, dt, ap, None, b.ptr(), ki)?;
                    b.ptr()
                }
                None => ap,
            };
            let wp = weight_at(z);
            let zi = z as i32;
            let mut args = [
                arg(&row),
                arg(&wp),
                arg(&row_bytes),
                arg(e),
                arg(&x.c),
                arg(&x.d),
                arg(&x.bias),
                arg(&zi),
                arg(&ni),
                arg(&ki),
            ];
            // matmul_quant.cu MV_WARPS: 4 warps of R rows a block.
            let grid = (n.div_ceil(4 * r) as u32, 1, 1);
            QUANT_MODULE.launch(dev, &name, grid, (128, 1, 1), &mut args)?;
        }
        return Ok(());
    }
    if wide {
        let r = mmv_rows();
        let name = format!("matmul_{qname}_mmv{r}");
        for z in 0..ch.count {
            let ap = a_ptr + (z as u64) * (a_bs as u64) * 4;
            let wp = weight_at(z);
            let zi = z as i32;
            let mut args = [
                arg(&ap),
                arg(&lda),
                arg(&wp),
                arg(&row_bytes),
                arg(e),
                arg(&x.c),
                arg(&x.d),
                arg(&x.bias),
                arg(&zi),
                arg(&mi),
                arg(&ni),
                arg(&ki),
            ];
            let grid = (n.div_ceil(r) as u32, grid_y, 1);
            QUANT_MODULE.launch(dev, &name, grid, (128, 1, 1), &mut args)?;
        }
        return Ok(());
    }
    let t = dev.alloc(ch.count * m * n * 4)?;
    let name = format!("matmul_{qname}_warp_row");
    for z in 0..ch.count {
        let ap = a_ptr + (z as u64) * (a_bs as u64) * 4;
        let wp = weight_at(z);
        let tp = t.ptr() + (z * m * n * 4) as u64;
        let mut args = [
            arg(&ap),
            arg(&wp),
            arg(&row_bytes),
            arg(&tp),
            arg(&mi),
            arg(&ni),
            arg(&ki),
        ];
        QUANT_MODULE.launch(
            dev,
            &name,
            (n.div_ceil(4) as u32, grid_y, 1),
            (128, 1, 1),
            &mut args,
        )?;
    }
    run_epilogue(p, x, ch, e, &t)
}

/// Most bytes of the f16 scratch that holds one band of decoded weight rows
/// (`quant_bands`): 160 MiB, so that the 7B's gate and up (136 MB of f16
/// each) run as one GEMM. On an H100 (session 25 call 2, same call, two
/// rounds) the 7B's 512-token prompt ran at 15287-15480 tok/s with 64 MiB
/// (three bands of those two), 16429-16503 with 160 and 16436-16467 with
/// 256; the 1.5B's (every weight under 64 MB) alike on all three.
const QBAND_BYTES: usize = 160 << 20;

/// When block-weight products go through bands of decoded rows: the fewest
/// rows of A, and the most bytes of a band. `None` (`METALLIC_QBAND=off`:
/// the `mma.sync` kernels that decode in their main loop); `=all`: every
/// prefill product, in bands of 128 rows (the tests' setting: several
/// bands on the op cases' weights); `=<mib>:<rows>` (numbers, for A/B
/// timing): bands of at most that many MiB from that many rows of A; else
/// from QBAND_MIN_M rows, QBAND_BYTES. Read once.
fn qband() -> Option<(usize, usize)> {
    static QBAND: std::sync::OnceLock<Option<(usize, usize)>> = std::sync::OnceLock::new();
    *QBAND.get_or_init(|| match std::env::var("METALLIC_QBAND").ok().as_deref() {
        Some("off") => None,
        Some("all") => Some((17, 0)),
        v => {
            let set = v
                .and_then(|v| v.split_once(':'))
                .and_then(|(mib, m)| Some((mib.parse::<usize>().ok()?, m.parse::<usize>().ok()?)))
                .filter(|&(mib, m)| mib > 0 && m > 16);
            Some(set.map_or((QBAND_MIN_M, QBAND_BYTES), |(mib, m)| (m, mib << 20)))
        }
    })
}

/// The fewest rows of A whose block-weight products go through bands:
/// every product the tensor cores take (M > 16). On an H100 (session 25
/// call 2, same call) bands from 17 rows against the `mma.sync` kernels:
/// the 7B's 64 / 128 / 256-token prompts at 3762 / 6259 / 10646 tok/s
/// against 1420 / 2731 / 4343, the 1.5B's at 9666 / 16615 / 27577 against
/// 3033 / 5880 / 10736 (prompts of 17-63 tokens not measured).
const QBAND_MIN_M: usize = 17;

/// Rows of W per band of `n` rows of `k` elements: equal bands of whole
/// 128-row tiles, each at most `max_bytes` of f16 (at least 128 rows).
fn qband_rows(n: usize, k: usize, max_bytes: usize) -> usize {
    let cap = (max_bytes / (2 * k.max(1)) / 128 * 128).max(128);
    let bands = n.div_ceil(cap).max(1);
    (n.div_ceil(bands).div_ceil(128) * 128).min(n.max(1))
}

/// A block-weight product of a prefill (one matrix; A already the f16 rows
/// of `rounded_rows_f16`, `x.a` / `x.a_scale` / `ch.a`) through bands of the
/// weight's rows: each band decoded into an f16 scratch (get_rows.cu, the
/// decoders of quant.cuh) and multiplied by the wgmma GEMM into its columns
/// of D (C, D and the bias shifted to the band's first column). The
/// arithmetic of the `mma.sync` block kernels (weights decoded to f32 and
/// rounded to f16, A's rows scaled into f16, f32 sums), on the Hopper GEMM;
/// the scratch is at most QBAND_BYTES, never the whole weight where it is
/// larger. `w0` is the weight's first row.
fn quant_bands(p: &MatmulProblem, x: &Ptrs, ch: &Chunk, e: &Epilogue, w0: u64) -> Result<()> {
    let (n, k) = (p.n, p.k);
    let row_bytes = ch.b.cs as usize;
    let rows = qband_rows(n, k, qband().map_or(QBAND_BYTES, |(_, b)| b));
    let scratch = x.dev.alloc(rows * k * 2)?;
    // The part decoders where the type has them and the rows are aligned
    // for their loads (as for the wide-load kernels); else one element a
    // thread.
    let dt = p.b.dtype;
    let parts = mmv_alignment(dt)
        .is_some_and(|a| w0.is_multiple_of(a) && (row_bytes as u64).is_multiple_of(a));
    let f16_view = |row_stride: usize, col_stride: usize| MatView {
        offset: 0,
        row_stride,
        col_stride,
        batch_strides: vec![0; p.batch_shape.len()],
        dtype: DType::F16,
    };
    for n0 in (0..n).step_by(rows) {
        let nb = rows.min(n - n0);
        let w = w0 + (n0 * row_bytes) as u64;
        if parts {
            super::get_rows::dequantize_rows_f16_parts(
                &x.dev,
                dt,
                w,
                row_bytes,
                (nb, k),
                scratch.ptr(),
            )?;
        } else {
            super::get_rows::dequantize_rows(
                &x.dev,
                dt,
                w,
                row_bytes,
                (nb, k),
                (scratch.ptr(), DType::F16),
            )?;
        }
        // B = the band's rows transposed: element (k, n) at n * K + k.
        let pb = MatmulProblem {
            n: nb,
            a: f16_view(ch.a.rs as usize, 1),
            b: f16_view(1, k),
            ..p.clone()
        };
        let shift = |g: Geom| Geom {
            off: g.off + n0 as i64 * g.cs,
            ..g
        };
        let chb = Chunk {
            count: 1,
            a: ch.a,
            b: Geom {
                off: 0,
                rs: 1,
                cs: k as i64,
                bs: 0,
            },
            c: shift(ch.c),
            d: shift(ch.d),
        };
        let eb = Epilogue {
            c: shift(e.c),
            d: shift(e.d),
            bias_off: e.bias_off + n0 as i64 * e.bias_stride,
            ..*e
        };
        let xb = Ptrs {
            dev: x.dev.clone(),
            b: scratch.ptr(),
            ..*x
        };
        // Fresh allocations and K a multiple of 8 keep both operands TMA-
        // aligned; where the GEMM still declines, the same f16 operands go
        // to the `mma.sync` GEMM (16-byte aligned rows: the same reasons).
        // The SIMT kernel does not apply A's row scales, so it is no
        // fallback here.
        if !wgmma::run(&pb, &xb, &chb, &eb, None)? && !mma::run(&pb, &xb, &chb, &eb, None)? {
            crate::bail!(
                OP,
                "no tensor-core GEMM took a band of decoded weight rows ({m} x {nb} x {k})",
                m = p.m
            );
        }
    }
    Ok(())
}

/// The block-weight products of more than 16 rows on the tensor cores
/// (`mma::run_quant`), read once: `Some(None)` lets the kernel pick its
/// tile; `METALLIC_QMMA` = a tile name (`128x128x32`, `64x64x32`) forces
/// one (the tests run both), `off` sends them to the wide-load kernels
/// (`None`, for A/B timing).
fn qmma() -> Option<Option<mma::MmaTile>> {
    static QMMA: std::sync::OnceLock<Option<Option<mma::MmaTile>>> = std::sync::OnceLock::new();
    *QMMA.get_or_init(|| match std::env::var("METALLIC_QMMA").ok().as_deref() {
        Some("off") => None,
        Some(t) => Some(t.parse().ok()),
        None => Some(None),
    })
}

/// Weight rows a block of the wide-load kernel takes (each activation load
/// serves that many rows): 4, or `METALLIC_MMV_ROWS` (1, 2 or 4), read once.
/// On an H100 (session 16, synthetic Qwen2.5-1.5B q4_k_m, one call) a
/// 512-token prompt ran at 2249 / 3318 / 3921 tok/s with 1 / 2 / 4 rows,
/// and decode at 236 / 221 / 234 tok/s (host-bound, within the noise).
fn mmv_rows() -> usize {
    static ROWS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *ROWS.get_or_init(
        || match std::env::var("METALLIC_MMV_ROWS").ok().as_deref() {
            Some("1") => 1,
            Some("2") => 2,
            _ => 4,
        },
    )
}

/// The one-row path (M = 1) of the block types with one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MvPath {
    /// `matmul_<type>_<suffix>` on f32 activations, `rows` weight rows a
    /// warp (and the fused `_norm_mv_u<U>` / `_norm_swiglu_mv_u<U>`).
    F32 { suffix: &'static str, rows: usize },
    /// The row quantized to 8 bits first (`quantize_q8_g32` / `_g256`, as
    /// the CPU's default quantized matmul and llama.cpp do), then
    /// `matmul_<type>_q8mv` (and `_q8mv_seg` / `_q8mv_swiglu`): dp4a on
    /// four weight and activation bytes at a time.
    Q8,
}

/// The one-row path, read once: `q8` (8-bit activations, the CPU's default
/// arithmetic), or `METALLIC_MV` = `mv1u4` (f32 activations, one row a
/// warp, 4 parts a lane in flight), `mv1` / `mv1u2` (1 / 2 parts in
/// flight), `mv2` (2 rows a warp), or `off` (`None`: M = 1 runs on the
/// `mmv` kernels, as M > 1 does). On an H100 (session 18, synthetic
/// Qwen2.5 q4_k_m, one binary and call) tg128 ran at 297 / 182 tok/s on
/// q8 / mv1u4 at 7B, 528-539 / 478-482 at 1.5B. On an H100 (session 17,
/// synthetic Qwen2.5-1.5B q4_k_m, one call each) tg64 ran at 397 / 336 /
/// 277 tok/s with 1 / 2 / 4 rows a warp and 307 on `mmv4` (call 1: more
/// warps in flight beat sharing the activations' loads); with the fused
/// norm kernels, 448 / 439 / 465 on mv1 / mv1u2 / mv1u4 (call 2).
fn mv_path() -> Option<MvPath> {
    static PATH: std::sync::OnceLock<Option<MvPath>> = std::sync::OnceLock::new();
    let f32_path = |suffix, rows| Some(MvPath::F32 { suffix, rows });
    *PATH.get_or_init(|| match std::env::var("METALLIC_MV").ok().as_deref() {
        Some("off") => None,
        Some("mv1u4") => f32_path("mv1u4", 1),
        Some("mv1") => f32_path("mv1", 1),
        Some("mv1u2") => f32_path("mv1u2", 1),
        Some("mv2") => f32_path("mv2", 2),
        _ => Some(MvPath::Q8),
    })
}

/// Bytes of one row of K activations quantized for the q8 kernels (struct
/// X8 of kernels/matmul_quant.cu): K quants, K / 32 f32 scales, K / 32 i32
/// sums.
fn x8_bytes(k: usize) -> usize {
    k + k / 4
}

/// A block type's 8-bit activation kernels (`matmul_<type>_q8mv*`).
#[derive(Debug, Clone, Copy)]
struct Q8Kernels {
    /// The quantizer of the activations, the CPU's vec_dot_type for the
    /// type: `quantize_q8_<quantizer>` (`g32` Q8_0, `g32s` Q8_1, `g256`
    /// Q8_K); types with the same one can share a quantized row.
    quantizer: &'static str,
    /// Its group of activations.
    group: usize,
    /// The alignment in bytes the products' loads need of every weight row.
    align: u64,
}

/// The block types with 8-bit activation kernels: Q4_K (16-byte aligned
/// for its 16-byte header), Q4_1 / Q5_1 (4: 4-byte loads of blocks of 20 /
/// 24 bytes), and Q4_0 / Q5_0 / Q8_0 / Q6_K (2: blocks of 18, 22, 34 and
/// 210 bytes leave only 2).
fn q8_kernels(dt: DType) -> Option<Q8Kernels> {
    let (quantizer, group, align) = match dt {
        DType::Q4_0 | DType::Q5_0 | DType::Q8_0 => ("g32", 32, 2),
        DType::Q4_1 | DType::Q5_1 => ("g32s", 32, 4),
        DType::Q4K => ("g256", 256, 16),
        DType::Q6K => ("g256", 256, 2),
        _ => return None,
    };
    Some(Q8Kernels {
        quantizer,
        group,
        align,
    })
}

/// Quantizes the f32 row at `x` (K elements, through RMSNorm with `norm` =
/// (gamma, eps) first) into `out` (`x8_bytes(K)`) for the q8 kernels of
/// weight type `dt`.
fn quantize_row_q8(
    dev: &CudaDevice,
    dt: DType,
    x: u64,
    norm: Option<(u64, f32)>,
    out: u64,
    k: i32,
) -> Result<()> {
    let Some(q8) = q8_kernels(dt) else {
        crate::bail!(OP, "no 8-bit activation kernel for {dt}");
    };
    let (gp, eps) = norm.unwrap_or((0, 0.0));
    let mut args = [arg(&x), arg(&gp), arg(&eps), arg(&out), arg(&k)];
    // matmul_quant.cu Q8_WARPS: 8 warps of one group a block.
    let grid = ((k as usize / q8.group).div_ceil(8) as u32, 1, 1);
    QUANT_MODULE.launch(
        dev,
        &format!("quantize_q8_{}", q8.quantizer),
        grid,
        (256, 1, 1),
        &mut args,
    )
}

/// Whether the fused RMSNorm kernels run (`METALLIC_FUSED=off` turns them
/// off, for comparisons), read once.
fn fused_on() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("METALLIC_FUSED").map_or(true, |v| v != "off"))
}

/// Parts a lane keeps in flight in the fused kernels (their suffix `u<U>`).
const FUSED_U: usize = 4;

/// `struct MvSeg` of kernels/matmul_quant.cu: one projection of a fused
/// launch.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct MvSeg {
    w: u64,
    d: u64,
    bias: u64,
    e: Epilogue,
    n: i32,
}

const _: () = assert!(std::mem::size_of::<MvSeg>() == 144);

/// A projection no fused launch has: no rows.
const NO_SEG: MvSeg = MvSeg {
    w: 0,
    d: 0,
    bias: 0,
    e: Epilogue {
        c: Geom {
            off: 0,
            rs: 0,
            cs: 0,
            bs: 0,
        },
        d: Geom {
            off: 0,
            rs: 0,
            cs: 0,
            bs: 0,
        },
        bias_off: 0,
        bias_stride: 0,
        alpha: 1.0,
        beta: 0.0,
        act: 0,
        has_bias: 0,
        c_dtype: 0,
        d_dtype: 0,
        bias_dtype: 0,
        bias_rows: 0,
    },
    n: 0,
};

/// One projection `out = h w^T (+ bias)` of the row `x` (`[1, K]`) as a
/// fused kernel takes it, with the weight's type and row bytes: `None`
/// where it does not (see [`norm_rows`]).
fn fused_seg(
    dev: &CudaDevice,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    out: &Tensor,
) -> Result<Option<(MvSeg, DType, i64)>> {
    let dt = w.dtype();
    let (&[1, k], &[n, kw]) = (x.shape(), w.shape()) else {
        return Ok(None);
    };
    let align = match mv_path() {
        Some(MvPath::Q8) => q8_kernels(dt).map(|q| q.align),
        _ => mv_alignment(dt),
    };
    // Past 16 rows per column of the row (an output projection over the
    // vocabulary), every warp's share of the norm costs more than the
    // separate rms_norm launch it saves.
    let fits = kw == k
        && n <= 16 * k
        && k % dt.block_elems() == 0
        && out.shape() == [1, n]
        && w.is_contiguous()
        && out.is_contiguous()
        && out.dtype().is_float()
        && bias.is_none_or(|b| b.shape() == [n] && b.dtype().is_float());
    let Some(align) = align.filter(|_| fits) else {
        return Ok(None);
    };
    let (be, bb) = (dt.block_elems(), dt.block_bytes());
    let row_bytes = (k / be * bb) as i64;
    // A weight view starting mid-block never aligns.
    let off = w.layout().offset();
    let wp = ptr_on(OP, dev, w)? + (off / be * bb) as u64;
    if !off.is_multiple_of(be)
        || !wp.is_multiple_of(align)
        || !(row_bytes as u64).is_multiple_of(align)
    {
        return Ok(None);
    }
    let (bias_off, bias_stride, bias_dtype) = match bias {
        Some(b) => (
            b.layout().offset() as i64,
            b.strides()[0] as i64,
            dtype_code(OP, b.dtype())?,
        ),
        None => (0, 0, 0),
    };
    let e = Epilogue {
        d: Geom {
            off: out.layout().offset() as i64,
            rs: n as i64,
            cs: 1,
            bs: 0,
        },
        bias_off,
        bias_stride,
        has_bias: i32::from(bias.is_some()),
        d_dtype: dtype_code(OP, out.dtype())?,
        bias_dtype,
        ..NO_SEG.e
    };
    let seg = MvSeg {
        w: wp,
        d: ptr_on(OP, dev, out)?,
        bias: bias.map(|b| ptr_on(OP, dev, b)).transpose()?.unwrap_or(0),
        e,
        n: i32_dim("n", n)?,
    };
    Ok(Some((seg, dt, row_bytes)))
}

/// x (`[1, K]` f32) and gamma (`[K]` f32) as the fused kernels read them:
/// contiguous and 16-byte aligned, else `None`.
fn fused_row(dev: &CudaDevice, x: &Tensor, gamma: &Tensor) -> Result<Option<(u64, u64, i32)>> {
    let k = x.dim(x.rank() - 1);
    let ok = |t: &Tensor| t.dtype() == DType::F32 && t.is_contiguous();
    if x.rank() != 2 || x.dim(0) != 1 || gamma.shape() != [k] || !ok(x) || !ok(gamma) {
        return Ok(None);
    }
    let at =
        |t: &Tensor| -> Result<u64> { Ok(ptr_on(OP, dev, t)? + t.layout().offset() as u64 * 4) };
    let (xp, gp) = (at(x)?, at(gamma)?);
    if xp % 16 != 0 || gp % 16 != 0 {
        return Ok(None);
    }
    Ok(Some((xp, gp, i32_dim("k", k)?)))
}

/// RMSNorm fused into the one-row block-weight kernel, up to three
/// projections of the same row in one launch (`matmul_<type>_norm_mv_u<U>`):
/// `outs[i] = rms_norm(x, gamma, eps) W_i^T (+ bias_i)`, the projections
/// given as `(W_i, bias_i, out_i)`. `x` one f32 row `[1, K]` and `gamma` f32
/// `[K]`, both contiguous and 16-byte aligned; the weights `[N_i, K]` as
/// stored, contiguous, all of one type with a one-row kernel, their rows
/// aligned for its loads, N_i <= 16 K; each `out_i` `[1, N_i]` contiguous.
/// With 8-bit activations (the default one-row path) the weights may mix
/// types whose activations take the same quantizer (Q4_K with Q6_K; Q4_0,
/// Q5_0 and Q8_0): the row is normalised and quantized once, then a launch
/// per type.
/// `Ok(false)` where any of that does not hold (the caller runs them
/// otherwise); nothing is launched then.
pub(crate) fn norm_rows(
    x: &Tensor,
    (gamma, eps): (&Tensor, f32),
    proj: &[(&Tensor, Option<&Tensor>, &Tensor)],
) -> Result<bool> {
    let Some((_, _, first)) = proj.first() else {
        return Ok(true);
    };
    if !fused_on() || proj.len() > 3 {
        return Ok(false);
    }
    let (dev, _) = super::dev_ptr(OP, first)?;
    let Some((xp, gp, ki)) = fused_row(&dev, x, gamma)? else {
        return Ok(false);
    };
    let mut found = Vec::with_capacity(proj.len());
    for (w, b, out) in proj {
        match fused_seg(&dev, x, w, *b, out)? {
            Some(seg) => found.push(seg),
            None => return Ok(false),
        }
    }
    if mv_path() == Some(MvPath::Q8) {
        // One quantization of the normalised row serves every projection
        // whose type reads the same groups; a launch per type.
        let quantizer = |dt: DType| q8_kernels(dt).map(|q| q.quantizer);
        let first = quantizer(found[0].1);
        if first.is_none() || found.iter().any(|(_, dt, _)| quantizer(*dt) != first) {
            return Ok(false);
        }
        let xb = dev.alloc(x8_bytes(ki as usize))?;
        let xbp = xb.ptr();
        quantize_row_q8(&dev, found[0].1, xp, Some((gp, eps)), xbp, ki)?;
        let mut done = [false; 3];
        for i in 0..found.len() {
            if done[i] {
                continue;
            }
            let (dt, row_bytes) = (found[i].1, found[i].2);
            let mut segs = [NO_SEG; 3];
            let mut used = 0;
            for (j, (seg, dtj, rbj)) in found.iter().enumerate() {
                if !done[j] && (*dtj, *rbj) == (dt, row_bytes) {
                    segs[used] = *seg;
                    used += 1;
                    done[j] = true;
                }
            }
            let rows: usize = segs.iter().map(|s| s.n as usize).sum();
            let mut args = [
                arg(&xbp),
                arg(&row_bytes),
                arg(&segs[0]),
                arg(&segs[1]),
                arg(&segs[2]),
                arg(&ki),
            ];
            let name = format!("matmul_{}_q8mv_seg", super::get_rows::qname(dt));
            // matmul_quant.cu MV_WARPS: 4 warps of one row a block.
            let grid = (rows.div_ceil(4) as u32, 1, 1);
            QUANT_MODULE.launch(&dev, &name, grid, (128, 1, 1), &mut args)?;
        }
        return Ok(true);
    }
    let (dt, row_bytes) = (found[0].1, found[0].2);
    if found.iter().any(|(_, d, rb)| (*d, *rb) != (dt, row_bytes)) {
        return Ok(false);
    }
    let mut segs = [NO_SEG; 3];
    for (slot, (seg, _, _)) in segs.iter_mut().zip(&found) {
        *slot = *seg;
    }
    let rows: usize = segs.iter().map(|s| s.n as usize).sum();
    let qname = super::get_rows::qname(dt);
    // matmul_quant.cu MV_WARPS: 4 warps of one row a block.
    let grid = (rows.div_ceil(4) as u32, 1, 1);
    let mut args = [
        arg(&xp),
        arg(&gp),
        arg(&eps),
        arg(&row_bytes),
        arg(&segs[0]),
        arg(&segs[1]),
        arg(&segs[2]),
        arg(&ki),
    ];
    let name = format!("matmul_{qname}_norm_mv_u{FUSED_U}");
    QUANT_MODULE.launch(&dev, &name, grid, (128, 1, 1), &mut args)?;
    Ok(true)
}

/// RMSNorm, the gate and up products and SwiGLU in one launch
/// (`matmul_<type>_norm_swiglu_mv_u<U>`): `out = silu(h W_gate^T) * (h
/// W_up^T)`, h = rms_norm(x, gamma, eps), on the terms of [`norm_rows`]
/// (both weights of one type and shape, no bias). `Ok(false)` where they
/// do not hold.
pub(crate) fn norm_swiglu_row(
    x: &Tensor,
    (gamma, eps): (&Tensor, f32),
    (w_gate, w_up): (&Tensor, &Tensor),
    out: &Tensor,
) -> Result<bool> {
    if !fused_on() || w_gate.shape() != w_up.shape() || w_gate.dtype() != w_up.dtype() {
        return Ok(false);
    }
    let (dev, _) = super::dev_ptr(OP, out)?;
    let Some((xp, gp, ki)) = fused_row(&dev, x, gamma)? else {
        return Ok(false);
    };
    let (Some((g, dt, row_bytes)), Some((u, _, _))) = (
        fused_seg(&dev, x, w_gate, None, out)?,
        fused_seg(&dev, x, w_up, None, out)?,
    ) else {
        return Ok(false);
    };
    let qname = super::get_rows::qname(dt);
    let grid = ((g.n as usize).div_ceil(4) as u32, 1, 1);
    if mv_path() == Some(MvPath::Q8) {
        let xb = dev.alloc(x8_bytes(ki as usize))?;
        let xbp = xb.ptr();
        quantize_row_q8(&dev, dt, xp, Some((gp, eps)), xbp, ki)?;
        let mut args = [
            arg(&xbp),
            arg(&g.w),
            arg(&u.w),
            arg(&row_bytes),
            arg(&g.e),
            arg(&g.d),
            arg(&g.n),
            arg(&ki),
        ];
        let name = format!("matmul_{qname}_q8mv_swiglu");
        QUANT_MODULE.launch(&dev, &name, grid, (128, 1, 1), &mut args)?;
        return Ok(true);
    }
    let mut args = [
        arg(&xp),
        arg(&gp),
        arg(&eps),
        arg(&g.w),
        arg(&u.w),
        arg(&row_bytes),
        arg(&g.e),
        arg(&g.d),
        arg(&g.n),
        arg(&ki),
    ];
    let name = format!("matmul_{qname}_norm_swiglu_mv_u{FUSED_U}");
    QUANT_MODULE.launch(&dev, &name, grid, (128, 1, 1), &mut args)?;
    Ok(true)
}

/// The block types with a wide-load kernel (`matmul_<type>_mmv<R>`), and the
/// alignment in bytes its loads need of every weight row: 16 for Q4_K's
/// 16-byte header, 2 for the rest (their blocks of 18, 20, 22, 24, 34 and
/// 210 bytes leave 2 at least; the legacy types' loads are 2-byte ones).
fn mmv_alignment(dt: DType) -> Option<u64> {
    match dt {
        DType::Q4K => Some(16),
        DType::Q4_0 | DType::Q4_1 | DType::Q5_0 | DType::Q5_1 | DType::Q8_0 | DType::Q6K => Some(2),
        _ => None,
    }
}

/// The block types with f32 one-row kernels (`matmul_<type>_mv<R>`, the
/// fused `_norm_mv_u<U>` / `_norm_swiglu_mv_u<U>`: a D<T> in quant.cuh), and
/// their alignment, the wide-load kernel's.
fn mv_alignment(dt: DType) -> Option<u64> {
    match dt {
        DType::Q4_0 | DType::Q8_0 | DType::Q4K | DType::Q6K => mmv_alignment(dt),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Device;
    use crate::ops::elementwise::swiglu;
    use crate::ops::matmul::{matmul, Matmul, MatmulBackend};
    use crate::ops::norm::rms_norm;
    use crate::optest::{nmse, Rng};
    use crate::tensor::HostBytes;

    /// The float4 rounding kernel writes the scalar kernel's bits: rows that
    /// fit its registers and rows that do not, rows scaled into f16's range
    /// and rows holding NaN and infinities, matrices of a batch apart; both
    /// outputs poisoned first. Prints SKIP without a GPU.
    #[test]
    fn vector_rounding_matches_the_scalar_kernel() {
        let Some(dev) = crate::cuda::default_device() else {
            println!("SKIP round_rows_f16_scaled_f32x4: no CUDA device");
            return;
        };
        let gpu = Device::Cuda(dev.clone());
        let mut rng = Rng::new(25);
        for (count, rows, cols, pad) in [(1, 37, 4096, 0), (2, 5, 4100, 8), (1, 3, 18944, 0)] {
            let rs = cols + pad;
            let mut x: Vec<f32> = rng
                .vec(count * rows * rs)
                .iter()
                .map(|v| 4.0 * v - 2.0)
                .collect();
            // Row 1 of each matrix far outside f16's range, row 2 with a NaN
            // and an infinity.
            for z in 0..count {
                let r1 = (z * rows + 1) * rs;
                x[r1..r1 + cols].iter_mut().for_each(|v| *v *= 3.0e7);
                let r2 = (z * rows + 2) * rs;
                x[r2 + 3] = f32::NAN;
                x[r2 + cols - 1] = f32::INFINITY;
            }
            let src = Tensor::from_f32(&x, &[count * rows * rs])
                .and_then(|t| t.to_device(&gpu))
                .unwrap();
            let sp = ptr_on(OP, &dev, &src).unwrap();
            let g = Geom {
                off: 0,
                rs: rs as i64,
                cs: 1,
                bs: (rows * rs) as i64,
            };
            assert!(rows_f32x4(sp, DType::F32, &g, cols));
            let lines = count * rows;
            let run = |vector: bool| {
                let d = Tensor::from_f32(&vec![f32::NAN; lines * cols], &[lines * cols])
                    .and_then(|t| t.to_dtype(DType::F16))
                    .and_then(|t| t.to_device(&gpu))
                    .unwrap();
                let sc = Tensor::from_f32(&vec![f32::NAN; lines], &[lines])
                    .and_then(|t| t.to_device(&gpu))
                    .unwrap();
                let (dp, scp) = (
                    ptr_on(OP, &dev, &d).unwrap(),
                    ptr_on(OP, &dev, &sc).unwrap(),
                );
                round_rows_into(
                    &dev,
                    (sp, DType::F32, &g),
                    (lines, rows, cols),
                    (dp, scp),
                    vector,
                )
                .unwrap();
                (d.to_vec_f32().unwrap(), sc.to_vec_f32().unwrap())
            };
            let (want, want_s) = run(false);
            let (got, got_s) = run(true);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&want_s),
                bits(&got_s),
                "{count} x {rows} x {cols}: scales"
            );
            assert!(want_s.iter().all(|v| v.is_finite()), "unwritten scales");
            assert!(want_s.iter().any(|&v| v > 1.0), "no row was scaled");
            assert_eq!(bits(&want), bits(&got), "{count} x {rows} x {cols}: rows");
            // Only the NaN put in is NaN (nothing left unwritten).
            assert_eq!(want.iter().filter(|v| v.is_nan()).count(), count);
        }
    }

    /// Bands cover every row once, in equal whole 128-row tiles but the
    /// last, and their scratch never exceeds QBAND_BYTES unless one tile
    /// row is larger.
    #[test]
    fn weight_bands_cover_the_rows_within_the_scratch() {
        // The 7B's gate / up / down, q / o, k / v; the 0.5B's; odd sizes.
        for (n, k) in [
            (18944, 3584),
            (3584, 18944),
            (3584, 3584),
            (512, 3584),
            (4864, 896),
            (896, 4864),
            (1, 64),
            (130, 8),
            (152064, 3584),
            (300, 1 << 20),
        ] {
            let rows = qband_rows(n, k, QBAND_BYTES);
            assert!(rows >= 1 && rows <= n, "{n} x {k}: {rows}");
            assert!(rows.is_multiple_of(128) || rows == n, "{n} x {k}: {rows}");
            assert!(
                rows * k * 2 <= QBAND_BYTES || rows <= 128,
                "{n} x {k}: {rows}"
            );
            let bands = n.div_ceil(rows);
            // No band count larger than the scratch forces.
            let cap = (QBAND_BYTES / (2 * k) / 128 * 128).max(128);
            assert!(
                bands <= n.div_ceil(cap.min(n)) + 1,
                "{n} x {k}: {bands} bands"
            );
        }
        // The 7B's gate (136 MB of f16): one band; with 64 MiB, three of
        // 6400, 6400 and 6144 rows.
        assert_eq!(qband_rows(18944, 3584, QBAND_BYTES), 18944);
        assert_eq!(qband_rows(18944, 3584, 64 << 20), 6400);
        // The 7B's output weight (1.09 GB of f16): seven bands of 21760
        // rows, the last 21504.
        assert_eq!(qband_rows(152064, 3584, QBAND_BYTES), 21760);
        // A weight under the cap is one band.
        assert_eq!(qband_rows(3584, 3584, QBAND_BYTES), 3584);
        assert_eq!(qband_rows(896, 4864, QBAND_BYTES), 896);
        // The tests' setting: 128-row bands.
        assert_eq!(qband_rows(300, 64, 0), 128);
        assert_eq!(qband_rows(100, 64, 0), 100);
    }

    /// The fused kernels take one row of x against each block type with
    /// a one-row kernel on the one-row path ([`mv_path`]), one projection
    /// with a bias, three (q, k, v: 45, 13 and 13 rows) in one launch, and
    /// gate / up with SwiGLU, and agree with rms_norm then the products
    /// (then swiglu) on the same GPU to f32 rounding (NMSE < 1e-10; a wrong
    /// element or scale lands near 1). They refuse several rows, a type
    /// without a one-row kernel, types of different activation quantizers
    /// (any mix, on the f32 path), a misaligned x and an output projection
    /// past 16 K rows, which the fused ops then compose. Prints SKIP
    /// without a GPU.
    #[test]
    fn fused_kernels_take_one_row_and_refuse_the_rest() {
        let Some(dev) = crate::cuda::default_device() else {
            println!("SKIP fused kernels: no CUDA device");
            return;
        };
        let gpu = Device::Cuda(dev.clone());
        let mut rng = Rng::new(11);
        let mut rand = |shape: &[usize]| {
            let n = shape.iter().product();
            Tensor::from_f32(&rng.vec(n), shape)
                .and_then(|t| t.to_device(&gpu))
                .unwrap()
        };
        let weight = |dt: DType, n: usize, k: usize, seed: u64| {
            let bytes = crate::quant::random_row(dt, n * k, seed);
            Tensor::from_raw(HostBytes::from_bytes(&bytes), &[n, k], dt)
                .and_then(|t| t.to_device(&gpu))
                .unwrap()
        };
        let zeros = |shape: &[usize]| Tensor::zeros(shape, DType::F32, &gpu).unwrap();
        let p = Matmul {
            backend: MatmulBackend::Native,
            ..Default::default()
        };
        let (k, eps) = (1536, 1e-6);
        let ns = [45, 13, 13];
        let q8 = mv_path() == Some(MvPath::Q8);
        let mut types = vec![DType::Q4_0, DType::Q8_0, DType::Q4K, DType::Q6K];
        if q8 {
            types.extend([DType::Q4_1, DType::Q5_0, DType::Q5_1]);
        }
        for dt in types {
            let (x, gamma) = (rand(&[1, k]), rand(&[k]));
            let h = zeros(&[1, k]);
            rms_norm(&x, &gamma, eps, &h).unwrap();
            let ws: Vec<Tensor> = ns
                .iter()
                .zip(1..)
                .map(|(&n, s)| weight(dt, n, k, s))
                .collect();
            let bias: Vec<Tensor> = ns.iter().map(|&n| rand(&[n])).collect();
            let outs: Vec<Tensor> = ns.iter().map(|&n| zeros(&[1, n])).collect();
            for count in [1, 3] {
                let proj: Vec<_> = (0..count)
                    .map(|i| (&ws[i], Some(&bias[i]), &outs[i]))
                    .collect();
                assert!(norm_rows(&x, (&gamma, eps), &proj).unwrap());
                for i in 0..count {
                    let want = zeros(&[1, ns[i]]);
                    let pb = Matmul {
                        bias: Some(&bias[i]),
                        ..p
                    };
                    matmul(&h, &ws[i].t().unwrap(), &want, &pb).unwrap();
                    let e = nmse(&outs[i].to_vec_f32().unwrap(), &want.to_vec_f32().unwrap());
                    println!("{dt} norm_mv, projection {i} of {count}: nmse {e:.2e} against rms_norm + matmul");
                    assert!(e < 1e-10, "{dt} {i} of {count}: {e:.2e}");
                }
            }
            let (wg, wu, out) = (&ws[0], weight(dt, ns[0], k, 9), zeros(&[1, ns[0]]));
            assert!(norm_swiglu_row(&x, (&gamma, eps), (wg, &wu), &out).unwrap());
            let (g, u, want) = (zeros(&[1, ns[0]]), zeros(&[1, ns[0]]), zeros(&[1, ns[0]]));
            matmul(&h, &wg.t().unwrap(), &g, &p).unwrap();
            matmul(&h, &wu.t().unwrap(), &u, &p).unwrap();
            swiglu(&g, &u, &want).unwrap();
            let e = nmse(&out.to_vec_f32().unwrap(), &want.to_vec_f32().unwrap());
            println!("{dt} norm_swiglu_mv: nmse {e:.2e} against rms_norm + matmuls + swiglu");
            assert!(e < 1e-10, "{dt}: {e:.2e}");
        }
        // Refused: three rows, Q5_K, mixed types, x one element into its
        // storage, more than 16 K rows.
        let n = 45;
        let (gamma, out) = (rand(&[k]), zeros(&[1, n]));
        let (wq, x) = (weight(DType::Q4K, n, k, 3), rand(&[1, k]));
        let refused = |x: &Tensor, w: &Tensor, out: &Tensor| {
            !norm_rows(x, (&gamma, eps), &[(w, None, out)]).unwrap()
        };
        assert!(refused(&rand(&[3, k]), &wq, &zeros(&[3, n])));
        assert!(refused(&x, &weight(DType::Q5K, n, k, 4), &out));
        assert!(refused(
            &rand(&[1, k + 1]).narrow(1, 1, k).unwrap(),
            &wq,
            &out
        ));
        let wide = 16 * 256 + 4;
        assert!(refused(
            &rand(&[1, 256]),
            &weight(DType::Q4K, wide, 256, 6),
            &zeros(&[1, wide])
        ));
        // Mixed types: with 8-bit activations, types whose activations
        // take the same quantizer (Q4_K with Q6_K: Q8_K; Q5_0 with Q8_0:
        // Q8_0) share one quantization, a launch each, and equal the
        // composition; Q4_K with Q8_0 and Q4_0 with Q4_1 (Q8_0 against
        // Q8_1) are refused. The f32 kernels refuse any mix.
        let (w6, out2) = (weight(DType::Q6K, n, k, 5), zeros(&[1, n]));
        let mixed = [(&wq, None, &out), (&w6, None, &out2)];
        if q8 {
            let h = zeros(&[1, k]);
            rms_norm(&x, &gamma, eps, &h).unwrap();
            let (w5, w8) = (weight(DType::Q5_0, n, k, 8), weight(DType::Q8_0, n, k, 7));
            for (a, b) in [(&wq, &w6), (&w5, &w8)] {
                assert!(
                    norm_rows(&x, (&gamma, eps), &[(a, None, &out), (b, None, &out2)]).unwrap()
                );
                for (w, got) in [(a, &out), (b, &out2)] {
                    let want = zeros(&[1, n]);
                    matmul(&h, &w.t().unwrap(), &want, &p).unwrap();
                    let e = nmse(&got.to_vec_f32().unwrap(), &want.to_vec_f32().unwrap());
                    println!(
                        "{} of a mixed q/k/v ({} with {}): nmse {e:.2e} against rms_norm + matmul",
                        w.dtype(),
                        a.dtype(),
                        b.dtype()
                    );
                    assert!(e < 1e-10, "{}: {e:.2e}", w.dtype());
                }
            }
            let (w40, w41) = (weight(DType::Q4_0, n, k, 10), weight(DType::Q4_1, n, k, 11));
            for (a, b) in [(&wq, &w8), (&w40, &w41)] {
                assert!(
                    !norm_rows(&x, (&gamma, eps), &[(a, None, &out), (b, None, &out2)]).unwrap()
                );
            }
        } else {
            assert!(!norm_rows(&x, (&gamma, eps), &mixed).unwrap());
        }
    }
}
