//! Blocks that arrived before their parent, bounded in count and bytes.

use crate::consensus::CheckedBlock;
use crate::primitives::Hash256;
use std::collections::{HashMap, VecDeque};

/// Most orphan blocks kept.
pub const MAX_ORPHANS: usize = 128;
/// Most bytes of orphan blocks kept.
pub const MAX_ORPHAN_BYTES: usize = 32 << 20;

/// Orphans by hash, indexed by parent; the oldest are evicted first.
pub struct OrphanPool {
    blocks: HashMap<Hash256, (CheckedBlock, u64, usize)>,
    by_parent: HashMap<Hash256, Vec<Hash256>>,
    order: VecDeque<Hash256>,
    bytes: usize,
}

impl OrphanPool {
    /// An empty pool.
    pub fn new() -> Self {
        OrphanPool { blocks: HashMap::new(), by_parent: HashMap::new(), order: VecDeque::new(), bytes: 0 }
    }

    /// Number of orphans held.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Adds an orphan received as number `seq` (ignored if already held), evicting the oldest
    /// past the bounds.
    pub fn insert(&mut self, block: CheckedBlock, seq: u64) {
        let hash = block.hash();
        if self.blocks.contains_key(&hash) {
            return;
        }
        let size = block.block().encoded_size();
        self.by_parent.entry(block.header().prev).or_default().push(hash);
        self.blocks.insert(hash, (block, seq, size));
        self.order.push_back(hash);
        self.bytes += size;
        while self.blocks.len() > MAX_ORPHANS || self.bytes > MAX_ORPHAN_BYTES {
            let Some(old) = self.order.pop_front() else { break };
            self.remove(&old);
        }
    }

    fn remove(&mut self, hash: &Hash256) -> Option<(CheckedBlock, u64)> {
        let (block, seq, size) = self.blocks.remove(hash)?;
        self.bytes -= size;
        if let Some(children) = self.by_parent.get_mut(&block.header().prev) {
            children.retain(|h| h != hash);
            if children.is_empty() {
                self.by_parent.remove(&block.header().prev);
            }
        }
        Some((block, seq))
    }

    /// The first ancestor of `parent` that is not itself waiting here: the block to ask a
    /// peer for.
    pub fn missing_root(&self, parent: &Hash256) -> Hash256 {
        let mut cur = *parent;
        let mut steps = 0;
        while let Some((b, _, _)) = self.blocks.get(&cur) {
            cur = b.header().prev;
            steps += 1;
            if steps > MAX_ORPHANS {
                break;
            }
        }
        cur
    }

    /// Removes and returns the orphans whose parent is `parent`, with their receipt order.
    pub fn take_children(&mut self, parent: &Hash256) -> Vec<(CheckedBlock, u64)> {
        let hashes = self.by_parent.remove(parent).unwrap_or_default();
        self.order.retain(|h| !hashes.contains(h));
        hashes.iter().filter_map(|h| self.remove(h)).collect()
    }
}

impl Default for OrphanPool {
    fn default() -> Self {
        Self::new()
    }
}
