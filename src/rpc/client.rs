//! The one JSON-RPC client: everything that talks to a node (`quarry rpc`, the wallet, the
//! testnet tools, the benches, the tests) goes through [`RpcClient`].
//!
//! [`RpcClient`] is a jsonrpsee HTTP client (keep-alive, a request timeout, the server's
//! response size limit) with the node's credentials; it implements jsonrpsee's `ClientT`, so
//! every typed method of [`super::api::QuarryApiClient`] is available on it, and it adds a
//! raw call (any method, positional or named parameters) and batches. Transport failures
//! come back as [`RpcError`]s that say what to do: a refused connection asks whether the node
//! is running, a 401 is named as an authentication failure. [`BlockingClient`] is the same
//! client for synchronous callers.

use super::api::QuarryApiClient;
use super::cookie;
use super::types::{BlockHeaderInfo, BlockInfo, GetBlock, GetBlockHeader, GetRawTransaction, TxInfo};
use crate::primitives::Hash256;
use jsonrpsee::core::client::{BatchResponse, ClientT, Error as ClientError};
use jsonrpsee::core::params::{ArrayParams, BatchRequestBuilder, ObjectParams};
use jsonrpsee::core::traits::ToRpcParams;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default time to wait for an answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// What went wrong talking to a node.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The node answered with a JSON-RPC error object.
    #[error("error code {code}: {message}")]
    Call {
        /// JSON-RPC error code (Core's codes, see [`super::codes`]).
        code: i32,
        /// Message, with the error's data appended when there is any.
        message: String,
    },
    /// The cookie file cannot be read.
    #[error("reading the RPC cookie {}: {error} (is the node running with this --datadir and --network?)", path.display())]
    Cookie {
        /// The cookie's path.
        path: PathBuf,
        /// Why (in the message, not a separate cause, so it is not printed twice).
        error: std::io::Error,
    },
    /// The cookie file is not `user:password`.
    #[error("malformed cookie file {}: expected user:password (restart the node to rewrite it)", path.display())]
    MalformedCookie {
        /// The cookie's path.
        path: PathBuf,
    },
    /// HTTP 401.
    #[error(
        "authentication failed at {addr} (HTTP 401): the cookie or --rpc-user/--rpc-password is not the \
         node's (is --datadir/--network the node's? is --rpc-connect the right node?)"
    )]
    Unauthorized {
        /// The node's address.
        addr: SocketAddr,
    },
    /// No connection, or it broke.
    #[error("{detail} (is the node at {addr} running? pass --rpc-connect or --network)")]
    Unreachable {
        /// The node's address.
        addr: SocketAddr,
        /// The transport's error, with its causes.
        detail: String,
    },
    /// Another HTTP status.
    #[error("the node at {addr} answered HTTP {status}")]
    Http {
        /// The node's address.
        addr: SocketAddr,
        /// The status code.
        status: u16,
    },
    /// No answer in time.
    #[error("no answer from the node at {addr} within {} s (pass a longer --timeout)", timeout.as_secs_f64())]
    Timeout {
        /// The node's address.
        addr: SocketAddr,
        /// The timeout.
        timeout: Duration,
    },
    /// The answer is not the JSON the method promises (an older or foreign node?).
    #[error("unexpected answer: {0}")]
    Malformed(String),
    /// The answer has another shape than the one asked for (e.g. a hex string where the
    /// verbose form was requested).
    #[error("{method} answered another shape than {expected}")]
    Shape {
        /// The method.
        method: &'static str,
        /// What was asked for.
        expected: &'static str,
    },
    /// The client could not be built or a request not encoded.
    #[error("RPC client: {0}")]
    Client(String),
    /// The parameters do not fit the method (found before sending, from
    /// [`super::methods::METHODS`]).
    #[error("{method}: {problem} (see `quarry rpc help {method}`)")]
    Params {
        /// The method.
        method: String,
        /// Which parameter, what it expects and what was given.
        problem: String,
    },
}

