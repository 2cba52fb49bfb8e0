//! 2-of-3 style escrow: t-of-n multisig behind a P2SH address, spent through a partially
//! signed transaction file that each cosigner signs with their own wallet.
//!
//! The file (JSON, `quarry-psbt/1`) holds the unsigned transaction, the redeem script, the
//! threshold and keys, and for every input the spent output (value and locking script) and one
//! signature slot per key. Signatures commit to the sighash (§10 of docs/PROTOCOL.md), which
//! excludes unlock data, so cosigners can sign in any order.

use super::keystore::{MultisigRecord, Wallet};
use super::ops::{Utxo, WalletError};
use crate::primitives::{Address, AddressKind, Amount, Script, Transaction, TxIn, TxOut};
use crate::script::templates::{address_lock, multisig, multisig_unlock, p2sh_unlock, script_hash, Template};
use crate::script::{sighash, SighashCache};
use ed25519_dalek::Signer;
use serde::{Deserialize, Serialize};

/// Format tag of the file.
pub const PSBT_FORMAT: &str = "quarry-psbt/1";

/// One input of a partially signed transaction.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PsbtInput {
    /// Value of the spent output, base units.
    pub value: u64,
    /// Locking script of the spent output (the P2SH script), hex.
    pub lock: String,
    /// One slot per key, in key order: a hex signature or null.
    pub signatures: Vec<Option<String>>,
}

/// A partially signed multisig spend.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Psbt {
    pub format: String,
    pub network: String,
    /// The transaction without unlock data, hex.
    pub tx: String,
    pub threshold: usize,
    /// Member public keys, hex, in redeem-script order.
    pub pubkeys: Vec<String>,
    /// The redeem script, hex.
    pub redeem_script: String,
    pub inputs: Vec<PsbtInput>,
}

/// A local refusal (the file, the keys, this wallet): not the node's fault.
fn bad(detail: impl Into<String>) -> WalletError {
    WalletError::Refused(detail.into())
}

/// The redeem script and P2SH address of a `threshold`-of-`keys.len()` escrow.
pub fn escrow(
    hrp: &'static str,
    threshold: usize,
    keys: &[[u8; 32]],
) -> Result<(Script, Address), WalletError> {
    if keys.is_empty()
        || keys.len() > crate::script::MAX_MULTISIG_KEYS
        || threshold == 0
        || threshold > keys.len()
    {
        return Err(bad(format!(
            "a multisig needs 1 <= threshold <= keys <= {}: got {threshold} of {}",
            crate::script::MAX_MULTISIG_KEYS,
            keys.len()
        )));
    }
    let mut sorted = keys.to_vec();
    sorted.sort();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(bad("the same public key appears twice"));
    }
    let redeem = multisig(threshold, keys);
    Ok((redeem.clone(), Address { hrp, kind: AddressKind::P2sh, hash: script_hash(&redeem) }))
}

/// What a signature slot holds: `Ok(None)` nothing, `Ok(Some(sig))` a valid signature by
/// `pubkey` over `msg`, `Err(why)` something that is not one (the script would fail on it:
/// NULLFAIL).
fn slot_signature(
    slot: &Option<String>,
    pubkey: &[u8; 32],
    msg: &[u8],
) -> Result<Option<[u8; 64]>, &'static str> {
    let Some(h) = slot else { return Ok(None) };
    let sig = hex::decode(h)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .ok_or("is not a 64-byte signature in hex (truncated or corrupt)")?;
    if crate::script::sig::verify_one(pubkey, &sig, msg) {
        Ok(Some(sig))
    } else {
        Err("holds a signature that does not verify (another key's, or over another transaction)")
    }
}

/// True if `slot` holds a valid signature by `pubkey` over `msg`.
fn slot_is_valid(slot: &Option<String>, pubkey: &[u8; 32], msg: &[u8]) -> bool {
    matches!(slot_signature(slot, pubkey, msg), Ok(Some(_)))
}

/// Parses a 32-byte public key in hex.
pub fn parse_pubkey(s: &str) -> Result<[u8; 32], WalletError> {
    hex::decode(s)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| bad(format!("public key {s:?} is not 64 hex digits")))
}

