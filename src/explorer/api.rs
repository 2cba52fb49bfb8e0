//! The node's HTTP API (`quarry node --http ADDR`): read-only JSON under `/api/`, with
//! Esplora's paths where Esplora has the resource, plus chain tips including stale ones, the
//! node's peers, a reorg log and a Server-Sent Events stream of new tips and reorgs. It
//! talks to the core only through [`NodeHandle`] (and to the network service through
//! [`P2pHandle`]). Bad parameters answer 400 with a message naming the parameter and the
//! value, unknown paths 404; nothing here panics on any path.

use super::watch::{Watch, MAX_SUBSCRIBERS};
use crate::httpd::{Answer, Body, Handler, Request, Response};
use crate::node::{NodeError, NodeHandle, TxView};
use crate::p2p::P2pHandle;
use crate::primitives::{Address, Hash256, OutPoint, Transaction, TxOut};
use crate::script::opcodes::{name as op_name, Instruction, Instructions};
use crate::script::templates::{address_lock, lock_address};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Blocks per page of `/api/blocks`.
pub const BLOCKS_PAGE: u32 = 10;
/// Transactions per page of `/api/block/:hash/txs`.
pub const TXS_PAGE: usize = 25;
/// Previous transactions looked up per request to show input values (more: `prevout` null).
pub const MAX_PREVOUT_LOOKUPS: usize = 500;
/// Outputs and history entries listed for an address (more: 400 naming the limit).
pub const ADDRESS_LIMIT: usize = 1000;
/// SSE keep-alive comment interval.
const SSE_KEEPALIVE: Duration = Duration::from_secs(15);

/// The API's state: the core's handle, the network's, and the tip watcher.
pub struct NodeApi {
    node: NodeHandle,
    net: Option<P2pHandle>,
    watch: Arc<Watch>,
}

impl NodeApi {
    /// An API over `node` (and `net`, when networking runs), reporting tips from `watch`.
    pub fn new(node: NodeHandle, net: Option<P2pHandle>, watch: Arc<Watch>) -> NodeApi {
        NodeApi { node, net, watch }
    }
}

/// A failed request: an HTTP status and a message.
struct Fail(u16, String);

impl From<NodeError> for Fail {
    fn from(e: NodeError) -> Fail {
        let status = match &e {
            NodeError::BlockNotFound(_)
            | NodeError::TxNotFound(_)
            | NodeError::HeightOutOfRange { .. }
            | NodeError::TxNotConfirmed(_)
            | NodeError::TxNotInBlock { .. } => 404,
            NodeError::Chain(crate::chain::ChainError::UnknownBlock { .. }) => 404,
            NodeError::Busy(_) | NodeError::Stopped => 503,
            NodeError::TooMany { .. } => 400,
            _ => 500,
        };
        Fail(status, e.to_string())
    }
}

type Res = Result<Response, Fail>;

fn bad(what: &str, value: &str, why: impl std::fmt::Display) -> Fail {
    let shown: String = value.chars().take(80).collect();
    Fail(400, format!("400: invalid {what} '{shown}': {why}"))
}

fn parse_hash(what: &str, s: &str) -> Result<Hash256, Fail> {
    s.parse::<Hash256>().map_err(|e| bad(what, s, e))
}

fn parse_u32(what: &str, s: &str) -> Result<u32, Fail> {
    s.parse::<u32>().map_err(|e| bad(what, s, format!("{e} (expected a number 0..={})", u32::MAX)))
}

fn text(s: impl Into<String>) -> Response {
    Response::bytes(200, "text/plain; charset=utf-8", s.into().into_bytes())
}

impl Handler for NodeApi {
    fn handle(&self, request: Request) -> Answer {
        let node = self.node.clone();
        let net = self.net.clone();
        let watch = self.watch.clone();
        Box::pin(async move {
            let api = Api { node, net, watch };
            let r = match api.route(&request).await {
                Ok(r) => r,
                Err(Fail(status, message)) => Response::text(status, message),
            };
            // Read-only public chain data: any page (the explorer on another port) may read it.
            r.with_header("access-control-allow-origin", "*").with_header("cache-control", "no-store")
        })
    }
}

struct Api {
    node: NodeHandle,
    net: Option<P2pHandle>,
    watch: Arc<Watch>,
}

