//! Our CUDA GEMM against cuBLAS in one process, on the LLM weight shapes of
//! shared/ANCHORS.md (y = x W^T, Qwen2.5 0.5B and 7B, M in {1, 8, 16, 64,
//! 512, 4096}), 8192^3, and attention-like batched products (Q K^T per head:
//! batch 14 and 28 heads of dim 64 and 128, M 1 and 512); f16/bf16 in and
//! out, and f32 (exact, no TF32) on a shorter list. `--dtype mixed`: f32
//! activations against f16 and bf16 weights (a model's f16 / bf16 GGUF
//! weights at decode, M in {1, 8, 16}), ours (the f32 rows kernel reading
//! the weight in its own dtype) against the `matmul` op's vendor path,
//! which converts the weight to f32 for cuBLAS SGEMM on every call.
//!
//! `cargo run --release --example gemm_bench -- [--quick] [--warm] [--dtype bf16|f16|f32|both|all|mixed] [--reps N] [--tiles 128x128x32,wgmma_128x256x64,..] [--only LABEL,..] [--ms M,..]`
//!
//! `--only` keeps the shapes whose label contains one of the given strings
//! (`square`, `7B down`, `attn`, ..) and `--ms` replaces the list of M: a
//! short run for a profiler (scripts/gpu_gemm_profile.sh).
//!
//! `--tiles` also times those kernel variants by name (one row each, beside
//! the dispatcher's own pick) where M >= 64 (the `mma.sync` M <= 16 tiles,
//! `16x64x64[s8]`, where M <= 16; the 64-row wgmma tiles at every M):
//! `BMxBNxBK` names a tile of the `mma.sync` GEMM, `wgmma_BMxBNx64` one of
//! the Hopper GEMM (both for f16/bf16 rows),
//! `simt_BMxBNxBK` one of the exact f32 GEMM, `tf32_BMxBNxBK` one of its
//! TF32 tensor-core variant and `dmma_BMxBNxBK` one of its f64 tensor-core
//! variant (f32 rows). `swapped_wgmma_BMxBNx64` runs the
//! product transposed on a Hopper tile where M <= 16 (D^T = W x^T: the
//! weight as the tile's rows, D written through a transposed view).
//!
//! Method (shared/.../METHOD.md): CUDA events on the device's stream, a
//! warm-up, the median of `--reps` (default 50) single calls, the order of
//! the calls rotating from one repetition to the next, every result checked
//! against cuBLAS on the first and last rows (ours into a poisoned output).
//! Each call starts as it would in a model, after other kernels:
//! - inputs and output rotate over enough sets to exceed L2, every timed
//!   call (ours and cuBLAS) on the next set, so the weights come from HBM
//!   and no call finds what the call before it read or wrote in L2;
//! - before each call, a read of twice L2's size and a kernel of about 12k
//!   instructions run by each scheduler of every SM evict the call before's data and code
//!   from L2 and from the SMs' instruction caches (`--warm` leaves them
//!   out: a kernel then finds its code cached when it ran two calls
//!   before, which made our 7B attention product read 13 us where after
//!   other kernels it takes 16);
//! - each repetition is queued behind a kernel that holds the stream until
//!   the host has queued it all, so a call's time is the device's, with no
//!   wait on the host inside it (a line starting `#` says where the host was
//!   slower than the hold).
//!
//! Ours runs through the public `matmul` op (`MatmulBackend::Native`, its
//! host cost of validation and dispatch in "host us"); cuBLAS is called
//! directly (`cublasGemmEx`, bf16/f16 out). The ceilings are measured in the
//! same run: a device-to-device copy (bytes read + written) and cuBLAS on
//! 8192^3; "% roof" is the larger of flops / that rate and minimal bytes /
//! copy bandwidth, over our time.
//!
//! Two more columns per row: "host us", the host time to queue one call
//! (median; ours through the `matmul` op, cuBLAS's `cublasGemmEx`), and
//! "queued us", the device time per call with 20 calls queued back to back
//! between one pair of events (the launch gaps of single calls hidden while
//! the host runs ahead; where the host is slower than the device, as
//! cuBLAS's host path is on the smallest shapes, it is the host's rate).

use metallic::cuda::bench::{copy_d2d, cublas_xwt_batched, hold, EventPair, L2Flush};
use metallic::cuda::ops::matmul::f32::{self as f32_gemm, F32Tile};
use metallic::cuda::ops::matmul::wgmma::{self, WgmmaTile};
use metallic::cuda::ops::matmul::{
    matmul_f32_tile, matmul_mma_tile, matmul_wgmma_tile, mma, mma::MmaTile,
};
use metallic::cuda::CudaDevice;
use metallic::ops::matmul::{
    matmul, mixed_rows_fits, select, validate, Matmul, MatmulBackend, MatmulKernel,
};
use metallic::{DType, Device, Tensor};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const L2_BYTES: usize = 60 << 20;

