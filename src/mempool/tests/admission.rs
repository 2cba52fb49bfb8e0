//! One test per admission rule, each with the exact error.

use super::*;
use crate::primitives::TxIn;
use crate::store::StoreError;

fn consensus_error(r: Result<Accepted, MempoolError>) -> (MempoolError, ConsensusError) {
    match r {
        Err(e @ MempoolError::Consensus { .. }) => {
            let MempoolError::Consensus { error, .. } = &e else { unreachable!() };
            let error = error.clone();
            (e, error)
        }
        other => panic!("expected a consensus error, got {other:?}"),
    }
}

#[test]
fn valid_spend_is_admitted_with_its_fee_and_entry_and_scripts_cached() {
    let mut fx = Fx::new();
    let coin = fx.fund(100_000);
    let tx = pay(std::slice::from_ref(&coin), &[90_000]);
    let txid = tx.txid();
    assert!(!fx.cache.contains(&txid));
    let a = fx.add(tx.clone());
    assert_eq!((a.txid, a.fee.to_sat(), a.size), (txid, 10_000, tx.encoded_size()));
    assert!(fx.pool.contains(&txid) && fx.pool.get(&txid) == Some(&tx));
    assert!(fx.cache.contains(&txid), "admitted txids go into the chain's script cache");
    assert_eq!(fx.pool.spender(&coin.0), Some(txid));
    let e = fx.pool.entry(&txid).unwrap();
    assert_eq!((e.fee.to_sat(), e.size, e.time, e.height), (10_000, tx.encoded_size(), NOW, 100));
    assert_eq!((e.ancestor_count, e.descendant_count), (1, 1));
    let info = fx.pool.info(NOW);
    assert_eq!((info.size, info.bytes, info.total_fee.to_sat()), (1, tx.encoded_size(), 10_000));
    assert_eq!((info.mempool_min_fee, info.min_relay_tx_fee, info.max_mempool), (1000, 1000, 64 << 20));
}

#[test]
fn context_free_consensus_failure_is_refused_as_the_peers_fault() {
    let mut fx = Fx::new();
    let coin = fx.fund(100_000);
    let tx = pay(&[coin.clone(), coin.clone()], &[90_000]);
    let (e, inner) = consensus_error(fx.accept(tx));
    assert_eq!(inner, ConsensusError::DuplicateInput { outpoint: coin.0 });
    assert!(e.is_peer_fault());
}

#[test]
fn coinbase_is_refused() {
    let mut fx = Fx::new();
    let cb = coinbase(101, Amount::from_sat(5000).unwrap(), lock(), b"x");
    let txid = cb.txid();
    let e = fx.accept(cb).unwrap_err();
    assert_eq!(e, MempoolError::Coinbase { txid });
    assert!(e.is_peer_fault());
}

#[test]
fn transaction_above_the_relay_size_limit_is_refused() {
    let max = size_of(1, 1) + 10;
    let mut fx = Fx::with(MempoolConfig { max_tx_size: max, ..MempoolConfig::default() });
    let coin = fx.fund(100_000);
    let tx = pay(&[coin], &[40_000, 40_000]);
    let e = fx.accept(tx.clone()).unwrap_err();
    assert_eq!(e, MempoolError::TxTooLarge { size: tx.encoded_size(), max });
    assert!(!e.is_peer_fault(), "policy, not invalid");
}

#[test]
fn duplicate_is_refused() {
    let mut fx = Fx::new();
    let coin = fx.fund(100_000);
    let tx = pay(&[coin], &[90_000]);
    fx.add(tx.clone());
    let e = fx.accept(tx.clone()).unwrap_err();
    assert_eq!(e, MempoolError::AlreadyInPool { txid: tx.txid() });
    assert!(!e.is_peer_fault());
}

