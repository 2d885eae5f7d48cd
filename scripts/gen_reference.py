#!/usr/bin/env python3
"""Generate llama.cpp golden files in tests/golden/ for metallic's tests.

How llama.cpp is reached
------------------------
scripts/build_llama_cpp.sh builds llama.cpp (vendored in the llama-cpp-python
0.3.36 sdist) as shared libraries + tools under third_party/. This script
drives that *same* build two ways, so no second (Python-extension) build is
needed:

* Through the sdist's pure-Python ctypes bindings (`llama_cpp/llama_cpp.py`),
  loaded with LLAMA_CPP_LIB_PATH=<dir containing libllama.so> (the loader looks
  for `$LLAMA_CPP_LIB_PATH/libllama.so`). We import that one module under a
  synthetic `llama_cpp` package so the package __init__ (which pulls in the
  high-level wrapper and its extra dependencies such as diskcache) never runs;
  only numpy is needed. Used for tokenization, greedy generation (argmax over
  the logits, which is exactly what llama.cpp's greedy sampler does),
  teacher-forced distributions and a per-chunk perplexity re-computation.
* Through the `llama-perplexity` tool for the official PPL numbers, and
  `llama-simple` as a cross-check of the greedy continuations (its greedy
  sampler output text must equal our argmax tokens detokenized).

Everything is deterministic: no sampling, 2 threads, seed 0 for the tools.

Usage
-----
    python3 scripts/gen_reference.py            # fetch/build if needed, regenerate all
    python3 scripts/gen_reference.py --only tok,greedy   # subset: tok,greedy,tf,ppl
    python3 scripts/gen_reference.py --models qwen      # qwen|smollm|all
"""
from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
SDIST_VERSION = "0.3.36"
SDIST_DIR = ROOT / "third_party" / f"llama_cpp_python-{SDIST_VERSION}"
BUILD_BIN = Path(os.environ.get("LLAMA_BUILD_DIR", ROOT / "third_party" / "llama.cpp-build-cpu")) / "bin"
N_THREADS = 2

MODELS = {
    "qwen": {
        "tag": "qwen2.5-0.5b-q4_k_m",
        "path": ROOT / "models" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        "sha256": "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    },
    "smollm": {
        "tag": "smollm2-135m-q4_1",
        "path": ROOT / "models" / "smollm2-135m-instruct-q4_1.gguf",
        "sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    },
}

# Strings chosen to hit the pre-tokenizer's edge cases: digit grouping,
# whitespace-run splitting, contractions, multi-byte UTF-8 and byte fallback.
TOKENIZER_STRINGS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "def add(a, b):\n    return a + b\n",
    "fn main() {\n    let v: Vec<u32> = (0..10).collect();\n    println!(\"{:?}\", v);\n}\n",
    "class Foo:\n\tdef bar(self):\n\t\tpass\n",
    "    leading four spaces",
    "trailing spaces   ",
    "a  b   c    d     e",
    "tabs\tand\t\ttabs",
    "line1\nline2\n\nline4\n\n\n",
    " \t \n \r\n mixed whitespace \n\t",
    " ",
    "\n",
    "  ",
    "1234567890",
    "3.14159265358979 and 2.718281828",
    "12345678901234567890123",
    "Prices: $1,234.56 or €99,99 (-12%)",
    "I'm sure you don't know what it's like; they'll say we've done it, he'd agree.",
    "IT'S LOUD AND I'M SHOUTING",
    "Punctuation!!! ...?? --- ;;; (([[{{}}]])) <=> !== ** // \\\\",
    "Café naïve façade résumé Ångström",
    "Straße über Größe",
    "日本語のテキストと中文文本，还有한국어도 있습니다。",
    "مرحبا بالعالم",
    "e\u0301 a\u0300 n\u0303 (combining marks)",
    "Emoji: 😀 👍🏽 👩‍👩‍👧‍👦 🇫🇷🇯🇵 ❤️",
    "<|im_start|> is not special without parse_special",
    "https://example.com/path?q=1&r=two#frag user@example.org",
    "x = [i**2 for i in range(10) if i % 2 == 0]  # squares",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
]

# ChatML is used by both models' templates.
CHAT_STRING = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\nWrite hello world in Rust.<|im_end|>\n"
    "<|im_start|>assistant\n"
)

