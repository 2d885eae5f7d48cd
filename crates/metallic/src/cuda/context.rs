//! One CUDA device: its context, the one stream every op is queued on, the
//! buffer pool, the loaded kernel modules and the cuBLAS handle.
//!
//! A process holds one `CudaDevice` per ordinal (`CudaDevice::new` hands out
//! clones), so every tensor on `cuda:0` shares one stream: ops are ordered by
//! the stream, and a buffer returned to the pool can be reused by the next op
//! without a synchronisation. We drive the stream through cudarc's raw
//! `result`/`sys` layers; its safe `CudaSlice` layer would record an event
//! per launch once a second stream exists, which we never need.

use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use cudarc::cublas::sys as cublas_sys;
use cudarc::driver::{result as drv, safe::CudaContext, sys};

use super::compile::{KernelCache, KernelSource};
use super::memory::{DeviceBuffer, Pool};
use crate::error::{Error, Result};

/// Settings of the CUDA backend, filled at the edge (CLI, tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CudaConfig {
    pub kernel_cache: KernelCache,
    /// Keep dropped buffers for reuse (the default). Off: exact-size
    /// allocations freed on drop, for compute-sanitizer runs.
    pub cache_buffers: bool,
}

impl CudaConfig {
    /// Reads `METALLIC_KERNEL_CACHE` (see [`KernelCache::from_env`]) and
    /// `METALLIC_CUDA_POOL` (`off` turns buffer caching off).
    pub fn from_env() -> CudaConfig {
        CudaConfig {
            kernel_cache: KernelCache::from_env(),
            cache_buffers: std::env::var("METALLIC_CUDA_POOL").map_or(true, |v| v != "off"),
        }
    }
}

/// A handle the driver or cuBLAS gave us; used from any thread once the
/// context is bound, and (for cuBLAS) behind a mutex.
#[derive(Clone, Copy)]
struct Handle<T>(T);
// SAFETY: CUDA driver objects (streams, modules, functions) may be used from
// any thread whose current context is theirs; every entry point binds it.
// The cuBLAS handle is only used under `Inner::blas`'s mutex.
unsafe impl<T> Send for Handle<T> {}
unsafe impl<T> Sync for Handle<T> {}

/// A loaded module and the functions fetched from it.
struct Module {
    module: Handle<sys::CUmodule>,
    functions: Mutex<HashMap<String, Handle<sys::CUfunction>>>,
}

struct Blas {
    handle: Handle<cublas_sys::cublasHandle_t>,
    /// cuBLAS's workspace, owned by us so that a GEMM never allocates.
    _workspace: DeviceBuffer,
}

struct Inner {
    ordinal: usize,
    name: String,
    cc: (i32, i32),
    arch: String,
    multiprocessors: usize,
    ctx: Arc<CudaContext>,
    stream: Handle<sys::CUstream>,
    pool: Arc<Pool>,
    config: CudaConfig,
    modules: Mutex<HashMap<String, Arc<Module>>>,
    blas: OnceLock<std::result::Result<Mutex<Blas>, String>>,
    /// Split-K tickets (see [`CudaDevice::tickets`]): the last is current;
    /// the smaller ones before it are kept, not freed, when it grows.
    tickets: Mutex<Vec<DeviceBuffer>>,
    /// While profiling (`METALLIC_CUDA_PROFILE=1` at open, or
    /// [`CudaDevice::set_profiling`]): an event pair around every kernel
    /// launched since the last [`CudaDevice::kernel_profile`].
    profile: Mutex<Option<Vec<Span>>>,
    /// Kernel launches so far, and the host's time inside the driver's
    /// launch calls (nanoseconds): [`CudaDevice::launch_stats`].
    launches: AtomicU64,
    launch_ns: AtomicU64,
    /// A graph capture is under way on the stream ([`CudaDevice::capture`]):
    /// the debug builds' wait after each launch would break it.
    capturing: AtomicBool,
}

/// One profiled launch: the kernel's name and the events before and after it.
struct Span {
    name: String,
    start: Event,
    end: Event,
}

/// An event of ours, destroyed when dropped.
struct Event(Handle<sys::CUevent>);

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: an event we created, destroyed once.
        unsafe {
            let _ = drv::event::destroy(self.0 .0);
        }
    }
}

