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
