use super::*;

/// Only temperature 1 and the filters named; no penalties.
fn plain() -> SamplingParams {
    SamplingParams {
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        seed: 7,
        ..SamplingParams::default()
    }
}

/// Which tokens a sampler ever picks in `n` draws.
fn support(params: SamplingParams, logits: &[f32], n: usize) -> Vec<u32> {
    let mut s = Sampler::new(params).unwrap();
    let mut seen: Vec<u32> = (0..n).map(|_| s.sample(logits, &[])).collect();
    seen.sort_unstable();
    seen.dedup();
    seen
}

fn softmax(logits: &[f32], temp: f32) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = logits
        .iter()
        .map(|&l| ((l as f64 - max) / temp as f64).exp())
        .collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|x| x / sum).collect()
}

#[test]
fn defaults_are_llama_cpp_defaults_and_valid() {
    let p = SamplingParams::default();
    assert_eq!(
        (p.temperature, p.top_k, p.top_p, p.min_p),
        (0.8, 40, 0.95, 0.05)
    );
    assert_eq!((p.repeat_penalty, p.repeat_last_n), (1.0, 64));
    p.validate().unwrap();
    SamplingParams::greedy().validate().unwrap();
}

#[test]
fn validate_rejects_out_of_range_and_nan() {
    let cases: Vec<(&str, SamplingParams)> = vec![
        (
            "temperature",
            SamplingParams {
                temperature: -0.1,
                ..plain()
            },
        ),
        (
            "temperature",
            SamplingParams {
                temperature: f32::NAN,
                ..plain()
            },
        ),
        (
            "top_p",
            SamplingParams {
                top_p: 0.0,
                ..plain()
            },
        ),
        (
            "top_p",
            SamplingParams {
                top_p: 1.5,
                ..plain()
            },
        ),
        (
            "min_p",
            SamplingParams {
                min_p: -0.1,
                ..plain()
            },
        ),
        (
            "min_p",
            SamplingParams {
                min_p: 1.1,
                ..plain()
            },
        ),
        (
            "repeat_penalty",
            SamplingParams {
                repeat_penalty: 0.0,
                ..plain()
            },
        ),
        (
            "presence_penalty",
            SamplingParams {
                presence_penalty: f32::NAN,
                ..plain()
            },
        ),
        (
            "frequency_penalty",
            SamplingParams {
                frequency_penalty: f32::INFINITY,
                ..plain()
            },
        ),
    ];
    for (name, p) in cases {
        match Sampler::new(p.clone()) {
            Err(Error::Sampling(msg)) => assert!(msg.contains(name), "{name}: {msg}"),
            other => panic!("{p:?} gave {other:?}"),
        }
    }
}

#[test]
fn greedy_picks_argmax_lowest_id_on_ties() {
    let mut s = Sampler::new(SamplingParams::greedy()).unwrap();
    assert_eq!(s.sample(&[0.1, 2.0, -1.0, 1.9], &[]), 1);
    assert_eq!(s.sample(&[1.0, 3.0, 3.0, 2.0], &[]), 1);
    assert_eq!(s.sample(&[f32::NAN, 0.5, f32::NAN], &[]), 1);
    assert_eq!(s.sample(&[], &[]), 0);
    assert_eq!(s.sample(&[f32::NEG_INFINITY; 3], &[]), 0);
}

#[test]
fn top_k_one_equals_greedy() {
    let mut logits: Vec<f32> = (0..1000)
        .map(|i| ((i * 7919) % 1000) as f32 * 0.01)
        .collect();
    let mut greedy = Sampler::new(SamplingParams::greedy()).unwrap();
    let mut k1 = Sampler::new(SamplingParams {
        top_k: 1,
        ..SamplingParams::default()
    })
    .unwrap();
    for step in 0..50 {
        logits[step * 13 % 1000] += 20.0;
        assert_eq!(k1.sample(&logits, &[]), greedy.sample(&logits, &[]));
    }
}

