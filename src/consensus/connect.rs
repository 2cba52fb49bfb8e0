//! Contextual block validation against the UTXO set, with batched parallel script checks.

use super::params::Params;
use super::validation::{block_subsidy, in_tx, CheckedBlock};
use super::ConsensusError;
use crate::primitives::{Amount, Hash256, OutPoint, Transaction, TxOut};
use crate::script::opcodes::{decode_num, Instruction, Instructions};
use crate::script::sig::{verify_batch, PreparedSig};
use crate::script::templates::{is_unspendable, p2sh_commitment};
use crate::script::{
    count_sigops, sighash, verify_spend, DeferredChecker, EagerChecker, SighashCache, SpendContext,
};
use rayon::prelude::*;
use std::collections::HashMap;

/// An unspent output and where it came from.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Coin {
    /// The output.
    pub out: TxOut,
    /// Height of the block that created it.
    pub height: u32,
    /// Whether it was created by a coinbase (subject to maturity).
    pub is_coinbase: bool,
}

/// Read access to the UTXO set as of the parent block.
pub trait CoinLookup {
    /// The unspent coin at `outpoint`, if any.
    fn coin(&self, outpoint: &OutPoint) -> Option<&Coin>;
}

impl CoinLookup for HashMap<OutPoint, Coin> {
    fn coin(&self, outpoint: &OutPoint) -> Option<&Coin> {
        self.get(outpoint)
    }
}

/// The effect of a valid block on the UTXO set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockConnect {
    /// Coins from the parent's UTXO set that the block spends, in input order (the undo data).
    pub spent: Vec<(OutPoint, Coin)>,
    /// Coins the block creates and does not itself spend, sorted by outpoint. Unspendable
    /// (OP_RETURN) outputs are not included.
    pub created: Vec<(OutPoint, Coin)>,
    /// Total fees.
    pub fees: Amount,
}

/// The height a coinbase commits to: the first push of its unlock data, a script number.
fn coinbase_height(tx: &Transaction) -> Option<i64> {
    match Instructions::new(&tx.inputs[0].unlock.0).next()? {
        Ok((_, Instruction::Number(n))) => Some(n as i64),
        Ok((_, Instruction::Push(d))) => decode_num(d, 5).ok(),
        _ => None,
    }
}

/// Validates `block` at `height` against the parent's UTXO set (`view`) and returns its
/// effect. Rules: coinbase height, lock times, inputs exist and are unspent (also within the
/// block), coinbase maturity, amounts, coinbase value, total sigops with P2SH redeem scripts,
/// and every input script (signatures batch-verified in parallel).
///
/// The sequential bookkeeping (which must see transactions in order) runs alongside the
/// parallel script work ([`rayon::join`]); its errors take precedence, so the error reported
/// never depends on scheduling.
pub fn connect_block(
    block: &CheckedBlock,
    height: u32,
    params: &Params,
    view: &(dyn CoinLookup + Sync),
) -> Result<BlockConnect, ConsensusError> {
    connect_block_cached(block, height, params, view, &ScriptCache::new(0))
}

/// [`connect_block`], skipping the script checks of transactions in `verified` (scripts
/// already verified, e.g. at mempool admission). Sound because a script's verdict depends only
/// on the transaction (fixed by its txid) and the outputs it spends (fixed by its outpoints:
/// an outpoint names one output forever).
pub fn connect_block_cached(
    block: &CheckedBlock,
    height: u32,
    params: &Params,
    view: &(dyn CoinLookup + Sync),
    verified: &ScriptCache,
) -> Result<BlockConnect, ConsensusError> {
    let txs = &block.block().txs;
    let txids = block.txids();
    let todo: Vec<usize> = (1..txs.len()).filter(|&t| !verified.contains(&txids[t])).collect();
    let inputs: usize = todo.iter().map(|&t| txs[t].inputs.len()).sum();
    let (effect, scripts_ok) = if inputs < PARALLEL_MIN_INPUTS {
        // Too little script work to pay for a hand-off to the pool and the wait for it.
        let effect = utxo_rules(block, height, params, view)?;
        (Ok(effect), scripts_pass_fast(block, &todo, view, false))
    } else {
        rayon::join(
            || utxo_rules(block, height, params, view),
            || scripts_pass_fast(block, &todo, view, true),
        )
    };
    let effect = effect?;
    if !scripts_ok {
        verify_scripts_in_order(block, view)?;
    }
    Ok(effect)
}

