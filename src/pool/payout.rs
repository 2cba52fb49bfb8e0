//! Payout transactions, pure: who can be paid, from which of the pool's coins, and the signed
//! transaction (docs/PROTOCOL.md §12d "Payouts"). The task that runs them against the node is
//! [`super::payer`].
//!
//! - **Addresses.** A worker named `ADDRESS` or `ADDRESS.RIG` (an address of the pool's
//!   network, then optionally `.` and anything) is paid at `ADDRESS`; a worker listed in
//!   `<pool dir>/addresses.txt` (`WORKER ADDRESS` a line) is paid at the address listed there,
//!   which wins. Other workers' balances stay owed.
//! - **Who.** Workers owed at least the minimum payout, in name order, each while the pool's
//!   spendable coins cover it (under PPS the pool can owe more than it has mined).
//! - **Coins.** The pool's mature coins, oldest first, until they cover the payments.
//! - **Fee.** `fee rate × the signed size` (sat per 1000 bytes, rounded up), taken from the
//!   payments in proportion to their amounts (each part rounded down, the sats rounding
//!   leaves taken one each from the first payees): a worker's balance goes down by its whole
//!   payment, its output is the payment less its fee part. Change of at least [`DUST`] goes
//!   back to the pool; smaller change is left to the fee.

use crate::primitives::{Address, Amount, OutPoint, Script, Transaction, TxIn, TxOut};
use crate::script::templates::{address_lock, p2pkh_unlock};
use crate::script::{sighash, SighashCache};
use ed25519_dalek::{Signer, SigningKey};
use std::collections::BTreeMap;

/// Outputs below this many base units are not made (the wallet's dust rule).
pub const DUST: u64 = 1_000;
/// Workers paid by one transaction at most (the rest wait for the next).
pub const MAX_PAYEES: usize = 200;
/// Coins spent by one transaction at most.
pub const MAX_INPUTS: usize = 500;

/// A coin of the pool's.
#[derive(Clone, Debug, PartialEq)]
pub struct Coin {
    /// Where it is.
    pub outpoint: OutPoint,
    /// What it is.
    pub out: TxOut,
    /// Its block's height.
    pub height: u32,
}

/// A payout, built and not yet signed.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The transaction (unlock scripts empty).
    pub tx: Transaction,
    /// The outputs its inputs spend, in order.
    pub spent: Vec<TxOut>,
    /// Per worker: what it settles (output part + fee part).
    pub payments: Vec<(String, u64)>,
    /// Per address: what it receives.
    pub outputs: Vec<(String, u64)>,
    /// The fee split over the payments.
    pub fee: u64,
    /// Change below [`DUST`] left to the fee on top (the transaction's fee is `fee + dust`).
    pub dust: u64,
}

/// The address a worker is paid at: its `addresses.txt` entry, else its name up to the first
/// `.` if that is an address of the network whose prefix is `hrp`.
pub fn payout_address(
    worker: &str,
    registered: &BTreeMap<String, String>,
    hrp: &'static str,
) -> Option<Address> {
    if let Some(a) = registered.get(worker) {
        return Address::decode(a, hrp).ok();
    }
    let head = worker.split('.').next().unwrap_or(worker);
    Address::decode(head, hrp).ok()
}

/// Parses `addresses.txt`: `WORKER ADDRESS` a line; blank lines and `#` comments skipped.
/// Returns the entries and the lines that are not entries (1-based, for a warning).
pub fn parse_addresses(text: &str) -> (BTreeMap<String, String>, Vec<usize>) {
    let mut map = BTreeMap::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(w), Some(a), None) => {
                map.insert(w.to_string(), a.to_string());
            }
            _ => bad.push(i + 1),
        }
    }
    (map, bad)
}

/// The transaction's size once signed (every input a P2PKH unlock: 64-byte signature, 32-byte
/// key).
fn signed_size(tx: &Transaction) -> usize {
    let mut t = tx.clone();
    for i in &mut t.inputs {
        i.unlock = p2pkh_unlock(&[0; 64], &[0; 32]);
    }
    t.encode().len()
}

