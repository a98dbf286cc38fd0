//! The writes of decided things on DynamoDB. Each is one `TransactWriteItems` whose conditions
//! make it correct under any interleaving; when DynamoDB cancels it for a failed condition, the
//! first failed item says which (`Rejection`), with what the store saw. Conflicts between
//! transactions and throttling are retried here, with one `ClientRequestToken` across resends.
//! No locks, no unconditioned read-modify-write, and no decision: what to write was decided by
//! the domain, and what to do about a rejection is the application's.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Put, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};

use super::errors::{is_throttling_code, mapping_error, store_error, RETRY_AFTER};
use super::items::{
    from_item, number_value, order_key, shard_key, string_value, to_item, user_key, Item,
    OrderRecord, ShardStock, SEALED,
};
use super::reads::build_error;
use super::retry::{back_off, gave_up, MAX_THROTTLED_SENDS, MAX_WRITE_ATTEMPTS};
use super::{
    DynamoOrderStore, NewOrderWrite, Rejection, SeenShard, TransitionWrite, WriteError, WriteOrders,
};
use crate::domain::{
    Answer, Arrangement, BalanceMove, Claim, Order, ProductId, ShardCount, StockLayout, Timestamp,
    UserId,
};
use crate::error::ServiceError;

/// Why a transaction did not commit.
pub(super) enum Cancelled {
    /// At least one condition was false; the reasons are in transaction item order.
    Conditions(Vec<CancellationReason>),
    Store(ServiceError),
}

pub(super) fn condition_failed(reason: &CancellationReason) -> bool {
    reason.code() == Some("ConditionalCheckFailed")
}

/// Which way a counter moves, and what the move needs.
#[derive(Debug, Clone, Copy)]
enum Move {
    /// Takes the amount away: the counter must hold at least that much.
    Take,
    /// Gives the amount back: the item must still exist.
    Give,
}

/// What each item of a transaction is, to read its cancellation reasons by.
#[derive(Debug, PartialEq, Eq)]
enum Part {
    Order,
    /// A shard of a product's stock that units are taken from.
    Stock(ProductId, u32),
    /// A shard of a product's stock that units go back to.
    Restock(ProductId, u32),
    Balance,
    Answer,
}

/// A transaction under construction: its items and what each is.
#[derive(Default)]
struct Transaction {
    parts: Vec<Part>,
    items: Vec<TransactWriteItem>,
}

impl Transaction {
    fn push(&mut self, part: Part, item: TransactWriteItem) {
        self.parts.push(part);
        self.items.push(item);
    }
}

impl DynamoOrderStore {
    /// Runs a transaction (`transact`): `None` when it committed, else the part whose condition
    /// failed first, with its reason. A cancellation that names no failed condition is ours.
    async fn commit(
        &self,
        operation: &'static str,
        transaction: Transaction,
    ) -> Result<Option<(Part, CancellationReason)>, ServiceError> {
        match self.transact(operation, transaction.items).await {
            Ok(()) => Ok(None),
            Err(Cancelled::Store(error)) => Err(error),
            Err(Cancelled::Conditions(reasons)) => transaction
                .parts
                .into_iter()
                .zip(reasons)
                .find(|(_, reason)| condition_failed(reason))
                .map(Some)
                .ok_or_else(|| {
                    ServiceError::internal(format!(
                        "{operation} was cancelled without a failed condition"
                    ))
                }),
        }
    }

