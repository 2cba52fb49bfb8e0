//! The one registry that names every Prometheus series (`quarry_*`), and the typed hooks the
//! components call. Built once, at first use, for the process; `quarry node --metrics ADDR`
//! serves it as OpenMetrics text ([`encode`]). Hooks are cheap (atomic adds) and never fail;
//! label values come from fixed sets (RPC methods outside the registered set count as
//! `other`), so no input can grow the registry. Gauges that describe state (height, tips,
//! mempool, peers, sync, hash rate) are set by a sampler in `daemon.rs` through the node's
//! typed API once a second; process figures are read from `/proc` at every scrape.

mod process;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;
use std::sync::LazyLock;
use std::time::Duration;

/// The OpenMetrics content type.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A float gauge.
pub type FGauge = Gauge<f64, AtomicU64>;

/// `status` label of chain tips.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TipLabels {
    /// active, valid-fork or invalid.
    pub status: &'static str,
}

/// `direction` label of peers.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabels {
    /// inbound or outbound.
    pub direction: &'static str,
}

/// Labels of gossip messages.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GossipLabels {
    /// blocks, transactions or unknown.
    pub topic: &'static str,
    /// accept, reject or ignore (the validation result reported to gossipsub).
    pub verdict: &'static str,
}

/// Labels of RPC calls.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    /// A registered method name, or `other`.
    pub method: &'static str,
    /// ok or error.
    pub result: &'static str,
}

/// `method` label of RPC latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    /// A registered method name, or `other`.
    pub method: &'static str,
}

/// Labels of compact-block outcomes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `mempool` (rebuilt from the mempool alone), `fetched` (after one GetBlockTxn) or
    /// `fallback` (the full block fetched by sync).
    pub outcome: &'static str,
}

/// `reason` label of refused transactions.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// `busy`: the verifier pool was full.
    pub reason: &'static str,
}

/// Every series. Field docs are the series' help texts.
pub struct Metrics {
    registry: Registry,
    /// Height of the active tip.
    pub chain_height: Gauge,
    /// Chain tips known, by status.
    pub chain_tips: Family<TipLabels, Gauge>,
    /// Reorganisations by fork choice (the active chain switched branches).
    pub reorgs: Counter,
    /// Blocks disconnected per reorganisation.
    pub reorg_depth: Histogram,
    /// Blocks that left the active chain in reorganisations.
    pub stale_blocks: Counter,
    /// Time to process a block that moved the tip, per block connected.
    pub block_connect: Histogram,
    /// Blocks connected.
    pub blocks_connected: Counter,
    /// Mempool transactions.
    pub mempool_txs: Gauge,
    /// Mempool size, bytes (sum of canonical sizes).
    pub mempool_bytes: Gauge,
    /// Connected peers by direction.
    pub peers: Family<DirectionLabels, Gauge>,
    /// Banned peers.
    pub banned_peers: Gauge,
    /// Gossip messages received, by topic and verdict.
    pub gossip: Family<GossipLabels, Counter>,
    /// Compact blocks received and rebuilt, by outcome.
    pub compact_blocks: Family<OutcomeLabels, Counter>,
    /// Transactions per batch signature check of the verifier pool.
    pub verify_batch: Histogram,
    /// Transactions refused before their checks, by reason.
    pub tx_refused: Family<ReasonLabels, Counter>,
    /// 1 while in initial block download.
    pub sync_ibd: Gauge,
    /// Height of the best header known.
    pub sync_headers: Gauge,
    /// The continuous miner's hash rate, hashes per second (0 when not mining).
    pub miner_hashrate: FGauge,
    /// JSON-RPC calls by method and result.
    pub rpc_requests: Family<RpcLabels, Counter>,
    /// JSON-RPC call latency by method.
    pub rpc_latency: Family<MethodLabels, Histogram, fn() -> Histogram>,
    process: process::Process,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 4.0, 10))
}

