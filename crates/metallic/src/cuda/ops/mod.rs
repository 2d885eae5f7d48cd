//! Host wrappers of the CUDA kernels, one file per op family, each beside
//! its kernel source in `cuda/kernels/<op>.cu`. They run after the op layer
//! has validated the arguments, so they only translate tensors into kernel
//! arguments and launch.

pub mod attention;
pub mod copy;
pub mod elementwise;
pub mod get_rows;
pub mod matmul;
pub mod norm;
pub mod rope;
pub mod softmax;

use std::ffi::c_void;
use std::sync::{Mutex, OnceLock};

use cudarc::driver::sys::CUfunction;

use super::compile::KernelSource;
use super::context::CudaDevice;
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

pub(crate) const COMMON: &str = include_str!("../kernels/common.cuh");
pub(crate) const QUANT: &str = include_str!("../kernels/quant.cuh");

/// A module source built once per process, and the functions of it that
/// launches have used.
pub(crate) struct Module {
    cell: OnceLock<KernelSource>,
    make: fn() -> KernelSource,
    loaded: Mutex<Vec<Loaded>>,
}

/// A function of a module as loaded on one device, with the dynamic shared
/// memory it has been allowed so far.
struct Loaded {
    ordinal: usize,
    name: String,
    f: Function,
    shared: u32,
}

/// A `CUfunction` handle.
#[derive(Clone, Copy)]
struct Function(CUfunction);

// SAFETY: a CUfunction is an opaque handle the driver lets any thread use;
// devices (and so their modules) live as long as the process.
unsafe impl Send for Function {}
unsafe impl Sync for Function {}

impl Module {
    pub(crate) const fn new(make: fn() -> KernelSource) -> Module {
        Module {
            cell: OnceLock::new(),
            make,
            loaded: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn source(&self) -> &KernelSource {
        self.cell.get_or_init(self.make)
    }

    /// `func` on `dev`, allowed `shared` bytes of dynamic shared memory
    /// (above 48 KiB the function's limit is raised first, as the driver
    /// requires: CUDA C++ Programming Guide, "Shared Memory"). Looked up
    /// (and the limit raised) once per device: a launch's host time is on
    /// the critical path of small products (the device's module map is
    /// keyed by the module's source name and defines, a string built per
    /// lookup).
    fn function(&self, dev: &CudaDevice, func: &str, shared: u32) -> Result<CUfunction> {
        dev.bind()?;
        let lock = || self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let known = lock()
            .iter()
            .find(|l| l.ordinal == dev.ordinal() && l.name == func)
            .map(|l| (l.f, l.shared));
        if let Some((f, allowed)) = known {
            if shared <= allowed.max(48 * 1024) {
                return Ok(f.0);
            }
        }
        let f = dev.function(self.source(), func)?;
        if shared > 48 * 1024 {
            dev.set_max_dynamic_shared(func, f, shared)?;
        }
        let mut loaded = lock();
        match loaded
            .iter_mut()
            .find(|l| l.ordinal == dev.ordinal() && l.name == func)
        {
            Some(l) => l.shared = l.shared.max(shared),
            None => loaded.push(Loaded {
                ordinal: dev.ordinal(),
                name: func.to_string(),
                f: Function(f),
                shared,
            }),
        }
        Ok(f)
    }

    /// Launches `func` of this module on `dev`.
    pub(crate) fn launch(
        &self,
        dev: &CudaDevice,
        func: &str,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        params: &mut [*mut c_void],
    ) -> Result<()> {
        let f = self.function(dev, func, 0)?;
        dev.launch(func, f, grid, block, 0, params)
    }

    /// As [`Module::launch`], as the programmatic dependent of the kernel
    /// launched before it ([`CudaDevice::launch_dependent`]).
    pub(crate) fn launch_dependent(
        &self,
        dev: &CudaDevice,
        func: &str,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        params: &mut [*mut c_void],
    ) -> Result<()> {
        let f = self.function(dev, func, 0)?;
        dev.launch_dependent(func, f, grid, block, params)
    }

    /// As [`Module::launch`], with `shared` bytes of dynamic shared memory.
    pub(crate) fn launch_shared(
        &self,
        dev: &CudaDevice,
        func: &str,
        (grid, block, shared): ((u32, u32, u32), (u32, u32, u32), u32),
        params: &mut [*mut c_void],
    ) -> Result<()> {
        let f = self.function(dev, func, shared)?;
        dev.launch(func, f, grid, block, shared, params)
    }

    /// As [`Module::launch_shared`], in clusters of `cluster` blocks along x.
    pub(crate) fn launch_cluster(
        &self,
        dev: &CudaDevice,
        func: &str,
        (grid, block, shared): ((u32, u32, u32), (u32, u32, u32), u32),
        cluster: u32,
        params: &mut [*mut c_void],
    ) -> Result<()> {
        let f = self.function(dev, func, shared)?;
        dev.launch_cluster(func, f, grid, block, shared, cluster, params)
    }

    /// Sets `func`'s preferred shared-memory carveout to the maximum.
    pub(crate) fn prefer_max_shared(&self, dev: &CudaDevice, func: &str) -> Result<()> {
        let f = self.function(dev, func, 0)?;
        dev.prefer_max_shared(func, f)
    }

    /// How many clusters of `cluster` blocks of `func` fit on the GPU at once.
    pub(crate) fn max_active_clusters(
        &self,
        dev: &CudaDevice,
        func: &str,
        (block, shared): ((u32, u32, u32), u32),
        cluster: u32,
    ) -> Result<u32> {
        let f = self.function(dev, func, shared)?;
        dev.max_active_clusters(func, f, block, shared, cluster)
    }
}

/// Every kernel module with every variant it instantiates (the CI compile
/// test builds each for sm_80 and sm_90a).
pub fn all_modules() -> Vec<KernelSource> {
    vec![
        copy::MODULE.source().clone(),
        elementwise::MODULE.source().clone(),
        norm::MODULE.source().clone(),
        rope::MODULE.source().clone(),
        softmax::MODULE.source().clone(),
        get_rows::MODULE.source().clone(),
        attention::MODULE.source().clone(),
        matmul::MODULE.source().clone(),
        matmul::QUANT_MODULE.source().clone(),
        crate::cuda::bench::MODULE.source().clone(),
    ]
    .into_iter()
    .chain(matmul::f32::all_sources())
    .chain(matmul::mma::all_sources())
    .chain(matmul::mma::all_quant_sources())
    .chain(matmul::wgmma::all_sources())
    .collect()
}

/// A pointer to one kernel argument, as `cuLaunchKernel` takes them.
pub(crate) fn arg<T>(x: &T) -> *mut c_void {
    x as *const T as *mut c_void
}

/// The dtype code kernels use (`DT_F32`, `DT_F16`, `DT_BF16` in common.cuh).
pub(crate) fn dtype_code(op: &'static str, d: DType) -> Result<i32> {
    match d {
        DType::F32 => Ok(0),
        DType::F16 => Ok(1),
        DType::BF16 => Ok(2),
        _ => Err(Error::UnsupportedDType {
            op,
            dtype: d,
            msg: "CUDA element kernels take f32, f16 or bf16".into(),
        }),
    }
}

pub(crate) const MAX_DIMS: usize = 6;

/// Elements a thread takes per step in the row-at-a-time kernels
/// (`ROW_UNROLL` of copy.cu's `convert_rows` and elementwise.cu's
/// `swiglu_rows`): their grids are sized by it.
pub(crate) const ROW_UNROLL: usize = 4;

/// A strided view as kernels take it (`struct Strided` in common.cuh).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Strided {
    shape: [i64; MAX_DIMS],
    strides: [i64; MAX_DIMS],
    offset: i64,
    rank: i32,
    dtype: i32,
}

const _: () = assert!(std::mem::size_of::<Strided>() == 112);

impl Strided {
    pub(crate) fn of(op: &'static str, t: &Tensor) -> Result<Strided> {
        Strided::with(op, t.shape(), t.strides(), t.layout().offset(), t.dtype())
    }

