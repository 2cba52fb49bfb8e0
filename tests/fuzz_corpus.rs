//! The fuzz corpora as ordinary tests on the stable toolchain: every file of
//! `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` runs through the body the fuzz
//! target runs ([`quarry::fuzzing::TARGETS`]), so a crash found once stays fixed. The
//! allocator is the fuzz targets' own: a single allocation above
//! [`quarry::fuzzing::MAX_ALLOCATION`] aborts this test binary too.
//!
//! The seed corpora are written by the ignored test `write_seed_corpus` from the test
//! vectors, the testnet files and a few hand-made values:
//! `cargo test --test suite -- --ignored fuzz_corpus::write_seed_corpus`.

use quarry::fuzzing::{BoundedAlloc, TARGETS};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[global_allocator]
static ALLOC: BoundedAlloc = BoundedAlloc;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// The files of `dir` (none if it does not exist), sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut v: Vec<PathBuf> =
        entries.map(|e| e.unwrap().path()).filter(|p| p.is_file() && !is_readme(p)).collect();
    v.sort();
    v
}

fn is_readme(p: &Path) -> bool {
    p.file_name().is_some_and(|n| n == "README.md")
}

fn subdirs(dir: &Path) -> BTreeSet<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return BTreeSet::new() };
    entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn every_corpus_and_regression_input_runs_clean() {
    let mut failures = Vec::new();
    let mut total = 0;
    for (name, body) in TARGETS {
        let corpus = files(&root().join("fuzz/corpus").join(name));
        assert!(!corpus.is_empty(), "fuzz target {name} has no seed corpus in fuzz/corpus/{name}");
        let regressions = files(&root().join("fuzz/regressions").join(name));
        for path in corpus.iter().chain(&regressions) {
            let data = std::fs::read(path).unwrap();
            // Named before it runs: an allocation past the bound aborts the process.
            eprintln!("{name}: {}", path.display());
            total += 1;
            if let Err(panic) = std::panic::catch_unwind(|| body(&data)) {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{name} {}: {why}", path.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {total} inputs failed:\n{}", failures.len(), failures.join("\n"));
}

/// Corpus directories, fuzz binaries and [`TARGETS`] name the same targets, and each fuzz
/// binary is the one-line call of its body.
#[test]
fn fuzz_targets_corpora_and_bodies_agree() {
    let names: BTreeSet<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(subdirs(&root().join("fuzz/corpus")), names, "fuzz/corpus/* against fuzzing::TARGETS");
    let regressions = subdirs(&root().join("fuzz/regressions"));
    assert!(regressions.is_subset(&names), "fuzz/regressions/* without a target: {regressions:?}");
    let manifest = std::fs::read_to_string(root().join("fuzz/Cargo.toml")).unwrap();
    for name in &names {
        assert!(manifest.contains(&format!("name = \"{name}\"")), "fuzz/Cargo.toml has no [[bin]] {name}");
        let src = std::fs::read_to_string(root().join(format!("fuzz/fuzz_targets/{name}.rs"))).unwrap();
        assert!(
            src.contains(&format!("quarry::fuzzing::{name}(data)")),
            "fuzz_targets/{name}.rs calls another body"
        );
    }
    let script = std::fs::read_to_string(root().join("scripts/fuzz")).unwrap();
    assert!(
        script.contains("fuzz/Cargo.toml") || script.contains("fuzz list"),
        "scripts/fuzz finds the targets"
    );
}

/// Writes the seed corpora (run by hand: `cargo test --test suite -- --ignored
/// fuzz_corpus::write_seed_corpus`; the files are committed).
#[test]
#[ignore]
fn write_seed_corpus() {
    seeds::write_all(&root());
}

mod seeds {
    use quarry::consensus::Network;
    use quarry::p2p::wire::{Request, Response, Status};
    use quarry::primitives::{
        Address, AddressKind, Amount, Block, Hash256, MerkleProof, OutPoint, Script, Transaction, TxOut,
        TxProof, U256,
    };
    use quarry::wallet::keystore::{LockedRecord, MultisigRecord, Wallet};
    use quarry::wallet::multisig::{escrow, Psbt};
    use quarry::wallet::ops::Utxo;
    use std::collections::HashMap;
    use std::path::Path;

    struct Out<'a> {
        root: &'a Path,
    }

    impl Out<'_> {
        fn put(&self, target: &str, name: &str, data: &[u8]) {
            let dir = self.root.join("fuzz/corpus").join(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), data).unwrap();
        }
    }

    /// The blocks of the test vectors (tests/vectors/blocks), with the outputs they spend.
    fn vector_blocks(root: &Path) -> Vec<(String, Vec<u8>, HashMap<OutPoint, Script>)> {
        let mut out = Vec::new();
        let mut paths: Vec<_> = std::fs::read_dir(root.join("tests/vectors/blocks"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        for p in paths {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            let Some(hex) = v["block"].as_str() else { continue };
            let bytes = hex::decode(hex).unwrap();
            if bytes.len() > 16 * 1024 {
                continue;
            }
            let mut spent = HashMap::new();
            for u in v["utxos"].as_array().into_iter().flatten() {
                let op = OutPoint {
                    txid: u["txid"].as_str().unwrap().parse().unwrap(),
                    index: u["index"].as_u64().unwrap() as u32,
                };
                spent.insert(op, Script(hex::decode(u["lock"].as_str().unwrap()).unwrap()));
            }
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            out.push((name, bytes, spent));
        }
        out
    }

    pub fn write_all(root: &Path) {
        let out = Out { root };
        let blocks = vector_blocks(root);
        let mut some_txs: Vec<Transaction> = Vec::new();
        let mut small_block: Option<Block> = None;
        for (name, bytes, spent) in &blocks {
            let mut spent = spent.clone();
            out.put("block", name, bytes);
            if bytes.len() >= 80 {
                out.put("header", name, &bytes[..80]);
            }
            let mut gossip = vec![0u8];
            gossip.extend_from_slice(bytes);
            out.put("gossip", &format!("block-{name}"), &gossip);
            let Ok(block) = Block::decode(bytes, 4_000_000) else { continue };
            if !matches!(&small_block, Some(b) if b.encoded_size() <= block.encoded_size()) {
                small_block = Some(block.clone());
            }
            let txids = block.txids();
            for (i, tx) in block.txs.iter().enumerate() {
                out.put("tx", &format!("{name}-{i}"), &tx.encode());
                if i < 2 {
                    let mut g = vec![1u8];
                    g.extend_from_slice(&tx.encode());
                    out.put("gossip", &format!("tx-{name}-{i}"), &g);
                }
                if some_txs.len() < 6 && i > 0 {
                    some_txs.push(tx.clone());
                }
                for (j, o) in tx.outputs.iter().enumerate() {
                    spent.insert(OutPoint { txid: txids[i], index: j as u32 }, o.lock.clone());
                }
                if let Some(proof) = MerkleProof::build(&txids, i) {
                    let p = TxProof { header: block.header, txid: txids[i], proof };
                    out.put("txproof", &format!("{name}-{i}"), &p.encode());
                }
            }
            for (i, tx) in block.txs.iter().enumerate().skip(1) {
                for (k, input) in tx.inputs.iter().enumerate() {
                    let Some(lock) = spent.get(&input.prevout) else { continue };
                    let mut s = tx.lock_time.to_le_bytes().to_vec();
                    s.extend_from_slice(&(input.unlock.len() as u16).to_le_bytes());
                    s.extend_from_slice(&input.unlock.0);
                    s.extend_from_slice(&lock.0);
                    out.put("script", &format!("{name}-{i}-{k}"), &s);
                }
            }
        }
        let genesis = "0100000000000000000000000000000000000000000000000000000000000000\
                       000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa\
                       4b1e5e4a29ab5f49ffff001d1dac2b7c";
        out.put("header", "bitcoin-genesis", &hex::decode(genesis).unwrap());

        // Wire.
        let h = Hash256([7; 32]);
        let status = Status {
            version: 1,
            genesis: Hash256([1; 32]),
            tip: h,
            height: 42,
            chain_work: U256::from_le_bytes(&[3; 32]),
        };
        out.put("wire_request", "status", &Request::Status(status.clone()).encode());
        out.put(
            "wire_request",
            "getheaders",
            &Request::GetHeaders { locator: vec![h, Hash256::ZERO], max: 2000 }.encode(),
        );
        out.put("wire_request", "getblocks", &Request::GetBlocks(vec![h; 3]).encode());
        let get = Request::GetHeaders { locator: vec![h], max: 10 }.encode();
        let mut frame = (get.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&get);
        out.put("wire_request", "framed-getheaders", &frame);
        out.put("wire_response", "status", &Response::Status(status).encode());
        out.put("wire_response", "busy", &Response::Busy.encode());
        let small = small_block.expect("a vector block decodes");
        out.put("wire_response", "headers", &Response::Headers(vec![small.header; 3]).encode());
        out.put("wire_response", "blocks", &Response::Blocks(vec![small.clone()]).encode());

        // Addresses and amounts.
        for network in Network::ALL {
            for (kind, k) in [(AddressKind::P2pkh, "p2pkh"), (AddressKind::P2sh, "p2sh")] {
                let a = Address { hrp: network.address_hrp(), kind, hash: [0x5a; 32] };
                out.put("address", &format!("{}-{k}", network.name()), a.encode().as_bytes());
            }
        }
        out.put(
            "address",
            "upper",
            Address { hrp: "qrt", kind: AddressKind::P2pkh, hash: [1; 32] }
                .encode()
                .to_uppercase()
                .as_bytes(),
        );
        for (i, a) in [
            "1",
            "0.00000001",
            "21000000",
            "12.5",
            ".5",
            "1e-6",
            "50.0",
            "\"3.5\"",
            "20999999.99999999",
            "5E+1",
        ]
        .iter()
        .enumerate()
        {
            out.put("amount", &format!("a{i}"), a.as_bytes());
        }

        // RPC parameters.
        let addr = Address { hrp: "qrt", kind: AddressKind::P2pkh, hash: [9; 32] }.encode();
        let txid = "433286db32df3e82bcb29e3297c54110cac99e0ead1464ba8492ac3634157aee";
        let calls = [
            "getblockhash\n[1]".to_string(),
            "getblockhash\n-1".to_string(),
            format!("getblock\n{{\"blockhash\":\"{txid}\",\"verbosity\":2}}"),
            format!("getrawtransaction\n[\"{txid}\", true]"),
            format!("gettxout\n[\"{txid}\", 0, false]"),
            format!("createrawtransaction\n[[{{\"txid\":\"{txid}\",\"vout\":1}}],{{\"{addr}\":1.5,\"data\":\"00ff\"}},7]"),
            format!("getaddressutxos\n{{\"addresses\":[\"{addr}\"]}}"),
            format!("generatetoaddress\n[3, \"{addr}\"]"),
            format!("sendrawtransaction\n[\"{}\"]", hex::encode(some_txs[0].encode())),
            "setban\n[\"12D3KooWPeer\", \"add\", 60]".to_string(),
            "addnode\n[\"/ip4/127.0.0.1/tcp/1\", \"onetry\"]".to_string(),
            format!("gettxoutproof\n[[\"{txid}\"]]"),
        ];
        for (i, c) in calls.iter().enumerate() {
            out.put("rpc_params", &format!("call{i}"), c.as_bytes());
        }

        // mempool.dat.
        let entries: Vec<(u64, &Transaction)> =
            some_txs.iter().enumerate().map(|(i, t)| (1_700_000_000 + i as u64, t)).collect();
        out.put("mempool_file", "some", &quarry::mempool::persist::encode(entries.into_iter()));
        out.put(
            "mempool_file",
            "empty",
            &quarry::mempool::persist::encode(std::iter::empty::<(u64, &Transaction)>()),
        );

        // banned.json.
        out.put("banned_json", "two", br#"{"bans": {"12D3KooWA": {"until": 2000000, "reason": "invalid block"}, "12D3KooWB": {"until": 5, "reason": "expired"}}}"#);
        out.put("banned_json", "bad-entry", br#"{"bans": {"a": {"until": "soon", "reason": "x"}, "b": {"reason": "no end"}, "": {"until": 9999999, "reason": "empty id"}}}"#);

        // Stratum lines: a miner's requests, a pool's notifications and replies, and bad lines.
        let prev = "00000000".repeat(8);
        let notify = format!(
            r#"{{"id":null,"method":"mining.notify","params":["1a","{prev}","01000000","ffffffff",["{}"],"00000001","1e0ffff0","65000000",true]}}"#,
            "ab".repeat(32)
        );
        out.put("stratum_line", "notify", notify.as_bytes());
        out.put(
            "stratum_line",
            "subscribe",
            br#"{"id":1,"method":"mining.subscribe","params":["quarry/0.1"]}"#,
        );
        out.put(
            "stratum_line",
            "authorize",
            br#"{"id":2,"method":"mining.authorize","params":["alice.rig","x"]}"#,
        );
        out.put(
            "stratum_line",
            "submit",
            br#"{"id":3,"method":"mining.submit","params":["alice.rig","1a","00000001","65000000","deadbeef"]}"#,
        );
        out.put(
            "stratum_line",
            "subscribe-result",
            br#"{"id":1,"result":[[["mining.notify","1"]],"0a0b0c0d",4],"error":null}"#,
        );
        out.put(
            "stratum_line",
            "set-difficulty",
            br#"{"id":null,"method":"mining.set_difficulty","params":[0.0001]}"#,
        );
        out.put("stratum_line", "not-json", b"{not json");
        out.put("stratum_line", "params-object", br#"{"id":4,"method":"mining.submit","params":{"a":1}}"#);
        out.put(
            "stratum_line",
            "too-long",
            format!(r#"{{"id":5,"method":"{}"}}"#, "x".repeat(17_000)).as_bytes(),
        );

        // quarry.toml, topologies, scenarios.
        out.put(
            "config_file",
            "full",
            br#"rpc_bind = "127.0.0.1:18443"
rpc_user = "u"
rpc_password = "p"
rpc_server_timeout = 30
mine = true
miner_address = "qrt1xyz"
mine_threads = 2
listen = ["/ip4/0.0.0.0/tcp/18444"]
p2p_port = 18444
bootnodes = ["/ip4/127.0.0.1/tcp/18445"]
mdns = false
max_peers = 16
no_p2p = false
dbcache = 64
txindex = true
addressindex = false
"#,
        );
        for (dir, target) in [("testnet/topologies", "topology_file"), ("testnet/scenarios", "scenario_file")]
        {
            for e in std::fs::read_dir(root.join(dir)).unwrap() {
                let p = e.unwrap().path();
                out.put(target, &p.file_name().unwrap().to_string_lossy(), &std::fs::read(&p).unwrap());
            }
        }

        // Wallet files and a partially signed escrow spend.
        let dir = tempfile::tempdir().unwrap();
        let wallets: Vec<Wallet> = (1..=3u8)
            .map(|i| {
                Wallet::create(&dir.path().join(format!("w{i}.json")), Network::Regtest, Some([i; 32]), None)
                    .unwrap()
            })
            .collect();
        let keys: Vec<[u8; 32]> = wallets.iter().map(|w| w.key(0).verifying_key().to_bytes()).collect();
        let (redeem, address) = escrow("qrt", 2, &keys).unwrap();
        let rec = MultisigRecord {
            threshold: 2,
            pubkeys: keys,
            redeem_script_hex: hex::encode(&redeem.0),
            address: address.encode(),
        };
        let mut w1 = Wallet::open(&dir.path().join("w1.json"), Network::Regtest, None).unwrap();
        w1.add_multisig(rec.clone()).unwrap();
        w1.add_locked(LockedRecord {
            height: 100,
            key_index: 0,
            redeem_script_hex: "64b175".into(),
            address: "qrt1locked".into(),
        })
        .unwrap();
        out.put("wallet_file", "plain", &std::fs::read(dir.path().join("w2.json")).unwrap());
        out.put("wallet_file", "with-records", &std::fs::read(dir.path().join("w1.json")).unwrap());
        Wallet::create(&dir.path().join("enc.json"), Network::Dev, Some([4; 32]), Some("pass")).unwrap();
        out.put("wallet_file", "encrypted-dev", &std::fs::read(dir.path().join("enc.json")).unwrap());

        let coins: Vec<Utxo> = (1..=2u8)
            .map(|i| Utxo {
                outpoint: OutPoint { txid: Hash256([i; 32]), index: 0 },
                out: TxOut {
                    value: Amount::from_sat(500_000_000).unwrap(),
                    lock: quarry::script::templates::p2sh(&redeem),
                },
                height: 1,
                coinbase: false,
                address: rec.address.clone(),
                spent_in_mempool: false,
            })
            .collect();
        let to = wallets[0].address(1);
        let mut p =
            Psbt::create("regtest", &rec, &coins, &to, Amount::from_sat(100_000_000).unwrap(), 1000).unwrap();
        out.put("psbt_file", "unsigned", serde_json::to_string_pretty(&p).unwrap().as_bytes());
        p.sign(&wallets[0]).unwrap();
        out.put("psbt_file", "one-signature", serde_json::to_string_pretty(&p).unwrap().as_bytes());
        p.sign(&wallets[2]).unwrap();
        assert!(p.finalize("regtest").is_ok());
        out.put("psbt_file", "two-signatures", serde_json::to_string_pretty(&p).unwrap().as_bytes());
    }
}
