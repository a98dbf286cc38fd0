//! Item mapping between domain types and DynamoDB items (with `serde_dynamo`), and the key
//! design of the single table:
//!
//! | entity  | pk                 | sk                | listSk (LSI byCreatedAt)  |
//! |---------|--------------------|-------------------|---------------------------|
//! | user    | `USER#<userId>`    | `USER`            | -                         |
//! | product | `PRODUCT#<id>`     | `PRODUCT`         | -                         |
//! | order   | `USER#<userId>`    | `ORDER#<orderId>` | `<createdAt>#<orderId>`   |
//!
//! Orders live in their user's partition, so "another user's order" is simply not found, and
//! the list query newest-first is one `Query` on the LSI.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use crate::domain::{Fingerprint, Money, Order, OrderId, OrderState, ProductId, Timestamp, UserId};

pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) const PK: &str = "pk";
pub(crate) const SK: &str = "sk";
pub(crate) const LIST_SK: &str = "listSk";
pub(crate) const USER_SK: &str = "USER";
pub(crate) const PRODUCT_SK: &str = "PRODUCT";

pub(crate) fn user_pk(user_id: &UserId) -> String {
    format!("USER#{user_id}")
}

pub(crate) fn product_pk(product_id: &ProductId) -> String {
    format!("PRODUCT#{product_id}")
}

pub(crate) fn order_sk(order_id: OrderId) -> String {
    format!("ORDER#{order_id}")
}

pub(crate) fn list_sk(created_at: Timestamp, order_id: OrderId) -> String {
    format!("{created_at}#{order_id}")
}

pub(crate) fn key(pk: String, sk: &str) -> Item {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(pk)),
        (SK.to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

pub(crate) fn user_key(user_id: &UserId) -> Item {
    key(user_pk(user_id), USER_SK)
}

pub(crate) fn product_key(product_id: &ProductId) -> Item {
    key(product_pk(product_id), PRODUCT_SK)
}

pub(crate) fn order_key(user_id: &UserId, order_id: OrderId) -> Item {
    key(user_pk(user_id), &order_sk(order_id))
}

/// A user: the balance is what payments debit and refunds credit. (Written whole only by
/// `seed`; requests change the balance in place.)
#[cfg(feature = "admin")]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserRecord {
    pub pk: String,
    pub sk: String,
    pub entity: String,
    pub user_id: UserId,
    pub balance: i64,
    /// Written once by `seed`; the audit's reference point.
    pub initial_balance: i64,
}

/// A product: the price creates snapshot and the stock they reserve. (Written whole only by
/// `seed`.)
#[cfg(feature = "admin")]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProductRecord {
    pub pk: String,
    pub sk: String,
    pub entity: String,
    pub product_id: ProductId,
    pub price: Money,
    pub stock: i64,
    /// Written once by `seed`; the audit's reference point (a product written by other means
    /// may lack it: the audit says so, the request path never reads it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_stock: Option<i64>,
}

/// What a create reads of a product: its price. The stock is changed by the transaction's
/// conditional update, and audit-only fields (`initialStock`) stay off the request path, so a
/// product written without them can still be ordered.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProductPrice {
    pub product_id: ProductId,
    pub price: Money,
}

/// An order with its keys and the hash of the request that created it (a keyed create whose
/// answer expired finds its order and compares). The order's own fields sit at the top level
/// of the item, beside these. (Items written before the transactions carried a stable
/// `ClientRequestToken` also hold `payToken`/`cancelToken`; nothing reads them.)
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OrderRecord {
    pub pk: String,
    pub sk: String,
    pub list_sk: String,
    pub entity: String,
    #[serde(flatten)]
    pub order: Order,
    pub request_hash: Fingerprint,
    /// How many changes the order has had (absent on orders written before revisions: 0).
    #[serde(default)]
    pub revision: u64,
}

impl OrderRecord {
    pub(super) fn new(order: Order, request_hash: Fingerprint) -> Self {
        Self {
            pk: user_pk(&order.user_id),
            sk: order_sk(order.order_id),
            list_sk: list_sk(order.created_at, order.order_id),
            entity: "ORDER".to_owned(),
            order,
            request_hash,
            revision: 0,
        }
    }

    pub(super) fn into_state(self) -> OrderState {
        OrderState {
            order: self.order,
            revision: self.revision,
        }
    }
}

pub(crate) fn to_item<T: Serialize>(value: &T) -> Result<Item, serde_dynamo::Error> {
    serde_dynamo::to_item(value)
}

pub(crate) fn from_item<T: for<'de> Deserialize<'de>>(
    item: Item,
) -> Result<T, serde_dynamo::Error> {
    serde_dynamo::from_item(item)
}

pub(crate) fn string_value(text: impl Into<String>) -> AttributeValue {
    AttributeValue::S(text.into())
}

pub(crate) fn number_value(number: i64) -> AttributeValue {
    AttributeValue::N(number.to_string())
}

pub(crate) fn entity_of(item: &Item) -> Option<&str> {
    item.get("entity")
        .and_then(|value| value.as_s().ok())
        .map(String::as_str)
}
