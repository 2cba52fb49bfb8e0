//! Compact block relay on the core (docs/PROTOCOL.md §13.6a): rebuilding announced blocks
//! from the mempool, asking the announcer for what is missing, relaying after the stateless
//! checks and connecting afterwards, falling back to the full block (by sync) when a rebuild
//! fails, and judging the announcer once the real block is known.

use super::core::Core;
use crate::chain::{ChainError, ProcessOutcome};
use crate::clock::{unix_ms, unix_secs};
use crate::consensus::{CheckedBlock, ConsensusError};
use crate::p2p::compact::{block_txn, CompactBlock, CompactError, PartialBlock, MAX_BLOCKTXN_INDEXES};
use crate::p2p::link::{Acceptance, Blame, BlockRelay, NetOutcome, Verdict};
use crate::p2p::peers::Misbehaviour;
use crate::p2p::sync::{Action, Failure};
use crate::p2p::wire::Response;
use crate::p2p::BlockAnnouncement;
use crate::primitives::{Block, Hash256, Transaction};
use libp2p::PeerId;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Compact blocks waiting on a `GetBlockTxn` answer at most; beyond, new ones fall back to
/// the full block at once.
pub const MAX_REBUILDS: usize = 16;
/// A rebuild whose answer never came back is dropped after this long.
const REBUILD_EXPIRY: Duration = Duration::from_secs(30);
/// Announcements remembered after a fallback, to judge their senders once the block arrives.
const MAX_FALLBACKS: usize = 64;
/// Recently connected blocks kept to answer `GetBlockTxn` without a store read.
const RECENT_BLOCKS: usize = 4;
/// Announced blocks we did not relay (fell back, or their parent was unknown) remembered
/// at most, to announce ourselves once sync brings them.
const MAX_REANNOUNCE: usize = 64;

struct Rebuild {
    partial: PartialBlock,
    asked: Vec<u32>,
    since: Instant,
}

/// The core's compact-relay state.
pub(super) struct Relay {
    /// How our own blocks are announced.
    pub(super) mode: BlockRelay,
    rebuilding: HashMap<Hash256, Rebuild>,
    fallbacks: VecDeque<(Hash256, PeerId, CompactBlock)>,
    /// Blocks relayed (verdict Accept sent) and not yet stored or connected.
    deferred: Vec<(PeerId, Arc<CheckedBlock>)>,
    recent: VecDeque<Arc<CheckedBlock>>,
    /// Announcements we answered Ignore (so gossip did not forward them) while sync fetches
    /// the block: once it connects as our tip, we announce it ourselves, or the peers
    /// behind us would hear of it only from their next status exchange.
    reannounce: VecDeque<Hash256>,
}

impl Relay {
    pub(super) fn new(mode: BlockRelay) -> Relay {
        Relay {
            mode,
            rebuilding: HashMap::new(),
            fallbacks: VecDeque::new(),
            deferred: Vec::new(),
            recent: VecDeque::new(),
            reannounce: VecDeque::new(),
        }
    }

    /// Remembers an announced block that was not relayed, to announce it once it connects.
    pub(super) fn announce_later(&mut self, hash: Hash256) {
        if self.reannounce.contains(&hash) {
            return;
        }
        if self.reannounce.len() >= MAX_REANNOUNCE {
            self.reannounce.pop_front();
        }
        self.reannounce.push_back(hash);
    }

    /// Keeps a connected block for serving `GetBlockTxn`.
    pub(super) fn remember(&mut self, block: &Arc<CheckedBlock>) {
        if self.recent.len() >= RECENT_BLOCKS {
            self.recent.pop_front();
        }
        self.recent.push_back(block.clone());
    }

    /// A recently connected block.
    pub(super) fn recent(&self, hash: &Hash256) -> Option<&Arc<CheckedBlock>> {
        self.recent.iter().find(|b| b.hash() == *hash)
    }
}

impl Core {
    /// Our own block (mined, generated or submitted; valid), announced by the relay mode.
    pub(super) fn announce_block(&self, block: &Block) {
        self.announce_with_txids(block, None)
    }

