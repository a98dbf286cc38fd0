//! The contract: `openapi.yaml` declares exactly the routes of the workspace router (which
//! `template.yaml` is checked against in `template.rs`), every problem code the service can
//! answer (from the errors themselves, not from the source text), and its schemas really
//! reject what they should.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::time::Duration;

use order_service::domain::{Money, ProductId, Refusal};
use order_service::ServiceError;
use serde_json::json;
use testkit::openapi::{check_response, document};

fn router_routes() -> BTreeSet<(String, String)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let manifest: toml::Value = std::fs::read_to_string(path).unwrap().parse().unwrap();
    let router = manifest["workspace"]["metadata"]["lambda"]["watch"]["router"]
        .as_table()
        .unwrap();
    let mut routes = BTreeSet::new();
    for (path, targets) in router {
        for target in targets.as_array().unwrap() {
            routes.insert((target["method"].as_str().unwrap().to_owned(), path.clone()));
        }
    }
    routes
}

#[test]
fn openapi_paths_and_methods_equal_the_router() {
    let mut documented = BTreeSet::new();
    for (path, item) in document()["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                documented.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    assert_eq!(documented, router_routes());
}

/// One value of every `ServiceError` variant.
fn every_error() -> Vec<ServiceError> {
    let product = || ProductId::parse("product-1").unwrap();
    let wait = Duration::from_secs(1);
    vec![
        ServiceError::Validation("x".into()),
        ServiceError::PayloadTooLarge { limit: 1 },
        ServiceError::UnsupportedMediaType,
        ServiceError::Unauthorized("x"),
        ServiceError::Forbidden,
        Refusal::UserNotFound.into(),
        Refusal::OrderNotFound.into(),
        Refusal::ProductNotFound {
            product_id: product(),
        }
        .into(),
        Refusal::OutOfStock {
            product_id: product(),
        }
        .into(),
        Refusal::InsufficientBalance {
            required: Money::ZERO,
        }
        .into(),
        Refusal::OrderAlreadyPaid.into(),
        Refusal::OrderCancelled.into(),
        Refusal::OrderNotPaid.into(),
        Refusal::RefundExceedsOrder {
            product_id: product(),
        }
        .into(),
        ServiceError::IdempotencyKeyReused,
        ServiceError::RequestInProgress { retry_after: wait },
        ServiceError::Contention { retry_after: wait },
        ServiceError::StoreUnavailable {
            retry_after: wait,
            source: "x".into(),
        },
        ServiceError::Throttled { retry_after: wait },
        ServiceError::internal("x"),
    ]
}

/// The tripwire of `every_error`: a new variant (of the error or of a refusal) makes this
/// match non-exhaustive, and this test crate stops compiling until it is listed above too.
#[allow(dead_code)]
fn listed(error: &ServiceError) {
    match error {
        ServiceError::Validation(_)
        | ServiceError::PayloadTooLarge { .. }
        | ServiceError::UnsupportedMediaType
        | ServiceError::Unauthorized(_)
        | ServiceError::Forbidden
        | ServiceError::Refused(
            Refusal::UserNotFound
            | Refusal::OrderNotFound
            | Refusal::ProductNotFound { .. }
            | Refusal::OutOfStock { .. }
            | Refusal::InsufficientBalance { .. }
            | Refusal::OrderAlreadyPaid
            | Refusal::OrderCancelled
            | Refusal::OrderNotPaid
            | Refusal::RefundExceedsOrder { .. },
        )
        | ServiceError::IdempotencyKeyReused
        | ServiceError::RequestInProgress { .. }
        | ServiceError::Contention { .. }
        | ServiceError::StoreUnavailable { .. }
        | ServiceError::Throttled { .. }
        | ServiceError::Internal(_) => {}
    }
}

#[test]
fn every_problem_code_is_documented() {
    let documented: BTreeSet<String> = document()
        .pointer("/components/schemas/Problem/properties/code/enum")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|code| code.as_str().unwrap().to_owned())
        .collect();
    let errors = every_error();
    let emitted: BTreeSet<String> = errors.iter().map(|error| error.code().to_owned()).collect();
    assert_eq!(emitted.len(), errors.len(), "two variants share a code");
    assert_eq!(emitted, documented);
}

/// The errors an Idempotency-Key keeps as its answer: business refusals, and only those.
const REFUSALS: [&str; 9] = [
    "USER_NOT_FOUND",
    "ORDER_NOT_FOUND",
    "PRODUCT_NOT_FOUND",
    "OUT_OF_STOCK",
    "INSUFFICIENT_BALANCE",
    "ORDER_ALREADY_PAID",
    "ORDER_CANCELLED",
    "ORDER_NOT_PAID",
    "REFUND_EXCEEDS_ORDER",
];

