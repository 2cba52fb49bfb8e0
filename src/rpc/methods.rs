//! The RPC methods. Each parses its parameters on the async side and runs on the node core
//! through [`NodeHandle::call`]; every failure is a JSON-RPC error object with a Core-like
//! code and a message naming the rule.

use super::json;
use super::{codes, err};
use crate::chain::{ChainError, ProcessOutcome};
use crate::mempool::MempoolError;
use crate::node::{Core, NodeHandle};
use crate::primitives::merkle::MerkleProof;
use crate::primitives::{Address, Block, BlockHeader, Hash256, OutPoint, Script, Transaction};
use crate::script::templates::address_lock;
use jsonrpsee::types::{ErrorObjectOwned, Params};
use jsonrpsee::RpcModule;
use serde_json::{json, Value};
use std::future::Future;
use std::sync::Arc;

type RpcResult = Result<Value, ErrorObjectOwned>;

/// Most unspent outputs one `getaddressutxos` call returns (an error beyond, never a silent
/// truncation).
const MAX_ADDRESS_UTXOS: usize = 50_000;
/// Most keys one `signrawtransactionwithkey` call takes.
const MAX_SIGNING_KEYS: usize = 1_000;

/// What every method sees.
pub struct Ctx {
    /// The node core.
    pub node: NodeHandle,
    /// The network service (None when the node runs without networking).
    pub net: Option<crate::p2p::P2pHandle>,
    /// Notified by `stop`.
    pub stop: Arc<tokio::sync::Notify>,
}

