//! The node's HTTP API (`quarry node --http`) on loopback: Esplora-style answers match the
//! RPC's, every endpoint answers bad parameters with 400 and a message and unknown paths with
//! 404, no request makes it panic (the server still answers afterwards), and the event
//! stream reports a new tip.

mod common;

use common::{address, free_port, Node};
use quarry::httpd::get;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

fn api(addr: SocketAddr, path: &str) -> (u16, String) {
    get(addr, path, T, 8 << 20).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn json_of(addr: SocketAddr, path: &str) -> Value {
    let (status, body) = api(addr, path);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

fn start(dir: &std::path::Path) -> (Node, SocketAddr) {
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let node = Node::start(dir, "regtest", Some(free_port()), &["--http", &http.to_string()]);
    let deadline = Instant::now() + T;
    while get(http, "/api/blocks/tip/height", T, 1024).is_err() {
        assert!(Instant::now() < deadline, "HTTP API did not come up on {http}");
        std::thread::sleep(Duration::from_millis(20));
    }
    (node, http)
}

#[test]
fn http_api_answers_like_the_rpc_and_refuses_bad_input_with_400_or_404() {
    let tmp = tempfile::tempdir().unwrap();
    let (node, http) = start(tmp.path());
    let mined = node.rpc("generatetoaddress", json!([3, address(node_net(), 1)]));
    let tip = mined[2].as_str().unwrap().to_string();
    assert_eq!(api(http, "/api/blocks/tip/height"), (200, "3".to_string()));
    assert_eq!(api(http, "/api/blocks/tip/hash"), (200, tip.clone()));
    assert_eq!(api(http, "/api/block-height/2").1, mined[1].as_str().unwrap());

    let block = json_of(http, &format!("/api/block/{tip}"));
    let core = node.rpc("getblock", json!([tip, 1]));
    assert_eq!(block["height"], core["height"]);
    assert_eq!(block["merkle_root"], core["merkleroot"]);
    assert_eq!(block["previousblockhash"], core["previousblockhash"]);
    assert_eq!(block["tx_count"], 1);
    assert_eq!(block["confirmations"], 1);
    assert_eq!(block["miner"], address(node_net(), 1));
    let coinbase = core["tx"][0].as_str().unwrap();
    let txs = json_of(http, &format!("/api/block/{tip}/txs"));
    assert_eq!(txs[0]["txid"], coinbase);
    assert_eq!(txs[0]["vout"][0]["scriptpubkey_address"], address(node_net(), 1));
    assert!(txs[0]["vout"][0]["scriptpubkey_asm"].as_str().unwrap().starts_with("OP_DUP OP_HASH256 "));
    let tx = json_of(http, &format!("/api/tx/{coinbase}"));
    assert_eq!(tx["status"]["block_hash"], tip.as_str());
    assert_eq!(tx["status"]["block_height"], 3);
    let proof = json_of(http, &format!("/api/tx/{coinbase}/merkle-proof"));
    assert_eq!((proof["verified"].as_bool(), proof["pos"].as_u64()), (Some(true), Some(0)));
    let blocks = json_of(http, "/api/blocks");
    assert_eq!(blocks.as_array().unwrap().len(), 4, "tip down to genesis: {blocks}");
    let tips = json_of(http, "/api/chaintips");
    assert_eq!(tips, json!([{"hash": tip, "height": 3, "branchlen": 0, "status": "active"}]));
    let addr = json_of(http, &format!("/api/address/{}", address(node_net(), 1)));
    assert_eq!(
        (addr["utxo_count"].as_u64(), addr["balance"].as_u64()),
        (Some(3), Some(3 * 50 * 100_000_000))
    );
    let mempool = json_of(http, "/api/mempool");
    assert_eq!(mempool["count"], 0);
    assert_eq!(json_of(http, "/api/node")["height"], 3);
    assert_eq!(json_of(http, "/api/peers"), json!([]));
    assert_eq!(json_of(http, "/api/reorgs"), json!([]));

    // Bad parameters: 400 naming the parameter and the value.
    let unknown = "00".repeat(32);
    for (path, what) in [
        ("/api/block/zz", "invalid block hash 'zz'"),
        ("/api/block/zz/txs", "invalid block hash"),
        (&format!("/api/block/{tip}/txs/x"), "invalid start index 'x'"),
        ("/api/blocks/-1", "invalid start height '-1'"),
        ("/api/blocks/99999999999", "invalid start height"),
        ("/api/block-height/abc", "invalid height 'abc'"),
        ("/api/tx/12", "invalid txid '12'"),
        ("/api/tx/xyz/merkle-proof", "invalid txid"),
        ("/api/address/notanaddress", "invalid address 'notanaddress'"),
        (&format!("/api/block/{}", "g".repeat(64)), "invalid block hash"),
    ] {
        let (status, body) = api(http, path);
        assert_eq!(status, 400, "GET {path}: {body}");
        assert!(body.contains(what), "GET {path}: {body}");
    }
    // Unknown things and paths: 404.
    for path in [
        format!("/api/block/{unknown}"),
        format!("/api/tx/{unknown}"),
        "/api/block-height/100".to_string(),
        "/api/blocks/100".to_string(),
        format!("/api/block/{tip}/txs/1"),
        "/api/nothing".into(),
        "/api/".into(),
        "/".into(),
        "/api/block".into(),
        format!("/api/block/{tip}/nothing"),
        "/api/blocks/tip/height/extra".into(),
    ] {
        let (status, body) = api(http, &path);
        assert_eq!(status, 404, "GET {path}: {body}");
        assert!(!body.is_empty(), "GET {path}: a 404 says what was not found");
    }
    // Odd requests: still an HTTP answer, and the server keeps answering.
    let long = format!("/api/block/{}", "a".repeat(5000));
    for path in [
        long.as_str(),
        "/api/block/%00%ff",
        "/api/address/%F0%9F%92%A9",
        "/api//block//",
        "/api/tx/..%2f..%2f",
        "/api/blocks/tip/height?x=1&&=&y",
    ] {
        let (status, body) = api(http, path);
        assert!([400, 404, 414].contains(&status) || path.contains('?'), "GET {path}: {status} {body}");
    }
    let (status, _) =
        raw(http, "POST /api/node HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc");
    assert_eq!(status, 405);
    let (status, _) = raw(http, "GARBAGE\r\n\r\n");
    assert!(status == 400 || status == 0, "a malformed request line: {status}");
    assert_eq!(api(http, "/api/blocks/tip/height"), (200, "3".to_string()));
    node.stop();
}

fn node_net() -> quarry::consensus::Network {
    quarry::consensus::Network::Regtest
}

fn raw(addr: SocketAddr, request: &str) -> (u16, String) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect_timeout(&addr, T).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    (out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0), out)
}

#[test]
fn event_stream_reports_new_tips() {
    let tmp = tempfile::tempdir().unwrap();
    let (node, http) = start(tmp.path());
    let mut s = std::net::TcpStream::connect_timeout(&http, T).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    write!(s, "GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    let mut seen = String::new();
    let deadline = Instant::now() + T;
    // The hello event first, then the mined block's tip event.
    let mut mined = None;
    while Instant::now() < deadline {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        seen.push_str(&line);
        if mined.is_none() && seen.contains("event: hello") {
            mined = Some(node.rpc("generatetoaddress", json!([1, address(node_net(), 1)]))[0].clone());
        }
        if let Some(h) = &mined {
            if seen.contains("event: tip") && seen.contains(h.as_str().unwrap()) {
                break;
            }
        }
    }
    assert!(seen.contains("event: tip") && seen.contains("\"height\":1"), "{seen}");
    node.stop();
}
