//! Helpers shared by the op modules' unit tests.

use crate::error::Result;
use crate::tensor::Tensor;

/// A contiguous F32 tensor of ones.
pub fn t(shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_f32(&vec![1.0; n], shape).unwrap()
}

/// The message of an error the call must return.
pub fn err(r: Result<()>) -> String {
    r.expect_err("must fail").to_string()
}
