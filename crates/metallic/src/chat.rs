//! Chat templates: the Jinja template a model ships in `tokenizer.chat_template`,
//! rendered with `minijinja` the way Hugging Face `transformers` renders it
//! (`apply_chat_template`): `trim_blocks` and `lstrip_blocks` on, the final
//! newline of the template dropped (Jinja's default `keep_trailing_newline =
//! False`), Python string methods (`.strip()`, `.startswith()`...) through
//! `minijinja_contrib::pycompat`, a `raise_exception` function, Python's
//! `json.dumps` spacing for `tojson`, and `tools` set to none.

use std::collections::BTreeMap;

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, ErrorKind, Value};

use crate::gguf::GgufFile;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

#[cfg(test)]
mod tests;
mod tojson;

/// The GGUF key holding the template.
pub const CHAT_TEMPLATE_KEY: &str = "tokenizer.chat_template";

/// One turn of a conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// "system", "user" or "assistant" (templates may know others, e.g. "tool").
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }

    pub fn system(content: impl Into<String>) -> Message {
        Message::new("system", content)
    }

    pub fn user(content: impl Into<String>) -> Message {
        Message::new("user", content)
    }

    pub fn assistant(content: impl Into<String>) -> Message {
        Message::new("assistant", content)
    }

    fn to_value(&self) -> Value {
        let map = BTreeMap::from([
            ("role", Value::from(self.role.as_str())),
            ("content", Value::from(self.content.as_str())),
        ]);
        Value::from(map)
    }
}

/// A compiled chat template with the BOS/EOS strings it may refer to.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos: String,
    eos: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .finish_non_exhaustive()
    }
}

const NAME: &str = "chat_template";

impl ChatTemplate {
    /// Compiles `source`; `bos`/`eos` are what `bos_token`/`eos_token` render as.
    pub fn new(source: &str, bos: &str, eos: &str) -> Result<ChatTemplate> {
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(false)
            .build()
            .map_err(template_error)?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_filter("tojson", tojson::tojson);
        env.add_template_owned(NAME, source.to_string())
            .map_err(template_error)?;
        Ok(ChatTemplate {
            env,
            bos: bos.to_string(),
            eos: eos.to_string(),
        })
    }

    /// The model's template, or `None` if the file has none. `bos_token` and
    /// `eos_token` are the texts of the tokenizer's BOS and EOS tokens.
    pub fn from_gguf(file: &GgufFile, tokenizer: &Tokenizer) -> Result<Option<ChatTemplate>> {
        let Some(source) = file.opt(CHAT_TEMPLATE_KEY, GgufFile::get_str)? else {
            return Ok(None);
        };
        let text = |id: Option<u32>| id.map(|id| tokenizer.decode(&[id])).unwrap_or_default();
        ChatTemplate::new(source, &text(tokenizer.bos()), &text(tokenizer.eos())).map(Some)
    }

    /// Renders a conversation; with `add_generation_prompt`, ends with the
    /// header of an assistant turn for the model to complete.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let template = self.env.get_template(NAME).map_err(template_error)?;
        let messages: Vec<Value> = messages.iter().map(Message::to_value).collect();
        let ctx = minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos.as_str(),
            eos_token => self.eos.as_str(),
            // transformers passes `tools=None` when the caller gives none.
            tools => Value::from(()),
        };
        template.render(ctx).map_err(template_error)
    }

    pub fn bos_token(&self) -> &str {
        &self.bos
    }

    pub fn eos_token(&self) -> &str {
        &self.eos
    }
}

/// transformers' `raise_exception(message)`: templates call it to reject a
/// conversation (e.g. roles that do not alternate).
fn raise_exception(message: String) -> std::result::Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
}

fn template_error(e: minijinja::Error) -> Error {
    // Display gives the kind, the detail and the template line.
    Error::Template(e.to_string())
}
