//! The op layer: one module per op family, owning its parameters, validation,
//! documented semantics and scalar reference. Backends implement each op in
//! `cpu/ops/<op>.rs` (and `cuda/ops/<op>.rs`).

pub mod attention;
pub(crate) mod check;
pub mod copy;
pub mod elementwise;
pub mod fused;
pub mod get_rows;
pub mod matmul;
pub mod norm;
pub mod rope;
pub mod softmax;
#[cfg(test)]
mod test_util;