pub(super) fn reg<F, Fut>(
    m: &mut RpcModule<Ctx>,
    name: &'static str,
    f: F,
) -> Result<(), jsonrpsee::core::RegisterMethodError>
where
    F: Fn(Params<'static>, Arc<Ctx>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = RpcResult> + Send + 'static,
{
    m.register_async_method(name, move |p, c, _| f(p, c))?;
    Ok(())
}

fn hash_param(s: &str, what: &str) -> Result<Hash256, ErrorObjectOwned> {
    s.parse().map_err(|e| err(codes::INVALID_PARAMETER, format!("{what} must be a 64-hex-digit hash: {e}")))
}

fn hex_param(s: &str, what: &str) -> Result<Vec<u8>, ErrorObjectOwned> {
    hex::decode(s.trim())
        .map_err(|e| err(codes::DESERIALIZATION_ERROR, format!("{what} is not valid hex: {e}")))
}

fn address_param(core: &Core, s: &str) -> Result<Address, ErrorObjectOwned> {
    Address::decode(s, core.network.address_hrp())
        .map_err(|e| err(codes::INVALID_ADDRESS_OR_KEY, format!("invalid address {s:?}: {e}")))
}

fn chain_err(e: ChainError) -> ErrorObjectOwned {
    match e {
        ChainError::UnknownBlock { .. } => err(codes::INVALID_ADDRESS_OR_KEY, e.to_string()),
        ChainError::Invalid { .. } | ChainError::KnownInvalid { .. } => {
            err(codes::VERIFY_ERROR, e.to_string())
        }
        _ => err(codes::MISC, e.to_string()),
    }
}

/// Like Core: -25 for missing or spent inputs, -26 for every other rejection.
fn mempool_err(e: MempoolError) -> ErrorObjectOwned {
    let code = if matches!(e, MempoolError::MissingInputs { .. }) {
        codes::VERIFY_ERROR
    } else {
        codes::VERIFY_REJECTED
    };
    err(code, e.to_string())
}

fn block_or_err(core: &Core, hash: &Hash256) -> Result<crate::consensus::CheckedBlock, ErrorObjectOwned> {
    core.chain
        .store()
        .get_block(hash)
        .map_err(|e| err(codes::MISC, e.to_string()))?
        .ok_or_else(|| err(codes::INVALID_ADDRESS_OR_KEY, format!("Block not found: {hash}")))
}

fn block_json(core: &Core, block: &crate::consensus::CheckedBlock, verbosity: u8) -> Value {
    let hrp = core.network.address_hrp();
    let mut v = json::header(&core.chain, &block.hash(), block.header());
    v["size"] = json!(block.block().encoded_size());
    v["nTx"] = json!(block.block().txs.len());
    v["tx"] = if verbosity >= 2 {
        block.block().txs.iter().map(|t| json::tx(t, hrp)).collect()
    } else {
        block.txids().iter().map(|t| json!(t.to_string())).collect()
    };
    v
}

/// Finds a transaction in the mempool or (through the tx index) in the active chain.
fn find_tx(core: &Core, txid: &Hash256) -> Result<(Transaction, Option<Hash256>), ErrorObjectOwned> {
    if let Some(tx) = core.mempool.get(txid) {
        return Ok((tx.clone(), None));
    }
    let not_found =
        || err(codes::INVALID_ADDRESS_OR_KEY, format!("No such mempool or blockchain transaction {txid}"));
    let block_hash = core
        .chain
        .store()
        .tx_block(txid)
        .map_err(|e| err(codes::MISC, e.to_string()))?
        .ok_or_else(not_found)?;
    let block = block_or_err(core, &block_hash)?;
    let i = block.txids().iter().position(|t| t == txid).ok_or_else(not_found)?;
    Ok((block.block().txs[i].clone(), Some(block_hash)))
}

/// The `getaddressutxos` / `getaddresstxids` parameter: one address or `{"addresses": [...]}`,
/// deduplicated, at most 100.
fn address_list(arg: Value) -> Result<Vec<String>, ErrorObjectOwned> {
    let shape = || err(codes::TYPE_ERROR, "expected an address or {\"addresses\": [...]}");
    let mut addrs: Vec<String> = match arg {
        Value::String(s) => vec![s],
        Value::Object(o) => {
            serde_json::from_value(o.get("addresses").cloned().unwrap_or(Value::Null)).map_err(|_| shape())?
        }
        _ => return Err(shape()),
    };
    addrs.sort();
    addrs.dedup();
    if addrs.len() > 100 {
        return Err(err(
            codes::INVALID_PARAMETER,
            format!("at most 100 addresses per call, got {}", addrs.len()),
        ));
    }
    Ok(addrs)
}

/// Registers every method.
pub fn register(m: &mut RpcModule<Ctx>) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    reg(
        m,
        "getblockcount",
        |_, c| async move { Ok(c.node.call(|core| json!(core.chain.tip().height)).await?) },
    )?;
    reg(m, "getbestblockhash", |_, c| async move {
        Ok(c.node.call(|core| json!(core.chain.tip().hash.to_string())).await?)
    })?;
    reg(m, "getblockchaininfo", |_, c| async move {
        Ok(c.node
            .call(|core| {
                let tip = core.chain.tip();
                let h = core.chain.record(&tip.hash).map(|r| r.header).expect("tip indexed");
                json!({
                    "chain": core.network.name(),
                    "blocks": tip.height,
                    "headers": tip.height,
                    "bestblockhash": tip.hash.to_string(),
                    "difficulty": json::difficulty(&core.chain.params().pow_limit, h.bits),
                    "time": h.time,
                    "mediantime": core.chain.header_context(&tip.hash, 0).map(|c| c.median_time_past),
                    "verificationprogress": 1.0,
                    "initialblockdownload": false,
                    "chainwork": tip.chain_work.to_string(),
                    "pruned": false,
                    "warnings": "",
                })
            })
            .await?)
    })?;
    reg(m, "getblockhash", |p, c| async move {
        let height: i64 = p.one()?;
        c.node
            .call(move |core| match u32::try_from(height).ok().and_then(|h| core.chain.hash_at(h)) {
                Some(h) => Ok(json!(h.to_string())),
                None => Err(err(
                    codes::INVALID_PARAMETER,
                    format!("Block height {height} out of range (tip {})", core.chain.tip().height),
                )),
            })
            .await?
    })?;
    reg(m, "getblock", |p, c| async move {
        let mut seq = p.sequence();
        let (hash, verbosity): (String, Option<Value>) = (seq.next()?, seq.optional_next()?);
        let hash = hash_param(&hash, "blockhash")?;
        let verbosity = match verbosity {
            None => 1,
            Some(Value::Bool(b)) => b as u8,
            Some(Value::Number(n)) if n.as_u64().is_some_and(|v| v <= 2) => n.as_u64().unwrap_or(1) as u8,
            Some(v) => return Err(err(codes::TYPE_ERROR, format!("verbosity must be 0, 1 or 2, got {v}"))),
        };
        c.node
            .call(move |core| {
                let block = block_or_err(core, &hash)?;
                Ok(if verbosity == 0 {
                    json!(hex::encode(block.block().encode()))
                } else {
                    block_json(core, &block, verbosity)
                })
            })
            .await?
    })?;
    reg(m, "getblockheader", |p, c| async move {
        let mut seq = p.sequence();
        let (hash, verbose): (String, Option<bool>) = (seq.next()?, seq.optional_next()?);
        let hash = hash_param(&hash, "blockhash")?;
        c.node
            .call(move |core| {
                let rec = core
                    .chain
                    .record(&hash)
                    .ok_or_else(|| err(codes::INVALID_ADDRESS_OR_KEY, format!("Block not found: {hash}")))?;
                Ok(if verbose.unwrap_or(true) {
                    json::header(&core.chain, &hash, &rec.header)
                } else {
                    json!(hex::encode(rec.header.to_bytes()))
                })
            })
            .await?
    })?;
    reg(m, "getrawtransaction", |p, c| async move {
        let mut seq = p.sequence();
        let (txid, verbose): (String, Option<Value>) = (seq.next()?, seq.optional_next()?);
        let txid = hash_param(&txid, "txid")?;
        let verbose = matches!(verbose, Some(Value::Bool(true)))
            || matches!(&verbose, Some(Value::Number(n)) if n.as_u64().unwrap_or(0) > 0);
        c.node
            .call(move |core| {
                let (tx, block) = find_tx(core, &txid)?;
                if !verbose {
                    return Ok(json!(hex::encode(tx.encode())));
                }
                let mut v = json::tx(&tx, core.network.address_hrp());
                if let Some(bh) = block {
                    let rec = core.chain.record(&bh).expect("indexed");
                    v["blockhash"] = json!(bh.to_string());
                    v["confirmations"] = json!(core.chain.tip().height - rec.height + 1);
                    v["time"] = json!(rec.header.time);
                    v["blocktime"] = json!(rec.header.time);
                }
                Ok(v)
            })
            .await?
    })?;
    reg(m, "sendrawtransaction", |p, c| async move {
        let hexstr: String = p.sequence().next()?;
        let bytes = hex_param(&hexstr, "hexstring")?;
        c.node
            .call(move |core| {
                let tx = Transaction::decode(&bytes, core.chain.params().max_tx_size)
                    .map_err(|e| err(codes::DESERIALIZATION_ERROR, format!("TX decode failed: {e}")))?;
                let txid = tx.txid();
                if core.chain.store().tx_block(&txid).ok().flatten().is_some() {
                    return Err(err(
                        codes::VERIFY_ALREADY_IN_CHAIN,
                        format!("Transaction {txid} already in block chain"),
                    ));
                }
                if core.mempool.contains(&txid) {
                    return Ok(json!(txid.to_string()));
                }
                let copy = tx.clone();
                let admission = core
                    .mempool
                    .accept_local(tx, &core.chain, crate::node::core::now())
                    .map_err(mempool_err)?;
                core.announce_tx(&copy);
                core.refresh_template_if_older(std::time::Duration::from_millis(500));
                Ok(json!(admission.txid.to_string()))
            })
            .await?
    })?;
    reg(m, "submitblock", |p, c| async move {
        let hexstr: String = p.sequence().next()?;
        let bytes = hex_param(&hexstr, "hexdata")?;
        c.node
            .call(move |core| {
                let block = Block::decode(&bytes, core.chain.params().max_block_size)
                    .map_err(|e| err(codes::DESERIALIZATION_ERROR, format!("Block decode failed: {e}")))?;
                let copy = block.clone();
                let hash = block.hash();
                Ok(match core.submit_block(block) {
                    Ok(ProcessOutcome::Accepted { .. }) if core.chain.is_known_invalid(&hash) => {
                        json!(format!("invalid: block {hash} failed to connect"))
                    }
                    Ok(ProcessOutcome::Accepted { .. }) => {
                        core.announce_block(&copy);
                        Value::Null
                    }
                    Ok(ProcessOutcome::AlreadyHave) => json!("duplicate"),
                    Ok(ProcessOutcome::Orphan { .. }) => json!("inconclusive: parent unknown"),
                    Err(e) => json!(e.to_string()),
                })
            })
            .await?
    })?;
    reg(m, "getmempoolinfo", |_, c| async move {
        Ok(c.node
            .call(|core| {
                let i = core.mempool.info(crate::node::core::now());
                json!({
                    "loaded": true,
                    "size": i.size,
                    "bytes": i.bytes,
                    "usage": i.usage,
                    "total_fee": json::coins(i.total_fee),
                    "maxmempool": i.max_mempool,
                    "mempoolminfee": json::rate_coins_per_kb(i.mempool_min_fee),
                    "minrelaytxfee": json::rate_coins_per_kb(i.min_relay_tx_fee),
                    "incrementalrelayfee": json::rate_coins_per_kb(i.incremental_relay_fee),
                    "orphans": i.orphans,
                    "fullrbf": true,
                })
            })
            .await?)
    })?;
    reg(m, "getrawmempool", |p, c| async move {
        let verbose: Option<bool> = p.sequence().optional_next()?;
        Ok(c.node
            .call(move |core| {
                let txids = core.mempool.txids();
                if !verbose.unwrap_or(false) {
                    return json!(txids.iter().map(|t| t.to_string()).collect::<Vec<_>>());
                }
                let mut out = serde_json::Map::new();
                for t in txids {
                    if let Some(e) = core.mempool.entry(&t) {
                        out.insert(
                            t.to_string(),
                            json!({
                                // Core v23+ shape: fees in an object; no segwit, so weight = 4 x size.
                                "vsize": e.size, "weight": 4 * e.size, "time": e.time, "height": e.height,
                                "fees": {
                                    "base": json::coins(e.fee), "modified": json::coins(e.fee),
                                    "ancestor": json::coins(e.ancestor_fees), "descendant": json::coins(e.descendant_fees),
                                },
                                "wtxid": t.to_string(), "bip125-replaceable": true,
                                "ancestorcount": e.ancestor_count, "ancestorsize": e.ancestor_size,
                                "descendantcount": e.descendant_count, "descendantsize": e.descendant_size,
                                "depends": e.depends.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
                                "spentby": e.spent_by.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
                            }),
                        );
                    }
                }
                Value::Object(out)
            })
            .await?)
    })?;
    reg(m, "getmininginfo", |_, c| async move {
        Ok(c.node
            .call(|core| {
                let tip = core.chain.tip();
                let bits = core.chain.record(&tip.hash).map(|r| r.header.bits).unwrap_or(0);
                let rate = core.meter.rate();
                json!({
                    "blocks": tip.height,
                    "difficulty": json::difficulty(&core.chain.params().pow_limit, bits),
                    "networkhashps": network_hashps(core, 120),
                    "pooledtx": core.mempool.len(),
                    "chain": core.network.name(),
                    "mining": core.miner.is_some(),
                    "hashespersec": rate.total,
                    "threads": rate.per_thread.len(),
                    "hashespersec_per_thread": rate.per_thread,
                    "kernel": core.miner.as_ref().map(|(m, _)| m.kernel().name()),
                })
            })
            .await?)
    })?;
    reg(m, "generatetoaddress", |p, c| async move {
        let mut seq = p.sequence();
        let (n, address): (i64, String) = (seq.next()?, seq.next()?);
        if !(1..=10_000).contains(&n) {
            return Err(err(codes::INVALID_PARAMETER, format!("nblocks must be in 1..=10000, got {n}")));
        }
        c.node
            .call(move |core| {
                let addr = address_param(core, &address)?;
                let hashes = core.generate(n as u32, address_lock(&addr)).map_err(chain_err)?;
                Ok(json!(hashes.iter().map(|h| h.to_string()).collect::<Vec<_>>()))
            })
            .await?
    })?;
    reg(m, "gettxout", |p, c| async move {
        let mut seq = p.sequence();
        let (txid, n, include_mempool): (String, u32, Option<bool>) =
            (seq.next()?, seq.next()?, seq.optional_next()?);
        let txid = hash_param(&txid, "txid")?;
        c.node
            .call(move |core| {
                let op = OutPoint { txid, index: n };
                let hrp = core.network.address_hrp();
                let tip = core.chain.tip();
                let mempool = include_mempool.unwrap_or(true);
                if mempool && core.mempool.spender(&op).is_some() {
                    return Ok(Value::Null);
                }
                if let Some(coin) = core.chain.store().get_coin(&op).map_err(|e| err(codes::MISC, e.to_string()))? {
                    return Ok(json!({
                        "bestblock": tip.hash.to_string(),
                        "confirmations": tip.height - coin.height + 1,
                        "value": json::coins(coin.out.value),
                        "scriptPubKey": json::script_pubkey(&coin.out.lock.0, hrp),
                        "coinbase": coin.is_coinbase,
                    }));
                }
                if mempool {
                    if let Some(out) = core.mempool.get(&txid).and_then(|t| t.outputs.get(n as usize)) {
                        return Ok(json!({
                            "bestblock": tip.hash.to_string(), "confirmations": 0,
                            "value": json::coins(out.value), "scriptPubKey": json::script_pubkey(&out.lock.0, hrp),
                            "coinbase": false,
                        }));
                    }
                }
                Ok(Value::Null)
            })
            .await?
    })?;
    reg(m, "gettxoutsetinfo", |_, c| async move {
        c.node
            .call(|core| {
                let d = core.chain.utxo_digest().map_err(chain_err)?;
                let tip = core.chain.tip();
                Ok(json!({
                    "height": tip.height, "bestblock": tip.hash.to_string(), "txouts": d.count,
                    "total_amount": d.total as f64 / 1e8, "hash_serialized_3": d.hash.to_string(),
                }))
            })
            .await?
    })?;
    reg(m, "getchaintips", |_, c| async move {
        Ok(c.node
            .call(|core| {
                let mut tips: Vec<Value> = core
                    .chain
                    .tips()
                    .into_iter()
                    .map(|(h, r)| {
                        let active = core.chain.is_active(&h);
                        let mut fork = h;
                        let mut branchlen = 0u32;
                        while !core.chain.is_active(&fork) {
                            match core.chain.record(&fork) {
                                Some(rr) => fork = rr.header.prev,
                                None => break,
                            }
                            branchlen += 1;
                        }
                        let status = if active { "active" } else if r.status.is_failed() { "invalid" } else { "valid-fork" };
                        json!({ "height": r.height, "hash": h.to_string(), "branchlen": branchlen, "status": status })
                    })
                    .collect();
                tips.sort_by_key(|t| std::cmp::Reverse(t["height"].as_u64()));
                json!(tips)
            })
            .await?)
    })?;
    reg(m, "invalidateblock", |p, c| async move {
        let hash = hash_param(&p.one::<String>()?, "blockhash")?;
        c.node
            .call(move |core| {
                let events = core.chain.invalidate_block(&hash).map_err(chain_err)?;
                core.on_events(&events);
                Ok(Value::Null)
            })
            .await?
    })?;
    reg(m, "reconsiderblock", |p, c| async move {
        let hash = hash_param(&p.one::<String>()?, "blockhash")?;
        c.node
            .call(move |core| {
                let events = core.chain.reconsider_block(&hash).map_err(chain_err)?;
                core.on_events(&events);
                Ok(Value::Null)
            })
            .await?
    })?;
    reg(m, "gettxoutproof", |p, c| async move {
        let mut seq = p.sequence();
        let (txids, blockhash): (Vec<String>, Option<String>) = (seq.next()?, seq.optional_next()?);
        let txids: Vec<Hash256> = txids.iter().map(|t| hash_param(t, "txid")).collect::<Result<_, _>>()?;
        if txids.len() != 1 {
            return Err(err(
                codes::INVALID_PARAMETER,
                format!("give exactly one txid (got {}): proofs cover one transaction", txids.len()),
            ));
        }
        let blockhash = blockhash.map(|b| hash_param(&b, "blockhash")).transpose()?;
        c.node
            .call(move |core| {
                let txid = txids[0];
                let bh = match blockhash {
                    Some(b) => b,
                    None => core
                        .chain
                        .store()
                        .tx_block(&txid)
                        .map_err(|e| err(codes::MISC, e.to_string()))?
                        .ok_or_else(|| {
                            err(
                                codes::INVALID_ADDRESS_OR_KEY,
                                format!("Transaction {txid} not yet in a block"),
                            )
                        })?,
                };
                let block = block_or_err(core, &bh)?;
                let i = block.txids().iter().position(|t| *t == txid).ok_or_else(|| {
                    err(codes::INVALID_ADDRESS_OR_KEY, format!("Transaction {txid} not in block {bh}"))
                })?;
                let proof = MerkleProof::build(block.txids(), i).expect("index in range");
                Ok(json!(hex::encode(encode_proof(block.header(), &txid, &proof))))
            })
            .await?
    })?;
    reg(m, "verifytxoutproof", |p, c| async move {
        let bytes = hex_param(&p.one::<String>()?, "proof")?;
        let (header, txid, proof) = decode_proof(&bytes)?;
        c.node
            .call(move |core| {
                let hash = header.hash();
                if !core.chain.is_active(&hash) {
                    return Err(err(
                        codes::INVALID_ADDRESS_OR_KEY,
                        format!("Block {hash} not found in the active chain"),
                    ));
                }
                Ok(match proof.verify(&txid, &header.merkle_root) {
                    Ok(()) => json!([txid.to_string()]),
                    Err(_) => json!([]),
                })
            })
            .await?
    })?;
    reg(m, "getaddressutxos", |p, c| async move {
        let addrs = address_list(p.one()?)?;
        c.node
            .call(move |core| {
                let mut out = Vec::new();
                for a in &addrs {
                    let addr = address_param(core, a)?;
                    let lock = address_lock(&addr);
                    let left = MAX_ADDRESS_UTXOS - out.len();
                    let coins =
                        core.chain.store().coins_by_lock(&lock.0, left + 1).map_err(|e| err(codes::MISC, e.to_string()))?;
                    if coins.len() > left {
                        return Err(err(
                            codes::INVALID_PARAMETER,
                            format!("more than {MAX_ADDRESS_UTXOS} unspent outputs for these addresses: ask for fewer"),
                        ));
                    }
                    for (op, coin) in coins {
                        out.push(json!({
                            "address": a, "txid": op.txid.to_string(), "outputIndex": op.index,
                            "script": hex::encode(&coin.out.lock.0), "satoshis": coin.out.value.to_sat(),
                            "height": coin.height, "coinbase": coin.is_coinbase,
                            "spent_in_mempool": core.mempool.spender(&op).map(|t| t.to_string()),
                        }));
                    }
                }
                Ok(json!(out))
            })
            .await?
    })?;
    register_rawtx(m)?;
    reg(m, "getaddresstxids", |p, c| async move {
        let addrs = address_list(p.one()?)?;
        c.node
            .call(move |core| {
                let mut all: Vec<(u32, Hash256)> = Vec::new();
                for a in &addrs {
                    let lock = address_lock(&address_param(core, a)?);
                    let left = MAX_ADDRESS_UTXOS - all.len();
                    let h = core.chain.store().history_by_lock(&lock.0, left + 1).map_err(|e| err(codes::MISC, e.to_string()))?;
                    if h.len() > left {
                        return Err(err(codes::INVALID_PARAMETER, format!("more than {MAX_ADDRESS_UTXOS} transactions for these addresses: ask for fewer")));
                    }
                    all.extend(h);
                }
                all.sort();
                all.dedup();
                Ok(json!(all.iter().map(|(_, t)| t.to_string()).collect::<Vec<_>>()))
            })
            .await?
    })?;
    reg(m, "stop", |_, c| async move {
        c.stop.notify_one();
        Ok(json!("quarry stopping"))
    })?;
    Ok(())
}

