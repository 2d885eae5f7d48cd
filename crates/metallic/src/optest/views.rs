//! Test tensors placed in storage the way real operands are: contiguous,
//! padded (a window of a bigger buffer, every dimension narrowed), transposed
//! (stored with the dimensions reversed) or both. Everything outside the view
//! is NaN, so a kernel that reads outside its inputs produces NaN and one that
//! writes outside its output is caught by [`check_untouched`].

use super::Rng;
use crate::error::{Error, Result};
use crate::ops::copy::copy;
use crate::tensor::{DType, Tensor};

/// How a test tensor sits in its storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    Contiguous,
    /// Every dimension two wider than the view, which starts at index 1.
    Padded,
    /// Stored with the dimension order reversed, viewed back through a permute.
    Transposed,
    PaddedTransposed,
}

impl Placement {
    pub const ALL: [Placement; 4] = [
        Placement::Contiguous,
        Placement::Padded,
        Placement::Transposed,
        Placement::PaddedTransposed,
    ];

    pub fn short(self) -> &'static str {
        match self {
            Placement::Contiguous => "c",
            Placement::Padded => "pad",
            Placement::Transposed => "T",
            Placement::PaddedTransposed => "padT",
        }
    }

    fn padded(self) -> bool {
        matches!(self, Placement::Padded | Placement::PaddedTransposed)
    }

    fn transposed(self) -> bool {
        matches!(self, Placement::Transposed | Placement::PaddedTransposed)
    }
}

/// A NaN-surrounded view of `shape` holding `values` (row-major, logical
/// order) rounded to `dtype`.
pub fn place(
    shape: &[usize],
    dtype: DType,
    placement: Placement,
    values: &[f32],
) -> Result<Tensor> {
    let r = shape.len();
    let order: Vec<usize> = if placement.transposed() {
        (0..r).rev().collect()
    } else {
        (0..r).collect()
    };
    let pad = if placement.padded() { 2 } else { 0 };
    let stored: Vec<usize> = order.iter().map(|&d| shape[d] + pad).collect();
    let mut view = Tensor::full(&stored, f32::NAN, dtype, &Default::default())?;
    if placement.padded() {
        for (d, size) in order.iter().map(|&d| shape[d]).enumerate() {
            view = view.narrow(d, 1, size)?;
        }
    }
    if placement.transposed() {
        // Stored dim i holds logical dim r-1-i: reversing again restores it.
        view = view.permute(&order)?;
    }
    debug_assert_eq!(view.shape(), shape);
    copy(&Tensor::from_f32(values, shape)?, &view)?;
    Ok(view)
}

/// A view of uniform random values in [-1, 1) (times `amp`).
pub fn random(
    shape: &[usize],
    dtype: DType,
    placement: Placement,
    amp: f32,
    rng: &mut Rng,
) -> Result<Tensor> {
    let n = shape.iter().product();
    let values: Vec<f32> = rng.vec(n).into_iter().map(|v| v * amp).collect();
    place(shape, dtype, placement, &values)
}

/// An output view poisoned with NaN, inside and out.
pub fn poisoned(shape: &[usize], dtype: DType, placement: Placement) -> Result<Tensor> {
    let n = shape.iter().product();
    place(shape, dtype, placement, &vec![f32::NAN; n])
}

/// Fails when storage outside `view` is no longer NaN: a kernel wrote there.
pub fn check_untouched(view: &Tensor) -> Result<()> {
    let all = view.storage_view()?.to_vec_f32()?;
    let mut inside = vec![false; all.len()];
    for i in view.layout().storage_indices() {
        inside[i] = true;
    }
    if let Some(i) = (0..all.len()).find(|&i| !inside[i] && !all[i].is_nan()) {
        return Err(Error::op(
            "optest",
            format!("kernel wrote element {i} outside the output view"),
        ));
    }
    Ok(())
}

/// `7x33`: a shape as case descriptions print it.
pub fn shape_str(shape: &[usize]) -> String {
    shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("x")
}
