//! `quarry node`'s wiring, at the top of the stack: opens the chainstate, starts the core
//! thread, binds the peer-to-peer swarm and the JSON-RPC server, connects them through the
//! core's typed API and network link, and shuts everything down cleanly on SIGINT, SIGTERM
//! or the `stop` RPC (miner stopped, mempool saved, RocksDB closed, exit 0). Nothing below
//! this module wires components together.

use crate::chain::Chain;
use crate::chain::ChainError;
use crate::consensus::Network;
use crate::mempool::MempoolConfig;
use crate::node::{CoreConfig, CoreNet, Lifecycle, MiningConfig};
use crate::primitives::Address;
use crate::rpc::server::{start_server, RpcAuth, ServerLimits};
use crate::script::templates::address_lock;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tracing::info;

/// Completions from the core to the network service queued at most (each is small but a
/// Blocks answer; the service bounds answers in flight).
const NET_COMPLETIONS: usize = 4096;

/// Everything `quarry node` needs, after flags and the config file are merged.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Network.
    pub network: Network,
    /// Data directory (chainstate, cookie, mempool.dat, quarry.toml).
    pub datadir: PathBuf,
    /// Where the JSON-RPC server listens.
    pub rpc_bind: SocketAddr,
    /// Optional user/password accepted besides the cookie.
    pub rpc_user: Option<(String, String)>,
    /// RPC connection and request timeouts (`--rpc-server-timeout`).
    pub rpc_limits: ServerLimits,
    /// Free disk space, MB, below which the node refuses to start or stops before a block
    /// connect (`store::MIN_FREE_MB` unless overridden for tests).
    pub min_free_mb: u64,
    /// Bound of the UTXO cache, MiB.
    pub dbcache_mib: usize,
    /// Fsync the chainstate's write-ahead log on every block write and UTXO flush
    /// (`--sync-writes`; off by default: a power cut may then lose the last blocks).
    pub sync_writes: bool,
    /// Which indexes to keep.
    pub indexes: crate::store::IndexSet,
    /// Mine continuously, paying this address.
    pub mine_to: Option<String>,
    /// Miner threads (also used by generatetoaddress).
    pub mine_threads: usize,
    /// Most hashes per second of the continuous miner (`--mine-hashrate`).
    pub mine_hashrate: Option<f64>,
    /// How the continuous miner publishes (`--strategy`).
    pub strategy: crate::node::MiningStrategy,
    /// Peer-to-peer settings (None: no networking).
    pub p2p: Option<crate::p2p::P2pConfig>,
    /// How our own blocks are announced (`--relay`).
    pub relay: crate::p2p::link::BlockRelay,
    /// Where the HTTP API listens (`--http`; None: off).
    pub http_bind: Option<SocketAddr>,
    /// Where the metrics endpoint listens (`--metrics`; None: off).
    pub metrics_bind: Option<SocketAddr>,
}

