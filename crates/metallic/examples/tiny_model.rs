//! Writes a tiny random model (see `metallic::optest::tiny_model`) that
//! travels where real weights cannot (the lent GPU machine takes 64 MiB per
//! call): `cargo run --example tiny_model -- [--tokenizer-from REAL.gguf] OUT.gguf`.
//! With a tokenizer the CLI runs it end to end (`metallic run`, `bench`,
//! `perplexity`).

use std::path::PathBuf;

use metallic::gguf::GgufFile;
use metallic::optest::tiny_model::{tiny_model, TinySpec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut tokenizer, mut out) = (None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--tokenizer-from" => {
                tokenizer = Some(PathBuf::from(
                    args.next().ok_or("--tokenizer-from needs a path")?,
                ))
            }
            _ => out = Some(PathBuf::from(a)),
        }
    }
    let out = out.ok_or("usage: tiny_model [--tokenizer-from REAL.gguf] OUT.gguf")?;
    let src = tokenizer.map(|p| GgufFile::open(&p)).transpose()?;
    let bytes = tiny_model(&TinySpec::default(), src.as_ref())?;
    std::fs::write(&out, &bytes)?;
    println!("wrote {} ({} bytes)", out.display(), bytes.len());
    Ok(())
}
