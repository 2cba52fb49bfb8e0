//! Compact block relay (docs/PROTOCOL.md §13.6a), after BIP152: a block travels as its
//! header, a 6-byte short id per transaction and the coinbase in full; the receiver rebuilds
//! it from its mempool and asks the sender for the transactions it lacks (`GetBlockTxn`,
//! §13.8) in one round trip. Pure: encodings, short ids and the rebuild bookkeeping; the node
//! core drives it.

use crate::primitives::encode::{DecodeError, Reader};
use crate::primitives::hash::sha256;
use crate::primitives::header::HEADER_SIZE;
use crate::primitives::tx::MIN_ENCODED_TX_SIZE;
use crate::primitives::{Block, BlockHeader, Hash256, Transaction};
use siphasher::sip::SipHasher24;
use std::collections::HashMap;

/// Bytes of a short transaction id on the wire.
pub const SHORT_ID_BYTES: usize = 6;
/// Most transaction indexes in one `GetBlockTxn` (and transactions in one `BlockTxn`): a
/// request of that many fits [`super::wire::MAX_REQUEST_BYTES`]. A receiver missing more
/// fetches the whole block instead.
pub const MAX_BLOCKTXN_INDEXES: usize = 4_000;
/// The low 48 bits of the SipHash output.
const SHORT_ID_MASK: u64 = (1 << 48) - 1;

/// Why a compact block message or a rebuild step is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    /// The bytes do not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A `BlockTxn` answer holds another number of transactions than were asked for.
    #[error("blocktxn for block {block}: asked for {asked} transactions, got {got}")]
    WrongCount { block: Hash256, asked: usize, got: usize },
    /// A transaction in a `BlockTxn` answer does not have the short id of its slot.
    #[error("blocktxn for block {block}: transaction {txid} at index {index} has short id {got:012x}, the announcement said {expected:012x}")]
    WrongTransaction { block: Hash256, index: u32, txid: Hash256, expected: u64, got: u64 },
    /// A `BlockTxn` answer for another block than the one asked about.
    #[error("blocktxn for block {got}, asked about {asked}")]
    WrongBlock { asked: Hash256, got: Hash256 },
}

/// The SipHash-2-4 key of a block's short ids: the first two little-endian 64-bit words of
/// `SHA-256(header || nonce as u64 LE)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShortIdKey {
    k0: u64,
    k1: u64,
}

impl ShortIdKey {
    /// The key for `header` and the announcer's `nonce`.
    pub fn new(header: &BlockHeader, nonce: u64) -> ShortIdKey {
        let mut pre = Vec::with_capacity(HEADER_SIZE + 8);
        pre.extend_from_slice(&header.to_bytes());
        pre.extend_from_slice(&nonce.to_le_bytes());
        let h = sha256(&pre);
        let word = |i: usize| u64::from_le_bytes(h[i..i + 8].try_into().expect("8 bytes"));
        ShortIdKey { k0: word(0), k1: word(8) }
    }

    /// The two SipHash keys (k0, k1).
    pub fn keys(&self) -> (u64, u64) {
        (self.k0, self.k1)
    }

    /// The short id of a transaction: SipHash-2-4 of its txid (32 bytes, internal order),
    /// low 48 bits.
    pub fn short_id(&self, txid: &Hash256) -> u64 {
        SipHasher24::new_with_keys(self.k0, self.k1).hash(txid.as_bytes()) & SHORT_ID_MASK
    }
}

/// A compact block: what the `cmpctblocks` topic carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactBlock {
    /// The block header.
    pub header: BlockHeader,
    /// Chosen by the announcer; keys the short ids.
    pub nonce: u64,
    /// Short ids of the transactions not prefilled, in block order.
    pub short_ids: Vec<u64>,
    /// Transactions sent in full with their index in the block, ascending; index 0 (the
    /// coinbase) always.
    pub prefilled: Vec<(u32, Transaction)>,
}

