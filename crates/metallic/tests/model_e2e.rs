//! The real models on the CPU against llama.cpp's outputs (tests/golden,
//! made by scripts/gen_reference.py): greedy continuations, teacher-forced
//! next-token distributions, perplexity.

mod common;

use metallic::gguf::GgufFile;
use metallic::model::{Logits, Model, ModelOptions};
use metallic::perplexity::log_softmax_at;
use metallic::tokenizer::Tokenizer;

fn load(name: &str) -> Option<(Model, Tokenizer)> {
    let path = common::model(name)?;
    let file = GgufFile::open(&path).expect("open model");
    let tok = Tokenizer::from_gguf(&file).expect("tokenizer");
    let model = Model::load(&file, ModelOptions::default(), &mut |_| {}).expect("load model");
    Some((model, tok))
}

fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as u32
}

/// Greedy continuations must equal llama.cpp's for at least `min_equal`
/// prompts, and where one differs it must be at a near-tie: llama.cpp's own
/// top-2 logit margin at the first differing step below `max_tie_margin`
/// (an error in the model would show as a divergence where llama.cpp is
/// sure). The step and the margin are printed.
fn greedy_matches_llama_cpp(model_file: &str, golden: &str, min_equal: usize, max_tie_margin: f64) {
    let Some((model, tok)) = load(model_file) else {
        return;
    };
    let g = common::golden(golden);
    let n_ctx = g["params"]["n_ctx"].as_u64().unwrap() as usize;
    let cases = g["cases"].as_array().unwrap();
    let mut equal = 0;
    for case in cases {
        let prompt = case["prompt"].as_str().unwrap();
        let want_prompt = common::ids(&case["prompt_ids"]);
        assert_eq!(
            tok.encode(prompt, false).unwrap(),
            want_prompt,
            "prompt ids for {prompt:?}"
        );
        let want = common::ids(&case["generated_ids"]);
        let margins: Vec<f64> = case["top2_margin"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_f64().unwrap())
            .collect();
        let mut state = model.new_state(n_ctx).unwrap();
        let mut logits = model
            .forward(&mut state, &want_prompt, Logits::Last)
            .unwrap()
            .to_vec_f32()
            .unwrap();
        let mut got = Vec::new();
        for _ in 0..want.len() {
            let id = argmax(&logits);
            got.push(id);
            logits = model
                .forward(&mut state, &[id], Logits::Last)
                .unwrap()
                .to_vec_f32()
                .unwrap();
        }
        println!("{prompt:?} -> {:?}", tok.decode(&got));
        match got.iter().zip(&want).position(|(a, b)| a != b) {
            None => equal += 1,
            Some(i) => {
                assert!(
                    margins[i] < max_tie_margin,
                    "{prompt:?} diverges at step {i} where llama.cpp's top-2 margin is {:.3}",
                    margins[i]
                );
                println!(
                    "  diverges at step {i}: ours {} vs llama.cpp {} (llama.cpp top-2 margin {:.4}); llama.cpp: {:?}",
                    got[i],
                    want[i],
                    margins[i],
                    tok.decode(&want)
                );
            }
        }
    }
    println!(
        "{model_file}: {equal}/{} greedy continuations equal",
        cases.len()
    );
    assert!(
        equal >= min_equal,
        "only {equal} of {} continuations equal",
        cases.len()
    );
}

/// How far a top-2 margin moves with float order alone, in logit units:
/// our two CPU kernel layouts (`METALLIC_CPU_REPACK=0` and `1`, each with
/// ggml's exact integer block sums, only the f32 order of the block sums
/// differing), teacher-forced over the golden text (examples/dump_logits),
/// move the top-2 margin by up to 0.40 on Qwen2.5 (99th percentile 0.26) and
/// 0.71 on SmolLM2 (99th percentile 0.40). A divergence at a margin below
/// that is rounding, not a bug; an error in the model moves margins by whole
/// logits.
const QWEN_TIE_MARGIN: f64 = 0.4;
const SMOLLM_TIE_MARGIN: f64 = 0.75;

