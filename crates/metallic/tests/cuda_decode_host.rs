//! The CUDA wide-load kernels' block decoding (`V<T>::decode` in
//! kernels/quant.cuh) against the element-at-a-time decoding (`Q<T>::get`,
//! bit-exact with the scalar reference on the GPU), compiled as host C++
//! (tests/host_decode: a shim for the few CUDA intrinsics it uses) and run
//! over random blocks: every element comes out of exactly one part with
//! the same bits. Needs no GPU, only a C++ compiler (`c++`, or `CXX`); a
//! missing compiler fails the test. The same harness checks the one-row
//! kernel's factored parts (`D<T>`) against an f64 dot product, and the
//! 8-bit activation parts (`I8<T>`) against an f64 dot with the activations
//! quantized as the CPU quantizes them, and the tensor-core kernels' runs of
//! 8 (`E8<T>`) bit for bit against `Q<T>::get`.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn wide_load_decoding_matches_the_element_decoding_bit_for_bit() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let kernels = root.join("src/cuda/kernels");
    let harness = root.join("tests/host_decode");
    let out = std::env::temp_dir().join(format!("metallic-decode-check-{}", std::process::id()));
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let built = Command::new(&cxx)
        .args(["-std=c++17", "-O2", "-ffp-contract=off", "-I"])
        .arg(&harness)
        .arg("-I")
        .arg(&kernels)
        .arg(harness.join("check.cpp"))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("running the C++ compiler `{cxx}`: {e} (set CXX)"));
    assert!(
        built.status.success(),
        "the host harness does not compile:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let run = Command::new(&out).output().expect("the harness runs");
    let _ = std::fs::remove_file(&out);
    let text = String::from_utf8_lossy(&run.stdout);
    println!("{text}");
    assert!(run.status.success(), "decoding differs:\n{text}");
    assert_eq!(
        text.matches("every element once, bit-identical").count(),
        7,
        "{text}"
    );
    assert_eq!(text.matches("every run bit-identical").count(), 7, "{text}");
    assert_eq!(text.matches("within 1e-5").count(), 11, "{text}");
    assert_eq!(text.matches("within 1e-5 (8-bit)").count(), 7, "{text}");
}
