//! Tests of the script module as a whole: real signatures over real sighashes, every template,
//! every limit, and the exact error each rule produces.

use super::interpreter::execute;
use super::opcodes::*;
use super::sig::{verify_batch, PreparedSig};
use super::templates::*;
use super::*;
use crate::primitives::amount::MAX_MONEY;
use crate::primitives::hash::{sha256, sha256d};
use crate::primitives::{Amount, Hash256, OutPoint, Script, Transaction, TxIn, TxOut};
use ed25519_dalek::{Signer, SigningKey};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use ScriptError as E;

const OP_2: u8 = OP_1 + 1;
const OP_3: u8 = OP_1 + 2;
const OP_4: u8 = OP_1 + 3;
const OP_5: u8 = OP_1 + 4;

fn sk(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i; 32])
}

fn pk(i: u8) -> [u8; 32] {
    sk(i).verifying_key().to_bytes()
}

fn sign(i: u8, msg: &[u8]) -> [u8; 64] {
    sk(i).sign(msg).to_bytes()
}

fn amount(sat: u64) -> Amount {
    Amount::from_sat(sat).unwrap()
}

/// A two-input, two-output transaction with the given lock time.
fn spend_tx(lock_time: u32) -> Transaction {
    let input =
        |b: u8| TxIn { prevout: OutPoint { txid: Hash256([b; 32]), index: 7 }, unlock: Script::default() };
    Transaction {
        version: 1,
        inputs: vec![input(1), input(2)],
        outputs: vec![
            TxOut { value: amount(4_000), lock: p2pkh(&pubkey_hash(&pk(9))) },
            TxOut { value: amount(900), lock: op_return(b"memo") },
        ],
        lock_time,
    }
}

/// The sighash of input `index` of `tx` spending an output of 5000 locked by `lock`.
fn msg_for(tx: &Transaction, index: usize, lock: &Script) -> [u8; 32] {
    let spent = TxOut { value: amount(5_000), lock: lock.clone() };
    sighash(tx, &SighashCache::new(tx), index, &spent).0
}

/// Runs a spend with an eager checker over `msg`.
fn run(unlock: &[u8], lock: &[u8], msg: &[u8], tx_lock_time: u32) -> Result<(), E> {
    verify_spend(unlock, lock, &SpendContext { tx_lock_time }, &mut EagerChecker { msg })
}

/// Runs a spend that checks no signatures.
fn plain(unlock: &[u8], lock: &[u8]) -> Result<(), E> {
    run(unlock, lock, &[0; 32], 0)
}

/// Spends `p2sh(redeem)` with unlock data `args` followed by the redeem script push.
fn p2sh_run(args: &[u8], redeem: &[u8]) -> Result<(), E> {
    let redeem = Script(redeem.to_vec());
    plain(&p2sh_unlock(&Script(args.to_vec()), &redeem).0, &p2sh(&redeem).0)
}

/// Executes one script on an empty stack and returns the stack.
fn exec(script: &[u8]) -> Result<Vec<Vec<u8>>, E> {
    let mut stack = Vec::new();
    execute(script, &mut stack, &SpendContext { tx_lock_time: 0 }, &mut EagerChecker { msg: &[] })?;
    Ok(stack)
}

fn pushes(items: &[&[u8]]) -> Vec<u8> {
    let mut s = Vec::new();
    for i in items {
        push_data(&mut s, i);
    }
    s
}

/// A push of the number `n`.
fn int(n: i64) -> Vec<u8> {
    let mut s = Vec::new();
    push_int(&mut s, n);
    s
}

fn nullfail(op: &'static str, key: u8) -> E {
    E::NullFail { op, pubkey: hex::encode(pk(key)) }
}

fn redeem_err(e: E) -> E {
    E::RedeemScript(Box::new(e))
}

// ---- P2PKH ----------------------------------------------------------------------------------

/// A P2PKH output of key 1: (lock, sighash of input 0 of `spend_tx(0)`, sighash of input 1).
fn p2pkh_case() -> (Script, [u8; 32], [u8; 32]) {
    let tx = spend_tx(0);
    let lock = p2pkh(&pubkey_hash(&pk(1)));
    let (msg, other) = (msg_for(&tx, 0, &lock), msg_for(&tx, 1, &lock));
    (lock, msg, other)
}

#[test]
fn p2pkh_spend_with_real_signature() {
    let (lock, msg, _) = p2pkh_case();
    assert_eq!(run(&p2pkh_unlock(&sign(1, &msg), &pk(1)).0, &lock.0, &msg, 0), Ok(()));
}

