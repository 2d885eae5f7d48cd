//! Valid random blocks of any format, for tests: random quant bits with
//! finite, moderate scales, chosen so that dequantized values are of order 1
//! (like trained weights, up to a constant), and derived fields (Q8_1's `s`,
//! Q8_K's `bsums`) consistent with the quants.

use bytemuck::Pod;
use half::f16;

use super::blocks::*;
use crate::tensor::DType;

/// SplitMix64: tiny, seedable, and good enough for test data.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Magnitude in [0.5, 1.5) * `scale`, random sign.
    fn scale(&mut self, scale: f32) -> f32 {
        let sign = if self.next() & 1 == 0 { 1.0 } else { -1.0 };
        sign * (0.5 + self.unit()) * scale
    }

    fn block<B: Pod>(&mut self) -> B {
        let mut bytes = vec![0u8; std::mem::size_of::<B>()];
        for b in bytes.iter_mut() {
            *b = self.next() as u8;
        }
        bytemuck::pod_read_unaligned(&bytes)
    }
}

fn h(x: f32) -> f16 {
    f16::from_f32(x)
}

/// `k` elements (whole blocks) of `dtype` as random valid bytes, reproducible
/// from `seed`. Panics when `k` is not a whole number of blocks: this is a
/// test-data helper, and that is a bug in the calling test.
pub fn random_row(dtype: DType, k: usize, seed: u64) -> Vec<u8> {
    assert!(
        k.is_multiple_of(dtype.block_elems()),
        "random_row: {k} elements are not whole {dtype} blocks of {}",
        dtype.block_elems()
    );
    let mut rng = SplitMix(seed ^ ((dtype.ggml_id() as u64) << 56));
    let nb = k / dtype.block_elems();
    let mut out = Vec::with_capacity(dtype.bytes_for(k).unwrap_or(0));
    let mut push = |b: &[u8]| out.extend_from_slice(b);
    for _ in 0..nb {
        match dtype {
            DType::F32 => push(&(rng.unit() * 2.0 - 1.0).to_le_bytes()),
            DType::F16 => push(&h(rng.unit() * 2.0 - 1.0).to_le_bytes()),
            DType::BF16 => push(&half::bf16::from_f32(rng.unit() * 2.0 - 1.0).to_le_bytes()),
            DType::Q4_0 => {
                let mut b: BlockQ4_0 = rng.block();
                b.d = h(rng.scale(1.0 / 16.0));
                push(bytemuck::bytes_of(&b));
            }
            DType::Q4_1 => {
                let mut b: BlockQ4_1 = rng.block();
                b.d = h(rng.scale(1.0 / 16.0));
                b.m = h(rng.scale(0.5));
                push(bytemuck::bytes_of(&b));
            }
            DType::Q5_0 => {
                let mut b: BlockQ5_0 = rng.block();
                b.d = h(rng.scale(1.0 / 32.0));
                push(bytemuck::bytes_of(&b));
            }
            DType::Q5_1 => {
                let mut b: BlockQ5_1 = rng.block();
                b.d = h(rng.scale(1.0 / 32.0));
                b.m = h(rng.scale(0.5));
                push(bytemuck::bytes_of(&b));
            }
            DType::Q8_0 => {
                let mut b: BlockQ8_0 = rng.block();
                b.d = h(rng.scale(1.0 / 128.0));
                push(bytemuck::bytes_of(&b));
            }
            DType::Q8_1 => {
                let mut b: BlockQ8_1 = rng.block();
                b.d = h(rng.scale(1.0 / 128.0));
                let sum: i32 = b.qs.iter().map(|&q| q as i32).sum();
                b.s = h(sum as f32 * b.d.to_f32());
                push(bytemuck::bytes_of(&b));
            }
            DType::Q2K => {
                let mut b: BlockQ2K = rng.block();
                b.d = h(rng.scale(1.0 / 32.0));
                b.dmin = h(rng.scale(1.0 / 32.0));
                push(bytemuck::bytes_of(&b));
            }
            DType::Q3K => {
                let mut b: BlockQ3K = rng.block();
                b.d = h(rng.scale(1.0 / 128.0));
                push(bytemuck::bytes_of(&b));
            }
            DType::Q4K => {
                let mut b: BlockQ4K = rng.block();
                b.d = h(rng.scale(1.0 / 512.0));
                b.dmin = h(rng.scale(1.0 / 64.0));
                push(bytemuck::bytes_of(&b));
            }
            DType::Q5K => {
                let mut b: BlockQ5K = rng.block();
                b.d = h(rng.scale(1.0 / 1024.0));
                b.dmin = h(rng.scale(1.0 / 64.0));
                push(bytemuck::bytes_of(&b));
            }
            DType::Q6K => {
                let mut b: BlockQ6K = rng.block();
                b.d = h(rng.scale(1.0 / 2048.0));
                push(bytemuck::bytes_of(&b));
            }
            DType::Q8K => {
                let mut b: BlockQ8K = rng.block();
                b.d = rng.scale(1.0 / 128.0);
                for (s, chunk) in b.bsums.iter_mut().zip(b.qs.chunks_exact(16)) {
                    *s = chunk.iter().map(|&q| q as i16).sum();
                }
                push(bytemuck::bytes_of(&b));
            }
        }
    }
    out
}
