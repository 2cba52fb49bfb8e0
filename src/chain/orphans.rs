//! Blocks that arrived before their parent, bounded in count and bytes.

use crate::consensus::CheckedBlock;
use crate::primitives::Hash256;
use std::collections::{HashMap, VecDeque};

/// Most orphan blocks kept.
pub const MAX_ORPHANS: usize = 128;
/// Most bytes of orphan blocks kept.
pub const MAX_ORPHAN_BYTES: usize = 32 << 20;
/// Most orphans kept from one source (one peer): past it, that source's own oldest go, so
/// one peer cannot push out the orphans others sent.
pub const MAX_ORPHANS_PER_SOURCE: usize = 8;
/// Most bytes of orphans kept from one source.
pub const MAX_ORPHAN_BYTES_PER_SOURCE: usize = 8 << 20;

/// Who sent a block: an opaque key the caller derives (a peer id's hash); 0 for the node
/// itself (RPC, local miner), which only the pool's overall bounds apply to.
pub type Source = u64;

struct Entry {
    block: CheckedBlock,
    seq: u64,
    size: usize,
    source: Source,
}

/// Orphans by hash, indexed by parent; the oldest are evicted first.
pub struct OrphanPool {
    blocks: HashMap<Hash256, Entry>,
    by_parent: HashMap<Hash256, Vec<Hash256>>,
    order: VecDeque<Hash256>,
    bytes: usize,
    /// Count and bytes held per source.
    per_source: HashMap<Source, (usize, usize)>,
}

impl OrphanPool {
    /// An empty pool.
    pub fn new() -> Self {
        OrphanPool {
            blocks: HashMap::new(),
            by_parent: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            per_source: HashMap::new(),
        }
    }

    /// Bytes of orphans held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Count and bytes held from `source`.
    pub fn held_from(&self, source: Source) -> (usize, usize) {
        self.per_source.get(&source).copied().unwrap_or((0, 0))
    }

    /// Number of orphans held.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Adds an orphan received as number `seq` from `source` (ignored if already held),
    /// evicting that source's oldest past its own bounds, then the oldest of all past the
    /// pool's.
    pub fn insert(&mut self, block: CheckedBlock, seq: u64, source: Source) {
        let hash = block.hash();
        if self.blocks.contains_key(&hash) {
            return;
        }
        let size = block.block().encoded_size();
        self.by_parent.entry(block.header().prev).or_default().push(hash);
        self.blocks.insert(hash, Entry { block, seq, size, source });
        self.order.push_back(hash);
        self.bytes += size;
        let held = self.per_source.entry(source).or_default();
        held.0 += 1;
        held.1 += size;
        while source != 0 && {
            let (n, b) = self.held_from(source);
            n > MAX_ORPHANS_PER_SOURCE || (b > MAX_ORPHAN_BYTES_PER_SOURCE && n > 1)
        } {
            let Some(pos) = self.order.iter().position(|h| self.blocks[h].source == source) else { break };
            let old = self.order.remove(pos).expect("position is in range");
            self.remove(&old);
        }
        while self.blocks.len() > MAX_ORPHANS || self.bytes > MAX_ORPHAN_BYTES {
            let Some(old) = self.order.pop_front() else { break };
            self.remove(&old);
        }
    }

    fn remove(&mut self, hash: &Hash256) -> Option<(CheckedBlock, u64)> {
        let Entry { block, seq, size, source } = self.blocks.remove(hash)?;
        self.bytes -= size;
        if let Some(held) = self.per_source.get_mut(&source) {
            held.0 -= 1;
            held.1 -= size;
            if held.0 == 0 {
                self.per_source.remove(&source);
            }
        }
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
        while let Some(e) = self.blocks.get(&cur) {
            cur = e.block.header().prev;
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
