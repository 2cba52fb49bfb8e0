//! Consensus hot-path benchmarks: header hashing, Merkle roots, ed25519 verification (dalek and
//! ours, single, batched, and batched across all cores), and connecting a 2,000-input P2PKH
//! block, with a breakdown of connect_block's per-input work. See BENCHMARKS.md.
//!
//! Run: `cargo bench --bench consensus`. Smoke test (CI): `cargo bench --bench consensus -- --test`.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use quarry::consensus::pow::check_proof_of_work;
use quarry::consensus::{block_subsidy, check_block, connect_block, CheckedBlock, Coin, Network, Params};
use quarry::primitives::merkle::merkle_root;
use quarry::primitives::{
    sha256d, Amount, Block, BlockHeader, Hash256, OutPoint, Script, Transaction, TxIn, TxOut,
};
use quarry::script::opcodes::{push_data, push_int};
use quarry::script::sig::{verify_batch, verify_one, PreparedSig};
use quarry::script::templates::{p2pkh, p2pkh_unlock, pubkey_hash};
use quarry::script::{sighash, verify_spend, DeferredChecker, SighashCache, SpendContext};
use rayon::prelude::*;
use std::collections::HashMap;
use std::time::Duration;

/// Signatures per batch in the batch benchmarks.
const BATCH: usize = 1024;
/// Signatures in the all-cores batch benchmark (BATCH-sized chunks spread over rayon's pool).
const PAR_SIGS: usize = 8 * BATCH;
/// Spending transactions in the connect_block benchmark.
const BLOCK_TXS: usize = 2000;
/// Height of the benchmark block (regtest: past the first halving, so the subsidy is nonzero).
const BLOCK_HEIGHT: u32 = 200;
/// Distinct signing keys used by the block (every signature is still distinct: distinct messages).
const BLOCK_KEYS: usize = 256;

fn key(i: usize) -> SigningKey {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    seed[31] = 0x5a;
    SigningKey::from_bytes(&seed)
}

/// `n` (pubkey, sig, 32-byte msg) triples: distinct messages, `n.min(256)` distinct keys.
struct SigSet {
    pks: Vec<[u8; 32]>,
    vks: Vec<VerifyingKey>,
    sigs: Vec<[u8; 64]>,
    dalek_sigs: Vec<Signature>,
    msgs: Vec<[u8; 32]>,
}

fn sig_set(n: usize) -> SigSet {
    let keys: Vec<SigningKey> = (0..n.min(256)).map(key).collect();
    let mut s = SigSet { pks: vec![], vks: vec![], sigs: vec![], dalek_sigs: vec![], msgs: vec![] };
    for i in 0..n {
        let sk = &keys[i % keys.len()];
        let msg = sha256d(&(i as u64).to_le_bytes()).0;
        let sig = sk.sign(&msg);
        s.pks.push(sk.verifying_key().to_bytes());
        s.vks.push(sk.verifying_key());
        s.sigs.push(sig.to_bytes());
        s.dalek_sigs.push(sig);
        s.msgs.push(msg);
    }
    s
}

/// Decodes and batch-verifies `range` of the set with our cofactored batch equation: the work a
/// block's signatures need when only the raw bytes are given (decompress A and R, hash k, MSM).
fn ours_prepare_and_batch(s: &SigSet, range: std::ops::Range<usize>) -> bool {
    let prepared: Option<Vec<PreparedSig>> =
        range.map(|i| PreparedSig::new(&s.pks[i], &s.sigs[i], &s.msgs[i])).collect();
    prepared.is_some_and(|p| verify_batch(&p))
}

fn quick<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    g
}

fn bench_header_hash(c: &mut Criterion) {
    let header = BlockHeader {
        version: 1,
        prev: sha256d(b"prev"),
        merkle_root: sha256d(b"root"),
        time: 1_767_225_600,
        bits: 0x207f_ffff,
        nonce: 42,
    };
    let mut g = quick(c, "header");
    g.throughput(Throughput::Elements(1));
    g.bench_function("header_hash", |b| b.iter(|| black_box(&header).hash()));
    g.finish();
}

fn bench_merkle(c: &mut Criterion) {
    let mut g = quick(c, "merkle_root");
    for n in [1_000usize, 10_000] {
        let leaves: Vec<Hash256> = (0..n as u64).map(|i| sha256d(&i.to_le_bytes())).collect();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("{n}_txids"), |b| b.iter(|| merkle_root(black_box(&leaves))));
    }
    g.finish();
}

