//! Fork choice, reorganisation with undo data, orphans, invalidation, and a model test of
//! fork choice against a naive reference over random block trees.

use proptest::prelude::*;
use quarry::chain::{Chain, ChainError, ChainEvent, ProcessOutcome};
use quarry::consensus::pow::target_to_compact;
use quarry::consensus::validation::block_subsidy;
use quarry::consensus::{ConsensusError, Network, Params};
use quarry::index::Indexer;
use quarry::primitives::{Amount, Block, Hash256, OutPoint, Transaction, TxOut, U256};
use quarry::store::IndexSet;
use quarry::testkit::{assemble, coinbase, key, p2pkh_lock, spend_p2pkh};
use std::collections::HashMap;

const NOW: u64 = 2_000_000_000;

/// Regtest with a fast ASERT retarget (half-life 10 s) and an easiest target of 2^250 (64
/// hashes a block), so that block times change the work per block without the rounding of
/// near-2^256 targets: blocks ahead of schedule get harder targets and weigh more.
fn retarget_params() -> &'static Params {
    let limit = U256::ONE.shl(250);
    Box::leak(Box::new(Params {
        asert_halflife: Some(10),
        pow_limit: limit,
        genesis_bits: target_to_compact(&limit),
        ..Params::regtest()
    }))
}

struct Builder {
    params: &'static Params,
    chain: Chain,
    _dir: tempfile::TempDir,
}

impl Builder {
    fn new(params: &'static Params) -> Builder {
        let dir = tempfile::tempdir().unwrap();
        let chain = Chain::open(dir.path(), params).unwrap();
        Builder { params, chain, _dir: dir }
    }

    /// A valid child of `parent` with time `parent.time + dt`, coinbase tagged with `tag`.
    fn child(&self, parent: &Hash256, dt: u32, txs: Vec<Transaction>, tag: &[u8]) -> Block {
        let ctx = self.chain.header_context(parent, NOW).unwrap();
        let ptime = self.chain.record(parent).unwrap().header.time;
        let mut all =
            vec![coinbase(ctx.height, block_subsidy(self.params, ctx.height), p2pkh_lock(&key(1)), tag)];
        all.extend(txs);
        assemble(self.params, *parent, ptime + dt, ctx.expected_bits, all)
    }

    fn submit(&mut self, block: Block) -> ProcessOutcome {
        self.chain.process_block(block, NOW).unwrap()
    }

    /// Extends `parent` by `n` blocks `dt` seconds apart; returns the hashes.
    fn extend(&mut self, parent: Hash256, n: usize, dt: u32, tag: &[u8]) -> Vec<Hash256> {
        let mut out = Vec::new();
        let mut prev = parent;
        for _ in 0..n {
            let b = self.child(&prev, dt, vec![], tag);
            prev = b.hash();
            self.submit(b);
            out.push(prev);
        }
        out
    }
}

fn work(chain: &Chain, h: &Hash256) -> U256 {
    chain.record(h).unwrap().chain_work
}

