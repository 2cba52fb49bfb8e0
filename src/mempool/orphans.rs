//! Orphan transactions: valid-looking transactions whose inputs are not yet known, kept
//! (bounded in count and bytes, with expiry) until a parent arrives in the pool or a block.
//! When full, the oldest orphan goes first.

use crate::primitives::{Hash256, Transaction};
use std::collections::{BTreeMap, HashMap};

/// A waiting transaction.
pub struct Orphan {
    /// The transaction.
    pub tx: Transaction,
    /// Canonical size.
    pub size: usize,
    /// When it arrived.
    pub time: u64,
    /// Txids of the missing inputs.
    pub parents: Vec<Hash256>,
    seq: u64,
}

/// The orphan pool.
pub struct OrphanPool {
    by_txid: HashMap<Hash256, Orphan>,
    by_parent: HashMap<Hash256, Vec<Hash256>>,
    by_age: BTreeMap<u64, Hash256>,
    next_seq: u64,
    bytes: usize,
}

impl OrphanPool {
    /// An empty pool.
    pub fn new() -> OrphanPool {
        OrphanPool {
            by_txid: HashMap::new(),
            by_parent: HashMap::new(),
            by_age: BTreeMap::new(),
            next_seq: 0,
            bytes: 0,
        }
    }

    /// Number of orphans.
    pub fn len(&self) -> usize {
        self.by_txid.len()
    }

    /// Sum of their sizes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// True if `txid` waits here.
    pub fn contains(&self, txid: &Hash256) -> bool {
        self.by_txid.contains_key(txid)
    }

    /// Adds an orphan, first dropping the oldest ones until it fits within `max_count` and
    /// `max_bytes` (the caller has checked that it fits alone). Returns the dropped txids.
    pub fn insert(
        &mut self,
        txid: Hash256,
        orphan: (Transaction, usize, u64, Vec<Hash256>),
        max_count: usize,
        max_bytes: usize,
    ) -> Vec<Hash256> {
        let (tx, size, time, parents) = orphan;
        let mut dropped = Vec::new();
        while !self.by_txid.is_empty() && (self.len() + 1 > max_count || self.bytes + size > max_bytes) {
            let (_, oldest) = self.by_age.pop_first().expect("non-empty");
            self.remove(&oldest);
            dropped.push(oldest);
        }
        for p in &parents {
            self.by_parent.entry(*p).or_default().push(txid);
        }
        self.next_seq += 1;
        self.by_age.insert(self.next_seq, txid);
        self.bytes += size;
        self.by_txid.insert(txid, Orphan { tx, size, time, parents, seq: self.next_seq });
        dropped
    }

    /// Removes one orphan.
    pub fn remove(&mut self, txid: &Hash256) -> Option<Orphan> {
        let o = self.by_txid.remove(txid)?;
        self.by_age.remove(&o.seq);
        self.bytes -= o.size;
        for p in &o.parents {
            if let Some(v) = self.by_parent.get_mut(p) {
                v.retain(|t| t != txid);
                if v.is_empty() {
                    self.by_parent.remove(p);
                }
            }
        }
        Some(o)
    }

    /// Removes and returns the orphans waiting for `parent`, oldest first.
    pub fn take_children(&mut self, parent: &Hash256) -> Vec<(Hash256, Orphan)> {
        let Some(children) = self.by_parent.get(parent).cloned() else { return Vec::new() };
        let mut out: Vec<(Hash256, Orphan)> =
            children.iter().filter_map(|t| self.remove(t).map(|o| (*t, o))).collect();
        out.sort_unstable_by_key(|(_, o)| o.seq);
        out
    }

    /// Drops orphans that arrived `max_age` seconds or more before `now`; returns how many.
    pub fn expire(&mut self, now: u64, max_age: u64) -> usize {
        let old: Vec<Hash256> = self
            .by_txid
            .iter()
            .filter(|(_, o)| now.saturating_sub(o.time) >= max_age)
            .map(|(t, _)| *t)
            .collect();
        for t in &old {
            self.remove(t);
        }
        old.len()
    }
}
