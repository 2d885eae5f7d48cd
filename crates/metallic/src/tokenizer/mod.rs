//! Byte-level BPE tokenizer built from a GGUF vocabulary, matching llama.cpp.
//!
//! Encoding follows llama.cpp's `llama_vocab::tokenize`: the text is first split
//! on special tokens (`special.rs`), then every plain-text fragment goes through
//! the pre-tokenizer regexes (`pretok.rs`) and BPE merges, which the `tokenizers`
//! crate runs. Decoding maps each token to its exact bytes (`bytes.rs`) so that
//! streamed output can hold back partial UTF-8 characters ([`TokenStream`]).

mod bytes;
mod gguf;
mod pretok;
mod special;
mod stream;
#[cfg(test)]
mod tests;

pub use pretok::PreTokenizerKind;
pub use stream::TokenStream;

use tokenizers::models::bpe::{Vocab, BPE};

use crate::{Error, Result};
use special::Fragment;

/// GGUF `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenType {
    Undefined,
    Normal,
    Unknown,
    /// Special tokens such as `<|im_start|>`: matched in text only when parsing specials.
    Control,
    /// Added tokens such as `<tool_call>`: always matched in text.
    UserDefined,
    /// Reserved slots (`[PAD151665]`): never produced, decoded as nothing.
    Unused,
    /// `<0xAB>` byte tokens.
    Byte,
}

impl TokenType {
    /// Maps a GGUF token type; `None` for values outside the spec.
    pub fn from_gguf(value: i64) -> Option<TokenType> {
        Some(match value {
            0 => TokenType::Undefined,
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => return None,
        })
    }
}

/// Token texts llama.cpp treats as end of generation, whatever their GGUF type
/// (`llama_vocab::impl::load`, "maintain a list of tokens that cause
/// end-of-generation"). llama.cpp also forces them to be control tokens.
const EOG_NAMES: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "<|end_of_text|>",
    "<end_of_utterance>",
    // Fill-in-the-middle pad, repository and file-separator tokens: llama.cpp
    // finds them by name and adds them to the end-of-generation set too.
    "<|fim_pad|>",
    "<fim-pad>",
    "<fim_pad>",
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<reponame>",
    "<|file_sep|>",
];

/// Everything needed to build a [`Tokenizer`], as read from GGUF metadata
/// (`tokenizer.ggml.*`). Tests fill it by hand.
#[derive(Clone, Debug, Default)]
pub struct TokenizerSpec {
    /// `tokenizer.ggml.model`; only "gpt2" (byte-level BPE) is supported.
    pub model: String,
    /// `tokenizer.ggml.pre`; empty means llama.cpp's "default".
    pub pre: String,
    /// `tokenizer.ggml.tokens`, indexed by id.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.token_type`; empty means every token is normal.
    pub token_types: Vec<TokenType>,
    /// `tokenizer.ggml.merges`, highest priority first, each "left right".
    pub merges: Vec<String>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    /// `tokenizer.ggml.eot_token_id`: an extra end-of-turn token.
    pub eot: Option<u32>,
    pub pad: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`; `None` takes llama.cpp's default for the pre-tokenizer.
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`; `None` means false.
    pub add_eos: Option<bool>,
}

/// A byte-level BPE tokenizer (GPT-2 style) with llama.cpp's special-token rules.
pub struct Tokenizer {
    /// Runs the pre-tokenizer and BPE on plain-text fragments; it knows no
    /// special tokens (we split those out first, as llama.cpp does).
    bpe: tokenizers::Tokenizer,
    pre: PreTokenizerKind,
    tokens: Vec<String>,
    types: Vec<TokenType>,
    /// Token `i` decodes to `piece_bytes[piece_offsets[i]..piece_offsets[i + 1]]`.
    piece_bytes: Vec<u8>,
    piece_offsets: Vec<usize>,
    /// Control, user-defined and unknown tokens, longest text first.
    specials: Vec<u32>,
    eog: Vec<u32>,
    bos: Option<u32>,
    eos: Option<u32>,
    pad: Option<u32>,
    add_bos: bool,
    add_eos: bool,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("pre", &self.pre)
            .field("vocab_size", &self.tokens.len())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("add_bos", &self.add_bos)
            .finish_non_exhaustive()
    }
}

