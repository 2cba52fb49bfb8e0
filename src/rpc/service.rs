//! The server side of [`QuarryApi`]: each method validates its parameters here, on the
//! async side (hashes, hex, addresses, decoding blocks and transactions), asks the node core
//! through its typed API, and builds the typed result. Key derivation and signing run on the
//! blocking pool. Errors carry Core's codes (see `From<NodeError>` in `rpc/mod.rs`).

use super::api::QuarryApiServer;
use super::types::*;
use super::{codes, err, json};
use crate::node::{HeaderView, NodeHandle, SubmitOutcome};
use crate::p2p::{AddNodeMode, P2pError, P2pHandle};
use crate::primitives::{Address, Amount, Block, Hash256, OutPoint, Script, Transaction, TxIn, TxProof};
use crate::script::templates::address_lock;
use jsonrpsee::core::{async_trait, RpcResult};
use jsonrpsee::types::ErrorObjectOwned;
use std::sync::Arc;

/// Most unspent outputs (or transactions) one address-index call returns: an error beyond,
/// never a silent truncation.
pub const MAX_ADDRESS_RESULTS: usize = 50_000;
/// Most addresses one address-index call takes.
pub const MAX_ADDRESSES: usize = 100;
/// Most keys one `signrawtransactionwithkey` call takes.
pub const MAX_SIGNING_KEYS: usize = 1_000;
/// Most blocks one `generatetoaddress` mines.
pub const MAX_GENERATE: i64 = 10_000;
/// Longest a long-polling `getblocktemplate` waits for a change before answering with the
/// template as it stands (well below the client's default timeout of 120 s).
pub const LONGPOLL_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// What every method sees.
#[derive(Clone)]
pub struct RpcService {
    /// The node core's typed API.
    pub node: NodeHandle,
    /// The network service (None when the node runs without networking).
    pub net: Option<P2pHandle>,
    /// Notified by `stop`.
    pub stop: Arc<tokio::sync::Notify>,
}

fn attack_info(a: crate::node::AttackView) -> AttackInfo {
    AttackInfo {
        outcome: a.outcome.to_string(),
        payment: a.payment,
        conflict: a.conflict,
        fork: a.fork,
        fork_height: a.fork_height,
        private_blocks: a.private_len,
        public_blocks: a.public_len,
        confirmations: a.confirmations,
        max_deficit: a.max_deficit,
        restarts: a.restarts,
    }
}

fn hash_param(s: &str, what: &str) -> Result<Hash256, ErrorObjectOwned> {
    s.parse().map_err(|e| {
        err(codes::INVALID_PARAMETER, format!("{what} must be a 64-hex-digit hash, got {s:?}: {e}"))
    })
}

fn hex_param(s: &str, what: &str) -> Result<Vec<u8>, ErrorObjectOwned> {
    hex::decode(s.trim())
        .map_err(|e| err(codes::DESERIALIZATION_ERROR, format!("{what} is not valid hex: {e}")))
}

fn address_param(s: &str, hrp: &'static str) -> Result<Address, ErrorObjectOwned> {
    Address::decode(s, hrp)
        .map_err(|e| err(codes::INVALID_ADDRESS_OR_KEY, format!("invalid address {s:?}: {e}")))
}

/// The unsigned transaction `createrawtransaction` builds from its parameters (untrusted:
/// every txid, address, amount and data hex is checked here, with Core's error codes).
pub fn raw_transaction(
    inputs: &[CreateInput],
    outputs: &serde_json::Map<String, serde_json::Value>,
    locktime: Option<u32>,
    hrp: &'static str,
) -> Result<Transaction, ErrorObjectOwned> {
    let mut tx =
        Transaction { version: 1, inputs: Vec::new(), outputs: Vec::new(), lock_time: locktime.unwrap_or(0) };
    for i in inputs {
        let txid = hash_param(&i.txid, "inputs[].txid")?;
        tx.inputs.push(TxIn { prevout: OutPoint { txid, index: i.vout }, unlock: Script::default() });
    }
    for (addr, amount) in outputs {
        let (value, lock) = if addr == "data" {
            let data = hex_param(amount.as_str().unwrap_or(""), "data")?;
            (Amount::ZERO, crate::script::templates::op_return(&data))
        } else {
            let value = json::coins_from_json(amount)
                .map_err(|e| err(codes::TYPE_ERROR, format!("outputs[{addr:?}]: {e}")))?;
            (value, address_lock(&address_param(addr, hrp)?))
        };
        tx.outputs.push(crate::primitives::TxOut { value, lock });
    }
    Ok(tx)
}

