//! Tiny random models for backend agreement tests: the architecture of the
//! real ones (GQA, RoPE, SwiGLU, optional QKV bias, tied output) at a size
//! that travels anywhere, with every weight type of the shipped models
//! (Q4_K, Q6_K, Q5_0, Q8_0, Q4_1) and the float ones (F16, BF16, F32) spread
//! over its layers. The numbers are meaningless; the kernels exercised are
//! those of a real file.
//!
//! With a `tokenizer_from` file the tokenizer (and its architecture) is
//! copied, so the CLI can run the model end to end.

use crate::error::Result;
use crate::gguf::{GgufFile, GgufWriter, Value};
use crate::tensor::DType;

/// Sizes of a tiny model.
#[derive(Debug, Clone)]
pub struct TinySpec {
    /// `qwen2` (with QKV bias) or `llama`.
    pub arch: &'static str,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub n_ff: usize,
    /// Used when no tokenizer is copied.
    pub vocab: usize,
    pub seed: u64,
}

impl Default for TinySpec {
    fn default() -> Self {
        TinySpec {
            arch: "qwen2",
            n_embd: 256,
            n_head: 4,
            n_head_kv: 2,
            n_ff: 512,
            vocab: 512,
            seed: 7,
        }
    }
}

/// Weight types per layer: (q, k, v, o, gate, up, down). Three layers.
const LAYER_TYPES: [[DType; 7]; 3] = [
    [
        DType::Q4K,
        DType::Q4K,
        DType::Q6K,
        DType::Q4K,
        DType::Q4K,
        DType::Q4K,
        DType::Q6K,
    ],
    [
        DType::Q5_0,
        DType::Q5_0,
        DType::Q8_0,
        DType::Q4_1,
        DType::Q5_0,
        DType::Q4_1,
        DType::Q8_0,
    ],
    [
        DType::F16,
        DType::F32,
        DType::BF16,
        DType::F16,
        DType::BF16,
        DType::F32,
        DType::F16,
    ],
];

/// Random `[rows, cols]` weights of `dtype`, with values of order `scale`.
fn weight(dtype: DType, rows: usize, cols: usize, seed: u64, scale: f32) -> Result<Vec<u8>> {
    if dtype.is_quantized() {
        // Random valid blocks; their values are of order 1, which RMS norm
        // keeps in range layer after layer.
        return Ok(crate::quant::random_row(dtype, rows * cols, seed));
    }
    let mut rng = super::Rng::new(seed);
    let data: Vec<f32> = (0..rows * cols).map(|_| rng.uniform() * scale).collect();
    let mut out = vec![0u8; dtype.bytes_for(rows * cols).expect("float")];
    crate::quant::quantize_row(dtype, &data, &mut out)?;
    Ok(out)
}

/// The GGUF bytes of a tiny random model.
pub fn tiny_model(spec: &TinySpec, tokenizer_from: Option<&GgufFile>) -> Result<Vec<u8>> {
    let mut w = GgufWriter::new();
    let mut arch = spec.arch.to_string();
    let mut vocab = spec.vocab;
    if let Some(src) = tokenizer_from {
        arch = src.get_str("general.architecture")?.to_string();
        vocab = src.get_array("tokenizer.ggml.tokens")?.len();
        for (k, v) in src.metadata() {
            if k.starts_with("tokenizer.") {
                w.add_metadata(k, v.clone())?;
            }
        }
    }
    let a = |k: &str| format!("{arch}.{k}");
    let head_dim = spec.n_embd / spec.n_head;
    w.add_metadata("general.architecture", Value::String(arch.clone()))?;
    w.add_metadata(
        "general.name",
        Value::String("metallic tiny random model".into()),
    )?;
    for (k, v) in [
        ("embedding_length", spec.n_embd),
        ("block_count", LAYER_TYPES.len()),
        ("feed_forward_length", spec.n_ff),
        ("context_length", 4096),
        ("attention.head_count", spec.n_head),
        ("attention.head_count_kv", spec.n_head_kv),
        ("vocab_size", vocab),
    ] {
        w.add_metadata(&a(k), Value::U32(v as u32))?;
    }
    w.add_metadata(&a("attention.layer_norm_rms_epsilon"), Value::F32(1e-6))?;
    w.add_metadata(&a("rope.freq_base"), Value::F32(10_000.0))?;

    let (e, q, kv, ff) = (
        spec.n_embd,
        spec.n_embd,
        spec.n_head_kv * head_dim,
        spec.n_ff,
    );
    let mut seed = spec.seed * 1000;
    let mut next = || {
        seed += 1;
        seed
    };
    let norm = |seed: u64, n: usize| -> Result<Vec<u8>> {
        let mut rng = super::Rng::new(seed);
        let v: Vec<f32> = (0..n).map(|_| 1.0 + 0.25 * rng.uniform()).collect();
        Ok(bytemuck::cast_slice(&v).to_vec())
    };
    w.add_tensor(
        "token_embd.weight",
        DType::Q6K,
        &[vocab, e],
        weight(DType::Q6K, vocab, e, next(), 1.0)?,
    )?;
    for (i, t) in LAYER_TYPES.iter().enumerate() {
        let n = |s: &str| format!("blk.{i}.{s}");
        w.add_tensor(&n("attn_norm.weight"), DType::F32, &[e], norm(next(), e)?)?;
        w.add_tensor(&n("ffn_norm.weight"), DType::F32, &[e], norm(next(), e)?)?;
        let mats = [
            ("attn_q.weight", q, e),
            ("attn_k.weight", kv, e),
            ("attn_v.weight", kv, e),
            ("attn_output.weight", e, q),
            ("ffn_gate.weight", ff, e),
            ("ffn_up.weight", ff, e),
            ("ffn_down.weight", e, ff),
        ];
        for (&(name, rows, cols), &dt) in mats.iter().zip(t) {
            let scale = 1.0;
            w.add_tensor(
                &n(name),
                dt,
                &[rows, cols],
                weight(dt, rows, cols, next(), scale)?,
            )?;
        }
        if arch == "qwen2" {
            for (name, len) in [("attn_q.bias", q), ("attn_k.bias", kv), ("attn_v.bias", kv)] {
                w.add_tensor(
                    &n(name),
                    DType::F32,
                    &[len],
                    weight(DType::F32, 1, len, next(), 0.5)?,
                )?;
            }
        }
    }
    w.add_tensor("output_norm.weight", DType::F32, &[e], norm(next(), e)?)?;
    Ok(w.to_bytes())
}