GREEDY_PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time,",
    "fn main() {\n    let numbers = vec![3, 1, 4, 1, 5];\n",
    "The three primary colors are",
    "import numpy as np\n\n# compute the mean of a list\n",
    "Q: What is 12 times 7?\nA:",
    "The best way to learn a new language is",
    # Continuations a model is sure of at every step (sequences, a nursery
    # rhyme, a repeated code pattern): free text like the prompts above
    # meets a near-tie within 32 tokens, where float order alone may choose
    # either way (see tests/model_e2e.rs); these should never diverge.
    "1, 2, 3, 4, 5, 6, 7, 8,",
    "A B C D E F G H I J",
    "Monday, Tuesday, Wednesday,",
    "Twinkle, twinkle, little star,",
    "x = [0, 10, 20, 30, 40, 50,",
    "for i in range(10):\n    print(i)\nfor j in range(10):\n",
]
GREEDY_N = 32
GREEDY_CTX = 512

TF_TEXT = GOLDEN / "text_tf.txt"
TF_TOPK = 20
PPL_TEXT = GOLDEN / "ppl_text.txt"
PPL_CTX = 256


# --------------------------------------------------------------------------
# setup
# --------------------------------------------------------------------------
def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for blk in iter(lambda: f.read(1 << 20), b""):
            h.update(blk)
    return h.hexdigest()


def ensure_prereqs(which: list[str]) -> None:
    """Fetch models / build llama.cpp only when missing, so reruns are cheap."""
    for key in which:
        if not MODELS[key]["path"].exists():
            subprocess.run([str(ROOT / "scripts" / "fetch_models.sh"), key], check=True)
    need = ["libllama.so", "llama-perplexity", "llama-simple"]
    if not all((BUILD_BIN / n).exists() for n in need):
        subprocess.run([str(ROOT / "scripts" / "build_llama_cpp.sh")], check=True)


def llama_cpp_commit() -> str:
    # The sdist has no .git; its CHANGELOG names the vendored upstream commit.
    text = (SDIST_DIR / "CHANGELOG.md").read_text()
    m = re.search(rf"## \[{re.escape(SDIST_VERSION)}\].*?llama\.cpp@([0-9a-f]+)", text, re.S)
    return m.group(1) if m else "unknown"


def load_bindings():
    os.environ["LLAMA_CPP_LIB_PATH"] = str(BUILD_BIN)
    pkg = types.ModuleType("llama_cpp")
    pkg.__path__ = [str(SDIST_DIR / "llama_cpp")]
    sys.modules["llama_cpp"] = pkg
    import llama_cpp.llama_cpp as L  # noqa: E402

    # Silence llama.cpp's logging (it would otherwise flood stderr per load).
    global _LOG_CB
    _LOG_CB = L.llama_log_callback(lambda level, text, user: None)
    L.llama_log_set(_LOG_CB, ctypes.c_void_p(0))
    L.llama_backend_init()
    return L


