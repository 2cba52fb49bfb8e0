//! The pool's transaction graph: entries, their in-pool parents and children, the ancestor and
//! descendant totals kept up to date on every insert and removal, the outpoint -> spender map,
//! and the eviction order (lowest descendant score first).
//!
//! Invariants: a transaction's in-pool parents are inserted before it (so insertion sequence
//! numbers are a topological order), and an inserted transaction has no in-pool children yet.
//! Removal takes any set: totals of the ancestors and descendants left behind are adjusted.

use crate::primitives::{Hash256, OutPoint, Transaction};
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, HashMap, HashSet};

/// A fee per byte, compared exactly (cross-multiplied, no rounding); shown in sat/kB.
#[derive(Clone, Copy, Debug)]
pub struct FeeRate {
    fee: u64,
    size: u64,
}

impl FeeRate {
    /// `fee` sat over `size` bytes (a size of 0 counts as 1).
    pub fn new(fee: u64, size: usize) -> FeeRate {
        FeeRate { fee, size: (size as u64).max(1) }
    }

    /// The rate in sat per 1000 bytes, rounded down.
    pub fn sat_per_kb(self) -> u64 {
        (self.fee as u128 * 1000 / self.size as u128) as u64
    }
}

impl PartialEq for FeeRate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for FeeRate {}
impl PartialOrd for FeeRate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for FeeRate {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.fee as u128 * other.size as u128).cmp(&(other.fee as u128 * self.size as u128))
    }
}

/// The fee, in sat, that `rate_per_kb` asks of `size` bytes (rounded up).
pub fn fee_for(rate_per_kb: u64, size: usize) -> u64 {
    (rate_per_kb as u128 * size as u128).div_ceil(1000).min(u64::MAX as u128) as u64
}

/// Count, bytes, fees and sigops of a set of transactions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Transactions.
    pub count: usize,
    /// Canonical bytes.
    pub size: usize,
    /// Fees, sat.
    pub fees: u64,
    /// Signature operations.
    pub sigops: usize,
}

impl Totals {
    /// Adds `o`.
    pub fn add(&mut self, o: &Totals) {
        self.count += o.count;
        self.size += o.size;
        self.fees += o.fees;
        self.sigops += o.sigops;
    }
    /// Subtracts `o` (which must be part of `self`).
    pub fn sub(&mut self, o: &Totals) {
        self.count -= o.count;
        self.size -= o.size;
        self.fees -= o.fees;
        self.sigops -= o.sigops;
    }
    /// The fee rate of the set.
    pub fn rate(&self) -> FeeRate {
        FeeRate::new(self.fees, self.size)
    }
}

/// A transaction in the pool.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The transaction.
    pub tx: Transaction,
    /// Its id.
    pub txid: Hash256,
    /// Fee, sat.
    pub fee: u64,
    /// Canonical size, bytes.
    pub size: usize,
    /// Signature operations (as counted by block connect, P2SH redeem scripts included).
    pub sigops: usize,
    /// When it entered the pool (seconds since the epoch).
    pub time: u64,
    /// Chain tip height when it entered.
    pub height: u32,
    /// Insertion order (a topological order).
    pub seq: u64,
    /// Distinct in-pool transactions it spends.
    pub parents: Vec<Hash256>,
    /// In-pool transactions spending it.
    pub children: Vec<Hash256>,
    /// Itself plus all in-pool ancestors.
    pub ancestors: Totals,
    /// Itself plus all in-pool descendants.
    pub descendants: Totals,
}

/// Estimated heap bytes one entry costs beyond its canonical size (maps, vectors, indexes).
const ENTRY_OVERHEAD: usize = 400;

impl Entry {
    /// Its own totals.
    pub fn own(&self) -> Totals {
        Totals { count: 1, size: self.size, fees: self.fee, sigops: self.sigops }
    }

    /// Its own fee rate.
    pub fn rate(&self) -> FeeRate {
        FeeRate::new(self.fee, self.size)
    }

    /// Estimated memory use.
    pub fn usage(&self) -> usize {
        self.size + ENTRY_OVERHEAD + 100 * self.tx.inputs.len() + 40 * self.tx.outputs.len()
    }

    /// Eviction score: the higher of its own rate and its package-with-descendants rate, so a
    /// child paying for its parent protects the parent, but a cheap child cannot drag a
    /// well-paying parent down.
    pub fn descendant_score(&self) -> FeeRate {
        self.rate().max(self.descendants.rate())
    }

    fn score_key(&self) -> ScoreKey {
        (self.descendant_score(), Reverse(self.seq), self.txid)
    }
}

/// Lowest score first; among equal scores the newest first (first seen is kept).
type ScoreKey = (FeeRate, Reverse<u64>, Hash256);

/// The pool's graph and indexes.
#[derive(Default)]
pub struct Graph {
    entries: HashMap<Hash256, Entry>,
    spent_by: HashMap<OutPoint, Hash256>,
    by_score: BTreeSet<ScoreKey>,
    bytes: usize,
    usage: usize,
    fees: u64,
    next_seq: u64,
}

