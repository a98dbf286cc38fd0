//! All DynamoDB code of the service: table schema, item mapping, conditional transactions,
//! the mapping of SDK errors and `CancellationReasons` to domain errors, retries and the
//! circuit breaker. `SdkError` never leaves this module.
//!
//! Each function gets only the capability it needs through a small trait (`CreateOrders`,
//! `ChangeOrders` for pay and cancel, `ReadOrders`), matched by least-privilege IAM in
//! `template.yaml`.

#[cfg(feature = "admin")]
mod admin;
#[cfg(feature = "admin")]
mod audit;
mod breaker;
mod client;
mod cursor;
mod deadline;
mod errors;
mod idempotency;
mod items;
mod orders;
mod retry;
pub mod schema;

use std::future::Future;

#[cfg(feature = "admin")]
pub use admin::{seeded_price as seeded_price_of, SeedPlan, SeedSummary, TableContents};
#[cfg(feature = "admin")]
pub use audit::AuditReport;
pub use breaker::{Admission, CircuitBreaker, Verdict};
pub use client::{build_client, build_local_client, StoreSettings};
pub use cursor::Cursor;
pub use deadline::{with_deadline, RELEASE_RESERVE};
pub use idempotency::{epoch_seconds, TTL_ATTRIBUTE};
pub use retry::{count_store_retries, store_retries_so_far};

use aws_sdk_dynamodb::Client;
use std::sync::Arc;
use std::time::Duration;

use crate::domain::{Change, Claim, NewOrder, Order, OrderId, Prior, Refusal, UserId};
use crate::error::ServiceError;

/// The result of a state-changing call: the order, and whether it is a replay (no second
/// effect happened): an earlier attempt of the same request had already made the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub order: Order,
    pub replayed: bool,
}

impl Outcome {
    /// This request's own change (or its own earlier write found again): not a replay.
    pub fn fresh(order: Order) -> Self {
        Self {
            order,
            replayed: false,
        }
    }
}

/// One page of a user's orders, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderPage {
    pub orders: Vec<Order>,
    pub next_cursor: Option<Cursor>,
}

impl OrderPage {
    /// A page of `orders`, newest first; when more may follow, its cursor starts after the
    /// last one.
    pub fn new(orders: Vec<Order>, more: bool) -> Self {
        let next_cursor = orders.last().filter(|_| more).map(|last| Cursor {
            created_at: last.created_at,
            order_id: last.order_id,
        });
        Self {
            orders,
            next_cursor,
        }
    }
}

/// The Idempotency-Key records. A state change made under a claim answers it in its own
/// transaction; `App::answer_once` drives the rest.
pub trait KeepAnswers: Send + Sync {
    /// Claims the key for this request: `None` when it is now this request's, otherwise the
    /// key's live record (in flight, or answered).
    fn claim(
        &self,
        user_id: &UserId,
        claim: &Claim,
    ) -> impl Future<Output = Result<Option<Prior>, ServiceError>> + Send;

    /// Answers the claim with a business refusal: `None` when recorded, otherwise the record
    /// that holds the key now (another request answered it first).
    fn answer_refusal(
        &self,
        user_id: &UserId,
        claim: &Claim,
        refusal: Refusal,
    ) -> impl Future<Output = Result<Option<Prior>, ServiceError>> + Send;

    /// Gives the key up after a failure that is no outcome (best effort: the lease lapses).
    fn release(&self, user_id: &UserId, claim: &Claim) -> impl Future<Output = ()> + Send;
}

pub trait CreateOrders: Send + Sync {
    /// Snapshots prices and reserves stock for every line, or for none.
    fn create_order(
        &self,
        user_id: &UserId,
        order: &NewOrder,
        claim: Option<&Claim>,
    ) -> impl Future<Output = Result<Outcome, ServiceError>> + Send;
}

pub trait ChangeOrders: Send + Sync {
    /// Pays or cancels the order as the domain decides, atomically: a payment debits the total
    /// from the user's balance and marks the order PAID; a cancellation restores its stock,
    /// refunds it if it was paid and marks it CANCELLED.
    fn change_order(
        &self,
        user_id: &UserId,
        order_id: OrderId,
        change: Change,
        claim: Option<&Claim>,
    ) -> impl Future<Output = Result<Outcome, ServiceError>> + Send;
}

pub trait ReadOrders: Send + Sync {
    fn get_order(
        &self,
        user_id: &UserId,
        order_id: OrderId,
    ) -> impl Future<Output = Result<Order, ServiceError>> + Send;

    fn list_orders(
        &self,
        user_id: &UserId,
        limit: u16,
        cursor: Option<&Cursor>,
    ) -> impl Future<Output = Result<OrderPage, ServiceError>> + Send;
}

/// The DynamoDB implementation of every store capability. Cheap to clone: the SDK client and
/// the circuit breaker are shared.
#[derive(Debug, Clone)]
pub struct DynamoOrderStore {
    client: Client,
    table: Arc<str>,
    breaker: Arc<CircuitBreaker>,
    answer_ttl: Duration,
}

impl DynamoOrderStore {
    pub fn new(client: Client, table: impl Into<Arc<str>>, settings: StoreSettings) -> Self {
        Self {
            client,
            table: table.into(),
            breaker: Arc::new(CircuitBreaker::new(
                settings.breaker_failure_threshold,
                settings.breaker_open_for,
            )),
            answer_ttl: settings.answer_ttl,
        }
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// Creates the store's table (on-demand, with its index and TTL) and waits until it is
    /// active: for DynamoDB Local and emulators; in AWS the stack owns the table.
    #[cfg(feature = "admin")]
    pub async fn create_table(&self) -> Result<(), ServiceError> {
        schema::create_table(&self.client, &self.table).await
    }

    /// Deletes the store's table if it exists (DynamoDB Local: a run starts from nothing).
    #[cfg(feature = "admin")]
    pub async fn delete_table(&self) -> Result<(), ServiceError> {
        schema::delete_table(&self.client, &self.table).await
    }

    /// Runs one store operation behind the circuit breaker and within the request's deadline:
    /// while the breaker is open the call fails fast with `StoreUnavailable`; a call still
    /// running at the deadline gives up as `StoreUnavailable`; every outcome tells the breaker
    /// whether the store was reached (`Verdict`).
    async fn guarded<T>(
        &self,
        operation: impl Future<Output = Result<T, ServiceError>>,
    ) -> Result<T, ServiceError> {
        let admission = self.breaker.admit()?;
        let result = match deadline::deadline() {
            None => operation.await,
            Some(deadline) => {
                tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), operation)
                    .await
                    .unwrap_or_else(|_| {
                        Err(ServiceError::StoreUnavailable {
                            retry_after: errors::RETRY_AFTER,
                            source: "the request's time budget ran out".into(),
                        })
                    })
            }
        };
        self.breaker.record(admission, Verdict::of(&result));
        result
    }
}