#[test]
fn p2pkh_failures() {
    let (lock, msg, other) = p2pkh_case();
    let spend = |sig: &[u8], key: &[u8]| run(&pushes(&[sig, key]), &lock.0, &msg, 0);
    assert_eq!(spend(&sign(2, &msg), &pk(2)), Err(E::VerifyFailed { op: "OP_EQUALVERIFY" }));
    // The right key over another message (input 1's sighash): NULLFAIL, not "false".
    assert_ne!(msg, other);
    assert_eq!(spend(&sign(1, &other), &pk(1)), Err(nullfail("OP_CHECKSIG", 1)));
    assert_eq!(spend(&[], &pk(1)), Err(E::EvalFalse));
    let sig = sign(1, &msg);
    assert_eq!(spend(&sig[..63], &pk(1)), Err(E::BadSignatureEncoding { len: 63 }));
    assert_eq!(spend(&[&sig[..], &[0]].concat(), &pk(1)), Err(E::BadSignatureEncoding { len: 65 }));
}

#[test]
fn checksig_variants() {
    let msg = [3u8; 32];
    let sig = sign(1, &msg);
    let key33 = [&pk(1)[..], &[0]].concat();
    assert_eq!(run(&pushes(&[&sig, &key33]), &[OP_CHECKSIG], &msg, 0), Err(E::BadPubkey { len: 33 }));
    let empty = pushes(&[&[], &pk(1)]);
    assert_eq!(run(&empty, &[OP_CHECKSIG, OP_NOT], &msg, 0), Ok(()), "empty signature pushes false");
    let verify = [OP_CHECKSIGVERIFY, OP_1];
    assert_eq!(run(&empty, &verify, &msg, 0), Err(E::VerifyFailed { op: "OP_CHECKSIGVERIFY" }));
    assert_eq!(run(&pushes(&[&sig, &pk(1)]), &verify, &msg, 0), Ok(()));
    assert_eq!(
        run(&pushes(&[&sig]), &[OP_CHECKSIG], &msg, 0),
        Err(E::StackUnderflow { op: "OP_CHECKSIG", need: 2, have: 1 })
    );
}

// ---- Multisig -------------------------------------------------------------------------------

fn keys3() -> Vec<[u8; 32]> {
    vec![pk(1), pk(2), pk(3)]
}

/// Unlock slots for keys 1, 2, 3: `signers[i]` is the key that signs slot `i` (0: empty).
fn slots(msg: &[u8], signers: [u8; 3]) -> Script {
    multisig_unlock(&signers.map(|k| (k != 0).then(|| sign(k, msg))))
}

/// The 2-of-3 rules; `wrap` turns slots into unlock data and `map_err` wraps errors (P2SH).
fn check_2_of_3(lock: &Script, wrap: impl Fn(Script) -> Script, map_err: impl Fn(E) -> E) {
    let tx = spend_tx(0);
    let msg = msg_for(&tx, 0, lock);
    let go = |signers| run(&wrap(slots(&msg, signers)).0, &lock.0, &msg, 0);
    for ok in [[1, 2, 0], [1, 0, 3], [0, 2, 3], [1, 2, 3]] {
        assert_eq!(go(ok), Ok(()), "signers {ok:?}");
    }
    for one in [[1, 0, 0], [0, 2, 0], [0, 0, 3]] {
        assert_eq!(go(one), Err(map_err(E::MultisigThresholdNotMet { got: 1, need: 2 })));
    }
    assert_eq!(go([0, 0, 0]), Err(map_err(E::MultisigThresholdNotMet { got: 0, need: 2 })));
    // A fourth key's signature in slot 3 fails although two valid signatures are present.
    assert_eq!(go([1, 2, 4]), Err(map_err(nullfail("OP_CHECKMULTISIG", 3))));
    // Slot order matters.
    assert_eq!(go([2, 1, 0]), Err(map_err(nullfail("OP_CHECKMULTISIG", 1))));
    assert_eq!(go([0, 3, 2]), Err(map_err(nullfail("OP_CHECKMULTISIG", 2))));
    let other = msg_for(&tx, 1, lock);
    let bad = multisig_unlock(&[Some(sign(1, &msg)), Some(sign(2, &other)), None]);
    assert_eq!(run(&wrap(bad).0, &lock.0, &msg, 0), Err(map_err(nullfail("OP_CHECKMULTISIG", 2))));
}

#[test]
fn bare_multisig_2_of_3() {
    check_2_of_3(&multisig(2, &keys3()), |s| s, |e| e);
}

#[test]
fn p2sh_multisig_2_of_3() {
    let redeem = multisig(2, &keys3());
    check_2_of_3(&p2sh(&redeem), |s| p2sh_unlock(&s, &redeem), redeem_err);
}

#[test]
fn multisig_key_count_and_threshold_bounds() {
    let msg = [5u8; 32];
    let keys: Vec<[u8; 32]> = (1..=21).map(pk).collect();
    // 20 keys is the maximum; one signature in the last slot meets a 1-of-20.
    let mut s = vec![None; 20];
    s[19] = Some(sign(20, &msg));
    assert_eq!(run(&multisig_unlock(&s).0, &multisig(1, &keys[..20]).0, &msg, 0), Ok(()));
    s.push(None);
    let too_many = run(&multisig_unlock(&s).0, &multisig(1, &keys).0, &msg, 0);
    assert_eq!(too_many, Err(E::MultisigKeyCount { got: 21, max: MAX_MULTISIG_KEYS }));
    let three = slots(&msg, [1, 2, 3]).0;
    assert_eq!(run(&three, &multisig(3, &keys3()).0, &msg, 0), Ok(()));
    for t in [0, 4] {
        let r = run(&three, &multisig(t, &keys3()).0, &msg, 0);
        assert_eq!(r, Err(E::MultisigThreshold { threshold: t as i64, keys: 3 }));
    }
    let short = run(&pushes(&[&[]]), &multisig(1, &keys3()).0, &msg, 0);
    assert_eq!(short, Err(E::StackUnderflow { op: "OP_CHECKMULTISIG", need: 7, have: 5 }));
}

