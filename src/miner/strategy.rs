//! Mining strategies as pure state machines: what to publish and what to mine on, given what
//! happened. No clock, no I/O, no threads: the simulator (`sim/`) and the live miner feed the
//! same events and act on the same decisions.
//!
//! Events in: [`Event::Mined`] ("I found a block") and [`Event::Honest`] ("the network
//! published a block at height h on parent p"). Decisions out: [`Decision::Withhold`] (keep
//! it, mine on X), [`Decision::Publish`] (send these withheld blocks, in order, then mine on X),
//! [`Decision::GiveUp`] (abandon the private branch, mine on the network's tip X).
//!
//! Leads are counted in blocks since the fork point, which equals work while every block on
//! both branches has the same target (regtest; on a retargeting network only approximately).
//! quarry keeps the first-seen branch on equal work, so a withheld branch wins only by being
//! strictly longer; a published tie is a race that the network splits (Eyal-Sirer's gamma).
//!
//! Block ids are generic (`B`): the live miner uses block hashes, the simulator small integers.

/// Something the strategy must react to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<B> {
    /// We found `block`, on the block the last decision said to mine on.
    Mined {
        /// The new block.
        block: B,
    },
    /// The rest of the network published `block` at `height`, a child of `parent`.
    Honest {
        /// The new block.
        block: B,
        /// Its parent.
        parent: B,
        /// Its height.
        height: u32,
    },
}

/// What to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision<B> {
    /// Publish nothing; mine on `mine_on`.
    Withhold {
        /// The block to mine on.
        mine_on: B,
    },
    /// Publish `blocks` (withheld until now, parents first), then mine on `mine_on`.
    Publish {
        /// The blocks to publish, in order.
        blocks: Vec<B>,
        /// The block to mine on.
        mine_on: B,
    },
    /// Abandon the private branch (`abandoned` blocks, published or not, now stale) and mine
    /// on the network's tip `mine_on`.
    GiveUp {
        /// Blocks thrown away.
        abandoned: usize,
        /// The block to mine on.
        mine_on: B,
    },
}

impl<B: Copy> Decision<B> {
    /// The block to mine on next.
    pub fn mine_on(&self) -> B {
        match self {
            Decision::Withhold { mine_on }
            | Decision::Publish { mine_on, .. }
            | Decision::GiveUp { mine_on, .. } => *mine_on,
        }
    }

    /// The blocks to publish now (none unless [`Decision::Publish`]).
    pub fn published(&self) -> &[B] {
        match self {
            Decision::Publish { blocks, .. } => blocks,
            _ => &[],
        }
    }
}

/// A strategy: one decision per event.
pub trait Strategy<B> {
    /// Reacts to `event`.
    fn on_event(&mut self, event: Event<B>) -> Decision<B>;
}

/// A branch mined in private from a fork point, against the public branch from the same point.
#[derive(Clone, Debug)]
struct Race<B> {
    /// The fork point (the last block both branches share) and its height.
    base: B,
    base_height: u32,
    /// Our blocks after the fork point, parents first.
    private: Vec<B>,
    /// How many of `private` are published.
    published: usize,
    /// The public branch's length after the fork point (the network's best we know of), and
    /// its tip.
    public_len: u32,
    public_tip: B,
}

impl<B: Copy + PartialEq> Race<B> {
    fn new(base: B, base_height: u32) -> Race<B> {
        Race { base, base_height, private: Vec::new(), published: 0, public_len: 0, public_tip: base }
    }

    fn head(&self) -> B {
        self.private.last().copied().unwrap_or(self.base)
    }

    /// Private length minus public length.
    fn lead(&self) -> i64 {
        self.private.len() as i64 - self.public_len as i64
    }

    /// Publishes our blocks up to `upto` (a count from the fork point).
    fn publish_upto(&mut self, upto: usize) -> Vec<B> {
        let upto = upto.min(self.private.len());
        let out = self.private.get(self.published..upto).map(<[B]>::to_vec).unwrap_or_default();
        self.published = self.published.max(upto);
        out
    }

    /// The network built on our published block at `index` (0-based after the fork): the
    /// branch up to it is now shared, so the fork point moves there; our later blocks race on.
    fn rebase_on_ours(&mut self, index: usize) {
        let rest = self.private.split_off(index + 1);
        let base = self.private[index];
        *self = Race {
            base,
            base_height: self.base_height + index as u32 + 1,
            published: self.published.saturating_sub(index + 1),
            private: rest,
            public_len: 0,
            public_tip: base,
        };
    }