fn bench_signatures(c: &mut Criterion) {
    let s = sig_set(PAR_SIGS);
    // Sanity: every signature is valid for both implementations.
    assert!(s.vks[0].verify_strict(&s.msgs[0], &s.dalek_sigs[0]).is_ok());
    assert!(verify_one(&s.pks[0], &s.sigs[0], &s.msgs[0]));
    assert!(ours_prepare_and_batch(&s, 0..PAR_SIGS));
    let msg_refs: Vec<&[u8]> = s.msgs.iter().map(|m| &m[..]).collect();
    assert!(ed25519_dalek::verify_batch(&msg_refs[..BATCH], &s.dalek_sigs[..BATCH], &s.vks[..BATCH]).is_ok());

    let mut g = c.benchmark_group("signatures");
    g.sample_size(15).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));

    g.throughput(Throughput::Elements(1));
    // verify_strict on a prebuilt VerifyingKey (A already decompressed, as dalek users hold it).
    g.bench_function("dalek_verify_strict_single", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % BATCH;
            s.vks[i].verify_strict(&s.msgs[i], &s.dalek_sigs[i]).is_ok()
        })
    });
    // Ours from bytes: decompress A and R, hash k, cofactored double-scalar multiplication.
    g.bench_function("ours_verify_one", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % BATCH;
            verify_one(&s.pks[i], &s.sigs[i], &s.msgs[i])
        })
    });

    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("dalek_verify_batch_1024", |b| {
        b.iter(|| {
            ed25519_dalek::verify_batch(&msg_refs[..BATCH], &s.dalek_sigs[..BATCH], &s.vks[..BATCH]).is_ok()
        })
    });
    // Decoding only (what DeferredChecker does per signature): 2 decompressions + SHA-512.
    g.bench_function("ours_prepare_1024", |b| {
        b.iter(|| (0..BATCH).map(|i| PreparedSig::new(&s.pks[i], &s.sigs[i], &s.msgs[i]).is_some()).count())
    });
    let prepared: Vec<PreparedSig> =
        (0..BATCH).map(|i| PreparedSig::new(&s.pks[i], &s.sigs[i], &s.msgs[i]).unwrap()).collect();
    // The batch equation alone on already-decoded signatures.
    g.bench_function("ours_verify_batch_1024_prepared", |b| b.iter(|| verify_batch(black_box(&prepared))));
    // Decode + batch from bytes, one thread: the comparable of dalek's verify_batch.
    g.bench_function("ours_verify_batch_1024", |b| b.iter(|| ours_prepare_and_batch(&s, 0..BATCH)));

    g.throughput(Throughput::Elements(PAR_SIGS as u64));
    // Decode + batch from bytes, 1024-signature chunks over every core (rayon's global pool).
    g.bench_function("ours_verify_batch_8192_par", |b| {
        b.iter(|| {
            (0..PAR_SIGS / BATCH)
                .into_par_iter()
                .all(|c| ours_prepare_and_batch(&s, c * BATCH..(c + 1) * BATCH))
        })
    });
    g.finish();
}

/// A regtest block at [`BLOCK_HEIGHT`]: a coinbase plus [`BLOCK_TXS`] one-in one-out P2PKH
/// transactions, each spending a distinct mature non-coinbase coin from the returned view.
struct BlockFixture {
    params: &'static Params,
    block: Block,
    view: HashMap<OutPoint, Coin>,
    /// Spent outputs per spending transaction (for the breakdown benches).
    spent: Vec<TxOut>,
}

fn block_fixture() -> BlockFixture {
    let params = Network::Regtest.params();
    let keys: Vec<SigningKey> = (0..BLOCK_KEYS).map(key).collect();
    let locks: Vec<(Script, [u8; 32])> = keys
        .iter()
        .map(|k| {
            let pk = k.verifying_key().to_bytes();
            (p2pkh(&pubkey_hash(&pk)), pk)
        })
        .collect();
    let in_value = Amount::from_sat(100_000).unwrap();
    let out_value = Amount::from_sat(99_000).unwrap();
    let mut view = HashMap::with_capacity(BLOCK_TXS);
    let mut txs = Vec::with_capacity(BLOCK_TXS + 1);
    let mut spent = Vec::with_capacity(BLOCK_TXS);
    for i in 0..BLOCK_TXS {
        let (lock, pk) = &locks[i % BLOCK_KEYS];
        let prevout = OutPoint { txid: sha256d(&(i as u64).to_le_bytes()), index: (i % 3) as u32 };
        let coin_out = TxOut { value: in_value, lock: lock.clone() };
        view.insert(prevout, Coin { out: coin_out.clone(), height: 100, is_coinbase: false });
        let (dest, _) = &locks[(i + 1) % BLOCK_KEYS];
        let mut tx = Transaction {
            version: 1,
            inputs: vec![TxIn { prevout, unlock: Script::default() }],
            outputs: vec![TxOut { value: out_value, lock: dest.clone() }],
            lock_time: 0,
        };
        let msg = sighash(&tx, &SighashCache::new(&tx), 0, &coin_out);
        let sig = keys[i % BLOCK_KEYS].sign(&msg.0).to_bytes();
        tx.inputs[0].unlock = p2pkh_unlock(&sig, pk);
        txs.push(tx);
        spent.push(coin_out);
    }
    let fees = Amount::from_sat((in_value.to_sat() - out_value.to_sat()) * BLOCK_TXS as u64).unwrap();
    let mut cb_unlock = Vec::new();
    push_int(&mut cb_unlock, BLOCK_HEIGHT as i64);
    push_data(&mut cb_unlock, b"quarry bench");
    let coinbase = Transaction {
        version: 1,
        inputs: vec![TxIn { prevout: OutPoint::NULL, unlock: Script(cb_unlock) }],
        outputs: vec![TxOut {
            value: block_subsidy(params, BLOCK_HEIGHT).checked_add(fees).unwrap(),
            lock: locks[0].0.clone(),
        }],
        lock_time: 0,
    };
    txs.insert(0, coinbase);
    let txids: Vec<Hash256> = txs.iter().map(Transaction::txid).collect();
    let (root, mutated) = merkle_root(&txids);
    assert!(!mutated);
    let mut header = BlockHeader {
        version: 1,
        prev: sha256d(b"bench parent"),
        merkle_root: root,
        time: params.genesis_time + BLOCK_HEIGHT * params.target_spacing,
        bits: 0x207f_ffff,
        nonce: 0,
    };
    while check_proof_of_work(&header.hash(), header.bits, &params.pow_limit).is_err() {
        header.nonce += 1;
    }
    BlockFixture { params, block: Block { header, txs }, view, spent }
}

