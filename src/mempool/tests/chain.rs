//! The pool next to a real regtest chainstate: templates mined and connected, blocks removing
//! included and conflicting transactions, disconnected blocks' transactions coming back.

use super::*;
use crate::chain::ProcessOutcome;
use crate::consensus::validation::block_subsidy;
use crate::miner::TemplateSource;
use crate::primitives::Block;

struct Node {
    chain: Chain,
    pool: Mempool,
    _dir: tempfile::TempDir,
}

impl Node {
    /// A chain with `blocks` empty blocks on genesis (coinbases pay key 1).
    fn new(blocks: usize) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let chain = Chain::open(dir.path(), params()).unwrap();
        let pool = Mempool::new(params(), MempoolConfig::default(), chain.script_cache());
        let mut node = Node { chain, pool, _dir: dir };
        for _ in 0..blocks {
            let tip = node.chain.tip().hash;
            node.submit(node.block_on(&tip, vec![], b"main"));
        }
        node
    }

    fn block_on(&self, parent: &Hash256, txs: Vec<Transaction>, tag: &[u8]) -> Block {
        let p = params();
        let ctx = self.chain.header_context(parent, NOW).unwrap();
        let ptime = self.chain.record(parent).unwrap().header.time;
        let mut all = vec![coinbase(ctx.height, block_subsidy(p, ctx.height), lock(), tag)];
        all.extend(txs);
        assemble(p, *parent, ptime + 5, ctx.expected_bits, all)
    }

    /// Submits a block and hands the events to the pool.
    fn submit(&mut self, block: Block) -> PoolUpdate {
        match self.chain.process_block(block, NOW).unwrap() {
            ProcessOutcome::Accepted { events, .. } => self.pool.apply_events(&events, &self.chain, NOW),
            other => panic!("{other:?}"),
        }
    }

    fn accept(&mut self, tx: Transaction) -> Admission {
        let r = self.pool.accept(tx, &self.chain, NOW);
        self.pool.graph.assert_consistent();
        added(r)
    }

    /// The coinbase output of the active block at `height`.
    fn coinbase_coin(&self, height: u32) -> (OutPoint, TxOut) {
        let hash = self.chain.hash_at(height).unwrap();
        let block = self.chain.store().get_block(&hash).unwrap().unwrap();
        out(&block.block().txs[0], 0)
    }
}

#[test]
fn mined_template_carries_pool_transactions_and_connecting_it_empties_the_pool() {
    let mut node = Node::new(11);
    let cb = node.coinbase_coin(1);
    let value = cb.1.value.to_sat();
    let a = pay(&[cb], &[value - 10_000]);
    let b = pay(&[out(&a, 0)], &[value - 30_000]);
    node.accept(a.clone());
    node.accept(b.clone());
    let cache = node.chain.script_cache();
    assert!(cache.contains(&a.txid()) && cache.contains(&b.txid()), "the chain's cache got the txids");

    let template = MempoolTemplates { pool: &node.pool, lock: lock() }.template(&node.chain.tip_context(NOW));
    assert_eq!(template.txs, vec![a.clone(), b.clone()]);
    assert_eq!(template.height, 12);
    assert_eq!(template.coinbase_value.to_sat(), block_subsidy(params(), 12).to_sat() + 30_000);
    let cb = template.coinbase(0);
    let mut header = template.header(&cb);
    assert!(crate::testkit::mine(&mut header, params()));
    let update = node.submit(template.block(cb, header));
    assert_eq!(update.included, vec![a.txid(), b.txid()]);
    assert!(node.pool.is_empty());
    assert_eq!(node.chain.tip().height, 12);
    assert!(node.chain.coin(&out(&b, 0).0).unwrap().is_some());
}