impl Api {
    async fn route(&self, req: &Request) -> Res {
        let Some(seg) = req.segments("/api/") else {
            return Err(Fail(404, format!("404: no such path {} (the API is under /api/)", req.path)));
        };
        match seg.as_slice() {
            ["blocks", "tip", "height"] => Ok(text(self.node.chain_info().await?.tip.height.to_string())),
            ["blocks", "tip", "hash"] => Ok(text(self.node.chain_info().await?.tip.hash.to_string())),
            ["blocks"] => self.blocks(None).await,
            ["blocks", start] => self.blocks(Some(parse_u32("start height", start)?)).await,
            ["block-height", h] => {
                let h = parse_u32("height", h)?;
                Ok(text(self.node.block_hash(h as i64).await?.to_string()))
            }
            ["block", hash] => self.block(parse_hash("block hash", hash)?).await,
            ["block", hash, "txids"] => {
                let view = self.node.block(parse_hash("block hash", hash)?).await?;
                let ids: Vec<String> = view.block.block().txs.iter().map(|t| t.txid().to_string()).collect();
                Ok(Response::json(&ids))
            }
            ["block", hash, "txs"] => self.block_txs(parse_hash("block hash", hash)?, 0).await,
            ["block", hash, "txs", start] => {
                let start = parse_u32("start index", start)?;
                self.block_txs(parse_hash("block hash", hash)?, start as usize).await
            }
            ["tx", txid] => self.tx(parse_hash("txid", txid)?).await,
            ["tx", txid, "merkle-proof"] => self.merkle_proof(parse_hash("txid", txid)?).await,
            ["address", a] => self.address(a).await,
            ["mempool"] => self.mempool().await,
            ["mempool", "txids"] => {
                let ids: Vec<String> =
                    self.node.mempool_txids().await?.iter().map(|t| t.to_string()).collect();
                Ok(Response::json(&ids))
            }
            ["chaintips"] => {
                let tips: Vec<Value> = self
                    .node
                    .chain_tips()
                    .await?
                    .iter()
                    .map(|t| json!({"hash": t.hash.to_string(), "height": t.height, "branchlen": t.branch_len, "status": t.status}))
                    .collect();
                Ok(Response::json(&tips))
            }
            ["node"] => self.node_info().await,
            ["peers"] => self.peers().await,
            ["reorgs"] => Ok(Response::json(&self.watch.reorgs())),
            ["events"] => self.events(),
            _ => Err(Fail(404, format!("404: no such path {} (see docs/PROTOCOL.md, HTTP API)", req.path))),
        }
    }

    async fn blocks(&self, start: Option<u32>) -> Res {
        let tip = self.node.chain_info().await?.tip.height;
        let start = start.unwrap_or(tip);
        if start > tip {
            return Err(Fail(404, format!("404: start height {start} is above the tip {tip}")));
        }
        let mut out = Vec::new();
        for h in (start.saturating_sub(BLOCKS_PAGE - 1)..=start).rev() {
            let hash = self.node.block_hash(h as i64).await?;
            out.push(self.block_json(hash).await?);
        }
        Ok(Response::json(&out))
    }

    async fn block_json(&self, hash: Hash256) -> Result<Value, Fail> {
        let view = self.node.block(hash).await?;
        let block = view.block.block();
        let params = self.node.network().params();
        let hrp = self.node.network().address_hrp();
        let h = &view.header;
        let reward: u64 =
            block.txs.first().map(|c| c.outputs.iter().map(|o| o.value.to_sat()).sum()).unwrap_or(0);
        let subsidy =
            h.height.map(|height| crate::consensus::validation::block_subsidy(params, height).to_sat());
        let miner = block
            .txs
            .first()
            .and_then(|c| c.outputs.iter().find_map(|o| lock_address(&o.lock.0, hrp)))
            .map(|a| a.encode());
        Ok(json!({
            "id": hash.to_string(),
            "height": h.height,
            "version": h.header.version,
            "timestamp": h.header.time,
            "mediantime": h.median_time,
            "bits": h.header.bits,
            "nonce": h.header.nonce,
            "merkle_root": h.header.merkle_root.to_string(),
            "previousblockhash": h.header.prev.to_string(),
            "nextblockhash": h.next.map(|n| n.to_string()),
            "tx_count": block.txs.len(),
            "size": block.encoded_size(),
            "confirmations": h.confirmations,
            "in_best_chain": h.confirmations >= 1,
            "chainwork": h.chain_work.map(|w| w.to_string()),
            "reward": reward,
            "fees": subsidy.map(|s| reward.saturating_sub(s)),
            "miner": miner,
        }))
    }

