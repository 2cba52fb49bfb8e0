//! Raw TCP against the node's two ports: the connection flood (many sockets at once that
//! never speak), half-open sockets (connected, silent), slow ones (a byte a second: random
//! bytes to the p2p port, an HTTP request line to the RPC port) and sockets that send random
//! bytes where a handshake or request belongs. Each socket is held until the node closes it
//! or the phase's hold ends; the report counts how many the node cut off and how fast.

use anyhow::{bail, Context, Result};
use rand::RngCore;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where the attacked node listens.
pub(super) struct Targets {
    /// Its p2p TCP port.
    pub(super) p2p: SocketAddr,
    /// Its RPC port.
    pub(super) rpc: SocketAddr,
    /// Its p2p multiaddr with its peer id (for the libp2p peers).
    pub(super) libp2p: libp2p::Multiaddr,
}

impl Targets {
    fn ports(&self) -> [(&'static str, SocketAddr); 2] {
        [("p2p", self.p2p), ("rpc", self.rpc)]
    }
}

/// The TCP address of a `/ip4/A/tcp/P/...` multiaddr.
pub(super) fn tcp_addr(multiaddr: &str) -> Result<SocketAddr> {
    let parts: Vec<&str> = multiaddr.split('/').collect();
    match parts.as_slice() {
        ["", "ip4", ip, "tcp", port, ..] => {
            Ok(SocketAddr::new(ip.parse().context("the ip4 part")?, port.parse().context("the tcp part")?))
        }
        _ => bail!("{multiaddr} is not a /ip4/ADDRESS/tcp/PORT multiaddr"),
    }
}

/// What a socket does once connected.
#[derive(Clone)]
enum Behaviour {
    /// Nothing.
    Silent,
    /// Writes these bytes one a second.
    Trickle(Vec<u8>),
    /// Writes these bytes at once, then reads.
    Burst(Vec<u8>),
}

/// How one socket ended.
enum Outcome {
    /// Not connected (the error's kind).
    Failed(String),
    /// The node closed it this many seconds after it connected.
    Closed(f64),
    /// Still open when the hold ended.
    Open,
}

/// Connects to `addr` and behaves until the node closes the socket or `deadline`.
async fn hold(addr: SocketAddr, deadline: tokio::time::Instant, behaviour: Behaviour) -> Outcome {
    let connect = tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await;
    let mut socket = match connect {
        Err(_) => return Outcome::Failed("connect-timeout".into()),
        Ok(Err(e)) => return Outcome::Failed(format!("{:?}", e.kind())),
        Ok(Ok(s)) => s,
    };
    let t = Instant::now();
    let mut buf = [0u8; 4096];
    let mut trickle = match &behaviour {
        Behaviour::Trickle(bytes) => bytes.clone(),
        Behaviour::Burst(bytes) => {
            if socket.write_all(bytes).await.is_err() {
                return Outcome::Closed(t.elapsed().as_secs_f64());
            }
            Vec::new()
        }
        Behaviour::Silent => Vec::new(),
    };
    trickle.reverse();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return Outcome::Open,
            r = socket.read(&mut buf) => match r {
                // A 503 or a handshake reply is not a close: keep reading until the end.
                Ok(n) if n > 0 => {}
                _ => return Outcome::Closed(t.elapsed().as_secs_f64()),
            },
            _ = tick.tick(), if !trickle.is_empty() => {
                let byte = trickle.pop().expect("not empty");
                if socket.write_all(&[byte]).await.is_err() {
                    return Outcome::Closed(t.elapsed().as_secs_f64());
                }
            }
        }
    }
}

