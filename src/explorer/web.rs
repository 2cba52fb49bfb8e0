//! `quarry explorer`: serves the web UI (HTML, JavaScript and CSS embedded in the binary,
//! hand-written, no build step) and `/config.json`, the list of nodes whose HTTP APIs the
//! page reads. The page talks to each node's HTTP API directly from the browser (the API
//! sends `Access-Control-Allow-Origin: *`) and follows each node's `/api/events` stream; this
//! server knows nodes only by name and API URL.

use crate::httpd::{Answer, Handler, Request, Response};
use serde::Serialize;
use std::sync::Arc;

const INDEX: &str = include_str!("assets/index.html");
const APP: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");

/// A node the page shows.
#[derive(Clone, Debug, Serialize)]
pub struct NodeEntry {
    /// Display name.
    pub name: String,
    /// Base URL of its HTTP API (`http://127.0.0.1:PORT`).
    pub api: String,
}

/// Where the node list comes from (read at every `/config.json`, so a testnet's changes
/// show on reload).
pub type NodeSource = Arc<dyn Fn() -> Vec<NodeEntry> + Send + Sync>;

/// The explorer's request handler.
pub struct Explorer {
    nodes: NodeSource,
}

impl Explorer {
    /// An explorer over the nodes `nodes` lists.
    pub fn new(nodes: NodeSource) -> Explorer {
        Explorer { nodes }
    }
}

impl Handler for Explorer {
    fn handle(&self, request: Request) -> Answer {
        let nodes = self.nodes.clone();
        Box::pin(async move {
            let asset = |body: &'static str, ty: &'static str| {
                // Assets are part of the binary: revalidate each load so an upgrade shows.
                Response::bytes(200, ty, body.as_bytes()).with_header("cache-control", "no-cache")
            };
            match request.path.as_str() {
                // The UI is one page; its views are fragments (#/block/HASH, ...).
                "/" | "/index.html" => asset(INDEX, "text/html; charset=utf-8"),
                "/app.js" => asset(APP, "text/javascript; charset=utf-8"),
                "/style.css" => asset(STYLE, "text/css; charset=utf-8"),
                "/config.json" => {
                    let list = tokio::task::spawn_blocking(move || nodes()).await.unwrap_or_default();
                    Response::json(&serde_json::json!({ "nodes": list }))
                        .with_header("cache-control", "no-store")
                }
                other => Response::text(404, format!("404: no such path {other} (the explorer is at /)")),
            }
        })
    }
}