/// A kernel's share of the profiled time ([`CudaDevice::kernel_profile`]).
#[derive(Debug, Clone, PartialEq)]
pub struct KernelTime {
    pub name: String,
    pub launches: usize,
    /// Summed over its launches (events on the stream around each).
    pub ms: f64,
}

/// A CUDA GPU. Cheap to clone; equal when the ordinal is.
#[derive(Clone)]
pub struct CudaDevice(Arc<Inner>);

impl std::fmt::Debug for CudaDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CudaDevice({}: {}, {})",
            self.0.ordinal, self.0.name, self.0.arch
        )
    }
}

impl PartialEq for CudaDevice {
    fn eq(&self, other: &Self) -> bool {
        self.0.ordinal == other.0.ordinal
    }
}
impl Eq for CudaDevice {}

/// A driver error as ours, naming the op and the call.
pub(crate) fn drv_err(op: &'static str, call: &'static str) -> impl Fn(drv::DriverError) -> Error {
    move |e| Error::Cuda {
        op,
        call,
        msg: format!("{e:?}"),
    }
}

/// The NVRTC target for compute capability `cc`: the arch-specific `sm_90a`
/// on Hopper (wgmma, setmaxnreg), plain `sm_XY` elsewhere.
pub fn arch_for(cc: (i32, i32)) -> String {
    match cc {
        (9, 0) => "sm_90a".to_string(),
        (major, minor) => format!("sm_{major}{minor}"),
    }
}

fn devices() -> &'static Mutex<HashMap<usize, CudaDevice>> {
    static DEVICES: OnceLock<Mutex<HashMap<usize, CudaDevice>>> = OnceLock::new();
    DEVICES.get_or_init(Default::default)
}

impl CudaDevice {
    /// The GPU at `ordinal`, with the configuration from the environment. A
    /// machine without a driver or GPU gets `Error::CudaUnavailable`.
    pub fn new(ordinal: usize) -> Result<CudaDevice> {
        CudaDevice::with_config(ordinal, CudaConfig::from_env())
    }

    /// As [`CudaDevice::new`]; `config` applies when this process opens the
    /// device first (later calls share that device).
    pub fn with_config(ordinal: usize, config: CudaConfig) -> Result<CudaDevice> {
        let mut map = devices().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = map.get(&ordinal) {
            return Ok(d.clone());
        }
        let d = CudaDevice::open(ordinal, config)?;
        map.insert(ordinal, d.clone());
        Ok(d)
    }

    /// Number of CUDA GPUs, or why there are none usable.
    pub fn count() -> Result<usize> {
        driver_available()?;
        drv::init().map_err(|e| Error::CudaUnavailable(format!("cuInit failed: {e:?}")))?;
        let n = drv::device::get_count()
            .map_err(|e| Error::CudaUnavailable(format!("cuDeviceGetCount failed: {e:?}")))?;
        Ok(n.max(0) as usize)
    }

    fn open(ordinal: usize, config: CudaConfig) -> Result<CudaDevice> {
        let count = CudaDevice::count()?;
        if ordinal >= count {
            return Err(Error::CudaUnavailable(format!(
                "no CUDA device {ordinal} ({count} device(s) found)"
            )));
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| {
            Error::CudaUnavailable(format!(
                "cannot create a context on device {ordinal}: {e:?}"
            ))
        })?;
        let name = ctx.name().map_err(drv_err("device", "cuDeviceGetName"))?;
        let cc = ctx
            .compute_capability()
            .map_err(drv_err("device", "cuDeviceGetAttribute"))?;
        let multiprocessors = ctx
            .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_err(drv_err("device", "cuDeviceGetAttribute"))?
            .max(1) as usize;
        if cc.0 < 8 {
            return Err(Error::CudaUnavailable(format!(
                "{name} has compute capability {}.{}; metallic needs 8.0 (Ampere) or newer",
                cc.0, cc.1
            )));
        }
        // We never use cudarc's CudaSlice; make sure it records no events.
        // SAFETY: no CudaSlice of this context exists.
        unsafe { ctx.disable_event_tracking() };
        let stream = drv::stream::create(drv::stream::StreamKind::NonBlocking)
            .map_err(drv_err("device", "cuStreamCreate"))?;
        let device_name = format!("cuda:{ordinal} ({name})");
        let pool = Pool::new(ctx.clone(), device_name, config.cache_buffers);
        log::info!(
            "[cuda] device {ordinal}: {name}, compute capability {}.{}",
            cc.0,
            cc.1
        );
        Ok(CudaDevice(Arc::new(Inner {
            ordinal,
            name,
            cc,
            arch: arch_for(cc),
            multiprocessors,
            ctx,
            stream: Handle(stream),
            pool,
            config,
            modules: Mutex::new(HashMap::new()),
            blas: OnceLock::new(),
            tickets: Mutex::new(Vec::new()),
            profile: Mutex::new(
                std::env::var("METALLIC_CUDA_PROFILE")
                    .is_ok_and(|v| v == "1" || v == "grid")
                    .then(Vec::new),
            ),
            launches: AtomicU64::new(0),
            launch_ns: AtomicU64::new(0),
            capturing: AtomicBool::new(false),
        })))
    }

