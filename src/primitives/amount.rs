//! Amounts in base units with overflow-checked arithmetic.

use std::fmt;

/// Base units per coin.
pub const COIN: u64 = 100_000_000;
/// No amount, and no sum of amounts, may exceed this (21 million coins).
pub const MAX_MONEY: u64 = 21_000_000 * COIN;

/// An amount of base units in `0..=MAX_MONEY`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, bincode::Encode, bincode::Decode)]
pub struct Amount(u64);

/// Arithmetic or range error on amounts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// The value is above [`MAX_MONEY`].
    #[error("amount {got} exceeds the maximum {max}")]
    OutOfRange { got: u64, max: u64 },
    /// A sum overflowed or passed [`MAX_MONEY`].
    #[error("sum of amounts overflows the maximum {max}")]
    Overflow { max: u64 },
    /// A subtraction went below zero.
    #[error("amount {a} minus {b} is negative")]
    Negative { a: u64, b: u64 },
}

impl Amount {
    /// Zero.
    pub const ZERO: Amount = Amount(0);
    /// The largest valid amount.
    pub const MAX: Amount = Amount(MAX_MONEY);

    /// An amount from base units, checked against [`MAX_MONEY`].
    pub fn from_sat(sat: u64) -> Result<Amount, AmountError> {
        if sat > MAX_MONEY {
            return Err(AmountError::OutOfRange { got: sat, max: MAX_MONEY });
        }
        Ok(Amount(sat))
    }

    /// The value in base units.
    pub fn to_sat(self) -> u64 {
        self.0
    }

    /// `self + other`, failing past [`MAX_MONEY`].
    pub fn checked_add(self, other: Amount) -> Result<Amount, AmountError> {
        match self.0.checked_add(other.0) {
            Some(s) if s <= MAX_MONEY => Ok(Amount(s)),
            _ => Err(AmountError::Overflow { max: MAX_MONEY }),
        }
    }

    /// `self - other`, failing below zero.
    pub fn checked_sub(self, other: Amount) -> Result<Amount, AmountError> {
        self.0.checked_sub(other.0).map(Amount).ok_or(AmountError::Negative { a: self.0, b: other.0 })
    }

    /// Sums amounts, failing on overflow past [`MAX_MONEY`].
    pub fn sum<I: IntoIterator<Item = Amount>>(iter: I) -> Result<Amount, AmountError> {
        iter.into_iter().try_fold(Amount::ZERO, Amount::checked_add)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:08}", self.0 / COIN, self.0 % COIN)
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} sat", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_and_overflow_are_checked() {
        assert!(Amount::from_sat(MAX_MONEY).is_ok());
        assert_eq!(
            Amount::from_sat(MAX_MONEY + 1),
            Err(AmountError::OutOfRange { got: MAX_MONEY + 1, max: MAX_MONEY })
        );
        let half = Amount::from_sat(MAX_MONEY / 2 + 1).unwrap();
        assert!(half.checked_add(half).is_err());
        assert!(Amount::sum([Amount::MAX, Amount::from_sat(1).unwrap()]).is_err());
        assert_eq!(
            Amount::ZERO.checked_sub(Amount::from_sat(1).unwrap()),
            Err(AmountError::Negative { a: 0, b: 1 })
        );
        assert_eq!(Amount::from_sat(123_456_789).unwrap().to_string(), "1.23456789");
    }
}
