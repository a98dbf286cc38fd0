//! The order operations on DynamoDB. Every state change is one `TransactWriteItems` whose
//! conditions make it correct under any interleaving; a cancelled transaction's reasons say
//! which condition failed, and that is mapped to the domain error. No locks, no unconditioned
//! read-modify-write.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    CancellationReason, KeysAndAttributes, Put, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use time::OffsetDateTime;

use super::cursor::Cursor;
use super::errors::{is_throttling_code, mapping_error, store_error, RETRY_AFTER};
use super::items::{
    entity_of, from_item, list_sk, number_value, order_key, product_key, string_value, to_item,
    user_key, user_pk, Item, OrderRecord, ProductPrice, LIST_SK, PK, SK,
};
use super::retry::{back_off, MAX_WRITE_ATTEMPTS};
use super::schema::LIST_INDEX;
use super::{ChangeOrders, CreateOrders, DynamoOrderStore, OrderPage, Outcome, ReadOrders};
use crate::domain::{
    Answer, BalanceMove, Change, Claim, Fingerprint, Money, NewOrder, Order, OrderId, OrderLine,
    OrderStatus, ProductId, Timestamp, Transition, UserId,
};
use crate::error::ServiceError;

/// How often one request re-reads an order whose state changed under it. States only move
/// forwards (CREATED -> PAID -> CANCELLED), so two re-reads always suffice; the bound is slack.
const MAX_STATE_READS: u32 = 4;

/// Why a transaction did not commit.
enum WriteRejected {
    /// At least one condition was false; the reasons are in transaction item order.
    Conditions(Vec<CancellationReason>),
    Store(ServiceError),
}

fn condition_failed(reason: &CancellationReason) -> bool {
    reason.code() == Some("ConditionalCheckFailed")
}

fn now() -> Timestamp {
    Timestamp::from_datetime(OffsetDateTime::now_utc())
}

/// The claim's answer update for a transaction, when the request has a claim.
fn with_answer(
    store: &DynamoOrderStore,
    transaction: &mut Vec<TransactWriteItem>,
    user_id: &UserId,
    claim: Option<&Claim>,
    answer: impl FnOnce() -> Answer,
) -> Result<(), ServiceError> {
    if let Some(claim) = claim {
        transaction.push(store.answer_claim_item(user_id, claim, &answer())?);
    }
    Ok(())
}

/// Which way a counter moves, and what the move needs.
#[derive(Debug, Clone, Copy)]
enum Move {
    /// Takes the amount away: the counter must hold at least that much.
    Take,
    /// Gives the amount back: the item must still exist.
    Give,
}

/// The items of a payment's or cancellation's transaction, in order.
#[derive(Debug, PartialEq, Eq)]
enum Part<'a> {
    Order,
    Restock(&'a ProductId),
    Balance,
    Answer,
}

/// A transaction whose claim condition failed: the key is no longer this request's (its lease
/// lapsed and another request claimed it). Nothing was applied; the retry gets the answer.
fn claim_lost() -> ServiceError {
    ServiceError::RequestInProgress {
        retry_after: crate::error::IN_FLIGHT_RETRY_AFTER,
    }
}

fn build_error(error: impl std::fmt::Display) -> ServiceError {
    ServiceError::internal(format!("cannot build a DynamoDB request: {error}"))
}

