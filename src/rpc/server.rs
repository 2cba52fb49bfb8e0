//! The HTTP server: our own accept loop and HTTP/1.1 connections (hyper) around jsonrpsee's
//! service, so that every resource a client can hold is bounded: connections (a cap, idle and
//! header timeouts), request bodies (a size limit, a deadline, a byte budget across
//! connections, read before a request takes one of the in-flight slots), and authentication
//! before any body is read.

use super::api::QuarryApiServer;
use super::cookie::COOKIE_USER;
use super::service::RpcService;
use crate::node::NodeHandle;
use http_body_util::BodyExt;
use hyper::body::Bytes;
use jsonrpsee::server::{stop_channel, HttpBody, Methods, Server, ServerHandle, StopHandle};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower_http::validate_request::{ValidateRequest, ValidateRequestHeaderLayer};
use tracing::{debug, warn};

/// Largest request body (a 4 MB block as hex is 8 MB).
pub const MAX_REQUEST_BYTES: u32 = 16 << 20;
/// Largest response body (getblock verbosity 2 of a full block).
pub const MAX_RESPONSE_BYTES: u32 = 64 << 20;
/// Connections open at once, well below the usual 1,024 open-file limit, beside RocksDB's
/// 256 files and the peers. At the cap a new connection closes one that has been silent
/// since it connected for [`SILENT_GRACE`] or idle between requests for [`IDLE_GRACE`];
/// if there is none, it waits (accepted, unread) until one closes, and the connection open
/// the longest is asked to close after its next answer (`Connection: close`), so a client
/// is never cut off between its request and its answer.
pub const MAX_CONNECTIONS: usize = 128;
/// Requests being executed at once (their bodies already read); more wait their turn, in
/// order, for up to `--rpc-server-timeout`, then get HTTP 503.
pub const MAX_IN_FLIGHT: usize = 64;
/// At the connection cap, a connection that has sent nothing since it connected for this
/// long may be closed to make room.
pub const SILENT_GRACE: Duration = Duration::from_millis(250);
/// At the connection cap, a kept-alive connection idle between requests for this long may
/// be closed to make room (shorter pauses are a client between two calls: closing then
/// would race its next request).
pub const IDLE_GRACE: Duration = Duration::from_secs(2);
/// How often a connection waiting at the cap checks whether an open one has become idle
/// enough to close.
const CAP_RECHECK: Duration = Duration::from_millis(50);
/// Request-body bytes buffered at once across all connections; a body that would go past it
/// is answered 503.
pub const BODY_BUDGET_BYTES: usize = 256 << 20;
/// Default of `--rpc-server-timeout` (bitcoind's `-rpcservertimeout` is 30 s too).
pub const DEFAULT_SERVER_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after an accept error that is not the client's (EMFILE and the like), so a full
/// file table does not spin a worker at 100%.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Length of the listening socket's accept queue (the kernel caps it at
/// `net.core.somaxconn`, 4,096 by default since Linux 5.4).
const ACCEPT_QUEUE: u32 = 4096;
/// At most one warning per this interval for accept errors.
const WARN_EVERY: Duration = Duration::from_secs(10);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Credentials the server accepts.
#[derive(Clone, Debug)]
pub struct RpcAuth {
    /// The cookie password (user `__cookie__`).
    pub cookie: String,
    /// Optional configured user and password.
    pub user: Option<(String, String)>,
}

#[derive(Clone)]
struct AuthCheck {
    accepted: Arc<Vec<String>>,
}

/// Compares without an early exit on the first differing byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl<B> ValidateRequest<B> for AuthCheck {
    type ResponseBody = HttpBody;

    fn validate(&mut self, request: &mut http::Request<B>) -> Result<(), http::Response<HttpBody>> {
        let given =
            request.headers().get(http::header::AUTHORIZATION).map(|v| v.as_bytes()).unwrap_or_default();
        if self.accepted.iter().any(|a| same(a.as_bytes(), given)) {
            return Ok(());
        }
        Err(http::Response::builder()
            .status(http::StatusCode::UNAUTHORIZED)
            .header(http::header::WWW_AUTHENTICATE, "Basic realm=\"quarry\"")
            .body(HttpBody::from(
                "401 unauthorized: authenticate with the cookie in <datadir>/.cookie (user __cookie__) \
                 or the configured --rpc-user/--rpc-password",
            ))
            .expect("static response"))
    }
}