    /// Records a public block; returns false if it does not lengthen the public branch (a
    /// side branch of the network's, or old news).
    fn public_block(&mut self, block: B, height: u32) -> bool {
        let Some(len) = height.checked_sub(self.base_height) else { return false };
        if len <= self.public_len {
            return false;
        }
        self.public_len = len;
        self.public_tip = block;
        true
    }

    /// Where `parent` sits on our branch (0-based after the fork), if it is one of ours.
    fn ours(&self, parent: B) -> Option<usize> {
        self.private.iter().position(|b| *b == parent)
    }
}

/// Eyal and Sirer's selfish mining ("Majority is not enough", 2014, Algorithm 1): withhold
/// blocks; when the network catches up to within one, publish to race; when it comes within
/// one of a lead of two or more, publish everything and win; when a lead of one is matched,
/// publish to race (a tie), and when behind, give up and mine on the network's tip.
#[derive(Clone, Debug)]
pub struct Selfish<B> {
    race: Race<B>,
}

impl<B: Copy + PartialEq> Selfish<B> {
    /// Starts mining on `tip` at `height` with nothing withheld.
    pub fn new(tip: B, height: u32) -> Selfish<B> {
        Selfish { race: Race::new(tip, height) }
    }

    /// Our blocks not yet published.
    pub fn withheld(&self) -> usize {
        self.race.private.len() - self.race.published
    }

    /// Private branch length minus public branch length since the fork point.
    pub fn lead(&self) -> i64 {
        self.race.lead()
    }
}

impl<B: Copy + PartialEq> Strategy<B> for Selfish<B> {
    fn on_event(&mut self, event: Event<B>) -> Decision<B> {
        let r = &mut self.race;
        match event {
            Event::Mined { block } => {
                let was_tie = r.lead() == 0 && r.public_len > 0;
                r.private.push(block);
                if was_tie {
                    // We had published our one block to race a tie and found the next: we
                    // are strictly ahead, publish and win (Eyal-Sirer: state 0' -> 0).
                    let blocks = r.publish_upto(r.private.len());
                    let height = r.base_height + r.private.len() as u32;
                    *r = Race::new(block, height);
                    return Decision::Publish { blocks, mine_on: block };
                }
                Decision::Withhold { mine_on: block }
            }
            Event::Honest { block, parent, height } => {
                if let Some(i) = r.ours(parent) {
                    // The network mined on our published block (gamma): our branch up to it
                    // is in the best chain; the rest of it races the network's new block.
                    r.rebase_on_ours(i);
                }
                if !r.public_block(block, height) {
                    return Decision::Withhold { mine_on: r.head() };
                }
                match r.lead() {
                    l if l < 0 => {
                        let abandoned = r.private.len();
                        *r = Race::new(block, height);
                        Decision::GiveUp { abandoned, mine_on: block }
                    }
                    0 => {
                        // Matched: publish our branch to race the network's.
                        let blocks = r.publish_upto(r.private.len());
                        Decision::Publish { blocks, mine_on: r.head() }
                    }
                    1 => {
                        // A lead of two cut to one: publish everything, the network adopts it.
                        let blocks = r.publish_upto(r.private.len());
                        let head = r.head();
                        let h = r.base_height + r.private.len() as u32;
                        *r = Race::new(head, h);
                        Decision::Publish { blocks, mine_on: head }
                    }
                    _ => {
                        // Still ahead by two or more: publish as many as the network has.
                        let blocks = r.publish_upto(r.public_len as usize);
                        let mine_on = r.head();
                        if blocks.is_empty() {
                            Decision::Withhold { mine_on }
                        } else {
                            Decision::Publish { blocks, mine_on }
                        }
                    }
                }
            }
        }
    }
}

/// How a double-spend attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttackOutcome {
    /// Still racing.
    Racing,
    /// The private branch was published strictly longer than the public one after the merchant
    /// saw its confirmations: the payment is reversed.
    Succeeded,
    /// Fell more than the allowed deficit behind and gave up.
    Failed,
}

