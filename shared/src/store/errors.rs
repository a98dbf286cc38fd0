//! Maps SDK errors to domain errors. Anything that says "the store is not answering right now"
//! (timeouts, connection failures, throttling after the SDK's own retries, 5xx) becomes
//! `StoreUnavailable`; anything else is a bug on our side and becomes `Internal`.

use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use crate::error::{ErrorChain, ServiceError};

/// How long clients are asked to wait before retrying after a store failure.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(1);

const UNAVAILABLE_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "LimitExceededException",
];

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
    let unavailable = match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service_error) => {
            let code = service_error.err().code();
            code.is_some_and(|code| UNAVAILABLE_CODES.contains(&code))
                || service_error.err().code().is_none()
        }
        _ => false,
    };
    let described = format!("DynamoDB {operation} failed: {}", ErrorChain(&error));
    if unavailable {
        ServiceError::StoreUnavailable {
            retry_after: RETRY_AFTER,
            source: described.into(),
        }
    } else {
        ServiceError::Internal(described.into())
    }
}

pub(crate) fn mapping_error(what: &str, error: serde_dynamo::Error) -> ServiceError {
    ServiceError::internal(format!("cannot map {what}: {error}"))
}
