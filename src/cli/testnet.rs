//! `quarry testnet up|status|down|scenario|spam`.

use super::connect::Target;
use crate::consensus::Network;
use crate::testnet::scenario::Scenario;
use crate::testnet::spam::{self, SpamOptions};
use crate::testnet::topology::Topology;
use crate::testnet::{self, Testnet, UpOptions};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

/// `quarry testnet`.
#[derive(Args, Debug)]
pub struct TestnetArgs {
    /// Directory of the testnet (state, one data directory per node) [default: ~/.quarry/testnet].
    #[arg(long, global = true)]
    pub dir: Option<PathBuf>,
    /// Print JSON (status, spam, wallet).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: TestnetCommand,
}

/// Testnet commands.
#[derive(Subcommand, Debug)]
pub enum TestnetCommand {
    /// Start a local testnet: N `quarry node` processes on 127.0.0.1, connected, each with a
    /// pre-funded wallet (<dir>/<node>/wallet.json), then show a live status table (Ctrl-C
    /// leaves the nodes running; `quarry testnet down` stops them).
    Up {
        /// Number of nodes (ignored with --topology).
        #[arg(long, default_value_t = 4)]
        nodes: usize,
        /// How many of them mine (one thread each).
        #[arg(long, default_value_t = 2)]
        miners: usize,
        /// A topology file (see testnet/README.md) instead of --nodes/--miners.
        #[arg(long)]
        topology: Option<PathBuf>,
        /// Network for a generated topology: dev (5-second blocks) or regtest.
        #[arg(long, default_value = "dev", value_parser = super::parse_network)]
        network: Network,
        /// Delete the stopped testnet in --dir first, as `down --clean` does (a stopped testnet
        /// is otherwise resumed).
        #[arg(long)]
        clean: bool,
        /// Print the status once and return instead of watching it.
        #[arg(long)]
        no_watch: bool,
        /// Do not start the web explorer (`quarry explorer --testnet DIR`).
        #[arg(long)]
        no_explorer: bool,
        /// Where the nodes run: `loopback` (all on 127.0.0.1) or `netns` (one network namespace
        /// per node, links shaped by the topology; needs root) [default: the topology's
        /// `hosts`, else loopback].
        #[arg(long, value_enum)]
        hosts: Option<testnet::hosts::Hosts>,
        /// Every node fsyncs its chainstate on every block (`quarry node --sync-writes`:
        /// nothing acknowledged is lost to a power cut, at a cost in blocks per second);
        /// a topology file can also set `sync_writes = true` per node.
        #[arg(long)]
        sync_writes: bool,
    },
    /// Show each node's height, tip, peers, mempool, hash rate and last fork.
    Status {
        /// Refresh every 2 seconds until Ctrl-C (with --json: one JSON line per refresh).
        #[arg(long)]
        watch: bool,
    },
    /// Stop every node gracefully (RPC stop, then SIGTERM, then SIGKILL) and check none is left.
    Down {
        /// Also delete what the testnet made (testnet.json and the node directories it
        /// records), and the directory if nothing else is left in it.
        #[arg(long)]
        clean: bool,
    },
    /// Start one stopped node of the testnet (e.g. after a crash) and wait until it answers.
    Start {
        /// The node's name (see `status`).
        node: String,
    },
    /// Stop one node gracefully (RPC stop, then SIGTERM, then SIGKILL).
    Stop {
        /// The node's name.
        node: String,
    },
    /// Stop one node if it runs, then start it again.
    Restart {
        /// The node's name.
        node: String,
    },
    /// Call a JSON-RPC method on one node: `quarry rpc` with the node's port and data
    /// directory filled in, e.g. `quarry testnet rpc n1 getpeerinfo`.
    Rpc {
        /// The node's name.
        node: String,
        #[command(flatten)]
        call: super::rpc::CallArgs,
    },
    /// Run a wallet command with one node's wallet and node, e.g. `quarry testnet wallet n2
    /// send ADDRESS 5`.
    Wallet {
        /// The node's name.
        node: String,
        #[command(flatten)]
        opts: super::wallet::WalletOpts,
        #[command(subcommand)]
        command: super::wallet::WalletCommand,
    },
    /// Run a scenario file (testnet/scenarios/*.toml) in a fresh directory (--dir if given,
    /// which must not hold a testnet, else a temporary one); exits non-zero on the first
    /// failed step.
    Scenario {
        /// The scenario file.
        file: PathBuf,
        /// Keep the scenario's directory (logs, data) afterwards.
        #[arg(long)]
        keep: bool,
        /// Run the scenario's topology with these hosts instead of its own `hosts`.
        #[arg(long, value_enum)]
        hosts: Option<testnet::hosts::Hosts>,
        /// Run it on this network instead of its own `network` (regtest: blocks from `mine`
        /// steps come at once; refused if a node mines continuously without a `hashrate`).
        #[arg(long, value_parser = super::parse_network)]
        network: Option<Network>,
    },
    /// The link shaper of a `--hosts netns` testnet (started by `up`; not for direct use).
    #[command(hide = true)]
    Shaper {
        /// The directory holding fabric.json and links.json.
        #[arg(long)]
        fabric: PathBuf,
    },
    /// Send valid P2PKH transactions from the nodes' wallets at a fixed rate and report
    /// submitted vs confirmed tx/s, confirmation latency and mempool sizes.
    Spam {
        /// Target rate, transactions per second across all nodes.
        #[arg(long, default_value_t = 500.0)]
        tps: f64,
        /// Seconds to submit.
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
        /// Seconds to wait for the last confirmations.
        #[arg(long, default_value_t = 60.0)]
        drain: f64,
        /// Directory for the run's JSON series and SVG chart (default: the testnet's
        /// `spam/` directory).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Crash soak: a fresh two-node regtest testnet (in --dir, which must not hold one, else
    /// a temporary directory) mines while a load sends transactions, and nodes are SIGKILLed
    /// KILLS times (at random moments, mid-flush and mid-reorg) and restarted; after each
    /// restart the node's UTXO set must equal a rebuild from its blocks (`chain verify`), and
    /// at the end no confirmed transaction may be missing and the coins must add up. Progress
    /// on stderr, the report on stdout (JSON with --json); exits 1 unless everything held.
    Soak {
        /// Number of kills.
        #[arg(long, default_value_t = 100)]
        kills: usize,
        /// Seed of the choices (node, kind order, moment).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The nodes' coins cache bound in bytes (QUARRY_DBCACHE_BYTES; tiny, so flushes are
        /// frequent).
        #[arg(long, default_value_t = testnet::soak::DEFAULT_DBCACHE_BYTES)]
        dbcache_bytes: usize,
        /// Each node's mining rate, hashes per second (regtest: about 2 hashes a block).
        #[arg(long, default_value_t = testnet::soak::DEFAULT_HASHRATE)]
        hashrate: f64,
        /// Keep the soak's directory (logs, chainstates) afterwards.
        #[arg(long)]
        keep: bool,
    },
    /// Print every node's log merged in time order, each line prefixed with its node.
    Logs {
        /// Only lines matching this regular expression (Rust regex syntax).
        #[arg(long, value_name = "RE")]
        grep: Option<String>,
        /// Only this node's log.
        #[arg(long, value_name = "NAME")]
        node: Option<String>,
        /// Keep printing new lines as they are written (Ctrl-C to stop).
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Save logs, topology, every node's chain tips and peers and a metrics snapshot into DIR,
    /// for a bug report.
    Dump {
        /// A new (or empty) directory.
        #[arg(value_name = "DIR")]
        out: PathBuf,
    },
}

/// Writes to stdout; a closed pipe (`status --watch | head`) ends the program quietly.
fn out(text: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    if o.write_all(text.as_bytes()).and_then(|()| o.flush()).is_err() {
        std::process::exit(0);
    }
}

/// Redraws the status every 2 s until Ctrl-C; with `json`, one JSON line per refresh.
fn watch(t: &mut Testnet, json: bool) -> ! {
    let footer = format!(
        "(refreshing every 2 s; Ctrl-C leaves the nodes running; `{}` stops them)",
        testnet::hint(&t.dir, "down")
    );
    let tries = tries(t);
    loop {
        let rows = testnet::status(t);
        if json {
            out(&format!("{}\n", serde_json::to_string(&rows).unwrap_or_default()));
        } else {
            out(&format!("\x1b[2J\x1b[H{}\n{tries}{footer}\n", testnet::status_table(&rows)));
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// The `try:` lines: commands that work as printed (with `--dir` when it is not the default).
fn tries(t: &Testnet) -> String {
    let Some(first) = t.names().into_iter().next() else { return String::new() };
    format!(
        "try: {}\n     {}\n     {}\n",
        testnet::hint(&t.dir, &format!("rpc {first} getpeerinfo")),
        testnet::hint(&t.dir, &format!("wallet {first} balance")),
        testnet::hint(&t.dir, "status"),
    )
}

/// Where `node` of `t` is: its recorded RPC port, its data directory and cookie. A stopped
/// node is refused with the command that starts it, unless the caller will wait for it.
fn node_target(t: &mut Testnet, node: &str, wait: bool) -> Result<Target> {
    let config = t.rpc_config(node)?;
    if !wait && !t.is_running(node) {
        bail!(
            "node {node} is not running: start it with `{}`",
            testnet::hint(&t.dir, &format!("start {node}"))
        );
    }
    Ok(Target { network: t.network, datadir: t.datadir(node), fixed: Some(config.addr), user: None })
}

/// Where a scenario or soak runs: `--dir` if given (it must not hold a testnet), else a new
/// temporary directory (returned, to be kept or dropped).
fn fresh_dir(explicit: Option<&std::path::Path>, what: &str) -> Result<(PathBuf, Option<tempfile::TempDir>)> {
    match explicit {
        Some(d) => {
            if Testnet::state_path(d).exists() {
                bail!(
                    "{} already holds a testnet: a {what} needs a fresh --dir (or none, for a temporary one)",
                    d.display()
                );
            }
            Ok((d.to_path_buf(), None))
        }
        None => {
            let tmp = tempfile::Builder::new()
                .prefix(&format!("quarry-{what}-"))
                .tempdir()
                .context("creating a directory")?;
            Ok((tmp.path().join("testnet"), Some(tmp)))
        }
    }
}

/// Runs a testnet command.
pub fn run(args: TestnetArgs) -> Result<()> {
    let explicit_dir = args.dir.clone();
    let json = args.json;
    let dir = match args.dir {
        Some(d) => d,
        None => testnet::default_dir()?,
    };
    match args.command {
        TestnetCommand::Up {
            nodes,
            miners,
            topology,
            network,
            clean,
            no_watch,
            no_explorer,
            hosts,
            sync_writes,
        } => {
            let mut topology = match topology {
                Some(path) => Topology::load(&path)?,
                None => Topology::generated(network, nodes, miners)?,
            };

            if let Some(h) = hosts {
                topology.hosts = h;
                topology.check()?;
            }
            let interactive = std::io::stdout().is_terminal();
            let opts = UpOptions {
                clean,
                watch: !no_watch && interactive,
                progress: interactive,
                explorer: !no_explorer,
                prefund: true,
                sync_writes,
            };
            let mut t = testnet::up(&dir, &topology, &opts)?;
            println!("testnet up in {} ({} network)", dir.display(), t.network);
            out(&testnet::status_table(&testnet::status(&mut t)));
            out(&format!("\n{}", tries(&t)));
            if opts.watch {
                watch(&mut t, false);
            }
            Ok(())
        }
        TestnetCommand::Status { watch: w } => {
            let mut t = Testnet::open(&dir)?;
            if w {
                watch(&mut t, json);
            }
            let rows = testnet::status(&mut t);
            if json {
                out(&format!("{}\n", serde_json::to_string_pretty(&rows)?));
            } else {
                out(&testnet::status_table(&rows));
            }
            Ok(())
        }
        TestnetCommand::Start { node } => {
            let mut t = Testnet::open(&dir)?;
            t.start_node(&node)?;
            t.wait_ready(&node, Duration::from_secs(60))?;
            println!(
                "started {node} (RPC {}, log {})",
                t.rpc_config(&node)?.addr,
                t.log_path(&node).display()
            );
            Ok(())
        }
        TestnetCommand::Stop { node } => {
            let mut t = Testnet::open(&dir)?;
            if !t.is_running(&node) {
                t.rpc_config(&node)?;
                println!("{node} is not running");
                return Ok(());
            }
            t.stop_node(&node)?;
            println!(
                "stopped {node} (start it again with `{}`)",
                testnet::hint(&dir, &format!("start {node}"))
            );
            Ok(())
        }
        TestnetCommand::Restart { node } => {
            let mut t = Testnet::open(&dir)?;
            t.restart_node(&node, Duration::from_secs(60))?;
            println!("restarted {node}");
            Ok(())
        }
        TestnetCommand::Rpc { node, call } => {
            let mut t = Testnet::open(&dir)?;
            super::rpc::call(&node_target(&mut t, &node, call.wait)?, &call)
        }
        TestnetCommand::Wallet { node, opts, command } => {
            let mut t = Testnet::open(&dir)?;
            super::wallet::run_on(&node_target(&mut t, &node, false)?, &opts, json, &command)
        }
        TestnetCommand::Down { clean } => {
            if clean {
                // Refuse a directory that holds no testnet before stopping anything.
                testnet::clean::check(&dir)?;
            }
            let mut t = Testnet::open(&dir)?;
            let running = t.running();
            t.down()?;
            println!(
                "stopped {}: {}",
                super::wallet::plural(running.len() as u64, "node"),
                if running.is_empty() { "-".into() } else { running.join(", ") }
            );
            if clean {
                let cleaned = testnet::clean(&dir)?;
                for p in &cleaned.deleted {
                    println!("deleted {}", p.display());
                }
                if cleaned.removed_dir {
                    println!("deleted {}", dir.display());
                } else {
                    println!(
                        "kept {} (it holds files the testnet did not make: {})",
                        dir.display(),
                        cleaned.kept.join(", ")
                    );
                }
            }
            Ok(())
        }
        TestnetCommand::Shaper { fabric } => Ok(testnet::shaper::run(&fabric)?),
        TestnetCommand::Scenario { file, keep, hosts, network } => {
            let mut scenario = Scenario::load(&file)?;
            if let Some(h) = hosts {
                scenario.topology.hosts = h;
            }
            if let Some(n) = network {
                if n == Network::Regtest {
                    if let Some(m) = scenario.topology.nodes.iter().find(|m| m.mine && m.hashrate.is_none()) {
                        bail!(
                            "--network regtest: node {} mines continuously with no `hashrate`, and on regtest \
                             about every second hash is a block; give it a hashrate in {} or run it on its own network",
                            m.name,
                            file.display()
                        );
                    }
                }
                scenario.topology.network = n;
            }
            if hosts.is_some() || network.is_some() {
                scenario.topology.check()?;
                scenario.check_steps()?;
            }
            if scenario.topology.hosts == testnet::hosts::Hosts::Netns {
                testnet::hosts::require_root()?;
            }
            let progress = std::io::stdout().is_terminal();
            // `--dir`: run there (kept afterwards); otherwise in a temporary directory.
            let (run_dir, tmp) = fresh_dir(explicit_dir.as_deref(), "scenario")?;
            println!(
                "scenario directory: {} (interrupted? stop its nodes with `{}`)",
                run_dir.display(),
                testnet::hint(&run_dir, "down")
            );
            let result = scenario.run(&run_dir, progress);
            let kept = keep || result.is_err() || tmp.is_none();
            if let Some(tmp) = tmp {
                if kept {
                    let _ = tmp.keep();
                }
            }
            if kept {
                let logs: Vec<String> = scenario
                    .topology
                    .nodes
                    .iter()
                    .map(|n| run_dir.join(&n.name).join("node.log").display().to_string())
                    .collect();
                println!("scenario directory kept: {}\nnode logs: {}", run_dir.display(), logs.join(" "));
            }
            let report = result?;
            println!(
                "scenario {} passed: {} steps in {:.1} s",
                scenario.name,
                report.steps_run,
                report.elapsed.as_secs_f64()
            );
            Ok(())
        }
        TestnetCommand::Logs { grep, node, follow } => {
            let t = Testnet::open(&dir)?;
            let grep = match grep {
                Some(re) => Some(
                    regex::Regex::new(&re)
                        .with_context(|| format!("--grep {re:?} is not a valid regular expression"))?,
                ),
                None => None,
            };
            let opts = testnet::logs::LogOptions { grep, node, follow };
            let stdout = std::io::stdout();
            Ok(testnet::logs::logs(&t, &opts, &mut stdout.lock())?)
        }
        TestnetCommand::Dump { out } => {
            let mut t = Testnet::open(&dir)?;
            let dumped = testnet::logs::dump(&mut t, &out)?;
            println!("saved {} files in {}", dumped.files.len(), out.display());
            for m in &dumped.missing {
                println!("not saved: {m}");
            }
            Ok(())
        }
        TestnetCommand::Soak { kills, seed, dbcache_bytes, hashrate, keep } => {
            let (run_dir, tmp) = fresh_dir(explicit_dir.as_deref(), "soak")?;
            eprintln!(
                "soak directory: {} (interrupted? stop its nodes with `{}`)",
                run_dir.display(),
                testnet::hint(&run_dir, "down")
            );
            let opts = testnet::soak::SoakOptions { kills, seed, dbcache_bytes, hashrate };
            let result = testnet::soak::run(&run_dir, &opts);
            let passed = result.as_ref().is_ok_and(|r| r.passed());
            if let Some(tmp) = tmp {
                if keep || !passed {
                    eprintln!("kept {}", run_dir.display());
                    let _ = tmp.keep();
                }
            }
            let report = result?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", testnet::soak::report_text(&report));
            }
            if !passed {
                bail!("the soak failed: {}", testnet::soak::failed_checks(&report).join("; "));
            }
            Ok(())
        }
        TestnetCommand::Spam { tps, seconds, drain, out } => {
            let mut t = Testnet::open(&dir)?;
            let out = Some(out.unwrap_or_else(|| dir.join("spam")));
            let report =
                spam::run(&mut t, &SpamOptions { tps, seconds, drain_seconds: drain, miner: None, out })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", spam::report_text(&report));
            }
            Ok(spam::check_complete(&report, drain)?)
        }
    }
}
