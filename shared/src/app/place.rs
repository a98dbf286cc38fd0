//! Placing an order: read the user, the prices and the shard counts, let the domain price the
//! order and choose a shard of each product's stock at random, write it with its stock taken,
//! and read what a rejected write says.
//!
//! A sharded product's fast path reads no shard. When the shard chosen for a line holds too
//! little, the line is allocated again from what the product's shards hold (a strongly
//! consistent read of each), and written again; only when the shards together hold too little
//! is the answer 409 `OUT_OF_STOCK`, and that answer is confirmed by a read of all of them at
//! one instant first, since units may move between shards while they are read one by one; when
//! they are all empty, the create also seals them, so that every create after it is refused by
//! the seal on its own shard, with no read. An ordinary product's one item is its whole stock:
//! its failed condition is the answer, with no read (the shard that failed comes back with the
//! rejection).

use crate::domain::{
    allocate, replace_moves, take_at_random, Claim, Fingerprint, NewOrder, Order, OrderId,
    ProductId, Quantity, Refusal, Shortfall, StockMove, Timestamp, UserId, MAX_STOCK_MOVES,
};
use crate::error::{ServiceError, IN_FLIGHT_RETRY_AFTER};
use crate::store::{
    NewOrderWrite, Outcome, ReadCatalog, Rejection, WriteError, WriteOrders, RETRY_AFTER,
};

/// How many times one create writes its order. Every write but the last found a shard short:
/// another request took its units first, or a rearrangement moved them, so the loop cannot
/// livelock; past the bound nothing was applied and the client may retry.
const MAX_WRITES: u32 = 8;

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
    let shard_counts = catalog.shard_counts.restricted_to(&products);
    let mut chance = fastrand::Rng::new();
    let mut takes = take_at_random(&order.items, &shard_counts, &mut chance);
    for _ in 0..MAX_WRITES {
        let written = store
            .write_new_order(NewOrderWrite {
                order: &order,
                takes: &takes,
                shard_counts: &shard_counts,
                request: &fingerprint,
                claim,
            })
            .await;
        let rejection = match written {
            Ok(()) => return Ok(Outcome::fresh(order)),
            Err(WriteError::Failed(error)) => return Err(error),
            Err(WriteError::Rejected(rejection)) => rejection,
        };
        match rejection {
            Rejection::OrderExists { existing, request } => {
                let same_request = match claim {
                    Some(claim) => claim.recognises(&request),
                    None => request == fingerprint,
                };
                if !same_request {
                    return Err(ServiceError::IdempotencyKeyReused);
                }
                // With a key, its answer has expired and the order is what it created. Without
                // one the id is unique to this request: the order is its own, from a send
                // DynamoDB no longer recognised by its ClientRequestToken (ten minutes).
                return Ok(Outcome {
                    order: existing.order,
                    replayed: claim.is_some(),
                });
            }
            Rejection::StockShort {
                product_id,
                shard,
                seen,
            } => {
                if seen.is_some_and(|seen| seen.proves_shortfall()) {
                    return Err(Refusal::OutOfStock { product_id }.into());
                }
                tracing::debug!(%product_id, shard, ?seen, "a shard ran short: allocating from all");
                let quantity = order
                    .items
                    .iter()
                    .find(|line| line.product_id == product_id)
                    .map(|line| line.quantity)
                    .ok_or_else(|| {
                        ServiceError::internal(format!("a take of {product_id}, not in the order"))
                    })?;
                let hint = shard_counts.of(&product_id);
                let moves =
                    allocate_from_shards(store, &product_id, quantity, hint, &mut chance).await?;
                takes = replace_moves(&takes, moves).map_err(|_| too_spread())?;
            }
            Rejection::ClaimLost => {
                return Err(ServiceError::RequestInProgress {
                    retry_after: IN_FLIGHT_RETRY_AFTER,
                })
            }
            other => {
                return Err(ServiceError::internal(format!(
                    "a new order's write was rejected by {other:?}"
                )))
            }
        }
    }
    Err(ServiceError::Contention {
        retry_after: RETRY_AFTER,
    })
}

/// The moves that take `quantity` of `product_id` from what its shards hold now: from a
/// strongly consistent read of each shard; when they look short together, from a read of all
/// of them at one instant, which alone can say the product is out of stock.
async fn allocate_from_shards<S: ReadCatalog + WriteOrders>(
    store: &S,
    product_id: &ProductId,
    quantity: Quantity,
    hint: crate::domain::ShardCount,
    chance: &mut fastrand::Rng,
) -> Result<Vec<StockMove>, ServiceError> {
    let out_of_stock = || {
        ServiceError::from(Refusal::OutOfStock {
            product_id: product_id.clone(),
        })
    };
    let layout = store
        .read_stock(product_id, hint)
        .await?
        .ok_or_else(out_of_stock)?;
    match allocate(&layout, quantity, chance) {
        Ok(moves) => return Ok(moves),
        // One item read strongly consistently is a snapshot of the whole stock, and a sealed
        // product item says every shard was empty and still is.
        Err(Shortfall::OutOfStock) if layout.span() == 1 || layout.sealed => {
            return Err(out_of_stock())
        }
        Err(_) => {}
    }
    let expected = crate::domain::ShardCount::new(layout.span()).unwrap_or(hint);
    let at_once = store
        .read_stock_at_once(product_id, expected)
        .await?
        .ok_or_else(out_of_stock)?;
    let allocated = allocate(&at_once, quantity, chance).map_err(|_| out_of_stock());
    if at_once.should_seal() {
        // Sold out: seal the shards so the creates after this one are refused by their own
        // shard, with no read. Best effort: the answer is already exact without it.
        match store.seal_stock(&at_once).await {
            Ok(sealed) => tracing::info!(%product_id, sealed, "a sharded product sold out"),
            Err(error) => tracing::warn!(%product_id, %error, "cannot seal a sold-out product"),
        }
    }
    allocated
}

/// The order would take stock from more shards than one transaction can write: the units are
/// there, spread too thinly for this order's lines together.
fn too_spread() -> ServiceError {
    ServiceError::Validation(format!(
        "this order would take its stock from more than {MAX_STOCK_MOVES} places at once; \
         order fewer lines or fewer units at a time"
    ))
}
