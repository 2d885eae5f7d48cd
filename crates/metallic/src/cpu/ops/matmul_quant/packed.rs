//! Weights repacked for AVX-512 VNNI: 16 weight rows side by side, one row
//! per 32-bit lane of a 512-bit register.
//!
//! The GGUF layout keeps each weight row's blocks together, so a kernel
//! that dots a row with an activation row needs one horizontal sum per row
//! and a decoded block per row. Here a *group* of 16 consecutive weight rows
//! is interleaved block by block: for every 4 consecutive elements of a
//! block (a *k-group*), the 16 rows' 4 quants fill the 64 bytes of one
//! register, lane `r` holding row `r`'s. One `vpdpbusd` with the activation
//! row's 4 quants broadcast to every lane then adds 64 products into 16
//! per-row integer sums, with no horizontal sum, no shuffle, and the decode
//! shared by every activation row of a tile.
//!
//! The bytes per group are those of the 16 GGUF rows (Q4_K: 2.8% more, its
//! 6-bit scales and mins stored as bytes), only rearranged, so decode reads
//! the same amount of memory. Quants are stored unsigned (the format's
//! offset added: Q4_0 8, Q5_0 16, Q8_0 128, Q6_K 32) and the offset is taken
//! out exactly in integers by starting each block's (Q6_K: each 16-element
//! sub-block's) sum from the activation panel's `corr` (`-offset * sum of the
//! activation quants`). So every block's integer sum equals ggml's; the f32
//! combination is one FMA per block (K-quants: per sub-block, then per
//! super-block), in block order, per (weight row, activation row).
//!
//! Layout of one group-block (`GB` bytes), for block `b` of the 16 rows:
//! - Q4_0 / Q4_1 / Q5_0: `d` 16 x f16; Q4_1 `m` 16 x f16; Q5_0 eight 64-bit
//!   masks (k-group `g`: bit `4r + i` is the 5th bit of row `r`'s element
//!   `4g + i`); then 4 chunks of 64 bytes: chunk `c` byte `4r + i` holds row
//!   `r`'s element `4c + i` in its low nibble and `16 + 4c + i` in its high.
//! - Q8_0: `d` 16 x f16, then 8 chunks: chunk `g` byte `4r + i` = row `r`'s
//!   element `4g + i` + 128.
//! - Q6_K (super-block of 256): `d` 16 x f16; the 16 scales of each
//!   sub-block `s` as 16 i8 (one per row); then per sub-block three chunks:
//!   `N0` (elements `16s + i` low nibble, `16s + 4 + i` high), `N1` (`+8`,
//!   `+12`) and `H`, whose byte holds the top 2 bits of the same 4 elements
//!   at bits 0, 2, 4, 6.
//! - Q4_K: `d`, `dmin` 16 x f16 each; the scale of each 32-element
//!   sub-block as 16 u8; the mins as 4 x 16 u8 pairs (pair `t`: row `r`'s
//!   mins `2t`, `2t + 1` at bytes `2r`, `2r + 1`); then per sub-block `s`
//!   4 chunks: chunk `j` byte `4r + i` holds element `32s + 4j + i` (low
//!   nibble) and `32s + 16 + 4j + i` (high).

// The kernels index several per-row arrays with one row counter.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use rayon::prelude::*;

use super::panel::{ActTile, LANES};
use crate::quant::blocks::*;
use crate::tensor::{DType, HostBytes};

/// Weight rows per group: one per 32-bit lane of a 512-bit register.
pub(crate) const GROUP: usize = 16;

/// The formats repacked here.
pub(crate) fn supports(dtype: DType) -> bool {
    matches!(
        dtype,
        DType::Q4_0 | DType::Q4_1 | DType::Q5_0 | DType::Q8_0 | DType::Q4K | DType::Q6K
    )
}

/// Bytes of one group-block.
fn group_block_bytes(dtype: DType) -> usize {
    match dtype {
        DType::Q4_0 => 32 + 256,
        DType::Q4_1 => 64 + 256,
        DType::Q5_0 => 32 + 64 + 256,
        DType::Q8_0 => 32 + 512,
        DType::Q6K => 32 + 256 + 16 * 192,
        DType::Q4K => 64 + 128 + 128 + 8 * 256,
        _ => unreachable!("{dtype} is not packed"),
    }
}

