//! The payout methods, as pure functions over shares (Rosenfeld, "Analysis of Bitcoin
//! Pooled Mining Reward Systems", 2011, in the names used there):
//! - **pps**: each share earns `reward × share difficulty / network difficulty` when it is
//!   submitted, whether or not the pool finds blocks (the pool carries the variance).
//! - **prop** (proportional): a block's reward is split over the shares of its round (since
//!   the previous block) by difficulty. Open to pool hopping.
//! - **pplns**: a block's reward is split over the last N difficulty units of shares
//!   (N = [`super::accounting::PPLNS_FACTOR`] × the network difficulty), the oldest share cut
//!   to fit.
//! - **score** (Slush): a share submitted `t` seconds into the round weighs
//!   `difficulty × e^(t / c)` (c = [`super::accounting::SCORE_C`] seconds), so late shares
//!   weigh more and hopping out of a long round does not pay.
//!
//! Amounts are base units; each worker's part is rounded down and what rounding leaves goes
//! to the pool.

use super::accounting::Share;
use std::collections::BTreeMap;

/// PPS: what one share earns, `reward × diff / net_diff`, rounded down.
pub fn pps(s: &Share) -> u64 {
    if s.net_diff <= 0.0 {
        return 0;
    }
    (s.reward as f64 * (s.diff / s.net_diff)).floor().min(s.reward as f64) as u64
}

/// Splits `reward` by weight, each part rounded down; workers in name order.
fn split(weights: BTreeMap<String, f64>, reward: u64) -> Vec<(String, u64)> {
    let total: f64 = weights.values().sum();
    if total <= 0.0 {
        return Vec::new();
    }
    weights
        .into_iter()
        .map(|(w, x)| (w, ((reward as f64) * (x / total)).floor() as u64))
        .filter(|(_, a)| *a > 0)
        .collect()
}

/// Proportional: `reward` over the round's shares by difficulty.
pub fn prop(round: &[Share], reward: u64) -> Vec<(String, u64)> {
    let mut w = BTreeMap::new();
    for s in round {
        *w.entry(s.worker.clone()).or_insert(0.0) += s.diff;
    }
    split(w, reward)
}

/// PPLNS: `reward` over the newest shares whose difficulties add up to `n` (the oldest one
/// counted only in part), by difficulty.
pub fn pplns(shares: &[Share], n: f64, reward: u64) -> Vec<(String, u64)> {
    let mut w = BTreeMap::new();
    let mut left = n;
    for s in shares.iter().rev() {
        if left <= 0.0 {
            break;
        }
        let take = s.diff.min(left);
        *w.entry(s.worker.clone()).or_insert(0.0) += take;
        left -= take;
    }
    split(w, reward)
}

/// Score: `reward` over the round's shares weighed `diff × e^(t/c)`, t = seconds since the
/// round's first share (computed relative to the last share, so no overflow).
pub fn score(round: &[Share], c: f64, reward: u64) -> Vec<(String, u64)> {
    let Some(last) = round.last() else { return Vec::new() };
    let mut w = BTreeMap::new();
    for s in round {
        let t = (s.time_ms as f64 - last.time_ms as f64) / 1000.0;
        *w.entry(s.worker.clone()).or_insert(0.0) += s.diff * (t / c).exp();
    }
    split(w, reward)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(worker: &str, diff: f64, t: u64) -> Share {
        Share {
            worker: worker.into(),
            diff,
            net_diff: 100.0,
            reward: 1_000_000,
            time_ms: t * 1000,
            credit: 0,
        }
    }

    #[test]
    fn pps_pays_each_share_its_expected_value() {
        assert_eq!(pps(&share("a", 1.0, 0)), 10_000);
        assert_eq!(pps(&share("a", 0.5, 0)), 5_000);
        assert_eq!(pps(&Share { net_diff: 3.0, ..share("a", 1.0, 0) }), 333_333, "rounded down");
        assert_eq!(pps(&Share { net_diff: 0.0, ..share("a", 1.0, 0) }), 0);
        assert_eq!(pps(&share("a", 1000.0, 0)), 1_000_000, "never more than the reward");
    }

    #[test]
    fn prop_splits_the_round_by_difficulty() {
        let round = [share("a", 1.0, 0), share("b", 2.0, 1), share("a", 1.0, 2)];
        assert_eq!(prop(&round, 1_000_000), vec![("a".into(), 500_000), ("b".into(), 500_000)]);
        assert_eq!(
            prop(&round[..2], 1_000),
            vec![("a".into(), 333), ("b".into(), 666)],
            "rounding to the pool"
        );
        assert!(prop(&[], 1_000).is_empty());
    }

    #[test]
    fn pplns_counts_only_the_last_n_difficulty() {
        let shares = [share("old", 5.0, 0), share("a", 2.0, 1), share("b", 1.0, 2)];
        // n = 4: b 1, a 2, old 1 of its 5.
        assert_eq!(
            pplns(&shares, 4.0, 1_000_000),
            vec![("a".into(), 500_000), ("b".into(), 250_000), ("old".into(), 250_000)]
        );
        assert_eq!(pplns(&shares, 3.0, 900), vec![("a".into(), 600), ("b".into(), 300)]);
    }

    #[test]
    fn score_weighs_late_shares_more() {
        // Shares c seconds apart weigh e times more each: a at 0, b at c.
        let round = [share("a", 1.0, 0), share("b", 1.0, 300)];
        let got = score(&round, 300.0, 1_000_000);
        let e = std::f64::consts::E;
        let a = (1_000_000.0 / (1.0 + e)).floor() as u64;
        let b = (1_000_000.0 * e / (1.0 + e)).floor() as u64;
        assert_eq!(got, vec![("a".into(), a), ("b".into(), b)]);
        assert_eq!(score(&round[..1], 300.0, 7), vec![("a".into(), 7)]);
    }
}
