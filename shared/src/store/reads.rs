//! The reads of the service on DynamoDB: what placing an order needs (the user and the products'
//! prices and shard counts, in one `BatchGetItem`; a sharded product's shards when the one a
//! sale chose ran short, strongly consistent, and once at one instant when they look short
//! together), one order as it stands (a strongly consistent `GetItem`), and a page of a user's
//! orders (one `Query` on the list index).

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::transact_get_items::TransactGetItemsError;
use aws_sdk_dynamodb::types::{Get, KeysAndAttributes, TransactGetItem};

use super::errors::{is_throttling_code, mapping_error, store_error, RETRY_AFTER};
use super::items::{
    entity_of, from_item, list_sk, order_key, product_key, shard_key, string_value, user_key,
    user_pk, Item, OrderRecord, ProductPrice, ShardStock, LIST_SK, PK, SK,
};
use super::retry::{back_off, gave_up, MAX_THROTTLED_SENDS, MAX_WRITE_ATTEMPTS};
use super::schema::LIST_INDEX;
use super::{Catalog, DynamoOrderStore, OrderPage, PageRequest, ReadCatalog, ReadOrders};
use crate::domain::{OrderId, OrderState, ProductId, ShardCount, ShardCounts, StockLayout, UserId};
use crate::error::ServiceError;

pub(super) fn build_error(error: impl std::fmt::Display) -> ServiceError {
    ServiceError::internal(format!("cannot build a DynamoDB request: {error}"))
}

impl DynamoOrderStore {
    /// Reads an order's record with a strongly consistent read.
    pub(super) async fn read_order_record(
        &self,
        user_id: &UserId,
        order_id: OrderId,
    ) -> Result<Option<OrderRecord>, ServiceError> {
        let output = self
            .client
            .get_item()
            .table_name(self.table_name())
            .set_key(Some(order_key(user_id, order_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| store_error("GetItem", error))?;
        match output.item {
            Some(item) if entity_of(&item) == Some("ORDER") => from_item(item)
                .map(Some)
                .map_err(|error| mapping_error("an order", error)),
            _ => Ok(None),
        }
    }

    /// The order item a failed condition returned (`ALL_OLD`), or a fresh read when DynamoDB
    /// returned none (the item is gone, or the emulator in use does not return it).
    pub(super) async fn record_after_failed_condition(
        &self,
        returned: Option<&Item>,
        user_id: &UserId,
        order_id: OrderId,
    ) -> Result<Option<OrderRecord>, ServiceError> {
        if let Some(item) = returned.filter(|item| !item.is_empty()) {
            if let Ok(record) = from_item::<OrderRecord>(item.clone()) {
                return Ok(Some(record));
            }
        }
        self.read_order_record(user_id, order_id).await
    }

    /// The user's balance as it stands (strongly consistent), `None` if the user is gone.
    pub(super) async fn read_balance(&self, user_id: &UserId) -> Result<Option<i64>, ServiceError> {
        let output = self
            .client
            .get_item()
            .table_name(self.table_name())
            .set_key(Some(user_key(user_id)))
            .projection_expression("balance")
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| store_error("GetItem", error))?;
        Ok(output.item.filter(|item| !item.is_empty()).map(|item| {
            item.get("balance")
                .and_then(|value| value.as_n().ok())
                .and_then(|number| number.parse().ok())
                .unwrap_or(0)
        }))
    }

    async fn user_exists(&self, user_id: &UserId) -> Result<bool, ServiceError> {
        let output = self
            .client
            .get_item()
            .table_name(self.table_name())
            .set_key(Some(user_key(user_id)))
            .projection_expression("#pk, #sk")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| store_error("GetItem", error))?;
        Ok(output.item.is_some_and(|item| !item.is_empty()))
    }
}

