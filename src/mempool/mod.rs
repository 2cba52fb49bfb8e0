//! The mempool: unconfirmed transactions waiting for a block.
//!
//! Admission ([`Mempool::accept`]) checks a transaction, cheapest rules first: context-free
//! consensus rules, no coinbase, relay size; not already known; inputs from the UTXO set or
//! from unconfirmed parents in the pool (missing inputs: kept as an orphan until a parent
//! arrives); coinbase maturity and lock time against the next block (tip + 1); amounts;
//! sigops; the minimum relay fee rate and, when the pool has been full, the rolling mempool
//! minimum; conflicts (first seen wins unless the newcomer qualifies as a replace-by-fee
//! replacement); ancestor and descendant count and size limits; finally the scripts, verified
//! on the caller's thread, or, pipelined ([`Mempool::accept_deferred`] then
//! [`Mempool::accept_verified`]), wherever the caller runs the returned [`ScriptJob`]: the
//! node batches them on its verifier threads so its core thread does only the rest. An admitted txid goes into the chain's [`ScriptCache`], so
//! connecting a block holding it skips its scripts. When the pool passes its size cap, the
//! packages (a transaction with its descendants) with the lowest descendant fee rate are
//! evicted; a transaction that would itself be evicted is refused and the pool left as it was.
//!
//! The mempool is synchronous and owns no thread: the node calls it from the thread that owns
//! the [`Chain`], passing the UTXO view as a [`UtxoSource`] (the chain implements it).
//!
//! # Order of calls the node must follow
//! 1. After every `Chain::process_block` / `invalidate_block` / `reconsider_block`, hand the
//!    returned events to [`Mempool::apply_events`], in order. It calls
//!    [`Mempool::block_disconnected`] and [`Mempool::block_connected`] per event (for a reorg
//!    the chain emits the disconnections first, then the connections) and then
//!    [`Mempool::reorg_done`], which re-admits the disconnected blocks' transactions against
//!    the new tip. The UTXO source must already reflect the chain after all the events (it
//!    does: the chain has finished before the events are delivered).
//! 2. Ask for block templates ([`MempoolTemplates`]) only after step 1, so the pool matches
//!    the tip.
//! 3. Call [`Mempool::expire`] periodically (e.g. every few minutes), [`Mempool::save`] on
//!    shutdown and [`Mempool::load`] on start once the chain is open.

mod events;
mod graph;
mod orphans;
pub mod persist;
mod policy;
mod select;
#[cfg(test)]
mod tests;

pub use events::PoolUpdate;
pub use graph::FeeRate;
pub use persist::LoadStats;
pub use select::{MempoolTemplates, COINBASE_RESERVED_SIGOPS, COINBASE_RESERVED_SIZE};

use crate::chain::{Chain, ChainError};
use crate::consensus::{Coin, ConsensusError, Params, ScriptCache};
use crate::primitives::{Amount, Hash256, OutPoint, Transaction, TxOut};
use graph::Graph;
use orphans::OrphanPool;
use std::collections::HashMap;
use std::sync::Arc;

/// Read access to the UTXO set of the active chain, for admission.
pub trait UtxoSource {
    /// The unspent coins among `outpoints` (absent ones are missing or spent).
    fn coins(&self, outpoints: &[OutPoint]) -> Result<HashMap<OutPoint, Coin>, ChainError>;
    /// Height of the active tip; admission checks against the next block, `tip_height + 1`.
    fn tip_height(&self) -> u32;
}

impl UtxoSource for Chain {
    fn coins(&self, outpoints: &[OutPoint]) -> Result<HashMap<OutPoint, Coin>, ChainError> {
        Chain::coins(self, outpoints)
    }
    fn tip_height(&self) -> u32 {
        self.tip().height
    }
}

/// An in-memory UTXO set, for tests and benchmarks.
#[derive(Clone, Debug, Default)]
pub struct MemoryUtxos {
    /// The unspent coins.
    pub coins: HashMap<OutPoint, Coin>,
    /// The tip height.
    pub height: u32,
}

impl UtxoSource for MemoryUtxos {
    fn coins(&self, outpoints: &[OutPoint]) -> Result<HashMap<OutPoint, Coin>, ChainError> {
        Ok(outpoints.iter().filter_map(|op| self.coins.get(op).map(|c| (*op, c.clone()))).collect())
    }
    fn tip_height(&self) -> u32 {
        self.height
    }
}

