//! Attention on the CPU. The visible part of K and V (`pos_offset + seq`
//! positions) is first converted to contiguous f32 `[pos, kv_head, head_dim]`
//! so the inner loops are plain slices; then every (query row, head) pair runs
//! in parallel: scores, max-subtracted softmax (f32 `exp`, f64 sum), and the
//! weighted sum of values, with operands rounded to the cache's dtypes as
//! `ops::attention` specifies.

use rayon::prelude::*;

use crate::error::Result;
use crate::ops::attention::{round_to, Attention};
use half::slice::HalfFloatSliceExt;

use crate::tensor::{cast, read_f32, write_f32, DType, Tensor};

const OP: &str = "attention";

/// `[n, heads, head_dim]` rows `0..n` of a rank-3 view, as contiguous f32.
fn to_f32(t: &Tensor, n: usize) -> Result<Vec<f32>> {
    let (heads, head_dim) = (t.dim(1), t.dim(2));
    let (st, off) = (t.strides(), t.layout().offset());
    let guard = t.cpu_storage(OP)?.read();
    let bytes = guard.bytes();
    let mut out = vec![0.0f32; n * heads * head_dim];
    let dtype = t.dtype();
    out.par_chunks_mut(heads * head_dim)
        .enumerate()
        .for_each(|(j, row)| {
            for (h, head) in row.chunks_exact_mut(head_dim).enumerate() {
                let base = off + j * st[0] + h * st[1];
                // Contiguous heads (the KV cache's layout) convert as slices
                // (F16C where present); other views element by element.
                match dtype {
                    DType::F16 if st[2] == 1 => {
                        cast::<half::f16>(bytes)[base..base + head_dim].convert_to_f32_slice(head)
                    }
                    DType::F32 if st[2] == 1 => {
                        head.copy_from_slice(&cast::<f32>(bytes)[base..base + head_dim])
                    }
                    _ => {
                        for (e, x) in head.iter_mut().enumerate() {
                            *x = read_f32(bytes, dtype, base + e * st[2]);
                        }
                    }
                }
            }
        });
    Ok(out)
}

pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, p: &Attention, out: &Tensor) -> Result<()> {
    let (seq, n_heads, head_dim) = (q.dim(0), q.dim(1), q.dim(2));
    let n_kv_heads = k.dim(1);
    let group = n_heads / n_kv_heads;
    let visible = p.pos_offset + seq;
    let mut qf = to_f32(q, seq)?;
    let (k_dtype, v_dtype) = (k.dtype(), v.dtype());
    qf.iter_mut().for_each(|x| *x = round_to(k_dtype, *x));
    #[cfg(target_arch = "x86_64")]
    if seq == 1 && avx512::decodes(k, v) {
        // Decode straight from the F16 cache: no copy of it per step.
        let (kg, vg) = (k.cpu_storage(OP)?.read(), v.cpu_storage(OP)?.read());
        let (kc, vc) = (
            avx512::Cache::of(k, kg.bytes()),
            avx512::Cache::of(v, vg.bytes()),
        );
        let mut result = vec![0.0f32; n_heads * head_dim];
        if avx512::decode(
            &qf,
            &kc,
            &vc,
            n_heads,
            n_kv_heads,
            visible,
            p.scale,
            &mut result,
        ) {
            return write_out(&result, out, n_heads, head_dim);
        }
    }
    let kf = to_f32(k, visible)?;
    let vf = to_f32(v, visible)?;
    let kv_row = n_kv_heads * head_dim;

    let mut result = vec![0.0f32; seq * n_heads * head_dim];
    #[cfg(target_arch = "x86_64")]
    if avx512::available() {
        let dims = avx512::Dims {
            seq,
            n_heads,
            n_kv_heads,
            head_dim,
            visible,
            pos_offset: p.pos_offset,
            scale: p.scale,
            v_f16: v_dtype == DType::F16,
            v_bf16: v_dtype == DType::BF16,
        };
        avx512::attention(&dims, &qf, &kf, &vf, &mut result);
        return write_out(&result, out, n_heads, head_dim);
    }
    let shape = Shape {
        n_heads,
        head_dim,
        group,
        kv_row,
        scale: p.scale,
        pos_offset: p.pos_offset,
        v_dtype,
    };
    #[cfg(target_arch = "x86_64")]
    let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
    result.par_chunks_mut(head_dim).enumerate().for_each_init(
        || vec![0.0f32; visible],
        |scores, (sh, o)| {
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: AVX2 and FMA were detected on this CPU.
                unsafe { head_avx2(&shape, &qf, &kf, &vf, scores, sh, o) };
                return;
            }
            head(&shape, &qf, &kf, &vf, scores, sh, o);
        },
    );

    write_out(&result, out, n_heads, head_dim)
}

