#!/usr/bin/env python3
"""Golden data for metallic's GGUF block formats, from the `gguf` Python package.

Writes to tests/golden/quant/ (see README.md there for the formats):

  dequant_<type>.bin   random blocks of every format with their dequantized
                       values (the package's numpy dequantizers; Q8_1 and Q8_K,
                       which the package lacks, by a numpy transcription of
                       ggml's `dequantize_row_q8_K`: x = d * q).
  quantize_<type>.bin  f32 inputs and their quantized blocks for Q4_0, Q4_1,
                       Q5_0, Q5_1, Q8_0 (the package's quantizers, bit-exact
                       with ggml's `quantize_row_*_ref`) and Q8_1, Q8_K (numpy
                       transcriptions of ggml's reference quantizers).
  <model>.summary.txt  per tensor of a real GGUF model: sums and sampled values
                       of its dequantization (only with --model).

and tests/golden/gguf/gguf_py_small.gguf, a small file written by the
package's GGUFWriter (our reader must read what the reference writer writes;
it is also the fuzz seed fuzz/corpus/gguf_parse/seed-small.gguf).

Reproducible: every random draw comes from numpy generators with fixed seeds.

Usage:
  pip install gguf numpy
  python3 scripts/gen_quant_golden.py [--model models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf]
"""

import argparse
import os
import struct
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFReader, quants

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "golden", "quant")

QK_K = 256
# (type, elements per block, bytes per block, byte offsets of f16 scales,
#  byte offsets of f32 scales). Sizes from ggml-common.h (the package's table
# still gives Q8_1 its old 40-byte size; ggml's block_q8_1 is 36 bytes).
FORMATS = [
    (T.F32, 1, 4, [], []),
    (T.F16, 1, 2, [], []),
    (T.BF16, 1, 2, [], []),
    (T.Q4_0, 32, 18, [0], []),
    (T.Q4_1, 32, 20, [0, 2], []),
    (T.Q5_0, 32, 22, [0], []),
    (T.Q5_1, 32, 24, [0, 2], []),
    (T.Q8_0, 32, 34, [0], []),
    (T.Q8_1, 32, 36, [0, 2], []),
    (T.Q2_K, 256, 84, [80, 82], []),
    (T.Q3_K, 256, 110, [108], []),
    (T.Q4_K, 256, 144, [0, 2], []),
    (T.Q5_K, 256, 176, [0, 2], []),
    (T.Q6_K, 256, 210, [208], []),
    (T.Q8_K, 256, 292, [], [0]),
]


def type_name(t):
    """The name metallic's DType prints (ggml's: q4_0, q2_K, bf16)."""
    return t.name.lower().replace("_k", "_K")


def finite_bits(rng, n, exp_mask, dtype):
    """Random bit patterns with the exponent not all ones (finite values),
    subnormals and zeros included."""
    bits = rng.integers(0, np.iinfo(dtype).max, size=n, dtype=dtype, endpoint=True)
    inf = (bits & exp_mask) == exp_mask
    # Clearing the exponent's top bit keeps the value finite.
    top = exp_mask & ~(exp_mask >> 1)
    bits[inf] &= ~dtype(top)
    return bits


def dequant_reference(t, raw):
    if t == T.Q8_1:
        blocks = raw.reshape(-1, 36)
        d = blocks[:, 0:2].copy().view(np.float16).astype(np.float32)
        q = blocks[:, 4:].copy().view(np.int8).astype(np.float32)
        return (q * d).ravel()
    if t == T.Q8_K:
        blocks = raw.reshape(-1, 292)
        d = blocks[:, 0:4].copy().view(np.float32)
        q = blocks[:, 4:260].copy().view(np.int8).astype(np.float32)
        with np.errstate(over="ignore"):  # huge random scales overflow to inf, as in C
            return (q * d).ravel()
    return quants.dequantize(raw, t).astype(np.float32).ravel()


