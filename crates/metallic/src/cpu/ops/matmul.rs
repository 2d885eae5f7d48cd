//! Matmul on the CPU: our blocked kernel, our quantized-weight kernel, and the
//! `gemm` crate as the vendor. Each computes the F32 product of one batch;
//! the shared epilogue then writes `D` through its strides.

use rayon::prelude::*;

use super::matmul_quant::PackedWeights;
use crate::error::Result;
use crate::ops::matmul::{epilogue, MatView, MatmulKernel, MatmulProblem, Operands};
use crate::tensor::{read_f32, write_f32, DType};

const OP: &str = "matmul";

/// Rows of A per micro-tile and columns of B per micro-tile: 4 x 16 F32
/// accumulators fit in registers with AVX2 or AVX-512, and the inner loop over
/// 16 contiguous columns auto-vectorises.
const MR: usize = 4;
const NR: usize = 16;

/// An F32 product of one batch, `[m, n]` with arbitrary strides.
struct Product {
    data: Vec<f32>,
    row_stride: usize,
    col_stride: usize,
}

pub fn run(kernel: MatmulKernel, p: &MatmulProblem, ops: &Operands) -> Result<()> {
    if !matches!(
        kernel,
        MatmulKernel::CpuBlocked | MatmulKernel::CpuQuant | MatmulKernel::CpuVendor
    ) {
        crate::bail!(OP, "kernel {kernel:?} does not run on the CPU");
    }
    let a_store = ops.a.cpu_storage(OP)?.read();
    let b_storage = ops.b.cpu_storage(OP)?;
    let packed = match kernel {
        MatmulKernel::CpuQuant => b_storage.derived::<PackedWeights>(),
        _ => None,
    };
    let b_store = b_storage.read();
    let bias: Option<Vec<f32>> = ops.bias.map(|t| t.to_vec_f32()).transpose()?;
    let c_store = match ops.c {
        Some(c) if !p.c_is_d => Some(c.cpu_storage(OP)?.read()),
        _ => None,
    };
    let d_storage = ops.d.cpu_storage(OP)?;
    let mut d_store = d_storage.write(OP)?;
    let d_bytes = d_store
        .bytes_mut()
        .expect("write() refuses read-only storage");
    let (a_bytes, b_bytes) = (a_store.bytes(), b_store.bytes());

    // A vendor call on quantized weights dequantizes W once per distinct matrix.
    let mut vendor_w: Option<(usize, Vec<f32>)> = None;
    for bi in 0..p.batch() {
        let a_off = p.a.batch_offset(&p.batch_shape, bi);
        let b_off = p.b.batch_offset(&p.batch_shape, bi);
        let prod = match kernel {
            MatmulKernel::CpuBlocked => blocked(p, a_bytes, a_off, b_bytes, b_off),
            MatmulKernel::CpuQuant => {
                quantized(p, a_bytes, a_off, b_bytes, b_off, packed.as_deref())?
            }
            MatmulKernel::CpuVendor => {
                if p.b.dtype.is_quantized() && vendor_w.as_ref().is_none_or(|w| w.0 != b_off) {
                    vendor_w = Some((b_off, dequantize_weight(p, b_bytes, b_off)?));
                }
                vendor(
                    p,
                    a_bytes,
                    a_off,
                    b_bytes,
                    b_off,
                    vendor_w.as_ref().map(|w| &w.1[..]),
                )
            }
            _ => unreachable!("checked on entry"),
        };
        let d_off = p.d.batch_offset(&p.batch_shape, bi);
        let c_off = p.c.as_ref().map(|c| c.batch_offset(&p.batch_shape, bi));
        if epilogue_f32_rows(
            p,
            &prod,
            d_bytes,
            d_off,
            c_store.as_ref().map(|s| s.bytes()),
            c_off,
            bias.as_deref(),
        ) {
            if kernel == MatmulKernel::CpuQuant {
                QUANT_OUT.with(|o| *o.borrow_mut() = prod.data);
            }
            continue;
        }
        for i in 0..p.m {
            for j in 0..p.n {
                let acc = prod.data[i * prod.row_stride + j * prod.col_stride];
                let d_idx = d_off + i * p.d.row_stride + j * p.d.col_stride;
                let cv = match (&p.c, c_off) {
                    (Some(cv), Some(off)) => {
                        let idx = off + i * cv.row_stride + j * cv.col_stride;
                        match &c_store {
                            Some(s) => read_f32(s.bytes(), cv.dtype, idx),
                            None => read_f32(d_bytes, p.d.dtype, idx),
                        }
                    }
                    _ => 0.0,
                };
                let bv = bias.as_ref().map_or(0.0, |b| b[j]);
                let v = epilogue(acc, p.alpha, p.beta, cv, bv, p.activation);
                write_f32(d_bytes, p.d.dtype, d_idx, v);
            }
        }
        if kernel == MatmulKernel::CpuQuant {
            QUANT_OUT.with(|o| *o.borrow_mut() = prod.data);
        }
    }
    Ok(())
}

