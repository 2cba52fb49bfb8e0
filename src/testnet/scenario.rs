//! Scenario files: a topology and a list of steps (start/stop/kill nodes, partition, heal,
//! mine, send, double-spend, wait) with assertions (same tip, reorg depth, which of two
//! double spends confirmed, balances, nothing lost after a crash). `quarry testnet scenario
//! FILE` brings the topology up in a fresh directory, runs the steps, and always takes the
//! nodes down; it exits non-zero on the first failed step, naming it.
//!
//! On loopback, partitions use the nodes' RPC: every node bans (`setban`) the peers of the
//! other groups, which closes those connections and refuses new ones; `heal` lifts the bans
//! and reconnects. With `hosts = "netns"` a partition cuts the links between the groups in the
//! shaper (nothing passes, frames in flight are lost; TCP sees the cut), `heal` joins them
//! again, and `shape` / `unshape` change link conditions at run time.

use super::hosts::Hosts;
use super::links::ParamChange;
use super::topology::Topology;
use super::{Testnet, UpOptions};
use crate::primitives::{Amount, Hash256, Transaction, TxIn, TxOut};
use crate::rpc::api::QuarryApiClient;
use crate::rpc::codes;
use crate::rpc::types::{GetRawMempool, GetRawTransaction, TipStatus};
use crate::script::templates::address_lock;
use crate::wallet::ops;
use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// A scenario file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name.
    pub name: String,
    /// What it shows.
    #[serde(default)]
    pub description: String,
    /// Pre-fund every node's wallet at start (default true; false saves the ~25 blocks it
    /// mines when no step spends coins).
    #[serde(default = "yes")]
    pub prefund: bool,
    /// The nodes.
    pub topology: Topology,
    /// The steps, in order.
    #[serde(rename = "step")]
    pub steps: Vec<Step>,
}

/// One step.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "do", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Step {
    /// Start a stopped node.
    Start { node: String },
    /// Stop a node gracefully.
    Stop { node: String },
    /// SIGKILL a node (remembering its height and tip for `assert-nothing-lost`).
    Kill { node: String },
    /// Cut the network into groups (nodes not listed keep all their links).
    Partition { groups: Vec<Vec<String>> },
    /// Undo the partition and reconnect.
    Heal,
    /// Change link conditions (netns): the links between `groups` (as `partition` names
    /// them), or the listed `links`, or every link; the fields given replace the current ones.
    Shape {
        links: Option<Vec<[String; 2]>>,
        groups: Option<Vec<Vec<String>>>,
        #[serde(default, deserialize_with = "some_number")]
        latency_ms: Option<f64>,
        #[serde(default, deserialize_with = "some_number")]
        jitter_ms: Option<f64>,
        #[serde(default, deserialize_with = "some_number")]
        loss_percent: Option<f64>,
        rate_kbit: Option<u64>,
    },
    /// Give links (chosen as for `shape`) back the topology's conditions.
    Unshape { links: Option<Vec<[String; 2]>>, groups: Option<Vec<Vec<String>>> },
    /// Count the blocks mined since the scenario started that no running node has in its
    /// active chain (stale blocks: getchaintips of every node), print the stale rate, and fail
    /// with fewer than `min` (default 0).
    StaleBlocks { min: Option<u64> },
    /// Mine blocks on a node (paying its wallet).
    Mine { node: String, blocks: u32 },
    /// Pay `amount` coins from `from`'s wallet to `to`'s wallet, submitted to `via` (default `from`).
    Send { from: String, to: String, amount: String, label: String, via: Option<String> },
    /// Spend one coin of `from`'s wallet twice: `LABEL.a` to `nodes[0]`'s wallet submitted
    /// there, `LABEL.b` to `nodes[1]`'s wallet submitted there.
    DoubleSpend { from: String, nodes: [String; 2], label: String },
    /// Wait until the nodes (default: all running) share a tip.
    WaitSync { nodes: Option<Vec<String>>, timeout: Option<u64> },
    /// Wait until a node reaches a height.
    WaitHeight { node: String, height: u64, timeout: Option<u64> },
    /// Wait until the labelled transaction is in the node's mempool (relayed), e.g. before
    /// mining it on another node.
    WaitMempool { label: String, node: String, timeout: Option<u64> },
    /// Sleep.
    Sleep { seconds: f64 },
    /// All (or the listed) running nodes share a tip.
    AssertSameTip { nodes: Option<Vec<String>> },
    /// All (or the listed) running nodes have the same UTXO set digest.
    AssertSameUtxos { nodes: Option<Vec<String>> },
    /// The node reorganised away a branch of at least this many blocks.
    AssertReorg { node: String, min_depth: u64 },
    /// The labelled transaction is confirmed on the node (default: every running node).
    AssertConfirmed { label: String, node: Option<String> },
    /// The labelled transaction is not confirmed on the node (default: every running node).
    AssertNotConfirmed { label: String, node: Option<String> },
    /// The labelled transaction waits in the node's mempool.
    AssertInMempool { label: String, node: String },
    /// Exactly one of the two labelled transactions is confirmed everywhere (and the same one).
    AssertOneOf { labels: [String; 2] },
    /// The node's confirmed wallet balance is within bounds (coins).
    AssertBalance { node: String, min: Option<String>, max: Option<String> },
    /// The node is at least at this height.
    AssertHeight { node: String, min: u64 },
    /// After a `kill` and restart: the node's height is at least what it was when killed and
    /// its tip at that moment is still stored.
    AssertNothingLost { node: String },
}

