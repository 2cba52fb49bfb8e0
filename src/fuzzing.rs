//! The bodies of the fuzz targets: one function per decoder or parser of untrusted bytes.
//!
//! `fuzz/fuzz_targets/<name>.rs` (cargo-fuzz, nightly) is a one-line call of the function of
//! the same name here, and `tests/fuzz_corpus.rs` (stable, in every test run) replays every
//! file of `fuzz/corpus/<name>/` and `fuzz/regressions/<name>/` through it, so a crash the
//! fuzzer found stays fixed. [`TARGETS`] lists them all; `scripts/fuzz` runs them.
//!
//! Every body must not panic on any input, and asserts what is cheap to assert beyond that:
//! canonical encodings re-encode to the input byte for byte, a parsed file written back
//! parses to the same value, script results do not depend on anything but their inputs.
//! An assertion failing is a bug in the node code, never in the input.

use crate::consensus::pow::{block_work, check_proof_of_work, target_from_compact, target_to_compact};
use crate::consensus::{check_block, check_transaction, Network};
use crate::p2p::peers::BanList;
use crate::p2p::wire::{read_frame, GossipMessage, Request, Response, Topic, MAX_REQUEST_BYTES};
use crate::primitives::header::HEADER_SIZE;
use crate::primitives::{Address, Amount, Block, BlockHeader, Hash256, Transaction, TxProof};
use crate::script::interpreter::{verify_spend, DeferredChecker, SigChecker, SpendContext};
use crate::script::templates::{lock_address, Template};
use crate::script::{count_sigops, EagerChecker, SighashCache};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// A fuzz target: its name (the directory of its corpus) and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every fuzz target. `fuzz/Cargo.toml` declares a binary for each, and the corpus replay
/// test fails if a corpus directory has no entry here or an entry has no corpus.
pub const TARGETS: &[Target] = &[
    ("tx", tx),
    ("block", block),
    ("header", header),
    ("txproof", txproof),
    ("wire_request", wire_request),
    ("wire_response", wire_response),
    ("gossip", gossip),
    ("script", script),
    ("address", address),
    ("amount", amount),
    ("rpc_params", rpc_params),
    ("wallet_file", wallet_file),
    ("psbt_file", psbt_file),
    ("mempool_file", mempool_file),
    ("banned_json", banned_json),
    ("config_file", config_file),
    ("topology_file", topology_file),
    ("scenario_file", scenario_file),
    ("stratum_line", stratum_line),
];

/// The regtest network's limits and proof-of-work limit (trivial: about every second hash
/// passes, so the fuzzer gets past the PoW check to the block rules).
fn regtest() -> &'static crate::consensus::Params {
    Network::Regtest.params()
}

/// A transaction: the canonical decoding re-encodes to the input, and the context-free rules
/// and sigop counting take any decoded transaction.
pub fn tx(data: &[u8]) {
    let params = regtest();
    let Ok(tx) = Transaction::decode(data, params.max_tx_size) else { return };
    assert_eq!(tx.encode(), data, "a decoded transaction re-encodes to its bytes");
    assert_eq!(tx.encoded_size(), data.len());
    let _ = check_transaction(&tx, params);
    for o in &tx.outputs {
        let _ = count_sigops(&o.lock.0);
        let _ = Template::classify(&o.lock.0);
    }
    for i in &tx.inputs {
        let _ = count_sigops(&i.unlock.0);
    }
}

/// A block: the canonical decoding re-encodes to the input; every context-free rule runs on
/// what decodes (regtest's trivial target lets about half of all headers through the PoW check).
pub fn block(data: &[u8]) {
    let params = regtest();
    let Ok(block) = Block::decode(data, params.max_block_size) else { return };
    assert_eq!(block.encode(), data, "a decoded block re-encodes to its bytes");
    assert_eq!(block.encoded_size(), data.len());
    if let Ok(checked) = check_block(block.clone(), params) {
        assert_eq!(checked.hash(), block.hash());
        assert_eq!(checked.txids(), block.txids().as_slice());
    }
}

