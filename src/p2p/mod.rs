//! Peer-to-peer networking: a libp2p swarm (TCP + Noise + Yamux) with gossipsub relay of
//! blocks and transactions, a request-response protocol for headers-first sync, identify,
//! ping, Kademlia and optional mDNS discovery, and a per-peer misbehaviour score with
//! persisted bans.
//!
//! Layout, protocol first (pure: no sockets, clock and chain passed in): [`wire`] (topics,
//! protocol ids, message encodings, limits), [`sync`] (the sans-io sync state machine,
//! driven by whoever owns the chain), [`peers`] (scores, bans, rate limits) and [`link`]
//! (the work items, verdicts and fault classification exchanged with the chain's owner,
//! and the [`link::CoreLink`] trait it implements). Then the network: [`behaviour`] (the
//! composed libp2p behaviour) and [`service`] (the tokio task that owns the swarm). Other
//! components reach the service through a [`P2pHandle`]. This module never imports the
//! node.

pub mod behaviour;
pub mod compact;
pub mod inbound;
pub mod link;
pub mod peers;
pub mod service;
pub mod sync;
#[cfg(test)]
mod sync_tests;
pub mod throttle;
pub mod wire;

use libp2p::{Multiaddr, PeerId};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use wire::Topic;

/// Commands queued for the network service at most (publications are bounded in bytes too,
/// by [`MAX_PUBLISH_BYTES`]). 1,024 dropped transactions announced in bursts of 1,000 (one
/// `sendrawtransactions` call) while the service was busy: 418 of 80,000 at 10,000 tx/s.
const COMMAND_QUEUE: usize = 32_768;

/// Network settings of a node.
#[derive(Clone, Debug)]
pub struct P2pConfig {
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Peers to connect to at start and to keep reconnecting to.
    pub bootnodes: Vec<Multiaddr>,
    /// Enable mDNS discovery on the LAN.
    pub mdns: bool,
    /// Most established connections.
    pub max_connections: u32,
    /// Where the node key lives.
    pub key_path: PathBuf,
    /// Where bans are persisted.
    pub ban_path: PathBuf,
}

/// `addnode` modes (as in Bitcoin Core).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddNodeMode {
    /// Connect and keep reconnecting.
    Add,
    /// Stop reconnecting.
    Remove,
    /// Connect once.
    OneTry,
}

/// One connected peer, for `getpeerinfo` (also the RPC result type).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct PeerInfo {
    /// Local numeric id.
    pub id: u64,
    /// libp2p peer id.
    pub peerid: String,
    /// Remote address.
    pub addr: String,
    /// True if the peer connected to us.
    pub inbound: bool,
    /// "inbound" or "outbound".
    pub direction: String,
    /// Misbehaviour score (0 neutral, at or below -100 banned).
    pub score: i32,
    /// Height in the peer's status when it connected.
    pub startingheight: Option<u32>,
    /// Best height the peer has shown since.
    pub tipheight: Option<u32>,
    /// Sync and gossip payload bytes sent to the peer.
    pub bytessent: u64,
    /// Sync and gossip payload bytes received from it.
    pub bytesrecv: u64,
    /// Last ping round trip, seconds.
    pub pingtime: Option<f64>,
    /// Unix time of connection.
    pub conntime: u64,
    /// The peer's agent string (identify).
    pub subver: Option<String>,
}

/// Facts about our own network side, for `getnetworkinfo`.
#[derive(Clone, Debug, Serialize)]
pub struct NetworkInfo {
    /// Our peer id.
    pub peerid: String,
    /// Addresses we listen on (with `/p2p/<peer id>` appended, ready for `--bootnode`).
    pub listenaddrs: Vec<String>,
    /// Gossip topics we subscribe to.
    pub topics: Vec<String>,
    /// Protocol ids we speak.
    pub protocols: Vec<String>,
    /// Established connections (peers).
    pub connections: usize,
    /// Of which inbound.
    pub connections_in: usize,
    /// Of which outbound.
    pub connections_out: usize,
    /// False after `setnetworkactive false`.
    pub networkactive: bool,
    /// Bans in force.
    pub banned: usize,
}

/// A banned peer, for `listbanned` (also the RPC result type).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct BanInfo {
    /// Peer id.
    pub peerid: String,
    /// Unix time the ban ends.
    pub banned_until: u64,
    /// Why.
    pub ban_reason: String,
}

