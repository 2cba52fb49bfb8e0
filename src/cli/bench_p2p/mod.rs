//! `quarry bench-p2p`: the two peer-to-peer figures, measured with real `quarry node`
//! processes (children of this executable) talking over loopback.
//!
//! 1. Initial sync: node A generates N coinbase-only regtest blocks. The same blocks are
//!    connected by an in-process [`Chain`](crate::chain::Chain) (the single-node connect
//!    rate), then a fresh node B started with `--bootnode A` syncs them over the network; the
//!    ratio of the two rates is the headline.
//! 2. Block propagation: nodes A-B-C-D in a line (each `--max-peers` limited so Kademlia
//!    cannot add shortcuts), the mempool filled with about `--block-bytes` of P2PKH
//!    transactions, one block mined on A, and the moment each node first reports the new tip
//!    polled over JSON-RPC. Hop latency is the difference between neighbours.
//!
//! With `--hosts netns --latency-ms L` every node runs in its own network namespace (the
//! testnet's fabric: [`crate::testnet::hosts`]), only the links of the line exist, and the
//! propagation rounds alternate between clear links and links delayed by L one way (set just
//! before the timed block), so the zero-latency hop and the delayed hop come from one run.
//!
//! Every child process is killed (and the work directory removed unless `--keep`) when the
//! command ends, fails or panics; in netns mode the namespaces are removed too.

use crate::consensus::Network;
use crate::primitives::{Address, AddressKind, OutPoint, TxOut};
use crate::rpc::api::QuarryApiClient;
use crate::rpc::client::RpcConfig;
use crate::script::templates::pubkey_hash;
use crate::testkit::key;
use crate::testnet::hosts::{FabricState, Hosts};
use crate::testnet::links::{LinkParams, LinkTable};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub mod abuse;
pub mod durability;
mod propagation;
mod rpc;
mod sync;
pub mod utxo;

use propagation::propagation_bench;
use rpc::{Rpc, RpcTarget};
use sync::sync_bench;

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
    /// Block relay of the propagation rounds: `compact`, `full`, or `both` (rounds alternate
    /// between origin A announcing compact blocks and origin E announcing full blocks, both
    /// attached to B of the same line, so the two are measured in one run).
    #[arg(long, value_enum, default_value_t = RelayChoice::Both)]
    pub relay: RelayChoice,
    /// Percent of each timed block's transactions kept out of the other nodes' mempools
    /// (sent to the origin while it is offline): a compact block then needs one GetBlockTxn.
    #[arg(long, default_value_t = 0, value_name = "PERCENT")]
    pub missing_percent: u32,
    /// Milliseconds between tip polls while timing propagation.
    #[arg(long, default_value_t = 1)]
    pub poll_ms: u64,
    /// Where the nodes run: `loopback`, or `netns` (one network namespace per node, only the
    /// line's links; root). Needs `--relay compact` or `full`.
    #[arg(long, value_enum, default_value_t = crate::testnet::hosts::Hosts::Loopback)]
    pub hosts: crate::testnet::hosts::Hosts,
    /// With `--hosts netns`: one-way latency of every line link in the delayed rounds (ms);
    /// the other rounds run over clear links.
    #[arg(long, default_value_t = 200.0)]
    pub latency_ms: f64,
    /// Keep the work directory (chainstates and each node's `node.log`) and print its path.
    /// Children inherit RUST_LOG, e.g. RUST_LOG=info,p2p::sync=debug.
    #[arg(long)]
    pub keep: bool,
}

/// `--relay` of `quarry bench-p2p`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RelayChoice {
    /// Compact blocks only.
    Compact,
    /// Full blocks only.
    Full,
    /// Alternate rounds.
    Both,
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
    /// `--hosts netns`: the fabric (in `dir`) the nodes run in.
    fabric: Option<FabricState>,
}

/// The nodes of the bench, in fabric order.
const NAMES: [&str; 5] = ["a", "b", "c", "d", "e"];
/// The line's links (and E on B), by index into [`NAMES`].
const LINE: [(usize, usize); 4] = [(0, 1), (1, 2), (2, 3), (1, 4)];

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.clear(); // kills and waits for each
        if self.fabric.is_some() {
            if let Err(e) = crate::testnet::hosts::teardown(&self.dir) {
                eprintln!("bench-p2p: {}", e.chain());
            }
        }
        if self.keep {
            eprintln!("bench-p2p: work directory kept: {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(crate::testnet::free_port()?)
}

/// The last `n` bytes of a file, for error messages.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let start = text.len().saturating_sub(n);
    String::from_utf8_lossy(&text[start..]).into_owned()
}