/// The chain's error from a failed UTXO lookup (the chainstate could not be read), shared so
/// that [`MempoolError`] stays cheap to clone; two are equal when they say the same.
#[derive(Debug, Clone)]
pub struct UtxoLookupFailed(pub Arc<ChainError>);

impl From<ChainError> for UtxoLookupFailed {
    fn from(e: ChainError) -> Self {
        UtxoLookupFailed(Arc::new(e))
    }
}

impl PartialEq for UtxoLookupFailed {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for UtxoLookupFailed {}

impl std::fmt::Display for UtxoLookupFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Why a transaction was refused or a pool operation failed. Each variant names the rule and
/// carries the values involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// A consensus rule is broken (or not yet satisfiable: immature coinbase, lock time).
    #[error("transaction {txid} is invalid: {error}")]
    Consensus { txid: Hash256, error: ConsensusError },
    #[error(
        "transaction {txid} is a coinbase: a coinbase is only valid as the first transaction of a block"
    )]
    Coinbase { txid: Hash256 },
    #[error("transaction of {size} bytes exceeds the relay limit of {max} bytes")]
    TxTooLarge { size: usize, max: usize },
    #[error("transaction has {got} signature operations, the relay limit is {max}")]
    TooManySigops { got: usize, max: usize },
    #[error("transaction {txid} is already in the mempool")]
    AlreadyInPool { txid: Hash256 },
    #[error("transaction {txid} is already in the orphan pool, waiting for its parents")]
    AlreadyOrphan { txid: Hash256 },
    #[error("transaction {txid} is already confirmed: its outputs are in the UTXO set")]
    AlreadyConfirmed { txid: Hash256 },
    #[error("transaction {txid} spends {outpoint}, which is missing or spent")]
    MissingInputs { txid: Hash256, outpoint: OutPoint },
    #[error("orphan transaction of {size} bytes exceeds the orphan pool limit of {max} bytes")]
    OrphanTooLarge { size: usize, max: usize },
    #[error(
        "fee rate {rate} sat/kB ({fee} sat for {size} bytes) is below the minimum relay fee rate \
         {min_rate} sat/kB: pay at least {needed} sat"
    )]
    FeeTooLow { fee: u64, size: usize, rate: u64, min_rate: u64, needed: u64 },
    #[error(
        "mempool is full: fee rate {rate} sat/kB is below the mempool minimum fee rate {min_rate} sat/kB"
    )]
    BelowMempoolMinFee { rate: u64, min_rate: u64 },
    #[error(
        "mempool is full ({max_bytes} bytes): a transaction paying {rate} sat/kB would be the \
         first evicted"
    )]
    MempoolFull { rate: u64, max_bytes: usize },
    #[error("too many unconfirmed ancestors: {got} > {max}")]
    TooManyAncestors { got: usize, max: usize },
    #[error("unconfirmed ancestors too large: {got} bytes > {max}")]
    AncestorsTooLarge { got: usize, max: usize },
    #[error("too many unconfirmed descendants of {ancestor}: {got} > {max}")]
    TooManyDescendants { ancestor: Hash256, got: usize, max: usize },
    #[error("unconfirmed descendants of {ancestor} too large: {got} bytes > {max}")]
    DescendantsTooLarge { ancestor: Hash256, got: usize, max: usize },
    #[error(
        "conflicts with mempool tx {conflict}: replacement fee rate {rate} sat/kB must be higher \
         than its {conflict_rate} sat/kB"
    )]
    ReplacementRateTooLow { conflict: Hash256, rate: u64, conflict_rate: u64 },
    #[error(
        "conflicts with mempool tx {conflict}: replacement pays fee {fee} sat but must pay at least \
         {needed} sat: more than the {replaced_fees} sat of the {replaced} txs it evicts plus \
         {relay_fee} sat for its own {size} bytes at the minimum relay fee rate"
    )]
    ReplacementFeeTooLow {
        conflict: Hash256,
        fee: u64,
        needed: u64,
        replaced_fees: u64,
        replaced: usize,
        relay_fee: u64,
        size: usize,
    },
    #[error(
        "conflicts with mempool tx {conflict}: replacement would evict {got} transactions, the \
         limit is {max}"
    )]
    TooManyReplacements { conflict: Hash256, got: usize, max: usize },
    #[error("replacement spends an output of mempool tx {conflict}, which it would evict")]
    SpendsConflictingTx { conflict: Hash256 },
    #[error("UTXO lookup failed: {0}")]
    Utxo(UtxoLookupFailed),
    #[error("cannot access mempool file {path}: {detail}")]
    Io { path: String, detail: String },
    #[error("mempool file {path} is corrupt: {detail}")]
    CorruptFile { path: String, detail: String },
}

