//! Headers-first sync as a sans-io state machine (nakamoto's `StateMachine` shape).
//!
//! Inputs: peers connecting and disconnecting, their status, sync responses and failures,
//! orphan blocks seen on gossip, the results of handing blocks to the chain, and clock ticks.
//! Outputs ([`Action`]): requests to send, penalties, disconnects, and blocks to hand to the
//! chain in parent-first order. The clock arrives as an argument and the chain through
//! [`ChainView`], so the whole machine runs in unit tests with no sockets and no threads.
//!
//! The flow: on connect each side sends its [`Status`]. A peer claiming more work than our
//! best known header is asked for headers with a block locator; headers are validated as a
//! chain (linkage, proof of work, required bits, times) before any body is requested; bodies
//! of validated headers are then fetched from every peer that claims enough work, at most
//! [`BLOCKS_PER_REQUEST`] per request and [`REQUESTS_PER_PEER`] requests per peer, within a
//! window of [`WINDOW`] heights above the lowest missing block. A request unanswered after
//! its timeout penalises the peer, which gets no new work for a while, and its blocks go to
//! another peer. A gossiped block with an unknown parent makes us ask its sender for headers.

use super::link::Blame;
use super::peers::Misbehaviour;
use super::wire::{Request, Response, Status, MAX_HEADERS, MAX_LOCATOR, PROTOCOL_VERSION};
use crate::chain::Chain;
use crate::consensus::{ConsensusError, HeaderState, Params};
use crate::primitives::{Block, BlockHeader, DecodeError, Hash256, U256};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Debug;
use std::hash::Hash;

mod download;
mod headers;

/// Blocks asked for in one request.
pub const BLOCKS_PER_REQUEST: usize = 16;
/// Block requests in flight per peer.
pub const REQUESTS_PER_PEER: usize = 4;
/// Blocks are requested only this many heights above the lowest block still missing, which
/// bounds the blocks held in memory waiting for their parent.
pub const WINDOW: u32 = 256;
/// A status or headers request unanswered after this long is a stall (ms).
pub const HEADERS_TIMEOUT_MS: u64 = 10_000;
/// A block request unanswered after this long is a stall (ms).
pub const BLOCKS_TIMEOUT_MS: u64 = 15_000;
/// Statuses are exchanged again this often (ms).
pub const STATUS_INTERVAL_MS: u64 = 10_000;
/// A peer that answered Busy gets no new requests for this long (ms).
pub const BUSY_COOLDOWN_MS: u64 = 2_000;
/// A stalled peer gets no new block requests for this long (ms).
pub const STALL_COOLDOWN_MS: u64 = 30_000;
/// A peer whose headers taught us nothing is not asked again for this long (ms), unless it
/// relays an orphan.
pub const HEADERS_IDLE_MS: u64 = 5_000;
/// Most validated headers waiting for their bodies.
pub const MAX_PENDING_HEADERS: usize = 100_000;

/// What the machine needs from the chain (implemented by [`Chain`]; tests use a fake).
pub trait ChainView {
    /// Consensus parameters.
    fn params(&self) -> &'static Params;
    /// Our status (tip, height, work).
    fn status(&self) -> Status;
    /// Header-validation state of a stored valid block.
    fn header_state(&self, hash: &Hash256) -> Option<HeaderState>;
    /// True if the block is stored and valid.
    fn has_block(&self, hash: &Hash256) -> bool;
    /// True if the block is known invalid.
    fn is_known_invalid(&self, hash: &Hash256) -> bool;
    /// Block locator of the active chain.
    fn locator(&self) -> Vec<Hash256>;
}

impl ChainView for Chain {
    fn params(&self) -> &'static Params {
        Chain::params(self)
    }
    fn status(&self) -> Status {
        let tip = self.tip();
        Status {
            version: PROTOCOL_VERSION,
            genesis: self.params().genesis_hash,
            tip: tip.hash,
            height: tip.height,
            chain_work: tip.chain_work,
        }
    }
    fn header_state(&self, hash: &Hash256) -> Option<HeaderState> {
        Chain::header_state(self, hash)
    }
    fn has_block(&self, hash: &Hash256) -> bool {
        Chain::has_block(self, hash)
    }
    fn is_known_invalid(&self, hash: &Hash256) -> bool {
        Chain::is_known_invalid(self, hash)
    }
    fn locator(&self) -> Vec<Hash256> {
        Chain::locator(self)
    }
}