/// Core's codes for network refusals: -23 already added, -24 not added, -29 not
/// connected, -30 not banned, -28 busy or stopped.
fn p2p_err(e: P2pError) -> ErrorObjectOwned {
    let code = match &e {
        P2pError::AlreadyAdded(_) => codes::CLIENT_NODE_ALREADY_ADDED,
        P2pError::NotAdded(_) => codes::CLIENT_NODE_NOT_ADDED,
        P2pError::NotConnected(_) => codes::CLIENT_NODE_NOT_CONNECTED,
        P2pError::NotBanned(_) => codes::CLIENT_INVALID_IP_OR_SUBNET,
        P2pError::Busy | P2pError::Stopped => codes::IN_WARMUP,
    };
    err(code, e.to_string())
}

impl RpcService {
    fn hrp(&self) -> &'static str {
        self.node.network().address_hrp()
    }

    fn pow_limit(&self) -> &'static crate::primitives::U256 {
        &self.node.network().params().pow_limit
    }

    fn address(&self, s: &str) -> Result<Address, ErrorObjectOwned> {
        address_param(s, self.hrp())
    }

    fn net(&self) -> Result<&P2pHandle, ErrorObjectOwned> {
        self.net.as_ref().ok_or_else(|| {
            err(codes::CLIENT_P2P_DISABLED, "Error: Peer-to-peer functionality missing or disabled")
        })
    }

    /// The query's addresses, deduplicated (first occurrence kept), at most 100, and their
    /// locking scripts.
    fn address_locks(&self, q: &AddressQuery) -> Result<(Vec<String>, Vec<Script>), ErrorObjectOwned> {
        let mut addrs: Vec<String> = q.addresses().to_vec();
        addrs.sort();
        addrs.dedup();
        if addrs.len() > MAX_ADDRESSES {
            return Err(err(
                codes::INVALID_PARAMETER,
                format!("at most {MAX_ADDRESSES} addresses per call, got {}", addrs.len()),
            ));
        }
        let locks = addrs
            .iter()
            .map(|a| self.address(a).map(|addr| address_lock(&addr)))
            .collect::<Result<_, _>>()?;
        Ok((addrs, locks))
    }

    fn header_info(&self, v: &HeaderView) -> BlockHeaderInfo {
        let h = &v.header;
        BlockHeaderInfo {
            hash: v.hash,
            confirmations: v.confirmations,
            height: v.height,
            version: h.version,
            version_hex: format!("{:08x}", h.version),
            merkleroot: h.merkle_root,
            time: h.time,
            mediantime: v.median_time,
            nonce: h.nonce,
            bits: format!("{:08x}", h.bits),
            difficulty: json::difficulty(self.pow_limit(), h.bits),
            chainwork: v.chain_work.map(|w| w.to_string()),
            previousblockhash: v.height.filter(|&hh| hh > 0).map(|_| h.prev),
            nextblockhash: v.next,
        }
    }

    fn tx_info(&self, tx: &Transaction) -> TxInfo {
        let txid = tx.txid();
        let hrp = self.hrp();
        let vin = tx
            .inputs
            .iter()
            .map(|i| {
                if tx.is_coinbase() {
                    TxInput::Coinbase { coinbase: hex::encode(&i.unlock.0) }
                } else {
                    TxInput::Spend {
                        txid: i.prevout.txid,
                        vout: i.prevout.index,
                        script_sig: ScriptSig { hex: hex::encode(&i.unlock.0) },
                    }
                }
            })
            .collect();
        let vout = tx
            .outputs
            .iter()
            .enumerate()
            .map(|(n, o)| TxOutput {
                value: json::coins_f64(o.value),
                n: n as u32,
                script_pubkey: script_pubkey(&o.lock, hrp),
            })
            .collect();
        TxInfo {
            txid,
            hash: txid,
            version: tx.version,
            size: tx.encoded_size() as u64,
            locktime: tx.lock_time,
            vin,
            vout,
            hex: hex::encode(tx.encode()),
            blockhash: None,
            confirmations: None,
            time: None,
            blocktime: None,
        }
    }
}

