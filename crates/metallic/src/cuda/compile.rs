//! Run-time kernel compilation: CUDA C++ source -> NVRTC -> CUBIN for the
//! device's exact architecture, cached on disk.
//!
//! Why CUBIN and not PTX: the driver rejects PTX produced by an NVRTC newer
//! than itself, while a CUBIN for the right `sm_XY` loads on any driver that
//! knows the chip. cudarc's safe NVRTC layer only returns PTX, so the CUBIN is
//! fetched through its `nvrtc::sys` layer (`nvrtcGetCUBIN`).
//!
//! The cache key is a hash of everything that changes the binary: the full
//! source, the options (defines included), the architecture and the NVRTC
//! version. Files are written to a temporary name and renamed into place, so
//! concurrent processes never read half a CUBIN.

use std::ffi::{c_char, CString};
use std::path::{Path, PathBuf};
use std::time::Instant;

use cudarc::nvrtc::{result as nvrtc, sys as nvrtc_sys};

use crate::error::{Error, Result};

/// A kernel module to compile: a name (used in logs, errors and cache file
/// names), its source, and the defines that specialise it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KernelSource {
    pub name: String,
    /// The full source, shared headers already prepended.
    pub src: String,
    /// `-D` defines, `NAME=VALUE`.
    pub defines: Vec<String>,
}

impl KernelSource {
    /// The source of `name`: `headers` (in order) followed by `body`.
    pub fn new(name: &str, headers: &[&str], body: &str) -> KernelSource {
        let mut src = String::new();
        for h in headers {
            src.push_str(h);
            src.push('\n');
        }
        src.push_str(body);
        KernelSource {
            name: name.to_string(),
            src,
            defines: Vec::new(),
        }
    }

    pub fn define(mut self, name: &str, value: impl std::fmt::Display) -> KernelSource {
        self.defines.push(format!("{name}={value}"));
        self
    }

    /// The module's identity within one process (name and defines).
    pub fn key(&self) -> String {
        if self.defines.is_empty() {
            self.name.clone()
        } else {
            format!("{}[{}]", self.name, self.defines.join(","))
        }
    }

    /// NVRTC options for `arch` (for example `sm_90a`).
    pub fn options(&self, arch: &str) -> Vec<String> {
        let mut o = vec![
            format!("--gpu-architecture={arch}"),
            "--std=c++17".to_string(),
            // Line tables cost nothing at run time and let compute-sanitizer
            // and ncu point at source lines.
            "--generate-line-info".to_string(),
        ];
        o.extend(self.defines.iter().map(|d| format!("-D{d}")));
        o
    }
}

/// The NVRTC library, or a clear error saying how to get it.
pub fn nvrtc_available() -> Result<()> {
    // SAFETY: only tries to dlopen the library by its usual names.
    if unsafe { nvrtc_sys::is_culib_present() } {
        Ok(())
    } else {
        Err(Error::CudaUnavailable(
            "libnvrtc (CUDA 13) was not found: install the CUDA 13 toolkit or `python3 -m pip install nvidia-cuda-nvrtc==13.0.88` and put its lib folder (nvidia/cu13/lib) on LD_LIBRARY_PATH".into(),
        ))
    }
}

/// NVRTC's version as `(major, minor)`.
pub fn nvrtc_version() -> Result<(i32, i32)> {
    nvrtc_available()?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: two valid out-pointers.
    unsafe { nvrtc_sys::nvrtcVersion(&mut major, &mut minor) }
        .result()
        .map_err(|e| nvrtc_err("nvrtcVersion", e))?;
    Ok((major, minor))
}

fn nvrtc_err(call: &'static str, e: nvrtc::NvrtcError) -> Error {
    Error::Cuda {
        op: "compile",
        call,
        msg: format!("{e:?}"),
    }
}

/// Compiles `k` to a CUBIN for `arch` (no cache). A compile error returns
/// NVRTC's log and the kernel's name.
pub fn compile_cubin(k: &KernelSource, arch: &str) -> Result<Vec<u8>> {
    compile_cubin_logged(k, arch).map(|(cubin, _)| cubin)
}

