//! `quarry testnet up`: create or resume, start, connect, pre-fund.

use super::error::{Result, TestnetError};
use super::topology::Topology;
use super::Testnet;
use crate::rpc::api::QuarryApiClient;
use std::path::Path;
use std::time::Duration;

/// Options of `quarry testnet up`.
#[derive(Clone, Debug)]
pub struct UpOptions {
    /// Delete the stopped testnet in the directory first (only what it made: see [`super::clean`]).
    pub clean: bool,
    /// Keep showing the status table after start.
    pub watch: bool,
    /// Show progress bars.
    pub progress: bool,
    /// Start the explorer and print its URL.
    pub explorer: bool,
    /// Pre-fund every node's wallet (a scenario may skip it: `prefund = false`).
    pub prefund: bool,
    /// Every node fsyncs its chainstate on every block from now on (`--sync-writes`), also
    /// the nodes of a resumed testnet; otherwise each node keeps its topology's setting.
    pub sync_writes: bool,
}

fn bar(len: u64, msg: &str, show: bool) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(len);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{msg:28} [{bar:30}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(msg.to_string());
    pb
}

/// `quarry testnet up`: creates (or resumes) the testnet in `dir`, starts its nodes, waits
/// until they are connected, pre-funds every node's wallet, and prints the status.
pub fn up(dir: &Path, topology: &Topology, opts: &UpOptions) -> Result<Testnet> {
    if Testnet::state_path(dir).exists() {
        let mut existing = Testnet::open(dir)?;
        let running = existing.running();
        if !running.is_empty() {
            let stopped: Vec<String> = existing
                .state
                .nodes
                .iter()
                .filter(|n| n.start && !running.contains(&n.name))
                .map(|n| n.name.clone())
                .collect();
            if stopped.is_empty() || opts.clean {
                return Err(TestnetError::refused(format!(
                    "a testnet is already running in {} (nodes {}): see `{}`, stop it with `{}`",
                    dir.display(),
                    running.join(", "),
                    super::hint(dir, "status"),
                    super::hint(dir, "down")
                )));
            }
            if existing.state.hosts == super::hosts::Hosts::Netns && !existing.fabric_up() {
                return Err(TestnetError::refused(format!("the link shaper of the testnet in {} is not running but nodes are: stop it with `{}`, then `{}`",
                    dir.display(),
                    super::hint(dir, "down"),
                    super::hint(dir, "up"))));
            }
            // A running testnet with stopped nodes (crashed, or `stop NODE`): start those.
            println!(
                "the testnet in {} runs; starting its stopped nodes: {}",
                dir.display(),
                stopped.join(", ")
            );
            let result = bring_up(&mut existing, opts);
            if let Err(e) = result {
                // Stop only what this call started; the nodes that ran keep running.
                for n in &stopped {
                    let _ = existing.stop_node(n);
                }
                return Err(e);
            }
            return Ok(existing);
        }
        if opts.clean {
            let cleaned = super::clean(dir)?;
            println!("deleted the testnet in {} ({} paths)", dir.display(), cleaned.deleted.len());
        }
    }
    let mut t = if Testnet::state_path(dir).exists() {
        println!("resuming the testnet in {} (pass --clean to start afresh)", dir.display());
        Testnet::open(dir)?
    } else {
        Testnet::create(dir, topology)?
    };
    if opts.sync_writes {
        for n in &mut t.state.nodes {
            n.sync_writes = true;
        }
        t.save()?;
    }
    let result = bring_up(&mut t, opts);
    if let Err(e) = result {
        let _ = t.down();
        return Err(e);
    }
    Ok(t)
}

fn bring_up(t: &mut Testnet, opts: &UpOptions) -> Result<()> {
    t.setup_hosts()?;
    let to_start: Vec<String> = t.state.nodes.iter().filter(|n| n.start).map(|n| n.name.clone()).collect();
    let pb = bar(to_start.len() as u64, "starting nodes", opts.progress);
    for name in &to_start {
        if !t.is_running(name) {
            t.start_node(name)?;
            t.wait_ready(name, Duration::from_secs(60))?;
        }
        pb.inc(1);
    }
    pb.finish();
    if to_start.len() > 1 {
        let pb = bar(to_start.len() as u64, "connecting", opts.progress);
        let names = to_start.clone();
        t.wait_until("every node to have a peer", Duration::from_secs(60), |t| {
            let mut connected = 0;
            for n in &names {
                if t.peers(n)? > 0 {
                    connected += 1;
                }
            }
            pb.set_position(connected);
            Ok(connected as usize == names.len())
        })?;
        pb.finish();
    }
    if opts.prefund {
        prefund(t, &to_start, opts)?;
    }
    super::observe::write(t)?;
    println!(
        "metrics: Prometheus scrape config {}, Grafana dashboard {}",
        t.dir.join(super::observe::PROMETHEUS_FILE).display(),
        t.dir.join(super::observe::GRAFANA_FILE).display()
    );
    if opts.explorer {
        let url = t.start_explorer()?;
        println!("explorer: {url}");
    }
    Ok(())
}

