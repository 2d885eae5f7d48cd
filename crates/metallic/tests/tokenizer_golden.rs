//! Our tokenizer against llama.cpp on the real models: every id must match the
//! golden tokenizations in `tests/golden/<tag>.tokenizer.json`, written by
//! `scripts/gen_reference.py` with `llama_tokenize` (with and without BOS, with
//! and without special-token parsing), and decoding must give the text back.
//!
//! The models are fetched by `scripts/fetch_models.sh`. Without them these
//! tests fail, unless METALLIC_SKIP_MODEL_TESTS=1, which prints SKIP.

use std::path::{Path, PathBuf};

use metallic::gguf::GgufFile;
use metallic::tokenizer::Tokenizer;
use serde_json::Value;

const QWEN: (&str, &str) = (
    "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    "qwen2.5-0.5b-q4_k_m",
);
const SMOLLM: (&str, &str) = ("smollm2-135m-instruct-q4_1.gguf", "smollm2-135m-q4_1");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The model's tokenizer, or `None` (after printing SKIP) when the file is
/// absent and METALLIC_SKIP_MODEL_TESTS=1.
fn load(file: &str, test: &str) -> Option<Tokenizer> {
    let path = root().join("models").join(file);
    if !path.exists() {
        if std::env::var("METALLIC_SKIP_MODEL_TESTS").as_deref() == Ok("1") {
            println!(
                "SKIP {test}: {} absent and METALLIC_SKIP_MODEL_TESTS=1",
                path.display()
            );
            return None;
        }
        panic!(
            "{} is missing: run scripts/fetch_models.sh (or set METALLIC_SKIP_MODEL_TESTS=1 to skip)",
            path.display()
        );
    }
    let gguf = GgufFile::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Some(Tokenizer::from_gguf(&gguf).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn golden(tag: &str) -> Value {
    let path = root()
        .join("tests/golden")
        .join(format!("{tag}.tokenizer.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (generate it with scripts/gen_reference.sh)",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("an id list")
        .iter()
        .map(|x| x.as_u64().expect("an id") as u32)
        .collect()
}

/// Compares every golden case and reports all mismatches at once.
fn check_against_llama_cpp((file, tag): (&str, &str), test: &str) {
    let Some(tok) = load(file, test) else { return };
    let g = golden(tag);
    assert_eq!(
        g["model_file"].as_str(),
        Some(file),
        "golden file is for another model"
    );

    let vocab = &g["vocab"];
    assert_eq!(
        tok.vocab_size() as u64,
        vocab["n_vocab"].as_u64().unwrap(),
        "n_vocab"
    );
    assert_eq!(tok.bos().map(u64::from), vocab["bos_id"].as_u64(), "bos");
    assert_eq!(tok.eos().map(u64::from), vocab["eos_id"].as_u64(), "eos");
    assert_eq!(
        Some(tok.add_bos()),
        vocab["add_bos_default"].as_bool(),
        "add_bos"
    );

    let mut failures = Vec::new();
    let compare =
        |failures: &mut Vec<String>, what: &str, text: &str, ours: Vec<u32>, theirs: Vec<u32>| {
            if ours != theirs {
                failures.push(format!(
                    "{what} {text:?}:\n  ours      {ours:?}\n  llama.cpp {theirs:?}"
                ));
            }
        };
    let cases = g["cases"].as_array().expect("cases");
    assert!(!cases.is_empty());
    for case in cases {
        let text = case["text"].as_str().expect("text");
        compare(
            &mut failures,
            "add_special",
            text,
            tok.encode(text, false).unwrap(),
            ids(&case["ids"]),
        );
        let plain = ids(&case["ids_no_special"]);
        compare(
            &mut failures,
            "no add_special",
            text,
            tok.encode_with(text, false, false).unwrap(),
            plain.clone(),
        );
        if tok.decode(&plain) != text {
            failures.push(format!("round trip {text:?} gave {:?}", tok.decode(&plain)));
        }
    }
    let chat = &g["chat"];
    let text = chat["text"].as_str().expect("chat text");
    compare(
        &mut failures,
        "parse_special",
        text,
        tok.encode(text, true).unwrap(),
        ids(&chat["ids_parse_special"]),
    );
    compare(
        &mut failures,
        "no parse_special",
        text,
        tok.encode(text, false).unwrap(),
        ids(&chat["ids_no_parse_special"]),
    );
    assert!(
        failures.is_empty(),
        "{tag}: {} mismatches with llama.cpp:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn qwen_tokenizes_like_llama_cpp() {
    check_against_llama_cpp(QWEN, "qwen_tokenizes_like_llama_cpp");
}

#[test]
fn smollm_tokenizes_like_llama_cpp() {
    check_against_llama_cpp(SMOLLM, "smollm_tokenizes_like_llama_cpp");
}

/// Texts beyond the golden set: decode(encode(s)) == s, and streaming gives
/// the same text piece by piece.
#[test]
fn real_vocabularies_round_trip_and_stream() {
    let texts = [
        "Emoji: 😀 👍🏽 👩‍👩‍👧‍👦 🇫🇷🇯🇵 ❤️ and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
        "<|im_start|>user\nhi<|im_end|>\n<tool_call>",
        "\u{0}\u{1f}\u{7f} control bytes, lone CR\r, BOM \u{feff}",
        "   \n\n\t\t  mixed   \r\n",
    ];
    for (file, _) in [QWEN, SMOLLM] {
        let Some(tok) = load(file, "real_vocabularies_round_trip_and_stream") else {
            return;
        };
        for text in texts {
            for parse_special in [false, true] {
                let ids = tok.encode_with(text, false, parse_special).unwrap();
                assert_eq!(
                    tok.decode(&ids),
                    text,
                    "{file}, parse_special {parse_special}"
                );
                let mut stream = tok.stream();
                let mut streamed = String::new();
                let mut held = 0;
                for &id in &ids {
                    match stream.push(id) {
                        Some(piece) => streamed.push_str(&piece),
                        None => held += 1,
                    }
                }
                assert_eq!(stream.flush(), None, "{file}: bytes left over");
                assert_eq!(streamed, text, "{file}: streamed text");
                if text.starts_with("Emoji") {
                    // Rare emoji are several byte-level tokens each.
                    assert!(held > 0, "{file}: no token was held back");
                }
            }
        }
    }
}

#[test]
fn end_of_generation_tokens_follow_llama_cpp() {
    if let Some(tok) = load(QWEN.0, "end_of_generation_tokens_follow_llama_cpp") {
        let id = |t: &str| {
            tok.token_id(t)
                .unwrap_or_else(|| panic!("{t} not in vocab"))
        };
        for t in [
            "<|im_end|>",
            "<|endoftext|>",
            "<|fim_pad|>",
            "<|repo_name|>",
            "<|file_sep|>",
        ] {
            assert!(tok.is_eog(id(t)), "{t} should end generation");
        }
        for t in ["<|im_start|>", "<tool_call>", "Hello"] {
            assert!(!tok.is_eog(id(t)), "{t} should not end generation");
        }
        assert_eq!(tok.eog_ids().len(), 5);
    }
    if let Some(tok) = load(SMOLLM.0, "end_of_generation_tokens_follow_llama_cpp") {
        // <|endoftext|>, <|im_end|> (EOS) and <reponame> (llama.cpp's FIM repo token).
        assert_eq!(tok.eog_ids(), &[0, 2, 4]);
    }
}
