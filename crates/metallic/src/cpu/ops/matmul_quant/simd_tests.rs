//! The SIMD block-dot kernels (this architecture's: `x86.rs` or `neon.rs`)
//! against the scalar reference `vec_dot_*`.
//!
//! Integer sums are exact on both sides; the f32 combination differs in order
//! (vector lanes per row, then one horizontal sum), so each output must lie
//! within `1e-5 * sum |w_l * a_l|` of the reference (the f32 rounding bound
//! of a dot product of a few hundred terms, with margin); the instruction
//! sets must agree with each other bit for bit. On aarch64 these run under
//! qemu in CI (scripts/test_aarch64.sh), once on a CPU model with `dotprod`
//! (both levels) and once on one without (base NEON only).

use super::panel::{ActFormat, Panel};
use crate::quant::{self, dequantize_row, random_row};
use crate::tensor::DType;

const FORMATS: [DType; 6] = [
    DType::Q4_0,
    DType::Q4_1,
    DType::Q5_0,
    DType::Q8_0,
    DType::Q4K,
    DType::Q6K,
];

fn act_format(dtype: DType) -> ActFormat {
    ActFormat::for_weight(dtype)
}

fn activations(m: usize, k: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..m * k)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = ((x >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0;
            // Some rows with a large outlier, as real activations have.
            if i % 97 == 5 {
                v * 30.0
            } else {
                v
            }
        })
        .collect()
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[test]
fn simd_kernels_match_scalar_vec_dot() {
    use super::arch::{gemm_rows, offset, tile_rows, Level};
    let levels = Level::available();
    let names: Vec<_> = levels.iter().map(|l| l.name()).collect();
    if levels.is_empty() {
        println!("SKIP simd_kernels_match_scalar_vec_dot: no SIMD level on this CPU");
        return;
    }
    println!("simd levels on this CPU: {}", names.join(", "));
    // M: decode (1, where weight rows go 4 at a time: N = 3, 4, 5, 6, 9
    // cover whole groups and every tail), a full tile, tiles plus every tail
    // length for tiles of 4 and of 8 rows; N odd; K: one block and odd block
    // counts.
    let cases = [
        (1, 3, 1),
        (1, 4, 2),
        (1, 5, 7),
        (1, 6, 1),
        (1, 9, 3),
        (4, 3, 2),
        (5, 4, 3),
        (7, 2, 5),
        (8, 3, 1),
        (9, 2, 3),
        (14, 3, 1),
        (19, 2, 2),
        (10, 3, 1),
    ];
    for (fi, dtype) in FORMATS.into_iter().enumerate() {
        let be = dtype.block_elems();
        let act = quant::vec_dot_type(dtype);
        for (ci, &(m, n, nb)) in cases.iter().enumerate() {
            let k = nb * be;
            let seed = (fi * 100 + ci) as u64;
            let w = random_row(dtype, n * k, seed);
            let xs = activations(m, k, seed + 7);
            let row_bytes = dtype.bytes_for(k).unwrap();
            let mut wf = vec![0.0; n * k];
            dequantize_row(dtype, &w, &mut wf).unwrap();

            let mut panel = Panel::default();
            panel
                .fill(act_format(dtype), offset(dtype), m, k, |i, buf| {
                    buf.copy_from_slice(&xs[i * k..(i + 1) * k])
                })
                .unwrap();

            // Weights copied into an aligned buffer (u32 words).
            let mut w_al = vec![0u32; w.len().div_ceil(4)];
            bytemuck::cast_slice_mut::<u32, u8>(&mut w_al)[..w.len()].copy_from_slice(&w);
            let w_ptr = w_al.as_ptr() as *const u8;

            let mut outs = Vec::new();
            for &level in &levels {
                let mut out = vec![f32::NAN; m * n];
                let mut tiles = Vec::new();
                panel.tiles(tile_rows(level), &mut tiles);
                // SAFETY: level detected here; w_al holds n rows of row_bytes,
                // 4-aligned; the panel holds m rows of k; out is m x n.
                unsafe {
                    gemm_rows(
                        level,
                        dtype,
                        w_ptr,
                        row_bytes,
                        n,
                        k,
                        &tiles,
                        out.as_mut_ptr(),
                        n,
                    )
                };
                outs.push((level, out));
            }
            for i in 0..m {
                let mut a = vec![0u8; act.bytes_for(k).unwrap()];
                quant::quantize_row(act, &xs[i * k..(i + 1) * k], &mut a).unwrap();
                let mut af = vec![0.0; k];
                dequantize_row(act, &a, &mut af).unwrap();
                for j in 0..n {
                    let want =
                        quant::vec_dot(dtype, &w[j * row_bytes..(j + 1) * row_bytes], &a).unwrap();
                    let bound: f32 = wf[j * k..(j + 1) * k]
                        .iter()
                        .zip(&af)
                        .map(|(x, y)| (x * y).abs())
                        .sum();
                    for (level, out) in &outs {
                        let got = out[i * n + j];
                        assert!(
                            (got - want).abs() <= 1e-5 * bound,
                            "{dtype} {} m={m} n={n} k={k} [{i}, {j}]: got {got}, want {want} (bound {bound})",
                            level.name()
                        );
                    }
                }
            }
            for (level, out) in &outs[1..] {
                assert!(
                    out.iter()
                        .zip(&outs[0].1)
                        .all(|(x, y)| x.to_bits() == y.to_bits()),
                    "{dtype}: {} and {} differ",
                    level.name(),
                    outs[0].0.name()
                );
            }
        }
        println!(
            "{dtype}: {} case(s) x level(s) [{}] match the scalar vec_dot",
            cases.len(),
            names.join(", ")
        );
    }
}