/// Writes `[seq, n_heads, head_dim]` f32 rows into `out` through its strides.
fn write_out(result: &[f32], out: &Tensor, n_heads: usize, head_dim: usize) -> Result<()> {
    let out_storage = out.cpu_storage(OP)?;
    let mut out_guard = out_storage.write(OP)?;
    let out_bytes = out_guard
        .bytes_mut()
        .expect("write() refuses read-only storage");
    let (os, oo) = (out.strides(), out.layout().offset());
    for (sh, o) in result.chunks_exact(head_dim).enumerate() {
        let base = oo + (sh / n_heads) * os[0] + (sh % n_heads) * os[1];
        for (e, &x) in o.iter().enumerate() {
            write_f32(out_bytes, out.dtype(), base + e * os[2], x);
        }
    }
    Ok(())
}

/// What one (query row, head) needs to know of the problem.
struct Shape {
    n_heads: usize,
    head_dim: usize,
    group: usize,
    kv_row: usize,
    scale: f32,
    pos_offset: usize,
    v_dtype: crate::tensor::DType,
}

/// Query row and head `sh` (`s * n_heads + h`): scores, max-subtracted
/// softmax and the weighted sum of values into `o`.
#[inline(always)]
fn head(
    p: &Shape,
    qf: &[f32],
    kf: &[f32],
    vf: &[f32],
    scores: &mut [f32],
    sh: usize,
    o: &mut [f32],
) {
    let hd = p.head_dim;
    let (s, h) = (sh / p.n_heads, sh % p.n_heads);
    let g = h / p.group;
    let qh = &qf[sh * hd..(sh + 1) * hd];
    let n_keys = p.pos_offset + s + 1;
    let mut max = f32::NEG_INFINITY;
    for (j, sc) in scores[..n_keys].iter_mut().enumerate() {
        let kh = &kf[j * p.kv_row + g * hd..][..hd];
        *sc = p.scale * dot(qh, kh);
        max = max.max(*sc);
    }
    let mut sum = 0.0f64;
    for sc in scores[..n_keys].iter_mut() {
        *sc = (*sc - max).exp();
        sum += *sc as f64;
    }
    o.fill(0.0);
    let inv = (1.0 / sum) as f32;
    for (j, &w) in scores[..n_keys].iter().enumerate() {
        let vh = &vf[j * p.kv_row + g * hd..][..hd];
        let pj = round_to(p.v_dtype, w * inv);
        for (x, &y) in o.iter_mut().zip(vh) {
            *x += pj * y;
        }
    }
}

/// [`head`] compiled for AVX2 (same operations in the same order, so the
/// same results; the loops vectorise to 256 bits).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn head_avx2(
    p: &Shape,
    qf: &[f32],
    kf: &[f32],
    vf: &[f32],
    scores: &mut [f32],
    sh: usize,
    o: &mut [f32],
) {
    head(p, qf, kf, vf, scores, sh, o)
}

