//! The script interpreter.

use super::opcodes::*;
use super::sig::{verify_one, PreparedSig};
use super::templates::p2sh_commitment;
use super::{
    ScriptError, MAX_ELEMENT_SIZE, MAX_MULTISIG_KEYS, MAX_OPS_PER_SCRIPT, MAX_SCRIPT_SIZE, MAX_STACK_SIZE,
};
use crate::primitives::hash::{sha256, sha256d};

/// Checks signatures for one input. The message is that input's sighash, fixed by the checker.
pub trait SigChecker {
    /// True if `sig` is a valid signature by `pubkey` over this input's sighash.
    fn check(&mut self, pubkey: &[u8; 32], sig: &[u8; 64]) -> bool;
}

/// Verifies each signature immediately.
pub struct EagerChecker<'a> {
    /// The input's sighash.
    pub msg: &'a [u8],
}

impl SigChecker for EagerChecker<'_> {
    fn check(&mut self, pubkey: &[u8; 32], sig: &[u8; 64]) -> bool {
        verify_one(pubkey, sig, self.msg)
    }
}

/// Defers signature checks for batch verification: a well-encoded signature is recorded and
/// assumed valid; one that cannot even be decoded is invalid at once.
///
/// Sound because of the NULLFAIL rule: a non-empty signature that fails verification fails
/// the script, so no script can take a different path because a signature was invalid. If the
/// script succeeds with every deferred check assumed true, and the batch of recorded signatures
/// then verifies, an eager run would have succeeded identically. If the batch fails, the caller
/// reruns the input with [`EagerChecker`] to learn the exact error.
pub struct DeferredChecker<'a> {
    /// The input's sighash.
    pub msg: &'a [u8],
    /// Signatures recorded so far.
    pub pending: &'a mut Vec<PreparedSig>,
}

impl SigChecker for DeferredChecker<'_> {
    fn check(&mut self, pubkey: &[u8; 32], sig: &[u8; 64]) -> bool {
        match PreparedSig::new(pubkey, sig, self.msg) {
            Some(p) => {
                self.pending.push(p);
                true
            }
            None => false,
        }
    }
}

/// Transaction facts the script can see besides signatures.
#[derive(Clone, Copy, Debug)]
pub struct SpendContext {
    /// The spending transaction's lock time (a height).
    pub tx_lock_time: u32,
}

type Stack = Vec<Vec<u8>>;

fn op_name(op: u8) -> &'static str {
    super::opcodes::name(op).unwrap_or("opcode")
}

fn is_known(op: u8) -> bool {
    matches!(
        op,
        OP_IF
            | OP_NOTIF
            | OP_ELSE
            | OP_ENDIF
            | OP_VERIFY
            | OP_RETURN
            | OP_DROP
            | OP_DUP
            | OP_EQUAL
            | OP_EQUALVERIFY
            | OP_NOT
            | OP_SHA256
            | OP_HASH256
            | OP_CHECKSIG
            | OP_CHECKSIGVERIFY
            | OP_CHECKMULTISIG
            | OP_CHECKMULTISIGVERIFY
            | OP_CHECKLOCKTIMEVERIFY
    )
}

fn pop(stack: &mut Stack, op: u8, need: usize) -> Result<Vec<u8>, ScriptError> {
    let have = stack.len();
    stack.pop().ok_or(ScriptError::StackUnderflow { op: op_name(op), need, have })
}

fn need(stack: &Stack, op: u8, need: usize) -> Result<(), ScriptError> {
    if stack.len() < need {
        return Err(ScriptError::StackUnderflow { op: op_name(op), need, have: stack.len() });
    }
    Ok(())
}

fn bool_item(b: bool) -> Vec<u8> {
    if b {
        vec![1]
    } else {
        Vec::new()
    }
}

fn pubkey_of(bytes: &[u8]) -> Result<[u8; 32], ScriptError> {
    bytes.try_into().map_err(|_| ScriptError::BadPubkey { len: bytes.len() })
}

/// Checks one (possibly empty) signature slot: empty is "no signature" (false), 64 bytes must
/// verify (NULLFAIL), any other length is an encoding error.
fn check_slot(
    checker: &mut dyn SigChecker,
    op: u8,
    pubkey: &[u8; 32],
    sig: &[u8],
) -> Result<bool, ScriptError> {
    if sig.is_empty() {
        return Ok(false);
    }
    let sig: &[u8; 64] = sig.try_into().map_err(|_| ScriptError::BadSignatureEncoding { len: sig.len() })?;
    if checker.check(pubkey, sig) {
        Ok(true)
    } else {
        Err(ScriptError::NullFail { op: op_name(op), pubkey: hex::encode(pubkey) })
    }
}

