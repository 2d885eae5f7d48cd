//! Incremental decoding for generation: byte-level tokens can end in the middle
//! of a multi-byte character (an emoji is often two or three tokens), so bytes
//! are held back until they form complete UTF-8.

use super::Tokenizer;

/// Decodes tokens one at a time, yielding only complete UTF-8 text.
#[derive(Debug)]
pub struct TokenStream<'a> {
    tokenizer: &'a Tokenizer,
    pending: Vec<u8>,
}

impl<'a> TokenStream<'a> {
    pub fn new(tokenizer: &'a Tokenizer) -> TokenStream<'a> {
        TokenStream {
            tokenizer,
            pending: Vec::new(),
        }
    }

    /// Adds a token; returns the text that became complete, if any. Bytes that
    /// can never become valid UTF-8 are yielded as U+FFFD rather than held.
    pub fn push(&mut self, id: u32) -> Option<String> {
        self.pending
            .extend_from_slice(self.tokenizer.token_bytes(id).unwrap_or_default());
        let mut out = String::new();
        let mut start = 0;
        loop {
            match std::str::from_utf8(&self.pending[start..]) {
                Ok(s) => {
                    out.push_str(s);
                    start = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // `from_utf8` has just validated this prefix.
                    out.push_str(&String::from_utf8_lossy(
                        &self.pending[start..start + valid],
                    ));
                    start += valid;
                    match e.error_len() {
                        // Invalid sequence: replace it and keep going.
                        Some(len) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            start += len;
                        }
                        // Incomplete sequence at the end: wait for more bytes.
                        None => break,
                    }
                }
            }
        }
        self.pending.drain(..start);
        (!out.is_empty()).then_some(out)
    }

    /// Ends the stream: whatever is still held back, with incomplete
    /// characters as U+FFFD.
    pub fn flush(&mut self) -> Option<String> {
        if self.pending.is_empty() {
            return None;
        }
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        Some(out)
    }

    /// Whether bytes of an unfinished character are being held back.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }
}