/// Fewer input scripts to verify than this, and [`connect_block_cached`] runs them on the
/// calling thread: handing work to the rayon pool from outside it costs a worker wake-up
/// and a wait (tens of microseconds), more than a small block's scripts take. Blocks of
/// coinbases only, and blocks whose transactions were all admitted first, stay on the
/// caller.
pub const PARALLEL_MIN_INPUTS: usize = 64;

/// The outputs a block adds to the UTXO set, in block order: all but unspendable ones and
/// those a later transaction of the same block spends (the outpoints of [`BlockConnect`]'s
/// `created`). For undoing a block and for the address index.
pub fn created_outputs(block: &CheckedBlock) -> Vec<(OutPoint, &TxOut)> {
    let txs = &block.block().txs;
    let inner: std::collections::HashSet<&OutPoint> =
        txs.iter().skip(1).flat_map(|t| t.inputs.iter().map(|i| &i.prevout)).collect();
    let mut out = Vec::new();
    for (tx, txid) in txs.iter().zip(block.txids()) {
        for (index, o) in tx.outputs.iter().enumerate() {
            let op = OutPoint { txid: *txid, index: index as u32 };
            if !is_unspendable(&o.lock.0) && !inner.contains(&op) {
                out.push((op, o));
            }
        }
    }
    out
}

/// The UTXO effect of a block that already passed [`connect_block`] once (replaying stored
/// blocks onto a UTXO set that lags the tip, at start): the UTXO-set rules only, no script
/// checks.
pub fn utxo_effect(
    block: &CheckedBlock,
    height: u32,
    params: &Params,
    view: &dyn CoinLookup,
) -> Result<BlockConnect, ConsensusError> {
    utxo_rules(block, height, params, view)
}

/// The sequential UTXO-set rules, in block order.
fn utxo_rules(
    block: &CheckedBlock,
    height: u32,
    params: &Params,
    view: &dyn CoinLookup,
) -> Result<BlockConnect, ConsensusError> {
    let txs = &block.block().txs;
    let txids = block.txids();
    let coinbase = &txs[0];
    let got = coinbase_height(coinbase);
    if got != Some(height as i64) {
        return Err(in_tx(0, txids[0])(ConsensusError::BadCoinbaseHeight { got, expected: height }));
    }

    let n_outputs: usize = txs.iter().map(|t| t.outputs.len()).sum();
    let n_inputs: usize = txs.iter().skip(1).map(|t| t.inputs.len()).sum();
    let mut created: HashMap<OutPoint, Coin> = HashMap::with_capacity(n_outputs);
    let mut spent_by: HashMap<OutPoint, usize> = HashMap::with_capacity(n_inputs);
    let mut spent = Vec::with_capacity(n_inputs);
    let mut fees = Amount::ZERO;
    let mut sigops = block.legacy_sigops();

    for (index, tx) in txs.iter().enumerate() {
        let fail = in_tx(index, txids[index]);
        if tx.lock_time > height {
            return Err(fail(ConsensusError::LockTimeNotReached { lock_time: tx.lock_time, height }));
        }
        if index > 0 {
            let mut in_sum = Amount::ZERO;
            for input in &tx.inputs {
                let op = input.prevout;
                if let Some(first_tx) = spent_by.insert(op, index) {
                    return Err(fail(ConsensusError::SpentInBlock { outpoint: op, first_tx }));
                }
                let (value, coin_height, is_coinbase, is_p2sh) = match created.remove(&op) {
                    Some(c) => {
                        (c.out.value, c.height, c.is_coinbase, p2sh_commitment(&c.out.lock.0).is_some())
                    }
                    None => {
                        let c = view
                            .coin(&op)
                            .ok_or_else(|| fail(ConsensusError::MissingInput { outpoint: op }))?;
                        spent.push((op, c.clone()));
                        (c.out.value, c.height, c.is_coinbase, p2sh_commitment(&c.out.lock.0).is_some())
                    }
                };
                // saturating: a coin "from the future" would mean an inconsistent view; it
                // then counts as depth 0 (immature) rather than wrapping around.
                let depth = height.saturating_sub(coin_height);
                if is_coinbase && depth < params.coinbase_maturity {
                    return Err(fail(ConsensusError::ImmatureCoinbaseSpend {
                        outpoint: op,
                        depth,
                        maturity: params.coinbase_maturity,
                    }));
                }
                in_sum = in_sum.checked_add(value).map_err(|_| fail(ConsensusError::InputsOverflow))?;
                if is_p2sh {
                    if let Some(Ok((_, Instruction::Push(redeem)))) =
                        Instructions::new(&input.unlock.0).last()
                    {
                        sigops += count_sigops(redeem);
                    }
                }
            }
            let out_sum = Amount::sum(tx.outputs.iter().map(|o| o.value)).expect("checked by check_block");
            let fee = in_sum.checked_sub(out_sum).map_err(|_| {
                fail(ConsensusError::InputsBelowOutputs {
                    inputs: in_sum.to_sat(),
                    outputs: out_sum.to_sat(),
                })
            })?;
            fees = fees.checked_add(fee).map_err(|_| fail(ConsensusError::InputsOverflow))?;
        }
        for (i, out) in tx.outputs.iter().enumerate() {
            if !is_unspendable(&out.lock.0) {
                let op = OutPoint { txid: txids[index], index: i as u32 };
                created.insert(op, Coin { out: out.clone(), height, is_coinbase: index == 0 });
            }
        }
    }

    if sigops > params.max_block_sigops {
        return Err(ConsensusError::TooManySigops { got: sigops, max: params.max_block_sigops });
    }
    let max = block_subsidy(params, height).checked_add(fees).map_err(|_| ConsensusError::InputsOverflow)?;
    let paid = Amount::sum(coinbase.outputs.iter().map(|o| o.value)).expect("checked by check_block");
    if paid > max {
        return Err(in_tx(0, txids[0])(ConsensusError::CoinbaseValueTooHigh {
            got: paid.to_sat(),
            max: max.to_sat(),
        }));
    }
    let mut created: Vec<(OutPoint, Coin)> = created.into_iter().collect();
    created.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(BlockConnect { spent, created, fees })
}