    async fn block(&self, hash: Hash256) -> Res {
        Ok(Response::json(&self.block_json(hash).await?))
    }

    async fn block_txs(&self, hash: Hash256, start: usize) -> Res {
        let view = self.node.block(hash).await?;
        let txs = &view.block.block().txs;
        if start >= txs.len() {
            return Err(Fail(
                404,
                format!("404: start index {start} is past the block's {} transactions", txs.len()),
            ));
        }
        let status = json!({
            "confirmed": view.header.confirmations >= 1,
            "block_hash": hash.to_string(),
            "block_height": view.header.height,
            "block_time": view.header.header.time,
            "confirmations": view.header.confirmations,
        });
        let mut budget = MAX_PREVOUT_LOOKUPS;
        let mut out = Vec::new();
        for tx in txs.iter().skip(start).take(TXS_PAGE) {
            out.push(self.tx_json(tx, status.clone(), &mut budget).await);
        }
        Ok(Response::json(&out))
    }

    async fn tx(&self, txid: Hash256) -> Res {
        let TxView { tx, location } = self.node.transaction(txid).await?;
        let status = match location {
            None => json!({"confirmed": false}),
            Some(loc) => {
                let tip = self.node.chain_info().await?.tip.height;
                json!({
                    "confirmed": true,
                    "block_hash": loc.block.to_string(),
                    "block_height": (tip + 1).saturating_sub(loc.confirmations),
                    "block_time": loc.time,
                    "confirmations": loc.confirmations,
                })
            }
        };
        let mut budget = MAX_PREVOUT_LOOKUPS;
        Ok(Response::json(&self.tx_json(&tx, status, &mut budget).await))
    }

    /// The outputs `tx` spends, as far as the budget of lookups goes (the mempool and the
    /// UTXO set first, then the tx index for outputs already spent).
    async fn prevouts(&self, tx: &Transaction, budget: &mut usize) -> Vec<Option<TxOut>> {
        if tx.is_coinbase() {
            return vec![None; tx.inputs.len()];
        }
        let outpoints: Vec<OutPoint> = tx.inputs.iter().map(|i| i.prevout).collect();
        if let Ok(outs) = self.node.spent_outputs(outpoints).await {
            return outs.into_iter().map(Some).collect();
        }
        let mut cache: HashMap<Hash256, Option<Transaction>> = HashMap::new();
        let mut out = Vec::with_capacity(tx.inputs.len());
        for input in &tx.inputs {
            let prev = &input.prevout;
            if !cache.contains_key(&prev.txid) {
                if *budget == 0 {
                    out.push(None);
                    continue;
                }
                *budget -= 1;
                let found = self.node.transaction(prev.txid).await.ok().map(|v| v.tx);
                cache.insert(prev.txid, found);
            }
            let o = cache
                .get(&prev.txid)
                .and_then(|t| t.as_ref())
                .and_then(|t| t.outputs.get(prev.index as usize));
            out.push(o.cloned());
        }
        out
    }

    async fn tx_json(&self, tx: &Transaction, status: Value, budget: &mut usize) -> Value {
        let hrp = self.node.network().address_hrp();
        let prevouts = self.prevouts(tx, budget).await;
        let coinbase = tx.is_coinbase();
        let vin: Vec<Value> = tx
            .inputs
            .iter()
            .zip(&prevouts)
            .map(|(i, p)| {
                json!({
                    "txid": i.prevout.txid.to_string(),
                    "vout": i.prevout.index,
                    "is_coinbase": coinbase,
                    "scriptsig": hex::encode(&i.unlock.0),
                    "scriptsig_asm": asm(&i.unlock.0),
                    "prevout": p.as_ref().map(|o| output_json(o, hrp)),
                })
            })
            .collect();
        let vout: Vec<Value> = tx.outputs.iter().map(|o| output_json(o, hrp)).collect();
        let out_sum: u64 = tx.outputs.iter().map(|o| o.value.to_sat()).sum();
        let fee = if coinbase || prevouts.iter().any(|p| p.is_none()) {
            None
        } else {
            let in_sum: u64 = prevouts.iter().flatten().map(|o| o.value.to_sat()).sum();
            Some(in_sum.saturating_sub(out_sum))
        };
        json!({
            "txid": tx.txid().to_string(),
            "version": tx.version,
            "locktime": tx.lock_time,
            "size": tx.encoded_size(),
            "is_coinbase": coinbase,
            "fee": fee,
            "value_out": out_sum,
            "vin": vin,
            "vout": vout,
            "status": status,
        })
    }