/// Waits (bounded) until the background indexer has caught up with the chain's tip.
fn wait_indexed(index: &Indexer, chain: &Chain) {
    let start = std::time::Instant::now();
    index.notify();
    while index.status().best != chain.tip().hash {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "the indexer did not catch up: {:?}",
            index.status()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn most_work_wins_over_more_blocks_and_reorg_matches_a_fresh_chainstate() {
    let params = retarget_params();
    let mut b = Builder::new(params);
    // The indexes are built beside the chain, by the background indexer, as on a node.
    let index = Indexer::start(b.chain.shared_store(), IndexSet { tx: true, address: true }).unwrap();
    let genesis = params.genesis_hash;
    let common = b.extend(genesis, 12, 5, b"common");
    let fork = *common.last().unwrap();

    // The coinbase of block 1 is mature at height 13; both branches spend it differently.
    let block1 = b.chain.store().get_block(&common[0]).unwrap().unwrap();
    let cb = &block1.block().txs[0];
    let coin = (OutPoint { txid: cb.txid(), index: 0 }, cb.outputs[0].clone());
    let pay = |to: u8, fee: u64| {
        vec![TxOut {
            value: Amount::from_sat(coin.1.value.to_sat() - fee).unwrap(),
            lock: p2pkh_lock(&key(to)),
        }]
    };
    let spend_a = spend_p2pkh(&key(1), std::slice::from_ref(&coin), pay(2, 1000), 0);
    let spend_b = spend_p2pkh(&key(1), std::slice::from_ref(&coin), pay(3, 2000), 0);

    // Branch B: 8 slow blocks (60 s apart: easier targets). Branch A: 5 fast blocks (1 s).
    let b1 = b.child(&fork, 60, vec![spend_b.clone()], b"B");
    let mut branch_b = vec![b1.hash()];
    let blocks_b = {
        let mut v = vec![b1.clone()];
        b.submit(b1);
        for _ in 0..7 {
            let blk = b.child(branch_b.last().unwrap(), 60, vec![], b"B");
            branch_b.push(blk.hash());
            v.push(blk.clone());
            b.submit(blk);
        }
        v
    };
    assert_eq!(b.chain.tip().hash, *branch_b.last().unwrap());
    let a1 = b.child(&fork, 1, vec![spend_a.clone()], b"A");
    let mut branch_a = vec![a1.hash()];
    let mut blocks_a = vec![a1.clone()];
    b.submit(a1);
    for _ in 0..4 {
        let blk = b.child(branch_a.last().unwrap(), 1, vec![], b"A");
        branch_a.push(blk.hash());
        blocks_a.push(blk.clone());
        b.submit(blk);
    }
    let (wa, wb) = (work(&b.chain, branch_a.last().unwrap()), work(&b.chain, branch_b.last().unwrap()));
    assert!(branch_a.len() < branch_b.len());
    assert!(wa > wb, "the fast branch carries more work: {wa:?} vs {wb:?}");
    assert_eq!(b.chain.tip().hash, *branch_a.last().unwrap(), "most work, not most blocks");
    assert!(b.chain.coin(&OutPoint { txid: spend_a.txid(), index: 0 }).unwrap().is_some());
    assert!(b.chain.coin(&OutPoint { txid: spend_b.txid(), index: 0 }).unwrap().is_none());
    // The tx index and the address index follow the active chain through the reorg.
    wait_indexed(&index, &b.chain);
    let store = b.chain.store();
    assert_eq!(store.tx_block(&spend_a.txid()).unwrap(), Some(branch_a[0]));
    assert_eq!(store.tx_block(&spend_b.txid()).unwrap(), None);
    let to_2 = b.chain.coins_by_lock(&p2pkh_lock(&key(2)).0, 100).unwrap();
    assert_eq!(to_2.iter().map(|(op, _)| op.txid).collect::<Vec<_>>(), vec![spend_a.txid()]);
    assert!(b.chain.coins_by_lock(&p2pkh_lock(&key(3)).0, 100).unwrap().is_empty());
    assert_eq!(store.history_by_lock(&p2pkh_lock(&key(2)).0, 100).unwrap(), vec![(13, spend_a.txid())]);
    assert!(store.history_by_lock(&p2pkh_lock(&key(3)).0, 100).unwrap().is_empty());
    // Key 1's history: its 12 + 5 coinbases and the spend of one of them.
    assert_eq!(store.history_by_lock(&p2pkh_lock(&key(1)).0, 100).unwrap().len(), 12 + 5 + 1);
    assert_eq!(
        b.chain.coins_by_lock(&p2pkh_lock(&key(1)).0, 100).unwrap().len(),
        12 + 5 - 1,
        "coinbases, minus the spent one"
    );

    // A fresh chainstate that connected common + A alone has the same UTXO set.
    let mut fresh = Builder::new(params);
    for h in &common {
        fresh.submit(b.chain.store().get_block(h).unwrap().unwrap().into_block());
    }
    for blk in &blocks_a {
        fresh.submit(blk.clone());
    }
    assert_eq!(fresh.chain.tip().hash, b.chain.tip().hash);
    assert_eq!(fresh.chain.utxo_digest().unwrap(), b.chain.utxo_digest().unwrap());

    // Branch B grows past A's work: reorg back, and compare with a fresh B-only chainstate.
    let mut more = Vec::new();
    while work(&b.chain, branch_b.last().unwrap()) <= wa {
        let blk = b.child(branch_b.last().unwrap(), 1, vec![], b"B");
        branch_b.push(blk.hash());
        more.push(blk.clone());
        b.submit(blk);
    }
    assert_eq!(b.chain.tip().hash, *branch_b.last().unwrap());
    let mut fresh_b = Builder::new(params);
    for h in &common {
        fresh_b.submit(b.chain.store().get_block(h).unwrap().unwrap().into_block());
    }
    for blk in blocks_b.iter().chain(&more) {
        fresh_b.submit(blk.clone());
    }
    assert_eq!(fresh_b.chain.utxo_digest().unwrap(), b.chain.utxo_digest().unwrap());
    assert!(b.chain.coin(&OutPoint { txid: spend_b.txid(), index: 0 }).unwrap().is_some());
    wait_indexed(&index, &b.chain);
    let store = b.chain.store();
    assert_eq!(store.tx_block(&spend_b.txid()).unwrap(), Some(branch_b[0]));
    assert_eq!(store.tx_block(&spend_a.txid()).unwrap(), None);
    assert!(b.chain.coins_by_lock(&p2pkh_lock(&key(2)).0, 100).unwrap().is_empty());
    assert_eq!(b.chain.coins_by_lock(&p2pkh_lock(&key(3)).0, 100).unwrap().len(), 1);
    assert_eq!(store.history_by_lock(&p2pkh_lock(&key(3)).0, 100).unwrap(), vec![(13, spend_b.txid())]);
    assert!(store.history_by_lock(&p2pkh_lock(&key(2)).0, 100).unwrap().is_empty());
}

#[test]
fn equal_work_keeps_the_first_seen_tip() {
    let mut b = Builder::new(Network::Regtest.params());
    let g = b.chain.params().genesis_hash;
    let first = b.child(&g, 5, vec![], b"first");
    let second = b.child(&g, 5, vec![], b"second");
    b.submit(first.clone());
    let out = b.submit(second.clone());
    assert!(matches!(out, ProcessOutcome::Accepted { ref events, .. } if events.is_empty()));
    assert_eq!(b.chain.tip().hash, first.hash(), "a rival with equal work does not replace the tip");
    // One more block on the second branch gives it more work: switch, with events.
    let next = b.child(&second.hash(), 5, vec![], b"second");
    match b.submit(next.clone()) {
        ProcessOutcome::Accepted { events, .. } => {
            let kinds: Vec<String> = events
                .iter()
                .map(|e| match e {
                    ChainEvent::Connected { block, height } => format!("+{}@{height}", block.hash()),
                    ChainEvent::Disconnected { block, height } => format!("-{}@{height}", block.hash()),
                })
                .collect();
            assert_eq!(
                kinds,
                vec![
                    format!("-{}@1", first.hash()),
                    format!("+{}@1", second.hash()),
                    format!("+{}@2", next.hash())
                ]
            );
        }
        o => panic!("unexpected {o:?}"),
    }
}

#[test]
fn orphans_wait_for_their_parent() {
    let mut b = Builder::new(Network::Regtest.params());
    let g = b.chain.params().genesis_hash;
    let p = b.child(&g, 5, vec![], b"p");
    b.submit(p.clone());
    let c = b.child(&p.hash(), 5, vec![], b"c");
    // A second chainstate sees the child first.
    b.submit(c.clone());
    let gc = b.child(&c.hash(), 5, vec![], b"gc");
    let mut other = Builder::new(Network::Regtest.params());
    assert!(matches!(other.submit(c.clone()), ProcessOutcome::Orphan { missing } if missing == p.hash()));
    // The grandchild's parent is waiting too: ask for the missing root, not for c.
    assert!(matches!(other.submit(gc.clone()), ProcessOutcome::Orphan { missing } if missing == p.hash()));
    assert_eq!(other.chain.orphan_count(), 2);
    other.submit(p);
    assert_eq!(other.chain.tip().hash, gc.hash());
    assert_eq!(other.chain.orphan_count(), 0);
}

/// One peer flooding orphans (valid proof of work, unknown parents) only cycles its own
/// share of the pool: it keeps at most MAX_ORPHANS_PER_SOURCE, and an orphan another peer
/// sent before the flood is still there to connect when its parent arrives.
#[test]
fn one_source_flooding_orphans_cannot_push_out_another_sources_orphan() {
    use quarry::chain::{MAX_ORPHANS, MAX_ORPHANS_PER_SOURCE};
    let mut b = Builder::new(Network::Regtest.params());
    let g = b.chain.params().genesis_hash;
    let p = b.child(&g, 5, vec![], b"p");
    b.submit(p.clone());
    let c = b.child(&p.hash(), 5, vec![], b"c");
    let mut other = Builder::new(Network::Regtest.params());
    let (honest, flooder) = (7, 8);
    assert!(matches!(
        other.chain.process_block_from(c.clone(), NOW, honest),
        Ok(ProcessOutcome::Orphan { .. })
    ));
    for i in 0..(MAX_ORPHANS as u32 + 40) {
        // Children of blocks nobody has: orphans forever.
        let mut fake_parent = [0xee; 32];
        fake_parent[..4].copy_from_slice(&i.to_le_bytes());
        let fake_parent = Hash256(fake_parent);
        let cb = coinbase(2, Amount::from_sat(1).unwrap(), p2pkh_lock(&key(2)), &i.to_le_bytes());
        let params = other.params;
        let orphan = assemble(params, fake_parent, 1_000 + i, params.genesis_bits, vec![cb]);
        let out = other.chain.process_block_from(orphan, NOW, flooder).unwrap();
        assert!(matches!(out, ProcessOutcome::Orphan { .. }), "{out:?}");
        assert!(other.chain.orphans_from(flooder).0 <= MAX_ORPHANS_PER_SOURCE);
    }
    assert_eq!(other.chain.orphans_from(flooder).0, MAX_ORPHANS_PER_SOURCE);
    assert_eq!(other.chain.orphans_from(honest).0, 1, "the honest peer's orphan survived the flood");
    other.submit(p);
    assert_eq!(other.chain.tip().hash, c.hash(), "and connected when its parent came");
}

#[test]
fn invalid_block_on_a_heavier_branch_is_marked_with_its_descendants() {
    let params = Network::Regtest.params();
    let mut b = Builder::new(params);
    let g = params.genesis_hash;
    let main = b.extend(g, 2, 5, b"main");
    // Side branch: its first block's coinbase pays one unit too much (valid context-free).
    let ctx = b.chain.header_context(&g, NOW).unwrap();
    let over = Amount::from_sat(block_subsidy(params, 1).to_sat() + 1).unwrap();
    let bad = assemble(
        params,
        g,
        params.genesis_time + 1,
        ctx.expected_bits,
        vec![coinbase(1, over, p2pkh_lock(&key(1)), b"bad")],
    );
    b.submit(bad.clone());
    let side = b.extend(bad.hash(), 2, 5, b"side"); // 3 blocks: more work than main
    assert_eq!(b.chain.tip().hash, *main.last().unwrap(), "the invalid branch never becomes active");
    let err = b.chain.process_block(bad.clone(), NOW).unwrap_err();
    assert!(matches!(err, ChainError::KnownInvalid { .. }), "{err}");
    let child = b.child(side.last().unwrap(), 5, vec![], b"side");
    assert!(matches!(b.chain.process_block(child, NOW), Err(ChainError::KnownInvalid { .. })));
    assert!(b.chain.record(&side[1]).unwrap().status.is_failed());

    // invalidateblock / reconsiderblock on the valid main chain.
    let events = b.chain.invalidate_block(&main[0]).unwrap();
    assert_eq!(b.chain.tip().hash, g);
    assert_eq!(events.len(), 2);
    b.chain.reconsider_block(&main[0]).unwrap();
    assert_eq!(b.chain.tip().hash, *main.last().unwrap());
}

#[test]
fn contextual_rejections_name_the_rule() {
    let params = Network::Regtest.params();
    let mut b = Builder::new(params);
    let g = params.genesis_hash;
    let ctx = b.chain.header_context(&g, NOW).unwrap();
    let cb = coinbase(1, block_subsidy(params, 1), p2pkh_lock(&key(1)), b"x");
    let old = assemble(params, g, params.genesis_time, ctx.expected_bits, vec![cb.clone()]);
    match b.chain.process_block(old, NOW) {
        Err(ChainError::Invalid { error: ConsensusError::TimeTooOld { time, median_time_past }, .. }) => {
            assert_eq!((time, median_time_past), (params.genesis_time, params.genesis_time))
        }
        r => panic!("{r:?}"),
    }
    let future = assemble(params, g, (NOW + 7201) as u32, ctx.expected_bits, vec![cb]);
    let err = b.chain.process_block(future.clone(), NOW).unwrap_err();
    assert!(err.to_string().contains("more than 7200 s ahead"), "{err}");
    assert_eq!(
        err.fault(),
        quarry::consensus::Fault::Transient,
        "a block too new for our clock is not the sender's fault"
    );
    // Too new is not permanent: the same block is accepted once the clock catches up.
    assert!(b.chain.process_block(future, NOW + 10).is_ok());
}

/// Reference fork choice, stateful like a node: after each submission, the accepted block
/// (parent accepted first) with the most work, ties to the earliest received, replaces the
/// tip only if it has strictly more work.
fn reference_step(tip: Hash256, accepted: &[(Hash256, usize)], work: &HashMap<Hash256, U256>) -> Hash256 {
    let mut best = accepted[0];
    for c in accepted {
        if work[&c.0] > work[&best.0] || (work[&c.0] == work[&best.0] && c.1 < best.1) {
            best = *c;
        }
    }
    if work[&best.0] > work[&tip] {
        best.0
    } else {
        tip
    }
}

/// `0..n` in an order drawn from `seed` (Fisher-Yates over a 64-bit LCG).
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut s = seed;
    for i in (1..n).rev() {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        order.swap(i, (s >> 33) as usize % (i + 1));
    }
    order
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, .. ProptestConfig::default() })]
    #[test]
    fn fork_choice_matches_a_naive_reference(
        shape in proptest::collection::vec((any::<prop::sample::Index>(), 1u32..12), 1..24),
        order_seed in any::<u64>(),
    ) {
        let params = retarget_params();
        let mut b = Builder::new(params);
        let g = params.genesis_hash;
        // Build the tree with a scratch chainstate so every block has valid bits.
        let mut scratch = Builder::new(params);
        let mut blocks: Vec<Block> = Vec::new();
        let mut nodes = vec![g];
        for (i, (parent_ix, dt)) in shape.iter().enumerate() {
            let parent = nodes[parent_ix.index(nodes.len())];
            let blk = scratch.child(&parent, *dt, vec![], format!("n{i}").as_bytes());
            scratch.chain.process_block(blk.clone(), NOW).unwrap();
            nodes.push(blk.hash());
            blocks.push(blk);
        }
        let work: HashMap<Hash256, U256> =
            nodes.iter().map(|h| (*h, scratch.chain.record(h).unwrap().chain_work)).collect();
        let parent_of: HashMap<Hash256, Hash256> = blocks.iter().map(|x| (x.hash(), x.header.prev)).collect();
        // Submit in a shuffled order (orphans included).
        let order = shuffled(blocks.len(), order_seed);
        let mut received: HashMap<Hash256, usize> = HashMap::new();
        let mut accepted: Vec<(Hash256, usize)> = vec![(g, 0)];
        let mut tip = g;
        for (n, i) in order.into_iter().enumerate() {
            b.chain.process_block(blocks[i].clone(), NOW).unwrap();
            received.insert(blocks[i].hash(), n + 1);
            // Accept every received block whose parent is accepted, until nothing changes.
            loop {
                let before = accepted.len();
                for (h, r) in &received {
                    if !accepted.iter().any(|a| a.0 == *h) && accepted.iter().any(|a| a.0 == parent_of[h]) {
                        accepted.push((*h, *r));
                    }
                }
                if accepted.len() == before { break; }
            }
            tip = reference_step(tip, &accepted, &work);
            prop_assert_eq!(b.chain.tip().hash, tip);
        }
    }
}

