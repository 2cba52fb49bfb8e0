//! The status table of `quarry testnet up|status`.

use super::Testnet;
use crate::rpc::api::QuarryApiClient;
use crate::rpc::types::TipStatus;
use serde::Serialize;

/// One row of the status table.
#[derive(Clone, Debug, Serialize)]
pub struct NodeStatus {
    /// Name.
    pub name: String,
    /// Process running.
    pub running: bool,
    /// RPC port.
    pub rpc_port: u16,
    /// Height.
    pub height: Option<u64>,
    /// Tip hash.
    pub tip: Option<String>,
    /// Peers.
    pub peers: Option<u64>,
    /// Mempool transactions.
    pub mempool: Option<u64>,
    /// Miner hash rate (H/s).
    pub hashrate: Option<f64>,
    /// The most recent fork this node saw: (height of the abandoned branch's tip, its length).
    pub last_fork: Option<(u64, u64)>,
}

/// Status of every node.
pub fn status(t: &mut Testnet) -> Vec<NodeStatus> {
    let names = t.names();
    names
        .into_iter()
        .map(|name| {
            let running = t.is_running(&name);
            let rpc_port = t.node(&name).map(|n| n.rpc_port).unwrap_or(0);
            let mut s = NodeStatus {
                name: name.clone(),
                running,
                rpc_port,
                height: None,
                tip: None,
                peers: None,
                mempool: None,
                hashrate: None,
                last_fork: None,
            };
            if let Some(c) = running.then(|| t.rpc(&name).ok()).flatten() {
                if let Ok(info) = c.wait(c.getblockchaininfo()) {
                    s.height = Some(info.blocks as u64);
                    s.tip = Some(info.bestblockhash.to_string());
                }
                s.peers = c.wait(c.getconnectioncount()).ok();
                s.mempool = c.wait(c.getmempoolinfo()).ok().map(|m| m.size);
                s.hashrate = c.wait(c.getmininginfo()).ok().map(|m| m.hashespersec);
                s.last_fork = c.wait(c.getchaintips()).ok().and_then(|tips| {
                    tips.iter()
                        .filter(|tip| tip.status == TipStatus::ValidFork)
                        .map(|tip| (tip.height as u64, tip.branchlen as u64))
                        .max()
                });
            }
            s
        })
        .collect()
}

fn human_rate(h: f64) -> String {
    match h {
        h if h >= 1e9 => format!("{:.2} GH/s", h / 1e9),
        h if h >= 1e6 => format!("{:.1} MH/s", h / 1e6),
        h if h >= 1e3 => format!("{:.1} kH/s", h / 1e3),
        h if h > 0.0 => format!("{h:.0} H/s"),
        _ => "-".into(),
    }
}

/// The status as a text table.
pub fn status_table(rows: &[NodeStatus]) -> String {
    let mut out = format!(
        "{:<8} {:<8} {:>6} {:>7} {:<18} {:>5} {:>7} {:>11} {:<16}\n",
        "node", "state", "rpc", "height", "tip", "peers", "mempool", "hashrate", "last fork (h/len)"
    );
    for r in rows {
        let dash = || "-".to_string();
        out += &format!(
            "{:<8} {:<8} {:>6} {:>7} {:<18} {:>5} {:>7} {:>11} {:<16}\n",
            r.name,
            if r.running { "running" } else { "stopped" },
            r.rpc_port,
            r.height.map_or_else(dash, |h| h.to_string()),
            r.tip.as_deref().map_or_else(dash, |t| format!("{}…", t.chars().take(16).collect::<String>())),
            r.peers.map_or_else(dash, |p| p.to_string()),
            r.mempool.map_or_else(dash, |m| m.to_string()),
            r.hashrate.map_or_else(dash, human_rate),
            r.last_fork.map_or_else(|| "none".into(), |(h, l)| format!("{h}/{l}")),
        );
    }
    out
}