/// Requests to the network service.
pub(crate) enum Command {
    Publish { topic: Topic, data: Vec<u8>, _held: Held },
    PublishBlock { announcement: BlockAnnouncement, _held: Held },
    ServeBlock(Arc<crate::consensus::CheckedBlock>),
    AddNode { addr: Multiaddr, mode: AddNodeMode, reply: oneshot::Sender<Result<(), P2pError>> },
    Disconnect { target: String, reply: oneshot::Sender<Result<(), P2pError>> },
    SetActive { active: bool, reply: oneshot::Sender<bool> },
    PeerInfo { reply: oneshot::Sender<Vec<PeerInfo>> },
    NetworkInfo { reply: oneshot::Sender<NetworkInfo> },
    ListBanned { reply: oneshot::Sender<Vec<BanInfo>> },
    ClearBanned { reply: oneshot::Sender<usize> },
    SetBan { peer: PeerId, add: bool, seconds: u64, reply: oneshot::Sender<Result<(), P2pError>> },
}

/// How one of our blocks (or one we rebuilt from a compact block) is announced.
#[derive(Clone, Debug)]
pub enum BlockAnnouncement {
    /// `--relay full`: the full block on the blocks topic.
    Full(Vec<u8>),
    /// The compact block on the compact topic, and the full block (if given) on the blocks
    /// topic when a peer subscribes to that topic and not to the compact one.
    Compact { compact: Vec<u8>, full: Option<Vec<u8>> },
    /// A block gossipsub already relays compactly: the full block only for peers that take
    /// full blocks alone.
    FullForOthers(Vec<u8>),
}

impl BlockAnnouncement {
    fn bytes(&self) -> usize {
        match self {
            BlockAnnouncement::Full(b) | BlockAnnouncement::FullForOthers(b) => b.len(),
            BlockAnnouncement::Compact { compact, full } => compact.len() + full.as_ref().map_or(0, Vec::len),
        }
    }
}

/// Why a network request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum P2pError {
    /// The service's queue is full.
    #[error("network service is busy: retry later")]
    Busy,
    /// The service is not running (stopped, or the node runs without networking).
    #[error("network service is not running")]
    Stopped,
    /// `addnode add` of an address already added.
    #[error("node {0} already added")]
    AlreadyAdded(Multiaddr),
    /// `addnode remove` of an address never added.
    #[error("node {0} has not been added")]
    NotAdded(Multiaddr),
    /// `disconnectnode` of a peer that is not connected.
    #[error("node {0} is not connected (give a peer id, address or numeric id from getpeerinfo)")]
    NotConnected(String),
    /// `setban remove` of a peer that is not banned.
    #[error("peer {0} is not banned")]
    NotBanned(PeerId),
}

/// A cloneable handle to the network service. Never blocks: a full queue is an error.
#[derive(Clone)]
pub struct P2pHandle {
    tx: mpsc::Sender<Command>,
    /// Bytes of publications queued for the service (bounded by [`MAX_PUBLISH_BYTES`]).
    queued: Arc<AtomicUsize>,
    /// Set by the service (each tick) while a peer takes full blocks and not compact ones.
    full_only: Arc<AtomicBool>,
}

/// Bytes of our own publications queued for the service at most; beyond, one is dropped with
/// a warning (peers still get the block by sync).
pub const MAX_PUBLISH_BYTES: usize = 64 << 20;

/// Bytes a queued publication holds; released when the service is done with it.
pub(crate) struct Held {
    queued: Arc<AtomicUsize>,
    bytes: usize,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.queued.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

impl P2pHandle {
    /// A handle and the receiving end for [`service::run`].
    pub(crate) fn channel() -> (P2pHandle, mpsc::Receiver<Command>) {
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        (P2pHandle { tx, queued: Arc::new(AtomicUsize::new(0)), full_only: Arc::default() }, rx)
    }

    /// True while a connected peer takes full blocks and not compact ones (as of the
    /// service's last tick, 500 ms at most ago): only then is a full block worth encoding
    /// beside a compact one.
    pub fn wants_full_blocks(&self) -> bool {
        self.full_only.load(Ordering::Relaxed)
    }

    /// The flag behind [`P2pHandle::wants_full_blocks`], for the service to set.
    pub(crate) fn full_only_flag(&self) -> Arc<AtomicBool> {
        self.full_only.clone()
    }

    /// Publishes on a gossip topic (dropped with a warning if the queue is full).
    pub fn publish(&self, topic: Topic, data: Vec<u8>) {
        let bytes = data.len();
        let before = self.queued.fetch_add(bytes, Ordering::SeqCst);
        let held = Held { queued: self.queued.clone(), bytes };
        if before > 0 && before + bytes > MAX_PUBLISH_BYTES {
            tracing::warn!(target: "p2p::gossip", ?topic, queued = before, "publication queue full ({MAX_PUBLISH_BYTES} bytes); dropped one");
            return; // `held` releases the bytes
        }
        if let Err(e) = self.tx.try_send(Command::Publish { topic, data, _held: held }) {
            tracing::warn!(target: "p2p::gossip", ?topic, error = %e, "could not queue a publication");
        }
    }

