//! The network service: one tokio task owns the swarm. It decodes what peers send (once, at
//! the edge), hands blocks, transactions and sync messages to the chain's owner through a
//! [`CoreLink`] (never waiting on it inside the event loop: each item carries a token and
//! its result comes back on one bounded completion channel, with no task per message),
//! reports a gossip validation result for every message, executes the sync machine's
//! actions, and applies the peer policy. This module does not know the node: the link is a
//! trait the node implements.

use super::behaviour::{Behaviour, BehaviourEvent, SwarmSettings};
use super::link::{
    Acceptance, CoreLink, LinkError, NetDone, NetJob, NetOutcome, NetWork, SyncEvent, Verdict,
};
use super::peers::{BanList, Misbehaviour, Scores, BAN_SECONDS};
use super::sync::{Action, Failure, ReqId};
use super::wire::{self, GossipMessage, Request, Response, SyncRequest, Topic};
use super::{AddNodeMode, BanInfo, BlockAnnouncement, Command, NetworkInfo, P2pConfig, P2pError, PeerInfo};
use crate::clock::{unix_ms, unix_secs as now};
use crate::consensus::Network;
use crate::primitives::Hash256;
use futures::StreamExt;
use libp2p::gossipsub::{self, MessageAcceptance, MessageId};
use libp2p::request_response::{self, OutboundFailure, OutboundRequestId, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{identify, ping, Multiaddr, PeerId, Swarm};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

mod budget;
mod commands;

use budget::{Budget, Gossip};

/// How often the sync machine ticks and added nodes are redialled.
const TICK: Duration = Duration::from_millis(500);
/// Longest a gossiped transaction waits for room in the core's queue before it is ignored;
/// under the 8.4 s gossipsub keeps an unvalidated message, so an Accept still forwards it.
const TX_WAIT: Duration = Duration::from_secs(5);

/// What the service remembers about an item in the core's queue, by token.
enum Pending {
    /// A sync step: its actions are executed.
    Step,
    /// The periodic tick (one in flight at a time).
    Tick,
    /// A gossip message awaiting its verdict, and the budget it holds.
    Gossip { id: MessageId, source: PeerId, block: bool, cost: usize, label: &'static str },
    /// A peer's request awaiting its answer.
    Serve { peer: PeerId, channel: ResponseChannel<Response> },
}

struct Peer {
    id: u64,
    addr: Multiaddr,
    inbound: bool,
    connections: usize,
    starting_height: Option<u32>,
    tip_height: Option<u32>,
    bytes_sent: u64,
    bytes_recv: u64,
    ping: Option<Duration>,
    conntime: u64,
    agent: Option<String>,
}

/// The service state.
struct Service {
    swarm: Swarm<Behaviour>,
    link: Box<dyn CoreLink>,
    network: Network,
    pending: HashMap<u64, Pending>,
    next_token: u64,
    /// Gossip awaiting a verdict and requests being served, each bounded.
    budget: Budget,
    outbound: HashMap<OutboundRequestId, ReqId>,
    /// Our `GetBlockTxn` requests, with the gossip message waiting on each answer.
    txn_fetches: HashMap<OutboundRequestId, (Hash256, Pending)>,
    /// Blocks relayed or announced before they are connected (newest last, at most
    /// [`SERVED_BLOCKS`]): `GetBlockTxn` for them is answered here, not by the busy core.
    served: std::collections::VecDeque<std::sync::Arc<crate::consensus::CheckedBlock>>,
    peers: HashMap<PeerId, Peer>,
    next_peer_id: u64,
    scores: Scores<PeerId>,
    bans: BanList,
    /// `addnode add` and `--bootnode` addresses, kept connected.
    added: Vec<Multiaddr>,
    active: bool,
    /// Gossiped transactions the core's queue was too full to take, with when they came
    /// (their bytes count in the budget).
    waiting_txs: std::collections::VecDeque<(NetWork, Pending, Instant)>,
    tick_in_flight: bool,
    last_redial: Instant,
    last_kad: Instant,
    /// Log lines that peers can cause, rate-limited.
    log_throttle: super::throttle::LogThrottle,
    /// Shared with the node's [`super::P2pHandle`]: a peer takes only full blocks.
    full_only: Arc<std::sync::atomic::AtomicBool>,
}

/// A bound swarm, ready for [`run`].
pub struct Bound {
    swarm: Swarm<Behaviour>,
    settings: SwarmSettings,
}

/// Loads the node key, builds the swarm and starts listening, so a port in use fails at
/// start, before anything else runs. Call inside the tokio runtime.
pub fn bind(network: Network, config: &P2pConfig) -> Result<Bound, super::behaviour::SetupError> {
    let key = super::behaviour::load_or_create_key(&config.key_path)?;
    let settings = SwarmSettings { network, max_connections: config.max_connections, mdns: config.mdns };
    let mut swarm = super::behaviour::build_swarm(key, &settings)?;
    super::behaviour::listen(&mut swarm, &config.listen)?;
    info!(target: "p2p", peer = %swarm.local_peer_id(), "node key loaded");
    Ok(Bound { swarm, settings })
}

/// Runs the service until `shutdown` is notified.
pub(crate) async fn run(
    bound: Bound,
    config: P2pConfig,
    link: Box<dyn CoreLink>,
    mut done_rx: mpsc::Receiver<NetDone>,
    mut commands: mpsc::Receiver<Command>,
    full_only: Arc<std::sync::atomic::AtomicBool>,
    shutdown: Arc<tokio::sync::Notify>,
) {
    let Bound { mut swarm, settings } = bound;
    let mut bans = BanList::load(&config.ban_path, now());
    for (peer, _) in bans.entries() {
        if let Ok(p) = peer.parse::<PeerId>() {
            swarm.behaviour_mut().blocked.block_peer(p);
        }
    }
    bans.expire(now());
    let mut service = Service {
        swarm,
        link,
        network: settings.network,
        pending: HashMap::new(),
        next_token: 0,
        budget: Budget::default(),
        outbound: HashMap::new(),
        txn_fetches: HashMap::new(),
        served: std::collections::VecDeque::new(),
        peers: HashMap::new(),
        next_peer_id: 0,
        scores: Scores::default(),
        bans,
        added: config.bootnodes.clone(),
        active: true,
        waiting_txs: std::collections::VecDeque::new(),
        tick_in_flight: false,
        last_redial: Instant::now(),
        last_kad: Instant::now(),
        log_throttle: Default::default(),
        full_only,
    };
    for addr in config.bootnodes.clone() {
        service.dial(addr);
    }
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.notified() => break,
            event = service.swarm.select_next_some() => service.on_swarm_event(event),
            Some(cmd) = commands.recv() => service.on_command(cmd),
            Some(done) = done_rx.recv() => service.on_done(done),
            _ = tick.tick() => service.on_tick(),
        }
    }
    info!(target: "p2p", "network service stopped");
}