    /// Runs one transaction, retrying with jittered backoff while DynamoDB cancels it only for
    /// conflicts with other transactions or throttling, or reports it still in progress.
    ///
    /// Every send carries the same `ClientRequestToken`: DynamoDB treats a resend of a
    /// transaction that already committed (its answer lost to a timeout, or reported in
    /// progress) as the same transaction and answers success without applying it again. The
    /// SDK reuses the token across its own retries; this loop's retries are new SDK calls, so
    /// the token is set here.
    pub(super) async fn transact(
        &self,
        operation: &'static str,
        items: Vec<TransactWriteItem>,
    ) -> Result<(), Cancelled> {
        let token = ulid::Ulid::new().to_string();
        let mut attempt = 1;
        let mut throttled = false;
        // Sends cancelled for throttling: a conflict clears in milliseconds, as soon as the
        // other transaction ends, but a partition past its throughput stays so for the rest of
        // its second, and every resend spends more of it. So throttling gets a smaller budget,
        // and the client, told to retry after `Retry-After`, waits instead of the function.
        let mut throttled_sends = 0;
        // Whether DynamoDB said an earlier send of this very transaction was still running:
        // then it may commit after the last resend, and giving up must not claim that
        // nothing was applied.
        let mut in_progress = false;
        loop {
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .client_request_token(&token)
                .send()
                .await;
            let error = match sent {
                Ok(_) => return Ok(()),
                Err(error) => error,
            };
            let retryable = match error.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                    let reasons = cancelled.cancellation_reasons();
                    if reasons.iter().any(condition_failed) {
                        return Err(Cancelled::Conditions(reasons.to_vec()));
                    }
                    if reasons
                        .iter()
                        .any(|reason| is_throttling_code(reason.code()))
                    {
                        throttled = true;
                        throttled_sends += 1;
                    }
                    reasons.iter().all(|reason| {
                        matches!(
                            reason.code(),
                            None | Some("None") | Some("TransactionConflict")
                        ) || is_throttling_code(reason.code())
                    })
                }
                Some(TransactWriteItemsError::TransactionInProgressException(_)) => {
                    in_progress = true;
                    true
                }
                _ => return Err(Cancelled::Store(store_error(operation, error))),
            };
            if !retryable {
                return Err(Cancelled::Store(store_error(operation, error)));
            }
            if attempt >= MAX_WRITE_ATTEMPTS || throttled_sends >= MAX_THROTTLED_SENDS {
                tracing::warn!(
                    operation,
                    attempt,
                    throttled,
                    in_progress,
                    "transaction conflicts, throttling or a send in progress exhausted the retries"
                );
                // A send still in progress may yet commit: the outcome is unknown (a 503; the
                // client's retry with its key finds out). Throttling is a hot item past its
                // partition's throughput, not a conflict between clients: a 503 to retry later
                // (which does not open the breaker). Only conflicts applied nothing for sure.
                return Err(Cancelled::Store(if in_progress {
                    ServiceError::StoreUnavailable {
                        retry_after: RETRY_AFTER,
                        source: format!(
                            "{operation}: an earlier send was still in progress after \
                             {attempt} attempts"
                        )
                        .into(),
                    }
                } else {
                    gave_up(throttled)
                }));
            }
            back_off(attempt).await;
            attempt += 1;
        }
    }

    /// One counter (a balance or a stock) of the item at `key` moved by `amount`, under the
    /// move's condition.
    fn counter_update(
        &self,
        key: Item,
        counter: &str,
        movement: Move,
        amount: i64,
    ) -> Result<Update, ServiceError> {
        let (expression, condition) = match movement {
            Move::Take => ("SET #counter = #counter - :amount", "#counter >= :amount"),
            Move::Give => ("SET #counter = #counter + :amount", "attribute_exists(pk)"),
        };
        Update::builder()
            .table_name(self.table_name())
            .set_key(Some(key))
            .update_expression(expression)
            .condition_expression(condition)
            .expression_attribute_names("#counter", counter)
            .expression_attribute_values(":amount", number_value(amount))
            .build()
            .map_err(build_error)
    }

    /// Units of one shard of a product taken from (reserved) or given back to its stock.
    fn stock_update(
        &self,
        product_id: &ProductId,
        shard: u32,
        units: u32,
        movement: Move,
    ) -> Result<TransactWriteItem, ServiceError> {
        let mut update = self.counter_update(
            shard_key(product_id, shard),
            "stock",
            movement,
            i64::from(units),
        )?;
        // A failed take returns the shard as it was, so the rejection says what it saw; units
        // go back only to an unsealed shard (a sealed one proves the product sold out), and a
        // refused give-back returns the shard too, to say whether it was sealed or gone.
        update.return_values_on_condition_check_failure =
            Some(ReturnValuesOnConditionCheckFailure::AllOld);
        if matches!(movement, Move::Give) {
            update.condition_expression =
                Some("attribute_exists(pk) AND attribute_not_exists(#sealed)".to_owned());
            update
                .expression_attribute_names
                .get_or_insert_with(Default::default)
                .insert("#sealed".to_owned(), SEALED.to_owned());
        }
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// The claim's answer, in the transaction of the change it answers.
    fn answer_item(
        &self,
        user_id: &UserId,
        claim: Option<&Claim>,
        answer: impl FnOnce() -> Answer,
    ) -> Result<Option<TransactWriteItem>, ServiceError> {
        claim
            .map(|claim| self.answer_claim_item(user_id, claim, &answer()))
            .transpose()
    }

    /// The update that moves an order to `order` at revision `expected + 1`, on condition that
    /// it is still at `expected` (an order written before revisions has none: it is at 0).
    fn order_update(
        &self,
        order: &Order,
        expected: u64,
    ) -> Result<TransactWriteItem, ServiceError> {
        let mut sets = vec![
            "#status = :status".to_owned(),
            "revision = :next".to_owned(),
        ];
        let mut removes = Vec::new();
        let mut update = Update::builder()
            .table_name(self.table_name())
            .set_key(Some(order_key(&order.user_id, order.order_id)))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", string_value(order.status.as_str()))
            .expression_attribute_values(":next", number_value(expected as i64 + 1))
            .expression_attribute_values(":expected", number_value(expected as i64))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let instants: [(&str, &str, Option<Timestamp>); 3] = [
            ("paidAt", ":paidAt", order.paid_at),
            ("cancelledAt", ":cancelledAt", order.cancelled_at),
            ("refundedAt", ":refundedAt", order.refunded_at),
        ];
        for (attribute, placeholder, value) in instants {
            match value {
                Some(at) => {
                    sets.push(format!("{attribute} = {placeholder}"));
                    update = update
                        .expression_attribute_values(placeholder, string_value(at.to_string()));
                }
                None => removes.push(attribute),
            }
        }
        if order.refunded_items.is_empty() {
            removes.extend(["refundedItems", "refundedAmount"]);
        } else {
            sets.push("refundedItems = :refundedItems".to_owned());
            sets.push("refundedAmount = :refundedAmount".to_owned());
            let items =
                serde_dynamo::to_attribute_value::<_, AttributeValue>(&order.refunded_items)
                    .map_err(|error| mapping_error("refunded items", error))?;
            update = update
                .expression_attribute_values(":refundedItems", items)
                .expression_attribute_values(
                    ":refundedAmount",
                    number_value(order.refunded_amount.won()),
                );
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        let condition = if expected == 0 {
            "attribute_exists(pk) AND (attribute_not_exists(revision) OR revision = :expected)"
        } else {
            "attribute_exists(pk) AND revision = :expected"
        };
        Ok(TransactWriteItem::builder()
            .update(
                update
                    .update_expression(expression)
                    .condition_expression(condition)
                    .build()
                    .map_err(build_error)?,
            )
            .build())
    }
}

/// What a failed take's `ALL_OLD` returned of its shard: its stock and, for the product item,
/// its arrangement. `None` when nothing came back (the shard is gone, or the store in use does
/// not return items with cancellation reasons).
fn seen_shard(returned: Option<&Item>, shard: u32) -> Option<SeenShard> {
    let item = returned.filter(|item| !item.is_empty())?;
    let seen: ShardStock = from_item(item.clone()).ok()?;
    let arrangement = (shard == 0).then(|| {
        let count = seen.shard_count.unwrap_or(ShardCount::ONE);
        Arrangement {
            count,
            span: seen.shard_span.unwrap_or(0).max(count.get()),
        }
    });
    Some(SeenShard {
        stock: seen.stock,
        arrangement,
        sealed: seen.sealed.is_some(),
    })
}

impl WriteOrders for DynamoOrderStore {
    async fn seal_stock(&self, layout: &StockLayout) -> Result<bool, ServiceError> {
        self.guarded(self.seal_shards(layout)).await
    }

    async fn unseal_stock(&self, product_id: &ProductId, span: u32) -> Result<bool, ServiceError> {
        self.guarded(self.unseal_shards(product_id, span)).await
    }

    async fn write_new_order(&self, write: NewOrderWrite<'_>) -> Result<(), WriteError> {
        let order = write.order;
        let result = self
            .guarded(async {
                let record = OrderRecord::new(
                    order.clone(),
                    write.request.clone(),
                    write.shard_counts.clone(),
                );
                let item = to_item(&record).map_err(|error| mapping_error("an order", error))?;
                let mut transaction = Transaction::default();
                transaction.push(
                    Part::Order,
                    TransactWriteItem::builder()
                        .put(
                            Put::builder()
                                .table_name(self.table_name())
                                .set_item(Some(item))
                                .condition_expression("attribute_not_exists(pk)")
                                .return_values_on_condition_check_failure(
                                    ReturnValuesOnConditionCheckFailure::AllOld,
                                )
                                .build()
                                .map_err(build_error)?,
                        )
                        .build(),
                );
                for take in write.takes {
                    transaction.push(
                        Part::Stock(take.product_id.clone(), take.shard),
                        self.stock_update(
                            &take.product_id,
                            take.shard,
                            take.quantity.get(),
                            Move::Take,
                        )?,
                    );
                }
                let answer = self.answer_item(&order.user_id, write.claim, || {
                    Answer::Created(order.clone())
                })?;
                if let Some(answer) = answer {
                    transaction.push(Part::Answer, answer);
                }
                let Some((part, reason)) = self.commit("CreateOrder", transaction).await? else {
                    return Ok(Ok(()));
                };
                let rejection = match part {
                    Part::Order => {
                        let existing = self
                            .record_after_failed_condition(
                                reason.item(),
                                &order.user_id,
                                order.order_id,
                            )
                            .await?
                            .ok_or_else(|| {
                                ServiceError::internal("an order's id was taken and freed")
                            })?;
                        Rejection::OrderExists {
                            request: existing.request_hash.clone(),
                            existing: existing.into_state(),
                        }
                    }
                    Part::Stock(product_id, shard) => Rejection::StockShort {
                        product_id,
                        shard,
                        seen: seen_shard(reason.item(), shard),
                    },
                    Part::Answer => Rejection::ClaimLost,
                    Part::Restock(..) | Part::Balance => {
                        return Err(ServiceError::internal(
                            "a create neither gives stock back nor moves a balance",
                        ))
                    }
                };
                Ok(Err(rejection))
            })
            .await;
        result?.map_err(WriteError::Rejected)
    }

    async fn write_transition(&self, write: TransitionWrite<'_>) -> Result<(), WriteError> {
        let transition = write.transition;
        let order = &transition.order;
        let result = self
            .guarded(async {
                let mut transaction = Transaction::default();
                transaction.push(
                    Part::Order,
                    self.order_update(order, transition.expected_revision)?,
                );
                for units in &transition.restock {
                    transaction.push(
                        Part::Restock(units.product_id.clone(), units.shard),
                        self.stock_update(
                            &units.product_id,
                            units.shard,
                            units.quantity.get(),
                            Move::Give,
                        )?,
                    );
                }
                let balance = match transition.balance {
                    BalanceMove::Untouched => None,
                    BalanceMove::Debit(amount) => Some((Move::Take, amount)),
                    BalanceMove::Refund(amount) => Some((Move::Give, amount)),
                };
                if let Some((movement, amount)) = balance {
                    transaction.push(
                        Part::Balance,
                        TransactWriteItem::builder()
                            .update(self.counter_update(
                                user_key(&order.user_id),
                                "balance",
                                movement,
                                amount.won(),
                            )?)
                            .build(),
                    );
                }
                let answer = self.answer_item(&order.user_id, write.claim, || {
                    Answer::Updated(order.clone())
                })?;
                if let Some(answer) = answer {
                    transaction.push(Part::Answer, answer);
                }
                let operation = transition.change.operation();
                let Some((part, reason)) = self.commit(operation, transaction).await? else {
                    return Ok(Ok(()));
                };
                let rejection = match part {
                    Part::Order => Rejection::OrderMoved {
                        current: self
                            .record_after_failed_condition(
                                reason.item(),
                                &order.user_id,
                                order.order_id,
                            )
                            .await?
                            .map(OrderRecord::into_state),
                    },
                    Part::Restock(product_id, shard) => {
                        let sealed = reason
                            .item()
                            .filter(|item| !item.is_empty())
                            .and_then(|item| from_item::<ShardStock>(item.clone()).ok())
                            .and_then(|seen| seen.sealed);
                        match (sealed, shard) {
                            (Some(span), _) => Rejection::StockSealed { product_id, span },
                            (None, 0) => Rejection::ProductGone { product_id },
                            (None, shard) => Rejection::ShardGone { product_id, shard },
                        }
                    }
                    // A debit fails on a short balance or a missing user, a refund only on a
                    // missing user. What a failed condition returns differs between DynamoDB
                    // and the emulators, so the user is read.
                    Part::Balance => Rejection::Balance {
                        balance: self.read_balance(&order.user_id).await?,
                    },
                    Part::Answer => Rejection::ClaimLost,
                    Part::Stock(..) => {
                        return Err(ServiceError::internal("a change takes no stock"))
                    }
                };
                Ok(Err(rejection))
            })
            .await;
        result?.map_err(WriteError::Rejected)
    }
}