impl CompactBlock {
    /// The compact form of `block` (whose txids, in order, are `txids`), prefilling the
    /// coinbase.
    pub fn from_block(block: &Block, txids: &[Hash256], nonce: u64) -> CompactBlock {
        let key = ShortIdKey::new(&block.header, nonce);
        CompactBlock {
            header: block.header,
            nonce,
            short_ids: txids.iter().skip(1).map(|t| key.short_id(t)).collect(),
            prefilled: block.txs.first().map(|cb| vec![(0, cb.clone())]).unwrap_or_default(),
        }
    }

    /// The block id.
    pub fn hash(&self) -> Hash256 {
        self.header.hash()
    }

    /// Transactions in the block.
    pub fn tx_count(&self) -> usize {
        self.short_ids.len() + self.prefilled.len()
    }

    /// Canonical encoding: header, nonce u64 LE, short id count u32 LE and the ids (6 bytes
    /// LE each), prefilled count u32 LE and each (index u32 LE, transaction).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_SIZE + 16 + SHORT_ID_BYTES * self.short_ids.len());
        out.extend_from_slice(&self.header.to_bytes());
        out.extend_from_slice(&self.nonce.to_le_bytes());
        out.extend_from_slice(&(self.short_ids.len() as u32).to_le_bytes());
        for id in &self.short_ids {
            out.extend_from_slice(&id.to_le_bytes()[..SHORT_ID_BYTES]);
        }
        out.extend_from_slice(&(self.prefilled.len() as u32).to_le_bytes());
        for (index, tx) in &self.prefilled {
            out.extend_from_slice(&index.to_le_bytes());
            tx.encode_to(&mut out);
        }
        out
    }

    /// Decodes a compact block announcing a block of at most `max_block` bytes: the
    /// coinbase must be prefilled, prefilled indexes ascend and lie inside the block, and
    /// the block cannot hold more transactions than `max_block` bytes allow.
    pub fn decode(bytes: &[u8], max_block: usize) -> Result<CompactBlock, DecodeError> {
        let invalid = |what, detail: String| DecodeError::Invalid { what, detail };
        if bytes.len() > max_block {
            return Err(DecodeError::TooLarge { what: "compact block", got: bytes.len(), max: max_block });
        }
        let mut r = Reader::new(bytes);
        let header = BlockHeader::from_bytes(r.take(HEADER_SIZE, "compact block header")?)?;
        let nonce = r.u64("compact block nonce")?;
        let n = r.count("short ids", SHORT_ID_BYTES)?;
        let mut short_ids = Vec::with_capacity(n);
        for _ in 0..n {
            let mut id = [0u8; 8];
            id[..SHORT_ID_BYTES].copy_from_slice(r.take(SHORT_ID_BYTES, "short id")?);
            short_ids.push(u64::from_le_bytes(id));
        }
        let m = r.count("prefilled transactions", 4 + MIN_ENCODED_TX_SIZE)?;
        let mut prefilled = Vec::with_capacity(m);
        for _ in 0..m {
            let index = r.u32("prefilled index")?;
            prefilled.push((index, Transaction::decode_from(&mut r)?));
        }
        r.finish("compact block")?;
        let total = n + m;
        let most = max_block / MIN_ENCODED_TX_SIZE;
        if total > most {
            return Err(invalid(
                "compact block",
                format!("{total} transactions cannot fit in a block of {max_block} bytes (at most {most})"),
            ));
        }
        if prefilled.first().map(|p| p.0) != Some(0) {
            return Err(invalid("prefilled transactions", "the coinbase (index 0) must be prefilled".into()));
        }
        for w in prefilled.windows(2) {
            if w[1].0 <= w[0].0 {
                return Err(invalid(
                    "prefilled transactions",
                    format!("indexes must ascend: {} after {}", w[1].0, w[0].0),
                ));
            }
        }
        if let Some((last, _)) = prefilled.last() {
            if *last as usize >= total {
                return Err(invalid(
                    "prefilled transactions",
                    format!("index {last} is outside a block of {total} transactions"),
                ));
            }
        }
        Ok(CompactBlock { header, nonce, short_ids, prefilled })
    }

    /// True if the short ids are those of `block`'s transactions (after a fallback to the
    /// full block: a mismatch means the announcer lied, not that our mempool collided).
    pub fn matches(&self, block: &Block, txids: &[Hash256]) -> bool {
        if block.header != self.header || txids.len() != self.tx_count() {
            return false;
        }
        let key = ShortIdKey::new(&self.header, self.nonce);
        let mut prefilled = self.prefilled.iter().peekable();
        let mut ids = self.short_ids.iter();
        for (i, txid) in txids.iter().enumerate() {
            if prefilled.peek().is_some_and(|p| p.0 as usize == i) {
                let (_, tx) = prefilled.next().expect("peeked");
                if tx.txid() != *txid {
                    return false;
                }
            } else if ids.next() != Some(&key.short_id(txid)) {
                return false;
            }
        }
        true
    }
}