impl Tokenizer {
    /// Builds a tokenizer from its parts; errors name the GGUF key at fault.
    pub fn from_spec(spec: TokenizerSpec) -> Result<Tokenizer> {
        check_model(&spec.model)?;
        let pre = PreTokenizerKind::from_name(&spec.pre).ok_or_else(|| {
            Error::Tokenizer(format!(
                "unsupported tokenizer.ggml.pre = {:?} (supported: default, gpt-2, llama-bpe, qwen2, smollm)",
                spec.pre
            ))
        })?;
        let n = spec.tokens.len();
        if n == 0 || u32::try_from(n).is_err() {
            return Err(Error::Tokenizer(format!(
                "tokenizer.ggml.tokens has {n} entries"
            )));
        }
        let mut types = if spec.token_types.is_empty() {
            vec![TokenType::Normal; n]
        } else if spec.token_types.len() == n {
            spec.token_types
        } else {
            return Err(Error::Tokenizer(format!(
                "tokenizer.ggml.token_type has {} entries but tokenizer.ggml.tokens has {n}",
                spec.token_types.len()
            )));
        };
        for (key, id) in [
            ("bos_token_id", spec.bos),
            ("eos_token_id", spec.eos),
            ("eot_token_id", spec.eot),
            ("padding_token_id", spec.pad),
        ] {
            if let Some(id) = id.filter(|&id| id as usize >= n) {
                return Err(Error::Tokenizer(format!(
                    "tokenizer.ggml.{key} = {id} is outside the vocabulary of {n} tokens"
                )));
            }
        }

        let mut eog: Vec<u32> = spec.eos.into_iter().chain(spec.eot).collect();
        for (id, text) in spec.tokens.iter().enumerate() {
            if EOG_NAMES.contains(&text.as_str()) {
                eog.push(id as u32);
                types[id] = TokenType::Control;
            }
        }
        eog.sort_unstable();
        eog.dedup();

        let bpe = build_bpe(&spec.tokens, &spec.merges, pre)?;
        let (piece_bytes, piece_offsets) = build_pieces(&spec.tokens, &types);

        let mut specials: Vec<u32> = (0..n as u32)
            .filter(|&id| {
                matches!(
                    types[id as usize],
                    TokenType::Control | TokenType::UserDefined | TokenType::Unknown
                )
            })
            .collect();
        // Longest first, as llama.cpp's special-token cache; ties by id so the
        // order does not depend on the sort.
        specials.sort_by(|&a, &b| {
            let (la, lb) = (spec.tokens[a as usize].len(), spec.tokens[b as usize].len());
            lb.cmp(&la).then(a.cmp(&b))
        });

        Ok(Tokenizer {
            bpe,
            pre,
            tokens: spec.tokens,
            types,
            piece_bytes,
            piece_offsets,
            specials,
            eog,
            bos: spec.bos,
            eos: spec.eos,
            pad: spec.pad,
            add_bos: spec.add_bos.unwrap_or(pre.default_add_bos()),
            add_eos: spec.add_eos.unwrap_or(false),
        })
    }

    /// Encodes `text`, adding BOS (and EOS) where the model asks for them.
    /// With `parse_special`, control tokens written in the text (`<|im_start|>`)
    /// become their ids; user-defined tokens are always matched.
    pub fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<u32>> {
        self.encode_with(text, true, parse_special)
    }

    /// [`Tokenizer::encode`] with llama.cpp's `add_special` made explicit:
    /// `false` never adds BOS/EOS (for text appended to an existing prompt).
    pub fn encode_with(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>> {
        let specials: Vec<(u32, &str)> = self
            .specials
            .iter()
            .filter(|&&id| parse_special || self.types[id as usize] == TokenType::UserDefined)
            .map(|&id| (id, self.tokens[id as usize].as_str()))
            .collect();

        let mut ids = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            ids.extend(self.bos);
        }
        for frag in special::partition(text, &specials) {
            match frag {
                Fragment::Token(id) => ids.push(id),
                Fragment::Text(t) => {
                    let enc = self
                        .bpe
                        .encode_fast(t, false)
                        .map_err(|e| Error::Tokenizer(format!("encoding {t:?}: {e}")))?;
                    ids.extend_from_slice(enc.get_ids());
                }
            }
        }
        if add_special && self.add_eos {
            ids.extend(self.eos);
        }
        Ok(ids)
    }

