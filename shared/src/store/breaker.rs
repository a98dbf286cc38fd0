//! A small per-process circuit breaker in front of DynamoDB. After a run of consecutive
//! failures to reach the store it opens and fails calls fast for a cool-down, so that a dead or
//! very slow store costs clients a quick 503 with `Retry-After` instead of a full timeout each.
//! After the cool-down one call, the probe, goes through (half-open) while the others keep
//! failing fast: the probe's success closes the breaker, its failure opens it again.
//!
//! What counts: a store that did not answer in time or at all is a failure; any answer, a
//! refusal included, is a success. Two outcomes count for neither: throttling (the store is up
//! and one hot item is busy; it must not fail every other item's requests) and internal errors
//! (a bug of ours says nothing about the store, and must not close an open breaker either).

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::ServiceError;

/// What one call tells the breaker about the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The store answered.
    Reached,
    /// The store could not be reached, or not in time.
    Unreachable,
    /// Says nothing about whether the store is reachable (throttling, a bug of ours).
    Neither,
}

impl Verdict {
    /// The verdict on a call that ended with `result`.
    pub fn of<T>(result: &Result<T, ServiceError>) -> Self {
        match result {
            Ok(_) => Verdict::Reached,
            Err(ServiceError::StoreUnavailable { .. }) => Verdict::Unreachable,
            Err(ServiceError::Throttled { .. } | ServiceError::Internal(_)) => Verdict::Neither,
            Err(_) => Verdict::Reached,
        }
    }
}

/// How a call was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The breaker is closed.
    Normal,
    /// The one call allowed through after the cool-down.
    Probe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// A probe is out since `since`; if it never reports (its caller gave up), another call
    /// becomes the probe after a cool-down.
    HalfOpen {
        since: Instant,
    },
}

#[derive(Debug)]
pub struct CircuitBreaker {
    failure_threshold: u32,
    open_for: Duration,
    state: Mutex<State>,
}

#[derive(Debug, thiserror::Error)]
#[error("the circuit breaker is open after repeated store failures")]
struct BreakerOpen;

impl CircuitBreaker {
    pub fn new(failure_threshold: u32, open_for: Duration) -> Self {
        Self {
            failure_threshold: failure_threshold.max(1),
            open_for,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fail_fast(&self, until: Instant, now: Instant) -> ServiceError {
        ServiceError::StoreUnavailable {
            retry_after: until
                .saturating_duration_since(now)
                .max(Duration::from_secs(1)),
            source: Box::new(BreakerOpen),
        }
    }

    /// Lets a call through, or fails it fast while the breaker is open or its probe is out.
    pub fn admit(&self) -> Result<Admission, ServiceError> {
        let now = Instant::now();
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Ok(Admission::Normal),
            State::Open { until } if until > now => Err(self.fail_fast(until, now)),
            State::HalfOpen { since } if since + self.open_for > now => {
                Err(self.fail_fast(since + self.open_for, now))
            }
            State::Open { .. } | State::HalfOpen { .. } => {
                *state = State::HalfOpen { since: now };
                Ok(Admission::Probe)
            }
        }
    }

    /// Records what a call let through by `admission` found.
    pub fn record(&self, admission: Admission, verdict: Verdict) {
        let mut state = self.lock();
        let now = Instant::now();
        match (verdict, admission, *state) {
            (Verdict::Reached, _, _) => *state = State::Closed { failures: 0 },
            (Verdict::Unreachable, Admission::Probe, _) => {
                *state = State::Open {
                    until: now + self.open_for,
                };
                tracing::warn!("store circuit breaker re-opened: its probe failed");
            }
            (Verdict::Unreachable, Admission::Normal, State::Closed { failures }) => {
                let failures = failures + 1;
                *state = if failures >= self.failure_threshold {
                    tracing::warn!(failures, "store circuit breaker opened");
                    State::Open {
                        until: now + self.open_for,
                    }
                } else {
                    State::Closed { failures }
                };
            }
            // A call let through before the breaker opened: it is open already.
            (Verdict::Unreachable, Admission::Normal, _) => {}
            // The probe learnt nothing: the next call probes again.
            (Verdict::Neither, Admission::Probe, _) => *state = State::Open { until: now },
            (Verdict::Neither, Admission::Normal, _) => {}
        }
    }

    pub fn is_open(&self) -> bool {
        !matches!(*self.lock(), State::Closed { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(breaker: &CircuitBreaker) {
        let admission = breaker.admit().expect("admitted");
        breaker.record(admission, Verdict::Unreachable);
    }

    #[test]
    fn opens_after_the_threshold_and_closes_on_a_successful_probe() {
        // GIVEN a breaker that opens after three failures, for 30 ms
        let breaker = CircuitBreaker::new(3, Duration::from_millis(30));
        fail(&breaker);
        fail(&breaker);
        assert!(!breaker.is_open());
        // WHEN the third consecutive failure arrives THEN calls fail fast with a retry hint
        fail(&breaker);
        match breaker.admit() {
            Err(ServiceError::StoreUnavailable { retry_after, .. }) => {
                assert!(retry_after >= Duration::from_secs(1));
            }
            other => panic!("expected StoreUnavailable, got {other:?}"),
        }
        // WHEN the cool-down is over THEN one call is the probe and the others still fail fast
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(breaker.admit().unwrap(), Admission::Probe);
        assert!(
            breaker.admit().is_err(),
            "a second call while the probe is out"
        );
        // AND the probe's success closes the breaker
        breaker.record(Admission::Probe, Verdict::Reached);
        assert_eq!(breaker.admit().unwrap(), Admission::Normal);
        assert!(!breaker.is_open());
    }

    #[test]
    fn a_failed_probe_reopens_and_a_lost_probe_is_replaced() {
        let breaker = CircuitBreaker::new(1, Duration::from_millis(20));
        fail(&breaker);
        std::thread::sleep(Duration::from_millis(25));
        let probe = breaker.admit().unwrap();
        breaker.record(probe, Verdict::Unreachable);
        assert!(
            breaker.admit().is_err(),
            "open again after the failed probe"
        );
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(breaker.admit().unwrap(), Admission::Probe);
        // The probe's caller gave up without reporting: after a cool-down another call probes.
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(breaker.admit().unwrap(), Admission::Probe);
    }

    #[test]
    fn only_reaching_the_store_resets_the_count() {
        let breaker = CircuitBreaker::new(2, Duration::from_secs(60));
        fail(&breaker);
        // A bug of ours (500) and a throttled hot item say nothing about reachability...
        for verdict in [
            Verdict::of::<()>(&Err(ServiceError::internal("a bug"))),
            Verdict::of::<()>(&Err(ServiceError::Throttled {
                retry_after: Duration::from_secs(1),
            })),
        ] {
            assert_eq!(verdict, Verdict::Neither);
            breaker.record(Admission::Normal, verdict);
        }
        // ...so the next failure is the second in a row and opens it
        fail(&breaker);
        assert!(breaker.is_open());
        // A refusal is an answer: the store was reached.
        assert_eq!(
            Verdict::of::<()>(&Err(crate::domain::Refusal::OrderNotFound.into())),
            Verdict::Reached
        );
    }
}
