//! Hand-written canonical encoding: a bounds-checked reader and the decode error.
//!
//! Every consensus encoding (header preimage, transaction, block) is a fixed field-by-field
//! little-endian layout documented in docs/PROTOCOL.md. Lengths and counts are `u32` LE and
//! are checked against the bytes that remain *before* anything is allocated, so hostile input
//! can never make a decoder allocate more than its input size.

/// Why bytes failed to decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended early.
    #[error("unexpected end of input reading {what}: need {needed} bytes, {remaining} remain")]
    UnexpectedEnd { what: &'static str, needed: usize, remaining: usize },
    /// A count or length is larger than the remaining input could possibly hold.
    #[error("{what} count {got} cannot fit in the {remaining} bytes that remain")]
    CountTooLarge { what: &'static str, got: u64, remaining: usize },
    /// The input is larger than the encoding allows.
    #[error("{what} of {got} bytes exceeds the limit of {max} bytes")]
    TooLarge { what: &'static str, got: usize, max: usize },
    /// Bytes were left after the value.
    #[error("{extra} trailing bytes after {what}")]
    TrailingBytes { what: &'static str, extra: usize },
    /// A field holds a value the encoding forbids.
    #[error("invalid {what}: {detail}")]
    Invalid { what: &'static str, detail: String },
}

/// A cursor over untrusted bytes; every read is bounds-checked.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Reads exactly `n` bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::UnexpectedEnd { what, needed: n, remaining: self.remaining() });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Reads a fixed-size array.
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    /// Reads a little-endian u32.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    /// Reads a little-endian u64.
    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// Reads a u32 count of items each at least `min_item_size` bytes long, rejecting counts
    /// the remaining input cannot hold (so the caller may allocate `count` items safely).
    pub fn count(&mut self, what: &'static str, min_item_size: usize) -> Result<usize, DecodeError> {
        let n = self.u32(what)? as usize;
        if n.saturating_mul(min_item_size.max(1)) > self.remaining() {
            return Err(DecodeError::CountTooLarge { what, got: n as u64, remaining: self.remaining() });
        }
        Ok(n)
    }

    /// Reads a u32 length followed by that many bytes.
    pub fn var_bytes(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let n = self.count(what, 1)?;
        self.take(n, what)
    }

    /// Fails if any input is left.
    pub fn finish(&self, what: &'static str) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(DecodeError::TrailingBytes { what, extra }),
        }
    }
}

/// Appends a u32 length prefix and the bytes.
pub fn put_var_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_larger_than_input_are_rejected_before_allocation() {
        let mut bytes = u32::MAX.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 10]);
        let mut r = Reader::new(&bytes);
        assert_eq!(
            r.count("inputs", 40),
            Err(DecodeError::CountTooLarge { what: "inputs", got: u32::MAX as u64, remaining: 10 })
        );
        let mut r = Reader::new(&[1, 2]);
        assert!(matches!(r.u32("x"), Err(DecodeError::UnexpectedEnd { needed: 4, remaining: 2, .. })));
    }
}
