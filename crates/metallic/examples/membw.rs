//! Memory read bandwidth of this machine: `threads` workers each sum their
//! share of a buffer larger than the last-level cache (1 GiB by default),
//! best of 5 passes. The decode-speed ceiling of a model is this bandwidth
//! divided by the bytes of weights a token reads.
//!
//! cargo run --release --example membw -- [THREADS] [MIB]

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1).max(1);
    let mib: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1024);
    let words = mib * (1 << 20) / 8;
    // Distinct non-zero values, so no page is shared or left untouched.
    let buf: Vec<u64> = (0..words as u64)
        .map(|i| i.wrapping_mul(0x9E37_79B9))
        .collect();
    let chunk = words.div_ceil(threads);
    let mut best = 0.0f64;
    let mut check = 0u64;
    for _ in 0..5 {
        let t = Instant::now();
        let sums: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = buf
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || {
                        // 8 independent lanes: the adds vectorise and the
                        // loads, not the add chain, set the pace.
                        let mut acc = [0u64; 8];
                        for c in part.chunks_exact(8) {
                            for l in 0..8 {
                                acc[l] = acc[l].wrapping_add(c[l]);
                            }
                        }
                        acc.iter().fold(0u64, |a, &b| a.wrapping_add(b))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).collect()
        });
        let dt = t.elapsed().as_secs_f64();
        check = sums.iter().fold(check, |a, &b| a.wrapping_add(b));
        best = best.max((words * 8) as f64 / dt / 1e9);
    }
    println!("read bandwidth, {threads} thread(s), {mib} MiB: {best:.2} GB/s (checksum {check:x})");
}
