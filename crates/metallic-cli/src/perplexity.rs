//! `metallic perplexity MODEL -f FILE -c N` (llama.cpp's convention; see
//! `metallic::perplexity`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::common::{load, DeviceArgs};

#[derive(Args, Debug)]
pub struct PerplexityArgs {
    pub model: PathBuf,
    /// Text file to score.
    #[arg(short = 'f', long)]
    pub file: PathBuf,
    /// Tokens per chunk.
    #[arg(short = 'c', long, default_value_t = 512)]
    pub ctx: usize,
    #[command(flatten)]
    pub device: DeviceArgs,
}

pub fn run(args: PerplexityArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    if !args.model.exists() {
        anyhow::bail!("model file {} does not exist", args.model.display());
    }
    let l = load(&args.model, &args.device)?;
    let tokens = l.tokenizer.encode(&text, false)?;
    let bos = l.tokenizer.add_bos().then(|| l.tokenizer.bos()).flatten();
    eprintln!(
        "{} tokens, {} chunks of {}",
        tokens.len(),
        tokens.len() / args.ctx.max(1),
        args.ctx
    );
    let r = metallic::perplexity::perplexity(&l.model, &tokens, args.ctx, bos, &mut |i, p| {
        eprint!("[{}]{p:.4} ", i + 1);
    })?;
    eprintln!();
    println!("Final estimate: PPL = {:.4} +/- {:.5}", r.ppl, r.err);
    Ok(())
}
