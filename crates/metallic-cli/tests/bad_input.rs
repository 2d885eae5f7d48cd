//! Bad input gets one clear line on stderr and a non-zero exit, never a panic.

use std::path::PathBuf;
use std::process::{Command, Output};

fn metallic(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_metallic"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run metallic")
}

fn fails_with(args: &[&str], needle: &str) {
    let out = metallic(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{args:?} succeeded; stderr: {stderr}"
    );
    assert_ne!(out.status.code(), Some(101), "{args:?} panicked: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    assert!(
        stderr.contains(needle),
        "{args:?}: stderr {stderr:?} does not mention {needle:?}"
    );
}

fn qwen() -> Option<String> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
    if p.exists() {
        return Some(p.to_string_lossy().into_owned());
    }
    if std::env::var("METALLIC_SKIP_MODEL_TESTS").is_ok_and(|v| v == "1") {
        println!("SKIP: {} missing", p.display());
        return None;
    }
    panic!(
        "{} is missing: run `bash scripts/fetch_models.sh`",
        p.display()
    );
}

#[test]
fn missing_model_file() {
    fails_with(
        &["run", "/nonexistent/model.gguf", "-p", "hi"],
        "does not exist",
    );
    fails_with(&["info", "/nonexistent/model.gguf"], "nonexistent");
}

#[test]
fn non_gguf_file() {
    let dir = std::env::temp_dir().join(format!("metallic-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("not-a-model.gguf");
    std::fs::write(&p, b"this is plainly not a GGUF file, just some text").unwrap();
    let path = p.to_str().unwrap();
    fails_with(&["info", path], "not a GGUF file");
    fails_with(&["run", path, "-p", "hi"], "not a GGUF file");
    let empty = dir.join("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    fails_with(&["info", empty.to_str().unwrap()], "gguf");
}

#[test]
fn empty_prompt_and_invalid_sampling() {
    let Some(m) = qwen() else { return };
    fails_with(&["run", &m, "-p", ""], "prompt is empty");
    fails_with(&["run", &m, "-p", "hi", "--temp", "-1"], "temperature");
    fails_with(&["run", &m, "-p", "hi", "--top-p", "1.5"], "top_p");
    fails_with(&["run", &m, "-p", "hi", "--min-p", "2"], "min_p");
    fails_with(
        &["run", &m, "-p", "hi", "--repeat-penalty", "0"],
        "repeat_penalty",
    );
    fails_with(
        &["run", &m, "-p", "hi", "--device", "tpu"],
        "unknown device",
    );
}

#[test]
fn prompt_longer_than_context() {
    let Some(m) = qwen() else { return };
    let long = "word ".repeat(200);
    fails_with(
        &["run", &m, "-p", &long, "--ctx", "32"],
        "longer than the context",
    );
}

/// `bench -d`: both tests start with that many tokens cached and say so in
/// their label; zero repetitions is refused.
#[test]
fn bench_at_depth() {
    let Some(m) = qwen() else { return };
    fails_with(&["bench", &m, "-r", "0"], "repetitions");
    let out = metallic(&[
        "bench", &m, "-p", "4", "-n", "2", "-d", "8", "-r", "1", "-t", "2",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench -d failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for label in ["pp4 @ d8", "tg2 @ d8"] {
        assert!(stdout.contains(label), "no {label:?} in {stdout}");
    }
}
