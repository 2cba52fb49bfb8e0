//! The one definition of quarry's JSON-RPC interface. jsonrpsee's `#[rpc]` macro turns the
//! [`QuarryApi`] trait into both ends:
//!
//! - `QuarryApiServer`, which the node implements (`into_rpc()` gives the module to start);
//!   it decodes positional (`[..]`) and named (`{..}`) parameters alike, the names being the
//!   argument names below (Bitcoin Core's);
//! - `QuarryApiClient`, implemented for every jsonrpsee client, which
//!   [`super::client::RpcClient`] is: `client.getblockcount().await`.
//!
//! Parameter types are the wire forms. Where Core answers a malformed value with its own
//! error code (a hash that is not 64 hex digits: -8; an unknown `addnode` command: -8), the
//! parameter is a string the method validates, since a stricter type would turn the error
//! into jsonrpsee's generic -32602. Results are the serde types of [`super::types`], whose
//! JSON is exactly what the server has always answered. Methods whose result shape depends
//! on a verbosity argument return an untagged enum; [`super::client::RpcClient`] has one
//! helper per shape (`block_txids`, `raw_transaction_info`, ...).

use super::types::*;
use crate::primitives::Hash256;
use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;

/// Every method the node serves, with Bitcoin Core's names and parameters.
#[rpc(server, client)]
pub trait QuarryApi {
    /// Height of the active tip.
    #[method(name = "getblockcount")]
    async fn getblockcount(&self) -> RpcResult<u32>;

    /// Id of the active tip.
    #[method(name = "getbestblockhash")]
    async fn getbestblockhash(&self) -> RpcResult<Hash256>;

    /// State of the chain.
    #[method(name = "getblockchaininfo")]
    async fn getblockchaininfo(&self) -> RpcResult<BlockchainInfo>;

    /// Id of the active block at `height` (-8 when out of range).
    #[method(name = "getblockhash")]
    async fn getblockhash(&self, height: i64) -> RpcResult<Hash256>;

    /// A block: hex (verbosity 0), with txids (1, the default) or full transactions (2);
    /// `verbosity` may also be a boolean.
    #[method(name = "getblock")]
    async fn getblock(&self, blockhash: String, verbosity: Option<Verbosity>) -> RpcResult<GetBlock>;

    /// A header: JSON (`verbose`, the default) or the 80 bytes as hex.
    #[method(name = "getblockheader")]
    async fn getblockheader(&self, blockhash: String, verbose: Option<bool>) -> RpcResult<GetBlockHeader>;

    /// A transaction from the mempool or (through the tx index) the chain: hex, or JSON when
    /// `verbose` is true or a positive number.
    #[method(name = "getrawtransaction")]
    async fn getrawtransaction(
        &self,
        txid: String,
        verbose: Option<Verbosity>,
    ) -> RpcResult<GetRawTransaction>;

    /// Submits a transaction to the mempool and relays it; returns its txid.
    #[method(name = "sendrawtransaction")]
    async fn sendrawtransaction(&self, hexstring: String) -> RpcResult<Hash256>;

    /// Submits up to 1,000 transactions at once (quarry's own): their admissions run
    /// together, so their signature checks are batched. One outcome per transaction, in
    /// order: `{"txid"}` or `{"error": {code, message}}` as `sendrawtransaction` would answer.
    #[method(name = "sendrawtransactions")]
    async fn sendrawtransactions(&self, hexstrings: Vec<String>) -> RpcResult<Vec<SendOutcome>>;

    /// Submits a block: `null` when accepted, else the reason (BIP 22: `duplicate`,
    /// `inconclusive: ...`, `invalid: ...`, a rule's message).
    #[method(name = "submitblock")]
    async fn submitblock(&self, hexdata: String) -> RpcResult<Option<String>>;

    /// State of the mempool.
    #[method(name = "getmempoolinfo")]
    async fn getmempoolinfo(&self) -> RpcResult<MempoolInfo>;

    /// Mempool txids, or (`verbose`) an object from txid to entry.
    #[method(name = "getrawmempool")]
    async fn getrawmempool(&self, verbose: Option<bool>) -> RpcResult<GetRawMempool>;

    /// Mining state and this node's hash rate.
    #[method(name = "getmininginfo")]
    async fn getmininginfo(&self) -> RpcResult<MiningInfo>;

    /// How this node's continuous miner publishes: its strategy, withheld blocks, lead and
    /// the double-spend attempt racing (or the last one).
    #[method(name = "getstrategyinfo")]
    async fn getstrategyinfo(&self) -> RpcResult<StrategyInfo>;

    /// Starts a double-spend attempt: `txid` (a payment in this node's mempool) is to be
    /// reversed by `hexstring`, a transaction spending one of its inputs, mined on a private
    /// branch from the tip; published once strictly longer after `confirmations` public
    /// blocks, abandoned at `maxdeficit` blocks behind. Needs the continuous miner (honest).
    #[method(name = "startdoublespend")]
    async fn startdoublespend(
        &self,
        txid: String,
        hexstring: String,
        confirmations: u32,
        maxdeficit: u32,
    ) -> RpcResult<AttackInfo>;