fn script_pubkey(lock: &Script, hrp: &'static str) -> ScriptPubKey {
    ScriptPubKey {
        hex: hex::encode(&lock.0),
        kind: json::script_type(&lock.0).to_string(),
        address: crate::script::templates::lock_address(&lock.0, hrp).map(|a| a.encode()),
    }
}

#[async_trait]
impl QuarryApiServer for RpcService {
    async fn getblockcount(&self) -> RpcResult<u32> {
        Ok(self.node.chain_info().await?.tip.height)
    }

    async fn getbestblockhash(&self) -> RpcResult<Hash256> {
        Ok(self.node.chain_info().await?.tip.hash)
    }

    async fn getblockchaininfo(&self) -> RpcResult<BlockchainInfo> {
        let i = self.node.chain_info().await?;
        Ok(BlockchainInfo {
            chain: self.node.network().name().to_string(),
            blocks: i.tip.height,
            headers: i.headers,
            bestblockhash: i.tip.hash,
            bestheaderhash: i.best_header,
            difficulty: json::difficulty(self.pow_limit(), i.tip_header.bits),
            time: i.tip_header.time,
            mediantime: i.median_time,
            verificationprogress: i.verification_progress,
            initialblockdownload: i.initial_block_download,
            chainwork: i.tip.chain_work.to_string(),
            pruned: false,
            warnings: String::new(),
        })
    }

    async fn getblockhash(&self, height: i64) -> RpcResult<Hash256> {
        Ok(self.node.block_hash(height).await?)
    }

    async fn getblock(&self, blockhash: String, verbosity: Option<Verbosity>) -> RpcResult<GetBlock> {
        let hash = hash_param(&blockhash, "blockhash")?;
        let level = match &verbosity {
            None => 1,
            Some(v) => match v.level() {
                Some(l) if l <= 2 => l,
                _ => return Err(err(codes::TYPE_ERROR, format!("verbosity must be 0, 1 or 2, got {v:?}"))),
            },
        };
        let view = self.node.block(hash).await?;
        let block = view.block.block();
        if level == 0 {
            return Ok(GetBlock::Hex(hex::encode(block.encode())));
        }
        let header = self.header_info(&view.header);
        let (size, n_tx) = (block.encoded_size() as u64, block.txs.len() as u64);
        Ok(if level >= 2 {
            let tx = block.txs.iter().map(|t| self.tx_info(t)).collect();
            GetBlock::Full(Box::new(BlockInfo { header, size, n_tx, tx }))
        } else {
            GetBlock::Txids(Box::new(BlockInfo { header, size, n_tx, tx: view.block.txids().to_vec() }))
        })
    }

    async fn getblockheader(&self, blockhash: String, verbose: Option<bool>) -> RpcResult<GetBlockHeader> {
        let hash = hash_param(&blockhash, "blockhash")?;
        let view = self.node.header(hash).await?;
        Ok(if verbose.unwrap_or(true) {
            GetBlockHeader::Info(Box::new(self.header_info(&view)))
        } else {
            GetBlockHeader::Hex(hex::encode(view.header.to_bytes()))
        })
    }

    async fn getrawtransaction(
        &self,
        txid: String,
        verbose: Option<Verbosity>,
    ) -> RpcResult<GetRawTransaction> {
        let txid = hash_param(&txid, "txid")?;
        let verbose = verbose.and_then(|v| v.level()).unwrap_or(0) > 0;
        let view = self.node.transaction(txid).await?;
        if !verbose {
            return Ok(GetRawTransaction::Hex(hex::encode(view.tx.encode())));
        }
        let mut info = self.tx_info(&view.tx);
        if let Some(at) = view.location {
            info.blockhash = Some(at.block);
            info.confirmations = Some(at.confirmations);
            info.time = Some(at.time);
            info.blocktime = Some(at.time);
        }
        Ok(GetRawTransaction::Info(Box::new(info)))
    }

