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
    /// Text that is not a valid amount.
    #[error("invalid amount {input:?}: {why}")]
    Parse { input: String, why: String },
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

    /// Parses a decimal number of coins ("12.5", "0.00000001"): digits, at most one point, at
    /// most 8 decimals, at most [`MAX_MONEY`]. Signs, exponents and spaces are refused. Every
    /// refusal is [`AmountError::Parse`], naming the text and the rule. This is the one
    /// parser of coin amounts: the wallet CLI calls it, and the RPC's JSON amounts
    /// (`rpc::json::coins_from_json`) are brought to this form exactly before calling it.
    pub fn from_coins_str(s: &str) -> Result<Amount, AmountError> {
        let bad = |why: &str| AmountError::Parse { input: s.to_string(), why: why.to_string() };
        let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
        if whole.is_empty() && frac.is_empty() {
            return Err(bad("empty"));
        }
        if !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("only digits and one decimal point are allowed (no sign, no exponent)"));
        }
        if frac.len() > 8 {
            return Err(bad("more than 8 decimal places (1 sat = 0.00000001 coins)"));
        }
        const SUPPLY: &str = "exceeds the maximum of 21000000 coins (the money supply)";
        let w: u64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| bad(SUPPLY))? };
        let f: u64 = format!("{frac:0<8}").parse().map_err(|_| bad("invalid decimals"))?;
        let sat = w.checked_mul(COIN).and_then(|x| x.checked_add(f)).ok_or_else(|| bad(SUPPLY))?;
        Amount::from_sat(sat).map_err(|_| bad(SUPPLY))
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
        assert_eq!(Amount::from_coins_str("1.23456789").unwrap().to_sat(), 123_456_789);
        assert_eq!(Amount::from_coins_str("12.5").unwrap().to_sat(), 1_250_000_000);
        assert_eq!(Amount::from_coins_str(".5").unwrap().to_sat(), 50_000_000);
        for bad in
            ["", "-1", "1e8", "1.123456789", "1.2.3", " 1", "21000000.00000001", "99999999999999999999"]
        {
            assert!(matches!(Amount::from_coins_str(bad), Err(AmountError::Parse { .. })), "{bad}");
        }
        assert_eq!(Amount::from_coins_str("21000000").unwrap(), Amount::MAX);
        let e = Amount::from_coins_str("21000000.00000001").unwrap_err().to_string();
        assert!(e.contains("\"21000000.00000001\"") && e.contains("money supply"), "{e}");
    }
}
