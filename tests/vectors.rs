//! Block test vectors as data files, runnable by any implementation.
//!
//! Every file in `tests/vectors/blocks/*.json` is one case (format: `tests/vectors/README.md`):
//! a network, a height, the node's clock, the header context, the parent's UTXO set and a
//! block in its canonical encoding, with the exact expected outcome. [`vectors_pass`] runs each
//! one through decode -> `check_block` -> `check_header_context` -> `connect_block` and compares
//! the stage, the rule and the full error message.
//!
//! The files are written by [`generate`], which builds every case in Rust with deterministic
//! keys (`SigningKey::from_bytes(&[i; 32])`), deterministic times and a nonce search from 0,
//! states the expected error independently of the code under test, and refuses to write a
//! case whose actual outcome differs:
//!
//! ```text
//! cargo test --test suite -- --ignored vectors::generate
//! ```

use ed25519_dalek::{Signer, SigningKey};
use quarry::consensus::pow::check_proof_of_work;
use quarry::consensus::{
    block_subsidy, check_block, check_header_context, connect_block, BlockConnect, Coin, ConsensusError,
    HeaderContext, Network, Params,
};
use quarry::primitives::amount::{COIN, MAX_MONEY};
use quarry::primitives::merkle::merkle_root;
use quarry::primitives::{
    sha256d, Amount, Block, BlockHeader, DecodeError, Hash256, OutPoint, Script, Transaction, TxIn, TxOut,
};
use quarry::script::opcodes::{push_data, push_int, OP_0, OP_CHECKMULTISIG, OP_DUP, OP_PUSHDATA1, OP_RETURN};
use quarry::script::templates::{
    multisig, multisig_unlock, op_return, p2pkh, p2pkh_unlock, p2sh, p2sh_unlock, pubkey_hash, script_hash,
    with_height_lock,
};
use quarry::script::{sighash, ScriptError, SighashCache};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

// ------------------------------------------------------------------------------------------
// The file format
// ------------------------------------------------------------------------------------------

