//! `quarry node`.

use super::{default_threads, NodeArgs, DEFAULT_MAX_PEERS};
use crate::daemon::{run, NodeConfig};
use crate::rpc::server::{ServerLimits, DEFAULT_SERVER_TIMEOUT};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::net::{Ipv4Addr, SocketAddr};

/// `<datadir>/quarry.toml`: every key optional; command-line flags win.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    rpc_bind: Option<SocketAddr>,
    rpc_user: Option<String>,
    rpc_password: Option<String>,
    rpc_server_timeout: Option<u64>,
    mine: Option<bool>,
    miner_address: Option<String>,
    mine_threads: Option<usize>,
    mine_hashrate: Option<f64>,
    strategy: Option<crate::node::MiningStrategy>,
    listen: Option<Vec<String>>,
    p2p_port: Option<u16>,
    bootnodes: Option<Vec<String>>,
    mdns: Option<bool>,
    max_peers: Option<u32>,
    relay: Option<crate::p2p::link::BlockRelay>,
    no_p2p: Option<bool>,
    dbcache: Option<usize>,
    sync_writes: Option<bool>,
    txindex: Option<bool>,
    addressindex: Option<bool>,
}

/// `rpc_bind` from `<datadir>/quarry.toml`, for clients looking for the node.
pub(super) fn config_rpc_bind(datadir: &std::path::Path) -> Result<Option<SocketAddr>> {
    Ok(read_config(&datadir.join("quarry.toml"))?.rpc_bind)
}

fn read_config(path: &std::path::Path) -> Result<ConfigFile> {
    match std::fs::read_to_string(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConfigFile::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        Ok(text) => {
            parse_config(&text).with_context(|| format!("{} is not a valid quarry config", path.display()))
        }
    }
}

/// Parses the text of a `quarry.toml` (every key optional, unknown keys refused).
pub(crate) fn parse_config(text: &str) -> Result<ConfigFile, toml::de::Error> {
    toml::from_str(text)
}