fn bench_block(c: &mut Criterion) {
    let f = block_fixture();
    let checked: CheckedBlock = check_block(f.block.clone(), f.params).expect("fixture passes check_block");
    let result = connect_block(&checked, BLOCK_HEIGHT, f.params, &f.view).expect("fixture connects");
    assert_eq!(result.spent.len(), BLOCK_TXS);
    assert_eq!(result.fees.to_sat(), 1_000 * BLOCK_TXS as u64);

    let mut g = c.benchmark_group("block");
    g.sample_size(15).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Elements(BLOCK_TXS as u64));
    g.bench_function("connect_block_2000_p2pkh", |b| {
        b.iter(|| connect_block(black_box(&checked), BLOCK_HEIGHT, f.params, &f.view).is_ok())
    });
    // Every transaction already verified at mempool admission (the ScriptCache): the block
    // connects without re-running scripts. Target: >= 5x faster than cold.
    let cache = quarry::consensus::ScriptCache::new(10_000);
    for txid in checked.txids() {
        cache.insert(*txid);
    }
    g.bench_function("connect_block_2000_p2pkh_mempool_cached", |b| {
        b.iter(|| {
            quarry::consensus::connect_block_cached(
                black_box(&checked),
                BLOCK_HEIGHT,
                f.params,
                &f.view,
                &cache,
            )
            .is_ok()
        })
    });
    // check_block consumes the block; the clone is made outside the timed routine.
    g.bench_function("check_block_2000_p2pkh", |b| {
        b.iter_batched(|| f.block.clone(), |blk| check_block(blk, f.params).is_ok(), BatchSize::LargeInput)
    });
    g.finish();

    // Single-threaded pieces of connect_block's per-input work, 2,000 inputs each.
    let txs = &f.block.txs[1..];
    let mut g = c.benchmark_group("connect_breakdown");
    g.sample_size(15).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(BLOCK_TXS as u64));
    g.bench_function("view_lookup_clone_2000", |b| {
        b.iter(|| {
            txs.iter()
                .map(|tx| f.view.get(&tx.inputs[0].prevout).cloned().map_or(0, |c| c.height))
                .sum::<u32>()
        })
    });
    g.bench_function("sighash_2000", |b| {
        b.iter(|| {
            txs.iter()
                .zip(&f.spent)
                .map(|(tx, out)| sighash(tx, &SighashCache::new(tx), 0, out).0[0] as u32)
                .sum::<u32>()
        })
    });
    // Sighash + script execution with deferred signatures (includes PreparedSig::new), no batch.
    g.bench_function("sighash_script_deferred_2000", |b| {
        let mut pending = Vec::with_capacity(BLOCK_TXS);
        b.iter(|| {
            pending.clear();
            for (tx, out) in txs.iter().zip(&f.spent) {
                let msg = sighash(tx, &SighashCache::new(tx), 0, out);
                let ctx = SpendContext { tx_lock_time: tx.lock_time };
                let mut checker = DeferredChecker { msg: &msg.0, pending: &mut pending };
                verify_spend(&tx.inputs[0].unlock.0, &out.lock.0, &ctx, &mut checker).unwrap();
            }
            pending.len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench_header_hash, bench_merkle, bench_signatures, bench_block);
criterion_main!(benches);