/// Coins `up` gives each node's wallet.
pub const PREFUND_COINS: u64 = 200;

/// Gives every started node's wallet [`PREFUND_COINS`] confirmed coins: the first node mines
/// until its wallet holds enough mature coinbases (whichever of its blocks win races against
/// the continuous miners), then pays every other wallet in one transaction and mines it in.
/// Skipped for wallets that already have coins.
pub fn prefund(t: &mut Testnet, names: &[String], opts: &UpOptions) -> Result<()> {
    use crate::primitives::{Amount, Transaction, TxIn, TxOut};
    let Some(first) = names.first().cloned() else { return Ok(()) };
    let mut needy = Vec::new();
    for n in names {
        let balance =
            crate::wallet::ops::balance(&t.wallet(n)?, &t.rpc(n)?).map_err(TestnetError::wallet_of(n))?;
        if balance.confirmed.to_sat() == 0 && balance.immature.to_sat() == 0 {
            needy.push(n.clone());
        }
    }
    if needy.is_empty() {
        return Ok(());
    }
    let coin = 100_000_000u64;
    let others: Vec<String> = needy.iter().filter(|n| **n != first).cloned().collect();
    let want = PREFUND_COINS * coin * (others.len() as u64 + 1) + coin;
    let maturity = t.network.params().coinbase_maturity as u64;
    let all = names.to_vec();
    let pb = bar(maturity + 10, "mining coins", opts.progress);
    let mut mined = 0u64;
    loop {
        let rpc = t.rpc(&first)?;
        let have = crate::wallet::ops::balance(&t.wallet(&first)?, &rpc)
            .map_err(TestnetError::wallet_of(&first))?
            .confirmed;
        if have.to_sat() >= want {
            break;
        }
        if mined > 400 {
            return Err(TestnetError::failed(format!(
                "{first}'s wallet holds {have} after mining {mined} blocks; {} coins needed",
                want / coin
            )));
        }
        t.mine(&first, 1)?;
        mined += 1;
        pb.set_position(mined.min(maturity + 10));
    }
    pb.finish();
    t.wait_until("the nodes to agree on the tip", Duration::from_secs(60), |t| t.same_tip(Some(&all)))?;
    if others.is_empty() {
        return Ok(());
    }
    // One payment to every other wallet.
    let rpc = t.rpc(&first)?;
    let wallet = t.wallet(&first)?;
    let mut coins = crate::wallet::ops::spendable(&wallet, &rpc).map_err(TestnetError::wallet_of(&first))?;
    coins.sort_by(|a, b| b.out.value.cmp(&a.out.value));
    let pay = PREFUND_COINS * coin;
    let fee = 1_000_000u64;
    let needed = pay * others.len() as u64 + fee;
    let mut inputs = Vec::new();
    let mut total = 0u64;
    for c in coins {
        if total >= needed {
            break;
        }
        total += c.out.value.to_sat();
        inputs.push(c);
    }
    if total < needed {
        return Err(TestnetError::failed(format!(
            "{first}'s wallet cannot pay {} coins to each of {} wallets",
            PREFUND_COINS,
            others.len()
        )));
    }
    let mut outputs = Vec::new();
    for n in &others {
        outputs.push(TxOut {
            value: Amount::from_sat(pay)?,
            lock: crate::script::templates::address_lock(&t.wallet(n)?.address(0)),
        });
    }
    outputs.push(TxOut {
        value: Amount::from_sat(total - needed)?,
        lock: crate::script::templates::address_lock(&wallet.address(0)),
    });
    let mut tx = Transaction {
        version: 1,
        inputs: inputs.iter().map(|c| TxIn { prevout: c.outpoint, unlock: Default::default() }).collect(),
        outputs,
        lock_time: 0,
    };
    let spent: Vec<TxOut> = inputs.iter().map(|c| c.out.clone()).collect();
    crate::wallet::ops::sign_p2pkh_inputs(&wallet, &mut tx, &spent).map_err(TestnetError::wallet)?;
    let txid = t.ask(&first, |c| c.wait(c.sendrawtransaction(hex::encode(tx.encode()))))?;
    let pb = bar(others.len() as u64, "paying the wallets", opts.progress);
    for _ in 0..20 {
        t.mine(&first, 1)?;
        t.wait_until("the nodes to agree on the tip", Duration::from_secs(60), |t| t.same_tip(Some(&all)))?;
        let tx = t.ask(&first, |c| c.wait(c.transaction_info(&txid)))?;
        if tx.blockhash.is_some() {
            pb.set_position(others.len() as u64);
            pb.finish();
            return Ok(());
        }
    }
    Err(TestnetError::failed(format!("the funding transaction {txid} was not confirmed after 20 blocks")))
}