/// The offset the packed quants carry, which the activation panel's `corr`
/// takes out (Q6_K's per 16 elements, the others' per block).
pub(crate) fn offset(dtype: DType) -> i32 {
    match dtype {
        DType::Q4_0 => 8,
        DType::Q5_0 => 16,
        DType::Q8_0 => 128,
        DType::Q6K => 32,
        _ => 0,
    }
}

/// A weight matrix `[n, k]` of `dtype` repacked in groups of 16 rows (the
/// last group padded with zero rows).
pub(crate) struct PackedWeights {
    pub dtype: DType,
    pub n: usize,
    pub k: usize,
    /// What it was packed from: the element offset of row 0 in its storage
    /// and the elements between rows; a matmul uses the packing only for
    /// exactly this view.
    pub origin: (usize, usize),
    data: HostBytes,
}

impl PackedWeights {
    fn groups(&self) -> usize {
        self.n.div_ceil(GROUP)
    }

    fn group_bytes(&self) -> usize {
        self.k / self.dtype.block_elems() * group_block_bytes(self.dtype)
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.data.len()
    }
}

/// Repacks `n` rows of `k` elements, row `j` at `rows[j * row_bytes..]`.
/// `None` for a format or size this layout does not take.
pub(crate) fn pack(
    dtype: DType,
    rows: &[u8],
    row_bytes: usize,
    n: usize,
    k: usize,
    origin: (usize, usize),
) -> Option<PackedWeights> {
    let be = dtype.block_elems();
    if !supports(dtype) || n == 0 || k == 0 || !k.is_multiple_of(be) {
        return None;
    }
    let bb = dtype.block_bytes();
    if row_bytes < k / be * bb || rows.len() < (n - 1) * row_bytes + k / be * bb {
        return None;
    }
    let mut pw = PackedWeights {
        dtype,
        n,
        k,
        origin,
        data: HostBytes::zeroed(0),
    };
    let gbytes = pw.group_bytes();
    let nb = k / be;
    let gb = group_block_bytes(dtype);
    let mut data = HostBytes::zeroed(pw.groups() * gbytes);
    let out = data.bytes_mut().expect("fresh buffers are owned");
    out.par_chunks_mut(gbytes).enumerate().for_each(|(g, dst)| {
        for b in 0..nb {
            let dst = &mut dst[b * gb..(b + 1) * gb];
            for r in 0..GROUP.min(n - g * GROUP) {
                let j = g * GROUP + r;
                let src = &rows[j * row_bytes + b * bb..][..bb];
                pack_block(dtype, src, r, dst);
            }
        }
    });
    pw.data = data;
    Some(pw)
}

