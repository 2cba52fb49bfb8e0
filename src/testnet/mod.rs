//! The local multi-node testnet: `quarry testnet up|status|down|scenario|spam|logs|dump`.
//!
//! A testnet lives in one directory: `testnet.json` (the nodes, their ports, peer ids and
//! process ids) and a data directory per node (chainstate, node key, wallet, `node.log`).
//! Nodes are ordinary `quarry node` processes in their own process group, so they keep
//! running after `up` returns; `down` stops them gracefully (RPC `stop`, then SIGTERM, then
//! SIGKILL) and checks that no process is left. With `--hosts loopback` (the default) they
//! all use 127.0.0.1; with `--hosts netns` each runs in its own network namespace
//! ([`hosts`]) and its links are shaped ([`links`], [`shaper`]); `down` then also removes
//! every namespace and device the testnet made.

pub mod clean;
pub mod error;
pub mod hosts;
pub mod links;
pub mod logs;
pub mod observe;
pub mod scenario;
pub mod shaper;
pub mod soak;
pub mod spam;
mod status;
pub mod topology;
mod up;

pub use clean::{clean, Cleaned};
pub use error::TestnetError;
pub use status::{status, status_table, NodeStatus};
pub use up::{prefund, up, UpOptions, PREFUND_COINS};

use crate::consensus::Network;
use crate::rpc::api::QuarryApiClient;
use crate::rpc::client::{BlockingClient, RpcConfig, RpcError};
use crate::wallet::keystore::Wallet;
use error::{Result, ResultExt};
use hosts::{FabricState, Hosts};
use links::{LinkParams, LinkSpec, LinkTable};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use topology::Topology;

/// One node as recorded in `testnet.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeState {
    /// Name (and data directory name).
    pub name: String,
    /// Mines continuously.
    pub mine: bool,
    /// Miner threads.
    pub threads: usize,
    /// Names of its bootnodes.
    pub bootnodes: Vec<String>,
    /// JSON-RPC port on 127.0.0.1.
    pub rpc_port: u16,
    /// P2P port on 127.0.0.1.
    pub p2p_port: u16,
    /// libp2p peer id (from the node key made at creation).
    pub peer_id: String,
    /// Process id while running.
    pub pid: Option<u32>,
    /// Started by `up` (false: a scenario starts it later).
    pub start: bool,
    /// HTTP API port on 127.0.0.1 (`--http`; absent in testnets made before it existed).
    #[serde(default)]
    pub http_port: Option<u16>,
    /// Metrics port on 127.0.0.1 (`--metrics`).
    #[serde(default)]
    pub metrics_port: Option<u16>,
    /// `--hosts netns`: the node's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// `--hosts netns`: its management address (RPC, HTTP API, metrics; default 127.0.0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
    /// `--hosts netns`: its P2P address (default 127.0.0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p2p_ip: Option<Ipv4Addr>,
    /// How its miner publishes (`--strategy`).
    #[serde(default, skip_serializing_if = "crate::miner::MiningStrategy::is_honest")]
    pub strategy: crate::miner::MiningStrategy,
    /// Its miner's hash-rate limit, hashes per second (`--mine-hashrate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashrate: Option<f64>,
    /// fsyncs its chainstate on every block (`--sync-writes`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sync_writes: bool,
}

/// The testnet's explorer process, as recorded in `testnet.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExplorerState {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Process id while running.
    pub pid: Option<u32>,
}

/// `testnet.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    /// Network name.
    pub network: String,
    /// The nodes, in topology order.
    pub nodes: Vec<NodeState>,
    /// The explorer `up` started.
    #[serde(default)]
    pub explorer: Option<ExplorerState>,
    /// Where the nodes run.
    #[serde(default)]
    pub hosts: Hosts,
    /// The topology's conditions of every link not listed in `links` (netns only).
    #[serde(default, skip_serializing_if = "LinkParams::is_clear")]
    pub default_link: LinkParams,
    /// The topology's links (netns only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<LinkSpec>,
}

/// A testnet directory and the node processes this process started.
pub struct Testnet {
    /// The directory.
    pub dir: PathBuf,
    /// What `testnet.json` says.
    pub state: State,
    /// The network.
    pub network: Network,
    /// Environment variables every node this value starts gets (not saved; the soak's
    /// test-only settings).
    pub node_env: Vec<(String, String)>,
    children: HashMap<String, Child>,
}