/// Request ids, unique per machine.
pub type ReqId = u64;

/// Why a request failed, as the transport saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No answer in time (the transport's own timeout).
    Timeout,
    /// The answer did not decode or broke a limit: the peer's fault.
    Malformed(DecodeError),
    /// The connection closed (or could not be opened) before the answer: nobody's fault.
    Disconnected,
    /// The peer does not speak the sync protocol: nobody's fault.
    Unsupported,
    /// Another transport error, of this kind: nobody's fault.
    Io(std::io::ErrorKind),
}

/// An output of the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action<P> {
    /// Send `request` to `peer`; report the answer with [`SyncMachine::on_response`] and id `id`.
    Send { peer: P, id: ReqId, request: Request },
    /// The peer misbehaved.
    Penalise { peer: P, why: Misbehaviour },
    /// Close the connection (not a ban: e.g. another network).
    Disconnect { peer: P, reason: String },
    /// Hand this block to the chain, then report with [`SyncMachine::on_processed`].
    Process { peer: P, block: Block },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Status,
    Headers,
    Blocks,
}

impl Kind {
    /// The request's name in penalties and logs.
    fn name(self) -> &'static str {
        match self {
            Kind::Status => "status",
            Kind::Headers => "headers",
            Kind::Blocks => "blocks",
        }
    }
}

#[derive(Debug)]
struct PeerState {
    status: Option<Status>,
    /// Most work the peer has shown (status, gossip, headers).
    best_work: U256,
    headers_req: Option<ReqId>,
    /// Set by an orphan from this peer: ask it for headers even if it claims no more work.
    wants_headers: bool,
    block_reqs: usize,
    stalled_until: u64,
    /// Not asked for headers again before this time (its last answer taught us nothing new).
    headers_idle_until: u64,
    /// Our status request in flight.
    status_req: Option<ReqId>,
    /// When its status was last heard.
    status_at: u64,
    /// Blocks it answered without (it is on another branch).
    lacks: HashSet<Hash256>,
}

#[derive(Debug)]
struct InFlight<P> {
    peer: P,
    kind: Kind,
    sent_ms: u64,
    /// Blocks asked for (GetBlocks) or the locator sent (GetHeaders).
    hashes: Vec<Hash256>,
}

#[derive(Debug)]
struct Pending<P> {
    header: BlockHeader,
    state: HeaderState,
    requested: bool,
    block: Option<(Block, P)>,
    /// Handed to the chain, waiting for [`SyncMachine::on_processed`].
    processing: bool,
    /// Who sent the block (kept once the block itself went to the chain).
    from: Option<P>,
}

/// The sync state machine. `P` is the peer id type (libp2p's `PeerId` in the node).
#[derive(Debug)]
pub struct SyncMachine<P> {
    peers: BTreeMap<P, PeerState>,
    pending: HashMap<Hash256, Pending<P>>,
    /// Pending headers in height order.
    by_height: BTreeSet<(u32, Hash256)>,
    /// Pending headers by cumulative work (the best one is last).
    by_work: BTreeSet<(U256, Hash256)>,
    /// Pending headers whose body arrived and is not yet handed to the chain, in height
    /// order: what [`SyncMachine::emit_ready`] looks at, instead of the whole window.
    arrived: BTreeSet<(u32, Hash256)>,
    requests: HashMap<ReqId, InFlight<P>>,
    next_id: ReqId,
    now_ms: u64,
    outbox: Vec<Action<P>>,
    /// While set, [`SyncMachine::on_processed`] does not reschedule (the driver calls
    /// [`SyncMachine::end_batch`] once after a batch of blocks).
    batching: bool,
    /// Most pending headers ([`MAX_PENDING_HEADERS`]; smaller in tests).
    max_pending: usize,
}

