//! `metallic info MODEL.gguf`: a GGUF file's header, metadata (long arrays
//! summarised), tensor table, and totals by type.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use metallic::gguf::{GgufError, GgufFile};

/// Array elements shown before `...`.
const ARRAY_ITEMS: usize = 4;

pub fn run(path: &Path) -> anyhow::Result<()> {
    let file = match GgufFile::open(path) {
        Ok(f) => f,
        // An I/O error already names the path.
        Err(e @ GgufError::Io { .. }) => return Err(e.into()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    print!("{}", render(path, &file));
    Ok(())
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = "B";
    for u in UNITS {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.2} {unit}")
}

fn render(path: &Path, file: &GgufFile) -> String {
    let mut s = String::new();
    let tensors = file.tensors();
    let _ = writeln!(
        s,
        "{}: GGUF v{}, {} metadata keys, {} tensors, alignment {}, data at offset {}, {}",
        path.display(),
        file.version(),
        file.metadata().len(),
        tensors.len(),
        file.alignment(),
        file.data_offset(),
        human_bytes(file.file_len() as u64)
    );

    let _ = writeln!(s, "\nmetadata:");
    let key_width = file
        .metadata()
        .iter()
        .map(|(k, _)| k.len())
        .max()
        .unwrap_or(0);
    for (key, value) in file.metadata() {
        let _ = writeln!(
            s,
            "  {key:<key_width$}  {:<22}  {}",
            value.type_name(),
            value.summary(ARRAY_ITEMS)
        );
    }

    let _ = writeln!(s, "\ntensors:");
    let name_width = tensors
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        s,
        "  {:<name_width$}  {:<5}  {:<18}  {:>12}  {:>12}",
        "name", "type", "shape", "bytes", "offset"
    );
    let mut totals: BTreeMap<&'static str, (usize, u64, u64)> = BTreeMap::new();
    for t in tensors {
        let shape = format!("{:?}", t.shape);
        let abs = file.data_offset() as u64 + t.offset;
        let _ = writeln!(
            s,
            "  {:<name_width$}  {:<5}  {shape:<18}  {:>12}  {:>12}",
            t.name,
            t.dtype.name(),
            t.size,
            abs
        );
        let e = totals.entry(t.dtype.name()).or_default();
        e.0 += 1;
        e.1 += t.elem_count() as u64;
        e.2 += t.size as u64;
    }

    let _ = writeln!(s, "\ntotals by type:");
    let _ = writeln!(
        s,
        "  {:<5}  {:>7}  {:>14}  {:>12}  {:>11}",
        "type", "tensors", "elements", "bytes", "bits/elem"
    );
    let (mut n, mut elems, mut bytes) = (0usize, 0u64, 0u64);
    for (name, (count, e, b)) in &totals {
        let _ = writeln!(
            s,
            "  {name:<5}  {count:>7}  {e:>14}  {:>12}  {:>11.3}",
            human_bytes(*b),
            *b as f64 * 8.0 / (*e).max(1) as f64
        );
        n += count;
        elems += e;
        bytes += b;
    }
    let _ = writeln!(
        s,
        "  {:<5}  {n:>7}  {elems:>14}  {:>12}  {:>11.3}",
        "all",
        human_bytes(bytes),
        bytes as f64 * 8.0 / elems.max(1) as f64
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use metallic::gguf::{GgufWriter, Value};
    use metallic::DType;

    #[test]
    fn renders_metadata_tensors_and_totals() {
        let mut w = GgufWriter::new();
        w.add_metadata("general.architecture", Value::String("llama".into()))
            .unwrap();
        w.add_metadata(
            "tokenizer.ggml.tokens",
            Value::Array((0..1000).map(|i| Value::String(format!("t{i}"))).collect()),
        )
        .unwrap();
        w.add_tensor(
            "w",
            DType::Q8_0,
            &[2, 32],
            metallic::quant::random_row(DType::Q8_0, 64, 1),
        )
        .unwrap();
        w.add_tensor("b", DType::F32, &[3], vec![0; 12]).unwrap();
        let file = GgufFile::from_bytes(w.to_bytes()).unwrap();
        let out = render(Path::new("m.gguf"), &file);
        assert!(
            out.contains("GGUF v3, 2 metadata keys, 2 tensors, alignment 32"),
            "{out}"
        );
        assert!(
            out.contains("[1000 items: \"t0\", \"t1\", \"t2\", \"t3\", ...]"),
            "{out}"
        );
        assert!(out.contains("q8_0   [2, 32]"), "{out}");
        assert!(out.contains("  q8_0         1              64"), "{out}");
        assert!(out.contains("  all          2              67"), "{out}");
    }
}
