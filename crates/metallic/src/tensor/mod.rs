//! Tensors: storage + layout + dtype. Views (transpose, permute, narrow,
//! reshape of contiguous data, broadcast) share storage and never copy;
//! `contiguous()` and `to_dtype()` are the explicit copies.

mod dtype;
mod layout;
mod storage;

use std::sync::Arc;

use half::{bf16, f16};

pub use dtype::DType;
pub use layout::{contiguous_strides, Layout, StridedIndex};
pub use storage::{cast, cast_mut, CpuStorage, HostBytes};

use crate::cuda::CudaStorage;
use crate::device::Device;
use crate::error::{Error, Result};

/// Where a tensor's bytes live.
#[derive(Clone)]
pub enum Storage {
    Cpu(Arc<CpuStorage>),
    Cuda(Arc<CudaStorage>),
}

impl Storage {
    /// Whether two storages are the same allocation (views of one buffer).
    pub fn same(&self, other: &Storage) -> bool {
        match (self, other) {
            (Storage::Cpu(a), Storage::Cpu(b)) => Arc::ptr_eq(a, b),
            (Storage::Cuda(a), Storage::Cuda(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// Bytes the storage holds.
    pub fn len(&self) -> usize {
        match self {
            Storage::Cpu(s) => s.len(),
            Storage::Cuda(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Clone)]
pub struct Tensor {
    storage: Storage,
    layout: Layout,
    dtype: DType,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tensor({} {:?} strides {:?} offset {} on {})",
            self.dtype,
            self.shape(),
            self.strides(),
            self.layout.offset(),
            self.device().name()
        )
    }
}

/// A float element type that tensors can be built from and read into.
pub trait FloatElem: bytemuck::Pod + Send + Sync + 'static {
    const DTYPE: DType;
    fn to_f32(self) -> f32;
    fn from_f32(v: f32) -> Self;
}

impl FloatElem for f32 {
    const DTYPE: DType = DType::F32;
    fn to_f32(self) -> f32 {
        self
    }
    fn from_f32(v: f32) -> Self {
        v
    }
}

impl FloatElem for f16 {
    const DTYPE: DType = DType::F16;
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    fn from_f32(v: f32) -> Self {
        f16::from_f32(v)
    }
}

impl FloatElem for bf16 {
    const DTYPE: DType = DType::BF16;
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
    fn from_f32(v: f32) -> Self {
        bf16::from_f32(v)
    }
}

/// Reads element `i` (an element index, not a byte offset) of a float buffer.
#[inline]
pub fn read_f32(bytes: &[u8], dtype: DType, i: usize) -> f32 {
    match dtype {
        DType::F32 => cast::<f32>(bytes)[i],
        DType::F16 => cast::<f16>(bytes)[i].to_f32(),
        DType::BF16 => cast::<bf16>(bytes)[i].to_f32(),
        _ => unreachable!("read_f32 on quantized dtype {dtype}: callers check is_float"),
    }
}

/// Writes element `i` of a float buffer, rounding to the buffer's dtype.
#[inline]
pub fn write_f32(bytes: &mut [u8], dtype: DType, i: usize, v: f32) {
    match dtype {
        DType::F32 => cast_mut::<f32>(bytes)[i] = v,
        DType::F16 => cast_mut::<f16>(bytes)[i] = f16::from_f32(v),
        DType::BF16 => cast_mut::<bf16>(bytes)[i] = bf16::from_f32(v),
        _ => unreachable!("write_f32 on quantized dtype {dtype}: callers check is_float"),
    }
}

impl Tensor {
    pub(crate) fn from_parts(storage: Storage, layout: Layout, dtype: DType) -> Tensor {
        Tensor {
            storage,
            layout,
            dtype,
        }
    }

    /// A zero-filled contiguous tensor on `device`.
    pub fn zeros(shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
        let n: usize = checked_elems("zeros", shape)?;
        let bytes = dtype.bytes_for(n).ok_or_else(|| {
            Error::op(
                "zeros",
                format!("{shape:?} is not a whole number of {dtype} blocks"),
            )
        })?;
        check_whole_rows("zeros", shape, dtype)?;
        let storage = match device {
            Device::Cpu => Storage::Cpu(CpuStorage::new(HostBytes::zeroed(bytes))),
            Device::Cuda(d) => Storage::Cuda(CudaStorage::zeros(d, bytes)?),
        };
        Ok(Tensor::from_parts(
            storage,
            Layout::contiguous(shape),
            dtype,
        ))
    }

    /// A contiguous tensor filled with one value (NaN to poison outputs in tests).
    pub fn full(shape: &[usize], value: f32, dtype: DType, device: &Device) -> Result<Tensor> {
        let data = vec![value; checked_elems("full", shape)?];
        Tensor::from_f32(&data, shape)?
            .to_dtype(dtype)?
            .to_device(device)
    }

    /// A contiguous CPU tensor of typed elements.
    pub fn from_slice<T: FloatElem>(data: &[T], shape: &[usize]) -> Result<Tensor> {
        let n = checked_elems("from_slice", shape)?;
        if n != data.len() {
            return Err(Error::op(
                "from_slice",
                format!("{} elements do not fill shape {shape:?}", data.len()),
            ));
        }
        let bytes = HostBytes::from_bytes(bytemuck::cast_slice(data));
        Ok(Tensor::from_parts(
            Storage::Cpu(CpuStorage::new(bytes)),
            Layout::contiguous(shape),
            T::DTYPE,
        ))
    }

    pub fn from_f32(data: &[f32], shape: &[usize]) -> Result<Tensor> {
        Tensor::from_slice(data, shape)
    }

    /// A contiguous CPU tensor over raw bytes of any dtype (quantized blocks
    /// included). Rows of a quantized tensor must be whole blocks.
    pub fn from_raw(bytes: HostBytes, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let n = checked_elems("from_raw", shape)?;
        check_whole_rows("from_raw", shape, dtype)?;
        let want = dtype.bytes_for(n);
        if want != Some(bytes.len()) {
            return Err(Error::op(
                "from_raw",
                format!(
                    "{} bytes do not hold {dtype} {shape:?} ({want:?} bytes)",
                    bytes.len()
                ),
            ));
        }
        Ok(Tensor::from_parts(
            Storage::Cpu(CpuStorage::new(bytes)),
            Layout::contiguous(shape),
            dtype,
        ))
    }

    pub fn shape(&self) -> &[usize] {
        self.layout.shape()
    }
    pub fn strides(&self) -> &[usize] {
        self.layout.strides()
    }
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn rank(&self) -> usize {
        self.layout.rank()
    }
    pub fn elem_count(&self) -> usize {
        self.layout.elem_count()
    }
    pub fn storage(&self) -> &Storage {
        &self.storage
    }
    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }
    pub fn device(&self) -> Device {
        match &self.storage {
            Storage::Cpu(_) => Device::Cpu,
            Storage::Cuda(s) => Device::Cuda(s.device().clone()),
        }
    }
    /// Size of dimension `d`, counting from the end when negative-like use is
    /// wanted: `dim(rank-1)` is the row length.
    pub fn dim(&self, d: usize) -> usize {
        self.shape()[d]
    }

    /// The host storage, or an error naming `op` when the tensor is elsewhere.
    pub fn cpu_storage(&self, op: &'static str) -> Result<&Arc<CpuStorage>> {
        match &self.storage {
            Storage::Cpu(s) => Ok(s),
            Storage::Cuda(s) => Err(Error::Device {
                op,
                msg: format!(
                    "tensor is on {}, this needs it on the cpu",
                    Device::Cuda(s.device().clone()).name()
                ),
            }),
        }
    }

    /// The device storage, or an error naming `op` when the tensor is elsewhere.
    pub fn cuda_storage(&self, op: &'static str) -> Result<&Arc<CudaStorage>> {
        match &self.storage {
            Storage::Cuda(s) => Ok(s),
            Storage::Cpu(_) => Err(Error::Device {
                op,
                msg: "tensor is on cpu, this needs it on a cuda device".into(),
            }),
        }
    }

    fn with_layout(&self, layout: Layout) -> Result<Tensor> {
        if self.dtype.is_quantized() && !keeps_blocks_whole(&layout, self.dtype.block_elems()) {
            return Err(Error::Layout {
                op: "view",
                msg: format!("view would split {} blocks", self.dtype),
                shape: layout.shape().to_vec(),
                strides: layout.strides().to_vec(),
            });
        }
        Ok(Tensor {
            storage: self.storage.clone(),
            layout,
            dtype: self.dtype,
        })
    }

    /// Swap the last two dimensions (a matrix transpose), without copying.
    pub fn t(&self) -> Result<Tensor> {
        if self.rank() < 2 {
            return Err(Error::op(
                "t",
                format!("needs rank >= 2, got {:?}", self.shape()),
            ));
        }
        self.transpose(self.rank() - 2, self.rank() - 1)
    }

    pub fn transpose(&self, d0: usize, d1: usize) -> Result<Tensor> {
        self.with_layout(self.layout.transpose(d0, d1)?)
    }

    pub fn permute(&self, dims: &[usize]) -> Result<Tensor> {
        self.with_layout(self.layout.permute(dims)?)
    }

    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Tensor> {
        self.with_layout(self.layout.narrow(dim, start, len)?)
    }

    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        self.with_layout(self.layout.reshape(shape)?)
    }

    pub fn broadcast_as(&self, shape: &[usize]) -> Result<Tensor> {
        self.with_layout(self.layout.broadcast_as(shape)?)
    }

    /// A view with explicit strides and offset (in elements) over this
    /// tensor's storage; checked against the storage size.
    pub fn as_strided(&self, shape: &[usize], strides: &[usize], offset: usize) -> Result<Tensor> {
        if self.dtype.is_quantized() {
            return Err(Error::op(
                "as_strided",
                format!("not defined on {} storage", self.dtype),
            ));
        }
        let layout = Layout::new(shape, strides, offset)?;
        let span = layout
            .storage_span()
            .ok_or_else(|| Error::op("as_strided", "layout span overflows"))?;
        let have = self.storage_elems();
        if span > have {
            return Err(Error::Layout {
                op: "as_strided",
                msg: format!("view reaches element {span} of a storage of {have}"),
                shape: shape.to_vec(),
                strides: strides.to_vec(),
            });
        }
        self.with_layout(layout)
    }

    /// The whole underlying storage as a contiguous 1-D tensor of this dtype.
    pub fn storage_view(&self) -> Result<Tensor> {
        if self.dtype.is_quantized() {
            return Err(Error::op(
                "storage_view",
                format!("not defined on {} storage", self.dtype),
            ));
        }
        let n = self.storage_elems();
        self.with_layout(Layout::contiguous(&[n]))
    }

    /// Number of elements the underlying storage holds.
    pub fn storage_elems(&self) -> usize {
        self.storage.len() / self.dtype.block_bytes() * self.dtype.block_elems()
    }

    /// Every element in row-major logical order, as f32 (quantized tensors are
    /// dequantized with the scalar reference).
    pub fn to_vec_f32(&self) -> Result<Vec<f32>> {
        if let Storage::Cuda(s) = &self.storage {
            // A contiguous float view: copy just its bytes, not the storage,
            // f32 straight into the result, f16 / bf16 converted a slice at a
            // time (a decode step reads its vocabulary of logits this way).
            if self.dtype.is_float() && self.is_contiguous() {
                let size = self.dtype.block_bytes();
                let (offset, n) = (self.layout.offset() * size, self.elem_count());
                let mut out = vec![0.0f32; n];
                if self.dtype == DType::F32 {
                    s.read_into(offset, bytemuck::cast_slice_mut(&mut out))?;
                    return Ok(out);
                }
                let mut raw = vec![0u16; n];
                s.read_into(offset, bytemuck::cast_slice_mut(&mut raw))?;
                use half::slice::HalfFloatSliceExt;
                if self.dtype == DType::F16 {
                    bytemuck::cast_slice::<u16, f16>(&raw).convert_to_f32_slice(&mut out);
                } else {
                    bytemuck::cast_slice::<u16, bf16>(&raw).convert_to_f32_slice(&mut out);
                }
                return Ok(out);
            }
        }
        let host = self.to_device(&Device::Cpu)?;
        let storage = host.cpu_storage("to_vec_f32")?;
        let guard = storage.read();
        let bytes = guard.bytes();
        if self.dtype.is_float() && self.is_contiguous() {
            // One slice: no per-element index walk (norm weights and biases
            // are read this way every step).
            let (start, n) = (self.layout.offset(), self.elem_count());
            let mut out = vec![0.0f32; n];
            match self.dtype {
                DType::F32 => out.copy_from_slice(&cast::<f32>(bytes)[start..start + n]),
                DType::F16 => {
                    use half::slice::HalfFloatSliceExt;
                    cast::<f16>(bytes)[start..start + n].convert_to_f32_slice(&mut out)
                }
                _ => {
                    use half::slice::HalfFloatSliceExt;
                    cast::<bf16>(bytes)[start..start + n].convert_to_f32_slice(&mut out)
                }
            }
            return Ok(out);
        }
        if self.dtype.is_float() {
            return Ok(host
                .layout
                .storage_indices()
                .map(|i| read_f32(bytes, self.dtype, i))
                .collect());
        }
        crate::quant::dequantize_view(self.dtype, bytes, &host.layout)
    }

    /// A contiguous copy (always copies, even when already contiguous).
    pub fn contiguous(&self) -> Result<Tensor> {
        crate::ops::copy::copy_to_contiguous(self, self.dtype)
    }

    /// A contiguous copy converted to `dtype` (float dtypes only as targets).
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        crate::ops::copy::copy_to_contiguous(self, dtype)
    }

