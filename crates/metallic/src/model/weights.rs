//! The model's weights as typed structs over memory-mapped GGUF tensors
//! (names per llama.cpp's `LLM_TENSOR_NAMES`).

use crate::device::Device;
use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use crate::tensor::Tensor;

use super::ModelConfig;

pub struct LayerWeights {
    pub attn_norm: Tensor,
    pub wq: Tensor,
    pub wk: Tensor,
    pub wv: Tensor,
    pub bq: Option<Tensor>,
    pub bk: Option<Tensor>,
    pub bv: Option<Tensor>,
    pub wo: Tensor,
    pub ffn_norm: Tensor,
    pub w_gate: Tensor,
    pub w_up: Tensor,
    pub w_down: Tensor,
}

pub struct Weights {
    pub tok_embd: Tensor,
    pub layers: Vec<LayerWeights>,
    pub output_norm: Tensor,
    /// `output.weight`, or the token embedding when the model ties them.
    pub output: Tensor,
}

struct Loader<'a> {
    file: &'a GgufFile,
    device: &'a Device,
    on_tensor: &'a mut dyn FnMut(usize),
}

impl Loader<'_> {
    fn optional(&mut self, name: &str, shape: &[usize]) -> Result<Option<Tensor>> {
        if self.file.tensor_info(name).is_none() {
            return Ok(None);
        }
        let t = self.file.tensor(name)?;
        if t.shape() != shape {
            return Err(Error::Metadata {
                key: name.to_string(),
                msg: format!("tensor shape {:?}, expected {shape:?}", t.shape()),
            });
        }
        let bytes = t.dtype().bytes_for(t.elem_count()).unwrap_or(0);
        let t = t.to_device(self.device)?;
        (self.on_tensor)(bytes);
        Ok(Some(t))
    }

    fn required(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.optional(name, shape)?.ok_or_else(|| Error::Metadata {
            key: name.to_string(),
            msg: "tensor missing from the file".into(),
        })
    }
}

impl Weights {
    /// Bytes of weights one decode step reads: every layer's tensors, the
    /// final norm and the output matrix (of the token embedding, one row).
    pub fn decode_bytes(&self) -> usize {
        let b = |t: &Tensor| t.dtype().bytes_for(t.elem_count()).unwrap_or(0);
        let ob = |t: &Option<Tensor>| t.as_ref().map_or(0, b);
        let layers: usize = self
            .layers
            .iter()
            .map(|l| {
                b(&l.attn_norm)
                    + b(&l.wq)
                    + b(&l.wk)
                    + b(&l.wv)
                    + ob(&l.bq)
                    + ob(&l.bk)
                    + ob(&l.bv)
                    + b(&l.wo)
                    + b(&l.ffn_norm)
                    + b(&l.w_gate)
                    + b(&l.w_up)
                    + b(&l.w_down)
            })
            .sum();
        let row = b(&self.tok_embd) / self.tok_embd.dim(0).max(1);
        layers + b(&self.output_norm) + b(&self.output) + row
    }

    /// Maps (and, on a GPU, uploads) every weight; `on_tensor(bytes)` is
    /// called after each one (progress bars).
    pub fn load(
        file: &GgufFile,
        cfg: &ModelConfig,
        device: &Device,
        on_tensor: &mut dyn FnMut(usize),
    ) -> Result<Weights> {
        let mut l = Loader {
            file,
            device,
            on_tensor,
        };
        let (e, q, kv) = (
            cfg.n_embd,
            cfg.n_head * cfg.head_dim,
            cfg.n_head_kv * cfg.head_dim,
        );
        let tok_embd = l.required("token_embd.weight", &[cfg.vocab, e])?;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let n = |s: &str| format!("blk.{i}.{s}");
            layers.push(LayerWeights {
                attn_norm: l.required(&n("attn_norm.weight"), &[e])?,
                wq: l.required(&n("attn_q.weight"), &[q, e])?,
                wk: l.required(&n("attn_k.weight"), &[kv, e])?,
                wv: l.required(&n("attn_v.weight"), &[kv, e])?,
                bq: l.optional(&n("attn_q.bias"), &[q])?,
                bk: l.optional(&n("attn_k.bias"), &[kv])?,
                bv: l.optional(&n("attn_v.bias"), &[kv])?,
                wo: l.required(&n("attn_output.weight"), &[e, q])?,
                ffn_norm: l.required(&n("ffn_norm.weight"), &[e])?,
                w_gate: l.required(&n("ffn_gate.weight"), &[cfg.n_ff, e])?,
                w_up: l.required(&n("ffn_up.weight"), &[cfg.n_ff, e])?,
                w_down: l.required(&n("ffn_down.weight"), &[e, cfg.n_ff])?,
            });
        }
        let output_norm = l.required("output_norm.weight", &[e])?;
        let output = match l.optional("output.weight", &[cfg.vocab, e])? {
            Some(t) => t,
            None => tok_embd.clone(),
        };
        let w = Weights {
            tok_embd,
            layers,
            output_norm,
            output,
        };
        if *device == Device::Cpu {
            for t in w.matmul_weights() {
                crate::cpu::ops::matmul::prepack_weight(t)?;
            }
        }
        Ok(w)
    }

    /// Every weight matrix the forward pass multiplies by.
    fn matmul_weights(&self) -> impl Iterator<Item = &Tensor> {
        self.layers
            .iter()
            .flat_map(|l| [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down])
            .chain([&self.output])
    }
}
