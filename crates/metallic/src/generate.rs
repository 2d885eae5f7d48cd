//! Text generation: prefill a prompt as one batch, then decode token by token,
//! streaming text. Multi-turn chat reuses the KV cache for the part of the new
//! prompt that is already cached.

use std::time::Instant;

use crate::error::{Error, Result};
use crate::model::{Logits, Model, State};
use crate::sampling::Sampler;
use crate::tokenizer::{TokenStream, Tokenizer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced an end-of-generation token.
    EndOfGeneration,
    /// The requested number of tokens was generated.
    Length,
    /// The context is full.
    ContextFull,
}

#[derive(Debug, Clone)]
pub struct Generation {
    /// Generated token ids (the end-of-generation token excluded).
    pub tokens: Vec<u32>,
    /// Prompt tokens actually run (after reusing the cached prefix).
    pub prompt_tokens_run: usize,
    pub prompt_secs: f64,
    pub gen_secs: f64,
    pub stop: StopReason,
}

/// A model, its tokenizer and one sequence, with the token ids its cache holds.
pub struct Session<'m> {
    pub model: &'m Model,
    pub tokenizer: &'m Tokenizer,
    pub state: State,
    /// Token ids whose K/V are in the cache, in order.
    pub cached: Vec<u32>,
}

impl<'m> Session<'m> {
    pub fn new(model: &'m Model, tokenizer: &'m Tokenizer, ctx: usize) -> Result<Session<'m>> {
        Ok(Session {
            model,
            tokenizer,
            state: model.new_state(ctx)?,
            cached: Vec::new(),
        })
    }

    /// Generates up to `max_new` tokens after `prompt` (the full token
    /// sequence of the conversation so far), calling `on_text` with each
    /// complete piece of UTF-8 text.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        max_new: usize,
        sampler: &mut Sampler,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Generation> {
        if prompt.is_empty() {
            return Err(Error::op("generate", "the prompt is empty"));
        }
        let ctx = self.state.kv.ctx;
        if prompt.len() > ctx {
            return Err(Error::ContextOverflow {
                need: prompt.len(),
                ctx,
            });
        }
        // Reuse the cached prefix; always run at least the last prompt token
        // to get its logits.
        let common = self
            .cached
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count()
            .min(prompt.len() - 1);
        self.state.truncate(common);
        self.cached.truncate(common);

        let t0 = Instant::now();
        let logits = self
            .model
            .forward(&mut self.state, &prompt[common..], Logits::Last)?;
        let mut logits = logits.to_vec_f32()?;
        self.cached.extend_from_slice(&prompt[common..]);
        let prompt_secs = t0.elapsed().as_secs_f64();

        let t1 = Instant::now();
        let mut stream = TokenStream::new(self.tokenizer);
        let mut out = Vec::new();
        let mut stop = StopReason::Length;
        let mut history = prompt.to_vec();
        while out.len() < max_new {
            let id = sampler.sample(&logits, &history);
            if self.tokenizer.is_eog(id) {
                stop = StopReason::EndOfGeneration;
                break;
            }
            out.push(id);
            history.push(id);
            if let Some(text) = stream.push(id) {
                on_text(&text);
            }
            if out.len() == max_new {
                break;
            }
            if self.state.pos >= ctx {
                stop = StopReason::ContextFull;
                break;
            }
            logits = self
                .model
                .forward(&mut self.state, &[id], Logits::Last)?
                .to_vec_f32()?;
            self.cached.push(id);
        }
        if let Some(text) = stream.flush() {
            on_text(&text);
        }
        Ok(Generation {
            tokens: out,
            prompt_tokens_run: prompt.len() - common,
            prompt_secs,
            gen_secs: t1.elapsed().as_secs_f64(),
            stop,
        })
    }
}