impl Cluster {
    fn new(keep: bool, hosts: Hosts) -> Result<Cluster> {
        let exe = std::env::current_exe().context("finding this executable to start nodes")?;
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("quarry-bench-p2p-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut cluster = Cluster { exe, dir, keep, nodes: Vec::new(), fabric: None };
        if hosts == Hosts::Netns {
            let names: Vec<String> = NAMES.iter().map(|n| n.to_string()).collect();
            cluster.fabric = Some(FabricState::plan(&cluster.dir, &names)?);
            cluster.links(0.0)?.save(&cluster.dir)?;
            cluster.fabric = Some(crate::testnet::hosts::setup(&cluster.dir, &cluster.exe)?);
        }
        Ok(cluster)
    }

    /// The link table: only the line's links, each `latency_ms` one way.
    fn links(&self, latency_ms: f64) -> Result<LinkTable> {
        let line = LinkParams { latency_ms, ..Default::default() };
        let specs: Vec<(usize, usize, LinkParams)> = LINE.iter().map(|&(a, b)| (a, b, line)).collect();
        let mut t =
            LinkTable::new(NAMES.len(), LinkParams { loss_percent: 100.0, ..Default::default() }, &specs);
        t.generation = crate::testnet::hosts::applied(&self.dir).unwrap_or(0) + 1;
        Ok(t)
    }

    /// `--hosts netns`: sets the line's latency and waits until the shaper applied it.
    fn shape(&self, latency_ms: f64) -> Result<()> {
        if self.fabric.is_some() {
            crate::testnet::hosts::apply(&self.dir, &self.links(latency_ms)?)?;
        }
        Ok(())
    }

    /// Starts node `name` (a regtest node on loopback with its own data directory) and waits
    /// until its RPC answers. Returns its index and a client.
    fn start(&mut self, name: &'static str, extra: &[&str]) -> Result<(usize, Rpc)> {
        let datadir = self.dir.join(name);
        std::fs::create_dir_all(&datadir).with_context(|| format!("creating {}", datadir.display()))?;
        let log_path = datadir.join("node.log");
        let mut last_error = String::new();
        // A port picked free can be taken before the node binds it: retry a few times.
        let place = self.fabric.as_ref().map(|f| f.node(name).cloned());
        let (rpc_ip, p2p_ip) = match &place {
            Some(Some(n)) => (n.node_ip, n.data_ip),
            Some(None) => bail!("node {name} has no place in the fabric"),
            None => (std::net::Ipv4Addr::LOCALHOST, std::net::Ipv4Addr::LOCALHOST),
        };
        for _ in 0..3 {
            let port = free_port()?;
            let log = std::fs::File::create(&log_path)
                .with_context(|| format!("creating {}", log_path.display()))?;
            let mut cmd = match &place {
                Some(Some(n)) => {
                    let mut c = Command::new("ip");
                    c.args(["netns", "exec", &n.netns]).arg(&self.exe);
                    c
                }
                _ => Command::new(&self.exe),
            };
            let child = cmd
                .args(["node", "--network", "regtest", "--datadir"])
                .arg(&datadir)
                .args([
                    "--rpc-bind",
                    &format!("{rpc_ip}:{port}"),
                    "--listen",
                    &format!("/ip4/{p2p_ip}/tcp/0"),
                ])
                .args(["--mine-threads", "1"])
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting node {name} ({})", self.exe.display()))?;
            let rpc = SocketAddr::from((rpc_ip, port));
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
            // Fails until the node has written its cookie.
            let config = RpcConfig::new(node.rpc, &node.datadir, None).timeout(Duration::from_secs(600));
            if let Ok(rpc) = Rpc::new(RpcTarget { name: node.name, config }) {
                if rpc.wait(rpc.getblockcount()).is_ok() {
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
        let info = rpc.wait(rpc.getnetworkinfo())?;
        if let Some(a) = info.listenaddrs.first() {
            return Ok(a.clone());
        }
        if start.elapsed() > Duration::from_secs(20) {
            bail!("node {} reports no listen address after 20 s: {info:?}", rpc.target.name);
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
        let h = rpc.wait(rpc.getblockcount())? as u64;
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
    if args.missing_percent > 90 {
        bail!("--missing-percent must be at most 90, got {}", args.missing_percent);
    }
    if args.poll_ms > 1_000 {
        bail!("--poll-ms must be at most 1000, got {}", args.poll_ms);
    }
    if args.hosts == Hosts::Netns {
        if args.relay == RelayChoice::Both {
            bail!(
                "--hosts netns alternates link latency between rounds: pass --relay compact or --relay full"
            );
        }
        if !(1.0..=10_000.0).contains(&args.latency_ms) {
            bail!("--latency-ms must be 1 to 10000, got {}", args.latency_ms);
        }
    }
    let mut cluster = Cluster::new(args.keep, args.hosts)?;
    println!(
        "quarry bench-p2p: regtest nodes on {}, {} CPUs, work directory {}",
        match args.hosts {
            Hosts::Loopback => "loopback".to_string(),
            Hosts::Netns => format!(
                "network namespaces (a line of links, {} ms one way in every other round)",
                args.latency_ms
            ),
        },
        super::default_threads(),
        cluster.dir.display()
    );
    let (coins, rpc_a, rpc_b) = sync_bench(&mut cluster, args)?;
    propagation_bench(&mut cluster, args, coins, rpc_a, rpc_b)?;
    Ok(())
}
