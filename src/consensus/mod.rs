//! Consensus: network parameters, proof of work, and the block and transaction rules. Pure:
//! the UTXO set arrives through the [`CoinLookup`] trait, the clock as an argument.
//!
//! Validation is staged. [`check_block`] runs the context-free checks (PoW first, then size,
//! structure, Merkle root, sigops) before any lookup and yields a [`CheckedBlock`], the only
//! form the store accepts and the network relays. [`check_header_context`] checks the header
//! against its parent (bits, median time past, future drift). [`connect_block`] checks the
//! block against the UTXO set (inputs, maturity, amounts, lock times, scripts) and returns
//! the coins it spends and creates.

pub mod connect;
pub mod headers;
pub mod params;
pub mod pow;
pub mod txscripts;
pub mod validation;

pub use connect::{
    connect_block, connect_block_cached, created_outputs, utxo_effect, verify_tx_scripts, BlockConnect, Coin,
    CoinLookup, ScriptCache,
};
pub use headers::HeaderState;
pub use params::{Network, Params};
pub use txscripts::verify_txs_batched;
pub use validation::{
    block_subsidy, check_block, check_block_with_txids, check_header_context, check_transaction,
    CheckedBlock, HeaderContext, TipContext,
};

use crate::primitives::{DecodeError, Hash256, OutPoint};
use crate::script::ScriptError;

/// Whose fault a refused block or transaction is: the one classification the chain, the
/// mempool and the network's peer policy share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Its sender sent something invalid (penalise it).
    Sender,
    /// It may be valid later or elsewhere (a time too new for our clock, an input we lack,
    /// an immature spend, a lock time not reached): no penalty.
    Transient,
    /// Ours: our own verdict (invalidateblock), policy, a full pool, a database error.
    Local,
}

/// A broken consensus rule. Each variant names the rule and carries the values involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsensusError {
    // --- encoding and proof of work
    #[error("malformed: {0}")]
    Malformed(#[from] DecodeError),
    #[error("bad bits 0x{bits:08x}: {reason}")]
    BadBits { bits: u32, reason: &'static str },
    #[error("proof of work failed: block hash {hash} is above the target of bits 0x{target:08x}")]
    HighHash { hash: Hash256, target: u32 },
    #[error("header {hash} does not link: its parent is {prev}, expected {expected}")]
    HeaderDoesNotLink { hash: Hash256, prev: Hash256, expected: Hash256 },

    // --- block structure (context-free)
    #[error("block of {size} bytes exceeds the limit of {max}")]
    BlockTooLarge { size: usize, max: usize },
    #[error("block has no transactions")]
    NoTransactions,
    #[error("first transaction is not a coinbase")]
    FirstTxNotCoinbase,
    #[error("transaction {index} is a second coinbase")]
    ExtraCoinbase { index: usize },
    #[error("Merkle root mismatch: header commits to {expected}, transactions hash to {got}")]
    BadMerkleRoot { got: Hash256, expected: Hash256 },
    #[error("Merkle tree is mutated (identical siblings, CVE-2012-2459)")]
    MerkleMutated,
    #[error("duplicate transaction {txid} in block")]
    DuplicateTxid { txid: Hash256 },
    #[error("block has {got} signature operations, the limit is {max}")]
    TooManySigops { got: usize, max: usize },

    // --- header context
    #[error("wrong difficulty: bits 0x{got:08x}, expected 0x{expected:08x}")]
    WrongBits { got: u32, expected: u32 },
    #[error("block time {time} is not after the median time past {median_time_past}")]
    TimeTooOld { time: u32, median_time_past: u32 },
    #[error("block time {time} is more than {drift} s ahead of the node's clock {now}")]
    TimeTooNew { time: u32, now: u64, drift: u32 },

    // --- transaction (context-free)
    #[error("transaction has no inputs")]
    NoInputs,
    #[error("transaction has no outputs")]
    NoOutputs,
    #[error("transaction of {size} bytes exceeds the limit of {max}")]
    TxTooLarge { size: usize, max: usize },
    #[error("output values sum past the money supply")]
    OutputsOverflow,
    #[error("input {outpoint} is spent twice in one transaction")]
    DuplicateInput { outpoint: OutPoint },
    #[error("coinbase unlock data is {size} bytes, allowed {min}..={max}")]
    CoinbaseUnlockSize { size: usize, min: usize, max: usize },
    #[error("input {input} of a non-coinbase transaction spends the null outpoint")]
    NullPrevout { input: usize },

    // --- transaction (contextual)
    #[error(
        "coinbase does not start with its height {expected}: found {}",
        .got.map_or_else(|| "no height push".to_string(), |g| g.to_string())
    )]
    BadCoinbaseHeight { got: Option<i64>, expected: u32 },
    #[error("coinbase pays {got} but the subsidy plus fees is {max}")]
    CoinbaseValueTooHigh { got: u64, max: u64 },
    #[error("input {outpoint} is missing or already spent")]
    MissingInput { outpoint: OutPoint },
    #[error("input {outpoint} was already spent by transaction {first_tx} of this block")]
    SpentInBlock { outpoint: OutPoint, first_tx: usize },
    #[error("coinbase output {outpoint} spent at depth {depth}, maturity is {maturity}")]
    ImmatureCoinbaseSpend { outpoint: OutPoint, depth: u32, maturity: u32 },
    #[error("outputs {outputs} exceed inputs {inputs}")]
    InputsBelowOutputs { inputs: u64, outputs: u64 },
    #[error("input values sum past the money supply")]
    InputsOverflow,
    #[error("transaction lock time {lock_time} not reached at height {height}")]
    LockTimeNotReached { lock_time: u32, height: u32 },
    #[error("input {input}: script failed: {error}")]
    Script { input: usize, error: ScriptError },

    // --- wrapper naming the transaction
    #[error("transaction {index} ({txid}): {error}")]
    InTx { index: usize, txid: Hash256, error: Box<ConsensusError> },
}

impl ConsensusError {
    /// The rule broken inside a transaction, unwrapping [`ConsensusError::InTx`].
    pub fn root(&self) -> &ConsensusError {
        match self {
            ConsensusError::InTx { error, .. } => error.root(),
            e => e,
        }
    }

    /// Whether the failure condemns the block *id* for good. False for failures that a
    /// different body under the same header could avoid (a mutated transaction list) and for
    /// a time that is only too new for now; such blocks are dropped but not marked invalid.
    pub fn marks_block_invalid(&self) -> bool {
        !matches!(
            self.root(),
            ConsensusError::Malformed(_)
                | ConsensusError::BadMerkleRoot { .. }
                | ConsensusError::MerkleMutated
                | ConsensusError::BlockTooLarge { .. }
                | ConsensusError::TimeTooNew { .. }
        )
    }
}
