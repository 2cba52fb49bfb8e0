//! Opcodes and the instruction decoder.
//!
//! Byte values follow Bitcoin's where the operation exists there. Any byte not listed is an
//! invalid opcode wherever it appears in a script that is run (executed branch or not).

use super::ScriptError;

/// Push the empty byte string (false, the number 0).
pub const OP_0: u8 = 0x00;
/// 0x01..=0x4b: push the next `n` bytes.
pub const OP_PUSHBYTES_MAX: u8 = 0x4b;
/// Push: next byte is the length.
pub const OP_PUSHDATA1: u8 = 0x4c;
/// Push: next two bytes (LE) are the length.
pub const OP_PUSHDATA2: u8 = 0x4d;
/// Push the number 1; OP_1 + (n-1) pushes n for n in 1..=16.
pub const OP_1: u8 = 0x51;
/// Push the number 16.
pub const OP_16: u8 = 0x60;
/// Execute the following branch if the top item is true (popped).
pub const OP_IF: u8 = 0x63;
/// Execute the following branch if the top item is false (popped).
pub const OP_NOTIF: u8 = 0x64;
/// Switch branch.
pub const OP_ELSE: u8 = 0x67;
/// End a conditional.
pub const OP_ENDIF: u8 = 0x68;
/// Fail unless the top item is true (popped).
pub const OP_VERIFY: u8 = 0x69;
/// Fail; marks a provably unspendable data output.
pub const OP_RETURN: u8 = 0x6a;
/// Remove the top item.
pub const OP_DROP: u8 = 0x75;
/// Duplicate the top item.
pub const OP_DUP: u8 = 0x76;
/// Push 1 if the top two items are equal, else the empty string.
pub const OP_EQUAL: u8 = 0x87;
/// OP_EQUAL then OP_VERIFY.
pub const OP_EQUALVERIFY: u8 = 0x88;
/// Boolean not of the top item (as a number: 0 -> 1, anything else -> 0).
pub const OP_NOT: u8 = 0x91;
/// Replace the top item with its SHA-256.
pub const OP_SHA256: u8 = 0xa8;
/// Replace the top item with its SHA-256d.
pub const OP_HASH256: u8 = 0xaa;
/// `<sig> <pubkey> CHECKSIG`: push whether the signature is valid for this input's sighash.
pub const OP_CHECKSIG: u8 = 0xac;
/// CHECKSIG then VERIFY.
pub const OP_CHECKSIGVERIFY: u8 = 0xad;
/// `<slot_1>..<slot_n> <t> <pk_1>..<pk_n> <n> CHECKMULTISIG`, see docs/PROTOCOL.md.
pub const OP_CHECKMULTISIG: u8 = 0xae;
/// CHECKMULTISIG then VERIFY.
pub const OP_CHECKMULTISIGVERIFY: u8 = 0xaf;
/// Fail unless the top item (a height, not popped) is <= the transaction's lock time.
pub const OP_CHECKLOCKTIMEVERIFY: u8 = 0xb1;

/// One decoded instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instruction<'a> {
    /// A data push (including OP_0 and OP_1..OP_16, which push their number).
    Push(&'a [u8]),
    /// A small number pushed by OP_1..OP_16.
    Number(u8),
    /// A non-push operation.
    Op(u8),
}

/// Iterates the instructions of a script, failing on truncated pushes.
pub struct Instructions<'a> {
    script: &'a [u8],
    pos: usize,
}

impl<'a> Instructions<'a> {
    /// Decodes `script`.
    pub fn new(script: &'a [u8]) -> Self {
        Instructions { script, pos: 0 }
    }

