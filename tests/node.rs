//! A real `quarry node` process on regtest over loopback: mining with generatetoaddress, a
//! signed spend through sendrawtransaction, the mempool, confirmation, lookups and Merkle
//! proofs, bad input, authentication, graceful stop and mempool persistence across restart.

use quarry::consensus::Network;
use quarry::primitives::{Address, AddressKind, Amount, Hash256, OutPoint, Script, Transaction, TxOut};
use quarry::script::templates::pubkey_hash;
use quarry::testkit::{key, p2pkh_lock, spend_p2pkh};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Node {
    child: Child,
    datadir: PathBuf,
    addr: SocketAddr,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Node {
    /// Starts a node; `port: None` leaves --rpc-bind at its default.
    fn start(datadir: &Path, port: Option<u16>) -> Node {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_quarry"));
        cmd.args(["node", "--network", "regtest", "--mine-threads", "2"]);
        if let Some(port) = port {
            cmd.arg("--rpc-bind").arg(format!("127.0.0.1:{port}"));
        }
        let port = port.unwrap_or(Network::Regtest.default_rpc_port());
        let child =
            cmd.arg("--datadir").arg(datadir).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let node = Node {
            child,
            datadir: datadir.to_path_buf(),
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
        };
        let start = Instant::now();
        while node.try_rpc("getblockcount", json!([])).is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "node did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        node
    }

    fn cookie(&self) -> String {
        std::fs::read_to_string(self.datadir.join(".cookie")).unwrap_or_default()
    }

    /// Raw HTTP POST; returns (status, body).
    fn post(&self, body: &str, auth: Option<&str>) -> std::io::Result<(u16, String)> {
        use base64::Engine;
        let mut s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        let auth = auth.map(|a| {
            format!("Authorization: Basic {}\r\n", base64::engine::general_purpose::STANDARD.encode(a))
        });
        write!(
            s,
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n{}",
            self.addr,
            body.len(),
            auth.unwrap_or_default(),
            body
        )?;
        let mut resp = String::new();
        s.read_to_string(&mut resp)?;
        let status = resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        Ok((status, body))
    }

    fn try_rpc(&self, method: &str, params: Value) -> Result<Value, String> {
        let cookie = self.cookie();
        if cookie.is_empty() {
            return Err("no cookie yet".into());
        }
        let req = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
        let (status, body) = self.post(&req, Some(&cookie)).map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("HTTP {status}: {e}: {body}"))?;
        match v.get("error") {
            Some(e) if !e.is_null() => Err(e.to_string()),
            _ => Ok(v["result"].clone()),
        }
    }

    fn rpc(&self, method: &str, params: Value) -> Value {
        self.try_rpc(method, params).unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    fn rpc_err(&self, method: &str, params: Value) -> Value {
        let e = self.try_rpc(method, params).expect_err("expected an error");
        serde_json::from_str(&e).unwrap()
    }

    /// Sends `stop` and waits for exit code 0.
    fn stop(mut self) {
        self.rpc("stop", json!([]));
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "node exited with {status}");
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "node did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!self.datadir.join(".cookie").exists(), "cookie removed at shutdown");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn address(i: u8) -> String {
    let pk = key(i).verifying_key().to_bytes();
    Address { hrp: Network::Regtest.address_hrp(), kind: AddressKind::P2pkh, hash: pubkey_hash(&pk) }.encode()
}

fn spend_utxo(node: &Node, from: u8, to: u8, fee: u64) -> Transaction {
    let utxos = node.rpc("getaddressutxos", json!([address(from)]));
    let u = utxos
        .as_array()
        .unwrap()
        .iter()
        .find(|u| {
            u["spent_in_mempool"].is_null()
                && u["coinbase"] == json!(true)
                && u["height"].as_u64().unwrap() <= 2
        })
        .expect("a mature coinbase utxo")
        .clone();
    let op = OutPoint {
        txid: u["txid"].as_str().unwrap().parse::<Hash256>().unwrap(),
        index: u["outputIndex"].as_u64().unwrap() as u32,
    };
    let value = Amount::from_sat(u["satoshis"].as_u64().unwrap()).unwrap();
    let lock = Script(hex::decode(u["script"].as_str().unwrap()).unwrap());
    let out = TxOut { value: Amount::from_sat(value.to_sat() - fee).unwrap(), lock: p2pkh_lock(&key(to)) };
    spend_p2pkh(&key(from), &[(op, TxOut { value, lock })], vec![out], 0)
}

#[test]
fn a_node_mines_accepts_a_spend_confirms_it_and_proves_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let node = Node::start(dir.path(), Some(port));
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
    let (_, body) = node.post("{not json", Some(&node.cookie())).unwrap();
    assert!(body.contains("-32700"), "parse error: {body}");
    let mut bad = spend_utxo(&node, 1, 3, 10_000);
    bad.outputs[0].value = Amount::from_sat(bad.outputs[0].value.to_sat() + 1).unwrap(); // breaks the signature
    let e = node.rpc_err("sendrawtransaction", json!([hex::encode(bad.encode())]));
    assert_eq!(e["code"], json!(-26), "rejections are -26 like Core");
    assert!(e["message"].as_str().unwrap().contains("script failed"), "{e}");
    assert_eq!(node.rpc("getbestblockhash", json!([])), tip);
    assert_eq!(node.rpc("getrawmempool", json!([])), json!([]));

    // Authentication: none, or a wrong cookie, is refused with HTTP 401.
    let req = json!({"jsonrpc": "2.0", "id": 1, "method": "getblockcount", "params": []}).to_string();
    assert_eq!(node.post(&req, None).unwrap().0, 401);
    assert_eq!(node.post(&req, Some("__cookie__:wrong")).unwrap().0, 401);

    // A pending transaction survives a restart (mempool.dat).
    let pending = spend_utxo(&node, 1, 4, 20_000);
    node.rpc("sendrawtransaction", json!([hex::encode(pending.encode())]));
    node.stop();
    assert!(dir.path().join("mempool.dat").exists());
    let node = Node::start(dir.path(), Some(port));
    assert_eq!(node.rpc("getblockcount", json!([])), json!(12));
    assert_eq!(node.rpc("getrawmempool", json!([])), json!([pending.txid().to_string()]));
    node.stop();
}

