//! Context-free block and transaction checks, the header-context checks, and the subsidy.

use super::params::Params;
use super::pow::check_proof_of_work;
use super::ConsensusError;
use crate::primitives::merkle::merkle_root;
use crate::primitives::{Amount, Block, BlockHeader, Hash256, OutPoint, Transaction};
use crate::script::count_sigops;
use std::collections::HashSet;

/// A block that passed [`check_block`]: proof of work, size, structure, Merkle root,
/// context-free transaction rules and the legacy sigop limit. Only this type can be stored
/// or relayed. Its txids are computed once and kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedBlock {
    block: Block,
    hash: Hash256,
    txids: Vec<Hash256>,
    legacy_sigops: usize,
}

impl CheckedBlock {
    /// The block.
    pub fn block(&self) -> &Block {
        &self.block
    }
    /// The block id.
    pub fn hash(&self) -> Hash256 {
        self.hash
    }
    /// The header.
    pub fn header(&self) -> &BlockHeader {
        &self.block.header
    }
    /// Txids in block order.
    pub fn txids(&self) -> &[Hash256] {
        &self.txids
    }
    /// Signature operations counted in unlock data and locking scripts (P2SH redeem scripts
    /// are counted when the spent outputs are known, in [`super::connect_block`]).
    pub fn legacy_sigops(&self) -> usize {
        self.legacy_sigops
    }
    /// Unwraps the block.
    pub fn into_block(self) -> Block {
        self.block
    }

    /// Rebuilds a checked block from bytes this node itself stored after checking them
    /// (the store's own records). Never for bytes from outside the process.
    pub(crate) fn from_trusted_store(block: Block) -> CheckedBlock {
        let txids = block.txids();
        let legacy_sigops = legacy_sigops(&block);
        CheckedBlock { hash: block.hash(), block, txids, legacy_sigops }
    }
}

/// The block subsidy at `height`: the initial subsidy halved every `halving_interval` blocks
/// (zero after 64 halvings).
pub fn block_subsidy(params: &Params, height: u32) -> Amount {
    let halvings = height / params.halving_interval;
    if halvings >= 64 {
        return Amount::ZERO;
    }
    Amount::from_sat(params.initial_subsidy.to_sat() >> halvings).expect("smaller than a valid amount")
}

/// Context-free transaction rules: inputs and outputs present, size, output sum within the
/// money supply, no input spent twice, coinbase unlock size, no null prevout outside a
/// coinbase.
pub fn check_transaction(tx: &Transaction, params: &Params) -> Result<(), ConsensusError> {
    if tx.inputs.is_empty() {
        return Err(ConsensusError::NoInputs);
    }
    if tx.outputs.is_empty() {
        return Err(ConsensusError::NoOutputs);
    }
    let size = tx.encoded_size();
    if size > params.max_tx_size {
        return Err(ConsensusError::TxTooLarge { size, max: params.max_tx_size });
    }
    Amount::sum(tx.outputs.iter().map(|o| o.value)).map_err(|_| ConsensusError::OutputsOverflow)?;
    let mut seen = HashSet::with_capacity(tx.inputs.len());
    for input in &tx.inputs {
        if !seen.insert(input.prevout) {
            return Err(ConsensusError::DuplicateInput { outpoint: input.prevout });
        }
    }
    if tx.is_coinbase() {
        let size = tx.inputs[0].unlock.len();
        if !(2..=100).contains(&size) {
            return Err(ConsensusError::CoinbaseUnlockSize { size, min: 2, max: 100 });
        }
    } else if let Some(input) = tx.inputs.iter().position(|i| i.prevout == OutPoint::NULL) {
        return Err(ConsensusError::NullPrevout { input });
    }
    Ok(())
}

fn legacy_sigops(block: &Block) -> usize {
    let mut sigops = 0usize;
    for tx in &block.txs {
        sigops += tx.inputs.iter().map(|i| count_sigops(&i.unlock.0)).sum::<usize>();
        sigops += tx.outputs.iter().map(|o| count_sigops(&o.lock.0)).sum::<usize>();
    }
    sigops
}

pub(crate) fn in_tx(index: usize, txid: Hash256) -> impl Fn(ConsensusError) -> ConsensusError + Copy {
    move |e| ConsensusError::InTx { index, txid, error: Box::new(e) }
}

/// Context-free block checks, cheapest first: proof of work (one hash), size, Merkle root and
/// mutation, coinbase placement, transaction rules, duplicate txids, sigops.
pub fn check_block(block: Block, params: &Params) -> Result<CheckedBlock, ConsensusError> {
    check_block_inner(block, None, params)
}

