//! `quarry testnet soak`: SIGKILL nodes of a two-node regtest testnet again and again while
//! both mine and a load sends transactions, and check after every restart that nothing was
//! lost.
//!
//! Each kill picks (from a seeded RNG) a node and one of three kinds, in rounds of three
//! that hold one of each kind:
//! - **random**: a moment 0.2-3 s on;
//! - **flush**: the node is armed to pause inside its next UTXO cache flush (after the
//!   flush began, before its RocksDB batch is written; `QUARRY_PAUSE_AT`, see
//!   [`crate::chain::pause`]) and killed once its marker file appears;
//! - **reorg**: the node is cut off (`setnetworkactive false`), mines a block of its own,
//!   the other node mines past it, the node is armed to pause inside a reorganisation (after
//!   disconnecting its own blocks, before connecting the other branch) and reconnected; it is
//!   killed once its marker appears.
//!
//! An aimed kill whose marker does not appear in time still kills, and counts as a missed
//! aim. The nodes run with a tiny coins cache (`QUARRY_DBCACHE_BYTES`, default 2 KiB) so a
//! flush happens every block or two. After each kill: the store is read for how far the
//! flushed UTXO set lagged the tip; the node is restarted and timed until it answers RPC;
//! then it is stopped and its chainstate checked offline with
//! [`crate::chain::verify::verify_chainstate`] (its UTXO digest after the node's own
//! start-up against a rebuild from its stored blocks), and started again.
//!
//! At the end the miners are stopped (nodes restarted without `--mine`), the nodes converge,
//! every transaction the load saw confirmed [`load::CONFIRMED_DEPTH`] deep must be on the
//! final chain, and both chainstates are verified offline: equal digests on both nodes, equal
//! to the rebuilds, and the coins' sum equal to the subsidy issued along the chain.

pub mod load;

use super::error::{Result, ResultExt, Step, TestnetError};
use super::topology::{NodeSpec, Topology};
use super::Testnet;
use crate::chain::pause::{PausePoint, ARM_FILE, PAUSE_ENV};
use crate::chain::verify::{verify_chainstate, VerifyReport};
use crate::consensus::Network;
use crate::rpc::api::QuarryApiClient;
use load::{Load, LoadNode};
use rand::{Rng, SeedableRng};
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// Default coins cache bound of soaked nodes, bytes (about 14 coins).
pub const DEFAULT_DBCACHE_BYTES: usize = 2 << 10;
/// Default miner rate per node, hashes per second (regtest: about one block per 2 hashes).
pub const DEFAULT_HASHRATE: f64 = 2.0;
/// How long an aimed kill waits for its marker.
const AIM_WAIT: Duration = Duration::from_secs(20);
/// How long a node may take to answer RPC after a start.
const READY_WAIT: Duration = Duration::from_secs(120);

/// Soak settings.
#[derive(Clone, Debug)]
pub struct SoakOptions {
    /// Kills.
    pub kills: usize,
    /// RNG seed (node and moment of each kill, the order of kinds).
    pub seed: u64,
    /// Coins cache bound of the nodes, bytes.
    pub dbcache_bytes: usize,
    /// Miner rate per node, hashes per second.
    pub hashrate: f64,
}

/// How a kill was aimed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KillKind {
    /// At a random moment.
    Random,
    /// Inside a UTXO cache flush.
    Flush,
    /// Inside a reorganisation.
    Reorg,
}

/// One kill.
#[derive(Clone, Debug, serde::Serialize)]
pub struct KillRecord {
    /// The node.
    pub node: String,
    /// How it was aimed.
    pub kind: KillKind,
    /// For an aimed kill: the marker was there (the node died at the pause point).
    pub landed: bool,
    /// The node's height when it was killed (from the store).
    pub height: u32,
    /// The flushed UTXO set was behind the tip at the kill (the restart rolled it forward).
    pub utxo_behind: bool,
    /// Seconds from the restart until the node answered RPC.
    pub restart_s: f64,
    /// Seconds `chain verify` took.
    pub verify_s: f64,
    /// The restarted node's UTXO set equalled the rebuild.
    pub verified: bool,
}

/// Counts of kills by kind.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct KindCounts {
    /// Random moments.
    pub random: usize,
    /// Aimed at a flush and landed there.
    pub flush: usize,
    /// Aimed at a reorganisation and landed there.
    pub reorg: usize,
    /// Aimed but the marker never appeared (killed anyway).
    pub missed_aim: usize,
}

