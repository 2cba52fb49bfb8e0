//! Transactions: outpoints, inputs, outputs, and the canonical encoding that defines the txid.

use super::amount::{Amount, MAX_MONEY};
use super::encode::{put_var_bytes, DecodeError, Reader};
use super::hash::{sha256d, Hash256};
use std::fmt;

/// Raw script bytes: a locking script on an output, or the unlock data on an input.
/// The language is defined in [`crate::script`].
#[derive(Clone, PartialEq, Eq, Hash, Default, bincode::Encode, bincode::Decode)]
pub struct Script(pub Vec<u8>);

impl Script {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// True for the empty script.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Script({})", hex::encode(&self.0))
    }
}

/// A reference to an output: the txid that created it and its index in that tx's outputs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, bincode::Encode, bincode::Decode)]
pub struct OutPoint {
    /// Id of the transaction holding the output.
    pub txid: Hash256,
    /// Position of the output in that transaction.
    pub index: u32,
}

impl OutPoint {
    /// The outpoint a coinbase input names: zero txid, index `u32::MAX`.
    pub const NULL: OutPoint = OutPoint { txid: Hash256::ZERO, index: u32::MAX };

    /// The 36-byte canonical form: txid then index LE. Also the UTXO-set key.
    pub fn to_bytes(&self) -> [u8; 36] {
        let mut b = [0u8; 36];
        b[..32].copy_from_slice(&self.txid.0);
        b[32..].copy_from_slice(&self.index.to_le_bytes());
        b
    }

    /// Parses the 36-byte canonical form.
    pub fn from_bytes(b: &[u8]) -> Result<OutPoint, DecodeError> {
        let mut r = Reader::new(b);
        let op = OutPoint { txid: Hash256(r.array("outpoint txid")?), index: r.u32("outpoint index")? };
        r.finish("outpoint")?;
        Ok(op)
    }
}

impl fmt::Display for OutPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.txid, self.index)
    }
}

/// A transaction input: the output it spends and the data that unlocks it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TxIn {
    /// The output being spent ([`OutPoint::NULL`] in a coinbase).
    pub prevout: OutPoint,
    /// Push-only data satisfying the spent output's locking script (in a coinbase: the height
    /// push followed by arbitrary data).
    pub unlock: Script,
}

/// A transaction output: an amount and the script that must be satisfied to spend it.
#[derive(Clone, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub struct TxOut {
    /// Value in base units.
    pub value: Amount,
    /// The locking script.
    pub lock: Script,
}

/// A transaction.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Transaction {
    /// Format version (1). Not interpreted by consensus.
    pub version: u32,
    /// Inputs, in order.
    pub inputs: Vec<TxIn>,
    /// Outputs, in order.
    pub outputs: Vec<TxOut>,
    /// Height lock: the tx may only be in a block at height `>= lock_time` (0: no lock).
    pub lock_time: u32,
}

/// Smallest canonical input: 32-byte txid, u32 index, u32 empty unlock length.
pub const MIN_INPUT_SIZE: usize = 40;
/// Smallest canonical output: u64 value and u32 empty script length.
pub const MIN_OUTPUT_SIZE: usize = 12;
/// Smallest canonical transaction (one input, one output): 68 bytes. Being larger than 64
/// bytes, no transaction can be mistaken for an inner Merkle node.
pub const MIN_TX_SIZE: usize = 4 + 4 + MIN_INPUT_SIZE + 4 + MIN_OUTPUT_SIZE + 4;
/// Smallest *encodable* transaction (no inputs, no outputs): 16 bytes. Such a transaction is
/// invalid, but it decodes so that validation can name the rule it breaks.
pub const MIN_ENCODED_TX_SIZE: usize = 16;

impl Transaction {
    /// True if this is a coinbase: exactly one input, spending [`OutPoint::NULL`].
    pub fn is_coinbase(&self) -> bool {
        self.inputs.len() == 1 && self.inputs[0].prevout == OutPoint::NULL
    }