/// Outcome of a run.
pub struct Report {
    /// Steps that ran (all of them when it passed).
    pub steps_run: usize,
    /// Total time.
    pub elapsed: Duration,
}

struct Runner {
    t: Testnet,
    labels: HashMap<String, String>,
    killed: HashMap<String, (u64, String)>,
    partition: Vec<(String, String)>,
    /// Height when the steps began (stale blocks are counted above it).
    start_height: u64,
}

fn some_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Num {
        I(i64),
        F(f64),
    }
    Ok(Some(match Num::deserialize(d)? {
        Num::I(i) => i as f64,
        Num::F(f) => f,
    }))
}

fn yes() -> bool {
    true
}

/// Every ordered pair (a, b) of nodes in different groups.
fn cross_pairs(groups: &[Vec<String>]) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        for (j, h) in groups.iter().enumerate() {
            if i != j {
                for a in g {
                    for b in h {
                        pairs.push((a.clone(), b.clone()));
                    }
                }
            }
        }
    }
    pairs
}

impl Scenario {
    /// Reads a scenario file.
    pub fn load(path: &Path) -> Result<Scenario> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading scenario {}", path.display()))?;
        Scenario::parse(&text).with_context(|| format!("scenario {}", path.display()))
    }

    /// Parses and checks the text of a scenario file (what [`Scenario::load`] does once it has
    /// read the file): its topology, and that every node a step names is in it.
    pub fn parse(text: &str) -> Result<Scenario> {
        let s: Scenario = toml::from_str(text).context("not a valid scenario")?;
        s.topology.check()?;
        s.check_steps()?;
        Ok(s)
    }

    /// [`Scenario::check_node_names`], and that `shape` / `unshape` appear only with
    /// `hosts = "netns"`.
    pub fn check_steps(&self) -> Result<()> {
        self.check_node_names()?;
        if self.topology.hosts != Hosts::Netns {
            if let Some((i, step)) = self
                .steps
                .iter()
                .enumerate()
                .find(|(_, s)| matches!(s, Step::Shape { .. } | Step::Unshape { .. }))
            {
                bail!(
                    "step {} ({}) shapes links, which needs hosts = \"netns\" in [topology] (or --hosts netns)",
                    i + 1,
                    describe(step)
                );
            }
        }
        for (i, step) in self.steps.iter().enumerate() {
            if let Step::Shape { latency_ms, jitter_ms, loss_percent, rate_kbit, .. } = step {
                let change = ParamChange {
                    latency_ms: *latency_ms,
                    jitter_ms: *jitter_ms,
                    loss_percent: *loss_percent,
                    rate_kbit: *rate_kbit,
                };
                super::links::LinkParams {
                    latency_ms: 0.0,
                    jitter_ms: 0.0,
                    loss_percent: 0.0,
                    rate_kbit: None,
                }
                .with(&ParamChange { jitter_ms: None, ..change })
                .check()
                .with_context(|| format!("step {} ({})", i + 1, describe(step)))?;
            }
        }
        Ok(())
    }

    /// Every node a step names is one of the topology's, checked before anything starts.
    pub fn check_node_names(&self) -> Result<()> {
        let known: Vec<&str> = self.topology.nodes.iter().map(|n| n.name.as_str()).collect();
        for (i, step) in self.steps.iter().enumerate() {
            if let Some(bad) = step_nodes(step).into_iter().find(|n| !known.contains(&n.as_str())) {
                bail!(
                    "step {} ({}) names node {bad:?}, which is not in the topology (nodes: {})",
                    i + 1,
                    describe(step),
                    known.join(", ")
                );
            }
        }
        Ok(())
    }

    /// Runs the scenario in `dir` (wiped first), printing each step; the nodes are always
    /// stopped at the end.
    pub fn run(&self, dir: &Path, progress: bool) -> Result<Report> {
        let started = Instant::now();
        println!("scenario {}: {}", self.name, self.description.trim());
        let opts = UpOptions { clean: true, watch: false, progress, explorer: false, prefund: self.prefund };
        let t = super::up(dir, &self.topology, &opts).context("bringing the topology up")?;
        let first = t.names().into_iter().next().unwrap_or_default();
        let start_height = t.ask(&first, |c| c.wait(c.getblockcount())).unwrap_or(0) as u64;
        let mut r =
            Runner { t, labels: HashMap::new(), killed: HashMap::new(), partition: Vec::new(), start_height };
        let mut result = Ok(());
        let mut steps_run = 0;
        for (i, step) in self.steps.iter().enumerate() {
            let t0 = Instant::now();
            let outcome = r.step(step);
            steps_run += 1;
            match &outcome {
                Ok(note) => println!(
                    "  ok   {:>2}. {} {note} ({:.1} s)",
                    i + 1,
                    describe(step),
                    t0.elapsed().as_secs_f64()
                ),
                Err(e) => println!("  FAIL {:>2}. {}: {e:#}", i + 1, describe(step)),
            }
            if let Err(e) = outcome {
                result = Err(e.context(format!("step {} ({})", i + 1, describe(step))));
                break;
            }
        }
        let down = r.t.down();
        result?;
        down.context("stopping the nodes")?;
        Ok(Report { steps_run, elapsed: started.elapsed() })
    }
}

