//! Misbehaving libp2p peers: each is the library's own swarm ([`build_swarm`], a fresh
//! identity), so it completes the Noise and yamux handshakes and speaks the real protocols,
//! then abuses them:
//!
//! - `garbage-gossip`: random bytes published as blocks (after the handshake, on gossipsub);
//! - `oversized-request`: sync requests whose frame (19 KB, a 600-hash locator) is over the
//!   protocol's 16 KiB request limit;
//! - `over-count`: `GetBlocks` of 17 hashes, over the 16 a request may ask for;
//! - `request-flood`: cheap `GetHeaders` requests as fast as the swarm sends them.
//!
//! Each one is watched until the node disconnects it (and then redialled once, which a ban
//! refuses) or its patience runs out. The first three must be cut off; the flood is
//! reported (the node may serve it within its rate limit, or answer Busy).

use crate::consensus::Network;
use crate::p2p::behaviour::{build_swarm, Behaviour, BehaviourEvent, SwarmSettings};
use crate::p2p::wire::{Request, Response, Topic, MAX_BLOCKS_PER_REQUEST, MAX_REQUEST_BYTES};
use crate::primitives::Hash256;
use anyhow::{anyhow, Result};
use futures::StreamExt;
use libp2p::gossipsub::IdentTopic;
use libp2p::request_response;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm};
use rand::RngCore;
use serde::Serialize;
use std::time::{Duration, Instant};

/// How long a malformed peer is watched for its disconnect.
const PATIENCE: Duration = Duration::from_secs(20);
/// Between two malformed messages.
const EVERY: Duration = Duration::from_millis(300);
/// Flood requests sent per 10 ms step.
const FLOOD_STEP: usize = 20;

/// What one misbehaving peer did and what the node did to it.
#[derive(Clone, Debug, Serialize)]
pub struct PeerReport {
    /// The misbehaviour.
    pub kind: &'static str,
    /// Whether the node must cut it off.
    pub expect_cut: bool,
    /// Messages or requests sent.
    pub sent: u64,
    /// Responses other than Busy.
    pub answered: u64,
    /// Busy responses.
    pub busy: u64,
    /// Requests that failed (stream refused or reset, timeout, connection closed).
    pub failed: u64,
    /// The first failure, as the swarm reported it.
    pub first_failure: Option<String>,
    /// Seconds from its first message to the node's disconnect (None: still connected).
    pub disconnected_after_s: Option<f64>,
    /// A redial after the disconnect was refused (a ban).
    pub redial_refused: Option<bool>,
}

impl PeerReport {
    /// True when the node disconnected the peer.
    pub fn cut_off(&self) -> bool {
        self.disconnected_after_s.is_some()
    }

    /// One human line.
    pub fn line(&self) -> String {
        format!(
            "peer {}: sent {}, answered {}, busy {}, failed {}{}; {}{}",
            self.kind,
            self.sent,
            self.answered,
            self.busy,
            self.failed,
            self.first_failure.as_ref().map(|e| format!(" (first: {e})")).unwrap_or_default(),
            self.disconnected_after_s
                .map_or("still connected at the end".to_string(), |s| format!("disconnected after {s:.1} s")),
            match self.redial_refused {
                Some(true) => ", redial refused (banned)",
                Some(false) => ", redial accepted",
                None => "",
            }
        )
    }
}

/// What a peer does once connected.
#[derive(Clone, Copy)]
enum Abuse {
    GarbageGossip,
    Oversized,
    OverCount,
    Flood(Duration),
}

impl Abuse {
    fn kind(self) -> &'static str {
        match self {
            Abuse::GarbageGossip => "garbage-gossip",
            Abuse::Oversized => "oversized-request",
            Abuse::OverCount => "over-count",
            Abuse::Flood(_) => "request-flood",
        }
    }
}

/// Runs every misbehaving peer against `addr` (with `/p2p/<id>`), one after another; the
/// flood lasts `flood_for`.
pub(super) async fn run(addr: Multiaddr, flood_for: Duration) -> Result<Vec<PeerReport>> {
    let target = match addr.iter().last() {
        Some(libp2p::multiaddr::Protocol::P2p(id)) => id,
        _ => return Err(anyhow!("{addr} does not end in /p2p/<peer id>")),
    };
    let mut out = Vec::new();
    for abuse in [Abuse::GarbageGossip, Abuse::Oversized, Abuse::OverCount, Abuse::Flood(flood_for)] {
        out.push(misbehave(&addr, target, abuse).await?);
    }
    Ok(out)
}

/// Counters of one peer's run.
#[derive(Default)]
struct Tally {
    answered: u64,
    busy: u64,
    failed: u64,
    first_failure: Option<String>,
    closed: bool,
}