    fn spans(&self) -> std::sync::MutexGuard<'_, Option<Vec<Span>>> {
        self.0.profile.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether launches are being timed.
    pub fn profiling(&self) -> bool {
        self.spans().is_some()
    }

    /// Starts timing every kernel launch (an event pair around each), or
    /// stops and drops what was recorded. The events sit between kernels
    /// on the stream, so a programmatic dependent launch no longer overlaps
    /// the kernel before it while this is on.
    pub fn set_profiling(&self, on: bool) -> Result<()> {
        if !on {
            self.kernel_profile()?;
        }
        let mut spans = self.spans();
        if on != spans.is_some() {
            *spans = on.then(Vec::new);
        }
        Ok(())
    }

    /// Records an event on the stream where profiling is on.
    fn profile_event(&self) -> Result<Option<Event>> {
        if !self.profiling() {
            return Ok(None);
        }
        let ev = Event(Handle(
            drv::event::create(sys::CUevent_flags::CU_EVENT_DEFAULT)
                .map_err(drv_err("profile", "cuEventCreate"))?,
        ));
        // SAFETY: a live event and our live stream.
        unsafe { drv::event::record(ev.0 .0, self.stream()) }
            .map_err(drv_err("profile", "cuEventRecord"))?;
        Ok(Some(ev))
    }

    /// Closes a profiled launch of `name` on a `grid`; with
    /// `METALLIC_CUDA_PROFILE=grid` the grid joins the name, so that one
    /// kernel's launches on different shapes are timed apart.
    fn profile_span(&self, name: &str, grid: (u32, u32, u32), start: Option<Event>) -> Result<()> {
        static BY_GRID: OnceLock<bool> = OnceLock::new();
        let Some(start) = start else {
            return Ok(());
        };
        let end = self.profile_event()?;
        let by_grid = *BY_GRID
            .get_or_init(|| std::env::var("METALLIC_CUDA_PROFILE").is_ok_and(|v| v == "grid"));
        let name = if by_grid {
            format!("{name} grid {}x{}x{}", grid.0, grid.1, grid.2)
        } else {
            name.to_string()
        };
        if let (Some(spans), Some(end)) = (self.spans().as_mut(), end) {
            spans.push(Span { name, start, end });
        }
        Ok(())
    }

    /// Time per kernel name over the launches since the last call, most
    /// first (waits for the stream); empty while not profiling.
    /// Each launch is timed by events queued just before and after it, so
    /// the gaps between kernels are not counted; cuBLAS's own kernels (the
    /// vendor path) are not ours to time and are left out.
    pub fn kernel_profile(&self) -> Result<Vec<KernelTime>> {
        if !self.profiling() {
            return Ok(Vec::new());
        }
        self.synchronize()?;
        let spans = self
            .spans()
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        let mut by_name: HashMap<String, KernelTime> = HashMap::new();
        for sp in spans {
            // SAFETY: both events were created and recorded on our stream,
            // which has completed.
            let ms = unsafe { drv::event::elapsed(sp.start.0 .0, sp.end.0 .0) }
                .map_err(drv_err("profile", "cuEventElapsedTime"))? as f64;
            let t = by_name.entry(sp.name.clone()).or_insert(KernelTime {
                name: sp.name.clone(),
                launches: 0,
                ms: 0.0,
            });
            t.launches += 1;
            t.ms += ms;
        }
        let mut out: Vec<KernelTime> = by_name.into_values().collect();
        out.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        Ok(out)
    }