/// Runs `script` on `stack`.
pub fn execute(
    script: &[u8],
    stack: &mut Stack,
    ctx: &SpendContext,
    checker: &mut dyn SigChecker,
) -> Result<(), ScriptError> {
    if script.len() > MAX_SCRIPT_SIZE {
        return Err(ScriptError::ScriptTooLarge { size: script.len(), max: MAX_SCRIPT_SIZE });
    }
    let mut exec: Vec<bool> = Vec::new();
    let mut ops = 0usize;
    for ins in Instructions::new(script) {
        let (at, ins) = ins?;
        let executing = exec.iter().all(|b| *b);
        match ins {
            Instruction::Push(d) => {
                if d.len() > MAX_ELEMENT_SIZE {
                    return Err(ScriptError::ElementTooLarge { size: d.len(), max: MAX_ELEMENT_SIZE });
                }
                if executing {
                    stack.push(d.to_vec());
                }
            }
            Instruction::Number(n) => {
                if executing {
                    stack.push(encode_num(n as i64));
                }
            }
            Instruction::Op(op) => {
                ops += 1;
                if ops > MAX_OPS_PER_SCRIPT {
                    return Err(ScriptError::OpCountExceeded { max: MAX_OPS_PER_SCRIPT });
                }
                if !is_known(op) {
                    return Err(ScriptError::BadOpcode { opcode: op, at });
                }
                match op {
                    OP_IF | OP_NOTIF => {
                        let branch = if executing {
                            let cond = pop(stack, op, 1)?;
                            // MINIMALIF: only "" (false) and 0x01 (true), so a third party
                            // cannot swap one true value for another and change the txid.
                            if !(cond.is_empty() || cond == [1]) {
                                return Err(ScriptError::NonMinimalIf { len: cond.len() });
                            }
                            cast_to_bool(&cond) != (op == OP_NOTIF)
                        } else {
                            false
                        };
                        exec.push(branch);
                    }
                    OP_ELSE => {
                        let last = exec.last_mut().ok_or(ScriptError::UnbalancedConditional)?;
                        *last = !*last;
                    }
                    OP_ENDIF => {
                        exec.pop().ok_or(ScriptError::UnbalancedConditional)?;
                    }
                    _ if !executing => {}
                    _ => execute_op(op, stack, ctx, checker)?,
                }
            }
        }
        if stack.len() > MAX_STACK_SIZE {
            return Err(ScriptError::StackOverflow { max: MAX_STACK_SIZE });
        }
    }
    if !exec.is_empty() {
        return Err(ScriptError::UnbalancedConditional);
    }
    Ok(())
}

