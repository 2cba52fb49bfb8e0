//! Helpers to build valid blocks and transactions: used by tests, benchmarks and the
//! `quarry chain mine` command. Mining here is a plain single-threaded nonce loop, fit for
//! regtest-like targets only (the real miner lives in `miner/`).

use crate::consensus::pow::check_proof_of_work;
use crate::consensus::Params;
use crate::primitives::merkle::merkle_root;
use crate::primitives::{Amount, Block, BlockHeader, Hash256, OutPoint, Script, Transaction, TxIn, TxOut};
use crate::script::opcodes::{push_data, push_int};
use crate::script::templates::{p2pkh, p2pkh_unlock, pubkey_hash};
use crate::script::{sighash, SighashCache};
use ed25519_dalek::{Signer, SigningKey};

/// A deterministic signing key.
pub fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i; 32])
}

/// The P2PKH locking script of `key`.
pub fn p2pkh_lock(key: &SigningKey) -> Script {
    p2pkh(&pubkey_hash(&key.verifying_key().to_bytes()))
}

/// A coinbase at `height` paying `value` to `lock`, with `extra` bytes after the height push
/// (vary it to make otherwise identical coinbases distinct).
pub fn coinbase(height: u32, value: Amount, lock: Script, extra: &[u8]) -> Transaction {
    let mut unlock = Vec::new();
    push_int(&mut unlock, height as i64);
    push_data(&mut unlock, if extra.is_empty() { b"quarry" } else { extra });
    Transaction {
        version: 1,
        inputs: vec![TxIn { prevout: OutPoint::NULL, unlock: Script(unlock) }],
        outputs: vec![TxOut { value, lock }],
        lock_time: 0,
    }
}

/// Increments the nonce until the header meets its own bits. Returns false if the 32-bit
/// nonce space ran out.
pub fn mine(header: &mut BlockHeader, params: &Params) -> bool {
    loop {
        if check_proof_of_work(&header.hash(), header.bits, &params.pow_limit).is_ok() {
            return true;
        }
        header.nonce = match header.nonce.checked_add(1) {
            Some(n) => n,
            None => return false,
        };
    }
}

/// Assembles and mines a block on `prev` from its transactions (coinbase first).
pub fn assemble(params: &Params, prev: Hash256, time: u32, bits: u32, txs: Vec<Transaction>) -> Block {
    let txids: Vec<Hash256> = txs.iter().map(Transaction::txid).collect();
    let (merkle_root, _) = merkle_root(&txids);
    let mut header = BlockHeader { version: 1, prev, merkle_root, time, bits, nonce: 0 };
    assert!(mine(&mut header, params), "nonce space exhausted: the target is too hard for testkit::mine");
    Block { header, txs }
}

/// A transaction spending P2PKH coins of `key` (`spent` gives each input's output) to
/// `outputs`, signed.
pub fn spend_p2pkh(
    key: &SigningKey,
    inputs: &[(OutPoint, TxOut)],
    outputs: Vec<TxOut>,
    lock_time: u32,
) -> Transaction {
    let mut tx = Transaction {
        version: 1,
        inputs: inputs.iter().map(|(op, _)| TxIn { prevout: *op, unlock: Script::default() }).collect(),
        outputs,
        lock_time,
    };
    let cache = SighashCache::new(&tx);
    let pk = key.verifying_key().to_bytes();
    let unlocks: Vec<Script> = inputs
        .iter()
        .enumerate()
        .map(|(i, (_, out))| {
            let msg = sighash(&tx, &cache, i, out);
            p2pkh_unlock(&key.sign(&msg.0).to_bytes(), &pk)
        })
        .collect();
    for (input, unlock) in tx.inputs.iter_mut().zip(unlocks) {
        input.unlock = unlock;
    }
    tx
}

impl crate::miner::MiningTarget for crate::chain::Chain {
    type Error = crate::chain::ChainError;
    fn tip_context(&self, now: u64) -> crate::consensus::TipContext {
        crate::chain::Chain::tip_context(self, now)
    }
    fn submit(&mut self, block: Block, now: u64) -> Result<(), Self::Error> {
        self.process_block(block, now).map(drop)
    }
}