/// A double-spend attacker (Nakamoto's whitepaper §11, Rosenfeld 2014): when it pays the
/// merchant, it starts mining a private branch from the block before the payment's, holding
/// a conflicting transaction. The merchant hands over the goods once the public branch holds
/// `confirmations` blocks after the fork point (the payment's block counts as the first).
/// From then on, the attacker publishes its branch as soon as it is strictly longer (a tie
/// loses to the first-seen branch); it gives up when `max_deficit` or more blocks behind.
#[derive(Clone, Debug)]
pub struct DoubleSpend<B> {
    race: Race<B>,
    confirmations: u32,
    max_deficit: u32,
    outcome: AttackOutcome,
}

impl<B: Copy + PartialEq> DoubleSpend<B> {
    /// Starts the attack: the payment goes into the network's next block on `tip` (at
    /// `height`), the attacker mines on `tip` too.
    pub fn new(tip: B, height: u32, confirmations: u32, max_deficit: u32) -> DoubleSpend<B> {
        DoubleSpend {
            race: Race::new(tip, height),
            confirmations,
            max_deficit,
            outcome: AttackOutcome::Racing,
        }
    }

    /// How the attempt stands.
    pub fn outcome(&self) -> AttackOutcome {
        self.outcome
    }

    /// Blocks on the private and public branches since the fork point.
    pub fn lengths(&self) -> (u32, u32) {
        (self.race.private.len() as u32, self.race.public_len)
    }

    fn decide(&mut self) -> Decision<B> {
        let r = &mut self.race;
        if self.outcome != AttackOutcome::Racing {
            return Decision::Withhold { mine_on: r.head() };
        }
        if r.public_len >= self.confirmations && r.lead() > 0 {
            self.outcome = AttackOutcome::Succeeded;
            let blocks = r.publish_upto(r.private.len());
            return Decision::Publish { blocks, mine_on: r.head() };
        }
        if -r.lead() >= self.max_deficit as i64 {
            self.outcome = AttackOutcome::Failed;
            return Decision::GiveUp { abandoned: r.private.len(), mine_on: r.public_tip };
        }
        Decision::Withhold { mine_on: r.head() }
    }
}

