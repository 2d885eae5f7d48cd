//! Device memory behind CUDA tensors. Views share one `CudaStorage` (as CPU
//! views share one `CpuStorage`); kernels address it by base pointer plus the
//! view's element offset and strides.

use std::sync::Arc;

use cudarc::driver::{result as drv, sys};

use super::context::{drv_err, CudaDevice};
use super::memory::DeviceBuffer;
use crate::error::Result;

pub struct CudaStorage {
    buf: DeviceBuffer,
    device: CudaDevice,
}

impl std::fmt::Debug for CudaStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaStorage({:?} on {:?})", self.buf, self.device)
    }
}

impl CudaStorage {
    /// `bytes` of undefined contents.
    pub fn uninit(device: &CudaDevice, bytes: usize) -> Result<Arc<CudaStorage>> {
        Ok(Arc::new(CudaStorage {
            buf: device.alloc(bytes)?,
            device: device.clone(),
        }))
    }

    /// `bytes` zero bytes.
    pub fn zeros(device: &CudaDevice, bytes: usize) -> Result<Arc<CudaStorage>> {
        let s = CudaStorage::uninit(device, bytes)?;
        if bytes > 0 {
            // SAFETY: our buffer of at least `bytes`, our stream.
            unsafe { drv::memset_d8_async(s.ptr(), 0, bytes, device.stream()) }
                .map_err(drv_err("zeros", "cuMemsetD8Async"))?;
        }
        Ok(s)
    }

    /// A copy of host bytes.
    pub fn from_host(device: &CudaDevice, bytes: &[u8]) -> Result<Arc<CudaStorage>> {
        let s = CudaStorage::uninit(device, bytes.len())?;
        if !bytes.is_empty() {
            // SAFETY: the buffer holds `bytes.len()`; for pageable host memory
            // the call returns once the source has been staged, so `bytes` may
            // go away afterwards.
            unsafe { drv::memcpy_htod_async(s.ptr(), bytes, device.stream()) }
                .map_err(drv_err("to_device", "cuMemcpyHtoDAsync"))?;
        }
        Ok(s)
    }

    /// Every byte, copied to the host after the queued ops finish.
    pub fn to_host(&self) -> Result<Vec<u8>> {
        self.to_host_range(0, self.len())
    }

    /// `len` bytes from `offset`, copied to the host after the queued ops
    /// finish.
    pub fn to_host_range(&self, offset: usize, len: usize) -> Result<Vec<u8>> {
        let mut out = vec![0u8; len];
        self.read_into(offset, &mut out)?;
        Ok(out)
    }

    /// `out.len()` bytes from `offset` into `out`, after the queued ops
    /// finish.
    pub fn read_into(&self, offset: usize, out: &mut [u8]) -> Result<()> {
        let len = out.len();
        assert!(
            offset.checked_add(len).is_some_and(|end| end <= self.len()),
            "read {offset}+{len} outside {} bytes (views are checked when made)",
            self.len()
        );
        self.device.bind()?;
        if !out.is_empty() {
            // SAFETY: the range lies inside the buffer and `out` holds `len`
            // bytes; the stream is synchronised before `out` is read.
            unsafe {
                drv::memcpy_dtoh_async(out, self.ptr() + offset as u64, self.device.stream())
            }
            .map_err(drv_err("to_host", "cuMemcpyDtoHAsync"))?;
        }
        self.device.synchronize()
    }

    /// A device-side copy of `len` bytes from `offset`.
    pub fn copy_range(&self, offset: usize, len: usize) -> Result<Arc<CudaStorage>> {
        let s = CudaStorage::uninit(&self.device, len)?;
        if len > 0 {
            // SAFETY: both ranges lie inside their buffers (callers check).
            unsafe {
                drv::memcpy_dtod_async(
                    s.ptr(),
                    self.ptr() + offset as u64,
                    len,
                    self.device.stream(),
                )
            }
            .map_err(drv_err("copy", "cuMemcpyDtoDAsync"))?;
        }
        Ok(s)
    }

    pub fn ptr(&self) -> sys::CUdeviceptr {
        self.buf.ptr()
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn device(&self) -> &CudaDevice {
        &self.device
    }
}
