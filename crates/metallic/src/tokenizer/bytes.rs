//! GPT-2's byte-to-unicode table, inverted, to turn byte-level token text back
//! into raw bytes.
//!
//! The `tokenizers` crate's ByteLevel decoder returns a `String` built lossily
//! from a whole id list, so a multi-byte character split across two tokens
//! cannot be streamed with it; we keep each token's exact bytes instead (as
//! llama.cpp's `token_to_piece` does) and let the caller decide where UTF-8
//! boundaries fall.

use std::collections::HashMap;
use std::sync::OnceLock;

/// GPT-2 `bytes_to_unicode`: printable Latin-1 bytes stand for themselves, the
/// other 68 bytes for U+0100.. in byte order.
pub(crate) fn byte_char(b: u8) -> char {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable(b) {
        return char::from(b);
    }
    let rank = (0..b).filter(|&x| !printable(x)).count() as u32;
    // 256 + rank < 324 is always a valid scalar value.
    char::from_u32(256 + rank).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// For each unicode char of the byte-level alphabet, the byte it stands for.
fn char_to_byte() -> &'static HashMap<char, u8> {
    static TABLE: OnceLock<HashMap<char, u8>> = OnceLock::new();
    TABLE.get_or_init(|| (0..=255u8).map(|b| (byte_char(b), b)).collect())
}

/// The raw bytes a byte-level token stands for. A char outside the byte-level
/// alphabet (a malformed vocabulary) is kept as its own UTF-8 encoding.
pub(crate) fn byte_level_decode(text: &str) -> Vec<u8> {
    let table = char_to_byte();
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match table.get(&c) {
            Some(&b) => out.push(b),
            None => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out
}

/// The byte of a `<0xAB>` token (GGUF token type 6), if the text has that form.
pub(crate) fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_table_is_a_bijection() {
        let table = char_to_byte();
        assert_eq!(table.len(), 256);
        let mut seen = [false; 256];
        for &b in table.values() {
            seen[b as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        // The same alphabet the `tokenizers` ByteLevel pre-tokenizer encodes with.
        let ours: std::collections::HashSet<char> = table.keys().copied().collect();
        let theirs: std::collections::HashSet<char> =
            tokenizers::pre_tokenizers::byte_level::ByteLevel::alphabet()
                .into_iter()
                .collect();
        assert_eq!(ours, theirs);
        // Known anchors from GPT-2: space is 'Ġ' (U+0120), newline 'Ċ' (U+010A).
        assert_eq!(byte_level_decode("Ġ"), b" ");
        assert_eq!(byte_level_decode("Ċ"), b"\n");
        assert_eq!(byte_level_decode("Hello"), b"Hello");
    }

    #[test]
    fn byte_tokens_parse() {
        assert_eq!(parse_byte_token("<0x0A>"), Some(b'\n'));
        assert_eq!(parse_byte_token("<0xff>"), Some(0xFF));
        assert_eq!(parse_byte_token("<0x1>"), None);
        assert_eq!(parse_byte_token("hello"), None);
    }
}
