//! The GGUF parser: header, metadata and tensor infos from a byte slice (the
//! memory map), validated as it goes.
//!
//! Layout (GGUF spec, versions 2 and 3; all little-endian):
//! `magic "GGUF" | version u32 | n_tensors u64 | n_kv u64 | kv* | tensor_info*
//! | padding to general.alignment | tensor data`, where a kv is
//! `key: string | type u32 | value`, a string is `len u64 | bytes`, an array
//! value is `elem_type u32 | count u64 | elems`, and a tensor info is
//! `name: string | n_dims u32 | ne u64 * n_dims | ggml_type u32 | offset u64`
//! (offset from the start of the data section).
//!
//! Every count and length is checked against the bytes that remain before
//! anything is allocated for it, so a hostile file can neither make us
//! allocate more than a small multiple of its own size nor read past its end.

use std::collections::HashSet;

use super::error::GgufError;
use super::value::{Value, ValueType};
use super::TensorInfo;
use crate::tensor::DType;

pub const MAGIC: &[u8; 4] = b"GGUF";
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's GGML_MAX_DIMS.
pub const MAX_DIMS: usize = 4;
/// Nested arrays deeper than this are refused (the recursion would otherwise
/// be bounded only by the file size, and could overflow the stack).
pub const MAX_ARRAY_DEPTH: usize = 8;
/// Arrays reserve at most this many elements up front; longer ones grow as
/// their elements are actually read.
const MAX_RESERVE: usize = 1 << 16;

/// Everything in a GGUF file but the tensor data.
#[derive(Debug, Clone)]
pub struct Header {
    pub version: u32,
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// Absolute offset of the data section.
    pub data_offset: usize,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &dyn Fn() -> String) -> Result<&'a [u8], GgufError> {
        if n > self.remaining() {
            return Err(GgufError::Truncated {
                what: what(),
                offset: self.pos,
                need: n as u64,
                have: self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], GgufError> {
        Ok(self
            .take(N, what)?
            .try_into()
            .expect("take returned N bytes"))
    }

    fn u8(&mut self, what: &dyn Fn() -> String) -> Result<u8, GgufError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A length-prefixed UTF-8 string.
    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, GgufError> {
        let at = self.pos;
        let len = self.u64(what)?;
        if len > self.remaining() as u64 {
            return Err(GgufError::LengthPastEnd {
                what: what(),
                offset: at,
                len,
                unit: "bytes",
                remaining: self.remaining(),
            });
        }
        let start = self.pos;
        let bytes = self.take(len as usize, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| GgufError::InvalidUtf8 {
            what: what(),
            offset: start,
        })
    }

    fn value(&mut self, ty: ValueType, key: &str, depth: usize) -> Result<Value, GgufError> {
        let what = || format!("value of {key:?}");
        Ok(match ty {
            ValueType::U8 => Value::U8(self.u8(&what)?),
            ValueType::I8 => Value::I8(self.u8(&what)? as i8),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(&what)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(&what)?)),
            ValueType::U32 => Value::U32(self.u32(&what)?),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(&what)?)),
            ValueType::U64 => Value::U64(self.u64(&what)?),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array(&what)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(&what)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(&what)?)),
            ValueType::Bool => {
                let at = self.pos;
                match self.u8(&what)? {
                    0 => Value::Bool(false),
                    1 => Value::Bool(true),
                    byte => {
                        return Err(GgufError::InvalidBool {
                            key: key.into(),
                            byte,
                            offset: at,
                        })
                    }
                }
            }
            ValueType::String => Value::String(self.string(&what)?),
            ValueType::Array => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(GgufError::NestingTooDeep {
                        key: key.into(),
                        max: MAX_ARRAY_DEPTH,
                    });
                }
                let at = self.pos;
                let elem = self.value_type(key)?;
                let count = self.u64(&what)?;
                let fits = self.remaining() as u64 / elem.min_size() as u64;
                if count > fits {
                    return Err(GgufError::LengthPastEnd {
                        what: format!("array {key:?}"),
                        offset: at,
                        len: count,
                        unit: "elements",
                        remaining: self.remaining(),
                    });
                }
                let mut items = Vec::with_capacity((count as usize).min(MAX_RESERVE));
                for _ in 0..count {
                    items.push(self.value(elem, key, depth + 1)?);
                }
                Value::Array(items)
            }
        })
    }

    fn value_type(&mut self, key: &str) -> Result<ValueType, GgufError> {
        let at = self.pos;
        let id = self.u32(&|| format!("value type of {key:?}"))?;
        ValueType::from_id(id).ok_or_else(|| GgufError::UnknownValueType {
            key: key.into(),
            type_id: id,
            offset: at,
        })
    }
}

