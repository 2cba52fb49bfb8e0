//! Admission of one transaction: the checks in order, replace-by-fee, the package limits, and
//! the size cap.

use super::graph::{fee_for, Entry, FeeRate, Totals};
use super::{Accepted, Admission, Mempool, MempoolError, ScriptJob, UtxoSource};
use crate::consensus::{check_transaction, verify_tx_scripts, ConsensusError};
use crate::primitives::{Amount, Hash256, OutPoint, Transaction, TxOut};
use crate::script::count_sigops;
use crate::script::opcodes::{Instruction, Instructions};
use crate::script::templates::p2sh_commitment;
use std::collections::{HashMap, HashSet};
use tracing::debug;

/// Signature operations of `tx` as block connect counts them: unlock data and locking
/// scripts, plus the redeem script of each P2SH spend.
pub(super) fn tx_sigops(tx: &Transaction, spent: &[TxOut]) -> usize {
    let mut n: usize = tx.inputs.iter().map(|i| count_sigops(&i.unlock.0)).sum();
    n += tx.outputs.iter().map(|o| count_sigops(&o.lock.0)).sum::<usize>();
    for (input, out) in tx.inputs.iter().zip(spent) {
        if p2sh_commitment(&out.lock.0).is_some() {
            if let Some(Ok((_, Instruction::Push(redeem)))) = Instructions::new(&input.unlock.0).last() {
                n += count_sigops(redeem);
            }
        }
    }
    n
}

/// How [`Mempool::admit`] treats the scripts of a transaction not in the script cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Scripts {
    /// Verify them here, on the caller's thread.
    Verify,
    /// Stop before them: return [`Step::Verify`] with what a verifier needs.
    Defer,
    /// They were verified by the caller (a [`ScriptJob`] that passed).
    Verified,
}

/// Where [`Mempool::admit`] stopped.
pub(super) enum Step {
    /// Admitted (or kept as an orphan).
    Done(Accepted),
    /// Every rule but the scripts passed; nothing changed in the pool.
    Verify(ScriptJob),
}

impl Mempool {
    /// Checks and admits one transaction, verifying its scripts here (no orphan promotion).
    /// `entry_time` is recorded as its entry time (re-admissions keep their original one).
    /// Without `allow_orphan`, missing inputs are an error.
    pub(super) fn accept_one(
        &mut self,
        tx: Transaction,
        source: &dyn UtxoSource,
        now: u64,
        entry_time: u64,
        allow_orphan: bool,
    ) -> Result<Accepted, MempoolError> {
        match self.admit(tx, source, now, entry_time, allow_orphan, Scripts::Verify)? {
            Step::Done(accepted) => Ok(accepted),
            Step::Verify(_) => unreachable!("admit verifies scripts itself with Scripts::Verify"),
        }
    }