thread_local! {
    /// The quantized kernel's product buffer, reused across calls so that a
    /// decode step does not allocate it.
    static QUANT_OUT: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The epilogue over contiguous F32 rows: `D`, `C` (if read) and the product
/// all have unit column stride and F32 elements. Returns false, writing
/// nothing, when the operands do not fit; the caller then takes the generic
/// strided path. Same arithmetic as that path, element for element.
fn epilogue_f32_rows(
    p: &MatmulProblem,
    prod: &Product,
    d_bytes: &mut [u8],
    d_off: usize,
    c_bytes: Option<&[u8]>,
    c_off: Option<usize>,
    bias: Option<&[f32]>,
) -> bool {
    let c_fits = match &p.c {
        None => true,
        Some(cv) => cv.dtype == DType::F32 && cv.col_stride == 1,
    };
    if p.d.dtype != DType::F32 || p.d.col_stride != 1 || prod.col_stride != 1 || !c_fits {
        return false;
    }
    let n = p.n;
    for i in 0..p.m {
        let acc = &prod.data[i * prod.row_stride..][..n];
        let d_start = d_off + i * p.d.row_stride;
        // C first (it may be D itself): read into the accumulator's epilogue
        // before D's row is overwritten, element by element.
        let c_row: Option<(Option<&[u8]>, usize)> = match (&p.c, c_off) {
            (Some(cv), Some(off)) => Some((c_bytes, off + i * cv.row_stride)),
            _ => None,
        };
        if let Some((cb, c_start)) = c_row {
            let Some(cb) = cb.filter(|_| !p.c_is_d) else {
                // C is D: read and write the same row.
                let d = &mut crate::tensor::cast_mut::<f32>(d_bytes)[d_start..d_start + n];
                for j in 0..n {
                    let bv = bias.map_or(0.0, |b| b[j]);
                    d[j] = epilogue(acc[j], p.alpha, p.beta, d[j], bv, p.activation);
                }
                continue;
            };
            {
                let c = &crate::tensor::cast::<f32>(cb)[c_start..c_start + n];
                let d = &mut crate::tensor::cast_mut::<f32>(d_bytes)[d_start..d_start + n];
                for j in 0..n {
                    let bv = bias.map_or(0.0, |b| b[j]);
                    d[j] = epilogue(acc[j], p.alpha, p.beta, c[j], bv, p.activation);
                }
            }
        } else {
            let d = &mut crate::tensor::cast_mut::<f32>(d_bytes)[d_start..d_start + n];
            for j in 0..n {
                let bv = bias.map_or(0.0, |b| b[j]);
                d[j] = epilogue(acc[j], p.alpha, p.beta, 0.0, bv, p.activation);
            }
        }
    }
    true
}

/// Copies a strided `[rows, cols]` float matrix into row-major F32 with the
/// given padded sizes (padding is zero). `transpose` packs the matrix's
/// transpose instead.
fn pack(
    bytes: &[u8],
    v: &MatView,
    off: usize,
    (rows, cols): (usize, usize),
    (prows, pcols): (usize, usize),
    transpose: bool,
) -> Vec<f32> {
    let mut out = vec![0.0f32; prows * pcols];
    for r in 0..rows {
        for c in 0..cols {
            let x = read_f32(bytes, v.dtype, off + r * v.row_stride + c * v.col_stride);
            if transpose {
                out[c * pcols + r] = x;
            } else {
                out[r * pcols + c] = x;
            }
        }
    }
    out
}

/// Our float kernel: A packed to `[Mp, K]`, B to `[K, Np]`, then 4 x 16
/// register tiles, row blocks in parallel.
fn blocked(p: &MatmulProblem, a: &[u8], a_off: usize, b: &[u8], b_off: usize) -> Product {
    let (m, n, k) = (p.m, p.n, p.k);
    let (mp, np) = (m.div_ceil(MR) * MR, n.div_ceil(NR) * NR);
    let ap = pack(a, &p.a, a_off, (m, k), (mp, k), false);
    let bp = pack(b, &p.b, b_off, (k, n), (k, np), false);
    let mut out = vec![0.0f32; mp * np];
    out.par_chunks_mut(MR * np)
        .enumerate()
        .for_each(|(blk, out_rows)| {
            let a_rows = &ap[blk * MR * k..(blk + 1) * MR * k];
            for j0 in (0..np).step_by(NR) {
                let mut acc = [[0.0f32; NR]; MR];
                for l in 0..k {
                    let brow: &[f32; NR] = bp[l * np + j0..l * np + j0 + NR].try_into().unwrap();
                    for (r, acc_r) in acc.iter_mut().enumerate() {
                        let av = a_rows[r * k + l];
                        for (x, &bv) in acc_r.iter_mut().zip(brow) {
                            *x += av * bv;
                        }
                    }
                }
                for (r, acc_r) in acc.iter().enumerate() {
                    out_rows[r * np + j0..r * np + j0 + NR].copy_from_slice(acc_r);
                }
            }
        });
    Product {
        data: out,
        row_stride: np,
        col_stride: 1,
    }
}

/// Byte offset of the first block of the weight row starting at element `elem`.
fn block_byte_offset(dtype: DType, elem: usize) -> usize {
    elem / dtype.block_elems() * dtype.block_bytes()
}

/// Repacks a quantized weight matrix for this CPU's fastest kernels, when it
/// has some (see `matmul_quant::prepack`); the matmul then uses the copy.
/// Returns whether it did.
pub fn prepack_weight(w: &crate::tensor::Tensor) -> Result<bool> {
    super::matmul_quant::prepack(w)
}

/// Our kernel for GGUF block weights (`matmul_quant.rs`): activations
/// quantized to the weight's 8-bit partner format, integer block dot products,
/// weight rows in parallel. Its product buffer is reused across calls
/// (`QUANT_OUT`, given back after the epilogue).
fn quantized(
    p: &MatmulProblem,
    a: &[u8],
    a_off: usize,
    b: &[u8],
    b_off: usize,
    packed: Option<&PackedWeights>,
) -> Result<Product> {
    let mut data = QUANT_OUT.with(|o| std::mem::take(&mut *o.borrow_mut()));
    let l = super::matmul_quant::quantized(p, a, a_off, b, b_off, packed, &mut data)?;
    Ok(Product {
        data,
        row_stride: l.row_stride,
        col_stride: l.col_stride,
    })
}

/// The whole weight of one batch, dequantized to row-major `[K, N]` F32.
fn dequantize_weight(p: &MatmulProblem, b: &[u8], b_off: usize) -> Result<Vec<f32>> {
    let (n, k) = (p.n, p.k);
    let row_bytes = p.b.dtype.bytes_for(k).expect("validated whole blocks");
    let mut wt = vec![0.0f32; n * k];
    let mut row = vec![0.0f32; k];
    for j in 0..n {
        let start = block_byte_offset(p.b.dtype, b_off + j * p.b.col_stride);
        crate::quant::dequantize_row(p.b.dtype, &b[start..start + row_bytes], &mut row)?;
        for (l, &x) in row.iter().enumerate() {
            wt[l * n + j] = x;
        }
    }
    Ok(wt)
}

/// The vendor: the `gemm` crate on F32 operands. F32 inputs go in through
/// their own strides; F16/BF16 inputs are converted first (the crate has no
/// BF16 kernel, and no mixed-precision one).
fn vendor(
    p: &MatmulProblem,
    a: &[u8],
    a_off: usize,
    b: &[u8],
    b_off: usize,
    dequantized_b: Option<&[f32]>,
) -> Product {
    let (m, n, k) = (p.m, p.n, p.k);
    let a_packed;
    let (a_ptr, a_rs, a_cs) = if p.a.dtype == DType::F32 {
        let s = crate::tensor::cast::<f32>(a);
        (s[a_off..].as_ptr(), p.a.row_stride, p.a.col_stride)
    } else {
        a_packed = pack(a, &p.a, a_off, (m, k), (m, k), false);
        (a_packed.as_ptr(), k, 1)
    };
    let b_packed;
    let (b_ptr, b_rs, b_cs) = match dequantized_b {
        Some(w) => (w.as_ptr(), n, 1),
        None if p.b.dtype == DType::F32 => {
            let s = crate::tensor::cast::<f32>(b);
            (s[b_off..].as_ptr(), p.b.row_stride, p.b.col_stride)
        }
        None => {
            b_packed = pack(b, &p.b, b_off, (k, n), (k, n), false);
            (b_packed.as_ptr(), n, 1)
        }
    };
    let mut out = vec![0.0f32; m * n];
    let threads = rayon::current_num_threads();
    // SAFETY: every pointer addresses a live buffer; validation guarantees the
    // strided [m, k] / [k, n] windows lie inside them (views are bounds-checked
    // when made), and `out` is a fresh [m, n] row-major buffer.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a_ptr,
            a_cs as isize,
            a_rs as isize,
            b_ptr,
            b_cs as isize,
            b_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            if threads > 1 {
                gemm::Parallelism::Rayon(threads)
            } else {
                gemm::Parallelism::None
            },
        );
    }
    Product {
        data: out,
        row_stride: n,
        col_stride: 1,
    }
}
