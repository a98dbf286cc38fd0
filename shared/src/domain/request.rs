//! The create-order request body and its validation into a `NewOrder`.

use std::collections::HashSet;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::{ProductId, Quantity, ValidationError};

/// The most lines one order may have. It also bounds the size of the create transaction.
pub const MAX_ORDER_LINES: usize = 20;

/// The body of `POST /users/{userId}/orders` as sent. Unknown fields are rejected so that a
/// misspelt field is an error, not silently ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateOrderRequest {
    #[serde(deserialize_with = "lines_as_objects")]
    pub items: Vec<LineRequest>,
}

/// A value that must be written as a JSON object. serde's derived structs also accept the
/// sequence form (`["product-1", 1]` for a line), which the API does not.
pub struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(ObjectVisitor(PhantomData))
            .map(Object)
    }
}

fn lines_as_objects<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<LineRequest>, D::Error> {
    let lines = Vec::<Object<LineRequest>>::deserialize(deserializer)?;
    Ok(lines.into_iter().map(|Object(line)| line).collect())
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LineRequest {
    pub product_id: ProductId,
    pub quantity: Quantity,
}

/// A create request that has passed validation: 1 to 20 lines with distinct products.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    lines: Vec<LineRequest>,
}

impl NewOrder {
    pub fn lines(&self) -> &[LineRequest] {
        &self.lines
    }
}

impl TryFrom<CreateOrderRequest> for NewOrder {
    type Error = ValidationError;

    fn try_from(request: CreateOrderRequest) -> Result<Self, Self::Error> {
        if request.items.is_empty() || request.items.len() > MAX_ORDER_LINES {
            return Err(ValidationError(format!(
                "items must hold 1 to {MAX_ORDER_LINES} lines"
            )));
        }
        let mut seen = HashSet::with_capacity(request.items.len());
        for line in &request.items {
            if !seen.insert(&line.product_id) {
                return Err(ValidationError(format!(
                    "productId {} appears more than once; put the whole quantity on one line",
                    line.product_id
                )));
            }
        }
        Ok(Self {
            lines: request.items,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<NewOrder, String> {
        let request: CreateOrderRequest =
            serde_json::from_str(body).map_err(|error| error.to_string())?;
        NewOrder::try_from(request).map_err(|error| error.to_string())
    }

    #[test]
    fn accepts_a_valid_body() {
        let order = parse(r#"{"items":[{"productId":"product-1","quantity":2}]}"#).unwrap();
        assert_eq!(order.lines().len(), 1);
        assert_eq!(order.lines()[0].quantity.get(), 2);
    }

    #[test]
    fn rejects_empty_too_many_and_duplicate_lines() {
        assert!(parse(r#"{"items":[]}"#).unwrap_err().contains("1 to 20"));
        let lines: Vec<String> = (1..=21)
            .map(|n| format!(r#"{{"productId":"product-{n}","quantity":1}}"#))
            .collect();
        assert!(parse(&format!(r#"{{"items":[{}]}}"#, lines.join(",")))
            .unwrap_err()
            .contains("1 to 20"));
        assert!(parse(
            r#"{"items":[{"productId":"p","quantity":1},{"productId":"p","quantity":2}]}"#
        )
        .unwrap_err()
        .contains("more than once"));
    }

    #[test]
    fn rejects_unknown_fields_and_wrong_types() {
        assert!(parse(r#"{"items":[],"coupon":"free"}"#).is_err());
        assert!(parse(r#"{"items":[{"productId":"p","quantity":1,"price":1}]}"#).is_err());
        assert!(parse(r#"{"items":[{"productId":1,"quantity":1}]}"#).is_err());
        assert!(parse(r#"{"items":[{"productId":"p","quantity":0}]}"#).is_err());
        assert!(parse(r#"{"items":{}}"#).is_err());
    }

    #[test]
    fn lines_and_the_body_must_be_objects() {
        let error = parse(r#"{"items":[["product-1",1]]}"#).unwrap_err();
        assert!(error.contains("expected a JSON object"), "{error}");
        let error = serde_json::from_str::<Object<CreateOrderRequest>>(
            r#"[[{"productId":"product-1","quantity":1}]]"#,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(error.contains("expected a JSON object"), "{error}");
        // The object form still works through the wrapper, unknown fields still refused.
        assert!(serde_json::from_str::<Object<CreateOrderRequest>>(
            r#"{"items":[{"productId":"product-1","quantity":1}]}"#
        )
        .is_ok());
        assert!(parse(r#"{"items":[{"productId":"p","quantity":1,"x":1}]}"#).is_err());
    }
}