fn ptr(t: &Tensor) -> u64 {
    t.cuda_storage("bench").expect("a CUDA tensor").ptr()
}

fn median(mut v: Vec<f32>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2] as f64
}

/// Device memory holding random values of `dtype`, reused to fill inputs.
struct Pool {
    t: Tensor,
    elems: usize,
}

impl Pool {
    fn new(dev: &Device, dtype: DType, elems: usize) -> Res<Pool> {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let host: Vec<f32> = (0..elems)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect();
        let t = Tensor::from_f32(&host, &[elems])?
            .to_dtype(dtype)?
            .to_device(dev)?;
        Ok(Pool { t, elems })
    }

    /// A new `shape` tensor filled from the pool starting at `start`.
    fn tensor(&self, dev: &CudaDevice, shape: &[usize], dtype: DType, start: usize) -> Res<Tensor> {
        let t = Tensor::zeros(shape, dtype, &Device::Cuda(dev.clone()))?;
        let n: usize = shape.iter().product();
        let es = dtype.block_bytes();
        let (mut done, mut from) = (0, start % (self.elems / 2));
        while done < n {
            let len = (n - done).min(self.elems - from);
            copy_d2d(
                dev,
                ptr(&t) + (done * es) as u64,
                ptr(&self.t) + (from * es) as u64,
                len * es,
            )?;
            done += len;
            from = 0;
        }
        Ok(t)
    }
}

struct Ceil {
    copy_gbs: f64,
    blas_tflops: f64,
}

fn copy_bandwidth(dev: &CudaDevice) -> Res<f64> {
    let traffic = 4usize << 30;
    let us = copy_us(dev, traffic)?;
    Ok(traffic as f64 / (us * 1e-6) / 1e9)
}

/// Microseconds of a device-to-device copy moving `traffic` bytes (half
/// read, half written; at most 2 GiB), median of 20, each copy from the
/// next window of a 2 GiB source (nothing left in L2 by the one before)
/// into the next window of a 2 GiB destination: the measured ceiling of a
/// kernel launched alone that moves as many bytes.
fn copy_us(dev: &CudaDevice, traffic: usize) -> Res<f64> {
    let span = 2usize << 30;
    let bytes = (traffic / 2).clamp(256, span) & !255;
    let windows = (span / bytes).max(1);
    let d = Device::Cuda(dev.clone());
    let a = Tensor::zeros(&[span / 4], DType::F32, &d)?;
    let b = Tensor::zeros(&[span / 4], DType::F32, &d)?;
    let evs: Vec<EventPair> = (0..20)
        .map(|_| EventPair::new(dev))
        .collect::<Result<_, _>>()?;
    copy_d2d(dev, ptr(&b), ptr(&a), bytes)?;
    for (i, e) in evs.iter().enumerate() {
        let off = (((i + 1) % windows) * bytes) as u64;
        e.record_start(dev)?;
        copy_d2d(dev, ptr(&b) + off, ptr(&a) + off, bytes)?;
        e.record_end(dev)?;
    }
    dev.synchronize()?;
    let ms = median(
        evs.iter()
            .map(|e| e.elapsed_ms())
            .collect::<Result<_, _>>()?,
    );
    Ok(ms * 1e3)
}

/// A kernel variant timed by name.
#[derive(Debug, Clone, Copy)]
enum Variant {
    Mma(MmaTile),
    Wgmma(WgmmaTile),
    F32(F32Tile),
    /// The product transposed onto the wgmma GEMM (D^T = W x^T: the weight
    /// as the tile's rows, the M <= 16 activations as its columns, D
    /// written through a transposed view), for M <= 16.
    Swapped(WgmmaTile),
}

impl Variant {
    /// Whether the variant takes operands of `dtype`.
    fn takes(&self, dtype: DType) -> bool {
        matches!(self, Variant::F32(_)) == (dtype == DType::F32)
    }
}

