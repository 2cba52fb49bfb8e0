//! Contextual block validation against the UTXO set, with batched parallel script checks.

use super::params::Params;
use super::validation::{block_subsidy, in_tx, CheckedBlock};
use super::ConsensusError;
use crate::primitives::{Amount, OutPoint, Transaction, TxOut};
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
pub fn connect_block(
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

    let mut created: HashMap<OutPoint, Coin> = HashMap::new();
    let mut spent_by: HashMap<OutPoint, usize> = HashMap::new();
    let mut spent = Vec::new();
    let mut fees = Amount::ZERO;
    let mut sigops = block.legacy_sigops();
    let mut jobs: Vec<(usize, Vec<TxOut>)> = Vec::with_capacity(txs.len().saturating_sub(1));

    for (index, tx) in txs.iter().enumerate() {
        let fail = in_tx(index, txids[index]);
        if tx.lock_time > height {
            return Err(fail(ConsensusError::LockTimeNotReached { lock_time: tx.lock_time, height }));
        }
        if index > 0 {
            let mut in_sum = Amount::ZERO;
            let mut spent_outs = Vec::with_capacity(tx.inputs.len());
            for input in &tx.inputs {
                let op = input.prevout;
                if let Some(first_tx) = spent_by.insert(op, index) {
                    return Err(fail(ConsensusError::SpentInBlock { outpoint: op, first_tx }));
                }
                let coin = match created.remove(&op) {
                    Some(c) => c,
                    None => {
                        let c = view.coin(&op).ok_or(ConsensusError::MissingInput { outpoint: op });
                        let c = c.map_err(|e| fail(e))?.clone();
                        spent.push((op, c.clone()));
                        c
                    }
                };
                // saturating: a coin "from the future" would mean an inconsistent view; it
                // then counts as depth 0 (immature) rather than wrapping around.
                let depth = height.saturating_sub(coin.height);
                if coin.is_coinbase && depth < params.coinbase_maturity {
                    return Err(fail(ConsensusError::ImmatureCoinbaseSpend {
                        outpoint: op,
                        depth,
                        maturity: params.coinbase_maturity,
                    }));
                }
                in_sum =
                    in_sum.checked_add(coin.out.value).map_err(|_| fail(ConsensusError::InputsOverflow))?;
                if p2sh_commitment(&coin.out.lock.0).is_some() {
                    if let Some(Ok((_, Instruction::Push(redeem)))) =
                        Instructions::new(&input.unlock.0).last()
                    {
                        sigops += count_sigops(redeem);
                    }
                }
                spent_outs.push(coin.out);
            }
            let out_sum = Amount::sum(tx.outputs.iter().map(|o| o.value)).expect("checked by check_block");
            let fee = in_sum.checked_sub(out_sum).map_err(|_| {
                fail(ConsensusError::InputsBelowOutputs {
                    inputs: in_sum.to_sat(),
                    outputs: out_sum.to_sat(),
                })
            })?;
            fees = fees.checked_add(fee).map_err(|_| fail(ConsensusError::InputsOverflow))?;
            jobs.push((index, spent_outs));
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

    verify_block_scripts(block, &jobs)?;

    let mut created: Vec<(OutPoint, Coin)> = created.into_iter().collect();
    created.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(BlockConnect { spent, created, fees })
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

/// Runs every script of the block in two parallel phases. Phase 1, fine-grained over inputs:
/// sighash, the script run with deferred signatures ([`DeferredChecker`]) and point
/// decompression. Phase 2: one batch verification per worker over all collected signatures.
/// If any script or batch fails, the block is invalid and the slow path reruns every
/// transaction eagerly in block order, so the error reported is the first in block order,
/// whatever the scheduling.
fn verify_block_scripts(block: &CheckedBlock, jobs: &[(usize, Vec<TxOut>)]) -> Result<(), ConsensusError> {
    let txs = &block.block().txs;
    let slow_path = || -> Result<(), ConsensusError> {
        for (index, spent) in jobs {
            verify_tx_scripts(&txs[*index], spent).map_err(in_tx(*index, block.txids()[*index]))?;
        }
        Ok(())
    };
    let caches: Vec<SighashCache> =
        jobs.par_iter().map(|(index, _)| SighashCache::new(&txs[*index])).collect();
    let inputs: Vec<(usize, usize)> =
        jobs.iter().enumerate().flat_map(|(j, (_, spent))| (0..spent.len()).map(move |i| (j, i))).collect();
    let phase1: Option<Vec<Vec<PreparedSig>>> = inputs
        .par_iter()
        .with_min_len(32)
        .map(|&(j, i)| {
            let (index, spent) = &jobs[j];
            let tx = &txs[*index];
            let msg = sighash(tx, &caches[j], i, &spent[i]);
            let mut pending = Vec::with_capacity(1);
            let mut checker = DeferredChecker { msg: &msg.0, pending: &mut pending };
            let ctx = SpendContext { tx_lock_time: tx.lock_time };
            verify_spend(&tx.inputs[i].unlock.0, &spent[i].lock.0, &ctx, &mut checker).ok().map(|_| pending)
        })
        .collect();
    let Some(per_input) = phase1 else { return slow_path() };
    let sigs: Vec<PreparedSig> = per_input.into_iter().flatten().collect();
    let chunk = sigs.len().div_ceil(rayon::current_num_threads().max(1)).max(64);
    if sigs.par_chunks(chunk).all(verify_batch) {
        Ok(())
    } else {
        slow_path()
    }
}