#[test]
fn qwen_greedy_matches_llama_cpp() {
    greedy_matches_llama_cpp(
        common::QWEN,
        "qwen2.5-0.5b-q4_k_m.greedy.json",
        3,
        QWEN_TIE_MARGIN,
    );
}

#[test]
fn smollm_greedy_matches_llama_cpp() {
    greedy_matches_llama_cpp(
        common::SMOLLM,
        "smollm2-135m-q4_1.greedy.json",
        3,
        SMOLLM_TIE_MARGIN,
    );
}

/// Top-1 agreement and mean KL(ref || ours) against a reference's top-20
/// log-probabilities (the KL restricted to those 20 tokens at each position,
/// which hold nearly all the mass).
struct Agreement {
    top1: f64,
    kl: f64,
}

fn agreement(
    logits: &[f32],
    vocab: usize,
    positions: &[serde_json::Value],
    who: &str,
) -> Agreement {
    let (mut agree, mut kl_sum) = (0usize, 0.0f64);
    for (i, pos) in positions.iter().enumerate() {
        let row = &logits[i * vocab..(i + 1) * vocab];
        let top = pos["top"].as_array().unwrap();
        if argmax(row) as u64 == pos["top1"].as_u64().unwrap() {
            agree += 1;
        } else if who == "llama.cpp" {
            let margin = top[0][1].as_f64().unwrap() - top[1][1].as_f64().unwrap();
            println!(
                "  position {i}: ours {} vs {who} {} ({who} margin {margin:.4})",
                argmax(row),
                pos["top1"]
            );
        }
        for pair in top {
            let (id, lp_ref) = (
                pair[0].as_u64().unwrap() as usize,
                pair[1].as_f64().unwrap(),
            );
            kl_sum += lp_ref.exp() * (lp_ref - log_softmax_at(row, id));
        }
    }
    let n = positions.len() as f64;
    Agreement {
        top1: agree as f64 / n,
        kl: kl_sum / n,
    }
}

/// Teacher-forced next-token distributions over tests/golden/text_tf.txt
/// against llama.cpp (`<tag>.teacher_forced.json`) and against an exact
/// float64 forward pass of the same GGUF weights (`<tag>.exact.json`, from
/// scripts/exact_reference.py).
///
/// The bar is top-1 agreement with llama.cpp on >= 98% of positions.
/// Both engines quantize activations to 8 bits before every matmul, and on a
/// small model that noise alone moves some near-tied top-1s: llama.cpp agrees
/// with the exact model on 98.4% of Qwen's positions but only 97.4% of
/// SmolLM2's. No engine that differs from llama.cpp in rounding can agree
/// with it more often than the exact model does, save by luck; so the bar
/// here is 98%, or where the exact model itself stays below that, the exact
/// model's own agreement less half a point. Against the exact model we ask
/// for top-1 agreement within one point of llama.cpp's own and a KL bound.
///
/// How large that noise is was measured on SmolLM2: our two CPU kernel
/// layouts (row by row, and 16 weight rows per register, `packed.rs`), each
/// with exact integer block sums and only the f32 order of the block sums
/// differing, agree on just 97.05% of top-1s with each other. A rounding
/// difference of one ulp flips some activation's 8-bit rounding a layer
/// later, and the model carries that on; so a point of top-1 agreement
/// is within what float order alone moves.
fn teacher_forced_matches_llama_cpp(model_file: &str, tag: &str, kl_bound: f64) {
    let Some((model, _tok)) = load(model_file) else {
        return;
    };
    let g = common::golden(&format!("{tag}.teacher_forced.json"));
    let exact = common::golden(&format!("{tag}.exact.json"));
    let tokens = common::ids(&g["tokens"]);
    let positions = g["positions"].as_array().unwrap();
    let exact_positions = exact["positions"].as_array().unwrap();
    assert!(tokens.len() >= 256);
    assert_eq!(
        exact_positions.len(),
        positions.len(),
        "golden files out of step"
    );
    let mut state = model.new_state(tokens.len()).unwrap();
    let logits = model
        .forward(&mut state, &tokens, Logits::All)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let vocab = model.cfg.vocab;
    let n = positions.len();
    let vs_llama = agreement(&logits, vocab, positions, "llama.cpp");
    let vs_exact = agreement(&logits, vocab, exact_positions, "exact");
    let ceiling = positions
        .iter()
        .zip(exact_positions)
        .filter(|(a, b)| a["top1"] == b["top1"])
        .count() as f64
        / n as f64;
    let min_top1 = if ceiling >= 0.98 {
        0.98
    } else {
        ceiling - 0.005
    };
    println!(
        "{model_file}: over {n} positions, top-1 agreement with llama.cpp {:.2}% (bar {:.2}%; \
         the exact model's own {:.2}%), mean KL(llama.cpp || ours) {:.5}; with the exact model \
         {:.2}%, mean KL(exact || ours) {:.5}",
        100.0 * vs_llama.top1,
        100.0 * min_top1,
        100.0 * ceiling,
        vs_llama.kl,
        100.0 * vs_exact.top1,
        vs_exact.kl
    );
    assert!(
        vs_llama.top1 >= min_top1,
        "top-1 agreement with llama.cpp {:.2}% < {:.2}%",
        100.0 * vs_llama.top1,
        100.0 * min_top1
    );
    assert!(
        vs_llama.kl.abs() <= kl_bound,
        "mean KL vs llama.cpp {:.5} exceeds {kl_bound}",
        vs_llama.kl
    );
    // llama.cpp's own agreement with the exact model.
    let llama_vs_exact = ceiling;
    assert!(
        vs_exact.top1 >= llama_vs_exact - 0.01,
        "top-1 agreement with the exact model {:.2}% < llama.cpp's own {:.2}% less one point",
        100.0 * vs_exact.top1,
        100.0 * llama_vs_exact
    );
    assert!(
        vs_exact.kl.abs() <= kl_bound,
        "mean KL vs the exact model {:.5} exceeds {kl_bound}",
        vs_exact.kl
    );
}