impl std::str::FromStr for Variant {
    type Err = String;
    fn from_str(s: &str) -> Result<Variant, String> {
        if let Some(t) = s.strip_prefix("wgmma_") {
            t.parse().map(Variant::Wgmma)
        } else if let Some(t) = s.strip_prefix("swapped_wgmma_") {
            t.parse().map(Variant::Swapped)
        } else if ["simt_", "tf32_", "dmma_"].iter().any(|p| s.starts_with(p)) {
            s.parse().map(Variant::F32)
        } else {
            s.parse().map(Variant::Mma).map_err(|e| {
                // A wgmma tile's name without its prefix reads as an mma
                // tile: say which prefix it needs.
                if s.parse::<WgmmaTile>().is_ok() {
                    format!("{e}; the wgmma tile of that name is wgmma_{s}")
                } else {
                    format!("{e} (prefixes: wgmma_, swapped_wgmma_, simt_, tf32_, dmma_; none for mma tiles)")
                }
            })
        }
    }
}

struct Row {
    label: String,
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    dtype: DType,
    /// The weight's dtype: `dtype`, or f16 / bf16 against f32 (a mixed pair).
    w_dtype: DType,
    kernel: String,
    /// The dispatcher's own pick (not a variant forced by name).
    auto: bool,
    ours_us: f64,
    blas_us: f64,
    /// Host time to queue one call (median), ours and cuBLAS.
    host_us: (f64, f64),
    /// Device time per call with QUEUED calls queued back to back between
    /// one pair of events (launch gaps hidden when the host runs ahead),
    /// ours and cuBLAS.
    queued_us: (f64, f64),
    err: f64,
}

/// Calls per back-to-back timing.
const QUEUED: usize = 20;

/// `--warm`: single calls without the flush of L2 and of the instruction
/// caches before each.
static WARM: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The hold queued before each repetition of single calls: a base and a
/// margin per call over the host's time to queue one (about 5-15 us with
/// its two events).
const HOLD_BASE_US: f64 = 50.0;
const HOLD_PER_CALL_US: f64 = 40.0;

/// What `MatmulBackend::Native` runs for this problem, by name.
fn native_label(dev: &CudaDevice, problem: &metallic::ops::matmul::MatmulProblem) -> Res<String> {
    let (_, kernel) = select(problem, MatmulBackend::Native, &Device::Cuda(dev.clone()))?;
    let (m, n, k, batch) = (problem.m, problem.n, problem.k, problem.batch());
    // The tensor-core kernels run in the weight's dtype (a mixed pair's
    // activations rounded to it first).
    let wt = problem.b.dtype;
    if problem.a.dtype != wt && matches!(kernel, MatmulKernel::CudaWgmma | MatmulKernel::CudaMma) {
        let p = metallic::ops::matmul::MatmulProblem {
            a: metallic::ops::matmul::MatView {
                dtype: wt,
                ..problem.a.clone()
            },
            ..problem.clone()
        };
        return Ok(format!("{} (A rounded to {wt})", native_label(dev, &p)?));
    }
    Ok(match kernel {
        MatmulKernel::CudaWgmma => {
            let (t, splits) = wgmma::plan((m, n, k, batch), dev.multiprocessors(), None);
            if splits > 1 {
                format!("{} split {splits}", t.name(problem.a.dtype))
            } else {
                t.name(problem.a.dtype)
            }
        }
        // Transposed, unsplit (`swaps` takes only products that need no split).
        MatmulKernel::CudaMma if wgmma::swaps(problem, dev) => {
            format!(
                "{} transposed",
                wgmma::TILE_64X16X64_OCC1.name(problem.a.dtype)
            )
        }
        MatmulKernel::CudaMma if m <= 16 => {
            let (t, splits) = mma::small_m_tile((m, n, k, batch), dev.multiprocessors());
            match splits {
                1 => t.name(problem.a.dtype),
                _ => format!("{} split {splits}", t.name(problem.a.dtype)),
            }
        }
        MatmulKernel::CudaMma => mma::pick_tile(m, n, batch).name(problem.a.dtype),
        // A mixed pair past the rows kernel: the simple SIMT GEMM.
        MatmulKernel::CudaNative
            if problem.a.dtype != problem.b.dtype && !mixed_rows_fits(problem) =>
        {
            format!("gemm_simt_64x64x16_{}_{}", problem.a.dtype, problem.b.dtype)
        }
        MatmulKernel::CudaNative if problem.a.dtype == DType::F32 => {
            let label = f32_gemm::kernel_label(
                (m, n, k, batch),
                (problem.a.col_stride == 1, problem.b.row_stride == 1),
                problem.b.dtype != DType::F32,
                (dev.arch() == "sm_90a", dev.multiprocessors()),
            );
            match problem.b.dtype {
                DType::F32 => label,
                w => format!("{label} ({w} W)"),
            }
        }
        other => format!("{other:?}"),
    })
}

