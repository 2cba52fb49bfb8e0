//! `quarry wallet` against a real regtest node process: sending between two wallets with exact
//! balances, proof checks, and bad input that must change nothing.

use crate::common;
use common::{free_port, Node};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};

struct W<'a> {
    node: &'a Node,
    file: std::path::PathBuf,
    pass: Option<&'a str>,
}

impl W<'_> {
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_quarry"));
        cmd.args(["wallet", "--network", "regtest", "--datadir"])
            .arg(&self.node.datadir)
            .arg("--wallet")
            .arg(&self.file)
            .arg("--rpc-connect")
            .arg(self.node.addr.to_string())
            .env_remove("QUARRY_WALLET_PASSPHRASE");
        if let Some(p) = self.pass {
            cmd.args(["--passphrase", p]);
        }
        cmd.args(args).output().unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.run(&a);
        assert!(out.status.success(), "wallet {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Runs a command that must fail; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "wallet {args:?} should fail");
        String::from_utf8_lossy(&out.stderr).to_string()
    }
}

fn coins(v: &Value) -> f64 {
    v.as_str().unwrap().parse().unwrap()
}

fn sat(v: &Value) -> u64 {
    (coins(v) * 1e8).round() as u64
}

fn file_bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

#[test]
fn send_between_two_wallets_adds_up_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), "regtest", Some(free_port()), &["--mine-threads", "1"]);
    let a = W { node: &node, file: dir.path().join("a.json"), pass: None };
    let b = W { node: &node, file: dir.path().join("b.json"), pass: Some("correct horse") };
    let a0 = a.json(&["create"])["address"].as_str().unwrap().to_string();
    let b0 = b.json(&["create", "--encrypt"])["address"].as_str().unwrap().to_string();
    node.rpc("generatetoaddress", json!([11, a0]));
    let before = a.json(&["balance"]);
    assert_eq!(sat(&before["confirmed"]) + sat(&before["immature"]), 11 * 50 * 100_000_000);
    assert_eq!(sat(&before["confirmed"]), 2 * 50 * 100_000_000, "coinbases of heights 1-2 are mature at 12");

    let sent = a.json(&["send", &b0, "12.5", "--fee-rate", "2000"]);
    let fee = sat(&sent["fee"]);
    assert!(fee > 0 && fee < 10_000, "fee {fee}");
    assert_eq!(b.json(&["balance"])["unconfirmed"], json!("12.50000000"));
    node.rpc("generatetoaddress", json!([1, common::address(quarry::consensus::Network::Regtest, 9)]));
    let bb = b.json(&["balance"]);
    assert_eq!(sat(&bb["confirmed"]), 1_250_000_000);
    let ab = a.json(&["balance"]);
    let total_a = sat(&ab["confirmed"]) + sat(&ab["immature"]) + sat(&ab["unconfirmed"]);
    assert_eq!(total_a, 11 * 5_000_000_000 - 1_250_000_000 - fee, "change and fee add up exactly");
    // The change went to a fresh address of A's.
    assert_eq!(a.json(&["list-addresses"]).as_array().unwrap().len(), 2);
    // History: B received once; A's payment shows amount plus fee going out.
    let hb = b.json(&["history"]);
    assert_eq!(hb.as_array().unwrap().len(), 1);
    assert_eq!(hb[0]["net"], json!("+12.50000000"));
    let ha = a.json(&["history"]);
    assert_eq!(ha.as_array().unwrap().len(), 12, "11 coinbases and the payment");
    let pay = ha.as_array().unwrap().iter().find(|e| e["txid"] == sent["txid"]).unwrap();
    assert_eq!(sat(&json!(pay["net"].as_str().unwrap().trim_start_matches('-'))), 1_250_000_000 + fee);

    // verify-tx checks the proof locally.
    let txid = sent["txid"].as_str().unwrap();
    let v = a.json(&["verify-tx", txid]);
    assert_eq!(v["verified"], json!(true));
    assert_eq!(v["confirmations"], json!(1));

    // Bad input: a clear error, nothing broadcast, the wallet file unchanged.
    let before_file = file_bytes(&a.file);
    let mempool = || node.rpc("getrawmempool", json!([])).as_array().unwrap().len();
    let dev_addr = common::address(quarry::consensus::Network::Dev, 1);
    assert!(a.fails(&["send", &dev_addr, "1"]).contains("network prefix"));
    let mut typo: Vec<char> = b0.chars().collect();
    let i = typo.len() - 2;
    typo[i] = if typo[i] == 'q' { 'p' } else { 'q' };
    let typo: String = typo.into_iter().collect();
    assert!(a.fails(&["send", &typo, "1"]).contains("checksum"));
    assert!(a.fails(&["send", &b0, "-1"]).contains("invalid amount"));
    assert!(a.fails(&["send", &b0, "1.123456789"]).contains("8 decimal"));
    assert!(a.fails(&["send", &b0, "99999999"]).contains("exceeds the maximum"));
    assert!(a.fails(&["send", &b0, "5000"]).contains("insufficient funds"));
    assert!(a.fails(&["send", &b0, "1", "--fee-rate", "10"]).contains("below the node's minimum"));
    assert_eq!(mempool(), 0, "nothing broadcast");
    assert_eq!(file_bytes(&a.file), before_file, "wallet file unchanged");

    // Wrong passphrase / none for an encrypted wallet; corrupt file.
    let b_bytes = file_bytes(&b.file);
    let wrong = W { node: &node, file: b.file.clone(), pass: Some("wrong") };
    assert!(wrong.fails(&["balance"]).contains("wrong passphrase"));
    let none = W { node: &node, file: b.file.clone(), pass: None };
    assert!(none.fails(&["balance"]).contains("encrypted"));
    assert_eq!(file_bytes(&b.file), b_bytes);
    let corrupt = dir.path().join("corrupt.json");
    std::fs::write(&corrupt, b"{ not a wallet").unwrap();
    let c = W { node: &node, file: corrupt.clone(), pass: None };
    assert!(c.fails(&["balance"]).contains("corrupt"));
    assert_eq!(std::fs::read(&corrupt).unwrap(), b"{ not a wallet");
    node.stop();
}

