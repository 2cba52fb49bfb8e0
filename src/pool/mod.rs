//! The mining pool: a Stratum V1 server over a node's `getblocktemplate`, share accounting
//! and payouts. It talks to the node only through the RPC client.
//!
//! - [`stratum`]: the line codec (bounded lines, requests, replies, errors with codes);
//! - [`share`]: difficulty ↔ target and the header a share stands for (pure);
//! - [`job`]: templates turned into Stratum jobs (the coinbase split, the Merkle branch);
//! - [`server`]: connections, vardiff, share checks, blocks submitted;
//! - [`accounting`]: the fsynced ledger (shares, blocks, payouts), locked to one pool;
//! - [`methods`]: the payout methods (pps, prop, pplns, score), pure;
//! - [`payout`]: payout transactions (addresses, coins, fee), pure; [`payer`]: the task that
//!   settles blocks and sends payouts through the node;
//! - [`experiment`]: the pool attacks (hopping, sabotage, lie-in-wait) run against a real
//!   pool and node with in-process Stratum miners (`quarry pool experiment`);
//! - [`client`]: the miner's side of Stratum (`quarry miner --pool`).
//!
//! The wire rules are docs/PROTOCOL.md "Mining pool (Stratum V1)".

pub mod accounting;
pub mod client;
pub mod experiment;

pub mod job;
pub mod methods;
pub mod payer;
pub mod payout;
pub mod server;
pub mod share;
pub mod stratum;

pub use accounting::{Ledger, LedgerError, Payout, WorkerStats};

use crate::consensus::Network;
use crate::primitives::Script;
use crate::rpc::client::{RpcConfig, RpcError};
use std::path::PathBuf;
use std::time::Duration;

/// What can stop the pool or a connection.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Talking to the node.
    #[error("node RPC: {0}")]
    Rpc(#[from] RpcError),
    /// The node's template does not make a job.
    #[error("unusable block template: {0}")]
    Template(String),
    /// The ledger.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// A file or directory.
    #[error("{}: {error}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A Stratum connection failed or misbehaved.
    #[error("stratum: {0}")]
    Stratum(String),
}

impl From<jsonrpsee::core::client::Error> for PoolError {
    fn from(e: jsonrpsee::core::client::Error) -> Self {
        PoolError::Rpc(e.into())
    }
}

/// Pool settings.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// The node.
    pub rpc: RpcConfig,
    /// Where the ledger lives.
    pub dir: PathBuf,
    /// How workers are paid.
    pub payout: Payout,
    /// What the pool's coinbases pay (the pool's key).
    pub lock: Script,
    /// Share difficulty a new connection starts at.
    pub start_difficulty: f64,
    /// Vardiff bounds.
    pub min_difficulty: f64,
    /// Vardiff bounds.
    pub max_difficulty: f64,
    /// Vardiff aims at this many shares per minute per connection.
    pub shares_per_minute: f64,
    /// The score method's time constant, seconds.
    pub score_c: f64,
    /// Payouts.
    pub payouts: PayoutConfig,
}

/// A payout counts as paid once this many blocks hold it (its own and 5 on top; `quarry pool
/// --payout-confirmations`): a reorg shallower than that sends it again instead of losing it.
pub const DEFAULT_PAYOUT_CONFIRMATIONS: u32 = 6;

/// How the pool pays (docs/PROTOCOL.md §12d "Payouts").
#[derive(Clone, Debug)]
pub struct PayoutConfig {
    /// The network (addresses, coinbase maturity).
    pub network: Network,
    /// The pool's key: its coinbases pay `lock`, its P2PKH; payouts are signed with it.
    pub key: ed25519_dalek::SigningKey,
    /// Workers owed less than this (base units) wait.
    pub min_payout: u64,
    /// Fee rate of payout transactions, sat per 1000 bytes (`None`: the node's minimum).
    pub fee_rate: Option<u64>,
    /// How often the payout task runs.
    pub every: Duration,
    /// Blocks (the payout's own included) on top of which a payout counts as paid; until then
    /// it stays in flight, so a reorg that takes it out of the chain sends it again.
    pub confirmations: u32,
    /// Off: no payout task (balances are still tracked).
    pub enabled: bool,
}
