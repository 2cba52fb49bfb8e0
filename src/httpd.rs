//! A small bounded HTTP/1.1 server for read-only GET endpoints: the node's HTTP API
//! (`--http`), the metrics endpoint (`--metrics`) and the explorer's web UI. Every resource a
//! client can hold is bounded: connections (a cap; one over it is answered 503 and closed),
//! the time to send a request's head, the head's size (hyper's buffer), and request bodies,
//! which are never read. Handlers get a parsed path and query and return a [`Response`]; a
//! streaming response (Server-Sent Events) is a bounded channel of chunks.

use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify, Semaphore};
use tracing::debug;

/// Connections open at once per server.
pub const MAX_CONNECTIONS: usize = 64;
/// Time a client has to send a request head (also the keep-alive idle limit).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest path plus query accepted (longer: 414).
pub const MAX_TARGET_BYTES: usize = 2048;

/// Errors starting a server.
#[derive(Debug, thiserror::Error)]
pub enum HttpdError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source} (address in use? pass another port)")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// A request as handlers see it.
#[derive(Clone, Debug)]
pub struct Request {
    /// The method (only GET and HEAD reach handlers).
    pub method: http::Method,
    /// The path, percent-decoding not applied (every parameter we accept is hex, digits or
    /// bech32).
    pub path: String,
    /// Query parameters (`a=b&c`), the last one of a name wins.
    pub query: BTreeMap<String, String>,
}

impl Request {
    /// Path segments after `prefix` (`/api/block/x/txs` with `/api/` -> `["block","x","txs"]`).
    pub fn segments<'a>(&'a self, prefix: &str) -> Option<Vec<&'a str>> {
        let rest = self.path.strip_prefix(prefix)?;
        Some(rest.split('/').filter(|s| !s.is_empty()).collect())
    }
}

/// A response body.
pub enum Body {
    /// All at once.
    Full(Bytes),
    /// Chunks from a bounded channel until the sender drops (SSE).
    Stream(mpsc::Receiver<Bytes>),
}

/// A response.
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Content-Type.
    pub content_type: &'static str,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// Body.
    pub body: Body,
}

impl Response {
    /// 200 with a JSON body.
    pub fn json<T: serde::Serialize>(value: &T) -> Response {
        match serde_json::to_vec(value) {
            Ok(v) => Response::bytes(200, "application/json", v),
            Err(e) => Response::text(500, format!("cannot encode the answer: {e}")),
        }
    }

    /// A plain-text body with `status` (error messages end with a newline).
    pub fn text(status: u16, message: impl Into<String>) -> Response {
        let mut m = message.into();
        if !m.ends_with('\n') {
            m.push('\n');
        }
        Response::bytes(status, "text/plain; charset=utf-8", m.into_bytes())
    }

    /// Any body.
    pub fn bytes(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Response {
        Response { status, content_type, headers: Vec::new(), body: Body::Full(body.into()) }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
}

/// Boxed future of a response.
pub type Answer = Pin<Box<dyn Future<Output = Response> + Send>>;

/// What a server does with each request.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request. Never panics on any input.
    fn handle(&self, request: Request) -> Answer;
}

/// A bound server; [`Server::run`] serves until `stop` is notified.
pub struct Server {
    listener: tokio::net::TcpListener,
    /// Where it listens (the real port when bound to port 0).
    pub addr: SocketAddr,
}

impl Server {
    /// Binds `addr`.
    pub async fn bind(addr: SocketAddr) -> Result<Server, HttpdError> {
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|source| HttpdError::Bind { addr, source })?;
        let addr = listener.local_addr().unwrap_or(addr);
        Ok(Server { listener, addr })
    }

    /// Serves until `stop` is notified (open connections are dropped then).
    pub async fn run(self, handler: Arc<dyn Handler>, stop: Arc<Notify>) {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let closing = Arc::new(Notify::new());
        loop {
            let accepted = tokio::select! {
                r = self.listener.accept() => r,
                _ = stop.notified() => break,
            };
            let (socket, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    debug!(target: "http", error = %e, "accept");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                let body = format!("503: {MAX_CONNECTIONS} connections are open (the limit); retry\n");
                let _ = socket.try_write(
                    format!(
                        "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
                continue;
            };
            let handler = handler.clone();
            let closing = closing.clone();
            tokio::spawn(async move {
                let _ = socket.set_nodelay(true);
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEAD_TIMEOUT)
                    .keep_alive(true);
                let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(answer(handler.as_ref(), req).await) }
                });
                let conn = http.serve_connection(hyper_util::rt::TokioIo::new(socket), service);
                tokio::select! {
                    r = conn => if let Err(e) = r { debug!(target: "http", %peer, error = %e, "connection closed") },
                    _ = closing.notified() => {}
                }
                drop(slot);
            });
        }
        closing.notify_waiters();
    }
}

type OutBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn answer(handler: &dyn Handler, req: http::Request<hyper::body::Incoming>) -> http::Response<OutBody> {
    let method = req.method().clone();
    let response = if method != http::Method::GET && method != http::Method::HEAD {
        Response::text(405, format!("405: method {method} not allowed (only GET and HEAD)"))
            .with_header("allow", "GET, HEAD")
    } else {
        let target = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
        if target.len() > MAX_TARGET_BYTES {
            Response::text(
                414,
                format!("414: the path is {} bytes, more than {MAX_TARGET_BYTES}", target.len()),
            )
        } else {
            let path = req.uri().path().to_string();
            let query = req
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .filter(|s| !s.is_empty())
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (kv.to_string(), String::new()),
                })
                .collect();
            handler.handle(Request { method: method.clone(), path, query }).await
        }
    };
    let mut builder = http::Response::builder()
        .status(response.status)
        .header(http::header::CONTENT_TYPE, response.content_type);
    for (name, value) in &response.headers {
        builder = builder.header(*name, value.as_str());
    }
    let body: OutBody = match response.body {
        Body::Full(_) if method == http::Method::HEAD => Full::new(Bytes::new()).boxed(),
        Body::Full(b) => Full::new(b).boxed(),
        Body::Stream(rx) => {
            let stream = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|chunk| (Ok::<_, Infallible>(Frame::data(chunk)), rx))
            });
            StreamBody::new(stream).boxed()
        }
    };
    builder.body(body).unwrap_or_else(|_| {
        http::Response::builder()
            .status(500)
            .body(Full::new(Bytes::from_static(b"bad header\n")).boxed())
            .expect("static")
    })
}

/// A minimal blocking HTTP/1.1 GET for tests and tools on loopback: (status, body). The
/// answer is read up to `limit` bytes.
pub fn get(addr: SocketAddr, path: &str, timeout: Duration, limit: usize) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut buf = Vec::new();
    s.take(limit as u64).read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(len.trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}
