//! Diagnostic: runs a model teacher-forced over the `tokens` of a golden file
//! (tests/golden/*.teacher_forced.json) in one forward pass and writes every
//! position's logits as raw little-endian f32 `[n_tokens, vocab]`, for
//! comparison with llama.cpp and with an f64 reference in Python.
//!
//! cargo run --release --example dump_logits -- MODEL GOLDEN OUT [auto|native|vendor]

use metallic::gguf::GgufFile;
use metallic::model::{Logits, Model, ModelOptions};
use std::io::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        return Err("usage: dump_logits MODEL GOLDEN OUT [auto|native|vendor]".into());
    }
    let golden: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&args[2])?)?;
    let tokens: Vec<u32> = golden["tokens"]
        .as_array()
        .ok_or("golden file has no tokens")?
        .iter()
        .map(|t| {
            t.as_u64()
                .map(|v| v as u32)
                .ok_or("token ids must be integers")
        })
        .collect::<Result<_, _>>()?;
    let opts = ModelOptions {
        matmul: args.get(4).map_or("auto", |s| s.as_str()).parse()?,
        ..ModelOptions::default()
    };
    let file = GgufFile::open(std::path::Path::new(&args[1]))?;
    let model = Model::load(&file, opts, &mut |_| {})?;
    let mut state = model.new_state(tokens.len())?;
    let logits = model
        .forward(&mut state, &tokens, Logits::All)?
        .to_vec_f32()?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(&args[3])?);
    for v in logits {
        out.write_all(&v.to_le_bytes())?;
    }
    Ok(())
}
