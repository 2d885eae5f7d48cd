//! Device memory: a caching pool in front of `cuMemAlloc`.
//!
//! A buffer that is dropped goes back to the pool, not to the driver, and the
//! next request of (about) its size reuses it. After the first step of a
//! decode loop every buffer it needs (step scratch, cuBLAS workspace, id
//! lists) comes from the pool, so the loop makes no driver allocation.
//! Reuse needs no synchronisation: every op of a device runs on its one
//! stream, so the stream orders a buffer's last reader before its next writer.
//!
//! Sizes are rounded up (powers of two below 1 MiB, multiples of 64 KiB
//! above) and a request takes the smallest cached buffer that is at least its
//! size and at most a quarter larger. When the driver is out of memory the
//! cache is emptied and the allocation retried once; if that fails too the
//! error carries the sizes involved.
//!
//! With caching off (`CudaConfig::cache_buffers`, `METALLIC_CUDA_POOL=off`)
//! every buffer is allocated at its exact size and freed when dropped, so
//! that compute-sanitizer's memcheck sees each tensor's real bounds.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use cudarc::driver::{result as drv, safe::CudaContext, sys};

use crate::error::{Error, Result};

const SMALL: usize = 1 << 20;
const LARGE_GRANULE: usize = 64 << 10;

fn round(bytes: usize) -> usize {
    let b = bytes.max(256);
    if b <= SMALL {
        b.next_power_of_two()
    } else {
        b.div_ceil(LARGE_GRANULE) * LARGE_GRANULE
    }
}

#[derive(Default)]
struct State {
    /// Cached (free) buffers by rounded size.
    free: BTreeMap<usize, Vec<sys::CUdeviceptr>>,
    cached_bytes: usize,
    live_bytes: usize,
    /// `cuMemAlloc` calls so far (a warm decode loop makes none).
    driver_allocs: usize,
    /// While a CUDA graph is captured: the buffers dropped meanwhile, kept
    /// for the graph (its replays use their addresses) instead of reused.
    held: Option<Vec<(sys::CUdeviceptr, usize)>>,
}

/// The pool of one device.
pub struct Pool {
    ctx: Arc<CudaContext>,
    device: String,
    caching: bool,
    state: Mutex<State>,
}

