//! Hashing benchmarks: the headline. SHA-256 compression, header SHA-256d naive vs midstate
//! vs the SHA-NI kernel, nonce search on 1..N threads, and Merkle roots. Figures in
//! BENCHMARKS.md; `quarry bench-hash` measures the same nonce search plus the OpenSSL
//! reference on a user's machine.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use quarry::miner::kernel::{midstate, scan, sha256d_portable, tail_words, Kernel, IV};
use quarry::primitives::merkle::merkle_root;
use quarry::primitives::{sha256d, BlockHeader, Hash256, U256};
use sha2::digest::generic_array::GenericArray;
use std::time::Duration;

fn header() -> BlockHeader {
    BlockHeader {
        version: 1,
        prev: Hash256([3; 32]),
        merkle_root: Hash256([5; 32]),
        time: 1_767_225_600,
        bits: 0x1e04_0000,
        nonce: 0,
    }
}

fn bench_compress(c: &mut Criterion) {
    let mut g = c.benchmark_group("sha256");
    g.measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(1));
    let block = GenericArray::clone_from_slice(&[7u8; 64]);
    g.bench_function("compress256", |b| {
        let mut state = IV;
        b.iter(|| {
            sha2::compress256(&mut state, std::slice::from_ref(black_box(&block)));
            state[0]
        })
    });
    g.finish();
}

fn bench_header(c: &mut Criterion) {
    let h = header();
    let bytes = h.to_bytes();
    let mid = midstate(bytes[..64].try_into().unwrap());
    let tail = tail_words(&bytes);
    let mut g = c.benchmark_group("header_sha256d");
    g.measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(1));
    g.bench_function("naive_two_digests", |b| b.iter(|| sha256d(black_box(&bytes))));
    g.bench_function("midstate_sha2", |b| {
        let mut n = 0u32;
        b.iter(|| {
            n = n.wrapping_add(1);
            sha256d_portable(&mid, &tail, black_box(n))
        })
    });
    #[cfg(target_arch = "x86_64")]
    if Kernel::detect() == Kernel::ShaNi {
        use quarry::miner::kernel::shani::sha256d_lanes;
        fn lanes<const N: usize>(
            g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
            mid: &[u32; 8],
            tail: &[u32; 3],
        ) {
            g.throughput(Throughput::Elements(N as u64));
            g.bench_function(format!("shani_{N}_lanes"), |b| {
                let mut n = 0u32;
                b.iter(|| {
                    n = n.wrapping_add(N as u32);
                    let nonces: [u32; N] = std::array::from_fn(|i| n + i as u32);
                    // SAFETY: SHA-NI detected above.
                    unsafe { sha256d_lanes::<N>(mid, tail, black_box(nonces)) }
                })
            });
        }
        lanes::<1>(&mut g, &mid, &tail);
        lanes::<2>(&mut g, &mid, &tail);
        lanes::<4>(&mut g, &mid, &tail);
        lanes::<8>(&mut g, &mid, &tail);
    }
    g.finish();
}

fn bench_nonce_search(c: &mut Criterion) {
    let h = header();
    let bytes = h.to_bytes();
    let mid = midstate(bytes[..64].try_into().unwrap());
    let tail = tail_words(&bytes);
    let mut g = c.benchmark_group("nonce_search");
    g.measurement_time(Duration::from_secs(4)).sample_size(15);
    const PER_THREAD: u32 = 1 << 20;
    let kernels = if Kernel::detect() == Kernel::Portable {
        vec![Kernel::Portable]
    } else {
        vec![Kernel::ShaNi, Kernel::Portable]
    };
    let max_threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    for kernel in kernels {
        for threads in 1..=max_threads {
            g.throughput(Throughput::Elements(PER_THREAD as u64 * threads as u64));
            let name =
                format!("{}_{threads}_threads", if kernel == Kernel::ShaNi { "shani" } else { "sha2" });
            g.bench_function(name, |b| {
                b.iter(|| {
                    std::thread::scope(|s| {
                        for t in 0..threads {
                            let (mid, tail) = (&mid, &tail);
                            s.spawn(move || {
                                scan(kernel, mid, tail, t as u32 * PER_THREAD, PER_THREAD, &U256::ZERO)
                            });
                        }
                    })
                })
            });
        }
    }
    g.finish();
}

fn bench_merkle(c: &mut Criterion) {
    let mut g = c.benchmark_group("merkle_root");
    g.measurement_time(Duration::from_secs(3)).sample_size(15);
    for n in [1_000usize, 10_000, 100_000] {
        let leaves: Vec<Hash256> = (0..n as u64).map(|i| sha256d(&i.to_le_bytes())).collect();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("{n}_txids"), |b| b.iter(|| merkle_root(black_box(&leaves))));
    }
    g.finish();
}

criterion_group!(benches, bench_compress, bench_header, bench_nonce_search, bench_merkle);
criterion_main!(benches);
