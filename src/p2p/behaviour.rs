//! The libp2p behaviour and swarm: TCP + Noise + Yamux, connection limits, a ban list,
//! identify, ping, gossipsub, the sync request-response protocol, Kademlia and (optionally)
//! mDNS.

use super::wire::{self, SyncCodec, Topic, MAX_GOSSIP_BYTES};
use crate::consensus::Network;
use libp2p::gossipsub::{self, MessageAuthenticity, MessageId, ValidationMode};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    allow_block_list, connection_limits, identify, identity, kad, mdns, noise, ping, request_response, tcp,
    yamux, Multiaddr, Swarm,
};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why the network could not start: the node key, the libp2p stack or a listen address.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The node key file exists but is not a key.
    #[error(
        "the node key {path} {what}: move it away (e.g. `mv {path} {path}.bad`) and restart to make \
         a new one (the node's peer id changes), or restore it from a backup",
        path = .path.display()
    )]
    BadKey {
        /// The file.
        path: PathBuf,
        /// "is empty" or "is corrupt (N bytes ...)".
        what: String,
    },
    /// Reading or writing the node key failed.
    #[error("{action} the node key {path}: {source}", path = .path.display())]
    KeyFile {
        /// "reading" or "writing".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// libp2p refused to build the transport or a behaviour (the message is libp2p's).
    #[error("building the network stack ({part}): {detail}")]
    Stack {
        /// Which part.
        part: &'static str,
        /// libp2p's error, as it prints it.
        detail: String,
    },
    /// A listen address cannot be bound.
    #[error("cannot listen for peers on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why, with what to pass instead.
        reason: String,
    },
}

fn stack(part: &'static str) -> impl Fn(&dyn std::fmt::Display) -> SetupError {
    move |e| SetupError::Stack { part, detail: e.to_string() }
}

/// Agent string announced by identify.
pub const AGENT: &str = concat!("quarry/", env!("CARGO_PKG_VERSION"));
/// A connection whose TCP connect, Noise handshake and Yamux negotiation take longer than
/// this fails (libp2p's default is 10 s; a handshake on loopback takes milliseconds, across
/// the world a few round trips).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A sync request unanswered after this long fails with a timeout.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Every protocol the node speaks, composed.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Inbound handshakes in progress per source address (first: it refuses before the
    /// global caps count the connection).
    pub inbound: super::inbound::InboundGuard,
    /// Connection caps.
    pub limits: connection_limits::Behaviour,
    /// Banned peers (refused at connection time).
    pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    /// Exchange of listen addresses, agent and protocol version.
    pub identify: identify::Behaviour,
    /// Liveness and round-trip time.
    pub ping: ping::Behaviour,
    /// Block and transaction relay.
    pub gossipsub: gossipsub::Behaviour,
    /// Status, headers and blocks on request.
    pub sync: request_response::Behaviour<SyncCodec>,
    /// Peer discovery.
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    /// LAN discovery, when enabled.
    pub mdns: Toggle<mdns::tokio::Behaviour>,
}

/// Swarm settings.
#[derive(Clone, Debug)]
pub struct SwarmSettings {
    /// Network (topics and protocol ids are per network).
    pub network: Network,
    /// Most established connections.
    pub max_connections: u32,
    /// Enable mDNS.
    pub mdns: bool,
}

/// Messages gossipsub queues per connection (see [`gossip_config`]).
pub const GOSSIP_QUEUE: usize = 30_000;