/// Why the node did not start, or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The data directory cannot be made.
    #[error("creating the data directory {}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `--miner-address` does not decode (the cause is in the message).
    #[error("--miner-address {address}: {error}")]
    MinerAddress {
        /// What was given.
        address: String,
        /// Why it is refused.
        error: crate::primitives::AddressError,
    },
    /// `--mine-threads` above the miner's limit.
    #[error("--mine-threads {given} is more than {max} (pass a number up to the machine's cores)")]
    MineThreads {
        /// What was given.
        given: usize,
        /// The miner's limit.
        max: usize,
    },
    /// `QUARRY_DBCACHE_BYTES` is not a number.
    #[error(
        "{}={value:?}: pass a number of bytes (test-only; unset it to use --dbcache)",
        crate::chain::coins::DBCACHE_BYTES_ENV
    )]
    DbcacheEnv {
        /// Its value.
        value: String,
    },
    /// Too little free disk space (or it cannot be measured).
    #[error(transparent)]
    DiskSpace(crate::store::StoreError),
    /// The test-only pause points (`QUARRY_PAUSE`) are refused.
    #[error(transparent)]
    PausePoints(Box<ChainError>),
    /// The chainstate cannot be opened.
    #[error("opening the chainstate at {} (is another node using this --datadir?)", path.display())]
    Chainstate {
        /// The chainstate directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<ChainError>,
    },
    /// The async runtime cannot start.
    #[error("starting the async runtime")]
    Runtime(#[source] std::io::Error),
    /// The peer-to-peer swarm cannot be built or bound.
    #[error(transparent)]
    P2p(#[from] crate::p2p::behaviour::SetupError),
    /// The indexer cannot start.
    #[error("starting the indexer")]
    Indexer(#[source] crate::index::IndexError),
    /// The core thread cannot be spawned.
    #[error("starting the node core thread")]
    CoreThread(#[source] std::io::Error),
    /// The RPC cookie cannot be written (the cause is in the message).
    #[error("cannot write the RPC cookie: {error} (is the data directory writable?)")]
    Cookie {
        /// The I/O error.
        error: std::io::Error,
    },
    /// The JSON-RPC server cannot listen (the cause is in the message).
    #[error("cannot listen for JSON-RPC on {addr}: {error} (address in use? pass --rpc-bind)")]
    RpcBind {
        /// `--rpc-bind`.
        addr: SocketAddr,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The HTTP API (`--http`) or metrics (`--metrics`) server cannot listen.
    #[error("{flag}")]
    Httpd {
        /// The flag.
        flag: &'static str,
        /// Why.
        #[source]
        source: crate::httpd::HttpdError,
    },
    /// The core stopped the node for a reason the user can fix (disk space too low).
    #[error("{0}")]
    Fatal(String),
    /// The core thread panicked or failed.
    #[error(
        "the node core stopped after an internal error (see the log above); the chainstate is consistent, \
         restart the node"
    )]
    CoreCrashed,
}

/// Results of the daemon.
pub type Result<T, E = DaemonError> = std::result::Result<T, E>;

/// The coins cache bound: `QUARRY_DBCACHE_BYTES` (test-only) if set, else `--dbcache` MiB.
fn dbcache_bytes(mib: usize) -> Result<usize> {
    use crate::chain::coins::DBCACHE_BYTES_ENV;
    match std::env::var(DBCACHE_BYTES_ENV) {
        Err(_) => Ok(mib << 20),
        Ok(v) => {
            let bytes: usize = v.trim().parse().map_err(|_| DaemonError::DbcacheEnv { value: v.clone() })?;
            tracing::warn!(target: "node", bytes, "test-only UTXO cache bound ({DBCACHE_BYTES_ENV})");
            Ok(bytes)
        }
    }
}

/// Runs the node until it is asked to stop.
pub fn run(config: NodeConfig) -> Result<()> {
    if let Some(limit) = raise_open_file_limit() {
        // RocksDB's files, the RPC connections, the peers, and some slack for the rest.
        let peers = config.p2p.as_ref().map_or(0, |p| p.max_connections as u64);
        let wanted =
            crate::store::MAX_OPEN_FILES as u64 + crate::rpc::server::MAX_CONNECTIONS as u64 + peers + 64;
        if limit < wanted {
            tracing::warn!(target: "node", limit, wanted,
                "the open-file limit is below what the node may use (RocksDB, RPC connections, peers): raise it with `ulimit -n {wanted}`");
        }
    }
    std::fs::create_dir_all(&config.datadir)
        .map_err(|source| DaemonError::DataDir { path: config.datadir.clone(), source })?;
    let params = config.network.params();
    let mining = match &config.mine_to {
        None => None,
        Some(a) => {
            let addr = Address::decode(a, config.network.address_hrp())
                .map_err(|error| DaemonError::MinerAddress { address: a.clone(), error })?;
            Some(MiningConfig {
                lock: address_lock(&addr),
                threads: config.mine_threads,
                hashrate: config.mine_hashrate,
                strategy: config.strategy,
            })
        }
    };
    if config.mine_threads > crate::miner::Miner::MAX_THREADS {
        return Err(DaemonError::MineThreads {
            given: config.mine_threads,
            max: crate::miner::Miner::MAX_THREADS,
        });
    }
    // RocksDB aborts the process when a write finds the disk full: refuse to start before.
    crate::store::check_disk_space(&config.datadir, config.min_free_mb).map_err(DaemonError::DiskSpace)?;
    let chain_dir = config.datadir.join("chainstate");
    let cache = crate::chain::coins::CacheConfig {
        limit_bytes: dbcache_bytes(config.dbcache_mib)?,
        ..crate::chain::coins::CacheConfig::default()
    };
    let pauses = crate::chain::pause::install_from_env(&config.datadir)
        .map_err(|e| DaemonError::PausePoints(Box::new(e)))?;
    if !pauses.is_empty() {
        let names: Vec<&str> = pauses.iter().map(|p| p.name()).collect();
        tracing::warn!(target: "node", points = %names.join(","), "test-only pause points enabled ({})", crate::chain::pause::PAUSE_ENV);
    }
    let opened = crate::store::Store::open_with(&chain_dir, config.sync_writes)
        .map_err(ChainError::from)
        .and_then(|store| Chain::with_store(Arc::new(store), params, cache));
    let chain =
        opened.map_err(|e| DaemonError::Chainstate { path: chain_dir.clone(), source: Box::new(e) })?;
    let tip = chain.tip();
    info!(target: "node", network = %config.network, height = tip.height, tip = %tip.hash,
        sync_writes = config.sync_writes, "chainstate opened");
    if let Some(warning) = crate::node::tipmark::check(&chain_dir, &tip) {
        tracing::warn!(target: "node", height = tip.height, "{warning}");
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("quarry-rt")
        .build()
        .map_err(DaemonError::Runtime)?;
    let life = Lifecycle::default();
    let (net_handle, net_rx) = crate::p2p::P2pHandle::channel();
    // The swarm is built and bound before anything else starts, so a port in use fails fast.
    let swarm = match &config.p2p {
        None => None,
        Some(p2p) => {
            let _guard = runtime.enter(); // the transport registers sockets with the runtime
            Some(crate::p2p::service::bind(config.network, p2p)?)
        }
    };
    let (done_tx, done_rx) = tokio::sync::mpsc::channel(NET_COMPLETIONS);
    let core_net = swarm.is_some().then(|| CoreNet { publish: net_handle.clone(), done: done_tx });
    let core_config = CoreConfig {
        network: config.network,
        datadir: config.datadir.clone(),
        chain_dir: chain_dir.clone(),
        min_free_mb: config.min_free_mb,
        mining,
        generate_threads: config.mine_threads,
        mempool: MempoolConfig::default(),
        index: crate::index::Indexer::start(chain.shared_store(), config.indexes)
            .map_err(DaemonError::Indexer)?,
        relay: config.relay,
        verify_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
    };
    let started = crate::node::core::start(chain, core_config, life.clone(), core_net)
        .map_err(DaemonError::CoreThread)?;
    let handle = started.handle.clone();
    let net_stop = Arc::new(tokio::sync::Notify::new());
    let net_task = match (swarm, &config.p2p) {
        (Some(bound), Some(p2p)) => Some(runtime.spawn(crate::p2p::service::run(
            bound,
            p2p.clone(),
            Box::new(started.link.clone()),
            done_rx,
            net_rx,
            net_handle.full_only_flag(),
            net_stop.clone(),
        ))),
        _ => None,
    };

    let result = runtime.block_on(async {
        let cookie = match crate::rpc::cookie::write(&config.datadir) {
            Ok(c) => c,
            Err(e) => {
                life.shutdown.store(true, Ordering::SeqCst);
                return Err(DaemonError::Cookie { error: e });
            }
        };
        let stop = life.stop.clone();
        let auth = RpcAuth { cookie: cookie.clone(), user: config.rpc_user.clone() };
        let rpc_net = config.p2p.is_some().then(|| net_handle.clone());
        let server = match start_server(config.rpc_bind, auth, config.rpc_limits, handle.clone(), rpc_net.clone(), stop.clone()).await {
            Ok(s) => s,
            Err(e) => {
                crate::rpc::cookie::remove(&config.datadir);
                life.shutdown.store(true, Ordering::SeqCst);
                return Err(DaemonError::RpcBind { addr: config.rpc_bind, error: e });
            }
        };
        if let Err(e) = crate::rpc::cookie::write_addr(&config.datadir, config.rpc_bind) {
            tracing::warn!(target: "rpc", "{e}: `quarry rpc` and `quarry wallet` need --rpc-connect to find this node");
        }
        info!(target: "rpc", addr = %config.rpc_bind, "JSON-RPC listening (cookie auth: {})", crate::rpc::cookie::path(&config.datadir).display());
        // Each of these stops when its Notify is notified (one permit each).
        let mut side_stops: Vec<Arc<tokio::sync::Notify>> = Vec::new();
        let side = async {
            if let Some(addr) = config.http_bind {
                let server = crate::httpd::Server::bind(addr)
                    .await
                    .map_err(|source| DaemonError::Httpd { flag: "--http", source })?;
                let (watch_stop, server_stop) = (Arc::new(tokio::sync::Notify::new()), Arc::new(tokio::sync::Notify::new()));
                let watch = crate::explorer::watch::Watch::spawn(handle.clone(), watch_stop.clone());
                let api = crate::explorer::api::NodeApi::new(handle.clone(), rpc_net.clone(), watch);
                info!(target: "http", addr = %server.addr, "HTTP API listening (/api/)");
                tokio::spawn(server.run(Arc::new(api), server_stop.clone()));
                side_stops.extend([watch_stop, server_stop]);
            }
            if let Some(addr) = config.metrics_bind {
                let server = crate::httpd::Server::bind(addr)
                    .await
                    .map_err(|source| DaemonError::Httpd { flag: "--metrics", source })?;
                let (sampler_stop, server_stop) = (Arc::new(tokio::sync::Notify::new()), Arc::new(tokio::sync::Notify::new()));
                tokio::spawn(sample_metrics(handle.clone(), rpc_net.clone(), sampler_stop.clone()));
                info!(target: "metrics", addr = %server.addr, "metrics listening (/metrics)");
                tokio::spawn(server.run(Arc::new(crate::metrics::Endpoint), server_stop.clone()));
                side_stops.extend([sampler_stop, server_stop]);
            }
            Ok::<(), DaemonError>(())
        };
        if let Err(e) = side.await {
            let _ = server.stop();
            crate::rpc::cookie::remove(&config.datadir);
            life.shutdown.store(true, Ordering::SeqCst);
            return Err(e);
        }
        println!("quarry node running: network {}, RPC {}", config.network, config.rpc_bind);
        wait_for_shutdown(&stop).await;
        info!(target: "node", "shutting down");
        // First the flag: the core finishes its current step and drops queued work.
        life.shutdown.store(true, Ordering::SeqCst);
        for s in &side_stops {
            s.notify_one();
        }
        let _ = server.stop();
        server.stopped().await;
        net_stop.notify_one();
        if let Some(task) = net_task {
            let _ = tokio::time::timeout(Duration::from_secs(3), task).await;
        }
        crate::rpc::cookie::remove(&config.datadir);
        Ok(())
    });
    drop(handle);
    runtime.shutdown_timeout(Duration::from_secs(2));
    let joined = started.thread.join();
    if let Some(why) = life.fatal.lock().unwrap_or_else(|e| e.into_inner()).take() {
        return Err(DaemonError::Fatal(why));
    }
    if joined.is_err() || life.crashed.load(Ordering::SeqCst) {
        return Err(DaemonError::CoreCrashed);
    }
    info!(target: "node", "stopped");
    result
}

/// Sets the state gauges of `crate::metrics` from the node's typed API once a second (events
/// such as reorgs and RPC calls are counted where they happen).
async fn sample_metrics(
    node: crate::node::NodeHandle,
    net: Option<crate::p2p::P2pHandle>,
    stop: Arc<tokio::sync::Notify>,
) {
    let m = crate::metrics::get();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.notified() => return,
        }
        if let Ok(info) = node.chain_info().await {
            m.chain_height.set(info.tip.height as i64);
            m.sync_ibd.set(info.initial_block_download as i64);
            m.sync_headers.set(info.headers as i64);
        }
        if let Ok(tips) = node.chain_tips().await {
            for status in ["active", "valid-fork", "invalid"] {
                let n = tips.iter().filter(|t| t.status == status).count();
                m.chain_tips.get_or_create(&crate::metrics::TipLabels { status }).set(n as i64);
            }
        }
        if let Ok(pool) = node.mempool_info().await {
            m.mempool_txs.set(pool.size as i64);
            m.mempool_bytes.set(pool.bytes as i64);
        }
        if let Ok(mining) = node.mining_info().await {
            m.miner_hashrate.set(if mining.mining { mining.rate.total } else { 0.0 });
        }
        if let Some(Ok(info)) = match &net {
            Some(n) => Some(n.network_info().await),
            None => None,
        } {
            m.peers
                .get_or_create(&crate::metrics::DirectionLabels { direction: "inbound" })
                .set(info.connections_in as i64);
            m.peers
                .get_or_create(&crate::metrics::DirectionLabels { direction: "outbound" })
                .set(info.connections_out as i64);
            m.banned_peers.set(info.banned as i64);
        }
    }
}

/// Raises the soft limit on open files to the hard limit, as bitcoind does: RocksDB keeps up
/// to 256 files open, each peer and RPC connection takes one, and the common default soft
/// limit of 1,024 is easily reached.
/// Returns the limit in force afterwards, if it could be read.
#[cfg(unix)]
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on most targets but not all (32-bit Linux)
fn raise_open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct we pass, which lives across the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        tracing::warn!(target: "node", error = %std::io::Error::last_os_error(), "cannot read the open-file limit");
        return None;
    }
    if limit.rlim_cur >= limit.rlim_max {
        info!(target: "node", limit = limit.rlim_cur, "open-file limit");
        return Some(limit.rlim_cur as u64);
    }
    let from = limit.rlim_cur;
    let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
    // SAFETY: setrlimit only reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        tracing::warn!(target: "node", from, to = limit.rlim_max, error = %std::io::Error::last_os_error(),
            "cannot raise the open-file limit; raise it with `ulimit -n` if RPC or peers run out of files");
        return Some(from as u64);
    }
    info!(target: "node", from, to = limit.rlim_max, "raised the open-file limit (soft to hard)");
    Some(limit.rlim_max as u64)
}

#[cfg(not(unix))]
fn raise_open_file_limit() -> Option<u64> {
    None
}

async fn wait_for_shutdown(stop: &tokio::sync::Notify) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
                _ = stop.notified() => {}
            },
            Err(e) => {
                tracing::warn!(target: "node", error = %e, "cannot handle SIGTERM; stop with Ctrl-C or the stop RPC");
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = stop.notified() => {}
                }
            }
        }
    }
    #[cfg(not(unix))]
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = stop.notified() => {}
    }
}