/// Checks that `count` records of at least `min_size` bytes fit in what
/// remains: the bound on every loop and allocation driven by a count.
fn check_count(
    what: &'static str,
    count: u64,
    min_size: usize,
    remaining: usize,
) -> Result<usize, GgufError> {
    let max = (remaining / min_size) as u64;
    if count > max {
        return Err(GgufError::AbsurdCount { what, count, max });
    }
    Ok(count as usize)
}

/// Smallest encodings: a kv is an empty key, a type and a one-byte value; a
/// tensor info is an empty name, n_dims = 0, a type and an offset.
const MIN_KV_SIZE: usize = 8 + 4 + 1;
const MIN_TENSOR_INFO_SIZE: usize = 8 + 4 + 4 + 8;

pub fn parse(buf: &[u8]) -> Result<Header, GgufError> {
    let mut c = Cursor { buf, pos: 0 };
    let magic = c.take(4, &|| "magic".into()).map_err(|e| match e {
        GgufError::Truncated { .. } => GgufError::BadMagic {
            found: buf.to_vec(),
        },
        e => e,
    })?;
    if magic != MAGIC {
        return Err(GgufError::BadMagic {
            found: magic.to_vec(),
        });
    }
    let version = c.u32(&|| "version".into())?;
    match version {
        2 | 3 => {}
        // The magic is always written little-endian; a big-endian writer
        // byte-swaps the version, so its low 16 bits read as zero here.
        v if v != 0 && v & 0xFFFF == 0 => {
            return Err(GgufError::BigEndian {
                version: v.swap_bytes(),
            })
        }
        v => return Err(GgufError::UnsupportedVersion { version: v }),
    }
    let n_tensors = c.u64(&|| "tensor count".into())?;
    let n_kv = c.u64(&|| "metadata count".into())?;
    let n_kv = check_count("metadata key", n_kv, MIN_KV_SIZE, c.remaining())?;
    // Tensor infos follow the kvs; at least the kvs' minimum must remain.
    let after_kv = c.remaining().saturating_sub(n_kv * MIN_KV_SIZE);
    let n_tensors = check_count("tensor", n_tensors, MIN_TENSOR_INFO_SIZE, after_kv)?;

    let mut metadata = Vec::with_capacity(n_kv);
    let mut keys = HashSet::with_capacity(n_kv);
    for i in 0..n_kv {
        let key = c.string(&|| format!("metadata key #{i}"))?;
        let ty = c.value_type(&key)?;
        let value = c.value(ty, &key, 0)?;
        if !keys.insert(key.clone()) {
            return Err(GgufError::DuplicateKey { key });
        }
        metadata.push((key, value));
    }

    let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some((_, Value::U32(a))) if a.is_power_of_two() => *a as u64,
        Some((_, v)) => {
            return Err(GgufError::BadAlignment {
                value: format!("{v} ({})", v.type_name()),
            })
        }
    };

    let mut infos = Vec::with_capacity(n_tensors);
    for i in 0..n_tensors {
        infos.push(tensor_info(&mut c, i)?);
    }
    let header_end = c.pos as u64;
    let data_offset = header_end.div_ceil(alignment) * alignment;

    let mut names = HashSet::with_capacity(n_tensors);
    let mut tensors = Vec::with_capacity(n_tensors);
    for raw in infos {
        if !names.insert(raw.name.clone()) {
            return Err(GgufError::DuplicateTensor { tensor: raw.name });
        }
        tensors.push(validate_tensor(raw, alignment, data_offset, buf.len())?);
    }
    Ok(Header {
        version,
        metadata,
        tensors,
        alignment,
        // data_offset <= header_end + alignment - 1, which fits: both are
        // bounded by the file length (a usize) plus a u32.
        data_offset: usize::try_from(data_offset).unwrap_or(usize::MAX),
    })
}

