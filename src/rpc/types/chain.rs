//! Results about the chain: blocks, headers, transactions, outputs, tips, address indexes.

use crate::primitives::Hash256;
use serde::{Deserialize, Serialize};

/// `getblockchaininfo`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockchainInfo {
    /// Network name (`regtest`, `dev`, ...).
    pub chain: String,
    /// Height of the active tip.
    pub blocks: u32,
    /// Height of the best header (the same as `blocks`: headers are not kept ahead).
    pub headers: u32,
    /// Id of the active tip.
    pub bestblockhash: Hash256,
    /// Id of the best header known (the tip when no header has more work).
    pub bestheaderhash: Hash256,
    /// The tip's difficulty (the easiest target over the tip's target).
    pub difficulty: f64,
    /// The tip's time.
    pub time: u32,
    /// Median time of the last 11 blocks.
    pub mediantime: Option<u32>,
    /// Always 1.0.
    pub verificationprogress: f64,
    /// Always false.
    pub initialblockdownload: bool,
    /// Cumulative work of the active chain.
    pub chainwork: String,
    /// Always false.
    pub pruned: bool,
    /// Always empty.
    pub warnings: String,
}

/// `getblockheader` (verbose), and the first fields of `getblock`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockHeaderInfo {
    /// Block id.
    pub hash: Hash256,
    /// Confirmations on the active chain; -1 for a block off it.
    pub confirmations: i64,
    /// Height (`null` for a header the index does not hold).
    pub height: Option<u32>,
    /// Header version.
    pub version: u32,
    /// The version as 8 hex digits.
    #[serde(rename = "versionHex")]
    pub version_hex: String,
    /// Merkle root of the txids.
    pub merkleroot: Hash256,
    /// Block time.
    pub time: u32,
    /// Median time of the 11 blocks ending here.
    pub mediantime: Option<u32>,
    /// Nonce.
    pub nonce: u32,
    /// Compact target as 8 hex digits.
    pub bits: String,
    /// Difficulty.
    pub difficulty: f64,
    /// Cumulative work up to this block.
    pub chainwork: Option<String>,
    /// Parent id (absent for genesis and unindexed headers).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub previousblockhash: Option<Hash256>,
    /// Child on the active chain (absent at the tip and off the active chain).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub nextblockhash: Option<Hash256>,
}

/// `getblock` at verbosity 1 (`T` = txid) or 2 (`T` = [`TxInfo`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockInfo<T> {
    /// The header fields.
    #[serde(flatten)]
    pub header: BlockHeaderInfo,
    /// Encoded size, bytes.
    pub size: u64,
    /// Number of transactions.
    #[serde(rename = "nTx")]
    pub n_tx: u64,
    /// The transactions.
    pub tx: Vec<T>,
}

/// `getblock`: the shape depends on `verbosity`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GetBlock {
    /// Verbosity 0: the block's bytes as hex.
    Hex(String),
    /// Verbosity 1: header fields and txids.
    Txids(Box<BlockInfo<Hash256>>),
    /// Verbosity 2: header fields and full transactions.
    Full(Box<BlockInfo<TxInfo>>),
}

/// `getblockheader`: the shape depends on `verbose`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GetBlockHeader {
    /// `verbose = false`: the 80-byte header as hex.
    Hex(String),
    /// `verbose = true` (the default).
    Info(Box<BlockHeaderInfo>),
}

/// `getrawtransaction`: the shape depends on `verbose`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GetRawTransaction {
    /// Not verbose: the transaction's bytes as hex.
    Hex(String),
    /// Verbose.
    Info(Box<TxInfo>),
}

/// A transaction as JSON (`getrawtransaction` verbose, `getblock` verbosity 2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TxInfo {
    /// Transaction id.
    pub txid: Hash256,
    /// The same as `txid` (no witness data).
    pub hash: Hash256,
    /// Version.
    pub version: u32,
    /// Encoded size, bytes.
    pub size: u64,
    /// Lock time.
    pub locktime: u32,
    /// Inputs.
    pub vin: Vec<TxInput>,
    /// Outputs.
    pub vout: Vec<TxOutput>,
    /// The transaction's bytes as hex.
    pub hex: String,
    /// Block holding it (`getrawtransaction` of a confirmed transaction only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub blockhash: Option<Hash256>,
    /// Confirmations (confirmed transactions only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub confirmations: Option<u32>,
    /// Block time (confirmed transactions only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub time: Option<u32>,
    /// Block time again, as Core prints it (confirmed transactions only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub blocktime: Option<u32>,
}

