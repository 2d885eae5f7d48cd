//! Shared by the tests that need the real models: where they are, and the
//! rule that a missing model fails the test (CI fetches them) unless
//! METALLIC_SKIP_MODEL_TESTS=1 says to skip, which is printed.

#![allow(dead_code)]

use std::path::PathBuf;

pub const QWEN: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
pub const SMOLLM: &str = "smollm2-135m-instruct-q4_1.gguf";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The model's path, `None` (after printing SKIP) when skipping is asked for;
/// panics with advice when it is missing otherwise.
pub fn model(name: &str) -> Option<PathBuf> {
    let p = repo_root().join("models").join(name);
    if p.exists() {
        return Some(p);
    }
    if std::env::var("METALLIC_SKIP_MODEL_TESTS").is_ok_and(|v| v == "1") {
        println!(
            "SKIP: {} missing and METALLIC_SKIP_MODEL_TESTS=1",
            p.display()
        );
        return None;
    }
    panic!(
        "{} is missing: run `bash scripts/fetch_models.sh` (or set METALLIC_SKIP_MODEL_TESTS=1 to skip)",
        p.display()
    );
}

pub fn golden(name: &str) -> serde_json::Value {
    let p = repo_root().join("tests/golden").join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("an array of token ids")
        .iter()
        .map(|x| x.as_u64().expect("a token id") as u32)
        .collect()
}