/// A bounded set of txids whose scripts are known valid (filled at mempool admission,
/// consulted by [`connect_block_cached`]). Oldest entries are forgotten first. Thread-safe.
pub struct ScriptCache {
    capacity: usize,
    inner: std::sync::Mutex<(std::collections::HashSet<Hash256>, std::collections::VecDeque<Hash256>)>,
}

impl ScriptCache {
    /// A cache holding at most `capacity` txids (0: a cache that holds nothing).
    pub fn new(capacity: usize) -> ScriptCache {
        ScriptCache { capacity, inner: Default::default() }
    }

    /// Records that `txid`'s scripts verified.
    pub fn insert(&self, txid: Hash256) {
        if self.capacity == 0 {
            return;
        }
        let mut g = self.inner.lock().expect("script cache lock");
        if g.0.insert(txid) {
            g.1.push_back(txid);
            while g.1.len() > self.capacity {
                if let Some(old) = g.1.pop_front() {
                    g.0.remove(&old);
                }
            }
        }
    }

    /// True if `txid`'s scripts are known valid.
    pub fn contains(&self, txid: &Hash256) -> bool {
        self.capacity > 0 && self.inner.lock().expect("script cache lock").0.contains(txid)
    }

    /// Number of txids held.
    pub fn len(&self) -> usize {
        self.inner.lock().expect("script cache lock").0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Finds the output an input spends, in the parent's UTXO set or among the block's own
/// transactions. Ordering and double spends are [`utxo_rules`]' business; this only feeds
/// the script checks.
struct SpentOutputs<'a> {
    view: &'a (dyn CoinLookup + Sync),
    txs: &'a [Transaction],
    by_txid: HashMap<Hash256, usize>,
}

impl<'a> SpentOutputs<'a> {
    fn new(block: &'a CheckedBlock, view: &'a (dyn CoinLookup + Sync)) -> Self {
        let by_txid = block.txids().iter().enumerate().map(|(i, t)| (*t, i)).collect();
        SpentOutputs { view, txs: &block.block().txs, by_txid }
    }