/// The gossipsub configuration: anonymous messages (no author, sequence number or signature)
/// validated by the application, with content-addressed ids.
pub fn gossip_config() -> Result<gossipsub::Config, SetupError> {
    gossipsub::ConfigBuilder::default()
        .validation_mode(ValidationMode::Anonymous)
        .validate_messages()
        .message_id_fn(|m: &gossipsub::Message| MessageId::from(wire::message_id(&m.data)))
        .max_transmit_size(MAX_GOSSIP_BYTES)
        .heartbeat_interval(Duration::from_millis(700))
        // Unvalidated messages stay in the cache this many heartbeats (8.4 s), so a verdict
        // from a core that was busy for a few seconds still forwards the message.
        .history_length(12)
        // Messages queued per connection before gossipsub drops new ones ("Send Queue full":
        // a forwarded transaction lost for that peer). The default 5,000 overflowed at 5,000
        // tx/s on a 4-node testnet with a busy core (600 of 100,000 transactions never reached
        // the miner); 30,000 holds 6 s of that, and a forward may wait 5 s (default 1 s).
        .connection_handler_queue_len(GOSSIP_QUEUE)
        .forward_queue_duration(Duration::from_secs(5))
        .build()
        .map_err(|e| stack("gossipsub configuration")(&e))
}

