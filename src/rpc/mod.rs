//! JSON-RPC 2.0 over HTTP (jsonrpsee): loopback by default, cookie authentication like
//! bitcoind, Bitcoin Core method names and result fields. [`api`] defines every method once
//! (parameters and [`types`] of the results); [`client`] is the one client everything that
//! talks to a node uses.

pub mod api;
pub mod client;
pub mod cookie;
pub mod json;
pub mod methods;
pub mod net_methods;
pub mod server;
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

impl From<crate::node::CoreError> for ErrorObjectOwned {
    fn from(e: crate::node::CoreError) -> Self {
        err(codes::IN_WARMUP, e.to_string())
    }
}
