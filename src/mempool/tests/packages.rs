//! Ancestor/descendant limits, replace-by-fee, size-cap eviction, template selection.

use super::*;

/// A chain of `n` one-in-one-out spends starting at `coin`, each paying 1000 sat fee.
fn chain_of(coin: (OutPoint, TxOut), n: usize) -> Vec<Transaction> {
    let mut txs = Vec::new();
    let mut prev = coin;
    for _ in 0..n {
        let tx = pay(std::slice::from_ref(&prev), &[prev.1.value.to_sat() - 1000]);
        prev = out(&tx, 0);
        txs.push(tx);
    }
    txs
}

#[test]
fn ancestor_count_limit() {
    let mut fx = Fx::new();
    let coin = fx.fund(1_000_000);
    let txs = chain_of(coin, 26);
    for tx in &txs[..25] {
        fx.add(tx.clone());
    }
    let e = fx.accept(txs[25].clone()).unwrap_err();
    assert_eq!(e, MempoolError::TooManyAncestors { got: 26, max: 25 });
    assert_eq!(e.to_string(), "too many unconfirmed ancestors: 26 > 25");
    assert!(!e.is_peer_fault());
}

#[test]
fn ancestor_size_limit() {
    let s = size_of(1, 1);
    let max = 2 * s + 10;
    let mut fx = Fx::with(MempoolConfig { max_ancestor_size: max, ..MempoolConfig::default() });
    let coin = fx.fund(1_000_000);
    let txs = chain_of(coin, 3);
    fx.add(txs[0].clone());
    fx.add(txs[1].clone());
    assert_eq!(fx.accept(txs[2].clone()).unwrap_err(), MempoolError::AncestorsTooLarge { got: 3 * s, max });
}

#[test]
fn descendant_count_limit_counts_what_a_replacement_evicts() {
    let mut fx = Fx::new();
    let coin = fx.fund(1_000_000);
    let parent = pay(&[coin], &[30_000; 25]);
    fx.add(parent.clone());
    let children: Vec<Transaction> = (0..25).map(|i| pay(&[out(&parent, i)], &[29_000])).collect();
    for c in &children[..24] {
        fx.add(c.clone());
    }
    let e = fx.accept(children[24].clone()).unwrap_err();
    assert_eq!(e, MempoolError::TooManyDescendants { ancestor: parent.txid(), got: 26, max: 25 });
    // Replacing a child leaves the count at 25: allowed.
    let replacement = pay(&[out(&parent, 0)], &[25_000]);
    assert_eq!(fx.add(replacement).replaced, vec![children[0].txid()]);
}

#[test]
fn descendant_size_limit() {
    let mut fx = Fx::new();
    let coin = fx.fund(1_000_000);
    let parent = pay(&[coin], &[30_000, 30_000]);
    let c1 = pay(&[out(&parent, 0)], &[29_000]);
    let c2 = pay(&[out(&parent, 1)], &[29_000]);
    let max = parent.encoded_size() + c1.encoded_size() + 10;
    fx.pool.config.max_descendant_size = max;
    fx.add(parent.clone());
    fx.add(c1.clone());
    let got = parent.encoded_size() + c1.encoded_size() + c2.encoded_size();
    assert_eq!(
        fx.accept(c2).unwrap_err(),
        MempoolError::DescendantsTooLarge { ancestor: parent.txid(), got, max }
    );
}

#[test]
fn replacement_paying_more_evicts_the_conflict_and_its_descendants() {
    let mut fx = Fx::new();
    let coin = fx.fund(100_000);
    let a = pay(std::slice::from_ref(&coin), &[90_000]);
    let a_child = pay(&[out(&a, 0)], &[85_000]);
    fx.add(a.clone());
    fx.add(a_child.clone());
    let b = pay(std::slice::from_ref(&coin), &[70_000]);
    let admission = fx.add(b.clone());
    assert_eq!(sorted(admission.replaced), sorted(vec![a.txid(), a_child.txid()]));
    assert_eq!(fx.ids(), vec![b.txid()]);
    assert_eq!(fx.pool.spender(&coin.0), Some(b.txid()));
    assert_eq!(fx.pool.spender(&out(&a, 0).0), None);
}

#[test]
fn first_seen_wins_against_an_equal_fee_rate() {
    let mut fx = Fx::new();
    let coin = fx.fund(100_000);
    let a = pay(std::slice::from_ref(&coin), &[90_000]);
    fx.add(a.clone());
    // Same size and fee, different txid (another lock time).
    let b = spend_p2pkh(&key(1), &[coin], vec![txout(90_000)], 1);
    let rate = 10_000 * 1000 / a.encoded_size() as u64;
    let e = fx.accept(b).unwrap_err();
    assert_eq!(e, MempoolError::ReplacementRateTooLow { conflict: a.txid(), rate, conflict_rate: rate });
    assert!(e.to_string().starts_with(&format!("conflicts with mempool tx {}", a.txid())));
    assert_eq!(fx.ids(), vec![a.txid()]);
}

