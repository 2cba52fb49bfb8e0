//! `quarry node`: wires the chainstate, mempool, miner and JSON-RPC server together, and
//! shuts them down cleanly on SIGINT, SIGTERM or the `stop` RPC (miner stopped, mempool saved,
//! RocksDB closed, exit 0).

pub mod core;
mod net;

use crate::chain::Chain;
use crate::consensus::Network;
use crate::mempool::MempoolConfig;
use crate::primitives::Address;
use crate::rpc::server::{start_server, RpcAuth};
use crate::script::templates::address_lock;
use anyhow::{bail, Context, Result};
use std::net::SocketAddr;
use std::path::PathBuf;
use tracing::info;

pub use self::core::{Core, CoreError, NodeHandle};

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
    /// Mine continuously, paying this address.
    pub mine_to: Option<String>,
    /// Miner threads (also used by generatetoaddress).
    pub mine_threads: usize,
    /// Peer-to-peer settings (None: no networking).
    pub p2p: Option<crate::p2p::P2pConfig>,
}

/// Runs the node until it is asked to stop.
pub fn run(config: NodeConfig) -> Result<()> {
    std::fs::create_dir_all(&config.datadir)
        .with_context(|| format!("creating the data directory {}", config.datadir.display()))?;
    let params = config.network.params();
    let mining = match &config.mine_to {
        None => None,
        Some(a) => {
            let addr = Address::decode(a, config.network.address_hrp())
                .map_err(|e| anyhow::anyhow!("--miner-address {a}: {e}"))?;
            Some(core::MiningConfig { lock: address_lock(&addr), threads: config.mine_threads })
        }
    };
    let chain_dir = config.datadir.join("chainstate");
    let chain = Chain::open(&chain_dir, params).with_context(|| {
        format!("opening the chainstate at {} (is another node using this --datadir?)", chain_dir.display())
    })?;
    let tip = chain.tip();
    info!(target: "node", network = %config.network, height = tip.height, tip = %tip.hash, "chainstate opened");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("quarry-rt")
        .build()
        .context("starting the async runtime")?;
    let life = core::Lifecycle::default();
    let (net_handle, net_rx) = crate::p2p::P2pHandle::channel();
    let net = config.p2p.clone().map(|p| (p, net_rx));
    // The swarm is built and bound before anything else starts, so a port in use fails fast.
    let swarm = match &net {
        None => None,
        Some((p2p, _)) => {
            let key = crate::p2p::behaviour::load_or_create_key(&p2p.key_path).map_err(anyhow::Error::msg)?;
            let settings = crate::p2p::behaviour::SwarmSettings {
                network: config.network,
                max_connections: p2p.max_connections,
                mdns: p2p.mdns,
            };
            let _guard = runtime.enter(); // the transport registers sockets with the runtime
            let mut swarm = crate::p2p::behaviour::build_swarm(key, &settings).map_err(anyhow::Error::msg)?;
            crate::p2p::behaviour::listen(&mut swarm, &p2p.listen).map_err(anyhow::Error::msg)?;
            info!(target: "p2p", peer = %swarm.local_peer_id(), "node key loaded");
            Some((swarm, settings))
        }
    };
    let (handle, core_thread) = core::start(
        chain,
        config.network,
        config.datadir.clone(),
        mining,
        config.mine_threads,
        MempoolConfig::default(),
        life.clone(),
        net.is_some().then(|| net_handle.clone()),
    );
    let net_stop = std::sync::Arc::new(tokio::sync::Notify::new());
    let net_task = match (swarm, net) {
        (Some((swarm, settings)), Some((p2p, rx))) => Some(runtime.spawn(crate::p2p::service::run(
            swarm,
            settings,
            p2p,
            handle.clone(),
            rx,
            net_stop.clone(),
        ))),
        _ => None,
    };

    let result = runtime.block_on(async {
        let cookie = match crate::rpc::cookie::write(&config.datadir) {
            Ok(c) => c,
            Err(e) => {
                life.shutdown.store(true, std::sync::atomic::Ordering::SeqCst);
                return Err(e);
            }
        };
        let stop = life.stop.clone();
        let auth = RpcAuth { cookie: cookie.clone(), user: config.rpc_user.clone() };
        let rpc_net = config.p2p.is_some().then(|| net_handle.clone());
        let server = match start_server(config.rpc_bind, auth, handle.clone(), rpc_net, stop.clone()).await {
            Ok(s) => s,
            Err(e) => {
                crate::rpc::cookie::remove(&config.datadir);
                life.shutdown.store(true, std::sync::atomic::Ordering::SeqCst);
                bail!("cannot listen for JSON-RPC on {}: {e} (address in use? pass --rpc-bind)", config.rpc_bind);
            }
        };
        info!(target: "rpc", addr = %config.rpc_bind, "JSON-RPC listening (cookie auth: {})", crate::rpc::cookie::path(&config.datadir).display());
        println!("quarry node running: network {}, RPC {}", config.network, config.rpc_bind);
        wait_for_shutdown(&stop).await;
        info!(target: "node", "shutting down");
        // First the flag: a long job (generatetoaddress) returns, queued jobs are skipped.
        life.shutdown.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = server.stop();
        server.stopped().await;
        net_stop.notify_one();
        if let Some(task) = net_task {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(3), task).await;
        }
        crate::rpc::cookie::remove(&config.datadir);
        Ok(())
    });
    drop(handle);
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    let joined = core_thread.join();
    if joined.is_err() || life.crashed.load(std::sync::atomic::Ordering::SeqCst) {
        bail!("the node core stopped after an internal error (see the log above); the chainstate is consistent, restart the node");
    }
    info!(target: "node", "stopped");
    result
}

async fn wait_for_shutdown(stop: &tokio::sync::Notify) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            _ = stop.notified() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = stop.notified() => {}
    }
}
