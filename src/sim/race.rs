//! Attacker-versus-network races with no propagation delay: each block is the attacker's with
//! probability equal to its hash share, else the honest network's. These drive the very
//! strategy state machines of `miner::strategy` (the live miner's), and apply quarry's fork
//! choice to what is published: the honest network switches to a published branch only if it
//! is strictly longer (equal work per block: longer is more work), and keeps its first-seen
//! tip on a tie. They are fast enough for 20,000 trials a point; the network engine
//! (`engine.rs`) is for delay-driven effects (stale blocks, partitions).

use crate::miner::strategy::{AttackOutcome, Decision, DoubleSpend, Event, Selfish, Strategy};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The attacker gives up this many blocks behind. The chance of ever catching up from
/// there is at most (q/p)^61, below 1e-10 for q <= 0.4: it does not show in the estimates.
pub const MAX_DEFICIT: u32 = 60;

/// One double-spend attempt: true if the attacker's branch replaced the payment's.
pub fn double_spend_trial(q: f64, confirmations: u32, rng: &mut StdRng) -> bool {
    let mut attack = DoubleSpend::new(0u64, 0, confirmations, MAX_DEFICIT);
    let (mut next_id, mut honest_tip, mut honest_height) = (1u64, 0u64, 0u32);
    loop {
        let id = next_id;
        next_id += 1;
        let event = if rng.gen::<f64>() < q {
            Event::Mined { block: id }
        } else {
            let parent = honest_tip;
            honest_tip = id;
            honest_height += 1;
            Event::Honest { block: id, parent, height: honest_height }
        };
        let decision = attack.on_event(event);
        match attack.outcome() {
            AttackOutcome::Racing => continue,
            AttackOutcome::Failed => return false,
            AttackOutcome::Succeeded => {
                // The honest network adopts the published branch only if strictly longer.
                let published = attack.lengths().0;
                debug_assert!(!decision.published().is_empty());
                return published > honest_height;
            }
        }
    }
}

/// Successes out of `trials` double-spend attempts, from `seed`.
pub fn double_spend(q: f64, confirmations: u32, trials: u32, seed: u64) -> u32 {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..trials).filter(|_| double_spend_trial(q, confirmations, &mut rng)).count() as u32
}

/// What a selfish-mining run measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SelfishResult {
    /// Main-chain blocks mined by the pool.
    pub pool_blocks: u64,
    /// Main-chain blocks in all.
    pub main_blocks: u64,
}

impl SelfishResult {
    /// The pool's share of the main chain.
    pub fn revenue(&self) -> f64 {
        self.pool_blocks as f64 / self.main_blocks.max(1) as f64
    }
}

