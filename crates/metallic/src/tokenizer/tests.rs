//! Tokenizers built by hand: ids 0..=255 are the byte-level alphabet (id = byte),
//! then one token per merge, then the extra (special) tokens.

use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};

use super::bytes::{byte_char, byte_level_decode};
use super::*;

/// Byte-level form of `s` (' ' -> 'Ġ').
fn bl(s: &str) -> String {
    s.bytes().map(byte_char).collect()
}

/// `merges` are written as plain text pairs ("he llo"), converted to byte-level form.
fn spec(pre: &str, merges: &[(&str, &str)], extra: &[(&str, TokenType)]) -> TokenizerSpec {
    let mut tokens: Vec<String> = (0..=255u8).map(|b| byte_char(b).to_string()).collect();
    let mut types = vec![TokenType::Normal; 256];
    let mut merge_lines = Vec::new();
    for (a, b) in merges {
        merge_lines.push(format!("{} {}", bl(a), bl(b)));
        tokens.push(bl(&format!("{a}{b}")));
        types.push(TokenType::Normal);
    }
    for (text, ty) in extra {
        tokens.push(text.to_string());
        types.push(*ty);
    }
    TokenizerSpec {
        model: "gpt2".into(),
        pre: pre.into(),
        tokens,
        token_types: types,
        merges: merge_lines,
        ..TokenizerSpec::default()
    }
}

const HELLO_MERGES: &[(&str, &str)] = &[
    ("h", "e"),
    ("l", "l"),
    ("he", "ll"),
    ("hell", "o"),
    (" ", "w"),
    ("o", "r"),
    (" w", "or"),
    (" wor", "l"),
    (" worl", "d"),
    ("1", "2"),
];

const SPECIALS: &[(&str, TokenType)] = &[
    ("<|endoftext|>", TokenType::Control),
    ("<|im_start|>", TokenType::Control),
    ("<|im_end|>", TokenType::Control),
    ("<tool>", TokenType::UserDefined),
    ("[PAD1]", TokenType::Unused),
];

fn tok(pre: &str) -> Tokenizer {
    let mut s = spec(pre, HELLO_MERGES, SPECIALS);
    s.bos = s
        .tokens
        .iter()
        .position(|t| t == "<|endoftext|>")
        .map(|i| i as u32);
    s.eos = s
        .tokens
        .iter()
        .position(|t| t == "<|im_end|>")
        .map(|i| i as u32);
    Tokenizer::from_spec(s).unwrap()
}

fn id(t: &Tokenizer, plain: &str) -> u32 {
    t.token_id(&bl(plain))
        .or_else(|| t.token_id(plain))
        .unwrap_or_else(|| panic!("{plain:?} not in vocab"))
}

/// The pieces a pre-tokenizer cuts `text` into, as plain text.
fn pieces(kind: PreTokenizerKind, text: &str) -> Vec<String> {
    let pre = kind.build().unwrap();
    let mut s = PreTokenizedString::from(text);
    pre.pre_tokenize(&mut s).unwrap();
    s.get_splits(OffsetReferential::Original, OffsetType::Byte)
        .into_iter()
        .map(|(piece, _, _)| String::from_utf8(byte_level_decode(piece)).unwrap())
        .collect()
}

#[test]
fn encode_applies_merges_and_round_trips() {
    let t = tok("qwen2");
    let ids = t.encode("hello world", false).unwrap();
    assert_eq!(ids, vec![id(&t, "hello"), id(&t, " world")]);
    assert_eq!(t.decode(&ids), "hello world");
    assert_eq!(t.encode("", false).unwrap(), Vec::<u32>::new());
}

#[test]
fn qwen2_and_smollm_split_digits_gpt2_does_not() {
    let one_two = vec![u32::from(b'1'), u32::from(b'2')];
    assert_eq!(tok("qwen2").encode("12", false).unwrap(), one_two);
    assert_eq!(tok("smollm").encode("12", false).unwrap(), one_two);
    let t = tok("gpt2");
    assert_eq!(t.encode("12", false).unwrap(), vec![id(&t, "12")]);
}

#[test]
fn pre_tokenizer_pieces_follow_llama_cpp_regexes() {
    let text = "Hello, world's 123!\n\n  x";
    let expect = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        pieces(PreTokenizerKind::Qwen2, text),
        expect(&["Hello", ",", " world", "'s", " ", "1", "2", "3", "!\n\n", " ", " x"])
    );
    assert_eq!(
        pieces(PreTokenizerKind::Gpt2, text),
        expect(&["Hello", ",", " world", "'s", " 123", "!", "\n\n ", " x"])
    );
    assert_eq!(
        pieces(PreTokenizerKind::StarCoder, text),
        expect(&["Hello", ",", " world", "'s", " ", "1", "2", "3", "!", "\n\n ", " x"])
    );
    assert_eq!(
        pieces(PreTokenizerKind::Llama3, "x 12345 IT'S"),
        expect(&["x", " ", "123", "45", " IT", "'S"])
    );
}

#[test]
fn control_tokens_parsed_only_when_asked_user_defined_always() {
    let t = tok("qwen2");
    let (start, end, tool) = (
        id(&t, "<|im_start|>"),
        id(&t, "<|im_end|>"),
        id(&t, "<tool>"),
    );
    let text = "<|im_start|>hello<|im_end|><tool>";
    let parsed = t.encode(text, true).unwrap();
    assert_eq!(parsed, vec![start, id(&t, "hello"), end, tool]);
    let raw = t.encode(text, false).unwrap();
    assert!(!raw.contains(&start) && !raw.contains(&end));
    assert_eq!(raw.last(), Some(&tool));
    assert_eq!(t.decode(&parsed), text);
    assert_eq!(t.decode(&raw), text);
}