/// Estimated network hash rate: the work of the last `n` active blocks over their time span
/// (Core's getnetworkhashps with its default window).
fn network_hashps(core: &Core, n: u32) -> f64 {
    let tip = core.chain.tip();
    // Genesis carries the network's definition date, not a mining time: leave it out.
    let first = tip.height.saturating_sub(n).max(1);
    if tip.height <= first {
        return 0.0;
    }
    let rec = |h: u32| core.chain.hash_at(h).and_then(|x| core.chain.record(&x).cloned());
    let (Some(a), Some(b)) = (rec(first), rec(tip.height)) else { return 0.0 };
    let work = b.chain_work.checked_sub(&a.chain_work).unwrap_or_default();
    let secs = b.header.time.saturating_sub(a.header.time).max(1) as f64;
    json::u256_f64(&work) / secs
}

/// `gettxoutproof` bytes: 80-byte header, 32-byte txid, u32 index, u32 leaf count, u32 sibling
/// count, then the siblings (docs/PROTOCOL.md "Transaction proofs").
pub fn encode_proof(header: &BlockHeader, txid: &Hash256, proof: &MerkleProof) -> Vec<u8> {
    let mut out = Vec::with_capacity(80 + 32 + 12 + 32 * proof.siblings.len());
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(&txid.0);
    out.extend_from_slice(&proof.index.to_le_bytes());
    out.extend_from_slice(&proof.leaf_count.to_le_bytes());
    out.extend_from_slice(&(proof.siblings.len() as u32).to_le_bytes());
    for s in &proof.siblings {
        out.extend_from_slice(&s.0);
    }
    out
}

