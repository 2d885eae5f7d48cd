//! GGUF block layouts, defined once: `#[repr(C)]`, byte for byte as ggml's
//! `ggml-common.h` (`block_q4_0` ... `block_q8_K`), with compile-time size
//! assertions. Each block also decodes its quantized values (`quants()` for
//! the 32-element formats, `unpack()` for the K-quants); dequantization and
//! the dot products both go through these, so the bit layout lives here only.

use half::f16;

/// Elements per block of the 32-element ("legacy") formats.
pub const QK: usize = 32;
/// Elements per K-quant super-block.
pub const QK_K: usize = 256;
/// Bytes of packed 6-bit scales and mins in Q4_K and Q5_K.
pub const K_SCALE_SIZE: usize = 12;

/// Implements `bytemuck::Pod` for block structs.
macro_rules! pod_block {
    ($($t:ty),*) => {$(
        // SAFETY: every field is Pod (integers, arrays of them, `half::f16`),
        // the struct is `repr(C)`, and the size assertions below prove that it
        // has no padding.
        unsafe impl bytemuck::Zeroable for $t {}
        unsafe impl bytemuck::Pod for $t {}
    )*};
}

/// Q4_0: `x = d * (q - 8)`, q in 0..16. Low nibbles hold elements 0..16,
/// high nibbles elements 16..32.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ4_0 {
    pub d: f16,
    pub qs: [u8; QK / 2],
}

/// Q4_1: `x = d * q + m`, q in 0..16; nibbles as Q4_0.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ4_1 {
    pub d: f16,
    pub m: f16,
    pub qs: [u8; QK / 2],
}

/// Q5_0: `x = d * (q - 16)`, q in 0..32: the low 4 bits as Q4_0, bit 4 of
/// element j in bit j of the little-endian u32 `qh`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ5_0 {
    pub d: f16,
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}

/// Q5_1: `x = d * q + m`, q in 0..32, bits as Q5_0.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ5_1 {
    pub d: f16,
    pub m: f16,
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}

/// Q8_0: `x = d * q`, q an i8.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ8_0 {
    pub d: f16,
    pub qs: [i8; QK],
}

/// Q8_1: `x = d * q`; `s = d * sum(q)` (rounded to f16) lets a dot product
/// with Q4_1/Q5_1 apply their offset `m` once per block.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ8_1 {
    pub d: f16,
    pub s: f16,
    pub qs: [i8; QK],
}

/// Q2_K: 16 sub-blocks of 16; `x = d * (sc & 15) * q - dmin * (sc >> 4)`, q
/// in 0..4 (2 bits).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ2K {
    pub scales: [u8; QK_K / 16],
    pub qs: [u8; QK_K / 4],
    pub d: f16,
    pub dmin: f16,
}

/// Q3_K: 16 sub-blocks of 16; `x = d * (s - 32) * q`, s 6 bits, q in -4..4
/// (2 low bits in `qs`, the high bit in `hmask`, set meaning "no -4").
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ3K {
    pub hmask: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 4],
    pub scales: [u8; 12],
    pub d: f16,
}

/// Q4_K: 8 sub-blocks of 32; `x = d * sc * q - dmin * m`, sc and m 6 bits
/// packed in `scales`, q in 0..16.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ4K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; K_SCALE_SIZE],
    pub qs: [u8; QK_K / 2],
}

/// Q5_K: as Q4_K with a fifth bit per element in `qh`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ5K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; K_SCALE_SIZE],
    pub qh: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 2],
}

/// Q6_K: 16 sub-blocks of 16; `x = d * sc * (q - 32)`, sc an i8, q 6 bits
/// (4 in `ql`, 2 in `qh`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ6K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [i8; QK_K / 16],
    pub d: f16,
}

/// Q8_K: the activation format for K-quant dot products; `x = d * q` with an
/// f32 `d`, and `bsums` the sums of each 16 consecutive `qs`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ8K {
    pub d: f32,
    pub qs: [i8; QK_K],
    pub bsums: [i16; QK_K / 16],
}

pod_block!(
    BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1, BlockQ2K, BlockQ3K, BlockQ4K,
    BlockQ5K, BlockQ6K, BlockQ8K
);

