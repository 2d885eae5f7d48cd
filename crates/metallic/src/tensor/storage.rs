//! Host memory behind CPU tensors: owned, 64-byte aligned buffers that ops may
//! write, and read-only windows into a memory-mapped file (GGUF weights).

use std::any::Any;
use std::ops::Range;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::error::{Error, Result};

/// One cache line; owned buffers are vectors of these so every buffer starts
/// 64-byte aligned (SIMD loads, and any GGUF block type, may rely on it).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

// SAFETY: `Line` is 64 plain bytes with alignment 64 and no padding.
unsafe impl bytemuck::Zeroable for Line {}
unsafe impl bytemuck::Pod for Line {}

/// Bytes of host memory: owned (writable) or a window of a mapped file.
pub struct HostBytes(Inner);

enum Inner {
    Owned {
        lines: Vec<Line>,
        len: usize,
    },
    Mapped {
        map: Arc<memmap2::Mmap>,
        range: Range<usize>,
    },
}

impl HostBytes {
    pub fn zeroed(len: usize) -> HostBytes {
        HostBytes(Inner::Owned {
            lines: vec![Line([0; 64]); len.div_ceil(64)],
            len,
        })
    }

    pub fn from_bytes(bytes: &[u8]) -> HostBytes {
        let mut b = HostBytes::zeroed(bytes.len());
        b.bytes_mut()
            .expect("fresh buffers are owned")
            .copy_from_slice(bytes);
        b
    }

    /// A read-only window of a mapped file; `None` when `range` is outside it.
    pub fn mapped(map: Arc<memmap2::Mmap>, range: Range<usize>) -> Option<HostBytes> {
        if range.start > range.end || range.end > map.len() {
            return None;
        }
        Some(HostBytes(Inner::Mapped { map, range }))
    }

    /// Gives a mapped window's pages back to the kernel (`MADV_DONTNEED`):
    /// the resident size drops, and a later read faults the bytes in again
    /// from the file. For windows whose bytes were copied elsewhere (the
    /// CPU's repacked weights). Owned buffers are left as they are.
    pub fn release_pages(&self) {
        #[cfg(unix)]
        if let Inner::Mapped { map, range } = &self.0 {
            // Whole pages inside the window only: its neighbours stay.
            let page = 4096;
            let start = range.start.next_multiple_of(page);
            let end = range.end / page * page;
            if end > start {
                // SAFETY: the map is read-only and file-backed, so the
                // pages come back with the file's bytes on the next read;
                // nothing holds a reference that could observe a change.
                let _ = unsafe {
                    map.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        start,
                        end - start,
                    )
                };
            }
        }
    }

    pub fn is_mapped(&self) -> bool {
        matches!(self.0, Inner::Mapped { .. })
    }

    pub fn bytes(&self) -> &[u8] {
        match &self.0 {
            Inner::Owned { lines, len } => &bytemuck::cast_slice::<Line, u8>(lines)[..*len],
            Inner::Mapped { map, range } => &map[range.clone()],
        }
    }

    /// Mutable bytes, or `None` for a read-only mapping.
    pub fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        match &mut self.0 {
            Inner::Owned { lines, len } => {
                Some(&mut bytemuck::cast_slice_mut::<Line, u8>(lines)[..*len])
            }
            Inner::Mapped { .. } => None,
        }
    }

    pub fn len(&self) -> usize {
        self.bytes().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Shared host storage. Views share one `CpuStorage`; ops lock it for the
/// duration of one kernel.
pub struct CpuStorage {
    data: RwLock<HostBytes>,
    /// A backend's derived copy of the bytes (the CPU matmul's repacked
    /// weights), dropped whenever the bytes are written.
    derived: Mutex<Option<Arc<dyn Any + Send + Sync>>>,
}

impl CpuStorage {
    pub fn new(bytes: HostBytes) -> Arc<CpuStorage> {
        Arc::new(CpuStorage {
            data: RwLock::new(bytes),
            derived: Mutex::new(None),
        })
    }

    /// The derived copy, if one of type `T` is attached.
    pub fn derived<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        let d = self.derived.lock().unwrap_or_else(|e| e.into_inner());
        d.clone().and_then(|a| a.downcast::<T>().ok())
    }

    /// Attaches a copy derived from the current bytes (replacing any
    /// other); the next `write` drops it.
    pub fn set_derived<T: Any + Send + Sync>(&self, v: Arc<T>) {
        *self.derived.lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
    }

    pub fn read(&self) -> RwLockReadGuard<'_, HostBytes> {
        // A poisoned lock means a kernel panicked mid-write: the data is still
        // memory-safe to read, and the panic has already been reported.
        self.data.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn write(&self, op: &'static str) -> Result<RwLockWriteGuard<'_, HostBytes>> {
        let guard = self.data.write().unwrap_or_else(|e| e.into_inner());
        if guard.is_mapped() {
            return Err(Error::ReadOnly { op });
        }
        // Whatever was derived from the old bytes no longer holds.
        self.derived
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        Ok(guard)
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Typed views of raw bytes. Panics only on misalignment, which our own
/// allocations and GGUF's alignment rule exclude; callers check `bytemuck`
/// alignment for mapped data at load time.
pub fn cast<T: bytemuck::Pod>(bytes: &[u8]) -> &[T] {
    bytemuck::cast_slice(bytes)
}

pub fn cast_mut<T: bytemuck::Pod>(bytes: &mut [u8]) -> &mut [T] {
    bytemuck::cast_slice_mut(bytes)
}