/// One input of a [`TxInfo`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TxInput {
    /// The coinbase input: its unlock script as hex.
    Coinbase {
        /// Unlock script bytes (the height and extra nonce) as hex.
        coinbase: String,
    },
    /// A spend of an earlier output.
    Spend {
        /// Txid of the spent output.
        txid: Hash256,
        /// Index of the spent output.
        vout: u32,
        /// The unlock script.
        #[serde(rename = "scriptSig")]
        script_sig: ScriptSig,
    },
}

/// An unlock script.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScriptSig {
    /// Its bytes as hex.
    pub hex: String,
}

/// One output of a [`TxInfo`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TxOutput {
    /// Value in coins.
    pub value: f64,
    /// Index in the transaction.
    pub n: u32,
    /// The locking script.
    #[serde(rename = "scriptPubKey")]
    pub script_pubkey: ScriptPubKey,
}

/// A locking script.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScriptPubKey {
    /// Its bytes as hex.
    pub hex: String,
    /// Template: `pubkeyhash`, `scripthash`, `multisig`, `nulldata` or `nonstandard`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The address it pays (P2PKH and P2SH only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub address: Option<String>,
}

/// `gettxout` of an unspent output (the method answers `null` for a spent or unknown one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TxOutInfo {
    /// The active tip.
    pub bestblock: Hash256,
    /// Confirmations (0 for a mempool output).
    pub confirmations: u32,
    /// Value in coins.
    pub value: f64,
    /// The locking script.
    #[serde(rename = "scriptPubKey")]
    pub script_pubkey: ScriptPubKey,
    /// True for a coinbase output.
    pub coinbase: bool,
}

/// `gettxoutsetinfo`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TxOutSetInfo {
    /// Height of the tip.
    pub height: u32,
    /// The tip.
    pub bestblock: Hash256,
    /// Unspent outputs.
    pub txouts: u64,
    /// Their total value in coins.
    pub total_amount: f64,
    /// Digest of the whole set (equal on nodes with the same UTXO set).
    pub hash_serialized_3: Hash256,
}

/// Status of a [`ChainTip`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TipStatus {
    /// The active tip.
    Active,
    /// A branch containing an invalid block.
    Invalid,
    /// A valid branch with less work.
    ValidFork,
}

/// One entry of `getchaintips` (highest first).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChainTip {
    /// Height of the tip.
    pub height: u32,
    /// Its id.
    pub hash: Hash256,
    /// Blocks from the tip down to the active chain (0 for the active tip).
    pub branchlen: u32,
    /// Status.
    pub status: TipStatus,
}

/// One entry of `getaddressutxos`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AddressUtxo {
    /// The address as asked.
    pub address: String,
    /// Txid of the output.
    pub txid: Hash256,
    /// Index of the output.
    #[serde(rename = "outputIndex")]
    pub output_index: u32,
    /// Locking script as hex.
    pub script: String,
    /// Value in base units.
    pub satoshis: u64,
    /// Height of the block that created it.
    pub height: u32,
    /// True for a coinbase output.
    pub coinbase: bool,
    /// The mempool transaction spending it, if any.
    pub spent_in_mempool: Option<Hash256>,
}

/// One input of `createrawtransaction`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CreateInput {
    /// Txid of the output to spend (a string: the server answers a malformed one with
    /// Core's -8, not a parameter-type error).
    pub txid: String,
    /// Its index.
    pub vout: u32,
}

/// `signrawtransactionwithkey`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignResult {
    /// The transaction with every input we could sign signed, as hex.
    pub hex: String,
    /// True when every input is signed.
    pub complete: bool,
    /// Inputs left unsigned (absent when complete).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub errors: Option<Vec<SignError>>,
}

/// An input `signrawtransactionwithkey` could not sign.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignError {
    /// Index of the spent output.
    pub vout: u32,
    /// Txid of the spent output.
    pub txid: Hash256,
    /// Why.
    pub error: String,
}

/// `getmininginfo`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MiningInfo {
    /// Height of the tip.
    pub blocks: u32,
    /// The tip's difficulty.
    pub difficulty: f64,
    /// Estimated network hash rate over the last 120 blocks.
    pub networkhashps: f64,
    /// Transactions in the mempool.
    pub pooledtx: u64,
    /// Network name.
    pub chain: String,
    /// True when this node's miner runs.
    pub mining: bool,
    /// This node's hash rate, hashes per second.
    pub hashespersec: f64,
    /// Mining threads.
    pub threads: u64,
    /// Hash rate of each thread.
    pub hashespersec_per_thread: Vec<f64>,
    /// The hashing kernel in use (`null` when not mining).
    pub kernel: Option<String>,
}
