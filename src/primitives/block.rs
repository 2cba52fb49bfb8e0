//! Blocks: a header and its transactions, with the canonical encoding.

use super::encode::{DecodeError, Reader};
use super::hash::Hash256;
use super::header::{BlockHeader, HEADER_SIZE};
use super::tx::{Transaction, MIN_ENCODED_TX_SIZE};

/// A block as decoded: nothing about it has been checked. See
/// [`crate::consensus::CheckedBlock`] for the validated form.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// Transactions; the first must be the coinbase.
    pub txs: Vec<Transaction>,
}

impl Block {
    /// The block id.
    pub fn hash(&self) -> Hash256 {
        self.header.hash()
    }

    /// Txids in block order.
    pub fn txids(&self) -> Vec<Hash256> {
        self.txs.iter().map(Transaction::txid).collect()
    }

    /// Canonical encoding: the 80-byte header, a u32 LE tx count, then each transaction.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_size());
        out.extend_from_slice(&self.header.to_bytes());
        out.extend_from_slice(&(self.txs.len() as u32).to_le_bytes());
        for tx in &self.txs {
            tx.encode_to(&mut out);
        }
        out
    }

    /// Length of the canonical encoding.
    pub fn encoded_size(&self) -> usize {
        HEADER_SIZE + 4 + self.txs.iter().map(Transaction::encoded_size).sum::<usize>()
    }

    /// Decodes a block that must use all of `bytes` and be at most `max_size` bytes long
    /// (the size limit is checked before anything is parsed).
    pub fn decode(bytes: &[u8], max_size: usize) -> Result<Block, DecodeError> {
        if bytes.len() > max_size {
            return Err(DecodeError::TooLarge { what: "block", got: bytes.len(), max: max_size });
        }
        let mut r = Reader::new(bytes);
        let header = BlockHeader::from_bytes(r.take(HEADER_SIZE, "block header")?)?;
        let n = r.count("block transactions", MIN_ENCODED_TX_SIZE)?;
        let mut txs = Vec::with_capacity(n);
        for _ in 0..n {
            txs.push(Transaction::decode_from(&mut r)?);
        }
        r.finish("block")?;
        Ok(Block { header, txs })
    }
}