impl Psbt {
    /// A spend of `coins` (all paying the escrow) sending `amount` to `to`, change back to the
    /// escrow, at `fee_rate` sat/kB.
    pub fn create(
        network: &str,
        rec: &MultisigRecord,
        coins: &[Utxo],
        to: &Address,
        amount: Amount,
        fee_rate: u64,
    ) -> Result<Psbt, WalletError> {
        let redeem = Script(hex::decode(&rec.redeem_script_hex).map_err(|e| bad(e.to_string()))?);
        let escrow_lock = crate::script::templates::p2sh(&redeem);
        let total = Amount::sum(coins.iter().map(|u| u.out.value))?;
        // Unlock: n slot pushes (1 or 65 bytes) plus the redeem script push.
        if amount == Amount::ZERO {
            return Err(WalletError::ZeroAmount);
        }
        let empty_slots = rec
            .pubkeys
            .len()
            .checked_sub(rec.threshold)
            .ok_or_else(|| bad("escrow record: threshold above key count"))?;
        // Slot pushes, the redeem-script push (up to 3 bytes of opcode and length) and 9 bytes
        // for the u32 length prefix and rounding.
        let unlock_size = rec.threshold * 65 + empty_slots + redeem.len() + 3 + 9;
        let size = 4 + 4 + coins.len() * (40 + unlock_size) + 4 + 2 * 49 + 4;
        let fee = Amount::from_sat((fee_rate.min(super::ops::MAX_FEE_RATE) * size as u64).div_ceil(1000))?;
        let needed = amount.checked_add(fee)?;
        if total < needed {
            return Err(WalletError::InsufficientFunds { amount, fee, needed, available: total });
        }
        let mut outputs = vec![TxOut { value: amount, lock: address_lock(to) }];
        let change = total.checked_sub(needed)?;
        if change.to_sat() >= super::ops::DUST {
            outputs.push(TxOut { value: change, lock: escrow_lock.clone() });
        }
        let tx = Transaction {
            version: 1,
            inputs: coins.iter().map(|u| TxIn { prevout: u.outpoint, unlock: Script::default() }).collect(),
            outputs,
            lock_time: 0,
        };
        Ok(Psbt {
            format: PSBT_FORMAT.into(),
            network: network.into(),
            tx: hex::encode(tx.encode()),
            threshold: rec.threshold,
            pubkeys: rec.pubkeys.iter().map(hex::encode).collect(),
            redeem_script: rec.redeem_script_hex.clone(),
            inputs: coins
                .iter()
                .map(|u| PsbtInput {
                    value: u.out.value.to_sat(),
                    lock: hex::encode(&u.out.lock.0),
                    signatures: vec![None; rec.pubkeys.len()],
                })
                .collect(),
        })
    }

    /// Parses the JSON of a partially signed transaction file (untrusted: it travels between
    /// cosigners). Only the shape is checked here; [`Psbt::sign`], [`Psbt::describe`] and
    /// [`Psbt::finalize`] check the contents.
    pub fn from_json(text: &str) -> Result<Psbt, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Checks the file's internal consistency and returns (tx, spent outputs, keys, redeem).
    fn parts(&self, network: &str) -> Result<(Transaction, Vec<TxOut>, Vec<[u8; 32]>, Script), WalletError> {
        if self.format != PSBT_FORMAT {
            return Err(bad(format!("not a {PSBT_FORMAT} file (format {:?})", self.format)));
        }
        if self.network != network {
            return Err(bad(format!("the file is for network {}, this wallet is {network}", self.network)));
        }
        let tx = Transaction::decode(&hex::decode(&self.tx).map_err(|e| bad(e.to_string()))?, 1_000_000)
            .map_err(|e| bad(format!("transaction: {e}")))?;
        let keys: Vec<[u8; 32]> = self.pubkeys.iter().map(|k| parse_pubkey(k)).collect::<Result<_, _>>()?;
        let redeem = Script(hex::decode(&self.redeem_script).map_err(|e| bad(e.to_string()))?);
        if Template::classify(&redeem.0)
            != (Template::Multisig { threshold: self.threshold, keys: keys.clone() })
        {
            return Err(bad("the redeem script does not match the threshold and keys"));
        }
        if tx.inputs.len() != self.inputs.len() {
            return Err(bad(format!(
                "{} inputs in the transaction, {} in the file",
                tx.inputs.len(),
                self.inputs.len()
            )));
        }
        let expected_lock = crate::script::templates::p2sh(&redeem);
        let mut spent = Vec::with_capacity(self.inputs.len());
        for (i, inp) in self.inputs.iter().enumerate() {
            let lock = Script(hex::decode(&inp.lock).map_err(|e| bad(e.to_string()))?);
            if lock != expected_lock {
                return Err(bad(format!("input {i} does not spend this escrow")));
            }
            if inp.signatures.len() != keys.len() {
                return Err(bad(format!(
                    "input {i} has {} signature slots for {} keys",
                    inp.signatures.len(),
                    keys.len()
                )));
            }
            spent.push(TxOut { value: Amount::from_sat(inp.value)?, lock });
        }
        Ok((tx, spent, keys, redeem))
    }