#[test]
fn replacement_with_more_fee_but_a_lower_rate_is_refused() {
    let mut fx = Fx::new();
    let coin = fx.fund(100_000);
    let a = pay(std::slice::from_ref(&coin), &[90_000]);
    fx.add(a.clone());
    let b = pay(&[coin], &[8_000; 10]); // fee 20,000 but ~3x the size
    let e = fx.accept(b.clone()).unwrap_err();
    assert_eq!(
        e,
        MempoolError::ReplacementRateTooLow {
            conflict: a.txid(),
            rate: 20_000 * 1000 / b.encoded_size() as u64,
            conflict_rate: 10_000 * 1000 / a.encoded_size() as u64,
        }
    );
}

#[test]
fn replacement_must_pay_for_everything_it_evicts_plus_its_own_relay_fee() {
    let mut fx = Fx::new();
    let coin = fx.fund(100_000);
    let a = pay(std::slice::from_ref(&coin), &[90_000]); // fee 10,000
    fx.add(a.clone());
    fx.add(pay(&[out(&a, 0)], &[85_000])); // fee 5,000
    let size = size_of(1, 1);
    let relay_fee = size as u64; // 1000 sat/kB
    let needed = 15_000 + relay_fee;
    // Higher rate and fee than `a` itself, one sat short of the rule.
    let short = pay(std::slice::from_ref(&coin), &[100_000 - (needed - 1)]);
    let e = fx.accept(short).unwrap_err();
    assert_eq!(
        e,
        MempoolError::ReplacementFeeTooLow {
            conflict: a.txid(),
            fee: needed - 1,
            needed,
            replaced_fees: 15_000,
            replaced: 2,
            relay_fee,
            size,
        }
    );
    assert_eq!(fx.pool.len(), 2);
    fx.add(pay(&[coin], &[100_000 - needed]));
    assert_eq!(fx.pool.len(), 1);
}

#[test]
fn replacement_may_evict_at_most_100_transactions() {
    let mut fx = Fx::new();
    let mut coins = Vec::new();
    let mut conflicts = Vec::new();
    for _ in 0..5 {
        let coin = fx.fund(300_000);
        let x = pay(std::slice::from_ref(&coin), &[10_000; 24]);
        fx.add(x.clone());
        for i in 0..24 {
            fx.add(pay(&[out(&x, i)], &[9_000]));
        }
        coins.push(coin);
        conflicts.push(x);
    }
    assert_eq!(fx.pool.len(), 125);
    let e = fx.accept(pay(&coins, &[500_000])).unwrap_err();
    assert_eq!(e, MempoolError::TooManyReplacements { conflict: conflicts[0].txid(), got: 125, max: 100 });
    // Four conflicts with their descendants are exactly 100.
    let a = fx.add(pay(&coins[..4], &[500_000]));
    assert_eq!(a.replaced.len(), 100);
    assert_eq!(fx.pool.len(), 26);
}

#[test]
fn replacement_may_not_spend_a_transaction_it_evicts() {
    let mut fx = Fx::new();
    let coin = fx.fund(100_000);
    let a = pay(std::slice::from_ref(&coin), &[90_000]);
    fx.add(a.clone());
    let b = pay(&[coin, out(&a, 0)], &[10_000]);
    assert_eq!(fx.accept(b).unwrap_err(), MempoolError::SpendsConflictingTx { conflict: a.txid() });
}

/// A pool capped at exactly three one-in-one-out transactions.
fn capped_at_three() -> Fx {
    let mut probe = Fx::new();
    let coin = probe.fund(100_000);
    probe.add(pay(&[coin], &[99_000]));
    let usage = probe.pool.usage();
    Fx::with(MempoolConfig { max_bytes: 3 * usage, ..MempoolConfig::default() })
}

