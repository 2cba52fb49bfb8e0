//! The script language: opcodes, interpreter, standard templates and sighash. Pure.
//!
//! A spend runs the input's unlock data (push-only, minimal pushes) and then the spent
//! output's locking script on the resulting stack; it succeeds if no operation fails and
//! exactly one true item is left. Together with MINIMALIF and NULLFAIL, these rules leave a
//! third party no way to alter unlock data, and so a txid, without invalidating the spend.
//! If the locking script is the P2SH template, the last item the unlock data pushed is a
//! redeem script: its hash must match and it runs on the remaining stack.
//! docs/PROTOCOL.md "Script" is the specification.

pub mod interpreter;
pub mod opcodes;
pub mod sig;
pub mod sighash;
pub mod templates;
#[cfg(test)]
mod tests;

pub use interpreter::{count_sigops, verify_spend, DeferredChecker, EagerChecker, SigChecker, SpendContext};
pub use sighash::{sighash, SighashCache};
pub use templates::Template;

/// Largest script (locking script or unlock data) in bytes.
pub const MAX_SCRIPT_SIZE: usize = 10_000;
/// Largest single stack element, and largest P2SH redeem script, in bytes.
pub const MAX_ELEMENT_SIZE: usize = 520;
/// Most non-push operations one script may execute or skip.
pub const MAX_OPS_PER_SCRIPT: usize = 201;
/// Most items on the stack at once.
pub const MAX_STACK_SIZE: usize = 1000;
/// Most public keys in one CHECKMULTISIG.
pub const MAX_MULTISIG_KEYS: usize = 20;

/// Why a script failed. Variants name the rule and carry the values involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    #[error("script of {size} bytes exceeds the limit of {max}")]
    ScriptTooLarge { size: usize, max: usize },
    #[error("push at byte {at} needs {need} bytes but {remaining} remain")]
    PushPastEnd { at: usize, need: usize, remaining: usize },
    #[error("unknown or disabled opcode 0x{opcode:02x} at byte {at}")]
    BadOpcode { opcode: u8, at: usize },
    #[error("more than {max} operations in one script")]
    OpCountExceeded { max: usize },
    #[error("stack holds more than {max} items")]
    StackOverflow { max: usize },
    #[error("{op} needs {need} stack items, {have} present")]
    StackUnderflow { op: &'static str, need: usize, have: usize },
    #[error("stack element of {size} bytes exceeds the limit of {max}")]
    ElementTooLarge { size: usize, max: usize },
    #[error("IF/NOTIF/ELSE/ENDIF are unbalanced")]
    UnbalancedConditional,
    #[error("{op} failed")]
    VerifyFailed { op: &'static str },
    #[error("script finished with a false or empty stack")]
    EvalFalse,
    #[error("OP_RETURN executed: the output is unspendable")]
    OpReturn,
    #[error("public key must be 32 bytes, got {len}")]
    BadPubkey { len: usize },
    #[error("signature must be 64 bytes or empty, got {len}")]
    BadSignatureEncoding { len: usize },
    #[error("{op}: a non-empty signature failed verification (key {pubkey})")]
    NullFail { op: &'static str, pubkey: String },
    #[error("invalid number: {detail}")]
    BadNumber { detail: String },
    #[error("CHECKMULTISIG key count {got} outside 1..={max}")]
    MultisigKeyCount { got: i64, max: usize },
    #[error("CHECKMULTISIG threshold {threshold} outside 1..={keys}")]
    MultisigThreshold { threshold: i64, keys: usize },
    #[error("CHECKMULTISIG has {got} signatures, the threshold is {need}")]
    MultisigThresholdNotMet { got: usize, need: usize },
    #[error("CHECKLOCKTIMEVERIFY with negative height {height}")]
    NegativeLockTime { height: i64 },
    #[error(
        "lock time not reached: script requires height {required}, transaction lock time is {tx_lock_time}"
    )]
    LockTimeNotReached { required: i64, tx_lock_time: u32 },
    #[error("unlock data must contain only pushes (opcode 0x{opcode:02x} at byte {at})")]
    UnlockNotPushOnly { opcode: u8, at: usize },
    #[error("unlock data push at byte {at} of {len} bytes is not minimally encoded")]
    NonMinimalPush { at: usize, len: usize },
    #[error("IF/NOTIF argument must be empty or 0x01, got {len} bytes")]
    NonMinimalIf { len: usize },
    #[error("script left {items} items on the stack, exactly 1 is required")]
    CleanStack { items: usize },
    #[error("P2SH spend pushes no redeem script")]
    P2shNoRedeemScript,
    #[error("P2SH redeem script hash {got} does not match the committed {expected}")]
    P2shHashMismatch { got: String, expected: String },
    #[error("P2SH redeem script failed: {0}")]
    RedeemScript(Box<ScriptError>),
}
