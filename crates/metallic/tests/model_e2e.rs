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

fn greedy_matches_llama_cpp(model_file: &str, golden: &str) {
    let Some((model, tok)) = load(model_file) else { return };
    let g = common::golden(golden);
    let n_ctx = g["params"]["n_ctx"].as_u64().unwrap() as usize;
    let cases = g["cases"].as_array().unwrap();
    assert!(cases.len() >= 3);
    for case in cases {
        let prompt = case["prompt"].as_str().unwrap();
        let want_prompt = common::ids(&case["prompt_ids"]);
        assert_eq!(tok.encode(prompt, false).unwrap(), want_prompt, "prompt ids for {prompt:?}");
        let want = common::ids(&case["generated_ids"]);
        let mut state = model.new_state(n_ctx).unwrap();
        let mut logits = model.forward(&mut state, &want_prompt, Logits::Last).unwrap().to_vec_f32().unwrap();
        let mut got = Vec::new();
        for _ in 0..want.len() {
            let id = argmax(&logits);
            got.push(id);
            logits = model.forward(&mut state, &[id], Logits::Last).unwrap().to_vec_f32().unwrap();
        }
        println!("{prompt:?} -> {:?}", tok.decode(&got));
        assert_eq!(got, want, "greedy continuation of {prompt:?}: ours {:?}, llama.cpp {:?}", tok.decode(&got), tok.decode(&want));
    }
}

#[test]
fn qwen_greedy_matches_llama_cpp() {
    greedy_matches_llama_cpp(common::QWEN, "qwen2.5-0.5b-q4_k_m.greedy.json");
}

#[test]
fn smollm_greedy_matches_llama_cpp() {
    greedy_matches_llama_cpp(common::SMOLLM, "smollm2-135m-q4_1.greedy.json");
}

/// Top-1 agreement on >= 98% of positions and a bounded mean KL(ref || ours),
/// the KL restricted to llama.cpp's top-20 tokens at each position (they
/// carry nearly all the probability mass).
fn teacher_forced_matches_llama_cpp(model_file: &str, golden: &str, kl_bound: f64) {
    let Some((model, _tok)) = load(model_file) else { return };
    let g = common::golden(golden);
    let tokens = common::ids(&g["tokens"]);
    let positions = g["positions"].as_array().unwrap();
    assert!(tokens.len() >= 256);
    let mut state = model.new_state(tokens.len()).unwrap();
    let logits = model.forward(&mut state, &tokens, Logits::All).unwrap().to_vec_f32().unwrap();
    let vocab = model.cfg.vocab;
    let (mut agree, mut kl_sum) = (0usize, 0.0f64);
    for (i, pos) in positions.iter().enumerate() {
        let row = &logits[i * vocab..(i + 1) * vocab];
        if argmax(row) as u64 == pos["top1"].as_u64().unwrap() {
            agree += 1;
        }
        for pair in pos["top"].as_array().unwrap() {
            let (id, lp_ref) = (pair[0].as_u64().unwrap() as usize, pair[1].as_f64().unwrap());
            kl_sum += lp_ref.exp() * (lp_ref - log_softmax_at(row, id));
        }
    }
    let n = positions.len();
    let top1 = agree as f64 / n as f64;
    let kl = kl_sum / n as f64;
    println!("{model_file}: top-1 agreement {:.2}% over {n} positions, mean KL(top-20) {kl:.5}", 100.0 * top1);
    assert!(top1 >= 0.98, "top-1 agreement {:.2}% < 98%", 100.0 * top1);
    assert!(kl.abs() <= kl_bound, "mean KL {kl:.5} exceeds {kl_bound}");
}

#[test]
fn qwen_teacher_forced_matches_llama_cpp() {
    teacher_forced_matches_llama_cpp(common::QWEN, "qwen2.5-0.5b-q4_k_m.teacher_forced.json", 0.01);
}