fn execute_op(
    op: u8,
    stack: &mut Stack,
    ctx: &SpendContext,
    checker: &mut dyn SigChecker,
) -> Result<(), ScriptError> {
    match op {
        OP_VERIFY => {
            if !cast_to_bool(&pop(stack, op, 1)?) {
                return Err(ScriptError::VerifyFailed { op: "OP_VERIFY" });
            }
        }
        OP_RETURN => return Err(ScriptError::OpReturn),
        OP_DROP => {
            pop(stack, op, 1)?;
        }
        OP_DUP => {
            need(stack, op, 1)?;
            let top = stack[stack.len() - 1].clone();
            stack.push(top);
        }
        OP_EQUAL | OP_EQUALVERIFY => {
            need(stack, op, 2)?;
            let (a, b) = (pop(stack, op, 2)?, pop(stack, op, 2)?);
            if op == OP_EQUALVERIFY {
                if a != b {
                    return Err(ScriptError::VerifyFailed { op: "OP_EQUALVERIFY" });
                }
            } else {
                stack.push(bool_item(a == b));
            }
        }
        OP_NOT => {
            let n = decode_num(&pop(stack, op, 1)?, 4)?;
            stack.push(bool_item(n == 0));
        }
        OP_SHA256 => {
            let v = pop(stack, op, 1)?;
            stack.push(sha256(&v).to_vec());
        }
        OP_HASH256 => {
            let v = pop(stack, op, 1)?;
            stack.push(sha256d(&v).0.to_vec());
        }
        OP_CHECKSIG | OP_CHECKSIGVERIFY => {
            need(stack, op, 2)?;
            let pubkey = pubkey_of(&pop(stack, op, 2)?)?;
            let sig = pop(stack, op, 2)?;
            let ok = check_slot(checker, op, &pubkey, &sig)?;
            if op == OP_CHECKSIGVERIFY {
                if !ok {
                    return Err(ScriptError::VerifyFailed { op: "OP_CHECKSIGVERIFY" });
                }
            } else {
                stack.push(bool_item(ok));
            }
        }
        OP_CHECKMULTISIG | OP_CHECKMULTISIGVERIFY => {
            let n = decode_num(&pop(stack, op, 1)?, 4)?;
            if n < 1 || n > MAX_MULTISIG_KEYS as i64 {
                return Err(ScriptError::MultisigKeyCount { got: n, max: MAX_MULTISIG_KEYS });
            }
            let n = n as usize;
            // n keys, the threshold, n signature slots.
            need(stack, op, 2 * n + 1)?;
            let mut keys = Vec::with_capacity(n);
            for _ in 0..n {
                keys.push(pubkey_of(&pop(stack, op, 2 * n + 1)?)?);
            }
            keys.reverse();
            let t = decode_num(&pop(stack, op, n + 1)?, 4)?;
            if t < 1 || t > n as i64 {
                return Err(ScriptError::MultisigThreshold { threshold: t, keys: n });
            }
            let mut slots = Vec::with_capacity(n);
            for _ in 0..n {
                slots.push(pop(stack, op, n)?);
            }
            slots.reverse();
            let mut valid = 0;
            for (key, slot) in keys.iter().zip(&slots) {
                valid += check_slot(checker, op, key, slot)? as usize;
            }
            if valid < t as usize {
                return Err(ScriptError::MultisigThresholdNotMet { got: valid, need: t as usize });
            }
            if op == OP_CHECKMULTISIG {
                stack.push(bool_item(true));
            }
        }
        OP_CHECKLOCKTIMEVERIFY => {
            need(stack, op, 1)?;
            let height = decode_num(&stack[stack.len() - 1], 5)?;
            if height < 0 {
                return Err(ScriptError::NegativeLockTime { height });
            }
            if height > ctx.tx_lock_time as i64 {
                return Err(ScriptError::LockTimeNotReached {
                    required: height,
                    tx_lock_time: ctx.tx_lock_time,
                });
            }
        }
        _ => unreachable!("is_known() admitted opcode 0x{op:02x} without a handler"),
    }
    Ok(())
}

/// A spend succeeds with exactly one true item left (CLEANSTACK: extra unlock pushes would
/// otherwise let anyone change a transaction's id without invalidating it).
fn finish(stack: &Stack) -> Result<(), ScriptError> {
    match stack.last() {
        Some(top) if cast_to_bool(top) => match stack.len() {
            1 => Ok(()),
            items => Err(ScriptError::CleanStack { items }),
        },
        _ => Err(ScriptError::EvalFalse),
    }
}

/// True if `data` is pushed with the shortest encoding (MINIMALDATA): OP_0 for nothing,
/// OP_1..OP_16 for one byte 1..=16, a direct push up to 75 bytes, then PUSHDATA1, PUSHDATA2.
fn is_minimal_push(opcode: u8, data: &[u8]) -> bool {
    match data.len() {
        0 => opcode == OP_0,
        1 if (1..=16).contains(&data[0]) => false,
        n @ 1..=0x4b => opcode as usize == n,
        0x4c..=0xff => opcode == OP_PUSHDATA1,
        _ => opcode == OP_PUSHDATA2,
    }
}

/// Verifies that `unlock` satisfies `lock` (see the module docs of [`crate::script`]).
pub fn verify_spend(
    unlock: &[u8],
    lock: &[u8],
    ctx: &SpendContext,
    checker: &mut dyn SigChecker,
) -> Result<(), ScriptError> {
    for ins in Instructions::new(unlock) {
        match ins? {
            (at, Instruction::Op(opcode)) => return Err(ScriptError::UnlockNotPushOnly { opcode, at }),
            (at, Instruction::Push(data)) if !is_minimal_push(unlock[at], data) => {
                return Err(ScriptError::NonMinimalPush { at, len: data.len() })
            }
            _ => {}
        }
    }
    let mut stack = Stack::new();
    execute(unlock, &mut stack, ctx, checker)?;
    if let Some(expected) = p2sh_commitment(lock) {
        let redeem = stack.pop().ok_or(ScriptError::P2shNoRedeemScript)?;
        let got = sha256d(&redeem);
        if got.0 != expected {
            return Err(ScriptError::P2shHashMismatch {
                got: hex::encode(got.0),
                expected: hex::encode(expected),
            });
        }
        let wrap = |e| ScriptError::RedeemScript(Box::new(e));
        execute(&redeem, &mut stack, ctx, checker).map_err(wrap)?;
        return finish(&stack).map_err(wrap);
    }
    execute(lock, &mut stack, ctx, checker)?;
    finish(&stack)
}

