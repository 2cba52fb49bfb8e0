//! Files `quarry testnet up` writes for outside observers: a Prometheus scrape configuration
//! (`prometheus.yml`: every node's `--metrics` endpoint, labelled with the node's name) and a
//! Grafana dashboard (`grafana-dashboard.json`, importable, over a Prometheus data source
//! chosen at import).

use super::error::{Result, ResultExt, TestnetError};
use super::Testnet;
use serde_json::{json, Value};

/// File name of the scrape configuration.
pub const PROMETHEUS_FILE: &str = "prometheus.yml";
/// File name of the dashboard.
pub const GRAFANA_FILE: &str = "grafana-dashboard.json";

/// `prometheus.yml` for the testnet's nodes that have a metrics port.
pub fn prometheus_config(t: &Testnet) -> String {
    let mut out = String::from(
        "# Written by `quarry testnet up`: scrape every node of this testnet.\n\
         # Run: prometheus --config.file=prometheus.yml\n\
         global:\n  scrape_interval: 5s\nscrape_configs:\n  - job_name: quarry\n    static_configs:\n",
    );
    for n in &t.state.nodes {
        if let Some(p) = n.metrics_port {
            let ip = n.ip.unwrap_or(std::net::Ipv4Addr::LOCALHOST);
            out.push_str(&format!(
                "      - targets: ['{ip}:{p}']\n        labels:\n          node: '{}'\n",
                n.name
            ));
        }
    }
    out
}

fn panel(id: u32, title: &str, expr: &str, unit: &str, x: u32, y: u32) -> Value {
    json!({
        "id": id, "type": "timeseries", "title": title,
        "datasource": {"type": "prometheus", "uid": "${DS_PROMETHEUS}"},
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"refId": "A", "expr": expr, "legendFormat": "{{node}}"}],
    })
}

/// The dashboard: heights, tips, reorgs, mempool, peers, gossip, RPC latency, hash rate.
pub fn grafana_dashboard() -> Value {
    let panels = vec![
        panel(1, "Chain height", "quarry_chain_height", "none", 0, 0),
        panel(2, "Stale tips (valid-fork)", "quarry_chain_tips{status=\"valid-fork\"}", "none", 12, 0),
        panel(3, "Reorganisations (per minute)", "rate(quarry_chain_reorgs_total[1m]) * 60", "none", 0, 8),
        panel(4, "Mempool transactions", "quarry_mempool_transactions", "none", 12, 8),
        panel(5, "Peers", "sum by (node) (quarry_peers)", "none", 0, 16),
        panel(6, "Gossip accepted (per second)", "sum by (node) (rate(quarry_gossip_messages_total{verdict=\"accept\"}[1m]))", "ops", 12, 16),
        panel(7, "RPC p90 latency", "histogram_quantile(0.9, sum by (node, le) (rate(quarry_rpc_latency_seconds_bucket[1m])))", "s", 0, 24),
        panel(8, "Miner hash rate", "quarry_miner_hashrate", "H/s", 12, 24),
        panel(9, "Block connect time p90", "histogram_quantile(0.9, sum by (node, le) (rate(quarry_chain_block_connect_seconds_bucket[1m])))", "s", 0, 32),
        panel(10, "Resident memory", "quarry_process_resident_memory_bytes", "bytes", 12, 32),
    ];
    json!({
        "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource", "pluginId": "prometheus"}],
        "title": "quarry testnet",
        "uid": "quarry-testnet",
        "schemaVersion": 39,
        "refresh": "5s",
        "time": {"from": "now-15m", "to": "now"},
        "panels": panels,
    })
}

/// Writes both files into the testnet's directory.
pub fn write(t: &Testnet) -> Result<()> {
    let p = t.dir.join(PROMETHEUS_FILE);
    std::fs::write(&p, prometheus_config(t)).io("writing", &p)?;
    let g = t.dir.join(GRAFANA_FILE);
    let text = serde_json::to_string_pretty(&grafana_dashboard())
        .map_err(|source| TestnetError::Encode { what: "the Grafana dashboard", source })?;
    std::fs::write(&g, text).io("writing", &g)
}
