//! Bit-exact checks against the `gguf` Python package's golden data
//! (`scripts/gen_quant_golden.py`), and consistency checks of the dot
//! products and views against dequantization.

use super::blocks::*;
use super::*;
use crate::tensor::Layout;

fn golden_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/quant")
}

/// A golden file: (ggml type id, element count, first section of
/// `nbytes` bytes, the rest).
fn read_golden(name: &str, magic: &[u8; 4]) -> (u32, usize, Vec<u8>, Vec<u8>) {
    let path = golden_dir().join(name);
    let data = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/gen_quant_golden.py)", path.display()));
    assert_eq!(&data[..4], magic, "{name}: bad magic");
    let word = |i: usize| u32::from_le_bytes(data[4 + 4 * i..8 + 4 * i].try_into().unwrap());
    let (id, n, nbytes) = (word(0), word(1) as usize, word(2) as usize);
    let (first, rest) = data[16..].split_at(nbytes);
    (id, n, first.to_vec(), rest.to_vec())
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// Equal bits, or both NaN.
fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

#[test]
fn dequantize_matches_gguf_package_bit_for_bit() {
    for dtype in DType::ALL {
        let (id, n, raw, tail) = read_golden(&format!("dequant_{}.bin", dtype.name()), b"MQD1");
        assert_eq!(
            id,
            dtype.ggml_id(),
            "{dtype}: golden file holds another type"
        );
        let want = f32s(&tail);
        assert_eq!(want.len(), n, "{dtype}: golden value count");
        let mut got = vec![f32::NAN; n];
        dequantize_row(dtype, &raw, &mut got).unwrap();
        let bad: Vec<usize> = (0..n).filter(|&i| !same(got[i], want[i])).collect();
        assert!(
            bad.is_empty(),
            "{dtype}: {} of {n} values differ; first at {}: got {:e} want {:e}",
            bad.len(),
            bad[0],
            got[bad[0]],
            want[bad[0]]
        );
    }
}

#[test]
fn quantize_matches_gguf_package_bit_for_bit() {
    for dtype in [
        DType::Q4_0,
        DType::Q4_1,
        DType::Q5_0,
        DType::Q5_1,
        DType::Q8_0,
        DType::Q8_1,
        DType::Q8K,
    ] {
        let name = format!("quantize_{}.bin", dtype.name());
        let path = golden_dir().join(&name);
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(&data[..4], b"MQQ1");
        let word = |i: usize| u32::from_le_bytes(data[4 + 4 * i..8 + 4 * i].try_into().unwrap());
        assert_eq!(word(0), dtype.ggml_id());
        let (n, nbytes) = (word(1) as usize, word(2) as usize);
        let src = f32s(&data[16..16 + 4 * n]);
        let want = &data[16 + 4 * n..16 + 4 * n + nbytes];
        let mut got = vec![0u8; nbytes];
        quantize_row(dtype, &src, &mut got).unwrap();
        let bb = dtype.block_bytes();
        for (b, (g, w)) in got.chunks(bb).zip(want.chunks(bb)).enumerate() {
            assert_eq!(g, w, "{dtype}: block {b} differs from the gguf package");
        }
    }
}

#[test]
fn block_structs_match_dtype_sizes() {
    use std::mem::size_of;
    let sizes = [
        (DType::Q4_0, size_of::<BlockQ4_0>()),
        (DType::Q4_1, size_of::<BlockQ4_1>()),
        (DType::Q5_0, size_of::<BlockQ5_0>()),
        (DType::Q5_1, size_of::<BlockQ5_1>()),
        (DType::Q8_0, size_of::<BlockQ8_0>()),
        (DType::Q8_1, size_of::<BlockQ8_1>()),
        (DType::Q2K, size_of::<BlockQ2K>()),
        (DType::Q3K, size_of::<BlockQ3K>()),
        (DType::Q4K, size_of::<BlockQ4K>()),
        (DType::Q5K, size_of::<BlockQ5K>()),
        (DType::Q6K, size_of::<BlockQ6K>()),
        (DType::Q8K, size_of::<BlockQ8K>()),
    ];
    for (dtype, size) in sizes {
        assert_eq!(dtype.block_bytes(), size, "{dtype}");
    }
}

#[test]
fn dequantize_row_rejects_partial_blocks() {
    let mut out = vec![0.0; 32];
    assert!(dequantize_row(DType::Q4_0, &[0; 17], &mut out).is_err());
    let mut out = vec![0.0; 33];
    assert!(dequantize_row(DType::Q4_0, &[0; 18], &mut out).is_err());
    assert!(quantize_row(DType::Q4K, &[0.0; 256], &mut [0; 144]).is_err());
    assert!(quantize_row(DType::Q8_0, &[0.0; 31], &mut [0; 34]).is_err());
}