/// Counts signature operations in a script: CHECKSIG(VERIFY) counts 1, CHECKMULTISIG(VERIFY)
/// counts its key count when a number 1..=20 directly precedes it, else 20. Counting stops at
/// a malformed push (what was counted so far stands).
pub fn count_sigops(script: &[u8]) -> usize {
    let mut count = 0;
    let mut prev: Option<Instruction<'_>> = None;
    for ins in Instructions::new(script) {
        let Ok((_, ins)) = ins else { break };
        match ins {
            Instruction::Op(OP_CHECKSIG | OP_CHECKSIGVERIFY) => count += 1,
            Instruction::Op(OP_CHECKMULTISIG | OP_CHECKMULTISIGVERIFY) => {
                count += match prev.as_ref().and_then(instruction_number) {
                    Some(n) if (1..=MAX_MULTISIG_KEYS as i64).contains(&n) => n as usize,
                    _ => MAX_MULTISIG_KEYS,
                }
            }
            _ => {}
        }
        prev = Some(ins);
    }
    count
}

#[cfg(test)]
mod malleability_tests {
    use super::*;
    use crate::script::templates::{p2pkh, p2pkh_unlock, pubkey_hash};
    use ed25519_dalek::{Signer, SigningKey};

    fn run(unlock: &[u8], lock: &[u8], msg: &[u8]) -> Result<(), ScriptError> {
        verify_spend(unlock, lock, &SpendContext { tx_lock_time: 0 }, &mut EagerChecker { msg })
    }

    #[test]
    fn a_third_party_cannot_alter_a_signed_unlock() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let pk = key.verifying_key().to_bytes();
        let lock = p2pkh(&pubkey_hash(&pk));
        let msg = [9u8; 32];
        let sig = key.sign(&msg).to_bytes();
        let unlock = p2pkh_unlock(&sig, &pk);
        run(&unlock.0, &lock.0, &msg).unwrap();

        // An extra push in front leaves two items: CLEANSTACK.
        let mut extra = vec![OP_0];
        extra.extend_from_slice(&unlock.0);
        assert_eq!(run(&extra, &lock.0, &msg), Err(ScriptError::CleanStack { items: 2 }));
        // The signature re-encoded with PUSHDATA1: MINIMALDATA.
        let mut reencoded = vec![OP_PUSHDATA1, 64];
        reencoded.extend_from_slice(&unlock.0[1..]);
        assert_eq!(run(&reencoded, &lock.0, &msg), Err(ScriptError::NonMinimalPush { at: 0, len: 64 }));
        // A one-byte 1..=16 pushed directly instead of OP_n.
        assert_eq!(
            run(&[0x01, 0x05], &[OP_DROP, OP_1], &msg),
            Err(ScriptError::NonMinimalPush { at: 0, len: 1 })
        );
        assert_eq!(run(&[OP_1 + 4], &[OP_DROP, OP_1], &msg), Ok(()));
        // The empty push must be OP_0, not PUSHDATA1 0.
        assert_eq!(
            run(&[OP_PUSHDATA1, 0], &[OP_DROP, OP_1], &msg),
            Err(ScriptError::NonMinimalPush { at: 0, len: 0 })
        );
    }

    #[test]
    fn if_arguments_are_empty_or_one() {
        let lock = [OP_IF, OP_1, OP_ELSE, OP_1, OP_ENDIF];
        assert_eq!(run(&[OP_1], &lock, &[]), Ok(()));
        assert_eq!(run(&[OP_0], &lock, &[]), Ok(()));
        assert_eq!(run(&[OP_1 + 1], &lock, &[]), Err(ScriptError::NonMinimalIf { len: 1 }));
        assert_eq!(run(&[0x02, 1, 0], &lock, &[]), Err(ScriptError::NonMinimalIf { len: 2 }));
    }
}
