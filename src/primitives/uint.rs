//! A minimal unsigned 256-bit integer for proof-of-work targets and cumulative chain work.

use std::cmp::Ordering;
use std::fmt;

/// Unsigned 256-bit integer, four little-endian u64 limbs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, bincode::Encode, bincode::Decode)]
pub struct U256(pub [u64; 4]);

impl U256 {
    /// The value as a float (for difficulty and hash-rate estimates; rounds).
    pub fn to_f64(&self) -> f64 {
        self.0.iter().rev().fold(0.0, |acc, limb| acc * 18446744073709551616.0 + *limb as f64)
    }

    /// 0.
    pub const ZERO: U256 = U256([0; 4]);
    /// 1.
    pub const ONE: U256 = U256([1, 0, 0, 0]);
    /// 2^256 - 1.
    pub const MAX: U256 = U256([u64::MAX; 4]);

    /// From a u64.
    pub const fn from_u64(v: u64) -> U256 {
        U256([v, 0, 0, 0])
    }

    /// From 32 little-endian bytes (how a block hash is read as a number).
    pub fn from_le_bytes(b: &[u8; 32]) -> U256 {
        let mut l = [0u64; 4];
        for (i, limb) in l.iter_mut().enumerate() {
            *limb = u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        }
        U256(l)
    }

    /// To 32 little-endian bytes.
    pub fn to_le_bytes(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        for (i, limb) in self.0.iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&limb.to_le_bytes());
        }
        b
    }

    /// To 32 big-endian bytes (display order).
    pub fn to_be_bytes(&self) -> [u8; 32] {
        let mut b = self.to_le_bytes();
        b.reverse();
        b
    }

    /// True for zero.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 4]
    }

    /// The lowest 64 bits.
    pub fn low_u64(&self) -> u64 {
        self.0[0]
    }

    /// Number of significant bits (0 for zero).
    pub fn bits(&self) -> u32 {
        for i in (0..4).rev() {
            if self.0[i] != 0 {
                return 64 * i as u32 + (64 - self.0[i].leading_zeros());
            }
        }
        0
    }

    /// `self + rhs`, or `None` on overflow.
    pub fn checked_add(&self, rhs: &U256) -> Option<U256> {
        let mut out = [0u64; 4];
        let mut carry = false;
        for (i, o) in out.iter_mut().enumerate() {
            let (s1, c1) = self.0[i].overflowing_add(rhs.0[i]);
            let (s2, c2) = s1.overflowing_add(carry as u64);
            *o = s2;
            carry = c1 || c2;
        }
        (!carry).then_some(U256(out))
    }

    /// `self + rhs`, saturating at [`U256::MAX`].
    pub fn saturating_add(&self, rhs: &U256) -> U256 {
        self.checked_add(rhs).unwrap_or(U256::MAX)
    }

    /// `self - rhs`, or `None` if `rhs > self`.
    pub fn checked_sub(&self, rhs: &U256) -> Option<U256> {
        let mut out = [0u64; 4];
        let mut borrow = false;
        for (i, o) in out.iter_mut().enumerate() {
            let (d1, b1) = self.0[i].overflowing_sub(rhs.0[i]);
            let (d2, b2) = d1.overflowing_sub(borrow as u64);
            *o = d2;
            borrow = b1 || b2;
        }
        (!borrow).then_some(U256(out))
    }

    /// `self * rhs`, or `None` on overflow.
    pub fn checked_mul_u64(&self, rhs: u64) -> Option<U256> {
        let mut out = [0u64; 4];
        let mut carry: u128 = 0;
        for (i, o) in out.iter_mut().enumerate() {
            let p = self.0[i] as u128 * rhs as u128 + carry;
            *o = p as u64;
            carry = p >> 64;
        }
        (carry == 0).then_some(U256(out))
    }

    /// Bitwise not.
    pub fn not(&self) -> U256 {
        U256([!self.0[0], !self.0[1], !self.0[2], !self.0[3]])
    }

    /// `self << n` (bits shifted out are lost; `n >= 256` gives zero).
    pub fn shl(&self, n: u32) -> U256 {
        if n >= 256 {
            return U256::ZERO;
        }
        let (limbs, bits) = ((n / 64) as usize, n % 64);
        let mut out = [0u64; 4];
        for i in (limbs..4).rev() {
            out[i] = self.0[i - limbs] << bits;
            if bits > 0 && i > limbs {
                out[i] |= self.0[i - limbs - 1] >> (64 - bits);
            }
        }
        U256(out)
    }

    /// `self >> n` (`n >= 256` gives zero).
    pub fn shr(&self, n: u32) -> U256 {
        if n >= 256 {
            return U256::ZERO;
        }
        let (limbs, bits) = ((n / 64) as usize, n % 64);
        let mut out = [0u64; 4];
        for i in 0..4 - limbs {
            out[i] = self.0[i + limbs] >> bits;
            if bits > 0 && i + limbs + 1 < 4 {
                out[i] |= self.0[i + limbs + 1] << (64 - bits);
            }
        }
        U256(out)
    }

    /// `self / rhs` (binary long division), or `None` when `rhs` is zero.
    pub fn checked_div(&self, rhs: &U256) -> Option<U256> {
        if rhs.is_zero() {
            return None;
        }
        if self < rhs {
            return Some(U256::ZERO);
        }
        let shift = self.bits() - rhs.bits();
        let mut divisor = rhs.shl(shift);
        let mut rem = *self;
        let mut quot = U256::ZERO;
        for i in (0..=shift).rev() {
            if let Some(r) = rem.checked_sub(&divisor) {
                rem = r;
                quot.0[(i / 64) as usize] |= 1 << (i % 64);
            }
            divisor = divisor.shr(1);
        }
        Some(quot)
    }
}