/// Parses [`encode_proof`]'s bytes (at most 64 siblings).
pub fn decode_proof(bytes: &[u8]) -> Result<(BlockHeader, Hash256, MerkleProof), ErrorObjectOwned> {
    use crate::primitives::encode::Reader;
    let bad = |e: crate::primitives::DecodeError| {
        err(codes::DESERIALIZATION_ERROR, format!("proof does not decode: {e}"))
    };
    let mut r = Reader::new(bytes);
    let header = BlockHeader::from_bytes(r.take(80, "proof header").map_err(bad)?).map_err(bad)?;
    let txid = Hash256(r.array("proof txid").map_err(bad)?);
    let index = r.u32("proof index").map_err(bad)?;
    let leaf_count = r.u32("proof leaf count").map_err(bad)?;
    let n = r.count("proof siblings", 32).map_err(bad)?;
    if n > 64 {
        return Err(err(codes::DESERIALIZATION_ERROR, format!("proof has {n} siblings, at most 64")));
    }
    let mut siblings = Vec::with_capacity(n);
    for _ in 0..n {
        siblings.push(Hash256(r.array("proof sibling").map_err(bad)?));
    }
    r.finish("proof").map_err(bad)?;
    Ok((header, txid, MerkleProof { index, leaf_count, siblings }))
}

