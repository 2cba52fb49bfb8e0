//! Mining through a pool: `getblocktemplate` (fields, long polling) against a real node,
//! and the Stratum pool (`quarry pool`) end to end on loopback.

use crate::common;

use common::{address, wait_for, Node};
use quarry::consensus::Network;
use quarry::primitives::{Amount, Block, OutPoint, TxOut};
use quarry::rpc::api::QuarryApiClient;
use quarry::rpc::types::TemplateRequest;
use quarry::testkit::{key, p2pkh_lock, spend_p2pkh};
use std::time::{Duration, Instant};

fn regtest_node(dir: &std::path::Path) -> Node {
    Node::start(dir, "regtest", Some(common::free_port()), &["--no-p2p"])
}

#[test]
fn getblocktemplate_gives_the_tip_the_mempool_fees_and_dependencies() {
    let dir = tempfile::tempdir().unwrap();
    let node = regtest_node(dir.path());
    let c = node.client();
    let hashes = c.wait(c.generatetoaddress(11, address(Network::Regtest, 1))).unwrap();
    // Spend block 1's coinbase (mature at height 11), then spend that spend: a parent and
    // a child in the mempool.
    let block1 = Block::decode(&c.wait(c.block_bytes(&hashes[0])).unwrap(), 4_000_000).unwrap();
    let cb = &block1.txs[0];
    let coin = (OutPoint { txid: cb.txid(), index: 0 }, cb.outputs[0].clone());
    let v1 = cb.outputs[0].value.to_sat() - 10_000;
    let parent = spend_p2pkh(
        &key(1),
        &[coin],
        vec![TxOut { value: Amount::from_sat(v1).unwrap(), lock: p2pkh_lock(&key(1)) }],
        0,
    );
    let coin2 = (OutPoint { txid: parent.txid(), index: 0 }, parent.outputs[0].clone());
    let child = spend_p2pkh(
        &key(1),
        &[coin2],
        vec![TxOut { value: Amount::from_sat(v1 - 25_000).unwrap(), lock: p2pkh_lock(&key(2)) }],
        0,
    );
    for tx in [&parent, &child] {
        c.wait(c.sendrawtransaction(hex::encode(tx.encode()))).unwrap();
    }

    let t = c.wait(c.getblocktemplate(None)).unwrap();
    assert_eq!(t.previousblockhash, *hashes.last().unwrap());
    assert_eq!(t.height, 12);
    assert_eq!(t.bits, "207fffff");
    assert_eq!(t.target, format!("7fffff{}", "0".repeat(58)));
    assert!(t.mintime <= t.curtime, "mintime {} curtime {}", t.mintime, t.curtime);
    assert_eq!(t.transactions.len(), 2);
    assert_eq!(t.transactions[0].txid, parent.txid());
    assert_eq!(t.transactions[0].data, hex::encode(parent.encode()));
    assert_eq!(t.transactions[0].fee, 10_000);
    assert!(t.transactions[0].depends.is_empty());
    assert_eq!(t.transactions[1].txid, child.txid());
    assert_eq!(t.transactions[1].fee, 25_000);
    assert_eq!(t.transactions[1].depends, vec![1], "the child spends transaction 1");
    assert_eq!(t.coinbasevalue, 50 * 100_000_000 + 35_000, "subsidy plus both fees");
    assert!(t.longpollid.starts_with(&t.previousblockhash.to_string()), "{}", t.longpollid);

    // The same state gives the same long-poll id; a stale id answers at once.
    let again = c.wait(c.getblocktemplate(None)).unwrap();
    assert_eq!(again.longpollid, t.longpollid);
    let stale = TemplateRequest { longpollid: Some("stale".into()), ..Default::default() };
    let start = Instant::now();
    c.wait(c.getblocktemplate(Some(stale))).unwrap();
    assert!(start.elapsed() < Duration::from_secs(10), "a stale longpollid does not wait");

    // A proposal is refused, naming the mode.
    let e = node.rpc_err("getblocktemplate", serde_json::json!([{"mode": "proposal"}]));
    assert_eq!(e["code"], -8, "{e}");
    assert!(e["message"].as_str().unwrap().contains("proposal"), "{e}");
}

#[test]
fn a_long_poll_waits_for_a_new_block_and_wakes_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let node = regtest_node(dir.path());
    let c = node.client();
    c.wait(c.generatetoaddress(1, address(Network::Regtest, 1))).unwrap();
    let t = c.wait(c.getblocktemplate(None)).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let config = node.config();
    let id = t.longpollid.clone();
    std::thread::spawn(move || {
        let c = quarry::rpc::client::BlockingClient::new(&config).unwrap();
        let req = TemplateRequest { longpollid: Some(id), ..Default::default() };
        let _ = tx.send(c.wait(c.getblocktemplate(Some(req))));
    });
    // Nothing changes: the poll is still waiting.
    assert!(rx.recv_timeout(Duration::from_millis(700)).is_err(), "the long poll answered without a change");
    let new = c.wait(c.generatetoaddress(1, address(Network::Regtest, 2))).unwrap();
    let woke =
        rx.recv_timeout(Duration::from_secs(20)).expect("the long poll woke on the new block").unwrap();
    assert_eq!(woke.previousblockhash, new[0]);
    assert_eq!(woke.height, t.height + 1);
    assert_ne!(woke.longpollid, t.longpollid);
}

