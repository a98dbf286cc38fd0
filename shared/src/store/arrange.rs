//! Writing one decided step of laying a product's stock out again (`domain::Rearrangement`: a
//! reshard or a rebalance) as one `TransactWriteItems`. The product item's arrangement must
//! still be the one the step was decided from; each shard change carries its own condition
//! (`stock >= units` to take, the shard exists to give, absent to create, `stock = seen` to
//! remove), and no shard it touches may be sealed (a sold-out product's first step takes the
//! seal off: `store::seal`). The changes move as many units out of shards as into them, so whatever runs
//! concurrently, a unit is never lost or invented: a sale that left a shard with less than the
//! step takes from it cancels the step, and the operator's loop reads and decides again.

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};

use super::errors::mapping_error;
use super::items::{number_value, shard_key, to_item, ShardRecord, SEALED};
use super::reads::build_error;
use super::writes::Cancelled;
use super::{ArrangeStock, DynamoOrderStore, Rejection, WriteError};
use crate::domain::{Arrangement, ProductId, Rearrangement, ShardChange};
use crate::error::ServiceError;

impl DynamoOrderStore {
    /// The product item's update: its arrangement from `from` to `to`, and its own units moved
    /// by `delta` (a take of them needing as many).
    fn head_update(
        &self,
        product_id: &ProductId,
        from: Arrangement,
        to: Arrangement,
        delta: i64,
    ) -> Result<TransactWriteItem, ServiceError> {
        let mut conditions = vec![
            "attribute_exists(pk)".to_owned(),
            "attribute_not_exists(#sealed)".to_owned(),
        ];
        conditions.push(if from.count.is_sharded() {
            "shardCount = :fromCount".to_owned()
        } else {
            "(attribute_not_exists(shardCount) OR shardCount = :fromCount)".to_owned()
        });
        conditions.push(if from.span > from.count.get() {
            "shardSpan = :fromSpan".to_owned()
        } else {
            "attribute_not_exists(shardSpan)".to_owned()
        });
        let mut sets = Vec::new();
        let mut removes = Vec::new();
        let mut update = Update::builder()
            .table_name(self.table_name())
            .set_key(Some(shard_key(product_id, 0)))
            .expression_attribute_names("#sealed", SEALED)
            .expression_attribute_values(":fromCount", number_value(from.count.get().into()));
        if from.span > from.count.get() {
            update =
                update.expression_attribute_values(":fromSpan", number_value(from.span.into()));
        }
        if to.count.is_sharded() {
            sets.push("shardCount = :toCount");
            update =
                update.expression_attribute_values(":toCount", number_value(to.count.get().into()));
        } else {
            removes.push("shardCount");
        }
        if to.span > to.count.get() {
            sets.push("shardSpan = :toSpan");
            update = update.expression_attribute_values(":toSpan", number_value(to.span.into()));
        } else {
            removes.push("shardSpan");
        }
        if delta != 0 {
            sets.push("stock = stock + :delta");
            update = update.expression_attribute_values(":delta", number_value(delta));
            if delta < 0 {
                conditions.push("stock >= :needed".to_owned());
                update = update.expression_attribute_values(":needed", number_value(-delta));
            }
        }
        let mut expression = String::new();
        if !sets.is_empty() {
            expression.push_str(&format!("SET {}", sets.join(", ")));
        }
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        Ok(TransactWriteItem::builder()
            .update(
                update
                    .update_expression(expression.trim())
                    .condition_expression(conditions.join(" AND "))
                    .build()
                    .map_err(build_error)?,
            )
            .build())
    }

    /// One shard's change (shard 1 and up), under its condition.
    fn shard_change(
        &self,
        product_id: &ProductId,
        change: ShardChange,
    ) -> Result<TransactWriteItem, ServiceError> {
        let key = shard_key(product_id, change.shard());
        let update = |expression: &str, condition: &str, units: i64| {
            Update::builder()
                .table_name(self.table_name())
                .set_key(Some(key.clone()))
                .update_expression(expression)
                .condition_expression(format!("{condition} AND attribute_not_exists(#sealed)"))
                .expression_attribute_names("#sealed", SEALED)
                .expression_attribute_values(":units", number_value(units))
                .build()
                .map(|update| TransactWriteItem::builder().update(update).build())
                .map_err(build_error)
        };
        match change {
            ShardChange::Take { units, .. } => {
                update("SET stock = stock - :units", "stock >= :units", units)
            }
            ShardChange::Give { units, .. } => {
                update("SET stock = stock + :units", "attribute_exists(pk)", units)
            }
            ShardChange::Create { shard, units } => {
                let record = ShardRecord::new(product_id, shard, units);
                let item = to_item(&record).map_err(|error| mapping_error("a shard", error))?;
                Put::builder()
                    .table_name(self.table_name())
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(pk)")
                    .build()
                    .map(|put| TransactWriteItem::builder().put(put).build())
                    .map_err(build_error)
            }
            ShardChange::Remove { seen, .. } => Delete::builder()
                .table_name(self.table_name())
                .set_key(Some(key))
                .condition_expression("stock = :seen AND attribute_not_exists(#sealed)")
                .expression_attribute_names("#sealed", SEALED)
                .expression_attribute_values(":seen", number_value(seen))
                .build()
                .map(|delete| TransactWriteItem::builder().delete(delete).build())
                .map_err(build_error),
        }
    }
}

impl ArrangeStock for DynamoOrderStore {
    async fn write_rearrangement(&self, step: &Rearrangement) -> Result<(), WriteError> {
        let product_id = &step.product_id;
        if step.unseals {
            return match self
                .guarded(self.unseal_shards(product_id, step.from.span))
                .await
            {
                Ok(true) => Ok(()),
                Ok(false) => Err(WriteError::Rejected(Rejection::StockMoved {
                    product_id: product_id.clone(),
                })),
                Err(error) => Err(WriteError::Failed(error)),
            };
        }
        let result = self
            .guarded(async {
                let mut head_delta = 0;
                let mut items = Vec::with_capacity(step.changes.len() + 1);
                for change in &step.changes {
                    match change {
                        ShardChange::Take { shard: 0, .. } | ShardChange::Give { shard: 0, .. } => {
                            head_delta += change.delta();
                        }
                        ShardChange::Create { shard: 0, .. } | ShardChange::Remove { shard: 0, .. } => {
                            return Err(ServiceError::internal(format!(
                                "a rearrangement of {product_id} creates or removes its product item"
                            )))
                        }
                        other => items.push(self.shard_change(product_id, *other)?),
                    }
                }
                items.insert(
                    0,
                    self.head_update(product_id, step.from, step.to, head_delta)?,
                );
                match self.transact("RearrangeStock", items).await {
                    Ok(()) => Ok(Ok(())),
                    Err(Cancelled::Conditions(_)) => Ok(Err(Rejection::StockMoved {
                        product_id: product_id.clone(),
                    })),
                    Err(Cancelled::Store(error)) => Err(error),
                }
            })
            .await;
        result?.map_err(WriteError::Rejected)
    }
}
