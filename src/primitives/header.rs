//! The block header and its fixed 80-byte little-endian preimage.

use super::encode::DecodeError;
use super::hash::{sha256d, Hash256};

/// Size of the header preimage.
pub const HEADER_SIZE: usize = 80;

/// A block header. Its id is SHA-256d of [`BlockHeader::to_bytes`].
///
/// Layout (docs/PROTOCOL.md "Block header"): version u32 | prev 32 | merkle_root 32 |
/// time u32 | bits u32 | nonce u32, all little-endian: 80 bytes. The first 64 bytes form one
/// SHA-256 block that does not depend on the nonce; the last 16 bytes hold the end of the
/// Merkle root, the time, the bits and the nonce, so a miner hashes the first block once
/// (the midstate) and each nonce costs one compression plus the outer hash.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, bincode::Encode, bincode::Decode)]
pub struct BlockHeader {
    /// Format version; not interpreted by consensus.
    pub version: u32,
    /// Id of the parent block (all zero for genesis).
    pub prev: Hash256,
    /// Merkle root of the block's txids.
    pub merkle_root: Hash256,
    /// Block time, seconds since the Unix epoch.
    pub time: u32,
    /// Proof-of-work target in compact form.
    pub bits: u32,
    /// Proof-of-work nonce.
    pub nonce: u32,
}

impl BlockHeader {
    /// The 80-byte preimage.
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        b[0..4].copy_from_slice(&self.version.to_le_bytes());
        b[4..36].copy_from_slice(&self.prev.0);
        b[36..68].copy_from_slice(&self.merkle_root.0);
        b[68..72].copy_from_slice(&self.time.to_le_bytes());
        b[72..76].copy_from_slice(&self.bits.to_le_bytes());
        b[76..80].copy_from_slice(&self.nonce.to_le_bytes());
        b
    }

    /// Parses the 80-byte preimage.
    pub fn from_bytes(b: &[u8]) -> Result<BlockHeader, DecodeError> {
        if b.len() != HEADER_SIZE {
            return Err(DecodeError::Invalid {
                what: "header length",
                detail: format!("got {} bytes, expected {HEADER_SIZE}", b.len()),
            });
        }
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let hash_at = |i: usize| Hash256(b[i..i + 32].try_into().expect("32 bytes"));
        Ok(BlockHeader {
            version: u32_at(0),
            prev: hash_at(4),
            merkle_root: hash_at(36),
            time: u32_at(68),
            bits: u32_at(72),
            nonce: u32_at(76),
        })
    }

    /// The block id: SHA-256d of the 80-byte preimage.
    pub fn hash(&self) -> Hash256 {
        sha256d(&self.to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitcoin_genesis_header_hashes_to_its_known_id() {
        // quarry's header layout is byte-for-byte Bitcoin's, so Bitcoin's genesis header is a
        // cross-implementation test vector.
        let hex_header = "0100000000000000000000000000000000000000000000000000000000000000\
                          000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa\
                          4b1e5e4a29ab5f49ffff001d1dac2b7c";
        let bytes = hex::decode(hex_header).unwrap();
        let h = BlockHeader::from_bytes(&bytes).unwrap();
        assert_eq!(h.time, 1231006505);
        assert_eq!(h.bits, 0x1d00ffff);
        assert_eq!(h.nonce, 2083236893);
        assert_eq!(h.to_bytes().to_vec(), bytes);
        assert_eq!(h.hash().to_string(), "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f");
    }
}