/// One test vector file.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
struct Vector {
    /// What the case exercises.
    description: String,
    /// "regtest" or "dev".
    network: String,
    /// Height the block would have.
    height: u32,
    /// The validating node's clock, Unix seconds.
    now: u64,
    /// Facts about the parent chain.
    header_context: HeaderContextJson,
    /// The parent's UTXO set (only the coins the case needs).
    utxos: Vec<UtxoJson>,
    /// "ok" or the expected failure.
    expect: Expect,
    /// For "ok" cases: the block's effect on the UTXO set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    effect: Option<EffectJson>,
    /// SHA-256d of the first 80 bytes of the block, display order.
    block_id: String,
    /// The canonical block encoding, hex (absent when `block_parts` is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    block: Option<String>,
    /// The block as hex pieces and runs of one repeated byte, for blocks too large to store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    block_parts: Option<Vec<Part>>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
struct HeaderContextJson {
    /// Bits the retarget rule requires, "0x" and 8 hex digits.
    expected_bits: String,
    /// Median time past of the parent chain.
    median_time_past: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
struct UtxoJson {
    txid: String,
    index: u32,
    value: u64,
    lock: String,
    height: u32,
    is_coinbase: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
enum Part {
    Hex(String),
    Repeat { repeat: String, count: usize },
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
enum Expect {
    /// The string "ok".
    Ok(String),
    /// A failure: the stage that reports it, the rule (variant path) and the exact message.
    Error { stage: String, rule: String, error: String },
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
struct EffectJson {
    /// Total fees, base units.
    fees: u64,
    /// Outpoints spent from the parent's UTXO set, in input order ("txid:index").
    spent: Vec<String>,
    /// Outpoints created and not spent within the block, sorted by (txid bytes, index).
    created: Vec<String>,
}

// ------------------------------------------------------------------------------------------
// Running a vector
// ------------------------------------------------------------------------------------------

const STAGE_DECODE: &str = "decode";
const STAGE_BLOCK: &str = "check_block";
const STAGE_HEADER: &str = "check_header_context";
const STAGE_CONNECT: &str = "connect_block";

fn params_of(network: &str) -> &'static Params {
    network.parse::<Network>().unwrap_or_else(|e| panic!("{e}")).params()
}

fn parse_bits(s: &str) -> u32 {
    let hex = s.strip_prefix("0x").unwrap_or_else(|| panic!("bits {s:?} must start with 0x"));
    u32::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("bits {s:?}: {e}"))
}

fn block_bytes(v: &Vector) -> Vec<u8> {
    match (&v.block, &v.block_parts) {
        (Some(hex), None) => hex::decode(hex).expect("block is hex"),
        (None, Some(parts)) => {
            let mut out = Vec::new();
            for p in parts {
                match p {
                    Part::Hex(h) => out.extend(hex::decode(h).expect("part is hex")),
                    Part::Repeat { repeat, count } => {
                        let unit = hex::decode(repeat).expect("repeat is hex");
                        for _ in 0..*count {
                            out.extend_from_slice(&unit);
                        }
                    }
                }
            }
            out
        }
        _ => panic!("exactly one of block and block_parts must be given"),
    }
}

fn utxo_from_json(u: &UtxoJson) -> (OutPoint, Coin) {
    let txid: Hash256 = u.txid.parse().expect("utxo txid");
    let value = Amount::from_sat(u.value).expect("utxo value in range");
    let lock = Script(hex::decode(&u.lock).expect("utxo lock is hex"));
    (
        OutPoint { txid, index: u.index },
        Coin { out: TxOut { value, lock }, height: u.height, is_coinbase: u.is_coinbase },
    )
}

/// decode -> check_block -> check_header_context -> connect_block.
fn run(v: &Vector) -> Result<BlockConnect, (&'static str, ConsensusError)> {
    let params = params_of(&v.network);
    let bytes = block_bytes(v);
    // Size limits are consensus rules checked by check_block, so the harness decodes without a
    // limit of its own (a node decoding untrusted bytes may refuse an oversize block earlier).
    let block =
        Block::decode(&bytes, usize::MAX).map_err(|e| (STAGE_DECODE, ConsensusError::Malformed(e)))?;
    // A compact block rebuilt from the mempool is checked with the txids it already has: the
    // same verdict on every vector.
    let known = quarry::consensus::check_block_with_txids(block.clone(), block.txids(), params)
        .map(|c| (c.hash(), c.txids().to_vec()));
    let checked = check_block(block, params).map_err(|e| (STAGE_BLOCK, e));
    let plain = checked.as_ref().map(|c| (c.hash(), c.txids().to_vec())).map_err(|(_, e)| e.clone());
    assert_eq!(format!("{known:?}"), format!("{plain:?}"), "check_block_with_txids agrees on {}", v.block_id);
    let checked = checked?;
    let ctx = HeaderContext {
        height: v.height,
        expected_bits: parse_bits(&v.header_context.expected_bits),
        median_time_past: v.header_context.median_time_past,
        now: v.now,
    };
    check_header_context(checked.header(), &ctx, params).map_err(|e| (STAGE_HEADER, e))?;
    let view: HashMap<OutPoint, Coin> = v.utxos.iter().map(utxo_from_json).collect();
    connect_block(&checked, v.height, params, &view).map_err(|e| (STAGE_CONNECT, e))
}

/// The leading identifier of a Debug rendering: the variant name.
fn variant(debug: String) -> String {
    debug.split(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or_default().to_string()
}

/// The rule a failure breaks, as a dotted variant path: `DuplicateInput`, `Malformed.TrailingBytes`,
/// `Script.NullFail`, `Script.RedeemScript.MultisigThresholdNotMet`. [`ConsensusError::InTx`]
/// (which only names the transaction) is unwrapped.
fn rule(e: &ConsensusError) -> String {
    match e.root() {
        ConsensusError::Malformed(d) => format!("Malformed.{}", variant(format!("{d:?}"))),
        ConsensusError::Script { error, .. } => {
            let mut s = format!("Script.{}", variant(format!("{error:?}")));
            let mut cur = error;
            while let ScriptError::RedeemScript(inner) = cur {
                s = format!("{s}.{}", variant(format!("{inner:?}")));
                cur = inner;
            }
            s
        }
        r => variant(format!("{r:?}")),
    }
}

fn effect_of(c: &BlockConnect) -> EffectJson {
    EffectJson {
        fees: c.fees.to_sat(),
        spent: c.spent.iter().map(|(op, _)| op.to_string()).collect(),
        created: c.created.iter().map(|(op, _)| op.to_string()).collect(),
    }
}

/// Checks one vector; returns a description of every mismatch.
fn check_vector(v: &Vector) -> Vec<String> {
    let mut problems = Vec::new();
    let bytes = block_bytes(v);
    if bytes.len() >= 80 {
        let id = sha256d(&bytes[..80]).to_string();
        if id != v.block_id {
            problems.push(format!("block_id: file says {}, header hashes to {id}", v.block_id));
        }
    }
    match (run(v), &v.expect) {
        (Ok(effect), Expect::Ok(s)) if s == "ok" => {
            if let Some(want) = &v.effect {
                let got = effect_of(&effect);
                if &got != want {
                    problems.push(format!("effect: expected {want:?}, got {got:?}"));
                }
            }
        }
        (Err((stage, e)), Expect::Error { stage: want_stage, rule: want_rule, error: want_error }) => {
            let (got_rule, got_error) = (rule(&e), e.to_string());
            if stage != want_stage {
                problems.push(format!("stage: expected {want_stage}, got {stage}"));
            }
            if &got_rule != want_rule {
                problems.push(format!("rule: expected {want_rule}, got {got_rule}"));
            }
            if &got_error != want_error {
                problems.push(format!("error:\n  expected: {want_error}\n  got:      {got_error}"));
            }
        }
        (Ok(_), want) => problems.push(format!("expected {want:?}, the block is valid")),
        (Err((stage, e)), want) => problems.push(format!("expected {want:?}, got {stage}: {e}")),
    }
    problems
}

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/blocks")
}

fn vector_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(vectors_dir())
        .expect("tests/vectors/blocks exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

/// Every vector file produces exactly its expected outcome.
#[test]
fn vectors_pass() {
    let files = vector_files();
    assert!(files.len() >= 30, "expected at least 30 vectors, found {}", files.len());
    let (mut ok, mut invalid, mut failures) = (0, 0, Vec::new());
    for path in &files {
        let text = std::fs::read_to_string(path).expect("readable");
        let v: Vector =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: bad JSON: {e}", path.display()));
        match v.expect {
            Expect::Ok(_) => ok += 1,
            Expect::Error { .. } => invalid += 1,
        }
        let problems = check_vector(&v);
        if !problems.is_empty() {
            failures.push(format!("{}:\n  {}", path.display(), problems.join("\n  ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    assert!(ok >= 5 && invalid >= 25, "{ok} valid and {invalid} invalid vectors");
}

// ------------------------------------------------------------------------------------------
// The generator
// ------------------------------------------------------------------------------------------

/// 2026-01-01T00:00:00Z, the genesis time of both networks.
const T0: u32 = 1_767_225_600;

fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i; 32])
}

fn pk(i: u8) -> [u8; 32] {
    key(i).verifying_key().to_bytes()
}

fn sig(i: u8, msg: &[u8; 32]) -> [u8; 64] {
    key(i).sign(msg).to_bytes()
}

fn sat(v: u64) -> Amount {
    Amount::from_sat(v).expect("in range")
}

fn out(value: u64, lock: Script) -> TxOut {
    TxOut { value: sat(value), lock }
}

fn p2pkh_of(i: u8) -> Script {
    p2pkh(&pubkey_hash(&pk(i)))
}

/// A funding outpoint with a made-up txid (the UTXO set is given, not derived).
fn fund_point(tag: &str, index: u32) -> OutPoint {
    OutPoint { txid: sha256d(format!("quarry vectors funding: {tag}").as_bytes()), index }
}

/// An unsigned transaction spending `inputs`.
fn tx(inputs: &[OutPoint], outputs: Vec<TxOut>, lock_time: u32) -> Transaction {
    Transaction {
        version: 1,
        inputs: inputs.iter().map(|&prevout| TxIn { prevout, unlock: Script::default() }).collect(),
        outputs,
        lock_time,
    }
}

/// Sets each input's unlock data from its sighash: `unlock(input index, sighash bytes)`.
fn sign_tx(tx: &mut Transaction, spent: &[TxOut], unlock: impl Fn(usize, &[u8; 32]) -> Script) {
    let cache = SighashCache::new(tx);
    let msgs: Vec<[u8; 32]> = (0..tx.inputs.len()).map(|i| sighash(tx, &cache, i, &spent[i]).0).collect();
    for (i, m) in msgs.iter().enumerate() {
        tx.inputs[i].unlock = unlock(i, m);
    }
}

/// P2PKH unlock by key `k` for every input.
fn p2pkh_by(k: u8) -> impl Fn(usize, &[u8; 32]) -> Script {
    move |_, m| p2pkh_unlock(&sig(k, m), &pk(k))
}

fn in_tx(block: &Block, index: usize, error: ConsensusError) -> ConsensusError {
    ConsensusError::InTx { index, txid: block.txs[index].txid(), error: Box::new(error) }
}

fn script_err(block: &Block, index: usize, input: usize, error: ScriptError) -> ConsensusError {
    in_tx(block, index, ConsensusError::Script { input, error })
}

/// Mines `header` from nonce 0 until its proof of work passes.
fn mine(header: &mut BlockHeader, params: &Params) {
    header.nonce = 0;
    while check_proof_of_work(&header.hash(), header.bits, &params.pow_limit).is_err() {
        header.nonce = header.nonce.checked_add(1).expect("a nonce exists");
    }
}

/// Picks the first nonce from 0 whose proof of work fails.
fn unmine(header: &mut BlockHeader, params: &Params) {
    header.nonce = 0;
    while check_proof_of_work(&header.hash(), header.bits, &params.pow_limit).is_ok() {
        header.nonce += 1;
    }
}

/// The setting of one case: where the block sits and what the node knows.
struct Ctx {
    params: &'static Params,
    height: u32,
    time: u32,
    now: u64,
    expected_bits: u32,
    median_time_past: u32,
    prev: Hash256,
    utxos: Vec<(OutPoint, Coin)>,
}

impl Ctx {
    /// A block at `height` on a chain with one block every 5 s from genesis (time T0 + 5h);
    /// the median time past is that of the previous min(h, 11) blocks; the clock is 3 s later
    /// than the block time.
    fn new(network: Network, height: u32) -> Ctx {
        let params = network.params();
        let n = height.min(params.median_time_span as u32);
        let median_time_past = T0 + 5 * (height - n + n / 2);
        let time = T0 + 5 * height;
        let prev = if height == 1 {
            params.genesis_hash
        } else {
            sha256d(format!("quarry vectors: parent of height {height}").as_bytes())
        };
        Ctx {
            params,
            height,
            time,
            now: time as u64 + 3,
            expected_bits: params.genesis_bits,
            median_time_past,
            prev,
            utxos: Vec::new(),
        }
    }

    fn regtest(height: u32) -> Ctx {
        Ctx::new(Network::Regtest, height)
    }

    /// Adds a coin to the UTXO set and returns its outpoint and output.
    fn fund_at(
        &mut self,
        tag: &str,
        value: u64,
        lock: Script,
        height: u32,
        is_coinbase: bool,
    ) -> (OutPoint, TxOut) {
        let op = fund_point(tag, 0);
        let o = out(value, lock);
        self.utxos.push((op, Coin { out: o.clone(), height, is_coinbase }));
        (op, o)
    }

    /// Adds a non-coinbase coin created at height 5.
    fn fund(&mut self, tag: &str, value: u64, lock: Script) -> (OutPoint, TxOut) {
        self.fund_at(tag, value, lock, 5, false)
    }

    fn subsidy(&self) -> u64 {
        block_subsidy(self.params, self.height).to_sat()
    }

    /// Coinbase unlock data: the height, then a tag.
    fn coinbase_unlock(&self) -> Script {
        let mut u = Vec::new();
        push_int(&mut u, self.height as i64);
        push_data(&mut u, b"quarry vectors");
        Script(u)
    }

    fn coinbase_with(&self, unlock: Script, outputs: Vec<TxOut>) -> Transaction {
        Transaction {
            version: 1,
            inputs: vec![TxIn { prevout: OutPoint::NULL, unlock }],
            outputs,
            lock_time: 0,
        }
    }

    /// A coinbase paying `value` to key 9.
    fn coinbase(&self, value: u64) -> Transaction {
        self.coinbase_with(self.coinbase_unlock(), vec![out(value, p2pkh_of(9))])
    }

    /// The fees of `spends` as far as they can be computed (inputs from the UTXO set or from
    /// earlier spends; unknown inputs count zero; negative fees count zero).
    fn fees(&self, spends: &[Transaction]) -> u64 {
        let mut values: HashMap<OutPoint, u64> =
            self.utxos.iter().map(|(op, c)| (*op, c.out.value.to_sat())).collect();
        let mut fees = 0u64;
        for t in spends {
            let txid = t.txid();
            for (i, o) in t.outputs.iter().enumerate() {
                values.insert(OutPoint { txid, index: i as u32 }, o.value.to_sat());
            }
        }
        for t in spends {
            let ins: u64 = t.inputs.iter().map(|i| values.get(&i.prevout).copied().unwrap_or(0)).sum();
            let outs: u64 = t.outputs.iter().map(|o| o.value.to_sat()).sum();
            fees += ins.saturating_sub(outs);
        }
        fees
    }

    /// A header over `txs` with this context's prev, time and bits (not mined).
    fn header(&self, txs: &[Transaction]) -> BlockHeader {
        let txids: Vec<Hash256> = txs.iter().map(Transaction::txid).collect();
        BlockHeader {
            version: 1,
            prev: self.prev,
            merkle_root: merkle_root(&txids).0,
            time: self.time,
            bits: self.expected_bits,
            nonce: 0,
        }
    }

    /// A mined block of exactly `txs`.
    fn block(&self, txs: Vec<Transaction>) -> Block {
        let mut header = self.header(&txs);
        mine(&mut header, self.params);
        Block { header, txs }
    }

    /// A mined block: a coinbase paying the subsidy plus the fees, then `spends`.
    fn spend_block(&self, spends: Vec<Transaction>) -> Block {
        let value = (self.subsidy() + self.fees(&spends)).min(MAX_MONEY);
        let mut txs = vec![self.coinbase(value)];
        txs.extend(spends);
        self.block(txs)
    }

    /// A mined coinbase-only block paying the subsidy.
    fn coinbase_block(&self) -> Block {
        self.spend_block(Vec::new())
    }

    fn vector(
        &self,
        description: &str,
        bytes: Vec<u8>,
        expect: Expect,
        effect: Option<EffectJson>,
    ) -> Vector {
        let (block, block_parts) = if bytes.len() > 100_000 {
            (None, Some(compress(&bytes)))
        } else {
            (Some(hex::encode(&bytes)), None)
        };
        Vector {
            description: description.to_string(),
            network: self.params.network.name().to_string(),
            height: self.height,
            now: self.now,
            header_context: HeaderContextJson {
                expected_bits: format!("0x{:08x}", self.expected_bits),
                median_time_past: self.median_time_past,
            },
            utxos: self
                .utxos
                .iter()
                .map(|(op, c)| UtxoJson {
                    txid: op.txid.to_string(),
                    index: op.index,
                    value: c.out.value.to_sat(),
                    lock: hex::encode(&c.out.lock.0),
                    height: c.height,
                    is_coinbase: c.is_coinbase,
                })
                .collect(),
            expect,
            effect,
            block_id: sha256d(&bytes[..80.min(bytes.len())]).to_string(),
            block,
            block_parts,
        }
    }
}

/// Hex pieces, with runs of at least 64 identical bytes as `{repeat, count}`.
fn compress(bytes: &[u8]) -> Vec<Part> {
    let mut parts = Vec::new();
    let (mut i, mut lit_start) = (0, 0);
    while i < bytes.len() {
        let mut j = i;
        while j < bytes.len() && bytes[j] == bytes[i] {
            j += 1;
        }
        if j - i >= 64 {
            if lit_start < i {
                parts.push(Part::Hex(hex::encode(&bytes[lit_start..i])));
            }
            parts.push(Part::Repeat { repeat: hex::encode([bytes[i]]), count: j - i });
            lit_start = j;
        }
        i = j;
    }
    if lit_start < bytes.len() {
        parts.push(Part::Hex(hex::encode(&bytes[lit_start..])));
    }
    parts
}

/// What a generated case must produce.
enum Want {
    Ok,
    Err(&'static str, ConsensusError),
}

struct Generated {
    name: &'static str,
    vector: Vector,
}

struct Gen {
    cases: Vec<Generated>,
}

impl Gen {
    /// Records a case after checking that the code produces exactly `want`.
    fn case(&mut self, name: &'static str, ctx: &Ctx, description: &str, bytes: Vec<u8>, want: Want) {
        let (expect, effect) = match &want {
            Want::Ok => (Expect::Ok("ok".into()), None),
            Want::Err(stage, e) => {
                (Expect::Error { stage: stage.to_string(), rule: rule(e), error: e.to_string() }, None)
            }
        };
        let mut vector = ctx.vector(description, bytes, expect, effect);
        match (run(&vector), want) {
            (Ok(c), Want::Ok) => vector.effect = Some(effect_of(&c)),
            (Err((stage, e)), Want::Err(want_stage, want_e)) if stage == want_stage && e == want_e => {}
            (got, _) => panic!("{name}: generated case does not behave as stated: got {got:?}"),
        }
        assert!(check_vector(&vector).is_empty(), "{name}: {:?}", check_vector(&vector));
        assert!(self.cases.iter().all(|c| c.name != name), "duplicate case name {name}");
        self.cases.push(Generated { name, vector });
    }

    fn block(&mut self, name: &'static str, ctx: &Ctx, description: &str, block: &Block, want: Want) {
        self.case(name, ctx, description, block.encode(), want);
    }
}

/// A P2PKH-funded spend at height 20: the coin (10 coins to key 1) and a tx paying 9.9 coins
/// to key 2, signed by key 1.
fn p2pkh_spend(ctx: &mut Ctx, tag: &str) -> (OutPoint, TxOut, Transaction) {
    let (op, o) = ctx.fund(tag, 10 * COIN, p2pkh_of(1));
    let mut t = tx(&[op], vec![out(99 * COIN / 10, p2pkh_of(2))], 0);
    sign_tx(&mut t, std::slice::from_ref(&o), p2pkh_by(1));
    (op, o, t)
}

fn keys123() -> Vec<[u8; 32]> {
    vec![pk(1), pk(2), pk(3)]
}

fn all_cases() -> Vec<Generated> {
    let mut g = Gen { cases: Vec::new() };
    use ConsensusError as C;
    use ScriptError as S;

    // ---------------------------------------------------------------- valid blocks
    {
        let ctx = Ctx::regtest(1);
        let b = ctx.coinbase_block();
        g.block(
            "ok-coinbase-only",
            &ctx,
            "Height 1 on regtest: a coinbase-only block paying exactly the 50-coin subsidy to a P2PKH \
             output; the parent is the regtest genesis.",
            &b,
            Want::Ok,
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        let (_, _, t) = p2pkh_spend(&mut ctx, "p2pkh");
        let b = ctx.spend_block(vec![t]);
        g.block(
            "ok-p2pkh-spend",
            &ctx,
            "A P2PKH coin (10 coins, key 1) spent to key 2 with a 0.1-coin fee; the coinbase claims subsidy \
             plus fee exactly.",
            &b,
            Want::Ok,
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        let (op, o) = ctx.fund("bare multisig", 10 * COIN, multisig(2, &keys123()));
        let mut t = tx(&[op], vec![out(9 * COIN, p2pkh_of(4))], 0);
        sign_tx(&mut t, &[o], |_, m| multisig_unlock(&[Some(sig(1, m)), None, Some(sig(3, m))]));
        let b = ctx.spend_block(vec![t]);
        g.block(
            "ok-multisig-2of3-bare",
            &ctx,
            "A bare 2-of-3 multisig coin (keys 1, 2, 3) spent with signatures in slots 1 and 3 and an empty \
             slot 2.",
            &b,
            Want::Ok,
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        let redeem = multisig(2, &keys123());
        let (op, o) = ctx.fund("p2sh multisig", 10 * COIN, p2sh(&redeem));
        let mut t = tx(&[op], vec![out(9 * COIN, p2pkh_of(4))], 0);
        sign_tx(&mut t, &[o], |_, m| {
            p2sh_unlock(&multisig_unlock(&[None, Some(sig(2, m)), Some(sig(3, m))]), &redeem)
        });
        let b = ctx.spend_block(vec![t]);
        g.block(
            "ok-multisig-2of3-p2sh",
            &ctx,
            "A P2SH coin whose redeem script is 2-of-3 multisig (keys 1, 2, 3), spent with signatures by \
             keys 2 and 3, then the redeem script.",
            &b,
            Want::Ok,
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        let (op, o) = ctx.fund("cltv", 10 * COIN, with_height_lock(15, &p2pkh_of(1)));
        let mut t = tx(&[op], vec![out(9 * COIN, p2pkh_of(2))], 20);
        sign_tx(&mut t, &[o], p2pkh_by(1));
        let b = ctx.spend_block(vec![t]);
        g.block(
            "ok-cltv-spend",
            &ctx,
            "A coin locked by `15 OP_CHECKLOCKTIMEVERIFY OP_DROP` + P2PKH, spent by a transaction with lock \
             time 20 in a block at height 20.",
            &b,
            Want::Ok,
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        let (op, o) = ctx.fund_at("mature coinbase", 50 * COIN, p2pkh_of(1), 10, true);
        let mut t = tx(&[op], vec![out(49 * COIN, p2pkh_of(2))], 0);
        sign_tx(&mut t, &[o], p2pkh_by(1));
        let b = ctx.spend_block(vec![t]);
        g.block(
            "ok-coinbase-spend-at-maturity",
            &ctx,
            "A coinbase output created at height 10 spent at height 20: depth 20 - 10 = 10 equals the \
             regtest maturity, which is enough.",
            &b,
            Want::Ok,
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        let (_, _, t1) = p2pkh_spend(&mut ctx, "chain");
        let op1 = OutPoint { txid: t1.txid(), index: 0 };
        let mut t2 = tx(&[op1], vec![out(98 * COIN / 10, p2pkh_of(3)), out(0, op_return(b"memo"))], 0);
        sign_tx(&mut t2, &[t1.outputs[0].clone()], p2pkh_by(2));
        let b = ctx.spend_block(vec![t1, t2]);
        g.block(
            "ok-spend-within-block",
            &ctx,
            "Transaction 2 spends an output transaction 1 creates in the same block; transaction 2 also has \
             a zero-value OP_RETURN output, which does not enter the UTXO set.",
            &b,
            Want::Ok,
        );
    }
    {
        let ctx = Ctx::regtest(150);
        let b = ctx.block(vec![ctx.coinbase(25 * COIN)]);
        g.block(
            "ok-after-first-halving",
            &ctx,
            "Regtest halves the subsidy every 150 blocks: at height 150 the coinbase may claim 25 coins.",
            &b,
            Want::Ok,
        );
    }
    {
        let ctx = Ctx::new(Network::Dev, 1);
        let b = ctx.coinbase_block();
        g.block(
            "ok-dev-coinbase-only",
            &ctx,
            "Height 1 on the dev network (bits 0x1e040000, a real proof of work): a coinbase-only block on \
             the dev genesis.",
            &b,
            Want::Ok,
        );
    }
    {
        // A valid three-transaction block and its CVE-2012-2459 mutation with the same id.
        let mut ctx = Ctx::regtest(20);
        let (_, _, t1) = p2pkh_spend(&mut ctx, "three a");
        let (op, o) = ctx.fund("three b", 5 * COIN, p2pkh_of(3));
        let mut t2 = tx(&[op], vec![out(4 * COIN, p2pkh_of(4))], 0);
        sign_tx(&mut t2, &[o], p2pkh_by(3));
        let b = ctx.spend_block(vec![t1, t2]);
        g.block(
            "ok-three-txs",
            &ctx,
            "A valid block of three transactions (an odd count, so the last txid is paired with itself in \
             the Merkle tree). See merkle-mutated-cve-2012-2459.",
            &b,
            Want::Ok,
        );
        let mut m = b.clone();
        m.txs.push(m.txs[2].clone());
        assert_eq!(m.hash(), b.hash());
        g.block(
            "merkle-mutated-cve-2012-2459",
            &ctx,
            "CVE-2012-2459: ok-three-txs with its last transaction repeated. The four txids have the same \
             Merkle root, so the header and the block id are identical to the valid block's; the block is \
             rejected as mutated (and must not mark the id invalid).",
            &m,
            Want::Err(STAGE_BLOCK, C::MerkleMutated),
        );
    }

    // ---------------------------------------------------------------- proof of work
    {
        let ctx = Ctx::regtest(1);
        let mut b = ctx.coinbase_block();
        unmine(&mut b.header, ctx.params);
        let e = C::HighHash { hash: b.hash(), target: 0x207f_ffff };
        g.block(
            "pow-hash-above-target",
            &ctx,
            "ok-coinbase-only with the first nonce whose block hash is above the regtest target.",
            &b,
            Want::Err(STAGE_BLOCK, e),
        );
    }
    for (name, bits, reason, desc) in [
        (
            "pow-bits-above-limit",
            0x2100_ffffu32,
            "target above the network's proof-of-work limit",
            "Bits 0x2100ffff (target 0xffff * 2^240) are easier than the regtest limit 0x207fffff.",
        ),
        (
            "pow-bits-negative",
            0x20ff_ffff,
            "negative target",
            "Bits 0x20ffffff have the sign bit (0x00800000) set with a non-zero mantissa.",
        ),
        ("pow-bits-zero-target", 0x2000_0000, "zero target", "Bits 0x20000000 expand to a zero target."),
        (
            "pow-bits-overflow",
            0x2301_0000,
            "target overflows 256 bits",
            "Bits 0x23010000 expand past 256 bits.",
        ),
    ] {
        let ctx = Ctx::regtest(1);
        let mut b = ctx.coinbase_block();
        b.header.bits = bits;
        g.block(name, &ctx, desc, &b, Want::Err(STAGE_BLOCK, C::BadBits { bits, reason }));
    }
    {
        let mut ctx = Ctx::new(Network::Dev, 1);
        ctx.expected_bits = 0x207f_ffff;
        // Not mined: no nonce passes a proof of work whose bits are invalid.
        let cb = ctx.coinbase(ctx.subsidy());
        let b = Block { header: ctx.header(std::slice::from_ref(&cb)), txs: vec![cb] };
        let e = C::BadBits { bits: 0x207f_ffff, reason: "target above the network's proof-of-work limit" };
        g.block(
            "pow-dev-rejects-regtest-bits",
            &ctx,
            "A dev-network block carrying the regtest bits 0x207fffff: above the dev limit 2^234 (checked \
             before the header context).",
            &b,
            Want::Err(STAGE_BLOCK, e),
        );
    }

    // ---------------------------------------------------------------- size and structure
    {
        let ctx = Ctx::regtest(1);
        let mut lock = vec![OP_RETURN];
        lock.resize(4_000_000, 0);
        let cb =
            ctx.coinbase_with(ctx.coinbase_unlock(), vec![out(50 * COIN, p2pkh_of(9)), out(0, Script(lock))]);
        let b = ctx.block(vec![cb]);
        let e = C::BlockTooLarge { size: b.encoded_size(), max: 4_000_000 };
        g.block(
            "block-too-large",
            &ctx,
            "A coinbase-only block whose coinbase has an OP_RETURN output of 4,000,000 bytes (OP_RETURN then \
             zeros): the block exceeds 4,000,000 bytes. Checked before the transaction size. Stored as \
             block_parts (a run of zero bytes) to keep the file small.",
            &b,
            Want::Err(STAGE_BLOCK, e),
        );
    }
    {
        let ctx = Ctx::regtest(1);
        let b = ctx.block(Vec::new());
        g.block(
            "no-transactions",
            &ctx,
            "A header (Merkle root all zero) followed by a transaction count of 0.",
            &b,
            Want::Err(STAGE_BLOCK, C::NoTransactions),
        );
    }
    {
        let ctx = Ctx::regtest(1);
        let mut b = ctx.coinbase_block();
        let real = b.header.merkle_root;
        b.header.merkle_root = sha256d(b"not the merkle root");
        mine(&mut b.header, ctx.params);
        let e = C::BadMerkleRoot { got: real, expected: b.header.merkle_root };
        g.block(
            "bad-merkle-root",
            &ctx,
            "ok-coinbase-only with a header committing to a different Merkle root (re-mined).",
            &b,
            Want::Err(STAGE_BLOCK, e),
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        let (_, _, t) = p2pkh_spend(&mut ctx, "no coinbase");
        let b = ctx.block(vec![t]);
        g.block(
            "first-tx-not-coinbase",
            &ctx,
            "A block whose only transaction is a valid P2PKH spend, not a coinbase.",
            &b,
            Want::Err(STAGE_BLOCK, C::FirstTxNotCoinbase),
        );
    }
    {
        let ctx = Ctx::regtest(20);
        let cb2 = ctx.coinbase(COIN);
        let b = ctx.block(vec![ctx.coinbase(ctx.subsidy()), cb2]);
        g.block(
            "second-coinbase",
            &ctx,
            "Transaction 1 is a second coinbase (one input spending the null outpoint).",
            &b,
            Want::Err(STAGE_BLOCK, C::ExtraCoinbase { index: 1 }),
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        let (_, _, a) = p2pkh_spend(&mut ctx, "dup a");
        let (op, o) = ctx.fund("dup b", 5 * COIN, p2pkh_of(3));
        let mut bt = tx(&[op], vec![out(4 * COIN, p2pkh_of(4))], 0);
        sign_tx(&mut bt, &[o], p2pkh_by(3));
        let b = ctx.block(vec![ctx.coinbase(ctx.subsidy()), a.clone(), bt, a.clone()]);
        g.block(
            "duplicate-txid-non-adjacent",
            &ctx,
            "Transactions 1 and 3 are the same transaction (not Merkle siblings, so the tree is not flagged \
             as mutated).",
            &b,
            Want::Err(STAGE_BLOCK, C::DuplicateTxid { txid: a.txid() }),
        );
    }
    {
        let ctx = Ctx::regtest(20);
        let t = tx(&[], vec![out(COIN, p2pkh_of(2))], 0);
        let b = ctx.block(vec![ctx.coinbase(ctx.subsidy()), t]);
        let e = in_tx(&b, 1, C::NoInputs);
        g.block(
            "tx-no-inputs",
            &ctx,
            "Transaction 1 has an output but no inputs.",
            &b,
            Want::Err(STAGE_BLOCK, e),
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        let (op, o) = ctx.fund("no outputs", 10 * COIN, p2pkh_of(1));
        let mut t = tx(&[op], vec![], 0);
        sign_tx(&mut t, &[o], p2pkh_by(1));
        let b = ctx.block(vec![ctx.coinbase(ctx.subsidy()), t]);
        let e = in_tx(&b, 1, C::NoOutputs);
        g.block(
            "tx-no-outputs",
            &ctx,
            "Transaction 1 spends a coin and has no outputs.",
            &b,
            Want::Err(STAGE_BLOCK, e),
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        let (op, o) = ctx.fund("big tx", 10 * COIN, p2pkh_of(1));
        let mut data = vec![OP_RETURN];
        data.resize(1_000_000, 0);
        let mut t = tx(&[op], vec![out(9 * COIN, p2pkh_of(2)), out(0, Script(data))], 0);
        sign_tx(&mut t, &[o], p2pkh_by(1));
        let size = t.encoded_size();
        let b = ctx.spend_block(vec![t]);
        let e = in_tx(&b, 1, C::TxTooLarge { size, max: 1_000_000 });
        g.block(
            "tx-too-large",
            &ctx,
            "Transaction 1 has a 1,000,000-byte OP_RETURN output, so it exceeds the 1,000,000-byte \
             transaction limit (the block is under 4,000,000). Stored as block_parts (a run of zero bytes).",
            &b,
            Want::Err(STAGE_BLOCK, e),
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        let (op, o) = ctx.fund("overflow", 10 * COIN, p2pkh_of(1));
        let mut t = tx(&[op], vec![out(MAX_MONEY, p2pkh_of(2)), out(MAX_MONEY, p2pkh_of(3))], 0);
        sign_tx(&mut t, &[o], p2pkh_by(1));
        let b = ctx.block(vec![ctx.coinbase(ctx.subsidy()), t]);
        let e = in_tx(&b, 1, C::OutputsOverflow);
        g.block(
            "tx-outputs-overflow",
            &ctx,
            "Transaction 1 has two outputs of MAX_MONEY each: each value is in range, their sum is not.",
            &b,
            Want::Err(STAGE_BLOCK, e),
        );
    }
    {
        // The value field is patched to MAX_MONEY + 1 in the encoding, which no Amount can hold.
        let mut ctx = Ctx::regtest(20);
        let (op, o) = ctx.fund("above max money", 10 * COIN, p2pkh_of(1));
        let mut t = tx(&[op], vec![out(MAX_MONEY, p2pkh_of(2))], 0);
        sign_tx(&mut t, &[o], p2pkh_by(1));
        let mut tb = t.encode();
        let at = tb.windows(8).position(|w| w == MAX_MONEY.to_le_bytes()).expect("value present");
        tb[at..at + 8].copy_from_slice(&(MAX_MONEY + 1).to_le_bytes());
        let cb = ctx.coinbase(ctx.subsidy());
        let mut header = ctx.header(std::slice::from_ref(&cb));
        header.merkle_root = merkle_root(&[cb.txid(), sha256d(&tb)]).0;
        mine(&mut header, ctx.params);
        let mut bytes = header.to_bytes().to_vec();
        bytes.extend_from_slice(&2u32.to_le_bytes());
        cb.encode_to(&mut bytes);
        bytes.extend_from_slice(&tb);
        let e = C::Malformed(DecodeError::Invalid {
            what: "output value",
            detail: format!("{} exceeds the money supply {MAX_MONEY}", MAX_MONEY + 1),
        });
        g.case(
            "tx-output-above-max-money",
            &ctx,
            "Transaction 1 has an output value of MAX_MONEY + 1 = 2100000000000001: rejected by the decoder.",
            bytes,
            Want::Err(STAGE_DECODE, e),
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        let (op, o) = ctx.fund("dup input", 10 * COIN, p2pkh_of(1));
        let mut t = tx(&[op, op], vec![out(19 * COIN, p2pkh_of(2))], 0);
        sign_tx(&mut t, &[o.clone(), o], p2pkh_by(1));
        let b = ctx.block(vec![ctx.coinbase(ctx.subsidy()), t]);
        let e = in_tx(&b, 1, C::DuplicateInput { outpoint: op });
        g.block(
            "tx-duplicate-input",
            &ctx,
            "Transaction 1 lists the same outpoint as both of its inputs (each signed), claiming its value \
             twice.",
            &b,
            Want::Err(STAGE_BLOCK, e),
        );
    }
    {
        let ctx = Ctx::regtest(20);
        let op = fund_point("null prevout", 0);
        let t = Transaction {
            version: 1,
            inputs: vec![
                TxIn { prevout: op, unlock: Script::default() },
                TxIn { prevout: OutPoint::NULL, unlock: Script(vec![0x51, 0x51]) },
            ],
            outputs: vec![out(COIN, p2pkh_of(2))],
            lock_time: 0,
        };
        let b = ctx.block(vec![ctx.coinbase(ctx.subsidy()), t]);
        let e = in_tx(&b, 1, C::NullPrevout { input: 1 });
        g.block(
            "tx-null-prevout",
            &ctx,
            "Transaction 1 has two inputs, the second spending the null outpoint (zero txid, index \
             0xffffffff); with two inputs it is not a coinbase.",
            &b,
            Want::Err(STAGE_BLOCK, e),
        );
    }
    {
        let ctx = Ctx::regtest(1);
        let cb = ctx.coinbase_with(Script(vec![0x51]), vec![out(50 * COIN, p2pkh_of(9))]);
        let b = ctx.block(vec![cb]);
        let e = in_tx(&b, 0, C::CoinbaseUnlockSize { size: 1, min: 2, max: 100 });
        g.block(
            "coinbase-unlock-too-short",
            &ctx,
            "Height 1 coinbase whose unlock data is only OP_1 (the height): 1 byte, at least 2 required.",
            &b,
            Want::Err(STAGE_BLOCK, e),
        );
    }
    {
        let ctx = Ctx::regtest(20);
        let mut u = Vec::new();
        push_int(&mut u, 20);
        push_data(&mut u, &[0x71; 97]);
        assert_eq!(u.len(), 101);
        let b = ctx.block(vec![ctx.coinbase_with(Script(u), vec![out(50 * COIN, p2pkh_of(9))])]);
        let e = in_tx(&b, 0, C::CoinbaseUnlockSize { size: 101, min: 2, max: 100 });
        g.block(
            "coinbase-unlock-too-long",
            &ctx,
            "Coinbase unlock data of 101 bytes (the height push, then a PUSHDATA1 of 97 bytes); at most \
             100 allowed.",
            &b,
            Want::Err(STAGE_BLOCK, e),
        );
    }
    {
        let ctx = Ctx::regtest(20);
        let cb = ctx
            .coinbase_with(ctx.coinbase_unlock(), vec![out(50 * COIN, Script(vec![OP_CHECKMULTISIG; 4001]))]);
        let b = ctx.block(vec![cb]);
        let e = C::TooManySigops { got: 80_020, max: 80_000 };
        g.block(
            "sigops-over-limit",
            &ctx,
            "The coinbase output's locking script is 4001 bytes of OP_CHECKMULTISIG (never executed); with \
             no key count before it each counts 20 sigops: 80,020 > 80,000. Locking scripts of outputs \
             count.",
            &b,
            Want::Err(STAGE_BLOCK, e),
        );
    }
    {
        let ctx = Ctx::regtest(1);
        let mut bytes = ctx.coinbase_block().encode();
        bytes.pop();
        let e = C::Malformed(DecodeError::UnexpectedEnd { what: "tx lock time", needed: 4, remaining: 3 });
        g.case(
            "malformed-truncated",
            &ctx,
            "ok-coinbase-only without its last byte.",
            bytes,
            Want::Err(STAGE_DECODE, e),
        );
    }
    {
        let ctx = Ctx::regtest(1);
        let mut bytes = ctx.coinbase_block().encode();
        bytes.push(0);
        let e = C::Malformed(DecodeError::TrailingBytes { what: "block", extra: 1 });
        g.case(
            "malformed-trailing-byte",
            &ctx,
            "ok-coinbase-only followed by one extra zero byte.",
            bytes,
            Want::Err(STAGE_DECODE, e),
        );
    }
    {
        let ctx = Ctx::regtest(1);
        let mut bytes = ctx.coinbase_block().encode();
        bytes[80..84].copy_from_slice(&1000u32.to_le_bytes());
        let remaining = bytes.len() - 84;
        let e = C::Malformed(DecodeError::CountTooLarge { what: "block transactions", got: 1000, remaining });
        g.case(
            "malformed-tx-count-too-large",
            &ctx,
            "ok-coinbase-only with its transaction count changed to 1000: 1000 x 16 (the smallest \
             encodable transaction) exceeds the bytes that remain, rejected before allocation.",
            bytes,
            Want::Err(STAGE_DECODE, e),
        );
    }

    // ---------------------------------------------------------------- header context
    {
        let mut ctx = Ctx::regtest(1);
        ctx.expected_bits = 0x2000_ffff; // mined with the harder bits
        let b = ctx.coinbase_block();
        ctx.expected_bits = 0x207f_ffff;
        let e = C::WrongBits { got: 0x2000_ffff, expected: 0x207f_ffff };
        g.block(
            "wrong-bits",
            &ctx,
            "A block mined at bits 0x2000ffff (harder than required, and within the limit) where the network \
             requires 0x207fffff: the bits must equal the required value.",
            &b,
            Want::Err(STAGE_HEADER, e),
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        ctx.time = ctx.median_time_past;
        let b = ctx.coinbase_block();
        let e = C::TimeTooOld { time: ctx.time, median_time_past: ctx.median_time_past };
        g.block(
            "time-not-after-median",
            &ctx,
            "The block time equals the median time past of the parent chain; it must be strictly greater.",
            &b,
            Want::Err(STAGE_HEADER, e),
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        ctx.time = (ctx.now + 7200 + 1) as u32;
        let b = ctx.coinbase_block();
        let e = C::TimeTooNew { time: ctx.time, now: ctx.now, drift: 7200 };
        g.block(
            "time-too-far-ahead",
            &ctx,
            "The block time is now + 7201 s; at most now + 7200 s (2 hours) is allowed.",
            &b,
            Want::Err(STAGE_HEADER, e),
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        ctx.time = (ctx.now + 7200) as u32;
        let b = ctx.coinbase_block();
        g.block(
            "ok-time-at-drift-limit",
            &ctx,
            "The block time is exactly now + 7200 s, the latest allowed.",
            &b,
            Want::Ok,
        );
    }

    // ---------------------------------------------------------------- coinbase
    {
        let ctx = Ctx::regtest(20);
        let mut u = Vec::new();
        push_int(&mut u, 19);
        push_data(&mut u, b"quarry vectors");
        let b = ctx.block(vec![ctx.coinbase_with(Script(u), vec![out(50 * COIN, p2pkh_of(9))])]);
        let e = in_tx(&b, 0, C::BadCoinbaseHeight { got: Some(19), expected: 20 });
        g.block(
            "coinbase-wrong-height",
            &ctx,
            "A block at height 20 whose coinbase unlock data starts with the height 19.",
            &b,
            Want::Err(STAGE_CONNECT, e),
        );
    }
    {
        let ctx = Ctx::regtest(20);
        let mut u = Vec::new();
        push_data(&mut u, b"no height here");
        let b = ctx.block(vec![ctx.coinbase_with(Script(u), vec![out(50 * COIN, p2pkh_of(9))])]);
        let e = in_tx(&b, 0, C::BadCoinbaseHeight { got: None, expected: 20 });
        g.block(
            "coinbase-no-height",
            &ctx,
            "The coinbase unlock data starts with a 14-byte push, which is not a script number of at most 5 \
             bytes.",
            &b,
            Want::Err(STAGE_CONNECT, e),
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        let (_, _, t) = p2pkh_spend(&mut ctx, "inflation");
        let fee = COIN / 10;
        let b = ctx.block(vec![ctx.coinbase(50 * COIN + fee + 1), t]);
        let e = in_tx(&b, 0, C::CoinbaseValueTooHigh { got: 50 * COIN + fee + 1, max: 50 * COIN + fee });
        g.block(
            "coinbase-pays-too-much",
            &ctx,
            "ok-p2pkh-spend with the coinbase claiming one base unit more than subsidy (50 coins) plus fees \
             (0.1 coin).",
            &b,
            Want::Err(STAGE_CONNECT, e),
        );
    }
    {
        let ctx = Ctx::regtest(150);
        let b = ctx.block(vec![ctx.coinbase(50 * COIN)]);
        let e = in_tx(&b, 0, C::CoinbaseValueTooHigh { got: 50 * COIN, max: 25 * COIN });
        g.block(
            "coinbase-ignores-halving",
            &ctx,
            "At height 150 (the first regtest halving) the coinbase claims the old 50-coin subsidy; 25 is \
             the maximum.",
            &b,
            Want::Err(STAGE_CONNECT, e),
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        let (op, o) = ctx.fund_at("immature", 50 * COIN, p2pkh_of(1), 11, true);
        let mut t = tx(&[op], vec![out(49 * COIN, p2pkh_of(2))], 0);
        sign_tx(&mut t, &[o], p2pkh_by(1));
        let b = ctx.spend_block(vec![t]);
        let e = in_tx(&b, 1, C::ImmatureCoinbaseSpend { outpoint: op, depth: 9, maturity: 10 });
        g.block(
            "coinbase-spend-immature",
            &ctx,
            "A coinbase output created at height 11 spent at height 20: depth 9 is below the regtest \
             maturity 10.",
            &b,
            Want::Err(STAGE_CONNECT, e),
        );
    }

    // ---------------------------------------------------------------- inputs and amounts
    {
        let mut ctx = Ctx::regtest(20);
        let (op, _, t) = p2pkh_spend(&mut ctx, "missing");
        ctx.utxos.clear();
        let b = ctx.spend_block(vec![t]);
        let e = in_tx(&b, 1, C::MissingInput { outpoint: op });
        g.block(
            "input-missing",
            &ctx,
            "ok-p2pkh-spend with an empty UTXO set: the spent coin does not exist.",
            &b,
            Want::Err(STAGE_CONNECT, e),
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        let (_, _, t1) = p2pkh_spend(&mut ctx, "later");
        let op1 = OutPoint { txid: t1.txid(), index: 0 };
        let mut t2 = tx(&[op1], vec![out(98 * COIN / 10, p2pkh_of(3))], 0);
        sign_tx(&mut t2, &[t1.outputs[0].clone()], p2pkh_by(2));
        let b = ctx.spend_block(vec![t2, t1]);
        let e = in_tx(&b, 1, C::MissingInput { outpoint: op1 });
        g.block(
            "input-created-later-in-block",
            &ctx,
            "ok-spend-within-block's idea in the wrong order: transaction 1 spends an output of transaction \
             2.",
            &b,
            Want::Err(STAGE_CONNECT, e),
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        let (op, o, t1) = p2pkh_spend(&mut ctx, "double");
        let mut t2 = tx(&[op], vec![out(9 * COIN, p2pkh_of(3))], 0);
        sign_tx(&mut t2, &[o], p2pkh_by(1));
        let b = ctx.spend_block(vec![t1, t2]);
        let e = in_tx(&b, 2, C::SpentInBlock { outpoint: op, first_tx: 1 });
        g.block(
            "double-spend-in-block",
            &ctx,
            "Transactions 1 and 2 (different txids) both spend the same coin.",
            &b,
            Want::Err(STAGE_CONNECT, e),
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        let (op, o) = ctx.fund("overspend", 10 * COIN, p2pkh_of(1));
        let mut t = tx(&[op], vec![out(10 * COIN + 1, p2pkh_of(2))], 0);
        sign_tx(&mut t, &[o], p2pkh_by(1));
        let b = ctx.spend_block(vec![t]);
        let e = in_tx(&b, 1, C::InputsBelowOutputs { inputs: 10 * COIN, outputs: 10 * COIN + 1 });
        g.block(
            "outputs-exceed-inputs",
            &ctx,
            "Transaction 1 spends 10 coins and pays 10 coins and 1 base unit.",
            &b,
            Want::Err(STAGE_CONNECT, e),
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        let (op1, o1) = ctx.fund("overflow in 1", MAX_MONEY, p2pkh_of(1));
        let (op2, o2) = ctx.fund("overflow in 2", MAX_MONEY, p2pkh_of(1));
        let mut t = tx(&[op1, op2], vec![out(COIN, p2pkh_of(2))], 0);
        sign_tx(&mut t, &[o1, o2], p2pkh_by(1));
        let b = ctx.block(vec![ctx.coinbase(ctx.subsidy()), t]);
        let e = in_tx(&b, 1, C::InputsOverflow);
        g.block(
            "inputs-overflow",
            &ctx,
            "Transaction 1 spends two coins of MAX_MONEY each (an impossible UTXO set, given to exercise the \
             rule): the input sum passes MAX_MONEY.",
            &b,
            Want::Err(STAGE_CONNECT, e),
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        let (op, o) = ctx.fund("tx lock time", 10 * COIN, p2pkh_of(1));
        let mut t = tx(&[op], vec![out(9 * COIN, p2pkh_of(2))], 21);
        sign_tx(&mut t, &[o], p2pkh_by(1));
        let b = ctx.spend_block(vec![t]);
        let e = in_tx(&b, 1, C::LockTimeNotReached { lock_time: 21, height: 20 });
        g.block(
            "tx-lock-time-not-reached",
            &ctx,
            "Transaction 1 has lock time 21 in a block at height 20.",
            &b,
            Want::Err(STAGE_CONNECT, e),
        );
    }

    // ---------------------------------------------------------------- scripts
    {
        let mut ctx = Ctx::regtest(20);
        let (op, o) = ctx.fund("bad sig", 10 * COIN, p2pkh_of(1));
        let mut t = tx(&[op], vec![out(9 * COIN, p2pkh_of(2))], 0);
        sign_tx(&mut t, &[o], |_, m| {
            let mut wrong = *m;
            wrong[0] ^= 1;
            p2pkh_unlock(&sig(1, &wrong), &pk(1))
        });
        let b = ctx.spend_block(vec![t]);
        let e = script_err(&b, 1, 0, S::NullFail { op: "OP_CHECKSIG", pubkey: hex::encode(pk(1)) });
        g.block(
            "p2pkh-bad-signature",
            &ctx,
            "A P2PKH spend whose 64-byte signature by the right key is over a different message: a non-empty \
             signature that fails is an error (NULLFAIL).",
            &b,
            Want::Err(STAGE_CONNECT, e),
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        let (op, o) = ctx.fund("wrong signer", 10 * COIN, p2pkh_of(1));
        let mut t = tx(&[op], vec![out(9 * COIN, p2pkh_of(2))], 0);
        sign_tx(&mut t, &[o], p2pkh_by(2));
        let b = ctx.spend_block(vec![t]);
        let e = script_err(&b, 1, 0, S::VerifyFailed { op: "OP_EQUALVERIFY" });
        g.block(
            "p2pkh-wrong-key",
            &ctx,
            "A coin locked to key 1's hash spent with a valid signature and public key of key 2: the key \
             hash does not match.",
            &b,
            Want::Err(STAGE_CONNECT, e),
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        let (op, o) = ctx.fund("short sig", 10 * COIN, p2pkh_of(1));
        let mut t = tx(&[op], vec![out(9 * COIN, p2pkh_of(2))], 0);
        sign_tx(&mut t, &[o], |_, m| {
            let mut u = Vec::new();
            push_data(&mut u, &sig(1, m)[..63]);
            push_data(&mut u, &pk(1));
            Script(u)
        });
        let b = ctx.spend_block(vec![t]);
        let e = script_err(&b, 1, 0, S::BadSignatureEncoding { len: 63 });
        g.block(
            "p2pkh-signature-63-bytes",
            &ctx,
            "A P2PKH spend whose signature push is 63 bytes: a signature is 64 bytes or empty.",
            &b,
            Want::Err(STAGE_CONNECT, e),
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        let (op, o) = ctx.fund("not push only", 10 * COIN, p2pkh_of(1));
        let mut t = tx(&[op], vec![out(9 * COIN, p2pkh_of(2))], 0);
        sign_tx(&mut t, &[o], |_, m| {
            let mut u = p2pkh_unlock(&sig(1, m), &pk(1)).0;
            u.push(OP_DUP);
            u.push(0x75); // OP_DROP
            Script(u)
        });
        let b = ctx.spend_block(vec![t]);
        let e = script_err(&b, 1, 0, S::UnlockNotPushOnly { opcode: OP_DUP, at: 98 });
        g.block(
            "unlock-not-push-only",
            &ctx,
            "A valid P2PKH unlock followed by OP_DUP OP_DROP: unlock data may only push.",
            &b,
            Want::Err(STAGE_CONNECT, e),
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        let (op, o) = ctx.fund("extra push", 10 * COIN, p2pkh_of(1));
        let mut t = tx(&[op], vec![out(9 * COIN, p2pkh_of(2))], 0);
        sign_tx(&mut t, &[o], |_, m| {
            let mut u = vec![OP_0];
            u.extend_from_slice(&p2pkh_unlock(&sig(1, m), &pk(1)).0);
            Script(u)
        });
        let b = ctx.spend_block(vec![t]);
        let e = script_err(&b, 1, 0, S::CleanStack { items: 2 });
        g.block(
            "unlock-extra-push-clean-stack",
            &ctx,
            "A valid P2PKH unlock with an extra OP_0 in front (a third party's txid malleation): \
             the spend must leave exactly one item.",
            &b,
            Want::Err(STAGE_CONNECT, e),
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        let (op, o) = ctx.fund("non-minimal push", 10 * COIN, p2pkh_of(1));
        let mut t = tx(&[op], vec![out(9 * COIN, p2pkh_of(2))], 0);
        sign_tx(&mut t, &[o], |_, m| {
            let mut u = vec![OP_PUSHDATA1, 64];
            u.extend_from_slice(&sig(1, m));
            push_data(&mut u, &pk(1));
            Script(u)
        });
        let b = ctx.spend_block(vec![t]);
        let e = script_err(&b, 1, 0, S::NonMinimalPush { at: 0, len: 64 });
        g.block(
            "unlock-non-minimal-push",
            &ctx,
            "A P2PKH unlock whose signature is pushed with OP_PUSHDATA1 instead of the direct \
             push (a third party's txid malleation): unlock pushes must be minimal.",
            &b,
            Want::Err(STAGE_CONNECT, e),
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        let (op, o) = ctx.fund("one of two", 10 * COIN, multisig(2, &keys123()));
        let mut t = tx(&[op], vec![out(9 * COIN, p2pkh_of(4))], 0);
        sign_tx(&mut t, &[o], |_, m| multisig_unlock(&[Some(sig(1, m)), None, None]));
        let b = ctx.spend_block(vec![t]);
        let e = script_err(&b, 1, 0, S::MultisigThresholdNotMet { got: 1, need: 2 });
        g.block(
            "multisig-below-threshold",
            &ctx,
            "A bare 2-of-3 multisig coin spent with one valid signature (slot 1) and two empty slots.",
            &b,
            Want::Err(STAGE_CONNECT, e),
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        let (op, o) = ctx.fund("non member", 10 * COIN, multisig(2, &keys123()));
        let mut t = tx(&[op], vec![out(9 * COIN, p2pkh_of(4))], 0);
        sign_tx(&mut t, &[o], |_, m| multisig_unlock(&[Some(sig(1, m)), Some(sig(7, m)), None]));
        let b = ctx.spend_block(vec![t]);
        let e = script_err(&b, 1, 0, S::NullFail { op: "OP_CHECKMULTISIG", pubkey: hex::encode(pk(2)) });
        g.block(
            "multisig-non-member-signature",
            &ctx,
            "A bare 2-of-3 multisig (keys 1, 2, 3) spent with key 1's signature in slot 1 and key 7's (not a \
             member) in slot 2: it fails against key 2 (NULLFAIL).",
            &b,
            Want::Err(STAGE_CONNECT, e),
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        let committed = multisig(2, &keys123());
        let other = multisig(2, &[pk(4), pk(5), pk(6)]);
        let (op, o) = ctx.fund("p2sh mismatch", 10 * COIN, p2sh(&committed));
        let mut t = tx(&[op], vec![out(9 * COIN, p2pkh_of(4))], 0);
        sign_tx(&mut t, &[o], |_, m| {
            p2sh_unlock(&multisig_unlock(&[Some(sig(4, m)), Some(sig(5, m)), None]), &other)
        });
        let b = ctx.spend_block(vec![t]);
        let e = script_err(
            &b,
            1,
            0,
            S::P2shHashMismatch {
                got: hex::encode(script_hash(&other)),
                expected: hex::encode(script_hash(&committed)),
            },
        );
        g.block(
            "p2sh-hash-mismatch",
            &ctx,
            "A P2SH coin committing to 2-of-3 of keys 1, 2, 3 spent with a different redeem script (2-of-3 \
             of keys 4, 5, 6) and valid signatures for it.",
            &b,
            Want::Err(STAGE_CONNECT, e),
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        let redeem = multisig(2, &keys123());
        let (op, o) = ctx.fund("p2sh redeem fails", 10 * COIN, p2sh(&redeem));
        let mut t = tx(&[op], vec![out(9 * COIN, p2pkh_of(4))], 0);
        sign_tx(&mut t, &[o], |_, m| p2sh_unlock(&multisig_unlock(&[None, None, Some(sig(3, m))]), &redeem));
        let b = ctx.spend_block(vec![t]);
        let inner = S::MultisigThresholdNotMet { got: 1, need: 2 };
        let e = script_err(&b, 1, 0, S::RedeemScript(Box::new(inner)));
        g.block(
            "p2sh-redeem-script-fails",
            &ctx,
            "A P2SH 2-of-3 multisig coin spent with the right redeem script but only key 3's signature.",
            &b,
            Want::Err(STAGE_CONNECT, e),
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        let (op, o) = ctx.fund("cltv early", 10 * COIN, with_height_lock(25, &p2pkh_of(1)));
        let mut t = tx(&[op], vec![out(9 * COIN, p2pkh_of(2))], 20);
        sign_tx(&mut t, &[o], p2pkh_by(1));
        let b = ctx.spend_block(vec![t]);
        let e = script_err(&b, 1, 0, S::LockTimeNotReached { required: 25, tx_lock_time: 20 });
        g.block(
            "cltv-not-reached",
            &ctx,
            "A coin locked by `25 OP_CHECKLOCKTIMEVERIFY OP_DROP` + P2PKH spent at height 20 by a \
             transaction with lock time 20.",
            &b,
            Want::Err(STAGE_CONNECT, e),
        );
    }
    {
        let mut ctx = Ctx::regtest(20);
        let (op, o) = ctx.fund("cltv no tx lock", 10 * COIN, with_height_lock(15, &p2pkh_of(1)));
        let mut t = tx(&[op], vec![out(9 * COIN, p2pkh_of(2))], 0);
        sign_tx(&mut t, &[o], p2pkh_by(1));
        let b = ctx.spend_block(vec![t]);
        let e = script_err(&b, 1, 0, S::LockTimeNotReached { required: 15, tx_lock_time: 0 });
        g.block(
            "cltv-tx-lock-time-zero",
            &ctx,
            "ok-cltv-spend (script height 15, block height 20) but the transaction's lock time is 0: CLTV \
             compares with the transaction's lock time, not the block height.",
            &b,
            Want::Err(STAGE_CONNECT, e),
        );
    }

    g.cases
}

/// tests/vectors/README.md names every case.
#[test]
fn readme_lists_every_case() {
    let readme = std::fs::read_to_string(vectors_dir().join("../README.md")).expect("README");
    for path in vector_files() {
        let name = path.file_stem().expect("stem").to_string_lossy().into_owned();
        assert!(readme.contains(&format!("`{name}`")), "tests/vectors/README.md does not list {name}");
    }
}

/// The stored files are exactly what the generator writes (no hand edits, no stale files).
#[test]
fn files_match_generator() {
    let cases = all_cases();
    let mut expected: Vec<String> = cases.iter().map(|c| format!("{}.json", c.name)).collect();
    expected.sort();
    let stored: Vec<String> = vector_files()
        .iter()
        .map(|p| p.file_name().expect("file name").to_string_lossy().into_owned())
        .collect();
    assert_eq!(stored, expected, "vector files differ from the generator's cases: run the generator");
    for c in &cases {
        let path = vectors_dir().join(format!("{}.json", c.name));
        let text = std::fs::read_to_string(&path).expect("readable");
        let want = serde_json::to_string_pretty(&c.vector).expect("serialise") + "\n";
        assert!(text == want, "{} differs from the generator's output: run the generator", path.display());
    }
}

/// Rewrites tests/vectors/blocks/*.json. Run: `cargo test --test suite -- --ignored vectors::generate`.
#[test]
#[ignore = "writes the vector files; run explicitly to regenerate"]
fn generate() {
    let cases = all_cases();
    let dir = vectors_dir();
    std::fs::create_dir_all(&dir).expect("create vectors dir");
    for old in vector_files() {
        std::fs::remove_file(old).expect("remove old vector");
    }
    for c in &cases {
        let text = serde_json::to_string_pretty(&c.vector).expect("serialise") + "\n";
        std::fs::write(dir.join(format!("{}.json", c.name)), text).expect("write vector");
    }
    println!("wrote {} vectors to {}", cases.len(), dir.display());
}
