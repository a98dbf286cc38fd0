//! Bounded, jittered retries for transaction conflicts, and a per-request count of store
//! retries that the HTTP layer logs and publishes as a metric.

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

tokio::task_local! {
    static STORE_RETRIES: Cell<u32>;
}

/// Runs `request` with a fresh store-retry counter in scope and returns the count with its
/// output. Outside such a scope retries are simply not counted.
pub async fn count_store_retries<F: Future>(request: F) -> (F::Output, u32) {
    STORE_RETRIES
        .scope(Cell::new(0), async move {
            let output = request.await;
            (output, store_retries_so_far())
        })
        .await
}

/// The store retries counted so far in the current request scope.
pub fn store_retries_so_far() -> u32 {
    STORE_RETRIES.try_with(Cell::get).unwrap_or(0)
}

/// How many times one logical write is attempted when DynamoDB cancels it for a transaction
/// conflict or throttling. The bound is what rules out livelock; the jitter spreads contenders.
pub(crate) const MAX_WRITE_ATTEMPTS: u32 = 10;

/// How many sends of one logical write may be cancelled for throttling before the request
/// gives up with 503 `STORE_THROTTLED` and `Retry-After`. Resending into a partition that is
/// past its throughput only spends more of it and holds the function (and its concurrency)
/// meanwhile: a flash sale's hot item then starves every other product the function serves.
pub(crate) const MAX_THROTTLED_SENDS: u32 = 2;

/// What a transaction that used up its sends answers: 503 `STORE_THROTTLED` when a send was
/// throttled (a hot item past its partition's throughput: retry later, and the breaker does
/// not count it), else 409 `CONCURRENT_REQUEST` (every send lost its conflicts: nothing was
/// applied).
pub(crate) fn gave_up(throttled: bool) -> crate::ServiceError {
    let retry_after = super::errors::RETRY_AFTER;
    if throttled {
        crate::ServiceError::Throttled { retry_after }
    } else {
        crate::ServiceError::Contention { retry_after }
    }
}

/// Sleeps before retry number `attempt` (1-based) with "full jitter" exponential backoff.
pub(crate) async fn back_off(attempt: u32) {
    let _ = STORE_RETRIES.try_with(|count| count.set(count.get() + 1));
    let base_ms: u64 = 4;
    let cap_ms: u64 = 250;
    let ceiling = cap_ms.min(base_ms.saturating_mul(1 << attempt.min(16)));
    let delay = fastrand::u64(1..=ceiling.max(1));
    tokio::time::sleep(Duration::from_millis(delay)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn retries_are_counted_per_scope() {
        let ((), retries) = count_store_retries(async {
            back_off(1).await;
            back_off(2).await;
        })
        .await;
        assert_eq!(retries, 2);
        assert_eq!(store_retries_so_far(), 0);
    }
}
