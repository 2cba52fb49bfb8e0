//! The node's HTTP API (`quarry node --http`) on loopback: Esplora-style answers match the
//! RPC's, every endpoint answers bad parameters with 400 and a message and unknown paths with
//! 404, no request makes it panic (the server still answers afterwards), and the event
//! stream reports a new tip.

use crate::common;

use common::{address, free_port, wait_for, Node};
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

// ---- OpenMetrics text: a small structural parser ----

/// Checks `text` against the OpenMetrics text format as far as quarry's output uses it:
/// `# TYPE`/`# HELP`/`# UNIT` once per family before its samples, every sample named after a
/// declared family (with the suffix its type allows), label sets `{k="v",...}` with escaped
/// values, values that parse as numbers, cumulative histogram buckets ending at `+Inf` equal
/// to `_count`, and `# EOF` as the last line. Returns sample name (with labels) -> value.
fn parse_openmetrics(text: &str) -> Result<std::collections::BTreeMap<String, f64>, String> {
    use std::collections::{BTreeMap, HashMap};
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = BTreeMap::new();
    let lines: Vec<&str> = text.split('\n').collect();
    if lines.last() != Some(&"") || lines.get(lines.len().wrapping_sub(2)) != Some(&"# EOF") {
        return Err("the text does not end with \"# EOF\\n\"".into());
    }
    let mut buckets: HashMap<String, Vec<(f64, f64)>> = HashMap::new();
    let mut counts: HashMap<String, f64> = HashMap::new();
    for (i, line) in lines[..lines.len() - 2].iter().enumerate() {
        let at = |m: &str| format!("line {}: {m}: {line:?}", i + 1);
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let value = parts.next().unwrap_or("");
            match kind {
                "TYPE" => {
                    if !["counter", "gauge", "histogram", "info", "stateset", "summary", "unknown"]
                        .contains(&value)
                    {
                        return Err(at("unknown type"));
                    }
                    if types.insert(name.to_string(), value.to_string()).is_some() {
                        return Err(at("family declared twice"));
                    }
                }
                "HELP" | "UNIT" => {
                    if !types.contains_key(name)
                        && kind == "HELP"
                        && !lines[i + 1..].iter().any(|l| l.starts_with(&format!("# TYPE {name} ")))
                    {
                        return Err(at("HELP for a family never typed"));
                    }
                }
                _ => return Err(at("unknown comment")),
            }
            continue;
        }
        if line.is_empty() {
            return Err(at("empty line"));
        }
        let (series, value) = line.rsplit_once(' ').ok_or_else(|| at("no value"))?;
        let v: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().map_err(|_| at("value is not a number"))?,
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, ""),
            Some((n, l)) => (n, l.strip_suffix('}').ok_or_else(|| at("label set not closed"))?),
        };
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') || name.is_empty() {
            return Err(at("bad metric name"));
        }
        let mut label_map = BTreeMap::new();
        let mut rest = labels;
        while !rest.is_empty() {
            let (k, after) = rest.split_once("=\"").ok_or_else(|| at("label without =\""))?;
            let mut end = None;
            let mut escaped = false;
            for (j, c) in after.char_indices() {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => {
                        end = Some(j);
                        break;
                    }
                    _ => {}
                }
            }
            let end = end.ok_or_else(|| at("label value not closed"))?;
            label_map.insert(k.to_string(), after[..end].to_string());
            rest = after[end + 1..].strip_prefix(',').unwrap_or(&after[end + 1..]);
        }
        let family = types
            .iter()
            .find(|(f, t)| {
                let suffixes: &[&str] = match t.as_str() {
                    "counter" => &["_total", "_created"],
                    "histogram" => &["_bucket", "_count", "_sum", "_created"],
                    "info" => &["_info"],
                    _ => &[""],
                };
                suffixes.iter().any(|s| name == format!("{f}{s}"))
            })
            .map(|(f, t)| (f.clone(), t.clone()))
            .ok_or_else(|| at("sample of no declared family (or a wrong suffix for its type)"))?;
        if family.1 == "histogram" && name.ends_with("_bucket") {
            let le = label_map.remove("le").ok_or_else(|| at("bucket without le"))?;
            let le: f64 = if le == "+Inf" { f64::INFINITY } else { le.parse().map_err(|_| at("bad le"))? };
            buckets.entry(format!("{}{label_map:?}", family.0)).or_default().push((le, v));
        }
        if family.1 == "histogram" && name.ends_with("_count") {
            counts.insert(format!("{}{label_map:?}", family.0), v);
        }
        samples.insert(series.to_string(), v);
    }
    for (key, b) in &buckets {
        if !b.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1) {
            return Err(format!("{key}: buckets not increasing and cumulative: {b:?}"));
        }
        if b.last().map(|l| l.0) != Some(f64::INFINITY) || counts.get(key) != b.last().map(|l| &l.1) {
            return Err(format!("{key}: no +Inf bucket equal to _count ({:?})", counts.get(key)));
        }
    }
    if counts.keys().any(|k| !buckets.contains_key(k)) {
        return Err("a histogram _count without buckets".into());
    }
    Ok(samples)
}

