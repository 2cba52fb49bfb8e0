//! Wallet operations over a node's JSON-RPC: coins, balance, sending, proof checks.

use super::keystore::{KeystoreError, Wallet};
use crate::consensus::pow::check_proof_of_work;
use crate::primitives::{
    Address, AddressError, Amount, AmountError, Hash256, OutPoint, Script, Transaction, TxIn, TxOut,
};
use crate::rpc::api::QuarryApiClient;
use crate::rpc::client::{BlockingClient, RpcError};
use crate::rpc::types::{amount_of_coins, AddressQuery, GetRawMempool, TxOutput};
use crate::script::templates::{address_lock, p2pkh_unlock, Template};
use crate::script::{sighash, SighashCache};
use ed25519_dalek::Signer;
use std::collections::HashMap;

/// Change below this many base units is not worth an output: it goes to the fee instead.
pub const DUST: u64 = 1_000;
/// Canonical size of a P2PKH input (40 + 1 + 64 + 1 + 32).
const P2PKH_INPUT_SIZE: usize = 138;
/// Canonical size of a P2PKH output (12 + 37); P2SH outputs are 2 bytes smaller, so this
/// bound never underpays.
const P2PKH_OUTPUT_SIZE: usize = 49;

/// What went wrong in a wallet operation; each names the values involved.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    #[error(transparent)]
    Address(#[from] AddressError),
    #[error(transparent)]
    Amount(#[from] AmountError),
    #[error("insufficient funds: sending {amount} plus fee {fee} needs {needed}, spendable balance is {available}")]
    InsufficientFunds { amount: Amount, fee: Amount, needed: Amount, available: Amount },
    #[error("fee rate {given} sat/kB is below the node's minimum {minimum} sat/kB: pass --fee-rate {minimum} or more")]
    FeeRateTooLow { given: u64, minimum: u64 },
    #[error("fee rate {given} sat/kB is absurdly high (more than {max}): check --fee-rate")]
    FeeRateTooHigh { given: u64, max: u64 },
    #[error("cannot send zero coins")]
    ZeroAmount,
    #[error("node: {0}")]
    Node(#[from] RpcError),
    #[error("the node's answer is malformed: {0}")]
    Malformed(String),
    /// A local refusal (an escrow file, a key, a wallet record): the message says why.
    #[error("{0}")]
    Refused(String),
    #[error("proof check failed: {0}")]
    Proof(String),
}

/// The base units of an output in an answer.
fn output_value(o: &TxOutput) -> Result<Amount, WalletError> {
    amount_of_coins(o.value).ok_or_else(|| WalletError::Malformed(format!("output value {} coins", o.value)))
}

/// The addresses in groups the node accepts in one call.
fn address_queries(addrs: &[String]) -> impl Iterator<Item = AddressQuery> + '_ {
    addrs.chunks(100).map(|c| AddressQuery::Many { addresses: c.to_vec() })
}

/// An unspent output the wallet can spend.
#[derive(Clone, Debug)]
pub struct Utxo {
    pub outpoint: OutPoint,
    pub out: TxOut,
    pub height: u32,
    pub coinbase: bool,
    pub address: String,
    /// A mempool transaction already spends it.
    pub spent_in_mempool: bool,
}

/// The wallet's balance.
#[derive(Clone, Debug, Default)]
pub struct Balance {
    /// Confirmed, mature and not being spent.
    pub confirmed: Amount,
    /// Coinbase outputs not yet mature.
    pub immature: Amount,
    /// Paid to the wallet by transactions still in the mempool.
    pub unconfirmed: Amount,
    /// Confirmed coins that mempool transactions are spending.
    pub spending: Amount,
    /// Height-locked coins of this wallet (spend them with `unlock` once the height comes).
    pub locked: Amount,
}

/// Confirmed unspent outputs paying the wallet's addresses.
pub fn utxos(wallet: &Wallet, rpc: &BlockingClient) -> Result<Vec<Utxo>, WalletError> {
    let addrs: Vec<String> = wallet.addresses().into_iter().map(|(_, a)| a.encode()).collect();
    utxos_of(rpc, &addrs)
}

/// Confirmed unspent outputs paying any of `addrs`.
pub fn utxos_of(rpc: &BlockingClient, addrs: &[String]) -> Result<Vec<Utxo>, WalletError> {
    let mut out = Vec::new();
    for query in address_queries(addrs) {
        for u in rpc.wait(rpc.getaddressutxos(query))? {
            out.push(Utxo {
                outpoint: OutPoint { txid: u.txid, index: u.output_index },
                out: TxOut {
                    value: Amount::from_sat(u.satoshis)?,
                    lock: Script(
                        hex::decode(&u.script).map_err(|e| WalletError::Malformed(format!("script: {e}")))?,
                    ),
                },
                height: u.height,
                coinbase: u.coinbase,
                address: u.address,
                spent_in_mempool: u.spent_in_mempool.is_some(),
            });
        }
    }
    Ok(out)
}

/// The node's tip height.
pub fn tip_height(rpc: &BlockingClient) -> Result<u32, WalletError> {
    Ok(rpc.wait(rpc.getblockcount())?)
}

/// True once a coin can be spent in the next block (coinbase maturity).
pub fn is_mature(u: &Utxo, tip: u32, maturity: u32) -> bool {
    // A coin is spendable in the next block, at height tip + 1.
    !u.coinbase || (tip + 1).saturating_sub(u.height) >= maturity
}

/// Coins spendable now: confirmed, mature, not spent by a mempool transaction.
pub fn spendable(wallet: &Wallet, rpc: &BlockingClient) -> Result<Vec<Utxo>, WalletError> {
    let tip = tip_height(rpc)?;
    let maturity = wallet.network().params().coinbase_maturity;
    Ok(utxos(wallet, rpc)?
        .into_iter()
        .filter(|u| !u.spent_in_mempool && is_mature(u, tip, maturity))
        .collect())
}

/// The balance, with mempool payments to the wallet counted as unconfirmed.
pub fn balance(wallet: &Wallet, rpc: &BlockingClient) -> Result<Balance, WalletError> {
    let tip = tip_height(rpc)?;
    let maturity = wallet.network().params().coinbase_maturity;
    let mut b = Balance::default();
    for u in utxos(wallet, rpc)? {
        let slot = if u.spent_in_mempool {
            &mut b.spending
        } else if is_mature(&u, tip, maturity) {
            &mut b.confirmed
        } else {
            &mut b.immature
        };
        *slot = slot.checked_add(u.out.value)?;
    }
    let locked: Vec<String> = wallet.locked().iter().map(|r| r.address.clone()).collect();
    for u in utxos_of(rpc, &locked)? {
        if !u.spent_in_mempool {
            b.locked = b.locked.checked_add(u.out.value)?;
        }
    }
    let ours: HashMap<String, ()> = wallet.addresses().into_iter().map(|(_, a)| (a.encode(), ())).collect();
    let GetRawMempool::Txids(mempool) = rpc.wait(rpc.getrawmempool(Some(false)))? else {
        return Err(WalletError::Malformed("getrawmempool false answered the verbose form".into()));
    };
    for txid in mempool.iter().take(5_000) {
        // A transaction may leave the mempool between the two calls: skip it.
        let Ok(tx) = rpc.wait(rpc.transaction_info(txid)) else { continue };
        for o in &tx.vout {
            if o.script_pubkey.address.as_deref().is_some_and(|a| ours.contains_key(a)) {
                b.unconfirmed = b.unconfirmed.checked_add(output_value(o)?)?;
            }
        }
    }
    Ok(b)
}

/// The node's minimum fee rate for admission now, sat/kB.
pub fn node_min_fee_rate(rpc: &BlockingClient) -> Result<u64, WalletError> {
    let info = rpc.wait(rpc.getmempoolinfo())?;
    let coins_per_kb = info.mempoolminfee.max(info.minrelaytxfee);
    amount_of_coins(coins_per_kb)
        .map(|a| a.to_sat())
        .ok_or_else(|| WalletError::Malformed(format!("minimum fee rate {coins_per_kb} coins/kB")))
}

/// The fee rate to use: `given`, or the node's minimum when `None`; below the minimum is an
/// error (the node would refuse the transaction).
pub fn choose_fee_rate(rpc: &BlockingClient, given: Option<u64>) -> Result<u64, WalletError> {
    let minimum = node_min_fee_rate(rpc)?;
    let rate = given.unwrap_or(minimum);
    if rate < minimum {
        return Err(WalletError::FeeRateTooLow { given: rate, minimum });
    }
    if rate > MAX_FEE_RATE {
        return Err(WalletError::FeeRateTooHigh { given: rate, max: MAX_FEE_RATE });
    }
    Ok(rate)
}

/// A fee rate above this (0.01 coin per 1000 bytes) is taken for a typo and refused.
pub const MAX_FEE_RATE: u64 = 1_000_000;

fn fee_for(rate: u64, inputs: usize, outputs: usize) -> u64 {
    let size = 4 + 4 + inputs * P2PKH_INPUT_SIZE + 4 + outputs * P2PKH_OUTPUT_SIZE + 4;
    (rate.min(MAX_FEE_RATE) * size as u64).div_ceil(1000)
}

/// A transaction ready to broadcast.
#[derive(Clone, Debug)]
pub struct Signed {
    pub tx: Transaction,
    pub fee: Amount,
    pub change: Option<(Address, Amount)>,
}

/// Builds and signs a payment of `amount` to `to` at `fee_rate` sat/kB: largest coins first,
/// change above [`DUST`] to a fresh address (saved in the wallet), smaller change to the fee.
pub fn build_send(
    wallet: &mut Wallet,
    coins: &[Utxo],
    to: &Script,
    amount: Amount,
    fee_rate: u64,
) -> Result<Signed, WalletError> {
    if amount == Amount::ZERO {
        return Err(WalletError::ZeroAmount);
    }
    let mut sorted: Vec<&Utxo> = coins.iter().collect();
    sorted.sort_by(|a, b| b.out.value.cmp(&a.out.value).then(a.outpoint.cmp(&b.outpoint)));
    let available = Amount::sum(sorted.iter().map(|u| u.out.value))?;
    let mut chosen = Vec::new();
    let mut total = Amount::ZERO;
    for u in &sorted {
        chosen.push(*u);
        total = total.checked_add(u.out.value)?;
        let fee = Amount::from_sat(fee_for(fee_rate, chosen.len(), 2))?;
        if total >= amount.checked_add(fee)? {
            break;
        }
    }
    let fee2 = Amount::from_sat(fee_for(fee_rate, chosen.len(), 2))?;
    let needed = amount.checked_add(fee2)?;
    if total < needed {
        return Err(WalletError::InsufficientFunds { amount, fee: fee2, needed, available });
    }
    let mut outputs = vec![TxOut { value: amount, lock: to.clone() }];
    let change_value = total.checked_sub(needed)?;
    let (fee, change) = if change_value.to_sat() >= DUST {
        let (_, addr) = wallet.new_address()?;
        outputs.push(TxOut { value: change_value, lock: address_lock(&addr) });
        (fee2, Some((addr, change_value)))
    } else {
        (total.checked_sub(amount)?, None)
    };
    let mut tx = Transaction {
        version: 1,
        inputs: chosen.iter().map(|u| TxIn { prevout: u.outpoint, unlock: Script::default() }).collect(),
        outputs,
        lock_time: 0,
    };
    sign_p2pkh_inputs(wallet, &mut tx, &chosen.iter().map(|u| u.out.clone()).collect::<Vec<_>>())?;
    Ok(Signed { tx, fee, change })
}

/// Signs every input whose spent output is a P2PKH of one of the wallet's keys.
pub fn sign_p2pkh_inputs(wallet: &Wallet, tx: &mut Transaction, spent: &[TxOut]) -> Result<(), WalletError> {
    let cache = SighashCache::new(tx);
    let mut unlocks = Vec::with_capacity(spent.len());
    for (i, out) in spent.iter().enumerate() {
        let Template::P2pkh(hash) = Template::classify(&out.lock.0) else {
            return Err(WalletError::Refused(format!("input {i} is not a P2PKH coin")));
        };
        let (_, key) = wallet
            .key_for_hash(&hash)
            .ok_or_else(|| WalletError::Refused(format!("input {i}: the wallet has no key for this coin")))?;
        let msg = sighash(tx, &cache, i, out);
        unlocks.push(p2pkh_unlock(&key.sign(&msg.0).to_bytes(), &key.verifying_key().to_bytes()));
    }
    for (input, unlock) in tx.inputs.iter_mut().zip(unlocks) {
        input.unlock = unlock;
    }
    Ok(())
}

/// Spends a height-locked coin (see [`crate::wallet::keystore::LockedRecord`]) to `to`,
/// paying `fee_rate`. The transaction's lock time is the record's height, so the node refuses
/// it (naming the lock-time rule) until that height can be mined.
pub fn build_unlock(
    wallet: &Wallet,
    rec: &crate::wallet::keystore::LockedRecord,
    coin: &Utxo,
    to: &Address,
    fee_rate: u64,
) -> Result<Transaction, WalletError> {
    let redeem = Script(hex::decode(&rec.redeem_script_hex).map_err(|e| {
        WalletError::Refused(format!("the wallet's record of {}: redeem script: {e}", rec.address))
    })?);
    let size = 4 + 4 + 40 + (1 + 64 + 1 + 32 + 3 + redeem.len()) + 4 + P2PKH_OUTPUT_SIZE + 4;
    let fee = Amount::from_sat((fee_rate.min(MAX_FEE_RATE) * size as u64).div_ceil(1000))?;
    let value = coin.out.value.checked_sub(fee).map_err(|_| WalletError::InsufficientFunds {
        amount: coin.out.value,
        fee,
        needed: fee,
        available: coin.out.value,
    })?;
    let mut tx = Transaction {
        version: 1,
        inputs: vec![TxIn { prevout: coin.outpoint, unlock: Script::default() }],
        outputs: vec![TxOut { value, lock: address_lock(to) }],
        lock_time: rec.height,
    };
    let key = wallet.key(rec.key_index);
    let msg = sighash(&tx, &SighashCache::new(&tx), 0, &coin.out);
    let args = p2pkh_unlock(&key.sign(&msg.0).to_bytes(), &key.verifying_key().to_bytes());
    tx.inputs[0].unlock = crate::script::templates::p2sh_unlock(&args, &redeem);
    Ok(tx)
}

/// One transaction in the wallet's history.
#[derive(Clone, Debug)]
pub struct HistoryEntry {
    pub txid: Hash256,
    pub height: u64,
    pub confirmations: u64,
    /// Paid to the wallet's addresses.
    pub received: Amount,
    /// Spent from the wallet's coins.
    pub sent: Amount,
}

impl HistoryEntry {
    /// Received minus sent, in base units (negative for payments out, fee included).
    pub fn net(&self) -> i128 {
        self.received.to_sat() as i128 - self.sent.to_sat() as i128
    }
}

/// Confirmed transactions that paid or spent the wallet's addresses (and its height-locked
/// addresses), oldest first, with what each received and sent. At most `limit`.
pub fn history(
    wallet: &Wallet,
    rpc: &BlockingClient,
    limit: usize,
) -> Result<Vec<HistoryEntry>, WalletError> {
    let mut addrs: Vec<String> = wallet.addresses().into_iter().map(|(_, a)| a.encode()).collect();
    addrs.extend(wallet.locked().iter().map(|r| r.address.clone()));
    let ours: std::collections::HashSet<String> = addrs.iter().cloned().collect();
    let mut txids: Vec<Hash256> = Vec::new();
    for query in address_queries(&addrs) {
        for t in rpc.wait(rpc.getaddresstxids(query))? {
            if !txids.contains(&t) {
                txids.push(t);
            }
        }
    }
    let pays_us = |o: &TxOutput| o.script_pubkey.address.as_deref().is_some_and(|a| ours.contains(a));
    let mut out = Vec::new();
    let mut prev_cache: HashMap<Hash256, Vec<TxOutput>> = HashMap::new();
    for txid in txids {
        let tx = rpc.wait(rpc.transaction_info(&txid))?;
        let mut received = Amount::ZERO;
        for o in tx.vout.iter().filter(|o| pays_us(o)) {
            received = received.checked_add(output_value(o)?)?;
        }
        let mut sent = Amount::ZERO;
        for i in &tx.vin {
            let crate::rpc::types::TxInput::Spend { txid: ptxid, vout: n, .. } = i else { continue };
            if !prev_cache.contains_key(ptxid) {
                let p = rpc.wait(rpc.transaction_info(ptxid))?;
                prev_cache.insert(*ptxid, p.vout);
            }
            let Some(o) = prev_cache.get(ptxid).and_then(|v| v.get(*n as usize)) else {
                return Err(WalletError::Malformed(format!("transaction {ptxid} has no output {n}")));
            };
            if pays_us(o) {
                sent = sent.checked_add(output_value(o)?)?;
            }
        }
        let confirmations = tx.confirmations.unwrap_or(0) as u64;
        let height = (tip_height(rpc)? as u64 + 1).saturating_sub(confirmations.max(1));
        out.push(HistoryEntry { txid, height, confirmations, received, sent });
        if out.len() >= limit {
            break;
        }
    }
    out.sort_by_key(|e| (e.height, e.txid));
    Ok(out)
}

/// Result of [`verify_tx`].
#[derive(Clone, Debug)]
pub struct TxProof {
    pub txid: Hash256,
    pub block: Hash256,
    pub height: u64,
    pub confirmations: u64,
    pub leaf_count: u32,
    pub proof_hashes: usize,
}

/// Fetches the Merkle proof of `txid` and its block header from the node and checks locally
/// that the header meets its proof of work and that the proof leads from the txid to the
/// header's Merkle root (log2(n) hashes).
pub fn verify_tx(
    rpc: &BlockingClient,
    wallet_network: crate::consensus::Network,
    txid: &Hash256,
) -> Result<TxProof, WalletError> {
    let proof_hex = rpc.wait(rpc.gettxoutproof(vec![txid.to_string()], None))?;
    let bytes = crate::rpc::client::hex_answer(&proof_hex, "gettxoutproof")?;
    let crate::primitives::TxProof { header, txid: proven, proof } =
        crate::primitives::TxProof::decode(&bytes)
            .map_err(|e| WalletError::Malformed(format!("proof does not decode: {e}")))?;
    if proven != *txid {
        return Err(WalletError::Proof(format!("the node proved {proven}, not {txid}")));
    }
    let params = wallet_network.params();
    let block = header.hash();
    check_proof_of_work(&block, header.bits, &params.pow_limit)
        .map_err(|e| WalletError::Proof(e.to_string()))?;
    proof.verify(txid, &header.merkle_root).map_err(|e| WalletError::Proof(e.to_string()))?;
    let h = rpc.wait(rpc.header_info(&block))?;
    let confirmations = h.confirmations;
    if confirmations < 1 {
        return Err(WalletError::Proof(format!("block {block} is not on the node's active chain")));
    }
    Ok(TxProof {
        txid: *txid,
        block,
        height: h.height.unwrap_or(0) as u64,
        confirmations: confirmations as u64,
        leaf_count: proof.leaf_count,
        proof_hashes: proof.siblings.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::Network;
    use crate::primitives::AddressKind;

    #[test]
    fn fees_cover_the_signed_size_and_change_adds_up() {
        let dir = tempfile::tempdir().unwrap();
        let mut w =
            Wallet::create(&dir.path().join("w.json"), Network::Regtest, Some([3; 32]), None).unwrap();
        let mine = w.address(0);
        let coins: Vec<Utxo> = (0..5u8)
            .map(|i| Utxo {
                outpoint: OutPoint { txid: Hash256([i + 1; 32]), index: 0 },
                out: TxOut {
                    value: Amount::from_sat(100_000 * (i as u64 + 1)).unwrap(),
                    lock: address_lock(&mine),
                },
                height: 1,
                coinbase: false,
                address: mine.encode(),
                spent_in_mempool: false,
            })
            .collect();
        let to = address_lock(&Address { hrp: "qrt", kind: AddressKind::P2sh, hash: [9; 32] });
        // (amount, fee rate, whether change comes back): the last spends everything but the fee.
        for (amount, rate, has_change) in [
            (50_000u64, 1000u64, true),
            (650_000, 1000, true),
            (1_000_000, 3000, true),
            (1_499_000, 1000, false),
        ] {
            // Every case is affordable: a refusal here is a bug, not a case to skip.
            let s = build_send(&mut w, &coins, &to, Amount::from_sat(amount).unwrap(), rate)
                .unwrap_or_else(|e| panic!("sending {amount} at {rate} sat/kB: {e}"));
            let size = s.tx.encoded_size() as u64;
            assert!(
                s.fee.to_sat() * 1000 >= rate * size,
                "fee {} for {size} bytes at {rate}",
                s.fee.to_sat()
            );
            let spent: u64 =
                s.tx.inputs
                    .iter()
                    .map(|i| coins.iter().find(|c| c.outpoint == i.prevout).unwrap().out.value.to_sat())
                    .sum();
            let out: u64 = s.tx.outputs.iter().map(|o| o.value.to_sat()).sum();
            assert_eq!(spent, out + s.fee.to_sat(), "inputs = outputs + fee");
            assert_eq!(
                s.change.is_some(),
                has_change,
                "change of sending {amount} at {rate}: {:?}",
                s.change
            );
            if let Some((_, change)) = &s.change {
                assert!(change.to_sat() >= DUST);
            }
        }
        let too_much = build_send(&mut w, &coins, &to, Amount::from_sat(1_500_000).unwrap(), 1000);
        assert!(matches!(too_much, Err(WalletError::InsufficientFunds { .. })));
    }
}
