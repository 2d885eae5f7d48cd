//! One generic decoder for the `qwen2` and `llama` architectures, configured
//! from GGUF metadata, running every step through the op layer.

mod config;
mod decoder;
mod kv_cache;
mod weights;

pub use config::{Arch, ModelConfig};
pub use decoder::{Logits, Model, ModelOptions, State};
pub use kv_cache::KvCache;
pub use weights::{LayerWeights, Weights};