impl MempoolError {
    /// Whose fault the refusal is: the sender's when the transaction is invalid; transient
    /// for transactions that may become valid later (immature coinbase spend, lock time, a
    /// missing input); ours for policy refusals, a full pool, duplicates and our failures.
    pub fn fault(&self) -> crate::consensus::Fault {
        use crate::consensus::Fault;
        match self {
            MempoolError::Consensus { error, .. }
                if matches!(
                    error.root(),
                    ConsensusError::ImmatureCoinbaseSpend { .. }
                        | ConsensusError::LockTimeNotReached { .. }
                        | ConsensusError::MissingInput { .. }
                ) =>
            {
                Fault::Transient
            }
            MempoolError::Consensus { .. } | MempoolError::Coinbase { .. } => Fault::Sender,
            _ => Fault::Local,
        }
    }

    /// True when the sender is at fault (see [`MempoolError::fault`]).
    pub fn is_peer_fault(&self) -> bool {
        self.fault() == crate::consensus::Fault::Sender
    }
}

/// Mempool policy settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MempoolConfig {
    /// Size cap on the estimated memory use, bytes (`maxmempool`).
    pub max_bytes: usize,
    /// Minimum relay fee rate, sat per 1000 bytes of canonical size; also the increment a
    /// replacement must add for its own size and the step of the rolling minimum.
    pub min_relay_fee_rate: u64,
    /// Largest transaction relayed, bytes (below the consensus limit).
    pub max_tx_size: usize,
    /// Most signature operations in one relayed transaction.
    pub max_tx_sigops: usize,
    /// Most in-pool ancestors of a transaction, itself included.
    pub max_ancestors: usize,
    /// Largest total size of a transaction and its in-pool ancestors.
    pub max_ancestor_size: usize,
    /// Most in-pool descendants of any transaction, itself included.
    pub max_descendants: usize,
    /// Largest total size of a transaction and its in-pool descendants.
    pub max_descendant_size: usize,
    /// Most transactions one replacement may evict (conflicts and their descendants).
    pub max_replacements: usize,
    /// Entries older than this are removed by [`Mempool::expire`], seconds.
    pub expiry_secs: u64,
    /// Most orphans kept.
    pub max_orphans: usize,
    /// Most orphan bytes kept.
    pub max_orphan_bytes: usize,
    /// Orphans older than this are dropped, seconds.
    pub orphan_expiry_secs: u64,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig {
            max_bytes: 64 << 20,
            min_relay_fee_rate: 1000,
            max_tx_size: 100_000,
            max_tx_sigops: 16_000,
            max_ancestors: 25,
            max_ancestor_size: 101_000,
            max_descendants: 25,
            max_descendant_size: 101_000,
            max_replacements: 100,
            expiry_secs: 14 * 24 * 60 * 60,
            max_orphans: 100,
            max_orphan_bytes: 5_000_000,
            orphan_expiry_secs: 20 * 60,
        }
    }
}

/// A transaction taken into the pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admission {
    /// Its txid.
    pub txid: Hash256,
    /// Its fee.
    pub fee: Amount,
    /// Its canonical size.
    pub size: usize,
    /// Transactions it replaced (conflicts and their descendants).
    pub replaced: Vec<Hash256>,
    /// Transactions evicted to keep the pool under its size cap.
    pub evicted: Vec<Hash256>,
    /// Orphans admitted because this transaction arrived (relay them too).
    pub promoted: Vec<Hash256>,
}

/// The outcome of a successful [`Mempool::accept`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// In the pool.
    Added(Admission),
    /// Inputs unknown: kept as an orphan until a parent arrives. Ask peers for the parents.
    Orphan { txid: Hash256, missing_parents: Vec<Hash256> },
}

