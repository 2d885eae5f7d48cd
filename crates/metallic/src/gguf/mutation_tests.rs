//! Mutation fuzzing of a small valid file, bounded in time so that it runs in
//! the normal test suite: bit flips, byte and word overwrites with boundary
//! values, truncations, inserted and deleted garbage. Every mutant must parse
//! or fail with a typed error; none may panic. (Longer runs: `fuzz/`.)

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use super::tests::sample_writer;
use super::*;

/// How long the in-suite fuzz runs.
const BUDGET: Duration = Duration::from_millis(2500);

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING_U64: [u64; 10] = [
    0,
    1,
    7,
    32,
    0xFF,
    0xFFFF_FFFF,
    1 << 32,
    i64::MAX as u64,
    u64::MAX,
    u64::MAX - 31,
];

fn mutate(base: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut m = base.to_vec();
    // One to four mutations per mutant.
    for _ in 0..1 + rng.below(4) {
        let len = m.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                m[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                m[i] = [0, 1, 0x7F, 0x80, 0xFF, rng.next() as u8][rng.below(6)];
            }
            2 if len >= 8 => {
                // Overwrite a (possibly unaligned) u32 or u64 with a boundary
                // value: counts, lengths, type ids, dims and offsets.
                let v = INTERESTING_U64[rng.below(INTERESTING_U64.len())];
                let width = if rng.below(2) == 0 { 4 } else { 8 };
                let i = rng.below(len - width + 1);
                m[i..i + width].copy_from_slice(&v.to_le_bytes()[..width]);
            }
            3 => m.truncate(rng.below(len + 1)),
            4 => {
                let i = rng.below(len + 1);
                let garbage: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
                m.splice(i..i, garbage);
            }
            5 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below(16);
                m.drain(i..(i + n).min(len));
            }
            _ => {
                // Leave the header and metadata alone, hit the tensor infos.
                if len > 64 {
                    let i = len / 2 + rng.below(len / 2);
                    m[i] = rng.next() as u8;
                }
            }
        }
    }
    m
}

/// Everything a caller might do with a file that opened.
fn exercise(bytes: Vec<u8>) -> Result<(), GgufError> {
    let f = GgufFile::from_bytes(bytes)?;
    for (_, v) in f.metadata() {
        let _ = v.summary(4);
    }
    let _ = f.get_str("general.architecture");
    let _ = f.get_string_array("t.strings");
    for info in f.tensors() {
        let t = f.tensor(&info.name)?;
        if info.elem_count() <= 1 << 16 {
            let _ = t.to_vec_f32();
        }
    }
    Ok(())
}

#[test]
fn mutation_fuzz_never_panics() {
    let base = sample_writer(32).to_bytes();
    exercise(base.clone()).expect("the base file is valid");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let start = Instant::now();
    let (mut tried, mut valid, mut panics) = (0usize, 0usize, Vec::new());
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    while start.elapsed() < BUDGET && tried < 2_000_000 {
        let m = mutate(&base, &mut rng);
        tried += 1;
        match catch_unwind(AssertUnwindSafe(|| exercise(m.clone()))) {
            Ok(Ok(())) => valid += 1,
            Ok(Err(e)) => {
                let name = format!("{e:?}");
                let kind = name.split([' ', '{', '(']).next().unwrap_or("").to_string();
                *kinds.entry(kind).or_default() += 1;
            }
            Err(_) => panics.push(m),
        }
    }
    println!(
        "gguf mutation fuzz: {tried} mutants in {:.1} s: {valid} still valid, {} typed errors, {} panics",
        start.elapsed().as_secs_f64(),
        tried - valid - panics.len(),
        panics.len()
    );
    println!("gguf mutation fuzz: errors by variant: {kinds:?}");
    assert!(tried > 1000, "the fuzz ran only {tried} mutants");
    assert!(
        panics.is_empty(),
        "{} mutants panicked; first ({} bytes): {:02x?}",
        panics.len(),
        panics[0].len(),
        panics[0]
    );
}
