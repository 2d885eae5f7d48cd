//! Every tile of the Hopper (wgmma) GEMM, forced by name, against cuBLAS
//! (`MatmulBackend::Vendor`) on the same inputs: the dispatcher picks one
//! tile per shape, so the op cases alone would leave some tiles (the
//! clustered ones in particular) unrun. Shapes cover M, N and K tails, a
//! tile row past M inside a cluster, several units per block, batches (A and
//! W both batched, and a shared W), split K (odd N too; every case split
//! where K allows when run with METALLIC_WGMMA_SPLITS set), and the
//! epilogue's direct and staged paths. Then the M <= 16 products the
//! dispatcher runs transposed on the 64x16 tile, through `matmul`. Needs an
//! sm_90a GPU; elsewhere it prints SKIP. METALLIC_WGMMA_TILES=128x256x64,..
//! runs only those tiles (one sanitizer run per tile).

use metallic::cuda::ops::matmul::{matmul_wgmma_tile, wgmma};
use metallic::cuda::{default_device, CudaDevice};
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

/// Squared error of `got` over the squared norm of `want` (infinite where
/// `got` holds NaN or an infinity `want` does not).
fn nmse(got: &Tensor, want: &Tensor) -> f64 {
    metallic::optest::nmse(&got.to_vec_f32().unwrap(), &want.to_vec_f32().unwrap())
}

/// Largest NMSE against cuBLAS that passes (f32 accumulation on both sides,
/// f16/bf16 output rounding).
const TOLERANCE: f64 = 5e-5;

/// The runs of a test and the ones that failed; `finish` asserts none did.
#[derive(Default)]
struct Tally {
    runs: usize,
    failures: Vec<String>,
}

impl Tally {
    fn record(&mut self, what: String, nmse: f64) {
        println!("{what}");
        self.runs += 1;
        if nmse > TOLERANCE {
            self.failures.push(what);
        }
    }

    fn finish(self) {
        println!("{} runs, {} failed", self.runs, self.failures.len());
        assert!(
            self.failures.is_empty(),
            "failing:\n{}",
            self.failures.join("\n")
        );
    }
}

/// The GPU, where it is sm_90a (otherwise SKIP is printed).
fn hopper() -> Option<CudaDevice> {
    let Some(gpu) = default_device() else {
        println!("SKIP: no CUDA device");
        return None;
    };
    if !wgmma::supported(&gpu) {
        println!("SKIP: {} is not sm_90a", gpu.name());
        return None;
    }
    Some(gpu)
}

/// The cases' parameters: alpha 0.5 where there is a bias, SiLU where asked.
fn params(bias: Option<&Tensor>, beta: f32, silu: bool, backend: MatmulBackend) -> Matmul<'_> {
    Matmul {
        alpha: if bias.is_some() { 0.5 } else { 1.0 },
        beta,
        bias,
        activation: if silu {
            Activation::Silu
        } else {
            Activation::None
        },
        backend,
        ..Default::default()
    }
}

#[test]
fn every_wgmma_tile_matches_cublas() {
    let Some(gpu) = hopper() else {
        return;
    };
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
    let mut tally = Tally::default();
    let only: Option<Vec<wgmma::WgmmaTile>> = std::env::var("METALLIC_WGMMA_TILES")
        .ok()
        .map(|v| v.split(',').map(|t| t.parse().unwrap()).collect());
    let tiles = wgmma::TILES
        .into_iter()
        .filter(|t| only.as_ref().is_none_or(|o| o.contains(t)));
    for tile in tiles {
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
                let p = |backend| params(b.as_ref(), 0.0, f32_out, backend);
                let wt = w.t().unwrap();
                matmul_wgmma_tile(&x, &wt, &y, &p(MatmulBackend::Native), tile).unwrap();
                matmul(&x, &wt, &y_ref, &p(MatmulBackend::Vendor)).unwrap();
                let nmse = nmse(&y, &y_ref);
                let what = format!(
                    "{} batch {batch} (W batched: {w_batched}) {m}x{n}x{k} bias {bias} out {out_dt}: nmse {nmse:.1e}",
                    tile.name(dt)
                );
                tally.record(what, nmse);
            }
        }
    }
    tally.finish();
}

