//! `metallic bench`: prompt processing (pp) and generation (tg) speed in the
//! manner of llama-bench: pp runs N tokens as one batch from an empty cache,
//! tg decodes N tokens one at a time from an empty cache; each is repeated
//! and reported as mean +/- sample standard deviation of tokens/s. With
//! `-d D` (llama-bench's `-d`), both start after D tokens already in the
//! cache (prefilled untimed): `tg32 @ d2048` is decode at depth 2048.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use metallic::model::{Logits, Model, State};

use crate::common::{load, DeviceArgs};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Md,
    Json,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    pub model: PathBuf,
    /// Prompt tokens for the pp test (0 = skip).
    #[arg(short = 'p', long = "n-prompt", default_value_t = 512)]
    pub n_prompt: usize,
    /// Generated tokens for the tg test (0 = skip).
    #[arg(short = 'n', long = "n-gen", default_value_t = 128)]
    pub n_gen: usize,
    /// Tokens already in the cache when each test starts (prefilled, not
    /// timed).
    #[arg(short = 'd', long = "n-depth", default_value_t = 0)]
    pub n_depth: usize,
    /// Repetitions.
    #[arg(short = 'r', long, default_value_t = 5)]
    pub repetitions: usize,
    #[arg(short = 'o', long, value_enum, default_value = "md")]
    pub output: Format,
    #[command(flatten)]
    pub device: DeviceArgs,
}

struct Stat {
    test: String,
    mean: f64,
    sd: f64,
}

fn stats(test: String, samples: &[f64]) -> Stat {
    let n = samples.len() as f64;
    let mean = samples.iter().sum::<f64>() / n;
    let sd = if samples.len() > 1 {
        (samples.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    Stat { test, mean, sd }
}

/// Deterministic pseudo-random token ids (llama-bench also uses random tokens).
fn tokens(n: usize, vocab: usize) -> Vec<u32> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % vocab as u64) as u32
        })
        .collect()
}

/// A state holding `depth` prefilled tokens, with room for `n` more.
fn state_at(model: &Model, depth: usize, n: usize) -> Result<State> {
    let mut state = model.new_state(depth + n)?;
    if depth > 0 {
        let toks = tokens(depth + 1, model.cfg.vocab);
        model
            .forward(&mut state, &toks[1..], Logits::Last)?
            .to_vec_f32()?;
    }
    Ok(state)
}

fn run_pp(model: &Model, n: usize, depth: usize) -> Result<f64> {
    let toks = tokens(n, model.cfg.vocab);
    let mut state = state_at(model, depth, n)?;
    let t = Instant::now();
    model
        .forward(&mut state, &toks, Logits::Last)?
        .to_vec_f32()?;
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

fn run_tg(model: &Model, n: usize, depth: usize) -> Result<f64> {
    let toks = tokens(n, model.cfg.vocab);
    let mut state = state_at(model, depth, n)?;
    let t = Instant::now();
    for tok in toks {
        model
            .forward(&mut state, &[tok], Logits::Last)?
            .to_vec_f32()?;
    }
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

/// With `METALLIC_CUDA_PROFILE=1`: our kernels' time per repetition of a
/// test, by kernel name, on stderr.
fn print_profile(test: &str, times: &[metallic::cuda::KernelTime], reps: usize) {
    let total: f64 = times.iter().map(|t| t.ms).sum();
    let per = |x: f64| x / reps as f64;
    eprintln!(
        "\n{test}: our kernels took {:.3} ms a repetition (events around each launch; cuBLAS's kernels not included)",
        per(total)
    );
    eprintln!("| kernel | launches | ms | share |");
    eprintln!("| --- | ---: | ---: | ---: |");
    for t in times {
        eprintln!(
            "| {} | {} | {:.3} | {:.1}% |",
            t.name,
            t.launches / reps,
            per(t.ms),
            100.0 * t.ms / total.max(1e-12)
        );
    }
}

pub fn run(args: BenchArgs) -> Result<()> {
    if args.repetitions == 0 {
        bail!("--repetitions must be at least 1");
    }
    if !args.model.exists() {
        bail!("model file {} does not exist", args.model.display());
    }
    let l = load(&args.model, &args.device)?;
    let mut results = Vec::new();
    for (name, n, f) in [
        (
            "pp",
            args.n_prompt,
            run_pp as fn(&Model, usize, usize) -> Result<f64>,
        ),
        ("tg", args.n_gen, run_tg),
    ] {
        if n == 0 {
            continue;
        }
        // Warm-up: pp at its full length, so that every kernel its shapes
        // take is compiled (or loaded) before the timed runs; tg's shapes
        // do not grow with n.
        let depth = args.n_depth;
        f(&l.model, if name == "pp" { n } else { n.min(16) }, depth)?;
        let cuda = match &l.model.opts.device {
            metallic::Device::Cuda(d) if d.profiling() => Some(d),
            _ => None,
        };
        if let Some(d) = cuda {
            d.kernel_profile()?; // drop the warm-up's launches
        }
        let samples = (0..args.repetitions)
            .map(|_| f(&l.model, n, depth))
            .collect::<Result<Vec<_>>>()?;
        let test = if depth > 0 {
            format!("{name}{n} @ d{depth}")
        } else {
            format!("{name}{n}")
        };
        if let Some(d) = cuda {
            // With -d, each repetition's untimed prefill is in it too.
            print_profile(&test, &d.kernel_profile()?, args.repetitions);
        }
        results.push(stats(test, &samples));
    }
    let model_name = args
        .model
        .file_name()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let threads = rayon::current_num_threads();
    let decode_bytes = l.model.weights.decode_bytes();
    match args.output {
        Format::Md => {
            println!("| model | device | matmul | threads | test | t/s |");
            println!("| --- | --- | --- | ---: | ---: | ---: |");
            for r in &results {
                println!(
                    "| {model_name} | {} | {:?} | {threads} | {} | {:.2} ± {:.2} |",
                    args.device.device, args.device.matmul, r.test, r.mean, r.sd
                );
            }
            println!(
                "\nweights read per generated token: {:.1} MB (tg t/s x this = the weight stream in GB/s)",
                decode_bytes as f64 / 1e6
            );
        }
        Format::Json => {
            let rows: Vec<String> = results
                .iter()
                .map(|r| {
                    format!(
                        "  {{\"model\": {model_name:?}, \"device\": {:?}, \"threads\": {threads}, \"test\": {:?}, \"avg_ts\": {:.3}, \"stddev_ts\": {:.3}, \"decode_bytes\": {decode_bytes}}}",
                        args.device.device, r.test, r.mean, r.sd
                    )
                })
                .collect();
            println!("[\n{}\n]", rows.join(",\n"));
        }
    }
    Ok(())
}