/// The node names a step refers to.
fn step_nodes(step: &Step) -> Vec<&String> {
    match step {
        Step::Start { node }
        | Step::Stop { node }
        | Step::Kill { node }
        | Step::Mine { node, .. }
        | Step::WaitHeight { node, .. }
        | Step::WaitMempool { node, .. }
        | Step::AssertReorg { node, .. }
        | Step::AssertInMempool { node, .. }
        | Step::AssertBalance { node, .. }
        | Step::AssertHeight { node, .. }
        | Step::AssertNothingLost { node } => vec![node],
        Step::Partition { groups } => groups.iter().flatten().collect(),
        Step::Shape { links, groups, .. } | Step::Unshape { links, groups } => {
            links.iter().flatten().flatten().chain(groups.iter().flatten().flatten()).collect()
        }
        Step::Heal | Step::Sleep { .. } | Step::AssertOneOf { .. } | Step::StaleBlocks { .. } => vec![],
        Step::Send { from, to, via, .. } => [from, to].into_iter().chain(via.as_ref()).collect(),
        Step::DoubleSpend { from, nodes, .. } => [from, &nodes[0], &nodes[1]].into_iter().collect(),
        Step::WaitSync { nodes, .. } | Step::AssertSameTip { nodes } | Step::AssertSameUtxos { nodes } => {
            nodes.iter().flatten().collect()
        }
        Step::AssertConfirmed { node, .. } | Step::AssertNotConfirmed { node, .. } => node.iter().collect(),
    }
}

