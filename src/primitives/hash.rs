//! SHA-256 and SHA-256d, and the 32-byte hash type used for block ids, txids and Merkle nodes.

use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// A 32-byte hash in internal byte order (the order SHA-256 emits).
///
/// Like Bitcoin, hashes are *displayed* byte-reversed, so a block id with proof of work shows
/// its leading zeros first. [`fmt::Display`] and [`FromStr`] use that display order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, bincode::Encode, bincode::Decode)]
pub struct Hash256(pub [u8; 32]);

impl Hash256 {
    /// The all-zero hash: the previous-block field of a genesis header, the null outpoint txid.
    pub const ZERO: Hash256 = Hash256([0; 32]);

    /// The raw bytes in internal order.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Error parsing a displayed hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashParseError {
    /// Not 64 hex digits.
    #[error("a hash is 64 hex digits, got {got} characters")]
    Length { got: usize },
    /// A character is not a hex digit.
    #[error("a hash is hex, got an invalid digit")]
    Hex,
}

impl FromStr for Hash256 {
    type Err = HashParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 64 {
            return Err(HashParseError::Length { got: s.len() });
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| HashParseError::Hex)?;
        bytes.reverse();
        Ok(Hash256(bytes))
    }
}

impl fmt::Display for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rev = self.0;
        rev.reverse();
        f.write_str(&hex::encode(rev))
    }
}

/// JSON (RPC) form: the displayed 64-hex-digit string, as Core prints block ids and txids.
impl serde::Serialize for Hash256 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Hash256 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Single SHA-256.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Double SHA-256: `SHA256(SHA256(data))`, used for ids, Merkle nodes, sighash and P2SH.
pub fn sha256d(data: &[u8]) -> Hash256 {
    Hash256(Sha256::digest(Sha256::digest(data)).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256d_of_empty_matches_known_value() {
        // SHA256(SHA256("")), a widely published constant.
        assert_eq!(
            hex::encode(sha256d(b"").0),
            "5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456"
        );
    }

    #[test]
    fn display_is_byte_reversed_and_parses_back() {
        let mut b = [0u8; 32];
        b[31] = 0xab;
        b[0] = 0x01;
        let h = Hash256(b);
        let s = h.to_string();
        assert!(s.starts_with("ab"));
        assert!(s.ends_with("01"));
        assert_eq!(s.parse::<Hash256>().unwrap(), h);
        assert_eq!("zz".parse::<Hash256>(), Err(HashParseError::Length { got: 2 }));
    }
}
