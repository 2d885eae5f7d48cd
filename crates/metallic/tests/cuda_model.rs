//! The model on CUDA agrees with the model on the CPU, on tiny random models
//! that carry every weight type of the shipped models (see
//! `optest::tiny_model`): greedy continuations of 32 tokens are equal and the
//! logits are within a stated budget. Prints SKIP where there is no GPU.
//!
//! The CPU side runs with `MatmulBackend::Vendor` (weights dequantized, f32
//! activations), the same arithmetic as every CUDA matmul path; the CPU's
//! default quantized kernel rounds activations to 8 bits first, as
//! llama.cpp does, and is compared too but only reported.

use metallic::gguf::GgufFile;
use metallic::model::{Logits, Model, ModelOptions};
use metallic::ops::matmul::MatmulBackend;
use metallic::optest::nmse;
use metallic::optest::tiny_model::{tiny_model, TinySpec};
use metallic::{Device, Result};

/// Largest normalised MSE between CPU (vendor) and CUDA logits: f32
/// accumulation in another order and f32 `exp` on both sides; measured far
/// below this (the log prints the values).
const LOGITS_BUDGET: f64 = 1e-6;
/// The same for the prefill logits under `Auto` and `Native`: there the
/// products of more than 16 rows against an f16 weight round the
/// activations to f16 before the tensor cores (cuda/ops/matmul.rs
/// `rounded_a`, as llama.cpp does), about u^2 / 3 = 8e-8 of NMSE per
/// product (unit roundoff u = 2^-11), which the layers compound. A
/// synthetic Qwen2.5-1.5B in f16 measured 2.9e-6 on an H100 (bench/results/
/// 2026-12-06-nvidia-h100-synthetic-1.5b-mixed-prefill-session14.log); the
/// exact vendor path keeps 1e-6.
const ROUNDED_PREFILL_BUDGET: f64 = 1e-5;
const STEPS: usize = 32;

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// Prefill logits of every prompt position, then `STEPS` greedy tokens with
/// the logits that chose each.
fn run(model: &Model, prompt: &[u32]) -> Result<(Vec<f32>, Vec<u32>, Vec<f32>)> {
    let mut state = model.new_state(prompt.len() + STEPS + 1)?;
    let prefill = model
        .forward(&mut state, prompt, Logits::All)?
        .to_vec_f32()?;
    let vocab = model.cfg.vocab;
    let mut logits = prefill[prefill.len() - vocab..].to_vec();
    let (mut tokens, mut chosen) = (Vec::new(), Vec::new());
    for _ in 0..STEPS {
        let next = argmax(&logits);
        tokens.push(next);
        chosen.extend_from_slice(&logits);
        logits = model
            .forward(&mut state, &[next], Logits::Last)?
            .to_vec_f32()?;
    }
    Ok((prefill, tokens, chosen))
}

fn load(file: &GgufFile, device: Device, matmul: MatmulBackend) -> Result<Model> {
    let opts = ModelOptions {
        device,
        matmul,
        ..Default::default()
    };
    Model::load(file, opts, &mut |_| {})
}

