//! Operator tasks on the table: seeding deterministic users and products (recording the
//! initial values the audit checks against; a sharded product's stock spread over its shards),
//! wiping it, and what tests and tools read back (orders, a product's stock summed over its
//! shards, a balance).

use aws_sdk_dynamodb::types::{DeleteRequest, PutRequest, WriteRequest};
use serde::Serialize;

use super::errors::{mapping_error, store_error};
use super::items::{
    entity_of, from_item, product_pk, to_item, user_pk, Item, OrderRecord, ProductRecord,
    ShardRecord, UserRecord, PRODUCT_SK, USER_SK,
};
use super::retry::back_off;
use super::{DynamoOrderStore, ReadCatalog};
use crate::domain::{Money, Order, ProductId, ShardCount, ShardCounts, UserId};
use crate::error::ServiceError;

/// What `seed` writes: `user-1..user-N` with `balance` each, `product-1..product-M` with
/// deterministic prices and `stock` each, plus any named extra products (name, price, stock;
/// e.g. a flash-sale product with little stock). A product named in `sharded` gets its stock
/// spread evenly over that many shards; every other product has one, as always.
#[derive(Debug, Clone)]
pub struct SeedPlan {
    pub users: u32,
    pub balance: i64,
    pub products: u32,
    pub stock: i64,
    pub extra_products: Vec<(String, i64, i64)>,
    pub sharded: Vec<(String, u32)>,
}

impl Default for SeedPlan {
    fn default() -> Self {
        Self {
            users: 1_000,
            balance: 1_000_000,
            products: 100,
            stock: 1_000,
            extra_products: Vec::new(),
            sharded: Vec::new(),
        }
    }
}

impl SeedPlan {
    /// The products the plan seeds: (name, price, stock).
    pub fn products(&self) -> impl Iterator<Item = (String, i64, i64)> + '_ {
        (1..=self.products)
            .map(|number| {
                (
                    format!("product-{number}"),
                    seeded_price(number),
                    self.stock,
                )
            })
            .chain(self.extra_products.iter().cloned())
    }

    /// The shard count of each product the plan shards, checked: every name must be one of its
    /// products, every count within bounds.
    pub fn shard_counts(&self) -> Result<ShardCounts, ServiceError> {
        let names: std::collections::HashSet<String> =
            self.products().map(|(name, _, _)| name).collect();
        let mut counts = ShardCounts::default();
        for (name, count) in &self.sharded {
            if !names.contains(name) {
                return Err(ServiceError::Validation(format!(
                    "the seed plan shards {name}, which it does not seed"
                )));
            }
            counts.set(ProductId::parse(name)?, ShardCount::new(*count)?);
        }
        Ok(counts)
    }
}

/// The price of `product-<number>`: deterministic, between 1,000 and 50,000 KRW in steps of 100.
pub fn seeded_price(number: u32) -> i64 {
    1_000 + i64::from(number.wrapping_mul(7_919) % 491) * 100
}

/// What a table holds, as far as seeding is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableContents {
    Missing,
    Empty,
    HoldsData,
}

#[derive(Debug, Clone, Serialize)]
pub struct SeedSummary {
    pub users: u32,
    pub products: u32,
    pub total_balance: i64,
    pub total_stock: i64,
}

