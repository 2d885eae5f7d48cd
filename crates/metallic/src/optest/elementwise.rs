//! Elementwise op cases: add and mul with every broadcast pattern, silu,
//! scale and swiglu; contiguous, padded and transposed inputs and outputs;
//! every float dtype in and out; add in place (out = a).

use super::views::{check_untouched, poisoned, random, shape_str, Placement};
use super::{float_budget, OpCase, Rng, Run, Target};
use crate::error::Result;
use crate::ops::elementwise::{self as ew, Binary, Unary};
use crate::tensor::{DType, Tensor};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Binary(Binary),
    Unary(Unary),
    Swiglu,
}

/// One operand: shape, placement in storage, dtype.
#[derive(Debug, Clone)]
pub struct Arg {
    pub shape: Vec<usize>,
    pub place: Placement,
    pub dtype: DType,
}

impl Arg {
    fn new(shape: &[usize], place: Placement, dtype: DType) -> Arg {
        Arg {
            shape: shape.to_vec(),
            place,
            dtype,
        }
    }

    fn describe(&self) -> String {
        format!(
            "{}({},{})",
            shape_str(&self.shape),
            self.dtype,
            self.place.short()
        )
    }
}

#[derive(Debug, Clone)]
pub struct ElementwiseCase {
    pub kind: Kind,
    pub a: Arg,
    /// The second input (`b`, or `up` for swiglu); unused by unary ops.
    pub b: Arg,
    pub out: Arg,
    /// `out` is `a` itself (add only).
    pub in_place: bool,
    pub seed: u64,
}

impl ElementwiseCase {
    fn inputs(&self) -> Result<(Tensor, Option<Tensor>)> {
        let mut rng = Rng::new(self.seed);
        // Wide enough to reach both tails of the sigmoid.
        let amp = if matches!(self.kind, Kind::Binary(_)) {
            1.0
        } else {
            6.0
        };
        let a = random(&self.a.shape, self.a.dtype, self.a.place, amp, &mut rng)?;
        let b = match self.kind {
            Kind::Unary(_) => None,
            _ => Some(random(
                &self.b.shape,
                self.b.dtype,
                self.b.place,
                1.0,
                &mut rng,
            )?),
        };
        Ok((a, b))
    }
}

impl OpCase for ElementwiseCase {
    fn op(&self) -> &'static str {
        match self.kind {
            Kind::Binary(b) => b.name(),
            Kind::Unary(u) => u.name(),
            Kind::Swiglu => "swiglu",
        }
    }

    fn describe(&self) -> String {
        let mut s = format!("a={}", self.a.describe());
        if !matches!(self.kind, Kind::Unary(_)) {
            s += &format!(" b={}", self.b.describe());
        }
        if self.in_place {
            s += " out=a (in place)";
        } else {
            s += &format!(" out={}", self.out.describe());
        }
        if let Kind::Unary(Unary::Scale(v)) = self.kind {
            s += &format!(" s={v}");
        }
        s
    }

    fn seed(&self) -> u64 {
        self.seed
    }

    fn budget(&self) -> f64 {
        // Inputs enter the reference already rounded to their dtype: only the
        // output's rounding remains.
        float_budget(self.out.dtype)
    }

    fn reference(&self) -> Result<Vec<f32>> {
        let (a, b) = self.inputs()?;
        let av = a.to_vec_f32()?;
        Ok(match self.kind {
            Kind::Binary(op) => {
                let bv = b.expect("binary has b").to_vec_f32()?;
                ew::reference_binary(
                    op,
                    (&av, &self.a.shape),
                    (&bv, &self.b.shape),
                    &self.out.shape,
                )
            }
            Kind::Unary(op) => ew::reference_unary(op, &av),
            Kind::Swiglu => ew::reference_swiglu(&av, &b.expect("swiglu has up").to_vec_f32()?),
        })
    }

    fn run(&self, target: &Target) -> Result<Run> {
        let (a, b) = self.inputs()?;
        let dev = &target.device;
        let a = a.to_device(dev)?;
        let b = b.map(|b| b.to_device(dev)).transpose()?;
        let out = if self.in_place {
            a.clone()
        } else {
            poisoned(&self.out.shape, self.out.dtype, self.out.place)?.to_device(dev)?
        };
        match self.kind {
            Kind::Binary(Binary::Add) => ew::add(&a, b.as_ref().expect("b"), &out)?,
            Kind::Binary(Binary::Mul) => ew::mul(&a, b.as_ref().expect("b"), &out)?,
            Kind::Unary(Unary::Silu) => ew::silu(&a, &out)?,
            Kind::Unary(Unary::Scale(s)) => ew::scale(&a, s, &out)?,
            Kind::Swiglu => ew::swiglu(&a, b.as_ref().expect("up"), &out)?,
        }
        check_untouched(&out)?;
        Ok(Run::Output(out.to_vec_f32()?))
    }
}

