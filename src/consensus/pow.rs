//! Proof of work: compact targets, block work, and the per-block ASERT retarget.

use super::params::Params;
use super::ConsensusError;
use crate::primitives::{Hash256, U256};

/// Expands a compact target ("bits"): the high byte is a byte length, the low 23 bits the
/// mantissa, bit 23 a sign (Bitcoin's nBits). Negative, zero and >256-bit values are errors.
pub fn target_from_compact(bits: u32) -> Result<U256, ConsensusError> {
    let size = bits >> 24;
    let word = bits & 0x007f_ffff;
    let bad = |reason: &'static str| ConsensusError::BadBits { bits, reason };
    if word != 0 && bits & 0x0080_0000 != 0 {
        return Err(bad("negative target"));
    }
    if word != 0 && (size > 34 || (word > 0xff && size > 33) || (word > 0xffff && size > 32)) {
        return Err(bad("target overflows 256 bits"));
    }
    let target = if size <= 3 {
        U256::from_u64((word >> (8 * (3 - size))) as u64)
    } else {
        U256::from_u64(word as u64).shl(8 * (size - 3))
    };
    if target.is_zero() {
        return Err(bad("zero target"));
    }
    Ok(target)
}

/// Compresses a target to compact form, rounding down (Bitcoin's GetCompact).
pub fn target_to_compact(target: &U256) -> u32 {
    let mut size = target.bits().div_ceil(8);
    let mut compact = if size <= 3 {
        (target.low_u64() << (8 * (3 - size))) as u32
    } else {
        target.shr(8 * (size - 3)).low_u64() as u32
    };
    if compact & 0x0080_0000 != 0 {
        compact >>= 8;
        size += 1;
    }
    compact | (size << 24)
}

/// Expected number of hashes to meet `target`: `2^256 / (target + 1)`, computed as
/// `(!target / (target + 1)) + 1` so it fits in 256 bits.
pub fn block_work(target: &U256) -> U256 {
    match target.checked_add(&U256::ONE) {
        None => U256::ONE,
        Some(t1) => target.not().checked_div(&t1).expect("t1 > 0").saturating_add(&U256::ONE),
    }
}

/// Checks `hash <= target(bits)` and `target <= pow_limit`.
pub fn check_proof_of_work(hash: &Hash256, bits: u32, pow_limit: &U256) -> Result<(), ConsensusError> {
    let target = target_from_compact(bits)?;
    if target > *pow_limit {
        return Err(ConsensusError::BadBits {
            bits,
            reason: "target above the network's proof-of-work limit",
        });
    }
    if U256::from_le_bytes(&hash.0) > target {
        return Err(ConsensusError::HighHash { hash: *hash, target: target_to_compact(&target) });
    }
    Ok(())
}

/// ASERT (absolutely scheduled exponentially rising targets, aserti3-2d): the target for a
/// block whose parent is `height_diff` blocks and `time_diff` seconds after the anchor is
/// `anchor_target * 2^((time_diff - spacing * height_diff) / halflife)`, evaluated in 16.16
/// fixed point with a cubic approximation of `2^x` on `[0, 1)`. Integer math only, so every
/// node computes the same bits. Clamped to `[1, pow_limit]`.
pub fn asert_target(
    anchor_target: &U256,
    time_diff: i64,
    height_diff: i64,
    spacing: i64,
    halflife: i64,
    pow_limit: &U256,
) -> U256 {
    let exponent: i64 = (time_diff - spacing * height_diff).saturating_mul(65536) / halflife;
    let shifts = exponent >> 16; // floor division
    let frac = (exponent & 0xffff) as u64;
    let factor: u64 = 65536
        + ((195_766_423_245_049u128 * frac as u128
            + 971_821_376u128 * (frac * frac) as u128
            + 5127u128 * (frac * frac * frac) as u128
            + (1u128 << 47))
            >> 48) as u64;
    // (anchor * factor) can exceed 256 bits, so keep it as hi * 2^16 + lo with
    // hi = floor(anchor * factor / 2^16) and lo < 2^16, then apply 2^shifts / 2^16 exactly.
    let a_hi = anchor_target.shr(16);
    let a_lo = anchor_target.low_u64() & 0xffff;
    let lo_prod = a_lo * factor; // < 2^33
    let Some(hi) = a_hi.checked_mul_u64(factor).and_then(|h| h.checked_add(&U256::from_u64(lo_prod >> 16)))
    else {
        return *pow_limit;
    };
    let lo = lo_prod & 0xffff;
    let t = if shifts < 0 {
        hi.shr((-shifts).min(256) as u32)
    } else {
        let s = shifts.min(256) as u32;
        if s > 0 && hi.bits() + s > 256 {
            return *pow_limit;
        }
        let low_part = if s >= 16 { U256::from_u64(lo).shl(s - 16) } else { U256::from_u64(lo >> (16 - s)) };
        match hi.shl(s).checked_add(&low_part) {
            Some(t) => t,
            None => return *pow_limit,
        }
    };
    if t.is_zero() {
        return U256::ONE;
    }
    t.min(*pow_limit)
}

