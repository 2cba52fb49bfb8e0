//! Checks every test vector in docs/PROTOCOL.md against the code, so the specification cannot
//! drift from the implementation.
//!
//! A vector is a fenced block tagged `vector` holding `key: value` lines; `kind` says what it
//! is. Keys may repeat where a list is meant (`leaf`, `sibling`, `pubkey`, `time`, `locator`,
//! `hash`, `header`, `block`). Every key of a block must be used by its checker, so a misspelt
//! key fails instead of being ignored.
//!
//! `cargo test --test suite -- --ignored protocol_doc::print_vectors --nocapture` prints the vectors
//! computed from the code, for pasting into the document when the encoding changes on purpose.

use ed25519_dalek::{Signer, SigningKey};
use quarry::consensus::pow::{asert_target, block_work, next_bits, target_from_compact, target_to_compact};
use quarry::consensus::validation::median_time;
use quarry::consensus::{block_subsidy, Network};
use quarry::p2p::wire::{self, Request, Response, Status, Topic};
use quarry::primitives::amount::COIN;
use quarry::primitives::merkle::{merkle_root, MerkleProof};
use quarry::primitives::{
    sha256d, Amount, Block, BlockHeader, Hash256, OutPoint, Script, Transaction, TxIn, TxOut, U256,
};
use quarry::script::count_sigops;
use quarry::script::opcodes::{decode_num, encode_num};
use quarry::script::sig::verify_one;
use quarry::script::templates::{
    multisig, multisig_unlock, op_return, p2pkh, p2pkh_unlock, p2sh, pubkey_hash, with_height_lock,
};
use quarry::script::{sighash, SighashCache};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

// ------------------------------------------------------------------------------------------
// Parsing
// ------------------------------------------------------------------------------------------

/// One fenced `vector` block.
struct Vector {
    /// Line number of the opening fence (1-based), for messages.
    line: usize,
    fields: Vec<(String, String)>,
    used: RefCell<BTreeSet<String>>,
}

impl Vector {
    fn all(&self, key: &str) -> Vec<&str> {
        self.used.borrow_mut().insert(key.to_string());
        self.fields.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }

    fn get(&self, key: &str) -> &str {
        match self.all(key)[..] {
            [v] => v,
            ref vs => panic!("vector at line {}: expected one `{key}`, found {}", self.line, vs.len()),
        }
    }

    fn opt(&self, key: &str) -> Option<&str> {
        match self.all(key)[..] {
            [] => None,
            _ => Some(self.get(key)),
        }
    }

    fn hex(&self, key: &str) -> Vec<u8> {
        hex::decode(self.get(key)).unwrap_or_else(|e| panic!("line {}: `{key}` is not hex: {e}", self.line))
    }

    fn hash(&self, key: &str) -> Hash256 {
        self.get(key).parse().unwrap_or_else(|e| panic!("line {}: `{key}`: {e}", self.line))
    }

    fn num<T: std::str::FromStr>(&self, key: &str) -> T
    where
        T::Err: std::fmt::Debug,
    {
        self.get(key).parse().unwrap_or_else(|e| panic!("line {}: `{key}`: {e:?}", self.line))
    }

    fn bits(&self, key: &str) -> u32 {
        let s = self.get(key);
        let h = s.strip_prefix("0x").unwrap_or_else(|| panic!("line {}: `{key}` needs 0x", self.line));
        u32::from_str_radix(h, 16).unwrap_or_else(|e| panic!("line {}: `{key}`: {e}", self.line))
    }

    fn unused(&self) -> Vec<String> {
        let used = self.used.borrow();
        let keys: BTreeSet<&String> = self.fields.iter().map(|(k, _)| k).collect();
        keys.into_iter().filter(|k| !used.contains(*k)).cloned().collect()
    }
}

fn parse(doc: &str) -> Vec<Vector> {
    let mut out = Vec::new();
    let mut lines = doc.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        if line.trim() != "```vector" {
            continue;
        }
        let mut fields = Vec::new();
        loop {
            let (m, l) = lines.next().unwrap_or_else(|| panic!("vector at line {} is not closed", n + 1));
            let l = l.trim();
            if l == "```" {
                break;
            }
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (k, v) = l.split_once(':').unwrap_or_else(|| panic!("line {}: expected `key: value`", m + 1));
            fields.push((k.trim().to_string(), v.trim().to_string()));
        }
        out.push(Vector { line: n + 1, fields, used: RefCell::new(BTreeSet::new()) });
    }
    out
}

// ------------------------------------------------------------------------------------------
// Shared helpers (also used by print_vectors)
// ------------------------------------------------------------------------------------------

fn key(seed: &[u8; 32]) -> SigningKey {
    SigningKey::from_bytes(seed)
}

fn seed(i: u8) -> [u8; 32] {
    [i; 32]
}

fn target_hex(t: &U256) -> String {
    hex::encode(t.to_be_bytes())
}

/// The sighash preimage, built independently of `quarry::script::sighash` from the layout the
/// document gives (the checker compares both).
fn sighash_preimage(tx: &Transaction, index: usize, spent: &TxOut) -> Vec<u8> {
    let mut prevouts = Vec::new();
    for i in &tx.inputs {
        prevouts.extend_from_slice(&i.prevout.txid.0);
        prevouts.extend_from_slice(&i.prevout.index.to_le_bytes());
    }
    let mut outputs = Vec::new();
    for o in &tx.outputs {
        outputs.extend_from_slice(&o.value.to_sat().to_le_bytes());
        outputs.extend_from_slice(&(o.lock.len() as u32).to_le_bytes());
        outputs.extend_from_slice(&o.lock.0);
    }
    let mut p = b"quarry/sighash/1".to_vec();
    p.extend_from_slice(&tx.version.to_le_bytes());
    p.extend_from_slice(&sha256d(&prevouts).0);
    p.extend_from_slice(&sha256d(&outputs).0);
    p.extend_from_slice(&tx.lock_time.to_le_bytes());
    p.extend_from_slice(&(index as u32).to_le_bytes());
    p.extend_from_slice(&tx.inputs[index].prevout.txid.0);
    p.extend_from_slice(&tx.inputs[index].prevout.index.to_le_bytes());
    p.extend_from_slice(&spent.value.to_sat().to_le_bytes());
    p.extend_from_slice(&(spent.lock.len() as u32).to_le_bytes());
    p.extend_from_slice(&spent.lock.0);
    p
}