/// Runs `blocks` block discoveries with a selfish pool of share `alpha`; in a tie a share
/// `gamma` of the honest miners mine on the pool's block.
pub fn selfish(alpha: f64, gamma: f64, blocks: u64, seed: u64) -> SelfishResult {
    let mut rng = StdRng::seed_from_u64(seed);
    // Block tree: parent, height, mined by the pool.
    let mut tree: Vec<(u64, u32, bool)> = vec![(0, 0, false)];
    let mut pool = Selfish::new(0u64, 0);
    let mut mine_on = 0u64;
    // The honest network's tip, and the pool's published head when it ties with it.
    let mut honest_tip = 0u64;
    let mut tie: Option<u64> = None;
    for _ in 0..blocks {
        let id = tree.len() as u64;
        let decision = if rng.gen::<f64>() < alpha {
            let h = tree[mine_on as usize].1 + 1;
            tree.push((mine_on, h, true));
            pool.on_event(Event::Mined { block: id })
        } else {
            let parent = match tie {
                Some(head) if rng.gen::<f64>() < gamma => head,
                _ => honest_tip,
            };
            let h = tree[parent as usize].1 + 1;
            tree.push((parent, h, false));
            honest_tip = id;
            tie = None;
            pool.on_event(Event::Honest { block: id, parent, height: h })
        };
        if let Decision::Publish { blocks, .. } = &decision {
            let head = *blocks.last().expect("a publish names blocks");
            let (hh, ht) = (tree[head as usize].1, tree[honest_tip as usize].1);
            if hh > ht {
                honest_tip = head;
                tie = None;
            } else if hh == ht {
                tie = Some(head);
            }
        }
        mine_on = decision.mine_on();
    }
    // At the end the pool publishes what it still holds if that wins.
    let end = if tree[mine_on as usize].1 > tree[honest_tip as usize].1 { mine_on } else { honest_tip };
    let (mut cur, mut result) = (end, SelfishResult { pool_blocks: 0, main_blocks: 0 });
    while cur != 0 {
        let (parent, _, by_pool) = tree[cur as usize];
        result.main_blocks += 1;
        result.pool_blocks += by_pool as u64;
        cur = parent;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::Chain;
    use crate::consensus::validation::block_subsidy;
    use crate::consensus::Network;
    use crate::primitives::{Block, Hash256, Script};
    use crate::testkit::{assemble, coinbase};

    /// A regtest child of `parent` in `chain` (which must hold it), made unique by `tag`.
    fn child(chain: &Chain, parent: Hash256, time: u32, tag: u64) -> Block {
        let params = chain.params();
        let ctx = chain.header_context(&parent, u64::MAX / 2).unwrap();
        let cb =
            coinbase(ctx.height, block_subsidy(params, ctx.height), Script(vec![0x6a]), &tag.to_le_bytes());
        assemble(params, parent, time.max(ctx.median_time_past + 1), ctx.expected_bits, vec![cb])
    }

    /// One double-spend trial like [`double_spend_trial`] (the same draws), but with real
    /// blocks, and the honest side's verdict given by a real [`Chain`] on the memory store
    /// receiving the attacker's published branch.
    fn double_spend_trial_on_chains(q: f64, confirmations: u32, rng: &mut StdRng) -> bool {
        let params = Network::Regtest.params();
        let (mut honest, mut private) = (Chain::memory(params), Chain::memory(params));
        let now = params.genesis_time as u64 + 1_000_000;
        let mut attack = DoubleSpend::new(0u64, 0, confirmations, MAX_DEFICIT);
        let mut bodies: Vec<Block> = vec![params.genesis.clone()];
        let mut honest_height = 0;
        loop {
            let id = bodies.len() as u64;
            let time = params.genesis_time + id as u32;
            let event = if rng.gen::<f64>() < q {
                let b = child(&private, private.tip().hash, time, id);
                private.process_block(b.clone(), now).unwrap();
                bodies.push(b);
                Event::Mined { block: id }
            } else {
                let parent = honest.tip().hash;
                let b = child(&honest, parent, time, id);
                honest.process_block(b.clone(), now).unwrap();
                bodies.push(b);
                honest_height += 1;
                Event::Honest { block: id, parent: 0, height: honest_height }
            };
            let decision = attack.on_event(event);
            match attack.outcome() {
                AttackOutcome::Racing => continue,
                AttackOutcome::Failed => return false,
                AttackOutcome::Succeeded => {
                    for id in decision.published() {
                        honest.process_block(bodies[*id as usize].clone(), now).unwrap();
                    }
                    return honest.tip().hash == private.tip().hash;
                }
            }
        }
    }

    #[test]
    fn the_race_model_and_a_real_chain_judge_every_double_spend_alike() {
        // The race model's rule (adopted only if strictly longer) is quarry's fork choice.
        for (q, z) in [(0.45, 1), (0.35, 2)] {
            let (mut a, mut b) = (StdRng::seed_from_u64(3), StdRng::seed_from_u64(3));
            let mut wins = 0;
            for _ in 0..60 {
                let model = double_spend_trial(q, z, &mut a);
                assert_eq!(model, double_spend_trial_on_chains(q, z, &mut b), "q {q} z {z}");
                wins += model as u32;
            }
            assert!(wins > 0, "some attempts succeed at q = {q}");
        }
    }

    #[test]
    fn an_attacker_with_no_hash_rate_never_wins_and_a_lone_miner_always_does() {
        assert_eq!(double_spend(0.0, 1, 200, 1), 0);
        assert_eq!(selfish(0.0, 0.5, 1000, 1).pool_blocks, 0);
        let r = selfish(0.3, 0.0, 1000, 1);
        assert!(r.main_blocks > 0 && r.main_blocks < 1000, "orphaned races shorten the chain: {r:?}");
    }
}