    async fn merkle_proof(&self, txid: Hash256) -> Res {
        let proof = self.node.tx_proof(txid, None).await?;
        let block = proof.header.hash();
        let height = self.node.header(block).await?.height;
        Ok(Response::json(&json!({
            "block_hash": block.to_string(),
            "block_height": height,
            "merkle_root": proof.header.merkle_root.to_string(),
            "pos": proof.proof.index,
            "leaf_count": proof.proof.leaf_count,
            "merkle": proof.proof.siblings.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "verified": proof.verifies(),
        })))
    }

    async fn address(&self, a: &str) -> Res {
        let network = self.node.network();
        let addr = Address::decode(a, network.address_hrp()).map_err(|e| bad("address", a, e))?;
        let lock = address_lock(&addr);
        let coins = self.node.address_coins(vec![lock.clone()], ADDRESS_LIMIT).await?;
        let mut history = self.node.address_history(vec![lock.clone()], ADDRESS_LIMIT).await?;
        history.sort_by(|x, y| y.0.cmp(&x.0));
        let balance: u64 = coins.iter().map(|c| c.coin.out.value.to_sat()).sum();
        let utxos: Vec<Value> = coins
            .iter()
            .map(|c| {
                json!({
                    "txid": c.outpoint.txid.to_string(),
                    "vout": c.outpoint.index,
                    "value": c.coin.out.value.to_sat(),
                    "height": c.coin.height,
                    "coinbase": c.coin.is_coinbase,
                    "spent_in_mempool": c.spent_in_mempool.map(|t| t.to_string()),
                })
            })
            .collect();
        let txs: Vec<Value> =
            history.iter().map(|(h, t)| json!({"txid": t.to_string(), "height": h})).collect();
        Ok(Response::json(&json!({
            "address": addr.encode(),
            "scriptpubkey": hex::encode(&lock.0),
            "scriptpubkey_asm": asm(&lock.0),
            "balance": balance,
            "utxo_count": coins.len(),
            "tx_count": history.len(),
            "utxos": utxos,
            "txs": txs,
        })))
    }

    async fn mempool(&self) -> Res {
        let info = self.node.mempool_info().await?;
        let entries = self.node.mempool_entries().await?;
        Ok(Response::json(&json!({
            "count": info.size,
            "bytes": info.bytes,
            "usage": info.usage,
            "total_fee": info.total_fee.to_sat(),
            "min_fee_rate": info.mempool_min_fee,
            "fee_histogram": fee_histogram(entries.iter().map(|(_, e)| (e.fee.to_sat(), e.size))),
        })))
    }

    async fn node_info(&self) -> Res {
        let info = self.node.chain_info().await?;
        let net = match &self.net {
            Some(n) => n.network_info().await.ok(),
            None => None,
        };
        Ok(Response::json(&json!({
            "network": self.node.network().name(),
            "height": info.tip.height,
            "tip": info.tip.hash.to_string(),
            "headers": info.headers,
            "initial_block_download": info.initial_block_download,
            "peer_id": net.as_ref().map(|n| n.peerid.clone()),
            "listen": net.as_ref().map(|n| n.listenaddrs.clone()).unwrap_or_default(),
            "connections": net.as_ref().map(|n| n.connections).unwrap_or(0),
            "banned": net.as_ref().map(|n| n.banned).unwrap_or(0),
            "networkactive": net.as_ref().is_some_and(|n| n.networkactive),
        })))
    }

    async fn peers(&self) -> Res {
        let peers = match &self.net {
            Some(n) => n.peer_info().await.map_err(|e| Fail(503, e.to_string()))?,
            None => Vec::new(),
        };
        let out: Vec<Value> = peers
            .iter()
            .map(|p| json!({"peer_id": p.peerid, "addr": p.addr, "direction": p.direction, "tip_height": p.tipheight, "ping": p.pingtime}))
            .collect();
        Ok(Response::json(&out))
    }

