//! The contract: `openapi.yaml` declares exactly the routes of the workspace router (which
//! `template.yaml` is checked against in `template.rs`), every problem code the service can
//! answer, and its schemas really reject what they should.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use order_service::local_dynamodb::openapi::{check_response, document};
use serde_json::json;

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
    let source = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/error.rs"),
    )
    .unwrap();
    // The codes are the string literals of ServiceError::code().
    let emitted: BTreeSet<String> = source
        .split("=> \"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect();
    assert!(emitted.len() >= 15, "{emitted:?}");
    assert_eq!(emitted, documented);
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