    /// Byte offset of the next instruction.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn take(&mut self, at: usize, n: usize) -> Result<&'a [u8], ScriptError> {
        let remaining = self.script.len() - self.pos;
        if n > remaining {
            return Err(ScriptError::PushPastEnd { at, need: n, remaining });
        }
        let s = &self.script[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
}

impl<'a> Iterator for Instructions<'a> {
    type Item = Result<(usize, Instruction<'a>), ScriptError>;

    fn next(&mut self) -> Option<Self::Item> {
        let at = self.pos;
        let op = *self.script.get(self.pos)?;
        self.pos += 1;
        let ins = match op {
            OP_0 => Ok(Instruction::Push(&[])),
            1..=OP_PUSHBYTES_MAX => self.take(at, op as usize).map(Instruction::Push),
            OP_PUSHDATA1 => {
                self.take(at, 1).and_then(|l| self.take(at, l[0] as usize)).map(Instruction::Push)
            }
            OP_PUSHDATA2 => self
                .take(at, 2)
                .and_then(|l| self.take(at, u16::from_le_bytes([l[0], l[1]]) as usize))
                .map(Instruction::Push),
            OP_1..=OP_16 => Ok(Instruction::Number(op - OP_1 + 1)),
            _ => Ok(Instruction::Op(op)),
        };
        if ins.is_err() {
            self.pos = self.script.len(); // stop after an error
        }
        Some(ins.map(|i| (at, i)))
    }
}

/// Appends a minimal push of `data` (OP_0, OP_1..OP_16 for one byte 1..=16, direct,
/// PUSHDATA1 or PUSHDATA2), the only encoding unlock data may use.
pub fn push_data(out: &mut Vec<u8>, data: &[u8]) {
    match data.len() {
        0 => out.push(OP_0),
        1 if (1..=16).contains(&data[0]) => out.push(OP_1 + data[0] - 1),
        n @ 1..=0x4b => {
            out.push(n as u8);
            out.extend_from_slice(data);
        }
        n @ 0x4c..=0xff => {
            out.extend_from_slice(&[OP_PUSHDATA1, n as u8]);
            out.extend_from_slice(data);
        }
        n => {
            assert!(n <= u16::MAX as usize, "push of {n} bytes is larger than PUSHDATA2 allows");
            out.push(OP_PUSHDATA2);
            out.extend_from_slice(&(n as u16).to_le_bytes());
            out.extend_from_slice(data);
        }
    }
}

/// Appends a push of the number `n` (OP_0, OP_1..OP_16, or a minimal script-number push).
pub fn push_int(out: &mut Vec<u8>, n: i64) {
    match n {
        0 => out.push(OP_0),
        1..=16 => out.push(OP_1 + (n as u8) - 1),
        _ => push_data(out, &encode_num(n)),
    }
}

/// Minimal little-endian sign-magnitude encoding of a script number (Bitcoin's CScriptNum).
pub fn encode_num(n: i64) -> Vec<u8> {
    if n == 0 {
        return Vec::new();
    }
    let neg = n < 0;
    let mut abs = n.unsigned_abs();
    let mut out = Vec::new();
    while abs > 0 {
        out.push((abs & 0xff) as u8);
        abs >>= 8;
    }
    if out.last().expect("non-zero") & 0x80 != 0 {
        out.push(if neg { 0x80 } else { 0 });
    } else if neg {
        *out.last_mut().expect("non-zero") |= 0x80;
    }
    out
}

/// Decodes a minimally encoded script number of at most `max_len` bytes.
pub fn decode_num(bytes: &[u8], max_len: usize) -> Result<i64, ScriptError> {
    if bytes.len() > max_len {
        return Err(ScriptError::BadNumber {
            detail: format!("{} bytes, at most {max_len} allowed", bytes.len()),
        });
    }
    let Some(&last) = bytes.last() else { return Ok(0) };
    if last & 0x7f == 0 && (bytes.len() == 1 || bytes[bytes.len() - 2] & 0x80 == 0) {
        return Err(ScriptError::BadNumber {
            detail: format!("non-minimal encoding {}", hex::encode(bytes)),
        });
    }
    let mut v: i64 = 0;
    for (i, b) in bytes.iter().enumerate() {
        v |= (*b as i64) << (8 * i);
    }
    if last & 0x80 != 0 {
        v &= !(0x80i64 << (8 * (bytes.len() - 1)));
        v = -v;
    }
    Ok(v)
}

/// Script truth: any non-zero byte, except that a lone sign bit (negative zero) is false.
pub fn cast_to_bool(v: &[u8]) -> bool {
    for (i, b) in v.iter().enumerate() {
        if *b != 0 {
            return !(i == v.len() - 1 && *b == 0x80);
        }
    }
    false
}

/// The number an instruction pushes, if it is a small number or a short push.
pub(crate) fn instruction_number(ins: &Instruction<'_>) -> Option<i64> {
    match ins {
        Instruction::Number(n) => Some(*n as i64),
        Instruction::Push(d) => decode_num(d, 4).ok(),
        Instruction::Op(_) => None,
    }
}

/// The name of a (non-push) opcode this interpreter knows, as Bitcoin spells it.
pub fn name(op: u8) -> Option<&'static str> {
    Some(match op {
        OP_IF => "OP_IF",
        OP_NOTIF => "OP_NOTIF",
        OP_ELSE => "OP_ELSE",
        OP_ENDIF => "OP_ENDIF",
        OP_VERIFY => "OP_VERIFY",
        OP_RETURN => "OP_RETURN",
        OP_DROP => "OP_DROP",
        OP_DUP => "OP_DUP",
        OP_EQUAL => "OP_EQUAL",
        OP_EQUALVERIFY => "OP_EQUALVERIFY",
        OP_NOT => "OP_NOT",
        OP_SHA256 => "OP_SHA256",
        OP_HASH256 => "OP_HASH256",
        OP_CHECKSIG => "OP_CHECKSIG",
        OP_CHECKSIGVERIFY => "OP_CHECKSIGVERIFY",
        OP_CHECKMULTISIG => "OP_CHECKMULTISIG",
        OP_CHECKMULTISIGVERIFY => "OP_CHECKMULTISIGVERIFY",
        OP_CHECKLOCKTIMEVERIFY => "OP_CHECKLOCKTIMEVERIFY",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn numbers_are_minimal() {
        assert_eq!(encode_num(0), Vec::<u8>::new());
        assert_eq!(encode_num(127), vec![0x7f]);
        assert_eq!(encode_num(128), vec![0x80, 0x00]);
        assert_eq!(encode_num(-1), vec![0x81]);
        assert_eq!(encode_num(-128), vec![0x80, 0x80]);
        assert!(decode_num(&[0x00], 4).is_err(), "zero must be empty");
        assert!(decode_num(&[0x01, 0x00], 4).is_err());
        assert!(decode_num(&[1, 2, 3, 4, 5], 4).is_err());
        assert!(!cast_to_bool(&[0, 0x80]));
        assert!(cast_to_bool(&[0x80, 0]));
    }

    proptest! {
        #[test]
        fn num_round_trip(n in -(1i64 << 39)..(1i64 << 39)) {
            prop_assert_eq!(decode_num(&encode_num(n), 5).unwrap(), n);
        }

        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            for ins in Instructions::new(&bytes) { let _ = ins; }
        }
    }
}
