//! Every tile of the f32 GEMM (exact and TF32), forced by name, against
//! cuBLAS (`MatmulBackend::Vendor`, f32 compute, TF32 off) on the same
//! inputs: the dispatcher picks one exact tile per shape, so the op cases
//! alone would leave the others, and the TF32 ones, unrun. Cases cover M, N
//! and K tails, each operand layout the kernels specialise (A row-major or
//! transposed, B a transposed weight or row-major) and the strided fallback
//! (a padded leading dimension that breaks 16-byte groups, a view one
//! element in), batches (dense, and a broadcast B), alpha, beta with C, C
//! aliasing D, bias and an activation.
//!
//! Tolerance, as the relative L2 error |ours - cuBLAS| / |cuBLAS|: 1e-5 for
//! the exact tiles (both are fp32 FMA chains that differ only in summation
//! order, ~sqrt(K) * 2^-24), 3e-3 for TF32 (operands rounded to 10 mantissa
//! bits, 2^-11 relative each; METHOD.md puts a TF32 product near 3e-4 on
//! such inputs, so 3e-3 leaves room for long K while still failing a wrong
//! index, which lands near 1). Without a CUDA device it prints SKIP.

use metallic::cuda::default_device;
use metallic::cuda::ops::matmul::{f32 as f32_gemm, matmul_f32_tile};
use metallic::ops::matmul::{matmul, Activation, Matmul, MatmulBackend};
use metallic::{DType, Device, Tensor};

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// How an operand is stored.
#[derive(Debug, Clone, Copy)]
enum Store {
    /// Row-major, rows of the logical matrix.
    Rows,
    /// Stored transposed (the logical matrix is the storage's `.t()`).
    Trans,
    /// Row-major with the leading dimension padded by 3 (16-byte groups
    /// broken) and the view starting one element in.
    Padded,
    /// Stored transposed, rows padded to the next multiple of 4 plus 4 (a
    /// K tail inside aligned rows).
    Wide,
    /// Row-major, rows padded like `Wide`'s (for A: K-contiguous, aligned,
    /// with a K tail).
    RowsWide,
}

struct Case {
    batch: usize,
    b_broadcast: bool,
    m: usize,
    n: usize,
    k: usize,
    a: Store,
    b: Store,
    alpha: f32,
    /// beta with a separate C, or with C = D.
    beta: Option<(f32, bool)>,
    bias: bool,
    act: Activation,
    /// B's dtype: f32, or f16 / bf16 (a mixed pair; A stays f32).
    b_dtype: DType,
}

/// A logical `[batch?, rows, cols]` operand of `dtype` stored as `store`
/// says, on `dev`.
fn operand(
    dev: &Device,
    (store, dtype): (Store, DType),
    batch: Option<usize>,
    (rows, cols): (usize, usize),
    seed: u64,
) -> Tensor {
    let nb = batch.unwrap_or(1);
    let (sr, sc) = match store {
        Store::Trans | Store::Wide => (cols, rows),
        _ => (rows, cols),
    };
    let (ld, off) = match store {
        Store::Padded => (sc + 3, 1),
        Store::Wide | Store::RowsWide => (sc.next_multiple_of(4) + 4, 0),
        _ => (sc, 0),
    };
    let per = sr * ld;
    let total = off + nb * per;
    let base = Tensor::from_f32(&random(total, seed), &[total])
        .and_then(|t| t.to_dtype(dtype))
        .and_then(|t| t.to_device(dev))
        .unwrap();
    let view = match batch {
        Some(nb) => base.as_strided(&[nb, sr, sc], &[per, ld, 1], off),
        None => base.as_strided(&[sr, sc], &[ld, 1], off),
    }
    .unwrap();
    match store {
        Store::Trans | Store::Wide => view.t().unwrap(),
        _ => view,
    }
}

/// The case's epilogue for output `d` (C is `d` itself where the case says so).
fn params<'a>(
    c: &Case,
    d: &'a Tensor,
    c_init: &'a Tensor,
    bias: Option<&'a Tensor>,
    backend: MatmulBackend,
) -> Matmul<'a> {
    Matmul {
        alpha: c.alpha,
        beta: c.beta.map_or(0.0, |b| b.0),
        c: match c.beta {
            Some((_, true)) => Some(d),
            Some((_, false)) => Some(c_init),
            None => None,
        },
        bias,
        activation: c.act,
        backend,
    }
}