/// A `quarry pool` process on a node; killed when dropped.
struct PoolProc {
    child: std::process::Child,
    stratum: std::net::SocketAddr,
    dir: std::path::PathBuf,
    node_dir: std::path::PathBuf,
    node_addr: std::net::SocketAddr,
}

impl PoolProc {
    fn start(node: &Node, dir: &std::path::Path, stratum_port: u16, extra: &[&str]) -> PoolProc {
        let stratum: std::net::SocketAddr = format!("127.0.0.1:{stratum_port}").parse().unwrap();
        let stderr = if std::env::var_os("QUARRY_TEST_LOG").is_some() {
            std::process::Stdio::inherit()
        } else {
            std::process::Stdio::null()
        };
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_quarry"))
            .args(["pool", "--network", "dev", "--rpc-connect", &node.addr.to_string()])
            .arg("--datadir")
            .arg(&node.datadir)
            .arg("--pool-dir")
            .arg(dir)
            .args(["--stratum", &stratum.to_string()])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let start = Instant::now();
        while std::net::TcpStream::connect(stratum).is_err() {
            assert!(start.elapsed() < Duration::from_secs(30), "the pool did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        PoolProc {
            child,
            stratum,
            dir: dir.to_path_buf(),
            node_dir: node.datadir.clone(),
            node_addr: node.addr,
        }
    }

    fn stats(&self) -> serde_json::Value {
        let out = common::quarry(&[
            "pool",
            "stats",
            "--json",
            "--network",
            "dev",
            "--rpc-connect",
            &self.node_addr.to_string(),
            "--datadir",
            self.node_dir.to_str().unwrap(),
            "--pool-dir",
            self.dir.to_str().unwrap(),
        ]);
        serde_json::from_str(&common::ok(&out)).unwrap()
    }
}

impl Drop for PoolProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A hand-driven Stratum connection.
struct Miner {
    reader: std::io::BufReader<std::net::TcpStream>,
    writer: std::net::TcpStream,
    next_id: u64,
    /// Notifications read while waiting for replies.
    pending: std::collections::VecDeque<serde_json::Value>,
}

impl Miner {
    fn connect(addr: std::net::SocketAddr) -> Miner {
        let s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Miner {
            reader: std::io::BufReader::new(s.try_clone().unwrap()),
            writer: s,
            next_id: 0,
            pending: Default::default(),
        }
    }

    fn read(&mut self) -> serde_json::Value {
        use std::io::BufRead;
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("a line from the pool within 20 s");
        assert!(!line.is_empty(), "the pool closed the connection");
        serde_json::from_str(&line).unwrap()
    }

    fn send_line(&mut self, line: &str) {
        use std::io::Write;
        self.writer.write_all(line.as_bytes()).unwrap();
    }

    /// Sends a request; returns its reply (notifications in between are kept).
    fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send_line(&quarry::pool::stratum::request(id, method, params));
        loop {
            let v = self.read();
            if v["id"] == id {
                return v;
            }
            self.pending.push_back(v);
        }
    }

    /// The next notification of `method`.
    fn notification(&mut self, method: &str) -> serde_json::Value {
        if let Some(i) = self.pending.iter().position(|v| v["method"] == method) {
            return self.pending.remove(i).unwrap();
        }
        loop {
            let v = self.read();
            if v["method"] == method {
                return v;
            }
            self.pending.push_back(v);
        }
    }
}

use quarry::pool::client::{parse_notify, PoolJob};
use quarry::pool::share::{hash_value, target_for};
use quarry::primitives::U256;

/// Nonces (from `start`) whose share hash is at or below `share` and above `above`.
fn find_share(job: &PoolJob, en1: &[u8], en2: [u8; 4], share: &U256, above: &U256, start: u32) -> u32 {
    (start..)
        .find(|&n| {
            let v = hash_value(&job.parts.header(en1, &en2, job.ntime, n).hash());
            v <= *share && v > *above
        })
        .unwrap()
}

/// A nonce meeting `target`, by the mining kernel.
fn find_block(job: &PoolJob, en1: &[u8], en2: [u8; 4], target: &U256) -> u32 {
    use quarry::miner::kernel::{midstate, scan, tail_words, Kernel};
    let bytes = job.parts.header(en1, &en2, job.ntime, 0).to_bytes();
    let mid = midstate(bytes[..64].try_into().unwrap());
    let r = scan(Kernel::detect(), &mid, &tail_words(&bytes), 0, u32::MAX, target);
    r.found.expect("a block in the nonce range")
}

fn submit(m: &mut Miner, worker: &str, job: &PoolJob, en2: [u8; 4], nonce: u32) -> serde_json::Value {
    m.call(
        "mining.submit",
        serde_json::json!([
            worker,
            job.id,
            hex::encode(en2),
            format!("{:08x}", job.ntime),
            format!("{nonce:08x}")
        ]),
    )
}

fn error_code(v: &serde_json::Value) -> i64 {
    v["error"][0].as_i64().unwrap_or_else(|| panic!("expected an error, got {v}"))
}