/// The soak's report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SoakReport {
    /// The seed.
    pub seed: u64,
    /// Kills made.
    pub kills: usize,
    /// Kills after which the node restarted and its UTXO set equalled the rebuild.
    pub survived: usize,
    /// Kills by kind.
    pub by_kind: KindCounts,
    /// Kills at which the flushed UTXO set lagged the tip.
    pub utxo_behind: usize,
    /// Median seconds from restart to RPC answer.
    pub restart_median_s: f64,
    /// Median seconds of `chain verify`.
    pub verify_median_s: f64,
    /// Transactions the load got accepted.
    pub txs_sent: usize,
    /// Of those, seen confirmed (6 deep).
    pub txs_confirmed: usize,
    /// Seen confirmed but not on the final chain.
    pub missing: usize,
    /// The first missing txids.
    pub missing_txids: Vec<String>,
    /// Height of the final chain.
    pub final_height: u32,
    /// Both nodes ended on one tip with equal UTXO digests, each equal to its rebuild.
    pub digests_equal: bool,
    /// Sum of the final UTXO set, base units.
    pub coins_sat: u64,
    /// Subsidy issued along the final chain, base units.
    pub issued_sat: u64,
    /// `coins_sat == issued_sat`.
    pub coins_add_up: bool,
    /// The nodes' coins cache bound, bytes.
    pub dbcache_bytes: usize,
    /// Seconds the whole soak took.
    pub elapsed_s: f64,
    /// What went wrong (empty on success).
    pub failures: Vec<String>,
    /// Every kill.
    pub records: Vec<KillRecord>,
}

impl SoakReport {
    /// True when every kill was survived and nothing was lost.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
            && self.survived == self.kills
            && self.missing == 0
            && self.digests_equal
            && self.coins_add_up
    }
}

const NODES: [&str; 2] = ["a", "b"];

fn topology(hashrate: f64) -> Topology {
    let node = |name: &str, other: &str| NodeSpec {
        name: name.into(),
        mine: true,
        threads: 1,
        bootnodes: vec![other.into()],
        rpc_port: None,
        p2p_port: None,
        start: true,
        strategy: Default::default(),
        hashrate: Some(hashrate),
        sync_writes: false,
    };
    Topology {
        network: Network::Regtest,
        hosts: Default::default(),
        nodes: vec![node(NODES[0], NODES[1]), node(NODES[1], NODES[0])],
        default_link: None,
        links: Vec::new(),
    }
}

/// Runs the soak in `dir` (which must not hold a testnet); stops the nodes at the end.
pub fn run(dir: &Path, opts: &SoakOptions) -> Result<SoakReport> {
    if !(opts.hashrate.is_finite() && opts.hashrate > 0.0) {
        return Err(TestnetError::refused("--hashrate must be a positive number of hashes per second"));
    }
    let mut t = Testnet::create(dir, &topology(opts.hashrate))?;
    t.node_env = vec![
        (crate::chain::coins::DBCACHE_BYTES_ENV.into(), opts.dbcache_bytes.to_string()),
        (PAUSE_ENV.into(), "flush,reorg".into()),
    ];
    let result = soak(&mut t, opts);
    let down = t.down();
    let report = result?;
    down?;
    Ok(report)
}