    /// The admission rules in order (see the module docs), with the scripts treated as
    /// `scripts` says.
    pub(super) fn admit(
        &mut self,
        tx: Transaction,
        source: &dyn UtxoSource,
        now: u64,
        entry_time: u64,
        allow_orphan: bool,
        scripts: Scripts,
    ) -> Result<Step, MempoolError> {
        let txid = tx.txid();
        let invalid = |error| MempoolError::Consensus { txid, error };
        check_transaction(&tx, self.params).map_err(invalid)?;
        if tx.is_coinbase() {
            return Err(MempoolError::Coinbase { txid });
        }
        let size = tx.encoded_size();
        if size > self.config.max_tx_size {
            return Err(MempoolError::TxTooLarge { size, max: self.config.max_tx_size });
        }
        if self.graph.contains(&txid) {
            return Err(MempoolError::AlreadyInPool { txid });
        }
        if self.orphans.contains(&txid) {
            return Err(MempoolError::AlreadyOrphan { txid });
        }
        let tip = source.tip_height();
        let height = tip.saturating_add(1);
        if tx.lock_time > height {
            return Err(invalid(ConsensusError::LockTimeNotReached { lock_time: tx.lock_time, height }));
        }

        // Inputs: from pool parents, else from the UTXO set (one batched lookup).
        let mut from_pool: Vec<Option<TxOut>> = Vec::with_capacity(tx.inputs.len());
        let mut lookups = Vec::new();
        let mut conflicts: Vec<Hash256> = Vec::new();
        for input in &tx.inputs {
            let op = input.prevout;
            if let Some(c) = self.graph.spender(&op) {
                if !conflicts.contains(&c) {
                    conflicts.push(c);
                }
            }
            match self.graph.get(&op.txid) {
                Some(parent) => match parent.tx.outputs.get(op.index as usize) {
                    Some(out) => from_pool.push(Some(out.clone())),
                    None => return Err(invalid(ConsensusError::MissingInput { outpoint: op })),
                },
                None => {
                    from_pool.push(None);
                    lookups.push(op);
                }
            }
        }
        let coins = if lookups.is_empty() {
            HashMap::new()
        } else {
            source.coins(&lookups).map_err(|e| MempoolError::Utxo(e.into()))?
        };
        let mut spent = Vec::with_capacity(tx.inputs.len());
        let mut missing = Vec::new();
        let mut in_sum = Amount::ZERO;
        for (input, pooled) in tx.inputs.iter().zip(from_pool) {
            let op = input.prevout;
            let out = match pooled {
                Some(out) => out,
                None => match coins.get(&op) {
                    None => {
                        missing.push(op);
                        continue;
                    }
                    Some(coin) => {
                        let depth = height.saturating_sub(coin.height);
                        if coin.is_coinbase && depth < self.params.coinbase_maturity {
                            return Err(invalid(ConsensusError::ImmatureCoinbaseSpend {
                                outpoint: op,
                                depth,
                                maturity: self.params.coinbase_maturity,
                            }));
                        }
                        coin.out.clone()
                    }
                },
            };
            in_sum = in_sum.checked_add(out.value).map_err(|_| invalid(ConsensusError::InputsOverflow))?;
            spent.push(out);
        }
        if !missing.is_empty() {
            return self.keep_orphan(txid, tx, size, missing, source, now, allow_orphan).map(Step::Done);
        }

        // Amounts, sigops, fee rate.
        let out_sum = Amount::sum(tx.outputs.iter().map(|o| o.value))
            .map_err(|_| invalid(ConsensusError::OutputsOverflow))?;
        let fee = in_sum
            .checked_sub(out_sum)
            .map_err(|_| {
                invalid(ConsensusError::InputsBelowOutputs {
                    inputs: in_sum.to_sat(),
                    outputs: out_sum.to_sat(),
                })
            })?
            .to_sat();
        let sigops = tx_sigops(&tx, &spent);
        if sigops > self.config.max_tx_sigops {
            return Err(MempoolError::TooManySigops { got: sigops, max: self.config.max_tx_sigops });
        }
        let rate = FeeRate::new(fee, size);
        let min_rate = self.config.min_relay_fee_rate;
        let needed = fee_for(min_rate, size);
        if fee < needed {
            return Err(MempoolError::FeeTooLow { fee, size, rate: rate.sat_per_kb(), min_rate, needed });
        }
        let pool_min = self.rolling_min_fee(now);
        if pool_min > min_rate && fee < fee_for(pool_min, size) {
            return Err(MempoolError::BelowMempoolMinFee { rate: rate.sat_per_kb(), min_rate: pool_min });
        }

        // Conflicts and package limits.
        let parents = self.graph.parents_of(&tx);
        let ancestors = self.graph.ancestors_of(&parents);
        let evicted = if conflicts.is_empty() {
            HashSet::new()
        } else {
            self.check_replacement(fee, size, &conflicts, &ancestors)?
        };
        self.check_limits(size, &ancestors, &evicted)?;

        // Scripts last: the expensive part. A txid in the cache was verified before (the
        // verdict depends only on the tx and the outputs its outpoints name).
        if scripts != Scripts::Verified && !self.script_cache.contains(&txid) {
            if scripts == Scripts::Defer {
                return Ok(Step::Verify(ScriptJob { txid, tx, spent }));
            }
            verify_tx_scripts(&tx, &spent).map_err(invalid)?;
        }

        let seq = self.graph.next_seq();
        let entry = Entry {
            tx,
            txid,
            fee,
            size,
            sigops,
            time: entry_time,
            height: tip,
            seq,
            parents: Vec::new(),
            children: Vec::new(),
            ancestors: Totals::default(),
            descendants: Totals::default(),
        };
        let replaced = self.graph.remove_set(&evicted);
        self.graph.insert(entry);
        let (trimmed, worst) = self.trim();
        if !self.graph.contains(&txid) {
            // It would be evicted itself: put the pool back as it was.
            let mut back: Vec<Entry> =
                replaced.into_iter().chain(trimmed).filter(|e| e.txid != txid).collect();
            back.sort_unstable_by_key(|e| e.seq);
            for e in back {
                self.graph.insert(e);
            }
            return Err(MempoolError::MempoolFull {
                rate: rate.sat_per_kb(),
                max_bytes: self.config.max_bytes,
            });
        }
        if let Some(score) = worst {
            self.raise_rolling_min_fee(score, now);
        }
        self.script_cache.insert(txid);
        debug!(target: "mempool", %txid, fee, size, replaced = replaced.len(), evicted = trimmed.len(), "accepted");
        Ok(Step::Done(Accepted::Added(Admission {
            txid,
            fee: Amount::from_sat(fee).expect("at most the inputs' sum"),
            size,
            replaced: replaced.iter().map(|e| e.txid).collect(),
            evicted: trimmed.iter().map(|e| e.txid).collect(),
            promoted: Vec::new(),
        })))
    }

