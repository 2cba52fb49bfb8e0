//! `quarry testnet up|status|down|scenario|spam`.

use crate::consensus::Network;
use crate::testnet::scenario::Scenario;
use crate::testnet::spam::{self, SpamOptions};
use crate::testnet::topology::Topology;
use crate::testnet::{self, Testnet, UpOptions};
use anyhow::{Context, Result};
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
    },
    /// Show each node's height, tip, peers, mempool, hash rate and last fork.
    Status {
        /// Refresh every 2 seconds until Ctrl-C.
        #[arg(long)]
        watch: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop every node gracefully (RPC stop, then SIGTERM, then SIGKILL) and check none is left.
    Down {
        /// Also delete what the testnet made (testnet.json and the node directories it
        /// records), and the directory if nothing else is left in it.
        #[arg(long)]
        clean: bool,
    },
    /// Run a scenario file (testnet/scenarios/*.toml) in a fresh directory; exits non-zero
    /// on the first failed step.
    Scenario {
        /// The scenario file.
        file: PathBuf,
        /// Keep the scenario's directory (logs, data) afterwards.
        #[arg(long)]
        keep: bool,
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
        /// Print JSON.
        #[arg(long)]
        json: bool,
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

fn watch(t: &mut Testnet) -> ! {
    loop {
        let table = testnet::status_table(&testnet::status(t));
        print!("\x1b[2J\x1b[H{table}\n(refreshing every 2 s; Ctrl-C leaves the nodes running; `quarry testnet down` stops them)\n");
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Runs a testnet command.
pub fn run(args: TestnetArgs) -> Result<()> {
    let dir = match args.dir {
        Some(d) => d,
        None => testnet::default_dir()?,
    };
    match args.command {
        TestnetCommand::Up { nodes, miners, topology, network, clean, no_watch, no_explorer } => {
            let topology = match topology {
                Some(path) => Topology::load(&path)?,
                None => Topology::generated(network, nodes, miners)?,
            };
            let interactive = std::io::stdout().is_terminal();
            let opts = UpOptions {
                clean,
                watch: !no_watch && interactive,
                progress: interactive,
                explorer: !no_explorer,
            };
            let mut t = testnet::up(&dir, &topology, &opts)?;
            println!("testnet up in {} ({} network)", dir.display(), t.network);
            print!("{}", testnet::status_table(&testnet::status(&mut t)));
            let first = t.names().into_iter().next().unwrap_or_default();
            if let Ok(n) = t.state.nodes.iter().find(|n| n.name == first).ok_or(()) {
                println!(
                    "\ntry: quarry rpc --network {} --datadir {} --rpc-connect 127.0.0.1:{} getpeerinfo",
                    t.network,
                    t.datadir(&first).display(),
                    n.rpc_port
                );
                println!(
                    "     quarry wallet --network {} --datadir {} --rpc-connect 127.0.0.1:{} balance",
                    t.network,
                    t.datadir(&first).display(),
                    n.rpc_port
                );
            }
            if opts.watch {
                watch(&mut t);
            }
            Ok(())
        }
        TestnetCommand::Status { watch: w, json } => {
            let mut t = Testnet::open(&dir)?;
            if w {
                watch(&mut t);
            }
            let rows = testnet::status(&mut t);
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", testnet::status_table(&rows));
            }
            Ok(())
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
                "stopped {} node(s): {}",
                running.len(),
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
        TestnetCommand::Scenario { file, keep } => {
            let scenario = Scenario::load(&file)?;
            let tmp = tempfile::Builder::new()
                .prefix("quarry-scenario-")
                .tempdir()
                .context("creating a directory")?;
            let run_dir = tmp.path().join("testnet");
            println!(
                "scenario directory: {} (interrupted? stop its nodes with `quarry testnet --dir {} down`)",
                tmp.path().display(),
                run_dir.display()
            );
            let progress = std::io::stdout().is_terminal();
            let result = scenario.run(&run_dir, progress);
            if keep || result.is_err() {
                let kept = tmp.keep();
                println!("scenario directory (logs in <node>/node.log): {}", kept.display());
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
            testnet::logs::logs(&t, &opts, &mut stdout.lock())
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
        TestnetCommand::Spam { tps, seconds, drain, json } => {
            let mut t = Testnet::open(&dir)?;
            let report = spam::run(&mut t, &SpamOptions { tps, seconds, drain_seconds: drain, miner: None })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", spam::report_text(&report));
            }
            Ok(())
        }
    }
}