/// The default testnet directory: `~/.quarry/testnet`.
pub fn default_dir() -> Result<PathBuf> {
    let home =
        std::env::var_os("HOME").ok_or_else(|| TestnetError::refused("HOME is not set: pass --dir"))?;
    Ok(PathBuf::from(home).join(".quarry").join("testnet"))
}

/// `quarry testnet [--dir DIR] REST`: a command line to show the user, with `--dir` whenever
/// `dir` is not the default, so every hint works as printed.
pub fn hint(dir: &Path, rest: &str) -> String {
    let same = |a: &Path, b: &Path| {
        a == b || matches!((std::fs::canonicalize(a), std::fs::canonicalize(b)), (Ok(x), Ok(y)) if x == y)
    };
    match default_dir() {
        Ok(d) if same(&d, dir) => format!("quarry testnet {rest}"),
        _ => format!("quarry testnet --dir {} {rest}", shell_word(&dir.to_string_lossy())),
    }
}

/// `w` quoted for a POSIX shell when it needs it.
fn shell_word(w: &str) -> String {
    if !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+:@%,=".contains(c)) {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

/// A loopback port nobody listens on now. Chosen at random below Linux's ephemeral range
/// (32768-60999), where the kernel never hands out ports by itself: a port found by binding
/// port 0 and released could be taken by any outgoing connection's source port or another
/// bind before the node binds it. Never the same port twice in one process: the ports of one
/// `up` are all chosen before any node binds its own, so a repeat would collide.
pub fn free_port() -> Result<u16> {
    use rand::Rng;
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = rand::thread_rng();
    for _ in 0..200 {
        let port = rng.gen_range(20_000..32_000);
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return Ok(port);
        }
    }
    let os = |source| TestnetError::Os { action: "finding a free port".into(), source };
    Ok(TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(os)?.port())
}

/// This program's executable (the nodes, the explorer and the shaper are it, run again).
pub(crate) fn current_exe() -> Result<PathBuf> {
    std::env::current_exe()
        .map_err(|source| TestnetError::Os { action: "finding the quarry executable".into(), source })
}

/// True if `pid` is a live (not zombie) process whose command line mentions `needle`.
pub fn process_alive(pid: u32, needle: &str) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // The state follows the parenthesised command name.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()).unwrap_or("");
    if state == "Z" || state == "X" {
        return false;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&cmdline).contains(needle)
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").arg(sig).arg(pid.to_string()).stderr(Stdio::null()).status();
}

impl Testnet {
    /// Path of the state file in `dir`.
    pub fn state_path(dir: &Path) -> PathBuf {
        dir.join("testnet.json")
    }

    /// Creates a testnet in `dir` (which must not hold one): ports, data directories, node
    /// keys (so peer ids are known before start) and one wallet per node. Every node
    /// directory is new (an existing non-empty one is refused, so `--clean` only ever deletes
    /// what a testnet made); on failure the node directories made so far are removed again.
    pub fn create(dir: &Path, topology: &Topology) -> Result<Testnet> {
        topology.check()?;
        if topology.hosts == Hosts::Netns {
            hosts::require_root()?;
        }
        if Testnet::state_path(dir).exists() {
            return Err(TestnetError::refused(format!(
                "{} already holds a testnet (pass --clean to wipe it)",
                dir.display()
            )));
        }
        for spec in &topology.nodes {
            let datadir = dir.join(&spec.name);
            if std::fs::read_dir(&datadir).is_ok_and(|mut entries| entries.next().is_some()) {
                return Err(TestnetError::refused(format!(
                    "{} already exists and is not empty: a testnet's node directories must be new; \
                     pass another --dir",
                    datadir.display()
                )));
            }
        }
        std::fs::create_dir_all(dir).io("creating", dir)?;
        // Absolute, so process checks (which look for the data directory in a node's command
        // line) work from any working directory.
        let dir = &std::fs::canonicalize(dir).io("resolving", dir)?;
        let mut made = Vec::new();
        let result = Testnet::create_nodes(dir, topology, &mut made);
        if result.is_err() {
            for d in &made {
                let _ = std::fs::remove_dir_all(d);
            }
        }
        result
    }