fn soak(t: &mut Testnet, opts: &SoakOptions) -> Result<SoakReport> {
    let started = Instant::now();
    let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed);
    for n in NODES {
        t.start_node(n)?;
        t.wait_ready(n, READY_WAIT)?;
    }
    t.wait_until("the nodes to connect", Duration::from_secs(60), |t| Ok(t.peers(NODES[0])? > 0))?;
    // Mature coins for both wallets at once: a few blocks each, then past maturity.
    let maturity = t.network.params().coinbase_maturity;
    t.mine(NODES[1], 3)?;
    t.wait_until("b's blocks on a", Duration::from_secs(60), |t| t.same_tip(None))?;
    t.mine(NODES[0], maturity + 3)?;
    t.wait_until("the nodes to agree", Duration::from_secs(60), |t| t.same_tip(None))?;
    eprintln!("soak: 2 regtest nodes mining, coins cache {} bytes, seed {}", opts.dbcache_bytes, opts.seed);

    let nodes: Vec<LoadNode> = NODES
        .iter()
        .map(|n| Ok(LoadNode { name: n.to_string(), rpc: t.rpc_config(n)?, wallet: t.wallet(n)? }))
        .collect::<Result<_>>()?;
    let load = Load::start(nodes);
    std::thread::sleep(Duration::from_secs(2));

    let mut records = Vec::new();
    let mut failures = Vec::new();
    let mut kinds = Vec::new();
    for i in 0..opts.kills {
        if kinds.is_empty() {
            kinds = vec![KillKind::Random, KillKind::Flush, KillKind::Reorg];
            // Drawn in reverse by pop(): a seeded shuffle.
            for j in (1..kinds.len()).rev() {
                kinds.swap(j, rng.gen_range(0..=j));
            }
        }
        let kind = kinds.pop().expect("refilled above");
        let target = rng.gen_range(0..NODES.len());
        match kill_once(t, &load, &mut rng, target, kind) {
            Ok(r) => {
                eprintln!(
                    "kill {:>3}/{}: {} {:?}{} at height {}{}, restarted in {:.2} s, verified in {:.2} s: {}",
                    i + 1,
                    opts.kills,
                    r.node,
                    r.kind,
                    if r.kind != KillKind::Random && !r.landed { " (missed aim)" } else { "" },
                    r.height,
                    if r.utxo_behind { " (UTXO set behind the tip)" } else { "" },
                    r.restart_s,
                    r.verify_s,
                    if r.verified { "ok" } else { "DIFFERS" },
                );
                if !r.verified {
                    failures.push(format!("kill {}: node {} failed chain verify", i + 1, r.node));
                }
                records.push(r);
            }
            Err(e) => {
                failures.push(format!("kill {} ({:?} of {}): {}", i + 1, kind, NODES[target], e.chain()));
                eprintln!("kill {}: {}", i + 1, e.chain());
                break;
            }
        }
    }
    let (sent, confirmed) = load.counts();
    eprintln!("kills done; {sent} transactions sent, {confirmed} seen confirmed; settling…");
    let stats = load.finish();

    let mut report = SoakReport {
        seed: opts.seed,
        kills: records.len(),
        survived: records.iter().filter(|r| r.verified).count(),
        by_kind: count_kinds(&records),
        utxo_behind: records.iter().filter(|r| r.utxo_behind).count(),
        restart_median_s: median(records.iter().map(|r| r.restart_s).collect()),
        verify_median_s: median(records.iter().map(|r| r.verify_s).collect()),
        txs_sent: stats.sent.len(),
        txs_confirmed: stats.confirmed.len(),
        missing: 0,
        missing_txids: Vec::new(),
        final_height: 0,
        digests_equal: false,
        coins_sat: 0,
        issued_sat: 0,
        coins_add_up: false,
        dbcache_bytes: opts.dbcache_bytes,
        elapsed_s: 0.0,
        failures,
        records,
    };
    if let Err(e) = settle(t, &stats, &mut report) {
        report.failures.push(format!("final check: {}", e.chain()));
    }
    report.elapsed_s = started.elapsed().as_secs_f64();
    Ok(report)
}