/// The transactions a `GetBlockTxn` asks for out of a block's `txs`, in the order of
/// `indexes`; the first index outside the block if there is one (the requester's fault).
pub fn block_txn(txs: &[Transaction], indexes: &[u32]) -> Result<Vec<Transaction>, u32> {
    if let Some(&bad) = indexes.iter().find(|&&i| i as usize >= txs.len()) {
        return Err(bad);
    }
    Ok(indexes.iter().map(|&i| txs[i as usize].clone()).collect())
}

/// A block being rebuilt from a compact block: the slots filled from the prefilled
/// transactions and the mempool, and the short ids of the rest.
#[derive(Clone, Debug)]
pub struct PartialBlock {
    header: BlockHeader,
    key: ShortIdKey,
    /// Each slot's transaction with its txid (from the pool, or hashed here).
    slots: Vec<Option<(Transaction, Hash256)>>,
    /// The short id of each slot not prefilled.
    ids: Vec<Option<u64>>,
    /// What the announcement said, kept to judge the announcer after a fallback.
    compact: CompactBlock,
}

impl PartialBlock {
    /// Fills what it can from `pool`. A short id that two pool transactions share, or that
    /// two slots share, stays missing: the sender is asked for it by index.
    pub fn new<'a>(
        compact: CompactBlock,
        pool: impl IntoIterator<Item = (&'a Hash256, &'a Transaction)>,
    ) -> PartialBlock {
        let key = ShortIdKey::new(&compact.header, compact.nonce);
        let total = compact.tx_count();
        let mut slots: Vec<Option<(Transaction, Hash256)>> = vec![None; total];
        let mut ids: Vec<Option<u64>> = vec![None; total];
        let mut prefilled = compact.prefilled.iter().peekable();
        let mut short = compact.short_ids.iter();
        // Short id -> the one slot wanting it (None once two slots want it).
        let mut wanted: HashMap<u64, Option<usize>> = HashMap::with_capacity(compact.short_ids.len());
        for (i, slot) in slots.iter_mut().enumerate() {
            if prefilled.peek().is_some_and(|p| p.0 as usize == i) {
                let tx = prefilled.next().expect("peeked").1.clone();
                let txid = tx.txid();
                *slot = Some((tx, txid));
            } else if let Some(&id) = short.next() {
                ids[i] = Some(id);
                wanted.entry(id).and_modify(|w| *w = None).or_insert(Some(i));
            }
        }
        // Pool matches: a short id matched by two pool transactions is ambiguous.
        let mut found: HashMap<usize, Option<(&Transaction, Hash256)>> = HashMap::new();
        for (txid, tx) in pool {
            if let Some(Some(i)) = wanted.get(&key.short_id(txid)) {
                found.entry(*i).and_modify(|f| *f = None).or_insert(Some((tx, *txid)));
            }
        }
        for (i, tx) in found {
            if let Some((tx, txid)) = tx {
                slots[i] = Some((tx.clone(), txid));
            }
        }
        PartialBlock { header: compact.header, key, slots, ids, compact }
    }

    /// The block id.
    pub fn hash(&self) -> Hash256 {
        self.header.hash()
    }

    /// Indexes of the transactions still missing, ascending.
    pub fn missing(&self) -> Vec<u32> {
        self.slots.iter().enumerate().filter(|(_, s)| s.is_none()).map(|(i, _)| i as u32).collect()
    }

    /// Bytes held (for bounds).
    pub fn size(&self) -> usize {
        self.slots.iter().flatten().map(|(tx, _)| tx.encoded_size()).sum::<usize>() + 48 * self.slots.len()
    }

    /// The announcement this rebuild started from.
    pub fn compact(&self) -> &CompactBlock {
        &self.compact
    }

    /// Puts the transactions of a `BlockTxn` answer into the slots `indexes` (the request's),
    /// checking each against its short id.
    pub fn fill(&mut self, indexes: &[u32], txs: Vec<Transaction>) -> Result<(), CompactError> {
        let block = self.hash();
        if txs.len() != indexes.len() {
            return Err(CompactError::WrongCount { block, asked: indexes.len(), got: txs.len() });
        }
        let mut txids = Vec::with_capacity(txs.len());
        for (&index, tx) in indexes.iter().zip(&txs) {
            let expected = self.ids.get(index as usize).copied().flatten();
            let txid = tx.txid();
            txids.push(txid);
            let got = self.key.short_id(&txid);
            if expected != Some(got) {
                return Err(CompactError::WrongTransaction {
                    block,
                    index,
                    txid,
                    expected: expected.unwrap_or(u64::MAX) & SHORT_ID_MASK,
                    got,
                });
            }
        }
        for ((&index, tx), txid) in indexes.iter().zip(txs).zip(txids) {
            self.slots[index as usize] = Some((tx, txid));
        }
        Ok(())
    }

    /// The block, its txids (in order: each the txid of the transaction at its place, taken
    /// from the pool or hashed here, so the block need not be hashed again) and its
    /// announcement once nothing is missing (the Merkle root is not checked here); itself
    /// otherwise.
    pub fn into_block(self) -> Result<(Block, Vec<Hash256>, CompactBlock), PartialBlock> {
        if self.slots.iter().any(Option::is_none) {
            return Err(self);
        }
        let (txs, txids) = self.slots.into_iter().flatten().unzip();
        Ok((Block { header: self.header, txs }, txids, self.compact))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::Network;
    use crate::primitives::{Amount, OutPoint, TxOut};
    use crate::testkit::{assemble, coinbase, key, p2pkh_lock, spend_p2pkh};

    fn sample() -> (Block, Vec<Transaction>) {
        let p = Network::Regtest.params();
        let k = key(1);
        let cb = coinbase(1, Amount::from_sat(50).unwrap(), p2pkh_lock(&k), b"c");
        let txs: Vec<Transaction> = (0..5u32)
            .map(|i| {
                let op = OutPoint { txid: Hash256([i as u8; 32]), index: i };
                let out = TxOut { value: Amount::from_sat(1000).unwrap(), lock: p2pkh_lock(&k) };
                spend_p2pkh(
                    &k,
                    &[(op, out)],
                    vec![TxOut { value: Amount::from_sat(900).unwrap(), lock: p2pkh_lock(&k) }],
                    0,
                )
            })
            .collect();
        let mut all = vec![cb];
        all.extend(txs.clone());
        (assemble(p, p.genesis_hash, 1_700_000_000, p.genesis_bits, all), txs)
    }

    #[test]
    fn siphash_is_siphash_2_4() {
        // The reference vector of the SipHash paper: key 00..0f, message 00..0e.
        let msg: Vec<u8> = (0..15).collect();
        let h = SipHasher24::new_with_keys(0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908).hash(&msg);
        assert_eq!(h, 0xa129_ca61_49be_45e5);
    }

    #[test]
    fn round_trips_and_rebuilds_from_a_full_pool() {
        let (block, txs) = sample();
        let c = CompactBlock::from_block(&block, &block.txids(), 7);
        assert_eq!(CompactBlock::decode(&c.encode(), 4_000_000).unwrap(), c);
        assert!(c.matches(&block, &block.txids()));
        let pool: Vec<(Hash256, Transaction)> = txs.iter().map(|t| (t.txid(), t.clone())).collect();
        let p = PartialBlock::new(c, pool.iter().map(|(h, t)| (h, t)));
        assert!(p.missing().is_empty());
        let (rebuilt, txids, _) = p.into_block().unwrap();
        assert_eq!((rebuilt, txids), (block.clone(), block.txids()));
    }

    #[test]
    fn missing_transactions_are_filled_and_checked_by_short_id() {
        let (block, txs) = sample();
        let c = CompactBlock::from_block(&block, &block.txids(), 9);
        let pool: Vec<(Hash256, Transaction)> = txs[1..].iter().map(|t| (t.txid(), t.clone())).collect();
        let mut p = PartialBlock::new(c, pool.iter().map(|(h, t)| (h, t)));
        assert_eq!(p.missing(), vec![1]);
        // The wrong transaction for the slot is refused, naming both ids.
        let e = p.fill(&[1], vec![txs[2].clone()]).unwrap_err();
        assert!(matches!(e, CompactError::WrongTransaction { index: 1, .. }), "{e}");
        let e = p.fill(&[1], vec![]).unwrap_err();
        assert!(matches!(e, CompactError::WrongCount { asked: 1, got: 0, .. }), "{e}");
        p.fill(&[1], vec![txs[0].clone()]).unwrap();
        let (rebuilt, txids, _) = p.into_block().unwrap();
        assert_eq!((rebuilt, txids), (block.clone(), block.txids()));
    }

    #[test]
    fn colliding_pool_transactions_leave_the_slot_missing() {
        let (block, txs) = sample();
        let mut c = CompactBlock::from_block(&block, &block.txids(), 1);
        // Two slots claiming one short id: both are asked for.
        c.short_ids[1] = c.short_ids[0];
        let pool: Vec<(Hash256, Transaction)> = txs.iter().map(|t| (t.txid(), t.clone())).collect();
        let p = PartialBlock::new(c.clone(), pool.iter().map(|(h, t)| (h, t)));
        assert_eq!(p.missing(), vec![1, 2]);
        assert!(!c.matches(&block, &block.txids()), "a lying announcement is told apart");
    }

    #[test]
    fn bad_announcements_are_refused() {
        let (block, _) = sample();
        let c = CompactBlock::from_block(&block, &block.txids(), 3);
        let mut no_coinbase = c.clone();
        no_coinbase.prefilled[0].0 = 1;
        let e = CompactBlock::decode(&no_coinbase.encode(), 4_000_000).unwrap_err();
        assert!(e.to_string().contains("coinbase"), "{e}");
        let mut outside = c.clone();
        outside.prefilled.push((99, block.txs[1].clone()));
        let e = CompactBlock::decode(&outside.encode(), 4_000_000).unwrap_err();
        assert!(e.to_string().contains("index 99 is outside"), "{e}");
        // A count claiming more short ids than bytes follow fails before allocating.
        let mut b = c.encode()[..88].to_vec();
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(CompactBlock::decode(&b, 4_000_000), Err(DecodeError::CountTooLarge { .. })));
        let e = CompactBlock::decode(&c.encode(), 100).unwrap_err();
        assert!(matches!(e, DecodeError::TooLarge { .. }), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let _ = CompactBlock::decode(&bytes, 4_000_000);
        }
    }
}
