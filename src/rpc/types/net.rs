//! Parameters and results of the network methods.

use serde::{Deserialize, Serialize};

pub use crate::p2p::{BanInfo, PeerInfo};

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
