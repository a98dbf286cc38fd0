//! Item mapping between domain types and DynamoDB items (with `serde_dynamo`), and the key
//! design of the single table:
//!
//! | entity  | pk                   | sk                | listSk (LSI byCreatedAt)  |
//! |---------|----------------------|-------------------|---------------------------|
//! | user    | `USER#<userId>`      | `USER`            | -                         |
//! | product | `PRODUCT#<id>`       | `PRODUCT`         | -                         |
//! | shard   | `PRODUCT#<id>#<n>`   | `STOCK`           | -                         |
//! | order   | `USER#<userId>`      | `ORDER#<orderId>` | `<createdAt>#<orderId>`   |
//!
//! Orders live in their user's partition, so "another user's order" is simply not found, and
//! the list query newest-first is one `Query` on the LSI.
//!
//! A product's stock is its shards' (`domain::stock`): shard 0 is the product item (price,
//! stock, and `shardCount` when it is more than 1), shards 1..n-1 are items of their own
//! partition keys, which is what spreads a flash sale's writes over partitions (and what the
//! IAM pattern `PRODUCT#*` already covers; ids cannot hold `#`, so no product's key is another's
//! shard's).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use crate::domain::{
    Fingerprint, Money, Order, OrderId, OrderState, ProductId, ShardCount, ShardCounts, Timestamp,
    UserId,
};

pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) const PK: &str = "pk";
pub(crate) const SK: &str = "sk";
pub(crate) const LIST_SK: &str = "listSk";
pub(crate) const USER_SK: &str = "USER";
pub(crate) const PRODUCT_SK: &str = "PRODUCT";
pub(crate) const SHARD_SK: &str = "STOCK";

pub(crate) fn user_pk(user_id: &UserId) -> String {
    format!("USER#{user_id}")
}

pub(crate) fn product_pk(product_id: &ProductId) -> String {
    format!("PRODUCT#{product_id}")
}

/// The partition key of one shard of a product's stock (shard 0 is the product item).
pub(crate) fn shard_pk(product_id: &ProductId, shard: u32) -> String {
    if shard == 0 {
        product_pk(product_id)
    } else {
        format!("PRODUCT#{product_id}#{shard}")
    }
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

pub(crate) fn shard_key(product_id: &ProductId, shard: u32) -> Item {
    if shard == 0 {
        product_key(product_id)
    } else {
        key(shard_pk(product_id, shard), SHARD_SK)
    }
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
    /// may lack it: the audit says so, the request path never reads it). With shards, the
    /// initial stock of all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_stock: Option<i64>,
    /// How many shards sales choose from; absent on an ordinary product (one shard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_count: Option<ShardCount>,
    /// How many shards may hold units, while a reshard to fewer shards drains the others;
    /// absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_span: Option<u32>,
}

/// One shard of a product's stock beyond the first (the product item). Written by `seed` and
/// by rearrangements; sales and cancellations change its stock in place.
#[cfg(feature = "admin")]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ShardRecord {
    pub pk: String,
    pub sk: String,
    pub entity: String,
    pub product_id: ProductId,
    pub shard: u32,
    pub stock: i64,
}

#[cfg(feature = "admin")]
impl ShardRecord {
    pub(crate) fn new(product_id: &ProductId, shard: u32, stock: i64) -> Self {
        Self {
            pk: shard_pk(product_id, shard),
            sk: SHARD_SK.to_owned(),
            entity: SHARD_ENTITY.to_owned(),
            product_id: product_id.clone(),
            shard,
            stock,
        }
    }
}

/// What a create reads of a product: its price. The stock is changed by the transaction's
/// conditional update, and audit-only fields (`initialStock`) stay off the request path, so a
/// product written without them can still be ordered.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProductPrice {
    pub product_id: ProductId,
    pub price: Money,
    /// The shards sales choose from (absent: one), so the fast path reads no shard.
    #[serde(default)]
    pub shard_count: Option<ShardCount>,
}

/// What a stock read sees of one shard: shard 0's item also says how many shards there are.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ShardStock {
    #[serde(default)]
    pub stock: i64,
    #[serde(default)]
    pub shard: u32,
    #[serde(default)]
    pub shard_count: Option<ShardCount>,
    #[serde(default)]
    pub shard_span: Option<u32>,
    /// The span of shards the seal covers, when the product is sealed (sold out).
    #[serde(default)]
    pub sealed: Option<u32>,
}

/// The attribute that seals a shard: every shard of a sold-out product carries it.
pub(crate) const SEALED: &str = "sealed";

/// The entity name of shard items.
#[cfg(feature = "admin")]
pub(crate) const SHARD_ENTITY: &str = "STOCK_SHARD";

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
    /// The shard counts of its sharded products, as its create saw them (absent for an order of
    /// ordinary products, so their items are as they always were).
    #[serde(default, skip_serializing_if = "ShardCounts::is_empty")]
    pub shard_counts: ShardCounts,
}

impl OrderRecord {
    pub(super) fn new(order: Order, request_hash: Fingerprint, shard_counts: ShardCounts) -> Self {
        Self {
            pk: user_pk(&order.user_id),
            sk: order_sk(order.order_id),
            list_sk: list_sk(order.created_at, order.order_id),
            entity: "ORDER".to_owned(),
            order,
            request_hash,
            revision: 0,
            shard_counts,
        }
    }

    pub(super) fn into_state(self) -> OrderState {
        OrderState {
            order: self.order,
            revision: self.revision,
            shard_counts: self.shard_counts,
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