impl Accepted {
    /// The transaction's id.
    pub fn txid(&self) -> Hash256 {
        match self {
            Accepted::Added(a) => a.txid,
            Accepted::Orphan { txid, .. } => *txid,
        }
    }
}

/// A transaction that passed every admission rule but its scripts (see
/// [`Mempool::accept_deferred`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptJob {
    /// Its txid.
    pub txid: Hash256,
    /// The transaction.
    pub tx: Transaction,
    /// The output each of its inputs spends, in input order.
    pub spent: Vec<TxOut>,
}

/// The outcome of [`Mempool::accept_deferred`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deferred {
    /// Final: admitted or kept as an orphan.
    Done(Accepted),
    /// Its scripts need checking first.
    Verify(ScriptJob),
}

/// What the pool knows about one entry (`getmempoolentry`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryInfo {
    /// Fee.
    pub fee: Amount,
    /// Canonical size, bytes.
    pub size: usize,
    /// Signature operations.
    pub sigops: usize,
    /// Entry time, seconds since the epoch.
    pub time: u64,
    /// Tip height at entry.
    pub height: u32,
    /// In-pool ancestors, itself included: count, bytes, fees.
    pub ancestor_count: usize,
    pub ancestor_size: usize,
    pub ancestor_fees: Amount,
    /// In-pool descendants, itself included: count, bytes, fees.
    pub descendant_count: usize,
    pub descendant_size: usize,
    pub descendant_fees: Amount,
    /// In-pool parents.
    pub depends: Vec<Hash256>,
    /// In-pool children.
    pub spent_by: Vec<Hash256>,
}

/// Pool summary (`getmempoolinfo`). Fee rates in sat per 1000 bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MempoolInfo {
    /// Transactions.
    pub size: usize,
    /// Sum of canonical sizes.
    pub bytes: usize,
    /// Estimated memory use (what the cap applies to).
    pub usage: usize,
    /// Sum of fees.
    pub total_fee: Amount,
    /// The size cap.
    pub max_mempool: usize,
    /// Minimum fee rate for admission now: the relay minimum or the rolling minimum after
    /// evictions, whichever is higher.
    pub mempool_min_fee: u64,
    /// Minimum relay fee rate.
    pub min_relay_tx_fee: u64,
    /// Fee rate increment a replacement pays for its own size.
    pub incremental_relay_fee: u64,
    /// Orphans waiting for parents.
    pub orphans: usize,
    /// Their total size.
    pub orphan_bytes: usize,
}

/// Half-life of the rolling minimum fee rate set by evictions, seconds (12 h, like Core).
const ROLLING_FEE_HALFLIFE: f64 = 12.0 * 60.0 * 60.0;

/// The mempool. See the module docs for the rules and the call order.
pub struct Mempool {
    params: &'static Params,
    config: MempoolConfig,
    script_cache: Arc<ScriptCache>,
    graph: Graph,
    orphans: OrphanPool,
    /// Transactions of disconnected blocks, waiting for [`Mempool::reorg_done`].
    reorg_queue: Vec<(Hash256, Transaction)>,
    /// Rolling minimum fee rate (sat/kB) and when it was last raised.
    rolling_min: (u64, u64),
}

fn amount(sat: u64) -> Amount {
    Amount::from_sat(sat).unwrap_or(Amount::MAX)
}

impl Mempool {
    /// An empty pool for `params`' network. `script_cache` is the chain's
    /// ([`Chain::script_cache`]): admitted txids go into it.
    pub fn new(params: &'static Params, config: MempoolConfig, script_cache: Arc<ScriptCache>) -> Mempool {
        Mempool {
            params,
            config,
            script_cache,
            graph: Graph::default(),
            orphans: OrphanPool::new(),
            reorg_queue: Vec::new(),
            rolling_min: (0, 0),
        }
    }

    /// The settings.
    pub fn config(&self) -> &MempoolConfig {
        &self.config
    }

    /// Admits `tx` if it passes every rule (see the module docs), then admits any orphans
    /// that were waiting for it. `now` is the clock (entry time, expiry, rolling fee).
    pub fn accept(
        &mut self,
        tx: Transaction,
        source: &dyn UtxoSource,
        now: u64,
    ) -> Result<Accepted, MempoolError> {
        let accepted = self.accept_one(tx, source, now, now, true)?;
        match accepted {
            Accepted::Added(mut a) => {
                a.promoted = self.promote_orphans(vec![a.txid], source, now);
                Ok(Accepted::Added(a))
            }
            orphan => Ok(orphan),
        }
    }

