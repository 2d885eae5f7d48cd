//! Every CUDA kernel module, with every variant it instantiates, compiles
//! through NVRTC for Ampere (sm_80) and Hopper (sm_90a). Needs no GPU, only
//! libnvrtc (CI installs the `nvidia-cuda-nvrtc` wheel and puts it on
//! LD_LIBRARY_PATH via scripts/nvrtc_env.sh); without it this test fails,
//! so a kernel that does not compile cannot land.

use metallic::cuda::{
    compile_cubin, compile_cubin_logged, nvrtc_available, nvrtc_version, ops::all_modules,
    KernelCache,
};

#[test]
fn every_kernel_compiles_for_sm80_and_sm90a() {
    if let Err(e) = nvrtc_available() {
        panic!("{e}\n(source scripts/nvrtc_env.sh after installing the wheel)");
    }
    let (major, minor) = nvrtc_version().expect("NVRTC reports its version");
    println!("NVRTC {major}.{minor}");
    let mut failures = Vec::new();
    // METALLIC_COMPILE_ONLY=<text>: only the modules whose key contains it
    // (a quick look at one kernel's ptxas log).
    let only = std::env::var("METALLIC_COMPILE_ONLY").unwrap_or_default();
    // METALLIC_COMPILE_CACHE=<dir>: also keep every CUBIN there, as the
    // kernel cache (METALLIC_KERNEL_CACHE) of a GPU machine with the same
    // NVRTC would, so that a lent machine starts with it filled.
    let cache = std::env::var_os("METALLIC_COMPILE_CACHE").map(|d| KernelCache {
        dir: Some(d.into()),
    });
    for module in all_modules()
        .into_iter()
        .filter(|m| m.key().contains(&only))
    {
        // METALLIC_COMPILE_DUMP=<dir>: also write each module's full source,
        // defines first, for a look at its PTX.
        if let Ok(dir) = std::env::var("METALLIC_COMPILE_DUMP") {
            let defines: String = module
                .defines
                .iter()
                .map(|d| format!("#define {}\n", d.replacen('=', " ", 1)))
                .collect();
            let path = std::path::Path::new(&dir).join(format!("{}.cu", module.name));
            std::fs::write(&path, defines + &module.src).expect("the dump folder is writable");
        }
        for arch in ["sm_80", "sm_90a"] {
            let start = std::time::Instant::now();
            match compile_cubin_logged(&module, arch) {
                Ok((cubin, log)) => {
                    println!(
                        "compiled {} for {arch}: {} bytes in {:.0} ms",
                        module.key(),
                        cubin.len(),
                        start.elapsed().as_secs_f64() * 1e3
                    );
                    if !log.is_empty() {
                        println!("  log: {log}");
                    }
                    if let Some(c) = &cache {
                        c.store(&module, arch, &cubin)
                            .expect("the cache folder is writable");
                    }
                    // ptxas serialises wgmma where it cannot prove the
                    // accumulators untouched while in flight: correct, and
                    // several times slower.
                    if log.contains("serialized") || log.contains("Performance Loss") {
                        failures.push(format!("{} for {arch}: {log}", module.key()));
                    }
                }
                Err(e) => failures.push(e.to_string()),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "kernels failed to compile:\n{}",
        failures.join("\n\n")
    );
}

#[test]
fn a_compile_error_names_the_kernel_and_carries_the_log() {
    if nvrtc_available().is_err() {
        panic!("libnvrtc is needed (see every_kernel_compiles_for_sm80_and_sm90a)");
    }
    let bad = metallic::cuda::KernelSource::new(
        "broken_kernel",
        &[],
        "extern \"C\" __global__ void f() { undeclared_thing; }",
    );
    let e = compile_cubin(&bad, "sm_80")
        .expect_err("must not compile")
        .to_string();
    assert!(
        e.contains("broken_kernel") && e.contains("undeclared_thing"),
        "{e}"
    );
}