impl RpcError {
    /// The JSON-RPC error code, when the node answered with an error object.
    pub fn code(&self) -> Option<i32> {
        match self {
            RpcError::Call { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl From<ClientError> for RpcError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Call(e) => {
                let data = e.data().map(|d| format!(" ({})", d.get())).unwrap_or_default();
                RpcError::Call { code: e.code(), message: format!("{}{data}", e.message()) }
            }
            // [`RpcClient`] puts an [`RpcError`] into every transport error it passes on.
            ClientError::Transport(b) => match b.downcast::<RpcError>() {
                Ok(e) => *e,
                Err(b) => RpcError::Client(b.to_string()),
            },
            ClientError::ParseError(e) => RpcError::Malformed(e.to_string()),
            other => RpcError::Client(other.to_string()),
        }
    }
}

/// How to authenticate.
#[derive(Clone, Debug)]
pub enum Auth {
    /// The cookie in this data directory (read when the client is built).
    Cookie(PathBuf),
    /// A configured user and password (`--rpc-user`/`--rpc-password`).
    User {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
}

impl Auth {
    /// `user`, or the cookie in `datadir` when `None`.
    pub fn new(datadir: &Path, user: Option<(String, String)>) -> Auth {
        match user {
            Some((user, password)) => Auth::User { user, password },
            None => Auth::Cookie(datadir.to_path_buf()),
        }
    }
}

/// Where a node's RPC server is and how to talk to it.
#[derive(Clone, Debug)]
pub struct RpcConfig {
    /// The server's address.
    pub addr: SocketAddr,
    /// Credentials.
    pub auth: Auth,
    /// How long to wait for an answer.
    pub timeout: Duration,
}

impl RpcConfig {
    /// The node at `addr`, authenticating with `user` or else the cookie in `datadir`, with
    /// [`DEFAULT_TIMEOUT`].
    pub fn new(addr: SocketAddr, datadir: &Path, user: Option<(String, String)>) -> RpcConfig {
        RpcConfig { addr, auth: Auth::new(datadir, user), timeout: DEFAULT_TIMEOUT }
    }

