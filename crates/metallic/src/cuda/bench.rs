//! What kernel benchmarks need from the device beyond the ops: event timing
//! on the device's stream, a kernel that holds the stream while the host
//! queues timed calls, a raw device-to-device copy (the bandwidth ceiling),
//! and cuBLAS called directly (the baseline, without our wrapper's f32
//! scratch and epilogue pass). Used by examples/gemm_bench.rs.

use std::ffi::c_void;

use cudarc::cublas::sys as cublas;
use cudarc::driver::{result as drv, sys};

use super::context::{drv_err, CudaDevice};
use super::ops::{arg, Module};
use super::KernelSource;
use crate::error::{Error, Result};
use crate::tensor::DType;

/// A pair of CUDA events on the device's stream around some queued work.
pub struct EventPair {
    start: sys::CUevent,
    end: sys::CUevent,
}

impl EventPair {
    pub fn new(dev: &CudaDevice) -> Result<EventPair> {
        dev.bind()?;
        let ev = || {
            drv::event::create(sys::CUevent_flags::CU_EVENT_DEFAULT)
                .map_err(drv_err("bench", "cuEventCreate"))
        };
        Ok(EventPair {
            start: ev()?,
            end: ev()?,
        })
    }

    pub fn record_start(&self, dev: &CudaDevice) -> Result<()> {
        // SAFETY: a live event and our live stream.
        unsafe { drv::event::record(self.start, dev.stream()) }
            .map_err(drv_err("bench", "cuEventRecord"))
    }

    pub fn record_end(&self, dev: &CudaDevice) -> Result<()> {
        // SAFETY: a live event and our live stream.
        unsafe { drv::event::record(self.end, dev.stream()) }
            .map_err(drv_err("bench", "cuEventRecord"))
    }

    /// Milliseconds between the two events (after both completed: call
    /// `dev.synchronize()` first).
    pub fn elapsed_ms(&self) -> Result<f32> {
        // SAFETY: both events were created by `event::create` and recorded
        // on one stream.
        unsafe { drv::event::elapsed(self.start, self.end) }
            .map_err(drv_err("bench", "cuEventElapsedTime"))
    }
}

impl Drop for EventPair {
    fn drop(&mut self) {
        // SAFETY: events we created, destroyed once.
        unsafe {
            let _ = drv::event::destroy(self.start);
            let _ = drv::event::destroy(self.end);
        }
    }
}

pub(crate) static MODULE: Module =
    Module::new(|| KernelSource::new("bench", &[], include_str!("kernels/bench.cu")));

/// Queues a kernel that keeps the device's stream busy for `us`
/// microseconds: work queued behind it while it runs then starts without
/// waiting on the host.
pub fn hold(dev: &CudaDevice, us: f64) -> Result<()> {
    let ns = (us * 1e3) as u64;
    MODULE.launch(dev, "bench_hold", (1, 1, 1), (1, 1, 1), &mut [arg(&ns)])
}

/// A device buffer that, read whole, evicts what L2 held before, and a
/// kernel whose code does the same for the SMs' instruction caches.
pub struct L2Flush {
    buf: std::sync::Arc<super::CudaStorage>,
    sink: std::sync::Arc<super::CudaStorage>,
}

impl L2Flush {
    /// A buffer of `bytes` (a few times the L2's size), zeroed.
    pub fn new(dev: &CudaDevice, bytes: usize) -> Result<L2Flush> {
        Ok(L2Flush {
            buf: super::CudaStorage::zeros(dev, bytes / 16 * 16)?,
            sink: super::CudaStorage::zeros(dev, 4)?,
        })
    }

    /// Queues a read of the whole buffer, then a kernel whose code fills
    /// every SM's instruction caches.
    pub fn run(&self, dev: &CudaDevice) -> Result<()> {
        let (p, sink) = (self.buf.ptr(), self.sink.ptr());
        let n = (self.buf.len() / 16) as u64;
        let key = 1u32;
        let sms = dev.multiprocessors() as u32;
        MODULE.launch(
            dev,
            "bench_flush",
            (4 * sms, 1, 1),
            (512, 1, 1),
            &mut [arg(&p), arg(&n), arg(&key), arg(&sink)],
        )?;
        // Four warps a block, four blocks an SM: each of an SM's four
        // schedulers (with its own first-level instruction cache) runs it.
        MODULE.launch(
            dev,
            "bench_flush_code",
            (4 * sms, 1, 1),
            (128, 1, 1),
            &mut [arg(&key), arg(&sink)],
        )
    }
}

