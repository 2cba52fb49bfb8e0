//! Block templates: what the miner searches over, and the source it gets them from.

use crate::consensus::pow::target_from_compact;
use crate::consensus::validation::block_subsidy;
use crate::consensus::TipContext;
use crate::primitives::merkle::MerkleProof;
use crate::primitives::{
    sha256d, Amount, Block, BlockHeader, Hash256, OutPoint, Script, Transaction, TxIn, TxOut, U256,
};
use crate::script::opcodes::{push_data, push_int};

/// Tag after the extra nonce in every coinbase this miner builds.
pub const COINBASE_TAG: &[u8] = b"/quarry/";

/// Everything needed to build a block except the extra nonce and the nonce.
#[derive(Clone, Debug)]
pub struct BlockTemplate {
    /// Header version.
    pub version: u32,
    /// Parent block.
    pub prev: Hash256,
    /// Height of the block.
    pub height: u32,
    /// Header time.
    pub time: u32,
    /// Required bits.
    pub bits: u32,
    /// Where the coinbase pays.
    pub coinbase_lock: Script,
    /// Subsidy plus the fees of `txs`.
    pub coinbase_value: Amount,
    /// Transactions after the coinbase, in block order.
    pub txs: Vec<Transaction>,
    /// Merkle siblings of the coinbase (index 0), bottom up: independent of the coinbase
    /// itself, so rolling the extra nonce costs one txid and log2(n) hashes.
    branch: Vec<Hash256>,
}

/// Where the miner gets templates. [`CoinbaseOnly`] works on its own; the mempool provides
/// a source that selects transactions.
pub trait TemplateSource {
    /// A template on the tip `tip` describes.
    fn template(&self, tip: &TipContext) -> BlockTemplate;
}

/// Templates with no transactions but the coinbase, paying `lock`.
#[derive(Clone, Debug)]
pub struct CoinbaseOnly {
    /// Where the coinbase pays.
    pub lock: Script,
}

impl TemplateSource for CoinbaseOnly {
    fn template(&self, tip: &TipContext) -> BlockTemplate {
        BlockTemplate::coinbase_only(tip, self.lock.clone())
    }
}

impl BlockTemplate {
    /// A template paying `coinbase_lock` with the given transactions (their fees total
    /// `fees`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        prev: Hash256,
        height: u32,
        time: u32,
        bits: u32,
        coinbase_lock: Script,
        coinbase_value: Amount,
        txs: Vec<Transaction>,
    ) -> BlockTemplate {
        let mut leaves = vec![Hash256::ZERO];
        leaves.extend(txs.iter().map(Transaction::txid));
        let branch = MerkleProof::build(&leaves, 0).expect("index 0 exists").siblings;
        BlockTemplate { version: 1, prev, height, time, bits, coinbase_lock, coinbase_value, txs, branch }
    }

    /// The header time of a block on `tip`: the clock, at least median time past + 1.
    pub fn time_for(tip: &TipContext) -> u32 {
        (tip.next.now.min(u32::MAX as u64) as u32).max(tip.next.median_time_past + 1)
    }

    /// A coinbase-only template on `tip`.
    pub fn coinbase_only(tip: &TipContext, coinbase_lock: Script) -> BlockTemplate {
        let ctx = &tip.next;
        let value = block_subsidy(tip.params, ctx.height);
        BlockTemplate::new(
            tip.prev,
            ctx.height,
            Self::time_for(tip),
            ctx.expected_bits,
            coinbase_lock,
            value,
            Vec::new(),
        )
    }

    /// The target the header must meet (zero if the bits are invalid: nothing meets it).
    pub fn target(&self) -> U256 {
        target_from_compact(self.bits).unwrap_or(U256::ZERO)
    }

    /// The coinbase for `extra_nonce`: unlock data = height push, 8-byte extra-nonce push,
    /// tag push.
    pub fn coinbase(&self, extra_nonce: u64) -> Transaction {
        let mut unlock = Vec::with_capacity(24);
        push_int(&mut unlock, self.height as i64);
        push_data(&mut unlock, &extra_nonce.to_le_bytes());
        push_data(&mut unlock, COINBASE_TAG);
        Transaction {
            version: 1,
            inputs: vec![TxIn { prevout: OutPoint::NULL, unlock: Script(unlock) }],
            outputs: vec![TxOut { value: self.coinbase_value, lock: self.coinbase_lock.clone() }],
            lock_time: 0,
        }
    }

    /// The Merkle root with `coinbase_txid` as the first leaf.
    pub fn merkle_root(&self, coinbase_txid: Hash256) -> Hash256 {
        self.branch.iter().fold(coinbase_txid, |cur, sib| {
            let mut buf = [0u8; 64];
            buf[..32].copy_from_slice(&cur.0);
            buf[32..].copy_from_slice(&sib.0);
            sha256d(&buf)
        })
    }

    /// The header for a coinbase, with nonce 0.
    pub fn header(&self, coinbase: &Transaction) -> BlockHeader {
        BlockHeader {
            version: self.version,
            prev: self.prev,
            merkle_root: self.merkle_root(coinbase.txid()),
            time: self.time,
            bits: self.bits,
            nonce: 0,
        }
    }

    /// The full block for a coinbase and a solved header.
    pub fn block(&self, coinbase: Transaction, header: BlockHeader) -> Block {
        let mut txs = Vec::with_capacity(self.txs.len() + 1);
        txs.push(coinbase);
        txs.extend(self.txs.iter().cloned());
        Block { header, txs }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::merkle::merkle_root;

    #[test]
    fn rolled_coinbases_give_the_full_merkle_root() {
        let txs: Vec<Transaction> = (0..6u32)
            .map(|i| Transaction {
                version: i,
                inputs: vec![TxIn {
                    prevout: OutPoint { txid: Hash256([i as u8; 32]), index: i },
                    unlock: Script::default(),
                }],
                outputs: vec![TxOut { value: Amount::ZERO, lock: Script::default() }],
                lock_time: 0,
            })
            .collect();
        for n in [0usize, 1, 2, 5, 6] {
            let t = BlockTemplate::new(
                Hash256::ZERO,
                7,
                1,
                0x207fffff,
                Script::default(),
                Amount::ZERO,
                txs[..n].to_vec(),
            );
            for extra in [0u64, 1, u64::MAX] {
                let cb = t.coinbase(extra);
                let block = t.block(cb.clone(), t.header(&cb));
                assert_eq!(t.merkle_root(cb.txid()), merkle_root(&block.txids()).0, "{n} txs, extra {extra}");
            }
        }
    }
}
