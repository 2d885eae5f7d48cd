//! The KV cache: per layer, K and V of every position so far, preallocated
//! for the whole context (`[ctx, n_head_kv, head_dim]`).

use crate::device::Device;
use crate::error::Result;
use crate::tensor::{DType, Tensor};

use super::ModelConfig;

pub struct KvCache {
    pub k: Vec<Tensor>,
    pub v: Vec<Tensor>,
    pub ctx: usize,
}

impl KvCache {
    pub fn new(cfg: &ModelConfig, ctx: usize, dtype: DType, device: &Device) -> Result<KvCache> {
        let shape = [ctx, cfg.n_head_kv, cfg.head_dim];
        let mut k = Vec::with_capacity(cfg.n_layer);
        let mut v = Vec::with_capacity(cfg.n_layer);
        for _ in 0..cfg.n_layer {
            k.push(Tensor::zeros(&shape, dtype, device)?);
            v.push(Tensor::zeros(&shape, dtype, device)?);
        }
        Ok(KvCache { k, v, ctx })
    }
}