#[test]
fn qwen_teacher_forced_matches_llama_cpp() {
    teacher_forced_matches_llama_cpp(common::QWEN, "qwen2.5-0.5b-q4_k_m", 0.002);
}

#[test]
fn smollm_teacher_forced_matches_llama_cpp() {
    teacher_forced_matches_llama_cpp(common::SMOLLM, "smollm2-135m-q4_1", 0.004);
}

/// Perplexity over tests/golden/ppl_text.txt with llama.cpp's convention,
/// within 1% of llama-perplexity's on the same text and context.
fn perplexity_matches_llama_cpp(model_file: &str, golden: &str) {
    let Some((model, tok)) = load(model_file) else {
        return;
    };
    let g = common::golden(golden);
    let n_ctx = g["params"]["n_ctx"].as_u64().unwrap() as usize;
    let want = g["llama_perplexity"]["final_ppl"].as_f64().unwrap();
    let text =
        std::fs::read_to_string(common::repo_root().join("tests/golden/ppl_text.txt")).unwrap();
    let tokens = tok.encode(&text, false).unwrap();
    assert_eq!(
        tokens.len() as u64,
        g["n_tokens"].as_u64().unwrap(),
        "token count"
    );
    let bos = if tok.add_bos() { tok.bos() } else { None };
    let r = metallic::perplexity::perplexity(&model, &tokens, n_ctx, bos, &mut |_, _| {}).unwrap();
    let rel = (r.ppl - want).abs() / want;
    println!(
        "{model_file}: PPL {:.4} +/- {:.4} (llama.cpp {want:.4}), {:.3}% apart over {} scored tokens",
        r.ppl,
        r.err,
        100.0 * rel,
        r.scored_tokens
    );
    assert!(
        rel < 0.01,
        "perplexity {:.4} is more than 1% from llama.cpp's {want:.4}",
        r.ppl
    );
}

#[test]
fn qwen_perplexity_matches_llama_cpp() {
    perplexity_matches_llama_cpp(common::QWEN, "qwen2.5-0.5b-q4_k_m.perplexity.json");
}

#[test]
fn smollm_perplexity_matches_llama_cpp() {
    perplexity_matches_llama_cpp(common::SMOLLM, "smollm2-135m-q4_1.perplexity.json");
}
