//! GGUF files: a validating reader over a memory map with zero-copy tensor
//! views, typed metadata access, and a small writer.
//!
//! ```no_run
//! # fn main() -> Result<(), metallic::gguf::GgufError> {
//! let file = metallic::gguf::GgufFile::open("model.gguf".as_ref())?;
//! let arch = file.get_str("general.architecture")?;
//! let layers = file.get_u32(&format!("{arch}.block_count"))?;
//! let emb = file.tensor("token_embd.weight")?; // maps, never copies
//! # let _ = (layers, emb); Ok(()) }
//! ```
//!
//! Shapes are in our order (outermost first): a GGUF tensor with
//! `ne = [ne0, ne1]` (ne0 the row length) has shape `[ne1, ne0]`.

mod error;
mod reader;
mod value;
mod writer;

#[cfg(test)]
mod mutation_tests;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

pub use error::GgufError;
pub use reader::{DEFAULT_ALIGNMENT, MAX_ARRAY_DEPTH, MAX_DIMS};
pub use value::{Value, ValueType};
pub use writer::GgufWriter;

use crate::tensor::{DType, HostBytes, Tensor};

/// One tensor's entry in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: DType,
    /// Our order: outermost first, the row (GGUF's ne0) last.
    pub shape: Vec<usize>,
    /// Offset of the data from the start of the data section, as stored.
    pub offset: u64,
    /// Bytes of data.
    pub size: usize,
}

impl TensorInfo {
    pub fn elem_count(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Where the file's bytes live: a read-only map, or memory (tests, fuzzing).
enum Backing {
    Mapped(Arc<memmap2::Mmap>),
    Owned(Vec<u8>),
}

/// A parsed, validated GGUF file.
pub struct GgufFile {
    backing: Backing,
    header: reader::Header,
    keys: HashMap<String, usize>,
    names: HashMap<String, usize>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GgufFile(v{}, {} keys, {} tensors)",
            self.header.version,
            self.header.metadata.len(),
            self.header.tensors.len()
        )
    }
}

impl GgufFile {
    /// Maps and validates a file. The map is read-only and shared by every
    /// tensor taken from it; the file must not be modified while it is open
    /// (as with any memory map).
    pub fn open(path: &Path) -> Result<GgufFile, GgufError> {
        let io = |error| GgufError::Io {
            path: path.display().to_string(),
            error,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len == 0 {
            return Err(GgufError::BadMagic { found: Vec::new() });
        }
        // SAFETY: the map is only ever read; the file must not be truncated
        // or rewritten while mapped, which we document above (llama.cpp and
        // candle make the same assumption).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        let header = reader::parse(&map)?;
        Ok(GgufFile::from_parts(Backing::Mapped(Arc::new(map)), header))
    }

    /// Parses a file held in memory (tests, fuzzing). Tensors taken from it
    /// are copies.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
        let header = reader::parse(&bytes)?;
        Ok(GgufFile::from_parts(Backing::Owned(bytes), header))
    }