/// As [`compile_cubin`], with NVRTC's log of a successful compile (ptxas's
/// advisories, e.g. wgmma instructions it had to serialise; empty when
/// there are none).
pub fn compile_cubin_logged(k: &KernelSource, arch: &str) -> Result<(Vec<u8>, String)> {
    nvrtc_available()?;
    let src = CString::new(k.src.as_str()).map_err(|_| Error::KernelCompile {
        kernel: k.key(),
        arch: arch.into(),
        log: "source contains a NUL byte".into(),
    })?;
    let name = CString::new(format!("{}.cu", k.name)).expect("kernel names have no NUL");
    let prog =
        nvrtc::create_program(&src, Some(&name)).map_err(|e| nvrtc_err("nvrtcCreateProgram", e))?;
    let options = k.options(arch);
    // SAFETY: `prog` is a live program; it is destroyed exactly once below.
    let compiled = unsafe { nvrtc::compile_program(prog, &options) };
    let result = match compiled {
        Err(_) => {
            // SAFETY: `prog` is live.
            let log = unsafe { nvrtc::get_program_log(prog) }
                .map(|l| c_chars_to_string(&l))
                .unwrap_or_else(|e| format!("(no log: {e:?})"));
            Err(Error::KernelCompile {
                kernel: k.key(),
                arch: arch.into(),
                log,
            })
        }
        Ok(()) => {
            // SAFETY: `prog` is live.
            let log = unsafe { nvrtc::get_program_log(prog) }
                .map(|l| c_chars_to_string(&l))
                .unwrap_or_default();
            let mut size = 0usize;
            // SAFETY: `prog` compiled; the buffer is sized as NVRTC asks.
            unsafe { nvrtc_sys::nvrtcGetCUBINSize(prog, &mut size) }
                .result()
                .map_err(|e| nvrtc_err("nvrtcGetCUBINSize", e))
                .and_then(|()| {
                    let mut cubin = vec![0u8; size];
                    unsafe { nvrtc_sys::nvrtcGetCUBIN(prog, cubin.as_mut_ptr() as *mut c_char) }
                        .result()
                        .map_err(|e| nvrtc_err("nvrtcGetCUBIN", e))?;
                    Ok((cubin, log))
                })
        }
    };
    // SAFETY: destroyed once; nothing uses `prog` after this.
    unsafe { nvrtc::destroy_program(prog) }.map_err(|e| nvrtc_err("nvrtcDestroyProgram", e))?;
    let (cubin, log) = result?;
    if cubin.is_empty() {
        return Err(Error::KernelCompile {
            kernel: k.key(),
            arch: arch.into(),
            log: "NVRTC returned an empty CUBIN (is the architecture a real sm_XY?)".into(),
        });
    }
    Ok((cubin, log.trim().to_string()))
}

