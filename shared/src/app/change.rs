//! Changing an order (pay, cancel, refund): read it, let the domain decide, write the decided
//! transition on condition that the order is still at the revision it was decided from, and on
//! a lost race decide again from the order as the rejection returned it. Units given back go to
//! the shard the domain picked; one a reshard removed since sends them to the product's first.

use crate::domain::{Change, Claim, OrderId, ProductId, Refusal, Timestamp, UserId};
use crate::error::{ServiceError, IN_FLIGHT_RETRY_AFTER};
use crate::store::{
    Outcome, ReadOrders, Rejection, TransitionWrite, WriteError, WriteOrders, RETRY_AFTER,
};

/// How many times one request decides anew after its write lost a race. Every lost race is
/// another request's change that committed, so the loop cannot livelock; past the bound the
/// client is told to retry (nothing was applied).
const MAX_DECISIONS: u32 = 8;

/// Applies `change` to `order_id` as the domain decides, under `claim` when the request has an
/// Idempotency-Key.
pub async fn change_order<S: ReadOrders + WriteOrders>(
    store: &S,
    user_id: &UserId,
    order_id: OrderId,
    change: &Change,
    claim: Option<&Claim>,
) -> Result<Outcome, ServiceError> {
    let mut state = store
        .read_order(user_id, order_id)
        .await?
        .ok_or(Refusal::OrderNotFound)?;
    // Products deleted since the order was made: their stock has nowhere to go back to.
    let mut gone: Vec<ProductId> = Vec::new();
    // Products whose shard chosen for a give-back was removed by a reshard: their units go to
    // the first shard, which exists while the product does.
    let mut first_shard: Vec<ProductId> = Vec::new();
    let mut chance = fastrand::Rng::new();
    for _ in 0..MAX_DECISIONS {
        let transition = state
            .decide(change, Timestamp::now(), &mut chance)?
            .without_restock_of(&gone)
            .restocking_first_shard_of(&first_shard);
        let written = store
            .write_transition(TransitionWrite {
                transition: &transition,
                claim,
            })
            .await;
        let rejection = match written {
            Ok(()) => return Ok(Outcome::fresh(transition.order)),
            Err(WriteError::Failed(error)) => return Err(error),
            Err(WriteError::Rejected(rejection)) => rejection,
        };
        match rejection {
            Rejection::OrderMoved {
                current: Some(current),
            } => state = current,
            Rejection::OrderMoved { current: None } => return Err(Refusal::OrderNotFound.into()),
            Rejection::ProductGone { product_id } => {
                tracing::warn!(
                    order_id = %order_id,
                    product_id = %product_id,
                    "an order's product is gone: its stock is not restored"
                );
                gone.push(product_id);
            }
            Rejection::ShardGone { product_id, shard } => {
                tracing::info!(
                    order_id = %order_id,
                    product_id = %product_id,
                    shard,
                    "a shard was removed since the order was made: its units go to the first"
                );
                first_shard.push(product_id);
            }
            Rejection::StockSealed { product_id, span } => {
                // The product sold out and its shards were sealed: units may go back once the
                // seal is off every shard (another request may have taken it off already).
                store.unseal_stock(&product_id, span).await?;
            }
            Rejection::Balance { balance: None } => return Err(Refusal::UserNotFound.into()),
            Rejection::Balance { balance: Some(_) } => {
                return Err(match transition.balance {
                    crate::domain::BalanceMove::Debit(required) => {
                        Refusal::InsufficientBalance { required }.into()
                    }
                    other => ServiceError::internal(format!(
                        "a balance move {other:?} failed for a user that exists"
                    )),
                })
            }
            Rejection::ClaimLost => {
                return Err(ServiceError::RequestInProgress {
                    retry_after: IN_FLIGHT_RETRY_AFTER,
                })
            }
            other @ (Rejection::OrderExists { .. }
            | Rejection::StockShort { .. }
            | Rejection::StockMoved { .. }) => {
                return Err(ServiceError::internal(format!(
                    "a transition was rejected by {other:?}"
                )))
            }
        }
    }
    Err(ServiceError::Contention {
        retry_after: RETRY_AFTER,
    })
}