/// Server settings a user may change.
#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    /// How long a connection may stay silent (before its first request or between
    /// keep-alive requests) or take to send a request's headers, and how long a request may
    /// take to send its body (`--rpc-server-timeout`).
    pub timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits { timeout: DEFAULT_SERVER_TIMEOUT }
    }
}

/// Starts the server on `bind` with every method registered. `stop` is notified by the
/// `stop` method. [`ServerHandle::stopped`] resolves when every connection has closed
/// (in-flight requests answered).
pub async fn start_server(
    bind: SocketAddr,
    auth: RpcAuth,
    limits: ServerLimits,
    node: NodeHandle,
    net: Option<crate::p2p::P2pHandle>,
    stop: Arc<tokio::sync::Notify>,
) -> std::io::Result<ServerHandle> {
    let mut accepted = vec![super::client::basic_auth(COOKIE_USER, &auth.cookie)];
    if let Some((u, p)) = &auth.user {
        accepted.push(super::client::basic_auth(u, p));
    }
    let budget = Arc::new(Budget { used: AtomicUsize::new(0), limit: BODY_BUDGET_BYTES });
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    // Outermost first: authenticate from the headers, then read the body (bounded), and only
    // then enter jsonrpsee, whose in-flight slot is held while the method runs.
    let middleware = tower::ServiceBuilder::new()
        .layer(ValidateRequestHeaderLayer::custom(AuthCheck { accepted: Arc::new(accepted) }))
        .layer(tower::layer::layer_fn(move |inner| ReadBody {
            inner,
            budget: budget.clone(),
            in_flight: in_flight.clone(),
            deadline: limits.timeout,
        }));
    let methods: Methods = RpcService { node, net, stop }.into_rpc().into();
    // Metrics label calls by registered name only, so a client cannot grow the registry.
    let known: Arc<std::collections::HashSet<&'static str>> = Arc::new(methods.method_names().collect());
    // Timed outermost, so calls refused by the parameter check are counted too.
    let rpc_middleware = jsonrpsee::server::RpcServiceBuilder::new()
        .layer_fn(move |inner| Timed { inner, known: known.clone() })
        .layer_fn(|inner| super::methods::ParamCheck { inner });
    let services = Server::builder()
        .set_rpc_middleware(rpc_middleware)
        .max_request_body_size(MAX_REQUEST_BYTES)
        .max_response_body_size(MAX_RESPONSE_BYTES)
        // Our own in-flight limit (in ReadBody) queues requests; jsonrpsee's would answer 429.
        // HTTP/1.1 serves one request per connection at a time, so this one never binds.
        .max_connections(MAX_CONNECTIONS as u32)
        .set_http_middleware(middleware)
        .http_only()
        .to_service_builder();
    let listener = listen(bind)?;
    let (stop_handle, server_handle) = stop_channel();
    tokio::spawn(async move {
        let conns = Arc::new(Connections::default());
        let stopped = stop_handle.clone().shutdown();
        tokio::pin!(stopped);
        let mut last_warning: Option<Instant> = None;
        let mut should_warn = move || {
            let now = Instant::now();
            let due = last_warning.map_or(true, |t| now.duration_since(t) >= WARN_EVERY);
            if due {
                last_warning = Some(now);
            }
            due
        };
        loop {
            let accepted = tokio::select! {
                r = listener.accept() => r,
                _ = &mut stopped => break,
            };
            match accepted {
                Ok((socket, peer)) => {
                    // At the cap the connection waits here, accepted but unread (the client
                    // sees a slow answer, not an error), until a slot frees or an open
                    // connection has been idle long enough to close.
                    let mut waited = false;
                    let admitted = loop {
                        if let Some(admitted) = conns.admit() {
                            break Some(admitted);
                        }
                        if !waited {
                            debug!(target: "rpc", %peer, limit = MAX_CONNECTIONS, "RPC connection waits: {MAX_CONNECTIONS} connections are open (the limit)");
                        }
                        waited = true;
                        tokio::select! {
                            _ = conns.freed.notified() => {}
                            _ = tokio::time::sleep(CAP_RECHECK) => {}
                            _ = &mut stopped => break None,
                        }
                    };
                    let Some((id, conn)) = admitted else { break };
                    let service = services.clone().build(methods.clone(), stop_handle.clone());
                    tokio::spawn(serve(
                        socket,
                        service,
                        stop_handle.clone(),
                        limits,
                        conns.clone(),
                        id,
                        conn,
                    ));
                }
                // The client's failure, not ours: the next accept may succeed at once.
                Err(e) if is_connection_error(&e) => debug!(target: "rpc", error = %e, "accept"),
                Err(e) => {
                    if should_warn() {
                        warn!(target: "rpc", error = %e, "cannot accept RPC connections (too many open files? raise `ulimit -n`); retrying");
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    });
    Ok(server_handle)
}

/// RPC middleware: counts each call and its latency by method (`quarry_rpc_*`).
#[derive(Clone)]
struct Timed<S> {
    inner: S,
    known: Arc<std::collections::HashSet<&'static str>>,
}

impl<'a, S> jsonrpsee::server::middleware::rpc::RpcServiceT<'a> for Timed<S>
where
    S: jsonrpsee::server::middleware::rpc::RpcServiceT<'a> + Send + Sync,
    S::Future: 'a,
{
    type Future = Pin<Box<dyn std::future::Future<Output = jsonrpsee::MethodResponse> + Send + 'a>>;

    fn call(&self, request: jsonrpsee::types::Request<'a>) -> Self::Future {
        let method = self.known.get(request.method_name()).copied().unwrap_or("other");
        let started = Instant::now();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await;
            crate::metrics::rpc_call(method, response.is_success(), started.elapsed());
            response
        })
    }
}

/// The listening socket, with a long accept queue: connections past the cap wait in it, and
/// a burst of connections that overflows it would be dropped by the kernel unseen (with SYN
/// cookies the client even believes it is connected).
fn listen(bind: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket =
        if bind.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    // As std and mio do: a restarted node can bind again while old connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(bind)?;
    socket.listen(ACCEPT_QUEUE)
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(e.kind(), K::ConnectionRefused | K::ConnectionAborted | K::ConnectionReset | K::Interrupted)
}

/// One open connection, as the accept loop sees it.
struct Conn {
    /// When it was accepted.
    opened: Instant,
    /// Requests being served (read, executed, answered); HTTP/1.1 serves one at a time.
    busy: AtomicUsize,
    /// Requests answered so far.
    served: AtomicUsize,
    /// Since when no request has been served (the connection's start, or its last answer).
    idle_since: std::sync::Mutex<Instant>,
    /// Asked to close after its next answer, to make room at the cap.
    retire: AtomicBool,
    /// Asks the connection to close (it was evicted while idle).
    close: tokio::sync::Notify,
}

impl Conn {
    fn is_idle(&self) -> bool {
        self.busy.load(Ordering::SeqCst) == 0
    }

    fn idle_since(&self) -> Instant {
        *self.idle_since.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// May be closed now to make room: idle, and silent past [`SILENT_GRACE`] (no request
    /// yet) or past [`IDLE_GRACE`] (between keep-alive requests).
    fn evictable(&self, now: Instant) -> bool {
        let grace = if self.served.load(Ordering::SeqCst) == 0 { SILENT_GRACE } else { IDLE_GRACE };
        self.is_idle() && now.saturating_duration_since(self.idle_since()) >= grace
    }
}

/// The open connections, at most [`MAX_CONNECTIONS`].
#[derive(Default)]
struct Connections {
    open: std::sync::Mutex<(u64, std::collections::HashMap<u64, Arc<Conn>>)>,
    /// Notified whenever a connection closes (a waiting one may take its slot).
    freed: tokio::sync::Notify,
}

impl Connections {
    /// Registers a new connection. At the cap, a connection idle long enough
    /// ([`Conn::evictable`]; silent ones first, then the one idle the longest) is closed to
    /// make room, so silent connections cannot lock clients out. If none is, `None`: the
    /// caller waits, and the connection open the longest is asked to close after its next
    /// answer, so busy clients take turns instead of one being cut off mid-call.
    fn admit(&self) -> Option<(u64, Arc<Conn>)> {
        let mut guard = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let (next, open) = &mut *guard;
        if open.len() >= MAX_CONNECTIONS {
            let now = Instant::now();
            let victim = open
                .iter()
                .filter(|(_, c)| c.evictable(now))
                .min_by_key(|(_, c)| (c.served.load(Ordering::SeqCst) > 0, c.idle_since()))
                .map(|(id, _)| *id);
            match victim.and_then(|v| open.remove(&v).map(|c| (v, c))) {
                Some((id, c)) => {
                    debug!(target: "rpc", conn = id, "closing an idle RPC connection to admit a new one");
                    c.close.notify_one();
                }
                None => {
                    if !open.values().any(|c| c.retire.load(Ordering::SeqCst)) {
                        if let Some(c) = open.values().min_by_key(|c| c.opened) {
                            c.retire.store(true, Ordering::SeqCst);
                        }
                    }
                    return None;
                }
            }
        }
        let now = Instant::now();
        let conn = Arc::new(Conn {
            opened: now,
            busy: AtomicUsize::new(0),
            served: AtomicUsize::new(0),
            idle_since: std::sync::Mutex::new(now),
            retire: AtomicBool::new(false),
            close: tokio::sync::Notify::new(),
        });
        *next += 1;
        open.insert(*next, conn.clone());
        Some((*next, conn))
    }

    fn remove(&self, id: u64) {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).1.remove(&id);
        self.freed.notify_one();
    }
}

/// Marks its connection busy from a request's start to its answer.
struct Busy(Arc<Conn>);

impl Busy {
    fn start(conn: &Arc<Conn>) -> Busy {
        conn.busy.fetch_add(1, Ordering::SeqCst);
        Busy(conn.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        *self.0.idle_since.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.0.served.fetch_add(1, Ordering::SeqCst);
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The hyper service of one connection: jsonrpsee's, with the connection marked busy while
/// a request is served, and `Connection: close` on the answer once it is asked to retire.
struct Tracked<S> {
    inner: S,
    conn: Arc<Conn>,
}

impl<S, R, B> hyper::service::Service<R> for Tracked<S>
where
    S: hyper::service::Service<R, Response = http::Response<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn call(&self, request: R) -> Self::Future {
        let busy = Busy::start(&self.conn);
        let answer = self.inner.call(request);
        let conn = self.conn.clone();
        Box::pin(async move {
            let mut response = answer.await;
            if conn.retire.load(Ordering::SeqCst) {
                if let Ok(r) = &mut response {
                    // hyper closes the connection once this answer is written.
                    r.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
                }
            }
            drop(busy);
            response
        })
    }
}

/// Serves one connection over HTTP/1.1 until the client closes it, it stays silent past the
/// timeout, it is evicted while idle, or the server stops (an idle connection closes at once,
/// a request in progress is answered first).
async fn serve<S>(
    socket: tokio::net::TcpStream,
    service: S,
    stop: StopHandle,
    limits: ServerLimits,
    conns: Arc<Connections>,
    id: u64,
    conn: Arc<Conn>,
) where
    S: tower::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<HttpBody>,
            Error = BoxError,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let _ = socket.set_nodelay(true);
    let mut http = hyper::server::conn::http1::Builder::new();
    // hyper restarts the header timer whenever it waits for a request head: on a new
    // connection and between keep-alive requests, so it bounds silent connections too.
    http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(limits.timeout).keep_alive(true);
    let service =
        Tracked { inner: hyper_util::service::TowerToHyperService::new(service), conn: conn.clone() };
    let http_conn = http.serve_connection(hyper_util::rt::TokioIo::new(socket), service);
    tokio::pin!(http_conn);
    let stopped = stop.shutdown();
    tokio::pin!(stopped);
    let result = tokio::select! {
        r = http_conn.as_mut() => Some(r),
        _ = conn.close.notified() => None,
        _ = &mut stopped => None,
    };
    let result = match result {
        Some(r) => r,
        // Evicted or stopping: drop an idle connection, finish a request in progress.
        None if conn.is_idle() => Ok(()),
        None => {
            http_conn.as_mut().graceful_shutdown();
            http_conn.await
        }
    };
    if let Err(e) = result {
        debug!(target: "rpc", error = %e, "RPC connection closed");
    }
    conns.remove(id);
}

/// Request-body bytes buffered across connections.
struct Budget {
    used: AtomicUsize,
    limit: usize,
}

/// Bytes of a [`Budget`] held by one request until it is answered.
struct Held {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Held {
    /// Takes `n` more bytes, or answers how many are in use by all requests.
    fn take(&mut self, n: usize) -> Result<(), usize> {
        let before = self.budget.used.fetch_add(n, Ordering::SeqCst);
        if before + n > self.budget.limit {
            self.budget.used.fetch_sub(n, Ordering::SeqCst);
            return Err(before);
        }
        self.bytes += n;
        Ok(())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

/// Why a request body was not read to the end: an HTTP answer, not an error of this module.
#[derive(Debug)]
enum BodyRefusal {
    TooLarge { got: u64, limit: u32 },
    Timeout { secs: u64 },
    Busy { in_use: usize, limit: usize },
    Queued { secs: u64 },
    Read(String),
}

impl BodyRefusal {
    fn message(&self) -> String {
        match self {
            BodyRefusal::TooLarge { got, limit } => {
                format!("413 request body too large: {got} bytes or more, the limit is {limit} bytes")
            }
            BodyRefusal::Timeout { secs } => {
                format!("408 request body not received within {secs} s (--rpc-server-timeout)")
            }
            BodyRefusal::Busy { in_use, limit } => format!(
                "503 server busy: {in_use} bytes of request bodies are being read, the limit is {limit} bytes; retry"
            ),
            BodyRefusal::Queued { secs } => format!(
                "503 server busy: {MAX_IN_FLIGHT} requests were being executed for all of {secs} s (--rpc-server-timeout); retry"
            ),
            BodyRefusal::Read(e) => format!("400 cannot read the request body: {e}"),
        }
    }

    fn response(&self) -> http::Response<HttpBody> {
        let status = match self {
            BodyRefusal::TooLarge { .. } => http::StatusCode::PAYLOAD_TOO_LARGE,
            BodyRefusal::Timeout { .. } => http::StatusCode::REQUEST_TIMEOUT,
            BodyRefusal::Busy { .. } | BodyRefusal::Queued { .. } => http::StatusCode::SERVICE_UNAVAILABLE,
            BodyRefusal::Read(_) => http::StatusCode::BAD_REQUEST,
        };
        http::Response::builder()
            .status(status)
            // The rest of the body is never read: the connection cannot carry another request.
            .header(http::header::CONNECTION, "close")
            .header(http::header::CONTENT_TYPE, "text/plain")
            .body(HttpBody::from(format!("{}\n", self.message())))
            .expect("static response")
    }
}

/// Reads `body` to the end: at most `limit` bytes, each taken from the budget.
async fn read_body<B>(
    headers: &http::HeaderMap,
    body: B,
    limit: u32,
    held: &mut Held,
) -> Result<Vec<u8>, BodyRefusal>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared.filter(|&len| len > u64::from(limit)) {
        return Err(BodyRefusal::TooLarge { got: len, limit });
    }
    let mut body = std::pin::pin!(body);
    let mut data = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyRefusal::Read(e.to_string()))?;
        let Ok(chunk) = frame.into_data() else { continue };
        let got = data.len() + chunk.len();
        if got > limit as usize {
            return Err(BodyRefusal::TooLarge { got: got as u64, limit });
        }
        held.take(chunk.len()).map_err(|in_use| BodyRefusal::Busy { in_use, limit: held.budget.limit })?;
        data.extend_from_slice(&chunk);
    }
    Ok(data)
}

/// Tower middleware that reads the whole request body, within [`MAX_REQUEST_BYTES`], the
/// deadline and the byte budget, before the request reaches jsonrpsee. jsonrpsee takes its
/// in-flight slot before reading the body and reads it with no deadline, so without this
/// 64 clients that send headers and then stall hold every slot (everyone else gets 429), and
/// a chunked body over the limit is answered 500.
#[derive(Clone)]
struct ReadBody<S> {
    inner: S,
    budget: Arc<Budget>,
    in_flight: Arc<tokio::sync::Semaphore>,
    deadline: Duration,
}

impl<S, B> tower::Service<http::Request<B>> for ReadBody<S>
where
    S: tower::Service<http::Request<HttpBody>, Response = http::Response<HttpBody>, Error = BoxError>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Display,
{
    type Response = http::Response<HttpBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The clone that was polled ready serves this request (tower's clone-and-swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let budget = self.budget.clone();
        let in_flight = self.in_flight.clone();
        let deadline = self.deadline;
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let mut held = Held { budget, bytes: 0 };
            let read =
                tokio::time::timeout(deadline, read_body(&parts.headers, body, MAX_REQUEST_BYTES, &mut held));
            let data = match read.await {
                Ok(Ok(data)) => data,
                Ok(Err(refusal)) => return Ok(refusal.response()),
                Err(_) => return Ok(BodyRefusal::Timeout { secs: deadline.as_secs() }.response()),
            };
            // Wait for an execution slot, in arrival order (tokio's semaphore is fair).
            let slot = match tokio::time::timeout(deadline, in_flight.acquire_owned()).await {
                Ok(Ok(slot)) => slot,
                _ => return Ok(BodyRefusal::Queued { secs: deadline.as_secs() }.response()),
            };
            let response = inner.call(http::Request::from_parts(parts, HttpBody::from(data))).await;
            drop(slot);
            drop(held);
            response
        })
    }
}