    /// The same with another timeout.
    pub fn timeout(self, timeout: Duration) -> RpcConfig {
        RpcConfig { timeout, ..self }
    }
}

/// The `Authorization` header value for `user:password`: the one place HTTP basic auth is
/// built.
pub fn basic_auth(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// Parameters of a raw call: positional (`[..]`) or named (`{..}`, bitcoin-cli's `-named`).
#[derive(Clone, Debug, PartialEq)]
pub enum RawParams {
    /// Positional.
    Positional(Vec<Value>),
    /// Named.
    Named(serde_json::Map<String, Value>),
}

impl ToRpcParams for RawParams {
    fn to_rpc_params(self) -> Result<Option<Box<RawValue>>, serde_json::Error> {
        match self {
            RawParams::Positional(values) => {
                let mut a = ArrayParams::new();
                for v in values {
                    a.insert(v)?;
                }
                a.to_rpc_params()
            }
            RawParams::Named(map) => {
                let mut o = ObjectParams::new();
                for (k, v) in map {
                    o.insert(&k, v)?;
                }
                o.to_rpc_params()
            }
        }
    }
}

/// The client. Cheap to clone (connections are shared).
#[derive(Clone, Debug)]
pub struct RpcClient {
    http: HttpClient,
    addr: SocketAddr,
    timeout: Duration,
}

impl RpcClient {
    /// A client for `config` (reads the cookie now). Needs a tokio runtime context.
    pub fn new(config: &RpcConfig) -> Result<RpcClient, RpcError> {
        let (user, password) = match &config.auth {
            Auth::Cookie(datadir) => cookie::read(datadir)?,
            Auth::User { user, password } => (user.clone(), password.clone()),
        };
        let mut headers = http::HeaderMap::new();
        let value = basic_auth(&user, &password)
            .parse()
            .map_err(|_| RpcError::Client("the user name or password is not a valid HTTP header".into()))?;
        headers.insert(http::header::AUTHORIZATION, value);
        let http = HttpClientBuilder::default()
            .set_headers(headers)
            .request_timeout(config.timeout)
            .max_request_size(super::server::MAX_REQUEST_BYTES)
            .max_response_size(super::server::MAX_RESPONSE_BYTES)
            .build(format!("http://{}", config.addr))
            .map_err(|e| RpcError::Client(e.to_string()))?;
        Ok(RpcClient { http, addr: config.addr, timeout: config.timeout })
    }

    /// The node's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Calls any method; the answer as JSON.
    pub async fn call_raw(&self, method: &str, params: RawParams) -> Result<Value, RpcError> {
        Ok(self.request(method, params).await?)
    }

    /// One JSON-RPC batch (one HTTP request); the answers in order, each a result or the
    /// node's error object for that call.
    pub async fn batch<R>(&self, calls: Vec<(&str, RawParams)>) -> Result<Vec<Result<R, RpcError>>, RpcError>
    where
        R: DeserializeOwned + std::fmt::Debug,
    {
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        let mut b = BatchRequestBuilder::new();
        for (method, params) in calls {
            b.insert(method, params).map_err(|e| RpcError::Client(e.to_string()))?;
        }
        let answers: BatchResponse<'_, R> = self.batch_request(b).await?;
        Ok(answers.into_iter().map(|a| a.map_err(|e| ClientError::Call(e.into_owned()).into())).collect())
    }

    /// `getblock` verbosity 1: header fields and txids.
    pub async fn block_txids(&self, hash: &Hash256) -> Result<BlockInfo<Hash256>, RpcError> {
        match self.getblock(hash.to_string(), Some(1.into())).await? {
            GetBlock::Txids(b) => Ok(*b),
            _ => Err(RpcError::Shape { method: "getblock", expected: "verbosity 1 (txids)" }),
        }
    }

    /// `getblock` verbosity 2: header fields and full transactions.
    pub async fn block_full(&self, hash: &Hash256) -> Result<BlockInfo<TxInfo>, RpcError> {
        match self.getblock(hash.to_string(), Some(2.into())).await? {
            GetBlock::Full(b) => Ok(*b),
            _ => Err(RpcError::Shape { method: "getblock", expected: "verbosity 2 (transactions)" }),
        }
    }

    /// `getblock` verbosity 0: the block's bytes.
    pub async fn block_bytes(&self, hash: &Hash256) -> Result<Vec<u8>, RpcError> {
        match self.getblock(hash.to_string(), Some(0.into())).await? {
            GetBlock::Hex(h) => hex_answer(&h, "getblock"),
            _ => Err(RpcError::Shape { method: "getblock", expected: "verbosity 0 (hex)" }),
        }
    }

    /// `getblockheader` verbose.
    pub async fn header_info(&self, hash: &Hash256) -> Result<BlockHeaderInfo, RpcError> {
        match self.getblockheader(hash.to_string(), Some(true)).await? {
            GetBlockHeader::Info(h) => Ok(*h),
            _ => Err(RpcError::Shape { method: "getblockheader", expected: "verbose (JSON)" }),
        }
    }

    /// `getrawtransaction` verbose.
    pub async fn transaction_info(&self, txid: &Hash256) -> Result<TxInfo, RpcError> {
        match self.getrawtransaction(txid.to_string(), Some(true.into())).await? {
            GetRawTransaction::Info(t) => Ok(*t),
            _ => Err(RpcError::Shape { method: "getrawtransaction", expected: "verbose (JSON)" }),
        }
    }

    /// Puts an [`RpcError`] that explains itself into a transport error (see the
    /// `From<ClientError>` impl, which takes it out again).
    fn explain(&self, e: ClientError) -> ClientError {
        let addr = self.addr;
        let explained = match e {
            ClientError::RequestTimeout => RpcError::Timeout { addr, timeout: self.timeout },
            ClientError::Transport(b) => match b.downcast_ref::<jsonrpsee::http_client::transport::Error>() {
                Some(jsonrpsee::http_client::transport::Error::Rejected { status_code: 401 }) => {
                    RpcError::Unauthorized { addr }
                }
                Some(jsonrpsee::http_client::transport::Error::Rejected { status_code }) => {
                    RpcError::Http { addr, status: *status_code }
                }
                _ => RpcError::Unreachable { addr, detail: error_chain(b.as_ref()) },
            },
            other => return other,
        };
        ClientError::Transport(Box::new(explained))
    }
}

/// Hex from a node's answer as bytes.
pub fn hex_answer(h: &str, method: &str) -> Result<Vec<u8>, RpcError> {
    hex::decode(h).map_err(|e| RpcError::Malformed(format!("{method}: not hex: {e}")))
}

/// An error and its causes, `a: b: c`.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cause = c.source();
    }
    out
}

#[jsonrpsee::core::async_trait]
impl ClientT for RpcClient {
    async fn notification<Params>(&self, method: &str, params: Params) -> Result<(), ClientError>
    where
        Params: ToRpcParams + Send,
    {
        self.http.notification(method, params).await.map_err(|e| self.explain(e))
    }