/// Runs case `c` (inputs from `seed`) through `ours` and through cuBLAS
/// (on A rounded to `round_ref` first, where given); returns the relative
/// L2 error between them (infinite where ours holds NaN, as an unwritten
/// element of the poisoned output does, or an infinity cuBLAS does not).
fn compare(
    dev: &Device,
    c: &Case,
    (seed, round_ref): (u64, Option<DType>),
    ours: &dyn Fn(&Tensor, &Tensor, &Tensor, &Matmul) -> metallic::Result<()>,
) -> f64 {
    let batch = (c.batch > 1).then_some(c.batch);
    let x = operand(dev, (c.a, DType::F32), batch, (c.m, c.k), seed + 1);
    let w = operand(
        dev,
        (c.b, c.b_dtype),
        batch.filter(|_| !c.b_broadcast),
        (c.k, c.n),
        seed + 2,
    );
    let out_shape: Vec<usize> = batch.into_iter().chain([c.m, c.n]).collect();
    let nout: usize = out_shape.iter().product();
    let c_init = Tensor::from_f32(&random(nout, seed + 3), &out_shape)
        .and_then(|t| t.to_device(dev))
        .unwrap();
    let bias = c.bias.then(|| {
        Tensor::from_f32(&random(c.n, seed + 4), &[c.n])
            .and_then(|t| t.to_device(dev))
            .unwrap()
    });
    // D starts as C (so C = D accumulates) or as NaN (every element must be
    // written).
    let fresh = || {
        if matches!(c.beta, Some((_, true))) {
            let d = Tensor::zeros(&out_shape, DType::F32, dev).unwrap();
            metallic::ops::copy::copy(&c_init, &d).unwrap();
            d
        } else {
            Tensor::full(&out_shape, f32::NAN, DType::F32, dev).unwrap()
        }
    };
    let (y, y_ref) = (fresh(), fresh());
    let p = params(c, &y, &c_init, bias.as_ref(), MatmulBackend::Native);
    ours(&x, &w, &y, &p).unwrap();
    let theirs = params(c, &y_ref, &c_init, bias.as_ref(), MatmulBackend::Vendor);
    let x_ref = match round_ref {
        Some(dt) => x.to_dtype(dt).and_then(|r| r.to_dtype(DType::F32)).unwrap(),
        None => x,
    };
    matmul(&x_ref, &w, &y_ref, &theirs).unwrap();
    let (got, want) = (y.to_vec_f32().unwrap(), y_ref.to_vec_f32().unwrap());
    metallic::optest::nmse(&got, &want).sqrt()
}

fn describe(c: &Case) -> String {
    format!(
        "batch {} (B broadcast: {}) {}x{}x{} A {:?} B {:?} {} alpha {} beta {:?} bias {} {:?}",
        c.batch, c.b_broadcast, c.m, c.n, c.k, c.a, c.b, c.b_dtype, c.alpha, c.beta, c.bias, c.act
    )
}

fn case(m: usize, n: usize, k: usize, a: Store, b: Store) -> Case {
    Case {
        batch: 1,
        b_broadcast: false,
        m,
        n,
        k,
        a,
        b,
        alpha: 1.0,
        beta: None,
        bias: false,
        act: Activation::None,
        b_dtype: DType::F32,
    }
}

/// The GPU as a device (otherwise SKIP is printed).
fn gpu() -> Option<Device> {
    let gpu = default_device();
    if gpu.is_none() {
        println!("SKIP: no CUDA device");
    }
    gpu.map(Device::Cuda)
}