/// The driver really takes the SIMD path for every format with a kernel when
/// the CPU has a level (its product is `[m, n]`, the scalar path's `[n, m]`),
/// so the matmul tests in `tests` exercise the kernels through it.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[test]
fn driver_takes_the_simd_path() {
    use crate::ops::matmul::{validate, Matmul};
    use crate::tensor::{HostBytes, Tensor};
    if super::arch::Level::available().is_empty() {
        println!("SKIP driver_takes_the_simd_path: no SIMD level on this CPU");
        return;
    }
    for (fi, dtype) in FORMATS.into_iter().enumerate() {
        let (m, n, k) = (3, 5, 2 * dtype.block_elems());
        let w_bytes = random_row(dtype, n * k, 50 + fi as u64);
        let w = Tensor::from_raw(HostBytes::from_bytes(&w_bytes), &[n, k], dtype).unwrap();
        let x = Tensor::from_f32(&activations(m, k, 60 + fi as u64), &[m, k]).unwrap();
        let b = w.t().unwrap();
        let d = Tensor::zeros(&[m, n], DType::F32, &Default::default()).unwrap();
        let p = validate(&x, &b, &d, &Matmul::default()).unwrap();
        let (xa, wb) = (
            x.cpu_storage("x").unwrap().read(),
            b.cpu_storage("w").unwrap().read(),
        );
        let mut out = Vec::new();
        let l = super::quantized(&p, xa.bytes(), 0, wb.bytes(), 0, &mut out).unwrap();
        assert_eq!(
            (l.row_stride, l.col_stride),
            (n, 1),
            "{dtype}: the quantized matmul took the scalar path"
        );
    }
}

/// The panel holds exactly the reference quantizer's values.
#[test]
fn panel_matches_reference_quantizer() {
    for fmt in [ActFormat::Q8_0, ActFormat::Q8_1, ActFormat::Q8K] {
        let (m, k) = (3, 512);
        let xs = activations(m, k, 3);
        let mut panel = Panel::default();
        panel
            .fill(fmt, 0, m, k, |i, buf| {
                buf.copy_from_slice(&xs[i * k..(i + 1) * k])
            })
            .unwrap();
        for i in 0..m {
            let mut a = vec![0u8; fmt.dtype().bytes_for(k).unwrap()];
            quant::quantize_row(fmt.dtype(), &xs[i * k..(i + 1) * k], &mut a).unwrap();
            let mut want = vec![0.0; k];
            dequantize_row(fmt.dtype(), &a, &mut want).unwrap();
            let blk = if fmt == ActFormat::Q8K { 256 } else { 32 };
            for (l, w) in want.iter().enumerate() {
                let got = panel.qs[i * k + l] as f32 * panel.d[i * (k / blk) + l / blk];
                assert_eq!(got.to_bits(), w.to_bits(), "{fmt:?} [{i}, {l}]");
            }
        }
    }
}