// ------------------------------------------------------------------------------------------
// Checkers, one per kind
// ------------------------------------------------------------------------------------------

fn check_genesis(v: &Vector) {
    let params = v.get("network").parse::<Network>().expect("network").params();
    let header = v.hex("header");
    let block = v.hex("block");
    assert_eq!(header, params.genesis.header.to_bytes().to_vec(), "genesis header bytes");
    assert_eq!(block, params.genesis.encode(), "genesis block bytes");
    assert_eq!(Block::decode(&block, usize::MAX).expect("decodes"), params.genesis);
    let h = BlockHeader::from_bytes(&header).expect("80 bytes");
    assert_eq!(h.hash(), v.hash("block_id"), "genesis block id");
    assert_eq!(params.genesis_hash, v.hash("block_id"));
    assert_eq!(params.genesis.txs[0].txid(), v.hash("coinbase_txid"));
    assert_eq!(h.merkle_root, v.hash("merkle_root"));
    assert_eq!(h.time, v.num::<u32>("time"));
    assert_eq!(h.bits, v.bits("bits"));
    assert_eq!(h.nonce, v.num::<u32>("nonce"));
}

fn check_header(v: &Vector) {
    let bytes = v.hex("hex");
    let h = BlockHeader::from_bytes(&bytes).expect("80 bytes");
    assert_eq!(h.to_bytes().to_vec(), bytes);
    assert_eq!(h.hash(), v.hash("block_id"));
    assert_eq!(h.version, v.num::<u32>("version"));
    assert_eq!(h.prev, v.hash("prev"));
    assert_eq!(h.merkle_root, v.hash("merkle_root"));
    assert_eq!(h.time, v.num::<u32>("time"));
    assert_eq!(h.bits, v.bits("bits"));
    assert_eq!(h.nonce, v.num::<u32>("nonce"));
}

fn check_transaction(v: &Vector) {
    let bytes = v.hex("hex");
    let tx = Transaction::decode(&bytes, usize::MAX).expect("decodes");
    assert_eq!(tx.encode(), bytes, "canonical re-encoding");
    assert_eq!(tx.encoded_size(), v.num::<usize>("size"));
    assert_eq!(tx.txid(), v.hash("txid"));
    assert_eq!(sha256d(&bytes), v.hash("txid"), "txid is SHA-256d of the bytes");
}

fn check_merkle(v: &Vector) {
    let leaves: Vec<Hash256> = v.all("leaf").iter().map(|s| s.parse().expect("leaf hash")).collect();
    let (root, mutated) = merkle_root(&leaves);
    assert_eq!(root, v.hash("root"), "Merkle root");
    assert_eq!(mutated, v.num::<bool>("mutated"), "mutation flag");
    if let Some(index) = v.opt("proof_index") {
        let index: usize = index.parse().expect("index");
        let proof = MerkleProof::build(&leaves, index).expect("index in range");
        let siblings: Vec<Hash256> = v.all("sibling").iter().map(|s| s.parse().expect("sibling")).collect();
        assert_eq!(proof.siblings, siblings, "proof siblings");
        assert_eq!(proof.leaf_count as usize, leaves.len());
        proof.verify(&leaves[index], &root).expect("proof verifies");
        let bytes = quarry::codec::encode(&proof).expect("encodes");
        assert_eq!(hex::encode(&bytes), v.get("proof_bincode"), "proof record encoding");
        assert_eq!(quarry::codec::decode::<MerkleProof>(&bytes).expect("decodes"), proof);
    }
}

/// The pool's Stratum job and share rules (§ "Mining pool (Stratum V1)"): the coinbase
/// split, the Merkle branch, the `prevhash` field, the share's header, hash and difficulty.
fn check_stratum_share(v: &Vector) {
    use quarry::miner::BlockTemplate;
    use quarry::pool::share::{difficulty_of, hash_value, prevhash_field, JobParts};
    let prev = v.hash("prev");
    let bits = u32::from_str_radix(v.get("bits"), 16).expect("bits hex");
    let ntime: u32 = v.num("ntime");
    let value = Amount::from_sat(v.num("coinbasevalue")).expect("amount");
    let t = BlockTemplate::new(prev, v.num("height"), ntime, bits, Script(v.hex("lock")), value, Vec::new());
    let (en1, en2) = (v.hex("extranonce1"), v.hex("extranonce2"));
    let (c1, c2) = t.coinbase_split(en1.len() + en2.len());
    assert_eq!(hex::encode(&c1), v.get("coinb1"), "coinb1");
    assert_eq!(hex::encode(&c2), v.get("coinb2"), "coinb2");
    // The branch: the coinbase's siblings among all the block's txids (a placeholder for
    // the coinbase: the branch does not depend on it).
    let mut leaves = vec![Hash256::ZERO];
    leaves.extend(v.all("txid").iter().map(|s| s.parse::<Hash256>().expect("txid")));
    let branch = MerkleProof::build(&leaves, 0).expect("leaf 0").siblings;
    let want: Vec<String> = v.all("branch").iter().map(|s| s.to_string()).collect();
    assert_eq!(
        branch.iter().map(|h| hex::encode(h.0)).collect::<Vec<_>>(),
        want,
        "merkle_branch (internal order)"
    );
    assert_eq!(prevhash_field(&prev), v.get("prevhash_field"), "prevhash field");
    let parts = JobParts { prev, coinb1: c1, coinb2: c2, branch, version: v.num("version"), bits };
    let coinbase = parts.coinbase(&en1, &en2);
    assert_eq!(
        Transaction::decode(&coinbase, usize::MAX).expect("the coinbase decodes").txid(),
        v.hash("coinbase_txid")
    );
    let header = parts.header(&en1, &en2, ntime, u32::from_str_radix(v.get("nonce"), 16).expect("nonce hex"));
    assert_eq!(hex::encode(header.to_bytes()), v.get("header"), "share header");
    assert_eq!(header.hash(), v.hash("hash"), "share hash");
    let d = difficulty_of(&hash_value(&header.hash()));
    let want: f64 = v.num("difficulty");
    assert!((d / want - 1.0).abs() < 1e-9, "share difficulty {d} vs {want}");
}

