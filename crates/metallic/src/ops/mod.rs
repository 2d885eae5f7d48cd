//! The op layer: one module per op family, owning its parameters, validation,
//! documented semantics and scalar reference. Backends implement each op in
//! `cpu/ops/<op>.rs` (and `cuda/ops/<op>.rs`).

pub mod copy;
pub mod matmul;