    /// Hands the service a block it relays (or we announce) before it is connected, so the
    /// service answers peers' `GetBlockTxn` for it at once instead of queueing them behind
    /// the connect on the core (the service keeps the last [`service::SERVED_BLOCKS`]).
    pub fn serve_block(&self, block: Arc<crate::consensus::CheckedBlock>) {
        if let Err(e) = self.tx.try_send(Command::ServeBlock(block)) {
            tracing::debug!(target: "p2p::gossip", error = %e, "could not hand a block to serve; the core answers for it");
        }
    }

    /// Announces a block (dropped with a warning if the queue is full).
    pub fn publish_block(&self, announcement: BlockAnnouncement) {
        let bytes = announcement.bytes();
        let before = self.queued.fetch_add(bytes, Ordering::SeqCst);
        let held = Held { queued: self.queued.clone(), bytes };
        if before > 0 && before + bytes > MAX_PUBLISH_BYTES {
            tracing::warn!(target: "p2p::gossip", queued = before, "publication queue full ({MAX_PUBLISH_BYTES} bytes); dropped a block");
            return;
        }
        if let Err(e) = self.tx.try_send(Command::PublishBlock { announcement, _held: held }) {
            tracing::warn!(target: "p2p::gossip", error = %e, "could not queue a block announcement");
        }
    }

    async fn ask<R>(&self, make: impl FnOnce(oneshot::Sender<R>) -> Command) -> Result<R, P2pError> {
        let (tx, rx) = oneshot::channel();
        self.tx.try_send(make(tx)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => P2pError::Busy,
            mpsc::error::TrySendError::Closed(_) => P2pError::Stopped,
        })?;
        rx.await.map_err(|_| P2pError::Stopped)
    }

    /// `addnode`.
    pub async fn add_node(&self, addr: Multiaddr, mode: AddNodeMode) -> Result<(), P2pError> {
        self.ask(|reply| Command::AddNode { addr, mode, reply }).await?
    }

    /// `disconnectnode` by peer id or address.
    pub async fn disconnect(&self, target: String) -> Result<(), P2pError> {
        self.ask(|reply| Command::Disconnect { target, reply }).await?
    }

    /// `setnetworkactive`; returns the new state.
    pub async fn set_active(&self, active: bool) -> Result<bool, P2pError> {
        self.ask(|reply| Command::SetActive { active, reply }).await
    }

    /// `getpeerinfo`.
    pub async fn peer_info(&self) -> Result<Vec<PeerInfo>, P2pError> {
        self.ask(|reply| Command::PeerInfo { reply }).await
    }

    /// `getnetworkinfo`.
    pub async fn network_info(&self) -> Result<NetworkInfo, P2pError> {
        self.ask(|reply| Command::NetworkInfo { reply }).await
    }

    /// `listbanned`.
    pub async fn list_banned(&self) -> Result<Vec<BanInfo>, P2pError> {
        self.ask(|reply| Command::ListBanned { reply }).await
    }

    /// `setban PEERID add|remove [seconds]`: ban (disconnecting it) or unban a peer by hand.
    pub async fn set_ban(&self, peer: PeerId, add: bool, seconds: u64) -> Result<(), P2pError> {
        self.ask(|reply| Command::SetBan { peer, add, seconds, reply }).await?
    }

    /// `clearbanned`; returns how many bans were lifted.
    pub async fn clear_banned(&self) -> Result<usize, P2pError> {
        self.ask(|reply| Command::ClearBanned { reply }).await
    }
}

/// The peer id of a multiaddr's trailing `/p2p/<id>`, if any.
pub fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

#[cfg(test)]
mod publish_tests {
    use super::*;

    #[test]
    fn publications_are_bounded_in_bytes_and_released_when_handled() {
        let (handle, mut rx) = P2pHandle::channel();
        let big = || vec![0u8; 40 << 20];
        handle.publish(Topic::Blocks, big());
        handle.publish(Topic::Blocks, big()); // 80 MiB > 64 MiB: dropped
        assert_eq!(handle.queued.load(Ordering::SeqCst), 40 << 20);
        let first = rx.try_recv().expect("the first is queued");
        assert!(rx.try_recv().is_err(), "the second was dropped");
        drop(first); // handled: its bytes are released
        assert_eq!(handle.queued.load(Ordering::SeqCst), 0);
        handle.publish(Topic::Blocks, big());
        assert!(rx.try_recv().is_ok(), "room again after the first was handled");
    }
}
