//! Device time of the prefill's non-GEMM ops on CUDA at a model's shapes
//! (default: Qwen2.5-7B, 512 rows): swiglu, rms_norm, and a device copy of
//! the same bytes for the ceiling; then attention over an F16 cache with
//! HEADS / KV_HEADS heads of HEAD_DIM (default 7B's 28 / 4 / 128), the
//! kernels (`attention_fused`) against the unfused composition on the GEMMs
//! (`attention_unfused`), at several prompt lengths. Each op runs 5 times to
//! warm up, then 20 times between two events; prints the mean time per call
//! and the rate in GB/s of the bytes each call must move (TFLOP/s of the two
//! products, causal half counted, for attention).
//!
//! cargo run --release --example op_bench -- [ROWS] [HIDDEN] [FFN] [HEADS] [KV_HEADS] [HEAD_DIM]

use metallic::cuda::bench::{copy_d2d, EventPair};
use metallic::cuda::ops::attention::attention_fused;
use metallic::cuda::CudaDevice;
use metallic::ops::attention::{attention_unfused, Attention};
use metallic::ops::{elementwise::swiglu, norm::rms_norm};
use metallic::{DType, Device, Tensor};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const WARMUP: usize = 5;
const REPS: usize = 20;

/// Mean milliseconds of `f` over REPS calls queued back to back.
fn time(dev: &CudaDevice, mut f: impl FnMut() -> Res<()>) -> Res<f64> {
    for _ in 0..WARMUP {
        f()?;
    }
    let ev = EventPair::new(dev)?;
    ev.record_start(dev)?;
    for _ in 0..REPS {
        f()?;
    }
    ev.record_end(dev)?;
    dev.synchronize()?;
    Ok(ev.elapsed_ms()? as f64 / REPS as f64)
}

fn random(shape: &[usize], dev: &Device, seed: u64) -> Res<Tensor> {
    let n: usize = shape.iter().product();
    let host = metallic::optest::Rng::new(seed).vec(n);
    Ok(Tensor::from_f32(&host, shape)?.to_device(dev)?)
}

fn report(what: &str, ms: f64, bytes: usize) {
    println!(
        "| {what} | {:.1} | {:.0} |",
        ms * 1e3,
        bytes as f64 / (ms * 1e-3) / 1e9
    );
}

fn main() -> Res<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let rows = args.first().copied().unwrap_or(512);
    let hidden = args.get(1).copied().unwrap_or(3584);
    let ffn = args.get(2).copied().unwrap_or(18944);
    let dev = CudaDevice::new(0)?;
    let d = Device::Cuda(dev.clone());
    println!("# op_bench on {}: {rows} rows, hidden {hidden}, ffn {ffn}; mean of {REPS} calls back to back", dev.name());
    println!("| op | us | GB/s |");
    println!("| --- | ---: | ---: |");

    let (gate, up) = (random(&[rows, ffn], &d, 1)?, random(&[rows, ffn], &d, 2)?);
    let out = Tensor::zeros(&[rows, ffn], DType::F32, &d)?;
    let bytes = 3 * rows * ffn * 4;
    let ptr = |t: &Tensor| -> Res<u64> { Ok(t.cuda_storage("op_bench")?.ptr()) };
    let (src, dst) = (ptr(&gate)?, ptr(&out)?);
    let ms = time(&dev, || Ok(copy_d2d(&dev, dst, src, rows * ffn * 4)?))?;
    report(
        &format!("device copy [{rows}, {ffn}] f32"),
        ms,
        2 * rows * ffn * 4,
    );
    let ms = time(&dev, || Ok(swiglu(&gate, &up, &out)?))?;
    report(&format!("swiglu [{rows}, {ffn}] f32"), ms, bytes);
    // The halves of one [rows, 2 ffn] product, as a fused gate/up would give.
    let both = random(&[rows, 2 * ffn], &d, 3)?;
    let (g2, u2) = (both.narrow(1, 0, ffn)?, both.narrow(1, ffn, ffn)?);
    let ms = time(&dev, || Ok(swiglu(&g2, &u2, &out)?))?;
    report(
        &format!("swiglu, halves of [{rows}, {}] f32", 2 * ffn),
        ms,
        bytes,
    );

    let x = random(&[rows, hidden], &d, 4)?;
    let gamma = random(&[hidden], &d, 5)?;
    let y = Tensor::zeros(&[rows, hidden], DType::F32, &d)?;
    let ms = time(&dev, || Ok(rms_norm(&x, &gamma, 1e-6, &y)?))?;
    report(
        &format!("rms_norm [{rows}, {hidden}] f32"),
        ms,
        2 * rows * hidden * 4,
    );

    let (heads, kv_heads, hd) = (
        args.get(3).copied().unwrap_or(28),
        args.get(4).copied().unwrap_or(4),
        args.get(5).copied().unwrap_or(128),
    );
    println!();
    println!("| attention, {heads} / {kv_heads} heads of {hd}, F16 cache | fused us | unfused us | fused / unfused | unfused TFLOP/s | max abs diff |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for seq in [64, 128, 256, 512, 2048] {
        let q = random(&[seq, heads, hd], &d, 6)?;
        let k = random(&[seq, kv_heads, hd], &d, 7)?.to_dtype(DType::F16)?;
        let v = random(&[seq, kv_heads, hd], &d, 8)?.to_dtype(DType::F16)?;
        let p = Attention {
            scale: 1.0 / (hd as f32).sqrt(),
            pos_offset: 0,
        };
        let (o1, o2) = (
            Tensor::zeros(&[seq, heads, hd], DType::F32, &d)?,
            Tensor::zeros(&[seq, heads, hd], DType::F32, &d)?,
        );
        let fused = time(&dev, || Ok(attention_fused(&q, &k, &v, &p, &o1)?))?;
        let unfused = time(&dev, || Ok(attention_unfused(&q, &k, &v, &p, &o2)?))?;
        let diff = o1
            .to_vec_f32()?
            .iter()
            .zip(o2.to_vec_f32()?)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        // Two products of seq x seq x hd per head, half of them masked.
        let flops = 2.0 * 2.0 * (heads * seq * seq * hd) as f64 / 2.0;
        println!(
            "| seq {seq} | {:.1} | {:.1} | {:.2} | {:.1} | {diff:.1e} |",
            fused * 1e3,
            unfused * 1e3,
            fused / unfused,
            flops / (unfused * 1e-3) / 1e12
        );
    }
    Ok(())
}
