//! Adversarial mining on the live node: the selfish miner (`quarry node --mine --strategy
//! selfish`) and the double-spend attacker (`startdoublespend`), driven by the pure state
//! machines of [`crate::miner::strategy`] — the same ones the simulator runs. This file only
//! feeds them events and carries out their decisions.
//!
//! Withheld blocks are held here, outside the chain, until the strategy publishes them: the
//! chain, the block index and the store never see them, so nothing that answers peers (status,
//! headers, blocks, compact-block fallbacks, gossip) or RPC can show them. Mining on a withheld
//! block takes its context (height, bits, median time past) from the header state of the
//! branch: the chain's state at the last stored block, advanced over the withheld headers
//! (which checks them again). Publishing a block is what an honest miner does with every block:
//! `process_block` (the chain stores and maybe reorganises to it), then announce it. A restart
//! forgets the withheld blocks (they are lost, as if abandoned).

use super::api::{AttackView, DoubleSpendStart, NodeError, StrategyInfo};
use super::core::Core;
use crate::chain::ChainEvent;
use crate::clock::unix_secs;
use crate::consensus::TipContext;
use crate::mempool::MempoolTemplates;
use crate::miner::strategy::{AttackOutcome, Decision, DoubleSpend, Event, Selfish, Strategy};
use crate::miner::{BlockTemplate, MiningStrategy, TemplateSource};
use crate::primitives::{Block, Hash256, Script, Transaction};
use std::collections::{HashMap, HashSet, VecDeque};
use tracing::{info, warn};

/// Most withheld blocks at once. A selfish miner at the limit publishes everything (and
/// starts over from its head); a double-spend attacker stops mining until the network moves.
pub const MAX_WITHHELD: usize = 1_000;
/// Hashes of our own blocks remembered, to tell them from the network's.
const OURS_KEPT: usize = 4_096;

/// Counters over the node's life.
#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    mined: u64,
    published: u64,
    abandoned: u64,
    longest_withheld: u64,
}

/// A double-spend attempt.
struct Attack {
    machine: DoubleSpend<Hash256>,
    payment: Hash256,
    conflict: Transaction,
    fork: Hash256,
    fork_height: u32,
    confirmations: u32,
    max_deficit: u32,
    /// Times the fork point moved because the network's next block lacked the payment.
    restarts: u32,
}

impl Attack {
    fn view(&self) -> AttackView {
        let (private_len, public_len) = self.machine.lengths();
        AttackView {
            outcome: match self.machine.outcome() {
                AttackOutcome::Racing => "racing",
                AttackOutcome::Succeeded => "succeeded",
                AttackOutcome::Failed => "failed",
            },
            payment: self.payment,
            conflict: self.conflict.txid(),
            fork: self.fork,
            fork_height: self.fork_height,
            private_len,
            public_len,
            confirmations: self.confirmations,
            max_deficit: self.max_deficit,
            restarts: self.restarts,
        }
    }
}

enum Plan {
    Selfish(Selfish<Hash256>),
    DoubleSpend(Box<Attack>),
}

/// A strategy at work: its machine, the blocks it withholds, and where it mines.
struct Active {
    plan: Plan,
    withheld: HashMap<Hash256, Block>,
    mine_on: Hash256,
}

impl Active {
    fn selfish(tip: Hash256, height: u32) -> Active {
        Active { plan: Plan::Selfish(Selfish::new(tip, height)), withheld: HashMap::new(), mine_on: tip }
    }

    fn decide(&mut self, event: Event<Hash256>) -> Decision<Hash256> {
        match &mut self.plan {
            Plan::Selfish(s) => s.on_event(event),
            Plan::DoubleSpend(a) => a.machine.on_event(event),
        }
    }

    fn lead(&self) -> i64 {
        match &self.plan {
            Plan::Selfish(s) => s.lead(),
            Plan::DoubleSpend(a) => {
                let (p, q) = a.machine.lengths();
                p as i64 - q as i64
            }
        }
    }
}

/// The core's adversarial-mining state (honest: nothing active).
pub(super) struct Adversary {
    strategy: MiningStrategy,
    hashrate: Option<f64>,
    active: Option<Active>,
    /// Our own blocks, published or not (bounded), oldest first.
    ours: VecDeque<Hash256>,
    ours_set: HashSet<Hash256>,
    stats: Stats,
    /// The last double-spend attempt that ended.
    last_attack: Option<AttackView>,
}

