//! All DynamoDB code of the service: table schema, item mapping, the reads and the
//! conditional writes of what the domain decided, the mapping of SDK errors and
//! `CancellationReasons` to typed rejections, retries and the circuit breaker. `SdkError` never
//! leaves this module, and no code here makes a business decision: the application (`app`)
//! reads, asks the domain, writes, and reads again when a write is rejected.
//!
//! The capabilities are small traits, matched by least-privilege IAM in `template.yaml`:
//! `ReadCatalog` (what placing an order reads, stock shards included), `ReadOrders`,
//! `WriteOrders` and `KeepAnswers` (the Idempotency-Key records); `ArrangeStock` (reshard,
//! rebalance) is the operators'. `PlaceOrders`, `ChangeOrders` and `ReadOrders` are what each
//! function needs.

#[cfg(feature = "admin")]
mod admin;
#[cfg(feature = "admin")]
mod arrange;
#[cfg(feature = "admin")]
mod audit;
mod breaker;
mod client;
mod cursor;
mod deadline;
mod errors;
mod idempotency;
mod items;
mod reads;
mod retry;
pub mod schema;
mod seal;
mod writes;

use std::collections::HashMap;
use std::future::Future;

#[cfg(feature = "admin")]
pub use admin::{seeded_price as seeded_price_of, SeedPlan, SeedSummary, TableContents};
#[cfg(feature = "admin")]
pub use audit::AuditReport;
pub use breaker::{Admission, CircuitBreaker, Verdict};
pub use client::{build_client, build_local_client, StoreSettings};
pub use cursor::{Cursor, PageRequest};
pub use deadline::{with_deadline, RELEASE_RESERVE};
pub(crate) use errors::RETRY_AFTER;
pub use idempotency::{epoch_seconds, TTL_ATTRIBUTE};
pub use retry::{count_store_retries, store_retries_so_far};

use aws_sdk_dynamodb::Client;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "admin")]
use crate::domain::Rearrangement;
use crate::domain::{
    Arrangement, Claim, Fingerprint, Money, Order, OrderId, OrderState, Prior, ProductId, Refusal,
    ShardCount, ShardCounts, StockLayout, StockMove, Transition, UserId,
};
use crate::error::ServiceError;

/// The result of a state-changing use case: the order, and whether it is a replay (no second
/// effect happened): an earlier request with the same key had already made the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub order: Order,
    pub replayed: bool,
}

impl Outcome {
    /// This request's own change: not a replay.
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
    /// Whether the user exists, read only for an empty first page (to tell "no orders" from
    /// "no such user").
    pub user_exists: Option<bool>,
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
            user_exists: None,
        }
    }
}

/// What placing an order reads: whether the user exists, the products' prices (a product
/// without a price does not exist) and how many shards the sharded ones have.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Catalog {
    pub user_exists: bool,
    pub prices: HashMap<ProductId, Money>,
    pub shard_counts: ShardCounts,
}

/// A new order to write, with the stock it takes from which shards (`takes`, as the domain
/// decided), the shard counts it saw (kept on the order for its cancel), the fingerprint of the
/// request that made it and the claim its transaction answers.
#[derive(Debug, Clone, Copy)]
pub struct NewOrderWrite<'a> {
    pub order: &'a Order,
    pub takes: &'a [StockMove],
    pub shard_counts: &'a ShardCounts,
    pub request: &'a Fingerprint,
    pub claim: Option<&'a Claim>,
}

/// A decided transition to write, with the claim its transaction answers.
#[derive(Debug, Clone, Copy)]
pub struct TransitionWrite<'a> {
    pub transition: &'a Transition,
    pub claim: Option<&'a Claim>,
}

/// Which condition of a write failed, with what the store saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// A new order's id is taken: the order as it stands and the fingerprint of the request
    /// that created it.
    OrderExists {
        existing: OrderState,
        request: Fingerprint,
    },
    /// The order is no longer at the revision the transition was decided from: as it stands
    /// now (`None`: it is gone).
    OrderMoved { current: Option<OrderState> },
    /// A shard of a product's stock does not cover what was taken from it: which shard, and
    /// what the store saw of it when the condition failed (`None`: nothing came back, or the
    /// shard is gone).
    StockShort {
        product_id: ProductId,
        shard: u32,
        seen: Option<SeenShard>,
    },
    /// A product stock was to go back to no longer exists.
    ProductGone { product_id: ProductId },
    /// A shard stock was to go back to no longer exists (a reshard removed it); the product's
    /// first shard still does.
    ShardGone { product_id: ProductId, shard: u32 },
    /// A shard stock was to go back to is sealed (the product sold out): the seal, on shards
    /// 0..span, comes off first.
    StockSealed { product_id: ProductId, span: u32 },
    /// A product's shards are no longer as a rearrangement read them (a sale took more than a
    /// shard was to keep, a reshard ran, a shard appeared or went).
    StockMoved { product_id: ProductId },
    /// The balance move failed: the user's balance as read now (`None`: the user is gone).
    Balance { balance: Option<i64> },
    /// The key's claim is no longer this request's (its lease lapsed, another took it).
    ClaimLost,
}

/// A shard as a failed condition returned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeenShard {
    pub stock: i64,
    /// Shard 0 only (the product item): how many shards sales choose from, and how many may
    /// hold units. One and one: the item holds the product's whole stock.
    pub arrangement: Option<Arrangement>,
    /// Whether the shard carried the seal: every shard of the product was empty when it was
    /// sealed, and nothing gives a sealed shard units.
    pub sealed: bool,
}

