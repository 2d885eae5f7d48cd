//! The decoder, top to bottom as the paper reads: embed, then per layer
//! `x += Wo * attn(rope(Wq * norm(x)), rope(Wk * norm(x)), Wv * norm(x))` and
//! `x += Wdown * (silu(Wgate * norm(x)) * Wup * norm(x))`, then the final norm
//! and the output projection. Residual adds are fused into the projections'
//! epilogue (`beta = 1`, C = D).

use crate::cuda::ops as cuda_ops;
use crate::cuda::{CudaGraph, DeviceBuffer};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use crate::ops::attention::{attention, Attention};
use crate::ops::copy::copy;
use crate::ops::fused::{rms_norm_matmul, rms_norm_matmuls, rms_norm_swiglu};
use crate::ops::get_rows::get_rows;
use crate::ops::matmul::{matmul, Matmul, MatmulBackend};
use crate::ops::rope::{rope, Rope};
use crate::tensor::{DType, Tensor};

use super::{KvCache, ModelConfig, Weights};

/// Run-time choices for a loaded model.
#[derive(Debug, Clone)]
pub struct ModelOptions {
    pub device: Device,
    pub matmul: MatmulBackend,
    /// KV cache element type (llama.cpp's default is F16).
    pub kv_dtype: DType,
    /// On CUDA, replay the decode step as a CUDA graph (see [`State`]);
    /// default on unless `METALLIC_CUDA_GRAPH=off`.
    pub cuda_graph: bool,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            device: Device::Cpu,
            matmul: MatmulBackend::Auto,
            kv_dtype: DType::F16,
            cuda_graph: graphs_enabled(),
        }
    }
}

pub struct Model {
    pub cfg: ModelConfig,
    pub weights: Weights,
    pub opts: ModelOptions,
}

/// Which positions' logits a forward pass returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Only the last token's (generation).
    Last,
    /// Every token's (perplexity, teacher forcing).
    All,
}

/// Activation buffers for up to `cap` tokens per step, reused across steps so
/// a decode step (one token) allocates no tensors.
struct Workspace {
    cap: usize,
    x: Tensor,
    h: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn: Tensor,
    gate: Tensor,
    up: Tensor,
    act: Tensor,
    logits: Tensor,
}

impl Workspace {
    fn new(cfg: &ModelConfig, cap: usize, device: &Device) -> Result<Workspace> {
        let z = |cols: usize| Tensor::zeros(&[cap, cols], DType::F32, device);
        let (q, kv) = (cfg.n_head * cfg.head_dim, cfg.n_head_kv * cfg.head_dim);
        Ok(Workspace {
            cap,
            x: z(cfg.n_embd)?,
            h: z(cfg.n_embd)?,
            q: z(q)?,
            k: z(kv)?,
            v: z(kv)?,
            attn: z(q)?,
            gate: z(cfg.n_ff)?,
            up: z(cfg.n_ff)?,
            act: z(cfg.n_ff)?,
            logits: z(cfg.vocab)?,
        })
    }
}

/// A sequence's state: its KV cache, how many positions it holds, and the
/// step buffers.
pub struct State {
    pub kv: KvCache,
    pub pos: usize,
    ws: Option<Workspace>,
    graph: DecodeGraph,
}

/// On CUDA, the decode step (one token, the last logits) captured as a
/// graph at the second such step (the first, launched as usual, loads every
/// kernel and fills the buffer pool outside the capture) and replayed at
/// every later one: one driver call a token instead of one per kernel. The
/// token and its position are read on the device from `step` (a u32 at
/// byte 0, an i64 at byte 8), written before each replay. The graph holds
/// the addresses of the step buffers and the cache: it is dropped when the
/// buffers are replaced.
enum DecodeGraph {
    /// No decode step since the step buffers were made.
    None,
    /// One decode step ran: the next is captured.
    Warm,
    Ready {
        graph: CudaGraph,
        step: DeviceBuffer,
    },
    /// Not used for this state: [`ModelOptions::cuda_graph`] off, kernel
    /// profiling on, or the capture failed (said once in the log).
    Off,
}

/// Where a step's tokens and first position come from.
#[derive(Clone, Copy)]
enum StepIn<'a> {
    Host {
        tokens: &'a [u32],
        pos: usize,
    },
    /// One token (u32) at device address `ids`, its position (i64) at `pos`
    /// (a decode graph's replays).
    Device {
        ids: u64,
        pos: u64,
    },
}

/// `METALLIC_CUDA_GRAPH=off`: decode launches every kernel itself (for A/B
/// timing and for tools that follow launches); read once, the default of
/// [`ModelOptions::cuda_graph`].
fn graphs_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("METALLIC_CUDA_GRAPH").map_or(true, |v| v != "off"))
}

impl State {
    /// Forget the sequence (the cache is overwritten from position 0).
    pub fn reset(&mut self) {
        self.pos = 0;
    }

    /// Drop positions from `pos` on (e.g. to reuse a common chat prefix).
    pub fn truncate(&mut self, pos: usize) {
        self.pos = self.pos.min(pos);
    }
}