    /// [`Core::announce_block`] with the block's txids, if the caller has them.
    fn announce_with_txids(&self, block: &Block, txids: Option<&[Hash256]>) {
        let Some(net) = &self.net else { return };
        let announcement = match self.relay.mode {
            BlockRelay::Full => BlockAnnouncement::Full(block.encode()),
            BlockRelay::Compact => {
                let hashed;
                let txids = match txids {
                    Some(t) => t,
                    None => {
                        hashed = block.txids();
                        &hashed
                    }
                };
                let compact = CompactBlock::from_block(block, txids, rand::random());
                // The full encoding only when some peer takes nothing else.
                let full = net.wants_full_blocks().then(|| block.encode());
                BlockAnnouncement::Compact { compact: compact.encode(), full }
            }
        };
        net.publish_block(announcement);
    }

    /// A block our miner or `generate` found on our own template: the checks before relay
    /// (§13.6a step 7), announced at once, then stored and connected, so peers rebuild it
    /// while we connect it. A block failing the checks is not announced (the error says why).
    pub(super) fn process_own_block(&mut self, block: Block) -> Result<ProcessOutcome, ChainError> {
        let checked = Arc::new(self.chain.precheck(block, None, unix_secs())?);
        if let Some(net) = &self.net {
            net.serve_block(checked.clone());
        }
        self.announce_with_txids(checked.block(), Some(checked.txids()));
        self.process_shared_from(checked, 0)
    }

    /// A gossiped compact block: known or invalid at once, or rebuilt from the mempool (then
    /// relayed after the stateless checks), or the missing transactions are asked for.
    pub(super) fn on_gossip_compact(&mut self, peer: PeerId, compact: CompactBlock) -> NetOutcome {
        let hash = compact.hash();
        if let Some(rec) = self.chain.record(&hash) {
            // Already stored, or known invalid (maybe by our own invalidateblock: no penalty).
            let acceptance = if rec.status.is_failed() { Acceptance::Reject } else { Acceptance::Ignore };
            return NetOutcome::Verdict(Verdict { acceptance, ..Verdict::ignore() });
        }
        if self.relay.rebuilding.contains_key(&hash) {
            return NetOutcome::Verdict(Verdict::ignore());
        }
        let now = unix_secs();
        if let Err(e) = self.chain.check_header(&compact.header, now) {
            if matches!(e, ChainError::UnknownBlock { .. }) {
                // The parent is unknown: ask the sender for headers, as for an orphan.
                tracing::debug!(target: "p2p::sync", %hash, %peer, "compact block with an unknown parent; fetching headers");
                self.relay.announce_later(hash);
                let ms = unix_ms();
                let actions = self.drive_sync(|m, c| m.on_orphan(peer, ms, c));
                return NetOutcome::Verdict(Verdict { actions, ..Verdict::ignore() });
            }
            return NetOutcome::Verdict(self.block_error_verdict(peer, hash, e));
        }
        let partial = PartialBlock::new(compact, self.mempool.iter());
        let missing = partial.missing();
        if missing.is_empty() {
            return NetOutcome::Verdict(self.rebuilt(peer, partial, false));
        }
        self.relay.rebuilding.retain(|_, r| r.since.elapsed() < REBUILD_EXPIRY);
        if missing.len() > MAX_BLOCKTXN_INDEXES || self.relay.rebuilding.len() >= MAX_REBUILDS {
            let compact = partial.into_block().map_or_else(|p| p.compact().clone(), |(_, _, c)| c);
            return NetOutcome::Verdict(self.fall_back(peer, compact));
        }
        tracing::debug!(target: "p2p::gossip", %hash, missing = missing.len(), "compact block: asking for missing transactions");
        let request = crate::p2p::wire::Request::GetBlockTxn { block: hash, indexes: missing.clone() };
        self.relay.rebuilding.insert(hash, Rebuild { partial, asked: missing, since: Instant::now() });
        NetOutcome::FetchTxs { block: hash, request }
    }