/// Writes row `r`'s block `src` into its lanes of the group-block `dst`.
fn pack_block(dtype: DType, src: &[u8], r: usize, dst: &mut [u8]) {
    let put_f16 = |dst: &mut [u8], at: usize, v: half::f16| {
        dst[at + 2 * r..at + 2 * r + 2].copy_from_slice(&v.to_bits().to_le_bytes())
    };
    // Chunk byte `4r + i` of `k-group` pairs: low nibble element `lo + i`,
    // high nibble `hi + i`.
    let nibble_chunk = |dst: &mut [u8], at: usize, u: &[u8], lo: usize, hi: usize| {
        for i in 0..4 {
            dst[at + 4 * r + i] = (u[lo + i] & 0x0F) | ((u[hi + i] & 0x0F) << 4);
        }
    };
    match dtype {
        DType::Q4_0 | DType::Q4_1 | DType::Q5_0 => {
            // GGUF's `qs` byte j holds element j (low nibble) and j + 16
            // (high): 4-byte word c of a row is exactly its lane of chunk c.
            let (d, qs, qs_at): (half::f16, &[u8; 16], usize) = match dtype {
                DType::Q4_0 => {
                    let blk: &BlockQ4_0 = bytemuck::from_bytes(src);
                    (blk.d, &blk.qs, 32)
                }
                DType::Q4_1 => {
                    let blk: &BlockQ4_1 = bytemuck::from_bytes(src);
                    put_f16(dst, 32, blk.m);
                    (blk.d, &blk.qs, 64)
                }
                _ => {
                    let blk: &BlockQ5_0 = bytemuck::from_bytes(src);
                    // k-group g's 5th bits (qh bits 4g..4g+4) go to bits
                    // 4r..4r+4 of mask g.
                    let qh = u32::from_le_bytes(blk.qh);
                    for g in 0..8 {
                        let at = 32 + 8 * g;
                        let mut mask = u64::from_le_bytes(dst[at..at + 8].try_into().unwrap());
                        mask |= (((qh >> (4 * g)) & 0xF) as u64) << (4 * r);
                        dst[at..at + 8].copy_from_slice(&mask.to_le_bytes());
                    }
                    (blk.d, &blk.qs, 96)
                }
            };
            put_f16(dst, 0, d);
            for c in 0..4 {
                let at = qs_at + 64 * c + 4 * r;
                dst[at..at + 4].copy_from_slice(&qs[4 * c..4 * c + 4]);
            }
        }
        DType::Q8_0 => {
            let blk: &BlockQ8_0 = bytemuck::from_bytes(src);
            put_f16(dst, 0, blk.d);
            let qs: &[u8; 32] = bytemuck::cast_ref(&blk.qs);
            for g in 0..8 {
                let w = u32::from_le_bytes(qs[4 * g..4 * g + 4].try_into().unwrap()) ^ 0x8080_8080;
                let at = 32 + 64 * g + 4 * r;
                dst[at..at + 4].copy_from_slice(&w.to_le_bytes());
            }
        }
        DType::Q6K => {
            let blk: &BlockQ6K = bytemuck::from_bytes(src);
            let un = blk.unpack();
            let u = un.q.map(|q| (q + 32) as u8);
            put_f16(dst, 0, blk.d);
            for s in 0..16 {
                dst[32 + 16 * s + r] = blk.scales[s] as u8;
                let at = 288 + 192 * s;
                let e = 16 * s;
                nibble_chunk(dst, at, &u, e, e + 4);
                nibble_chunk(dst, at + 64, &u, e + 8, e + 12);
                for i in 0..4 {
                    let h = |x: usize| u[e + x + i] >> 4;
                    dst[at + 128 + 4 * r + i] = h(0) | (h(4) << 2) | (h(8) << 4) | (h(12) << 6);
                }
            }
        }
        DType::Q4K => {
            let blk: &BlockQ4K = bytemuck::from_bytes(src);
            let un = blk.unpack();
            let u = un.q.map(|q| q as u8);
            put_f16(dst, 0, blk.d);
            put_f16(dst, 32, blk.dmin);
            for s in 0..8 {
                // KUnpacked repeats each 32-element scale and min per 16.
                dst[64 + 16 * s + r] = un.scales[2 * s] as u8;
                dst[192 + 32 * (s / 2) + 2 * r + s % 2] = un.mins[2 * s] as u8;
                for j in 0..4 {
                    let e = 32 * s + 4 * j;
                    nibble_chunk(dst, 320 + 256 * s + 64 * j, &u, e, e + 16);
                }
            }
        }
        _ => unreachable!("{dtype} is not packed"),
    }
}

/// `out[i * ldo + j] = dot(weight row j, activation row i)` for the weight
/// rows of groups `g0..g1` and every row of the tiles; tiles are taken
/// `TILE_CHUNK` at a time, so that their activations stay in L2 while every
/// group of the range passes over them.
///
/// # Safety
/// The CPU has AVX-512 F/BW/VL and VNNI (and AVX2, FMA, F16C); `g1 <=`
/// the groups of `pw`; every tile points at panel tiles of `pw.k` elements
/// per row in `pw.dtype`'s activation format filled with [`offset`], at
/// most [`LANES`] rows each; `out` is valid for writing at every
/// `i * ldo + j` with `j < pw.n`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) unsafe fn gemm_groups(
    pw: &PackedWeights,
    g0: usize,
    g1: usize,
    tiles: &[ActTile],
    out: *mut f32,
    ldo: usize,
) {
    let nb = pw.k / pw.dtype.block_elems();
    let gbytes = pw.group_bytes();
    let base = pw.data.bytes().as_ptr();
    // Tiles per pass: about 256 KiB of activation quants.
    let tile_chunk = (256 * 1024 / (LANES * pw.k)).max(1);
    let mut i0 = 0;
    for chunk in tiles.chunks(tile_chunk) {
        for g in g0..g1 {
            let w = base.add(g * gbytes);
            let rows = GROUP.min(pw.n - g * GROUP);
            let mask: __mmask16 = ((1u32 << rows) - 1) as u16;
            let mut i = i0;
            for tile in chunk {
                let o = out.add(i * ldo + g * GROUP);
                macro_rules! kernel {
                    ($($n:literal)*) => {
                        match tile.rows {
                            $($n => match pw.dtype {
                                DType::Q4_0 => legacy::<Q4_0, $n>(w, nb, tile, o, ldo, mask),
                                DType::Q4_1 => legacy::<Q4_1, $n>(w, nb, tile, o, ldo, mask),
                                DType::Q5_0 => legacy::<Q5_0, $n>(w, nb, tile, o, ldo, mask),
                                DType::Q8_0 => legacy::<Q8_0, $n>(w, nb, tile, o, ldo, mask),
                                DType::Q6K => q6_k::<$n>(w, nb, tile, o, ldo, mask),
                                DType::Q4K => q4_k::<$n>(w, nb, tile, o, ldo, mask),
                                d => unreachable!("{d} is not packed"),
                            },)*
                            n => unreachable!("a tile of {n} rows"),
                        }
                    };
                }
                kernel!(1 2 3 4 5 6 7 8);
                i += tile.rows;
            }
        }
        i0 += chunk.iter().map(|t| t.rows).sum::<usize>();
    }
}