#[test]
fn every_f32_tile_matches_cublas() {
    let Some(dev) = gpu() else {
        return;
    };
    let cases = [
        // y = x W^T (`_kk`), tails on every side.
        case(300, 520, 264, Store::Rows, Store::Trans),
        case(129, 200, 1001, Store::Rows, Store::Trans),
        // Row-major B (`_kn`), A transposed (`_mk`, `_mn`).
        case(257, 130, 72, Store::Rows, Store::Rows),
        case(200, 300, 65, Store::Trans, Store::Trans),
        case(131, 255, 130, Store::Trans, Store::Rows),
        // The strided fallback (`_ss`).
        case(150, 170, 99, Store::Padded, Store::Trans),
        case(70, 90, 33, Store::Rows, Store::Padded),
        // Batches: dense, and a weight shared by every batch (with split K); the
        // epilogue.
        Case {
            batch: 3,
            alpha: 0.5,
            beta: Some((0.25, false)),
            bias: true,
            ..case(130, 200, 72, Store::Rows, Store::Trans)
        },
        Case {
            batch: 4,
            b_broadcast: true,
            beta: Some((1.0, true)),
            act: Activation::Silu,
            ..case(65, 140, 1024, Store::Rows, Store::Trans)
        },
        // Long K over few tiles (split K), alpha and an activation.
        Case {
            alpha: -2.0,
            act: Activation::Gelu,
            ..case(256, 256, 4096, Store::Rows, Store::Rows)
        },
    ];
    let mut failures = Vec::new();
    let mut runs = 0;
    for tile in f32_gemm::TILES {
        let tol = tile.math.tolerance();
        failures.extend(failures_against_cublas(
            &dev,
            &cases,
            (0, tol),
            &tile.name(),
            &|x, w, y, p| matmul_f32_tile(x, w, y, p, tile),
        ));
        runs += cases.len();
    }
    println!("{runs} runs, {} failed", failures.len());
    assert!(failures.is_empty(), "failing:\n{}", failures.join("\n"));
}

/// M <= 16 against a K-contiguous weight: `Native` runs the rows kernel
/// (gemm_f32_rows_k<KC>_m<MR>): each bound on M, 128- and 256-column
/// chunks, A K-contiguous and aligned (16-byte copies) or not (stored
/// transposed, padded: element copies, `_s`), K tails in A and W (rows
/// padded to keep them aligned), rows past M, split K, batches and the
/// epilogue; then the mixed pairs (an f16 / bf16 W).
#[test]
fn f32_rows_kernel_matches_cublas() {
    let Some(dev) = gpu() else {
        return;
    };
    let cases = [
        case(1, 300, 1024, Store::Rows, Store::Trans),
        case(2, 129, 600, Store::Trans, Store::Trans),
        case(3, 1000, 64, Store::Rows, Store::Trans),
        case(5, 77, 100, Store::RowsWide, Store::Wide),
        case(7, 96, 1021, Store::Rows, Store::Wide),
        case(7, 96, 1021, Store::RowsWide, Store::Wide),
        case(16, 3584, 18944, Store::Rows, Store::Trans),
        case(5, 40, 4100, Store::Padded, Store::Trans),
        case(11, 50, 120, Store::Trans, Store::Wide),
        Case {
            batch: 14,
            ..case(1, 4096, 64, Store::Rows, Store::Trans)
        },
    ]
    .into_iter()
    .chain([rows_batched_case()])
    .chain(
        [
            (Store::Rows, Store::Wide),
            (Store::RowsWide, Store::Wide),
            (Store::Padded, Store::Trans),
        ]
        .map(|(a, b)| rows_c_case(a, b)),
    )
    .chain(mixed_cases())
    .collect::<Vec<_>>();
    let failures = failures_against_cublas(
        &dev,
        &cases,
        (7000, 1e-5),
        "Native f32 rows",
        &|x, w, y, p| matmul(x, w, y, p),
    );
    assert!(failures.is_empty(), "failing:\n{}", failures.join("\n"));
}

