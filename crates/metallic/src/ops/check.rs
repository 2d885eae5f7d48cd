//! Argument checks shared by the op modules. Every error names the op that
//! was called, so a failing model step says which op refused which operand.

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// `4x64`: a shape as the error messages print it.
pub(crate) fn dims(t: &Tensor) -> String {
    if t.rank() == 0 {
        return "scalar".to_string();
    }
    t.shape()
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("x")
}

/// The operand must hold f32, f16 or bf16 elements.
pub(crate) fn float(op: &'static str, name: &str, t: &Tensor) -> Result<()> {
    if !t.dtype().is_float() {
        return Err(Error::UnsupportedDType {
            op,
            dtype: t.dtype(),
            msg: format!("{name} must be f32, f16 or bf16"),
        });
    }
    Ok(())
}

/// Every input must live on the output's device.
pub(crate) fn same_device(
    op: &'static str,
    out: &Tensor,
    inputs: &[(&str, &Tensor)],
) -> Result<()> {
    let device = out.device();
    for (name, t) in inputs {
        if t.device() != device {
            return Err(Error::Device {
                op,
                msg: format!(
                    "{name} is on {}, out on {}",
                    t.device().name(),
                    device.name()
                ),
            });
        }
    }
    Ok(())
}

/// The output must not repeat elements (a stride-0 dimension of size > 1):
/// two logical elements would race for one storage element.
pub(crate) fn writable(op: &'static str, out: &Tensor) -> Result<()> {
    let broadcast = out
        .shape()
        .iter()
        .zip(out.strides())
        .any(|(&size, &stride)| size > 1 && stride == 0);
    if broadcast {
        crate::bail!(
            op,
            "out ({}) has a broadcast (stride 0) dimension",
            dims(out)
        );
    }
    Ok(())
}

/// No input may share storage with the output.
pub(crate) fn no_alias(op: &'static str, out: &Tensor, inputs: &[(&str, &Tensor)]) -> Result<()> {
    for (name, t) in inputs {
        if t.storage().same(out.storage()) {
            crate::bail!(op, "{name} shares storage with out");
        }
    }
    Ok(())
}

/// An input that may be the output itself: either separate storage, or
/// exactly the same view (layout and dtype), so every element is read before
/// it is overwritten by the same logical position.
pub(crate) fn in_place_or_separate(
    op: &'static str,
    name: &str,
    t: &Tensor,
    out: &Tensor,
) -> Result<()> {
    if t.storage().same(out.storage()) && (t.layout() != out.layout() || t.dtype() != out.dtype()) {
        crate::bail!(
            op,
            "{name} shares storage with out but not its layout and dtype ({name} {} {} strides {:?}, out {} {} strides {:?}); in place needs the very same view",
            t.dtype(),
            dims(t),
            t.strides(),
            out.dtype(),
            dims(out),
            out.strides()
        );
    }
    Ok(())
}
