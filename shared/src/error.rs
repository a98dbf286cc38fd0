//! The one error type of the service. Each variant is an outcome a client can be told about;
//! `code()` is its stable machine-readable name. How each maps to an HTTP status lives in one
//! place only: `crate::http::problem`.

use std::time::Duration;

use crate::domain::{Conflict, Refusal, ValidationError};

/// A missing or invalid setting: the function fails its init with it. (Here, not in
/// config.rs, so that auth.rs and config.rs do not import each other.)
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

/// Why a request did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    Validation(String),
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("the token's subject may not act on this user's orders")]
    Forbidden,
    /// A business refusal (`domain::Refusal` spells each one: code, title, detail).
    #[error(transparent)]
    Refused(Refusal),
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    /// An earlier request with the same Idempotency-Key is still running; nothing was done for
    /// this one. Retrying after the delay gets that request's answer.
    #[error(
        "a request with this Idempotency-Key is still in progress; retry shortly for its answer"
    )]
    RequestInProgress { retry_after: Duration },
    /// Concurrent requests kept conflicting on the same items past the retry bound; nothing
    /// was applied and the client may retry.
    #[error("concurrent requests are changing the same items; nothing was applied, retry shortly")]
    Contention { retry_after: Duration },
    /// The store could not be reached, timed out or kept throttling after retries. The source
    /// is kept for the log and never shown to the client.
    #[error("the order store is temporarily unavailable")]
    StoreUnavailable {
        retry_after: Duration,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// DynamoDB kept throttling the items this request needs (a hot item past its partition's
    /// throughput, after retries): the store is up, these items are busy. Not a store outage,
    /// so it does not open the circuit breaker for every other request.
    #[error("the order store is throttling the items this request needs")]
    Throttled { retry_after: Duration },
    /// A bug or an impossible state. The source goes to the log; the client sees an opaque 500.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ServiceError {
    /// The stable machine-readable code sent as `code` in the problem body.
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::Validation(_) => "VALIDATION_ERROR",
            ServiceError::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            ServiceError::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ServiceError::Unauthorized(_) => "UNAUTHORIZED",
            ServiceError::Forbidden => "FORBIDDEN",
            ServiceError::Refused(refusal) => refusal.code(),
            ServiceError::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            ServiceError::RequestInProgress { .. } => "REQUEST_IN_PROGRESS",
            ServiceError::Contention { .. } => "CONCURRENT_REQUEST",
            ServiceError::StoreUnavailable { .. } => "STORE_UNAVAILABLE",
            ServiceError::Throttled { .. } => "STORE_THROTTLED",
            ServiceError::Internal(_) => "INTERNAL_ERROR",
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ServiceError::Internal(message.into().into())
    }

    /// The business refusal this error is, if it is one: the errors an Idempotency-Key keeps
    /// as its answer. Invalid input, contention and store or server failures are not.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            ServiceError::Refused(refusal) => Some(refusal.clone()),
            _ => None,
        }
    }
}

impl From<Refusal> for ServiceError {
    fn from(refusal: Refusal) -> Self {
        ServiceError::Refused(refusal)
    }
}

/// How long a client is asked to wait before retrying a request whose key is in flight.
pub const IN_FLIGHT_RETRY_AFTER: Duration = Duration::from_secs(1);

impl From<Conflict> for ServiceError {
    fn from(conflict: Conflict) -> Self {
        match conflict {
            Conflict::KeyReused => ServiceError::IdempotencyKeyReused,
            Conflict::InFlight => ServiceError::RequestInProgress {
                retry_after: IN_FLIGHT_RETRY_AFTER,
            },
        }
    }
}

impl From<crate::domain::PlacementError> for ServiceError {
    fn from(error: crate::domain::PlacementError) -> Self {
        match error {
            crate::domain::PlacementError::Refused(refusal) => refusal.into(),
            crate::domain::PlacementError::Invalid(invalid) => invalid.into(),
        }
    }
}

impl From<ValidationError> for ServiceError {
    fn from(error: ValidationError) -> Self {
        ServiceError::Validation(error.0)
    }
}

/// Renders an error with its whole source chain, for logs only (never for clients).
pub struct ErrorChain<'a>(pub &'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(formatter, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}
