//! The real models' chat templates (`tokenizer.chat_template`) rendered to the
//! exact strings their Jinja source produces under transformers'
//! `apply_chat_template` (expected strings written from the templates).
//!
//! The models are fetched by `scripts/fetch_models.sh`. Without them these
//! tests fail, unless METALLIC_SKIP_MODEL_TESTS=1, which prints SKIP.

use std::path::Path;

use metallic::chat::{ChatTemplate, Message};
use metallic::gguf::GgufFile;
use metallic::tokenizer::Tokenizer;

fn load(file: &str, test: &str) -> Option<(Tokenizer, ChatTemplate)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../models")
        .join(file);
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
    let tok = Tokenizer::from_gguf(&gguf).unwrap();
    let tpl = ChatTemplate::from_gguf(&gguf, &tok)
        .unwrap()
        .unwrap_or_else(|| panic!("{file} has no chat template"));
    Some((tok, tpl))
}

fn conversation() -> Vec<Message> {
    vec![
        Message::system("You are terse."),
        Message::user("What is 2+2?"),
        Message::assistant("4"),
        Message::user("And 3+3?"),
    ]
}

#[test]
fn qwen_template_renders_chatml() {
    let Some((tok, tpl)) = load(
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        "qwen_template_renders_chatml",
    ) else {
        return;
    };
    assert_eq!(tpl.bos_token(), "<|endoftext|>");
    assert_eq!(tpl.eos_token(), "<|im_end|>");

    let out = tpl.render(&conversation(), true).unwrap();
    assert_eq!(
        out,
        "<|im_start|>system\nYou are terse.<|im_end|>\n\
         <|im_start|>user\nWhat is 2+2?<|im_end|>\n\
         <|im_start|>assistant\n4<|im_end|>\n\
         <|im_start|>user\nAnd 3+3?<|im_end|>\n\
         <|im_start|>assistant\n"
    );

    // Without a system message the template supplies Qwen's default one.
    let out = tpl.render(&conversation()[1..2], false).unwrap();
    assert_eq!(
        out,
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n\
         <|im_start|>user\nWhat is 2+2?<|im_end|>\n"
    );

    // The rendered prompt starts with the <|im_start|> control token when specials are parsed.
    let ids = tok.encode(&out, true).unwrap();
    assert_eq!(ids.first().copied(), tok.token_id("<|im_start|>"));
}

#[test]
fn smollm_template_renders_chatml() {
    let Some((_tok, tpl)) = load(
        "smollm2-135m-instruct-q4_1.gguf",
        "smollm_template_renders_chatml",
    ) else {
        return;
    };
    let out = tpl.render(&conversation(), true).unwrap();
    assert_eq!(
        out,
        "<|im_start|>system\nYou are terse.<|im_end|>\n\
         <|im_start|>user\nWhat is 2+2?<|im_end|>\n\
         <|im_start|>assistant\n4<|im_end|>\n\
         <|im_start|>user\nAnd 3+3?<|im_end|>\n\
         <|im_start|>assistant\n"
    );
    let out = tpl.render(&conversation()[1..2], true).unwrap();
    assert_eq!(
        out,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nWhat is 2+2?<|im_end|>\n\
         <|im_start|>assistant\n"
    );
}
