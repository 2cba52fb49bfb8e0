//! Connecting a ~1 MB block whose transactions were admitted to the mempool first (so their
//! scripts are in the script cache), on a RocksDB chainstate: the chain-side part of a
//! block's per-hop cost. Two measurements (see BENCHMARKS.md):
//! - `connect_1mb_block_admitted`: each iteration disconnects the block (`invalidateblock`,
//!   not timed) and connects it again (`reconsiderblock`, timed): body read back from the
//!   store, UTXO rules, the chainstate writes.
//! - `process_new_1mb_block_admitted`: each iteration hands the chain a block it has never
//!   seen (the same transactions under a fresh coinbase, built untimed; the previous one is
//!   invalidated untimed) through `process_block`, as a relayed block arrives: context-free
//!   checks, storing the body, then the connect of the block just checked (no read back).
//!
//! Run: `cargo bench --bench chain`. Smoke test: `cargo bench --bench chain -- --test`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use quarry::chain::Chain;
use quarry::consensus::validation::block_subsidy;
use quarry::consensus::{Network, Params};
use quarry::mempool::{Accepted, Mempool, MempoolConfig};
use quarry::primitives::{Amount, Block, Hash256, OutPoint, TxOut};
use quarry::testkit::{assemble, coinbase, key, p2pkh_lock, spend_p2pkh};
use std::time::{Duration, Instant};

const NOW: u64 = 2_000_000_000;
/// Spends in the big block: 3,900 one-input two-output P2PKH transactions.
const SPENDS: usize = 3_900;

fn params() -> &'static Params {
    Network::Regtest.params()
}

fn next_block(chain: &Chain, txs: Vec<quarry::primitives::Transaction>, tag: &[u8]) -> Block {
    let p = params();
    let tip = chain.tip();
    let ctx = chain.header_context(&tip.hash, NOW).unwrap();
    let mut all = vec![coinbase(ctx.height, block_subsidy(p, ctx.height), p2pkh_lock(&key(1)), tag)];
    all.extend(txs);
    let time = chain.record(&tip.hash).unwrap().header.time + 5;
    assemble(p, tip.hash, time, ctx.expected_bits, all)
}

fn submit(chain: &mut Chain, block: Block) -> Hash256 {
    let hash = block.hash();
    chain.process_block(block, NOW).unwrap();
    assert_eq!(chain.tip().hash, hash, "bench blocks must connect");
    hash
}

/// A chainstate whose tip is the big block; returns it with the block's hash and size, and
/// the block's transactions after the coinbase.
fn setup(dir: &std::path::Path) -> (Chain, Hash256, usize, Vec<quarry::primitives::Transaction>) {
    let p = params();
    let k = key(1);
    let mut chain = Chain::open(dir, p).unwrap();
    let mut coinbases = Vec::new();
    for h in 1..=14u32 {
        let b = next_block(&chain, vec![], &h.to_le_bytes());
        coinbases.push(b.txs[0].clone());
        submit(&mut chain, b);
    }
    // Four fan-outs of 1,000 outputs each from the first four (matured) coinbases.
    let mut fans = Vec::new();
    for cb in &coinbases[..4] {
        let coin = (OutPoint { txid: cb.txid(), index: 0 }, cb.outputs[0].clone());
        let each = Amount::from_sat(cb.outputs[0].value.to_sat() / 1000 - 10).unwrap();
        let outs = (0..1000).map(|_| TxOut { value: each, lock: p2pkh_lock(&k) }).collect();
        fans.push(spend_p2pkh(&k, &[coin], outs, 0));
    }
    let fan_block = next_block(&chain, fans.clone(), b"fan");
    submit(&mut chain, fan_block);
    let coins: Vec<(OutPoint, TxOut)> = fans
        .iter()
        .flat_map(|t| {
            let txid = t.txid();
            t.outputs.iter().enumerate().map(move |(i, o)| (OutPoint { txid, index: i as u32 }, o.clone()))
        })
        .take(SPENDS)
        .collect();
    let spends: Vec<_> = coins
        .into_iter()
        .map(|(op, out)| {
            let half = Amount::from_sat(out.value.to_sat() / 2 - 500).unwrap();
            let outs = vec![
                TxOut { value: half, lock: p2pkh_lock(&key(2)) },
                TxOut { value: half, lock: p2pkh_lock(&k) },
            ];
            spend_p2pkh(&k, &[(op, out)], outs, 0)
        })
        .collect();
    // Admitted first, as on a node that saw the transactions gossiped before the block.
    let mut pool = Mempool::new(p, MempoolConfig::default(), chain.script_cache());
    for tx in &spends {
        let r = pool.accept(tx.clone(), &chain, NOW);
        assert!(matches!(r, Ok(Accepted::Added(_))), "{r:?}");
    }
    let big = next_block(&chain, spends.clone(), b"big");
    let size = big.encode().len();
    let hash = submit(&mut chain, big);
    (chain, hash, size, spends)
}

fn bench_connect(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (mut chain, hash, size, spends) = setup(dir.path());
    let mut g = c.benchmark_group("chain");
    g.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(6));
    g.throughput(Throughput::Bytes(size as u64));
    g.bench_function("connect_1mb_block_admitted", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                chain.invalidate_block(&hash).unwrap();
                let t = Instant::now();
                chain.reconsider_block(&hash).unwrap();
                total += t.elapsed();
                assert_eq!(chain.tip().hash, hash);
            }
            total
        })
    });
    let mut current = hash;
    let mut variant = 0u64;
    g.bench_function("process_new_1mb_block_admitted", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                chain.invalidate_block(&current).unwrap();
                variant += 1;
                let block = next_block(&chain, spends.clone(), &variant.to_le_bytes());
                let new = block.hash();
                let t = Instant::now();
                chain.process_block(block, NOW).unwrap();
                total += t.elapsed();
                assert_eq!(chain.tip().hash, new, "bench blocks must connect");
                current = new;
            }
            total
        })
    });
    g.finish();
    eprintln!("block: {size} bytes, {} transactions", SPENDS + 1);
}

criterion_group!(benches, bench_connect);
criterion_main!(benches);
