pub mod copy;
pub mod matmul;