fn check_sighash(v: &Vector) {
    let tx = Transaction::decode(&v.hex("tx"), usize::MAX).expect("tx decodes");
    let index: usize = v.num("input");
    let spent = TxOut {
        value: Amount::from_sat(v.num("spent_value")).expect("amount"),
        lock: Script(v.hex("spent_lock")),
    };
    let preimage = sighash_preimage(&tx, index, &spent);
    assert_eq!(hex::encode(&preimage), v.get("preimage"), "sighash preimage");
    let h = sighash(&tx, &SighashCache::new(&tx), index, &spent);
    assert_eq!(h, sha256d(&preimage), "sighash is SHA-256d of the preimage");
    assert_eq!(hex::encode(h.0), v.get("sighash"), "sighash (internal byte order)");
}

fn check_signature(v: &Vector) {
    let seed: [u8; 32] = v.hex("seed").try_into().expect("32-byte seed");
    let sk = key(&seed);
    let pubkey = sk.verifying_key().to_bytes();
    assert_eq!(hex::encode(pubkey), v.get("pubkey"));
    let msg = v.hex("message");
    let sig = sk.sign(&msg).to_bytes();
    assert_eq!(hex::encode(sig), v.get("signature"), "RFC 8032 deterministic signature");
    assert!(verify_one(&pubkey, &sig, &msg), "consensus verification accepts it");
    let mut bad = sig;
    bad[0] ^= 1;
    assert!(!verify_one(&pubkey, &bad, &msg));
}

fn check_compact(v: &Vector) {
    let bits = v.bits("bits");
    match v.opt("error") {
        Some(err) => {
            let e = target_from_compact(bits).expect_err("bits must be invalid");
            assert_eq!(e.to_string(), err);
        }
        None => {
            let target = target_from_compact(bits).expect("valid bits");
            assert_eq!(target_hex(&target), v.get("target"), "target of 0x{bits:08x}");
            assert_eq!(target_to_compact(&target), bits, "round trip of 0x{bits:08x}");
            assert_eq!(target_hex(&block_work(&target)), v.get("work"), "work of 0x{bits:08x}");
        }
    }
}

fn check_compact_round(v: &Vector) {
    let t: [u8; 32] = v.hex("target").try_into().expect("32 bytes");
    let mut le = t;
    le.reverse();
    let target = U256::from_le_bytes(&le);
    let bits = target_to_compact(&target);
    assert_eq!(bits, v.bits("bits"), "compact form of {}", v.get("target"));
    assert_eq!(target_hex(&target_from_compact(bits).expect("valid")), v.get("expands_to"));
}

fn check_asert(v: &Vector) {
    let params = v.get("network").parse::<Network>().expect("network").params();
    let got = next_bits(params, v.num("parent_height"), v.num("parent_time"), v.num("anchor_time"));
    assert_eq!(got, v.bits("bits"), "next bits at line {}", v.line);
    assert_eq!(target_hex(&target_from_compact(got).expect("valid")), v.get("target"));
}

fn u256(v: &Vector, key: &str) -> U256 {
    let mut b: [u8; 32] = v.hex(key).try_into().expect("32-byte number");
    b.reverse();
    U256::from_le_bytes(&b)
}

fn check_asert_target(v: &Vector) {
    let t = asert_target(
        &u256(v, "anchor_target"),
        v.num("time_diff"),
        v.num("height_diff"),
        v.num("spacing"),
        v.num("halflife"),
        &u256(v, "pow_limit"),
    );
    assert_eq!(target_hex(&t), v.get("target"), "ASERT target at line {}", v.line);
}

fn check_script(v: &Vector) {
    let lock = match v.get("template") {
        "p2pkh" => {
            let pk: [u8; 32] = v.hex("pubkey").try_into().expect("32-byte key");
            assert_eq!(hex::encode(pubkey_hash(&pk)), v.get("pubkey_hash"));
            p2pkh(&pubkey_hash(&pk))
        }
        "multisig" => {
            let keys: Vec<[u8; 32]> = v
                .all("pubkey")
                .iter()
                .map(|k| hex::decode(k).expect("hex").try_into().expect("32 bytes"))
                .collect();
            multisig(v.num("threshold"), &keys)
        }
        "p2sh" => {
            let redeem = Script(v.hex("redeem"));
            assert_eq!(hex::encode(sha256d(&redeem.0).0), v.get("script_hash"));
            p2sh(&redeem)
        }
        "height_lock" => with_height_lock(v.num("height"), &Script(v.hex("inner"))),
        "op_return" => op_return(&v.hex("data")),
        other => panic!("line {}: unknown template {other}", v.line),
    };
    assert_eq!(hex::encode(&lock.0), v.get("lock"), "{} locking script", v.get("template"));
    if let Some(n) = v.opt("sigops") {
        assert_eq!(count_sigops(&lock.0), n.parse::<usize>().expect("count"));
    }
}

fn check_unlock(v: &Vector) {
    let unlock = match v.get("template") {
        "p2pkh" => {
            let sig: [u8; 64] = v.hex("signature").try_into().expect("64 bytes");
            let pk: [u8; 32] = v.hex("pubkey").try_into().expect("32 bytes");
            p2pkh_unlock(&sig, &pk)
        }
        "multisig" => {
            let slots: Vec<Option<[u8; 64]>> = v
                .all("slot")
                .iter()
                .map(|s| match *s {
                    "empty" => None,
                    h => Some(hex::decode(h).expect("hex").try_into().expect("64 bytes")),
                })
                .collect();
            multisig_unlock(&slots)
        }
        other => panic!("line {}: unknown unlock template {other}", v.line),
    };
    assert_eq!(hex::encode(&unlock.0), v.get("unlock"));
}

fn check_number(v: &Vector) {
    let n: i64 = v.num("value");
    let enc = v.get("encoding");
    let enc = if enc == "empty" { String::new() } else { enc.to_string() };
    assert_eq!(hex::encode(encode_num(n)), enc, "encoding of {n}");
    assert_eq!(decode_num(&hex::decode(&enc).expect("hex"), 5).expect("decodes"), n);
}

fn check_subsidy(v: &Vector) {
    let params = v.get("network").parse::<Network>().expect("network").params();
    let got = block_subsidy(params, v.num("height")).to_sat();
    assert_eq!(got, v.num::<u64>("subsidy"));
}

fn check_median(v: &Vector) {
    let mut times: Vec<u32> = v.all("time").iter().map(|t| t.parse().expect("time")).collect();
    assert_eq!(median_time(&mut times), v.num::<u32>("median"));
}

fn check_sigops(v: &Vector) {
    assert_eq!(count_sigops(&v.hex("script")), v.num::<usize>("count"));
}

