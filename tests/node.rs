//! A real `quarry node` process on regtest over loopback: mining with generatetoaddress, a
//! signed spend through sendrawtransaction, the mempool, confirmation, lookups and Merkle
//! proofs, bad input, authentication, graceful stop and mempool persistence across restart.

use quarry::consensus::Network;
use quarry::primitives::{Amount, Hash256, OutPoint, Script, Transaction, TxOut};
use quarry::rpc::api::QuarryApiClient;
use quarry::rpc::client::{BlockingClient, RpcConfig, RpcError};
use quarry::rpc::types::AddressQuery;
use quarry::testkit::{key, p2pkh_lock, spend_p2pkh};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

use crate::common;
use common::{free_port, Node};

fn address(i: u8) -> String {
    common::address(Network::Regtest, i)
}

/// A regtest node with two miner threads, RPC on `port` (None: the default bind).
fn start(dir: &Path, port: Option<u16>) -> Node {
    Node::start(dir, "regtest", port, &["--mine-threads", "2"])
}

fn spend_utxo(node: &Node, from: u8, to: u8, fee: u64) -> Transaction {
    let c = node.client();
    let utxos = c.wait(c.getaddressutxos(AddressQuery::One(address(from)))).unwrap();
    let u = utxos
        .into_iter()
        .find(|u| u.spent_in_mempool.is_none() && u.coinbase && u.height <= 2)
        .expect("a mature coinbase utxo");
    let op = OutPoint { txid: u.txid, index: u.output_index };
    let value = Amount::from_sat(u.satoshis).unwrap();
    let lock = Script(hex::decode(&u.script).unwrap());
    let out = TxOut { value: Amount::from_sat(value.to_sat() - fee).unwrap(), lock: p2pkh_lock(&key(to)) };
    spend_p2pkh(&key(from), &[(op, TxOut { value, lock })], vec![out], 0)
}