#[allow(clippy::too_many_arguments)]
fn run_shape(
    dev: &CudaDevice,
    (pool, w_pool): (&Pool, &Pool),
    label: &str,
    (batch, m, n, k): (usize, usize, usize, usize),
    (dtype, w_dtype): (DType, DType),
    reps: usize,
    tiles: &[Variant],
) -> Res<Vec<Row>> {
    // Sets of inputs and output rotated so that the ones touched between two
    // uses of a set exceed L2 (sets of 2 and more always differ from the
    // last one used). Each set has its own output, which every call on the
    // set writes: a call writing where the call before it wrote (still in
    // L2) would find the lines of its output there.
    let set_bytes = batch * ((m * k + m * n) * dtype.block_bytes() + n * k * w_dtype.block_bytes());
    let sets = (3 * L2_BYTES).div_ceil(set_bytes).clamp(2, 16);
    let shape = |r: usize, c: usize| {
        if batch > 1 {
            vec![batch, r, c]
        } else {
            vec![r, c]
        }
    };
    let mut xs = Vec::new();
    let mut ws = Vec::new();
    let mut ys = Vec::new();
    let d = Device::Cuda(dev.clone());
    for s in 0..sets {
        xs.push(pool.tensor(dev, &shape(m, k), dtype, 7919 * s)?);
        ws.push(w_pool.tensor(dev, &shape(n, k), w_dtype, 104_729 * s + 13)?);
        ys.push(Tensor::zeros(&shape(m, n), dtype, &d)?);
    }
    let y_blas = Tensor::zeros(&shape(m, n), dtype, &d)?;
    let p = Matmul {
        backend: MatmulBackend::Native,
        ..Default::default()
    };
    let wts: Vec<Tensor> = ws.iter().map(|w| w.t()).collect::<Result<_, _>>()?;
    let problem = validate(&xs[0], &wts[0], &ys[0], &p)?;
    let mut variants: Vec<(String, Option<Variant>)> = vec![(native_label(dev, &problem)?, None)];
    // The small-M tiles (BM 16) are timed at M <= 16, the 64-row wgmma
    // tiles at any M, the others at M >= 64.
    let fits = |t: &Variant| match t {
        Variant::Mma(t) if t.bm == 16 => m <= 16,
        Variant::Wgmma(t) if t.bm == 64 => true,
        Variant::Swapped(_) => m <= 16,
        _ => m >= 64,
    };
    variants.extend(tiles.iter().filter(|t| t.takes(dtype) && fits(t)).map(|t| {
        let name = match t {
            Variant::Mma(t) => t.name(dtype),
            Variant::Wgmma(t) => t.name(dtype),
            Variant::F32(t) => t.name(),
            Variant::Swapped(t) => format!("swapped {}", t.name(dtype)),
        };
        (name, Some(*t))
    }));
    let xts: Vec<Tensor> = xs.iter().map(|x| x.t()).collect::<Result<_, _>>()?;
    // Set s's inputs into `y`.
    let ours_into = |v: Option<Variant>, s: usize, y: &Tensor| match v {
        Some(Variant::Swapped(t)) => matmul_wgmma_tile(&ws[s], &xts[s], &y.t()?, &p, t),
        None => matmul(&xs[s], &wts[s], y, &p),
        Some(Variant::Mma(t)) => matmul_mma_tile(&xs[s], &wts[s], y, &p, t),
        Some(Variant::Wgmma(t)) => matmul_wgmma_tile(&xs[s], &wts[s], y, &p, t),
        Some(Variant::F32(t)) => matmul_f32_tile(&xs[s], &wts[s], y, &p, t),
    };
    // A mixed pair through the `matmul` op's vendor path (what it takes
    // without our kernel: the weight converted to f32, then cuBLAS SGEMM):
    // cuBLAS itself takes only matching dtypes.
    let vendor = Matmul {
        backend: MatmulBackend::Vendor,
        ..Default::default()
    };
    let blas_into = |s: usize, y: &Tensor| {
        if w_dtype != dtype {
            return matmul(&xs[s], &wts[s], y, &vendor);
        }
        cublas_xwt_batched(
            dev,
            (ptr(&xs[s]), ptr(&ws[s]), ptr(y)),
            (m, n, k),
            batch,
            dtype,
        )
    };
    // The timed calls: set s's inputs into its own output.
    let ours_v = |v: Option<Variant>, s: usize| ours_into(v, s, &ys[s]);
    let blas = |s: usize| blas_into(s, &ys[s]);
    // Check: the first and last rows of both results, for every variant.
    let all_rows = batch * m;
    let rows = all_rows.min(8);
    let mut errs = Vec::new();
    blas_into(0, &y_blas)?;
    for v in &variants {
        // Poisoned first: a variant that wrote nothing would otherwise
        // pass on the previous variant's result.
        let y_ours = Tensor::full(&shape(m, n), f32::NAN, dtype, &d)?;
        ours_into(v.1, 0, &y_ours)?;
        let mut err = (0.0f64, 0.0f64);
        for r0 in [0, all_rows - rows] {
            let take = |y: &Tensor| -> Res<Vec<f32>> {
                let part = Tensor::zeros(&[rows, n], dtype, &d)?;
                let es = dtype.block_bytes();
                copy_d2d(
                    dev,
                    ptr(&part),
                    ptr(y) + (r0 * n * es) as u64,
                    rows * n * es,
                )?;
                Ok(part.to_vec_f32()?)
            };
            let (a, b) = (take(&y_ours)?, take(&y_blas)?);
            for (x, y) in a.iter().zip(&b) {
                err.0 += ((x - y) as f64).powi(2);
                err.1 += (*y as f64).powi(2);
            }
        }
        errs.push((err.0 / err.1.max(1e-30)).sqrt());
    }
    for s in 0..sets.max(3) {
        for v in &variants {
            ours_v(v.1, s % sets)?;
        }
        blas(s % sets)?;
    }
    dev.synchronize()?;
    let events = || {
        (0..reps)
            .map(|_| EventPair::new(dev))
            .collect::<Result<Vec<_>, _>>()
    };
    let ev_o: Vec<Vec<EventPair>> = variants
        .iter()
        .map(|_| events())
        .collect::<Result<_, _>>()?;
    let ev_b = events()?;
    // Every timed call takes the next input set, so that no call finds in L2
    // what the call before it read (ours and cuBLAS alike).
    let next = std::cell::Cell::new(0);
    let set = || {
        next.set(next.get() + 1);
        next.get() % sets
    };
    // Host time to queue each call, per variant and for cuBLAS (last).
    let mut host: Vec<Vec<f32>> = vec![Vec::new(); variants.len() + 1];
    // The order of the calls rotates from one repetition to the next, so
    // that no variant always runs first (or right after cuBLAS).
    let calls = variants.len() + 1;
    // Before each timed call, a read of twice L2's size and a kernel with
    // more code than the SMs' instruction caches hold evict the data and
    // code of the calls before, as a model's other kernels do between two
    // calls of one GEMM: a kernel whose code the SMs still hold starts
    // faster (without the flush, our 7B attention product read 12.6 us
    // right after itself and 16.4 after other kernels of ours, in one
    // process; with it, 13.9 and 14.4, the latter after cuBLAS).
    // `--warm`: no flush.
    let flush = if WARM.load(std::sync::atomic::Ordering::Relaxed) {
        None
    } else {
        Some(L2Flush::new(dev, 2 * L2_BYTES)?)
    };
    // Each repetition is queued behind a kernel that holds the stream for
    // longer than the host takes to queue it, so that the device runs the
    // repetition's calls back to back: otherwise an event that starts a
    // timing is reached while the host is still issuing the call, and the
    // call's time includes host time (cuBLAS's host path, about 12 us, is
    // longer than its kernel on the attention products: its 0.5B product
    // read 11.2 us without the hold and 8.0 with it).
    let hold_us = HOLD_BASE_US + HOLD_PER_CALL_US * calls as f64;
    let mut late = 0;
    for i in 0..reps {
        hold(dev, hold_us)?;
        let issue = std::time::Instant::now();
        for c in 0..calls {
            let who = (i + c) % calls;
            let s = set();
            if let Some(f) = &flush {
                f.run(dev)?;
            }
            if who == variants.len() {
                ev_b[i].record_start(dev)?;
                let t = std::time::Instant::now();
                blas(s)?;
                host[who].push(t.elapsed().as_secs_f32() * 1e6);
                ev_b[i].record_end(dev)?;
            } else {
                ev_o[who][i].record_start(dev)?;
                let t = std::time::Instant::now();
                ours_v(variants[who].1, s)?;
                host[who].push(t.elapsed().as_secs_f32() * 1e6);
                ev_o[who][i].record_end(dev)?;
            }
        }
        if issue.elapsed().as_secs_f64() * 1e6 > hold_us {
            late += 1;
        }
    }
    dev.synchronize()?;
    if late > 0 {
        println!(
            "# {label} M = {m}: {late} of {reps} repetitions took the host longer than the {hold_us:.0} us hold"
        );
    }
    // Back to back: QUEUED calls between one pair of events, five times.
    let queued = |call: &dyn Fn(usize) -> metallic::Result<()>| -> Res<f64> {
        let evs = (0..5)
            .map(|_| EventPair::new(dev))
            .collect::<Result<Vec<_>, _>>()?;
        for e in &evs {
            dev.synchronize()?;
            e.record_start(dev)?;
            for _ in 0..QUEUED {
                call(set())?;
            }
            e.record_end(dev)?;
        }
        dev.synchronize()?;
        let ms: Vec<f32> = evs
            .iter()
            .map(|e| e.elapsed_ms())
            .collect::<Result<_, _>>()?;
        Ok(median(ms) * 1e3 / QUEUED as f64)
    };
    let blas_queued = queued(&blas)?;
    let t = |ev: &[EventPair]| -> Res<f64> {
        Ok(median(
            ev.iter()
                .map(|e| e.elapsed_ms())
                .collect::<Result<_, _>>()?,
        ) * 1e3)
    };
    let blas_us = t(&ev_b)?;
    let blas_host = median(host[variants.len()].clone());
    let mut out = Vec::new();
    for (((v, ev), err), h) in variants.iter().zip(&ev_o).zip(errs).zip(&host) {
        let q = queued(&|s| ours_v(v.1, s))?;
        out.push(Row {
            label: label.to_string(),
            batch,
            m,
            n,
            k,
            dtype,
            w_dtype,
            kernel: v.0.clone(),
            auto: v.1.is_none(),
            ours_us: t(ev)?,
            blas_us,
            host_us: (median(h.clone()), blas_host),
            queued_us: (q, blas_queued),
            err,
        });
    }
    drop((xs, ws, wts, ys, y_blas));
    dev.pool().empty_cache();
    Ok(out)
}

