//! Where a decode step's time goes on CUDA: the host's time to queue one
//! step (every op's validation, dispatch and launches) against the device's
//! time to run it, measured apart.
//!
//! `decode_profile MODEL.gguf [DEPTH] [STEPS]`
//!
//! After a prefill of DEPTH tokens (default 16), each round queues a kernel
//! that holds the stream, then STEPS decode steps (default 8) behind it, so
//! the host's queueing time is its own (the device never makes it wait,
//! unless the launch queue fills: then the host's time reaches the hold's,
//! and a line says so; fewer steps a round avoid it),
//! and an event pair around the steps times the device running them back
//! to back with no gap left by the host. A third number is the step as
//! `metallic bench` sees it (queue, run, read the logits back). Five rounds;
//! medians are printed, with the kernels launched one by one and then with
//! the decode step replayed as a CUDA graph. If the host takes about as long as a step, decode is
//! host-bound (fewer launches or a CUDA graph help); if the device does,
//! the kernels themselves are the limit. The host's time inside the
//! driver's launch calls is printed apart from the rest (ours).

use std::time::Instant;

use metallic::cuda::bench::{hold, EventPair};
use metallic::cuda::CudaDevice;
use metallic::device::Device;
use metallic::gguf::GgufFile;
use metallic::model::{Logits, Model, ModelOptions};

/// The stream is held this long per step queued behind the hold.
const HOLD_US: f64 = 20_000.0;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 2 {
        return Err("usage: decode_profile MODEL.gguf [DEPTH] [STEPS]".into());
    }
    let depth: usize = args.get(2).map_or(Ok(16), |s| s.parse())?;
    let steps: usize = args.get(3).map_or(Ok(2), |s| s.parse())?;
    if steps == 0 {
        return Err("STEPS must be at least 1".into());
    }
    let dev = metallic::cuda::default_device().ok_or("no CUDA device")?;
    let file = GgufFile::open(std::path::Path::new(&args[1]))?;
    for graph in [false, true] {
        profile(&args[1], &file, &dev, (depth, steps), graph)?;
    }
    Ok(())
}

/// One model load and its rounds, with or without the decode graph.
fn profile(
    path: &str,
    file: &GgufFile,
    dev: &CudaDevice,
    (depth, steps): (usize, usize),
    graph: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let opts = ModelOptions {
        device: Device::Cuda(dev.clone()),
        cuda_graph: graph,
        ..Default::default()
    };
    let model = Model::load(file, opts, &mut |_| {})?;
    let rounds = 5;
    let mut state = model.new_state(depth + (rounds + 1) * 2 * steps + 1)?;
    let vocab = model.cfg.vocab as u32;
    let prompt: Vec<u32> = (0..depth.max(1) as u32)
        .map(|i| (i * 7919) % vocab)
        .collect();
    model
        .forward(&mut state, &prompt, Logits::Last)?
        .to_vec_f32()?;
    // One untimed round: every kernel loaded.
    for i in 0..steps as u32 {
        model.forward(&mut state, &[i % vocab], Logits::Last)?;
    }
    dev.synchronize()?;

    let ev = EventPair::new(dev)?;
    let (mut host, mut device, mut synced) = (Vec::new(), Vec::new(), Vec::new());
    let (mut launches, mut in_driver) = (0.0, Vec::new());
    for _ in 0..rounds {
        // Long enough to cover the host's queueing of every step.
        hold(dev, HOLD_US * steps as f64)?;
        ev.record_start(dev)?;
        let (n0, d0) = dev.launch_stats();
        let t = Instant::now();
        for i in 0..steps as u32 {
            model.forward(&mut state, &[(i * 31) % vocab], Logits::Last)?;
        }
        host.push(t.elapsed().as_secs_f64() * 1e6 / steps as f64);
        let (n1, d1) = dev.launch_stats();
        launches = (n1 - n0) as f64 / steps as f64;
        in_driver.push((d1 - d0).as_secs_f64() * 1e6 / steps as f64);
        ev.record_end(dev)?;
        dev.synchronize()?;
        device.push(ev.elapsed_ms()? as f64 * 1e3 / steps as f64);

        let t = Instant::now();
        for i in 0..steps as u32 {
            model
                .forward(&mut state, &[(i * 17) % vocab], Logits::Last)?
                .to_vec_f32()?;
        }
        synced.push(t.elapsed().as_secs_f64() * 1e6 / steps as f64);
    }
    let (h, d, s) = (median(host), median(device), median(synced));
    println!(
        "{path}: {} layers, depth {depth}..{}, {steps} steps a round, median of {rounds} rounds on {}, {}",
        model.cfg.n_layer,
        state.pos,
        dev.name(),
        if graph { "decode graph" } else { "kernels launched one by one" }
    );
    println!("host, queueing one step:          {h:8.1} us");
    println!(
        "  of which in the driver's launch calls: {:8.1} us ({launches:.0} launches, {:.2} us each)",
        median(in_driver.clone()),
        median(in_driver) / launches.max(1.0)
    );
    if h > 0.9 * HOLD_US {
        println!("  (about the hold's length: the launch queue filled; run fewer steps)");
    }
    println!("device, steps back to back:       {d:8.1} us");
    println!(
        "a step with its logits read back: {s:8.1} us ({:.1} tok/s)",
        1e6 / s
    );
    Ok(())
}
