//! Results about the mempool.

use super::OrderedMap;
use crate::primitives::Hash256;
use serde::{Deserialize, Serialize};

/// `getmempoolinfo`. Fee rates are in coins per 1000 bytes, like Core.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MempoolInfo {
    /// Always true.
    pub loaded: bool,
    /// Transactions.
    pub size: u64,
    /// Their encoded size, bytes.
    pub bytes: u64,
    /// Memory in use, bytes.
    pub usage: u64,
    /// Fees of all of them, coins.
    pub total_fee: f64,
    /// Size limit, bytes.
    pub maxmempool: u64,
    /// Lowest fee rate accepted now.
    pub mempoolminfee: f64,
    /// Lowest fee rate relayed.
    pub minrelaytxfee: f64,
    /// Step a replacement must add.
    pub incrementalrelayfee: f64,
    /// Orphan transactions held.
    pub orphans: u64,
    /// Always true (any transaction may be replaced).
    pub fullrbf: bool,
}

/// Fees of a [`MempoolEntry`], coins (Core v23+ shape).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MempoolFees {
    /// The transaction's own fee.
    pub base: f64,
    /// The same (no prioritisation).
    pub modified: f64,
    /// With its in-mempool ancestors.
    pub ancestor: f64,
    /// With its in-mempool descendants.
    pub descendant: f64,
}

/// One transaction of `getrawmempool true`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MempoolEntry {
    /// Size, bytes.
    pub vsize: u64,
    /// 4 x size (no segwit).
    pub weight: u64,
    /// Unix time it entered.
    pub time: u64,
    /// Tip height when it entered.
    pub height: u32,
    /// Fees.
    pub fees: MempoolFees,
    /// The txid (no witness data).
    pub wtxid: Hash256,
    /// Always true.
    #[serde(rename = "bip125-replaceable")]
    pub bip125_replaceable: bool,
    /// In-mempool ancestors, itself included.
    pub ancestorcount: u64,
    /// Their size.
    pub ancestorsize: u64,
    /// In-mempool descendants, itself included.
    pub descendantcount: u64,
    /// Their size.
    pub descendantsize: u64,
    /// Parents in the mempool.
    pub depends: Vec<Hash256>,
    /// Children in the mempool.
    pub spentby: Vec<Hash256>,
}

/// `getrawmempool`: the shape depends on `verbose`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GetRawMempool {
    /// Not verbose (the default): the txids.
    Txids(Vec<Hash256>),
    /// Verbose: an object from txid to entry.
    Verbose(OrderedMap<MempoolEntry>),
}

/// Most transactions one `sendrawtransactions` call takes.
pub const MAX_SEND_BATCH: usize = 1000;

/// One transaction's outcome in `sendrawtransactions`: its txid, or the error
/// `sendrawtransaction` would have answered for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SendOutcome {
    /// The txid, when accepted (or already in the mempool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txid: Option<Hash256>,
    /// Why not, when refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<SendError>,
}

/// A refused transaction's error: the JSON-RPC error object of `sendrawtransaction`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SendError {
    /// JSON-RPC error code (-22, -25, -26, -27, -28 as for `sendrawtransaction`).
    pub code: i32,
    /// The message, naming the rule and the values.
    pub message: String,
}
