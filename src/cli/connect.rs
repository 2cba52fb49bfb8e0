//! Finding a node, as bitcoin-cli does: `--rpc-connect` if given, else the address the
//! running node recorded beside its cookie (`<datadir>/.rpcaddr`), else `rpc_bind` in
//! `<datadir>/quarry.toml`, else the network's default port on 127.0.0.1.

use super::DataArgs;
use crate::consensus::Network;
use crate::rpc::client::{BlockingClient, RpcConfig, RpcError};
use anyhow::Result;
use clap::Args;
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How to reach the node's JSON-RPC.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Node connection")]
pub struct ConnectArgs {
    /// Node RPC address: PORT, HOST:PORT (e.g. localhost:19443) or http://HOST:PORT
    /// [default: the address the node recorded in <datadir>/.rpcaddr, else rpc_bind in
    /// <datadir>/quarry.toml, else this network's port on 127.0.0.1].
    #[arg(long, global = true, value_name = "ADDRESS", value_parser = parse_rpc_connect)]
    pub rpc_connect: Option<SocketAddr>,
    /// RPC user instead of the node's cookie.
    #[arg(long, global = true, requires = "rpc_password")]
    pub rpc_user: Option<String>,
    /// Password for --rpc-user.
    #[arg(long, global = true, requires = "rpc_user")]
    pub rpc_password: Option<String>,
}

/// `--rpc-connect`: a bare port (127.0.0.1), `HOST:PORT` (a name is resolved, IPv4 first;
/// `localhost` is 127.0.0.1) or either behind `http://`.
pub fn parse_rpc_connect(s: &str) -> Result<SocketAddr, String> {
    let bare = s.trim();
    let bare = bare.strip_prefix("http://").unwrap_or(bare);
    let bare = bare.strip_suffix('/').unwrap_or(bare);
    if bare.starts_with("https://") {
        return Err("the node speaks plain HTTP: use http://HOST:PORT".into());
    }
    let bad = || {
        format!("{s:?} is not an RPC address: pass PORT, HOST:PORT or http://HOST:PORT, e.g. 127.0.0.1:19443")
    };
    if let Ok(port) = bare.parse::<u16>() {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    if let Ok(a) = bare.parse::<SocketAddr>() {
        return Ok(a);
    }
    let (host, port) = bare.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    let addrs: Vec<SocketAddr> =
        (host, port).to_socket_addrs().map_err(|e| format!("{s:?}: cannot resolve {host:?}: {e}"))?.collect();
    addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()).copied().ok_or_else(bad)
}

/// A node to talk to: where (found again at every call, so a node that starts later is
/// found) and how to authenticate.
#[derive(Clone, Debug)]
pub struct Target {
    /// The node's network.
    pub network: Network,
    /// Its data directory (cookie, address file, quarry.toml).
    pub datadir: PathBuf,
    /// A fixed address (`--rpc-connect`, or a testnet's record).
    pub fixed: Option<SocketAddr>,
    /// `--rpc-user`/`--rpc-password`.
    pub user: Option<(String, String)>,
}

impl Target {
    /// From the data and connection flags.
    pub fn from_args(data: &DataArgs, conn: &ConnectArgs) -> Result<Target> {
        Ok(Target {
            network: data.network,
            datadir: data.base_dir()?,
            fixed: conn.rpc_connect,
            user: conn.rpc_user.clone().zip(conn.rpc_password.clone()),
        })
    }

    /// Where the node is now (see the module doc for the order).
    pub fn addr(&self) -> Result<SocketAddr> {
        if let Some(a) = self.fixed {
            return Ok(a);
        }
        if let Some(a) = crate::rpc::cookie::read_addr(&self.datadir) {
            return Ok(a);
        }
        if let Some(bind) = super::node::config_rpc_bind(&self.datadir)? {
            return Ok(crate::rpc::cookie::connectable(bind));
        }
        Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, self.network.default_rpc_port())))
    }

    /// The client configuration.
    pub fn config(&self, timeout: Duration) -> Result<RpcConfig> {
        Ok(RpcConfig::new(self.addr()?, &self.datadir, self.user.clone()).timeout(timeout))
    }

    /// A client (reads the cookie now).
    pub fn client(&self, timeout: Duration) -> Result<BlockingClient> {
        Ok(BlockingClient::new(&self.config(timeout)?)?)
    }

    /// The data directory.
    pub fn datadir(&self) -> &Path {
        &self.datadir
    }

    /// True for the failures `--wait` waits out with this target: [`is_not_ready`], and with
    /// cookie authentication also a refused or half-written cookie, which is what a client
    /// sees when it read the cookie a crashed node left behind just before the restarted
    /// node wrote its new one.
    pub fn waits_out(&self, e: &RpcError) -> bool {
        is_not_ready(e)
            || (self.user.is_none()
                && matches!(e, RpcError::Unauthorized { .. } | RpcError::MalformedCookie { .. }))
    }
}

/// True for the failures `--wait` waits out: no cookie yet, nothing listening yet, or the
/// node still starting (-28).
pub fn is_not_ready(e: &RpcError) -> bool {
    matches!(e, RpcError::Cookie { .. } | RpcError::Unreachable { .. })
        || e.code() == Some(crate::rpc::codes::IN_WARMUP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_connect_takes_a_port_host_port_and_an_url() {
        let local = |p: u16| SocketAddr::from((Ipv4Addr::LOCALHOST, p));
        assert_eq!(parse_rpc_connect("19443"), Ok(local(19443)));
        assert_eq!(parse_rpc_connect("127.0.0.1:19443"), Ok(local(19443)));
        assert_eq!(parse_rpc_connect("localhost:19443"), Ok(local(19443)));
        assert_eq!(parse_rpc_connect("http://localhost:19443"), Ok(local(19443)));
        assert_eq!(parse_rpc_connect("http://127.0.0.1:19443/"), Ok(local(19443)));
        assert_eq!(parse_rpc_connect("[::1]:5"), Ok("[::1]:5".parse().unwrap()));
        assert!(parse_rpc_connect("localhost").unwrap_err().contains("PORT, HOST:PORT"));
        assert!(parse_rpc_connect("https://localhost:1").unwrap_err().contains("plain HTTP"));
        assert!(parse_rpc_connect("127.0.0.1:99999").is_err());
    }

    #[test]
    fn the_address_comes_from_the_flag_then_the_address_file_then_quarry_toml() {
        let dir = tempfile::tempdir().unwrap();
        let mut t =
            Target { network: Network::Regtest, datadir: dir.path().to_path_buf(), fixed: None, user: None };
        let default = SocketAddr::from((Ipv4Addr::LOCALHOST, Network::Regtest.default_rpc_port()));
        assert_eq!(t.addr().unwrap(), default);
        std::fs::write(dir.path().join("quarry.toml"), "rpc_bind = \"0.0.0.0:18111\"\n").unwrap();
        assert_eq!(t.addr().unwrap(), "127.0.0.1:18111".parse().unwrap());
        crate::rpc::cookie::write_addr(dir.path(), "127.0.0.1:18222".parse().unwrap()).unwrap();
        assert_eq!(t.addr().unwrap(), "127.0.0.1:18222".parse().unwrap());
        t.fixed = Some("127.0.0.1:18333".parse().unwrap());
        assert_eq!(t.addr().unwrap(), "127.0.0.1:18333".parse().unwrap());
        crate::rpc::cookie::remove(dir.path());
        t.fixed = None;
        assert_eq!(t.addr().unwrap(), "127.0.0.1:18111".parse().unwrap());
    }
}
