//! Faults injected on purpose, beside production's own behaviour: late answers (the ambiguous
//! commit idempotency keys exist for), cancellations answered without forwarding, an outage,
//! and a planted bug (a condition stripped off a write) that a history checker must catch.
//! They can be changed while the proxy runs, through `Handle::update_faults` or
//! `PUT /_faithful/faults`.

use serde::{Deserialize, Serialize};

/// What the next transactions are answered with, instead of being forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Injected {
    /// `TransactionCanceledException` with `TransactionConflict` on the first item.
    Conflict,
    /// `TransactionCanceledException` with `ThrottlingError` on the first item.
    Throttling,
}

/// How the store is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outage {
    /// Every connection is closed as soon as it is accepted.
    Refuse,
    /// Requests are read and never answered.
    Hang,
}

/// The faults in force. The default is none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Faults {
    /// Milliseconds a request spends inside the store before it is applied: a slow request,
    /// holding its items (and its transaction token) meanwhile.
    pub request_delay_ms: u64,
    /// Milliseconds by which an answer is held back after DynamoDB Local gave it: the write
    /// has committed, only its answer is late.
    pub response_delay_ms: u64,
    /// The operations the two delays apply to (e.g. `["TransactWriteItems"]`); empty: all.
    pub delay_only: Vec<String>,
    /// Answer this many of the next `TransactWriteItems` with `inject`, without forwarding.
    pub inject_next: u64,
    pub inject: Option<Injected>,
    pub outage: Option<Outage>,
    /// A planted bug: transaction updates of items whose sort key starts with this prefix lose
    /// their condition (e.g. `ORDER#`: a payment or cancel no longer checks the order's status).
    pub strip_conditions_on: Option<String>,
}

impl Faults {
    /// Whether the delays apply to a request of `operation`.
    pub fn delays(&self, operation: &str) -> bool {
        self.delay_only.is_empty() || self.delay_only.iter().any(|only| only == operation)
    }

    /// Late answers to `operation` only (empty: to every request), `delay_ms` late.
    pub fn late_answers(operation: Option<&str>, delay_ms: u64) -> Self {
        Self {
            response_delay_ms: delay_ms,
            delay_only: operation.map(str::to_owned).into_iter().collect(),
            ..Self::default()
        }
    }

    /// The next `count` transactions answered with `kind`, without being forwarded.
    pub fn injecting(kind: Injected, count: u64) -> Self {
        Self {
            inject: Some(kind),
            inject_next: count,
            ..Self::default()
        }
    }
}