#[test]
fn the_openmetrics_checker_rejects_broken_text() {
    let good = "# TYPE a counter\n# HELP a A.\na_total 1\n# TYPE h histogram\nh_bucket{le=\"1.0\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3.0\nh_count 2\n# EOF\n";
    assert!(parse_openmetrics(good).is_ok(), "{:?}", parse_openmetrics(good));
    for bad in [
        good.replace("# EOF\n", ""),
        good.replace("a_total", "b_total"),
        good.replace("a_total 1", "a 1"),
        good.replace("h_count 2", "h_count 3"),
        good.replace("le=\"1.0\"} 1", "le=\"1.0\"} 5"),
        good.replace("a_total 1", "a_total one"),
        good.replace("{le=\"+Inf\"}", "{le=\"+Inf\""),
        good.replace("# TYPE a counter", "# TYPE a counter\n# TYPE a counter"),
    ] {
        assert!(parse_openmetrics(&bad).is_err(), "accepted:\n{bad}");
    }
}

// ---- a 3-node regtest testnet: partition, mine on both sides, heal ----

fn quarry(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_quarry")).args(args).output().unwrap()
}

/// Stops the testnet (nodes and explorer) when dropped.
struct TestnetGuard(String);

impl Drop for TestnetGuard {
    fn drop(&mut self) {
        let _ = quarry(&["testnet", "--dir", &self.0, "down"]);
    }
}

struct Net {
    state: Value,
    dir: std::path::PathBuf,
}

impl Net {
    fn node(&self, name: &str) -> &Value {
        self.state["nodes"].as_array().unwrap().iter().find(|n| n["name"] == name).unwrap()
    }
    fn port(&self, name: &str, key: &str) -> SocketAddr {
        format!("127.0.0.1:{}", self.node(name)[key].as_u64().unwrap()).parse().unwrap()
    }
    fn rpc(&self, name: &str, method: &str, params: Value) -> Value {
        use quarry::rpc::client::{BlockingClient, RawParams, RpcConfig};
        let cfg = RpcConfig::new(self.port(name, "rpc_port"), &self.dir.join(name), None);
        let c = BlockingClient::new(&cfg).unwrap();
        let params = match params {
            Value::Array(a) => RawParams::Positional(a),
            _ => RawParams::Positional(vec![]),
        };
        c.wait(c.call_raw(method, params)).unwrap_or_else(|e| panic!("{name} {method}: {e}"))
    }
    fn tip(&self, name: &str) -> String {
        self.rpc(name, "getbestblockhash", json!([])).as_str().unwrap().to_string()
    }
    fn metrics(&self, name: &str) -> std::collections::BTreeMap<String, f64> {
        let (status, text) = api(self.port(name, "metrics_port"), "/metrics");
        assert_eq!(status, 200, "{text}");
        parse_openmetrics(&text)
            .unwrap_or_else(|e| panic!("{name}'s /metrics is not OpenMetrics: {e}\n{text}"))
    }
    fn peer_id(&self, name: &str) -> String {
        self.node(name)["peer_id"].as_str().unwrap().to_string()
    }
    fn p2p(&self, name: &str) -> String {
        format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", self.node(name)["p2p_port"], self.peer_id(name))
    }
}