fn describe(step: &Step) -> String {
    match step {
        Step::Start { node } => format!("start {node}"),
        Step::Stop { node } => format!("stop {node}"),
        Step::Kill { node } => format!("kill -9 {node}"),
        Step::Partition { groups } => {
            format!(
                "partition {}",
                groups.iter().map(|g| format!("{{{}}}", g.join(","))).collect::<Vec<_>>().join(" | ")
            )
        }
        Step::Heal => "heal".into(),
        Step::Shape { links, groups, latency_ms, jitter_ms, loss_percent, rate_kbit } => {
            let mut set = Vec::new();
            if let Some(v) = latency_ms {
                set.push(format!("latency {v} ms"));
            }
            if let Some(v) = jitter_ms {
                set.push(format!("jitter {v} ms"));
            }
            if let Some(v) = loss_percent {
                set.push(format!("loss {v}%"));
            }
            if let Some(v) = rate_kbit {
                set.push(format!("rate {v} kbit/s"));
            }
            format!("shape {}: {}", which_links(links, groups), set.join(", "))
        }
        Step::Unshape { links, groups } => format!("unshape {}", which_links(links, groups)),
        Step::StaleBlocks { min } => format!("stale blocks (at least {})", min.unwrap_or(0)),
        Step::Mine { node, blocks } => format!("mine {blocks} on {node}"),
        Step::Send { from, to, amount, label, .. } => format!("send {amount} {from} -> {to} as {label}"),
        Step::DoubleSpend { from, nodes, label } => {
            format!("double-spend a coin of {from}: {label}.a via {}, {label}.b via {}", nodes[0], nodes[1])
        }
        Step::WaitSync { nodes, .. } => {
            format!("wait for one tip on {}", nodes.as_ref().map_or("all".into(), |n| n.join(",")))
        }
        Step::WaitHeight { node, height, .. } => format!("wait for {node} at height {height}"),
        Step::WaitMempool { label, node, .. } => format!("wait for {label} in {node}'s mempool"),
        Step::Sleep { seconds } => format!("sleep {seconds} s"),
        Step::AssertSameTip { .. } => "assert same tip".into(),
        Step::AssertSameUtxos { .. } => "assert same UTXO set".into(),
        Step::AssertReorg { node, min_depth } => format!("assert {node} reorganised >= {min_depth} blocks"),
        Step::AssertConfirmed { label, .. } => format!("assert {label} confirmed"),
        Step::AssertNotConfirmed { label, .. } => format!("assert {label} not confirmed"),
        Step::AssertInMempool { label, node } => format!("assert {label} in {node}'s mempool"),
        Step::AssertOneOf { labels } => {
            format!("assert exactly one of {} / {} confirmed", labels[0], labels[1])
        }
        Step::AssertBalance { node, .. } => format!("assert {node}'s balance"),
        Step::AssertHeight { node, min } => format!("assert {node} height >= {min}"),
        Step::AssertNothingLost { node } => format!("assert {node} lost nothing"),
    }
}

fn which_links(links: &Option<Vec<[String; 2]>>, groups: &Option<Vec<Vec<String>>>) -> String {
    match (links, groups) {
        (Some(l), _) => l.iter().map(|[a, b]| format!("{a}-{b}")).collect::<Vec<_>>().join(","),
        (None, Some(g)) => {
            format!(
                "between {}",
                g.iter().map(|g| format!("{{{}}}", g.join(","))).collect::<Vec<_>>().join(" | ")
            )
        }
        (None, None) => "every link".into(),
    }
}

/// Txids in a node's mempool, as strings (the labels' form).
fn mempool_txids(t: &Testnet, node: &str) -> Result<Vec<String>> {
    match t.ask(node, |c| c.wait(c.getrawmempool(Some(false))))? {
        GetRawMempool::Txids(ids) => Ok(ids.iter().map(|t| t.to_string()).collect()),
        GetRawMempool::Verbose(_) => bail!("node {node}: getrawmempool false answered the verbose form"),
    }
}

fn coins(s: &str) -> Result<Amount> {
    Amount::from_coins_str(s).map_err(|e| anyhow!("amount {s:?}: {e}"))
}

/// Unordered node-index pairs a `shape` / `unshape` step names: its `links`, or the links
/// between its `groups`, or every pair.
fn chosen_links(
    t: &Testnet,
    links: &Option<Vec<[String; 2]>>,
    groups: &Option<Vec<Vec<String>>>,
) -> Result<Vec<(usize, usize)>> {
    let mut out = Vec::new();
    let mut add = |a: usize, b: usize| {
        let key = (a.min(b), a.max(b));
        if a != b && !out.contains(&key) {
            out.push(key);
        }
    };
    match (links, groups) {
        (Some(l), _) => {
            for [a, b] in l {
                add(t.index(a)?, t.index(b)?);
            }
        }
        (None, Some(g)) => {
            for (a, b) in cross_pairs(g) {
                add(t.index(&a)?, t.index(&b)?);
            }
        }
        (None, None) => {
            let n = t.names().len();
            for a in 0..n {
                for b in a + 1..n {
                    add(a, b);
                }
            }
        }
    }
    Ok(out)
}