impl Graph {
    /// The entry for `txid`.
    pub fn get(&self, txid: &Hash256) -> Option<&Entry> {
        self.entries.get(txid)
    }
    /// True if `txid` is in the pool.
    pub fn contains(&self, txid: &Hash256) -> bool {
        self.entries.contains_key(txid)
    }
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// Sum of canonical sizes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
    /// Estimated memory use.
    pub fn usage(&self) -> usize {
        self.usage
    }
    /// Sum of fees.
    pub fn fees(&self) -> u64 {
        self.fees
    }
    /// The pool transaction spending `outpoint`.
    pub fn spender(&self, outpoint: &OutPoint) -> Option<Hash256> {
        self.spent_by.get(outpoint).copied()
    }
    /// All entries, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }
    /// The last sequence number handed out (grows with every admission).
    pub fn last_seq(&self) -> u64 {
        self.next_seq
    }
    /// A sequence number for a new entry.
    pub fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Entries in insertion order (parents before children).
    pub fn in_order(&self) -> Vec<&Entry> {
        let mut v: Vec<&Entry> = self.entries.values().collect();
        v.sort_unstable_by_key(|e| e.seq);
        v
    }

    /// The entry with the lowest eviction score.
    pub fn lowest_score(&self) -> Option<(Hash256, FeeRate)> {
        self.by_score.first().map(|(rate, _, txid)| (*txid, *rate))
    }

    /// Distinct in-pool txids among `tx`'s inputs.
    pub fn parents_of(&self, tx: &Transaction) -> Vec<Hash256> {
        let mut parents: Vec<Hash256> = Vec::new();
        for i in &tx.inputs {
            let p = i.prevout.txid;
            if self.entries.contains_key(&p) && !parents.contains(&p) {
                parents.push(p);
            }
        }
        parents
    }

    /// All in-pool ancestors reachable from `parents` (the parents included).
    pub fn ancestors_of(&self, parents: &[Hash256]) -> HashSet<Hash256> {
        self.walk(parents.to_vec(), |e| &e.parents)
    }

    /// All in-pool descendants of `roots` (the roots included).
    pub fn with_descendants(&self, roots: impl IntoIterator<Item = Hash256>) -> HashSet<Hash256> {
        self.walk(roots.into_iter().filter(|t| self.entries.contains_key(t)).collect(), |e| &e.children)
    }

    /// Strict descendants of `txid`.
    pub fn descendants_of(&self, txid: &Hash256) -> HashSet<Hash256> {
        let start = self.entries.get(txid).map_or_else(Vec::new, |e| e.children.clone());
        self.walk(start, |e| &e.children)
    }

    fn walk(&self, mut stack: Vec<Hash256>, next: impl Fn(&Entry) -> &Vec<Hash256>) -> HashSet<Hash256> {
        let mut seen = HashSet::new();
        while let Some(t) = stack.pop() {
            if seen.insert(t) {
                if let Some(e) = self.entries.get(&t) {
                    stack.extend(next(e).iter().filter(|c| !seen.contains(*c)));
                }
            }
        }
        seen
    }

    /// Inserts `e` (its `seq` set; links and totals are computed here). Its in-pool parents
    /// must already be present and nothing in the pool may spend it yet.
    pub fn insert(&mut self, mut e: Entry) {
        debug_assert!(!self.entries.contains_key(&e.txid));
        e.parents = self.parents_of(&e.tx);
        e.children.clear();
        let own = e.own();
        let ancestors = self.ancestors_of(&e.parents);
        e.ancestors = own;
        e.descendants = own;
        for a in &ancestors {
            e.ancestors.add(&self.entries[a].own());
            self.update_descendants(a, |d| d.add(&own));
        }
        for p in &e.parents {
            self.entries.get_mut(p).expect("parent present").children.push(e.txid);
        }
        for i in &e.tx.inputs {
            self.spent_by.insert(i.prevout, e.txid);
        }
        self.by_score.insert(e.score_key());
        self.bytes += e.size;
        self.usage += e.usage();
        self.fees += e.fee;
        self.next_seq = self.next_seq.max(e.seq);
        self.entries.insert(e.txid, e);
    }

    fn update_descendants(&mut self, txid: &Hash256, f: impl FnOnce(&mut Totals)) {
        let e = self.entries.get_mut(txid).expect("entry present");
        self.by_score.remove(&e.score_key());
        f(&mut e.descendants);
        self.by_score.insert(e.score_key());
    }