impl SeenShard {
    /// Whether this shard's failed take is the product's own shortfall, exactly: it held the
    /// product's whole stock (an ordinary product's one item), or it was sealed (the product
    /// is sold out).
    pub fn proves_shortfall(&self) -> bool {
        self.sealed
            || self
                .arrangement
                .is_some_and(|arrangement| arrangement.span == 1)
    }
}

/// Why a write did not happen.
#[derive(Debug)]
pub enum WriteError {
    /// A condition failed: nothing was written.
    Rejected(Rejection),
    /// The store failed (unavailable, throttled, out of time, contention past the retries).
    Failed(ServiceError),
}

impl From<ServiceError> for WriteError {
    fn from(error: ServiceError) -> Self {
        WriteError::Failed(error)
    }
}

/// The Idempotency-Key records. A state change made under a claim answers it in its own
/// transaction; `app::keys` drives the rest.
pub trait KeepAnswers: Send + Sync {
    /// Claims the key for this request: `None` when it is now this request's, otherwise the
    /// key's live record (in flight, or answered).
    fn claim(
        &self,
        user_id: &UserId,
        claim: &Claim,
    ) -> impl Future<Output = Result<Option<Prior>, ServiceError>> + Send;

    /// Answers the claim with a business refusal: `None` when recorded, otherwise the record
    /// that holds the key now.
    fn answer_refusal(
        &self,
        user_id: &UserId,
        claim: &Claim,
        refusal: Refusal,
    ) -> impl Future<Output = Result<Option<Prior>, ServiceError>> + Send;

    /// Gives the key up after a failure that is no outcome (best effort: the lease lapses).
    fn release(&self, user_id: &UserId, claim: &Claim) -> impl Future<Output = ()> + Send;
}

/// What placing an order reads.
pub trait ReadCatalog: Send + Sync {
    fn read_catalog(
        &self,
        user_id: &UserId,
        products: &[ProductId],
    ) -> impl Future<Output = Result<Catalog, ServiceError>> + Send;

    /// A product's stock shard by shard, each shard read strongly consistently but not all at
    /// one instant (`None`: the product is gone). `hint` is how many shards the caller expects;
    /// the product item's own count decides.
    fn read_stock(
        &self,
        product_id: &ProductId,
        hint: ShardCount,
    ) -> impl Future<Output = Result<Option<StockLayout>, ServiceError>> + Send;

    /// A product's stock as it stood at one instant (a transactional read of every shard), for
    /// the one answer a non-snapshot read cannot give: that the shards together hold too
    /// little. Costs twice a plain read and meets concurrent writes as conflicts.
    fn read_stock_at_once(
        &self,
        product_id: &ProductId,
        hint: ShardCount,
    ) -> impl Future<Output = Result<Option<StockLayout>, ServiceError>> + Send;
}

/// Laying a product's stock out again over its shards (reshard, rebalance): operator work,
/// never on the request path.
#[cfg(feature = "admin")]
pub trait ArrangeStock: ReadCatalog {
    /// Writes one decided step in one transaction, conditioned on the product item's
    /// arrangement and on every shard change's own condition (`StockMoved` when any fails).
    fn write_rearrangement(
        &self,
        step: &Rearrangement,
    ) -> impl Future<Output = Result<(), WriteError>> + Send;
}

pub trait ReadOrders: Send + Sync {
    /// One order as it stands (a strongly consistent read), with its revision.
    fn read_order(
        &self,
        user_id: &UserId,
        order_id: OrderId,
    ) -> impl Future<Output = Result<Option<OrderState>, ServiceError>> + Send;

    fn list_orders(
        &self,
        user_id: &UserId,
        page: PageRequest,
    ) -> impl Future<Output = Result<OrderPage, ServiceError>> + Send;
}

/// The writes of decided things, each one transaction whose conditions make it correct under
/// any interleaving; a failed condition is a typed `Rejection`.
pub trait WriteOrders: Send + Sync {
    /// Puts a new order (its id must be free) and takes its lines from stock, answering the
    /// claim.
    fn write_new_order(
        &self,
        write: NewOrderWrite<'_>,
    ) -> impl Future<Output = Result<(), WriteError>> + Send;

    /// Writes a transition: the order at its next revision (if still at the expected one),
    /// the stock it gives back, the balance it moves, the claim's answer.
    fn write_transition(
        &self,
        write: TransitionWrite<'_>,
    ) -> impl Future<Output = Result<(), WriteError>> + Send;

    /// Seals a sold-out product's shards (`StockLayout::should_seal`): every shard marked in
    /// one transaction, on condition that each is still empty and unsealed and the product
    /// item's arrangement is the layout's. Whether it was sealed now (false: a shard moved, or
    /// another request sealed it first; nothing was written).
    fn seal_stock(
        &self,
        layout: &StockLayout,
    ) -> impl Future<Output = Result<bool, ServiceError>> + Send;

    /// Takes the seal off shards 0..span of a product (each must still carry it): before units
    /// go back to a sealed shard. False when another request took it off first.
    fn unseal_stock(
        &self,
        product_id: &ProductId,
        span: u32,
    ) -> impl Future<Output = Result<bool, ServiceError>> + Send;
}

/// What create-order needs.
pub trait PlaceOrders: ReadCatalog + WriteOrders + KeepAnswers {}
impl<S: ReadCatalog + WriteOrders + KeepAnswers> PlaceOrders for S {}

/// What pay-order, cancel-order and refund-order need.
pub trait ChangeOrders: ReadOrders + WriteOrders + KeepAnswers {}
impl<S: ReadOrders + WriteOrders + KeepAnswers> ChangeOrders for S {}

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
