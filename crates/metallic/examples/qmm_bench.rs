//! Times the CPU quantized matmul on weights of a GGUF file: `M` activation
//! rows (env, default 1) against each named weight, single calls in a loop,
//! printing the time per call and the weight bytes streamed per second.
//!
//! M=1 RAYON_NUM_THREADS=1 cargo run --release --example qmm_bench -- MODEL TENSOR...
//!
//! Weights are repacked as a model load does (`prepack_weight`) unless
//! `PACK=0`.

use metallic::device::Device;
use metallic::gguf::GgufFile;
use metallic::ops::matmul::{matmul, Matmul};
use metallic::tensor::{DType, Tensor};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err("usage: qmm_bench MODEL TENSOR...".into());
    }
    let m: usize = std::env::var("M")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    // Timed on a worker of a pool, as the forward pass runs.
    let pool = rayon::ThreadPoolBuilder::new().build()?;
    pool.install(|| run(&args, m).map_err(|e| e.to_string()))?;
    Ok(())
}

fn run(args: &[String], m: usize) -> Result<(), Box<dyn std::error::Error>> {
    let file = GgufFile::open(std::path::Path::new(&args[1]))?;
    for name in &args[2..] {
        let w = file.tensor(name)?;
        let (n, k) = (w.shape()[0], w.shape()[1]);
        let bytes = w.dtype().bytes_for(n * k).ok_or("bad tensor size")?;
        let xs: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let x = Tensor::from_f32(&xs, &[m, k])?;
        let y = Tensor::zeros(&[m, n], DType::F32, &Device::Cpu)?;
        if std::env::var("PACK").map_or(true, |v| v != "0") {
            metallic::cpu::ops::matmul::prepack_weight(&w)?;
        }
        let wt = w.t()?;
        for _ in 0..5 {
            matmul(&x, &wt, &y, &Matmul::default())?;
        }
        let iters = ((2e9 / bytes as f64) as usize / m).max(3);
        let t = Instant::now();
        for _ in 0..iters {
            matmul(&x, &wt, &y, &Matmul::default())?;
        }
        let dt = t.elapsed().as_secs_f64() / iters as f64;
        println!(
            "{name} {:?} [{n}x{k}] M={m}: {:.1} us, {:.2} GB/s of weights, {:.1} GFLOP/s",
            w.dtype(),
            dt * 1e6,
            bytes as f64 / dt / 1e9,
            2.0 * (m * n * k) as f64 / dt / 1e9
        );
    }
    Ok(())
}
