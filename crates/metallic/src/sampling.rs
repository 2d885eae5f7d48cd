//! Choosing the next token from logits, in llama.cpp's default order
//! (`common/sampling.cpp`): penalties over recent history, top-k, top-p, min-p,
//! temperature, then a draw from the softmax with a seeded generator.
//!
//! Temperature 0 means greedy argmax (after penalties), as llama.cpp's `temp`
//! sampler keeps only the largest logit then. Same seed and inputs, same tokens.

use std::collections::HashMap;

use crate::{Error, Result};

#[cfg(test)]
mod tests;

/// Sampling settings; the defaults are llama.cpp's (`common_params_sampling`).
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    /// Divides the logits; 0 = greedy.
    pub temperature: f32,
    /// Keep the k most likely tokens; 0 = off.
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches p; 1 = off.
    pub top_p: f32,
    /// Drop tokens less likely than min_p times the most likely one; 0 = off.
    pub min_p: f32,
    /// Divides positive (multiplies negative) logits of recent tokens; 1 = off.
    pub repeat_penalty: f32,
    /// Subtracted once from the logit of every recent token.
    pub presence_penalty: f32,
    /// Subtracted from a recent token's logit per occurrence.
    pub frequency_penalty: f32,
    /// How many of the last tokens the penalties look at; 0 = off.
    pub repeat_last_n: usize,
    /// The library never draws entropy itself: callers wanting a random run
    /// pass a random seed.
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> SamplingParams {
        SamplingParams {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            repeat_last_n: 64,
            // llama.cpp's LLAMA_DEFAULT_SEED value (there it means "random").
            seed: 0xFFFF_FFFF,
        }
    }
}

impl SamplingParams {
    /// Always the most likely token; no penalties.
    pub fn greedy() -> SamplingParams {
        SamplingParams {
            temperature: 0.0,
            ..SamplingParams::default()
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::Sampling(msg));
        for (name, v) in [
            ("temperature", self.temperature),
            ("top_p", self.top_p),
            ("min_p", self.min_p),
            ("repeat_penalty", self.repeat_penalty),
            ("presence_penalty", self.presence_penalty),
            ("frequency_penalty", self.frequency_penalty),
        ] {
            if !v.is_finite() {
                return bad(format!("{name} is {v}, must be a finite number"));
            }
        }
        if self.temperature < 0.0 {
            return bad(format!(
                "temperature is {}, must be >= 0 (0 = greedy)",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!(
                "top_p is {}, must be in (0, 1] (1 = off)",
                self.top_p
            ));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad(format!(
                "min_p is {}, must be in [0, 1] (0 = off)",
                self.min_p
            ));
        }
        if self.repeat_penalty <= 0.0 {
            return bad(format!(
                "repeat_penalty is {}, must be > 0 (1 = off)",
                self.repeat_penalty
            ));
        }
        Ok(())
    }

    fn penalties_on(&self) -> bool {
        self.repeat_last_n > 0
            && (self.repeat_penalty != 1.0
                || self.presence_penalty != 0.0
                || self.frequency_penalty != 0.0)
    }
}

/// A seeded sampler; keeps its scratch buffers between calls.
#[derive(Debug)]
pub struct Sampler {
    params: SamplingParams,
    rng: Xoshiro256,
    /// (token, logit) candidates of the current step.
    cands: Vec<(u32, f32)>,
    counts: HashMap<u32, u32>,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Result<Sampler> {
        params.validate()?;
        Ok(Sampler {
            rng: Xoshiro256::new(params.seed),
            params,
            cands: Vec::new(),
            counts: HashMap::new(),
        })
    }

    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Picks the next token from `logits` (one per vocabulary entry), with
    /// `history` the tokens so far (prompt included) for the penalties.
    /// NaN logits count as impossible; with no possible token (empty or
    /// all -inf/NaN logits) the lowest id, 0, is returned.
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        self.cands.clear();
        self.cands.extend(
            logits
                .iter()
                .enumerate()
                .map(|(i, &l)| (i as u32, if l.is_nan() { f32::NEG_INFINITY } else { l })),
        );
        self.apply_penalties(history);
        if self.params.temperature <= 0.0 {
            return argmax(&self.cands);
        }
        self.apply_top_k();
        self.apply_top_p();
        self.apply_min_p();
        self.draw()
    }

