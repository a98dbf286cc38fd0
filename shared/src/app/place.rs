//! Placing an order: read the user and the prices, let the domain price the order, write it
//! with its stock taken, and read what a rejected write says.

use crate::domain::{
    Claim, Fingerprint, NewOrder, Order, OrderId, ProductId, Refusal, Timestamp, UserId,
};
use crate::error::{ServiceError, IN_FLIGHT_RETRY_AFTER};
use crate::store::{NewOrderWrite, Outcome, ReadCatalog, Rejection, WriteError, WriteOrders};

/// Places `request` for `user_id`, under `claim` when the request has an Idempotency-Key (the
/// key then names the order: a retry after its answer expired finds the order it made).
pub async fn place_order<S: ReadCatalog + WriteOrders>(
    store: &S,
    user_id: &UserId,
    request: &NewOrder,
    claim: Option<&Claim>,
) -> Result<Outcome, ServiceError> {
    let order_id = claim.map_or_else(OrderId::random, |claim| claim.key.order_id(user_id));
    let products: Vec<ProductId> = request
        .lines()
        .iter()
        .map(|line| line.product_id.clone())
        .collect();
    let catalog = store.read_catalog(user_id, &products).await?;
    if !catalog.user_exists {
        return Err(Refusal::UserNotFound.into());
    }
    let order = Order::place(
        order_id,
        user_id.clone(),
        request,
        &catalog.prices,
        Timestamp::now(),
    )?;
    let fingerprint = Fingerprint::create(request);
    let written = store
        .write_new_order(NewOrderWrite {
            order: &order,
            request: &fingerprint,
            claim,
        })
        .await;
    match written {
        Ok(()) => Ok(Outcome::fresh(order)),
        Err(WriteError::Failed(error)) => Err(error),
        Err(WriteError::Rejected(Rejection::OrderExists { existing, request })) => {
            let same_request = match claim {
                Some(claim) => claim.recognises(&request),
                None => request == fingerprint,
            };
            if !same_request {
                return Err(ServiceError::IdempotencyKeyReused);
            }
            // With a key, its answer has expired and the order is what it created. Without
            // one the id is unique to this request: the order is its own, from a send DynamoDB
            // no longer recognised by its ClientRequestToken (that lasts ten minutes).
            Ok(Outcome {
                order: existing.order,
                replayed: claim.is_some(),
            })
        }
        Err(WriteError::Rejected(Rejection::StockShort { product_id })) => {
            Err(Refusal::OutOfStock { product_id }.into())
        }
        Err(WriteError::Rejected(Rejection::ClaimLost)) => Err(ServiceError::RequestInProgress {
            retry_after: IN_FLIGHT_RETRY_AFTER,
        }),
        Err(WriteError::Rejected(other)) => Err(ServiceError::internal(format!(
            "a new order's write was rejected by {other:?}"
        ))),
    }
}
