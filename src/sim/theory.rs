//! Closed forms the experiments are checked against. `q` is the attacker's share of the hash
//! rate, `p = 1 - q`, `z` the merchant's confirmations (the payment's block is the first).

/// C(n, k) as a float (0 when k > n).
fn binomial(n: i64, k: i64) -> f64 {
    if k < 0 || n < 0 || k > n {
        return if k == 0 { 1.0 } else { 0.0 };
    }
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// Nakamoto's whitepaper §11: attacker progress while the honest chain finds `z` blocks is
/// taken as Poisson with mean `z q / p`, and catching up (a tie) from `k` behind has chance
/// `(q/p)^k`.
pub fn nakamoto(q: f64, z: u32) -> f64 {
    let p = 1.0 - q;
    if q >= p {
        return 1.0;
    }
    let lambda = z as f64 * q / p;
    let mut sum = 1.0;
    let mut poisson = (-lambda).exp();
    for k in 0..=z {
        if k > 0 {
            poisson *= lambda / k as f64;
        }
        sum -= poisson * (1.0 - (q / p).powi((z - k) as i32));
    }
    sum.max(0.0)
}

/// Rosenfeld (2014), "Analysis of hashrate-based double-spending", eq. (1): the exact
/// negative-binomial race, where drawing level (a tie, or one pre-mined block) is success.
pub fn rosenfeld(q: f64, z: u32) -> f64 {
    let p = 1.0 - q;
    if q >= p || z == 0 {
        return 1.0;
    }
    let z = z as i64;
    let mut sum = 0.0;
    for m in 0..=z {
        sum += binomial(m + z - 1, m)
            * (p.powi(z as i32) * q.powi(m as i32) - q.powi(z as i32) * p.powi(m as i32));
    }
    1.0 - sum
}

/// The same exact race under quarry's rule: the first-seen branch keeps a tie, so the attacker
/// must get strictly ahead, one block more than [`rosenfeld`] asks:
/// `1 - sum_{m=0..z} C(m+z-1, m) p^z q^m (1 - (q/p)^(z-m+1))`.
pub fn strictly_ahead(q: f64, z: u32) -> f64 {
    let p = 1.0 - q;
    if q >= p {
        return 1.0;
    }
    let z = z as i64;
    let mut sum = 0.0;
    for m in 0..=z {
        let pm = binomial(m + z - 1, m) * p.powi(z as i32) * q.powi(m as i32);
        sum += pm * (1.0 - (q / p).powi((z - m + 1) as i32));
    }
    1.0 - sum
}

/// Eyal and Sirer (2014), eq. (8): the selfish pool's share of the main chain's blocks, for
/// hash share `alpha` and `gamma`, the share of honest power that mines on the pool's block
/// in a tie.
pub fn selfish_revenue(alpha: f64, gamma: f64) -> f64 {
    let a = alpha;
    let num = a * (1.0 - a).powi(2) * (4.0 * a + gamma * (1.0 - 2.0 * a)) - a.powi(3);
    let den = 1.0 - a * (1.0 + (2.0 - a) * a);
    num / den
}

/// The share of blocks that go stale when each block takes `d` seconds to reach the others
/// and blocks come every `t` seconds on average: another block is found within the delay.
pub fn stale_rate(d: f64, t: f64) -> f64 {
    1.0 - (-d / t).exp()
}

/// The modified Bessel function I0 (series; fine for the arguments used here, < 100).
fn bessel_i0(x: f64) -> f64 {
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 1..500 {
        term *= (x / 2.0) * (x / 2.0) / (k as f64 * k as f64);
        sum += term;
        if term < sum * 1e-16 {
            break;
        }
    }
    sum
}

/// The chance that two sides of a partition, mining Poisson blocks with means `a` and `b`
/// during it, both mine and end with the same number of blocks (a Skellam distribution at 0,
/// less the chance that neither mined): then neither side's branch has more work at the heal,
/// each keeps its first-seen tip, and the network waits for the next block to break the tie.
pub fn partition_tie(a: f64, b: f64) -> f64 {
    (-(a + b)).exp() * (bessel_i0(2.0 * (a * b).sqrt()) - 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() < tol
    }

    #[test]
    fn the_formulas_give_the_published_values() {
        // Whitepaper §11 table: q = 0.1, z = 5 -> 0.0009137; q = 0.3, z = 5 -> 0.1773523.
        assert!(close(nakamoto(0.1, 5), 0.0009137, 1e-7), "{}", nakamoto(0.1, 5));
        assert!(close(nakamoto(0.3, 5), 0.1773523, 1e-7), "{}", nakamoto(0.3, 5));
        // The figures: q = 0.3, z = 2: tie suffices 0.432, strictly ahead 0.233.
        assert!(close(rosenfeld(0.3, 2), 0.432, 1e-3), "{}", rosenfeld(0.3, 2));
        assert!(close(strictly_ahead(0.3, 2), 0.233, 1e-3), "{}", strictly_ahead(0.3, 2));
        // Zero confirmations under the strict rule: gambler's ruin from level, q/p.
        assert!(close(strictly_ahead(0.25, 0), 1.0 / 3.0, 1e-12));
        // Eyal-Sirer: the threshold at gamma = 0 is 1/3, at gamma = 1/2 it is 1/4.
        assert!(close(selfish_revenue(1.0 / 3.0, 0.0), 1.0 / 3.0, 1e-12));
        assert!(close(selfish_revenue(0.25, 0.5), 0.25, 1e-12));
        assert!(close(partition_tie(0.0, 0.0), 0.0, 1e-12));
        assert!(close(partition_tie(1.0, 1.0), (-2.0f64).exp() * (2.2795853023360673 - 1.0), 1e-12));
    }
}
