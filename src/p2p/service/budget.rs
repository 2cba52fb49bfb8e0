//! The service's bounds on work waiting for the core: bytes of gossiped transactions and of
//! gossiped blocks awaiting a verdict (separately, so a transaction flood cannot starve
//! blocks), and peers' sync requests being answered. Past a bound, gossip is ignored (our
//! limit, not the sender's fault) and a request is answered `Busy`.

/// Bytes of gossiped transactions queued for the core at most; beyond, new ones are ignored
/// (busy: our limit, not the sender's fault).
pub(super) const MAX_VALIDATING_TX_BYTES: usize = 32 << 20;
/// Bytes of gossiped blocks queued for the core at most.
pub(super) const MAX_VALIDATING_BLOCK_BYTES: usize = 64 << 20;
/// Inbound sync requests being answered by the core at most (each answer may hold up to
/// `wire::MAX_RESPONSE_BYTES`); beyond, peers are told Busy.
pub(super) const MAX_SERVING: usize = 16;

/// What a gossip message is, for its budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Gossip {
    Tx,
    Block,
}

/// Work held against the bounds.
#[derive(Debug, Default)]
pub(super) struct Budget {
    tx_bytes: usize,
    block_bytes: usize,
    serving: usize,
}

impl Budget {
    /// Takes `cost` bytes for a gossip message awaiting its verdict, or `false` (nothing
    /// taken) when that would pass its kind's bound.
    pub(super) fn take_gossip(&mut self, kind: Gossip, cost: usize) -> bool {
        let (used, limit) = match kind {
            Gossip::Tx => (&mut self.tx_bytes, MAX_VALIDATING_TX_BYTES),
            Gossip::Block => (&mut self.block_bytes, MAX_VALIDATING_BLOCK_BYTES),
        };
        if used.saturating_add(cost) > limit {
            return false;
        }
        *used += cost;
        true
    }

    /// Gives back what [`Budget::take_gossip`] took, once the message has its verdict.
    pub(super) fn release_gossip(&mut self, kind: Gossip, cost: usize) {
        let used = match kind {
            Gossip::Tx => &mut self.tx_bytes,
            Gossip::Block => &mut self.block_bytes,
        };
        debug_assert!(*used >= cost, "released {cost} of {used} gossip bytes");
        *used = used.saturating_sub(cost);
    }

    /// Takes a serving slot for a peer's request, or `false` at [`MAX_SERVING`].
    pub(super) fn take_serving(&mut self) -> bool {
        if self.serving >= MAX_SERVING {
            return false;
        }
        self.serving += 1;
        true
    }

    /// Gives back a serving slot (the request was answered, or never reached the core).
    pub(super) fn release_serving(&mut self) {
        debug_assert!(self.serving > 0, "released a serving slot none held");
        self.serving = self.serving.saturating_sub(1);
    }

    /// Bytes held by gossiped transactions and blocks, and requests being served.
    #[cfg(test)]
    fn held(&self) -> (usize, usize, usize) {
        (self.tx_bytes, self.block_bytes, self.serving)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ARCHITECTURE's memory bound "gossip awaiting a verdict": 32 MiB of transactions and
    /// 64 MiB of blocks, each on its own, given back by the verdict.
    #[test]
    fn gossip_bytes_stop_at_each_kinds_bound_and_come_back_with_the_verdict() {
        let mut b = Budget::default();
        let tx = 100_000;
        let fit = MAX_VALIDATING_TX_BYTES / tx;
        for _ in 0..fit {
            assert!(b.take_gossip(Gossip::Tx, tx));
        }
        assert!(!b.take_gossip(Gossip::Tx, tx), "past 32 MiB of transactions");
        assert!(b.take_gossip(Gossip::Tx, MAX_VALIDATING_TX_BYTES - fit * tx), "up to the byte");
        assert!(!b.take_gossip(Gossip::Tx, 1));
        assert_eq!(b.held().0, MAX_VALIDATING_TX_BYTES);
        // A full transaction budget leaves blocks their own room.
        let block = 4 << 20;
        for _ in 0..MAX_VALIDATING_BLOCK_BYTES / block {
            assert!(b.take_gossip(Gossip::Block, block));
        }
        assert!(!b.take_gossip(Gossip::Block, block), "past 64 MiB of blocks");
        assert_eq!(b.held().1, MAX_VALIDATING_BLOCK_BYTES);
        // A verdict frees its message's bytes for the next one of its kind only.
        b.release_gossip(Gossip::Block, block);
        assert!(!b.take_gossip(Gossip::Tx, tx));
        assert!(b.take_gossip(Gossip::Block, block));
        b.release_gossip(Gossip::Tx, tx);
        assert!(b.take_gossip(Gossip::Tx, tx));
        // A cost that would overflow is refused, not wrapped.
        assert!(!b.take_gossip(Gossip::Tx, usize::MAX));
    }

    /// ARCHITECTURE's memory bound "peer requests being served": 16, then `Busy`.
    #[test]
    fn serving_stops_at_sixteen_and_an_answer_frees_a_slot() {
        let mut b = Budget::default();
        for _ in 0..MAX_SERVING {
            assert!(b.take_serving());
        }
        assert!(!b.take_serving(), "the 17th request is told Busy");
        assert_eq!(b.held().2, MAX_SERVING);
        b.release_serving();
        assert!(b.take_serving());
        assert!(!b.take_serving());
    }
}
