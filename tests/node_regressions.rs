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

use crate::common;
use common::{address, free_port, Node};
use quarry::rpc::api::QuarryApiClient;
use quarry::rpc::client::{BlockingClient, RpcConfig};
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
    // SIGTERM once the generate is under way (its first blocks are in).
    let c = node.client();
    common::wait_for(60, "generatetoaddress to mine its first blocks", || {
        c.wait(c.getblockcount()).unwrap() >= 2
    });
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
    let out = run_node_until_exit(dir.path(), port, &[]);
    assert!(start.elapsed() < Duration::from_secs(20));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--rpc-bind"), "{err}");
    assert!(!dir.path().join(".cookie").exists());
    drop(busy);
}

/// Runs `quarry node` on regtest (RPC on `port`) and waits for it to exit, for nodes that
/// must refuse to start.
fn run_node_until_exit(datadir: &std::path::Path, port: u16, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(["node", "--network", "regtest", "--listen", "/ip4/127.0.0.1/tcp/0"])
        .args(["--rpc-bind", &format!("127.0.0.1:{port}")])
        .args(extra)
        .arg("--datadir")
        .arg(datadir)
        .output()
        .unwrap()
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
    let coinbase = node
        .rpc("getaddressutxos", json!([to]))
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

/// `getblockcount` with a short client timeout, retried until it answers or `deadline`
/// passes: the wait, or the last error.
fn answers_before(node: &Node, deadline: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    let mut last = String::from("no attempt");
    while start.elapsed() < deadline {
        let config = RpcConfig::new(node.addr, &node.datadir, None).timeout(Duration::from_secs(5));
        match BlockingClient::new(&config).and_then(|c| c.wait(c.getblockcount())) {
            Ok(_) => return Ok(start.elapsed()),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(last)
}

/// Opens a connection and sends an authenticated POST's headers (`framing` is the
/// Content-Length or Transfer-Encoding line) and the first `body` bytes.
fn begin_post(node: &Node, framing: &str, body: &str) -> TcpStream {
    let mut s = TcpStream::connect(node.addr).unwrap();
    let cookie = node.cookie();
    let (user, pass) = cookie.split_once(':').unwrap();
    let auth = quarry::rpc::client::basic_auth(user, pass);
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{framing}\r\nAuthorization: {auth}\r\n\r\n{body}"
    )
    .unwrap();
    s
}

/// An authenticated POST whose headers promise 1,000 body bytes, of which only a few come.
fn stalled_request(node: &Node) -> TcpStream {
    begin_post(node, "Content-Length: 1000", r#"{"jsonrpc""#)
}

/// Hardening: the RPC server never closed idle connections and had no cap below the
/// open-file limit. With 1,024 files, 1,100 silent connections made it answer 0 of 20 calls
/// (a tokio worker spun on accept4 = EMFILE) for as long as they stayed open. Now at most 128
/// connections are open, a new one closes the one idle the longest, and an ordinary call
/// answers while the silent ones are still held open by the attacker.
#[test]
fn hardening_silent_connections_past_the_file_limit_do_not_stop_rpc() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::spawn_via(
        &["prlimit", "--nofile=1024:1024"],
        dir.path(),
        "regtest",
        Some(free_port()),
        &["--mine-threads", "1"],
    );
    node.wait_height(0);
    let silent: Vec<TcpStream> = (0..1100)
        .filter_map(|_| TcpStream::connect_timeout(&node.addr, Duration::from_secs(2)).ok())
        .collect();
    assert!(silent.len() > 1024, "only {} connections made", silent.len());
    let answered = answers_before(&node, Duration::from_secs(60));
    assert!(answered.is_ok(), "no answer while {} silent connections were open: {answered:?}", silent.len());
    // The server closes all but the newest 128 silent connections.
    for s in &silent {
        s.set_nonblocking(true).unwrap();
    }
    let open = || {
        silent
            .iter()
            .filter(|s| {
                let mut r: &TcpStream = s;
                matches!(r.read(&mut [0u8; 64]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            })
            .count()
    };
    common::wait_for(30, "the server to close all but 128 silent connections", || open() <= 128);
}

/// Hardening: 200 kept-alive clients against the 128-connection cap got
/// `connection closed before message completed` (a new connection evicted the one idle the
/// longest, which was a client between two calls) and HTTP 429 past 64 requests in flight.
/// Now a connection past the cap waits its turn, old connections are closed only after an
/// answer (`Connection: close`), and requests past 64 wait for a slot: every call of every
/// client is answered, including a poller that pauses 100 ms between calls.
#[test]
fn hardening_more_clients_than_connections_all_get_answers() {
    const CLIENTS: usize = 200;
    const CALLS: usize = 15;
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), "regtest", Some(free_port()), &["--mine-threads", "1"]);
    node.wait_height(0);
    let config = node.config();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let failures: Vec<String> = rt.block_on(async move {
        let mut tasks = Vec::new();
        for i in 0..=CLIENTS {
            let client = quarry::rpc::client::RpcClient::new(&config).unwrap();
            tasks.push(tokio::spawn(async move {
                let mut failures = Vec::new();
                for n in 0..CALLS {
                    // The last client is the slow poller.
                    if i == CLIENTS {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    let answer = if (i + n) % 2 == 0 {
                        client.getblockcount().await.map(drop)
                    } else {
                        client.getblockchaininfo().await.map(drop)
                    };
                    if let Err(e) = answer {
                        failures.push(format!("client {i} call {n}: {e}"));
                    }
                }
                failures
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(
                tokio::time::timeout(Duration::from_secs(120), t).await.expect("a client hung").unwrap(),
            );
        }
        all
    });
    assert!(
        failures.is_empty(),
        "{} of {} calls failed, e.g. {:?}",
        failures.len(),
        (CLIENTS + 1) * CALLS,
        &failures[..failures.len().min(5)]
    );
    assert!(node.try_rpc("getblockcount", json!([])).is_ok(), "the node stopped answering");
}

/// Hardening: jsonrpsee holds one of its 64 in-flight slots while it reads a request's body,
/// with no deadline: 80 authenticated requests that send headers and stall gave every other
/// client HTTP 429 for as long as they stalled. Now the body is read (with a deadline)
/// before a slot is taken: other calls answer at once, the stalled requests get 408 after
/// --rpc-server-timeout, and a connection that sends nothing is closed after it too.
#[test]
fn hardening_stalled_request_bodies_do_not_starve_rpc() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(
        dir.path(),
        "regtest",
        Some(free_port()),
        &["--mine-threads", "1", "--rpc-server-timeout", "5"],
    );
    let silent = TcpStream::connect(node.addr).unwrap();
    let stalled: Vec<TcpStream> = (0..80).map(|_| stalled_request(&node)).collect();
    std::thread::sleep(Duration::from_millis(500));
    let answered = answers_before(&node, Duration::from_secs(4));
    assert!(answered.is_ok(), "no answer while 80 request bodies stalled: {answered:?}");
    let mut s = &stalled[0];
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    assert!(resp.starts_with("HTTP/1.1 408") && resp.contains("within 5 s"), "{resp}");
    let mut s = &silent;
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    assert!(matches!(s.read(&mut [0u8; 64]), Ok(0)), "a silent connection was not closed after the timeout");
}

/// Hardening: a 20 MB chunked body (no Content-Length) was answered HTTP 500; it is
/// 413 naming the limit, and the connection closes.
#[test]
fn hardening_chunked_body_over_the_limit_gets_413() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), "regtest", Some(free_port()), &["--mine-threads", "1"]);
    let mut s = begin_post(&node, "Transfer-Encoding: chunked", "");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut reader = s.try_clone().unwrap();
    let read = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = reader.read_to_end(&mut buf); // a reset after the answer is fine
        String::from_utf8_lossy(&buf).into_owned()
    });
    let mut chunk = vec![b' '; 64 << 10];
    chunk[..6].copy_from_slice(br#"{"a":""#);
    for i in 0..(20 << 20) / chunk.len() {
        if i == 1 {
            chunk[..6].fill(b'x');
        }
        let sent = write!(s, "{:x}\r\n", chunk.len())
            .and_then(|_| s.write_all(&chunk))
            .and_then(|_| s.write_all(b"\r\n"));
        if sent.is_err() {
            break; // the server answered and closed
        }
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let resp = read.join().unwrap();
    assert!(resp.starts_with("HTTP/1.1 413") && resp.contains("the limit is 16777216 bytes"), "{resp:.300}");
}

/// Hardening: the node raises its soft open-file limit to the hard limit at start, as
/// bitcoind does (a 1,024 soft limit is easily reached by RocksDB, peers and RPC).
#[test]
fn hardening_node_raises_the_open_file_soft_limit() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::spawn_via(
        &["prlimit", "--nofile=256:4096"],
        dir.path(),
        "regtest",
        Some(free_port()),
        &["--mine-threads", "1"],
    );
    node.wait_height(0);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", node.child.id())).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let soft: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(soft[3..5], ["4096", "4096"], "{line}");
}

/// Hardening: a full disk aborted the node with a RocksDB assertion (SIGABRT, no quarry
/// message). The node refuses to start, and stops before connecting a block, when the disk
/// holding the datadir has less than 50 MB free (here a higher threshold and a ballast file
/// stand in for a full disk), naming the free space, the directory and the threshold.
#[test]
fn hardening_low_disk_space_stops_the_node_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_node_until_exit(dir.path(), free_port(), &["--min-free-mb", "1000000000"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    let expected = format!("MB free in {}, need at least 1000000000 MB", dir.path().display());
    assert!(err.contains("disk space is too low: ") && err.contains(&expected), "{err}");

    let free_mb = quarry::store::free_bytes(dir.path()).unwrap() >> 20;
    if free_mb < 10_000 {
        eprintln!("skipping the block-connect half: {free_mb} MB free, it needs 10,000");
        return;
    }
    let threshold = (free_mb - 2_048).to_string();
    let mut node = Node::start(
        dir.path(),
        "regtest",
        Some(free_port()),
        &["--mine-threads", "1", "--min-free-mb", &threshold],
    );
    let ballast = dir.path().join("ballast");
    assert!(Command::new("fallocate").args(["-l", "6G"]).arg(&ballast).status().unwrap().success());
    let c = node.client();
    let r = c.wait(c.generatetoaddress(1, address(Network::Regtest, 1)));
    let _ = std::fs::remove_file(&ballast);
    let e = r.expect_err("a block connected with too little disk space").to_string();
    assert!(
        e.contains("disk space is too low") && e.contains(&format!("need at least {threshold} MB")),
        "{e}"
    );
    let status = node.wait_exit(20);
    assert!(!status.success(), "{status}");
}