#[test]
fn connected_block_removes_included_and_conflicting_transactions() {
    let mut node = Node::new(12);
    let (c1, c2, c3) = (node.coinbase_coin(1), node.coinbase_coin(2), node.coinbase_coin(3));
    let v = c1.1.value.to_sat();
    let a = pay(&[c1], &[v - 10_000]);
    let a_child = pay(&[out(&a, 0)], &[v - 20_000]);
    let c = pay(std::slice::from_ref(&c2), &[v - 10_000]);
    let c_child = pay(&[out(&c, 0)], &[v - 20_000]);
    let d = pay(&[c3], &[v - 10_000]);
    for tx in [&a, &a_child, &c, &c_child, &d] {
        node.accept(tx.clone());
    }
    // The block confirms `a` and a different spend of `c`'s coin.
    let c_rival = pay(&[c2], &[v - 5_000]);
    let tip = node.chain.tip().hash;
    let update = node.submit(node.block_on(&tip, vec![a.clone(), c_rival], b"main"));
    assert_eq!(update.included, vec![a.txid()]);
    assert_eq!(sorted(update.conflicts), sorted(vec![c.txid(), c_child.txid()]));
    assert_eq!(node.pool.txids(), vec![a_child.txid(), d.txid()]);
    let e = node.pool.entry(&a_child.txid()).unwrap();
    assert_eq!((e.ancestor_count, e.depends.len()), (1, 0), "its parent is confirmed now");
    node.pool.graph.assert_consistent();
}

#[test]
fn disconnected_block_transactions_return_to_the_pool() {
    let mut node = Node::new(12);
    let cb = node.coinbase_coin(1);
    let v = cb.1.value.to_sat();
    let a = pay(&[cb], &[v - 10_000]);
    node.accept(a.clone());
    let tip = node.chain.tip().hash;
    let block = node.block_on(&tip, vec![a.clone()], b"main");
    let hash = block.hash();
    assert_eq!(node.submit(block).included, vec![a.txid()]);
    // A pool transaction spending the now-confirmed `a`.
    let b = pay(&[out(&a, 0)], &[v - 20_000]);
    node.accept(b.clone());
    assert_eq!(node.pool.entry(&b.txid()).unwrap().ancestor_count, 1);

    let events = node.chain.invalidate_block(&hash).unwrap();
    let update = node.pool.apply_events(&events, &node.chain, NOW);
    assert_eq!(update.readded, vec![a.txid()]);
    assert!(update.dropped.is_empty());
    assert_eq!(node.pool.txids(), vec![a.txid(), b.txid()]);
    let e = node.pool.entry(&b.txid()).unwrap();
    assert_eq!((e.ancestor_count, e.depends.clone()), (2, vec![a.txid()]), "linked to its returned parent");
    assert_eq!(node.pool.entry(&a.txid()).unwrap().time, NOW);
    node.pool.graph.assert_consistent();
}

#[test]
fn reorg_keeps_still_valid_transactions_and_drops_double_spent_ones() {
    let mut node = Node::new(12);
    let fork = node.chain.tip().hash;
    let (c1, c2) = (node.coinbase_coin(1), node.coinbase_coin(2));
    let v = c1.1.value.to_sat();
    let a = pay(std::slice::from_ref(&c1), &[v - 10_000]);
    let e = pay(&[c2], &[v - 10_000]);
    node.submit(node.block_on(&fork, vec![a.clone(), e.clone()], b"one"));
    let b = pay(&[out(&a, 0)], &[v - 20_000]);
    node.accept(b.clone());

    // A longer branch from the fork spends `a`'s coin differently.
    let a_rival = pay(&[c1], &[v - 5_000]);
    let y1 = node.block_on(&fork, vec![a_rival], b"two");
    let y1_hash = y1.hash();
    node.submit(y1);
    let update = node.submit(node.block_on(&y1_hash, vec![], b"two"));
    assert_eq!(node.chain.tip().height, 14);
    assert_eq!(update.readded, vec![e.txid()]);
    assert_eq!(sorted(update.dropped), sorted(vec![a.txid(), b.txid()]));
    assert_eq!(node.pool.txids(), vec![e.txid()]);
}
