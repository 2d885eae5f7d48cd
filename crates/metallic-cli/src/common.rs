//! What every model-running subcommand shares: model path defaulting, device
//! and matmul selection, loading with a progress bar.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use metallic::gguf::GgufFile;
use metallic::model::{Model, ModelOptions};
use metallic::ops::matmul::MatmulBackend;
use metallic::tokenizer::Tokenizer;
use metallic::Device;

/// The model `run` and `chat` use when none is given (fetched by
/// scripts/fetch_models.sh).
pub const DEFAULT_MODEL: &str = "models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";

#[derive(Args, Debug, Clone)]
pub struct DeviceArgs {
    /// Where to run: cpu or cuda.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Matmul implementation: auto (dispatcher), native (ours) or vendor.
    #[arg(long, default_value = "auto")]
    pub matmul: MatmulBackend,
    /// Worker threads (default: all cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
}

impl DeviceArgs {
    pub fn device(&self) -> Result<Device> {
        match self.device.as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Device::cuda(0).context("--device cuda"),
            other => bail!("unknown device {other:?} (cpu or cuda)"),
        }
    }

    pub fn init_threads(&self) -> Result<()> {
        if let Some(n) = self.threads {
            if n == 0 {
                bail!("--threads must be at least 1");
            }
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build_global()
                .context("setting the thread count")?;
        }
        Ok(())
    }
}

/// The model path given, or the default one with advice when it is missing.
pub fn model_path(given: Option<&Path>) -> Result<PathBuf> {
    match given {
        Some(p) => {
            if !p.exists() {
                bail!("model file {} does not exist", p.display());
            }
            Ok(p.to_path_buf())
        }
        None => {
            let p = PathBuf::from(DEFAULT_MODEL);
            if !p.exists() {
                bail!(
                    "no model given and the default {DEFAULT_MODEL} is missing: fetch it with `bash scripts/fetch_models.sh qwen`"
                );
            }
            Ok(p)
        }
    }
}

pub struct Loaded {
    pub file: GgufFile,
    pub model: Model,
    pub tokenizer: Tokenizer,
}

/// Opens, validates and loads a model (progress bar on a terminal).
pub fn load(path: &Path, dev: &DeviceArgs) -> Result<Loaded> {
    dev.init_threads()?;
    let device = dev.device()?;
    let file = GgufFile::open(path).with_context(|| format!("loading {}", path.display()))?;
    let tokenizer = Tokenizer::from_gguf(&file).context("building the tokenizer")?;
    let total: u64 = file.tensors().iter().map(|t| t.size as u64).sum();
    let bar = if std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template("loading {bar:40} {bytes}/{total_bytes}")
                .expect("static template"),
        );
        Some(b)
    } else {
        None
    };
    let opts = ModelOptions {
        device,
        matmul: dev.matmul,
        ..Default::default()
    };
    let model = Model::load(&file, opts, &mut |bytes| {
        if let Some(b) = &bar {
            b.inc(bytes as u64);
        }
    })
    .with_context(|| format!("loading {}", path.display()))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(Loaded {
        file,
        model,
        tokenizer,
    })
}
