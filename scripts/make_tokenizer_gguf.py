#!/usr/bin/env python3
"""Write a tokenizer-only GGUF: every general.* and tokenizer.* key of a real
model, no tensors (a few MB instead of hundreds).

It is the --tokenizer-from source that ../shared/tools/synth_gguf.py needs,
small enough to carry to the lent GPU machine (64 MiB a call), where the
synthetic models are then generated (see docs/gpu-testing.md).

  pip install gguf==0.19.0
  python3 scripts/make_tokenizer_gguf.py models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf OUT.gguf
"""
import argparse

from gguf import GGUFReader, GGUFWriter, GGUFValueType


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('src', help='a GGUF with tokenizer metadata')
    ap.add_argument('out')
    a = ap.parse_args()

    r = GGUFReader(a.src)
    arch = r.fields['general.architecture'].contents()
    w = GGUFWriter(a.out, arch)  # writes general.architecture itself
    n = 0
    for key, f in r.fields.items():
        if not key.startswith(('general.', 'tokenizer.')) or key == 'general.architecture':
            continue
        vtype = GGUFValueType(f.types[0])
        sub = GGUFValueType(f.types[1]) if vtype == GGUFValueType.ARRAY else None
        w.add_key_value(key, f.contents(), vtype, sub_type=sub)
        n += 1
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f'wrote {a.out}: {n + 1} keys from {a.src}, no tensors')


if __name__ == '__main__':
    main()