/// (stale blocks above `since`, all blocks mined above `since`): the union over the running
/// nodes of the blocks on their abandoned branches (getchaintips, then the headers down each
/// branch), and the active chain's length above `since`.
fn stale_blocks(t: &mut Testnet, since: u64) -> Result<(u64, u64)> {
    let mut stale = std::collections::HashSet::new();
    let mut height = 0u64;
    for n in t.running() {
        height = height.max(t.ask(&n, |c| c.wait(c.getblockcount()))? as u64);
        let tips = t.ask(&n, |c| c.wait(c.getchaintips()))?;
        for tip in tips.iter().filter(|x| x.status == TipStatus::ValidFork) {
            let mut hash = tip.hash;
            let mut h = tip.height as u64;
            for _ in 0..tip.branchlen.min(10_000) {
                if h <= since {
                    break;
                }
                if !stale.insert(hash) {
                    break;
                }
                let info = t.ask(&n, |c| c.wait(c.header_info(&hash)))?;
                match info.previousblockhash {
                    Some(prev) => hash = prev,
                    None => break,
                }
                h -= 1;
            }
        }
    }
    let stale = stale.len() as u64;
    Ok((stale, stale + height.saturating_sub(since)))
}

impl Runner {
    fn label(&self, label: &str) -> Result<&String> {
        self.labels.get(label).ok_or_else(|| anyhow!("no transaction labelled {label:?} yet"))
    }

    fn confirmed_on(&self, node: &str, txid: &str) -> Result<bool> {
        let c = self.t.rpc(node)?;
        match c.wait(c.getrawtransaction(txid.to_string(), Some(true.into()))) {
            Ok(GetRawTransaction::Info(tx)) => Ok(tx.blockhash.is_some()),
            Ok(GetRawTransaction::Hex(_)) => {
                bail!("node {node}: getrawtransaction answered hex to a verbose call")
            }
            // -5: no such transaction (or its block is gone).
            Err(e) if e.code() == Some(codes::INVALID_ADDRESS_OR_KEY) => Ok(false),
            Err(e) => Err(anyhow!("node {node}: {e}")),
        }
    }

    fn nodes_or_running(&mut self, nodes: &Option<Vec<String>>) -> Vec<String> {
        nodes.clone().unwrap_or_else(|| self.t.running())
    }

