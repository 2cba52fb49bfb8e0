//! Block download: answers to `GetBlocks`, the chain's verdicts, handing blocks over
//! parent-first, and scheduling body requests within the window.

use super::*;

impl<P: Copy + Ord + Eq + Hash + Debug> SyncMachine<P> {
    pub(super) fn on_blocks(&mut self, peer: P, asked: Vec<Hash256>, blocks: Vec<Block>) {
        let asked_set: HashSet<Hash256> = asked.iter().copied().collect();
        let mut got = HashSet::new();
        for block in blocks {
            let hash = block.hash();
            if !asked_set.contains(&hash) || !got.insert(hash) {
                self.penalise(peer, Misbehaviour::BlockNotAsked { hash });
                continue;
            }
            if let Some(p) = self.pending.get_mut(&hash) {
                if p.block.is_none() && !p.processing {
                    self.arrived.insert((p.state.height, hash));
                    p.block = Some((block, peer));
                }
            }
        }
        // Answers keep request order and may stop early to stay under the size limit: only
        // blocks skipped before the last one returned are blocks the peer lacks; the
        // unanswered tail is simply asked for again.
        let last = asked.iter().rposition(|h| got.contains(h));
        let mut lacking = Vec::new();
        let mut retry = Vec::new();
        for (i, h) in asked.iter().enumerate() {
            if got.contains(h) {
                continue;
            }
            match last {
                Some(l) if i > l => retry.push(*h),
                _ => lacking.push(*h),
            }
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            p.lacks.extend(lacking.iter().copied());
        }
        self.unrequest(&lacking);
        self.unrequest(&retry);
        if !lacking.is_empty() {
            self.prune_unobtainable();
        }
    }

    /// Drops pending headers (and their descendants) whose block no connected peer can
    /// supply, so they cannot pin the download window; a peer that has them will announce
    /// them again (status, gossip) and they are fetched then.
    pub(super) fn prune_unobtainable(&mut self) {
        let dead: Vec<Hash256> = self
            .pending
            .iter()
            .filter(|(h, p)| {
                p.block.is_none()
                    && !p.processing
                    && !p.requested
                    && !self.peers.values().any(|peer| {
                        peer.status.is_some()
                            && peer.best_work >= p.state.chain_work
                            && !peer.lacks.contains(h)
                    })
            })
            .map(|(h, _)| *h)
            .collect();
        for h in dead {
            if self.remove_pending(&h).is_some() {
                self.drop_descendants(h);
            }
        }
    }

    /// The chain's verdict on a block from [`Action::Process`]: `Ok` if stored (or already
    /// had), else whose fault the refusal is (a peer's misbehaviour costs whoever sent the
    /// block, or announced it).
    pub fn on_processed(&mut self, hash: Hash256, result: Result<(), Blame>, chain: &impl ChainView) {
        let Some(p) = self.remove_pending(&hash) else { return };
        if let Err(blame) = result {
            if let (Blame::Peer(why), Some(from)) = (blame, p.from.or(p.block.as_ref().map(|b| b.1))) {
                self.penalise(from, why);
            }
            self.drop_descendants(hash);
        }
        if !self.batching {
            self.schedule(chain);
        }
    }

    /// Starts a batch of [`SyncMachine::on_processed`] reports (scheduling waits for
    /// [`SyncMachine::end_batch`]: one pass per batch instead of one per block).
    pub fn begin_batch(&mut self) {
        self.batching = true;
    }

    /// Ends a batch and schedules what comes next.
    pub fn end_batch(&mut self, chain: &impl ChainView) {
        self.batching = false;
        self.schedule(chain);
    }

    /// Drops pending headers descending from `bad`.
    pub(super) fn drop_descendants(&mut self, bad: Hash256) {
        let mut dead: HashSet<Hash256> = HashSet::from([bad]);
        let order: Vec<(u32, Hash256)> = self.by_height.iter().copied().collect();
        for (height, hash) in order {
            let prev = self.pending.get(&hash).map(|p| p.header.prev);
            if prev.is_some_and(|prev| dead.contains(&prev)) {
                dead.insert(hash);
                let _ = height;
                self.remove_pending(&hash);
            }
        }
    }

    pub(super) fn emit_ready(&mut self, chain: &impl ChainView) {
        // Only blocks that arrived can be handed over, parents first (height order): a
        // block whose parent is stored, being processed, or handed over in this pass.
        let order: Vec<(u32, Hash256)> = self.arrived.iter().copied().collect();
        let mut emitted: HashSet<Hash256> = HashSet::new();
        for key in order {
            let hash = key.1;
            let Some(prev) = self.pending.get(&hash).map(|p| p.header.prev) else { continue };
            let ready = emitted.contains(&prev)
                || self.pending.get(&prev).is_some_and(|pp| pp.processing)
                || chain.has_block(&prev);
            if !ready {
                continue;
            }
            let Some(p) = self.pending.get_mut(&hash) else { continue };
            let Some((block, peer)) = p.block.take() else { continue };
            p.processing = true;
            p.from = Some(peer);
            self.arrived.remove(&key);
            emitted.insert(hash);
            self.outbox.push(Action::Process { peer, block });
        }
    }

    pub(super) fn schedule_blocks(&mut self) {
        let now = self.now_ms;
        // Nothing to do unless some peer can take another request (the common case while
        // a batch of blocks connects: every request slot is still out).
        if !self
            .peers
            .values()
            .any(|p| p.status.is_some() && p.stalled_until <= now && p.block_reqs < REQUESTS_PER_PEER)
        {
            return;
        }
        let Some(&(base, _)) = self
            .by_height
            .iter()
            .find(|(_, h)| self.pending.get(h).is_some_and(|p| p.block.is_none() && !p.processing))
        else {
            return;
        };
        let wanted: Vec<(Hash256, U256)> = self
            .by_height
            .iter()
            .take_while(|(height, _)| *height < base.saturating_add(WINDOW))
            .filter_map(|(_, h)| {
                let p = self.pending.get(h)?;
                (!p.requested && p.block.is_none() && !p.processing).then_some((*h, p.state.chain_work))
            })
            .collect();
        if wanted.is_empty() {
            return;
        }
        let mut batches: BTreeMap<P, Vec<Hash256>> = BTreeMap::new();
        for (hash, work) in wanted {
            // The eligible peer with the fewest requests (counting this round's batches).
            let load = |id: &P, p: &PeerState| {
                p.block_reqs * BLOCKS_PER_REQUEST + batches.get(id).map_or(0, Vec::len)
            };
            let pick = self
                .peers
                .iter()
                .filter(|(id, p)| {
                    p.status.is_some()
                        && p.stalled_until <= now
                        && p.best_work >= work
                        && !p.lacks.contains(&hash)
                        && p.block_reqs + batches.get(*id).map_or(0, |b| b.len().div_ceil(BLOCKS_PER_REQUEST))
                            <= REQUESTS_PER_PEER
                        && load(id, p) < REQUESTS_PER_PEER * BLOCKS_PER_REQUEST
                })
                .min_by_key(|(id, p)| load(id, p))
                .map(|(id, _)| *id);
            let Some(peer) = pick else { continue };
            batches.entry(peer).or_default().push(hash);
        }
        for (peer, hashes) in batches {
            for chunk in hashes.chunks(BLOCKS_PER_REQUEST) {
                for h in chunk {
                    if let Some(p) = self.pending.get_mut(h) {
                        p.requested = true;
                    }
                }
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.block_reqs += 1;
                }
                self.send(peer, Kind::Blocks, Request::GetBlocks(chunk.to_vec()), chunk.to_vec());
            }
        }
    }
}
