//! Bitcoin Core-shaped JSON for blocks, headers and transactions.

use crate::node::HeaderView;
use crate::consensus::pow::target_from_compact;
use crate::primitives::{Amount, Transaction, U256};
use crate::script::templates::{lock_address, Template};
use serde_json::{json, Value};

/// An amount in coins as a JSON number (8 decimals, like Core).
pub fn coins(a: Amount) -> Value {
    json!(a.to_sat() as f64 / 1e8)
}

/// A fee rate in sat per 1000 bytes as coins per kB (Core's unit).
pub fn rate_coins_per_kb(sat_per_kb: u64) -> Value {
    json!(sat_per_kb as f64 / 1e8)
}

/// A 256-bit number as a float (for difficulty and hash-rate estimates).
pub fn u256_f64(v: &U256) -> f64 {
    v.to_f64()
}

/// Difficulty: the network's easiest target divided by the block's target.
pub fn difficulty(pow_limit: &U256, bits: u32) -> f64 {
    match target_from_compact(bits) {
        Ok(t) if !t.is_zero() => u256_f64(pow_limit) / u256_f64(&t),
        _ => 0.0,
    }
}

fn script_type(lock: &[u8]) -> &'static str {
    match Template::classify(lock) {
        Template::P2pkh(_) => "pubkeyhash",
        Template::P2sh(_) => "scripthash",
        Template::Multisig { .. } => "multisig",
        Template::OpReturn => "nulldata",
        Template::NonStandard => "nonstandard",
    }
}

/// `scriptPubKey` object of an output.
pub fn script_pubkey(lock: &[u8], hrp: &'static str) -> Value {
    let mut v = json!({ "hex": hex::encode(lock), "type": script_type(lock) });
    if let Some(a) = lock_address(lock, hrp) {
        v["address"] = json!(a.encode());
    }
    v
}

/// A transaction (getrawtransaction verbose, getblock verbosity 2).
pub fn tx(tx: &Transaction, hrp: &'static str) -> Value {
    let txid = tx.txid();
    let vin: Vec<Value> = tx
        .inputs
        .iter()
        .map(|i| {
            if tx.is_coinbase() {
                json!({ "coinbase": hex::encode(&i.unlock.0) })
            } else {
                json!({
                    "txid": i.prevout.txid.to_string(),
                    "vout": i.prevout.index,
                    "scriptSig": { "hex": hex::encode(&i.unlock.0) },
                })
            }
        })
        .collect();
    let vout: Vec<Value> = tx
        .outputs
        .iter()
        .enumerate()
        .map(|(n, o)| json!({ "value": coins(o.value), "n": n, "scriptPubKey": script_pubkey(&o.lock.0, hrp) }))
        .collect();
    json!({
        "txid": txid.to_string(),
        "hash": txid.to_string(),
        "version": tx.version,
        "size": tx.encoded_size(),
        "locktime": tx.lock_time,
        "vin": vin,
        "vout": vout,
        "hex": hex::encode(tx.encode()),
    })
}

/// A header's JSON (getblockheader, and the common part of getblock).
pub fn header(view: &HeaderView, pow_limit: &U256) -> Value {
    let h = &view.header;
    let mut v = json!({
        "hash": view.hash.to_string(),
        "confirmations": view.confirmations,
        "height": view.height,
        "version": h.version,
        "versionHex": format!("{:08x}", h.version),
        "merkleroot": h.merkle_root.to_string(),
        "time": h.time,
        "mediantime": view.median_time,
        "nonce": h.nonce,
        "bits": format!("{:08x}", h.bits),
        "difficulty": difficulty(pow_limit, h.bits),
        "chainwork": view.chain_work.map(|w| w.to_string()),
    });
    if let Some(hh) = view.height {
        if hh > 0 {
            v["previousblockhash"] = json!(h.prev.to_string());
        }
        if let Some(next) = view.next {
            v["nextblockhash"] = json!(next.to_string());
        }
    }
    v
}