#[test]
fn same_seed_same_sequence() {
    let logits: Vec<f32> = (0..500).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
    let run = |seed| {
        let mut s = Sampler::new(SamplingParams {
            seed,
            ..SamplingParams::default()
        })
        .unwrap();
        let mut hist = Vec::new();
        for _ in 0..100 {
            let t = s.sample(&logits, &hist);
            hist.push(t);
        }
        hist
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn top_p_keeps_smallest_set_reaching_p() {
    // Probabilities about 0.6, 0.25, 0.1, 0.05.
    let logits = [0.6f32.ln(), 0.25f32.ln(), 0.1f32.ln(), 0.05f32.ln()];
    let top_p = |p| {
        support(
            SamplingParams {
                top_p: p,
                ..plain()
            },
            &logits,
            3000,
        )
    };
    assert_eq!(top_p(0.5), vec![0]);
    assert_eq!(top_p(0.8), vec![0, 1]);
    assert_eq!(top_p(0.9), vec![0, 1, 2]);
    assert_eq!(top_p(1.0), vec![0, 1, 2, 3]);
}

#[test]
fn min_p_drops_tokens_below_fraction_of_best() {
    // Relative to the best: 1, 0.5, 0.2, 0.05.
    let logits = [0.0f32, 0.5f32.ln(), 0.2f32.ln(), 0.05f32.ln()];
    let min_p = |p| {
        support(
            SamplingParams {
                min_p: p,
                ..plain()
            },
            &logits,
            5000,
        )
    };
    assert_eq!(min_p(0.6), vec![0]);
    assert_eq!(min_p(0.3), vec![0, 1]);
    assert_eq!(min_p(0.1), vec![0, 1, 2]);
    assert_eq!(min_p(0.0), vec![0, 1, 2, 3]);
}

#[test]
fn top_k_keeps_k_largest() {
    let logits = [1.0, 3.0, 2.0, 0.5, 2.5];
    let top_k = |k| {
        support(
            SamplingParams {
                top_k: k,
                ..plain()
            },
            &logits,
            3000,
        )
    };
    assert_eq!(top_k(2), vec![1, 4]);
    assert_eq!(top_k(3), vec![1, 2, 4]);
}

#[test]
fn repeat_penalty_divides_positive_and_multiplies_negative_logits() {
    let p = SamplingParams {
        repeat_penalty: 2.0,
        repeat_last_n: 3,
        ..SamplingParams::greedy()
    };
    let mut s = Sampler::new(p).unwrap();
    // Token 0 (4.0 -> 2.0) loses to token 1 (3.0) once it is recent.
    assert_eq!(s.sample(&[4.0, 3.0, -1.0], &[]), 0);
    assert_eq!(s.sample(&[4.0, 3.0, -1.0], &[0]), 1);
    // Only the last 3 tokens count: 0 is out of the window again.
    assert_eq!(s.sample(&[4.0, 3.0, -1.0], &[0, 2, 2, 2]), 0);
    // A negative logit moves away from zero: -1.0 -> -2.0 loses to -1.5.
    assert_eq!(s.sample(&[-1.0, -1.5, -3.0], &[0]), 1);
}

#[test]
fn presence_and_frequency_penalties_subtract() {
    let greedy_with = |presence, frequency| {
        Sampler::new(SamplingParams {
            presence_penalty: presence,
            frequency_penalty: frequency,
            ..SamplingParams::greedy()
        })
        .unwrap()
    };
    let logits = [5.0, 4.0, 3.5];
    // Token 0 seen three times, token 1 once.
    let hist = [0, 0, 0, 1];
    // Presence: 5-1.5=3.5, 4-1.5=2.5 -> tie 0 vs 2 at 3.5, lowest id wins.
    assert_eq!(greedy_with(1.5, 0.0).sample(&logits, &hist), 0);
    assert_eq!(greedy_with(1.6, 0.0).sample(&logits, &hist), 2);
    // Frequency 0.4: 3.8 > 3.6 > 3.5 -> 0; at 0.6: 3.2 < 3.4 < 3.5 -> 2.
    assert_eq!(greedy_with(0.0, 0.4).sample(&logits, &hist), 0);
    assert_eq!(greedy_with(0.0, 0.6).sample(&logits, &hist), 2);
    // Ids past the vocabulary in the history are ignored.
    assert_eq!(greedy_with(1.0, 1.0).sample(&logits, &[99]), 0);
}

#[test]
fn draw_frequencies_match_softmax() {
    let logits = [1.0f32, 2.0, 0.5, 3.0, -1.0, 2.5];
    for temp in [1.0f32, 0.5, 2.0] {
        let mut s = Sampler::new(SamplingParams {
            temperature: temp,
            seed: 1234,
            ..plain()
        })
        .unwrap();
        let n = 200_000;
        let mut counts = [0usize; 6];
        for _ in 0..n {
            counts[s.sample(&logits, &[]) as usize] += 1;
        }
        for (i, p) in softmax(&logits, temp).iter().enumerate() {
            let f = counts[i] as f64 / n as f64;
            // 5 standard deviations of a binomial proportion.
            let tol = 5.0 * (p * (1.0 - p) / n as f64).sqrt() + 1e-4;
            assert!((f - p).abs() < tol, "temp {temp} token {i}: {f} vs {p}");
        }
    }
}
