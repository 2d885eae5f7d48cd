#!/usr/bin/env python3
"""Usage: python3 scripts/sass_stats.py FILE.cubin|LISTING.sass [KERNEL-SUBSTRING]

Static statistics of the FFMA main loop of each kernel in a CUBIN (or a
nvdisasm listing): instruction mix, operand-reuse flags, accumulators kept in
place, and register-bank collisions between source operands not served by the
reuse cache (bank = register % 2; a read counts as cached when one of the last two
.reuse-flagged reads in the same slot was of the same register).

The bank and cache model is an assumption, not documentation: it is the one
that makes sense of cuBLAS's SGEMM main loop, whose reuse flags mark values
read again two FMAs later. Needs
nvdisasm: $NVDISASM, else the one of the nvidia-cuda-nvdisasm wheel
(python3 -m pip install nvidia-cuda-nvdisasm), else PATH. CUBINs come from
the kernel cache (METALLIC_COMPILE_CACHE=DIR with tests/cuda_kernels.rs)."""
import re, subprocess, sys, os

# Values a slot's reuse cache holds (an assumption, see above).
CACHE_ENTRIES = 2
INSTR = re.compile(r'^\s+/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P[0-9T]\s+)?(\S+)')
FFMA = re.compile(r'FFMA (R\d+), (R\d+)(\.reuse)?, (R\d+)(\.reuse)?, (R\d+)(\.reuse)?')

def nvdisasm():
    if os.environ.get('NVDISASM'):
        return os.environ['NVDISASM']
    try:
        import nvidia.cu13 as m
        path = os.path.join(list(m.__path__)[0], 'bin', 'nvdisasm')
        if os.path.exists(path):
            return path
    except ImportError:
        pass
    return 'nvdisasm'

def listing(path):
    if path.endswith('.cubin'):
        nd = nvdisasm()
        return subprocess.run([nd, '-c', path], capture_output=True, text=True, check=True).stdout.split('\n')
    return open(path).read().split('\n')

def kernels(lines):
    cur, body = None, []
    for l in lines:
        m = re.match(r'^([A-Za-z_]\w*):$', l)
        if m:
            if cur: yield cur, body
            cur, body = m.group(1), []
        elif cur:
            body.append(l)
    if cur: yield cur, body

def main_loop(body):
    labels = {}
    best = None
    for i, l in enumerate(body):
        m = re.match(r'^(\.L_x_\d+):', l)
        if m: labels[m.group(1)] = i
        m = re.search(r'BRA `\((\.L_x_\d+)\)', l)
        if m and labels.get(m.group(1), i + 1) <= i:
            seg = body[labels[m.group(1)]:i + 1]
            n = sum(' FFMA ' in s for s in seg)
            if best is None or n > best[0]: best = (n, seg)
    return best[1] if best and best[0] else []

def stats(seg):
    ops = [m.group(1) for m in map(INSTR.match, seg) if m]
    ffma = [FFMA.search(s) for s in seg if ' FFMA ' in s]
    cache = [[] for _ in range(3)]
    reuse = cached = inplace = extra = 0
    for m in ffma:
        d, a, ra, b, rb, c, rc = m.groups()
        slots = [(a, ra), (b, rb), (c, rc)]
        banks = []
        for s, (r, f) in enumerate(slots):
            reuse += bool(f)
            if r in cache[s]: cached += 1
            else: banks.append(int(r[1:]) % 2)
        extra += len(banks) - len(set(banks))
        inplace += d == c
        for s, (r, f) in enumerate(slots):
            if f:
                cache[s] = ([x for x in cache[s] if x != r] + [r])[-CACHE_ENTRIES:]
    return dict(instrs=len(ops), ffma=len(ffma), share=len(ffma) / max(1, len(ops)),
                lds=sum(o.startswith('LDS') for o in ops), reuse=reuse, cached=cached,
                inplace=inplace, bank_extra=extra)

if __name__ == '__main__':
    want = sys.argv[2] if len(sys.argv) > 2 else ''
    for name, body in kernels(listing(sys.argv[1])):
        if want in name:
            seg = main_loop(body)
            if seg:
                s = stats(seg)
                print(f"{name}: loop {s['instrs']} instrs, {s['ffma']} FFMA ({s['share']:.1%}), {s['lds']} LDS, "
                      f"reuse flags {s['reuse']}, cached reads {s['cached']}, accumulators in place {s['inplace']}, "
                      f"extra bank reads {s['bank_extra']}")
