//! Dequantizes every tensor of the real Qwen2.5 model and compares it with
//! the `gguf` Python package's dequantization, summarised per tensor by
//! `scripts/gen_quant_golden.py --model ...` (sums, sampled values).
//!
//! The model is fetched by `scripts/fetch_models.sh`. Without it this test
//! fails, unless METALLIC_SKIP_MODEL_TESTS=1, which prints SKIP.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use metallic::gguf::GgufFile;

const MODEL: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One tensor's line of the summary file.
struct Summary {
    dtype: String,
    n: usize,
    sum: f64,
    sum_abs: f64,
    sum_sq: f64,
    /// (index, f32 bits)
    values: Vec<(usize, u32)>,
}

fn hex(s: &str) -> u32 {
    u32::from_str_radix(s, 16).expect("hex f32 bits")
}

fn parse_summary(text: &str) -> Vec<(String, Summary)> {
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            assert_eq!(f.len(), 9, "bad summary line: {line}");
            let n: usize = f[2].parse().unwrap();
            let list = |field: &str, prefix: &str| -> Vec<String> {
                field
                    .strip_prefix(prefix)
                    .expect("summary field prefix")
                    .split(',')
                    .map(str::to_string)
                    .collect()
            };
            let mut values = Vec::new();
            for (i, v) in list(f[6], "first=").iter().enumerate() {
                values.push((i, hex(v)));
            }
            let last = list(f[7], "last=");
            for (i, v) in last.iter().enumerate() {
                values.push((n - last.len() + i, hex(v)));
            }
            for pair in list(f[8], "idx=") {
                let (i, v) = pair.split_once(':').expect("idx=i:bits");
                values.push((i.parse().unwrap(), hex(v)));
            }
            let summary = Summary {
                dtype: f[1].to_string(),
                n,
                sum: f[3].parse().unwrap(),
                sum_abs: f[4].parse().unwrap(),
                sum_sq: f[5].parse().unwrap(),
                values,
            };
            (f[0].to_string(), summary)
        })
        .collect()
}

#[test]
fn every_tensor_of_the_real_model_dequantizes_like_the_gguf_package() {
    let path = root().join("models").join(format!("{MODEL}.gguf"));
    if !path.exists() {
        if std::env::var("METALLIC_SKIP_MODEL_TESTS").as_deref() == Ok("1") {
            println!(
                "SKIP gguf_real_model: {} absent and METALLIC_SKIP_MODEL_TESTS=1",
                path.display()
            );
            return;
        }
        panic!(
            "{} is missing: run scripts/fetch_models.sh (or set METALLIC_SKIP_MODEL_TESTS=1 to skip)",
            path.display()
        );
    }
    let golden = root().join(format!("tests/golden/quant/{MODEL}.summary.txt"));
    let text = std::fs::read_to_string(&golden).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run scripts/gen_quant_golden.py --model ...)",
            golden.display()
        )
    });
    let want = parse_summary(&text);
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(
        file.tensors().len(),
        want.len(),
        "tensor count differs from the golden summary"
    );
    let infos: HashMap<&str, _> = file
        .tensors()
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let mut by_type: HashMap<String, usize> = HashMap::new();
    for (name, s) in &want {
        let info = infos
            .get(name.as_str())
            .unwrap_or_else(|| panic!("{name} is in the golden summary, not in the file"));
        assert_eq!(info.dtype.name(), s.dtype, "{name}: type");
        let x = file.tensor(name).unwrap().to_vec_f32().unwrap();
        assert_eq!(x.len(), s.n, "{name}: element count");
        for &(i, bits) in &s.values {
            assert_eq!(
                x[i].to_bits(),
                bits,
                "{name}[{i}]: got {:e}, the gguf package gives {:e}",
                x[i],
                f32::from_bits(bits)
            );
        }
        let (mut sum, mut sum_abs, mut sum_sq) = (0.0f64, 0.0f64, 0.0f64);
        for &v in &x {
            let v = v as f64;
            sum += v;
            sum_abs += v.abs();
            sum_sq += v * v;
        }
        // Summation order differs (numpy is pairwise): compare to 1e-9 of the
        // magnitude, which any wrong value would exceed by far.
        let close = |got: f64, want: f64, scale: f64| (got - want).abs() <= 1e-9 * scale.max(1e-30);
        assert!(
            close(sum, s.sum, s.sum_abs),
            "{name}: sum {sum} vs {}",
            s.sum
        );
        assert!(
            close(sum_abs, s.sum_abs, s.sum_abs),
            "{name}: sum |x| {sum_abs} vs {}",
            s.sum_abs
        );
        assert!(
            close(sum_sq, s.sum_sq, s.sum_sq),
            "{name}: sum x^2 {sum_sq} vs {}",
            s.sum_sq
        );
        *by_type.entry(s.dtype.clone()).or_default() += 1;
    }
    let mut types: Vec<_> = by_type.into_iter().collect();
    types.sort();
    println!(
        "{MODEL}: {} tensors match the gguf package ({types:?})",
        want.len()
    );
}