fn row_bytes(r: &Row) -> f64 {
    let (a, w) = (r.dtype.block_bytes(), r.w_dtype.block_bytes());
    (r.batch * ((r.m * r.k + r.m * r.n) * a + r.n * r.k * w)) as f64
}

/// `bf16`, or `f32xf16` for a mixed pair.
fn pair_name(dtype: DType, w_dtype: DType) -> String {
    if dtype == w_dtype {
        dtype.to_string()
    } else {
        format!("{dtype}x{w_dtype}")
    }
}

fn print_row(r: &Row, c: &Ceil) {
    let flops = 2.0 * (r.batch * r.m * r.n * r.k) as f64;
    let bytes = row_bytes(r);
    let tf = |us: f64| flops / (us * 1e-6) / 1e12;
    let gb = |us: f64| bytes / (us * 1e-6) / 1e9;
    let floor_us = (flops / (c.blas_tflops * 1e12)).max(bytes / (c.copy_gbs * 1e9)) * 1e6;
    println!(
        "| {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} | {:.2} | {:.0}% | {:.1} / {:.1} | {:.1} / {:.1} | {:.1e} |",
        r.label,
        r.batch,
        r.m,
        r.n,
        r.k,
        pair_name(r.dtype, r.w_dtype),
        r.kernel,
        r.ours_us,
        r.blas_us,
        tf(r.ours_us),
        tf(r.blas_us),
        gb(r.ours_us),
        gb(r.blas_us),
        r.blas_us / r.ours_us,
        100.0 * floor_us / r.ours_us,
        r.host_us.0,
        r.host_us.1,
        r.queued_us.0,
        r.queued_us.1,
        r.err
    );
}