#[test]
fn a_stratum_session_gets_work_shares_refusals_and_a_block() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("node"), "dev", Some(common::free_port()), &["--no-p2p"]);
    // Share difficulty 2^-14 (target 2^238): the dev target (2^234) is 16 times harder.
    let pool = PoolProc::start(
        &node,
        &dir.path().join("pool"),
        common::free_port(),
        &["--payout", "prop", "--difficulty", "0.00006103515625", "--min-difficulty", "0.00006103515625"],
    );
    let mut m = Miner::connect(pool.stratum);
    let sub = m.call("mining.subscribe", serde_json::json!(["test/1"]));
    let en1 = hex::decode(sub["result"][1].as_str().unwrap()).unwrap();
    assert_eq!(en1.len(), 4);
    assert_eq!(sub["result"][2], 4, "extranonce2 size");
    assert_eq!(m.call("mining.extranonce.subscribe", serde_json::json!([]))["result"], true);
    let d = m.notification("mining.set_difficulty");
    assert_eq!(d["params"][0].as_f64().unwrap(), 1.0 / 16384.0);
    let n = m.notification("mining.notify");
    let job = parse_notify(n["params"].as_array().unwrap()).unwrap();
    assert!(job.clean, "the first job is clean");
    assert_eq!(job.parts.prev, node.client().wait(node.client().getbestblockhash()).unwrap());

    // Before authorizing, a share is refused naming the rule.
    let r = submit(&mut m, "alice", &job, [0; 4], 0);
    assert_eq!(error_code(&r), 24, "{r}");
    assert_eq!(m.call("mining.authorize", serde_json::json!(["alice", "x"]))["result"], true);

    let share_target = target_for(1.0 / 16384.0);
    let net_target = U256::ONE.shl(234);
    let n1 = find_share(&job, &en1, [0; 4], &share_target, &net_target, 0);
    let r = submit(&mut m, "alice", &job, [0; 4], n1);
    assert_eq!(r["result"], true, "a share below the block target is accepted: {r}");
    let r = submit(&mut m, "alice", &job, [0; 4], n1);
    assert_eq!(error_code(&r), 22, "duplicate: {r}");
    assert!(r["error"][1].as_str().unwrap().contains("duplicate"), "{r}");
    let low = (0..)
        .find(|&n| hash_value(&job.parts.header(&en1, &[0; 4], job.ntime, n).hash()) > share_target)
        .unwrap();
    let r = submit(&mut m, "alice", &job, [0; 4], low);
    assert_eq!(error_code(&r), 23, "low difficulty: {r}");
    let mut unknown = job.clone();
    unknown.id = "ffffff".into();
    assert_eq!(error_code(&submit(&mut m, "alice", &unknown, [0; 4], n1)), 20, "unknown job");
    let r = m.call("mining.nonsense", serde_json::json!([]));
    assert!(r["error"][1].as_str().unwrap().contains("unknown method"), "{r}");
    // Malformed lines are answered, and the session goes on.
    m.send_line("{not json\n");
    let bad = m.read();
    assert_eq!(bad["error"][0], -32700, "{bad}");

    // A second share kept back, then a share meeting the network target: a block.
    let n2 = find_share(&job, &en1, [0; 4], &share_target, &net_target, n1 + 1);
    let nb = find_block(&job, &en1, [1, 0, 0, 0], &net_target);
    let r = submit(&mut m, "alice", &job, [1, 0, 0, 0], nb);
    assert_eq!(r["result"], true, "{r}");
    let sent = Instant::now();
    assert_eq!(node.wait_height(1), 1, "the block reached the node");
    let c = node.client();
    let tip = c.wait(c.getbestblockhash()).unwrap();
    let header = job.parts.header(&en1, &[1, 0, 0, 0], job.ntime, nb);
    assert_eq!(tip, header.hash(), "the node's tip is the share's block");
    // The new tip reaches the miner as clean work.
    let n = m.notification("mining.notify");
    let waited = sent.elapsed();
    let next = parse_notify(n["params"].as_array().unwrap()).unwrap();
    assert!(next.clean && next.parts.prev == tip, "{n}");
    eprintln!("clean_jobs {} ms after the block share was answered", waited.as_millis());
    // The kept-back share is for the old tip now: stale.
    let r = submit(&mut m, "alice", &job, [0; 4], n2);
    assert_eq!(error_code(&r), 21, "stale: {r}");

    let s = pool.stats();
    assert_eq!(s["blocks"].as_array().unwrap().len(), 1, "{s}");
    let w = &s["workers"][0];
    assert_eq!((w["worker"].as_str(), w["shares"].as_u64()), (Some("alice"), Some(2)), "{s}");
    // Proportional: alice's two shares are the whole round.
    assert_eq!(w["credited"].as_u64(), Some(50 * 100_000_000), "{s}");
    assert_eq!(w["owed"], 0, "not mature yet: {s}");
}