// ---- P2SH -----------------------------------------------------------------------------------

#[test]
fn p2sh_rules() {
    let lock = p2sh(&Script(vec![OP_1]));
    assert_eq!(plain(&pushes(&[&[OP_1]]), &lock.0), Ok(()));
    assert_eq!(
        plain(&pushes(&[&[OP_2]]), &lock.0),
        Err(E::P2shHashMismatch {
            got: hex::encode(sha256d(&[OP_2]).0),
            expected: hex::encode(sha256d(&[OP_1]).0),
        })
    );
    assert_eq!(plain(&[], &lock.0), Err(E::P2shNoRedeemScript));
    // The redeem script runs on the remaining pushes and its failures are reported as such.
    assert_eq!(p2sh_run(&[], &[OP_0]), Err(redeem_err(E::EvalFalse)));
    assert_eq!(p2sh_run(&[OP_1], &[OP_RETURN]), Err(redeem_err(E::OpReturn)));
    assert_eq!(p2sh_run(&[OP_2, OP_2], &[OP_EQUAL]), Ok(()));
    assert_eq!(p2sh_run(&[OP_2, OP_3], &[OP_EQUAL]), Err(redeem_err(E::EvalFalse)));
    // The bare lock `HASH256 <h> EQUAL` would accept any preimage; P2SH runs the empty script.
    assert_eq!(p2sh_run(&[], &[]), Err(redeem_err(E::EvalFalse)));
}

#[test]
fn p2sh_redeem_script_size_limit() {
    // PUSHDATA2 <n bytes> OP_DROP OP_1: n + 5 bytes, leaving one true item.
    let redeem =
        |n: usize| [vec![OP_PUSHDATA2, n as u8, (n >> 8) as u8], vec![7; n], vec![OP_DROP, OP_1]].concat();
    assert_eq!(redeem(515).len(), MAX_ELEMENT_SIZE);
    assert_eq!(p2sh_run(&[], &redeem(515)), Ok(()));
    assert_eq!(p2sh_run(&[], &redeem(516)), Err(E::ElementTooLarge { size: 521, max: 520 }));
}

#[test]
fn unlock_must_be_push_only() {
    // Without the rule `1 DUP` + `EQUAL` would succeed, as `1 1` + `EQUAL` does.
    assert_eq!(plain(&[OP_1, OP_1], &[OP_EQUAL]), Ok(()));
    assert_eq!(plain(&[OP_1, OP_DUP], &[OP_EQUAL]), Err(E::UnlockNotPushOnly { opcode: OP_DUP, at: 1 }));
    assert_eq!(p2sh_run(&[OP_1, OP_DUP], &[OP_EQUAL]), Err(E::UnlockNotPushOnly { opcode: OP_DUP, at: 1 }));
}

// ---- Lock time ------------------------------------------------------------------------------

#[test]
fn checklocktimeverify() {
    let lock = with_height_lock(10, &Script(vec![OP_1])).0;
    assert_eq!(run(&[], &lock, &[], 9), Err(E::LockTimeNotReached { required: 10, tx_lock_time: 9 }));
    assert_eq!(run(&[], &lock, &[], 10), Ok(()));
    assert_eq!(run(&[], &lock, &[], u32::MAX), Ok(()));
    // The height is not popped: `<10> CLTV` alone leaves 10 on the stack.
    assert_eq!(run(&[], &[int(10), vec![OP_CHECKLOCKTIMEVERIFY]].concat(), &[], 10), Ok(()));
    // Heights up to u32::MAX take five bytes.
    let max = with_height_lock(u32::MAX, &Script(vec![OP_1])).0;
    assert_eq!(run(&[], &max, &[], u32::MAX), Ok(()));
    let e = E::LockTimeNotReached { required: u32::MAX as i64, tx_lock_time: u32::MAX - 1 };
    assert_eq!(run(&[], &max, &[], u32::MAX - 1), Err(e));
    let neg = [int(-1), vec![OP_CHECKLOCKTIMEVERIFY, OP_DROP, OP_1]].concat();
    assert_eq!(run(&[], &neg, &[], 100), Err(E::NegativeLockTime { height: -1 }));
    let e = E::StackUnderflow { op: "OP_CHECKLOCKTIMEVERIFY", need: 1, have: 0 };
    assert_eq!(run(&[], &[OP_CHECKLOCKTIMEVERIFY], &[], 0), Err(e));
}