impl DynamoOrderStore {
    /// Writes the seed plan with `BatchWriteItem`, a few batches at a time. A sharded
    /// product's units are all in its first shard: `app::stock::seed` spreads them.
    pub async fn seed(&self, plan: &SeedPlan) -> Result<SeedSummary, ServiceError> {
        let mut items: Vec<Item> = Vec::with_capacity(plan.users as usize + plan.products as usize);
        for number in 1..=plan.users {
            let user_id = UserId::parse(&format!("user-{number}"))?;
            let record = UserRecord {
                pk: user_pk(&user_id),
                sk: USER_SK.to_owned(),
                entity: "USER".to_owned(),
                user_id,
                balance: plan.balance,
                initial_balance: plan.balance,
            };
            items.push(to_item(&record).map_err(|error| mapping_error("a user", error))?);
        }
        let shard_counts = plan.shard_counts()?;
        let mut total_stock = 0_i64;
        for (name, price, stock) in plan.products() {
            let product_id = ProductId::parse(&name)?;
            total_stock += stock;
            // A sharded product's units all start in its first shard, the others empty:
            // spreading them is a decision, the application's (`app::stock::seed`).
            let count = shard_counts.of(&product_id);
            for shard in 1..count.get() {
                let record = ShardRecord::new(&product_id, shard, 0);
                items.push(to_item(&record).map_err(|error| mapping_error("a shard", error))?);
            }
            let record = ProductRecord {
                pk: product_pk(&product_id),
                sk: PRODUCT_SK.to_owned(),
                entity: "PRODUCT".to_owned(),
                product_id,
                price: Money::new(price)?,
                stock,
                initial_stock: Some(stock),
                shard_count: count.is_sharded().then_some(count),
                shard_span: None,
            };
            items.push(to_item(&record).map_err(|error| mapping_error("a product", error))?);
        }
        let mut batches = tokio::task::JoinSet::new();
        for chunk in items.chunks(25) {
            let requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|item| {
                    PutRequest::builder()
                        .set_item(Some(item.clone()))
                        .build()
                        .map(|put| WriteRequest::builder().put_request(put).build())
                        .map_err(|error| ServiceError::internal(error.to_string()))
                })
                .collect::<Result<_, _>>()?;
            let store = self.clone();
            batches.spawn(async move { store.write_batch(requests).await });
            if batches.len() >= 8 {
                if let Some(done) = batches.join_next().await {
                    done.map_err(|error| ServiceError::internal(error.to_string()))??;
                }
            }
        }
        while let Some(done) = batches.join_next().await {
            done.map_err(|error| ServiceError::internal(error.to_string()))??;
        }
        Ok(SeedSummary {
            users: plan.users,
            products: plan.products().count() as u32,
            total_balance: plan.balance * i64::from(plan.users),
            total_stock,
        })
    }

    async fn write_batch(&self, mut requests: Vec<WriteRequest>) -> Result<(), ServiceError> {
        for attempt in 1..=20 {
            let output = self
                .client
                .batch_write_item()
                .request_items(self.table_name(), requests)
                .send()
                .await
                .map_err(|error| store_error("BatchWriteItem", error))?;
            requests = output
                .unprocessed_items
                .and_then(|mut unprocessed| unprocessed.remove(self.table_name()))
                .unwrap_or_default();
            if requests.is_empty() {
                return Ok(());
            }
            back_off(attempt).await;
        }
        Err(ServiceError::internal(
            "BatchWriteItem kept leaving items unprocessed",
        ))
    }

    /// Every item of the table, read with a parallel scan.
    pub(super) async fn scan_all(&self) -> Result<Vec<Item>, ServiceError> {
        const SEGMENTS: i32 = 4;
        let mut segments = tokio::task::JoinSet::new();
        for segment in 0..SEGMENTS {
            let store = self.clone();
            segments.spawn(async move {
                let mut items = Vec::new();
                let mut start = None;
                loop {
                    let output = store
                        .client
                        .scan()
                        .table_name(store.table_name())
                        .segment(segment)
                        .total_segments(SEGMENTS)
                        .consistent_read(true)
                        .set_exclusive_start_key(start)
                        .send()
                        .await
                        .map_err(|error| store_error("Scan", error))?;
                    items.extend(output.items.unwrap_or_default());
                    match output.last_evaluated_key {
                        Some(key) if !key.is_empty() => start = Some(key),
                        _ => return Ok::<_, ServiceError>(items),
                    }
                }
            });
        }
        let mut all = Vec::new();
        while let Some(done) = segments.join_next().await {
            all.extend(done.map_err(|error| ServiceError::internal(error.to_string()))??);
        }
        Ok(all)
    }

    /// Whether the table exists and holds anything, from one strongly consistent `Scan` of one
    /// item (no `DescribeTable`, which some emulators answer with values the SDK refuses).
    pub async fn contents(&self) -> Result<TableContents, ServiceError> {
        let scanned = self
            .client
            .scan()
            .table_name(self.table_name())
            .limit(1)
            .consistent_read(true)
            .projection_expression(super::items::PK)
            .send()
            .await;
        match scanned {
            Ok(output) if output.items().is_empty() => Ok(TableContents::Empty),
            Ok(_) => Ok(TableContents::HoldsData),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|error| error.is_resource_not_found_exception()) =>
            {
                Ok(TableContents::Missing)
            }
            Err(error) => Err(store_error("Scan", error)),
        }
    }

    /// Deletes every item and keeps the table (its settings, streams, backups and the stack
    /// that owns it): how a deployed stage is reset before seeding. Returns how many items
    /// were deleted.
    pub async fn wipe(&self) -> Result<usize, ServiceError> {
        let keys: Vec<Item> = self
            .scan_all()
            .await?
            .into_iter()
            .map(|item| {
                item.into_iter()
                    .filter(|(name, _)| name == super::items::PK || name == super::items::SK)
                    .collect()
            })
            .collect();
        for chunk in keys.chunks(25) {
            let requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|key| {
                    DeleteRequest::builder()
                        .set_key(Some(key.clone()))
                        .build()
                        .map(|delete| WriteRequest::builder().delete_request(delete).build())
                        .map_err(|error| ServiceError::internal(error.to_string()))
                })
                .collect::<Result<_, _>>()?;
            self.write_batch(requests).await?;
        }
        Ok(keys.len())
    }

    /// Every order in the table (for the drills' ledger comparison and tests).
    pub async fn all_orders(&self) -> Result<Vec<Order>, ServiceError> {
        let mut orders = Vec::new();
        for item in self.scan_all().await? {
            if entity_of(&item) == Some("ORDER") {
                let record: OrderRecord =
                    from_item(item).map_err(|error| mapping_error("an order", error))?;
                orders.push(record.order);
            }
        }
        Ok(orders)
    }

    /// The current stock of a product, if it exists: the sum over its shards.
    pub async fn product_stock(&self, product_id: &ProductId) -> Result<Option<i64>, ServiceError> {
        Ok(self
            .read_stock(product_id, ShardCount::ONE)
            .await?
            .map(|layout| layout.total()))
    }

    /// The current balance of a user, if it exists.
    pub async fn user_balance(&self, user_id: &UserId) -> Result<Option<i64>, ServiceError> {
        let output = self
            .client
            .get_item()
            .table_name(self.table_name())
            .set_key(Some(super::items::user_key(user_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| store_error("GetItem", error))?;
        match output.item {
            Some(item) if !item.is_empty() => from_item::<UserRecord>(item)
                .map(|user| Some(user.balance))
                .map_err(|error| mapping_error("a user", error)),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_prices_are_deterministic_and_in_range() {
        let prices: Vec<i64> = (1..=100).map(seeded_price).collect();
        assert!(prices.iter().all(|price| (1_000..=50_000).contains(price)));
        assert_eq!(prices, (1..=100).map(seeded_price).collect::<Vec<_>>());
        // Prices vary, so totals differ between orders.
        let distinct: std::collections::HashSet<_> = prices.iter().collect();
        assert!(distinct.len() > 50);
    }
}
