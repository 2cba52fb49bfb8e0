//! `quarry bench-p2p`: the two peer-to-peer figures, measured with real `quarry node`
//! processes (children of this executable) talking over loopback.
//!
//! 1. Initial sync: node A generates N coinbase-only regtest blocks. The same blocks are
//!    connected by an in-process [`Chain`] (the single-node connect rate), then a fresh node B
//!    started with `--bootnode A` syncs them over the network; the ratio of the two rates is
//!    the headline.
//! 2. Block propagation: nodes A-B-C-D in a line (each `--max-peers` limited so Kademlia
//!    cannot add shortcuts), the mempool filled with about `--block-bytes` of P2PKH
//!    transactions, one block mined on A, and the moment each node first reports the new tip
//!    polled over JSON-RPC. Hop latency is the difference between neighbours.
//!
//! Every child process is killed (and the work directory removed unless `--keep`) when the
//! command ends, fails or panics.

use crate::chain::{Chain, ProcessOutcome};
use crate::consensus::Network;
use crate::primitives::{Address, AddressKind, Amount, Block, Hash256, OutPoint, Transaction, TxOut};
use crate::script::templates::pubkey_hash;
use crate::testkit::{key, p2pkh_lock, spend_p2pkh};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use rayon::prelude::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// `quarry bench-p2p`
#[derive(Args, Debug)]
pub struct BenchP2pArgs {
    /// Blocks node A generates for the initial-sync measurement.
    #[arg(long, default_value_t = 10_000)]
    pub blocks: u32,
    /// Blocks propagated across the 4-node line (each one after refilling the mempool).
    #[arg(long, default_value_t = 20)]
    pub rounds: u32,
    /// Target size of each propagated block in bytes (the mempool is filled to about this).
    #[arg(long, default_value_t = 1_000_000)]
    pub block_bytes: usize,
    /// Milliseconds between tip polls while timing propagation.
    #[arg(long, default_value_t = 1)]
    pub poll_ms: u64,
    /// Keep the work directory (chainstates and each node's `node.log`) and print its path.
    /// Children inherit RUST_LOG, e.g. RUST_LOG=info,p2p::sync=debug.
    #[arg(long)]
    pub keep: bool,
}

/// Blocks per `generatetoaddress` call, and heights per fetch batch.
const GENERATE_BATCH: u32 = 500;
/// Value of each fan-out output, which one child transaction spends (sat).
const FAN_VALUE: u64 = 100_000;
/// Fee of each child transaction (sat); about 4 sat/byte for a ~240-byte transaction.
const CHILD_FEE: u64 = 1_000;
/// Outputs per fan-out transaction (~70 KB, under the 100 KB relay limit).
const FAN_OUTPUTS: usize = 1_500;
/// Fee of each fan-out transaction (sat); about 14 sat/byte.
const FAN_FEE: u64 = 1_000_000;
/// Transactions per `sendrawtransaction` JSON-RPC batch.
const SEND_BATCH: usize = 250;
/// Longest wait for a node to answer RPC after it is spawned.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a sync may go without progress before the bench gives up.
const SYNC_STALL: Duration = Duration::from_secs(120);
/// Longest wait for a propagated block to reach every node.
const PROPAGATION_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// A minimal blocking JSON-RPC client with HTTP/1.1 keep-alive (polling at millisecond
// intervals cannot afford a TCP handshake per call).

#[derive(Clone, Debug)]
struct RpcTarget {
    name: &'static str,
    addr: SocketAddr,
    /// `Basic ...` header value.
    auth: String,
}

struct Rpc {
    target: RpcTarget,
    conn: Option<BufReader<TcpStream>>,
    next_id: u64,
}

/// Largest HTTP response body accepted (a `getblock` of a 4 MB block as hex is 8 MB).
const MAX_BODY: usize = 64 << 20;

