//! JSON-RPC 2.0 over HTTP (jsonrpsee): loopback by default, cookie authentication like
//! bitcoind, Bitcoin Core method names and result fields. [`api`] defines every method once
//! (parameters and [`types`] of the results); [`client`] is the one client everything that
//! talks to a node uses.

pub mod api;
pub mod client;
pub mod cookie;
pub mod json;
pub mod methods;
pub mod server;
pub mod service;
pub mod types;

use jsonrpsee::types::ErrorObjectOwned;

/// Core's error codes, so scripts written for bitcoind read ours the same way.
pub mod codes {
    /// Generic failure.
    pub const MISC: i32 = -1;
    /// A parameter has the wrong type.
    pub const TYPE_ERROR: i32 = -3;
    /// Unknown block, transaction or address.
    pub const INVALID_ADDRESS_OR_KEY: i32 = -5;
    /// A parameter is out of range or malformed.
    pub const INVALID_PARAMETER: i32 = -8;
    /// Bytes that do not decode.
    pub const DESERIALIZATION_ERROR: i32 = -22;
    /// The transaction or block breaks a rule.
    pub const VERIFY_ERROR: i32 = -25;
    /// Rejected by mempool policy.
    pub const VERIFY_REJECTED: i32 = -26;
    /// Already in the chain.
    pub const VERIFY_ALREADY_IN_CHAIN: i32 = -27;
    /// The node is busy or stopping.
    pub const IN_WARMUP: i32 = -28;
    /// The node is still downloading blocks (`getblocktemplate`).
    pub const IN_INITIAL_DOWNLOAD: i32 = -10;
    /// Networking is disabled or the network service is not running.
    pub const CLIENT_P2P_DISABLED: i32 = -9;
    /// `addnode add` of a node already added.
    pub const CLIENT_NODE_ALREADY_ADDED: i32 = -23;
    /// `addnode remove` of a node never added.
    pub const CLIENT_NODE_NOT_ADDED: i32 = -24;
    /// `setban remove` of a peer that is not banned.
    pub const CLIENT_INVALID_IP_OR_SUBNET: i32 = -30;
    /// `disconnectnode` of a node not connected.
    pub const CLIENT_NODE_NOT_CONNECTED: i32 = -29;
}

/// A JSON-RPC error object.
pub fn err(code: i32, message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, message.into(), None::<()>)
}

impl From<crate::node::NodeError> for ErrorObjectOwned {
    /// Core's codes: -28 busy or stopping, -5 unknown block or transaction, -8 bad range,
    /// -25 a broken rule or missing input, -26 a mempool refusal, -27 already confirmed.
    fn from(e: crate::node::NodeError) -> Self {
        use crate::chain::ChainError;
        use crate::mempool::MempoolError;
        use crate::node::NodeError as N;
        let code = match &e {
            N::Busy(_) | N::VerifyBusy { .. } | N::Stopped => codes::IN_WARMUP,
            N::BlockNotFound(_) | N::TxNotFound(_) | N::TxNotConfirmed(_) | N::TxNotInBlock { .. } => {
                codes::INVALID_ADDRESS_OR_KEY
            }
            N::HeightOutOfRange { .. } | N::TooMany { .. } => codes::INVALID_PARAMETER,
            // Core answers -5 for a transaction while -txindex is still syncing or is off.
            N::IndexSyncing { .. } | N::IndexDisabled { .. } => codes::INVALID_ADDRESS_OR_KEY,
            N::AlreadyInChain(_) => codes::VERIFY_ALREADY_IN_CHAIN,
            N::MissingInput(_) => codes::VERIFY_ERROR,
            N::Chain(ChainError::UnknownBlock { .. }) => codes::INVALID_ADDRESS_OR_KEY,
            N::Chain(ChainError::Invalid { .. } | ChainError::KnownInvalid { .. }) => codes::VERIFY_ERROR,
            N::Mempool(MempoolError::MissingInputs { .. }) => codes::VERIFY_ERROR,
            N::Mempool(_) => codes::VERIFY_REJECTED,
            N::Chain(_) | N::Store(_) | N::Miner(_) => codes::MISC,
        };
        err(code, e.to_string())
    }
}
