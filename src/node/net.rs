//! The core's side of networking: gossip verdicts, serving sync requests, and driving the
//! sync state machine, whose `Process` actions are executed here, next to the chain.

use super::core::{now, Core};
use crate::chain::ProcessOutcome;
use crate::mempool::Accepted;
use crate::p2p::peers::Misbehaviour;
use crate::p2p::service::Verdict;
use crate::p2p::sync::{Action, SyncMachine};
use crate::p2p::wire::{Request, Response, Topic, MAX_RESPONSE_BYTES};
use crate::primitives::{Block, Transaction};
use libp2p::gossipsub::MessageAcceptance;
use libp2p::PeerId;

/// A block error the sender is to blame for. A block already known invalid is not: the
/// verdict may be our own (`invalidateblock`), so it is refused without a penalty.
fn peer_fault(e: &crate::chain::ChainError) -> bool {
    e.is_peer_fault() && !matches!(e, crate::chain::ChainError::KnownInvalid { .. })
}

impl Core {
    /// Runs `f` on the sync machine, then hands every block it releases to the chain (in
    /// order, reporting each result back) until it releases no more. Returns the network
    /// actions for the service.
    pub fn drive_sync(
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
                    Action::Process { block, .. } => {
                        if !processed {
                            self.sync.begin_batch();
                            processed = true;
                        }
                        let hash = block.hash();
                        let result = match self.submit_block(block) {
                            // Stored, but it failed to connect when the chain tried it.
                            Ok(_) if self.chain.is_known_invalid(&hash) => {
                                Err((true, format!("block {hash} failed to connect (see the chain log)")))
                            }
                            Ok(_) => Ok(()),
                            Err(e) => Err((peer_fault(&e), e.to_string())),
                        };
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

    /// Validates a gossiped block: Accept if stored, Reject (and the sender's fault) if
    /// invalid, Ignore for duplicates, unknown parents (whose headers are then fetched from
    /// the sender) and our own failures.
    pub fn on_gossip_block(&mut self, peer: PeerId, block: Block, now_ms: u64) -> Verdict {
        let hash = block.hash();
        let mut verdict =
            Verdict { acceptance: MessageAcceptance::Ignore, fault: None, height: None, actions: vec![] };
        match self.submit_block(block) {
            // Stored, but it failed to connect (scripts, amounts, ...): never relayed.
            Ok(ProcessOutcome::Accepted { .. }) if self.chain.is_known_invalid(&hash) => {
                verdict.acceptance = MessageAcceptance::Reject;
                verdict.fault = Some(Misbehaviour::InvalidBlock(format!("block {hash} failed to connect")));
            }
            Ok(ProcessOutcome::Accepted { .. }) => {
                verdict.acceptance = MessageAcceptance::Accept;
                if let Some(rec) = self.chain.record(&hash) {
                    let (height, work) = (rec.height, rec.chain_work);
                    verdict.height = Some(height);
                    self.sync.on_peer_block(peer, height, work);
                }
            }
            Ok(ProcessOutcome::AlreadyHave) => {}
            Ok(ProcessOutcome::Orphan { missing }) => {
                tracing::debug!(target: "p2p::sync", %hash, %missing, %peer, "gossiped block has an unknown parent; fetching headers");
                verdict.actions = self.drive_sync(|m, c| m.on_orphan(peer, now_ms, c));
            }
            Err(e) if peer_fault(&e) => {
                verdict.acceptance = MessageAcceptance::Reject;
                verdict.fault = Some(Misbehaviour::InvalidBlock(e.to_string()));
            }
            Err(e @ crate::chain::ChainError::KnownInvalid { .. }) => {
                verdict.acceptance = MessageAcceptance::Reject;
                tracing::debug!(target: "p2p::gossip", %hash, error = %e, "known invalid block");
            }
            Err(e) => {
                tracing::warn!(target: "p2p::gossip", %hash, error = %e, "gossiped block not processed")
            }
        }
        verdict
    }

    /// Validates a gossiped transaction against the mempool.
    pub fn on_gossip_tx(&mut self, tx: Transaction) -> Verdict {
        let txid = tx.txid();
        let mut verdict =
            Verdict { acceptance: MessageAcceptance::Ignore, fault: None, height: None, actions: vec![] };
        if self.mempool.contains(&txid) {
            return verdict;
        }
        match self.mempool.accept(tx, &self.chain, now()) {
            Ok(Accepted::Added(_)) => {
                verdict.acceptance = MessageAcceptance::Accept;
            }
            Ok(Accepted::Orphan { .. }) => {}
            Err(e) if e.is_peer_fault() => {
                verdict.acceptance = MessageAcceptance::Reject;
                verdict.fault = Some(Misbehaviour::InvalidTx(e.to_string()));
            }
            Err(e) => {
                tracing::debug!(target: "p2p::gossip", %txid, error = %e, "gossiped transaction not accepted")
            }
        }
        verdict
    }

    /// Answers a peer's sync request.
    pub fn serve_request(
        &mut self,
        peer: PeerId,
        request: Request,
        now_ms: u64,
    ) -> (Response, Vec<Action<PeerId>>) {
        use crate::p2p::sync::ChainView;
        match request {
            Request::Status(status) => {
                let ours = ChainView::status(&self.chain);
                let actions = self.drive_sync(|m, c| {
                    m.peer_connected(peer, now_ms, c);
                    m.on_status(peer, status, now_ms, c)
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
        }
    }

    /// Publishes a block on gossip (our own: mined, generated or submitted).
    pub fn announce_block(&self, block: &Block) {
        // A block that was stored but failed to connect is never relayed.
        if self.chain.is_known_invalid(&block.hash()) {
            return;
        }
        if let Some(net) = &self.net {
            net.publish(Topic::Blocks, block.encode());
        }
    }

    /// Publishes a transaction on gossip (submitted over RPC).
    pub fn announce_tx(&self, tx: &Transaction) {
        if let Some(net) = &self.net {
            net.publish(Topic::Transactions, tx.encode());
        }
    }
}
