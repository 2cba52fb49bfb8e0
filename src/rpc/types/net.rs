//! Parameters and results of the network methods.

use serde::{Deserialize, Serialize};

/// One connected peer, for `getpeerinfo`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Local numeric id.
    pub id: u64,
    /// libp2p peer id.
    pub peerid: String,
    /// Remote address (a multiaddr).
    pub addr: String,
    /// True if the peer connected to us.
    pub inbound: bool,
    /// `inbound` or `outbound`.
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

impl From<crate::p2p::PeerInfo> for PeerInfo {
    fn from(p: crate::p2p::PeerInfo) -> Self {
        PeerInfo {
            id: p.id,
            peerid: p.peerid,
            addr: p.addr,
            inbound: p.inbound,
            direction: p.direction.to_string(),
            score: p.score,
            startingheight: p.startingheight,
            tipheight: p.tipheight,
            bytessent: p.bytessent,
            bytesrecv: p.bytesrecv,
            pingtime: p.pingtime,
            conntime: p.conntime,
            subver: p.subver,
        }
    }
}

/// `getnetworkinfo`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkInfo {
    /// Our peer id.
    pub peerid: String,
    /// Addresses we listen on, each ending in `/p2p/<peer id>` (ready for `--bootnode`).
    pub listenaddrs: Vec<String>,
    /// Gossip topics we subscribe to.
    pub topics: Vec<String>,
    /// Protocol ids we speak.
    pub protocols: Vec<String>,
    /// Established connections.
    pub connections: u64,
    /// Of which inbound.
    pub connections_in: u64,
    /// Of which outbound.
    pub connections_out: u64,
    /// False after `setnetworkactive false`.
    pub networkactive: bool,
    /// Bans in force.
    pub banned: u64,
    /// Wire protocol version.
    pub version: u32,
    /// Our agent string.
    pub subversion: String,
    /// Network name.
    pub network: String,
}

impl NetworkInfo {
    /// The network service's facts plus the fields the RPC layer adds.
    pub fn new(i: crate::p2p::NetworkInfo, network: &str) -> NetworkInfo {
        NetworkInfo {
            peerid: i.peerid,
            listenaddrs: i.listenaddrs,
            topics: i.topics,
            protocols: i.protocols,
            connections: i.connections as u64,
            connections_in: i.connections_in as u64,
            connections_out: i.connections_out as u64,
            networkactive: i.networkactive,
            banned: i.banned as u64,
            version: crate::p2p::wire::PROTOCOL_VERSION,
            subversion: crate::p2p::behaviour::AGENT.to_string(),
            network: network.to_string(),
        }
    }
}

/// A banned peer, for `listbanned`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BanInfo {
    /// Peer id.
    pub peerid: String,
    /// Unix time the ban ends.
    pub banned_until: u64,
    /// Why.
    pub ban_reason: String,
}

impl From<crate::p2p::BanInfo> for BanInfo {
    fn from(b: crate::p2p::BanInfo) -> Self {
        BanInfo { peerid: b.peerid, banned_until: b.banned_until, ban_reason: b.ban_reason }
    }
}