/// A header (the first 80 bytes) and compact targets (its `bits`): the preimage round-trips,
/// and an expanded target compresses back to itself.
pub fn header(data: &[u8]) {
    let Ok(h) = BlockHeader::from_bytes(data) else {
        assert_ne!(data.len(), HEADER_SIZE, "every 80 bytes are a header");
        return;
    };
    assert_eq!(h.to_bytes().as_slice(), data);
    let hash = h.hash();
    let _ = check_proof_of_work(&hash, h.bits, &regtest().pow_limit);
    if let Ok(target) = target_from_compact(h.bits) {
        let compact = target_to_compact(&target);
        assert_eq!(target_from_compact(compact).ok(), Some(target), "bits {:08x} -> {compact:08x}", h.bits);
        assert!(!block_work(&target).is_zero());
    }
}

/// A `gettxoutproof` proof (RPC `verifytxoutproof`, the wallet's `verify-tx`).
pub fn txproof(data: &[u8]) {
    let Ok(p) = TxProof::decode(data) else { return };
    assert_eq!(p.encode(), data, "a decoded proof re-encodes to its bytes");
    let _ = p.verifies();
}

/// A sync request, and a request frame read as the request-response codec reads it.
pub fn wire_request(data: &[u8]) {
    if let Ok(req) = Request::decode(data) {
        assert_eq!(req.encode(), data, "a decoded request re-encodes to its bytes");
    }
    let mut io = futures::io::Cursor::new(data);
    if let Ok(frame) = futures::executor::block_on(read_frame(&mut io, MAX_REQUEST_BYTES)) {
        let len = u32::from_le_bytes(data[..4].try_into().expect("a frame has a length")) as usize;
        assert_eq!(frame.as_slice(), &data[4..4 + len], "the frame is the bytes its length names");
    }
}

/// A sync response (status, headers, blocks, busy).
pub fn wire_response(data: &[u8]) {
    let Ok(resp) = Response::decode(data, regtest().max_block_size) else { return };
    assert_eq!(resp.encode(), data, "a decoded response re-encodes to its bytes");
}

/// A gossip payload: the first byte picks the topic (0 blocks, 1 transactions, 2 compact
/// blocks, modulo 3). A decoded compact block re-encodes to its bytes and starts a rebuild
/// (from an empty pool) whose missing slots are exactly those not prefilled.
pub fn gossip(data: &[u8]) {
    let Some((&which, payload)) = data.split_first() else { return };
    let topic = match which % 3 {
        0 => Topic::Blocks,
        1 => Topic::Transactions,
        _ => Topic::CompactBlocks,
    };
    let params = regtest();
    match GossipMessage::decode(topic, payload, params.max_block_size, params.max_tx_size) {
        Ok(GossipMessage::Block(b)) => assert_eq!(b.encode(), payload),
        Ok(GossipMessage::Tx(t)) => assert_eq!(t.encode(), payload),
        Ok(GossipMessage::Compact(c)) => {
            assert_eq!(c.encode(), payload);
            let missing = c.short_ids.len();
            let partial = crate::p2p::compact::PartialBlock::new(c, std::iter::empty());
            assert_eq!(partial.missing().len(), missing);
        }
        Err(_) => {}
    }
    assert_eq!(crate::p2p::wire::message_id(payload).len(), 32);
}

/// A signature checker for fuzzing: a signature "verifies" when its first byte is even, and
/// every check is recorded, so two runs can be compared.
struct Scripted {
    checks: Vec<([u8; 32], [u8; 64])>,
    verdict: fn(&[u8; 64]) -> bool,
}

impl SigChecker for Scripted {
    fn check(&mut self, pubkey: &[u8; 32], sig: &[u8; 64]) -> bool {
        self.checks.push((*pubkey, *sig));
        (self.verdict)(sig)
    }
}