/// The groups a matrix has.
pub(crate) fn groups(pw: &PackedWeights) -> usize {
    pw.groups()
}

// The 32-element formats, as const parameters of `legacy`.
const Q4_0: u8 = 0;
const Q4_1: u8 = 1;
const Q5_0: u8 = 2;
const Q8_0: u8 = 3;

/// In decode, the `bytes` of the block at `p` are the next `bytes` of one
/// sequential stream per thread: each of their cache lines `dist` bytes
/// further on is prefetched. (The hardware prefetcher alone kept SmolLM2's
/// decode at about 100 tokens/s, 55% of the bandwidth ceiling: its streams
/// restart at every 4 KiB page and every small matrix.)
#[inline(always)]
unsafe fn prefetch_ahead(p: *const u8, bytes: usize, dist: usize) {
    if dist == 0 {
        return;
    }
    let mut l = 0;
    while l < bytes {
        // A prefetch never faults: past the end of the weights is harmless.
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(dist + l) as *const i8);
        l += 64;
    }
}

/// The prefetch distance in bytes: 2048, or `METALLIC_CPU_PREFETCH` (0 turns
/// it off). Measured on this 2-core AVX-512 machine, tg tokens/s with 2
/// threads: Qwen2.5-0.5B Q4_K_M 33 -> 41-42 (2048 and 4096 alike), SmolLM2
/// Q4_1 about 100 -> 115-140 (noisy; 1024-4096 all well above 0).
fn pf_dist() -> usize {
    static PF: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *PF.get_or_init(|| {
        std::env::var("METALLIC_CPU_PREFETCH")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2048)
    })
}

/// A 32-bit activation word (4 quants) broadcast to every lane.
#[inline(always)]
unsafe fn bcast(p: *const i8) -> __m512i {
    _mm512_set1_epi32((p as *const i32).read_unaligned())
}

/// 16 f16 at `p` as f32.
#[inline(always)]
unsafe fn f16x16(p: *const u8) -> __m512 {
    _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i))
}

