//! The RPC methods. Each parses its parameters on the async side and runs on the node core
//! through [`NodeHandle::call`]; every failure is a JSON-RPC error object with a Core-like
//! code and a message naming the rule.

use super::json;
use super::{codes, err};
use crate::node::{NodeHandle, SubmitOutcome};
use crate::primitives::{Address, Block, OutPoint, Script, Transaction, TxProof};
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
    /// The node core's typed API.
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

fn hash_param(s: &str, what: &str) -> Result<crate::primitives::Hash256, ErrorObjectOwned> {
    s.parse().map_err(|e| err(codes::INVALID_PARAMETER, format!("{what} must be a 64-hex-digit hash: {e}")))
}

fn hex_param(s: &str, what: &str) -> Result<Vec<u8>, ErrorObjectOwned> {
    hex::decode(s.trim())
        .map_err(|e| err(codes::DESERIALIZATION_ERROR, format!("{what} is not valid hex: {e}")))
}

fn address_param(c: &Ctx, s: &str) -> Result<Address, ErrorObjectOwned> {
    Address::decode(s, c.node.network().address_hrp())
        .map_err(|e| err(codes::INVALID_ADDRESS_OR_KEY, format!("invalid address {s:?}: {e}")))
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

fn address_locks(c: &Ctx, addrs: &[String]) -> Result<Vec<Script>, ErrorObjectOwned> {
    addrs.iter().map(|a| address_param(c, a).map(|addr| address_lock(&addr))).collect()
}

fn pow_limit(c: &Ctx) -> &'static crate::primitives::U256 {
    &c.node.network().params().pow_limit
}

