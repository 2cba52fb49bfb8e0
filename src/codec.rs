//! The single bincode configuration used for storage records and wire messages.
//!
//! Everything that goes through bincode goes through [`encode`] and [`decode`], so the format
//! (or the crate) can be swapped without touching callers. Consensus-critical encodings
//! (header preimage, transactions, blocks) are hand-written in [`crate::primitives::encode`]
//! and are never produced by bincode.
//!
//! Configuration: little-endian, fixed-width integers (lengths as u64), and a hard limit of
//! [`MAX_DECODE_BYTES`] on every decode, so a hostile length prefix cannot make us allocate.

use bincode::config::{self, Configuration, Fixint, Limit, LittleEndian};

/// Upper bound on the bytes any single bincode decode may claim (64 MiB).
pub const MAX_DECODE_BYTES: usize = 64 * 1024 * 1024;

type Config = Configuration<LittleEndian, Fixint, Limit<MAX_DECODE_BYTES>>;

const CONFIG: Config =
    config::standard().with_little_endian().with_fixed_int_encoding().with_limit::<MAX_DECODE_BYTES>();

/// Errors from the codec.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The input is larger than the decode limit.
    #[error("record of {got} bytes exceeds the decode limit of {max} bytes")]
    TooLarge { got: usize, max: usize },
    /// bincode could not decode the bytes.
    #[error("malformed record: {0}")]
    Malformed(String),
    /// The value decoded but bytes were left over.
    #[error("{extra} trailing bytes after a {used}-byte record")]
    TrailingBytes { used: usize, extra: usize },
    /// bincode could not encode the value (only possible past the size limit).
    #[error("cannot encode record: {0}")]
    Encode(String),
}

/// Encodes a value with the pinned configuration.
pub fn encode<T: bincode::Encode>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::encode_to_vec(value, CONFIG).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Decodes a value that must use every byte of `bytes`.
pub fn decode<T: bincode::Decode<()>>(bytes: &[u8]) -> Result<T, CodecError> {
    if bytes.len() > MAX_DECODE_BYTES {
        return Err(CodecError::TooLarge { got: bytes.len(), max: MAX_DECODE_BYTES });
    }
    let (value, used) =
        bincode::decode_from_slice(bytes, CONFIG).map_err(|e| CodecError::Malformed(e.to_string()))?;
    if used != bytes.len() {
        return Err(CodecError::TrailingBytes { used, extra: bytes.len() - used });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_trailing_bytes() {
        let v: (u32, Vec<u8>) = (7, vec![1, 2, 3]);
        let bytes = encode(&v).unwrap();
        assert_eq!(bytes.len(), 4 + 8 + 3, "fixed-width ints, u64 length prefix");
        assert_eq!(decode::<(u32, Vec<u8>)>(&bytes).unwrap(), v);
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(decode::<(u32, Vec<u8>)>(&longer), Err(CodecError::TrailingBytes { .. })));
    }

    #[test]
    fn hostile_length_prefix_does_not_allocate() {
        // A Vec<u8> claiming 2^62 elements must be rejected by the limit, not attempted.
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&(1u64 << 62).to_le_bytes());
        assert!(decode::<Vec<u8>>(&bytes).is_err());
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(decode::<Vec<u64>>(&bytes).is_err());
    }

    #[test]
    fn input_over_the_limit_is_refused_before_decoding() {
        let bytes = vec![0u8; MAX_DECODE_BYTES + 1];
        match decode::<Vec<u8>>(&bytes) {
            Err(CodecError::TooLarge { got, max }) => {
                assert_eq!((got, max), (MAX_DECODE_BYTES + 1, MAX_DECODE_BYTES))
            }
            other => panic!("{other:?}"),
        }
    }
}