fn check_address(v: &Vector) {
    use quarry::primitives::{Address, AddressKind};
    let network: quarry::consensus::Network = v.get("network").parse().unwrap();
    let kind = match v.get("payload") {
        "p2pkh" => AddressKind::P2pkh,
        "p2sh" => AddressKind::P2sh,
        other => panic!("unknown payload {other}"),
    };
    let hash: [u8; 32] = v.hex("hash").try_into().unwrap();
    let a = Address { hrp: network.address_hrp(), kind, hash };
    assert_eq!(a.encode(), v.get("address"));
    assert_eq!(Address::decode(v.get("address"), network.address_hrp()).unwrap(), a);
}

// ------------------------------------------------------------------------------------------
// Wire (§13): sync messages, frames, gossip ids, node keys, names and constants
// ------------------------------------------------------------------------------------------

/// A `Status` from its vector fields (hashes in display order, chain work as big-endian hex).
fn status_of(v: &Vector) -> Status {
    Status {
        version: v.num("version"),
        genesis: v.hash("genesis"),
        tip: v.hash("tip"),
        height: v.num("height"),
        chain_work: u256(v, "chain_work"),
    }
}

fn hashes(v: &Vector, key: &str) -> Vec<Hash256> {
    v.all(key).iter().map(|s| s.parse().unwrap_or_else(|e| panic!("line {}: `{key}`: {e}", v.line))).collect()
}

/// `u32 LE length || payload`, written by the code's own frame writer.
fn frame_of(payload: &[u8]) -> Vec<u8> {
    let mut io = futures::io::Cursor::new(Vec::new());
    futures::executor::block_on(wire::write_frame(&mut io, payload)).expect("frame writes");
    io.into_inner()
}

/// The optional `frame` key: the framed bytes, and the frame reader must give the payload back.
fn check_frame(v: &Vector, payload: &[u8], max: usize) {
    if let Some(f) = v.opt("frame") {
        assert_eq!(hex::encode(frame_of(payload)), f, "frame at line {}", v.line);
        let mut io = futures::io::Cursor::new(hex::decode(f).expect("frame hex"));
        let read = futures::executor::block_on(wire::read_frame(&mut io, max)).expect("frame reads");
        assert_eq!(read, payload, "frame payload at line {}", v.line);
    }
}

fn check_request(v: &Vector) {
    let req = match v.get("message") {
        "status" => Request::Status(status_of(v)),
        "getheaders" => Request::GetHeaders { locator: hashes(v, "locator"), max: v.num("max") },
        "getblocks" => Request::GetBlocks(hashes(v, "hash")),
        "getblocktxn" => Request::GetBlockTxn {
            block: v.get("block").parse().expect("block id"),
            indexes: v.all("index").iter().map(|i| i.parse().expect("index")).collect(),
        },
        other => panic!("line {}: unknown request {other}", v.line),
    };
    let bytes = v.hex("hex");
    assert_eq!(hex::encode(req.encode()), v.get("hex"), "request encoding at line {}", v.line);
    assert_eq!(Request::decode(&bytes).expect("request decodes"), req);
    check_frame(v, &bytes, wire::MAX_REQUEST_BYTES);
}

fn check_response(v: &Vector) {
    let resp = match v.get("message") {
        "status" => Response::Status(status_of(v)),
        "headers" => Response::Headers(
            v.all("header")
                .iter()
                .map(|h| BlockHeader::from_bytes(&hex::decode(h).expect("hex")).expect("80 bytes"))
                .collect(),
        ),
        "blocks" => Response::Blocks(
            v.all("block")
                .iter()
                .map(|b| Block::decode(&hex::decode(b).expect("hex"), usize::MAX).expect("block decodes"))
                .collect(),
        ),
        "busy" => Response::Busy,
        "blocktxn" => Response::BlockTxn {
            block: v.get("block").parse().expect("block id"),
            txs: v
                .all("tx")
                .iter()
                .map(|t| Transaction::decode(&hex::decode(t).expect("hex"), usize::MAX).expect("tx decodes"))
                .collect(),
        },
        other => panic!("line {}: unknown response {other}", v.line),
    };
    let bytes = v.hex("hex");
    assert_eq!(hex::encode(resp.encode()), v.get("hex"), "response encoding at line {}", v.line);
    for n in Network::ALL {
        let got = Response::decode(&bytes, n.params().max_block_size).expect("response decodes");
        assert_eq!(got, resp);
    }
    check_frame(v, &bytes, wire::MAX_RESPONSE_BYTES);
}

fn check_bad_message(v: &Vector) {
    let bytes = v.hex("hex");
    let err = match v.get("direction") {
        "request" => Request::decode(&bytes).expect_err("must not decode").to_string(),
        "response" => Response::decode(&bytes, Network::Regtest.params().max_block_size)
            .expect_err("must not decode")
            .to_string(),
        other => panic!("line {}: unknown direction {other}", v.line),
    };
    assert_eq!(err, v.get("error"), "decode error at line {}", v.line);
}

fn check_message_id(v: &Vector) {
    let data = v.hex("data");
    let id = wire::message_id(&data);
    assert_eq!(hex::encode(&id), v.get("id"), "message id at line {}", v.line);
    // The configured gossipsub message id function is this one, whatever the topic.
    let config = quarry::p2p::behaviour::gossip_config().expect("gossip config");
    for n in Network::ALL {
        for t in Topic::ALL {
            let m = libp2p::gossipsub::Message {
                source: None,
                data: data.clone(),
                sequence_number: None,
                topic: libp2p::gossipsub::IdentTopic::new(t.name(n)).hash(),
            };
            assert_eq!(config.message_id(&m).0, id);
        }
    }
}

fn check_node_key(v: &Vector) {
    let seed = v.hex("seed");
    let key = libp2p::identity::Keypair::ed25519_from_bytes(seed.clone()).expect("32-byte secret");
    let file = key.to_protobuf_encoding().expect("encodes");
    assert_eq!(hex::encode(&file), v.get("file"), "node key file bytes");
    assert_eq!(&file[..4], &[0x08, 0x01, 0x12, 0x40], "protobuf PrivateKey {{ Ed25519, 64 bytes }}");
    assert_eq!(&file[4..36], &seed[..], "secret half");
    assert_eq!(file[36..], key.public().try_into_ed25519().expect("ed25519").to_bytes(), "public half");
    let peer = key.public().to_peer_id();
    assert_eq!(peer.to_string(), v.get("peer_id"), "peer id");
    // The node loads exactly this file.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("node_key");
    std::fs::write(&path, &file).expect("write");
    let loaded = quarry::p2p::behaviour::load_or_create_key(&path).expect("node loads the key");
    assert_eq!(loaded.public().to_peer_id(), peer);
}