#[test]
fn the_rpc_server_listens_on_loopback_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_quarry")).args(["node", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("127.0.0.1:19443"), "{help}");
    // A node started without --rpc-bind answers on 127.0.0.1 at the default port.
    let node = Node::start(dir.path(), None);
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
    let node = Node::start(dir.path(), Some(port));
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

#[test]
fn mining_node_extends_its_chain_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args([
            "node",
            "--network",
            "regtest",
            "--mine",
            "--mine-threads",
            "1",
            "--miner-address",
            &address(5),
        ])
        .arg("--rpc-bind")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--datadir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let probe = Node {
        child: Command::new("true").spawn().unwrap(),
        datadir: dir.path().to_path_buf(),
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
    };
    let start = Instant::now();
    loop {
        if let Ok(n) = probe.try_rpc("getblockcount", json!([])) {
            if n.as_u64().unwrap() >= 3 {
                break;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the miner made no blocks");
        std::thread::sleep(Duration::from_millis(50));
    }
    let info = probe.rpc("getmininginfo", json!([]));
    assert_eq!(info["mining"], json!(true));
    let utxos = probe.rpc("getaddressutxos", json!([address(5)]));
    assert!(utxos.as_array().unwrap().len() >= 3);
    let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
    let start = Instant::now();
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "SIGTERM exits 0, got {exit}");
    assert!(dir.path().join("mempool.dat").exists(), "mempool flushed");
    assert!(!dir.path().join(".cookie").exists());
}

/// kill -9 a mining node mid-run: the restarted node opens at a block boundary and keeps going.
#[test]
fn a_killed_mining_node_restarts_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_quarry"))
            .args([
                "node",
                "--network",
                "regtest",
                "--mine",
                "--mine-threads",
                "1",
                "--miner-address",
                &address(6),
            ])
            .arg("--rpc-bind")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--datadir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let probe = |child: Child| Node {
        child,
        datadir: dir.path().to_path_buf(),
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
    };
    let wait_height = |node: &Node, h: u64| {
        let start = Instant::now();
        loop {
            if let Ok(n) = node.try_rpc("getblockcount", json!([])) {
                if n.as_u64().unwrap() >= h {
                    return n.as_u64().unwrap();
                }
            }
            assert!(start.elapsed() < Duration::from_secs(30), "no progress to height {h}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let mut node = probe(spawn());
    wait_height(&node, 20);
    node.child.kill().unwrap(); // SIGKILL
    node.child.wait().unwrap();
    drop(node);
    let node = probe(spawn());
    let h = wait_height(&node, 1);
    // The chain reopened at a block boundary: every block up to the tip is there, and the UTXO
    // set holds exactly one coinbase per block (every block pays address 6).
    let info = node.rpc("gettxoutsetinfo", json!([]));
    assert!(info["txouts"].as_u64().unwrap() >= h.min(info["height"].as_u64().unwrap()));
    assert_eq!(info["txouts"], info["height"], "one coinbase output per block");
    // The block the digest was taken at is on the active chain (the miner keeps going).
    let at = node.rpc("getblock", json!([info["bestblock"], 1]));
    assert_eq!(at["height"], info["height"]);
    assert!(at["confirmations"].as_i64().unwrap() >= 1);
    wait_height(&node, h + 3);
    node.stop();
}