    fn from_parts(backing: Backing, header: reader::Header) -> GgufFile {
        let keys = header
            .metadata
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.clone(), i))
            .collect();
        let names = header
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        GgufFile {
            backing,
            header,
            keys,
            names,
        }
    }

    pub fn version(&self) -> u32 {
        self.header.version
    }

    /// `general.alignment`, or the default of 32.
    pub fn alignment(&self) -> u64 {
        self.header.alignment
    }

    /// Absolute offset of the data section in the file.
    pub fn data_offset(&self) -> usize {
        self.header.data_offset
    }

    /// Every metadata key and value, in file order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.header.metadata
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.keys.get(key).map(|&i| &self.header.metadata[i].1)
    }

    fn require(&self, key: &str) -> Result<&Value, GgufError> {
        self.get(key)
            .ok_or_else(|| GgufError::MissingKey { key: key.into() })
    }

    fn wrong(key: &str, expected: &'static str, found: &Value) -> GgufError {
        GgufError::WrongType {
            key: key.into(),
            expected,
            found: found.type_name(),
        }
    }

    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        let v = self.require(key)?;
        v.as_str().ok_or_else(|| Self::wrong(key, "string", v))
    }

    /// Any integer type whose value fits a u32.
    pub fn get_u32(&self, key: &str) -> Result<u32, GgufError> {
        let v = self.require(key)?;
        v.as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .ok_or_else(|| Self::wrong(key, "an integer in u32 range", v))
    }

    /// Any integer type whose value is not negative.
    pub fn get_u64(&self, key: &str) -> Result<u64, GgufError> {
        let v = self.require(key)?;
        v.as_u64()
            .ok_or_else(|| Self::wrong(key, "a non-negative integer", v))
    }

    /// f32 or f64 (narrowed).
    pub fn get_f32(&self, key: &str) -> Result<f32, GgufError> {
        let v = self.require(key)?;
        match *v {
            Value::F32(x) => Ok(x),
            Value::F64(x) => Ok(x as f32),
            _ => Err(Self::wrong(key, "f32 or f64", v)),
        }
    }

    pub fn get_bool(&self, key: &str) -> Result<bool, GgufError> {
        let v = self.require(key)?;
        v.as_bool().ok_or_else(|| Self::wrong(key, "bool", v))
    }

    pub fn get_array(&self, key: &str) -> Result<&[Value], GgufError> {
        let v = self.require(key)?;
        v.as_array().ok_or_else(|| Self::wrong(key, "array", v))
    }

    pub fn get_string_array(&self, key: &str) -> Result<Vec<&str>, GgufError> {
        let v = self.require(key)?;
        let items = v
            .as_array()
            .ok_or_else(|| Self::wrong(key, "array of string", v))?;
        items
            .iter()
            .map(|s| {
                s.as_str()
                    .ok_or_else(|| Self::wrong(key, "array of string", v))
            })
            .collect()
    }

    /// `Ok(None)` when the key is absent, an error when it has another type:
    /// `file.opt(key, GgufFile::get_f32)`.
    pub fn opt<'a, T>(
        &'a self,
        key: &str,
        get: impl FnOnce(&'a GgufFile, &str) -> Result<T, GgufError>,
    ) -> Result<Option<T>, GgufError> {
        if self.get(key).is_none() {
            return Ok(None);
        }
        get(self, key).map(Some)
    }

    pub fn tensors(&self) -> &[TensorInfo] {
        &self.header.tensors
    }

    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.names.get(name).map(|&i| &self.header.tensors[i])
    }

    /// The bytes of a tensor's data (validated to lie inside the file).
    pub fn tensor_bytes(&self, info: &TensorInfo) -> &[u8] {
        let start = self.header.data_offset + info.offset as usize;
        let all: &[u8] = match &self.backing {
            Backing::Mapped(m) => m,
            Backing::Owned(v) => v,
        };
        &all[start..start + info.size]
    }

    /// A tensor over the file's bytes: a zero-copy view of the map for an
    /// opened file (read-only: using it as an op's output is an error).
    pub fn tensor(&self, name: &str) -> Result<Tensor, GgufError> {
        let info = self
            .tensor_info(name)
            .ok_or_else(|| GgufError::NoSuchTensor { name: name.into() })?;
        let start = self.header.data_offset + info.offset as usize;
        let bytes = match &self.backing {
            Backing::Mapped(m) => HostBytes::mapped(m.clone(), start..start + info.size),
            Backing::Owned(v) => Some(HostBytes::from_bytes(&v[start..start + info.size])),
        };
        let out_of_bounds = || GgufError::DataOutOfBounds {
            tensor: name.into(),
            start: start as u64,
            end: (start + info.size) as u64,
            file_len: self.file_len(),
        };
        let bytes = bytes.ok_or_else(out_of_bounds)?;
        // Validation at open guarantees whole blocks and a matching size.
        Tensor::from_raw(bytes, &info.shape, info.dtype).map_err(|_| out_of_bounds())
    }

    pub fn file_len(&self) -> usize {
        match &self.backing {
            Backing::Mapped(m) => m.len(),
            Backing::Owned(v) => v.len(),
        }
    }
}