#[test]
fn immature_coinbase_spend_is_refused_until_the_next_block_reaches_maturity() {
    let mut fx = Fx::new();
    // Next block is 101: a coinbase from 92 has depth 9 there, one from 91 depth 10.
    let young = fx.fund_at(100_000, 92, true);
    let (e, inner) = consensus_error(fx.accept(pay(std::slice::from_ref(&young), &[90_000])));
    assert_eq!(inner, ConsensusError::ImmatureCoinbaseSpend { outpoint: young.0, depth: 9, maturity: 10 });
    assert!(!e.is_peer_fault(), "it becomes valid later");
    let mature = fx.fund_at(100_000, 91, true);
    fx.add(pay(&[mature], &[90_000]));
    // A non-coinbase coin of the same height is fine.
    let plain = fx.fund_at(100_000, 92, false);
    fx.add(pay(&[plain], &[90_000]));
}

#[test]
fn lock_time_must_be_reached_by_the_next_block() {
    let mut fx = Fx::new();
    let coin = fx.fund(100_000);
    let late = spend_p2pkh(&key(1), std::slice::from_ref(&coin), vec![txout(90_000)], 102);
    let (e, inner) = consensus_error(fx.accept(late));
    assert_eq!(inner, ConsensusError::LockTimeNotReached { lock_time: 102, height: 101 });
    assert!(!e.is_peer_fault());
    fx.add(spend_p2pkh(&key(1), &[coin], vec![txout(90_000)], 101));
}

#[test]
fn outputs_above_inputs_are_refused() {
    let mut fx = Fx::new();
    let coin = fx.fund(100_000);
    let (e, inner) = consensus_error(fx.accept(pay(&[coin], &[100_001])));
    assert_eq!(inner, ConsensusError::InputsBelowOutputs { inputs: 100_000, outputs: 100_001 });
    assert!(e.is_peer_fault());
}

#[test]
fn input_sum_overflow_is_refused() {
    let mut fx = Fx::new();
    let max = Amount::MAX.to_sat();
    let a = fx.fund(max);
    let b = fx.fund(max);
    let (_, inner) = consensus_error(fx.accept(pay(&[a, b], &[1000])));
    assert_eq!(inner, ConsensusError::InputsOverflow);
}

#[test]
fn fee_below_the_minimum_relay_rate_is_refused_with_the_needed_fee() {
    let mut fx = Fx::new();
    let size = size_of(1, 1);
    let needed = (size as u64 * 1000).div_ceil(1000);
    let coin = fx.fund(100_000);
    let e = fx.accept(pay(std::slice::from_ref(&coin), &[100_000 - needed + 1])).unwrap_err();
    let fee = needed - 1;
    assert_eq!(
        e,
        MempoolError::FeeTooLow { fee, size, rate: fee * 1000 / size as u64, min_rate: 1000, needed }
    );
    assert!(!e.is_peer_fault());
    fx.add(pay(&[coin], &[100_000 - needed]));

    // The rate is configurable: at 0 a free transaction is relayed.
    let mut free = Fx::with(MempoolConfig { min_relay_fee_rate: 0, ..MempoolConfig::default() });
    let coin = free.fund(100_000);
    free.add(pay(&[coin], &[100_000]));
}

#[test]
fn bad_signature_is_refused_as_the_peers_fault_and_not_cached() {
    let mut fx = Fx::new();
    let coin = fx.fund(100_000);
    let mut tx = pay(&[coin], &[90_000]);
    tx.inputs[0].unlock.0[10] ^= 1;
    let txid = tx.txid();
    let (e, inner) = consensus_error(fx.accept(tx));
    assert!(matches!(inner, ConsensusError::Script { input: 0, .. }), "{inner:?}");
    assert!(e.is_peer_fault());
    assert!(!fx.cache.contains(&txid) && fx.pool.is_empty());
}

#[test]
fn signature_operations_above_the_relay_limit_are_refused() {
    // Every P2PKH locking script holds one CHECKSIG.
    let mut fx = Fx::with(MempoolConfig { max_tx_sigops: 1, ..MempoolConfig::default() });
    let coin = fx.fund(100_000);
    let e = fx.accept(pay(std::slice::from_ref(&coin), &[40_000, 40_000])).unwrap_err();
    assert_eq!(e, MempoolError::TooManySigops { got: 2, max: 1 });
    fx.add(pay(&[coin], &[90_000]));
}

