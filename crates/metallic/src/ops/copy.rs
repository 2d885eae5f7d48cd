//! copy / cast: `dst[i] = dtype_of_dst(src[i])` over two views of the same
//! shape (either may be strided; src may broadcast).

use crate::error::{Error, Result};
use crate::tensor::{DType, Storage, Tensor};

const OP: &str = "copy";

/// Copies `src` into `dst` element by element, converting to `dst`'s dtype.
pub fn copy(src: &Tensor, dst: &Tensor) -> Result<()> {
    if src.shape() != dst.shape() {
        crate::bail!(OP, "src is {:?}, dst is {:?}", src.shape(), dst.shape());
    }
    if !dst.dtype().is_float() {
        return Err(Error::UnsupportedDType {
            op: OP,
            dtype: dst.dtype(),
            msg: "destination must be f32, f16 or bf16".into(),
        });
    }
    if src.device() != dst.device() {
        return Err(Error::Device {
            op: OP,
            msg: format!(
                "src on {}, dst on {}",
                src.device().name(),
                dst.device().name()
            ),
        });
    }
    if src.storage().same(dst.storage()) {
        crate::bail!(OP, "src and dst share storage");
    }
    match dst.storage() {
        Storage::Cpu(_) => crate::cpu::ops::copy::copy(src, dst),
        Storage::Cuda(_) => crate::cuda::ops::copy::copy(src, dst),
    }
}

/// A new contiguous tensor on `src`'s device holding `src` converted to
/// `dtype`. Quantized tensors can be copied as they are (same dtype) or
/// dequantized to a float dtype.
pub fn copy_to_contiguous(src: &Tensor, dtype: DType) -> Result<Tensor> {
    if src.dtype().is_quantized() {
        if dtype == src.dtype() && src.is_contiguous() {
            return match src.storage() {
                Storage::Cpu(_) => crate::cpu::ops::copy::clone_contiguous_bytes(src),
                Storage::Cuda(_) => crate::cuda::ops::copy::clone_contiguous_bytes(src),
            };
        }
        if dtype.is_quantized() {
            return Err(Error::UnsupportedDType {
                op: OP,
                dtype,
                msg: format!("cannot convert {} to another block type", src.dtype()),
            });
        }
        let data = src.to_vec_f32()?;
        return Tensor::from_f32(&data, src.shape())?
            .to_dtype(dtype)?
            .to_device(&src.device());
    }
    let dst = Tensor::zeros(src.shape(), dtype, &src.device())?;
    copy(src, &dst)?;
    Ok(dst)
}

/// The reference: identity on logical F32 values (rounding happens on store).
pub fn reference(src: &[f32]) -> Vec<f32> {
    src.to_vec()
}
