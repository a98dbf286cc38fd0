//! Pure domain types: identifiers, money, quantities, orders and the validated create request.
//! Nothing here performs IO, imports the AWS SDK, `lambda_http` or tokio.

mod idempotency;
mod ids;
mod money;
mod order;
mod request;

pub use idempotency::{
    Answer, Claim, ClaimTimes, Conflict, Fingerprint, IdempotencyKey, Prior, Refusal,
    DEFAULT_ANSWER_TTL, IN_FLIGHT_LEASE, MAX_IDEMPOTENCY_KEY_LENGTH,
};
pub use ids::{OrderId, ProductId, UserId};
pub use money::{Money, Quantity};
pub use order::{
    BalanceMove, Change, Order, OrderLine, OrderStatus, PlacementError, Timestamp, Transition,
};
pub use request::{CreateOrderRequest, LineRequest, NewOrder, Object, MAX_ORDER_LINES};

/// The reason a value was rejected while parsing input; rendered as a 400 `VALIDATION_ERROR`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValidationError(pub String);

impl ValidationError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