fn c_chars_to_string(log: &[c_char]) -> String {
    let bytes: Vec<u8> = log
        .iter()
        .take_while(|&&c| c != 0)
        // `c_char` is i8 on x86-64 and u8 on aarch64: reinterpret the byte.
        .map(|&c| u8::from_ne_bytes(c.to_ne_bytes()))
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Where compiled kernels are kept between runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelCache {
    /// `None`: compile every time, write nothing.
    pub dir: Option<PathBuf>,
}

impl KernelCache {
    /// `$METALLIC_KERNEL_CACHE` when set (empty disables the cache), else
    /// `$XDG_CACHE_HOME/metallic/kernels`, else `~/.cache/metallic/kernels`.
    /// Read by `CudaConfig::from_env`, once, at the edge.
    pub fn from_env() -> KernelCache {
        let dir = match std::env::var_os("METALLIC_KERNEL_CACHE") {
            Some(v) if v.is_empty() => None,
            Some(v) => Some(PathBuf::from(v)),
            None => std::env::var_os("XDG_CACHE_HOME")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
                .map(|c| c.join("metallic").join("kernels")),
        };
        KernelCache { dir }
    }

    /// Where the CUBIN of `k` for `arch` is kept (`None` without a cache).
    fn path(&self, k: &KernelSource, arch: &str) -> Result<Option<PathBuf>> {
        match &self.dir {
            Some(dir) => {
                let key = cache_key(k, arch, nvrtc_version()?);
                Ok(Some(dir.join(format!("{}-{arch}-{key}.cubin", k.name))))
            }
            None => Ok(None),
        }
    }

    /// Keeps `cubin` as the CUBIN of `k` for `arch` (for a cache filled on
    /// another machine with the same NVRTC: tests/cuda_kernels.rs).
    pub fn store(&self, k: &KernelSource, arch: &str, cubin: &[u8]) -> Result<()> {
        if let Some(p) = self.path(k, arch)? {
            write_atomic(&p, cubin).map_err(|e| {
                Error::io(format!("caching kernel {} at {}", k.key(), p.display()), e)
            })?;
        }
        Ok(())
    }

    /// The CUBIN of `k` for `arch`: from the cache, or compiled (and logged
    /// with its duration) and stored.
    pub fn load_or_compile(&self, k: &KernelSource, arch: &str) -> Result<Vec<u8>> {
        let path = self.path(k, arch)?;
        if let Some(p) = &path {
            if let Ok(bytes) = std::fs::read(p) {
                if !bytes.is_empty() {
                    log::debug!(
                        "[cuda] kernel {} for {arch}: cached {}",
                        k.key(),
                        p.display()
                    );
                    return Ok(bytes);
                }
            }
        }
        let start = Instant::now();
        let (cubin, nvrtc_log) = compile_cubin_logged(k, arch)?;
        if !nvrtc_log.is_empty() {
            log::warn!("[cuda] kernel {} for {arch}: {nvrtc_log}", k.key());
        }
        log::info!(
            "[cuda] compiled kernel {} for {arch} in {:.0} ms ({} bytes)",
            k.key(),
            start.elapsed().as_secs_f64() * 1e3,
            cubin.len()
        );
        if let Some(p) = &path {
            // A cache that cannot be written costs time, not correctness.
            if let Err(e) = write_atomic(p, &cubin) {
                log::warn!(
                    "[cuda] could not cache kernel {} at {}: {e}",
                    k.key(),
                    p.display()
                );
            }
        }
        Ok(cubin)
    }
}

/// Writes to a unique temporary file beside `path`, then renames it over.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = dir.join(format!(
        ".{}.tmp.{}.{nanos}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("kernel"),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// 128 bits of FNV-1a (two 64-bit lanes with different offsets) over every
/// input that changes the binary; stable across Rust versions, unlike
/// `DefaultHasher`.
fn cache_key(k: &KernelSource, arch: &str, (major, minor): (i32, i32)) -> String {
    let mut parts: Vec<&[u8]> = vec![k.src.as_bytes(), arch.as_bytes()];
    let options = k.options(arch).join("\u{1}");
    parts.push(options.as_bytes());
    let version = format!("nvrtc {major}.{minor}");
    parts.push(version.as_bytes());
    let mut h = [0xcbf2_9ce4_8422_2325u64, 0x6c62_272e_07bb_0142u64];
    for part in parts {
        for lane in h.iter_mut() {
            for &b in part.iter().chain(&[0xffu8]) {
                *lane ^= b as u64;
                *lane = lane.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        // Mix the lanes differently so they do not stay equal.
        h[1] = h[1].rotate_left(17) ^ h[0];
    }
    format!("{:016x}{:016x}", h[0], h[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_key_changes_with_every_input() {
        let k = KernelSource::new("t", &[], "__global__ void f() {}");
        let base = cache_key(&k, "sm_90a", (13, 0));
        assert_ne!(base, cache_key(&k, "sm_80", (13, 0)));
        assert_ne!(base, cache_key(&k, "sm_90a", (13, 1)));
        assert_ne!(
            base,
            cache_key(&k.clone().define("X", 1), "sm_90a", (13, 0))
        );
        let k2 = KernelSource::new("t", &[], "__global__ void g() {}");
        assert_ne!(base, cache_key(&k2, "sm_90a", (13, 0)));
        assert_eq!(base, cache_key(&k, "sm_90a", (13, 0)));
    }
}
