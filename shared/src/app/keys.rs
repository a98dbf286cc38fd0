//! Running a state-changing request under its Idempotency-Key (what a key means is decided in
//! `domain::idempotency`, its records are kept by the store's `KeepAnswers`).
//!
//! With a key: claim it, or answer from its record (the first answer, `Idempotent-Replayed`),
//! or refuse (422 reused key, 409 + `Retry-After` while the first request is in flight). The
//! use case's own transaction answers the claim when it changes something; a business refusal
//! answers it with a conditional update; any other failure releases it, so nothing but a
//! business outcome is ever kept. A record this request wrote itself (a claim or a refusal
//! whose answer was lost and that the SDK sent again) is its own, not another request's.

use std::future::Future;

use crate::domain::{Answer, Change, Claim, IdempotencyKey, NewOrder, Order, OrderId, UserId};
use crate::error::ServiceError;
use crate::http::Reply;
use crate::store::{ChangeOrders, KeepAnswers, Outcome, PlaceOrders};

/// Runs `use_case` once under `key` (or once without one) and renders its answer.
pub async fn answer_once<S, Op, Fut>(
    store: &S,
    user_id: &UserId,
    key: Option<IdempotencyKey>,
    claim_for: impl FnOnce(IdempotencyKey) -> Claim,
    answer: fn(Order) -> Answer,
    use_case: Op,
) -> Result<Reply, ServiceError>
where
    S: KeepAnswers,
    Op: FnOnce(Option<Claim>) -> Fut,
    Fut: Future<Output = Result<Outcome, ServiceError>>,
{
    let Some(key) = key else {
        let outcome = use_case(None).await?;
        return Ok(Reply::answer(&answer(outcome.order))?.replayed(outcome.replayed));
    };
    let claim = claim_for(key);
    match store.claim(user_id, &claim).await? {
        Some(prior) if !prior.made_by(&claim) => {
            return Ok(Reply::answer(&claim.against(&prior)?)?.replayed(true));
        }
        // Claimed now, or by this request's own earlier attempt.
        _ => {}
    }
    match use_case(Some(claim.clone())).await {
        Ok(outcome) => {
            if outcome.replayed {
                // The key's answer had expired and the effect was found in place: nothing
                // answered the new claim, so give it up rather than let it hold the key.
                store.release(user_id, &claim).await;
            }
            Ok(Reply::answer(&answer(outcome.order))?.replayed(outcome.replayed))
        }
        Err(error) => match error.refusal() {
            Some(refusal) => match store.answer_refusal(user_id, &claim, refusal).await {
                Ok(None) => Err(error),
                // This request's own refusal, recorded by an attempt whose answer was lost.
                Ok(Some(prior)) if prior.made_by(&claim) => Err(error),
                Ok(Some(prior)) => Ok(Reply::answer(&claim.against(&prior)?)?.replayed(true)),
                // The refusal could not be kept: it is no answer, so give the key back.
                Err(failure) => {
                    store.release(user_id, &claim).await;
                    Err(failure)
                }
            },
            None => {
                store.release(user_id, &claim).await;
                Err(error)
            }
        },
    }
}

/// Places `order` once under its Idempotency-Key.
pub async fn create_once<S: PlaceOrders>(
    store: &S,
    user_id: &UserId,
    key: Option<IdempotencyKey>,
    order: &NewOrder,
) -> Result<Reply, ServiceError> {
    answer_once(
        store,
        user_id,
        key,
        |key| Claim::to_create(key, order),
        Answer::Created,
        |claim| async move { super::place::place_order(store, user_id, order, claim.as_ref()).await },
    )
    .await
}

/// Makes `change` to `order_id` once under its Idempotency-Key.
pub async fn change_once<S: ChangeOrders>(
    store: &S,
    user_id: &UserId,
    key: Option<IdempotencyKey>,
    order_id: OrderId,
    change: &Change,
) -> Result<Reply, ServiceError> {
    answer_once(
        store,
        user_id,
        key,
        |key| Claim::to_change(key, change, order_id),
        Answer::Updated,
        |claim| async move {
            super::change::change_order(store, user_id, order_id, change, claim.as_ref()).await
        },
    )
    .await
}