    async fn sendrawtransaction(&self, hexstring: String) -> RpcResult<Hash256> {
        let bytes = hex_param(&hexstring, "hexstring")?;
        // Decoding needs no chain state: done here, off the core.
        let tx = Transaction::decode(&bytes, self.node.network().params().max_tx_size)
            .map_err(|e| err(codes::DESERIALIZATION_ERROR, format!("TX decode failed: {e}")))?;
        Ok(self.node.send_transaction(tx).await?)
    }

    async fn sendrawtransactions(&self, hexstrings: Vec<String>) -> RpcResult<Vec<SendOutcome>> {
        if hexstrings.len() > MAX_SEND_BATCH {
            return Err(err(
                codes::INVALID_PARAMETER,
                format!("{} transactions in one call; at most {MAX_SEND_BATCH}", hexstrings.len()),
            ));
        }
        let max = self.node.network().params().max_tx_size;
        let calls = hexstrings.iter().enumerate().map(|(i, hex)| async move {
            let tx = hex_param(hex, "hexstrings").and_then(|bytes| {
                Transaction::decode(&bytes, max).map_err(|e| {
                    err(codes::DESERIALIZATION_ERROR, format!("TX decode failed: transaction {i}: {e}"))
                })
            });
            let answer = match tx {
                Ok(tx) => self.node.send_transaction(tx).await.map_err(ErrorObjectOwned::from),
                Err(e) => Err(e),
            };
            match answer {
                Ok(txid) => SendOutcome { txid: Some(txid), error: None },
                Err(e) => SendOutcome {
                    txid: None,
                    error: Some(SendError { code: e.code(), message: e.message().to_string() }),
                },
            }
        });
        // Every admission is queued at once: the core takes them in turn and their scripts
        // reach the verifier pool together.
        Ok(futures::future::join_all(calls).await)
    }

    async fn submitblock(&self, hexdata: String) -> RpcResult<Option<String>> {
        let bytes = hex_param(&hexdata, "hexdata")?;
        let block = Block::decode(&bytes, self.node.network().params().max_block_size)
            .map_err(|e| err(codes::DESERIALIZATION_ERROR, format!("Block decode failed: {e}")))?;
        // BIP 22: null when accepted, else the reason, naming the rule.
        Ok(match self.node.submit_block(block).await? {
            SubmitOutcome::Accepted => None,
            SubmitOutcome::Duplicate => Some("duplicate".into()),
            SubmitOutcome::Orphan { missing } => {
                Some(format!("inconclusive: parent unknown (missing {missing})"))
            }
            SubmitOutcome::Invalid(e) => Some(format!("invalid: {e}")),
        })
    }

    async fn getmempoolinfo(&self) -> RpcResult<MempoolInfo> {
        let i = self.node.mempool_info().await?;
        Ok(MempoolInfo {
            loaded: true,
            size: i.size as u64,
            bytes: i.bytes as u64,
            usage: i.usage as u64,
            total_fee: json::coins_f64(i.total_fee),
            maxmempool: i.max_mempool as u64,
            mempoolminfee: json::rate_f64(i.mempool_min_fee),
            minrelaytxfee: json::rate_f64(i.min_relay_tx_fee),
            incrementalrelayfee: json::rate_f64(i.incremental_relay_fee),
            orphans: i.orphans as u64,
            fullrbf: true,
        })
    }

