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

/// Checks `outs` (each `[m, n]`, with a name) against the scalar `vec_dot`
/// of `w` (`n` rows of `k`) with `xs` quantized as the kernels quantize it:
/// each output within `1e-5 * sum |w_l * a_l|` of the reference.
fn check_against_scalar(
    dtype: DType,
    w: &[u8],
    xs: &[f32],
    (m, n, k): (usize, usize, usize),
    outs: &[(&str, &[f32])],
) {
    let act = quant::vec_dot_type(dtype);
    let row_bytes = dtype.bytes_for(k).unwrap();
    let mut wf = vec![0.0; n * k];
    dequantize_row(dtype, w, &mut wf).unwrap();
    for i in 0..m {
        let mut a = vec![0u8; act.bytes_for(k).unwrap()];
        quant::quantize_activation_row(act, &xs[i * k..(i + 1) * k], &mut a).unwrap();
        let mut af = vec![0.0; k];
        dequantize_row(act, &a, &mut af).unwrap();
        for j in 0..n {
            let want = quant::vec_dot(dtype, &w[j * row_bytes..(j + 1) * row_bytes], &a).unwrap();
            let bound: f32 = wf[j * k..(j + 1) * k]
                .iter()
                .zip(&af)
                .map(|(x, y)| (x * y).abs())
                .sum();
            for (name, out) in outs {
                let got = out[i * n + j];
                assert!(
                    (got - want).abs() <= 1e-5 * bound,
                    "{dtype} {name} m={m} n={n} k={k} [{i}, {j}]: got {got}, want {want} (bound {bound})"
                );
            }
        }
    }
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
            let named: Vec<(&str, &[f32])> = outs.iter().map(|(l, o)| (l.name(), &o[..])).collect();
            check_against_scalar(dtype, &w, &xs, (m, n, k), &named);
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
        let l = super::quantized(&p, xa.bytes(), 0, wb.bytes(), 0, None, &mut out).unwrap();
        assert_eq!(
            (l.row_stride, l.col_stride),
            (n, 1),
            "{dtype}: the quantized matmul took the scalar path"
        );
    }
}

