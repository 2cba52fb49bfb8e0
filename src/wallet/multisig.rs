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

fn bad(detail: impl Into<String>) -> WalletError {
    WalletError::Malformed(detail.into())
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

/// True if `slot` holds a valid signature by `pubkey` over `msg`.
fn slot_is_valid(slot: &Option<String>, pubkey: &[u8; 32], msg: &[u8]) -> bool {
    let Some(h) = slot else { return false };
    let Some(sig) = hex::decode(h).ok().and_then(|b| <[u8; 64]>::try_from(b).ok()) else { return false };
    crate::script::sig::verify_one(pubkey, &sig, msg)
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

    /// The fully signed transaction, if every input has `threshold` signatures. Uses exactly
    /// `threshold` signatures per input (the first ones in key order).
    pub fn finalize(&self, network: &str) -> Result<Transaction, WalletError> {
        let (mut tx, _, _, redeem) = self.parts(network)?;
        let have = self.signature_count();
        if have < self.threshold {
            return Err(bad(format!(
                "{have} of {} required signatures: more cosigners must sign",
                self.threshold
            )));
        }
        for (input, inp) in tx.inputs.iter_mut().zip(&self.inputs) {
            let mut used = 0;
            let mut slots = Vec::with_capacity(inp.signatures.len());
            for s in &inp.signatures {
                match s {
                    Some(h) if used < self.threshold => {
                        let sig: [u8; 64] = hex::decode(h)
                            .ok()
                            .and_then(|b| b.try_into().ok())
                            .ok_or_else(|| bad("a signature in the file is not 128 hex digits"))?;
                        slots.push(Some(sig));
                        used += 1;
                    }
                    _ => slots.push(None),
                }
            }
            input.unlock = p2sh_unlock(&multisig_unlock(&slots), &redeem);
        }
        Ok(tx)
    }
}