    fn get(&self, op: &OutPoint) -> Option<&'a TxOut> {
        if let Some(c) = self.view.coin(op) {
            return Some(&c.out);
        }
        self.by_txid.get(&op.txid).and_then(|&i| self.txs[i].outputs.get(op.index as usize))
    }
}
/// Eagerly verifies every input script of `tx`, whose inputs spend `spent` (in order).
/// Returns the first failure as [`ConsensusError::Script`].
pub fn verify_tx_scripts(tx: &Transaction, spent: &[TxOut]) -> Result<(), ConsensusError> {
    let cache = SighashCache::new(tx);
    let ctx = SpendContext { tx_lock_time: tx.lock_time };
    for (input, (txin, out)) in tx.inputs.iter().zip(spent).enumerate() {
        let msg = sighash(tx, &cache, input, out);
        verify_spend(&txin.unlock.0, &out.lock.0, &ctx, &mut EagerChecker { msg: &msg.0 })
            .map_err(|error| ConsensusError::Script { input, error })?;
    }
    Ok(())
}

/// The fast path: every input script of the transactions at `todo` (block positions; the
/// others are in the script cache), on the rayon pool if `parallel`, in two phases. Phase 1, fine-grained over
/// inputs: sighash, the script run with deferred signatures ([`DeferredChecker`]) and point
/// decompression. Phase 2: one batch verification per worker over all the signatures.
/// Returns false if anything failed; the caller then finds the first error in block order
/// with [`verify_scripts_in_order`].
fn scripts_pass_fast(
    block: &CheckedBlock,
    todo: &[usize],
    view: &(dyn CoinLookup + Sync),
    parallel: bool,
) -> bool {
    if todo.is_empty() {
        return true;
    }
    let txs = &block.block().txs;
    let outputs = SpentOutputs::new(block, view);
    let cache_of = |&t: &usize| SighashCache::new(&txs[t]);
    let caches: Vec<SighashCache> =
        if parallel { todo.par_iter().map(cache_of).collect() } else { todo.iter().map(cache_of).collect() };
    // (index into `todo`, input index) for every input to verify.
    let inputs: Vec<(usize, usize)> =
        todo.iter().enumerate().flat_map(|(k, &t)| (0..txs[t].inputs.len()).map(move |i| (k, i))).collect();
    let prepare = |&(k, i): &(usize, usize)| {
        let tx = &txs[todo[k]];
        let spent = outputs.get(&tx.inputs[i].prevout)?;
        let msg = sighash(tx, &caches[k], i, spent);
        let mut pending = Vec::with_capacity(1);
        let mut checker = DeferredChecker { msg: &msg.0, pending: &mut pending };
        let ctx = SpendContext { tx_lock_time: tx.lock_time };
        verify_spend(&tx.inputs[i].unlock.0, &spent.lock.0, &ctx, &mut checker).ok().map(|_| pending)
    };
    let phase1: Option<Vec<Vec<PreparedSig>>> = if parallel {
        inputs.par_iter().with_min_len(32).map(prepare).collect()
    } else {
        inputs.iter().map(prepare).collect()
    };
    let Some(per_input) = phase1 else { return false };
    let sigs: Vec<PreparedSig> = per_input.into_iter().flatten().collect();
    if !parallel {
        return verify_batch(&sigs);
    }
    let chunk = sigs.len().div_ceil(rayon::current_num_threads().max(1)).max(64);
    sigs.par_chunks(chunk).all(verify_batch)
}