    pub fn ordinal(&self) -> usize {
        self.0.ordinal
    }

    /// The card's name, as `nvidia-smi` prints it.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    pub fn compute_capability(&self) -> (i32, i32) {
        self.0.cc
    }

    /// The NVRTC target kernels are compiled for (`sm_90a` on Hopper).
    pub fn arch(&self) -> &str {
        &self.0.arch
    }

    /// Streaming multiprocessors (132 on an H100 / H200 SXM): the grid of
    /// persistent kernels.
    pub fn multiprocessors(&self) -> usize {
        self.0.multiprocessors
    }

    pub(crate) fn stream(&self) -> sys::CUstream {
        self.0.stream.0
    }

    /// The device's buffer pool (usage figures, emptying the cache).
    pub fn pool(&self) -> &Arc<Pool> {
        &self.0.pool
    }

    /// Makes this device's context current on the calling thread; every
    /// entry point calls it first (ops may run on any thread).
    pub(crate) fn bind(&self) -> Result<()> {
        self.0
            .ctx
            .bind_to_thread()
            .map_err(drv_err("device", "cuCtxSetCurrent"))
    }

    /// Waits for every queued op.
    pub fn synchronize(&self) -> Result<()> {
        self.bind()?;
        // SAFETY: our live stream.
        unsafe { drv::stream::synchronize(self.stream()) }
            .map_err(drv_err("device", "cuStreamSynchronize"))
    }

    /// `(free, total)` device memory in bytes.
    pub fn mem_info(&self) -> Result<(usize, usize)> {
        self.bind()?;
        drv::mem_get_info().map_err(drv_err("device", "cuMemGetInfo"))
    }

    /// A buffer of `bytes` from the pool (contents undefined).
    pub(crate) fn alloc(&self, bytes: usize) -> Result<DeviceBuffer> {
        self.bind()?;
        self.0.pool.alloc(bytes)
    }

    /// The address of at least `n` u32 counters that are zero whenever no
    /// kernel runs: split-K GEMMs count the blocks done with an output tile
    /// there, and the last one (which sums the tile) puts its counter back
    /// to zero. The stream orders every user, so one set serves all.
    pub(crate) fn tickets(&self, n: usize) -> Result<sys::CUdeviceptr> {
        let mut t = self
            .0
            .tickets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if t.last().is_none_or(|b| b.len() < n * 4) {
            let bytes = (n * 4).next_power_of_two().max(4096);
            let buf = self.alloc(bytes)?;
            // SAFETY: the buffer holds `bytes`, allocated for this stream's
            // users; the memset is ordered before every later launch.
            unsafe { drv::memset_d8_async(buf.ptr(), 0, bytes, self.stream()) }
                .map_err(drv_err("matmul", "cuMemsetD8Async"))?;
            // The smaller set stays allocated: another thread may have taken
            // its address for a launch not yet queued, and the pool would
            // hand the memory to the next allocation.
            t.push(buf);
        }
        Ok(t.last().expect("just ensured").ptr())
    }

    /// A pool buffer holding a copy of `bytes`.
    pub(crate) fn upload(&self, bytes: &[u8]) -> Result<DeviceBuffer> {
        let buf = self.alloc(bytes.len())?;
        self.write(&buf, bytes)?;
        Ok(buf)
    }

    /// Queues a copy of `bytes` into the start of `buf` (at most its length).
    pub(crate) fn write(&self, buf: &DeviceBuffer, bytes: &[u8]) -> Result<()> {
        if bytes.len() > buf.len() {
            return Err(Error::op(
                "upload",
                format!("{} bytes into a buffer of {}", bytes.len(), buf.len()),
            ));
        }
        if !bytes.is_empty() {
            self.bind()?;
            // SAFETY: the buffer holds at least `bytes.len()`; from pageable
            // memory the call returns once the source is staged, so `bytes`
            // may go away.
            unsafe { drv::memcpy_htod_async(buf.ptr(), bytes, self.stream()) }
                .map_err(drv_err("upload", "cuMemcpyHtoDAsync"))?;
        }
        Ok(())
    }

    /// The function `func` of module `k`, compiling (or loading from the disk
    /// cache) and loading the module on first use.
    pub(crate) fn function(&self, k: &KernelSource, func: &str) -> Result<sys::CUfunction> {
        self.bind()?;
        let module = {
            let mut modules = self.0.modules.lock().unwrap_or_else(|e| e.into_inner());
            match modules.get(&k.key()) {
                Some(m) => m.clone(),
                None => {
                    let cubin = self
                        .0
                        .config
                        .kernel_cache
                        .load_or_compile(k, &self.0.arch)?;
                    // SAFETY: a CUBIN NVRTC produced for this device's arch.
                    let module = unsafe { drv::module::load_data(cubin.as_ptr() as *const c_void) }
                        .map_err(drv_err("kernel", "cuModuleLoadData"))?;
                    let m = Arc::new(Module {
                        module: Handle(module),
                        functions: Mutex::new(HashMap::new()),
                    });
                    modules.insert(k.key(), m.clone());
                    m
                }
            }
        };
        let mut fns = module.functions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = fns.get(func) {
            return Ok(f.0);
        }
        let cname = CString::new(func).expect("kernel function names have no NUL");
        // SAFETY: the module is loaded and never unloaded while the device lives.
        let f = unsafe { drv::module::get_function(module.module.0, cname) }.map_err(|e| {
            Error::Cuda {
                op: "kernel",
                call: "cuModuleGetFunction",
                msg: format!("{func} in {}: {e:?}", k.key()),
            }
        })?;
        fns.insert(func.to_string(), Handle(f));
        Ok(f)
    }

    /// Launches `f` on the device's stream. `params` point at each kernel
    /// argument (the driver copies them before returning). In debug builds
    /// the stream is synchronised after every launch so that a faulting
    /// kernel is reported at its own launch, with its name.
    pub(crate) fn launch(
        &self,
        name: &str,
        f: sys::CUfunction,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        shared_bytes: u32,
        params: &mut [*mut c_void],
    ) -> Result<()> {
        let start = self.profile_event()?;
        let t = Instant::now();
        // SAFETY: `f` is a live function; `params` match its signature (each
        // host wrapper passes the arguments its kernel declares, in order).
        let r = unsafe { drv::launch_kernel(f, grid, block, shared_bytes, self.stream(), params) };
        self.count_launch(t);
        r.map_err(|e| Error::Cuda {
            op: "kernel",
            call: "cuLaunchKernel",
            msg: format!("{name} grid {grid:?} block {block:?}: {e:?}"),
        })?;
        self.profile_span(name, grid, start)?;
        self.check_launch(name)
    }

    /// As [`CudaDevice::launch`], in thread-block clusters of `cluster`
    /// blocks along x (`cuLaunchKernelEx` with the cluster-dimension
    /// attribute; `grid.0` must be a multiple of `cluster`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn launch_cluster(
        &self,
        name: &str,
        f: sys::CUfunction,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        shared_bytes: u32,
        cluster: u32,
        params: &mut [*mut c_void],
    ) -> Result<()> {
        let attr = cluster_attribute(cluster);
        let what = format!("cluster {cluster}");
        self.launch_ex(name, f, (grid, block, shared_bytes), attr, &what, params)
    }

    /// As [`CudaDevice::launch`], as the programmatic dependent of the
    /// kernel launched before it on the stream (`cuLaunchKernelEx` with the
    /// programmatic-stream-serialization attribute, on sm_90 and newer; a
    /// plain launch below): `f` must wait for that kernel's results with
    /// `griddepcontrol.wait` (common.cuh `grid_dependency_wait`) before it
    /// reads them.
    pub(crate) fn launch_dependent(
        &self,
        name: &str,
        f: sys::CUfunction,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        params: &mut [*mut c_void],
    ) -> Result<()> {
        if self.compute_capability().0 < 9 || !dependent_launch_enabled() {
            return self.launch(name, f, grid, block, 0, params);
        }
        // SAFETY: an all-zero attribute value is a valid bit pattern (a
        // union of plain integers); then the one field is set.
        let mut value: sys::CUlaunchAttributeValue = unsafe { std::mem::zeroed() };
        value.programmaticStreamSerializationAllowed = 1;
        let attr = sys::CUlaunchAttribute {
            id: sys::CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION,
            pad: [0; 4],
            value,
        };
        self.launch_ex(name, f, (grid, block, 0), attr, "dependent launch", params)
    }

    /// `cuLaunchKernelEx` of `f` with one launch attribute; `what` names
    /// the attribute in the error.
    fn launch_ex(
        &self,
        name: &str,
        f: sys::CUfunction,
        (grid, block, shared_bytes): ((u32, u32, u32), (u32, u32, u32), u32),
        mut attr: sys::CUlaunchAttribute,
        what: &str,
        params: &mut [*mut c_void],
    ) -> Result<()> {
        let config = self.launch_config(grid, block, shared_bytes, &mut attr);
        let start = self.profile_event()?;
        let t = Instant::now();
        // SAFETY: `f` is a live function; `params` match its signature; the
        // config and its one attribute outlive the call.
        let r =
            unsafe { sys::cuLaunchKernelEx(&config, f, params.as_mut_ptr(), std::ptr::null_mut()) };
        self.count_launch(t);
        r.result().map_err(|e| Error::Cuda {
            op: "kernel",
            call: "cuLaunchKernelEx",
            msg: format!("{name} grid {grid:?} block {block:?} {what}: {e:?}"),
        })?;
        self.profile_span(name, grid, start)?;
        self.check_launch(name)
    }

    fn count_launch(&self, since: Instant) {
        let ns = since.elapsed().as_nanos() as u64;
        self.0.launches.fetch_add(1, Ordering::Relaxed);
        self.0.launch_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Kernel launches of ours since the device was opened, and the host's
    /// time spent inside the driver's launch calls for them (what a CUDA
    /// graph would save of the host's per-launch cost; the rest is ours).
    pub fn launch_stats(&self) -> (u64, Duration) {
        (
            self.0.launches.load(Ordering::Relaxed),
            Duration::from_nanos(self.0.launch_ns.load(Ordering::Relaxed)),
        )
    }

    /// In builds with debug assertions (the test profile), waits for the
    /// kernel just launched and reports its error by name.
    fn check_launch(&self, name: &str) -> Result<()> {
        if cfg!(debug_assertions) && !self.0.capturing.load(Ordering::Relaxed) {
            // SAFETY: our live stream.
            unsafe { drv::stream::synchronize(self.stream()) }.map_err(|e| Error::Cuda {
                op: "kernel",
                call: "cuStreamSynchronize",
                msg: format!("after {name}: {e:?}"),
            })?;
        }
        Ok(())
    }

    /// How many clusters of `cluster` blocks of `f` (with `block` threads and
    /// `shared_bytes` of dynamic shared memory) the GPU holds at once: the
    /// grid of a persistent kernel (not every SM count splits into whole
    /// clusters).
    pub(crate) fn max_active_clusters(
        &self,
        name: &str,
        f: sys::CUfunction,
        block: (u32, u32, u32),
        shared_bytes: u32,
        cluster: u32,
    ) -> Result<u32> {
        let mut attr = cluster_attribute(cluster);
        let config = self.launch_config((cluster, 1, 1), block, shared_bytes, &mut attr);
        let mut n = 0;
        // SAFETY: a live function and a config that outlives the call.
        unsafe { sys::cuOccupancyMaxActiveClusters(&mut n, f, &config) }
            .result()
            .map_err(|e| Error::Cuda {
                op: "kernel",
                call: "cuOccupancyMaxActiveClusters",
                msg: format!("{name} cluster {cluster}: {e:?}"),
            })?;
        Ok(n.max(0) as u32)
    }

    fn launch_config(
        &self,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        shared_bytes: u32,
        attr: &mut sys::CUlaunchAttribute,
    ) -> sys::CUlaunchConfig {
        sys::CUlaunchConfig {
            gridDimX: grid.0,
            gridDimY: grid.1,
            gridDimZ: grid.2,
            blockDimX: block.0,
            blockDimY: block.1,
            blockDimZ: block.2,
            sharedMemBytes: shared_bytes,
            hStream: self.stream(),
            attrs: attr,
            numAttrs: 1,
        }
    }

    /// Asks for the largest shared-memory carveout of the L1/shared split
    /// for `f` (a hint the driver follows when blocks need it to co-reside).
    pub(crate) fn prefer_max_shared(&self, name: &str, f: sys::CUfunction) -> Result<()> {
        // SAFETY: `f` is a live function of a loaded module.
        unsafe {
            drv::function::set_function_attribute(
                f,
                sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT,
                100,
            )
        }
        .map_err(|e| Error::Cuda {
            op: "kernel",
            call: "cuFuncSetAttribute",
            msg: format!("{name}: shared memory carveout: {e:?}"),
        })
    }

    /// Lets `f` take `bytes` of dynamic shared memory.
    pub(crate) fn set_max_dynamic_shared(
        &self,
        name: &str,
        f: sys::CUfunction,
        bytes: u32,
    ) -> Result<()> {
        // SAFETY: `f` is a live function of a loaded module.
        unsafe {
            drv::function::set_function_attribute(
                f,
                sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                bytes as i32,
            )
        }
        .map_err(|e| Error::Cuda {
            op: "kernel",
            call: "cuFuncSetAttribute",
            msg: format!("{name}: {bytes} bytes of dynamic shared memory: {e:?}"),
        })
    }

    /// Runs `f` with the device's cuBLAS handle (created on first use, bound
    /// to our stream, with a workspace from our pool).
    pub(crate) fn with_blas<R>(
        &self,
        f: impl FnOnce(cublas_sys::cublasHandle_t) -> Result<R>,
    ) -> Result<R> {
        self.bind()?;
        let blas = self.0.blas.get_or_init(|| {
            self.create_blas()
                .map(Mutex::new)
                .map_err(|e| e.to_string())
        });
        let blas = blas
            .as_ref()
            .map_err(|e| Error::CudaUnavailable(format!("cuBLAS: {e}")))?;
        let guard = blas.lock().unwrap_or_else(|e| e.into_inner());
        f(guard.handle.0)
    }

    fn create_blas(&self) -> Result<Blas> {
        // SAFETY: only tries to dlopen the library.
        if !unsafe { cublas_sys::is_culib_present() } {
            return Err(Error::CudaUnavailable(
                "libcublas (CUDA 13) was not found: put the CUDA 13 toolkit's lib64 (or pip's nvidia/cu13/lib) on LD_LIBRARY_PATH".into(),
            ));
        }
        let blas_err = |call: &'static str| {
            move |e: cudarc::cublas::result::CublasError| Error::Cuda {
                op: "matmul",
                call,
                msg: format!("{e:?}"),
            }
        };
        let handle = cudarc::cublas::result::create_handle().map_err(blas_err("cublasCreate"))?;
        const WORKSPACE: usize = 32 << 20;
        let workspace = self.0.pool.alloc(WORKSPACE)?;
        // SAFETY: a live handle, our live stream and a buffer that lives as
        // long as the handle (both are owned by `Blas`).
        unsafe {
            cublas_sys::cublasSetStream_v2(handle, self.stream() as cublas_sys::cudaStream_t)
                .result()
                .map_err(blas_err("cublasSetStream"))?;
            cublas_sys::cublasSetWorkspace_v2(handle, workspace.ptr() as *mut c_void, WORKSPACE)
                .result()
                .map_err(blas_err("cublasSetWorkspace"))?;
        }
        Ok(Blas {
            handle: Handle(handle),
            _workspace: workspace,
        })
    }
}