#[test]
fn height_locked_p2pkh_signature_commits_to_lock_time() {
    let lock = with_height_lock(10, &p2pkh(&pubkey_hash(&pk(1))));
    let msg = msg_for(&spend_tx(10), 0, &lock);
    let unlock = p2pkh_unlock(&sign(1, &msg), &pk(1)).0;
    assert_eq!(run(&unlock, &lock.0, &msg, 10), Ok(()));
    assert_eq!(run(&unlock, &lock.0, &msg, 9), Err(E::LockTimeNotReached { required: 10, tx_lock_time: 9 }));
    // Raising the lock time after signing changes the sighash: the old signature fails.
    let later = msg_for(&spend_tx(11), 0, &lock);
    assert_eq!(run(&unlock, &lock.0, &later, 11), Err(nullfail("OP_CHECKSIG", 1)));
}

// ---- Control flow and plain operations ------------------------------------------------------

#[test]
fn conditionals() {
    let with = |first: &[u8], rest: &[u8]| exec(&[first, rest].concat());
    let ite = [OP_IF, OP_2, OP_ELSE, OP_3, OP_ENDIF];
    assert_eq!(with(&[OP_1], &ite), Ok(vec![vec![2]]));
    assert_eq!(with(&[OP_0], &ite), Ok(vec![vec![3]]));
    // Minimal IF: only "" and 01 are conditions; other values, even negative zero, fail.
    assert_eq!(with(&pushes(&[&[0x80]]), &ite), Err(E::NonMinimalIf { len: 1 }));
    assert_eq!(with(&[OP_2], &ite), Err(E::NonMinimalIf { len: 1 }));
    let nite = [OP_NOTIF, OP_2, OP_ELSE, OP_3, OP_ENDIF];
    assert_eq!(with(&[OP_0], &nite), Ok(vec![vec![2]]));
    assert_eq!(with(&[OP_1], &nite), Ok(vec![vec![3]]));
    // An inner ELSE inside an unexecuted outer branch must not start executing.
    let nested = [OP_IF, OP_0, OP_IF, OP_2, OP_ELSE, OP_3, OP_ENDIF, OP_ELSE, OP_4, OP_ENDIF];
    assert_eq!(with(&[OP_1], &nested), Ok(vec![vec![3]]));
    assert_eq!(with(&[OP_0], &nested), Ok(vec![vec![4]]));
    assert_eq!(exec(&[OP_5, OP_1, OP_IF, OP_ENDIF]), Ok(vec![vec![5]]), "IF pops its condition");
    assert_eq!(exec(&[OP_IF, OP_ENDIF]), Err(E::StackUnderflow { op: "OP_IF", need: 1, have: 0 }));
    let lock = [OP_IF, OP_0, OP_ELSE, OP_1, OP_ENDIF];
    assert_eq!(plain(&[OP_0], &lock), Ok(()));
    assert_eq!(plain(&[OP_1], &lock), Err(E::EvalFalse));
}

#[test]
fn unbalanced_conditionals() {
    let cases: [&[u8]; 4] =
        [&[OP_1, OP_IF, OP_1], &[OP_1, OP_ELSE], &[OP_1, OP_ENDIF], &[OP_1, OP_1, OP_IF, OP_ENDIF, OP_ENDIF]];
    for s in cases {
        assert_eq!(exec(s), Err(E::UnbalancedConditional), "{s:02x?}");
    }
    assert_eq!(plain(&[OP_1], &[OP_ENDIF, OP_1]), Err(E::UnbalancedConditional));
}

#[test]
fn unknown_opcodes_fail_even_unexecuted() {
    assert_eq!(exec(&[OP_0, OP_IF, 0xba, OP_ENDIF, OP_1]), Err(E::BadOpcode { opcode: 0xba, at: 2 }));
    for op in [0x4e, 0x4f, 0x50, 0x61, 0x62, 0x65, 0x66, 0x7e, 0xa9, 0xb0, 0xb2, 0xff] {
        assert_eq!(exec(&[OP_1, op]), Err(E::BadOpcode { opcode: op, at: 1 }), "0x{op:02x}");
    }
}

#[test]
fn op_return_fails_when_executed() {
    assert_eq!(plain(&[OP_1], &op_return(b"data").0), Err(E::OpReturn));
    assert_eq!(plain(&[], &[OP_1, OP_RETURN]), Err(E::OpReturn));
    assert_eq!(exec(&[OP_0, OP_IF, OP_RETURN, OP_ENDIF, OP_1]), Ok(vec![vec![1]]));
}