/// M <= 16 products that the dispatcher runs transposed on the 64x16 tile
/// (`wgmma::swaps`: D^T = W x^T, a bias along the transposed D's rows),
/// through `matmul` with the native backend, against cuBLAS: bias, alpha,
/// beta with C, SiLU, f32 output, and a strided (column-sliced) D.
#[test]
fn transposed_small_m_products_match_cublas() {
    let Some(gpu) = hopper() else {
        return;
    };
    let dev = Device::Cuda(gpu.clone());
    let mut tally = Tally::default();
    // (m, n, k, bias, beta, silu, f32 out, D a column slice of a wider
    // buffer)
    let cases = [
        (1, 4608, 3584, false, false, false, false, false),
        (1, 520, 264, true, false, false, false, false),
        (5, 300, 1000, true, true, false, false, false),
        (16, 200, 2048, false, false, true, true, false),
        (8, 1000, 512, true, false, false, false, true),
        (3, 77, 72, true, true, true, false, true),
    ];
    for dt in [DType::BF16, DType::F16] {
        for (i, &(m, n, k, bias, beta, silu, f32_out, sliced)) in cases.iter().enumerate() {
            let seed = 101 + i as u64;
            let make = |r: usize, c: usize, s: u64| {
                Tensor::from_f32(&random(r * c, s), &[r, c])
                    .and_then(|t| t.to_dtype(dt))
                    .and_then(|t| t.to_device(&dev))
                    .unwrap()
            };
            let x = make(m, k, seed);
            let w = make(n, k, seed + 7);
            let b = bias.then(|| {
                Tensor::from_f32(&random(n, seed + 3), &[n])
                    .and_then(|t| t.to_device(&dev))
                    .unwrap()
            });
            let out_dt = if f32_out { DType::F32 } else { dt };
            // D (and C, when beta is set) start as the same random values
            // in both runs: beta reads them, and a kernel that skipped an
            // element would leave a value cuBLAS's run overwrote.
            let width = if sliced { n + 24 } else { n };
            let init = Tensor::from_f32(&random(m * width, seed + 11), &[m, width])
                .and_then(|t| t.to_dtype(out_dt))
                .unwrap();
            let y = init.to_device(&dev).unwrap();
            let y_ref = init.to_device(&dev).unwrap();
            let view = |t: &Tensor| {
                if sliced {
                    t.narrow(1, 8, n).unwrap()
                } else {
                    t.clone()
                }
            };
            let (yv, yv_ref) = (view(&y), view(&y_ref));
            let p = |backend| params(b.as_ref(), if beta { 0.75 } else { 0.0 }, silu, backend);
            let wt = w.t().unwrap();
            let ours = Matmul {
                c: beta.then_some(&yv),
                ..p(MatmulBackend::Native)
            };
            let problem = metallic::ops::matmul::validate(&x, &wt, &yv, &ours).unwrap();
            assert!(
                wgmma::swaps(&problem, &gpu),
                "case {i}: {m}x{n}x{k} is not run transposed"
            );
            matmul(&x, &wt, &yv, &ours).unwrap();
            let theirs = Matmul {
                c: beta.then_some(&yv_ref),
                ..p(MatmulBackend::Vendor)
            };
            matmul(&x, &wt, &yv_ref, &theirs).unwrap();
            let nmse = nmse(&y, &y_ref);
            let what = format!("{dt} case {i} {m}x{n}x{k} bias {bias} beta {beta} silu {silu} out {out_dt} sliced {sliced}: nmse {nmse:.1e}");
            tally.record(what, nmse);
        }
    }
    tally.finish();
}