    /// Appends the canonical encoding (docs/PROTOCOL.md "Transaction").
    pub fn encode_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.inputs.len() as u32).to_le_bytes());
        for i in &self.inputs {
            out.extend_from_slice(&i.prevout.to_bytes());
            put_var_bytes(out, &i.unlock.0);
        }
        out.extend_from_slice(&(self.outputs.len() as u32).to_le_bytes());
        for o in &self.outputs {
            out.extend_from_slice(&o.value.to_sat().to_le_bytes());
            put_var_bytes(out, &o.lock.0);
        }
        out.extend_from_slice(&self.lock_time.to_le_bytes());
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_size());
        self.encode_to(&mut out);
        out
    }

    /// Length of the canonical encoding, computed without encoding.
    pub fn encoded_size(&self) -> usize {
        let ins: usize = self.inputs.iter().map(|i| MIN_INPUT_SIZE + i.unlock.len()).sum();
        let outs: usize = self.outputs.iter().map(|o| MIN_OUTPUT_SIZE + o.lock.len()).sum();
        4 + 4 + ins + 4 + outs + 4
    }

    /// The transaction id: SHA-256d of the canonical encoding (unlock data included).
    pub fn txid(&self) -> Hash256 {
        sha256d(&self.encode())
    }

    /// Decodes one transaction from the reader. Output values above the money supply are
    /// rejected here, so an [`Amount`] is always in range.
    pub fn decode_from(r: &mut Reader<'_>) -> Result<Transaction, DecodeError> {
        let version = r.u32("tx version")?;
        let n_in = r.count("tx inputs", MIN_INPUT_SIZE)?;
        let mut inputs = Vec::with_capacity(n_in);
        for _ in 0..n_in {
            let txid = Hash256(r.array("input txid")?);
            let index = r.u32("input index")?;
            let unlock = Script(r.var_bytes("unlock data")?.to_vec());
            inputs.push(TxIn { prevout: OutPoint { txid, index }, unlock });
        }
        let n_out = r.count("tx outputs", MIN_OUTPUT_SIZE)?;
        let mut outputs = Vec::with_capacity(n_out);
        for _ in 0..n_out {
            let sat = r.u64("output value")?;
            let value = Amount::from_sat(sat).map_err(|_| DecodeError::Invalid {
                what: "output value",
                detail: format!("{sat} exceeds the money supply {MAX_MONEY}"),
            })?;
            let lock = Script(r.var_bytes("locking script")?.to_vec());
            outputs.push(TxOut { value, lock });
        }
        let lock_time = r.u32("tx lock time")?;
        Ok(Transaction { version, inputs, outputs, lock_time })
    }

    /// Decodes a transaction that must use all of `bytes` and be at most `max_size` bytes.
    pub fn decode(bytes: &[u8], max_size: usize) -> Result<Transaction, DecodeError> {
        if bytes.len() > max_size {
            return Err(DecodeError::TooLarge { what: "transaction", got: bytes.len(), max: max_size });
        }
        let mut r = Reader::new(bytes);
        let tx = Transaction::decode_from(&mut r)?;
        r.finish("transaction")?;
        Ok(tx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample_tx() -> Transaction {
        Transaction {
            version: 1,
            inputs: vec![TxIn {
                prevout: OutPoint { txid: Hash256([7; 32]), index: 3 },
                unlock: Script(vec![1, 2, 3]),
            }],
            outputs: vec![TxOut { value: Amount::from_sat(5000).unwrap(), lock: Script(vec![0xac]) }],
            lock_time: 9,
        }
    }

    #[test]
    fn encoding_layout_and_round_trip() {
        let tx = sample_tx();
        let bytes = tx.encode();
        assert_eq!(bytes.len(), tx.encoded_size());
        assert_eq!(bytes.len(), MIN_TX_SIZE + 3 + 1);
        assert_eq!(&bytes[0..4], &[1, 0, 0, 0]);
        assert_eq!(Transaction::decode(&bytes, 1 << 20).unwrap(), tx);
        assert!(Transaction::decode(&bytes[..bytes.len() - 1], 1 << 20).is_err());
        assert!(matches!(Transaction::decode(&bytes, 10), Err(DecodeError::TooLarge { .. })));
    }

    #[test]
    fn value_above_money_supply_is_rejected_at_decode() {
        let mut bytes = sample_tx().encode();
        // value sits after version(4) + count(4) + input(40+3) + count(4)
        let at = 4 + 4 + 43 + 4;
        bytes[at..at + 8].copy_from_slice(&(MAX_MONEY + 1).to_le_bytes());
        assert!(matches!(
            Transaction::decode(&bytes, 1 << 20),
            Err(DecodeError::Invalid { what: "output value", .. })
        ));
    }
}
