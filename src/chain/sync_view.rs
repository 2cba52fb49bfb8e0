//! What peer sync needs from the chain: header states to validate headers against, block
//! locators, and the headers and blocks it serves to peers.

use super::Chain;
use crate::consensus::HeaderState;
use crate::primitives::{BlockHeader, Hash256};
use crate::store::BlockStatus;

impl Chain {
    /// The header-validation state of an indexed, valid block (None if unknown or invalid).
    pub fn header_state(&self, hash: &Hash256) -> Option<HeaderState> {
        let entry = self.index.get(hash)?;
        if entry.rec.status != BlockStatus::Valid {
            return None;
        }
        let mut recent_times = Vec::with_capacity(self.params.median_time_span);
        let mut cur = *hash;
        while recent_times.len() < self.params.median_time_span {
            let rec = &self.index.get(&cur)?.rec;
            recent_times.push(rec.header.time);
            if rec.height == 0 {
                break;
            }
            cur = rec.header.prev;
        }
        recent_times.reverse();
        Some(HeaderState {
            hash: *hash,
            height: entry.rec.height,
            time: entry.rec.header.time,
            chain_work: entry.rec.chain_work,
            anchor_time: entry.anchor_time,
            recent_times,
        })
    }

    /// True if the block is indexed and valid (its body is stored).
    pub fn has_block(&self, hash: &Hash256) -> bool {
        self.index.get(hash).is_some_and(|e| e.rec.status == BlockStatus::Valid)
    }

    /// True if the block is known to be invalid (indexed as failed, or rejected).
    pub fn is_known_invalid(&self, hash: &Hash256) -> bool {
        self.rejected.contains(hash) || self.index.get(hash).is_some_and(|e| e.rec.status.is_failed())
    }

    /// A block locator for the active chain: the tip, then back with steps 1, 1, ... (ten of
    /// them), then doubling, ending with genesis (Bitcoin's `GetLocator`).
    pub fn locator(&self) -> Vec<Hash256> {
        let mut out = Vec::with_capacity(32);
        let mut height = self.active.len() as i64 - 1;
        let mut step = 1i64;
        while height > 0 {
            out.push(self.active[height as usize]);
            if out.len() >= 10 {
                step *= 2;
            }
            height -= step;
        }
        out.push(self.active[0]);
        out
    }

    /// Headers of the active chain after the first locator hash found on it (genesis when
    /// none is), at most `max`, stopping after `stop` if it is met.
    pub fn headers_after(&self, locator: &[Hash256], stop: Option<Hash256>, max: usize) -> Vec<BlockHeader> {
        let start = locator
            .iter()
            .find_map(|h| {
                let e = self.index.get(h)?;
                (self.active.get(e.rec.height as usize) == Some(h)).then_some(e.rec.height)
            })
            .unwrap_or(0);
        let mut out = Vec::new();
        for hash in self.active.iter().skip(start as usize + 1).take(max) {
            let Some(e) = self.index.get(hash) else { break };
            out.push(e.rec.header);
            if Some(*hash) == stop {
                break;
            }
        }
        out
    }
}
