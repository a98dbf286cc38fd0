//! A small per-process circuit breaker in front of DynamoDB. After a run of consecutive
//! `StoreUnavailable` outcomes it opens and fails calls fast for a cool-down, so that a dead or
//! very slow store costs clients a quick 503 with `Retry-After` instead of a full timeout each.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::ServiceError;

#[derive(Debug)]
pub struct CircuitBreaker {
    failure_threshold: u32,
    open_for: Duration,
    consecutive_failures: AtomicU32,
    open_until: Mutex<Option<Instant>>,
}

#[derive(Debug, thiserror::Error)]
#[error("the circuit breaker is open after repeated store failures")]
struct BreakerOpen;

impl CircuitBreaker {
    pub fn new(failure_threshold: u32, open_for: Duration) -> Self {
        Self {
            failure_threshold: failure_threshold.max(1),
            open_for,
            consecutive_failures: AtomicU32::new(0),
            open_until: Mutex::new(None),
        }
    }

    /// Fails fast while the breaker is open. Once the cool-down is over, calls go through again
    /// (half-open): one more failure re-opens it at once, one success closes it.
    pub fn check(&self) -> Result<(), ServiceError> {
        let now = Instant::now();
        let open_until = *self
            .open_until
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        match open_until {
            Some(until) if until > now => Err(ServiceError::StoreUnavailable {
                retry_after: (until - now).max(Duration::from_secs(1)),
                source: Box::new(BreakerOpen),
            }),
            _ => Ok(()),
        }
    }

    pub fn record_success(&self) {
        if self.consecutive_failures.swap(0, Ordering::Relaxed) != 0 {
            *self
                .open_until
                .lock()
                .unwrap_or_else(|poison| poison.into_inner()) = None;
        }
    }

    pub fn record_failure(&self) {
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= self.failure_threshold {
            let mut open_until = self
                .open_until
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            *open_until = Some(Instant::now() + self.open_for);
            tracing::warn!(failures, "store circuit breaker opened");
        }
    }

    pub fn is_open(&self) -> bool {
        self.check().is_err()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_closes_on_success() {
        // GIVEN a breaker that opens after three failures
        let breaker = CircuitBreaker::new(3, Duration::from_secs(60));
        breaker.record_failure();
        breaker.record_failure();
        assert!(!breaker.is_open());
        // WHEN the third consecutive failure arrives THEN calls fail fast with a retry hint
        breaker.record_failure();
        match breaker.check() {
            Err(ServiceError::StoreUnavailable { retry_after, .. }) => {
                assert!(retry_after >= Duration::from_secs(1));
            }
            other => panic!("expected StoreUnavailable, got {other:?}"),
        }
        // WHEN a call succeeds (a half-open probe) THEN the breaker closes
        breaker.record_success();
        assert!(!breaker.is_open());
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let breaker = CircuitBreaker::new(2, Duration::from_secs(60));
        breaker.record_failure();
        breaker.record_success();
        breaker.record_failure();
        assert!(!breaker.is_open());
    }

    #[test]
    fn half_open_after_the_cool_down() {
        let breaker = CircuitBreaker::new(1, Duration::from_millis(0));
        breaker.record_failure();
        assert!(!breaker.is_open());
    }
}
