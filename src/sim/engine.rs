//! The discrete-event engine: one event queue in virtual time (microseconds), one seeded RNG,
//! no threads and no sockets. Nodes mine as Poisson processes by hash share and push blocks
//! to their neighbours over links with a latency and a bandwidth.
//!
//! Relay (a documented simplification of the sync state machine's messages): a node that
//! accepts a block it did not have sends it whole to every neighbour that neither has it nor
//! has it already on its way sooner (an idealised inventory exchange that costs no time or
//! bandwidth); a link sends one block at a time (transmission = size / bandwidth, then the
//! link's latency), so blocks on a link arrive in order. A block whose parent a node lacks
//! waits until the parent arrives. After a partition heals, each node on a link across the
//! cut sends the blocks of its active chain the other side lacks, oldest first.
//!
//! Fork choice per node, two modes with the same results (a test compares them):
//! - [`ChainMode::Full`]: every node runs the real [`Chain`] on the memory store
//!   ([`Chain::memory`]): block index, most-work fork choice with first-seen ties, reorgs
//!   with undo data. Blocks are real regtest blocks (coinbase only, trivial proof of work).
//! - [`ChainMode::Index`]: the same rule on block ids alone (every block has the regtest
//!   target, so most work is most blocks, and a block replaces the tip only if strictly
//!   longer: the first seen wins a tie). This is what reaches 1,000 nodes x 10,000 blocks.

use super::net::{exp_sample, Graph, Latency, Topology};
use super::SimError;
use crate::chain::Chain;
use crate::consensus::validation::block_subsidy;
use crate::consensus::{Network, Params};
use crate::miner::strategy::{Event, Selfish, Strategy};
use crate::primitives::{Block, Hash256, Script};
use crate::testkit::{assemble, coinbase};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// How each node chooses its tip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChainMode {
    /// Block ids and heights, the fork-choice rule only.
    Index,
    /// The real chain code on the memory store, with real blocks.
    Full,
}

/// How hash power is spread over the nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HashShares {
    /// Every node the same.
    Uniform,
    /// Drawn from an exponential distribution (a few large miners, many small ones).
    Skewed,
}

/// A network partition: nodes `0..n/2` and `n/2..n` cannot reach each other from `start`
/// for `length` seconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Partition {
    /// Virtual seconds after the start.
    pub start: f64,
    /// Seconds it lasts.
    pub length: f64,
}

/// A simulation.
#[derive(Clone, Debug)]
pub struct Config {
    /// Nodes (ignored for a topology file).
    pub nodes: usize,
    /// The graph.
    pub topology: Topology,
    /// Per-link one-way latency.
    pub latency: Latency,
    /// Per-link bandwidth in bytes per second (0: unlimited).
    pub bandwidth: f64,
    /// Bytes of every block on the wire.
    pub block_size: u64,
    /// Mean seconds between blocks (the whole network).
    pub interval: f64,
    /// Blocks to mine.
    pub blocks: u32,
    /// Hash power spread.
    pub hash: HashShares,
    /// The seed of every random draw.
    pub seed: u64,
    /// Fork choice per node.
    pub chain: ChainMode,
    /// An optional partition.
    pub partition: Option<Partition>,
    /// Node 0 is a selfish pool (`miner::strategy::Selfish`) with this share of the hash rate.
    pub selfish: Option<f64>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            nodes: 100,
            topology: Topology::Regular(8),
            latency: Latency::Uniform(20.0, 200.0),
            bandwidth: 12.5e6,
            block_size: 1_000_000,
            interval: 600.0,
            blocks: 1000,
            hash: HashShares::Uniform,
            seed: 1,
            chain: ChainMode::Index,
            partition: None,
            selfish: None,
        }
    }
}

/// Most nodes x blocks in [`ChainMode::Full`]: each node keeps a chainstate, measured at about
/// 1.5 KB and 21 us per node and block (1,000,000: about 1.5 GB and 20 s).
pub const FULL_MODE_MAX: usize = 1_000_000;

