//! Our CUDA GEMM against cuBLAS in one process, on the LLM weight shapes of
//! shared/ANCHORS.md (y = x W^T, Qwen2.5 0.5B and 7B, M in {1, 16, 512,
//! 4096}) and 8192^3, f16/bf16 in and out.
//!
//! `cargo run --release --example gemm_bench -- [--quick] [--dtype bf16|f16|both] [--reps N] [--tiles 128x128x32,..]`
//!
//! `--tiles` also times those tiles of the tensor-core GEMM by name (one row
//! each, beside the dispatcher's own pick) where M >= 512.
//!
//! Method (shared/.../METHOD.md): CUDA events on the device's stream, a
//! warm-up, the median of `--reps` (default 50) single calls, inputs rotated
//! over enough copies to exceed L2 (so the weight stream comes from HBM, as
//! in a real model), every result checked against cuBLAS on the first and
//! last rows. Ours runs through the public `matmul` op (`MatmulBackend::Native`,
//! so its host cost of validation and dispatch is in the time); cuBLAS is
//! called directly (`cublasGemmEx`, bf16/f16 out). The ceilings are measured
//! in the same run: a device-to-device copy (bytes read + written) and
//! cuBLAS on 8192^3; "% roof" is the larger of flops / that rate and
//! minimal bytes / copy bandwidth, over our time.

use metallic::cuda::bench::{copy_d2d, cublas_xwt, EventPair};
use metallic::cuda::ops::matmul::{matmul_mma_tile, mma::MmaTile};
use metallic::cuda::CudaDevice;
use metallic::ops::matmul::{matmul, mma_fits, validate, Matmul, MatmulBackend};
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
    let bytes = 2usize << 30;
    let d = Device::Cuda(dev.clone());
    let a = Tensor::zeros(&[bytes / 4], DType::F32, &d)?;
    let b = Tensor::zeros(&[bytes / 4], DType::F32, &d)?;
    let evs: Vec<EventPair> = (0..20)
        .map(|_| EventPair::new(dev))
        .collect::<Result<_, _>>()?;
    copy_d2d(dev, ptr(&b), ptr(&a), bytes)?;
    for e in &evs {
        e.record_start(dev)?;
        copy_d2d(dev, ptr(&b), ptr(&a), bytes)?;
        e.record_end(dev)?;
    }
    dev.synchronize()?;
    let ms = median(
        evs.iter()
            .map(|e| e.elapsed_ms())
            .collect::<Result<_, _>>()?,
    );
    Ok(2.0 * bytes as f64 / (ms * 1e-3) / 1e9)
}

struct Row {
    label: String,
    m: usize,
    n: usize,
    k: usize,
    dtype: DType,
    kernel: String,
    ours_us: f64,
    blas_us: f64,
    err: f64,
}