    /// A transaction with missing inputs: already confirmed, refused, or kept as an orphan.
    #[allow(clippy::too_many_arguments)]
    fn keep_orphan(
        &mut self,
        txid: Hash256,
        tx: Transaction,
        size: usize,
        missing: Vec<OutPoint>,
        source: &dyn UtxoSource,
        now: u64,
        allow_orphan: bool,
    ) -> Result<Accepted, MempoolError> {
        let own: Vec<OutPoint> = (0..tx.outputs.len() as u32).map(|index| OutPoint { txid, index }).collect();
        if !source.coins(&own).map_err(|e| MempoolError::Utxo(e.into()))?.is_empty() {
            return Err(MempoolError::AlreadyConfirmed { txid });
        }
        if !allow_orphan || self.config.max_orphans == 0 {
            return Err(MempoolError::MissingInputs { txid, outpoint: missing[0] });
        }
        if size > self.config.max_orphan_bytes {
            return Err(MempoolError::OrphanTooLarge { size, max: self.config.max_orphan_bytes });
        }
        self.orphans.expire(now, self.config.orphan_expiry_secs);
        let mut parents: Vec<Hash256> = Vec::new();
        for op in &missing {
            if !parents.contains(&op.txid) {
                parents.push(op.txid);
            }
        }
        let dropped = self.orphans.insert(
            txid,
            (tx, size, now, parents.clone()),
            self.config.max_orphans,
            self.config.max_orphan_bytes,
        );
        debug!(target: "mempool", %txid, missing = parents.len(), dropped = dropped.len(), "orphan kept");
        Ok(Accepted::Orphan { txid, missing_parents: parents })
    }

