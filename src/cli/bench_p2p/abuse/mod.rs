//! `quarry bench-abuse`: one regtest node (A) under load and attack on loopback, while an
//! honest peer (B, `--bootnode A`) keeps syncing the blocks A mines (about one a second) and
//! an honest RPC client keeps polling A. The phases, in order:
//!
//! 1. `baseline`: nothing but the honest traffic, for the latency it has unloaded;
//! 2. `rpc-load`: `--clients` concurrent RPC clients for `--seconds` ([`rpc_load`]): latency
//!    percentiles, calls/s and errors by kind, where only back-pressure (HTTP 429/503) is
//!    allowed;
//! 3. `connect-flood`: `--connections` TCP connections opened at once to the p2p port and as
//!    many to the RPC port, held until the node closes them or `--hold-seconds` pass
//!    ([`sockets`]);
//! 4. `slow`: `--slow` half-open (silent) and as many slow (1 byte/s) connections to each port,
//!    plus connections that send random bytes instead of a handshake;
//! 5. `peers`: libp2p peers that complete the handshake and then misbehave ([`peers`]):
//!    random bytes as gossip, an oversized sync request frame, a request over the protocol's
//!    count limit, and a request flood.
//!
//! Throughout, [`watch`] samples A's resident memory (from /proc), B's height against A's,
//! and the honest client's latency per phase. After every phase B must reach the height A had
//! at its end. The report (human lines on stderr; `--json` a JSON object on stdout) ends in
//! verdicts; the command fails if one does not hold.

use super::{listen_addr, regtest_address, Cluster, NodeProc, Rpc, RpcTarget};
use crate::rpc::api::QuarryApiClient;
use crate::rpc::client::RpcConfig;
use anyhow::{bail, Result};
use clap::Args;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

mod peers;
mod rpc_load;
mod sockets;
mod watch;

/// `quarry bench-abuse`
#[derive(Args, Debug, Clone)]
pub struct BenchAbuseArgs {
    /// Concurrent RPC clients of the load phase.
    #[arg(long, default_value_t = 200)]
    pub clients: usize,
    /// Seconds of the RPC load phase.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// TCP connections opened at once to each of the p2p and RPC ports.
    #[arg(long, default_value_t = 1_000)]
    pub connections: usize,
    /// Half-open connections to each port in the slow phase (as many slow ones, at 1 byte/s,
    /// and a quarter as many that send random bytes).
    #[arg(long, default_value_t = 64)]
    pub slow: usize,
    /// Seconds the flood and slow phases hold their connections (the node's RPC server
    /// closes silent ones after 30 s, its p2p handshake timeout is 5 s).
    #[arg(long, default_value_t = 40)]
    pub hold_seconds: u64,
    /// Seconds of the baseline phase, and of the request flood of the peers phase.
    #[arg(long, default_value_t = 10)]
    pub baseline_seconds: u64,
    /// Resident memory of the attacked node allowed at its peak, MiB.
    #[arg(long, default_value_t = 512)]
    pub rss_limit_mib: u64,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Keep the work directory (each node's chainstate and `node.log`).
    #[arg(long)]
    pub keep: bool,
}

/// Latency of a series of calls, milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    /// Calls answered.
    pub calls: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

impl Latency {
    /// Percentiles of `samples` (seconds, any order).
    pub fn of(mut samples: Vec<f64>) -> Latency {
        samples.sort_by(f64::total_cmp);
        let ms = |v: f64| v * 1000.0;
        Latency {
            calls: samples.len() as u64,
            p50_ms: ms(super::percentile(&samples, 50.0)),
            p99_ms: ms(super::percentile(&samples, 99.0)),
            max_ms: ms(samples.last().copied().unwrap_or(f64::NAN)),
        }
    }

    fn line(&self) -> String {
        format!(
            "{} calls, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.calls, self.p50_ms, self.p99_ms, self.max_ms
        )
    }
}

/// What the honest side saw during one phase.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseReport {
    /// The phase.
    pub phase: &'static str,
    /// Its length, seconds.
    pub seconds: f64,
    /// The honest RPC client's latency.
    pub honest_rpc: Latency,
    /// The honest RPC client's failed calls, by kind (see [`rpc_load::LoadReport::errors`]).
    pub honest_rpc_errors: BTreeMap<String, u64>,
    /// A's height at the start and end of the phase.
    pub height: (u64, u64),
    /// B's largest lag behind A during the phase, blocks.
    pub max_sync_lag: u64,
    /// Seconds after the phase B took to reach A's height at its end (None: it did not,
    /// within 60 s).
    pub catch_up_s: Option<f64>,
    /// A's resident memory at its largest during the phase, MiB.
    pub rss_max_mib: f64,
}