impl Service {
    fn dial(&mut self, addr: Multiaddr) {
        if let Err(e) = self.swarm.dial(addr.clone()) {
            debug!(target: "p2p", %addr, error = %e, "dial failed");
        }
    }

    /// Queues `work` for the core, remembering `pending` under a fresh token. Gives the
    /// pending record back if the core is busy or stopped.
    fn submit(&mut self, work: NetWork, pending: Pending) -> Result<(), Pending> {
        self.submit_keep(work, pending).map_err(|(pending, _, _)| pending)
    }

    /// [`Service::submit`], giving the work back too when the core does not take it.
    fn submit_keep(&mut self, work: NetWork, pending: Pending) -> Result<(), (Pending, NetWork, LinkError)> {
        let token = self.next_token;
        self.next_token += 1;
        match self.link.submit(NetJob { token, work }) {
            Ok(()) => {
                self.pending.insert(token, pending);
                Ok(())
            }
            Err((e, job)) => {
                debug!(target: "p2p", error = %e, "core did not take the item");
                Err((pending, job.work, e))
            }
        }
    }

    /// Offers the gossiped transactions the core was too busy to take again, oldest first,
    /// until it refuses one; those waiting past [`TX_WAIT`] are ignored (counted in
    /// `quarry_mempool_refused_total{reason="core_busy"}`).
    fn retry_waiting_txs(&mut self) {
        while let Some((work, pending, since)) = self.waiting_txs.pop_front() {
            if since.elapsed() > TX_WAIT {
                crate::metrics::tx_refused("core_busy");
                self.finish_gossip(pending, Verdict::ignore());
                continue;
            }
            match self.submit_keep(work, pending) {
                Ok(()) => {}
                Err((pending, work, LinkError::Busy)) => {
                    self.waiting_txs.push_front((work, pending, since));
                    break;
                }
                Err((pending, _, LinkError::Stopped)) => self.finish_gossip(pending, Verdict::ignore()),
            }
        }
    }