fn count_kinds(records: &[KillRecord]) -> KindCounts {
    let mut c = KindCounts::default();
    for r in records {
        match (r.kind, r.landed) {
            (KillKind::Random, _) => c.random += 1,
            (_, false) => c.missed_aim += 1,
            (KillKind::Flush, true) => c.flush += 1,
            (KillKind::Reorg, true) => c.reorg += 1,
        }
    }
    c
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn arm(t: &Testnet, node: &str, point: PausePoint) -> Result<()> {
    let path = t.datadir(node).join(ARM_FILE);
    std::fs::write(&path, point.name()).io("writing", &path)
}

/// Removes the arm file and markers a kill left behind.
fn disarm(t: &Testnet, node: &str) {
    let dir = t.datadir(node);
    let _ = std::fs::remove_file(dir.join(ARM_FILE));
    for p in PausePoint::ALL {
        let _ = std::fs::remove_file(p.marker(&dir));
    }
}

/// Waits up to [`AIM_WAIT`] for the node to pause at `point`.
fn wait_marker(t: &mut Testnet, node: &str, point: PausePoint) -> bool {
    let marker = point.marker(&t.datadir(node));
    let start = Instant::now();
    while start.elapsed() < AIM_WAIT {
        if marker.exists() {
            return true;
        }
        if !t.is_running(node) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn kill_once(
    t: &mut Testnet,
    load: &Load,
    rng: &mut rand::rngs::StdRng,
    target: usize,
    kind: KillKind,
) -> Result<KillRecord> {
    let name = NODES[target];
    let other = NODES[1 - target];
    let landed = match kind {
        KillKind::Random => {
            std::thread::sleep(Duration::from_millis(rng.gen_range(200..3_000)));
            false
        }
        KillKind::Flush => {
            arm(t, name, PausePoint::Flush)?;
            wait_marker(t, name, PausePoint::Flush)
        }
        KillKind::Reorg => {
            // No more transactions to it; those sent just before reach the other node first.
            load.allow(target, false);
            std::thread::sleep(Duration::from_millis(500));
            isolate_and_outmine(t, rng, name, other)?;
            arm(t, name, PausePoint::Reorg)?;
            t.ask(name, |c| c.wait(c.setnetworkactive(true)))?;
            wait_marker(t, name, PausePoint::Reorg)
        }
    };
    load.allow(target, false);
    t.kill_node(name)?;
    disarm(t, name);
    let chain_dir = t.datadir(name).join("chainstate");
    let (height, utxo_behind) = crash_state(&chain_dir)?;
    let start = Instant::now();
    t.start_node(name)?;
    t.wait_ready(name, READY_WAIT)?;
    let restart_s = start.elapsed().as_secs_f64();
    t.stop_node(name)?;
    let start = Instant::now();
    let verify = verify_chainstate(&chain_dir, t.network.params());
    let verify_s = start.elapsed().as_secs_f64();
    let verified = match &verify {
        Ok(r) if r.ok() => true,
        Ok(r) => {
            eprintln!("  {name}: {}", r.problems.join("; "));
            false
        }
        Err(e) => {
            eprintln!("  {name}: chain verify failed: {e}");
            false
        }
    };
    t.start_node(name)?;
    t.wait_ready(name, READY_WAIT)?;
    load.allow(target, true);
    Ok(KillRecord { node: name.into(), kind, landed, height, utxo_behind, restart_s, verify_s, verified })
}

/// Cuts `name` off, lets it mine a block of its own, and has `other` mine until it leads by
/// three blocks, so that reconnecting makes `name` disconnect its own blocks.
fn isolate_and_outmine(t: &mut Testnet, rng: &mut rand::rngs::StdRng, name: &str, other: &str) -> Result<()> {
    t.ask(name, |c| c.wait(c.setnetworkactive(false)))?;
    t.wait_until("the node to drop its peers", Duration::from_secs(20), |t| Ok(t.peers(name)? == 0))?;
    t.mine(name, 1)?;
    std::thread::sleep(Duration::from_millis(rng.gen_range(300..1_500)));
    let mine_h = t.ask(name, |c| c.wait(c.getblockcount()))?;
    let other_h = t.ask(other, |c| c.wait(c.getblockcount()))?;
    if other_h < mine_h + 3 {
        t.mine(other, mine_h + 3 - other_h)?;
    }
    Ok(())
}

/// The tip height in the store of a killed node, and whether its flushed UTXO set lagged it.
fn crash_state(chain_dir: &Path) -> Result<(u32, bool)> {
    let store = crate::store::Store::open(chain_dir)
        .step(|| format!("opening {} after the kill", chain_dir.display()))?;
    let tip =
        store.tip()?.ok_or_else(|| TestnetError::failed(format!("{} has no tip", chain_dir.display())))?;
    let height = store.get_index(&tip)?.map_or(0, |r| r.height);
    let behind = store.utxo_best()? != Some(tip);
    Ok((height, behind))
}

/// Stops the miners, lets the nodes converge, checks the confirmed transactions and
/// verifies both chainstates.
fn settle(t: &mut Testnet, stats: &load::LoadStats, report: &mut SoakReport) -> Result<()> {
    for n in NODES {
        t.stop_node(n)?;
        t.node_mut(n)?.mine = false;
    }
    for n in NODES {
        t.start_node(n)?;
        t.wait_ready(n, READY_WAIT)?;
    }
    t.wait_until("the nodes to reconnect", Duration::from_secs(60), |t| Ok(t.peers(NODES[0])? > 0))?;
    // Two tips of equal work stay apart (the first seen wins a tie): one more block on `a`
    // settles it.
    let mut converged = false;
    for _ in 0..5 {
        if t.wait_until("the nodes to converge", Duration::from_secs(20), |t| t.same_tip(None)).is_ok() {
            converged = true;
            break;
        }
        t.mine(NODES[0], 1)?;
    }
    if !converged {
        return Err(TestnetError::failed(
            "the nodes did not converge on one tip after 5 tie-breaking blocks",
        ));
    }
    let rpc = t.rpc(NODES[0])?;
    let height = rpc.wait(rpc.getblockcount()).map_err(TestnetError::rpc(NODES[0]))?;
    let mut on_chain = HashSet::new();
    for h in 1..=height {
        let hash = rpc.wait(rpc.getblockhash(h as i64)).map_err(TestnetError::rpc(NODES[0]))?;
        on_chain.extend(rpc.wait(rpc.block_txids(&hash)).map_err(TestnetError::rpc(NODES[0]))?.tx);
    }
    let mut missing: Vec<String> =
        stats.confirmed.keys().filter(|txid| !on_chain.contains(*txid)).map(|t| t.to_string()).collect();
    missing.sort();
    report.missing = missing.len();
    missing.truncate(10);
    report.missing_txids = missing;
    report.final_height = height;
    let mut verified: Vec<VerifyReport> = Vec::new();
    for n in NODES {
        t.stop_node(n)?;
        let r = verify_chainstate(&t.datadir(n).join("chainstate"), t.network.params())?;
        if !r.ok() {
            report.failures.push(format!("final chain verify of {n}: {}", r.problems.join("; ")));
        }
        verified.push(r);
    }
    let (a, b) = (&verified[0], &verified[1]);
    report.digests_equal = a.ok() && b.ok() && a.tip == b.tip && a.node == b.node;
    report.coins_sat = a.node.total_sat;
    report.issued_sat = a.issued_sat;
    report.coins_add_up = a.node.total_sat == a.issued_sat && b.node.total_sat == b.issued_sat;
    Ok(())
}

/// What did not hold, one line each (empty when [`SoakReport::passed`]).
pub fn failed_checks(r: &SoakReport) -> Vec<String> {
    let mut out = r.failures.clone();
    if r.survived != r.kills {
        out.push(format!("{} of {} kills survived", r.survived, r.kills));
    }
    if r.missing > 0 {
        out.push(format!("{} confirmed transactions missing from the final chain", r.missing));
    }
    if !r.digests_equal {
        out.push("the nodes' final UTXO digests differ (or differ from their rebuilds)".into());
    }
    if !r.coins_add_up {
        out.push(format!("coins {} sat != {} sat issued", r.coins_sat, r.issued_sat));
    }
    out
}

/// The report as text.
pub fn report_text(r: &SoakReport) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "kills {} (random {}, mid-flush {}, mid-reorg {}, missed aim {}), survived {} of {}\n",
        r.kills,
        r.by_kind.random,
        r.by_kind.flush,
        r.by_kind.reorg,
        r.by_kind.missed_aim,
        r.survived,
        r.kills
    ));
    s.push_str(&format!("UTXO set behind the tip at the kill: {} of {}\n", r.utxo_behind, r.kills));
    s.push_str(&format!(
        "restart to RPC median {:.2} s, chain verify median {:.2} s\n",
        r.restart_median_s, r.verify_median_s
    ));
    s.push_str(&format!(
        "transactions sent {}, confirmed (6 deep) {}, missing from the final chain {}\n",
        r.txs_sent, r.txs_confirmed, r.missing
    ));
    s.push_str(&format!(
        "final height {}, digests equal {}, coins {} sat of {} sat issued: {}\n",
        r.final_height,
        r.digests_equal,
        r.coins_sat,
        r.issued_sat,
        if r.coins_add_up { "add up" } else { "DO NOT ADD UP" }
    ));
    s.push_str(&format!(
        "coins cache {} bytes, elapsed {:.1} s, seed {}\n",
        r.dbcache_bytes, r.elapsed_s, r.seed
    ));
    for f in &r.failures {
        s.push_str(&format!("FAILED: {f}\n"));
    }
    s
}