#[test]
fn confirmed_transaction_is_refused_as_already_confirmed_not_kept_as_orphan() {
    let mut fx = Fx::new();
    let coin = fx.fund(100_000);
    let tx = pay(std::slice::from_ref(&coin), &[90_000]);
    // Confirmed: its input is spent, its output is in the UTXO set.
    fx.utxos.coins.remove(&coin.0);
    fx.utxos.coins.insert(out(&tx, 0).0, Coin { out: txout(90_000), height: 50, is_coinbase: false });
    assert_eq!(fx.accept(tx.clone()).unwrap_err(), MempoolError::AlreadyConfirmed { txid: tx.txid() });
    assert_eq!(fx.pool.orphan_count(), 0);
}

#[test]
fn spending_a_nonexistent_output_of_a_pool_transaction_is_invalid() {
    let mut fx = Fx::new();
    let coin = fx.fund(100_000);
    let parent = fx.add(pay(&[coin], &[90_000]));
    let bogus = OutPoint { txid: parent.txid, index: 1 };
    let tx = pay(&[(bogus, txout(90_000))], &[80_000]);
    let (_, inner) = consensus_error(fx.accept(tx));
    assert_eq!(inner, ConsensusError::MissingInput { outpoint: bogus });
}

#[test]
fn chains_of_unconfirmed_transactions_are_admitted_and_linked() {
    let mut fx = Fx::new();
    let coin = fx.fund(100_000);
    let a = pay(&[coin], &[90_000, 5_000]);
    let b = pay(&[out(&a, 0)], &[80_000]);
    let c = pay(&[out(&b, 0), out(&a, 1)], &[80_000]);
    for tx in [&a, &b, &c] {
        fx.add(tx.clone());
    }
    assert_eq!(fx.pool.txids(), vec![a.txid(), b.txid(), c.txid()], "parents before children");
    let ea = fx.pool.entry(&a.txid()).unwrap();
    assert_eq!((ea.ancestor_count, ea.descendant_count), (1, 3));
    assert_eq!(ea.descendant_fees.to_sat(), 5_000 + 10_000 + 5_000);
    assert_eq!(ea.spent_by.len(), 2);
    let ec = fx.pool.entry(&c.txid()).unwrap();
    assert_eq!((ec.ancestor_count, ec.descendant_count), (3, 1));
    assert_eq!(sorted(ec.depends), sorted(vec![a.txid(), b.txid()]));
    assert_eq!(fx.pool.spender(&out(&a, 1).0), Some(c.txid()));
}

#[test]
fn utxo_source_failure_is_not_the_peers_fault() {
    struct Broken;
    impl UtxoSource for Broken {
        fn coins(&self, _: &[OutPoint]) -> Result<HashMap<OutPoint, Coin>, ChainError> {
            Err(ChainError::Store(StoreError::Corrupt { cf: "utxo", detail: "disk on fire".into() }))
        }
        fn tip_height(&self) -> u32 {
            100
        }
    }
    let mut fx = Fx::new();
    let coin = fx.fund(100_000);
    let e = fx.pool.accept(pay(&[coin], &[90_000]), &Broken, NOW).unwrap_err();
    assert_eq!(e.to_string(), "UTXO lookup failed: corrupt record in column family utxo: disk on fire");
    assert!(
        matches!(&e, MempoolError::Utxo(u) if matches!(&*u.0, ChainError::Store(StoreError::Corrupt { .. })))
    );
    assert!(!e.is_peer_fault());
}

#[test]
fn null_prevout_outside_a_coinbase_is_invalid() {
    let mut fx = Fx::new();
    let coin = fx.fund(100_000);
    let mut tx = pay(&[coin], &[90_000]);
    tx.inputs.push(TxIn { prevout: OutPoint::NULL, unlock: Script::default() });
    let (_, inner) = consensus_error(fx.accept(tx));
    assert_eq!(inner, ConsensusError::NullPrevout { input: 1 });
}

// ---- Pipelined admission (accept_deferred, then accept_verified) ---------------------------