impl Adversary {
    /// The state for `strategy`; a selfish miner starts on `tip`.
    pub(super) fn new(
        strategy: MiningStrategy,
        hashrate: Option<f64>,
        tip: Hash256,
        height: u32,
    ) -> Adversary {
        let active = (strategy == MiningStrategy::Selfish).then(|| Active::selfish(tip, height));
        Adversary {
            strategy,
            hashrate,
            active,
            ours: VecDeque::new(),
            ours_set: HashSet::new(),
            stats: Stats::default(),
            last_attack: None,
        }
    }

    /// True while a strategy decides what the miner does.
    pub(super) fn is_active(&self) -> bool {
        self.active.is_some()
    }

    fn remember_ours(&mut self, hash: Hash256) {
        if self.ours_set.insert(hash) {
            self.ours.push_back(hash);
            if self.ours.len() > OURS_KEPT {
                if let Some(old) = self.ours.pop_front() {
                    self.ours_set.remove(&old);
                }
            }
        }
    }
}

impl Core {
    /// A block the continuous miner found while a strategy is active: handed to the strategy
    /// (withheld or published as it decides).
    pub(super) fn adversary_mined(&mut self, block: Block) {
        let Some(mut active) = self.adv.active.take() else { return };
        let hash = block.hash();
        if block.header.prev != active.mine_on {
            // A solution of a template we had already replaced.
            warn!(target: "miner", %hash, "dropped a block mined on a block the strategy left");
            self.adv.active = Some(active);
            return;
        }
        self.adv.remember_ours(hash);
        self.adv.stats.mined += 1;
        active.withheld.insert(hash, block);
        let decision = active.decide(Event::Mined { block: hash });
        info!(target: "miner", %hash, lead = active.lead(), withheld = active.withheld.len(), "mined a block ({})", verb(&decision));
        self.carry_out(active, decision);
    }

    /// Feeds the network's blocks the chain just connected to the strategy.
    pub(super) fn adversary_observe(&mut self, events: &[ChainEvent]) {
        if self.adv.active.is_none() {
            return;
        }
        let honest: Vec<(Hash256, Hash256, u32, bool)> = events
            .iter()
            .filter_map(|e| match e {
                ChainEvent::Connected { block, height } => Some((block, *height)),
                ChainEvent::Disconnected { .. } => None,
            })
            .filter(|(b, _)| !self.adv.ours_set.contains(&b.hash()))
            .map(|(b, height)| {
                let payment = match &self.adv.active {
                    Some(Active { plan: Plan::DoubleSpend(a), .. }) => {
                        b.block().txs.iter().any(|t| t.txid() == a.payment)
                    }
                    _ => false,
                };
                (b.hash(), b.block().header.prev, height, payment)
            })
            .collect();
        for (block, parent, height, has_payment) in honest {
            let Some(mut active) = self.adv.active.take() else { return };
            if let Plan::DoubleSpend(a) = &mut active.plan {
                // The merchant counts from the block holding the payment: a first block on
                // the fork point without it moves the fork point there.
                if a.machine.lengths().1 == 0 && parent == a.fork && !has_payment {
                    self.adv.stats.abandoned += active.withheld.len() as u64;
                    active.withheld.clear();
                    a.machine = DoubleSpend::new(block, height, a.confirmations, a.max_deficit);
                    (a.fork, a.fork_height) = (block, height);
                    a.restarts += 1;
                    active.mine_on = block;
                    info!(target: "miner", fork = %block, height, "the network's block lacks the payment: the attack restarts on it");
                    self.adv.active = Some(active);
                    self.refresh_template();
                    continue;
                }
            }
            let decision = active.decide(Event::Honest { block, parent, height });
            tracing::debug!(target: "miner", %block, height, lead = active.lead(), "network block ({})", verb(&decision));
            self.carry_out(active, decision);
        }
    }