/// `createrawtransaction` and `signrawtransactionwithkey` (Core's raw-transaction tools, for
/// building a spend by hand before the wallet exists).
pub fn register_rawtx(m: &mut RpcModule<Ctx>) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    reg(m, "createrawtransaction", |p, c| async move {
        let mut seq = p.sequence();
        let (inputs, outputs, locktime): (Vec<Value>, serde_json::Map<String, Value>, Option<u32>) =
            (seq.next()?, seq.next()?, seq.optional_next()?);
        c.node
            .call(move |core| {
                use crate::primitives::{Amount, TxIn};
                let mut tx = Transaction {
                    version: 1,
                    inputs: Vec::new(),
                    outputs: Vec::new(),
                    lock_time: locktime.unwrap_or(0),
                };
                for i in &inputs {
                    let txid = hash_param(i["txid"].as_str().unwrap_or(""), "inputs[].txid")?;
                    let vout = i["vout"]
                        .as_u64()
                        .and_then(|v| u32::try_from(v).ok())
                        .ok_or_else(|| err(codes::INVALID_PARAMETER, "inputs[].vout must be a number"))?;
                    tx.inputs
                        .push(TxIn { prevout: OutPoint { txid, index: vout }, unlock: Script::default() });
                }
                for (addr, amount) in &outputs {
                    let lock = if addr == "data" {
                        let data = hex_param(amount.as_str().unwrap_or(""), "data")?;
                        crate::script::templates::op_return(&data)
                    } else {
                        address_lock(&address_param(core, addr)?)
                    };
                    let value = if addr == "data" { Amount::ZERO } else { parse_coins(amount)? };
                    tx.outputs.push(crate::primitives::TxOut { value, lock });
                }
                Ok(json!(hex::encode(tx.encode())))
            })
            .await?
    })?;
    reg(m, "signrawtransactionwithkey", |p, c| async move {
        let mut seq = p.sequence();
        let (hexstr, keys): (String, Vec<String>) = (seq.next()?, seq.next()?);
        let bytes = hex_param(&hexstr, "hexstring")?;
        if keys.len() > MAX_SIGNING_KEYS {
            return Err(err(
                codes::INVALID_PARAMETER,
                format!("at most {MAX_SIGNING_KEYS} keys, got {}", keys.len()),
            ));
        }
        let mut secrets = Vec::with_capacity(keys.len());
        for k in &keys {
            let secret: [u8; 32] = hex::decode(k).ok().and_then(|b| b.try_into().ok()).ok_or_else(|| {
                err(codes::INVALID_ADDRESS_OR_KEY, "private keys are 64 hex digits (32-byte ed25519 secrets)")
            })?;
            secrets.push(secret);
        }
        c.node
            .call(move |core| {
                use crate::script::templates::{p2pkh_unlock, pubkey_hash, Template};
                use crate::script::{sighash, SighashCache};
                use ed25519_dalek::Signer;
                // Key derivation is CPU work: here on the core thread, once per key.
                let signers: std::collections::HashMap<[u8; 32], ed25519_dalek::SigningKey> = secrets
                    .iter()
                    .map(|s| {
                        let sk = ed25519_dalek::SigningKey::from_bytes(s);
                        (pubkey_hash(&sk.verifying_key().to_bytes()), sk)
                    })
                    .collect();
                let mut tx = Transaction::decode(&bytes, core.chain.params().max_tx_size)
                    .map_err(|e| err(codes::DESERIALIZATION_ERROR, format!("TX decode failed: {e}")))?;
                let mut spent = Vec::with_capacity(tx.inputs.len());
                for i in &tx.inputs {
                    let op = i.prevout;
                    let out = match core.chain.store().get_coin(&op).map_err(|e| err(codes::MISC, e.to_string()))? {
                        Some(c) => c.out,
                        None => core
                            .mempool
                            .get(&op.txid)
                            .and_then(|t| t.outputs.get(op.index as usize).cloned())
                            .ok_or_else(|| err(codes::VERIFY_ERROR, format!("input {op} is missing or spent")))?,
                    };
                    spent.push(out);
                }
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
                            errors.push(json!({ "vout": tx.inputs[n].prevout.index, "txid": tx.inputs[n].prevout.txid.to_string(),
                                "error": "no key given for this P2PKH input (other templates: use the wallet)" }));
                        }
                    }
                }
                for (input, unlock) in tx.inputs.iter_mut().zip(unlocks) {
                    if let Some(u) = unlock {
                        input.unlock = u;
                    }
                }
                let mut v = json!({ "hex": hex::encode(tx.encode()), "complete": errors.is_empty() });
                if !errors.is_empty() {
                    v["errors"] = json!(errors);
                }
                Ok(v)
            })
            .await?
    })?;
    Ok(())
}

/// An amount in coins (JSON number or string, at most 8 decimals) as base units.
fn parse_coins(v: &Value) -> Result<crate::primitives::Amount, ErrorObjectOwned> {
    json::coins_from_json(v).map_err(|e| err(codes::TYPE_ERROR, e))
}
