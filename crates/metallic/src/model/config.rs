//! Hyper-parameters from GGUF metadata (`{arch}.*` keys, GGUF spec "LLM").

use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use crate::ops::rope::RopeMode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Qwen2,
    Llama,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::Qwen2 => "qwen2",
            Arch::Llama => "llama",
        }
    }

    /// llama.cpp's rope type per architecture: Qwen2 rotates the halves of a
    /// head (NeoX), Llama rotates adjacent pairs (its GGUF converter permutes
    /// Q/K rows to match).
    pub fn rope_mode(self) -> RopeMode {
        match self {
            Arch::Qwen2 => RopeMode::Neox,
            Arch::Llama => RopeMode::Interleaved,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub arch: Arch,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub vocab: usize,
    /// The context length the model was trained with.
    pub ctx_train: usize,
    pub rope_base: f32,
    pub rope_dims: usize,
    pub rms_eps: f32,
}

fn meta_err(key: &str, msg: impl Into<String>) -> Error {
    Error::Metadata {
        key: key.to_string(),
        msg: msg.into(),
    }
}

fn required_u32(f: &GgufFile, key: &str) -> Result<usize> {
    match f.get_u32(key)? {
        0 => Err(meta_err(key, "must be positive")),
        v => Ok(v as usize),
    }
}

fn optional_u32(f: &GgufFile, key: &str) -> Result<Option<usize>> {
    Ok(f.opt(key, GgufFile::get_u32)?.map(|v| v as usize))
}

impl ModelConfig {
    pub fn from_gguf(f: &GgufFile) -> Result<ModelConfig> {
        let arch_name = f.get_str("general.architecture")?;
        let arch = match arch_name {
            "qwen2" => Arch::Qwen2,
            "llama" => Arch::Llama,
            other => return Err(Error::UnsupportedArch(other.to_string())),
        };
        let a = arch.name();
        let key = |k: &str| format!("{a}.{k}");
        let n_embd = required_u32(f, &key("embedding_length"))?;
        let n_head = required_u32(f, &key("attention.head_count"))?;
        let n_head_kv = optional_u32(f, &key("attention.head_count_kv"))?.unwrap_or(n_head);
        if n_head_kv == 0 || n_head % n_head_kv != 0 {
            return Err(meta_err(
                &key("attention.head_count_kv"),
                format!("{n_head_kv} does not divide head_count {n_head}"),
            ));
        }
        let head_dim = match optional_u32(f, &key("attention.key_length"))? {
            Some(v) => v,
            None if n_embd % n_head == 0 => n_embd / n_head,
            None => {
                return Err(meta_err(
                    &key("attention.head_count"),
                    format!("{n_head} does not divide embedding_length {n_embd}"),
                ))
            }
        };
        let rope_dims = optional_u32(f, &key("rope.dimension_count"))?.unwrap_or(head_dim);
        if rope_dims > head_dim || rope_dims % 2 != 0 {
            return Err(meta_err(
                &key("rope.dimension_count"),
                format!("{rope_dims} must be even and at most head_dim {head_dim}"),
            ));
        }
        let vocab = match optional_u32(f, &key("vocab_size"))? {
            Some(v) => v,
            None => f.get_array("tokenizer.ggml.tokens")?.len(),
        };
        let rms_eps = f.get_f32(&key("attention.layer_norm_rms_epsilon"))?;
        let rope_base = f
            .opt(&key("rope.freq_base"), GgufFile::get_f32)?
            .unwrap_or(10_000.0);
        let eps_ok = rms_eps.is_finite() && rms_eps >= 0.0;
        let base_ok = rope_base.is_finite() && rope_base > 0.0;
        if !eps_ok || !base_ok {
            return Err(meta_err(
                &key("rope.freq_base"),
                "rms epsilon or rope base out of range",
            ));
        }
        Ok(ModelConfig {
            arch,
            n_layer: required_u32(f, &key("block_count"))?,
            n_embd,
            n_head,
            n_head_kv,
            head_dim,
            n_ff: required_u32(f, &key("feed_forward_length"))?,
            vocab,
            ctx_train: required_u32(f, &key("context_length"))?,
            rope_base,
            rope_dims,
            rms_eps,
        })
    }
}