/// The report of `quarry bench-abuse`.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The machine's CPUs (shared by the nodes and the attackers).
    pub cpus: usize,
    /// The phases, in order.
    pub phases: Vec<PhaseReport>,
    /// The RPC load phase.
    pub rpc_load: rpc_load::LoadReport,
    /// The connection flood on each port.
    pub connect_flood: Vec<sockets::FloodReport>,
    /// The slow, half-open and random-bytes connections on each port.
    pub slow: Vec<sockets::SlowReport>,
    /// The misbehaving libp2p peers.
    pub peers: Vec<peers::PeerReport>,
    /// A's peak resident memory (VmHWM), MiB, and the bound.
    pub rss_peak_mib: f64,
    /// The bound (`--rss-limit-mib`).
    pub rss_limit_mib: u64,
    /// Bans in force on A at the end (getnetworkinfo).
    pub bans: u64,
    /// Each check and whether it held.
    pub verdicts: Vec<(String, bool)>,
}

/// The RPC target of a bench node (the bench's client settings).
fn target(node: &NodeProc) -> RpcTarget {
    RpcTarget {
        name: node.name,
        config: RpcConfig::new(node.rpc, &node.datadir, None).timeout(Duration::from_secs(60)),
    }
}

/// Runs the phases and keeps what the honest side saw in each.
struct Runner<'a> {
    cluster: &'a mut Cluster,
    a: usize,
    watcher: &'a watch::Watcher,
    rpc_b: &'a Rpc,
    phases: Vec<PhaseReport>,
}

impl Runner<'_> {
    /// Runs `work` as phase `name`, then waits for B to catch up and checks A is alive.
    fn phase<T>(&mut self, name: &'static str, work: impl FnOnce() -> Result<T>) -> Result<T> {
        eprintln!("phase {name} ...");
        let t = Instant::now();
        self.watcher.begin();
        let out = work()?;
        let mut report = self.watcher.end(name, t.elapsed());
        report.catch_up_s = self.watcher.catch_up(self.rpc_b, report.height.1, CATCH_UP)?;
        eprintln!(
            "  honest RPC {}, errors {:?}; A height {} -> {}, B lag at most {} blocks, caught up {}; A RSS at most {:.0} MiB",
            report.honest_rpc.line(),
            report.honest_rpc_errors,
            report.height.0,
            report.height.1,
            report.max_sync_lag,
            report.catch_up_s.map_or("never (60 s)".to_string(), |s| format!("in {s:.1} s")),
            report.rss_max_mib
        );
        self.phases.push(report);
        self.cluster.check_alive(self.a)?;
        Ok(out)
    }
}

/// Longest wait for B to catch up after a phase.
const CATCH_UP: Duration = Duration::from_secs(60);