/// Most nodes x blocks in any mode: a bit per node and block, so at most 256 MB of bitsets.
pub const INDEX_MODE_MAX: usize = 1 << 31;

/// Most blocks a simulation mines (bounds memory: a few bytes per block per node).
pub const MAX_BLOCKS: u32 = 1_000_000;

/// What a run measured. Deterministic: the same config gives the same report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Nodes.
    pub nodes: usize,
    /// Undirected links.
    pub links: usize,
    /// Fork choice mode.
    pub chain: ChainMode,
    /// Blocks mined.
    pub blocks_mined: u32,
    /// Blocks on the final best chain (genesis excluded).
    pub main_chain: u32,
    /// Blocks mined but not on the final best chain.
    pub stale: u32,
    /// stale / mined.
    pub stale_rate: f64,
    /// Mean seconds from a block's mining to its arrival at a node (over every block and
    /// every node it reached other than its miner; arrivals a partition held up left out).
    pub mean_propagation_s: f64,
    /// Tip changes that left the old tip's branch, at any node.
    pub reorgs: u64,
    /// Deepest of them (blocks disconnected).
    pub max_reorg_depth: u32,
    /// Seconds from the heal to every node sharing one tip (partition runs).
    pub converged_after_heal_s: Option<f64>,
    /// Blocks the losing side of a partition had on its branch at the heal.
    pub partition_orphaned: Option<u32>,
    /// Whether the two sides' best branches had equal work at the heal (partition runs).
    pub partition_tied: Option<bool>,
    /// Virtual seconds simulated.
    pub virtual_seconds: f64,
    /// Events processed.
    pub events: u64,
    /// Whether every node ends on the same tip.
    pub tips_agree: bool,
    /// FNV-1a over every node's final tip id, to compare runs and modes.
    pub tips_digest: String,
    /// With a selfish pool: its share of the final main chain's blocks.
    pub pool_revenue: Option<f64>,
}

const US: f64 = 1e6;
const NONE: u32 = u32::MAX;
/// The selfish pool's node, when there is one.
const POOL: u32 = 0;

#[derive(Clone, Copy)]
struct SimBlock {
    parent: u32,
    miner: u32,
    height: u32,
    mined_at: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Mine,
    Deliver { to: u32, from: u32, block: u32 },
    Split,
    Heal,
}

struct Node {
    tip: u32,
    known: Vec<u64>,
    /// Blocks on their way here, with their arrival time.
    pending: Vec<(u32, u64)>,
    /// Blocks waiting for their parent, with the sender.
    orphans: Vec<(u32, u32)>,
    chain: Option<Chain>,
}

impl Node {
    fn knows(&self, b: u32) -> bool {
        self.known.get(b as usize / 64).is_some_and(|w| w >> (b % 64) & 1 == 1)
    }

    fn learn(&mut self, b: u32) {
        let i = b as usize / 64;
        if self.known.len() <= i {
            self.known.resize(i + 1, 0);
        }
        self.known[i] |= 1 << (b % 64);
    }
}

/// The state of one run.
struct Sim<'a> {
    cfg: &'a Config,
    params: &'static Params,
    rng: StdRng,
    graph: Graph,
    /// Per directed link (parallel to `graph.links`): when it is free to send again.
    busy: Vec<Vec<u64>>,
    nodes: Vec<Node>,
    blocks: Vec<SimBlock>,
    /// Full mode: the real blocks by id, and ids by hash.
    bodies: Vec<Block>,
    ids: HashMap<Hash256, u32>,
    /// Cumulative hash shares, for a weighted draw of the miner.
    cumulative: Vec<f64>,
    queue: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    seq: u64,
    now: u64,
    mined: u32,
    events: u64,
    prop_sum: f64,
    prop_count: u64,
    reorgs: u64,
    max_reorg: u32,
    partitioned: bool,
    healed_at: Option<u64>,
    converged: Option<u64>,
    orphaned_at_heal: Option<u32>,
    tied_at_heal: Option<bool>,
    tip_count: HashMap<u32, u32>,
    lock: Script,
    /// The selfish pool's strategy and the block it mines on.
    pool: Option<(Selfish<u32>, u32)>,
}

