#!/usr/bin/env python3
"""An exact (float64) forward pass of a GGUF model, as a third referee beside
llama.cpp and metallic: weights dequantized with the `gguf` package, every
activation kept in float64 (no activation quantization, no f16 KV cache).

It writes tests/golden/<tag>.exact.json: for each position of the
teacher-forced text (the same tokens as <tag>.teacher_forced.json), the top-20
log-probabilities. tests/model_e2e.rs uses it to tell rounding noise from
error: how often llama.cpp itself agrees with the exact model bounds how often
any other engine can agree with llama.cpp.

Supports the two shipped architectures (llama: adjacent-pair RoPE; qwen2:
NeoX RoPE and Q/K/V biases). Needs numpy and gguf (pip install gguf).

    python3 scripts/exact_reference.py            # both models
    python3 scripts/exact_reference.py smollm     # one
"""
import json
import sys
from pathlib import Path

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
MODELS = {
    "qwen": ("qwen2.5-0.5b-q4_k_m", ROOT / "models" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
    "smollm": ("smollm2-135m-q4_1", ROOT / "models" / "smollm2-135m-instruct-q4_1.gguf"),
}
TOPK = 20


def field(r, key):
    f = r.fields[key]
    v = f.parts[f.data[0]]
    return v.tobytes().decode() if v.dtype == np.uint8 else v[0].item()


def run(tag: str, path: Path) -> None:
    r = GGUFReader(path)
    arch = field(r, "general.architecture")
    g = lambda k: field(r, f"{arch}.{k}")
    n_layer, n_embd = g("block_count"), g("embedding_length")
    n_head, n_kv = g("attention.head_count"), g("attention.head_count_kv")
    eps = g("attention.layer_norm_rms_epsilon")
    base = g("rope.freq_base")
    hd = n_embd // n_head
    tensors = {t.name: t for t in r.tensors}

    def w(name):
        t = tensors.get(name)
        if t is None:
            return None
        a = dequantize(t.data, t.tensor_type).astype(np.float64)
        return a.reshape([int(x) for x in reversed(t.shape)]) if len(t.shape) > 1 else a.reshape(-1)

    golden = json.loads((GOLDEN / f"{tag}.teacher_forced.json").read_text())
    toks = np.array(golden["tokens"])
    s = len(toks)
    emb = w("token_embd.weight")
    out_w = w("output.weight")
    out_w = emb if out_w is None else out_w
    x = emb[toks]

    def rms(v, wt):
        return v / np.sqrt((v * v).mean(-1, keepdims=True) + eps) * wt

    ang = np.arange(s)[:, None] * (base ** (-np.arange(0, hd, 2) / hd))[None, :]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]

    def rope(t):
        o = np.empty_like(t)
        if arch == "qwen2":  # NeoX: pairs (i, i + hd/2)
            a, b = t[..., : hd // 2], t[..., hd // 2 :]
            o[..., : hd // 2], o[..., hd // 2 :] = a * cos - b * sin, a * sin + b * cos
        else:  # llama: adjacent pairs (GGUF permutes Q/K for this)
            a, b = t[..., 0::2], t[..., 1::2]
            o[..., 0::2], o[..., 1::2] = a * cos - b * sin, a * sin + b * cos
        return o

    def proj(h, name):
        y = h @ w(name + ".weight").T
        b = w(name + ".bias")
        return y if b is None else y + b

    mask = np.triu(np.full((s, s), -np.inf), 1)
    for layer in range(n_layer):
        p = f"blk.{layer}."
        h = rms(x, w(p + "attn_norm.weight"))
        q = rope(proj(h, p + "attn_q").reshape(s, n_head, hd))
        k = rope(proj(h, p + "attn_k").reshape(s, n_kv, hd))
        v = proj(h, p + "attn_v").reshape(s, n_kv, hd)
        o = np.empty((s, n_head, hd))
        for hh in range(n_head):
            kv = hh // (n_head // n_kv)
            sc = q[:, hh] @ k[:, kv].T / np.sqrt(hd) + mask
            sc = np.exp(sc - sc.max(-1, keepdims=True))
            o[:, hh] = (sc / sc.sum(-1, keepdims=True)) @ v[:, kv]
        x = x + o.reshape(s, -1) @ w(p + "attn_output.weight").T
        h = rms(x, w(p + "ffn_norm.weight"))
        gate, up = h @ w(p + "ffn_gate.weight").T, h @ w(p + "ffn_up.weight").T
        x = x + (gate / (1 + np.exp(-gate)) * up) @ w(p + "ffn_down.weight").T
    h = rms(x, w("output_norm.weight"))
    positions = []
    for c in range(0, s, 128):
        logits = h[c : c + 128] @ out_w.T
        m = logits.max(1, keepdims=True)
        lp = logits - m - np.log(np.exp(logits - m).sum(1, keepdims=True))
        for row in lp:
            top = np.argsort(-row, kind="stable")[:TOPK]
            positions.append({"top1": int(top[0]), "top": [[int(t), round(float(row[t]), 5)] for t in top]})
    doc = {
        "what": "exact_teacher_forced",
        "model_file": path.name,
        "generator": "scripts/exact_reference.py (float64 numpy, weights dequantized by the gguf package)",
        "tokens_from": f"{tag}.teacher_forced.json",
        "n_tokens": s,
        "positions": positions,
    }
    text = "{\n" + ",\n".join(
        f'  {json.dumps(k)}: ' + (
            "[\n" + ",\n".join("    " + json.dumps(p, separators=(",", ":")) for p in v) + "\n  ]"
            if k == "positions" else json.dumps(v))
        for k, v in doc.items()) + "\n}\n"
    out = GOLDEN / f"{tag}.exact.json"
    out.write_text(text)
    print(f"wrote {out} ({len(text)} bytes, {s} positions)")


if __name__ == "__main__":
    for key in sys.argv[1:] or list(MODELS):
        run(*MODELS[key])