/// Q4_0, Q4_1, Q5_0, Q8_0 against Q8_0 / Q8_1 activations: per block, each
/// tile row's integer sum starts from its `corr` and takes 8 `vpdpbusd`;
/// then one FMA with `d_w * d_a` (and Q4_1's `m_w * s_a`).
#[inline(always)]
unsafe fn legacy<const F: u8, const R: usize>(
    w: *const u8,
    nb: usize,
    a: &ActTile,
    out: *mut f32,
    ldo: usize,
    mask: __mmask16,
) {
    let m0f = _mm512_set1_epi8(0x0F);
    let c16 = _mm512_set1_epi8(0x10);
    let gb = match F {
        Q4_0 => 288,
        Q4_1 => 320,
        Q5_0 => 352,
        _ => 544,
    };
    let qs_at = match F {
        Q4_0 => 32,
        Q4_1 => 64,
        Q5_0 => 96,
        _ => 32,
    };
    let mut facc = [_mm512_setzero_ps(); R];
    let pf = pf_dist();
    for b in 0..nb {
        let p = w.add(b * gb);
        if R == 1 {
            prefetch_ahead(p, gb, pf);
        }
        let aq = a.qs.add(b * R * QK);
        // Decode (one row) splits each sum over two chains: the first 16
        // elements and the last 16.
        let mut lo = [_mm512_setzero_si512(); R];
        let mut hi = [_mm512_setzero_si512(); R];
        if F != Q4_1 {
            for r in 0..R {
                lo[r] = _mm512_set1_epi32(*a.corr.add(b * LANES + r));
            }
        }
        if F == Q8_0 {
            for g in 0..8 {
                let x = _mm512_loadu_si512(p.add(qs_at + 64 * g) as *const _);
                for r in 0..R {
                    let y = bcast(aq.add(r * QK + 4 * g));
                    if R == 1 && g >= 4 {
                        hi[r] = _mm512_dpbusd_epi32(hi[r], x, y);
                    } else {
                        lo[r] = _mm512_dpbusd_epi32(lo[r], x, y);
                    }
                }
            }
        } else {
            for c in 0..4 {
                let raw = _mm512_loadu_si512(p.add(qs_at + 64 * c) as *const _);
                let mut xl = _mm512_and_si512(raw, m0f);
                let mut xh = _mm512_and_si512(_mm512_srli_epi16::<4>(raw), m0f);
                if F == Q5_0 {
                    let kl = (p.add(32 + 8 * c) as *const u64).read_unaligned();
                    let kh = (p.add(32 + 8 * (c + 4)) as *const u64).read_unaligned();
                    xl = _mm512_mask_add_epi8(xl, kl, xl, c16);
                    xh = _mm512_mask_add_epi8(xh, kh, xh, c16);
                }
                for r in 0..R {
                    lo[r] = _mm512_dpbusd_epi32(lo[r], xl, bcast(aq.add(r * QK + 4 * c)));
                    let y = bcast(aq.add(r * QK + 16 + 4 * c));
                    if R == 1 {
                        hi[r] = _mm512_dpbusd_epi32(hi[r], xh, y);
                    } else {
                        lo[r] = _mm512_dpbusd_epi32(lo[r], xh, y);
                    }
                }
            }
        }
        let dw = f16x16(p);
        for r in 0..R {
            let s = if R == 1 {
                _mm512_add_epi32(lo[r], hi[r])
            } else {
                lo[r]
            };
            let sc = _mm512_mul_ps(dw, _mm512_set1_ps(*a.d.add(b * LANES + r)));
            facc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), sc, facc[r]);
        }
        if F == Q4_1 {
            let mw = f16x16(p.add(32));
            for r in 0..R {
                facc[r] = _mm512_fmadd_ps(mw, _mm512_set1_ps(*a.s.add(b * LANES + r)), facc[r]);
            }
        }
    }
    for (r, f) in facc.iter().enumerate() {
        _mm512_mask_storeu_ps(out.add(r * ldo), mask, *f);
    }
}

/// Q6_K against Q8_K: per 16-element sub-block, each tile row's integer sum
/// starts from its `corr` (`-32 * bsum16`) and takes 4 `vpdpbusd`, then one
/// FMA with `d_w * scale`; per super-block, one FMA with `d_a`.
#[inline(always)]
unsafe fn q6_k<const R: usize>(
    w: *const u8,
    nb: usize,
    a: &ActTile,
    out: *mut f32,
    ldo: usize,
    mask: __mmask16,
) {
    let m0f = _mm512_set1_epi8(0x0F);
    let m30 = _mm512_set1_epi8(0x30);
    let mut facc = [_mm512_setzero_ps(); R];
    let pf = pf_dist();
    for b in 0..nb {
        let p = w.add(b * 3360);
        if R == 1 {
            prefetch_ahead(p, 3360, pf);
        }
        let d = f16x16(p);
        let mut tacc = [_mm512_setzero_ps(); R];
        for s in 0..16 {
            let sc = _mm512_cvtepi8_epi32(_mm_loadu_si128(p.add(32 + 16 * s) as *const __m128i));
            let dsc = _mm512_mul_ps(_mm512_cvtepi32_ps(sc), d);
            let q = p.add(288 + 192 * s);
            let n0 = _mm512_loadu_si512(q as *const _);
            let n1 = _mm512_loadu_si512(q.add(64) as *const _);
            let h = _mm512_loadu_si512(q.add(128) as *const _);
            let x = [
                _mm512_or_si512(
                    _mm512_and_si512(n0, m0f),
                    _mm512_and_si512(_mm512_slli_epi16::<4>(h), m30),
                ),
                _mm512_or_si512(
                    _mm512_and_si512(_mm512_srli_epi16::<4>(n0), m0f),
                    _mm512_and_si512(_mm512_slli_epi16::<2>(h), m30),
                ),
                _mm512_or_si512(_mm512_and_si512(n1, m0f), _mm512_and_si512(h, m30)),
                _mm512_or_si512(
                    _mm512_and_si512(_mm512_srli_epi16::<4>(n1), m0f),
                    _mm512_and_si512(_mm512_srli_epi16::<2>(h), m30),
                ),
            ];
            for r in 0..R {
                let ap = a.qs.add((b * R + r) * QK_K + 16 * s);
                let mut acc = _mm512_set1_epi32(*a.corr.add((b * 16 + s) * LANES + r));
                for (t, xt) in x.iter().enumerate() {
                    acc = _mm512_dpbusd_epi32(acc, *xt, bcast(ap.add(4 * t)));
                }
                tacc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), dsc, tacc[r]);
            }
        }
        for r in 0..R {
            facc[r] = _mm512_fmadd_ps(tacc[r], _mm512_set1_ps(*a.d.add(b * LANES + r)), facc[r]);
        }
    }
    for (r, f) in facc.iter().enumerate() {
        _mm512_mask_storeu_ps(out.add(r * ldo), mask, *f);
    }
}

