//! The `metallic` command line.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "metallic", version, about = "Run LLMs from GGUF files on metallic's own kernels")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate text from a prompt.
    Run,
    /// Interactive chat.
    Chat,
    /// Print a GGUF file's metadata and tensor table.
    Info,
    /// Prompt-processing and generation speed, in the manner of llama-bench.
    Bench,
    /// Perplexity of a text file, with llama.cpp's convention.
    Perplexity,
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let name = match cli.command {
        Command::Run => "run",
        Command::Chat => "chat",
        Command::Info => "info",
        Command::Bench => "bench",
        Command::Perplexity => "perplexity",
    };
    eprintln!("metallic {}: `{name}` is not available yet", env!("CARGO_PKG_VERSION"));
    std::process::exit(2);
}