/// The panel holds exactly the run-time quantizer's values.
#[test]
fn panel_matches_run_time_quantizer() {
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
            quant::quantize_activation_row(fmt.dtype(), &xs[i * k..(i + 1) * k], &mut a).unwrap();
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

/// The repacked AVX-512 VNNI kernels (`packed.rs`) against the scalar
/// `vec_dot_*`, with the same bound: every format, decode (one row) and
/// tiles with every tail, weight rows in whole and partial groups of 16,
/// and group ranges that start past the first group.
#[cfg(target_arch = "x86_64")]
#[test]
fn packed_kernels_match_scalar_vec_dot() {
    use super::packed::{gemm_groups, groups, offset, pack, GROUP};
    use super::panel::LANES;
    if !super::x86::Level::available().contains(&super::x86::Level::Avx512Vnni) {
        println!("SKIP packed_kernels_match_scalar_vec_dot: no AVX-512 VNNI on this CPU");
        return;
    }
    // (m, n, blocks per row)
    let cases = [
        (1, 16, 1),
        (1, 37, 3),
        (2, 15, 2),
        (5, 17, 1),
        (8, 33, 2),
        (9, 1, 3),
        (17, 20, 1),
        (13, 48, 5),
    ];
    for (fi, dtype) in FORMATS.into_iter().enumerate() {
        let be = dtype.block_elems();
        for (ci, &(m, n, nb)) in cases.iter().enumerate() {
            let k = nb * be;
            let seed = (fi * 100 + ci) as u64 + 5000;
            let row_bytes = dtype.bytes_for(k).unwrap();
            // Rows `row_bytes + pad` apart, as in a strided view.
            let pad = if ci % 2 == 1 { dtype.block_bytes() } else { 0 };
            let w = random_row(dtype, n * k, seed);
            let mut ws = vec![0u8; n * (row_bytes + pad)];
            for j in 0..n {
                ws[j * (row_bytes + pad)..][..row_bytes]
                    .copy_from_slice(&w[j * row_bytes..(j + 1) * row_bytes]);
            }
            let pw = pack(dtype, &ws, row_bytes + pad, n, k, (0, 0)).unwrap();
            let xs = activations(m, k, seed + 7);
            let mut panel = Panel::default();
            panel
                .fill(act_format(dtype), offset(dtype), m, k, |i, buf| {
                    buf.copy_from_slice(&xs[i * k..(i + 1) * k])
                })
                .unwrap();
            let mut tiles = Vec::new();
            panel.tiles(LANES, &mut tiles);
            let mut out = vec![f32::NAN; m * n];
            let ng = groups(&pw);
            // Two calls: the first group, then the rest.
            // SAFETY: AVX-512 VNNI checked above; the panel holds m rows of
            // k in the format's activations with the packed offset, tiled by
            // LANES; out is m x n.
            unsafe {
                gemm_groups(&pw, 0, 1, &tiles, out.as_mut_ptr(), n);
                gemm_groups(&pw, 1, ng, &tiles, out.as_mut_ptr(), n);
            }
            assert_eq!(ng, n.div_ceil(GROUP));
            check_against_scalar(dtype, &w, &xs, (m, n, k), &[("packed", &out)]);
        }
        println!(
            "packed {dtype}: {} cases match the scalar vec_dot",
            cases.len()
        );
    }
}

/// A prepacked weight goes through the matmul entry (bias, alpha and the
/// epilogue as usual), agrees with the same weight unpacked within the
/// kernels' bound, is used only for the view it was packed from, and is
/// dropped when its storage is written.
#[cfg(target_arch = "x86_64")]
#[test]
fn prepacked_weights_through_the_matmul_entry() {
    use super::PackedWeights;
    use crate::cpu::ops::matmul::prepack_weight;
    use crate::ops::matmul::{matmul, Matmul};
    use crate::tensor::{HostBytes, Tensor};
    if !super::x86::Level::available().contains(&super::x86::Level::Avx512Vnni) {
        println!("SKIP prepacked_weights_through_the_matmul_entry: no AVX-512 VNNI on this CPU");
        return;
    }
    for (fi, dtype) in FORMATS.into_iter().enumerate() {
        let (m, n, k) = (11, 37, 3 * dtype.block_elems());
        let w_bytes = random_row(dtype, n * k, 70 + fi as u64);
        let packed_w = Tensor::from_raw(HostBytes::from_bytes(&w_bytes), &[n, k], dtype).unwrap();
        let plain_w = Tensor::from_raw(HostBytes::from_bytes(&w_bytes), &[n, k], dtype).unwrap();
        assert!(prepack_weight(&packed_w).unwrap(), "{dtype} was not packed");
        let x = Tensor::from_f32(&activations(m, k, 80 + fi as u64), &[m, k]).unwrap();
        let bias = Tensor::from_f32(&activations(1, n, 90), &[n]).unwrap();
        let run = |w: &Tensor| {
            let d = Tensor::from_f32(&vec![f32::NAN; m * n], &[m, n]).unwrap();
            let p = Matmul {
                alpha: 0.5,
                bias: Some(&bias),
                ..Default::default()
            };
            matmul(&x, &w.t().unwrap(), &d, &p).unwrap();
            d.to_vec_f32().unwrap()
        };
        let (got, want) = (run(&packed_w), run(&plain_w));
        let scale = want.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-5 * scale,
                "{dtype}: packed {g}, plain {w}"
            );
        }
        // A view of other rows does not take the packing.
        let rows = packed_w.narrow(0, 1, n - 1).unwrap();
        let d = Tensor::from_f32(&vec![f32::NAN; m * (n - 1)], &[m, n - 1]).unwrap();
        matmul(&x, &rows.t().unwrap(), &d, &Matmul::default()).unwrap();
        let sub = d.to_vec_f32().unwrap();
        for i in 0..m {
            for j in 0..n - 1 {
                let (g, w) = (
                    sub[i * (n - 1) + j],
                    (want[i * n + j + 1] - bias.to_vec_f32().unwrap()[j + 1]) * 2.0,
                );
                assert!(
                    (g - w).abs() <= 1e-4 * scale,
                    "{dtype} narrowed [{i}, {j}]: {g} vs {w}"
                );
            }
        }
        let store = packed_w.cpu_storage("test").unwrap();
        assert!(store.derived::<PackedWeights>().is_some());
        drop(store.write("test").unwrap());
        assert!(
            store.derived::<PackedWeights>().is_none(),
            "{dtype}: a write kept the packing"
        );
    }
}