    /// Queues a sync event. A busy core drops it (the machine's timers and the tick's peer
    /// reconciliation recover).
    fn sync_step(&mut self, event: SyncEvent) {
        if self.submit(NetWork::Sync(event), Pending::Step).is_err() {
            warn!(target: "p2p::sync", "sync step dropped: the node core is busy");
        }
    }

    fn penalise(&mut self, peer: PeerId, why: Misbehaviour) {
        let t = now();
        let ban = self.scores.entry(&peer, t).penalise(&why);
        let score = self.scores.score(&peer);
        warn!(target: "p2p", %peer, score, "peer misbehaved: {why}");
        if ban && !self.bans.is_banned(&peer.to_string(), t) {
            warn!(target: "p2p", %peer, score, seconds = BAN_SECONDS, "banning peer");
            self.bans.ban(&peer.to_string(), t, BAN_SECONDS, why.to_string());
            self.swarm.behaviour_mut().blocked.block_peer(peer);
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    fn apply(&mut self, actions: Vec<Action<PeerId>>) {
        for action in actions {
            match action {
                Action::Send { peer, id, request } => {
                    if !self.peers.contains_key(&peer) {
                        // Gone meanwhile: do not redial it, tell the machine.
                        let failure = Failure::Disconnected;
                        self.sync_step(SyncEvent::Failure { peer, id, failure });
                        continue;
                    }
                    debug!(target: "p2p::sync", %peer, id, request = request_name(&request), "sending request");
                    if let Some(p) = self.peers.get_mut(&peer) {
                        p.bytes_sent += request.encode().len() as u64;
                    }
                    let rid = self.swarm.behaviour_mut().sync.send_request(&peer, request.into());
                    self.outbound.insert(rid, id);
                }
                Action::Penalise { peer, why } => self.penalise(peer, why),
                Action::Disconnect { peer, reason } => {
                    info!(target: "p2p", %peer, "disconnecting: {reason}");
                    // Another chain or version: stop redialling it (it stays addable by hand).
                    self.added.retain(|a| super::peer_of(a) != Some(peer));
                    let _ = self.swarm.disconnect_peer_id(peer);
                }
                Action::Process { .. } => {} // handled on the core
            }
        }
    }

    fn on_done(&mut self, done: NetDone) {
        if let NetOutcome::Followup(actions) = done.outcome {
            self.apply(actions);
            return;
        }
        let Some(pending) = self.pending.remove(&done.token) else { return };
        self.on_done_pending(pending, done.outcome);
        self.retry_waiting_txs();
    }

    fn on_done_pending(&mut self, pending: Pending, outcome: NetOutcome) {
        match (pending, outcome) {
            (pending @ Pending::Gossip { .. }, NetOutcome::FetchTxs { block, request }) => {
                let Pending::Gossip { source, .. } = &pending else { unreachable!() };
                let source = *source;
                if !self.peers.contains_key(&source) {
                    self.finish_gossip(pending, Verdict::ignore());
                    return;
                }
                if let Some(p) = self.peers.get_mut(&source) {
                    p.bytes_sent += request.encode().len() as u64;
                }
                debug!(target: "p2p::gossip", peer = %source, %block, "asking for a compact block's missing transactions");
                let rid = self.swarm.behaviour_mut().sync.send_request(&source, request.into());
                self.txn_fetches.insert(rid, (block, pending));
            }
            (pending @ Pending::Gossip { .. }, outcome) => {
                let verdict = match outcome {
                    NetOutcome::Verdict(v) => v,
                    _ => Verdict::ignore(),
                };
                self.finish_gossip(pending, verdict);
            }
            (Pending::Serve { peer, channel }, outcome) => {
                self.budget.release_serving();
                let (response, actions) = match outcome {
                    NetOutcome::Response { response, actions } => (response, actions),
                    _ => (Response::Busy, Vec::new()),
                };
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.bytes_sent += response_size(&response) as u64;
                }
                let _ = self.swarm.behaviour_mut().sync.send_response(channel, response);
                self.apply(actions);
            }
            (Pending::Tick, outcome) => {
                self.tick_in_flight = false;
                if let NetOutcome::Actions(actions) = outcome {
                    self.apply(actions);
                }
            }
            (Pending::Step, NetOutcome::Actions(actions)) => self.apply(actions),
            (Pending::Step, _) => {}
        }
    }

    /// Reports a gossip message's verdict, releases its budget, penalises and applies.
    fn finish_gossip(&mut self, pending: Pending, verdict: Verdict) {
        let Pending::Gossip { id, source, block, cost, label } = pending else { return };
        self.budget.release_gossip(if block { Gossip::Block } else { Gossip::Tx }, cost);
        let acceptance = match verdict.acceptance {
            Acceptance::Accept => MessageAcceptance::Accept,
            Acceptance::Reject => MessageAcceptance::Reject,
            Acceptance::Ignore => MessageAcceptance::Ignore,
        };
        crate::metrics::gossip(label, verdict_label(&acceptance));
        self.swarm.behaviour_mut().gossipsub.report_message_validation_result(&id, &source, acceptance);
        if let (Some(h), Some(p)) = (verdict.height, self.peers.get_mut(&source)) {
            p.tip_height = Some(p.tip_height.unwrap_or(0).max(h));
        }
        if let Some(why) = verdict.fault {
            self.penalise(source, why);
        }
        self.apply(verdict.actions);
    }

    /// The answer (or failure) of a `GetBlockTxn`: back to the core with its gossip message.
    fn on_blocktxn(
        &mut self,
        peer: PeerId,
        block: Hash256,
        pending: Pending,
        answer: Result<Response, Failure>,
    ) {
        if let Err(pending) = self.submit(NetWork::BlockTxn { peer, block, answer }, pending) {
            self.finish_gossip(pending, Verdict::ignore());
        }
    }

    fn on_tick(&mut self) {
        self.retry_waiting_txs();
        let t = now();
        self.full_only.store(self.full_only_peers(), std::sync::atomic::Ordering::Relaxed);
        self.scores.tick(t);
        for peer in self.bans.expire(t) {
            if let Ok(p) = peer.parse::<PeerId>() {
                self.swarm.behaviour_mut().blocked.unblock_peer(p);
            }
        }
        // One tick in flight at a time; it also repairs the machine's peer set (events lost
        // while the core was busy). Its clock is when it was queued: a request is expired only
        // if no answer had been queued by then.
        if !self.tick_in_flight {
            let connected: Vec<PeerId> = self.peers.keys().copied().collect();
            let event = SyncEvent::Tick { connected, queued_ms: unix_ms() };
            self.tick_in_flight = self.submit(NetWork::Sync(event), Pending::Tick).is_ok();
        }
        if self.active && self.last_redial.elapsed() > Duration::from_secs(5) {
            self.last_redial = Instant::now();
            let missing: Vec<Multiaddr> = self
                .added
                .iter()
                .filter(|a| match super::peer_of(a) {
                    Some(p) => !self.swarm.is_connected(&p),
                    None => !self.peers.values().any(|p| &p.addr == *a),
                })
                .cloned()
                .collect();
            for addr in missing {
                self.dial(addr);
            }
        }
        if self.active && !self.peers.is_empty() && self.last_kad.elapsed() > Duration::from_secs(60) {
            self.last_kad = Instant::now();
            let _ = self.swarm.behaviour_mut().kad.bootstrap();
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(target: "p2p", %address, peer = %self.swarm.local_peer_id(), "listening");
            }
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, num_established, .. } => {
                if !self.active || self.bans.is_banned(&peer_id.to_string(), now()) {
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                if let Some(p) = self.peers.get_mut(&peer_id) {
                    p.connections = num_established.get() as usize;
                    return;
                }
                let inbound = endpoint.is_listener();
                let addr = endpoint.get_remote_address().clone();
                info!(target: "p2p", peer = %peer_id, %addr, inbound, "peer connected");
                if !inbound {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr.clone());
                }
                self.peers.insert(
                    peer_id,
                    Peer {
                        id: self.next_peer_id,
                        addr,
                        inbound,
                        connections: 1,
                        starting_height: None,
                        tip_height: None,
                        bytes_sent: 0,
                        bytes_recv: 0,
                        ping: None,
                        conntime: now(),
                        agent: None,
                    },
                );
                self.next_peer_id += 1;
                self.scores.entry(&peer_id, now());
                self.sync_step(SyncEvent::Connected(peer_id));
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established, cause, .. } => {
                if num_established > 0 {
                    if let Some(p) = self.peers.get_mut(&peer_id) {
                        p.connections = num_established as usize;
                    }
                    return;
                }
                if self.peers.remove(&peer_id).is_some() {
                    info!(target: "p2p", peer = %peer_id, cause = ?cause.map(|c| c.to_string()), "peer disconnected");
                    self.scores.remove(&peer_id);
                    self.sync_step(SyncEvent::Disconnected(peer_id));
                }
            }
            SwarmEvent::IncomingConnectionError { send_back_addr, error, .. } => {
                // A refusal by our own limits is worth a (rate-limited) line: it is the only
                // trace of a host holding handshakes open. Failed handshakes are the peer's
                // business.
                if let libp2p::swarm::ListenError::Denied { cause } = &error {
                    if let Some(held) = self.log_throttle.allow("inbound refused", Instant::now()) {
                        let suppressed = if held > 0 {
                            format!(" ({held} similar lines suppressed)")
                        } else {
                            String::new()
                        };
                        warn!(target: "p2p", addr = %send_back_addr, "inbound connection refused: {cause}{suppressed}");
                    }
                } else {
                    debug!(target: "p2p", addr = %send_back_addr, %error, "inbound connection failed");
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                debug!(target: "p2p", peer = ?peer_id, error = %error, "outgoing connection failed");
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                self.on_gossip(propagation_source, message_id, message);
            }
            BehaviourEvent::Sync(request_response::Event::Message { peer, message, .. }) => match message {
                request_response::Message::Request { request, channel, .. } => match request {
                    SyncRequest::Request(request) => self.on_request(peer, request, channel),
                    // Dropping the channel closes the stream unanswered.
                    SyncRequest::Malformed(error) => {
                        self.penalise(peer, Misbehaviour::Malformed { what: "sync request", error })
                    }
                },
                request_response::Message::Response { request_id, response } => {
                    if let Some((block, pending)) = self.txn_fetches.remove(&request_id) {
                        if let Some(p) = self.peers.get_mut(&peer) {
                            p.bytes_recv += response_size(&response) as u64;
                        }
                        self.on_blocktxn(peer, block, pending, Ok(response));
                        return;
                    }
                    let Some(id) = self.outbound.remove(&request_id) else { return };
                    debug!(target: "p2p::sync", %peer, id, bytes = response_size(&response), "response");
                    if let Some(p) = self.peers.get_mut(&peer) {
                        p.bytes_recv += response_size(&response) as u64;
                        if let Response::Status(s) = &response {
                            p.starting_height.get_or_insert(s.height);
                            p.tip_height = Some(p.tip_height.unwrap_or(0).max(s.height));
                        }
                    }
                    self.sync_step(SyncEvent::Response { peer, id, response });
                }
            },
            BehaviourEvent::Sync(request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            }) => {
                let failure = match &error {
                    OutboundFailure::Timeout => Failure::Timeout,
                    OutboundFailure::Io(e) => match crate::p2p::wire::decode_failure(e) {
                        Some(d) => Failure::Malformed(d),
                        None => Failure::Io(e.kind()),
                    },
                    OutboundFailure::UnsupportedProtocols => Failure::Unsupported,
                    _ => Failure::Disconnected,
                };
                if let Some((block, pending)) = self.txn_fetches.remove(&request_id) {
                    debug!(target: "p2p::gossip", %peer, %block, error = %error, "getblocktxn failed");
                    self.on_blocktxn(peer, block, pending, Err(failure));
                    return;
                }
                let Some(id) = self.outbound.remove(&request_id) else { return };
                debug!(target: "p2p::sync", %peer, error = %error, "request failed");
                self.sync_step(SyncEvent::Failure { peer, id, failure });
            }
            BehaviourEvent::Sync(request_response::Event::InboundFailure { peer, error, .. }) => {
                if let request_response::InboundFailure::Io(e) = &error {
                    if let Some(error) = crate::p2p::wire::decode_failure(e) {
                        self.penalise(peer, Misbehaviour::Malformed { what: "sync request", error });
                    }
                }
            }
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                if info.protocol_version != wire::identify_protocol(self.network) {
                    info!(target: "p2p", peer = %peer_id, version = %info.protocol_version, "peer is on another network; disconnecting");
                    self.added.retain(|a| super::peer_of(a) != Some(peer_id));
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                for addr in &info.listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr.clone());
                }
                if let Some(p) = self.peers.get_mut(&peer_id) {
                    p.agent = Some(info.agent_version);
                }
            }
            BehaviourEvent::Ping(ping::Event { peer, result: Ok(rtt), .. }) => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.ping = Some(rtt);
                }
            }
            BehaviourEvent::Mdns(libp2p::mdns::Event::Discovered(list)) => {
                if self.active {
                    for (peer, addr) in list {
                        if !self.swarm.is_connected(&peer) {
                            self.dial(addr);
                        }
                    }
                }
            }
            BehaviourEvent::Kad(libp2p::kad::Event::RoutingUpdated { peer, addresses, .. }) => {
                if self.active && !self.swarm.is_connected(&peer) && self.peers.len() < 8 {
                    self.dial(addresses.first().clone());
                }
            }
            _ => {}
        }
    }

    fn on_gossip(&mut self, source: PeerId, id: MessageId, message: gossipsub::Message) {
        if let Some(p) = self.peers.get_mut(&source) {
            p.bytes_recv += message.data.len() as u64;
        }
        let topic_label = match Topic::parse(message.topic.as_str(), self.network) {
            Some(Topic::Blocks) => "blocks",
            Some(Topic::Transactions) => "transactions",
            Some(Topic::CompactBlocks) => "compact_blocks",
            None => "unknown",
        };
        let report = |s: &mut Self, acceptance| {
            crate::metrics::gossip(topic_label, verdict_label(&acceptance));
            s.swarm.behaviour_mut().gossipsub.report_message_validation_result(&id, &source, acceptance);
        };
        let Some(topic) = Topic::parse(message.topic.as_str(), self.network) else {
            report(self, MessageAcceptance::Ignore);
            return;
        };
        let params = self.network.params();
        let decoded = GossipMessage::decode(topic, &message.data, params.max_block_size, params.max_tx_size);
        let decoded = match decoded {
            Ok(m) => m,
            Err(e) => {
                report(self, MessageAcceptance::Reject);
                self.penalise(source, Misbehaviour::Malformed { what: topic.gossip_name(), error: e });
                return;
            }
        };
        // Budgets: transactions by count, blocks by bytes (separately, so a transaction flood
        // cannot starve blocks). A block's proof of work is checked here first, off the core:
        // a block without it costs its sender, not our queue.
        let cost = message.data.len();
        let header = match &decoded {
            GossipMessage::Block(block) => Some(block.header),
            GossipMessage::Compact(compact) => Some(compact.header),
            GossipMessage::Tx(_) => None,
        };
        let kind = match header {
            Some(header) => {
                let hash = header.hash();
                if let Err(e) =
                    crate::consensus::pow::check_proof_of_work(&hash, header.bits, &params.pow_limit)
                {
                    report(self, MessageAcceptance::Reject);
                    self.penalise(source, Misbehaviour::InvalidBlock { hash, error: e });
                    return;
                }
                Gossip::Block
            }
            None => Gossip::Tx,
        };
        let block = kind == Gossip::Block;
        if !self.budget.take_gossip(kind, cost) {
            report(self, MessageAcceptance::Ignore);
            return;
        }
        let work = match decoded {
            GossipMessage::Block(block) => NetWork::GossipBlock { peer: source, block },
            GossipMessage::Tx(tx) => NetWork::GossipTx { peer: source, tx },
            GossipMessage::Compact(compact) => NetWork::GossipCompact { peer: source, compact },
        };
        let pending = Pending::Gossip { id: id.clone(), source, block, cost, label: topic_label };
        match self.submit_keep(work, pending) {
            Ok(()) => {}
            // A transaction waits (its bytes still counted) and is offered again as the core
            // frees room: gossip does not send it twice, so ignoring it would lose it here.
            Err((pending, work, LinkError::Busy)) if !block => {
                self.waiting_txs.push_back((work, pending, Instant::now()));
            }
            Err(_) => {
                // Busy: our problem, not the peer's.
                self.budget.release_gossip(kind, cost);
                report(self, MessageAcceptance::Ignore);
            }
        }
    }

    fn on_request(&mut self, peer: PeerId, request: Request, channel: ResponseChannel<Response>) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.bytes_recv += request.encode().len() as u64;
            if let Request::Status(s) = &request {
                p.starting_height.get_or_insert(s.height);
                p.tip_height = Some(p.tip_height.unwrap_or(0).max(s.height));
            }
        }
        let secs = unix_ms() as f64 / 1000.0;
        if !self.scores.entry(&peer, now()).allow_request(secs) {
            self.penalise(peer, Misbehaviour::RequestFlood);
            let _ = self.swarm.behaviour_mut().sync.send_response(channel, Response::Busy);
            return;
        }
        if let Request::GetBlockTxn { block, indexes } = &request {
            if let Some(b) = self.served.iter().find(|b| b.hash() == *block) {
                let (block, txs) = (*block, b.block().txs.len());
                let response = match crate::p2p::compact::block_txn(&b.block().txs, indexes) {
                    Ok(found) => Response::BlockTxn { block, txs: found },
                    Err(index) => {
                        self.penalise(peer, Misbehaviour::BlockTxnIndex { block, index, txs });
                        Response::BlockTxn { block, txs: Vec::new() }
                    }
                };
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.bytes_sent += response_size(&response) as u64;
                }
                let _ = self.swarm.behaviour_mut().sync.send_response(channel, response);
                return;
            }
        }
        if !self.budget.take_serving() {
            let _ = self.swarm.behaviour_mut().sync.send_response(channel, Response::Busy);
            return;
        }
        match self.submit(NetWork::Serve { peer, request }, Pending::Serve { peer, channel }) {
            Ok(()) => {}
            // Busy: say so; the peer asks again later or elsewhere.
            Err(Pending::Serve { channel, .. }) => {
                self.budget.release_serving();
                let _ = self.swarm.behaviour_mut().sync.send_response(channel, Response::Busy);
            }
            Err(_) => self.budget.release_serving(),
        }
    }
}

