//! The op-test harness, after llama.cpp's test-backend-ops: a list of cases,
//! each run on every available target and compared with its op's scalar
//! reference by normalised mean squared error against a per-case budget.
//! Outputs are poisoned with NaN before the op runs, so an element the kernel
//! never writes fails the comparison. A failing case prints its description
//! (shapes, strides, dtypes) and seed.

pub mod attention;
pub mod copy;
pub mod elementwise;
pub mod fused;
pub mod get_rows;
pub mod matmul;
pub mod norm;
mod rng;
pub mod rope;
pub mod softmax;
pub mod tiny_model;
pub mod views;

pub use rng::Rng;

use std::time::Instant;

use crate::device::Device;
use crate::error::Result;
use crate::ops::matmul::MatmulBackend;
use crate::tensor::DType;

/// Where a case runs: a device, and for matmul which implementation family.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub device: Device,
    pub matmul: MatmulBackend,
}

/// Every target this machine can run: the CPU always, and the first CUDA
/// GPU when there is one.
pub fn targets() -> Vec<Target> {
    let mut t = vec![
        Target {
            name: "cpu-native".into(),
            device: Device::Cpu,
            matmul: MatmulBackend::Native,
        },
        Target {
            name: "cpu-vendor".into(),
            device: Device::Cpu,
            matmul: MatmulBackend::Vendor,
        },
    ];
    // The GPU, when this machine has a usable one (no driver or GPU: no
    // target; the kernels are still compile-checked by tests/cuda_kernels.rs).
    if let Some(gpu) = crate::cuda::default_device() {
        for (name, matmul) in [
            ("cuda-native", MatmulBackend::Native),
            ("cuda-vendor", MatmulBackend::Vendor),
        ] {
            t.push(Target {
                name: name.into(),
                device: Device::Cuda(gpu.clone()),
                matmul,
            });
        }
    }
    t
}

/// What one run of a case on a target produced.
pub enum Run {
    /// The op's logical output, row-major F32.
    Output(Vec<f32>),
    /// The target cannot run this case; the reason is printed as SKIP.
    Skip(String),
}

/// One op-test case.
pub trait OpCase: Send + Sync {
    fn op(&self) -> &'static str;
    /// Shapes, strides, dtypes and parameters: enough to reproduce it.
    fn describe(&self) -> String;
    fn seed(&self) -> u64;
    /// Largest normalised MSE that passes.
    fn budget(&self) -> f64;
    fn reference(&self) -> Result<Vec<f32>>;
    fn run(&self, target: &Target) -> Result<Run>;
    /// Matmul cases differ per matmul backend; other ops run once per device.
    fn varies_by_matmul_backend(&self) -> bool {
        false
    }
}

/// `sum((got - want)^2) / sum(want^2)`; NaN or length mismatch gives +inf.
pub fn nmse(got: &[f32], want: &[f32]) -> f64 {
    if got.len() != want.len() {
        return f64::INFINITY;
    }
    let (mut err, mut norm) = (0.0f64, 0.0f64);
    for (&g, &w) in got.iter().zip(want) {
        if !g.is_finite() && g != w {
            return f64::INFINITY;
        }
        let d = g as f64 - w as f64;
        err += d * d;
        norm += w as f64 * w as f64;
    }
    if norm == 0.0 {
        // An all-zero reference: demand an (almost) exact zero answer.
        return err;
    }
    err / norm
}

/// The NMSE budget for an output stored as `dtype` from inputs of `dtype`:
/// rounding of one ulp at the output dominates for the half types.
pub fn float_budget(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => 1e-9,
        DType::F16 => 1e-6,
        DType::BF16 => 5e-5,
        // Quantized weights times Q8-quantized activations (llama.cpp's
        // test-backend-ops uses 5e-4 for matmul).
        _ => 5e-4,
    }
}

#[derive(Debug, Default)]
pub struct Summary {
    pub pass: usize,
    pub fail: usize,
    pub skip: usize,
    pub failures: Vec<String>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "op tests: {} passed, {} failed, {} skipped",
            self.pass, self.fail, self.skip
        )
    }
}

/// Runs every case on every target whose name contains `target_filter`,
/// printing one line per failure or skip (and per case when `verbose`).
pub fn run_cases(
    cases: &[Box<dyn OpCase>],
    targets: &[Target],
    target_filter: &str,
    verbose: bool,
) -> Summary {
    let mut s = Summary::default();
    for case in cases {
        let want = match case.reference() {
            Ok(w) => w,
            Err(e) => {
                let msg = format!(
                    "FAIL {} [{}] seed {}: reference failed: {e}",
                    case.op(),
                    case.describe(),
                    case.seed()
                );
                println!("{msg}");
                s.failures.push(msg);
                s.fail += 1;
                continue;
            }
        };
        let mut seen_devices: Vec<Device> = Vec::new();
        for t in targets.iter().filter(|t| t.name.contains(target_filter)) {
            if !case.varies_by_matmul_backend() {
                if seen_devices.contains(&t.device) {
                    continue;
                }
                seen_devices.push(t.device.clone());
            }
            let start = Instant::now();
            let result = case.run(t);
            let ms = start.elapsed().as_secs_f64() * 1e3;
            let line = |verdict: &str, detail: String| {
                format!(
                    "{verdict} {} on {} [{}] seed {}: {detail} ({ms:.1} ms)",
                    case.op(),
                    t.name,
                    case.describe(),
                    case.seed()
                )
            };
            match result {
                Ok(Run::Output(got)) => {
                    let err = nmse(&got, &want);
                    if err <= case.budget() {
                        s.pass += 1;
                        if verbose {
                            println!("{}", line("PASS", format!("nmse {err:.3e}")));
                        }
                    } else {
                        let msg = line(
                            "FAIL",
                            format!("nmse {err:.3e} > budget {:.1e}", case.budget()),
                        );
                        println!("{msg}");
                        s.failures.push(msg);
                        s.fail += 1;
                    }
                }
                Ok(Run::Skip(why)) => {
                    println!("{}", line("SKIP", why));
                    s.skip += 1;
                }
                Err(e) => {
                    let msg = line("FAIL", format!("error: {e}"));
                    println!("{msg}");
                    s.failures.push(msg);
                    s.fail += 1;
                }
            }
        }
    }
    s
}

/// Every case of every op.
pub fn all_cases() -> Vec<Box<dyn OpCase>> {
    let mut cases = Vec::new();
    cases.extend(matmul::cases());
    cases.extend(copy::cases());
    cases.extend(elementwise::cases());
    cases.extend(norm::cases());
    cases.extend(rope::cases());
    cases.extend(softmax::cases());
    cases.extend(get_rows::cases());
    cases.extend(attention::cases());
    cases.extend(fused::cases());
    cases
}