#[test]
fn a_node_mines_accepts_a_spend_confirms_it_and_proves_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let node = start(dir.path(), Some(port));
    assert_eq!(node.rpc("getblockcount", json!([])), json!(0));
    let hashes = node.rpc("generatetoaddress", json!([11, address(1)]));
    assert_eq!(hashes.as_array().unwrap().len(), 11);
    assert_eq!(node.rpc("getblockcount", json!([])), json!(11));
    assert_eq!(node.rpc("getbestblockhash", json!([])), hashes[10]);

    let tx = spend_utxo(&node, 1, 2, 10_000);
    let txid = node.rpc("sendrawtransaction", json!([hex::encode(tx.encode())]));
    assert_eq!(txid, json!(tx.txid().to_string()));
    assert_eq!(node.rpc("getrawmempool", json!([])), json!([tx.txid().to_string()]));
    assert_eq!(node.rpc("getmempoolinfo", json!([]))["size"], json!(1));

    // Mined blocks include pending transactions.
    let mined = node.rpc("generatetoaddress", json!([1, address(1)]));
    assert_eq!(node.rpc("getrawmempool", json!([])), json!([]));
    let block = node.rpc("getblock", json!([mined[0], 1]));
    assert!(block["tx"].as_array().unwrap().contains(&txid));
    let got = node.rpc("getrawtransaction", json!([txid, true]));
    assert_eq!(got["blockhash"], mined[0]);
    assert_eq!(got["confirmations"], json!(1));
    assert_eq!(got["vout"][0]["scriptPubKey"]["address"], json!(address(2)));
    assert_eq!(node.rpc("getrawtransaction", json!([txid])), json!(hex::encode(tx.encode())));
    let proof = node.rpc("gettxoutproof", json!([[txid]]));
    assert_eq!(node.rpc("verifytxoutproof", json!([proof])), json!([txid]));
    let out = node.rpc("gettxout", json!([txid, 0]));
    assert_eq!(out["confirmations"], json!(1));
    assert_eq!(node.rpc("getaddressutxos", json!([address(2)])).as_array().unwrap().len(), 1);

    // Bad input: each a JSON-RPC error, the node keeps serving, nothing changes.
    let tip = node.rpc("getbestblockhash", json!([]));
    assert_eq!(node.rpc_err("sendrawtransaction", json!(["zz"]))["code"], json!(-22));
    assert_eq!(node.rpc_err("sendrawtransaction", json!([hex::encode(tx.encode())]))["code"], json!(-27));
    assert_eq!(node.rpc_err("getblock", json!(["00"]))["code"], json!(-8));
    assert_eq!(node.rpc_err("getblockhash", json!([1000]))["code"], json!(-8));
    assert_eq!(node.rpc_err("getblockhash", json!(["x"]))["code"], json!(-32602));
    assert_eq!(node.rpc_err("nosuchmethod", json!([]))["code"], json!(-32601));
    assert_eq!(node.rpc_err("generatetoaddress", json!([1, "qdev1notanaddress"]))["code"], json!(-5));
    let (_, body) = common::post(node.addr, Some(&node.cookie()), "{not json").unwrap();
    assert!(body.contains("-32700"), "parse error: {body}");
    let mut bad = spend_utxo(&node, 1, 3, 10_000);
    bad.outputs[0].value = Amount::from_sat(bad.outputs[0].value.to_sat() + 1).unwrap(); // breaks the signature
    let e = node.rpc_err("sendrawtransaction", json!([hex::encode(bad.encode())]));
    assert_eq!(e["code"], json!(-26), "rejections are -26 like Core");
    assert!(e["message"].as_str().unwrap().contains("script failed"), "{e}");
    assert_eq!(node.rpc("getbestblockhash", json!([])), tip);
    assert_eq!(node.rpc("getrawmempool", json!([])), json!([]));

    // Authentication: none, or a wrong cookie, is refused with HTTP 401, which the client
    // names as an authentication failure.
    let req = json!({"jsonrpc": "2.0", "id": 1, "method": "getblockcount", "params": []}).to_string();
    assert_eq!(common::post(node.addr, None, &req).unwrap().0, 401);
    let wrong = RpcConfig::new(node.addr, dir.path(), Some(("__cookie__".into(), "wrong".into())));
    let c = BlockingClient::new(&wrong).unwrap();
    let e = c.wait(c.getblockcount()).unwrap_err();
    assert!(matches!(e, RpcError::Unauthorized { .. }), "{e}");
    assert!(e.to_string().contains("authentication failed"), "{e}");

    // A pending transaction survives a restart (mempool.dat).
    let pending = spend_utxo(&node, 1, 4, 20_000);
    node.rpc("sendrawtransaction", json!([hex::encode(pending.encode())]));
    node.stop();
    assert!(dir.path().join("mempool.dat").exists());
    let node = start(dir.path(), Some(port));
    assert_eq!(node.rpc("getblockcount", json!([])), json!(12));
    assert_eq!(node.rpc("getrawmempool", json!([])), json!([pending.txid().to_string()]));

    // sendrawtransactions: one outcome per transaction, in order, each as sendrawtransaction
    // would answer; the bad ones change nothing for the good one.
    let parent = (OutPoint { txid: pending.txid(), index: 0 }, pending.outputs[0].clone());
    let pay = TxOut {
        value: Amount::from_sat(parent.1.value.to_sat() - 10_000).unwrap(),
        lock: p2pkh_lock(&key(5)),
    };
    let good = spend_p2pkh(&key(4), std::slice::from_ref(&parent), vec![pay], 0);
    let mut bad = good.clone();
    bad.outputs[0].value = Amount::from_sat(bad.outputs[0].value.to_sat() - 1).unwrap(); // breaks the signature
    let outcomes = node.rpc(
        "sendrawtransactions",
        json!([[hex::encode(bad.encode()), "zz", hex::encode(good.encode()), hex::encode(good.encode())]]),
    );
    let o = outcomes.as_array().unwrap();
    assert_eq!(o.len(), 4, "{outcomes}");
    assert_eq!(o[0]["error"]["code"], json!(-26), "{outcomes}");
    assert!(o[0]["error"]["message"].as_str().unwrap().contains("script failed"), "{outcomes}");
    assert_eq!(o[1]["error"]["code"], json!(-22), "{outcomes}");
    assert_eq!(o[2], json!({"txid": good.txid().to_string()}));
    assert_eq!(o[3], json!({"txid": good.txid().to_string()}), "already in the mempool: its txid");
    let mut pool: Vec<String> = node
        .rpc("getrawmempool", json!([]))
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().into())
        .collect();
    pool.sort();
    let mut want = vec![pending.txid().to_string(), good.txid().to_string()];
    want.sort();
    assert_eq!(pool, want);
    let too_many: Vec<String> = vec!["00".into(); 1001];
    assert_eq!(node.rpc_err("sendrawtransactions", json!([too_many]))["code"], json!(-8));

    node.stop();
}