#[test]
fn random_rows_are_valid_and_moderate() {
    for dtype in DType::ALL {
        let k = 2 * 256;
        let bytes = random_row(dtype, k, 7);
        assert_eq!(Some(bytes.len()), dtype.bytes_for(k), "{dtype}");
        assert_eq!(bytes, random_row(dtype, k, 7), "{dtype}: not reproducible");
        assert_ne!(bytes, random_row(dtype, k, 8), "{dtype}: seed ignored");
        let mut x = vec![0.0; k];
        dequantize_row(dtype, &bytes, &mut x).unwrap();
        let max = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(x.iter().all(|v| v.is_finite()), "{dtype}");
        assert!(max > 0.05 && max < 16.0, "{dtype}: max |x| = {max}");
    }
    // Derived fields agree with what the quantizer would store.
    let q8k = random_row(DType::Q8K, 256, 3);
    let b: BlockQ8K = bytemuck::pod_read_unaligned(&q8k);
    for (s, chunk) in b.bsums.iter().zip(b.qs.chunks(16)) {
        assert_eq!(*s as i32, chunk.iter().map(|&q| q as i32).sum::<i32>());
    }
}

#[test]
fn quantize_then_dequantize_round_trips_within_step() {
    let x: Vec<f32> = (0..512)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
        .collect();
    for dtype in QUANTIZABLE {
        let mut q = vec![0u8; dtype.bytes_for(x.len()).unwrap()];
        quantize_row(dtype, &x, &mut q).unwrap();
        let mut y = vec![0.0; x.len()];
        dequantize_row(dtype, &q, &mut y).unwrap();
        // Per block, the error is at most one quantization step (plus f16
        // rounding of the scale).
        let levels = match dtype {
            DType::Q4_0 | DType::Q4_1 => 15.0,
            DType::Q5_0 | DType::Q5_1 => 31.0,
            DType::F32 | DType::F16 | DType::BF16 => 256.0,
            _ => 254.0,
        };
        for (bx, by) in x
            .chunks(dtype.block_elems().max(32))
            .zip(y.chunks(dtype.block_elems().max(32)))
        {
            let range = bx.iter().fold(0.0f32, |m, v| m.max(v.abs())) * 2.0;
            for (a, b) in bx.iter().zip(by) {
                assert!(
                    (a - b).abs() <= range / levels * 1.01 + 1e-6,
                    "{dtype}: {a} -> {b}"
                );
            }
        }
    }
}

/// The integer dot products against dequantize-then-dot in f64, for every
/// weight format, with the activation quantized the way matmul does it.
#[test]
fn vec_dot_matches_dequantized_dot() {
    for (i, dtype) in DType::ALL.into_iter().enumerate() {
        let k = 3 * 256;
        let w = random_row(dtype, k, 100 + i as u64);
        let x: Vec<f32> = (0..k)
            .map(|j| ((j * 7919 % 211) as f32 - 105.0) / 64.0)
            .collect();
        let act = vec_dot_type(dtype);
        let mut a = vec![0u8; act.bytes_for(k).unwrap()];
        quantize_row(act, &x, &mut a).unwrap();
        let got = vec_dot(dtype, &w, &a).unwrap() as f64;
        // Exact product of the two dequantized rows.
        let (mut wf, mut af) = (vec![0.0; k], vec![0.0; k]);
        dequantize_row(dtype, &w, &mut wf).unwrap();
        dequantize_row(act, &a, &mut af).unwrap();
        let want: f64 = wf.iter().zip(&af).map(|(&p, &q)| p as f64 * q as f64).sum();
        let norm: f64 = wf
            .iter()
            .zip(&af)
            .map(|(&p, &q)| (p as f64 * q as f64).abs())
            .sum();
        // Q8_1's stored `s` is rounded to f16, so Q4_1/Q5_1 carry that error.
        let tol = match act {
            DType::Q8_1 => 2e-3,
            _ => 1e-5,
        };
        assert!(
            (got - want).abs() <= tol * norm,
            "{dtype}: vec_dot {got} vs dequantized {want} (norm {norm})"
        );
    }
}

#[test]
fn vec_dot_rejects_mismatched_rows() {
    let w = random_row(DType::Q4_0, 64, 1);
    assert!(vec_dot(DType::Q4_0, &w, &[0; 34]).is_err());
    assert!(vec_dot(DType::Q4_0, &w[..17], &[0; 34]).is_err());
}