/// Outcomes of sockets of one kind on one port.
#[derive(Clone, Debug, Serialize)]
pub struct SocketsReport {
    /// `p2p` or `rpc`.
    pub port: &'static str,
    /// What the sockets did: `silent`, `slow`, `random`.
    pub kind: &'static str,
    /// Sockets tried.
    pub attempts: usize,
    /// Of which connected.
    pub connected: usize,
    /// Connect failures by kind.
    pub failed: BTreeMap<String, usize>,
    /// Connected sockets the node closed before the hold ended.
    pub closed_by_node: usize,
    /// Median seconds from connect to the node's close.
    pub close_p50_s: f64,
    /// Longest.
    pub close_max_s: f64,
    /// Still open when the hold ended.
    pub open_at_end: usize,
}

impl SocketsReport {
    fn of(port: &'static str, kind: &'static str, outcomes: Vec<Outcome>) -> SocketsReport {
        let mut failed = BTreeMap::new();
        let mut closes = Vec::new();
        let mut open = 0;
        for o in &outcomes {
            match o {
                Outcome::Failed(k) => *failed.entry(k.clone()).or_default() += 1,
                Outcome::Closed(s) => closes.push(*s),
                Outcome::Open => open += 1,
            }
        }
        closes.sort_by(f64::total_cmp);
        SocketsReport {
            port,
            kind,
            attempts: outcomes.len(),
            connected: closes.len() + open,
            failed,
            closed_by_node: closes.len(),
            close_p50_s: super::super::percentile(&closes, 50.0),
            close_max_s: closes.last().copied().unwrap_or(f64::NAN),
            open_at_end: open,
        }
    }

    /// One human line.
    pub fn line(&self) -> String {
        format!(
            "{} {}: {} of {} connected (failed {:?}); the node closed {} (median {:.1} s, max {:.1} s after connect), {} still open at the end",
            self.port,
            self.kind,
            self.connected,
            self.attempts,
            self.failed,
            self.closed_by_node,
            self.close_p50_s,
            self.close_max_s,
            self.open_at_end
        )
    }
}

/// The connection flood's report on one port.
pub type FloodReport = SocketsReport;
/// The slow phase's reports on one port.
pub type SlowReport = SocketsReport;

/// Runs `count` sockets of `behaviour` against `addr` at once; their report.
async fn many(
    port: &'static str,
    kind: &'static str,
    addr: SocketAddr,
    count: usize,
    behaviour: Behaviour,
    deadline: tokio::time::Instant,
) -> SocketsReport {
    let tasks: Vec<_> = (0..count).map(|_| tokio::spawn(hold(addr, deadline, behaviour.clone()))).collect();
    let mut outcomes = Vec::with_capacity(count);
    for t in tasks {
        outcomes.push(t.await.unwrap_or_else(|e| Outcome::Failed(format!("task: {e}"))));
    }
    SocketsReport::of(port, kind, outcomes)
}

/// The connection flood: `count` silent sockets to each port at once, held for `hold`.
pub(super) async fn flood(targets: &Targets, count: usize, hold: Duration) -> Vec<FloodReport> {
    let deadline = tokio::time::Instant::now() + hold;
    let runs =
        targets.ports().map(|(port, addr)| many(port, "silent", addr, count, Behaviour::Silent, deadline));
    futures::future::join_all(runs).await
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

/// The slow phase: on each port `count` half-open sockets, `count` slow ones and `count / 4`
/// that send 64 KiB of random bytes, all at once, held for `hold`.
pub(super) async fn slow(targets: &Targets, count: usize, hold: Duration) -> Vec<SlowReport> {
    let deadline = tokio::time::Instant::now() + hold;
    let request = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n".to_vec();
    let mut runs = Vec::new();
    for (port, addr) in targets.ports() {
        let slow_bytes = if port == "rpc" { request.clone() } else { random_bytes(600) };
        runs.push(many(port, "half-open", addr, count, Behaviour::Silent, deadline));
        runs.push(many(port, "slow", addr, count, Behaviour::Trickle(slow_bytes), deadline));
        runs.push(many(port, "random", addr, count / 4, Behaviour::Burst(random_bytes(64 << 10)), deadline));
    }
    futures::future::join_all(runs).await
}
