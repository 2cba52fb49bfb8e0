//! Headers-first: asking for headers with a locator and validating the answer as a chain
//! before any body is requested.

use super::*;

impl<P: Copy + Ord + Eq + Hash + Debug> SyncMachine<P> {
    pub(super) fn on_headers(
        &mut self,
        peer: P,
        headers: Vec<BlockHeader>,
        locator: &[Hash256],
        chain: &impl ChainView,
    ) {
        let params = chain.params();
        let Some(first) = headers.first() else {
            // The peer has nothing after our locator: believe it has no more work than us.
            let ours = self.best_header(chain).0;
            let now_ms = self.now_ms;
            if let Some(p) = self.peers.get_mut(&peer) {
                p.best_work = p.best_work.min(ours);
                p.wants_headers = false;
                p.headers_idle_until = now_ms + HEADERS_IDLE_MS;
            }
            return;
        };
        if headers.len() > MAX_HEADERS {
            self.penalise(peer, Misbehaviour::TooManyHeaders { got: headers.len(), max: MAX_HEADERS });
            return;
        }
        let start = self
            .pending
            .get(&first.prev)
            .map(|p| p.state.clone())
            .or_else(|| chain.header_state(&first.prev));
        let Some(mut state) = start else {
            if chain.is_known_invalid(&first.prev) {
                // Known invalid may be our own decision (invalidateblock): not held against
                // the peer, but not followed either.
                self.idle(peer);
                return;
            }
            if locator.contains(&first.prev) {
                // It answered our locator; we dropped that pending header meanwhile. Ask again.
                return;
            }
            let why = Misbehaviour::UnconnectedHeaders { hash: first.hash(), prev: first.prev };
            self.penalise(peer, why);
            return;
        };
        let best_before = self.best_header(chain).0;
        let now = self.now_ms / 1000;
        for header in &headers {
            let hash = header.hash();
            if chain.is_known_invalid(&hash) {
                self.idle(peer);
                return;
            }
            state = match state.child(header, params, now) {
                Ok(s) => s,
                // Too new for our clock: our problem as much as theirs; try again later.
                Err(ConsensusError::TimeTooNew { .. }) => break,
                Err(ConsensusError::HeaderDoesNotLink { hash, prev, .. }) => {
                    self.penalise(peer, Misbehaviour::UnconnectedHeaders { hash, prev });
                    return;
                }
                Err(error) => {
                    self.penalise(peer, Misbehaviour::InvalidHeaders { hash, error });
                    return;
                }
            };
            if !chain.has_block(&hash) && !self.pending.contains_key(&hash) {
                if self.pending.len() >= self.max_pending {
                    break;
                }
                self.insert_pending(
                    hash,
                    Pending {
                        header: *header,
                        state: state.clone(),
                        requested: false,
                        block: None,
                        processing: false,
                        from: None,
                    },
                );
            }
        }
        let full = headers.len() == MAX_HEADERS;
        let progressed = self.best_header(chain).0 > best_before;
        let now_ms = self.now_ms;
        if let Some(p) = self.peers.get_mut(&peer) {
            if !progressed {
                // Nothing new (already known, or too far in the future for our clock): do
                // not ask this peer again at once.
                p.headers_idle_until = now_ms + HEADERS_IDLE_MS;
            }
            p.best_work = p.best_work.max(state.chain_work);
            p.wants_headers = false;
            if let Some(s) = &mut p.status {
                s.height = s.height.max(state.height);
            }
            if full && progressed && p.headers_req.is_none() && self.pending.len() < self.max_pending {
                // More to come: continue from the last header.
                let mut locator = vec![state.hash];
                locator.extend(chain.locator());
                locator.truncate(MAX_LOCATOR);
                self.send_headers(peer, locator);
            }
        }
    }

    /// Do not ask this peer for headers for a while.
    pub(super) fn idle(&mut self, peer: P) {
        let until = self.now_ms + HEADERS_IDLE_MS;
        if let Some(p) = self.peers.get_mut(&peer) {
            p.headers_idle_until = until;
            p.wants_headers = false;
        }
    }

    pub(super) fn send_headers(&mut self, peer: P, locator: Vec<Hash256>) {
        let id = self.next_id;
        if let Some(p) = self.peers.get_mut(&peer) {
            p.headers_req = Some(id);
        }
        let sent = locator.clone();
        self.send(peer, Kind::Headers, Request::GetHeaders { locator, max: MAX_HEADERS as u32 }, sent);
    }

    pub(super) fn schedule_headers(&mut self, chain: &impl ChainView) {
        if self.pending.len() >= self.max_pending {
            // No room for another header until bodies connect: asking now would be wasted.
            return;
        }
        let best = self.best_header(chain);
        let busy = self.peers.values().any(|p| p.headers_req.is_some());
        let now = self.now_ms;
        let mut chosen: Vec<P> = Vec::new();
        for (id, p) in &self.peers {
            if p.headers_req.is_some() || p.status.is_none() || p.stalled_until > now {
                continue;
            }
            if !p.wants_headers && p.headers_idle_until > now {
                continue;
            }
            // An orphan's sender is asked at once; otherwise one headers sync at a time,
            // from a peer that claims more work than our best header.
            if p.wants_headers || (!busy && chosen.is_empty() && p.best_work > best.0) {
                chosen.push(*id);
            }
        }
        for peer in chosen {
            let mut locator = Vec::with_capacity(MAX_LOCATOR);
            if best.1 != chain.status().tip {
                locator.push(best.1);
            }
            locator.extend(chain.locator());
            locator.truncate(MAX_LOCATOR);
            self.send_headers(peer, locator);
        }
    }
}