#[test]
fn dequantize_view_handles_transposed_narrowed_and_batched_views() {
    let dtype = DType::Q4K;
    let (b, n, k) = (2, 3, 512);
    let bytes = random_row(dtype, b * n * k, 5);
    let full = dequantize_view(dtype, &bytes, &Layout::contiguous(&[b, n, k])).unwrap();
    let mut flat = vec![0.0; b * n * k];
    dequantize_row(dtype, &bytes, &mut flat).unwrap();
    assert_eq!(full, flat);
    let at = |bi: usize, r: usize, c: usize| flat[(bi * n + r) * k + c];

    // [b, k, n] view of the [b, n, k] weight: logical order of the view.
    let t = Layout::contiguous(&[b, n, k]).transpose(1, 2).unwrap();
    let got = dequantize_view(dtype, &bytes, &t).unwrap();
    for bi in 0..b {
        for c in 0..k {
            for r in 0..n {
                assert_eq!(got[(bi * k + c) * n + r], at(bi, r, c));
            }
        }
    }
    // Rows 1..3 of batch 1.
    let nr = Layout::contiguous(&[b, n, k])
        .narrow(0, 1, 1)
        .unwrap()
        .narrow(1, 1, 2)
        .unwrap();
    let got = dequantize_view(dtype, &bytes, &nr).unwrap();
    assert_eq!(got.len(), 2 * k);
    for r in 0..2 {
        for c in 0..k {
            assert_eq!(got[r * k + c], at(1, r + 1, c));
        }
    }
    // Splitting a block is refused, not misread.
    let split = Layout::new(&[n, 100], &[k, 1], 1).unwrap();
    assert!(dequantize_view(dtype, &bytes, &split).is_err());
    // A view past the storage is an error, not a panic.
    let past = Layout::new(&[4, k], &[k, 1], 0).unwrap();
    assert!(dequantize_view(dtype, &bytes[..3 * dtype.bytes_for(k).unwrap()], &past).is_err());
}

#[test]
fn to_vec_f32_of_quantized_tensor_uses_dequantize_view() {
    use crate::tensor::{HostBytes, Tensor};
    let bytes = random_row(DType::Q8_0, 4 * 64, 9);
    let t = Tensor::from_raw(HostBytes::from_bytes(&bytes), &[4, 64], DType::Q8_0).unwrap();
    let mut want = vec![0.0; 256];
    dequantize_row(DType::Q8_0, &bytes, &mut want).unwrap();
    assert_eq!(t.to_vec_f32().unwrap(), want);
    let tt = t.t().unwrap().to_vec_f32().unwrap();
    assert_eq!(tt[5 * 4 + 2], want[2 * 64 + 5]);
}

/// The run-time activation quantizers (llama.cpp's SIMD `quantize_row_q8_0`
/// and `_q8_1`): `id = 127 / amax`, halves to even, Q8_1's `s` from the f32
/// `d`; against the `_ref` quantizers they differ by at most one step.
#[test]
fn activation_quantizers_follow_llama_cpp_run_time() {
    // amax 127 makes id exactly 1: 2.5 -> 2 and -3.5 -> -4 (to even),
    // where roundf gives 3 and -4.
    let mut x = [0.0f32; QK];
    x[0] = 127.0;
    x[1] = 2.5;
    x[2] = -3.5;
    x[3] = 0.5;
    let a = quantize::q8_0_act(&x);
    assert_eq!(&a.qs[..4], &[127, 2, -4, 0]);
    let r = quantize::q8_0(&x);
    assert_eq!(&r.qs[..4], &[127, 3, -4, 1]);
    let b = quantize::q8_1_act(&x);
    assert_eq!(b.qs, a.qs);
    let sum: i32 = a.qs.iter().map(|&q| q as i32).sum();
    assert_eq!(b.s, half::f16::from_f32(sum as f32 * (127.0f32 / 127.0)));
    assert_eq!(quantize::q8_0_act(&[0.0; QK]).qs, [0; QK]);
    // Random blocks: the same scale, quants within one step of the _ref's.
    for seed in 0..50u64 {
        let mut st = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let row: Vec<f32> = (0..QK)
            .map(|_| {
                st ^= st << 13;
                st ^= st >> 7;
                st ^= st << 17;
                ((st >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 7.0
            })
            .collect();
        let x: &[f32; QK] = row[..].try_into().unwrap();
        let (a, r) = (quantize::q8_0_act(x), quantize::q8_0(x));
        assert_eq!(a.d, r.d);
        let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        for ((&qa, &qr), &v) in a.qs.iter().zip(&r.qs).zip(x) {
            assert!(
                (qa as i32 - qr as i32).abs() <= 1,
                "seed {seed}: {qa} vs {qr}"
            );
            let want = (v * (127.0 / amax)).round_ties_even();
            assert_eq!(qa as f32, want, "seed {seed}: {v}");
        }
    }
}