/// Script execution: bytes 0..4 are the spending transaction's lock time, bytes 4..6 where
/// the rest splits into unlock data and locking script. The result and the signature checks
/// made are the same on a second run; a spend that checked no signature has the same result
/// whatever the signatures would say; the batch checker never panics either.
pub fn script(data: &[u8]) {
    if data.len() < 6 {
        return;
    }
    let ctx = SpendContext { tx_lock_time: u32::from_le_bytes(data[..4].try_into().expect("4 bytes")) };
    let rest = &data[6..];
    let split = u16::from_le_bytes([data[4], data[5]]) as usize % (rest.len() + 1);
    let (unlock, lock) = rest.split_at(split);
    let run = |verdict: fn(&[u8; 64]) -> bool| {
        let mut checker = Scripted { checks: Vec::new(), verdict };
        let result = verify_spend(unlock, lock, &ctx, &mut checker);
        (result, checker.checks)
    };
    let even: fn(&[u8; 64]) -> bool = |sig| sig[0] % 2 == 0;
    let (first, checks) = run(even);
    let (second, checks_again) = run(even);
    assert_eq!(first, second, "the same spend gives the same result");
    assert_eq!(checks, checks_again, "the same spend checks the same signatures");
    if checks.is_empty() {
        let (never, _) = run(|_| false);
        assert_eq!(first, never, "a spend that checks no signature cannot depend on one");
    }
    let mut pending = Vec::new();
    let _ = verify_spend(unlock, lock, &ctx, &mut DeferredChecker { msg: &[0u8; 32], pending: &mut pending });
    let _ = count_sigops(lock);
    let _ = Template::classify(lock);
    let _ = lock_address(lock, Network::Regtest.address_hrp());
}

/// An address string, for either network: a decoded address encodes to the (trimmed,
/// lower-cased) input and decodes back to itself.
pub fn address(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else { return };
    for network in Network::ALL {
        let hrp = network.address_hrp();
        let Ok(a) = Address::decode(s, hrp) else { continue };
        let text = a.encode();
        assert_eq!(text, s.trim().to_lowercase(), "an accepted address is in its canonical form");
        assert_eq!(Address::decode(&text, hrp), Ok(a));
    }
}

/// An amount as the wallet CLI (`from_coins_str`) and the RPC (`coins_from_json`) take it: an
/// accepted amount prints and reads back to itself.
pub fn amount(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(a) = Amount::from_coins_str(s) {
        assert_eq!(Amount::from_coins_str(&a.to_string()), Ok(a));
        assert_eq!(crate::rpc::json::coins_from_json(&Value::String(s.to_string())), Ok(a));
    }
    if let Ok(v) = serde_json::from_str::<Value>(s) {
        if let Ok(a) = crate::rpc::json::coins_from_json(&v) {
            let back = crate::rpc::json::coins(a);
            assert_eq!(crate::rpc::json::coins_from_json(&back), Ok(a), "{s} -> {back}");
        }
    }
}

/// JSON-RPC parameters: the first line is a method name, the rest its parameters as JSON (or,
/// for the CLI, words). The parameter check, the CLI's word parser, and the pure parameter
/// parsers of the server (hashes, hex, amounts, addresses, `createrawtransaction`) take them.
pub fn rpc_params(data: &[u8]) {
    use crate::rpc::methods::{check, raw_params, METHODS};
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (method, params) = text.split_once('\n').unwrap_or((text, ""));
    let words: Vec<String> = params.split_whitespace().map(str::to_string).collect();
    for named in [false, true] {
        if let Ok(p) = crate::cli::rpc::parse_params(&words, named) {
            let _ = check(method, &p);
        }
    }
    let Some(raw) = raw_params(Some(params)) else { return };
    let _ = check(method, &raw);
    for m in METHODS {
        let _ = check(m.name, &raw);
    }
    let values: Vec<&Value> = match &raw {
        crate::rpc::client::RawParams::Positional(v) => v.iter().collect(),
        crate::rpc::client::RawParams::Named(m) => m.values().collect(),
    };
    for v in &values {
        let _ = crate::rpc::json::coins_from_json(v);
        let _ = serde_json::from_value::<crate::rpc::types::AddressQuery>((*v).clone());
        let _ = serde_json::from_value::<crate::rpc::types::Verbosity>((*v).clone());
        if let Some(s) = v.as_str() {
            let _ = s.parse::<Hash256>();
            let _ = hex::decode(s.trim());
            let _ = Address::decode(s, Network::Regtest.address_hrp());
        }
    }
    if let (Some(inputs), Some(Value::Object(outputs))) = (values.first(), values.get(1)) {
        let Ok(inputs) = serde_json::from_value::<Vec<crate::rpc::types::CreateInput>>((*inputs).clone())
        else {
            return;
        };
        let locktime = values.get(2).and_then(|v| v.as_u64()).and_then(|l| u32::try_from(l).ok());
        let hrp = Network::Regtest.address_hrp();
        if let Ok(tx) = crate::rpc::service::raw_transaction(&inputs, outputs, locktime, hrp) {
            let bytes = tx.encode();
            assert_eq!(Transaction::decode(&bytes, usize::MAX), Ok(tx));
        }
    }
}