impl<P: Copy + Ord + Eq + Hash + Debug> Default for SyncMachine<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Copy + Ord + Eq + Hash + Debug> SyncMachine<P> {
    /// An empty machine.
    pub fn new() -> Self {
        SyncMachine {
            peers: BTreeMap::new(),
            pending: HashMap::new(),
            by_height: BTreeSet::new(),
            arrived: BTreeSet::new(),
            by_work: BTreeSet::new(),
            requests: HashMap::new(),
            next_id: 1,
            now_ms: 0,
            outbox: Vec::new(),
            batching: false,
            max_pending: MAX_PENDING_HEADERS,
        }
    }

    /// An empty machine that keeps at most `max_pending` headers waiting for bodies (tests
    /// reach the bound without grinding 100,000 headers).
    #[cfg(test)]
    pub(crate) fn with_max_pending(max_pending: usize) -> Self {
        SyncMachine { max_pending, ..Self::new() }
    }

    fn insert_pending(&mut self, hash: Hash256, pending: Pending<P>) {
        self.by_height.insert((pending.state.height, hash));
        self.by_work.insert((pending.state.chain_work, hash));
        self.pending.insert(hash, pending);
    }

    fn remove_pending(&mut self, hash: &Hash256) -> Option<Pending<P>> {
        let p = self.pending.remove(hash)?;
        self.by_height.remove(&(p.state.height, *hash));
        self.arrived.remove(&(p.state.height, *hash));
        self.by_work.remove(&(p.state.chain_work, *hash));
        Some(p)
    }

    /// Takes the actions produced so far, in order.
    pub fn drain(&mut self) -> Vec<Action<P>> {
        std::mem::take(&mut self.outbox)
    }

    /// Validated headers waiting for bodies.
    pub fn pending_headers(&self) -> usize {
        self.pending.len()
    }

    /// The most work the peer has shown, and its reported height.
    pub fn peer_tip(&self, peer: &P) -> Option<(u32, U256)> {
        self.peers.get(peer).and_then(|p| p.status.as_ref().map(|s| (s.height, p.best_work)))
    }

    /// Best validated header (ours or pending): (work, hash, height).
    pub fn best_header(&self, chain: &impl ChainView) -> (U256, Hash256, u32) {
        let ours = chain.status();
        let mut best = (ours.chain_work, ours.tip, ours.height);
        if let Some((work, hash)) = self.by_work.last() {
            if *work > best.0 {
                let height = self.pending.get(hash).map_or(0, |p| p.state.height);
                best = (*work, *hash, height);
            }
        }
        best
    }

    fn send(&mut self, peer: P, kind: Kind, request: Request, hashes: Vec<Hash256>) {
        let id = self.next_id;
        self.next_id += 1;
        self.requests.insert(id, InFlight { peer, kind, sent_ms: self.now_ms, hashes });
        self.outbox.push(Action::Send { peer, id, request });
    }

    fn penalise(&mut self, peer: P, why: Misbehaviour) {
        self.outbox.push(Action::Penalise { peer, why });
    }

    /// A connection to `peer` is up: send our status.
    pub fn peer_connected(&mut self, peer: P, now_ms: u64, chain: &impl ChainView) {
        self.now_ms = now_ms;
        if self.peers.contains_key(&peer) {
            return;
        }
        self.peers.insert(
            peer,
            PeerState {
                status: None,
                best_work: U256::ZERO,
                headers_req: None,
                wants_headers: false,
                block_reqs: 0,
                stalled_until: 0,
                headers_idle_until: 0,
                status_req: None,
                status_at: 0,
                lacks: HashSet::new(),
            },
        );
        self.send_status(peer, chain);
    }

    fn send_status(&mut self, peer: P, chain: &impl ChainView) {
        let id = self.next_id;
        if let Some(p) = self.peers.get_mut(&peer) {
            p.status_req = Some(id);
        }
        self.send(peer, Kind::Status, Request::Status(chain.status()), Vec::new());
    }

