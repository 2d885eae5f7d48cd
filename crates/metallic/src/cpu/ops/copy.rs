use crate::error::Result;
use crate::tensor::{read_f32, write_f32, HostBytes, Tensor};

const OP: &str = "copy";

pub fn copy(src: &Tensor, dst: &Tensor) -> Result<()> {
    let d_storage = dst.cpu_storage(OP)?;
    let mut d_guard = d_storage.write(OP)?;
    let d_bytes = d_guard
        .bytes_mut()
        .expect("write() refuses read-only storage");
    if src.dtype().is_float() {
        let s_guard = src.cpu_storage(OP)?.read();
        let s_bytes = s_guard.bytes();
        for (si, di) in src
            .layout()
            .storage_indices()
            .zip(dst.layout().storage_indices())
        {
            write_f32(d_bytes, dst.dtype(), di, read_f32(s_bytes, src.dtype(), si));
        }
    } else {
        let values = src.to_vec_f32()?;
        for (v, di) in values.into_iter().zip(dst.layout().storage_indices()) {
            write_f32(d_bytes, dst.dtype(), di, v);
        }
    }
    Ok(())
}

/// An owned copy of a contiguous tensor's bytes (used for quantized tensors).
pub fn clone_contiguous_bytes(src: &Tensor) -> Result<Tensor> {
    let guard = src.cpu_storage(OP)?.read();
    let bs = src.dtype().block_bytes();
    let be = src.dtype().block_elems();
    let start = src.layout().offset() / be * bs;
    let len = src
        .dtype()
        .bytes_for(src.elem_count())
        .expect("validated at creation");
    let bytes = HostBytes::from_bytes(&guard.bytes()[start..start + len]);
    drop(guard);
    Tensor::from_raw(bytes, src.shape(), src.dtype())
}