    async fn getrawmempool(&self, verbose: Option<bool>) -> RpcResult<GetRawMempool> {
        if !verbose.unwrap_or(false) {
            return Ok(GetRawMempool::Txids(self.node.mempool_txids().await?));
        }
        let entries = self.node.mempool_entries().await?;
        let map = entries
            .into_iter()
            .map(|(t, e)| {
                let entry = MempoolEntry {
                    // Core v23+ shape: fees in an object; no segwit, so weight = 4 x size.
                    vsize: e.size as u64,
                    weight: 4 * e.size as u64,
                    time: e.time,
                    height: e.height,
                    fees: MempoolFees {
                        base: json::coins_f64(e.fee),
                        modified: json::coins_f64(e.fee),
                        ancestor: json::coins_f64(e.ancestor_fees),
                        descendant: json::coins_f64(e.descendant_fees),
                    },
                    wtxid: t,
                    bip125_replaceable: true,
                    ancestorcount: e.ancestor_count as u64,
                    ancestorsize: e.ancestor_size as u64,
                    descendantcount: e.descendant_count as u64,
                    descendantsize: e.descendant_size as u64,
                    depends: e.depends.clone(),
                    spentby: e.spent_by.clone(),
                };
                (t.to_string(), entry)
            })
            .collect();
        Ok(GetRawMempool::Verbose(OrderedMap(map)))
    }

    async fn getmininginfo(&self) -> RpcResult<MiningInfo> {
        let i = self.node.mining_info().await?;
        Ok(MiningInfo {
            blocks: i.tip.height,
            difficulty: json::difficulty(self.pow_limit(), i.bits),
            networkhashps: i.network_hashps,
            pooledtx: i.pooled_tx as u64,
            chain: self.node.network().name().to_string(),
            mining: i.mining,
            hashespersec: i.rate.total,
            threads: i.rate.per_thread.len() as u64,
            hashespersec_per_thread: i.rate.per_thread,
            kernel: i.kernel.map(str::to_string),
        })
    }

    async fn getstrategyinfo(&self) -> RpcResult<StrategyInfo> {
        let i = self.node.strategy_info().await?;
        Ok(StrategyInfo {
            strategy: i.strategy.to_string(),
            mining: i.mining,
            hashrate_limit: i.hashrate_limit,
            mine_on: i.mine_on,
            withheld: i.withheld as u64,
            lead: i.lead,
            mined: i.mined,
            published: i.published,
            abandoned: i.abandoned,
            longest_withheld: i.longest_withheld,
            attack: i.attack.map(attack_info),
        })
    }

    async fn startdoublespend(
        &self,
        txid: String,
        hexstring: String,
        confirmations: u32,
        maxdeficit: u32,
    ) -> RpcResult<AttackInfo> {
        let payment = hash_param(&txid, "txid")?;
        let bytes = hex_param(&hexstring, "hexstring")?;
        let conflict = Transaction::decode(&bytes, self.node.network().params().max_tx_size)
            .map_err(|e| err(codes::DESERIALIZATION_ERROR, format!("TX decode failed: {e}")))?;
        Ok(attack_info(self.node.start_double_spend(payment, conflict, confirmations, maxdeficit).await?))
    }

    async fn getblocktemplate(
        &self,
        template_request: Option<TemplateRequest>,
    ) -> RpcResult<BlockTemplateInfo> {
        let req = template_request.unwrap_or_default();
        if let Some(mode) = req.mode.as_deref().filter(|m| *m != "template") {
            return Err(err(
                codes::INVALID_PARAMETER,
                format!(
                    "template_request.mode must be \"template\" (proposals are not supported), got {mode:?}"
                ),
            ));
        }
        if let Some(id) = &req.longpollid {
            // Waits here, on the RPC task: the core only publishes its mark.
            let mut changes = self.node.template_changes();
            let _ = tokio::time::timeout(LONGPOLL_WAIT, changes.wait_for(|m| m.longpoll_id() != *id)).await;
        }
        let info = self.node.chain_info().await?;
        if info.initial_block_download {
            return Err(err(
                codes::IN_INITIAL_DOWNLOAD,
                format!(
                    "the node is downloading blocks (height {} of {}): a template now would be stale",
                    info.tip.height, info.headers
                ),
            ));
        }
        let v = self.node.block_template().await?;
        let t = &v.template;
        let params = self.node.network().params();
        let transactions = t
            .txs
            .iter()
            .zip(&v.fees)
            .zip(&v.depends)
            .zip(&v.sigops)
            .map(|(((tx, fee), depends), sigops)| {
                let txid = tx.txid();
                TemplateTx {
                    data: hex::encode(tx.encode()),
                    txid,
                    hash: txid,
                    depends: depends.clone(),
                    fee: fee.to_sat(),
                    sigops: *sigops as u64,
                }
            })
            .collect();
        Ok(BlockTemplateInfo {
            capabilities: Vec::new(),
            version: t.version,
            rules: Vec::new(),
            previousblockhash: t.prev,
            transactions,
            coinbasevalue: t.coinbase_value.to_sat(),
            longpollid: v.mark.longpoll_id(),
            target: hex::encode(t.target().to_be_bytes()),
            mintime: v.min_time,
            mutable: ["time", "transactions", "prevblock"].map(String::from).to_vec(),
            noncerange: "00000000ffffffff".into(),
            sigoplimit: params.max_block_sigops as u64,
            sizelimit: params.max_block_size as u64,
            curtime: t.time,
            bits: format!("{:08x}", t.bits),
            height: t.height,
            coinbase_reserved_size: crate::mempool::COINBASE_RESERVED_SIZE as u64,
        })
    }