/// The sample of the compact-block vectors: the regtest genesis header and coinbase, a
/// nonce, and two made-up txids.
fn compact_sample() -> (BlockHeader, u64, Transaction, Vec<Hash256>) {
    let p = Network::Regtest.params();
    (p.genesis.header, 0x0807_0605_0403_0201, p.genesis.txs[0].clone(), vec![sample_tip(), p.genesis_hash])
}

fn check_short_id(v: &Vector) {
    use quarry::p2p::compact::ShortIdKey;
    let header = BlockHeader::from_bytes(&v.hex("header")).expect("80 bytes");
    let key = ShortIdKey::new(&header, u64::from_str_radix(v.get("nonce"), 16).expect("hex nonce"));
    let (k0, k1) = key.keys();
    assert_eq!(format!("{k0:016x}"), v.get("k0"), "k0 at line {}", v.line);
    assert_eq!(format!("{k1:016x}"), v.get("k1"), "k1 at line {}", v.line);
    let txid: Hash256 = v.get("txid").parse().expect("txid");
    assert_eq!(format!("{:012x}", key.short_id(&txid)), v.get("short_id"), "short id at line {}", v.line);
}

fn check_compact_block(v: &Vector) {
    use quarry::p2p::compact::{CompactBlock, ShortIdKey};
    let header = BlockHeader::from_bytes(&v.hex("header")).expect("80 bytes");
    let nonce = u64::from_str_radix(v.get("nonce"), 16).expect("hex nonce");
    let key = ShortIdKey::new(&header, nonce);
    let coinbase = Transaction::decode(&v.hex("coinbase"), usize::MAX).expect("coinbase decodes");
    let txids: Vec<Hash256> = v.all("txid").iter().map(|t| t.parse().expect("txid")).collect();
    let compact = CompactBlock {
        header,
        nonce,
        short_ids: txids.iter().map(|t| key.short_id(t)).collect(),
        prefilled: vec![(0, coinbase)],
    };
    assert_eq!(hex::encode(compact.encode()), v.get("hex"), "compact block at line {}", v.line);
    for n in Network::ALL {
        assert_eq!(CompactBlock::decode(&v.hex("hex"), n.params().max_block_size).expect("decodes"), compact);
    }
}

fn check_wire_names(v: &Vector) {
    let n: Network = v.get("network").parse().expect("network");
    assert_eq!(Topic::Blocks.name(n), v.get("blocks_topic"));
    assert_eq!(Topic::Transactions.name(n), v.get("txs_topic"));
    assert_eq!(Topic::CompactBlocks.name(n), v.get("cmpct_topic"));
    assert_eq!(wire::sync_protocol(n).as_ref(), v.get("sync_protocol"));
    assert_eq!(wire::kad_protocol(n).as_ref(), v.get("kad_protocol"));
    assert_eq!(wire::identify_protocol(n), v.get("identify_protocol"));
    assert_eq!(n.default_p2p_port(), v.num::<u16>("p2p_port"));
}

/// Every number of the wire and the peer policy that §13 states, by name, from the code.
fn p2p_constants() -> Vec<(&'static str, String)> {
    use quarry::p2p::peers::{self, Misbehaviour as M};
    use quarry::p2p::{behaviour, sync};
    let gossip = behaviour::gossip_config().expect("gossip config");
    use quarry::mempool::MempoolError;
    let h = || quarry::primitives::Hash256::ZERO;
    let bad = || quarry::consensus::ConsensusError::NoTransactions;
    let junk = || quarry::primitives::DecodeError::TrailingBytes { what: "x", extra: 1 };
    vec![
        ("protocol_version", wire::PROTOCOL_VERSION.to_string()),
        ("status_size", wire::STATUS_SIZE.to_string()),
        ("max_headers", wire::MAX_HEADERS.to_string()),
        ("max_locator", wire::MAX_LOCATOR.to_string()),
        ("max_blocks_per_request", wire::MAX_BLOCKS_PER_REQUEST.to_string()),
        ("max_request_bytes", wire::MAX_REQUEST_BYTES.to_string()),
        ("max_response_bytes", wire::MAX_RESPONSE_BYTES.to_string()),
        ("max_gossip_bytes", wire::MAX_GOSSIP_BYTES.to_string()),
        ("gossip_max_transmit_size", gossip.max_transmit_size().to_string()),
        ("gossip_heartbeat_ms", gossip.heartbeat_interval().as_millis().to_string()),
        ("gossip_validate_messages", gossip.validate_messages().to_string()),
        ("gossip_validation_mode", format!("{:?}", gossip.validation_mode())),
        ("request_timeout_s", behaviour::REQUEST_TIMEOUT.as_secs().to_string()),
        ("handshake_timeout_s", behaviour::HANDSHAKE_TIMEOUT.as_secs().to_string()),
        ("max_pending_inbound", quarry::p2p::inbound::MAX_PENDING_INBOUND.to_string()),
        ("max_pending_inbound_per_source", quarry::p2p::inbound::MAX_PENDING_PER_SOURCE.to_string()),
        ("max_orphans", quarry::chain::MAX_ORPHANS.to_string()),
        ("max_orphan_bytes", quarry::chain::MAX_ORPHAN_BYTES.to_string()),
        ("max_orphans_per_peer", quarry::chain::MAX_ORPHANS_PER_SOURCE.to_string()),
        ("max_orphan_bytes_per_peer", quarry::chain::MAX_ORPHAN_BYTES_PER_SOURCE.to_string()),
        ("blocks_per_request", sync::BLOCKS_PER_REQUEST.to_string()),
        ("requests_per_peer", sync::REQUESTS_PER_PEER.to_string()),
        ("window", sync::WINDOW.to_string()),
        ("headers_timeout_ms", sync::HEADERS_TIMEOUT_MS.to_string()),
        ("blocks_timeout_ms", sync::BLOCKS_TIMEOUT_MS.to_string()),
        ("stall_cooldown_ms", sync::STALL_COOLDOWN_MS.to_string()),
        ("headers_idle_ms", sync::HEADERS_IDLE_MS.to_string()),
        ("max_pending_headers", sync::MAX_PENDING_HEADERS.to_string()),
        ("ban_threshold", peers::BAN_THRESHOLD.to_string()),
        ("ban_seconds", peers::BAN_SECONDS.to_string()),
        ("recovery_seconds", peers::RECOVERY_SECONDS.to_string()),
        ("request_burst", peers::REQUEST_BURST.to_string()),
        ("requests_per_second", peers::REQUESTS_PER_SECOND.to_string()),
        ("penalty_invalid_block", M::InvalidBlock { hash: h(), error: bad() }.penalty().to_string()),
        ("penalty_invalid_headers", M::InvalidHeaders { hash: h(), error: bad() }.penalty().to_string()),
        ("penalty_malformed", M::Malformed { what: "x", error: junk() }.penalty().to_string()),
        ("penalty_oversized", M::TooManyHeaders { got: 2001, max: 2000 }.penalty().to_string()),
        ("penalty_unconnected_headers", M::UnconnectedHeaders { hash: h(), prev: h() }.penalty().to_string()),
        ("penalty_invalid_tx", M::InvalidTx(MempoolError::Coinbase { txid: h() }).penalty().to_string()),
        ("penalty_unsolicited", M::BlockNotAsked { hash: h() }.penalty().to_string()),
        ("penalty_stalled", M::Stalled { request: 1, asked: "blocks", blocks: 1 }.penalty().to_string()),
        ("penalty_request_flood", M::RequestFlood.penalty().to_string()),
        ("penalty_bad_compact_block", M::BadCompactBlock { hash: h() }.penalty().to_string()),
        (
            "penalty_relayed_invalid_block",
            M::RelayedInvalidBlock { hash: h(), error: bad() }.penalty().to_string(),
        ),
        ("short_id_bytes", quarry::p2p::compact::SHORT_ID_BYTES.to_string()),
        ("max_blocktxn_indexes", quarry::p2p::compact::MAX_BLOCKTXN_INDEXES.to_string()),
    ]
}

