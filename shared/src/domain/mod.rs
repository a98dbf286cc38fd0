//! Pure domain types and decisions: identifiers, money, quantities, orders and how they may
//! change, refusals, Idempotency-Keys, the conservation rule, the validated request bodies and
//! where stock is taken from and given back to when a product's stock is sharded.
//! Nothing here performs IO or imports the AWS SDK, `lambda_http` or tokio (a tidy test checks
//! which crates it may use).

mod change;
mod idempotency;
mod ids;
mod ledger;
mod money;
mod order;
mod rearrangement;
mod refusal;
mod request;
mod stock;
mod timestamp;

pub use change::{BalanceMove, Change, ChangeKind, Transition};
pub use idempotency::{
    Answer, Claim, ClaimTimes, Conflict, Fingerprint, IdempotencyKey, Prior, DEFAULT_ANSWER_TTL,
    IN_FLIGHT_LEASE, MAX_IDEMPOTENCY_KEY_LENGTH,
};
pub use ids::{OrderId, ProductId, UserId};
pub use ledger::{Account, Ledger};
pub use money::{Money, Quantity};
pub use order::{Holdings, Order, OrderLine, OrderState, OrderStatus, PlacementError, Units};
pub use rearrangement::{Arrangement, Rearrangement, ShardChange};
pub use refusal::{Refusal, RefusalKind};
pub use request::{CreateOrderRequest, LineRequest, NewOrder, Object, MAX_ORDER_LINES};
pub use stock::{
    allocate, give_back, replace_moves, spread, take_at_random, ShardCount, ShardCounts, Shortfall,
    StockLayout, StockMove, MAX_SHARDS, MAX_STOCK_MOVES,
};
pub use timestamp::Timestamp;

/// The reason a value was rejected while parsing input; rendered as a 400 `VALIDATION_ERROR`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValidationError(pub String);

impl ValidationError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