#[test]
fn bos_follows_the_model_flag() {
    let t = tok("qwen2");
    assert!(!t.add_bos());
    assert_eq!(t.encode("hello", false).unwrap(), vec![id(&t, "hello")]);

    // llama.cpp adds BOS by default for llama-bpe.
    let t = tok("llama-bpe");
    let bos = t.bos().unwrap();
    assert!(t.add_bos());
    assert_eq!(
        t.encode("hello", false).unwrap(),
        vec![bos, id(&t, "hello")]
    );
    assert_eq!(t.encode("", false).unwrap(), vec![bos]);
    assert_eq!(
        t.encode_with("hello", false, false).unwrap(),
        vec![id(&t, "hello")]
    );

    let mut s = spec("qwen2", HELLO_MERGES, SPECIALS);
    s.bos = Some(0);
    s.add_bos = Some(true);
    let t = Tokenizer::from_spec(s).unwrap();
    assert_eq!(t.encode("hello", false).unwrap(), vec![0, id(&t, "hello")]);
}

#[test]
fn bad_specs_are_typed_errors_naming_the_key() {
    let err = |s: TokenizerSpec| match Tokenizer::from_spec(s) {
        Err(Error::Tokenizer(msg)) => msg,
        Err(e) => panic!("wrong error kind: {e}"),
        Ok(_) => panic!("accepted a bad spec"),
    };
    let mut s = spec("qwen2", HELLO_MERGES, SPECIALS);
    s.model = "llama".into();
    let msg = err(s);
    assert!(
        msg.contains("tokenizer.ggml.model") && msg.contains("\"llama\""),
        "{msg}"
    );

    let mut s = spec("qwen2", HELLO_MERGES, SPECIALS);
    s.pre = "chameleon".into();
    let msg = err(s);
    assert!(
        msg.contains("tokenizer.ggml.pre") && msg.contains("\"chameleon\""),
        "{msg}"
    );

    let mut s = spec("qwen2", HELLO_MERGES, SPECIALS);
    s.token_types.pop();
    assert!(err(s).contains("tokenizer.ggml.token_type"));

    let mut s = spec("qwen2", HELLO_MERGES, SPECIALS);
    s.merges.push("nospace".into());
    assert!(err(s).contains("tokenizer.ggml.merges"));

    let mut s = spec("qwen2", HELLO_MERGES, SPECIALS);
    s.eos = Some(1_000_000);
    assert!(err(s).contains("eos_token_id"));
}

#[test]
fn eog_is_eos_and_end_of_turn_tokens() {
    let t = tok("qwen2");
    assert!(t.is_eog(id(&t, "<|im_end|>")));
    assert!(t.is_eog(id(&t, "<|endoftext|>")));
    assert!(!t.is_eog(id(&t, "<|im_start|>")));
    assert!(!t.is_eog(id(&t, "hello")));
    assert!(!t.is_eog(u32::MAX));
}

#[test]
fn decode_drops_unused_slots_and_unknown_ids() {
    let t = tok("qwen2");
    let pad = id(&t, "[PAD1]");
    let hello = id(&t, "hello");
    assert_eq!(t.decode(&[hello, pad, u32::MAX, hello]), "hellohello");
    assert_eq!(t.token_str(pad), Some("[PAD1]"));
    assert_eq!(t.token_str(u32::MAX), None);
    assert_eq!(t.token_type(pad), Some(TokenType::Unused));
}

#[test]
fn stream_holds_back_an_emoji_split_across_tokens() {
    // "😀" is F0 9F 98 80: merge its first two and last two bytes, so that it
    // is two byte-level tokens, neither of them valid UTF-8 alone.
    let emoji = "😀".as_bytes();
    let mut s = spec("qwen2", &[], SPECIALS);
    for pair in [&emoji[..2], &emoji[2..]] {
        s.merges
            .push(format!("{} {}", byte_char(pair[0]), byte_char(pair[1])));
        s.tokens.push(pair.iter().map(|&x| byte_char(x)).collect());
        s.token_types.push(TokenType::Normal);
    }
    let t = Tokenizer::from_spec(s).unwrap();
    let ids = t.encode("a😀b😀", false).unwrap();
    assert_eq!(ids.len(), 6, "{ids:?}");

    let mut stream = t.stream();
    let out: Vec<Option<String>> = ids.iter().map(|&id| stream.push(id)).collect();
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        out,
        vec![some("a"), None, some("😀"), some("b"), None, some("😀")]
    );
    assert!(!stream.has_pending());
    assert_eq!(stream.flush(), None);
    assert_eq!(t.decode(&ids), "a😀b😀");
}

#[test]
fn stream_replaces_invalid_bytes_and_flushes_partial_ones() {
    let t = tok("qwen2");
    let mut stream = t.stream();
    // A lone continuation byte can never become valid: replaced at once.
    assert_eq!(stream.push(0x80).as_deref(), Some("\u{FFFD}"));
    // A lead byte waits for its continuation...
    assert_eq!(stream.push(0xF0), None);
    assert!(stream.has_pending());
    // ...and is replaced if the stream ends first.
    assert_eq!(stream.flush().as_deref(), Some("\u{FFFD}"));
    assert_eq!(stream.flush(), None);
    // A lead byte followed by ASCII is invalid: replacement, then the text.
    assert_eq!(stream.push(0xE2), None);
    assert_eq!(stream.push(u32::from(b'x')).as_deref(), Some("\u{FFFD}x"));
}
