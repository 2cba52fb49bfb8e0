//! Block templates: transactions chosen by ancestor fee rate (a transaction is considered
//! together with its unselected ancestors, so a high-fee child pulls its parent in), parents
//! always before children, within the block's size and sigop limits.

use super::graph::{Entry, FeeRate, Totals};
use super::Mempool;
use crate::consensus::validation::block_subsidy;
use crate::consensus::TipContext;
use crate::miner::{BlockTemplate, TemplateSource};
use crate::primitives::header::HEADER_SIZE;
use crate::primitives::tx::MIN_TX_SIZE;
use crate::primitives::{Amount, Hash256, Script, Transaction};
use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet};

/// Bytes kept free for the coinbase in a template.
pub const COINBASE_RESERVED_SIZE: usize = 1_000;
/// Signature operations kept free for the coinbase in a template.
pub const COINBASE_RESERVED_SIGOPS: usize = 100;

/// Best first: highest ancestor fee rate, then the earliest entry.
type Key = (Reverse<FeeRate>, u64, Hash256);

impl Mempool {
    /// The transactions for a block of at most `max_block_size` bytes and `max_sigops`
    /// signature operations (both including the header, the transaction count and a
    /// reserve for the coinbase), highest ancestor fee rate first, parents before children;
    /// and their total fee.
    pub fn select(&self, max_block_size: usize, max_sigops: usize) -> (Vec<Transaction>, Amount) {
        let size_budget = max_block_size.saturating_sub(HEADER_SIZE + 4 + COINBASE_RESERVED_SIZE);
        let sigop_budget = max_sigops.saturating_sub(COINBASE_RESERVED_SIGOPS);
        // Ancestor totals of what is not yet selected, per entry.
        let mut pending: HashMap<Hash256, Totals> =
            self.graph.entries().map(|e| (e.txid, e.ancestors)).collect();
        let key = |txid: Hash256, t: &Totals| -> Key {
            (Reverse(t.rate()), self.graph.get(&txid).expect("pool entry").seq, txid)
        };
        let mut queue: BTreeSet<Key> = pending.iter().map(|(t, a)| key(*t, a)).collect();
        let mut selected: HashSet<Hash256> = HashSet::new();
        let mut chosen: Vec<Hash256> = Vec::new();
        let (mut size, mut sigops, mut fees) = (0usize, 0usize, 0u64);

        while let Some((_, _, txid)) = queue.pop_first() {
            let package = pending[&txid];
            if size + package.size > size_budget || sigops + package.sigops > sigop_budget {
                // Skipped for now; it comes back if selecting its ancestors shrinks it.
                continue;
            }
            let entry = self.graph.get(&txid).expect("pool entry");
            let mut members: Vec<&Entry> = self
                .graph
                .ancestors_of(&entry.parents)
                .into_iter()
                .filter(|a| !selected.contains(a))
                .map(|a| self.graph.get(&a).expect("pool entry"))
                .chain(std::iter::once(entry))
                .collect();
            members.sort_unstable_by_key(|e| e.seq);
            size += package.size;
            sigops += package.sigops;
            fees += package.fees;
            for m in &members {
                selected.insert(m.txid);
                chosen.push(m.txid);
                if m.txid != txid {
                    queue.remove(&key(m.txid, &pending[&m.txid]));
                }
            }
            // Descendants no longer carry the selected ancestors.
            for m in &members {
                for d in self.graph.descendants_of(&m.txid) {
                    if selected.contains(&d) {
                        continue;
                    }
                    let t = pending.get_mut(&d).expect("pool entry");
                    queue.remove(&key(d, t));
                    t.sub(&m.own());
                    // Re-queued, also if skipped earlier: it may fit now.
                    queue.insert(key(d, t));
                }
            }
            if size_budget - size < MIN_TX_SIZE {
                break;
            }
        }
        let txs = chosen.iter().map(|t| self.graph.get(t).expect("pool entry").tx.clone()).collect();
        (txs, Amount::from_sat(fees).unwrap_or(Amount::MAX))
    }
}

/// A [`TemplateSource`] that fills templates from the mempool. Build one per template
/// request on the thread that owns the chain and the pool.
pub struct MempoolTemplates<'a> {
    /// The pool, in step with the chain's tip.
    pub pool: &'a Mempool,
    /// Where the coinbase pays.
    pub lock: Script,
}

impl TemplateSource for MempoolTemplates<'_> {
    fn template(&self, tip: &TipContext) -> BlockTemplate {
        let (params, ctx) = (tip.params, &tip.next);
        let (txs, fees) = self.pool.select(params.max_block_size, params.max_block_sigops);
        let subsidy = block_subsidy(params, ctx.height);
        let value = subsidy.checked_add(fees).unwrap_or(subsidy);
        BlockTemplate::new(
            tip.prev,
            ctx.height,
            BlockTemplate::time_for(tip),
            ctx.expected_bits,
            self.lock.clone(),
            value,
            txs,
        )
    }
}
