//! Round trips through the writer and the reader, typed getters, and one
//! crafted file per class of malformation, each expecting its error variant.

use super::*;
use crate::quant::{dequantize_row, random_row};

/// A unique path in the temp dir, removed on drop.
pub(super) struct TempPath(pub std::path::PathBuf);

impl TempPath {
    pub fn new(tag: &str) -> TempPath {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        TempPath(
            std::env::temp_dir().join(format!("metallic-{tag}-{}-{n}.gguf", std::process::id())),
        )
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn every_value_type() -> Vec<(&'static str, Value)> {
    vec![
        ("t.u8", Value::U8(200)),
        ("t.i8", Value::I8(-100)),
        ("t.u16", Value::U16(60000)),
        ("t.i16", Value::I16(-30000)),
        ("t.u32", Value::U32(4_000_000_000)),
        ("t.i32", Value::I32(-2_000_000_000)),
        ("t.u64", Value::U64(u64::MAX)),
        ("t.i64", Value::I64(i64::MIN)),
        ("t.f32", Value::F32(1.5e-3)),
        ("t.f64", Value::F64(-2.25e100)),
        ("t.bool", Value::Bool(true)),
        ("t.string", Value::String("héllo, wörld".into())),
        (
            "t.strings",
            Value::Array(vec![
                Value::String("a".into()),
                Value::String(String::new()),
                Value::String("ccc".into()),
            ]),
        ),
        (
            "t.nested",
            Value::Array(vec![
                Value::Array(vec![Value::I32(1), Value::I32(2)]),
                Value::Array(vec![Value::I32(3)]),
            ]),
        ),
        ("t.empty", Value::Array(vec![])),
        (
            "t.f32s",
            Value::Array(vec![Value::F32(0.5), Value::F32(-1.0)]),
        ),
    ]
}

/// A small valid file: every value type, and tensors of four formats.
pub(super) fn sample_writer(alignment: u32) -> GgufWriter {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", Value::String("test".into()))
        .unwrap();
    if alignment != DEFAULT_ALIGNMENT as u32 {
        w.set_alignment(alignment).unwrap();
    }
    for (k, v) in every_value_type() {
        w.add_metadata(k, v).unwrap();
    }
    w.add_tensor("a.f32", DType::F32, &[3, 5], random_row(DType::F32, 15, 1))
        .unwrap();
    w.add_tensor("b.f16", DType::F16, &[7], random_row(DType::F16, 7, 2))
        .unwrap();
    w.add_tensor(
        "c.q4_0",
        DType::Q4_0,
        &[2, 64],
        random_row(DType::Q4_0, 128, 3),
    )
    .unwrap();
    w.add_tensor(
        "d.q4_k",
        DType::Q4K,
        &[2, 1, 256],
        random_row(DType::Q4K, 512, 4),
    )
    .unwrap();
    w
}

#[test]
fn writer_and_reader_round_trip_every_value_type_and_tensor() {
    for (version, alignment) in [(3, 32), (2, 64), (3, 1024)] {
        let mut w = sample_writer(alignment);
        w.set_version(version).unwrap();
        let path = TempPath::new("roundtrip");
        w.write_to_file(&path.0).unwrap();
        let f = GgufFile::open(&path.0).unwrap();
        assert_eq!(f.version(), version);
        assert_eq!(f.alignment(), alignment as u64);
        assert_eq!(f.data_offset() % alignment as usize, 0);
        // Metadata comes back in file order, values intact.
        let keys: Vec<&str> = f.metadata().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys[0], "general.architecture");
        for (k, v) in every_value_type() {
            assert_eq!(f.get(k), Some(&v), "{k}");
        }
        let infos = f.tensors();
        assert_eq!(infos.len(), 4);
        assert_eq!(infos[3].shape, vec![2, 1, 256]);
        assert_eq!(infos[3].dtype, DType::Q4K);
        for (info, (dtype, n, seed)) in infos.iter().zip([
            (DType::F32, 15, 1),
            (DType::F16, 7, 2),
            (DType::Q4_0, 128, 3),
            (DType::Q4K, 512, 4),
        ]) {
            assert_eq!(info.offset % alignment as u64, 0, "{}", info.name);
            let bytes = random_row(dtype, n, seed);
            assert_eq!(f.tensor_bytes(info), &bytes[..]);
            let t = f.tensor(&info.name).unwrap();
            assert_eq!(t.shape(), &info.shape[..]);
            assert!(
                t.cpu_storage("test").unwrap().read().is_mapped(),
                "zero-copy"
            );
            let mut want = vec![0.0; n];
            dequantize_row(dtype, &bytes, &mut want).unwrap();
            assert_eq!(t.to_vec_f32().unwrap(), want, "{}", info.name);
        }
        // The in-memory parse agrees with the mapped one.
        let g = GgufFile::from_bytes(w.to_bytes()).unwrap();
        assert_eq!(g.tensors(), f.tensors());
        assert_eq!(g.metadata(), f.metadata());
    }
}

#[test]
fn typed_getters_accept_compatible_types_and_name_the_key_otherwise() {
    let f = GgufFile::from_bytes(sample_writer(32).to_bytes()).unwrap();
    assert_eq!(f.get_str("general.architecture").unwrap(), "test");
    assert_eq!(f.get_u32("t.u8").unwrap(), 200);
    assert_eq!(f.get_u32("t.u32").unwrap(), 4_000_000_000);
    assert_eq!(f.get_u64("t.u64").unwrap(), u64::MAX);
    assert_eq!(f.get_f32("t.f64").unwrap(), -2.25e100f64 as f32);
    assert_eq!(f.get_f32("t.f32").unwrap(), 1.5e-3);
    assert!(f.get_bool("t.bool").unwrap());
    assert_eq!(
        f.get_string_array("t.strings").unwrap(),
        vec!["a", "", "ccc"]
    );
    assert_eq!(f.get_array("t.nested").unwrap().len(), 2);
    assert_eq!(f.opt("t.missing", GgufFile::get_u32).unwrap(), None);
    assert_eq!(f.opt("t.u16", GgufFile::get_u32).unwrap(), Some(60000));
    for (key, result) in [
        ("t.i8", f.get_u32("t.i8").map(|_| ())),
        ("t.u64", f.get_u32("t.u64").map(|_| ())),
        ("t.string", f.get_f32("t.string").map(|_| ())),
        ("t.f32s", f.get_string_array("t.f32s").map(|_| ())),
        ("t.u8", f.get_str("t.u8").map(|_| ())),
    ] {
        match result {
            Err(GgufError::WrongType { key: k, .. }) => assert_eq!(k, key),
            other => panic!("{key}: expected WrongType, got {other:?}"),
        }
    }
    assert!(matches!(
        f.get_str("nope"),
        Err(GgufError::MissingKey { .. })
    ));
    assert!(matches!(
        f.tensor("nope"),
        Err(GgufError::NoSuchTensor { .. })
    ));
    let e = f.get_u32("t.i8").unwrap_err().to_string();
    assert!(e.contains("t.i8") && e.contains("i8"), "{e}");
}

#[test]
fn value_summary_shortens_long_arrays() {
    let v = Value::Array((0..100).map(Value::I32).collect());
    assert_eq!(v.summary(3), "[100 items: 0, 1, 2, ...]");
    assert_eq!(Value::Array(vec![Value::U8(1)]).summary(3), "[1]");
    assert_eq!(Value::String("x".into()).summary(3), "\"x\"");
}

#[test]
fn writer_refuses_inconsistent_input() {
    let mut w = GgufWriter::new();
    assert!(w
        .add_metadata("k", Value::Array(vec![Value::U8(1), Value::I8(1)]))
        .is_err());
    assert!(w
        .add_tensor("t", DType::Q4_0, &[2, 33], vec![0; 36])
        .is_err());
    assert!(w.add_tensor("t", DType::F32, &[2, 3], vec![0; 20]).is_err());
    assert!(w.set_alignment(48).is_err());
    assert!(w.set_version(1).is_err());
    w.add_metadata("k", Value::U8(1)).unwrap();
    assert!(w.add_metadata("k", Value::U8(2)).is_err());
}

/// Hand-built files, for what the writer refuses to produce.
#[derive(Default)]
struct Raw(Vec<u8>);

impl Raw {
    fn header(version: u32, n_tensors: u64, n_kv: u64) -> Raw {
        Raw::default()
            .bytes(b"GGUF")
            .u32(version)
            .u64(n_tensors)
            .u64(n_kv)
    }
    fn bytes(mut self, b: &[u8]) -> Raw {
        self.0.extend_from_slice(b);
        self
    }
    fn u32(self, v: u32) -> Raw {
        self.bytes(&v.to_le_bytes())
    }
    fn u64(self, v: u64) -> Raw {
        self.bytes(&v.to_le_bytes())
    }
    fn str(self, s: &[u8]) -> Raw {
        self.u64(s.len() as u64).bytes(s)
    }
    fn kv_u32(self, key: &str, v: u32) -> Raw {
        self.str(key.as_bytes()).u32(4).u32(v)
    }
    /// A tensor info: name, dims (ggml order), type id, offset.
    fn tensor(self, name: &str, ne: &[u64], type_id: u32, offset: u64) -> Raw {
        let mut r = self.str(name.as_bytes()).u32(ne.len() as u32);
        for &d in ne {
            r = r.u64(d);
        }
        r.u32(type_id).u64(offset)
    }
    /// Zero padding up to `alignment`, then `data_len` bytes of data.
    fn data(mut self, alignment: usize, data_len: usize) -> Raw {
        let start = self.0.len().div_ceil(alignment) * alignment;
        self.0.resize(start + data_len, 0);
        self
    }
    fn parse(self) -> Result<GgufFile, GgufError> {
        GgufFile::from_bytes(self.0)
    }
}

macro_rules! assert_err {
    ($result:expr, $pat:pat) => {
        match $result {
            Err(e @ $pat) => {
                // Every error renders as one line naming the format.
                let s = e.to_string();
                assert!(s.starts_with("[gguf]") && !s.contains('\n'), "{s}");
            }
            Err(other) => panic!("expected {}, got {other:?}", stringify!($pat)),
            Ok(f) => panic!("expected {}, got a valid file {f:?}", stringify!($pat)),
        }
    };
}

#[test]
fn crafted_minimal_file_is_valid() {
    let f = Raw::header(3, 1, 1)
        .kv_u32("k", 7)
        .tensor("t", &[4, 2], DType::F32.ggml_id(), 0)
        .data(32, 32)
        .parse()
        .unwrap();
    assert_eq!(f.get_u32("k").unwrap(), 7);
    assert_eq!(f.tensors()[0].shape, vec![2, 4]);
}

#[test]
fn malformed_bad_magic() {
    assert_err!(
        Raw::default().bytes(b"GGML").u32(3).parse(),
        GgufError::BadMagic { .. }
    );
    assert_err!(
        Raw::default().bytes(b"GG").parse(),
        GgufError::BadMagic { .. }
    );
    assert_err!(GgufFile::from_bytes(Vec::new()), GgufError::BadMagic { .. });
}

#[test]
fn malformed_unsupported_version() {
    for v in [0, 1, 4, 0xFFFF] {
        assert_err!(
            Raw::header(v, 0, 0).parse(),
            GgufError::UnsupportedVersion { .. }
        );
    }
}

#[test]
fn malformed_big_endian() {
    let r = Raw::default()
        .bytes(b"GGUF")
        .bytes(&3u32.to_be_bytes())
        .bytes(&0u64.to_be_bytes())
        .bytes(&0u64.to_be_bytes());
    assert_err!(r.parse(), GgufError::BigEndian { version: 3 });
}

#[test]
fn malformed_truncation_anywhere() {
    let full = sample_writer(32).to_bytes();
    let header_end = GgufFile::from_bytes(full.clone()).unwrap().data_offset();
    for len in 0..full.len() {
        let r = GgufFile::from_bytes(full[..len].to_vec());
        match r {
            Err(GgufError::BadMagic { .. }) => assert!(len < 4),
            Err(GgufError::Truncated { .. })
            | Err(GgufError::LengthPastEnd { .. })
            | Err(GgufError::AbsurdCount { .. }) => assert!(len < header_end, "{len}"),
            Err(GgufError::DataOutOfBounds { .. }) => {}
            other => panic!("truncated to {len} of {}: {other:?}", full.len()),
        }
    }
    // A field cut short is reported as truncated, with its offset.
    let r = Raw::default().bytes(b"GGUF").bytes(&[3, 0]);
    assert_err!(r.parse(), GgufError::Truncated { offset: 4, .. });
    let r = Raw::header(3, 0, 1).str(b"key").u32(10).bytes(&[5, 0, 0]);
    assert_err!(r.parse(), GgufError::Truncated { offset: 39, .. });
}

#[test]
fn malformed_string_length_past_end() {
    let r = Raw::header(3, 0, 1).u64(1000).bytes(b"key").u32(4).u32(0);
    assert_err!(r.parse(), GgufError::LengthPastEnd { .. });
    let r = Raw::header(3, 0, 1)
        .str(b"k")
        .u32(8)
        .u64(u64::MAX)
        .bytes(b"v");
    assert_err!(r.parse(), GgufError::LengthPastEnd { .. });
    let r = Raw::header(3, 1, 0)
        .u64(1 << 40)
        .bytes(b"name")
        .u32(0)
        .u32(0)
        .u64(0);
    assert_err!(r.parse(), GgufError::LengthPastEnd { .. });
}

#[test]
fn malformed_array_length_past_end() {
    // 2^40 u32 elements claimed, 8 bytes present: refused before allocating.
    let r = Raw::header(3, 0, 1)
        .str(b"k")
        .u32(9)
        .u32(4)
        .u64(1 << 40)
        .u64(0);
    assert_err!(r.parse(), GgufError::LengthPastEnd { .. });
    // Nested: the inner array's count is checked too.
    let r = Raw::header(3, 0, 1)
        .str(b"k")
        .u32(9)
        .u32(9)
        .u64(1)
        .u32(8)
        .u64(u64::MAX / 2)
        .bytes(&[0; 16]);
    assert_err!(r.parse(), GgufError::LengthPastEnd { .. });
}

#[test]
fn malformed_absurd_counts() {
    assert_err!(
        Raw::header(3, u64::MAX, 0).parse(),
        GgufError::AbsurdCount { what: "tensor", .. }
    );
    assert_err!(
        Raw::header(3, 0, u64::MAX).parse(),
        GgufError::AbsurdCount { .. }
    );
    // Counts that fit u32 but not the file are just as absurd.
    let r = Raw::header(3, 1000, 0).bytes(&[0; 100]);
    assert_err!(r.parse(), GgufError::AbsurdCount { count: 1000, .. });
}

#[test]
fn malformed_dimension_overflow() {
    let r = Raw::header(3, 1, 0).tensor("t", &[1 << 32, 1 << 32, 1 << 2], 0, 0);
    assert_err!(r.data(32, 0).parse(), GgufError::DimensionOverflow { .. });
    let r = Raw::header(3, 1, 0).tensor("t", &[u64::MAX], 1, 0);
    assert_err!(r.data(32, 0).parse(), GgufError::DimensionOverflow { .. });
    // The element count fits but the byte size does not.
    let r = Raw::header(3, 1, 0).tensor("t", &[1 << 62, 2], 0, 0);
    assert_err!(r.data(32, 0).parse(), GgufError::DimensionOverflow { .. });
    let r = Raw::header(3, 1, 0).tensor("t", &[32, 1, 1, 1, 1], 0, 0);
    assert_err!(
        r.data(32, 0).parse(),
        GgufError::TooManyDims { n_dims: 5, .. }
    );
}

#[test]
fn malformed_tensor_data_out_of_bounds_or_misaligned() {
    let t = |offset: u64, data_len: usize| {
        Raw::header(3, 1, 0)
            .tensor("t", &[8], DType::F32.ggml_id(), offset)
            .data(32, data_len)
            .parse()
    };
    assert!(t(0, 32).is_ok());
    assert_err!(t(0, 31), GgufError::DataOutOfBounds { .. });
    assert_err!(t(32, 63), GgufError::DataOutOfBounds { .. });
    assert_err!(t(u64::MAX - 31, 64), GgufError::DataOutOfBounds { .. });
    assert_err!(t(16, 64), GgufError::Misaligned { alignment: 32, .. });
    // With general.alignment = 1 an f32 tensor still needs 4-byte data: the
    // data section starts right after the 90-byte header, so offset 1 puts it
    // at byte 91.
    let r = Raw::header(3, 1, 1)
        .kv_u32("general.alignment", 1)
        .tensor("t", &[8], DType::F32.ggml_id(), 1)
        .data(32, 64);
    assert_err!(r.parse(), GgufError::Misaligned { alignment: 4, .. });
    // A row that is not whole blocks.
    let r = Raw::header(3, 1, 0).tensor("t", &[33, 2], DType::Q4_0.ggml_id(), 0);
    assert_err!(
        r.data(32, 64).parse(),
        GgufError::PartialBlock { row: 33, .. }
    );
}

#[test]
fn malformed_bad_alignment() {
    for value in [0u32, 3, 48] {
        let r = Raw::header(3, 0, 1).kv_u32("general.alignment", value);
        assert_err!(r.parse(), GgufError::BadAlignment { .. });
    }
    let r = Raw::header(3, 0, 1)
        .str(b"general.alignment")
        .u32(10)
        .u64(32);
    assert_err!(r.parse(), GgufError::BadAlignment { .. });
}

#[test]
fn malformed_unknown_type_ids() {
    let r = Raw::header(3, 1, 0).tensor("t", &[32], 4, 0).data(32, 64);
    assert_err!(r.parse(), GgufError::UnknownTensorType { type_id: 4, .. });
    let r = Raw::header(3, 1, 0)
        .tensor("t", &[32], 9999, 0)
        .data(32, 64);
    assert_err!(
        r.parse(),
        GgufError::UnknownTensorType { type_id: 9999, .. }
    );
    let r = Raw::header(3, 0, 1).str(b"k").u32(13).u32(0);
    assert_err!(r.parse(), GgufError::UnknownValueType { type_id: 13, .. });
    let r = Raw::header(3, 0, 1).str(b"k").u32(9).u32(77).u64(0);
    assert_err!(r.parse(), GgufError::UnknownValueType { type_id: 77, .. });
}

#[test]
fn malformed_invalid_utf8_in_keys_and_names() {
    let r = Raw::header(3, 0, 1).str(b"ke\xffy").u32(4).u32(0);
    assert_err!(r.parse(), GgufError::InvalidUtf8 { .. });
    let r = Raw::header(3, 1, 0)
        .str(b"\xc3\x28")
        .u32(1)
        .u64(1)
        .u32(0)
        .u64(0);
    assert_err!(r.data(32, 32).parse(), GgufError::InvalidUtf8 { .. });
}

#[test]
fn malformed_duplicates_bools_and_deep_nesting() {
    let r = Raw::header(3, 0, 2).kv_u32("k", 1).kv_u32("k", 2);
    assert_err!(r.parse(), GgufError::DuplicateKey { .. });
    let r = Raw::header(3, 2, 0)
        .tensor("t", &[8], 0, 0)
        .tensor("t", &[8], 0, 32)
        .data(32, 64);
    assert_err!(r.parse(), GgufError::DuplicateTensor { .. });
    let r = Raw::header(3, 0, 1).str(b"k").u32(7).bytes(&[2]);
    assert_err!(r.parse(), GgufError::InvalidBool { byte: 2, .. });
    // 100 levels of arrays of one array: refused at MAX_ARRAY_DEPTH, with no
    // deep recursion.
    let mut r = Raw::header(3, 0, 1).str(b"k").u32(9);
    for _ in 0..100 {
        r = r.u32(9).u64(1);
    }
    assert_err!(r.u32(0).u64(0).parse(), GgufError::NestingTooDeep { .. });
}

#[test]
fn open_reports_io_errors_and_non_gguf_files() {
    let missing = std::path::Path::new("/nonexistent/metallic/model.gguf");
    assert_err!(GgufFile::open(missing), GgufError::Io { .. });
    let path = TempPath::new("notgguf");
    std::fs::write(&path.0, b"<html>not a model</html>").unwrap();
    assert_err!(GgufFile::open(&path.0), GgufError::BadMagic { .. });
    std::fs::write(&path.0, b"").unwrap();
    assert_err!(GgufFile::open(&path.0), GgufError::BadMagic { .. });
}

#[test]
fn gguf_errors_convert_into_the_crate_error() {
    let e: crate::Error = GgufError::MissingKey { key: "x".into() }.into();
    assert_eq!(e.to_string(), "[gguf] no metadata key \"x\"");
}

/// A file written by the `gguf` Python package's GGUFWriter (made by
/// `scripts/gen_quant_golden.py`): what the reference writer writes, we read.
#[test]
fn reads_a_file_written_by_the_gguf_python_package() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden/gguf/gguf_py_small.gguf");
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.get_str("general.architecture").unwrap(), "llama");
    assert_eq!(f.get("t.u32"), Some(&Value::U32(7)));
    assert_eq!(f.get("t.i8"), Some(&Value::I8(-3)));
    assert_eq!(f.get("t.f64"), Some(&Value::F64(2.5)));
    assert_eq!(f.get("t.bool"), Some(&Value::Bool(true)));
    assert_eq!(
        f.get_string_array("t.strings").unwrap(),
        vec!["a", "bb", "ccc"]
    );
    let nested = Value::Array(vec![
        Value::Array(vec![Value::I32(1), Value::I32(2)]),
        Value::Array(vec![Value::I32(3)]),
    ]);
    assert_eq!(f.get("t.nested"), Some(&nested));
    let names: Vec<(&str, DType, &[usize])> = f
        .tensors()
        .iter()
        .map(|t| (t.name.as_str(), t.dtype, &t.shape[..]))
        .collect();
    assert_eq!(
        names,
        vec![
            ("a.f32", DType::F32, &[2usize, 8][..]),
            ("b.q4_0", DType::Q4_0, &[2, 32][..]),
            ("c.q8_0", DType::Q8_0, &[1, 32][..]),
        ]
    );
    let a = f.tensor("a.f32").unwrap().to_vec_f32().unwrap();
    assert_eq!(a, (0..16).map(|i| i as f32).collect::<Vec<_>>());
    let c = f.tensor("c.q8_0").unwrap().to_vec_f32().unwrap();
    for (i, v) in c.iter().enumerate() {
        let want = -1.0 + 2.0 * i as f32 / 31.0;
        assert!((v - want).abs() < 0.01, "c[{i}] = {v}, want {want}");
    }
}