#[test]
fn tiny_models_on_cuda_agree_with_the_cpu() {
    let gpu = metallic::cuda::default_device();
    if let Some(gpu) = &gpu {
        println!("device: {} ({})", gpu.name(), gpu.arch());
    }
    let prompt: Vec<u32> = (0..19).map(|i| (i * 37 + 11) % 500).collect();
    let mut failures = Vec::new();
    for arch in ["qwen2", "llama"] {
        let spec = TinySpec {
            arch,
            ..Default::default()
        };
        let file = GgufFile::from_bytes(tiny_model(&spec, None).unwrap()).unwrap();
        let (cpu_prefill, cpu_tokens, cpu_logits) = run(
            &load(&file, Device::Cpu, MatmulBackend::Vendor).unwrap(),
            &prompt,
        )
        .unwrap();
        let (q8_prefill, q8_tokens, _) = run(
            &load(&file, Device::Cpu, MatmulBackend::Auto).unwrap(),
            &prompt,
        )
        .unwrap();
        let Some(gpu) = &gpu else {
            // The CPU side (and the tiny model builder) still ran.
            println!("SKIP cuda model agreement ({arch}): no CUDA device; cpu greedy tokens {cpu_tokens:?}");
            continue;
        };
        for backend in [
            MatmulBackend::Auto,
            MatmulBackend::Vendor,
            MatmulBackend::Native,
        ] {
            let model = load(&file, Device::Cuda(gpu.clone()), backend).unwrap();
            let (prefill, tokens, logits) = run(&model, &prompt).unwrap();
            let e_prefill = nmse(&prefill, &cpu_prefill);
            let e_decode = nmse(&logits, &cpu_logits);
            let same = tokens == cpu_tokens;
            let prefill_budget = if backend == MatmulBackend::Vendor {
                LOGITS_BUDGET
            } else {
                ROUNDED_PREFILL_BUDGET
            };
            println!(
                "{arch} cuda-{backend:?}: prefill logits nmse {e_prefill:.2e} (budget {prefill_budget:.0e}), decode logits nmse {e_decode:.2e} (budget {LOGITS_BUDGET:.0e}), {STEPS} greedy tokens {}; vs cpu-auto (q8 activations): prefill nmse {:.2e}, tokens {}",
                if same { "equal" } else { "DIFFER" },
                nmse(&prefill, &q8_prefill),
                if tokens == q8_tokens { "equal" } else { "differ" },
            );
            if !same || e_prefill > prefill_budget || e_decode > LOGITS_BUDGET {
                failures.push(format!(
                    "{arch} {backend:?}: prefill nmse {e_prefill:.2e}, decode nmse {e_decode:.2e}\n cpu {cpu_tokens:?}\n cuda {tokens:?}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "CUDA and CPU disagree:\n{}",
        failures.join("\n")
    );
}

#[test]
fn a_warm_decode_step_takes_no_memory_from_the_driver() {
    let Some(gpu) = metallic::cuda::default_device() else {
        println!("SKIP cuda decode allocations: no CUDA device");
        return;
    };
    let file = GgufFile::from_bytes(tiny_model(&TinySpec::default(), None).unwrap()).unwrap();
    let model = load(&file, Device::Cuda(gpu.clone()), MatmulBackend::Auto).unwrap();
    let mut state = model.new_state(64).unwrap();
    model.forward(&mut state, &[1, 2, 3], Logits::Last).unwrap();
    for t in 0..2 {
        model.forward(&mut state, &[t], Logits::Last).unwrap();
    }
    let before = gpu.pool().driver_allocs();
    for t in 0..20 {
        let logits = model.forward(&mut state, &[t], Logits::Last).unwrap();
        assert_eq!(logits.shape(), [1, model.cfg.vocab]);
    }
    gpu.synchronize().unwrap();
    let after = gpu.pool().driver_allocs();
    println!(
        "driver allocations during 20 warm decode steps: {}",
        after - before
    );
    assert_eq!(
        before, after,
        "a warm decode step allocated device memory from the driver"
    );
}

/// Greedy decode of `steps` tokens after `prompt`, from `state` as it is,
/// every step's logits kept; with the kernel launches of the last step.
fn decode(
    model: &Model,
    state: &mut metallic::model::State,
    prompt: &[u32],
    steps: usize,
) -> Result<(Vec<f32>, u64)> {
    let mut logits = model.forward(state, prompt, Logits::Last)?.to_vec_f32()?;
    let mut all = logits.clone();
    let mut launches = 0;
    for _ in 0..steps {
        let dev = match &model.opts.device {
            Device::Cuda(d) => d.clone(),
            Device::Cpu => unreachable!("a CUDA model"),
        };
        let before = dev.launch_stats().0;
        logits = model
            .forward(state, &[argmax(&logits)], Logits::Last)?
            .to_vec_f32()?;
        launches = dev.launch_stats().0 - before;
        all.extend_from_slice(&logits);
    }
    Ok((all, launches))
}

/// The decode step replayed from its CUDA graph gives the same logits, bit
/// for bit, as the same kernels launched one by one (the graph reads the
/// token and position on the device), on every matmul backend: across a
/// prefill, decode steps, a rewind (`truncate`, the graph reused at earlier
/// positions) and a longer prompt (the step buffers regrown, the graph
/// captured again). A replayed step is one launch.
#[test]
fn decode_graph_replays_match_launching_each_kernel() {
    let Some(gpu) = metallic::cuda::default_device() else {
        println!("SKIP cuda decode graph: no CUDA device");
        return;
    };
    let prompt: Vec<u32> = (0..7).map(|i| (i * 53 + 5) % 500).collect();
    let long: Vec<u32> = (0..23).map(|i| (i * 29 + 3) % 500).collect();
    for arch in ["qwen2", "llama"] {
        let spec = TinySpec {
            arch,
            ..Default::default()
        };
        let file = GgufFile::from_bytes(tiny_model(&spec, None).unwrap()).unwrap();
        for backend in [
            MatmulBackend::Auto,
            MatmulBackend::Vendor,
            MatmulBackend::Native,
        ] {
            let mut out = Vec::new();
            for graph in [false, true] {
                let opts = ModelOptions {
                    device: Device::Cuda(gpu.clone()),
                    matmul: backend,
                    cuda_graph: graph,
                    ..Default::default()
                };
                let model = Model::load(&file, opts, &mut |_| {}).unwrap();
                let mut state = model.new_state(80).unwrap();
                let (a, _) = decode(&model, &mut state, &prompt, 12).unwrap();
                state.truncate(3);
                let (b, _) = decode(&model, &mut state, &prompt[3..5], 6).unwrap();
                state.reset();
                let (c, launches) = decode(&model, &mut state, &long, 12).unwrap();
                println!(
                    "{arch} {backend:?} graph {graph}: a decode step took {launches} launches"
                );
                if graph {
                    assert_eq!(launches, 1, "{arch} {backend:?}: the step was not replayed");
                } else {
                    assert!(launches > 10, "{arch} {backend:?}: {launches} launches");
                }
                out.push([a, b, c].concat());
            }
            assert_eq!(out[0].len(), out[1].len());
            let differ = out[0]
                .iter()
                .zip(&out[1])
                .filter(|(x, y)| x.to_bits() != y.to_bits())
                .count();
            println!(
                "{arch} {backend:?}: {differ} of {} logits differ",
                out[0].len()
            );
            assert_eq!(differ, 0, "{arch} {backend:?}: graph and launches disagree");
        }
    }
}