impl Ord for U256 {
    fn cmp(&self, other: &Self) -> Ordering {
        for i in (0..4).rev() {
            match self.0[i].cmp(&other.0[i]) {
                Ordering::Equal => continue,
                o => return o,
            }
        }
        Ordering::Equal
    }
}

impl PartialOrd for U256 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for U256 {
    /// 64 hex digits, most significant first (like Core's `chainwork`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.to_be_bytes()))
    }
}

impl fmt::Debug for U256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{self}")
    }
}

impl From<u128> for U256 {
    fn from(v: u128) -> U256 {
        U256([v as u64, (v >> 64) as u64, 0, 0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn to_u128(v: U256) -> Option<u128> {
        (v.0[2] == 0 && v.0[3] == 0).then(|| v.0[0] as u128 | (v.0[1] as u128) << 64)
    }

    proptest! {
        #[test]
        fn arithmetic_matches_u128(a in any::<u128>(), b in 1..u128::MAX, s in 0u32..128) {
            let (x, y) = (U256::from(a), U256::from(b));
            prop_assert_eq!(to_u128(x.checked_div(&y).unwrap()), Some(a / b));
            prop_assert_eq!(x.cmp(&y), a.cmp(&b));
            prop_assert_eq!(to_u128(x.shr(s)), Some(a >> s));
            if let Some(sum) = a.checked_add(b) {
                prop_assert_eq!(to_u128(x.checked_add(&y).unwrap()), Some(sum));
            }
            if a >= b {
                prop_assert_eq!(to_u128(x.checked_sub(&y).unwrap()), Some(a - b));
            } else {
                prop_assert!(x.checked_sub(&y).is_none());
            }
            prop_assert_eq!(x.shl(s).shr(s).shl(128).shr(128), x.shl(s).shr(s));
        }

        #[test]
        fn byte_round_trip(b in any::<[u8; 32]>()) {
            prop_assert_eq!(U256::from_le_bytes(&b).to_le_bytes(), b);
        }
    }

    #[test]
    fn edges() {
        assert!(U256::MAX.checked_add(&U256::ONE).is_none());
        assert_eq!(U256::MAX.checked_div(&U256::MAX), Some(U256::ONE));
        assert_eq!(U256::ONE.shl(255).bits(), 256);
        assert_eq!(U256::ONE.checked_div(&U256::ZERO), None);
        assert_eq!(U256::MAX.checked_mul_u64(2), None);
    }
}
