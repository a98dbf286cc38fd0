//! The request's deadline for store calls. A function has until its invocation's deadline to
//! answer; `App::run` sets the point by which every store call must be done, and the store
//! gives up at it (as `StoreUnavailable`, counted by the breaker) instead of being dropped
//! mid-call by the request's outer timeout. That leaves `RELEASE_RESERVE` for giving an
//! Idempotency-Key back, and the answer's own reserve for rendering the 503.

use std::future::Future;
use std::time::{Duration, Instant};

tokio::task_local! {
    static DEADLINE: Instant;
}

/// How long a request keeps, after its store deadline, to release its Idempotency-Key claim.
pub const RELEASE_RESERVE: Duration = Duration::from_millis(250);

/// Runs `work` with store calls bounded by `deadline`.
pub async fn with_deadline<F: Future>(deadline: Instant, work: F) -> F::Output {
    DEADLINE.scope(deadline, work).await
}

/// The current request's store deadline, if it has one.
pub(crate) fn deadline() -> Option<Instant> {
    DEADLINE.try_with(|deadline| *deadline).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_deadline_is_scoped_to_its_work() {
        assert_eq!(deadline(), None);
        let at = Instant::now() + Duration::from_secs(1);
        assert_eq!(with_deadline(at, async { deadline() }).await, Some(at));
        assert_eq!(deadline(), None);
    }
}
