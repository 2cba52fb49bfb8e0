//! The mining pool: a Stratum V1 server over a node's `getblocktemplate`, share accounting
//! and payouts. It talks to the node only through the RPC client.
//!
//! - [`stratum`]: the line codec (bounded lines, requests, replies, errors with codes);
//! - [`share`]: difficulty ↔ target and the header a share stands for (pure);
//! - [`job`]: templates turned into Stratum jobs (the coinbase split, the Merkle branch);
//! - [`server`]: connections, vardiff, share checks, blocks submitted;
//! - [`accounting`]: the fsynced ledger and the payout methods;
//! - [`client`]: the miner's side of Stratum (`quarry miner --pool`).
//!
//! The wire rules are docs/PROTOCOL.md "Mining pool (Stratum V1)".

pub mod accounting;
pub mod client;
pub mod job;
pub mod server;
pub mod share;
pub mod stratum;

pub use accounting::{Ledger, LedgerError, Payout, WorkerStats};

use crate::primitives::Script;
use crate::rpc::client::{RpcConfig, RpcError};
use std::path::PathBuf;

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
}
