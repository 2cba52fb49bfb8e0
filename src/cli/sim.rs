//! `quarry sim`: run the network simulator, or one of its experiments.

use crate::sim::engine::{self, ChainMode, Config, HashShares, Partition};
use crate::sim::experiments::{self, Experiment};
use crate::sim::net::{Latency, Topology};
use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Instant;

/// `quarry sim`.
#[derive(Args, Debug)]
pub struct SimArgs {
    #[command(subcommand)]
    pub command: SimCommand,
}

/// What to simulate.
#[derive(Subcommand, Debug)]
pub enum SimCommand {
    /// One network run: prints its report as JSON on stdout (deterministic: the same flags
    /// give the same bytes) and the wall-clock rate on stderr.
    Run(RunArgs),
    /// Double-spend success against confirmations beside Nakamoto's and Rosenfeld's formulas
    /// and the exact race under quarry's strictly-ahead rule.
    DoubleSpend(DoubleSpendArgs),
    /// Selfish-mining revenue against hash share beside Eyal-Sirer's closed form.
    Selfish(SelfishArgs),
    /// Stale rate against propagation delay / block interval beside 1 - e^(-d/T).
    Stale(StaleArgs),
    /// Time to converge after a partition heals, against the partition's length.
    Partition(PartitionArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ChainArg {
    /// The fork-choice rule on block ids (scales to 1,000 nodes x 10,000 blocks).
    Index,
    /// The real chain code per node on the memory store (nodes x blocks <= 1,000,000).
    Full,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum HashArg {
    /// Equal hash power.
    Uniform,
    /// Exponentially distributed hash power.
    Skewed,
}

/// `quarry sim run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Nodes (ignored with --topology).
    #[arg(long, default_value_t = 100)]
    pub nodes: usize,
    /// Neighbours per node in the random regular graph.
    #[arg(long, default_value_t = 8)]
    pub degree: usize,
    /// A topology file instead: one undirected edge `a b [latency_ms]` per line.
    #[arg(long, value_name = "FILE")]
    pub topology: Option<PathBuf>,
    /// Link latency: fixed:MS, uniform:LO:HI or exp:MEAN (drawn once per link).
    #[arg(long, default_value = "uniform:20:200")]
    pub latency: String,
    /// Link bandwidth in Mbit/s (0: unlimited).
    #[arg(long, default_value_t = 100.0)]
    pub bandwidth_mbit: f64,
    /// Block size on the wire, bytes.
    #[arg(long, default_value_t = 1_000_000)]
    pub block_size: u64,
    /// Mean seconds between blocks.
    #[arg(long, default_value_t = 600.0)]
    pub interval: f64,
    /// Blocks to mine.
    #[arg(long, default_value_t = 1000)]
    pub blocks: u32,
    /// Hash power spread.
    #[arg(long, value_enum, default_value = "uniform")]
    pub hash: HashArg,
    /// Fork choice per node.
    #[arg(long, value_enum, default_value = "index")]
    pub chain: ChainArg,
    /// Split the network in halves at START seconds for LENGTH seconds: START:LENGTH.
    #[arg(long, value_name = "START:LENGTH")]
    pub partition: Option<String>,
    /// Make node 0 a selfish pool (Eyal-Sirer, `miner::strategy::Selfish`) with this hash share;
    /// the report gives its share of the main chain (`pool_revenue`).
    #[arg(long, value_name = "ALPHA")]
    pub selfish: Option<f64>,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also write the report to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Where experiments write and which seed they start from.
#[derive(Args, Debug)]
pub struct OutArgs {
    /// Directory for `<experiment>.json` and `<experiment>.png`.
    #[arg(long, default_value = "sim-out", value_name = "DIR")]
    pub out: PathBuf,
    /// The run's seed (each point's seed is derived from it and recorded).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// `quarry sim double-spend`.
#[derive(Args, Debug)]
pub struct DoubleSpendArgs {
    #[command(flatten)]
    pub out: OutArgs,
    /// Trials per point.
    #[arg(long, default_value_t = 20_000)]
    pub trials: u32,
    /// Largest number of confirmations.
    #[arg(long, default_value_t = 10)]
    pub max_z: u32,
    /// Attacker hash shares.
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.2,0.3,0.4")]
    pub q: Vec<f64>,
}

/// `quarry sim selfish`.
#[derive(Args, Debug)]
pub struct SelfishArgs {
    #[command(flatten)]
    pub out: OutArgs,
    /// Block discoveries per point.
    #[arg(long, default_value_t = 200_000)]
    pub blocks: u64,
    /// Pool hash shares.
    #[arg(long, value_delimiter = ',', default_value = "0,0.05,0.1,0.15,0.2,0.25,0.3,0.35,0.4,0.45")]
    pub alpha: Vec<f64>,
    /// Shares of honest power mining on the pool's block in a tie.
    #[arg(long, value_delimiter = ',', default_value = "0,0.5,1")]
    pub gamma: Vec<f64>,
}

/// `quarry sim stale`.
#[derive(Args, Debug)]
pub struct StaleArgs {
    #[command(flatten)]
    pub out: OutArgs,
    /// Nodes (complete graph).
    #[arg(long, default_value_t = 50)]
    pub nodes: usize,
    /// Blocks per point.
    #[arg(long, default_value_t = 20_000)]
    pub blocks: u32,
    /// Link latency / block interval.
    #[arg(long, value_delimiter = ',', default_value = "0.005,0.01,0.02,0.05,0.1,0.2,0.3,0.5")]
    pub ratio: Vec<f64>,
}

/// `quarry sim partition`.
#[derive(Args, Debug)]
pub struct PartitionArgs {
    #[command(flatten)]
    pub out: OutArgs,
    /// Nodes (random 8-regular graph).
    #[arg(long, default_value_t = 100)]
    pub nodes: usize,
    /// Runs per point.
    #[arg(long, default_value_t = 400)]
    pub trials: u32,
    /// Partition lengths in block intervals.
    #[arg(long, value_delimiter = ',', default_value = "0.5,1,2,4,8,16")]
    pub length: Vec<f64>,
}

fn check_shares(name: &str, v: &[f64], max: f64) -> Result<()> {
    if v.is_empty() || v.iter().any(|x| !(0.0..=max).contains(x)) {
        anyhow::bail!("--{name}: expected a comma-separated list of values in 0..={max}");
    }
    Ok(())
}

/// Runs `quarry sim`.
pub fn run(args: SimArgs) -> Result<()> {
    let started = Instant::now();
    let (exp, out): (Experiment, OutArgs) = match args.command {
        SimCommand::Run(a) => return run_one(a),
        SimCommand::DoubleSpend(a) => {
            check_shares("q", &a.q, 0.5)?;
            (experiments::double_spend(&a.q, a.max_z, a.trials.max(1), a.out.seed), a.out)
        }
        SimCommand::Selfish(a) => {
            check_shares("alpha", &a.alpha, 0.49)?;
            check_shares("gamma", &a.gamma, 1.0)?;
            (experiments::selfish(&a.alpha, &a.gamma, a.blocks.max(1), a.out.seed), a.out)
        }
        SimCommand::Stale(a) => {
            check_shares("ratio", &a.ratio, 10.0)?;
            (experiments::stale(&a.ratio, a.nodes, a.blocks, a.out.seed)?, a.out)
        }
        SimCommand::Partition(a) => {
            check_shares("length", &a.length, 1000.0)?;
            (experiments::partition(&a.length, a.nodes, a.trials.max(1), a.out.seed)?, a.out)
        }
    };
    println!("{}\n", exp.description);
    for line in &exp.table {
        println!("{line}");
    }
    for path in crate::sim::write_experiment(&exp, &out.out)? {
        println!("wrote {path}");
    }
    eprintln!("{:.2} s wall clock", started.elapsed().as_secs_f64());
    Ok(())
}

fn run_one(a: RunArgs) -> Result<()> {
    let topology = match &a.topology {
        Some(path) => Topology::from_file_text(
            &std::fs::read_to_string(path)
                .with_context(|| format!("reading --topology {}", path.display()))?,
        )?,
        None => Topology::Regular(a.degree),
    };
    let partition = match &a.partition {
        None => None,
        Some(s) => {
            let (start, length) = s
                .split_once(':')
                .and_then(|(x, y)| Some((x.parse::<f64>().ok()?, y.parse::<f64>().ok()?)))
                .filter(|(x, y)| *x >= 0.0 && *y > 0.0)
                .with_context(|| format!("--partition {s:?}: expected START:LENGTH in seconds"))?;
            Some(Partition { start, length })
        }
    };
    let cfg = Config {
        nodes: a.nodes,
        topology,
        latency: Latency::parse(&a.latency)?,
        bandwidth: a.bandwidth_mbit * 1e6 / 8.0,
        block_size: a.block_size,
        interval: a.interval,
        blocks: a.blocks,
        hash: match a.hash {
            HashArg::Uniform => HashShares::Uniform,
            HashArg::Skewed => HashShares::Skewed,
        },
        seed: a.seed,
        chain: match a.chain {
            ChainArg::Index => ChainMode::Index,
            ChainArg::Full => ChainMode::Full,
        },
        partition,
        selfish: a.selfish,
    };
    let started = Instant::now();
    let report = engine::run(&cfg)?;
    let secs = started.elapsed().as_secs_f64();
    let text = serde_json::to_string_pretty(&report)? + "\n";
    print!("{text}");
    if let Some(path) = &a.json {
        std::fs::write(path, &text).with_context(|| format!("writing --json {}", path.display()))?;
    }
    eprintln!(
        "{} events in {secs:.2} s wall clock: {:.0} events/s, {:.0} block arrivals/s",
        report.events,
        report.events as f64 / secs,
        (report.blocks_mined as f64 * report.nodes as f64) / secs
    );
    Ok(())
}