#[test]
fn stack_operations_and_final_truth() {
    assert_eq!(exec(&[OP_2, OP_DUP, OP_3, OP_DROP]), Ok(vec![vec![2], vec![2]]));
    assert_eq!(exec(&[OP_2, OP_2, OP_EQUAL, OP_2, OP_3, OP_EQUAL]), Ok(vec![vec![1], vec![]]));
    assert_eq!(exec(&[OP_2, OP_3, OP_EQUALVERIFY]), Err(E::VerifyFailed { op: "OP_EQUALVERIFY" }));
    assert_eq!(exec(&[OP_0, OP_VERIFY]), Err(E::VerifyFailed { op: "OP_VERIFY" }));
    assert_eq!(exec(&[OP_0, OP_NOT, OP_2, OP_NOT]), Ok(vec![vec![1], vec![]]));
    assert_eq!(
        exec(&[OP_0, OP_SHA256, OP_0, OP_HASH256]),
        Ok(vec![sha256(&[]).to_vec(), sha256d(&[]).0.to_vec()])
    );
    assert_eq!(exec(&[OP_DUP]), Err(E::StackUnderflow { op: "OP_DUP", need: 1, have: 0 }));
    assert_eq!(exec(&[OP_1, OP_EQUAL]), Err(E::StackUnderflow { op: "OP_EQUAL", need: 2, have: 1 }));
    let non_minimal = [&pushes(&[&[1, 0]])[..], &[OP_NOT]].concat();
    assert!(matches!(exec(&non_minimal), Err(E::BadNumber { .. })));
    assert_eq!(plain(&[], &[]), Err(E::EvalFalse));
    assert_eq!(plain(&[OP_1], &[]), Ok(()));
    assert_eq!(plain(&[OP_1], &[OP_0]), Err(E::EvalFalse));
    assert_eq!(plain(&pushes(&[&[0, 0x80]]), &[]), Err(E::EvalFalse));
}

// ---- Limits ---------------------------------------------------------------------------------

#[test]
fn op_count_limit() {
    let dups = |n: usize| [vec![OP_1], vec![OP_DUP; n]].concat();
    assert!(exec(&dups(MAX_OPS_PER_SCRIPT)).is_ok());
    assert_eq!(exec(&dups(MAX_OPS_PER_SCRIPT + 1)), Err(E::OpCountExceeded { max: 201 }));
    // Skipped operations count too: IF + 200 + ENDIF = 202.
    let skipped = [vec![OP_0, OP_IF], vec![OP_DUP; 200], vec![OP_ENDIF, OP_1]].concat();
    assert_eq!(exec(&skipped), Err(E::OpCountExceeded { max: 201 }));
    assert!(exec(&[vec![OP_1; 500], vec![OP_DROP; 201]].concat()).is_ok(), "pushes do not count");
}

#[test]
fn stack_size_limit() {
    assert_eq!(exec(&[OP_1; MAX_STACK_SIZE]).map(|s| s.len()), Ok(1000));
    assert_eq!(exec(&[OP_1; MAX_STACK_SIZE + 1]), Err(E::StackOverflow { max: 1000 }));
    assert_eq!(exec(&[vec![OP_1; 999], vec![OP_DUP, OP_DUP]].concat()), Err(E::StackOverflow { max: 1000 }));
    // The limit spans unlock data and locking script.
    // 1000 items fit (and then fail the clean-stack rule, not the stack limit).
    assert_eq!(plain(&[OP_1; 999], &[OP_1]), Err(E::CleanStack { items: 1000 }));
    assert_eq!(plain(&[OP_1; 1000], &[OP_1]), Err(E::StackOverflow { max: 1000 }));
}

/// Minimal pushes of 7s totalling exactly `total` bytes, and how many items they push.
fn big_push_script(total: usize) -> (Vec<u8>, usize) {
    let mut s = Vec::with_capacity(total);
    let mut items = 0;
    while total - s.len() > 506 {
        push_data(&mut s, &[7; 500]); // PUSHDATA2: 503 bytes
        items += 1;
    }
    let r = total - s.len();
    let m = if r >= 259 {
        r - 3
    } else if r >= 78 {
        r - 2
    } else {
        r - 1
    };
    push_data(&mut s, &vec![7; m]);
    assert_eq!(s.len(), total, "remainder {r} has no single minimal push");
    (s, items + 1)
}

#[test]
fn script_size_limit() {
    let ((ok, n_ok), (big, n_big)) = (big_push_script(MAX_SCRIPT_SIZE), big_push_script(MAX_SCRIPT_SIZE + 1));
    assert_eq!((ok.len(), big.len()), (10_000, 10_001));
    let e = Err(E::ScriptTooLarge { size: 10_001, max: 10_000 });
    // As a locking script: the pushes sit in a skipped branch, `OP_0 OP_IF .. OP_ENDIF OP_1`.
    let lock = |n: usize| [vec![OP_0, OP_IF], big_push_script(n - 4).0, vec![OP_ENDIF, OP_1]].concat();
    assert_eq!(plain(&[], &lock(MAX_SCRIPT_SIZE)), Ok(()));
    assert_eq!(plain(&[], &lock(MAX_SCRIPT_SIZE + 1)), e);
    // As unlock data: the locking script drops all but one item.
    assert_eq!(plain(&ok, &vec![OP_DROP; n_ok - 1]), Ok(()));
    assert_eq!(plain(&big, &vec![OP_DROP; n_big - 1]), e);
}