    /// Removes every txid of `set` that is in the pool; adjusts the totals of ancestors and
    /// descendants left behind. Returns the removed entries in insertion order.
    pub fn remove_set(&mut self, set: &HashSet<Hash256>) -> Vec<Entry> {
        // `set` may name transactions not in the pool. Membership below is tested against it
        // as given: an ancestor or descendant is in the pool, so it is in `set` only if it
        // goes too.
        // (seq, txid) of the entries present, sorted before removal so the entries come out
        // in insertion order without moving them again.
        let mut present: Vec<(u64, Hash256)> = Vec::with_capacity(set.len());
        let mut desc_adjust: HashMap<Hash256, Totals> = HashMap::new();
        let mut anc_adjust: HashMap<Hash256, Totals> = HashMap::new();
        for r in set {
            let Some(e) = self.entries.get(r) else { continue };
            present.push((e.seq, *r));
            if e.parents.is_empty() && e.children.is_empty() {
                continue; // no relatives: nothing left behind to adjust
            }
            let own = e.own();
            for a in self.ancestors_of(&e.parents).into_iter().filter(|a| !set.contains(a)) {
                desc_adjust.entry(a).or_default().add(&own);
            }
            for d in self.walk(e.children.clone(), |e| &e.children).into_iter().filter(|d| !set.contains(d)) {
                anc_adjust.entry(d).or_default().add(&own);
            }
        }
        for (a, t) in desc_adjust {
            self.update_descendants(&a, |d| d.sub(&t));
        }
        for (d, t) in anc_adjust {
            self.entries.get_mut(&d).expect("entry present").ancestors.sub(&t);
        }
        present.sort_unstable();
        let mut removed = Vec::with_capacity(present.len());
        for (_, r) in &present {
            let e = self.entries.remove(r).expect("filtered to present entries");
            self.by_score.remove(&e.score_key());
            for p in &e.parents {
                if let Some(pe) = self.entries.get_mut(p) {
                    pe.children.retain(|c| c != r);
                }
            }
            for c in &e.children {
                if let Some(ce) = self.entries.get_mut(c) {
                    ce.parents.retain(|p| p != r);
                }
            }
            for i in &e.tx.inputs {
                if let std::collections::hash_map::Entry::Occupied(o) = self.spent_by.entry(i.prevout) {
                    if o.get() == r {
                        o.remove();
                    }
                }
            }
            self.bytes -= e.size;
            self.usage -= e.usage();
            self.fees -= e.fee;
            removed.push(e);
        }
        removed
    }

    /// Removes every entry (for re-admission after a reorganisation); insertion order.
    pub fn drain(&mut self) -> Vec<Entry> {
        let mut all: Vec<Entry> = self.entries.drain().map(|(_, e)| e).collect();
        all.sort_unstable_by_key(|e| e.seq);
        let next_seq = self.next_seq;
        *self = Graph { next_seq, ..Graph::default() };
        all
    }

    /// Checks every cached total against a recomputation (tests).
    #[cfg(test)]
    pub fn assert_consistent(&self) {
        let mut bytes = 0;
        for e in self.entries.values() {
            bytes += e.size;
            let mut anc = e.own();
            for a in self.ancestors_of(&e.parents) {
                anc.add(&self.entries[&a].own());
            }
            assert_eq!(anc, e.ancestors, "ancestor totals of {}", e.txid);
            let mut desc = e.own();
            for d in self.descendants_of(&e.txid) {
                desc.add(&self.entries[&d].own());
            }
            assert_eq!(desc, e.descendants, "descendant totals of {}", e.txid);
            assert_eq!(e.parents, self.parents_of(&e.tx), "parents of {}", e.txid);
            for p in &e.parents {
                assert!(self.entries[p].seq < e.seq, "parent inserted before child");
            }
            assert!(self.by_score.contains(&e.score_key()));
        }
        assert_eq!(self.by_score.len(), self.entries.len());
        assert_eq!(bytes, self.bytes);
    }
}

/// Orders `txs` so that every transaction comes after its parents among them, otherwise
/// keeping the given order. Returns indexes into `txs`.
pub fn topological_order(txs: &[&Transaction]) -> Vec<usize> {
    let ids: Vec<Hash256> = txs.iter().map(|t| t.txid()).collect();
    let index: HashMap<Hash256, usize> = ids.iter().enumerate().map(|(i, t)| (*t, i)).collect();
    let mut done = vec![false; txs.len()];
    let mut on_stack = vec![false; txs.len()];
    let mut out = Vec::with_capacity(txs.len());
    for root in 0..txs.len() {
        // Iterative depth-first post-order: (node, next input to look at).
        let mut stack = vec![(root, 0usize)];
        on_stack[root] = true;
        while let Some((i, k)) = stack.pop() {
            if done[i] {
                continue;
            }
            match txs[i].inputs.get(k) {
                Some(input) => {
                    stack.push((i, k + 1));
                    if let Some(&p) = index.get(&input.prevout.txid) {
                        if !done[p] && !on_stack[p] {
                            on_stack[p] = true;
                            stack.push((p, 0));
                        }
                    }
                }
                None => {
                    done[i] = true;
                    out.push(i);
                }
            }
        }
    }
    out
}
