//! The JSON-RPC client behind `quarry rpc`: authenticates with the node's cookie (or a given
//! user/password) and calls one method with positional parameters.

use super::cookie;
use anyhow::{Context, Result};
use base64::Engine;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::params::ArrayParams;
use jsonrpsee::http_client::HttpClientBuilder;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// Turns command-line words into JSON parameters: each word that parses as JSON is taken as
/// JSON (numbers, booleans, arrays, objects, quoted strings), anything else as a string, like
/// bitcoin-cli.
pub fn parse_params(words: &[String]) -> Vec<Value> {
    words.iter().map(|w| serde_json::from_str(w).unwrap_or_else(|_| Value::String(w.clone()))).collect()
}

/// Calls `method` on the node at `addr`, authenticating with `user:password` or, when
/// `None`, the cookie in `datadir`.
pub async fn call(
    addr: SocketAddr,
    datadir: &Path,
    user: Option<(String, String)>,
    method: &str,
    params: Vec<Value>,
    timeout: Duration,
) -> Result<Value> {
    let (u, p) = match user {
        Some(up) => up,
        None => cookie::read(datadir)?,
    };
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        format!("Basic {token}").parse().context("building the auth header")?,
    );
    let client = HttpClientBuilder::default()
        .set_headers(headers)
        .request_timeout(timeout)
        .max_response_size(super::server::MAX_RESPONSE_BYTES)
        .build(format!("http://{addr}"))
        .context("building the RPC client")?;
    let mut array = ArrayParams::new();
    for v in params {
        array.insert(v).context("encoding parameters")?;
    }
    match client.request::<Value, _>(method, array).await {
        Ok(v) => Ok(v),
        Err(jsonrpsee::core::ClientError::Call(e)) => {
            let data = e.data().map(|d| format!(" ({})", d.get())).unwrap_or_default();
            Err(RpcCallError { code: e.code(), message: format!("{}{data}", e.message()) }.into())
        }
        Err(e) => {
            Err(anyhow::anyhow!("{e} (is the node at {addr} running? pass --rpc-connect or --network)"))
        }
    }
}

/// An error object returned by the node.
#[derive(Debug, thiserror::Error)]
#[error("error code {code}: {message}")]
pub struct RpcCallError {
    /// JSON-RPC error code.
    pub code: i32,
    /// Message.
    pub message: String,
}