/// A wallet file, opened without a passphrase (an encrypted one is refused before the key
/// derivation, whose cost the file sets): an opened wallet written back opens to the same
/// file.
pub fn wallet_file(data: &[u8]) {
    use crate::wallet::keystore::Wallet;
    let path = Path::new("fuzz-wallet.json");
    for network in Network::ALL {
        let Ok(w) = Wallet::from_file_bytes(path, data, network, None) else { continue };
        let bytes = w.to_file_bytes();
        let again = Wallet::from_file_bytes(path, &bytes, network, None).expect("a saved wallet opens");
        assert_eq!(*again.to_file_bytes(), *bytes, "a saved wallet saves identically");
        assert_eq!(again.key(0).to_bytes(), w.key(0).to_bytes());
        let _ = w.address(w.key_count());
    }
}

/// A partially signed multisig file: describing and counting signatures never panic, and a
/// file that finalizes yields a transaction whose every input passes the script check.
pub fn psbt_file(data: &[u8]) {
    use crate::wallet::multisig::Psbt;
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(p) = Psbt::from_json(text) else { return };
    let _ = p.describe(Network::Regtest.address_hrp());
    let _ = p.signature_count();
    let Ok(tx) = p.finalize(&p.network) else { return };
    let cache = SighashCache::new(&tx);
    let ctx = SpendContext { tx_lock_time: tx.lock_time };
    for (i, input) in p.inputs.iter().enumerate() {
        let lock = hex::decode(&input.lock).expect("finalize checked the lock hex");
        let spent = crate::primitives::TxOut {
            value: Amount::from_sat(input.value).expect("finalize checked the value"),
            lock: crate::primitives::Script(lock),
        };
        let msg = crate::script::sighash(&tx, &cache, i, &spent);
        let result =
            verify_spend(&tx.inputs[i].unlock.0, &spent.lock.0, &ctx, &mut EagerChecker { msg: &msg.0 });
        assert_eq!(result, Ok(()), "input {i} of a finalized file must verify");
    }
}

/// A `mempool.dat`: a parsed file re-encodes to its bytes.
pub fn mempool_file(data: &[u8]) {
    use crate::mempool::persist::{encode, parse};
    let Ok(entries) = parse(data, regtest().max_tx_size) else { return };
    assert_eq!(encode(entries.iter().map(|(t, tx)| (*t, tx))), data, "a parsed mempool file re-encodes");
}

/// A `banned.json`: at most the cap, none expired, and the list written back reads back the same.
pub fn banned_json(data: &[u8]) {
    const NOW: u64 = 1_000_000;
    let (list, _problems) = BanList::from_json(data, NOW);
    let bans: BTreeMap<String, crate::p2p::peers::Ban> =
        list.entries().map(|(k, b)| (k.clone(), b.clone())).collect();
    assert!(bans.len() <= crate::p2p::peers::MAX_BANS);
    assert!(bans.values().all(|b| b.until > NOW), "expired bans are dropped");
    let written = serde_json::to_vec(&list).expect("a ban list serializes");
    let (again, problems) = BanList::from_json(&written, NOW);
    assert!(problems.is_empty(), "{problems:?}");
    let again: BTreeMap<String, crate::p2p::peers::Ban> =
        again.entries().map(|(k, b)| (k.clone(), b.clone())).collect();
    assert_eq!(again, bans, "a written ban list reads back the same");
}