impl DynamoOrderStore {
    /// Every item of `keys` in `BatchGetItem` rounds; keys DynamoDB leaves unprocessed (a
    /// throttled partition) are asked again with backoff.
    async fn batch_get(
        &self,
        keys: Vec<Item>,
        consistent: bool,
    ) -> Result<Vec<Item>, ServiceError> {
        let mut found: Vec<Item> = Vec::with_capacity(keys.len());
        let mut pending = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .set_consistent_read(consistent.then_some(true))
            .build()
            .map_err(build_error)?;
        let mut attempt = 1;
        loop {
            let mut output = self
                .client
                .batch_get_item()
                .request_items(self.table_name(), pending)
                .send()
                .await
                .map_err(|error| store_error("BatchGetItem", error))?;
            if let Some(items) = output
                .responses
                .as_mut()
                .and_then(|responses| responses.remove(self.table_name()))
            {
                found.extend(items);
            }
            match output
                .unprocessed_keys
                .and_then(|mut unprocessed| unprocessed.remove(self.table_name()))
            {
                Some(rest) if !rest.keys().is_empty() => {
                    if attempt >= MAX_WRITE_ATTEMPTS {
                        // DynamoDB leaves keys unprocessed when their partitions are past
                        // their throughput: the items are busy, the store is up.
                        tracing::warn!(attempt, "BatchGetItem left keys unprocessed");
                        return Err(ServiceError::Throttled {
                            retry_after: RETRY_AFTER,
                        });
                    }
                    back_off(attempt).await;
                    attempt += 1;
                    pending = rest;
                }
                _ => return Ok(found),
            }
        }
    }

    /// The shards `shards` of a product, by shard.
    async fn shards_of(
        &self,
        product_id: &ProductId,
        shards: std::ops::Range<u32>,
    ) -> Result<HashMap<u32, ShardStock>, ServiceError> {
        if shards.is_empty() {
            return Ok(HashMap::new());
        }
        let keys = shards.map(|shard| shard_key(product_id, shard)).collect();
        self.batch_get(keys, true)
            .await?
            .into_iter()
            .filter(|item| !item.is_empty())
            .map(|item| {
                from_item::<ShardStock>(item)
                    .map(|shard| (shard.shard, shard))
                    .map_err(|error| mapping_error("a stock shard", error))
            })
            .collect()
    }