    fn events(&self) -> Res {
        let Some(mut sub) = self.watch.subscribe() else {
            return Err(Fail(
                503,
                format!("503: {MAX_SUBSCRIBERS} event streams are open (the limit); retry"),
            ));
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<hyper::body::Bytes>(16);
        let hello = json!({"height": self.watch.last().map(|t| t.height), "hash": self.watch.last().map(|t| t.hash.to_string())});
        tokio::spawn(async move {
            if tx.send(sse("hello", &hello).into()).await.is_err() {
                return;
            }
            loop {
                let chunk = tokio::select! {
                    e = sub.recv() => match e {
                        Some(e) => sse(e.kind(), &e),
                        None => return,
                    },
                    _ = tokio::time::sleep(SSE_KEEPALIVE) => ": keep-alive\n\n".to_string(),
                    _ = tx.closed() => return,
                };
                if tx.send(chunk.into()).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response {
            status: 200,
            content_type: "text/event-stream",
            headers: Vec::new(),
            body: Body::Stream(rx),
        })
    }
}

fn sse<T: Serialize>(event: &str, data: &T) -> String {
    format!("event: {event}\ndata: {}\n\n", serde_json::to_string(data).unwrap_or_default())
}

fn output_json(o: &TxOut, hrp: &'static str) -> Value {
    json!({
        "value": o.value.to_sat(),
        "scriptpubkey": hex::encode(&o.lock.0),
        "scriptpubkey_asm": asm(&o.lock.0),
        "scriptpubkey_type": crate::rpc::json::script_type(&o.lock.0),
        "scriptpubkey_address": lock_address(&o.lock.0, hrp).map(|a| a.encode()),
    })
}

/// Fee-rate buckets (base units per byte, lower bounds) of `/api/mempool`'s histogram.
pub const FEE_BUCKETS: [u64; 10] = [0, 1, 2, 5, 10, 20, 50, 100, 200, 500];

/// Counts and bytes of (fee, size) entries by fee-rate bucket.
pub fn fee_histogram(entries: impl Iterator<Item = (u64, usize)>) -> Vec<Value> {
    let mut counts = [(0usize, 0usize); FEE_BUCKETS.len()];
    for (fee, size) in entries {
        let rate = fee / (size.max(1) as u64);
        let i = FEE_BUCKETS.iter().rposition(|b| rate >= *b).unwrap_or(0);
        counts[i].0 += 1;
        counts[i].1 += size;
    }
    FEE_BUCKETS
        .iter()
        .enumerate()
        .map(|(i, min)| json!({"min_rate": min, "max_rate": FEE_BUCKETS.get(i + 1), "count": counts[i].0, "bytes": counts[i].1}))
        .collect()
}

/// A script as text: opcodes by name, pushes as hex (`OP_DUP OP_HASH256 <32 bytes hex>
/// OP_EQUALVERIFY OP_CHECKSIG`); an undecodable tail shows as `[error: ...]`.
pub fn asm(script: &[u8]) -> String {
    let mut out = Vec::new();
    for item in Instructions::new(script) {
        match item {
            Ok((_, Instruction::Push(d))) if d.is_empty() => out.push("OP_0".to_string()),
            Ok((_, Instruction::Push(d))) => out.push(hex::encode(d)),
            Ok((_, Instruction::Number(n))) => out.push(format!("OP_{n}")),
            Ok((_, Instruction::Op(op))) => out.push(match op_name(op) {
                Some(n) => n.to_string(),
                None => format!("OP_UNKNOWN_0x{op:02x}"),
            }),
            Err(e) => {
                out.push(format!("[error: {e}]"));
                break;
            }
        }
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asm_names_opcodes_and_pushes() {
        let lock = crate::script::templates::p2pkh(&[7u8; 32]);
        let a = asm(&lock.0);
        assert!(a.starts_with("OP_DUP OP_HASH256 0707"), "{a}");
        assert!(a.ends_with("OP_EQUALVERIFY OP_CHECKSIG"), "{a}");
        assert!(asm(&[0x05, 0x01]).starts_with("[error: "), "{}", asm(&[0x05, 0x01]));
        assert_eq!(asm(&[0x00, 0x52, 0xfe]), "OP_0 OP_2 OP_UNKNOWN_0xfe");
    }

    #[test]
    fn fee_histogram_buckets_by_rate() {
        let h = fee_histogram([(100, 100), (1000, 100), (5, 100)].into_iter());
        assert_eq!(h[0]["count"], 1); // 0.05/byte
        assert_eq!(h[1]["count"], 1); // 1/byte
        assert_eq!(h[4]["count"], 1); // 10/byte
        assert_eq!(h.iter().map(|b| b["bytes"].as_u64().unwrap()).sum::<u64>(), 300);
    }
}