#[test]
fn two_of_three_escrow_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), "regtest", Some(free_port()), &["--mine-threads", "1"]);
    let w = |name: &str| W { node: &node, file: dir.path().join(format!("{name}.json")), pass: None };
    let (a, b, c, d) = (w("a"), w("b"), w("c"), w("d"));
    let mut pk = Vec::new();
    for x in [&a, &b, &c, &d] {
        x.json(&["create"]);
        pk.push(x.json(&["list-addresses"])[0]["public_key"].as_str().unwrap().to_string());
    }
    let a0 = a.json(&["list-addresses"])[0]["address"].as_str().unwrap().to_string();
    node.rpc("generatetoaddress", json!([12, a0]));
    let esc = a.json(&["multisig", "create", "2", &pk[0], &pk[1], &pk[2]]);
    assert_eq!(esc["remembered"], json!(true));
    assert_eq!(b.json(&["multisig", "create", "2", &pk[0], &pk[1], &pk[2]])["remembered"], json!(true));
    assert_eq!(d.json(&["multisig", "create", "2", &pk[0], &pk[1], &pk[2]])["remembered"], json!(false));
    let escrow = esc["address"].as_str().unwrap().to_string();
    let decoded = quarry::primitives::Address::decode(&escrow, "qrt").unwrap();
    assert_eq!(decoded.kind, quarry::primitives::AddressKind::P2sh);
    // Funding the escrow is a plain send.
    a.json(&["send", &escrow, "10"]);
    node.rpc("generatetoaddress", json!([1, a0]));
    let d0 = d.json(&["list-addresses"])[0]["address"].as_str().unwrap().to_string();
    let file = dir.path().join("spend.psbt");
    let f = file.to_str().unwrap();
    a.json(&["multisig", "spend", &escrow, &d0, "4", "--out", f]);
    // Without --yes the cosigner only sees what the spend pays (exit 0, nothing signed).
    let unsigned = std::fs::read(&file).unwrap();
    let review = a.run(&["multisig", "sign", f]);
    let text = String::from_utf8_lossy(&review.stdout);
    assert!(review.status.success(), "{text}");
    assert!(text.contains(&format!("pays 4.00000000 to {d0}")) && text.contains("--yes"), "{text}");
    assert!(text.contains("0 of 2 signatures"), "{text}");
    let review = a.json(&["multisig", "sign", f]);
    assert_eq!(review["signed"], json!(false), "{review}");
    assert_eq!(std::fs::read(&file).unwrap(), unsigned, "nothing signed without --yes");
    assert_eq!(a.json(&["multisig", "sign", f, "--yes"])["signatures"], json!(1));
    // A tampered file (an output redirected) is caught: signatures no longer verify.
    let honest = std::fs::read_to_string(&file).unwrap();
    // One signature is not enough; the same wallet cannot sign twice; a fourth key cannot sign.
    let below = a.fails(&["multisig", "finalize", f]);
    assert!(below.contains("1 of 2 required signatures") && !below.contains("malformed"), "{below}");
    let twice = a.fails(&["multisig", "sign", f, "--yes"]);
    assert!(twice.contains("already signed") && !twice.contains("malformed"), "{twice}");
    assert!(d.fails(&["multisig", "sign", f, "--yes"]).contains("none of the escrow's keys"));
    assert_eq!(node.rpc("getrawmempool", json!([])), json!([]), "nothing broadcast");
    let mut tampered: Value = serde_json::from_str(&honest).unwrap();
    let mut tx = quarry::primitives::Transaction::decode(
        &hex::decode(tampered["tx"].as_str().unwrap()).unwrap(),
        1 << 20,
    )
    .unwrap();
    tx.outputs[0].lock = quarry::testkit::p2pkh_lock(&quarry::testkit::key(66));
    tampered["tx"] = json!(hex::encode(tx.encode()));
    let tampered_path = dir.path().join("tampered.psbt");
    std::fs::write(&tampered_path, tampered.to_string()).unwrap();
    let t = tampered_path.to_str().unwrap();
    assert!(
        b.json(&["multisig", "sign", t, "--yes"])["signatures"] == json!(1),
        "A's signature no longer counts"
    );
    assert!(c.fails(&["multisig", "finalize", t]).contains("1 of 2 required"));
    assert_eq!(b.json(&["multisig", "sign", f, "--yes"])["signatures"], json!(2));
    let txid = c.json(&["multisig", "finalize", f])["txid"].as_str().unwrap().to_string();
    node.rpc("generatetoaddress", json!([1, a0]));
    assert_eq!(d.json(&["balance"])["confirmed"], json!("4.00000000"));
    let v = d.json(&["verify-tx", &txid]);
    assert_eq!(v["verified"], json!(true));
    // The change went back to the escrow.
    let left = node.rpc("getaddressutxos", json!([escrow]));
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert!(
        left[0]["satoshis"].as_u64().unwrap() < 600_000_000
            && left[0]["satoshis"].as_u64().unwrap() > 599_000_000
    );
    node.stop();
}