/// The events of an outcome as (connected?, hash, height), comparable across chains.
fn event_keys(outcome: &ProcessOutcome) -> Vec<(bool, Hash256, u32)> {
    match outcome {
        ProcessOutcome::Accepted { events, .. } => events_of(events),
        _ => Vec::new(),
    }
}

fn events_of(events: &[ChainEvent]) -> Vec<(bool, Hash256, u32)> {
    events
        .iter()
        .map(|e| match e {
            ChainEvent::Connected { block, height } => (true, block.hash(), *height),
            ChainEvent::Disconnected { block, height } => (false, block.hash(), *height),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]
    /// The in-memory store (the simulator's) and RocksDB run the same fork choice: on random
    /// block trees submitted in a random order (orphans included), both chains report the same
    /// outcome and the same reorganisation events after every block, the same tip, branch tips
    /// and UTXO digest at the end, and again after an invalidation and reconsideration.
    #[test]
    fn memory_and_rocksdb_chains_agree_on_random_trees(
        shape in proptest::collection::vec((any::<prop::sample::Index>(), 1u32..12), 1..28),
        order_seed in any::<u64>(),
        victim in any::<prop::sample::Index>(),
    ) {
        let params = retarget_params();
        let mut disk = Builder::new(params);
        let mut mem = Chain::memory(params);
        let g = params.genesis_hash;
        let mut scratch = Chain::memory(params);
        let mut blocks: Vec<Block> = Vec::new();
        let mut nodes = vec![g];
        for (i, (parent_ix, dt)) in shape.iter().enumerate() {
            let parent = nodes[parent_ix.index(nodes.len())];
            let ctx = scratch.header_context(&parent, NOW).unwrap();
            let ptime = scratch.record(&parent).unwrap().header.time;
            let cb = coinbase(ctx.height, block_subsidy(params, ctx.height), p2pkh_lock(&key(1)), format!("n{i}").as_bytes());
            let blk = assemble(params, parent, ptime + dt, ctx.expected_bits, vec![cb]);
            scratch.process_block(blk.clone(), NOW).unwrap();
            nodes.push(blk.hash());
            blocks.push(blk);
        }
        let order = shuffled(blocks.len(), order_seed);
        for i in order {
            let a = disk.chain.process_block(blocks[i].clone(), NOW).unwrap();
            let b = mem.process_block(blocks[i].clone(), NOW).unwrap();
            prop_assert_eq!(format!("{:?}", std::mem::discriminant(&a)), format!("{:?}", std::mem::discriminant(&b)));
            prop_assert_eq!(event_keys(&a), event_keys(&b));
            prop_assert_eq!(disk.chain.tip(), mem.tip());
        }
        let mut tips_disk: Vec<Hash256> = disk.chain.tips().into_iter().map(|(h, _)| h).collect();
        let mut tips_mem: Vec<Hash256> = mem.tips().into_iter().map(|(h, _)| h).collect();
        tips_disk.sort();
        tips_mem.sort();
        prop_assert_eq!(tips_disk, tips_mem);
        prop_assert_eq!(disk.chain.utxo_digest().unwrap(), mem.utxo_digest().unwrap());
        let v = nodes[1 + victim.index(nodes.len() - 1)];
        prop_assert_eq!(events_of(&disk.chain.invalidate_block(&v).unwrap()), events_of(&mem.invalidate_block(&v).unwrap()));
        prop_assert_eq!(disk.chain.tip(), mem.tip());
        prop_assert_eq!(events_of(&disk.chain.reconsider_block(&v).unwrap()), events_of(&mem.reconsider_block(&v).unwrap()));
        prop_assert_eq!(disk.chain.tip(), mem.tip());
        prop_assert_eq!(disk.chain.utxo_digest().unwrap(), mem.utxo_digest().unwrap());
        prop_assert!(mem.store().is_memory() && !disk.chain.store().is_memory());
    }
}

// ---- Review findings (regression tests) -----------------------------------------------------

fn review_child(chain: &Chain, parent: &Hash256, tag: &[u8], value: Option<Amount>) -> Block {
    let p = Network::Regtest.params();
    let ctx = chain.header_context(parent, NOW).unwrap();
    let ptime = chain.record(parent).unwrap().header.time;
    let v = value.unwrap_or_else(|| block_subsidy(p, ctx.height));
    assemble(
        p,
        *parent,
        ptime + 5,
        ctx.expected_bits,
        vec![coinbase(ctx.height, v, p2pkh_lock(&key(1)), tag)],
    )
}

fn review_extend(chain: &mut Chain, parent: Hash256, n: usize, tag: &[u8]) -> Vec<Hash256> {
    let mut out = Vec::new();
    let mut prev = parent;
    for _ in 0..n {
        let b = review_child(chain, &prev, tag, None);
        prev = b.hash();
        chain.process_block(b, NOW).unwrap();
        out.push(prev);
    }
    out
}

fn params() -> &'static Params {
    Network::Regtest.params()
}

