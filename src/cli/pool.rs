//! `quarry pool` (the Stratum pool), `quarry pool stats`, and `quarry miner --pool`.

use super::connect::{ConnectArgs, Target};
use super::DataArgs;
use crate::pool::accounting::BlockStatus;
use crate::pool::experiment::Strategy;
use crate::pool::{Ledger, Payout, PoolConfig};
use crate::primitives::{Address, AddressKind};
use crate::rpc::api::QuarryApiClient;
use crate::script::templates::{p2pkh, pubkey_hash};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use ed25519_dalek::SigningKey;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `quarry pool`.
#[derive(Args, Debug)]
pub struct PoolArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub conn: ConnectArgs,
    /// The pool's directory: its key (`pool.key`) and share ledger (`ledger.jsonl`)
    /// [default: <datadir>/pool].
    #[arg(long, global = true, value_name = "DIR")]
    pub pool_dir: Option<PathBuf>,
    #[command(flatten)]
    pub serve: PoolServeArgs,
    #[command(subcommand)]
    pub command: Option<PoolCommand>,
}

/// Settings of a running pool.
#[derive(Args, Debug)]
#[command(next_help_heading = "Pool")]
pub struct PoolServeArgs {
    /// Where miners connect (Stratum V1 over TCP).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3333")]
    pub stratum: SocketAddr,
    /// How workers are paid: pps (per share), pplns (last N shares), score (Slush's
    /// exponential score) or prop (proportional to the round's shares).
    #[arg(long, value_enum, default_value = "pplns")]
    pub payout: Payout,
    /// Share difficulty a new connection starts at (fractional allowed: the dev network's
    /// block difficulty is about 0.001).
    #[arg(long, default_value_t = 0.0001)]
    pub difficulty: f64,
    /// Lowest share difficulty vardiff sets.
    #[arg(long, default_value_t = 1e-7)]
    pub min_difficulty: f64,
    /// Highest share difficulty vardiff sets.
    #[arg(long, default_value_t = 1e6)]
    pub max_difficulty: f64,
    /// Vardiff aims at this many shares per minute per connection.
    #[arg(long, default_value_t = 20.0)]
    pub shares_per_minute: f64,
    /// Workers owed less than this many coins wait for the next payout.
    #[arg(long, value_name = "COINS", default_value = "0.01")]
    pub min_payout: String,
    /// Fee rate of payout transactions, base units per 1000 bytes [default: the node's
    /// minimum].
    #[arg(long, value_name = "SAT_PER_KB")]
    pub payout_fee_rate: Option<u64>,
    /// Seconds between payout passes (settle found blocks, follow or make a payout).
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub payout_every: u64,
    /// Blocks that must hold a payout (its own included) before it counts as paid; until then
    /// a reorg that drops it makes the pool send it again.
    #[arg(long, value_name = "N", default_value_t = crate::pool::DEFAULT_PAYOUT_CONFIRMATIONS, value_parser = clap::value_parser!(u32).range(1..))]
    pub payout_confirmations: u32,
    /// The score method's time constant c, seconds: a share t seconds into the round weighs
    /// e^(t/c). Keep it well below the expected round time, or score behaves like prop.
    #[arg(long, value_name = "SECS", default_value_t = 300.0)]
    pub score_c: f64,
    /// Track balances but send no payout transactions.
    #[arg(long)]
    pub no_payouts: bool,
}

/// Pool subcommands.
#[derive(Subcommand, Debug)]
pub enum PoolCommand {
    /// Per-worker shares, hash-rate estimate, balance owed and paid, from the ledger (a
    /// running pool may be serving beside it).
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Runs the pool attacks (hopping, sabotage, lie-in-wait) against a real pool on a fresh
    /// dev node with in-process Stratum miners, and reports each attacker's reward per hash
    /// against an honest miner's beside Rosenfeld's predictions (BENCHMARKS.md "Pool attacks").
    Experiment(ExperimentArgs),
}