    /// Brings the peer set in line with the connections the network layer has (an event
    /// lost on the way, e.g. dropped while the core was busy, is repaired here).
    pub fn reconcile(&mut self, connected: &[P], now_ms: u64, chain: &impl ChainView) {
        self.now_ms = now_ms;
        let gone: Vec<P> = self.peers.keys().filter(|p| !connected.contains(p)).copied().collect();
        for p in gone {
            self.forget_peer(p);
        }
        for p in connected {
            if !self.peers.contains_key(p) {
                self.peer_connected(*p, now_ms, chain);
            }
        }
    }

    /// The last connection to `peer` closed: its requests go to others.
    pub fn peer_disconnected(&mut self, peer: P, chain: &impl ChainView) {
        self.forget_peer(peer);
        self.prune_unobtainable();
        self.schedule(chain);
    }

    fn forget_peer(&mut self, peer: P) {
        self.peers.remove(&peer);
        let ids: Vec<ReqId> =
            self.requests.iter().filter(|(_, r)| r.peer == peer).map(|(id, _)| *id).collect();
        for id in ids {
            if let Some(r) = self.requests.remove(&id) {
                self.unrequest(&r.hashes);
            }
        }
    }

    fn unrequest(&mut self, hashes: &[Hash256]) {
        for h in hashes {
            if let Some(p) = self.pending.get_mut(h) {
                if p.block.is_none() {
                    p.requested = false;
                }
            }
        }
    }

    /// The peer told its status (in a request or a response).
    pub fn on_status(&mut self, peer: P, status: Status, now_ms: u64, chain: &impl ChainView) {
        self.now_ms = now_ms;
        let params = chain.params();
        if status.genesis != params.genesis_hash || status.version != PROTOCOL_VERSION {
            self.forget_peer(peer);
            self.outbox.push(Action::Disconnect {
                peer,
                reason: format!(
                    "peer is on another chain or version: genesis {} version {} (ours {} version {})",
                    status.genesis, status.version, params.genesis_hash, PROTOCOL_VERSION
                ),
            });
            return;
        }
        let Some(p) = self.peers.get_mut(&peer) else { return };
        if status.chain_work > p.best_work {
            // It moved on (maybe onto the branch it lacked): ask it again.
            p.lacks.clear();
        }
        p.best_work = p.best_work.max(status.chain_work);
        p.status = Some(status);
        p.status_at = now_ms;
        self.schedule(chain);
    }

    /// The peer relayed a block we accepted or already had, of this cumulative work.
    pub fn on_peer_block(&mut self, peer: P, height: u32, work: U256) {
        if let Some(p) = self.peers.get_mut(&peer) {
            if work > p.best_work {
                p.lacks.clear();
            }
            p.best_work = p.best_work.max(work);
            if let Some(s) = &mut p.status {
                s.height = s.height.max(height);
            }
        }
    }

    /// The peer relayed a block whose ancestry we lack: ask it for headers.
    pub fn on_orphan(&mut self, peer: P, now_ms: u64, chain: &impl ChainView) {
        self.now_ms = now_ms;
        if let Some(p) = self.peers.get_mut(&peer) {
            p.wants_headers = true;
        }
        self.schedule(chain);
    }

