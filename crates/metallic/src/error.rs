//! The library's typed errors. Every error that comes from an op names the op
//! (`[matmul] ...`) and carries the shapes and dtypes involved.

use crate::tensor::DType;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An op was given arguments it cannot work with (shapes, strides, aliasing).
    #[error("[{op}] {msg}")]
    Op { op: &'static str, msg: String },

    /// An op does not support a dtype (or a combination of dtypes).
    #[error("[{op}] unsupported dtype {dtype}: {msg}")]
    UnsupportedDType {
        op: &'static str,
        dtype: DType,
        msg: String,
    },

    /// A view was asked for that the tensor's layout cannot express.
    #[error("[{op}] {msg} (shape {shape:?}, strides {strides:?})")]
    Layout {
        op: &'static str,
        msg: String,
        shape: Vec<usize>,
        strides: Vec<usize>,
    },

    /// An op got operands on different devices, or a device that cannot run it.
    #[error("[{op}] device mismatch: {msg}")]
    Device { op: &'static str, msg: String },

    /// A memory-mapped (read-only) tensor was used as an output.
    #[error("[{op}] output tensor is read-only (memory-mapped weights)")]
    ReadOnly { op: &'static str },

    /// Device memory could not be allocated.
    #[error("out of memory on {device}: requested {requested} bytes ({context})")]
    OutOfMemory {
        device: String,
        requested: usize,
        context: String,
    },

    /// No usable CUDA driver, GPU or library (`libcuda`, `libnvrtc`, `libcublas`).
    #[error("CUDA is not available: {0}")]
    CudaUnavailable(String),

    /// A CUDA driver, cuBLAS or NVRTC call failed; names the call and the op.
    #[error("[{op}] CUDA error in {call}: {msg}")]
    Cuda {
        op: &'static str,
        call: &'static str,
        msg: String,
    },

    /// A kernel did not compile; carries NVRTC's log.
    #[error("[cuda] kernel {kernel} failed to compile for {arch}:\n{log}")]
    KernelCompile {
        kernel: String,
        arch: String,
        log: String,
    },

    /// Model metadata or a weight is missing or invalid; names the key.
    #[error("[model] {key}: {msg}")]
    Metadata { key: String, msg: String },

    #[error("[model] unsupported architecture {0:?} (supported: qwen2, llama)")]
    UnsupportedArch(String),

    /// The prompt (plus what is already in the cache) does not fit the context.
    #[error("[model] {need} positions do not fit the context of {ctx} (use a larger --ctx or a shorter prompt)")]
    ContextOverflow { need: usize, ctx: usize },

    /// A tokenizer could not be built from its vocabulary (names the GGUF key) or
    /// could not encode its input.
    #[error("[tokenizer] {0}")]
    Tokenizer(String),

    /// A chat template failed to compile or render.
    #[error("[chat template] {0}")]
    Template(String),

    /// Sampling parameters out of range.
    #[error("[sampling] {0}")]
    Sampling(String),

    /// A GGUF file is malformed, or lacks a key or tensor that was asked for.
    #[error(transparent)]
    Gguf(#[from] crate::gguf::GgufError),

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn op(op: &'static str, msg: impl Into<String>) -> Error {
        Error::Op {
            op,
            msg: msg.into(),
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Returns `Err(Error::Op{..})` from the enclosing function: `bail!("matmul", "k mismatch {}", k)`.
#[macro_export]
macro_rules! bail {
    ($op:expr, $($fmt:tt)+) => {
        return Err($crate::Error::op($op, format!($($fmt)+)))
    };
}