#[test]
fn every_refusal_round_trips_and_nothing_else_is_one() {
    for error in every_error() {
        let refusal = error.refusal();
        assert_eq!(
            refusal.is_some(),
            REFUSALS.contains(&error.code()),
            "{error:?}"
        );
        if let Some(refusal) = refusal {
            let back = ServiceError::from(refusal);
            assert_eq!(back.code(), error.code());
            assert_eq!(back.to_string(), error.to_string());
        }
    }
}

#[test]
fn the_schemas_reject_what_they_should() {
    let order = json!({
        "orderId": "01KAAAAAAAAAAAAAAAAAAAAAAA",
        "userId": "user-1",
        "status": "CREATED",
        "items": [{"productId": "product-1", "quantity": 2, "unitPrice": 1000}],
        "totalAmount": 2000,
        "createdAt": "2026-11-25T21:50:00.123Z"
    });
    let get = |body: &serde_json::Value| {
        check_response(
            "GET",
            "/users/{userId}/orders/{orderId}",
            200,
            "application/json",
            body,
        )
    };
    assert_eq!(get(&order), Ok(()));
    let mut negative = order.clone();
    negative["totalAmount"] = json!(-1);
    assert!(get(&negative).is_err());
    let mut unknown_status = order.clone();
    unknown_status["status"] = json!("SHIPPED");
    assert!(get(&unknown_status).is_err());
    let mut extra = order.clone();
    extra["internal"] = json!(true);
    assert!(get(&extra).is_err());
    assert!(check_response(
        "GET",
        "/users/{userId}/orders/{orderId}",
        200,
        "text/html",
        &order
    )
    .is_err());
    assert!(check_response(
        "GET",
        "/users/{userId}/orders/{orderId}",
        418,
        "application/json",
        &order
    )
    .is_err());
    let problem =
        json!({"type": "urn:x", "title": "t", "status": 404, "detail": "d", "code": "NOPE"});
    assert!(check_response(
        "GET",
        "/users/{userId}/orders/{orderId}",
        404,
        "application/problem+json",
        &problem
    )
    .is_err());
}

#[test]
fn every_saved_event_is_an_api_gateway_event_lambda_http_accepts() {
    use lambda_http::RequestExt;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let mut parsed = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name == "expected.json" || !name.ends_with(".json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let request = lambda_http::request::from_str(&text)
            .unwrap_or_else(|error| panic!("{name} is not an API Gateway event: {error}"));
        let user = request
            .path_parameters_ref()
            .and_then(|parameters| parameters.first("userId"))
            .map(str::to_owned);
        assert!(user.is_some(), "{name} has no userId path parameter");
        parsed += 1;
    }
    assert!(parsed >= 20, "only {parsed} events");
}

/// What API Gateway answers by itself on AWS (throttle, authorizer, a function that could not
/// answer) is documented beside the service's own problem documents, told apart by the
/// content type.
#[test]
fn the_gateway_answers_are_documented_beside_the_service_problems() {
    let create = |status: u16, content_type: &str, body: &serde_json::Value| {
        check_response("POST", "/users/{userId}/orders", status, content_type, body)
    };
    let gateway = |message: &str| json!({ "message": message });
    assert_eq!(
        create(429, "application/json", &gateway("Too Many Requests")),
        Ok(())
    );
    assert_eq!(
        create(401, "application/json", &gateway("Unauthorized")),
        Ok(())
    );
    assert_eq!(
        create(
            413,
            "application/json",
            &gateway("Request Entity Too Large")
        ),
        Ok(())
    );
    // 500 and 504 have no entry of their own: the 5XX range documents them.
    assert_eq!(
        create(500, "application/json", &gateway("Internal Server Error")),
        Ok(())
    );
    assert_eq!(
        create(
            504,
            "application/json",
            &gateway("Endpoint request timed out")
        ),
        Ok(())
    );
    let unauthorized = json!({"type": "urn:x", "title": "t", "status": 401, "detail": "d", "code": "UNAUTHORIZED"});
    assert_eq!(
        create(401, "application/problem+json", &unauthorized),
        Ok(())
    );
    // A gateway body is no problem document, and a problem document needs its code.
    assert!(create(401, "application/problem+json", &gateway("Unauthorized")).is_err());
    assert!(create(429, "application/json", &json!({})).is_err());
    assert!(create(429, "text/plain", &gateway("Too Many Requests")).is_err());
}
