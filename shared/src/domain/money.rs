//! Money and quantities. Money is a non-negative whole number of won (KRW has no minor unit);
//! all arithmetic is checked, so an overflow is an error and never a wrapped balance.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ValidationError;

/// An amount of Korean won. Never negative; arithmetic that would overflow fails. The default is
/// zero.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(try_from = "i64", into = "i64")]
pub struct Money(i64);

impl Money {
    pub const ZERO: Money = Money(0);

    pub fn new(won: i64) -> Result<Self, ValidationError> {
        if won < 0 {
            return Err(ValidationError::new(
                "an amount of money cannot be negative",
            ));
        }
        Ok(Self(won))
    }

    pub fn won(self) -> i64 {
        self.0
    }

    pub fn is_zero(&self) -> bool {
        self.0 == 0
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0
            .checked_sub(other.0)
            .filter(|won| *won >= 0)
            .map(Money)
    }

    pub fn checked_times(self, quantity: Quantity) -> Option<Money> {
        self.0.checked_mul(i64::from(quantity.get())).map(Money)
    }
}

impl TryFrom<i64> for Money {
    type Error = ValidationError;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Money> for i64 {
    fn from(value: Money) -> i64 {
        value.0
    }
}

impl fmt::Display for Money {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{} KRW", self.0)
    }
}

/// How many units of a product one order line buys: 1 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u32")]
pub struct Quantity(u32);

impl Quantity {
    pub const MAX: u32 = 100;

    pub fn new(units: u64) -> Result<Self, ValidationError> {
        match u32::try_from(units) {
            Ok(units) if (1..=Self::MAX).contains(&units) => Ok(Self(units)),
            _ => Err(ValidationError(format!(
                "quantity must be between 1 and {}",
                Self::MAX
            ))),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u64> for Quantity {
    type Error = ValidationError;
    fn try_from(value: u64) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Quantity> for u32 {
    fn from(value: Quantity) -> u32 {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_rejects_negative_amounts() {
        assert!(Money::new(-1).is_err());
        assert_eq!(Money::new(0), Ok(Money::ZERO));
    }

    #[test]
    fn money_arithmetic_is_checked() {
        let max = Money::new(i64::MAX).unwrap();
        assert_eq!(max.checked_add(Money::new(1).unwrap()), None);
        assert_eq!(
            Money::new(5).unwrap().checked_sub(Money::new(6).unwrap()),
            None
        );
        assert_eq!(max.checked_times(Quantity::new(2).unwrap()), None);
        assert_eq!(
            Money::new(1_500)
                .unwrap()
                .checked_times(Quantity::new(3).unwrap()),
            Some(Money::new(4_500).unwrap())
        );
    }

    #[test]
    fn quantity_is_between_one_and_one_hundred() {
        assert!(Quantity::new(0).is_err());
        assert!(Quantity::new(1).is_ok());
        assert!(Quantity::new(100).is_ok());
        assert!(Quantity::new(101).is_err());
        assert!(Quantity::new(u64::MAX).is_err());
    }

    #[test]
    fn quantity_deserialization_rejects_fractions_and_negatives() {
        assert!(serde_json::from_str::<Quantity>("2").is_ok());
        assert!(serde_json::from_str::<Quantity>("2.5").is_err());
        assert!(serde_json::from_str::<Quantity>("-1").is_err());
        assert!(serde_json::from_str::<Quantity>("\"2\"").is_err());
        assert!(serde_json::from_str::<Quantity>("1e2").is_err());
    }
}