# --------------------------------------------------------------------------
# thin wrapper over the C API
# --------------------------------------------------------------------------
class Model:
    def __init__(self, L, path: Path, n_ctx: int, n_batch: int | None = None):
        import numpy as np

        self.L, self.np = L, np
        mp = L.llama_model_default_params()
        self.model = L.llama_model_load_from_file(str(path).encode(), mp)
        assert self.model, f"failed to load {path}"
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        self.n_ctx = n_ctx
        cp = L.llama_context_default_params()
        cp.n_ctx = n_ctx
        # One ubatch for the whole prompt: the teacher-forced pass really is one pass.
        cp.n_batch = n_batch or n_ctx
        cp.n_ubatch = n_batch or n_ctx
        cp.n_threads = N_THREADS
        cp.n_threads_batch = N_THREADS
        # Flash attention off: the classic ggml path (Q and the probabilities
        # rounded to the F16 cache dtype, F32 accumulation), the semantics our
        # attention op implements; auto would pick the CPU flash-attention
        # kernel, which accumulates the output in F16.
        cp.flash_attn_type = 0
        self.ctx = L.llama_init_from_model(self.model, cp)
        assert self.ctx, "failed to create context"
        self.flash_attn_type = int(cp.flash_attn_type)

    def close(self):
        self.L.llama_free(self.ctx)
        self.L.llama_model_free(self.model)

    @property
    def add_bos(self) -> bool:
        return bool(self.L.llama_vocab_get_add_bos(self.vocab))

    @property
    def bos(self) -> int:
        return int(self.L.llama_vocab_bos(self.vocab))

    def meta(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(4096)
        n = self.L.llama_model_meta_val_str(self.model, key.encode(), buf, len(buf))
        return buf.value.decode("utf-8", "replace") if n >= 0 else None

    def tokenize(self, text: str, add_special: bool, parse_special: bool) -> list[int]:
        raw = text.encode("utf-8")
        cap = len(raw) + 16
        arr = (self.L.llama_token * cap)()
        n = self.L.llama_tokenize(self.vocab, raw, len(raw), arr, cap, add_special, parse_special)
        if n < 0:
            cap = -n
            arr = (self.L.llama_token * cap)()
            n = self.L.llama_tokenize(self.vocab, raw, len(raw), arr, cap, add_special, parse_special)
        return list(arr[:n])

    def piece(self, tok: int) -> bytes:
        buf = ctypes.create_string_buffer(256)
        n = self.L.llama_token_to_piece(self.vocab, tok, buf, len(buf), 0, True)
        return buf.raw[:n]

    def detok(self, toks: list[int]) -> str:
        return b"".join(self.piece(t) for t in toks).decode("utf-8", "replace")

    def clear(self):
        self.L.llama_memory_clear(self.L.llama_get_memory(self.ctx), True)

    def decode(self, toks: list[int], pos0: int, want_logits) -> "np.ndarray":
        """Decode toks at positions pos0.., seq 0; return logits rows for the
        positions where want_logits(i) is true, in order."""
        L = self.L
        n = len(toks)
        batch = L.llama_batch_init(n, 0, 1)
        try:
            n_out = 0
            for i, t in enumerate(toks):
                batch.token[i] = t
                batch.pos[i] = pos0 + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                w = bool(want_logits(i))
                batch.logits[i] = 1 if w else 0
                n_out += w
            batch.n_tokens = n
            rc = L.llama_decode(self.ctx, batch)
            assert rc == 0, f"llama_decode failed: {rc}"
            ptr = L.llama_get_logits(self.ctx)
            return self.np.ctypeslib.as_array(ptr, shape=(n_out, self.n_vocab)).copy()
        finally:
            L.llama_batch_free(batch)


def log_softmax(np, logits):
    x = logits.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


# --------------------------------------------------------------------------
# generators
# --------------------------------------------------------------------------
def common_header(key: str, m: Model, what: str, params: dict) -> dict:
    info = MODELS[key]
    return {
        "what": what,
        "model_file": info["path"].name,
        "model_sha256": info["sha256"],
        "reference": {
            "llama_cpp_commit": llama_cpp_commit(),
            "source": f"llama-cpp-python {SDIST_VERSION} sdist, vendor/llama.cpp",
            "build": "scripts/build_llama_cpp.sh (CPU, GGML_NATIVE=OFF, AVX512+VNNI+BF16, AMX off, Release)",
            "generator": "scripts/gen_reference.py",
        },
        "params": params,
        "vocab": {
            "n_vocab": m.n_vocab,
            "add_bos_default": m.add_bos,
            "bos_id": m.bos,
            "eos_id": int(m.L.llama_vocab_eos(m.vocab)),
            "tokenizer_pre": m.meta("tokenizer.ggml.pre"),
        },
    }


def gen_tokenizer(L, key: str) -> None:
    m = Model(L, MODELS[key]["path"], n_ctx=64)
    out = common_header(key, m, "tokenizer", {
        "api": "llama_tokenize(vocab, text, add_special, parse_special)",
        "ids": "add_special=true (model default BOS behaviour), parse_special=false",
        "ids_no_special": "add_special=false, parse_special=false",
    })
    cases = []
    for s in TOKENIZER_STRINGS:
        ids = m.tokenize(s, add_special=True, parse_special=False)
        plain = m.tokenize(s, add_special=False, parse_special=False)
        cases.append({
            "text": s,
            "ids": ids,
            "ids_no_special": plain,
            "bos_added": len(ids) == len(plain) + 1 and ids[0] == m.bos,
            "detok_roundtrip": m.detok(plain) == s,
        })
    out["cases"] = cases
    out["chat"] = {
        "text": CHAT_STRING,
        "ids_parse_special": m.tokenize(CHAT_STRING, add_special=True, parse_special=True),
        "ids_no_parse_special": m.tokenize(CHAT_STRING, add_special=True, parse_special=False),
    }
    m.close()
    write(f"{MODELS[key]['tag']}.tokenizer.json", out)


def run_llama_simple(key: str, prompt: str, n: int) -> str:
    # llama-simple: greedy sampler, prompt tokenized with add_special=true
    # (BOS only if the model adds one), prints prompt + generated text.
    r = subprocess.run(
        [str(BUILD_BIN / "llama-simple"), "-m", str(MODELS[key]["path"]), "-n", str(n), prompt],
        capture_output=True, text=True, timeout=600, errors="replace",
    )
    return r.stdout


def gen_greedy(L, key: str) -> None:
    np = __import__("numpy")
    m = Model(L, MODELS[key]["path"], n_ctx=GREEDY_CTX)
    out = common_header(key, m, "greedy", {
        "n_ctx": GREEDY_CTX, "n_predict": GREEDY_N, "n_threads": N_THREADS,
        "sampling": "argmax of logits (temperature 0, no repetition penalty)",
        "prompt_tokenization": "add_special=true (model default BOS), parse_special=false; raw text, no chat template",
        "eos": "generation does NOT stop at EOS/EOG: always exactly n_predict tokens",
        "decode": "prompt as one batch, then one token per llama_decode with KV cache",
        "top2_margin": "logit(top1) - logit(top2) at each step; tiny margins mark near-ties",
    })
    cases = []
    for prompt in GREEDY_PROMPTS:
        m.clear()
        ptoks = m.tokenize(prompt, add_special=True, parse_special=False)
        logits = m.decode(ptoks, 0, lambda i: i == len(ptoks) - 1)[0]
        gen, margins = [], []
        for step in range(GREEDY_N):
            order = np.argsort(-logits, kind="stable")
            nxt = int(np.argmax(logits))
            gen.append(nxt)
            margins.append(round(float(logits[order[0]] - logits[order[1]]), 4))
            if step + 1 < GREEDY_N:
                logits = m.decode([nxt], len(ptoks) + step, lambda i: True)[0]
        text = m.detok(gen)
        # llama-simple echoes the prompt pieces, then generated pieces up to
        # (excluding) the first EOG token, then "\n".
        upto = next((i for i, t in enumerate(gen) if m.L.llama_vocab_is_eog(m.vocab, t)), len(gen))
        expect = m.detok(ptoks) + m.detok(gen[:upto])
        simple = run_llama_simple(key, prompt, GREEDY_N)
        cases.append({
            "prompt": prompt,
            "prompt_ids": ptoks,
            "generated_ids": gen,
            "generated_text": text,
            "top2_margin": margins,
            "llama_simple_agrees": simple.rstrip("\n") == expect.rstrip("\n"),
        })
        print(f"  greedy[{key}] {prompt!r} -> {text!r} (llama-simple agrees: {cases[-1]['llama_simple_agrees']})")
    out["cases"] = cases
    m.close()
    write(f"{MODELS[key]['tag']}.greedy.json", out)


def gen_teacher_forced(L, key: str) -> None:
    np = __import__("numpy")
    text = TF_TEXT.read_text(encoding="utf-8")
    m0 = Model(L, MODELS[key]["path"], n_ctx=64)
    toks = m0.tokenize(text, add_special=True, parse_special=False)
    m0.close()
    n_ctx = max(512, ((len(toks) + 255) // 256) * 256)
    m = Model(L, MODELS[key]["path"], n_ctx=n_ctx)
    logits = m.decode(toks, 0, lambda i: True)
    lp = log_softmax(np, logits)
    positions = []
    nll = 0.0
    for i in range(len(toks)):
        row = lp[i]
        top = np.argsort(-row, kind="stable")[:TF_TOPK]
        entry = {
            "top1": int(top[0]),
            "top": [[int(t), round(float(row[t]), 5)] for t in top],
        }
        if i + 1 < len(toks):
            entry["next"] = int(toks[i + 1])
            entry["next_logprob"] = round(float(row[toks[i + 1]]), 5)
            nll -= float(row[toks[i + 1]])
        positions.append(entry)
    out = common_header(key, m, "teacher_forced", {
        "text_file": "tests/golden/text_tf.txt",
        "tokenization": "add_special=true (model default BOS), parse_special=false",
        "n_ctx": n_ctx, "n_batch": n_ctx, "n_ubatch": n_ctx, "n_threads": N_THREADS,
        "flash_attn_type": m.flash_attn_type,
        "pass": "all tokens in one llama_decode, logits for every position",
        "entry_i": "distribution after seeing tokens[0..=i], i.e. predicting tokens[i+1]",
        "logprob": "log_softmax over the full vocabulary (float64), rounded to 5 decimals",
        "top_k": TF_TOPK,
    })
    out["tokens"] = toks
    out["n_tokens"] = len(toks)
    out["ppl_over_text"] = round(float(np.exp(nll / (len(toks) - 1))), 5)
    out["positions"] = positions
    m.close()
    write(f"{MODELS[key]['tag']}.teacher_forced.json", out)


def run_perplexity_tool(key: str) -> tuple[dict, str]:
    cmd = [str(BUILD_BIN / "llama-perplexity"), "-m", str(MODELS[key]["path"]),
           "-f", str(PPL_TEXT), "-c", str(PPL_CTX), "-b", str(PPL_CTX),
           "-t", str(N_THREADS), "--seed", "0", "-fa", "off"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, errors="replace")
    log = r.stdout + r.stderr
    if r.returncode != 0:
        sys.exit(f"llama-perplexity failed:\n{log[-4000:]}")
    running = [float(x) for x in re.findall(r"\[\d+\]([0-9.]+|nan|inf)", log)]
    fin = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", log)
    nchunks = re.search(r"calculating perplexity over (\d+) chunks, n_ctx=(\d+), batch_size=(\d+), n_seq=(\d+)", log)
    res = {
        "command": " ".join(["llama-perplexity", "-m", f"models/{MODELS[key]['path'].name}",
                             "-f", "tests/golden/ppl_text.txt", "-c", str(PPL_CTX),
                             "-b", str(PPL_CTX), "-t", str(N_THREADS), "--seed", "0",
                             "-fa", "off"]),
        "final_ppl": float(fin.group(1)),
        "final_ppl_err": float(fin.group(2)),
        "running_ppl_after_chunk": running,
        "n_chunks": int(nchunks.group(1)),
        "batch_size": int(nchunks.group(3)),
        "n_seq_parallel": int(nchunks.group(4)),
    }
    return res, log


def gen_perplexity(L, key: str) -> None:
    np = __import__("numpy")
    tool, _log = run_perplexity_tool(key)
    text = PPL_TEXT.read_text(encoding="utf-8")

    # Re-compute with the same convention through the C API to get exact
    # per-chunk values (the tool prints only a running PPL with 4 decimals).
    m = Model(L, MODELS[key]["path"], n_ctx=PPL_CTX)
    toks = m.tokenize(text, add_special=True, parse_special=False)
    n_chunk = len(toks) // PPL_CTX
    first = PPL_CTX // 2
    chunk_nll, chunk_ppl = [], []
    for c in range(n_chunk):
        ct = list(toks[c * PPL_CTX:(c + 1) * PPL_CTX])
        if m.add_bos:
            ct[0] = m.bos  # replaces (not inserts) the chunk's first token
        m.clear()
        logits = m.decode(ct, 0, lambda i: i >= first)  # rows for pos first..n_ctx-1
        lp = log_softmax(np, logits)
        orig = toks[c * PPL_CTX:(c + 1) * PPL_CTX]
        s = -sum(float(lp[j - first][orig[j + 1]]) for j in range(first, PPL_CTX - 1))
        chunk_nll.append(s)
        chunk_ppl.append(round(float(np.exp(s / (PPL_CTX - 1 - first))), 5))
    n_scored = n_chunk * (PPL_CTX - 1 - first)
    py_ppl = float(np.exp(sum(chunk_nll) / n_scored))

    out = common_header(key, m, "perplexity", {
        "text_file": "tests/golden/ppl_text.txt",
        "n_ctx": PPL_CTX, "n_threads": N_THREADS,
    })
    out["convention"] = {
        "tokenization": "whole file tokenized once with add_special=true, parse_special=false "
                        "(common_tokenize(ctx, text, true)); BOS is prepended to the *file* only if "
                        "the model's add_bos is true",
        "chunks": "non-overlapping: chunk c = tokens[c*n_ctx : (c+1)*n_ctx], "
                  "n_chunk = floor(n_tokens / n_ctx); leftover tail tokens are dropped; "
                  "KV cache cleared before every chunk, positions restart at 0",
        "bos_at_chunk_start": ("if add_bos: the chunk's first token is REPLACED by BOS for evaluation "
                               "(not inserted; chunk length stays n_ctx); otherwise the chunk starts "
                               "with whatever text token falls there"),
        "this_model_add_bos": m.add_bos,
        "scored": "second half only: first = n_ctx/2; logits at positions j = first .. n_ctx-2 "
                  "score the original token at j+1 (positions first+1 .. n_ctx-1); "
                  "n_ctx - 1 - first tokens per chunk (the last position's logits are unused)",
        "scored_per_chunk": PPL_CTX - 1 - first,
        "nll": "-log_softmax(logits)[target], summed in double; PPL = exp(sum / count)",
        "error": "PPL * sqrt((mean(nll^2) - mean(nll)^2) / (count - 1))",
        "running_ppl": "the tool prints [k]=exp(mean nll over chunks 1..k) after chunk k",
        "parallel": "with its default -b 2048 the tool packs n_seq = n_batch / n_ctx chunks into one "
                    "batch (separate sequences); that scores the same tokens but shifts the PPL by "
                    "~0.05% through different batch numerics. We pass -b n_ctx (n_seq = 1, one chunk "
                    "per decode, like a simple engine), which makes tool and recomputation identical",
    }
    out["n_tokens"] = len(toks)
    out["llama_perplexity"] = tool
    out["recomputed"] = {
        "how": "same convention via the C API, one llama_decode per chunk (n_batch=n_ubatch=n_ctx)",
        "ppl": round(py_ppl, 5),
        "per_chunk_ppl": chunk_ppl,
        "per_chunk_nll_sum": [round(x, 5) for x in chunk_nll],
        "matches_tool_rel_1e-4": abs(py_ppl - tool["final_ppl"]) / tool["final_ppl"] < 1e-4,
    }
    m.close()
    print(f"  ppl[{key}] tool={tool['final_ppl']} +/- {tool['final_ppl_err']}  recomputed={py_ppl:.4f} "
          f"chunks={n_chunk} tokens={len(toks)}")
    write(f"{MODELS[key]['tag']}.perplexity.json", out)


def _dumps(obj, ind: int = 0, in_list: bool = False) -> str:
    """JSON with one line per record (list element) and per leaf list:
    readable and diffable without spending a line on every number."""
    pad, pad1 = " " * ind, " " * (ind + 1)
    flat = lambda o: json.dumps(o, ensure_ascii=False)
    leaf = lambda v: not isinstance(v, (dict, list)) or (
        isinstance(v, list) and all(not isinstance(x, dict) for x in v))
    if isinstance(obj, dict):
        if all(leaf(v) for v in obj.values()) and (in_list or len(flat(obj)) < 160):
            return flat(obj)
        items = [f"{pad1}{flat(k)}: {_dumps(v, ind + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and any(isinstance(x, dict) for x in obj):
        return "[\n" + ",\n".join(pad1 + _dumps(x, ind + 1, True) for x in obj) + "\n" + pad + "]"
    return flat(obj)


def write(name: str, obj: dict) -> None:
    path = GOLDEN / name
    # Compact rows keep teacher-forced files well under 2 MB while the
    # top-level stays readable in diffs.
    path.write_text(_dumps(obj) + "\n", encoding="utf-8")
    print(f"  wrote {path.relative_to(ROOT)} ({path.stat().st_size} bytes)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="all", choices=["qwen", "smollm", "all"])
    ap.add_argument("--only", default="tok,greedy,tf,ppl")
    ap.add_argument("--no-setup", action="store_true", help="do not fetch models / build llama.cpp")
    args = ap.parse_args()
    which = ["qwen", "smollm"] if args.models == "all" else [args.models]
    only = set(args.only.split(","))
    if not args.no_setup:
        ensure_prereqs(which)
    for key in which:
        got = sha256(MODELS[key]["path"])
        if got != MODELS[key]["sha256"]:
            sys.exit(f"{key}: sha256 {got} != {MODELS[key]['sha256']}")
    GOLDEN.mkdir(parents=True, exist_ok=True)
    L = load_bindings()
    for key in which:
        print(f"[{key}]")
        if "tok" in only:
            gen_tokenizer(L, key)
        if "greedy" in only:
            gen_greedy(L, key)
        if "tf" in only:
            gen_teacher_forced(L, key)
        if "ppl" in only:
            gen_perplexity(L, key)


if __name__ == "__main__":
    main()