    /// The answer to our `GetBlockTxn` for `block`: fill and finish the rebuild, or fall back
    /// to the full block (penalising an answer with the wrong transactions).
    pub(super) fn on_block_txn(
        &mut self,
        peer: PeerId,
        block: Hash256,
        answer: Result<Response, Failure>,
    ) -> Verdict {
        let Some(mut r) = self.relay.rebuilding.remove(&block) else { return Verdict::ignore() };
        let fault = match answer {
            Ok(Response::BlockTxn { block: got, txs }) if got == block && !txs.is_empty() => {
                match r.partial.fill(&r.asked, txs) {
                    Ok(()) => return self.rebuilt(peer, r.partial, true),
                    Err(e) => Some(Misbehaviour::BadBlockTxn(e)),
                }
            }
            Ok(Response::BlockTxn { block: got, .. }) if got != block => {
                Some(Misbehaviour::BadBlockTxn(CompactError::WrongBlock { asked: block, got }))
            }
            // None (it no longer has the block), busy, or no answer: nobody's fault.
            Ok(Response::BlockTxn { .. }) | Ok(Response::Busy) | Err(_) => None,
            Ok(other) => Some(Misbehaviour::WrongAnswer {
                asked: "blocktxn",
                got: crate::p2p::wire::response_name(&other),
            }),
        };
        let mut verdict = self.fall_back(peer, r.partial.compact().clone());
        verdict.fault = fault;
        verdict
    }

    /// Every slot is filled: the stateless checks, then Accept (relay) with the connect
    /// deferred until the verdict has gone out.
    fn rebuilt(&mut self, peer: PeerId, partial: PartialBlock, fetched: bool) -> Verdict {
        let (block, txids, compact) = match partial.into_block() {
            Ok(parts) => parts,
            Err(p) => return self.fall_back(peer, p.compact().clone()),
        };
        let hash = block.hash();
        if self.chain.record(&hash).is_some() {
            // It arrived meanwhile (in full, or by sync).
            return Verdict::ignore();
        }
        match self.chain.precheck(block, Some(txids), unix_secs()) {
            Ok(checked) => {
                crate::metrics::compact_block(if fetched { "fetched" } else { "mempool" });
                let height = self.chain.record(&checked.header().prev).map(|p| p.height + 1);
                let checked = Arc::new(checked);
                if let Some(net) = &self.net {
                    net.serve_block(checked.clone());
                }
                self.relay.deferred.push((peer, checked));
                Verdict { acceptance: Acceptance::Accept, height, ..Verdict::ignore() }
            }
            // A short-id collision in our mempool, or a lying announcer: the full block says
            // which (see `judge_fallback`).
            Err(ChainError::Invalid { error, .. })
                if matches!(
                    error.root(),
                    ConsensusError::BadMerkleRoot { .. } | ConsensusError::MerkleMutated
                ) =>
            {
                tracing::debug!(target: "p2p::gossip", %hash, "rebuilt compact block does not match its Merkle root; fetching the full block");
                self.fall_back(peer, compact)
            }
            Err(e) => self.block_error_verdict(peer, hash, e),
        }
    }

    /// Gives up on a compact block: the full block comes by sync from the announcer (headers,
    /// then the body); the announcement is kept to judge it then.
    fn fall_back(&mut self, peer: PeerId, compact: CompactBlock) -> Verdict {
        let hash = compact.hash();
        if self.relay.fallbacks.len() >= MAX_FALLBACKS {
            self.relay.fallbacks.pop_front();
        }
        self.relay.fallbacks.push_back((hash, peer, compact));
        self.relay.announce_later(hash);
        crate::metrics::compact_block("fallback");
        let ms = unix_ms();
        let actions = self.drive_sync(|m, c| m.on_orphan(peer, ms, c));
        Verdict { actions, ..Verdict::ignore() }
    }

    /// Before a block from sync is processed: if it is one we fell back on, its announcer's
    /// short ids are compared with the real block (a mismatch is the announcer's fault; a
    /// match means our mempool collided). Returns the penalty, if any.
    pub(super) fn judge_fallback(&mut self, block: &Block) -> Option<Action<PeerId>> {
        let hash = block.hash();
        let i = self.relay.fallbacks.iter().position(|(h, _, _)| *h == hash)?;
        let (_, peer, compact) = self.relay.fallbacks.remove(i)?;
        if compact.matches(block, &block.txids()) {
            return None;
        }
        Some(Action::Penalise { peer, why: Misbehaviour::BadCompactBlock { hash } })
    }

    /// After a block from sync was accepted: if our tip is now a block whose announcement we
    /// did not relay (it, or an orphan it let connect), announce it ourselves (a fresh
    /// compact announcement, so gossip does not take it for the one it already saw).
    pub(super) fn reannounce_tip(&mut self) {
        let hash = self.chain.tip().hash;
        let Some(i) = self.relay.reannounce.iter().position(|h| *h == hash) else { return };
        self.relay.reannounce.remove(i);
        if let Some(block) = self.relay.recent(&hash).cloned() {
            tracing::debug!(target: "p2p::gossip", %hash, "announcing a block that came by sync after its announcement was not relayed");
            self.announce_block(block.block());
        }
    }