    /// Publishes what the decision says, moves the miner, and ends a finished attack.
    fn carry_out(&mut self, mut active: Active, decision: Decision<Hash256>) {
        for hash in decision.published() {
            let Some(block) = active.withheld.remove(hash) else { continue };
            let copy = block.clone();
            match self.process_block(block) {
                Ok(_) => {
                    self.announce_block(&copy);
                    self.adv.stats.published += 1;
                }
                Err(e) => {
                    warn!(target: "miner", %hash, error = %e, "a withheld block was refused on release")
                }
            }
        }
        if let Decision::GiveUp { abandoned, .. } = decision {
            self.adv.stats.abandoned += abandoned as u64;
            active.withheld.clear();
        }
        active.mine_on = decision.mine_on();
        self.adv.stats.longest_withheld = self.adv.stats.longest_withheld.max(active.withheld.len() as u64);
        let mut next = Some(active);
        if let Some(Active { plan: Plan::DoubleSpend(a), .. }) = &next {
            if a.machine.outcome() != AttackOutcome::Racing {
                let view = a.view();
                info!(target: "miner", outcome = view.outcome, private = view.private_len, public = view.public_len, "double-spend attempt ended");
                self.adv.last_attack = Some(view);
                let tip = self.chain.tip();
                next = (self.adv.strategy == MiningStrategy::Selfish)
                    .then(|| Active::selfish(tip.hash, tip.height));
            }
        }
        if let Some(a) = &mut next {
            if a.withheld.len() >= MAX_WITHHELD {
                if let Plan::Selfish(_) = a.plan {
                    warn!(target: "miner", withheld = a.withheld.len(), "withheld-block limit reached: publishing everything");
                    let head = a.mine_on;
                    let mut order = Vec::new();
                    let mut at = head;
                    while let Some(b) = a.withheld.remove(&at) {
                        at = b.header.prev;
                        order.push(b);
                    }
                    order.reverse();
                    a.withheld.clear();
                    for b in order {
                        let copy = b.clone();
                        if self.process_block(b).is_ok() {
                            self.announce_block(&copy);
                            self.adv.stats.published += 1;
                        }
                    }
                    let height = self.chain.record(&head).map_or(0, |r| r.height);
                    *a = Active::selfish(head, height);
                }
            }
        }
        self.adv.active = next;
        self.refresh_template();
    }

    /// The template a strategy wants mined: `None` when no strategy is active (the honest
    /// template applies), `Some(None)` when it wants nothing mined.
    pub(super) fn adversary_template(&self, lock: &Script) -> Option<Option<BlockTemplate>> {
        let active = self.adv.active.as_ref()?;
        let conflict = match &active.plan {
            Plan::DoubleSpend(a) if active.mine_on == a.fork => Some(&a.conflict),
            Plan::DoubleSpend(_) if active.withheld.len() >= MAX_WITHHELD => return Some(None),
            _ => None,
        };
        let tip = self.chain.tip();
        if active.mine_on == tip.hash && conflict.is_none() {
            let source = MempoolTemplates { pool: &self.mempool, lock: lock.clone() };
            return Some(Some(source.template(&self.chain.tip_context(unix_secs()))));
        }
        // Walk back over withheld blocks to the chain, then forward over their headers.
        let mut headers = Vec::new();
        let mut base = active.mine_on;
        while let Some(b) = active.withheld.get(&base) {
            headers.push(b.header);
            base = b.header.prev;
        }
        let now = unix_secs();
        let params = self.chain.params();
        let mut state = match self.chain.header_state(&base) {
            Some(s) => s,
            None => {
                warn!(target: "miner", %base, "the strategy's branch leaves the chain at an unknown block: not mining");
                return Some(None);
            }
        };
        for h in headers.iter().rev() {
            match state.child(h, params, now) {
                Ok(s) => state = s,
                Err(e) => {
                    warn!(target: "miner", error = %e, "a withheld header no longer fits: not mining");
                    return Some(None);
                }
            }
        }
        let ctx = TipContext { params, prev: active.mine_on, next: state.next_context(params, now) };
        let mut t = BlockTemplate::coinbase_only(&ctx, lock.clone());
        if let Some(tx) = conflict {
            // The conflicting spend's fee is left out of the coinbase (it may not exceed it).
            t = BlockTemplate::new(
                t.prev,
                t.height,
                t.time,
                t.bits,
                t.coinbase_lock,
                t.coinbase_value,
                vec![tx.clone()],
            );
        }
        Some(Some(t))
    }

