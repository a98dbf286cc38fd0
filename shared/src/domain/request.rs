//! The create-order request body and its validation into a `NewOrder`.

use std::collections::HashSet;

use serde::Deserialize;

use super::{ProductId, Quantity, ValidationError};

/// The most lines one order may have. It also bounds the size of the create transaction.
pub const MAX_ORDER_LINES: usize = 20;

/// The body of `POST /users/{userId}/orders` as sent. Unknown fields are rejected so that a
/// misspelt field is an error, not silently ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateOrderRequest {
    pub items: Vec<LineRequest>,
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
}