    /// Stores and connects the blocks relayed before connecting; returns penalties for
    /// those that failed (their senders relayed them after the stateless checks only).
    pub(super) fn run_deferred(&mut self) -> Vec<Action<PeerId>> {
        let mut out = Vec::new();
        for (peer, checked) in std::mem::take(&mut self.relay.deferred) {
            let hash = checked.hash();
            if let Some(net) = self.net.as_ref().filter(|n| n.wants_full_blocks()) {
                net.publish_block(BlockAnnouncement::FullForOthers(checked.block().encode()));
            }
            match self.process_shared_from(checked, super::net::orphan_source(&peer)) {
                Ok(ProcessOutcome::Accepted { .. }) => {
                    if let Some(rec) = self.chain.record(&hash) {
                        let (height, work) = (rec.height, rec.chain_work);
                        self.sync.on_peer_block(peer, height, work);
                    }
                }
                Ok(_) => {}
                Err(e) => match Blame::for_block(&e) {
                    Blame::Peer(Misbehaviour::InvalidBlock { hash, error }) => {
                        tracing::warn!(target: "p2p::gossip", %hash, %peer, error = %e, "a compact block relayed after the stateless checks failed to connect");
                        out.push(Action::Penalise {
                            peer,
                            why: Misbehaviour::RelayedInvalidBlock { hash, error },
                        });
                    }
                    _ => {
                        tracing::debug!(target: "p2p::gossip", %hash, error = %e, "relayed block not connected")
                    }
                },
            }
        }
        out
    }

    /// Answers a `GetBlockTxn`: the transactions at `indexes` of a block we have (none if we
    /// do not have it); indexes outside the block are the requester's fault.
    pub(super) fn serve_block_txn(
        &mut self,
        peer: PeerId,
        block: Hash256,
        indexes: &[u32],
    ) -> (Response, Vec<Action<PeerId>>) {
        let stored;
        let txs: &[Transaction] = match self.relay.recent(&block) {
            Some(b) => &b.block().txs,
            None => match self.chain.store().get_block(&block) {
                Ok(Some(b)) => {
                    stored = b;
                    &stored.block().txs
                }
                Ok(None) => return (Response::BlockTxn { block, txs: Vec::new() }, Vec::new()),
                Err(e) => {
                    tracing::warn!(target: "p2p::sync", error = %e, "reading a block to serve failed");
                    return (Response::Busy, Vec::new());
                }
            },
        };
        match block_txn(txs, indexes) {
            Ok(txs) => (Response::BlockTxn { block, txs }, Vec::new()),
            Err(bad) => {
                let why = Misbehaviour::BlockTxnIndex { block, index: bad, txs: txs.len() };
                (Response::BlockTxn { block, txs: Vec::new() }, vec![Action::Penalise { peer, why }])
            }
        }
    }

    /// The verdict on a block the chain refused (shared by full and compact blocks).
    pub(super) fn block_error_verdict(&mut self, peer: PeerId, hash: Hash256, e: ChainError) -> Verdict {
        match Blame::for_block(&e) {
            Blame::Peer(fault) => Verdict::reject(fault),
            // Known invalid (maybe by our own invalidateblock): not relayed, no penalty.
            Blame::Ours if matches!(e, ChainError::KnownInvalid { .. }) => {
                tracing::debug!(target: "p2p::gossip", %hash, error = %e, "known invalid block");
                Verdict { acceptance: Acceptance::Reject, ..Verdict::ignore() }
            }
            blame @ (Blame::Ours | Blame::Transient) => {
                // A peer can send these (future-dated blocks) as fast as it likes: one
                // line per interval for each.
                let kind = if matches!(blame, Blame::Transient) { "block transient" } else { "block ours" };
                if let Some(held) = self.log_throttle.allow(kind, Instant::now()) {
                    tracing::warn!(target: "p2p::gossip", %hash, %peer, error = %e, suppressed = held, "gossiped block not processed");
                }
                Verdict::ignore()
            }
        }
    }
}