/// A `quarry.toml`.
pub fn config_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = crate::cli::node::parse_config(text);
}

/// A topology file: an accepted topology written back as TOML parses to itself.
pub fn topology_file(data: &[u8]) {
    use crate::testnet::topology::Topology;
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(t) = Topology::parse(text) else { return };
    let written = toml::to_string(&t).expect("a topology serializes");
    assert_eq!(Topology::parse(&written).expect("a written topology parses"), t);
}

/// A scenario file (its topology and steps, checked as `quarry testnet scenario` does).
pub fn scenario_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = crate::testnet::scenario::Scenario::parse(text);
}

/// Largest single allocation the fuzz targets and the corpus replay allow: far above what any
/// corpus input needs, far below what a hostile length prefix would ask for.
pub const MAX_ALLOCATION: usize = 64 << 20;

/// A global allocator that refuses any single allocation above [`MAX_ALLOCATION`], which
/// aborts the process ("memory allocation of N bytes failed"): libFuzzer reports it as a
/// crash, and the replay test dies. Without it, a `Vec::with_capacity(hostile)` would pass
/// unnoticed on an overcommitting kernel. The fuzz targets and `tests/fuzz_corpus.rs`
/// install it with `#[global_allocator]`.
pub struct BoundedAlloc;

// SAFETY: every call is passed unchanged to the system allocator, except that requests above
// the limit return null, which `GlobalAlloc` allows (it means "allocation failed").
unsafe impl std::alloc::GlobalAlloc for BoundedAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION {
            return std::ptr::null_mut();
        }
        std::alloc::System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION {
            return std::ptr::null_mut();
        }
        std::alloc::System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        std::alloc::System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        if new_size > MAX_ALLOCATION {
            return std::ptr::null_mut();
        }
        std::alloc::System.realloc(ptr, layout, new_size)
    }
}

/// One Stratum line, as the pool reads it from a miner and as a miner reads it from a pool.
/// Pool side: a line over [`MAX_LINE`](crate::pool::stratum::MAX_LINE) is refused as too long
/// (and only such a line); a parsed call's parameters are read the way `mining.submit` reads
/// them; every reply is one JSON line. Miner side: `mining.notify` params from the line (or its
/// `result`) parse or are refused, and a job that parses builds a header and a share value.
pub fn stratum_line(data: &[u8]) {
    use crate::pool::{client, share, stratum};
    let Ok(line) = std::str::from_utf8(data) else { return };
    match stratum::parse_request(line) {
        Ok(call) => {
            assert!(line.len() <= stratum::MAX_LINE);
            let _ = stratum::str_param(&call, 0, "worker");
            let _ = stratum::str_param(&call, 1, "job_id");
            let _ = stratum::hex_param(&call, 2, "extranonce2", 4);
            let _ = stratum::u32_param(&call, 3, "ntime");
            let _ = stratum::u32_param(&call, 4, "nonce");
            for reply in [
                stratum::reply(&call.id, Value::Bool(true)),
                stratum::error_reply(&call.id, &stratum::StratumError::UnknownMethod(call.method.clone())),
            ] {
                assert!(reply.ends_with('\n') && reply.matches('\n').count() == 1, "{reply:?}");
                serde_json::from_str::<Value>(&reply).expect("a reply is JSON");
            }
            if let Ok(job) = client::parse_notify(&call.params) {
                let header = job.parts.header(&[1, 2, 3, 4], &[5, 6, 7, 8], job.ntime, 9);
                let _ = share::hash_value(&header.hash());
                let _ = share::difficulty_of(&share::hash_value(&header.hash()));
            }
        }
        Err(e) => {
            assert_eq!(matches!(e, stratum::StratumError::TooLong), line.len() > stratum::MAX_LINE, "{e}");
            let _ = stratum::error_reply(&Value::Null, &e);
        }
    }
    if let Ok(Value::Object(o)) = serde_json::from_str::<Value>(line) {
        if let Some(Value::Array(params)) = o.get("params").or_else(|| o.get("result")) {
            let _ = client::parse_notify(params);
        }
    }
}