#[test]
fn partition_and_heal_show_in_metrics_and_in_the_explorer() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tn");
    let d = dir.to_str().unwrap().to_string();
    let out = quarry(&[
        "testnet",
        "--dir",
        &d,
        "up",
        "--network",
        "regtest",
        "--nodes",
        "3",
        "--miners",
        "0",
        "--no-watch",
    ]);
    let _guard = TestnetGuard(d.clone());
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let url = stdout
        .lines()
        .find_map(|l| l.strip_prefix("explorer: "))
        .expect("up prints the explorer URL")
        .to_string();
    let state: Value = serde_json::from_slice(&std::fs::read(dir.join("testnet.json")).unwrap()).unwrap();
    let net = Net { state, dir: dir.clone() };
    let names = ["n1", "n2", "n3"];
    // up wrote a scrape config naming every node's metrics endpoint, and a dashboard.
    let scrape = std::fs::read_to_string(dir.join("prometheus.yml")).unwrap();
    for n in names {
        let target =
            format!("- targets: ['{}']\n        labels:\n          node: '{n}'", net.port(n, "metrics_port"));
        assert!(scrape.contains(&target), "prometheus.yml lacks {target}:\n{scrape}");
    }
    let dashboard: Value =
        serde_json::from_slice(&std::fs::read(dir.join("grafana-dashboard.json")).unwrap()).unwrap();
    assert!(dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["targets"][0]["expr"] == "quarry_chain_height"));
    // A real Prometheus server scrapes the nodes with that file (read back at the end).
    let prometheus = Prometheus::start(&dir.join("prometheus.yml"));
    wait_for(30, "one tip on all nodes", || names.iter().all(|n| net.tip(n) == net.tip("n1")));
    let before: Vec<f64> = names.iter().map(|n| net.metrics(n)["quarry_chain_reorgs_total"]).collect();
    let height = net.rpc("n1", "getblockcount", json!([])).as_u64().unwrap();
    assert_eq!(net.metrics("n1")["quarry_chain_height"], height as f64);

    let mut browser = Browser::start();
    if let Some(b) = browser.as_mut() {
        b.go(&url);
        b.wait_until("three nodes on one tip", "const t=[...document.querySelectorAll('#forktree .branch')].filter(b=>b.dataset.stale==='false'&&b.dataset.nodes); return t.length===1 && t[0].dataset.nodes==='n1,n2,n3'");
    }

    // Partition {n1} | {n2, n3}: each side bans the other's peer ids.
    for (a, b) in [("n1", "n2"), ("n1", "n3"), ("n2", "n1"), ("n3", "n1")] {
        net.rpc(a, "setban", json!([net.peer_id(b), "add", 3600]));
    }
    wait_for(20, "the cut links to close", || {
        net.rpc("n1", "getpeerinfo", json!([])).as_array().unwrap().is_empty()
    });
    // Different payees: the same template on both sides in the same second is the same block.
    let (pay1, pay2) =
        (address(quarry::consensus::Network::Regtest, 8), address(quarry::consensus::Network::Regtest, 9));
    let lone = net.rpc("n1", "generatetoaddress", json!([1, pay1]))[0].as_str().unwrap().to_string();
    let won = net.rpc("n2", "generatetoaddress", json!([2, pay2]))[1].as_str().unwrap().to_string();
    wait_for(20, "n3 to follow n2", || net.tip("n3") == won);
    assert_eq!(net.tip("n1"), lone);
    if let Some(b) = browser.as_mut() {
        b.wait_until(
            "two branches: n1 on one, n2 and n3 on the other",
            &format!("const t=[...document.querySelectorAll('#forktree .branch')].map(b=>b.dataset.tip+'='+b.dataset.nodes+'/'+b.dataset.stale).sort().join(' '); return t===['{lone}=n1/false','{won}=n2,n3/false'].sort().join(' ')"),
        );
        b.wait_until(
            "a cut link shown",
            "return [...document.querySelectorAll('#links .link')].some(l=>l.dataset.state==='cut')",
        );
    }

    // Heal: lift the bans, reconnect; n1 reorganises onto n2's longer branch.
    for (a, b) in [("n1", "n2"), ("n1", "n3"), ("n2", "n1"), ("n3", "n1")] {
        net.rpc(a, "setban", json!([net.peer_id(b), "remove"]));
    }
    net.rpc("n1", "addnode", json!([net.p2p("n2"), "onetry"]));
    wait_for(30, "n1 to reorganise onto n2's branch", || net.tip("n1") == won);
    let after: Vec<f64> = names.iter().map(|n| net.metrics(n)["quarry_chain_reorgs_total"]).collect();
    assert_eq!(after[0], before[0] + 1.0, "the losing node counted one reorg");
    assert_eq!((after[1], after[2]), (before[1], before[2]), "the winners did not reorganise");
    let m1 = net.metrics("n1");
    assert_eq!(m1["quarry_chain_reorg_depth_count"], 1.0);
    assert_eq!(m1["quarry_chain_reorg_depth_sum"], 1.0);
    assert!(m1["quarry_chain_stale_blocks_total"] >= 1.0);
    // n3 got n1's prefunding blocks and n2's by gossip (as compact blocks).
    let m3 = net.metrics("n3");
    let accepted = m3.get("quarry_gossip_messages_total{topic=\"compact_blocks\",verdict=\"accept\"}");
    assert!(accepted.is_some_and(|v| *v >= 3.0), "n3's gossip counters: {m3:?}");
    assert!(m1["quarry_process_resident_memory_bytes"] > 0.0 && m1["quarry_process_open_fds"] > 0.0);
    assert!(m1["quarry_rpc_requests_total{method=\"generatetoaddress\",result=\"ok\"}"] >= 1.0);
    // Every node's height and n1's reorg, read back through Prometheus' query API.
    if let Some(p) = &prometheus {
        let height = net.rpc("n2", "getblockcount", json!([])).as_f64().unwrap();
        let want: Vec<(String, f64)> = names.iter().map(|n| (n.to_string(), height)).collect();
        wait_for(60, "Prometheus to scrape every node's height", || p.query("quarry_chain_height") == want);
        let reorgs = p.query("quarry_chain_reorgs_total");
        assert_eq!(reorgs.iter().find(|(n, _)| n == "n1").map(|r| r.1), Some(after[0]), "{reorgs:?}");
    }
    drop(prometheus);

    let Some(mut b) = browser else {
        check_logs_and_dump(&net, &d, &lone);
        return;
    };
    b.wait_until(
        "one active tip with all nodes and n1's old tip marked stale",
        &format!("const t=[...document.querySelectorAll('#forktree .branch')]; return t.some(b=>b.dataset.tip==='{won}'&&b.dataset.nodes==='n1,n2,n3'&&b.dataset.stale==='false') && t.some(b=>b.dataset.tip==='{lone}'&&b.dataset.stale==='true')"),
    );
    b.wait_until("the reorg in the log", &format!("return [...document.querySelectorAll('#reorglog .reorg')].some(r=>r.dataset.node==='n1'&&r.dataset.depth==='1'&&r.dataset.old==='{lone}'&&r.dataset.new==='{won}')"));
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("explorer.png");
    b.screenshot(&shot);

    // A block page shows the RPC's values.
    let core = net.rpc("n2", "getblock", json!([won, 1]));
    b.go(&format!("{url}#/block/{won}"));
    b.wait_until(
        "the block page",
        &format!("const e=document.querySelector('#block-page'); return !!e && e.dataset.hash==='{won}'"),
    );
    let field = |b: &mut Browser, f: &str| {
        b.eval(&format!("return document.querySelector('[data-field=\"{f}\"]').textContent"))
    };
    assert_eq!(field(&mut b, "height"), core["height"].to_string());
    assert_eq!(field(&mut b, "merkle_root"), core["merkleroot"].as_str().unwrap());
    assert_eq!(field(&mut b, "tx_count"), core["nTx"].to_string());
    assert_eq!(field(&mut b, "previous"), core["previousblockhash"].as_str().unwrap());
    // A transaction page: the prefunding payment (a real spend) with its proof checked.
    let funded = (1..=height).rev().find_map(|h| {
        let hash = net.rpc("n2", "getblockhash", json!([h]));
        let blk = net.rpc("n2", "getblock", json!([hash, 1]));
        blk["tx"].as_array().unwrap().get(1).map(|t| t.as_str().unwrap().to_string())
    });
    let txid = funded.expect("up's prefunding transaction is in a block");
    let tx = net.rpc("n2", "getrawtransaction", json!([txid, true]));
    b.go(&format!("{url}#/tx/{txid}"));
    b.wait_until("the tx page with its proof checked", &format!("const e=document.querySelector('#tx-page'); return !!e && e.dataset.txid==='{txid}' && !!document.querySelector('[data-field=merkle] [data-ok]')"));
    assert_eq!(b.eval("return document.querySelector('[data-field=merkle] [data-ok]').dataset.ok"), "true");
    assert_eq!(field(&mut b, "confirmations"), tx["confirmations"].to_string());
    assert_eq!(
        b.eval("return String(document.querySelectorAll('#inputs .vin').length)"),
        tx["vin"].as_array().unwrap().len().to_string()
    );
    let values: Vec<String> = tx["vout"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            quarry::primitives::Amount::from_coins_str(&o["value"].to_string()).unwrap().to_sat().to_string()
        })
        .collect();
    assert_eq!(
        b.eval("return [...document.querySelectorAll('#outputs .vout')].map(o=>o.dataset.value).join(',')"),
        values.join(",")
    );
    assert!(b.eval("return document.querySelector('#outputs').textContent").contains("OP_DUP OP_HASH256"));
    b.go(&format!("{url}#/mempool"));
    b.wait_until("the mempool page", "return document.querySelectorAll('#mempool-page .mempool').length===3");
    b.go(&url);
    b.wait_until("the network view again", "return !!document.querySelector('#forktree .branch')");
    b.screenshot(&shot);
    eprintln!("explorer screenshot: {}", shot.display());
    check_logs_and_dump(&net, &d, &lone);
}

