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

mod attacks;
mod links;
mod steps;

use self::links::{chosen_links, cross_pairs, stale_blocks};
pub use self::steps::Step;
use self::steps::{describe, step_nodes};
use super::error::{Result, ResultExt, Step as _, TestnetError};
use super::hosts::Hosts;
use super::links::LinkError;
use super::links::ParamChange;
use super::topology::Topology;
use super::{Testnet, UpOptions};
use crate::primitives::{Amount, Hash256, Transaction, TxIn, TxOut};
use crate::rpc::api::QuarryApiClient;
use crate::rpc::codes;
use crate::rpc::types::{GetRawMempool, GetRawTransaction, TipStatus};
use crate::script::templates::address_lock;
use crate::wallet::ops;
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

fn yes() -> bool {
    true
}

impl Scenario {
    /// Reads a scenario file.
    pub fn load(path: &Path) -> Result<Scenario> {
        let text = std::fs::read_to_string(path).io("reading scenario", path)?;
        Scenario::parse(&text).step(|| format!("scenario {}", path.display()))
    }

    /// Parses and checks the text of a scenario file (what [`Scenario::load`] does once it has
    /// read the file): its topology, and that every node a step names is in it.
    pub fn parse(text: &str) -> Result<Scenario> {
        let s: Scenario =
            toml::from_str(text).map_err(|source| TestnetError::Toml { what: "scenario", source })?;
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
                return Err(TestnetError::refused(format!(
                    "step {} ({}) shapes links, which needs hosts = \"netns\" in [topology] (or --hosts netns)",
                    i + 1,
                    describe(step)
                )));
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
                .step(|| format!("step {} ({})", i + 1, describe(step)))?;
            }
        }
        Ok(())
    }

    /// Every node a step names is one of the topology's, checked before anything starts.
    pub fn check_node_names(&self) -> Result<()> {
        let known: Vec<&str> = self.topology.nodes.iter().map(|n| n.name.as_str()).collect();
        for (i, step) in self.steps.iter().enumerate() {
            if let Some(bad) = step_nodes(step).into_iter().find(|n| !known.contains(&n.as_str())) {
                return Err(TestnetError::refused(format!(
                    "step {} ({}) names node {bad:?}, which is not in the topology (nodes: {})",
                    i + 1,
                    describe(step),
                    known.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// Runs the scenario in `dir` (wiped first), printing each step; the nodes are always
    /// stopped at the end.
    pub fn run(&self, dir: &Path, progress: bool) -> Result<Report> {
        let started = Instant::now();
        println!(
            "scenario {} ({}, {} nodes): {}",
            self.name,
            self.topology.network,
            self.topology.nodes.len(),
            self.description.trim()
        );
        let opts = UpOptions {
            clean: true,
            watch: false,
            progress,
            explorer: false,
            prefund: self.prefund,
            sync_writes: false,
        };
        let t = super::up(dir, &self.topology, &opts).step(|| "bringing the topology up")?;
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
                Err(e) => println!("  FAIL {:>2}. {}: {}", i + 1, describe(step), e.chain()),
            }
            if let Err(e) = outcome {
                result = Err(e).step(|| format!("step {} ({})", i + 1, describe(step)));
                break;
            }
        }
        let down = r.t.down();
        result?;
        down.step(|| "stopping the nodes")?;
        Ok(Report { steps_run, elapsed: started.elapsed() })
    }
}

/// Txids in a node's mempool, as strings (the labels' form).
fn mempool_txids(t: &Testnet, node: &str) -> Result<Vec<String>> {
    match t.ask(node, |c| c.wait(c.getrawmempool(Some(false))))? {
        GetRawMempool::Txids(ids) => Ok(ids.iter().map(|t| t.to_string()).collect()),
        GetRawMempool::Verbose(_) => {
            Err(TestnetError::failed(format!("node {node}: getrawmempool false answered the verbose form")))
        }
    }
}

fn coins(s: &str) -> Result<Amount> {
    Amount::from_coins_str(s).map_err(|e| TestnetError::refused(format!("amount {s:?}: {e}")))
}

impl Runner {
    fn label(&self, label: &str) -> Result<&String> {
        self.labels
            .get(label)
            .ok_or_else(|| TestnetError::refused(format!("no transaction labelled {label:?} yet")))
    }

    fn confirmed_on(&self, node: &str, txid: &str) -> Result<bool> {
        let c = self.t.rpc(node)?;
        match c.wait(c.getrawtransaction(txid.to_string(), Some(true.into()))) {
            Ok(GetRawTransaction::Info(tx)) => Ok(tx.blockhash.is_some()),
            Ok(GetRawTransaction::Hex(_)) => Err(TestnetError::failed(format!(
                "node {node}: getrawtransaction answered hex to a verbose call"
            ))),
            // -5: no such transaction (or its block is gone).
            Err(e) if e.code() == Some(codes::INVALID_ADDRESS_OR_KEY) => Ok(false),
            Err(e) => Err(TestnetError::rpc(node)(e)),
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
                let mut table = t
                    .current_links()
                    .ok_or_else(|| TestnetError::refused("no links.json: is the fabric up?"))?;
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
                let mut table = t
                    .current_links()
                    .ok_or_else(|| TestnetError::refused("no links.json: is the fabric up?"))?;
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
                let mut table = t
                    .current_links()
                    .ok_or_else(|| TestnetError::refused("no links.json: is the fabric up?"))?;
                let chosen = chosen_links(t, links, groups)?;
                for &(i, j) in &chosen {
                    if let Some(l) = table.get_mut(i, j) {
                        let p = l.params.with(&change);
                        p.check().map_err(|e| LinkError::Pair {
                            a: t.names()[i].clone(),
                            b: t.names()[j].clone(),
                            source: Box::new(e),
                        })?;
                        l.params = p;
                    }
                }
                t.set_links(table)?;
                Ok(format!("({} links)", chosen.len()))
            }
            Step::Unshape { links, groups } => {
                let base = t.base_links()?;
                let mut table = t
                    .current_links()
                    .ok_or_else(|| TestnetError::refused("no links.json: is the fabric up?"))?;
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
                    return Err(TestnetError::check_failed(format!(
                        "{note}: expected at least {}",
                        min.unwrap_or(0)
                    )));
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
                        .ok_or_else(|| TestnetError::refused(format!("no node {b}")))?
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
                    return Err(TestnetError::check_failed(format!(
                        "mined {} of {blocks} blocks",
                        hashes.len()
                    )));
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
                let coins = ops::spendable(&wallet, &rpc).map_err(TestnetError::wallet)?;
                let rate = ops::choose_fee_rate(&rpc, None).map_err(TestnetError::wallet)?;
                let signed = ops::build_send(&mut wallet, &coins, &address_lock(&to_addr), amount, rate)
                    .map_err(TestnetError::wallet_of(from))?;
                let txid = rpc
                    .wait(rpc.sendrawtransaction(hex::encode(signed.tx.encode())))
                    .map_err(TestnetError::rpc(via))?
                    .to_string();
                self.labels.insert(label.clone(), txid.clone());
                Ok(format!("({txid})"))
            }
            Step::DoubleSpend { from, nodes, label } => {
                let rpc = t.rpc(&nodes[0])?;
                let wallet = t.wallet(from)?;
                let coins = ops::spendable(&wallet, &rpc).map_err(TestnetError::wallet)?;
                let coin = coins
                    .iter()
                    .max_by_key(|c| c.out.value)
                    .ok_or_else(|| TestnetError::failed(format!("{from} has no spendable coin")))?;
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
                        .map_err(TestnetError::wallet)?;
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
                    return Err(TestnetError::check_failed(format!("tips differ: {tips:?}")));
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
                    return Err(TestnetError::check_failed(format!("UTXO digests differ: {digests:?}")));
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
                    return Err(TestnetError::check_failed(format!("deepest abandoned branch on {node} is {deepest} blocks, expected >= {min_depth}: {tips:?}")));
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
                        return Err(TestnetError::check_failed(format!(
                            "{label} ({txid}) is {}confirmed on {n}",
                            if got { "" } else { "not " }
                        )));
                    }
                }
                Ok(String::new())
            }
            Step::AssertInMempool { label, node } => {
                let txid = self.label(label)?.clone();
                let pool = mempool_txids(&self.t, node)?;
                if !pool.contains(&txid) {
                    return Err(TestnetError::check_failed(format!(
                        "{label} ({txid}) is not in {node}'s mempool ({} txs)",
                        pool.len()
                    )));
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
                        (true, true) => {
                            return Err(TestnetError::check_failed(format!(
                                "both {} and {} are confirmed on {n}",
                                labels[0], labels[1]
                            )))
                        }
                        (false, false) => {
                            return Err(TestnetError::check_failed(format!(
                                "neither {} nor {} is confirmed on {n}",
                                labels[0], labels[1]
                            )))
                        }
                    };
                    if winner.is_some_and(|x| x != w) {
                        return Err(TestnetError::check_failed(
                            "nodes disagree on which double spend confirmed",
                        ));
                    }
                    winner = Some(w);
                }
                Ok(format!("({} won)", winner.map_or("-", |w| w.as_str())))
            }
            Step::AssertBalance { node, min, max } => {
                let rpc = t.rpc(node)?;
                let balance = ops::balance(&t.wallet(node)?, &rpc).map_err(TestnetError::wallet)?;
                let got = balance.confirmed;
                if let Some(min) = min {
                    if got < coins(min)? {
                        return Err(TestnetError::check_failed(format!(
                            "{node}'s confirmed balance {got} is below {min}"
                        )));
                    }
                }
                if let Some(max) = max {
                    if got > coins(max)? {
                        return Err(TestnetError::check_failed(format!(
                            "{node}'s confirmed balance {got} is above {max}"
                        )));
                    }
                }
                Ok(format!("({got})"))
            }
            Step::AssertHeight { node, min } => {
                let h = t.ask(node, |c| c.wait(c.getblockcount()))? as u64;
                if h < *min {
                    return Err(TestnetError::check_failed(format!(
                        "{node} is at height {h}, expected >= {min}"
                    )));
                }
                Ok(format!("({h})"))
            }
            Step::AssertNothingLost { node } => {
                let (height, tip) = self.killed.get(node).cloned().ok_or_else(|| {
                    TestnetError::refused(format!("{node} was not killed in this scenario"))
                })?;
                let h = self.t.ask(node, |c| c.wait(c.getblockcount()))? as u64;
                if h < height {
                    return Err(TestnetError::check_failed(format!(
                        "{node} is at height {h}, below the {height} it had when killed"
                    )));
                }
                let hash: Hash256 =
                    tip.parse().map_err(|e| TestnetError::failed(format!("pre-crash tip {tip:?}: {e}")))?;
                let header = self
                    .t
                    .ask(node, |c| c.wait(c.header_info(&hash)))
                    .step(|| format!("{node} no longer has its pre-crash tip {tip}"))?;
                Ok(format!(
                    "(height {h}; pre-crash tip {}… still stored at {})",
                    tip.get(..12).unwrap_or(&tip),
                    header.height.map_or("an unknown height".to_string(), |h| h.to_string())
                ))
            }
            Step::Connect { from, to } => {
                let addr = t.p2p_addr(to)?;
                t.ask(from, |c| c.wait(c.addnode(addr, "add".into())))?;
                Ok(String::new())
            }
            Step::WaitBlocks { node, blocks, timeout } => {
                let target = self.start_height + blocks;
                let timeout = Duration::from_secs(timeout.unwrap_or(120));
                t.wait_until(&format!("{node} at height {target}"), timeout, |t| {
                    Ok(t.ask(node, |c| c.wait(c.getblockcount()))? as u64 >= target)
                })?;
                Ok(format!("(height {target})"))
            }
            Step::BlockShare { via, node, min, max, chart } => {
                self.block_share_step(via, node, *min, *max, chart)
            }
            Step::DoubleSpendAttack { attacker, victim, amount, confirmations, max_deficit, label } => {
                let info =
                    self.start_attack(attacker, victim, amount, *confirmations, *max_deficit, label)?;
                Ok(format!("(payment {}, fork at height {})", info.payment, info.fork_height))
            }
            Step::WaitAttack { attacker, victim, label, expect, timeout } => {
                let timeout = Duration::from_secs(timeout.unwrap_or(300));
                let trial = self.finish_attack(attacker, victim, label, timeout)?;
                let note = format!("({})", attacks::trial_note(&trial));
                let got = if trial.reversed { "reversed" } else { "confirmed" };
                match expect.as_deref() {
                    Some(e) if e != got => {
                        Err(TestnetError::check_failed(format!("{note}: expected the payment {e}")))
                    }
                    _ => Ok(note),
                }
            }
            Step::DoubleSpendTrials {
                attacker,
                victim,
                amount,
                confirmations,
                max_deficit,
                label,
                trials,
                min_reversed,
                max_reversed,
                timeout,
            } => {
                let timeout = Duration::from_secs(timeout.unwrap_or(300));
                let mut reversed = 0;
                for i in 1..=*trials {
                    let l = format!("{label}{i}");
                    self.start_attack(attacker, victim, amount, *confirmations, *max_deficit, &l)?;
                    let trial = self.finish_attack(attacker, victim, &l, timeout)?;
                    println!("         trial {i}: {}", attacks::trial_note(&trial));
                    reversed += trial.reversed as u32;
                }
                let note = format!("({reversed} of {trials} payments reversed)");
                if min_reversed.is_some_and(|m| reversed < m) || max_reversed.is_some_and(|m| reversed > m) {
                    return Err(TestnetError::check_failed(format!(
                        "{note}: expected {} to {}",
                        min_reversed.unwrap_or(0),
                        max_reversed.unwrap_or(*trials)
                    )));
                }
                Ok(note)
            }
            Step::StrategyInfo { node, min_withheld } => {
                let i = t.ask(node, |c| c.wait(c.getstrategyinfo()))?;
                let note = format!(
                    "({}: mined {}, published {}, abandoned {}, at most {} withheld at once)",
                    i.strategy, i.mined, i.published, i.abandoned, i.longest_withheld
                );
                if min_withheld.is_some_and(|m| i.longest_withheld < m) {
                    return Err(TestnetError::check_failed(format!(
                        "{note}: expected at least {} withheld at once",
                        min_withheld.unwrap_or(0)
                    )));
                }
                Ok(note)
            }
            Step::AssertTipsDiffer { nodes } => {
                let a = t.ask(&nodes[0], |c| c.wait(c.getbestblockhash()))?;
                let b = t.ask(&nodes[1], |c| c.wait(c.getbestblockhash()))?;
                if a == b {
                    return Err(TestnetError::check_failed(format!(
                        "{} and {} share the tip {a}",
                        nodes[0], nodes[1]
                    )));
                }
                Ok(String::new())
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
    fn every_shipped_scenario_parses() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testnet");
        let mut n = 0;
        for dir in ["scenarios", "benchmarks"] {
            for e in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = e.unwrap().path();
                Scenario::load(&path).unwrap_or_else(|e| panic!("{}: {}", path.display(), e.chain()));
                n += 1;
            }
        }
        assert!(n >= 13, "{n} scenarios");
        // The attack steps name their nodes too.
        let e = scenario("[[step]]\ndo = \"wait-attack\"\nattacker = \"a\"\nvictim = \"z\"\nlabel = \"x\"\n")
            .unwrap_err();
        assert!(e.chain().to_string().contains("\"z\""), "{}", e.chain());
        // A selfish strategy needs a miner.
        let e = Scenario::parse("name = \"t\"\n[topology]\n[[topology.node]]\nname = \"a\"\nstrategy = \"selfish\"\n[[step]]\ndo = \"heal\"\n").unwrap_err();
        assert!(e.chain().to_string().contains("needs mine = true"), "{}", e.chain());
    }

    #[test]
    fn unknown_node_names_are_refused_at_load_naming_the_step() {
        assert!(scenario("[[step]]\ndo = \"mine\"\nnode = \"a\"\nblocks = 1\n").is_ok());
        let e = scenario("[[step]]\ndo = \"mine\"\nnode = \"a\"\nblocks = 1\n[[step]]\ndo = \"send\"\nfrom = \"a\"\nto = \"c\"\namount = \"1\"\nlabel = \"x\"\n")
            .unwrap_err();
        let e = e.chain().to_string();
        assert!(e.contains("step 2") && e.contains("\"c\"") && e.contains("nodes: a, b"), "{e}");
        let e = scenario("[[step]]\ndo = \"partition\"\ngroups = [[\"a\"], [\"zz\"]]\n").unwrap_err();
        assert!(e.chain().to_string().contains("\"zz\""), "{}", e.chain());
        let e = scenario("[[step]]\ndo = \"wait-sync\"\nnodes = [\"a\", \"q\"]\n").unwrap_err();
        assert!(e.chain().to_string().contains("\"q\""), "{}", e.chain());
    }
}
