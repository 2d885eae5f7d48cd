//! Pre-tokenizers named by the GGUF key `tokenizer.ggml.pre`.
//!
//! Each kind is the list of regexes llama.cpp applies in `llm_tokenizer_bpe`
//! (src/llama-vocab.cpp). llama.cpp runs the regexes one after another, each
//! splitting the pieces left by the previous one and keeping both the matches
//! and the text between them; with the `tokenizers` crate that is a sequence of
//! `Split` pre-tokenizers with `Isolated` behaviour, followed by `ByteLevel`
//! (GPT-2 byte-to-unicode mapping, no regex of its own, no prefix space).

use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::SplitDelimiterBehavior;

use crate::{Error, Result};

/// GPT-2's pattern; also the second stage of `smollm` (StarCoder family).
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";

/// Llama 3's pattern as llama.cpp adapts it: the case-insensitive contractions
/// `(?i:'s|...)` are spelled out with character classes.
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen2's pattern: Llama 3's with single digits (`\p{N}` instead of `\p{N}{1,3}`).
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A supported `tokenizer.ggml.pre` value, grouped the way llama.cpp groups them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreTokenizerKind {
    /// "default" (and a missing key): llama.cpp's fallback list of four regexes.
    Default,
    /// "gpt-2", "gpt2" and friends.
    Gpt2,
    /// "llama3", "llama-v3", "llama-bpe".
    Llama3,
    /// "qwen2", "deepseek-r1-qwen", "megrez", "stablelm2".
    Qwen2,
    /// "smollm", "starcoder", "refact", "codeshell": digits split one by one, then GPT-2.
    StarCoder,
}

impl PreTokenizerKind {
    /// Maps a `tokenizer.ggml.pre` value; `None` when we do not support it.
    pub fn from_name(name: &str) -> Option<PreTokenizerKind> {
        Some(match name {
            "" | "default" => PreTokenizerKind::Default,
            // "gpt2" is not a llama.cpp name but is what people write; same regex.
            "gpt-2" | "gpt2" | "phi-2" | "mpt" | "olmo" | "jais" => PreTokenizerKind::Gpt2,
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "pixtral" => PreTokenizerKind::Llama3,
            "qwen2" | "deepseek-r1-qwen" | "megrez" | "stablelm2" => PreTokenizerKind::Qwen2,
            "smollm" | "starcoder" | "refact" | "codeshell" => PreTokenizerKind::StarCoder,
            _ => return None,
        })
    }

    /// The regexes llama.cpp applies, in order.
    pub fn regexes(self) -> &'static [&'static str] {
        match self {
            PreTokenizerKind::Default => {
                &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"]
            }
            PreTokenizerKind::Gpt2 => &[GPT2],
            PreTokenizerKind::Llama3 => &[LLAMA3],
            PreTokenizerKind::Qwen2 => &[QWEN2],
            PreTokenizerKind::StarCoder => &[r"\p{N}", GPT2],
        }
    }

    /// llama.cpp's `ignore_merges`: a pre-token that is already a vocabulary
    /// entry is emitted whole, without running the merges.
    pub fn ignore_merges(self) -> bool {
        self == PreTokenizerKind::Llama3
    }

    /// llama.cpp's default for `add_bos` when `tokenizer.ggml.add_bos_token` is absent.
    pub fn default_add_bos(self) -> bool {
        self == PreTokenizerKind::Llama3
    }

    /// The `tokenizers` pre-tokenizer: one isolated split per regex, then byte-level.
    pub(crate) fn build(self) -> Result<PreTokenizerWrapper> {
        let mut steps: Vec<PreTokenizerWrapper> = Vec::new();
        for re in self.regexes() {
            let split = Split::new(
                SplitPattern::Regex((*re).to_string()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|e| Error::Tokenizer(format!("pre-tokenizer regex {re:?}: {e}")))?;
            steps.push(split.into());
        }
        steps.push(ByteLevel::new(false, false, false).into());
        Ok(Sequence::new(steps).into())
    }
}