/// A block received while its parent is invalidated is refused without being indexed (its
/// body is not kept). reconsiderblock must not wedge the chain on it; once reconsidered, the
/// block is welcome again. (Review finding: it used to become a body-less candidate.)
#[test]
fn reconsider_never_makes_a_bodyless_block_a_candidate() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = Chain::open(dir.path(), params()).unwrap();
    let g = params().genesis_hash;
    let main = review_extend(&mut chain, g, 2, b"main");
    chain.invalidate_block(&main[1]).unwrap();
    assert_eq!(chain.tip().hash, main[0]);
    let c = review_child(&chain, &main[1], b"c", None);
    assert!(matches!(chain.process_block(c.clone(), NOW), Err(ChainError::KnownInvalid { .. })));

    let r = chain.reconsider_block(&main[1]);
    assert!(r.is_ok(), "reconsiderblock failed: {:?}", r.err().map(|e| e.to_string()));
    assert_eq!(chain.tip().hash, main[1]);
    chain.process_block(c.clone(), NOW).unwrap();
    assert_eq!(chain.tip().hash, c.hash());
}

/// Same set-up: after reconsider the node keeps accepting valid blocks and reopens.
#[test]
fn after_reconsider_the_node_accepts_blocks_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut chain = Chain::open(dir.path(), params()).unwrap();
        let g = params().genesis_hash;
        let main = review_extend(&mut chain, g, 2, b"main");
        chain.invalidate_block(&main[1]).unwrap();
        let c = review_child(&chain, &main[1], b"c", None);
        let _ = chain.process_block(c, NOW);
        let _ = chain.reconsider_block(&main[1]);
        let tip = chain.tip().hash;
        let next = review_child(&chain, &tip, b"next", None);
        chain.process_block(next, NOW).unwrap();
    }
    let reopened = Chain::open(dir.path(), params());
    assert!(reopened.is_ok(), "reopen: {:?}", reopened.err().map(|e| e.to_string()));
}

/// Active A1-A2; an equal-work rival B1-B2 arrives later (tip stays A2, first seen). An
/// invalid B3 makes the node reorganise and fail at B3: it must fall back to A2, not stay on
/// the later-seen equal-work B2.
#[test]
fn failed_reorg_falls_back_to_the_old_tip_not_an_equal_work_rival() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = Chain::open(dir.path(), params()).unwrap();
    let g = params().genesis_hash;
    let a = review_extend(&mut chain, g, 2, b"a");
    let b = review_extend(&mut chain, g, 2, b"b");
    assert_eq!(chain.tip().hash, a[1]);
    assert_eq!(chain.record(&a[1]).unwrap().chain_work, chain.record(&b[1]).unwrap().chain_work);
    let over = Amount::from_sat(block_subsidy(params(), 3).to_sat() + 1).unwrap();
    let bad = review_child(&chain, &b[1], b"bad", Some(over));
    chain.process_block(bad.clone(), NOW).unwrap();
    assert!(chain.record(&bad.hash()).unwrap().status.is_failed());
    assert_eq!(chain.tip().hash, a[1], "fell back to the later-seen equal-work rival");
}
