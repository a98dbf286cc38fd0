//! The reads of the service on DynamoDB: what placing an order needs (the user and the products'
//! prices, in one `BatchGetItem`), one order as it stands (a strongly consistent `GetItem`),
//! and a page of a user's orders (one `Query` on the list index).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::KeysAndAttributes;

use super::errors::{mapping_error, store_error, RETRY_AFTER};
use super::items::{
    entity_of, from_item, list_sk, order_key, product_key, string_value, user_key, user_pk, Item,
    OrderRecord, ProductPrice, LIST_SK, PK, SK,
};
use super::retry::{back_off, MAX_WRITE_ATTEMPTS};
use super::schema::LIST_INDEX;
use super::{Catalog, Cursor, DynamoOrderStore, OrderPage, ReadCatalog, ReadOrders};
use crate::domain::{OrderId, OrderState, ProductId, UserId};
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

impl ReadCatalog for DynamoOrderStore {
    /// The user and every product in one `BatchGetItem` (eventually consistent: prices are
    /// snapshotted as read, and stock is checked by the write's own condition). Keys DynamoDB
    /// leaves unprocessed (a throttled partition) are asked again with backoff.
    async fn read_catalog(
        &self,
        user_id: &UserId,
        products: &[ProductId],
    ) -> Result<Catalog, ServiceError> {
        self.guarded(async {
            let mut keys = vec![user_key(user_id)];
            keys.extend(products.iter().map(product_key));
            let mut pending = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .build()
                .map_err(build_error)?;
            let mut found: Vec<Item> = Vec::with_capacity(products.len() + 1);
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
                    _ => break,
                }
            }
            let mut catalog = Catalog {
                user_exists: found.iter().any(|item| entity_of(item) == Some("USER")),
                prices: HashMap::with_capacity(products.len()),
            };
            for item in found {
                if entity_of(&item) == Some("PRODUCT") {
                    let product: ProductPrice =
                        from_item(item).map_err(|error| mapping_error("a product", error))?;
                    catalog.prices.insert(product.product_id, product.price);
                }
            }
            Ok(catalog)
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
        limit: u16,
        cursor: Option<&Cursor>,
    ) -> Result<OrderPage, ServiceError> {
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
                .limit(i32::from(limit));
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