    /// `startdoublespend`: the payment `payment` (already in the mempool, so relayed) is to be
    /// reversed by `conflict`, which spends one of its inputs; the miner turns to a private
    /// branch from the tip holding `conflict`, published once strictly longer after the
    /// merchant's `confirmations`, abandoned `max_deficit` blocks behind.
    pub(super) fn start_double_spend(&mut self, start: DoubleSpendStart) -> Result<AttackView, NodeError> {
        let DoubleSpendStart { payment, conflict, confirmations, max_deficit } = start;
        let refuse = |why: String| Err(NodeError::Miner(why));
        if self.miner.is_none() {
            return refuse("a double spend needs the continuous miner: start the node with --mine".into());
        }
        if self.adv.strategy != MiningStrategy::Honest {
            return refuse(format!(
                "this node mines with --strategy {:?}: a double spend runs on an honest miner",
                self.adv.strategy
            ));
        }
        if self.adv.active.is_some() {
            return refuse("a double-spend attempt is already racing (see getstrategyinfo)".into());
        }
        if confirmations == 0 || max_deficit == 0 {
            return refuse("confirmations and maxdeficit must be at least 1".into());
        }
        let Some(paid) = self.mempool.get(&payment) else {
            return refuse(format!("payment {payment} is not in this node's mempool: send it first"));
        };
        let conflict_id = conflict.txid();
        if conflict_id == payment
            || !conflict.inputs.iter().any(|i| paid.inputs.iter().any(|p| p.prevout == i.prevout))
        {
            return refuse(format!(
                "transaction {conflict_id} does not spend any input of payment {payment}"
            ));
        }
        let mut spent = Vec::with_capacity(conflict.inputs.len());
        for input in &conflict.inputs {
            match self.chain.coin(&input.prevout)? {
                Some(c) => spent.push(c.out),
                None => return Err(NodeError::MissingInput(input.prevout)),
            }
        }
        crate::consensus::verify_tx_scripts(&conflict, &spent)
            .map_err(|e| NodeError::Miner(format!("the conflicting spend {conflict_id} is invalid: {e}")))?;
        let tip = self.chain.tip();
        let attack = Attack {
            machine: DoubleSpend::new(tip.hash, tip.height, confirmations, max_deficit),
            payment,
            conflict,
            fork: tip.hash,
            fork_height: tip.height,
            confirmations,
            max_deficit,
            restarts: 0,
        };
        let view = attack.view();
        info!(target: "miner", %payment, conflict = %conflict_id, fork = %tip.hash, confirmations, max_deficit, "double-spend attempt started");
        self.adv.active = Some(Active {
            plan: Plan::DoubleSpend(Box::new(attack)),
            withheld: HashMap::new(),
            mine_on: tip.hash,
        });
        self.refresh_template();
        Ok(view)
    }

    /// `getstrategyinfo`.
    pub(super) fn strategy_info(&self) -> StrategyInfo {
        let a = &self.adv;
        let (strategy, attack) = match &a.active {
            Some(Active { plan: Plan::DoubleSpend(x), .. }) => ("double-spend", Some(x.view())),
            _ => (
                if a.strategy == MiningStrategy::Selfish { "selfish" } else { "honest" },
                a.last_attack.clone(),
            ),
        };
        StrategyInfo {
            strategy,
            mining: self.miner.is_some(),
            hashrate_limit: a.hashrate,
            mine_on: a.active.as_ref().map(|x| x.mine_on),
            withheld: a.active.as_ref().map_or(0, |x| x.withheld.len()),
            lead: a.active.as_ref().map_or(0, Active::lead),
            mined: a.stats.mined,
            published: a.stats.published,
            abandoned: a.stats.abandoned,
            longest_withheld: a.stats.longest_withheld,
            attack,
        }
    }
}

/// A decision in words, for the log.
fn verb(d: &Decision<Hash256>) -> String {
    match d {
        Decision::Withhold { .. } => "withhold".into(),
        Decision::Publish { blocks, .. } => format!("publish {}", blocks.len()),
        Decision::GiveUp { abandoned, .. } => format!("give up {abandoned}"),
    }
}
