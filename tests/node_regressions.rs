//! Regression tests for review findings on the node and RPC layer. Each failed before its
//! fix; the doc comment on each test describes the defect it guards against.

use quarry::consensus::Network;
use quarry::primitives::{Amount, Hash256, OutPoint, Script, Transaction, TxIn, TxOut};
use quarry::testkit::{key, p2pkh_lock};
use serde_json::json;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{address, free_port, Node};
use quarry::rpc::api::QuarryApiClient;
use quarry::rpc::client::BlockingClient;
use quarry::rpc::types::AddressQuery;

/// Issue 4: "a tx that fails any rule: each gets a JSON-RPC error ... and nothing in the
/// chainstate or mempool changes". sendrawtransaction of a tx with an unknown input answers
/// an error but keeps the tx in the orphan pool (and may evict other orphans to make room).
#[test]
fn review_failed_sendrawtransaction_leaves_the_orphan_pool_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), "regtest", Some(free_port()), &["--mine-threads", "1"]);
    let tx = Transaction {
        version: 1,
        inputs: vec![TxIn {
            prevout: OutPoint { txid: Hash256([7; 32]), index: 0 },
            unlock: Script::default(),
        }],
        outputs: vec![TxOut { value: Amount::from_sat(1000).unwrap(), lock: p2pkh_lock(&key(2)) }],
        lock_time: 0,
    };
    let c = node.client();
    assert_eq!(c.wait(c.getmempoolinfo()).unwrap().orphans, 0);
    let e = c.wait(c.sendrawtransaction(hex::encode(tx.encode()))).expect_err("missing inputs");
    assert_eq!(
        c.wait(c.getmempoolinfo()).unwrap().orphans,
        0,
        "a rejected sendrawtransaction changed the mempool's orphan pool (error was {e})"
    );
}

/// Shutdown must not wait for a long generatetoaddress: Core's generate loop checks for
/// shutdown; here `Core::generate` never does, and `server.stopped()` waits for the
/// in-flight request, so SIGTERM hangs until every block is mined (hours on dev).
#[test]
fn review_sigterm_during_generatetoaddress_exits_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path(), "dev", Some(free_port()), &["--mine-threads", "1"]);
    let config = node.config();
    let to = address(Network::Dev, 1);
    std::thread::spawn(move || {
        let c = BlockingClient::new(&config).unwrap();
        let _ = c.wait(c.generatetoaddress(10_000, to));
    });
    std::thread::sleep(Duration::from_secs(2));
    node.signal("-TERM");
    let status = node.wait_exit(30);
    assert!(status.success(), "{status}");
}

/// getaddressutxos allows 100 addresses x 100,000 coins each and does not deduplicate:
/// repeating one address multiplies the result (and the core thread's allocation) by 100.
#[test]
fn review_getaddressutxos_does_not_amplify_repeated_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), "regtest", Some(free_port()), &["--mine-threads", "1"]);
    let a = address(Network::Regtest, 1);
    let c = node.client();
    c.wait(c.generatetoaddress(20, a.clone())).unwrap();
    let once = c.wait(c.getaddressutxos(AddressQuery::One(a.clone()))).unwrap().len();
    let many =
        c.wait(c.getaddressutxos(AddressQuery::Many { addresses: vec![a.clone(); 100] })).unwrap().len();
    assert_eq!(many, once, "the same coins returned 100 times");
}

/// bitcoin-cli users write small amounts as JSON numbers; serde_json prints f64 below 1e-5
/// in exponent form ("1e-6"), which parse_coins refuses.
#[test]
fn review_createrawtransaction_accepts_small_json_amounts() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), "regtest", Some(free_port()), &["--mine-threads", "1"]);
    let inputs = json!([{"txid": "11".repeat(32), "vout": 0}]);
    let a = address(Network::Regtest, 1);
    let r = node.try_rpc("createrawtransaction", json!([inputs, { a: 0.000001 }]));
    assert!(r.is_ok(), "0.000001 coins refused: {r:?}");
}

/// The RPC port in use: clear error naming --rpc-bind, non-zero exit, no cookie left, no hang.
#[test]
fn review_rpc_port_in_use_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args([
            "node",
            "--network",
            "regtest",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--rpc-bind",
            &format!("127.0.0.1:{port}"),
            "--datadir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(20));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--rpc-bind"), "{err}");
    assert!(!dir.path().join(".cookie").exists());
    drop(busy);
}

/// SIGINT with an idle keep-alive connection open: exit 0, cookie removed, mempool saved.
#[test]
fn review_sigint_with_idle_keepalive_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path(), "regtest", Some(free_port()), &["--mine-threads", "1"]);
    let mut s = TcpStream::connect(node.addr).unwrap();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "getblockcount", "params": []}).to_string();
    // Held open by hand: the point is an idle connection the server must not wait for.
    let cookie = node.cookie();
    let (user, pass) = cookie.split_once(':').unwrap();
    let auth = quarry::rpc::client::basic_auth(user, pass);
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nAuthorization: {auth}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap();
    assert!(n > 0);
    node.signal("-INT");
    let status = node.wait_exit(20);
    assert!(status.success(), "{status}");
    assert!(!dir.path().join(".cookie").exists());
    assert!(dir.path().join("mempool.dat").exists());
    drop(s);
}

/// signrawtransactionwithkey takes up to 1,000 keys (derived and used on the blocking pool,
/// off the core and the async workers) and signs with the one that matches; 1,001 keys are
/// refused naming the limit. (The test this replaces sent 200,000 keys, which the limit
/// refused at once, so it never reached the derivation it meant to time.)
#[test]
fn review_signrawtransactionwithkey_uses_the_matching_key_among_1000_and_refuses_more() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), "regtest", Some(free_port()), &["--no-p2p"]);
    let to = address(Network::Regtest, 0);
    node.rpc("generatetoaddress", json!([11, to]));
    let coinbase = node.rpc("getaddressutxos", json!([to]))
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["height"] == json!(1))
        .cloned()
        .unwrap();
    let raw = node.rpc(
        "createrawtransaction",
        json!([[{"txid": coinbase["txid"], "vout": 0}], {address(Network::Regtest, 1): 49.999}]),
    );
    let mut keys: Vec<String> =
        (1..1000u32).map(|i| hex::encode([&i.to_le_bytes()[..], &[7u8; 28]].concat())).collect();
    keys.insert(500, hex::encode(key(0).to_bytes()));
    assert_eq!(keys.len(), 1000);
    let signed = node.rpc("signrawtransactionwithkey", json!([raw, keys]));
    assert_eq!(signed["complete"], json!(true), "{signed}");
    let txid = node.rpc("sendrawtransaction", json!([signed["hex"]]));
    assert!(node.rpc("getrawmempool", json!([])).as_array().unwrap().contains(&txid));
    keys.push(hex::encode([9u8; 32]));
    let e = node.rpc_err("signrawtransactionwithkey", json!([raw, keys]));
    assert_eq!(e["code"], json!(-8), "{e}");
    assert!(e["message"].as_str().unwrap().contains("at most 1000 keys, got 1001"), "{e}");
    node.stop();
}
