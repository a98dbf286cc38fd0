//! The one place where a `ServiceError` becomes an HTTP response: RFC 9457
//! `application/problem+json` with `type`, `title`, `status`, `detail` and a stable `code`.
//! 5xx bodies are opaque; their cause goes to the log, never to the client.

use lambda_http::http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use serde::Serialize;

use crate::domain::{ProductId, RefusalKind};
use crate::error::ServiceError;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

pub fn status_of(error: &ServiceError) -> StatusCode {
    match error {
        ServiceError::Validation(_) => StatusCode::BAD_REQUEST,
        ServiceError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        ServiceError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ServiceError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        ServiceError::Forbidden => StatusCode::FORBIDDEN,
        ServiceError::Refused(refusal) => match refusal.kind() {
            RefusalKind::NotFound => StatusCode::NOT_FOUND,
            RefusalKind::Conflict => StatusCode::CONFLICT,
        },
        ServiceError::Contention { .. } | ServiceError::RequestInProgress { .. } => {
            StatusCode::CONFLICT
        }
        ServiceError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
        ServiceError::StoreUnavailable { .. } | ServiceError::Throttled { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ServiceError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn title_of(error: &ServiceError) -> &'static str {
    match error {
        ServiceError::Validation(_) => "The request is not valid",
        ServiceError::PayloadTooLarge { .. } => "The request body is too large",
        ServiceError::UnsupportedMediaType => "The request body must be JSON",
        ServiceError::Unauthorized(_) => "Authentication is required",
        ServiceError::Forbidden => "Not allowed",
        ServiceError::Refused(refusal) => refusal.title(),
        ServiceError::IdempotencyKeyReused => "Idempotency-Key reused",
        ServiceError::RequestInProgress { .. } => "Request in progress",
        ServiceError::Contention { .. } => "Concurrent request",
        ServiceError::StoreUnavailable { .. } => "Service temporarily unavailable",
        ServiceError::Throttled { .. } => "Items temporarily too busy",
        ServiceError::Internal(_) => "Internal error",
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Problem<'a> {
    #[serde(rename = "type")]
    problem_type: String,
    title: &'static str,
    status: u16,
    detail: String,
    code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    product_id: Option<&'a str>,
}

/// Renders the error as a problem response.
pub fn problem_response(error: &ServiceError) -> Response<Body> {
    let status = status_of(error);
    let code = error.code();
    let detail = if status.is_server_error() {
        // Opaque on purpose: the cause chain is logged by the caller.
        match error {
            ServiceError::StoreUnavailable { .. } => {
                "The order store is temporarily unavailable. Retry after the indicated delay."
                    .to_owned()
            }
            ServiceError::Throttled { .. } => {
                "The items this request needs are busier than the store serves right now. \
                 Retry after the indicated delay."
                    .to_owned()
            }
            _ => "An internal error occurred.".to_owned(),
        }
    } else {
        error.to_string()
    };
    let product_id = match error {
        ServiceError::Refused(refusal) => refusal.product_id().map(ProductId::as_str),
        _ => None,
    };
    let problem = Problem {
        problem_type: format!(
            "urn:problem-type:order-service:{}",
            code.to_ascii_lowercase().replace('_', "-")
        ),
        title: title_of(error),
        status: status.as_u16(),
        detail,
        code,
        product_id,
    };
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let mut response = Response::new(Body::Binary(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
    );
    let retry_after = match error {
        ServiceError::StoreUnavailable { retry_after, .. }
        | ServiceError::Throttled { retry_after }
        | ServiceError::Contention { retry_after }
        | ServiceError::RequestInProgress { retry_after } => Some(retry_after.as_secs().max(1)),
        _ => None,
    };
    if let Some(seconds) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if matches!(error, ServiceError::Unauthorized(_)) {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Money, Refusal};
    use std::time::Duration;

    fn body_json(response: &Response<Body>) -> serde_json::Value {
        serde_json::from_slice(response.body().as_ref()).unwrap()
    }

    #[test]
    fn client_errors_carry_code_status_and_detail() {
        let response = problem_response(&ServiceError::Refused(Refusal::OutOfStock {
            product_id: ProductId::parse("product-9").unwrap(),
        }));
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            PROBLEM_CONTENT_TYPE
        );
        let body = body_json(&response);
        assert_eq!(body["code"], "OUT_OF_STOCK");
        assert_eq!(body["status"], 409);
        assert_eq!(body["productId"], "product-9");
        assert!(body["detail"].as_str().unwrap().contains("product-9"));
        assert_eq!(body["type"], "urn:problem-type:order-service:out-of-stock");
    }

    #[test]
    fn every_error_maps_to_the_documented_status() {
        let cases: Vec<(ServiceError, u16)> = vec![
            (ServiceError::Validation("x".into()), 400),
            (ServiceError::PayloadTooLarge { limit: 1 }, 413),
            (ServiceError::UnsupportedMediaType, 415),
            (ServiceError::Unauthorized("x"), 401),
            (ServiceError::Forbidden, 403),
            (Refusal::UserNotFound.into(), 404),
            (Refusal::OrderNotFound.into(), 404),
            (
                Refusal::InsufficientBalance {
                    required: Money::ZERO,
                }
                .into(),
                409,
            ),
            (Refusal::OrderAlreadyPaid.into(), 409),
            (Refusal::OrderCancelled.into(), 409),
            (Refusal::OrderNotPaid.into(), 409),
            (ServiceError::IdempotencyKeyReused, 422),
            (
                ServiceError::Contention {
                    retry_after: Duration::from_secs(1),
                },
                409,
            ),
            (ServiceError::internal("boom"), 500),
        ];
        for (error, status) in cases {
            let response = problem_response(&error);
            assert_eq!(response.status().as_u16(), status, "{error:?}");
            assert_eq!(body_json(&response)["status"], status);
        }
    }

    #[test]
    fn server_errors_are_opaque_and_unavailability_says_when_to_retry() {
        let internal = problem_response(&ServiceError::internal("secret SDK detail"));
        let text = String::from_utf8(internal.body().to_vec()).unwrap();
        assert!(!text.contains("secret"));
        let unavailable = problem_response(&ServiceError::StoreUnavailable {
            retry_after: Duration::from_secs(2),
            source: "connection refused to 10.0.0.1".into(),
        });
        assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unavailable.headers()[header::RETRY_AFTER], "2");
        let text = String::from_utf8(unavailable.body().to_vec()).unwrap();
        assert!(!text.contains("10.0.0.1"));
        assert!(text.contains("STORE_UNAVAILABLE"));
    }
}
