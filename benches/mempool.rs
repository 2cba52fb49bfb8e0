//! Mempool admission throughput: 2,000 independent P2PKH spends admitted one by one against
//! an in-memory UTXO set (every check, scripts verified on this thread), next to the raw
//! single-signature verify rate of the same 2,000 signatures in the same run. Issue 4's
//! target: admission >= 0.6 x the raw verify rate. Also admission with every txid already
//! in the script cache, which isolates the non-signature overhead. And the node's pipelined
//! admission (issue 13): the cheap rules on one thread (`accept_deferred`), the scripts in
//! batches of 128 on two verifier threads (`verify_txs_batched`), then `accept_verified`,
//! beside the raw 2-thread batch-verify rate of the same signatures (target: >= 0.8x). See
//! BENCHMARKS.md.
//!
//! And `block_connected` of a block holding all 2,000 admitted transactions (issue 12: the
//! mempool's part of a compact block's connect), from a full pool to an empty one.
//!
//! Run: `cargo bench --bench mempool`. Smoke test: `cargo bench --bench mempool -- --test`.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ed25519_dalek::Signer;
use quarry::consensus::{check_block, verify_txs_batched, Coin, Network, ScriptCache};
use quarry::mempool::{Accepted, Deferred, MemoryUtxos, Mempool, MempoolConfig, ScriptJob};
use quarry::primitives::{sha256d, Amount, Hash256, OutPoint, Transaction, TxOut};
use quarry::script::sig::{verify_batch, verify_one, PreparedSig};
use quarry::script::{sighash, SighashCache};
use quarry::testkit::{assemble, coinbase, key, p2pkh_lock, spend_p2pkh};
use std::sync::Arc;
use std::time::Duration;

/// Transactions admitted per iteration.
const N: usize = 2000;
/// Clock passed to admission.
const NOW: u64 = 2_000_000_000;

struct Set {
    utxos: MemoryUtxos,
    txs: Vec<Transaction>,
    /// (pubkey, signature, sighash) of each transaction's one input.
    sigs: Vec<([u8; 32], [u8; 64], [u8; 32])>,
}

/// `N` one-input one-output P2PKH spends of distinct coins, by 250 distinct keys.
fn set() -> Set {
    let mut utxos = MemoryUtxos { height: 1000, ..MemoryUtxos::default() };
    let mut txs = Vec::with_capacity(N);
    let mut sigs = Vec::with_capacity(N);
    for i in 0..N {
        let k = key((i % 250) as u8 + 1);
        let op = OutPoint { txid: sha256d(&(i as u64).to_le_bytes()), index: 0 };
        let out = TxOut { value: Amount::from_sat(100_000).unwrap(), lock: p2pkh_lock(&k) };
        utxos.coins.insert(op, Coin { out: out.clone(), height: 1, is_coinbase: false });
        let pay = TxOut { value: Amount::from_sat(90_000).unwrap(), lock: p2pkh_lock(&k) };
        let tx = spend_p2pkh(&k, &[(op, out.clone())], vec![pay], 0);
        let msg = sighash(&tx, &SighashCache::new(&tx), 0, &out);
        sigs.push((k.verifying_key().to_bytes(), k.sign(&msg.0).to_bytes(), msg.0));
        txs.push(tx);
    }
    Set { utxos, txs, sigs }
}

fn pool(cache: Arc<ScriptCache>) -> Mempool {
    Mempool::new(Network::Regtest.params(), MempoolConfig::default(), cache)
}

fn admit_all(pool: &mut Mempool, s: &Set, txs: Vec<Transaction>) {
    for tx in txs {
        let r = pool.accept(tx, &s.utxos, NOW);
        assert!(matches!(r, Ok(Accepted::Added(_))), "{r:?}");
    }
}

/// Verifier threads of the pipelined admission (the machine's 2 cores).
const THREADS: usize = 2;
/// Jobs per batch, as the node's verifier pool takes them.
const BATCH: usize = 128;

