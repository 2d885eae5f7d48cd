//! RoPE on CUDA: one thread per rotated pair or passed-through element.

use super::{arg, dev_ptr, grid_for, ptr_on, Module, Strided, COMMON};
use crate::cuda::KernelSource;
use crate::error::Result;
use crate::ops::rope::{Rope, RopeMode};
use crate::tensor::Tensor;

const OP: &str = "rope";

pub(crate) static MODULE: Module =
    Module::new(|| KernelSource::new("rope", &[COMMON], include_str!("../kernels/rope.cu")));

pub fn rope(x: &Tensor, p: &Rope, out: &Tensor) -> Result<()> {
    let (dev, optr) = dev_ptr(OP, out)?;
    let xptr = ptr_on(OP, &dev, x)?;
    let (sx, so) = (Strided::of(OP, x)?, Strided::of(OP, out)?);
    let (seq, n_heads, head_dim) = (x.dim(0) as i32, x.dim(1) as i32, x.dim(2) as i32);
    let dims = p.dims as i32;
    let pos_offset = p.pos_offset as i64;
    // Computed here, with the CPU's powf, so both backends build the same angles.
    let theta_scale = p.base.powf(-2.0 / p.dims as f32);
    let neox = i32::from(p.mode == RopeMode::Neox);
    let work = x.dim(0) * x.dim(1) * (p.dims / 2 + x.dim(2) - p.dims);
    let mut a = [
        arg(&xptr),
        arg(&sx),
        arg(&optr),
        arg(&so),
        arg(&seq),
        arg(&n_heads),
        arg(&head_dim),
        arg(&dims),
        arg(&pos_offset),
        arg(&theta_scale),
        arg(&neox),
    ];
    MODULE.launch(&dev, "rope", grid_for(work, 256), (256, 1, 1), &mut a)
}