impl Metrics {
    fn new() -> Metrics {
        let mut r = Registry::with_prefix("quarry");
        let m = Metrics {
            chain_height: Gauge::default(),
            chain_tips: Family::default(),
            reorgs: Counter::default(),
            reorg_depth: Histogram::new([1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0]),
            stale_blocks: Counter::default(),
            block_connect: Histogram::new(exponential_buckets(0.000_1, 4.0, 10)),
            blocks_connected: Counter::default(),
            mempool_txs: Gauge::default(),
            mempool_bytes: Gauge::default(),
            peers: Family::default(),
            banned_peers: Gauge::default(),
            gossip: Family::default(),
            compact_blocks: Family::default(),
            verify_batch: Histogram::new(exponential_buckets(1.0, 2.0, 8)),
            tx_refused: Family::default(),
            sync_ibd: Gauge::default(),
            sync_headers: Gauge::default(),
            miner_hashrate: FGauge::default(),
            rpc_requests: Family::default(),
            rpc_latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            process: process::Process::default(),
            registry: Registry::default(),
        };
        r.register("chain_height", "Height of the active tip", m.chain_height.clone());
        r.register(
            "chain_tips",
            "Chain tips known, by status (active, valid-fork, invalid)",
            m.chain_tips.clone(),
        );
        r.register("chain_reorgs", "Reorganisations by fork choice", m.reorgs.clone());
        r.register("chain_reorg_depth", "Blocks disconnected per reorganisation", m.reorg_depth.clone());
        r.register(
            "chain_stale_blocks",
            "Blocks that left the active chain in reorganisations",
            m.stale_blocks.clone(),
        );
        r.register_with_unit(
            "chain_block_connect",
            "Time to process a block that moved the tip, per block connected",
            Unit::Seconds,
            m.block_connect.clone(),
        );
        r.register(
            "chain_blocks_connected",
            "Blocks connected to the active chain",
            m.blocks_connected.clone(),
        );
        r.register("mempool_transactions", "Mempool transactions", m.mempool_txs.clone());
        r.register_with_unit(
            "mempool",
            "Mempool size (sum of canonical sizes)",
            Unit::Bytes,
            m.mempool_bytes.clone(),
        );
        r.register("peers", "Connected peers by direction", m.peers.clone());
        r.register("peers_banned", "Banned peers", m.banned_peers.clone());
        r.register("gossip_messages", "Gossip messages received, by topic and verdict", m.gossip.clone());
        r.register(
            "relay_compact_blocks",
            "Compact blocks rebuilt, by outcome (mempool, fetched, fallback)",
            m.compact_blocks.clone(),
        );
        r.register(
            "mempool_verify_batch",
            "Transactions per batch signature check of the verifier pool",
            m.verify_batch.clone(),
        );
        r.register(
            "mempool_refused",
            "Transactions refused before their checks, by reason (busy: verifier pool full)",
            m.tx_refused.clone(),
        );
        r.register("sync_initial_block_download", "1 while in initial block download", m.sync_ibd.clone());
        r.register("sync_headers_height", "Height of the best header known", m.sync_headers.clone());
        r.register("miner_hashrate", "The continuous miner's hashes per second", m.miner_hashrate.clone());
        r.register("rpc_requests", "JSON-RPC calls by method and result", m.rpc_requests.clone());
        r.register_with_unit(
            "rpc_latency",
            "JSON-RPC call latency by method",
            Unit::Seconds,
            m.rpc_latency.clone(),
        );
        m.process.register(&mut r);
        Metrics { registry: r, ..m }
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

/// The whole registry as OpenMetrics text (process figures read now).
pub fn encode() -> String {
    let m = get();
    m.process.sample();
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &m.registry).is_err() {
        out = "# EOF\n".into();
    }
    out
}

/// Hook: the core processed a block in `elapsed`; `disconnected` and `connected` count the
/// chain events it caused; `height` is the tip after it.
pub fn block_processed(disconnected: usize, connected: usize, elapsed: Duration, height: u32) {
    let m = get();
    if disconnected > 0 && connected > 0 {
        m.reorgs.inc();
        m.reorg_depth.observe(disconnected as f64);
        m.stale_blocks.inc_by(disconnected as u64);
    }
    if connected > 0 {
        m.blocks_connected.inc_by(connected as u64);
        m.block_connect.observe(elapsed.as_secs_f64() / connected as f64);
        m.chain_height.set(height as i64);
    }
}

/// Hook: a gossip message got its verdict.
pub fn gossip(topic: &'static str, verdict: &'static str) {
    get().gossip.get_or_create(&GossipLabels { topic, verdict }).inc();
}

/// Hook: a compact block was rebuilt (`mempool`, `fetched`) or fell back (`fallback`).
pub fn compact_block(outcome: &'static str) {
    get().compact_blocks.get_or_create(&OutcomeLabels { outcome }).inc();
}

/// Hook: the verifier pool checked `n` transactions in one batch.
pub fn verify_batch(n: usize) {
    get().verify_batch.observe(n as f64);
}

/// Hook: a transaction was refused before its checks for `reason`.
pub fn tx_refused(reason: &'static str) {
    get().tx_refused.get_or_create(&ReasonLabels { reason }).inc();
}

/// Hook: an RPC call to `method` (a registered name or `other`) finished.
pub fn rpc_call(method: &'static str, ok: bool, elapsed: Duration) {
    let m = get();
    m.rpc_requests.get_or_create(&RpcLabels { method, result: if ok { "ok" } else { "error" } }).inc();
    m.rpc_latency.get_or_create(&MethodLabels { method }).observe(elapsed.as_secs_f64());
}

/// The `--metrics` endpoint: `GET /metrics` (OpenMetrics text), anything else 404.
pub struct Endpoint;

impl crate::httpd::Handler for Endpoint {
    fn handle(&self, request: crate::httpd::Request) -> crate::httpd::Answer {
        Box::pin(async move {
            if request.path == "/metrics" {
                crate::httpd::Response::bytes(200, CONTENT_TYPE, encode())
            } else {
                crate::httpd::Response::text(
                    404,
                    format!("404: no such path {} (metrics are at /metrics)", request.path),
                )
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_prefixed_and_the_text_ends_with_eof() {
        block_processed(2, 3, Duration::from_millis(3), 7);
        gossip("blocks", "accept");
        rpc_call("getblockcount", true, Duration::from_micros(50));
        let text = encode();
        assert!(text.ends_with("# EOF\n"), "{text}");
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
            assert!(line.starts_with("quarry_"), "{line}");
        }
        // The registry is per process (`cargo test` runs unit tests in threads of one), so
        // counters are checked as present and at least what this test added.
        let value = |series: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{series} missing:\n{text}"))
        };
        assert!(value("quarry_chain_reorgs_total") >= 1.0);
        assert!(value("quarry_chain_stale_blocks_total") >= 2.0);
        assert!(value("quarry_chain_blocks_connected_total") >= 3.0);
        assert!(value("quarry_gossip_messages_total{topic=\"blocks\",verdict=\"accept\"}") >= 1.0);
        assert!(value("quarry_rpc_requests_total{method=\"getblockcount\",result=\"ok\"}") >= 1.0);
        for name in [
            "quarry_process_resident_memory_bytes ",
            "quarry_process_open_fds ",
            "quarry_process_cpu_seconds_total ",
        ] {
            assert!(text.contains(name), "{name} missing:\n{text}");
        }
    }
}