    /// The shards 0..hint of a product in one transactional read, by shard; `Ok(None)` while
    /// conflicting transactions kept cancelling it past the retry bound.
    async fn shards_at_once(
        &self,
        product_id: &ProductId,
        hint: u32,
    ) -> Result<HashMap<u32, ShardStock>, ServiceError> {
        let gets = (0..hint)
            .map(|shard| {
                Get::builder()
                    .table_name(self.table_name())
                    .set_key(Some(shard_key(product_id, shard)))
                    .build()
                    .map(|get| TransactGetItem::builder().get(get).build())
                    .map_err(build_error)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut attempt = 1;
        // As for writes: a throttled read of the shards gets two sends, a conflict ten.
        let mut throttled_sends = 0;
        loop {
            let sent = self
                .client
                .transact_get_items()
                .set_transact_items(Some(gets.clone()))
                .send()
                .await;
            let error = match sent {
                Ok(output) => {
                    let mut shards = HashMap::new();
                    for item in output.responses.unwrap_or_default() {
                        if let Some(item) = item.item.filter(|item| !item.is_empty()) {
                            let shard: ShardStock = from_item(item)
                                .map_err(|error| mapping_error("a stock shard", error))?;
                            shards.insert(shard.shard, shard);
                        }
                    }
                    return Ok(shards);
                }
                Err(error) => error,
            };
            let throttled = match error.as_service_error() {
                Some(TransactGetItemsError::TransactionCanceledException(cancelled)) => cancelled
                    .cancellation_reasons()
                    .iter()
                    .any(|reason| is_throttling_code(reason.code())),
                _ => return Err(store_error("TransactGetItems", error)),
            };
            throttled_sends += u32::from(throttled);
            if attempt >= MAX_WRITE_ATTEMPTS || throttled_sends >= MAX_THROTTLED_SENDS {
                return Err(gave_up(throttled));
            }
            back_off(attempt).await;
            attempt += 1;
        }
    }
}

/// A layout from the shards read, if the product item (shard 0) was among them; with the
/// arrangement the product item states, and the shards beyond what was read still to read.
fn layout_of(
    product_id: &ProductId,
    shards: &HashMap<u32, ShardStock>,
) -> Option<(StockLayout, u32)> {
    let head = shards.get(&0)?;
    let count = head.shard_count.unwrap_or(ShardCount::ONE);
    let span = head.shard_span.unwrap_or(0).max(count.get());
    let layout = StockLayout {
        product_id: product_id.clone(),
        count,
        shards: (0..span)
            .map(|shard| shards.get(&shard).map(|found| found.stock))
            .collect(),
        sealed: head.sealed.is_some(),
    };
    Some((layout, span))
}

impl ReadCatalog for DynamoOrderStore {
    /// The user and every product in one `BatchGetItem` (eventually consistent: prices are
    /// snapshotted as read, stock is checked by the write's own condition, and a shard count
    /// is only where sales start). Keys DynamoDB leaves unprocessed (a throttled partition) are
    /// asked again with backoff.
    async fn read_catalog(
        &self,
        user_id: &UserId,
        products: &[ProductId],
    ) -> Result<Catalog, ServiceError> {
        self.guarded(async {
            let mut keys = vec![user_key(user_id)];
            keys.extend(products.iter().map(product_key));
            let found = self.batch_get(keys, false).await?;
            let mut catalog = Catalog {
                user_exists: found.iter().any(|item| entity_of(item) == Some("USER")),
                prices: HashMap::with_capacity(products.len()),
                shard_counts: ShardCounts::default(),
            };
            for item in found {
                if entity_of(&item) == Some("PRODUCT") {
                    let product: ProductPrice =
                        from_item(item).map_err(|error| mapping_error("a product", error))?;
                    if let Some(count) = product.shard_count {
                        catalog.shard_counts.set(product.product_id.clone(), count);
                    }
                    catalog.prices.insert(product.product_id, product.price);
                }
            }
            Ok(catalog)
        })
        .await
    }

    /// One strongly consistent `BatchGetItem` of the shards the caller expects, and a second of
    /// the rest when the product item says there are more.
    async fn read_stock(
        &self,
        product_id: &ProductId,
        hint: ShardCount,
    ) -> Result<Option<StockLayout>, ServiceError> {
        self.guarded(async {
            let mut shards = self.shards_of(product_id, 0..hint.get()).await?;
            let Some((_, span)) = layout_of(product_id, &shards) else {
                return Ok(None);
            };
            if span > hint.get() {
                shards.extend(self.shards_of(product_id, hint.get()..span).await?);
            }
            Ok(layout_of(product_id, &shards).map(|(layout, _)| layout))
        })
        .await
    }

    /// One `TransactGetItems` of the shards the caller expects; again if the product item says
    /// the shards are others now (a reshard ran between).
    async fn read_stock_at_once(
        &self,
        product_id: &ProductId,
        hint: ShardCount,
    ) -> Result<Option<StockLayout>, ServiceError> {
        self.guarded(async {
            let mut expected = hint.get();
            for _ in 0..3 {
                let shards = self.shards_at_once(product_id, expected).await?;
                let Some((layout, span)) = layout_of(product_id, &shards) else {
                    return Ok(None);
                };
                if span == expected {
                    return Ok(Some(layout));
                }
                expected = span;
            }
            Err(ServiceError::Contention {
                retry_after: RETRY_AFTER,
            })
        })
        .await
    }
}

impl ReadOrders for DynamoOrderStore {
    async fn read_order(
        &self,
        user_id: &UserId,
        order_id: OrderId,
    ) -> Result<Option<OrderState>, ServiceError> {
        self.guarded(async {
            Ok(self
                .read_order_record(user_id, order_id)
                .await?
                .map(OrderRecord::into_state))
        })
        .await
    }

    async fn list_orders(
        &self,
        user_id: &UserId,
        page: PageRequest,
    ) -> Result<OrderPage, ServiceError> {
        let cursor = page.cursor();
        self.guarded(async {
            let pk = user_pk(user_id);
            let mut query = self
                .client
                .query()
                .table_name(self.table_name())
                .index_name(LIST_INDEX)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", string_value(pk.clone()))
                .scan_index_forward(false)
                .consistent_read(true)
                .limit(i32::from(page.limit()));
            if let Some(cursor) = cursor {
                let mut start = order_key(user_id, cursor.order_id);
                start.insert(
                    LIST_SK.to_owned(),
                    string_value(list_sk(cursor.created_at, cursor.order_id)),
                );
                query = query.set_exclusive_start_key(Some(start));
            }
            let output = query
                .send()
                .await
                .map_err(|error| store_error("Query", error))?;
            let mut orders = Vec::with_capacity(output.items().len());
            for item in output.items.unwrap_or_default() {
                let record: OrderRecord =
                    from_item(item).map_err(|error| mapping_error("an order", error))?;
                orders.push(record.order);
            }
            let first_page_is_empty = orders.is_empty() && cursor.is_none();
            let mut page = OrderPage::new(orders, output.last_evaluated_key.is_some());
            if first_page_is_empty {
                page.user_exists = Some(self.user_exists(user_id).await?);
            }
            Ok(page)
        })
        .await
    }
}