fn run_shape(
    dev: &CudaDevice,
    pool: &Pool,
    label: &str,
    (m, n, k): (usize, usize, usize),
    dtype: DType,
    reps: usize,
    tiles: &[MmaTile],
) -> Res<Vec<Row>> {
    let set_bytes = (m * k + n * k) * dtype.block_bytes();
    let sets = (3 * L2_BYTES).div_ceil(set_bytes).clamp(1, 16);
    let mut xs = Vec::new();
    let mut ws = Vec::new();
    for s in 0..sets {
        xs.push(pool.tensor(dev, &[m, k], dtype, 7919 * s)?);
        ws.push(pool.tensor(dev, &[n, k], dtype, 104_729 * s + 13)?);
    }
    let d = Device::Cuda(dev.clone());
    let y_ours = Tensor::zeros(&[m, n], dtype, &d)?;
    let y_blas = Tensor::zeros(&[m, n], dtype, &d)?;
    let p = Matmul {
        backend: MatmulBackend::Native,
        ..Default::default()
    };
    let wts: Vec<Tensor> = ws.iter().map(|w| w.t()).collect::<Result<_, _>>()?;
    let problem = validate(&xs[0], &wts[0], &y_ours, &p)?;
    let auto = if mma_fits(&problem) {
        format!(
            "mma auto ({})",
            metallic::cuda::ops::matmul::mma::pick_tile(m, n, 1).name(dtype)
        )
    } else {
        "simt".to_string()
    };
    let mut variants: Vec<(String, Option<MmaTile>)> = vec![(auto, None)];
    if m >= 512 {
        variants.extend(tiles.iter().map(|t| (t.name(dtype), Some(*t))));
    }
    let ours_v = |v: Option<MmaTile>, s: usize| match v {
        None => matmul(&xs[s], &wts[s], &y_ours, &p),
        Some(t) => matmul_mma_tile(&xs[s], &wts[s], &y_ours, &p, t),
    };
    let ours = |s: usize| ours_v(None, s);
    let blas = |s: usize| {
        cublas_xwt(
            dev,
            (ptr(&xs[s]), ptr(&ws[s]), ptr(&y_blas)),
            (m, n, k),
            dtype,
        )
    };
    // Check: first and last rows of both results.
    ours(0)?;
    blas(0)?;
    let rows = m.min(8);
    let mut err = (0.0f64, 0.0f64);
    for r0 in [0, m - rows] {
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
    let rel = (err.0 / err.1.max(1e-30)).sqrt();
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
    for i in 0..reps {
        let s = i % sets;
        for (v, ev) in variants.iter().zip(&ev_o) {
            ev[i].record_start(dev)?;
            ours_v(v.1, s)?;
            ev[i].record_end(dev)?;
        }
        ev_b[i].record_start(dev)?;
        blas(s)?;
        ev_b[i].record_end(dev)?;
    }
    dev.synchronize()?;
    let t = |ev: &[EventPair]| -> Res<f64> {
        Ok(median(
            ev.iter()
                .map(|e| e.elapsed_ms())
                .collect::<Result<_, _>>()?,
        ) * 1e3)
    };
    let blas_us = t(&ev_b)?;
    let mut rows = Vec::new();
    for (v, ev) in variants.iter().zip(&ev_o) {
        rows.push(Row {
            label: label.to_string(),
            m,
            n,
            k,
            dtype,
            kernel: v.0.clone(),
            ours_us: t(ev)?,
            blas_us,
            err: rel,
        });
    }
    drop((xs, ws, wts, y_ours, y_blas));
    dev.pool().empty_cache();
    Ok(rows)
}

fn print_row(r: &Row, c: &Ceil) {
    let flops = 2.0 * (r.m * r.n * r.k) as f64;
    let bytes = ((r.m * r.k + r.n * r.k + r.m * r.n) * r.dtype.block_bytes()) as f64;
    let tf = |us: f64| flops / (us * 1e-6) / 1e12;
    let gb = |us: f64| bytes / (us * 1e-6) / 1e9;
    let floor_us = (flops / (c.blas_tflops * 1e12)).max(bytes / (c.copy_gbs * 1e9)) * 1e6;
    println!(
        "| {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} | {:.2} | {:.0}% | {:.1e} |",
        r.label,
        r.m,
        r.n,
        r.k,
        r.dtype,
        r.kernel,
        r.ours_us,
        r.blas_us,
        tf(r.ours_us),
        tf(r.blas_us),
        gb(r.ours_us),
        gb(r.blas_us),
        r.blas_us / r.ours_us,
        100.0 * floor_us / r.ours_us,
        r.err
    );
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let reps: usize = opt("--reps").map_or(Ok(50), |v| v.parse())?;
    let dtypes = match opt("--dtype").as_deref() {
        Some("f16") => vec![DType::F16],
        Some("both") => vec![DType::BF16, DType::F16],
        _ => vec![DType::BF16],
    };
    let tiles: Vec<MmaTile> = match opt("--tiles") {
        Some(list) => list
            .split(',')
            .map(|t| t.parse())
            .collect::<Result<_, _>>()?,
        None => vec![],
    };
    let dev = CudaDevice::new(0)?;
    let (free, total) = dev.mem_info()?;
    println!(
        "# gemm_bench on {} (cc {}.{}, {}), {:.0} of {:.0} GiB free; median of {reps}, CUDA events",
        dev.name(),
        dev.compute_capability().0,
        dev.compute_capability().1,
        dev.arch(),
        free as f64 / (1u64 << 30) as f64,
        total as f64 / (1u64 << 30) as f64
    );
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
    let mut ms = vec![1, 16, 512, 4096];
    if quick {
        shapes.truncate(2);
        ms = vec![16, 4096];
    }
    for dtype in dtypes {
        let pool = Pool::new(&d, dtype, 64 << 20)?;
        let big = run_shape(
            &dev,
            &pool,
            "square",
            (8192, 8192, 8192),
            dtype,
            reps,
            &tiles,
        )?;
        let ceil = Ceil {
            copy_gbs,
            blas_tflops: 2.0 * 8192f64.powi(3) / (big[0].blas_us * 1e-6) / 1e12,
        };
        println!(
            "\ncuBLAS {dtype} 8192^3: {:.0} TFLOP/s (the compute ceiling for % roof)\n",
            ceil.blas_tflops
        );
        println!("| shape | M | N | K | dtype | ours | ours us | cuBLAS us | ours TFLOP/s | cuBLAS TFLOP/s | ours GB/s | cuBLAS GB/s | cuBLAS/ours | ours % roof | rel err |");
        println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        big.iter().for_each(|r| print_row(r, &ceil));
        for &(label, n, k) in &shapes {
            for &m in &ms {
                let rows = run_shape(&dev, &pool, label, (m, n, k), dtype, reps, &tiles)?;
                rows.iter().for_each(|r| print_row(r, &ceil));
            }
        }
    }
    Ok(())
}