#[test]
fn the_rpc_server_listens_on_loopback_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_quarry")).args(["node", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("127.0.0.1:19443"), "{help}");
    // A node started without --rpc-bind answers on 127.0.0.1 at the default port.
    let node = start(dir.path(), None);
    assert_eq!(node.addr.ip().to_string(), "127.0.0.1");
    node.stop();
}

fn quarry(datadir: &Path, port: u16, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_quarry"))
        .arg("rpc")
        .arg("--datadir")
        .arg(datadir)
        .arg("--rpc-connect")
        .arg(format!("127.0.0.1:{port}"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "quarry rpc {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The README walkthrough, with the `quarry` binary only: key, mine, build, sign, send, mine.
#[test]
fn readme_walkthrough_with_quarry_rpc() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let node = start(dir.path(), Some(port));
    let key_out = Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(["key", "new", "--network", "regtest"])
        .output()
        .unwrap();
    let key: Value = serde_json::from_slice(&key_out.stdout).unwrap();
    let (addr, secret) = (key["address"].as_str().unwrap(), key["secret"].as_str().unwrap());
    let d = dir.path();
    quarry(d, port, &["generatetoaddress", "11", addr]);
    let utxos: Value = serde_json::from_str(&quarry(d, port, &["getaddressutxos", addr])).unwrap();
    let first = &utxos[0];
    assert_eq!(first["height"], json!(1));
    let inputs = json!([{"txid": first["txid"], "vout": first["outputIndex"]}]).to_string();
    let outputs = json!({ address(7): 12.5, addr: 37.4999 }).to_string();
    let raw = quarry(d, port, &["createrawtransaction", &inputs, &outputs]);
    let signed: Value = serde_json::from_str(&quarry(
        d,
        port,
        &["signrawtransactionwithkey", &raw, &json!([secret]).to_string()],
    ))
    .unwrap();
    assert_eq!(signed["complete"], json!(true));
    let txid = quarry(d, port, &["sendrawtransaction", signed["hex"].as_str().unwrap()]);
    quarry(d, port, &["generatetoaddress", "1", addr]);
    let tx: Value = serde_json::from_str(&quarry(d, port, &["getrawtransaction", &txid, "true"])).unwrap();
    assert_eq!(tx["confirmations"], json!(1));
    assert_eq!(tx["vout"][0]["value"], json!(12.5));
    // The fee went to the miner: 50 + 0.0001.
    let block: Value =
        serde_json::from_str(&quarry(d, port, &["getblock", tx["blockhash"].as_str().unwrap(), "2"]))
            .unwrap();
    assert_eq!(block["tx"][0]["vout"][0]["value"], json!(50.0001));
    // A wrong-network address is refused with the rule named.
    let bad = Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(["rpc", "--datadir"])
        .arg(d)
        .args([
            "--rpc-connect",
            &format!("127.0.0.1:{port}"),
            "generatetoaddress",
            "1",
            "qdev1qzu2v2mnscdzuxjvrlsmny5vj2d26yss6yahll8hqzhcyuyep3c22svzfy2",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("error code -5"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    node.stop();
}

/// `quarry rpc` argument forms: a negative number is a parameter (the node answers -8, out of
/// range, and the exit status is 8), and `-named` sends NAME=VALUE pairs as an object.
#[test]
fn quarry_rpc_takes_negative_numbers_and_named_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let node = start(dir.path(), Some(port));
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_quarry"))
            .args(["rpc", "--datadir"])
            .arg(dir.path())
            .args(["--rpc-connect", &format!("127.0.0.1:{port}")])
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["getblockhash", "-1"]);
    assert_eq!(out.status.code(), Some(8), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("out of range"));
    assert_eq!(quarry(dir.path(), port, &["--timeout", "30", "getblockhash", "0"]).len(), 64);
    // Named parameters reach the server as an object, which it decodes by Core's names.
    assert_eq!(quarry(dir.path(), port, &["-named", "getblockcount"]), "0");
    let out = run(&["-named", "getblockhash", "height=0"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.trim().trim_matches('"').len() == 64, "{text}");
    let out = run(&["-named", "getblockhash", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NAME=VALUE"));
    node.stop();
}

#[test]
fn mining_node_extends_its_chain_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let addr5 = address(5);
    let mut node = Node::spawn(
        dir.path(),
        "regtest",
        Some(free_port()),
        &["--mine", "--mine-threads", "1", "--miner-address", &addr5],
    );
    node.wait_height(3);
    let info = node.rpc("getmininginfo", json!([]));
    assert_eq!(info["mining"], json!(true));
    let utxos = node.rpc("getaddressutxos", json!([address(5)]));
    assert!(utxos.as_array().unwrap().len() >= 3);
    node.signal("-TERM");
    let exit = node.wait_exit(20);
    assert!(exit.success(), "SIGTERM exits 0, got {exit}");
    assert!(dir.path().join("mempool.dat").exists(), "mempool flushed");
    assert!(!dir.path().join(".cookie").exists());
}

/// kill -9 a mining node mid-run: the restarted node opens at a block boundary and keeps going.
#[test]
fn a_killed_mining_node_restarts_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr6 = address(6);
    let args = ["--mine", "--mine-threads", "1", "--miner-address", addr6.as_str()];
    let mut node = Node::spawn(dir.path(), "regtest", Some(port), &args);
    node.wait_height(20);
    node.child.kill().unwrap(); // SIGKILL
    node.child.wait().unwrap();
    drop(node);
    let node = Node::spawn(dir.path(), "regtest", Some(port), &args);
    let h = node.wait_height(1);
    // The chain reopened at a block boundary: every block up to the tip is there, and the UTXO
    // set holds exactly one coinbase per block (every block pays address 6).
    let info = node.rpc("gettxoutsetinfo", json!([]));
    assert!(info["txouts"].as_u64().unwrap() >= h.min(info["height"].as_u64().unwrap()));
    assert_eq!(info["txouts"], info["height"], "one coinbase output per block");
    // The block the digest was taken at is on the active chain (the miner keeps going).
    let at = node.rpc("getblock", json!([info["bestblock"], 1]));
    assert_eq!(at["height"], info["height"]);
    assert!(at["confirmations"].as_i64().unwrap() >= 1);
    node.wait_height(h + 3);
    node.stop();
}

/// `submitblock` answers BIP 22 strings that name the rule, also for a block that is stored
/// and then fails while connecting (an inflated coinbase is only caught at connect time,
/// when the fees are known), and `getblockchaininfo` reports the best header and sync state.
#[test]
fn submitblock_names_the_rule_a_block_breaks() {
    use quarry::testkit::{assemble, coinbase};
    let d = tempfile::tempdir().unwrap();
    let n = Node::start(d.path(), "regtest", Some(free_port()), &["--no-p2p"]);
    let params = Network::Regtest.params();
    let tip: Hash256 = n.rpc("getbestblockhash", json!([])).as_str().unwrap().parse().unwrap();
    let time = n.rpc("getblockheader", json!([tip.to_string(), true]))["time"].as_u64().unwrap() as u32 + 1;
    let block = |value: u64, height: u32| {
        let cb = coinbase(height, Amount::from_sat(value).unwrap(), p2pkh_lock(&key(9)), b"t");
        hex::encode(assemble(params, tip, time, params.genesis_bits, vec![cb]).encode())
    };
    let subsidy = 50 * 100_000_000;
    let inflated = n.rpc("submitblock", json!([block(subsidy + 1, 1)]));
    let text = inflated.as_str().unwrap_or_default();
    assert!(text.starts_with("invalid: ") && text.contains("coinbase pays 5000000001"), "{inflated}");
    let wrong_height = n.rpc("submitblock", json!([block(subsidy, 7)]));
    assert!(wrong_height.as_str().unwrap_or_default().starts_with("invalid: "), "{wrong_height}");
    assert_eq!(n.rpc("getblockcount", json!([])), json!(0), "neither block connected");
    let good = block(subsidy, 1);
    assert_eq!(n.rpc("submitblock", json!([good])), Value::Null);
    assert_eq!(n.rpc("submitblock", json!([good])), json!("duplicate"));
    assert_eq!(n.rpc_err("submitblock", json!(["zz"]))["code"], json!(-22));
    let info = n.rpc("getblockchaininfo", json!([]));
    assert_eq!((info["blocks"].clone(), info["headers"].clone()), (json!(1), json!(1)), "{info}");
    assert_eq!(info["initialblockdownload"], json!(false));
    assert_eq!(info["verificationprogress"], json!(1.0));
    n.stop();
}

/// createrawtransaction refuses an amount it would have to round (more than 8 decimals, in
/// plain or exponent form), a negative one and one above the money supply, naming the value;
/// exact amounts, also in exponent form, are taken as written.
#[test]
fn createrawtransaction_refuses_over_precise_amounts() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), "regtest", Some(free_port()), &["--mine-threads", "1"]);
    let inputs = json!([{"txid": "11".repeat(32), "vout": 0}]);
    let a = address(1);
    // The request body is written by hand so the numbers reach the node exactly as typed.
    let call = |amount: &str| {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"createrawtransaction","params":[{inputs},{{"{a}":{amount}}}]}}"#
        );
        let (_, resp) = common::post(node.addr, Some(&node.cookie()), &body).unwrap();
        serde_json::from_str::<Value>(&resp).unwrap()
    };
    for (amount, rule) in [
        ("49.123456789", "more than 8 decimal places"),
        ("1e-9", "more than 8 decimal places"),
        ("-1", "negative"),
        ("21000000.00000001", "exceeds the maximum"),
    ] {
        let r = call(amount);
        let msg = r["error"]["message"].as_str().unwrap_or_else(|| panic!("{amount} accepted: {r}"));
        assert!(msg.contains(rule), "{amount}: {msg}");
        assert!(msg.contains(amount), "the error names the amount {amount}: {msg}");
    }
    for (amount, sat) in [("49.12345678", 4_912_345_678u64), ("5E+1", 5_000_000_000), ("1e-6", 100)] {
        let r = call(amount);
        let hex = r["result"].as_str().unwrap_or_else(|| panic!("{amount} refused: {r}"));
        let tx = Transaction::decode(&hex::decode(hex).unwrap(), 1 << 20).unwrap();
        assert_eq!(tx.outputs[0].value.to_sat(), sat, "{amount}");
    }
    node.stop();
}