impl DynamoOrderStore {
    /// Runs one transaction, retrying with jittered backoff while DynamoDB cancels it only for
    /// conflicts with other transactions or throttling, or reports it still in progress.
    ///
    /// Every send carries the same `ClientRequestToken`: DynamoDB treats a resend of a
    /// transaction that already committed (its answer lost to a timeout, or reported in
    /// progress) as the same transaction and answers success without applying it again. The
    /// SDK reuses the token across its own retries; this loop's retries are new SDK calls, so
    /// the token is set here.
    async fn transact(
        &self,
        operation: &'static str,
        items: Vec<TransactWriteItem>,
    ) -> Result<(), WriteRejected> {
        let token = ulid::Ulid::new().to_string();
        let mut attempt = 1;
        let mut throttled = false;
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
                        return Err(WriteRejected::Conditions(reasons.to_vec()));
                    }
                    throttled |= reasons
                        .iter()
                        .any(|reason| is_throttling_code(reason.code()));
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
                _ => return Err(WriteRejected::Store(store_error(operation, error))),
            };
            if !retryable {
                return Err(WriteRejected::Store(store_error(operation, error)));
            }
            if attempt >= MAX_WRITE_ATTEMPTS {
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
                return Err(WriteRejected::Store(if in_progress {
                    ServiceError::StoreUnavailable {
                        retry_after: RETRY_AFTER,
                        source: format!(
                            "{operation}: an earlier send was still in progress after \
                             {attempt} attempts"
                        )
                        .into(),
                    }
                } else if throttled {
                    ServiceError::Throttled {
                        retry_after: RETRY_AFTER,
                    }
                } else {
                    ServiceError::Contention {
                        retry_after: RETRY_AFTER,
                    }
                }));
            }
            back_off(attempt).await;
            attempt += 1;
        }
    }

    /// Reads an order with a strongly consistent read.
    async fn read_order_record(
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

    /// The order as DynamoDB returned it with a failed condition, or a fresh read when the
    /// emulator in use does not return it.
    async fn order_after_failed_condition(
        &self,
        reason: &CancellationReason,
        user_id: &UserId,
        order_id: OrderId,
    ) -> Result<OrderRecord, ServiceError> {
        if let Some(item) = reason.item().filter(|item| !item.is_empty()) {
            if let Ok(record) = from_item::<OrderRecord>(item.clone()) {
                return Ok(record);
            }
        }
        self.read_order_record(user_id, order_id)
            .await?
            .ok_or(ServiceError::OrderNotFound)
    }

    /// Reads the user and every product of the order in one `BatchGetItem`.
    async fn read_user_and_products(
        &self,
        user_id: &UserId,
        order: &NewOrder,
    ) -> Result<HashMap<ProductId, Money>, ServiceError> {
        let mut keys = vec![user_key(user_id)];
        keys.extend(
            order
                .lines()
                .iter()
                .map(|line| product_key(&line.product_id)),
        );
        let mut pending = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .build()
            .map_err(build_error)?;
        let mut found: Vec<Item> = Vec::with_capacity(order.lines().len() + 1);
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
                        return Err(ServiceError::StoreUnavailable {
                            retry_after: RETRY_AFTER,
                            source: "BatchGetItem left keys unprocessed".into(),
                        });
                    }
                    back_off(attempt).await;
                    attempt += 1;
                    pending = rest;
                }
                _ => break,
            }
        }
        if !found.iter().any(|item| entity_of(item) == Some("USER")) {
            return Err(ServiceError::UserNotFound);
        }
        let mut prices = HashMap::with_capacity(found.len());
        for item in found {
            if entity_of(&item) == Some("PRODUCT") {
                let product: ProductPrice =
                    from_item(item).map_err(|error| mapping_error("a product", error))?;
                prices.insert(product.product_id, product.price);
            }
        }
        Ok(prices)
    }

    fn order_status_update(
        &self,
        user_id: &UserId,
        order_id: OrderId,
        expected: OrderStatus,
        set_clause: &str,
        values: Vec<(&str, aws_sdk_dynamodb::types::AttributeValue)>,
    ) -> Result<TransactWriteItem, ServiceError> {
        let mut update = Update::builder()
            .table_name(self.table_name())
            .set_key(Some(order_key(user_id, order_id)))
            .update_expression(set_clause)
            .condition_expression("#status = :expected")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":expected", string_value(expected.as_str()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (name, value) in values {
            update = update.expression_attribute_values(name, value);
        }
        Ok(TransactWriteItem::builder()
            .update(update.build().map_err(build_error)?)
            .build())
    }

    /// A line's units taken from (reserved) or given back to its product's stock.
    fn stock_update(
        &self,
        line: &OrderLine,
        movement: Move,
    ) -> Result<TransactWriteItem, ServiceError> {
        let units = i64::from(line.quantity.get());
        self.counter_update(product_key(&line.product_id), "stock", movement, units)
    }

    /// One counter (a balance or a stock) of the item at `key` moved by `amount`, under the
    /// move's condition.
    fn counter_update(
        &self,
        key: Item,
        counter: &str,
        movement: Move,
        amount: i64,
    ) -> Result<TransactWriteItem, ServiceError> {
        let (expression, condition) = match movement {
            Move::Take => ("SET #counter = #counter - :amount", "#counter >= :amount"),
            Move::Give => ("SET #counter = #counter + :amount", "attribute_exists(pk)"),
        };
        Ok(TransactWriteItem::builder()
            .update(
                Update::builder()
                    .table_name(self.table_name())
                    .set_key(Some(key))
                    .update_expression(expression)
                    .condition_expression(condition)
                    .expression_attribute_names("#counter", counter)
                    .expression_attribute_values(":amount", number_value(amount))
                    .build()
                    .map_err(build_error)?,
            )
            .build())
    }

    /// The transaction that writes `transition`, and what each of its items is, to read the
    /// cancellation reasons by.
    fn transition_items<'a>(
        &self,
        user_id: &UserId,
        change: Change,
        transition: &'a Transition,
        gone: &[ProductId],
        claim: Option<&Claim>,
    ) -> Result<(Vec<Part<'a>>, Vec<TransactWriteItem>), ServiceError> {
        let order = &transition.order;
        let (at_attribute, at) = match change {
            Change::Pay => ("paidAt", order.paid_at),
            Change::Cancel => ("cancelledAt", order.cancelled_at),
        };
        let mut parts = vec![Part::Order];
        let mut transaction = vec![self.order_status_update(
            user_id,
            order.order_id,
            transition.from,
            &format!("SET #status = :status, {at_attribute} = :at"),
            vec![
                (":status", string_value(order.status.as_str())),
                (":at", string_value(at.unwrap_or_else(now).to_string())),
            ],
        )?];
        let restocked = order
            .items
            .iter()
            .filter(|line| transition.restock && !gone.contains(&line.product_id));
        for line in restocked {
            parts.push(Part::Restock(&line.product_id));
            transaction.push(self.stock_update(line, Move::Give)?);
        }
        let balance = match transition.balance {
            BalanceMove::Untouched => None,
            BalanceMove::Debit(amount) => Some((Move::Take, amount)),
            BalanceMove::Refund(amount) => Some((Move::Give, amount)),
        };
        if let Some((movement, amount)) = balance {
            parts.push(Part::Balance);
            transaction.push(self.counter_update(
                user_key(user_id),
                "balance",
                movement,
                amount.won(),
            )?);
        }
        parts.push(Part::Answer);
        with_answer(self, &mut transaction, user_id, claim, || {
            Answer::Updated(order.clone())
        })?;
        Ok((parts, transaction))
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

impl CreateOrders for DynamoOrderStore {
    async fn create_order(
        &self,
        user_id: &UserId,
        new_order: &NewOrder,
        claim: Option<&Claim>,
    ) -> Result<Outcome, ServiceError> {
        self.guarded(async {
            let request_hash = Fingerprint::create(new_order);
            let order_id = claim.map_or_else(OrderId::random, |claim| claim.key.order_id(user_id));
            let prices = self.read_user_and_products(user_id, new_order).await?;
            let order = Order::place(order_id, user_id.clone(), new_order, &prices, now())?;
            let record = OrderRecord::new(order.clone(), request_hash.clone());
            let item = to_item(&record).map_err(|error| mapping_error("an order", error))?;

            let mut transaction = Vec::with_capacity(order.items.len() + 2);
            transaction.push(
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
            for line in &order.items {
                transaction.push(self.stock_update(line, Move::Take)?);
            }
            with_answer(self, &mut transaction, user_id, claim, || {
                Answer::Created(order.clone())
            })?;

            match self.transact("CreateOrder", transaction).await {
                Ok(()) => Ok(Outcome::fresh(order)),
                Err(WriteRejected::Store(error)) => Err(error),
                Err(WriteRejected::Conditions(reasons)) => {
                    if let Some(order_reason) =
                        reasons.first().filter(|reason| condition_failed(reason))
                    {
                        let existing = self
                            .order_after_failed_condition(order_reason, user_id, order_id)
                            .await?;
                        let same_request = match claim {
                            Some(claim) => claim.recognises(&existing.request_hash),
                            None => existing.request_hash == request_hash,
                        };
                        if !same_request {
                            return Err(ServiceError::IdempotencyKeyReused);
                        }
                        // With a key, its answer has expired and the order is what it created.
                        // Without one the id is unique to this request: the order is its own,
                        // from a send DynamoDB no longer recognised by its ClientRequestToken
                        // (that lasts ten minutes, far beyond any retry of ours).
                        return Ok(Outcome {
                            order: existing.to_order(),
                            replayed: claim.is_some(),
                        });
                    }
                    let short_line = reasons
                        .iter()
                        .skip(1)
                        .take(order.items.len())
                        .position(condition_failed)
                        .and_then(|index| order.items.get(index));
                    match short_line {
                        Some(line) => Err(ServiceError::OutOfStock(line.product_id.clone())),
                        None if claim.is_some() => Err(claim_lost()),
                        None => Err(ServiceError::internal(
                            "create cancelled without a failed condition",
                        )),
                    }
                }
            }
        })
        .await
    }
}

impl ChangeOrders for DynamoOrderStore {
    /// Writes the change the domain decides, conditioned on the order's status: a concurrent
    /// change makes this write fail, and the order is read again and decided anew.
    async fn change_order(
        &self,
        user_id: &UserId,
        order_id: OrderId,
        change: Change,
        claim: Option<&Claim>,
    ) -> Result<Outcome, ServiceError> {
        self.guarded(async {
            let mut record = self
                .read_order_record(user_id, order_id)
                .await?
                .ok_or(ServiceError::OrderNotFound)?;
            // Products deleted since the order was made: a cancellation goes through (and
            // refunds), their stock has nowhere to go back to.
            let mut gone: Vec<ProductId> = Vec::new();
            for _ in 0..MAX_STATE_READS {
                let transition = record.to_order().decide(change, now())?;
                let (parts, transaction) =
                    self.transition_items(user_id, change, &transition, &gone, claim)?;
                let reasons = match self.transact(change.operation(), transaction).await {
                    Ok(()) => return Ok(Outcome::fresh(transition.order)),
                    Err(WriteRejected::Store(error)) => return Err(error),
                    Err(WriteRejected::Conditions(reasons)) => reasons,
                };
                let failed: Vec<&Part> = parts
                    .iter()
                    .zip(&reasons)
                    .filter(|(_, reason)| condition_failed(reason))
                    .map(|(part, _)| part)
                    .collect();
                match failed.first() {
                    Some(Part::Order) => {
                        if let Some(order_reason) = reasons.first() {
                            record = self
                                .order_after_failed_condition(order_reason, user_id, order_id)
                                .await?;
                        }
                        continue;
                    }
                    Some(Part::Restock(_)) => {
                        let deleted: Vec<ProductId> = failed
                            .iter()
                            .filter_map(|part| match part {
                                Part::Restock(product_id) => Some((*product_id).clone()),
                                _ => None,
                            })
                            .collect();
                        tracing::warn!(
                            order_id = %order_id,
                            products = ?deleted,
                            "a cancelled order's products are gone: their stock is not restored"
                        );
                        gone.extend(deleted);
                        continue;
                    }
                    Some(Part::Balance) => {
                        // A debit fails on a short balance or a missing user, a refund only on a
                        // missing user. What the failed condition returns differs between DynamoDB
                        // and the emulators, so a debit reads the user to tell the two apart.
                        let short = match transition.balance {
                            BalanceMove::Debit(required) if self.user_exists(user_id).await? => {
                                Some(required)
                            }
                            _ => None,
                        };
                        return Err(match short {
                            Some(required) => ServiceError::InsufficientBalance { required },
                            None => ServiceError::UserNotFound,
                        });
                    }
                    Some(Part::Answer) => return Err(claim_lost()),
                    None => {
                        return Err(ServiceError::internal(format!(
                            "{} refused without a failed condition",
                            change.operation()
                        )))
                    }
                }
            }
            Err(ServiceError::internal(format!(
                "the order's state kept changing during {}",
                change.operation()
            )))
        })
        .await
    }
}

impl ReadOrders for DynamoOrderStore {
    async fn get_order(&self, user_id: &UserId, order_id: OrderId) -> Result<Order, ServiceError> {
        self.guarded(async {
            self.read_order_record(user_id, order_id)
                .await?
                .map(|record| record.to_order())
                .ok_or(ServiceError::OrderNotFound)
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
                orders.push(record.to_order());
            }
            if orders.is_empty() && cursor.is_none() && !self.user_exists(user_id).await? {
                return Err(ServiceError::UserNotFound);
            }
            Ok(OrderPage::new(orders, output.last_evaluated_key.is_some()))
        })
        .await
    }
}
