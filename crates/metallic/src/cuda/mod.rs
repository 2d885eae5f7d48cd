//! The CUDA backend: run-time compiled kernels (NVRTC -> CUBIN, cached on
//! disk), a caching device-memory pool, and every op the model uses, each in
//! `ops/<op>.rs` beside its kernel source `kernels/<op>.cu`.
//!
//! Everything CUDA is loaded at run time (cudarc's dynamic loading): the crate
//! builds, and its CPU tests run, on machines with no CUDA at all, and
//! [`CudaDevice::new`] answers `Error::CudaUnavailable` with the reason where
//! there is no driver, GPU or library.
//!
//! Environment, read once when a device is first opened
//! ([`CudaConfig::from_env`]): `METALLIC_KERNEL_CACHE` (the CUBIN cache
//! folder; empty disables it; default `~/.cache/metallic/kernels`) and
//! `METALLIC_CUDA_POOL=off` (no buffer reuse: exact-size allocations freed
//! on drop, so compute-sanitizer sees every tensor's bounds). The
//! libraries (`libcuda`, `libnvrtc`, `libcublas`) are found through the usual
//! dynamic-loader path (`LD_LIBRARY_PATH`).

pub mod bench;
mod compile;
mod context;
mod memory;
pub mod ops;
mod storage;

pub use compile::{
    compile_cubin, compile_cubin_logged, nvrtc_available, nvrtc_version, KernelCache, KernelSource,
};
pub use context::{arch_for, default_device, CudaConfig, CudaDevice, CudaGraph, KernelTime};
pub use memory::{DeviceBuffer, Pool};
pub use storage::CudaStorage;