/// The server takes Core's named parameters (a JSON object) as well as positional ones, and
/// answers JSON-RPC batches; `quarry rpc -named` sends the object form.
#[test]
fn named_parameters_and_batches_are_served() {
    let d = tempfile::tempdir().unwrap();
    let n = Node::start(d.path(), "regtest", Some(free_port()), &["--no-p2p"]);
    let cookie = n.cookie();
    let call = |body: Value| -> Value {
        let (status, resp) = common::post(n.addr, Some(&cookie), &body.to_string()).unwrap();
        assert_eq!(status, 200, "{resp}");
        serde_json::from_str(&resp).unwrap()
    };
    let genesis = n.rpc("getblockhash", json!([0]));
    let named = call(json!({"jsonrpc": "2.0", "id": 1, "method": "getblock",
        "params": {"blockhash": genesis, "verbosity": 2}}));
    assert_eq!(named["result"]["height"], json!(0), "{named}");
    assert!(named["result"]["tx"][0]["vin"].is_array(), "verbosity 2 by name: {named}");
    let wrong = call(json!({"jsonrpc": "2.0", "id": 2, "method": "getblockhash", "params": {"heigth": 0}}));
    assert_eq!(wrong["error"]["code"], json!(-32602), "a misspelt name is refused: {wrong}");
    let batch = call(json!([
        {"jsonrpc": "2.0", "id": 7, "method": "getblockcount", "params": []},
        {"jsonrpc": "2.0", "id": 8, "method": "getbestblockhash", "params": []},
        {"jsonrpc": "2.0", "id": 9, "method": "nosuchmethod", "params": []},
    ]));
    let by_id = |id: u64| batch.as_array().unwrap().iter().find(|r| r["id"] == json!(id)).cloned().unwrap();
    assert_eq!(by_id(7)["result"], json!(0));
    assert_eq!(by_id(8)["result"], genesis);
    assert_eq!(by_id(9)["error"]["code"], json!(-32601));
    let out = Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(["rpc", "--network", "regtest", "--datadir"])
        .arg(d.path())
        .args(["--rpc-connect", &n.addr.to_string(), "-named", "getblockhash", "height=0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim().trim_matches('"'), genesis.as_str().unwrap());
    n.stop();
}

/// A node whose log goes to a file (not a terminal) writes plain text: no ANSI colour codes.
#[test]
fn logs_to_a_file_carry_no_colour_codes() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("node.log");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args([
            "node",
            "--network",
            "regtest",
            "--no-p2p",
            "--rpc-bind",
            &format!("127.0.0.1:{port}"),
            "--datadir",
        ])
        .arg(d.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("JSON-RPC listening") || start.elapsed() > std::time::Duration::from_secs(30) {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains("JSON-RPC listening"), "the node started and logged: {text}");
    assert!(!text.contains('\u{1b}'), "no escape codes in a log file: {text:?}");
}

/// The indexes can be switched off, and are rebuilt from genesis when switched back on: with
/// `--txindex false` a confirmed transaction is "switched off" (-5), the address index still
/// answers; restarted with the default, the rebuilt tx index finds it, and an address index
/// switched off says so.
#[test]
fn indexes_switch_off_and_rebuild_when_switched_back_on() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), "regtest", Some(free_port()), &["--txindex", "false"]);
    node.rpc("generatetoaddress", json!([11, address(1)]));
    let tx = spend_utxo(&node, 1, 2, 10_000);
    node.rpc("sendrawtransaction", json!([hex::encode(tx.encode())]));
    node.rpc("generatetoaddress", json!([1, address(1)]));
    let txid = tx.txid().to_string();
    let e = node.rpc_err("getrawtransaction", json!([txid, true]));
    assert_eq!(e["code"], json!(-5), "{e}");
    let msg = e["message"].as_str().unwrap();
    assert!(msg.contains("transaction index is switched off") && msg.contains("--txindex true"), "{msg}");
    let c = node.client();
    let coins = c.wait(c.getaddressutxos(AddressQuery::One(address(2)))).unwrap();
    assert_eq!(coins.len(), 1, "the address index is on");
    node.stop();

    let node = Node::start(dir.path(), "regtest", Some(free_port()), &["--addressindex", "false"]);
    let found = node.rpc("getrawtransaction", json!([txid, true]));
    assert_eq!(found["confirmations"], json!(1), "{found}");
    let e = node.rpc_err("getaddressutxos", json!([address(2)]));
    assert!(e["message"].as_str().unwrap().contains("address index is switched off"), "{e}");
    node.stop();
}
