//! Multi-node tests: real `quarry node` processes on loopback, connected over libp2p.

use crate::common;

use common::{address, free_port, wait_for, Node};
use quarry::consensus::Network;
use quarry::primitives::{Amount, Hash256, OutPoint, Script, Transaction, TxOut};
use quarry::rpc::api::QuarryApiClient;
use quarry::rpc::types::{AddressQuery, GetRawMempool};
use quarry::testkit::{assemble, coinbase, key, p2pkh_lock, spend_p2pkh};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

fn start(dir: &Path, bootnodes: &[String]) -> Node {
    let mut extra: Vec<&str> = vec!["--mine-threads", "1"];
    for b in bootnodes {
        extra.push("--bootnode");
        extra.push(b);
    }
    Node::start(dir, "regtest", Some(free_port()), &extra)
}

/// Polls `f` every 50 ms until it holds or `secs` pass (then panics with `what`).
fn tip(n: &Node) -> String {
    let c = n.client();
    c.wait(c.getbestblockhash()).unwrap().to_string()
}

fn same_tip(nodes: &[&Node]) -> bool {
    let t = tip(nodes[0]);
    nodes.iter().all(|n| tip(n) == t)
}

fn mempool(n: &Node) -> Vec<String> {
    let c = n.client();
    match c.wait(c.getrawmempool(None)).unwrap() {
        GetRawMempool::Txids(ids) => ids.iter().map(|t| t.to_string()).collect(),
        GetRawMempool::Verbose(_) => panic!("getrawmempool answered the verbose form"),
    }
}

fn generate(n: &Node, count: u32, to: u8) -> Vec<String> {
    let c = n.client();
    let hashes = c.wait(c.generatetoaddress(count.into(), address(Network::Regtest, to))).unwrap();
    hashes.iter().map(|h| h.to_string()).collect()
}

/// A spend of a mature coinbase of testkit key `from` (the one at `height`) to key `to`.
fn spend_coinbase_at(n: &Node, from: u8, to: u8, height: u64) -> Transaction {
    let c = n.client();
    let utxos = c.wait(c.getaddressutxos(AddressQuery::One(address(Network::Regtest, from)))).unwrap();
    let u = utxos
        .into_iter()
        .find(|u| u.height as u64 == height && u.coinbase)
        .unwrap_or_else(|| panic!("no coinbase at height {height}"));
    let op = OutPoint { txid: u.txid, index: u.output_index };
    let value = Amount::from_sat(u.satoshis).unwrap();
    let lock = Script(hex::decode(&u.script).unwrap());
    let out = TxOut { value: Amount::from_sat(value.to_sat() - 10_000).unwrap(), lock: p2pkh_lock(&key(to)) };
    spend_p2pkh(&key(from), &[(op, TxOut { value, lock })], vec![out], 0)
}

fn send(n: &Node, tx: &Transaction) -> String {
    let c = n.client();
    c.wait(c.sendrawtransaction(hex::encode(tx.encode()))).unwrap().to_string()
}

fn connected(n: &Node, others: usize) -> bool {
    let c = n.client();
    c.wait(c.getconnectioncount()).unwrap() as usize >= others
}

#[test]
fn three_nodes_relay_transactions_and_blocks() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = start(dirs[0].path(), &[]);
    let b = start(dirs[1].path(), &[a.p2p_addr()]);
    let c = start(dirs[2].path(), &[a.p2p_addr(), b.p2p_addr()]);
    wait_for(30, "3 nodes connected", || connected(&a, 2) && connected(&b, 2) && connected(&c, 2));
    generate(&a, 105, 0);
    wait_for(60, "all nodes at A's tip", || same_tip(&[&a, &b, &c]));

    // A transaction sent to A reaches every mempool.
    let txid = send(&a, &spend_coinbase_at(&a, 0, 1, 1));
    wait_for(30, "the tx in every mempool", || [&a, &b, &c].iter().all(|n| mempool(n).contains(&txid)));

    // A block mined on B reaches every node, and confirms the tx everywhere.
    let mined = generate(&b, 1, 2)[0].clone();
    wait_for(30, "B's block everywhere", || [&a, &b, &c].iter().all(|n| tip(n) == mined));
    wait_for(10, "empty mempools", || [&a, &b, &c].iter().all(|n| mempool(n).is_empty()));
    let block = c.rpc("getblock", json!([mined, 1]));
    assert!(block["tx"].as_array().unwrap().iter().any(|t| t.as_str() == Some(&txid)));

    // Peers see each other with sane fields. A peer's tip height comes from the blocks it
    // relays first and from its status (exchanged every 10 s): with compact relay one peer's
    // copy of every block can lose the race, so its height may wait for the next status.
    wait_for(25, "every peer's tip height known", || {
        c.rpc("getpeerinfo", json!([]))
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["tipheight"].as_u64() >= Some(105))
    });
    let peers = c.rpc("getpeerinfo", json!([]));
    for p in peers.as_array().unwrap() {
        assert_eq!(p["score"], json!(0), "{p}");
        assert!(p["tipheight"].as_u64().unwrap() >= 105, "{p}");
        assert!(p["bytesrecv"].as_u64().unwrap() > 0, "{p}");
        assert_eq!(p["subver"], json!("quarry/0.1.0"));
    }
    for n in [a, b, c] {
        n.stop();
    }
}

