//! `quarry explorer`: the web UI for a testnet's nodes (or any nodes' HTTP APIs).

use crate::explorer::web::{Explorer, NodeEntry, NodeSource};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// `quarry explorer`.
#[derive(Args, Debug)]
pub struct ExplorerArgs {
    /// Show the nodes of this testnet directory (their HTTP API ports from testnet.json,
    /// reread at every page load). Default, without --node: the default testnet directory.
    #[arg(long, value_name = "DIR")]
    pub testnet: Option<PathBuf>,
    /// Show this node instead: NAME=URL of its HTTP API (`quarry node --http`), e.g.
    /// `a=http://127.0.0.1:19480`. Repeat for more nodes.
    #[arg(long, value_name = "NAME=URL", conflicts_with = "testnet")]
    pub node: Vec<String>,
    /// Where to serve the UI (loopback only).
    #[arg(long, default_value = "127.0.0.1:19700")]
    pub bind: SocketAddr,
}

fn parse_node(s: &str) -> Result<NodeEntry> {
    let Some((name, url)) = s.split_once('=') else {
        bail!("--node {s:?}: expected NAME=URL, e.g. a=http://127.0.0.1:19480");
    };
    let rest = url.strip_prefix("http://").unwrap_or("");
    let port_ok = rest.rsplit_once(':').is_some_and(|(_, p)| p.trim_end_matches('/').parse::<u16>().is_ok());
    if name.is_empty() || !port_ok {
        bail!("--node {s:?}: expected NAME=http://HOST:PORT (the node's --http address)");
    }
    Ok(NodeEntry { name: name.to_string(), api: url.trim_end_matches('/').to_string() })
}

/// Runs the explorer until Ctrl-C or SIGTERM.
pub fn run(args: ExplorerArgs) -> Result<()> {
    if !args.bind.ip().is_loopback() {
        bail!("--bind {}: the explorer serves on loopback only (use 127.0.0.1:PORT)", args.bind);
    }
    let source: NodeSource = if args.node.is_empty() {
        let dir = match args.testnet {
            Some(d) => d,
            None => crate::testnet::default_dir()?,
        };
        crate::testnet::Testnet::open(&dir)?; // fail now if there is no testnet there
        Arc::new(move || match crate::testnet::Testnet::open(&dir) {
            Ok(t) => t
                .state
                .nodes
                .iter()
                .filter_map(|n| {
                    let ip = n.ip.unwrap_or(std::net::Ipv4Addr::LOCALHOST);
                    n.http_port.map(|p| NodeEntry { name: n.name.clone(), api: format!("http://{ip}:{p}") })
                })
                .collect(),
            Err(_) => Vec::new(),
        })
    } else {
        let list: Vec<NodeEntry> = args.node.iter().map(|s| parse_node(s)).collect::<Result<_>>()?;
        Arc::new(move || list.clone())
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let server = crate::httpd::Server::bind(args.bind).await.context("--bind")?;
        println!("explorer: http://{}/", server.addr);
        let stop = Arc::new(tokio::sync::Notify::new());
        let task = tokio::spawn(server.run(Arc::new(Explorer::new(source)), stop.clone()));
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).context("handling SIGTERM")?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        stop.notify_one();
        let _ = task.await;
        Ok(())
    })
}