/// `quarry testnet logs` merges in time order with node prefixes, filters, follows; `dump`
/// saves what a bug report needs.
fn check_logs_and_dump(net: &Net, d: &str, stale: &str) {
    let ok = |out: std::process::Output| {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let all = ok(quarry(&["testnet", "--dir", d, "logs"]));
    let mut last = String::new();
    for prefix in ["n1 | ", "n2 | ", "n3 | "] {
        assert!(all.lines().any(|l| l.starts_with(prefix)), "no {prefix:?} lines");
    }
    // One node's threads stamp a line before writing it, so its own file can be a few
    // microseconds out of order; the merge keeps each file's order. Allow that jitter (2 ms),
    // nothing more.
    let micros = |ts: &str| -> Option<u64> {
        let t = ts.get(11..)?.trim_end_matches('Z');
        let (hms, frac) = t.split_once('.').unwrap_or((t, "0"));
        let mut it = hms.split(':').map(|x| x.parse::<u64>().ok());
        let (h, m, sec) = (it.next()??, it.next()??, it.next()??);
        let frac: u64 = format!("{frac:0<6}").get(..6)?.parse().ok()?;
        Some(((h * 60 + m) * 60 + sec) * 1_000_000 + frac)
    };
    let mut last_us = 0u64;
    for l in all.lines() {
        let ts = l.split(" | ").nth(1).and_then(|r| r.split_whitespace().next()).unwrap_or("");
        if ts.len() >= 20 && ts.as_bytes()[10] == b'T' {
            assert!(ts.get(..10) >= last.get(..10), "out of date order: {last} then {l}");
            if ts.get(..10) > last.get(..10) {
                last_us = 0; // a new day
            }
            let us = micros(ts).unwrap_or_else(|| panic!("unparsed timestamp in {l}"));
            assert!(us + 2_000 >= last_us, "out of time order: {last} then {l}");
            if us >= last_us {
                last_us = us;
                last = ts.to_string();
            }
        }
    }
    let tips = ok(quarry(&["testnet", "--dir", d, "logs", "--node", "n1", "--grep", "new tip"]));
    assert!(
        !tips.is_empty() && tips.lines().all(|l| l.starts_with("n1 | ") && l.contains("new tip")),
        "{tips}"
    );
    let bad = quarry(&["testnet", "--dir", d, "logs", "--grep", "("]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("--grep"));
    // --follow prints a line written after it started.
    let mut follow = std::process::Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(["testnet", "--dir", d, "logs", "--follow", "--node", "n2", "--grep", "new tip"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    // "new tip" is logged at info at most once a second (the rest at debug), so mine one
    // block at a time until one of them is printed.
    let deadline = Instant::now() + T;
    let mut seen: Vec<String> = Vec::new();
    let mut mined: Vec<String> = Vec::new();
    let printed =
        |seen: &[String], mined: &[String]| seen.iter().any(|l| mined.iter().any(|h| l.contains(h)));
    while Instant::now() < deadline && !printed(&seen, &mined) {
        let h =
            net.rpc("n2", "generatetoaddress", json!([1, address(quarry::consensus::Network::Regtest, 7)]))
                [0]
            .as_str()
            .unwrap()
            .to_string();
        mined.push(h);
        let wait_until = Instant::now() + Duration::from_millis(600);
        while Instant::now() < wait_until && !printed(&seen, &mined) {
            if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
                seen.push(l);
            }
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(printed(&seen, &mined), "--follow printed none of the new tips {mined:?}: {seen:?}");
    let h = mined.last().unwrap().clone();
    wait_for(20, "all nodes on the new tip", || ["n1", "n3"].iter().all(|n| net.tip(n) == h));
    // dump
    let out = net.dir.parent().unwrap().join("dump");
    let printed = ok(quarry(&["testnet", "--dir", d, "dump", out.to_str().unwrap()]));
    assert!(printed.contains("saved"), "{printed}");
    for f in ["testnet.json", "merged.log", "SUMMARY.txt", "n1.log", "n2.peers.json", "n3.metrics.txt"] {
        assert!(out.join(f).is_file(), "dump lacks {f}: {printed}");
    }
    parse_openmetrics(&std::fs::read_to_string(out.join("n1.metrics.txt")).unwrap()).unwrap();
    let tips: Value = serde_json::from_slice(&std::fs::read(out.join("n1.chaintips.json")).unwrap()).unwrap();
    assert!(
        tips.as_array().unwrap().iter().any(|t| t["hash"] == stale && t["status"] == "valid-fork"),
        "{tips}"
    );
    let again = quarry(&["testnet", "--dir", d, "dump", out.to_str().unwrap()]);
    assert!(!again.status.success(), "dump refuses a non-empty directory");
}

// ---- a tiny W3C WebDriver client for chromedriver ----

struct Browser {
    driver: std::process::Child,
    addr: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

/// A real Prometheus server (Debian's `prometheus` package) on loopback with the scrape
/// configuration a testnet wrote; stopped by pid when dropped. None (with a message) when it is
/// not installed; with QUARRY_REQUIRE_PROMETHEUS set (CI) a missing one fails the test.
struct Prometheus {
    child: std::process::Child,
    addr: SocketAddr,
    _data: tempfile::TempDir,
}

impl Prometheus {
    fn start(config: &std::path::Path) -> Option<Prometheus> {
        let Some(exe) = find_exe("prometheus") else {
            assert!(
                std::env::var_os("QUARRY_REQUIRE_PROMETHEUS").is_none(),
                "QUARRY_REQUIRE_PROMETHEUS is set but prometheus is not installed (apt-get install prometheus)"
            );
            eprintln!(
                "SKIP the Prometheus part: prometheus is not installed (Debian: apt-get install prometheus)"
            );
            return None;
        };
        let data = tempfile::tempdir().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = std::fs::File::create(data.path().join("prometheus.log")).unwrap();
        let child = std::process::Command::new(exe)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.path().join("tsdb").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Some(Prometheus { child, addr, _data: data })
    }

    /// The instant vector of `metric` (a bare name), as (node label, value) sorted by node;
    /// empty while Prometheus is not up or has not scraped yet.
    fn query(&self, metric: &str) -> Vec<(String, f64)> {
        assert!(metric.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'), "{metric}");
        let Ok((200, body)) = get(self.addr, &format!("/api/v1/query?query={metric}"), T, 1 << 20) else {
            return Vec::new();
        };
        let v: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("Prometheus answered {body}: {e}"));
        assert_eq!(v["status"], "success", "{v}");
        let mut out: Vec<(String, f64)> = v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let node = r["metric"]["node"].as_str().unwrap_or_default().to_string();
                (node, r["value"][1].as_str().unwrap().parse().unwrap())
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_exe(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|f| f.is_file()))
}

fn http_json(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Value {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect_timeout(&addr, T).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    // Read the head, then exactly Content-Length bytes (chromedriver keeps connections open).
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "WebDriver {method} {path}: connection closed before the head");
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or_else(|| panic!("WebDriver {method} {path}: no Content-Length in {head}"));
    while raw.len() < head_end + len {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "WebDriver {method} {path}: connection closed mid-body");
        raw.extend_from_slice(&buf[..n]);
    }
    let out = String::from_utf8_lossy(&raw[head_end..head_end + len]).to_string();
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}: {out}"))
}

impl Browser {
    /// Chromium through chromedriver, or None (with a message) when either is not installed.
    /// With QUARRY_REQUIRE_BROWSER set (CI), a missing browser fails the test instead.
    fn start() -> Option<Browser> {
        let (Some(chromium), Some(driver)) = (find_exe("chromium"), find_exe("chromedriver")) else {
            assert!(
                std::env::var_os("QUARRY_REQUIRE_BROWSER").is_none(),
                "QUARRY_REQUIRE_BROWSER is set but chromium or chromedriver is not installed (apt-get install chromium chromium-driver)"
            );
            eprintln!("SKIP the browser part: chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver); metrics were checked");
            return None;
        };
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let driver = std::process::Command::new(driver)
            .arg(format!("--port={}", addr.port()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let profile = tempfile::tempdir().unwrap();
        let mut b = Browser { driver, addr, session: String::new(), _profile: profile };
        wait_for(20, "chromedriver to answer", || std::net::TcpStream::connect_timeout(&addr, T).is_ok());
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                     "--disable-component-update", "--no-first-run", "--window-size=1280,1500",
                     format!("--user-data-dir={}", b._profile.path().display())]}}}});
        let r = http_json(addr, "POST", "/session", Some(&caps));
        b.session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {r}"))
            .to_string();
        Some(b)
    }

    fn cmd(&self, method: &str, what: &str, body: Option<Value>) -> Value {
        let r = http_json(self.addr, method, &format!("/session/{}/{what}", self.session), body.as_ref());
        assert!(r["value"].get("error").is_none(), "WebDriver {what}: {r}");
        r["value"].clone()
    }

    fn go(&mut self, url: &str) {
        self.cmd("POST", "url", Some(json!({"url": url})));
    }

    /// Runs `script` (a function body) in the page; its result as a string.
    fn eval(&mut self, script: &str) -> String {
        match self.cmd("POST", "execute/sync", Some(json!({"script": script, "args": []}))) {
            Value::String(s) => s,
            v => v.to_string(),
        }
    }

    fn wait_until(&mut self, what: &str, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let wrapped =
            format!("try {{ return !!(function(){{ {script} }})(); }} catch (e) {{ return false; }}");
        while self.eval(&wrapped) != "true" {
            if Instant::now() > deadline {
                let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("explorer-failed.png");
                self.screenshot(&shot);
                let html = self.eval("return document.querySelector('#view').innerText");
                panic!("the page did not show {what} within 20 s (screenshot {}):\n{html}", shot.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn screenshot(&mut self, path: &std::path::Path) {
        use base64::Engine;
        let png = self.cmd("GET", "screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::write(path, bytes).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                http_json(self.addr, "DELETE", &format!("/session/{}", self.session), None)
            }));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        // If the session could not be closed (a panic mid-command), Chromium outlives its
        // driver: stop the processes started with this test's own profile, by pid.
        let needle = format!("--user-data-dir={}", self._profile.path().display());
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).split('\0').any(|a| a == needle) {
                let _ = std::process::Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
            }
        }
    }
}