// Sizes from ggml-common.h's static_asserts.
const _: () = assert!(std::mem::size_of::<BlockQ4_0>() == 2 + QK / 2);
const _: () = assert!(std::mem::size_of::<BlockQ4_1>() == 4 + QK / 2);
const _: () = assert!(std::mem::size_of::<BlockQ5_0>() == 2 + 4 + QK / 2);
const _: () = assert!(std::mem::size_of::<BlockQ5_1>() == 4 + 4 + QK / 2);
const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 2 + QK);
const _: () = assert!(std::mem::size_of::<BlockQ8_1>() == 4 + QK);
const _: () = assert!(std::mem::size_of::<BlockQ2K>() == 4 + QK_K / 16 + QK_K / 4);
const _: () = assert!(std::mem::size_of::<BlockQ3K>() == 2 + QK_K / 4 + QK_K / 8 + 12);
const _: () = assert!(std::mem::size_of::<BlockQ4K>() == 4 + K_SCALE_SIZE + QK_K / 2);
const _: () = assert!(std::mem::size_of::<BlockQ5K>() == 4 + K_SCALE_SIZE + QK_K / 2 + QK_K / 8);
const _: () = assert!(std::mem::size_of::<BlockQ6K>() == 2 + QK_K / 16 + 3 * QK_K / 4);
const _: () = assert!(std::mem::size_of::<BlockQ8K>() == 4 + QK_K + QK_K / 16 * 2);

/// Splits 16 packed bytes into 32 nibbles: low nibbles first, then high.
fn nibbles(qs: &[u8; QK / 2]) -> [u8; QK] {
    let mut q = [0u8; QK];
    for (j, &b) in qs.iter().enumerate() {
        q[j] = b & 0x0F;
        q[j + QK / 2] = b >> 4;
    }
    q
}

/// Adds bit j of `qh` (little-endian u32) as bit 4 of element j.
fn with_high_bits(mut q: [u8; QK], qh: [u8; 4]) -> [u8; QK] {
    let qh = u32::from_le_bytes(qh);
    for (j, x) in q.iter_mut().enumerate() {
        *x |= (((qh >> j) & 1) as u8) << 4;
    }
    q
}

fn offset_by(q: [u8; QK], offset: i8) -> [i8; QK] {
    q.map(|x| x as i8 - offset)
}

impl BlockQ4_0 {
    /// The 32 quantized values, centred: `x = d * q`.
    pub fn quants(&self) -> [i8; QK] {
        offset_by(nibbles(&self.qs), 8)
    }
}

impl BlockQ4_1 {
    /// The 32 quantized values: `x = d * q + m`.
    pub fn quants(&self) -> [i8; QK] {
        offset_by(nibbles(&self.qs), 0)
    }
}

impl BlockQ5_0 {
    pub fn quants(&self) -> [i8; QK] {
        offset_by(with_high_bits(nibbles(&self.qs), self.qh), 16)
    }
}

impl BlockQ5_1 {
    pub fn quants(&self) -> [i8; QK] {
        offset_by(with_high_bits(nibbles(&self.qs), self.qh), 0)
    }
}

/// A K-quant super-block decoded to integers:
/// `x[i] = (d * scales[i / 16]) * q[i] - dmin * mins[i / 16]`.
/// Formats with 32-element sub-blocks repeat each scale twice; formats without
/// mins have `dmin = 0` and `mins = 0`.
pub struct KUnpacked {
    pub d: f32,
    pub dmin: f32,
    pub scales: [i32; QK_K / 16],
    pub mins: [i32; QK_K / 16],
    pub q: [i8; QK_K],
}