    /// llama.cpp's `penalties` sampler over the last `repeat_last_n` tokens.
    fn apply_penalties(&mut self, history: &[u32]) {
        let p = &self.params;
        if !p.penalties_on() {
            return;
        }
        self.counts.clear();
        let recent = &history[history.len().saturating_sub(p.repeat_last_n)..];
        for &t in recent {
            *self.counts.entry(t).or_insert(0) += 1;
        }
        for (&t, &n) in &self.counts {
            // Candidates are still indexed by id here; ids past the vocabulary are ignored.
            let Some((_, l)) = self.cands.get_mut(t as usize) else {
                continue;
            };
            if *l <= 0.0 {
                *l *= p.repeat_penalty;
            } else {
                *l /= p.repeat_penalty;
            }
            *l -= n as f32 * p.frequency_penalty + p.presence_penalty;
        }
    }

    /// Keeps the k largest, sorted (largest first, ties by lower id).
    fn apply_top_k(&mut self) {
        let k = self.params.top_k;
        if k > 0 && k < self.cands.len() {
            self.cands.select_nth_unstable_by(k - 1, by_logit_desc);
            self.cands.truncate(k);
        }
        // top-p needs the order; min-p and the draw do not, so skip the full
        // sort when neither top-k nor top-p is on.
        if k > 0 || self.params.top_p < 1.0 {
            self.cands.sort_unstable_by(by_logit_desc);
        }
    }

    /// Keeps the smallest prefix (at least one token) whose probability reaches top_p.
    fn apply_top_p(&mut self) {
        let p = self.params.top_p;
        if p >= 1.0 || self.cands.is_empty() {
            return;
        }
        let max = self.cands[0].1;
        let total: f64 = self.cands.iter().map(|&(_, l)| exp_rel(l, max)).sum();
        if total <= 0.0 {
            return;
        }
        let mut cum = 0.0;
        let mut keep = self.cands.len();
        for (i, &(_, l)) in self.cands.iter().enumerate() {
            cum += exp_rel(l, max) / total;
            if cum >= p as f64 {
                keep = i + 1;
                break;
            }
        }
        self.cands.truncate(keep);
    }

    /// Drops tokens whose probability is below min_p times the largest:
    /// logit < max + ln(min_p).
    fn apply_min_p(&mut self) {
        let min_p = self.params.min_p;
        if min_p <= 0.0 || self.cands.is_empty() {
            return;
        }
        let max = self
            .cands
            .iter()
            .map(|c| c.1)
            .fold(f32::NEG_INFINITY, f32::max);
        if max == f32::NEG_INFINITY {
            return;
        }
        let threshold = max + min_p.ln();
        // The largest always passes (ln(min_p) <= 0), so one token remains.
        self.cands.retain(|&(_, l)| l >= threshold);
    }

    /// Temperature, softmax, and a draw.
    fn draw(&mut self) -> u32 {
        let max = self
            .cands
            .iter()
            .map(|c| c.1)
            .fold(f32::NEG_INFINITY, f32::max);
        if max == f32::NEG_INFINITY {
            return argmax(&self.cands);
        }
        let inv_t = 1.0 / self.params.temperature as f64;
        let weight = |l: f32| ((l as f64 - max as f64) * inv_t).exp();
        let total: f64 = self.cands.iter().map(|&(_, l)| weight(l)).sum();
        let target = self.rng.next_f64() * total;
        let mut cum = 0.0;
        let mut last = None;
        for &(t, l) in &self.cands {
            let w = weight(l);
            if w <= 0.0 {
                continue;
            }
            cum += w;
            last = Some(t);
            if target < cum {
                return t;
            }
        }
        // Rounding left `target` at the very top: the last possible token.
        last.unwrap_or_else(|| argmax(&self.cands))
    }
}

/// exp(l - max) in f64; 0 for -inf.
fn exp_rel(l: f32, max: f32) -> f64 {
    (l as f64 - max as f64).exp()
}

/// Larger logit first; equal logits by lower id, so results never depend on
/// the sort's stability.
fn by_logit_desc(a: &(u32, f32), b: &(u32, f32)) -> std::cmp::Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

/// The largest logit's id, the lowest id on ties; 0 when there are none.
fn argmax(cands: &[(u32, f32)]) -> u32 {
    cands
        .iter()
        .copied()
        .min_by(by_logit_desc)
        .map_or(0, |(t, _)| t)
}

/// xoshiro256** (Blackman & Vigna), seeded through SplitMix64: small, fast,
/// and reproducible across platforms, which is all sampling needs.
#[derive(Debug, Clone)]
struct Xoshiro256 {
    s: [u64; 4],
}

impl Xoshiro256 {
    fn new(seed: u64) -> Xoshiro256 {
        let mut x = seed;
        let mut split_mix = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Xoshiro256 {
            s: [split_mix(), split_mix(), split_mix(), split_mix()],
        }
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1), 53 random bits.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}
