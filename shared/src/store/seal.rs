//! Sealing a sold-out product's shards, and taking the seal off. When a create finds every
//! shard of a sharded product empty at one instant, it marks each of them `sealed` (with the
//! span of shards the seal covers) in one transaction, on condition that each is still empty
//! and the product item's arrangement is the one it read. From then on a create refused by
//! any shard sees the seal on the item its failed take returns, which proves the product sold
//! out: no read of the other shards, and the refusals of a sold-out sale spread over the
//! shards' partitions as its sales did. Units never go to a sealed shard (a give-back's
//! condition, a rearrangement's conditions): what gives units back first takes the seal off
//! every shard, in one transaction, so a seal on any shard always means all are empty.

use aws_sdk_dynamodb::types::{TransactWriteItem, Update};

use super::items::{number_value, shard_key, SEALED};
use super::reads::build_error;
use super::writes::Cancelled;
use super::DynamoOrderStore;
use crate::domain::{ProductId, StockLayout};
use crate::error::ServiceError;

impl DynamoOrderStore {
    fn seal_update(
        &self,
        product_id: &ProductId,
        shard: u32,
        expression: &str,
        condition: String,
    ) -> Result<Update, ServiceError> {
        Update::builder()
            .table_name(self.table_name())
            .set_key(Some(shard_key(product_id, shard)))
            .update_expression(expression)
            .condition_expression(condition)
            .expression_attribute_names("#sealed", SEALED)
            .build()
            .map_err(build_error)
    }

    pub(super) async fn seal_shards(&self, layout: &StockLayout) -> Result<bool, ServiceError> {
        let span = layout.span();
        let arrangement = if layout.count.is_sharded() {
            "shardCount = :count"
        } else {
            "attribute_not_exists(shardCount)"
        };
        let head_span = if span > layout.count.get() {
            "shardSpan = :span"
        } else {
            "attribute_not_exists(shardSpan)"
        };
        let items = (0..span)
            .map(|shard| {
                let mut condition = "stock = :zero AND attribute_not_exists(#sealed)".to_owned();
                if shard == 0 {
                    condition.push_str(&format!(" AND {arrangement} AND {head_span}"));
                }
                let mut update =
                    self.seal_update(&layout.product_id, shard, "SET #sealed = :span", condition)?;
                let values = update
                    .expression_attribute_values
                    .get_or_insert_with(Default::default);
                values.insert(":zero".to_owned(), number_value(0));
                values.insert(":span".to_owned(), number_value(span.into()));
                if shard == 0 && layout.count.is_sharded() {
                    values.insert(":count".to_owned(), number_value(layout.count.get().into()));
                }
                Ok(TransactWriteItem::builder().update(update).build())
            })
            .collect::<Result<Vec<_>, ServiceError>>()?;
        match self.transact("SealStock", items).await {
            Ok(()) => Ok(true),
            Err(Cancelled::Conditions(_)) => Ok(false),
            Err(Cancelled::Store(error)) => Err(error),
        }
    }

    pub(super) async fn unseal_shards(
        &self,
        product_id: &ProductId,
        span: u32,
    ) -> Result<bool, ServiceError> {
        if span == 0 {
            return Err(build_error("a seal over no shard"));
        }
        let items = (0..span)
            .map(|shard| {
                let mut update = self.seal_update(
                    product_id,
                    shard,
                    "REMOVE #sealed",
                    "#sealed = :span".to_owned(),
                )?;
                update
                    .expression_attribute_values
                    .get_or_insert_with(Default::default)
                    .insert(":span".to_owned(), number_value(span.into()));
                Ok(TransactWriteItem::builder().update(update).build())
            })
            .collect::<Result<Vec<_>, ServiceError>>()?;
        match self.transact("UnsealStock", items).await {
            Ok(()) => Ok(true),
            Err(Cancelled::Conditions(_)) => Ok(false),
            Err(Cancelled::Store(error)) => Err(error),
        }
    }
}