#[test]
fn element_size_limit() {
    assert_eq!(exec(&pushes(&[&[1; 520]])).map(|s| s.len()), Ok(1));
    let e = Err(E::ElementTooLarge { size: 521, max: 520 });
    assert_eq!(exec(&pushes(&[&[1; 521]])), e);
    assert_eq!(exec(&[&[OP_0, OP_IF][..], &pushes(&[&[1; 521]]), &[OP_ENDIF, OP_1]].concat()), e);
}

#[test]
fn truncated_pushes() {
    let past = |at, need, remaining| E::PushPastEnd { at, need, remaining };
    assert_eq!(exec(&[OP_1, 0x05, 1, 2]), Err(past(1, 5, 2)));
    assert_eq!(exec(&[OP_1, OP_PUSHDATA1]), Err(past(1, 1, 0)));
    assert_eq!(exec(&[OP_PUSHDATA1, 3, 1]), Err(past(0, 3, 1)));
    assert_eq!(exec(&[OP_PUSHDATA2, 0x10]), Err(past(0, 2, 1)));
    assert_eq!(exec(&[OP_PUSHDATA2, 0x10, 0x00, 1]), Err(past(0, 16, 1)));
    assert_eq!(plain(&[0x02, 1], &[OP_1]), Err(past(0, 2, 1)));
    assert_eq!(plain(&[OP_1], &[OP_1, 0x02]), Err(past(1, 2, 0)));
}

// ---- Sigops and templates -------------------------------------------------------------------

#[test]
fn sigop_counting() {
    let keys20: Vec<_> = (1..=20).map(pk).collect();
    assert_eq!(count_sigops(&p2pkh(&pubkey_hash(&pk(1))).0), 1);
    assert_eq!(count_sigops(&multisig(2, &keys3()).0), 3);
    assert_eq!(count_sigops(&multisig(1, &keys20).0), 20);
    assert_eq!(count_sigops(&[OP_CHECKMULTISIG]), 20);
    assert_eq!(count_sigops(&[OP_DUP, OP_CHECKMULTISIGVERIFY]), 20);
    assert_eq!(count_sigops(&[OP_0, OP_CHECKMULTISIG]), 20);
    assert_eq!(count_sigops(&[OP_2, OP_CHECKMULTISIGVERIFY, OP_CHECKSIGVERIFY, OP_CHECKSIG]), 4);
    assert_eq!(count_sigops(&p2sh(&multisig(2, &keys3())).0), 0);
    assert_eq!(count_sigops(&[OP_CHECKSIG, 0x05, 1]), 1, "counting stops at a bad push");
}

#[test]
fn template_classification() {
    let h = pubkey_hash(&pk(1));
    assert_eq!(Template::classify(&p2pkh(&h).0), Template::P2pkh(h));
    let redeem = multisig(2, &keys3());
    assert_eq!(Template::classify(&p2sh(&redeem).0), Template::P2sh(script_hash(&redeem)));
    assert_eq!(Template::classify(&redeem.0), Template::Multisig { threshold: 2, keys: keys3() });
    let keys: Vec<_> = (1..=21).map(pk).collect();
    let twenty = Template::Multisig { threshold: 20, keys: keys[..20].to_vec() };
    assert_eq!(Template::classify(&multisig(20, &keys[..20]).0), twenty);
    assert_eq!(Template::classify(&op_return(b"hello").0), Template::OpReturn);
    assert_eq!(Template::classify(&[OP_RETURN]), Template::OpReturn);
    let non_standard = [
        vec![],
        vec![OP_1],
        p2pkh(&h).0[..36].to_vec(),
        [&p2pkh(&h).0[..], &[OP_1]].concat(),
        [&[OP_1][..], &p2sh(&redeem).0].concat(),
        multisig(0, &keys3()).0,
        multisig(4, &keys3()).0,
        multisig(1, &keys).0, // 21 keys: CHECKMULTISIG always fails
        with_height_lock(5, &p2pkh(&h)).0,
        [&[OP_2][..], &pushes(&[&pk(1), &pk(2)]), &[OP_3, OP_CHECKMULTISIG]].concat(),
        [&[OP_1][..], &pushes(&[&pk(1)[..31]]), &[OP_1, OP_CHECKMULTISIG]].concat(),
        vec![OP_1, 0x20, 1, 2],
    ];
    for s in non_standard {
        assert_eq!(Template::classify(&s), Template::NonStandard, "{}", hex::encode(&s));
    }
    assert!(is_unspendable(&op_return(b"").0));
    assert!(!is_unspendable(&p2pkh(&h).0));
}

// ---- Deferred (batch) verification ----------------------------------------------------------

/// Runs a spend with a deferred checker: (script verdict, batch verdict, signatures recorded).
fn run_deferred(unlock: &[u8], lock: &[u8], msg: &[u8]) -> (Result<(), E>, bool, usize) {
    let mut pending: Vec<PreparedSig> = Vec::new();
    let mut checker = DeferredChecker { msg, pending: &mut pending };
    let r = verify_spend(unlock, lock, &SpendContext { tx_lock_time: 0 }, &mut checker);
    (r, verify_batch(&pending), pending.len())
}