    /// This tensor on `device` (shared, not copied, when already there).
    /// The whole storage moves and the layout is kept, so a view stays the
    /// same view of the same data on the other side.
    pub fn to_device(&self, device: &Device) -> Result<Tensor> {
        let storage = match (&self.storage, device) {
            (Storage::Cpu(_), Device::Cpu) => return Ok(self.clone()),
            (Storage::Cuda(s), Device::Cuda(d)) if s.device() == d => return Ok(self.clone()),
            (Storage::Cpu(s), Device::Cuda(d)) => {
                Storage::Cuda(CudaStorage::from_host(d, s.read().bytes())?)
            }
            (Storage::Cuda(s), Device::Cpu) => {
                Storage::Cpu(CpuStorage::new(HostBytes::from_bytes(&s.to_host()?)))
            }
            (Storage::Cuda(s), Device::Cuda(d)) => {
                Storage::Cuda(CudaStorage::from_host(d, &s.to_host()?)?)
            }
        };
        Ok(Tensor::from_parts(storage, self.layout.clone(), self.dtype))
    }
}

/// Whether a view of block-quantized storage keeps every block whole: the
/// offset and every stride except the one contiguous (stride 1) dimension are
/// whole blocks, and that dimension spans whole blocks.
fn keeps_blocks_whole(layout: &Layout, block: usize) -> bool {
    let mut contiguous_dims = 0;
    for (&d, &s) in layout.shape().iter().zip(layout.strides()) {
        if d == 1 {
            continue;
        }
        if s == 1 && block > 1 {
            contiguous_dims += 1;
            if d % block != 0 {
                return false;
            }
        } else if s % block != 0 {
            return false;
        }
    }
    layout.offset().is_multiple_of(block) && contiguous_dims <= 1
}

/// Rows (the last dimension) of a block-quantized tensor must be whole blocks.
fn check_whole_rows(op: &'static str, shape: &[usize], dtype: DType) -> Result<()> {
    if shape.last().is_some_and(|&k| k % dtype.block_elems() != 0) {
        return Err(Error::op(
            op,
            format!("rows of {shape:?} are not whole {dtype} blocks"),
        ));
    }
    Ok(())
}

pub(crate) fn checked_elems(op: &'static str, shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::op(op, format!("element count of {shape:?} overflows")))
}