/// Registers every method.
pub fn register(m: &mut RpcModule<Ctx>) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    reg(m, "getblockcount", |_, c| async move { Ok(json!(c.node.chain_info().await?.tip.height)) })?;
    reg(m, "getbestblockhash", |_, c| async move { Ok(json!(c.node.chain_info().await?.tip.hash.to_string())) })?;
    reg(m, "getblockchaininfo", |_, c| async move {
        let i = c.node.chain_info().await?;
        Ok(json!({
            "chain": c.node.network().name(),
            "blocks": i.tip.height,
            "headers": i.headers,
            "bestblockhash": i.tip.hash.to_string(),
            "bestheaderhash": i.best_header.to_string(),
            "difficulty": json::difficulty(pow_limit(&c), i.tip_header.bits),
            "time": i.tip_header.time,
            "mediantime": i.median_time,
            "verificationprogress": i.verification_progress,
            "initialblockdownload": i.initial_block_download,
            "chainwork": i.tip.chain_work.to_string(),
            "pruned": false,
            "warnings": "",
        }))
    })?;
    reg(m, "getblockhash", |p, c| async move {
        let height: i64 = p.one()?;
        Ok(json!(c.node.block_hash(height).await?.to_string()))
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
        let view = c.node.block(hash).await?;
        if verbosity == 0 {
            return Ok(json!(hex::encode(view.block.block().encode())));
        }
        let hrp = c.node.network().address_hrp();
        let mut v = json::header(&view.header, pow_limit(&c));
        v["size"] = json!(view.block.block().encoded_size());
        v["nTx"] = json!(view.block.block().txs.len());
        v["tx"] = if verbosity >= 2 {
            view.block.block().txs.iter().map(|t| json::tx(t, hrp)).collect()
        } else {
            view.block.txids().iter().map(|t| json!(t.to_string())).collect()
        };
        Ok(v)
    })?;
    reg(m, "getblockheader", |p, c| async move {
        let mut seq = p.sequence();
        let (hash, verbose): (String, Option<bool>) = (seq.next()?, seq.optional_next()?);
        let hash = hash_param(&hash, "blockhash")?;
        let view = c.node.header(hash).await?;
        Ok(if verbose.unwrap_or(true) {
            json::header(&view, pow_limit(&c))
        } else {
            json!(hex::encode(view.header.to_bytes()))
        })
    })?;
    reg(m, "getrawtransaction", |p, c| async move {
        let mut seq = p.sequence();
        let (txid, verbose): (String, Option<Value>) = (seq.next()?, seq.optional_next()?);
        let txid = hash_param(&txid, "txid")?;
        let verbose = matches!(verbose, Some(Value::Bool(true)))
            || matches!(&verbose, Some(Value::Number(n)) if n.as_u64().unwrap_or(0) > 0);
        let view = c.node.transaction(txid).await?;
        if !verbose {
            return Ok(json!(hex::encode(view.tx.encode())));
        }
        let mut v = json::tx(&view.tx, c.node.network().address_hrp());
        if let Some(at) = view.location {
            v["blockhash"] = json!(at.block.to_string());
            v["confirmations"] = json!(at.confirmations);
            v["time"] = json!(at.time);
            v["blocktime"] = json!(at.time);
        }
        Ok(v)
    })?;
    reg(m, "sendrawtransaction", |p, c| async move {
        let hexstr: String = p.sequence().next()?;
        let bytes = hex_param(&hexstr, "hexstring")?;
        // Decoding is CPU work that needs no chain state: done here, off the core.
        let tx = Transaction::decode(&bytes, c.node.network().params().max_tx_size)
            .map_err(|e| err(codes::DESERIALIZATION_ERROR, format!("TX decode failed: {e}")))?;
        Ok(json!(c.node.send_transaction(tx).await?.to_string()))
    })?;
    reg(m, "submitblock", |p, c| async move {
        let hexstr: String = p.sequence().next()?;
        let bytes = hex_param(&hexstr, "hexdata")?;
        let block = Block::decode(&bytes, c.node.network().params().max_block_size)
            .map_err(|e| err(codes::DESERIALIZATION_ERROR, format!("Block decode failed: {e}")))?;
        // BIP 22 result strings: null when accepted, else the reason, naming the rule.
        Ok(match c.node.submit_block(block).await? {
            SubmitOutcome::Accepted => Value::Null,
            SubmitOutcome::Duplicate => json!("duplicate"),
            SubmitOutcome::Orphan { missing } => json!(format!("inconclusive: parent unknown (missing {missing})")),
            SubmitOutcome::Invalid(e) => json!(format!("invalid: {e}")),
        })
    })?;
    reg(m, "getmempoolinfo", |_, c| async move {
        let i = c.node.mempool_info().await?;
        Ok(json!({
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
        }))
    })?;
    reg(m, "getrawmempool", |p, c| async move {
        let verbose: Option<bool> = p.sequence().optional_next()?;
        if !verbose.unwrap_or(false) {
            let txids = c.node.mempool_txids().await?;
            return Ok(json!(txids.iter().map(|t| t.to_string()).collect::<Vec<_>>()));
        }
        let mut out = serde_json::Map::new();
        for (t, e) in c.node.mempool_entries().await? {
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
        Ok(Value::Object(out))
    })?;
    reg(m, "getmininginfo", |_, c| async move {
        let i = c.node.mining_info().await?;
        Ok(json!({
            "blocks": i.tip.height,
            "difficulty": json::difficulty(pow_limit(&c), i.bits),
            "networkhashps": i.network_hashps,
            "pooledtx": i.pooled_tx,
            "chain": c.node.network().name(),
            "mining": i.mining,
            "hashespersec": i.rate.total,
            "threads": i.rate.per_thread.len(),
            "hashespersec_per_thread": i.rate.per_thread,
            "kernel": i.kernel,
        }))
    })?;
    reg(m, "generatetoaddress", |p, c| async move {
        let mut seq = p.sequence();
        let (n, address): (i64, String) = (seq.next()?, seq.next()?);
        if !(1..=10_000).contains(&n) {
            return Err(err(codes::INVALID_PARAMETER, format!("nblocks must be in 1..=10000, got {n}")));
        }
        let lock = address_lock(&address_param(&c, &address)?);
        let hashes = c.node.generate(n as u32, lock).await?;
        Ok(json!(hashes.iter().map(|h| h.to_string()).collect::<Vec<_>>()))
    })?;
    reg(m, "gettxout", |p, c| async move {
        let mut seq = p.sequence();
        let (txid, n, include_mempool): (String, u32, Option<bool>) =
            (seq.next()?, seq.next()?, seq.optional_next()?);
        let txid = hash_param(&txid, "txid")?;
        let hrp = c.node.network().address_hrp();
        Ok(match c.node.tx_out(OutPoint { txid, index: n }, include_mempool.unwrap_or(true)).await? {
            None => Value::Null,
            Some(v) => json!({
                "bestblock": v.tip.hash.to_string(),
                "confirmations": v.confirmations,
                "value": json::coins(v.out.value),
                "scriptPubKey": json::script_pubkey(&v.out.lock.0, hrp),
                "coinbase": v.coinbase,
            }),
        })
    })?;
    reg(m, "gettxoutsetinfo", |_, c| async move {
        let d = c.node.utxo_set_info().await?;
        Ok(json!({
            "height": d.tip.height, "bestblock": d.tip.hash.to_string(), "txouts": d.count,
            "total_amount": d.total as f64 / 1e8, "hash_serialized_3": d.hash.to_string(),
        }))
    })?;
    reg(m, "getchaintips", |_, c| async move {
        let tips = c.node.chain_tips().await?;
        Ok(json!(tips
            .iter()
            .map(|t| json!({ "height": t.height, "hash": t.hash.to_string(), "branchlen": t.branch_len, "status": t.status }))
            .collect::<Vec<_>>()))
    })?;
    reg(m, "invalidateblock", |p, c| async move {
        let hash = hash_param(&p.one::<String>()?, "blockhash")?;
        c.node.invalidate_block(hash).await?;
        Ok(Value::Null)
    })?;
    reg(m, "reconsiderblock", |p, c| async move {
        let hash = hash_param(&p.one::<String>()?, "blockhash")?;
        c.node.reconsider_block(hash).await?;
        Ok(Value::Null)
    })?;
    reg(m, "gettxoutproof", |p, c| async move {
        let mut seq = p.sequence();
        let (txids, blockhash): (Vec<String>, Option<String>) = (seq.next()?, seq.optional_next()?);
        let txids: Vec<_> = txids.iter().map(|t| hash_param(t, "txid")).collect::<Result<_, _>>()?;
        if txids.len() != 1 {
            return Err(err(
                codes::INVALID_PARAMETER,
                format!("give exactly one txid (got {}): proofs cover one transaction", txids.len()),
            ));
        }
        let blockhash = blockhash.map(|b| hash_param(&b, "blockhash")).transpose()?;
        let proof = c.node.tx_proof(txids[0], blockhash).await?;
        Ok(json!(hex::encode(proof.encode())))
    })?;
    reg(m, "verifytxoutproof", |p, c| async move {
        let bytes = hex_param(&p.one::<String>()?, "proof")?;
        let proof = TxProof::decode(&bytes)
            .map_err(|e| err(codes::DESERIALIZATION_ERROR, format!("proof does not decode: {e}")))?;
        let hash = proof.header.hash();
        if !c.node.is_active(hash).await? {
            return Err(err(codes::INVALID_ADDRESS_OR_KEY, format!("Block {hash} not found in the active chain")));
        }
        Ok(if proof.verifies() { json!([proof.txid.to_string()]) } else { json!([]) })
    })?;
    reg(m, "getaddressutxos", |p, c| async move {
        let addrs = address_list(p.one()?)?;
        let locks = address_locks(&c, &addrs)?;
        let coins = c.node.address_coins(locks, MAX_ADDRESS_UTXOS).await?;
        Ok(json!(coins
            .iter()
            .map(|a| json!({
                "address": addrs[a.lock_index], "txid": a.outpoint.txid.to_string(), "outputIndex": a.outpoint.index,
                "script": hex::encode(&a.coin.out.lock.0), "satoshis": a.coin.out.value.to_sat(),
                "height": a.coin.height, "coinbase": a.coin.is_coinbase,
                "spent_in_mempool": a.spent_in_mempool.map(|t| t.to_string()),
            }))
            .collect::<Vec<_>>()))
    })?;
    register_rawtx(m)?;
    reg(m, "getaddresstxids", |p, c| async move {
        let addrs = address_list(p.one()?)?;
        let locks = address_locks(&c, &addrs)?;
        let history = c.node.address_history(locks, MAX_ADDRESS_UTXOS).await?;
        Ok(json!(history.iter().map(|(_, t)| t.to_string()).collect::<Vec<_>>()))
    })?;
    reg(m, "stop", |_, c| async move {
        c.stop.notify_one();
        Ok(json!("quarry stopping"))
    })?;
    Ok(())
}