fn check_p2p_constants(v: &Vector) {
    for (name, value) in p2p_constants() {
        assert_eq!(v.get(name), value, "constant `{name}` at line {}", v.line);
    }
}

fn check(v: &Vector) -> &'static str {
    let kind = v.get("kind");
    let kind: &'static str = match kind {
        "genesis" => {
            check_genesis(v);
            "genesis"
        }
        "address" => {
            check_address(v);
            "address"
        }
        "header" => {
            check_header(v);
            "header"
        }
        "transaction" => {
            check_transaction(v);
            "transaction"
        }
        "merkle" => {
            check_merkle(v);
            "merkle"
        }
        "sighash" => {
            check_sighash(v);
            "sighash"
        }
        "signature" => {
            check_signature(v);
            "signature"
        }
        "compact" => {
            check_compact(v);
            "compact"
        }
        "compact_round" => {
            check_compact_round(v);
            "compact_round"
        }
        "asert" => {
            check_asert(v);
            "asert"
        }
        "asert_target" => {
            check_asert_target(v);
            "asert_target"
        }
        "script" => {
            check_script(v);
            "script"
        }
        "unlock" => {
            check_unlock(v);
            "unlock"
        }
        "number" => {
            check_number(v);
            "number"
        }
        "subsidy" => {
            check_subsidy(v);
            "subsidy"
        }
        "median" => {
            check_median(v);
            "median"
        }
        "sigops" => {
            check_sigops(v);
            "sigops"
        }
        "request" => {
            check_request(v);
            "request"
        }
        "response" => {
            check_response(v);
            "response"
        }
        "bad_message" => {
            check_bad_message(v);
            "bad_message"
        }
        "message_id" => {
            check_message_id(v);
            "message_id"
        }
        "node_key" => {
            check_node_key(v);
            "node_key"
        }
        "short_id" => {
            check_short_id(v);
            "short_id"
        }
        "compact_block" => {
            check_compact_block(v);
            "compact_block"
        }
        "wire_names" => {
            check_wire_names(v);
            "wire_names"
        }
        "p2p_constants" => {
            check_p2p_constants(v);
            "p2p_constants"
        }
        "stratum_share" => {
            check_stratum_share(v);
            "stratum_share"
        }
        other => panic!("vector at line {}: unknown kind {other:?}", v.line),
    };
    let unused = v.unused();
    assert!(unused.is_empty(), "vector at line {}: keys not checked: {unused:?}", v.line);
    kind
}

fn doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/PROTOCOL.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every vector in docs/PROTOCOL.md matches the code.
#[test]
fn protocol_vectors_match_the_code() {
    let vectors = parse(&doc());
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for v in &vectors {
        let kind = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(v)))
            .unwrap_or_else(|_| panic!("docs/PROTOCOL.md vector at line {} does not match the code", v.line));
        *kinds.entry(kind).or_default() += 1;
    }
    for required in [
        "genesis",
        "header",
        "transaction",
        "merkle",
        "sighash",
        "signature",
        "compact",
        "asert",
        "script",
        "request",
        "response",
        "message_id",
        "node_key",
        "wire_names",
        "p2p_constants",
        "stratum_share",
    ] {
        assert!(kinds.contains_key(required), "docs/PROTOCOL.md has no `{required}` vector");
    }
    assert_eq!(kinds["genesis"], 2, "one genesis vector per network");
    assert_eq!(kinds["wire_names"], Network::ALL.len(), "one wire_names vector per network");
    assert_eq!(kinds["p2p_constants"], 1, "one p2p_constants vector");
    println!("checked {} vectors: {kinds:?}", vectors.len());
}

/// The parser finds fenced vector blocks and nothing else.
#[test]
fn parser_reads_fenced_key_value_blocks() {
    let doc =
        "text\n```vector\nkind: number\nvalue: 1\n# comment\nencoding: 01\n```\n```text\nkind: x\n```\n";
    let vs = parse(doc);
    assert_eq!(vs.len(), 1);
    assert_eq!(vs[0].line, 2);
    assert_eq!(check(&vs[0]), "number");
    let typo = parse("```vector\nkind: number\nvalue: 1\nencoding: 01\nvalu: 2\n```\n");
    assert!(
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&typo[0]))).is_err(),
        "unused keys are an error"
    );
}

// ------------------------------------------------------------------------------------------
// Printing the vectors from the code
// ------------------------------------------------------------------------------------------