/// Mixed pairs, f32 A against an f16 or bf16 W (the rows kernel reads W in
/// its own dtype; cuBLAS's path converts it to f32 first, so both are f32
/// arithmetic on the same values): both chunk widths, split K, a K tail,
/// strided A, a batch with the epilogue, and W rows that do not start on
/// 16-byte boundaries (the rows kernel refuses them: the SIMT GEMM runs).
fn mixed_cases() -> Vec<Case> {
    let mixed = |c: Case, b_dtype| Case { b_dtype, ..c };
    vec![
        mixed(case(1, 300, 1024, Store::Rows, Store::Trans), DType::F16),
        mixed(case(16, 896, 4864, Store::Rows, Store::Trans), DType::BF16),
        mixed(case(3, 1000, 64, Store::Rows, Store::Trans), DType::BF16),
        mixed(case(7, 96, 1019, Store::RowsWide, Store::Wide), DType::F16),
        // Rows of 1028 elements: not 16-byte groups of 8 (the SIMT GEMM).
        mixed(case(7, 96, 1021, Store::RowsWide, Store::Wide), DType::F16),
        mixed(case(5, 40, 4100, Store::Padded, Store::Trans), DType::F16),
        mixed(case(5, 70, 130, Store::Rows, Store::Padded), DType::BF16),
        mixed(rows_batched_case(), DType::BF16),
    ]
}

/// Mixed pairs at M > 16 (a prefill on an f16 / bf16 model). Against an f16
/// weight `Native`, as `auto`, rounds A to f16 and runs the tensor-core
/// GEMM (the wgmma one on Hopper). Against cuBLAS on A rounded the same way
/// only the summation order differs (a product of two halves is exact in
/// f32): 1e-5. Against the exact product (cuBLAS on A as given) the error
/// is the rounding's own, about u / sqrt(3) relative (unit roundoff
/// u = 2^-11): it must lie between u / 20 (A was rounded) and 2u. Against a
/// bf16 weight the product stays exact (the SIMT GEMM): 1e-5 against the
/// exact product. Cases: tails, A transposed and a padded slice of A, a
/// batch against a shared weight with alpha, C = D, bias and SiLU, and
/// split K (an output in the weight's dtype: the op cases).
#[test]
fn mixed_prefill_rounds_a_to_f16_only() {
    let Some(dev) = gpu() else {
        return;
    };
    let mut failures = Vec::new();
    for (wt, u) in [(DType::F16, Some(2f64.powi(-11))), (DType::BF16, None)] {
        let cases = [
            case(300, 520, 264, Store::Rows, Store::Trans),
            case(17, 100, 40, Store::Trans, Store::Trans),
            batched_epilogue(case(130, 200, 72, Store::Padded, Store::Trans)),
            case(200, 300, 4096, Store::Rows, Store::Trans),
        ];
        for (i, c) in cases.into_iter().enumerate() {
            let c = Case { b_dtype: wt, ..c };
            let seed = 9000 + 100 * i as u64;
            let native = |x: &Tensor, w: &Tensor, y: &Tensor, p: &Matmul| matmul(x, w, y, p);
            let exact = compare(&dev, &c, (seed, None), &native);
            let (line, ok) = match u {
                Some(u) => {
                    let same = compare(&dev, &c, (seed, Some(wt)), &native);
                    (
                        format!(
                            "mixed prefill {}: rel err {same:.1e} against A rounded (tol 1e-5), {exact:.1e} against exact (between {:.1e} and {:.1e})",
                            describe(&c),
                            u / 20.0,
                            2.0 * u
                        ),
                        same <= 1e-5 && exact >= u / 20.0 && exact <= 2.0 * u,
                    )
                }
                None => (
                    format!(
                        "mixed prefill {}: rel err {exact:.1e} against exact (tol 1e-5)",
                        describe(&c)
                    ),
                    exact <= 1e-5,
                ),
            };
            println!("{line}");
            if !ok {
                failures.push(line);
            }
        }
    }
    assert!(failures.is_empty(), "failing:\n{}", failures.join("\n"));
}

/// An M <= 16 case with a batch and the epilogue.
fn rows_batched_case() -> Case {
    batched_epilogue(case(12, 200, 520, Store::Rows, Store::Trans))
}

/// `c` in a batch of 3 against a broadcast B, with alpha, C = D, bias and
/// SiLU.
fn batched_epilogue(c: Case) -> Case {
    Case {
        batch: 3,
        b_broadcast: true,
        alpha: 0.5,
        beta: Some((1.0, true)),
        bias: true,
        act: Activation::Silu,
        ..c
    }
}

