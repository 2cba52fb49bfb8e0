//! The wallet's only link to a node: blocking JSON-RPC calls through [`crate::rpc::client`].

use anyhow::{Context, Result};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A node's RPC endpoint and credentials.
pub struct NodeRpc {
    addr: SocketAddr,
    datadir: PathBuf,
    user: Option<(String, String)>,
    runtime: tokio::runtime::Runtime,
}

impl NodeRpc {
    /// An endpoint authenticating with `user`, or with the cookie in `datadir`.
    pub fn new(addr: SocketAddr, datadir: PathBuf, user: Option<(String, String)>) -> Result<NodeRpc> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the RPC client")?;
        Ok(NodeRpc { addr, datadir, user, runtime })
    }

    /// Calls `method` with positional `params`.
    pub fn call(&self, method: &str, params: Vec<Value>) -> Result<Value> {
        self.runtime.block_on(crate::rpc::client::call(
            self.addr,
            &self.datadir,
            self.user.clone(),
            method,
            params,
            Duration::from_secs(120),
        ))
    }
}