    /// The text of `ids`; special tokens render as their text, unused slots and
    /// ids outside the vocabulary as nothing, invalid UTF-8 as U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            bytes.extend_from_slice(self.token_bytes(id).unwrap_or_default());
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// A streaming decoder that yields only complete UTF-8 text.
    pub fn stream(&self) -> TokenStream<'_> {
        TokenStream::new(self)
    }

    /// The bytes token `id` stands for (what [`Tokenizer::decode`] concatenates).
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        let i = id as usize;
        let (start, end) = (*self.piece_offsets.get(i)?, *self.piece_offsets.get(i + 1)?);
        Some(&self.piece_bytes[start..end])
    }

    /// The vocabulary entry for `id`, as stored (byte-level form, e.g. "Ġthe").
    pub fn token_str(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// The id of a vocabulary entry, by its stored text.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.bpe.token_to_id(text)
    }

    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.types.get(id as usize).copied()
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    pub fn pre_tokenizer(&self) -> PreTokenizerKind {
        self.pre
    }

    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    pub fn pad(&self) -> Option<u32> {
        self.pad
    }

    /// Whether [`Tokenizer::encode`] starts with BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos && self.bos.is_some()
    }

    /// End of generation: EOS, EOT, and the end-of-turn control tokens
    /// llama.cpp recognises by name (`<|im_end|>`, `<|endoftext|>`, ...).
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }

    /// All end-of-generation ids, sorted.
    pub fn eog_ids(&self) -> &[u32] {
        &self.eog
    }
}

/// Only byte-level BPE ("gpt2") is supported.
fn check_model(model: &str) -> Result<()> {
    if model == "gpt2" {
        return Ok(());
    }
    Err(Error::Tokenizer(format!(
        "unsupported tokenizer.ggml.model = {model:?} (supported: \"gpt2\", byte-level BPE)"
    )))
}

/// The BPE model and pre-tokenizer for plain-text fragments.
fn build_bpe(
    tokens: &[String],
    merges: &[String],
    pre: PreTokenizerKind,
) -> Result<tokenizers::Tokenizer> {
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(id, t)| (t.clone(), id as u32))
        .collect();
    let merges = merges
        .iter()
        .enumerate()
        .map(|(i, m)| {
            // Split at the first space after the first char, as llama.cpp does:
            // byte-level tokens never contain a literal space.
            m.bytes()
                .skip(1)
                .position(|b| b == b' ')
                .map(|p| (m[..p + 1].to_string(), m[p + 2..].to_string()))
                .ok_or_else(|| {
                    Error::Tokenizer(format!("tokenizer.ggml.merges[{i}] = {m:?} has no space"))
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let model = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(pre.ignore_merges())
        .build()
        .map_err(|e| Error::Tokenizer(format!("tokenizer.ggml.merges: {e}")))?;
    let mut tok = tokenizers::Tokenizer::new(model);
    tok.with_pre_tokenizer(Some(pre.build()?));
    Ok(tok)
}

/// Each token's bytes, flattened, following llama.cpp's `token_to_piece` for BPE vocabularies.
fn build_pieces(tokens: &[String], types: &[TokenType]) -> (Vec<u8>, Vec<usize>) {
    let mut bytes = Vec::with_capacity(tokens.iter().map(String::len).sum());
    let mut offsets = Vec::with_capacity(tokens.len() + 1);
    offsets.push(0);
    for (text, ty) in tokens.iter().zip(types) {
        match ty {
            TokenType::Normal => bytes.extend(bytes::byte_level_decode(text)),
            TokenType::Control | TokenType::UserDefined | TokenType::Unknown => {
                bytes.extend_from_slice(text.as_bytes())
            }
            TokenType::Byte => bytes.extend(bytes::parse_byte_token(text)),
            TokenType::Unused | TokenType::Undefined => {}
        }
        offsets.push(bytes.len());
    }
    (bytes, offsets)
}
