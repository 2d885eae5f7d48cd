//! The CUDA device layer: views survive moves between devices, and running
//! out of device memory is a typed error carrying the sizes. Prints SKIP
//! where there is no GPU.

use metallic::{DType, Device, Error, Tensor};

fn gpu() -> Option<Device> {
    match metallic::cuda::default_device() {
        Some(d) => Some(Device::Cuda(d)),
        None => {
            println!("SKIP cuda device tests: no CUDA device");
            None
        }
    }
}

#[test]
fn a_view_moved_to_the_gpu_and_back_is_the_same_view() {
    let Some(gpu) = gpu() else { return };
    let data: Vec<f32> = (0..60).map(|i| i as f32 * 0.5 - 7.0).collect();
    let base = Tensor::from_f32(&data, &[3, 4, 5]).unwrap();
    let view = base.narrow(1, 1, 2).unwrap().transpose(0, 2).unwrap();
    let want = view.to_vec_f32().unwrap();
    let on_gpu = view.to_device(&gpu).unwrap();
    assert_eq!(on_gpu.device(), gpu);
    assert_eq!(on_gpu.shape(), view.shape());
    assert_eq!(on_gpu.strides(), view.strides());
    assert_eq!(
        on_gpu.to_vec_f32().unwrap(),
        want,
        "read straight from the GPU"
    );
    let back = on_gpu.to_device(&Device::Cpu).unwrap();
    assert_eq!(back.to_vec_f32().unwrap(), want, "after the round trip");
    for dt in [DType::F16, DType::BF16] {
        let t = base.to_dtype(dt).unwrap().to_device(&gpu).unwrap();
        let host = base.to_dtype(dt).unwrap().to_vec_f32().unwrap();
        assert_eq!(t.to_vec_f32().unwrap(), host, "{dt}");
    }
    let z = Tensor::zeros(&[7, 3], DType::BF16, &gpu).unwrap();
    assert_eq!(z.to_vec_f32().unwrap(), vec![0.0; 21]);
}

#[test]
fn out_of_memory_is_a_clear_error_with_the_sizes() {
    let Some(gpu) = gpu() else { return };
    // 16 TiB: more than any card has.
    let n = 1usize << 42;
    match Tensor::zeros(&[n], DType::F32, &gpu) {
        Err(e @ Error::OutOfMemory { .. }) => {
            let msg = e.to_string();
            println!("{msg}");
            assert!(
                msg.contains(&(4 * n).to_string()) && msg.contains("free of"),
                "{msg}"
            );
        }
        Err(e) => panic!("expected OutOfMemory, got {e}"),
        Ok(_) => panic!("a 16 TiB tensor was allocated"),
    }
    // The device still works afterwards.
    let t = Tensor::full(&[4], 2.5, DType::F32, &gpu).unwrap();
    assert_eq!(t.to_vec_f32().unwrap(), vec![2.5; 4]);
}

/// The kernel profile (`METALLIC_CUDA_PROFILE=1`, `metallic bench`'s table):
/// while on, every launch is counted under its kernel's name with a positive
/// time; off, nothing is recorded. Copies of a strided view run
/// `copy_strided` once each. (Other tests of this binary share the device;
/// it runs with --test-threads 1, as scripts/gpu_test.sh runs it.)
#[test]
fn the_kernel_profile_counts_every_launch() {
    let Some(gpu) = gpu() else { return };
    let Device::Cuda(dev) = &gpu else {
        unreachable!("gpu() gives a CUDA device")
    };
    let data: Vec<f32> = (0..4096).map(|i| i as f32).collect();
    let t = Tensor::from_f32(&data, &[64, 64])
        .unwrap()
        .to_device(&gpu)
        .unwrap();
    let copies = |n: usize| {
        for _ in 0..n {
            t.t().unwrap().contiguous().unwrap();
        }
    };
    dev.set_profiling(true).unwrap();
    assert!(dev.profiling());
    dev.kernel_profile().unwrap();
    copies(5);
    let prof = dev.kernel_profile().unwrap();
    let copy = prof
        .iter()
        .find(|k| k.name == "copy_strided")
        .unwrap_or_else(|| panic!("no copy_strided in {prof:?}"));
    assert_eq!(copy.launches, 5, "{prof:?}");
    assert!(copy.ms > 0.0, "{prof:?}");
    // Read once: the next read starts empty.
    assert!(dev.kernel_profile().unwrap().is_empty());
    dev.set_profiling(false).unwrap();
    assert!(!dev.profiling());
    copies(2);
    assert!(dev.kernel_profile().unwrap().is_empty());
}