/// Plans a payout of `owed` (worker, amount; name order) from `coins` at `fee_rate` sat/kB,
/// change to `pool_lock`. `None` when nobody can be paid now.
pub fn plan(
    owed: &[(String, u64)],
    address_of: impl Fn(&str) -> Option<Address>,
    coins: &[Coin],
    fee_rate: u64,
    min_payout: u64,
    pool_lock: &Script,
) -> Option<Plan> {
    let mut coins: Vec<&Coin> = coins.iter().collect();
    coins.sort_by(|a, b| a.height.cmp(&b.height).then(a.outpoint.cmp(&b.outpoint)));
    coins.truncate(MAX_INPUTS);
    let mut available: u64 = coins.iter().map(|c| c.out.value.to_sat()).sum();
    // Who: owed enough, with an address, while the coins cover it.
    let mut payees: Vec<(String, u64, Address)> = Vec::new();
    for (worker, amount) in owed {
        if payees.len() >= MAX_PAYEES {
            break;
        }
        if *amount < min_payout.max(DUST) || *amount > available {
            continue;
        }
        if let Some(addr) = address_of(worker) {
            available -= amount;
            payees.push((worker.clone(), *amount, addr));
        }
    }
    if payees.is_empty() {
        return None;
    }
    let total: u64 = payees.iter().map(|p| p.1).sum();
    // Coins, oldest first, until they cover the payments (the fee is inside them).
    let mut chosen = Vec::new();
    let mut have = 0u64;
    for c in coins {
        if have >= total {
            break;
        }
        have += c.out.value.to_sat();
        chosen.push(c);
    }
    // One output per address (workers sharing one are summed), in first-payee order.
    let mut by_addr: Vec<(Address, u64)> = Vec::new();
    let outputs_for = |parts: &[u64]| -> Vec<(Address, u64)> {
        let mut v: Vec<(Address, u64)> = Vec::new();
        for ((_, amount, addr), fee) in payees.iter().zip(parts) {
            match v.iter_mut().find(|(a, _)| a == addr) {
                Some(o) => o.1 += amount - fee,
                None => v.push((addr.clone(), amount - fee)),
            }
        }
        v
    };
    let change = have - total;
    let build = |outs: &[(Address, u64)], with_change: bool| {
        let mut outputs: Vec<TxOut> = outs
            .iter()
            .map(|(a, v)| TxOut {
                value: Amount::from_sat(*v).expect("below the coins' total"),
                lock: address_lock(a),
            })
            .collect();
        if with_change {
            outputs.push(TxOut {
                value: Amount::from_sat(change).expect("below the coins' total"),
                lock: pool_lock.clone(),
            });
        }
        Transaction {
            version: 1,
            inputs: chosen.iter().map(|c| TxIn { prevout: c.outpoint, unlock: Script::default() }).collect(),
            outputs,
            lock_time: 0,
        }
    };
    let with_change = change >= DUST;
    // The size does not depend on the output values (fixed-width amounts), so measure it with
    // the fee parts still zero.
    by_addr.extend(outputs_for(&vec![0; payees.len()]));
    let size = signed_size(&build(&by_addr, with_change)) as u64;
    let fee = (fee_rate * size).div_ceil(1000);
    let mut parts: Vec<u64> =
        payees.iter().map(|p| ((fee as u128 * p.1 as u128) / total as u128) as u64).collect();
    let mut left = fee - parts.iter().sum::<u64>();
    for (part, p) in parts.iter_mut().zip(&payees) {
        if left == 0 {
            break;
        }
        if *part < p.1 {
            *part += 1;
            left -= 1;
        }
    }
    if left > 0 || payees.iter().zip(&parts).any(|(p, f)| p.1 < f + DUST) {
        return None; // the fee would eat the payments
    }
    let outs = outputs_for(&parts);
    let tx = build(&outs, with_change);
    let spent = chosen.iter().map(|c| c.out.clone()).collect();
    Some(Plan {
        tx,
        spent,
        payments: payees.iter().map(|p| (p.0.clone(), p.1)).collect(),
        outputs: outs.iter().map(|(a, v)| (a.encode(), *v)).collect(),
        fee,
        dust: if with_change { 0 } else { change },
    })
}