/// [`check_block`] for a block whose txids the caller already has (a compact block rebuilt
/// from the mempool, whose transactions were hashed at admission): `txids` must be the txids
/// of `block.txs`, in order (debug builds check it); a list of the wrong length is not used
/// (the block is hashed).
pub fn check_block_with_txids(
    block: Block,
    txids: Vec<Hash256>,
    params: &Params,
) -> Result<CheckedBlock, ConsensusError> {
    debug_assert!(txids.len() != block.txs.len() || txids == block.txids(), "txids are the block's");
    check_block_inner(block, Some(txids), params)
}

fn check_block_inner(
    block: Block,
    txids: Option<Vec<Hash256>>,
    params: &Params,
) -> Result<CheckedBlock, ConsensusError> {
    let hash = block.hash();
    check_proof_of_work(&hash, block.header.bits, &params.pow_limit)?;
    let size = block.encoded_size();
    if size > params.max_block_size {
        return Err(ConsensusError::BlockTooLarge { size, max: params.max_block_size });
    }
    if block.txs.is_empty() {
        return Err(ConsensusError::NoTransactions);
    }
    let txids = match txids {
        Some(t) if t.len() == block.txs.len() => t,
        _ => block.txids(),
    };
    let (root, mutated) = merkle_root(&txids);
    if mutated {
        return Err(ConsensusError::MerkleMutated);
    }
    if root != block.header.merkle_root {
        return Err(ConsensusError::BadMerkleRoot { got: root, expected: block.header.merkle_root });
    }
    if !block.txs[0].is_coinbase() {
        return Err(ConsensusError::FirstTxNotCoinbase);
    }
    if let Some(index) = block.txs.iter().skip(1).position(Transaction::is_coinbase) {
        return Err(ConsensusError::ExtraCoinbase { index: index + 1 });
    }
    for (index, tx) in block.txs.iter().enumerate() {
        check_transaction(tx, params).map_err(in_tx(index, txids[index]))?;
    }
    let mut seen = HashSet::with_capacity(txids.len());
    if let Some(dup) = txids.iter().find(|t| !seen.insert(**t)) {
        return Err(ConsensusError::DuplicateTxid { txid: *dup });
    }
    let legacy_sigops = legacy_sigops(&block);
    if legacy_sigops > params.max_block_sigops {
        return Err(ConsensusError::TooManySigops { got: legacy_sigops, max: params.max_block_sigops });
    }
    Ok(CheckedBlock { block, hash, txids, legacy_sigops })
}

/// What the chain knows about a header's parent, for [`check_header_context`].
#[derive(Clone, Copy, Debug)]
pub struct HeaderContext {
    /// Height the block would have.
    pub height: u32,
    /// Bits required by the retarget rule ([`super::pow::next_bits`]).
    pub expected_bits: u32,
    /// Median time of the previous `median_time_span` blocks (fewer near genesis).
    pub median_time_past: u32,
    /// The validating node's clock, seconds since the epoch.
    pub now: u64,
}

/// What a block template needs to know about the tip it builds on: the parent and the
/// header context of its child. Small and owned, so the miner never sees the chain.
#[derive(Clone, Copy, Debug)]
pub struct TipContext {
    /// The network's parameters (subsidy, size and sigop limits).
    pub params: &'static super::Params,
    /// The tip: the new block's parent.
    pub prev: Hash256,
    /// Height, required bits, median time past and the clock for the new block.
    pub next: HeaderContext,
}

/// The median of block times (the middle element after sorting; the upper middle for an
/// even count), as used for median-time-past.
pub fn median_time(times: &mut [u32]) -> u32 {
    times.sort_unstable();
    times.get(times.len() / 2).copied().unwrap_or(0)
}

/// Header rules that need the parent: required bits, time after the median time past, time
/// not too far ahead of the clock.
pub fn check_header_context(
    header: &BlockHeader,
    ctx: &HeaderContext,
    params: &Params,
) -> Result<(), ConsensusError> {
    if header.bits != ctx.expected_bits {
        return Err(ConsensusError::WrongBits { got: header.bits, expected: ctx.expected_bits });
    }
    if header.time <= ctx.median_time_past {
        return Err(ConsensusError::TimeTooOld { time: header.time, median_time_past: ctx.median_time_past });
    }
    if header.time as u64 > ctx.now + params.max_future_drift as u64 {
        return Err(ConsensusError::TimeTooNew {
            time: header.time,
            now: ctx.now,
            drift: params.max_future_drift,
        });
    }
    Ok(())
}