    /// Admits a locally submitted `tx` (RPC): like [`Mempool::accept`], but a transaction
    /// with missing inputs is refused with [`MempoolError::MissingInputs`] instead of being
    /// kept as an orphan, so a failed submission leaves the pool unchanged.
    pub fn accept_local(
        &mut self,
        tx: Transaction,
        source: &dyn UtxoSource,
        now: u64,
    ) -> Result<Admission, MempoolError> {
        match self.accept_one(tx, source, now, now, false)? {
            Accepted::Added(mut a) => {
                a.promoted = self.promote_orphans(vec![a.txid], source, now);
                Ok(a)
            }
            Accepted::Orphan { .. } => {
                unreachable!("accept_one never keeps an orphan when allow_orphan is false")
            }
        }
    }

    /// The first half of a pipelined admission: every rule except the scripts. When the
    /// transaction's scripts still need checking, the pool is left unchanged and the
    /// returned [`ScriptJob`] holds what a verifier needs (run it anywhere, e.g. with
    /// [`crate::consensus::verify_txs_batched`] on another thread); hand a job that passed
    /// to [`Mempool::accept_verified`]. Otherwise the outcome is final, as from
    /// [`Mempool::accept`] (`local`: as from [`Mempool::accept_local`], never an orphan).
    pub fn accept_deferred(
        &mut self,
        tx: Transaction,
        source: &dyn UtxoSource,
        now: u64,
        local: bool,
    ) -> Result<Deferred, MempoolError> {
        match self.admit(tx, source, now, now, !local, policy::Scripts::Defer)? {
            policy::Step::Verify(job) => Ok(Deferred::Verify(job)),
            policy::Step::Done(accepted) => Ok(Deferred::Done(self.promote_after(accepted, source, now))),
        }
    }

    /// The second half: admits the transaction of a [`ScriptJob`] whose scripts passed.
    /// Every other rule is checked again, against the pool and the UTXO set as they are now
    /// (they may have changed since [`Mempool::accept_deferred`]); the scripts are not.
    /// The caller vouches for them, so only pass jobs that verified.
    pub fn accept_verified(
        &mut self,
        job: ScriptJob,
        source: &dyn UtxoSource,
        now: u64,
        local: bool,
    ) -> Result<Accepted, MempoolError> {
        match self.admit(job.tx, source, now, now, !local, policy::Scripts::Verified)? {
            policy::Step::Done(accepted) => Ok(self.promote_after(accepted, source, now)),
            policy::Step::Verify(_) => unreachable!("admit never defers with Scripts::Verified"),
        }
    }

    /// Promotes the orphans waiting for a transaction just added.
    fn promote_after(&mut self, accepted: Accepted, source: &dyn UtxoSource, now: u64) -> Accepted {
        match accepted {
            Accepted::Added(mut a) => {
                a.promoted = self.promote_orphans(vec![a.txid], source, now);
                Accepted::Added(a)
            }
            orphan => orphan,
        }
    }

    /// Admits the orphans waiting for `parents`, and those waiting for them, recursively.
    /// Orphans still missing other parents go back to wait; invalid ones are dropped.
    fn promote_orphans(
        &mut self,
        mut parents: Vec<Hash256>,
        source: &dyn UtxoSource,
        now: u64,
    ) -> Vec<Hash256> {
        let mut promoted = Vec::new();
        while let Some(parent) = parents.pop() {
            for (txid, orphan) in self.orphans.take_children(&parent) {
                match self.accept_one(orphan.tx, source, now, now, true) {
                    Ok(Accepted::Added(a)) => {
                        promoted.push(a.txid);
                        parents.push(a.txid);
                    }
                    Ok(Accepted::Orphan { .. }) => {}
                    Err(error) => {
                        tracing::debug!(target: "mempool", %txid, %error, "orphan dropped");
                    }
                }
            }
        }
        promoted
    }

    /// The transaction `txid`, if in the pool.
    pub fn get(&self, txid: &Hash256) -> Option<&Transaction> {
        self.graph.get(txid).map(|e| &e.tx)
    }

