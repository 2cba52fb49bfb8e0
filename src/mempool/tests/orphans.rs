//! Orphans (kept, bounded, expired, promoted) and expiry of pool entries.

use super::*;

/// A parent spending a fresh coin and a child spending the parent's output.
fn family(fx: &mut Fx) -> (Transaction, Transaction) {
    let coin = fx.fund(100_000);
    let parent = pay(&[coin], &[90_000]);
    let child = pay(&[out(&parent, 0)], &[80_000]);
    (parent, child)
}

#[test]
fn orphan_is_kept_and_promoted_with_its_own_orphans_when_the_parent_arrives() {
    let mut fx = Fx::new();
    let (parent, child) = family(&mut fx);
    let grandchild = pay(&[out(&child, 0)], &[70_000]);
    assert_eq!(
        fx.accept(grandchild.clone()).unwrap(),
        Accepted::Orphan { txid: grandchild.txid(), missing_parents: vec![child.txid()] }
    );
    assert_eq!(
        fx.accept(child.clone()).unwrap(),
        Accepted::Orphan { txid: child.txid(), missing_parents: vec![parent.txid()] }
    );
    assert_eq!(fx.accept(child.clone()).unwrap_err(), MempoolError::AlreadyOrphan { txid: child.txid() });
    assert!(fx.pool.is_orphan(&child.txid()) && !fx.pool.contains(&child.txid()));
    assert_eq!((fx.pool.orphan_count(), fx.pool.len()), (2, 0));

    let a = fx.add(parent.clone());
    assert_eq!(a.promoted, vec![child.txid(), grandchild.txid()]);
    assert_eq!(fx.pool.txids(), vec![parent.txid(), child.txid(), grandchild.txid()]);
    assert_eq!(fx.pool.orphan_count(), 0);
}

#[test]
fn invalid_orphan_is_dropped_when_its_parent_arrives() {
    let mut fx = Fx::new();
    let (parent, mut child) = family(&mut fx);
    child.inputs[0].unlock.0[10] ^= 1;
    assert!(matches!(fx.accept(child.clone()).unwrap(), Accepted::Orphan { .. }));
    assert!(fx.add(parent).promoted.is_empty());
    assert_eq!((fx.pool.orphan_count(), fx.pool.len()), (0, 1));
}

#[test]
fn orphan_pool_is_bounded_by_count_and_bytes_dropping_the_oldest() {
    let mut fx = Fx::with(MempoolConfig { max_orphans: 2, ..MempoolConfig::default() });
    let orphans: Vec<Transaction> = (0..3).map(|_| family(&mut fx).1).collect();
    for o in &orphans {
        assert!(matches!(fx.accept(o.clone()).unwrap(), Accepted::Orphan { .. }));
    }
    assert_eq!(fx.pool.orphan_count(), 2);
    assert!(!fx.pool.is_orphan(&orphans[0].txid()));
    assert!(fx.pool.is_orphan(&orphans[1].txid()) && fx.pool.is_orphan(&orphans[2].txid()));

    let s = size_of(1, 1);
    let mut fx = Fx::with(MempoolConfig { max_orphan_bytes: 2 * s + 10, ..MempoolConfig::default() });
    let orphans: Vec<Transaction> = (0..3).map(|_| family(&mut fx).1).collect();
    for o in &orphans {
        fx.accept(o.clone()).unwrap();
    }
    assert_eq!((fx.pool.orphan_count(), fx.pool.info(NOW).orphan_bytes), (2, 2 * s));
    assert!(!fx.pool.is_orphan(&orphans[0].txid()));
    // One transaction larger than the whole orphan pool is refused outright.
    let coin = fx.fund(100_000);
    let big_parent = pay(&[coin], &[10_000; 3]);
    let big = pay(&[out(&big_parent, 0), out(&big_parent, 1), out(&big_parent, 2)], &[29_000]);
    assert_eq!(
        fx.accept(big.clone()).unwrap_err(),
        MempoolError::OrphanTooLarge { size: big.encoded_size(), max: 2 * s + 10 }
    );
}

#[test]
fn orphans_expire() {
    let mut fx = Fx::new();
    let (_, first) = family(&mut fx);
    fx.accept(first.clone()).unwrap();
    fx.pool.expire(NOW + 20 * 60 - 1);
    assert_eq!(fx.pool.orphan_count(), 1);
    fx.pool.expire(NOW + 20 * 60);
    assert_eq!(fx.pool.orphan_count(), 0);
    // Expiry also runs when a new orphan arrives.
    fx.accept(first.clone()).unwrap();
    let (_, second) = family(&mut fx);
    fx.accept_at(second.clone(), NOW + 3600).unwrap();
    assert!(!fx.pool.is_orphan(&first.txid()) && fx.pool.is_orphan(&second.txid()));
}

#[test]
fn orphan_is_promoted_when_a_block_confirms_its_parent() {
    let mut fx = Fx::new();
    let (parent, child) = family(&mut fx);
    fx.accept(child.clone()).unwrap();
    // The block confirms the parent: the UTXO set now holds its output.
    fx.utxos.coins.remove(&parent.inputs[0].prevout);
    fx.utxos.coins.insert(out(&parent, 0).0, Coin { out: txout(90_000), height: 101, is_coinbase: false });
    fx.utxos.height = 101;
    let update = fx.pool.block_connected(&block_of(101, vec![parent]), &fx.utxos, NOW);
    assert_eq!(update.promoted, vec![child.txid()]);
    assert_eq!(fx.pool.txids(), vec![child.txid()]);
}

#[test]
fn entries_expire_with_their_descendants() {
    let mut fx = Fx::new();
    let (parent, child) = family(&mut fx);
    let other = pay(&[fx.fund(100_000)], &[90_000]);
    fx.accept_at(parent.clone(), NOW).unwrap();
    fx.accept_at(child.clone(), NOW + 100).unwrap();
    fx.accept_at(other.clone(), NOW + 1000).unwrap();
    let age = 14 * 86_400;
    assert!(fx.pool.expire(NOW + age - 1).is_empty());
    let removed = fx.pool.expire(NOW + age);
    assert_eq!(sorted(removed), sorted(vec![parent.txid(), child.txid()]));
    assert_eq!(fx.pool.txids(), vec![other.txid()]);
    fx.pool.graph.assert_consistent();
}