/// The j-th 6-bit (scale, min) pair of Q4_K/Q5_K (ggml's `get_scale_min_k4`):
/// pairs 0..4 are the low 6 bits of bytes 0..4 and 4..8; pairs 4..8 take
/// their low 4 bits from bytes 8..12 and their top 2 bits from the spare top
/// bits of bytes 0..8.
pub(crate) fn scale_min_k4(j: usize, s: &[u8; K_SCALE_SIZE]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

impl BlockQ2K {
    pub fn unpack(&self) -> KUnpacked {
        let mut u = KUnpacked {
            d: self.d.to_f32(),
            dmin: self.dmin.to_f32(),
            scales: self.scales.map(|s| (s & 0x0F) as i32),
            mins: self.scales.map(|s| (s >> 4) as i32),
            q: [0; QK_K],
        };
        // Each 128-element half uses 32 bytes of qs; its four 32-element
        // groups are the 2-bit fields at shifts 0, 2, 4, 6.
        for half in 0..2 {
            for shift in 0..4 {
                for l in 0..32 {
                    let byte = self.qs[half * 32 + l];
                    u.q[half * 128 + shift * 32 + l] = ((byte >> (2 * shift)) & 3) as i8;
                }
            }
        }
        u
    }
}

impl BlockQ3K {
    /// The 16 6-bit scales: low 4 bits from bytes 0..8 (low nibbles for
    /// scales 0..8, high nibbles for 8..16), top 2 bits from bytes 8..12.
    fn scale(&self, j: usize) -> i32 {
        let low = if j < 8 {
            self.scales[j] & 0x0F
        } else {
            self.scales[j - 8] >> 4
        };
        let high = (self.scales[8 + j % 4] >> (2 * (j / 4))) & 3;
        (low | (high << 4)) as i32 - 32
    }

    pub fn unpack(&self) -> KUnpacked {
        let mut u = KUnpacked {
            d: self.d.to_f32(),
            dmin: 0.0,
            scales: std::array::from_fn(|j| self.scale(j)),
            mins: [0; QK_K / 16],
            q: [0; QK_K],
        };
        // As Q2_K for the low bits; the high bit of element i of group g
        // (g = 0..8 over the whole block) is bit g of hmask[i % 32].
        for half in 0..2 {
            for shift in 0..4 {
                let group = half * 4 + shift;
                for l in 0..32 {
                    let low = ((self.qs[half * 32 + l] >> (2 * shift)) & 3) as i8;
                    let high_set = self.hmask[l] & (1 << group) != 0;
                    u.q[group * 32 + l] = low - if high_set { 0 } else { 4 };
                }
            }
        }
        u
    }
}

/// Scales and mins of Q4_K/Q5_K: one pair per 32 elements, repeated for each
/// half so that `KUnpacked` stays per-16.
fn k4_scales(s: &[u8; K_SCALE_SIZE]) -> ([i32; QK_K / 16], [i32; QK_K / 16]) {
    let mut scales = [0; QK_K / 16];
    let mut mins = [0; QK_K / 16];
    for j in 0..8 {
        let (sc, m) = scale_min_k4(j, s);
        scales[2 * j] = sc as i32;
        scales[2 * j + 1] = sc as i32;
        mins[2 * j] = m as i32;
        mins[2 * j + 1] = m as i32;
    }
    (scales, mins)
}

impl BlockQ4K {
    pub fn unpack(&self) -> KUnpacked {
        let (scales, mins) = k4_scales(&self.scales);
        let mut u = KUnpacked {
            d: self.d.to_f32(),
            dmin: self.dmin.to_f32(),
            scales,
            mins,
            q: [0; QK_K],
        };
        // Each 64-element chunk uses 32 bytes: low nibbles, then high nibbles.
        for chunk in 0..4 {
            for l in 0..32 {
                let byte = self.qs[chunk * 32 + l];
                u.q[chunk * 64 + l] = (byte & 0x0F) as i8;
                u.q[chunk * 64 + 32 + l] = (byte >> 4) as i8;
            }
        }
        u
    }
}

impl BlockQ5K {
    pub fn unpack(&self) -> KUnpacked {
        let (scales, mins) = k4_scales(&self.scales);
        let mut u = KUnpacked {
            d: self.d.to_f32(),
            dmin: self.dmin.to_f32(),
            scales,
            mins,
            q: [0; QK_K],
        };
        // As Q4_K; the fifth bit of element l of 32-element group g is bit g
        // of qh[l].
        for chunk in 0..4 {
            for l in 0..32 {
                let byte = self.qs[chunk * 32 + l];
                let hi = |g: usize| ((self.qh[l] >> g) & 1) << 4;
                u.q[chunk * 64 + l] = ((byte & 0x0F) | hi(2 * chunk)) as i8;
                u.q[chunk * 64 + 32 + l] = ((byte >> 4) | hi(2 * chunk + 1)) as i8;
            }
        }
        u
    }
}

impl BlockQ6K {
    pub fn unpack(&self) -> KUnpacked {
        let mut u = KUnpacked {
            d: self.d.to_f32(),
            dmin: 0.0,
            scales: self.scales.map(|s| s as i32),
            mins: [0; QK_K / 16],
            q: [0; QK_K],
        };
        // Each 128-element half uses 64 bytes of ql and 32 of qh: element
        // l + 32 * g (g = 0..4) takes nibble (g / 2) of ql[l + 32 * (g % 2)]
        // and the 2-bit field g of qh[l].
        for half in 0..2 {
            let ql = &self.ql[half * 64..half * 64 + 64];
            let qh = &self.qh[half * 32..half * 32 + 32];
            for g in 0..4 {
                for l in 0..32 {
                    let low = (ql[l + 32 * (g % 2)] >> (4 * (g / 2))) & 0x0F;
                    let high = (qh[l] >> (2 * g)) & 3;
                    u.q[half * 128 + g * 32 + l] = (low | (high << 4)) as i8 - 32;
                }
            }
        }
        u
    }
}

impl KUnpacked {
    /// The 256 values, computed as ggml's `dequantize_row_*` does (the scale
    /// product first, then the quant, then the min): bit-exact with it.
    pub fn dequantize(&self, out: &mut [f32]) {
        for (s, chunk) in out.chunks_exact_mut(16).enumerate() {
            let dl = self.d * self.scales[s] as f32;
            let ml = self.dmin * self.mins[s] as f32;
            for (o, &q) in chunk.iter_mut().zip(&self.q[s * 16..s * 16 + 16]) {
                *o = dl * q as f32 - ml;
            }
        }
    }
}