/// Work queued on a device's stream, captured as a CUDA graph and
/// instantiated ([`CudaDevice::capture`]): [`CudaGraph::launch`] replays all
/// of it with one driver call. It owns the scratch buffers the captured work
/// dropped (their addresses are in the graph), and waits for its last
/// replay before it goes.
pub struct CudaGraph {
    dev: CudaDevice,
    graph: Handle<sys::CUgraph>,
    exec: Handle<sys::CUgraphExec>,
    _held: Vec<DeviceBuffer>,
}

impl CudaDevice {
    /// Runs `f`, capturing the work it queues on this device's stream into
    /// a graph instead of running it. The work must not wait for the device
    /// or copy from host memory: such a call fails, and so does the capture
    /// (the error is returned and the stream is left as it was). Buffers
    /// that the work frees are held for the graph, not reused.
    pub fn capture(&self, f: impl FnOnce() -> Result<()>) -> Result<CudaGraph> {
        self.bind()?;
        let stream = self.stream();
        let relaxed = sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED;
        // SAFETY: our live stream, not being captured (captures do not nest:
        // the stream's users run one at a time).
        unsafe { drv::stream::begin_capture(stream, relaxed) }
            .map_err(drv_err("graph", "cuStreamBeginCapture"))?;
        self.0.pool.hold_returns();
        self.0.capturing.store(true, Ordering::Relaxed);
        let queued = f();
        self.0.capturing.store(false, Ordering::Relaxed);
        // SAFETY: the capture begun above, on our stream.
        let ended = unsafe { drv::stream::end_capture(stream) };
        let held = self.0.pool.take_held();
        let graph = match (queued, ended) {
            (Ok(()), Ok(g)) => g,
            // The op's own error first: it says what broke the capture.
            (queued, Err(e)) => {
                queued?;
                return Err(drv_err("graph", "cuStreamEndCapture")(e));
            }
            (Err(e), Ok(g)) => {
                // SAFETY: the graph just captured, used by nothing else.
                unsafe {
                    let _ = drv::graph::destroy(g);
                }
                return Err(e);
            }
        };
        let flags = sys::CUgraphInstantiate_flags(0);
        // SAFETY: a graph captured above.
        let exec = unsafe { drv::graph::instantiate(graph, flags) }.map_err(|e| {
            // SAFETY: as above; it failed to instantiate and is not used again.
            unsafe {
                let _ = drv::graph::destroy(graph);
            }
            drv_err("graph", "cuGraphInstantiate")(e)
        })?;
        Ok(CudaGraph {
            dev: self.clone(),
            graph: Handle(graph),
            exec: Handle(exec),
            _held: held,
        })
    }
}

