//! The block index, most-work fork choice, reorganisations via undo data, orphan blocks,
//! invalidation, and chain events.
//!
//! Fork choice: the active chain ends at the valid block with the most cumulative work
//! (sum over its ancestry of `2^256 / (target + 1)`), not the most blocks. A rival with equal
//! work never replaces the tip, and among rivals the one seen first wins. Switching branches
//! disconnects blocks down to the fork point using their undo data and connects the new
//! branch; a block that fails to connect is marked invalid with all its descendants, and the
//! choice is made again (which may lead back to the old branch).
//!
//! Coins live in a cache ([`coins`]) over the store's UTXO column family, flushed when full,
//! every few minutes and on close; on open the chain replays the blocks between the flushed
//! UTXO state and the tip.

pub mod coins;
mod orphans;
pub mod pause;
mod sync_view;
pub mod verify;

use crate::consensus::pow::{block_work, next_bits, target_from_compact, ASERT_ANCHOR_HEIGHT};
use crate::consensus::validation::median_time;
use crate::consensus::{
    check_block, check_header_context, connect_block_cached, utxo_effect, CheckedBlock, Coin, ConsensusError,
    HeaderContext, Params, ScriptCache,
};
use crate::primitives::{Block, BlockHeader, Hash256, OutPoint, U256};
use crate::store::{BlockStatus, IndexRecord, Store, StoreError, UtxoDigest};
use coins::{CacheConfig, CacheStats, CoinsCache};
use orphans::OrphanPool;
pub use orphans::{
    Source as OrphanSource, MAX_ORPHANS, MAX_ORPHANS_PER_SOURCE, MAX_ORPHAN_BYTES,
    MAX_ORPHAN_BYTES_PER_SOURCE,
};
use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use tracing::{debug, info, warn};

/// Errors from the chain.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The block breaks a consensus rule.
    #[error("block {hash} is invalid: {error}")]
    Invalid { hash: Hash256, error: ConsensusError },
    /// The block, or an ancestor, was already found invalid.
    #[error("block {hash} is known to be invalid (or descends from an invalid block)")]
    KnownInvalid { hash: Hash256 },
    /// No block with this hash is known.
    #[error("block {hash} is not known")]
    UnknownBlock { hash: Hash256 },
    /// The genesis block cannot be invalidated.
    #[error("the genesis block cannot be invalidated")]
    GenesisInvalidation,
    /// Storage failed; the chainstate is still at a block boundary.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `QUARRY_PAUSE_AT` names an unknown pause point.
    #[error("{}={value:?}: unknown pause point {bad:?} (known: flush, reorg)", pause::PAUSE_ENV)]
    PauseSetting { value: String, bad: String },
    /// `quarry chain verify` found no chainstate.
    #[error("no chainstate at {dir}: pass the --datadir (and --network) of a node that has run")]
    NoChainstate { dir: String },
}

impl ChainError {
    /// Whose fault the refusal is. A block whose time is only too new for our clock is not
    /// the sender's fault; a block already known invalid may be so by our own
    /// `invalidateblock`, so it is not held against the sender either.
    pub fn fault(&self) -> crate::consensus::Fault {
        use crate::consensus::Fault;
        match self {
            ChainError::Invalid { error, .. }
                if matches!(error.root(), ConsensusError::TimeTooNew { .. }) =>
            {
                Fault::Transient
            }
            ChainError::Invalid { .. } => Fault::Sender,
            ChainError::KnownInvalid { .. }
            | ChainError::UnknownBlock { .. }
            | ChainError::GenesisInvalidation
            | ChainError::Store(_)
            | ChainError::PauseSetting { .. }
            | ChainError::NoChainstate { .. } => Fault::Local,
        }
    }
}

/// A change of the active chain, for the mempool, the miner and the network.
#[derive(Clone, Debug)]
pub enum ChainEvent {
    /// The block was connected at the tip.
    Connected { block: Arc<CheckedBlock>, height: u32 },
    /// The block was disconnected from the tip (during a reorganisation or invalidation).
    Disconnected { block: Arc<CheckedBlock>, height: u32 },
}

/// What became of a submitted block.
#[derive(Clone, Debug)]
pub enum ProcessOutcome {
    /// Stored; the events say how the active chain changed (none for a side branch).
    /// `failed` lists the blocks (this one or others on the branch) that were stored but
    /// broke a rule when the chain tried to connect them: they are now marked invalid.
    Accepted { events: Vec<ChainEvent>, failed: Vec<(Hash256, ConsensusError)> },
    /// Already stored.
    AlreadyHave,
    /// The parent is unknown; the block waits in the orphan pool. Ask a peer for `missing`.
    Orphan { missing: Hash256 },
}

#[derive(Clone, Debug)]
struct Entry {
    rec: IndexRecord,
    /// Time of this block's ancestor at [`ASERT_ANCHOR_HEIGHT`] (0 below it), inherited from
    /// the parent, so retarget context costs O(1) even deep on a side branch.
    anchor_time: u32,
}