/// The issue's goals over the dispatcher's own rows: the geometric mean and
/// the minimum of cuBLAS/ours where M >= 512, and ours at M <= 16 on the 7B
/// weights as a share of the copy bandwidth. `best` also takes the fastest
/// of every timed variant per shape.
fn summary(dev: &CudaDevice, dtype: &str, rows: &[Row], copy_gbs: f64) -> Res<()> {
    let big: Vec<&Row> = rows.iter().filter(|r| r.auto && r.m >= 512).collect();
    if !big.is_empty() {
        let ratios: Vec<f64> = big.iter().map(|r| r.blas_us / r.ours_us).collect();
        let geo = (ratios.iter().map(|x| x.ln()).sum::<f64>() / ratios.len() as f64).exp();
        let min = ratios.iter().cloned().fold(f64::INFINITY, f64::min);
        let mut best = Vec::new();
        for r in &big {
            let fastest = rows
                .iter()
                .filter(|o| {
                    (&o.label, o.batch, o.m, o.n, o.k) == (&r.label, r.batch, r.m, r.n, r.k)
                })
                .map(|o| o.ours_us)
                .fold(f64::INFINITY, f64::min);
            best.push(r.blas_us / fastest);
        }
        let best_geo = (best.iter().map(|x| x.ln()).sum::<f64>() / best.len() as f64).exp();
        println!(
            "summary {dtype}: M >= 512 ({} shapes): cuBLAS/ours geomean {geo:.2}, min {min:.2}; best variant per shape: geomean {best_geo:.2}",
            big.len()
        );
    }
    let decode: Vec<&Row> = rows
        .iter()
        .filter(|r| r.auto && r.m <= 16 && r.label.starts_with("7B"))
        .collect();
    if !decode.is_empty() {
        let shares: Vec<f64> = decode
            .iter()
            .map(|r| row_bytes(r) / (r.ours_us * 1e-6) / 1e9 / copy_gbs)
            .collect();
        let min = shares.iter().cloned().fold(f64::INFINITY, f64::min);
        let mean = shares.iter().sum::<f64>() / shares.len() as f64;
        let (bytes, us) = decode
            .iter()
            .fold((0.0, 0.0), |(b, t), r| (b + row_bytes(r), t + r.ours_us));
        println!(
            "summary {dtype}: M <= 16 on 7B ({} shapes): ours at {:.0}% of copy bandwidth on average, {:.0}% at worst; all of them together (bytes / time) {:.0}%",
            decode.len(),
            100.0 * mean,
            100.0 * min,
            100.0 * bytes / (us * 1e-6) / 1e9 / copy_gbs
        );
        // A copy moving as many bytes, launched alone and timed alike: what
        // one launch of that size reaches (small ones never reach the 2 GiB
        // copy's rate).
        for r in &decode {
            let copy = copy_us(dev, row_bytes(r) as usize)?;
            println!(
                "summary {dtype}: {} M = {}: a copy moving the same {:.1} MB takes {copy:.1} us ({:.0}% of copy bandwidth); ours {:.1} us = {:.0}% of that copy's rate",
                r.label,
                r.m,
                row_bytes(r) / 1e6,
                100.0 * row_bytes(r) / (copy * 1e-6) / 1e9 / copy_gbs,
                r.ours_us,
                100.0 * copy / r.ours_us
            );
        }
    }
    Ok(())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    WARM.store(
        args.iter().any(|a| a == "--warm"),
        std::sync::atomic::Ordering::Relaxed,
    );
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let reps: usize = opt("--reps").map_or(Ok(50), |v| v.parse())?;
    let dtypes = match opt("--dtype").as_deref() {
        Some("f16") => vec![DType::F16],
        Some("f32") => vec![DType::F32],
        Some("both") => vec![DType::BF16, DType::F16],
        Some("all") => vec![DType::BF16, DType::F16, DType::F32],
        Some("mixed") => vec![],
        _ => vec![DType::BF16],
    };
    // (activations, weight) pairs: the same dtype, or with `--dtype mixed`
    // f32 activations against f16 and bf16 weights.
    let pairs: Vec<(DType, DType)> = if opt("--dtype").as_deref() == Some("mixed") {
        vec![(DType::F32, DType::F16), (DType::F32, DType::BF16)]
    } else {
        dtypes.iter().map(|&d| (d, d)).collect()
    };
    let tiles: Vec<Variant> = match opt("--tiles") {
        Some(list) => list
            .split(',')
            .map(|t| t.parse())
            .collect::<Result<_, _>>()?,
        None => vec![],
    };
    let only: Vec<String> =
        opt("--only").map_or(vec![], |v| v.split(',').map(String::from).collect());
    let keep = |label: &str| only.is_empty() || only.iter().any(|o| label.contains(o.as_str()));
    let ms_arg: Option<Vec<usize>> = opt("--ms")
        .map(|v| v.split(',').map(|m| m.parse()).collect::<Result<_, _>>())
        .transpose()?;
    let dev = CudaDevice::new(0)?;
    let (free, total) = dev.mem_info()?;
    println!(
        "# gemm_bench on {} (cc {}.{}, {}, {} SMs), {:.0} of {:.0} GiB free; median of {reps}, CUDA events",
        dev.name(),
        dev.compute_capability().0,
        dev.compute_capability().1,
        dev.arch(),
        dev.multiprocessors(),
        free as f64 / (1u64 << 30) as f64,
        total as f64 / (1u64 << 30) as f64
    );
    for t in &tiles {
        if let Variant::Wgmma(t) = t {
            if t.cluster_blocks() > 1 {
                println!(
                    "{}: the driver runs {} clusters of {} at once",
                    t.name(DType::BF16),
                    wgmma::max_clusters(&dev, t, DType::BF16)?,
                    t.cluster_blocks()
                );
            }
        }
    }
    let copy_gbs = copy_bandwidth(&dev)?;
    dev.pool().empty_cache();
    println!(
        "device-to-device copy: {copy_gbs:.0} GB/s (bytes read + written, 2 GiB, median of 20)"
    );
    let d = Device::Cuda(dev.clone());
    let mut shapes: Vec<(&str, usize, usize)> = vec![
        ("7B gate+up", 37888, 3584),
        ("7B down", 3584, 18944),
        ("7B qkv", 4608, 3584),
        ("7B lm_head", 152064, 3584),
        ("0.5B gate+up", 9728, 896),
        ("0.5B down", 896, 4864),
    ];
    let mut ms = vec![1, 8, 16, 64, 512, 4096];
    // Q K^T per head: (label, heads, head dim); M 1 (decode against a
    // 4096-token cache) and 512 (a 512-token prompt against itself).
    let mut attn: Vec<(&str, usize, usize)> =
        vec![("attn QK^T 0.5B", 14, 64), ("attn QK^T 7B", 28, 128)];
    if quick {
        shapes.truncate(2);
        ms = vec![16, 4096];
        attn.truncate(1);
    }
    let ms_arg_none = ms_arg.is_none();
    if let Some(list) = ms_arg {
        ms = list;
    }
    shapes.retain(|s| keep(s.0));
    attn.retain(|a| keep(a.0));
    for (dtype, w_dtype) in pairs {
        // f32 runs on our SIMT kernel: a shorter list keeps the run short.
        // A mixed pair: the 7B weights at M <= 16 (decode), where the rows
        // kernel takes it; no square and no attention product.
        let f32 = dtype == DType::F32;
        let mixed = w_dtype != dtype;
        let pool = Pool::new(&d, dtype, 64 << 20)?;
        // The weights' own pool only where their dtype differs.
        let w_pool = if mixed {
            Some(Pool::new(&d, w_dtype, 64 << 20)?)
        } else {
            None
        };
        let pools = (&pool, w_pool.as_ref().unwrap_or(&pool));
        let dt = (dtype, w_dtype);
        let square = if f32 { 4096 } else { 8192 };
        let shapes = if f32 && !mixed {
            &shapes[..shapes.len().min(3)]
        } else {
            &shapes[..]
        };
        let ms = match (f32, mixed, ms_arg_none) {
            (_, true, true) => vec![1, 8, 16],
            (true, false, true) => vec![1, 16, 512],
            _ => ms.clone(),
        };
        let big = if keep("square") && !mixed {
            run_shape(
                &dev,
                pools,
                "square",
                (1, square, square, square),
                dt,
                reps,
                &tiles,
            )?
        } else {
            vec![]
        };
        // Without the square shape (--only), the flops ceiling is unknown
        // and "% roof" counts bytes only.
        let ceil = Ceil {
            copy_gbs,
            blas_tflops: big.first().map_or(f64::INFINITY, |r| {
                2.0 * (square as f64).powi(3) / (r.blas_us * 1e-6) / 1e12
            }),
        };
        if mixed {
            println!(
                "\n{}: the cuBLAS column is the matmul op's vendor path (the weight converted to f32, then SGEMM); % roof counts bytes only\n",
                pair_name(dtype, w_dtype)
            );
        } else {
            println!(
                "\ncuBLAS {dtype} {square}^3: {:.0} TFLOP/s (the compute ceiling for % roof)\n",
                ceil.blas_tflops
            );
        }
        println!("| shape | batch | M | N | K | dtype | ours | ours us | cuBLAS us | ours TFLOP/s | cuBLAS TFLOP/s | ours GB/s | cuBLAS GB/s | cuBLAS/ours | ours % roof | host us ours / cuBLAS | queued us ours / cuBLAS | rel err |");
        println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        big.iter().for_each(|r| print_row(r, &ceil));
        let mut all = big;
        for &(label, n, k) in shapes {
            for &m in &ms {
                let rows = run_shape(&dev, pools, label, (1, m, n, k), dt, reps, &tiles)?;
                rows.iter().for_each(|r| print_row(r, &ceil));
                all.extend(rows);
            }
        }
        for &(label, heads, hd) in attn.iter().filter(|_| !mixed) {
            for (m, n) in [(1, 4096), (512, 512)] {
                if !ms_arg_none && !ms.contains(&m) {
                    continue;
                }
                let rows = run_shape(&dev, pools, label, (heads, m, n, hd), dt, reps, &tiles)?;
                rows.iter().for_each(|r| print_row(r, &ceil));
                all.extend(rows);
            }
        }
        summary(&dev, &pair_name(dtype, w_dtype), &all, copy_gbs)?;
    }
    Ok(())
}
