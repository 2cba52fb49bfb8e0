//! Addresses: bech32m strings naming a P2PKH key hash or a P2SH script hash on one network.
//!
//! Format (docs/PROTOCOL.md "Addresses"): bech32m (BIP 350) with a per-network
//! human-readable part (`qrt` regtest, `qdev` dev) over 33 bytes: a kind byte (0 = P2PKH,
//! 1 = P2SH) and the 32-byte hash. The checksum catches typos; the prefix catches wrong-network
//! use.

use bech32::primitives::decode::CheckedHrpstring;
use bech32::{Bech32m, Hrp};
use std::fmt;

/// What an address pays to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressKind {
    /// `OP_DUP OP_HASH256 <hash> OP_EQUALVERIFY OP_CHECKSIG`, hash = SHA-256d(public key).
    P2pkh,
    /// `OP_HASH256 <hash> OP_EQUAL`, hash = SHA-256d(redeem script).
    P2sh,
}

/// A decoded address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Address {
    /// The human-readable prefix of the network it belongs to.
    pub hrp: &'static str,
    /// P2PKH or P2SH.
    pub kind: AddressKind,
    /// The committed hash.
    pub hash: [u8; 32],
}

/// Why a string is not a valid address for the expected network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Not bech32m, or the checksum does not match (a typo).
    #[error("not a valid address (bech32m checksum or format): {0}")]
    Encoding(String),
    /// A valid address of another network.
    #[error("address is for network prefix {got:?}, expected {expected:?}")]
    WrongNetwork { got: String, expected: &'static str },
    /// Unknown kind byte or wrong length.
    #[error("unsupported address payload: {0}")]
    Payload(String),
}

impl Address {
    /// Encodes as a bech32m string.
    pub fn encode(&self) -> String {
        let mut data = Vec::with_capacity(33);
        data.push(match self.kind {
            AddressKind::P2pkh => 0,
            AddressKind::P2sh => 1,
        });
        data.extend_from_slice(&self.hash);
        bech32::encode::<Bech32m>(Hrp::parse_unchecked(self.hrp), &data).expect("33 bytes always encode")
    }

    /// Decodes `s`, which must belong to the network whose prefix is `expected_hrp`.
    pub fn decode(s: &str, expected_hrp: &'static str) -> Result<Address, AddressError> {
        let checked =
            CheckedHrpstring::new::<Bech32m>(s.trim()).map_err(|e| AddressError::Encoding(e.to_string()))?;
        let hrp = checked.hrp().to_lowercase();
        if hrp != expected_hrp {
            return Err(AddressError::WrongNetwork { got: hrp, expected: expected_hrp });
        }
        let data: Vec<u8> = checked.byte_iter().collect();
        let (kind, hash) = match data.split_first() {
            Some((0, h)) => (AddressKind::P2pkh, h),
            Some((1, h)) => (AddressKind::P2sh, h),
            Some((k, _)) => return Err(AddressError::Payload(format!("unknown kind byte {k}"))),
            None => return Err(AddressError::Payload("empty".into())),
        };
        let hash: [u8; 32] = hash
            .try_into()
            .map_err(|_| AddressError::Payload(format!("hash of {} bytes, expected 32", hash.len())))?;
        let address = Address { hrp: expected_hrp, kind, hash };
        // 33 bytes take 53 five-bit characters, one bit of padding: bech32 leaves its value to
        // the decoder, and accepting a set bit would give every address a second spelling.
        if address.encode() != s.trim().to_lowercase() {
            return Err(AddressError::Encoding("non-zero padding bit (not the canonical encoding)".into()));
        }
        Ok(address)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_typo_and_wrong_network() {
        let a = Address { hrp: "qrt", kind: AddressKind::P2pkh, hash: [7; 32] };
        let s = a.encode();
        assert!(s.starts_with("qrt1"));
        assert_eq!(Address::decode(&s, "qrt").unwrap(), a);
        let p2sh = Address { kind: AddressKind::P2sh, ..a };
        assert_eq!(Address::decode(&p2sh.encode(), "qrt").unwrap(), p2sh);
        // One changed character: the checksum catches it.
        let mut typo: Vec<char> = s.chars().collect();
        let i = typo.len() - 3;
        typo[i] = if typo[i] == 'q' { 'p' } else { 'q' };
        let typo: String = typo.into_iter().collect();
        assert!(matches!(Address::decode(&typo, "qrt"), Err(AddressError::Encoding(_))));
        // The same data with the padding bit set, and a valid checksum (found by the fuzz
        // target's canonical-form assertion; fuzz/regressions/address/nonzero-padding-bit).
        let padded = "qrt1qpd95kj6tfd95kj6tfd95kj6tfd95kj6tfd95kj6tfd95kj6tfd946ttrs6";
        assert!(CheckedHrpstring::new::<Bech32m>(padded).is_ok(), "the checksum is valid");
        assert_eq!(
            Address::decode(padded, "qrt"),
            Err(AddressError::Encoding("non-zero padding bit (not the canonical encoding)".into()))
        );
        assert_eq!(
            Address::decode(&padded.to_uppercase(), "qrt").map(|_| ()),
            Address::decode(padded, "qrt").map(|_| ())
        );
        assert_eq!(
            Address::decode(&s, "qdev"),
            Err(AddressError::WrongNetwork { got: "qrt".into(), expected: "qdev" })
        );
    }
}