/// Writes `request` and reads one response: (status, body, server closes). The error says
/// whether any response byte arrived (if not, a reused connection may simply have gone stale).
fn exchange(conn: &mut BufReader<TcpStream>, request: &[u8]) -> Result<(u16, Vec<u8>, bool), (bool, String)> {
    let io = |got: bool| move |e: std::io::Error| (got, e.to_string());
    conn.get_mut().write_all(request).map_err(io(false))?;
    let mut status_line = String::new();
    if conn.read_line(&mut status_line).map_err(io(false))? == 0 {
        return Err((false, "connection closed before the response".into()));
    }
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| (true, format!("bad HTTP status line {status_line:?}")))?;
    let (mut length, mut chunked, mut close) = (None, false, false);
    loop {
        let mut line = String::new();
        if conn.read_line(&mut line).map_err(io(true))? == 0 {
            return Err((true, "connection closed inside the response headers".into()));
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else { continue };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_ascii_lowercase());
        match name.as_str() {
            "content-length" => {
                length =
                    Some(value.parse::<usize>().map_err(|_| (true, format!("bad content-length {value}")))?)
            }
            "transfer-encoding" => chunked = value.contains("chunked"),
            "connection" => close = value.contains("close"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size_line = String::new();
            conn.read_line(&mut size_line).map_err(io(true))?;
            let size_hex = size_line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size_hex, 16)
                .map_err(|_| (true, format!("bad chunk size {size_line:?}")))?;
            if size == 0 {
                // Trailers, then the blank line.
                loop {
                    let mut t = String::new();
                    if conn.read_line(&mut t).map_err(io(true))? == 0 || t.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            if body.len() + size > MAX_BODY {
                return Err((true, format!("response larger than {MAX_BODY} bytes")));
            }
            let start = body.len();
            body.resize(start + size, 0);
            conn.read_exact(&mut body[start..]).map_err(io(true))?;
            let mut crlf = [0u8; 2];
            conn.read_exact(&mut crlf).map_err(io(true))?;
        }
    } else if let Some(n) = length {
        if n > MAX_BODY {
            return Err((true, format!("response of {n} bytes, more than {MAX_BODY}")));
        }
        body.resize(n, 0);
        conn.read_exact(&mut body).map_err(io(true))?;
    } else {
        conn.by_ref().take(MAX_BODY as u64 + 1).read_to_end(&mut body).map_err(io(true))?;
        close = true;
    }
    Ok((status, body, close))
}

fn rpc_result(v: &Value) -> Result<Value, String> {
    match v.get("error") {
        Some(e) if !e.is_null() => Err(e.to_string()),
        _ => v.get("result").cloned().ok_or_else(|| format!("no result in {v}")),
    }
}

impl Rpc {
    fn new(target: RpcTarget) -> Rpc {
        Rpc { target, conn: None, next_id: 1 }
    }

    fn post(&mut self, body: &str) -> Result<String> {
        let t = &self.target;
        let request = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            t.addr,
            t.auth,
            body.len()
        );
        for attempt in 0..2 {
            let reused = self.conn.is_some();
            let mut conn = match self.conn.take() {
                Some(c) => c,
                None => {
                    let s = TcpStream::connect_timeout(&t.addr, Duration::from_secs(5))
                        .with_context(|| format!("connecting to node {} RPC at {}", t.name, t.addr))?;
                    s.set_nodelay(true).ok();
                    s.set_read_timeout(Some(Duration::from_secs(600))).ok();
                    BufReader::with_capacity(1 << 16, s)
                }
            };
            match exchange(&mut conn, request.as_bytes()) {
                Ok((status, body, close)) => {
                    if !close {
                        self.conn = Some(conn);
                    }
                    let text = String::from_utf8_lossy(&body).into_owned();
                    if status != 200 {
                        bail!("node {} RPC answered HTTP {status}: {}", t.name, text.trim());
                    }
                    return Ok(text);
                }
                Err((false, _)) if reused && attempt == 0 => continue,
                Err((_, e)) => bail!("node {} RPC at {}: {e}", t.name, t.addr),
            }
        }
        bail!("node {} RPC at {}: connection keeps closing", t.name, t.addr)
    }

    fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
        let text = self.post(&body)?;
        let v: Value = serde_json::from_str(&text).with_context(|| {
            format!("node {} {method}: answer is not JSON: {text:.200}", self.target.name)
        })?;
        rpc_result(&v).map_err(|e| anyhow!("node {} {method}: {e}", self.target.name))
    }

    /// One JSON-RPC batch calling `method` once per parameter list; results in order.
    fn batch(&mut self, method: &str, params: Vec<Value>) -> Result<Vec<Result<Value, String>>> {
        if params.is_empty() {
            return Ok(Vec::new());
        }
        let n = params.len();
        let calls: Vec<Value> = params
            .into_iter()
            .enumerate()
            .map(|(i, p)| json!({"jsonrpc": "2.0", "id": i, "method": method, "params": p}))
            .collect();
        let text = self.post(&Value::Array(calls).to_string())?;
        let v: Value = serde_json::from_str(&text).with_context(|| {
            format!("node {} {method} batch: answer is not JSON: {text:.200}", self.target.name)
        })?;
        let Value::Array(items) = v else {
            bail!("node {} {method} batch: expected an array, got {v:.300}", self.target.name);
        };
        let mut out: Vec<Option<Result<Value, String>>> = (0..n).map(|_| None).collect();
        for item in items {
            let id = item.get("id").and_then(Value::as_u64).map(|i| i as usize);
            match id {
                Some(i) if i < n => out[i] = Some(rpc_result(&item)),
                _ => bail!("node {} {method} batch: answer with a bad id: {item:.300}", self.target.name),
            }
        }
        out.into_iter()
            .enumerate()
            .map(|(i, r)| {
                r.ok_or_else(|| anyhow!("node {} {method} batch: no answer for call {i}", self.target.name))
            })
            .collect()
    }

    fn u64(&mut self, method: &str) -> Result<u64> {
        let v = self.call(method, json!([]))?;
        v.as_u64().ok_or_else(|| anyhow!("node {} {method}: expected a number, got {v}", self.target.name))
    }

    fn string(&mut self, method: &str, params: Value) -> Result<String> {
        let v = self.call(method, params)?;
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("node {} {method}: expected a string, got {v:.200}", self.target.name))
    }
}