#[test]
fn deferred_matches_eager_for_valid_spends() {
    let (lock, msg, _) = p2pkh_case();
    let unlock = p2pkh_unlock(&sign(1, &msg), &pk(1)).0;
    assert_eq!(run(&unlock, &lock.0, &msg, 0), Ok(()));
    assert_eq!(run_deferred(&unlock, &lock.0, &msg), (Ok(()), true, 1));

    let redeem = multisig(2, &keys3());
    let lock = p2sh(&redeem);
    let msg = msg_for(&spend_tx(0), 0, &lock);
    for signers in [[1, 2, 0], [1, 0, 3], [1, 2, 3]] {
        let unlock = p2sh_unlock(&slots(&msg, signers), &redeem).0;
        let n = signers.iter().filter(|&&k| k != 0).count();
        assert_eq!(run(&unlock, &lock.0, &msg, 0), Ok(()));
        assert_eq!(run_deferred(&unlock, &lock.0, &msg), (Ok(()), true, n));
    }
    // Failures that do not depend on signature validity are the same either way.
    let one = p2sh_unlock(&slots(&msg, [1, 0, 0]), &redeem).0;
    let err = Err(redeem_err(E::MultisigThresholdNotMet { got: 1, need: 2 }));
    assert_eq!(run(&one, &lock.0, &msg, 0), err);
    assert_eq!(run_deferred(&one, &lock.0, &msg).0, err);
}

#[test]
fn deferred_batch_fails_on_signature_over_wrong_message() {
    let (lock, msg, other) = p2pkh_case();
    let unlock = p2pkh_unlock(&sign(1, &other), &pk(1)).0;
    assert_eq!(run(&unlock, &lock.0, &msg, 0), Err(nullfail("OP_CHECKSIG", 1)));
    assert_eq!(run_deferred(&unlock, &lock.0, &msg), (Ok(()), false, 1));
    // A signature that cannot even be decoded (s >= l) fails at once under both checkers.
    let mut junk = sign(1, &msg);
    junk[63] |= 0xf0;
    let unlock = p2pkh_unlock(&junk, &pk(1)).0;
    assert_eq!(run(&unlock, &lock.0, &msg, 0), Err(nullfail("OP_CHECKSIG", 1)));
    assert_eq!(run_deferred(&unlock, &lock.0, &msg).0, Err(nullfail("OP_CHECKSIG", 1)));
    // In a batch of two, inside P2SH multisig.
    let redeem = multisig(2, &keys3());
    let lock = p2sh(&redeem);
    let msg = msg_for(&spend_tx(0), 0, &lock);
    let bad = multisig_unlock(&[Some(sign(1, &msg)), None, Some(sign(3, &other))]);
    let unlock = p2sh_unlock(&bad, &redeem).0;
    assert_eq!(run(&unlock, &lock.0, &msg, 0), Err(redeem_err(nullfail("OP_CHECKMULTISIG", 3))));
    assert_eq!(run_deferred(&unlock, &lock.0, &msg), (Ok(()), false, 2));
}

// ---- Properties -----------------------------------------------------------------------------

fn arb_script() -> impl Strategy<Value = Script> {
    vec(any::<u8>(), 0..40).prop_map(Script)
}

fn arb_txout() -> impl Strategy<Value = TxOut> {
    (0..=MAX_MONEY, arb_script()).prop_map(|(v, lock)| TxOut { value: amount(v), lock })
}

fn arb_tx() -> impl Strategy<Value = Transaction> {
    let input = (any::<[u8; 32]>(), any::<u32>(), arb_script())
        .prop_map(|(t, index, unlock)| TxIn { prevout: OutPoint { txid: Hash256(t), index }, unlock });
    (any::<u32>(), vec(input, 1..4), vec(arb_txout(), 0..4), any::<u32>())
        .prop_map(|(version, inputs, outputs, lock_time)| Transaction { version, inputs, outputs, lock_time })
}

fn other_value(a: Amount) -> Amount {
    amount(if a.to_sat() == 0 { 1 } else { a.to_sat() - 1 })
}

fn other_script(s: &Script, at: Index, bump: u8) -> Script {
    let mut b = s.0.clone();
    match b.len() {
        0 => b.push(bump),
        n => b[at.index(n)] ^= bump,
    }
    Script(b)
}

