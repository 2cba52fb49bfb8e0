//! Bitcoin Core-shaped JSON for blocks, headers and transactions.

use crate::consensus::pow::target_from_compact;
use crate::node::HeaderView;
use crate::primitives::{Amount, AmountError, Transaction, U256};
use crate::script::templates::{lock_address, Template};
use serde_json::{json, Value};

/// An amount in coins as a JSON number (8 decimals, like Core).
pub fn coins(a: Amount) -> Value {
    json!(a.to_sat() as f64 / 1e8)
}

/// An amount of coins from JSON-RPC parameters: a JSON number, or a string of plain decimal
/// digits as the wallet CLI takes them. It works on the number's exact decimal text (serde_json
/// prints a parsed number as the shortest decimal that reads back to the same value: `1e-6`,
/// `50.0`, `49.123456789`), never through float arithmetic, so an over-precise amount is
/// refused rather than rounded. Every amount up to the money supply with at most 8 decimals
/// round-trips exactly through [`coins`]. Refusals name the value and the rule: negative, more
/// than 8 decimals, above the money supply, not a number.
pub fn coins_from_json(v: &Value) -> Result<Amount, String> {
    match v {
        Value::String(s) => Amount::from_coins_str(s).map_err(|e| e.to_string()),
        Value::Number(n) => {
            let text = n.to_string();
            let refuse = |why: &str| format!("invalid amount {text}: {why}");
            if text.starts_with('-') {
                return Err(refuse("negative amounts are not allowed"));
            }
            let plain = plain_decimal(&text).ok_or_else(|| refuse("not a decimal number"))?;
            Amount::from_coins_str(&plain).map_err(|e| match e {
                AmountError::Parse { why, .. } => refuse(&why),
                other => refuse(&other.to_string()),
            })
        }
        _ => Err(format!("invalid amount {v}: an amount is a number of coins with at most 8 decimals")),
    }
}

/// Unsigned decimal text with an optional exponent (`1e-6`, `5E+1`, `1.25`) rewritten exactly
/// as digits with at most one point (`0.000001`, `50`, `1.25`), for
/// [`Amount::from_coins_str`] to judge. An exponent far out of range is clamped just past what
/// that parser accepts (a tenth of a base unit, or 10^21 coins), which keeps the text short
/// and yields the same refusal.
fn plain_decimal(text: &str) -> Option<String> {
    let (mantissa, exp) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], text[i + 1..].parse::<i64>().ok()?),
        None => (text, 0),
    };
    let (whole, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() || !whole.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    // The value is 0.<digits> * 10^point.
    let all = format!("{whole}{frac}");
    let digits = all.trim_start_matches('0');
    let point = whole.len() as i64 - (all.len() - digits.len()) as i64 + exp;
    let digits = digits.trim_end_matches('0');
    if digits.is_empty() {
        return Some("0".into());
    }
    let point = point.clamp(-9, 22);
    Some(if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        let (w, f) = digits.split_at(point as usize);
        format!("{w}.{f}")
    })
}

/// An amount in coins as a float (8 decimals, like Core).
pub fn coins_f64(a: Amount) -> f64 {
    a.to_sat() as f64 / 1e8
}

/// A fee rate in base units per 1000 bytes as coins per kB (Core's unit), as a float.
pub fn rate_f64(per_kb: u64) -> f64 {
    per_kb as f64 / 1e8
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

/// Core's name for an output script's template.
pub fn script_type(lock: &[u8]) -> &'static str {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `text` read as a JSON value, as the RPC server reads parameters.
    fn from(text: &str) -> Result<Amount, String> {
        coins_from_json(&serde_json::from_str(text).unwrap())
    }

    fn sat(text: &str) -> u64 {
        from(text).unwrap_or_else(|e| panic!("{text}: {e}")).to_sat()
    }

    fn refused(text: &str, rule: &str) {
        let e = from(text).expect_err(text);
        assert!(e.contains(rule), "{text}: {e}");
    }

    #[test]
    fn exact_decimal_text_is_parsed() {
        assert_eq!(sat("49.12345678"), 4_912_345_678);
        assert_eq!(sat("1e-6"), 100);
        assert_eq!(sat("1E-6"), 100);
        assert_eq!(sat("5E+1"), 50 * 100_000_000);
        assert_eq!(sat("5e1"), 50 * 100_000_000);
        assert_eq!(sat("1.5e-7"), 15);
        assert_eq!(sat("0.00000001"), 1);
        assert_eq!(sat("0"), 0);
        assert_eq!(sat("0.0"), 0);
        assert_eq!(sat("0e-400"), 0);
        assert_eq!(sat("12"), 1_200_000_000);
        assert_eq!(sat("21000000"), crate::primitives::amount::MAX_MONEY);
        assert_eq!(sat("20999999.99999999"), crate::primitives::amount::MAX_MONEY - 1);
        assert_eq!(sat("\"12.5\""), 1_250_000_000);
    }

    #[test]
    fn over_precise_negative_and_too_large_amounts_are_refused_naming_value_and_rule() {
        refused("49.123456789", "invalid amount 49.123456789: more than 8 decimal places");
        refused("1e-9", "more than 8 decimal places");
        refused("1.5e-8", "more than 8 decimal places");
        refused("1e-300", "more than 8 decimal places");
        refused("0.000000011", "more than 8 decimal places");
        refused("-1", "invalid amount -1: negative");
        refused("-0.5", "negative");
        refused("-1e-6", "negative");
        refused(
            "21000000.00000001",
            "invalid amount 21000000.00000001: exceeds the maximum of 21000000 coins",
        );
        refused("21000001", "exceeds the maximum");
        refused("1e300", "exceeds the maximum");
        refused("18446744073709551615", "exceeds the maximum");
        refused("\"1.123456789\"", "more than 8 decimal places");
        refused("\"1e-6\"", "no exponent");
        refused("\"-1\"", "no sign");
        refused("true", "invalid amount true");
        refused("null", "at most 8 decimals");
    }

    #[test]
    fn every_amount_round_trips_through_its_json_number() {
        let max = crate::primitives::amount::MAX_MONEY;
        let mut samples: Vec<u64> = (0..2_000).chain(max - 2_000..=max).collect();
        samples.extend((0..20_000u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % (max + 1)));
        for s in samples {
            let json = coins(Amount::from_sat(s).unwrap());
            let back: Value = serde_json::from_str(&json.to_string()).unwrap();
            assert_eq!(coins_from_json(&back).map(Amount::to_sat), Ok(s), "{json}");
        }
    }

    #[test]
    fn plain_decimal_shifts_exactly() {
        for (text, plain) in [
            ("1e-6", "0.000001"),
            ("1.25", "1.25"),
            ("125e-2", "1.25"),
            ("0.0125e2", "1.25"),
            ("5E+1", "50"),
            ("007.50", "7.5"),
            ("1e-400", "0.0000000001"),
            ("1e400", "1000000000000000000000"),
        ] {
            assert_eq!(plain_decimal(text).as_deref(), Some(plain), "{text}");
        }
        for bad in ["", ".5", "1e", "1x", "1.2.3", "e5", "1e+-2"] {
            assert_eq!(plain_decimal(bad), None, "{bad}");
        }
    }
}