/// Runs a simulation to the end (every block mined and every message delivered).
pub fn run(cfg: &Config) -> Result<Report, SimError> {
    if cfg.blocks == 0 || cfg.blocks > MAX_BLOCKS {
        return Err(SimError::Config(format!("--blocks {}: expected 1 to {MAX_BLOCKS}", cfg.blocks)));
    }
    if !(cfg.interval > 0.0 && cfg.interval.is_finite()) || !(cfg.bandwidth >= 0.0) {
        return Err(SimError::Config(format!(
            "--interval {} must be > 0 and --bandwidth-mbit {} >= 0",
            cfg.interval,
            cfg.bandwidth * 8.0 / 1e6
        )));
    }
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let graph = Graph::build(&cfg.topology, cfg.nodes, cfg.latency, &mut rng)?;
    let n = graph.len();
    if n.saturating_mul(cfg.blocks as usize) > INDEX_MODE_MAX {
        return Err(SimError::Config(format!(
            "nodes x blocks = {} is above {INDEX_MODE_MAX} (each node keeps a bit per block): lower --nodes or --blocks",
            n as u64 * cfg.blocks as u64
        )));
    }
    if cfg.chain == ChainMode::Full && n.saturating_mul(cfg.blocks as usize) > FULL_MODE_MAX {
        return Err(SimError::Config(format!(
            "--chain full keeps a chainstate per node: nodes x blocks = {} is above {FULL_MODE_MAX}; use --chain index",
            n * cfg.blocks as usize
        )));
    }
    let shares: Vec<f64> = (0..n)
        .map(|_| match cfg.hash {
            HashShares::Uniform => 1.0,
            HashShares::Skewed => exp_sample(&mut rng, 1.0),
        })
        .collect();
    let mut shares = shares;
    if let Some(alpha) = cfg.selfish {
        if !(0.0..1.0).contains(&alpha) {
            return Err(SimError::Config(format!("--selfish {alpha}: expected a hash share in 0..1")));
        }
        let others: f64 = shares[1..].iter().sum();
        shares[0] = alpha / (1.0 - alpha) * others;
    }
    let mut acc = 0.0;
    let cumulative = shares
        .iter()
        .map(|s| {
            acc += s;
            acc
        })
        .collect();
    let params = Network::Regtest.params();
    let mut sim = Sim {
        cfg,
        params,
        rng,
        busy: graph.links.iter().map(|l| vec![0; l.len()]).collect(),
        nodes: (0..n)
            .map(|_| Node {
                tip: 0,
                known: vec![1],
                pending: Vec::new(),
                orphans: Vec::new(),
                chain: (cfg.chain == ChainMode::Full).then(|| Chain::memory(params)),
            })
            .collect(),
        graph,
        blocks: vec![SimBlock { parent: NONE, miner: NONE, height: 0, mined_at: 0 }],
        pool: cfg.selfish.map(|_| (Selfish::new(0, 0), 0)),
        bodies: vec![params.genesis.clone()],
        ids: HashMap::from([(params.genesis_hash, 0)]),
        cumulative,
        queue: BinaryHeap::new(),
        seq: 0,
        now: 0,
        mined: 0,
        events: 0,
        prop_sum: 0.0,
        prop_count: 0,
        reorgs: 0,
        max_reorg: 0,
        partitioned: false,
        healed_at: None,
        converged: None,
        orphaned_at_heal: None,
        tied_at_heal: None,
        tip_count: HashMap::from([(0, n as u32)]),
        lock: Script(vec![crate::script::opcodes::OP_RETURN]),
    };
    sim.main_loop()?;
    Ok(sim.report())
}