/// Runs the bench and prints its report.
pub fn run(args: &BenchAbuseArgs) -> Result<()> {
    if !(1..=2_000).contains(&args.clients) {
        bail!("--clients must be in 1..=2000, got {}", args.clients);
    }
    if !(1..=3_600).contains(&args.seconds) {
        bail!("--seconds must be in 1..=3600, got {}", args.seconds);
    }
    if !(1..=20_000).contains(&args.connections) {
        bail!("--connections must be in 1..=20000, got {}", args.connections);
    }
    if !(4..=2_000).contains(&args.slow) {
        bail!("--slow must be in 4..=2000, got {}", args.slow);
    }
    if !(1..=600).contains(&args.hold_seconds) || !(1..=600).contains(&args.baseline_seconds) {
        bail!(
            "--hold-seconds and --baseline-seconds must be in 1..=600, got {} and {}",
            args.hold_seconds,
            args.baseline_seconds
        );
    }
    let mut cluster = Cluster::new(args.keep, crate::testnet::hosts::Hosts::Loopback)?;
    let cpus = super::super::default_threads();
    eprintln!(
        "quarry bench-abuse: regtest node A (mining ~1 block/s) and honest peer B on loopback, {cpus} CPUs shared with the attackers, work directory {}",
        cluster.dir.display()
    );
    let miner = regtest_address(0);
    let (a, mut rpc_a) =
        cluster.start("a", &["--mine", "--miner-address", &miner, "--mine-hashrate", "2"])?;
    let a_addr = listen_addr(&mut rpc_a)?;
    let (b, rpc_b) = cluster.start("b", &["--bootnode", &a_addr])?;
    let targets = sockets::Targets {
        p2p: sockets::tcp_addr(&a_addr)?,
        rpc: cluster.nodes[a].rpc,
        libp2p: a_addr.parse().map_err(|e| anyhow::anyhow!("A's listen address {a_addr}: {e}"))?,
    };
    let pid = cluster.nodes[a].child.id();
    let config = target(&cluster.nodes[a]).config;
    let watcher = watch::Watcher::start(pid, target(&cluster.nodes[a]), target(&cluster.nodes[b]))?;
    // B connected and syncing before anything is measured.
    watcher.catch_up(&rpc_b, 1, CATCH_UP)?.ok_or_else(|| {
        anyhow::anyhow!("node B did not sync A's first block within {} s", CATCH_UP.as_secs())
    })?;

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let mut runner =
        Runner { cluster: &mut cluster, a, watcher: &watcher, rpc_b: &rpc_b, phases: Vec::new() };
    runner.phase("baseline", || {
        std::thread::sleep(Duration::from_secs(args.baseline_seconds));
        Ok(())
    })?;
    let load = runner.phase("rpc-load", || {
        let r = rt.block_on(rpc_load::run(&config, args.clients, Duration::from_secs(args.seconds)))?;
        eprintln!("  {}", r.line());
        for (kind, example) in &r.examples {
            eprintln!("    {kind}: {example}");
        }
        Ok(r)
    })?;
    let hold = Duration::from_secs(args.hold_seconds);
    let floods = runner.phase("connect-flood", || {
        let r = rt.block_on(sockets::flood(&targets, args.connections, hold));
        for f in &r {
            eprintln!("  {}", f.line());
        }
        Ok(r)
    })?;
    let slow = runner.phase("slow", || {
        let r = rt.block_on(sockets::slow(&targets, args.slow, hold));
        for s in &r {
            eprintln!("  {}", s.line());
        }
        Ok(r)
    })?;
    let flood_for = Duration::from_secs(args.baseline_seconds);
    let misbehaving = runner.phase("peers", || {
        let r = rt.block_on(peers::run(targets.libp2p.clone(), flood_for))?;
        for p in &r {
            eprintln!("  {}", p.line());
        }
        Ok(r)
    })?;
    let phases = runner.phases;
    let (_, peak) = super::utxo::rss(pid);
    // A fresh client: the first one's connection may have outlived the server's idle timeout.
    let rpc_a = Rpc::new(target(&cluster.nodes[a]))?;
    let bans = rpc_a.wait(rpc_a.getnetworkinfo())?.banned;
    let baseline = phases[0].honest_rpc.clone();
    let mut verdicts: Vec<(String, bool)> = Vec::new();
    verdicts.push((
        format!("RPC load: only back-pressure errors ({} other)", load.other_errors()),
        load.other_errors() == 0,
    ));
    let stalled = phases.iter().filter(|p| p.catch_up_s.is_none()).map(|p| p.phase).collect::<Vec<_>>();
    verdicts.push((
        format!("honest peer caught up after every phase (not after: {stalled:?})"),
        stalled.is_empty(),
    ));
    let silent = phases.iter().filter(|p| p.honest_rpc.calls == 0).map(|p| p.phase).collect::<Vec<_>>();
    verdicts.push((format!("honest RPC answered in every phase (not in: {silent:?})"), silent.is_empty()));
    let failed: BTreeMap<&str, u64> = phases
        .iter()
        .map(|p| {
            (
                p.phase,
                p.honest_rpc_errors
                    .iter()
                    .filter(|(k, _)| !rpc_load::is_back_pressure(k))
                    .map(|(_, n)| n)
                    .sum(),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    verdicts.push((
        format!("honest RPC: only back-pressure errors (others by phase: {failed:?})"),
        failed.is_empty(),
    ));
    verdicts.push((
        format!("peak RSS {peak:.0} MiB <= {} MiB", args.rss_limit_mib),
        peak <= args.rss_limit_mib as f64,
    ));
    let kept =
        misbehaving.iter().filter(|p| p.expect_cut && !p.cut_off()).map(|p| p.kind).collect::<Vec<_>>();
    verdicts.push((format!("every malformed peer cut off (not: {kept:?})"), kept.is_empty()));
    let report = Report {
        cpus,
        phases,
        rpc_load: load,
        connect_flood: floods,
        slow,
        peers: misbehaving,
        rss_peak_mib: peak,
        rss_limit_mib: args.rss_limit_mib,
        bans,
        verdicts,
    };
    let attacked: Vec<&PhaseReport> = report.phases.iter().skip(1).collect();
    let worst_p99 = attacked.iter().map(|p| p.honest_rpc.p99_ms).fold(f64::NAN, f64::max);
    eprintln!(
        "honest RPC p99 {:.1} ms before the attacks, at most {worst_p99:.1} ms under them; A peak RSS {peak:.0} MiB (bound {} MiB); {bans} bans",
        baseline.p99_ms, args.rss_limit_mib
    );
    for (what, held) in &report.verdicts {
        eprintln!("{} {what}", if *held { "ok  " } else { "FAIL" });
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    drop(watcher);
    if let Some((what, _)) = report.verdicts.iter().find(|(_, held)| !held) {
        bail!("bench-abuse: a check failed: {what}");
    }
    Ok(())
}