#[test]
fn height_locked_payment_is_refused_early_and_spendable_after() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), "regtest", Some(free_port()), &["--mine-threads", "1"]);
    let a = W { node: &node, file: dir.path().join("a.json"), pass: None };
    let a0 = a.json(&["create"])["address"].as_str().unwrap().to_string();
    node.rpc("generatetoaddress", json!([12, a0]));
    let me = a.json(&["new-address"])["address"].as_str().unwrap().to_string();
    let tip = node.rpc("getblockcount", json!([])).as_u64().unwrap();
    let unlock_height = tip + 5;
    let sent = a.json(&["send", &me, "3", "--lock-until", &unlock_height.to_string()]);
    assert_eq!(sent["locked_until"]["height"], json!(unlock_height));
    node.rpc("generatetoaddress", json!([1, a0]));
    assert_eq!(a.json(&["balance"])["locked"], json!("3.00000000"));
    let coin = format!("{}:0", sent["txid"].as_str().unwrap());
    // Too early: the node refuses it and names the rule.
    let err = a.fails(&["unlock", &coin, &me]);
    assert!(err.contains("lock time"), "{err}");
    assert_eq!(node.rpc("getrawmempool", json!([])), json!([]));
    // Once the next block may have the lock height, the spend is accepted and mined.
    let now = node.rpc("getblockcount", json!([])).as_u64().unwrap();
    node.rpc("generatetoaddress", json!([unlock_height - 1 - now, a0]));
    let txid = a.json(&["unlock", &coin, &me])["txid"].as_str().unwrap().to_string();
    node.rpc("generatetoaddress", json!([1, a0]));
    let tx = node.rpc("getrawtransaction", json!([txid, true]));
    assert_eq!(tx["confirmations"], json!(1));
    assert_eq!(tx["locktime"], json!(unlock_height));
    assert_eq!(a.json(&["balance"])["locked"], json!("0.00000000"));
    node.stop();
}

#[test]
fn send_wait_returns_once_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), "regtest", Some(free_port()), &["--mine-threads", "1"]);
    let a = W { node: &node, file: dir.path().join("a.json"), pass: None };
    let a0 = a.json(&["create"])["address"].as_str().unwrap().to_string();
    node.rpc("generatetoaddress", json!([12, a0]));
    let b0 = common::address(quarry::consensus::Network::Regtest, 7);
    // Mine a block once the send is in the mempool; `--wait 1` must return only after it.
    let config = node.config();
    let miner = std::thread::spawn(move || {
        use quarry::rpc::api::QuarryApiClient;
        let c = quarry::rpc::client::BlockingClient::new(&config).unwrap();
        common::wait_for(
            30,
            "the send in the mempool",
            || matches!(c.wait(c.getrawmempool(None)).unwrap(), quarry::rpc::types::GetRawMempool::Txids(t) if !t.is_empty()),
        );
        c.wait(c.generatetoaddress(1, a0)).unwrap();
    });
    let sent = a.json(&["send", &b0, "1", "--wait", "1"]);
    miner.join().unwrap();
    let tx = node.rpc("getrawtransaction", json!([sent["txid"], true]));
    assert_eq!(tx["confirmations"], json!(1));
    node.stop();
}
