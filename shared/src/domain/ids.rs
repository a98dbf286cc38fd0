//! Identifier newtypes that parse their input, so an invalid id cannot be constructed.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
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
/// user and the key, so a retry addresses the very same item.
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

    /// The id a create request with this key gets: the same user and key always give the same
    /// id, which is what makes the create idempotent without a separate idempotency item.
    pub fn for_idempotency_key(user_id: &UserId, key: &IdempotencyKey) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"create-order\0");
        hasher.update(user_id.as_str().as_bytes());
        hasher.update(b"\0");
        hasher.update(key.as_str().as_bytes());
        let digest = hasher.finalize();
        let mut first_sixteen = [0_u8; 16];
        first_sixteen.copy_from_slice(&digest[..16]);
        Self(Ulid::from(u128::from_be_bytes(first_sixteen)))
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

/// The longest Idempotency-Key we accept, as in the API contract.
pub const MAX_IDEMPOTENCY_KEY_LENGTH: usize = 255;

/// A client-chosen Idempotency-Key: 1 to 255 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        if value.is_empty() || value.len() > MAX_IDEMPOTENCY_KEY_LENGTH {
            return Err(ValidationError::new(
                "Idempotency-Key must be 1 to 255 characters long",
            ));
        }
        if !value.bytes().all(|byte| (0x20..=0x7e).contains(&byte)) {
            return Err(ValidationError::new(
                "Idempotency-Key may contain only printable ASCII characters",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = ValidationError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<IdempotencyKey> for String {
    fn from(value: IdempotencyKey) -> String {
        value.0
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

    #[test]
    fn keyed_order_ids_are_stable_per_user_and_key() {
        let user = UserId::parse("user-1").unwrap();
        let other_user = UserId::parse("user-2").unwrap();
        let key = IdempotencyKey::parse("key-1").unwrap();
        let first = OrderId::for_idempotency_key(&user, &key);
        assert_eq!(first, OrderId::for_idempotency_key(&user, &key));
        assert_ne!(first, OrderId::for_idempotency_key(&other_user, &key));
        assert_eq!(OrderId::parse(&first.to_string()), Ok(first));
    }

    #[test]
    fn idempotency_keys_are_bounded_printable_ascii() {
        assert!(IdempotencyKey::parse("a").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("tab\there").is_err());
        assert!(IdempotencyKey::parse("ключ").is_err());
    }
}
