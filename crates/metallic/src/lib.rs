//! metallic: a Rust engine for large language models (Qwen2.5, Llama) from GGUF
//! files, on its own kernels.
//!
//! Layers, bottom up: [`tensor`] (dtypes, layouts, views), [`ops`] (one module
//! per op family with its scalar reference; [`ops::matmul`] is the heart),
//! backends ([`cpu`]), [`gguf`] (the file format) and [`quant`] (its block
//! formats), and the op-test harness ([`optest`]) that checks every backend
//! against the references.

pub mod chat;
pub mod cpu;
pub mod cuda;
pub mod device;
pub mod error;
pub mod generate;
pub mod gguf;
pub mod model;
pub mod ops;
pub mod optest;
pub mod perplexity;
pub mod quant;
pub mod sampling;
pub mod tensor;
pub mod tokenizer;

pub use device::Device;
pub use error::{Error, Result};
pub use tensor::{DType, Layout, Tensor};