#[test]
fn a_late_node_syncs_500_blocks_to_the_same_tip_and_utxo_set() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(da.path(), &[]);
    for _ in 0..5 {
        generate(&a, 100, 3);
    }
    assert_eq!(a.rpc("getblockcount", json!([])), json!(500));
    let b = start(db.path(), &[a.p2p_addr()]);
    wait_for(120, "B synced 500 blocks", || tip(&b) == tip(&a));
    let ua = a.rpc("gettxoutsetinfo", json!([]));
    let ub = b.rpc("gettxoutsetinfo", json!([]));
    assert_eq!(ua["hash_serialized_3"], ub["hash_serialized_3"]);
    assert_eq!(ua["txouts"], ub["txouts"]);
    // B's peer entry for A: no penalties for honest sync.
    let peers = b.rpc("getpeerinfo", json!([]));
    assert_eq!(peers[0]["score"], json!(0), "{peers}");
    a.stop();
    b.stop();
}

#[test]
fn partition_then_heal_converges_on_most_work_and_returns_losing_txs_to_the_mempool() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = start(dirs[0].path(), &[]);
    let b = start(dirs[1].path(), &[a.p2p_addr()]);
    let c = start(dirs[2].path(), &[a.p2p_addr(), b.p2p_addr()]);
    wait_for(30, "3 nodes connected", || connected(&a, 2) && connected(&b, 2) && connected(&c, 2));
    generate(&a, 110, 4);
    wait_for(60, "all at one tip", || same_tip(&[&a, &b, &c]));

    // Cut C off.
    assert_eq!(c.rpc("setnetworkactive", json!([false])), json!(false));
    wait_for(20, "C isolated", || {
        c.rpc("getconnectioncount", json!([])) == json!(0) && connected(&a, 1) && !a.peer_ids().is_empty()
    });
    wait_for(20, "A and B no longer see C", || a.peer_ids().len() == 1 && b.peer_ids().len() == 1);

    // C's side: a tx confirmed in 2 blocks. A's side: 5 blocks (more work).
    let txid = send(&c, &spend_coinbase_at(&c, 4, 5, 2));
    generate(&c, 2, 6);
    let c_block = c.rpc("getblock", json!([tip(&c), 1]));
    assert_eq!(c_block["height"], json!(112));
    generate(&a, 5, 7);
    wait_for(20, "B follows A", || tip(&b) == tip(&a));
    assert_ne!(tip(&c), tip(&a));

    // Heal: every node converges on A's chain; C's transaction is back in C's mempool.
    assert_eq!(c.rpc("setnetworkactive", json!([true])), json!(true));
    wait_for(60, "convergence on the most-work tip", || same_tip(&[&a, &b, &c]));
    assert_eq!(c.rpc("getblockcount", json!([])), json!(115));
    wait_for(10, "C's tx back in its mempool", || mempool(&c).contains(&txid));
    let tips = c.rpc("getchaintips", json!([]));
    assert!(
        tips.as_array()
            .unwrap()
            .iter()
            .any(|t| t["status"] == json!("valid-fork") && t["height"] == json!(112)),
        "{tips}"
    );
    for n in [a, b, c] {
        n.stop();
    }
}