/// Scripts of small numbers, short pushes, keys, signatures over [`run_both`]'s message
/// (valid or not), the operations from OP_IF to OP_CHECKLOCKTIMEVERIFY, and random bytes.
fn arb_tokens(push_only: bool) -> impl Strategy<Value = Vec<u8>> {
    let push = prop_oneof![
        4 => (0i64..=16).prop_map(int),
        2 => vec(any::<u8>(), 0..6).prop_map(|d| pushes(&[&d])),
        2 => any::<u8>().prop_map(|i| pushes(&[&pk(i % 4)])),
        2 => (any::<u8>(), any::<bool>())
            .prop_map(|(i, good)| pushes(&[&sign(i % 4, if good { &[0u8; 32][..] } else { b"x" })])),
    ];
    let ops = prop::sample::select((OP_IF..=OP_CHECKLOCKTIMEVERIFY).collect::<Vec<u8>>());
    let token = match push_only {
        true => push.boxed(),
        false => {
            prop_oneof![8 => push, 6 => ops.prop_map(|b| vec![b]), 1 => any::<u8>().prop_map(|b| vec![b])]
                .boxed()
        }
    };
    vec(token, 0..40).prop_map(|t| t.concat())
}

/// Runs a spend eagerly and deferred; the verdicts must agree (deferred: script and batch).
fn run_both(unlock: &[u8], lock: &[u8], lock_time: u32) -> Result<(), TestCaseError> {
    let msg = [0u8; 32];
    let eager = run(unlock, lock, &msg, lock_time);
    let mut pending = Vec::new();
    let mut deferred = DeferredChecker { msg: &msg, pending: &mut pending };
    let lazy = verify_spend(unlock, lock, &SpendContext { tx_lock_time: lock_time }, &mut deferred);
    let lazy_ok = lazy.is_ok() && verify_batch(&pending);
    prop_assert_eq!(eager.is_ok(), lazy_ok, "eager {:?} deferred {:?}", eager, lazy);
    Ok(())
}

proptest! {
    #[test]
    fn sighash_commits_to_every_field_but_unlock_data(
        tx in arb_tx(), spent in arb_txout(), pick in any::<Index>(), at in any::<Index>(),
        bump in 1u8..=255, unlocks in vec(arb_script(), 4),
    ) {
        let index = pick.index(tx.inputs.len());
        let h = |t: &Transaction, i: usize, s: &TxOut| sighash(t, &SighashCache::new(t), i, s);
        let base = h(&tx, index, &spent);
        let changed = |f: &dyn Fn(&mut Transaction)| {
            let mut t = tx.clone();
            f(&mut t);
            h(&t, index, &spent)
        };
        prop_assert_ne!(changed(&|t| t.version ^= bump as u32), base, "version");
        prop_assert_ne!(changed(&|t| t.lock_time ^= bump as u32), base, "lock_time");
        for i in 0..tx.inputs.len() {
            let txid = changed(&|t| t.inputs[i].prevout.txid.0[at.index(32)] ^= bump);
            prop_assert_ne!(txid, base, "txid {}", i);
            prop_assert_ne!(changed(&|t| t.inputs[i].prevout.index ^= bump as u32), base, "vout {}", i);
        }
        for o in 0..tx.outputs.len() {
            let value = changed(&|t| t.outputs[o].value = other_value(t.outputs[o].value));
            prop_assert_ne!(value, base, "value {}", o);
            let script = changed(&|t| t.outputs[o].lock = other_script(&t.outputs[o].lock, at, bump));
            prop_assert_ne!(script, base, "script {}", o);
        }
        prop_assert_ne!(changed(&|t| t.outputs.push(spent.clone())), base, "added output");
        prop_assert_ne!(changed(&|t| t.inputs.push(t.inputs[0].clone())), base, "added input");
        // The input index, isolated: two inputs naming the same outpoint.
        let mut t = tx.clone();
        t.inputs.push(t.inputs[index].clone());
        prop_assert_ne!(h(&t, index, &spent), h(&t, t.inputs.len() - 1, &spent), "input index");
        let s = TxOut { value: other_value(spent.value), lock: spent.lock.clone() };
        prop_assert_ne!(h(&tx, index, &s), base, "spent value");
        let s = TxOut { value: spent.value, lock: other_script(&spent.lock, at, bump) };
        prop_assert_ne!(h(&tx, index, &s), base, "spent script");
        let mut t = tx.clone();
        for (input, unlock) in t.inputs.iter_mut().zip(&unlocks) {
            input.unlock = unlock.clone();
        }
        prop_assert_eq!(SighashCache::new(&t), SighashCache::new(&tx));
        prop_assert_eq!(h(&t, index, &spent), base, "unlock data is not committed");
    }

    #[test]
    fn verify_spend_never_panics_on_random_bytes(
        unlock in vec(any::<u8>(), 0..300), lock in vec(any::<u8>(), 0..300), lock_time in any::<u32>(),
    ) {
        run_both(&unlock, &lock, lock_time)?;
    }

    #[test]
    fn verify_spend_never_panics_on_random_scripts(
        unlock in arb_tokens(true), lock in arb_tokens(false), redeem in arb_tokens(false),
        lock_time in 0u32..20,
    ) {
        run_both(&unlock, &lock, lock_time)?;
        // The same material as a P2SH spend (the redeem push may exceed 520 bytes, or not).
        let unlock = [&unlock[..], &pushes(&[&redeem])].concat();
        run_both(&unlock, &p2sh(&Script(redeem)).0, lock_time)?;
    }
}