    fn step(&mut self, step: &Step) -> Result<String> {
        let t = &mut self.t;
        match step {
            Step::Start { node } => {
                t.start_node(node)?;
                t.wait_ready(node, Duration::from_secs(60))?;
                Ok(String::new())
            }
            Step::Stop { node } => {
                t.stop_node(node)?;
                Ok(String::new())
            }
            Step::Kill { node } => {
                let height = t.ask(node, |c| c.wait(c.getblockcount()))? as u64;
                let tip = t.ask(node, |c| c.wait(c.getbestblockhash()))?.to_string();
                t.kill_node(node)?;
                self.killed.insert(node.clone(), (height, tip));
                Ok(format!("(was at height {height})"))
            }
            Step::Partition { groups } if t.state.hosts == Hosts::Netns => {
                let pairs = cross_pairs(groups);
                let mut table =
                    t.current_links().ok_or_else(|| anyhow!("no links.json: is the fabric up?"))?;
                for (a, b) in &pairs {
                    let (i, j) = (t.index(a)?, t.index(b)?);
                    if let Some(l) = table.get_mut(i, j) {
                        l.cut = true;
                    }
                }
                t.set_links(table)?;
                let cut = pairs.len() / 2;
                self.partition = pairs;
                Ok(format!("({cut} links cut in the shaper)"))
            }
            Step::Heal if t.state.hosts == Hosts::Netns => {
                let mut table =
                    t.current_links().ok_or_else(|| anyhow!("no links.json: is the fabric up?"))?;
                for l in &mut table.links {
                    l.cut = false;
                }
                t.set_links(table)?;
                // Connections that timed out during the cut are dialled again.
                for (a, b) in std::mem::take(&mut self.partition) {
                    let addr = t.p2p_addr(&b)?;
                    let _ = t.ask(&a, |c| c.wait(c.addnode(addr, "onetry".into())));
                }
                Ok(String::new())
            }
            Step::Shape { links, groups, latency_ms, jitter_ms, loss_percent, rate_kbit } => {
                let change = ParamChange {
                    latency_ms: *latency_ms,
                    jitter_ms: *jitter_ms,
                    loss_percent: *loss_percent,
                    rate_kbit: *rate_kbit,
                };
                let mut table =
                    t.current_links().ok_or_else(|| anyhow!("no links.json: is the fabric up?"))?;
                let chosen = chosen_links(t, links, groups)?;
                for &(i, j) in &chosen {
                    if let Some(l) = table.get_mut(i, j) {
                        let p = l.params.with(&change);
                        p.check().with_context(|| format!("link {}-{}", t.names()[i], t.names()[j]))?;
                        l.params = p;
                    }
                }
                t.set_links(table)?;
                Ok(format!("({} links)", chosen.len()))
            }
            Step::Unshape { links, groups } => {
                let base = t.base_links()?;
                let mut table =
                    t.current_links().ok_or_else(|| anyhow!("no links.json: is the fabric up?"))?;
                let chosen = chosen_links(t, links, groups)?;
                for &(i, j) in &chosen {
                    if let (Some(l), Some(b)) = (table.get_mut(i, j), base.get(i, j)) {
                        l.params = b.params;
                    }
                }
                t.set_links(table)?;
                Ok(format!("({} links)", chosen.len()))
            }
            Step::StaleBlocks { min } => {
                let (stale, total) = stale_blocks(t, self.start_height)?;
                let rate = if total == 0 { 0.0 } else { stale as f64 / total as f64 };
                let note = format!(
                    "({stale} stale of {total} blocks mined above height {}: stale rate {:.1}%)",
                    self.start_height,
                    100.0 * rate
                );
                if stale < min.unwrap_or(0) {
                    bail!("{note}: expected at least {}", min.unwrap_or(0));
                }
                Ok(note)
            }
            Step::Partition { groups } => {
                let pairs = cross_pairs(groups);
                for (a, b) in &pairs {
                    let peer = t
                        .state
                        .nodes
                        .iter()
                        .find(|n| &n.name == b)
                        .ok_or_else(|| anyhow!("no node {b}"))?
                        .peer_id
                        .clone();
                    t.ask(a, |c| c.wait(c.setban(peer, "add".into(), Some(3_600))))?;
                }
                // Wait until no cut link remains.
                let check = pairs.clone();
                t.wait_until("the cut links to close", Duration::from_secs(20), |t| {
                    for (a, b) in &check {
                        let peer = t
                            .state
                            .nodes
                            .iter()
                            .find(|n| &n.name == b)
                            .map(|n| n.peer_id.clone())
                            .unwrap_or_default();
                        let peers = t.ask(a, |c| c.wait(c.getpeerinfo()))?;
                        if peers.iter().any(|x| x.peerid == peer) {
                            return Ok(false);
                        }
                    }
                    Ok(true)
                })?;
                self.partition = pairs;
                Ok(String::new())
            }
            Step::Heal => {
                for (a, b) in std::mem::take(&mut self.partition) {
                    let peer = t
                        .state
                        .nodes
                        .iter()
                        .find(|n| n.name == b)
                        .map(|n| n.peer_id.clone())
                        .unwrap_or_default();
                    let _ = t.ask(&a, |c| c.wait(c.setban(peer, "remove".into(), None)));
                    let addr = t.p2p_addr(&b)?;
                    let _ = t.ask(&a, |c| c.wait(c.addnode(addr, "onetry".into())));
                }
                Ok(String::new())
            }
            Step::Mine { node, blocks } => {
                let hashes = t.mine(node, *blocks)?;
                if hashes.len() != *blocks as usize {
                    bail!("mined {} of {blocks} blocks", hashes.len());
                }
                let height = t.ask(node, |c| c.wait(c.getblockcount()))?;
                Ok(format!("(height {height})"))
            }
            Step::Send { from, to, amount, label, via } => {
                let amount = coins(amount)?;
                let to_addr = t.wallet(to)?.address(0);
                let via = via.as_deref().unwrap_or(from);
                let rpc = t.rpc(via)?;
                let mut wallet = t.wallet(from)?;
                let coins = ops::spendable(&wallet, &rpc).map_err(|e| anyhow!("{e}"))?;
                let rate = ops::choose_fee_rate(&rpc, None).map_err(|e| anyhow!("{e}"))?;
                let signed = ops::build_send(&mut wallet, &coins, &address_lock(&to_addr), amount, rate)
                    .map_err(|e| anyhow!("{from}: {e}"))?;
                let txid = rpc.wait(rpc.sendrawtransaction(hex::encode(signed.tx.encode())))?.to_string();
                self.labels.insert(label.clone(), txid.clone());
                Ok(format!("({txid})"))
            }
            Step::DoubleSpend { from, nodes, label } => {
                let rpc = t.rpc(&nodes[0])?;
                let wallet = t.wallet(from)?;
                let coins = ops::spendable(&wallet, &rpc).map_err(|e| anyhow!("{e}"))?;
                let coin = coins
                    .iter()
                    .max_by_key(|c| c.out.value)
                    .ok_or_else(|| anyhow!("{from} has no spendable coin"))?;
                let fee = Amount::from_sat(10_000)?;
                let mut ids = Vec::new();
                for (suffix, node) in [("a", &nodes[0]), ("b", &nodes[1])] {
                    let to = t.wallet(node)?.address(0);
                    let mut tx = Transaction {
                        version: 1,
                        inputs: vec![TxIn { prevout: coin.outpoint, unlock: Default::default() }],
                        outputs: vec![TxOut {
                            value: coin.out.value.checked_sub(fee)?,
                            lock: address_lock(&to),
                        }],
                        lock_time: 0,
                    };
                    ops::sign_p2pkh_inputs(&wallet, &mut tx, std::slice::from_ref(&coin.out))
                        .map_err(|e| anyhow!("{e}"))?;
                    let txid =
                        t.ask(node, |c| c.wait(c.sendrawtransaction(hex::encode(tx.encode()))))?.to_string();
                    self.labels.insert(format!("{label}.{suffix}"), txid.clone());
                    ids.push(txid);
                }
                Ok(format!("({} / {})", ids[0], ids[1]))
            }
            Step::WaitSync { nodes, timeout } => {
                let nodes = self.nodes_or_running(nodes);
                let timeout = Duration::from_secs(timeout.unwrap_or(120));
                self.t.wait_until("one tip", timeout, |t| t.same_tip(Some(&nodes)))?;
                let h = self.t.ask(&nodes[0], |c| c.wait(c.getblockcount()))?;
                Ok(format!("(height {h})"))
            }
            Step::WaitHeight { node, height, timeout } => {
                let timeout = Duration::from_secs(timeout.unwrap_or(120));
                t.wait_until(&format!("{node} at height {height}"), timeout, |t| {
                    Ok(t.ask(node, |c| c.wait(c.getblockcount()))? as u64 >= *height)
                })?;
                Ok(String::new())
            }
            Step::WaitMempool { label, node, timeout } => {
                let txid = self.label(label)?.clone();
                let timeout = Duration::from_secs(timeout.unwrap_or(60));
                self.t.wait_until(&format!("{label} in {node}'s mempool"), timeout, |t| {
                    Ok(mempool_txids(t, node)?.contains(&txid))
                })?;
                Ok(String::new())
            }
            Step::Sleep { seconds } => {
                std::thread::sleep(Duration::from_secs_f64(seconds.clamp(0.0, 600.0)));
                Ok(String::new())
            }
            Step::AssertSameTip { nodes } => {
                let nodes = self.nodes_or_running(nodes);
                let tips = self.t.tips()?;
                let tips: Vec<_> = tips.into_iter().filter(|(n, _)| nodes.contains(n)).collect();
                if tips.windows(2).any(|w| w[0].1 != w[1].1) {
                    bail!("tips differ: {tips:?}");
                }
                Ok(String::new())
            }
            Step::AssertSameUtxos { nodes } => {
                let nodes = self.nodes_or_running(nodes);
                let mut digests = Vec::new();
                for n in &nodes {
                    let v = self.t.ask(n, |c| c.wait(c.gettxoutsetinfo()))?;
                    digests.push((n.clone(), v.hash_serialized_3.to_string()));
                }
                if digests.windows(2).any(|w| w[0].1 != w[1].1) {
                    bail!("UTXO digests differ: {digests:?}");
                }
                Ok(String::new())
            }
            Step::AssertReorg { node, min_depth } => {
                let tips = t.ask(node, |c| c.wait(c.getchaintips()))?;
                let deepest = tips
                    .iter()
                    .filter(|x| x.status == TipStatus::ValidFork)
                    .map(|x| x.branchlen as u64)
                    .max()
                    .unwrap_or(0);
                if deepest < *min_depth {
                    bail!("deepest abandoned branch on {node} is {deepest} blocks, expected >= {min_depth}: {tips:?}");
                }
                Ok(format!("(depth {deepest})"))
            }
            Step::AssertConfirmed { label, node } | Step::AssertNotConfirmed { label, node } => {
                let want = matches!(step, Step::AssertConfirmed { .. });
                let txid = self.label(label)?.clone();
                let nodes = match node {
                    Some(n) => vec![n.clone()],
                    None => self.t.running(),
                };
                for n in nodes {
                    let got = self.confirmed_on(&n, &txid)?;
                    if got != want {
                        bail!("{label} ({txid}) is {}confirmed on {n}", if got { "" } else { "not " });
                    }
                }
                Ok(String::new())
            }
            Step::AssertInMempool { label, node } => {
                let txid = self.label(label)?.clone();
                let pool = mempool_txids(&self.t, node)?;
                if !pool.contains(&txid) {
                    bail!("{label} ({txid}) is not in {node}'s mempool ({} txs)", pool.len());
                }
                Ok(String::new())
            }
            Step::AssertOneOf { labels } => {
                let a = self.label(&labels[0])?.clone();
                let b = self.label(&labels[1])?.clone();
                let mut winner = None;
                for n in self.t.running() {
                    let (ca, cb) = (self.confirmed_on(&n, &a)?, self.confirmed_on(&n, &b)?);
                    let w = match (ca, cb) {
                        (true, false) => &labels[0],
                        (false, true) => &labels[1],
                        (true, true) => bail!("both {} and {} are confirmed on {n}", labels[0], labels[1]),
                        (false, false) => {
                            bail!("neither {} nor {} is confirmed on {n}", labels[0], labels[1])
                        }
                    };
                    if winner.is_some_and(|x| x != w) {
                        bail!("nodes disagree on which double spend confirmed");
                    }
                    winner = Some(w);
                }
                Ok(format!("({} won)", winner.map_or("-", |w| w.as_str())))
            }
            Step::AssertBalance { node, min, max } => {
                let rpc = t.rpc(node)?;
                let balance = ops::balance(&t.wallet(node)?, &rpc).map_err(|e| anyhow!("{e}"))?;
                let got = balance.confirmed;
                if let Some(min) = min {
                    if got < coins(min)? {
                        bail!("{node}'s confirmed balance {got} is below {min}");
                    }
                }
                if let Some(max) = max {
                    if got > coins(max)? {
                        bail!("{node}'s confirmed balance {got} is above {max}");
                    }
                }
                Ok(format!("({got})"))
            }
            Step::AssertHeight { node, min } => {
                let h = t.ask(node, |c| c.wait(c.getblockcount()))? as u64;
                if h < *min {
                    bail!("{node} is at height {h}, expected >= {min}");
                }
                Ok(format!("({h})"))
            }
            Step::AssertNothingLost { node } => {
                let (height, tip) = self
                    .killed
                    .get(node)
                    .cloned()
                    .ok_or_else(|| anyhow!("{node} was not killed in this scenario"))?;
                let h = self.t.ask(node, |c| c.wait(c.getblockcount()))? as u64;
                if h < height {
                    bail!("{node} is at height {h}, below the {height} it had when killed");
                }
                let hash: Hash256 = tip.parse().map_err(|e| anyhow!("pre-crash tip {tip:?}: {e}"))?;
                let header = self
                    .t
                    .ask(node, |c| c.wait(c.header_info(&hash)))
                    .with_context(|| format!("{node} no longer has its pre-crash tip {tip}"))?;
                Ok(format!(
                    "(height {h}; pre-crash tip {}… still stored at {})",
                    tip.get(..12).unwrap_or(&tip),
                    header.height.map_or("an unknown height".to_string(), |h| h.to_string())
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(steps: &str) -> Result<Scenario> {
        let text = format!(
            "name = \"t\"\n[topology]\nnetwork = \"regtest\"\n[[topology.node]]\nname = \"a\"\n[[topology.node]]\nname = \"b\"\n{steps}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.toml");
        std::fs::write(&path, text).unwrap();
        Scenario::load(&path)
    }

    #[test]
    fn unknown_node_names_are_refused_at_load_naming_the_step() {
        assert!(scenario("[[step]]\ndo = \"mine\"\nnode = \"a\"\nblocks = 1\n").is_ok());
        let e = scenario("[[step]]\ndo = \"mine\"\nnode = \"a\"\nblocks = 1\n[[step]]\ndo = \"send\"\nfrom = \"a\"\nto = \"c\"\namount = \"1\"\nlabel = \"x\"\n")
            .unwrap_err();
        let e = format!("{e:#}");
        assert!(e.contains("step 2") && e.contains("\"c\"") && e.contains("nodes: a, b"), "{e}");
        let e = scenario("[[step]]\ndo = \"partition\"\ngroups = [[\"a\"], [\"zz\"]]\n").unwrap_err();
        assert!(format!("{e:#}").contains("\"zz\""), "{e:#}");
        let e = scenario("[[step]]\ndo = \"wait-sync\"\nnodes = [\"a\", \"q\"]\n").unwrap_err();
        assert!(format!("{e:#}").contains("\"q\""), "{e:#}");
    }
}
