//! The RPC load phase: `clients` concurrent clients (each its own HTTP connection pool, on
//! the bench's runtime) calling cheap read methods in a loop for the phase's length. A client
//! told to back off (HTTP 503: no execution slot within `--rpc-server-timeout`, or the body
//! budget full; 429 from older servers) waits 50 ms and calls again, as a well-behaved client
//! does; every other failure is counted by kind and must not happen.

use super::Latency;
use crate::rpc::api::QuarryApiClient;
use crate::rpc::client::{RpcClient, RpcConfig, RpcError};
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A back-pressured client's pause before it calls again.
const BACK_OFF: Duration = Duration::from_millis(50);

/// What the load phase measured.
#[derive(Clone, Debug, Serialize)]
pub struct LoadReport {
    /// Concurrent clients.
    pub clients: usize,
    /// Seconds of load.
    pub seconds: f64,
    /// Latency of the answered calls.
    pub latency: Latency,
    /// Answered calls per second over all clients.
    pub calls_per_s: f64,
    /// Refusals by kind: `http-429` and `http-503` are back-pressure; anything else
    /// (`closed-before-answer`, `timeout`, `unreachable`, `rpc-error-N`, `other`) is a
    /// failure.
    pub errors: BTreeMap<String, u64>,
    /// The first error message of each kind.
    pub examples: BTreeMap<String, String>,
}

impl LoadReport {
    /// Errors that are not back-pressure.
    pub fn other_errors(&self) -> u64 {
        self.errors.iter().filter(|(k, _)| !is_back_pressure(k)).map(|(_, n)| n).sum()
    }

    /// One human line.
    pub fn line(&self) -> String {
        format!(
            "{} clients for {:.0} s: {:.0} calls/s, {}; errors {:?}",
            self.clients,
            self.seconds,
            self.calls_per_s,
            self.latency.line(),
            self.errors
        )
    }
}

pub(super) fn is_back_pressure(kind: &str) -> bool {
    kind == "http-429" || kind == "http-503"
}

/// The kind of a failed call, for the report. `closed-before-answer` is a request sent on a
/// kept-alive connection the server closed meanwhile (its idle timeout, or, before the
/// server closed connections only after an answer, its connection cap).
pub(super) fn kind(e: &RpcError) -> String {
    match e {
        RpcError::Http { status, .. } => format!("http-{status}"),
        RpcError::Timeout { .. } => "timeout".into(),
        RpcError::Unreachable { detail, .. }
            if detail.contains("connection closed before message completed") =>
        {
            "closed-before-answer".into()
        }
        RpcError::Unreachable { .. } => "unreachable".into(),
        RpcError::Call { code, .. } => format!("rpc-error-{code}"),
        _ => "other".into(),
    }
}

/// Runs the load: `clients` clients for `seconds`.
pub async fn run(config: &RpcConfig, clients: usize, seconds: Duration) -> Result<LoadReport> {
    let deadline = Instant::now() + seconds;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        let client = RpcClient::new(config).context("building a load client")?;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors: BTreeMap<String, u64> = BTreeMap::new();
            let mut examples: BTreeMap<String, String> = BTreeMap::new();
            let mut n = i;
            while Instant::now() < deadline {
                let t = Instant::now();
                let answer = match n % 3 {
                    0 => client.getblockcount().await.map(drop),
                    1 => client.getbestblockhash().await.map(drop),
                    _ => client.getblockchaininfo().await.map(drop),
                };
                n += 1;
                match answer.map_err(RpcError::from) {
                    Ok(()) => latencies.push(t.elapsed().as_secs_f64()),
                    Err(e) => {
                        let k = kind(&e);
                        let back_off = is_back_pressure(&k);
                        examples.entry(k.clone()).or_insert_with(|| e.to_string());
                        *errors.entry(k).or_default() += 1;
                        if back_off {
                            tokio::time::sleep(BACK_OFF).await;
                        }
                    }
                }
            }
            (latencies, errors, examples)
        }));
    }
    let mut all = Vec::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut examples: BTreeMap<String, String> = BTreeMap::new();
    for t in tasks {
        let (l, e, x) = t.await.context("a load client panicked")?;
        all.extend(l);
        for (k, n) in e {
            *errors.entry(k).or_default() += n;
        }
        for (k, m) in x {
            examples.entry(k).or_insert(m);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let answered = all.len();
    Ok(LoadReport {
        clients,
        seconds: elapsed,
        latency: Latency::of(all),
        calls_per_s: answered as f64 / elapsed,
        errors,
        examples,
    })
}