#[test]
fn credited_shares_survive_a_pool_crash() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("node"), "dev", Some(common::free_port()), &["--no-p2p"]);
    let args =
        ["--payout", "pps", "--difficulty", "0.00006103515625", "--min-difficulty", "0.00006103515625"];
    let port = common::free_port();
    let share_target = target_for(1.0 / 16384.0);
    let net_target = U256::ONE.shl(234);
    let mut found = 0;
    for round in 0..2 {
        let mut pool = PoolProc::start(&node, &dir.path().join("pool"), port, &args);
        let mut m = Miner::connect(pool.stratum);
        let sub = m.call("mining.subscribe", serde_json::json!([]));
        let en1 = hex::decode(sub["result"][1].as_str().unwrap()).unwrap();
        m.call("mining.authorize", serde_json::json!(["bob"]));
        let n = m.notification("mining.notify");
        let job = parse_notify(n["params"].as_array().unwrap()).unwrap();
        let mut nonce = 0;
        for _ in 0..3 {
            nonce = find_share(&job, &en1, [0; 4], &share_target, &net_target, nonce) + 1;
            assert_eq!(submit(&mut m, "bob", &job, [0; 4], nonce - 1)["result"], true);
            found += 1;
        }
        // Killed without warning right after the acknowledgements.
        pool.child.kill().unwrap();
        pool.child.wait().unwrap();
        let s = pool.stats();
        let w = &s["workers"][0];
        assert_eq!(w["shares"].as_u64(), Some(found), "round {round}: {s}");
        // PPS: each share earns reward × share difficulty / network difficulty.
        let per_share =
            (50e8 * ((1.0 / 16384.0) / quarry::pool::share::difficulty_of(&net_target))).floor() as u64;
        assert_eq!(w["credited"].as_u64(), Some(found * per_share), "{s}");
        assert_eq!(w["owed"].as_u64(), Some(found * per_share), "PPS credits are owed at once: {s}");
    }
}

