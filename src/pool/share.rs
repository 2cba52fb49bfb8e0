//! Shares: difficulty ↔ target, and the header a Stratum share stands for. Pure functions,
//! used by the pool (validation) and by the Stratum miner (building headers): the rules
//! are docs/PROTOCOL.md "Mining pool (Stratum V1)".
//!
//! Difficulty 1 is Bitcoin's pool difficulty: target `0x00000000ffff0000…` = `0xffff × 2^208`.
//! A share of difficulty `d` must hash at or below `diff1 / d`. Difficulties are fractional
//! (regtest's and the dev network's targets are far above diff1): `d` is taken in units of
//! 2^-32, so the smallest is 2^-32 (target ≈ 2^255).

use crate::primitives::{sha256d, BlockHeader, Hash256, U256};

/// The difficulty-1 target, `0xffff × 2^208`.
pub fn diff1() -> U256 {
    U256::from(0xffffu128).shl(208)
}

/// The target of a share of difficulty `d` (`d` below 2^-32, zero, negative or NaN counts
/// as 2^-32; above 2^94, as 2^94).
pub fn target_for(d: f64) -> U256 {
    // NaN and non-positive count as the easiest; huge (or infinite) as the hardest.
    let scaled = if d.is_nan() || d <= 0.0 { 1.0 } else { (d * 4_294_967_296.0).round().clamp(1.0, 1e38) };
    let scaled = scaled as u128;
    diff1().shl(32).checked_div(&U256::from(scaled)).unwrap_or(U256::ZERO)
}

/// The difficulty of a hash (or target): diff1 / value.
pub fn difficulty_of(value: &U256) -> f64 {
    diff1().to_f64() / value.to_f64().max(1.0)
}

/// A hash as a number (the header hash is little-endian).
pub fn hash_value(h: &Hash256) -> U256 {
    U256::from_le_bytes(&h.0)
}

/// Stratum's `prevhash`: the header's 32 prev bytes with each 4-byte word reversed, hex.
pub fn prevhash_field(prev: &Hash256) -> String {
    let mut b = prev.0;
    for w in b.chunks_mut(4) {
        w.reverse();
    }
    hex::encode(b)
}

/// The header's prev bytes from Stratum's `prevhash` field (the inverse of
/// [`prevhash_field`]); `None` unless 64 hex digits.
pub fn prev_from_field(s: &str) -> Option<Hash256> {
    let mut b: [u8; 32] = hex::decode(s).ok()?.try_into().ok()?;
    for w in b.chunks_mut(4) {
        w.reverse();
    }
    Some(Hash256(b))
}

/// Everything of a job a header needs, decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct JobParts {
    /// The parent block.
    pub prev: Hash256,
    /// Coinbase bytes before extranonce1.
    pub coinb1: Vec<u8>,
    /// Coinbase bytes after extranonce2.
    pub coinb2: Vec<u8>,
    /// The coinbase's Merkle siblings, bottom up.
    pub branch: Vec<Hash256>,
    /// Header version.
    pub version: u32,
    /// Header bits.
    pub bits: u32,
}

impl JobParts {
    /// The coinbase with these extranonces.
    pub fn coinbase(&self, extranonce1: &[u8], extranonce2: &[u8]) -> Vec<u8> {
        [&self.coinb1[..], extranonce1, extranonce2, &self.coinb2[..]].concat()
    }

    /// The Merkle root for a coinbase: its txid folded with the branch.
    pub fn merkle_root(&self, coinbase: &[u8]) -> Hash256 {
        self.branch.iter().fold(sha256d(coinbase), |cur, sib| {
            let mut buf = [0u8; 64];
            buf[..32].copy_from_slice(&cur.0);
            buf[32..].copy_from_slice(&sib.0);
            sha256d(&buf)
        })
    }

    /// The header of a share.
    pub fn header(&self, extranonce1: &[u8], extranonce2: &[u8], ntime: u32, nonce: u32) -> BlockHeader {
        BlockHeader {
            version: self.version,
            prev: self.prev,
            merkle_root: self.merkle_root(&self.coinbase(extranonce1, extranonce2)),
            time: ntime,
            bits: self.bits,
            nonce,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn difficulty_and_target_are_inverse() {
        assert_eq!(target_for(1.0), diff1());
        assert_eq!(target_for(2.0), diff1().shr(1));
        assert_eq!(target_for(0.5), diff1().shl(1));
        // The smallest difficulty and nonsense both give the easiest target, never a panic.
        for d in [0.0, -1.0, f64::NAN, 1e-30] {
            assert_eq!(target_for(d), diff1().shl(32), "{d}");
        }
        assert!(target_for(f64::INFINITY) <= diff1());
        let d = difficulty_of(&target_for(1.0 / 1024.0));
        assert!((d - 1.0 / 1024.0).abs() < 1e-9, "{d}");
    }

    #[test]
    fn prevhash_words_are_swapped_and_back() {
        let h = Hash256(std::array::from_fn(|i| i as u8));
        let f = prevhash_field(&h);
        assert!(f.starts_with("0302010007060504"), "{f}");
        assert_eq!(prev_from_field(&f), Some(h));
        assert_eq!(prev_from_field("00"), None);
    }
}
