//! A small GGUF writer (version 3 by default): metadata in insertion order,
//! tensors laid out in insertion order, each at a multiple of the alignment.
//! Used by tests to build files, and to write converted models.

use std::path::Path;

use super::error::GgufError;
use super::reader::{DEFAULT_ALIGNMENT, MAGIC, MAX_DIMS};
use super::value::{Value, ValueType};
use crate::tensor::DType;

struct PendingTensor {
    name: String,
    dtype: DType,
    /// ggml order: ne[0] is the row length.
    ne: Vec<u64>,
    data: Vec<u8>,
}

pub struct GgufWriter {
    version: u32,
    alignment: u64,
    metadata: Vec<(String, Value)>,
    tensors: Vec<PendingTensor>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        GgufWriter::new()
    }
}

fn err(msg: String) -> GgufError {
    GgufError::Writer { msg }
}

impl GgufWriter {
    pub fn new() -> GgufWriter {
        GgufWriter {
            version: 3,
            alignment: DEFAULT_ALIGNMENT,
            metadata: Vec::new(),
            tensors: Vec::new(),
        }
    }

    /// Versions 2 and 3 share one encoding (64-bit counts and lengths).
    pub fn set_version(&mut self, version: u32) -> Result<&mut Self, GgufError> {
        if !(2..=3).contains(&version) {
            return Err(err(format!("cannot write version {version}")));
        }
        self.version = version;
        Ok(self)
    }

    /// Sets the alignment and records it as `general.alignment`.
    pub fn set_alignment(&mut self, alignment: u32) -> Result<&mut Self, GgufError> {
        if !alignment.is_power_of_two() {
            return Err(err(format!("alignment {alignment} is not a power of two")));
        }
        self.alignment = alignment as u64;
        self.metadata.retain(|(k, _)| k != "general.alignment");
        self.metadata
            .push(("general.alignment".into(), Value::U32(alignment)));
        Ok(self)
    }

    pub fn add_metadata(&mut self, key: &str, value: Value) -> Result<&mut Self, GgufError> {
        if key == "general.alignment" {
            return match value {
                Value::U32(a) => self.set_alignment(a),
                v => Err(err(format!(
                    "general.alignment must be a u32, got {}",
                    v.type_name()
                ))),
            };
        }
        if self.metadata.iter().any(|(k, _)| k == key) {
            return Err(err(format!("duplicate metadata key {key:?}")));
        }
        check_homogeneous(key, &value)?;
        self.metadata.push((key.into(), value));
        Ok(self)
    }

    /// Adds a tensor of `shape` in our order (outermost first; the last
    /// dimension is the row), with its raw bytes.
    pub fn add_tensor(
        &mut self,
        name: &str,
        dtype: DType,
        shape: &[usize],
        data: Vec<u8>,
    ) -> Result<&mut Self, GgufError> {
        if shape.len() > MAX_DIMS {
            return Err(err(format!(
                "tensor {name:?}: more than {MAX_DIMS} dimensions"
            )));
        }
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(err(format!("duplicate tensor name {name:?}")));
        }
        if shape.last().is_some_and(|&r| r % dtype.block_elems() != 0) {
            return Err(err(format!(
                "tensor {name:?}: rows of {shape:?} are not whole {dtype} blocks"
            )));
        }
        let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if n.and_then(|n| dtype.bytes_for(n)) != Some(data.len()) {
            return Err(err(format!(
                "tensor {name:?}: {} bytes do not hold {dtype} {shape:?}",
                data.len()
            )));
        }
        self.tensors.push(PendingTensor {
            name: name.into(),
            dtype,
            ne: shape.iter().rev().map(|&d| d as u64).collect(),
            data,
        });
        Ok(self)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            put_string(&mut out, key);
            out.extend_from_slice(&(value.value_type() as u32).to_le_bytes());
            put_value(&mut out, value);
        }
        let mut offset = 0u64;
        let mut offsets = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            offset = offset.div_ceil(self.alignment) * self.alignment;
            offsets.push(offset);
            put_string(&mut out, &t.name);
            out.extend_from_slice(&(t.ne.len() as u32).to_le_bytes());
            for d in &t.ne {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.dtype.ggml_id().to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            offset += t.data.len() as u64;
        }
        let data_start = (out.len() as u64).div_ceil(self.alignment) * self.alignment;
        for (t, off) in self.tensors.iter().zip(offsets) {
            out.resize((data_start + off) as usize, 0);
            out.extend_from_slice(&t.data);
        }
        if !self.tensors.is_empty() {
            let end = (out.len() as u64).div_ceil(self.alignment) * self.alignment;
            out.resize(end as usize, 0);
        }
        out
    }

    pub fn write_to_file(&self, path: &Path) -> Result<(), GgufError> {
        std::fs::write(path, self.to_bytes()).map_err(|error| GgufError::Io {
            path: path.display().to_string(),
            error,
        })
    }
}

fn check_homogeneous(key: &str, value: &Value) -> Result<(), GgufError> {
    if let Value::Array(items) = value {
        if let Some(first) = items.first() {
            let ty = first.value_type();
            if items.iter().any(|v| v.value_type() != ty) {
                return Err(err(format!("array {key:?} mixes element types")));
            }
        }
        for v in items {
            check_homogeneous(key, v)?;
        }
    }
    Ok(())
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::U8(v) => out.push(*v),
        Value::I8(v) => out.push(*v as u8),
        Value::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::Bool(v) => out.push(*v as u8),
        Value::String(s) => put_string(out, s),
        Value::Array(items) => {
            // An empty array keeps no element type; u8 is as good as any.
            let elem = items.first().map_or(ValueType::U8, Value::value_type);
            out.extend_from_slice(&(elem as u32).to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for v in items {
                put_value(out, v);
            }
        }
    }
}