pub(super) fn run_node(args: NodeArgs) -> Result<()> {
    let datadir = args.data.base_dir()?;
    let file = read_config(&datadir.join("quarry.toml"))?;
    let network = args.data.network;
    let rpc_bind = args
        .rpc
        .rpc_bind
        .or(file.rpc_bind)
        .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, network.default_rpc_port())));
    let rpc_user = match (args.rpc.rpc_user.or(file.rpc_user), args.rpc.rpc_password.or(file.rpc_password)) {
        (Some(u), Some(p)) => Some((u, p)),
        (None, None) => None,
        _ => bail!("rpc_user and rpc_password go together (flags or quarry.toml)"),
    };
    let timeout =
        args.rpc.rpc_server_timeout.or(file.rpc_server_timeout).unwrap_or(DEFAULT_SERVER_TIMEOUT.as_secs());
    if timeout == 0 {
        bail!(
            "--rpc-server-timeout 0: pass a number of seconds of at least 1 (default {})",
            DEFAULT_SERVER_TIMEOUT.as_secs()
        );
    }
    let rpc_limits = ServerLimits { timeout: std::time::Duration::from_secs(timeout) };
    let mine = args.mining.mine || file.mine.unwrap_or(false);
    let address = args.mining.miner_address.or(file.miner_address);
    if mine && address.is_none() {
        bail!("--mine needs --miner-address ADDRESS (an address of network {network})");
    }
    let strategy = args.mining.strategy.or(file.strategy).unwrap_or_default();
    if strategy != crate::node::MiningStrategy::Honest && !mine {
        bail!("--strategy {strategy:?} decides what the continuous miner publishes: pass --mine too");
    }
    if let Some(h) = file.mine_hashrate.filter(|h| !(h.is_finite() && *h > 0.0)) {
        bail!("quarry.toml mine_hashrate = {h}: pass a positive number of hashes per second");
    }
    let mine_threads = args.mining.mine_threads.or(file.mine_threads).unwrap_or_else(default_threads).max(1);
    let no_p2p = args.p2p.no_p2p || file.no_p2p.unwrap_or(false);
    let p2p = if no_p2p {
        None
    } else {
        let parse = |list: Option<Vec<String>>, key: &str| -> Result<Vec<libp2p::Multiaddr>> {
            list.unwrap_or_default()
                .iter()
                .map(|a| a.parse().with_context(|| format!("quarry.toml {key}: {a:?} is not a multiaddr")))
                .collect()
        };
        let mut listen = args.p2p.listen.clone();
        if let Some(port) = args.p2p.p2p_port.or(if listen.is_empty() { file.p2p_port } else { None }) {
            listen.push(format!("/ip4/127.0.0.1/tcp/{port}").parse().expect("valid multiaddr"));
        }
        if listen.is_empty() {
            listen = parse(file.listen, "listen")?;
        }
        if listen.is_empty() {
            listen.push(
                format!("/ip4/127.0.0.1/tcp/{}", network.default_p2p_port())
                    .parse()
                    .expect("valid multiaddr"),
            );
        }
        let mut bootnodes = args.p2p.bootnode.clone();
        bootnodes.extend(parse(file.bootnodes, "bootnodes")?);
        Some(crate::p2p::P2pConfig {
            listen,
            bootnodes,
            mdns: args.p2p.mdns || file.mdns.unwrap_or(false),
            max_connections: args.p2p.max_peers.or(file.max_peers).unwrap_or(DEFAULT_MAX_PEERS).max(1),
            key_path: datadir.join("node_key"),
            ban_path: datadir.join("banned.json"),
        })
    };
    let dbcache_mib = args.dbcache.or(file.dbcache).unwrap_or(crate::chain::coins::DEFAULT_DBCACHE_MIB);
    if dbcache_mib == 0 || dbcache_mib > crate::chain::coins::MAX_DBCACHE_MIB {
        bail!(
            "--dbcache {dbcache_mib}: pass a size in MiB from 1 to {} (default {})",
            crate::chain::coins::MAX_DBCACHE_MIB,
            crate::chain::coins::DEFAULT_DBCACHE_MIB
        );
    }
    for (flag, addr) in [("--http", args.observe.http), ("--metrics", args.observe.metrics)] {
        if let Some(a) = addr {
            if !a.ip().is_loopback() && !args.observe.public_http {
                bail!("{flag} {a} is not a loopback address and the endpoint is unauthenticated: use 127.0.0.1, or pass --public-http to serve it there anyway");
            }
        }
    }
    run(NodeConfig {
        network,
        datadir,
        dbcache_mib,
        sync_writes: args.sync_writes || file.sync_writes.unwrap_or(false),
        indexes: crate::store::IndexSet {
            tx: args.txindex.or(file.txindex).unwrap_or(true),
            address: args.addressindex.or(file.addressindex).unwrap_or(true),
        },
        rpc_bind,
        rpc_user,
        rpc_limits,
        min_free_mb: args.min_free_mb,
        mine_to: if mine { address } else { None },
        mine_threads,
        mine_hashrate: args.mining.mine_hashrate.or(file.mine_hashrate),
        strategy,
        p2p,
        relay: args.p2p.relay.or(file.relay).unwrap_or_default(),
        http_bind: args.observe.http,
        metrics_bind: args.observe.metrics,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarry_toml_takes_every_node_flag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quarry.toml");
        std::fs::write(
            &path,
            "rpc_bind = \"127.0.0.1:1\"\nrpc_user = \"u\"\nrpc_password = \"p\"\nrpc_server_timeout = 5\n\
             mine = false\nminer_address = \"x\"\nmine_threads = 1\nmine_hashrate = 1000.0\nstrategy = \"selfish\"\nlisten = []\np2p_port = 2\nbootnodes = []\n\
             mdns = false\nmax_peers = 8\nno_p2p = true\nsync_writes = true\n",
        )
        .unwrap();
        let c = read_config(&path).unwrap();
        assert_eq!((c.p2p_port, c.max_peers, c.no_p2p), (Some(2), Some(8), Some(true)));
        assert_eq!(c.sync_writes, Some(true));
        assert_eq!((c.mine_hashrate, c.strategy), (Some(1000.0), Some(crate::node::MiningStrategy::Selfish)));
        assert_eq!(config_rpc_bind(dir.path()).unwrap(), Some("127.0.0.1:1".parse().unwrap()));
        std::fs::write(&path, "maxpeers = 8\n").unwrap();
        assert!(format!("{:#}", read_config(&path).unwrap_err()).contains("maxpeers"));
    }
}