/// Polls `f` every 100 ms until it holds or `secs` pass (then panics with `what`).
/// The ledger's records (a running pool appends; the file is compacted only at start).
fn ledger_records(pool: &PoolProc) -> Vec<serde_json::Value> {
    std::fs::read_to_string(pool.dir.join("ledger.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// `quarry miner --pool` for `secs` seconds; its stdout.
fn miner_process(pool: &PoolProc, user: &str, secs: u64) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(["miner", "--pool", &format!("stratum+tcp://{}", pool.stratum), "--user", user])
        .args(["--threads", "1", "--duration", &secs.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn two_miner_processes_find_blocks_through_the_pool_and_are_paid_by_prop_after_maturity() {
    let dir = tempfile::tempdir().unwrap();
    let n0 = Node::start(&dir.path().join("n0"), "dev", Some(common::free_port()), &[]);
    let boot = n0.p2p_addr();
    let n1 = Node::start(&dir.path().join("n1"), "dev", Some(common::free_port()), &["--bootnode", &boot]);
    wait_for(30, "the nodes to connect", || !n1.peer_ids().is_empty());
    // alice is named by her address; bob by a name registered in addresses.txt.
    let alice = address(Network::Dev, 1);
    let bob_addr = address(Network::Dev, 2);
    let pool_dir = dir.path().join("pool");
    std::fs::create_dir_all(&pool_dir).unwrap();
    std::fs::write(pool_dir.join("addresses.txt"), format!("# worker address\nbob {bob_addr}\n")).unwrap();
    let pool = PoolProc::start(
        &n0,
        &pool_dir,
        common::free_port(),
        &[
            "--payout",
            "prop",
            "--difficulty",
            "0.00006103515625",
            "--min-difficulty",
            "0.000001",
            "--payout-every",
            "1",
            "--payout-fee-rate",
            "5000",
            "--min-payout",
            "0.001",
        ],
    );
    let miners = [miner_process(&pool, &alice, 3), miner_process(&pool, "bob", 3)];
    for m in miners {
        let out = m.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "{text}");
        let accepted: u64 =
            text.split("accepted ").nth(1).and_then(|t| t.split(' ').next()).unwrap().parse().unwrap();
        assert!(accepted > 0, "both miners had shares accepted: {text}");
    }
    let s = pool.stats();
    let blocks = s["blocks"].as_array().unwrap().clone();
    assert!(!blocks.is_empty(), "the pool found a block in 3 s of two miners: {s}");
    let names: Vec<&str> =
        s["workers"].as_array().unwrap().iter().map(|w| w["worker"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2, "{s}");
    // The pool's blocks on n0's active chain are on n1's too (two blocks found at once at
    // one height: one of them is left off, and the pool will drop its credits).
    let last = blocks.iter().map(|b| b["height"].as_u64().unwrap()).max().unwrap();
    n1.wait_height(last);
    let mut active = 0;
    for b in &blocks {
        let h = b["height"].as_i64().unwrap();
        let hash = b["hash"].as_str().unwrap();
        let (c0, c1) = (n0.client(), n1.client());
        if c0.wait(c0.getblockhash(h)).unwrap().to_string() == hash {
            active += 1;
            wait_for(20, "n1 to have the pool's block", || {
                c1.wait(c1.getblockhash(h)).map(|x| x.to_string()).ok().as_deref() == Some(hash)
            });
        }
    }
    assert!(active > 0, "{s}");
    // The round rule, recomputed from the ledger: each block's credits are its reward split
    // over the round's shares by difficulty, rounded down.
    let mut round: Vec<(String, f64)> = Vec::new();
    let mut credits: std::collections::BTreeMap<String, Vec<(String, u64)>> = Default::default();
    for r in ledger_records(&pool) {
        if let Some(sh) = r.get("share") {
            round.push((sh["worker"].as_str().unwrap().into(), sh["diff"].as_f64().unwrap()));
        } else if let Some(b) = r.get("block") {
            let total: f64 = round.iter().map(|x| x.1).sum();
            let mut by: std::collections::BTreeMap<String, f64> = Default::default();
            for (w, d) in &round {
                *by.entry(w.clone()).or_default() += d;
            }
            let reward = b["reward"].as_u64().unwrap();
            let want: Vec<(String, u64)> = by
                .into_iter()
                .map(|(w, d)| (w, (reward as f64 * (d / total)).floor() as u64))
                .filter(|x| x.1 > 0)
                .collect();
            let got: Vec<(String, u64)> = serde_json::from_value(b["credits"].clone()).unwrap();
            assert_eq!(got, want, "block {}", b["hash"]);
            credits.insert(b["hash"].as_str().unwrap().to_string(), got);
            round.clear();
        }
    }
    // Mature every block (maturity 20 on dev): blocks on top of the last one, by the node.
    let c = n0.client();
    let tip = c.wait(c.getblockcount()).unwrap() as u64;
    let need = (last + 19).saturating_sub(tip);
    if need > 0 {
        c.wait(c.generatetoaddress(need as i64, address(Network::Dev, 9))).unwrap();
    }
    // Payouts go out one at a time; each confirms in the next block.
    let settled = |s: &serde_json::Value| {
        s["workers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["owed"] == 0 && w["paying"] == 0 && w["immature"] == 0)
    };
    let start = Instant::now();
    let s = loop {
        let s = pool.stats();
        if settled(&s) {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "payouts did not settle: {s}");
        if s["payouts_pending"].as_array().is_some_and(|p| !p.is_empty()) {
            c.wait(c.generatetoaddress(1, address(Network::Dev, 9))).unwrap();
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    // Paid: the credits of the blocks that matured; orphaned blocks' credits dropped.
    let mut expected: std::collections::BTreeMap<String, u64> = Default::default();
    for b in s["blocks"].as_array().unwrap() {
        let on_chain =
            c.wait(c.getblockhash(b["height"].as_i64().unwrap())).unwrap().to_string() == b["hash"];
        assert_eq!(b["status"] == "mature", on_chain, "{b}");
        if on_chain {
            for (w, a) in &credits[b["hash"].as_str().unwrap()] {
                *expected.entry(w.clone()).or_default() += a;
            }
        }
    }
    for w in s["workers"].as_array().unwrap() {
        let name = w["worker"].as_str().unwrap();
        assert_eq!(w["paid"].as_u64().unwrap(), expected[name], "{name} is paid exactly its credits: {s}");
        assert_eq!(w["credited"].as_u64().unwrap(), expected[name], "{s}");
    }
    // On chain: each payout pays its recorded outputs, its fee is 5 sat a byte of its size,
    // split over the payments by amount (rounded down, the remainder one sat each from the
    // first payee in name order).
    let mut received: std::collections::BTreeMap<String, u64> = Default::default();
    let payouts: Vec<serde_json::Value> =
        ledger_records(&pool).into_iter().filter_map(|r| r.get("payout").cloned()).collect();
    assert_eq!(
        payouts.len(),
        s["payouts_confirmed"].as_array().unwrap().len(),
        "no payout abandoned or repeated"
    );
    for p in &payouts {
        let txid: quarry::primitives::Hash256 = p["txid"].as_str().unwrap().parse().unwrap();
        let info = c.wait(c.transaction_info(&txid)).unwrap();
        assert!(info.confirmations.unwrap_or(0) >= 1, "{p}");
        let fee = p["fee"].as_u64().unwrap();
        let payments: Vec<(String, u64)> = serde_json::from_value(p["payments"].clone()).unwrap();
        let total: u64 = payments.iter().map(|x| x.1).sum();
        let mut parts: Vec<u64> =
            payments.iter().map(|x| (fee as u128 * x.1 as u128 / total as u128) as u64).collect();
        let rem = fee - parts.iter().sum::<u64>();
        for part in parts.iter_mut().take(rem as usize) {
            *part += 1;
        }
        // 5000 sat/kB x the size; change below 1,000 sat is left to the fee on top.
        assert_eq!(fee, 5 * info.size, "{p}");
        let dust = p["dust"].as_u64().unwrap();
        let recorded_outs = p["outputs"].as_array().unwrap().len();
        if info.vout.len() > recorded_outs {
            assert_eq!(dust, 0, "change returned to the pool: {p}");
        } else {
            assert!(dust < 1_000, "{p}");
        }
        for ((w, amount), part) in payments.iter().zip(&parts) {
            let to = if w == "bob" { bob_addr.clone() } else { w.clone() };
            *received.entry(to).or_default() += amount - part;
        }
        let outs: Vec<(String, u64)> = serde_json::from_value(p["outputs"].clone()).unwrap();
        for (i, (a, v)) in outs.iter().enumerate() {
            let o = &info.vout[i];
            assert_eq!((o.value * 1e8).round() as u64, *v, "{p}");
            assert_eq!(o.script_pubkey.address.as_deref(), Some(a.as_str()), "{p}");
        }
    }
    let total_out = |addr: &str| -> u64 {
        let u = c.wait(c.getaddressutxos(quarry::rpc::types::AddressQuery::One(addr.into()))).unwrap();
        u.iter().map(|x| x.satoshis).sum()
    };
    assert_eq!(total_out(&alice), received[&alice], "alice's coins");
    assert_eq!(total_out(&bob_addr), received[&bob_addr], "bob's coins");
}

/// A pool's configuration for the payout task alone (no Stratum), paying from `key`.
fn payout_config(
    node: &Node,
    dir: &std::path::Path,
    key: &ed25519_dalek::SigningKey,
) -> quarry::pool::PoolConfig {
    quarry::pool::PoolConfig {
        rpc: node.config(),
        dir: dir.to_path_buf(),
        payout: quarry::pool::Payout::Pps,
        lock: p2pkh_lock(key),
        start_difficulty: 1.0,
        min_difficulty: 1.0,
        max_difficulty: 1.0,
        shares_per_minute: 20.0,
        score_c: 300.0,
        payouts: quarry::pool::PayoutConfig {
            network: Network::Dev,
            key: key.clone(),
            min_payout: 100_000,
            fee_rate: Some(2_000),
            every: Duration::from_secs(1),
            confirmations: 1,
            enabled: true,
        },
    }
}

#[test]
fn a_crash_between_recording_and_confirming_a_payout_never_pays_twice() {
    use quarry::pool::accounting::Share;
    use quarry::pool::{payer, Ledger, Payout};
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("node"), "dev", Some(common::free_port()), &["--no-p2p"]);
    let pool_key = key(7);
    let pool_dir = dir.path().join("pool");
    std::fs::create_dir_all(&pool_dir).unwrap();
    let config = payout_config(&node, &pool_dir, &pool_key);
    let c = node.client();
    // The pool's coins: 22 coinbases, the first two mature.
    let pool_addr = payer::pool_address(&config).encode();
    c.wait(c.generatetoaddress(22, pool_addr.clone())).unwrap();
    let alice = address(Network::Dev, 1);
    let path = pool_dir.join("ledger.jsonl");
    // A PPS share worth exactly 10 coins (reward x 0.2 / 1.0).
    let share = |t: u64| Share {
        worker: format!("{alice}.rig"),
        diff: 0.2,
        net_diff: 1.0,
        reward: 50 * 100_000_000,
        time_ms: t,
        credit: 0,
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let rpc = rt.block_on(async { quarry::rpc::client::RpcClient::new(&node.config()) }).unwrap();
    let open = || Arc::new(Mutex::new(Ledger::open(&path, Payout::Pps).unwrap()));
    let pass = |l: &Arc<Mutex<Ledger>>| rt.block_on(payer::pass(&config, &rpc, l)).unwrap();
    let mine = |n: i64| c.wait(c.generatetoaddress(n, address(Network::Dev, 9))).unwrap();
    let alice_coins =
        || c.wait(c.getaddressutxos(quarry::rpc::types::AddressQuery::One(alice.clone()))).unwrap();
    let stats = |l: &Arc<Mutex<Ledger>>| {
        let s = l.lock().unwrap().stats();
        (s[0].owed, s[0].paying, s[0].paid)
    };

    // 1. A crash after the payout is recorded, before it is broadcast.
    let ledger = open();
    ledger.lock().unwrap().credit_share(share(1)).unwrap();
    let tip = c.wait(c.getblockcount()).unwrap();
    let first = rt.block_on(payer::prepare(&config, &rpc, &ledger, tip)).unwrap().expect("a payout");
    assert_eq!(first.payments, vec![(format!("{alice}.rig"), 1_000_000_000)]);
    assert_eq!(stats(&ledger), (0, 1_000_000_000, 0));
    drop(ledger); // the crash
    let ledger = open();
    assert_eq!(stats(&ledger), (0, 1_000_000_000, 0), "recorded: not owed again after a restart");
    pass(&ledger); // broadcast again: the same transaction
    let txid: quarry::primitives::Hash256 = first.txid.parse().unwrap();
    let info = c.wait(c.transaction_info(&txid)).expect("the recorded payout is in the mempool");
    assert_eq!((info.blockhash, info.hex.clone()), (None, first.tx.clone()), "the same transaction");
    pass(&ledger); // in the mempool: nothing new
    assert_eq!(ledger.lock().unwrap().pending_payouts().len(), 1);
    mine(1);
    pass(&ledger);
    assert_eq!(stats(&ledger), (0, 0, 1_000_000_000), "confirmed once");
    let coins = alice_coins();
    assert_eq!(coins.len(), 1);
    assert_eq!(coins[0].satoshis, 1_000_000_000 - first.fee, "the payment less its fee");
    assert_eq!(first.fee, 2 * info.size, "2000 sat/kB");

    // 2. A crash after the broadcast, before the confirmation is recorded.
    ledger.lock().unwrap().credit_share(share(2)).unwrap();
    pass(&ledger); // recorded and broadcast
    let second = ledger.lock().unwrap().pending_payouts()[0].clone();
    drop(ledger);
    mine(1);
    let ledger = open();
    pass(&ledger);
    pass(&ledger);
    assert_eq!(stats(&ledger), (0, 0, 2_000_000_000));
    assert_eq!(alice_coins().len(), 2, "two payouts, neither repeated");

    // 3. A recorded payout whose coin is spent by something else can never confirm: it is
    // abandoned and the amount is owed (and paid) again from other coins.
    ledger.lock().unwrap().credit_share(share(3)).unwrap();
    let tip = c.wait(c.getblockcount()).unwrap();
    let third = rt.block_on(payer::prepare(&config, &rpc, &ledger, tip)).unwrap().unwrap();
    let tx = quarry::primitives::Transaction::decode(&hex::decode(&third.tx).unwrap(), usize::MAX).unwrap();
    let spent: Vec<(quarry::primitives::OutPoint, TxOut)> = tx
        .inputs
        .iter()
        .map(|i| {
            let o = c
                .wait(c.gettxout(i.prevout.txid.to_string(), i.prevout.index, Some(false)))
                .unwrap()
                .unwrap();
            let value = Amount::from_sat((o.value * 1e8).round() as u64).unwrap();
            (i.prevout, TxOut { value, lock: p2pkh_lock(&pool_key) })
        })
        .collect();
    let total: u64 = spent.iter().map(|s| s.1.value.to_sat()).sum();
    let other = spend_p2pkh(
        &pool_key,
        &spent,
        vec![TxOut { value: Amount::from_sat(total - 100_000).unwrap(), lock: p2pkh_lock(&key(9)) }],
        0,
    );
    c.wait(c.sendrawtransaction(hex::encode(other.encode()))).unwrap();
    mine(1);
    pass(&ledger); // abandoned, so owed again, and paid by a new payout from other coins
    let pending = ledger.lock().unwrap().pending_payouts().to_vec();
    assert!(pending.iter().all(|p| p.txid != third.txid), "abandoned: {pending:?}");
    assert_eq!(pending.len(), 1, "one new payout for what is owed again: {pending:?}");
    assert_eq!(stats(&ledger), (0, 1_000_000_000, 2_000_000_000));
    mine(1);
    pass(&ledger);
    assert_eq!(stats(&ledger), (0, 0, 3_000_000_000));
    assert_eq!(alice_coins().len(), 3);
    let _ = second;

    // 4. With 3 confirmations required, a payout one block deep is still in flight; a reorg
    // that takes its block out of the chain leaves it in flight (never "paid" from a block
    // that is gone), and it counts as paid only once 3 blocks of the new chain hold it.
    let deep = quarry::pool::PoolConfig {
        payouts: quarry::pool::PayoutConfig { confirmations: 3, ..config.payouts.clone() },
        ..config.clone()
    };
    let pass_deep = |l: &Arc<Mutex<Ledger>>| rt.block_on(payer::pass(&deep, &rpc, l)).unwrap();
    ledger.lock().unwrap().credit_share(share(4)).unwrap();
    pass_deep(&ledger); // recorded and broadcast
    let fourth = ledger.lock().unwrap().pending_payouts()[0].clone();
    let gone = mine(1)[0];
    pass_deep(&ledger);
    assert_eq!(stats(&ledger), (0, 1_000_000_000, 3_000_000_000), "one block deep: still paying");
    c.wait(c.invalidateblock(gone.to_string())).unwrap();
    pass_deep(&ledger); // out of the chain: back in the mempool, or sent again
    assert_eq!(stats(&ledger), (0, 1_000_000_000, 3_000_000_000), "reorged out: still paying");
    let txid: quarry::primitives::Hash256 = fourth.txid.parse().unwrap();
    let again = c.wait(c.transaction_info(&txid)).expect("the payout is in the mempool again");
    assert_eq!(again.blockhash, None, "in the mempool, not in a block");
    // Mined to another address: the same coinbase and contents within the same second would
    // be the invalidated block again.
    let held = c.wait(c.generatetoaddress(1, address(Network::Dev, 8))).unwrap()[0];
    assert_ne!(held, gone);
    mine(1);
    pass_deep(&ledger);
    assert_eq!(stats(&ledger).1, 1_000_000_000, "two blocks deep: still paying");
    mine(1);
    pass_deep(&ledger);
    assert_eq!(stats(&ledger), (0, 0, 4_000_000_000), "three blocks deep: paid");
    let confirmed = ledger.lock().unwrap().confirmed_payouts().to_vec();
    assert_eq!(
        confirmed.last().unwrap(),
        &(fourth.txid.clone(), held.to_string()),
        "paid from the block that stayed"
    );
    assert_eq!(alice_coins().len(), 4, "paid once");

    // 5. Payouts in flight together: while one waits for its confirmations the next goes out,
    // from other coins (so a reorg that sends one again never takes the other's input).
    ledger.lock().unwrap().credit_share(share(5)).unwrap();
    pass_deep(&ledger);
    ledger.lock().unwrap().credit_share(share(6)).unwrap();
    pass_deep(&ledger);
    let flying = ledger.lock().unwrap().pending_payouts().to_vec();
    assert_eq!(flying.len(), 2, "the second payout does not wait for the first");
    let inputs = |p: &quarry::pool::accounting::PayoutTx| -> Vec<OutPoint> {
        let tx = quarry::primitives::Transaction::decode(&hex::decode(&p.tx).unwrap(), usize::MAX).unwrap();
        tx.inputs.iter().map(|i| i.prevout).collect()
    };
    let (a, b) = (inputs(&flying[0]), inputs(&flying[1]));
    assert!(a.iter().all(|o| !b.contains(o)), "no coin in both: {a:?} {b:?}");
    mine(1);
    pass_deep(&ledger);
    assert_eq!(stats(&ledger), (0, 2_000_000_000, 4_000_000_000), "both one block deep");
    mine(2);
    pass_deep(&ledger);
    assert_eq!(stats(&ledger), (0, 0, 6_000_000_000), "both paid");
    assert_eq!(alice_coins().len(), 6, "each paid once");
}

#[test]
fn the_attack_experiment_accounts_for_every_block_and_share() {
    // A short sabotage run under prop and PPS (fresh dev node and pool per run, two in-process
    // Stratum miners): too short for the figures (BENCHMARKS.md has the long runs), long
    // enough for blocks; what must hold exactly is the accounting.
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("experiment.json");
    let out = common::quarry(&[
        "pool",
        "experiment",
        "--seconds",
        "8",
        "--methods",
        "prop,pps",
        "--strategies",
        "sabotage",
        "--json-out",
        json.to_str().unwrap(),
    ]);
    let table = common::ok(&out);
    assert!(table.contains("sabotage") || table.contains("Sabotage"), "{table}");
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    let reward = 50 * 100_000_000u64; // the dev coinbase value of these fee-less blocks
    for r in &runs {
        let (h, a) = (&r["honest"], &r["attacker"]);
        let n = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
        let blocks = r["blocks"].as_u64().unwrap();
        // ~1 block a second on a fresh dev chain at these rates: none in 8 s is a failure.
        assert!(blocks > 0, "{r}");
        assert!(n(h, "accepted") > 0 && n(a, "accepted") > 0, "both miners' shares were credited: {r}");
        assert!(n(h, "accepted") <= n(h, "submitted") && n(a, "accepted") <= n(a, "submitted"), "{r}");
        assert_eq!(n(a, "blocks"), 0, "the saboteur never submits a block: {r}");
        // Every block the pool recorded is the honest miner's (a block share for a job the
        // miner's previous block had just replaced is refused as stale, so it may submit more).
        assert!(n(h, "blocks") >= blocks, "{r}");
        let paid = n(h, "reward_pool") + n(a, "reward_pool");
        match r["payout"].as_str().unwrap() {
            // Prop splits each block's reward over its round, rounding down per worker.
            "prop" => assert!(paid <= blocks * reward && paid + 2 * blocks >= blocks * reward, "{r}"),
            // PPS pays every accepted share whether or not blocks come: nothing is paid
            // without a share, and the withheld blocks do not lower the saboteur's pay.
            "pps" => assert!(n(a, "reward_pool") > 0 && n(h, "reward_pool") > 0, "{r}"),
            other => panic!("method {other}"),
        }
    }
}

#[test]
fn vardiff_brings_a_real_miner_near_the_share_rate_target() {
    // One `quarry miner --pool` process hashing flat out on one thread, starting at a share
    // difficulty far too easy for it (hundreds of shares a second); the pool aims at 600
    // shares a minute. Where it must end: the difficulty at which the miner's measured hash
    // rate gives 10 shares a second (within what load on a shared machine can
    // move a hash rate; a factor of 10 is asserted), and the share rate of the last 10 s
    // near 10 a second.
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("node"), "dev", Some(common::free_port()), &["--no-p2p"]);
    let spm = 600.0;
    let pool = PoolProc::start(
        &node,
        &dir.path().join("pool"),
        common::free_port(),
        &[
            "--payout",
            "pps",
            "--difficulty",
            "0.0000001",
            "--min-difficulty",
            "0.00000001",
            "--shares-per-minute",
            "600",
            "--no-payouts",
        ],
    );
    let secs = 30;
    let out = miner_process(&pool, "carol", secs).wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    let hashes: f64 = text
        .split_whitespace()
        .skip_while(|w| *w != "hashes")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no hash count in {text:?}"));
    let settled = hashes / secs as f64 * 60.0 / (spm * 2f64.powi(32));
    let shares: Vec<(u64, f64)> = ledger_records(&pool)
        .iter()
        .filter_map(|r| r.get("share"))
        .map(|s| (s["time_ms"].as_u64().unwrap(), s["diff"].as_f64().unwrap()))
        .collect();
    let (first, last) = (shares.first().unwrap(), shares.last().unwrap());
    assert!(first.1 <= 1.5e-7, "the first shares are at the start difficulty: {first:?}");
    // The hash rate of a process on a shared machine moves (a first run here saw it change
    // several-fold under other builds), so the settled difficulty is held to a factor of 10
    // of the average-rate figure; the share rate over the last 10 s says it settled.
    assert!(last.1 > first.1 * 100.0, "the difficulty rose from {} to only {}", first.1, last.1);
    assert!(
        last.1 > settled / 10.0 && last.1 < settled * 10.0,
        "difficulty {} after {secs} s, expected about {settled} for {hashes} hashes",
        last.1
    );
    let recent = shares.iter().filter(|s| s.0 + 10_000 >= last.0).count() as f64 / 10.0;
    assert!(recent > 10.0 / 3.0 && recent < 30.0, "{recent} shares a second in the last 10 s, aim 10");
}
