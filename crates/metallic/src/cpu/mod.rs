//! The CPU backend: every op's host implementation, one file per op family
//! under `ops/`.

pub mod ops;