impl Pool {
    pub(crate) fn new(ctx: Arc<CudaContext>, device: String, caching: bool) -> Arc<Pool> {
        Arc::new(Pool {
            ctx,
            device,
            caching,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A buffer of at least `bytes` (contents undefined). The caller has
    /// bound the context.
    pub(crate) fn alloc(self: &Arc<Pool>, bytes: usize) -> Result<DeviceBuffer> {
        let size = if self.caching {
            round(bytes)
        } else {
            bytes.max(1)
        };
        let mut st = self.lock();
        let hit = st
            .free
            .range(size..=size + size / 4)
            .next()
            .map(|(&s, _)| s);
        if let Some(s) = hit {
            let list = st.free.get_mut(&s).expect("key just found");
            let ptr = list.pop().expect("free lists are never left empty");
            if list.is_empty() {
                st.free.remove(&s);
            }
            st.cached_bytes -= s;
            st.live_bytes += s;
            return Ok(DeviceBuffer {
                ptr,
                size: s,
                len: bytes,
                pool: self.clone(),
            });
        }
        let oom = |st: &State| {
            let (free, total) = drv::mem_get_info().unwrap_or((0, 0));
            Error::OutOfMemory {
                device: self.device.clone(),
                requested: bytes,
                context: format!(
                    "{free} bytes free of {total}; {} bytes held by live tensors",
                    st.live_bytes
                ),
            }
        };
        // SAFETY: a plain allocation; the context is current (callers bind).
        let ptr = match unsafe { drv::malloc_sync(size) } {
            Ok(p) => p,
            Err(e) if e.0 == sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY => {
                Self::release_cached(&mut st);
                // SAFETY: as above.
                match unsafe { drv::malloc_sync(size) } {
                    Ok(p) => p,
                    Err(_) => return Err(oom(&st)),
                }
            }
            Err(e) => {
                // Some drivers refuse absurd sizes as invalid values: still
                // an out-of-memory condition for the caller.
                if drv::mem_get_info().is_ok_and(|(_, total)| size > total) {
                    return Err(oom(&st));
                }
                return Err(Error::Cuda {
                    op: "alloc",
                    call: "cuMemAlloc",
                    msg: format!("{size} bytes: {e:?}"),
                });
            }
        };
        st.live_bytes += size;
        st.driver_allocs += 1;
        Ok(DeviceBuffer {
            ptr,
            size,
            len: bytes,
            pool: self.clone(),
        })
    }

    /// Frees every cached buffer back to the driver.
    fn release_cached(st: &mut State) {
        for (_, list) in std::mem::take(&mut st.free) {
            for p in list {
                // SAFETY: cached buffers are ours and no longer referenced.
                let _ = unsafe { drv::free_sync(p) };
            }
        }
        st.cached_bytes = 0;
    }

    /// Returns every cached buffer to the driver (live ones stay).
    pub fn empty_cache(&self) {
        if self.ctx.bind_to_thread().is_ok() {
            Self::release_cached(&mut self.lock());
        }
    }

    /// `(live, cached)` bytes.
    pub fn usage(&self) -> (usize, usize) {
        let st = self.lock();
        (st.live_bytes, st.cached_bytes)
    }

    /// How many buffers were taken from the driver so far.
    pub fn driver_allocs(&self) -> usize {
        self.lock().driver_allocs
    }

    /// From now on, buffers dropped are held (see [`Pool::take_held`]), not
    /// reused or freed: a CUDA graph being captured keeps their addresses.
    pub(crate) fn hold_returns(&self) {
        self.lock().held = Some(Vec::new());
    }

    /// Ends [`Pool::hold_returns`]: the buffers dropped since, owned again
    /// (for the graph that uses them; they return to the pool when dropped).
    pub(crate) fn take_held(self: &Arc<Pool>) -> Vec<DeviceBuffer> {
        let held = self.lock().held.take().unwrap_or_default();
        held.into_iter()
            .map(|(ptr, size)| DeviceBuffer {
                ptr,
                size,
                len: size,
                pool: self.clone(),
            })
            .collect()
    }

    fn give_back(&self, ptr: sys::CUdeviceptr, size: usize) {
        let mut st = self.lock();
        if let Some(held) = st.held.as_mut() {
            held.push((ptr, size));
            return;
        }
        st.live_bytes -= size;
        if !self.caching {
            if self.ctx.bind_to_thread().is_ok() {
                // SAFETY: the buffer's last owner is gone; cuMemFree waits for
                // the work that still uses it.
                let _ = unsafe { drv::free_sync(ptr) };
            }
            return;
        }
        st.cached_bytes += size;
        st.free.entry(size).or_default().push(ptr);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.empty_cache();
    }
}

/// Device memory owned by a tensor (or a scratch buffer of an op); returns to
/// the pool when dropped.
pub struct DeviceBuffer {
    ptr: sys::CUdeviceptr,
    size: usize,
    len: usize,
    pool: Arc<Pool>,
}

impl DeviceBuffer {
    /// The device address of the first byte.
    pub fn ptr(&self) -> sys::CUdeviceptr {
        self.ptr
    }

    /// Bytes requested (the usable length).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        self.pool.give_back(self.ptr, self.size);
    }
}

impl std::fmt::Debug for DeviceBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceBuffer({:#x}, {} bytes)", self.ptr, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::round;

    #[test]
    fn sizes_round_to_classes() {
        assert_eq!(round(0), 256);
        assert_eq!(round(257), 512);
        assert_eq!(round(1 << 20), 1 << 20);
        assert_eq!(round((1 << 20) + 1), (1 << 20) + (64 << 10));
    }
}