    /// Adds this wallet's signatures. Refuses a wallet holding no member key, and a wallet
    /// whose keys have all signed already.
    pub fn sign(&mut self, wallet: &Wallet) -> Result<usize, WalletError> {
        let (tx, spent, keys, _) = self.parts(wallet.network().name())?;
        let mine: Vec<(usize, ed25519_dalek::SigningKey)> = keys
            .iter()
            .enumerate()
            .filter_map(|(slot, pk)| {
                let (_, sk) = wallet.key_for_hash(&crate::script::templates::pubkey_hash(pk))?;
                (sk.verifying_key().to_bytes() == *pk).then_some((slot, sk))
            })
            .collect();
        if mine.is_empty() {
            return Err(bad("this wallet holds none of the escrow's keys: it cannot sign"));
        }
        let cache = SighashCache::new(&tx);
        let msgs: Vec<_> = spent.iter().enumerate().map(|(i, out)| sighash(&tx, &cache, i, out)).collect();
        // A slot counts as signed only if it holds a valid signature; junk is replaced.
        let valid =
            |i: usize, slot: usize| slot_is_valid(&self.inputs[i].signatures[slot], &keys[slot], &msgs[i].0);
        if mine.iter().all(|(slot, _)| (0..self.inputs.len()).all(|i| valid(i, *slot))) {
            return Err(bad("this wallet has already signed this file"));
        }
        let mut added = 0;
        for (i, msg) in msgs.iter().enumerate() {
            for (slot, sk) in &mine {
                if !slot_is_valid(&self.inputs[i].signatures[*slot], &keys[*slot], &msg.0) {
                    self.inputs[i].signatures[*slot] = Some(hex::encode(sk.sign(&msg.0).to_bytes()));
                    added += 1;
                }
            }
        }
        Ok(added)
    }

    /// A human summary of what the transaction does: each output, and the fee.
    pub fn describe(&self, hrp: &'static str) -> Result<(Vec<(String, Amount)>, Amount), WalletError> {
        let tx = Transaction::decode(&hex::decode(&self.tx).map_err(|e| bad(e.to_string()))?, 1_000_000)
            .map_err(|e| bad(format!("transaction: {e}")))?;
        let outs: Vec<(String, Amount)> = tx
            .outputs
            .iter()
            .map(|o| {
                let who = crate::script::templates::lock_address(&o.lock.0, hrp)
                    .map(|a| a.encode())
                    .unwrap_or_else(|| format!("script {}", hex::encode(&o.lock.0)));
                (who, o.value)
            })
            .collect();
        let inputs =
            Amount::sum(self.inputs.iter().map(|i| Amount::from_sat(i.value).unwrap_or(Amount::MAX)))?;
        let outputs = Amount::sum(tx.outputs.iter().map(|o| o.value))?;
        let fee =
            inputs.checked_sub(outputs).map_err(|_| bad("outputs exceed the inputs the file claims"))?;
        Ok((outs, fee))
    }

    /// Valid signatures on the least-signed input (invalid ones in the file do not count).
    pub fn signature_count(&self) -> usize {
        let Ok((tx, spent, keys, _)) = self.parts(&self.network) else { return 0 };
        let cache = SighashCache::new(&tx);
        spent
            .iter()
            .enumerate()
            .map(|(i, out)| {
                let msg = sighash(&tx, &cache, i, out);
                (0..keys.len())
                    .filter(|k| slot_is_valid(&self.inputs[i].signatures[*k], &keys[*k], &msg.0))
                    .count()
            })
            .min()
            .unwrap_or(0)
    }