/// A tensor info as read, before validation against the data section.
struct RawTensorInfo {
    name: String,
    ne: Vec<u64>,
    type_id: u32,
    offset: u64,
}

fn tensor_info(c: &mut Cursor, i: usize) -> Result<RawTensorInfo, GgufError> {
    let name = c.string(&|| format!("name of tensor #{i}"))?;
    let what = || format!("tensor {name:?}");
    let n_dims = c.u32(&what)?;
    if n_dims as usize > MAX_DIMS {
        return Err(GgufError::TooManyDims {
            tensor: name,
            n_dims,
            max: MAX_DIMS,
        });
    }
    let mut ne = Vec::with_capacity(n_dims as usize);
    for _ in 0..n_dims {
        ne.push(c.u64(&what)?);
    }
    let type_id = c.u32(&what)?;
    let offset = c.u64(&what)?;
    Ok(RawTensorInfo {
        name,
        ne,
        type_id,
        offset,
    })
}

fn validate_tensor(
    raw: RawTensorInfo,
    alignment: u64,
    data_offset: u64,
    file_len: usize,
) -> Result<TensorInfo, GgufError> {
    let RawTensorInfo {
        name,
        ne,
        type_id,
        offset,
    } = raw;
    let Some(dtype) = DType::from_ggml_id(type_id) else {
        return Err(GgufError::UnknownTensorType {
            tensor: name,
            type_id,
        });
    };
    // ggml stores dims as int64: anything above i64::MAX is as invalid as an
    // overflowing product.
    let overflow = || GgufError::DimensionOverflow {
        tensor: name.clone(),
        dims: ne.clone(),
    };
    let mut n: u64 = 1;
    for &d in &ne {
        if d > i64::MAX as u64 {
            return Err(overflow());
        }
        n = n.checked_mul(d).ok_or_else(overflow)?;
    }
    let n = usize::try_from(n).map_err(|_| overflow())?;
    let row = ne.first().copied().unwrap_or(1);
    if row % dtype.block_elems() as u64 != 0 {
        return Err(GgufError::PartialBlock {
            tensor: name,
            row,
            dtype,
        });
    }
    let size = dtype.bytes_for(n).ok_or_else(overflow)?;
    if offset % alignment != 0 {
        return Err(GgufError::Misaligned {
            tensor: name,
            offset,
            alignment,
        });
    }
    let start = data_offset.checked_add(offset);
    let end = start.and_then(|s| s.checked_add(size as u64));
    match (start, end) {
        (Some(start), Some(end)) if end <= file_len as u64 => {
            // Kernels view the data as f16/f32/blocks in place: the absolute
            // offset must suit the element type even where general.alignment
            // is smaller (the map itself is page-aligned).
            let natural = natural_alignment(dtype);
            if start % natural != 0 {
                return Err(GgufError::Misaligned {
                    tensor: name,
                    offset: start,
                    alignment: natural,
                });
            }
        }
        _ => {
            return Err(GgufError::DataOutOfBounds {
                tensor: name,
                start: start.unwrap_or(u64::MAX),
                end: end.unwrap_or(u64::MAX),
                file_len,
            })
        }
    }
    Ok(TensorInfo {
        name,
        dtype,
        shape: ne.iter().rev().map(|&d| d as usize).collect(),
        offset,
        size,
    })
}

/// The alignment of the Rust type a tensor's data is viewed as.
fn natural_alignment(dtype: DType) -> u64 {
    match dtype {
        DType::F32 | DType::Q8K => 4,
        _ => 2,
    }
}
