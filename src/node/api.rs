//! The node's typed API: every request RPC (or any other user above the node) can make of
//! the core, each with a typed reply. Requests go through a bounded lane of the core's inbox
//! (a full lane answers [`NodeError::Busy`] at once); replies are domain values, never JSON:
//! formatting belongs to the caller. Nothing outside `node` sees `Core` or its fields.

use super::queue::{Inbox, Refused};
use crate::chain::{ChainError, Tip};
use crate::consensus::{CheckedBlock, Coin, Network};
use crate::mempool::{EntryInfo, MempoolError, MempoolInfo};
use crate::miner::{BlockTemplate, HashRate};
use crate::primitives::{
    Amount, Block, BlockHeader, Hash256, OutPoint, Script, Transaction, TxOut, TxProof, U256,
};
use crate::store::StoreError;
use std::sync::Arc;
use tokio::sync::{oneshot, watch};

/// Where a reply goes.
pub(crate) type Reply<T> = oneshot::Sender<T>;

/// Everything that can go wrong serving a request. Each variant carries the values a
/// message needs.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The request lane is full.
    #[error("node is busy ({0} requests queued): retry later")]
    Busy(usize),
    /// The verifier pool is full: too many transactions wait for their signature checks.
    #[error(
        "node is busy: {jobs} transactions ({bytes} bytes) are waiting for their signature checks; retry later"
    )]
    VerifyBusy { jobs: usize, bytes: usize },
    /// The core has stopped (shutting down).
    #[error("node is shutting down")]
    Stopped,
    /// No block with this hash is stored.
    #[error("Block not found: {0}")]
    BlockNotFound(Hash256),
    /// No block at this height in the active chain.
    #[error("Block height {height} out of range (tip {tip})")]
    HeightOutOfRange { height: i64, tip: u32 },
    /// The transaction is neither in the mempool nor (by the tx index) in the active chain.
    #[error("No such mempool or blockchain transaction {0}")]
    TxNotFound(Hash256),
    /// The transaction is not in a block yet.
    #[error("Transaction {0} not yet in a block")]
    TxNotConfirmed(Hash256),
    /// The transaction is not in the given block.
    #[error("Transaction {txid} not in block {block}")]
    TxNotInBlock { txid: Hash256, block: Hash256 },
    /// The transaction is already confirmed.
    #[error("Transaction {0} already in block chain")]
    AlreadyInChain(Hash256),
    /// An input is neither unspent in the chain nor an output of a mempool transaction.
    #[error("input {0} is missing or spent")]
    MissingInput(OutPoint),
    /// An answer would be larger than the limit.
    #[error("more than {limit} {what} for these addresses: ask for fewer")]
    TooMany { what: &'static str, limit: usize },
    /// The chain refused the block or the request.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The mempool refused the transaction.
    #[error(transparent)]
    Mempool(#[from] MempoolError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The miner could not start (e.g. too many threads).
    #[error("cannot mine: {0}")]
    Miner(String),
    /// The index this answer needs is behind the chain (catching up after a start, or many
    /// blocks arrived at once).
    #[error("the {index} is still being built: indexed to height {indexed} of {tip}; retry shortly")]
    IndexSyncing { index: &'static str, indexed: u32, tip: u32 },
    /// The index this answer needs is switched off.
    #[error("the {index} is switched off: restart the node with {flag} true")]
    IndexDisabled { index: &'static str, flag: &'static str },
}

/// `getblockchaininfo`'s facts.
#[derive(Clone, Debug)]
pub struct ChainInfo {
    /// The active tip.
    pub tip: Tip,
    /// Its header.
    pub tip_header: BlockHeader,
    /// Median time past of the tip.
    pub median_time: Option<u32>,
    /// Height and hash of the best header known (from peers' headers; the tip if none is
    /// better).
    pub headers: u32,
    /// Hash of that header.
    pub best_header: Hash256,
    /// True while blocks are being downloaded to catch up with a known better header chain.
    pub initial_block_download: bool,
    /// Blocks connected over blocks known to exist (1.0 when caught up).
    pub verification_progress: f64,
}

/// A header with its place in the block index.
#[derive(Clone, Debug)]
pub struct HeaderView {
    /// Block id.
    pub hash: Hash256,
    /// The header.
    pub header: BlockHeader,
    /// Height, if indexed.
    pub height: Option<u32>,
    /// Confirmations in the active chain, -1 off it (Core's convention).
    pub confirmations: i64,
    /// Median time past at this block.
    pub median_time: Option<u32>,
    /// Cumulative work, if indexed.
    pub chain_work: Option<U256>,
    /// The next block in the active chain.
    pub next: Option<Hash256>,
}

/// A stored block and its header view.
#[derive(Clone, Debug)]
pub struct BlockView {
    /// The block.
    pub block: Arc<CheckedBlock>,
    /// Its header's place.
    pub header: HeaderView,
}

/// Where a confirmed transaction is.
#[derive(Clone, Copy, Debug)]
pub struct TxLocation {
    /// Block id.
    pub block: Hash256,
    /// Confirmations (1 in the tip).
    pub confirmations: u32,
    /// The block's time.
    pub time: u32,
}

/// A transaction found in the mempool (no location) or the active chain.
#[derive(Clone, Debug)]
pub struct TxView {
    /// The transaction.
    pub tx: Transaction,
    /// Where it is confirmed.
    pub location: Option<TxLocation>,
}

/// What became of a submitted block.
#[derive(Debug)]
pub enum SubmitOutcome {
    /// Stored and valid (connected if it had the most work).
    Accepted,
    /// Already stored.
    Duplicate,
    /// Its parent is unknown: it waits in the orphan pool.
    Orphan { missing: Hash256 },
    /// Refused before storage, or stored and then found invalid while connecting; the
    /// error names the rule.
    Invalid(ChainError),
}

/// `getmininginfo`'s facts.
#[derive(Clone, Debug)]
pub struct MiningInfo {
    /// The active tip.
    pub tip: Tip,
    /// The tip's bits.
    pub bits: u32,
    /// Work of the last 120 blocks over their time span, hashes per second.
    pub network_hashps: f64,
    /// Mempool transactions.
    pub pooled_tx: usize,
    /// True when the continuous miner runs.
    pub mining: bool,
    /// Its hash rate.
    pub rate: HashRate,
    /// The hashing kernel in use.
    pub kernel: Option<&'static str>,
}

/// `getstrategyinfo`'s facts: how the continuous miner behaves ([`super::adversary`]).
#[derive(Clone, Debug)]
pub struct StrategyInfo {
    /// `honest`, `selfish`, or `double-spend` while an attempt races.
    pub strategy: &'static str,
    /// True when the continuous miner runs.
    pub mining: bool,
    /// `--mine-hashrate`, hashes per second.
    pub hashrate_limit: Option<f64>,
    /// The block the strategy mines on (none when honest).
    pub mine_on: Option<Hash256>,
    /// Blocks mined and not published.
    pub withheld: usize,
    /// Private branch length minus the public branch's since the fork point.
    pub lead: i64,
    /// Blocks mined while a strategy was active.
    pub mined: u64,
    /// Of those, published.
    pub published: u64,
    /// Blocks given up (withheld or published, on a branch the strategy abandoned).
    pub abandoned: u64,
    /// Most blocks withheld at once.
    pub longest_withheld: u64,
    /// The double-spend attempt racing, else the last one that ended.
    pub attack: Option<AttackView>,
}

/// A double-spend attempt (`startdoublespend`, `getstrategyinfo`).
#[derive(Clone, Debug)]
pub struct AttackView {
    /// `racing`, `succeeded` or `failed`.
    pub outcome: &'static str,
    /// The payment to the merchant.
    pub payment: Hash256,
    /// The conflicting spend on the private branch.
    pub conflict: Hash256,
    /// The block both branches share.
    pub fork: Hash256,
    /// Its height.
    pub fork_height: u32,
    /// Private blocks after the fork point.
    pub private_len: u32,
    /// Public blocks after the fork point.
    pub public_len: u32,
    /// Confirmations the merchant waits for.
    pub confirmations: u32,
    /// Blocks behind at which the attacker gives up.
    pub max_deficit: u32,
    /// Times the fork point moved (the network's next block lacked the payment).
    pub restarts: u32,
}

/// An unspent output (`gettxout`).
#[derive(Clone, Debug)]
pub struct TxOutView {
    /// The active tip.
    pub tip: Tip,
    /// Confirmations (0 for a mempool output).
    pub confirmations: u32,
    /// The output.
    pub out: TxOut,
    /// Created by a coinbase.
    pub coinbase: bool,
}

/// `gettxoutsetinfo`'s facts.
#[derive(Clone, Debug)]
pub struct UtxoSetInfo {
    /// The tip the set belongs to.
    pub tip: Tip,
    /// Unspent outputs.
    pub count: u64,
    /// Their total value, base units.
    pub total: u64,
    /// Digest of the whole set.
    pub hash: Hash256,
}

/// A chain tip (`getchaintips`).
#[derive(Clone, Debug)]
pub struct ChainTipView {
    /// Block id.
    pub hash: Hash256,
    /// Height.
    pub height: u32,
    /// Blocks from the fork point with the active chain.
    pub branch_len: u32,
    /// "active", "valid-fork" or "invalid".
    pub status: &'static str,
}

/// An unspent output paying one of the asked-for scripts.
#[derive(Clone, Debug)]
pub struct AddressCoin {
    /// Which of the asked-for locking scripts it pays (index into the request's list).
    pub lock_index: usize,
    /// The output.
    pub outpoint: OutPoint,
    /// Value, height, coinbase flag, script.
    pub coin: Coin,
    /// The mempool transaction spending it, if any.
    pub spent_in_mempool: Option<Hash256>,
}

/// What a block template depends on: the tip and the mempool's contents. The core
/// publishes a new mark whenever either changes ([`NodeHandle::template_changes`]), so a
/// long-polling `getblocktemplate` waits on it without touching the core thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TemplateMark {
    /// The active tip.
    pub tip: Hash256,
    /// The mempool's change mark ([`crate::mempool::Mempool::change_mark`]).
    pub mempool: (u64, usize),
}

impl TemplateMark {
    /// The `longpollid` naming this mark: the tip's hash in display order, then the
    /// mempool's sequence and size in hex (`<64 hex>-<seq>-<len>`).
    pub fn longpoll_id(&self) -> String {
        format!("{}-{:x}-{:x}", self.tip, self.mempool.0, self.mempool.1)
    }
}

/// A block template for a miner outside the node (`getblocktemplate`): the transactions
/// chosen from the mempool with their fees and in-template dependencies. Its coinbase lock
/// is empty: the caller builds its own coinbase worth `template.coinbase_value`.
#[derive(Clone, Debug)]
pub struct TemplateView {
    /// The template (the same selection the node's own miner uses).
    pub template: BlockTemplate,
    /// The fee of each of `template.txs`, in order.
    pub fees: Vec<Amount>,
    /// The signature operations of each of `template.txs`.
    pub sigops: Vec<usize>,
    /// For each of `template.txs`, the 1-based positions (in `template.txs`) of the
    /// transactions it spends from (BIP 22 `depends`).
    pub depends: Vec<Vec<usize>>,
    /// The earliest header time allowed: median time past + 1.
    pub min_time: u32,
    /// What the template was built from.
    pub mark: TemplateMark,
}

/// What `startdoublespend` asks for (see [`NodeHandle::start_double_spend`]).
pub(crate) struct DoubleSpendStart {
    /// The payment to reverse (in the mempool).
    pub payment: Hash256,
    /// The spend of one of its inputs for the private branch.
    pub conflict: Transaction,
    /// Public blocks the merchant waits for.
    pub confirmations: u32,
    /// Blocks behind at which to give up.
    pub max_deficit: u32,
}

/// A request to the core. `Verified` carries results from the verifier pool (internal: no
/// API user sends it).
pub(crate) enum Request {
    ChainInfo(Reply<ChainInfo>),
    BlockHash { height: i64, reply: Reply<Result<Hash256, NodeError>> },
    Header { hash: Hash256, reply: Reply<Result<HeaderView, NodeError>> },
    Block { hash: Hash256, reply: Reply<Result<BlockView, NodeError>> },
    Transaction { txid: Hash256, reply: Reply<Result<TxView, NodeError>> },
    SendTransaction { tx: Transaction, reply: Reply<Result<Hash256, NodeError>> },
    SubmitBlock { block: Block, reply: Reply<SubmitOutcome> },
    MempoolInfo(Reply<MempoolInfo>),
    MempoolEntries { reply: Reply<Vec<(Hash256, EntryInfo)>> },
    MempoolTxids(Reply<Vec<Hash256>>),
    MiningInfo(Reply<MiningInfo>),
    StrategyInfo(Reply<StrategyInfo>),
    StartDoubleSpend { start: DoubleSpendStart, reply: Reply<Result<AttackView, NodeError>> },
    Generate { n: u32, lock: Script, reply: Reply<Result<Vec<Hash256>, NodeError>> },
    TxOut { outpoint: OutPoint, include_mempool: bool, reply: Reply<Result<Option<TxOutView>, NodeError>> },
    UtxoSetInfo(Reply<Result<UtxoSetInfo, NodeError>>),
    ChainTips(Reply<Vec<ChainTipView>>),
    Invalidate { hash: Hash256, reply: Reply<Result<(), NodeError>> },
    Reconsider { hash: Hash256, reply: Reply<Result<(), NodeError>> },
    TxProof { txid: Hash256, block: Option<Hash256>, reply: Reply<Result<TxProof, NodeError>> },
    IsActive { hash: Hash256, reply: Reply<bool> },
    AddressCoins { locks: Vec<Script>, limit: usize, reply: Reply<Result<Vec<AddressCoin>, NodeError>> },
    AddressHistory { locks: Vec<Script>, limit: usize, reply: Reply<Result<Vec<(u32, Hash256)>, NodeError>> },
    SpentOutputs { outpoints: Vec<OutPoint>, reply: Reply<Result<Vec<TxOut>, NodeError>> },
    BlockTemplate(Reply<TemplateView>),
    Verified(Vec<super::verify::Checked>),
}

/// A cloneable handle to the core: the node's API.
#[derive(Clone)]
pub struct NodeHandle {
    pub(crate) inbox: Arc<Inbox<Request>>,
    pub(crate) network: Network,
    pub(crate) api_limit: usize,
    pub(crate) changes: watch::Receiver<TemplateMark>,
}

impl NodeHandle {
    /// The network the node runs.
    pub fn network(&self) -> Network {
        self.network
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.inbox.push_api(make(tx)).map_err(|(why, _)| match why {
            Refused::Full => NodeError::Busy(self.api_limit),
            Refused::Closed => NodeError::Stopped,
        })?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// Tip, best header, sync state.
    pub async fn chain_info(&self) -> Result<ChainInfo, NodeError> {
        self.ask(Request::ChainInfo).await
    }

    /// The active chain's block at `height`.
    pub async fn block_hash(&self, height: i64) -> Result<Hash256, NodeError> {
        self.ask(|reply| Request::BlockHash { height, reply }).await?
    }

    /// A header and its place in the index.
    pub async fn header(&self, hash: Hash256) -> Result<HeaderView, NodeError> {
        self.ask(|reply| Request::Header { hash, reply }).await?
    }

    /// A stored block.
    pub async fn block(&self, hash: Hash256) -> Result<BlockView, NodeError> {
        self.ask(|reply| Request::Block { hash, reply }).await?
    }

    /// A transaction from the mempool or the active chain.
    pub async fn transaction(&self, txid: Hash256) -> Result<TxView, NodeError> {
        self.ask(|reply| Request::Transaction { txid, reply }).await?
    }

    /// Admits a local transaction to the mempool and relays it; returns its txid.
    pub async fn send_transaction(&self, tx: Transaction) -> Result<Hash256, NodeError> {
        self.ask(|reply| Request::SendTransaction { tx, reply }).await?
    }

    /// Hands a block to the chain; relays it if valid.
    pub async fn submit_block(&self, block: Block) -> Result<SubmitOutcome, NodeError> {
        self.ask(|reply| Request::SubmitBlock { block, reply }).await
    }

    /// Mempool totals and fee floors.
    pub async fn mempool_info(&self) -> Result<MempoolInfo, NodeError> {
        self.ask(Request::MempoolInfo).await
    }

    /// Every mempool transaction's id.
    pub async fn mempool_txids(&self) -> Result<Vec<Hash256>, NodeError> {
        self.ask(Request::MempoolTxids).await
    }

    /// Every mempool entry.
    pub async fn mempool_entries(&self) -> Result<Vec<(Hash256, EntryInfo)>, NodeError> {
        self.ask(|reply| Request::MempoolEntries { reply }).await
    }

    /// Miner and difficulty facts.
    pub async fn mining_info(&self) -> Result<MiningInfo, NodeError> {
        self.ask(Request::MiningInfo).await
    }

    /// How the continuous miner behaves (strategy, withheld blocks, a double spend).
    pub async fn strategy_info(&self) -> Result<StrategyInfo, NodeError> {
        self.ask(Request::StrategyInfo).await
    }

    /// Starts a double-spend attempt against `payment` (in the mempool) with `conflict`.
    pub async fn start_double_spend(
        &self,
        payment: Hash256,
        conflict: Transaction,
        confirmations: u32,
        max_deficit: u32,
    ) -> Result<AttackView, NodeError> {
        let start = DoubleSpendStart { payment, conflict, confirmations, max_deficit };
        self.ask(|reply| Request::StartDoubleSpend { start, reply }).await?
    }

    /// Mines `n` blocks paying `lock`. The core mines them one at a time between other
    /// work, so peers and other callers are served meanwhile.
    pub async fn generate(&self, n: u32, lock: Script) -> Result<Vec<Hash256>, NodeError> {
        self.ask(|reply| Request::Generate { n, lock, reply }).await?
    }

    /// An unspent output (None if spent or unknown; a mempool spend counts as spent when
    /// `include_mempool`).
    pub async fn tx_out(
        &self,
        outpoint: OutPoint,
        include_mempool: bool,
    ) -> Result<Option<TxOutView>, NodeError> {
        self.ask(|reply| Request::TxOut { outpoint, include_mempool, reply }).await?
    }

    /// The UTXO set's digest.
    pub async fn utxo_set_info(&self) -> Result<UtxoSetInfo, NodeError> {
        self.ask(Request::UtxoSetInfo).await?
    }

    /// Every chain tip.
    pub async fn chain_tips(&self) -> Result<Vec<ChainTipView>, NodeError> {
        self.ask(Request::ChainTips).await
    }

    /// Marks a block invalid (it and its descendants leave the active chain).
    pub async fn invalidate_block(&self, hash: Hash256) -> Result<(), NodeError> {
        self.ask(|reply| Request::Invalidate { hash, reply }).await?
    }

    /// Undoes [`NodeHandle::invalidate_block`].
    pub async fn reconsider_block(&self, hash: Hash256) -> Result<(), NodeError> {
        self.ask(|reply| Request::Reconsider { hash, reply }).await?
    }

    /// A Merkle proof that `txid` is in `block` (or the block the tx index names).
    pub async fn tx_proof(&self, txid: Hash256, block: Option<Hash256>) -> Result<TxProof, NodeError> {
        self.ask(|reply| Request::TxProof { txid, block, reply }).await?
    }

    /// True if the block is in the active chain.
    pub async fn is_active(&self, hash: Hash256) -> Result<bool, NodeError> {
        self.ask(|reply| Request::IsActive { hash, reply }).await
    }

    /// Unspent outputs paying any of `locks`, at most `limit` (more is an error, never a
    /// silent truncation).
    pub async fn address_coins(
        &self,
        locks: Vec<Script>,
        limit: usize,
    ) -> Result<Vec<AddressCoin>, NodeError> {
        self.ask(|reply| Request::AddressCoins { locks, limit, reply }).await?
    }

    /// (height, txid) of every confirmed transaction touching any of `locks`, at most `limit`.
    pub async fn address_history(
        &self,
        locks: Vec<Script>,
        limit: usize,
    ) -> Result<Vec<(u32, Hash256)>, NodeError> {
        self.ask(|reply| Request::AddressHistory { locks, limit, reply }).await?
    }

    /// A block template on the current tip with transactions from the mempool.
    pub async fn block_template(&self) -> Result<TemplateView, NodeError> {
        self.ask(Request::BlockTemplate).await
    }

    /// The tip and mempool as they stand, updated by the core whenever either changes:
    /// `changed()` / `wait_for()` on the receiver wakes a waiter (a long poll) at once.
    pub fn template_changes(&self) -> watch::Receiver<TemplateMark> {
        self.changes.clone()
    }

    /// The outputs `outpoints` spend, from the UTXO set or the mempool, in order.
    pub async fn spent_outputs(&self, outpoints: Vec<OutPoint>) -> Result<Vec<TxOut>, NodeError> {
        self.ask(|reply| Request::SpentOutputs { outpoints, reply }).await?
    }
}