    /// The fully signed transaction, if every input has `threshold` valid signatures. Uses
    /// exactly `threshold` of them per input, the first valid ones in key order, and leaves
    /// every other slot empty: the script fails on any non-empty invalid signature (NULLFAIL),
    /// so a wrong, foreign or truncated signature in the file is never passed on. Too few
    /// valid signatures: refused, naming the input and every bad slot.
    pub fn finalize(&self, network: &str) -> Result<Transaction, WalletError> {
        let (mut tx, spent, keys, redeem) = self.parts(network)?;
        let cache = SighashCache::new(&tx);
        let mut unlocks = Vec::with_capacity(spent.len());
        for (i, out) in spent.iter().enumerate() {
            let msg = sighash(&tx, &cache, i, out);
            let mut slots = vec![None; keys.len()];
            let (mut used, mut faults) = (0, Vec::new());
            for (k, slot) in self.inputs[i].signatures.iter().enumerate() {
                match slot_signature(slot, &keys[k], &msg.0) {
                    Ok(Some(sig)) if used < self.threshold => {
                        slots[k] = Some(sig);
                        used += 1;
                    }
                    Ok(_) => {}
                    Err(why) => faults.push(format!("slot {k} (key {}) {why}", self.pubkeys[k])),
                }
            }
            if used < self.threshold {
                let faults = if faults.is_empty() {
                    String::new()
                } else {
                    format!("; {}: have that cosigner sign again", faults.join("; "))
                };
                return Err(bad(format!(
                    "input {i}: {used} of {} required signatures are valid{faults}; more cosigners must sign",
                    self.threshold
                )));
            }
            unlocks.push(p2sh_unlock(&multisig_unlock(&slots), &redeem));
        }
        for (input, unlock) in tx.inputs.iter_mut().zip(unlocks) {
            input.unlock = unlock;
        }
        Ok(tx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::Network;
    use crate::primitives::{Hash256, OutPoint};
    use crate::script::{verify_spend, EagerChecker, SpendContext};

    struct Escrow {
        _dir: tempfile::TempDir,
        wallets: Vec<Wallet>,
        rec: MultisigRecord,
        redeem: Script,
    }

    /// A 2-of-3 escrow of three fresh wallets.
    fn escrow_2_of_3() -> Escrow {
        let dir = tempfile::tempdir().unwrap();
        let wallets: Vec<Wallet> = (1..=3u8)
            .map(|i| {
                Wallet::create(&dir.path().join(format!("w{i}.json")), Network::Regtest, Some([i; 32]), None)
                    .unwrap()
            })
            .collect();
        let keys: Vec<[u8; 32]> = wallets.iter().map(|w| w.key(0).verifying_key().to_bytes()).collect();
        let (redeem, address) = escrow(Network::Regtest.address_hrp(), 2, &keys).unwrap();
        let rec = MultisigRecord {
            threshold: 2,
            pubkeys: keys,
            redeem_script_hex: hex::encode(&redeem.0),
            address: address.encode(),
        };
        Escrow { _dir: dir, wallets, rec, redeem }
    }

    /// A spend of two escrow coins paying `amount` base units.
    fn spend(e: &Escrow, amount: u64) -> Psbt {
        let coins: Vec<Utxo> = (1..=2u8)
            .map(|i| Utxo {
                outpoint: OutPoint { txid: Hash256([i; 32]), index: 0 },
                out: TxOut {
                    value: Amount::from_sat(500_000_000).unwrap(),
                    lock: crate::script::templates::p2sh(&e.redeem),
                },
                height: 1,
                coinbase: false,
                address: e.rec.address.clone(),
                spent_in_mempool: false,
            })
            .collect();
        let to = e.wallets[0].address(1);
        Psbt::create("regtest", &e.rec, &coins, &to, Amount::from_sat(amount).unwrap(), 1000).unwrap()
    }

    /// Every input of `tx` passes the script check, as a node would run it.
    fn verifies(p: &Psbt, tx: &Transaction) -> Result<(), crate::script::ScriptError> {
        let (_, spent, _, _) = p.parts("regtest").unwrap();
        let cache = SighashCache::new(tx);
        for (i, out) in spent.iter().enumerate() {
            let msg = sighash(tx, &cache, i, out);
            verify_spend(
                &tx.inputs[i].unlock.0,
                &out.lock.0,
                &SpendContext { tx_lock_time: 0 },
                &mut EagerChecker { msg: &msg.0 },
            )?;
        }
        Ok(())
    }

    fn signed(e: &Escrow, p: &Psbt, by: &[usize]) -> Psbt {
        let mut p = p.clone();
        for &w in by {
            assert!(p.sign(&e.wallets[w]).unwrap() > 0);
        }
        p
    }

    /// The three kinds of bad signature a file can hold in slot 0, each with its name.
    fn bad_slot_0(e: &Escrow, p: &Psbt) -> Vec<(&'static str, Vec<Option<String>>, &'static str)> {
        let by_b = signed(e, p, &[1]);
        let other_tx = signed(e, &spend(e, 300_000_000), &[0]);
        let by_a = signed(e, p, &[0]);
        let per_input = |f: &dyn Fn(usize) -> Option<String>| (0..p.inputs.len()).map(f).collect::<Vec<_>>();
        vec![
            (
                "another key's signature",
                per_input(&|i| by_b.inputs[i].signatures[1].clone()),
                "does not verify",
            ),
            (
                "a signature over another transaction",
                per_input(&|i| other_tx.inputs[i].signatures[0].clone()),
                "does not verify",
            ),
            (
                "a truncated signature",
                per_input(&|i| by_a.inputs[i].signatures[0].as_ref().map(|s| s[..100].to_string())),
                "truncated",
            ),
        ]
    }

    #[test]
    fn finalize_uses_exactly_threshold_valid_signatures_in_key_order() {
        let e = escrow_2_of_3();
        let p = spend(&e, 400_000_000);
        let all = signed(&e, &p, &[0, 1, 2]);
        let tx = all.finalize("regtest").unwrap();
        verifies(&p, &tx).unwrap();
        let (_, spent, keys, redeem) = p.parts("regtest").unwrap();
        let cache = SighashCache::new(&tx);
        for (i, out) in spent.iter().enumerate() {
            let msg = sighash(&tx, &cache, i, out);
            let sigs: Vec<_> = (0..3)
                .map(|k| slot_signature(&all.inputs[i].signatures[k], &keys[k], &msg.0).unwrap())
                .collect();
            let expected = p2sh_unlock(&multisig_unlock(&[sigs[0], sigs[1], None]), &redeem);
            assert_eq!(tx.inputs[i].unlock, expected, "input {i}: slots 0 and 1, slot 2 left empty");
        }
        let one = signed(&e, &p, &[2]).finalize("regtest").unwrap_err().to_string();
        assert!(one.contains("1 of 2 required signatures") && one.contains("more cosigners"), "{one}");
    }

    /// A tampered file: a bad signature in an earlier slot is skipped when enough valid ones
    /// follow (the old code put it in the unlock, and the broadcast transaction failed), and
    /// named when too few are valid.
    #[test]
    fn a_bad_signature_in_an_earlier_slot_is_never_used() {
        let e = escrow_2_of_3();
        let p = spend(&e, 400_000_000);
        let b_and_c = signed(&e, &p, &[1, 2]);
        let c_only = signed(&e, &p, &[2]);
        for (name, bad_sigs, why) in bad_slot_0(&e, &p) {
            let mut enough = b_and_c.clone();
            let mut too_few = c_only.clone();
            for (i, sig) in bad_sigs.iter().enumerate() {
                assert!(sig.is_some(), "{name}");
                enough.inputs[i].signatures[0] = sig.clone();
                too_few.inputs[i].signatures[0] = sig.clone();
            }
            assert_eq!(enough.signature_count(), 2, "{name}");
            let tx = enough.finalize("regtest").unwrap_or_else(|err| panic!("{name}: {err}"));
            verifies(&p, &tx).unwrap_or_else(|err| panic!("{name}: the finalized transaction fails: {err}"));
            let err = too_few.finalize("regtest").expect_err(name).to_string();
            assert!(err.contains("input 0: 1 of 2 required signatures are valid"), "{name}: {err}");
            assert!(
                err.contains(&format!("slot 0 (key {})", p.pubkeys[0])) && err.contains(why),
                "{name}: {err}"
            );
            // Its cosigner can repair the file by signing again.
            let mut repaired = too_few.clone();
            assert_eq!(repaired.sign(&e.wallets[0]).unwrap(), p.inputs.len(), "{name}");
            verifies(&p, &repaired.finalize("regtest").unwrap()).unwrap();
        }
    }
}
