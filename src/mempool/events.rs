//! Chain events (connected and disconnected blocks, reorganisations) and expiry.

use super::graph::topological_order;
use super::{Accepted, Mempool, MempoolError, UtxoSource};
use crate::chain::ChainEvent;
use crate::consensus::CheckedBlock;
use crate::primitives::{Hash256, Transaction};
use std::collections::HashSet;
use tracing::debug;

/// What chain events did to the pool.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolUpdate {
    /// Pool transactions removed because a block included them.
    pub included: Vec<Hash256>,
    /// Pool transactions removed because a block spent one of their inputs (with their
    /// descendants).
    pub conflicts: Vec<Hash256>,
    /// Orphans admitted because a parent arrived.
    pub promoted: Vec<Hash256>,
    /// Transactions of disconnected blocks taken back into the pool.
    pub readded: Vec<Hash256>,
    /// Transactions dropped at re-admission after a reorganisation (no longer valid).
    pub dropped: Vec<Hash256>,
}

impl PoolUpdate {
    fn merge(&mut self, o: PoolUpdate) {
        self.included.extend(o.included);
        self.conflicts.extend(o.conflicts);
        self.promoted.extend(o.promoted);
        self.readded.extend(o.readded);
        self.dropped.extend(o.dropped);
    }
}

impl Mempool {
    /// Applies the events of one chain operation in order, then [`Mempool::reorg_done`].
    /// `source` must show the chain after all of them.
    pub fn apply_events(&mut self, events: &[ChainEvent], source: &dyn UtxoSource, now: u64) -> PoolUpdate {
        let mut update = PoolUpdate::default();
        for event in events {
            match event {
                ChainEvent::Connected { block, .. } => update.merge(self.block_connected(block, source, now)),
                ChainEvent::Disconnected { block, .. } => self.block_disconnected(block),
            }
        }
        update.merge(self.reorg_done(source, now));
        update
    }

    /// A block was connected: removes the transactions it includes and those conflicting with
    /// it (with their descendants), then admits orphans whose parents it holds.
    pub fn block_connected(&mut self, block: &CheckedBlock, source: &dyn UtxoSource, now: u64) -> PoolUpdate {
        let txids = block.txids();
        let included: HashSet<Hash256> = txids.iter().skip(1).copied().collect();
        let removed = self.graph.remove_set(&included);
        let spenders: Vec<Hash256> = block
            .block()
            .txs
            .iter()
            .skip(1)
            .flat_map(|tx| tx.inputs.iter())
            .filter_map(|i| self.graph.spender(&i.prevout))
            .collect();
        let conflicting = self.graph.with_descendants(spenders);
        let conflicts = self.graph.remove_set(&conflicting);
        for t in &included {
            self.orphans.remove(t);
        }
        self.reorg_queue.retain(|(t, _)| !included.contains(t));
        let promoted = self.promote_orphans(txids.to_vec(), source, now);
        debug!(
            target: "mempool",
            hash = %block.hash(),
            included = removed.len(),
            conflicts = conflicts.len(),
            promoted = promoted.len(),
            "block connected"
        );
        PoolUpdate {
            included: removed.iter().map(|e| e.txid).collect(),
            conflicts: conflicts.iter().map(|e| e.txid).collect(),
            promoted,
            ..PoolUpdate::default()
        }
    }

    /// A block was disconnected: queues its non-coinbase transactions for re-admission by
    /// [`Mempool::reorg_done`].
    pub fn block_disconnected(&mut self, block: &CheckedBlock) {
        let txs = &block.block().txs;
        for (txid, tx) in block.txids().iter().zip(txs).skip(1) {
            self.reorg_queue.push((*txid, tx.clone()));
        }
    }

    /// After the events of a reorganisation: re-admits the queued transactions of
    /// disconnected blocks, and revalidates the rest of the pool against the new tip
    /// (spends of disconnected coinbases or of now-immature coins go; pool transactions
    /// spending re-added ones link to them). Scripts verified before are not verified again
    /// (the script cache). Does nothing if no block was disconnected.
    pub fn reorg_done(&mut self, source: &dyn UtxoSource, now: u64) -> PoolUpdate {
        if self.reorg_queue.is_empty() {
            return PoolUpdate::default();
        }
        let queued = std::mem::take(&mut self.reorg_queue);
        let n_queued = queued.len();
        let old = self.graph.drain();
        let mut items: Vec<Option<(Transaction, u64)>> = queued
            .into_iter()
            .map(|(_, tx)| Some((tx, now)))
            .chain(old.into_iter().map(|e| Some((e.tx, e.time))))
            .collect();
        let order = {
            let refs: Vec<&Transaction> = items.iter().map(|i| &i.as_ref().expect("all present").0).collect();
            topological_order(&refs)
        };
        let mut update = PoolUpdate::default();
        let mut admitted = Vec::new();
        for i in order {
            let (tx, time) = items[i].take().expect("each index once");
            let txid = tx.txid();
            match self.accept_one(tx, source, now, time, false) {
                Ok(Accepted::Added(a)) => {
                    if i < n_queued {
                        update.readded.push(a.txid);
                    }
                    admitted.push(a.txid);
                }
                Ok(Accepted::Orphan { .. }) => unreachable!("orphans are not allowed here"),
                Err(MempoolError::AlreadyInPool { .. }) => {}
                Err(error) => {
                    debug!(target: "mempool", %txid, %error, "dropped at re-admission after a reorganisation");
                    update.dropped.push(txid);
                }
            }
        }
        update.promoted = self.promote_orphans(admitted, source, now);
        debug!(
            target: "mempool",
            readded = update.readded.len(),
            dropped = update.dropped.len(),
            "re-admitted after a reorganisation"
        );
        update
    }

    /// Removes entries that entered `expiry_secs` or more before `now` (with their
    /// descendants) and orphans past their expiry. Returns the removed pool txids.
    pub fn expire(&mut self, now: u64) -> Vec<Hash256> {
        let max_age = self.config.expiry_secs;
        let old: Vec<Hash256> =
            self.graph.entries().filter(|e| now.saturating_sub(e.time) >= max_age).map(|e| e.txid).collect();
        let set = self.graph.with_descendants(old);
        let removed = self.graph.remove_set(&set);
        self.orphans.expire(now, self.config.orphan_expiry_secs);
        removed.into_iter().map(|e| e.txid).collect()
    }
}
