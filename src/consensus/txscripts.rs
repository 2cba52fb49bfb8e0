//! Script checks of many loose transactions at once (mempool admission): every input run with
//! deferred signatures, then one batch verification over all their signatures. A failed
//! batch is narrowed down per transaction, so only the transactions that are really invalid
//! get an error (and only their senders are blamed); the error is the one an eager check
//! gives ([`verify_tx_scripts`]), so batching never changes what a rejection says. Pure and
//! single-threaded: the node runs it on its verifier threads.

use super::connect::verify_tx_scripts;
use super::ConsensusError;
use crate::primitives::{Transaction, TxOut};
use crate::script::sig::{verify_batch, PreparedSig};
use crate::script::{sighash, verify_spend, DeferredChecker, SighashCache, SpendContext};

/// Verifies the scripts of each `(tx, spent)` pair, `spent` giving the output each input of
/// `tx` spends, in order. Returns one result per pair, in order: exactly what
/// [`verify_tx_scripts`] returns for it alone.
pub fn verify_txs_batched(txs: &[(&Transaction, &[TxOut])]) -> Vec<Result<(), ConsensusError>> {
    let mut results: Vec<Result<(), ConsensusError>> = Vec::with_capacity(txs.len());
    let mut sigs: Vec<PreparedSig> = Vec::new();
    // Per transaction whose scripts passed with deferred signatures: its signatures' range.
    let mut deferred: Vec<(usize, std::ops::Range<usize>)> = Vec::new();
    for (i, (tx, spent)) in txs.iter().enumerate() {
        let start = sigs.len();
        if spent.len() >= tx.inputs.len() && scripts_pass_deferred(tx, spent, &mut sigs) {
            deferred.push((i, start..sigs.len()));
            results.push(Ok(()));
        } else {
            // The eager run names the exact error (a signature that could not even be
            // decoded, a failing script, or too few spent outputs).
            sigs.truncate(start);
            results.push(eager(tx, spent));
        }
    }
    if !verify_batch(&sigs) {
        for (i, range) in deferred {
            if !verify_batch(&sigs[range]) {
                let (tx, spent) = txs[i];
                results[i] = eager(tx, spent);
            }
        }
    }
    results
}

/// Runs every input of `tx` with deferred signature checks, appending the signatures to
/// `sigs`. False if any script fails.
fn scripts_pass_deferred(tx: &Transaction, spent: &[TxOut], sigs: &mut Vec<PreparedSig>) -> bool {
    let cache = SighashCache::new(tx);
    let ctx = SpendContext { tx_lock_time: tx.lock_time };
    tx.inputs.iter().zip(spent).enumerate().all(|(input, (txin, out))| {
        let msg = sighash(tx, &cache, input, out);
        let mut checker = DeferredChecker { msg: &msg.0, pending: sigs };
        verify_spend(&txin.unlock.0, &out.lock.0, &ctx, &mut checker).is_ok()
    })
}

fn eager(tx: &Transaction, spent: &[TxOut]) -> Result<(), ConsensusError> {
    // An input without a spent output cannot be checked: its coin is missing.
    if let Some(uncovered) = tx.inputs.get(spent.len()) {
        return Err(ConsensusError::MissingInput { outpoint: uncovered.prevout });
    }
    verify_tx_scripts(tx, spent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::{Amount, Hash256, OutPoint};
    use crate::script::ScriptError;
    use crate::testkit::{key, p2pkh_lock, spend_p2pkh};

    /// `n` one-input P2PKH spends; the ones in `corrupt` carry a flipped signature bit, the
    /// ones in `wrong_key` are signed by another key.
    fn spends(n: usize, corrupt: &[usize], wrong_key: &[usize]) -> Vec<(Transaction, Vec<TxOut>)> {
        (0..n)
            .map(|i| {
                let k = key(1);
                let out = TxOut { value: Amount::from_sat(1000).unwrap(), lock: p2pkh_lock(&k) };
                let op = OutPoint { txid: Hash256([i as u8 + 1; 32]), index: 0 };
                let signer = if wrong_key.contains(&i) { key(2) } else { k };
                let mut tx = spend_p2pkh(
                    &signer,
                    &[(op, out.clone())],
                    vec![TxOut { value: Amount::from_sat(900).unwrap(), ..out.clone() }],
                    0,
                );
                if corrupt.contains(&i) {
                    tx.inputs[0].unlock.0[10] ^= 1;
                }
                (tx, vec![out])
            })
            .collect()
    }

    fn run(set: &[(Transaction, Vec<TxOut>)]) -> Vec<Result<(), ConsensusError>> {
        let refs: Vec<(&Transaction, &[TxOut])> = set.iter().map(|(t, s)| (t, s.as_slice())).collect();
        verify_txs_batched(&refs)
    }

    #[test]
    fn a_valid_batch_passes_and_each_bad_transaction_gets_its_eager_error() {
        assert!(run(&spends(40, &[], &[])).iter().all(Result::is_ok));
        let set = spends(40, &[3, 31], &[17]);
        let results = run(&set);
        for (i, r) in results.iter().enumerate() {
            let eager = verify_tx_scripts(&set[i].0, &set[i].1);
            assert_eq!(r, &eager, "tx {i}: the batch result is the eager one");
            assert_eq!(r.is_err(), [3, 17, 31].contains(&i), "tx {i}");
        }
        // A wrong key fails on its pubkey hash, a flipped bit on the signature (NULLFAIL).
        assert!(matches!(results[17], Err(ConsensusError::Script { input: 0, .. })));
        assert!(matches!(
            results[3],
            Err(ConsensusError::Script { input: 0, error: ScriptError::NullFail { .. } })
        ));
    }

    #[test]
    fn an_input_without_its_spent_output_is_missing_not_passed() {
        let set = spends(2, &[], &[]);
        let refs: Vec<(&Transaction, &[TxOut])> = vec![(&set[0].0, &[]), (&set[1].0, set[1].1.as_slice())];
        let results = verify_txs_batched(&refs);
        assert_eq!(results[0], Err(ConsensusError::MissingInput { outpoint: set[0].0.inputs[0].prevout }));
        assert_eq!(results[1], Ok(()));
    }
}