/// The node's admission path: cheap rules here, scripts batched on `THREADS` threads, then
/// the second half here (the script cache records the passes, as the verifier pool does).
fn admit_pipelined(pool: &mut Mempool, cache: &ScriptCache, s: &Set, txs: Vec<Transaction>) {
    let jobs: Vec<ScriptJob> = txs
        .into_iter()
        .map(|tx| match pool.accept_deferred(tx, &s.utxos, NOW, false) {
            Ok(Deferred::Verify(job)) => job,
            other => panic!("{other:?}"),
        })
        .collect();
    let per_thread = jobs.len().div_ceil(THREADS);
    std::thread::scope(|scope| {
        for part in jobs.chunks(per_thread) {
            scope.spawn(move || {
                for batch in part.chunks(BATCH) {
                    let pairs: Vec<(&Transaction, &[TxOut])> =
                        batch.iter().map(|j| (&j.tx, j.spent.as_slice())).collect();
                    for (job, r) in batch.iter().zip(verify_txs_batched(&pairs)) {
                        assert!(r.is_ok(), "{r:?}");
                        cache.insert(job.txid);
                    }
                }
            });
        }
    });
    for job in jobs {
        let r = pool.accept_verified(job, &s.utxos, NOW, false);
        assert!(matches!(r, Ok(Accepted::Added(_))), "{r:?}");
    }
}

fn bench_admission(c: &mut Criterion) {
    let s = set();
    // Sanity: all admissible, all signatures valid.
    admit_all(&mut pool(Arc::new(ScriptCache::new(N))), &s, s.txs.clone());
    assert!(s.sigs.iter().all(|(pk, sig, msg)| verify_one(pk, sig, msg)));

    let mut g = c.benchmark_group("mempool");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(N as u64));

    g.bench_function("verify_one_2000_sigs", |b| {
        b.iter(|| s.sigs.iter().all(|(pk, sig, msg)| verify_one(black_box(pk), sig, msg)))
    });
    // A fresh pool and a fresh script cache per iteration, so every script is verified.
    g.bench_function("admit_2000_p2pkh", |b| {
        b.iter_batched(
            || (pool(Arc::new(ScriptCache::new(N))), s.txs.clone()),
            |(mut p, txs)| {
                admit_all(&mut p, &s, txs);
                p
            },
            BatchSize::LargeInput,
        )
    });
    // Every txid already cached: the admission work besides the scripts.
    let warm = Arc::new(ScriptCache::new(N));
    for tx in &s.txs {
        warm.insert(tx.txid());
    }
    g.bench_function("admit_2000_p2pkh_scripts_cached", |b| {
        b.iter_batched(
            || (pool(warm.clone()), s.txs.clone()),
            |(mut p, txs)| {
                admit_all(&mut p, &s, txs);
                p
            },
            BatchSize::LargeInput,
        )
    });
    // The pipelined admission and its reference: the same signatures batch-verified from
    // their bytes (point decompression and hashing included, as a verifier must) on the same
    // number of threads in batches of the same size, nothing else.
    g.bench_function("verify_batch_2000_sigs_2_threads", |b| {
        b.iter(|| {
            std::thread::scope(|scope| {
                let parts: Vec<_> = s
                    .sigs
                    .chunks(N.div_ceil(THREADS))
                    .map(|part| {
                        scope.spawn(move || {
                            part.chunks(BATCH).all(|c| {
                                let p: Vec<PreparedSig> = c
                                    .iter()
                                    .map(|(pk, sig, msg)| {
                                        PreparedSig::new(pk, sig, msg).expect("well-formed")
                                    })
                                    .collect();
                                verify_batch(&p)
                            })
                        })
                    })
                    .collect();
                parts.into_iter().all(|h| h.join().expect("no panic"))
            })
        })
    });
    g.bench_function("admit_2000_p2pkh_pipelined_2_threads", |b| {
        b.iter_batched(
            || {
                let cache = Arc::new(ScriptCache::new(N));
                (pool(cache.clone()), cache, s.txs.clone())
            },
            |(mut p, cache, txs)| {
                admit_pipelined(&mut p, &cache, &s, txs);
                p
            },
            BatchSize::LargeInput,
        )
    });
    // A block of every admitted transaction leaves the pool: what the core does after
    // connecting it (graph removal, conflict and orphan checks).
    let p = Network::Regtest.params();
    let mut all = vec![coinbase(1001, Amount::ZERO, p2pkh_lock(&key(1)), b"bench")];
    all.extend(s.txs.iter().cloned());
    let block = check_block(assemble(p, Hash256::ZERO, 1, p.genesis_bits, all), p).expect("a valid block");
    let full = || {
        let mut p = pool(warm.clone());
        admit_all(&mut p, &s, s.txs.clone());
        p
    };
    g.bench_function("block_connected_2000", |b| {
        b.iter_batched(
            full,
            |mut p| {
                let update = p.block_connected(&block, &s.utxos, NOW);
                assert_eq!(update.included.len(), N);
                p
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench_admission);
criterion_main!(benches);