impl Model {
    pub fn load(
        file: &GgufFile,
        opts: ModelOptions,
        on_tensor: &mut dyn FnMut(usize),
    ) -> Result<Model> {
        let cfg = ModelConfig::from_gguf(file)?;
        let weights = Weights::load(file, &cfg, &opts.device, on_tensor)?;
        Ok(Model { cfg, weights, opts })
    }

    /// A fresh state with room for `ctx` positions.
    pub fn new_state(&self, ctx: usize) -> Result<State> {
        if ctx == 0 {
            return Err(Error::op("model", "context length must be positive"));
        }
        Ok(State {
            kv: KvCache::new(&self.cfg, ctx, self.opts.kv_dtype, &self.opts.device)?,
            pos: 0,
            ws: None,
            graph: DecodeGraph::None,
        })
    }

    fn mm(&self) -> Matmul<'static> {
        Matmul {
            backend: self.opts.matmul,
            ..Default::default()
        }
    }

    /// Runs `tokens` at positions `state.pos..`, appends them to the cache and
    /// returns logits `[1 or tokens.len(), vocab]` (a view of the step buffer,
    /// valid until the next call).
    pub fn forward(&self, state: &mut State, tokens: &[u32], which: Logits) -> Result<Tensor> {
        // The ops split their work with rayon. Called from outside the pool,
        // every op would hand its job to a worker and sleep until it is done
        // (a thread wake-up per op, hundreds per token); run the whole pass
        // on a worker instead, which takes part in each op's work itself.
        // On CUDA the host work is queueing: no hand-off at all.
        let cpu = matches!(self.opts.device, Device::Cpu);
        if cpu && rayon::current_thread_index().is_none() {
            return rayon::scope(|_| self.forward_in_pool(state, tokens, which));
        }
        self.forward_in_pool(state, tokens, which)
    }

    fn forward_in_pool(&self, state: &mut State, tokens: &[u32], which: Logits) -> Result<Tensor> {
        let cfg = &self.cfg;
        let seq = tokens.len();
        if seq == 0 {
            return Err(Error::op("model", "forward needs at least one token"));
        }
        let pos = state.pos;
        if pos + seq > state.kv.ctx {
            return Err(Error::ContextOverflow {
                need: pos + seq,
                ctx: state.kv.ctx,
            });
        }
        if state.ws.as_ref().is_none_or(|w| w.cap < seq) {
            // A captured graph writes into the old buffers: it goes first.
            state.graph = DecodeGraph::None;
            state.ws = Some(Workspace::new(cfg, seq, &self.opts.device)?);
        }
        let logits = if seq == 1 && which == Logits::Last {
            self.decode_graph(state, tokens[0])?
        } else {
            None
        };
        let logits = match logits {
            Some(l) => l,
            None => self.step(state, seq, StepIn::Host { tokens, pos }, which)?,
        };
        state.pos = pos + seq;
        Ok(logits)
    }

    /// The decode step through its CUDA graph (captured now if this is the
    /// second step), or `None` where it runs as usual (see [`DecodeGraph`]).
    fn decode_graph(&self, state: &mut State, token: u32) -> Result<Option<Tensor>> {
        let Device::Cuda(dev) = &self.opts.device else {
            return Ok(None);
        };
        // get_rows's check, which the replay (reading the id on the device)
        // does not run.
        let vocab = self.weights.tok_embd.dim(0);
        if token as usize >= vocab {
            crate::bail!(
                "get_rows",
                "id {token} (ids[0]) out of range for vocab {vocab}"
            );
        }
        if matches!(state.graph, DecodeGraph::None) {
            state.graph = if !self.opts.cuda_graph || dev.profiling() {
                DecodeGraph::Off
            } else {
                DecodeGraph::Warm
            };
            return Ok(None);
        }
        if matches!(state.graph, DecodeGraph::Warm) {
            let step = dev.alloc(16)?;
            let at = StepIn::Device {
                ids: step.ptr(),
                pos: step.ptr() + 8,
            };
            match dev.capture(|| self.step(state, 1, at, Logits::Last).map(|_| ())) {
                Ok(graph) => state.graph = DecodeGraph::Ready { graph, step },
                Err(e) => {
                    log::info!("decode step not captured as a CUDA graph ({e}); launching its kernels one by one");
                    state.graph = DecodeGraph::Off;
                    return Ok(None);
                }
            }
        }
        let DecodeGraph::Ready { graph, step } = &state.graph else {
            return Ok(None);
        };
        let mut args = [0u8; 16];
        args[..4].copy_from_slice(&token.to_le_bytes());
        args[8..].copy_from_slice(&(state.pos as i64).to_le_bytes());
        dev.write(step, &args)?;
        graph.launch()?;
        let ws = state.ws.as_ref().expect("made by forward");
        Ok(Some(ws.logits.narrow(0, 0, 1)?))
    }

    /// Queues one step of `seq` tokens (the workspace holds at least `seq`
    /// rows; the cache room was checked) and returns its logits; the caller
    /// advances `state.pos`.
    fn step(&self, state: &State, seq: usize, at: StepIn, which: Logits) -> Result<Tensor> {
        let cfg = &self.cfg;
        let ws = state.ws.as_ref().expect("made by forward");
        let pos = match at {
            StepIn::Host { pos, .. } => pos,
            // Read on the device; the host's views start at row 0.
            StepIn::Device { .. } => 0,
        };
        let rows = |t: &Tensor| t.narrow(0, 0, seq);
        let heads = |t: &Tensor, n: usize| t.narrow(0, 0, seq)?.reshape(&[seq, n, cfg.head_dim]);
        let x = rows(&ws.x)?;
        let h = rows(&ws.h)?;
        let (q, k, v) = (rows(&ws.q)?, rows(&ws.k)?, rows(&ws.v)?);
        let attn = rows(&ws.attn)?;
        let (gate, up, act) = (rows(&ws.gate)?, rows(&ws.up)?, rows(&ws.act)?);
        let rope_p = Rope {
            mode: cfg.arch.rope_mode(),
            base: cfg.rope_base,
            dims: cfg.rope_dims,
            pos_offset: pos,
        };
        let attn_p = Attention {
            scale: 1.0 / (cfg.head_dim as f32).sqrt(),
            pos_offset: pos,
        };
        let w = &self.weights;
        match at {
            StepIn::Host { tokens, .. } => get_rows(&w.tok_embd, tokens, &x)?,
            StepIn::Device { ids, .. } => cuda_ops::get_rows::get_rows_at(&w.tok_embd, ids, 1, &x)?,
        }
        for (li, lw) in w.layers.iter().enumerate() {
            // RMSNorm and the q, k, v projections: one launch where a
            // fused kernel takes them (a decode step on CUDA).
            let proj = [
                (&lw.wq, lw.bq.as_ref(), &q),
                (&lw.wk, lw.bk.as_ref(), &k),
                (&lw.wv, lw.bv.as_ref(), &v),
            ];
            rms_norm_matmuls(&x, (&lw.attn_norm, cfg.rms_eps), &proj, &self.mm(), &h)?;
            let qh = heads(&ws.q, cfg.n_head)?;
            let kh = heads(&ws.k, cfg.n_head_kv)?;
            let vh = heads(&ws.v, cfg.n_head_kv)?;
            let ah = heads(&ws.attn, cfg.n_head)?;
            let (kc, vc) = (&state.kv.k[li], &state.kv.v[li]);
            let cuda = matches!(self.opts.device, Device::Cuda(_));
            match at {
                StepIn::Host { .. } if !cuda => {
                    rope(&qh, &rope_p, &qh)?;
                    rope(&kh, &rope_p, &kh)?;
                    copy(&kh, &kc.narrow(0, pos, seq)?)?;
                    copy(&vh, &vc.narrow(0, pos, seq)?)?;
                    let (kv, vv) = (kc.narrow(0, 0, pos + seq)?, vc.narrow(0, 0, pos + seq)?);
                    attention(&qh, &kv, &vv, &attn_p, &ah)?;
                }
                // On CUDA, the ropes and the cache stores in one launch
                // (the same arithmetic).
                StepIn::Host { .. } => {
                    let rows = (&kc.narrow(0, pos, seq)?, &vc.narrow(0, pos, seq)?);
                    cuda_ops::rope::rope_kv((&qh, &kh, &vh), rows, &rope_p, None)?;
                    let (kv, vv) = (kc.narrow(0, 0, pos + seq)?, vc.narrow(0, 0, pos + seq)?);
                    attention(&qh, &kv, &vv, &attn_p, &ah)?;
                }
                // The same kernels, the position read on the device: the
                // cache rows written at it, the keys up to it visible.
                StepIn::Device { pos: at, .. } => {
                    let rows = (&kc.narrow(0, 0, 1)?, &vc.narrow(0, 0, 1)?);
                    let shift = Some((at, kc.strides()[0], vc.strides()[0]));
                    cuda_ops::rope::rope_kv((&qh, &kh, &vh), rows, &rope_p, shift)?;
                    let keys = Some((at, state.kv.ctx));
                    cuda_ops::attention::attention_at(&qh, kc, vc, &attn_p, &ah, keys)?;
                }
            }
            let residual = Matmul {
                beta: 1.0,
                c: Some(&x),
                ..self.mm()
            };
            matmul(&attn, &lw.wo.t()?, &x, &residual)?;

            rms_norm_swiglu(
                &x,
                (&lw.ffn_norm, cfg.rms_eps),
                (&lw.w_gate, &lw.w_up),
                &act,
                &self.mm(),
                (&h, &gate, &up),
            )?;
            matmul(&act, &lw.w_down.t()?, &x, &residual)?;
        }
        let (first, n_out) = match which {
            Logits::Last => (seq - 1, 1),
            Logits::All => (0, seq),
        };
        let x_out = x.narrow(0, first, n_out)?;
        let h_out = h.narrow(0, 0, n_out)?;
        let logits = ws.logits.narrow(0, 0, n_out)?;
        let norm = (&w.output_norm, cfg.rms_eps);
        rms_norm_matmul(&x_out, norm, &w.output, &logits, &self.mm(), &h_out)?;
        Ok(logits)
    }
}