/// Queues a copy of `bytes` from `src` to `dst` (device addresses).
pub fn copy_d2d(dev: &CudaDevice, dst: u64, src: u64, bytes: usize) -> Result<()> {
    dev.bind()?;
    // SAFETY: the caller passes live device buffers of at least `bytes`.
    unsafe { drv::memcpy_dtod_async(dst, src, bytes, dev.stream()) }
        .map_err(drv_err("bench", "cuMemcpyDtoDAsync"))
}

/// `y = x W^T` through cuBLAS (`cublasGemmEx`, f32 compute, no TF32): `x`
/// `[m, k]`, `w` `[n, k]` and `y` `[m, n]`, all row-major `dtype` (f32, f16
/// or bf16) at device addresses. Row-major `y` is column-major `y^T = W x^T`:
/// W's rows read as columns, transposed.
pub fn cublas_xwt(
    dev: &CudaDevice,
    xwy: (u64, u64, u64),
    mnk: (usize, usize, usize),
    dtype: DType,
) -> Result<()> {
    cublas_xwt_batched(dev, xwy, mnk, 1, dtype)
}

/// [`cublas_xwt`] over `batch` products whose matrices lie back to back
/// (`cublasGemmStridedBatchedEx`; a batch of 1 calls `cublasGemmEx`).
pub fn cublas_xwt_batched(
    dev: &CudaDevice,
    (x, w, y): (u64, u64, u64),
    (m, n, k): (usize, usize, usize),
    batch: usize,
    dtype: DType,
) -> Result<()> {
    let ty = match dtype {
        DType::F32 => cublas::cudaDataType::CUDA_R_32F,
        DType::F16 => cublas::cudaDataType::CUDA_R_16F,
        DType::BF16 => cublas::cudaDataType::CUDA_R_16BF,
        _ => crate::bail!("bench", "cublas_xwt takes f32, f16 or bf16, got {dtype}"),
    };
    let (one, zero) = (1.0f32, 0.0f32);
    let dim = |v: usize| i32::try_from(v).map_err(|_| Error::op("bench", format!("{v} > i32")));
    let (mi, ni, ki, bi) = (dim(m)?, dim(n)?, dim(k)?, dim(batch)?);
    let (op_t, op_n) = (
        cublas::cublasOperation_t::CUBLAS_OP_T,
        cublas::cublasOperation_t::CUBLAS_OP_N,
    );
    let (alpha, beta) = (
        &one as *const f32 as *const c_void,
        &zero as *const f32 as *const c_void,
    );
    let compute = cublas::cublasComputeType_t::CUBLAS_COMPUTE_32F;
    let algo = cublas::cublasGemmAlgo_t::CUBLAS_GEMM_DFALT;
    dev.with_blas(|h| {
        // SAFETY: the caller's buffers hold the matrices described; alpha
        // and beta are host f32 (default pointer mode); the handle is bound
        // to our stream.
        unsafe {
            if batch == 1 {
                cublas::cublasGemmEx(
                    h,
                    op_t,
                    op_n,
                    ni,
                    mi,
                    ki,
                    alpha,
                    w as *const c_void,
                    ty,
                    ki,
                    x as *const c_void,
                    ty,
                    ki,
                    beta,
                    y as *mut c_void,
                    ty,
                    ni,
                    compute,
                    algo,
                )
            } else {
                cublas::cublasGemmStridedBatchedEx(
                    h,
                    op_t,
                    op_n,
                    ni,
                    mi,
                    ki,
                    alpha,
                    w as *const c_void,
                    ty,
                    ki,
                    (n * k) as i64,
                    x as *const c_void,
                    ty,
                    ki,
                    (m * k) as i64,
                    beta,
                    y as *mut c_void,
                    ty,
                    ni,
                    (m * n) as i64,
                    bi,
                    compute,
                    algo,
                )
            }
        }
        .result()
        .map_err(|e| Error::Cuda {
            op: "bench",
            call: "cublasGemm(StridedBatched)Ex",
            msg: format!("{m}x{n}x{k} batch {batch} {dtype}: {e:?}"),
        })
    })
}
