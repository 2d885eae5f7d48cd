//! Every tile of the Hopper (wgmma) GEMM, forced by name, against cuBLAS
//! (`MatmulBackend::Vendor`) on the same inputs: the dispatcher picks one
//! tile per shape, so the op cases alone would leave some tiles (the
//! clustered ones in particular) unrun. Shapes cover M, N and K tails, a
//! tile row past M inside a cluster, several units per block, batches (A and
//! W both batched, and a shared W), split K (odd N too; every case split
//! where K allows when run with METALLIC_WGMMA_SPLITS set), and the
//! epilogue's direct and staged paths. Needs an sm_90a GPU; elsewhere it prints SKIP.

use metallic::cuda::default_device;
use metallic::cuda::ops::matmul::{matmul_wgmma_tile, wgmma};
use metallic::ops::matmul::{matmul, Activation, Matmul, MatmulBackend};
use metallic::{DType, Device, Tensor};

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

#[test]
fn every_wgmma_tile_matches_cublas() {
    let Some(gpu) = default_device() else {
        println!("SKIP: no CUDA device");
        return;
    };
    if !wgmma::supported(&gpu) {
        println!("SKIP: {} is not sm_90a", gpu.name());
        return;
    }
    let dev = Device::Cuda(gpu);
    // (batch, W batched, m, n, k, bias + alpha, f32 out)
    let cases = [
        (1, false, 300, 520, 264, false, false),
        (1, false, 1300, 3000, 40, false, false),
        (1, false, 200, 300, 4096, true, true),
        (3, true, 130, 200, 72, true, false),
        (2, false, 150, 260, 2048, false, false),
        (1, false, 700, 1000, 1000, false, true),
        // Odd N, long K: split K with partials of odd rows.
        (2, false, 190, 301, 2056, true, false),
    ];
    let mut failures = Vec::new();
    let mut runs = 0;
    for tile in wgmma::TILES {
        for dt in [DType::BF16, DType::F16] {
            for (i, &(batch, w_batched, m, n, k, bias, f32_out)) in cases.iter().enumerate() {
                let shape = |r: usize, c: usize, b: bool| {
                    if b && batch > 1 {
                        vec![batch, r, c]
                    } else {
                        vec![r, c]
                    }
                };
                let make = |s: Vec<usize>, seed: u64| -> metallic::Result<Tensor> {
                    let n: usize = s.iter().product();
                    Tensor::from_f32(&random(n, seed), &s)?
                        .to_dtype(dt)?
                        .to_device(&dev)
                };
                let x = make(shape(m, k, true), 11 + i as u64).unwrap();
                let w = make(shape(n, k, w_batched), 23 + i as u64).unwrap();
                let b = bias.then(|| {
                    Tensor::from_f32(&random(n, 5), &[n])
                        .and_then(|t| t.to_device(&dev))
                        .unwrap()
                });
                let out_dt = if f32_out { DType::F32 } else { dt };
                let y = Tensor::zeros(&shape(m, n, true), out_dt, &dev).unwrap();
                let y_ref = Tensor::zeros(&shape(m, n, true), out_dt, &dev).unwrap();
                let p = |backend| Matmul {
                    alpha: if bias { 0.5 } else { 1.0 },
                    bias: b.as_ref(),
                    activation: if f32_out {
                        Activation::Silu
                    } else {
                        Activation::None
                    },
                    backend,
                    ..Default::default()
                };
                let wt = w.t().unwrap();
                matmul_wgmma_tile(&x, &wt, &y, &p(MatmulBackend::Native), tile).unwrap();
                matmul(&x, &wt, &y_ref, &p(MatmulBackend::Vendor)).unwrap();
                let (got, want) = (y.to_vec_f32().unwrap(), y_ref.to_vec_f32().unwrap());
                let (mut err, mut norm) = (0.0f64, 0.0f64);
                for (g, w) in got.iter().zip(&want) {
                    err += ((g - w) as f64).powi(2);
                    norm += (*w as f64).powi(2);
                }
                let nmse = if got.iter().all(|v| v.is_finite()) {
                    err / norm.max(1e-30)
                } else {
                    f64::INFINITY
                };
                let what = format!(
                    "{} batch {batch} (W batched: {w_batched}) {m}x{n}x{k} bias {bias} out {out_dt}: nmse {nmse:.1e}",
                    tile.name(dt)
                );
                println!("{what}");
                runs += 1;
                if nmse > 5e-5 {
                    failures.push(what);
                }
            }
        }
    }
    println!("{runs} runs, {} failed", failures.len());
    assert!(failures.is_empty(), "failing:\n{}", failures.join("\n"));
}