    async fn request<R, Params>(&self, method: &str, params: Params) -> Result<R, ClientError>
    where
        R: DeserializeOwned,
        Params: ToRpcParams + Send,
    {
        self.http.request(method, params).await.map_err(|e| self.explain(e))
    }

    async fn batch_request<'a, R>(
        &self,
        batch: BatchRequestBuilder<'a>,
    ) -> Result<BatchResponse<'a, R>, ClientError>
    where
        R: DeserializeOwned + std::fmt::Debug + 'a,
    {
        self.http.batch_request(batch).await.map_err(|e| self.explain(e))
    }
}

/// [`RpcClient`] for synchronous code (the wallet CLI, the testnet tools, benches, tests):
/// it owns a single-threaded tokio runtime and runs each call to completion on it.
/// Dereferences to the client, so `rpc.wait(rpc.getblockcount())`.
pub struct BlockingClient {
    client: RpcClient,
    /// Always `Some` until dropped.
    runtime: Option<tokio::runtime::Runtime>,
}

impl BlockingClient {
    /// A client for `config` (reads the cookie now).
    pub fn new(config: &RpcConfig) -> Result<BlockingClient, RpcError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RpcError::Client(format!("starting the RPC runtime: {e}")))?;
        let client = {
            let _guard = runtime.enter();
            RpcClient::new(config)?
        };
        Ok(BlockingClient { client, runtime: Some(runtime) })
    }

    /// Runs one call (any future of the client: a typed method, [`RpcClient::call_raw`],
    /// [`RpcClient::batch`], ...) to completion. Called from inside an async context (a test
    /// driving a libp2p swarm in `block_on`, say), it runs the call on a helper thread, since
    /// one thread cannot block on two runtimes.
    pub fn wait<T, E>(
        &self,
        call: impl std::future::Future<Output = Result<T, E>> + Send,
    ) -> Result<T, RpcError>
    where
        T: Send,
        E: Into<RpcError> + Send,
    {
        let Some(runtime) = &self.runtime else { unreachable!("the runtime lives until drop") };
        let run = || runtime.block_on(call);
        let out = if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|s| s.spawn(run).join())
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        } else {
            run()
        };
        out.map_err(Into::into)
    }
}

impl Drop for BlockingClient {
    /// Without waiting for the runtime's idle connection tasks, which also makes dropping the
    /// client inside an async context legal.
    fn drop(&mut self) {
        if let Some(r) = self.runtime.take() {
            r.shutdown_background();
        }
    }
}

impl std::ops::Deref for BlockingClient {
    type Target = RpcClient;
    fn deref(&self) -> &RpcClient {
        &self.client
    }
}