#[test]
fn size_cap_evicts_the_lowest_fee_rate_and_raises_the_minimum_fee() {
    let mut fx = capped_at_three();
    let s = size_of(1, 1) as u64;
    let tx_with_fee = |fx: &mut Fx, fee: u64| {
        let c = fx.fund(100_000);
        pay(&[c], &[100_000 - fee])
    };
    let low = tx_with_fee(&mut fx, 1_000);
    let mid = tx_with_fee(&mut fx, 5_000);
    let high = tx_with_fee(&mut fx, 20_000);
    for tx in [&low, &mid, &high] {
        assert!(fx.add(tx.clone()).evicted.is_empty());
    }
    let high2 = tx_with_fee(&mut fx, 20_000);
    assert_eq!(fx.add(high2.clone()).evicted, vec![low.txid()]);
    assert_eq!(fx.ids(), sorted(vec![mid.txid(), high.txid(), high2.txid()]));

    // The evicted rate plus the increment is now the minimum.
    let min_rate = 1_000 * 1000 / s + 1000;
    assert_eq!(fx.pool.info(NOW).mempool_min_fee, min_rate);
    let cheap = tx_with_fee(&mut fx, 1_000);
    assert_eq!(
        fx.accept(cheap).unwrap_err(),
        MempoolError::BelowMempoolMinFee { rate: 1_000 * 1000 / s, min_rate }
    );
    // Above the minimum but still the lowest: it would be evicted at once, so it is refused
    // and nothing else is evicted.
    let before = fx.ids();
    let lowest = tx_with_fee(&mut fx, 1_500);
    let e = fx.accept(lowest).unwrap_err();
    assert_eq!(e, MempoolError::MempoolFull { rate: 1_500 * 1000 / s, max_bytes: fx.pool.config.max_bytes });
    assert_eq!(fx.ids(), before);
    // The minimum decays: halved after 12 hours, back to the relay minimum after days.
    assert_eq!(fx.pool.info(NOW + 12 * 3600).mempool_min_fee, min_rate / 2);
    assert_eq!(fx.pool.info(NOW + 10 * 86_400).mempool_min_fee, 1000);
}

#[test]
fn eviction_takes_a_package_with_its_descendants_and_a_paying_child_protects_its_parent() {
    // A low parent whose child pays well is kept; a medium independent tx goes instead.
    let mut fx = capped_at_three();
    let p_coin = fx.fund(100_000);
    let parent = pay(&[p_coin], &[99_000]);
    let child = pay(&[out(&parent, 0)], &[69_000]);
    let m_coin = fx.fund(100_000);
    let medium = pay(&[m_coin], &[95_000]);
    for tx in [&parent, &child, &medium] {
        fx.add(tx.clone());
    }
    let n_coin = fx.fund(100_000);
    assert_eq!(fx.add(pay(&[n_coin], &[94_000])).evicted, vec![medium.txid()]);

    // A low parent with a barely better child is evicted together with the child.
    let mut fx = capped_at_three();
    let p_coin = fx.fund(100_000);
    let parent = pay(&[p_coin], &[99_000]);
    let child = pay(&[out(&parent, 0)], &[97_800]);
    let h_coin = fx.fund(100_000);
    for tx in [&parent, &child, &pay(&[h_coin], &[80_000])] {
        fx.add(tx.clone());
    }
    let h2 = fx.fund(100_000);
    assert_eq!(fx.add(pay(&[h2], &[80_000])).evicted, vec![parent.txid(), child.txid()]);
}

#[test]
fn template_selects_by_ancestor_fee_rate_with_parents_first() {
    let mut fx = Fx::new();
    let p_coin = fx.fund(100_000);
    let parent = pay(&[p_coin], &[99_000]); // 1,000 sat: low
    let child = pay(&[out(&parent, 0)], &[79_000]); // 20,000 sat: high
    let m_coin = fx.fund(100_000);
    let medium = pay(&[m_coin], &[92_000]); // 8,000 sat: above the parent alone, below the pair
    for tx in [&medium, &parent, &child] {
        fx.add(tx.clone());
    }
    let p = params();
    let (all, fees) = fx.pool.select(p.max_block_size, p.max_block_sigops);
    assert_eq!(all, vec![parent.clone(), child.clone(), medium.clone()]);
    assert_eq!(fees.to_sat(), 29_000);

    // Room for two: the pair wins over the medium tx, parent first.
    let s = size_of(1, 1);
    let room = 80 + 4 + COINBASE_RESERVED_SIZE + 2 * s;
    let (two, fees) = fx.pool.select(room, p.max_block_sigops);
    assert_eq!(two, vec![parent.clone(), child.clone()]);
    assert_eq!(fees.to_sat(), 21_000);
    // Room for one: the pair does not fit, the medium tx does.
    let (one, _) = fx.pool.select(room - s, p.max_block_sigops);
    assert_eq!(one, vec![medium]);
    // Sigops: each P2PKH output is one; with room for one tx's sigops beyond the reserve.
    let (by_sigops, _) = fx.pool.select(p.max_block_size, COINBASE_RESERVED_SIGOPS + 1);
    assert_eq!(by_sigops.len(), 1);
}
