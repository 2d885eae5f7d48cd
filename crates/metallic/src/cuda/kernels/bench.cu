// Kernels for benchmarks only (cuda/bench.rs).

// One thread keeps the stream busy for `ns` nanoseconds of the device's
// global timer, so that the host queues the timed calls behind it and the
// device then runs them back to back: an event that starts a timing is not
// reached while the host is still issuing the call it times (a single
// call's time would then include host time).
extern "C" __global__ void bench_hold(unsigned long long ns) {
    unsigned long long t0, t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
    do {
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    } while (t - t0 < ns);
}

// Reads `n` 16-byte words, so that L2 holds them instead of what it held
// (the data and the code of the call before): each timed call then starts
// as one in a model does, after other kernels. Reads leave no dirty lines
// for the timed call to write back. `sink` is written only if the words'
// xor is the impossible `key`, which keeps the loads.
extern "C" __global__ void bench_flush(const uint4* p, unsigned long long n, unsigned key, unsigned* sink) {
    unsigned x = 0;
    for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < n;
         i += (unsigned long long)gridDim.x * blockDim.x) {
        const uint4 v = p[i];
        x ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    if (x == key) *sink = x;
}

// About 12k instructions (190 KB) of straight-line code (three per step: no
// chain of them folds into fewer), run by each scheduler of every SM: the
// instruction caches then hold this instead of the code of the call before,
// as after a model's other kernels. `sink` is written only for the
// impossible `key`.
extern "C" __global__ void bench_flush_code(unsigned key, unsigned* sink) {
    unsigned x = key ^ threadIdx.x;
#pragma unroll
    for (int i = 0; i < 4096; ++i) x = (x ^ (x >> 7)) * 0x9e3779b1u + i;
    if (x == key) *sink = x;
}
