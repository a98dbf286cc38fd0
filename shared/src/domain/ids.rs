//! Identifier newtypes that parse their input, so an invalid id cannot be constructed.

use std::fmt;

use serde::{Deserialize, Serialize};
use ulid::Ulid;

use super::ValidationError;

/// The longest user or product id we accept. Ids are opaque, but bounded so keys stay small.
const MAX_ID_LENGTH: usize = 64;

/// Ids are restricted to ASCII letters, digits, `-` and `_`: this rules out unicode confusables,
/// path separators and anything that would need escaping in a key or a URL.
fn parse_plain_id(kind: &str, value: &str) -> Result<String, ValidationError> {
    if value.is_empty() || value.len() > MAX_ID_LENGTH {
        return Err(ValidationError(format!(
            "{kind} must be 1 to {MAX_ID_LENGTH} characters long"
        )));
    }
    if !value
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
    {
        return Err(ValidationError(format!(
            "{kind} may contain only ASCII letters, digits, '-' and '_'"
        )));
    }
    Ok(value.to_owned())
}

macro_rules! plain_id {
    ($(#[$meta:meta])* $name:ident, $kind:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: &str) -> Result<Self, ValidationError> {
                parse_plain_id($kind, value).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(&self.0)
            }
        }
    };
}

plain_id!(
    /// A user's id, e.g. `user-7`.
    UserId,
    "userId"
);
plain_id!(
    /// A product's id, e.g. `product-12`.
    ProductId,
    "productId"
);

/// An order's id: 26 characters of Crockford base32 (a ULID). Orders created without an
/// Idempotency-Key get a time-ordered ULID; orders created with one get an id derived from the
/// user and the key (`IdempotencyKey::order_id`), so a retry addresses the very same item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrderId(Ulid);

impl OrderId {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        if value.len() != ulid::ULID_LEN {
            return Err(ValidationError::new("orderId must be 26 characters long"));
        }
        let invalid = || ValidationError::new("orderId is not a valid order id");
        let ulid = Ulid::from_string(value).map_err(|_| invalid())?;
        // Only the canonical spelling (case aside) names an order: this refuses values that
        // overflow 128 bits, which the decoder would otherwise wrap to another id.
        if !ulid.to_string().eq_ignore_ascii_case(value) {
            return Err(invalid());
        }
        Ok(Self(ulid))
    }

    /// A fresh, time-ordered id for a request without an Idempotency-Key.
    pub fn random() -> Self {
        Self(Ulid::new())
    }

    /// The order id whose 128 bits these are (see `IdempotencyKey::order_id`).
    pub(super) fn from_bits(bits: u128) -> Self {
        Self(Ulid::from(bits))
    }
}

impl TryFrom<String> for OrderId {
    type Error = ValidationError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<OrderId> for String {
    fn from(value: OrderId) -> String {
        value.0.to_string()
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ids_accept_the_seeded_shapes() {
        assert_eq!(
            UserId::parse("user-1").map(|id| id.to_string()),
            Ok("user-1".to_owned())
        );
        assert!(ProductId::parse("product_flash-2").is_ok());
    }

    #[test]
    fn plain_ids_reject_empty_long_and_non_ascii_values() {
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse(&"a".repeat(65)).is_err());
        // GIVEN a Cyrillic "е" that looks like a Latin "e" WHEN parsed THEN it is rejected.
        assert!(UserId::parse("us\u{0435}r-1").is_err());
        assert!(ProductId::parse("product/1").is_err());
        assert!(ProductId::parse("product 1").is_err());
    }

    #[test]
    fn order_ids_round_trip_and_reject_garbage() {
        let id = OrderId::random();
        assert_eq!(OrderId::parse(&id.to_string()), Ok(id));
        assert!(OrderId::parse("not-an-order-id").is_err());
        assert!(OrderId::parse("ZZZZZZZZZZZZZZZZZZZZZZZZZZ").is_err());
    }
}