/// A peer built from the library's own swarm, which then misbehaves on gossip.
#[test]
fn a_peer_sending_garbage_and_an_invalid_block_is_banned_and_others_are_unaffected() {
    use futures::StreamExt;
    use libp2p::gossipsub::IdentTopic;
    use quarry::p2p::behaviour::{build_swarm, SwarmSettings};
    use quarry::p2p::wire::Topic;

    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(da.path(), &[]);
    let b = start(db.path(), &[a.p2p_addr()]);
    generate(&a, 3, 0);
    wait_for(30, "B at A's tip", || tip(&b) == tip(&a));
    let tip_before = tip(&a);
    let utxos_before = a.rpc("gettxoutsetinfo", json!([]))["hash_serialized_3"].clone();

    // An invalid block: a child of A's tip with valid proof of work whose coinbase pays
    // 1,000 coins, far above the subsidy.
    let params = Network::Regtest.params();
    let tip_header = a.rpc("getblockheader", json!([tip_before, true]));
    let prev: Hash256 = tip_before.parse().unwrap();
    let height = tip_header["height"].as_u64().unwrap() as u32 + 1;
    let time = tip_header["time"].as_u64().unwrap() as u32 + 1;
    let cb = coinbase(height, Amount::from_sat(1_000 * 100_000_000).unwrap(), p2pkh_lock(&key(9)), b"evil");
    let bad = assemble(params, prev, time, params.genesis_bits, vec![cb]);
    assert_ne!(bad.hash(), prev);

    // The harness's RPC client blocks: ask for A's address before entering the runtime.
    let a_p2p: libp2p::Multiaddr = a.p2p_addr().parse().unwrap();
    let a_id = a_peer(&a);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let evil_id = rt.block_on(async {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let settings = SwarmSettings { network: Network::Regtest, max_connections: 8, mdns: false };
        let mut swarm = build_swarm(key, &settings).unwrap();
        let me = *swarm.local_peer_id();
        swarm.dial(a_p2p.clone()).unwrap();
        let blocks = IdentTopic::new(Topic::Blocks.name(Network::Regtest));
        // Wait until A is subscribed to the block topic from our point of view.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let subscribed = swarm
                .behaviour()
                .gossipsub
                .all_peers()
                .any(|(_, topics)| topics.iter().any(|t| **t == blocks.hash()));
            if subscribed {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "A never subscribed");
            let _ = tokio::time::timeout(Duration::from_millis(50), swarm.select_next_some()).await;
        }
        swarm.behaviour_mut().gossipsub.publish(blocks.clone(), b"not a block at all".to_vec()).unwrap();
        let end = tokio::time::Instant::now() + Duration::from_millis(500);
        while tokio::time::Instant::now() < end {
            let _ = tokio::time::timeout(Duration::from_millis(50), swarm.select_next_some()).await;
        }
        swarm.behaviour_mut().gossipsub.publish(blocks, bad.encode()).unwrap();
        // Keep driving the swarm until A drops us.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while swarm.is_connected(&a_id) {
            assert!(tokio::time::Instant::now() < deadline, "A did not disconnect the misbehaving peer");
            let _ = tokio::time::timeout(Duration::from_millis(50), swarm.select_next_some()).await;
        }
        // Reconnecting is refused while banned.
        let _ = swarm.dial(a_p2p.clone());
        let end = tokio::time::Instant::now() + Duration::from_secs(2);
        while tokio::time::Instant::now() < end {
            let _ = tokio::time::timeout(Duration::from_millis(50), swarm.select_next_some()).await;
        }
        assert!(!swarm.is_connected(&a_id), "a banned peer got back in");
        me.to_string()
    });
    drop(rt);

    let banned = a.rpc("listbanned", json!([]));
    let entry =
        banned.as_array().unwrap().iter().find(|b| b["peerid"] == json!(evil_id)).expect("evil peer banned");
    let reason = entry["ban_reason"].as_str().unwrap();
    assert!(reason.contains("invalid block") || reason.contains("malformed"), "{reason}");
    assert!(!a.peer_ids().contains(&evil_id));
    // Nothing changed; the honest peer is still connected and relaying.
    assert_eq!(tip(&a), tip_before);
    assert_eq!(a.rpc("gettxoutsetinfo", json!([]))["hash_serialized_3"], utxos_before);
    assert_eq!(
        a.peer_ids(),
        vec![b.rpc("getnetworkinfo", json!([]))["peerid"].as_str().unwrap().to_string()]
    );
    let mined = generate(&b, 1, 1)[0].clone();
    wait_for(20, "A follows B", || tip(&a) == mined);
    // The ban survives a restart (persisted).
    a.stop();
    let a = start(da.path(), &[]);
    let banned = a.rpc("listbanned", json!([]));
    assert!(banned.as_array().unwrap().iter().any(|b| b["peerid"] == json!(evil_id)), "{banned}");
    a.stop();
    b.stop();
}

