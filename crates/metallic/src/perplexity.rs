//! Perplexity with llama.cpp's convention (`llama-perplexity`): the token
//! stream is cut into non-overlapping chunks of `n_ctx` tokens; each chunk is
//! evaluated from an empty cache (its first token replaced by BOS when the
//! model adds one), and only its second half is scored: logits at positions
//! `n_ctx/2 .. n_ctx-2` predict the tokens that follow them.

use crate::error::{Error, Result};
use crate::model::{Logits, Model};

#[derive(Debug, Clone)]
pub struct Perplexity {
    pub ppl: f64,
    /// llama.cpp's uncertainty: `ppl * sqrt(var(nll) / (count - 1))`.
    pub err: f64,
    /// Running PPL after each chunk (what llama.cpp prints as `[i]x`).
    pub running: Vec<f64>,
    pub scored_tokens: usize,
}

/// Scores `tokens` in chunks of `n_ctx`; `bos` replaces each chunk's first
/// token when the model adds a BOS. `on_chunk(i, running_ppl)` reports progress.
pub fn perplexity(
    model: &Model,
    tokens: &[u32],
    n_ctx: usize,
    bos: Option<u32>,
    on_chunk: &mut dyn FnMut(usize, f64),
) -> Result<Perplexity> {
    if n_ctx < 4 {
        return Err(Error::op(
            "perplexity",
            format!("context {n_ctx} is too small (>= 4)"),
        ));
    }
    let n_chunk = tokens.len() / n_ctx;
    if n_chunk == 0 {
        return Err(Error::op(
            "perplexity",
            format!(
                "the text has {} tokens, fewer than one chunk of {n_ctx}",
                tokens.len()
            ),
        ));
    }
    let first = n_ctx / 2;
    let mut state = model.new_state(n_ctx)?;
    let (mut nll, mut nll2, mut count) = (0.0f64, 0.0f64, 0usize);
    let mut running = Vec::with_capacity(n_chunk);
    for c in 0..n_chunk {
        let mut chunk = tokens[c * n_ctx..(c + 1) * n_ctx].to_vec();
        if let Some(b) = bos {
            chunk[0] = b;
        }
        state.reset();
        let logits = model
            .forward(&mut state, &chunk, Logits::All)?
            .to_vec_f32()?;
        let vocab = model.cfg.vocab;
        for j in first..n_ctx - 1 {
            let row = &logits[j * vocab..(j + 1) * vocab];
            let target = tokens[c * n_ctx + j + 1] as usize;
            let v = -log_softmax_at(row, target);
            nll += v;
            nll2 += v * v;
            count += 1;
        }
        let ppl = (nll / count as f64).exp();
        running.push(ppl);
        on_chunk(c, ppl);
    }
    let mean = nll / count as f64;
    let ppl = mean.exp();
    let var = nll2 / count as f64 - mean * mean;
    let err = if var > 0.0 && count > 1 {
        (var / (count - 1) as f64).sqrt() * ppl
    } else {
        0.0
    };
    Ok(Perplexity {
        ppl,
        err,
        running,
        scored_tokens: count,
    })
}

/// `log softmax(row)[i]`, in f64 with max subtraction.
pub fn log_softmax_at(row: &[f32], i: usize) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
    row[i] as f64 - max - sum.ln()
}
