//! A bench node's RPC: the library's blocking client (HTTP keep-alive, so polling at
//! millisecond intervals costs no TCP handshake per call), with errors naming the node.

use crate::rpc::client::{BlockingClient, RawParams, RpcConfig, RpcError};
use anyhow::{Context, Result};
use serde_json::Value;

/// Which node and how to reach it (cloned into worker threads, which build their own client).
#[derive(Clone, Debug)]
pub(super) struct RpcTarget {
    pub(super) name: &'static str,
    pub(super) config: RpcConfig,
}

/// A client of one bench node.
pub(super) struct Rpc {
    pub(super) target: RpcTarget,
    client: BlockingClient,
}

impl Rpc {
    /// A client for `target` (reads the node's cookie now).
    pub(super) fn new(target: RpcTarget) -> Result<Rpc> {
        let client = BlockingClient::new(&target.config).with_context(|| format!("node {}", target.name))?;
        Ok(Rpc { target, client })
    }

    /// Runs one call of the client (`rpc.wait(rpc.getblockcount())`); errors name the node.
    pub(super) fn wait<T: Send, E: Into<RpcError> + Send>(
        &self,
        call: impl std::future::Future<Output = Result<T, E>> + Send,
    ) -> Result<T> {
        self.client.wait(call).with_context(|| format!("node {}", self.target.name))
    }

    /// One JSON-RPC batch calling `method` once per positional parameter list; the results
    /// in order, each a value or the node's error.
    pub(super) fn batch<R>(&self, method: &str, params: Vec<Vec<Value>>) -> Result<Vec<Result<R, RpcError>>>
    where
        R: serde::de::DeserializeOwned + std::fmt::Debug + Send,
    {
        let calls = params.into_iter().map(|p| (method, RawParams::Positional(p))).collect();
        self.wait(self.client.batch::<R>(calls)).with_context(|| format!("{method} batch"))
    }
}

impl std::ops::Deref for Rpc {
    type Target = BlockingClient;
    fn deref(&self) -> &BlockingClient {
        &self.client
    }
}