/// One host holding inbound handshakes open (TCP connected, never a byte of Noise) cannot
/// keep a new honest peer out: its source address gets at most
/// `inbound::MAX_PENDING_PER_SOURCE` of the pending slots, and each half-open socket is
/// closed after `behaviour::HANDSHAKE_TIMEOUT`. The attacker uses 127.0.0.2 and re-opens
/// every socket the node closes, 64 at a time (twice the old global limit of 32).
#[test]
fn half_open_sockets_from_one_host_do_not_keep_new_peers_out() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(da.path(), &[]);
    let a_p2p: std::net::SocketAddr = {
        let m = a.p2p_addr();
        let parts: Vec<&str> = m.split('/').collect();
        format!("{}:{}", parts[2], parts[4]).parse().unwrap()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (opened, closed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    for _ in 0..64 {
        let (stop, opened, closed) = (stop.clone(), opened.clone(), closed.clone());
        rt.spawn(async move {
            use tokio::io::AsyncReadExt;
            while !stop.load(Ordering::Relaxed) {
                let sock = tokio::net::TcpSocket::new_v4().unwrap();
                sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
                let Ok(mut conn) = sock.connect(a_p2p).await else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                opened.fetch_add(1, Ordering::Relaxed);
                // Silent until the node gives up on us (EOF or reset), then again.
                let mut buf = [0u8; 256];
                while let Ok(n) = conn.read(&mut buf).await {
                    if n == 0 || stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
                closed.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    wait_for(10, "64 half-open sockets", || opened.load(Ordering::Relaxed) >= 64);
    // The node times the half-open sockets out (5 s, not libp2p's 10 s) and the attacker
    // re-opens them at once.
    wait_for(15, "the node to close half-open sockets", || closed.load(Ordering::Relaxed) >= 8);
    let b = start(db.path(), &[a.p2p_addr()]);
    let b_id = b.rpc("getnetworkinfo", json!([]))["peerid"].as_str().unwrap().to_string();
    wait_for(30, "the honest peer to connect during the attack", || a.peer_ids().contains(&b_id));
    assert!(opened.load(Ordering::Relaxed) > 64, "the attack kept re-opening sockets");
    stop.store(true, Ordering::Relaxed);
    rt.shutdown_timeout(Duration::from_secs(2));
    // Still serving: B follows A's blocks.
    let mined = generate(&a, 1, 1)[0].clone();
    wait_for(20, "B follows A", || tip(&b) == mined);
    a.stop();
    b.stop();
}

/// Fair scheduling: a 10,000-block `generatetoaddress` runs on A one block per core step,
/// so a peer joining meanwhile is served the earlier blocks by A's core (headers and bodies
/// through sync requests, which only the core can answer) and A's other RPC calls answer,
/// all before the generate returns. With the generate holding the core, B could not sync
/// until it ended.
#[test]
fn a_sync_peer_is_served_while_a_10000_block_generate_runs() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(da.path(), &[]);
    generate(&a, 300, 1);
    let a_addr = a.addr;
    let cookie = a.cookie();
    let long = std::thread::spawn(move || {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "generatetoaddress",
            "params": [10_000, address(Network::Regtest, 2)]})
        .to_string();
        common::post(a_addr, Some(&cookie), &body)
    });
    // The generate is under way once the height moves past 300.
    wait_for(60, "the long generate to start", || a.rpc("getblockcount", json!([])).as_u64().unwrap() > 305);
    let b = start(db.path(), &[a.p2p_addr()]);
    let started = Instant::now();
    wait_for(120, "B to sync the first 300 blocks from A", || {
        b.rpc("getblockcount", json!([])).as_u64().unwrap() >= 300
    });
    assert!(
        !long.is_finished(),
        "the 10,000-block generate ended before B had synced (B took {:?}); this test needs it still running",
        started.elapsed()
    );
    // A's RPC answers too, mid-generate.
    let h = a.rpc("getblockchaininfo", json!([]))["blocks"].as_u64().unwrap();
    assert!(h > 300 && h < 10_300, "A is mid-generate at {h}");
    let (status, body) = long.join().unwrap().unwrap();
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["result"].as_array().map(Vec::len), Some(10_000), "{body}");
    wait_for(120, "B to reach A's tip", || same_tip(&[&a, &b]));
}

fn a_peer(a: &Node) -> libp2p::PeerId {
    a.rpc("getnetworkinfo", json!([]))["peerid"].as_str().unwrap().parse().unwrap()
}

#[test]
fn network_rpcs_validate_their_input() {
    let d = tempfile::tempdir().unwrap();
    let a = start(d.path(), &[]);
    let e = a.rpc_err("addnode", json!(["not-an-addr", "add"]));
    assert_eq!(e["code"], json!(-8), "{e}");
    let e = a.rpc_err("addnode", json!(["/ip4/127.0.0.1/tcp/1", "sometimes"]));
    assert_eq!(e["code"], json!(-8), "{e}");
    a.rpc("addnode", json!(["/ip4/127.0.0.1/tcp/1", "add"]));
    assert_eq!(a.rpc_err("addnode", json!(["/ip4/127.0.0.1/tcp/1", "add"]))["code"], json!(-23));
    a.rpc("addnode", json!(["/ip4/127.0.0.1/tcp/1", "remove"]));
    assert_eq!(a.rpc_err("addnode", json!(["/ip4/127.0.0.1/tcp/1", "remove"]))["code"], json!(-24));
    assert_eq!(a.rpc_err("disconnectnode", json!(["12D3KooWnope"]))["code"], json!(-29));
    let info = a.rpc("getnetworkinfo", json!([]));
    assert_eq!(
        info["topics"],
        json!(["quarry/regtest/blocks/1", "quarry/regtest/txs/1", "quarry/regtest/cmpctblocks/1"])
    );
    assert!(info["protocols"].as_array().unwrap().contains(&json!("/quarry/regtest/sync/1")));
    assert!(info["listenaddrs"][0].as_str().unwrap().starts_with("/ip4/127.0.0.1/tcp/"));
    // The peer id is stable across restarts (node key in the data dir).
    let id = info["peerid"].clone();
    a.stop();
    let a = start(d.path(), &[]);
    assert_eq!(a.rpc("getnetworkinfo", json!([]))["peerid"], id);
    a.stop();
    // --no-p2p: network methods say so.
    let n = Node::start(d.path(), "regtest", Some(free_port()), &["--no-p2p"]);
    assert_eq!(n.rpc_err("getpeerinfo", json!([]))["code"], json!(-9));
    n.stop();
}

/// A second node on a P2P port the first one listens on fails at start, naming the flags,
/// instead of silently sharing the port (libp2p-tcp binds with SO_REUSEPORT).
#[test]
fn a_second_node_on_a_taken_p2p_port_fails_at_start() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let port = free_port().to_string();
    let a = Node::start(da.path(), "regtest", Some(free_port()), &["--p2p-port", &port]);
    assert!(a.p2p_addr().starts_with(&format!("/ip4/127.0.0.1/tcp/{port}/")));
    let log = db.path().join("stderr.log");
    let mut b = Node {
        child: std::process::Command::new(env!("CARGO_BIN_EXE_quarry"))
            .args(["node", "--network", "regtest", "--p2p-port", &port, "--rpc-bind"])
            .arg(format!("127.0.0.1:{}", free_port()))
            .arg("--datadir")
            .arg(db.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
        datadir: db.path().to_path_buf(),
        addr: "127.0.0.1:1".parse().unwrap(),
    };
    // Killed by its Drop if it does not exit in time (wait_exit panics).
    let status = b.wait_exit(30);
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "the second node exited 0:\n{stderr}");
    assert!(stderr.contains("address in use: pass --p2p-port or --listen"), "{stderr}");
    // The first node is unaffected.
    assert_eq!(a.rpc("getblockcount", json!([])), json!(0));
    a.stop();
}

/// `quarry bench-p2p` end to end on a small chain (CI smoke test; the real figures are in
/// BENCHMARKS.md).
#[test]
fn bench_p2p_smoke() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(["bench-p2p", "--blocks", "200", "--rounds", "2"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench-p2p failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    assert!(stdout.contains("ratio"), "{stdout}");
    assert!(
        stdout.contains("compact relay (1 rounds)") && stdout.contains("full relay (1 rounds)"),
        "{stdout}"
    );
    assert!(stdout.contains("compact / full"), "{stdout}");
}

#[path = "p2p/compact.rs"]
mod compact;

#[path = "p2p/adversary.rs"]
mod adversary;