    /// Every transaction in the pool with its txid, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&Hash256, &Transaction)> {
        self.graph.entries().map(|e| (&e.txid, &e.tx))
    }

    /// True if `txid` is in the pool (orphans excluded).
    pub fn contains(&self, txid: &Hash256) -> bool {
        self.graph.contains(txid)
    }

    /// Every txid in the pool, parents before children.
    pub fn txids(&self) -> Vec<Hash256> {
        self.graph.in_order().into_iter().map(|e| e.txid).collect()
    }

    /// Number of transactions.
    pub fn len(&self) -> usize {
        self.graph.len()
    }

    /// A value that changes whenever the pool's contents change: the last admission's
    /// sequence number (every admission takes a new one) and the number of entries (every
    /// removal lowers it unless an admission also moved the sequence).
    pub fn change_mark(&self) -> (u64, usize) {
        (self.graph.last_seq(), self.graph.len())
    }

    /// True when no transaction is in the pool.
    pub fn is_empty(&self) -> bool {
        self.graph.len() == 0
    }

    /// Sum of canonical sizes.
    pub fn bytes(&self) -> usize {
        self.graph.bytes()
    }

    /// Estimated memory use (the quantity capped by `max_bytes`).
    pub fn usage(&self) -> usize {
        self.graph.usage()
    }

    /// Number of orphans waiting for parents.
    pub fn orphan_count(&self) -> usize {
        self.orphans.len()
    }

    /// True if `txid` waits in the orphan pool.
    pub fn is_orphan(&self, txid: &Hash256) -> bool {
        self.orphans.contains(txid)
    }

    /// The pool transaction spending `outpoint`, if any.
    pub fn spender(&self, outpoint: &OutPoint) -> Option<Hash256> {
        self.graph.spender(outpoint)
    }

    /// Details of one entry.
    pub fn entry(&self, txid: &Hash256) -> Option<EntryInfo> {
        let e = self.graph.get(txid)?;
        Some(EntryInfo {
            fee: amount(e.fee),
            size: e.size,
            sigops: e.sigops,
            time: e.time,
            height: e.height,
            ancestor_count: e.ancestors.count,
            ancestor_size: e.ancestors.size,
            ancestor_fees: amount(e.ancestors.fees),
            descendant_count: e.descendants.count,
            descendant_size: e.descendants.size,
            descendant_fees: amount(e.descendants.fees),
            depends: e.parents.clone(),
            spent_by: e.children.clone(),
        })
    }

    /// The minimum fee rate for admission at `now`, sat/kB.
    pub fn min_fee_rate(&self, now: u64) -> u64 {
        self.config.min_relay_fee_rate.max(self.rolling_min_fee(now))
    }

    /// Pool summary at `now`.
    pub fn info(&self, now: u64) -> MempoolInfo {
        MempoolInfo {
            size: self.graph.len(),
            bytes: self.graph.bytes(),
            usage: self.graph.usage(),
            total_fee: amount(self.graph.fees()),
            max_mempool: self.config.max_bytes,
            mempool_min_fee: self.min_fee_rate(now),
            min_relay_tx_fee: self.config.min_relay_fee_rate,
            incremental_relay_fee: self.config.min_relay_fee_rate,
            orphans: self.orphans.len(),
            orphan_bytes: self.orphans.bytes(),
        }
    }

    /// The rolling minimum fee rate: raised past the score of evicted packages, halving every
    /// 12 hours, and dropped once below half the relay minimum.
    fn rolling_min_fee(&self, now: u64) -> u64 {
        let (rate, since) = self.rolling_min;
        if rate == 0 {
            return 0;
        }
        let halvings = now.saturating_sub(since) as f64 / ROLLING_FEE_HALFLIFE;
        let decayed = (rate as f64 / halvings.exp2()) as u64;
        if decayed < self.config.min_relay_fee_rate / 2 {
            0
        } else {
            decayed
        }
    }

    fn raise_rolling_min_fee(&mut self, evicted_score: FeeRate, now: u64) {
        let raised = evicted_score.sat_per_kb().saturating_add(self.config.min_relay_fee_rate);
        self.rolling_min = (raised.max(self.rolling_min_fee(now)), now);
    }
}