/// Drives the swarm for up to `d`, counting sync answers and noting a disconnect from
/// `target`; Busy answers the node's own requests (not a fault, and it asks nothing of us).
async fn drive(swarm: &mut Swarm<Behaviour>, target: PeerId, d: Duration, tally: &mut Tally) {
    let end = tokio::time::Instant::now() + d;
    while let Ok(Some(event)) = tokio::time::timeout_at(end, swarm.next()).await {
        match event {
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } if peer_id == target => {
                tally.closed = true;
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(e)) => match e {
                request_response::Event::Message { message, .. } => match message {
                    request_response::Message::Request { channel, .. } => {
                        let _ = swarm.behaviour_mut().sync.send_response(channel, Response::Busy);
                    }
                    request_response::Message::Response { response: Response::Busy, .. } => tally.busy += 1,
                    request_response::Message::Response { .. } => tally.answered += 1,
                },
                request_response::Event::OutboundFailure { error, .. } => {
                    tally.failed += 1;
                    tally.first_failure.get_or_insert_with(|| error.to_string());
                }
                _ => {}
            },
            _ => {}
        }
        if tally.closed {
            return;
        }
    }
}

/// One misbehaving peer.
async fn misbehave(addr: &Multiaddr, target: PeerId, abuse: Abuse) -> Result<PeerReport> {
    let settings = SwarmSettings { network: Network::Regtest, max_connections: 8, mdns: false };
    let mut swarm =
        build_swarm(libp2p::identity::Keypair::generate_ed25519(), &settings).map_err(|e| anyhow!(e))?;
    swarm.dial(addr.clone()).map_err(|e| anyhow!("dialling {addr}: {e}"))?;
    let blocks = IdentTopic::new(Topic::Blocks.name(Network::Regtest));
    let mut tally = Tally::default();
    // Connected (and, for gossip, the node subscribed to the block topic as we see it).
    let ready = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let subscribed = swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .any(|(p, topics)| *p == target && topics.iter().any(|t| **t == blocks.hash()));
        if subscribed || (swarm.is_connected(&target) && !matches!(abuse, Abuse::GarbageGossip)) {
            break;
        }
        if tokio::time::Instant::now() > ready {
            return Err(anyhow!("peer {}: not connected to the node after 20 s", abuse.kind()));
        }
        drive(&mut swarm, target, Duration::from_millis(50), &mut tally).await;
    }
    let t = Instant::now();
    let mut sent = 0u64;
    let patience = match abuse {
        Abuse::Flood(d) => d,
        _ => PATIENCE,
    };
    while t.elapsed() < patience && !tally.closed && swarm.is_connected(&target) {
        let step = match abuse {
            Abuse::GarbageGossip => {
                let mut junk = vec![0u8; 2048];
                rand::thread_rng().fill_bytes(&mut junk);
                // Fails only when no peer takes the topic (the node has dropped us).
                if swarm.behaviour_mut().gossipsub.publish(blocks.clone(), junk).is_ok() {
                    sent += 1;
                }
                EVERY
            }
            Abuse::Oversized => {
                let locator = vec![Hash256::ZERO; 600];
                debug_assert!(
                    Request::GetHeaders { locator: locator.clone(), max: 10 }.encode().len()
                        > MAX_REQUEST_BYTES
                );
                swarm
                    .behaviour_mut()
                    .sync
                    .send_request(&target, Request::GetHeaders { locator, max: 10 }.into());
                sent += 1;
                EVERY
            }
            Abuse::OverCount => {
                let hashes = vec![Hash256::ZERO; MAX_BLOCKS_PER_REQUEST + 1];
                swarm.behaviour_mut().sync.send_request(&target, Request::GetBlocks(hashes).into());
                sent += 1;
                EVERY
            }
            Abuse::Flood(_) => {
                for _ in 0..FLOOD_STEP {
                    let request = Request::GetHeaders { locator: vec![Hash256::ZERO], max: 1 };
                    swarm.behaviour_mut().sync.send_request(&target, request.into());
                }
                sent += FLOOD_STEP as u64;
                Duration::from_millis(10)
            }
        };
        drive(&mut swarm, target, step, &mut tally).await;
    }
    // Answers still in flight.
    if !tally.closed {
        drive(&mut swarm, target, Duration::from_secs(1), &mut tally).await;
    }
    let disconnected_after_s =
        (tally.closed || !swarm.is_connected(&target)).then(|| t.elapsed().as_secs_f64());
    let redial_refused = if disconnected_after_s.is_some() {
        let _ = swarm.dial(addr.clone());
        let mut redial = Tally::default();
        drive(&mut swarm, target, Duration::from_secs(2), &mut redial).await;
        Some(!swarm.is_connected(&target))
    } else {
        None
    };
    Ok(PeerReport {
        kind: abuse.kind(),
        expect_cut: !matches!(abuse, Abuse::Flood(_)),
        sent,
        answered: tally.answered,
        busy: tally.busy,
        failed: tally.failed,
        first_failure: tally.first_failure,
        disconnected_after_s,
        redial_refused,
    })
}