    async fn generatetoaddress(&self, nblocks: i64, address: String) -> RpcResult<Vec<Hash256>> {
        if !(1..=MAX_GENERATE).contains(&nblocks) {
            return Err(err(
                codes::INVALID_PARAMETER,
                format!("nblocks must be in 1..={MAX_GENERATE}, got {nblocks}"),
            ));
        }
        let lock = address_lock(&self.address(&address)?);
        Ok(self.node.generate(nblocks as u32, lock).await?)
    }

    async fn gettxout(
        &self,
        txid: String,
        n: u32,
        include_mempool: Option<bool>,
    ) -> RpcResult<Option<TxOutInfo>> {
        let txid = hash_param(&txid, "txid")?;
        let found = self.node.tx_out(OutPoint { txid, index: n }, include_mempool.unwrap_or(true)).await?;
        Ok(found.map(|v| TxOutInfo {
            bestblock: v.tip.hash,
            confirmations: v.confirmations,
            value: json::coins_f64(v.out.value),
            script_pubkey: script_pubkey(&v.out.lock, self.hrp()),
            coinbase: v.coinbase,
        }))
    }

    async fn gettxoutsetinfo(&self) -> RpcResult<TxOutSetInfo> {
        let d = self.node.utxo_set_info().await?;
        Ok(TxOutSetInfo {
            height: d.tip.height,
            bestblock: d.tip.hash,
            txouts: d.count,
            total_amount: d.total as f64 / 1e8,
            hash_serialized_3: d.hash,
        })
    }

    async fn getchaintips(&self) -> RpcResult<Vec<ChainTip>> {
        let tips = self.node.chain_tips().await?;
        Ok(tips
            .into_iter()
            .map(|t| ChainTip {
                height: t.height,
                hash: t.hash,
                branchlen: t.branch_len,
                status: match t.status {
                    "active" => TipStatus::Active,
                    "invalid" => TipStatus::Invalid,
                    _ => TipStatus::ValidFork,
                },
            })
            .collect())
    }

    async fn invalidateblock(&self, blockhash: String) -> RpcResult<()> {
        Ok(self.node.invalidate_block(hash_param(&blockhash, "blockhash")?).await?)
    }

    async fn reconsiderblock(&self, blockhash: String) -> RpcResult<()> {
        Ok(self.node.reconsider_block(hash_param(&blockhash, "blockhash")?).await?)
    }

    async fn gettxoutproof(&self, txids: Vec<String>, blockhash: Option<String>) -> RpcResult<String> {
        let [txid] = txids.as_slice() else {
            return Err(err(
                codes::INVALID_PARAMETER,
                format!("give exactly one txid (got {}): proofs cover one transaction", txids.len()),
            ));
        };
        let txid = hash_param(txid, "txid")?;
        let block = blockhash.map(|b| hash_param(&b, "blockhash")).transpose()?;
        Ok(hex::encode(self.node.tx_proof(txid, block).await?.encode()))
    }