    fn create_nodes(dir: &Path, topology: &Topology, made: &mut Vec<PathBuf>) -> Result<Testnet> {
        let network = topology.network;
        let mut nodes = Vec::new();
        for spec in &topology.nodes {
            let datadir = dir.join(&spec.name);
            std::fs::create_dir_all(&datadir).io("creating", &datadir)?;
            made.push(datadir.clone());
            let key = crate::p2p::behaviour::load_or_create_key(&datadir.join("node_key"))?;
            Wallet::create(&datadir.join("wallet.json"), network, None, None).map_err(|source| {
                TestnetError::Keystore { action: "creating", node: spec.name.clone(), source }
            })?;
            nodes.push(NodeState {
                name: spec.name.clone(),
                mine: spec.mine,
                threads: spec.threads,
                bootnodes: spec.bootnodes.clone(),
                rpc_port: match spec.rpc_port {
                    Some(p) => p,
                    None => free_port()?,
                },
                p2p_port: match spec.p2p_port {
                    Some(p) => p,
                    None => free_port()?,
                },
                peer_id: key.public().to_peer_id().to_string(),
                pid: None,
                start: spec.start,
                http_port: Some(free_port()?),
                metrics_port: Some(free_port()?),
                netns: None,
                ip: None,
                p2p_ip: None,
                strategy: spec.strategy,
                hashrate: spec.hashrate,
                sync_writes: spec.sync_writes,
            });
        }
        let mut t = Testnet {
            dir: dir.to_path_buf(),
            state: State {
                network: network.name().into(),
                nodes,
                explorer: None,
                hosts: topology.hosts,
                default_link: topology.default_link.unwrap_or_default(),
                links: topology.links.clone(),
            },
            network,
            node_env: Vec::new(),
            children: HashMap::new(),
        };
        if topology.hosts == Hosts::Netns {
            // Saved first, so a crash right after the plan still leaves a testnet that `down`
            // knows how to clean.
            t.save()?;
            let fabric = FabricState::plan(dir, &t.names())?;
            for n in &mut t.state.nodes {
                let f = fabric.node(&n.name).ok_or_else(|| {
                    TestnetError::refused(format!("node {} has no place in the fabric", n.name))
                })?;
                n.netns = Some(f.netns.clone());
                n.ip = Some(f.node_ip);
                n.p2p_ip = Some(f.data_ip);
            }
        }
        t.save()?;
        Ok(t)
    }