/// Builds the swarm (not yet listening).
pub fn build_swarm(key: identity::Keypair, settings: &SwarmSettings) -> Result<Swarm<Behaviour>, SetupError> {
    let network = settings.network;
    let params = network.params();
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .map_err(|e| stack("TCP transport")(&e))?
        .with_behaviour(|key| {
            let peer_id = key.public().to_peer_id();
            let mut gossipsub = gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, gossip_config()?)?;
            for t in Topic::ALL {
                gossipsub.subscribe(&gossipsub::IdentTopic::new(t.name(network)))?;
            }
            let sync = request_response::Behaviour::with_codec(
                SyncCodec { max_block: params.max_block_size },
                [(wire::sync_protocol(network), request_response::ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(REQUEST_TIMEOUT)
                    .with_max_concurrent_streams(64),
            );
            let mut kad = kad::Behaviour::with_config(
                peer_id,
                kad::store::MemoryStore::new(peer_id),
                kad::Config::new(wire::kad_protocol(network)),
            );
            kad.set_mode(Some(kad::Mode::Server));
            let mdns = if settings.mdns {
                Some(mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id)?)
            } else {
                None
            };
            Ok(Behaviour {
                inbound: Default::default(),
                limits: connection_limits::Behaviour::new(
                    connection_limits::ConnectionLimits::default()
                        .with_max_established(Some(settings.max_connections))
                        .with_max_established_incoming(Some(max_inbound(settings.max_connections)))
                        .with_max_established_per_peer(Some(2))
                        .with_max_pending_incoming(Some(super::inbound::MAX_PENDING_INBOUND)),
                ),
                blocked: Default::default(),
                identify: identify::Behaviour::new(
                    identify::Config::new(wire::identify_protocol(network), key.public())
                        .with_agent_version(AGENT.into()),
                ),
                ping: ping::Behaviour::new(ping::Config::new().with_interval(Duration::from_secs(10))),
                gossipsub,
                sync,
                kad,
                mdns: mdns.into(),
            })
        })
        .map_err(|e| stack("network behaviour")(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .with_connection_timeout(HANDSHAKE_TIMEOUT)
        .build();
    Ok(swarm)
}

/// Established inbound connections allowed out of `max_connections`: an eighth of the
/// slots (at most 8) stay free for our own dials (bootnodes, `addnode`), so inbound peers
/// alone can never fill the node. Below 8 connections every slot may be inbound.
pub fn max_inbound(max_connections: u32) -> u32 {
    if max_connections < 8 {
        max_connections
    } else {
        max_connections - (max_connections / 8).min(8)
    }
}

/// The TCP socket address of a `/ip4|ip6/../tcp/PORT` listen address, if it is one.
fn tcp_socket_addr(addr: &Multiaddr) -> Option<SocketAddr> {
    let mut it = addr.iter();
    let ip: IpAddr = match it.next()? {
        Protocol::Ip4(ip) => ip.into(),
        Protocol::Ip6(ip) => ip.into(),
        _ => return None,
    };
    match it.next()? {
        Protocol::Tcp(port) => Some(SocketAddr::new(ip, port)),
        _ => None,
    }
}

/// Starts listening on every address of `addrs`, failing at once (not later as a swarm event)
/// if one cannot be bound.
///
/// libp2p-tcp (0.44) binds every listening socket with `SO_REUSEPORT`, so on Linux a second
/// node of the same user would share a port already in use (the kernel spreads incoming
/// connections over both) instead of failing. Each fixed port is therefore first bound
/// with a plain socket (no `SO_REUSEPORT`), which the kernel refuses while any socket listens
/// there; then the swarm listens. (Two nodes started in the same instant could still both
/// pass the check before either listens; the window is the microseconds between the two
/// binds.)
pub fn listen(swarm: &mut Swarm<Behaviour>, addrs: &[Multiaddr]) -> Result<(), SetupError> {
    let fail = |addr: &Multiaddr, reason: String| SetupError::Listen { addr: addr.clone(), reason };
    // All checks first: a dual-stack check of [::]:P must not meet our own 0.0.0.0:P.
    for addr in addrs {
        let Some(sa) = tcp_socket_addr(addr).filter(|sa| sa.port() != 0) else { continue };
        if let Err(e) = std::net::TcpListener::bind(sa) {
            return Err(if e.kind() == std::io::ErrorKind::AddrInUse {
                fail(addr, "address in use: pass --p2p-port or --listen with a free port".into())
            } else {
                fail(addr, format!("{e} (pass --p2p-port or --listen)"))
            });
        }
    }
    for addr in addrs {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| fail(addr, format!("{e} (pass --p2p-port or --listen)")))?;
    }
    Ok(())
}

/// Loads the node key from `path` (protobuf-encoded ed25519 keypair), creating it with mode
/// 0600 on first start, so the peer id is stable across restarts.
pub fn load_or_create_key(path: &Path) -> Result<identity::Keypair, SetupError> {
    let key_file = |action, source| SetupError::KeyFile { action, path: path.to_path_buf(), source };
    match std::fs::read(path) {
        // libp2p reads an empty or cut-short file as an RSA key and answers "cargo feature
        // `rsa` is not enabled", which says nothing about the file: name the problem instead.
        Ok(bytes) => identity::Keypair::from_protobuf_encoding(&bytes).map_err(|_| SetupError::BadKey {
            path: path.to_path_buf(),
            what: if bytes.is_empty() {
                "is empty".to_string()
            } else {
                format!("is corrupt ({} bytes that are not a protobuf-encoded ed25519 keypair)", bytes.len())
            },
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = identity::Keypair::generate_ed25519();
            let bytes = key.to_protobuf_encoding().map_err(|e| stack("node key encoding")(&e))?;
            let tmp = path.with_extension("tmp");
            {
                use std::io::Write;
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create(true).truncate(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut f = opts.open(&tmp).map_err(|e| key_file("writing", e))?;
                f.write_all(&bytes).and_then(|()| f.sync_all()).map_err(|e| key_file("writing", e))?;
            }
            std::fs::rename(&tmp, path).map_err(|e| key_file("writing", e))?;
            Ok(key)
        }
        Err(e) => Err(key_file("reading", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_or_corrupt_node_key_is_named_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node_key");
        let made = load_or_create_key(&path).unwrap();
        assert_eq!(load_or_create_key(&path).unwrap().public(), made.public(), "the same key on restart");
        let good = std::fs::read(&path).unwrap();
        for (bytes, what) in [(&[][..], "is empty"), (&good[..good.len() / 2], "is corrupt (34 bytes")] {
            std::fs::write(&path, bytes).unwrap();
            let e = load_or_create_key(&path).unwrap_err();
            assert!(matches!(&e, SetupError::BadKey { path: p, .. } if *p == path), "{e:?}");
            let e = e.to_string();
            assert!(e.contains(what) && e.contains(&path.display().to_string()), "{e}");
            assert!(e.contains("move it away") && !e.contains("rsa"), "{e}");
        }
    }
}
