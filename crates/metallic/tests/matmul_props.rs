//! Property tests for `ops::matmul::matmul`: random shapes (1..40), transposes,
//! padded leading dimensions and offsets, batches (none, or 1..3 with each of
//! A and B dense, broadcast by stride 0 or missing its batch dimension),
//! alpha/beta, and every float dtype for A, B, C and D, on both CPU backends
//! (ours and the vendor's), against `ops::matmul::reference` by normalised MSE.

use metallic::ops::matmul::{matmul, reference, Activation, Matmul, MatmulBackend};
use metallic::optest::{float_budget, nmse, Rng};
use metallic::{DType, Tensor};
use proptest::prelude::*;

/// How one operand is stored.
#[derive(Debug, Clone, Copy)]
struct Placement {
    /// Stored transposed: the logical matrix is `stored.t()`.
    trans: bool,
    /// Extra elements per stored row (leading dimension = cols + pad).
    pad: usize,
    /// Elements skipped before the first matrix.
    offset: usize,
    dtype: DType,
}

/// How an operand spans the batch dimension of D.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Batch {
    /// One matrix per batch, with a gap of `pad` elements between matrices.
    Dense,
    /// One matrix for all batches (batch stride 0).
    Broadcast,
    /// No batch dimension (a rank-2 operand against a rank-3 D).
    Missing,
}

#[derive(Debug, Clone)]
struct Case {
    m: usize,
    n: usize,
    k: usize,
    /// 0: rank-2 operands; otherwise D is `[batch, m, n]`.
    batch: usize,
    a: Placement,
    b: Placement,
    d: Placement,
    a_batch: Batch,
    b_batch: Batch,
    alpha: f32,
    beta: f32,
    c_dtype: DType,
    seed: u64,
}

fn dtype() -> impl Strategy<Value = DType> {
    prop_oneof![Just(DType::F32), Just(DType::F16), Just(DType::BF16)]
}

fn placement() -> impl Strategy<Value = Placement> {
    (any::<bool>(), 0usize..4, 0usize..5, dtype()).prop_map(|(trans, pad, offset, dtype)| {
        Placement {
            trans,
            pad,
            offset,
            dtype,
        }
    })
}

fn batch_kind() -> impl Strategy<Value = Batch> {
    prop_oneof![
        Just(Batch::Dense),
        Just(Batch::Broadcast),
        Just(Batch::Missing)
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        (1usize..40, 1usize..40, 1usize..40, 0usize..4),
        (placement(), placement(), placement()),
        (batch_kind(), batch_kind()),
        (
            -2.0f32..2.0,
            prop_oneof![Just(0.0f32), Just(1.0f32), -2.0f32..2.0],
            dtype(),
        ),
        any::<u64>(),
    )
        .prop_map(
            |((m, n, k, batch), (a, b, d), (a_batch, b_batch), (alpha, beta, c_dtype), seed)| {
                Case {
                    m,
                    n,
                    k,
                    batch,
                    a,
                    b,
                    d: Placement { trans: false, ..d },
                    a_batch,
                    b_batch,
                    alpha,
                    beta,
                    c_dtype,
                    seed,
                }
            },
        )
}

/// A `[batch?, rows, cols]` view placed per `p` in a buffer filled by `fill`.
fn build(
    p: &Placement,
    batch: usize,
    kind: Batch,
    (rows, cols): (usize, usize),
    fill: &mut dyn FnMut(usize) -> Vec<f32>,
) -> Tensor {
    let (sr, sc) = if p.trans { (cols, rows) } else { (rows, cols) };
    let ld = sc + p.pad;
    let per_matrix = sr * ld + p.pad;
    let (nb, bstride) = match kind {
        _ if batch == 0 => (0, 0),
        Batch::Dense => (batch, per_matrix),
        Batch::Broadcast => (batch, 0),
        Batch::Missing => (0, 0),
    };
    let total = p.offset + bstride * nb.saturating_sub(1) + sr * ld;
    let base = Tensor::from_f32(&fill(total), &[total])
        .unwrap()
        .to_dtype(p.dtype)
        .unwrap();
    let view = if nb == 0 {
        base.as_strided(&[sr, sc], &[ld, 1], p.offset).unwrap()
    } else {
        base.as_strided(&[nb, sr, sc], &[bstride, ld, 1], p.offset)
            .unwrap()
    };
    if p.trans {
        view.t().unwrap()
    } else {
        view
    }
}

/// A view's logical values broadcast to `[batch.max(1), rows, cols]`.
fn values(t: &Tensor, batch: usize, rows: usize, cols: usize) -> Vec<f32> {
    let shape = if batch == 0 {
        vec![rows, cols]
    } else {
        vec![batch, rows, cols]
    };
    t.broadcast_as(&shape).unwrap().to_vec_f32().unwrap()
}

fn check(c: &Case) -> Result<(), TestCaseError> {
    let mut rng = Rng::new(c.seed);
    let mut random = |n: usize| rng.vec(n);
    let a = build(&c.a, c.batch, c.a_batch, (c.m, c.k), &mut random);
    let b = build(&c.b, c.batch, c.b_batch, (c.k, c.n), &mut random);
    let out_shape: Vec<usize> = if c.batch == 0 {
        vec![c.m, c.n]
    } else {
        vec![c.batch, c.m, c.n]
    };
    let nb = c.batch.max(1);
    let cm = (c.beta != 0.0).then(|| {
        Tensor::from_f32(&random(nb * c.m * c.n), &out_shape)
            .unwrap()
            .to_dtype(c.c_dtype)
            .unwrap()
    });
    let want = reference(
        &values(&a, c.batch, c.m, c.k),
        &values(&b, c.batch, c.k, c.n),
        cm.as_ref().map(|t| t.to_vec_f32().unwrap()).as_deref(),
        None,
        (nb, c.m, c.n, c.k),
        c.alpha,
        c.beta,
        Activation::None,
    );
    let mut dtypes = vec![c.a.dtype, c.b.dtype, c.d.dtype];
    if c.beta != 0.0 {
        dtypes.push(c.c_dtype);
    }
    let budget = dtypes.into_iter().map(float_budget).fold(0.0, f64::max);
    for backend in [MatmulBackend::Native, MatmulBackend::Vendor] {
        let d = build(&c.d, c.batch, Batch::Dense, (c.m, c.n), &mut |n| {
            vec![f32::NAN; n]
        });
        let p = Matmul {
            alpha: c.alpha,
            beta: c.beta,
            c: cm.as_ref(),
            backend,
            ..Default::default()
        };
        matmul(&a, &b, &d, &p).map_err(|e| TestCaseError::fail(format!("{backend:?}: {e}")))?;
        let got = d.to_vec_f32().unwrap();
        let err = nmse(&got, &want);
        prop_assert!(
            err <= budget,
            "{backend:?}: nmse {err:.3e} > budget {budget:.1e} for {c:?}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn matmul_matches_reference_on_both_cpu_backends(c in case()) {
        check(&c)?;
    }
}
