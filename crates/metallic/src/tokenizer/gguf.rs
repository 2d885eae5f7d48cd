//! Reading a [`TokenizerSpec`] from GGUF metadata (`tokenizer.ggml.*`, GGUF
//! spec "Tokenizer" section).

use super::{check_model, TokenType, Tokenizer, TokenizerSpec};
use crate::gguf::GgufFile;
use crate::{Error, Result};

impl TokenizerSpec {
    /// The tokenizer keys of `file`; errors name the key that is missing or wrong.
    pub fn from_gguf(file: &GgufFile) -> Result<TokenizerSpec> {
        // Checked first: other models (SentencePiece "llama") have no merges,
        // and "unsupported model" is the useful message.
        let model = file.get_str("tokenizer.ggml.model")?;
        check_model(model)?;
        let owned = |key: &str| -> Result<Vec<String>> {
            Ok(file
                .get_string_array(key)?
                .into_iter()
                .map(str::to_string)
                .collect())
        };
        let opt_u32 = |key: &str| file.opt(key, GgufFile::get_u32);
        let opt_bool = |key: &str| file.opt(key, GgufFile::get_bool);

        const TYPES: &str = "tokenizer.ggml.token_type";
        let token_types = match file.opt(TYPES, GgufFile::get_array)? {
            None => Vec::new(),
            Some(values) => values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_i64().and_then(TokenType::from_gguf).ok_or_else(|| {
                        Error::Tokenizer(format!("{TYPES}[{i}] = {v} is not a token type (0..=6)"))
                    })
                })
                .collect::<Result<Vec<_>>>()?,
        };

        Ok(TokenizerSpec {
            model: model.to_string(),
            pre: file
                .opt("tokenizer.ggml.pre", GgufFile::get_str)?
                .unwrap_or_default()
                .to_string(),
            tokens: owned("tokenizer.ggml.tokens")?,
            token_types,
            // Required for BPE, as in llama.cpp.
            merges: owned("tokenizer.ggml.merges")?,
            bos: opt_u32("tokenizer.ggml.bos_token_id")?,
            eos: opt_u32("tokenizer.ggml.eos_token_id")?,
            eot: opt_u32("tokenizer.ggml.eot_token_id")?,
            pad: opt_u32("tokenizer.ggml.padding_token_id")?,
            add_bos: opt_bool("tokenizer.ggml.add_bos_token")?,
            add_eos: opt_bool("tokenizer.ggml.add_eos_token")?,
        })
    }
}

impl Tokenizer {
    /// Builds the tokenizer stored in a GGUF file's metadata.
    pub fn from_gguf(file: &GgufFile) -> Result<Tokenizer> {
        Tokenizer::from_spec(TokenizerSpec::from_gguf(file)?)
    }
}
