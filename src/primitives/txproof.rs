//! `gettxoutproof` bytes: a block header, a txid and its Merkle membership proof, so a
//! light client (the wallet's `verify-tx`) can check a confirmation against the header's
//! proof of work and Merkle root alone (docs/PROTOCOL.md "Transaction proofs").
//!
//! Layout: 80-byte header, 32-byte txid, u32 LE index, u32 LE leaf count, u32 LE sibling
//! count, then the siblings (32 bytes each, bottom level first); at most
//! [`MAX_PROOF_SIBLINGS`] siblings and no trailing bytes.

use super::encode::{DecodeError, Reader};
use super::hash::Hash256;
use super::header::BlockHeader;
use super::merkle::MerkleProof;

/// Most siblings a proof may carry (a tree of 2^64 leaves; blocks hold far fewer).
pub const MAX_PROOF_SIBLINGS: usize = 64;

/// A transaction's proof of inclusion in a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxProof {
    /// The block's header.
    pub header: BlockHeader,
    /// The proven transaction.
    pub txid: Hash256,
    /// Its Merkle path to `header.merkle_root`.
    pub proof: MerkleProof,
}

impl TxProof {
    /// The canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(80 + 32 + 12 + 32 * self.proof.siblings.len());
        out.extend_from_slice(&self.header.to_bytes());
        out.extend_from_slice(&self.txid.0);
        out.extend_from_slice(&self.proof.index.to_le_bytes());
        out.extend_from_slice(&self.proof.leaf_count.to_le_bytes());
        out.extend_from_slice(&(self.proof.siblings.len() as u32).to_le_bytes());
        for s in &self.proof.siblings {
            out.extend_from_slice(&s.0);
        }
        out
    }

    /// Parses untrusted bytes (bounded: at most [`MAX_PROOF_SIBLINGS`] siblings).
    pub fn decode(bytes: &[u8]) -> Result<TxProof, DecodeError> {
        let mut r = Reader::new(bytes);
        let header = BlockHeader::from_bytes(r.take(80, "proof header")?)?;
        let txid = Hash256(r.array("proof txid")?);
        let index = r.u32("proof index")?;
        let leaf_count = r.u32("proof leaf count")?;
        let n = r.count("proof siblings", 32)?;
        if n > MAX_PROOF_SIBLINGS {
            return Err(DecodeError::TooLarge {
                what: "proof sibling list",
                got: n,
                max: MAX_PROOF_SIBLINGS,
            });
        }
        let mut siblings = Vec::with_capacity(n);
        for _ in 0..n {
            siblings.push(Hash256(r.array("proof sibling")?));
        }
        r.finish("proof")?;
        Ok(TxProof { header, txid, proof: MerkleProof { index, leaf_count, siblings } })
    }

    /// True if the proof leads from `txid` to the header's Merkle root.
    pub fn verifies(&self) -> bool {
        self.proof.verify(&self.txid, &self.header.merkle_root).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::sha256d;

    fn sample() -> TxProof {
        let leaves: Vec<Hash256> = (0u8..5).map(|i| sha256d(&[i])).collect();
        let (root, _) = crate::primitives::merkle::merkle_root(&leaves);
        let header = BlockHeader {
            version: 1,
            prev: Hash256::ZERO,
            merkle_root: root,
            time: 7,
            bits: 0x207fffff,
            nonce: 9,
        };
        TxProof { header, txid: leaves[3], proof: MerkleProof::build(&leaves, 3).unwrap() }
    }

    #[test]
    fn round_trips_and_verifies() {
        let p = sample();
        let bytes = p.encode();
        assert_eq!(bytes.len(), 80 + 32 + 12 + 32 * p.proof.siblings.len());
        let back = TxProof::decode(&bytes).unwrap();
        assert_eq!(back, p);
        assert!(back.verifies());
        let mut wrong = back.clone();
        wrong.txid = Hash256::ZERO;
        assert!(!wrong.verifies());
    }

    #[test]
    fn refuses_truncated_trailing_and_oversized() {
        let bytes = sample().encode();
        for cut in [0, 79, 111, bytes.len() - 1] {
            assert!(TxProof::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(TxProof::decode(&long), Err(DecodeError::TrailingBytes { .. })));
        let mut huge = bytes[..124].to_vec();
        huge[120..124].copy_from_slice(&65u32.to_le_bytes());
        huge.extend(std::iter::repeat(0u8).take(65 * 32));
        assert!(matches!(TxProof::decode(&huge), Err(DecodeError::TooLarge { got: 65, .. })));
    }
}
