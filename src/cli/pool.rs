//! `quarry pool` (the Stratum pool), `quarry pool stats`, and `quarry miner --pool`.

use super::connect::{ConnectArgs, Target};
use super::DataArgs;
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
    // Credits of blocks this deep are owed; without a node, only PPS credits are.
    let maturity = target.network.params().coinbase_maturity;
    let tip = target.client(Duration::from_secs(5)).ok().and_then(|c| c.wait(c.getblockcount()).ok());
    let mature = tip.map_or(0, |t| t.saturating_sub(maturity));
    let rows = ledger.stats(mature);
    if json {
        let v = serde_json::json!({ "tip": tip, "mature_height": mature, "blocks": ledger.blocks(), "workers": rows });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    match tip {
        Some(t) => println!("node tip {t}; blocks at or below {mature} are mature"),
        None => println!("node not reachable: only PPS credits count as owed"),
    }
    println!("blocks found: {}", ledger.blocks().len());
    println!(
        "{:<24} {:>8} {:>12} {:>14} {:>14} {:>14} {:>14}",
        "worker", "shares", "difficulty", "hashrate H/s", "credited", "owed", "paid"
    );
    for r in rows {
        println!(
            "{:<24} {:>8} {:>12.6} {:>14.0} {:>14} {:>14} {:>14}",
            r.worker, r.shares, r.diff, r.hashrate, r.credited, r.owed, r.paid
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