fn job(d: Result<Deferred, MempoolError>) -> ScriptJob {
    match d {
        Ok(Deferred::Verify(job)) => job,
        other => panic!("expected a script job, got {other:?}"),
    }
}

#[test]
fn deferred_admission_leaves_the_pool_unchanged_until_the_scripts_pass() {
    let mut fx = Fx::new();
    let coin = fx.fund(100_000);
    let tx = pay(&[coin.clone()], &[90_000]);
    let j = job(fx.pool.accept_deferred(tx.clone(), &fx.utxos, NOW, false));
    assert_eq!((j.txid, &j.tx, &j.spent), (tx.txid(), &tx, &vec![coin.1.clone()]));
    assert!(fx.pool.is_empty() && !fx.cache.contains(&tx.txid()), "nothing admitted or cached yet");
    // The caller verified the scripts (and records it in the cache, as the node's pool does).
    assert_eq!(crate::consensus::verify_tx_scripts(&j.tx, &j.spent), Ok(()));
    let a = added(fx.pool.accept_verified(j, &fx.utxos, NOW, false));
    assert_eq!(a.txid, tx.txid());
    assert!(fx.pool.contains(&tx.txid()) && fx.cache.contains(&tx.txid()));
    // A transaction whose scripts are cached needs no job: the outcome is final at once.
    let mut fresh = Fx::new();
    fresh.utxos = fx.utxos.clone();
    fresh.cache.insert(tx.txid());
    assert!(matches!(
        fresh.pool.accept_deferred(tx, &fresh.utxos, NOW, false),
        Ok(Deferred::Done(Accepted::Added(_)))
    ));
}

#[test]
fn cheap_rules_refuse_before_any_script_job_is_made() {
    let mut fx = Fx::new();
    let coin = fx.fund(100_000);
    let free = pay(&[coin], &[100_000]); // no fee at all
    assert!(matches!(
        fx.pool.accept_deferred(free, &fx.utxos, NOW, false),
        Err(MempoolError::FeeTooLow { fee: 0, .. })
    ));
    let missing = pay(&[(OutPoint { txid: Hash256([7; 32]), index: 0 }, txout(5_000))], &[4_000]);
    // Local submissions never become orphans; gossip keeps them.
    assert!(matches!(
        fx.pool.accept_deferred(missing.clone(), &fx.utxos, NOW, true),
        Err(MempoolError::MissingInputs { .. })
    ));
    assert!(matches!(
        fx.pool.accept_deferred(missing, &fx.utxos, NOW, false),
        Ok(Deferred::Done(Accepted::Orphan { .. }))
    ));
}

#[test]
fn the_second_half_rechecks_what_changed_while_the_scripts_were_checked() {
    let mut fx = Fx::new();
    let coin = fx.fund(100_000);
    let first = pay(&[coin.clone()], &[90_000]);
    let rival = pay(&[coin.clone()], &[90_500]); // same input, less fee
    let j_first = job(fx.pool.accept_deferred(first.clone(), &fx.utxos, NOW, false));
    let j_rival = job(fx.pool.accept_deferred(rival.clone(), &fx.utxos, NOW, false));
    added(fx.pool.accept_verified(j_first, &fx.utxos, NOW, false));
    // The rival now conflicts with a pool entry and does not pay enough to replace it.
    match fx.pool.accept_verified(j_rival, &fx.utxos, NOW, false) {
        Err(MempoolError::ReplacementRateTooLow { conflict, .. }) => assert_eq!(conflict, first.txid()),
        other => panic!("{other:?}"),
    }
    // And a job whose coin was spent by a block meanwhile finds its input missing.
    let other = fx.fund(50_000);
    let late = pay(&[other.clone()], &[40_000]);
    let j_late = job(fx.pool.accept_deferred(late, &fx.utxos, NOW, true));
    fx.utxos.coins.remove(&other.0);
    assert!(matches!(
        fx.pool.accept_verified(j_late, &fx.utxos, NOW, true),
        Err(MempoolError::MissingInputs { .. })
    ));
    assert_eq!(fx.pool.len(), 1);
    fx.pool.graph.assert_consistent();
}
