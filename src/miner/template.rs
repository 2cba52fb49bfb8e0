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
        self.coinbase_with(&extra_nonce.to_le_bytes())
    }

    /// The Merkle siblings of the coinbase, bottom up (Stratum's `merkle_branch`).
    pub fn branch(&self) -> &[Hash256] {
        &self.branch
    }

    /// The coinbase with `extra_nonce` (2..=75 bytes: one direct push; a single byte 1..=16
    /// would become an `OP_n`) as the extra-nonce
    /// push: unlock data = height push, extra-nonce push, tag push.
    pub fn coinbase_with(&self, extra_nonce: &[u8]) -> Transaction {
        let mut unlock = Vec::with_capacity(16 + extra_nonce.len());
        push_int(&mut unlock, self.height as i64);
        push_data(&mut unlock, extra_nonce);
        push_data(&mut unlock, COINBASE_TAG);
        Transaction {
            version: 1,
            inputs: vec![TxIn { prevout: OutPoint::NULL, unlock: Script(unlock) }],
            outputs: vec![TxOut { value: self.coinbase_value, lock: self.coinbase_lock.clone() }],
            lock_time: 0,
        }
    }

    /// The canonical encoding of [`BlockTemplate::coinbase_with`] for an extra nonce of
    /// `extra_nonce_len` bytes, split around the extra nonce's bytes: `(coinb1, coinb2)`,
    /// so `coinb1 || extra_nonce || coinb2` is the coinbase (Stratum's split; every length
    /// prefix in it is fixed by `extra_nonce_len`).
    pub fn coinbase_split(&self, extra_nonce_len: usize) -> (Vec<u8>, Vec<u8>) {
        let cb = self.coinbase_with(&vec![0u8; extra_nonce_len]).encode();
        // Unlock data starts after version, input count, prevout (32 + 4) and unlock length.
        let mut height_push = Vec::new();
        push_int(&mut height_push, self.height as i64);
        // The extra nonce follows the height push and its own one-byte push opcode.
        let at = 4 + 4 + 36 + 4 + height_push.len() + 1;
        (cb[..at].to_vec(), cb[at + extra_nonce_len..].to_vec())
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
    fn the_coinbase_split_surrounds_the_extra_nonce() {
        for height in [0u32, 1, 16, 17, 300, 70_000] {
            let t = BlockTemplate::new(
                Hash256::ZERO,
                height,
                1,
                0x207fffff,
                Script(vec![0x51]),
                Amount::from_sat(5).unwrap(),
                Vec::new(),
            );
            let en = [1u8, 2, 3, 4, 5, 6, 7, 8];
            let (c1, c2) = t.coinbase_split(en.len());
            let joined = [c1, en.to_vec(), c2].concat();
            assert_eq!(joined, t.coinbase_with(&en).encode(), "height {height}");
            assert_eq!(t.coinbase(u64::from_le_bytes(en)).encode(), joined);
        }
    }

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