    async fn verifytxoutproof(&self, proof: String) -> RpcResult<Vec<Hash256>> {
        let bytes = hex_param(&proof, "proof")?;
        let proof = TxProof::decode(&bytes)
            .map_err(|e| err(codes::DESERIALIZATION_ERROR, format!("proof does not decode: {e}")))?;
        let hash = proof.header.hash();
        if !self.node.is_active(hash).await? {
            return Err(err(
                codes::INVALID_ADDRESS_OR_KEY,
                format!("Block {hash} not found in the active chain"),
            ));
        }
        Ok(if proof.verifies() { vec![proof.txid] } else { Vec::new() })
    }

    async fn getaddressutxos(&self, addresses: AddressQuery) -> RpcResult<Vec<AddressUtxo>> {
        let (addrs, locks) = self.address_locks(&addresses)?;
        let coins = self.node.address_coins(locks, MAX_ADDRESS_RESULTS).await?;
        Ok(coins
            .into_iter()
            .map(|a| AddressUtxo {
                address: addrs[a.lock_index].clone(),
                txid: a.outpoint.txid,
                output_index: a.outpoint.index,
                script: hex::encode(&a.coin.out.lock.0),
                satoshis: a.coin.out.value.to_sat(),
                height: a.coin.height,
                coinbase: a.coin.is_coinbase,
                spent_in_mempool: a.spent_in_mempool,
            })
            .collect())
    }

    async fn getaddresstxids(&self, addresses: AddressQuery) -> RpcResult<Vec<Hash256>> {
        let (_, locks) = self.address_locks(&addresses)?;
        let history = self.node.address_history(locks, MAX_ADDRESS_RESULTS).await?;
        Ok(history.into_iter().map(|(_, t)| t).collect())
    }

    async fn createrawtransaction(
        &self,
        inputs: Vec<CreateInput>,
        outputs: serde_json::Map<String, serde_json::Value>,
        locktime: Option<u32>,
    ) -> RpcResult<String> {
        let tx = raw_transaction(&inputs, &outputs, locktime, self.hrp())?;
        Ok(hex::encode(tx.encode()))
    }

    async fn signrawtransactionwithkey(
        &self,
        hexstring: String,
        privkeys: Vec<String>,
    ) -> RpcResult<SignResult> {
        let bytes = hex_param(&hexstring, "hexstring")?;
        if privkeys.len() > MAX_SIGNING_KEYS {
            return Err(err(
                codes::INVALID_PARAMETER,
                format!("at most {MAX_SIGNING_KEYS} keys, got {}", privkeys.len()),
            ));
        }
        let mut secrets = Vec::with_capacity(privkeys.len());
        for k in &privkeys {
            let secret: [u8; 32] = hex::decode(k).ok().and_then(|b| b.try_into().ok()).ok_or_else(|| {
                err(codes::INVALID_ADDRESS_OR_KEY, "private keys are 64 hex digits (32-byte ed25519 secrets)")
            })?;
            secrets.push(secret);
        }
        let tx = Transaction::decode(&bytes, self.node.network().params().max_tx_size)
            .map_err(|e| err(codes::DESERIALIZATION_ERROR, format!("TX decode failed: {e}")))?;
        let spent = self.node.spent_outputs(tx.inputs.iter().map(|i| i.prevout).collect()).await?;
        // Key derivation and signing are CPU work that needs no chain state: on the blocking
        // pool, never on the core thread or an async worker.
        tokio::task::spawn_blocking(move || sign_p2pkh(tx, &spent, &secrets))
            .await
            .map_err(|e| err(codes::MISC, format!("signing failed: {e}")))
    }

    async fn stop(&self) -> RpcResult<String> {
        self.stop.notify_one();
        Ok("quarry stopping".into())
    }

    async fn getpeerinfo(&self) -> RpcResult<Vec<PeerInfo>> {
        let peers = self.net()?.peer_info().await.map_err(p2p_err)?;
        Ok(peers)
    }

    async fn getconnectioncount(&self) -> RpcResult<u64> {
        Ok(self.net()?.network_info().await.map_err(p2p_err)?.connections as u64)
    }

    async fn getnetworkinfo(&self) -> RpcResult<NetworkInfo> {
        let info = self.net()?.network_info().await.map_err(p2p_err)?;
        Ok(NetworkInfo::new(info, self.node.network().name()))
    }

