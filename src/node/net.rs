//! The core's side of networking: gossip verdicts, serving sync requests, and driving the
//! sync state machine, whose `Process` actions are executed here, next to the chain. Whose
//! fault a failure is comes from [`Blame`], the one place that decides it.

use super::core::Core;
use crate::chain::ProcessOutcome;
use crate::clock::unix_ms;
use crate::mempool::Accepted;
use crate::p2p::link::{Acceptance, Blame, NetOutcome, NetWork, SyncEvent, Verdict};
use crate::p2p::sync::{Action, ChainView, SyncMachine};
use crate::p2p::wire::{Request, Response, MAX_RESPONSE_BYTES};
use crate::primitives::Block;
use libp2p::PeerId;

/// The orphan-pool key of a peer: a hash of its id (never 0, which is the node itself).
pub(super) fn orphan_source(peer: &PeerId) -> crate::chain::OrphanSource {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    peer.hash(&mut h);
    h.finish().max(1)
}

impl Core {
    /// Runs one network item, the one with `token`. None when its result comes later (a
    /// transaction whose scripts went to the verifier pool: [`Core::on_verified`] answers).
    pub(super) fn on_net(&mut self, token: u64, work: NetWork) -> Option<NetOutcome> {
        Some(match work {
            NetWork::Sync(event) => NetOutcome::Actions(self.on_sync_event(event)),
            NetWork::GossipBlock { peer, block } => NetOutcome::Verdict(self.on_gossip_block(peer, block)),
            NetWork::GossipTx { tx, .. } => NetOutcome::Verdict(self.on_gossip_tx(token, tx)?),
            NetWork::GossipCompact { peer, compact } => self.on_gossip_compact(peer, compact),
            NetWork::BlockTxn { peer, block, answer } => {
                NetOutcome::Verdict(self.on_block_txn(peer, block, answer))
            }
            NetWork::Serve { peer, request } => {
                let (response, actions) = self.serve_request(peer, request);
                NetOutcome::Response { response, actions }
            }
        })
    }

    fn on_sync_event(&mut self, event: SyncEvent) -> Vec<Action<PeerId>> {
        // The clock is read when the item runs (a busy core must not turn honest answers
        // into stalls), except for the tick, which carries the time it was queued.
        let now = unix_ms();
        match event {
            SyncEvent::Connected(peer) => self.drive_sync(|m, c| m.peer_connected(peer, now, c)),
            SyncEvent::Disconnected(peer) => self.drive_sync(|m, c| m.peer_disconnected(peer, c)),
            SyncEvent::Response { peer, id, response } => {
                self.drive_sync(|m, c| m.on_response(peer, id, response, now, c))
            }
            SyncEvent::Failure { peer, id, failure } => {
                self.drive_sync(|m, c| m.on_failure(peer, id, failure, now, c))
            }
            SyncEvent::Tick { connected, queued_ms } => self.drive_sync(|m, c| {
                m.reconcile(&connected, queued_ms, c);
                m.tick(queued_ms, c)
            }),
        }
    }

    /// Runs `f` on the sync machine, then hands every block it releases to the chain (in
    /// order, reporting each result back) until it releases no more. Returns the network
    /// actions for the service.
    pub(super) fn drive_sync(
        &mut self,
        f: impl FnOnce(&mut SyncMachine<PeerId>, &crate::chain::Chain),
    ) -> Vec<Action<PeerId>> {
        f(&mut self.sync, &self.chain);
        let mut out = Vec::new();
        loop {
            let actions = self.sync.drain();
            if actions.is_empty() {
                break;
            }
            let mut processed = false;
            for action in actions {
                match action {
                    Action::Process { block, peer } => {
                        if !processed {
                            self.sync.begin_batch();
                            processed = true;
                        }
                        let hash = block.hash();
                        if let Some(penalty) = self.judge_fallback(&block) {
                            out.push(penalty);
                        }
                        let result = self.process_block_from(block, orphan_source(&peer));
                        if matches!(result, Ok(ProcessOutcome::Accepted { .. })) {
                            self.reannounce_tip();
                        }
                        let result = result.map(|_| ()).map_err(|e| Blame::for_block(&e));
                        self.sync.on_processed(hash, result, &self.chain);
                    }
                    other => out.push(other),
                }
            }
            if processed {
                self.sync.end_batch(&self.chain);
            }
        }
        out
    }

