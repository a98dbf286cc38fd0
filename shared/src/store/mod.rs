//! All DynamoDB code of the service: table schema, item mapping, conditional transactions,
//! the mapping of SDK errors and `CancellationReasons` to domain errors, retries and the
//! circuit breaker. `SdkError` never leaves this module.
//!
//! Each function gets only the capability it needs through a small trait (`CreateOrders`,
//! `PayOrders`, `CancelOrders`, `ReadOrders`), matched by least-privilege IAM in `template.yaml`.

mod admin;
mod breaker;
mod client;
mod cursor;
mod errors;
mod items;
mod orders;
mod retry;
pub mod schema;

use std::future::Future;

pub use admin::{seeded_price as seeded_price_of, AuditReport, SeedPlan, SeedSummary};
pub use breaker::CircuitBreaker;
pub use client::{build_client, build_local_client, StoreSettings};
pub use cursor::Cursor;
pub use retry::{count_store_retries, store_retries_so_far};

use aws_sdk_dynamodb::Client;
use std::sync::Arc;

use crate::domain::{IdempotencyKey, NewOrder, Order, OrderId, UserId};
use crate::error::ServiceError;

/// The result of a state-changing call: the order, and whether it is a replay of an earlier
/// request with the same Idempotency-Key (no second effect happened).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub order: Order,
    pub replayed: bool,
}

/// One page of a user's orders, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderPage {
    pub orders: Vec<Order>,
    pub next_cursor: Option<Cursor>,
}

pub trait CreateOrders: Send + Sync {
    /// Snapshots prices and reserves stock for every line, or for none.
    fn create_order(
        &self,
        user_id: &UserId,
        order: &NewOrder,
        idempotency_key: Option<&IdempotencyKey>,
    ) -> impl Future<Output = Result<Outcome, ServiceError>> + Send;
}

pub trait PayOrders: Send + Sync {
    /// Debits the order total from the user's balance and marks the order PAID, atomically.
    fn pay_order(
        &self,
        user_id: &UserId,
        order_id: OrderId,
        idempotency_key: Option<&IdempotencyKey>,
    ) -> impl Future<Output = Result<Outcome, ServiceError>> + Send;
}

pub trait CancelOrders: Send + Sync {
    /// Cancels the order, restoring its stock and refunding it if it was paid, atomically.
    fn cancel_order(
        &self,
        user_id: &UserId,
        order_id: OrderId,
        idempotency_key: Option<&IdempotencyKey>,
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
        }
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs one store operation behind the circuit breaker: while the breaker is open the call
    /// fails fast with `StoreUnavailable`, and every outcome feeds the breaker's count.
    async fn guarded<T>(
        &self,
        operation: impl Future<Output = Result<T, ServiceError>>,
    ) -> Result<T, ServiceError> {
        self.breaker.check()?;
        let result = operation.await;
        match &result {
            Err(ServiceError::StoreUnavailable { .. }) => self.breaker.record_failure(),
            _ => self.breaker.record_success(),
        }
        result
    }
}