/// Signs every input of `plan` with the pool's key (its coins are P2PKH of that key).
pub fn sign(plan: &Plan, key: &SigningKey) -> Transaction {
    let mut tx = plan.tx.clone();
    let cache = SighashCache::new(&tx);
    let pk = key.verifying_key().to_bytes();
    let unlocks: Vec<Script> = plan
        .spent
        .iter()
        .enumerate()
        .map(|(i, out)| p2pkh_unlock(&key.sign(&sighash(&tx, &cache, i, out).0).to_bytes(), &pk))
        .collect();
    for (input, unlock) in tx.inputs.iter_mut().zip(unlocks) {
        input.unlock = unlock;
    }
    tx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::{AddressKind, Hash256};
    use crate::script::templates::p2pkh;

    const HRP: &str = "qdev";

    fn addr(i: u8) -> Address {
        Address { hrp: HRP, kind: AddressKind::P2pkh, hash: [i; 32] }
    }

    fn coin(i: u8, height: u32, value: u64) -> Coin {
        Coin {
            outpoint: OutPoint { txid: Hash256([i; 32]), index: 0 },
            out: TxOut { value: Amount::from_sat(value).unwrap(), lock: p2pkh(&[9; 32]) },
            height,
        }
    }

    fn owed(v: &[(&str, u64)]) -> Vec<(String, u64)> {
        v.iter().map(|(w, a)| (w.to_string(), *a)).collect()
    }

    #[test]
    fn workers_are_paid_at_their_name_or_their_registered_address() {
        let a = addr(1).encode();
        let (reg, bad) =
            parse_addresses(&format!("# comment\nbob {}\n\nbroken line here\ncarol\n", addr(2).encode()));
        assert_eq!(bad, vec![4, 5]);
        assert_eq!(payout_address(&a, &reg, HRP), Some(addr(1)));
        assert_eq!(payout_address(&format!("{a}.rig7"), &reg, HRP), Some(addr(1)));
        assert_eq!(payout_address("bob", &reg, HRP), Some(addr(2)));
        assert_eq!(payout_address("alice", &reg, HRP), None);
        assert_eq!(
            payout_address(&addr(1).encode().replace("qdev", "qrt"), &reg, HRP),
            None,
            "another network"
        );
    }

    #[test]
    fn a_payout_splits_the_fee_by_amount_and_returns_the_change() {
        let pool = p2pkh(&[9; 32]);
        let who = |w: &str| match w {
            "a" => Some(addr(1)),
            "b" | "b2" => Some(addr(2)),
            _ => None,
        };
        let coins = [coin(2, 5, 3_000_000), coin(1, 3, 2_000_000)];
        let o = owed(&[("a", 1_000_000), ("b", 2_000_000), ("b2", 500_000), ("nobody", 9_000_000)]);
        let p = plan(&o, who, &coins, 1_000, 100_000, &pool).unwrap();
        assert_eq!(p.payments, owed(&[("a", 1_000_000), ("b", 2_000_000), ("b2", 500_000)]));
        // Oldest coin first; both needed for 3.5 M.
        assert_eq!(p.tx.inputs[0].prevout.txid, Hash256([1; 32]));
        assert_eq!(p.tx.inputs.len(), 2);
        let size = signed_size(&p.tx) as u64;
        assert_eq!(p.fee, size, "1000 sat/kB: one sat a byte");
        // Fee parts: floor(fee * amount / 3.5 M), the remainder one sat each from the first.
        let mut parts: Vec<u64> =
            [1_000_000u64, 2_000_000, 500_000].iter().map(|a| p.fee * a / 3_500_000).collect();
        let rem = p.fee - parts.iter().sum::<u64>();
        for part in parts.iter_mut().take(rem as usize) {
            *part += 1;
        }
        assert_eq!(
            p.outputs,
            vec![
                (addr(1).encode(), 1_000_000 - parts[0]),
                (addr(2).encode(), 2_500_000 - parts[1] - parts[2])
            ]
        );
        assert_eq!(p.tx.outputs.len(), 3, "two payees and the change");
        assert_eq!(p.tx.outputs[2].value.to_sat(), 1_500_000);
        assert_eq!(p.tx.outputs[2].lock, pool);
        let paid_out: u64 = p.tx.outputs.iter().map(|o| o.value.to_sat()).sum();
        assert_eq!(paid_out + p.fee, 5_000_000, "inputs = outputs + fee");
        // Signing fills unlocks of the measured size.
        let key = SigningKey::from_bytes(&[7; 32]);
        assert_eq!(sign(&p, &key).encode().len() as u64, size);
    }

    #[test]
    fn nobody_is_paid_below_the_minimum_or_beyond_the_coins() {
        let pool = p2pkh(&[9; 32]);
        let who = |_: &str| Some(addr(1));
        let coins = [coin(1, 3, 1_000_000)];
        assert_eq!(
            plan(&owed(&[("a", 50_000)]), who, &coins, 1_000, 100_000, &pool),
            None,
            "below the minimum"
        );
        assert_eq!(
            plan(&owed(&[("a", 2_000_000)]), who, &coins, 1_000, 100_000, &pool),
            None,
            "more than the pool has"
        );
        let p = plan(&owed(&[("a", 2_000_000), ("b", 999_500)]), who, &coins, 1_000, 100_000, &pool).unwrap();
        assert_eq!(p.payments, owed(&[("b", 999_500)]), "the next worker that fits");
        assert_eq!(p.tx.outputs.len(), 1, "500 sat of change is left to the fee");
        assert_eq!((p.fee, p.dust), (signed_size(&p.tx) as u64, 500));
        assert_eq!(
            plan(&owed(&[("a", 2_000)]), who, &coins, 1_000_000, 1_000, &pool),
            None,
            "the fee eats it"
        );
    }
}