/// The slow path, for blocks whose fast path failed: every transaction eagerly, in block
/// order, so the error is the first in block order. Only called once [`utxo_rules`] passed,
/// so every input's output exists.
fn verify_scripts_in_order(
    block: &CheckedBlock,
    view: &(dyn CoinLookup + Sync),
) -> Result<(), ConsensusError> {
    let outputs = SpentOutputs::new(block, view);
    for (index, tx) in block.block().txs.iter().enumerate().skip(1) {
        let spent: Vec<TxOut> = tx
            .inputs
            .iter()
            .map(|i| outputs.get(&i.prevout).cloned().expect("utxo_rules found every input"))
            .collect();
        verify_tx_scripts(tx, &spent).map_err(in_tx(index, block.txids()[index]))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::{check_block, Network};
    use crate::testkit::{assemble, coinbase, key, p2pkh_lock, spend_p2pkh};

    /// A block at height 20 spending `n` P2PKH coins of key 1, and its view.
    fn block_with_spends(n: usize, corrupt: &[usize]) -> (CheckedBlock, HashMap<OutPoint, Coin>) {
        let params = Network::Regtest.params();
        let k = key(1);
        let mut view = HashMap::new();
        let mut txs = vec![coinbase(20, block_subsidy(params, 20), p2pkh_lock(&k), b"t")];
        for i in 0..n {
            let op = OutPoint { txid: Hash256([i as u8 + 1; 32]), index: 0 };
            let out = TxOut { value: Amount::from_sat(1000).unwrap(), lock: p2pkh_lock(&k) };
            view.insert(op, Coin { out: out.clone(), height: 1, is_coinbase: false });
            let mut tx = spend_p2pkh(
                &k,
                &[(op, out.clone())],
                vec![TxOut { value: Amount::from_sat(900).unwrap(), ..out }],
                0,
            );
            if corrupt.contains(&(i + 1)) {
                tx.inputs[0].unlock.0[10] ^= 1; // flip a bit of the signature
            }
            txs.push(tx);
        }
        let block = assemble(params, Hash256::ZERO, 1, params.genesis_bits, txs);
        (check_block(block, params).unwrap(), view)
    }

    #[test]
    fn valid_spends_connect_and_the_first_bad_signature_in_block_order_is_reported() {
        let params = Network::Regtest.params();
        let (ok, view) = block_with_spends(150, &[]);
        let effect = connect_block(&ok, 20, params, &view).unwrap();
        assert_eq!(effect.spent.len(), 150);
        assert_eq!(effect.fees.to_sat(), 150 * 100);
        for _ in 0..5 {
            let (bad, view) = block_with_spends(150, &[97, 41, 130]);
            match connect_block(&bad, 20, params, &view) {
                Err(ConsensusError::InTx { index, error, .. }) => {
                    assert_eq!(index, 41, "the first failing transaction in block order");
                    assert!(matches!(
                        *error,
                        ConsensusError::Script {
                            input: 0,
                            error: crate::script::ScriptError::NullFail { .. }
                        }
                    ));
                }
                r => panic!("{r:?}"),
            }
        }
    }

    #[test]
    fn cached_transactions_skip_script_checks() {
        let params = Network::Regtest.params();
        let (bad, view) = block_with_spends(4, &[2]);
        assert!(connect_block(&bad, 20, params, &view).is_err());
        let cache = ScriptCache::new(10);
        cache.insert(bad.txids()[2]);
        // The cache vouches for tx 2 (in real use only after verifying it), so it is skipped.
        assert!(connect_block_cached(&bad, 20, params, &view, &cache).is_ok());
        let tiny = ScriptCache::new(1);
        tiny.insert(bad.txids()[2]);
        tiny.insert(bad.txids()[1]); // evicts tx 2: bounded
        assert!(!tiny.contains(&bad.txids()[2]) && tiny.len() == 1);
    }

    #[test]
    fn both_sides_of_the_parallel_threshold_report_the_same_first_bad_signature() {
        let params = Network::Regtest.params();
        for n in [1, PARALLEL_MIN_INPUTS - 1, PARALLEL_MIN_INPUTS, PARALLEL_MIN_INPUTS + 1] {
            let (ok, view) = block_with_spends(n, &[]);
            assert!(connect_block(&ok, 20, params, &view).is_ok(), "{n} inputs");
            let (bad, view) = block_with_spends(n, &[n]);
            match connect_block(&bad, 20, params, &view) {
                Err(ConsensusError::InTx { index, .. }) => assert_eq!(index, n, "{n} inputs"),
                r => panic!("{n} inputs: {r:?}"),
            }
        }
        // 150 spends, all but 10 vouched for by the cache: the rest run on the caller and a
        // bad one among them is still found.
        let (bad, view) = block_with_spends(150, &[145]);
        let cache = ScriptCache::new(1_000);
        for txid in &bad.txids()[1..141] {
            cache.insert(*txid);
        }
        match connect_block_cached(&bad, 20, params, &view, &cache) {
            Err(ConsensusError::InTx { index: 145, .. }) => {}
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn utxo_errors_take_precedence_over_script_errors() {
        let params = Network::Regtest.params();
        let (bad, mut view) = block_with_spends(10, &[2]);
        // Tx 5's coin is missing as well as tx 2's signature being bad.
        view.remove(&OutPoint { txid: Hash256([5; 32]), index: 0 });
        match connect_block(&bad, 20, params, &view) {
            Err(ConsensusError::InTx { index: 5, error, .. }) => {
                assert!(matches!(*error, ConsensusError::MissingInput { .. }))
            }
            r => panic!("{r:?}"),
        }
    }
}