    /// A block template for an outside miner (BIP 22/23). With `template_request.longpollid`
    /// the call waits until the tip or the mempool changes from that template (at most
    /// [`super::service::LONGPOLL_WAIT`]) and then answers with a fresh one.
    #[method(name = "getblocktemplate")]
    async fn getblocktemplate(
        &self,
        template_request: Option<TemplateRequest>,
    ) -> RpcResult<BlockTemplateInfo>;

    /// Mines `nblocks` (1..=10000) blocks paying `address`; returns their ids.
    #[method(name = "generatetoaddress")]
    async fn generatetoaddress(&self, nblocks: i64, address: String) -> RpcResult<Vec<Hash256>>;

    /// An unspent output (`null` if spent or unknown); `include_mempool` (default true)
    /// counts mempool spends and outputs.
    #[method(name = "gettxout")]
    async fn gettxout(
        &self,
        txid: String,
        n: u32,
        include_mempool: Option<bool>,
    ) -> RpcResult<Option<TxOutInfo>>;

    /// Statistics and a digest of the UTXO set.
    #[method(name = "gettxoutsetinfo")]
    async fn gettxoutsetinfo(&self) -> RpcResult<TxOutSetInfo>;

    /// Every known branch tip, highest first.
    #[method(name = "getchaintips")]
    async fn getchaintips(&self) -> RpcResult<Vec<ChainTip>>;

    /// Marks a block and its descendants invalid and reorganises away from them.
    #[method(name = "invalidateblock")]
    async fn invalidateblock(&self, blockhash: String) -> RpcResult<()>;

    /// Undoes `invalidateblock` for a block and its ancestors and descendants.
    #[method(name = "reconsiderblock")]
    async fn reconsiderblock(&self, blockhash: String) -> RpcResult<()>;

    /// A Merkle proof (hex, docs/PROTOCOL.md "Transaction proofs") that the one txid in
    /// `txids` is in `blockhash` (default: the block the tx index names).
    #[method(name = "gettxoutproof")]
    async fn gettxoutproof(&self, txids: Vec<String>, blockhash: Option<String>) -> RpcResult<String>;

    /// The txid a proof commits to (`[]` if the proof does not verify); -5 when its block is
    /// not on the active chain.
    #[method(name = "verifytxoutproof")]
    async fn verifytxoutproof(&self, proof: String) -> RpcResult<Vec<Hash256>>;

    /// Unspent outputs paying the addresses (the address index).
    #[method(name = "getaddressutxos")]
    async fn getaddressutxos(&self, addresses: AddressQuery) -> RpcResult<Vec<AddressUtxo>>;

    /// Txids of the transactions touching the addresses, by height (the history index).
    #[method(name = "getaddresstxids")]
    async fn getaddresstxids(&self, addresses: AddressQuery) -> RpcResult<Vec<Hash256>>;

    /// An unsigned transaction as hex. `outputs` maps an address to an amount in coins
    /// (number or string), or `"data"` to hex for an OP_RETURN output.
    #[method(name = "createrawtransaction")]
    async fn createrawtransaction(
        &self,
        inputs: Vec<CreateInput>,
        outputs: serde_json::Map<String, serde_json::Value>,
        locktime: Option<u32>,
    ) -> RpcResult<String>;

    /// Signs the P2PKH inputs of `hexstring` whose keys are in `privkeys` (64 hex digits
    /// each, at most 1000).
    #[method(name = "signrawtransactionwithkey")]
    async fn signrawtransactionwithkey(
        &self,
        hexstring: String,
        privkeys: Vec<String>,
    ) -> RpcResult<SignResult>;

    /// Stops the node.
    #[method(name = "stop")]
    async fn stop(&self) -> RpcResult<String>;

    /// Connected peers.
    #[method(name = "getpeerinfo")]
    async fn getpeerinfo(&self) -> RpcResult<Vec<PeerInfo>>;

    /// Number of connected peers.
    #[method(name = "getconnectioncount")]
    async fn getconnectioncount(&self) -> RpcResult<u64>;

    /// Our peer id, listen addresses, topics and connection counts.
    #[method(name = "getnetworkinfo")]
    async fn getnetworkinfo(&self) -> RpcResult<NetworkInfo>;

    /// `command` is `add`, `remove` or `onetry`; `node` a multiaddr ending in `/p2p/<peer id>`.
    #[method(name = "addnode")]
    async fn addnode(&self, node: String, command: String) -> RpcResult<()>;

    /// Disconnects a peer by peer id or multiaddr.
    #[method(name = "disconnectnode")]
    async fn disconnectnode(&self, address: String) -> RpcResult<()>;

    /// Turns networking off or on; returns the new state.
    #[method(name = "setnetworkactive")]
    async fn setnetworkactive(&self, state: bool) -> RpcResult<bool>;

    /// Bans in force.
    #[method(name = "listbanned")]
    async fn listbanned(&self) -> RpcResult<Vec<BanInfo>>;

    /// `command` `add` bans the peer id `subnet` for `bantime` seconds (default: the node's ban time) and
    /// disconnects it; `remove` lifts the ban.
    #[method(name = "setban")]
    async fn setban(&self, subnet: String, command: String, bantime: Option<u64>) -> RpcResult<()>;

    /// Lifts every ban.
    #[method(name = "clearbanned")]
    async fn clearbanned(&self) -> RpcResult<()>;
}