impl<B: Copy + PartialEq> Strategy<B> for DoubleSpend<B> {
    fn on_event(&mut self, event: Event<B>) -> Decision<B> {
        match event {
            Event::Mined { block } => {
                if self.outcome == AttackOutcome::Racing {
                    self.race.private.push(block);
                }
            }
            Event::Honest { block, height, .. } => {
                self.race.public_block(block, height);
            }
        }
        self.decide()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids: ours from 100, the network's from 200.
    fn honest(s: &mut impl Strategy<u32>, block: u32, parent: u32, height: u32) -> Decision<u32> {
        s.on_event(Event::Honest { block, parent, height })
    }

    #[test]
    fn selfish_withholds_then_releases_everything_when_a_lead_of_two_is_cut_to_one() {
        let mut s = Selfish::new(0u32, 10);
        assert_eq!(s.on_event(Event::Mined { block: 101 }), Decision::Withhold { mine_on: 101 });
        assert_eq!(s.on_event(Event::Mined { block: 102 }), Decision::Withhold { mine_on: 102 });
        assert_eq!(s.lead(), 2);
        assert_eq!(honest(&mut s, 201, 0, 11), Decision::Publish { blocks: vec![101, 102], mine_on: 102 });
        assert_eq!((s.lead(), s.withheld()), (0, 0), "the race restarts from our head");
    }

    #[test]
    fn selfish_with_a_long_lead_publishes_one_block_per_network_block() {
        let mut s = Selfish::new(0u32, 0);
        for b in 101..=104 {
            s.on_event(Event::Mined { block: b });
        }
        assert_eq!(honest(&mut s, 201, 0, 1), Decision::Publish { blocks: vec![101], mine_on: 104 });
        assert_eq!(honest(&mut s, 202, 201, 2), Decision::Publish { blocks: vec![102], mine_on: 104 });
        // Lead 4 - 3 = 1: release the rest.
        assert_eq!(honest(&mut s, 203, 202, 3), Decision::Publish { blocks: vec![103, 104], mine_on: 104 });
        // A side block of the network's at a height already seen changes nothing.
        let mut s = Selfish::new(0u32, 0);
        s.on_event(Event::Mined { block: 101 });
        s.on_event(Event::Mined { block: 102 });
        s.on_event(Event::Mined { block: 103 });
        honest(&mut s, 201, 0, 1);
        assert_eq!(honest(&mut s, 299, 0, 1), Decision::Withhold { mine_on: 103 });
    }

    #[test]
    fn selfish_races_a_tie_and_wins_or_loses_it() {
        // Lead 1 matched: publish to race.
        let mut s = Selfish::new(0u32, 0);
        s.on_event(Event::Mined { block: 101 });
        assert_eq!(honest(&mut s, 201, 0, 1), Decision::Publish { blocks: vec![101], mine_on: 101 });
        // We find the next block: publish it, strictly ahead.
        assert_eq!(
            s.on_event(Event::Mined { block: 102 }),
            Decision::Publish { blocks: vec![102], mine_on: 102 }
        );
        assert_eq!(s.lead(), 0);

        // The network extends its own branch: we lost the tie.
        let mut s = Selfish::new(0u32, 0);
        s.on_event(Event::Mined { block: 101 });
        honest(&mut s, 201, 0, 1);
        assert_eq!(honest(&mut s, 202, 201, 2), Decision::GiveUp { abandoned: 1, mine_on: 202 });

        // The network extends our branch (gamma): our block stays, mine on theirs.
        let mut s = Selfish::new(0u32, 0);
        s.on_event(Event::Mined { block: 101 });
        honest(&mut s, 201, 0, 1);
        assert_eq!(honest(&mut s, 202, 101, 2), Decision::GiveUp { abandoned: 0, mine_on: 202 });
        assert_eq!((s.lead(), s.withheld()), (0, 0));
    }

    #[test]
    fn selfish_keeps_a_long_lead_when_the_network_builds_on_a_published_block() {
        let mut s = Selfish::new(0u32, 0);
        for b in 101..=104 {
            s.on_event(Event::Mined { block: b });
        }
        assert_eq!(honest(&mut s, 201, 0, 1), Decision::Publish { blocks: vec![101], mine_on: 104 });
        // The network mines on our 101: 102..104 (one more than the network's 202) race on,
        // lead 3 - 1 = 2: publish one more, keep the rest.
        assert_eq!(honest(&mut s, 202, 101, 2), Decision::Publish { blocks: vec![102], mine_on: 104 });
        assert_eq!((s.lead(), s.withheld()), (2, 2));
    }

    #[test]
    fn selfish_with_nothing_withheld_follows_the_network() {
        let mut s = Selfish::new(0u32, 0);
        assert_eq!(honest(&mut s, 201, 0, 1), Decision::GiveUp { abandoned: 0, mine_on: 201 });
        assert_eq!(honest(&mut s, 202, 201, 2), Decision::GiveUp { abandoned: 0, mine_on: 202 });
    }

    #[test]
    fn double_spend_publishes_only_when_strictly_ahead_after_the_confirmations() {
        let mut d = DoubleSpend::new(0u32, 0, 2, 5);
        // Ahead before the merchant has two confirmations: keep withholding.
        assert_eq!(d.on_event(Event::Mined { block: 101 }), Decision::Withhold { mine_on: 101 });
        assert_eq!(d.on_event(Event::Mined { block: 102 }), Decision::Withhold { mine_on: 102 });
        assert_eq!(honest(&mut d, 201, 0, 1), Decision::Withhold { mine_on: 102 });
        // Two confirmations, and 2 vs 2 is a tie: a tie loses to the first-seen branch.
        assert_eq!(honest(&mut d, 202, 201, 2), Decision::Withhold { mine_on: 102 });
        assert_eq!(d.outcome(), AttackOutcome::Racing);
        assert_eq!(
            d.on_event(Event::Mined { block: 103 }),
            Decision::Publish { blocks: vec![101, 102, 103], mine_on: 103 }
        );
        assert_eq!(d.outcome(), AttackOutcome::Succeeded);
    }

    #[test]
    fn double_spend_gives_up_at_the_deficit() {
        let mut d = DoubleSpend::new(0u32, 0, 1, 2);
        d.on_event(Event::Mined { block: 101 });
        honest(&mut d, 201, 0, 1);
        honest(&mut d, 202, 201, 2);
        assert_eq!(honest(&mut d, 203, 202, 3), Decision::GiveUp { abandoned: 1, mine_on: 203 });
        assert_eq!(d.outcome(), AttackOutcome::Failed);
        assert_eq!(d.lengths(), (1, 3));
    }
}