def gen_dequant(seed):
    for i, (t, be, bb, f16_offs, f32_offs) in enumerate(FORMATS):
        rng = np.random.default_rng(seed + i)
        if be == 1:
            n = 1024
            if t == T.F32:
                raw = finite_bits(rng, n, np.uint32(0x7F800000), np.uint32).view(np.uint8)
            elif t == T.F16:
                raw = finite_bits(rng, n, np.uint16(0x7C00), np.uint16).view(np.uint8)
            else:
                raw = finite_bits(rng, n, np.uint16(0x7F80), np.uint16).view(np.uint8)
        else:
            nb = 64 if be == 32 else 16
            n = nb * be
            blocks = rng.integers(0, 255, size=(nb, bb), dtype=np.uint8, endpoint=True)
            for off in f16_offs:
                s = finite_bits(rng, nb, np.uint16(0x7C00), np.uint16)
                # Edge scales: +0, -0, the smallest subnormal, the largest finite.
                s[:4] = [0x0000, 0x8000, 0x0001, 0x7BFF]
                blocks[:, off:off + 2] = s.view(np.uint8).reshape(nb, 2)
            for off in f32_offs:
                s = finite_bits(rng, nb, np.uint32(0x7F800000), np.uint32)
                s[:3] = [0x00000000, 0x80000000, 0x00000001]
                blocks[:, off:off + 4] = s.view(np.uint8).reshape(nb, 4)
            raw = blocks.ravel()
        values = dequant_reference(t, raw)
        assert values.dtype == np.float32 and values.size == n
        path = os.path.join(OUT, f"dequant_{type_name(t)}.bin")
        with open(path, "wb") as f:
            f.write(b"MQD1" + struct.pack("<III", int(t), n, raw.size))
            f.write(raw.tobytes())
            f.write(values.astype("<f4").tobytes())


def np_roundf(x):
    """C's roundf: halves away from zero."""
    a = np.abs(x)
    f = np.floor(a)
    return np.sign(x) * (f + np.floor(2 * (a - f)))


def quantize_q8_1(x):
    """ggml's quantize_row_q8_1_ref."""
    blocks = x.reshape(-1, 32)
    amax = np.abs(blocks).max(axis=1, keepdims=True)
    d = amax / np.float32(127)
    with np.errstate(divide="ignore"):
        idv = np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)
    q = np_roundf(blocks * idv).astype(np.int8)
    s = (q.astype(np.int32).sum(axis=1, keepdims=True).astype(np.float32) * d).astype(np.float32)
    out = np.concatenate(
        [d.astype(np.float16).view(np.uint8), s.astype(np.float16).view(np.uint8), q.view(np.uint8)],
        axis=1,
    )
    return out.ravel()


def quantize_q8_k(x):
    """ggml's quantize_row_q8_K_ref (nearest_int rounds half to even through
    the 1.5 * 2^23 trick, reproduced on f32 bits)."""
    out = []
    for b in x.reshape(-1, QK_K):
        ab = np.abs(b)
        if ab.max() == 0:
            out.append(np.zeros(292, dtype=np.uint8))
            continue
        mx = b[int(np.argmax(ab))]  # first maximum, as ggml's strict '>'
        iscale = np.float32(-127.0) / mx
        v = (iscale * b).astype(np.float32) + np.float32(12582912.0)
        q = (v.view(np.int32) & 0x007FFFFF) - 0x00400000
        q = np.minimum(q, 127).astype(np.int8)
        bsums = q.reshape(16, 16).astype(np.int16).sum(axis=1).astype("<i2")
        d = (np.float32(1.0) / iscale).astype("<f4")
        out.append(np.concatenate([np.frombuffer(d.tobytes(), np.uint8), q.view(np.uint8),
                                   np.frombuffer(bsums.tobytes(), np.uint8)]))
    return np.concatenate(out)


def quant_inputs(rng, n, block):
    """Blocks of varied scale plus edge cases: all zero, constant, a single
    non-zero, ties of +-max, small integers."""
    x = rng.standard_normal(n).astype(np.float32)
    blocks = x.reshape(-1, block)
    scales = (10.0 ** rng.uniform(-3, 3, size=(blocks.shape[0], 1))).astype(np.float32)
    blocks *= scales
    blocks[0] = 0
    blocks[1] = 0.75
    blocks[2] = 0
    blocks[2, 5] = -3.5
    blocks[3, 7] = 2.0
    blocks[3, 9] = -2.0
    blocks[3, 11] = 2.0
    blocks[4] = rng.integers(-8, 8, size=block).astype(np.float32)
    return blocks.ravel().astype(np.float32)