/// The sample P2PKH spend used by the transaction, sighash and signature vectors: it spends
/// output 1 of txid 11..11 (10 coins locked to key seed 01..01) and pays 9.99 coins to key seed
/// 02..02. Returns the signed tx, the spent output and the sighash.
fn sample_spend() -> (Transaction, TxOut, Hash256) {
    let k1 = key(&seed(1));
    let pk1 = k1.verifying_key().to_bytes();
    let pk2 = key(&seed(2)).verifying_key().to_bytes();
    let spent = TxOut { value: Amount::from_sat(10 * COIN).unwrap(), lock: p2pkh(&pubkey_hash(&pk1)) };
    let prevout = OutPoint { txid: Hash256([0x11; 32]), index: 1 };
    let mut tx = Transaction {
        version: 1,
        inputs: vec![TxIn { prevout, unlock: Script::default() }],
        outputs: vec![TxOut {
            value: Amount::from_sat(999 * COIN / 100).unwrap(),
            lock: p2pkh(&pubkey_hash(&pk2)),
        }],
        lock_time: 0,
    };
    let h = sighash(&tx, &SighashCache::new(&tx), 0, &spent);
    tx.inputs[0].unlock = p2pkh_unlock(&k1.sign(&h.0).to_bytes(), &pk1);
    (tx, spent, h)
}

/// Prints one vector block.
fn print_block(kind: &str, fields: &[(&str, String)]) {
    println!("```vector\nkind: {kind}");
    for (k, v) in fields {
        println!("{k}: {v}");
    }
    println!("```\n");
}

