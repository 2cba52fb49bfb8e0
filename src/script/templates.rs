//! Standard locking-script templates and their unlock data.

use super::opcodes::*;
use super::MAX_MULTISIG_KEYS;
use crate::primitives::address::{Address, AddressKind};
use crate::primitives::hash::sha256d;
use crate::primitives::tx::Script;

/// The 32-byte hash a P2PKH output commits to: SHA-256d of the 32-byte ed25519 public key.
pub fn pubkey_hash(pubkey: &[u8; 32]) -> [u8; 32] {
    sha256d(pubkey).0
}

/// The 32-byte hash a P2SH output commits to: SHA-256d of the redeem script.
pub fn script_hash(redeem: &Script) -> [u8; 32] {
    sha256d(&redeem.0).0
}

/// Pay to public key hash: `OP_DUP OP_HASH256 <32-byte hash> OP_EQUALVERIFY OP_CHECKSIG`.
pub fn p2pkh(hash: &[u8; 32]) -> Script {
    let mut s = vec![OP_DUP, OP_HASH256];
    push_data(&mut s, hash);
    s.extend_from_slice(&[OP_EQUALVERIFY, OP_CHECKSIG]);
    Script(s)
}

/// Unlock data for P2PKH: `<64-byte signature> <32-byte public key>`.
pub fn p2pkh_unlock(sig: &[u8; 64], pubkey: &[u8; 32]) -> Script {
    let mut s = Vec::with_capacity(2 + 64 + 32);
    push_data(&mut s, sig);
    push_data(&mut s, pubkey);
    Script(s)
}

/// Bare t-of-n multisig: `<t> <pk_1> .. <pk_n> <n> OP_CHECKMULTISIG`.
pub fn multisig(threshold: usize, keys: &[[u8; 32]]) -> Script {
    let mut s = Vec::new();
    push_int(&mut s, threshold as i64);
    for k in keys {
        push_data(&mut s, k);
    }
    push_int(&mut s, keys.len() as i64);
    s.push(OP_CHECKMULTISIG);
    Script(s)
}

/// Unlock data for multisig: one slot per key, in key order; `None` pushes the empty string.
pub fn multisig_unlock(slots: &[Option<[u8; 64]>]) -> Script {
    let mut s = Vec::new();
    for slot in slots {
        push_data(&mut s, slot.as_ref().map(|x| &x[..]).unwrap_or(&[]));
    }
    Script(s)
}

/// Pay to script hash: `OP_HASH256 <32-byte SHA-256d(redeem)> OP_EQUAL` (35 bytes).
pub fn p2sh(redeem: &Script) -> Script {
    let mut s = vec![OP_HASH256];
    push_data(&mut s, &script_hash(redeem));
    s.push(OP_EQUAL);
    Script(s)
}

/// Unlock data for P2SH: the redeem script's own unlock pushes, then a push of the redeem
/// script.
pub fn p2sh_unlock(args: &Script, redeem: &Script) -> Script {
    let mut s = args.0.clone();
    push_data(&mut s, &redeem.0);
    Script(s)
}

/// The script hash a P2SH locking script commits to, if `lock` is exactly the template.
pub fn p2sh_commitment(lock: &[u8]) -> Option<[u8; 32]> {
    match lock {
        [OP_HASH256, 0x20, hash @ .., OP_EQUAL] if hash.len() == 32 => hash.try_into().ok(),
        _ => None,
    }
}

/// A provably unspendable data output: `OP_RETURN <data>`.
pub fn op_return(data: &[u8]) -> Script {
    let mut s = vec![OP_RETURN];
    push_data(&mut s, data);
    Script(s)
}

/// Prefix `inner` with an absolute height lock: `<height> OP_CHECKLOCKTIMEVERIFY OP_DROP`.
pub fn with_height_lock(height: u32, inner: &Script) -> Script {
    let mut s = Vec::new();
    push_int(&mut s, height as i64);
    s.extend_from_slice(&[OP_CHECKLOCKTIMEVERIFY, OP_DROP]);
    s.extend_from_slice(&inner.0);
    Script(s)
}

/// True for outputs that can never be spent (OP_RETURN first): they are not added to the
/// UTXO set.
pub fn is_unspendable(lock: &[u8]) -> bool {
    lock.first() == Some(&OP_RETURN)
}

/// The locking script an address pays to.
pub fn address_lock(address: &Address) -> Script {
    match address.kind {
        AddressKind::P2pkh => p2pkh(&address.hash),
        AddressKind::P2sh => {
            let mut s = vec![OP_HASH256];
            push_data(&mut s, &address.hash);
            s.push(OP_EQUAL);
            Script(s)
        }
    }
}

/// The address of a locking script, if it is P2PKH or P2SH, on the network with prefix `hrp`.
pub fn lock_address(lock: &[u8], hrp: &'static str) -> Option<Address> {
    match Template::classify(lock) {
        Template::P2pkh(hash) => Some(Address { hrp, kind: AddressKind::P2pkh, hash }),
        Template::P2sh(hash) => Some(Address { hrp, kind: AddressKind::P2sh, hash }),
        _ => None,
    }
}

/// A recognised locking-script shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Template {
    /// Pay to public key hash.
    P2pkh([u8; 32]),
    /// Pay to script hash.
    P2sh([u8; 32]),
    /// Bare multisig.
    Multisig { threshold: usize, keys: Vec<[u8; 32]> },
    /// Data output.
    OpReturn,
    /// Anything else.
    NonStandard,
}

impl Template {
    /// Recognises `lock`.
    pub fn classify(lock: &[u8]) -> Template {
        if let Some(h) = p2sh_commitment(lock) {
            return Template::P2sh(h);
        }
        if let [OP_DUP, OP_HASH256, 0x20, rest @ ..] = lock {
            if let [hash @ .., OP_EQUALVERIFY, OP_CHECKSIG] = rest {
                if let Ok(h) = <[u8; 32]>::try_from(hash) {
                    return Template::P2pkh(h);
                }
            }
        }
        if is_unspendable(lock) {
            return Template::OpReturn;
        }
        let ins: Result<Vec<_>, _> = Instructions::new(lock).map(|r| r.map(|(_, i)| i)).collect();
        if let Ok(ins) = ins {
            if let [first, middle @ .., last, Instruction::Op(OP_CHECKMULTISIG)] = &ins[..] {
                let t = instruction_number(first);
                let n = instruction_number(last);
                let keys: Option<Vec<[u8; 32]>> = middle
                    .iter()
                    .map(|i| match i {
                        Instruction::Push(d) => <[u8; 32]>::try_from(*d).ok(),
                        _ => None,
                    })
                    .collect();
                if let (Some(t), Some(n), Some(keys)) = (t, n, keys) {
                    // More than MAX_MULTISIG_KEYS keys fails CHECKMULTISIG: unspendable.
                    if n as usize == keys.len() && n as usize <= MAX_MULTISIG_KEYS && t >= 1 && t <= n {
                        return Template::Multisig { threshold: t as usize, keys };
                    }
                }
            }
        }
        Template::NonStandard
    }
}