    /// Replace-by-fee: the set the replacement evicts, if it qualifies.
    fn check_replacement(
        &self,
        fee: u64,
        size: usize,
        conflicts: &[Hash256],
        ancestors: &HashSet<Hash256>,
    ) -> Result<HashSet<Hash256>, MempoolError> {
        let first = conflicts[0];
        let evicted = self.graph.with_descendants(conflicts.iter().copied());
        if evicted.len() > self.config.max_replacements {
            return Err(MempoolError::TooManyReplacements {
                conflict: first,
                got: evicted.len(),
                max: self.config.max_replacements,
            });
        }
        let spent_conflict = ancestors
            .iter()
            .filter(|a| evicted.contains(*a))
            .min_by_key(|a| self.graph.get(a).map(|e| e.seq));
        if let Some(a) = spent_conflict {
            return Err(MempoolError::SpendsConflictingTx { conflict: *a });
        }
        let rate = FeeRate::new(fee, size);
        for c in conflicts {
            let theirs = self.graph.get(c).expect("conflicts are pool entries").rate();
            if rate <= theirs {
                return Err(MempoolError::ReplacementRateTooLow {
                    conflict: *c,
                    rate: rate.sat_per_kb(),
                    conflict_rate: theirs.sat_per_kb(),
                });
            }
        }
        let replaced_fees: u64 = evicted.iter().filter_map(|t| self.graph.get(t)).map(|e| e.fee).sum();
        let relay_fee = fee_for(self.config.min_relay_fee_rate, size);
        let needed = replaced_fees.saturating_add(relay_fee).max(replaced_fees.saturating_add(1));
        if fee < needed {
            return Err(MempoolError::ReplacementFeeTooLow {
                conflict: first,
                fee,
                needed,
                replaced_fees,
                replaced: evicted.len(),
                relay_fee,
                size,
            });
        }
        Ok(evicted)
    }

    /// Ancestor and descendant limits for a new transaction of `size` bytes with in-pool
    /// `ancestors`, counting the pool after `evicted` is gone.
    fn check_limits(
        &self,
        size: usize,
        ancestors: &HashSet<Hash256>,
        evicted: &HashSet<Hash256>,
    ) -> Result<(), MempoolError> {
        let c = &self.config;
        let count = ancestors.len() + 1;
        if count > c.max_ancestors {
            return Err(MempoolError::TooManyAncestors { got: count, max: c.max_ancestors });
        }
        let mut ancs: Vec<_> = ancestors.iter().filter_map(|a| self.graph.get(a)).collect();
        ancs.sort_unstable_by_key(|e| e.seq);
        let anc_size = size + ancs.iter().map(|e| e.size).sum::<usize>();
        if anc_size > c.max_ancestor_size {
            return Err(MempoolError::AncestorsTooLarge { got: anc_size, max: c.max_ancestor_size });
        }
        // What the replacement removes from each ancestor's descendants.
        let mut less: HashMap<Hash256, (usize, usize)> = HashMap::new();
        for t in evicted {
            let e = self.graph.get(t).expect("evicted are pool entries");
            for a in self.graph.ancestors_of(&e.parents) {
                if ancestors.contains(&a) {
                    let l = less.entry(a).or_default();
                    l.0 += 1;
                    l.1 += e.size;
                }
            }
        }
        for a in ancs {
            let (lc, ls) = less.get(&a.txid).copied().unwrap_or_default();
            let got = a.descendants.count - lc + 1;
            if got > c.max_descendants {
                return Err(MempoolError::TooManyDescendants {
                    ancestor: a.txid,
                    got,
                    max: c.max_descendants,
                });
            }
            let got = a.descendants.size - ls + size;
            if got > c.max_descendant_size {
                return Err(MempoolError::DescendantsTooLarge {
                    ancestor: a.txid,
                    got,
                    max: c.max_descendant_size,
                });
            }
        }
        Ok(())
    }

    /// Evicts the lowest-score packages until the pool is within its cap. Returns the
    /// evicted entries and the highest score evicted.
    fn trim(&mut self) -> (Vec<Entry>, Option<FeeRate>) {
        let mut trimmed = Vec::new();
        let mut worst: Option<FeeRate> = None;
        while self.graph.usage() > self.config.max_bytes {
            let Some((low, score)) = self.graph.lowest_score() else { break };
            let package = self.graph.with_descendants([low]);
            trimmed.extend(self.graph.remove_set(&package));
            worst = Some(worst.map_or(score, |w| w.max(score)));
        }
        (trimmed, worst)
    }
}