/// An M <= 16 case with a batch and a separate C, A and W stored as given.
fn rows_c_case(a: Store, b: Store) -> Case {
    Case {
        batch: 2,
        beta: Some((0.25, false)),
        ..case(16, 70, 3000, a, b)
    }
}

/// Runs each case through `ours` and cuBLAS (inputs from seed + 100 i for
/// case i); prints each and returns those whose relative L2 error exceeds
/// `tol`.
fn failures_against_cublas(
    dev: &Device,
    cases: &[Case],
    (seed, tol): (u64, f64),
    what: &str,
    ours: &dyn Fn(&Tensor, &Tensor, &Tensor, &Matmul) -> metallic::Result<()>,
) -> Vec<String> {
    let mut failures = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let rel = compare(dev, c, (seed + 100 * i as u64, None), ours);
        let line = format!("{what} {}: rel err {rel:.1e} (tol {tol:.0e})", describe(c));
        println!("{line}");
        if rel > tol {
            failures.push(line);
        }
    }
    failures
}

/// The TF32 tiles really round to TF32 (they differ from the exact result by
/// more than fp32 rounding) and the exact ones really do not: the dispatcher
/// must never hand an f32 problem to TF32 silently.
#[test]
fn tf32_rounds_and_the_exact_paths_do_not() {
    let Some(dev) = gpu() else {
        return;
    };
    let (m, n, k) = (256, 256, 512);
    let x = operand(&dev, (Store::Rows, DType::F32), None, (m, k), 7);
    let w = operand(&dev, (Store::Trans, DType::F32), None, (k, n), 8);
    let run = |tile: Option<f32_gemm::F32Tile>| {
        let y = Tensor::zeros(&[m, n], DType::F32, &dev).unwrap();
        let p = Matmul {
            backend: if tile.is_some() {
                MatmulBackend::Native
            } else {
                MatmulBackend::Vendor
            },
            ..Default::default()
        };
        match tile {
            Some(t) => matmul_f32_tile(&x, &w, &y, &p, t).unwrap(),
            None => matmul(&x, &w, &y, &p).unwrap(),
        }
        y.to_vec_f32().unwrap()
    };
    let rel = |a: &[f32], b: &[f32]| {
        let e: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
        let n: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
        (e / n).sqrt()
    };
    let want = run(None);
    let native = {
        let y = Tensor::zeros(&[m, n], DType::F32, &dev).unwrap();
        let p = Matmul {
            backend: MatmulBackend::Native,
            ..Default::default()
        };
        matmul(&x, &w, &y, &p).unwrap();
        y.to_vec_f32().unwrap()
    };
    let exact = rel(&native, &want);
    let tf32 = rel(&run(Some(f32_gemm::TF32_128X128X16)), &want);
    println!("Native f32 vs cuBLAS: {exact:.1e}; TF32 tile vs cuBLAS: {tf32:.1e}");
    assert!(exact < 1e-6, "Native f32 is not exact: {exact:.1e}");
    assert!(
        tf32 > 1e-5,
        "the TF32 tile did not round to TF32: {tf32:.1e}"
    );
    // The f64 tensor-core tile sums in f64 and rounds once: against a
    // reference summed in f64 on the host it is closer than cuBLAS's SGEMM
    // (f32 sums) and within f32 rounding of the result.
    let (xs, ws) = (x.to_vec_f32().unwrap(), w.to_vec_f32().unwrap());
    let f64_sum: Vec<f32> = (0..m * n)
        .map(|e| {
            let (i, j) = (e / n, e % n);
            (0..k)
                .map(|l| xs[i * k + l] as f64 * ws[l * n + j] as f64)
                .sum::<f64>() as f32
        })
        .collect();
    let sgemm = rel(&want, &f64_sum);
    let dmma = rel(&run(Some(f32_gemm::DMMA_128X128X32)), &f64_sum);
    println!("against f64 sums: cuBLAS SGEMM {sgemm:.1e}, f64 tensor-core tile {dmma:.1e}");
    assert!(
        dmma < 1e-7 && dmma < sgemm,
        "the f64 tensor-core tile does not sum in f64: {dmma:.1e} (SGEMM {sgemm:.1e})"
    );
}