/// A dot product in 8 independent lanes (vectorises without reassociation).
#[inline(always)]
fn dot(x: &[f32], y: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (xc, yc) = (x.chunks_exact(8), y.chunks_exact(8));
    let tail: f32 = xc
        .remainder()
        .iter()
        .zip(yc.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (xs, ys) in xc.zip(yc) {
        for l in 0..8 {
            lanes[l] += xs[l] * ys[l];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Attention with AVX-512 over whole blocks: per KV head, its keys
/// transposed to `[head_dim, keys]` so 16 keys' scores of a query row are
/// one FMA chain over `head_dim` (4 query rows share each key load); the
/// softmax over 16 lanes with a vector `exp`; and `P v` with 4 query rows
/// sharing each value load. The query rows of a KV head are those of every
/// head in its group (GQA), taken 16 positions at a time; decode (one
/// position) takes each head on its own.
///
/// Same operations as the scalar path (f32 scores, max-subtracted softmax
/// with an f64 sum, probabilities rounded to `v`'s dtype, f32 accumulation)
/// in another order: dot products and sums are FMA chains, and `exp` is a
/// polynomial within 2 ulp of the correctly rounded value.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::needless_range_loop)] // per-row accumulators indexed by row
mod avx512 {
    use std::arch::x86_64::*;

    use rayon::prelude::*;

    use crate::tensor::{DType, Tensor};

    pub fn available() -> bool {
        is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("f16c")
    }

    pub struct Dims {
        pub seq: usize,
        pub n_heads: usize,
        pub n_kv_heads: usize,
        pub head_dim: usize,
        pub visible: usize,
        pub pos_offset: usize,
        pub scale: f32,
        pub v_f16: bool,
        pub v_bf16: bool,
    }

    /// Whether [`decode`] takes these: F16 caches with unit stride along
    /// `head_dim`, a multiple of 16 up to 256, on a CPU with AVX-512.
    pub fn decodes(k: &Tensor, v: &Tensor) -> bool {
        let hd = k.dim(2);
        available()
            && [k, v]
                .iter()
                .all(|t| t.dtype() == DType::F16 && t.strides()[2] == 1)
            && hd.is_multiple_of(16)
            && (16..=256).contains(&hd)
    }

    /// A `[positions, kv_heads, head_dim]` F16 cache view.
    pub struct Cache<'a> {
        pub data: &'a [half::f16],
        pub offset: usize,
        pub pos_stride: usize,
        pub head_stride: usize,
    }

    impl<'a> Cache<'a> {
        pub fn of(t: &Tensor, bytes: &'a [u8]) -> Cache<'a> {
            Cache {
                data: crate::tensor::cast::<half::f16>(bytes),
                offset: t.layout().offset(),
                pos_stride: t.strides()[0],
                head_stride: t.strides()[1],
            }
        }

        /// Whether rows `0..visible` of every head lie in `data`.
        fn covers(&self, visible: usize, heads: usize, hd: usize) -> bool {
            let last =
                self.offset + (visible - 1) * self.pos_stride + (heads - 1) * self.head_stride;
            last + hd <= self.data.len()
        }
    }

    /// One query position against the F16 cache, each head a task: 16-lane
    /// dot products per key reduced to one score, the softmax as in
    /// prefill, and `P v` with the values converted as they are loaded.
    /// Returns false (writing nothing) when a view falls outside its data.
    #[allow(clippy::too_many_arguments)]
    pub fn decode(
        qf: &[f32],
        k: &Cache,
        v: &Cache,
        n_heads: usize,
        n_kv_heads: usize,
        visible: usize,
        scale: f32,
        result: &mut [f32],
    ) -> bool {
        let hd = qf.len() / n_heads;
        if !k.covers(visible, n_kv_heads, hd) || !v.covers(visible, n_kv_heads, hd) {
            return false;
        }
        let group = n_heads / n_kv_heads;
        let out = OutPtr(result.as_mut_ptr());
        (0..n_heads).into_par_iter().for_each_init(
            || vec![0.0f32; visible.next_multiple_of(16)],
            |scores, h| {
                #[allow(clippy::redundant_locals)]
                let out = out;
                let g = h / group;
                // SAFETY: avx512f/f16c detected (`decodes`); rows 0..visible
                // of head g lie in both caches (`covers`); head h's output
                // row is written by this task only.
                unsafe {
                    decode_head(
                        &qf[h * hd..(h + 1) * hd],
                        k.data.as_ptr().add(k.offset + g * k.head_stride),
                        k.pos_stride,
                        v.data.as_ptr().add(v.offset + g * v.head_stride),
                        v.pos_stride,
                        visible,
                        scale,
                        scores,
                        out.0.add(h * hd),
                    )
                }
            },
        );
        true
    }

    /// One head of one query row: `q` (`hd` <= 256, a multiple of 16), keys
    /// and values at `k + j * ks`, `v + j * vs` for `j < n`.
    #[target_feature(enable = "avx512f,f16c,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn decode_head(
        q: &[f32],
        k: *const half::f16,
        ks: usize,
        v: *const half::f16,
        vs: usize,
        n: usize,
        scale: f32,
        scores: &mut [f32],
        out: *mut f32,
    ) {
        let nc = q.len() / 16;
        let mut qv = [_mm512_setzero_ps(); 16];
        for c in 0..nc {
            qv[c] = _mm512_loadu_ps(q.as_ptr().add(16 * c));
        }
        let sp = scores.as_mut_ptr();
        for j in 0..n {
            let kr = k.add(j * ks);
            let mut acc = _mm512_mul_ps(qv[0], f16x16(kr));
            for c in 1..nc {
                acc = _mm512_fmadd_ps(qv[c], f16x16(kr.add(16 * c)), acc);
            }
            *sp.add(j) = _mm512_reduce_add_ps(acc) * scale;
        }
        let nblk = n.div_ceil(16);
        let mut mx = _mm512_set1_ps(f32::NEG_INFINITY);
        for kb in 0..nblk {
            let x = _mm512_loadu_ps(sp.add(kb * 16));
            mx = _mm512_mask_max_ps(mx, tail_mask(n, kb), mx, x);
        }
        let mx = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
        let mut sum = _mm512_setzero_pd();
        for kb in 0..nblk {
            let x = _mm512_sub_ps(_mm512_loadu_ps(sp.add(kb * 16)), mx);
            let e = _mm512_maskz_mov_ps(tail_mask(n, kb), exp(x));
            _mm512_storeu_ps(sp.add(kb * 16), e);
            sum = add_f64(sum, e);
        }
        let inv = _mm512_set1_ps((1.0 / _mm512_reduce_add_pd(sum)) as f32);
        for kb in 0..nblk {
            let p = _mm512_mul_ps(_mm512_loadu_ps(sp.add(kb * 16)), inv);
            _mm512_storeu_ps(sp.add(kb * 16), round_f16(p));
        }
        let mut o = [_mm512_setzero_ps(); 16];
        for j in 0..n {
            let p = _mm512_set1_ps(*sp.add(j));
            let vr = v.add(j * vs);
            for c in 0..nc {
                o[c] = _mm512_fmadd_ps(p, f16x16(vr.add(16 * c)), o[c]);
            }
        }
        for c in 0..nc {
            _mm512_storeu_ps(out.add(16 * c), o[c]);
        }
    }

    /// 16 f16 at `p` as f32.
    #[inline(always)]
    unsafe fn f16x16(p: *const half::f16) -> __m512 {
        _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i))
    }

    /// `sum + e` with the 16 lanes of `e` widened to f64 (8 lanes).
    #[inline(always)]
    unsafe fn add_f64(sum: __m512d, e: __m512) -> __m512d {
        let lo = _mm512_cvtps_pd(_mm512_castps512_ps256(e));
        let hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
            _mm512_castps_pd(e),
        )));
        _mm512_add_pd(_mm512_add_pd(sum, lo), hi)
    }

    /// f32 to f16 and back, rounding to nearest even as `half::f16` does.
    #[inline(always)]
    unsafe fn round_f16(x: __m512) -> __m512 {
        _mm512_cvtph_ps(_mm512_cvtps_ph::<
            { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
        >(x))
    }

    /// Query positions per task in prefill.
    const POS_CHUNK: usize = 16;
    /// Query rows per register block.
    const RB: usize = 4;

    #[derive(Clone, Copy)]
    struct OutPtr(*mut f32);
    // SAFETY: tasks write disjoint (position, head) rows of the result.
    unsafe impl Send for OutPtr {}
    unsafe impl Sync for OutPtr {}

    /// `qf` `[seq, n_heads, hd]` (already rounded to k's dtype), `kf` and
    /// `vf` `[visible, n_kv_heads, hd]` f32; `result` `[seq, n_heads, hd]`.
    pub fn attention(d: &Dims, qf: &[f32], kf: &[f32], vf: &[f32], result: &mut [f32]) {
        let (hd, vis) = (d.head_dim, d.visible);
        let group = d.n_heads / d.n_kv_heads;
        let vis_pad = vis.next_multiple_of(16);
        // Keys transposed per KV head: kt[g][e][j], zero past `vis`.
        let mut kt = vec![0.0f32; d.n_kv_heads * hd * vis_pad];
        kt.par_chunks_mut(hd * vis_pad)
            .enumerate()
            .for_each(|(g, t)| {
                for j in 0..vis {
                    let row = &kf[(j * d.n_kv_heads + g) * hd..][..hd];
                    for (e, &x) in row.iter().enumerate() {
                        t[e * vis_pad + j] = x;
                    }
                }
            });
        // Tasks: (kv head, first position, positions, first head, heads).
        let mut tasks = Vec::new();
        for g in 0..d.n_kv_heads {
            if d.seq == 1 {
                for h in 0..group {
                    tasks.push((g, 0, 1, g * group + h, 1));
                }
            } else {
                for s0 in (0..d.seq).step_by(POS_CHUNK) {
                    tasks.push((g, s0, POS_CHUNK.min(d.seq - s0), g * group, group));
                }
            }
        }
        let out = OutPtr(result.as_mut_ptr());
        tasks.par_iter().for_each_init(
            || vec![0.0f32; RB * vis_pad],
            |scores, &(g, s0, ns, h0, nh)| {
                #[allow(clippy::redundant_locals)]
                let out = out;
                let kt = &kt[g * hd * vis_pad..][..hd * vis_pad];
                // Rows of this task in (position, head) order.
                let rows: Vec<(usize, usize)> = (s0..s0 + ns)
                    .flat_map(|s| (h0..h0 + nh).map(move |h| (s, h)))
                    .collect();
                for blk in rows.chunks(RB) {
                    // SAFETY: avx512f and f16c were detected (`available`);
                    // each (s, h) row of `result` is written by one task.
                    unsafe { block(d, g, blk, qf, kt, vis_pad, vf, scores, out.0) };
                }
            },
        );
    }

    /// Up to `RB` query rows `(position, head)`: scores, softmax and `P v`.
    #[target_feature(enable = "avx512f,f16c,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn block(
        d: &Dims,
        g: usize,
        rows: &[(usize, usize)],
        qf: &[f32],
        kt: &[f32],
        vis_pad: usize,
        vf: &[f32],
        scores: &mut [f32],
        out: *mut f32,
    ) {
        let hd = d.head_dim;
        let nr = rows.len();
        let n_keys = |r: usize| d.pos_offset + rows[r].0 + 1;
        let n_max = (0..nr).map(n_keys).max().unwrap_or(0);
        let nblk = n_max.div_ceil(16);
        let q: Vec<*const f32> = rows
            .iter()
            .map(|&(s, h)| qf.as_ptr().add((s * d.n_heads + h) * hd))
            .collect();
        let sp = scores.as_mut_ptr();
        let scale = _mm512_set1_ps(d.scale);
        // Scores: 16 keys x every row per step, one load of each key column.
        for kb in 0..nblk {
            let mut acc = [_mm512_setzero_ps(); RB];
            let col = kt.as_ptr().add(kb * 16);
            for e in 0..hd {
                let kv = _mm512_loadu_ps(col.add(e * vis_pad));
                for r in 0..RB.min(nr) {
                    acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(*q[r].add(e)), kv, acc[r]);
                }
            }
            for (r, a) in acc.iter().enumerate().take(nr) {
                _mm512_storeu_ps(sp.add(r * vis_pad + kb * 16), _mm512_mul_ps(*a, scale));
            }
        }
        // Softmax per row over its keys; probabilities past them are 0.
        for r in 0..nr {
            let n = n_keys(r);
            let row = sp.add(r * vis_pad);
            let mut mx = _mm512_set1_ps(f32::NEG_INFINITY);
            for kb in 0..nblk {
                let m = tail_mask(n, kb);
                mx = _mm512_mask_max_ps(mx, m, mx, _mm512_loadu_ps(row.add(kb * 16)));
            }
            let mx = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
            let mut sum = _mm512_setzero_pd();
            for kb in 0..nblk {
                let m = tail_mask(n, kb);
                let e = _mm512_maskz_mov_ps(
                    m,
                    exp(_mm512_sub_ps(_mm512_loadu_ps(row.add(kb * 16)), mx)),
                );
                _mm512_storeu_ps(row.add(kb * 16), e);
                sum = add_f64(sum, e);
            }
            let inv = _mm512_set1_ps((1.0 / _mm512_reduce_add_pd(sum)) as f32);
            for kb in 0..nblk {
                let p = _mm512_mul_ps(_mm512_loadu_ps(row.add(kb * 16)), inv);
                let p = if d.v_f16 {
                    round_f16(p)
                } else if d.v_bf16 {
                    round_bf16(p)
                } else {
                    p
                };
                _mm512_storeu_ps(row.add(kb * 16), p);
            }
        }
        // P v: 16 dims of every row per step, one load of each value chunk.
        let n_kv = d.n_kv_heads;
        for c0 in (0..hd).step_by(16) {
            let m = tail_mask(hd, c0 / 16);
            let mut acc = [_mm512_setzero_ps(); RB];
            for j in 0..n_max {
                let v = _mm512_maskz_loadu_ps(m, vf.as_ptr().add((j * n_kv + g) * hd + c0));
                for r in 0..RB.min(nr) {
                    acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(*sp.add(r * vis_pad + j)), v, acc[r]);
                }
            }
            for (r, a) in acc.iter().enumerate().take(nr) {
                let (s, h) = rows[r];
                _mm512_mask_storeu_ps(out.add((s * d.n_heads + h) * hd + c0), m, *a);
            }
        }
    }

    /// Lanes of block `kb` (16 wide) below `n`.
    #[inline(always)]
    fn tail_mask(n: usize, kb: usize) -> __mmask16 {
        let left = n.saturating_sub(kb * 16).min(16);
        ((1u32 << left) - 1) as u16
    }

    /// f32 to bf16 and back, rounding to nearest even as `half::bf16` does
    /// (NaN stays NaN).
    #[inline(always)]
    unsafe fn round_bf16(x: __m512) -> __m512 {
        let mut t = [0.0f32; 16];
        _mm512_storeu_ps(t.as_mut_ptr(), x);
        for v in &mut t {
            *v = half::bf16::from_f32(*v).to_f32();
        }
        _mm512_loadu_ps(t.as_ptr())
    }

    /// `e^x` for x <= 0 (max-subtracted scores): `x = n ln2 + r` with
    /// |r| <= ln2 / 2, Cephes' degree-7 polynomial for `e^r` (within 2 ulp),
    /// and `2^n` applied by `vscalefps` (which flushes to 0 below the f32
    /// range; `-inf` gives 0).
    #[inline(always)]
    unsafe fn exp(x: __m512) -> __m512 {
        let x = _mm512_max_ps(x, _mm512_set1_ps(-104.0));
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
        let mut p = _mm512_set1_ps(1.987_569_1e-4);
        for c in [
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            1.666_666_5e-1,
            0.5,
        ] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        let r2 = _mm512_mul_ps(r, r);
        let e = _mm512_add_ps(_mm512_fmadd_ps(p, r2, r), _mm512_set1_ps(1.0));
        _mm512_scalef_ps(e, n)
    }
}