/// Prints vectors computed from the code (to paste into docs/PROTOCOL.md).
#[test]
#[ignore = "prints values for docs/PROTOCOL.md"]
fn print_vectors() {
    for n in Network::ALL {
        let p = n.params();
        let h = &p.genesis.header;
        print_block(
            "genesis",
            &[
                ("network", n.to_string()),
                ("header", hex::encode(h.to_bytes())),
                ("block_id", p.genesis_hash.to_string()),
                ("merkle_root", h.merkle_root.to_string()),
                ("coinbase_txid", p.genesis.txs[0].txid().to_string()),
                ("time", h.time.to_string()),
                ("bits", format!("0x{:08x}", h.bits)),
                ("nonce", h.nonce.to_string()),
                ("block", hex::encode(p.genesis.encode())),
            ],
        );
    }
    let (tx, spent, h) = sample_spend();
    print_block(
        "transaction",
        &[
            ("hex", hex::encode(tx.encode())),
            ("size", tx.encoded_size().to_string()),
            ("txid", tx.txid().to_string()),
        ],
    );
    let mut unsigned = tx.clone();
    unsigned.inputs[0].unlock = Script::default();
    print_block(
        "sighash",
        &[
            ("tx", hex::encode(unsigned.encode())),
            ("input", "0".into()),
            ("spent_value", spent.value.to_sat().to_string()),
            ("spent_lock", hex::encode(&spent.lock.0)),
            ("preimage", hex::encode(sighash_preimage(&tx, 0, &spent))),
            ("sighash", hex::encode(h.0)),
        ],
    );
    let k1 = key(&seed(1));
    print_block(
        "signature",
        &[
            ("seed", hex::encode(seed(1))),
            ("pubkey", hex::encode(k1.verifying_key().to_bytes())),
            ("message", hex::encode(h.0)),
            ("signature", hex::encode(k1.sign(&h.0).to_bytes())),
        ],
    );
    let leaves: Vec<Hash256> = [
        "8c14f0db3df150123e6f3dbbf30f8b955a8249b62ac1d1ff16284aefa3d06d87",
        "fff2525b8931402dd09222c50775608f75787bd2b87e56995a7bdd30f79702c4",
        "6359f0868171b1d194cbee1af2f16ea598ae8fad666d9b012c8ed2b79a236ec4",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    let proof = MerkleProof::build(&leaves, 2).unwrap();
    let mut fields: Vec<(&str, String)> = leaves.iter().map(|l| ("leaf", l.to_string())).collect();
    fields.push(("root", merkle_root(&leaves).0.to_string()));
    fields.push(("mutated", "false".into()));
    fields.push(("proof_index", "2".into()));
    fields.extend(proof.siblings.iter().map(|s| ("sibling", s.to_string())));
    fields.push(("proof_bincode", hex::encode(quarry::codec::encode(&proof).unwrap())));
    print_block("merkle", &fields);
    for bits in [0x207fffffu32, 0x1e040000, 0x1d00ffff, 0x03123456, 0x02008000] {
        let t = target_from_compact(bits).unwrap();
        print_block(
            "compact",
            &[
                ("bits", format!("0x{bits:08x}")),
                ("target", target_hex(&t)),
                ("work", target_hex(&block_work(&t))),
            ],
        );
    }
    let dev = Network::Dev.params();
    let a = dev.genesis_time + 100;
    for (ph, pt, at) in
        [(0u32, dev.genesis_time, 0), (1, a, a), (101, a + 500, a), (101, a + 440, a), (101, a + 470, a)]
    {
        let b = next_bits(dev, ph, pt, at);
        print_block(
            "asert",
            &[
                ("network", "dev".into()),
                ("parent_height", ph.to_string()),
                ("parent_time", pt.to_string()),
                ("anchor_time", at.to_string()),
                ("bits", format!("0x{b:08x}")),
                ("target", target_hex(&target_from_compact(b).unwrap())),
            ],
        );
    }
    let keys: Vec<[u8; 32]> = (1..=3).map(|i| key(&seed(i)).verifying_key().to_bytes()).collect();
    let ms = multisig(2, &keys);
    let p2pkh1 = p2pkh(&pubkey_hash(&keys[0]));
    for (template, lock) in [
        ("p2pkh", p2pkh1.clone()),
        ("multisig", ms.clone()),
        ("p2sh", p2sh(&ms)),
        ("height_lock", with_height_lock(1000, &p2pkh1)),
        ("op_return", op_return(b"hello")),
    ] {
        print_block(
            "script",
            &[
                ("template", template.into()),
                ("lock", hex::encode(&lock.0)),
                ("sigops", count_sigops(&lock.0).to_string()),
            ],
        );
    }
}

/// The sample status of the wire vectors: regtest, a made-up tip (display order 00 01 .. 1f,
/// so the reversal is visible), height 5, the work of six regtest blocks.
fn sample_status() -> Status {
    let p = Network::Regtest.params();
    let work = block_work(&target_from_compact(p.genesis.header.bits).unwrap());
    Status {
        version: wire::PROTOCOL_VERSION,
        genesis: p.genesis_hash,
        tip: sample_tip(),
        height: 5,
        chain_work: work.checked_mul_u64(6).unwrap(),
    }
}

fn sample_tip() -> Hash256 {
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f".parse().unwrap()
}

fn status_fields(s: &Status) -> Vec<(&'static str, String)> {
    vec![
        ("version", s.version.to_string()),
        ("genesis", s.genesis.to_string()),
        ("tip", s.tip.to_string()),
        ("height", s.height.to_string()),
        ("chain_work", target_hex(&s.chain_work)),
    ]
}

/// Prints the wire vectors of §13 computed from the code.
#[test]
#[ignore = "prints values for docs/PROTOCOL.md"]
fn print_wire_vectors() {
    let p = Network::Regtest.params();
    let status = sample_status();
    let framed = |b: &[u8]| hex::encode(frame_of(b));

    let req = Request::Status(status.clone());
    let mut f = vec![("message", "status".to_string())];
    f.extend(status_fields(&status));
    f.push(("hex", hex::encode(req.encode())));
    f.push(("frame", framed(&req.encode())));
    print_block("request", &f);

    let req = Request::GetHeaders { locator: vec![sample_tip(), p.genesis_hash], max: 2000 };
    print_block(
        "request",
        &[
            ("message", "getheaders".into()),
            ("locator", sample_tip().to_string()),
            ("locator", p.genesis_hash.to_string()),
            ("max", "2000".into()),
            ("hex", hex::encode(req.encode())),
            ("frame", framed(&req.encode())),
        ],
    );

    let req = Request::GetBlocks(vec![p.genesis_hash]);
    print_block(
        "request",
        &[
            ("message", "getblocks".into()),
            ("hash", p.genesis_hash.to_string()),
            ("hex", hex::encode(req.encode())),
            ("frame", framed(&req.encode())),
        ],
    );

    let resp = Response::Status(status.clone());
    let mut f = vec![("message", "status".to_string())];
    f.extend(status_fields(&status));
    f.push(("hex", hex::encode(resp.encode())));
    print_block("response", &f);

    let resp = Response::Headers(vec![p.genesis.header]);
    print_block(
        "response",
        &[
            ("message", "headers".into()),
            ("header", hex::encode(p.genesis.header.to_bytes())),
            ("hex", hex::encode(resp.encode())),
            ("frame", framed(&resp.encode())),
        ],
    );

    let resp = Response::Blocks(vec![p.genesis.clone()]);
    print_block(
        "response",
        &[
            ("message", "blocks".into()),
            ("block", hex::encode(p.genesis.encode())),
            ("hex", hex::encode(resp.encode())),
        ],
    );

    let req = Request::GetBlockTxn { block: sample_tip(), indexes: vec![1, 5, 9] };
    print_block(
        "request",
        &[
            ("message", "getblocktxn".into()),
            ("block", sample_tip().to_string()),
            ("index", "1".into()),
            ("index", "5".into()),
            ("index", "9".into()),
            ("hex", hex::encode(req.encode())),
            ("frame", framed(&req.encode())),
        ],
    );
    let resp = Response::BlockTxn { block: p.genesis_hash, txs: vec![p.genesis.txs[0].clone()] };
    print_block(
        "response",
        &[
            ("message", "blocktxn".into()),
            ("block", p.genesis_hash.to_string()),
            ("tx", hex::encode(p.genesis.txs[0].encode())),
            ("hex", hex::encode(resp.encode())),
        ],
    );
    {
        use quarry::p2p::compact::{CompactBlock, ShortIdKey};
        let (header, nonce, coinbase, txids) = compact_sample();
        let key = ShortIdKey::new(&header, nonce);
        let (k0, k1) = key.keys();
        print_block(
            "short_id",
            &[
                ("header", hex::encode(header.to_bytes())),
                ("nonce", format!("{nonce:016x}")),
                ("k0", format!("{k0:016x}")),
                ("k1", format!("{k1:016x}")),
                ("txid", txids[0].to_string()),
                ("short_id", format!("{:012x}", key.short_id(&txids[0]))),
            ],
        );
        let compact = CompactBlock {
            header,
            nonce,
            short_ids: txids.iter().map(|t| key.short_id(t)).collect(),
            prefilled: vec![(0, coinbase.clone())],
        };
        let mut f = vec![
            ("header", hex::encode(header.to_bytes())),
            ("nonce", format!("{nonce:016x}")),
            ("coinbase", hex::encode(coinbase.encode())),
        ];
        f.extend(txids.iter().map(|t| ("txid", t.to_string())));
        f.push(("hex", hex::encode(compact.encode())));
        print_block("compact_block", &f);
    }

    let resp = Response::Busy;
    print_block(
        "response",
        &[("message", "busy".into()), ("hex", hex::encode(resp.encode())), ("frame", framed(&resp.encode()))],
    );

    for (direction, h) in [
        ("request", "0100000000d1070000"),
        ("request", "04"),
        ("request", "0201000000"),
        ("response", "0300"),
        ("response", "05"),
    ] {
        let bytes = hex::decode(h).unwrap();
        let err = match direction {
            "request" => Request::decode(&bytes).unwrap_err().to_string(),
            _ => Response::decode(&bytes, p.max_block_size).unwrap_err().to_string(),
        };
        print_block("bad_message", &[("direction", direction.into()), ("hex", h.into()), ("error", err)]);
    }

    for data in [b"hello".to_vec(), p.genesis.encode()] {
        print_block(
            "message_id",
            &[("data", hex::encode(&data)), ("id", hex::encode(wire::message_id(&data)))],
        );
    }

    let key = libp2p::identity::Keypair::ed25519_from_bytes(seed(1)).unwrap();
    print_block(
        "node_key",
        &[
            ("seed", hex::encode(seed(1))),
            ("file", hex::encode(key.to_protobuf_encoding().unwrap())),
            ("peer_id", key.public().to_peer_id().to_string()),
        ],
    );

    for n in Network::ALL {
        print_block(
            "wire_names",
            &[
                ("network", n.to_string()),
                ("blocks_topic", Topic::Blocks.name(n)),
                ("txs_topic", Topic::Transactions.name(n)),
                ("sync_protocol", wire::sync_protocol(n).to_string()),
                ("kad_protocol", wire::kad_protocol(n).to_string()),
                ("identify_protocol", wire::identify_protocol(n)),
                ("p2p_port", n.default_p2p_port().to_string()),
            ],
        );
    }
    print_block("p2p_constants", &p2p_constants());
}