    async fn addnode(&self, node: String, command: String) -> RpcResult<()> {
        let mode = match command.as_str() {
            "add" => AddNodeMode::Add,
            "remove" => AddNodeMode::Remove,
            "onetry" => AddNodeMode::OneTry,
            other => {
                return Err(err(
                    codes::INVALID_PARAMETER,
                    format!("command must be add, remove or onetry, got {other:?}"),
                ))
            }
        };
        let addr = node.parse().map_err(|e| {
            err(
                codes::INVALID_PARAMETER,
                format!(
                    "node {node:?} is not a multiaddr ({e}); e.g. /ip4/127.0.0.1/tcp/19444/p2p/<peer id>"
                ),
            )
        })?;
        self.net()?.add_node(addr, mode).await.map_err(p2p_err)
    }

    async fn disconnectnode(&self, address: String) -> RpcResult<()> {
        self.net()?.disconnect(address).await.map_err(p2p_err)
    }

    async fn setnetworkactive(&self, state: bool) -> RpcResult<bool> {
        self.net()?.set_active(state).await.map_err(p2p_err)
    }

    async fn listbanned(&self) -> RpcResult<Vec<BanInfo>> {
        let bans = self.net()?.list_banned().await.map_err(p2p_err)?;
        Ok(bans)
    }

    async fn setban(&self, subnet: String, command: String, bantime: Option<u64>) -> RpcResult<()> {
        let peer: libp2p::PeerId = subnet.parse().map_err(|e| {
            err(codes::INVALID_PARAMETER, format!("{subnet:?} is not a peer id ({e}); see getpeerinfo"))
        })?;
        let add = match command.as_str() {
            "add" => true,
            "remove" => false,
            other => {
                return Err(err(
                    codes::INVALID_PARAMETER,
                    format!("command must be add or remove, got {other:?}"),
                ))
            }
        };
        let seconds = bantime.unwrap_or(crate::p2p::peers::BAN_SECONDS);
        self.net()?.set_ban(peer, add, seconds).await.map_err(p2p_err)
    }

    async fn clearbanned(&self) -> RpcResult<()> {
        self.net()?.clear_banned().await.map(drop).map_err(p2p_err)
    }
}

/// Signs every P2PKH input whose key is among `secrets` (the outputs spent are `spent`, in
/// input order); the others are listed as errors.
fn sign_p2pkh(mut tx: Transaction, spent: &[crate::primitives::TxOut], secrets: &[[u8; 32]]) -> SignResult {
    use crate::script::templates::{p2pkh_unlock, pubkey_hash, Template};
    use crate::script::{sighash, SighashCache};
    use ed25519_dalek::Signer;
    let signers: std::collections::HashMap<[u8; 32], ed25519_dalek::SigningKey> = secrets
        .iter()
        .map(|s| {
            let sk = ed25519_dalek::SigningKey::from_bytes(s);
            (pubkey_hash(&sk.verifying_key().to_bytes()), sk)
        })
        .collect();
    let cache = SighashCache::new(&tx);
    let mut errors = Vec::new();
    let mut unlocks = Vec::with_capacity(tx.inputs.len());
    for (n, out) in spent.iter().enumerate() {
        let signer = match Template::classify(&out.lock.0) {
            Template::P2pkh(h) => signers.get(&h),
            _ => None,
        };
        match signer {
            Some(s) => {
                let msg = sighash(&tx, &cache, n, out);
                unlocks.push(Some(p2pkh_unlock(&s.sign(&msg.0).to_bytes(), &s.verifying_key().to_bytes())));
            }
            None => {
                unlocks.push(None);
                errors.push(SignError {
                    vout: tx.inputs[n].prevout.index,
                    txid: tx.inputs[n].prevout.txid,
                    error: "no key given for this P2PKH input (other templates: use the wallet)".into(),
                });
            }
        }
    }
    for (input, unlock) in tx.inputs.iter_mut().zip(unlocks) {
        if let Some(u) = unlock {
            input.unlock = u;
        }
    }
    let complete = errors.is_empty();
    SignResult { hex: hex::encode(tx.encode()), complete, errors: (!complete).then_some(errors) }
}