/// A layer's rope and KV-cache store in one launch (kernels/rope.cu
/// `rope_kv`): `q` `[seq, n_heads, head_dim]` roped in place, `k` roped
/// into `kc` and `v` copied into `vc` (`[seq, n_kv_heads, head_dim]` views
/// of the cache at the step's first position). With `at = Some((pos_ptr,
/// kc_row, vc_row))` the position is read on the device (an i64) and the
/// cache views move by that many rows of `kc_row` / `vc_row` elements (a
/// decode graph's replay). Bit-identical to [`rope`] on q and k followed by
/// copying k and v into the cache.
pub(crate) fn rope_kv(
    (q, k, v): (&Tensor, &Tensor, &Tensor),
    (kc, vc): (&Tensor, &Tensor),
    p: &Rope,
    at: Option<(u64, usize, usize)>,
) -> Result<()> {
    let (dev, qptr) = dev_ptr(OP, q)?;
    let (kptr, vptr) = (ptr_on(OP, &dev, k)?, ptr_on(OP, &dev, v)?);
    let (kcptr, vcptr) = (ptr_on(OP, &dev, kc)?, ptr_on(OP, &dev, vc)?);
    let (sq, sk, sv) = (
        Strided::of(OP, q)?,
        Strided::of(OP, k)?,
        Strided::of(OP, v)?,
    );
    let (skc, svc) = (Strided::of(OP, kc)?, Strided::of(OP, vc)?);
    if k.shape() != kc.shape() || v.shape() != vc.shape() || k.shape() != v.shape() {
        crate::bail!(
            OP,
            "k {:?}, v {:?} and their cache rows {:?}, {:?} must have one shape",
            k.shape(),
            v.shape(),
            kc.shape(),
            vc.shape()
        );
    }
    let (seq, n_heads, n_kv, head_dim) = (q.dim(0), q.dim(1), k.dim(1), q.dim(2));
    let (pos_ptr, kc_row, vc_row) =
        at.map_or((0u64, 0i64, 0i64), |(p, a, b)| (p, a as i64, b as i64));
    let theta_scale = p.base.powf(-2.0 / p.dims as f32);
    let neox = i32::from(p.mode == RopeMode::Neox);
    let per_head = p.dims / 2 + head_dim - p.dims;
    let work = seq * ((n_heads + n_kv) * per_head + n_kv * head_dim);
    let (seq, n_heads, n_kv, hd, dims) = (
        seq as i32,
        n_heads as i32,
        n_kv as i32,
        head_dim as i32,
        p.dims as i32,
    );
    let pos_offset = p.pos_offset as i64;
    let mut a = [
        arg(&qptr),
        arg(&sq),
        arg(&kptr),
        arg(&sk),
        arg(&vptr),
        arg(&sv),
        arg(&kcptr),
        arg(&skc),
        arg(&vcptr),
        arg(&svc),
        arg(&seq),
        arg(&n_heads),
        arg(&n_kv),
        arg(&hd),
        arg(&dims),
        arg(&pos_offset),
        arg(&theta_scale),
        arg(&neox),
        arg(&pos_ptr),
        arg(&kc_row),
        arg(&vc_row),
    ];
    MODULE.launch(&dev, "rope_kv", grid_for(work, 256), (256, 1, 1), &mut a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Device;
    use crate::ops::copy::copy;
    use crate::optest::Rng;
    use crate::tensor::DType;

    /// `rope_kv` gives the bits of `rope` on q and k followed by copying k
    /// and v into an f16 cache: both modes, a partial rotation (dims <
    /// head_dim), a prompt of several rows and a decode row, the position
    /// given on the host and read on the device. Prints SKIP without a GPU.
    #[test]
    fn rope_kv_matches_rope_then_copy() {
        let Some(dev) = crate::cuda::default_device() else {
            println!("SKIP rope_kv: no CUDA device");
            return;
        };
        let gpu = Device::Cuda(dev.clone());
        let (heads, kv_heads, hd, ctx) = (6, 2, 40, 32);
        let mut rng = Rng::new(5);
        let mut rand = |shape: &[usize]| {
            let n = shape.iter().product();
            Tensor::from_f32(&rng.vec(n), shape)
                .and_then(|t| t.to_device(&gpu))
                .unwrap()
        };
        for (mode, dims, seq, pos, device_pos) in [
            (RopeMode::Neox, 40, 5, 3, false),
            (RopeMode::Interleaved, 32, 1, 17, false),
            (RopeMode::Neox, 32, 1, 29, true),
            (RopeMode::Interleaved, 40, 1, 0, true),
        ] {
            let p = Rope {
                mode,
                base: 10000.0,
                dims,
                pos_offset: pos,
            };
            let q = rand(&[seq, heads, hd]);
            let (k, v) = (rand(&[seq, kv_heads, hd]), rand(&[seq, kv_heads, hd]));
            let cache = || Tensor::zeros(&[ctx, kv_heads, hd], DType::F16, &gpu).unwrap();
            // Expected: the separate ops on copies.
            let (q1, k1) = (rand(&[seq, heads, hd]), rand(&[seq, kv_heads, hd]));
            copy(&q, &q1).unwrap();
            copy(&k, &k1).unwrap();
            let (kc1, vc1) = (cache(), cache());
            rope(&q1, &p, &q1).unwrap();
            rope(&k1, &p, &k1).unwrap();
            copy(&k1, &kc1.narrow(0, pos, seq).unwrap()).unwrap();
            copy(&v, &vc1.narrow(0, pos, seq).unwrap()).unwrap();
            // Fused.
            let (kc2, vc2) = (cache(), cache());
            let at_dev = dev.upload(&(pos as i64).to_le_bytes()).unwrap();
            if device_pos {
                let rows = (
                    &kc2.narrow(0, 0, seq).unwrap(),
                    &vc2.narrow(0, 0, seq).unwrap(),
                );
                let at = Some((at_dev.ptr(), kc2.strides()[0], vc2.strides()[0]));
                let p0 = Rope { pos_offset: 0, ..p };
                rope_kv((&q, &k, &v), rows, &p0, at).unwrap();
            } else {
                let rows = (
                    &kc2.narrow(0, pos, seq).unwrap(),
                    &vc2.narrow(0, pos, seq).unwrap(),
                );
                rope_kv((&q, &k, &v), rows, &p, None).unwrap();
            }
            for (name, a, b) in [
                ("q", &q1, &q),
                ("k cache", &kc1, &kc2),
                ("v cache", &vc1, &vc2),
            ] {
                let (a, b) = (a.to_vec_f32().unwrap(), b.to_vec_f32().unwrap());
                let differ = a
                    .iter()
                    .zip(&b)
                    .filter(|(x, y)| x.to_bits() != y.to_bits())
                    .count();
                assert_eq!(
                    differ, 0,
                    "{mode:?} dims {dims} seq {seq} pos {pos}: {name}"
                );
            }
            println!(
                "{mode:?} dims {dims} seq {seq} pos {pos} (on the device: {device_pos}): bit-equal"
            );
        }
    }
}