impl CudaGraph {
    /// Queues one replay of the captured work on the device's stream.
    pub fn launch(&self) -> Result<()> {
        self.dev.bind()?;
        let t = Instant::now();
        // SAFETY: an instantiated graph of this device, and its stream.
        let r = unsafe { drv::graph::launch(self.exec.0, self.dev.stream()) };
        self.dev.count_launch(t);
        r.map_err(drv_err("graph", "cuGraphLaunch"))?;
        self.dev.check_launch("graph")
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        // SAFETY: ours, destroyed once, after the stream has run every
        // replay (the held buffers go back to the pool after this).
        unsafe {
            if self.dev.bind().is_ok() {
                let _ = drv::stream::synchronize(self.dev.stream());
            }
            let _ = drv::graph::exec_destroy(self.exec.0);
            let _ = drv::graph::destroy(self.graph.0);
        }
    }
}

/// `METALLIC_PDL=off` launches dependents plainly (for A/B timing of the
/// programmatic dependent launch); read once per process.
fn dependent_launch_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("METALLIC_PDL").map_or(true, |v| v != "off"))
}

/// The launch attribute for clusters of `cluster` blocks along x.
fn cluster_attribute(cluster: u32) -> sys::CUlaunchAttribute {
    // SAFETY: an all-zero attribute value is a valid bit pattern (a union of
    // plain integers); then the cluster field is set.
    let mut value: sys::CUlaunchAttributeValue = unsafe { std::mem::zeroed() };
    value.clusterDim = sys::CUlaunchAttributeValue_union__bindgen_ty_1 {
        x: cluster,
        y: 1,
        z: 1,
    };
    sys::CUlaunchAttribute {
        id: sys::CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION,
        pad: [0; 4],
        value,
    }
}

/// The driver library, or a clear error.
fn driver_available() -> Result<()> {
    // SAFETY: only tries to dlopen the library by its usual names.
    if unsafe { sys::is_culib_present() } {
        Ok(())
    } else {
        Err(Error::CudaUnavailable(
            "no NVIDIA driver found (libcuda.so could not be loaded)".into(),
        ))
    }
}

/// The first GPU, or `None` with no driver or device (op tests use it to
/// decide whether to add the CUDA targets).
pub fn default_device() -> Option<CudaDevice> {
    static FIRST: OnceLock<Option<CudaDevice>> = OnceLock::new();
    FIRST
        .get_or_init(|| match CudaDevice::new(0) {
            Ok(d) => Some(d),
            Err(e) => {
                log::debug!("[cuda] no device: {e}");
                None
            }
        })
        .clone()
}
