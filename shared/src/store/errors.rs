//! Maps SDK errors to domain errors. Anything that says "the store is not answering right now"
//! (timeouts, connection failures, 5xx) becomes `StoreUnavailable`; throttling after the SDK's
//! own retries (a hot item past its partition's throughput) becomes `Throttled`; a write on an
//! item that an ongoing transaction holds (`TransactionConflictException`, which the SDK does
//! not retry) becomes `Contention`, a retryable 409; anything else is a bug on our side and
//! becomes `Internal`.

use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use crate::error::{ErrorChain, ServiceError};

/// How long clients are asked to wait before retrying after a store failure.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(1);

const UNAVAILABLE_CODES: &[&str] = &[
    "InternalServerError",
    "ServiceUnavailable",
    "LimitExceededException",
];

/// DynamoDB's throttling exceptions (the SDK retries them first, with backoff).
const THROTTLING_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
];

/// A single-item write on an item an ongoing transaction holds.
pub(crate) const TRANSACTION_CONFLICT: &str = "TransactionConflictException";

pub(crate) fn is_throttling_code(code: Option<&str>) -> bool {
    matches!(
        code,
        Some("ThrottlingError" | "ProvisionedThroughputExceeded" | "RequestLimitExceeded")
    )
}

pub(crate) fn store_error<E, R>(operation: &'static str, error: SdkError<E, R>) -> ServiceError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = match &error {
        SdkError::ServiceError(service_error) => service_error.err().code(),
        _ => None,
    };
    let unavailable = match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(_) => code.is_none_or(|code| UNAVAILABLE_CODES.contains(&code)),
        _ => false,
    };
    let described = format!("DynamoDB {operation} failed: {}", ErrorChain(&error));
    match code {
        Some(code) if THROTTLING_CODES.contains(&code) => {
            tracing::warn!(operation, cause = %described, "throttled after the SDK's retries");
            ServiceError::Throttled {
                retry_after: RETRY_AFTER,
            }
        }
        Some(TRANSACTION_CONFLICT) => ServiceError::Contention {
            retry_after: RETRY_AFTER,
        },
        _ if unavailable => ServiceError::StoreUnavailable {
            retry_after: RETRY_AFTER,
            source: described.into(),
        },
        _ => ServiceError::Internal(described.into()),
    }
}

pub(crate) fn mapping_error(what: &str, error: serde_dynamo::Error) -> ServiceError {
    ServiceError::internal(format!("cannot map {what}: {error}"))
}