def gen_quantize(seed):
    for i, t in enumerate([T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q8_1, T.Q8_K]):
        rng = np.random.default_rng(seed + 100 + i)
        block = QK_K if t == T.Q8_K else 32
        x = quant_inputs(rng, 2048, block)
        if t == T.Q8_1:
            q = quantize_q8_1(x)
        elif t == T.Q8_K:
            q = quantize_q8_k(x)
        else:
            q = quants.quantize(x.reshape(1, -1), t).ravel()
        path = os.path.join(OUT, f"quantize_{type_name(t)}.bin")
        with open(path, "wb") as f:
            f.write(b"MQQ1" + struct.pack("<III", int(t), x.size, q.size))
            f.write(x.astype("<f4").tobytes())
            f.write(q.astype(np.uint8).tobytes())


def hexbits(v):
    return ",".join(f"{b:08x}" for b in np.asarray(v, dtype=np.float32).view(np.uint32))


def gen_model_summary(model, seed):
    """One line per tensor, in file order:
    name type n sum sum_abs sum_sq first=<16 hex f32 bits> last=<16> idx=<i:bits,...>
    Sums are f64 (Python repr round-trips exactly); values are exact bits."""
    reader = GGUFReader(model)
    rng = np.random.default_rng(seed)
    stem = os.path.basename(model)
    if stem.endswith(".gguf"):
        stem = stem[: -len(".gguf")]
    lines = []
    for t in reader.tensors:
        x = quants.dequantize(t.data, t.tensor_type).astype(np.float32, copy=False).ravel()
        x64 = x.astype(np.float64)
        idx = np.sort(rng.integers(0, x.size, size=16))
        lines.append(" ".join([
            t.name,
            type_name(T(t.tensor_type)),
            str(x.size),
            repr(float(np.sum(x64))),
            repr(float(np.sum(np.abs(x64)))),
            repr(float(np.sum(x64 * x64))),
            "first=" + hexbits(x[:16]),
            "last=" + hexbits(x[-16:]),
            "idx=" + ",".join(f"{i}:{b}" for i, b in zip(idx, hexbits(x[idx]).split(","))),
        ]))
        del x, x64
    path = os.path.join(OUT, f"{stem}.summary.txt")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{path}: {len(lines)} tensors")


def gen_gguf_sample():
    """A small GGUF file from the package's writer: several value types,
    arrays of strings, nested arrays, and F32/Q4_0/Q8_0 tensors."""
    from gguf import GGUFWriter
    out_dir = os.path.join(ROOT, "tests", "golden", "gguf")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "gguf_py_small.gguf")
    w = GGUFWriter(path, "llama")
    w.add_uint32("t.u32", 7)
    w.add_int8("t.i8", -3)
    w.add_float64("t.f64", 2.5)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "hello")
    w.add_array("t.strings", ["a", "bb", "ccc"])
    w.add_array("t.nested", [[1, 2], [3]])
    w.add_array("t.f32s", [0.5, -1.0])
    w.add_tensor("a.f32", np.arange(16, dtype=np.float32).reshape(2, 8))
    for name, t, n in [("b.q4_0", T.Q4_0, 64), ("c.q8_0", T.Q8_0, 32)]:
        x = np.linspace(-1, 1, n, dtype=np.float32).reshape(-1, 32)
        w.add_tensor(name, quants.quantize(x, t), raw_dtype=t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    seed = os.path.join(ROOT, "fuzz", "corpus", "gguf_parse", "seed-small.gguf")
    os.makedirs(os.path.dirname(seed), exist_ok=True)
    with open(path, "rb") as src, open(seed, "wb") as dst:
        dst.write(src.read())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=[], help="GGUF model to summarise (repeatable)")
    ap.add_argument("--seed", type=int, default=20240603)
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    gen_dequant(args.seed)
    gen_quantize(args.seed)
    gen_gguf_sample()
    for m in args.model:
        if not os.path.exists(m):
            sys.exit(f"{m} not found: run scripts/fetch_models.sh first")
        gen_model_summary(m, args.seed)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"{OUT}: {total} bytes")


if __name__ == "__main__":
    main()