    /// An answer to request `id` arrived.
    pub fn on_response(
        &mut self,
        peer: P,
        id: ReqId,
        response: Response,
        now_ms: u64,
        chain: &impl ChainView,
    ) {
        self.now_ms = now_ms;
        let Some(req) = self.requests.remove(&id) else { return };
        if req.peer != peer {
            self.requests.insert(id, req);
            return;
        }
        match (req.kind, response) {
            (Kind::Status, Response::Status(s)) => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.status_req = None;
                }
                self.on_status(peer, s, now_ms, chain)
            }
            (Kind::Headers, Response::Headers(h)) => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.headers_req = None;
                }
                self.on_headers(peer, h, &req.hashes, chain);
            }
            (Kind::Blocks, Response::Blocks(blocks)) => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.block_reqs = p.block_reqs.saturating_sub(1);
                }
                self.on_blocks(peer, req.hashes, blocks);
            }
            (kind, Response::Busy) => {
                // Not a fault, but do not hammer a busy peer: give it a short rest.
                self.release(peer, kind, &req.hashes);
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.stalled_until = p.stalled_until.max(now_ms + BUSY_COOLDOWN_MS);
                }
            }
            (kind, other) => {
                self.release(peer, kind, &req.hashes);
                let got = super::wire::response_name(&other);
                self.penalise(peer, Misbehaviour::WrongAnswer { asked: kind.name(), got });
            }
        }
        self.schedule(chain);
    }

    fn release(&mut self, peer: P, kind: Kind, hashes: &[Hash256]) {
        if let Some(p) = self.peers.get_mut(&peer) {
            match kind {
                Kind::Headers => p.headers_req = None,
                Kind::Blocks => p.block_reqs = p.block_reqs.saturating_sub(1),
                Kind::Status => p.status_req = None,
            }
        }
        if kind == Kind::Blocks {
            self.unrequest(hashes);
        }
    }

    /// Request `id` failed.
    pub fn on_failure(&mut self, peer: P, id: ReqId, failure: Failure, now_ms: u64, chain: &impl ChainView) {
        self.now_ms = now_ms;
        let Some(req) = self.requests.remove(&id) else { return };
        if req.peer != peer {
            self.requests.insert(id, req);
            return;
        }
        self.fail(id, req, failure);
        self.schedule(chain);
    }

    fn fail(&mut self, id: ReqId, req: InFlight<P>, failure: Failure) {
        let peer = req.peer;
        self.release(peer, req.kind, &req.hashes);
        match failure {
            Failure::Timeout => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.stalled_until = self.now_ms + STALL_COOLDOWN_MS;
                }
                let blocks = if req.kind == Kind::Blocks { req.hashes.len() } else { 0 };
                self.penalise(peer, Misbehaviour::Stalled { request: id, asked: req.kind.name(), blocks });
            }
            Failure::Malformed(error) => {
                self.penalise(peer, Misbehaviour::Malformed { what: "sync response", error })
            }
            Failure::Disconnected | Failure::Unsupported | Failure::Io(_) => {}
        }
    }

    /// Clock tick: time out requests, forget what the chain now has, schedule work.
    pub fn tick(&mut self, now_ms: u64, chain: &impl ChainView) {
        self.now_ms = now_ms;
        let expired: Vec<ReqId> = self
            .requests
            .iter()
            .filter(|(_, r)| {
                let limit = if r.kind == Kind::Blocks { BLOCKS_TIMEOUT_MS } else { HEADERS_TIMEOUT_MS };
                now_ms.saturating_sub(r.sent_ms) > limit
            })
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(req) = self.requests.remove(&id) {
                self.fail(id, req, Failure::Timeout);
            }
        }
        let have: Vec<(u32, Hash256)> = self
            .by_height
            .iter()
            .filter(|(_, h)| self.pending.get(h).is_some_and(|p| !p.processing) && chain.has_block(h))
            .copied()
            .collect();
        // Statuses: ask peers we have not heard from, and everyone now and then (a peer's
        // tip moves with blocks that arrive by sync, which are not gossiped).
        let due: Vec<P> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                p.status_req.is_none()
                    && (p.status.is_none() || now_ms.saturating_sub(p.status_at) >= STATUS_INTERVAL_MS)
            })
            .map(|(id, _)| *id)
            .collect();
        for peer in due {
            self.send_status(peer, chain);
        }
        for (height, hash) in have {
            let _ = height;
            self.remove_pending(&hash);
        }
        self.schedule(chain);
    }

    /// Decides what to do next: blocks ready for the chain, headers to ask, bodies to fetch.
    fn schedule(&mut self, chain: &impl ChainView) {
        self.emit_ready(chain);
        self.schedule_headers(chain);
        self.schedule_blocks();
    }
}
