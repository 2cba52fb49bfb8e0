//! Saving and reloading the pool.

use super::*;

/// A pool with a parent, its child (entered later) and an independent tx; returns them.
fn populated(fx: &mut Fx) -> Vec<Transaction> {
    let coin = fx.fund(100_000);
    let parent = pay(&[coin], &[90_000]);
    let child = pay(&[out(&parent, 0)], &[80_000]);
    let other = pay(&[fx.fund(50_000)], &[45_000]);
    fx.accept_at(parent.clone(), NOW - 500).unwrap();
    fx.accept_at(child.clone(), NOW - 100).unwrap();
    fx.accept_at(other.clone(), NOW - 300).unwrap();
    vec![parent, child, other]
}

#[test]
fn pool_survives_save_and_load_with_entry_times() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mempool.dat");
    let mut fx = Fx::new();
    let txs = populated(&mut fx);
    assert_eq!(fx.pool.save(&path).unwrap(), 3);
    assert!(!dir.path().join("mempool.dat.tmp").exists(), "written through a renamed temp file");

    let mut restarted = Fx::new();
    restarted.utxos = fx.utxos.clone();
    let stats = restarted.pool.load(&path, &restarted.utxos, NOW).unwrap();
    assert_eq!(stats, LoadStats { read: 3, accepted: 3, ..LoadStats::default() });
    assert_eq!(restarted.pool.txids(), fx.pool.txids());
    for tx in &txs {
        let (a, b) = (fx.pool.entry(&tx.txid()).unwrap(), restarted.pool.entry(&tx.txid()).unwrap());
        assert_eq!(a, b);
    }
    restarted.pool.graph.assert_consistent();
    // Loading again: everything is already there.
    let again = restarted.pool.load(&path, &restarted.utxos, NOW).unwrap();
    assert_eq!(again.already, 3);
}

#[test]
fn load_skips_expired_and_no_longer_valid_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mempool.dat");
    let mut fx = Fx::new();
    let txs = populated(&mut fx);
    fx.pool.save(&path).unwrap();

    // Meanwhile `other`'s coin was spent by a block: it fails; the parent expires, so the
    // child (now missing its parent) fails too.
    let mut restarted = Fx::new();
    restarted.utxos = fx.utxos.clone();
    restarted.utxos.coins.remove(&txs[2].inputs[0].prevout);
    let later = NOW - 500 + 14 * 86_400;
    let stats = restarted.pool.load(&path, &restarted.utxos, later).unwrap();
    assert_eq!(stats, LoadStats { read: 3, accepted: 0, expired: 1, already: 0, failed: 2 });
    assert!(restarted.pool.is_empty() && restarted.pool.orphan_count() == 0);
}

#[test]
fn corrupt_truncated_or_missing_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mempool.dat");
    let mut fx = Fx::new();
    populated(&mut fx);
    fx.pool.save(&path).unwrap();
    let good = std::fs::read(&path).unwrap();
    let mut fresh = Fx::new();

    let missing = dir.path().join("absent.dat");
    assert_eq!(fresh.pool.load(&missing, &fx.utxos, NOW).unwrap(), LoadStats::default());

    let mut flipped = good.clone();
    flipped[40] ^= 1;
    for (name, bytes) in [
        ("flipped", flipped),
        ("truncated", good[..good.len() - 7].to_vec()),
        ("tiny", vec![1, 2, 3]),
        ("empty", vec![]),
    ] {
        std::fs::write(&path, &bytes).unwrap();
        match fresh.pool.load(&path, &fx.utxos, NOW) {
            Err(MempoolError::CorruptFile { .. }) => {}
            other => panic!("{name}: {other:?}"),
        }
        assert!(fresh.pool.is_empty(), "{name}: nothing admitted from a corrupt file");
    }
    // A well-formed checksum over a bad body (hostile count) is still refused.
    let mut body = b"QMEMPOOL".to_vec();
    body.extend_from_slice(&1u32.to_le_bytes());
    body.extend_from_slice(&u32::MAX.to_le_bytes());
    let sum = sha256d(&body);
    body.extend_from_slice(&sum.0);
    std::fs::write(&path, &body).unwrap();
    assert!(matches!(fresh.pool.load(&path, &fx.utxos, NOW), Err(MempoolError::CorruptFile { .. })));
}
