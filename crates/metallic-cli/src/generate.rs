//! `metallic run` and `metallic chat`.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use metallic::chat::{ChatTemplate, Message};
use metallic::generate::{Generation, Session};
use metallic::sampling::{Sampler, SamplingParams};

use crate::common::{load, model_path, DeviceArgs};

#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Temperature; 0 means greedy.
    #[arg(long = "temp", default_value_t = 0.8, allow_negative_numbers = true)]
    pub temperature: f32,
    /// Keep the k most likely tokens (0 = off).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Nucleus sampling threshold (1 = off).
    #[arg(long, default_value_t = 0.95, allow_negative_numbers = true)]
    pub top_p: f32,
    /// Drop tokens below min_p times the top probability (0 = off).
    #[arg(long, default_value_t = 0.05, allow_negative_numbers = true)]
    pub min_p: f32,
    /// Repetition penalty over the last --repeat-last-n tokens (1 = off).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub repeat_penalty: f32,
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub presence_penalty: f32,
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub frequency_penalty: f32,
    #[arg(long, default_value_t = 64)]
    pub repeat_last_n: usize,
    /// Random seed (same seed, same output).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

impl SamplingArgs {
    pub fn sampler(&self) -> Result<Sampler> {
        let p = SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            repeat_last_n: self.repeat_last_n,
            seed: self.seed,
        };
        Ok(Sampler::new(p)?)
    }
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// GGUF model (default: the fetched Qwen2.5-Coder-0.5B-Instruct).
    pub model: Option<PathBuf>,
    /// The prompt.
    #[arg(short, long)]
    pub prompt: String,
    /// Tokens to generate at most.
    #[arg(short = 'n', long = "n-predict", default_value_t = 128)]
    pub n: usize,
    /// Wrap the prompt in the model's chat template as one user turn.
    #[arg(long)]
    pub chat: bool,
    /// System prompt (with --chat).
    #[arg(long)]
    pub system: Option<String>,
    /// Context length (KV cache positions).
    #[arg(short = 'c', long, default_value_t = 4096)]
    pub ctx: usize,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
}

fn report(g: &Generation) {
    eprintln!();
    eprintln!(
        "prompt: {} tokens in {:.2} s ({:.1} tok/s); generation: {} tokens in {:.2} s ({:.1} tok/s)",
        g.prompt_tokens_run,
        g.prompt_secs,
        g.prompt_tokens_run as f64 / g.prompt_secs.max(1e-9),
        g.tokens.len(),
        g.gen_secs,
        g.tokens.len() as f64 / g.gen_secs.max(1e-9),
    );
}

fn messages(system: &Option<String>, user: &str) -> Vec<Message> {
    let mut m = Vec::new();
    if let Some(s) = system {
        m.push(Message {
            role: "system".into(),
            content: s.clone(),
        });
    }
    m.push(Message {
        role: "user".into(),
        content: user.into(),
    });
    m
}

pub fn run(args: RunArgs) -> Result<()> {
    if args.prompt.is_empty() {
        bail!("the prompt is empty (give one with -p)");
    }
    let mut sampler = args.sampling.sampler()?;
    let path = model_path(args.model.as_deref())?;
    let l = load(&path, &args.device)?;
    let ctx = args.ctx.min(l.model.cfg.ctx_train);
    let tokens = if args.chat {
        let tpl = ChatTemplate::from_gguf(&l.file, &l.tokenizer)?
            .context("--chat: the model has no chat template")?;
        let text = tpl.render(&messages(&args.system, &args.prompt), true)?;
        l.tokenizer.encode(&text, true)?
    } else {
        l.tokenizer.encode(&args.prompt, false)?
    };
    if tokens.len() > ctx {
        bail!(
            "the prompt is {} tokens, longer than the context of {ctx} (raise --ctx)",
            tokens.len()
        );
    }
    let mut session = Session::new(&l.model, &l.tokenizer, ctx)?;
    let mut stdout = std::io::stdout();
    let g = session.generate(&tokens, args.n, &mut sampler, &mut |t| {
        let _ = stdout.write_all(t.as_bytes());
        let _ = stdout.flush();
    })?;
    println!();
    report(&g);
    Ok(())
}

#[derive(Args, Debug)]
pub struct ChatArgs {
    /// GGUF model (default: the fetched Qwen2.5-Coder-0.5B-Instruct).
    pub model: Option<PathBuf>,
    /// System prompt.
    #[arg(long)]
    pub system: Option<String>,
    /// Tokens per answer at most.
    #[arg(short = 'n', long = "n-predict", default_value_t = 512)]
    pub n: usize,
    #[arg(short = 'c', long, default_value_t = 4096)]
    pub ctx: usize,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// Reads user turns line by line from stdin; the KV cache is reused across
/// turns for the conversation prefix that does not change.
pub fn chat(args: ChatArgs) -> Result<()> {
    let mut sampler = args.sampling.sampler()?;
    let path = model_path(args.model.as_deref())?;
    let l = load(&path, &args.device)?;
    let tpl = ChatTemplate::from_gguf(&l.file, &l.tokenizer)?
        .context("the model has no chat template")?;
    let ctx = args.ctx.min(l.model.cfg.ctx_train);
    let mut session = Session::new(&l.model, &l.tokenizer, ctx)?;
    let mut history: Vec<Message> = messages(&args.system, "");
    history.pop();
    eprintln!(
        "chat with {} (empty line or Ctrl-D to quit)",
        path.display()
    );
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    loop {
        eprint!("> ");
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 || line.trim().is_empty() {
            return Ok(());
        }
        history.push(Message {
            role: "user".into(),
            content: line.trim_end().to_string(),
        });
        let text = tpl.render(&history, true)?;
        let tokens = l.tokenizer.encode(&text, true)?;
        if tokens.len() >= ctx {
            bail!(
                "the conversation ({} tokens) no longer fits the context of {ctx}",
                tokens.len()
            );
        }
        let g = session.generate(
            &tokens,
            args.n.min(ctx - tokens.len()),
            &mut sampler,
            &mut |t| {
                let _ = stdout.write_all(t.as_bytes());
                let _ = stdout.flush();
            },
        )?;
        println!();
        report(&g);
        history.push(Message {
            role: "assistant".into(),
            content: l.tokenizer.decode(&g.tokens),
        });
    }
}