/// `createrawtransaction` and `signrawtransactionwithkey` (Core's raw-transaction tools, for
/// building a spend by hand before the wallet exists).
pub fn register_rawtx(m: &mut RpcModule<Ctx>) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    reg(m, "createrawtransaction", |p, c| async move {
        let mut seq = p.sequence();
        let (inputs, outputs, locktime): (Vec<Value>, serde_json::Map<String, Value>, Option<u32>) =
            (seq.next()?, seq.next()?, seq.optional_next()?);
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
                address_lock(&address_param(&c, addr)?)
            };
            let value = if addr == "data" { Amount::ZERO } else { parse_coins(amount)? };
            tx.outputs.push(crate::primitives::TxOut { value, lock });
        }
        Ok(json!(hex::encode(tx.encode())))
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
        let mut tx = Transaction::decode(&bytes, c.node.network().params().max_tx_size)
            .map_err(|e| err(codes::DESERIALIZATION_ERROR, format!("TX decode failed: {e}")))?;
        let prevouts: Vec<OutPoint> = tx.inputs.iter().map(|i| i.prevout).collect();
        let spent = c.node.spent_outputs(prevouts).await?;
        // Key derivation and signing are CPU work that needs no chain state: on the blocking
        // pool, never on the core thread or an async worker.
        tokio::task::spawn_blocking(move || {
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
        .await
        .map_err(|e| err(codes::MISC, format!("signing failed: {e}")))?
    })?;
    Ok(())
}

/// An amount in coins (JSON number or string, at most 8 decimals) as base units.
fn parse_coins(v: &Value) -> Result<crate::primitives::Amount, ErrorObjectOwned> {
    json::coins_from_json(v).map_err(|e| err(codes::TYPE_ERROR, e))
}