    pub(crate) fn with(
        op: &'static str,
        shape: &[usize],
        strides: &[usize],
        offset: usize,
        dtype: DType,
    ) -> Result<Strided> {
        if shape.len() > MAX_DIMS {
            crate::bail!(
                op,
                "CUDA kernels take views of rank <= {MAX_DIMS}, got {shape:?}"
            );
        }
        let mut s = Strided {
            shape: [1; MAX_DIMS],
            strides: [0; MAX_DIMS],
            offset: offset as i64,
            rank: shape.len() as i32,
            dtype: dtype_code(op, dtype)?,
        };
        for (i, (&d, &st)) in shape.iter().zip(strides).enumerate() {
            s.shape[i] = d as i64;
            s.strides[i] = st as i64;
        }
        Ok(s)
    }
}

/// The device a tensor lives on and its storage's base address.
pub(crate) fn dev_ptr(op: &'static str, t: &Tensor) -> Result<(CudaDevice, u64)> {
    let s = t.cuda_storage(op)?;
    Ok((s.device().clone(), s.ptr()))
}

/// The base address of a tensor on `dev`.
pub(crate) fn ptr_on(op: &'static str, dev: &CudaDevice, t: &Tensor) -> Result<u64> {
    let s = t.cuda_storage(op)?;
    if s.device() != dev {
        return Err(Error::Device {
            op,
            msg: format!(
                "operand on cuda:{}, output on cuda:{}",
                s.device().ordinal(),
                dev.ordinal()
            ),
        });
    }
    Ok(s.ptr())
}

/// Blocks of `threads` for a grid-stride loop over `n` items.
pub(crate) fn grid_for(n: usize, threads: u32) -> (u32, u32, u32) {
    let blocks = n.div_ceil(threads as usize).clamp(1, 1 << 20);
    (blocks as u32, 1, 1)
}