/// Height of the ASERT anchor block. The schedule starts at block 1, not genesis: genesis
/// carries a fixed time from when the network was defined, and anchoring there would leave a
/// network started later forever "behind schedule" at the easiest target. Blocks 1 and 2 use
/// the genesis bits; from block 2 on, time is measured from block 1.
pub const ASERT_ANCHOR_HEIGHT: u32 = 1;

/// The bits a block at `parent_height + 1` must carry, given its parent's time and the time
/// of the anchor block ([`ASERT_ANCHOR_HEIGHT`]) on the same branch (ignored while
/// `parent_height < ASERT_ANCHOR_HEIGHT` and on networks without retargeting, which always
/// use the genesis bits).
pub fn next_bits(params: &Params, parent_height: u32, parent_time: u32, anchor_time: u32) -> u32 {
    let Some(halflife) = params.asert_halflife else { return params.genesis_bits };
    if parent_height < ASERT_ANCHOR_HEIGHT {
        return params.genesis_bits;
    }
    let anchor = target_from_compact(params.genesis_bits).expect("genesis bits are valid");
    let t = asert_target(
        &anchor,
        parent_time as i64 - anchor_time as i64,
        (parent_height - ASERT_ANCHOR_HEIGHT) as i64,
        params.target_spacing as i64,
        halflife as i64,
        &params.pow_limit,
    );
    target_to_compact(&t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_round_trips_bitcoin_vectors() {
        let t = target_from_compact(0x1d00ffff).unwrap();
        assert_eq!(t, U256::from_u64(0xffff).shl(8 * 26));
        assert_eq!(target_to_compact(&t), 0x1d00ffff);
        assert_eq!(target_to_compact(&target_from_compact(0x207fffff).unwrap()), 0x207fffff);
        assert_eq!(target_to_compact(&U256::from_u64(0x80)), 0x02008000);
        assert!(target_from_compact(0x04923456).is_err(), "negative");
        assert!(target_from_compact(0xff123456).is_err(), "overflow");
        assert!(target_from_compact(0x1d000000).is_err(), "zero");
    }

    #[test]
    fn work_is_two_to_256_over_target_plus_one() {
        // Bitcoin's genesis target has work 0x100010001.
        assert_eq!(block_work(&target_from_compact(0x1d00ffff).unwrap()), U256::from_u64(0x1_0001_0001));
        assert_eq!(block_work(&U256::MAX), U256::ONE);
        assert_eq!(block_work(&U256::ONE.shl(255).checked_sub(&U256::ONE).unwrap()), U256::from_u64(2));
    }

    #[test]
    fn asert_doubles_per_halflife_behind_schedule_and_halves_ahead() {
        let anchor = U256::ONE.shl(200);
        let limit = U256::ONE.shl(230);
        let on = asert_target(&anchor, 600, 100, 6, 120, &limit);
        assert_eq!(on, anchor, "on schedule keeps the anchor target");
        assert_eq!(asert_target(&anchor, 600 + 120, 100, 6, 120, &limit), anchor.shl(1));
        assert_eq!(asert_target(&anchor, 600 - 240, 100, 6, 120, &limit), anchor.shr(2));
        let half = asert_target(&anchor, 600 + 60, 100, 6, 120, &limit);
        // 2^0.5 = 1.41421...; the cubic approximation is within 0.013%.
        let ratio = half.shr(180).low_u64() as f64 / (1u64 << 20) as f64;
        assert!((ratio - std::f64::consts::SQRT_2).abs() < 2e-4, "{ratio}");
        assert_eq!(asert_target(&anchor, 1 << 40, 0, 6, 120, &limit), limit, "clamped to the limit");
        assert_eq!(asert_target(&anchor, -(1 << 40), 0, 6, 120, &limit), U256::ONE, "never zero");
        // Anchors near 2^256 must not overflow the intermediate product.
        let big = U256::ONE.shl(250);
        let max = U256::MAX;
        assert_eq!(asert_target(&big, 600, 100, 6, 120, &max), big);
        assert_eq!(asert_target(&big, 600 + 120, 100, 6, 120, &max), big.shl(1));
        assert_eq!(asert_target(&big, 600 - 120, 100, 6, 120, &max), big.shr(1));
    }

    #[test]
    fn high_hash_is_rejected() {
        let limit = target_from_compact(0x207fffff).unwrap();
        let mut h = [0u8; 32];
        h[31] = 0x80; // 2^255 > 0x7fffff << 232
        assert!(matches!(
            check_proof_of_work(&Hash256(h), 0x207fffff, &limit),
            Err(ConsensusError::HighHash { .. })
        ));
        h[31] = 0x7f;
        assert!(check_proof_of_work(&Hash256(h), 0x207fffff, &limit).is_ok());
        assert!(matches!(
            check_proof_of_work(&Hash256([0; 32]), 0x2100ffff, &limit),
            Err(ConsensusError::BadBits { .. })
        ));
    }
}
