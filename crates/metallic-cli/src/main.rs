//! The `metallic` command line.

mod bench;
mod common;
mod generate;
mod info;
mod perplexity;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "metallic",
    version,
    about = "Run LLMs from GGUF files on metallic's own kernels"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate text from a prompt.
    Run(generate::RunArgs),
    /// Interactive chat (one user turn per line on stdin).
    Chat(generate::ChatArgs),
    /// Print a GGUF file's metadata and tensor table.
    Info { model: PathBuf },
    /// Prompt-processing and generation speed, in the manner of llama-bench.
    Bench(bench::BenchArgs),
    /// Perplexity of a text file, with llama.cpp's convention.
    Perplexity(perplexity::PerplexityArgs),
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => generate::run(a),
        Command::Chat(a) => generate::chat(a),
        Command::Info { model } => info::run(&model),
        Command::Bench(a) => bench::run(a),
        Command::Perplexity(a) => perplexity::run(a),
    };
    if let Err(e) = result {
        // One line: the context chain, outermost first.
        let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
        eprintln!("error: {}", chain.join(": "));
        std::process::exit(1);
    }
}