/// `quarry pool experiment`.
#[derive(Args, Debug)]
pub struct ExperimentArgs {
    /// Payout methods to run (comma-separated).
    #[arg(long = "methods", value_enum, value_delimiter = ',', default_values_t = [Payout::Prop, Payout::Pps, Payout::Pplns, Payout::Score])]
    pub methods: Vec<Payout>,
    /// Strategies to run (comma-separated).
    #[arg(long = "strategies", value_enum, value_delimiter = ',', default_values_t = [Strategy::Hopper, Strategy::Sabotage, Strategy::LieInWait])]
    pub strategies: Vec<Strategy>,
    /// Seconds each (method, strategy) pair runs, on its own fresh node and pool.
    #[arg(long, default_value_t = 90)]
    pub seconds: u64,
    /// The honest miner's hash rate, hashes per second.
    #[arg(long, default_value_t = 4_000_000.0)]
    pub honest_rate: f64,
    /// The attacker's hash rate (all its power, in the pool and elsewhere).
    #[arg(long, default_value_t = 1_000_000.0)]
    pub attacker_rate: f64,
    /// The hopper leaves once the round's work reaches this many network difficulties.
    #[arg(long, default_value_t = 0.435)]
    pub hop_at: f64,
    /// Lie-in-wait: the share of its power normally in the pool.
    #[arg(long, default_value_t = 0.5)]
    pub lie_split: f64,
    /// Lie-in-wait: how long it withholds a block, milliseconds.
    #[arg(long, default_value_t = 400)]
    pub lie_wait_ms: u64,
    /// The score method's time constant, seconds (dev rounds last seconds).
    #[arg(long, default_value_t = 1.0)]
    pub score_c: f64,
    /// Share difficulty (fixed for the run) in network difficulties at the start.
    #[arg(long, default_value_t = 1.0 / 32.0)]
    pub share_fraction: f64,
    /// Write the outcomes as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json_out: Option<PathBuf>,
    /// Write a chart (SVG) here.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

/// `quarry miner`.
#[derive(Args, Debug)]
pub struct MinerArgs {
    /// The pool, stratum+tcp://HOST:PORT.
    #[arg(long, value_name = "URL")]
    pub pool: String,
    /// Worker name.
    #[arg(long)]
    pub user: String,
    /// Password (most pools ignore it).
    #[arg(long, default_value = "x")]
    pub password: String,
    /// Hashing threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Stop after this many seconds (default: run until Ctrl-C or the pool closes).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
}

/// The pool's key: `<dir>/pool.key` (64 hex digits of an ed25519 secret), made on first use
/// with mode 0600.
pub fn pool_key(dir: &Path) -> Result<SigningKey> {
    let path = dir.join("pool.key");
    if path.exists() {
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let bytes: [u8; 32] =
            hex::decode(text.trim()).ok().and_then(|b| b.try_into().ok()).with_context(|| {
                format!("{} is not 64 hex digits (delete it to make a new key)", path.display())
            })?;
        return Ok(SigningKey::from_bytes(&bytes));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, hex::encode(key.to_bytes()))
        .with_context(|| format!("writing {}", tmp.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&tmp, &path)?;
    Ok(key)
}

fn pool_dir(args: &PoolArgs) -> Result<PathBuf> {
    Ok(match &args.pool_dir {
        Some(d) => d.clone(),
        None => args.data.base_dir()?.join("pool"),
    })
}

/// `quarry pool [stats]`.
pub fn run(args: PoolArgs) -> Result<()> {
    let dir = pool_dir(&args)?;
    let target = Target::from_args(&args.data, &args.conn)?;
    match args.command {
        Some(PoolCommand::Stats { json }) => stats(&dir, &target, json),
        Some(PoolCommand::Experiment(e)) => experiment(&e),
        None => serve(&args.serve, dir, &target),
    }
}

fn serve(s: &PoolServeArgs, dir: PathBuf, target: &Target) -> Result<()> {
    if !(s.min_difficulty > 0.0 && s.min_difficulty <= s.difficulty && s.difficulty <= s.max_difficulty) {
        bail!("share difficulties must satisfy 0 < --min-difficulty <= --difficulty <= --max-difficulty");
    }
    if s.shares_per_minute <= 0.0 || !s.shares_per_minute.is_finite() {
        bail!("--shares-per-minute must be a positive number");
    }
    let min_payout = crate::primitives::Amount::from_coins_str(&s.min_payout)
        .map_err(|e| anyhow::anyhow!("--min-payout {}: {e}", s.min_payout))?
        .to_sat();
    if !(s.score_c > 0.0 && s.score_c.is_finite()) {
        bail!("--score-c must be a positive number of seconds");
    }
    if s.payout_every == 0 {
        bail!("--payout-every must be at least 1 second");
    }
    let key = pool_key(&dir)?;
    let hash = pubkey_hash(&key.verifying_key().to_bytes());
    let address = Address { hrp: target.network.address_hrp(), kind: AddressKind::P2pkh, hash };
    let config = PoolConfig {
        rpc: target.config(Duration::from_secs(120))?,
        dir: dir.clone(),
        payout: s.payout,
        lock: p2pkh(&hash),
        start_difficulty: s.difficulty,
        min_difficulty: s.min_difficulty,
        max_difficulty: s.max_difficulty,
        shares_per_minute: s.shares_per_minute,
        score_c: s.score_c,
        payouts: crate::pool::PayoutConfig {
            network: target.network,
            key,
            min_payout,
            fee_rate: s.payout_fee_rate,
            every: Duration::from_secs(s.payout_every),
            confirmations: s.payout_confirmations,
            enabled: !s.no_payouts,
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(s.stratum)
            .await
            .with_context(|| format!("listening on {} (address in use? pass --stratum)", s.stratum))?;
        println!(
            "pool: stratum+tcp://{} paying to {} ({:?}), ledger {}",
            listener.local_addr()?,
            address.encode(),
            s.payout,
            dir.display()
        );
        let stop = Arc::new(tokio::sync::Notify::new());
        let task = tokio::spawn(crate::pool::server::serve(config, listener, stop.clone()));
        let signal = async {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{signal, SignalKind};
                match signal(SignalKind::terminate()) {
                    Ok(mut term) => {
                        tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
                    }
                    Err(_) => drop(tokio::signal::ctrl_c().await),
                }
            }
            #[cfg(not(unix))]
            drop(tokio::signal::ctrl_c().await);
        };
        tokio::select! {
            _ = signal => { stop.notify_one(); }
            r = task => return r.context("pool task")?.map_err(anyhow::Error::from),
        }
        Ok(())
    })
}

fn stats(dir: &Path, target: &Target, json: bool) -> Result<()> {
    let path = dir.join("ledger.jsonl");
    if !path.exists() {
        bail!("no ledger at {} (has a pool run with this --pool-dir?)", path.display());
    }
    let ledger = Ledger::read(&path)?;
    let tip = target.client(Duration::from_secs(5)).ok().and_then(|c| c.wait(c.getblockcount()).ok());
    let rows = ledger.stats();
    if json {
        let v = serde_json::json!({
            "tip": tip,
            "blocks": ledger.blocks().iter().map(|b| serde_json::json!({
                "height": b.found.height, "hash": b.found.hash, "reward": b.found.reward, "status": b.status,
                "credits": b.found.credits,
            })).collect::<Vec<_>>(),
            "payouts_pending": ledger.pending_payouts(),
            "payouts_confirmed": ledger.confirmed_payouts(),
            "workers": rows,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if let Some(t) = tip {
        println!("node tip {t}");
    }
    let count = |s| ledger.blocks().iter().filter(|b| b.status == s).count();
    println!(
        "blocks found: {} ({} mature, {} immature, {} orphaned); payouts: {} confirmed, {} in flight",
        ledger.blocks().len(),
        count(BlockStatus::Mature),
        count(BlockStatus::Immature),
        count(BlockStatus::Orphaned),
        ledger.confirmed_payouts().len(),
        ledger.pending_payouts().len()
    );
    println!(
        "{:<24} {:>8} {:>12} {:>14} {:>14} {:>14} {:>14} {:>14} {:>14}",
        "worker", "shares", "difficulty", "hashrate H/s", "credited", "immature", "owed", "paying", "paid"
    );
    for r in rows {
        let name = if r.worker.len() > 24 { format!("{}…", &r.worker[..23]) } else { r.worker.clone() };
        println!(
            "{:<24} {:>8} {:>12.6} {:>14.0} {:>14} {:>14} {:>14} {:>14} {:>14}",
            name, r.shares, r.diff, r.hashrate, r.credited, r.immature, r.owed, r.paying, r.paid
        );
    }
    Ok(())
}

/// `quarry miner --pool`.
pub fn run_miner(args: MinerArgs) -> Result<()> {
    let config = crate::pool::client::ClientConfig {
        pool: args.pool.clone(),
        user: args.user,
        password: args.password,
        threads: args.threads,
        kernel: crate::miner::kernel::Kernel::detect(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    if let Some(secs) = args.duration {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(secs));
            stop.store(true, Ordering::SeqCst);
        });
    }
    let stats = crate::pool::client::run(&config, stop)?;
    println!(
        "submitted {} accepted {} rejected {} jobs {} hashes {}",
        stats.submitted, stats.accepted, stats.rejected, stats.jobs, stats.hashes
    );
    Ok(())
}

/// A dev node for one experiment run, in its own directory; killed (by pid) when dropped.
struct ExperimentNode {
    child: std::process::Child,
    rpc: crate::rpc::client::RpcConfig,
}

impl Drop for ExperimentNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_loopback_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn experiment_node(dir: &Path) -> Result<ExperimentNode> {
    let port = free_loopback_port()?;
    let exe = std::env::current_exe().context("finding the quarry binary")?;
    let child = std::process::Command::new(exe)
        .args(["node", "--network", "dev", "--no-p2p", "--rpc-bind", &format!("127.0.0.1:{port}")])
        .arg("--datadir")
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("starting a dev node")?;
    let rpc = crate::rpc::client::RpcConfig::new(format!("127.0.0.1:{port}").parse()?, dir, None);
    let node = ExperimentNode { child, rpc };
    let start = std::time::Instant::now();
    loop {
        let up = crate::rpc::client::BlockingClient::new(&node.rpc)
            .ok()
            .and_then(|c| c.wait(c.getblockcount()).ok());
        if up.is_some() {
            return Ok(node);
        }
        if start.elapsed() > Duration::from_secs(30) {
            bail!("the experiment's dev node did not answer within 30 s ({})", dir.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One (method, strategy) run: fresh node, pool in-process, the two miners.
fn experiment_run(
    a: &ExperimentArgs,
    payout: Payout,
    strategy: Strategy,
) -> Result<crate::pool::experiment::Outcome> {
    use crate::pool::experiment::{run_miners, MinerSpec, Outcome, Role};
    let tmp = tempfile::tempdir().context("a temporary directory")?;
    let node = experiment_node(&tmp.path().join("node"))?;
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let hash = pubkey_hash(&key.verifying_key().to_bytes());
    let net_diff = crate::pool::share::difficulty_of(&crate::consensus::Network::Dev.params().pow_limit);
    let d = net_diff * a.share_fraction;
    let pool_dir = tmp.path().join("pool");
    let config = PoolConfig {
        rpc: node.rpc.clone(),
        dir: pool_dir.clone(),
        payout,
        lock: p2pkh(&hash),
        start_difficulty: d,
        min_difficulty: d,
        max_difficulty: d,
        shares_per_minute: 1e9,
        score_c: a.score_c,
        payouts: crate::pool::PayoutConfig {
            network: crate::consensus::Network::Dev,
            key,
            min_payout: u64::MAX,
            fee_rate: None,
            every: Duration::from_secs(3600),
            confirmations: crate::pool::DEFAULT_PAYOUT_CONFIRMATIONS,
            enabled: false,
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(tokio::sync::Notify::new());
    let task = runtime.spawn(crate::pool::server::serve(config, listener, stop.clone()));
    let role = match strategy {
        Strategy::Hopper => Role::Hopper { hop_at: a.hop_at },
        Strategy::Sabotage => Role::Saboteur,
        Strategy::LieInWait => {
            Role::LieInWait { split: a.lie_split, wait: Duration::from_millis(a.lie_wait_ms) }
        }
    };
    let miners = [
        MinerSpec {
            worker: "honest".into(),
            rate: a.honest_rate,
            role: crate::pool::experiment::Role::Honest,
        },
        MinerSpec { worker: "attacker".into(), rate: a.attacker_rate, role },
    ];
    let started = std::time::Instant::now();
    let tallies = run_miners(addr, &miners, Duration::from_secs(a.seconds), &pool_dir.join("ledger.jsonl"))?;
    let seconds = started.elapsed().as_secs_f64();
    stop.notify_one();
    let _ = runtime.block_on(task);
    let blocks = Ledger::read(&pool_dir.join("ledger.jsonl"))?.blocks().len();
    drop(node);
    let mut it = tallies.into_iter();
    let (honest, attacker) = (it.next().expect("two miners"), it.next().expect("two miners"));
    Ok(Outcome { payout, strategy, seconds, blocks, honest, attacker })
}

fn experiment(a: &ExperimentArgs) -> Result<()> {
    use crate::pool::experiment::predicted;
    if a.seconds == 0 || a.honest_rate <= 0.0 || a.attacker_rate <= 0.0 {
        bail!("--seconds, --honest-rate and --attacker-rate must be positive");
    }
    if !(0.0..=1.0).contains(&a.lie_split) || a.share_fraction <= 0.0 || a.score_c <= 0.0 {
        bail!("--lie-split must be within 0..=1; --share-fraction and --score-c must be positive");
    }
    let q = a.attacker_rate / (a.attacker_rate + a.honest_rate);
    println!(
        "{:<12} {:<6} {:>6} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "strategy", "method", "secs", "blocks", "honest", "attacker", "in-pool", "ratio", "predicted"
    );
    let mut outcomes = Vec::new();
    for &strategy in &a.strategies {
        for &payout in &a.methods {
            let o = experiment_run(a, payout, strategy)?;
            let p = predicted(strategy, payout, a.hop_at, q).map_or("-".to_string(), |p| format!("{p:.3}"));
            println!(
                "{:<12} {:<6} {:>6.0} {:>7} {:>10.3} {:>10.3} {:>10.3} {:>10.3} {:>10}",
                format!("{strategy:?}"),
                format!("{payout:?}").to_lowercase(),
                o.seconds,
                o.blocks,
                o.honest.efficiency(),
                o.attacker.efficiency(),
                o.attacker.pool_efficiency(),
                o.ratio(),
                p
            );
            outcomes.push(o);
        }
    }
    if let Some(path) = &a.json_out {
        std::fs::write(path, serde_json::to_string_pretty(&outcomes)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &a.svg {
        std::fs::write(path, experiment_chart(a, &outcomes, q).to_svg())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Attacker efficiency by method (x: 1 prop, 2 pps, 3 pplns, 4 score), measured (markers)
/// and predicted (dashed), one colour per strategy.
fn experiment_chart(
    a: &ExperimentArgs,
    outcomes: &[crate::pool::experiment::Outcome],
    q: f64,
) -> crate::plot::Chart {
    use crate::plot::{Chart, Series};
    let x = |p: Payout| match p {
        Payout::Prop => 1.0,
        Payout::Pps => 2.0,
        Payout::Pplns => 3.0,
        Payout::Score => 4.0,
    };
    let mut series = Vec::new();
    for &strategy in &a.strategies {
        let mine: Vec<_> = outcomes.iter().filter(|o| o.strategy == strategy).collect();
        let mut m = Series::line(
            format!("{strategy:?} measured"),
            mine.iter().map(|o| (x(o.payout), o.attacker.efficiency())).collect(),
        );
        m.points_only = true;
        series.push(m);
        let pred: Vec<(f64, f64)> = mine
            .iter()
            .filter_map(|o| {
                crate::pool::experiment::predicted(strategy, o.payout, a.hop_at, q).map(|p| (x(o.payout), p))
            })
            .collect();
        if !pred.is_empty() {
            let mut p = Series::line(format!("{strategy:?} Rosenfeld"), pred);
            p.dashed = true;
            series.push(p);
        }
    }
    let honest: Vec<(f64, f64)> = outcomes.iter().map(|o| (x(o.payout), o.honest.efficiency())).collect();
    let mut h = Series::line("honest miner (all runs)", honest);
    h.points_only = true;
    series.push(h);
    Chart {
        title: "Pool attacks: reward per hash over fair (1 prop, 2 pps, 3 pplns, 4 score)".into(),
        x_label: "payout method".into(),
        y_label: "efficiency (reward / expected reward of its hashes)".into(),
        series,
        y_from_zero: true,
    }
}
