//! `getblocktemplate` (BIP 22 / BIP 23, the fields that apply to quarry).

use crate::primitives::Hash256;
use serde::{Deserialize, Serialize};

/// The `template_request` object of `getblocktemplate`. Every field is optional.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TemplateRequest {
    /// `"template"` (the default); proposals are not supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The `longpollid` of a template the caller has: the call waits until the tip or the
    /// mempool changes from it (at most the server's long-poll limit), then answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longpollid: Option<String>,
    /// The client's capabilities (accepted, not interpreted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
    /// Rules the client supports (accepted, not interpreted: quarry has no soft forks to
    /// signal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<String>>,
}

/// One transaction of a template.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TemplateTx {
    /// The transaction's canonical encoding, hex.
    pub data: String,
    /// Its txid.
    pub txid: Hash256,
    /// The same (quarry has no witness data, so hash = txid).
    pub hash: Hash256,
    /// 1-based positions in `transactions` of the transactions it spends from.
    pub depends: Vec<usize>,
    /// Its fee, base units.
    pub fee: u64,
    /// Its signature operations.
    pub sigops: u64,
}

/// `getblocktemplate`'s result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockTemplateInfo {
    /// Always empty (no deployments to signal).
    pub capabilities: Vec<String>,
    /// Header version.
    pub version: u32,
    /// Always empty.
    pub rules: Vec<String>,
    /// The parent block: the active tip.
    pub previousblockhash: Hash256,
    /// Transactions to include after the coinbase, in this order (parents first).
    pub transactions: Vec<TemplateTx>,
    /// What the coinbase may pay in total: subsidy plus the fees of `transactions`, base
    /// units.
    pub coinbasevalue: u64,
    /// Names this template's tip and mempool state, for a long poll.
    pub longpollid: String,
    /// The target the header must meet, 64 hex digits (big-endian).
    pub target: String,
    /// The earliest header time allowed (median time past + 1).
    pub mintime: u32,
    /// What the miner may change: `time`, `transactions`, `prevblock`.
    pub mutable: Vec<String>,
    /// The nonce range, hex.
    pub noncerange: String,
    /// Most signature operations in the block.
    pub sigoplimit: u64,
    /// Most bytes in the block.
    pub sizelimit: u64,
    /// The header time to use now.
    pub curtime: u32,
    /// Compact target, 8 hex digits.
    pub bits: String,
    /// Height of the block.
    pub height: u32,
    /// Bytes of the block the node kept free for the coinbase when choosing transactions:
    /// a coinbase larger than this may make the block too large.
    pub coinbase_reserved_size: u64,
}

/// `getstrategyinfo`: how this node's continuous miner publishes (quarry's own method).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StrategyInfo {
    /// `honest`, `selfish`, or `double-spend` while an attempt races.
    pub strategy: String,
    /// True when the continuous miner runs.
    pub mining: bool,
    /// `--mine-hashrate` in hashes per second (`null`: no limit).
    pub hashrate_limit: Option<f64>,
    /// The block the strategy mines on (`null` when honest).
    pub mine_on: Option<Hash256>,
    /// Blocks mined and not published.
    pub withheld: u64,
    /// Private branch length minus the public branch's since the fork point.
    pub lead: i64,
    /// Blocks mined while a strategy was active.
    pub mined: u64,
    /// Of those, published.
    pub published: u64,
    /// Blocks given up on an abandoned private branch.
    pub abandoned: u64,
    /// Most blocks withheld at once.
    pub longest_withheld: u64,
    /// The double-spend attempt racing, else the last one that ended (`null`: none).
    pub attack: Option<AttackInfo>,
}

/// A double-spend attempt (`startdoublespend`, `getstrategyinfo`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttackInfo {
    /// `racing`, `succeeded` (the private branch was published strictly longer after the
    /// merchant's confirmations) or `failed` (gave up at the deficit).
    pub outcome: String,
    /// The payment to the merchant.
    pub payment: Hash256,
    /// The conflicting spend mined on the private branch.
    pub conflict: Hash256,
    /// The last block both branches share.
    pub fork: Hash256,
    /// Its height.
    pub fork_height: u32,
    /// Private blocks after the fork point.
    pub private_blocks: u32,
    /// Public blocks after the fork point (the payment's block is the first).
    pub public_blocks: u32,
    /// Confirmations the merchant waits for.
    pub confirmations: u32,
    /// Blocks behind at which the attacker gives up.
    pub max_deficit: u32,
    /// Times the fork point moved because the network's next block lacked the payment.
    pub restarts: u32,
}