/// Most hashes remembered as rejected without being indexed (header-context failures and
/// children of invalid blocks).
const MAX_REJECTED: usize = 10_000;

/// Candidate ordering: most work first, then first seen.
type CandidateKey = (Reverse<U256>, u64, Hash256);

/// The chain: block index in memory, chainstate in the [`Store`].
pub struct Chain {
    params: &'static Params,
    store: Arc<Store>,
    /// The UTXO set's recent changes, over the store's.
    coins: CoinsCache,
    index: HashMap<Hash256, Entry>,
    /// Active chain by height.
    active: Vec<Hash256>,
    candidates: BTreeSet<CandidateKey>,
    orphans: OrphanPool,
    /// Blocks refused before storage (no body kept, so never reconsidered); bounded, cleared
    /// by reconsider_block.
    rejected: HashSet<Hash256>,
    /// Txids whose scripts the mempool already verified; connecting skips them.
    script_cache: Arc<ScriptCache>,
    next_seq: u64,
    /// Bodies stored during the current `process_*` call, handed to the connect that follows
    /// (emptied before the call returns).
    fresh: HashMap<Hash256, Arc<CheckedBlock>>,
}

impl Drop for Chain {
    /// Flushes the coins cache (a node stopping cleanly starts without a replay).
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            warn!(target: "chain", error = %e, "flushing the UTXO cache on close failed; the next start replays");
        }
    }
}

/// Txids remembered as script-verified (about 40 bytes each with the map overhead).
const SCRIPT_CACHE_CAPACITY: usize = 300_000;

/// The tip of the active chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tip {
    /// Block id.
    pub hash: Hash256,
    /// Height.
    pub height: u32,
    /// Cumulative work.
    pub chain_work: U256,
}

impl Chain {
    /// Opens the chainstate in `dir`, creating it with the genesis block if empty, and
    /// finishes any work a crash interrupted (blocks stored but not yet connected).
    pub fn open(dir: &Path, params: &'static Params) -> Result<Chain, ChainError> {
        Chain::open_with(dir, params, CacheConfig::default())
    }

    /// [`Chain::open`] with the coins cache configured.
    pub fn open_with(dir: &Path, params: &'static Params, cache: CacheConfig) -> Result<Chain, ChainError> {
        Chain::with_store(Arc::new(Store::open(dir)?), params, cache)
    }

    /// A chain on a fresh in-memory store ([`Store::memory`]): the same block index, fork
    /// choice and reorganisations as on disk, nothing persisted (the simulator, fast tests).
    pub fn memory(params: &'static Params) -> Chain {
        // Inline flushes on size alone: no flush thread, nothing driven by the wall clock.
        let cache =
            CacheConfig { limit_bytes: 4 << 20, interval: std::time::Duration::MAX, background: false };
        Chain::with_store(Arc::new(Store::memory()), params, cache)
            .expect("a fresh memory store opens: it holds no record that could be corrupt")
    }

    /// Opens the chain on `store` (see [`Chain::open`]).
    pub fn with_store(
        store: Arc<Store>,
        params: &'static Params,
        cache: CacheConfig,
    ) -> Result<Chain, ChainError> {
        let mut chain = Chain {
            params,
            store,
            coins: CoinsCache::new(cache),
            index: HashMap::new(),
            active: Vec::new(),
            candidates: BTreeSet::new(),
            orphans: OrphanPool::new(),
            rejected: HashSet::new(),
            fresh: HashMap::new(),
            script_cache: Arc::new(ScriptCache::new(SCRIPT_CACHE_CAPACITY)),
            next_seq: 0,
        };
        let mut records = chain.store.load_index()?;
        records.sort_unstable_by_key(|(_, r)| r.height); // parents before children
        for (hash, rec) in records {
            chain.next_seq = chain.next_seq.max(rec.seq + 1);
            if !rec.status.is_failed() {
                chain.candidates.insert((Reverse(rec.chain_work), rec.seq, hash));
            }
            let anchor_time = chain.anchor_time_for(&rec);
            chain.index.insert(hash, Entry { rec, anchor_time });
        }
        match chain.store.tip()? {
            None => {
                let genesis = CheckedBlock::from_trusted_store(params.genesis.clone());
                let rec = IndexRecord {
                    header: genesis.block().header,
                    height: 0,
                    chain_work: block_work(&target_from_compact(params.genesis_bits).expect("valid")),
                    status: BlockStatus::Valid,
                    seq: chain.next_seq,
                };
                chain.next_seq += 1;
                chain.store.init_genesis(&genesis, &rec)?;
                chain.candidates.insert((Reverse(rec.chain_work), rec.seq, genesis.hash()));
                chain.index.insert(genesis.hash(), Entry { rec, anchor_time: 0 });
                chain.active.push(genesis.hash());
            }
            Some(tip) => {
                if !chain.index.contains_key(&tip) {
                    return Err(StoreError::Missing { what: "index record of the tip", hash: tip }.into());
                }
                let mut cur = tip;
                let mut rev = Vec::new();
                loop {
                    rev.push(cur);
                    let rec = &chain.index[&cur].rec;
                    if rec.height == 0 {
                        break;
                    }
                    cur = rec.header.prev;
                    if !chain.index.contains_key(&cur) {
                        return Err(
                            StoreError::Missing { what: "index record of an ancestor", hash: cur }.into()
                        );
                    }
                }
                rev.reverse();
                chain.active = rev;
            }
        }
        if chain.active[0] != params.genesis_hash {
            return Err(StoreError::Corrupt {
                cf: "index",
                detail: format!("genesis {} is not this network's {}", chain.active[0], params.genesis_hash),
            }
            .into());
        }
        chain.replay_utxos()?;
        let events = chain.activate_best_chain(&mut Vec::new())?;
        if !events.is_empty() {
            info!(target: "chain", blocks = events.len(), "resumed connecting stored blocks after restart");
        }
        Ok(chain)
    }