/// Q4_K against Q8_K: per 32-element sub-block, 8 `vpdpbusd` per tile row
/// and one FMA with `d_w * scale`; per super-block, the mins' integer sum
/// `sum_s m_s * bsum32_s` by 4 `vpdpwssd`, and `d_a * (sum - dmin * mins)`.
#[inline(always)]
unsafe fn q4_k<const R: usize>(
    w: *const u8,
    nb: usize,
    a: &ActTile,
    out: *mut f32,
    ldo: usize,
    mask: __mmask16,
) {
    let m0f = _mm512_set1_epi8(0x0F);
    let mut facc = [_mm512_setzero_ps(); R];
    let pf = pf_dist();
    for b in 0..nb {
        let p = w.add(b * 2368);
        if R == 1 {
            prefetch_ahead(p, 2368, pf);
        }
        let d = f16x16(p);
        let dmin = f16x16(p.add(32));
        let mut tacc = [_mm512_setzero_ps(); R];
        for s in 0..8 {
            let sc = _mm512_cvtepu8_epi32(_mm_loadu_si128(p.add(64 + 16 * s) as *const __m128i));
            let dsc = _mm512_mul_ps(_mm512_cvtepi32_ps(sc), d);
            let q = p.add(320 + 256 * s);
            let mut acc = [_mm512_setzero_si512(); R];
            for j in 0..4 {
                let raw = _mm512_loadu_si512(q.add(64 * j) as *const _);
                let xl = _mm512_and_si512(raw, m0f);
                let xh = _mm512_and_si512(_mm512_srli_epi16::<4>(raw), m0f);
                for r in 0..R {
                    let ap = a.qs.add((b * R + r) * QK_K + 32 * s);
                    acc[r] = _mm512_dpbusd_epi32(acc[r], xl, bcast(ap.add(4 * j)));
                    acc[r] = _mm512_dpbusd_epi32(acc[r], xh, bcast(ap.add(16 + 4 * j)));
                }
            }
            for r in 0..R {
                tacc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r]), dsc, tacc[r]);
            }
        }
        let mut mins = [_mm512_setzero_si512(); 4];
        for (t, mt) in mins.iter_mut().enumerate() {
            *mt = _mm512_cvtepu8_epi16(_mm256_loadu_si256(p.add(192 + 32 * t) as *const __m256i));
        }
        for r in 0..R {
            let bs = a.bsum32.add((b * R + r) * 8);
            let mut mi = _mm512_setzero_si512();
            for (t, mt) in mins.iter().enumerate() {
                let pair = _mm512_set1_epi32((bs.add(2 * t) as *const i32).read_unaligned());
                mi = _mm512_dpwssd_epi32(mi, *mt, pair);
            }
            let da = _mm512_set1_ps(*a.d.add(b * LANES + r));
            facc[r] = _mm512_fmadd_ps(tacc[r], da, facc[r]);
            facc[r] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(mi), _mm512_mul_ps(dmin, da), facc[r]);
        }
    }
    for (r, f) in facc.iter().enumerate() {
        _mm512_mask_storeu_ps(out.add(r * ldo), mask, *f);
    }
}