impl Sim<'_> {
    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, ev)));
    }

    fn next_mine(&mut self) {
        let dt = exp_sample(&mut self.rng, self.cfg.interval);
        self.push(self.now + (dt * US).round() as u64, Ev::Mine);
    }

    /// Mining goes on until `blocks` are mined, and after a partition until it has converged
    /// (at most 10x `blocks` in all).
    fn keep_mining(&self) -> bool {
        let waiting = self.cfg.partition.is_some() && self.converged.is_none();
        self.mined < self.cfg.blocks || (waiting && self.mined < self.cfg.blocks.saturating_mul(10))
    }

    fn main_loop(&mut self) -> Result<(), SimError> {
        self.next_mine();
        if let Some(p) = self.cfg.partition {
            self.push((p.start * US) as u64, Ev::Split);
            self.push(((p.start + p.length) * US) as u64, Ev::Heal);
        }
        while let Some(Reverse((at, _, ev))) = self.queue.pop() {
            self.now = at;
            self.events += 1;
            match ev {
                Ev::Mine => {
                    self.mine()?;
                    if self.keep_mining() {
                        self.next_mine();
                    }
                }
                Ev::Deliver { to, from, block } => self.deliver(to, from, block)?,
                Ev::Split => self.partitioned = true,
                Ev::Heal => self.heal(),
            }
        }
        Ok(())
    }

    fn pick_miner(&mut self) -> u32 {
        let total = *self.cumulative.last().expect("at least two nodes");
        let x = self.rng.gen::<f64>() * total;
        self.cumulative.partition_point(|c| *c <= x).min(self.cumulative.len() - 1) as u32
    }

    fn mine(&mut self) -> Result<(), SimError> {
        let m = self.pick_miner();
        let parent = match &self.pool {
            Some((_, mine_on)) if m == POOL => *mine_on,
            _ => self.nodes[m as usize].tip,
        };
        let id = self.blocks.len() as u32;
        let height = self.blocks[parent as usize].height + 1;
        self.blocks.push(SimBlock { parent, miner: m, height, mined_at: self.now });
        if let Some(chain) = &self.nodes[m as usize].chain {
            let phash = self.bodies[parent as usize].hash();
            let now = self.header_now();
            let ctx =
                chain.header_context(&phash, now).ok_or(SimError::Internal("miner's parent not indexed"))?;
            let time = (now as u32).max(ctx.median_time_past.saturating_add(1));
            let cb =
                coinbase(height, block_subsidy(self.params, height), self.lock.clone(), &id.to_le_bytes());
            let block = assemble(self.params, phash, time, ctx.expected_bits, vec![cb]);
            self.ids.insert(block.hash(), id);
            self.bodies.push(block);
        }
        self.mined += 1;
        self.accept(m, NONE, id)?;
        if m == POOL {
            self.pool_event(Event::Mined { block: id });
        }
        Ok(())
    }

    /// Feeds the selfish pool (node 0) an event and carries out its decision.
    fn pool_event(&mut self, event: Event<u32>) {
        let Some((strategy, mine_on)) = &mut self.pool else { return };
        let decision = strategy.on_event(event);
        *mine_on = decision.mine_on();
        for &b in decision.published() {
            for k in 0..self.graph.links[POOL as usize].len() {
                self.send(POOL, k, b);
            }
        }
    }

    /// The header clock: genesis time plus virtual seconds.
    fn header_now(&self) -> u64 {
        self.params.genesis_time as u64 + self.now / 1_000_000
    }

    fn deliver(&mut self, to: u32, from: u32, block: u32) -> Result<(), SimError> {
        let node = &mut self.nodes[to as usize];
        if node.knows(block) {
            return Ok(());
        }
        node.pending.retain(|(b, _)| *b != block);
        self.accept(to, from, block)
    }

    /// A node takes a block whose arrival is now: into its orphans if the parent is missing,
    /// else through fork choice, then relayed; waiting children follow.
    fn accept(&mut self, n: u32, from: u32, block: u32) -> Result<(), SimError> {
        let mut work = vec![(block, from)];
        while let Some((b, from)) = work.pop() {
            let parent = self.blocks[b as usize].parent;
            let node = &mut self.nodes[n as usize];
            if node.knows(b) {
                continue;
            }
            if !node.knows(parent) {
                node.orphans.push((b, from));
                continue;
            }
            node.learn(b);
            if from != NONE && !self.crossed_partition(b) {
                self.prop_sum += (self.now - self.blocks[b as usize].mined_at) as f64 / US;
                self.prop_count += 1;
            }
            self.choose_tip(n, b)?;
            if n == POOL && self.pool.is_some() {
                // The pool relays only what its strategy publishes; it hears the rest.
                let blk = self.blocks[b as usize];
                if blk.miner != POOL {
                    self.pool_event(Event::Honest { block: b, parent: blk.parent, height: blk.height });
                }
            } else {
                self.relay(n, from, b);
            }
            let node = &mut self.nodes[n as usize];
            let (ready, rest): (Vec<_>, Vec<_>) = node.orphans.drain(..).partition(|(c, _)| {
                let p = self.blocks[*c as usize].parent;
                p == b
            });
            node.orphans = rest;
            work.extend(ready);
        }
        Ok(())
    }

    fn choose_tip(&mut self, n: u32, b: u32) -> Result<(), SimError> {
        let header_now = self.header_now() + 1;
        let node = &mut self.nodes[n as usize];
        let old = node.tip;
        let new = match &mut node.chain {
            Some(chain) => {
                chain
                    .process_block(self.bodies[b as usize].clone(), header_now)
                    .map_err(|e| SimError::Chain(format!("node {n}, block {b}: {e}")))?;
                *self.ids.get(&chain.tip().hash).ok_or(SimError::Internal("tip not simulated"))?
            }
            None => {
                // Equal work per block: strictly more blocks is strictly more work.
                if self.blocks[b as usize].height > self.blocks[old as usize].height {
                    b
                } else {
                    old
                }
            }
        };
        if new == old {
            return Ok(());
        }
        node.tip = new;
        if self.blocks[new as usize].parent != old {
            let depth = self.blocks[old as usize].height - self.blocks[self.fork(old, new) as usize].height;
            if depth > 0 {
                self.reorgs += 1;
                self.max_reorg = self.max_reorg.max(depth);
            }
        }
        let c = self.tip_count.get_mut(&old).expect("counted");
        *c -= 1;
        if *c == 0 {
            self.tip_count.remove(&old);
        }
        let c = self.tip_count.entry(new).or_default();
        *c += 1;
        if *c as usize == self.nodes.len() && self.healed_at.is_some() && self.converged.is_none() {
            self.converged = Some(self.now);
        }
        Ok(())
    }

    /// True for an arrival the partition held up: a block mined before the heal arriving after
    /// the split (kept out of the propagation mean, which describes the healthy network).
    fn crossed_partition(&self, b: u32) -> bool {
        match self.cfg.partition {
            None => false,
            Some(p) => {
                let heal = self.healed_at.unwrap_or(u64::MAX);
                self.blocks[b as usize].mined_at < heal && self.now >= (p.start * US) as u64
            }
        }
    }

    /// The last common block of `a` and `b`.
    fn fork(&self, mut a: u32, mut b: u32) -> u32 {
        while a != b {
            let (ha, hb) = (self.blocks[a as usize].height, self.blocks[b as usize].height);
            if ha >= hb {
                a = self.blocks[a as usize].parent;
            }
            if hb >= ha {
                b = self.blocks[b as usize].parent;
            }
        }
        a
    }

    fn side(&self, n: u32) -> bool {
        (n as usize) < self.nodes.len() / 2
    }

    fn relay(&mut self, n: u32, from: u32, b: u32) {
        for k in 0..self.graph.links[n as usize].len() {
            if self.graph.links[n as usize][k].0 != from {
                self.send(n, k, b);
            }
        }
    }

    /// Sends block `b` from `n` over its `k`-th link, unless the peer has it or gets it sooner.
    fn send(&mut self, n: u32, k: usize, b: u32) {
        let (peer, latency) = self.graph.links[n as usize][k];
        if self.partitioned && self.side(n) != self.side(peer) {
            return;
        }
        let p = &self.nodes[peer as usize];
        if p.knows(b) {
            return;
        }
        let busy = &mut self.busy[n as usize][k];
        let start = self.now.max(*busy);
        let tx = if self.cfg.bandwidth > 0.0 {
            (self.cfg.block_size as f64 / self.cfg.bandwidth * US).round() as u64
        } else {
            0
        };
        let arrive = start + tx + (latency * US).round() as u64;
        if p.pending.iter().any(|(x, t)| *x == b && *t <= arrive) {
            return;
        }
        *busy = start + tx;
        let p = &mut self.nodes[peer as usize];
        p.pending.retain(|(x, _)| *x != b);
        p.pending.push((b, arrive));
        self.push(arrive, Ev::Deliver { to: peer, from: n, block: b });
    }

    /// Ends the partition: every node on a link across the cut sends the other the blocks of
    /// its active chain that it lacks, oldest first.
    fn heal(&mut self) {
        self.partitioned = false;
        self.healed_at = Some(self.now);
        // Each side's best tip (the highest; the lowest id among equals, for determinism).
        let best = |side: bool| {
            (0..self.nodes.len() as u32)
                .filter(|n| self.side(*n) == side)
                .map(|n| self.nodes[n as usize].tip)
                .max_by_key(|t| (self.blocks[*t as usize].height, Reverse(*t)))
                .expect("both sides have nodes")
        };
        let (a, b) = (best(true), best(false));
        let f = self.fork(a, b);
        let (ha, hb) = (self.blocks[a as usize].height, self.blocks[b as usize].height);
        self.tied_at_heal = Some(a != b && ha == hb);
        self.orphaned_at_heal = Some(ha.min(hb) - self.blocks[f as usize].height);
        if self.tip_count.len() == 1 {
            self.converged = Some(self.now);
        }
        for n in 0..self.nodes.len() as u32 {
            for k in 0..self.graph.links[n as usize].len() {
                let peer = self.graph.links[n as usize][k].0;
                if self.side(n) == self.side(peer) {
                    continue;
                }
                let mut branch = Vec::new();
                let mut cur = self.nodes[n as usize].tip;
                while !self.nodes[peer as usize].knows(cur) {
                    branch.push(cur);
                    cur = self.blocks[cur as usize].parent;
                }
                for b in branch.into_iter().rev() {
                    self.send(n, k, b);
                }
            }
        }
    }

    fn report(&self) -> Report {
        let best =
            self.nodes.iter().map(|n| n.tip).max_by_key(|t| (self.blocks[*t as usize].height, Reverse(*t)));
        let best = best.unwrap_or(0);
        let main_chain = self.blocks[best as usize].height;
        let mut digest: u64 = 0xcbf2_9ce4_8422_2325;
        for n in &self.nodes {
            for byte in n.tip.to_le_bytes() {
                digest = (digest ^ byte as u64).wrapping_mul(0x100_0000_01b3);
            }
        }
        let stale = self.mined - main_chain;
        Report {
            seed: self.cfg.seed,
            nodes: self.nodes.len(),
            links: self.graph.links.iter().map(Vec::len).sum::<usize>() / 2,
            chain: self.cfg.chain,
            blocks_mined: self.mined,
            main_chain,
            stale,
            stale_rate: stale as f64 / self.mined as f64,
            mean_propagation_s: if self.prop_count > 0 {
                self.prop_sum / self.prop_count as f64
            } else {
                0.0
            },
            reorgs: self.reorgs,
            max_reorg_depth: self.max_reorg,
            converged_after_heal_s: match (self.healed_at, self.converged) {
                (Some(h), Some(c)) => Some((c - h) as f64 / US),
                _ => None,
            },
            partition_orphaned: self.orphaned_at_heal,
            partition_tied: self.tied_at_heal,
            virtual_seconds: self.now as f64 / US,
            events: self.events,
            tips_agree: self.tip_count.len() == 1,
            tips_digest: format!("{digest:016x}"),
            pool_revenue: self.pool.as_ref().map(|_| {
                let (mut cur, mut ours) = (best, 0u32);
                while cur != 0 {
                    ours += (self.blocks[cur as usize].miner == POOL) as u32;
                    cur = self.blocks[cur as usize].parent;
                }
                ours as f64 / main_chain.max(1) as f64
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(chain: ChainMode, seed: u64) -> Config {
        Config {
            nodes: 16,
            topology: Topology::Regular(4),
            latency: Latency::Uniform(500.0, 4000.0),
            bandwidth: 1e6,
            interval: 20.0,
            blocks: 150,
            seed,
            chain,
            ..Config::default()
        }
    }

    #[test]
    fn the_real_chain_and_the_index_rule_choose_the_same_tips() {
        // Fast blocks over slow links: many forks and reorgs, so the comparison means something.
        for seed in 1..=3 {
            let index = run(&small(ChainMode::Index, seed)).unwrap();
            let full = run(&small(ChainMode::Full, seed)).unwrap();
            assert!(index.stale > 0 && index.reorgs > 0, "{index:?}");
            assert_eq!(Report { chain: ChainMode::Index, ..full }, index);
        }
    }

    #[test]
    fn a_partition_forks_and_the_heal_converges() {
        let mut cfg = small(ChainMode::Index, 5);
        cfg.latency = Latency::Fixed(100.0);
        cfg.partition = Some(Partition { start: 100.0, length: 400.0 });
        let r = run(&cfg).unwrap();
        assert!(r.partition_orphaned.unwrap() > 0, "{r:?}");
        assert!(r.converged_after_heal_s.is_some() && r.tips_agree, "{r:?}");
        assert!(r.max_reorg_depth >= r.partition_orphaned.unwrap(), "{r:?}");
    }

    #[test]
    fn a_selfish_pool_in_the_network_beats_its_share_at_45_percent() {
        let cfg = Config {
            nodes: 50,
            latency: Latency::Uniform(20.0, 200.0),
            blocks: 4000,
            selfish: Some(0.45),
            ..Config::default()
        };
        let r = run(&cfg).unwrap();
        let revenue = r.pool_revenue.unwrap();
        // Eyal-Sirer: 0.65 at gamma = 0; honest mining would give 0.45.
        assert!(revenue > 0.55, "{r:?}");
        assert!(run(&Config { selfish: None, ..cfg }).unwrap().pool_revenue.is_none());
    }

    #[test]
    fn refusals_name_the_flag() {
        let e = run(&Config { blocks: 0, ..Config::default() }).unwrap_err().to_string();
        assert!(e.contains("--blocks 0"), "{e}");
        let e = run(&Config { bandwidth: -1.0, ..Config::default() }).unwrap_err().to_string();
        assert!(e.contains("--bandwidth-mbit"), "{e}");
        let e =
            run(&Config { nodes: 100_000, blocks: 100_000, ..Config::default() }).unwrap_err().to_string();
        assert!(e.contains("lower --nodes or --blocks"), "{e}");
        let e = run(&Config { chain: ChainMode::Full, nodes: 1000, blocks: 10_000, ..Config::default() })
            .unwrap_err()
            .to_string();
        assert!(e.contains("use --chain index"), "{e}");
    }
}