    /// The network parameters.
    pub fn params(&self) -> &'static Params {
        self.params
    }

    /// The cache of script-verified txids shared with the mempool.
    pub fn script_cache(&self) -> Arc<ScriptCache> {
        self.script_cache.clone()
    }

    /// The store (read access for RPC and tests).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The store, shared (the indexer reads it from its own thread).
    pub fn shared_store(&self) -> Arc<Store> {
        self.store.clone()
    }

    /// The active tip.
    pub fn tip(&self) -> Tip {
        let hash = *self.active.last().expect("the active chain holds at least genesis");
        let rec = &self.index[&hash].rec;
        Tip { hash, height: rec.height, chain_work: rec.chain_work }
    }

    /// The active-chain block at `height`.
    pub fn hash_at(&self, height: u32) -> Option<Hash256> {
        self.active.get(height as usize).copied()
    }

    /// The index record of a known block.
    pub fn record(&self, hash: &Hash256) -> Option<&IndexRecord> {
        self.index.get(hash).map(|e| &e.rec)
    }

    /// True if the block is on the active chain.
    pub fn is_active(&self, hash: &Hash256) -> bool {
        self.record(hash).is_some_and(|r| self.hash_at(r.height) == Some(*hash))
    }

    /// A summary of the UTXO set (the cache's changes included).
    pub fn utxo_digest(&self) -> Result<UtxoDigest, ChainError> {
        Ok(self.store.utxo_digest(&self.coins.overlay())?)
    }

    /// The unspent coins among `outpoints`.
    pub fn coins(&self, outpoints: &[OutPoint]) -> Result<HashMap<OutPoint, Coin>, ChainError> {
        Ok(self.coins.coins(&self.store, outpoints)?)
    }

    /// One unspent coin.
    pub fn coin(&self, outpoint: &OutPoint) -> Result<Option<Coin>, ChainError> {
        Ok(self.coins.coin(&self.store, outpoint)?)
    }

    /// The unspent coins locked by exactly `lock` (an address's script), at most `limit`,
    /// oldest first.
    pub fn coins_by_lock(&self, lock: &[u8], limit: usize) -> Result<Vec<(OutPoint, Coin)>, ChainError> {
        let ops = self.store.outpoints_by_lock(lock, limit)?;
        let mut out: Vec<(OutPoint, Coin)> = self.coins(&ops)?.into_iter().collect();
        out.sort_unstable_by(|a, b| (a.1.height, a.0).cmp(&(b.1.height, b.0)));
        Ok(out)
    }

    /// What the coins cache holds.
    pub fn cache_stats(&self) -> CacheStats {
        self.coins.stats()
    }

    /// Writes the coins cache to the store and waits for it (at shutdown; the chain stays
    /// usable).
    pub fn flush(&mut self) -> Result<(), ChainError> {
        let tip = self.tip().hash;
        Ok(self.coins.flush(&self.store, tip, true)?)
    }

    /// After a connect or disconnect: collects a finished background flush and starts one if
    /// due.
    fn after_utxo_change(&mut self) -> Result<(), ChainError> {
        self.coins.poll()?;
        if self.coins.flush_due() {
            let tip = self.tip().hash;
            self.coins.flush(&self.store, tip, false)?;
        }
        Ok(())
    }

    /// Brings the coins from the block the flushed UTXO set corresponds to (`utxo_best`) to the
    /// tip: back to the fork point with undo data, then forward along the active chain with
    /// the stored blocks (their scripts were verified when they first connected). Then flushes.
    fn replay_utxos(&mut self) -> Result<(), ChainError> {
        let tip = self.tip().hash;
        let best = self.store.utxo_best()?.unwrap_or(tip);
        if best == tip {
            return Ok(());
        }
        if !self.index.contains_key(&best) {
            return Err(
                StoreError::Missing { what: "index record of the UTXO set's block", hash: best }.into()
            );
        }
        let (mut cur, mut undone) = (best, 0u32);
        while !self.is_active(&cur) {
            let block =
                self.store.get_block(&cur)?.ok_or(StoreError::Missing { what: "block body", hash: cur })?;
            let undo =
                self.store.get_undo(&cur)?.ok_or(StoreError::Missing { what: "undo data", hash: cur })?;
            self.coins.disconnect(&block, &undo);
            cur = block.header().prev;
            undone += 1;
            if self.coins.flush_due() {
                self.coins.flush(&self.store, cur, false)?;
            }
        }
        let fork = self.index[&cur].rec.height;
        let height = self.tip().height;
        for h in fork + 1..=height {
            let hash = self.active[h as usize];
            let block =
                self.store.get_block(&hash)?.ok_or(StoreError::Missing { what: "block body", hash })?;
            let prevouts: Vec<OutPoint> =
                block.block().txs.iter().skip(1).flat_map(|tx| tx.inputs.iter().map(|i| i.prevout)).collect();
            let view = self.coins.coins(&self.store, &prevouts)?;
            let effect = utxo_effect(&block, h, self.params, &view)
                .map_err(|error| ChainError::Invalid { hash, error })?;
            self.coins.connect(&effect);
            // A long replay stays within the cache bound: the state now matches this block.
            if self.coins.flush_due() {
                self.coins.flush(&self.store, hash, false)?;
            }
        }
        info!(target: "chain", from = %best, to = %tip, disconnected = undone, connected = height - fork, "UTXO set replayed to the tip");
        self.flush()
    }

    /// Number of blocks waiting for their parent.
    pub fn orphan_count(&self) -> usize {
        self.orphans.len()
    }

    /// Bytes of orphan blocks held.
    pub fn orphan_bytes(&self) -> usize {
        self.orphans.bytes()
    }

    /// Count and bytes of orphans held from `source`.
    pub fn orphans_from(&self, source: OrphanSource) -> (usize, usize) {
        self.orphans.held_from(source)
    }

    /// The ancestor of `hash` at `height` (which must not exceed the block's height).
    fn ancestor(&self, hash: &Hash256, height: u32) -> Option<Hash256> {
        let mut cur = *hash;
        loop {
            let rec = &self.index.get(&cur)?.rec;
            if rec.height < height {
                return None;
            }
            if self.active.get(rec.height as usize) == Some(&cur) {
                return self.active.get(height as usize).copied();
            }
            if rec.height == height {
                return Some(cur);
            }
            cur = rec.header.prev;
        }
    }

    /// The anchor time of a block whose parent is indexed (or genesis).
    fn anchor_time_for(&self, rec: &IndexRecord) -> u32 {
        match rec.height.cmp(&ASERT_ANCHOR_HEIGHT) {
            std::cmp::Ordering::Less => 0,
            std::cmp::Ordering::Equal => rec.header.time,
            std::cmp::Ordering::Greater => self.index.get(&rec.header.prev).map_or(0, |p| p.anchor_time),
        }
    }

    /// The template context for a child of the active tip at time `now`.
    pub fn tip_context(&self, now: u64) -> crate::consensus::TipContext {
        let tip = self.tip();
        let next = self.header_context(&tip.hash, now).expect("the active tip is indexed");
        crate::consensus::TipContext { params: self.params, prev: tip.hash, next }
    }

    /// The header-context facts for a child of `parent`.
    pub fn header_context(&self, parent: &Hash256, now: u64) -> Option<HeaderContext> {
        let prec = &self.index.get(parent)?.rec;
        let mut times = Vec::with_capacity(self.params.median_time_span);
        let mut cur = *parent;
        while times.len() < self.params.median_time_span {
            let rec = &self.index.get(&cur)?.rec;
            times.push(rec.header.time);
            if rec.height == 0 {
                break;
            }
            cur = rec.header.prev;
        }
        let anchor_time = self.index.get(parent)?.anchor_time;
        Some(HeaderContext {
            height: prec.height + 1,
            expected_bits: next_bits(self.params, prec.height, prec.header.time, anchor_time),
            median_time_past: median_time(&mut times),
            now,
        })
    }

    /// Validates and stores a block, then moves the tip to the most-work valid chain.
    /// Blocks whose parent is unknown wait (bounded) in the orphan pool; when a block is
    /// accepted, its waiting descendants are processed too.
    pub fn process_block(&mut self, block: Block, now: u64) -> Result<ProcessOutcome, ChainError> {
        self.process_block_from(block, now, 0)
    }

    /// [`Chain::process_block`] for a block sent by `source` (an opaque key, e.g. a hash of
    /// the peer id): its orphans count against that source's share of the orphan pool
    /// ([`MAX_ORPHANS_PER_SOURCE`], [`MAX_ORPHAN_BYTES_PER_SOURCE`]).
    pub fn process_block_from(
        &mut self,
        block: Block,
        now: u64,
        source: OrphanSource,
    ) -> Result<ProcessOutcome, ChainError> {
        let hash = block.hash();
        if let Some(e) = self.index.get(&hash) {
            return match e.rec.status {
                BlockStatus::Valid => Ok(ProcessOutcome::AlreadyHave),
                _ => Err(ChainError::KnownInvalid { hash }),
            };
        }
        if self.rejected.contains(&hash) {
            return Err(ChainError::KnownInvalid { hash });
        }
        let checked = check_block(block, self.params).map_err(|error| ChainError::Invalid { hash, error })?;
        self.process_checked_from(checked, now, source)
    }

    /// The header-context rules (§8.3) for a new header: [`ChainError::UnknownBlock`] names
    /// an unknown parent, [`ChainError::KnownInvalid`] a failed one.
    pub fn check_header(&self, header: &BlockHeader, now: u64) -> Result<(), ChainError> {
        let hash = header.hash();
        match self.index.get(&header.prev) {
            None => return Err(ChainError::UnknownBlock { hash: header.prev }),
            Some(p) if p.rec.status.is_failed() => return Err(ChainError::KnownInvalid { hash }),
            Some(_) => {}
        }
        if self.rejected.contains(&hash) {
            return Err(ChainError::KnownInvalid { hash });
        }
        let ctx = self.header_context(&header.prev, now).expect("parent is indexed");
        check_header_context(header, &ctx, self.params).map_err(|error| ChainError::Invalid { hash, error })
    }

    /// The checks a block passes before it is relayed ahead of its connection (compact
    /// relay, docs/PROTOCOL.md §13.6a): it is new, its parent is stored and not invalid, the
    /// context-free block rules hold (Merkle root included) and so do the header-context
    /// rules. `txids`, if given, are the block's txids in order (see
    /// [`crate::consensus::check_block_with_txids`]). Hand the result to
    /// [`Chain::process_checked_from`].
    pub fn precheck(
        &mut self,
        block: Block,
        txids: Option<Vec<Hash256>>,
        now: u64,
    ) -> Result<CheckedBlock, ChainError> {
        let hash = block.hash();
        if self.index.contains_key(&hash) || self.rejected.contains(&hash) {
            return Err(ChainError::KnownInvalid { hash });
        }
        let prev = block.header.prev;
        match self.index.get(&prev) {
            None => return Err(ChainError::UnknownBlock { hash: prev }),
            Some(p) if p.rec.status.is_failed() => {
                self.reject(hash);
                return Err(ChainError::KnownInvalid { hash });
            }
            Some(_) => {}
        }
        let checked = match txids {
            Some(txids) => crate::consensus::check_block_with_txids(block, txids, self.params),
            None => check_block(block, self.params),
        }
        .map_err(|error| ChainError::Invalid { hash, error })?;
        let ctx = self.header_context(&prev, now).expect("parent is indexed");
        if let Err(error) = check_header_context(checked.header(), &ctx, self.params) {
            if error.marks_block_invalid() {
                self.reject(hash);
            }
            return Err(ChainError::Invalid { hash, error });
        }
        Ok(checked)
    }

    /// [`Chain::process_block_from`] for a block that already passed [`check_block`].
    pub fn process_checked_from(
        &mut self,
        checked: CheckedBlock,
        now: u64,
        source: OrphanSource,
    ) -> Result<ProcessOutcome, ChainError> {
        self.process_shared_from(Arc::new(checked), now, source)
    }

    /// [`Chain::process_checked_from`] for a block others may hold too (a relayed block the
    /// network service keeps to answer `GetBlockTxn` while it connects): the connect and the
    /// `Connected` event share it, nothing is copied.
    pub fn process_shared_from(
        &mut self,
        checked: Arc<CheckedBlock>,
        now: u64,
        source: OrphanSource,
    ) -> Result<ProcessOutcome, ChainError> {
        let hash = checked.hash();
        if self.index.contains_key(&hash) {
            return Ok(ProcessOutcome::AlreadyHave);
        }
        // First-seen order is the order of receipt, kept while a block waits as an orphan.
        let seq = self.next_seq;
        self.next_seq += 1;
        let prev = checked.header().prev;
        if !self.index.contains_key(&prev) {
            debug!(target: "chain", %hash, missing = %prev, "orphan block");
            let body = Arc::try_unwrap(checked).unwrap_or_else(|shared| (*shared).clone());
            self.orphans.insert(body, seq, source);
            return Ok(ProcessOutcome::Orphan { missing: self.orphans.missing_root(&prev) });
        }
        let mut accepted = vec![hash];
        let result = self.accept(checked, seq, now);
        // Descendants that were waiting for this block (only if it was accepted).
        if result.is_ok() {
            let mut queue = vec![hash];
            while let Some(parent) = queue.pop() {
                for (child, seq) in self.orphans.take_children(&parent) {
                    let child_hash = child.hash();
                    match self.accept(Arc::new(child), seq, now) {
                        Ok(()) => {
                            accepted.push(child_hash);
                            queue.push(child_hash);
                        }
                        Err(e) => warn!(target: "chain", hash = %child_hash, error = %e, "orphan rejected"),
                    }
                }
            }
        }
        if let Err(e) = result {
            self.fresh.clear();
            return Err(e);
        }
        let mut failed = Vec::new();
        let events = self.activate_best_chain(&mut failed);
        // Bodies just stored and not connected now are read back when they are.
        self.fresh.clear();
        Ok(ProcessOutcome::Accepted { events: events?, failed })
    }

    /// Header-context checks, then store body and index record. Blocks refused here are not
    /// indexed (no body is kept, so they could never be reconsidered); their hashes go to the
    /// bounded `rejected` set.
    fn accept(&mut self, block: Arc<CheckedBlock>, seq: u64, now: u64) -> Result<(), ChainError> {
        let hash = block.hash();
        let prev = block.header().prev;
        let parent = &self.index[&prev];
        if parent.rec.status.is_failed() {
            self.reject(hash);
            return Err(ChainError::KnownInvalid { hash });
        }
        let ctx = self.header_context(&prev, now).expect("parent is indexed");
        if let Err(error) = check_header_context(block.header(), &ctx, self.params) {
            if error.marks_block_invalid() {
                self.reject(hash);
            }
            return Err(ChainError::Invalid { hash, error });
        }
        let rec = self.new_record(&block, BlockStatus::Valid, seq);
        self.store.put_block(&block, &rec)?;
        debug!(target: "chain", %hash, height = rec.height, "block stored");
        // Kept for the connect that usually follows at once (no read back, no rehashing).
        self.fresh.insert(hash, block);
        self.candidates.insert((Reverse(rec.chain_work), rec.seq, hash));
        let anchor_time = self.anchor_time_for(&rec);
        self.index.insert(hash, Entry { rec, anchor_time });
        Ok(())
    }

    fn reject(&mut self, hash: Hash256) {
        if self.rejected.len() >= MAX_REJECTED {
            self.rejected.clear();
        }
        self.rejected.insert(hash);
    }

    fn new_record(&self, block: &CheckedBlock, status: BlockStatus, seq: u64) -> IndexRecord {
        let parent = &self.index[&block.header().prev].rec;
        let work = target_from_compact(block.header().bits).map(|t| block_work(&t)).unwrap_or(U256::ZERO);
        IndexRecord {
            header: *block.header(),
            height: parent.height + 1,
            chain_work: parent.chain_work.saturating_add(&work),
            status,
            seq,
        }
    }

    /// Moves the tip to the most-work valid block, reorganising as needed. Among blocks of
    /// equal work the tip held on entry wins, then the first received: so an equal-work rival
    /// never takes over, and a reorganisation that fails half-way returns to the old tip
    /// unless something valid with more work remains.
    fn activate_best_chain(
        &mut self,
        failed: &mut Vec<(Hash256, ConsensusError)>,
    ) -> Result<Vec<ChainEvent>, ChainError> {
        let mut events = Vec::new();
        let start = self.tip();
        loop {
            let tip = self.tip();
            let Some(&(Reverse(work), seq, best)) = self.candidates.iter().next() else { break };
            if self.index[&best].rec.status.is_failed() {
                self.candidates.remove(&(Reverse(work), seq, best));
                continue;
            }
            let start_valid = self.index.get(&start.hash).is_some_and(|e| !e.rec.status.is_failed());
            let target = if work == start.chain_work && start_valid { start.hash } else { best };
            if target == tip.hash {
                break;
            }
            self.reorganize_to(target, &mut events, failed)?;
        }
        Ok(events)
    }

    /// Disconnects to the fork point with `target`'s branch and connects towards `target`.
    /// Stops early (leaving a consistent tip) if a block on the way is invalid.
    fn reorganize_to(
        &mut self,
        target: Hash256,
        events: &mut Vec<ChainEvent>,
        failed: &mut Vec<(Hash256, ConsensusError)>,
    ) -> Result<(), ChainError> {
        let mut path = Vec::new();
        let mut cur = target;
        while !self.is_active(&cur) {
            path.push(cur);
            cur = self.index[&cur].rec.header.prev;
        }
        let fork_height = self.index[&cur].rec.height;
        if (self.tip().height) > fork_height {
            info!(target: "chain", from = %self.tip().hash, to = %target, depth = self.tip().height - fork_height, "reorganisation");
        }
        let disconnecting = self.tip().height > fork_height;
        while self.tip().height > fork_height {
            self.disconnect_tip(events)?;
        }
        if disconnecting && !path.is_empty() {
            pause::reached(pause::PausePoint::Reorg);
        }
        for hash in path.into_iter().rev() {
            let block = match self.fresh.remove(&hash) {
                Some(b) => b,
                None => Arc::new(
                    self.store.get_block(&hash)?.ok_or(StoreError::Missing { what: "block body", hash })?,
                ),
            };
            let height = self.index[&hash].rec.height;
            let prevouts: Vec<OutPoint> =
                block.block().txs.iter().skip(1).flat_map(|tx| tx.inputs.iter().map(|i| i.prevout)).collect();
            let view = self.coins.coins(&self.store, &prevouts)?;
            match connect_block_cached(&block, height, self.params, &view, &self.script_cache) {
                Ok(effect) => {
                    self.store.connect_block(&block, height, &effect)?;
                    self.coins.connect(&effect);
                    self.active.push(hash);
                    self.after_utxo_change()?;
                    debug!(target: "chain", %hash, height, txs = block.block().txs.len(), "connected");
                    events.push(ChainEvent::Connected { block, height });
                }
                Err(error) => {
                    warn!(target: "chain", %hash, height, %error, "block failed to connect; marking it invalid");
                    self.mark_invalid(&hash)?;
                    failed.push((hash, error));
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Disconnects the active tip with its undo data (one atomic batch).
    fn disconnect_tip(&mut self, events: &mut Vec<ChainEvent>) -> Result<(), ChainError> {
        let tip = self.tip();
        let block = self
            .store
            .get_block(&tip.hash)?
            .ok_or(StoreError::Missing { what: "block body", hash: tip.hash })?;
        let spent = self.store.disconnect_block(&block, tip.height)?;
        self.coins.disconnect(&block, &spent);
        self.active.pop();
        self.after_utxo_change()?;
        events.push(ChainEvent::Disconnected { block: Arc::new(block), height: tip.height });
        Ok(())
    }

    /// Marks `hash` failed and every known descendant failed-child, persistently.
    fn mark_invalid(&mut self, hash: &Hash256) -> Result<(), ChainError> {
        let mut changed = vec![*hash];
        let height = self.index[hash].rec.height;
        let descendants: Vec<Hash256> = self
            .index
            .iter()
            .filter(|(h, e)| e.rec.height > height && self.ancestor(h, height) == Some(*hash))
            .map(|(h, _)| *h)
            .collect();
        changed.extend(descendants);
        for (i, h) in changed.iter().enumerate() {
            let e = self.index.get_mut(h).expect("indexed");
            self.candidates.remove(&(Reverse(e.rec.chain_work), e.rec.seq, *h));
            e.rec.status = if i == 0 { BlockStatus::Failed } else { BlockStatus::FailedChild };
        }
        let records: Vec<(Hash256, IndexRecord)> =
            changed.iter().map(|h| (*h, self.index[h].rec.clone())).collect();
        let refs: Vec<(Hash256, &IndexRecord)> = records.iter().map(|(h, r)| (*h, r)).collect();
        self.store.put_index(&refs)?;
        Ok(())
    }

    /// Marks a block invalid by hand (RPC `invalidateblock`): it and its descendants leave
    /// the active chain and are not reconsidered until [`Chain::reconsider_block`].
    pub fn invalidate_block(&mut self, hash: &Hash256) -> Result<Vec<ChainEvent>, ChainError> {
        let Some(e) = self.index.get(hash) else { return Err(ChainError::UnknownBlock { hash: *hash }) };
        if e.rec.height == 0 {
            return Err(ChainError::GenesisInvalidation);
        }
        let height = e.rec.height;
        let mut events = Vec::new();
        // Mark first: a crash while disconnecting must not reconnect the block on restart.
        let was_active = self.is_active(hash);
        self.mark_invalid(hash)?;
        if was_active {
            while self.tip().height >= height {
                self.disconnect_tip(&mut events)?;
            }
        }
        events.extend(self.activate_best_chain(&mut Vec::new())?);
        Ok(events)
    }

    /// Clears the invalid marks of a block, its ancestors and its descendants (RPC
    /// `reconsiderblock`) and chooses the best chain again.
    pub fn reconsider_block(&mut self, hash: &Hash256) -> Result<Vec<ChainEvent>, ChainError> {
        let Some(e) = self.index.get(hash) else { return Err(ChainError::UnknownBlock { hash: *hash }) };
        let height = e.rec.height;
        let mut affected: Vec<Hash256> = self
            .index
            .iter()
            .filter(|(h, e)| e.rec.height >= height && self.ancestor(h, height) == Some(*hash))
            .map(|(h, _)| *h)
            .collect();
        let mut cur = self.index[hash].rec.header.prev;
        while let Some(e) = self.index.get(&cur) {
            affected.push(cur);
            if e.rec.height == 0 {
                break;
            }
            cur = e.rec.header.prev;
        }
        let mut records = Vec::new();
        for h in affected {
            let e = self.index.get_mut(&h).expect("indexed");
            if e.rec.status.is_failed() {
                e.rec.status = BlockStatus::Valid;
                self.candidates.insert((Reverse(e.rec.chain_work), e.rec.seq, h));
                records.push((h, e.rec.clone()));
            }
        }
        let refs: Vec<(Hash256, &IndexRecord)> = records.iter().map(|(h, r)| (*h, r)).collect();
        self.store.put_index(&refs)?;
        // Children refused because this branch was invalid may now be welcome again.
        self.rejected.clear();
        self.activate_best_chain(&mut Vec::new())
    }

    /// The tips of every branch (blocks with no known child), like `getchaintips`.
    pub fn tips(&self) -> Vec<(Hash256, &IndexRecord)> {
        let mut has_child = std::collections::HashSet::new();
        for e in self.index.values() {
            has_child.insert(e.rec.header.prev);
        }
        self.index.iter().filter(|(h, _)| !has_child.contains(*h)).map(|(h, e)| (*h, &e.rec)).collect()
    }
}

#[cfg(test)]
mod bound_tests {
    use super::*;

    #[test]
    fn the_rejected_set_never_holds_more_than_its_bound_and_keeps_the_newest() {
        let mut chain = Chain::memory(crate::consensus::Network::Regtest.params());
        let hash = |i: u64| {
            let mut h = [0u8; 32];
            h[..8].copy_from_slice(&i.to_le_bytes());
            Hash256(h)
        };
        let n = 2 * MAX_REJECTED as u64 + 5;
        for i in 0..n {
            chain.reject(hash(i));
            assert!(chain.rejected.len() <= MAX_REJECTED, "{} rejected hashes kept", chain.rejected.len());
        }
        assert!(chain.rejected.contains(&hash(n - 1)), "the newest rejection is remembered");
    }

    /// ARCHITECTURE's memory bound "bodies between store and connect": whatever a `process_*`
    /// call does (connect, wait as an orphan, connect a waiting orphan too, store a side
    /// branch, store a block that then fails to connect), no body is left in `fresh`.
    #[test]
    fn no_body_is_left_in_fresh_after_a_process_call() {
        use crate::consensus::validation::block_subsidy;
        use crate::primitives::Amount;
        use crate::testkit::{assemble, coinbase, key, p2pkh_lock};
        let params = crate::consensus::Network::Regtest.params();
        let mut chain = Chain::memory(params);
        let now = params.genesis_time as u64 + 100_000;
        let block = |prev: Hash256, height: u32, extra_sat: u64, tag: &[u8]| {
            let value = Amount::from_sat(block_subsidy(params, height).to_sat() + extra_sat).unwrap();
            let cb = coinbase(height, value, p2pkh_lock(&key(1)), tag);
            assemble(params, prev, params.genesis_time + height, params.genesis_bits, vec![cb])
        };
        let g = params.genesis_hash;
        let b1 = block(g, 1, 0, b"b1");
        let b2 = block(b1.hash(), 2, 0, b"b2");
        let b3 = block(b2.hash(), 3, 0, b"b3");
        let side = block(g, 1, 0, b"side");
        let inflated = block(b3.hash(), 4, 1, b"inflated");

        let outcome = chain.process_block(b1.clone(), now).unwrap();
        assert!(
            matches!(outcome, ProcessOutcome::Accepted { ref events, .. } if events.len() == 1),
            "{outcome:?}"
        );
        assert!(chain.fresh.is_empty(), "after a connect");
        let outcome = chain.process_block(b3.clone(), now).unwrap();
        assert!(matches!(outcome, ProcessOutcome::Orphan { .. }), "{outcome:?}");
        assert!(chain.fresh.is_empty(), "after an orphan");
        chain.process_block(b2.clone(), now).unwrap();
        assert_eq!(chain.tip().hash, b3.hash(), "the orphan connected after its parent");
        assert!(chain.fresh.is_empty(), "after a block and the orphan it released");
        let outcome = chain.process_block(side, now).unwrap();
        assert!(
            matches!(outcome, ProcessOutcome::Accepted { ref events, .. } if events.is_empty()),
            "{outcome:?}"
        );
        assert!(chain.fresh.is_empty(), "after a side branch stored and not connected");
        let outcome = chain.process_block(inflated, now).unwrap();
        assert!(
            matches!(outcome, ProcessOutcome::Accepted { ref failed, .. } if failed.len() == 1),
            "{outcome:?}"
        );
        assert_eq!(chain.tip().hash, b3.hash());
        assert!(chain.fresh.is_empty(), "after a block stored and failed to connect");
        assert!(chain.process_block(b1, now).is_ok_and(|o| matches!(o, ProcessOutcome::AlreadyHave)));
        assert!(chain.fresh.is_empty());
    }
}
