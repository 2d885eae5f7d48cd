//! Everything that can be wrong with a GGUF file, one variant per class, each
//! naming where in the file (byte offset) and what (key, tensor) it concerns.

use crate::tensor::DType;

#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be opened or mapped. The I/O error is part of the
    /// message (not a `source`), so that a printed error chain says it once.
    #[error("[gguf] {path}: {error}")]
    Io { path: String, error: std::io::Error },

    #[error("[gguf] not a GGUF file: it starts with \"{}\", not \"GGUF\"", .found.escape_ascii())]
    BadMagic { found: Vec<u8> },

    #[error("[gguf] unsupported version {version} (versions 2 and 3 are supported)")]
    UnsupportedVersion { version: u32 },

    #[error("[gguf] big-endian file (version {version} byte-swapped); only little-endian GGUF is supported")]
    BigEndian { version: u32 },

    #[error("[gguf] truncated: {what} needs {need} bytes at offset {offset}, only {have} remain")]
    Truncated {
        what: String,
        offset: usize,
        need: u64,
        have: usize,
    },

    #[error("[gguf] {what} at offset {offset} claims {len} {unit}, past the end of the file ({remaining} bytes remain)")]
    LengthPastEnd {
        what: String,
        offset: usize,
        len: u64,
        unit: &'static str,
        remaining: usize,
    },

    #[error("[gguf] absurd {what} count {count}: the file can hold at most {max}")]
    AbsurdCount {
        what: &'static str,
        count: u64,
        max: u64,
    },

    #[error("[gguf] invalid UTF-8 in {what} at offset {offset}")]
    InvalidUtf8 { what: String, offset: usize },

    #[error("[gguf] unknown metadata value type {type_id} for {key:?} at offset {offset}")]
    UnknownValueType {
        key: String,
        type_id: u32,
        offset: usize,
    },

    #[error("[gguf] invalid bool byte {byte} for {key:?} at offset {offset}")]
    InvalidBool {
        key: String,
        byte: u8,
        offset: usize,
    },

    #[error("[gguf] arrays nested deeper than {max} levels in {key:?}")]
    NestingTooDeep { key: String, max: usize },

    #[error("[gguf] duplicate metadata key {key:?}")]
    DuplicateKey { key: String },

    #[error("[gguf] general.alignment is {value}: must be a u32 power of two")]
    BadAlignment { value: String },

    #[error("[gguf] tensor {tensor:?} has unknown or unsupported type id {type_id}")]
    UnknownTensorType { tensor: String, type_id: u32 },

    #[error("[gguf] tensor {tensor:?} has {n_dims} dimensions (at most {max})")]
    TooManyDims {
        tensor: String,
        n_dims: u32,
        max: usize,
    },

    #[error("[gguf] tensor {tensor:?}: dimensions {dims:?} overflow")]
    DimensionOverflow { tensor: String, dims: Vec<u64> },

    #[error("[gguf] tensor {tensor:?}: row length {row} is not a whole number of {dtype} blocks")]
    PartialBlock {
        tensor: String,
        row: u64,
        dtype: DType,
    },

    #[error("[gguf] duplicate tensor name {tensor:?}")]
    DuplicateTensor { tensor: String },

    #[error(
        "[gguf] tensor {tensor:?}: data {start}..{end} lies outside the file ({file_len} bytes)"
    )]
    DataOutOfBounds {
        tensor: String,
        start: u64,
        end: u64,
        file_len: usize,
    },

    #[error("[gguf] tensor {tensor:?}: data offset {offset} is not aligned to {alignment}")]
    Misaligned {
        tensor: String,
        offset: u64,
        alignment: u64,
    },

    #[error("[gguf] no tensor named {name:?}")]
    NoSuchTensor { name: String },

    #[error("[gguf] no metadata key {key:?}")]
    MissingKey { key: String },

    #[error("[gguf] metadata {key:?} is {found}, expected {expected}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: String,
    },

    #[error("[gguf] writer: {msg}")]
    Writer { msg: String },
}