    /// Validates a gossiped block: Accept if stored and valid, Reject (and the sender's
    /// fault) if invalid, Ignore for duplicates, unknown parents (whose headers are then
    /// fetched from the sender) and our own failures.
    fn on_gossip_block(&mut self, peer: PeerId, block: Block) -> Verdict {
        let hash = block.hash();
        match self.process_block_from(block, orphan_source(&peer)) {
            Ok(ProcessOutcome::Accepted { .. }) => {
                let mut verdict = Verdict { acceptance: Acceptance::Accept, ..Verdict::ignore() };
                if let Some(rec) = self.chain.record(&hash) {
                    let (height, work) = (rec.height, rec.chain_work);
                    verdict.height = Some(height);
                    self.sync.on_peer_block(peer, height, work);
                }
                verdict
            }
            Ok(ProcessOutcome::AlreadyHave) => Verdict::ignore(),
            Ok(ProcessOutcome::Orphan { missing }) => {
                tracing::debug!(target: "p2p::sync", %hash, %missing, %peer, "gossiped block has an unknown parent; fetching headers");
                self.relay.announce_later(hash);
                let now = unix_ms();
                Verdict { actions: self.drive_sync(|m, c| m.on_orphan(peer, now, c)), ..Verdict::ignore() }
            }
            Err(e) => self.block_error_verdict(peer, hash, e),
        }
    }

    /// The verdict on a gossiped transaction's admission.
    pub(super) fn tx_verdict(
        txid: crate::primitives::Hash256,
        result: Result<Accepted, crate::mempool::MempoolError>,
    ) -> Verdict {
        match result {
            Ok(Accepted::Added(_)) => Verdict { acceptance: Acceptance::Accept, ..Verdict::ignore() },
            Ok(Accepted::Orphan { .. }) => Verdict::ignore(),
            Err(e) => match Blame::for_tx(&e) {
                Blame::Peer(fault) => Verdict::reject(fault),
                Blame::Ours | Blame::Transient => {
                    tracing::debug!(target: "p2p::gossip", %txid, error = %e, "gossiped transaction not accepted");
                    Verdict::ignore()
                }
            },
        }
    }

    /// Answers a peer's sync request.
    fn serve_request(&mut self, peer: PeerId, request: Request) -> (Response, Vec<Action<PeerId>>) {
        match request {
            Request::Status(status) => {
                let ours = ChainView::status(&self.chain);
                let now = unix_ms();
                let actions = self.drive_sync(|m, c| {
                    m.peer_connected(peer, now, c);
                    m.on_status(peer, status, now, c)
                });
                (Response::Status(ours), actions)
            }
            Request::GetHeaders { locator, max } => {
                (Response::Headers(self.chain.headers_after(&locator, None, max as usize)), Vec::new())
            }
            Request::GetBlocks(hashes) => {
                let mut blocks = Vec::new();
                let mut size = 5usize;
                for h in hashes {
                    match self.chain.store().get_block(&h) {
                        Ok(Some(b)) => {
                            let n = 4 + b.block().encoded_size();
                            if !blocks.is_empty() && size + n > MAX_RESPONSE_BYTES {
                                break;
                            }
                            size += n;
                            blocks.push(b.into_block());
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(target: "p2p::sync", error = %e, "reading a block to serve failed");
                            return (Response::Busy, Vec::new());
                        }
                    }
                }
                (Response::Blocks(blocks), Vec::new())
            }
            Request::GetBlockTxn { block, indexes } => self.serve_block_txn(peer, block, &indexes),
        }
    }
}