/// Blocks the service keeps to answer `GetBlockTxn` while the core connects them (each at
/// most `max_block_size`, shared with the core: no copy).
pub const SERVED_BLOCKS: usize = 4;

fn request_name(r: &Request) -> &'static str {
    match r {
        Request::Status(_) => "status",
        Request::GetHeaders { .. } => "getheaders",
        Request::GetBlocks(_) => "getblocks",
        Request::GetBlockTxn { .. } => "getblocktxn",
    }
}

/// Payload size of a response, without encoding it again.
fn response_size(r: &Response) -> usize {
    match r {
        Response::Status(_) => 1 + wire::STATUS_SIZE,
        Response::Headers(h) => 5 + 80 * h.len(),
        Response::Blocks(b) => 5 + b.iter().map(|b| 4 + b.encoded_size()).sum::<usize>(),
        Response::Busy => 1,
        Response::BlockTxn { txs, .. } => 37 + txs.iter().map(|t| t.encoded_size()).sum::<usize>(),
    }
}

/// The metrics label of a gossip verdict.
fn verdict_label(a: &MessageAcceptance) -> &'static str {
    match a {
        MessageAcceptance::Accept => "accept",
        MessageAcceptance::Reject => "reject",
        MessageAcceptance::Ignore => "ignore",
    }
}
