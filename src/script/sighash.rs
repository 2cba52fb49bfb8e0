//! The signature hash: what an input's signature commits to.
//!
//! `sighash = SHA-256d(tag || version || hash_prevouts || hash_outputs || lock_time ||
//! input_index || prevout || spent_value || spent_lock)`, with
//! - `tag` = the 16 ASCII bytes `quarry/sighash/1`,
//! - `hash_prevouts` = SHA-256d of every input's 36-byte outpoint, in order,
//! - `hash_outputs` = SHA-256d of every output's canonical encoding, in order,
//! - integers u32/u64 little-endian, `spent_lock` with a u32 length prefix.
//!
//! It covers the whole transaction except unlock data (so cosigners can sign in any order),
//! the input's position, and the spent output's value and locking script (so a signer knows
//! exactly what it spends and fees cannot be lied about). The two per-transaction hashes are
//! computed once ([`SighashCache`]), so signing or checking every input costs O(size), not
//! O(inputs x size). docs/PROTOCOL.md "Sighash" has a test vector.

use crate::primitives::encode::put_var_bytes;
use crate::primitives::hash::{sha256d, Hash256};
use crate::primitives::tx::{Transaction, TxOut};

/// Domain separation tag; no transaction or header starts with it.
pub const SIGHASH_TAG: &[u8; 16] = b"quarry/sighash/1";

/// Per-transaction parts of the sighash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SighashCache {
    /// SHA-256d of all outpoints.
    pub hash_prevouts: Hash256,
    /// SHA-256d of all outputs.
    pub hash_outputs: Hash256,
}

impl SighashCache {
    /// Computes the per-transaction hashes.
    pub fn new(tx: &Transaction) -> SighashCache {
        let mut prevouts = Vec::with_capacity(36 * tx.inputs.len());
        for i in &tx.inputs {
            prevouts.extend_from_slice(&i.prevout.to_bytes());
        }
        let mut outputs = Vec::new();
        for o in &tx.outputs {
            outputs.extend_from_slice(&o.value.to_sat().to_le_bytes());
            put_var_bytes(&mut outputs, &o.lock.0);
        }
        SighashCache { hash_prevouts: sha256d(&prevouts), hash_outputs: sha256d(&outputs) }
    }
}

/// The sighash of input `index` of `tx`, which spends `spent`. Panics if `index` is out of
/// range (callers iterate the tx's own inputs).
pub fn sighash(tx: &Transaction, cache: &SighashCache, index: usize, spent: &TxOut) -> Hash256 {
    let mut p = Vec::with_capacity(16 + 4 + 64 + 4 + 4 + 36 + 8 + 4 + spent.lock.len());
    p.extend_from_slice(SIGHASH_TAG);
    p.extend_from_slice(&tx.version.to_le_bytes());
    p.extend_from_slice(&cache.hash_prevouts.0);
    p.extend_from_slice(&cache.hash_outputs.0);
    p.extend_from_slice(&tx.lock_time.to_le_bytes());
    p.extend_from_slice(&(index as u32).to_le_bytes());
    p.extend_from_slice(&tx.inputs[index].prevout.to_bytes());
    p.extend_from_slice(&spent.value.to_sat().to_le_bytes());
    put_var_bytes(&mut p, &spent.lock.0);
    sha256d(&p)
}