// ---------------------------------------------------------------------------------------
// Child node processes.

struct NodeProc {
    name: &'static str,
    child: Child,
    datadir: PathBuf,
    rpc: SocketAddr,
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Owns every child node and the work directory: dropping it kills and reaps the nodes,
/// then removes the directory (unless kept).
struct Cluster {
    exe: PathBuf,
    dir: PathBuf,
    keep: bool,
    nodes: Vec<NodeProc>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.clear(); // kills and waits for each
        if self.keep {
            eprintln!("bench-p2p: work directory kept: {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(l.local_addr()?.port())
}

/// The last `n` bytes of a file, for error messages.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let start = text.len().saturating_sub(n);
    String::from_utf8_lossy(&text[start..]).into_owned()
}

impl Cluster {
    fn new(keep: bool) -> Result<Cluster> {
        let exe = std::env::current_exe().context("finding this executable to start nodes")?;
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("quarry-bench-p2p-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Cluster { exe, dir, keep, nodes: Vec::new() })
    }

    /// Starts node `name` (a regtest node on loopback with its own data directory) and waits
    /// until its RPC answers. Returns its index and a client.
    fn start(&mut self, name: &'static str, extra: &[&str]) -> Result<(usize, Rpc)> {
        let datadir = self.dir.join(name);
        std::fs::create_dir_all(&datadir).with_context(|| format!("creating {}", datadir.display()))?;
        let log_path = datadir.join("node.log");
        let mut last_error = String::new();
        // A port picked free can be taken before the node binds it: retry a few times.
        for _ in 0..3 {
            let port = free_port()?;
            let log = std::fs::File::create(&log_path)
                .with_context(|| format!("creating {}", log_path.display()))?;
            let child = Command::new(&self.exe)
                .args(["node", "--network", "regtest", "--datadir"])
                .arg(&datadir)
                .args(["--rpc-bind", &format!("127.0.0.1:{port}"), "--listen", "/ip4/127.0.0.1/tcp/0"])
                .args(["--mine-threads", "1"])
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting node {name} ({})", self.exe.display()))?;
            let rpc = SocketAddr::from(([127, 0, 0, 1], port));
            self.nodes.push(NodeProc { name, child, datadir: datadir.clone(), rpc });
            let index = self.nodes.len() - 1;
            match self.wait_rpc(index) {
                Ok(client) => return Ok((index, client)),
                Err(e) => {
                    last_error = format!("{e:#}");
                    self.nodes.pop(); // kills it
                }
            }
        }
        bail!("node {name} did not start: {last_error}")
    }

    fn wait_rpc(&mut self, index: usize) -> Result<Rpc> {
        let start = Instant::now();
        loop {
            let node = &mut self.nodes[index];
            if let Some(status) = node.child.try_wait()? {
                bail!(
                    "node {} exited with {status}; the end of its log:\n{}",
                    node.name,
                    tail(&node.datadir.join("node.log"), 2000)
                );
            }
            if let Ok((user, password)) = crate::rpc::cookie::read(&node.datadir) {
                use base64::Engine;
                let auth = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
                );
                let mut rpc = Rpc::new(RpcTarget { name: node.name, addr: node.rpc, auth });
                if rpc.u64("getblockcount").is_ok() {
                    return Ok(rpc);
                }
            }
            if start.elapsed() > START_TIMEOUT {
                bail!(
                    "node {} did not answer RPC within {} s; the end of its log:\n{}",
                    node.name,
                    START_TIMEOUT.as_secs(),
                    tail(&node.datadir.join("node.log"), 2000)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Fails with the end of the node's log if it has exited.
    fn check_alive(&mut self, index: usize) -> Result<()> {
        let node = &mut self.nodes[index];
        if let Some(status) = node.child.try_wait()? {
            bail!(
                "node {} exited with {status}; the end of its log:\n{}",
                node.name,
                tail(&node.datadir.join("node.log"), 2000)
            );
        }
        Ok(())
    }
}

/// The node's first listen multiaddr with its peer id (waits until it is listening).
fn listen_addr(rpc: &mut Rpc) -> Result<String> {
    let start = Instant::now();
    loop {
        let info = rpc.call("getnetworkinfo", json!([]))?;
        if let Some(a) = info["listenaddrs"].get(0).and_then(Value::as_str) {
            return Ok(a.to_string());
        }
        if start.elapsed() > Duration::from_secs(20) {
            bail!("node {} reports no listen address after 20 s: {info}", rpc.target.name);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn regtest_address(i: u8) -> String {
    let pk = key(i).verifying_key().to_bytes();
    Address { hrp: Network::Regtest.address_hrp(), kind: AddressKind::P2pkh, hash: pubkey_hash(&pk) }.encode()
}

/// Waits (polling every 20 ms) until the node's height is at least `height`; fails after
/// `stall` without progress. Returns (time of the first height above `from`, time done),
/// measured from `t0`.
fn wait_height(
    cluster: &mut Cluster,
    index: usize,
    rpc: &mut Rpc,
    height: u64,
    t0: Instant,
) -> Result<(Option<Duration>, Duration)> {
    let mut first = None;
    let (mut last, mut last_change) = (0u64, Instant::now());
    loop {
        let h = rpc.u64("getblockcount")?;
        if h > 0 && first.is_none() {
            first = Some(t0.elapsed());
        }
        if h >= height {
            return Ok((first, t0.elapsed()));
        }
        if h != last {
            (last, last_change) = (h, Instant::now());
        } else if last_change.elapsed() > SYNC_STALL {
            bail!(
                "node {} stuck at height {h} of {height} for {} s (run with --keep and RUST_LOG=info,p2p::sync=debug to see why)",
                rpc.target.name,
                SYNC_STALL.as_secs()
            );
        }
        cluster.check_alive(index)?;
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A mature coinbase output of key 0.
#[derive(Clone)]
struct Coin {
    outpoint: OutPoint,
    out: TxOut,
}

/// Runs both measurements and prints the report.
pub fn run(args: &BenchP2pArgs) -> Result<()> {
    if !(20..=1_000_000).contains(&args.blocks) {
        bail!("--blocks must be in 20..=1000000, got {}", args.blocks);
    }
    if !(1..=10_000).contains(&args.rounds) {
        bail!("--rounds must be in 1..=10000, got {}", args.rounds);
    }
    if !(2_000..=3_500_000).contains(&args.block_bytes) {
        bail!("--block-bytes must be in 2000..=3500000, got {}", args.block_bytes);
    }
    if args.poll_ms > 1_000 {
        bail!("--poll-ms must be at most 1000, got {}", args.poll_ms);
    }
    let mut cluster = Cluster::new(args.keep)?;
    println!(
        "quarry bench-p2p: regtest nodes on loopback, {} CPUs, work directory {}",
        super::default_threads(),
        cluster.dir.display()
    );
    let (coins, rpc_a, rpc_b) = sync_bench(&mut cluster, args)?;
    propagation_bench(&mut cluster, args, coins, rpc_a, rpc_b)?;
    Ok(())
}

/// Part 1. Leaves nodes A (index 0) and B (index 1) running at height N; returns key 0's
/// mature coinbases, largest first, and clients for A and B.
fn sync_bench(cluster: &mut Cluster, args: &BenchP2pArgs) -> Result<(Vec<Coin>, Rpc, Rpc)> {
    let n = args.blocks;
    let params = Network::Regtest.params();
    println!();
    println!("== Initial sync: {n} coinbase-only blocks ==");
    let (a, mut rpc_a) = cluster.start("a", &["--max-peers", "1"])?;
    let address = regtest_address(0);
    let t = Instant::now();
    let mut made = 0;
    while made < n {
        let k = GENERATE_BATCH.min(n - made);
        rpc_a.call("generatetoaddress", json!([k, address]))?;
        made += k;
    }
    let tip = rpc_a.u64("getblockcount")?;
    if tip != n as u64 {
        bail!("node a is at height {tip} after generating {n} blocks");
    }
    println!("{:<28} {n} blocks in {:.2} s", "generate on A", secs(t.elapsed()));

    // Fetch every block once, before any timing.
    let t = Instant::now();
    let mut blocks: Vec<Block> = Vec::with_capacity(n as usize);
    let mut bytes = 0usize;
    for start in (1..=n).step_by(GENERATE_BATCH as usize) {
        let end = (start + GENERATE_BATCH - 1).min(n);
        let hashes = rpc_a.batch("getblockhash", (start..=end).map(|h| json!([h])).collect())?;
        let hashes: Vec<String> = hashes
            .into_iter()
            .map(|r| match r {
                Ok(Value::String(s)) => Ok(s),
                Ok(v) => Err(anyhow!("getblockhash: expected a string, got {v}")),
                Err(e) => Err(anyhow!("getblockhash: {e}")),
            })
            .collect::<Result<_>>()?;
        let raw = rpc_a.batch("getblock", hashes.iter().map(|h| json!([h, 0])).collect())?;
        for (hash, r) in hashes.iter().zip(raw) {
            let hexstr = match r {
                Ok(Value::String(s)) => s,
                Ok(v) => bail!("getblock {hash}: expected hex, got {v:.100}"),
                Err(e) => bail!("getblock {hash}: {e}"),
            };
            let bin = hex::decode(&hexstr).with_context(|| format!("getblock {hash}: not hex"))?;
            bytes += bin.len();
            let block = Block::decode(&bin, params.max_block_size)
                .map_err(|e| anyhow!("getblock {hash}: block does not decode: {e}"))?;
            if block.hash().to_string() != *hash {
                bail!("getblock {hash}: the block hashes to {}", block.hash());
            }
            blocks.push(block);
        }
    }
    println!(
        "{:<28} {n} blocks, {:.1} MB, in {:.2} s (not timed below)",
        "fetch from A",
        bytes as f64 / 1e6,
        secs(t.elapsed())
    );
    let maturity = params.coinbase_maturity as u64;
    let mut coins: Vec<Coin> = blocks
        .iter()
        .enumerate()
        .filter(|(i, _)| (*i as u64 + 1) + maturity <= n as u64)
        .filter_map(|(_, b)| {
            let cb = b.txs.first()?;
            let out = cb.outputs.first()?.clone();
            Some(Coin { outpoint: OutPoint { txid: cb.txid(), index: 0 }, out })
        })
        .collect();
    coins.sort_by_key(|c| std::cmp::Reverse(c.out.value.to_sat()));

    // (a) Single node: the same blocks into a fresh in-process chainstate.
    let dir = cluster.dir.join("inprocess");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut chain = Chain::open(&dir, params).context("opening the in-process chainstate")?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let t = Instant::now();
    for (i, block) in blocks.into_iter().enumerate() {
        match chain.process_block(block, now) {
            Ok(ProcessOutcome::Accepted { .. }) => {}
            Ok(other) => bail!("in-process connect: block at height {} was not accepted: {other:?}", i + 1),
            Err(e) => bail!("in-process connect: block at height {}: {e}", i + 1),
        }
    }
    let single = t.elapsed();
    if chain.tip().height as u64 != n as u64 {
        bail!("in-process connect ended at height {} of {n}", chain.tip().height);
    }
    drop(chain);
    let single_rate = n as f64 / secs(single);
    println!(
        "{:<28} {n} blocks in {:.2} s = {:.0} blocks/s (Chain::process_block, one thread calling)",
        "single-node connect",
        secs(single),
        single_rate
    );

    // (b) Network: node B syncs from A.
    let a_addr = listen_addr(&mut rpc_a)?;
    let t0 = Instant::now();
    let (b, mut rpc_b) = cluster.start("b", &["--bootnode", &a_addr, "--max-peers", "2"])?;
    let rpc_up = t0.elapsed();
    let (first, done) = wait_height(cluster, b, &mut rpc_b, n as u64, t0)?;
    let tip_a = rpc_a.string("getbestblockhash", json!([]))?;
    let tip_b = rpc_b.string("getbestblockhash", json!([]))?;
    if tip_a != tip_b {
        bail!("node b synced to {tip_b}, node a's tip is {tip_a}");
    }
    cluster.check_alive(a)?;
    let net_rate = n as f64 / secs(done);
    let first = first.unwrap_or(done);
    println!(
        "{:<28} {n} blocks in {:.2} s = {:.0} blocks/s (from B's spawn; RPC up at {:.2} s, first block at {:.2} s; {:.0} blocks/s after the first)",
        "network sync A -> B",
        secs(done),
        net_rate,
        secs(rpc_up),
        secs(first),
        (n as f64 - 1.0) / secs(done.saturating_sub(first)).max(1e-9)
    );
    let ratio = net_rate / single_rate;
    println!(
        "{:<28} {ratio:.2} (network / single-node; target >= 0.70: {})",
        "ratio",
        if ratio >= 0.7 { "met" } else { "NOT met" }
    );
    Ok((coins, rpc_a, rpc_b))
}

/// Transactions of one round: the fan-outs (confirmed first) and the children that fill the
/// timed block.
fn fan_out(coins: &mut Vec<Coin>, children: usize) -> Result<(Vec<Transaction>, Vec<(OutPoint, TxOut)>)> {
    let k0 = key(0);
    let fan_lock = p2pkh_lock(&key(1));
    let mut txs = Vec::new();
    let mut outputs = Vec::with_capacity(children);
    let mut left = children;
    while left > 0 {
        let count = left.min(FAN_OUTPUTS);
        let need = count as u64 * FAN_VALUE + FAN_FEE;
        let coin = coins.first().cloned().ok_or_else(|| {
            anyhow!("out of mature coinbases to fund the transactions: raise --blocks or lower --rounds/--block-bytes")
        })?;
        let value = coin.out.value.to_sat();
        if value < need + FAN_VALUE {
            bail!(
                "the largest mature coinbase left holds {value} sat, a fan-out needs {need}: raise --blocks or lower --rounds/--block-bytes"
            );
        }
        coins.remove(0);
        let mut outs: Vec<TxOut> = (0..count)
            .map(|_| TxOut { value: Amount::from_sat(FAN_VALUE).expect("in range"), lock: fan_lock.clone() })
            .collect();
        outs.push(TxOut { value: Amount::from_sat(value - need).expect("in range"), lock: p2pkh_lock(&k0) });
        let tx = spend_p2pkh(&k0, &[(coin.outpoint, coin.out)], outs, 0);
        let txid = tx.txid();
        for (i, out) in tx.outputs.iter().take(count).enumerate() {
            outputs.push((OutPoint { txid, index: i as u32 }, out.clone()));
        }
        txs.push(tx);
        left -= count;
    }
    Ok((txs, outputs))
}

fn child(input: &(OutPoint, TxOut)) -> Transaction {
    let half = (FAN_VALUE - CHILD_FEE) / 2;
    let outs = vec![
        TxOut { value: Amount::from_sat(half).expect("in range"), lock: p2pkh_lock(&key(2)) },
        TxOut {
            value: Amount::from_sat(FAN_VALUE - CHILD_FEE - half).expect("in range"),
            lock: p2pkh_lock(&key(3)),
        },
    ];
    spend_p2pkh(&key(1), std::slice::from_ref(input), outs, 0)
}

/// Sends `txs` to the node in batches; fails on the first rejection.
fn send_all(rpc: &mut Rpc, txs: &[Transaction]) -> Result<()> {
    for chunk in txs.chunks(SEND_BATCH) {
        let results = rpc
            .batch("sendrawtransaction", chunk.iter().map(|t| json!([hex::encode(t.encode())])).collect())?;
        for (tx, r) in chunk.iter().zip(results) {
            if let Err(e) = r {
                bail!("node {} refused transaction {}: {e}", rpc.target.name, tx.txid());
            }
        }
    }
    Ok(())
}

fn mempool_size(rpc: &mut Rpc) -> Result<u64> {
    let v = rpc.call("getmempoolinfo", json!([]))?;
    v["size"].as_u64().ok_or_else(|| anyhow!("node {} getmempoolinfo: no size in {v}", rpc.target.name))
}

/// Waits until every node's tip is `hash`.
fn wait_tip(rpcs: &mut [Rpc], hash: &str) -> Result<()> {
    let start = Instant::now();
    for rpc in rpcs.iter_mut() {
        loop {
            if rpc.string("getbestblockhash", json!([]))? == hash {
                break;
            }
            if start.elapsed() > PROPAGATION_TIMEOUT {
                bail!(
                    "node {} did not reach block {hash} within {} s",
                    rpc.target.name,
                    PROPAGATION_TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(())
}

/// Polls the node's tip until it differs from `prev`; returns the new tip and when it was
/// first seen. Reports readiness (one answered poll) on `ready` first.
fn watch_tip(
    target: RpcTarget,
    prev: &str,
    poll: Duration,
    ready: mpsc::Sender<Result<(), String>>,
    stop: &AtomicBool,
) -> Result<(String, Instant)> {
    let mut rpc = Rpc::new(target);
    match rpc.string("getbestblockhash", json!([])) {
        Ok(t) if t == prev => {
            let _ = ready.send(Ok(()));
        }
        Ok(t) => {
            let e = format!("node {} tip {t} is not the expected {prev} before mining", rpc.target.name);
            let _ = ready.send(Err(e.clone()));
            bail!(e);
        }
        Err(e) => {
            let _ = ready.send(Err(format!("{e:#}")));
            return Err(e);
        }
    }
    let start = Instant::now();
    loop {
        let tip = rpc.string("getbestblockhash", json!([]))?;
        if tip != prev {
            return Ok((tip, Instant::now()));
        }
        if stop.load(Ordering::SeqCst) {
            bail!("stopped");
        }
        if start.elapsed() > PROPAGATION_TIMEOUT {
            bail!("node {} saw no new tip within {} s", rpc.target.name, PROPAGATION_TIMEOUT.as_secs());
        }
        if !poll.is_zero() {
            std::thread::sleep(poll);
        }
    }
}

struct Round {
    size: u64,
    txs: u64,
    /// Mempool sizes of A..D just before mining.
    pools: [u64; 4],
    /// Times A..D first reported the block, from A.
    seen: [f64; 4],
}

/// Part 2: the A-B-C-D line.
fn propagation_bench(
    cluster: &mut Cluster,
    args: &BenchP2pArgs,
    mut coins: Vec<Coin>,
    rpc_a: Rpc,
    rpc_b: Rpc,
) -> Result<()> {
    println!();
    println!(
        "== Block propagation: line A-B-C-D, blocks of about {} bytes, {} rounds ==",
        args.block_bytes, args.rounds
    );
    let names = ["a", "b", "c", "d"];
    // Nodes a and b are running (indices 0 and 1).
    let mut rpcs: Vec<Rpc> = vec![rpc_a, rpc_b];
    let b_addr = listen_addr(&mut rpcs[1])?;
    let height = rpcs[0].u64("getblockcount")?;
    // D starts once C has synced: a node syncing from a peer that is itself still syncing
    // learns only the height that peer had when they connected (see BENCHMARKS.md).
    let t0 = Instant::now();
    let (c, rpc_c) = cluster.start("c", &["--bootnode", &b_addr, "--max-peers", "2"])?;
    rpcs.push(rpc_c);
    let (_, c_done) = wait_height(cluster, c, &mut rpcs[2], height, t0)?;
    let c_addr = listen_addr(&mut rpcs[2])?;
    let t0 = Instant::now();
    let (d, rpc_d) = cluster.start("d", &["--bootnode", &c_addr, "--max-peers", "1"])?;
    rpcs.push(rpc_d);
    let (_, d_done) = wait_height(cluster, d, &mut rpcs[3], height, t0)?;
    println!(
        "{:<28} C synced {height} blocks from B in {:.2} s, then D from C in {:.2} s",
        "line setup",
        secs(c_done),
        secs(d_done)
    );
    let check_line = |rpcs: &mut [Rpc]| -> Result<()> {
        let want = [1u64, 2, 2, 1];
        for (rpc, w) in rpcs.iter_mut().zip(want) {
            let got = rpc.u64("getconnectioncount")?;
            if got != w {
                bail!("node {} has {got} connections, the line A-B-C-D needs {w}", rpc.target.name);
            }
        }
        Ok(())
    };
    let start = Instant::now();
    while let Err(e) = check_line(&mut rpcs) {
        if start.elapsed() > Duration::from_secs(20) {
            return Err(e);
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    let sample = child(&(
        OutPoint { txid: Hash256([0; 32]), index: 0 },
        TxOut { value: Amount::from_sat(FAN_VALUE).expect("in range"), lock: p2pkh_lock(&key(1)) },
    ));
    let child_size = sample.encoded_size();
    // Header, transaction count and a coinbase of about 100 bytes.
    let children = (args.block_bytes.saturating_sub(200)).div_ceil(child_size).max(1);
    println!(
        "{:<28} {children} P2PKH transactions of {child_size} bytes (1 input, 2 outputs) per block",
        "block contents"
    );
    let poll = Duration::from_millis(args.poll_ms);
    let miner_address = regtest_address(4);
    let mut rounds: Vec<Round> = Vec::new();
    println!(
        "{:>5} {:>10} {:>6} {:>23} {:>9} {:>9} {:>9} {:>9}",
        "round", "bytes", "txs", "mempool A/B/C/D", "A->B ms", "B->C ms", "C->D ms", "A->D ms"
    );
    for round in 1..=args.rounds {
        // Setup block: confirms this round's fan-out transactions.
        let (fans, outputs) = fan_out(&mut coins, children)?;
        send_all(&mut rpcs[0], &fans)?;
        let setup = rpcs[0].call("generatetoaddress", json!([1, miner_address]))?;
        let setup = setup
            .get(0)
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("generatetoaddress: no block hash in {setup}"))?
            .to_string();
        wait_tip(&mut rpcs, &setup)?;
        // Fill A's mempool; gossip relays to B, C, D.
        let txs: Vec<Transaction> = outputs.par_iter().map(child).collect();
        send_all(&mut rpcs[0], &txs)?;
        // Let relay settle: every pool holds all, or none grew for 2 s (30 s at most).
        let (mut pools, mut last_change, settle) = ([0u64; 4], Instant::now(), Instant::now());
        loop {
            let mut now_pools = [0u64; 4];
            for (p, rpc) in now_pools.iter_mut().zip(rpcs.iter_mut()) {
                *p = mempool_size(rpc)?;
            }
            if now_pools != pools {
                (pools, last_change) = (now_pools, Instant::now());
            }
            if pools.iter().all(|&p| p >= pools[0])
                || last_change.elapsed() > Duration::from_secs(2)
                || settle.elapsed() > Duration::from_secs(30)
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        check_line(&mut rpcs)?;

        // The timed block.
        let targets: Vec<RpcTarget> = rpcs.iter().map(|r| r.target.clone()).collect();
        let stop = AtomicBool::new(false);
        let (mined, seen) = std::thread::scope(|s| -> Result<(String, Vec<(String, Instant)>)> {
            let (ready_tx, ready_rx) = mpsc::channel();
            let handles: Vec<_> = targets
                .into_iter()
                .map(|t| {
                    let (ready, stop, prev) = (ready_tx.clone(), &stop, setup.as_str());
                    s.spawn(move || watch_tip(t, prev, poll, ready, stop))
                })
                .collect();
            let result = (|| -> Result<String> {
                for _ in 0..handles.len() {
                    match ready_rx.recv_timeout(Duration::from_secs(20)) {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => bail!("tip watcher: {e}"),
                        Err(_) => bail!("tip watchers did not start within 20 s"),
                    }
                }
                let v = rpcs[0].call("generatetoaddress", json!([1, miner_address]))?;
                v.get(0)
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| anyhow!("generatetoaddress: no block hash in {v}"))
            })();
            if result.is_err() {
                stop.store(true, Ordering::SeqCst);
            }
            let mut seen = Vec::new();
            let mut first_err = None;
            for h in handles {
                match h.join() {
                    Ok(Ok(x)) => seen.push(x),
                    Ok(Err(e)) => {
                        first_err.get_or_insert(e);
                    }
                    Err(_) => {
                        first_err.get_or_insert(anyhow!("a tip watcher panicked"));
                    }
                }
            }
            let mined = result?;
            if let Some(e) = first_err {
                return Err(e);
            }
            Ok((mined, seen))
        })?;
        for ((tip, _), name) in seen.iter().zip(names) {
            if *tip != mined {
                bail!("node {name} moved to {tip}, not the mined block {mined}");
            }
        }
        let info = rpcs[0].call("getblock", json!([mined, 1]))?;
        let size = info["size"].as_u64().ok_or_else(|| anyhow!("getblock: no size in {info:.200}"))?;
        let ntx = info["tx"].as_array().map_or(0, |a| a.len() as u64);
        let base = seen[0].1;
        let at = |i: usize| seen[i].1.saturating_duration_since(base).as_secs_f64() * 1e3;
        let r = Round { size, txs: ntx, pools, seen: [0.0, at(1), at(2), at(3)] };
        println!(
            "{round:>5} {:>10} {:>6} {:>23} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            r.size,
            r.txs,
            format!("{}/{}/{}/{}", r.pools[0], r.pools[1], r.pools[2], r.pools[3]),
            r.seen[1] - r.seen[0],
            r.seen[2] - r.seen[1],
            r.seen[3] - r.seen[2],
            r.seen[3]
        );
        rounds.push(r);
        for i in 0..4 {
            cluster.check_alive(i)?;
        }
    }

    let mut hops: Vec<f64> =
        rounds.iter().flat_map(|r| (0..3).map(move |i| r.seen[i + 1] - r.seen[i])).collect();
    hops.sort_by(|a, b| a.total_cmp(b));
    let mut total: Vec<f64> = rounds.iter().map(|r| r.seen[3]).collect();
    total.sort_by(|a, b| a.total_cmp(b));
    let sizes: Vec<u64> = rounds.iter().map(|r| r.size).collect();
    let mean_size = sizes.iter().sum::<u64>() as f64 / sizes.len() as f64;
    let full = rounds.iter().filter(|r| r.pools.iter().all(|&p| p >= r.pools[0])).count();
    println!();
    println!(
        "{:<28} {:.1} ms / {:.1} ms over {} hops",
        "hop latency p50 / p99",
        percentile(&hops, 50.0),
        percentile(&hops, 99.0),
        hops.len()
    );
    for (i, name) in ["A->B", "B->C", "C->D"].iter().enumerate() {
        let mut h: Vec<f64> = rounds.iter().map(|r| r.seen[i + 1] - r.seen[i]).collect();
        h.sort_by(|a, b| a.total_cmp(b));
        println!(
            "{:<28} p50 {:.1} ms, p99 {:.1} ms",
            format!("  hop {name}"),
            percentile(&h, 50.0),
            percentile(&h, 99.0)
        );
    }
    println!(
        "{:<28} p50 {:.1} ms, p99 {:.1} ms",
        "A->D (3 hops)",
        percentile(&total, 50.0),
        percentile(&total, 99.0)
    );
    println!(
        "{:<28} mean {:.0} bytes (min {}, max {}), {} transactions",
        "block size",
        mean_size,
        sizes.iter().min().copied().unwrap_or(0),
        sizes.iter().max().copied().unwrap_or(0),
        rounds.first().map_or(0, |r| r.txs)
    );
    println!(
        "{:<28} {full} of {} rounds had every transaction in all four mempools before mining",
        "relayed mempools",
        rounds.len()
    );
    println!(
        "{:<28} every {} ms per node over keep-alive JSON-RPC (getbestblockhash)",
        "tip polling", args.poll_ms
    );
    Ok(())
}
