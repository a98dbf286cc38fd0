//! Business refusals, each spelled once: its stable code, its title, its detail and whether it
//! says something is missing or that the request conflicts with the state. A refusal is an
//! outcome the client is told and that is final for its Idempotency-Key (the key keeps it as
//! its answer); errors that are not outcomes (invalid input, contention, an unavailable store)
//! are not refusals.

use serde::{Deserialize, Serialize};

use super::{Money, ProductId};

/// Why the domain refuses a request. The serde form is what Idempotency-Key records keep: a
/// variant may be added, never renamed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Refusal {
    #[error("the user does not exist")]
    UserNotFound,
    #[error("the order does not exist")]
    OrderNotFound,
    #[error("product {product_id} does not exist")]
    ProductNotFound {
        #[serde(rename = "productId")]
        product_id: ProductId,
    },
    #[error("product {product_id} does not have enough stock for this order")]
    OutOfStock {
        #[serde(rename = "productId")]
        product_id: ProductId,
    },
    #[error("the balance is lower than the order total of {required}")]
    InsufficientBalance { required: Money },
    #[error("the order has already been paid")]
    OrderAlreadyPaid,
    #[error("the order has been cancelled")]
    OrderCancelled,
    #[error("the order has not been paid, so nothing can be refunded")]
    OrderNotPaid,
    #[error("the order holds fewer unrefunded units of product {product_id} than asked")]
    RefundExceedsOrder {
        #[serde(rename = "productId")]
        product_id: ProductId,
    },
}

/// What a refusal says about the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// Something the request names does not exist (HTTP 404).
    NotFound,
    /// The request conflicts with the current state (HTTP 409).
    Conflict,
}

impl Refusal {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        self.spelling().0
    }

    /// The problem's title.
    pub fn title(&self) -> &'static str {
        self.spelling().1
    }

    pub fn kind(&self) -> RefusalKind {
        self.spelling().2
    }

    /// The product the refusal is about, if any.
    pub fn product_id(&self) -> Option<&ProductId> {
        match self {
            Refusal::ProductNotFound { product_id }
            | Refusal::OutOfStock { product_id }
            | Refusal::RefundExceedsOrder { product_id } => Some(product_id),
            _ => None,
        }
    }

    fn spelling(&self) -> (&'static str, &'static str, RefusalKind) {
        use RefusalKind::{Conflict, NotFound};
        match self {
            Refusal::UserNotFound => ("USER_NOT_FOUND", "User not found", NotFound),
            Refusal::OrderNotFound => ("ORDER_NOT_FOUND", "Order not found", NotFound),
            Refusal::ProductNotFound { .. } => ("PRODUCT_NOT_FOUND", "Product not found", NotFound),
            Refusal::OutOfStock { .. } => ("OUT_OF_STOCK", "Out of stock", Conflict),
            Refusal::InsufficientBalance { .. } => {
                ("INSUFFICIENT_BALANCE", "Insufficient balance", Conflict)
            }
            Refusal::OrderAlreadyPaid => ("ORDER_ALREADY_PAID", "Order already paid", Conflict),
            Refusal::OrderCancelled => ("ORDER_CANCELLED", "Order cancelled", Conflict),
            Refusal::OrderNotPaid => ("ORDER_NOT_PAID", "Order not paid", Conflict),
            Refusal::RefundExceedsOrder { .. } => (
                "REFUND_EXCEEDS_ORDER",
                "Refund exceeds what the order holds",
                Conflict,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_keeps_its_serde_form_and_names_its_product() {
        let refusal = Refusal::OutOfStock {
            product_id: ProductId::parse("product-1").unwrap(),
        };
        assert_eq!(
            serde_json::to_string(&refusal).unwrap(),
            r#"{"OUT_OF_STOCK":{"productId":"product-1"}}"#
        );
        assert_eq!(refusal.code(), "OUT_OF_STOCK");
        assert_eq!(refusal.kind(), RefusalKind::Conflict);
        assert_eq!(
            refusal.product_id().map(ProductId::as_str),
            Some("product-1")
        );
        assert!(refusal.to_string().contains("product-1"));
        assert_eq!(
            serde_json::to_string(&Refusal::OrderCancelled).unwrap(),
            r#""ORDER_CANCELLED""#
        );
        assert_eq!(Refusal::OrderNotFound.kind(), RefusalKind::NotFound);
    }
}