pub fn cases() -> Vec<Box<dyn OpCase>> {
    let pl = |i: usize| Placement::ALL[i % 4];
    let dt = |i: usize| DType::FLOAT[i % 3];
    let mut v: Vec<ElementwiseCase> = Vec::new();
    let case = |kind, a: Arg, b: Arg, out: Arg| ElementwiseCase {
        kind,
        a,
        b,
        out,
        in_place: false,
        seed: 0,
    };
    // Broadcast patterns (a, b, out), placements and dtypes rotating so each
    // operand sees every placement and every dtype.
    let shapes: [(&[usize], &[usize], &[usize]); 8] = [
        (&[7, 33], &[7, 33], &[7, 33]),
        (&[5, 7, 33], &[33], &[5, 7, 33]),
        (&[7, 33], &[7, 1], &[7, 33]),
        (&[1, 33], &[7, 1], &[7, 33]),
        (&[3, 1, 5], &[4, 1], &[3, 4, 5]),
        (&[1], &[17, 65], &[17, 65]),
        (&[2, 1000], &[1000], &[2, 1000]),
        (&[1, 1], &[1], &[1, 1]),
    ];
    for op in [Binary::Add, Binary::Mul] {
        for (i, (sa, sb, so)) in shapes.iter().enumerate() {
            for j in 0..3 {
                let k = i + j;
                v.push(case(
                    Kind::Binary(op),
                    Arg::new(sa, pl(k), dt(k)),
                    Arg::new(sb, pl(k + 1), dt(k + 1)),
                    Arg::new(so, pl(k + 2), dt(k + 2)),
                ));
            }
        }
    }
    // add in place (the residual add), every dtype and placement of out = a.
    for d in DType::FLOAT {
        for p in Placement::ALL {
            let mut c = case(
                Kind::Binary(Binary::Add),
                Arg::new(&[9, 65], p, d),
                Arg::new(&[65], Placement::Padded, DType::F32),
                Arg::new(&[9, 65], p, d),
            );
            c.in_place = true;
            v.push(c);
            let mut c = case(
                Kind::Binary(Binary::Add),
                Arg::new(&[3, 5, 17], p, d),
                Arg::new(&[3, 5, 17], Placement::Transposed, d),
                Arg::new(&[3, 5, 17], p, d),
            );
            c.in_place = true;
            v.push(c);
        }
    }
    // One-input ops and swiglu: odd sizes, every placement and dtype pairing.
    let shapes: [&[usize]; 5] = [&[1], &[7, 33], &[3, 5, 17], &[4099], &[2, 1, 65]];
    let kinds = [
        Kind::Unary(Unary::Silu),
        Kind::Unary(Unary::Scale(0.5)),
        Kind::Unary(Unary::Scale(-3.0)),
        Kind::Unary(Unary::Scale(0.0)),
        Kind::Swiglu,
    ];
    for (ki, kind) in kinds.into_iter().enumerate() {
        for (i, s) in shapes.iter().enumerate() {
            for j in 0..3 {
                let k = ki + i + j;
                v.push(case(
                    kind,
                    Arg::new(s, pl(k), dt(k)),
                    Arg::new(s, pl(k + 3), dt(k + 2)),
                    Arg::new(s, pl(k + 1), dt(k + 1)),
                ));
            }
        }
    }
    v.into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            c.seed = 2000 + i as u64;
            Box::new(c) as Box<dyn OpCase>
        })
        .collect()
}
