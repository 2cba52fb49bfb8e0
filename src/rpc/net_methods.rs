//! Network RPC methods: getpeerinfo, getnetworkinfo, addnode, disconnectnode,
//! setnetworkactive, setban, listbanned, clearbanned, getconnectioncount.

use super::methods::{reg, Ctx};
use super::{codes, err};
use crate::p2p::{AddNodeMode, P2pError, P2pHandle};
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::RpcModule;
use serde_json::{json, Value};

fn net(c: &Ctx) -> Result<&P2pHandle, ErrorObjectOwned> {
    c.net.as_ref().ok_or_else(|| {
        err(codes::CLIENT_P2P_DISABLED, "Error: Peer-to-peer functionality missing or disabled")
    })
}

fn p2p_err(e: P2pError, code: i32) -> ErrorObjectOwned {
    match e {
        P2pError::Refused(m) => err(code, m),
        other => err(codes::IN_WARMUP, other.to_string()),
    }
}

/// Registers the network methods.
pub fn register(m: &mut RpcModule<Ctx>) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    reg(m, "getpeerinfo", |_, c| async move {
        let peers = net(&c)?.peer_info().await.map_err(|e| p2p_err(e, codes::MISC))?;
        Ok(serde_json::to_value(peers).unwrap_or(Value::Null))
    })?;
    reg(m, "getconnectioncount", |_, c| async move {
        let info = net(&c)?.network_info().await.map_err(|e| p2p_err(e, codes::MISC))?;
        Ok(json!(info.connections))
    })?;
    reg(m, "getnetworkinfo", |_, c| async move {
        let info = net(&c)?.network_info().await.map_err(|e| p2p_err(e, codes::MISC))?;
        let mut v = serde_json::to_value(&info).unwrap_or(Value::Null);
        if let Value::Object(o) = &mut v {
            o.insert("version".into(), json!(crate::p2p::wire::PROTOCOL_VERSION));
            o.insert("subversion".into(), json!(crate::p2p::behaviour::AGENT));
            o.insert("network".into(), json!(c.node.network().name()));
        }
        Ok(v)
    })?;
    reg(m, "addnode", |p, c| async move {
        let mut seq = p.sequence();
        let node: String = seq.next()?;
        let command: String = seq.next()?;
        let mode = match command.as_str() {
            "add" => AddNodeMode::Add,
            "remove" => AddNodeMode::Remove,
            "onetry" => AddNodeMode::OneTry,
            other => {
                return Err(err(
                    codes::INVALID_PARAMETER,
                    format!("command must be add, remove or onetry, got {other:?}"),
                ))
            }
        };
        let addr = node.parse().map_err(|e| {
            err(
                codes::INVALID_PARAMETER,
                format!(
                    "node {node:?} is not a multiaddr ({e}); e.g. /ip4/127.0.0.1/tcp/19444/p2p/<peer id>"
                ),
            )
        })?;
        let code = if mode == AddNodeMode::Add {
            codes::CLIENT_NODE_ALREADY_ADDED
        } else {
            codes::CLIENT_NODE_NOT_ADDED
        };
        net(&c)?.add_node(addr, mode).await.map_err(|e| p2p_err(e, code))?;
        Ok(Value::Null)
    })?;
    reg(m, "disconnectnode", |p, c| async move {
        let mut seq = p.sequence();
        let target: String = seq.next()?;
        net(&c)?.disconnect(target).await.map_err(|e| p2p_err(e, codes::CLIENT_NODE_NOT_CONNECTED))?;
        Ok(Value::Null)
    })?;
    reg(m, "setnetworkactive", |p, c| async move {
        let mut seq = p.sequence();
        let state: bool = seq.next()?;
        let now = net(&c)?.set_active(state).await.map_err(|e| p2p_err(e, codes::MISC))?;
        Ok(json!(now))
    })?;
    reg(m, "listbanned", |_, c| async move {
        let bans = net(&c)?.list_banned().await.map_err(|e| p2p_err(e, codes::MISC))?;
        Ok(serde_json::to_value(bans).unwrap_or(Value::Null))
    })?;
    reg(m, "setban", |p, c| async move {
        let mut seq = p.sequence();
        let target: String = seq.next()?;
        let command: String = seq.next()?;
        let seconds: Option<u64> = seq.optional_next()?;
        let peer: libp2p::PeerId = target.parse().map_err(|e| {
            err(codes::INVALID_PARAMETER, format!("{target:?} is not a peer id ({e}); see getpeerinfo"))
        })?;
        let add = match command.as_str() {
            "add" => true,
            "remove" => false,
            other => {
                return Err(err(
                    codes::INVALID_PARAMETER,
                    format!("command must be add or remove, got {other:?}"),
                ))
            }
        };
        let seconds = seconds.unwrap_or(crate::p2p::peers::BAN_SECONDS);
        net(&c)?
            .set_ban(peer, add, seconds)
            .await
            .map_err(|e| p2p_err(e, codes::CLIENT_INVALID_IP_OR_SUBNET))?;
        Ok(Value::Null)
    })?;
    reg(m, "clearbanned", |_, c| async move {
        net(&c)?.clear_banned().await.map_err(|e| p2p_err(e, codes::MISC))?;
        Ok(Value::Null)
    })?;
    Ok(())
}