    /// Opens the testnet in `dir`.
    pub fn open(dir: &Path) -> Result<Testnet> {
        let path = Testnet::state_path(dir);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            TestnetError::refused(format!(
                "no testnet in {} ({e}): start one with `{}`",
                dir.display(),
                hint(dir, "up")
            ))
        })?;
        let state: State = serde_json::from_str(&text).map_err(|source| TestnetError::Json {
            path: path.clone(),
            verdict: "is corrupt",
            source,
        })?;
        let network = state.network.parse().map_err(TestnetError::Refused)?;
        Ok(Testnet { dir: dir.to_path_buf(), state, network, node_env: Vec::new(), children: HashMap::new() })
    }

    /// Writes `testnet.json` atomically.
    pub fn save(&self) -> Result<()> {
        let path = Testnet::state_path(&self.dir);
        let tmp = path.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(&self.state)
            .map_err(|source| TestnetError::Encode { what: "the testnet state", source })?;
        std::fs::write(&tmp, json).io("writing", &tmp)?;
        std::fs::rename(&tmp, &path).io("writing", &path)?;
        Ok(())
    }

    fn node(&self, name: &str) -> Result<&NodeState> {
        self.state
            .nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| TestnetError::UnknownNode { name: name.into(), known: self.names() })
    }

    fn node_mut(&mut self, name: &str) -> Result<&mut NodeState> {
        let unknown = || TestnetError::UnknownNode { name: name.into(), known: Vec::new() };
        self.state.nodes.iter_mut().find(|n| n.name == name).ok_or_else(unknown)
    }

    /// Node names in order.
    pub fn names(&self) -> Vec<String> {
        self.state.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// A node's data directory.
    pub fn datadir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A node's wallet file.
    pub fn wallet_path(&self, name: &str) -> PathBuf {
        self.datadir(name).join("wallet.json")
    }

    /// Opens a node's wallet.
    pub fn wallet(&self, name: &str) -> Result<Wallet> {
        Wallet::open(&self.wallet_path(name), self.network, None).map_err(|source| TestnetError::Keystore {
            action: "opening",
            node: name.into(),
            source,
        })
    }

    /// An RPC client for a node.
    pub fn rpc(&self, name: &str) -> Result<BlockingClient> {
        BlockingClient::new(&self.rpc_config(name)?).map_err(TestnetError::rpc(name))
    }

    /// Where a node's RPC is and how to authenticate (its cookie).
    pub fn rpc_config(&self, name: &str) -> Result<RpcConfig> {
        let n = self.node(name)?;
        Ok(RpcConfig::new(SocketAddr::from((self.node_ip(name)?, n.rpc_port)), &self.datadir(name), None))
    }

    /// The address a node's RPC, HTTP API and metrics listen on: 127.0.0.1, or with `--hosts
    /// netns` its management address (reachable from the host).
    pub fn node_ip(&self, name: &str) -> Result<Ipv4Addr> {
        Ok(self.node(name)?.ip.unwrap_or(Ipv4Addr::LOCALHOST))
    }

    /// The base link table of the topology (before any `shape`), one generation above what
    /// `links.json` holds now.
    pub fn base_links(&self) -> Result<LinkTable> {
        let names = self.names();
        let index = |n: &str| {
            names
                .iter()
                .position(|x| x == n)
                .ok_or_else(|| TestnetError::refused(format!("link names unknown node {n:?}")))
        };
        let mut specs = Vec::new();
        for l in &self.state.links {
            specs.push((index(&l.nodes[0])?, index(&l.nodes[1])?, l.params()));
        }
        let mut t = LinkTable::new(names.len(), self.state.default_link, &specs);
        t.generation = self.current_links().map_or(1, |c| c.generation + 1);
        Ok(t)
    }

    /// The link table in force (`links.json`), if this is a netns testnet that has one.
    pub fn current_links(&self) -> Option<LinkTable> {
        LinkTable::load(&self.dir).ok()
    }

    /// Changes the links (netns only): writes the table and waits until the shaper applies it.
    pub fn set_links(&self, mut table: LinkTable) -> Result<()> {
        if self.state.hosts != Hosts::Netns {
            return Err(TestnetError::refused(
                "links can be shaped or cut only in a --hosts netns testnet (this one runs on loopback)",
            ));
        }
        table.generation = self.current_links().map_or(1, |c| c.generation + 1);
        hosts::apply(&self.dir, &table)
    }

    /// Index of node `name` in the state (its shaper port).
    pub fn index(&self, name: &str) -> Result<usize> {
        let unknown = || TestnetError::UnknownNode { name: name.into(), known: Vec::new() };
        self.state.nodes.iter().position(|n| n.name == name).ok_or_else(unknown)
    }

    /// True if the netns fabric (namespaces and shaper) is up.
    pub fn fabric_up(&self) -> bool {
        match FabricState::load(&self.dir) {
            Ok(f) => f.shaper_pid.is_some_and(|pid| process_alive(pid, &self.dir.to_string_lossy())),
            Err(_) => false,
        }
    }

    /// Makes the namespaces and starts the shaper with the topology's links (netns only; a
    /// no-op when they are up).
    pub fn setup_hosts(&mut self) -> Result<()> {
        if self.state.hosts != Hosts::Netns || self.fabric_up() {
            return Ok(());
        }
        let table = self.base_links()?;
        table.save(&self.dir)?;
        let exe = current_exe()?;
        let fabric = hosts::setup(&self.dir, &exe)?;
        if fabric.netem == Some(true) {
            println!(
                "namespaces up (fabric {}; the kernel has netem, links are shaped by quarry's shaper)",
                fabric.id
            );
        } else {
            println!(
                "namespaces up (fabric {}; no netem in this kernel: links are shaped by quarry's shaper)",
                fabric.id
            );
        }
        Ok(())
    }

    /// Runs `f` with a client for node `name`: `t.ask(name, |c| c.wait(c.getblockcount()))`.
    /// Errors name the node.
    pub fn ask<T>(&self, name: &str, f: impl FnOnce(&BlockingClient) -> Result<T, RpcError>) -> Result<T> {
        f(&self.rpc(name)?).map_err(TestnetError::rpc(name))
    }

    /// A node's dialable multiaddr.
    pub fn p2p_addr(&self, name: &str) -> Result<String> {
        let n = self.node(name)?;
        Ok(format!("/ip4/{}/tcp/{}/p2p/{}", n.p2p_ip.unwrap_or(Ipv4Addr::LOCALHOST), n.p2p_port, n.peer_id))
    }

    /// True while the node's process runs.
    pub fn is_running(&mut self, name: &str) -> bool {
        // A process this one started: ask the OS about the child itself (its /proc entry
        // shows our own command line until it has exec'd).
        if let Some(child) = self.children.get_mut(name) {
            match child.try_wait() {
                Ok(None) => return true,
                _ => {
                    self.children.remove(name);
                    return false;
                }
            }
        }
        let datadir = self.datadir(name);
        let Ok(n) = self.node(name) else { return false };
        n.pid.is_some_and(|pid| process_alive(pid, &datadir.to_string_lossy()))
    }

    /// Starts a node's process (its bootnodes' addresses come from the state).
    pub fn start_node(&mut self, name: &str) -> Result<()> {
        if self.is_running(name) {
            return Err(TestnetError::AlreadyRunning { name: name.into() });
        }
        let n = self.node(name)?.clone();
        let datadir = self.datadir(name);
        let exe = current_exe()?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(name))
            .io("opening", self.log_path(name))?;
        let ip = n.ip.unwrap_or(Ipv4Addr::LOCALHOST);
        let mut cmd = match &n.netns {
            Some(ns) => {
                if !self.fabric_up() {
                    return Err(TestnetError::refused(format!(
                        "node {name} runs in namespace {ns}, which is not up: start the testnet with `{}`",
                        hint(&self.dir, "up")
                    )));
                }
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        cmd.args(["node", "--network", self.network.name()])
            .arg("--datadir")
            .arg(&datadir)
            .arg("--rpc-bind")
            .arg(format!("{ip}:{}", n.rpc_port));
        match n.p2p_ip {
            Some(p2p) => cmd.arg("--listen").arg(format!("/ip4/{p2p}/tcp/{}", n.p2p_port)),
            None => cmd.arg("--p2p-port").arg(n.p2p_port.to_string()),
        };
        cmd.arg("--mine-threads").arg(n.threads.to_string());
        if n.sync_writes {
            cmd.arg("--sync-writes");
        }
        for b in &n.bootnodes {
            cmd.arg("--bootnode").arg(self.p2p_addr(b)?);
        }
        if let Some(port) = n.http_port {
            cmd.arg("--http").arg(format!("{ip}:{port}"));
        }
        if let Some(port) = n.metrics_port {
            cmd.arg("--metrics").arg(format!("{ip}:{port}"));
        }
        if n.ip.is_some() && (n.http_port.is_some() || n.metrics_port.is_some()) {
            // The management address is reachable from the host alone (see `hosts`).
            cmd.arg("--public-http");
        }
        if n.mine {
            let address = self.wallet(name)?.address(0).encode();
            cmd.arg("--mine").arg("--miner-address").arg(address);
            cmd.arg("--strategy").arg(n.strategy.name());
            if let Some(h) = n.hashrate {
                cmd.arg("--mine-hashrate").arg(h.to_string());
            }
        }
        cmd.envs(self.node_env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null()).stdout(log.try_clone().io("opening", self.log_path(name))?).stderr(log);
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child =
            cmd.spawn().map_err(|source| TestnetError::Spawn { what: format!("node {name}"), source })?;
        self.node_mut(name)?.pid = Some(child.id());
        self.children.insert(name.to_string(), child);
        self.save()
    }

    /// A node's log file.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.datadir(name).join("node.log")
    }

    /// The last lines of a node's log, for error messages.
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path(name)).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Waits until the node answers RPC.
    pub fn wait_ready(&mut self, name: &str, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            if self.ask(name, |c| c.wait(c.getblockcount())).is_ok() {
                return Ok(());
            }
            if !self.is_running(name) {
                return Err(TestnetError::Exited {
                    name: name.into(),
                    log: self.log_path(name),
                    tail: self.log_tail(name, 15),
                });
            }
            if start.elapsed() > timeout {
                return Err(TestnetError::NotReady {
                    name: name.into(),
                    timeout,
                    log: self.log_path(name),
                    tail: self.log_tail(name, 15),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops a node gracefully: `stop` over RPC, then SIGTERM, then SIGKILL.
    pub fn stop_node(&mut self, name: &str) -> Result<()> {
        if !self.is_running(name) {
            self.node_mut(name)?.pid = None;
            return self.save();
        }
        let pid = self.node(name)?.pid.expect("running nodes have a pid");
        let _ = self.ask(name, |c| c.wait(c.stop()));
        let mut escalated = 0;
        let start = Instant::now();
        while self.is_running(name) {
            let waited = start.elapsed();
            if waited > Duration::from_secs(20) && escalated == 0 {
                signal(pid, "-TERM");
                escalated = 1;
            } else if waited > Duration::from_secs(30) && escalated == 1 {
                signal(pid, "-KILL");
                escalated = 2;
            } else if waited > Duration::from_secs(35) {
                return Err(TestnetError::NoExit { what: format!("node {name}"), pid, how: "does not exit" });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(mut c) = self.children.remove(name) {
            let _ = c.wait();
        }
        self.node_mut(name)?.pid = None;
        self.save()
    }

    /// Stops a node if it runs, then starts it and waits until it answers RPC.
    pub fn restart_node(&mut self, name: &str, timeout: Duration) -> Result<()> {
        self.node(name)?;
        self.stop_node(name)?;
        self.start_node(name)?;
        self.wait_ready(name, timeout)
    }

    /// SIGKILLs a node (a crash).
    pub fn kill_node(&mut self, name: &str) -> Result<()> {
        if !self.is_running(name) {
            return Err(TestnetError::NotRunning { name: name.into() });
        }
        let pid = self.node(name)?.pid.expect("running nodes have a pid");
        signal(pid, "-KILL");
        if let Some(mut c) = self.children.remove(name) {
            let _ = c.wait();
        }
        let start = Instant::now();
        while self.is_running(name) {
            if start.elapsed() > Duration::from_secs(10) {
                return Err(TestnetError::NoExit {
                    what: format!("node {name}"),
                    pid,
                    how: "survived SIGKILL",
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.node_mut(name)?.pid = None;
        self.save()
    }

    /// The explorer's URL, if one was started.
    pub fn explorer_url(&self) -> Option<String> {
        self.state.explorer.as_ref().map(|e| format!("http://127.0.0.1:{}/", e.port))
    }

    /// True while the explorer process runs.
    pub fn explorer_running(&self) -> bool {
        let needle = self.dir.to_string_lossy().to_string();
        self.state.explorer.as_ref().and_then(|e| e.pid).is_some_and(|pid| process_alive(pid, &needle))
    }

    /// Starts `quarry explorer --testnet DIR` on a free port (log: `<dir>/explorer.log`) in
    /// its own process group, so it outlives `up` like the nodes; returns its URL.
    pub fn start_explorer(&mut self) -> Result<String> {
        if self.explorer_running() {
            return self.explorer_url().ok_or_else(|| TestnetError::refused("no explorer recorded"));
        }
        let port = match &self.state.explorer {
            Some(e) => e.port,
            None => free_port()?,
        };
        let exe = current_exe()?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("explorer.log"))
            .io("opening", self.dir.join("explorer.log"))?;
        let mut cmd = Command::new(exe);
        cmd.arg("explorer").arg("--testnet").arg(&self.dir).arg("--bind").arg(format!("127.0.0.1:{port}"));
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().io("opening", self.dir.join("explorer.log"))?)
            .stderr(log);
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child =
            cmd.spawn().map_err(|source| TestnetError::Spawn { what: "the explorer".into(), source })?;
        self.state.explorer = Some(ExplorerState { port, pid: Some(child.id()) });
        self.children.insert("explorer".into(), child);
        self.save()?;
        let url = format!("http://127.0.0.1:{port}/");
        let start = Instant::now();
        while crate::httpd::get(
            SocketAddr::from(([127, 0, 0, 1], port)),
            "/",
            Duration::from_secs(2),
            1 << 20,
        )
        .is_err()
        {
            if !self.explorer_running() || start.elapsed() > Duration::from_secs(20) {
                return Err(TestnetError::refused(format!(
                    "the explorer did not start on port {port}: see {}/explorer.log",
                    self.dir.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(url)
    }

    /// Stops the explorer (SIGTERM, then SIGKILL).
    pub fn stop_explorer(&mut self) -> Result<()> {
        let Some(pid) = self.state.explorer.as_ref().and_then(|e| e.pid) else { return Ok(()) };
        if self.explorer_running() {
            signal(pid, "-TERM");
            let start = Instant::now();
            while self.explorer_running() {
                if start.elapsed() > Duration::from_secs(5) {
                    signal(pid, "-KILL");
                }
                if start.elapsed() > Duration::from_secs(10) {
                    return Err(TestnetError::NoExit {
                        what: "the explorer".into(),
                        pid,
                        how: "does not exit",
                    });
                }
                if let Some(c) = self.children.get_mut("explorer") {
                    let _ = c.try_wait();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if let Some(mut c) = self.children.remove("explorer") {
            let _ = c.wait();
        }
        if let Some(e) = self.state.explorer.as_mut() {
            e.pid = None;
        }
        self.save()
    }

    /// Stops every running node and the explorer; fails if any process is left.
    pub fn down(&mut self) -> Result<()> {
        // Every node is tried even if one fails to stop.
        let mut errors = Vec::new();
        if let Err(e) = self.stop_explorer() {
            errors.push(e.chain().to_string());
        }
        for name in self.names() {
            if let Err(e) = self.stop_node(&name) {
                errors.push(e.chain().to_string());
            }
        }
        if !errors.is_empty() {
            return Err(TestnetError::Several(errors));
        }
        let left: Vec<String> = self.names().into_iter().filter(|n| self.is_running(n)).collect();
        if !left.is_empty() {
            return Err(TestnetError::refused(format!(
                "nodes still running after down: {}",
                left.join(", ")
            )));
        }
        // Namespaces, devices and the shaper (also those left by a crash).
        hosts::teardown(&self.dir)?;
        Ok(())
    }

    /// Names of running nodes.
    pub fn running(&mut self) -> Vec<String> {
        self.names().into_iter().filter(|n| self.is_running(n)).collect()
    }

    /// Polls until `f` holds (it is retried on error) or `timeout` passes.
    pub fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&mut Testnet) -> Result<bool>,
    ) -> Result<()> {
        let start = Instant::now();
        let mut last_err = None;
        loop {
            match f(self) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => last_err = Some(e),
            }
            if start.elapsed() > timeout {
                let last = last_err.map(|e: TestnetError| e.chain().to_string());
                return Err(TestnetError::Timeout { what: what.into(), after: timeout, last });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Best block hash of each running node.
    pub fn tips(&mut self) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for n in self.running() {
            let tip = self.ask(&n, |c| c.wait(c.getbestblockhash()))?;
            out.push((n, tip.to_string()));
        }
        Ok(out)
    }

    /// True if every running node (or those in `only`) is on one tip.
    pub fn same_tip(&mut self, only: Option<&[String]>) -> Result<bool> {
        let tips = self.tips()?;
        let tips: Vec<&String> =
            tips.iter().filter(|(n, _)| only.is_none_or(|o| o.contains(n))).map(|(_, t)| t).collect();
        Ok(tips.windows(2).all(|w| w[0] == w[1]))
    }

    /// Mines `blocks` blocks on `name` paying its wallet; returns the hashes.
    pub fn mine(&self, name: &str, blocks: u32) -> Result<Vec<String>> {
        let address = self.wallet(name)?.address(0).encode();
        let hashes = self.ask(name, |c| c.wait(c.generatetoaddress(blocks.into(), address)))?;
        Ok(hashes.iter().map(|h| h.to_string()).collect())
    }

    /// Number of peers of a node.
    pub fn peers(&self, name: &str) -> Result<u64> {
        self.ask(name, |c| c.wait(c.getconnectioncount()))
    }
}

#[cfg(test)]
mod port_tests {
    /// The ports of one `up` are chosen before any node binds: a repeat would collide.
    #[test]
    fn free_port_never_repeats_in_one_process() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..1000 {
            assert!(seen.insert(super::free_port().unwrap()), "a port handed out twice");
        }
    }
}
